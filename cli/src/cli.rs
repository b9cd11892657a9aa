//! The `strata` command line: the options every command shares and the command tree. Each
//! command's own arguments live beside its code (`replica`, `demo`, `data`, `admin`,
//! `status`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use strata_rpc::tls::{Security, TlsPaths};

use crate::error::{CliError, CliResult};
use crate::output::Format;

/// Strata: a sharded, replicated key-value store on an LSM-tree engine.
#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Strata: a sharded, replicated key-value store",
    long_about = "Strata: a sharded, replicated key-value store on an LSM-tree engine.\n\n\
        Start a local cluster and try it:\n\n  \
        strata demo                      # a real cluster, loaded, moved, killed, verified\n  \
        strata demo --keep               # ... and kept running: prints STRATA_MASTERS\n  \
        strata put greeting hello\n  \
        strata get greeting\n  \
        strata status\n\n\
        Measure it, beside etcd:\n\n  \
        strata bench --local --etcd-local --workloads put,get,ycsba --clients 1,64",
    propagate_version = true
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command that talks to a cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// The shard master's replicas, `host:port`, comma-separated.
    #[arg(long, global = true, env = "STRATA_MASTERS", value_delimiter = ',')]
    pub masters: Vec<String>,
    /// Output format of commands that print data.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Give up on the cluster after this many seconds (decimals allowed).
    #[arg(long, global = true, default_value = "5", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// The cluster's CA certificate (PEM), to talk to a cluster that runs mutual TLS; with
    /// --cert and --key.
    #[arg(
        long = "cacert",
        id = "tls_cacert",
        global = true,
        env = "STRATA_TLS_CA",
        value_name = "FILE"
    )]
    pub cacert: Option<PathBuf>,
    /// This client's certificate (PEM): a `strata://client/...` or `strata://admin/...`
    /// identity (admin commands need an admin one).
    #[arg(
        long = "cert",
        id = "tls_cert",
        global = true,
        env = "STRATA_TLS_CERT",
        value_name = "FILE"
    )]
    pub cert: Option<PathBuf>,
    /// This client's private key (PEM).
    #[arg(
        long = "key",
        id = "tls_key",
        global = true,
        env = "STRATA_TLS_KEY",
        value_name = "FILE"
    )]
    pub key: Option<PathBuf>,
}

impl Global {
    /// The master addresses, checked: at least one, each `host:port`.
    pub fn master_addresses(&self) -> CliResult<Vec<String>> {
        if self.masters.is_empty() {
            return Err(CliError::usage(
                "no cluster given: pass --masters HOST:PORT,... or set STRATA_MASTERS",
            ));
        }
        for m in &self.masters {
            check_address(m).map_err(|e| CliError::usage(format!("--masters: {e}")))?;
        }
        Ok(self.masters.clone())
    }

    /// How to connect: mutual TLS with --cacert/--cert/--key (all three, or none), else
    /// plaintext.
    pub fn security(&self) -> CliResult<Security> {
        let paths = match (&self.cacert, &self.cert, &self.key) {
            (None, None, None) => None,
            (Some(ca), Some(cert), Some(key)) => Some(TlsPaths {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => {
                return Err(CliError::usage(
                    "TLS needs all of --cacert, --cert and --key (or STRATA_TLS_CA, STRATA_TLS_CERT, STRATA_TLS_KEY)",
                ))
            }
        };
        Security::from_paths(paths).map_err(|e| CliError::usage(format!("TLS: {e}")))
    }
}

/// Checks that `address` is `host:port` with a port number.
pub fn check_address(address: &str) -> Result<(), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{address:?} is not host:port"))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("{address:?} is not host:port"));
    }
    Ok(())
}

/// Parses a number of seconds (decimals allowed) above 0 and up to a day.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let seconds: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!("{s} is not between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one replica of the shard master.
    Master(crate::replica::MasterCommand),
    /// Run one replica of a shard-server group.
    Server(crate::replica::ServerCommand),
    /// Start a local cluster, load it, move shards, kill a leader, verify (`--keep`: keep it).
    Demo(crate::demo::DemoArgs),
    /// YCSB workloads against a cluster, side by side with etcd: ops/s, latency, CPU per op.
    Bench(crate::bench::BenchArgs),
    /// Print a key's value.
    Get(crate::data::GetArgs),
    /// Set a key's value.
    Put(crate::data::PutArgs),
    /// Delete a key.
    Del(crate::data::DelArgs),
    /// Append to a key's value.
    Append(crate::data::AppendArgs),
    /// Compare-and-swap a key's value.
    Cas(crate::data::CasArgs),
    /// Print keys (and values) in key order, across all shards.
    Scan(crate::data::ScanArgs),
    /// Add, remove and list replica groups.
    #[command(subcommand)]
    Group(crate::admin::GroupCommand),
    /// Move shards and see where they are.
    #[command(subcommand)]
    Shard(crate::admin::ShardCommand),
    /// Show the shard master's configurations.
    #[command(subcommand)]
    Config(crate::admin::ConfigCommand),
    /// One row per process of the cluster: reachable, role, indexes, shards, data size.
    Status(crate::status::StatusArgs),
    /// Exit 0 if every group has a leader and a reachable quorum, 1 if not.
    Health(crate::health::HealthArgs),
    /// Make a cluster's CA and certificates (mutual TLS).
    Certs(crate::certs::CertsArgs),
    /// `strata master add-replica|remove-replica|replace-replica|members` (what `main`
    /// makes of `strata master` followed by one of those words).
    #[command(skip)]
    MasterAdmin(crate::membership::MasterAdmin),
}

/// `strata master` followed by an admin word, parsed as a command of its own.
#[derive(Debug, Parser)]
#[command(name = "strata master")]
pub struct MasterAdminCli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: crate::membership::MasterAdmin,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::Cli;

    /// clap's own consistency checks over every subcommand: no two arguments of a command
    /// (global options included) share an id or a flag — such a clash only panics when the
    /// command is run.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every subcommand parses into its arguments with the global options beside it (a
    /// subcommand option that shares a global option's name but not its type panics here,
    /// which `debug_assert` does not see).
    #[test]
    fn every_subcommand_parses() {
        let lines: &[&[&str]] = &[
            &[
                "certs",
                "init",
                "--dir",
                "d",
                "--master-replicas",
                "5",
                "--groups",
                "1,2",
            ],
            &["certs", "add-node", "--dir", "d", "--gid", "1", "--id", "2"],
            &[
                "certs",
                "add-client",
                "--dir",
                "d",
                "--name",
                "n",
                "--admin",
            ],
            &["get", "k"],
            &[
                "put", "k", "v", "--cacert", "a", "--cert", "b", "--key", "c",
            ],
            &["del", "k"],
            &["append", "k", "v"],
            &["cas", "k", "--expect", "a", "--new", "b"],
            &["scan", "--prefix", "p"],
            &["group", "list"],
            &["group", "join", "1", "--servers", "127.0.0.1:1"],
            &["shard", "move", "1", "2"],
            &["config", "show"],
            &["status"],
            &["health"],
            &["demo", "--keep", "--insecure"],
            &[
                "bench",
                "--local",
                "--groups",
                "2",
                "--workloads",
                "put,ycsbe",
            ],
            &[
                "bench",
                "--etcd",
                "127.0.0.1:2379",
                "--clients",
                "1,64",
                "--seconds",
                "1.5",
                "--json",
                "--timeout",
                "9",
                "--cacert",
                "a",
                "--cert",
                "b",
                "--key",
                "c",
            ],
            &[
                "bench",
                "--etcd-local",
                "--etcd-binary",
                "/usr/bin/etcd",
                "--operations",
                "100",
                "--distribution",
                "uniform",
                "--idle",
                "0",
                "-o",
                "json",
            ],
            &["group", "add-replica", "1", "4=127.0.0.1:4"],
            &["group", "remove-replica", "1", "3"],
            &["group", "replace-replica", "1", "3", "4=127.0.0.1:4"],
        ];
        for line in lines {
            let argv = ["strata", "--masters", "127.0.0.1:1"]
                .iter()
                .chain(line.iter());
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("{line:?}: {e}");
            }
        }
        let admin: &[&[&str]] = &[
            &["add-replica", "4=127.0.0.1:4"],
            &["remove-replica", "3", "-o", "json"],
            &[
                "replace-replica",
                "3",
                "4=127.0.0.1:4",
                "--masters",
                "127.0.0.1:1",
            ],
            &["members"],
        ];
        for line in admin {
            assert!(crate::membership::MASTER_ADMIN_WORDS.contains(&line[0]));
            let argv = ["strata master"].iter().chain(line.iter());
            if let Err(e) = super::MasterAdminCli::try_parse_from(argv) {
                panic!("master {line:?}: {e}");
            }
        }
    }
}
