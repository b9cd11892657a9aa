//! The replica: acceptor, learner and (when elected) proposer of one group member, as a pure
//! state machine. This file holds the state, the public driving API (message dispatch,
//! compaction, snapshots, read index) and the timers; `config.rs` holds the [`Config`],
//! `acceptor.rs` the acceptor rules, `learner.rs` the learner rules and `leader.rs` elections
//! and the leader's work.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use crate::config::{Config, ConfigError, MIN_ELECTION_RANGE};
use crate::membership::Membership;
use crate::message::{AcceptedEntry, Body, Message};
use crate::ready::{ReadState, Ready};
use crate::storage::PersistentState;
use crate::types::{Ballot, Command, Digest, ReplicaId, Slot, Value};

/// Highest slot number any replica uses; messages naming higher ones are impossible (a
/// thousand years at a billion slots a second) and are ignored, so slot arithmetic never
/// overflows.
pub const MAX_SLOT: Slot = u64::MAX / 4;

/// A candidate re-proposes every slot between its commit index and the highest slot a promise
/// reports; if that span exceeds this, it stands down instead (it is far behind, or the report
/// is bogus), leaving the election to a replica that knows more. An acceptor never accepts a
/// slot this far above its own commit index (a forged `Accept` there would make every
/// candidate that hears its promise stand down, for good), so an honest promise never reports
/// one.
pub const MAX_RECOVERY_SPAN: Slot = 1 << 20;

/// Election timeouts double at most this many times while no leader is heard from.
pub const MAX_ELECTION_BACKOFF: u32 = 2;

/// A `Prepare` names at most this many values the candidate holds.
pub const MAX_HELD_IN_PREPARE: usize = 4096;

/// Highest ballot round accepted in a message, for the same reason.
pub const MAX_ROUND: u64 = u64::MAX / 4;

/// A message is heard only if its ballot's round is at most this far above the highest
/// round this replica has promised or heard (see [`Replica::round_limit`]). Honest
/// candidates pick one round above the highest they heard, so they never jump far; a forged
/// message that names a round near [`MAX_ROUND`] — where no election could ever exceed the
/// promise — is refused instead of promised. A message from further ahead still raises the
/// limit by this much (without being obeyed), so a replica whose rounds really did run far
/// ahead (a long minority partition) is reached in a few messages, and a forger needs
/// `MAX_ROUND / MAX_ROUND_STEP` = 2^46 messages to bring any replica to the cap.
pub const MAX_ROUND_STEP: u64 = 1 << 16;

/// A snapshot from a peer other than the leader this replica follows is installed only if
/// that peer answered this replica's `Prepare` with `Compacted` (the answer that comes with a
/// snapshot) within this many (longest) election timeouts.
pub const SNAPSHOT_OFFER_TIMEOUTS: u64 = 8;

/// Every slot a message names.
fn message_slots(body: &Body) -> Box<dyn Iterator<Item = Slot> + '_> {
    match body {
        Body::Prepare {
            from_slot, held, ..
        } => Box::new(std::iter::once(*from_slot).chain(held.iter().map(|h| h.0))),
        Body::Promise {
            log_start,
            entries,
            from,
            to,
            ..
        } => Box::new(
            [*log_start, *from]
                .into_iter()
                .chain(*to)
                .chain(entries.iter().map(|e| e.slot)),
        ),
        Body::Accept {
            entries, commit, ..
        } => Box::new(std::iter::once(*commit).chain(entries.iter().map(|e| e.0))),
        Body::Accepted { slots, .. } => Box::new(slots.iter().copied()),
        Body::Heartbeat { commit, .. } | Body::HeartbeatAck { commit, .. } => {
            Box::new(std::iter::once(*commit))
        }
        Body::Learn { entries, .. } => Box::new(entries.iter().map(|e| e.0)),
        Body::Nack { .. } => Box::new(std::iter::empty()),
        Body::Compacted { log_start, .. } => Box::new(std::iter::once(*log_start)),
    }
}

/// A proposal or read reached a replica that does not lead; retry at `leader` if known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLeader {
    /// Who this replica believes leads.
    pub leader: Option<ReplicaId>,
}

/// The replica's current role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Accepts what a leader sends.
    Follower,
    /// Running phase 1 for its ballot.
    Candidate,
    /// Won phase 1; proposes.
    Leader,
}

/// One slot of the local log.
#[derive(Clone, Debug)]
pub(crate) struct LogEntry {
    pub ballot: Ballot,
    pub value: Value,
    pub chosen: bool,
}

/// Phase 1 in progress.
#[derive(Debug)]
pub(crate) struct Election {
    pub ballot: Ballot,
    /// The slot the `Prepare` asked reports from.
    pub from_slot: Slot,
    /// Complete promises: every entry each acceptor reported.
    pub promises: BTreeMap<ReplicaId, Vec<AcceptedEntry>>,
    /// Parts of promises still incomplete, by acceptor.
    pub parts: BTreeMap<ReplicaId, PromiseParts>,
    /// The values the `Prepare` named as held, by slot.
    pub held: BTreeMap<Slot, Digest>,
}

/// The parts of one acceptor's promise received so far, by the first slot each covers: where
/// the part ends (`None`: the end of the log) and its entries.
pub(crate) type PromiseParts = BTreeMap<Slot, (Option<Slot>, Vec<AcceptedEntry>)>;

/// A slot proposed by this leader and not yet chosen.
#[derive(Debug)]
pub(crate) struct Inflight {
    pub acks: BTreeSet<ReplicaId>,
    /// Tick the slot was last sent at (it is re-sent to silent acceptors after a while,
    /// since messages may be lost).
    pub sent_at: u64,
    /// How many times it was re-sent: each time waits twice as long as the last (up to
    /// [`MAX_RESEND_BACKOFF`]), so that a follower slow to persist large values is not sent
    /// them again faster than it can take them.
    pub resends: u32,
}

/// The longest wait before a slot is re-sent, as a power of two of the first one.
pub(crate) const MAX_RESEND_BACKOFF: u32 = 3;

impl Inflight {
    /// A slot sent at tick `now` by leader `id`, which accepted it itself.
    pub fn sent_at(id: ReplicaId, now: u64) -> Inflight {
        Inflight {
            acks: BTreeSet::from([id]),
            sent_at: now,
            resends: 0,
        }
    }

    /// True when the slot is due to be re-sent at tick `now`, the first wait being `interval`.
    pub fn resend_due(&self, interval: u64, now: u64) -> bool {
        self.sent_at + (interval << self.resends.min(MAX_RESEND_BACKOFF)) <= now
    }
}

/// A read waiting for its confirmation round.
#[derive(Debug)]
pub(crate) struct PendingRead {
    pub id: u64,
    pub index: Slot,
    pub round: u64,
}

/// State of a leader's term.
#[derive(Debug)]
pub(crate) struct Leadership {
    pub ballot: Ballot,
    /// The no-op that opened the term: reads wait until it is chosen (commit > barrier).
    pub barrier: Slot,
    pub next_slot: Slot,
    pub inflight: BTreeMap<Slot, Inflight>,
    pub queue: VecDeque<Command>,
    /// Reads asked before the barrier was chosen (no index yet).
    pub waiting_reads: Vec<u64>,
    pub reads: Vec<PendingRead>,
    /// Last read round started, and whether a heartbeat for it still has to go out.
    pub read_round: u64,
    pub read_round_unsent: bool,
    /// Highest read round each follower acknowledged in this ballot.
    pub acked_round: BTreeMap<ReplicaId, u64>,
    /// Followers heard from (in this ballot) since the last quorum check.
    pub heard_from: BTreeSet<ReplicaId>,
    /// Each follower's commit index as its last heartbeat ack said, and the tick it said so.
    pub follower_commit: BTreeMap<ReplicaId, (Slot, u64)>,
    /// The tick each follower was last heard from in this ballot (an acceptance or a
    /// heartbeat ack): who is live, for a removal's check.
    pub last_heard: BTreeMap<ReplicaId, u64>,
    /// A membership change asked for and not yet given a slot.
    pub change: Option<Membership>,
    /// A membership change in flight (proposed by this leader or recovered by its election):
    /// nothing is proposed after it until it is chosen.
    pub hold: Option<Hold>,
}

/// A leader's membership change in flight: its slot, the voters before it, and whether the
/// leader must run phase 1 again once it is chosen whatever it changed (its election
/// stopped re-proposing there, so slots above may hold values it did not recover).
#[derive(Debug)]
pub(crate) struct Hold {
    pub slot: Slot,
    pub voters: Vec<ReplicaId>,
    pub reelect: bool,
}

#[derive(Debug)]
pub(crate) enum RoleState {
    Follower,
    Candidate(Election),
    Leader(Box<Leadership>),
}

/// One member of a Multi-Paxos group. See the crate documentation for the protocol, and
/// [`Ready`] for what the driver must do with the output.
#[derive(Debug)]
pub struct Replica {
    pub(crate) cfg: Config,
    rng: u64,
    // Acceptor state (durable).
    pub(crate) promised: Ballot,
    pub(crate) log: BTreeMap<Slot, LogEntry>,
    /// Bytes of command payload in `log` (what the log costs in memory).
    pub(crate) log_bytes: usize,
    pub(crate) log_start: Slot,
    // Learner state.
    /// Every slot below is chosen and its value known here (or compacted).
    pub(crate) commit: Slot,
    /// Every slot below was handed to the driver in `Ready::committed`.
    pub(crate) applied: Slot,
    // Roles.
    pub(crate) role: RoleState,
    pub(crate) leader: Option<ReplicaId>,
    pub(crate) highest_seen: Ballot,
    // Timers.
    pub(crate) now: u64,
    pub(crate) election_elapsed: u32,
    /// Election timeouts in a row that passed without a leader being heard from (capped at
    /// [`MAX_ELECTION_BACKOFF`]): each after the first doubles the election timeout range,
    /// so that elections that take longer than the timeout (large values to recover on a
    /// busy machine) get to finish instead of being overtaken by the next one.
    pub(crate) silent_timeouts: u32,
    pub(crate) election_timeout: u32,
    pub(crate) heartbeat_elapsed: u32,
    /// Tick at which a snapshot was last requested for each peer (a lagging follower, or a
    /// candidate behind this replica's compacted log).
    pub(crate) snapshot_requested: BTreeMap<ReplicaId, u64>,
    /// Peers that answered a `Prepare` of this replica (in the ballot it was campaigning in)
    /// with `Compacted`, which comes with a snapshot, and the tick they did: the snapshots it
    /// asked for (see [`Replica::accepts_snapshot`]).
    pub(crate) snapshot_offers: BTreeMap<ReplicaId, u64>,
    /// The membership in force at the commit index.
    pub(crate) membership: Membership,
    /// The memberships in force from the log start on, by `since` (the last is `membership`).
    pub(crate) memberships: Vec<Membership>,
    /// A chosen change altered the voters since the leader last looked.
    pub(crate) voters_changed: bool,
    /// Members a chosen change removed, and the tick until which a leader keeps sending them
    /// heartbeats (and takes their acks, and catches them up): a removed replica learns of
    /// its removal only from the log, and the change that removed it ends its membership —
    /// without this, nobody would tell it.
    pub(crate) departed: BTreeMap<ReplicaId, u64>,
    /// This replica was a member at some point since it started.
    pub(crate) was_member: bool,
    pub(crate) ready: Ready,
}

impl Replica {
    /// A new member with an empty log, or why `cfg` cannot run.
    pub fn new(cfg: Config) -> Result<Replica, ConfigError> {
        Replica::restart(cfg, PersistentState::default(), 1)
    }

    /// A member rebuilt from what it persisted, whose application state covers every slot
    /// below `applied` (chosen values from there on are handed out again), or why `cfg`
    /// cannot run.
    pub fn restart(
        cfg: Config,
        state: PersistentState,
        applied: Slot,
    ) -> Result<Replica, ConfigError> {
        Replica::restart_with_membership(cfg, state, applied, None)
    }

    /// [`restart`](Replica::restart) for an application that keeps the membership in force
    /// at its applied index (snapshots carry it): `app_membership` is taken if it is newer
    /// than the persisted one — the application installed a snapshot, and the replica
    /// crashed before it persisted what the snapshot told it.
    pub fn restart_with_membership(
        cfg: Config,
        mut state: PersistentState,
        applied: Slot,
        app_membership: Option<Membership>,
    ) -> Result<Replica, ConfigError> {
        cfg.validate()?;
        let persisted_version = state.membership.as_ref().map_or(0, |m| m.version);
        let app_membership = app_membership.filter(|m| m.version > persisted_version);
        let newer = app_membership.is_some();
        if let Some(m) = app_membership {
            state.membership = Some(m);
        }
        let log_start = state.log_start.max(1);
        let rng = cfg.seed ^ cfg.id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d;
        let membership = (state.membership.clone()).unwrap_or_else(|| {
            let mut m = Membership::initial(&cfg.members, &cfg.learners);
            m.addresses = (cfg.addresses.iter())
                .filter(|(id, _)| m.contains(**id))
                .map(|(&id, a)| (id, a.clone()))
                .collect();
            m
        });
        let mut r = Replica {
            promised: state.promised,
            highest_seen: state.promised,
            log: state
                .entries
                .into_iter()
                .filter(|e| e.slot >= log_start)
                .map(|e| {
                    let entry = LogEntry {
                        ballot: e.ballot,
                        value: e.value,
                        chosen: e.chosen,
                    };
                    (e.slot, entry)
                })
                .collect(),
            log_bytes: 0,
            log_start,
            commit: log_start,
            applied: applied.max(log_start),
            role: RoleState::Follower,
            leader: None,
            now: 0,
            election_elapsed: 0,
            silent_timeouts: 0,
            election_timeout: 0,
            heartbeat_elapsed: 0,
            snapshot_requested: BTreeMap::new(),
            snapshot_offers: BTreeMap::new(),
            memberships: vec![membership.clone()],
            membership,
            voters_changed: false,
            departed: BTreeMap::new(),
            was_member: false,
            ready: Ready::default(),
            rng: rng | 1,
            cfg,
        };
        r.was_member = r.is_member();
        if newer {
            r.ready.membership = Some(r.membership.clone());
        }
        r.recount_log_bytes();
        r.reset_election_timer();
        r.advance_commit();
        if r.commit < r.applied {
            // The application covers slots the log does not know chosen: it installed a
            // snapshot, and the replica crashed before the compaction that goes with it was
            // persisted. Finish that compaction. Left as it was, the commit index would lag
            // the application: the log below it may hold values accepted but never chosen,
            // and as a leader this replica would re-propose (no-ops, say) in slots that are
            // chosen and applied — two values in one slot (`forged3` seed 2727).
            let index = r.applied.min(MAX_SLOT);
            r.log_start = index;
            r.log = r.log.split_off(&index);
            r.recount_log_bytes();
            r.commit = index;
            r.ready.compact_to = Some(index);
            r.advance_commit();
        }
        Ok(r)
    }

    // ----- Public driving API -----

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.cfg.id
    }

    /// Current role.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower => Role::Follower,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    /// Who this replica believes leads (itself included).
    pub fn leader(&self) -> Option<ReplicaId> {
        self.leader
    }

    /// The highest ballot promised.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// Every slot below this is known to be chosen.
    pub fn commit_index(&self) -> Slot {
        self.commit
    }

    /// Every slot below this was handed out for applying.
    pub fn applied_index(&self) -> Slot {
        self.applied
    }

    /// First slot still in the log.
    pub fn log_start(&self) -> Slot {
        self.log_start
    }

    /// Entries held in the log.
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Bytes of command payload held in the log (in memory until compacted).
    pub fn log_bytes(&self) -> usize {
        self.log_bytes
    }

    /// Bytes of command payload held in the log at `slots`.
    pub fn log_bytes_in(&self, slots: impl std::ops::RangeBounds<Slot>) -> usize {
        (self.log.range(slots))
            .map(|(_, e)| e.value.payload_bytes())
            .sum()
    }

    /// On a leader: the lowest commit index among the followers heard from within the last
    /// `within` ticks — the log below it is no longer needed to catch those followers up with
    /// `Learn`, so a driver that keeps it until then spares them a snapshot (and one that
    /// holds back proposals while the log above it is long keeps them close). `None` on a
    /// follower or candidate.
    pub fn followers_commit_floor(&self, within: u64) -> Option<Slot> {
        let RoleState::Leader(l) = &self.role else {
            return None;
        };
        let recent = self.now.saturating_sub(within);
        Some(
            l.follower_commit
                .values()
                .filter(|(_, heard)| *heard >= recent)
                .map(|(commit, _)| *commit)
                .min()
                .unwrap_or(self.commit),
        )
    }

    pub(crate) fn recount_log_bytes(&mut self) {
        self.log_bytes = self.log.values().map(|e| e.value.payload_bytes()).sum();
    }

    /// Advances the clock by one tick: heartbeats, elections, quorum checks.
    pub fn tick(&mut self) {
        self.now += 1;
        if matches!(self.role, RoleState::Leader(_)) {
            self.leader_tick();
        } else if !self.may_campaign() {
            // A learner (or a removed replica) never campaigns.
            self.election_elapsed = 0;
        } else {
            if matches!(self.role, RoleState::Candidate(_)) {
                // A sole voter wins here, once its promise is durable (see `maybe_win`).
                self.maybe_win();
                if matches!(self.role, RoleState::Leader(_)) {
                    return;
                }
            }
            self.election_elapsed += 1;
            if self.election_elapsed >= self.election_timeout {
                self.silent_timeouts = (self.silent_timeouts + 1).min(MAX_ELECTION_BACKOFF + 1);
                self.start_election();
            }
        }
    }

    /// Queues a command for proposal. Only the leader accepts; commands queued between two
    /// [`take_ready`](Replica::take_ready) calls share slots (batching).
    pub fn propose(&mut self, command: Command) -> Result<(), NotLeader> {
        match &mut self.role {
            RoleState::Leader(l) => {
                l.queue.push_back(command);
                Ok(())
            }
            _ => Err(self.not_leader()),
        }
    }

    /// Asks for a linearizable read with the caller's `id`; answered by a [`ReadState`] in a
    /// later [`Ready`] (or by `failed_reads` if leadership is lost first).
    pub fn read_index(&mut self, id: u64) -> Result<(), NotLeader> {
        let not_leader = self.not_leader();
        let commit = self.commit;
        let RoleState::Leader(l) = &mut self.role else {
            return Err(not_leader);
        };
        if commit <= l.barrier {
            l.waiting_reads.push(id);
        } else {
            if !l.read_round_unsent {
                l.read_round += 1;
                l.read_round_unsent = true;
            }
            let round = l.read_round;
            l.reads.push(PendingRead {
                id,
                index: commit,
                round,
            });
        }
        self.check_reads();
        Ok(())
    }

    /// Feeds a message from a peer.
    pub fn step(&mut self, msg: Message) {
        let departed_ack = matches!(msg.body, Body::HeartbeatAck { .. })
            && self
                .departed
                .get(&msg.from)
                .is_some_and(|&until| self.now <= until);
        if msg.to != self.cfg.id
            || msg.from == self.cfg.id
            || !(self.membership.contains(msg.from) || departed_ack)
        {
            return; // misaddressed or from a stranger (or a removed member): never trusted
        }
        let from = msg.from;
        // A ballot names its proposer: only it may send proposals in it (the learner rule
        // "same ballot, same value" depends on one sender per ballot).
        let proposal = matches!(
            msg.body,
            Body::Prepare { .. }
                | Body::Accept { .. }
                | Body::Heartbeat { .. }
                | Body::Learn { .. }
        );
        if proposal && msg.body.ballot().replica != from {
            return;
        }
        if msg.body.ballot().round > MAX_ROUND || message_slots(&msg.body).any(|s| s > MAX_SLOT) {
            return; // impossible numbers: no honest replica gets there
        }
        let limit = self.round_limit();
        if msg.body.ballot().round > limit {
            // Too far ahead to obey: it could be a forged jump to the cap. Only the limit
            // moves (by one step), so that an honest replica far ahead is heard after a few
            // of its messages; nothing is promised, persisted or answered.
            self.highest_seen = self.highest_seen.max(Ballot::new(limit, 0));
            return;
        }
        self.observe(msg.body.ballot());
        match msg.body {
            Body::Prepare {
                ballot,
                from_slot,
                held,
            } => self.on_prepare(from, ballot, from_slot, &held),
            Body::Promise {
                ballot,
                log_start,
                entries,
                from: part_from,
                to,
            } => self.on_promise(from, ballot, log_start, entries, (part_from, to)),
            Body::Nack { promised } => self.on_nack(promised),
            Body::Compacted { ballot, .. } => self.on_compacted(from, ballot),
            Body::Accept {
                ballot,
                entries,
                commit,
            } => self.on_accept(from, ballot, entries, commit),
            Body::Accepted { ballot, slots } => self.on_accepted(from, ballot, slots),
            Body::Heartbeat {
                ballot,
                commit,
                read_round,
            } => self.on_heartbeat(from, ballot, commit, read_round),
            Body::HeartbeatAck {
                ballot,
                read_round,
                commit,
            } => self.on_heartbeat_ack(from, ballot, read_round, commit),
            Body::Learn { ballot, entries } => {
                // Chosen values are believed only from the leader this replica follows, in
                // the ballot it promised: a leader sends `Learn` only in answer to a
                // heartbeat ack, which this replica sends after following (and durably
                // promising) that leader's ballot, so an honest `Learn` never carries a
                // higher ballot, and one in a lower ballot comes from a deposed leader. See
                // "Forged messages" in the crate documentation.
                if ballot == self.promised
                    && self.leader == Some(from)
                    && matches!(self.role, RoleState::Follower)
                {
                    self.on_learn(ballot, entries);
                }
            }
        }
    }

    /// The application's state is durable up to (not including) `index`: the log below it may
    /// go. Never waits for other replicas; one that later needs those slots gets a snapshot.
    pub fn compact(&mut self, index: Slot) {
        let index = index.min(self.applied).min(MAX_SLOT);
        if index <= self.log_start {
            return;
        }
        self.log_start = index;
        self.log = self.log.split_off(&index);
        self.recount_log_bytes();
        self.trim_memberships();
        self.ready.compact_to = Some(index);
    }

    /// The highest ballot round a message may carry to be heard: [`MAX_ROUND_STEP`] above the
    /// highest round this replica promised or heard of, and never above [`MAX_ROUND`].
    pub fn round_limit(&self) -> u64 {
        (self.highest_seen.max(self.promised).round)
            .saturating_add(MAX_ROUND_STEP)
            .min(MAX_ROUND)
    }

    /// Whether the driver may install an application snapshot that `from` streamed, covering
    /// every slot below `index`. Call it before handing the snapshot's bytes to the
    /// application (and again right before [`restore_snapshot`](Replica::restore_snapshot)
    /// if anything was fed in between); a snapshot it refuses is dropped unread.
    ///
    /// Yes only if `index` is news (above the applied index, not an impossible slot), `from`
    /// is another member, and either `from` is the leader this replica follows (a leader
    /// streams a snapshot to a follower whose heartbeat ack shows it behind the leader's
    /// compacted log) or `from` answered this replica's `Prepare` with `Compacted` within
    /// the last [`SNAPSHOT_OFFER_TIMEOUTS`] election timeouts (an acceptor that compacted the
    /// slots a candidate lacks streams it a snapshot). Anything else was not asked for: a
    /// forged one could replace the application's state with anything. A refused snapshot
    /// costs only time: the leader (or the acceptor, at the next `Prepare`) offers it again.
    pub fn accepts_snapshot(&self, from: ReplicaId, index: Slot) -> bool {
        if index <= self.applied
            || index > MAX_SLOT
            || from == self.cfg.id
            || !self.membership.contains(from)
        {
            return false;
        }
        let following = self.leader == Some(from) && matches!(self.role, RoleState::Follower);
        let window = SNAPSHOT_OFFER_TIMEOUTS.saturating_mul(u64::from(self.cfg.election_timeout.1));
        let offered = (self.snapshot_offers.get(&from))
            .is_some_and(|&t| self.now <= t.saturating_add(window));
        following || offered
    }

    /// The driver installed an application snapshot covering every slot below `index`,
    /// which carried `membership` (what [`membership_at`](Replica::membership_at) gave its
    /// sender for `index`): as [`restore_snapshot`](Replica::restore_snapshot), and the
    /// membership takes effect unless this replica already knows a newer one.
    pub fn restore_snapshot_with_membership(&mut self, index: Slot, membership: Membership) {
        if index <= self.applied || index > MAX_SLOT {
            return;
        }
        if membership.version > self.membership.version {
            let voters_before = self.membership.voters.clone();
            self.install_membership(membership, index);
            self.voters_changed |= voters_before != self.membership.voters;
        }
        self.restore_snapshot(index);
    }

    /// The driver installed an application snapshot covering every slot below `index`.
    ///
    /// Take the pending [`Ready`] *before* installing the snapshot: values it still hands out
    /// for slots below `index` must not be applied on top of the snapshot. A leader that is
    /// told this steps down first (its term's bookkeeping assumed its own log).
    pub fn restore_snapshot(&mut self, index: Slot) {
        if index <= self.applied || index > MAX_SLOT {
            return;
        }
        if matches!(self.role, RoleState::Leader(_) | RoleState::Candidate(_)) {
            self.become_follower();
            self.role = RoleState::Follower;
        }
        self.log_start = self.log_start.max(index);
        self.log = self.log.split_off(&self.log_start);
        self.recount_log_bytes();
        self.trim_memberships();
        self.commit = self.commit.max(index);
        self.applied = index;
        self.ready.compact_to = Some(self.log_start);
        self.advance_commit();
    }

    /// Everything produced since the last call. Flushes queued proposals into slots first.
    pub fn take_ready(&mut self) -> Ready {
        self.flush_proposals();
        self.flush_read_round();
        std::mem::take(&mut self.ready)
    }

    // ----- Helpers -----

    /// Asks the driver to stream an application snapshot to `peer`, at most once per
    /// election timeout per peer (a transfer takes a while; asking again on every message
    /// would start it over and over).
    pub(crate) fn request_snapshot(&mut self, peer: ReplicaId) {
        let (now, every) = (self.now, u64::from(self.cfg.election_timeout.1));
        let last = self.snapshot_requested.get(&peer).copied();
        if last.is_none_or(|t| now >= t + every) {
            self.snapshot_requested.insert(peer, now);
            self.ready.send_snapshot.push(peer);
        }
    }

    pub(crate) fn send(&mut self, to: ReplicaId, body: Body) {
        self.ready.messages.push(Message {
            from: self.cfg.id,
            to,
            body,
        });
    }

    pub(crate) fn broadcast(&mut self, body: &Body) {
        for to in self.peers() {
            self.send(to, body.clone());
        }
    }

    pub(crate) fn observe(&mut self, ballot: Ballot) {
        self.highest_seen = self.highest_seen.max(ballot);
    }

    pub(crate) fn not_leader(&self) -> NotLeader {
        NotLeader {
            leader: self.leader.filter(|&l| l != self.cfg.id),
        }
    }

    pub(crate) fn own_ballot(&self) -> Option<Ballot> {
        match &self.role {
            RoleState::Follower => None,
            RoleState::Candidate(e) => Some(e.ballot),
            RoleState::Leader(l) => Some(l.ballot),
        }
    }

    pub(crate) fn reset_election_timer(&mut self) {
        let shift = self.silent_timeouts.saturating_sub(1);
        let (lo, hi) = self.cfg.election_timeout;
        let (lo, hi) = (lo << shift, hi << shift);
        let span = u64::from(hi.saturating_sub(lo).max(1));
        self.election_timeout = lo.max(1) + (self.next_random() % span) as u32;
        self.election_elapsed = 0;
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: deterministic, no dependency.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Reads whose confirmation round a quorum acknowledged in the current ballot are served.
    pub(crate) fn check_reads(&mut self) {
        let (majority, members) = (self.membership.majority(), &self.membership);
        // A leader that campaigned as a voter-to-be (see `may_campaign`) is not one yet.
        let own = usize::from(members.is_voter(self.cfg.id));
        let RoleState::Leader(l) = &mut self.role else {
            return;
        };
        let acked = &l.acked_round;
        let mut done = Vec::new();
        l.reads.retain(|r| {
            let confirmations = own
                + (acked.iter())
                    .filter(|&(id, &a)| a >= r.round && members.is_voter(*id))
                    .count();
            if confirmations >= majority {
                done.push(ReadState {
                    id: r.id,
                    index: r.index,
                });
                false
            } else {
                true
            }
        });
        self.ready.read_states.extend(done);
    }
}
