//! One child process of a test cluster: the `strata` launcher's [`Proc`], with the harness's
//! log level (`STRATA_TEST_LOG`, default `info`).

use std::ffi::OsString;
use std::path::PathBuf;

pub use strata_cli::launch::Proc;

/// A process of `program` with `args`, logging to `log` at `STRATA_TEST_LOG`'s level; not
/// started yet.
pub fn test_proc(
    program: impl Into<PathBuf>,
    args: Vec<OsString>,
    log: impl Into<PathBuf>,
) -> Proc {
    Proc::new(program, args, log).env(
        "RUST_LOG",
        std::env::var("STRATA_TEST_LOG").unwrap_or_else(|_| "info".into()),
    )
}
