//! The table cache: keeps up to `max_open_files` tables open (mapped, with their index and
//! filter parsed) and opens others on demand.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::cache::BlockCache;
use crate::error::Result;
use crate::filename::{table_name, table_path};
use crate::fs::FileSystem;
use crate::sstable::Table;

/// Open tables by file number, least recently used evicted first.
///
/// Invariant (protected by `open`): `memory` is the sum of `Table::memory_usage` over the
/// tables in `open`. A table evicted while an iterator still holds its `Arc` stays mapped until
/// that iterator drops; the cache only bounds what *it* keeps.
pub struct TableCache {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    block_cache: Arc<BlockCache>,
    open: Mutex<OpenTables>,
}

struct OpenTables {
    lru: lru::LruCache<u64, Arc<Table>>,
    capacity: usize,
    memory: usize,
}

impl TableCache {
    /// A cache for the tables of the database in `dir`.
    pub fn new(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        capacity: usize,
        block_cache: Arc<BlockCache>,
    ) -> Self {
        TableCache {
            fs,
            dir,
            block_cache,
            open: Mutex::new(OpenTables {
                lru: lru::LruCache::unbounded(),
                capacity: capacity.max(1),
                memory: 0,
            }),
        }
    }

    /// The open table numbered `number`, opening it if needed. The file is opened and parsed
    /// outside the lock, so a slow open never blocks readers of other tables.
    pub fn get(&self, number: u64) -> Result<Arc<Table>> {
        if let Some(t) = self.open.lock().lru.get(&number) {
            return Ok(t.clone());
        }
        let path = table_path(&self.dir, number);
        let file = self
            .fs
            .open(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let table = Table::open(file, number, Some(self.block_cache.clone()))
            .map_err(|e| e.in_file(table_name(number), 0))?;
        let mut open = self.open.lock();
        if let Some(t) = open.lru.get(&number) {
            return Ok(t.clone()); // another reader won the race
        }
        open.memory += table.memory_usage();
        open.lru.put(number, table.clone());
        while open.lru.len() > open.capacity {
            if let Some((_, evicted)) = open.lru.pop_lru() {
                open.memory -= evicted.memory_usage();
            }
        }
        Ok(table)
    }

    /// Forgets a table (its file is being deleted).
    pub fn evict(&self, number: u64) {
        let mut open = self.open.lock();
        if let Some(t) = open.lru.pop(&number) {
            open.memory -= t.memory_usage();
        }
    }

    /// Number of tables held open.
    pub fn open_tables(&self) -> usize {
        self.open.lock().lru.len()
    }

    /// Bytes of index, filter and properties held by the open tables.
    pub fn memory_usage(&self) -> usize {
        self.open.lock().memory
    }

    /// The shared block cache.
    pub fn block_cache(&self) -> &Arc<BlockCache> {
        &self.block_cache
    }
}
