//! A running replica as its users see it: [`Node`], the handle through which a service
//! proposes commands, waits for linearizable reads, delivers peers' messages and snapshots and
//! reads the status; how it runs ([`NodeConfig`]); how it fails ([`NodeError`]); and admission
//! (bytes of proposals in flight, flow control against followers' backlog). The loop behind
//! the handle is [`crate::driver`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_paxos::{Ballot, Message, Replica, ReplicaId, Slot, Storage};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{NodeMetrics, Outcome};
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
    /// A membership change was refused; nothing changed.
    #[error("membership change refused: {0}")]
    MembershipRefused(String),
    /// The command is not one a client may propose (it carries the membership-change tag).
    #[error("invalid command: {0}")]
    InvalidCommand(&'static str),
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
    /// Why the node stopped, once it has (its Paxos storage failed).
    pub last_error: Option<String>,
    /// The group's membership as this replica has it in force.
    pub membership: strata_paxos::Membership,
    /// On the leader: each other member's commit index and milliseconds since it was last
    /// heard from (`None`: not yet in this ballot).
    pub progress: Vec<(ReplicaId, Slot, Option<u64>)>,
    /// This replica is not a member (removed, or joined and waiting to be added).
    pub not_member: bool,
}

pub(crate) enum Input<R> {
    Propose(Vec<u8>, ProposalReply<R>, Admission),
    Read(oneshot::Sender<Result<(), NodeError>>),
    /// A peer's message and its size (counted in `queued_bytes` until taken).
    Message(Message, usize),
    /// A snapshot streaming in from a peer, covering every slot below the index, with the
    /// membership in force there (if the sender said).
    Snapshot(
        ReplicaId,
        Slot,
        Option<strata_paxos::Membership>,
        IncomingSnapshot,
    ),
    /// A membership change to propose; answered once it is chosen.
    ChangeMembership(
        strata_paxos::MembershipChange,
        oneshot::Sender<Result<strata_paxos::Membership, NodeError>>,
    ),
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

/// A peer message carrying fewer bytes than this (a heartbeat, a vote, an acknowledgement: no
/// values) is queued whatever the bytes already queued: only the count bound applies to it.
/// Dropping it behind a few retransmitted large values would make a live leader look dead to
/// a follower busy persisting them, and cost an election each time. Small enough that a full
/// count of such messages stays a few MiB (a stalled peer must not grow memory).
pub const SMALL_MESSAGE_BYTES: usize = 1 << 10;

/// Bytes of commands proposed at one node and not yet resolved (applied, or failed because it
/// stopped leading): beyond it, proposals are refused with [`NodeError::Overloaded`] until
/// some complete. A node with nothing in flight takes any one command, however large, so the
/// largest admitted request always gets through; retries of large requests cannot pile up.
pub const MAX_INFLIGHT_PROPOSAL_BYTES: usize = 64 << 20;

/// Where a proposal's outcome goes.
pub(crate) type ProposalReply<R> = oneshot::Sender<Result<R, NodeError>>;

/// A proposal's share of [`MAX_INFLIGHT_PROPOSAL_BYTES`], returned when it is dropped (with
/// the proposal's entry in the driver, however the proposal ends).
pub(crate) struct Admission {
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
    /// The node's metrics (shared with the driver).
    metrics: Arc<NodeMetrics>,
}

impl<R> Clone for Node<R> {
    fn clone(&self) -> Self {
        Node {
            tx: self.tx.clone(),
            status: self.status.clone(),
            queued_bytes: self.queued_bytes.clone(),
            proposal_bytes: self.proposal_bytes.clone(),
            log_limit: self.log_limit,
            metrics: self.metrics.clone(),
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
        let log_limit = cfg.compaction_bytes.saturating_mul(4);
        let metrics = Arc::new(NodeMetrics::new());
        let shared = Shared {
            queued_bytes: queued_bytes.clone(),
            status: status.clone(),
            metrics: metrics.clone(),
        };
        crate::driver::spawn(cfg, replica, state_machine, storage, transport, rx, shared);
        Ok(Node {
            tx,
            status,
            queued_bytes,
            proposal_bytes: Arc::new(AtomicUsize::new(0)),
            log_limit,
            metrics,
        })
    }

    /// The node's metrics (register them with [`NodeMetrics::register`]).
    pub fn metrics(&self) -> &NodeMetrics {
        &self.metrics
    }

    /// Proposes `command` and waits until it is chosen and applied here, returning the state
    /// machine's reply. Fails fast with `NotLeader` on a follower, and with `Overloaded` when
    /// [`MAX_INFLIGHT_PROPOSAL_BYTES`] are in flight or when the log the leader holds for its
    /// live followers is full: a leader runs at most that far ahead of its slowest live
    /// follower, which then catches up from the log instead of by a snapshot of the whole
    /// state (flow control).
    pub async fn propose(&self, command: Vec<u8>) -> Result<R, NodeError> {
        let started = std::time::Instant::now();
        let result = self.propose_uncounted(command).await;
        let outcome = match &result {
            Ok(_) => {
                (self.metrics.proposal_duration_seconds).observe(started.elapsed());
                Outcome::Committed
            }
            Err(e) => error_outcome(e),
        };
        self.metrics.proposal(outcome);
        result
    }

    /// Proposes a membership change (only the leader takes it) and waits until it is
    /// chosen; returns the membership it made. Refusals change nothing.
    pub async fn change_membership(
        &self,
        change: strata_paxos::MembershipChange,
    ) -> Result<strata_paxos::Membership, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .try_send(Input::ChangeMembership(change, tx))
            .map_err(|_| NodeError::Stopped)?;
        self.reply(rx).await?
    }

    async fn propose_uncounted(&self, command: Vec<u8>) -> Result<R, NodeError> {
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
        self.reply(rx).await?
    }

    /// Waits until this replica may serve a linearizable read from its state machine (read
    /// index confirmed by a quorum and applied locally).
    pub async fn read_barrier(&self) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        let result = match self.tx.try_send(Input::Read(tx)) {
            Ok(()) => self.reply(rx).await.unwrap_or(Err(NodeError::Stopped)),
            Err(_) => Err(NodeError::Stopped),
        };
        self.metrics.read(match &result {
            Ok(()) => Outcome::Committed,
            Err(e) => error_outcome(e),
        });
        result
    }

    /// Delivers a message from a peer (dropped if the node is overloaded: its queue holds
    /// [`MAX_QUEUED_PEER_BYTES`] and the message is not small (see [`SMALL_MESSAGE_BYTES`]),
    /// or it holds as many inputs as configured).
    pub fn deliver(&self, message: Message) {
        let size = message.payload_bytes();
        let queued = self.queued_bytes.load(Ordering::Relaxed);
        if queued >= MAX_QUEUED_PEER_BYTES && size >= SMALL_MESSAGE_BYTES {
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

    /// Installs an application snapshot received from peer `from`; its chunks are consumed
    /// as they arrive. One this replica did not ask for (see
    /// [`strata_paxos::Replica::accepts_snapshot`]) is dropped unread: the sender's stream
    /// then fails.
    pub async fn install_snapshot(
        &self,
        from: ReplicaId,
        index: Slot,
        membership: Option<strata_paxos::Membership>,
        chunks: IncomingSnapshot,
    ) {
        let input = Input::Snapshot(from, index, membership, chunks);
        let _ = self.tx.send(input).await;
    }

    /// Stops the driver (pending callers get `Stopped`). Durable state stays on disk.
    pub async fn stop(&self) {
        let _ = self.tx.send(Input::Stop).await;
        self.tx.closed().await;
    }

    /// The driver's answer on `rx`, or `Stopped` once the driver is gone. Not `rx` alone: an
    /// input sent while the driver stops can outlive it in the channel (tokio drains a
    /// channel when its receiver drops, but a send racing the drop may land after the drain),
    /// and with it the reply sender, which would leave the caller waiting forever.
    async fn reply<T>(&self, rx: oneshot::Receiver<T>) -> Result<T, NodeError> {
        tokio::select! {
            biased;
            reply = rx => reply.map_err(|_| NodeError::Stopped),
            () = self.tx.closed() => Err(NodeError::Stopped),
        }
    }

    /// The latest status.
    pub fn status(&self) -> NodeStatus {
        self.status.lock().clone()
    }

    /// Whether this replica leads its group, as of its last round: [`status`](Node::status)`.role
    /// == "leader"` without copying the status (asked on every request).
    pub fn is_leader(&self) -> bool {
        self.status.lock().role == "leader"
    }
}

/// The metrics' name for how a request failed.
fn error_outcome(e: &NodeError) -> Outcome {
    match e {
        NodeError::NotLeader(_) => Outcome::NotLeader,
        NodeError::Overloaded { .. } => Outcome::Overloaded,
        NodeError::Stopped
        | NodeError::Config(_)
        | NodeError::Storage(_)
        | NodeError::MembershipRefused(_)
        | NodeError::InvalidCommand(_) => Outcome::Failed,
    }
}

/// What the handle shares with the driver.
pub(crate) struct Shared {
    /// The node's metrics.
    pub(crate) metrics: Arc<NodeMetrics>,
    /// Bytes of peer messages in the input queue (see [`Node::deliver`]).
    pub(crate) queued_bytes: Arc<AtomicUsize>,
    /// The latest status, published by the driver.
    pub(crate) status: Arc<Mutex<NodeStatus>>,
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
