//! Engine-level micro-benchmarks of Strata through its public API: put, get (hit and miss),
//! write batch and scan, on a database of 100,000 keys.
//!
//! `cargo bench -p strata-benches --bench engine`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strata::{Db, Options, WriteBatch};

const KEYS: u64 = 100_000;
const VALUE: [u8; 100] = [7u8; 100];

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(format!("{i:015}0").as_bytes());
    k
}

fn engine(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Options::create()).expect("open");
    for i in 0..KEYS {
        db.put(key(i), VALUE).expect("put");
    }
    db.flush().expect("flush");

    let mut g = c.benchmark_group("engine");
    let mut next = 0u64;
    let mut step = || {
        next = (next + 7919) % KEYS;
        next
    };
    g.throughput(Throughput::Elements(1));
    g.bench_function("put", |b| {
        b.iter(|| db.put(key(step()), VALUE).expect("put"))
    });
    g.bench_function("get-hit", |b| {
        b.iter(|| black_box(db.get(key(step())).expect("get")))
    });
    g.bench_function("get-miss", |b| {
        b.iter(|| {
            let mut k = key(step());
            k[15] = b'5';
            black_box(db.get(k).expect("get"))
        })
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("batch-100", |b| {
        b.iter(|| {
            let mut batch = WriteBatch::new();
            for _ in 0..100 {
                batch.put(key(step()), VALUE);
            }
            db.write(batch).expect("write")
        })
    });
    g.bench_function("scan-100", |b| {
        b.iter(|| {
            let from = key(step()).to_vec();
            db.scan(from..)
                .take(100)
                .map(|kv| kv.expect("scan").1.len())
                .sum::<usize>()
        })
    });
    g.finish();
    db.close().expect("close");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = engine
}
criterion_main!(benches);
