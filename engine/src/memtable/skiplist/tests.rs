//! Unit tests of the skiplist against a `BTreeMap` model: inserts, seeks, both iteration
//! directions, edge sizes, custom comparators, lifetimes and the tower-height distribution.

use super::*;
use std::collections::BTreeMap;

/// Small seeded PRNG so failures replay exactly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, max_len: u64, alphabet: u8) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| b'a' + self.below(alphabet as u64) as u8)
            .collect()
    }
}

fn new_list(chunk_size: usize) -> Arc<SkipList<BytewiseComparator>> {
    Arc::new(SkipList::new(BytewiseComparator, chunk_size))
}

/// Walks the list forwards and backwards and compares it with the model.
fn check_against_model(
    list: &Arc<SkipList<BytewiseComparator>>,
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
) {
    assert_eq!(list.len(), model.len());
    assert_eq!(list.is_empty(), model.is_empty());

    let mut it = list.iter();
    it.seek_to_first();
    for (k, v) in model {
        assert!(it.valid());
        assert_eq!(it.key(), &k[..]);
        assert_eq!(it.value(), &v[..]);
        it.next();
    }
    assert!(!it.valid());

    it.seek_to_last();
    for (k, v) in model.iter().rev() {
        assert!(it.valid());
        assert_eq!(it.key(), &k[..]);
        assert_eq!(it.value(), &v[..]);
        it.prev();
    }
    assert!(!it.valid());

    for (k, v) in model {
        assert_eq!(list.get(k), Some(&v[..]));
    }
}

#[test]
fn is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SkipList<BytewiseComparator>>();
    assert_send_sync::<SkipListIter<BytewiseComparator>>();
}

#[test]
fn empty_list() {
    let list = new_list(4096);
    assert!(list.is_empty());
    assert_eq!(list.len(), 0);
    assert_eq!(list.get(b""), None);
    assert_eq!(list.get(b"a"), None);
    let mut it = list.iter();
    assert!(!it.valid());
    it.seek_to_first();
    assert!(!it.valid());
    it.seek_to_last();
    assert!(!it.valid());
    it.seek(b"");
    assert!(!it.valid());
    it.seek(b"zzz");
    assert!(!it.valid());
}

#[test]
fn random_inserts_match_model() {
    for seed in 1..=5u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        // Small chunks so many chunk boundaries are crossed.
        let list = new_list(1024);
        let mut model = BTreeMap::new();
        for _ in 0..2000 {
            let key = rng.bytes(12, 4);
            if model.contains_key(&key) {
                continue;
            }
            let value = rng.bytes(20, 26);
            list.insert(&key, &value);
            model.insert(key, value);
        }
        check_against_model(&list, &model);
    }
}

#[test]
fn seek_matches_model() {
    let mut rng = Rng(42);
    let list = new_list(1 << 16);
    let mut model = BTreeMap::new();
    for _ in 0..1000 {
        let key = rng.bytes(6, 3);
        if model.insert(key.clone(), key.clone()).is_none() {
            list.insert(&key, &key);
        }
    }
    let mut it = list.iter();
    for _ in 0..2000 {
        let target = rng.bytes(7, 4);
        it.seek(&target);
        let expected = model.range(target.clone()..).next();
        match expected {
            Some((k, _)) => {
                assert!(it.valid(), "seek({target:?}) should find {k:?}");
                assert_eq!(it.key(), &k[..]);
                assert_eq!(it.value(), &k[..]);
                assert_eq!(list.get(&target).is_some(), k == &target);
            }
            None => assert!(!it.valid(), "seek({target:?}) past the end"),
        }
        // prev from the seek position lands on the last key < target.
        let before = model.range(..target.clone()).next_back();
        if it.valid() {
            it.prev();
        } else {
            it.seek_to_last();
        }
        match before {
            Some((k, _)) => assert_eq!(it.key(), &k[..]),
            None => assert!(!it.valid()),
        }
    }
}

#[test]
fn prev_and_next_round_trip() {
    let list = new_list(4096);
    for i in 0..100u32 {
        list.insert(&(i * 2).to_be_bytes(), &i.to_le_bytes());
    }
    let mut it = list.iter();
    it.seek(&51u32.to_be_bytes());
    assert_eq!(it.key(), &52u32.to_be_bytes());
    it.prev();
    assert_eq!(it.key(), &50u32.to_be_bytes());
    it.next();
    it.next();
    assert_eq!(it.key(), &54u32.to_be_bytes());
    it.seek_to_first();
    assert_eq!(it.key(), &0u32.to_be_bytes());
    it.prev();
    assert!(!it.valid());
    it.seek_to_last();
    assert_eq!(it.key(), &198u32.to_be_bytes());
    assert_eq!(it.value(), &99u32.to_le_bytes());
    it.next();
    assert!(!it.valid());
}

#[test]
fn zero_length_keys_and_values() {
    let list = new_list(256);
    list.insert(b"", b"");
    list.insert(b"a", b"");
    list.insert(b"b", b"x");
    let mut model = BTreeMap::new();
    model.insert(b"".to_vec(), b"".to_vec());
    model.insert(b"a".to_vec(), b"".to_vec());
    model.insert(b"b".to_vec(), b"x".to_vec());
    check_against_model(&list, &model);
    assert_eq!(list.get(b""), Some(&b""[..]));
    let mut it = list.iter();
    it.seek(b"");
    assert_eq!(it.key(), b"");
}

#[test]
fn entries_larger_than_a_chunk() {
    let chunk = 4096;
    let list = new_list(chunk);
    let mut model = BTreeMap::new();
    for (i, len) in [chunk / 4 + 1, chunk, 3 * chunk + 5, 10, 100_000]
        .into_iter()
        .enumerate()
    {
        let key = vec![b'k' + i as u8; len / 2];
        let value: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8).collect();
        list.insert(&key, &value);
        model.insert(key, value);
    }
    check_against_model(&list, &model);
    assert!(list.memory_usage() >= 100_000 + 50_000);
}

#[test]
fn memory_usage_grows() {
    let list = new_list(4096);
    let initial = list.memory_usage();
    // Only the head node: no regular chunk is opened before the first insert.
    assert!(
        initial > 0 && initial < 4096,
        "empty list uses {initial} bytes"
    );
    let mut last = initial;
    for i in 0..1000u32 {
        list.insert(&i.to_be_bytes(), &[7; 40]);
        let now = list.memory_usage();
        assert!(now >= last);
        last = now;
    }
    // 1000 entries of >= 44 payload bytes plus headers need well over 44 KB.
    assert!(last >= initial + 44_000, "memory usage {last} too small");
    assert_eq!((last - initial) % 4096, 0, "only whole chunks are counted");
}

#[test]
fn custom_comparator_orders_the_list() {
    struct Reverse;
    impl KeyComparator for Reverse {
        fn compare(&self, a: &[u8], b: &[u8]) -> Ordering {
            b.cmp(a)
        }
    }
    let list = Arc::new(SkipList::new(Reverse, 1024));
    for k in [b"b", b"d", b"a", b"c"] {
        list.insert(k, b"v");
    }
    let mut it = SkipListIter::new(Arc::clone(&list));
    it.seek_to_first();
    let mut keys = Vec::new();
    while it.valid() {
        keys.push(it.key().to_vec());
        it.next();
    }
    assert_eq!(keys, [b"d", b"c", b"b", b"a"]);
    it.seek(b"bb");
    assert_eq!(it.key(), b"b");
    assert!(list.comparator().compare(b"a", b"b").is_gt());
}

#[test]
fn iterator_keeps_list_alive() {
    let list = new_list(128);
    for i in 0..50u8 {
        list.insert(&[i], &[i; 30]);
    }
    let mut it = list.iter();
    drop(list);
    it.seek_to_first();
    let mut n = 0u8;
    while it.valid() {
        assert_eq!(it.key(), &[n]);
        assert_eq!(it.value(), &[n; 30]);
        it.next();
        n += 1;
    }
    assert_eq!(n, 50);
}

#[test]
#[should_panic(expected = "invalid iterator")]
fn key_of_invalid_iterator_panics() {
    let list = new_list(128);
    let it = list.iter();
    let _ = it.key();
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "duplicate key")]
fn duplicate_insert_is_caught_in_debug() {
    let list = new_list(128);
    list.insert(b"k", b"1");
    list.insert(b"k", b"2");
}

#[test]
fn heights_follow_the_branching_factor() {
    let mut rng = XorShift64::new(7);
    let mut counts = [0usize; MAX_HEIGHT + 1];
    for _ in 0..100_000 {
        counts[rng.random_height()] += 1;
    }
    assert_eq!(counts[0], 0);
    // P(height >= 2) = 1/4: expect ~25_000, allow a wide margin.
    let tall: usize = counts[2..].iter().sum();
    assert!(
        (20_000..30_000).contains(&tall),
        "{tall} towers of height >= 2"
    );
}
