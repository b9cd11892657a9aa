//! The rebalancer: a pure function from (current assignment, live groups) to a new assignment.
//!
//! Policy, in order:
//!
//! 1. **Balance.** With `G` live groups and `N` shards, every group gets a target of `⌊N/G⌋`
//!    or `⌈N/G⌉` shards; exactly `N mod G` groups get the larger one. When `G > N` that means
//!    `N` groups own one shard each and the rest none.
//! 2. **Fewest moves.** The larger targets go to the groups that currently own the most
//!    shards (ties: lower gid first). A group keeps its current shards up to its target (its
//!    lowest-numbered ones); the shards it holds above its target (surplus) and the orphaned
//!    shards (unassigned, or owned by a group that is not live) are the only ones that move.
//!    That count is the minimum possible: every orphan must move, and giving the `N mod G`
//!    larger targets to the largest owners minimises the total surplus.
//! 3. **Determinism.** The moving shards, ascending, fill the groups below target in ascending
//!    gid order. Only sorted sets and vectors are iterated, so every replica computes the same
//!    assignment from the same inputs, whatever order the live groups were given in.
//!
//! A [`Move`](crate::Op::Move) is not remembered here: the next rebalance sees only the current
//! assignment, so it may move a hand-placed shard away again (or leave it, if that is cheaper).

use std::collections::{BTreeMap, BTreeSet};
use std::iter;

use crate::config::{Gid, UNASSIGNED};

/// The target shard count of each live group (see the module docs for the rule).
///
/// `shards` is the current assignment; `live` the groups of the new configuration
/// ([`UNASSIGNED`] is ignored). Empty when there is no live group.
pub fn targets(shards: &[Gid], live: &BTreeSet<Gid>) -> BTreeMap<Gid, usize> {
    let live_count = live.iter().filter(|&&g| g != UNASSIGNED).count();
    if live_count == 0 {
        return BTreeMap::new();
    }
    let mut owned: BTreeMap<Gid, usize> = live
        .iter()
        .filter(|&&g| g != UNASSIGNED)
        .map(|&g| (g, 0))
        .collect();
    for gid in shards {
        if let Some(count) = owned.get_mut(gid) {
            *count += 1;
        }
    }
    let base = shards.len() / live_count;
    let larger = shards.len() % live_count;
    let mut by_size: Vec<(Gid, usize)> = owned.into_iter().collect();
    // Most shards first, then lowest gid: the first `larger` groups get `base + 1`.
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    by_size
        .into_iter()
        .enumerate()
        .map(|(rank, (gid, _))| (gid, base + usize::from(rank < larger)))
        .collect()
}

/// The balanced assignment reached from `shards` with the fewest moves (see the module docs).
///
/// `live` are the groups of the new configuration, in any order, duplicates and
/// [`UNASSIGNED`] ignored. With no live group every shard becomes [`UNASSIGNED`].
pub fn rebalance(shards: &[Gid], live: impl IntoIterator<Item = Gid>) -> Vec<Gid> {
    let live: BTreeSet<Gid> = live.into_iter().filter(|&g| g != UNASSIGNED).collect();
    if live.is_empty() {
        return vec![UNASSIGNED; shards.len()];
    }
    let targets = targets(shards, &live);

    // Keep each group's lowest-numbered shards up to its target; everything else moves.
    let mut kept: BTreeMap<Gid, usize> = BTreeMap::new();
    let mut moving = Vec::new();
    for (shard, gid) in shards.iter().enumerate() {
        if let Some(&target) = targets.get(gid) {
            let count = kept.entry(*gid).or_default();
            if *count < target {
                *count += 1;
                continue;
            }
        }
        moving.push(shard);
    }

    // One slot per missing shard, groups in ascending gid order. The targets sum to the
    // shard count, so there are exactly as many slots as moving shards.
    let slots = targets.iter().flat_map(|(&gid, &target)| {
        let have = kept.get(&gid).copied().unwrap_or(0);
        iter::repeat_n(gid, target - have)
    });
    let mut result = shards.to_vec();
    for (shard, gid) in moving.into_iter().zip(slots) {
        result[shard] = gid;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(shards: &[Gid]) -> BTreeMap<Gid, usize> {
        let mut counts = BTreeMap::new();
        for &g in shards {
            *counts.entry(g).or_default() += 1;
        }
        counts
    }

    fn moved(a: &[Gid], b: &[Gid]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    #[test]
    fn first_group_takes_everything() {
        assert_eq!(rebalance(&[0; 5], [7]), vec![7; 5]);
    }

    #[test]
    fn no_groups_unassigns_everything() {
        assert_eq!(rebalance(&[1, 2, 1, 2], []), vec![0; 4]);
        assert_eq!(rebalance(&[1, 2, 1, 2], [0]), vec![0; 4]);
    }

    #[test]
    fn second_group_takes_the_highest_shards_of_the_first() {
        // Group 1 keeps its lowest-numbered shards; the surplus goes to group 2.
        assert_eq!(
            rebalance(&[1; 10], [1, 2]),
            vec![1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
        );
    }

    #[test]
    fn larger_targets_go_to_the_largest_owners() {
        // 10 shards, 3 groups: targets 4,3,3. Group 2 owns the most, so it keeps 4.
        let shards = [2, 2, 2, 2, 2, 2, 1, 1, 1, 1];
        let t = targets(&shards, &BTreeSet::from([1, 2, 3]));
        assert_eq!(t, BTreeMap::from([(1, 3), (2, 4), (3, 3)]));
        let next = rebalance(&shards, [3, 2, 1]);
        assert_eq!(next, vec![2, 2, 2, 2, 3, 3, 1, 1, 1, 3]);
        assert_eq!(moved(&shards, &next), 3);
    }

    #[test]
    fn ties_for_larger_targets_go_to_the_lower_gid() {
        let t = targets(&[0; 5], &BTreeSet::from([9, 4, 6]));
        assert_eq!(t, BTreeMap::from([(4, 2), (6, 2), (9, 1)]));
    }

    #[test]
    fn departed_groups_shards_are_redistributed_in_gid_order() {
        let shards = [1, 2, 3, 1, 2, 3];
        let next = rebalance(&shards, [1, 3]);
        assert_eq!(next, vec![1, 1, 3, 1, 3, 3]);
        assert_eq!(moved(&shards, &next), 2);
    }

    #[test]
    fn more_groups_than_shards() {
        let shards = [1, 1, 2];
        let next = rebalance(&shards, 1..=5);
        // Targets: each of the three largest owners (1, 2, then 3 by gid) gets one shard.
        assert_eq!(next, vec![1, 3, 2]);
        let c = counts(&next);
        assert_eq!(c.len(), 3);
        assert!(c.values().all(|&n| n == 1));
    }

    #[test]
    fn one_shard_many_groups() {
        assert_eq!(rebalance(&[0], [5, 3, 8]), vec![3]);
        assert_eq!(rebalance(&[8], [5, 3, 8]), vec![8]);
    }

    #[test]
    fn balanced_input_is_left_alone() {
        let shards = [1, 2, 3, 1, 2, 3, 1];
        assert_eq!(rebalance(&shards, [1, 2, 3]), shards.to_vec());
    }

    #[test]
    fn input_order_does_not_matter() {
        let shards: Vec<Gid> = (0..64).map(|s| [0, 5, 9, 11][s % 4]).collect();
        let a = rebalance(&shards, [11, 5, 9, 30, 2]);
        let b = rebalance(&shards, [2, 30, 9, 5, 11, 5]);
        assert_eq!(a, b);
    }
}
