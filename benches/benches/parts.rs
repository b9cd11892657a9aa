//! Micro-benchmarks of the engine's parts, through the modules the `strata` crate exports:
//! memtable insert and lookup (beside `crossbeam-skiplist` and a `BTreeMap` behind a lock),
//! data block build and seek, Bloom filter probes, WAL append with and without sync, SSTable
//! point lookups (hit and miss) and merging-iterator steps.
//!
//! `cargo bench -p strata-benches --bench parts`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use parking_lot::RwLock;
use strata::fs::{FileSystem, StdFs};
use strata::iter::merging::{MergingIterator, VecIterator};
use strata::iter::InternalIterator;
use strata::key::{make_internal_key, seek_key, ValueKind};
use strata::memtable::MemTable;
use strata::sstable::block::Block;
use strata::sstable::block_builder::BlockBuilder;
use strata::sstable::builder::{TableBuilder, TableBuilderOptions};
use strata::sstable::filter::{filter_may_contain, BloomFilterBuilder};
use strata::sstable::table::Table;
use strata::wal::LogWriter;
use strata::WriteBatch;

const N: u64 = 10_000;
const VALUE: [u8; 100] = [7u8; 100];

/// Key `i` in scattered order (a multiplicative permutation), 16 bytes, sortable.
fn key(i: u64) -> [u8; 16] {
    let id = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1_000_000_007;
    let mut k = [b'0'; 16];
    let s = format!("{id:016}");
    k.copy_from_slice(s.as_bytes());
    k
}

/// Keys `0..n`, made before timing starts.
fn keys(n: u64) -> Vec<[u8; 16]> {
    (0..n).map(key).collect()
}

/// Ours is fed through its public entry point, a one-update `WriteBatch` per key (as the
/// engine's write path does for single puts), so its numbers include building that batch.
fn memtable(c: &mut Criterion) {
    let keys = keys(N);
    let mut g = c.benchmark_group("memtable");
    g.throughput(Throughput::Elements(N));
    g.bench_function("insert/strata", |b| {
        b.iter_batched(
            || MemTable::new(1, 64 << 20, true),
            |m| {
                for k in &keys {
                    let mut batch = WriteBatch::new();
                    batch.put(k, VALUE);
                    m.apply(&batch);
                }
                m
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("insert/crossbeam-skiplist", |b| {
        b.iter_batched(
            crossbeam_skiplist::SkipMap::<Vec<u8>, Vec<u8>>::new,
            |m| {
                for k in &keys {
                    m.insert(k.to_vec(), VALUE.to_vec());
                }
                m
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("insert/btreemap-rwlock", |b| {
        b.iter_batched(
            || Arc::new(RwLock::new(BTreeMap::<Vec<u8>, Vec<u8>>::new())),
            |m| {
                for k in &keys {
                    m.write().insert(k.to_vec(), VALUE.to_vec());
                }
                m
            },
            BatchSize::LargeInput,
        )
    });

    let ours = MemTable::new(1, 64 << 20, true);
    let skip = crossbeam_skiplist::SkipMap::new();
    let tree = RwLock::new(BTreeMap::new());
    for k in &keys {
        let mut batch = WriteBatch::new();
        batch.put(k, VALUE);
        ours.apply(&batch);
        skip.insert(k.to_vec(), VALUE.to_vec());
        tree.write().insert(k.to_vec(), VALUE.to_vec());
    }
    let targets: Vec<Vec<u8>> = keys.iter().map(|k| seek_key(k, u64::MAX >> 8)).collect();
    g.bench_function("get/strata", |b| {
        b.iter(|| {
            for (k, target) in keys.iter().zip(&targets) {
                black_box(ours.get(target, k));
            }
        })
    });
    g.bench_function("get/crossbeam-skiplist", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(skip.get(&k[..]).map(|e| e.value().len()));
            }
        })
    });
    g.bench_function("get/btreemap-rwlock", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(tree.read().get(&k[..]).map(Vec::len));
            }
        })
    });
    g.finish();
}

fn block(c: &mut Criterion) {
    let mut keys: Vec<Vec<u8>> = (0..30)
        .map(|i| make_internal_key(&key(i), 1, ValueKind::Value))
        .collect();
    keys.sort_by(|a, b| strata::key::compare_internal_keys(a, b));
    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("build-4k", |b| {
        let mut builder = BlockBuilder::new(16);
        b.iter(|| {
            builder.reset();
            for k in &keys {
                builder.add(k, &VALUE);
            }
            black_box(builder.finish().len())
        })
    });
    let mut builder = BlockBuilder::new(16);
    for k in &keys {
        builder.add(k, &VALUE);
    }
    let block = Arc::new(Block::new(builder.finish().to_vec()).expect("block"));
    g.bench_function("seek", |b| {
        b.iter(|| {
            let mut it = block.iter();
            for k in &keys {
                it.seek(k);
                black_box(it.valid());
            }
        })
    });
    g.finish();
}

fn bloom(c: &mut Criterion) {
    let present = keys(N);
    let absent: Vec<[u8; 16]> = (N..2 * N).map(key).collect();
    let mut builder = BloomFilterBuilder::new(10);
    for k in &present {
        builder.add_key(k);
    }
    let filter = builder.finish();
    let mut g = c.benchmark_group("bloom");
    g.throughput(Throughput::Elements(N));
    bench_probes(&mut g, "probe-hit", &filter, &present);
    bench_probes(&mut g, "probe-miss", &filter, &absent);
    // A filter far bigger than the CPU caches (a 1M-key table's, 1.2 MiB), probed at random
    // keys: where keeping every probe of a key in one cache line pays.
    let big_n = 1_000_000;
    let mut builder = BloomFilterBuilder::new(10);
    for i in 0..big_n {
        builder.add_key(&key(i));
    }
    let big = builder.finish();
    // Keys past `big_n` were never added (`key` is a permutation).
    let probes: Vec<[u8; 16]> = (big_n..big_n + N).map(key).collect();
    bench_probes(&mut g, "probe-miss-1m-key-filter", &big, &probes);
    g.finish();
}

/// Probes `filter` for every key of `keys`.
fn bench_probes(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    filter: &[u8],
    keys: &[[u8; 16]],
) {
    g.bench_function(name, |b| {
        b.iter(|| {
            keys.iter()
                .filter(|k| filter_may_contain(filter, &k[..]))
                .count()
        })
    });
}

fn wal(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = [5u8; 116];
    let mut g = c.benchmark_group("wal");
    g.throughput(Throughput::Elements(1));
    // `write(2)` per record, and the WAL's default: appended through a shared mapping
    // (`FileSystem::create_log`).
    let buffered = StdFs.create(&dir.path().join("flush.log")).expect("create");
    let mapped = StdFs
        .create_log(&dir.path().join("mapped.log"))
        .expect("create");
    for (name, file) in [
        ("append-116B-flush", buffered),
        ("append-116B-mapped", mapped),
    ] {
        let mut writer = LogWriter::new(file);
        g.bench_function(name, |b| {
            b.iter(|| {
                writer.add_record(&record).expect("append");
                writer.flush().expect("flush")
            })
        });
    }
    let file = StdFs.create(&dir.path().join("sync.log")).expect("create");
    let mut writer = LogWriter::new(file);
    g.sample_size(10);
    g.bench_function("append-116B-sync", |b| {
        b.iter(|| {
            writer.add_record(&record).expect("append");
            writer.sync().expect("sync")
        })
    });
    g.finish();
}

fn sstable(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("000001.sst");
    let mut ikeys: Vec<(Vec<u8>, [u8; 16])> = (0..N)
        .map(|i| (make_internal_key(&key(i), 1, ValueKind::Value), key(i)))
        .collect();
    ikeys.sort_by(|a, b| strata::key::compare_internal_keys(&a.0, &b.0));
    let file = StdFs.create(&path).expect("create");
    let mut builder = TableBuilder::new(TableBuilderOptions::default(), file);
    for (ik, _) in &ikeys {
        builder.add(ik, &VALUE).expect("add");
    }
    builder.finish().expect("finish");
    let table = Table::open(StdFs.open(&path).expect("open"), 1, None).expect("table");
    let hits: Vec<(Vec<u8>, [u8; 16])> = (0..N)
        .map(|i| (seek_key(&key(i), u64::MAX >> 8), key(i)))
        .collect();
    let misses: Vec<(Vec<u8>, [u8; 16])> = (N..2 * N)
        .map(|i| (seek_key(&key(i), u64::MAX >> 8), key(i)))
        .collect();
    let mut g = c.benchmark_group("sstable");
    g.throughput(Throughput::Elements(N));
    g.bench_function("get-hit", |b| {
        b.iter(|| {
            hits.iter()
                .filter(|(t, k)| table.get(t, k).expect("get").is_some())
                .count()
        })
    });
    g.bench_function("get-miss", |b| {
        b.iter(|| {
            misses
                .iter()
                .filter(|(t, k)| table.get(t, k).expect("get").is_some())
                .count()
        })
    });
    g.finish();
}

fn merging(c: &mut Criterion) {
    // Four sorted runs with interleaved keys, as four overlapping level-0 tables.
    let runs: Vec<Vec<(Vec<u8>, Vec<u8>)>> = (0..4u64)
        .map(|r| {
            (0..N / 4)
                .map(|i| {
                    let ik = make_internal_key(&key(i * 4 + r), 1, ValueKind::Value);
                    (ik, VALUE.to_vec())
                })
                .collect()
        })
        .collect();
    let mut g = c.benchmark_group("merging-iterator");
    g.throughput(Throughput::Elements(N));
    g.bench_function("step-4-runs", |b| {
        b.iter_batched(
            || {
                let children: Vec<Box<dyn InternalIterator>> = runs
                    .iter()
                    .map(|r| Box::new(VecIterator::new(r.clone())) as Box<dyn InternalIterator>)
                    .collect();
                MergingIterator::new(children)
            },
            |mut it| {
                let mut n = 0;
                it.seek_to_first();
                while it.valid() {
                    n += it.key().len();
                    it.next();
                }
                n
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = parts;
    config = Criterion::default().sample_size(20);
    targets = memtable, block, bloom, wal, sstable, merging
}
criterion_main!(parts);
