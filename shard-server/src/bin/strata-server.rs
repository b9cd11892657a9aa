//! `strata-server`: one replica of a shard-server group. See `strata_server::run`.

use clap::Parser;
use strata_server::run::{run_server, ServerArgs};

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = ServerArgs::parse();
    match run_server(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "strata-server failed");
            eprintln!("strata-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
