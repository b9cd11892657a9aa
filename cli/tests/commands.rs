//! The data and admin commands, `status` and `health`, run as the real `strata` binary against
//! a real local cluster (three masters, two groups of three servers, joined through the CLI
//! itself). One cluster for the whole file: the checks run in sequence in one test.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_cli::launch::{free_port, LaunchOptions, LocalCluster};

const STRATA: &str = env!("CARGO_BIN_EXE_strata");

/// Runs `strata ARGS` against `masters` (through STRATA_MASTERS), with `stdin` piped in and
/// `--timeout 10` unless `args` set one.
fn run_with_stdin(masters: &str, args: &[&str], stdin: &[u8]) -> Output {
    let timeout: &[&str] = if args.contains(&"--timeout") {
        &[]
    } else {
        &["--timeout", "10"]
    };
    let mut child = Command::new(STRATA)
        .args(timeout)
        .args(args)
        .env("STRATA_MASTERS", masters)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the strata binary runs");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(stdin)
        .expect("stdin");
    child.wait_with_output().expect("strata finishes")
}

fn run(masters: &str, args: &[&str]) -> Output {
    run_with_stdin(masters, args, b"")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command that must succeed; returns its stdout.
fn ok(masters: &str, args: &[&str]) -> String {
    let o = run(masters, args);
    assert!(
        o.status.success(),
        "strata {args:?} failed ({:?}): {}",
        o.status,
        stderr(&o)
    );
    stdout(&o)
}

/// Runs a command that must succeed with `-o json`; returns the parsed document.
fn json(masters: &str, args: &[&str]) -> Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let text = ok(masters, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("strata {args:?}: {e}: {text}"))
}

/// Runs a command that must fail with `code`; returns its stderr.
fn fails(masters: &str, args: &[&str], code: i32) -> String {
    let o = run(masters, args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "strata {args:?}: stdout {} stderr {}",
        stdout(&o),
        stderr(&o)
    );
    let err = stderr(&o);
    // Ours are one `strata: ` line; clap's own usage errors (exit 2) start with `error:`.
    let clap_usage = code == 2 && err.starts_with("error: ");
    assert!(
        clap_usage || (err.starts_with("strata: ") && err.lines().count() == 1),
        "strata {args:?}: {err}"
    );
    err
}

/// Polls `check` every 200 ms until it holds; panics with `what` after `limit`.
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < until, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn bad_input_fails_fast_with_the_right_exit_code() {
    // Nothing listens on a port that was free a moment ago.
    let nobody = format!("127.0.0.1:{}", free_port().unwrap());
    for args in [
        &["get", "k"][..],
        &["put", "k", "v"],
        &["scan"],
        &["group", "list"],
        &["config", "show"],
    ] {
        let started = Instant::now();
        let mut all = vec!["--timeout", "2"];
        all.extend_from_slice(args);
        let o = Command::new(STRATA)
            .args(&all)
            .env("STRATA_MASTERS", &nobody)
            .output()
            .unwrap();
        // A generous bound, only so that a hang fails the test instead of stalling it.
        assert!(started.elapsed() < Duration::from_secs(20), "{args:?} hung");
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.contains("no answer"), "{args:?}: {err}");
    }
    // status and health say what they could not reach, and fail.
    let o = run(&nobody, &["--timeout", "2", "status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("unreachable"), "{}", stdout(&o));
    let o = run(&nobody, &["--timeout", "2", "health"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("strata: master: 0 of 1 replicas reachable"),
        "{err}"
    );
    assert!(
        err.lines().last().unwrap().starts_with("strata: unhealthy"),
        "{err}"
    );

    // Usage errors: exit 2, before any network.
    fails("not-an-address", &["get", "k"], 2);
    fails("127.0.0.1:http", &["get", "k"], 2);
    let o = Command::new(STRATA)
        .args(["get", "k"])
        .env_remove("STRATA_MASTERS")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "no --masters: {}", stderr(&o));
    assert!(fails(&nobody, &["get", "--hex", "0g"], 2).contains("not valid hex"));
    assert!(fails(&nobody, &["put", "--hex", "abc", "00"], 2).contains("not valid hex"));
    assert!(fails(&nobody, &["put", "--base64", "k", "@@"], 2).contains("not valid base64"));
    let huge_key = "k".repeat(70_000);
    let err = fails(&nobody, &["put", &huge_key, "v"], 2);
    assert!(err.contains("over the limit"), "{err}");
    let err = fails(
        &nobody,
        &["put", "k", "--file", "/nonexistent/strata-value"],
        1,
    );
    assert!(err.contains("/nonexistent/strata-value"), "{err}");
    fails(&nobody, &["cas", "k", "--new", "v"], 2); // neither --expect nor --absent
    fails(&nobody, &["group", "join", "1", "--servers", "nohost"], 2);
    fails(
        &nobody,
        &["group", "join", "1", "--servers", "1=h:1,h:2"],
        2,
    );
    fails(&nobody, &["group", "join", "0", "--servers", "h:1"], 2);
    fails(&nobody, &["--timeout", "0", "get", "k"], 2);
    // Every command has help, with examples.
    for cmd in [
        &["get"][..],
        &["put"],
        &["del"],
        &["append"],
        &["cas"],
        &["scan"],
        &["group", "join"],
        &["group", "leave"],
        &["group", "list"],
        &["shard", "move"],
        &["shard", "list"],
        &["config", "show"],
        &["config", "history"],
        &["status"],
        &["health"],
        &["group", "add-replica"],
        &["group", "remove-replica"],
        &["group", "replace-replica"],
        &["master", "add-replica"],
        &["master", "remove-replica"],
        &["master", "replace-replica"],
        &["master", "members"],
    ] {
        let mut all = cmd.to_vec();
        all.push("--help");
        let o = Command::new(STRATA).args(&all).output().unwrap();
        assert!(o.status.success(), "{all:?}");
        assert!(stdout(&o).contains("Examples:"), "{all:?}: {}", stdout(&o));
    }
}

#[test]
fn commands_against_a_cluster() {
    let mut options = LaunchOptions::new(STRATA);
    options.shards = 16;
    let mut cluster = LocalCluster::start(options).expect("masters start");
    cluster.add_group(1, 3).expect("group 1 starts");
    cluster.add_group(2, 3).expect("group 2 starts");
    let m = cluster.master_addresses().join(",");
    let m = m.as_str();

    // Join through the CLI: group 1 with ids (listed out of order), group 2 plain.
    let g1 = cluster.group_addresses(1);
    let g2 = cluster.group_addresses(2);
    let servers1 = format!("3={},1={},2={}", g1[2], g1[0], g1[1]);
    let out = ok(m, &["group", "join", "1", "--servers", &servers1]);
    assert!(out.contains("group 1 joined"), "{out}");
    let joined = json(m, &["group", "join", "2", "--servers", &g2.join(",")]);
    assert_eq!(joined["config"], 2);

    // Admin views.
    let groups = json(m, &["group", "list"]);
    let groups = groups["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["servers"], serde_json::json!(g1), "ordered by id");
    let total: u64 = groups.iter().map(|g| g["shards"].as_u64().unwrap()).sum();
    assert_eq!(total, 16);
    let table = ok(m, &["group", "list"]);
    assert!(table.starts_with("GID"), "{table}");
    let config = json(m, &["config", "show"]);
    assert_eq!(config["num"], 2);
    assert_eq!(config["shards"].as_array().unwrap().len(), 16);
    assert_eq!(json(m, &["config", "show", "1"])["num"], 1);
    assert!(ok(m, &["config", "show"]).contains("config 2 (16 shards)"));
    fails(m, &["config", "show", "9"], 1);
    let history = json(m, &["config", "history", "--limit", "5"]);
    let nums: Vec<u64> = (history.as_array().unwrap().iter())
        .map(|c| c["num"].as_u64().unwrap())
        .collect();
    assert_eq!(nums, [2, 1, 0], "newest first");
    assert_eq!(
        json(m, &["config", "history", "--limit", "1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(ok(m, &["config", "history"]).starts_with("NUM"));

    // Data commands.
    assert_eq!(ok(m, &["put", "greeting", "hello"]), "OK\n");
    assert_eq!(ok(m, &["get", "greeting"]), "hello\n");
    let got = json(m, &["get", "greeting"]);
    assert_eq!(
        got,
        serde_json::json!({"key": "greeting", "value": "hello"})
    );
    let err = fails(m, &["get", "missing"], 1);
    assert_eq!(err, "strata: key not found\n");
    ok(m, &["append", "greeting", ", world"]);
    assert_eq!(ok(m, &["get", "greeting"]), "hello, world\n");
    ok(m, &["append", "fresh", "-5"]);
    assert_eq!(ok(m, &["get", "fresh"]), "-5\n");
    assert_eq!(ok(m, &["del", "fresh"]), "deleted\n");
    assert_eq!(json(m, &["del", "fresh"])["deleted"], false);
    fails(m, &["get", "fresh"], 1);
    // Values from stdin and from a file.
    let o = run_with_stdin(m, &["put", "piped", "-"], b"from\nstdin");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ok(m, &["get", "piped"]), "from\nstdin\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("value.bin");
    std::fs::write(&file, [0u8, 1, 2, 0xff]).unwrap();
    ok(m, &["put", "filed", "--file", file.to_str().unwrap()]);
    // "filed" in hex.
    assert_eq!(ok(m, &["get", "--hex", "66696c6564"]), "000102ff\n");
    assert_eq!(
        ok(m, &["get", "filed"]),
        "\\x00\\x01\\x02\\xff\n",
        "escaped"
    );
    let raw = run(m, &["get", "--raw", "filed"]);
    assert_eq!(raw.stdout, [0u8, 1, 2, 0xff]);
    // Compare-and-swap.
    let cas = json(m, &["cas", "lock", "--absent", "--new", "me"]);
    assert_eq!(cas["swapped"], true);
    assert_eq!(cas["value"], "me");
    let cas = json(m, &["cas", "lock", "--absent", "--new", "you"]);
    assert_eq!(cas["swapped"], false);
    assert_eq!(cas["value"], "me");
    let out = ok(m, &["cas", "lock", "--expect", "nobody", "--new", "x"]);
    assert_eq!(out, "not swapped; value: me\n");
    let out = ok(m, &["cas", "lock", "--expect", "me", "--delete"]);
    assert_eq!(out, "swapped; value: (absent)\n");
    fails(m, &["get", "lock"], 1);

    // Binary keys round-trip through --hex and --base64.
    ok(m, &["put", "--hex", "00ff0a", "0000ff"]);
    assert_eq!(ok(m, &["get", "--hex", "00ff0a"]), "0000ff\n");
    let got = json(m, &["get", "--base64", "AP8K"]);
    assert_eq!(got, serde_json::json!({"key": "AP8K", "value": "AAD/"}));
    assert_eq!(json(m, &["del", "--hex", "00FF0A"])["deleted"], true);

    // A key over the limit is refused before it is sent; a value too.
    let err = fails(m, &["get", &"k".repeat(64 * 1024)], 2);
    assert!(err.contains("over the limit of 64512 bytes"), "{err}");

    // Scan: across all shards, in key order, with bounds.
    for i in 0..40 {
        ok(m, &["put", &format!("s/{i:02}"), &format!("v{i}")]);
    }
    let all = json(m, &["scan", "--prefix", "s/"]);
    let keys: Vec<&str> = (all.as_array().unwrap().iter())
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..40).map(|i| format!("s/{i:02}")).collect();
    assert_eq!(keys, expected);
    assert_eq!(all[7]["value"], "v7");
    let first = json(
        m,
        &["scan", "--prefix", "s/", "--limit", "5", "--keys-only"],
    );
    assert_eq!(
        first,
        serde_json::json!([{"key": "s/00"}, {"key": "s/01"}, {"key": "s/02"}, {"key": "s/03"}, {"key": "s/04"}])
    );
    let text = ok(m, &["scan", "--from", "s/10", "--to", "s/13"]);
    assert_eq!(text, "s/10\tv10\ns/11\tv11\ns/12\tv12\n");
    let keys_only = ok(m, &["scan", "--prefix", "s/3", "--keys-only"]);
    assert_eq!(keys_only.lines().count(), 10);
    let whole = json(m, &["scan"]);
    let whole: Vec<&str> = (whole.as_array().unwrap().iter())
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert!(whole.windows(2).all(|w| w[0] < w[1]), "ordered: {whole:?}");
    assert_eq!(whole.len(), 40 + 3, "{whole:?}");
    assert_eq!(
        json(m, &["scan", "--prefix", "nothing"]),
        serde_json::json!([])
    );

    // Shards: move one to the other group, watch it land.
    let shards = json(m, &["shard", "list"]);
    let owner0 = shards["shards"][0]["gid"].as_u64().unwrap();
    let other = if owner0 == 1 { 2 } else { 1 };
    let moved = json(m, &["shard", "move", "0", &other.to_string()]);
    assert_eq!(moved["config"], 3);
    eventually(
        "shard 0 served by its new owner",
        Duration::from_secs(30),
        || {
            let s = json(m, &["shard", "list"]);
            s["shards"][0]["gid"] == other && s["shards"][0]["state"] == "serving"
        },
    );
    assert!(ok(m, &["shard", "list"]).starts_with("SHARD"));
    // The move is logged at its new owner's leader: one line at the start, one at the end
    // with the shard, both groups, the bytes and the time, each in the pull step's span.
    let step = format!("reconfig{{step=\"pull\" gid={other} shard=0 config=3 from={owner0}}}: ");
    eventually("the move logged", Duration::from_secs(10), || {
        let group = cluster.group(other).unwrap();
        group.iter().any(|r| {
            let log = r.process.log();
            let started = log.lines().any(|l| {
                l.contains("shard move started")
                    && l.contains(&step)
                    && l.contains("shard=0")
                    && l.contains(&format!("from={owner0}"))
                    && l.contains(&format!("to={other}"))
            });
            let ended = log.lines().any(|l| {
                l.contains("shard moved")
                    && l.contains(&step)
                    && l.contains("shard=0")
                    && l.contains(&format!("from={owner0}"))
                    && l.contains(&format!("to={other}"))
                    && l.contains("bytes=")
                    && l.contains("seconds=")
            });
            started && ended
        })
    });
    // The master's refusals read well.
    let err = fails(m, &["shard", "move", "99", "1"], 1);
    assert!(err.contains("shard 99 is out of range"), "{err}");
    let err = fails(m, &["shard", "move", "0", "77"], 1);
    assert!(err.contains("77"), "{err}");
    let err = fails(m, &["group", "leave", "77"], 1);
    assert!(err.contains("group 77 is not a member"), "{err}");
    let err = fails(m, &["group", "join", "1", "--servers", &g1.join(",")], 1);
    assert!(err.contains("already"), "{err}");

    // Status: every process, all up; servers report shards and data.
    let rows = json(m, &["status"]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3 + 3 + 3);
    assert!(rows.iter().all(|r| r["reachable"] == true), "{rows:?}");
    let leaders = rows.iter().filter(|r| r["leader"] == true).count();
    assert_eq!(leaders, 3, "one leader per group: {rows:?}");
    for r in rows.iter().filter(|r| r["group"] != "master") {
        assert!(r["data_bytes"].as_u64().unwrap() > 0, "{r}");
        assert!(r["config_num"].as_u64().unwrap() >= 2, "{r}");
    }
    // Every shard is held by the group owning it (at its servers that caught up).
    let held: usize = rows
        .iter()
        .filter(|r| r["leader"] == true && r["group"] != "master")
        .map(|r| r["shards_held"].as_array().unwrap().len())
        .sum();
    assert_eq!(held, 16, "{rows:?}");
    assert!(ok(m, &["status"]).starts_with("GROUP"));
    assert!(ok(m, &["health"]).starts_with("healthy"));

    // A killed replica shows as unreachable; the group keeps its quorum.
    let dead = cluster.server(2, 3).unwrap();
    dead.process.kill();
    let dead_address = dead.address.clone();
    let rows = json(m, &["status"]);
    let row = (rows.as_array().unwrap().iter())
        .find(|r| r["address"] == dead_address.as_str())
        .expect("the killed replica has a row")
        .clone();
    assert_eq!(row["reachable"], false, "{row}");
    assert!(ok(m, &["status"]).contains("unreachable"));
    eventually(
        "group 2 healthy on two replicas",
        Duration::from_secs(30),
        || run(m, &["health"]).status.success(),
    );

    // Two of three gone: no quorum, health fails and says which group.
    cluster.server(2, 2).unwrap().process.kill();
    let o = run(m, &["health"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("group 2: 1 of 3 replicas reachable"), "{err}");
    assert!(
        err.lines().last().unwrap().contains("unhealthy: 1 of 3"),
        "{err}"
    );
    let o = run(m, &["-o", "json", "health"]);
    assert_eq!(o.status.code(), Some(1));
    let verdicts: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let g2 = (verdicts.as_array().unwrap().iter())
        .find(|v| v["group"] == "2")
        .unwrap();
    assert_eq!(g2["healthy"], false);
    assert_eq!(g2["reachable"], 1);

    // Back again: healthy once they rejoin.
    cluster.restart_server(2, 2).unwrap();
    cluster.restart_server(2, 3).unwrap();
    eventually("group 2 healthy again", Duration::from_secs(60), || {
        run(m, &["health"]).status.success()
    });
    assert_eq!(ok(m, &["get", "s/05"]), "v5\n");

    // Leave: the group's shards go to the other.
    let out = ok(m, &["group", "leave", "2"]);
    assert!(out.contains("group 2 left"), "{out}");
    let groups = json(m, &["group", "list"]);
    assert_eq!(groups["groups"].as_array().unwrap().len(), 1);
    assert_eq!(groups["groups"][0]["shards"], 16);
}
