//! Shard servers and the routing client over real processes: the classic shard-KV cases.

use std::time::Duration;

use strata_client::{Client, ClientOptions, KvError};
use strata_cluster_tests::shards::{assert_refused_naming, kv_client_at};
use strata_cluster_tests::{free_addresses, serial, ShardCluster};
use strata_rpc::error::{error_detail, reason};
use strata_rpc::shard_for_key;
use strata_rpc::v1::{self, ErrorReason};

const BIN: &str = env!("CARGO_BIN_EXE_strata-cluster");
const SHARDS: usize = 10;
const SETTLE: Duration = Duration::from_secs(30);

fn key(i: usize) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

fn value(i: usize, round: usize) -> Vec<u8> {
    format!("value-{i}-{round}").into_bytes()
}

/// Puts `value(i, 0)` at `key(i)` for every `i` below `n`.
async fn put_values(client: &Client, n: usize) {
    for i in 0..n {
        client.put(key(i), value(i, 0)).await.unwrap();
    }
}

/// Asserts that `key(i)` holds `value(i, round)` for every `i` below `n`.
async fn assert_values(client: &Client, n: usize, round: usize) {
    for i in 0..n {
        assert_eq!(
            client.get(key(i)).await.unwrap(),
            Some(value(i, round)),
            "key {i}"
        );
    }
}

fn short_client() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(1),
        rpc_timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn static_shards_half_the_groups_down_serves_exactly_the_other_half() {
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3), (2, 3)])
        .settled(SETTLE)
        .await;
    let client = c.client().await;
    put_values(&client, 40).await;
    assert_values(&client, 40, 0).await;
    let config = client.config();
    c.group(1).kill_all();
    let short = c.client_with(short_client()).await;
    let mut served = 0;
    for i in 0..40 {
        let owner = config.owner(shard_for_key(&key(i), SHARDS as u32));
        match short.get(key(i)).await {
            Ok(v) => {
                assert_eq!(owner, 2, "key {i} of group {owner} was served");
                assert_eq!(v, Some(value(i, 0)));
                served += 1;
            }
            Err(KvError::Timeout { .. }) => assert_eq!(owner, 1, "key {i} of group 2 not served"),
            Err(e) => panic!("{e}"),
        }
    }
    let expected = (0..40)
        .filter(|&i| config.owner(shard_for_key(&key(i), SHARDS as u32)) == 2)
        .count();
    assert_eq!(served, expected);
    assert!(served > 0 && served < 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_rejects_keys_it_does_not_own_with_its_config_number() {
    let _serial = serial().await;
    let (c, num) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3), (2, 3)])
        .settled(SETTLE)
        .await;
    let client = c.client().await;
    let config = client.config();
    let foreign = (0..)
        .map(key)
        .find(|k| config.owner(shard_for_key(k, SHARDS as u32)) == 1)
        .unwrap();
    // Ask every replica of group 2 directly: the leader refuses with WRONG_GROUP and the
    // config number; followers send us to the leader.
    let mut wrong_group = 0;
    for address in c.group_ref(2).addresses() {
        let mut kv = kv_client_at(&address).await;
        let put = kv
            .put(v1::PutRequest {
                header: Some(v1::RequestHeader {
                    client_id: vec![7; 16],
                    seq: 1,
                    first_incomplete_seq: 1,
                    opens_session: true,
                    ..Default::default()
                }),
                key: foreign.clone(),
                value: b"x".to_vec(),
            })
            .await
            .unwrap_err();
        let get = kv
            .get(v1::GetRequest {
                key: foreign.clone(),
                config_num: 0,
            })
            .await
            .unwrap_err();
        for status in [put, get] {
            match reason(&status) {
                ErrorReason::WrongGroup => {
                    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
                    assert_eq!(error_detail(&status).unwrap().config_num, Some(num));
                    wrong_group += 1;
                }
                ErrorReason::WrongLeader => {}
                other => panic!("unexpected {other:?}: {status:?}"),
            }
        }
    }
    assert_eq!(wrong_group, 2, "the leader refused both");
    // And the key was not written anywhere.
    assert_eq!(client.get(&foreign).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_then_leave_keeps_every_value_and_hands_everything_off() {
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3)])
        .settled(SETTLE)
        .await;
    let client = c.client().await;
    let n = 60;
    put_values(&client, n).await;
    c.add_group(2, 3);
    c.add_group(3, 3);
    let num = c.join(&[2, 3]).await;
    for i in 0..n {
        client.append(key(i), b"+a").await.unwrap();
    }
    c.wait_settled(&[1, 2, 3], num, SETTLE).await;
    let expect = |i: usize| {
        let mut v = value(i, 0);
        v.extend_from_slice(b"+a");
        v
    };
    for i in 0..n {
        assert_eq!(
            client.get(key(i)).await.unwrap(),
            Some(expect(i)),
            "key {i}"
        );
    }
    let num = c.leave(&[1]).await;
    c.wait_settled(&[1, 2, 3], num, SETTLE).await;
    // Group 1 holds nothing any more: it can be shut down safely.
    for i in 0..3 {
        let s = c.group_ref(1).shards(i).await.unwrap();
        assert!(
            s.shards
                .iter()
                .all(|&st| st == v1::ShardState::Absent as i32),
            "{s:?}"
        );
    }
    c.group(1).kill_all();
    let scanned = client
        .scan(Vec::new(), None)
        .collect(usize::MAX)
        .await
        .unwrap();
    let mut expected: Vec<(Vec<u8>, Vec<u8>)> = (0..n).map(|i| (key(i), expect(i))).collect();
    expected.sort();
    assert_eq!(scanned, expected, "an ordered scan over every shard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_server_restarts_after_changes_and_recovers_from_disk() {
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3), (2, 3)])
        .join_only(&[1])
        .settled(SETTLE)
        .await;
    let client = c.client().await;
    put_values(&client, 30).await;
    let num = c.join(&[2]).await;
    c.wait_settled(&[1, 2], num, SETTLE).await;
    for i in 0..30 {
        client.append(key(i), b"!").await.unwrap();
    }
    for gid in [1, 2] {
        c.group(gid).kill_all();
    }
    for gid in [1, 2] {
        c.group(gid).restart_all();
    }
    for i in 0..30 {
        let mut v = value(i, 0);
        v.push(b'!');
        assert_eq!(client.get(key(i)).await.unwrap(), Some(v), "key {i}");
    }
    // And they go on through another change.
    let num = c.leave(&[2]).await;
    c.wait_settled(&[1, 2], num, SETTLE).await;
    for i in 0..30 {
        assert!(client.get(key(i)).await.unwrap().is_some(), "key {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_down_through_several_configs_catches_up_one_at_a_time() {
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3), (2, 3), (3, 3)])
        .join_only(&[1, 2])
        .settled(SETTLE)
        .await;
    let client = c.client().await;
    put_values(&client, 30).await;
    // Group 2 is down while the configuration moves on three times; only changes that do
    // not need its shards can complete meanwhile.
    c.group(2).kill_all();
    let master = c.master();
    master
        .join([(3, c.group_ref(3).addresses())].into())
        .await
        .unwrap();
    let config = master.query(None).await.unwrap();
    let first_shard_of_1 = config.shards.iter().position(|&g| g == 1).unwrap() as u32;
    master.move_shard(first_shard_of_1, 3).await.unwrap();
    let last = master.leave(vec![3]).await.unwrap();
    c.group(2).restart_all();
    c.wait_settled(&[1, 2, 3], last, SETTLE).await;
    assert_values(&client, 30, 0).await;
    for i in 0..3 {
        let s = c.group_ref(2).shards(i).await.unwrap();
        assert_eq!(s.config_num, last, "replica {i} of group 2 caught up");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_groups_keep_serving_while_one_is_dead_and_arrived_shards_serve_early() {
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3), (2, 3), (3, 3)])
        .join_only(&[1, 2])
        .settled(SETTLE)
        .await;
    let client = c.client().await;
    let n = 60;
    put_values(&client, n).await;
    let before = client.config();
    c.group(2).kill_all();
    // Group 3 takes shards from both 1 (alive) and 2 (dead).
    let num = c.join(&[3]).await;
    let master = c.master();
    let after = master.query(Some(num)).await.unwrap();
    let owner_before = |i: usize| before.owner(shard_for_key(&key(i), SHARDS as u32));
    let owner_after = |i: usize| after.owner(shard_for_key(&key(i), SHARDS as u32));
    assert!((0..n).any(|i| owner_before(i) == 1 && owner_after(i) == 3));
    assert!((0..n).any(|i| owner_before(i) == 2 && owner_after(i) == 3));
    let short = c.client_with(short_client()).await;
    // Group 1's remaining shards, and the shards 3 got from 1, are served while the shards
    // that were on the dead group 2 wait for it.
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let mut pending = 0;
        for i in 0..n {
            let served_by_live_groups = owner_before(i) == 1;
            if !served_by_live_groups {
                continue;
            }
            match short.get(key(i)).await {
                Ok(v) => assert_eq!(v, Some(value(i, 0)), "key {i}"),
                Err(_) => pending += 1,
            }
        }
        if pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pending} keys of live groups not served\n{}",
            c.logs()
        );
    }
    for i in (0..n).filter(|&i| owner_before(i) == 1) {
        short.put(key(i), value(i, 1)).await.unwrap();
    }
    for i in (0..n).filter(|&i| owner_before(i) == 2).take(3) {
        assert!(
            short.get(key(i)).await.is_err(),
            "key {i} was on the dead group"
        );
    }
    // Group 2 comes back: everything completes.
    c.group(2).restart_all();
    c.wait_settled(&[1, 2, 3], num, SETTLE).await;
    for i in 0..n {
        let round = usize::from(owner_before(i) == 1);
        assert_eq!(
            client.get(key(i)).await.unwrap(),
            Some(value(i, round)),
            "key {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moved_shards_are_garbage_collected() {
    let _serial = serial().await;
    let (c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3), (2, 3)])
        .join_only(&[1])
        .settled(SETTLE)
        .await;
    let client = c.client().await;
    // Incompressible, so that what is on disk is what was written.
    let big: Vec<u8> = (0..64 << 10).map(|_| rand::random::<u8>()).collect();
    for i in 0..200 {
        client.put(key(i), &big).await.unwrap();
    }
    let full: Vec<u64> = (0..3).map(|i| c.group_ref(1).state_bytes(i)).collect();
    assert!(full.iter().all(|&b| b > 10 << 20), "{full:?}");
    let num = c.join(&[2]).await;
    c.wait_settled(&[1, 2], num, SETTLE).await;
    let num = c.leave(&[1]).await;
    c.wait_settled(&[1, 2], num, SETTLE).await;
    // The moved shards' space is reclaimed (deleted, then compacted away; tables pinned by
    // readers at the time go on a second pass).
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let now: Vec<u64> = (0..3).map(|i| c.group_ref(1).state_bytes(i)).collect();
        if now.iter().zip(&full).all(|(n, f)| *n < f / 4) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "group 1 still holds {now:?} bytes (was {full:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..200 {
        assert_eq!(client.get(key(i)).await.unwrap().as_deref(), Some(&big[..]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_clear_errors() {
    let _serial = serial().await;
    let (c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3)])
        .settled(SETTLE)
        .await;
    let client = c.client().await;
    // The empty key is a key like any other.
    client.put(b"", b"empty").await.unwrap();
    assert_eq!(client.get(b"").await.unwrap(), Some(b"empty".to_vec()));
    let huge_key = vec![0u8; strata_rpc::MAX_KEY_BYTES + 1];
    match client.put(&huge_key, b"v").await {
        Err(KvError::InvalidArgument(m)) => {
            assert!(m.contains("MAX_KEY_BYTES") && m.contains("64512"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    let huge_value = vec![0u8; strata_rpc::MAX_VALUE_BYTES + 1];
    match client.put(b"k", &huge_value).await {
        Err(KvError::InvalidArgument(m)) => {
            assert!(
                m.contains("MAX_VALUE_BYTES") && m.contains("16646144"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Malformed session fields and a shard out of range, straight to a server.
    let address = c.group_ref(1).addresses()[0].clone();
    let mut kv = kv_client_at(&address).await;
    let status = kv
        .put(v1::PutRequest {
            header: Some(v1::RequestHeader {
                client_id: vec![1; 3],
                seq: 1,
                ..Default::default()
            }),
            key: b"k".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let status = kv
        .put(v1::PutRequest {
            header: Some(v1::RequestHeader {
                client_id: vec![1; 16],
                seq: 0,
                ..Default::default()
            }),
            key: b"k".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    match client.scan(Vec::new(), None).collect(10).await {
        Ok(entries) => assert_eq!(entries, vec![(b"".to_vec(), b"empty".to_vec())]),
        Err(e) => panic!("{e}"),
    }
    let status = loop {
        let s = kv
            .scan(v1::ScanRequest {
                shard: SHARDS as u32,
                ..Default::default()
            })
            .await
            .unwrap_err();
        if reason(&s) != ErrorReason::WrongLeader {
            break s;
        }
        let hint = error_detail(&s).unwrap().leader_hint.unwrap().address;
        kv = kv_client_at(&hint).await;
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("out of range"), "{status:?}");
    // The servers are still fine.
    assert_eq!(client.get(b"").await.unwrap(), Some(b"empty".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_session_expires_in_log_time_and_the_client_is_told() {
    let _serial = serial().await;
    let (c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .server_args(&["--session-timeout-ms", "500"])
        .groups(&[(1, 3)])
        .settled(SETTLE)
        .await;
    let idle = c.client().await;
    let busy = c.client().await;
    idle.put(key(0), b"1").await.unwrap();
    let first_id = idle.client_id();
    // Another client keeps the log moving for longer than the timeout.
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    let mut i = 1;
    while std::time::Instant::now() < until {
        busy.put(key(i % 20 + 1), b"x").await.unwrap();
        i += 1;
    }
    // The idle client's session is gone: its next mutation on that shard is refused rather
    // than risk applying it twice, and the client goes on under a new id.
    assert_eq!(idle.put(key(0), b"2").await, Err(KvError::SessionExpired));
    assert_ne!(idle.client_id(), first_id);
    idle.put(key(0), b"3").await.unwrap();
    assert_eq!(idle.get(key(0)).await.unwrap(), Some(b"3".to_vec()));
}

/// Issue 12, cases 1 to 3 and what follows from them: requests at the documented limits used
/// to take a group down for good (a 65,536-byte key aborted every replica on apply, and again
/// on every restart; a 16 MiB value stopped the Paxos storage; a 9 MiB Put was dropped by the
/// peer queues forever). Now every request at a limit is served, every request past one is
/// refused before the log with INVALID_ARGUMENT naming the limit, what only the state can
/// refuse (an Append that would outgrow the value limit) is refused alike by every replica,
/// and afterwards the three replicas are up and serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_at_and_past_every_limit_never_stop_a_group() {
    use strata_rpc::{MAX_COMMAND_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES};
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3)])
        .settled(SETTLE)
        .await;
    let client = c
        .client_with(ClientOptions {
            request_timeout: Duration::from_secs(60),
            ..ClientOptions::default()
        })
        .await;
    let refused = |r, limit| assert_refused_naming(r, limit, limit);

    // Keys: the largest is served; the old documented maximum is refused at the edge.
    let max_key = vec![b'k'; MAX_KEY_BYTES];
    client.put(&max_key, b"at the key limit").await.unwrap();
    refused(client.put(vec![b'k'; 65_536], b"v").await, "MAX_KEY_BYTES");

    // Values: the largest commits and reads back whole; one byte more is refused.
    let max_value: Vec<u8> = (0..MAX_VALUE_BYTES).map(|i| (i % 251) as u8).collect();
    client.put(b"big", &max_value).await.unwrap();
    refused(
        client.put(b"big2", vec![0; MAX_VALUE_BYTES + 1]).await,
        "MAX_VALUE_BYTES",
    );
    // A 9 MiB value: above a peer queue's byte bound, so it once never reached a follower.
    let nine = vec![9u8; 9 << 20];
    client.put(b"nine", &nine).await.unwrap();
    // A CompareAndSwap whose two values together exceed one command.
    let half = vec![1u8; MAX_COMMAND_BYTES / 2 + 1];
    refused(
        client
            .compare_and_swap(b"cas", Some(&half), Some(&half))
            .await
            .map(|_| ()),
        "MAX_COMMAND_BYTES",
    );
    // Only the state knows that this Append would outgrow the value limit: every replica
    // refuses it alike, and the log moves on.
    refused(
        client.append(b"big", b"one byte too many").await,
        "MAX_VALUE_BYTES",
    );
    // A CAS that fails against a large value: its dedup record must not hold the value.
    for _ in 0..3 {
        let r = client
            .compare_and_swap(b"big", Some(b"not it"), Some(b"new"))
            .await
            .unwrap();
        assert!(!r.swapped);
    }

    // Afterwards: every replica is up, and the group serves reads and writes.
    client.put(b"after", b"still here").await.unwrap();
    assert_eq!(
        client.get(&max_key).await.unwrap().as_deref(),
        Some(&b"at the key limit"[..])
    );
    assert_eq!(client.get(b"big").await.unwrap(), Some(max_value));
    assert_eq!(client.get(b"nine").await.unwrap(), Some(nine));
    assert_eq!(
        client.get(b"after").await.unwrap().as_deref(),
        Some(&b"still here"[..])
    );
    for i in 0..3 {
        assert!(
            c.group(1).replica(i).is_running(),
            "replica {i} stopped:\n{}",
            c.logs()
        );
    }
    // Every replica applied everything: a restarted group replays the log without stopping.
    c.group(1).kill_all();
    c.group(1).restart_all();
    assert_eq!(
        client.get(b"after").await.unwrap().as_deref(),
        Some(&b"still here"[..])
    );
    for i in 0..3 {
        assert!(
            c.group(1).replica(i).is_running(),
            "replica {i} stopped after restart"
        );
    }
}

/// Issue 12, case 7: thousands of connections that never speak once exhausted a server's open
/// files and kept real clients out. Now they are closed at the handshake deadline or evicted
/// when the connection limit is reached, and the group keeps serving real clients meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_idle_connections_never_keeps_clients_out() {
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .server_args(&["--max-connections", "64"])
        .groups(&[(1, 3)])
        .settled(SETTLE)
        .await;
    let client = c.client().await;
    client.put(b"before", b"flood").await.unwrap();
    // The common default soft limit, whatever this machine's is: 1,500 connections per
    // replica would exhaust it without admission.
    for i in 0..3 {
        let pid = c.group(1).replica(i).pid().expect("running") as libc::pid_t;
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit writes the current limit into `old`, which we own.
        let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
        let limit = libc::rlimit {
            rlim_cur: 1024.min(old.rlim_max),
            rlim_max: old.rlim_max,
        };
        // SAFETY: prlimit reads one rlimit we own and writes nothing (old limit pointer null).
        let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    }
    let mut flood = Vec::new();
    for address in c.group_ref(1).addresses() {
        for _ in 0..1500 {
            flood.push(tokio::net::TcpStream::connect(&address).await.unwrap());
        }
    }
    // A fresh client (new connections to every replica) is served while the flood stands.
    let fresh = c.client_with(short_client()).await;
    for i in 0..20 {
        fresh.put(key(i), value(i, 0)).await.unwrap();
        assert_eq!(fresh.get(key(i)).await.unwrap(), Some(value(i, 0)));
    }
    assert_eq!(
        client.get(b"before").await.unwrap().as_deref(),
        Some(&b"flood"[..])
    );
    for i in 0..3 {
        assert!(c.group(1).replica(i).is_running(), "replica {i} stopped");
    }
    drop(flood);
}

/// Issue 12, case 5: a Join naming servers that do not exist (or that belong to another
/// group) used to be accepted, and the shards given to that group stayed frozen on their old
/// owner for good. The master now asks the servers first: a majority of each joining group's
/// servers must answer `NodeStatus` as members of that group.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_of_servers_that_do_not_answer_as_the_group_is_refused() {
    let _serial = serial().await;
    let (c, num) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3)])
        .settled(SETTLE)
        .await;
    let master = c.master();
    let nobody = free_addresses(3);
    match master.join([(2, nobody)].into()).await {
        Err(strata_client::ClientError::InvalidArgument(m)) => {
            assert!(m.contains("only 0 of the 3 servers of group 2"), "{m}")
        }
        other => panic!("a join of absent servers: {other:?}"),
    }
    match master.join([(2, c.group_ref(1).addresses())].into()).await {
        Err(strata_client::ClientError::InvalidArgument(m)) => {
            assert!(m.contains("is a replica of group 1, not of group 2"), "{m}")
        }
        other => panic!("a join of another group's servers: {other:?}"),
    }
    // Nothing was created: group 1 still owns every shard and serves.
    let latest = master.query(None).await.unwrap();
    assert_eq!(latest.num, num);
    let client = c.client().await;
    client.put(b"k", b"v").await.unwrap();
}

/// Issue 12, case 5: shards given to groups that never take them (one whose servers do not
/// exist, one whose servers are all stopped) come back to their previous owner once those
/// groups are made to leave; the stopped group, resumed, abandons its installs and moves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shards_of_groups_that_never_took_them_come_back_when_the_groups_leave() {
    let _serial = serial().await;
    let (mut c, _) = ShardCluster::setup(BIN, SHARDS, 20)
        .groups(&[(1, 3), (2, 3)])
        .join_only(&[1])
        .settled(SETTLE)
        .await;
    let client = c.client().await;
    put_values(&client, 40).await;
    for i in 0..3 {
        c.group(2).replica(i).pause();
    }
    let nobody = free_addresses(3);
    let master = c.master();
    let joined = master
        .join_unchecked([(2, c.group_ref(2).addresses()), (3, nobody)].into())
        .await
        .unwrap();
    // Group 1 holds what it gave away, frozen.
    let leaving = |s: &v1::ShardsResponse| {
        (s.shards.iter())
            .filter(|&&st| st == v1::ShardState::Leaving as i32)
            .count()
    };
    let until = std::time::Instant::now() + SETTLE;
    loop {
        let s = c.group_ref(1).shards(0).await;
        if s.as_ref()
            .is_some_and(|s| s.config_num == joined && leaving(s) > 0)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "group 1 never froze shards: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = c.leave(&[2, 3]).await;
    c.wait_settled(&[1], left, SETTLE).await;
    for i in 0..40 {
        assert_eq!(
            client.get(key(i)).await.unwrap(),
            Some(value(i, 0)),
            "key {i}"
        );
        client.put(key(i), value(i, 1)).await.unwrap();
    }
    let logs = c.group_ref(1).logs();
    assert!(logs.contains("taking back a shard"), "{logs}");
    // The stopped group wakes up: it cannot have the shards; it gives up their installs and
    // follows the configurations, owning nothing.
    for i in 0..3 {
        c.group(2).replica(i).resume();
    }
    c.wait_settled(&[2], left, SETTLE).await;
    let logs = c.group_ref(2).logs();
    assert!(logs.contains("abandoning the install"), "{logs}");
    for i in 0..3 {
        if let Some(s) = c.group_ref(2).shards(i).await {
            assert!(
                s.shards
                    .iter()
                    .all(|&st| st == v1::ShardState::Absent as i32),
                "{s:?}"
            );
        }
    }
    assert_values(&client, 40, 1).await;
}
