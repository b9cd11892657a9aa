//! `strata-cluster`: every Strata server binary behind one executable, so that the process
//! tests of this package can start them from a clean checkout
//! (`env!("CARGO_BIN_EXE_strata-cluster")`):
//!
//! ```text
//! strata-cluster master <strata-master arguments>
//! strata-cluster server <strata-server arguments>
//! ```

use clap::Parser;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args_os().skip(1);
    match args.next().and_then(|a| a.into_string().ok()).as_deref() {
        Some("master") => {
            let args = strata_shardmaster::MasterArgs::parse_from(
                std::iter::once("strata-master".into()).chain(args),
            );
            strata_shardmaster::run_master(args)?;
            Ok(())
        }
        Some("server") => {
            let args = strata_server::run::ServerArgs::parse_from(
                std::iter::once("strata-server".into()).chain(args),
            );
            strata_server::run::run_server(args)?;
            Ok(())
        }
        other => anyhow::bail!("usage: strata-cluster master|server [ARGS...] (got {other:?})"),
    }
}
