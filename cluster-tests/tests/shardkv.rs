//! Shard servers and the routing client over real processes: the classic shard-KV cases.

use std::time::Duration;

use strata_client::{ClientOptions, KvError};
use strata_cluster_tests::{serial, ShardCluster};
use strata_rpc::error::{error_detail, reason};
use strata_rpc::v1::{self, ErrorReason};
use strata_rpc::shard_for_key;

const BIN: &str = env!("CARGO_BIN_EXE_strata-cluster");
const SHARDS: usize = 10;
const SETTLE: Duration = Duration::from_secs(30);

fn key(i: usize) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

fn value(i: usize, round: usize) -> Vec<u8> {
    format!("value-{i}-{round}").into_bytes()
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
    let mut c = ShardCluster::start(BIN, SHARDS, 20);
    c.add_group(1, 3);
    c.add_group(2, 3);
    let num = c.join(&[1, 2]).await;
    c.wait_settled(&[1, 2], num, SETTLE).await;
    let client = c.client().await;
    for i in 0..40 {
        client.put(key(i), value(i, 0)).await.unwrap();
    }
    for i in 0..40 {
        assert_eq!(client.get(key(i)).await.unwrap(), Some(value(i, 0)));
    }
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
    let mut c = ShardCluster::start(BIN, SHARDS, 20);
    c.add_group(1, 3);
    c.add_group(2, 3);
    let num = c.join(&[1, 2]).await;
    c.wait_settled(&[1, 2], num, SETTLE).await;
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
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut kv = strata_rpc::limits::kv_client(channel);
        let put = kv
            .put(v1::PutRequest {
                client_id: vec![7; 16],
                seq: 1,
                first_incomplete_seq: 1,
                key: foreign.clone(),
                value: b"x".to_vec(),
                opens_session: true,
                ..Default::default()
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
    let mut c = ShardCluster::start(BIN, SHARDS, 20);
    c.add_group(1, 3);
    let num = c.join(&[1]).await;
    c.wait_settled(&[1], num, SETTLE).await;
    let client = c.client().await;
    let n = 60;
    for i in 0..n {
        client.put(key(i), value(i, 0)).await.unwrap();
    }
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
        assert_eq!(client.get(key(i)).await.unwrap(), Some(expect(i)), "key {i}");
    }
    let num = c.leave(&[1]).await;
    c.wait_settled(&[1, 2, 3], num, SETTLE).await;
    // Group 1 holds nothing any more: it can be shut down safely.
    for i in 0..3 {
        let s = c.group_ref(1).shards(i).await.unwrap();
        assert!(
            s.shards.iter().all(|&st| st == v1::ShardState::Absent as i32),
            "{s:?}"
        );
    }
    c.group(1).kill_all();
    let scanned = client.scan(Vec::new(), None).collect(usize::MAX).await.unwrap();
    let mut expected: Vec<(Vec<u8>, Vec<u8>)> = (0..n).map(|i| (key(i), expect(i))).collect();
    expected.sort();
    assert_eq!(scanned, expected, "an ordered scan over every shard");
}
