//! The interface the driver runs every workload through, and the settings every engine is
//! configured from, so that the engines compared are tuned alike.

use std::path::Path;

use serde::Serialize;

/// Engine tuning shared by every engine, taken from db_bench-style flags.
#[derive(Debug, Clone, Serialize)]
pub struct EngineSettings {
    /// Bytes a memtable takes before it is frozen and flushed.
    pub write_buffer_size: usize,
    /// Target size of an uncompressed data block.
    pub block_size: usize,
    /// Bloom filter bits per key; 0 disables filters.
    pub bloom_bits: u32,
    /// A Bloom filter over each memtable's keys, where the engine has one.
    pub memtable_filter: bool,
    /// Write the log through a memory mapping instead of `write(2)`, where the engine can.
    pub mmap_write: bool,
    /// Block compression: `none` or `lz4`.
    pub compression: Compression,
    /// Bytes of block cache.
    pub cache_size: usize,
    /// `fdatasync` the log before acknowledging each write.
    pub sync: bool,
    /// Background threads for flushes and compactions.
    pub background_jobs: usize,
}

/// Block compression, as far as every engine supports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Blocks stored raw.
    None,
    /// LZ4 block compression.
    Lz4,
}

/// One update of a write batch.
#[derive(Debug, Clone, Copy)]
pub enum BatchOp<'a> {
    /// Set a key to a value.
    Put(&'a [u8], &'a [u8]),
    /// Delete a key. (Part of the interface; no workload batches deletes yet.)
    #[allow(dead_code)]
    Delete(&'a [u8]),
}

/// What an engine says about itself after a run (the driver measures write and space
/// amplification itself, the same way for every engine; these are the engine's own accounts).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct EngineStats {
    /// The engine's own write amplification (table bytes written / user bytes), if it keeps one.
    pub write_amplification: Option<f64>,
    /// Free-form counters, as (name, value).
    pub counters: Vec<(String, u64)>,
}

/// A key-value engine under test. Implementations configure themselves from
/// [`EngineSettings`] as closely as the engine allows and say in `describe` what they did.
pub trait KvEngine: Send + Sync {
    /// Sets `key` to `value`.
    fn put(&self, key: &[u8], value: &[u8]) -> anyhow::Result<()>;
    /// The length of `key`'s value, if present (the length, not the bytes, so that engines
    /// that can read without copying are not charged for a copy the driver does not need).
    fn get(&self, key: &[u8]) -> anyhow::Result<Option<usize>>;
    /// Deletes `key`.
    fn delete(&self, key: &[u8]) -> anyhow::Result<()>;
    /// Applies `ops` atomically.
    fn write_batch(&self, ops: &[BatchOp<'_>]) -> anyhow::Result<()>;
    /// Reads up to `n` entries in key order starting at the first key `>= start`, handing each
    /// to `visit`; returns the number read.
    fn scan(
        &self,
        start: &[u8],
        n: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> anyhow::Result<usize>;
    /// Writes every memtable to disk and waits for it.
    fn flush(&self) -> anyhow::Result<()>;
    /// The engine's own statistics.
    fn stats(&self) -> EngineStats;
    /// Closes the engine, releasing its directory.
    fn close(self: Box<Self>) -> anyhow::Result<()>;
}

/// Names of the engines this build can run.
pub fn available_engines() -> Vec<&'static str> {
    let mut v = vec!["strata", "fjall"];
    if cfg!(feature = "rocksdb") {
        v.push("rocksdb");
    }
    v
}

/// Opens the engine called `name` in `dir` (created if missing).
pub fn open_engine(
    name: &str,
    dir: &Path,
    settings: &EngineSettings,
) -> anyhow::Result<Box<dyn KvEngine>> {
    match name {
        "strata" => Ok(Box::new(crate::engines::strata::StrataEngine::open(
            dir, settings,
        )?)),
        "fjall" => Ok(Box::new(crate::engines::fjall::FjallEngine::open(
            dir, settings,
        )?)),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Ok(Box::new(crate::engines::rocksdb::RocksDbEngine::open(
            dir, settings,
        )?)),
        #[cfg(not(feature = "rocksdb"))]
        "rocksdb" => anyhow::bail!(
            "this strata-bench was built without RocksDB: rebuild with `--features rocksdb`"
        ),
        other => anyhow::bail!(
            "unknown engine {other:?}; known: {}",
            available_engines().join(",")
        ),
    }
}

/// How each engine maps the shared settings onto its own options, for the report.
pub fn describe(name: &str, s: &EngineSettings) -> String {
    let bloom = if s.bloom_bits == 0 {
        "off".to_string()
    } else {
        format!("{} bits/key", s.bloom_bits)
    };
    let common = format!(
        "memtable {} B, block {} B, bloom {bloom}, compression {:?}, cache {} B, sync {}, \
         background threads {}",
        s.write_buffer_size, s.block_size, s.compression, s.cache_size, s.sync, s.background_jobs
    );
    let mem_filter = match (s.memtable_filter, name) {
        (false, _) => "no memtable filter",
        (true, "strata") => "memtable key filter (~2% of the memtable)",
        (true, "rocksdb") => "memtable whole-key filter (bloom size ratio 0.02)",
        (true, _) => "no memtable filter (not supported)",
    };
    let log = match (s.mmap_write, name) {
        (true, "strata") => "WAL written through mmap",
        (true, "rocksdb") => "allow_mmap_writes (WAL and tables)",
        (true, _) => "journal written with write(2) (no mmap option)",
        (false, _) => "log written with write(2)",
    };
    let extra = match name {
        "strata" => "leveled compaction (L0 trigger 4, L1 64 MiB, x10), 2 memtables max",
        "fjall" => {
            "one partition, leveled compaction (defaults), flush and compaction workers = \
             background threads each, journal flushed to the OS on every write"
        }
        "rocksdb" => "leveled compaction (defaults), 2 memtables max, block-based table",
        _ => "",
    };
    format!("{common}, {mem_filter}, {log}; {extra}")
}
