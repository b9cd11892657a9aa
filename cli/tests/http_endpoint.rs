//! Every process's HTTP endpoint, over real processes: `/metrics` in a form Prometheus
//! accepts (checked by `promtool`), showing the group's work; `/health` 200 while the group
//! has a leader, 503 with the reason once it lost its quorum (two replicas frozen), 200 again
//! when they thaw; 404 and 405 for bad requests; silent HTTP clients block nothing.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_cli::launch::{LaunchOptions, LocalCluster};

mod common;
use common::{strata, STRATA};

use common::{http_get as get, http_get_with as get_with};

/// Polls `/health` at `address` until its code is `want`; the last body.
fn wait_health(address: &str, want: u16) -> String {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = get(address, "/health").unwrap_or((0, String::new()));
        if code == want {
            return body;
        }
        assert!(
            Instant::now() < until,
            "/health at {address} stayed {code}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A value of a sample line `name value` (no labels) in an exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_and_health_of_a_real_group() {
    let mut options = LaunchOptions::new(STRATA);
    options.shards = 8;
    let mut cluster = LocalCluster::start(options).expect("masters start");
    cluster.add_group(1, 3).expect("group 1 starts");
    let m = cluster.master_addresses().join(",");
    strata(
        &m,
        &[
            "group",
            "join",
            "1",
            "--servers",
            &cluster.group_addresses(1).join(","),
        ],
    );
    for i in 0..20 {
        strata(&m, &["put", &format!("k{i}"), "v"]);
    }
    let http: Vec<String> = (1..=3)
        .map(|id| {
            cluster
                .server(1, id)
                .unwrap()
                .http_address
                .clone()
                .expect("http")
        })
        .collect();

    // Every replica is healthy and reports the group's progress.
    for a in &http {
        let body = wait_health(a, 200);
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["healthy"], true, "{body}");
    }
    let mut leaders = 0.0;
    let mut committed = 0.0;
    for a in &http {
        let (code, text) = get(a, "/metrics").unwrap();
        assert_eq!(code, 200);
        assert!(
            sample(&text, "strata_paxos_commit_index").unwrap() > 20.0,
            "{text}"
        );
        leaders += sample(&text, "strata_paxos_is_leader").unwrap();
        let has_leader = sample(&text, "strata_paxos_has_leader");
        assert_eq!(
            has_leader,
            Some(1.0),
            "every replica knows a leader: {text}"
        );
        committed += text
            .lines()
            .find_map(|l| l.strip_prefix("strata_paxos_proposals_committed_total "))
            .map_or(0.0, |v| v.parse().unwrap());
    }
    assert_eq!(leaders, 1.0, "exactly one replica says it leads");
    // The leader has sent batches to both followers and timed their acknowledgements.
    for (i, a) in http.iter().enumerate() {
        let (_, text) = get(a, "/metrics").unwrap();
        if sample(&text, "strata_paxos_is_leader") != Some(1.0) {
            continue;
        }
        for peer in (1..=3).filter(|&p| p != i + 1) {
            let series = format!("strata_peer_round_trip_seconds_count{{peer=\"{peer}\"}}");
            assert!(sample(&text, &series).unwrap() > 0.0, "{series} in {text}");
            let series = format!("strata_peer_send_queue_bytes{{peer=\"{peer}\"}}");
            assert!(sample(&text, &series).is_some(), "{series} in {text}");
        }
    }
    // The per-shard counters add up to the puts, over more than one shard.
    let (mut put_ops, mut shards) = (0.0, std::collections::BTreeSet::new());
    for a in &http {
        let (_, text) = get(a, "/metrics").unwrap();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("strata_shard_ops_total{") else {
                continue;
            };
            if let Some((labels, value)) = rest.split_once("} ") {
                if labels.contains("op=\"put\"") {
                    put_ops += value.parse::<f64>().unwrap();
                    shards.insert(labels.to_string());
                }
            }
        }
    }
    // (A put retried after a lost answer is answered again, from the dedup table, and
    // counted again: allow a few.)
    assert!(
        (20.0..=25.0).contains(&put_ops),
        "every put counted at the leader: {put_ops}"
    );
    assert!(shards.len() > 1, "{shards:?}");
    // The leader's per-shard figures count the 20 keys and their bytes, once its background
    // count caught up (every few seconds: polled with a deadline).
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let texts: Vec<String> = (http.iter())
            .map(|a| get(a, "/metrics").map(|(_, t)| t).unwrap_or_default())
            .collect();
        let leader = (texts.iter()).find(|t| sample(t, "strata_paxos_is_leader") == Some(1.0));
        let sum = |text: &str, name: &str| -> (f64, usize) {
            let values: Vec<f64> = (text.lines())
                .filter(|l| l.starts_with(&format!("{name}{{shard=")))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
                .collect();
            (values.iter().sum(), values.len())
        };
        // Keys "k0".."k19" (2 or 3 bytes) with the value "v".
        let want_bytes = (10 * 3 + 10 * 4) as f64;
        if let Some(text) = leader {
            let (keys, bytes) = (
                sum(text, "strata_shard_keys"),
                sum(text, "strata_shard_bytes"),
            );
            if keys == (20.0, 8) && bytes == (want_bytes, 8) {
                break;
            }
            assert!(
                Instant::now() < until,
                "the leader's shard figures never counted the puts: keys {keys:?}, bytes \
                 {bytes:?} (want 20 and {want_bytes} over 8 shards)\n{text}"
            );
        }
        assert!(Instant::now() < until, "no leader");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both engines of a server report, the data engine having taken the puts.
    let (_, text) = get(&http[0], "/metrics").unwrap();
    for engine in ["paxos", "data"] {
        let series = format!("strata_engine_user_bytes_written_total{{engine=\"{engine}\"}}");
        assert!(sample(&text, &series).unwrap() > 0.0, "{series} in {text}");
        let series = format!("strata_engine_level_files{{engine=\"{engine}\",level=\"0\"}}");
        assert!(sample(&text, &series).is_some(), "{series} in {text}");
    }
    let puts: f64 = (http.iter())
        .map(|a| get(a, "/metrics").unwrap().1)
        .map(|text| {
            let series =
                "strata_rpc_duration_seconds_count{method=\"strata.v1.ShardKv/Put\",code=\"OK\"}";
            sample(&text, series).unwrap_or(0.0)
        })
        .sum();
    assert!(puts >= 20.0, "every put was timed: {puts}");
    assert!(
        committed >= 20.0,
        "the puts were committed through some replica"
    );

    // A master reports the configuration: one group owning all 8 shards.
    let master_http = cluster.masters()[0].http_address.clone().expect("http");
    let (_, master_text) = get(&master_http, "/metrics").unwrap();
    assert!(
        sample(&master_text, "strata_master_config_num").unwrap() >= 1.0,
        "{master_text}"
    );
    assert_eq!(
        sample(&master_text, "strata_master_groups"),
        Some(1.0),
        "{master_text}"
    );
    let owned = sample(&master_text, "strata_master_shards{gid=\"1\"}");
    assert_eq!(owned, Some(8.0), "{master_text}");
    assert!(
        sample(&master_text, "strata_paxos_has_leader").is_some(),
        "{master_text}"
    );

    // Prometheus's own checker accepts the exposition.
    let (_, text) = get(&http[0], "/metrics").unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt install prometheus) runs");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // The shipped Prometheus config and alert rules are valid, and name only exported metrics.
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus");
    for (what, file) in [("config", "prometheus.yml"), ("rules", "alerts.yml")] {
        let out = Command::new("promtool")
            .args(["check", what])
            .arg(deploy.join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let families = |text: &str| -> Vec<String> {
        (text.lines())
            .filter_map(|l| Some(l.strip_prefix("# TYPE ")?.split(' ').next()?.to_string()))
            .collect()
    };
    // What any server exports (a follower has served no operation: no shard series yet).
    let all_servers: String = (http.iter())
        .map(|a| get(a, "/metrics").unwrap().1)
        .collect();
    let exported = families(&all_servers);
    let exported: Vec<&str> = exported.iter().map(String::as_str).collect();
    let master_exported = families(&master_text);
    let master_exported: Vec<&str> = master_exported.iter().map(String::as_str).collect();
    // ... as does the Grafana dashboard, which is JSON with a query in every panel.
    let dashboard = deploy.join("../grafana/strata-dashboard.json");
    let dashboard = std::fs::read_to_string(dashboard).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard parses");
    let panels = parsed["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let queries: Vec<String> = (panels.iter())
        .map(|p| {
            p["targets"][0]["expr"]
                .as_str()
                .expect("a query")
                .to_string()
        })
        .collect();
    let rules = std::fs::read_to_string(deploy.join("alerts.yml")).unwrap();
    for (file, text) in [("alerts.yml", rules), ("the dashboard", queries.join("\n"))] {
        let named = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("strata_") || w.starts_with("process_"));
        for name in named {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            let exported = exported.contains(&family) || master_exported.contains(&family);
            assert!(exported, "{file} names {name}, which no process exports");
        }
    }

    // A scraper that asks for OpenMetrics gets it.
    let accept = "Accept: application/openmetrics-text; version=1.0.0\r\n";
    let (_, open) = get_with(&http[0], "/metrics", accept).unwrap();
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(
        open.contains("# TYPE strata_paxos_proposals_committed counter\n"),
        "{open}"
    );

    // Bad requests: unknown paths 404, other methods 405.
    assert_eq!(get(&http[0], "/nope").unwrap().0, 404);
    let mut post = std::net::TcpStream::connect(&http[0]).unwrap();
    post.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        post,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    post.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    // Clients that connect and never finish a request hold nothing the service needs.
    let silent: Vec<_> = (0..50)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&http[0]).unwrap();
            s.write_all(b"GET /metr").unwrap();
            s
        })
        .collect();
    strata(&m, &["put", "after-silent-clients", "v"]);
    assert_eq!(get(&http[0], "/health").unwrap().0, 200);
    drop(silent);

    // Two of three frozen (SIGSTOP): the third has no leader and says so.
    cluster.server(1, 2).unwrap().process.pause();
    cluster.server(1, 3).unwrap().process.pause();
    let changes = |a: &str| {
        let (_, text) = get(a, "/metrics").unwrap();
        sample(&text, "strata_paxos_leader_changes_seen_total").unwrap()
    };
    let failures = |a: &str| -> f64 {
        let (_, text) = get(a, "/metrics").unwrap();
        ["2", "3"]
            .iter()
            .map(|p| {
                let series = format!("strata_peer_send_failures_total{{peer=\"{p}\"}}");
                sample(&text, &series).unwrap_or_else(|| panic!("{series} in {text}"))
            })
            .sum()
    };
    let changes_before = changes(&http[0]);
    let failures_before = failures(&http[0]);
    let body = wait_health(&http[0], 503);
    assert!(body.contains("no leader"), "{body}");
    assert!(
        changes(&http[0]) > changes_before,
        "losing the leader is a leader change"
    );
    // Frozen peers do not acknowledge: sends to them fail (after their deadline).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while failures(&http[0]) <= failures_before {
        assert!(
            std::time::Instant::now() < deadline,
            "no failed send to the frozen peers was counted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Thawed (SIGCONT): healthy again.
    cluster.server(1, 2).unwrap().process.resume();
    cluster.server(1, 3).unwrap().process.resume();
    for a in &http {
        wait_health(a, 200);
    }
    // Killed and restarted: healthy again too.
    cluster.server(1, 2).unwrap().process.kill();
    cluster.restart_server(1, 2).unwrap();
    wait_health(&http[1], 200);
}

#[test]
fn health_says_disk_full_below_the_free_space_floor() {
    let mut options = LaunchOptions::new(STRATA);
    options.masters = 1;
    options.shards = 4;
    // More free space asked for than any disk has.
    options.server_args = vec!["--health-min-free-bytes".into(), u64::MAX.to_string()];
    let mut cluster = LocalCluster::start(options).expect("the master starts");
    cluster.add_group(1, 1).expect("group 1 starts");
    let http = cluster.server(1, 1).unwrap().http_address.clone().unwrap();
    let body = wait_health(&http, 503);
    assert!(body.contains("disk full"), "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(health["free_bytes"].as_u64().unwrap() > 0, "{body}");
    // The master, with the default floor, is healthy.
    let master = cluster.masters()[0].http_address.clone().unwrap();
    wait_health(&master, 200);
}
