//! The seeded generator every deterministic simulation and randomized test of the workspace
//! draws from, so that a seed fixes every random choice of a run and a printed seed replays it.
//!
//! The algorithm is splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
//! generators", 2014): one 64-bit word of state, any seed (0 too), the same sequence on every
//! platform. The sequence is part of the contract: seeds recorded in regression tests and bug
//! reports replay only as long as every method below draws exactly the same words in the same
//! order, so change none of them without accepting that every recorded seed now means another
//! run.

/// A splitmix64 generator with helpers for the draws simulations make.
///
/// ```
/// use strata_paxos::sim::SimRng;
///
/// let mut a = SimRng::new(7);
/// let mut b = SimRng::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let d = a.range(1, 8);
/// assert!((1..=8).contains(&d));
/// ```
#[derive(Clone, Debug)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> SimRng {
        SimRng { state: seed }
    }

    /// The next word of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `next_u64() % n`; 0 without drawing when `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// In `lo..=hi` (`lo` when `hi < lo`); one draw.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `p` (never when `p <= 0`, without drawing); one draw otherwise,
    /// of 53 bits.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64) < p * (1u64 << 53) as f64
    }

    /// True with probability `percent / 100`, drawn as `below(100) < percent`: a different
    /// draw from [`SimRng::chance`], so the two are not interchangeable without changing runs.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items`, uniformly. Panics when `items` is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Shuffles `items` in place (Fisher–Yates, from the back: one draw per position above 0).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SimRng;

    /// The sequence is pinned: these are splitmix64's published outputs for seed 0, and a
    /// change here changes every recorded seed's run.
    #[test]
    fn the_sequence_is_splitmix64() {
        let mut r = SimRng::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(r.next_u64(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn helpers_draw_one_word_each() {
        let mut a = SimRng::new(42);
        let mut b = SimRng::new(42);
        let w = b.next_u64();
        assert_eq!(a.below(10), w % 10);
        let w = b.next_u64();
        assert_eq!(a.range(5, 9), 5 + w % 5);
        let w = b.next_u64();
        assert_eq!(
            a.chance(0.5),
            ((w >> 11) as f64 / (1u64 << 53) as f64) < 0.5
        );
        let w = b.next_u64();
        assert_eq!(a.percent(30), w % 100 < 30);
        // No draw at all for these.
        assert_eq!(a.below(0), 0);
        assert!(!a.chance(0.0));
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn shuffle_permutes() {
        let mut v: Vec<u32> = (0..50).collect();
        SimRng::new(3).shuffle(&mut v);
        assert_ne!(v, (0..50).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
    }
}
