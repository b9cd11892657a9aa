//! A numbered configuration: which replica group owns each shard, and the groups' servers.

use std::collections::BTreeMap;
use std::sync::Arc;

/// A replica group id. [`UNASSIGNED`] (0) is reserved: a shard owned by gid 0 has no owner.
pub type Gid = u64;

/// A shard index, `0..num_shards`.
pub type ShardId = u32;

/// The gid of a shard that no group owns.
pub const UNASSIGNED: Gid = 0;

/// The number of shards of a cluster created without saying otherwise.
pub const DEFAULT_NUM_SHARDS: usize = 64;

/// The largest number of shards a cluster may have (shard ids must fit the wire's `u32` with room
/// to spare, and a config stays a few hundred KiB at most).
pub const MAX_NUM_SHARDS: usize = 65_536;

/// The shard count given at creation is outside `1..=MAX_NUM_SHARDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard count {0}: must be between 1 and {MAX_NUM_SHARDS}")]
pub struct InvalidShardCount(pub usize);

/// Checks a shard count given at cluster creation.
pub fn validate_num_shards(num_shards: usize) -> Result<(), InvalidShardCount> {
    if (1..=MAX_NUM_SHARDS).contains(&num_shards) {
        Ok(())
    } else {
        Err(InvalidShardCount(num_shards))
    }
}

/// Configuration number `num`: the owner of every shard and the server addresses of every group.
///
/// Invariants kept by [`MasterState`](crate::MasterState): `shards.len()` is the cluster's fixed
/// shard count; every entry of `shards` is [`UNASSIGNED`] or a key of `groups`; no key of
/// `groups` is [`UNASSIGNED`] and no group has an empty server list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The configuration number; config 0 is the initial one, each operation that changes the
    /// configuration creates the next number.
    pub num: u64,
    /// `shards[s]` is the gid owning shard `s`, or [`UNASSIGNED`].
    pub shards: Vec<Gid>,
    /// Every group of this configuration with its servers' addresses. Shared between
    /// consecutive configurations that have the same groups (a Move changes only `shards`), so
    /// a long history costs one copy of the addresses per Join or Leave, not per configuration.
    pub groups: Arc<BTreeMap<Gid, Vec<String>>>,
}

impl Config {
    /// Config 0: `num_shards` shards, all unassigned, no groups.
    pub fn initial(num_shards: usize) -> Result<Config, InvalidShardCount> {
        validate_num_shards(num_shards)?;
        Ok(Config {
            num: 0,
            shards: vec![UNASSIGNED; num_shards],
            groups: Arc::new(BTreeMap::new()),
        })
    }

    /// The number of shards (fixed for the cluster's life).
    pub fn num_shards(&self) -> usize {
        self.shards.len()
    }

    /// The owner of `shard` ([`UNASSIGNED`] if none), or `None` if `shard` is out of range.
    pub fn owner(&self, shard: ShardId) -> Option<Gid> {
        self.shards.get(shard as usize).copied()
    }

    /// The shards owned by `gid`, ascending.
    pub fn shards_of(&self, gid: Gid) -> impl Iterator<Item = ShardId> + '_ {
        self.shards
            .iter()
            .enumerate()
            .filter(move |&(_, &owner)| owner == gid)
            .map(|(shard, _)| shard as ShardId)
    }

    /// How many shards each group owns; every group is present, with 0 if it owns none.
    pub fn shard_counts(&self) -> BTreeMap<Gid, usize> {
        let mut counts: BTreeMap<Gid, usize> = self.groups.keys().map(|&g| (g, 0)).collect();
        for gid in &self.shards {
            if let Some(count) = counts.get_mut(gid) {
                *count += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_config_has_every_shard_unassigned() {
        let config = Config::initial(10).unwrap();
        assert_eq!(config.num, 0);
        assert_eq!(config.num_shards(), 10);
        assert!(config.shards.iter().all(|&g| g == UNASSIGNED));
        assert!(config.groups.is_empty());
        assert_eq!(config.owner(9), Some(UNASSIGNED));
        assert_eq!(config.owner(10), None);
    }

    #[test]
    fn shard_count_is_validated() {
        assert_eq!(Config::initial(0), Err(InvalidShardCount(0)));
        assert_eq!(
            Config::initial(MAX_NUM_SHARDS + 1),
            Err(InvalidShardCount(MAX_NUM_SHARDS + 1))
        );
        assert!(Config::initial(1).is_ok());
        assert!(Config::initial(4096).is_ok());
        assert!(Config::initial(MAX_NUM_SHARDS).is_ok());
    }

    #[test]
    fn counts_and_shards_of() {
        let mut config = Config::initial(5).unwrap();
        Arc::make_mut(&mut config.groups).insert(1, vec!["a".into()]);
        Arc::make_mut(&mut config.groups).insert(2, vec!["b".into()]);
        config.shards = vec![1, 0, 1, 1, 0];
        assert_eq!(config.shard_counts(), BTreeMap::from([(1, 3), (2, 0)]));
        assert_eq!(config.shards_of(1).collect::<Vec<_>>(), vec![0, 2, 3]);
        assert_eq!(config.shards_of(UNASSIGNED).collect::<Vec<_>>(), vec![1, 4]);
    }
}
