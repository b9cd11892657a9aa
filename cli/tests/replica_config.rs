//! `strata master --config FILE`: three real master processes described by one TOML file, each
//! naming its own id and data directory on the command line (flags override the file).

use std::ffi::OsString;
use std::process::Command;
use std::time::Duration;

use strata_cli::launch::{free_addresses, wait_listening, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_strata");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_masters_from_one_config_file_form_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let addresses = free_addresses(3).unwrap();
    let peers: Vec<String> = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{} = \"{a}\"", i + 1))
        .collect();
    let file = dir.path().join("master.toml");
    std::fs::write(
        &file,
        format!(
            "id = 1\npeers = {{ {} }}\ndata_dir = \"/nonexistent/overridden\"\nshards = 24\ntick_ms = 20\nlog_format = \"json\"\n",
            peers.join(", ")
        ),
    )
    .unwrap();
    let mut masters: Vec<Proc> = (1..=3)
        .map(|id| {
            let args: Vec<OsString> = [
                "master".to_string(),
                "--config".into(),
                file.display().to_string(),
                "--id".into(),
                id.to_string(),
                format!("--data-dir={}", dir.path().join(format!("m{id}")).display()),
            ]
            .into_iter()
            .map(OsString::from)
            .collect();
            let mut p = Proc::new(BIN, args, dir.path().join(format!("m{id}.log")));
            p.start().unwrap();
            p
        })
        .collect();
    for (a, p) in addresses.iter().zip(&mut masters) {
        wait_listening(a, p, Duration::from_secs(10)).unwrap();
    }
    // The shard count came from the file, the ids from the flags: a working master of 24.
    let master = strata_client::MasterClient::new(addresses.clone());
    let config = tokio::time::timeout(Duration::from_secs(20), master.query(None))
        .await
        .expect("the master answers")
        .expect("query");
    assert_eq!(config.shards.len(), 24);
    for id in 1..=3 {
        let identity = std::fs::read_to_string(dir.path().join(format!("m{id}/IDENTITY")));
        assert!(identity.is_ok(), "m{id} has its own data directory");
    }
    for p in &mut masters {
        assert!(p.stop(Duration::from_secs(10)).is_some_and(|s| s.success()));
        // `log_format = "json"` in the file: every line of the log is one JSON object.
        let log = p.log();
        assert!(log.lines().count() >= 2, "{log}");
        for line in log.lines() {
            let event: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(event["level"].is_string(), "{line}");
        }
    }
}

#[test]
fn a_bad_config_file_is_a_one_line_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "id = 1\nshardz = 3\n").unwrap();
    let out = Command::new(BIN)
        .args(["master", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown option `shardz`"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let missing = dir.path().join("missing.toml");
    let out = Command::new(BIN)
        .args(["server", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.toml"), "{stderr}");
}
