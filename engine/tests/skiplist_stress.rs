//! Concurrency stress tests for the memtable skiplist: writers insert while lock-free readers
//! iterate, seek and step backwards. Run them optimised: `cargo test -p strata --release`.
//!
//! Each writer publishes how many of its keys are in the list with a `Release` store *after* the
//! insert returned; a reader that loads the counter with `Acquire` must then find every one of
//! those keys (no lost or late-visible inserts), and every scan must be strictly sorted (no torn
//! links or half-initialised nodes). No timing is asserted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use strata::memtable::skiplist::{BytewiseComparator, SkipList, SkipListIter};

type List = SkipList<BytewiseComparator>;

/// Key of entry `i`: a bijective scramble of `i` (so inserts arrive in random order and keys are
/// unique), then 0..7 filler bytes so lengths vary.
fn key(i: usize) -> Vec<u8> {
    let mut k = (i as u64)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left(17)
        .to_be_bytes()
        .to_vec();
    k.resize(8 + i % 8, b'x');
    k
}

fn value(i: usize) -> Vec<u8> {
    let mut v = (i as u64).to_le_bytes().to_vec();
    v.resize(8 + i % 24, b'v');
    v
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Writer `w` of `writers` owns indices `w, w + writers, w + 2 * writers, ...` below `n`;
/// `published[w] = k` means its first `k` indices are in the list.
fn index_of(w: usize, writers: usize, t: usize) -> usize {
    w + writers * t
}

fn count_for(w: usize, writers: usize, n: usize) -> usize {
    (n - w).div_ceil(writers)
}

fn assert_found(it: &mut SkipListIter<BytewiseComparator>, list: &List, i: usize) {
    let k = key(i);
    it.seek(&k);
    assert!(
        it.valid(),
        "published key #{i} not found: seek ran off the end"
    );
    assert_eq!(it.key(), &k[..], "published key #{i} not found by seek");
    assert_eq!(it.value(), &value(i)[..], "wrong value for key #{i}");
    assert_eq!(list.get(&k), Some(&value(i)[..]), "get missed key #{i}");
}

/// Scans the whole list, asserting strict order; returns the number of entries.
fn full_scan(it: &mut SkipListIter<BytewiseComparator>) -> usize {
    let mut prev: Vec<u8> = Vec::new();
    let mut count = 0;
    it.seek_to_first();
    while it.valid() {
        if count > 0 {
            assert!(prev[..] < *it.key(), "scan not strictly increasing");
        }
        prev.clear();
        prev.extend_from_slice(it.key());
        count += 1;
        it.next();
    }
    count
}

fn reader(
    list: Arc<List>,
    published: Arc<Vec<AtomicUsize>>,
    done: Arc<AtomicBool>,
    n: usize,
    seed: u64,
) {
    let writers = published.len();
    let mut rng = Rng(seed);
    let mut it = SkipListIter::new(Arc::clone(&list));
    let mut checked = vec![0usize; writers];
    let mut seen_at_last_scan = 0;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Read `done` before the counters: if it was set, the counters are final.
        let finished = done.load(Ordering::Acquire);
        let mut total = 0;
        let mut progressed = false;
        for w in 0..writers {
            let c = published[w].load(Ordering::Acquire);
            total += c;
            // Every newly published key (in bounded batches), plus a sample of older ones.
            let upto = c.min(checked[w] + 2000);
            for t in checked[w]..upto {
                assert_found(&mut it, &list, index_of(w, writers, t));
            }
            progressed |= upto > checked[w];
            checked[w] = upto;
            for _ in 0..16.min(c) {
                assert_found(&mut it, &list, index_of(w, writers, rng.below(c)));
            }
        }
        assert!(list.len() >= total, "len() below the published count");

        // A short forward walk from a random key, then back again with `prev`.
        it.seek(&key(rng.below(n)));
        let mut steps = 0;
        buf.clear();
        while it.valid() && steps < 200 {
            if steps > 0 {
                assert!(buf[..] < *it.key(), "next() not strictly increasing");
            }
            buf.clear();
            buf.extend_from_slice(it.key());
            it.next();
            steps += 1;
        }
        if !it.valid() {
            it.seek_to_last();
        }
        for _ in 0..20 {
            if !it.valid() {
                break;
            }
            buf.clear();
            buf.extend_from_slice(it.key());
            it.prev();
            if it.valid() {
                assert!(*it.key() < buf[..], "prev() not strictly decreasing");
            }
        }

        // Full scans now and then (not every round: they cost O(n)).
        if total >= seen_at_last_scan + 20_000 || finished {
            let count = full_scan(&mut it);
            assert!(
                count >= total,
                "scan saw {count} entries, {total} were published"
            );
            assert!(count <= n);
            seen_at_last_scan = total;
        }

        let all_checked = (0..writers).all(|w| checked[w] == count_for(w, writers, n));
        if finished && all_checked {
            assert_eq!(full_scan(&mut it), n);
            return;
        }
        if !progressed {
            // Let the writer run (2-core machines).
            thread::yield_now();
        }
    }
}

fn stress(writers: usize, readers: usize, n: usize) {
    let list = Arc::new(List::new(BytewiseComparator, 64 << 10));
    let published: Arc<Vec<AtomicUsize>> =
        Arc::new((0..writers).map(|_| AtomicUsize::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));

    let reader_handles: Vec<_> = (0..readers)
        .map(|r| {
            let (list, published, done) =
                (Arc::clone(&list), Arc::clone(&published), Arc::clone(&done));
            thread::spawn(move || reader(list, published, done, n, 0x1234_5678 + r as u64))
        })
        .collect();
    let writer_handles: Vec<_> = (0..writers)
        .map(|w| {
            let (list, published) = (Arc::clone(&list), Arc::clone(&published));
            thread::spawn(move || {
                for t in 0..count_for(w, writers, n) {
                    let i = index_of(w, writers, t);
                    list.insert(&key(i), &value(i));
                    published[w].store(t + 1, Ordering::Release);
                }
            })
        })
        .collect();

    for h in writer_handles {
        h.join().expect("writer panicked");
    }
    done.store(true, Ordering::Release);
    for h in reader_handles {
        h.join().expect("reader panicked");
    }

    assert_eq!(list.len(), n);
    let mut it = SkipListIter::new(Arc::clone(&list));
    assert_eq!(full_scan(&mut it), n);
    for i in 0..n {
        assert_eq!(list.get(&key(i)), Some(&value(i)[..]));
    }
}

/// One writer (the engine's normal case), four lock-free readers.
#[test]
fn one_writer_many_readers() {
    let n = if cfg!(debug_assertions) {
        20_000
    } else {
        200_000
    };
    stress(1, 4, n);
}

/// Several threads calling `insert` at once (serialized by the list's mutex), plus readers.
#[test]
fn many_writers_many_readers() {
    let n = if cfg!(debug_assertions) {
        20_000
    } else {
        120_000
    };
    stress(3, 3, n);
}

/// Iterators created before the list's last other owner goes away keep it alive on other threads.
#[test]
fn iterators_outlive_the_list_handle_across_threads() {
    let list = Arc::new(List::new(BytewiseComparator, 4096));
    for i in 0..5_000 {
        list.insert(&key(i), &value(i));
    }
    let iters: Vec<_> = (0..4).map(|_| list.iter()).collect();
    drop(list);
    let handles: Vec<_> = iters
        .into_iter()
        .map(|mut it| thread::spawn(move || full_scan(&mut it)))
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("reader panicked"), 5_000);
    }
}
