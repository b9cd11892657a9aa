//! One shard-master replica process: the `strata-master` command line and what it runs.
//!
//! The data directory holds:
//!
//! ```text
//! <data-dir>/IDENTITY   the Paxos group and replica id (a directory of another replica is refused)
//! <data-dir>/SHARDS     the cluster's shard count N, written on first boot, then fixed
//! <data-dir>/paxos/     the Paxos log and acceptor state (its own engine, synced writes)
//! ```
//!
//! The master's state lives in memory and is rebuilt on start by replaying the Paxos log (see
//! [`machine`](crate::machine)). One tonic server on `--listen` serves `ShardMaster`,
//! `PaxosPeer` and `NodeStatus`. SIGTERM or SIGINT shuts the replica down gracefully.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strata_node::{NodeTuning, ReplicaArgs, ReplicaHost};
use strata_rpc::limits;

use crate::config::{validate_num_shards, DEFAULT_NUM_SHARDS};
use crate::machine::MasterMachine;
use crate::server::MasterService;

/// The Paxos group id of the shard master (shard-server groups use their gids, which are never
/// 0, so a misdirected batch is recognised).
pub const MASTER_GROUP: u64 = 0;

/// Command line of a shard-master replica.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "strata-master",
    about = "One replica of Strata's shard master",
    version
)]
pub struct MasterArgs {
    /// What every replica takes: id, peers, listen, data directory, tick, timeouts.
    #[command(flatten)]
    pub replica: ReplicaArgs,
    /// Number of shards of the cluster, used on first boot only (default 64); a restart with
    /// another value is refused.
    #[arg(long)]
    pub shards: Option<usize>,
}

pub use strata_node::RunError;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}

/// Reads `<dir>/SHARDS`, or writes it on first boot; refuses a `requested` count that differs
/// from the stored one.
pub fn shard_count(dir: &Path, requested: Option<usize>) -> Result<usize, RunError> {
    let path = dir.join("SHARDS");
    let data_dir_error = |message: String| RunError::DataDir {
        dir: dir.to_owned(),
        message,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stored: usize = text.trim().parse().map_err(|_| {
                data_dir_error(format!("SHARDS holds {:?}, not a shard count", text.trim()))
            })?;
            match requested {
                Some(n) if n != stored => Err(data_dir_error(format!(
                    "this cluster was created with --shards {stored}; the shard count cannot change (restarted with --shards {n})"
                ))),
                _ => Ok(stored),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let n = requested.unwrap_or(DEFAULT_NUM_SHARDS);
            validate_num_shards(n).map_err(|e| RunError::Args(e.to_string()))?;
            // Written whole then renamed, so a crash never leaves a half-written count.
            let tmp = dir.join("SHARDS.tmp");
            std::fs::write(&tmp, format!("{n}\n")).map_err(io("writing SHARDS"))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io("syncing SHARDS"))?;
            std::fs::rename(&tmp, &path).map_err(io("renaming SHARDS"))?;
            std::fs::File::open(dir)
                .and_then(|f| f.sync_all())
                .map_err(io("syncing the data directory"))?;
            Ok(n)
        }
        Err(e) => Err(io("reading SHARDS")(e)),
    }
}

/// Runs a replica until SIGTERM or SIGINT, on a runtime of its own.
pub fn run_master(args: MasterArgs) -> Result<(), RunError> {
    strata_node::host::run_process(|shutdown| serve(args, shutdown))
}

pub use strata_node::host::shutdown_signal;

/// Runs a replica on the current tokio runtime until `shutdown` resolves.
pub async fn serve(args: MasterArgs, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let mut host = ReplicaHost::open(MASTER_GROUP, &args.replica).await?;
    let data_dir = &args.replica.data_dir;
    let num_shards = shard_count(data_dir, args.shards)?;
    let machine = MasterMachine::open(&data_dir.join("state"), num_shards).map_err(|message| {
        RunError::DataDir {
            dir: data_dir.join("state"),
            message,
        }
    })?;
    let state = machine.shared();
    let tuning = NodeTuning {
        // The state is on disk (synced every few commands): keep a little log for followers
        // that lag, compact the rest.
        compaction_slack: 1024,
        compaction_bytes: 64 << 20,
        queue_capacity: 10_000,
    };
    let paxos = host.paxos_config();
    let node = host.start_node(paxos, tuning, machine)?;
    let status_state = state.clone();
    host.report_status(move || strata_node::ServiceStatus {
        config_num: Some(status_state.read().latest().num),
        ..Default::default()
    });
    (host.registry()).register_collector(Box::new(crate::metrics::MasterCollector(state.clone())));
    let (page_state, masters, id) = (state.clone(), host.peers.clone(), host.id);
    let page_security = host.security();
    let history = Arc::new(crate::status_page::OpsHistory::default());
    host.http_routes(axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let (state, masters) = (page_state.clone(), masters.clone());
            let security = page_security.clone();
            let history = history.clone();
            async move {
                let view =
                    crate::status_page::gather(id, &state, &masters, &history, &security).await;
                axum::response::Html(crate::status_page::render(&view))
            }
        }),
    ));
    tracing::info!(
        id = host.id,
        listen = %host.listen,
        shards = num_shards,
        data_dir = %data_dir.display(),
        "shard master replica started"
    );
    let service = MasterService::new(
        node.clone(),
        state,
        host.peers.clone(),
        Duration::from_millis(args.replica.op_timeout_ms),
        host.security(),
    );
    let services = tonic::service::Routes::new(limits::master_server(service));
    let served = host.serve(node, services, shutdown).await;
    tracing::info!(id = args.replica.id, "shard master replica stopped");
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn parses_peers() {
        let args = MasterArgs::try_parse_from([
            "strata-master",
            "--id",
            "2",
            "--peers",
            "1=127.0.0.1:7001,2=127.0.0.1:7002",
            "--peers",
            "3=127.0.0.1:7003",
            "--data-dir",
            "/tmp/x",
        ])
        .unwrap();
        assert_eq!(args.replica.peers.len(), 3);
        assert_eq!(args.replica.peers[2], (3, "127.0.0.1:7003".to_string()));
        assert_eq!(args.replica.tick_ms, 20);
        assert!(MasterArgs::try_parse_from([
            "strata-master",
            "--id",
            "1",
            "--peers",
            "1",
            "--data-dir",
            "d"
        ])
        .is_err());
    }

    #[test]
    fn shard_count_is_fixed_at_first_boot() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(shard_count(dir.path(), Some(10)).unwrap(), 10);
        assert_eq!(shard_count(dir.path(), None).unwrap(), 10);
        assert_eq!(shard_count(dir.path(), Some(10)).unwrap(), 10);
        let e = shard_count(dir.path(), Some(12)).unwrap_err().to_string();
        assert!(
            e.contains("--shards 10") && e.contains("--shards 12"),
            "{e}"
        );
        let fresh = tempfile::tempdir().unwrap();
        assert_eq!(shard_count(fresh.path(), None).unwrap(), DEFAULT_NUM_SHARDS);
        assert!(shard_count(tempfile::tempdir().unwrap().path(), Some(0)).is_err());
    }
}
