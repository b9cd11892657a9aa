//! The acceptor rules (phase 1 and 2 on the receiving side): promising ballots, answering a
//! `Prepare` with the accepted entries (in parts, large values by reference), accepting a
//! leader's values, answering heartbeats, and refusing stale ballots with a `Nack`. Everything
//! promised or accepted goes into the [`Ready`](crate::Ready) to be persisted before the reply.

use std::collections::BTreeMap;

use crate::message::{split_by_bytes, AcceptedEntry, Body};
use crate::ready::PersistedEntry;
use crate::replica::{LogEntry, Replica, MAX_HELD_IN_PREPARE, MAX_RECOVERY_SPAN};
use crate::types::{Ballot, Digest, ReplicaId, Slot, Value};

impl Replica {
    pub(crate) fn on_prepare(
        &mut self,
        from: ReplicaId,
        ballot: Ballot,
        from_slot: Slot,
        held: &[(Slot, Digest)],
    ) {
        if self.nack_if_stale(from, ballot) {
            return;
        }
        if from_slot < self.log_start {
            // The candidate lacks chosen slots compacted here, so it cannot win with this
            // vote: promising would only unseat the leader we follow and hold back our own
            // election, and a lagging replica that keeps timing out would keep the group
            // leaderless. Refuse, and catch it up instead.
            let log_start = self.log_start;
            self.send(from, Body::Compacted { ballot, log_start });
            self.request_snapshot(from);
            return;
        }
        if self.log_bytes_in(from_slot..self.commit.max(from_slot)) > self.cfg.message_bytes() {
            // The candidate lacks more chosen values than one message holds: our promise
            // would make it recover them all from us — a transfer that can outlast its
            // election timeout again and again, while every vote we grant holds back our own
            // election. Stay silent and let our timer run: a replica that knows at least as
            // much as any other gets every vote it asks for, wins, and catches this one up.
            return;
        }
        self.promise(ballot);
        self.leader = None;
        // Redrawn, not just restarted: replicas that keep granting votes together must not
        // keep timing out together.
        self.reset_election_timer();
        // In parts (see `Config::message_bytes`): a log of many large accepted values must not
        // make one message too large to send, or no candidate could ever win. The first part
        // covers from the requested slot, each next one from its first entry, the last to the
        // end of the log.
        let held: BTreeMap<Slot, Digest> = held.iter().copied().collect();
        let mut entries = self.accepted_from(from_slot);
        for e in &mut entries {
            if held.get(&e.slot).is_some_and(|d| *d == e.value.digest()) {
                e.value = Value::default();
                e.held = true;
            }
        }
        let mut parts = split_by_bytes(entries, self.cfg.message_bytes(), |e| {
            e.value.payload_bytes() + 32
        });
        if parts.is_empty() {
            parts.push(Vec::new());
        }
        let starts: Vec<Slot> = parts.iter().skip(1).map(|p| p[0].slot).collect();
        for (k, entries) in parts.into_iter().enumerate() {
            let body = Body::Promise {
                ballot,
                log_start: self.log_start,
                entries,
                from: if k == 0 { from_slot } else { starts[k - 1] },
                to: starts.get(k).copied(),
            };
            self.send(from, body);
        }
    }

    /// Entries of the log from `from_slot` on, as a promise reports them.
    pub(crate) fn accepted_from(&self, from_slot: Slot) -> Vec<AcceptedEntry> {
        self.log
            .range(from_slot.max(self.log_start)..)
            .map(|(&slot, e)| AcceptedEntry {
                slot,
                ballot: e.ballot,
                value: e.value.clone(),
                chosen: e.chosen,
                held: false,
            })
            .collect()
    }

    /// The large values of the log from `from_slot` on, as a `Prepare` names them (at most
    /// [`MAX_HELD_IN_PREPARE`]).
    pub(crate) fn held_from(&self, from_slot: Slot) -> Vec<(Slot, Digest)> {
        self.log
            .range(from_slot.max(self.log_start)..)
            .filter(|(_, e)| e.value.payload_bytes() >= self.cfg.held_value_bytes)
            .map(|(&slot, e)| (slot, e.value.digest()))
            .take(MAX_HELD_IN_PREPARE)
            .collect()
    }

    pub(crate) fn on_accept(
        &mut self,
        from: ReplicaId,
        ballot: Ballot,
        entries: Vec<(Slot, Value)>,
        commit: Slot,
    ) {
        if self.nack_if_stale(from, ballot) {
            return;
        }
        self.follow(ballot);
        // A leader's commit index covers only slots chosen before it sent this: every entry
        // of an honest `Accept` lies at or above its commit (the leader proposes above its
        // commit index and re-sends only slots not yet chosen). So an `Accept` never makes
        // its own entries chosen here — one that claims to would let a single forged message
        // in a fresh ballot plant a value and declare it chosen.
        let commit =
            (entries.iter().map(|e| e.0).min()).map_or(commit, |lowest| commit.min(lowest));
        let far = self.commit.saturating_add(MAX_RECOVERY_SPAN);
        let mut slots = Vec::with_capacity(entries.len());
        for (slot, value) in entries {
            if slot > far {
                // Not accepted (nor acknowledged): a slot this far ahead would make every
                // candidate that hears our promise stand down. An honest leader re-sends it
                // once we have caught up.
                continue;
            }
            slots.push(slot);
            if slot < self.log_start || self.log.get(&slot).is_some_and(|e| e.chosen) {
                continue; // already chosen: the leader's value is the same
            }
            self.store(slot, ballot, value, false);
        }
        self.send(from, Body::Accepted { ballot, slots });
        self.learn_commit(commit, ballot);
    }

    pub(crate) fn on_heartbeat(
        &mut self,
        from: ReplicaId,
        ballot: Ballot,
        commit: Slot,
        read_round: u64,
    ) {
        if self.nack_if_stale(from, ballot) {
            return;
        }
        self.follow(ballot);
        self.learn_commit(commit, ballot);
        self.send(
            from,
            Body::HeartbeatAck {
                ballot,
                read_round,
                commit: self.commit,
            },
        );
    }

    /// Answers a proposal in a ballot below the promise with a `Nack` (so the stale proposer
    /// learns of the newer ballot); true if it was stale.
    pub(crate) fn nack_if_stale(&mut self, from: ReplicaId, ballot: Ballot) -> bool {
        if ballot >= self.promised {
            return false;
        }
        let promised = self.promised;
        self.send(from, Body::Nack { promised });
        true
    }

    /// Raises the promise to `ballot` (durably, before any reply).
    pub(crate) fn promise(&mut self, ballot: Ballot) {
        if ballot > self.promised {
            self.promised = ballot;
            self.ready.promised = Some(ballot);
            if self.own_ballot().is_some_and(|b| b < ballot) {
                self.become_follower();
            }
        }
    }

    /// Follows the leader of `ballot` (a heartbeat or accept from it arrived).
    pub(crate) fn follow(&mut self, ballot: Ballot) {
        self.promise(ballot);
        self.leader = Some(ballot.replica);
        self.election_elapsed = 0;
        self.silent_timeouts = 0;
    }

    pub(crate) fn store(&mut self, slot: Slot, ballot: Ballot, value: Value, chosen: bool) {
        self.ready.entries.push(PersistedEntry {
            slot,
            ballot,
            value: value.clone(),
            chosen,
        });
        self.log_bytes += value.payload_bytes();
        let replaced = self.log.insert(
            slot,
            LogEntry {
                ballot,
                value,
                chosen,
            },
        );
        if let Some(old) = replaced {
            self.log_bytes -= old.value.payload_bytes();
        }
    }
}
