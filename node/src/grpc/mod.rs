//! The gRPC side of a node: the transport that sends Paxos traffic to the peers
//! ([`transport`]), the `PaxosPeer` and `NodeStatus` services that receive it and report
//! ([`services`]), and a service's proposals and reads with their status mapping ([`calls`]).

pub mod calls;
pub mod services;
pub mod transport;

pub use calls::{node_error_status, propose_within, read_barrier_within};
pub use services::{peer_service, status_service};
pub use transport::GrpcTransport;
