//! One simulated server: a replica (absent while crashed), its durable storage, and the
//! application it drives, with the application's snapshot transfers.

use std::collections::{BTreeMap, BTreeSet};

use crate::membership::Membership;
use crate::ready::{ReadState, Ready};
use crate::replica::Replica;
use crate::storage::MemStorage;
use crate::types::{ReplicaId, Slot, Value};

use super::checker::{decode, CmdId};

/// The replicated application: the applied values themselves (its "state", which is also its
/// snapshot), and an exactly-once table that deduplicates retried commands, as the shard
/// servers do. It is durable: it survives crashes up to what it applied.
#[derive(Clone, Debug, Default)]
pub(crate) struct App {
    /// `values[k]` is the value of slot `k + 1`.
    pub values: Vec<Value>,
    /// Commands applied (after deduplication).
    pub seen: BTreeSet<CmdId>,
    /// Commands in the order they took effect, each once.
    pub order: Vec<CmdId>,
}

impl App {
    /// Every slot below this is applied.
    pub(crate) fn applied_index(&self) -> Slot {
        self.values.len() as Slot + 1
    }

    /// Applies the next slot's value; returns its commands (duplicates included: a duplicate
    /// is answered like the original).
    pub(crate) fn apply(&mut self, value: Value) -> Vec<CmdId> {
        let cmds: Vec<CmdId> = value.commands.iter().filter_map(|c| decode(c)).collect();
        for &c in &cmds {
            if self.seen.insert(c) {
                self.order.push(c);
            }
        }
        self.values.push(value);
        cmds
    }

    /// The membership in force after the values applied, starting from `initial`: every
    /// chosen change that may follow the membership before it, as the replicas apply them.
    pub(crate) fn membership(&self, initial: &Membership) -> Membership {
        let mut m = initial.clone();
        for (k, v) in self.values.iter().enumerate() {
            if let Some(mut next) = v.membership_change() {
                if m.may_become(&next) {
                    next.since = k as Slot + 2;
                    m = next;
                }
            }
        }
        m
    }

    /// The application rebuilt from a snapshot (the values of every slot below its index).
    pub(crate) fn from_snapshot(values: Vec<Value>) -> App {
        let mut app = App::default();
        for v in values {
            app.apply(v);
        }
        app
    }
}

/// A snapshot being streamed to a peer, chunk by chunk with a small window; on silence it
/// goes back to the first unacknowledged chunk, and to the start if the receiver lost its
/// partial copy (it crashed).
#[derive(Debug)]
pub(crate) struct OutTransfer {
    pub id: u64,
    pub index: Slot,
    pub values: Vec<Value>,
    /// The membership in force at `index`, which the snapshot carries.
    pub membership: Membership,
    pub total: u32,
    pub acked: u32,
    pub sent: u32,
    pub last_progress: u64,
    pub last_resend: u64,
}

/// A snapshot being received (chunks may arrive out of order); installed only when
/// complete.
#[derive(Debug)]
pub(crate) struct InTransfer {
    pub id: u64,
    pub index: Slot,
    pub membership: Membership,
    pub total: u32,
    /// Chunks `0..received` are all here.
    pub received: u32,
    pub chunks: BTreeMap<u32, Vec<Value>>,
}

/// Where a scheduled crash strikes in the handling of the next non-empty `Ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CrashPoint {
    /// Before persisting (after the messages allowed to leave early, if this `Ready` sends
    /// them early).
    BeforePersist,
    /// After persisting, before sending.
    AfterPersist,
    /// After sending, before applying.
    AfterSend,
}

/// A simulated server.
#[derive(Debug)]
pub(crate) struct Node {
    pub id: ReplicaId,
    /// The voters and learners it was first started with (a joiner: the voters it was told
    /// of, and itself as a learner).
    pub boot: (Vec<ReplicaId>, Vec<ReplicaId>),
    /// Started at least once (a spare waits until a leader adds it).
    pub joined: bool,
    pub replica: Option<Replica>,
    pub storage: MemStorage,
    /// Persists that needed no sync, carried into the next one (lost at a crash).
    pub deferred: Option<Ready>,
    pub app: App,
    pub incarnation: u64,
    pub was_leader: bool,
    /// Reads granted by the replica, waiting for the application to catch up.
    pub pending_reads: Vec<ReadState>,
    pub out: BTreeMap<ReplicaId, OutTransfer>,
    pub incoming: BTreeMap<ReplicaId, InTransfer>,
    pub crash_point: Option<CrashPoint>,
    /// This tick, messages delivered here are fed without a `take_ready` after each: they are
    /// handled together at the tick, in one `Ready` (the contract allows any number of inputs
    /// between two `take_ready` calls).
    pub batching: bool,
}

impl Node {
    pub(crate) fn new(
        id: ReplicaId,
        boot: (Vec<ReplicaId>, Vec<ReplicaId>),
        replica: Option<Replica>,
    ) -> Node {
        Node {
            id,
            boot,
            joined: replica.is_some(),
            replica,
            storage: MemStorage::new(),
            deferred: None,
            app: App::default(),
            incarnation: 0,
            was_leader: false,
            pending_reads: Vec::new(),
            out: BTreeMap::new(),
            incoming: BTreeMap::new(),
            crash_point: None,
            batching: false,
        }
    }

    pub(crate) fn up(&self) -> bool {
        self.replica.is_some()
    }

    /// Loses everything volatile: the replica, reads in progress, transfers.
    pub(crate) fn crash(&mut self) {
        self.replica = None;
        self.was_leader = false;
        self.pending_reads.clear();
        self.out.clear();
        self.incoming.clear();
        self.crash_point = None;
        self.deferred = None;
        self.incarnation += 1;
    }
}
