//! End-to-end smoke run of `strata-bench`: a few thousand keys through every workload on
//! Strata and fjall, each in its own child process, checking the JSON it writes. Numbers are
//! not checked: benchmarks are measurements, not tests.

use std::process::Command;

use serde_json::Value;

const NUM: u64 = 5000;

/// Runs `strata-bench` with `args` and a database and JSON file in a temporary directory;
/// checks that it succeeds and returns its standard output and the JSON it wrote.
fn run_driver(args: &[&str]) -> (String, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("results.json");
    let output = Command::new(env!("CARGO_BIN_EXE_strata-bench"))
        .args(args)
        .arg(format!("--db={}", dir.path().join("db").display()))
        .arg(format!("--json={}", json.display()))
        .output()
        .expect("run strata-bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "strata-bench failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc = serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
        .expect("valid json");
    (stdout, doc)
}

#[test]
fn driver_runs_every_workload_on_strata_and_fjall() {
    let benchmarks = "fillrandom,readrandom,readmissing,readseq,seekrandom,overwrite,\
                      deleterandom,readwhilewriting,ycsba,ycsbb,ycsbc,ycsbd,ycsbe,ycsbf,\
                      fillseq,fillbatch,readrandom";
    let (stdout, doc) = run_driver(&[
        &format!("--benchmarks={benchmarks}"),
        "--engines=strata,fjall",
        &format!("--num={NUM}"),
        "--threads=2",
        // Small memtables, so that flushes and compactions happen even at this size.
        "--write_buffer_size=65536",
        "--distribution=zipfian",
    ]);
    // db_bench's result line, once per workload and engine.
    let lines = stdout
        .lines()
        .filter(|l| l.starts_with("fillrandom   :"))
        .count();
    assert_eq!(lines, 2, "{stdout}");
    assert!(
        stdout.contains("micros/op") && stdout.contains("p99.9"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(1.") || stdout.contains("(0."),
        "no ratio vs strata:\n{stdout}"
    );
    assert!(stdout.contains("WAL written through mmap"), "{stdout}");

    let engines = doc["engines"].as_array().expect("engines");
    let names: Vec<&str> = engines
        .iter()
        .filter_map(|e| e["engine"].as_str())
        .collect();
    assert_eq!(names, ["strata", "fjall"]);
    let n_workloads = benchmarks.split(',').count();
    for e in engines {
        let name = e["engine"].as_str().unwrap_or("?");
        let w = e["workloads"].as_array().expect("workloads");
        assert_eq!(w.len(), n_workloads, "{name}");
        let found = |i: usize| w[i]["found"].as_u64();
        // After fillrandom every key is there, and no missing key is.
        assert_eq!(found(1), Some(NUM), "{name}: readrandom after fillrandom");
        assert_eq!(found(2), Some(0), "{name}: readmissing");
        assert_eq!(found(3), Some(NUM), "{name}: readseq reads every key");
        assert_eq!(found(4), Some(NUM), "{name}: every seek lands on a key");
        // The last readrandom follows fillbatch, which rewrote every key.
        assert_eq!(
            found(n_workloads - 1),
            Some(NUM),
            "{name}: readrandom after fillbatch"
        );
        for r in w {
            assert!(
                r["ops_per_sec"].as_f64().unwrap_or(0.0) > 0.0,
                "{name}: {r}"
            );
            assert!(r["latency_us"]["p99"].as_f64().is_some(), "{name}: {r}");
        }
        assert!(e["peak_rss_anon_bytes"].as_u64().unwrap_or(0) > 0, "{name}");
        assert!(
            e["write_amplification"].as_f64().unwrap_or(0.0) > 0.0,
            "{name}"
        );
        assert!(
            e["space_amplification"].as_f64().unwrap_or(0.0) > 0.0,
            "{name}"
        );
        assert!(e["db_bytes"].as_u64().unwrap_or(0) > 0, "{name}");
    }
}

#[test]
fn memtable_filter_and_mmap_writes_can_be_turned_off_and_reads_stay_right() {
    let (stdout, doc) = run_driver(&[
        "--benchmarks=fillrandom,readrandom,readmissing,deleterandom,readrandom",
        "--engines=strata",
        "--num=3000",
        "--memtable_whole_key_filtering=false",
        "--mmap_write=false",
    ]);
    assert!(stdout.contains("no memtable filter"), "{stdout}");
    assert!(stdout.contains("log written with write(2)"), "{stdout}");
    assert_eq!(doc["settings"]["memtable_filter"], Value::Bool(false));
    assert_eq!(doc["settings"]["mmap_write"], Value::Bool(false));
    let w = doc["engines"][0]["workloads"]
        .as_array()
        .expect("workloads");
    assert_eq!(w[1]["found"].as_u64(), Some(3000));
    assert_eq!(w[2]["found"].as_u64(), Some(0));
    // deleterandom draws with replacement: some keys are gone, not all.
    let left = w[4]["found"].as_u64().expect("found");
    assert!(left > 0 && left < 3000, "{left}");
}
