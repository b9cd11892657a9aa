//! `strata`, Strata's command-line tool, as a library: the command tree ([`cli`]), the
//! replica processes ([`replica`]), the local-cluster launcher ([`launch`], which the test
//! harness reuses), and how commands print ([`output`]) and fail ([`error`]).
//!
//! The client commands: data ([`data`]: get, put, del, append, cas, scan; keys and values in
//! the [`encoding`] chosen), admin ([`admin`]: groups, shards, configurations), and the
//! cluster's state ([`status`], [`health`]); what they share to reach a cluster is in
//! [`cluster`].

#![warn(missing_docs)]

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod data;
pub mod encoding;
pub mod error;
pub mod health;
pub mod launch;
pub mod output;
pub mod replica;
pub mod status;

use crate::cli::{Command, Global};
use crate::error::{CliError, CliResult};

/// Runs a client command (every command but `master` and `server`, which `main` runs before
/// any runtime exists).
pub async fn run(global: Global, command: Command) -> CliResult {
    let g = &global;
    match command {
        Command::Master(_) | Command::Server(_) => Err(CliError::usage(
            "`strata master` and `strata server` run as processes of their own",
        )),
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
    }
}
