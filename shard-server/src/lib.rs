//! Strata's shard server: one replica of a replica group that serves key-value shards
//! through multi-Paxos, and moves shards to and from other groups as the shard master's
//! configuration changes.
//!
//! - [`run`]: the `strata-server` command line and process (on `strata_node`'s replica host);
//! - [`service`]: the `ShardKv`, `ShardMigration` and `ShardGroup` gRPC services (glue);
//! - [`machine`]: [`KvMachine`], the deterministic state machine — dispatch, client mutations
//!   (`execute`), reconfiguration steps (`migration`), persistence and snapshots (`persist`),
//!   and the [`Reader`](machine::Reader) the services read through;
//! - [`session`]: request headers checked ([`session::ClientRequest`]) and the dedup sessions
//!   that decide replay, execute or refuse (exactly-once mutations);
//! - [`shard_figures`]: the keys and bytes of each served shard, counted in the background;
//! - [`metrics`]: the server's own metrics (operations per shard, shard figures, migrations);
//! - [`shard_state`]: the life of a shard at a replica (pulling, serving, leaving...);
//! - [`handoff`]: reading a frozen shard in bounded, resumable chunks;
//! - [`reconfig`]: the leader's next steps through configurations (pure);
//! - [`worker`]: the leader's reconfiguration loop (talks to the master and other groups);
//! - [`command`]: the log's commands and the outcomes of their application;
//! - [`keys`]: the data engine's key layout (one contiguous range per shard), known only to
//!   the machine and the hand-off;
//! - [`store`]: the [`Store`] the state machine writes ([`DbStore`] on the engine,
//!   [`MemStore`] in memory);
//! - [`chaos`]: a simulated unreliable network around the services, for tests.
//!
//! How a request flows: a `Put` arrives at [`service`], whose [`RequestHeader`] (client id,
//! sequence numbers, configuration, timeout) is checked once; the leader answers a retry of
//! an applied request from the shard's dedup table and refuses a shard it does not serve,
//! otherwise it proposes the request as a [`command::Command`] on its `strata_node::Node`
//! (once per request however often the client retries meanwhile). Paxos chooses it; every
//! replica's [`KvMachine`] applies it in log order — ownership checked, the session table
//! deciding replay or execute, one atomic write batch — and the proposing replica hands the
//! [`command::Outcome`] back to the handler as a value. A `Get` waits on the node's read
//! barrier, then reads through the machine's `Reader`. Meanwhile the leader's [`worker`]
//! follows the master's configurations and pulls shards from their previous owners, each
//! step a command in the same log.
//!
//! [`RequestHeader`]: strata_rpc::v1::RequestHeader
//!
//! # Example: the state machine on its own
//!
//! What every replica of a group does with each chosen log entry (the node runtime feeds it;
//! here by hand, on an in-memory store):
//!
//! ```
//! use std::sync::Arc;
//! use strata_node::StateMachine;
//! use strata_rpc::v1;
//! use strata_server::command::{Command, Kind, Outcome};
//! use strata_server::{KvMachine, MachineOptions, MemStore};
//!
//! let mut machine = KvMachine::open(1, Arc::new(MemStore::new()), MachineOptions::default())?;
//! // Configuration 1 gives group 1 all four shards (they were unassigned: nothing to pull).
//! let config = v1::Config { num: 1, shards: vec![1; 4], ..Default::default() };
//! machine.apply(1, &Command::new(1_000, Kind::Reconfigure(config)).encode());
//! let header = v1::RequestHeader {
//!     client_id: vec![7; 16],
//!     seq: 1,
//!     first_incomplete_seq: 1,
//!     opens_session: true,
//!     ..Default::default()
//! };
//! let put = v1::PutRequest {
//!     header: Some(header),
//!     key: b"k".to_vec(),
//!     value: b"v".to_vec(),
//! };
//! let command = Command::new(1_001, Kind::Put(put)).encode();
//! let first = machine.apply(2, &command);
//! // The same request chosen again (a client's retry): answered, not applied twice.
//! let again = machine.apply(3, &command);
//! assert_eq!(first, again);
//! assert!(matches!(first, Outcome::Kv(_)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod chaos;
pub mod command;
pub mod handoff;
pub mod keys;
pub mod machine;
pub mod metrics;
pub mod reconfig;
pub mod run;
pub mod service;
pub mod session;
pub mod shard_figures;
pub mod shard_state;
pub mod store;
pub mod worker;

pub use machine::{KvMachine, MachineOptions, View};
pub use store::{DbStore, MemStore, Store};
