//! The table's Bloom filter over user keys: one filter for the whole table.
//!
//! ```text
//! filter block:
//!   bit array (m = 8 * (len - 1) bits, at least 64) | k (1 byte: number of probes)
//!
//! probe j of key K (j = 0..k):
//!   h     = bloom_hash(K)                      LevelDB's Hash(K, seed 0xbc9f1d34)
//!   delta = h.rotate_right(17)
//!   bit   = (h + j * delta) mod m              (wrapping u32 arithmetic)
//!   bit b lives in byte b / 8, mask 1 << (b % 8)
//! ```
//!
//! The hash is defined here byte by byte (not through `std::hash::Hash`, whose byte stream is not a
//! stable format), so a filter written by one build answers correctly in every later build.
//! Decoding never panics: a filter too short to hold bits, or with `k > 30` (reserved for
//! future encodings), answers "may contain" for every key.

/// Seed of [`bloom_hash`], as in LevelDB's `BloomHash`.
pub const BLOOM_HASH_SEED: u32 = 0xbc9f_1d34;
const MAX_PROBES: u32 = 30;
const MIN_BITS: usize = 64;

/// LevelDB's 32-bit `Hash(data, n, seed)` (a Murmur-like hash) with seed [`BLOOM_HASH_SEED`].
pub fn bloom_hash(data: &[u8]) -> u32 {
    hash(data, BLOOM_HASH_SEED)
}

fn hash(data: &[u8], seed: u32) -> u32 {
    const M: u32 = 0xc6a4_a793;
    const R: u32 = 24;
    let mut h = seed ^ (data.len() as u32).wrapping_mul(M);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        h = h.wrapping_add(w).wrapping_mul(M);
        h ^= h >> 16;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, &b) in rest.iter().enumerate() {
            h = h.wrapping_add(u32::from(b) << (8 * i));
        }
        h = h.wrapping_mul(M);
        h ^= h >> R;
    }
    h
}

/// Number of probes for `bits_per_key`: `bits_per_key * ln 2`, clamped to `[1, 30]`.
pub fn num_probes(bits_per_key: u32) -> u32 {
    ((bits_per_key as f64 * 0.69) as u32).clamp(1, MAX_PROBES)
}

/// Collects key hashes and produces the filter block.
#[derive(Debug)]
pub struct BloomFilterBuilder {
    bits_per_key: u32,
    hashes: Vec<u32>,
}

impl BloomFilterBuilder {
    /// A builder spending `bits_per_key` bits per added key (must be > 0 to be useful).
    pub fn new(bits_per_key: u32) -> BloomFilterBuilder {
        BloomFilterBuilder {
            bits_per_key: bits_per_key.max(1),
            hashes: Vec::new(),
        }
    }

    /// Adds a user key. Adding the same key twice only costs bits.
    pub fn add_key(&mut self, user_key: &[u8]) {
        self.hashes.push(bloom_hash(user_key));
    }

    /// Number of keys added.
    pub fn num_keys(&self) -> usize {
        self.hashes.len()
    }

    /// Encodes the filter for every key added so far.
    pub fn finish(&self) -> Vec<u8> {
        let k = num_probes(self.bits_per_key);
        let bits = (self.hashes.len())
            .saturating_mul(self.bits_per_key as usize)
            .max(MIN_BITS);
        let bytes = bits.div_ceil(8);
        let bits = bytes * 8;
        let mut out = vec![0u8; bytes + 1];
        for &h0 in &self.hashes {
            let mut h = h0;
            let delta = h.rotate_right(17);
            for _ in 0..k {
                let bit = h as usize % bits;
                out[bit / 8] |= 1 << (bit % 8);
                h = h.wrapping_add(delta);
            }
        }
        out[bytes] = k as u8;
        out
    }
}

/// Checks `user_key` against an encoded filter. `false` means definitely absent.
pub fn filter_may_contain(filter: &[u8], user_key: &[u8]) -> bool {
    let Some((&k, array)) = filter.split_last() else {
        return true;
    };
    let k = u32::from(k);
    if array.is_empty() || k > MAX_PROBES {
        return true;
    }
    let bits = array.len() * 8;
    let mut h = bloom_hash(user_key);
    let delta = h.rotate_right(17);
    for _ in 0..k {
        let bit = h as usize % bits;
        if array.get(bit / 8).is_none_or(|b| b & (1 << (bit % 8)) == 0) {
            return false;
        }
        h = h.wrapping_add(delta);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_leveldb_test_vectors() {
        // From LevelDB util/hash_test.cc (seed 0xbc9f1d34).
        assert_eq!(bloom_hash(&[]), 0xbc9f1d34);
        assert_eq!(bloom_hash(&[0x62]), 0xef1345c4);
        assert_eq!(bloom_hash(&[0xc3, 0x97]), 0x5b663814);
        assert_eq!(bloom_hash(&[0xe2, 0x99, 0xa5]), 0x323c078f);
        assert_eq!(bloom_hash(&[0xe1, 0x80, 0xb9, 0x32]), 0xed21633a);
    }

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        let mut b = BloomFilterBuilder::new(10);
        let n = 10_000u32;
        for i in 0..n {
            b.add_key(format!("present-{i}").as_bytes());
        }
        let f = b.finish();
        assert_eq!(*f.last().unwrap() as u32, num_probes(10));
        for i in 0..n {
            assert!(
                filter_may_contain(&f, format!("present-{i}").as_bytes()),
                "key {i}"
            );
        }
        let fp = (0..n)
            .filter(|i| filter_may_contain(&f, format!("absent-{i}").as_bytes()))
            .count();
        let rate = fp as f64 / n as f64;
        assert!(rate < 0.02, "false-positive rate {rate}");
        // Sanity: the filter really filters (not an all-ones array).
        assert!(fp > 0 && fp < 200, "{fp}");
    }

    #[test]
    fn small_and_empty_filters() {
        let f = BloomFilterBuilder::new(10).finish();
        assert_eq!(f.len(), 9);
        assert!(!filter_may_contain(&f, b"anything"));
        let mut b = BloomFilterBuilder::new(10);
        b.add_key(b"");
        b.add_key(b"one");
        let f = b.finish();
        assert!(filter_may_contain(&f, b""));
        assert!(filter_may_contain(&f, b"one"));
        assert!(!filter_may_contain(&f, b"two") || !filter_may_contain(&f, b"three"));
    }

    #[test]
    fn malformed_filters_never_panic_and_fail_open() {
        assert!(filter_may_contain(&[], b"k"));
        assert!(filter_may_contain(&[6], b"k"));
        assert!(filter_may_contain(&[0, 0, 0, 31], b"k"));
        assert!(filter_may_contain(&[0, 0, 0, 255], b"k"));
        assert!(filter_may_contain(&[0xff, 0xff, 0], b"k")); // k = 0: nothing to check
        for len in 0..40usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
            let _ = filter_may_contain(&bytes, b"key");
        }
    }

    #[test]
    fn probes_clamped() {
        assert_eq!(num_probes(0), 1);
        assert_eq!(num_probes(1), 1);
        assert_eq!(num_probes(10), 6);
        assert_eq!(num_probes(100), 30);
    }
}
