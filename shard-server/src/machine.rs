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

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use prost::Message;
use strata::WriteBatch;
use strata_client::Config;
use strata_node::{SnapshotStream, StateMachine};
use strata_paxos::Slot;
use strata_rpc::v1::{self, kv_reply::Reply, ErrorReason};
use strata_rpc::{shard_for_key, MAX_KEY_BYTES, MAX_VALUE_BYTES};

use crate::command::{Command, InstallChunk, Kind, Outcome, Refusal, ShardRef};
use crate::keys;
use crate::session::{Session, SessionTable};
use crate::shard_state::{
    decode_reclaims, decode_states, encode_reclaims, encode_states, ShardState,
};
use crate::store::{MemStore, Store};

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
    durable: Slot,
    unsynced: u32,
    unsynced_bytes: usize,
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

fn decode_config(bytes: &[u8]) -> Result<Config, String> {
    v1::Config::decode(bytes)
        .map(Config::from_proto)
        .map_err(|e| format!("stored config: {e}"))
}

fn owned_by(config: &Config, shard: usize) -> u64 {
    config.shards.get(shard).copied().unwrap_or(0)
}

/// The metadata of a stored state machine.
struct Meta {
    applied: Slot,
    log_time: u64,
    config: Config,
    previous: Config,
    shards: Vec<ShardState>,
    reclaimed: BTreeSet<(u32, u64)>,
}

impl Meta {
    /// Reads and checks the metadata in `store`.
    fn read(store: &dyn Store) -> Result<Meta, String> {
        let u64_at = |key: &[u8]| -> Result<Option<u64>, String> {
            match store.get(key)? {
                None => Ok(None),
                Some(v) => Ok(Some(u64::from_le_bytes(
                    v.as_slice()
                        .try_into()
                        .map_err(|_| format!("malformed metadata {key:?}"))?,
                ))),
            }
        };
        let config_at = |key: &[u8]| -> Result<Config, String> {
            store
                .get(key)?
                .map_or(Ok(Config::default()), |b| decode_config(&b))
        };
        let meta = Meta {
            applied: u64_at(keys::APPLIED)?.unwrap_or(1),
            log_time: u64_at(keys::LOG_TIME)?.unwrap_or(0),
            config: config_at(keys::CONFIG)?,
            previous: config_at(keys::PREVIOUS_CONFIG)?,
            shards: match store.get(keys::SHARD_STATES)? {
                Some(b) => decode_states(&b)?,
                None => Vec::new(),
            },
            reclaimed: match store.get(keys::RECLAIMED)? {
                Some(b) => decode_reclaims(&b)?,
                None => BTreeSet::new(),
            },
        };
        if meta.shards.len() != meta.config.shards.len() {
            return Err(format!(
                "stored state has {} shard states for {} shards",
                meta.shards.len(),
                meta.config.shards.len()
            ));
        }
        Ok(meta)
    }
}

/// Adds the stored sessions of `shard` to `table`.
fn load_sessions(store: &dyn Store, shard: u32, table: &mut SessionTable) -> Result<(), String> {
    let (start, end) = keys::session_range(shard);
    for entry in store.scan(&start, &end) {
        let (key, bytes) = entry?;
        let (client, session) = session_entry(&key, &bytes)?;
        table.put(shard, client, session);
    }
    Ok(())
}

/// Decodes a stored session, checking that its key names its client.
fn session_entry(key: &[u8], value: &[u8]) -> Result<(u128, Session), String> {
    let (client, session) = Session::decode(value)?;
    if keys::session_client(key) != Some(client) {
        return Err(format!(
            "session key {key:?} does not name the session's client {client:x}"
        ));
    }
    Ok((client, session))
}

/// Checks a snapshot's entries while they stream into the store: keys must strictly ascend
/// (a snapshot is a scan of the store), the metadata (the first keys) must load and carry
/// `index`, and every session must decode; otherwise an `Err` entry makes the store keep its
/// old contents.
struct CheckedSnapshot<I> {
    entries: I,
    index: Slot,
    meta: MemStore,
    meta_checked: bool,
    /// The key of the last entry passed on.
    last_key: Option<Vec<u8>>,
    failed: bool,
}

impl<I: Iterator<Item = Result<(Vec<u8>, Vec<u8>), String>>> CheckedSnapshot<I> {
    fn check_meta(&mut self) -> Result<(), String> {
        self.meta_checked = true;
        let meta = Meta::read(&self.meta).map_err(|e| format!("snapshot metadata: {e}"))?;
        if meta.applied != self.index {
            return Err(format!(
                "snapshot labelled {} holds the state after slot {}",
                self.index, meta.applied
            ));
        }
        Ok(())
    }

    fn check(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        // Without this, a metadata key arriving after the metadata was checked would reach
        // the store unchecked.
        if let Some(last) = self.last_key.as_deref().filter(|last| key <= *last) {
            return Err(format!(
                "snapshot keys out of order: {key:?} after {last:?}"
            ));
        }
        let last = self.last_key.get_or_insert_with(Vec::new);
        last.clear();
        last.extend_from_slice(key);
        if key.first() == Some(&0) {
            let mut b = WriteBatch::new();
            b.put(key, value);
            return self.meta.write(b, false);
        }
        if !self.meta_checked {
            self.check_meta()?;
        }
        if keys::in_session_range(key) {
            session_entry(key, value)?;
        }
        Ok(())
    }
}

impl<I: Iterator<Item = Result<(Vec<u8>, Vec<u8>), String>>> Iterator for CheckedSnapshot<I> {
    type Item = Result<(Vec<u8>, Vec<u8>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = match self.entries.next() {
            Some(Ok((k, v))) => self.check(&k, &v).map(|()| (k, v)),
            Some(Err(e)) => Err(e),
            None if !self.meta_checked => match self.check_meta() {
                Ok(()) => return None,
                Err(e) => Err(e),
            },
            None => return None,
        };
        self.failed = item.is_err();
        Some(item)
    }
}

impl<S: Store> KvMachine<S> {
    /// The state machine of group `gid` over `store`, loaded from what the store holds (a
    /// fresh store starts before configuration 1, owning nothing).
    pub fn open(gid: u64, store: Arc<S>, options: MachineOptions) -> Result<Self, String> {
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
            durable: 1,
            unsynced: 0,
            unsynced_bytes: 0,
            installed: Vec::new(),
            reclaimed: BTreeSet::new(),
        };
        m.load()?;
        Ok(m)
    }

    /// (Re)loads everything from the store; on error nothing changes.
    fn load(&mut self) -> Result<(), String> {
        let meta = Meta::read(self.store.as_ref())?;
        let mut sessions = SessionTable::default();
        for (s, state) in meta.shards.iter().enumerate() {
            if state.is_served() {
                load_sessions(self.store.as_ref(), s as u32, &mut sessions)?;
            }
        }
        self.log_time = meta.log_time;
        self.config = meta.config;
        self.previous = meta.previous;
        self.shards = meta.shards;
        self.reclaimed = meta.reclaimed;
        self.sessions = sessions;
        self.applied.store(meta.applied, Ordering::Release);
        self.durable = meta.applied;
        self.unsynced = 0;
        self.unsynced_bytes = 0;
        self.publish();
        Ok(())
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
        match kind {
            Kind::Put(r) => {
                let request =
                    ClientRequest::new(r.client_id, r.seq, r.first_incomplete_seq, r.opens_session);
                self.mutate(batch, request, r.key, Mutation::Put(r.value))
            }
            Kind::Append(r) => {
                let request =
                    ClientRequest::new(r.client_id, r.seq, r.first_incomplete_seq, r.opens_session);
                self.mutate(batch, request, r.key, Mutation::Append(r.value))
            }
            Kind::Delete(r) => {
                let request =
                    ClientRequest::new(r.client_id, r.seq, r.first_incomplete_seq, r.opens_session);
                self.mutate(batch, request, r.key, Mutation::Delete)
            }
            Kind::CompareAndSwap(r) => {
                let request =
                    ClientRequest::new(r.client_id, r.seq, r.first_incomplete_seq, r.opens_session);
                let op = Mutation::CompareAndSwap {
                    expected: r.expected,
                    new_value: r.new_value,
                };
                self.mutate(batch, request, r.key, op)
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

    fn expire_sessions(&mut self, batch: &mut WriteBatch) {
        let cutoff = self
            .log_time
            .saturating_sub(self.options.session_timeout_ms);
        for (shard, client) in self.sessions.expire(cutoff) {
            batch.delete(keys::session_key(shard, client));
        }
    }

    fn mutate(
        &mut self,
        batch: &mut WriteBatch,
        request: ClientRequest,
        key: Vec<u8>,
        op: Mutation,
    ) -> (Outcome, bool) {
        let ClientRequest {
            client_id,
            seq,
            first_incomplete,
            opens_session,
        } = request;
        let refused = |r: Refusal| (Outcome::Refused(r), false);
        let n = self.config.shards.len() as u32;
        let shard = if n == 0 { 0 } else { shard_for_key(&key, n) };
        if let Err(r) = check_serving(self.gid, &self.config, &self.shards, shard) {
            return refused(r);
        }
        let Ok(client) = <[u8; 16]>::try_from(client_id.as_slice()).map(u128::from_be_bytes) else {
            return refused(refusal(
                ErrorReason::InvalidArgument,
                self.config.num,
                shard,
                format!("client_id must be 16 bytes, got {}", client_id.len()),
            ));
        };
        let mut session = match self.sessions.get(shard, client) {
            Some(s) => s.clone(),
            None if opens_session => Session::default(),
            None => {
                return refused(refusal(
                    ErrorReason::SessionExpired,
                    self.config.num,
                    shard,
                    format!(
                        "shard {shard} has no session for this client (expired after {} ms idle?): the outcome of request {seq} is unknown",
                        self.options.session_timeout_ms
                    ),
                ))
            }
        };
        if seq < session.first_incomplete {
            return refused(refusal(
                ErrorReason::InvalidArgument,
                self.config.num,
                shard,
                format!(
                    "request {seq} was already completed (the client acknowledged every seq below {})",
                    session.first_incomplete
                ),
            ));
        }
        if let Some(reply) = session.replies.get(&seq) {
            let reply = reply.clone();
            session.last_active_ms = self.log_time;
            batch.put(keys::session_key(shard, client), session.encode(client));
            self.sessions.put(shard, client, session);
            return (Outcome::Kv(reply), false);
        }
        if first_incomplete > session.first_incomplete {
            session.first_incomplete = first_incomplete;
            session.replies = session.replies.split_off(&first_incomplete);
        }
        if session.replies.len() >= self.options.max_pending_replies {
            return refused(refusal(
                ErrorReason::Overloaded,
                self.config.num,
                shard,
                format!(
                    "the client has {} unacknowledged requests on shard {shard}",
                    session.replies.len()
                ),
            ));
        }
        let reply = match self.execute(batch, shard, &key, op) {
            Ok(reply) => reply,
            Err(ExecError::Invalid(message)) => {
                // Decided by the command and the state alone, so every replica refuses it
                // alike and the log moves on: a chosen command never stops a replica.
                return refused(refusal(
                    ErrorReason::InvalidArgument,
                    self.config.num,
                    shard,
                    message,
                ));
            }
            Err(ExecError::Store(e)) => {
                // Reading the store failed: every replica would fail alike only if its store
                // is damaged alike; this replica must not diverge silently.
                tracing::error!(error = %e, "reading the store failed while applying; stopping");
                std::process::abort();
            }
        };
        let reply = v1::KvReply { reply: Some(reply) };
        session.replies.insert(seq, reply_to_keep(&reply));
        session.last_active_ms = self.log_time;
        batch.put(keys::session_key(shard, client), session.encode(client));
        self.sessions.put(shard, client, session);
        (Outcome::Kv(reply), false)
    }

    fn execute(
        &self,
        batch: &mut WriteBatch,
        shard: u32,
        key: &[u8],
        op: Mutation,
    ) -> Result<Reply, ExecError> {
        let data_key = keys::data_key(shard, key);
        if data_key.len() > strata::MAX_KEY_SIZE {
            return Err(ExecError::Invalid(format!(
                "key of {} bytes exceeds MAX_KEY_BYTES ({MAX_KEY_BYTES} bytes)",
                key.len()
            )));
        }
        let check_value = |len: usize, what: &str| {
            if len > MAX_VALUE_BYTES {
                return Err(ExecError::Invalid(format!(
                    "{what} of {len} bytes exceeds MAX_VALUE_BYTES ({MAX_VALUE_BYTES} bytes)"
                )));
            }
            Ok(())
        };
        let get = |k: &[u8]| self.store.get(k).map_err(ExecError::Store);
        Ok(match op {
            Mutation::Put(value) => {
                check_value(value.len(), "value")?;
                batch.put(&data_key, value);
                Reply::Put(v1::PutResponse {})
            }
            Mutation::Append(value) => {
                let mut current = get(&data_key)?.unwrap_or_default();
                check_value(current.len() + value.len(), "the appended value")?;
                current.extend_from_slice(&value);
                batch.put(&data_key, current);
                Reply::Append(v1::AppendResponse {})
            }
            Mutation::Delete => {
                let existed = get(&data_key)?.is_some();
                if existed {
                    batch.delete(&data_key);
                }
                Reply::Delete(v1::DeleteResponse { existed })
            }
            Mutation::CompareAndSwap {
                expected,
                new_value,
            } => {
                if let Some(v) = &new_value {
                    check_value(v.len(), "new value")?;
                }
                let current = get(&data_key)?;
                if current == expected {
                    match new_value {
                        Some(v) => batch.put(&data_key, v),
                        None => batch.delete(&data_key),
                    };
                    Reply::CompareAndSwap(v1::CompareAndSwapResponse {
                        swapped: true,
                        current: None,
                        current_omitted: false,
                    })
                } else {
                    Reply::CompareAndSwap(v1::CompareAndSwapResponse {
                        swapped: false,
                        current,
                        current_omitted: false,
                    })
                }
            }
        })
    }

    /// Rule 2: adopts `next` only if it is the next configuration and every shard settled.
    fn reconfigure(&mut self, batch: &mut WriteBatch, next: Config) -> bool {
        if next.num != self.config.num + 1 || !self.settled() {
            return false;
        }
        if !self.config.shards.is_empty() && next.shards.len() != self.config.shards.len() {
            tracing::error!(
                from = self.config.shards.len(),
                to = next.shards.len(),
                "a configuration with another shard count; ignored"
            );
            return false;
        }
        if next.shards.is_empty() {
            return false;
        }
        let me = self.gid;
        let mut shards = std::mem::take(&mut self.shards);
        shards.resize(next.shards.len(), ShardState::Absent);
        for (s, state) in shards.iter_mut().enumerate() {
            let shard = s as u32;
            let before = owned_by(&self.config, s);
            let after = next.shards[s];
            // What this group holds, not what the configuration said: a shard taken back is
            // held though another group owned it, one abandoned is not though we owned it.
            let held = match state {
                ShardState::Serving => true,
                ShardState::Reclaimed => {
                    if after == me {
                        self.installed.push(shard);
                    }
                    true
                }
                _ => false,
            };
            *state = match (held, after == me) {
                (true, true) => ShardState::Serving,
                (false, true) if before == 0 => {
                    // Unassigned until now: it starts empty.
                    let (start, end) = keys::shard_range(shard);
                    batch.delete_range(start, end);
                    ShardState::Serving
                }
                (false, true) => {
                    // Unsettled shards are never adopted past, so the group that owned it
                    // before holds it (or, if it took it back, another group of `config`:
                    // the puller asks them all, `before` first).
                    ShardState::Pulling {
                        from: before,
                        token: Vec::new(),
                        pieces: 0,
                    }
                }
                (true, false) => {
                    self.sessions.forget_shard(shard);
                    if after == 0 {
                        // Every group left: nobody will take the shard over.
                        tracing::warn!(
                            shard,
                            "shard unassigned by the master; its data is dropped"
                        );
                        let (start, end) = keys::shard_range(shard);
                        batch.delete_range(start, end);
                        ShardState::Absent
                    } else {
                        ShardState::Leaving { to: after }
                    }
                }
                (false, false) => ShardState::Absent,
            };
        }
        self.shards = shards;
        self.previous = std::mem::replace(&mut self.config, next);
        batch.put(keys::CONFIG, self.config.to_proto().encode_to_vec());
        batch.put(
            keys::PREVIOUS_CONFIG,
            self.previous.to_proto().encode_to_vec(),
        );
        self.save_states(batch);
        true
    }

    /// Rule 4: installs a chunk if it continues the shard's install progress.
    fn install(&mut self, batch: &mut WriteBatch, install: InstallChunk) -> bool {
        let Some(chunk) = install.chunk else {
            return false;
        };
        if chunk.config_num != self.config.num {
            return false;
        }
        let shard = chunk.shard;
        let Some(ShardState::Pulling {
            from,
            token,
            pieces,
        }) = self.shards.get(shard as usize).cloned()
        else {
            return false;
        };
        if token != install.after {
            return false;
        }
        // The group that answered holds the shard: it is the one to tell once installed.
        let from = if install.source != 0 {
            install.source
        } else {
            from
        };
        let mut pieces = pieces;
        if install.after.is_empty() {
            // The first chunk (again, if an earlier attempt was abandoned): start clean.
            let (start, end) = keys::shard_range(shard);
            batch.delete_range(start, end);
            let (start, end) = keys::piece_range(shard);
            batch.delete_range(start, end);
            pieces = 0;
        }
        let n = self.config.shards.len() as u32;
        // Pieces of a split value written by this very batch (not yet in the store).
        let mut fresh_pieces: Vec<Vec<u8>> = Vec::new();
        for entry in chunk.entries {
            if shard_for_key(&entry.key, n) != shard {
                tracing::warn!(
                    shard,
                    "an install chunk holds a key of another shard; skipped"
                );
                continue;
            }
            if entry.continues {
                batch.put(keys::piece_key(shard, pieces), &entry.value);
                fresh_pieces.push(entry.value);
                pieces += 1;
                continue;
            }
            let key = keys::data_key(shard, &entry.key);
            if pieces == 0 {
                batch.put(key, entry.value);
                continue;
            }
            // The last piece of a split value: assemble it.
            let stored = pieces as usize - fresh_pieces.len();
            let mut value = Vec::new();
            if stored > 0 {
                let (start, end) = keys::piece_range(shard);
                for piece in self.store.scan(&start, &end).take(stored) {
                    match piece {
                        Ok((_, v)) => value.extend_from_slice(&v),
                        Err(e) => {
                            tracing::error!(error = %e, "reading the store failed while applying; stopping");
                            std::process::abort();
                        }
                    }
                }
            }
            for p in fresh_pieces.drain(..) {
                value.extend_from_slice(&p);
            }
            value.extend_from_slice(&entry.value);
            batch.put(key, value);
            let (start, end) = keys::piece_range(shard);
            batch.delete_range(start, end);
            pieces = 0;
        }
        for session in chunk.sessions {
            if let Some((client, s)) = Session::from_proto(session) {
                batch.put(keys::session_key(shard, client), s.encode(client));
            }
        }
        self.shards[shard as usize] = if chunk.done {
            let (start, end) = keys::piece_range(shard);
            batch.delete_range(start, end);
            self.installed.push(shard);
            ShardState::Notifying { from }
        } else {
            ShardState::Pulling {
                from,
                token: chunk.resume_token,
                pieces,
            }
        };
        self.save_states(batch);
        true
    }

    /// Rule 5: deletes the shard only if it is held frozen for exactly `r.config_num`.
    /// Returns (the shard is gone for that configuration, the state changed).
    fn delete_shard(&mut self, batch: &mut WriteBatch, r: ShardRef) -> (bool, bool) {
        let s = r.shard as usize;
        if s >= self.shards.len() {
            return (false, false);
        }
        if r.config_num < self.config.num {
            // We only move past a configuration once every shard handed over in it was
            // deleted (Leaving is not settled).
            return (true, false);
        }
        if r.config_num > self.config.num {
            return (false, false);
        }
        match self.shards[s] {
            ShardState::Leaving { .. } | ShardState::Handed { .. } => {
                let (start, end) = keys::shard_range(r.shard);
                batch.delete_range(&start, &end);
                self.view.write().deleted_ranges.push((start, end));
                self.shards[s] = ShardState::Absent;
                self.save_states(batch);
                (true, true)
            }
            ShardState::Absent => (true, false),
            _ => (false, false),
        }
    }

    /// Rule 6, the new owner's side of it: the last chunk of `r` is handed out only if the
    /// shard was not taken back. Returns (granted, the state changed).
    fn grant(&mut self, batch: &mut WriteBatch, r: ShardRef) -> (bool, bool) {
        if r.config_num != self.config.num {
            return (false, false);
        }
        match self.shards.get(r.shard as usize) {
            Some(&ShardState::Leaving { to }) => {
                self.shards[r.shard as usize] = ShardState::Handed { to };
                self.save_states(batch);
                (true, true)
            }
            Some(ShardState::Handed { .. }) => (true, false),
            _ => (false, false),
        }
    }

    /// Rule 6: takes back a frozen shard whose last chunk was never handed out. Returns
    /// (the shard is taken back, the state changed).
    fn reclaim(&mut self, batch: &mut WriteBatch, r: ShardRef) -> (bool, bool) {
        if r.config_num != self.config.num {
            return (false, false);
        }
        match self.shards.get(r.shard as usize) {
            Some(ShardState::Leaving { to }) => {
                tracing::warn!(
                    shard = r.shard,
                    config = r.config_num,
                    to,
                    "taking back a shard its new owner never installed"
                );
                self.shards[r.shard as usize] = ShardState::Reclaimed;
                self.reclaimed.insert((r.shard, r.config_num));
                batch.put(keys::RECLAIMED, encode_reclaims(&self.reclaimed));
                self.save_states(batch);
                (true, true)
            }
            Some(ShardState::Reclaimed) => (true, false),
            _ => (false, false),
        }
    }

    /// Gives up the install of a shard its holder took back: what was installed goes.
    fn abandon(&mut self, batch: &mut WriteBatch, r: ShardRef) -> bool {
        if r.config_num != self.config.num
            || !matches!(
                self.shards.get(r.shard as usize),
                Some(ShardState::Pulling { .. })
            )
        {
            return false;
        }
        tracing::warn!(
            shard = r.shard,
            config = r.config_num,
            "abandoning the install of a shard its holder took back"
        );
        for (start, end) in [keys::shard_range(r.shard), keys::piece_range(r.shard)] {
            batch.delete_range(start, end);
        }
        self.shards[r.shard as usize] = ShardState::Absent;
        self.save_states(batch);
        true
    }

    fn notified(&mut self, batch: &mut WriteBatch, r: ShardRef) -> bool {
        let s = r.shard as usize;
        if r.config_num != self.config.num
            || !matches!(self.shards.get(s), Some(ShardState::Notifying { .. }))
        {
            return false;
        }
        self.shards[s] = ShardState::Serving;
        self.save_states(batch);
        true
    }

    /// Applies encoded `command` at `slot` (the whole of [`StateMachine::apply`], with the
    /// decision to sync exposed for tests).
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
        self.unsynced += 1;
        self.unsynced_bytes += command.len();
        let sync = self.unsynced >= self.options.sync_every
            || self.unsynced_bytes >= self.options.sync_bytes;
        if let Err(e) = self.store.write(batch, sync) {
            // The state in memory is ahead of the store: this replica cannot go on. A restart
            // recovers the durable prefix and replays the log.
            tracing::error!(slot, error = %e, "writing the state machine's store failed; stopping");
            std::process::abort();
        }
        if sync {
            self.durable = slot + 1;
            self.unsynced = 0;
            self.unsynced_bytes = 0;
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

/// The session fields of a client mutation.
struct ClientRequest {
    client_id: Vec<u8>,
    seq: u64,
    first_incomplete: u64,
    opens_session: bool,
}

impl ClientRequest {
    fn new(client_id: Vec<u8>, seq: u64, first_incomplete: u64, opens_session: bool) -> Self {
        ClientRequest {
            client_id,
            seq,
            first_incomplete,
            opens_session,
        }
    }
}

/// A client mutation, decoded.
/// Why a mutation was not executed.
enum ExecError {
    /// The command cannot be applied (a limit): every replica decides the same, the client is
    /// told `INVALID_ARGUMENT`.
    Invalid(String),
    /// Reading this replica's store failed.
    Store(String),
}

/// Largest `current` value of a failed CompareAndSwap kept in a session's dedup table: a
/// session is one stored record, so it must not hold whole large values (a retry of such a
/// CAS is answered with `current_omitted`).
const KEPT_CAS_CURRENT_BYTES: usize = 4 << 10;

/// The reply a session keeps for retries: the reply itself, except that a failed
/// CompareAndSwap's large `current` value is dropped (flagged `current_omitted`).
fn reply_to_keep(reply: &v1::KvReply) -> v1::KvReply {
    match &reply.reply {
        Some(Reply::CompareAndSwap(c))
            if c.current
                .as_ref()
                .is_some_and(|v| v.len() > KEPT_CAS_CURRENT_BYTES) =>
        {
            v1::KvReply {
                reply: Some(Reply::CompareAndSwap(v1::CompareAndSwapResponse {
                    swapped: c.swapped,
                    current: None,
                    current_omitted: true,
                })),
            }
        }
        _ => reply.clone(),
    }
}

enum Mutation {
    Put(Vec<u8>),
    Append(Vec<u8>),
    Delete,
    CompareAndSwap {
        expected: Option<Vec<u8>>,
        new_value: Option<Vec<u8>>,
    },
}

/// One chunk of a state-machine snapshot: engine entries.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotChunk {
    /// Keys and values of the store, in key order.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<v1::KeyValue>,
}

/// Bytes of entries per snapshot chunk.
const SNAPSHOT_CHUNK_BYTES: usize = 512 << 10;

impl<S: Store> StateMachine for KvMachine<S> {
    type Reply = Outcome;

    fn apply(&mut self, slot: Slot, command: &[u8]) -> Outcome {
        self.apply_at(slot, command)
    }

    fn durable_index(&self) -> Slot {
        self.durable
    }

    fn snapshot(&self) -> (Slot, SnapshotStream) {
        let index = self.applied.load(Ordering::Acquire);
        let mut entries = self.store.scan(&[], &[0xff; 8]);
        let chunks = std::iter::from_fn(move || {
            let mut chunk = SnapshotChunk::default();
            let mut bytes = 0;
            for entry in entries.by_ref() {
                match entry {
                    Ok((key, value)) => {
                        bytes += key.len() + value.len();
                        chunk.entries.push(v1::KeyValue { key, value });
                        if bytes >= SNAPSHOT_CHUNK_BYTES {
                            break;
                        }
                    }
                    Err(e) => {
                        // A short snapshot must not install: end with a chunk that does not
                        // decode.
                        tracing::error!(error = %e, "reading the store for a snapshot failed");
                        return Some(vec![0xff]);
                    }
                }
            }
            (!chunk.entries.is_empty()).then(|| chunk.encode_to_vec())
        });
        (index, Box::new(chunks))
    }

    fn restore(
        &mut self,
        index: Slot,
        chunks: &mut dyn Iterator<Item = Result<Vec<u8>, String>>,
    ) -> Result<(), String> {
        let entries = chunks.flat_map(|chunk| -> Box<dyn Iterator<Item = _>> {
            match chunk.and_then(|c| {
                SnapshotChunk::decode(c.as_slice()).map_err(|e| format!("snapshot chunk: {e}"))
            }) {
                Ok(c) => Box::new(c.entries.into_iter().map(|kv| Ok((kv.key, kv.value)))),
                Err(e) => Box::new(std::iter::once(Err(e))),
            }
        });
        let mut checked = CheckedSnapshot {
            entries,
            index,
            meta: MemStore::new(),
            meta_checked: false,
            last_key: None,
            failed: false,
        };
        self.store.replace(&mut checked)?;
        // Checked while streaming: loads (a failure here would be a bug; the machine stops
        // using the snapshot and says so).
        self.load()
            .map_err(|e| format!("loading an installed snapshot: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

// The server stores what the rpc table admits: its idea of the engine's limits is the engine's.
const _: () = assert!(strata::MAX_KEY_SIZE == strata_rpc::ENGINE_MAX_KEY_BYTES);
const _: () = assert!(strata::MAX_VALUE_SIZE == strata_rpc::ENGINE_MAX_VALUE_BYTES);
