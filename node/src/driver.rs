//! The driver loop: feeds the pure Paxos core with messages, ticks and proposals, makes its
//! state durable before the messages that depend on it go out, applies chosen commands in order
//! and completes the callers waiting for them.
//!
//! ```text
//!   callers ──propose/read──┐                        ┌── fsync thread (Paxos engine)
//!   transport ──messages────┼─► driver task ─persist─┘
//!   ticker ──tick───────────┘        │ then: send ──► transport
//!                                    │ then: apply ─► state machine ─► reply to callers
//! ```
//! Persisting runs on a dedicated thread, never on the async runtime's workers, so a slow disk
//! stalls this node's progress but never starves other tasks (heartbeats of other groups, RPC
//! handling).
//!
//! # The `Ready` contract, as this driver keeps it
//!
//! `strata_paxos::ready` lists what a driver may do; this one does the following, in order:
//! - **Batches inputs.** It waits for one input (a message, proposal, read, snapshot or tick),
//!   yields once (so that the tasks woken with it queue theirs), then feeds every other input
//!   already queued (up to 4096) before one `take_ready`.
//! - **Sends early what vouches for nothing.** Messages whose `vouches_for_state()` is false
//!   (a leader's `Accept`, `Heartbeat`, `Learn`) go to the transport before the persist, so the
//!   network round trip overlaps the fsync; everything else — answers, and a candidate's
//!   `Prepare`, whose ballot must be durable before anyone hears of it — goes after.
//! - **Persists atomically, and feeds nothing meanwhile.** The promise, entries and compaction
//!   of one `Ready` are one engine write batch (synced when they hold a promise or an
//!   acceptance) on the fsync thread; the driver task awaits it before it sends the rest,
//!   applies, or takes the next input. A persist that needs no sync (chosen marks and
//!   compaction only, as the contract allows) is not written on its own: it is carried into
//!   the next persist (up to 256 entries or 4 MiB of commands), or written when the node is
//!   idle or stops — under load a follower's learned marks and a leader's commit marks cost
//!   no trip to the fsync thread of their own.
//! - **Applies, serves reads, installs a received snapshot, streams requested snapshots,** in
//!   that order; a snapshot is installed only after the pending `Ready` was handled, so nothing
//!   older is applied on top of it. A round applying large values does so in
//!   `block_in_place`, off the runtime's other tasks.
//! - **Keeps a leader's followers while it is busy:** from the persist to the end of the round,
//!   the [`beater`](crate::beater) repeats the leader's last heartbeats every heartbeat
//!   interval, so that a round longer than an election timeout (large values synced twice)
//!   does not cost an election.
//!
//! A crash anywhere in that sequence is one the contract allows (the simulator in
//! `strata_paxos::sim` explores each point); the node restarts from the engine.
//!
//! Proposals are wrapped in an envelope `(origin replica, request id, payload)` so that the
//! replica that proposed a command can hand the state machine's reply to the waiting caller
//! when it applies it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use strata::coding::{get_fixed64, put_fixed64};
use strata_paxos::{Membership, NotLeader, Replica, ReplicaId, Role, Slot, Storage};
use tokio::sync::{mpsc, oneshot};

use crate::beater::Beater;
use crate::metrics::{gauge_value, NodeMetrics};
use crate::node::{Admission, Input, NodeConfig, NodeError, NodeStatus, ProposalReply, Shared};
use crate::state_machine::{IncomingSnapshot, StateMachine};
use crate::transport::Transport;
/// Runs `persist` on a dedicated thread and reports completion.
struct Persister {
    tx: std::sync::mpsc::Sender<(strata_paxos::Ready, oneshot::Sender<Result<(), NodeError>>)>,
}

impl Persister {
    fn spawn<P>(mut storage: P) -> Persister
    where
        P: Storage + Send + 'static,
        P::Error: std::fmt::Display,
    {
        let (tx, rx) = std::sync::mpsc::channel::<(
            strata_paxos::Ready,
            oneshot::Sender<Result<(), NodeError>>,
        )>();
        std::thread::Builder::new()
            .name("paxos-fsync".into())
            .spawn(move || {
                for (ready, done) in rx {
                    let _ = done.send(
                        (storage.persist(&ready)).map_err(|e| NodeError::Storage(e.to_string())),
                    );
                }
            })
            .expect("spawning the fsync thread");
        Persister { tx }
    }

    async fn persist(&self, ready: strata_paxos::Ready) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((ready, tx))
            .map_err(|_| NodeError::Storage("fsync thread gone".into()))?;
        rx.await
            .map_err(|_| NodeError::Storage("fsync thread gone".into()))?
    }
}

struct Driver<S: StateMachine> {
    replica: Replica,
    sm: S,
    transport: Arc<dyn Transport>,
    persister: Persister,
    rx: mpsc::Receiver<Input<S::Reply>>,
    cfg: NodeConfig,
    next_request: u64,
    /// Proposals of this replica waiting for their command to be applied, by request id, each
    /// holding its admitted bytes until it is resolved.
    pending: HashMap<u64, (ProposalReply<S::Reply>, Admission)>,
    /// Reads confirmed by a quorum, waiting for the apply index: by index.
    reads: BTreeMap<Slot, Vec<oneshot::Sender<Result<(), NodeError>>>>,
    /// Reads waiting for their confirmation round, by read id.
    waiting_reads: HashMap<u64, oneshot::Sender<Result<(), NodeError>>>,
    next_read: u64,
    /// A snapshot received from a peer, installed at the end of the next round.
    snapshot_to_install: Option<(ReplicaId, Slot, Option<Membership>, IncomingSnapshot)>,
    /// Membership changes proposed here, waiting to be chosen: the membership each leads to.
    membership_waiters: Vec<(Membership, oneshot::Sender<Result<Membership, NodeError>>)>,
    /// The membership version the transport was last given peers for.
    transport_version: Option<u64>,
    /// Repeats a leader's last heartbeats while this driver persists or applies a long round.
    beater: Beater,
    /// Persists that needed no sync (chosen marks, compaction), carried into the next one
    /// (see "The `Ready` contract"), and the bytes of commands their entries hold.
    carried: Option<(strata_paxos::Ready, usize)>,
    /// [`NodeStatus::backlog_bytes`] and when it was counted: a sum over the log, so counted
    /// at most once a tick rather than every round.
    backlog: (usize, Option<tokio::time::Instant>),
    /// Bytes of peer messages in the input queue (shared with [`Node::deliver`]).
    queued_bytes: Arc<AtomicUsize>,
    status: Arc<Mutex<NodeStatus>>,
    metrics: Arc<NodeMetrics>,
}

/// A persist needing no sync is carried into the next one while the carried entries are
/// fewer than this and hold fewer bytes of commands than [`CARRY_BYTES`].
const CARRY_ENTRIES: usize = 256;
/// See [`CARRY_ENTRIES`].
const CARRY_BYTES: usize = 4 << 20;

/// A round applying at least this many bytes of commands does so in `block_in_place`.
const BLOCKING_APPLY_BYTES: usize = 1 << 20;

/// Envelope: origin replica (8 bytes), request id (8 bytes), payload.
fn wrap(origin: ReplicaId, request: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + payload.len());
    put_fixed64(&mut v, origin);
    put_fixed64(&mut v, request);
    v.extend_from_slice(payload);
    v
}

fn unwrap(command: &[u8]) -> Option<(ReplicaId, u64, &[u8])> {
    Some((
        get_fixed64(command)?,
        get_fixed64(command.get(8..)?)?,
        command.get(16..)?,
    ))
}

/// Starts the driver of a node on the current runtime, with its persister thread.
pub(crate) fn spawn<S, P>(
    cfg: NodeConfig,
    replica: Replica,
    sm: S,
    storage: P,
    transport: Arc<dyn Transport>,
    rx: mpsc::Receiver<Input<S::Reply>>,
    shared: Shared,
) where
    S: StateMachine,
    P: Storage + Send + 'static,
    P::Error: std::fmt::Display,
{
    let beat_period = cfg.tick * cfg.paxos.heartbeat_interval.max(1);
    // A leader busy for ten election timeouts (a hung disk) stops beating: its group
    // replaces it.
    let beat_limit = cfg.tick * cfg.paxos.election_timeout.1.saturating_mul(10);
    let beater = Beater::spawn(transport.clone(), beat_period, beat_limit);
    let driver = Driver {
        replica,
        sm,
        transport,
        persister: Persister::spawn(storage),
        rx,
        cfg,
        next_request: 1,
        pending: HashMap::new(),
        reads: BTreeMap::new(),
        waiting_reads: HashMap::new(),
        next_read: 1,
        snapshot_to_install: None,
        membership_waiters: Vec::new(),
        transport_version: None,
        beater,
        carried: None,
        backlog: (0, None),
        queued_bytes: shared.queued_bytes,
        status: shared.status,
        metrics: shared.metrics,
    };
    tokio::spawn(driver.run());
}

impl<S: StateMachine> Driver<S> {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.cfg.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut stop = false;
            tokio::select! {
                input = self.rx.recv() => match input {
                    Some(Input::Stop) | None => stop = true,
                    Some(input) => self.handle(input),
                },
                _ = ticker.tick() => self.replica.tick(),
            }
            // Let the tasks that were woken with this input (RPC handlers with proposals and
            // reads, the transport with peer messages) queue theirs, then take what else is
            // queued, so that one round of persist/send serves many. A stop
            // among them ends the driver too (ignoring it left `Node::stop` waiting forever).
            tokio::task::yield_now().await;
            for _ in 0..4096 {
                if stop {
                    break;
                }
                match self.rx.try_recv() {
                    Ok(Input::Stop) => stop = true,
                    Ok(input) => self.handle(input),
                    Err(_) => break,
                }
            }
            if stop {
                if let Some((persist, _)) = self.carried.take() {
                    // What it learned stays learned across a clean restart.
                    let _ = self.persister.persist(persist).await;
                }
                self.fail_all(NodeError::Stopped);
                return;
            }
            if let Err(e) = self.process_ready().await {
                tracing::error!(error = %e, "stopping the node");
                // Say so, and claim nothing: the others elect a leader without this replica.
                {
                    let mut status = self.status.lock();
                    status.role = "stopped".into();
                    status.leader = None;
                    status.last_error = Some(e.to_string());
                }
                self.fail_all(e);
                return;
            }
        }
    }

    fn handle(&mut self, input: Input<S::Reply>) {
        match input {
            Input::Propose(payload, reply, admission) => {
                let request = self.next_request;
                self.next_request += 1;
                let command = wrap(self.replica.id(), request, &payload);
                if command.starts_with(strata_paxos::MEMBERSHIP_TAG) {
                    // Only the replica's own membership changes may carry the tag (an
                    // absurd replica id could make an envelope start with it).
                    let _ = reply.send(Err(NodeError::InvalidCommand(
                        "the command carries the membership-change tag",
                    )));
                    return;
                }
                match self.replica.propose(command) {
                    Ok(()) => {
                        self.pending.insert(request, (reply, admission));
                    }
                    Err(NotLeader { leader }) => {
                        let _ = reply.send(Err(NodeError::NotLeader(leader)));
                    }
                }
            }
            Input::Read(reply) => {
                let id = self.next_read;
                self.next_read += 1;
                match self.replica.read_index(id) {
                    Ok(()) => {
                        self.waiting_reads.insert(id, reply);
                    }
                    Err(NotLeader { leader }) => {
                        let _ = reply.send(Err(NodeError::NotLeader(leader)));
                    }
                }
            }
            Input::Message(m, size) => {
                self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                self.replica.step(m);
            }
            Input::Stop => {} // the loop stops before handing it here
            Input::ChangeMembership(change, reply) => {
                match self.replica.propose_membership_change(change) {
                    Ok(next) => self.membership_waiters.push((next, reply)),
                    Err(strata_paxos::ChangeRefusal::NotLeader(NotLeader { leader })) => {
                        let _ = reply.send(Err(NodeError::NotLeader(leader)));
                    }
                    Err(refusal) => {
                        let _ = reply.send(Err(NodeError::MembershipRefused(refusal.to_string())));
                    }
                }
            }
            Input::Snapshot(from, index, membership, chunks) => {
                if !self.replica.accepts_snapshot(from, index) {
                    // Not asked for (or stale): dropped unread, which fails the sender's
                    // stream; a real one is offered again.
                    tracing::info!(from, index, "snapshot not asked for: refused");
                    self.metrics.snapshots_refused.inc();
                    return;
                }
                // Installed after the pending output is handled (persisted, sent, applied):
                // nothing older may be applied on top of the snapshot.
                self.snapshot_to_install = Some((from, index, membership, chunks));
            }
        }
    }

    async fn process_ready(&mut self) -> Result<(), NodeError> {
        let mut ready = self.replica.take_ready();
        if ready.is_empty() && self.snapshot_to_install.is_none() {
            if let Some((persist, _)) = self.carried.take() {
                // Idle: what was carried is written now.
                self.persister.persist(persist).await?;
            }
            // Idle: a follower may just have dropped out of the live set, which lets the log
            // be compacted (persisted with the next round).
            self.maybe_compact();
            self.publish_status();
            return Ok(());
        }
        // What vouches for nothing goes out while this replica's state is made durable; the
        // rest (answers, Prepares) after. No input is fed until the persist completed: see
        // "The `Ready` contract" above.
        let must_persist = ready.must_persist();
        let (early, late): (Vec<_>, Vec<_>) = ready
            .messages
            .into_iter()
            .partition(|m| !m.body.vouches_for_state());
        let heartbeats: Vec<_> = (early.iter())
            .filter(|m| matches!(m.body, strata_paxos::Body::Heartbeat { .. }))
            .cloned()
            .collect();
        if !heartbeats.is_empty() {
            self.beater.set_heartbeats(heartbeats);
        } else if self.replica.role() != Role::Leader {
            self.beater.set_heartbeats(Vec::new());
        }
        if !early.is_empty() {
            self.transport.send(early);
        }
        // From here to the end of the round, a leader's followers hear its last heartbeats
        // again if the round outlasts a heartbeat interval (see `beater`).
        let _busy = self.beater.busy();
        if must_persist {
            let (mut persist, mut bytes) = self.carried.take().unwrap_or_default();
            bytes += (ready.entries.iter())
                .map(|e| e.value.payload_bytes())
                .sum::<usize>();
            persist.then(strata_paxos::Ready {
                promised: ready.promised,
                entries: std::mem::take(&mut ready.entries),
                compact_to: ready.compact_to,
                membership: ready.membership.take(),
                ..Default::default()
            });
            if !persist.must_sync() && persist.entries.len() < CARRY_ENTRIES && bytes < CARRY_BYTES
            {
                // Only chosen marks and compaction: they ride with the next synced write
                // (one trip to the fsync thread, one log record, for many rounds).
                self.carried = Some((persist, bytes));
            } else {
                let started = std::time::Instant::now();
                self.persister.persist(persist).await?;
                (self.metrics.log_fsync_duration_seconds).observe(started.elapsed());
            }
        }
        if !late.is_empty() {
            self.transport.send(late);
        }
        if !ready.committed.is_empty() {
            let bytes: usize = (ready.committed.iter())
                .map(|(_, v)| v.payload_bytes())
                .sum();
            if bytes >= BLOCKING_APPLY_BYTES {
                // A long apply (large values, synced) must not hold a runtime worker that
                // the beater, the transport and the RPC handlers need.
                tokio::task::block_in_place(|| self.apply(ready.committed));
            } else {
                self.apply(ready.committed);
            }
        }
        for rs in ready.read_states {
            if let Some(tx) = self.waiting_reads.remove(&rs.id) {
                self.reads.entry(rs.index).or_default().push(tx);
            }
        }
        let applied = self.replica.applied_index();
        while let Some(entry) = self.reads.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for tx in entry.remove() {
                let _ = tx.send(Ok(()));
            }
        }
        let hint = self.replica.leader();
        for id in ready.failed_reads {
            if let Some(tx) = self.waiting_reads.remove(&id) {
                let _ = tx.send(Err(NodeError::NotLeader(hint)));
            }
        }
        for command in ready.dropped_proposals {
            if let Some((_, request, _)) = unwrap(&command) {
                if let Some((tx, _)) = self.pending.remove(&request) {
                    let _ = tx.send(Err(NodeError::NotLeader(hint)));
                }
            }
        }
        if let Some((from, index, membership, mut chunks)) = self.snapshot_to_install.take() {
            // Asked again: inputs fed since may have changed the answer (a new leader).
            if self.replica.accepts_snapshot(from, index) {
                if let Some(m) = &membership {
                    // Durable before the state machine takes the snapshot: a crash between
                    // the two must not restart the replica with the state of `index` and an
                    // older membership (a replica whose membership starts above its commit
                    // index does not campaign until it caught up: see `Replica`).
                    let (mut persist, _) = self.carried.take().unwrap_or_default();
                    persist.then(strata_paxos::Ready {
                        membership: Some(m.clone()),
                        ..Default::default()
                    });
                    self.persister.persist(persist).await?;
                }
                // The chunks arrive from the network while the state machine consumes them:
                // this worker blocks, so the runtime must be multi-threaded (checked at start).
                let sm = &mut self.sm;
                let restored = tokio::task::block_in_place(|| sm.restore(index, &mut chunks));
                match restored {
                    Ok(()) => {
                        tracing::info!(index, "snapshot installed");
                        self.metrics.snapshots_received.inc();
                        match membership {
                            Some(m) => self.replica.restore_snapshot_with_membership(index, m),
                            None => self.replica.restore_snapshot(index),
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "snapshot install failed"),
                }
            }
        }
        if self.replica.role() != Role::Leader && !self.pending.is_empty() {
            // Stepped down (a higher ballot, or a snapshot installed over a lagging leader's
            // state): in-flight proposals may still be chosen by the next leader (the caller
            // retries with its request id; the state machine deduplicates), but nobody here
            // will report them, and their admitted bytes would keep others out: fail them.
            let hint = self.replica.leader();
            for (_, (tx, _)) in self.pending.drain() {
                let _ = tx.send(Err(NodeError::NotLeader(hint)));
            }
        }
        for to in ready.send_snapshot {
            let (index, chunks) = self.sm.snapshot();
            let membership = self.replica.membership_at(index);
            self.transport.send_snapshot(to, index, membership, chunks);
            self.metrics.snapshots_sent.inc();
        }
        self.settle_membership();
        self.maybe_compact();
        self.publish_status();
        Ok(())
    }

    /// Applies chosen commands in order and answers the callers waiting here for them.
    fn apply(&mut self, committed: Vec<(Slot, strata_paxos::Value)>) {
        for (slot, value) in committed {
            if value.membership_change().is_some() {
                continue; // the replica's own business (see `Replica::membership`)
            }
            for command in value.commands {
                let Some((origin, request, payload)) = unwrap(&command) else {
                    tracing::error!(slot, "undecodable command envelope; skipped");
                    continue;
                };
                let reply = self.sm.apply(slot, payload);
                self.metrics.proposals_applied.inc();
                if origin == self.replica.id() {
                    if let Some((tx, _)) = self.pending.remove(&request) {
                        let _ = tx.send(Ok(reply));
                    }
                }
            }
        }
    }

    /// Answers membership changes that were chosen (or lost), and gives the transport the
    /// members' addresses when the membership changed.
    fn settle_membership(&mut self) {
        let version = self.replica.membership().version;
        if self.membership_waiters.is_empty() && self.transport_version == Some(version) {
            return; // the common round: nothing to answer, nothing changed
        }
        let current = self.replica.membership().clone();
        let leading = self.replica.role() == Role::Leader;
        let hint = self.replica.leader();
        let mut still = Vec::new();
        for (want, reply) in std::mem::take(&mut self.membership_waiters) {
            if current.version >= want.version {
                let same = current.version == want.version
                    && current.voters == want.voters
                    && current.learners == want.learners;
                let _ = reply.send(if same {
                    Ok(current.clone())
                } else {
                    Err(NodeError::MembershipRefused(format!(
                        "another change was chosen first (membership version {})",
                        current.version
                    )))
                });
            } else if !leading {
                // It may still be chosen by the next leader: the caller checks and retries.
                let _ = reply.send(Err(NodeError::NotLeader(hint)));
            } else {
                still.push((want, reply));
            }
        }
        self.membership_waiters = still;
        if self.transport_version != Some(current.version) {
            self.transport_version = Some(current.version);
            if self.replica.is_removed() {
                tracing::warn!(
                    version = current.version,
                    "this replica was removed from its group: it no longer serves"
                );
            } else {
                tracing::info!(version = current.version, voters = ?current.voters, learners = ?current.learners, "membership in force");
            }
            // Removed members are still reached for a while (the leader tells them about the
            // log, so that they learn their removal); their links keep their addresses.
            let mut members: Vec<ReplicaId> = current.members().collect();
            members.extend(self.replica.departed());
            self.transport.set_peers(&members, &current.addresses);
        }
    }

    /// Compacts the Paxos log below what the state machine made durable, once the log is
    /// `compaction_slack` slots or `compaction_bytes` long. A leader keeps what its live
    /// followers (heard from within a few election timeouts) have not learned yet (a follower
    /// a few large values behind, or one that was busy persisting one, gets them by `Learn`,
    /// not by a snapshot of the whole state) — unless the log outgrows eight times
    /// `compaction_bytes`, when memory wins and a slow follower gets a snapshot. (Proposals
    /// are held back long before that while live followers lag: see [`Node::propose`].)
    fn maybe_compact(&mut self) {
        let durable = self.sm.durable_index();
        let log_start = self.replica.log_start();
        let log_bytes = self.replica.log_bytes();
        let hard_cap = self.cfg.compaction_bytes.saturating_mul(8);
        let due = durable > log_start + self.cfg.compaction_slack
            || (durable > log_start && log_bytes > self.cfg.compaction_bytes);
        if !due {
            return;
        }
        let target = match self.replica.followers_commit_floor(self.live_ticks()) {
            Some(floor) if log_bytes <= hard_cap => durable.min(floor),
            _ => durable,
        };
        if target > log_start {
            self.replica.compact(target);
        }
    }

    /// A follower heard from within this many ticks counts as live for flow control and log
    /// compaction: a few election timeouts, so that one busy persisting a large value does
    /// not drop out.
    fn live_ticks(&self) -> u64 {
        4 * u64::from(self.cfg.paxos.election_timeout.1)
    }

    fn publish_status(&mut self) {
        let now = tokio::time::Instant::now();
        if self.backlog.1.is_none_or(|at| now >= at + self.cfg.tick) {
            let r = &self.replica;
            let live = r.followers_commit_floor(self.live_ticks());
            self.backlog = (live.map_or(0, |floor| r.log_bytes_in(floor..)), Some(now));
        }
        let r = &self.replica;
        let role = format!("{:?}", r.role()).to_lowercase();
        let m = &self.metrics;
        m.is_leader.set(i64::from(r.role() == Role::Leader));
        m.has_leader.set(i64::from(r.leader().is_some()));
        m.ballot.set(gauge_value(r.promised().round));
        m.proposals_pending.set(gauge_value(self.pending.len()));
        m.commit_index.set(gauge_value(r.commit_index()));
        m.applied_index.set(gauge_value(r.applied_index()));
        m.log_entries.set(gauge_value(r.log_len()));
        m.log_bytes.set(gauge_value(r.log_bytes()));
        let mut status = self.status.lock();
        if status.leader != r.leader() {
            m.leader_changes_seen.inc();
        }
        if status.role != role || status.leader != r.leader() {
            // Leader changes are what an operator looks for first in a replica's log.
            tracing::info!(role = %role, leader = ?r.leader(), ballot = ?r.promised(), commit = r.commit_index(), "role changed");
        }
        *status = NodeStatus {
            id: r.id(),
            role,
            ballot: r.promised(),
            leader: r.leader(),
            commit_index: r.commit_index(),
            applied_index: r.applied_index(),
            log_start: r.log_start(),
            log_len: r.log_len() as u64,
            log_bytes: r.log_bytes(),
            backlog_bytes: self.backlog.0,
            last_error: status.last_error.take(),
            // Copied only when it changed (status is published every round).
            membership: if status.membership.version == r.membership().version
                && !status.membership.voters.is_empty()
            {
                std::mem::take(&mut status.membership)
            } else {
                r.membership().clone()
            },
            progress: (r.follower_progress().into_iter())
                .map(|(id, commit, heard)| {
                    let ms = self.cfg.tick.as_millis() as u64;
                    (id, commit, heard.map(|t| t.saturating_mul(ms)))
                })
                .collect(),
            not_member: !r.is_member(),
        };
    }

    fn fail_all(&mut self, e: NodeError) {
        for (_, (tx, _)) in self.pending.drain() {
            let _ = tx.send(Err(e.clone()));
        }
        for (_, tx) in self.waiting_reads.drain() {
            let _ = tx.send(Err(e.clone()));
        }
        for (_, txs) in std::mem::take(&mut self.reads) {
            for tx in txs {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}
