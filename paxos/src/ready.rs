//! What a replica asks its driver to do: the output of every step.
//!
//! # The driver's contract
//!
//! A driver feeds the replica inputs (`step`, `tick`, `propose`, `read_index`, `compact`) —
//! any number of them between two [`Replica::take_ready`] calls (batching is encouraged: one
//! persist then serves many inputs) — then takes a [`Ready`] and handles it **in this order**:
//!
//! 1. persist `promised` (if set), `membership` (if set) and `entries` (upserts), then
//!    discard entries below `compact_to` (if set) — atomically (all of it or none of it survives a crash) and
//!    durably (fsync) before step 2, and **before the replica is fed any further input**;
//!
//!    *Except* what needs no fsync: a persist holding only chosen marks (entries known chosen)
//!    and compaction ([`Ready::must_sync`] is false) records facts any peer can teach the
//!    replica again. A driver may write it unsynced, or carry it into a later persist
//!    ([`Ready::then`]) and go on to step 2 at once; a crash may lose it, as if the messages
//!    that taught it had been lost;
//! 2. send `messages` (any order, any of them may be lost). Those whose
//!    [`Body::vouches_for_state`] is false (a leader's `Accept`, `Heartbeat` and `Learn`) may
//!    instead be sent before or during step 1; all others only after it;
//! 3. apply `committed` to the state machine, in order;
//! 4. serve `read_states` once the state machine has applied every slot below their index;
//!    tell the callers of `failed_reads` and `dropped_proposals` to retry with the leader;
//! 5. stream an application snapshot to each replica in `send_snapshot`.
//!
//! The driver may crash anywhere: between inputs (the replica's unpersisted memory is lost),
//! after sending early messages but before the persist, between the persist and the sends, or
//! while applying. It restarts with [`Replica::restart`] from what it persisted.
//!
//! # Why this is enough
//!
//! - *No reply vouches for what is not durable.* Step 1 before the vouching messages of
//!   step 2: a promise or an acceptance is on disk before anyone can learn of it.
//! - *A ballot is never used twice.* A `Prepare` vouches for its ballot: the candidate's round
//!   is durable (as its own promise) before the `Prepare` leaves, so a candidate that crashes
//!   restarts with a promise at least that high and picks a higher round. Every message of
//!   ballot `b` that any replica ever receives therefore comes from one incarnation of `b`'s
//!   owner, which proposed one value per slot in it.
//! - *A replica's own vote is durable before it decides anything.* The replica counts its own
//!   promise and its own acceptances at once (in memory), but a decision needs a majority,
//!   hence at least one answer from a peer; a peer answers only a message of this replica's
//!   current ballot, which left in some taken `Ready` — and the persist of that `Ready`, which
//!   holds the replica's own vote, completed before the answer could be fed (step 1's "before
//!   any further input"). Answers carrying the same ballot from an earlier incarnation cannot
//!   exist, by the previous point. (A one-replica group decides alone, and its decisions reach
//!   nobody before the persist: it has no peers, and `committed` is applied after step 1.)
//!
//! [`Replica::take_ready`]: crate::Replica::take_ready
//! [`Replica::restart`]: crate::Replica::restart
//! [`Body::vouches_for_state`]: crate::message::Body::vouches_for_state

use crate::membership::Membership;
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

/// Everything the inputs since the last [`Replica::take_ready`] produced. See the module
/// documentation for the order of handling.
///
/// [`Replica::take_ready`]: crate::Replica::take_ready
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Promised ballot to persist.
    pub promised: Option<Ballot>,
    /// Entries to persist (insert or replace by slot).
    pub entries: Vec<PersistedEntry>,
    /// Entries below this slot may be discarded from storage.
    pub compact_to: Option<Slot>,
    /// The membership now in force (a change passed the commit index, or a snapshot brought
    /// one): persist it with the rest of step 1, and restart with it
    /// ([`PersistentState::membership`](crate::PersistentState::membership)).
    pub membership: Option<Membership>,
    /// Messages to send after persisting; those whose [`Body::vouches_for_state`] is false may
    /// leave before (see the module documentation).
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
        self.promised.is_some()
            || !self.entries.is_empty()
            || self.compact_to.is_some()
            || self.membership.is_some()
    }

    /// True when the persist must be durable before the messages that vouch for it go out:
    /// it holds a promise, a membership or an entry not known chosen. What else a persist
    /// holds (chosen marks, compaction) may be written unsynced or carried into a later
    /// persist (see the contract, step 1).
    pub fn must_sync(&self) -> bool {
        self.promised.is_some()
            || self.membership.is_some()
            || self.entries.iter().any(|e| !e.chosen)
    }

    /// What step 1 persists of this `Ready` (promise, membership, entries, compaction).
    pub fn persistence(&self) -> Ready {
        Ready {
            promised: self.promised,
            entries: self.entries.clone(),
            compact_to: self.compact_to,
            membership: self.membership.clone(),
            ..Ready::default()
        }
    }

    /// Adds the persistence of a `later` one to this persist, so that persisting the result
    /// is persisting both in order: its entries follow (replacing earlier ones of the same
    /// slot), its promise and membership win, compaction goes to the higher slot.
    pub fn then(&mut self, later: Ready) {
        if later.promised.is_some() {
            self.promised = later.promised;
        }
        if later.membership.is_some() {
            self.membership = later.membership;
        }
        self.entries.extend(later.entries);
        self.compact_to = self.compact_to.max(later.compact_to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemStorage, Storage};

    fn entry(slot: Slot, round: u64, chosen: bool) -> PersistedEntry {
        PersistedEntry {
            slot,
            ballot: Ballot::new(round, 1),
            value: Value {
                commands: vec![vec![slot as u8, round as u8]],
            },
            chosen,
        }
    }

    #[test]
    fn only_promises_memberships_and_unchosen_entries_need_a_sync() {
        let marks = Ready {
            entries: vec![entry(1, 1, true), entry(2, 1, true)],
            compact_to: Some(1),
            ..Ready::default()
        };
        assert!(marks.must_persist() && !marks.must_sync());
        let accepted = Ready {
            entries: vec![entry(3, 1, false)],
            ..Ready::default()
        };
        assert!(accepted.must_sync());
        let promise = Ready {
            promised: Some(Ballot::new(2, 1)),
            ..Ready::default()
        };
        assert!(promise.must_sync());
    }

    #[test]
    fn a_carried_persist_then_a_later_one_equals_both_in_order() {
        let first = Ready {
            entries: vec![entry(1, 1, true), entry(2, 1, true)],
            compact_to: Some(2),
            ..Ready::default()
        };
        let second = Ready {
            promised: Some(Ballot::new(2, 2)),
            entries: vec![entry(2, 2, false), entry(3, 2, false)],
            compact_to: Some(1),
            messages: vec![],
            ..Ready::default()
        };
        let mut separately = MemStorage::new();
        separately.persist(&first).unwrap();
        separately.persist(&second).unwrap();
        let mut merged = first.persistence();
        merged.then(second.persistence());
        let mut together = MemStorage::new();
        together.persist(&merged).unwrap();
        assert_eq!(together.load().unwrap(), separately.load().unwrap());
        assert_eq!(merged.compact_to, Some(2));
        assert_eq!(merged.promised, Some(Ballot::new(2, 2)));
    }
}
