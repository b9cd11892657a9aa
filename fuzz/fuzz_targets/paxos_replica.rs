//! The Multi-Paxos replica (`strata-paxos`) under arbitrary inputs. The first byte picks a mode:
//!
//! - **single** (even): one `Replica` of a 3- or 5-member group (small timeouts, ids that may
//!   include 0 and `u64::MAX`) is fed a sequence of operations decoded from the input: messages
//!   of every `Body` variant with arbitrary ballots, slots (0, its commit index and nearby,
//!   `commit + MAX_RECOVERY_SPAN` and one above, `u64::MAX`, random), values, senders and
//!   recipients (strangers and itself included); honest-looking replies to what it sent (so it
//!   gets elected and leads); `tick`, `propose`, `read_index`, `compact`, `restore_snapshot` and
//!   `take_ready`. It must never panic, and its state and every `Ready` must stay sane (see
//!   `Checker`). Some steps are *isolated* (a `take_ready` right before and after) so that what
//!   one message caused can be checked: a Prepare/Accept/Heartbeat below the promised ballot
//!   only earns a Nack, a stale Promise/Accepted/HeartbeatAck changes no commit index, a
//!   misaddressed message, one from a stranger or one whose round is beyond the replica's
//!   `round_limit` changes nothing at all, a Learn other than from the followed leader in the
//!   promised ballot changes nothing, an Accept never makes its own entries chosen, and no
//!   Accept or Learn puts a slot beyond `MAX_RECOVERY_SPAN` above the commit index in the log.
//! - **cluster** (odd): three replicas with in-memory storage; the input schedules ticks,
//!   proposals, reads, `take_ready` (persist, then send, then apply), message delivery (in any
//!   order, duplicated or dropped), compaction, snapshot installation and crash/restart from
//!   storage. Safety: no two replicas ever commit (or mark chosen) different values for one
//!   slot; reads are linearizable (a read index covers every slot committed anywhere before
//!   the read was asked); plus the single-replica checks on every replica.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use libfuzzer_sys::fuzz_target;
use strata_fuzz::Cursor;
use strata_paxos::replica::MAX_RECOVERY_SPAN;
use strata_paxos::{
    AcceptedEntry, Ballot, Body, Command, Config, MemStorage, Message, Ready, Replica,
    ReplicaId, Role, Slot, Storage, Value,
};

/// Keeps one input's work small.
const MAX_OPS: usize = 400;
/// Messages in flight in cluster mode (older ones beyond this are dropped).
const MAX_POOL: usize = 2048;

/// Known protocol bugs this target can steer around (to keep exploring past them), by name in
/// the comma-separated environment variable `PAXOS_FUZZ_AVOID` (see fuzz/regressions/paxos_replica):
/// - `round_overflow`: ballot rounds near `u64::MAX` (`start_election` overflows);
/// - `own_span`: slots far above the commit index in Accept/Learn (a candidate's own log was not
///   held to `MAX_RECOVERY_SPAN`; since issue 15 an acceptor takes no slot beyond it);
/// - `huge_snapshot`: `restore_snapshot` to an index near `u64::MAX` (`become_leader` and
///   `advance_commit` overflow);
/// - `forged_ballot`: Prepare/Accept/Heartbeat/Learn in a ballot whose owner is not the sender
///   (the replica obeys them; an honest proposer only ever speaks in its own ballot);
/// - `leader_commit_jump`: a leader's commit index moved past its next slot by
///   `restore_snapshot` or a Learn in a higher ballot (`flush_proposals` underflows).
fn avoid(bug: &str) -> bool {
    static AVOID: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    AVOID
        .get_or_init(|| {
            std::env::var("PAXOS_FUZZ_AVOID")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .collect()
        })
        .iter()
        .any(|b| b == bug)
}

fn u64_raw(c: &mut Cursor<'_>) -> u64 {
    let mut b = [0u8; 8];
    for x in &mut b {
        *x = c.u8();
    }
    u64::from_le_bytes(b)
}

/// A membership change of ids 1..=6 (a group's members and strangers).
fn membership_change(c: &mut Cursor<'_>) -> strata_paxos::MembershipChange {
    use strata_paxos::MembershipChange::*;
    let id = 1 + u64::from(c.u8() % 6);
    match c.u8() % 3 {
        0 => AddLearner(id, format!("h:{id}")),
        1 => Promote(id),
        _ => Remove(id),
    }
}

/// The command of a membership change value: a membership of ids 1..=6 with a version near
/// the start, or a truncated one.
fn membership_change_value(c: &mut Cursor<'_>) -> Command {
    let pick = |c: &mut Cursor<'_>| -> Vec<ReplicaId> {
        let bits = c.u8();
        (1..=6).filter(|i| bits & (1 << i) != 0).collect()
    };
    let voters = pick(c);
    let learners: Vec<ReplicaId> = pick(c).into_iter().filter(|l| !voters.contains(l)).collect();
    let m = strata_paxos::Membership {
        version: u64::from(c.u8() % 4),
        since: 0,
        voters,
        learners,
        addresses: Default::default(),
    };
    let mut bytes = m.encode();
    if c.u8() % 8 == 0 {
        bytes.truncate(c.u8() as usize % bytes.len().max(1));
    }
    bytes
}

fn small_config(c: &mut Cursor<'_>, id: ReplicaId, members: Vec<ReplicaId>) -> Config {
    let mut cfg = Config::new(id, members);
    cfg.heartbeat_interval = 1 + u32::from(c.u8() % 3);
    // Mostly valid election ranges (above the heartbeat, at least 2 ticks wide); now and then
    // a degenerate one, which `Replica::new` must refuse.
    let lo = cfg.heartbeat_interval + 1 + u32::from(c.u8() % 6);
    let width = c.u8();
    let width = if width < 16 { u32::from(width % 2) } else { 2 + u32::from(width % 6) };
    cfg.election_timeout = (lo, lo + width);
    cfg.max_batch_commands = 1 + (c.u8() % 4) as usize;
    cfg.max_batch_bytes = 1 + (c.u8() % 16) as usize;
    cfg.max_inflight_slots = 1 + u64::from(c.u8() % 8);
    cfg.max_learn_entries = 1 + (c.u8() % 8) as usize;
    cfg.seed = u64::from(c.u8());
    cfg
}

/// Checks one replica's state after every operation and every `Ready` it hands out.
struct Checker {
    id: ReplicaId,
    members: Vec<ReplicaId>,
    promised: Ballot,
    last_ready_promised: Option<Ballot>,
    commit: Slot,
    applied: Slot,
    /// The slot the next `Ready::committed` entry must have (unless a snapshot moved it).
    next_committed: Slot,
    /// Indexes of snapshots restored since the last `take_ready`.
    jumps: Vec<Slot>,
}

impl Checker {
    fn new(r: &Replica, members: &[ReplicaId], persisted_promise: Option<Ballot>) -> Checker {
        Checker {
            id: r.id(),
            members: members.to_vec(),
            promised: r.promised(),
            last_ready_promised: persisted_promise,
            commit: r.commit_index(),
            applied: r.applied_index(),
            next_committed: r.log_start().max(1),
            jumps: Vec::new(),
        }
    }

    fn state(&mut self, r: &Replica, what: &str) {
        let (p, commit, applied, start) =
            (r.promised(), r.commit_index(), r.applied_index(), r.log_start());
        assert!(p >= self.promised, "{what}: promise went down {:?} -> {p:?}", self.promised);
        assert!(commit >= self.commit, "{what}: commit went down {} -> {commit}", self.commit);
        assert!(applied >= self.applied, "{what}: applied went down {} -> {applied}", self.applied);
        assert!(applied <= commit, "{what}: applied {applied} > commit {commit}");
        assert!(start >= 1 && start <= applied, "{what}: log_start {start}, applied {applied}");
        match r.role() {
            Role::Leader => {
                assert_eq!(r.leader(), Some(self.id), "{what}: a leader that names another");
                assert_eq!(p.replica, self.id, "{what}: leading in a ballot not its own: {p:?}");
            }
            Role::Candidate => {
                assert_eq!(p.replica, self.id, "{what}: candidate of a ballot not its own: {p:?}")
            }
            Role::Follower => {}
        }
        self.promised = p;
        self.commit = commit;
        self.applied = applied;
    }

    fn restored(&mut self, applied_before: Slot, index: Slot) {
        // Indexes beyond MAX_SLOT are impossible and ignored by the replica.
        if index > applied_before && index <= strata_paxos::replica::MAX_SLOT {
            self.jumps.push(index);
        }
    }

    fn ready(&mut self, r: &Replica, rd: &Ready) {
        let p = r.promised();
        if let Some(b) = rd.promised {
            assert_eq!(b, p, "Ready.promised is not the current promise");
            if let Some(last) = self.last_ready_promised {
                assert!(b > last, "Ready.promised {b:?} not above an earlier one {last:?}");
            }
            self.last_ready_promised = Some(b);
        }
        for m in &rd.messages {
            // The durable-ballot rule: a Prepare leaves only with (or after) the persist of
            // its ballot, so a restarted replica can never run in it again.
            if let Body::Prepare { ballot, .. } = m.body {
                assert!(m.body.vouches_for_state(), "a Prepare may leave before the persist");
                assert!(
                    self.last_ready_promised.is_some_and(|d| d >= ballot),
                    "Prepare in {ballot:?} while {:?} is the last promise handed out to persist",
                    self.last_ready_promised
                );
            }
        }
        for e in &rd.entries {
            assert!(e.slot >= 1, "entry for slot 0: {e:?}");
            assert!(e.ballot <= p, "entry in ballot {:?} above the promise {p:?}", e.ballot);
        }
        if let Some(c) = rd.compact_to {
            assert!(c <= r.log_start() && c >= 1, "compact_to {c} vs log_start {}", r.log_start());
        }
        for m in &rd.messages {
            assert_eq!(m.from, self.id, "message sent as someone else: {m:?}");
            // To a member: the first ones, one a chosen change added, or one it removed (a
            // leader keeps telling those about the log for a while).
            let member = self.members.contains(&m.to)
                || r.membership().contains(m.to)
                || r.departed().contains(&m.to);
            assert!(m.to != self.id && member, "message to {}: {m:?}", m.to);
            let b = m.body.ballot();
            // A refusal (Compacted) echoes the candidate's ballot, which it did not promise.
            if !matches!(m.body, Body::Compacted { .. }) {
                assert!(b <= p, "message with a ballot above the promise {p:?}: {m:?}");
            }
            match &m.body {
                Body::Prepare { ballot, .. }
                | Body::Accept { ballot, .. }
                | Body::Heartbeat { ballot, .. }
                | Body::Learn { ballot, .. } => {
                    assert_eq!(ballot.replica, self.id, "proposer message in another's ballot: {m:?}")
                }
                _ => {}
            }
            if let Body::Accept { entries, .. } = &m.body {
                assert!(entries.iter().all(|(s, _)| *s >= 1), "Accept for slot 0: {m:?}");
            }
        }
        for &to in &rd.send_snapshot {
            let member = self.members.contains(&to)
                || r.membership().contains(to)
                || r.departed().contains(&to);
            assert!(to != self.id && member, "snapshot for {to}");
        }
        for (slot, _) in &rd.committed {
            let s = *slot;
            if s != self.next_committed {
                assert!(
                    s > self.next_committed && self.jumps.contains(&s),
                    "committed slot {s}, expected {} (snapshots: {:?})",
                    self.next_committed,
                    self.jumps
                );
            }
            self.next_committed = s.saturating_add(1);
        }
        if let Some(&j) = self.jumps.iter().max() {
            self.next_committed = self.next_committed.max(j);
        }
        self.jumps.clear();
        assert_eq!(
            self.next_committed,
            r.applied_index(),
            "Ready.committed does not end at the applied index"
        );
        for rs in &rd.read_states {
            assert!(rs.index <= r.commit_index(), "read index {} beyond commit", rs.index);
        }
        self.state(r, "take_ready");
    }
}

// ----- Single-replica mode -----

struct Single<'a, 'c> {
    c: &'c mut Cursor<'a>,
    r: Replica,
    members: Vec<ReplicaId>,
    chk: Checker,
    /// Messages the replica sent (recent ones), to reply to.
    outbox: Vec<Message>,
    next_cmd: u64,
    queued_cmds: BTreeSet<Command>,
    next_read: u64,
    pending_reads: BTreeSet<u64>,
}

impl Single<'_, '_> {
    fn member(&mut self) -> ReplicaId {
        let i = self.c.u8() as usize % self.members.len();
        self.members[i]
    }

    fn peer(&mut self) -> ReplicaId {
        let others: Vec<ReplicaId> =
            self.members.iter().copied().filter(|&m| m != self.r.id()).collect();
        others[self.c.u8() as usize % others.len()]
    }

    /// Mostly a peer; sometimes itself, a stranger.
    fn sender(&mut self) -> ReplicaId {
        match self.c.u8() % 16 {
            0 => self.r.id(),
            1 => 999_999,
            2 => u64_raw(self.c),
            _ => self.peer(),
        }
    }

    fn recipient(&mut self) -> ReplicaId {
        match self.c.u8() % 16 {
            0 => self.peer(),
            1 => u64_raw(self.c),
            _ => self.r.id(),
        }
    }

    fn ballot(&mut self) -> Ballot {
        let b = self.any_ballot();
        if avoid("round_overflow") {
            Ballot::new(b.round.min(1 << 62), b.replica)
        } else {
            b
        }
    }

    fn any_ballot(&mut self) -> Ballot {
        let p = self.r.promised();
        match self.c.u8() % 10 {
            0 | 1 => p,
            2 => Ballot::new(p.round.saturating_add(1), self.member()),
            3 => Ballot::new(p.round.saturating_sub(1), self.member()),
            4 => Ballot::new(p.round, self.member()),
            5 => Ballot::ZERO,
            6 => Ballot::new(u64::MAX, self.member()),
            7 => Ballot::new(u64_raw(self.c), u64_raw(self.c)),
            _ => Ballot::new(u64::from(self.c.u8() % 8), self.member()),
        }
    }

    fn slot(&mut self) -> Slot {
        let commit = self.r.commit_index();
        match self.c.u8() % 12 {
            0 => 0,
            1 => u64::MAX,
            2 => u64::MAX - u64::from(self.c.u8()),
            3 => commit.saturating_add(MAX_RECOVERY_SPAN + 1),
            4 => u64_raw(self.c),
            5 => self.r.log_start().saturating_add(u64::from(self.c.u8() % 4)),
            6 => commit.saturating_sub(u64::from(self.c.u8() % 4)),
            // The largest span a candidate still recovers: expensive (a million slots), so
            // only behind a magic byte.
            7 if self.c.u8() == 0xa5 => commit.saturating_add(MAX_RECOVERY_SPAN),
            _ => commit.saturating_add(u64::from(self.c.u8() % 8)),
        }
    }

    fn value(&mut self) -> Value {
        if self.c.u8() % 8 == 0 {
            // A membership change (well formed or not, stale or not).
            let m = membership_change_value(&mut self.c);
            return Value { commands: vec![m] };
        }
        let n = self.c.u8() % 4;
        let commands = (0..n)
            .map(|_| {
                let len = (self.c.u8() % 6) as usize;
                self.c.take(len).to_vec()
            })
            .collect();
        Value { commands }
    }

    fn promise_entries(&mut self) -> Vec<AcceptedEntry> {
        let n = self.c.u8() % 5;
        (0..n)
            .map(|_| {
                let held = self.c.u8() & 3 == 0;
                AcceptedEntry {
                    slot: self.slot(),
                    ballot: self.ballot(),
                    value: if held { Value::default() } else { self.value() },
                    chosen: self.c.u8() & 1 == 1,
                    held,
                }
            })
            .collect()
    }

    /// Slots and values of an Accept or Learn: what may land in the replica's own log.
    fn slot_values(&mut self) -> Vec<(Slot, Value)> {
        let n = self.c.u8() % 5;
        let limit = if avoid("own_span") {
            self.r.commit_index().saturating_add(4096)
        } else {
            Slot::MAX
        };
        (0..n).map(|_| (self.slot().min(limit), self.value())).collect()
    }

    fn body(&mut self) -> Body {
        match self.c.u8() % 9 {
            0 => Body::Prepare {
                ballot: self.ballot(),
                from_slot: self.slot(),
                held: (0..self.c.u8() % 3).map(|_| (self.slot(), [self.c.u8(); 32])).collect(),
            },
            1 => Body::Promise {
                ballot: self.ballot(),
                log_start: self.slot(),
                entries: self.promise_entries(),
                from: self.slot(),
                to: if self.c.u8() & 1 == 0 { None } else { Some(self.slot()) },
            },
            2 => Body::Nack { promised: self.ballot() },
            3 => Body::Accept {
                ballot: self.ballot(),
                entries: self.slot_values(),
                commit: self.slot(),
            },
            4 => {
                let n = self.c.u8() % 5;
                Body::Accepted {
                    ballot: self.ballot(),
                    slots: (0..n).map(|_| self.slot()).collect(),
                }
            }
            5 => Body::Heartbeat {
                ballot: self.ballot(),
                commit: self.slot(),
                read_round: self.read_round(),
            },
            6 => Body::HeartbeatAck {
                ballot: self.ballot(),
                read_round: self.read_round(),
                commit: self.slot(),
            },
            7 => Body::Learn { ballot: self.ballot(), entries: self.slot_values() },
            _ => Body::Compacted { ballot: self.ballot(), log_start: self.slot() },
        }
    }

    fn read_round(&mut self) -> u64 {
        match self.c.u8() % 4 {
            0 => 0,
            1 => u64::MAX,
            _ => u64::from(self.c.u8() % 8),
        }
    }

    fn message(&mut self) -> Message {
        let (from, to) = (self.sender(), self.recipient());
        let mut body = self.body();
        if avoid("forged_ballot") {
            match &mut body {
                Body::Prepare { ballot, .. }
                | Body::Accept { ballot, .. }
                | Body::Heartbeat { ballot, .. }
                | Body::Learn { ballot, .. } => ballot.replica = from,
                _ => {}
            }
        }
        if avoid("leader_commit_jump") && self.r.role() == Role::Leader {
            if let Body::Learn { ballot, .. } = &mut body {
                *ballot = (*ballot).min(self.r.promised());
            }
        }
        Message { from, to, body }
    }

    /// An honest-looking answer of a peer to something the replica sent (fields sometimes
    /// bent), so that the replica gets elected, leads, and serves reads.
    fn reply(&mut self) -> Option<Message> {
        if self.outbox.is_empty() {
            return None;
        }
        let i = self.c.u16() as usize % self.outbox.len();
        let sent = self.outbox[i].clone();
        let bend = self.c.u8();
        let body = match sent.body {
            Body::Prepare { ballot, from_slot, held } => Body::Promise {
                ballot,
                log_start: if bend & 1 == 0 { from_slot.min(self.r.log_start()) } else { self.slot() },
                entries: if bend & 2 == 0 {
                    // The values the candidate said it holds, left out.
                    held.iter()
                        .filter(|_| bend & 4 == 0)
                        .map(|&(slot, _)| AcceptedEntry {
                            slot,
                            ballot: self.ballot(),
                            value: Value::default(),
                            chosen: false,
                            held: true,
                        })
                        .collect()
                } else {
                    self.promise_entries().into_iter().filter(|e| e.slot >= from_slot).collect()
                },
                from: from_slot,
                to: None,
            },
            Body::Accept { ballot, entries, .. } => Body::Accepted {
                ballot,
                slots: if bend & 1 == 0 {
                    entries.iter().map(|(s, _)| *s).collect()
                } else {
                    entries.iter().map(|(s, _)| *s).filter(|_| self.c.u8() & 1 == 0).collect()
                },
            },
            Body::Heartbeat { ballot, commit, read_round } => Body::HeartbeatAck {
                ballot,
                read_round,
                commit: if bend & 1 == 0 { commit } else { self.slot() },
            },
            other => Body::Nack {
                promised: Ballot::new(other.ballot().round.saturating_add(1), sent.to),
            },
        };
        Some(Message { from: sent.to, to: sent.from, body })
    }

    fn take(&mut self) -> Ready {
        let rd = self.r.take_ready();
        self.chk.ready(&self.r, &rd);
        for id in rd.read_states.iter().map(|s| s.id).chain(rd.failed_reads.iter().copied()) {
            assert!(self.pending_reads.remove(&id), "read {id} answered twice or never asked");
        }
        for cmd in &rd.dropped_proposals {
            assert!(self.queued_cmds.contains(cmd), "dropped a command never proposed: {cmd:?}");
        }
        self.outbox.extend(rd.messages.iter().cloned());
        if self.outbox.len() > 64 {
            let excess = self.outbox.len() - 64;
            self.outbox.drain(..excess);
        }
        rd
    }

    /// Steps one message between two `take_ready` calls and checks what it alone caused.
    fn isolated_step(&mut self, m: Message) {
        let _ = self.take();
        let (p, commit, role, id) =
            (self.r.promised(), self.r.commit_index(), self.r.role(), self.r.id());
        let (leader, round_limit) = (self.r.leader(), self.r.round_limit());
        // Proposals in a ballot only count from the ballot's owner; impossible numbers are
        // ignored too (the replica drops such messages without a word).
        let forged = matches!(
            m.body,
            Body::Prepare { .. } | Body::Accept { .. } | Body::Heartbeat { .. } | Body::Learn { .. }
        ) && m.body.ballot().replica != m.from;
        // Rounds beyond the replica's limit are not obeyed either (they only raise the limit,
        // which nothing outside shows).
        let impossible = m.body.ballot().round > strata_paxos::replica::MAX_ROUND
            || m.body.ballot().round > round_limit
            || message_slots(&m.body).into_iter().any(|s| s > strata_paxos::replica::MAX_SLOT);
        let trusted = m.to == id
            && m.from != id
            && self.members.contains(&m.from)
            && !forged
            && !impossible;
        let desc = format!("{m:?}");
        let from = m.from;
        let body = m.body.clone();
        self.r.step(m);
        self.chk.state(&self.r, "isolated step");
        let rd = self.take();
        if !trusted {
            assert!(rd.is_empty(), "untrusted {desc} caused {rd:?}");
            assert_eq!(self.r.promised(), p);
            assert_eq!(self.r.commit_index(), commit);
            assert_eq!(self.r.role(), role);
            return;
        }
        let b = body.ballot();
        let log_start = self.r.log_start();
        match body {
            Body::Prepare { from_slot, .. } if b >= p && from_slot < log_start => {
                // A candidate behind this replica's compacted log: refused, not promised.
                assert!(rd.promised.is_none() && rd.entries.is_empty(), "{desc} caused {rd:?}");
                assert_eq!(self.r.role(), role, "{desc} changed the role");
                assert_eq!(
                    rd.messages,
                    vec![Message { from: id, to: from, body: Body::Compacted { ballot: b, log_start } }],
                    "{desc}"
                );
            }
            Body::Compacted { .. } if role != Role::Candidate || b != p => {
                assert!(rd.is_empty(), "harmless {desc} caused {rd:?}");
                assert_eq!(self.r.role(), role, "harmless {desc} changed the role");
            }
            Body::Prepare { .. } | Body::Accept { .. } | Body::Heartbeat { .. } if b < p => {
                assert!(rd.promised.is_none() && rd.entries.is_empty(), "stale {desc} caused {rd:?}");
                assert!(rd.committed.is_empty(), "stale {desc} committed {rd:?}");
                assert_eq!(self.r.commit_index(), commit, "stale {desc} moved the commit index");
                assert_eq!(self.r.role(), role, "stale {desc} changed the role");
                assert_eq!(
                    rd.messages,
                    vec![Message { from: id, to: from, body: Body::Nack { promised: p } }],
                    "stale {desc}"
                );
            }
            Body::Promise { .. } | Body::Accepted { .. } | Body::HeartbeatAck { .. }
                if b != p || role == Role::Follower =>
            {
                assert!(rd.promised.is_none() && rd.entries.is_empty(), "stale {desc} caused {rd:?}");
                assert!(rd.committed.is_empty(), "stale {desc} committed {rd:?}");
                assert!(rd.messages.is_empty(), "stale {desc} answered {rd:?}");
                assert_eq!(self.r.commit_index(), commit, "stale {desc} moved the commit index");
            }
            Body::Learn { .. } if b != p || leader != Some(from) || role != Role::Follower => {
                // Chosen values only from the leader followed, in the promised ballot.
                assert!(rd.is_empty(), "untrusted {desc} caused {rd:?}");
                assert_eq!(self.r.commit_index(), commit, "untrusted {desc} moved the commit index");
            }
            Body::Nack { promised } if role == Role::Follower || promised <= p => {
                assert!(rd.is_empty(), "harmless {desc} caused {rd:?}");
                assert_eq!(self.r.role(), role, "harmless {desc} changed the role");
            }
            _ => {}
        }
        // An Accept never makes its own entries chosen (its commit index counts only below
        // its first entry), and neither it nor a Learn stores a slot out of recovery's reach.
        if let Body::Accept { entries, .. } | Body::Learn { entries, .. } = &body {
            let far = commit.saturating_add(MAX_RECOVERY_SPAN);
            for e in &rd.entries {
                assert!(e.slot <= far, "{desc} stored slot {} beyond {far}", e.slot);
            }
            if matches!(body, Body::Accept { .. }) {
                if let Some(lowest) = entries.iter().map(|e| e.0).min() {
                    for e in rd.entries.iter().filter(|e| e.chosen) {
                        assert!(e.slot < lowest, "{desc} made its own slot {} chosen", e.slot);
                    }
                }
            }
        }
        // A Promise whose ballot is not the candidate's, or any Accepted/HeartbeatAck, never
        // makes an entry chosen outside the replica's own ballot.
        if !matches!(body, Body::Accept { .. } | Body::Heartbeat { .. } | Body::Learn { .. }) {
            // (Its own ballot: a recovered membership change chosen at once ends that ballot
            // in the same step — phase 1 again among the new voters — so the entry may carry
            // the ballot just left.)
            let own = self.r.promised();
            for e in rd.entries.iter().filter(|e| e.chosen) {
                assert!(
                    e.ballot == own || (e.ballot.replica == own.replica && e.ballot < own),
                    "{desc} chose {e:?} outside its ballot {own:?}"
                );
            }
        }
    }

    fn run(&mut self) {
        for _ in 0..MAX_OPS {
            if self.c.is_empty() {
                break;
            }
            match self.c.u8() % 16 {
                0..=2 => {
                    let m = self.message();
                    self.r.step(m);
                }
                3 | 4 => {
                    let m = self.message();
                    self.isolated_step(m);
                }
                5..=7 => {
                    if let Some(m) = self.reply() {
                        if self.c.u8() & 1 == 0 {
                            self.r.step(m);
                        } else {
                            self.isolated_step(m);
                        }
                    }
                }
                8 | 9 => {
                    for _ in 0..=self.c.u8() % 8 {
                        self.r.tick();
                    }
                }
                10 if self.c.u8() % 4 == 0 => {
                    let change = membership_change(&mut self.c);
                    let _ = self.r.propose_membership_change(change);
                }
                10 => {
                    let n = 1 + self.c.u8() % 4;
                    for _ in 0..n {
                        self.next_cmd += 1;
                        let cmd = self.next_cmd.to_le_bytes()[..1 + (self.next_cmd % 8) as usize].to_vec();
                        if self.r.propose(cmd.clone()).is_ok() {
                            self.queued_cmds.insert(cmd);
                        }
                    }
                }
                11 => {
                    self.next_read += 1;
                    if self.r.read_index(self.next_read).is_ok() {
                        self.pending_reads.insert(self.next_read);
                    }
                }
                12 => {
                    let index = match self.c.u8() % 4 {
                        0 => self.r.applied_index(),
                        1 => self.slot(),
                        _ => self.r.applied_index().saturating_sub(u64::from(self.c.u8() % 4)),
                    };
                    self.r.compact(index);
                }
                13 => {
                    let index = match self.c.u8() % 4 {
                        0 => self.r.commit_index().saturating_add(u64::from(self.c.u8() % 8)),
                        _ => self.slot(),
                    };
                    let index = if avoid("huge_snapshot") { index.min(1 << 62) } else { index };
                    if avoid("leader_commit_jump") && self.r.role() == Role::Leader {
                        continue;
                    }
                    let before = self.r.applied_index();
                    self.r.restore_snapshot(index);
                    self.chk.restored(before, index);
                }
                _ => {
                    let _ = self.take();
                }
            }
            self.chk.state(&self.r, "op");
        }
        let _ = self.take();
    }
}

fn single(c: &mut Cursor<'_>) {
    let b = c.u8();
    let n = if b & 1 == 0 { 3 } else { 5 };
    let members: Vec<ReplicaId> = if b & 2 == 0 {
        (1..=n).collect()
    } else {
        [0, u64::MAX, 7, 1 << 40, 2].into_iter().take(n as usize).collect()
    };
    let id = members[(b >> 2) as usize % members.len()];
    let cfg = small_config(c, id, members.clone());
    let Ok(r) = Replica::new(cfg.clone()) else {
        assert!(cfg.validate().is_err());
        return;
    };
    let chk = Checker::new(&r, &members, None);
    let mut s = Single {
        c,
        r,
        members,
        chk,
        outbox: Vec::new(),
        next_cmd: 0,
        queued_cmds: BTreeSet::new(),
        next_read: 0,
        pending_reads: BTreeSet::new(),
    };
    s.run();
}

// ----- Cluster mode -----

struct Node {
    cfg: Config,
    r: Replica,
    store: MemStorage,
    chk: Checker,
}

struct Cluster {
    members: Vec<ReplicaId>,
    nodes: Vec<Node>,
    pool: Vec<Message>,
    /// The one value committed (or marked chosen) anywhere for each slot.
    chosen: BTreeMap<Slot, Value>,
    /// One above the highest slot any replica handed out as committed.
    committed_bound: Slot,
    /// For each pending read: `committed_bound` when it was asked.
    reads: BTreeMap<u64, Slot>,
    next_read: u64,
    next_cmd: u64,
    /// Snapshots asked for: (recipient, sender, index).
    snapshots: Vec<(usize, ReplicaId, Slot)>,
}

impl Cluster {
    /// The node of replica `id`; `None` for a learner a change added, which runs nowhere
    /// here (what is sent to it is lost, as to a dead replica).
    fn node_of(&self, id: ReplicaId) -> Option<usize> {
        self.members.iter().position(|&m| m == id)
    }

    fn agree(&mut self, slot: Slot, value: &Value, who: ReplicaId, how: &str) {
        match self.chosen.get(&slot) {
            Some(v) => assert_eq!(v, value, "slot {slot}: replica {who} {how} another value"),
            None => {
                self.chosen.insert(slot, value.clone());
            }
        }
    }

    fn take(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let rd = n.r.take_ready();
        n.chk.ready(&n.r, &rd);
        n.store.persist(&rd).unwrap();
        let id = n.r.id();
        let applied = n.r.applied_index();
        for e in rd.entries.iter().filter(|e| e.chosen) {
            self.agree(e.slot, &e.value, id, "marked chosen");
        }
        for (slot, value) in &rd.committed {
            self.agree(*slot, value, id, "committed");
            self.committed_bound = self.committed_bound.max(slot + 1);
        }
        for rs in &rd.read_states {
            let bound = self.reads.remove(&rs.id).expect("a read answered twice or never asked");
            assert!(
                rs.index >= bound,
                "read {} at index {} misses slots committed before it was asked (< {bound})",
                rs.id,
                rs.index
            );
        }
        for id in &rd.failed_reads {
            assert!(self.reads.remove(id).is_some(), "read {id} failed twice or never asked");
        }
        for &to in &rd.send_snapshot {
            if let Some(to) = self.node_of(to) {
                self.snapshots.push((to, id, applied));
            }
        }
        self.pool.extend(rd.messages);
        if self.pool.len() > MAX_POOL {
            let excess = self.pool.len() - MAX_POOL;
            self.pool.drain(..excess);
        }
    }

    fn deliver(&mut self, m: Message) {
        let Some(i) = self.node_of(m.to) else {
            return;
        };
        let n = &mut self.nodes[i];
        n.r.step(m);
        n.chk.state(&n.r, "deliver");
    }

    fn restart(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let state = n.store.load().unwrap();
        let promised = state.promised;
        let applied = state.log_start;
        n.r = Replica::restart(n.cfg.clone(), state, applied).expect("validated at start");
        n.chk = Checker::new(&n.r, &self.members, Some(promised));
        assert_eq!(n.r.promised(), promised);
    }

    fn run(&mut self, c: &mut Cursor<'_>) {
        for _ in 0..MAX_OPS {
            if c.is_empty() {
                break;
            }
            let op = c.u8();
            let i = (op >> 5) as usize % self.nodes.len();
            match op % 16 {
                0 | 1 => {
                    for _ in 0..=c.u8() % 4 {
                        self.nodes[i].r.tick();
                    }
                }
                2 if c.u8() % 4 == 0 => {
                    // Reconfiguration: add a learner (never started), promote, remove.
                    let change = membership_change(c);
                    let _ = self.nodes[i].r.propose_membership_change(change);
                }
                2 => {
                    for _ in 0..=c.u8() % 3 {
                        self.next_cmd += 1;
                        let cmd = self.next_cmd.to_le_bytes()[..2].to_vec();
                        let _ = self.nodes[i].r.propose(cmd);
                    }
                }
                3 => {
                    self.next_read += 1;
                    if self.nodes[i].r.read_index(self.next_read).is_ok() {
                        self.reads.insert(self.next_read, self.committed_bound);
                    }
                }
                4 | 5 => self.take(i),
                6..=8 => {
                    if !self.pool.is_empty() {
                        let k = c.u16() as usize % self.pool.len();
                        let m = self.pool.remove(k);
                        self.deliver(m);
                    }
                }
                9 => {
                    // Duplicate: deliver a copy, keep the original in flight.
                    if !self.pool.is_empty() {
                        let k = c.u16() as usize % self.pool.len();
                        let m = self.pool[k].clone();
                        self.deliver(m);
                    }
                }
                10 => {
                    if !self.pool.is_empty() {
                        let k = c.u16() as usize % self.pool.len();
                        self.pool.remove(k);
                    }
                }
                11 => {
                    // Deliver everything in flight (in order, or newest first), then take all.
                    let batch = std::mem::take(&mut self.pool);
                    let reverse = c.u8() & 1 == 1;
                    let mut batch: Vec<Message> = batch;
                    if reverse {
                        batch.reverse();
                    }
                    for m in batch {
                        self.deliver(m);
                    }
                    for j in 0..self.nodes.len() {
                        self.take(j);
                    }
                }
                12 => {
                    let n = &mut self.nodes[i];
                    let index = n.r.applied_index().saturating_sub(u64::from(c.u8() % 4));
                    n.r.compact(index);
                    n.chk.state(&n.r, "compact");
                }
                13 => {
                    if !self.snapshots.is_empty() {
                        let k = c.u8() as usize % self.snapshots.len();
                        let (j, from, index) = self.snapshots.swap_remove(k);
                        let n = &mut self.nodes[j];
                        // As a driver must: only a snapshot the replica accepts from there.
                        if !n.r.accepts_snapshot(from, index) {
                            continue;
                        }
                        let before = n.r.applied_index();
                        n.r.restore_snapshot(index);
                        n.chk.restored(before, index);
                        n.chk.state(&n.r, "restore_snapshot");
                    }
                }
                14 => self.restart(i),
                _ => {
                    for j in 0..self.nodes.len() {
                        self.nodes[j].r.tick();
                        self.take(j);
                    }
                }
            }
        }
    }
}

fn cluster(c: &mut Cursor<'_>) {
    let members: Vec<ReplicaId> = vec![1, 2, 3];
    let mut nodes = Vec::new();
    for &id in &members {
        let cfg = small_config(c, id, members.clone());
        let Ok(r) = Replica::new(cfg.clone()) else {
            return;
        };
        let chk = Checker::new(&r, &members, None);
        nodes.push(Node { cfg, r, store: MemStorage::new(), chk });
    }
    let mut cl = Cluster {
        members,
        nodes,
        pool: Vec::new(),
        chosen: BTreeMap::new(),
        committed_bound: 1,
        reads: BTreeMap::new(),
        next_read: 0,
        next_cmd: 0,
        snapshots: Vec::new(),
    };
    cl.run(c);
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    if c.u8() & 1 == 0 {
        single(&mut c);
    } else {
        cluster(&mut c);
    }
});

/// Every slot a message names (mirrors the replica's own check).
fn message_slots(body: &Body) -> Vec<Slot> {
    match body {
        Body::Prepare { from_slot, held, .. } => {
            std::iter::once(*from_slot).chain(held.iter().map(|h| h.0)).collect()
        }
        Body::Promise { log_start, entries, from, to, .. } => [*log_start, *from]
            .into_iter()
            .chain(*to)
            .chain(entries.iter().map(|e| e.slot))
            .collect(),
        Body::Accept { entries, commit, .. } => {
            std::iter::once(*commit).chain(entries.iter().map(|e| e.0)).collect()
        }
        Body::Accepted { slots, .. } => slots.clone(),
        Body::Heartbeat { commit, .. } | Body::HeartbeatAck { commit, .. } => vec![*commit],
        Body::Learn { entries, .. } => entries.iter().map(|e| e.0).collect(),
        Body::Nack { .. } => Vec::new(),
        Body::Compacted { log_start, .. } => vec![*log_start],
    }
}
