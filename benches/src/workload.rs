//! The workloads (db_bench's names, plus YCSB A-F) and how each one drives an engine: what a
//! run shares ([`Bench`], the live-key set) and what it reports ([`Outcome`]). The YCSB mixes
//! are in `workload/ycsb.rs`; the threads that run a workload and tally it, in
//! `workload/threads.rs`.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;

use crate::engine::{BatchOp, KvEngine};
use strata_workload::keys::{
    make_key, Distribution, KeyPicker, ScatteredOrder, ValuePool, Zipfian,
};
use strata_workload::ycsb::Ycsb;

mod threads;
mod ycsb;

/// One benchmark of `--benchmarks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Write `num` keys in key order into a fresh database.
    FillSeq,
    /// Write `num` keys, each once, in scattered order into a fresh database.
    FillRandom,
    /// `fillseq` in write batches of 1000.
    FillBatch,
    /// Write `num` random existing keys (new values).
    Overwrite,
    /// Read `reads` random existing keys.
    ReadRandom,
    /// Read `reads` random keys that are not there (they sort between present keys).
    ReadMissing,
    /// Read `reads` entries in key order with one iterator per thread.
    ReadSeq,
    /// Seek to `reads` random keys and read `seek_nexts + 1` entries from each.
    SeekRandom,
    /// Delete `num` random keys (with replacement, as db_bench).
    DeleteRandom,
    /// `threads` readers read random keys while one more thread overwrites random keys.
    ReadWhileWriting,
    /// YCSB workload A-F (`reads` operations).
    Ycsb(Ycsb),
}

impl FromStr for Workload {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "fillseq" => Workload::FillSeq,
            "fillrandom" => Workload::FillRandom,
            "fillbatch" => Workload::FillBatch,
            "overwrite" => Workload::Overwrite,
            "readrandom" => Workload::ReadRandom,
            "readmissing" => Workload::ReadMissing,
            "readseq" => Workload::ReadSeq,
            "seekrandom" => Workload::SeekRandom,
            "deleterandom" => Workload::DeleteRandom,
            "readwhilewriting" => Workload::ReadWhileWriting,
            _ => match Ycsb::from_name(s) {
                Some(mix) => Workload::Ycsb(mix),
                None => anyhow::bail!(
                    "unknown benchmark {s:?}; known: fillseq, fillrandom, fillbatch, overwrite, \
                     readrandom, readmissing, readseq, seekrandom, deleterandom, \
                     readwhilewriting, ycsba..ycsbf"
                ),
            },
        })
    }
}

impl Workload {
    /// The name as given on the command line.
    pub fn name(&self) -> String {
        match self {
            Workload::FillSeq => "fillseq".into(),
            Workload::FillRandom => "fillrandom".into(),
            Workload::FillBatch => "fillbatch".into(),
            Workload::Overwrite => "overwrite".into(),
            Workload::ReadRandom => "readrandom".into(),
            Workload::ReadMissing => "readmissing".into(),
            Workload::ReadSeq => "readseq".into(),
            Workload::SeekRandom => "seekrandom".into(),
            Workload::DeleteRandom => "deleterandom".into(),
            Workload::ReadWhileWriting => "readwhilewriting".into(),
            Workload::Ycsb(mix) => mix.name().into(),
        }
    }

    /// Fills start from an empty database, as in db_bench.
    pub fn needs_fresh_db(&self) -> bool {
        matches!(
            self,
            Workload::FillSeq | Workload::FillRandom | Workload::FillBatch
        )
    }
}

/// Sizes and counts shared by all workloads of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunConfig {
    /// Keys in the database after a fill.
    pub num: u64,
    /// Operations of the read workloads and YCSB mixes.
    pub reads: u64,
    /// Bytes per key.
    pub key_size: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// Threads per workload (readers, for readwhilewriting).
    pub threads: usize,
    /// Updates per write call in fillseq, fillrandom and overwrite (1: plain puts).
    pub batch_size: usize,
    /// Entries read after each seek of seekrandom.
    pub seek_nexts: usize,
    /// How random workloads pick existing keys.
    pub distribution: Distribution,
    /// Seed of the random key choices.
    pub seed: u64,
}

/// Which keys exist: a bit per key of `0..num`, plus a count of keys inserted beyond `num`.
pub struct LiveKeys {
    bits: Vec<AtomicU64>,
    inserted: AtomicU64,
}

impl LiveKeys {
    fn new(num: u64) -> Self {
        LiveKeys {
            bits: (0..num.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            inserted: AtomicU64::new(0),
        }
    }

    fn set(&self, id: u64, live: bool) {
        let (word, bit) = ((id / 64) as usize, 1u64 << (id % 64));
        if let Some(w) = self.bits.get(word) {
            if live {
                w.fetch_or(bit, Ordering::Relaxed);
            } else {
                w.fetch_and(!bit, Ordering::Relaxed);
            }
        }
    }

    /// Keys that exist.
    pub fn count(&self) -> u64 {
        let bits: u64 = self
            .bits
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum();
        bits + self.inserted.load(Ordering::Relaxed)
    }

    /// Forgets every key (the database was wiped).
    pub fn clear(&self) {
        for w in &self.bits {
            w.store(0, Ordering::Relaxed);
        }
        self.inserted.store(0, Ordering::Relaxed);
    }
}

/// What one workload did and how long it took.
#[derive(Debug)]
pub struct Outcome {
    /// Operations measured (entries, for batched writes and scans).
    pub ops: u64,
    /// Wall-clock time of the whole workload.
    pub elapsed: Duration,
    /// Latency of each measured call, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Key and value bytes moved (written or read).
    pub bytes: u64,
    /// Key and value bytes written by the user (the denominator of write amplification).
    pub user_bytes_written: u64,
    /// Reads that found their key, for read workloads.
    pub found: Option<u64>,
    /// Anything else worth a note on the result line.
    pub note: Option<String>,
}

/// Everything the workloads of one engine's run share.
pub struct Bench {
    cfg: RunConfig,
    values: ValuePool,
    zipf: Zipfian,
    /// Which keys exist now.
    pub live: LiveKeys,
    salt: AtomicU64,
}

impl Bench {
    /// Prepares value bytes and the Zipfian constants for `cfg`.
    pub fn new(cfg: RunConfig) -> Self {
        Bench {
            values: ValuePool::new(cfg.value_size),
            zipf: Zipfian::new(cfg.num),
            live: LiveKeys::new(cfg.num),
            salt: AtomicU64::new(0),
            cfg,
        }
    }

    /// Key and value bytes of the keys that exist now.
    pub fn live_bytes(&self) -> u64 {
        self.live.count() * (self.cfg.key_size + self.cfg.value_size) as u64
    }

    /// Operations `w` will run (the length of its progress bar).
    pub fn planned_ops(&self, w: Workload) -> u64 {
        match w {
            Workload::FillSeq
            | Workload::FillRandom
            | Workload::FillBatch
            | Workload::Overwrite
            | Workload::DeleteRandom => self.cfg.num,
            _ => self.cfg.reads,
        }
    }

    /// Runs `w` against `engine`, counting progress on `bar`.
    pub fn run(
        &self,
        w: Workload,
        engine: &dyn KvEngine,
        bar: &ProgressBar,
    ) -> anyhow::Result<Outcome> {
        let ops = self.planned_ops(w);
        let salt = self.salt.fetch_add(1, Ordering::Relaxed) + 1;
        let order = ScatteredOrder::new(self.cfg.num.max(1));
        let kv = (self.cfg.key_size + self.cfg.value_size) as u64;
        let (mut outcome, reads_found) = match w {
            Workload::FillSeq => (
                self.write_keys(engine, bar, ops, self.cfg.batch_size, salt, |i, _| i)?,
                false,
            ),
            Workload::FillBatch => (
                self.write_keys(engine, bar, ops, 1000, salt, |i, _| i)?,
                false,
            ),
            Workload::FillRandom => (
                self.write_keys(engine, bar, ops, self.cfg.batch_size, salt, |i, _| {
                    order.at(i)
                })?,
                false,
            ),
            Workload::Overwrite => (
                self.write_keys(engine, bar, ops, self.cfg.batch_size, salt, |_, p| {
                    p.next_key()
                })?,
                false,
            ),
            Workload::ReadRandom | Workload::ReadMissing => {
                let missing = w == Workload::ReadMissing;
                let o = self.parallel(bar, ops, self.cfg.threads, |t, range, tally| {
                    let mut picker = self.picker(t);
                    let mut key = vec![0u8; self.cfg.key_size];
                    for _ in range {
                        make_key(&mut key, picker.next_key(), missing);
                        let start = Instant::now();
                        let got = engine.get(&key)?;
                        tally.record(start);
                        if let Some(len) = got {
                            anyhow::ensure!(!missing, "found a key that was never written");
                            anyhow::ensure!(
                                len == self.cfg.value_size,
                                "value of {} bytes, wrote {}",
                                len,
                                self.cfg.value_size
                            );
                            tally.found += 1;
                            tally.bytes += kv;
                        }
                        tally.done(1);
                    }
                    Ok(())
                })?;
                (o, true)
            }
            Workload::ReadSeq => {
                let threads = self.cfg.threads as u64;
                let o = self.parallel(bar, ops, self.cfg.threads, |t, range, tally| {
                    // Thread t starts at its share of the key space and reads its share of
                    // the operations with one iterator.
                    let mut key = vec![0u8; self.cfg.key_size];
                    make_key(&mut key, self.cfg.num * t as u64 / threads, false);
                    let want = (range.end - range.start) as usize;
                    let mut last = Instant::now();
                    let read = engine.scan(&key, want, &mut |k, v| {
                        tally.record(last);
                        last = Instant::now();
                        tally.bytes += (k.len() + v.len()) as u64;
                        tally.done(1);
                    })?;
                    tally.found += read as u64;
                    Ok(())
                })?;
                (o, true)
            }
            Workload::SeekRandom => {
                let o = self.parallel(bar, ops, self.cfg.threads, |t, range, tally| {
                    let mut picker = self.picker(t);
                    let mut key = vec![0u8; self.cfg.key_size];
                    for _ in range {
                        make_key(&mut key, picker.next_key(), false);
                        let start = Instant::now();
                        let mut bytes = 0u64;
                        let n = engine.scan(&key, self.cfg.seek_nexts + 1, &mut |k, v| {
                            bytes += (k.len() + v.len()) as u64;
                        })?;
                        tally.record(start);
                        tally.bytes += bytes;
                        tally.found += u64::from(n > 0);
                        tally.done(1);
                    }
                    Ok(())
                })?;
                (o, true)
            }
            Workload::DeleteRandom => {
                let o = self.parallel(bar, ops, self.cfg.threads, |t, range, tally| {
                    let mut picker = self.picker(t);
                    let mut key = vec![0u8; self.cfg.key_size];
                    for _ in range {
                        let id = picker.next_key();
                        make_key(&mut key, id, false);
                        let start = Instant::now();
                        engine.delete(&key)?;
                        tally.record(start);
                        self.live.set(id, false);
                        tally.bytes += key.len() as u64;
                        tally.written += key.len() as u64;
                        tally.done(1);
                    }
                    Ok(())
                })?;
                (o, false)
            }
            Workload::ReadWhileWriting => (self.read_while_writing(engine, bar, ops, salt)?, true),
            Workload::Ycsb(mix) => {
                // Only part of a mix reads: say how many reads found a key, not "of ops".
                let mut o = self.ycsb(mix, engine, bar, ops, salt)?;
                o.note = o.found.map(|f| format!("{f} reads and scans found a key"));
                (o, false)
            }
        };
        if !reads_found {
            outcome.found = None;
        }
        Ok(outcome)
    }

    fn picker(&self, thread: usize) -> KeyPicker {
        let seed = self.cfg.seed
            ^ (thread as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ self.salt.load(Ordering::Relaxed);
        KeyPicker::new(seed, &self.zipf, self.cfg.distribution)
    }

    /// Writes `ops` keys, `key_of(position, picker)` choosing each, in calls of `batch`
    /// updates across the configured threads.
    fn write_keys(
        &self,
        engine: &dyn KvEngine,
        bar: &ProgressBar,
        ops: u64,
        batch: usize,
        salt: u64,
        key_of: impl Fn(u64, &mut KeyPicker) -> u64 + Sync,
    ) -> anyhow::Result<Outcome> {
        let batch = batch.max(1);
        let (ks, vs) = (self.cfg.key_size, self.cfg.value_size);
        self.parallel(bar, ops, self.cfg.threads, |t, range, tally| {
            let mut picker = self.picker(t);
            let mut keys = vec![0u8; ks * batch];
            let mut ids = Vec::with_capacity(batch);
            let mut i = range.start;
            while i < range.end {
                let n = batch.min((range.end - i) as usize);
                ids.clear();
                for (j, key) in keys.chunks_mut(ks).take(n).enumerate() {
                    let id = key_of(i + j as u64, &mut picker);
                    make_key(key, id, false);
                    ids.push(id);
                }
                let start = Instant::now();
                if n == 1 {
                    engine.put(&keys[..ks], self.values.value(ids[0], salt, vs))?;
                } else {
                    let ops: Vec<BatchOp<'_>> = keys
                        .chunks(ks)
                        .zip(&ids)
                        .map(|(k, &id)| BatchOp::Put(k, self.values.value(id, salt, vs)))
                        .collect();
                    engine.write_batch(&ops)?;
                }
                tally.record(start);
                for &id in &ids {
                    self.live.set(id, true);
                }
                tally.done(n as u64);
                tally.bytes += (n * (ks + vs)) as u64;
                tally.written += (n * (ks + vs)) as u64;
                i += n as u64;
            }
            Ok(())
        })
    }

    fn read_while_writing(
        &self,
        engine: &dyn KvEngine,
        bar: &ProgressBar,
        ops: u64,
        salt: u64,
    ) -> anyhow::Result<Outcome> {
        let done = AtomicBool::new(false);
        let writes = AtomicU64::new(0);
        let (ks, vs) = (self.cfg.key_size, self.cfg.value_size);
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| -> anyhow::Result<()> {
                let mut picker = self.picker(usize::MAX / 2);
                let mut key = vec![0u8; ks];
                while !done.load(Ordering::Relaxed) {
                    let id = picker.next_key();
                    make_key(&mut key, id, false);
                    engine.put(&key, self.values.value(id, salt, vs))?;
                    writes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            });
            let result = self.parallel(bar, ops, self.cfg.threads, |t, range, tally| {
                let mut picker = self.picker(t);
                let mut key = vec![0u8; ks];
                for _ in range {
                    make_key(&mut key, picker.next_key(), false);
                    let start = Instant::now();
                    let got = engine.get(&key)?;
                    tally.record(start);
                    if got.is_some() {
                        tally.found += 1;
                        tally.bytes += (ks + vs) as u64;
                    }
                    tally.done(1);
                }
                Ok(())
            });
            done.store(true, Ordering::Relaxed);
            let written = writer
                .join()
                .map_err(|_| anyhow::anyhow!("writer panicked"))?;
            written?;
            let mut o = result?;
            let w = writes.load(Ordering::Relaxed);
            o.user_bytes_written = w * (ks + vs) as u64;
            o.note = Some(format!("{w} writes alongside"));
            Ok(o)
        })
    }
}
