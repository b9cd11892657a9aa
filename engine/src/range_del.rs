//! Range tombstones: `delete_range(start..end)` as one record instead of one tombstone per key.
//!
//! A tombstone `[start, end) @ seq` hides every entry of a user key in the range with a smaller
//! sequence number, for readers at `seq` or later. Tombstones live beside the point entries, not
//! among them: in a memtable's own list, and in the metadata of the table that carries them (so
//! in the MANIFEST), which keeps every version's tombstones in memory without opening tables.
//! They are expected to be few (shard migrations, prefix drops); a [`TombstoneSet`] fragments
//! them for `O(log n)` lookups by scans and gets.
//!
//! An unbounded end is stored as [`UNBOUNDED_END`]-bytes: a key longer than any key the engine
//! accepts, so it sorts after all of them.

use crate::key::SeqNo;
use crate::write_batch::MAX_KEY_SIZE;

/// One range tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeTombstone {
    /// First user key deleted.
    pub start: Vec<u8>,
    /// First user key not deleted (exclusive).
    pub end: Vec<u8>,
    /// Sequence number of the deletion.
    pub seq: SeqNo,
}

impl RangeTombstone {
    /// The part of the tombstone inside `[lo, hi)` (`None`: unbounded), if any.
    pub fn clip(&self, lo: Option<&[u8]>, hi: Option<&[u8]>) -> Option<RangeTombstone> {
        let start = match lo {
            Some(lo) if lo > self.start.as_slice() => lo.to_vec(),
            _ => self.start.clone(),
        };
        let end = match hi {
            Some(hi) if hi < self.end.as_slice() => hi.to_vec(),
            _ => self.end.clone(),
        };
        (start < end).then_some(RangeTombstone {
            start,
            end,
            seq: self.seq,
        })
    }

    /// Whether the tombstone covers `key` (ignoring sequence numbers).
    pub fn contains(&self, key: &[u8]) -> bool {
        self.start.as_slice() <= key && key < self.end.as_slice()
    }
}

/// The stored end of a range with no upper bound: longer than [`MAX_KEY_SIZE`], all `0xff`.
pub fn unbounded_end() -> Vec<u8> {
    vec![0xff; MAX_KEY_SIZE + 1]
}

/// Length of [`unbounded_end`].
pub const UNBOUNDED_END: usize = MAX_KEY_SIZE + 1;

/// Tombstones cut into disjoint fragments, each with the sequence numbers of the tombstones
/// covering it (descending), so that "the newest tombstone over `key` visible at `seq`" is a
/// binary search plus a short scan.
#[derive(Debug, Clone, Default)]
pub struct TombstoneSet {
    /// `(start, end, seqs descending)`, sorted by start, disjoint.
    fragments: Vec<(Vec<u8>, Vec<u8>, Vec<SeqNo>)>,
}

impl TombstoneSet {
    /// Fragments `tombstones`.
    pub fn new<'a>(tombstones: impl IntoIterator<Item = &'a RangeTombstone>) -> Self {
        let list: Vec<&RangeTombstone> =
            tombstones.into_iter().filter(|t| t.start < t.end).collect();
        let mut bounds: Vec<&[u8]> = list
            .iter()
            .flat_map(|t| [t.start.as_slice(), t.end.as_slice()])
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        let mut fragments = Vec::new();
        for w in bounds.windows(2) {
            let (lo, hi) = (w[0], w[1]);
            let mut seqs: Vec<SeqNo> = list
                .iter()
                .filter(|t| t.start.as_slice() <= lo && hi <= t.end.as_slice())
                .map(|t| t.seq)
                .collect();
            if seqs.is_empty() {
                continue;
            }
            seqs.sort_unstable_by(|a, b| b.cmp(a));
            seqs.dedup();
            fragments.push((lo.to_vec(), hi.to_vec(), seqs));
        }
        TombstoneSet { fragments }
    }

    /// True if there are no tombstones.
    pub fn is_empty(&self) -> bool {
        self.fragments.is_empty()
    }

    /// The newest tombstone sequence number covering `key` that a reader at `read_seq` sees.
    pub fn covering(&self, key: &[u8], read_seq: SeqNo) -> Option<SeqNo> {
        self.seqs_over(key)?
            .iter()
            .copied()
            .find(|&s| s <= read_seq)
    }

    /// Sequence numbers (descending) of the tombstones covering `key`.
    fn seqs_over(&self, key: &[u8]) -> Option<&[SeqNo]> {
        let i = self
            .fragments
            .partition_point(|(start, _, _)| start.as_slice() <= key);
        let (_, end, seqs) = self.fragments.get(i.checked_sub(1)?)?;
        (key < end.as_slice()).then_some(seqs.as_slice())
    }

    /// The oldest tombstone covering `key` that is newer than `seq` (compaction: the one whose
    /// snapshot stripe decides whether the entry at `seq` can be dropped).
    pub fn oldest_covering_above(&self, key: &[u8], seq: SeqNo) -> Option<SeqNo> {
        self.seqs_over(key)?
            .iter()
            .rev()
            .copied()
            .find(|&s| s > seq)
    }

    /// Whether an entry of `key` written at `seq` is deleted for a reader at `read_seq`.
    pub fn hides(&self, key: &[u8], seq: SeqNo, read_seq: SeqNo) -> bool {
        self.covering(key, read_seq).is_some_and(|t| t > seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: &str, end: &str, seq: SeqNo) -> RangeTombstone {
        RangeTombstone {
            start: start.into(),
            end: end.into(),
            seq,
        }
    }

    #[test]
    fn fragments_answer_like_a_linear_scan() {
        let list = vec![
            t("b", "f", 10),
            t("d", "k", 20),
            t("a", "c", 5),
            t("x", "x", 99),
            t("e", "g", 15),
        ];
        let set = TombstoneSet::new(&list);
        for key in [
            "", "a", "b", "bb", "c", "d", "e", "f", "g", "j", "k", "z", "x",
        ] {
            for read in [0, 4, 5, 9, 10, 14, 15, 19, 20, 100] {
                let expect = list
                    .iter()
                    .filter(|t| t.contains(key.as_bytes()) && t.seq <= read)
                    .map(|t| t.seq)
                    .max();
                assert_eq!(
                    set.covering(key.as_bytes(), read),
                    expect,
                    "key {key:?} read {read}"
                );
            }
        }
        assert!(set.hides(b"e", 12, 100));
        assert!(!set.hides(b"e", 25, 100));
        assert!(!set.hides(b"e", 12, 9));
        assert!(TombstoneSet::new(&[t("x", "x", 1)]).is_empty());
        // "e" is covered by seqs 10, 15, 20.
        assert_eq!(set.oldest_covering_above(b"e", 9), Some(10));
        assert_eq!(set.oldest_covering_above(b"e", 10), Some(15));
        assert_eq!(set.oldest_covering_above(b"e", 20), None);
        assert_eq!(set.oldest_covering_above(b"z", 0), None);
    }

    #[test]
    fn unbounded_end_is_beyond_every_key() {
        let tomb = RangeTombstone {
            start: b"m".to_vec(),
            end: unbounded_end(),
            seq: 3,
        };
        assert!(tomb.contains(&vec![0xff; MAX_KEY_SIZE]));
        assert!(tomb.contains(b"m"));
        assert!(!tomb.contains(b"l"));
        assert_eq!(unbounded_end().len(), UNBOUNDED_END);
    }
}
