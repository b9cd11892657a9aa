//! `strata`: see `strata --help` and the crate documentation of `strata_cli`.

use std::process::ExitCode;

use clap::Parser;
use strata_cli::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        // Replica processes set up their own runtime and logging.
        Command::Master(m) => return strata_cli::replica::run_master(m.args),
        Command::Server(s) => return strata_cli::replica::run_server(s.args),
        other => other,
    };
    // Everything else is a client of the cluster: quiet unless RUST_LOG asks.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("strata: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(strata_cli::run(cli.global, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata: {e}");
            e.exit_code()
        }
    }
}
