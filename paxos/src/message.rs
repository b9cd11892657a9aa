//! Messages between replicas.
//!
//! Every message carries the sender's ballot. A replica never trusts a message beyond what its
//! ballot entitles: acceptors obey only ballots at least as high as the one they promised
//! (and at most [`MAX_ROUND_STEP`](crate::replica::MAX_ROUND_STEP) rounds above what they
//! know), and only from the ballot's owner; learners believe chosen values only from the
//! leader they follow; proposers count only replies carrying their own current ballot.

use crate::types::Digest;
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
    /// The value accepted (empty if `held`).
    pub value: Value,
    /// The acceptor knows the value was chosen.
    pub chosen: bool,
    /// The value is left out: it is the one the candidate named for `slot` (by digest) in
    /// its `Prepare`.
    pub held: bool,
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
        /// Large values the candidate holds from `from_slot` on, as (slot, content digest):
        /// an acceptor whose value in that slot has that digest reports it without the
        /// value, so that an election after large values were accepted does not move them
        /// all again.
        held: Vec<(Slot, Digest)>,
    },
    /// Phase 1b: the acceptor promised `ballot` and reports what it accepted from the
    /// requested slot on. The report may come in several parts, each covering the slots
    /// `from..to` (`to: None`: to the end of the log), so that no message grows with the log:
    /// the candidate counts the promise once parts covering every slot from the requested one
    /// on have arrived.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The acceptor's first slot still in its log (slots below were compacted).
        log_start: Slot,
        /// Accepted (or known chosen) entries in `from..to`.
        entries: Vec<AcceptedEntry>,
        /// First slot this part reports on.
        from: Slot,
        /// One past the last slot this part reports on; `None` for the last part.
        to: Option<Slot>,
    },
    /// Rejection: the recipient's ballot is below what the sender promised.
    Nack {
        /// The ballot the sender promised.
        promised: Ballot,
    },
    /// Answer to a `Prepare` whose `from_slot` lies below the acceptor's log start: the
    /// candidate lacks chosen slots that this acceptor compacted away, so it could not pick
    /// values for them and cannot win with this acceptor's vote. The acceptor does not promise
    /// (a leader it follows is not disturbed, its election timer keeps running) and streams the
    /// candidate an application snapshot instead.
    Compacted {
        /// The candidate's ballot (not promised).
        ballot: Ballot,
        /// The acceptor's first slot still in its log.
        log_start: Slot,
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
        /// The leader's ballot: a replica believes a `Learn` only in the ballot it promised,
        /// from the leader it follows (see "Forged messages" in the crate documentation).
        ballot: Ballot,
        /// Consecutive chosen slots and their values.
        entries: Vec<(Slot, Value)>,
    },
}

/// Splits `items` into consecutive parts of at most `budget` bytes as `size` counts them, each
/// part at least one item (a larger single item goes alone): how a report or a batch of values
/// that may be large becomes messages the transport can carry.
pub(crate) fn split_by_bytes<T>(
    items: impl IntoIterator<Item = T>,
    budget: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut parts: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let n = size(&item);
        match parts.last_mut() {
            Some(part) if bytes + n <= budget => part.push(item),
            _ => {
                parts.push(vec![item]);
                bytes = 0;
            }
        }
        bytes += n;
    }
    parts
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
    /// True when the message states something about the sender's durable state, so that it
    /// must leave only once that state is persisted:
    ///
    /// - an acceptor's answers (`Promise`, `Accepted`, `HeartbeatAck`, `Nack`, `Compacted`)
    ///   state what it promised or accepted;
    /// - a candidate's `Prepare` opens a ballot, and a ballot must never be used twice: its
    ///   round is durable (as the candidate's own promise) before anyone can hear of it, so a
    ///   candidate that crashes and restarts picks a higher round instead of reusing one whose
    ///   promises may still be on their way (issue 19's two-values-in-one-slot run).
    ///
    /// The others — a leader's `Accept`, `Heartbeat` and `Learn` — may leave before the persist
    /// that goes with them: they carry a ballot already durable here (it was persisted before
    /// the `Prepare` that won it), and what they ask of others vouches for nothing about this
    /// replica's own storage.
    pub fn vouches_for_state(&self) -> bool {
        !matches!(
            self,
            Body::Accept { .. } | Body::Heartbeat { .. } | Body::Learn { .. }
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
            | Body::Learn { ballot, .. }
            | Body::Compacted { ballot, .. } => *ballot,
            Body::Nack { promised } => *promised,
        }
    }

    /// The variant's name (`"Prepare"`, `"HeartbeatAck"`, ...): what traces print and what
    /// counters of messages by kind are keyed by.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Prepare { .. } => "Prepare",
            Body::Promise { .. } => "Promise",
            Body::Nack { .. } => "Nack",
            Body::Accept { .. } => "Accept",
            Body::Accepted { .. } => "Accepted",
            Body::Heartbeat { .. } => "Heartbeat",
            Body::HeartbeatAck { .. } => "HeartbeatAck",
            Body::Learn { .. } => "Learn",
            Body::Compacted { .. } => "Compacted",
        }
    }
}
