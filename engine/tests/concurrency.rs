//! Many threads at once: writers committing batches, readers reading through snapshots and
//! scans while memtables are flushed underneath them. Readers must never see part of a batch.
//! Also: group commit must turn many concurrent synced writes into far fewer WAL syncs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use strata::{Db, Options, ReadOptions, WriteBatch, WriteOptions};

const WRITERS: usize = 4;
const KEYS_PER_WRITER: usize = 10;

fn key(w: usize, j: usize) -> Vec<u8> {
    format!("w{w}-k{j:02}").into_bytes()
}

#[test]
fn readers_never_see_a_partial_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            write_buffer_size: 32 * 1024,
            block_size: 512,
            ..Options::create()
        },
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let db = db.clone();
        handles.push(std::thread::spawn(move || {
            // Every batch rewrites all of this writer's keys with the round number.
            for round in 0u32..1500 {
                let mut b = WriteBatch::new();
                for j in 0..KEYS_PER_WRITER {
                    let mut v = round.to_le_bytes().to_vec();
                    v.resize(40 + j * 10, b'x');
                    b.put(key(w, j), v);
                }
                db.write(b).unwrap();
            }
        }));
    }
    let mut readers = Vec::new();
    for r in 0..3 {
        let db = db.clone();
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            let mut checks = 0u64;
            while !stop.load(Ordering::Relaxed) || checks == 0 {
                let snap = db.snapshot().unwrap();
                let ro = ReadOptions::at(&snap);
                for w in 0..WRITERS {
                    // Through a snapshot, with gets.
                    let rounds: Vec<_> = (0..KEYS_PER_WRITER)
                        .map(|j| db.get_opt(key(w, j), &ro).unwrap().map(|v| v[..4].to_vec()))
                        .collect();
                    assert!(
                        rounds.windows(2).all(|p| p[0] == p[1]),
                        "reader {r}: torn batch {rounds:?}"
                    );
                    // Through a scan, which reads at its own implicit snapshot.
                    let lo = format!("w{w}-").into_bytes();
                    let hi = format!("w{w}.").into_bytes();
                    let rows: Vec<_> = db.scan(lo..hi).collect::<Result<_, _>>().unwrap();
                    assert!(
                        rows.is_empty() || rows.len() == KEYS_PER_WRITER,
                        "reader {r}: {} rows",
                        rows.len()
                    );
                    assert!(
                        rows.windows(2).all(|p| p[0].1[..4] == p[1].1[..4]),
                        "reader {r}: torn scan"
                    );
                }
                checks += 1;
            }
            checks
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let stats = db.stats();
    assert!(
        stats.flushes > 0,
        "the test should flush while reading: {stats:?}"
    );
    for w in 0..WRITERS {
        for j in 0..KEYS_PER_WRITER {
            assert_eq!(
                db.get(key(w, j)).unwrap().unwrap()[..4],
                1499u32.to_le_bytes()
            );
        }
    }
}

#[test]
fn group_commit_shares_syncs_between_writers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::create()).unwrap();
    const THREADS: usize = 8;
    const PER_THREAD: usize = 200;
    let barrier = Arc::new(std::sync::Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let db = db.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..PER_THREAD {
                    let mut b = WriteBatch::new();
                    b.put(format!("t{t}-{i}"), [t as u8; 64]);
                    db.write_opt(b, &WriteOptions { sync: true }).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let stats = db.stats();
    let writes = (THREADS * PER_THREAD) as u64;
    assert_eq!(stats.write_batches, writes);
    println!(
        "{} synced writes took {} WAL syncs in {} groups",
        writes, stats.wal_syncs, stats.write_groups
    );
    assert!(stats.wal_syncs <= stats.write_groups);
    assert!(
        stats.wal_syncs * 2 < writes,
        "group commit should batch syncs: {} syncs for {writes} writes",
        stats.wal_syncs
    );
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            assert!(db.get(format!("t{t}-{i}")).unwrap().is_some());
        }
    }
}
