//! `strata`, Strata's command-line tool, as a library: the command tree ([`cli`]), the
//! replica processes ([`replica`]), the local-cluster launcher ([`launch`], which the test
//! harness reuses), and how commands print ([`output`]) and fail ([`error`]).
//!
//! The client commands: data ([`data`]: get, put, del, append, cas, scan; keys and values in
//! the [`encoding`] chosen), admin ([`admin`]: groups, shards, configurations), and the
//! cluster's state ([`status`], [`health`]); what they share to reach a cluster is in
//! [`cluster`]. [`demo`] starts a local cluster and shows it working (the README's main job);
//! [`bench`](mod@bench) measures a cluster, side by side with etcd.

#![warn(missing_docs)]

pub mod admin;
pub mod bench;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod data;
pub mod demo;
pub mod encoding;
pub mod error;
pub mod health;
pub mod launch;
pub mod membership;
pub mod output;
pub mod replica;
pub mod status;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, Global};
use crate::error::{CliError, CliResult};

/// Runs a client command (every command but `master` and `server`, which `main` runs before
/// any runtime exists).
pub async fn run(global: Global, command: Command) -> CliResult {
    let g = &global;
    match command {
        Command::Master(_) | Command::Server(_) => Err(CliError::usage(
            "`strata master` and `strata server` run as processes of their own",
        )),
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Bench(args) => crate::bench::run(g.clone(), args).await,
        Command::Get(args) => data::get(g, args).await,
        Command::Put(args) => data::put(g, args).await,
        Command::Del(args) => data::del(g, args).await,
        Command::Append(args) => data::append(g, args).await,
        Command::Cas(args) => data::cas(g, args).await,
        Command::Scan(args) => data::scan(g, args).await,
        Command::Group(c) => admin::group(g, c).await,
        Command::Shard(c) => admin::shard(g, c).await,
        Command::Config(c) => admin::config(g, c).await,
        Command::Status(args) => status::status(g, args).await,
        Command::Health(args) => health::health(g, args).await,
        Command::Certs(args) => crate::certs::run(args),
        Command::MasterAdmin(c) => membership::master(g, c).await,
    }
}

/// The `strata` program: parses the command line, runs the command, and returns the exit code
/// (0 success, 1 failure, 2 bad usage). The test harness's `strata-cluster` binary is this
/// same program.
pub fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let command = match cli.command {
        // `strata master add-replica ...`: a client of the master group, not a replica.
        Command::Master(m)
            if (m.args.first())
                .is_some_and(|a| membership::MASTER_ADMIN_WORDS.iter().any(|w| a == w)) =>
        {
            let words = std::iter::once("strata master".into()).chain(m.args);
            let admin = crate::cli::MasterAdminCli::parse_from(words);
            // Options given before `master` count too (after it, they win).
            let (before, mut after) = (cli.global, admin.global);
            if after.masters.is_empty() {
                after.masters = before.masters;
            }
            if after.cacert.is_none() && after.cert.is_none() && after.key.is_none() {
                (after.cacert, after.cert, after.key) = (before.cacert, before.cert, before.key);
            }
            if after.output == crate::output::Format::Table {
                after.output = before.output;
            }
            cli.global = after;
            Command::MasterAdmin(admin.command)
        }
        // Replica processes set up their own runtime and logging.
        Command::Master(m) => return crate::replica::run_master(m.args),
        Command::Server(s) => return crate::replica::run_server(s.args),
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
    match runtime.block_on(run(cli.global, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata: {e}");
            e.exit_code()
        }
    }
}
