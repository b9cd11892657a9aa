//! Messages between replicas.
//!
//! Every message carries the sender's ballot. A replica never trusts a message beyond what its
//! ballot entitles: acceptors obey only ballots at least as high as the one they promised;
//! proposers count only replies carrying their own current ballot.

use crate::types::{Ballot, ReplicaId, Slot, Value};

/// A message on its way from one replica to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Sender.
    pub from: ReplicaId,
    /// Recipient.
    pub to: ReplicaId,
    /// Content.
    pub body: Body,
}

/// An entry as an acceptor reports it in a promise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedEntry {
    /// The slot.
    pub slot: Slot,
    /// Ballot it was accepted in.
    pub ballot: Ballot,
    /// The value accepted.
    pub value: Value,
    /// The acceptor knows the value was chosen.
    pub chosen: bool,
}

/// The protocol's messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Phase 1a: "promise me `ballot` for every slot from `from_slot` on".
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// First slot the candidate does not know to be chosen.
        from_slot: Slot,
    },
    /// Phase 1b: the acceptor promised `ballot` and reports what it accepted from the
    /// requested slot on.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The acceptor's first slot still in its log (slots below were compacted).
        log_start: Slot,
        /// Accepted (or known chosen) entries at or after the requested slot.
        entries: Vec<AcceptedEntry>,
    },
    /// Rejection: the recipient's ballot is below what the sender promised.
    Nack {
        /// The ballot the sender promised.
        promised: Ballot,
    },
    /// Phase 2a, batched: "accept these values in `ballot`"; `commit` piggybacks the leader's
    /// commit index (every slot below it is chosen).
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// Slots and values.
        entries: Vec<(Slot, Value)>,
        /// The leader's commit index.
        commit: Slot,
    },
    /// Phase 2b: the acceptor accepted these slots in `ballot`.
    Accepted {
        /// The ballot accepted.
        ballot: Ballot,
        /// The slots.
        slots: Vec<Slot>,
    },
    /// The leader's periodic beat: commit index, and a read round number for read-index
    /// confirmation.
    Heartbeat {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's commit index.
        commit: Slot,
        /// Read round being confirmed (0: none).
        read_round: u64,
    },
    /// Answer to a heartbeat: the follower still follows `ballot`, echoes the read round, and
    /// says how far it knows the log to be chosen.
    HeartbeatAck {
        /// The ballot followed.
        ballot: Ballot,
        /// The read round echoed.
        read_round: u64,
        /// The follower's commit index (the leader sends what it lacks).
        commit: Slot,
    },
    /// Chosen values a lagging replica lacks, starting at its commit index.
    Learn {
        /// The sender's ballot (informational: chosen values are facts).
        ballot: Ballot,
        /// Consecutive chosen slots and their values.
        entries: Vec<(Slot, Value)>,
    },
}

impl Message {
    /// About how many bytes the message holds (its values, plus a small constant): what a
    /// queue of messages costs in memory.
    pub fn payload_bytes(&self) -> usize {
        64 + match &self.body {
            Body::Accept { entries, .. } | Body::Learn { entries, .. } => {
                entries.iter().map(|(_, v)| v.payload_bytes() + 16).sum()
            }
            Body::Promise { entries, .. } => {
                entries.iter().map(|e| e.value.payload_bytes() + 32).sum()
            }
            _ => 0,
        }
    }
}

impl Body {
    /// An acceptor's answer (`Promise`, `Accepted`, `HeartbeatAck`, `Nack`): it states what the
    /// sender promised or accepted, so it must leave only once that state is durable. The
    /// other messages are a leader's or candidate's requests and the facts it learned (what is
    /// chosen); sending them early promises nothing about the sender's storage.
    pub fn vouches_for_state(&self) -> bool {
        matches!(
            self,
            Body::Promise { .. }
                | Body::Accepted { .. }
                | Body::HeartbeatAck { .. }
                | Body::Nack { .. }
        )
    }

    /// The ballot the message carries.
    pub fn ballot(&self) -> Ballot {
        match self {
            Body::Prepare { ballot, .. }
            | Body::Promise { ballot, .. }
            | Body::Accept { ballot, .. }
            | Body::Accepted { ballot, .. }
            | Body::Heartbeat { ballot, .. }
            | Body::HeartbeatAck { ballot, .. }
            | Body::Learn { ballot, .. } => *ballot,
            Body::Nack { promised } => *promised,
        }
    }
}
