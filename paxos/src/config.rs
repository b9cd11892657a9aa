//! A replica's configuration: membership, timers and batching limits, and the checks that
//! decide whether a configuration can run a group.

use crate::types::ReplicaId;

/// How a replica is set up. Times are in ticks of the driver's clock.
#[derive(Clone, Debug)]
pub struct Config {
    /// This replica.
    pub id: ReplicaId,
    /// The group's first voters (this one included, unless it is in `learners`). A chosen
    /// membership change supersedes this list; see [`Membership`](crate::Membership).
    pub members: Vec<ReplicaId>,
    /// The group's first learners: replicas that receive the log but do not vote (a replica
    /// joining a running group lists itself here, and the voters it knows in `members`).
    pub learners: Vec<ReplicaId>,
    /// A learner is promoted to voter only while it is at most this many slots behind the
    /// leader's commit index.
    pub max_promotion_lag: u64,
    /// Where the first members are reached (opaque to the protocol; kept in the first
    /// [`Membership`](crate::Membership), which every change carries forward).
    pub addresses: std::collections::BTreeMap<ReplicaId, String>,
    /// A follower that hears no leader for a random number of ticks in this range starts an
    /// election (and a candidate that does not win in time starts another): randomness makes
    /// duels between candidates die out.
    pub election_timeout: (u32, u32),
    /// A leader sends heartbeats this often.
    pub heartbeat_interval: u32,
    /// At most this many commands in one slot.
    pub max_batch_commands: usize,
    /// At most this many bytes of commands in one slot (a single larger command still goes
    /// alone).
    pub max_batch_bytes: usize,
    /// At most this many slots proposed but not yet chosen (the pipeline window).
    pub max_inflight_slots: u64,
    /// At most this many chosen values in one catch-up message (and at most about
    /// `4 * max_batch_bytes` bytes of them, unless a single value is larger).
    pub max_learn_entries: usize,
    /// A candidate's `Prepare` names the values of at least this many bytes it holds (at most
    /// [`MAX_HELD_IN_PREPARE`]), so that acceptors leave them out of their promises: smaller
    /// ones cost less to send again than to name.
    ///
    /// [`MAX_HELD_IN_PREPARE`]: crate::replica::MAX_HELD_IN_PREPARE
    pub held_value_bytes: usize,
    /// Seed for the election-timeout randomness (deterministic runs).
    pub seed: u64,
}

/// A [`Config`] that cannot run a group.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `members` is empty, lists a replica twice (or also in `learners`), or neither list
    /// holds `id`.
    #[error("bad membership: {0}")]
    Members(String),
    /// The election range is empty or too narrow to break duels, or not above the heartbeat
    /// interval.
    #[error("bad election timeout {lo}..{hi}: {why}")]
    ElectionTimeout {
        /// Lower end (inclusive).
        lo: u32,
        /// Upper end (exclusive).
        hi: u32,
        /// What is wrong.
        why: &'static str,
    },
    /// A limit that must be at least 1 is 0.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

/// Narrowest election range accepted, in ticks: with fewer distinct timeouts to draw from,
/// two candidates keep timing out together and a duel need never end.
pub const MIN_ELECTION_RANGE: u32 = 2;

impl Config {
    /// Checks that the configuration can run a group: `id` is one of `members` (each listed
    /// once), the election range `lo..hi` has `lo` above the heartbeat interval and is at
    /// least [`MIN_ELECTION_RANGE`] ticks wide (a range as wide as `lo` itself, as Raft
    /// suggests, is better), and the batching limits are positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut members = self.members.clone();
        members.extend(&self.learners);
        members.sort_unstable();
        members.dedup();
        if members.len() != self.members.len() + self.learners.len() {
            return Err(ConfigError::Members("a replica is listed twice".into()));
        }
        if self.members.is_empty() {
            return Err(ConfigError::Members("no voter".into()));
        }
        if !members.contains(&self.id) {
            return Err(ConfigError::Members(format!(
                "replica {} is not a member",
                self.id
            )));
        }
        if self.heartbeat_interval == 0 {
            return Err(ConfigError::Zero("heartbeat_interval"));
        }
        let (lo, hi) = self.election_timeout;
        let bad = |why| Err(ConfigError::ElectionTimeout { lo, hi, why });
        if lo <= self.heartbeat_interval {
            return bad("the lower end must exceed the heartbeat interval");
        }
        if hi < lo.saturating_add(MIN_ELECTION_RANGE) {
            return bad("the range must be at least 2 ticks wide, or duels never end");
        }
        if self.max_batch_commands == 0 {
            return Err(ConfigError::Zero("max_batch_commands"));
        }
        if self.max_inflight_slots == 0 {
            return Err(ConfigError::Zero("max_inflight_slots"));
        }
        if self.max_learn_entries == 0 {
            return Err(ConfigError::Zero("max_learn_entries"));
        }
        Ok(())
    }

    /// Defaults for a group: election after 10..20 ticks of silence, heartbeats every 2 ticks,
    /// batches of up to 1000 commands or 1 MiB, a window of 64 slots.
    pub fn new(id: ReplicaId, members: Vec<ReplicaId>) -> Config {
        Config {
            id,
            members,
            learners: Vec::new(),
            max_promotion_lag: 1000,
            addresses: std::collections::BTreeMap::new(),
            election_timeout: (10, 20),
            heartbeat_interval: 2,
            max_batch_commands: 1000,
            max_batch_bytes: 1 << 20,
            max_inflight_slots: 64,
            max_learn_entries: 256,
            held_value_bytes: 4 << 10,
            seed: 0,
        }
    }

    /// Bytes of values in one message that carries several (a promise part, an Accept, a
    /// Learn): about four slots' worth, or one larger value alone.
    pub(crate) fn message_bytes(&self) -> usize {
        self.max_batch_bytes.saturating_mul(4)
    }
}
