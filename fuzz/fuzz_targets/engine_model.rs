//! The engine against a model: the input is a sequence of operations (put, delete, batch, get,
//! scan, snapshot and reads at it, flush, close + reopen) run on a `Db` over an in-memory
//! `FaultFs` and on a `BTreeMap`. Any difference panics. Keys come from an 85-key alphabet so
//! overwrites, deletes of live keys and multiple versions happen; small memtables and blocks
//! make flushes and multi-block tables happen after a few operations.
#![no_main]

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata::fs::fault::FaultFs;
use strata::{Compression, Db, Options, ReadOptions, Snapshot, WriteBatch, WriteOptions};
use strata_fuzz::Cursor;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

const DIR: &str = "/db";
/// Keeps one input's work small: a few hundred operations at most.
const MAX_OPS: usize = 256;

fn open(fs: &FaultFs, base: &Options) -> Db {
    Db::open(Path::new(DIR), Options { fs: Arc::new(fs.clone()), ..base.clone() })
        .expect("opening a database on a healthy file system")
}

fn bound(c: &mut Cursor<'_>) -> Bound<Vec<u8>> {
    match c.u8() % 3 {
        0 => Bound::Unbounded,
        1 => Bound::Included(c.small_key()),
        _ => Bound::Excluded(c.small_key()),
    }
}

/// Whether a range is empty in a way `BTreeMap::range` would panic on.
fn inverted(range: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> bool {
    match (&range.0, &range.1) {
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a > b || (a == b && !(matches!(range.0, Bound::Included(_)) && matches!(range.1, Bound::Included(_))))
        }
        _ => false,
    }
}

fn check_scan(db: &Db, model: &Model, range: (Bound<Vec<u8>>, Bound<Vec<u8>>), snap: Option<&Snapshot>) {
    // BTreeMap::range panics on inverted ranges; the engine must just return nothing.
    let want: Vec<(Vec<u8>, Vec<u8>)> = if inverted(&range) {
        Vec::new()
    } else {
        model.range(range.clone()).map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    let opts = snap.map(ReadOptions::at).unwrap_or_default();
    let got: Vec<(Vec<u8>, Vec<u8>)> = db
        .scan_opt(range.clone(), &opts)
        .collect::<strata::Result<_>>()
        .unwrap_or_else(|e| panic!("scan {range:?} failed: {e}"));
    assert_eq!(got, want, "scan {range:?} (snapshot: {})", snap.is_some());
}

fn check_get(db: &Db, model: &Model, key: &[u8], snap: Option<&Snapshot>) {
    let opts = snap.map(ReadOptions::at).unwrap_or_default();
    let got = db.get_opt(key, &opts).unwrap_or_else(|e| panic!("get {key:?} failed: {e}"));
    assert_eq!(got.as_ref(), model.get(key), "get {key:?} (snapshot: {})", snap.is_some());
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    let base = Options {
        create_if_missing: true,
        write_buffer_size: 4096 + (c.u8() as usize) * 64,
        memtable_whole_key_filtering: c.u8() & 1 == 0,
        block_size: 64 + (c.u8() as usize) * 4,
        block_restart_interval: (c.u8() % 8) as usize + 1,
        bloom_bits_per_key: [0, 10][(c.u8() & 1) as usize],
        compression: if c.u8() & 1 == 0 { Compression::None } else { Compression::Lz4 },
        block_cache_bytes: 1 << 16,
        max_open_files: 4,
        // Tiny levels: compactions (and range tombstones moving down) happen within a run.
        level0_file_num_compaction_trigger: 2,
        max_bytes_for_level_base: 16 * 1024,
        max_bytes_for_level_multiplier: 2 + (c.u8() % 3) as u64,
        target_file_size: 4096,
        ..Options::default()
    };
    let fs = FaultFs::new();
    let mut db = open(&fs, &base);
    let mut model = Model::new();
    let mut snaps: Vec<(Snapshot, Model)> = Vec::new();
    let mut tag = 0u64;

    for _ in 0..MAX_OPS {
        if c.is_empty() {
            break;
        }
        match c.u8() % 14 {
            0 | 1 => {
                let k = c.small_key();
                tag += 1;
                let v = c.value(tag);
                db.put(&k, &v).expect("put");
                model.insert(k, v);
            }
            2 => {
                let k = c.small_key();
                db.delete(&k).expect("delete");
                model.remove(&k);
            }
            3 => {
                let n = c.u8() % 16;
                let mut batch = WriteBatch::new();
                let mut after = model.clone();
                for _ in 0..n {
                    let k = c.small_key();
                    if c.u8() & 3 == 0 {
                        batch.delete(&k);
                        after.remove(&k);
                    } else {
                        tag += 1;
                        let v = c.value(tag);
                        batch.put(&k, &v);
                        after.insert(k, v);
                    }
                }
                let sync = c.u8() & 1 == 1;
                db.write_opt(batch, &WriteOptions { sync }).expect("write batch");
                model = after;
            }
            4 | 5 => {
                let k = c.small_key();
                check_get(&db, &model, &k, None);
            }
            6 => {
                let range = (bound(&mut c), bound(&mut c));
                check_scan(&db, &model, range, None);
            }
            7 => {
                if snaps.len() >= 4 {
                    snaps.remove(0);
                }
                snaps.push((db.snapshot().expect("snapshot"), model.clone()));
            }
            8 => {
                if !snaps.is_empty() {
                    let i = c.u8() as usize % snaps.len();
                    let (snap, old) = &snaps[i];
                    if c.u8() & 1 == 0 {
                        let k = c.small_key();
                        check_get(&db, old, &k, Some(snap));
                    } else {
                        let range = (bound(&mut c), bound(&mut c));
                        check_scan(&db, old, range, Some(snap));
                    }
                }
            }
            9 => db.flush().expect("flush"),
            10 => {
                if c.u8() & 1 == 0 {
                    // Snapshots die with the handle they came from.
                    snaps.clear();
                    db.close().expect("close");
                    drop(db);
                    db = open(&fs, &base);
                } else if !snaps.is_empty() {
                    let i = c.u8() as usize % snaps.len();
                    snaps.remove(i);
                }
            }
            12 => {
                let range = (bound(&mut c), bound(&mut c));
                if !inverted(&range) {
                    let doomed: Vec<Vec<u8>> = model.range(range.clone()).map(|(k, _)| k.clone()).collect();
                    for k in doomed {
                        model.remove(&k);
                    }
                }
                db.delete_range(range).expect("delete_range");
            }
            13 => {
                let range = (bound(&mut c), bound(&mut c));
                db.compact_range(range).expect("compact_range");
                db.check_consistency().expect("consistency after compact_range");
            }
            _ => {
                // A few gets of keys the model holds and of absent ones.
                for _ in 0..4 {
                    let k = c.small_key();
                    check_get(&db, &model, &k, None);
                }
            }
        }
    }
    // Final full comparison, and again after a reopen (WAL replay + tables).
    check_scan(&db, &model, (Bound::Unbounded, Bound::Unbounded), None);
    snaps.clear();
    db.close().expect("close");
    drop(db);
    let db = open(&fs, &base);
    check_scan(&db, &model, (Bound::Unbounded, Bound::Unbounded), None);
    db.close().expect("close");
});
