//! Watching shards move after a configuration change: each moving shard is shown as its new
//! owner starts serving it (from, to, its size, how long it took), and the step ends once
//! every group has settled in the new configuration.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strata_client::{Config, Gid, ShardId};
use strata_rpc::v1;

use super::load::ShardCounts;
use super::probe::{is_settled, Probe};
use crate::error::{CliError, CliResult};

/// How often the servers are asked.
const POLL: Duration = Duration::from_millis(100);

/// One shard that changed hands.
#[derive(Debug, Clone)]
pub struct Move {
    /// The shard.
    pub shard: ShardId,
    /// Its previous owner.
    pub from: Gid,
    /// Its new owner.
    pub to: Gid,
    /// Keys in it when it arrived (written by the demo, counted as acknowledged).
    pub keys: u64,
    /// From the configuration change until a majority of the new owner served it.
    pub took: Duration,
}

/// The shards whose owner differs between `old` and `new` (and had one in `old`).
pub fn moving_shards(old: &Config, new: &Config) -> Vec<(ShardId, Gid, Gid)> {
    old.shards
        .iter()
        .zip(&new.shards)
        .enumerate()
        .filter(|&(_, (&from, &to))| from != to && from != strata_client::UNASSIGNED)
        .map(|(s, (&from, &to))| (s as ShardId, from, to))
        .collect()
}

/// Waits until every shard moving from `old` to `new` is served by a majority of its new
/// owner, printing each as it arrives, then until every group is settled in `new`. `since`
/// is when the change was made; `entry_bytes` the size of one key and value.
pub async fn watch_moves(
    probe: &Probe,
    old: &Config,
    new: &Config,
    since: Instant,
    counts: &ShardCounts,
    entry_bytes: u64,
    timeout: Duration,
) -> CliResult<Vec<Move>> {
    let mut pending: BTreeMap<ShardId, (Gid, Gid)> = moving_shards(old, new)
        .into_iter()
        .map(|(s, from, to)| (s, (from, to)))
        .collect();
    let mut moves = Vec::new();
    let deadline = since + timeout;
    loop {
        let states = group_states(probe, new).await;
        let arrived: Vec<ShardId> = pending
            .iter()
            .filter(|(&s, (_, to))| serving_majority(states.get(to), s, new.num))
            .map(|(&s, _)| s)
            .collect();
        for s in arrived {
            let Some((from, to)) = pending.remove(&s) else {
                continue;
            };
            let m = Move {
                shard: s,
                from,
                to,
                keys: counts.get(s),
                took: since.elapsed(),
            };
            say!(
                "  shard {:>4}  group {from} -> {to}  {:>7} keys  ~{:>9}  {:>6.2} s",
                m.shard,
                m.keys,
                crate::output::human_bytes(m.keys * entry_bytes),
                m.took.as_secs_f64()
            );
            moves.push(m);
        }
        if pending.is_empty() && all_settled(&states, new) {
            return Ok(moves);
        }
        if Instant::now() >= deadline {
            return Err(CliError::failed(format!(
                "shards did not settle in config {} within {timeout:?} ({} still moving: {:?})",
                new.num,
                pending.len(),
                pending.keys().take(8).collect::<Vec<_>>()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until a majority of every group of `config` applied it with every shard settled.
pub async fn wait_settled(probe: &Probe, config: &Config, timeout: Duration) -> CliResult {
    let deadline = Instant::now() + timeout;
    loop {
        if all_settled(&group_states(probe, config).await, config) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CliError::failed(format!(
                "the groups did not settle in config {} within {timeout:?}",
                config.num
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every replica's answer (None: no answer), by group.
async fn group_states(
    probe: &Probe,
    config: &Config,
) -> BTreeMap<Gid, Vec<Option<v1::ShardsResponse>>> {
    let mut states = BTreeMap::new();
    for (&gid, addresses) in config.groups.iter() {
        let mut answers = Vec::new();
        for a in addresses {
            answers.push(probe.shards(a).await);
        }
        states.insert(gid, answers);
    }
    states
}

/// Whether a majority of a group's replicas applied config `num` and serve `shard`.
fn serving_majority(
    replicas: Option<&Vec<Option<v1::ShardsResponse>>>,
    shard: ShardId,
    num: u64,
) -> bool {
    let Some(replicas) = replicas else {
        return false;
    };
    let serving = replicas
        .iter()
        .flatten()
        .filter(|r| {
            r.config_num >= num
                && r.shards.get(shard as usize).is_some_and(|&st| {
                    st == v1::ShardState::Serving as i32
                        || st == v1::ShardState::ServingNotifying as i32
                })
        })
        .count();
    serving * 2 > replicas.len()
}

/// Whether a majority of every group applied `config` with every shard settled.
fn all_settled(states: &BTreeMap<Gid, Vec<Option<v1::ShardsResponse>>>, config: &Config) -> bool {
    states.values().all(|replicas| {
        let settled = replicas
            .iter()
            .flatten()
            .filter(|r| r.config_num >= config.num && r.shards.iter().all(|&st| is_settled(st)))
            .count();
        settled * 2 > replicas.len()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owned_shards_that_change_owner_move() {
        let mut old = Config::initial(4);
        old.shards = vec![100, 100, 101, 0];
        let mut new = old.clone();
        new.shards = vec![100, 102, 102, 102];
        assert_eq!(
            moving_shards(&old, &new),
            vec![(1, 100, 102), (2, 101, 102)]
        );
    }
}
