//! `strata-master`: one replica of the shard master. See `strata_shardmaster::run`.

use clap::Parser;
use strata_shardmaster::MasterArgs;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = MasterArgs::parse();
    strata_shardmaster::run_master(args)?;
    Ok(())
}
