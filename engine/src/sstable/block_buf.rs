//! Recycled buffers for decoded blocks.
//!
//! A decoded block lives in a heap buffer from the moment it is read until the block cache
//! evicts it (or, for a compaction's reads, until the compaction moves on). With glibc's
//! allocator every thread allocates from an arena of its own and a freed buffer goes back to
//! the arena it came from, where freed space in the middle is never returned to the system. So
//! when the threads that read change (a thread pool turning over, a new workload), a full cache
//! migrates into new arenas while the old ones keep their high-water mark: measured in the
//! benchmark driver's `readwhilewriting`, that cost about 40 MiB for a 32 MiB cache.
//!
//! Recycling breaks the cycle: a dropped block's buffer is kept here, in a list per size class,
//! and the next block of that class is decoded into it, whichever thread asks. With a full cache
//! every miss evicts about one block, so the cache keeps reusing the same memory. At most
//! [`MAX_POOLED_BYTES`] wait here; buffers beyond that, and blocks larger than
//! [`MAX_POOLED_LEN`], are simply freed.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Buffers are allocated in multiples of this many bytes, one free list per multiple.
const CLASS_BYTES: usize = 512;
/// Blocks larger than this are allocated and freed normally.
pub const MAX_POOLED_LEN: usize = 64 << 10;
/// Most bytes of free buffers kept.
pub const MAX_POOLED_BYTES: usize = 4 << 20;

const CLASSES: usize = MAX_POOLED_LEN / CLASS_BYTES;

/// Free buffers by size class.
struct BufferPool {
    /// Invariant: every buffer in list `c` has capacity exactly `(c + 1) * CLASS_BYTES`, and
    /// `pooled` is at least the sum of their capacities (it counts a buffer while it is being
    /// added) and at most `max_bytes`.
    free: [Mutex<Vec<Vec<u8>>>; CLASSES],
    pooled: AtomicUsize,
    max_bytes: usize,
}

/// The pool every block uses.
static POOL: BufferPool = BufferPool::new(MAX_POOLED_BYTES);

/// The class of a buffer able to hold `len` bytes, if pooled.
fn class_of(len: usize) -> Option<usize> {
    (1..=MAX_POOLED_LEN)
        .contains(&len)
        .then(|| len.div_ceil(CLASS_BYTES) - 1)
}

impl BufferPool {
    const fn new(max_bytes: usize) -> BufferPool {
        BufferPool {
            free: [const { Mutex::new(Vec::new()) }; CLASSES],
            pooled: AtomicUsize::new(0),
            max_bytes,
        }
    }

    fn take(&self, len: usize) -> Vec<u8> {
        let Some(c) = class_of(len) else {
            return Vec::with_capacity(len);
        };
        if let Some(buf) = self.free[c].lock().pop() {
            self.pooled.fetch_sub(buf.capacity(), Ordering::Relaxed);
            return buf;
        }
        Vec::with_capacity((c + 1) * CLASS_BYTES)
    }

    fn give(&self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap == 0 || !cap.is_multiple_of(CLASS_BYTES) || cap > MAX_POOLED_LEN {
            return;
        }
        if self.pooled.fetch_add(cap, Ordering::Relaxed) + cap > self.max_bytes {
            self.pooled.fetch_sub(cap, Ordering::Relaxed);
            return;
        }
        buf.clear();
        self.free[cap / CLASS_BYTES - 1].lock().push(buf);
    }
}

/// An empty buffer with room for `len` bytes, recycled if one is free.
pub fn take(len: usize) -> Vec<u8> {
    POOL.take(len)
}

/// A buffer holding a copy of `bytes`.
pub fn copy_of(bytes: &[u8]) -> Vec<u8> {
    let mut buf = take(bytes.len());
    buf.extend_from_slice(bytes);
    buf
}

/// Hands a buffer back for reuse (or frees it).
pub fn give(buf: Vec<u8>) {
    POOL.give(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_again_for_its_class_only() {
        let pool = BufferPool::new(1 << 20);
        let mut a = pool.take(4100);
        assert_eq!(a.capacity(), 4608);
        a.extend_from_slice(&[7; 10]);
        let ptr = a.as_ptr();
        pool.give(a);
        let small = pool.take(100);
        assert_ne!(small.as_ptr(), ptr);
        let b = pool.take(4200);
        assert_eq!(b.as_ptr(), ptr, "the same class reuses the buffer");
        assert!(b.is_empty(), "a recycled buffer comes back empty");
        let c = pool.take(4200);
        assert_ne!(c.as_ptr(), ptr, "a buffer is taken once");
    }

    #[test]
    fn the_pool_keeps_at_most_its_bound_and_only_its_own_sizes() {
        let pool = BufferPool::new(3 * 4096);
        for _ in 0..5 {
            pool.give(Vec::with_capacity(4096));
        }
        assert_eq!(pool.pooled.load(Ordering::Relaxed), 3 * 4096);
        pool.give(Vec::with_capacity(1000));
        pool.give(Vec::with_capacity(MAX_POOLED_LEN + CLASS_BYTES));
        pool.give(Vec::new());
        assert_eq!(pool.pooled.load(Ordering::Relaxed), 3 * 4096);
        for _ in 0..3 {
            assert_eq!(pool.take(4000).capacity(), 4096);
        }
        assert_eq!(pool.pooled.load(Ordering::Relaxed), 0);
        assert_eq!(pool.take(MAX_POOLED_LEN + 1).capacity(), MAX_POOLED_LEN + 1);
        assert_eq!(copy_of(b"abc"), b"abc");
    }
}
