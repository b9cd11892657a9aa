//! The shard master's configuration state machine and rebalancer: pure and deterministic.
//!
//! The shard master is the cluster's source of truth for which replica group serves which
//! shard. Its state, [`MasterState`], is an append-only list of numbered [`Config`]s plus a
//! per-client session table; it changes only through [`MasterState::apply`], which the node
//! runtime calls with each operation chosen by Paxos, in log order, on every replica. Nothing
//! here does I/O or reads a clock, and nothing iterates a hash map, so replicas that apply the
//! same log hold identical states.
//!
//! - [`config`]: [`Config`] (`num`, `shards[N]` of gids, `groups`), gid 0 = unassigned: the
//!   type is `strata_rpc::Config`, shared with servers and clients; the shard count rules and
//!   config 0 are here.
//! - [`op`]: the operations ([`Op`]: Join, Leave, Move, Query), [`Reply`] and [`OpError`].
//! - [`rebalance`](mod@rebalance): the balanced, minimal-move, deterministic assignment after Join/Leave.
//! - [`state`]: [`MasterState`], applying operations exactly once per `(client, seq)`.
//! - [`codec`]: the bytes of an [`Op`] (replicated through the log) and of a [`Config`].
//! - [`snapshot`]: a [`MasterState`] as a lazy stream of chunks, and restoring from one.
//! - [`machine`]: the state as a `strata_node::StateMachine` fed by the Paxos log.
//! - [`wire`]: conversions to and from the `strata.v1` messages (client ids).
//! - [`server`]: the `ShardMaster` gRPC service of one replica.
//! - [`run`]: the `strata-master` process (command line, data directory, serving).
//!
//! How a request flows: a `Join` reaches [`server`], which checks its shape and proposes it
//! as [`encode_command`] bytes on the replica's `strata_node::Node`; once Paxos chose it, every
//! replica's [`machine`] applies it to its [`MasterState`] (exactly once per client and seq)
//! and stores the result, and the proposing replica hands the operation's result back to
//! the handler as a value. A `Query` passes the node's read barrier and reads the state.
//!
//! After a Join or Leave every group owns `⌊N/G⌋` or `⌈N/G⌉` shards and the fewest possible
//! shards change owner. A Move pins nothing: the next Join or Leave rebalances from whatever
//! assignment the Move left and may move that shard again. A Query for a config number beyond
//! the latest returns the latest config (as 6.824's shardctrler does).
//!
//! # Example
//!
//! ```
//! use strata_shardmaster::{MasterState, Op, OpError, Reply};
//!
//! let mut master = MasterState::new(10).unwrap();
//! let client = 0x5eed_u128;
//! let join = Op::join([
//!     (1, vec!["10.0.0.1:7000".to_string()]),
//!     (2, vec!["10.0.0.2:7000".to_string()]),
//! ])
//! .unwrap();
//!
//! // Operations travel through the Paxos log as bytes.
//! let op = Op::decode(&join.encode()).unwrap();
//! assert_eq!(master.apply(client, 1, op), Ok(Reply::Created { num: 1 }));
//! let config = master.latest();
//! assert_eq!(config.shard_counts().into_values().collect::<Vec<_>>(), vec![5, 5]);
//!
//! // A retried request is answered from the session table, not applied twice.
//! assert_eq!(master.apply(client, 1, join), Ok(Reply::Created { num: 1 }));
//! assert_eq!(master.configs().len(), 2);
//!
//! // Invalid operations create no config.
//! let bad = Op::Move { shard: 3, gid: 9 };
//! assert_eq!(master.apply(client, 2, bad), Err(OpError::UnknownGroup(9)));
//!
//! // Config 0 is still there; a number beyond the latest gives the latest.
//! let reply = master.apply(client, 3, Op::Query(Some(0))).unwrap();
//! assert_eq!(reply, Reply::Config(master.configs()[0].clone()));
//! assert_eq!(master.query(Some(99)).unwrap().num, 1);
//!
//! // Snapshots stream as chunks and restore to an identical state.
//! let restored = MasterState::restore(master.snapshot_chunks()).unwrap();
//! assert_eq!(restored, master);
//! ```

#![warn(missing_docs)]

pub mod codec;
pub mod config;
pub mod machine;
pub mod metrics;
pub mod op;
pub mod rebalance;
pub mod run;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod status_page;
pub mod store;
pub mod wire;

pub use codec::{decode_command, decode_config, encode_command, encode_config, DecodeError};
pub use config::{
    Config, Gid, InvalidShardCount, ShardId, DEFAULT_NUM_SHARDS, MAX_NUM_SHARDS, UNASSIGNED,
};
pub use op::{Op, OpError, Reply};
pub use rebalance::rebalance;
pub use run::{run_master, MasterArgs, RunError};
pub use server::MasterService;
pub use snapshot::{SnapshotChunks, SnapshotRestore};
pub use state::{MasterState, Outcome, Session};
