//! Measures leveled compaction: write amplification, space amplification after overwrites, and
//! get latency before and after compaction settles.
//!
//! ```text
//! cargo run --release --example leveled -- [--entries N] [--write-buffer-mb M] [--dir PATH]
//! ```
//! Keys are 16 bytes, values 100 bytes, inserted in random order, then every key overwritten
//! once in another random order.

use std::time::{Duration, Instant};

use strata::{Db, Options, WriteBatch};

fn key(i: u64) -> [u8; 16] {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&h.to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn permutation(n: u64, seed: u64) -> impl Iterator<Item = u64> {
    // An affine permutation of 0..n (multiplier odd and coprime with n's factors of 2 suffices
    // for power-of-two-free n; fall back to a stride walk that covers 0..n).
    let stride = (0x9e37_79b9u64 ^ seed) | 1;
    let stride = (1..)
        .map(|d| stride + 2 * d)
        .find(|s| gcd(*s, n) == 1)
        .unwrap_or(1);
    (0..n).map(move |i| (i.wrapping_mul(stride) + seed) % n)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() as f64 - 1.0) * p) as usize]
}

fn get_latencies(db: &Db, n: u64, samples: usize) -> (Duration, Duration) {
    let mut lat = Vec::with_capacity(samples);
    for i in permutation(n, 7).take(samples) {
        let t = Instant::now();
        let v = db.get(key(i)).expect("get");
        lat.push(t.elapsed());
        assert!(v.is_some(), "key {i} missing");
    }
    (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut entries: u64 = 6_000_000;
    let mut wbs_mb: usize = 64;
    let mut dir_arg = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--entries" => entries = args.next().ok_or("--entries N")?.parse()?,
            "--write-buffer-mb" => wbs_mb = args.next().ok_or("--write-buffer-mb M")?.parse()?,
            "--dir" => dir_arg = Some(std::path::PathBuf::from(args.next().ok_or("--dir PATH")?)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let tmp = tempfile::tempdir()?;
    let dir = dir_arg.unwrap_or_else(|| tmp.path().join("db"));
    let opts = Options {
        write_buffer_size: wbs_mb << 20,
        ..Options::create()
    };
    println!(
        "leveled: {entries} random inserts then {entries} random overwrites, 16 B keys, 100 B values, \
         write_buffer_size {wbs_mb} MiB, level base {} MiB, target file {} MiB",
        opts.max_bytes_for_level_base >> 20,
        opts.target_file_size >> 20
    );
    let db = Db::open(&dir, opts)?;
    // Incompressible values, so that lz4 does not flatter the amplification numbers.
    let value = |i: u64, round: u8| {
        let mut v = [0u8; 100];
        let mut x = i.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ (u64::from(round) << 56) | 1;
        for chunk in v.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        v
    };
    for round in 0..2u8 {
        let t = Instant::now();
        let mut b = WriteBatch::new();
        for i in permutation(entries, round as u64 * 31 + 1) {
            b.put(key(i), value(i, round));
            if b.count() == 1000 {
                db.write(std::mem::take(&mut b))?;
            }
        }
        db.write(b)?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{}: {:.1} s, {:.0} writes/s",
            if round == 0 { "insert" } else { "overwrite" },
            secs,
            entries as f64 / secs
        );
    }
    let (p50, p99) = get_latencies(&db, entries, 200_000);
    println!("get latency right after writing: p50 {p50:?}, p99 {p99:?}");
    let before = db.stats();
    println!("{}", before.report());

    let t = Instant::now();
    db.compact_range::<&[u8]>(..)?;
    println!("compact_range(..) took {:.1} s", t.elapsed().as_secs_f64());
    let (p50, p99) = get_latencies(&db, entries, 200_000);
    println!("get latency after compaction settled: p50 {p50:?}, p99 {p99:?}");
    let s = db.stats();
    println!("{}", s.report());
    println!(
        "space amplification before settling {:.3} (disk bytes {} / fully compacted bytes {})",
        (before.table_bytes() + before.wal_file_bytes) as f64 / s.table_bytes() as f64,
        before.table_bytes() + before.wal_file_bytes,
        s.table_bytes()
    );
    println!(
        "write amplification {:.2} (table bytes written / user bytes written); table bytes {} for \
         {} bytes of live keys and values",
        s.write_amplification(),
        s.table_bytes(),
        entries * 116
    );
    Ok(())
}
