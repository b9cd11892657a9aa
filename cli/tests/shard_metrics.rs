//! Per-shard figures and shard moves, scraped from real processes: after known puts to
//! known shards, the group leader's `strata_shard_keys` / `strata_shard_bytes` match them
//! (once the background count caught up: polled with a deadline); when a second group joins
//! and shards move to it, and when one more is moved with `strata shard move`, the receiving
//! group pulled bytes and timed each move (`strata_migration_*`), no pull stays in flight, its
//! leader counts the moved shards' keys, and the giving group's leader forgets them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strata_cli::launch::{LaunchOptions, LocalCluster};

mod common;
use common::{http_get, sample, strata, STRATA};

const SHARDS: u32 = 8;
const KEYS: usize = 40;

/// Every replica's exposition of group `gid` (empty for one that does not answer).
fn scrape(cluster: &mut LocalCluster, gid: u64) -> Vec<String> {
    let addresses: Vec<String> = (cluster.group(gid).unwrap().iter())
        .filter_map(|r| r.http_address.clone())
        .collect();
    (addresses.iter())
        .map(|a| http_get(a, "/metrics").map(|(_, t)| t).unwrap_or_default())
        .collect()
}

/// The leader's exposition among `texts`, if one says it leads.
fn leader(texts: &[String]) -> Option<&String> {
    texts
        .iter()
        .find(|t| sample(t, "strata_paxos_is_leader") == Some(1.0))
}

/// `shard -> value` of every series of the per-shard gauge `name` in `text`.
fn per_shard(text: &str, name: &str) -> BTreeMap<u32, u64> {
    let prefix = format!("{name}{{shard=\"");
    (text.lines())
        .filter_map(|l| {
            let (shard, value) = l.strip_prefix(&prefix)?.split_once("\"} ")?;
            Some((shard.parse().ok()?, value.parse().ok()?))
        })
        .collect()
}

/// Sum over `texts` of the unlabelled sample `series`.
fn total(texts: &[String], series: &str) -> f64 {
    texts.iter().filter_map(|t| sample(t, series)).sum()
}

/// Polls group `gid` until `done` holds for its replicas' expositions; the last ones.
fn wait_for(
    cluster: &mut LocalCluster,
    gid: u64,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let texts = scrape(cluster, gid);
        if done(&texts) {
            return texts;
        }
        assert!(
            Instant::now() < until,
            "group {gid} never showed {what}; its leader's exposition:\n{}",
            leader(&texts).map_or("(no leader)", |t| t.as_str())
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The leader of `texts` reports exactly `expected` keys and bytes for its shards.
fn leader_counts(texts: &[String], expected: &BTreeMap<u32, (u64, u64)>) -> bool {
    let Some(text) = leader(texts) else {
        return false;
    };
    let keys: BTreeMap<u32, u64> = expected.iter().map(|(&s, &(k, _))| (s, k)).collect();
    let bytes: BTreeMap<u32, u64> = expected.iter().map(|(&s, &(_, b))| (s, b)).collect();
    per_shard(text, "strata_shard_keys") == keys && per_shard(text, "strata_shard_bytes") == bytes
}

#[test]
fn shard_figures_and_moves_are_scraped_from_the_servers() {
    let mut options = LaunchOptions::new(STRATA);
    options.shards = SHARDS as usize;
    let mut cluster = LocalCluster::start(options).expect("masters start");
    cluster.add_group(1, 3).expect("group 1 starts");
    let m = cluster.master_addresses().join(",");
    let servers = cluster.group_addresses(1).join(",");
    strata(&m, &["group", "join", "1", "--servers", &servers]);

    // Known keys in known shards: (keys, bytes of keys and values) per shard.
    let mut expected: BTreeMap<u32, (u64, u64)> = (0..SHARDS).map(|s| (s, (0, 0))).collect();
    for i in 0..KEYS {
        let (key, value) = (format!("key-{i}"), "v".repeat(i));
        strata(&m, &["put", &key, &value]);
        let figures = expected
            .get_mut(&strata_rpc::shard_for_key(key.as_bytes(), SHARDS))
            .unwrap();
        figures.0 += 1;
        figures.1 += (key.len() + value.len()) as u64;
    }
    assert!(
        expected.values().filter(|(k, _)| *k > 0).count() > 1,
        "the keys span shards"
    );
    wait_for(&mut cluster, 1, "every shard's keys and bytes", |t| {
        leader_counts(t, &expected)
    });

    // A second group joins: the master gives it half the shards, which it pulls.
    cluster.add_group(2, 3).expect("group 2 starts");
    let servers = cluster.group_addresses(2).join(",");
    strata(&m, &["group", "join", "2", "--servers", &servers]);
    let split = |texts: &[String]| -> Option<Vec<u32>> {
        let held: Vec<u32> = per_shard(leader(texts)?, "strata_shard_keys")
            .into_keys()
            .collect();
        (held.len() == SHARDS as usize / 2).then_some(held)
    };
    let texts = wait_for(&mut cluster, 2, "half the shards, counted", |t| {
        split(t).is_some()
            && total(t, "strata_migration_in_flight") == 0.0
            && total(t, "strata_migration_duration_seconds_count") >= 1.0
    });
    let gained = split(&texts).unwrap();
    let gained: BTreeMap<u32, (u64, u64)> = gained.iter().map(|s| (*s, expected[s])).collect();
    wait_for(&mut cluster, 2, "the moved shards' figures", |t| {
        leader_counts(t, &gained)
    });
    let kept: BTreeMap<u32, (u64, u64)> = (expected.iter())
        .filter(|(s, _)| !gained.contains_key(s))
        .map(|(&s, &f)| (s, f))
        .collect();
    wait_for(&mut cluster, 1, "only the shards it kept", |t| {
        leader_counts(t, &kept)
    });
    let texts = scrape(&mut cluster, 2);
    let bytes_before = total(&texts, "strata_migration_bytes_total");
    let moves_before = total(&texts, "strata_migration_duration_seconds_count");
    assert!(bytes_before > 0.0, "the pulls were counted");
    let moved_data: u64 = gained.values().map(|(_, b)| b).sum();
    assert!(
        bytes_before >= moved_data as f64,
        "{bytes_before} bytes pulled, at least the {moved_data} of keys and values"
    );

    // One more shard moved by hand, the one of group 1 with the most data.
    let (&shard, _) = kept.iter().max_by_key(|(_, (_, b))| *b).unwrap();
    strata(&m, &["shard", "move", &shard.to_string(), "2"]);
    let texts = wait_for(&mut cluster, 2, "the hand-moved shard", |t| {
        total(t, "strata_migration_in_flight") == 0.0
            && total(t, "strata_migration_duration_seconds_count") > moves_before
            && leader(t).is_some_and(|l| per_shard(l, "strata_shard_keys").contains_key(&shard))
    });
    assert!(
        total(&texts, "strata_migration_bytes_total") > bytes_before + expected[&shard].1 as f64,
        "the move's bytes were counted"
    );
    let mut gained = gained;
    gained.insert(shard, expected[&shard]);
    wait_for(&mut cluster, 2, "the hand-moved shard's figures", |t| {
        leader_counts(t, &gained)
    });
    let mut kept = kept;
    kept.remove(&shard);
    wait_for(&mut cluster, 1, "the hand-moved shard forgotten", |t| {
        leader_counts(t, &kept)
    });
}
