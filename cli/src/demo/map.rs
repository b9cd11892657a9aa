//! The shard map as a table: runs of consecutive shards with the same owner collapse into one
//! row (`0-31  100  127.0.0.1:4001,...`).

use strata_client::{Config, Gid};

use crate::output::Table;

/// Runs of consecutive shards with one owner: (first, last, gid), in shard order.
pub fn shard_runs(shards: &[Gid]) -> Vec<(usize, usize, Gid)> {
    let mut runs: Vec<(usize, usize, Gid)> = Vec::new();
    for (shard, &gid) in shards.iter().enumerate() {
        match runs.last_mut() {
            Some((_, last, owner)) if *owner == gid && *last + 1 == shard => *last = shard,
            _ => runs.push((shard, shard, gid)),
        }
    }
    runs
}

/// `config`'s shard map: SHARDS, GROUP, REPLICAS.
pub fn shard_table(config: &Config) -> Table {
    let mut table = Table::new(["SHARDS", "GROUP", "REPLICAS"]);
    for (first, last, gid) in shard_runs(&config.shards) {
        let shards = if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        let (group, replicas) = match config.groups.get(&gid) {
            Some(addresses) => (gid.to_string(), addresses.join(",")),
            None => ("-".to_string(), "(unassigned)".to_string()),
        };
        table.row([shards, group, replicas]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_shards_of_one_owner_collapse() {
        assert_eq!(
            shard_runs(&[100, 100, 101, 101, 100, 102]),
            vec![(0, 1, 100), (2, 3, 101), (4, 4, 100), (5, 5, 102)]
        );
        assert!(shard_runs(&[]).is_empty());
    }

    #[test]
    fn the_table_names_ranges_groups_and_replicas() {
        let mut config = Config::initial(4);
        config.shards = vec![100, 100, 101, 101];
        std::sync::Arc::make_mut(&mut config.groups).insert(100, vec!["a:1".into(), "b:2".into()]);
        std::sync::Arc::make_mut(&mut config.groups).insert(101, vec!["c:3".into()]);
        assert_eq!(
            shard_table(&config).render(),
            "SHARDS  GROUP  REPLICAS\n0-1     100    a:1,b:2\n2-3     101    c:3\n"
        );
    }
}
