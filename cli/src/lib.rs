//! `strata`, Strata's command-line tool, as a library: the command tree ([`cli`]), the
//! replica processes ([`replica`]), the local-cluster launcher ([`launch`], which the test
//! harness reuses), and how commands print ([`output`]) and fail ([`error`]).

#![warn(missing_docs)]

pub mod cli;
pub mod demo;
pub mod error;
pub mod launch;
pub mod output;
pub mod replica;

use crate::cli::{Command, Global};
use crate::error::{CliError, CliResult};

/// Runs a client command (every command but `master` and `server`, which `main` runs before
/// any runtime exists).
pub async fn run(global: Global, command: Command) -> CliResult {
    let _ = &global;
    match command {
        Command::Master(_) | Command::Server(_) => Err(CliError::usage(
            "`strata master` and `strata server` run as processes of their own",
        )),
        Command::Demo(args) => crate::demo::run(args).await,
    }
}
