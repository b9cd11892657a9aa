//! The configuration: which replica group owns each shard, and the groups' servers.
//!
//! One type for everyone who holds a configuration: the shard master creates them (and adds
//! its own rules, such as rebalancing and the shard count limits, in `strata-shardmaster`),
//! shard servers replicate the one they serve through their log, and clients route by their
//! cached copy. [`Config::from_proto`] and [`Config::to_proto`] convert to and from the wire's
//! [`v1::Config`].
//!
//! [`Gid`] and [`ShardId`] are type aliases, not newtypes: they name what a number is in
//! signatures, while the wire messages, the replicated commands and the state machines keep
//! using the plain integers they carry (`u64` gids as proto map keys, `u32` shard ids as
//! request fields and array indexes), without a conversion at every boundary.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::v1;

/// A replica group id. [`UNASSIGNED`] (0) is reserved: a shard owned by gid 0 has no owner.
pub type Gid = u64;

/// A shard index, `0..num_shards` (see [`shard_for_key`](crate::shard_for_key)).
pub type ShardId = u32;

/// The gid of a shard that no group owns.
pub const UNASSIGNED: Gid = 0;

/// Configuration `num`: the owner of every shard and the server addresses of every group.
///
/// The master keeps these invariants (and checks them when it decodes its own bytes): every
/// entry of `shards` is [`UNASSIGNED`] or a key of `groups`; no key of `groups` is
/// [`UNASSIGNED`]; no group has an empty server list. A configuration read from the wire is
/// not checked again ([`Config::from_proto`]): the master is trusted.
///
/// [`Config::default`] (number 0, no shards, no groups) stands for "no configuration yet";
/// the master's config 0 is [`Config::initial`] (every shard unassigned).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The configuration number; config 0 is the initial one, each operation that changes the
    /// configuration creates the next number.
    pub num: u64,
    /// `shards[s]` is the gid owning shard `s`, or [`UNASSIGNED`]. Its length is the
    /// cluster's fixed number of shards.
    pub shards: Vec<Gid>,
    /// Every group of this configuration with its servers' addresses. Shared (`Arc`) between
    /// consecutive configurations that have the same groups (a Move changes only `shards`), so
    /// that the master's long history costs one copy of the addresses per Join or Leave, not
    /// per configuration. Reading goes through `Deref`; a change through `Arc::make_mut`.
    pub groups: Arc<BTreeMap<Gid, Vec<String>>>,
}

impl Config {
    /// Config 0 of a cluster of `num_shards` shards: all unassigned, no groups.
    pub fn initial(num_shards: usize) -> Config {
        Config {
            num: 0,
            shards: vec![UNASSIGNED; num_shards],
            groups: Arc::default(),
        }
    }

    /// The number of shards (fixed for the cluster's life; 0 for [`Config::default`]).
    pub fn num_shards(&self) -> usize {
        self.shards.len()
    }

    /// The gid owning `shard`: [`UNASSIGNED`] if no group owns it or if it is out of range.
    pub fn owner(&self, shard: ShardId) -> Gid {
        self.shards
            .get(shard as usize)
            .copied()
            .unwrap_or(UNASSIGNED)
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

    /// From the wire form (no invariant is checked: the master is trusted).
    pub fn from_proto(config: v1::Config) -> Config {
        Config {
            num: config.num,
            shards: config.shards,
            groups: Arc::new(groups_from_proto(config.groups)),
        }
    }

    /// The wire form.
    pub fn to_proto(&self) -> v1::Config {
        v1::Config {
            num: self.num,
            shards: self.shards.clone(),
            groups: groups_to_proto(&self.groups),
        }
    }
}

/// Groups and their servers as the wire map (a `Join`'s `groups`, a config's `groups`).
pub fn groups_to_proto(groups: &BTreeMap<Gid, Vec<String>>) -> BTreeMap<Gid, v1::ServerList> {
    groups
        .iter()
        .map(|(&gid, servers)| {
            let list = v1::ServerList {
                addresses: servers.clone(),
            };
            (gid, list)
        })
        .collect()
}

/// The wire map of groups as gid to servers.
pub fn groups_from_proto(groups: BTreeMap<Gid, v1::ServerList>) -> BTreeMap<Gid, Vec<String>> {
    groups
        .into_iter()
        .map(|(gid, list)| (gid, list.addresses))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Config {
        Config {
            num: 3,
            shards: vec![1, 2, 0, 1, 0],
            groups: Arc::new(BTreeMap::from([
                (1, vec!["a:1".into()]),
                (2, vec!["b:1".into(), "c:1".into()]),
                (3, vec!["d:1".into()]),
            ])),
        }
    }

    #[test]
    fn round_trips_through_the_wire() {
        let config = sample();
        assert_eq!(Config::from_proto(config.to_proto()), config);
        assert_eq!(
            Config::from_proto(Config::default().to_proto()),
            Config::default()
        );
    }

    #[test]
    fn initial_config_has_every_shard_unassigned() {
        let config = Config::initial(10);
        assert_eq!(config.num, 0);
        assert_eq!(config.num_shards(), 10);
        assert!(config.shards.iter().all(|&g| g == UNASSIGNED));
        assert!(config.groups.is_empty());
        assert_eq!(config.owner(9), UNASSIGNED);
    }

    #[test]
    fn owners_counts_and_shards_of() {
        let config = sample();
        assert_eq!(config.owner(0), 1);
        assert_eq!(config.owner(1), 2);
        assert_eq!(config.owner(2), UNASSIGNED);
        assert_eq!(config.owner(5), UNASSIGNED, "out of range");
        assert_eq!(config.owner(ShardId::MAX), UNASSIGNED);
        assert_eq!(
            config.shard_counts(),
            BTreeMap::from([(1, 2), (2, 1), (3, 0)])
        );
        assert_eq!(config.shards_of(1).collect::<Vec<_>>(), vec![0, 3]);
        assert_eq!(config.shards_of(UNASSIGNED).collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(Config::default().num_shards(), 0);
    }
}
