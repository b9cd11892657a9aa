//! How a `strata` command fails: one line for people, and the process's exit code.
//!
//! Exit codes: 0 success, 1 an operation failed ([`CliError`]), 2 bad usage (clap's own
//! errors, and [`CliError::Usage`] for what clap cannot check, such as malformed hex).

use std::process::ExitCode;

/// A failed command. Its `Display` is the one line printed after `strata: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is well-formed for clap but wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The operation failed (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// An operation failure with this message.
    pub fn failed(message: impl std::fmt::Display) -> CliError {
        CliError::Failed(message.to_string())
    }

    /// A usage error with this message.
    pub fn usage(message: impl std::fmt::Display) -> CliError {
        CliError::Usage(message.to_string())
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Failed(_) => ExitCode::from(1),
        }
    }
}

/// A command's result.
pub type CliResult<T = ()> = Result<T, CliError>;

/// Adds what was being done to an error's message: `.context("reading VALUE_FILE")`.
pub trait Context<T> {
    /// Fails with `what: error`.
    fn context(self, what: impl std::fmt::Display) -> CliResult<T>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: impl std::fmt::Display) -> CliResult<T> {
        self.map_err(|e| CliError::Failed(format!("{what}: {e}")))
    }
}
