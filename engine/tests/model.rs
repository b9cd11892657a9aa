//! Model-based test: long random sequences of operations against the engine and against a
//! `BTreeMap`, with flushes, snapshots and reopens in the sequence. Any difference fails the
//! case and proptest shrinks it to a minimal sequence.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use strata::{Db, Options, ReadOptions, Snapshot, WriteBatch};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, usize, u8),
    Delete(u8),
    Batch(Vec<(u8, Option<(usize, u8)>)>),
    Get(u8),
    Scan(Option<u8>, Option<u8>, bool),
    TakeSnapshot,
    ReadSnapshot(usize, u8),
    ScanSnapshot(usize),
    DropSnapshot(usize),
    Flush,
    Reopen,
}

fn key(k: u8) -> Vec<u8> {
    format!("key{k:03}").into_bytes()
}

/// Values from empty to several blocks long; the fill byte makes every version distinct.
fn value(len: usize, fill: u8) -> Vec<u8> {
    (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
}

fn value_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..64,
        2 => 64usize..600,
        1 => 4000usize..20_000,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..60;
    prop_oneof![
        30 => (k.clone(), value_len(), any::<u8>()).prop_map(|(k, l, f)| Op::Put(k, l, f)),
        8 => k.clone().prop_map(Op::Delete),
        8 => prop::collection::vec(
            (k.clone(), prop::option::weighted(0.8, (value_len(), any::<u8>()))),
            0..8
        )
        .prop_map(Op::Batch),
        15 => k.clone().prop_map(Op::Get),
        5 => (prop::option::of(k.clone()), prop::option::of(k.clone()), any::<bool>())
            .prop_map(|(a, b, inc)| Op::Scan(a, b, inc)),
        3 => Just(Op::TakeSnapshot),
        5 => (any::<usize>(), k.clone()).prop_map(|(i, k)| Op::ReadSnapshot(i, k)),
        2 => any::<usize>().prop_map(Op::ScanSnapshot),
        2 => any::<usize>().prop_map(Op::DropSnapshot),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

fn options() -> Options {
    Options {
        // Small memtables and blocks so that flushes, multi-block tables and lz4 all happen.
        write_buffer_size: 16 * 1024,
        block_size: 512,
        block_cache_bytes: 64 * 1024,
        max_open_files: 8,
        ..Options::create()
    }
}

/// The key range of a `Scan(lo, hi, inclusive)` operation.
fn bounds(lo: Option<u8>, hi: Option<u8>, inclusive: bool) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let lo = lo.map_or(Bound::Unbounded, |k| Bound::Included(key(k)));
    let hi = match hi {
        None => Bound::Unbounded,
        Some(k) if inclusive => Bound::Included(key(k)),
        Some(k) => Bound::Excluded(key(k)),
    };
    (lo, hi)
}

fn range_of(
    model: &Model,
    lo: Option<u8>,
    hi: Option<u8>,
    inclusive: bool,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (lo, hi) = bounds(lo, hi, inclusive);
    if let (Bound::Included(a), Bound::Included(b) | Bound::Excluded(b)) = (&lo, &hi) {
        if a > b {
            return Vec::new();
        }
    }
    model
        .range((lo, hi))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn scan_db(
    db: &Db,
    lo: Option<u8>,
    hi: Option<u8>,
    inclusive: bool,
    ro: &ReadOptions,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (lo, hi) = bounds(lo, hi, inclusive);
    db.scan_opt((lo, hi), ro)
        .collect::<Result<_, _>>()
        .expect("scan failed")
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut db = Db::open(&path, options()).unwrap();
    let mut model = Model::new();
    let mut snapshots: Vec<(Snapshot, Model)> = Vec::new();
    for op in ops {
        match op {
            Op::Put(k, l, f) => {
                db.put(key(k), value(l, f)).unwrap();
                model.insert(key(k), value(l, f));
            }
            Op::Delete(k) => {
                db.delete(key(k)).unwrap();
                model.remove(&key(k));
            }
            Op::Batch(updates) => {
                let mut b = WriteBatch::new();
                for (k, v) in updates {
                    match v {
                        Some((l, f)) => {
                            b.put(key(k), value(l, f));
                            model.insert(key(k), value(l, f));
                        }
                        None => {
                            b.delete(key(k));
                            model.remove(&key(k));
                        }
                    }
                }
                db.write(b).unwrap();
            }
            Op::Get(k) => {
                prop_assert_eq!(
                    db.get(key(k)).unwrap(),
                    model.get(&key(k)).cloned(),
                    "get {}",
                    k
                );
            }
            Op::Scan(lo, hi, inc) => {
                let got = scan_db(&db, lo, hi, inc, &ReadOptions::default());
                prop_assert_eq!(got, range_of(&model, lo, hi, inc));
            }
            Op::TakeSnapshot => snapshots.push((db.snapshot().unwrap(), model.clone())),
            Op::ReadSnapshot(i, k) if !snapshots.is_empty() => {
                let (s, m) = &snapshots[i % snapshots.len()];
                let got = db.get_opt(key(k), &ReadOptions::at(s)).unwrap();
                prop_assert_eq!(got, m.get(&key(k)).cloned(), "snapshot get {}", k);
            }
            Op::ScanSnapshot(i) if !snapshots.is_empty() => {
                let (s, m) = &snapshots[i % snapshots.len()];
                let got = scan_db(&db, None, None, false, &ReadOptions::at(s));
                prop_assert_eq!(got, range_of(m, None, None, false));
            }
            Op::DropSnapshot(i) if !snapshots.is_empty() => {
                let n = snapshots.len();
                snapshots.remove(i % n);
            }
            Op::ReadSnapshot(..) | Op::ScanSnapshot(_) | Op::DropSnapshot(_) => {}
            Op::Flush => db.flush().unwrap(),
            Op::Reopen => {
                snapshots.clear();
                db.close().unwrap();
                drop(db);
                db = Db::open(&path, options()).unwrap();
            }
        }
    }
    // Finally everything, after one more reopen.
    snapshots.clear();
    db.close().unwrap();
    drop(db);
    let db = Db::open(&path, options()).unwrap();
    let got = scan_db(&db, None, None, false, &ReadOptions::default());
    prop_assert_eq!(got, range_of(&model, None, None, false));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_btreemap(ops in prop::collection::vec(op(), 1..400)) {
        run(ops)?;
    }
}
