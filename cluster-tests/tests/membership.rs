//! Membership changes of running Paxos groups (issue 17), over real processes, each under
//! continuous client load whose whole history is checked for linearizability and whose every
//! acknowledged append must be present exactly once at the end:
//!
//! - a shard replica whose disk is lost is replaced by a new one (`--join`), then a second
//!   original replica dies: the group serves on the new replica and the last original;
//! - the same for a shard-master replica, then configuration changes through the new
//!   master address list;
//! - a group grows 3 → 5, then shrinks 5 → 3 removing its current leader twice;
//! - the leader dies in the middle of a replacement: the membership is the same on every live
//!   member, holds every change acknowledged before, and the retried replacement completes;
//! - a group whose membership changes keeps giving and taking shards;
//! - a removed replica says so and refuses requests; `--join` refuses a used data directory
//!   and an id already in the group.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use strata_client::ReplaceStep;
use strata_cluster_tests::workload::Workload;
use strata_cluster_tests::{node_status_at, serial, ShardCluster};
use strata_rpc::v1;

const BIN: &str = env!("CARGO_BIN_EXE_strata-cluster");
const SHARDS: usize = 10;
const CLIENTS: u64 = 4;
const KEYS: usize = 8;
const SETTLE: Duration = Duration::from_secs(60);
/// How long the group may take to serve again after a change or a failure.
const SERVE: Duration = Duration::from_secs(60);
/// Acknowledged operations that show the group serves.
const SOME: u64 = 100;
/// A Paxos log short enough that a joiner catches up by snapshot, not by the log alone.
const SHORT_LOG: &[&str] = &["--log-compaction-slack", "64"];

fn set(ids: &[u64]) -> BTreeSet<u64> {
    ids.iter().copied().collect()
}

/// Waits until one of the processes at `addresses` leads (its phase 1 made it learn every
/// change chosen before) and every one of them that its membership lists reports the same
/// membership; returns it. Panics with `logs()` after `timeout`. (Members that only agree
/// among themselves may all lag; a process the leader's membership no longer lists was
/// removed and need not know it: see `removed_follower_learns_it_was_removed`.)
async fn agreed_membership(
    addresses: &[String],
    timeout: Duration,
    logs: impl Fn() -> String,
) -> v1::Membership {
    let until = Instant::now() + timeout;
    loop {
        let mut seen = Vec::new();
        for a in addresses {
            seen.push((a, node_status_at(a).await));
        }
        let leader = (seen.iter())
            .filter_map(|(_, s)| s.as_ref())
            .find(|s| strata_rpc::probe::role_name(s.role) == "leader")
            .and_then(|s| s.membership.clone());
        if let Some(m) = leader {
            let agreed = seen.iter().all(|(a, s)| {
                !m.addresses.values().any(|x| x == *a)
                    || s.as_ref().and_then(|s| s.membership.as_ref()) == Some(&m)
            });
            if agreed {
                return m;
            }
        }
        if Instant::now() > until {
            let seen: Vec<_> = (seen.into_iter())
                .map(|(a, s)| (a, s.map(|s| (s.role, s.membership))))
                .collect();
            panic!(
                "the members at {addresses:?} did not agree on a membership under a leader \
                 within {timeout:?}: {seen:?}\n{}",
                logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The id of the replica the group's members call leader.
async fn leader_id(admin: &strata_client::GroupAdmin) -> u64 {
    let s = admin.status().await.expect("group status");
    assert_eq!(
        strata_rpc::probe::role_name(s.role),
        "leader",
        "no leader: {s:?}"
    );
    s.replica_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shard_replica_replaced_after_disk_loss_then_another_original_killed() {
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .server_args(SHORT_LOG)
        .groups(&[(1, 3)])
        .settled(SETTLE)
        .await;
    let load = Workload::start(&c, CLIENTS, KEYS, "replace-", 1).await;
    load.wait_progress(&c, SOME, SERVE, "before the failure")
        .await;

    // Replica 3's disk is lost; the group runs on two of three.
    c.group(1).wipe(2);
    c.group(1).retire(2);
    load.wait_progress(&c, SOME, SERVE, "on two replicas").await;

    let via = c.group_ref(1).address(0).to_string();
    let new = c.start_joiner(1, 4, &via);
    let address = c.group_ref(1).address(new).to_string();
    let admin = c.group_ref(1).admin();
    let mut steps = Vec::new();
    let m = match admin
        .replace_replica(3, 4, &address, |s| steps.push(s))
        .await
    {
        Ok(m) => m,
        Err(e) => panic!("replacing replica 3 by 4: {e}\n{}", c.logs()),
    };
    eprintln!("replacement steps: {steps:?}");
    assert_eq!(set(&m.voters), set(&[1, 2, 4]), "{m:?}");
    assert!(m.learners.is_empty(), "{m:?}");
    assert_eq!(m.addresses.get(&4), Some(&address), "{m:?}");
    let live = c.group_ref(1).addresses();
    let agreed = agreed_membership(&live, SETTLE, || c.logs()).await;
    assert_eq!(set(&agreed.voters), set(&[1, 2, 4]), "{agreed:?}");
    c.publish_servers(1).await;
    load.wait_progress(&c, SOME, SERVE, "after the replacement")
        .await;

    // A second original replica dies (the leader, if an original leads): only the new
    // replica and the last original are left, a majority of {1, 2, 4}.
    let leader = leader_id(&admin).await;
    let victim = if leader == 4 { 1 } else { leader };
    let i = c.group_ref(1).index_of(victim);
    c.group(1).kill(i);
    load.wait_progress(&c, SOME, SERVE, "after a second original replica died")
        .await;
    // The new replica restarts (started with --join, its membership from its directory now:
    // it is a voter).
    c.group(1).kill(new);
    c.group(1).restart(new);
    load.wait_progress(&c, SOME, SERVE, "after the new replica restarted")
        .await;
    let s = node_status_at(&address)
        .await
        .expect("the new replica answers");
    assert!(!s.not_member, "{s:?}");
    eprintln!(
        "new replica: role {}, applied {}, log from {}",
        strata_rpc::probe::role_name(s.role),
        s.applied_index,
        s.log_start
    );
    let summary = load.finish(&c).await;
    eprintln!("{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_replica_replaced_after_disk_loss_then_another_original_killed() {
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3), (2, 3)])
        .join_only(&[1])
        .settled(SETTLE)
        .await;
    let load = Workload::start(&c, CLIENTS, KEYS, "master-", 2).await;
    load.wait_progress(&c, SOME, SERVE, "before the failure")
        .await;

    // Master replica 3's disk is lost; a new replica 4 replaces it.
    c.masters.wipe(2);
    c.masters.retire(2);
    let via = c.masters.address(0).to_string();
    let new = c.masters.start_joiner(4, &via);
    let address = c.masters.address(new).to_string();
    let admin = c.masters.admin();
    let mut steps = Vec::new();
    let m = match admin
        .replace_replica(3, 4, &address, |s| steps.push(s))
        .await
    {
        Ok(m) => m,
        Err(e) => panic!("replacing master 3 by 4: {e}\n{}", c.logs()),
    };
    eprintln!("replacement steps: {steps:?}");
    assert_eq!(set(&m.voters), set(&[1, 2, 4]), "{m:?}");
    let live = c.masters.addresses();
    let agreed = agreed_membership(&live, SETTLE, || c.logs()).await;
    assert_eq!(set(&agreed.voters), set(&[1, 2, 4]), "{agreed:?}");

    // A second original master dies (the leader, if an original leads).
    let leader = leader_id(&admin).await;
    let victim = if leader == 4 { 1 } else { leader };
    c.masters.kill((victim - 1) as usize);

    // Clients given the new address list (one of them dead) still query and change the
    // configuration; the servers, started with the old list, follow.
    let master = c.master();
    let before = match master.query(None).await {
        Ok(config) => config.num,
        Err(e) => panic!("query after the replacement: {e}\n{}", c.logs()),
    };
    let num = master.join([(2, c.group_ref(2).addresses())].into()).await;
    let num = num.unwrap_or_else(|e| panic!("join after the replacement: {e}\n{}", c.logs()));
    assert!(num > before);
    c.wait_settled(&[1, 2], num, SETTLE).await;
    let config = master.query(None).await.expect("query");
    let shard = (0..SHARDS as u32)
        .find(|&s| config.shards[s as usize] == 1)
        .expect("group 1 owns a shard");
    let num = master.move_shard(shard, 2).await.expect("move");
    c.wait_settled(&[1, 2], num, SETTLE).await;
    load.wait_progress(&c, SOME, SERVE, "after the master changes")
        .await;
    let num = master.leave(vec![2]).await.expect("leave");
    c.wait_settled(&[1], num, SETTLE).await;
    let summary = load.finish(&c).await;
    eprintln!("{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_grows_to_five_then_shrinks_to_three_removing_its_leader() {
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3)])
        .settled(SETTLE)
        .await;
    let load = Workload::start(&c, CLIENTS, KEYS, "grow-", 3).await;
    load.wait_progress(&c, SOME, SERVE, "before growing").await;

    let via = c.group_ref(1).address(0).to_string();
    for id in [4, 5] {
        let i = c.start_joiner(1, id, &via);
        let address = c.group_ref(1).address(i).to_string();
        let admin = c.group_ref(1).admin();
        let m = admin.add_learner(id, &address).await;
        let m = m.unwrap_or_else(|e| panic!("adding learner {id}: {e}\n{}", c.logs()));
        assert!(m.learners.contains(&id), "{m:?}");
        let m = admin.promote(id).await;
        let m = m.unwrap_or_else(|e| panic!("promoting {id}: {e}\n{}", c.logs()));
        assert!(m.voters.contains(&id), "{m:?}");
        load.wait_progress(&c, SOME, SERVE, "while growing").await;
    }
    let all = c.group_ref(1).addresses();
    let m = agreed_membership(&all, SETTLE, || c.logs()).await;
    assert_eq!(set(&m.voters), set(&[1, 2, 3, 4, 5]), "{m:?}");
    c.publish_servers(1).await;

    // Shrink by removing the current leader, twice.
    let admin = c.group_ref(1).admin();
    for round in 0..2 {
        let leader = leader_id(&admin).await;
        let m = admin.remove(leader).await;
        let m = m.unwrap_or_else(|e| panic!("removing leader {leader}: {e}\n{}", c.logs()));
        assert!(!m.voters.contains(&leader), "{m:?}");
        assert_eq!(m.voters.len(), 4 - round, "{m:?}");
        // The removed leader stops serving and says so.
        let i = c.group_ref(1).index_of(leader);
        let address = c.group_ref(1).address(i).to_string();
        let until = Instant::now() + SETTLE;
        loop {
            let s = node_status_at(&address).await;
            if s.as_ref().is_some_and(|s| s.not_member) {
                assert_ne!(strata_rpc::probe::role_name(s.unwrap().role), "leader");
                break;
            }
            assert!(
                Instant::now() < until,
                "removed leader {leader} does not report not_member: {s:?}\n{}",
                c.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c.group(1).retire(i);
        c.publish_servers(1).await;
        load.wait_progress(&c, SOME, SERVE, "after removing the leader")
            .await;
    }
    let live = c.group_ref(1).addresses();
    let m = agreed_membership(&live, SETTLE, || c.logs()).await;
    assert_eq!(m.voters.len(), 3, "{m:?}");
    let summary = load.finish(&c).await;
    eprintln!("{summary:?}");
}

/// Replaces a live replica; right after `kill_at` is reported, the leader is SIGKILLed and
/// the replacement abandoned; then it is retried.
async fn leader_killed_during_replacement(kill_at: fn(&ReplaceStep) -> bool, seed: u64) {
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .server_args(SHORT_LOG)
        .groups(&[(1, 3)])
        .settled(SETTLE)
        .await;
    let load = Workload::start(&c, CLIENTS, KEYS, "crash-", seed).await;
    load.wait_progress(&c, SOME, SERVE, "before the replacement")
        .await;

    let leader = leader_id(&c.group_ref(1).admin()).await;
    let old = (1..=3).find(|&id| id != leader).expect("a follower");
    let via = c.group_ref(1).address(0).to_string();
    let new = c.start_joiner(1, 4, &via);
    let address = c.group_ref(1).address(new).to_string();
    let admin = c.group_ref(1).admin();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let replacing = {
        let address = address.clone();
        tokio::spawn(async move {
            let admin = admin;
            admin
                .replace_replica(old, 4, &address, |s| {
                    let _ = tx.send(s);
                })
                .await
        })
    };
    let mut seen = Vec::new();
    loop {
        match rx.recv().await {
            Some(step) => {
                let kill = kill_at(&step);
                seen.push(step);
                if kill {
                    break;
                }
            }
            None => panic!(
                "the replacement ended before the kill point: {seen:?}, {:?}\n{}",
                replacing.await,
                c.logs()
            ),
        }
    }
    // The leader dies, and the operator's command with it: the retry below has to finish
    // the replacement from whatever the group had chosen.
    let leader_index = c.group_ref(1).index_of(leader);
    c.group(1).kill(leader_index);
    replacing.abort();
    eprintln!("killed leader {leader} and the replacement after {seen:?}");

    // Every live member agrees, and nothing reported chosen is lost.
    let live: Vec<String> = (c.group_ref(1).members())
        .filter(|&i| i != leader_index)
        .map(|i| c.group_ref(1).address(i).to_string())
        .collect();
    let m = agreed_membership(&live, SETTLE, || c.logs()).await;
    eprintln!("membership after the leader died: {m:?}");
    assert!(
        m.voters.contains(&4) || m.learners.contains(&4),
        "replica 4 was added before the kill, then lost: {m:?}"
    );
    if seen.iter().any(|s| matches!(s, ReplaceStep::Promoted(_))) {
        assert!(
            m.voters.contains(&4),
            "replica 4 was promoted, then lost: {m:?}"
        );
    }

    // Retry: it completes.
    let admin = c.group_ref(1).admin();
    let m = admin.replace_replica(old, 4, &address, |_| {}).await;
    let m = m.unwrap_or_else(|e| panic!("retrying the replacement: {e}\n{}", c.logs()));
    assert_eq!(set(&m.voters), &set(&[1, 2, 3, 4]) - &set(&[old]), "{m:?}");
    assert!(m.learners.is_empty(), "{m:?}");
    let old_index = c.group_ref(1).index_of(old);
    c.group(1).retire(old_index);
    c.publish_servers(1).await;
    c.group(1).restart(leader_index);
    let live = c.group_ref(1).addresses();
    let agreed = agreed_membership(&live, SETTLE, || c.logs()).await;
    assert_eq!(set(&agreed.voters), set(&m.voters), "{agreed:?}");
    load.wait_progress(&c, SOME, SERVE, "after the retried replacement")
        .await;
    let summary = load.finish(&c).await;
    eprintln!("{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_right_after_the_learner_is_added() {
    leader_killed_during_replacement(|s| matches!(s, ReplaceStep::Added(_)), 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_right_after_the_learner_is_promoted() {
    leader_killed_during_replacement(|s| matches!(s, ReplaceStep::Promoted(_)), 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_with_changed_membership_keeps_moving_shards() {
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .server_args(SHORT_LOG)
        .groups(&[(1, 3), (2, 3), (3, 3)])
        .join_only(&[1])
        .settled(SETTLE)
        .await;
    let load = Workload::start(&c, CLIENTS, KEYS, "move-", 6).await;
    load.wait_progress(&c, SOME, SERVE, "before the change")
        .await;

    // Group 1 loses replica 3's disk and replaces it while group 2 joins (and pulls shards
    // from group 1).
    c.group(1).wipe(2);
    c.group(1).retire(2);
    let via = c.group_ref(1).address(0).to_string();
    let new = c.start_joiner(1, 4, &via);
    let address = c.group_ref(1).address(new).to_string();
    let admin = c.group_ref(1).admin();
    let replacing = tokio::spawn(async move {
        let admin = admin;
        admin.replace_replica(3, 4, &address, |_| {}).await
    });
    let num = c.join(&[2]).await;
    match replacing.await.expect("replacing task") {
        Ok(m) => assert_eq!(set(&m.voters), set(&[1, 2, 4]), "{m:?}"),
        Err(e) => panic!("replacing replica 3 by 4: {e}\n{}", c.logs()),
    }
    c.wait_settled(&[1, 2], num, SETTLE).await;
    c.publish_servers(1).await;
    // Every live member must know the change before another replica may die: until the
    // followers learn that the removal of 3 was chosen, the slots before it are decided by
    // memberships in which 3 votes, and one more failure leaves no majority of those.
    let live = c.group_ref(1).addresses();
    let m = agreed_membership(&live, SETTLE, || c.logs()).await;
    assert_eq!(set(&m.voters), set(&[1, 2, 4]), "{m:?}");

    // Another original replica of group 1 dies: group 1 is replica 4 and one original.
    let leader = leader_id(&c.group_ref(1).admin()).await;
    let victim = if leader == 4 { 1 } else { leader };
    let i = c.group_ref(1).index_of(victim);
    c.group(1).kill(i);
    load.wait_progress(&c, SOME, SERVE, "after the second failure")
        .await;

    // Shards move both ways, all of them to group 1, then out to a new group.
    let master = c.master();
    let config = master.query(None).await.expect("query");
    for (from, to) in [(1, 2), (2, 1)] {
        let shard = (0..SHARDS as u32)
            .find(|&s| config.shards[s as usize] == from)
            .expect("a shard of the group");
        let num = master.move_shard(shard, to).await.expect("move");
        c.wait_settled(&[1, 2], num, SETTLE).await;
    }
    let num = c.leave(&[2]).await;
    c.wait_settled(&[1], num, SETTLE).await;
    load.wait_progress(&c, SOME, SERVE, "after group 2 left")
        .await;
    let num = c.join(&[3]).await;
    c.wait_settled(&[1, 3], num, SETTLE).await;
    load.wait_progress(&c, SOME, SERVE, "after group 3 joined")
        .await;
    let summary = load.finish(&c).await;
    eprintln!("{summary:?}");
}

/// Runs replica `id` of group 1 with `membership` on data directory `<root>/<name>` and
/// expects it to exit with a failure within 20 s; returns its log.
fn expect_refused(
    c: &ShardCluster,
    id: u64,
    membership: Vec<String>,
    name: &str,
    what: &str,
) -> String {
    let (mut p, _) = c.server_command(1, id, membership, name);
    p.start().expect("starting");
    match p.wait_exit(Duration::from_secs(20)) {
        Some(status) => assert!(!status.success(), "{what}: exited with {status}"),
        None => panic!("{what}: the replica started:\n{}", p.log()),
    }
    p.log()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_refuses_bad_starts_and_a_removed_replica_refuses_requests() {
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3)])
        .settled(SETTLE)
        .await;
    let client = c.client().await;
    client.put(b"k".to_vec(), b"v".to_vec()).await.expect("put");
    let via = c.group_ref(1).address(0).to_string();

    // An id already in the group.
    let listen = strata_cluster_tests::free_addresses(1).remove(0);
    let join = |via: &str, listen: &str| {
        vec![
            "--join".to_string(),
            via.to_string(),
            "--listen".into(),
            listen.to_string(),
        ]
    };
    let log = expect_refused(
        &c,
        2,
        join(&via, &listen),
        "fresh",
        "--join under a member's id",
    );
    assert!(log.contains("already a member"), "{log}");

    // A data directory that holds a replica's Paxos log (replica 3's, stopped).
    c.group(1).kill(2);
    let log = expect_refused(
        &c,
        3,
        join(&via, &listen),
        "g1-3",
        "--join on a used data directory",
    );
    assert!(log.contains("empty data directory"), "{log}");

    // Changes the group refuses, changing nothing: removing a voter when the rest would have
    // no live majority (replica 3 is down), adding an id or an address already in use.
    let admin = c.group_ref(1).admin();
    let before = agreed_membership(&c.group_ref(1).addresses()[..2], SETTLE, || c.logs()).await;
    // The leader counts a voter live while it heard from it within an election timeout.
    let until = Instant::now() + SETTLE;
    loop {
        let s = admin.status().await.expect("status");
        let heard = s.progress.iter().find(|p| p.replica_id == 3);
        if heard.is_some_and(|p| p.heard_ms_ago >= 2000) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the leader still hears 3: {heard:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = [
        ("removing 1 while 3 is down", admin.remove(1).await),
        ("adding id 2 again", admin.add_learner(2, &listen).await),
        ("adding 5 at 1's address", admin.add_learner(5, &via).await),
    ];
    for (what, result) in refused {
        match result {
            Err(strata_client::GroupError::Refused(why)) => eprintln!("{what}: refused: {why}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!(admin.membership().await.expect("membership"), before);
    c.group(1).restart(2);

    // Replica 3 is removed: it refuses requests (whether or not it learned of its removal:
    // see `removed_follower_learns_it_was_removed`).
    wait_caught_up(&c, 2).await;
    let admin = c.group_ref(1).admin();
    let m = admin.remove(3).await;
    let m = m.unwrap_or_else(|e| panic!("removing replica 3: {e}\n{}", c.logs()));
    assert_eq!(set(&m.voters), set(&[1, 2]), "{m:?}");
    let address = c.group_ref(1).address(2).to_string();
    let mut kv = strata_cluster_tests::shards::kv_client_at(&address).await;
    let put = kv
        .put(v1::PutRequest {
            header: Some(v1::RequestHeader {
                client_id: vec![7; 16],
                seq: 1,
                first_incomplete_seq: 1,
                opens_session: true,
                ..Default::default()
            }),
            key: b"k".to_vec(),
            value: b"removed".to_vec(),
        })
        .await;
    let status = match put {
        Ok(r) => panic!("a removed replica accepted a put: {r:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    // The group (two voters now) still serves, and the refused put took no effect.
    client
        .put(b"k2".to_vec(), b"v2".to_vec())
        .await
        .expect("put");
    let v = client.get(b"k".to_vec()).await.expect("get");
    assert_eq!(v.as_deref(), Some(&b"v"[..]));
}

/// Waits until replica `i` of group 1 has committed everything the leader had committed
/// when the wait began.
async fn wait_caught_up(c: &ShardCluster, i: usize) {
    let leader = c.group_ref(1).admin().status().await.expect("status");
    let until = Instant::now() + SETTLE;
    loop {
        let s = c.group_ref(1).status(i).await;
        if s.as_ref()
            .is_some_and(|s| s.commit_index >= leader.commit_index)
        {
            return;
        }
        assert!(
            Instant::now() < until,
            "replica {} did not catch up to {}: {s:?}",
            c.group_ref(1).id(i),
            leader.commit_index
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the replica at `address` reports `not_member` (and does not lead).
async fn wait_not_member(c: &ShardCluster, address: &str) {
    let until = Instant::now() + SETTLE;
    loop {
        let s = node_status_at(address).await;
        if let Some(s) = s.as_ref().filter(|s| s.not_member) {
            assert_ne!(strata_rpc::probe::role_name(s.role), "leader", "{s:?}");
            return;
        }
        assert!(
            Instant::now() < until,
            "the removed replica at {address} does not report not_member: {s:?}\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A follower removed from its group learns that it was removed: it reports `not_member`,
/// stops campaigning and does not lead.
///
/// A removed follower learns its removal and says so. (The change that removes it ends its
/// membership, so before the leader kept telling removed members about the log for a while,
/// it never learned the removal was chosen: it kept version 0, itself a voter, campaigned
/// forever — ignored — and reported `not_member: false`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removed_follower_learns_it_was_removed() {
    let _serial = serial().await;
    let (c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3)])
        .settled(SETTLE)
        .await;
    let client = c.client().await;
    client.put(b"k".to_vec(), b"v".to_vec()).await.expect("put");
    let admin = c.group_ref(1).admin();
    let leader = leader_id(&admin).await;
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    let i = c.group_ref(1).index_of(follower);
    wait_caught_up(&c, i).await;
    let m = admin.remove(follower).await;
    let m = m.unwrap_or_else(|e| panic!("removing replica {follower}: {e}\n{}", c.logs()));
    assert!(!m.voters.contains(&follower), "{m:?}");
    let address = c.group_ref(1).address(i).to_string();
    wait_not_member(&c, &address).await;
    client.put(b"k".to_vec(), b"w".to_vec()).await.expect("put");
}
