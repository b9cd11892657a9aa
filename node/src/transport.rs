//! How a node reaches its peers. The driver only hands messages over; a transport may drop
//! them (Paxos tolerates loss), and must never block the driver or buffer without bound.

use std::collections::BTreeMap;

use strata_paxos::{Membership, Message, ReplicaId, Slot};

use crate::state_machine::SnapshotStream;

/// Delivery of Paxos traffic to peers.
pub trait Transport: Send + Sync + 'static {
    /// Sends messages, best effort, without blocking.
    fn send(&self, messages: Vec<Message>);

    /// Streams an application snapshot covering every slot below `index` to `to`, with the
    /// membership in force at `index` (if known), best effort, without blocking the caller.
    fn send_snapshot(
        &self,
        to: ReplicaId,
        index: Slot,
        membership: Option<Membership>,
        chunks: SnapshotStream,
    );

    /// The group's members are now `members` (this replica's own id is ignored): reach new
    /// ones at their address in `addresses`, stop reaching removed ones. A member without
    /// an address there keeps the one the transport has.
    fn set_peers(&self, members: &[ReplicaId], addresses: &BTreeMap<ReplicaId, String>) {
        let _ = (members, addresses);
    }
}
