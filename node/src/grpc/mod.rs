//! The gRPC side of a node: the transport that sends Paxos traffic to the peers
//! ([`transport`]), the `PaxosPeer` service that receives it ([`services`]), the `NodeStatus`
//! service that reports ([`status`]), and a service's proposals and reads with their status
//! mapping ([`calls`]).

pub mod calls;
pub mod membership;
pub mod services;
pub mod status;
pub mod transport;

pub use calls::{node_error_status, propose_within, read_barrier_within};
pub use membership::membership_service;
pub use services::peer_service;
pub use status::{
    status_service, status_service_with, ServiceStatus, ServiceStatusFn, StatusExtras,
};
pub use transport::{GrpcTransport, PeerMetrics};
