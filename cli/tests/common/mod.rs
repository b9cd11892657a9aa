//! Helpers the CLI's process tests share.
#![allow(dead_code)] // each test file uses its own subset

use std::process::Command;

/// The `strata` binary under test.
pub const STRATA: &str = env!("CARGO_BIN_EXE_strata");

/// Runs `strata --masters MASTERS ARGS...`, which must succeed; its stdout.
pub fn strata(masters: &str, args: &[&str]) -> String {
    let out = Command::new(STRATA)
        .args(["--masters", masters])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
