//! `strata bench` as a user runs it: the real binary starting its own cluster (and etcd), or
//! measuring a running one, with `--json` parsed and checked for shape — never for speed
//! (benchmarks are measurements, not tests).
//!
//! Each test starts many processes, so they run one at a time ([`serial`]); every process a
//! test starts dies with it (the bench's children with the bench, the test's own cluster on
//! drop).

use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_cli::launch::{LaunchOptions, LocalCluster};

mod common;
use common::STRATA;

/// Longest a small bench may take before the test gives up (a hang, not a timing).
const DEADLINE: Duration = Duration::from_secs(300);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `strata ARGS` to its end (killed at [`DEADLINE`]).
fn strata(args: &[&str]) -> Output {
    let mut child = Command::new(STRATA)
        .args(args)
        .env_remove("STRATA_MASTERS")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the strata binary runs");
    let started = Instant::now();
    while child.try_wait().expect("waiting for strata").is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let out = child.wait_with_output().expect("strata output");
            panic!(
                "strata {args:?} still running after {DEADLINE:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("strata output")
}

/// Runs a bench that must succeed; its JSON document.
fn bench_json(args: &[&str]) -> Value {
    let out = strata(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "strata {args:?} failed ({:?}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn f64_of(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {v}"))
}

/// Checks one result: operations done, none failed, percentiles in order, and (when
/// `cpu`) the servers' CPU measured.
fn check_result(r: &Value, cpu: bool) {
    assert!(r["operations"].as_u64().unwrap() > 0, "no operations: {r}");
    assert_eq!(r["errors"].as_u64(), Some(0), "{r}");
    assert!(f64_of(r, "ops_per_sec") > 0.0, "{r}");
    let l = &r["latency_ms"];
    let (p50, p99, p999, max) = (
        f64_of(l, "p50"),
        f64_of(l, "p99"),
        f64_of(l, "p999"),
        f64_of(l, "max"),
    );
    assert!(
        0.0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max,
        "percentiles out of order: {l}"
    );
    if cpu {
        let c = &r["cpu"];
        assert!(f64_of(c, "seconds") >= 0.0, "{r}");
        assert!(f64_of(c, "cores") >= 0.0, "{r}");
        assert!(f64_of(c, "us_per_op") >= 0.0, "{r}");
        assert!(c["processes"].as_u64().unwrap() > 0, "{r}");
    }
}

/// The results of `target`, as (workload, clients) pairs.
fn runs(doc: &Value, target: &str) -> Vec<(String, u64)> {
    doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["target"] == target)
        .map(|r| {
            (
                r["workload"].as_str().unwrap().to_string(),
                r["clients"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_local_cluster_runs_every_workload_and_client_count() {
    let _one = serial();
    let doc = bench_json(&[
        "bench",
        "--local",
        "--records",
        "200",
        "--seconds",
        "1",
        "--clients",
        "1,4",
        "--workloads",
        "put,get,ycsba,ycsbe",
        "--idle",
        "0.5",
        "--json",
    ]);
    let mut expected = Vec::new();
    for w in ["put", "get", "ycsba", "ycsbe"] {
        for c in [1, 4] {
            expected.push((w.to_string(), c));
        }
    }
    assert_eq!(runs(&doc, "strata"), expected);
    for r in doc["results"].as_array().unwrap() {
        check_result(r, true);
        assert_eq!(r["not_found"].as_u64(), Some(0), "{r}");
    }
    let target = &doc["targets"][0];
    assert_eq!(target["name"], "strata");
    // 3 masters and a group of 3 servers, each measured while idle.
    assert_eq!(target["processes"].as_array().unwrap().len(), 6, "{target}");
    assert_eq!(
        target["idle"]["processes"].as_array().unwrap().len(),
        6,
        "{target}"
    );
    assert!(f64_of(&target["idle"], "cores_per_process") >= 0.0);
    let load = &target["load"];
    assert_eq!(load["operations"].as_u64(), Some(200), "{load}");
    check_result(load, true);
    assert_eq!(doc["settings"]["records"].as_u64(), Some(200));
    assert!(doc["comparison"].as_array().unwrap().is_empty());
}

#[test]
fn strata_and_etcd_run_the_same_workloads_side_by_side() {
    let _one = serial();
    let doc = bench_json(&[
        "bench",
        "--local",
        "--etcd-local",
        "--records",
        "100",
        "--seconds",
        "1",
        "--clients",
        "2",
        "--workloads",
        "put,get,scan",
        "--idle",
        "0.5",
        "-o",
        "json",
    ]);
    let expected: Vec<(String, u64)> = ["put", "get", "scan"]
        .iter()
        .map(|w| (w.to_string(), 2))
        .collect();
    assert_eq!(runs(&doc, "strata"), expected);
    assert_eq!(runs(&doc, "etcd"), expected);
    for r in doc["results"].as_array().unwrap() {
        check_result(r, true);
    }
    let targets: Vec<&str> = (doc["targets"].as_array().unwrap().iter())
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["strata", "etcd"]);
    assert_eq!(
        doc["targets"][1]["processes"].as_array().unwrap().len(),
        3,
        "three etcd members"
    );
    let comparison = doc["comparison"].as_array().unwrap();
    let rows: Vec<&str> = comparison
        .iter()
        .map(|c| c["workload"].as_str().unwrap())
        .collect();
    assert_eq!(rows, ["put", "get", "scan"]);
    for c in comparison {
        assert!(f64_of(c, "ops_per_sec_ratio") > 0.0, "{c}");
        assert!(f64_of(c, "p99_ratio") > 0.0, "{c}");
        assert!(f64_of(c, "cpu_per_op_ratio") > 0.0, "{c}");
    }
}

/// A running cluster given by `--masters`: the servers' processes are found by the ports
/// they listen on, so their CPU is measured too; the table output has a line per phase.
#[test]
fn a_running_cluster_is_measured_through_its_listening_processes() {
    let _one = serial();
    let mut options = LaunchOptions::new(STRATA);
    options.shards = 4;
    options.log_filter = "warn".into();
    let mut cluster = LocalCluster::start(options).unwrap();
    cluster.add_group(100, 3).unwrap();
    let masters = cluster.master_addresses().join(",");
    let servers = cluster.group_addresses(100).join(",");
    let joined = strata(&[
        "--masters",
        &masters,
        "--timeout",
        "30",
        "group",
        "join",
        "100",
        "--servers",
        &servers,
    ]);
    assert!(
        joined.status.success(),
        "{}",
        String::from_utf8_lossy(&joined.stderr)
    );
    let args = [
        "--masters",
        &masters,
        "--timeout",
        "30",
        "bench",
        "--records",
        "100",
        "--operations",
        "200",
        "--clients",
        "3",
        "--workloads",
        "get,ycsbf",
        "--idle",
        "0",
    ];
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let doc = bench_json(&json_args);
    let target = &doc["targets"][0];
    let mut pids: Vec<u64> = (target["processes"].as_array().unwrap().iter())
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    pids.sort_unstable();
    let mut expected: Vec<u64> = cluster.pids().into_iter().map(u64::from).collect();
    expected.sort_unstable();
    assert_eq!(pids, expected, "{target}");
    assert!(target["idle"].is_null());
    for r in doc["results"].as_array().unwrap() {
        check_result(r, true);
        // Operations are counted, not timed: the budget is shared by the clients.
        assert_eq!(r["operations"].as_u64(), Some(200), "{r}");
    }

    let table = strata(&args);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    for w in ["load", "get", "ycsbf"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("strata  {w:<10} c=")) && l.contains("ops/s")),
            "no {w} line in:\n{text}"
        );
    }
}

#[test]
fn bad_command_lines_fail_in_one_line() {
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["bench", "--local", "--workloads", "put,nope"],
            2,
            "unknown workload",
        ),
        (&["bench", "--local", "--clients", "4,0"], 2, "--clients"),
        (&["bench"], 2, "nothing to benchmark"),
        (
            &[
                "bench",
                "--etcd-local",
                "--etcd-binary",
                "/nonexistent/etcd",
            ],
            1,
            "etcd-server",
        ),
        (
            &["bench", "--local", "--workloads", "move-100mb"],
            2,
            "--groups 2",
        ),
    ];
    for &(args, code, says) in cases {
        let out = strata(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or("");
        assert!(first.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
}
