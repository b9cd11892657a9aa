//! `strata`: see `strata --help` and the crate documentation of `strata_cli`.

use std::process::ExitCode;

use clap::Parser;
use strata_cli::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Master(m) => strata_cli::replica::run_master(m.args),
        Command::Server(s) => strata_cli::replica::run_server(s.args),
    }
}
