//! One test per operation and per error of `MasterState::apply`.

use std::collections::BTreeMap;

use strata_shardmaster::{
    Config, InvalidShardCount, MasterState, Op, OpError, Reply, DEFAULT_NUM_SHARDS, UNASSIGNED,
};

const CLIENT: u128 = 0xabcd;

fn servers(gid: u64) -> Vec<String> {
    vec![format!("10.0.0.{gid}:7000"), format!("10.0.1.{gid}:7000")]
}

fn join(gids: &[u64]) -> Op {
    Op::join(gids.iter().map(|&g| (g, servers(g)))).unwrap()
}

/// A state with `gids` joined one Join at a time, client seqs 1.. used.
fn state_with(num_shards: usize, gids: &[u64]) -> (MasterState, u64) {
    let mut master = MasterState::new(num_shards).unwrap();
    let mut seq = 0;
    for &gid in gids {
        seq += 1;
        master.apply(CLIENT, seq, join(&[gid])).unwrap();
    }
    (master, seq)
}

/// Applies an op that must be refused with `expected`, and checks nothing changed but the
/// client's session.
fn assert_refused(master: &mut MasterState, seq: u64, op: Op, expected: OpError) {
    let before = master.configs().to_vec();
    assert_eq!(master.apply(CLIENT, seq, op), Err(expected));
    assert_eq!(master.configs(), &before[..]);
}

#[test]
fn new_state_holds_config_zero() {
    let master = MasterState::new(16).unwrap();
    assert_eq!(master.configs(), &[Config::initial(16)]);
    assert_eq!(master.num_shards(), 16);
    assert_eq!(MasterState::default().num_shards(), DEFAULT_NUM_SHARDS);
    assert_eq!(MasterState::new(0), Err(InvalidShardCount(0)));
    assert_eq!(MasterState::new(65_537), Err(InvalidShardCount(65_537)));
    assert_eq!(MasterState::new(4096).unwrap().num_shards(), 4096);
}

#[test]
fn join_creates_a_balanced_config() {
    let mut master = MasterState::new(10).unwrap();
    assert_eq!(
        master.apply(CLIENT, 1, join(&[1])),
        Ok(Reply::Created { num: 1 })
    );
    assert_eq!(master.latest().shards, vec![1; 10]);
    assert_eq!(*master.latest().groups, BTreeMap::from([(1, servers(1))]));
    assert_eq!(
        master.apply(CLIENT, 2, join(&[2, 3])),
        Ok(Reply::Created { num: 2 })
    );
    let counts = master.latest().shard_counts();
    assert_eq!(counts, BTreeMap::from([(1, 4), (2, 3), (3, 3)]));
    // Group 1 keeps its lowest shards; the others fill in ascending gid order.
    assert_eq!(master.latest().shards, vec![1, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
}

#[test]
fn leave_redistributes_the_departed_groups_shards() {
    let (mut master, seq) = state_with(10, &[1, 2, 3]);
    let before = master.latest().clone();
    assert_eq!(
        master.apply(CLIENT, seq + 1, Op::Leave(vec![2])),
        Ok(Reply::Created { num: 4 })
    );
    let after = master.latest();
    assert!(!after.groups.contains_key(&2));
    assert_eq!(
        after.shard_counts().values().copied().collect::<Vec<_>>(),
        vec![5, 5]
    );
    let moved = before
        .shards
        .iter()
        .zip(&after.shards)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(moved, before.shard_counts()[&2]);
}

#[test]
fn leaving_all_groups_unassigns_every_shard() {
    let (mut master, seq) = state_with(8, &[1, 2]);
    master
        .apply(CLIENT, seq + 1, Op::Leave(vec![2, 1]))
        .unwrap();
    assert!(master.latest().groups.is_empty());
    assert_eq!(master.latest().shards, vec![UNASSIGNED; 8]);
    // A group joining later takes everything again.
    master.apply(CLIENT, seq + 2, join(&[7])).unwrap();
    assert_eq!(master.latest().shards, vec![7; 8]);
}

#[test]
fn move_reassigns_one_shard_and_pins_nothing() {
    let (mut master, seq) = state_with(10, &[1, 2]);
    let before = master.latest().clone();
    assert_eq!(before.owner(0), 1);
    assert_eq!(
        master.apply(CLIENT, seq + 1, Op::Move { shard: 0, gid: 2 }),
        Ok(Reply::Created { num: 3 })
    );
    let after = master.latest().clone();
    assert_eq!(after.owner(0), 2);
    assert_eq!(after.groups, before.groups);
    let moved = before
        .shards
        .iter()
        .zip(&after.shards)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(moved, 1);
    // The next Join rebalances from the moved assignment: group 2 now owns the most (6), so
    // it keeps 4 of 10, group 1 keeps 3 and group 3 gets 3 — shard 0 stays with group 2 here,
    // but the assignment is balanced again, which Move never promised to preserve.
    master.apply(CLIENT, seq + 2, join(&[3])).unwrap();
    let counts = master.latest().shard_counts();
    assert_eq!(counts, BTreeMap::from([(1, 3), (2, 4), (3, 3)]));
}

#[test]
fn move_to_the_current_owner_still_creates_a_config() {
    let (mut master, seq) = state_with(4, &[1]);
    assert_eq!(
        master.apply(CLIENT, seq + 1, Op::Move { shard: 3, gid: 1 }),
        Ok(Reply::Created { num: 2 })
    );
    assert_eq!(master.configs()[2].shards, master.configs()[1].shards);
}

#[test]
fn query_returns_the_asked_latest_or_beyond_latest_config() {
    let (mut master, seq) = state_with(6, &[1, 2]);
    let configs = master.configs().to_vec();
    assert_eq!(
        master.apply(CLIENT, seq + 1, Op::Query(Some(0))),
        Ok(Reply::Config(configs[0].clone()))
    );
    assert_eq!(
        master.apply(CLIENT, seq + 2, Op::Query(Some(1))),
        Ok(Reply::Config(configs[1].clone()))
    );
    assert_eq!(
        master.apply(CLIENT, seq + 3, Op::Query(None)),
        Ok(Reply::Config(configs[2].clone()))
    );
    assert_eq!(
        master.apply(CLIENT, seq + 4, Op::Query(Some(3))),
        Ok(Reply::Config(configs[2].clone()))
    );
    assert_eq!(
        master.apply(CLIENT, seq + 5, Op::Query(Some(u64::MAX))),
        Ok(Reply::Config(configs[2].clone()))
    );
    assert_eq!(master.configs(), &configs[..]);
    assert_eq!(master.query(Some(1)).as_deref(), Some(&configs[1]));
    assert_eq!(master.config(3), None);
}

#[test]
fn join_errors() {
    let (mut master, seq) = state_with(10, &[1]);
    assert_refused(
        &mut master,
        seq + 1,
        join(&[2, 1]),
        OpError::AlreadyJoined(1),
    );
    assert_refused(&mut master, seq + 2, join(&[0]), OpError::ReservedGid);
    assert_refused(
        &mut master,
        seq + 3,
        Op::Join(BTreeMap::from([(5, vec![])])),
        OpError::EmptyServerList(5),
    );
    assert_refused(
        &mut master,
        seq + 4,
        Op::Join(BTreeMap::from([(5, vec!["a:1".into(), String::new()])])),
        OpError::EmptyServerAddress(5),
    );
    assert_refused(
        &mut master,
        seq + 5,
        Op::Join(BTreeMap::new()),
        OpError::NoGroups,
    );
    assert_eq!(
        Op::join([(4, servers(4)), (4, servers(4))]),
        Err(OpError::DuplicateGid(4))
    );
}

#[test]
fn leave_errors() {
    let (mut master, seq) = state_with(10, &[1, 2]);
    assert_refused(
        &mut master,
        seq + 1,
        Op::Leave(vec![1, 3]),
        OpError::UnknownGroup(3),
    );
    assert_refused(
        &mut master,
        seq + 2,
        Op::Leave(vec![2, 2]),
        OpError::DuplicateGid(2),
    );
    assert_refused(
        &mut master,
        seq + 3,
        Op::Leave(vec![0]),
        OpError::ReservedGid,
    );
    assert_refused(&mut master, seq + 4, Op::Leave(vec![]), OpError::NoGroups);
}

#[test]
fn move_errors() {
    let (mut master, seq) = state_with(10, &[1]);
    assert_refused(
        &mut master,
        seq + 1,
        Op::Move { shard: 10, gid: 1 },
        OpError::ShardOutOfRange {
            shard: 10,
            num_shards: 10,
        },
    );
    assert_refused(
        &mut master,
        seq + 2,
        Op::Move { shard: 0, gid: 2 },
        OpError::UnknownGroup(2),
    );
    assert_refused(
        &mut master,
        seq + 3,
        Op::Move { shard: 0, gid: 0 },
        OpError::ReservedGid,
    );
    // A group that left is unknown too.
    master.apply(CLIENT, seq + 4, join(&[2])).unwrap();
    master.apply(CLIENT, seq + 5, Op::Leave(vec![2])).unwrap();
    assert_refused(
        &mut master,
        seq + 6,
        Op::Move { shard: 0, gid: 2 },
        OpError::UnknownGroup(2),
    );
}

#[test]
fn a_retried_request_is_applied_once() {
    let mut master = MasterState::new(10).unwrap();
    assert_eq!(
        master.apply(CLIENT, 7, join(&[1])),
        Ok(Reply::Created { num: 1 })
    );
    // The retry carries the same seq (even a different op body is not re-applied).
    assert_eq!(
        master.apply(CLIENT, 7, join(&[1])),
        Ok(Reply::Created { num: 1 })
    );
    assert_eq!(
        master.apply(CLIENT, 7, join(&[2])),
        Ok(Reply::Created { num: 1 })
    );
    assert_eq!(master.configs().len(), 2);
    // Another client's seq 7 is its own.
    assert_eq!(
        master.apply(CLIENT + 1, 7, join(&[2])),
        Ok(Reply::Created { num: 2 })
    );
    assert_eq!(master.configs().len(), 3);
}

#[test]
fn a_retried_query_returns_the_config_it_first_returned() {
    let mut master = MasterState::new(4).unwrap();
    master.apply(CLIENT, 1, join(&[1])).unwrap();
    let first = master.apply(CLIENT, 2, Op::Query(None)).unwrap();
    master.apply(CLIENT + 1, 1, join(&[2])).unwrap();
    assert_eq!(master.apply(CLIENT, 2, Op::Query(None)), Ok(first));
    assert_eq!(master.sessions()[&CLIENT].seq, 2);
}

#[test]
fn a_retried_refused_request_gets_the_same_error() {
    let mut master = MasterState::new(4).unwrap();
    assert_eq!(
        master.apply(CLIENT, 1, Op::Move { shard: 0, gid: 1 }),
        Err(OpError::UnknownGroup(1))
    );
    master.apply(CLIENT + 1, 1, join(&[1])).unwrap();
    // Group 1 exists now, but the request was already answered: not applied a second time.
    assert_eq!(
        master.apply(CLIENT, 1, Op::Move { shard: 0, gid: 1 }),
        Err(OpError::UnknownGroup(1))
    );
    assert_eq!(master.configs().len(), 2);
}

#[test]
fn a_stale_request_is_refused_and_changes_nothing() {
    let mut master = MasterState::new(4).unwrap();
    master.apply(CLIENT, 5, join(&[1])).unwrap();
    let before = master.clone();
    assert_eq!(
        master.apply(CLIENT, 4, join(&[2])),
        Err(OpError::StaleRequest {
            client_id: CLIENT,
            seq: 4,
            latest: 5
        })
    );
    assert_eq!(master, before);
    // The latest reply is still there.
    assert_eq!(
        master.apply(CLIENT, 5, join(&[2])),
        Ok(Reply::Created { num: 1 })
    );
}

#[test]
fn seq_numbers_may_skip() {
    let mut master = MasterState::new(4).unwrap();
    master.apply(CLIENT, 1, join(&[1])).unwrap();
    assert_eq!(
        master.apply(CLIENT, 100, join(&[2])),
        Ok(Reply::Created { num: 2 })
    );
}

#[test]
fn large_clusters_work() {
    let mut master = MasterState::new(4096).unwrap();
    master
        .apply(
            CLIENT,
            1,
            Op::join((1..=100).map(|g| (g, servers(g)))).unwrap(),
        )
        .unwrap();
    let counts = master.latest().shard_counts();
    assert!(counts.values().all(|&c| c == 40 || c == 41));
    assert_eq!(counts.values().filter(|&&c| c == 41).count(), 96);
}

/// Issue 12, case 6: a configuration's group map (the servers' addresses, up to a few MB) is
/// shared by every configuration that has the same groups, live and after a snapshot restore,
/// so a history of Moves costs a shard vector per configuration, not a copy of the addresses.
#[test]
fn configurations_with_the_same_groups_share_one_group_map() {
    let (mut master, mut seq) = state_with(16, &[1, 2, 3]);
    for shard in 0..30u32 {
        seq += 1;
        let op = Op::Move {
            shard: shard % 16,
            gid: u64::from(shard % 3) + 1,
        };
        master.apply(CLIENT, seq, op).unwrap();
    }
    let shared = |configs: &[Config]| {
        let last = configs.last().unwrap();
        configs
            .iter()
            .filter(|c| std::sync::Arc::ptr_eq(&c.groups, &last.groups))
            .count()
    };
    // Config 3 (the last Join) and the 30 Moves after it.
    assert_eq!(shared(master.configs()), 31);
    let restored = MasterState::restore(master.snapshot_chunks()).unwrap();
    assert_eq!(restored, master);
    assert_eq!(shared(restored.configs()), 31);
    // A Join or Leave makes a new map; the older configurations keep theirs.
    seq += 1;
    master.apply(CLIENT, seq, join(&[4])).unwrap();
    assert_eq!(shared(master.configs()), 1);
    assert_eq!(master.configs()[33].groups.len(), 3);
}
