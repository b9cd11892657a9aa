//! `strata bench`'s command line: the workloads, how long each runs, with how many clients,
//! and against what (a Strata cluster and/or etcd), checked into a [`Plan`].

use std::path::PathBuf;
use std::time::Duration;

use strata_workload::keys::Distribution;
use strata_workload::ycsb::Ycsb;

use crate::cli::{check_address, parse_seconds, Global};
use crate::error::{CliError, CliResult};

/// Seconds per phase when neither `--seconds` nor `--operations` is given.
pub const DEFAULT_SECONDS: f64 = 10.0;

/// `strata bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_long_help = "Targets: one Strata cluster (--local starts one, or a running \
    one from --masters / STRATA_MASTERS) and/or one etcd (--etcd-local starts three members of \
    the system's `etcd`, or a running one from --etcd). With both, every workload runs against \
    each in turn, with the same keys, values and operations, and a table gives the ratios.\n\n\
    For each target: an idle measurement (--idle), a load of --records keys, then one phase per \
    workload and client count. Each phase prints ops/s, latency percentiles, and the CPU the \
    target's server processes used: seconds per operation and cores (found from /proc: the \
    processes it started, or those listening on the endpoints' ports on this machine).\n\n\
    Workloads: put (overwrite), get (linearizable), scan (1-100 entries from a key), ycsba .. \
    ycsbf (YCSB's core workloads: A 50/50 read/update, B 95/5 read/update, C read, D 95/5 \
    read-latest/insert, E 95/5 scan/insert, F 50/50 read/read-modify-write), move-100mb (Strata \
    only: one shard filled with --move-mb MB and moved to another group under the client load; \
    needs 2 groups).\n\n\
    Examples:\n  \
    strata bench --local --etcd-local --workloads put,get,ycsba,ycsbb --clients 1,64\n  \
    strata bench --local --groups 2 --workloads move-100mb --clients 16\n  \
    strata bench --masters 127.0.0.1:7001 --workloads ycsbc --seconds 30 --json"
)]
pub struct BenchArgs {
    /// Workloads to run, in order, comma-separated: put, get, scan, ycsba..ycsbf, move-100mb.
    #[arg(long, value_delimiter = ',', default_value = "put,get", value_parser = parse_workload)]
    pub workloads: Vec<Workload>,
    /// Keys loaded before the workloads run (in parallel); reads, updates and scans pick among
    /// them.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub records: u64,
    /// Operations per phase (all clients together) instead of --seconds.
    #[arg(long, conflicts_with = "seconds", value_parser = clap::value_parser!(u64).range(1..))]
    pub operations: Option<u64>,
    /// Seconds per phase (decimals allowed) [default: 10].
    #[arg(long, value_parser = parse_seconds)]
    pub seconds: Option<Duration>,
    /// Concurrent clients, comma-separated: each workload runs once per count.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64",
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub clients: Vec<u64>,
    /// Bytes per value.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    pub value_size: u64,
    /// How reads, updates and scans pick keys (YCSB D's reads always pick the latest).
    #[arg(long, value_enum, default_value_t = Distribution::Zipfian)]
    pub distribution: Distribution,
    /// Start a Strata cluster for the run (3 masters and --groups groups, in a temporary
    /// directory, removed afterwards).
    #[arg(long)]
    pub local: bool,
    /// With --local: replica groups.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub groups: u64,
    /// With --local: servers per group.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=7))]
    pub replicas: u64,
    /// With --local: shards of the cluster.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub shards: u64,
    /// With --local: Paxos tick of every process, in milliseconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub tick_ms: u64,
    /// With --local: mutual TLS between every process and the clients.
    #[arg(long)]
    pub tls: bool,
    /// A running etcd's client endpoints (`http://host:port` or `host:port`), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "ENDPOINTS",
        conflicts_with = "etcd_local"
    )]
    pub etcd: Vec<String>,
    /// Start a 3-member etcd for the run (the system's `etcd`, every setting at its default).
    #[arg(long)]
    pub etcd_local: bool,
    /// The etcd binary --etcd-local runs.
    #[arg(long, default_value = "etcd", value_name = "PATH")]
    pub etcd_binary: PathBuf,
    /// Seconds to measure each target's idle CPU before its load (0: skip).
    #[arg(long, default_value = "2", value_parser = parse_idle_seconds)]
    pub idle: f64,
    /// Megabytes the move-100mb workload fills its shard with.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub move_mb: u64,
    /// Seed of the key choices.
    #[arg(long, default_value_t = 301)]
    pub seed: u64,
    /// Print one JSON document (like `-o json`); no progress bar.
    #[arg(long)]
    pub json: bool,
}

/// One workload of `--workloads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Overwrite existing keys.
    Put,
    /// Read existing keys, linearizably.
    Get,
    /// Read 1-100 entries in key order from an existing key.
    Scan,
    /// A YCSB core workload.
    Ycsb(Ycsb),
    /// Fill one shard with `--move-mb` MB and move it to another group under the load.
    Move100Mb,
}

impl Workload {
    /// The name as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::Scan => "scan",
            Workload::Ycsb(mix) => mix.name(),
            Workload::Move100Mb => "move-100mb",
        }
    }

    /// Whether only a Strata cluster can run it.
    pub fn strata_only(self) -> bool {
        self == Workload::Move100Mb
    }
}

/// Parses one workload name.
pub fn parse_workload(name: &str) -> Result<Workload, String> {
    Ok(match name.trim() {
        "put" => Workload::Put,
        "get" => Workload::Get,
        "scan" => Workload::Scan,
        "move-100mb" => Workload::Move100Mb,
        other => Ycsb::from_name(other).map(Workload::Ycsb).ok_or_else(|| {
            format!("unknown workload {other:?} (known: put, get, scan, ycsba..ycsbf, move-100mb)")
        })?,
    })
}

fn parse_idle_seconds(s: &str) -> Result<f64, String> {
    if s.parse::<f64>() == Ok(0.0) {
        return Ok(0.0);
    }
    parse_seconds(s).map(|d| d.as_secs_f64())
}

/// When a phase ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many operations, all clients together.
    Operations(u64),
}

/// Which Strata cluster to run against.
#[derive(Debug, Clone, PartialEq)]
pub enum StrataTarget {
    /// One started for the run.
    Local,
    /// A running one, by its masters.
    Masters(Vec<String>),
}

/// Which etcd to run against.
#[derive(Debug, Clone, PartialEq)]
pub enum EtcdTarget {
    /// Three members started for the run.
    Local(PathBuf),
    /// A running one, by its client URLs (`http://host:port`).
    Endpoints(Vec<String>),
}

/// The command line, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The arguments as given.
    pub args: BenchArgs,
    /// When each phase ends.
    pub stop: Stop,
    /// Client counts, in order.
    pub clients: Vec<usize>,
    /// The Strata target, if any.
    pub strata: Option<StrataTarget>,
    /// The etcd target, if any.
    pub etcd: Option<EtcdTarget>,
    /// One JSON document instead of lines and tables.
    pub json: bool,
}

impl Plan {
    /// Checks `args` (with the global options) into a plan; a usage error says what is wrong
    /// in one line.
    pub fn new(args: BenchArgs, global: &Global) -> CliResult<Plan> {
        let strata = match (args.local, global.masters.is_empty()) {
            (true, false) => {
                return Err(CliError::usage(
                    "--local starts its own cluster: drop --masters (or unset STRATA_MASTERS)",
                ))
            }
            (true, true) => Some(StrataTarget::Local),
            (false, false) => Some(StrataTarget::Masters(global.master_addresses()?)),
            (false, true) => None,
        };
        let etcd = if args.etcd_local {
            Some(EtcdTarget::Local(args.etcd_binary.clone()))
        } else if !args.etcd.is_empty() {
            let urls = args
                .etcd
                .iter()
                .map(|e| etcd_url(e))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CliError::usage(format!("--etcd: {e}")))?;
            Some(EtcdTarget::Endpoints(urls))
        } else {
            None
        };
        if strata.is_none() && etcd.is_none() {
            return Err(CliError::usage(
                "nothing to benchmark: pass --local or --masters (Strata) and/or --etcd-local or --etcd (etcd)",
            ));
        }
        if args.workloads.is_empty() {
            return Err(CliError::usage("--workloads is empty"));
        }
        if args.clients.is_empty() {
            return Err(CliError::usage("--clients is empty"));
        }
        let moves = args.workloads.contains(&Workload::Move100Mb);
        if moves && strata.is_none() {
            return Err(CliError::usage(
                "move-100mb runs against Strata only: pass --local or --masters",
            ));
        }
        if moves && strata == Some(StrataTarget::Local) && args.groups < 2 {
            return Err(CliError::usage(
                "move-100mb moves a shard between groups: add --groups 2",
            ));
        }
        let stop = match (args.operations, args.seconds) {
            (Some(n), _) => Stop::Operations(n),
            (None, Some(d)) => Stop::After(d),
            (None, None) => Stop::After(Duration::from_secs_f64(DEFAULT_SECONDS)),
        };
        Ok(Plan {
            stop,
            clients: args.clients.iter().map(|&c| c as usize).collect(),
            strata,
            etcd,
            json: args.json || global.output == crate::output::Format::Json,
            args,
        })
    }

    /// The largest client count.
    pub fn max_clients(&self) -> usize {
        self.clients.iter().copied().max().unwrap_or(1)
    }
}

/// An etcd endpoint as a URL: `host:port` gets `http://`; `https://` is refused (the
/// benchmark's etcd client speaks plaintext).
pub fn etcd_url(endpoint: &str) -> Result<String, String> {
    if endpoint.starts_with("https://") {
        return Err(format!(
            "{endpoint}: TLS to etcd is not supported, use http://"
        ));
    }
    let address = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let address = address.trim_end_matches('/');
    check_address(address)?;
    Ok(format!("http://{address}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn plan(argv: &[&str]) -> CliResult<Plan> {
        let cli = Cli::try_parse_from(["strata"].iter().chain(argv.iter()))
            .map_err(|e| CliError::usage(e.to_string()))?;
        let Command::Bench(args) = cli.command else {
            panic!("not bench: {argv:?}");
        };
        Plan::new(args, &cli.global)
    }

    fn usage_error(argv: &[&str]) -> String {
        match plan(argv) {
            Err(CliError::Usage(m)) => m,
            other => panic!("{argv:?}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let p = plan(&["bench", "--local"]).unwrap();
        assert_eq!(p.args.workloads, vec![Workload::Put, Workload::Get]);
        assert_eq!(p.clients, vec![1, 16, 64]);
        assert_eq!(p.stop, Stop::After(Duration::from_secs(10)));
        assert_eq!(p.strata, Some(StrataTarget::Local));
        assert_eq!(p.etcd, None);
        assert_eq!(p.args.distribution, Distribution::Zipfian);
        assert!(!p.json);
    }

    #[test]
    fn workloads_clients_and_targets_parse() {
        let p = plan(&[
            "bench",
            "--masters",
            "127.0.0.1:7001",
            "--etcd",
            "127.0.0.1:2379,http://127.0.0.1:2479/",
            "--workloads",
            "ycsba,scan,ycsbf,move-100mb",
            "--clients",
            "4,1",
            "--operations",
            "500",
            "--distribution",
            "latest",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(
            p.args.workloads,
            vec![
                Workload::Ycsb(Ycsb::A),
                Workload::Scan,
                Workload::Ycsb(Ycsb::F),
                Workload::Move100Mb
            ]
        );
        assert_eq!(p.clients, vec![4, 1]);
        assert_eq!(p.max_clients(), 4);
        assert_eq!(p.stop, Stop::Operations(500));
        assert_eq!(
            p.strata,
            Some(StrataTarget::Masters(vec!["127.0.0.1:7001".into()]))
        );
        assert_eq!(
            p.etcd,
            Some(EtcdTarget::Endpoints(vec![
                "http://127.0.0.1:2379".into(),
                "http://127.0.0.1:2479".into()
            ]))
        );
        assert_eq!(p.args.distribution, Distribution::Latest);
        assert!(p.json);
        let p = plan(&["bench", "--etcd-local", "--json", "--seconds", "0.5"]).unwrap();
        assert_eq!(p.strata, None);
        assert_eq!(p.etcd, Some(EtcdTarget::Local("etcd".into())));
        assert_eq!(p.stop, Stop::After(Duration::from_millis(500)));
        assert!(p.json);
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        assert!(usage_error(&["bench"]).contains("nothing to benchmark"));
        assert!(usage_error(&["bench", "--local", "--workloads", "ycsbz"])
            .contains("unknown workload \"ycsbz\""));
        assert!(usage_error(&["bench", "--local", "--clients", "0"]).contains("--clients"));
        assert!(
            usage_error(&["bench", "--local", "--masters", "127.0.0.1:1"])
                .contains("drop --masters")
        );
        assert!(
            usage_error(&["bench", "--local", "--seconds", "1", "--operations", "5"])
                .contains("--operations")
        );
        assert!(
            usage_error(&["bench", "--etcd-local", "--etcd", "127.0.0.1:1"]).contains("--etcd")
        );
        assert!(usage_error(&["bench", "--etcd", "https://127.0.0.1:1"]).contains("TLS"));
        assert!(usage_error(&["bench", "--etcd", "nohost"]).contains("host:port"));
        assert!(
            usage_error(&["bench", "--etcd-local", "--workloads", "move-100mb"])
                .contains("Strata only")
        );
        assert!(
            usage_error(&["bench", "--local", "--workloads", "get,move-100mb"])
                .contains("--groups 2")
        );
        assert!(usage_error(&["bench", "--local", "--seconds", "0"]).contains("seconds"));
        assert!(usage_error(&["bench", "--local", "--records", "0"]).contains("--records"));
    }

    #[test]
    fn workload_names_round_trip() {
        for name in [
            "put",
            "get",
            "scan",
            "ycsba",
            "ycsbb",
            "ycsbc",
            "ycsbd",
            "ycsbe",
            "ycsbf",
            "move-100mb",
        ] {
            assert_eq!(parse_workload(name).unwrap().name(), name);
        }
    }
}
