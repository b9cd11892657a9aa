//! What a replica asks its driver to do: the output of every step.
//!
//! The driver takes a [`Ready`] after feeding the replica (`step`, `tick`, `propose`, ...) and
//! handles it **in this order**:
//!
//! 1. persist `promised` (if set) and `entries` (upserts), then discard entries below
//!    `compact_to` (if set) — all durably (fsync) before step 2;
//! 2. send `messages` (any order, any of them may be lost);
//! 3. apply `committed` to the state machine, in order;
//! 4. serve `read_states` once the state machine has applied every slot below their index;
//!    tell the callers of `failed_reads` and `dropped_proposals` to retry with the leader;
//! 5. stream an application snapshot to each replica in `send_snapshot`.
//!
//! Step 1 before step 2 is the safety contract: a promise or an acceptance must be durable
//! before anyone can learn of it, or a crash could make a replica break its word.

use crate::message::Message;
use crate::types::{Ballot, Command, ReplicaId, Slot, Value};

/// A log entry as it is persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistedEntry {
    /// The slot.
    pub slot: Slot,
    /// Ballot the value was accepted in.
    pub ballot: Ballot,
    /// The value.
    pub value: Value,
    /// The value is known to be chosen.
    pub chosen: bool,
}

/// A linearizable read that may now be served: once the state machine has applied every slot
/// below `index`, reading it returns a result no older than the moment the read was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's id for the read.
    pub id: u64,
    /// Apply up to (not including) this slot before serving.
    pub index: Slot,
}

/// Everything a step produced. See the module documentation for the order of handling.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Promised ballot to persist.
    pub promised: Option<Ballot>,
    /// Entries to persist (insert or replace by slot).
    pub entries: Vec<PersistedEntry>,
    /// Entries below this slot may be discarded from storage.
    pub compact_to: Option<Slot>,
    /// Messages to send after persisting. Those whose [`Body::vouches_for_state`] is false (a
    /// leader's or candidate's requests) may be sent before, in parallel with the persist, as
    /// long as the driver feeds the replica no further input until the persist completed:
    /// the replica counts its own vote only when a later input arrives, so a decision never
    /// rests on a vote that is not durable.
    ///
    /// [`Body::vouches_for_state`]: crate::message::Body::vouches_for_state
    pub messages: Vec<Message>,
    /// Newly chosen values, consecutive, in slot order: apply them.
    pub committed: Vec<(Slot, Value)>,
    /// Reads that may be served once applied.
    pub read_states: Vec<ReadState>,
    /// Reads this replica can no longer serve (it stopped leading).
    pub failed_reads: Vec<u64>,
    /// Proposals queued here that never got a slot (this replica stopped leading).
    pub dropped_proposals: Vec<Command>,
    /// Replicas that need a snapshot of the application state (they lag behind this
    /// replica's compacted log).
    pub send_snapshot: Vec<ReplicaId>,
}

impl Ready {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == Ready::default()
    }

    /// True when something must be persisted before `messages` go out.
    pub fn must_persist(&self) -> bool {
        self.promised.is_some() || !self.entries.is_empty() || self.compact_to.is_some()
    }
}
