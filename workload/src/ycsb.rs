//! The YCSB core workloads A–F (Cooper et al., "Benchmarking Cloud Serving Systems with
//! YCSB", and YCSB's `workloads/workload[a-f]`) as operation mixes: each operation is chosen
//! by one uniform draw `p` in `0..1`, so a driver needs no state to follow a mix.
//!
//! | workload | mix | keys |
//! |---|---|---|
//! | A | 50% read, 50% update | the run's distribution |
//! | B | 95% read, 5% update | the run's distribution |
//! | C | 100% read | the run's distribution |
//! | D | 95% read, 5% insert | reads: latest (the newest keys most popular) |
//! | E | 95% short scan (1–[`MAX_SCAN_LENGTH`] entries, uniform), 5% insert | scan starts: the run's distribution |
//! | F | 50% read, 50% read-modify-write | the run's distribution |
//!
//! Inserts write new keys after the loaded ones; updates overwrite an existing key.

/// The longest scan of workload E (YCSB's `maxscanlength`); lengths are uniform in
/// `1..=MAX_SCAN_LENGTH`.
pub const MAX_SCAN_LENGTH: usize = 100;

/// What one operation of a mix does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Read one existing key.
    Read,
    /// Overwrite one existing key.
    Update,
    /// Write a new key after the existing ones.
    Insert,
    /// Read a short range in key order from an existing key.
    Scan,
    /// Read one existing key, then overwrite it (one operation, timed as a whole).
    ReadModifyWrite,
}

/// One of the YCSB core workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ycsb {
    /// Update heavy: 50/50 read/update.
    A,
    /// Read mostly: 95/5 read/update.
    B,
    /// Read only.
    C,
    /// Read latest: 95/5 read/insert, reads skewed to the newest keys.
    D,
    /// Short ranges: 95/5 scan/insert.
    E,
    /// Read-modify-write: 50/50 read/read-modify-write.
    F,
}

impl Ycsb {
    /// Every workload, A to F.
    pub const ALL: [Ycsb; 6] = [Ycsb::A, Ycsb::B, Ycsb::C, Ycsb::D, Ycsb::E, Ycsb::F];

    /// The workload of letter `a`..`f` (either case).
    pub fn from_letter(letter: char) -> Option<Ycsb> {
        Some(match letter.to_ascii_lowercase() {
            'a' => Ycsb::A,
            'b' => Ycsb::B,
            'c' => Ycsb::C,
            'd' => Ycsb::D,
            'e' => Ycsb::E,
            'f' => Ycsb::F,
            _ => return None,
        })
    }

    /// The workload named `ycsba`..`ycsbf` (as both drivers' command lines spell it).
    pub fn from_name(name: &str) -> Option<Ycsb> {
        let mut letters = name.strip_prefix("ycsb")?.chars();
        match (letters.next(), letters.next()) {
            (Some(l), None) if l.is_ascii_lowercase() => Ycsb::from_letter(l),
            _ => None,
        }
    }

    /// Its name: `ycsba`..`ycsbf`.
    pub fn name(self) -> &'static str {
        match self {
            Ycsb::A => "ycsba",
            Ycsb::B => "ycsbb",
            Ycsb::C => "ycsbc",
            Ycsb::D => "ycsbd",
            Ycsb::E => "ycsbe",
            Ycsb::F => "ycsbf",
        }
    }

    /// Its letter, lowercase.
    pub fn letter(self) -> char {
        match self {
            Ycsb::A => 'a',
            Ycsb::B => 'b',
            Ycsb::C => 'c',
            Ycsb::D => 'd',
            Ycsb::E => 'e',
            Ycsb::F => 'f',
        }
    }

    /// The operation for a uniform draw `p` in `0..1`.
    pub fn op(self, p: f64) -> OpKind {
        match self {
            Ycsb::A if p < 0.5 => OpKind::Read,
            Ycsb::A => OpKind::Update,
            Ycsb::B if p < 0.95 => OpKind::Read,
            Ycsb::B => OpKind::Update,
            Ycsb::C => OpKind::Read,
            Ycsb::D if p < 0.95 => OpKind::Read,
            Ycsb::D => OpKind::Insert,
            Ycsb::E if p < 0.95 => OpKind::Scan,
            Ycsb::E => OpKind::Insert,
            Ycsb::F if p < 0.5 => OpKind::Read,
            Ycsb::F => OpKind::ReadModifyWrite,
        }
    }

    /// Whether its reads pick keys by recency (YCSB's `latest`) whatever the run's
    /// distribution: workload D.
    pub fn reads_latest(self) -> bool {
        self == Ycsb::D
    }

    /// Whether it scans (workload E).
    pub fn scans(self) -> bool {
        self == Ycsb::E
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// The share of each operation over many uniform draws.
    fn shares(w: Ycsb) -> HashMap<OpKind, f64> {
        const DRAWS: usize = 200_000;
        let mut rng = SmallRng::seed_from_u64(42);
        let mut counts = HashMap::new();
        for _ in 0..DRAWS {
            *counts.entry(w.op(rng.random())).or_insert(0usize) += 1;
        }
        counts
            .into_iter()
            .map(|(k, n)| (k, n as f64 / DRAWS as f64))
            .collect()
    }

    #[test]
    fn mixes_have_ycsbs_fractions() {
        use OpKind::*;
        let expected: [(Ycsb, &[(OpKind, f64)]); 6] = [
            (Ycsb::A, &[(Read, 0.5), (Update, 0.5)]),
            (Ycsb::B, &[(Read, 0.95), (Update, 0.05)]),
            (Ycsb::C, &[(Read, 1.0)]),
            (Ycsb::D, &[(Read, 0.95), (Insert, 0.05)]),
            (Ycsb::E, &[(Scan, 0.95), (Insert, 0.05)]),
            (Ycsb::F, &[(Read, 0.5), (ReadModifyWrite, 0.5)]),
        ];
        for (w, fractions) in expected {
            let got = shares(w);
            assert_eq!(got.len(), fractions.len(), "{w:?}: {got:?}");
            for &(op, want) in fractions {
                let share = got.get(&op).copied().unwrap_or(0.0);
                assert!(
                    (share - want).abs() < 0.01,
                    "{w:?} {op:?}: {share} vs {want}"
                );
            }
        }
    }

    #[test]
    fn letters_round_trip() {
        for w in Ycsb::ALL {
            assert_eq!(Ycsb::from_letter(w.letter()), Some(w));
            assert_eq!(Ycsb::from_letter(w.letter().to_ascii_uppercase()), Some(w));
        }
        assert_eq!(Ycsb::from_letter('g'), None);
        for w in Ycsb::ALL {
            assert_eq!(Ycsb::from_name(w.name()), Some(w));
        }
        for bad in ["ycsb", "ycsbg", "ycsbab", "ycsbA", "a", ""] {
            assert_eq!(Ycsb::from_name(bad), None, "{bad:?}");
        }
    }
}
