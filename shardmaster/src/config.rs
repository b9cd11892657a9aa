//! A numbered configuration: which replica group owns each shard, and the groups' servers.
//!
//! The type is `strata-rpc`'s [`Config`] (shared with the shard servers and the clients);
//! what only the master decides lives here: how many shards a cluster may have, and config 0
//! of a new cluster.

pub use strata_rpc::config::{Config, Gid, ShardId, UNASSIGNED};

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

/// Config 0 of a new cluster of `num_shards` shards (all unassigned, no groups), with the
/// shard count checked.
///
/// The invariants [`MasterState`](crate::MasterState) keeps on every config it creates:
/// `shards.len()` is the cluster's fixed shard count; every entry of `shards` is
/// [`UNASSIGNED`] or a key of `groups`; no key of `groups` is [`UNASSIGNED`] and no group has
/// an empty server list.
pub fn initial(num_shards: usize) -> Result<Config, InvalidShardCount> {
    validate_num_shards(num_shards)?;
    Ok(Config::initial(num_shards))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_config_has_every_shard_unassigned() {
        let config = initial(10).unwrap();
        assert_eq!(config.num, 0);
        assert_eq!(config.num_shards(), 10);
        assert!(config.shards.iter().all(|&g| g == UNASSIGNED));
        assert!(config.groups.is_empty());
        assert_eq!(config.owner(9), UNASSIGNED);
        assert_eq!(config.owner(10), UNASSIGNED);
    }

    #[test]
    fn shard_count_is_validated() {
        assert_eq!(initial(0), Err(InvalidShardCount(0)));
        assert_eq!(
            initial(MAX_NUM_SHARDS + 1),
            Err(InvalidShardCount(MAX_NUM_SHARDS + 1))
        );
        assert!(initial(1).is_ok());
        assert!(initial(4096).is_ok());
        assert!(initial(MAX_NUM_SHARDS).is_ok());
    }
}
