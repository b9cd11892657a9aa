//! Runs a Paxos-replicated state machine for real: the pure `strata-paxos` core, durable
//! acceptor state on a dedicated `strata` engine, a tokio driver loop, and a transport to the
//! peers. Shared by the shard master and the shard servers.
//!
//! - [`paxos_storage`]: the acceptor state and log in their own engine, synced batches;
//! - [`state_machine`]: the [`StateMachine`] trait a service implements;
//! - [`transport`]: how messages and snapshots reach peers;
//! - [`driver`]: the loop that ties them together ([`Node`]);
//! - [`wire`]: the Paxos messages in their protobuf form;
//! - [`cli`]: what the server binaries share (`--peers` parsing, shutdown signal);
//! - [`grpc`]: the peer transport, the `PaxosPeer` and `NodeStatus` services, identity checks;
//! - [`listener`]: connection admission (open-file limit, connection cap with eviction,
//!   handshake deadline, idle timeout) for every server process.

#![warn(missing_docs)]

pub mod cli;
pub mod driver;
pub mod grpc;
pub mod listener;
pub mod paxos_storage;
pub mod state_machine;
pub mod transport;
pub mod wire;

pub use driver::{Node, NodeConfig, NodeError, NodeStatus};
pub use grpc::{check_identity, peer_service, status_service, GrpcTransport};
pub use paxos_storage::{EnginePaxosStorage, StorageError};
pub use state_machine::{IncomingSnapshot, SnapshotStream, StateMachine};
pub use transport::Transport;
