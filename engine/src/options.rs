//! Options for opening a database, writing and reading.

use std::sync::Arc;

use crate::fs::{FileSystem, StdFs};
use crate::snapshot::Snapshot;
pub use crate::sstable::Compression;
pub use crate::wal::WalRecoveryMode;

/// How a database is opened and tuned. `Options::default()` suits a general-purpose server;
/// every field documents its meaning and default.
#[derive(Debug, Clone)]
pub struct Options {
    /// Create the database if the directory holds none. Default `false`.
    pub create_if_missing: bool,
    /// Fail if a database already exists. Default `false`.
    pub error_if_exists: bool,
    /// On open, also read the footer, index and filter of every live table (not just check that
    /// it exists with the recorded size), so that a damaged table fails the open instead of a
    /// later read. Default `false`: opening a large database stays fast.
    pub paranoid_checks: bool,
    /// Bytes of updates a memtable takes before it is frozen and flushed to a level-0 table.
    /// Default 64 MiB.
    pub write_buffer_size: usize,
    /// Keep a Bloom filter over each memtable's keys (RocksDB's `memtable_whole_key_filtering`),
    /// so that point lookups of keys a memtable does not hold skip its skiplist search. It takes
    /// about 2% of `write_buffer_size` (counted in it) and costs each write one cache line.
    /// Default `true`.
    pub memtable_whole_key_filtering: bool,
    /// Memtables allowed in memory at once (the active one plus those waiting for flush); writers
    /// stall when it is reached. So memtables use at most about
    /// `write_buffer_size * max_write_buffer_number`. Default 2, minimum 2.
    pub max_write_buffer_number: usize,
    /// Target size of an uncompressed data block. Default 4 KiB.
    pub block_size: usize,
    /// Keys between restart points in a data block. Default 16.
    pub block_restart_interval: usize,
    /// Bloom filter bits per key (about 1% false positives at 10); 0 disables filters.
    /// Default 10.
    pub bloom_bits_per_key: u32,
    /// Block compression. A block is stored compressed only if that saves space. Default lz4.
    pub compression: Compression,
    /// Capacity of the cache of decompressed data blocks, in bytes. Default 32 MiB.
    pub block_cache_bytes: usize,
    /// Table files kept open (mapped, with their index and filter in memory). Default 1000.
    pub max_open_files: usize,
    /// Level-0 files that trigger a compaction into level 1. Default 4.
    pub level0_file_num_compaction_trigger: usize,
    /// Level-0 files at which each write is delayed by a millisecond, letting compaction catch
    /// up. Default 20.
    pub level0_slowdown_writes_trigger: usize,
    /// Level-0 files at which writes stop until compaction brings the count down. Default 36.
    pub level0_stop_writes_trigger: usize,
    /// Target size of level 1 in bytes; compaction keeps a level near its target. Default 64 MiB.
    pub max_bytes_for_level_base: u64,
    /// Each level's target is this many times the previous one's. Default 10.
    pub max_bytes_for_level_multiplier: u64,
    /// Compaction output files are cut at about this size. Default 8 MiB.
    pub target_file_size: u64,
    /// Background threads for flushes and compactions. With two or more, one of them only
    /// flushes, so a long compaction never delays a flush. Default 2.
    pub max_background_jobs: usize,
    /// Write the WAL through a shared memory mapping (RocksDB's `allow_mmap_writes`, for the
    /// WAL only), where the file system supports it: an unsynced write is then a copy into the
    /// page cache instead of a `write(2)`, with the same durability (it survives the process
    /// being killed; `sync` still `fdatasync`s). Space is reserved ahead in segments of up to
    /// 4 MiB, so a full disk fails a write instead of the process. Default `true`.
    pub wal_mmap_writes: bool,
    /// What to do with a damaged WAL on open. Default
    /// [`WalRecoveryMode::TolerateTornTail`]: drop only a torn record at the very end of the
    /// newest log, fail on anything else.
    pub wal_recovery_mode: WalRecoveryMode,
    /// The file system all I/O goes through. Default: the operating system's.
    pub fs: Arc<dyn FileSystem>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            create_if_missing: false,
            error_if_exists: false,
            paranoid_checks: false,
            write_buffer_size: 64 << 20,
            memtable_whole_key_filtering: true,
            max_write_buffer_number: 2,
            block_size: 4096,
            block_restart_interval: 16,
            bloom_bits_per_key: 10,
            compression: Compression::Lz4,
            block_cache_bytes: 32 << 20,
            max_open_files: 1000,
            level0_file_num_compaction_trigger: 4,
            level0_slowdown_writes_trigger: 20,
            level0_stop_writes_trigger: 36,
            max_bytes_for_level_base: 64 << 20,
            max_bytes_for_level_multiplier: 10,
            target_file_size: 8 << 20,
            max_background_jobs: 2,
            wal_mmap_writes: true,
            wal_recovery_mode: WalRecoveryMode::default(),
            fs: Arc::new(StdFs),
        }
    }
}

impl Options {
    /// Default options with `create_if_missing` set.
    pub fn create() -> Self {
        Options {
            create_if_missing: true,
            ..Options::default()
        }
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        let bad = |m: &str| Err(crate::Error::InvalidArgument(m.to_owned()));
        if self.write_buffer_size < 4096 {
            return bad("write_buffer_size must be at least 4096 bytes");
        }
        if self.max_write_buffer_number < 2 {
            return bad("max_write_buffer_number must be at least 2");
        }
        if self.block_size == 0 || self.block_restart_interval == 0 {
            return bad("block_size and block_restart_interval must be positive");
        }
        if self.max_open_files == 0 {
            return bad("max_open_files must be positive");
        }
        if self.level0_file_num_compaction_trigger == 0
            || self.level0_slowdown_writes_trigger < self.level0_file_num_compaction_trigger
            || self.level0_stop_writes_trigger < self.level0_slowdown_writes_trigger
        {
            return bad("need 0 < level0 compaction trigger <= slowdown trigger <= stop trigger");
        }
        if self.max_bytes_for_level_base == 0
            || self.max_bytes_for_level_multiplier < 2
            || self.target_file_size == 0
        {
            return bad("level base and target file size must be positive, the multiplier >= 2");
        }
        if self.max_background_jobs == 0 {
            return bad("max_background_jobs must be at least 1");
        }
        Ok(())
    }
}

/// Options for one write.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// `fdatasync` the WAL before acknowledging, so the write survives a power cut, not only a
    /// process crash. Concurrent synced writers share one sync (group commit). Default `false`.
    pub sync: bool,
}

/// Options for reads and scans.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Read as of this snapshot instead of the latest state.
    pub snapshot: Option<Snapshot>,
}

impl ReadOptions {
    /// Reads at `snapshot`.
    pub fn at(snapshot: &Snapshot) -> Self {
        ReadOptions {
            snapshot: Some(snapshot.clone()),
        }
    }
}
