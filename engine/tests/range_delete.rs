//! `delete_range`: a whole key range disappears at once, for reads, scans and snapshots taken
//! after it, survives reopen, and is reclaimed by compaction (whole tables dropped unread).

use std::collections::BTreeMap;
use std::ops::Bound;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata::{Db, Options, ReadOptions, Snapshot, WriteBatch};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn small() -> Options {
    Options {
        write_buffer_size: 16 * 1024,
        block_size: 512,
        level0_file_num_compaction_trigger: 2,
        max_bytes_for_level_base: 64 * 1024,
        max_bytes_for_level_multiplier: 4,
        target_file_size: 16 * 1024,
        ..Options::create()
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

fn all(db: &Db, ro: &ReadOptions) -> Model {
    db.scan_opt::<&[u8]>(.., ro)
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_deleted_range_vanishes_for_reads_scans_and_later_snapshots_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    for i in 0..1000 {
        db.put(key(i), [1u8; 50]).unwrap();
    }
    db.flush().unwrap();
    let before = db.snapshot().unwrap();
    db.delete_range(key(100)..key(900)).unwrap();
    db.put(key(500), b"rewritten").unwrap(); // newer than the tombstone: visible
    assert_eq!(db.get(key(99)).unwrap().unwrap(), [1u8; 50]);
    assert_eq!(db.get(key(100)).unwrap(), None);
    assert_eq!(db.get(key(899)).unwrap(), None);
    assert_eq!(db.get(key(900)).unwrap().unwrap(), [1u8; 50]);
    assert_eq!(db.get(key(500)).unwrap().unwrap(), b"rewritten");
    let now = all(&db, &ReadOptions::default());
    assert_eq!(now.len(), 100 + 100 + 1);
    assert_eq!(all(&db, &ReadOptions::at(&before)).len(), 1000);
    assert_eq!(
        db.get_opt(key(300), &ReadOptions::at(&before))
            .unwrap()
            .unwrap(),
        [1u8; 50]
    );

    // Through a flush, a full compaction and a reopen, the same answers.
    db.compact_range::<&[u8]>(..).unwrap();
    db.check_consistency().unwrap();
    assert_eq!(all(&db, &ReadOptions::default()), now);
    assert_eq!(
        all(&db, &ReadOptions::at(&before)).len(),
        1000,
        "the snapshot still sees all"
    );
    drop(before);
    db.close().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    assert_eq!(all(&db, &ReadOptions::default()), now);
    // Unbounded ranges and inclusive ends.
    db.delete_range(key(950)..).unwrap();
    db.delete_range(..=key(10)).unwrap();
    let left = all(&db, &ReadOptions::default());
    assert_eq!(left.keys().next().unwrap(), &key(11));
    assert_eq!(left.keys().last().unwrap(), &key(949));
    db.compact_range::<&[u8]>(..).unwrap();
    assert_eq!(all(&db, &ReadOptions::default()), left);
}

#[test]
fn range_deletion_is_atomic_with_its_batch_and_survives_reopen_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::create()).unwrap();
    for i in 0..100 {
        db.put(key(i), b"v").unwrap();
    }
    let mut b = WriteBatch::new();
    b.delete_range(key(10), key(20))
        .put(key(15), b"inside, after the tombstone");
    db.write(b).unwrap();
    assert_eq!(
        db.get(key(15)).unwrap().unwrap(),
        b"inside, after the tombstone"
    );
    assert_eq!(db.get(key(14)).unwrap(), None);
    db.close().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap(); // replayed from the WAL
    assert_eq!(
        db.get(key(15)).unwrap().unwrap(),
        b"inside, after the tombstone"
    );
    assert_eq!(db.get(key(14)).unwrap(), None);
    assert_eq!(all(&db, &ReadOptions::default()).len(), 91);
}

#[test]
fn garbage_collecting_a_range_reclaims_its_space_and_drops_whole_tables() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    // Two "shards": prefixes a/ and b/, interleaved writes.
    let value = vec![7u8; 100];
    for i in 0..6000u32 {
        db.put(format!("a/{i:05}"), &value).unwrap();
        db.put(format!("b/{i:05}"), &value).unwrap();
    }
    db.compact_range::<&[u8]>(..).unwrap();
    let before = db.stats().table_bytes();
    db.delete_range(b"a/".to_vec()..b"a0".to_vec()).unwrap();
    db.compact_range(b"a/".to_vec()..b"a0".to_vec()).unwrap();
    db.check_consistency().unwrap();
    let stats = db.stats();
    let after = stats.table_bytes();
    // About half the data is gone; what remains of the deleted range is under 5% of it.
    let shard_bytes = before / 2;
    assert!(
        after < before - shard_bytes + shard_bytes / 20,
        "table bytes {before} -> {after}"
    );
    assert!(stats.tables_dropped_by_range_deletion > 0, "{stats:?}");
    assert_eq!(db.scan(b"a/".to_vec()..b"a0".to_vec()).count(), 0);
    assert_eq!(db.scan(b"b/".to_vec()..b"b0".to_vec()).count(), 6000);
}

#[derive(Debug, Clone)]
enum Op {
    Put(u32, u8),
    Delete(u32),
    DeleteRange(u32, u32),
    Get(u32),
    Snapshot,
    CheckSnapshot(usize),
    Flush,
    Compact(u32, u32),
    CompactAll,
    Reopen,
}

fn random_op(rng: &mut StdRng) -> Op {
    let k = |rng: &mut StdRng| rng.random_range(0..400u32);
    match rng.random_range(0..100) {
        0..45 => Op::Put(k(rng), rng.random()),
        45..55 => Op::Delete(k(rng)),
        55..62 => {
            let a = k(rng);
            Op::DeleteRange(a, a + rng.random_range(0..80))
        }
        62..80 => Op::Get(k(rng)),
        80..84 => Op::Snapshot,
        84..90 => Op::CheckSnapshot(rng.random_range(0..1000)),
        90..94 => Op::Flush,
        94..97 => {
            let a = k(rng);
            Op::Compact(a, a + rng.random_range(0..100))
        }
        97..99 => Op::CompactAll,
        _ => Op::Reopen,
    }
}

#[test]
fn random_operations_with_range_deletions_match_a_model() {
    let first: u64 = rand::rng().random();
    println!("seeds {first}..+12");
    for seed in first..first + 12 {
        let mut rng = StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(dir.path(), small()).unwrap();
        let mut model = Model::new();
        let mut snaps: Vec<(Snapshot, Model)> = Vec::new();
        let mut compactions = 0; // counters restart with every open
        for step in 0..1500 {
            let op = random_op(&mut rng);
            let ctx = format!("seed {seed} step {step} {op:?}");
            match op {
                Op::Put(k, v) => {
                    let value = vec![v; 20 + (k as usize % 200)];
                    db.put(key(k), &value).unwrap();
                    model.insert(key(k), value);
                }
                Op::Delete(k) => {
                    db.delete(key(k)).unwrap();
                    model.remove(&key(k));
                }
                Op::DeleteRange(a, b) => {
                    db.delete_range(key(a)..key(b)).unwrap();
                    let doomed: Vec<_> = model
                        .range((Bound::Included(key(a)), Bound::Excluded(key(b))))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in doomed {
                        model.remove(&k);
                    }
                }
                Op::Get(k) => assert_eq!(
                    db.get(key(k)).unwrap(),
                    model.get(&key(k)).cloned(),
                    "{ctx}"
                ),
                Op::Snapshot => snaps.push((db.snapshot().unwrap(), model.clone())),
                Op::CheckSnapshot(i) if !snaps.is_empty() => {
                    let (s, m) = &snaps[i % snaps.len()];
                    assert_eq!(&all(&db, &ReadOptions::at(s)), m, "{ctx}");
                }
                Op::CheckSnapshot(_) => {}
                Op::Flush => db.flush().unwrap(),
                Op::Compact(a, b) => {
                    db.compact_range(key(a)..key(b)).unwrap();
                    db.check_consistency().unwrap();
                }
                Op::CompactAll => {
                    db.compact_range::<&[u8]>(..).unwrap();
                    db.check_consistency().unwrap();
                }
                Op::Reopen => {
                    snaps.clear();
                    compactions += db.stats().compactions_per_level.iter().sum::<u64>();
                    db.close().unwrap();
                    db = Db::open(dir.path(), small()).unwrap();
                }
            }
        }
        assert_eq!(
            all(&db, &ReadOptions::default()),
            model,
            "seed {seed} at the end"
        );
        for (s, m) in &snaps {
            assert_eq!(
                &all(&db, &ReadOptions::at(s)),
                m,
                "seed {seed}: a snapshot at the end"
            );
        }
        compactions += db.stats().compactions_per_level.iter().sum::<u64>();
        assert!(compactions > 0, "seed {seed}: no compaction ran");
    }
}
