//! The operations a client sends to the shard master, their replies and their errors.

use std::collections::BTreeMap;

use crate::config::{Config, Gid, ShardId};

/// One operation on the shard master, replicated through the log (see [`Op::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// New groups join with their servers' addresses; shards are rebalanced.
    Join(BTreeMap<Gid, Vec<String>>),
    /// Groups leave; their shards are given to the remaining groups (or unassigned if none).
    Leave(Vec<Gid>),
    /// Hand `shard` to group `gid`, without rebalancing. Nothing is pinned: the next Join or
    /// Leave rebalances from the resulting assignment and may move the shard again.
    Move {
        /// The shard to move.
        shard: ShardId,
        /// Its new owner, a group of the latest configuration.
        gid: Gid,
    },
    /// Groups of the latest configuration get new server lists (their membership changed);
    /// the shards stay where they are.
    SetServers(BTreeMap<Gid, Vec<String>>),
    /// The configuration with this number, or the latest one for `None`. As in 6.824's
    /// shardctrler, a number beyond the latest configuration also returns the latest one.
    Query(Option<u64>),
}

impl Op {
    /// A Join built from `(gid, servers)` pairs in any order; a gid listed twice is
    /// [`OpError::DuplicateGid`] (a map would silently keep only one of them).
    pub fn join<I>(groups: I) -> Result<Op, OpError>
    where
        I: IntoIterator<Item = (Gid, Vec<String>)>,
    {
        let mut map = BTreeMap::new();
        for (gid, servers) in groups {
            if map.insert(gid, servers).is_some() {
                return Err(OpError::DuplicateGid(gid));
            }
        }
        Ok(Op::Join(map))
    }

    /// Whether the operation only reads (a Query), so a replica may answer it from its applied
    /// state once it is known to be up to date.
    pub fn is_read_only(&self) -> bool {
        matches!(self, Op::Query(_))
    }
}

/// The reply to a successfully applied [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A Join, Leave or Move created the configuration with this number.
    Created {
        /// The number of the new configuration.
        num: u64,
    },
    /// A Query's answer.
    Config(Config),
}

/// Why an operation was refused. A refused operation creates no configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// Gid 0 means "unassigned" and cannot name a group.
    #[error("gid 0 is reserved for unassigned shards")]
    ReservedGid,
    /// A Join names a group that is already a member.
    #[error("group {0} has already joined")]
    AlreadyJoined(Gid),
    /// A Join or Leave lists the same gid twice.
    #[error("gid {0} is listed twice")]
    DuplicateGid(Gid),
    /// A Join gives a group no server.
    #[error("group {0} has an empty server list")]
    EmptyServerList(Gid),
    /// A Join gives a group an empty server address.
    #[error("group {0} has an empty server address")]
    EmptyServerAddress(Gid),
    /// A Join or Leave names no group at all.
    #[error("the operation names no group")]
    NoGroups,
    /// A Leave or Move names a group that is not a member of the latest configuration.
    #[error("group {0} is not a member")]
    UnknownGroup(Gid),
    /// A Move names a shard outside `0..num_shards`.
    #[error("shard {shard} is out of range (the cluster has {num_shards} shards)")]
    ShardOutOfRange {
        /// The shard asked for.
        shard: ShardId,
        /// The cluster's shard count.
        num_shards: usize,
    },
    /// The client already sent a request with a higher sequence number; only the reply to its
    /// latest request is kept, so this one can no longer be answered.
    #[error("stale request: client {client_id:032x} seq {seq} is below its latest seq {latest}")]
    StaleRequest {
        /// The client.
        client_id: u128,
        /// The sequence number of the stale request.
        seq: u64,
        /// The latest sequence number applied for this client.
        latest: u64,
    },
    /// (A reply only, never stored.) The configuration a Query answered could not be read
    /// back from the master's store.
    #[error("configuration {0} could not be read from the master's store")]
    ConfigUnavailable(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_rejects_a_gid_listed_twice() {
        let servers = vec!["a:1".to_string()];
        assert_eq!(
            Op::join([
                (1, servers.clone()),
                (2, servers.clone()),
                (1, servers.clone())
            ]),
            Err(OpError::DuplicateGid(1))
        );
        let op = Op::join([(2, servers.clone()), (1, servers.clone())]).unwrap();
        assert_eq!(
            op,
            Op::Join(BTreeMap::from([(1, servers.clone()), (2, servers)]))
        );
    }

    #[test]
    fn only_query_is_read_only() {
        assert!(Op::Query(None).is_read_only());
        assert!(!Op::Leave(vec![1]).is_read_only());
    }

    #[test]
    fn errors_read_well() {
        let e = OpError::ShardOutOfRange {
            shard: 70,
            num_shards: 64,
        };
        assert_eq!(
            e.to_string(),
            "shard 70 is out of range (the cluster has 64 shards)"
        );
    }
}
