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
