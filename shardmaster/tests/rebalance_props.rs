//! Property tests of the rebalancer and the configuration history, in the spirit of 6.824's
//! shardctrler `check()`: random sequences of joins, leaves, moves, queries and retries, with
//! N in {1, 10, 64, 1000} and up to 100 groups (so often more groups than shards).
//!
//! After every operation: config numbers are consecutive and old configs never change; every
//! shard belongs to a live group whenever there is one. After every Join/Leave: balance
//! (⌊N/G⌋ or ⌈N/G⌉ shards per group) and minimality (the number of shards that changed owner
//! equals a lower bound derived here independently of the implementation). Determinism: a
//! second state fed the same operations built from shuffled inputs and sent through
//! encode/decode, and a third restored from a snapshot mid-way, end identical.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::Index;
use strata_paxos::sim::SimRng;
use strata_shardmaster::{rebalance, Config, Gid, MasterState, Op, OpError, Reply, UNASSIGNED};

const MAX_GROUPS: usize = 100;
const GID_POOL: u64 = 140;

#[derive(Debug, Clone)]
enum Action {
    /// Join these gids (those not members yet, up to the group cap); a Join of a member
    /// when none is left.
    Join {
        gids: Vec<u64>,
        shuffle: u64,
    },
    /// Leave the live groups these indexes pick.
    Leave {
        picks: Vec<Index>,
        shuffle: u64,
    },
    Move {
        shard: Index,
        group: Index,
    },
    MoveOutOfRange,
    /// New servers for the group this index picks (a membership change); an unknown gid
    /// when there is none.
    SetServers(Index),
    Query(Option<u64>),
    /// Send the previous request again with the same seq.
    Retry,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (prop::collection::vec(1..=GID_POOL, 1..25), any::<u64>())
            .prop_map(|(gids, shuffle)| Action::Join { gids, shuffle }),
        3 => (prop::collection::vec(any::<Index>(), 1..12), any::<u64>())
            .prop_map(|(picks, shuffle)| Action::Leave { picks, shuffle }),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(shard, group)| Action::Move { shard, group }),
        1 => any::<Index>().prop_map(Action::SetServers),
        1 => Just(Action::MoveOutOfRange),
        1 => prop::option::of(0..40u64).prop_map(Action::Query),
        1 => Just(Action::Retry),
    ]
}

fn servers(gid: Gid) -> Vec<String> {
    vec![format!("g{gid}-a:7000"), format!("g{gid}-b:7000")]
}

/// A deterministic shuffle, so a failing case replays.
fn shuffled<T>(mut items: Vec<T>, seed: u64) -> Vec<T> {
    SimRng::new(seed).shuffle(&mut items);
    items
}

/// The fewest shards that can change owner when going from `old` to any balanced assignment
/// over `live`, derived without the rebalancer: with base = ⌊N/G⌋ and N mod G groups allowed
/// base + 1, a live group can keep at most min(owned, its target) of its shards, and the
/// base + 1 targets are worth one extra kept shard only to groups owning more than base.
fn min_moves(old: &[Gid], live: &BTreeSet<Gid>) -> usize {
    let n = old.len();
    if live.is_empty() {
        return old.iter().filter(|&&g| g != UNASSIGNED).count();
    }
    let (base, larger) = (n / live.len(), n % live.len());
    let owned = |g: Gid| old.iter().filter(|&&o| o == g).count();
    let counts: Vec<usize> = live.iter().map(|&g| owned(g)).collect();
    let kept: usize = counts.iter().map(|&c| c.min(base)).sum::<usize>()
        + larger.min(counts.iter().filter(|&&c| c > base).count());
    n - kept
}

fn moved(old: &[Gid], new: &[Gid]) -> usize {
    old.iter().zip(new).filter(|(a, b)| a != b).count()
}

/// Balance: with G groups, each owns ⌊N/G⌋ or ⌈N/G⌉ shards (so max − min ≤ 1); none when G = 0.
fn assert_balanced(shards: &[Gid], live: &BTreeSet<Gid>) {
    let n = shards.len();
    if live.is_empty() {
        assert!(
            shards.iter().all(|&g| g == UNASSIGNED),
            "no groups but assigned shards"
        );
        return;
    }
    let mut counts: BTreeMap<Gid, usize> = live.iter().map(|&g| (g, 0)).collect();
    for g in shards {
        *counts
            .get_mut(g)
            .expect("shard owned by a group that is not live") += 1;
    }
    let (floor, ceil) = (n / live.len(), n.div_ceil(live.len()));
    let max = counts.values().max().copied().unwrap_or(0);
    let min = counts.values().min().copied().unwrap_or(0);
    assert!(max - min <= 1, "unbalanced: max {max} min {min}");
    assert!(
        counts.values().all(|&c| c == floor || c == ceil),
        "counts {counts:?} not all in {{{floor}, {ceil}}}"
    );
}

/// Every shard belongs to a group of the config when there is one; config invariants.
fn assert_well_formed(config: &Config, num_shards: usize) {
    assert_eq!(config.shards.len(), num_shards);
    assert!(!config.groups.contains_key(&UNASSIGNED));
    if config.groups.is_empty() {
        assert!(config.shards.iter().all(|&g| g == UNASSIGNED));
    } else {
        assert!(config.shards.iter().all(|g| config.groups.contains_key(g)));
    }
}

/// The request an action turns into against the current state, and what must follow.
struct Request {
    canonical: Op,
    /// The same operation built from differently ordered inputs and sent through bytes.
    shuffled: Op,
}

fn build(action: &Action, latest: &Config) -> Option<Request> {
    let members: Vec<Gid> = latest.groups.keys().copied().collect();
    Some(match action {
        Action::Join { gids, shuffle } => {
            let room = MAX_GROUPS.saturating_sub(members.len());
            let fresh: Vec<Gid> = gids
                .iter()
                .copied()
                .filter(|g| !latest.groups.contains_key(g))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .take(room)
                .collect();
            if fresh.is_empty() {
                // Every candidate is a member (or no room): a Join that must be refused.
                let gid = *members.first()?;
                let op = Op::join([(gid, servers(gid))]).unwrap();
                return Some(Request {
                    canonical: op.clone(),
                    shuffled: op,
                });
            }
            let pairs: Vec<(Gid, Vec<String>)> = fresh.iter().map(|&g| (g, servers(g))).collect();
            let canonical = Op::join(pairs.clone()).unwrap();
            let mut map = BTreeMap::new();
            for (g, s) in shuffled(pairs, *shuffle) {
                map.insert(g, s);
            }
            let shuffled_op = Op::decode(&Op::Join(map).encode()).unwrap();
            Request {
                canonical,
                shuffled: shuffled_op,
            }
        }
        Action::Leave { picks, shuffle } => {
            if members.is_empty() {
                let op = Op::Leave(vec![1]);
                return Some(Request {
                    canonical: op.clone(),
                    shuffled: op,
                });
            }
            let gids: BTreeSet<Gid> = picks.iter().map(|i| *i.get(&members)).collect();
            let gids: Vec<Gid> = gids.into_iter().collect();
            let shuffled_op =
                Op::decode(&Op::Leave(shuffled(gids.clone(), *shuffle)).encode()).unwrap();
            Request {
                canonical: Op::Leave(gids),
                shuffled: shuffled_op,
            }
        }
        Action::Move { shard, group } => {
            let shard = shard.index(latest.num_shards()) as u32;
            let gid = if members.is_empty() {
                5
            } else {
                *group.get(&members)
            };
            let op = Op::Move { shard, gid };
            Request {
                canonical: op.clone(),
                shuffled: Op::decode(&op.encode()).unwrap(),
            }
        }
        Action::SetServers(group) => {
            let gid = if members.is_empty() {
                7
            } else {
                *group.get(&members)
            };
            let servers = vec![format!("new-{gid}:1"), format!("new-{gid}:2")];
            let op = Op::SetServers([(gid, servers)].into());
            Request {
                canonical: op.clone(),
                shuffled: Op::decode(&op.encode()).unwrap(),
            }
        }
        Action::MoveOutOfRange => {
            let op = Op::Move {
                shard: latest.num_shards() as u32,
                gid: members.first().copied().unwrap_or(1),
            };
            Request {
                canonical: op.clone(),
                shuffled: op,
            }
        }
        Action::Query(num) => {
            let op = Op::Query(*num);
            Request {
                canonical: op.clone(),
                shuffled: Op::decode(&op.encode()).unwrap(),
            }
        }
        Action::Retry => return None,
    })
}

/// Checks what applying `op` to a state whose history was `before` must have produced.
fn check_step(before: &[Config], after: &[Config], op: &Op, reply: &Result<Reply, OpError>) {
    let num_shards = before[0].num_shards();
    // History is append-only: every old config is unchanged.
    assert_eq!(&after[..before.len()], before, "an old config changed");
    for (i, config) in after.iter().enumerate() {
        assert_eq!(config.num, i as u64, "config numbers are not consecutive");
    }
    let prev = before.last().unwrap();
    match reply {
        Err(_) => assert_eq!(after.len(), before.len(), "a refused op created a config"),
        Ok(Reply::Config(config)) => {
            let Op::Query(num) = op else {
                panic!("config reply to {op:?}")
            };
            assert_eq!(after.len(), before.len(), "a query created a config");
            let expected = num.map_or(prev.num, |n| n.min(prev.num));
            assert_eq!(config, &before[expected as usize]);
        }
        Ok(Reply::Created { num }) => {
            assert_eq!(after.len(), before.len() + 1);
            assert_eq!(*num, prev.num + 1);
            let next = after.last().unwrap();
            assert_well_formed(next, num_shards);
            match op {
                Op::Join(_) | Op::Leave(_) => {
                    let live: BTreeSet<Gid> = next.groups.keys().copied().collect();
                    match op {
                        Op::Join(joined) => {
                            let mut expected = (*prev.groups).clone();
                            expected.extend(joined.clone());
                            assert_eq!(*next.groups, expected);
                        }
                        Op::Leave(left) => {
                            let mut expected = (*prev.groups).clone();
                            expected.retain(|g, _| !left.contains(g));
                            assert_eq!(*next.groups, expected);
                        }
                        _ => unreachable!(),
                    }
                    assert_balanced(&next.shards, &live);
                    assert_eq!(
                        moved(&prev.shards, &next.shards),
                        min_moves(&prev.shards, &live),
                        "more shards moved than necessary"
                    );
                }
                Op::Move { shard, gid } => {
                    let mut expected = prev.shards.clone();
                    expected[*shard as usize] = *gid;
                    assert_eq!(next.shards, expected);
                    assert_eq!(next.groups, prev.groups);
                }
                Op::SetServers(lists) => {
                    let mut expected = (*prev.groups).clone();
                    expected.extend(lists.clone());
                    assert_eq!(*next.groups, expected);
                    assert_eq!(next.shards, prev.shards, "set-servers moved a shard");
                }
                Op::Query(_) => panic!("a query created a config"),
            }
        }
    }
}

fn run(num_shards: usize, actions: &[Action], restore_at: usize) {
    let (client_a, client_b) = (11u128, 22u128);
    let mut a = MasterState::new(num_shards).unwrap();
    let mut b = MasterState::new(num_shards).unwrap();
    let mut c: Option<MasterState> = None;
    let mut seq = 0u64;
    let mut last: Option<(Op, Op, Result<Reply, OpError>)> = None;
    for (step, action) in actions.iter().enumerate() {
        let before = a.configs().to_vec();
        match build(action, a.latest()) {
            Some(Request {
                canonical,
                shuffled,
            }) => {
                seq += 1;
                let reply = a.apply(client_a, seq, canonical.clone());
                check_step(&before, a.configs(), &canonical, &reply);
                let reply_b = b.apply(client_b, seq, shuffled.clone());
                assert_eq!(reply_b, reply, "shuffled inputs gave another reply");
                if let Some(c) = c.as_mut() {
                    assert_eq!(c.apply(client_a, seq, canonical.clone()), reply);
                }
                last = Some((canonical, shuffled, reply));
            }
            None => {
                // A retry: same seq, same reply, nothing applied again.
                if let Some((canonical, shuffled, reply)) = &last {
                    assert_eq!(&a.apply(client_a, seq, canonical.clone()), reply);
                    assert_eq!(&b.apply(client_b, seq, shuffled.clone()), reply);
                    if let Some(c) = c.as_mut() {
                        assert_eq!(&c.apply(client_a, seq, canonical.clone()), reply);
                    }
                    assert_eq!(a.configs(), &before[..], "a retry was applied again");
                }
            }
        }
        assert_eq!(
            a.configs(),
            b.configs(),
            "shuffled inputs gave other configs"
        );
        for config in a.configs() {
            assert_well_formed(config, num_shards);
        }
        if step == restore_at {
            c = Some(MasterState::restore(a.snapshot_chunks()).unwrap());
        }
    }
    if let Some(c) = c {
        assert_eq!(c, a, "a replica restored from a snapshot diverged");
    }
    assert_eq!(MasterState::restore(a.snapshot_chunks()).unwrap(), a);
}

fn num_shards() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), Just(10), Just(64), Just(1000)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn op_sequences_keep_configs_balanced_minimal_and_deterministic(
        n in num_shards(),
        actions in prop::collection::vec(action(), 1..60),
        restore_at in 0usize..60,
    ) {
        run(n, &actions, restore_at);
    }

    /// The rebalancer alone, from arbitrary (also unreachable) assignments: shards owned by
    /// departed groups, unassigned shards and lopsided groups mixed.
    #[test]
    fn rebalance_from_any_assignment_is_balanced_minimal_and_order_independent(
        n in num_shards(),
        owners in prop::collection::vec(0..30u64, 1..=8),
        picks in prop::collection::vec(any::<Index>(), 1000),
        live in prop::collection::vec(1..120u64, 0..=MAX_GROUPS),
        seed in any::<u64>(),
    ) {
        let old: Vec<Gid> = (0..n).map(|s| *picks[s].get(&owners)).collect();
        let live_set: BTreeSet<Gid> = live.iter().copied().collect();
        let next = rebalance(&old, live.iter().copied());
        assert_balanced(&next, &live_set);
        prop_assert_eq!(moved(&old, &next), min_moves(&old, &live_set));
        prop_assert_eq!(rebalance(&old, shuffled(live.clone(), seed)), next.clone());
        // Already balanced: a second pass moves nothing.
        prop_assert_eq!(rebalance(&next, live_set.iter().copied()), next);
    }
}

/// More groups than shards, joined one at a time and then leaving one at a time: while at
/// least N groups remain each step moves at most one shard, and every step is minimal.
#[test]
fn more_groups_than_shards_join_and_leave_one_at_a_time() {
    let mut master = MasterState::new(10).unwrap();
    let mut seq = 0;
    for gid in 1..=40u64 {
        seq += 1;
        let before = master.configs().to_vec();
        let op = Op::join([(gid, servers(gid))]).unwrap();
        let reply = master.apply(1, seq, op.clone());
        check_step(&before, master.configs(), &op, &reply);
    }
    for gid in (1..=40u64).rev() {
        seq += 1;
        let before = master.configs().to_vec();
        let op = Op::Leave(vec![gid]);
        let reply = master.apply(1, seq, op.clone());
        check_step(&before, master.configs(), &op, &reply);
        if master.latest().groups.len() >= 10 {
            assert!(moved(&before.last().unwrap().shards, &master.latest().shards) <= 1);
        }
    }
    assert_eq!(master.latest().shards, vec![UNASSIGNED; 10]);
}
