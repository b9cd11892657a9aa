//! The shard master: configurations from random joins, leaves and moves.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strata_paxos::sim::SimRng;
use strata_rpc::config::Config;

pub(super) fn addresses(gid: u64) -> Vec<String> {
    vec![format!("g{gid}-a:7000"), format!("g{gid}-b:7000")]
}

/// Every member owns `floor(N/G)` or `ceil(N/G)` shards, moving as few shards as possible;
/// deterministic.
fn rebalance(shards: &mut [u64], members: &BTreeSet<u64>) {
    if members.is_empty() {
        shards.iter_mut().for_each(|s| *s = 0);
        return;
    }
    for s in shards.iter_mut() {
        if !members.contains(s) {
            *s = 0;
        }
    }
    let mut owned: BTreeMap<u64, Vec<usize>> = members.iter().map(|&m| (m, Vec::new())).collect();
    for (i, &g) in shards.iter().enumerate() {
        if g != 0 {
            owned.get_mut(&g).expect("member").push(i);
        }
    }
    let mut order: Vec<u64> = members.iter().copied().collect();
    order.sort_by_key(|g| (std::cmp::Reverse(owned[g].len()), *g));
    let (base, extra) = (shards.len() / members.len(), shards.len() % members.len());
    let target: BTreeMap<u64, usize> = order
        .iter()
        .enumerate()
        .map(|(i, &g)| (g, base + usize::from(i < extra)))
        .collect();
    let mut pool: Vec<usize> = (0..shards.len()).filter(|&i| shards[i] == 0).collect();
    for (g, list) in owned.iter_mut() {
        while list.len() > target[g] {
            let s = list.pop().expect("non-empty");
            shards[s] = 0;
            pool.push(s);
        }
    }
    pool.sort_unstable();
    let mut pool = pool.into_iter();
    for (g, list) in owned.iter_mut() {
        while list.len() < target[g] {
            let s = pool.next().expect("enough shards");
            shards[s] = *g;
            list.push(s);
        }
    }
}

/// Configurations 0..=k from random joins, leaves and moves.
pub(crate) fn generate_configs(rng: &mut SimRng, n: usize, gids: &[u64], k: usize) -> Vec<Config> {
    let mut configs = vec![Config {
        num: 0,
        shards: vec![0; n],
        groups: Default::default(),
    }];
    while configs.len() <= k {
        let prev = configs.last().expect("config 0");
        let mut members: BTreeSet<u64> = prev.groups.keys().copied().collect();
        let mut shards = prev.shards.clone();
        let outside: Vec<u64> = gids
            .iter()
            .copied()
            .filter(|g| !members.contains(g))
            .collect();
        let roll = if members.is_empty() { 0 } else { rng.below(10) };
        if roll <= 3 && !outside.is_empty() {
            // Join one group, sometimes two at once.
            members.insert(*rng.pick(&outside));
            if rng.chance(0.3) {
                members.insert(*rng.pick(&outside));
            }
            rebalance(&mut shards, &members);
        } else if roll <= 6 && members.len() >= 2 {
            let list: Vec<u64> = members.iter().copied().collect();
            members.remove(rng.pick(&list));
            rebalance(&mut shards, &members);
        } else {
            let list: Vec<u64> = members.iter().copied().collect();
            let shard = rng.below(n as u64) as usize;
            shards[shard] = *rng.pick(&list);
        }
        configs.push(Config {
            num: configs.len() as u64,
            shards,
            groups: Arc::new(members.iter().map(|&g| (g, addresses(g))).collect()),
        });
    }
    configs
}
