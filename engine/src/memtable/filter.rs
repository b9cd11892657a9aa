//! A Bloom filter over a memtable's user keys (RocksDB's `memtable_whole_key_filtering`).
//!
//! A point lookup searches every memtable before the tables, and a skiplist search in a large
//! memtable is a chain of cache misses. Most lookups of a big database are for keys that are
//! not in the memtable, and this filter answers those with one cache line: it uses the tables'
//! cache-local Bloom layout (see [`crate::sstable::filter`]) over atomic words, so the writer
//! adds keys while readers probe, without locks.
//!
//! Visibility: the writer sets a key's bits before inserting its entry, and entries become
//! visible to readers only when the database publishes their sequence number under its state
//! lock, which readers take before reading. So every entry a reader may see has its bits set in
//! what the reader observes, and `Relaxed` atomics suffice.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::sstable::filter::{filter_hash, local_probes, num_probes};

/// Bits per key the filter is sized for.
const BITS_PER_KEY: usize = 10;
/// The filter assumes entries take at least this many bytes of the write buffer (key, value and
/// skiplist node): fewer, larger entries only make it more precise.
const MIN_ENTRY_BYTES: usize = 64;
/// `u64` words per 64-byte line.
const LINE_WORDS: usize = 8;

/// A concurrent Bloom filter over user keys, sized for one memtable.
pub struct MemFilter {
    words: Box<[AtomicU64]>,
    lines: usize,
    k: u32,
}

impl MemFilter {
    /// A filter for a memtable that holds up to `write_buffer_size` bytes: about 2% of it.
    pub fn for_write_buffer(write_buffer_size: usize) -> Self {
        let keys = write_buffer_size / MIN_ENTRY_BYTES;
        let lines = (keys * BITS_PER_KEY).div_ceil(LINE_WORDS * 64).max(1);
        MemFilter {
            words: (0..lines * LINE_WORDS).map(|_| AtomicU64::new(0)).collect(),
            lines,
            k: num_probes(BITS_PER_KEY as u32),
        }
    }

    /// Adds `user_key`.
    pub fn add(&self, user_key: &[u8]) {
        let (line, probes) = local_probes(filter_hash(user_key), self.lines, self.k);
        let line = &self.words[line * LINE_WORDS..][..LINE_WORDS];
        for bit in probes {
            line[bit / 64].fetch_or(1 << (bit % 64), Ordering::Relaxed);
        }
    }

    /// `false` if `user_key` was definitely never added.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        let (line, mut probes) = local_probes(filter_hash(user_key), self.lines, self.k);
        let line = &self.words[line * LINE_WORDS..][..LINE_WORDS];
        probes.all(|bit| line[bit / 64].load(Ordering::Relaxed) & (1 << (bit % 64)) != 0)
    }

    /// Bytes the filter occupies.
    pub fn memory_usage(&self) -> usize {
        self.words.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_keys_are_found_and_most_others_are_not() {
        let f = MemFilter::for_write_buffer(1 << 20);
        let n = (1 << 20) / MIN_ENTRY_BYTES;
        for i in 0..n {
            f.add(format!("present-{i}").as_bytes());
        }
        assert!((0..n).all(|i| f.may_contain(format!("present-{i}").as_bytes())));
        let fp = (0..n)
            .filter(|i| f.may_contain(format!("absent-{i}").as_bytes()))
            .count();
        let rate = fp as f64 / n as f64;
        assert!(rate < 0.02, "false-positive rate {rate} at the sizing's full load");
        assert!(f.memory_usage() <= (1 << 20) / 40, "{}", f.memory_usage());
    }

    #[test]
    fn tiny_buffers_get_a_working_filter() {
        let f = MemFilter::for_write_buffer(0);
        assert!(!f.may_contain(b"k"));
        f.add(b"k");
        assert!(f.may_contain(b"k"));
    }

    #[test]
    fn concurrent_adds_are_all_seen() {
        let f = MemFilter::for_write_buffer(1 << 16);
        std::thread::scope(|s| {
            for t in 0..4 {
                let f = &f;
                s.spawn(move || (0..500).for_each(|i| f.add(format!("{t}-{i}").as_bytes())));
            }
        });
        assert!((0..4).all(|t| (0..500).all(|i| f.may_contain(format!("{t}-{i}").as_bytes()))));
    }
}
