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
//!   then feeds every other input already queued (up to 4096) before one `take_ready`.
//! - **Sends early what vouches for nothing.** Messages whose `vouches_for_state()` is false
//!   (a leader's `Accept`, `Heartbeat`, `Learn`) go to the transport before the persist, so the
//!   network round trip overlaps the fsync; everything else — answers, and a candidate's
//!   `Prepare`, whose ballot must be durable before anyone hears of it — goes after.
//! - **Persists atomically, and feeds nothing meanwhile.** The promise, entries and compaction
//!   of one `Ready` are one engine write batch (synced when they hold a promise or an
//!   acceptance) on the fsync thread; the driver task awaits it before it sends the rest,
//!   applies, or takes the next input.
//! - **Applies, serves reads, installs a received snapshot, streams requested snapshots,** in
//!   that order; a snapshot is installed only after the pending `Ready` was handled, so nothing
//!   older is applied on top of it.
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
use std::time::Duration;

use parking_lot::Mutex;
use strata::coding::{get_fixed64, put_fixed64};
use strata_paxos::{Ballot, Message, NotLeader, Replica, ReplicaId, Role, Slot, Storage};
use tokio::sync::{mpsc, oneshot};

use crate::state_machine::{IncomingSnapshot, StateMachine};
use crate::transport::Transport;

/// Why a proposal or read did not complete here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// This replica does not lead; retry at the hinted one.
    #[error("not the leader (leader hint: {0:?})")]
    NotLeader(Option<ReplicaId>),
    /// The node stopped.
    #[error("node stopped")]
    Stopped,
    /// Commands proposed here and not yet resolved already hold
    /// [`MAX_INFLIGHT_PROPOSAL_BYTES`], or the log this leader holds for followers that have
    /// not caught up is full (see [`Node::propose`]): retry after a while.
    #[error(
        "{in_flight} bytes of proposals in flight, {backlog_bytes} bytes of log not yet at live followers; retry later"
    )]
    Overloaded {
        /// Bytes in flight when the proposal was refused.
        in_flight: usize,
        /// Bytes of log the live followers lacked.
        backlog_bytes: usize,
    },
    /// The Paxos configuration cannot run a group.
    #[error("paxos configuration: {0}")]
    Config(String),
    /// Persisting the Paxos state failed: the node stopped itself.
    #[error("paxos storage failed: {0}")]
    Storage(String),
}

/// A point-in-time view of a node, for the `Status` RPC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// This replica.
    pub id: ReplicaId,
    /// Follower, candidate or leader; `stopped` once its Paxos storage failed.
    pub role: String,
    /// Promised ballot.
    pub ballot: Ballot,
    /// Believed leader.
    pub leader: Option<ReplicaId>,
    /// Every slot below is known chosen.
    pub commit_index: Slot,
    /// Every slot below was applied.
    pub applied_index: Slot,
    /// First slot still in the Paxos log.
    pub log_start: Slot,
    /// Entries in the Paxos log.
    pub log_len: u64,
    /// Bytes of commands in the Paxos log.
    pub log_bytes: usize,
    /// On a leader: bytes of commands in the log that its live followers have not all
    /// learned yet (what flow control bounds).
    pub backlog_bytes: usize,
}

enum Input<R> {
    Propose(Vec<u8>, ProposalReply<R>, Admission),
    Read(oneshot::Sender<Result<(), NodeError>>),
    /// A peer's message and its size (counted in `queued_bytes` until taken).
    Message(Message, usize),
    Snapshot(Slot, IncomingSnapshot),
    Stop,
}

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The Paxos configuration (id, members, timeouts in ticks, batching).
    pub paxos: strata_paxos::Config,
    /// Length of one tick.
    pub tick: Duration,
    /// Compact the Paxos log once the state machine's durable index is this many slots past
    /// the log start...
    pub compaction_slack: u64,
    /// ...or once the log holds this many bytes of commands (it is held in memory: a few
    /// large commands must not pin it). A leader keeps what its live followers still lack up
    /// to eight times this.
    pub compaction_bytes: usize,
    /// Capacity of the input queue (proposals, reads, messages); beyond it, peer messages are
    /// dropped and proposals refused, so a flood cannot exhaust memory.
    pub queue_capacity: usize,
}

/// Bytes of peer messages a node queues before it drops more (it holds at most this plus one
/// message): a slow replica (its disk busy) must not buffer every retransmission a leader
/// sends it. Paxos tolerates the loss.
pub const MAX_QUEUED_PEER_BYTES: usize = 64 << 20;

/// Bytes of commands proposed at one node and not yet resolved (applied, or failed because it
/// stopped leading): beyond it, proposals are refused with [`NodeError::Overloaded`] until
/// some complete. A node with nothing in flight takes any one command, however large, so the
/// largest admitted request always gets through; retries of large requests cannot pile up.
pub const MAX_INFLIGHT_PROPOSAL_BYTES: usize = 64 << 20;

/// Where a proposal's outcome goes.
type ProposalReply<R> = oneshot::Sender<Result<R, NodeError>>;

/// A proposal's share of [`MAX_INFLIGHT_PROPOSAL_BYTES`], returned when it is dropped (with
/// the proposal's entry in the driver, however the proposal ends).
struct Admission {
    bytes: usize,
    in_flight: Arc<AtomicUsize>,
}

impl Admission {
    /// Takes `bytes` of `in_flight` if they fit beside what is in flight and the log held for
    /// followers (`backlog`, of at most `log_limit`) — always if nothing is in flight and
    /// the log is no longer than it is between two compactions (a quarter of the limit).
    fn take(
        in_flight: &Arc<AtomicUsize>,
        bytes: usize,
        backlog: usize,
        log_limit: usize,
    ) -> Result<Admission, NodeError> {
        let mut current = in_flight.load(Ordering::Relaxed);
        loop {
            let over_flight = current > 0 && current + bytes > MAX_INFLIGHT_PROPOSAL_BYTES;
            let over_log =
                backlog + current + bytes > log_limit && (current > 0 || backlog > log_limit / 4);
            if over_flight || over_log {
                return Err(NodeError::Overloaded {
                    in_flight: current,
                    backlog_bytes: backlog,
                });
            }
            match in_flight.compare_exchange_weak(
                current,
                current + bytes,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Ok(Admission {
                        bytes,
                        in_flight: in_flight.clone(),
                    })
                }
                Err(now) => current = now,
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A running replica whose state machine answers proposals with `R`
/// ([`StateMachine::Reply`]). Cheap to clone.
pub struct Node<R> {
    tx: mpsc::Sender<Input<R>>,
    status: Arc<Mutex<NodeStatus>>,
    /// Bytes of peer messages in the input queue.
    queued_bytes: Arc<AtomicUsize>,
    /// Bytes of proposals admitted and not yet resolved (see [`MAX_INFLIGHT_PROPOSAL_BYTES`]).
    proposal_bytes: Arc<AtomicUsize>,
    /// Most bytes of log (plus proposals in flight) a leader holds before it refuses more:
    /// half the size at which it would compact past live followers.
    log_limit: usize,
}

impl<R> Clone for Node<R> {
    fn clone(&self) -> Self {
        Node {
            tx: self.tx.clone(),
            status: self.status.clone(),
            queued_bytes: self.queued_bytes.clone(),
            proposal_bytes: self.proposal_bytes.clone(),
            log_limit: self.log_limit,
        }
    }
}

impl<R: Send + 'static> Node<R> {
    /// Starts a node: restores the replica from `storage` and the state machine's durable
    /// index, and spawns the driver on the current tokio runtime.
    pub fn start<S, P>(
        cfg: NodeConfig,
        storage: P,
        state_machine: S,
        transport: Arc<dyn Transport>,
    ) -> Result<Node<R>, NodeError>
    where
        S: StateMachine<Reply = R>,
        P: Storage + Send + 'static,
        P::Error: std::fmt::Display,
    {
        if tokio::runtime::Handle::current().runtime_flavor()
            != tokio::runtime::RuntimeFlavor::MultiThread
        {
            return Err(NodeError::Storage(
                "a node needs a multi-threaded tokio runtime (snapshot installs block a worker)"
                    .into(),
            ));
        }
        let state = storage
            .load()
            .map_err(|e| NodeError::Storage(e.to_string()))?;
        let replica = Replica::restart(cfg.paxos.clone(), state, state_machine.durable_index())
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(16));
        let status = Arc::new(Mutex::new(NodeStatus::default()));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let persister = Persister::spawn(storage);
        let driver = Driver {
            replica,
            sm: state_machine,
            transport,
            persister,
            rx,
            cfg,
            next_request: 1,
            pending: HashMap::new(),
            reads: BTreeMap::new(),
            waiting_reads: HashMap::new(),
            next_read: 1,
            snapshot_to_install: None,
            last_heartbeats: Vec::new(),
            backlog: (0, None),
            queued_bytes: queued_bytes.clone(),
            status: status.clone(),
        };
        let log_limit = driver.cfg.compaction_bytes.saturating_mul(4);
        tokio::spawn(driver.run());
        Ok(Node {
            tx,
            status,
            queued_bytes,
            proposal_bytes: Arc::new(AtomicUsize::new(0)),
            log_limit,
        })
    }

    /// Proposes `command` and waits until it is chosen and applied here, returning the state
    /// machine's reply. Fails fast with `NotLeader` on a follower, and with `Overloaded` when
    /// [`MAX_INFLIGHT_PROPOSAL_BYTES`] are in flight or when the log the leader holds for its
    /// live followers is full: a leader runs at most that far ahead of its slowest live
    /// follower, which then catches up from the log instead of by a snapshot of the whole
    /// state (flow control).
    pub async fn propose(&self, command: Vec<u8>) -> Result<R, NodeError> {
        let backlog = {
            // A replica that last reported itself a follower says so at once, even while its
            // driver is busy (a snapshot install, a slow disk): its queue holds no proposals
            // for the caller to wait behind, nor admitted bytes to keep others out.
            let status = self.status.lock();
            if status.role != "leader" && status.role != "candidate" && !status.role.is_empty() {
                let leader = status.leader.filter(|&l| l != status.id);
                return Err(NodeError::NotLeader(leader));
            }
            status.backlog_bytes
        };
        let admission =
            Admission::take(&self.proposal_bytes, command.len(), backlog, self.log_limit)?;
        let (tx, rx) = oneshot::channel();
        self.tx
            .try_send(Input::Propose(command, tx, admission))
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Waits until this replica may serve a linearizable read from its state machine (read
    /// index confirmed by a quorum and applied locally).
    pub async fn read_barrier(&self) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .try_send(Input::Read(tx))
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Delivers a message from a peer (dropped if the node is overloaded: its queue holds
    /// [`MAX_QUEUED_PEER_BYTES`] or as many inputs as configured).
    pub fn deliver(&self, message: Message) {
        let size = message.payload_bytes();
        let queued = self.queued_bytes.load(Ordering::Relaxed);
        if queued >= MAX_QUEUED_PEER_BYTES {
            // Below the bound, one message of any size is taken.
            tracing::debug!(
                from = message.from,
                queued,
                "input queue full: message dropped"
            );
            return;
        }
        self.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if self.tx.try_send(Input::Message(message, size)).is_err() {
            self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            tracing::debug!("input queue full (count): message dropped");
        }
    }

    /// Installs an application snapshot received from a peer; its chunks are consumed as they
    /// arrive.
    pub async fn install_snapshot(&self, index: Slot, chunks: IncomingSnapshot) {
        let _ = self.tx.send(Input::Snapshot(index, chunks)).await;
    }

    /// Stops the driver (pending callers get `Stopped`). Durable state stays on disk.
    pub async fn stop(&self) {
        let _ = self.tx.send(Input::Stop).await;
        self.tx.closed().await;
    }

    /// The latest status.
    pub fn status(&self) -> NodeStatus {
        self.status.lock().clone()
    }
}

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
    snapshot_to_install: Option<(Slot, IncomingSnapshot)>,
    /// The heartbeats this replica sent last (as a leader), sent again during a long persist.
    last_heartbeats: Vec<strata_paxos::Message>,
    /// [`NodeStatus::backlog_bytes`] and when it was counted: a sum over the log, so counted
    /// at most once a tick rather than every round.
    backlog: (usize, Option<tokio::time::Instant>),
    /// Bytes of peer messages in the input queue (shared with [`Node::deliver`]).
    queued_bytes: Arc<AtomicUsize>,
    status: Arc<Mutex<NodeStatus>>,
}

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

impl<S: StateMachine> Driver<S> {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.cfg.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                input = self.rx.recv() => match input {
                    Some(Input::Stop) | None => {
                        self.fail_all(NodeError::Stopped);
                        return;
                    }
                    Some(input) => self.handle(input),
                },
                _ = ticker.tick() => self.replica.tick(),
            }
            // Take what else is queued, so that one round of persist/send serves many.
            for _ in 0..4096 {
                match self.rx.try_recv() {
                    Ok(input) => self.handle(input),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.process_ready().await {
                tracing::error!(error = %e, "stopping the node");
                // Say so, and claim nothing: the others elect a leader without this replica.
                {
                    let mut status = self.status.lock();
                    status.role = "stopped".into();
                    status.leader = None;
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
            Input::Stop => {}
            Input::Snapshot(index, chunks) => {
                // Installed after the pending output is handled (persisted, sent, applied):
                // nothing older may be applied on top of the snapshot.
                self.snapshot_to_install = Some((index, chunks));
            }
        }
    }

    async fn process_ready(&mut self) -> Result<(), NodeError> {
        let ready = self.replica.take_ready();
        if ready.is_empty() && self.snapshot_to_install.is_none() {
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
            self.last_heartbeats = heartbeats;
        }
        if !early.is_empty() {
            self.transport.send(early);
        }
        if must_persist {
            let persist = strata_paxos::Ready {
                promised: ready.promised,
                entries: ready.entries.clone(),
                compact_to: ready.compact_to,
                ..Default::default()
            };
            let leading = self.replica.role() == Role::Leader;
            if !leading {
                self.last_heartbeats.clear();
            }
            self.persist_keeping_followers(persist, leading).await?;
        }
        if !late.is_empty() {
            self.transport.send(late);
        }
        for (slot, value) in ready.committed {
            for command in value.commands {
                let Some((origin, request, payload)) = unwrap(&command) else {
                    tracing::error!(slot, "undecodable command envelope; skipped");
                    continue;
                };
                let reply = self.sm.apply(slot, payload);
                if origin == self.replica.id() {
                    if let Some((tx, _)) = self.pending.remove(&request) {
                        let _ = tx.send(Ok(reply));
                    }
                }
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
        if let Some((index, mut chunks)) = self.snapshot_to_install.take() {
            if index > self.replica.applied_index() {
                // The chunks arrive from the network while the state machine consumes them:
                // this worker blocks, so the runtime must be multi-threaded (checked at start).
                let sm = &mut self.sm;
                let restored = tokio::task::block_in_place(|| sm.restore(index, &mut chunks));
                match restored {
                    Ok(()) => {
                        tracing::info!(index, "snapshot installed");
                        self.replica.restore_snapshot(index);
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
            self.transport.send_snapshot(to, index, chunks);
        }
        self.maybe_compact();
        self.publish_status();
        Ok(())
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

    /// Persists `ready`. A leader whose persist takes longer than a heartbeat interval (a
    /// large value on a busy disk) sends its last heartbeats again meanwhile, so that its
    /// followers do not take the silence for its death: no input reaches the replica during a
    /// persist (the `Ready` contract), so it cannot beat itself, but a copy of a message
    /// already sent is one the network could have duplicated anyway.
    async fn persist_keeping_followers(
        &mut self,
        ready: strata_paxos::Ready,
        leader: bool,
    ) -> Result<(), NodeError> {
        let persist = self.persister.persist(ready);
        if !leader || self.last_heartbeats.is_empty() {
            return persist.await;
        }
        tokio::pin!(persist);
        let period = self.cfg.tick * self.cfg.paxos.heartbeat_interval;
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                done = &mut persist => return done,
                _ = beat.tick() => self.transport.send(self.last_heartbeats.clone()),
            }
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
        let mut status = self.status.lock();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_bounds_bytes_in_flight_and_the_log_held_for_followers() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let limit = 32 << 20;
        let big = 16 << 20;
        // Nothing in flight, a log of normal size: any one command, however large.
        let a = Admission::take(&in_flight, 40 << 20, limit / 4, limit).unwrap();
        assert!(
            Admission::take(&in_flight, 1, 0, limit).is_err(),
            "over the log limit"
        );
        drop(a);
        assert_eq!(
            in_flight.load(Ordering::Relaxed),
            0,
            "returned when dropped"
        );
        // Beside a proposal in flight, only what fits the log limit.
        let a = Admission::take(&in_flight, big, 0, limit).unwrap();
        let b = Admission::take(&in_flight, big, 0, limit).unwrap();
        assert!(matches!(
            Admission::take(&in_flight, 1, 0, limit),
            Err(NodeError::Overloaded { in_flight: n, backlog_bytes: 0 }) if n == 2 * big
        ));
        drop((a, b));
        // Followers lagging: a log held above a quarter of the limit refuses even a small
        // command until they catch up (and the log is compacted).
        assert!(Admission::take(&in_flight, 100, limit - 50, limit).is_err());
        assert!(Admission::take(&in_flight, 100, limit / 4 + 1, limit).is_ok());
        // The in-flight bound holds on its own too.
        let huge = usize::MAX / 4;
        let a = Admission::take(&in_flight, MAX_INFLIGHT_PROPOSAL_BYTES, 0, huge).unwrap();
        assert!(Admission::take(&in_flight, 1, 0, huge).is_err());
        drop(a);
    }
}
