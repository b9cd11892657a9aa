//! Runs a Paxos-replicated state machine for real: the pure `strata-paxos` core, durable
//! acceptor state on a dedicated `strata` engine, and (in later modules) the driver loop and
//! the gRPC peer transport shared by the shard master and the shard servers.

#![warn(missing_docs)]

pub mod paxos_storage;

pub use paxos_storage::{EnginePaxosStorage, StorageError};
