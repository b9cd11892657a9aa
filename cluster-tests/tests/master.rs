//! The classic shard-master tests (6.824's shardctrler), over three real `strata-master`
//! replicas on 127.0.0.1, with replicas SIGKILLed, SIGSTOPped and restarted. One test binary;
//! the tests hold [`serial`] so that they never run concurrently.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_client::{ClientError, Config, MasterClient, MasterClientOptions};
use strata_cluster_tests::{peers_arg, serial, test_proc, MasterCluster};

const BIN: &str = env!("CARGO_BIN_EXE_strata-cluster");
const SHARDS: usize = 10;
const TICK_MS: u64 = 10;

fn cluster() -> MasterCluster {
    MasterCluster::start(BIN, 3, SHARDS, TICK_MS)
}

fn options() -> MasterClientOptions {
    MasterClientOptions {
        rpc_timeout: Duration::from_millis(1000),
        request_timeout: Duration::from_secs(20),
        ..Default::default()
    }
}

fn servers(gid: u64) -> Vec<String> {
    vec![format!("10.0.{gid}.1:7000"), format!("10.0.{gid}.2:7000")]
}

fn group(gid: u64) -> BTreeMap<u64, Vec<String>> {
    BTreeMap::from([(gid, servers(gid))])
}

/// 6.824's `check`: the latest config has exactly `groups`, every shard is served by one of
/// them (when there is any), and the load is balanced (max - min <= 1).
async fn check(client: &MasterClient, groups: &[u64]) -> Config {
    let c = client.query(None).await.expect("query");
    let want: BTreeSet<u64> = groups.iter().copied().collect();
    let have: BTreeSet<u64> = c.groups.keys().copied().collect();
    assert_eq!(have, want, "groups of config {}", c.num);
    for (gid, addrs) in c.groups.iter() {
        assert_eq!(addrs, &servers(*gid), "servers of group {gid}");
    }
    assert_eq!(c.shards.len(), SHARDS);
    let mut counts: BTreeMap<u64, usize> = want.iter().map(|&g| (g, 0)).collect();
    for (shard, gid) in c.shards.iter().enumerate() {
        if want.is_empty() {
            assert_eq!(*gid, 0, "shard {shard} assigned with no group");
        } else {
            *counts
                .get_mut(gid)
                .unwrap_or_else(|| panic!("shard {shard} -> unknown gid {gid} in {c:?}")) += 1;
        }
    }
    if !want.is_empty() {
        let max = counts.values().max().unwrap();
        let min = counts.values().min().unwrap();
        assert!(max - min <= 1, "unbalanced {counts:?} in config {}", c.num);
    }
    c
}

/// Every config `0..=latest` as recorded in `history` is still what the master returns.
async fn check_history(client: &MasterClient, history: &BTreeMap<u64, Config>) {
    for (num, config) in history {
        assert_eq!(
            &client.query(Some(*num)).await.expect("query"),
            config,
            "config {num}"
        );
    }
}

async fn record(client: &MasterClient, history: &mut BTreeMap<u64, Config>) -> Config {
    let c = client.query(None).await.expect("query");
    if let Some(old) = history.insert(c.num, c.clone()) {
        assert_eq!(old, c, "config {} changed", c.num);
    }
    c
}

/// Join/leave/query history, as in "Basic leave/join" and "Historical queries"; invalid
/// operations are refused at once and create no config.
async fn basic_scenario(mc: &mut MasterCluster, kill_midway: bool) -> BTreeMap<u64, Config> {
    let ck = mc.client_with(options());
    let mut history = BTreeMap::new();
    let c0 = check(&ck, &[]).await;
    assert_eq!(c0.num, 0);
    history.insert(0, c0);

    assert_eq!(ck.join_unchecked(group(1)).await.unwrap(), 1);
    check(&ck, &[1]).await;
    record(&ck, &mut history).await;
    assert_eq!(ck.join_unchecked(group(2)).await.unwrap(), 2);
    check(&ck, &[1, 2]).await;
    record(&ck, &mut history).await;

    if kill_midway {
        let leader = mc.leader(Duration::from_secs(5)).await.expect("a leader");
        mc.kill(leader);
        check(&ck, &[1, 2]).await;
        check_history(&ck, &history).await;
        assert_eq!(ck.join_unchecked(group(3)).await.unwrap(), 3);
        mc.restart(leader);
        // Another replica down: the restarted one must have caught up to form a quorum.
        mc.kill((leader + 1) % 3);
        check(&ck, &[1, 2, 3]).await;
        record(&ck, &mut history).await;
        mc.restart((leader + 1) % 3);
        assert_eq!(ck.leave(vec![3]).await.unwrap(), 4);
        check(&ck, &[1, 2]).await;
        record(&ck, &mut history).await;
    }
    let base = history.keys().max().copied().unwrap();

    // Invalid operations: refused, nothing created.
    for (what, result) in [
        ("join of a member", ck.join_unchecked(group(1)).await),
        ("leave of a stranger", ck.leave(vec![9]).await),
        ("empty leave", ck.leave(vec![]).await),
        ("empty join", ck.join_unchecked(BTreeMap::new()).await),
        (
            "empty server list",
            ck.join_unchecked(BTreeMap::from([(7, vec![])])).await,
        ),
        ("gid 0", ck.join_unchecked(group(0)).await),
        // Issue 12, case 5: servers that cannot exist would strand the shards given to them.
        (
            "malformed address",
            ck.join_unchecked(BTreeMap::from([(8, vec!["no-port".to_string()])]))
                .await,
        ),
        (
            "an address listed twice",
            ck.join_unchecked(BTreeMap::from([(8, vec!["10.0.8.1:7000".to_string(); 2])]))
                .await,
        ),
        (
            "more servers than MAX_ADDRESSES_PER_GROUP",
            ck.join_unchecked(BTreeMap::from([(
                8,
                (0..=strata_rpc::MAX_ADDRESSES_PER_GROUP)
                    .map(|i| format!("10.0.8.{i}:7000"))
                    .collect(),
            )]))
            .await,
        ),
        ("move to a stranger", ck.move_shard(0, 9).await),
        ("shard out of range", ck.move_shard(SHARDS as u32, 1).await),
    ] {
        assert!(
            matches!(result, Err(ClientError::InvalidArgument(_))),
            "{what}: {result:?}"
        );
    }
    assert_eq!(ck.query(None).await.unwrap().num, base);

    assert_eq!(ck.leave(vec![1]).await.unwrap(), base + 1);
    check(&ck, &[2]).await;
    record(&ck, &mut history).await;
    assert_eq!(ck.leave(vec![2]).await.unwrap(), base + 2);
    check(&ck, &[]).await;
    record(&ck, &mut history).await;

    check_history(&ck, &history).await;
    // A number past the latest is the latest.
    assert_eq!(ck.query(Some(1000)).await.unwrap().num, base + 2);
    history
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_join_leave_and_historical_queries() {
    let _serial = serial().await;
    let mut mc = cluster();
    let history = basic_scenario(&mut mc, false).await;
    // Historical queries keep working with any one replica down.
    let ck = mc.client_with(options());
    for i in 0..3 {
        mc.kill(i);
        check_history(&ck, &history).await;
        mc.restart(i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_shard() {
    let _serial = serial().await;
    let mc = cluster();
    let ck = mc.client_with(options());
    ck.join_unchecked(group(503)).await.unwrap();
    ck.join_unchecked(group(504)).await.unwrap();
    let before = ck.query(None).await.unwrap();
    for shard in 0..SHARDS as u32 {
        let gid = if shard < SHARDS as u32 / 2 { 503 } else { 504 };
        let num = ck.move_shard(shard, gid).await.unwrap();
        assert_eq!(num, before.num + 1 + u64::from(shard));
    }
    let c = ck.query(None).await.unwrap();
    for (shard, gid) in c.shards.iter().enumerate() {
        assert_eq!(
            *gid,
            if shard < SHARDS / 2 { 503 } else { 504 },
            "shard {shard}"
        );
    }
    // A move pins nothing: the next join rebalances.
    ck.join_unchecked(group(505)).await.unwrap();
    check(&ck, &[503, 504, 505]).await;
    ck.leave(vec![503, 504, 505]).await.unwrap();
    check(&ck, &[]).await;
}

/// Runs `n` clients concurrently, client `i` doing `body(i, client)`.
async fn concurrently<F, Fut>(mc: &MasterCluster, n: u64, body: F)
where
    F: Fn(u64, Arc<MasterClient>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = (0..n)
        .map(|i| tokio::spawn(body(i, Arc::new(mc.client_with(options())))))
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_and_leaves() {
    let _serial = serial().await;
    let mc = cluster();
    let ck = mc.client_with(options());
    ck.join_unchecked(group(1)).await.unwrap();
    // Each client joins a group, leaves it, joins another that stays.
    concurrently(&mc, 10, |i, c| async move {
        let gid = 100 + i;
        c.join_unchecked(group(gid)).await.unwrap();
        c.leave(vec![gid]).await.unwrap();
        c.join_unchecked(group(200 + i)).await.unwrap();
    })
    .await;
    let mut want: Vec<u64> = (200..210).collect();
    want.push(1);
    let c = check(&ck, &want).await;
    assert_eq!(c.num, 1 + 30, "every operation created exactly one config");
}

/// "Minimal transfers after joins/leaves" (single and multi-group).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_transfers_after_joins_and_leaves() {
    let _serial = serial().await;
    let mc = cluster();
    let ck = mc.client_with(options());
    for gid in 1..=3 {
        ck.join_unchecked(group(gid)).await.unwrap();
    }
    let c1 = check(&ck, &[1, 2, 3]).await;
    // Joins: shards stay with their owner unless they go to a new group.
    for gid in 4..=5 {
        ck.join_unchecked(group(gid)).await.unwrap();
    }
    ck.join_unchecked(BTreeMap::from([(6, servers(6)), (7, servers(7))]))
        .await
        .unwrap();
    let c2 = check(&ck, &[1, 2, 3, 4, 5, 6, 7]).await;
    for s in 0..SHARDS {
        if c2.shards[s] <= 3 {
            assert_eq!(
                c1.shards[s], c2.shards[s],
                "shard {s} moved between old groups"
            );
        }
    }
    // Leaves: shards of the remaining groups stay.
    ck.leave(vec![4]).await.unwrap();
    ck.leave(vec![5, 6]).await.unwrap();
    let c3 = check(&ck, &[1, 2, 3, 7]).await;
    for s in 0..SHARDS {
        if ![4, 5, 6].contains(&c2.shards[s]) {
            assert_eq!(
                c2.shards[s], c3.shards[s],
                "shard {s} of a remaining group moved"
            );
        }
    }
    // More groups than shards: balanced means 0 or 1 shard each.
    let many: BTreeMap<u64, Vec<String>> = (10..10 + SHARDS as u64 + 3)
        .map(|g| (g, servers(g)))
        .collect();
    ck.join_unchecked(many.clone()).await.unwrap();
    let mut all: Vec<u64> = many.keys().copied().collect();
    all.extend([1, 2, 3, 7]);
    check(&ck, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_group_join_leave() {
    let _serial = serial().await;
    let mc = cluster();
    let ck = mc.client_with(options());
    let mut history = BTreeMap::new();
    history.insert(0, check(&ck, &[]).await);
    ck.join_unchecked(BTreeMap::from([
        (1, servers(1)),
        (2, servers(2)),
        (3, servers(3)),
    ]))
    .await
    .unwrap();
    check(&ck, &[1, 2, 3]).await;
    record(&ck, &mut history).await;
    ck.leave(vec![1, 3]).await.unwrap();
    check(&ck, &[2]).await;
    record(&ck, &mut history).await;
    // Concurrent multi-group joins and leaves.
    concurrently(&mc, 6, |i, c| async move {
        let (a, b) = (100 + 2 * i, 101 + 2 * i);
        c.join_unchecked(BTreeMap::from([(a, servers(a)), (b, servers(b))]))
            .await
            .unwrap();
        c.leave(vec![a]).await.unwrap();
    })
    .await;
    let want: Vec<u64> = std::iter::once(2)
        .chain((0..6).map(|i| 101 + 2 * i))
        .collect();
    let c = check(&ck, &want).await;
    assert_eq!(c.num, 2 + 12);
    check_history(&ck, &history).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_killed_and_restarted_midway_keeps_every_config() {
    let _serial = serial().await;
    let mut mc = cluster();
    let history = basic_scenario(&mut mc, true).await;
    // Durability: the whole master down and back, every config is still there.
    for i in 0..3 {
        mc.kill(i);
    }
    for i in 0..3 {
        mc.restart(i);
    }
    let ck = mc.client_with(options());
    check_history(&ck, &history).await;
    assert_eq!(
        ck.join_unchecked(group(8)).await.unwrap(),
        history.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_replica_service_continues() {
    let _serial = serial().await;
    let mut mc = cluster();
    let ck = mc.client_with(options());
    ck.join_unchecked(group(1)).await.unwrap();
    // Pause the leader: a new one takes over.
    let leader = mc.leader(Duration::from_secs(5)).await.expect("a leader");
    mc.pause(leader);
    let started = Instant::now();
    ck.join_unchecked(group(2)).await.unwrap();
    check(&ck, &[1, 2]).await;
    eprintln!("failover with a paused leader took {:?}", started.elapsed());
    concurrently(&mc, 4, |i, c| async move {
        c.join_unchecked(group(10 + i)).await.unwrap();
    })
    .await;
    check(&ck, &[1, 2, 10, 11, 12, 13]).await;
    mc.resume(leader);
    // Pause a follower: service continues.
    let leader = mc.leader(Duration::from_secs(5)).await.expect("a leader");
    let follower = (leader + 1) % 3;
    mc.pause(follower);
    ck.leave(vec![10, 11]).await.unwrap();
    check(&ck, &[1, 2, 12, 13]).await;
    mc.resume(follower);
    // The resumed replica catches up: with the other follower down it is needed for quorum.
    mc.kill((leader + 2) % 3);
    ck.leave(vec![12]).await.unwrap();
    check(&ck, &[1, 2, 13]).await;
}

/// Asserts that a request (`what`, for the message) gave up with a timeout.
#[track_caller]
fn assert_timed_out<T: std::fmt::Debug>(result: Result<T, ClientError>, what: &str) {
    assert!(
        matches!(result, Err(ClientError::Timeout { .. })),
        "{what}: {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_down_requests_fail_rather_than_lie() {
    let _serial = serial().await;
    let mut mc = cluster();
    let ck = mc.client_with(options());
    ck.join_unchecked(group(1)).await.unwrap();
    let leader = mc.leader(Duration::from_secs(5)).await.expect("a leader");
    // One follower killed, the other paused: the leader is alone.
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    mc.kill(a);
    mc.pause(b);
    let short = mc.client_with(MasterClientOptions {
        rpc_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(1500),
        ..Default::default()
    });
    assert_timed_out(short.join_unchecked(group(2)).await, "join");
    assert_timed_out(short.query(None).await, "query");
    assert_timed_out(short.query(Some(0)).await, "old query");
    // Back to a majority: the unacknowledged join took effect at most once (the slot it
    // may occupy precedes the next join's), and the master goes on.
    mc.resume(b);
    let num = ck.join_unchecked(group(3)).await.unwrap();
    let c = ck.query(None).await.unwrap();
    assert_eq!(c.num, num);
    match num {
        2 => {
            check(&ck, &[1, 3]).await;
        }
        3 => {
            check(&ck, &[1, 2, 3]).await;
            let two = ck.query(Some(2)).await.unwrap();
            assert_eq!(two.groups.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        }
        n => panic!("config {n} after one join that may have applied and one that did"),
    }
    mc.restart(a);
}

/// Many clients join and leave while the leader is SIGKILLed; a new leader takes over and
/// every acknowledged operation appears in the config history exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_under_load_loses_and_duplicates_nothing() {
    let _serial = serial().await;
    let mut mc = cluster();
    let ck = mc.client_with(options());
    ck.join_unchecked(group(1)).await.unwrap();
    const CLIENTS: u64 = 8;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // (gid, joined?) -> acknowledged config number, per operation; unacknowledged have None.
    let acks = Arc::new(parking_lot_free::Log::default());
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let c = mc.client_with(options());
            let stop = stop.clone();
            let acks = acks.clone();
            tokio::spawn(async move {
                let mut k = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let gid = 1000 * (i + 1) + k;
                    k += 1;
                    let joined = c.join_unchecked(group(gid)).await;
                    acks.push((gid, true, joined.clone().ok()));
                    if joined.is_err() {
                        // Outcome unknown: never reuse the gid, just go on.
                        continue;
                    }
                    let left = c.leave(vec![gid]).await;
                    acks.push((gid, false, left.ok()));
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let leader = mc.leader(Duration::from_secs(5)).await.expect("a leader");
    mc.kill(leader);
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    mc.restart(leader);
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!("load ran {:?} after the kill", killed_at.elapsed());

    // The history: each config after 1 differs from its predecessor by one join or leave of
    // one gid.
    let latest = ck.query(None).await.unwrap();
    let mut events: BTreeMap<(u64, bool), Vec<u64>> = BTreeMap::new();
    let mut prev = ck.query(Some(1)).await.unwrap();
    for num in 2..=latest.num {
        let c = ck.query(Some(num)).await.unwrap();
        assert_eq!(c.num, num);
        let before: BTreeSet<u64> = prev.groups.keys().copied().collect();
        let after: BTreeSet<u64> = c.groups.keys().copied().collect();
        let added: Vec<u64> = after.difference(&before).copied().collect();
        let removed: Vec<u64> = before.difference(&after).copied().collect();
        match (added.as_slice(), removed.as_slice()) {
            ([g], []) => events.entry((*g, true)).or_default().push(num),
            ([], [g]) => events.entry((*g, false)).or_default().push(num),
            _ => panic!("config {num}: added {added:?}, removed {removed:?}"),
        }
        prev = c;
    }
    let ops = acks.take();
    let acked = ops.iter().filter(|(_, _, a)| a.is_some()).count();
    assert!(acked > 20, "only {acked} operations acknowledged");
    for (gid, join, ack) in &ops {
        let seen = events.get(&(*gid, *join)).cloned().unwrap_or_default();
        assert!(seen.len() <= 1, "gid {gid} join={join} applied at {seen:?}");
        if let Some(num) = ack {
            assert_eq!(
                seen,
                vec![*num],
                "acknowledged gid {gid} join={join} at config {num}"
            );
        }
    }
    // Nothing in the history that no client asked for.
    let asked: BTreeSet<(u64, bool)> = ops.iter().map(|(g, j, _)| (*g, *j)).collect();
    for key in events.keys() {
        assert!(
            asked.contains(key),
            "config change {key:?} nobody asked for"
        );
    }
    eprintln!(
        "{} operations, {acked} acknowledged, {} configs",
        ops.len(),
        latest.num
    );
}

/// A tiny append-only log shared by the client tasks.
mod parking_lot_free {
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Log(Mutex<Vec<(u64, bool, Option<u64>)>>);

    impl Log {
        pub fn push(&self, e: (u64, bool, Option<u64>)) {
            self.0.lock().unwrap().push(e);
        }
        pub fn take(&self) -> Vec<(u64, bool, Option<u64>)> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_refuses_another_shard_count_or_identity() {
    let _serial = serial().await;
    let mut mc = cluster();
    // SIGTERM: a graceful, successful exit.
    let exit = mc.stop(0).expect("exits within the grace period");
    assert!(exit.success(), "{exit:?}");
    let peers = peers_arg(&mc.addresses());
    let dir = mc.data_dir(0).display().to_string();
    let run = |id: &str, shards: &str, log: &str| {
        let args = [
            "master",
            "--id",
            id,
            "--peers",
            &peers,
            "--data-dir",
            &dir,
            "--shards",
            shards,
        ]
        .iter()
        .map(Into::into)
        .collect();
        let mut p = test_proc(BIN, args, mc.data_dir(0).with_extension(log));
        p.start().expect("starting a process");
        let status = p.wait_exit(Duration::from_secs(10)).expect("exits");
        (status, p.log())
    };
    let (status, log) = run("1", &(SHARDS + 1).to_string(), "shards.log");
    assert!(!status.success());
    assert!(log.contains(&format!("--shards {SHARDS}")), "{log}");
    let (status, log) = run("2", &SHARDS.to_string(), "identity.log");
    assert!(!status.success());
    assert!(log.contains("IDENTITY") || log.contains("belongs"), "{log}");
    mc.restart(0);
    let ck = mc.client_with(options());
    ck.join_unchecked(group(1)).await.unwrap();
    check(&ck, &[1]).await;
}

/// Joins and leaves distinct groups from `clients` clients until `deadline`; returns the
/// number of acknowledged operations.
async fn churn(mc: &MasterCluster, clients: u64, base: u64, deadline: Instant) -> u64 {
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let c = mc.client_with(options());
            tokio::spawn(async move {
                let mut ops = 0u64;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let gid = base + i * 1_000_000 + n;
                    n += 1;
                    c.join_unchecked(group(gid)).await.expect("join under load");
                    c.leave(vec![gid]).await.expect("leave under load");
                    ops += 2;
                }
                ops
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("churn task");
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_stopped_for_a_minute_under_load_keeps_commits_going() {
    let _serial = serial().await;
    let mut mc = cluster();
    let ck = mc.client_with(options());
    ck.join_unchecked(group(1)).await.unwrap();
    let leader = mc.leader(Duration::from_secs(5)).await.expect("a leader");
    let follower = (leader + 1) % 3;
    // Warm up so that the leader's allocator and engine reach their working size.
    churn(&mc, 4, 1_000, Instant::now() + Duration::from_secs(3)).await;
    mc.pause(follower);
    let before = mc.replica(leader).rss_bytes().expect("leader rss");
    let ops = churn(&mc, 4, 10_000_000, Instant::now() + Duration::from_secs(60)).await;
    let after = mc.replica(leader).rss_bytes().expect("leader rss");
    mc.resume(follower);
    let growth = after.saturating_sub(before);
    eprintln!(
        "{ops} operations in 60 s with a follower stopped; leader RSS {:.1} -> {:.1} MiB",
        before as f64 / (1 << 20) as f64,
        after as f64 / (1 << 20) as f64
    );
    assert!(
        ops >= 200,
        "commits must go on with one replica stopped: {ops} operations"
    );
    // Not asserted here: every operation appends a config to the master's history, which it
    // keeps in memory by design (any past config can be queried), about a KiB each — that
    // hides the transport. That what queues for a stopped peer stays bounded is asserted by
    // strata-node's `stalled_peer` test, whose state machine does not grow.
    eprintln!(
        "leader RSS growth: {:.1} KiB per operation",
        growth as f64 / 1024.0 / ops as f64
    );
    check(&ck, &[1]).await;
    // The resumed follower catches up with the leader.
    let target = mc
        .status(leader)
        .await
        .expect("leader status")
        .applied_index;
    let mut caught_up = false;
    for _ in 0..200 {
        if mc
            .status(follower)
            .await
            .is_some_and(|s| s.applied_index >= target)
        {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        caught_up,
        "the resumed follower never caught up to slot {target}"
    );
}

/// Issue 12, case 6: a long history of large configurations (65,536 shards: half a MiB each
/// in memory) costs a master disk, not memory, also after a restart, and every configuration
/// is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_history_of_large_configurations_stays_out_of_memory() {
    const BIG: usize = strata_shardmaster::MAX_NUM_SHARDS;
    const MOVES: u64 = 300;
    // Without paging the history grows by MOVES × 512 KiB = 150 MiB per replica.
    const BOUND: u64 = 64 << 20;
    let _serial = serial().await;
    let mut mc = MasterCluster::start(BIN, 3, BIG, TICK_MS);
    let ck = mc.client_with(options());
    let joined = ck
        .join_unchecked(BTreeMap::from([(1, servers(1)), (2, servers(2))]))
        .await
        .unwrap();
    let rss = |mc: &mut MasterCluster, i: usize| mc.replica(i).rss_anon_bytes().unwrap_or(0);
    let base: Vec<u64> = (0..3).map(|i| rss(&mut mc, i)).collect();
    for k in 0..MOVES {
        let num = ck.move_shard(k as u32, 1 + k % 2).await.unwrap();
        assert_eq!(num, joined + 1 + k);
    }
    let check_old = |c: Config, k: u64| {
        assert_eq!(c.num, joined + 1 + k);
        assert_eq!(c.shards.len(), BIG);
        assert_eq!(c.shards[k as usize], 1 + k % 2, "config {}", c.num);
    };
    for k in [0, 7, MOVES / 2, MOVES - 1] {
        check_old(ck.query(Some(joined + 1 + k)).await.unwrap(), k);
    }
    for (i, &base) in base.iter().enumerate() {
        let now = rss(&mut mc, i);
        assert!(
            now < base + BOUND,
            "master {i} grew from {base} to {now} bytes over {MOVES} configurations"
        );
    }
    // Restarted, every replica loads its history without holding it.
    for i in 0..3 {
        mc.restart(i);
    }
    let ck = mc.client_with(options());
    for k in [1, MOVES / 3, MOVES - 2] {
        check_old(ck.query(Some(joined + 1 + k)).await.unwrap(), k);
    }
    for (i, &base) in base.iter().enumerate() {
        let now = rss(&mut mc, i);
        assert!(
            now > 0 && now < base + BOUND,
            "master {i} restarted at {now} bytes"
        );
    }
}
