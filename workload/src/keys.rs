//! Keys, values and the order and distribution in which workloads pick them.
//!
//! Key `i` is `i` in zero-padded decimal over `key_size - 1` bytes followed by `'0'`; the
//! *missing* key `i` ends in `'5'` instead, so it sorts between present keys (as db_bench's
//! `readmissing` does) and only a filter or a block search can tell it is absent. Keys beyond
//! `num` are inserts (YCSB D and E).
//!
//! Random workloads pick keys with a [`KeyPicker`] (one per thread or task, seeded), by a
//! [`Distribution`]; the Zipfian constants ([`Zipfian`], O(n) to compute) are computed once
//! per run and copied into each picker.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Smallest key size: room for the 20 digits of a `u64` is not needed, but a few are.
pub const MIN_KEY_SIZE: usize = 8;

/// Writes key `id` (or its missing twin) into `buf`, which has the key size.
pub fn make_key(buf: &mut [u8], mut id: u64, missing: bool) {
    let (digits, last) = buf.split_at_mut(buf.len() - 1);
    for d in digits.iter_mut().rev() {
        *d = b'0' + (id % 10) as u8;
        id /= 10;
    }
    last[0] = if missing { b'5' } else { b'0' };
}

/// Value bytes: a pool in which every 100-byte stretch is half random and half a copy of that
/// half, so that values compress to about 50% (as db_bench's default `compression_ratio`).
pub struct ValuePool {
    bytes: Vec<u8>,
}

impl ValuePool {
    /// A pool of 1 MiB plus one value, seeded deterministically.
    pub fn new(value_size: usize) -> Self {
        let len = (1 << 20) + value_size;
        let mut rng = SmallRng::seed_from_u64(301);
        let mut bytes = Vec::with_capacity(len + 100);
        while bytes.len() < len {
            let half: Vec<u8> = (0..50).map(|_| rng.random::<u8>()).collect();
            bytes.extend_from_slice(&half);
            bytes.extend_from_slice(&half);
        }
        ValuePool { bytes }
    }

    /// The value written for key `id` at version `salt` (overwrites change the bytes).
    pub fn value(&self, id: u64, salt: u64, value_size: usize) -> &[u8] {
        let span = (self.bytes.len() - value_size) as u64;
        let off = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(31)) % span;
        &self.bytes[off as usize..off as usize + value_size]
    }
}

/// A permutation of `0..n` that spreads consecutive positions over the whole key space
/// (a golden-ratio stride coprime with `n`): each key is written once, in scattered order,
/// without holding a shuffled array in memory.
#[derive(Debug, Clone, Copy)]
pub struct ScatteredOrder {
    n: u64,
    stride: u64,
}

impl ScatteredOrder {
    /// The permutation of `0..n`.
    pub fn new(n: u64) -> Self {
        let mut stride = ((n as f64) * 0.618_033_988_75) as u64 | 1;
        while gcd(stride, n) != 1 {
            stride += 1;
        }
        ScatteredOrder { n, stride }
    }

    /// The key at position `i`.
    pub fn at(&self, i: u64) -> u64 {
        ((i as u128 * self.stride as u128) % self.n as u128) as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// How random workloads pick keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// YCSB's scrambled Zipfian (theta 0.99): a few hot keys, spread over the key space.
    Zipfian,
    /// YCSB's "latest": Zipfian over recency, the newest key the most popular.
    Latest,
}

impl Distribution {
    /// The name as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
            Distribution::Latest => "latest",
        }
    }
}

/// YCSB's Zipfian generator over `0..n` (Gray et al., "Quickly generating billion-record
/// synthetic databases"); the constants are computed once and copied to every picker.
#[derive(Debug, Clone, Copy)]
pub struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    /// YCSB's default skew.
    pub const THETA: f64 = 0.99;

    /// The generator over `0..n` (O(n) to set up).
    pub fn new(n: u64) -> Self {
        let theta = Self::THETA;
        let n = n.max(1);
        let zetan: f64 = (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum();
        let zeta2 = 1.0 + 0.5f64.powf(theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipfian {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
        }
    }

    /// The number of items, `n`.
    pub fn items(&self) -> u64 {
        self.n
    }

    /// A rank: 0 is the most popular.
    pub fn rank(&self, rng: &mut SmallRng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.n - 1);
        }
        let r = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n - 1)
    }

    /// A key: the rank scrambled (FNV-1a) so that hot keys are not neighbours.
    pub fn scrambled(&self, rng: &mut SmallRng) -> u64 {
        fnv1a(self.rank(rng)) % self.n
    }
}

fn fnv1a(x: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in x.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Picks existing keys in `0..n` by the chosen distribution.
#[derive(Debug, Clone)]
pub struct KeyPicker {
    rng: SmallRng,
    n: u64,
    zipf: Zipfian,
    distribution: Distribution,
}

impl KeyPicker {
    /// A picker for one thread over `0..zipf.items()`.
    pub fn new(seed: u64, zipf: &Zipfian, distribution: Distribution) -> Self {
        KeyPicker {
            rng: SmallRng::seed_from_u64(seed),
            n: zipf.n,
            zipf: *zipf,
            distribution,
        }
    }

    /// The next key (`latest`: skewed towards `n - 1`, the newest of the keys loaded).
    pub fn next_key(&mut self) -> u64 {
        match self.distribution {
            Distribution::Zipfian => self.zipf.scrambled(&mut self.rng),
            Distribution::Uniform => self.rng.random_range(0..self.n),
            Distribution::Latest => self.latest(self.n - 1),
        }
    }

    /// A key skewed (Zipfian, whatever the distribution) towards the newest of `newest + 1`
    /// keys: YCSB D's "latest" distribution.
    pub fn latest(&mut self, newest: u64) -> u64 {
        newest.saturating_sub(self.zipf.rank(&mut self.rng))
    }

    /// A uniform number in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        self.rng.random_range(lo..=hi)
    }

    /// A uniform number in `0..1`.
    pub fn unit(&mut self) -> f64 {
        self.rng.random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_like_ids_and_missing_keys_fall_between() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        let mut m = [0u8; 16];
        make_key(&mut a, 41, false);
        make_key(&mut m, 41, true);
        make_key(&mut b, 42, false);
        assert_eq!(&a, b"0000000000000410");
        assert!(a < m && m < b);
    }

    #[test]
    fn scattered_order_is_a_permutation() {
        for n in [1u64, 2, 10, 1000, 4096, 5000] {
            let order = ScatteredOrder::new(n);
            let mut seen: Vec<u64> = (0..n).map(|i| order.at(i)).collect();
            seen.sort_unstable();
            assert!(seen.iter().copied().eq(0..n), "n = {n}");
        }
    }

    #[test]
    fn zipfian_stays_in_range_and_is_skewed() {
        let z = Zipfian::new(1000);
        let mut rng = SmallRng::seed_from_u64(1);
        let ranks: Vec<u64> = (0..10_000).map(|_| z.rank(&mut rng)).collect();
        assert!(ranks.iter().all(|&r| r < 1000));
        let top = ranks.iter().filter(|&&r| r < 10).count();
        assert!(top > 3000, "top-10 share {top}");
    }

    /// Share of `draws` picks that land on the `hot` most frequent keys.
    fn hot_share(distribution: Distribution, hot: usize, draws: usize) -> f64 {
        let zipf = Zipfian::new(10_000);
        let mut picker = KeyPicker::new(5, &zipf, distribution);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..draws {
            let k = picker.next_key();
            assert!(k < 10_000);
            *counts.entry(k).or_insert(0usize) += 1;
        }
        let mut counts: Vec<usize> = counts.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        counts.iter().take(hot).sum::<usize>() as f64 / draws as f64
    }

    #[test]
    fn zipfian_picks_concentrate_on_few_keys_and_uniform_ones_do_not() {
        // theta 0.99 over 10,000 keys: the top 1% of keys get well over a third of the picks
        // (about 0.55 in theory); uniform picks give them about 1%.
        let zipfian = hot_share(Distribution::Zipfian, 100, 100_000);
        let uniform = hot_share(Distribution::Uniform, 100, 100_000);
        assert!(zipfian > 0.4, "zipfian top-1% share {zipfian}");
        assert!(uniform < 0.05, "uniform top-1% share {uniform}");
    }

    #[test]
    fn zipfian_hot_keys_are_scattered_and_latest_ones_are_the_newest() {
        let zipf = Zipfian::new(10_000);
        let mut zipfian = KeyPicker::new(9, &zipf, Distribution::Zipfian);
        let mut latest = KeyPicker::new(9, &zipf, Distribution::Latest);
        let draws = 20_000;
        let newest_zipfian = (0..draws).filter(|_| zipfian.next_key() >= 9_900).count();
        let newest_latest = (0..draws).filter(|_| latest.next_key() >= 9_900).count();
        // Scrambled: the hot keys are anywhere, so the newest 1% get about their share.
        assert!(
            newest_zipfian < draws / 10,
            "zipfian newest share {newest_zipfian}"
        );
        assert!(
            newest_latest > draws / 3,
            "latest newest share {newest_latest}"
        );
    }
}
