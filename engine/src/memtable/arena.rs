//! A bump allocator for memtable nodes.
//!
//! ```text
//! chunk (chunk_size bytes, 8-aligned, zeroed)
//! +--------+--------+-----+--------+-------------+
//! | alloc0 | alloc1 | ... | allocN | unused tail |
//! +--------+--------+-----+--------+-------------+
//!  ^ every allocation starts on an 8-byte boundary and is padded to a multiple of 8
//! ```
//!
//! Allocations come from the current chunk; when it cannot hold the next one, the tail is abandoned
//! and a fresh chunk is started. A request larger than a quarter of the chunk size gets a chunk of
//! its own, so big entries neither waste a mostly-empty chunk's tail nor force a huge chunk size.
//!
//! Chunks of [`MAP_THRESHOLD`] bytes or more (every regular chunk of a real memtable) are mapped
//! straight from the OS, anonymous and zero-filled, and unmapped when the arena drops. Through
//! `malloc` they would be carved from the allocating thread's heap arena and, once freed, linger
//! there fragmented: in `strata-bench` that kept ~40 MiB more RssAnon than the memtables held.
//!
//! Chunks never move and are never freed or reused before the arena drops, which is what lets the
//! skiplist hand out raw node pointers: an address returned by [`Arena::allocate`] stays valid for
//! the arena's whole life, no matter how many allocations follow.

use std::ptr::NonNull;

/// Alignment, in bytes, of every allocation (enough for `u64` and atomic pointers).
pub const ARENA_ALIGN: usize = 8;

/// Smallest chunk size the arena uses; smaller requested sizes are raised to it.
pub const MIN_CHUNK_SIZE: usize = 64;

/// Chunks at least this big are mapped from the OS rather than taken from the heap.
pub const MAP_THRESHOLD: usize = 64 << 10;

/// The unit chunks are made of: its alignment is what makes every chunk 8-aligned.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Word([u8; ARENA_ALIGN]);

const _: () = assert!(std::mem::size_of::<Word>() == ARENA_ALIGN);
const _: () = assert!(std::mem::align_of::<Word>() == ARENA_ALIGN);

/// A bump allocator that owns its chunks until it drops.
///
/// Not thread-safe by itself (`allocate` takes `&mut self`); the skiplist keeps it behind its
/// writer mutex. The memory it hands out may be *read* from any thread (see the skiplist's
/// thread-safety contract).
pub struct Arena {
    chunk_size: usize,
    /// Every chunk ever allocated.
    chunks: Vec<Chunk>,
    /// Next free byte in the current chunk (dangling while `remaining == 0`).
    cursor: NonNull<u8>,
    /// Bytes left after `cursor` in the current chunk; always a multiple of `ARENA_ALIGN`.
    remaining: usize,
    /// Sum of the sizes of all chunks.
    memory_usage: usize,
}

/// One chunk's memory.
enum Chunk {
    /// From the heap, as a raw pointer obtained from `Box::leak`. Kept raw (not `Box`) so that
    /// moving the arena never asserts uniqueness over memory that readers are concurrently
    /// reading through node pointers.
    Heap(NonNull<[Word]>),
    /// An anonymous mapping (a raw OS mapping: moving the handle asserts nothing about it).
    Mapped(memmap2::MmapMut),
}

// SAFETY: `Arena` owns its chunks exclusively (like a `Vec<Box<[Word]>>`); the raw pointers only
// exist to avoid `Box`'s uniqueness assertions. Moving the arena to another thread moves that
// ownership; nothing in it is tied to a thread.
unsafe impl Send for Arena {}

impl Arena {
    /// Creates an empty arena whose regular chunks hold `chunk_size` bytes (raised to
    /// [`MIN_CHUNK_SIZE`] and rounded up to a multiple of [`ARENA_ALIGN`]). No memory is allocated
    /// until the first [`allocate`](Arena::allocate).
    pub fn new(chunk_size: usize) -> Self {
        let chunk_size = round_up(chunk_size.max(MIN_CHUNK_SIZE));
        Arena {
            chunk_size,
            chunks: Vec::new(),
            cursor: NonNull::dangling(),
            remaining: 0,
            memory_usage: 0,
        }
    }

    /// Returns `size` zeroed bytes starting on an [`ARENA_ALIGN`]-byte boundary.
    ///
    /// The memory stays valid, at the same address, until the arena drops; it is never handed out
    /// twice. The pointer carries provenance over the whole block, so callers may write to it
    /// (through raw pointers) and later read it from other threads once published.
    ///
    /// # Panics
    /// If `size` is 0, or if rounding it up overflows `usize` / allocation fails.
    pub fn allocate(&mut self, size: usize) -> NonNull<u8> {
        assert!(size > 0, "zero-sized arena allocation");
        let size = round_up(size);
        if size > self.chunk_size / 4 {
            // Dedicated chunk; the current chunk keeps serving small requests.
            return self.new_chunk(size);
        }
        if size > self.remaining {
            // Abandon the tail of the current chunk.
            self.cursor = self.new_chunk(self.chunk_size);
            self.remaining = self.chunk_size;
        }
        let result = self.cursor;
        // SAFETY: `size <= remaining`, so `cursor + size` is within (or one past the end of) the
        // current chunk, which `cursor` has provenance over.
        self.cursor = unsafe { self.cursor.add(size) };
        self.remaining -= size;
        result
    }

    /// Returns `size` zeroed, [`ARENA_ALIGN`]-aligned bytes in a chunk of their own (exactly
    /// `size` rounded up to the alignment), leaving the current chunk alone. For long-lived
    /// blocks allocated up front, such as the skiplist's head node, so that an empty arena does
    /// not yet count a whole chunk. Same guarantees and panics as [`allocate`](Arena::allocate).
    pub fn allocate_dedicated(&mut self, size: usize) -> NonNull<u8> {
        assert!(size > 0, "zero-sized arena allocation");
        self.new_chunk(round_up(size))
    }

    /// Total bytes of all chunks allocated so far, including unused tails.
    pub fn memory_usage(&self) -> usize {
        self.memory_usage
    }

    /// Allocates and records a zeroed chunk of `size` bytes (a multiple of `ARENA_ALIGN`).
    fn new_chunk(&mut self, size: usize) -> NonNull<u8> {
        debug_assert_eq!(size % ARENA_ALIGN, 0);
        self.memory_usage += size;
        if size >= MAP_THRESHOLD {
            // Page-aligned, zero-filled, faulted in as it is written. If the OS refuses the
            // mapping, the heap gets a chance (and reports exhaustion the usual way).
            if let Ok(mut map) = memmap2::MmapMut::map_anon(size) {
                let start = NonNull::new(map.as_mut_ptr()).expect("mmap returned null");
                self.chunks.push(Chunk::Mapped(map));
                return start;
            }
        }
        let chunk: Box<[Word]> =
            vec![Word([0; ARENA_ALIGN]); size / ARENA_ALIGN].into_boxed_slice();
        let raw = NonNull::from(Box::leak(chunk));
        self.chunks.push(Chunk::Heap(raw));
        raw.cast::<u8>()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for chunk in self.chunks.drain(..) {
            match chunk {
                // SAFETY: every heap pointer in `chunks` came from `Box::leak` in `new_chunk`,
                // is stored exactly once, and `drain` removes it, so each chunk is reconstituted
                // and freed exactly once. Dropping the arena means nothing can still use its
                // memory: the skiplist owns the arena and is only dropped when no reader or
                // iterator remains.
                Chunk::Heap(raw) => drop(unsafe { Box::from_raw(raw.as_ptr()) }),
                // Unmapped here, for the same reason safely.
                Chunk::Mapped(map) => drop(map),
            }
        }
    }
}

/// Rounds `n` up to a multiple of `ARENA_ALIGN`.
fn round_up(n: usize) -> usize {
    n.checked_add(ARENA_ALIGN - 1)
        .expect("arena allocation size overflows usize")
        & !(ARENA_ALIGN - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_chunks_are_zeroed_aligned_and_hold_their_writes() {
        let mut arena = Arena::new(MAP_THRESHOLD);
        let mut blocks = Vec::new();
        for i in 0..3 * MAP_THRESHOLD / 1000 {
            let p = arena.allocate(1000);
            assert_eq!(p.as_ptr() as usize % ARENA_ALIGN, 0);
            // SAFETY: 1000 fresh bytes owned by the arena.
            let bytes = unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), 1000) };
            assert!(bytes.iter().all(|&b| b == 0), "fresh memory is zeroed");
            bytes.fill(i as u8);
            blocks.push((p, i as u8));
        }
        // A dedicated big allocation is mapped too.
        let big = arena.allocate(4 * MAP_THRESHOLD);
        // SAFETY: as above.
        unsafe { big.as_ptr().write_bytes(0xAB, 4 * MAP_THRESHOLD) };
        for (p, v) in blocks {
            // SAFETY: as above; nothing else wrote these bytes.
            let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), 1000) };
            assert!(bytes.iter().all(|&b| b == v));
        }
        assert!(arena.chunks.iter().any(|c| matches!(c, Chunk::Mapped(_))));
        assert!(arena.memory_usage() >= 7 * MAP_THRESHOLD);
    }

    #[test]
    fn allocations_are_aligned_and_disjoint() {
        let mut arena = Arena::new(256);
        let mut blocks: Vec<(usize, usize)> = Vec::new();
        for size in [1usize, 7, 8, 9, 63, 64, 65, 3, 200, 1000, 5] {
            let p = arena.allocate(size).as_ptr() as usize;
            assert_eq!(p % ARENA_ALIGN, 0, "allocation of {size} not aligned");
            for &(q, qsize) in &blocks {
                assert!(p + size <= q || q + qsize <= p, "overlap");
            }
            blocks.push((p, size));
        }
    }

    #[test]
    fn memory_is_zeroed_and_writable() {
        let mut arena = Arena::new(128);
        for size in [8usize, 24, 100, 500] {
            let p = arena.allocate(size);
            // SAFETY: `p` points to `size` bytes owned by `arena`, which outlives this slice.
            let bytes = unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), size) };
            assert!(bytes.iter().all(|&b| b == 0));
            bytes.fill(0xab);
        }
    }

    #[test]
    fn memory_usage_counts_chunks() {
        let mut arena = Arena::new(1024);
        assert_eq!(arena.memory_usage(), 0);
        arena.allocate(10);
        assert_eq!(arena.memory_usage(), 1024);
        // 100 * 16 bytes = 1600 > 1024: needs a second chunk.
        for _ in 0..100 {
            arena.allocate(16);
        }
        assert_eq!(arena.memory_usage(), 2048);
        // Larger than a quarter chunk: a dedicated chunk of exactly the (rounded) size.
        arena.allocate(5001);
        assert_eq!(arena.memory_usage(), 2048 + 5008);
        // The current chunk keeps serving small requests afterwards.
        arena.allocate(8);
        assert_eq!(arena.memory_usage(), 2048 + 5008);
    }

    #[test]
    fn dedicated_allocation_does_not_open_a_regular_chunk() {
        let mut arena = Arena::new(1 << 20);
        let p = arena.allocate_dedicated(100).as_ptr() as usize;
        assert_eq!(p % ARENA_ALIGN, 0);
        assert_eq!(arena.memory_usage(), 104);
        arena.allocate(8);
        assert_eq!(arena.memory_usage(), 104 + (1 << 20));
    }

    #[test]
    fn tiny_chunk_size_is_raised() {
        let mut arena = Arena::new(0);
        arena.allocate(1);
        assert_eq!(arena.memory_usage(), MIN_CHUNK_SIZE);
    }
}
