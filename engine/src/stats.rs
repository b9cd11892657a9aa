//! Statistics: counters kept with atomics on the hot paths, and the snapshot `Db::stats` returns.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::version::NUM_LEVELS;

/// Counters bumped by the engine. Relaxed ordering: they are statistics, not synchronization.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub writes: AtomicU64,
    pub write_batches: AtomicU64,
    pub write_groups: AtomicU64,
    pub wal_syncs: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_bytes: AtomicU64,
    pub write_stalls: AtomicU64,
    pub write_stall_micros: AtomicU64,
    pub wal_recovery_dropped_bytes: AtomicU64,
    pub user_bytes_written: AtomicU64,
    pub trivial_moves: AtomicU64,
    pub compaction_errors: AtomicU64,
    pub tables_dropped_by_range_deletion: AtomicU64,
    /// Per output level.
    pub levels: [LevelCounters; NUM_LEVELS],
}

/// Compaction counters of one output level.
#[derive(Debug, Default)]
pub(crate) struct LevelCounters {
    pub compactions: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub micros: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A snapshot of the engine's statistics and memory use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Updates (puts and deletes) written.
    pub writes: u64,
    /// Write batches written (each `put`/`delete` is a batch of one).
    pub write_batches: u64,
    /// WAL records appended by group-commit leaders; one per group.
    pub write_groups: u64,
    /// `fdatasync` calls on the WAL. With group commit this is far below `write_batches` when
    /// many threads write with `sync`.
    pub wal_syncs: u64,
    /// Bytes appended to WALs.
    pub wal_bytes: u64,
    /// Memtables flushed to level-0 tables.
    pub flushes: u64,
    /// Bytes of tables written by flushes.
    pub flush_bytes: u64,
    /// Times a writer had to wait for a flush (too many memtables).
    pub write_stalls: u64,
    /// Microseconds writers spent stalled.
    pub write_stall_micros: u64,
    /// Bytes of WAL dropped at the last open (a torn tail, or more in point-in-time mode).
    pub wal_recovery_dropped_bytes: u64,
    /// Bytes allocated by the active memtable.
    pub memtable_bytes: u64,
    /// Memtables waiting to be flushed.
    pub immutable_memtables: u64,
    /// Bytes allocated by memtables waiting to be flushed.
    pub immutable_memtable_bytes: u64,
    /// Bytes of decompressed blocks in the block cache.
    pub block_cache_bytes: u64,
    /// Capacity of the block cache.
    pub block_cache_capacity: u64,
    /// Block cache hits.
    pub block_cache_hits: u64,
    /// Block cache misses.
    pub block_cache_misses: u64,
    /// Tables held open by the table cache.
    pub open_tables: u64,
    /// Bytes of index, filter and properties blocks held by open tables.
    pub table_metadata_bytes: u64,
    /// Table files per level.
    pub files_per_level: [u64; NUM_LEVELS],
    /// Bytes of table files per level.
    pub bytes_per_level: [u64; NUM_LEVELS],
    /// Last sequence number written.
    pub last_sequence: u64,
    /// Live snapshots.
    pub live_snapshots: u64,
    /// Bytes of keys and values written by users (the denominator of write amplification).
    pub user_bytes_written: u64,
    /// Files moved down a level without being rewritten.
    pub trivial_moves: u64,
    /// Compactions that failed (their inputs are left alone until the database is reopened).
    pub compaction_errors: u64,
    /// Tables dropped whole by compaction because a range tombstone covered them.
    pub tables_dropped_by_range_deletion: u64,
    /// Compactions per output level.
    pub compactions_per_level: [u64; NUM_LEVELS],
    /// Bytes read by compactions, per output level.
    pub compaction_bytes_read_per_level: [u64; NUM_LEVELS],
    /// Bytes written by compactions, per output level.
    pub compaction_bytes_written_per_level: [u64; NUM_LEVELS],
    /// Microseconds spent in compactions, per output level.
    pub compaction_micros_per_level: [u64; NUM_LEVELS],
    /// Bytes of live WAL files.
    pub wal_file_bytes: u64,
    /// Estimated bytes of live data: table bytes with each key range counted once, at the
    /// deepest level that holds it (as RocksDB's `estimate-live-data-size`).
    pub estimated_live_bytes: u64,
    /// Estimated bytes compaction must still rewrite to bring every level within its target
    /// (RocksDB's `estimate-pending-compaction-bytes`); grows when compaction falls behind.
    pub pending_compaction_bytes: u64,
}

impl Stats {
    /// Bytes written to tables (flushes and compactions) per byte of user data written.
    pub fn write_amplification(&self) -> f64 {
        let written =
            self.flush_bytes + self.compaction_bytes_written_per_level.iter().sum::<u64>();
        written as f64 / self.user_bytes_written.max(1) as f64
    }

    /// Bytes of all tables.
    pub fn table_bytes(&self) -> u64 {
        self.bytes_per_level.iter().sum()
    }

    /// Disk bytes (tables and WALs) per byte of estimated live data.
    pub fn space_amplification(&self) -> f64 {
        (self.table_bytes() + self.wal_file_bytes) as f64 / self.estimated_live_bytes.max(1) as f64
    }

    /// A multi-line table in the spirit of RocksDB's `rocksdb.stats`.
    pub fn report(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Level  Files   Size(MB)  Compactions  Read(MB)  Write(MB)  Time(s)"
        );
        for l in 0..NUM_LEVELS {
            let _ = writeln!(
                out,
                "  L{l}  {:>6} {:>10.2} {:>12} {:>9.2} {:>10.2} {:>8.2}",
                self.files_per_level[l],
                self.bytes_per_level[l] as f64 / 1e6,
                self.compactions_per_level[l],
                self.compaction_bytes_read_per_level[l] as f64 / 1e6,
                self.compaction_bytes_written_per_level[l] as f64 / 1e6,
                self.compaction_micros_per_level[l] as f64 / 1e6,
            );
        }
        let _ = writeln!(
            out,
            "user writes: {} ({:.2} MB); flushed {:.2} MB in {} flushes; trivial moves {}; compaction errors {}",
            self.writes,
            self.user_bytes_written as f64 / 1e6,
            self.flush_bytes as f64 / 1e6,
            self.flushes,
            self.trivial_moves,
            self.compaction_errors
        );
        let _ = writeln!(
            out,
            "write amplification {:.2}; space amplification {:.2} ({:.2} MB on disk, {:.2} MB live est.)",
            self.write_amplification(),
            self.space_amplification(),
            (self.table_bytes() + self.wal_file_bytes) as f64 / 1e6,
            self.estimated_live_bytes as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "write stalls: {} ({:.3} s); WAL: {} syncs, {} groups, {} batches",
            self.write_stalls,
            self.write_stall_micros as f64 / 1e6,
            self.wal_syncs,
            self.write_groups,
            self.write_batches
        );
        out
    }

    /// Memory the engine holds by its own accounting: memtables, block cache, open tables'
    /// metadata.
    pub fn memory_bytes(&self) -> u64 {
        self.memtable_bytes
            + self.immutable_memtable_bytes
            + self.block_cache_bytes
            + self.table_metadata_bytes
    }
}
