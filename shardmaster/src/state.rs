//! The shard master's replicated state machine: the configuration history and the
//! per-client table of replies that makes retried requests exactly-once.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::{Config, InvalidShardCount, DEFAULT_NUM_SHARDS, UNASSIGNED};
use crate::op::{Op, OpError, Reply};
use crate::rebalance::rebalance;

/// What a client's latest request produced, as kept in the session table. A Query's answer is
/// kept as the configuration number it returned (configurations never change once created), so
/// a session costs a few bytes, not a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The request created the configuration with this number.
    Created(u64),
    /// The request was a Query answered with the configuration with this number.
    Queried(u64),
    /// The request was refused.
    Refused(OpError),
}

/// A client's latest request and what it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The sequence number of the client's latest applied request.
    pub seq: u64,
    /// Its outcome, returned again if the request is retried.
    pub outcome: Outcome,
}

/// Configurations kept in memory once an archive holds the history: the latest this many
/// (and up to twice as many between two page-outs).
pub const CONFIGS_IN_MEMORY: usize = 16;

/// Where configurations that left memory are read back from (the master's store). They are
/// immutable once created, so any copy is the copy.
pub trait ConfigArchive: Send + Sync {
    /// Configuration `num`, `Ok(None)` if the archive does not hold it.
    fn load(&self, num: u64) -> Result<Option<Config>, String>;
}

/// The shard master's state: an append-only list of configurations and, per client, the
/// outcome of its latest request.
///
/// Memory: without an archive every configuration stays in memory. With one
/// ([`MasterState::page_out_to`]), only the latest [`CONFIGS_IN_MEMORY`] or so do; older ones
/// are read back from the archive when asked for, so a long history costs disk, not RAM.
///
/// [`MasterState::apply`] is deterministic: replicas that apply the same `(client, seq, op)`
/// triples in the same order hold identical states.
///
/// Exactly-once: a client numbers its requests with increasing `seq` and has at most one in
/// flight to the master; a retry of its latest request returns the stored outcome without
/// applying the operation again. Sessions are never dropped (clients of the master are
/// administrators and servers, few and long-lived).
#[derive(Clone)]
pub struct MasterState {
    /// The configurations in memory, consecutive, the latest last: `configs[i]` is config
    /// `first + i`.
    configs: Vec<Config>,
    first: u64,
    /// Holds every configuration below `first` (and may hold later ones).
    archive: Option<Arc<dyn ConfigArchive>>,
    sessions: BTreeMap<u128, Session>,
}

impl std::fmt::Debug for MasterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterState")
            .field("latest", self.latest())
            .field("first_in_memory", &self.first)
            .field("archived", &self.archive.is_some())
            .field("sessions", &self.sessions)
            .finish()
    }
}

/// Two states are equal when they hold the same configurations and sessions, wherever the
/// configurations are kept.
impl PartialEq for MasterState {
    fn eq(&self, other: &Self) -> bool {
        self.latest().num == other.latest().num
            && self.sessions == other.sessions
            && (0..=self.latest().num).all(|n| self.config(n) == other.config(n))
    }
}

impl Eq for MasterState {}

impl Default for MasterState {
    /// A state with [`DEFAULT_NUM_SHARDS`] shards.
    fn default() -> Self {
        MasterState {
            configs: vec![Config {
                num: 0,
                shards: vec![UNASSIGNED; DEFAULT_NUM_SHARDS],
                groups: Arc::new(BTreeMap::new()),
            }],
            first: 0,
            archive: None,
            sessions: BTreeMap::new(),
        }
    }
}

impl MasterState {
    /// A fresh state holding config 0 with `num_shards` unassigned shards (`1..=65536`).
    pub fn new(num_shards: usize) -> Result<MasterState, InvalidShardCount> {
        Ok(MasterState {
            configs: vec![crate::config::initial(num_shards)?],
            first: 0,
            archive: None,
            sessions: BTreeMap::new(),
        })
    }

    /// Reassembles a state from its parts (used by snapshot restore, which validates them):
    /// `configs` are the latest configurations, from number `first` on.
    pub(crate) fn from_parts(
        configs: Vec<Config>,
        first: u64,
        sessions: BTreeMap<u128, Session>,
    ) -> Self {
        debug_assert!(!configs.is_empty());
        MasterState {
            configs,
            first,
            archive: None,
            sessions,
        }
    }

    /// From now on, configurations older than the latest [`CONFIGS_IN_MEMORY`] leave memory;
    /// `archive` must hold every configuration this state has (and will hold each new one
    /// before the next call to [`MasterState::page_out`]). Pages out at once.
    pub fn page_out_to(&mut self, archive: Arc<dyn ConfigArchive>) {
        self.archive = Some(archive);
        self.page_out();
    }

    /// Drops configurations beyond the latest [`CONFIGS_IN_MEMORY`] from memory once twice as
    /// many are held (they are in the archive); does nothing without an archive.
    pub fn page_out(&mut self) {
        if self.archive.is_some() && self.configs.len() >= 2 * CONFIGS_IN_MEMORY {
            let drop = self.configs.len() - CONFIGS_IN_MEMORY;
            self.configs.drain(..drop);
            self.first += drop as u64;
        }
    }

    /// The cluster's shard count.
    pub fn num_shards(&self) -> usize {
        self.latest().num_shards()
    }

    /// The latest configuration.
    pub fn latest(&self) -> &Config {
        // There is always config 0: `configs` is created non-empty and only grows.
        &self.configs[self.configs.len() - 1]
    }

    /// Configuration `num`, if it exists: from memory, or read back from the archive (`None`
    /// also if that read fails; the failure is logged).
    pub fn config(&self, num: u64) -> Option<Cow<'_, Config>> {
        if num > self.latest().num {
            return None;
        }
        if num >= self.first {
            let i = usize::try_from(num - self.first).ok()?;
            return self.configs.get(i).map(Cow::Borrowed);
        }
        match self.archive.as_ref()?.load(num) {
            Ok(Some(c)) if c.num == num => Some(Cow::Owned(c)),
            Ok(_) => {
                tracing::error!(num, "the master's store lacks a configuration it paged out");
                None
            }
            Err(e) => {
                tracing::error!(num, error = %e, "reading a paged-out configuration failed");
                None
            }
        }
    }

    /// Query semantics: configuration `num`, or the latest one for `None` or for a number
    /// beyond the latest (as in 6.824's shardctrler). `None` only if a paged-out
    /// configuration could not be read back.
    pub fn query(&self, num: Option<u64>) -> Option<Cow<'_, Config>> {
        match num {
            Some(n) if n <= self.latest().num => self.config(n),
            _ => Some(Cow::Borrowed(self.latest())),
        }
    }

    /// The configurations held in memory, oldest first: every one, config 0 first, unless
    /// the state pages out to an archive.
    pub fn configs(&self) -> &[Config] {
        &self.configs
    }

    /// The number of configurations (the latest one's number plus one).
    pub fn num_configs(&self) -> u64 {
        self.latest().num + 1
    }

    /// The session table, by client id.
    pub fn sessions(&self) -> &BTreeMap<u128, Session> {
        &self.sessions
    }

    /// Applies request `seq` of client `client_id`.
    ///
    /// A `seq` equal to the client's latest returns that request's stored outcome (success or
    /// error) without applying `op` again; a lower `seq` is [`OpError::StaleRequest`] and
    /// changes nothing. Otherwise `op` is applied, its outcome stored as the client's latest,
    /// and: Join/Leave append a rebalanced configuration, Move appends a configuration with
    /// one shard reassigned, Query reads. An invalid operation is refused with an [`OpError`]
    /// and creates no configuration.
    pub fn apply(&mut self, client_id: u128, seq: u64, op: Op) -> Result<Reply, OpError> {
        if let Some(session) = self.sessions.get(&client_id) {
            if seq < session.seq {
                return Err(OpError::StaleRequest {
                    client_id,
                    seq,
                    latest: session.seq,
                });
            }
            if seq == session.seq {
                return self.reply(&session.outcome);
            }
        }
        let outcome = match self.execute(op) {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Refused(e),
        };
        let reply = self.reply(&outcome);
        self.sessions.insert(client_id, Session { seq, outcome });
        reply
    }

    fn reply(&self, outcome: &Outcome) -> Result<Reply, OpError> {
        match outcome {
            Outcome::Created(num) => Ok(Reply::Created { num: *num }),
            Outcome::Queried(num) => match self.config(*num) {
                Some(c) => Ok(Reply::Config(c.into_owned())),
                None => Err(OpError::ConfigUnavailable(*num)),
            },
            Outcome::Refused(e) => Err(e.clone()),
        }
    }

    fn execute(&mut self, op: Op) -> Result<Outcome, OpError> {
        match op {
            Op::Join(groups) => self.join(groups),
            Op::Leave(gids) => self.leave(&gids),
            Op::Move { shard, gid } => self.move_shard(shard, gid),
            Op::SetServers(groups) => self.set_servers(groups),
            Op::Query(num) => Ok(Outcome::Queried(match num {
                Some(n) if n <= self.latest().num => n,
                _ => self.latest().num,
            })),
        }
    }

    fn join(&mut self, joining: BTreeMap<u64, Vec<String>>) -> Result<Outcome, OpError> {
        if joining.is_empty() {
            return Err(OpError::NoGroups);
        }
        let latest = self.latest();
        for (&gid, servers) in &joining {
            if gid == UNASSIGNED {
                return Err(OpError::ReservedGid);
            }
            if latest.groups.contains_key(&gid) {
                return Err(OpError::AlreadyJoined(gid));
            }
            if servers.is_empty() {
                return Err(OpError::EmptyServerList(gid));
            }
            if servers.iter().any(String::is_empty) {
                return Err(OpError::EmptyServerAddress(gid));
            }
        }
        let mut groups = (*latest.groups).clone();
        groups.extend(joining);
        let shards = rebalance(&latest.shards, groups.keys().copied());
        Ok(self.push(shards, Arc::new(groups)))
    }

    fn leave(&mut self, gids: &[u64]) -> Result<Outcome, OpError> {
        if gids.is_empty() {
            return Err(OpError::NoGroups);
        }
        let latest = self.latest();
        let mut seen = BTreeSet::new();
        for &gid in gids {
            if gid == UNASSIGNED {
                return Err(OpError::ReservedGid);
            }
            if !seen.insert(gid) {
                return Err(OpError::DuplicateGid(gid));
            }
            if !latest.groups.contains_key(&gid) {
                return Err(OpError::UnknownGroup(gid));
            }
        }
        let mut groups = (*latest.groups).clone();
        groups.retain(|gid, _| !seen.contains(gid));
        let shards = rebalance(&latest.shards, groups.keys().copied());
        Ok(self.push(shards, Arc::new(groups)))
    }

    fn set_servers(&mut self, lists: BTreeMap<u64, Vec<String>>) -> Result<Outcome, OpError> {
        if lists.is_empty() {
            return Err(OpError::NoGroups);
        }
        let latest = self.latest();
        for (&gid, servers) in &lists {
            if !latest.groups.contains_key(&gid) {
                return Err(OpError::UnknownGroup(gid));
            }
            if servers.is_empty() {
                return Err(OpError::EmptyServerList(gid));
            }
            if servers.iter().any(String::is_empty) {
                return Err(OpError::EmptyServerAddress(gid));
            }
        }
        let shards = latest.shards.clone();
        let mut groups = (*latest.groups).clone();
        groups.extend(lists);
        Ok(self.push(shards, Arc::new(groups)))
    }

    fn move_shard(&mut self, shard: u32, gid: u64) -> Result<Outcome, OpError> {
        let latest = self.latest();
        let num_shards = latest.num_shards();
        if shard as usize >= num_shards {
            return Err(OpError::ShardOutOfRange { shard, num_shards });
        }
        if gid == UNASSIGNED {
            return Err(OpError::ReservedGid);
        }
        if !latest.groups.contains_key(&gid) {
            return Err(OpError::UnknownGroup(gid));
        }
        let mut shards = latest.shards.clone();
        shards[shard as usize] = gid;
        // The groups are unchanged: shared, not copied.
        let groups = Arc::clone(&latest.groups);
        Ok(self.push(shards, groups))
    }

    fn push(&mut self, shards: Vec<u64>, groups: Arc<BTreeMap<u64, Vec<String>>>) -> Outcome {
        let num = self.latest().num + 1;
        self.configs.push(Config {
            num,
            shards,
            groups,
        });
        Outcome::Created(num)
    }
}
