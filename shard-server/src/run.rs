//! One shard-server replica process: the `strata-server` command line and what it runs.
//!
//! The data directory holds:
//!
//! ```text
//! <data-dir>/IDENTITY   the group and replica id (a directory of another replica is refused)
//! <data-dir>/paxos/     the Paxos log and acceptor state (its own engine, synced writes)
//! <data-dir>/state/     the state machine's engine: shard data, dedup tables, metadata
//! ```
//! One tonic server on `--listen` serves `ShardKv`, `ShardMigration`, `ShardGroup`,
//! `PaxosPeer` and `NodeStatus`. SIGTERM or SIGINT shuts the replica down gracefully; SIGKILL
//! loses nothing acknowledged (a restart recovers from both engines and rejoins the group).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use strata_node::{NodeTuning, ReplicaArgs, ReplicaHost};
use strata_rpc::limits;

use crate::chaos::{Chaos, Chaotic};
use crate::machine::{KvMachine, MachineOptions};
use crate::service::{GroupService, KvService, MigrationService, Replica};
use crate::store::DbStore;

/// Command line of a shard-server replica.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "strata-server",
    about = "One replica of a Strata shard-server group",
    version
)]
pub struct ServerArgs {
    /// The replica group's id (as joined at the shard master; not 0).
    #[arg(long)]
    pub gid: u64,
    /// What every replica takes: id, peers, listen, data directory, tick, timeouts.
    #[command(flatten)]
    pub replica: ReplicaArgs,
    /// The shard master's replicas, `host:port`, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub masters: Vec<String>,
    /// Client sessions idle longer than this (log time) expire. Must be the same on every
    /// replica of the group (it decides what the state machine does).
    #[arg(long, default_value_t = MachineOptions::default().session_timeout_ms)]
    pub session_timeout_ms: u64,
    /// Memtable size of the data engine, in MiB (two may be in memory at once).
    #[arg(long, default_value_t = 8)]
    pub write_buffer_mb: usize,
    /// Block cache of the data engine, in MiB.
    #[arg(long, default_value_t = 16)]
    pub block_cache_mb: usize,
    /// Keep at most about this many slots of Paxos log behind the durable state (a replica
    /// further behind catches up by snapshot)...
    #[arg(long, default_value_t = 4096)]
    pub log_compaction_slack: u64,
    /// ...and at most about this many MiB of commands (the log is held in memory).
    #[arg(long, default_value_t = 8)]
    pub log_compaction_mb: usize,
    /// For tests only: simulate an unreliable network by dropping about this percentage of
    /// client and migration requests, as many replies, and delaying as many more.
    #[arg(long, default_value_t = 0)]
    pub chaos_percent: u32,
}

pub use strata_node::RunError;

/// Runs a replica until SIGTERM or SIGINT, on a runtime of its own.
pub fn run_server(args: ServerArgs) -> Result<(), RunError> {
    strata_node::host::run_process(|shutdown| serve(args, shutdown))
}

/// Runs a replica on the current (multi-threaded) tokio runtime until `shutdown` resolves.
pub async fn serve(args: ServerArgs, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    if args.gid == 0 {
        return Err(RunError::Args(
            "--gid 0 is reserved (unassigned shards)".into(),
        ));
    }
    let mut host = ReplicaHost::open(args.gid, &args.replica).await?;
    let data_dir = &args.replica.data_dir;
    let engine_options = strata::Options {
        write_buffer_size: args.write_buffer_mb.max(1) << 20,
        block_cache_bytes: args.block_cache_mb << 20,
        ..strata::Options::default()
    };
    let store = DbStore::open(&data_dir.join("state"), engine_options)
        .map_err(|e| host.data_dir_error(e.to_string()))?;
    let store = Arc::new(store);
    let data = store.clone();
    host.add_engine("data", Arc::new(move || data.stats()));
    let options = MachineOptions {
        session_timeout_ms: args.session_timeout_ms,
        ..MachineOptions::default()
    };
    let machine = KvMachine::open(args.gid, store.clone(), options)
        .map_err(|e| host.data_dir_error(e.to_string()))?;
    let view = machine.view();
    let applied = machine.applied_handle();
    let reader = machine.reader();

    let mut paxos = host.paxos_config();
    // At most 32 slots in flight (with 1 MiB batches, or one large command each); promises
    // and catch-up messages are bounded in bytes too (see the paxos crate).
    paxos.max_inflight_slots = 32;
    let tuning = NodeTuning {
        // The state machine syncs every few hundred commands: keep some log for followers
        // that lag a little, compact the rest.
        compaction_slack: args.log_compaction_slack,
        compaction_bytes: args.log_compaction_mb << 20,
        queue_capacity: 20_000,
    };
    let node = host.start_node(paxos, tuning, machine)?;
    let metrics = crate::metrics::ShardMetrics::default();
    metrics.register(host.registry());
    let (status_view, status_metrics) = (view.clone(), metrics.clone());
    host.report_status(move || {
        let (config_num, shards_held) = {
            let view = status_view.read();
            let held: Vec<u32> = (0u32..)
                .zip(&view.shards)
                .filter(|(_, s)| s.is_served())
                .map(|(shard, _)| shard)
                .collect();
            (view.config.num, held)
        };
        strata_node::ServiceStatus {
            config_num: (config_num > 0).then_some(config_num),
            shards: status_metrics.figures(&shards_held),
            shards_held,
            last_error: None,
        }
    });
    tracing::info!(gid = args.gid, id = host.id, listen = %host.listen, data_dir = %data_dir.display(), "shard server started");

    // Client requests and shard migration (not the Paxos peers) go through the simulated
    // unreliable network, when a test asks for one.
    let chaos = (args.chaos_percent > 0).then(|| Arc::new(Chaos::new(args.chaos_percent)));
    let replica = Replica {
        gid: args.gid,
        node: node.clone(),
        view,
        applied,
        reader,
        store,
        peers: Arc::new(host.peers.clone()),
        op_timeout: Duration::from_millis(args.replica.op_timeout_ms),
        chaos: chaos.clone(),
        in_flight: Default::default(),
        metrics: metrics.clone(),
        refusals: host.refusals(),
    };
    let worker = tokio::spawn(crate::worker::run(
        replica.clone(),
        args.masters.clone(),
        host.security(),
    ));
    let figures = tokio::spawn(crate::shard_figures::run(
        replica.store.clone(),
        replica.view.clone(),
        metrics,
    ));
    let services = tonic::service::Routes::new(Chaotic::new(
        limits::kv_server(KvService(replica.clone())),
        chaos.clone(),
    ))
    .add_service(Chaotic::new(
        limits::migration_server(MigrationService(replica.clone())),
        chaos,
    ))
    .add_service(limits::shard_group_server(GroupService(replica)));
    let served = host.serve(node, services, shutdown).await;
    worker.abort();
    figures.abort();
    tracing::info!(gid = args.gid, id = args.replica.id, "shard server stopped");
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn parses_the_command_line() {
        let args = ServerArgs::try_parse_from([
            "strata-server",
            "--gid",
            "7",
            "--id",
            "2",
            "--peers",
            "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003",
            "--masters",
            "127.0.0.1:6001,127.0.0.1:6002",
            "--data-dir",
            "/tmp/x",
        ])
        .unwrap();
        assert_eq!(args.replica.peers.len(), 3);
        assert_eq!(args.masters.len(), 2);
        assert_eq!(args.gid, 7);
        assert!(ServerArgs::try_parse_from(["strata-server", "--gid", "1"]).is_err());
    }
}
