//! The table's Bloom filter over user keys: one filter for the whole table.
//!
//! Tables are written with a *cache-local* Bloom filter (the design of RocksDB's
//! `FastLocalBloom`): every key's probes fall in one 64-byte cache line, so a lookup costs one
//! cache miss, where a classic Bloom filter costs one per probe (about two for an absent key,
//! `k` for a present one). Tables written before it have LevelDB's classic filter, which is still
//! read.
//!
//! ```text
//! cache-local filter block (written now):
//!   lines (n × 64 bytes, n >= 1) | k (1 byte, 1..=30) | 0xFE (marker)
//!
//!   h    = filter_hash(K)                      64-bit, defined below
//!   line = ((h as u32) as u64 * n) >> 32       the key's 64-byte line
//!   p    = (h >> 32) as u32
//!   probe j = 0..k: bit (p >> 23) of the line  (0..512; byte bit / 8, mask 1 << (bit % 8)),
//!                   then p = p * 0x9e3779b9    (wrapping u32)
//!
//! classic filter block (LevelDB's; read only):
//!   bit array (m = 8 * (len - 1) bits, at least 64) | k (1 byte: number of probes, 1..=30)
//!
//!   h     = bloom_hash(K)                      LevelDB's Hash(K, seed 0xbc9f1d34)
//!   delta = h.rotate_right(17)
//!   probe j = 0..k: bit (h + j * delta) mod m  (wrapping u32 arithmetic)
//! ```
//!
//! The hashes are defined here byte by byte (not through `std::hash::Hash`, whose byte stream
//! is not a stable format), so a filter written by one build answers correctly in every later
//! build. Decoding never panics: a filter it cannot interpret (too short, a line array that is
//! not whole lines, `k` out of range, an unknown marker) answers "may contain" for every key.

/// Seed of [`bloom_hash`], as in LevelDB's `BloomHash`.
pub const BLOOM_HASH_SEED: u32 = 0xbc9f_1d34;
const MAX_PROBES: u32 = 30;
/// Last byte of a cache-local filter (a classic filter ends with `k <= 30`).
const LOCAL_MARKER: u8 = 0xFE;
/// Bytes of one filter line: a cache line.
const LINE_BYTES: usize = 64;
const LINE_BITS: usize = LINE_BYTES * 8;

/// LevelDB's 32-bit `Hash(data, n, seed)` (a Murmur-like hash) with seed [`BLOOM_HASH_SEED`];
/// the hash of the classic filter.
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

/// The 64-bit hash of the cache-local filter: the key's length, then its bytes as
/// little-endian 64-bit words (the last one zero-padded), each folded in with a 64×64→128-bit
/// multiply whose halves are xored (as wyhash and foldhash do):
///
/// ```text
/// fold(a, b) = lo(a * b) ^ hi(a * b)                     (u128 product)
/// h = fold(len ^ 0x2d358dccaa6c78a5, 0xa0761d6478bd642f)
/// for each word w: h = fold(h ^ w, 0xe7037ed1a0b428db)
/// result = fold(h, 0xa0761d6478bd642f)
/// ```
pub fn filter_hash(data: &[u8]) -> u64 {
    const SEED: u64 = 0x2d35_8dcc_aa6c_78a5;
    const P0: u64 = 0xa076_1d64_78bd_642f;
    const P1: u64 = 0xe703_7ed1_a0b4_28db;
    let fold = |a: u64, b: u64| {
        let r = u128::from(a) * u128::from(b);
        (r as u64) ^ ((r >> 64) as u64)
    };
    let mut h = fold(data.len() as u64 ^ SEED, P0);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = fold(h ^ u64::from_le_bytes(b), P1);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = fold(h ^ u64::from_le_bytes(b), P1);
    }
    fold(h, P0)
}

/// Probes per key of the cache-local filter for `bits_per_key` (RocksDB's choices for
/// `FastLocalBloom`, which confining the probes to one line shifts below `bits * ln 2`).
pub fn num_probes(bits_per_key: u32) -> u32 {
    match bits_per_key {
        0..=2 => 1,
        3 => 2,
        4..=5 => 3,
        6 => 4,
        7..=8 => 5,
        9..=10 => 6,
        11 => 7,
        12..=14 => 8,
        15..=16 => 9,
        17..=18 => 10,
        19..=22 => 11,
        23..=25 => 12,
        b => (b / 2 - 1).min(MAX_PROBES),
    }
}

/// Collects key hashes and produces the (cache-local) filter block.
#[derive(Debug)]
pub struct BloomFilterBuilder {
    bits_per_key: u32,
    hashes: Vec<u64>,
}

impl BloomFilterBuilder {
    /// A builder spending `bits_per_key` bits per added key (at least 1).
    pub fn new(bits_per_key: u32) -> BloomFilterBuilder {
        BloomFilterBuilder {
            bits_per_key: bits_per_key.max(1),
            hashes: Vec::new(),
        }
    }

    /// Adds a user key.
    pub fn add_key(&mut self, user_key: &[u8]) {
        self.hashes.push(filter_hash(user_key));
    }

    /// Number of keys added.
    pub fn num_keys(&self) -> usize {
        self.hashes.len()
    }

    /// The filter block.
    pub fn finish(&self) -> Vec<u8> {
        let k = num_probes(self.bits_per_key);
        let bits = self.hashes.len().saturating_mul(self.bits_per_key as usize);
        let lines = bits.div_ceil(LINE_BITS).clamp(1, u32::MAX as usize);
        let mut out = vec![0u8; lines * LINE_BYTES + 2];
        for &h in &self.hashes {
            let (line, probes) = local_probes(h, lines, k);
            let line = &mut out[line * LINE_BYTES..][..LINE_BYTES];
            for bit in probes {
                line[bit / 8] |= 1 << (bit % 8);
            }
        }
        out[lines * LINE_BYTES] = k as u8;
        out[lines * LINE_BYTES + 1] = LOCAL_MARKER;
        out
    }
}

/// Index of the line of hash `h` in a filter of `lines` lines.
fn local_line(h: u64, lines: usize) -> usize {
    (((h as u32 as u64) * lines as u64) >> 32) as usize
}

/// The probes of hash `h` in a cache-local filter of `lines` 64-byte lines: the line's index
/// and the `k` bit positions (0..512) within it. Shared by the table filter and the memtable's.
pub(crate) fn local_probes(h: u64, lines: usize, k: u32) -> (usize, impl Iterator<Item = usize>) {
    let mut p = (h >> 32) as u32;
    let bits = (0..k).map(move |_| {
        let bit = (p >> 23) as usize;
        p = p.wrapping_mul(0x9e37_79b9);
        bit
    });
    (local_line(h, lines), bits)
}

/// Checks the filter for `user_key`: `false` means the key was definitely not added.
pub fn filter_may_contain(filter: &[u8], user_key: &[u8]) -> bool {
    match filter.split_last() {
        Some((&LOCAL_MARKER, rest)) => local_may_contain(rest, user_key),
        Some((&k, array)) => classic_may_contain(array, k, user_key),
        None => true,
    }
}

fn local_may_contain(filter: &[u8], user_key: &[u8]) -> bool {
    let Some((&k, lines)) = filter.split_last() else {
        return true;
    };
    let k = u32::from(k);
    if lines.is_empty() || !lines.len().is_multiple_of(LINE_BYTES) || k > MAX_PROBES {
        return true;
    }
    let (line, mut probes) = local_probes(filter_hash(user_key), lines.len() / LINE_BYTES, k);
    let Some(line) = lines.get(line * LINE_BYTES..(line + 1) * LINE_BYTES) else {
        return true;
    };
    probes.all(|bit| line[bit / 8] & (1 << (bit % 8)) != 0)
}

fn classic_may_contain(array: &[u8], k: u8, user_key: &[u8]) -> bool {
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

    /// Smallest classic filter, in bits.
    const MIN_BITS: usize = 64;

    /// A classic (LevelDB) filter, as tables written before the cache-local filter hold.
    fn classic_filter(keys: &[Vec<u8>], bits_per_key: usize) -> Vec<u8> {
        let k = ((bits_per_key as f64 * 0.69) as u32).clamp(1, MAX_PROBES);
        let bytes = (keys.len() * bits_per_key).max(MIN_BITS).div_ceil(8);
        let bits = bytes * 8;
        let mut out = vec![0u8; bytes + 1];
        for key in keys {
            let mut h = bloom_hash(key);
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

    fn keys(prefix: &str, n: u32) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("{prefix}-{i}").into_bytes()).collect()
    }

    fn false_positive_rate(filter: &[u8], n: u32) -> f64 {
        let fp = keys("absent", n)
            .iter()
            .filter(|k| filter_may_contain(filter, k))
            .count();
        fp as f64 / f64::from(n)
    }

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
    fn filter_hash_tells_lengths_and_padding_apart() {
        assert_ne!(filter_hash(b""), filter_hash(b"\0"));
        assert_ne!(filter_hash(b"ab"), filter_hash(b"ab\0"));
        assert_ne!(filter_hash(b"12345678"), filter_hash(b"12345678\0"));
        assert_ne!(filter_hash(b"key-1"), filter_hash(b"key-2"));
    }

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        let present = keys("present", 20_000);
        let mut b = BloomFilterBuilder::new(10);
        for k in &present {
            b.add_key(k);
        }
        let f = b.finish();
        assert_eq!(f[f.len() - 2..], [num_probes(10) as u8, LOCAL_MARKER]);
        assert_eq!((f.len() - 2) % LINE_BYTES, 0);
        assert!(present.iter().all(|k| filter_may_contain(&f, k)));
        // RocksDB measures ~0.95% for this design at 10 bits/key.
        let rate = false_positive_rate(&f, 20_000);
        assert!(rate > 0.002 && rate < 0.015, "false-positive rate {rate}");
    }

    #[test]
    fn keys_spread_evenly_over_lines() {
        // Decimal keys that differ in one digit (as the benchmarks' are) still spread: no line
        // gets far more than its share, which would raise the false-positive rate.
        let lines = 1000;
        let mut load = vec![0u32; lines];
        for i in 0..100_000u64 {
            let key = format!("{i:015}0");
            load[local_line(filter_hash(key.as_bytes()), lines)] += 1;
        }
        let (min, max) = (load.iter().min().unwrap(), load.iter().max().unwrap());
        assert!(*min > 50 && *max < 160, "line loads from {min} to {max} (mean 100)");
    }

    #[test]
    fn more_bits_per_key_mean_fewer_false_positives() {
        let present = keys("present", 10_000);
        let rate = |bits| {
            let mut b = BloomFilterBuilder::new(bits);
            present.iter().for_each(|k| b.add_key(k));
            false_positive_rate(&b.finish(), 20_000)
        };
        let (r5, r10, r20) = (rate(5), rate(10), rate(20));
        assert!(r5 > r10 && r10 > r20, "{r5} {r10} {r20}");
        assert!(r20 < 0.001, "{r20}");
    }

    #[test]
    fn classic_filters_of_older_tables_still_answer() {
        let present = keys("present", 10_000);
        let f = classic_filter(&present, 10);
        assert!(present.iter().all(|k| filter_may_contain(&f, k)));
        let rate = false_positive_rate(&f, 10_000);
        assert!(rate > 0.0 && rate < 0.02, "false-positive rate {rate}");
    }

    #[test]
    fn small_and_empty_filters() {
        let f = BloomFilterBuilder::new(10).finish();
        assert_eq!(f.len(), LINE_BYTES + 2);
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
        // Cache-local: no lines, lines not whole, k out of range.
        assert!(filter_may_contain(&[6, LOCAL_MARKER], b"k"));
        assert!(filter_may_contain(&[LOCAL_MARKER], b"k"));
        let mut partial = vec![0u8; LINE_BYTES + 3];
        partial.extend_from_slice(&[6, LOCAL_MARKER]);
        assert!(filter_may_contain(&partial, b"k"));
        let mut big_k = vec![0u8; LINE_BYTES];
        big_k.extend_from_slice(&[31, LOCAL_MARKER]);
        assert!(filter_may_contain(&big_k, b"k"));
        for len in 0..200usize {
            let mut bytes: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
            let _ = filter_may_contain(&bytes, b"key");
            bytes.push(LOCAL_MARKER);
            let _ = filter_may_contain(&bytes, b"key");
        }
    }

    #[test]
    fn probes_grow_with_bits_and_stay_clamped() {
        assert_eq!(num_probes(0), 1);
        assert_eq!(num_probes(1), 1);
        assert_eq!(num_probes(10), 6);
        assert!((1..200).all(|b| num_probes(b) <= num_probes(b + 1)));
        assert_eq!(num_probes(1000), MAX_PROBES);
    }
}
