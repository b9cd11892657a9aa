//! Helpers shared by the crash and power-loss tests: child writers killed with SIGKILL, and the
//! checks that a recovered database holds a prefix of what was written.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{apply, Batch, Model};

/// The length of the prefix of `history` whose state (applied to `base`) equals `found`,
/// searching from `durable` (the synced prefix, which must survive) upwards.
pub fn matching_prefix(
    base: &Model,
    history: &[Batch],
    durable: usize,
    found: &Model,
) -> Option<usize> {
    let mut model = base.clone();
    for b in &history[..durable] {
        apply(&mut model, b);
    }
    if model == *found {
        return Some(durable);
    }
    for (i, b) in history.iter().enumerate().skip(durable) {
        apply(&mut model, b);
        if model == *found {
            return Some(i + 1);
        }
    }
    None
}

/// Re-runs this test binary's test `test_name` with `env` set to `db` (the test then acts as
/// the child writer), SIGKILLs it after `after`, and returns the lines it printed.
pub fn run_child_and_kill(test_name: &str, env: &str, db: &Path, after: Duration) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    std::thread::sleep(after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

/// The last `ack N` line's N.
pub fn last_ack(lines: &[String]) -> Option<u64> {
    lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("ack ")?.trim().parse().ok())
}
