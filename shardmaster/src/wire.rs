//! Conversions between this crate's types and the `strata.v1` wire messages.

use std::collections::BTreeMap;

use strata_rpc::v1;

use crate::config::{Config, Gid};

/// A configuration as its wire message.
pub fn config_to_proto(config: &Config) -> v1::Config {
    v1::Config {
        num: config.num,
        shards: config.shards.clone(),
        groups: groups_to_proto(&config.groups),
    }
}

/// A wire configuration as a [`Config`] (no invariant is checked: the master is trusted).
pub fn config_from_proto(config: v1::Config) -> Config {
    Config {
        num: config.num,
        shards: config.shards,
        groups: groups_from_proto(config.groups).into(),
    }
}

/// Groups and their servers as the wire map.
pub fn groups_to_proto(groups: &BTreeMap<Gid, Vec<String>>) -> BTreeMap<u64, v1::ServerList> {
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
pub fn groups_from_proto(groups: BTreeMap<u64, v1::ServerList>) -> BTreeMap<Gid, Vec<String>> {
    groups
        .into_iter()
        .map(|(gid, list)| (gid, list.addresses))
        .collect()
}

/// A client id from its 16 wire bytes (big-endian), or `None` for any other length.
pub fn client_id_from_bytes(bytes: &[u8]) -> Option<u128> {
    let array: [u8; 16] = bytes.try_into().ok()?;
    Some(u128::from_be_bytes(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips() {
        let config = Config {
            num: 3,
            shards: vec![1, 2, 0, 1],
            groups: BTreeMap::from([
                (1, vec!["a:1".into()]),
                (2, vec!["b:1".into(), "c:1".into()]),
            ])
            .into(),
        };
        assert_eq!(config_from_proto(config_to_proto(&config)), config);
    }

    #[test]
    fn client_ids_are_sixteen_bytes() {
        assert_eq!(client_id_from_bytes(&[0; 15]), None);
        assert_eq!(client_id_from_bytes(&[0; 17]), None);
        let mut b = [0u8; 16];
        b[15] = 7;
        assert_eq!(client_id_from_bytes(&b), Some(7));
    }
}
