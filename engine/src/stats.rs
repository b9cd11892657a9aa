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
}

impl Stats {
    /// Memory the engine holds by its own accounting: memtables, block cache, open tables'
    /// metadata.
    pub fn memory_bytes(&self) -> u64 {
        self.memtable_bytes
            + self.immutable_memtable_bytes
            + self.block_cache_bytes
            + self.table_metadata_bytes
    }
}
