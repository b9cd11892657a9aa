//! Admission at every limit, over a real replica group (issue 12): a seeded random sequence
//! of requests at, just below and just above each limit of `strata_rpc::limits` — keys,
//! values, an Append that reaches or passes the value limit, CompareAndSwaps whose two values
//! straddle the command limit, Deletes, and requests a client library would never send
//! (malformed session fields) — mixed with ordinary writes and a leader kill. Every request
//! gets the outcome the table says (served, or INVALID_ARGUMENT naming the limit); afterwards
//! every replica is up, every acknowledged write is readable through any two of the three
//! replicas, and all three applied the same log.
//!
//! `STRATA_LIMITS_SEED=n` picks the seed (default: two fixed seeds); a failure names its seed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strata_client::ClientOptions;
use strata_cluster_tests::shards::{assert_refused_naming, kv_client_at};
use strata_cluster_tests::{serial, ShardCluster};
use strata_rpc::v1;
use strata_rpc::{MAX_COMMAND_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES};

const BIN: &str = env!("CARGO_BIN_EXE_strata-cluster");
const SHARDS: usize = 4;
const SETTLE: Duration = Duration::from_secs(60);
const OPS: usize = 48;

/// xorshift64*: the sequence of a seed, with no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// A key of `len` bytes, distinct per `tag` (the tag is at the front so that long keys of
/// different tags differ early).
fn key(tag: u64, len: usize) -> Vec<u8> {
    let mut k = format!("k{tag:06}-").into_bytes();
    k.resize(len.max(k.len()), b'.');
    k.truncate(len.max(8));
    k
}

fn value(tag: u64, len: usize) -> Vec<u8> {
    let mut v = vec![(tag % 251) as u8; len];
    for (i, b) in tag.to_le_bytes().iter().enumerate().take(len) {
        v[i] = *b;
    }
    v
}

/// What the table says a request gets.
#[derive(Debug, PartialEq)]
enum Expect {
    Served,
    Refused(&'static str),
}

async fn run(seed: u64) {
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
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut big_values = 0;
    let mut killed: Option<usize> = None;
    for op in 0..OPS {
        let what = format!("seed {seed} op {op}");
        if op == OPS / 3 {
            // Kill whoever leads; bring it back two thirds of the way through.
            let mut leader = None;
            for i in 0..3 {
                if c.group_ref(1)
                    .status(i)
                    .await
                    .is_some_and(|s| s.role() == v1::Role::Leader)
                {
                    leader = Some(i);
                }
            }
            let leader = leader.unwrap_or(0);
            c.group(1).kill(leader);
            killed = Some(leader);
        }
        if op == 2 * OPS / 3 {
            if let Some(i) = killed.take() {
                c.group(1).restart(i);
            }
        }
        let tag = op as u64;
        // Large values are costly to move: at most a handful per run.
        let value_lens: &[usize] = if big_values < 6 {
            &[
                0,
                1,
                100,
                MAX_VALUE_BYTES - 1,
                MAX_VALUE_BYTES,
                MAX_VALUE_BYTES + 1,
            ]
        } else {
            &[0, 1, 100]
        };
        match rng.below(6) {
            0 | 1 => {
                let klen = rng.pick(&[1, 16, MAX_KEY_BYTES - 1, MAX_KEY_BYTES, MAX_KEY_BYTES + 1]);
                let vlen = rng.pick(value_lens);
                big_values += usize::from(vlen > 1 << 20);
                let (k, v) = (key(tag, klen), value(tag, vlen));
                let expect = if klen > MAX_KEY_BYTES {
                    Expect::Refused("MAX_KEY_BYTES")
                } else if vlen > MAX_VALUE_BYTES {
                    Expect::Refused("MAX_VALUE_BYTES")
                } else {
                    Expect::Served
                };
                let r = client.put(&k, &v).await;
                match expect {
                    Expect::Served => {
                        r.unwrap_or_else(|e| panic!("{what}: put {klen}/{vlen}: {e}"));
                        model.insert(k, v);
                    }
                    Expect::Refused(limit) => assert_refused_naming(r, limit, &what),
                }
            }
            2 => {
                // An Append to an existing key that lands just below, at or just past the
                // value limit: only the state can tell.
                let Some((k, current)) = model
                    .iter()
                    .find(|(_, v)| v.len() >= MAX_VALUE_BYTES - 8)
                    .map(|(k, v)| (k.clone(), v.clone()))
                else {
                    let (k, v) = (key(tag, 24), value(tag, MAX_VALUE_BYTES - 4));
                    big_values += 1;
                    client.put(&k, &v).await.unwrap();
                    model.insert(k, v);
                    continue;
                };
                let room = MAX_VALUE_BYTES - current.len();
                let add = rng.pick(&[room.saturating_sub(1), room, room + 1]);
                let r = client.append(&k, vec![b'+'; add]).await;
                if current.len() + add > MAX_VALUE_BYTES {
                    assert_refused_naming(r, "MAX_VALUE_BYTES", &what);
                } else {
                    r.unwrap_or_else(|e| panic!("{what}: append {add}: {e}"));
                    model.get_mut(&k).unwrap().extend(vec![b'+'; add]);
                }
            }
            3 => {
                // A CompareAndSwap whose expected and new values together straddle the
                // command limit (each alone within the value limit).
                let half = MAX_COMMAND_BYTES / 2;
                let len = rng.pick(&[half - 64 * 1024, half + 1024]);
                let k = key(tag, 16);
                let (expected, new) = (value(tag, len), value(tag + 1, len));
                let r = client
                    .compare_and_swap(&k, Some(&expected), Some(&new))
                    .await
                    .map(|o| assert!(!o.swapped, "{what}: swapped an absent key"));
                if len > half {
                    assert_refused_naming(r, "MAX_COMMAND_BYTES", &what);
                } else {
                    r.unwrap_or_else(|e| panic!("{what}: cas: {e}"));
                }
            }
            4 => {
                // Deletes of something written, or of nothing.
                let k = model
                    .keys()
                    .nth(rng.below(model.len().max(1) as u64) as usize)
                    .cloned()
                    .unwrap_or_else(|| key(tag, 8));
                let existed = client.delete(&k).await.unwrap();
                assert_eq!(existed, model.remove(&k).is_some(), "{what}: delete");
            }
            _ => {
                // A request no client library sends, straight to a live replica: refused at
                // the edge, wherever it lands (or redirected, from a follower).
                let i = (0..3).find(|&i| Some(i) != killed).unwrap();
                let address = c.group_ref(1).addresses()[i].clone();
                let mut kv = kv_client_at(&address).await;
                // A client id of a wrong length, or no header at all.
                let header = match rng.pick(&[0, 15, 17, usize::MAX]) {
                    usize::MAX => None,
                    len => Some(v1::RequestHeader {
                        client_id: vec![7; len],
                        seq: 1,
                        ..Default::default()
                    }),
                };
                let status = kv
                    .put(v1::PutRequest {
                        header,
                        key: key(tag, 8),
                        value: b"never".to_vec(),
                    })
                    .await
                    .unwrap_err();
                assert_eq!(status.code(), tonic::Code::InvalidArgument, "{what}");
            }
        }
    }
    if let Some(i) = killed.take() {
        c.group(1).restart(i);
    }
    // Every replica is up and applied the same log.
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut applied = Vec::new();
        for i in 0..3 {
            assert!(c.group(1).replica(i).is_running(), "replica {i} stopped");
            applied.push(c.group_ref(1).shards(i).await.map(|s| s.applied_index));
        }
        if applied.iter().all(|a| a.is_some() && *a == applied[0]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: the replicas did not converge: {applied:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every acknowledged write is readable through any two replicas.
    for down in 0..3 {
        c.group(1).kill(down);
        for (k, v) in &model {
            let got = client.get(k).await.unwrap();
            assert!(
                got.as_ref() == Some(v),
                "seed {seed}: key of {} bytes without replica {down}: {} bytes, want {}",
                k.len(),
                got.map_or(0, |g| g.len()),
                v.len()
            );
        }
        c.group(1).restart(down);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_at_every_limit_with_a_leader_kill_leave_the_group_whole() {
    let _serial = serial().await;
    let seeds: Vec<u64> = match std::env::var("STRATA_LIMITS_SEED") {
        Ok(s) => vec![s.parse().expect("STRATA_LIMITS_SEED is a number")],
        Err(_) => vec![1, 2],
    };
    for seed in seeds {
        eprintln!("limits: seed {seed}");
        run(seed).await;
    }
}
