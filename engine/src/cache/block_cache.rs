//! A sharded LRU cache of decoded blocks, bounded by bytes.
//!
//! Keys are `(table cache id, block offset)`; the cache id is unique per opened
//! [`Table`](crate::sstable::Table) in this process, so a reused file number never aliases.
//! Each shard is an unbounded `lru::LruCache` behind a mutex, evicting least-recently-used blocks
//! until its byte usage fits its share of the capacity. A block larger than a shard's share is
//! not cached at all (it would only evict everything else).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

use crate::sstable::Block;

/// Default number of shards: enough that concurrent readers rarely contend.
pub const DEFAULT_SHARDS: usize = 16;

/// Cache key: `(table cache id, block offset)`.
pub type BlockCacheKey = (u64, u64);

struct Shard {
    lru: LruCache<BlockCacheKey, Arc<Block>>,
    usage: usize,
    capacity: usize,
}

impl Shard {
    fn insert(&mut self, key: BlockCacheKey, block: Arc<Block>) {
        let charge = block.size();
        if charge > self.capacity {
            if let Some(old) = self.lru.pop(&key) {
                self.usage -= old.size();
            }
            return;
        }
        if let Some(old) = self.lru.put(key, block) {
            self.usage -= old.size();
        }
        self.usage += charge;
        while self.usage > self.capacity {
            match self.lru.pop_lru() {
                Some((_, old)) => self.usage -= old.size(),
                None => break,
            }
        }
    }
}

/// A byte-bounded, sharded LRU cache of blocks. `Send + Sync`; share it as `Arc<BlockCache>`.
pub struct BlockCache {
    shards: Box<[Mutex<Shard>]>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("capacity", &self.capacity)
            .field("usage", &self.usage())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}

impl BlockCache {
    /// A cache holding at most `capacity_bytes` of blocks, in [`DEFAULT_SHARDS`] shards.
    pub fn new(capacity_bytes: usize) -> Self {
        Self::with_shards(capacity_bytes, DEFAULT_SHARDS)
    }

    /// A cache with `num_shards` shards (at least 1), each holding `capacity_bytes / num_shards`
    /// (rounded up).
    pub fn with_shards(capacity_bytes: usize, num_shards: usize) -> Self {
        let n = num_shards.max(1);
        let per_shard = capacity_bytes.div_ceil(n);
        let shards = (0..n)
            .map(|_| {
                Mutex::new(Shard {
                    lru: LruCache::unbounded(),
                    usage: 0,
                    capacity: per_shard,
                })
            })
            .collect();
        BlockCache {
            shards,
            capacity: capacity_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: BlockCacheKey) -> &Mutex<Shard> {
        // A fixed multiplicative mix of both halves; the high bits pick the shard.
        let h =
            (key.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key.1).wrapping_mul(0xff51_afd7_ed55_8ccd);
        let i = ((h >> 32) as usize) % self.shards.len();
        &self.shards[i]
    }

    /// The cached block for `key`, counting a hit or a miss.
    pub fn get(&self, key: BlockCacheKey) -> Option<Arc<Block>> {
        let found = self.shard(key).lock().lru.get(&key).cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Caches `block` under `key` (replacing any previous block), charged at [`Block::size`],
    /// evicting least-recently-used blocks of the same shard as needed.
    pub fn insert(&self, key: BlockCacheKey, block: Arc<Block>) {
        self.shard(key).lock().insert(key, block);
    }

    /// Bytes currently charged.
    pub fn usage(&self) -> usize {
        self.shards.iter().map(|s| s.lock().usage).sum()
    }

    /// Configured capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of blocks currently cached.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().lru.len()).sum()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups that found their block.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that did not.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(payload: usize) -> Arc<Block> {
        let mut data = vec![0u8; payload];
        data.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0]);
        Arc::new(Block::new(data).unwrap())
    }

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let b = block(1000);
        let charge = b.size();
        let cache = BlockCache::with_shards(charge * 3, 1);
        for off in 0..3 {
            cache.insert((1, off), block(1000));
        }
        assert_eq!(cache.usage(), 3 * charge);
        assert!(cache.get((1, 0)).is_some()); // 0 is now most recent
        cache.insert((1, 3), block(1000)); // evicts 1
        assert_eq!(cache.len(), 3);
        assert!(cache.get((1, 1)).is_none());
        assert!(cache.get((1, 0)).is_some());
        assert!(cache.get((1, 2)).is_some());
        assert!(cache.get((1, 3)).is_some());
        assert!(cache.usage() <= cache.capacity());
        assert_eq!(cache.hits(), 4);
        assert_eq!(cache.misses(), 1);

        // One big block evicts several small ones.
        cache.insert((2, 0), block(2 * 1000 + 50));
        assert!(cache.usage() <= cache.capacity());
        assert_eq!(
            cache.len(),
            1 + (cache.usage() - block(2050).size()) / charge
        );
        assert!(cache.get((2, 0)).is_some());

        // Larger than the whole cache: not cached, nothing else disturbed.
        let before = cache.usage();
        cache.insert((3, 0), block(10_000));
        assert!(cache.get((3, 0)).is_none());
        assert_eq!(cache.usage(), before);
    }

    #[test]
    fn replacing_a_key_recharges() {
        let cache = BlockCache::with_shards(1 << 20, 1);
        cache.insert((1, 0), block(100));
        cache.insert((1, 0), block(500));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.usage(), block(500).size());
    }

    #[test]
    fn sharded_cache_respects_capacity_and_ids_do_not_alias() {
        let cache = BlockCache::new(64 * 1024);
        for id in 0..8u64 {
            for off in 0..100u64 {
                cache.insert((id, off * 4096), block(500 + id as usize));
            }
        }
        assert!(cache.usage() <= cache.capacity() + DEFAULT_SHARDS);
        assert!(cache.usage() > cache.capacity() / 2);
        let zero = BlockCache::new(0);
        zero.insert((1, 1), block(10));
        assert!(zero.is_empty());
        // Same offset, different table ids: distinct entries.
        let c = BlockCache::with_shards(1 << 20, 4);
        c.insert((1, 0), block(10));
        c.insert((2, 0), block(20));
        assert_eq!(c.get((1, 0)).unwrap().data().len(), 18);
        assert_eq!(c.get((2, 0)).unwrap().data().len(), 28);
    }
}
