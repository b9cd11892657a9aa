//! Runs a Paxos-replicated state machine for real: the pure `strata-paxos` core, durable
//! acceptor state on a dedicated `strata` engine, a tokio driver loop, and a transport to the
//! peers. Shared by the shard master and the shard servers.
//!
//! - [`paxos_storage`]: the acceptor state and log in their own engine, synced batches;
//! - [`state_machine`]: the [`StateMachine`] trait a service implements;
//! - [`transport`]: how messages and snapshots reach peers;
//! - [`node`]: [`Node`], the handle a service uses (propose, read, status), its admission;
//! - [`driver`]: the loop behind it that ties the core, storage and transport together;
//! - [`disk_usage`]: the size of a data directory, measured now and then, for the status;
//! - [`durability`]: when a state machine syncs its store, and its durable index;
//! - [`wire`]: the Paxos messages in their protobuf form;
//! - [`host`]: a replica process ([`ReplicaHost`]): data directory and identity, Paxos
//!   storage, listener, node, the tonic server with the peer and status services, signals;
//! - [`grpc`]: the peer transport, the `PaxosPeer` and `NodeStatus` services, proposals and
//!   reads with their gRPC status;
//! - [`identity`]: which replica a data directory belongs to;
//! - [`listener`]: connection admission (open-file limit, connection cap with eviction,
//!   handshake deadline, idle timeout) for every server process.
//!
//! How a proposal flows: a service calls [`Node::propose`] (through
//! [`grpc::propose_within`], which bounds the wait and maps refusals to gRPC statuses); the
//! node admits it (bytes in flight, the backlog its followers have not learned) and queues it
//! to the driver, which feeds the Paxos replica; the replica's `Ready` is persisted on a
//! dedicated thread, its messages leave through the [`Transport`], and once the command is
//! chosen the driver applies it to the [`StateMachine`] and hands the proposer the machine's
//! typed reply. Peers' messages arrive through the `PaxosPeer` service into the same driver
//! loop; a replica too far behind receives a snapshot stream instead.

#![warn(missing_docs)]

pub mod auth;
mod beater;
pub mod disk_usage;
pub mod driver;
pub mod durability;
pub mod engine_metrics;
pub mod grpc;
pub mod histogram;
pub mod host;
pub mod http;
pub mod identity;
pub mod listener;
pub mod metrics;
pub mod node;
pub mod paxos_storage;
pub mod rpc_metrics;
pub mod state_machine;
pub mod transport;
pub mod wire;

pub use durability::Durability;
pub use grpc::{
    peer_service, status_service, status_service_with, GrpcTransport, ServiceStatus,
    ServiceStatusFn, StatusExtras,
};
pub use host::{NodeTuning, ReplicaArgs, ReplicaHost, RunError};
pub use identity::check_identity;
pub use node::{Node, NodeConfig, NodeError, NodeStatus};
pub use paxos_storage::{EnginePaxosStorage, StorageError};
pub use state_machine::{
    IncomingSnapshot, RestoreError, SnapshotStream, StateMachine, TransferError,
};
pub use transport::Transport;
