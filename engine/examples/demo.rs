//! The README's "main job": writes, reads, scans and reopens a database, printing what it did
//! and how fast.
//!
//! ```text
//! cargo run --release --example demo -- [--dir PATH] [--keys N] [--value-size BYTES]
//! ```
//! Without `--dir` it uses a temporary directory that is removed afterwards.

use std::time::{Duration, Instant};

use strata::{Db, Options, WriteBatch, WriteOptions};

struct Args {
    dir: Option<std::path::PathBuf>,
    keys: u64,
    value_size: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: None,
        keys: 1_000_000,
        value_size: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => args.dir = Some(value()?.into()),
            "--keys" => args.keys = value()?.parse().map_err(|e| format!("--keys: {e}"))?,
            "--value-size" => {
                args.value_size = value()?.parse().map_err(|e| format!("--value-size: {e}"))?
            }
            "-h" | "--help" => {
                return Err("usage: demo [--dir PATH] [--keys N] [--value-size BYTES]".into())
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

fn key(i: u64) -> [u8; 16] {
    // Spread keys over the key space so that writes arrive in random order.
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&h.to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn value(i: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    for (j, b) in v.iter_mut().enumerate() {
        *b = (i as usize).wrapping_add(j * 31) as u8;
    }
    v
}

fn report(what: &str, n: u64, bytes: u64, took: Duration) {
    let secs = took.as_secs_f64().max(1e-9);
    println!(
        "{what:<28} {n:>9} ops in {:>7.3} s  {:>10.0} ops/s  {:>7.1} MB/s  {:>6.2} us/op",
        secs,
        n as f64 / secs,
        bytes as f64 / secs / 1e6,
        secs * 1e6 / n.max(1) as f64
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("db")
        }
    };
    let n = args.keys;
    let entry_bytes = (16 + args.value_size) as u64;
    println!(
        "strata demo: {n} keys of 16 bytes, values of {} bytes, in {}",
        args.value_size,
        dir.display()
    );

    let db = Db::open(&dir, Options::create())?;

    let t = Instant::now();
    const BATCH: u64 = 1000;
    for start in (0..n).step_by(BATCH as usize) {
        let mut batch = WriteBatch::new();
        for i in start..(start + BATCH).min(n) {
            batch.put(key(i), value(i, args.value_size));
        }
        db.write(batch)?;
    }
    report("write (batches of 1000)", n, n * entry_bytes, t.elapsed());

    let t = Instant::now();
    let singles = n.min(100_000);
    for i in 0..singles {
        db.put(key(n + i), value(n + i, args.value_size))?;
    }
    report(
        "write (single puts)",
        singles,
        singles * entry_bytes,
        t.elapsed(),
    );

    let t = Instant::now();
    let synced = 1000.min(n);
    for i in 0..synced {
        db.write_opt(
            {
                let mut b = WriteBatch::new();
                b.put(key(i), value(i, args.value_size));
                b
            },
            &WriteOptions { sync: true },
        )?;
    }
    report(
        "write (synced puts)",
        synced,
        synced * entry_bytes,
        t.elapsed(),
    );

    let t = Instant::now();
    db.flush()?;
    println!(
        "flush memtable                {:>22.3} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let mut found = 0;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = x % n;
        match db.get(key(i))? {
            Some(v) if v == value(i, args.value_size) => found += 1,
            other => return Err(format!("key {i}: wrong value {other:?}").into()),
        }
    }
    report("read (random gets)", n, found * entry_bytes, t.elapsed());

    let t = Instant::now();
    let mut scanned = 0u64;
    let mut prev: Option<Vec<u8>> = None;
    for kv in db.scan::<&[u8]>(..) {
        let (k, _) = kv?;
        if prev.as_ref().is_some_and(|p| *p >= k) {
            return Err("scan out of order".into());
        }
        prev = Some(k);
        scanned += 1;
    }
    report(
        "scan (whole database)",
        scanned,
        scanned * entry_bytes,
        t.elapsed(),
    );
    if scanned != n + singles {
        return Err(format!("scan found {scanned} keys, expected {}", n + singles).into());
    }

    let stats = db.stats();
    println!(
        "stats: {} writes in {} WAL groups, {} WAL syncs, {} flushes, {} L0 tables ({:.1} MB), {} block cache hits / {} misses",
        stats.writes,
        stats.write_groups,
        stats.wal_syncs,
        stats.flushes,
        stats.files_per_level[0],
        stats.bytes_per_level[0] as f64 / 1e6,
        stats.block_cache_hits,
        stats.block_cache_misses
    );
    db.close()?;
    drop(db);

    let t = Instant::now();
    let db = Db::open(&dir, Options::default())?;
    let reopen = t.elapsed();
    for i in [0, n / 2, n - 1, n + singles - 1] {
        if db.get(key(i))?.as_deref() != Some(&value(i, args.value_size)[..]) {
            return Err(format!("key {i} missing after reopen").into());
        }
    }
    println!(
        "reopen and spot-check         {:>22.3} s",
        reopen.as_secs_f64()
    );
    db.close()?;
    println!("ok");
    Ok(())
}
