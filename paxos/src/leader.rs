//! Elections (phase 1) and the leader's work (phase 2, heartbeats, catch-up, read rounds).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::message::{split_by_bytes, AcceptedEntry, Body};
use crate::replica::{Election, Hold, Inflight, Leadership, Replica, RoleState, MAX_RECOVERY_SPAN};
use crate::types::{Ballot, ReplicaId, Slot, Value};

/// A leader steps down after this many (longest) election timeouts without hearing from a
/// majority.
const CHECK_QUORUM_TIMEOUTS: u32 = 4;

impl Replica {
    /// Phase 1 with a ballot above every one seen: for all slots from the first one not known
    /// to be chosen. The election timer is re-randomized, so duelling candidates back off.
    pub(crate) fn start_election(&mut self) {
        let round = self
            .highest_seen
            .round
            .max(self.promised.round)
            .saturating_add(1);
        let ballot = Ballot::new(round, self.cfg.id);
        self.become_follower();
        self.promise(ballot);
        self.leader = None;
        self.reset_election_timer();
        let own = self.accepted_from(self.commit);
        if own
            .iter()
            .any(|x| x.slot > self.commit.saturating_add(MAX_RECOVERY_SPAN))
        {
            return; // our own log reaches impossibly far: let a saner replica lead
        }
        let mut promises = BTreeMap::new();
        promises.insert(self.cfg.id, own);
        let from_slot = self.commit;
        self.role = RoleState::Candidate(Election {
            ballot,
            from_slot,
            promises,
            parts: BTreeMap::new(),
            held: BTreeMap::new(),
        });
        let held = self.held_from(from_slot);
        if let RoleState::Candidate(e) = &mut self.role {
            e.held = held.iter().copied().collect();
        }
        self.broadcast(&Body::Prepare {
            ballot,
            from_slot,
            held,
        });
        self.maybe_win();
    }

    pub(crate) fn on_promise(
        &mut self,
        from: ReplicaId,
        ballot: Ballot,
        log_start: Slot,
        entries: Vec<AcceptedEntry>,
        (part_from, part_to): (Slot, Option<Slot>),
    ) {
        let commit = self.commit;
        let RoleState::Candidate(e) = &mut self.role else {
            return;
        };
        if e.ballot != ballot {
            return; // a promise to an older election of ours
        }
        if log_start > commit {
            // The acceptor compacted slots we do not know: we cannot pick values for them.
            // Stand down; a more up-to-date replica will win, and catch us up.
            self.become_follower();
            return;
        }
        if entries
            .iter()
            .any(|x| x.slot > commit.saturating_add(MAX_RECOVERY_SPAN))
        {
            // Far ahead of us (or impossible): a better-informed replica should lead.
            self.become_follower();
            return;
        }
        if part_to.is_some_and(|to| to <= part_from)
            || entries
                .iter()
                .any(|x| x.slot < part_from || part_to.is_some_and(|to| x.slot >= to))
        {
            return; // a part that contradicts itself: no honest acceptor sends it
        }
        if e.promises.contains_key(&from) {
            return; // complete already (a duplicate part)
        }
        // Values left out because we hold them: the ones we named, by digest, for the same
        // slots. Our log cannot have changed since we named them (anything that would change
        // it ends the candidacy); if one did anyway, the part is of no use.
        let mut entries = entries;
        for x in entries.iter_mut().filter(|x| x.held) {
            let named = e.held.get(&x.slot).copied();
            match self.log.get(&x.slot) {
                Some(own) if named.is_some_and(|d| d == own.value.digest()) => {
                    x.value = own.value.clone();
                    x.held = false;
                }
                _ => return,
            }
        }
        let RoleState::Candidate(e) = &mut self.role else {
            return;
        };
        let parts = e.parts.entry(from).or_default();
        parts.insert(part_from, (part_to, entries));
        // The election is making progress (promises of large accepted values arrive in parts
        // over a while): do not give it up for a new one, which would start every transfer
        // again. Only the timeout since the last part counts.
        self.election_elapsed = 0;
        // Complete when parts chain from the requested slot to an open-ended one. (Parts of
        // two answers to duplicated Prepares may mix: each is a true report of what the
        // acceptor had accepted since promising, which only this candidate can change.)
        let mut at = e.from_slot;
        let complete = loop {
            match parts.get(&at) {
                Some((None, _)) => break true,
                Some((Some(to), _)) => at = *to,
                None => break false,
            }
        };
        if !complete {
            return;
        }
        let mut all = Vec::new();
        let mut at = e.from_slot;
        let mut parts = e.parts.remove(&from).unwrap_or_default();
        while let Some((to, entries)) = parts.remove(&at) {
            all.extend(entries);
            match to {
                Some(to) => at = to,
                None => break,
            }
        }
        e.promises.insert(from, all);
        self.maybe_win();
    }

    /// An acceptor refused our `Prepare` because we lack slots it compacted: we cannot win
    /// this election (nor any, until caught up by the snapshot it sends), so stand down.
    pub(crate) fn on_compacted(&mut self, from: ReplicaId, ballot: Ballot) {
        if matches!(&self.role, RoleState::Candidate(e) if e.ballot == ballot) {
            // The snapshot it streams is one we asked for (see `accepts_snapshot`).
            self.snapshot_offers.insert(from, self.now);
            self.become_follower();
        }
    }

    pub(crate) fn on_nack(&mut self, promised: Ballot) {
        if self.own_ballot().is_some_and(|b| promised > b) {
            self.become_follower();
            self.reset_election_timer();
        }
    }

    /// Leads once a majority of the voters promised — but never while this replica's own
    /// promise of its ballot is not yet taken for persisting: a sole voter (with learners to
    /// send to) would otherwise win in the same step and send `Accept`s, which may leave
    /// before the persist, in a ballot a crash could make it reuse (`reconfig3` seed 127).
    /// It wins at its next tick instead; with peers to wait for, their promises come after
    /// the persist anyway.
    pub(crate) fn maybe_win(&mut self) {
        if self.ready.promised.is_some() && self.has_peers() {
            return;
        }
        let (majority, members) = (self.membership.majority(), &self.membership);
        let won = matches!(&self.role,
            RoleState::Candidate(e) if members.count_voters(e.promises.keys()) >= majority);
        if won {
            self.become_leader();
        }
    }

    /// Won phase 1: re-propose, in this ballot, for every slot from our commit index to the
    /// highest one any promise mentioned, the value accepted in the highest ballot (a chosen
    /// value wins outright), a no-op where there was none; then open the term with a no-op.
    fn become_leader(&mut self) {
        let RoleState::Candidate(election) = std::mem::replace(&mut self.role, RoleState::Follower)
        else {
            return;
        };
        self.silent_timeouts = 0;
        let ballot = election.ballot;
        let mut best: BTreeMap<Slot, (bool, Ballot, Value)> = BTreeMap::new();
        for entry in election.promises.into_values().flatten() {
            if entry.slot < self.commit {
                continue;
            }
            let candidate = (entry.chosen, entry.ballot, entry.value);
            match best.get(&entry.slot) {
                Some(current) if (current.0, current.1) >= (candidate.0, candidate.1) => {}
                _ => {
                    best.insert(entry.slot, candidate);
                }
            }
        }
        let mut last = best
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(self.commit - 1);
        // Re-propose only up to the first membership change recovered: the slots after it
        // are decided by the membership it makes, whose majority this election did not ask.
        // Once it is chosen, this leader runs phase 1 again (see "Reconfiguration").
        let change = (best.iter())
            .find(|(_, (_, _, v))| v.has_membership_tag())
            .map(|(&slot, _)| slot);
        let mut hold = None;
        if let Some(slot) = change {
            last = slot;
            hold = Some(Hold {
                slot,
                voters: self.membership.voters.clone(),
                reelect: true,
            });
        }
        // The term opens with a no-op after the recovered slots (or with the recovered
        // change, which a new election follows).
        let barrier = if hold.is_some() { last } else { last + 1 };
        let mut entries = Vec::new();
        let mut inflight = BTreeMap::new();
        for slot in self.commit..=barrier {
            let (chosen, value) = match best.remove(&slot) {
                Some((chosen, _, v)) if slot <= last => (chosen, v),
                _ => (false, Value::noop()),
            };
            // Re-proposed even when known chosen: followers may lack it, and they accept the
            // same value.
            self.store(slot, ballot, value.clone(), chosen);
            entries.push((slot, value));
            if !chosen {
                inflight.insert(slot, Inflight::sent_at(self.cfg.id, self.now));
            }
        }
        self.role = RoleState::Leader(Box::new(Leadership {
            ballot,
            barrier,
            next_slot: barrier + 1,
            inflight,
            queue: VecDeque::new(),
            waiting_reads: Vec::new(),
            reads: Vec::new(),
            read_round: 0,
            read_round_unsent: false,
            acked_round: BTreeMap::new(),
            heard_from: BTreeSet::new(),
            follower_commit: BTreeMap::new(),
            last_heard: BTreeMap::new(),
            change: None,
            hold,
        }));
        self.leader = Some(self.cfg.id);
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        // Heard at once, before the recovered values: those can be large enough to take the
        // followers longer than an election timeout to receive and persist, and a follower
        // that did not hear from the winner meanwhile would stand for election again.
        self.send_heartbeats();
        let commit = self.commit;
        for to in self.peers() {
            self.send_accepts(to, ballot, entries.clone(), commit);
        }
        self.check_chosen(entries_slots(commit, barrier));
    }

    /// Leaves candidacy or leadership: pending reads fail, queued proposals go back.
    pub(crate) fn become_follower(&mut self) {
        if let RoleState::Leader(l) = std::mem::replace(&mut self.role, RoleState::Follower) {
            self.ready.failed_reads.extend(l.waiting_reads);
            self.ready.failed_reads.extend(l.reads.iter().map(|r| r.id));
            self.ready.dropped_proposals.extend(l.queue);
            self.leader = None;
        }
    }

    pub(crate) fn leader_tick(&mut self) {
        if self.membership.voters.len() == 1 {
            // A sole voter decides what it stored since the last tick (see `check_chosen`).
            let slots = match &self.role {
                RoleState::Leader(l) => l.inflight.keys().copied().collect(),
                _ => Vec::new(),
            };
            self.check_chosen(slots);
            if !matches!(self.role, RoleState::Leader(_)) {
                return;
            }
        }
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.cfg.heartbeat_interval {
            self.heartbeat_elapsed = 0;
            self.send_heartbeats();
            self.resend_unacknowledged();
        }
        // Check quorum: a leader that heard from no majority for a few election timeouts
        // steps down, so that clients stop waiting on it (safety never depended on this).
        // Not after one: a follower persisting a large value answers nothing meanwhile, and
        // with one replica of three down, a leader that stepped down for that would leave
        // its group electing instead of committing.
        self.election_elapsed += 1;
        if self.election_elapsed >= CHECK_QUORUM_TIMEOUTS * self.cfg.election_timeout.1 {
            self.election_elapsed = 0;
            let (majority, members) = (self.membership.majority(), &self.membership);
            let own = usize::from(members.is_voter(self.cfg.id));
            let RoleState::Leader(l) = &mut self.role else {
                return;
            };
            let heard = members.count_voters(&l.heard_from) + own;
            l.heard_from.clear();
            if heard < majority {
                self.become_follower();
                self.reset_election_timer();
            }
        }
    }

    fn send_heartbeats(&mut self) {
        let commit = self.commit;
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        l.read_round_unsent = false;
        let body = Body::Heartbeat {
            ballot: l.ballot,
            commit,
            read_round: l.read_round,
        };
        self.broadcast(&body);
        // Removed members too, for a while: they learn their removal from the log.
        let now = self.now;
        self.departed.retain(|_, until| now <= *until);
        let departed: Vec<ReplicaId> = self.departed.keys().copied().collect();
        for to in departed {
            self.send(to, body.clone());
        }
    }

    /// Re-sends, to each acceptor that has not acknowledged them, the in-flight slots sent at
    /// least half an election timeout ago: accepts and their acknowledgements may be lost, and a
    /// slot nobody re-sends would stall the log forever.
    fn resend_unacknowledged(&mut self) {
        let (now, interval, commit) = (
            self.now,
            // Half the shortest election timeout: often enough that a lost accept costs less
            // than an election would, rarely enough that re-sending large values to a
            // follower that is down costs little.
            u64::from(self.cfg.election_timeout.0 / 2).max(u64::from(self.cfg.heartbeat_interval)),
            self.commit,
        );
        let peers = self.peers();
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        let ballot = l.ballot;
        let mut outgoing = Vec::new();
        for to in peers {
            let entries: Vec<(Slot, Value)> = l
                .inflight
                .iter()
                .filter(|(_, i)| i.resend_due(interval, now) && !i.acks.contains(&to))
                .filter_map(|(&slot, _)| Some((slot, self.log.get(&slot)?.value.clone())))
                .collect();
            if !entries.is_empty() {
                outgoing.push((to, entries));
            }
        }
        for i in l.inflight.values_mut() {
            if i.resend_due(interval, now) {
                i.sent_at = now;
                i.resends += 1;
            }
        }
        for (to, entries) in outgoing {
            self.send_accepts(to, ballot, entries, commit);
        }
    }

    /// Starts the confirmation round of reads asked since the last one, if any.
    pub(crate) fn flush_read_round(&mut self) {
        if matches!(&self.role, RoleState::Leader(l) if l.read_round_unsent) {
            self.send_heartbeats();
        }
    }

    /// Packs queued commands into new slots while the pipeline window has room, and sends
    /// them to every follower in one message.
    pub(crate) fn flush_proposals(&mut self) {
        let commit = self.commit;
        let (max_cmds, max_bytes, window) = (
            self.cfg.max_batch_commands.max(1),
            self.cfg.max_batch_bytes,
            self.cfg.max_inflight_slots.max(1),
        );
        let (id, now) = (self.cfg.id, self.now);
        let voters = self.membership.voters.clone();
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        let mut new_slots = Vec::new();
        // A membership change goes alone in its slot, and nothing after it until it is
        // chosen (α = 1: the membership that decides a slot is known when it is proposed).
        if l.hold.is_none() && l.next_slot.saturating_sub(commit) < window {
            if let Some(next) = l.change.take() {
                let slot = l.open_slot(id, now);
                l.hold = Some(Hold {
                    slot,
                    reelect: false,
                    voters,
                });
                new_slots.push((
                    slot,
                    Value {
                        commands: vec![next.encode()],
                    },
                ));
            }
        }
        while l.hold.is_none()
            && !l.queue.is_empty()
            && l.next_slot.saturating_sub(commit) < window
            && l.next_slot < crate::replica::MAX_SLOT
        {
            let mut value = Value::noop();
            let mut bytes = 0;
            while let Some(cmd) = l.queue.front() {
                if !value.commands.is_empty()
                    && (value.commands.len() >= max_cmds || bytes + cmd.len() > max_bytes)
                {
                    break;
                }
                bytes += cmd.len();
                value.commands.extend(l.queue.pop_front());
            }
            let slot = l.open_slot(id, now);
            new_slots.push((slot, value));
        }
        if new_slots.is_empty() {
            return;
        }
        let ballot = l.ballot;
        for (slot, value) in &new_slots {
            self.store(*slot, ballot, value.clone(), false);
        }
        let slots: Vec<Slot> = new_slots.iter().map(|(s, _)| *s).collect();
        for to in self.peers() {
            self.send_accepts(to, ballot, new_slots.clone(), commit);
        }
        self.check_chosen(slots);
    }

    pub(crate) fn on_accepted(&mut self, from: ReplicaId, ballot: Ballot, slots: Vec<Slot>) {
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        if l.ballot != ballot {
            return; // an acceptance of an older ballot proves nothing now
        }
        l.heard_from.insert(from);
        l.last_heard.insert(from, self.now);
        for slot in &slots {
            if let Some(i) = l.inflight.get_mut(slot) {
                i.acks.insert(from);
            }
        }
        self.check_chosen(slots);
    }

    /// Marks as chosen the given in-flight slots that a majority accepted — counting this
    /// replica's own acceptance only once it is taken for persisting. With peers among the
    /// voters that always holds (their acks are fed after the persist of the `Ready` that
    /// sent the slot); a sole voter would otherwise decide in the step that stored the slot,
    /// and its commit index could reach learners in an early `Accept` or `Heartbeat` before
    /// the acceptance is durable (`reconfig3` seed 94): it decides at its next tick instead.
    fn check_chosen(&mut self, slots: Vec<Slot>) {
        let (majority, members) = (self.membership.majority(), &self.membership);
        // A replica alone in its group tells nobody before the persist: no need to wait.
        let unsaved: &[_] = if self.has_peers() {
            &self.ready.entries
        } else {
            &[]
        };
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        let mut chosen = Vec::new();
        for slot in slots {
            if l.inflight
                .get(&slot)
                .is_some_and(|i| members.count_voters(&i.acks) >= majority)
                && !unsaved.iter().any(|e| e.slot == slot && !e.chosen)
            {
                l.inflight.remove(&slot);
                chosen.push(slot);
            }
        }
        for slot in chosen {
            if let Some(e) = self.log.get_mut(&slot) {
                e.chosen = true;
                let entry = crate::ready::PersistedEntry {
                    slot,
                    ballot: e.ballot,
                    value: e.value.clone(),
                    chosen: true,
                };
                self.ready.entries.push(entry);
            }
        }
        self.advance_commit();
    }

    pub(crate) fn on_heartbeat_ack(
        &mut self,
        from: ReplicaId,
        ballot: Ballot,
        read_round: u64,
        their_commit: Slot,
    ) {
        let (commit, log_start, max_learn, max_learn_bytes) = (
            self.commit,
            self.log_start,
            self.cfg.max_learn_entries,
            self.cfg.message_bytes(),
        );
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        if l.ballot != ballot {
            return;
        }
        l.heard_from.insert(from);
        l.last_heard.insert(from, self.now);
        l.follower_commit.insert(from, (their_commit, self.now));
        let acked = l.acked_round.entry(from).or_insert(0);
        *acked = (*acked).max(read_round);
        if their_commit < log_start {
            // What it lacks is compacted here: it needs the application's snapshot.
            self.request_snapshot(from);
        } else if their_commit < commit {
            // Bounded in entries and in bytes (at least one entry): a follower far behind on
            // large commands gets several messages, never one huge one.
            let mut bytes = 0;
            let entries: Vec<(Slot, Value)> = self
                .log
                .range(their_commit..commit)
                .take(max_learn.max(1))
                .take_while(|(_, e)| {
                    let first = bytes == 0;
                    bytes += e.value.payload_bytes().max(1);
                    first || bytes <= max_learn_bytes
                })
                .map(|(&s, e)| (s, e.value.clone()))
                .collect();
            self.send(from, Body::Learn { ballot, entries });
        }
        self.check_reads();
    }

    /// Called whenever the commit index may have moved: a leader whose term-opening no-op is
    /// now chosen gives waiting reads their index.
    pub(crate) fn on_commit_advanced(&mut self) {
        let commit = self.commit;
        let voters_changed = std::mem::take(&mut self.voters_changed);
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        let passed = l.hold.take_if(|h| commit > h.slot);
        if passed.is_some() || voters_changed {
            let reelect = voters_changed
                || passed.is_some_and(|h| h.reelect || h.voters != self.membership.voters);
            if !self.is_voter() {
                // Removed: a leader no longer. A last heartbeat tells the new voters the
                // change is chosen (one that misses it campaigns anyway: see
                // `may_campaign`).
                self.send_heartbeats();
                self.become_follower();
                self.leader = None;
                return;
            }
            if reelect {
                // Phase 1 among the new voters before proposing anything they decide.
                self.start_election();
                return;
            }
        }
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        if commit > l.barrier && !l.waiting_reads.is_empty() {
            if !l.read_round_unsent {
                l.read_round += 1;
                l.read_round_unsent = true;
            }
            let round = l.read_round;
            for id in std::mem::take(&mut l.waiting_reads) {
                l.reads.push(crate::replica::PendingRead {
                    id,
                    index: commit,
                    round,
                });
            }
            self.check_reads();
        }
    }
}

impl Leadership {
    /// Takes the next slot for a new proposal, in flight from tick `now` with the leader's
    /// (`id`) own acceptance.
    fn open_slot(&mut self, id: ReplicaId, now: u64) -> Slot {
        let slot = self.next_slot;
        self.next_slot += 1;
        self.inflight.insert(slot, Inflight::sent_at(id, now));
        slot
    }
}

impl Replica {
    /// True if this replica sends to anyone: a member other than itself, or a removed one
    /// it still tells about the log.
    pub(crate) fn has_peers(&self) -> bool {
        self.membership.members().any(|m| m != self.cfg.id) || !self.departed.is_empty()
    }

    /// Every member but this one.
    pub(crate) fn peers(&self) -> Vec<ReplicaId> {
        let me = self.cfg.id;
        self.membership.members().filter(|&m| m != me).collect()
    }

    /// Sends `entries` to `to` in `Accept`s of at most about `4 * max_batch_bytes` of values
    /// each (a larger single value goes alone): several large commands in flight must not
    /// make one message too large for the transport, or it would never arrive.
    pub(crate) fn send_accepts(
        &mut self,
        to: ReplicaId,
        ballot: Ballot,
        entries: Vec<(Slot, Value)>,
        commit: Slot,
    ) {
        let budget = self.cfg.message_bytes();
        for entries in split_by_bytes(entries, budget, |(_, v)| v.payload_bytes() + 16) {
            let body = Body::Accept {
                ballot,
                entries,
                commit,
            };
            self.send(to, body);
        }
    }
}

fn entries_slots(from: Slot, to_inclusive: Slot) -> Vec<Slot> {
    (from..=to_inclusive).collect()
}
