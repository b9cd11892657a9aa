//! An arena-allocated skiplist: the memtable's ordered index.
//!
//! This file stays whole although it is past the ~600-line guideline: the `// SAFETY:` argument
//! of every `unsafe` block rests on the invariants below, which hold only because the node
//! layout, allocation, publication and traversal code all sit here together (its unit tests
//! live in `skiplist/tests.rs`).
//!
//! # Thread safety
//!
//! Writes are serialized, reads are lock-free:
//!
//! - [`SkipList::insert`] may be called from any number of threads at once; callers are serialized
//!   by an internal `parking_lot::Mutex` that also guards the arena and the height PRNG. (The
//!   engine's write leader is normally the only caller, so the lock is uncontended.)
//! - Readers ([`SkipList::get`], [`SkipList::contains`], [`SkipListIter`]) take no lock and run
//!   concurrently with inserts. A reader sees every entry whose insert completed before the read
//!   began (or that it learned of through some other synchronization), may or may not see entries
//!   being inserted concurrently, and never sees a partially written entry.
//!
//! Invariants that make this sound:
//!
//! 1. **Memory stays put.** Nodes live in arena chunks that never move and are freed only when the
//!    `SkipList` drops. A `&SkipList` or an `Arc<SkipList>` (which every [`SkipListIter`] holds)
//!    therefore keeps every node a reader can reach alive. Nodes are never deleted or unlinked.
//! 2. **Nodes are immutable once linked**, except for their `next` pointers, which are atomics.
//!    Height, key and value are written with plain stores while the node is still private to the
//!    writer.
//! 3. **Publication.** A node becomes reachable only through a `Release` store of a pointer to it
//!    into a predecessor's `next[i]` (`NodePtr::set_next`); every reader loads `next` pointers
//!    with `Acquire` (`NodePtr::next`). A new node's header, key, value and null-initialised
//!    tower are written before its first publication (at level 0), so any reader that obtains
//!    a pointer to it sees them. Levels are then linked bottom-up: the node's own `next[i]` is
//!    set (`Relaxed`) just before the node is published at level `i`. A reader reads a node's
//!    `next[i]` only after reaching that node at a level `>= i`, i.e. through a `Release` store
//!    that followed the `next[i]` store, so it never sees a stale null there. Being linked
//!    bottom-up, a node reachable at level `i` is reachable at every level below `i`.
//! 4. **`max_height`** is read and written `Relaxed`. A reader seeing a stale smaller value just
//!    starts lower; a reader seeing the new larger value before the new node is linked finds the
//!    head's `next` null at those levels (initialised before the list was shared) and drops down.
//! 5. **Keys are unique** (the engine's internal keys carry a sequence number); inserting an equal
//!    key is a caller bug, checked by `debug_assert!`.
//!
//! # Node layout
//!
//! ```text
//! offset 0        4          8        12       16
//!        +--------+----------+--------+--------+---------------------+---------+-----------+
//!        | key_len| value_len| height | unused | next[0..height]     | key     | value     |
//!        |  u32   |   u32    |  u32   |        | AtomicPtr, 8 bytes* | key_len | value_len |
//!        +--------+----------+--------+--------+---------------------+---------+-----------+
//! ```
//! Nodes start on 8-byte boundaries ([`ARENA_ALIGN`]) and the header is 16 bytes, so the tower
//! of atomic pointers is aligned. (*pointer-sized; 8 bytes on 64-bit targets.) The head node is a
//! node of height [`MAX_HEIGHT`] with an empty key, never compared against.
//!
//! Keys and values are limited to `u32::MAX` bytes each.

use std::cmp::Ordering;
use std::mem::{align_of, size_of};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::arena::{Arena, ARENA_ALIGN};

/// Tallest tower a node can have. With branching factor 4, 12 levels stay efficient up to about
/// 4^12 = 16M entries, far more than a memtable holds.
pub const MAX_HEIGHT: usize = 12;

/// Inverse probability of growing a tower by one more level.
const BRANCHING: u64 = 4;

/// Orders the keys of a [`SkipList`].
pub trait KeyComparator: Send + Sync + 'static {
    /// Compares two keys. Must be a total order, consistent across calls.
    fn compare(&self, a: &[u8], b: &[u8]) -> Ordering;
}

/// Plain lexicographic byte order.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytewiseComparator;

impl KeyComparator for BytewiseComparator {
    fn compare(&self, a: &[u8], b: &[u8]) -> Ordering {
        a.cmp(b)
    }
}

// ---------------------------------------------------------------------------------------------
// Node accessors: the only place that dereferences node memory.

#[repr(C)]
struct NodeHeader {
    key_len: u32,
    value_len: u32,
    height: u32,
    _unused: u32,
}

const HEADER_LEN: usize = size_of::<NodeHeader>();
const LINK_LEN: usize = size_of::<AtomicPtr<u8>>();

const _: () = assert!(HEADER_LEN == 16);
const _: () = assert!(align_of::<NodeHeader>() <= ARENA_ALIGN);
const _: () = assert!(align_of::<AtomicPtr<u8>>() <= ARENA_ALIGN);
const _: () = assert!(HEADER_LEN.is_multiple_of(align_of::<AtomicPtr<u8>>()));

/// The address of a node in the arena. Plain data; every dereference is an `unsafe fn` whose
/// caller guarantees the node is initialised (published, or written by the caller) and that its
/// arena is alive for the lifetime `'a` it picks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct NodePtr(NonNull<u8>);

impl NodePtr {
    /// Bytes needed for a node of `height` holding `key` and `value`.
    fn size(height: usize, key: &[u8], value: &[u8]) -> usize {
        HEADER_LEN
            .checked_add(height * LINK_LEN)
            .and_then(|n| n.checked_add(key.len()))
            .and_then(|n| n.checked_add(value.len()))
            .expect("skiplist node size overflows usize")
    }

    /// Allocates and fully initialises an unlinked node; all its `next` pointers are null.
    fn alloc(arena: &mut Arena, height: usize, key: &[u8], value: &[u8]) -> NodePtr {
        let base = arena.allocate(Self::size(height, key, value));
        // SAFETY: `base` is a fresh, exclusively owned arena block of exactly that size.
        unsafe { Self::init(base, height, key, value) }
    }

    /// Allocates the head sentinel (height `MAX_HEIGHT`, empty key) outside the regular chunks,
    /// so that an empty list's `memory_usage` is tiny rather than a whole chunk.
    fn alloc_head(arena: &mut Arena) -> NodePtr {
        let base = arena.allocate_dedicated(Self::size(MAX_HEIGHT, &[], &[]));
        // SAFETY: as in `alloc`.
        unsafe { Self::init(base, MAX_HEIGHT, &[], &[]) }
    }

    /// Writes a node into `base`.
    ///
    /// # Safety
    /// `base` is [`ARENA_ALIGN`]-aligned, points to at least `size(height, key, value)` writable
    /// bytes, and no other thread can reach it yet.
    unsafe fn init(base: NonNull<u8>, height: usize, key: &[u8], value: &[u8]) -> NodePtr {
        assert!((1..=MAX_HEIGHT).contains(&height));
        let key_len = u32::try_from(key.len()).expect("skiplist key longer than u32::MAX");
        let value_len = u32::try_from(value.len()).expect("skiplist value longer than u32::MAX");
        let header = NodeHeader {
            key_len,
            value_len,
            height: height as u32,
            _unused: 0,
        };
        // SAFETY: per the caller's contract `base` is an 8-aligned block of at least
        // `size(height, key, value)` bytes, so the header, `height` links and the key and value
        // bytes are all in bounds and suitably aligned (see the const asserts above). The block
        // is not reachable by any other thread until it is linked, so plain writes do not race.
        unsafe {
            ptr::write(base.as_ptr().cast::<NodeHeader>(), header);
            let links = base.as_ptr().add(HEADER_LEN).cast::<AtomicPtr<u8>>();
            for i in 0..height {
                ptr::write(links.add(i), AtomicPtr::new(ptr::null_mut()));
            }
            let data = base.as_ptr().add(HEADER_LEN + height * LINK_LEN);
            ptr::copy_nonoverlapping(key.as_ptr(), data, key.len());
            ptr::copy_nonoverlapping(value.as_ptr(), data.add(key.len()), value.len());
        }
        NodePtr(base)
    }

    /// Reads the header.
    ///
    /// # Safety
    /// The node is initialised and its arena alive.
    unsafe fn header(self) -> (usize, usize, usize) {
        // SAFETY: per the caller's contract; headers are immutable after initialisation.
        let h = unsafe { &*self.0.as_ptr().cast::<NodeHeader>() };
        (h.key_len as usize, h.value_len as usize, h.height as usize)
    }

    /// The `next` slot at `level`.
    ///
    /// # Safety
    /// The node is initialised, its arena alive for `'a`, and `level < height`.
    unsafe fn link<'a>(self, level: usize) -> &'a AtomicPtr<u8> {
        // SAFETY: per the caller's contract: the slot is inside the node's tower, aligned, and
        // initialised; shared references to atomics may coexist with other threads' accesses.
        unsafe {
            debug_assert!(level < self.header().2);
            &*self
                .0
                .as_ptr()
                .add(HEADER_LEN + level * LINK_LEN)
                .cast::<AtomicPtr<u8>>()
        }
    }

    /// Successor at `level`, loaded with `Acquire` so that the successor's contents are visible.
    ///
    /// # Safety
    /// As for [`link`](Self::link).
    unsafe fn next(self, level: usize) -> Option<NodePtr> {
        // SAFETY: per the caller's contract.
        let p = unsafe { self.link(level) }.load(AtomicOrdering::Acquire);
        NonNull::new(p).map(NodePtr)
    }

    /// Publishes `next` as the successor at `level` with a `Release` store.
    ///
    /// # Safety
    /// As for [`link`](Self::link); `next`, if any, is fully initialised.
    unsafe fn set_next(self, level: usize, next: Option<NodePtr>) {
        let p = next.map_or(ptr::null_mut(), |n| n.0.as_ptr());
        // SAFETY: per the caller's contract.
        unsafe { self.link(level) }.store(p, AtomicOrdering::Release);
    }

    /// Sets a link of a node not yet visible to other threads (its publication is the barrier).
    ///
    /// # Safety
    /// As for [`link`](Self::link); the node itself is not yet linked.
    unsafe fn set_next_unpublished(self, level: usize, next: Option<NodePtr>) {
        let p = next.map_or(ptr::null_mut(), |n| n.0.as_ptr());
        // SAFETY: per the caller's contract.
        unsafe { self.link(level) }.store(p, AtomicOrdering::Relaxed);
    }

    /// The key bytes.
    ///
    /// # Safety
    /// The node is initialised and its arena alive for `'a`.
    unsafe fn key<'a>(self) -> &'a [u8] {
        // SAFETY: per the caller's contract; the key bytes follow the tower, were written before
        // publication and are never written again.
        unsafe {
            let (key_len, _, height) = self.header();
            let data = self.0.as_ptr().add(HEADER_LEN + height * LINK_LEN);
            std::slice::from_raw_parts(data, key_len)
        }
    }

    /// The value bytes.
    ///
    /// # Safety
    /// As for [`key`](Self::key).
    unsafe fn value<'a>(self) -> &'a [u8] {
        // SAFETY: as in `key`; the value follows the key.
        unsafe {
            let (key_len, value_len, height) = self.header();
            let data = self
                .0
                .as_ptr()
                .add(HEADER_LEN + height * LINK_LEN + key_len);
            std::slice::from_raw_parts(data, value_len)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The list.

/// State only the (serialized) writer touches.
struct Writer {
    arena: Arena,
    rng: XorShift64,
}

/// A sorted set of unique `(key, value)` entries with serialized inserts and lock-free reads.
/// See the [module documentation](self) for the thread-safety contract.
pub struct SkipList<C: KeyComparator> {
    cmp: C,
    /// Sentinel of height `MAX_HEIGHT`, allocated in the arena; its key is never compared.
    head: NodePtr,
    /// Height of the tallest tower in use (1..=MAX_HEIGHT). `Relaxed`; see invariant 4.
    max_height: AtomicUsize,
    len: AtomicUsize,
    memory_usage: AtomicUsize,
    writer: Mutex<Writer>,
}

// SAFETY: all node memory is owned by the arena inside `writer` and moves with the list (chunks
// stay at their addresses). `head` points into that arena. `C: Send + Sync` by the trait bound.
unsafe impl<C: KeyComparator> Send for SkipList<C> {}
// SAFETY: shared access is sound by the contract at the top of this file: mutation of shared
// state happens only under `writer` (arena, PRNG) or through atomics (`next` links, counters),
// nodes are immutable apart from their atomic links once published, and publication is a
// Release store paired with Acquire loads, so no `&SkipList` user can observe a data race.
unsafe impl<C: KeyComparator> Sync for SkipList<C> {}

impl<C: KeyComparator> SkipList<C> {
    /// Creates an empty list. `chunk_size` is the arena chunk size in bytes (e.g. 1 MiB); entries
    /// larger than `chunk_size / 4` get a chunk of their own.
    pub fn new(cmp: C, chunk_size: usize) -> Self {
        let mut arena = Arena::new(chunk_size);
        let head = NodePtr::alloc_head(&mut arena);
        SkipList {
            cmp,
            head,
            max_height: AtomicUsize::new(1),
            len: AtomicUsize::new(0),
            memory_usage: AtomicUsize::new(arena.memory_usage()),
            writer: Mutex::new(Writer {
                arena,
                rng: XorShift64::new(0xdead_beef_cafe_f00d),
            }),
        }
    }

    /// Inserts `(key, value)`. Keys are unique: inserting a key equal (per the comparator) to one
    /// already present is a caller bug (checked in debug builds).
    ///
    /// May be called from several threads; writers are serialized by an internal mutex, readers
    /// are never blocked.
    ///
    /// # Panics
    /// If `key` or `value` is longer than `u32::MAX` bytes.
    pub fn insert(&self, key: &[u8], value: &[u8]) {
        let mut writer = self.writer.lock();
        let mut prev = [self.head; MAX_HEIGHT];
        let found = self.find_greater_or_equal(key, Some(&mut prev));
        debug_assert!(
            // SAFETY: `found` was reached from `head` through published links; `self` keeps the
            // arena alive.
            found.is_none_or(|n| self.cmp.compare(unsafe { n.key() }, key) != Ordering::Equal),
            "SkipList::insert: duplicate key"
        );

        let height = writer.rng.random_height();
        // Only writers store `max_height`, and we hold the lock: this read is current. Levels at
        // or above the old height keep `prev[i] == head`, as initialised.
        if height > self.max_height.load(AtomicOrdering::Relaxed) {
            self.max_height.store(height, AtomicOrdering::Relaxed);
        }

        let node = NodePtr::alloc(&mut writer.arena, height, key, value);
        for (level, p) in prev.iter().enumerate().take(height) {
            // SAFETY: `p` is the head or a published node of height > `level` (found at `level`
            // by the search); `node` is initialised with height `height > level`; the arena is
            // alive (we hold `&self`). Link the new node's own pointer first, then publish it
            // with Release so readers that load it (Acquire) see it fully initialised.
            unsafe {
                node.set_next_unpublished(level, p.next(level));
                p.set_next(level, Some(node));
            }
        }

        self.len.fetch_add(1, AtomicOrdering::Relaxed);
        self.memory_usage
            .store(writer.arena.memory_usage(), AtomicOrdering::Relaxed);
    }

    /// The value stored under a key equal to `key`, if any. Lock-free.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let node = self.find_greater_or_equal(key, None)?;
        // SAFETY: `node` was reached through published links; `&self` keeps the arena alive for
        // the returned borrow.
        let (node_key, value) = unsafe { (node.key(), node.value()) };
        (self.cmp.compare(node_key, key) == Ordering::Equal).then_some(value)
    }

    /// Whether a key equal to `key` is present. Lock-free.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// An iterator over this list (initially not valid); it keeps the list alive.
    pub fn iter(self: &Arc<Self>) -> SkipListIter<C> {
        SkipListIter::new(Arc::clone(self))
    }

    /// Bytes allocated by the arena (all chunks, including unused tails), for memtable size
    /// accounting. Updated after every insert; never decreases.
    pub fn memory_usage(&self) -> usize {
        self.memory_usage.load(AtomicOrdering::Relaxed)
    }

    /// Number of entries. Exact once concurrent inserts have returned.
    pub fn len(&self) -> usize {
        self.len.load(AtomicOrdering::Relaxed)
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The comparator ordering this list.
    pub fn comparator(&self) -> &C {
        &self.cmp
    }

    /// First node with key `>= key`, or `None`. With `prev`, records the last node `< key` at
    /// every level below the current max height (other levels are left untouched).
    fn find_greater_or_equal(
        &self,
        key: &[u8],
        mut prev: Option<&mut [NodePtr; MAX_HEIGHT]>,
    ) -> Option<NodePtr> {
        let mut x = self.head;
        let mut level = self.max_height.load(AtomicOrdering::Relaxed) - 1;
        // The node last found `>= key`: when descending lands on it again (common, since tall
        // towers are reached at several levels) it needs no second comparison (as RocksDB's
        // InlineSkipList does).
        let mut last_bigger: Option<NodePtr> = None;
        loop {
            // SAFETY: `x` is the head (height MAX_HEIGHT) or a node reached at a level >= `level`,
            // so its height is > `level`; nodes reached via Acquire loads are initialised, and
            // `&self` keeps the arena alive.
            let next = unsafe { x.next(level) };
            if let Some(n) = next.filter(|_| next != last_bigger) {
                // Start loading the node after `n` while `n`'s key is compared: if the search
                // moves on to `n`, its successor is the next key compared (RocksDB's
                // InlineSkipList does the same).
                // SAFETY: as above for `n`.
                if let Some(after) = unsafe { n.next(level) } {
                    prefetch(after.0.as_ptr());
                }
            }
            match next {
                // SAFETY: as above for `n`.
                Some(n)
                    if next != last_bigger
                        && self.cmp.compare(unsafe { n.key() }, key) == Ordering::Less =>
                {
                    x = n
                }
                _ => {
                    last_bigger = next;
                    if let Some(prev) = prev.as_deref_mut() {
                        prev[level] = x;
                    }
                    if level == 0 {
                        return next;
                    }
                    level -= 1;
                }
            }
        }
    }

    /// Last node with key `< key`, or the head if there is none.
    fn find_less_than(&self, key: &[u8]) -> NodePtr {
        let mut x = self.head;
        let mut level = self.max_height.load(AtomicOrdering::Relaxed) - 1;
        loop {
            // SAFETY: as in `find_greater_or_equal`.
            match unsafe { x.next(level) } {
                Some(n) if self.cmp.compare(unsafe { n.key() }, key) == Ordering::Less => x = n,
                _ => {
                    if level == 0 {
                        return x;
                    }
                    level -= 1;
                }
            }
        }
    }

    /// Last node, or the head if the list is empty.
    fn find_last(&self) -> NodePtr {
        let mut x = self.head;
        let mut level = self.max_height.load(AtomicOrdering::Relaxed) - 1;
        loop {
            // SAFETY: as in `find_greater_or_equal`.
            match unsafe { x.next(level) } {
                Some(n) => x = n,
                None => {
                    if level == 0 {
                        return x;
                    }
                    level -= 1;
                }
            }
        }
    }
}

/// Hints the CPU to start loading the cache line at `p` (no effect on other architectures).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults or changes memory, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Height PRNG: xorshift64 (Marsaglia). Quality is ample for picking tower heights.
struct XorShift64(u64);

impl XorShift64 {
    fn new(seed: u64) -> Self {
        XorShift64(seed.max(1))
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// 1 + number of successes with probability 1/BRANCHING each, capped at MAX_HEIGHT.
    fn random_height(&mut self) -> usize {
        let mut height = 1;
        while height < MAX_HEIGHT && self.next_u64().is_multiple_of(BRANCHING) {
            height += 1;
        }
        height
    }
}

// ---------------------------------------------------------------------------------------------
// Iterator.

/// A cursor over a [`SkipList`], holding an `Arc` to it so its memory stays valid.
///
/// Lock-free; runs concurrently with inserts (see the module's thread-safety contract). It sees
/// a consistent sorted sequence, which may or may not include entries inserted after it was
/// created.
pub struct SkipListIter<C: KeyComparator> {
    list: Arc<SkipList<C>>,
    /// Current node; `None` when not valid. Never the head.
    node: Option<NodePtr>,
}

// SAFETY: the iterator is an `Arc<SkipList>` (Send + Sync) plus a pointer into that list's arena,
// which the `Arc` keeps alive and which is only read through the list's lock-free read protocol,
// valid from any thread.
unsafe impl<C: KeyComparator> Send for SkipListIter<C> {}
// SAFETY: `&SkipListIter` only permits reads (`valid`, `key`, `value`) of published, immutable
// node data, which is safe from any number of threads.
unsafe impl<C: KeyComparator> Sync for SkipListIter<C> {}

impl<C: KeyComparator> SkipListIter<C> {
    /// Creates an iterator over `list`, initially not valid.
    pub fn new(list: Arc<SkipList<C>>) -> Self {
        SkipListIter { list, node: None }
    }

    /// Whether the iterator is positioned on an entry.
    pub fn valid(&self) -> bool {
        self.node.is_some()
    }

    /// The current entry's key.
    ///
    /// # Panics
    /// If the iterator is not valid.
    pub fn key(&self) -> &[u8] {
        let node = self.node.expect("SkipListIter::key on invalid iterator");
        // SAFETY: `node` is a published node of `self.list`, kept alive by the `Arc` for as long
        // as `self` is borrowed.
        unsafe { node.key() }
    }

    /// The current entry's value.
    ///
    /// # Panics
    /// If the iterator is not valid.
    pub fn value(&self) -> &[u8] {
        let node = self.node.expect("SkipListIter::value on invalid iterator");
        // SAFETY: as in `key`.
        unsafe { node.value() }
    }

    /// Advances to the next entry; becomes invalid past the last.
    ///
    /// # Panics
    /// If the iterator is not valid.
    pub fn next(&mut self) {
        let node = self.node.expect("SkipListIter::next on invalid iterator");
        // SAFETY: published node of the live list; every node has height >= 1.
        self.node = unsafe { node.next(0) };
    }

    /// Moves to the previous entry (an O(log n) search, as there are no back links); becomes
    /// invalid before the first.
    ///
    /// # Panics
    /// If the iterator is not valid.
    pub fn prev(&mut self) {
        let key = self.key();
        let found = self.list.find_less_than(key);
        self.node = (found != self.list.head).then_some(found);
    }

    /// Positions on the first entry with key `>= target`, or becomes invalid if there is none.
    pub fn seek(&mut self, target: &[u8]) {
        self.node = self.list.find_greater_or_equal(target, None);
    }

    /// Positions on the first entry, or becomes invalid if the list is empty.
    pub fn seek_to_first(&mut self) {
        // SAFETY: the head is initialised with height MAX_HEIGHT and lives in the list's arena.
        self.node = unsafe { self.list.head.next(0) };
    }

    /// Positions on the last entry, or becomes invalid if the list is empty.
    pub fn seek_to_last(&mut self) {
        let last = self.list.find_last();
        self.node = (last != self.list.head).then_some(last);
    }

    /// The list this iterator walks.
    pub fn list(&self) -> &Arc<SkipList<C>> {
        &self.list
    }
}

#[cfg(test)]
mod tests;
