//! How a node reaches its peers. The driver only hands messages over; a transport may drop
//! them (Paxos tolerates loss), and must never block the driver or buffer without bound.

use strata_paxos::{Message, ReplicaId, Slot};

use crate::state_machine::SnapshotStream;

/// Delivery of Paxos traffic to peers.
pub trait Transport: Send + Sync + 'static {
    /// Sends messages, best effort, without blocking.
    fn send(&self, messages: Vec<Message>);

    /// Streams an application snapshot covering every slot below `index` to `to`, best effort,
    /// without blocking the caller.
    fn send_snapshot(&self, to: ReplicaId, index: Slot, chunks: SnapshotStream);
}
