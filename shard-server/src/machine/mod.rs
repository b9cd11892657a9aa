//! The key-value state machine of a replica group: client mutations with exactly-once
//! semantics, and the reconfiguration steps (new configuration, shard install, deletion of a
//! handed-over shard), applied in log order on every replica.
//!
//! Everything here is deterministic: it depends on the store's contents and the command only
//! (the time is the leader's stamp in the command). The rules of reconfiguration, each
//! enforced at *apply* time:
//!
//! 1. ownership of a key's shard is checked when a mutation is applied, not when received;
//! 2. a configuration is adopted only if its number is the current one plus 1, and only once
//!    every shard has settled in the current one;
//! 3. (served in [`crate::handoff`]) a shard is handed out for configuration `num` only by a
//!    replica that has applied `num` and holds the shard frozen for it;
//! 4. installing a shard first clears its range; chunks apply in order (each names the
//!    progress it continues from), so an install interrupted by a crash or a change of leader
//!    resumes from the last chunk installed, without mixing data;
//! 5. deletion of a handed-over shard names `(shard, config num)` and only deletes a shard
//!    frozen for exactly that configuration;
//! 6. a frozen shard is taken back (`Reclaim`) only if its last chunk was never handed out
//!    (`Grant` is a command too, so the two are ordered by the log), and a pull of a shard
//!    taken back is refused for good (see [`crate::shard_state`]).
//!
//! Every applied command is one atomic write batch to the store, carrying the new applied
//! index; every `sync_every` commands that write is synced, and the index it carries is the
//! durable index below which the node may discard its Paxos log.
//!
//! Layout: this file holds the machine, its shared [`View`] and the dispatch of a command;
//! `execute` the client mutations (admitted by the session table, then executed);
//! `migration` the reconfiguration steps; `persist` the metadata, loading and snapshots;
//! [`read`] what the RPC handlers read (keys, pages, kept replies) — the key layout
//! ([`crate::keys`]) is known only here and in [`crate::handoff`].

mod execute;
mod migration;
mod persist;
pub mod read;

pub use persist::SnapshotChunk;
pub use read::Reader;

use execute::Mutation;
use persist::load_sessions;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use strata::WriteBatch;
use strata_node::{Durability, RestoreError, SnapshotStream, StateMachine, TransferError};
use strata_paxos::Slot;
use strata_rpc::config::Config;
use strata_rpc::shard_for_key;
use strata_rpc::v1::ErrorReason;

use crate::command::{Command, Kind, Outcome, Refusal};
use crate::keys;
use crate::session::SessionTable;
use crate::shard_state::{encode_states, ShardState};
use crate::store::{Store, StoreError};

/// Tuning of the state machine. Every replica of a group must use the same values (they
/// decide what the state machine does).
#[derive(Debug, Clone)]
pub struct MachineOptions {
    /// A session idle for longer than this (in log time) is dropped.
    pub session_timeout_ms: u64,
    /// Sync the store every this many commands (the durable index moves then)...
    pub sync_every: u32,
    /// ...or once this many bytes of commands were applied since the last sync.
    pub sync_bytes: usize,
    /// At most this many unacknowledged replies per session; beyond, mutations are refused
    /// as overload.
    pub max_pending_replies: usize,
}

impl Default for MachineOptions {
    fn default() -> Self {
        MachineOptions {
            session_timeout_ms: 10 * 60 * 1000,
            sync_every: 256,
            sync_bytes: 2 << 20,
            max_pending_replies: 4096,
        }
    }
}

/// What RPC handlers and the reconfiguration worker see of the state machine. Updated by the
/// state machine when a configuration or a shard state changes.
///
/// Lock: readers hold the read lock while they check ownership *and* read the data, so a
/// shard cannot be deleted between the two; the state machine takes the write lock only for
/// configuration and shard-state changes.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// This replica's group.
    pub gid: u64,
    /// The configuration applied.
    pub config: Config,
    /// The configuration before it.
    pub previous: Config,
    /// Every shard's state in `config` (empty before the first configuration).
    pub shards: Vec<ShardState>,
    /// Sessions in the served shards' dedup tables.
    pub sessions: usize,
    /// `(shard, config num)`: shards this group took back from the owner they were frozen
    /// for in that configuration (pulls of them are refused for good).
    pub reclaimed: BTreeSet<(u32, u64)>,
    /// Key ranges deleted since the worker last looked, whose space compaction may reclaim.
    pub deleted_ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

impl View {
    /// Every shard has settled: the group may move to the next configuration.
    pub fn settled(&self) -> bool {
        self.shards.iter().all(ShardState::is_settled)
    }

    /// The shard of `key`, if the replica has a configuration with shards.
    pub fn shard_of(&self, key: &[u8]) -> Option<u32> {
        let n = u32::try_from(self.config.shards.len()).ok()?;
        (n > 0).then(|| shard_for_key(key, n))
    }

    /// `Ok` if `shard` is served here, else the refusal a client gets.
    pub fn check_serving(&self, shard: u32) -> Result<(), Refusal> {
        check_serving(self.gid, &self.config, &self.shards, shard)
    }
}

/// `Ok` if `shard` is served by group `gid` with these shard states, else the refusal.
fn check_serving(
    gid: u64,
    config: &Config,
    shards: &[ShardState],
    shard: u32,
) -> Result<(), Refusal> {
    match shards.get(shard as usize) {
        Some(s) if s.is_served() => Ok(()),
        Some(ShardState::Pulling { .. }) => Err(refusal(
            ErrorReason::Installing,
            config.num,
            shard,
            format!(
                "shard {shard} is still being installed for config {}",
                config.num
            ),
        )),
        _ => Err(refusal(
            ErrorReason::WrongGroup,
            config.num,
            shard,
            format!(
                "shard {shard} is not served by group {gid} in config {}",
                config.num
            ),
        )),
    }
}

/// A refusal.
pub fn refusal(reason: ErrorReason, config_num: u64, shard: u32, message: String) -> Refusal {
    Refusal {
        reason: reason as i32,
        config_num,
        shard,
        message,
    }
}

/// The state machine of one replica.
pub struct KvMachine<S: Store> {
    gid: u64,
    store: Arc<S>,
    options: MachineOptions,
    view: Arc<RwLock<View>>,
    config: Config,
    previous: Config,
    shards: Vec<ShardState>,
    sessions: SessionTable,
    log_time: u64,
    /// Every slot below is applied (shared with readers for status).
    applied: Arc<AtomicU64>,
    /// When the store is synced (every `sync_every` commands or `sync_bytes`).
    durability: Durability,
    /// Shards served again by the command being applied (an install completed, a shard
    /// taken back became ours): their dedup tables load once it is written.
    installed: Vec<u32>,
    /// See [`View::reclaimed`].
    reclaimed: BTreeSet<(u32, u64)>,
}

impl<S: Store> std::fmt::Debug for KvMachine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvMachine")
            .field("gid", &self.gid)
            .field("config", &self.config.num)
            .field("applied", &self.applied.load(Ordering::Relaxed))
            .finish()
    }
}

impl<S: Store> KvMachine<S> {
    /// The state machine of group `gid` over `store`, loaded from what the store holds (a
    /// fresh store starts before configuration 1, owning nothing).
    pub fn open(gid: u64, store: Arc<S>, options: MachineOptions) -> Result<Self, StoreError> {
        let durability = Durability::new(options.sync_every, options.sync_bytes, 1);
        let mut m = KvMachine {
            gid,
            store,
            options,
            view: Arc::new(RwLock::new(View {
                gid,
                ..View::default()
            })),
            config: Config::default(),
            previous: Config::default(),
            shards: Vec::new(),
            sessions: SessionTable::default(),
            log_time: 0,
            applied: Arc::new(AtomicU64::new(1)),
            durability,
            installed: Vec::new(),
            reclaimed: BTreeSet::new(),
        };
        m.load()?;
        Ok(m)
    }

    /// A reader of this machine's state, for the RPC handlers.
    pub fn reader(&self) -> Reader {
        Reader::new(self.view.clone(), self.store.clone())
    }

    /// The view shared with readers.
    pub fn view(&self) -> Arc<RwLock<View>> {
        self.view.clone()
    }

    /// The applied index, shared.
    pub fn applied_handle(&self) -> Arc<AtomicU64> {
        self.applied.clone()
    }

    /// The store.
    pub fn store(&self) -> Arc<S> {
        self.store.clone()
    }

    /// The configuration applied.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every shard's state.
    pub fn shard_states(&self) -> &[ShardState] {
        &self.shards
    }

    /// Copies configuration and shard states into the view.
    fn publish(&self) {
        let mut v = self.view.write();
        v.config = self.config.clone();
        v.previous = self.previous.clone();
        v.shards = self.shards.clone();
        v.sessions = self.sessions.len();
        if v.reclaimed != self.reclaimed {
            v.reclaimed = self.reclaimed.clone();
        }
    }

    fn settled(&self) -> bool {
        self.shards.iter().all(ShardState::is_settled)
    }

    fn save_states(&self, batch: &mut WriteBatch) {
        batch.put(keys::SHARD_STATES, encode_states(&self.shards));
    }

    /// Applies one decoded command, adding its writes to `batch`. Returns the reply and
    /// whether the shard states changed (then the view is republished).
    fn apply_command(&mut self, batch: &mut WriteBatch, command: Command) -> (Outcome, bool) {
        if command.now_ms > self.log_time {
            self.log_time = command.now_ms;
            batch.put(keys::LOG_TIME, self.log_time.to_le_bytes());
        }
        self.expire_sessions(batch);
        let Some(kind) = command.kind else {
            return (Outcome::Done(false), false);
        };
        let _step = self.step_span(&kind).map(tracing::Span::entered);
        match kind {
            Kind::Put(r) => self.mutate(batch, r.header.as_ref(), r.key, Mutation::Put(r.value)),
            Kind::Append(r) => {
                self.mutate(batch, r.header.as_ref(), r.key, Mutation::Append(r.value))
            }
            Kind::Delete(r) => self.mutate(batch, r.header.as_ref(), r.key, Mutation::Delete),
            Kind::CompareAndSwap(r) => {
                let op = Mutation::CompareAndSwap {
                    expected: r.expected,
                    new_value: r.new_value,
                };
                self.mutate(batch, r.header.as_ref(), r.key, op)
            }
            Kind::Reconfigure(c) => {
                let done = self.reconfigure(batch, Config::from_proto(c));
                (Outcome::Done(done), done)
            }
            Kind::Install(chunk) => {
                let done = self.install(batch, chunk);
                (Outcome::Done(done), done)
            }
            Kind::DeleteShard(r) => {
                let (deleted, changed) = self.delete_shard(batch, r);
                (Outcome::Done(deleted), changed)
            }
            Kind::Notified(r) => {
                let done = self.notified(batch, r);
                (Outcome::Done(done), done)
            }
            Kind::Grant(r) => {
                let (granted, changed) = self.grant(batch, r);
                (Outcome::Done(granted), changed)
            }
            Kind::Reclaim(r) => {
                let (reclaimed, changed) = self.reclaim(batch, r);
                (Outcome::Done(reclaimed), changed)
            }
            Kind::Abandon(r) => {
                let done = self.abandon(batch, r);
                (Outcome::Done(done), done)
            }
        }
    }

    /// Applies encoded `command` at `slot` (the whole of [`StateMachine::apply`]).
    fn apply_at(&mut self, slot: Slot, command: &[u8]) -> Outcome {
        let mut batch = WriteBatch::new();
        let (reply, changed) = match Command::decode(command) {
            Ok(c) => self.apply_command(&mut batch, c),
            Err(e) => {
                tracing::error!(slot, error = %e, "undecodable command; skipped");
                (
                    Outcome::Refused(refusal(
                        ErrorReason::InvalidArgument,
                        self.config.num,
                        0,
                        format!("undecodable command: {e}"),
                    )),
                    false,
                )
            }
        };
        batch.put(keys::APPLIED, (slot + 1).to_le_bytes());
        let sync = self.durability.must_sync(command.len());
        if let Err(e) = self.store.write(batch, sync) {
            // The state in memory is ahead of the store: this replica cannot go on. A restart
            // recovers the durable prefix and replays the log.
            tracing::error!(slot, error = %e, "writing the state machine's store failed; stopping");
            std::process::abort();
        }
        if sync {
            self.durability.synced(slot + 1);
        }
        for shard in std::mem::take(&mut self.installed) {
            // The shard is served from now on: load its dedup table (just written).
            if let Err(e) = load_sessions(self.store.as_ref(), shard, &mut self.sessions) {
                tracing::error!(shard, error = %e, "loading installed sessions failed; stopping");
                std::process::abort();
            }
        }
        if changed || self.view.read().sessions != self.sessions.len() {
            // The write lock (which readers wait on) only when something they see changed.
            self.publish();
        }
        self.applied.store(slot + 1, Ordering::Release);
        reply
    }
}

impl<S: Store> StateMachine for KvMachine<S> {
    type Reply = Outcome;

    fn apply(&mut self, slot: Slot, command: &[u8]) -> Outcome {
        self.apply_at(slot, command)
    }

    fn durable_index(&self) -> Slot {
        self.durability.durable_index()
    }

    fn snapshot(&self) -> (Slot, SnapshotStream) {
        self.snapshot_stream()
    }

    fn restore(
        &mut self,
        index: Slot,
        chunks: &mut dyn Iterator<Item = Result<Vec<u8>, TransferError>>,
    ) -> Result<(), RestoreError> {
        self.restore_stream(index, chunks)
    }
}

#[cfg(test)]
mod tests;

// The server stores what the rpc table admits: its idea of the engine's limits is the engine's.
const _: () = assert!(strata::MAX_KEY_SIZE == strata_rpc::ENGINE_MAX_KEY_BYTES);
const _: () = assert!(strata::MAX_VALUE_SIZE == strata_rpc::ENGINE_MAX_VALUE_BYTES);
