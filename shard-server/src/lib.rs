//! Strata's shard server: one replica of a replica group that serves key-value shards
//! through multi-Paxos, and moves shards to and from other groups as the shard master's
//! configuration changes.
//!
//! - [`keys`]: the data engine's key layout (one contiguous range per shard);
//! - [`store`]: the [`Store`] the state machine writes ([`DbStore`] on the engine,
//!   [`MemStore`] in memory);
//! - [`chaos`]: a simulated unreliable network for tests;
//! - [`command`]: the log's commands and the replies of their application;
//! - [`session`]: per-shard, per-client dedup sessions (exactly-once mutations);
//! - [`shard_state`]: the life of a shard at a replica (pulling, serving, leaving...);
//! - [`machine`]: [`KvMachine`], the deterministic state machine (the reconfiguration rules);
//! - [`handoff`]: reading a frozen shard in bounded, resumable chunks;
//! - [`reconfig`]: the leader's next steps through configurations (pure);
//! - [`service`]: the `ShardKv`, `ShardMigration` and `ShardGroup` gRPC services;
//! - [`worker`]: the leader's reconfiguration loop (talks to the master and other groups);
//! - [`run`]: the `strata-server` command line and process.

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
pub mod reconfig;
pub mod run;
pub mod service;
pub mod session;
pub mod shard_state;
pub mod store;
pub mod worker;

pub use machine::{KvMachine, MachineOptions, View};
pub use store::{DbStore, MemStore, Store};
