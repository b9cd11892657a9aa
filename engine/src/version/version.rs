//! A `Version`: the immutable set of table files per level at one point in time.

use std::cmp::Ordering;
use std::sync::Arc;

use super::edit::{FileMetaData, NUM_LEVELS};
use super::level_iter::LevelIterator;
use crate::error::Result;
use crate::iter::InternalIterator;
use crate::key::{compare_internal_keys, parse_internal_key, user_key, SeqNo, ValueKind};
use crate::range_del::TombstoneSet;
use crate::table_cache::TableCache;

/// Files per level. Level 0 is ordered newest first (its files may overlap, and the newest holds
/// the newest versions); levels 1.. are sorted by smallest key and never overlap.
///
/// A version never changes; readers and iterators hold an `Arc<Version>` so the files it names
/// are not deleted while they read them.
#[derive(Debug, Default)]
pub struct Version {
    /// `files[level]`.
    pub files: [Vec<Arc<FileMetaData>>; NUM_LEVELS],
    /// The range tombstones of all its files, fragmented for lookups.
    pub tombstones: TombstoneSet,
}

/// Outcome of looking a key up in one source.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The newest visible entry is a value, written at this sequence number.
    Found(SeqNo, Vec<u8>),
    /// The newest visible entry is a tombstone, written at this sequence number.
    Deleted(SeqNo),
    /// The source has no visible entry for the key.
    Absent,
}

impl Version {
    /// Finds the newest entry for `ukey` at or below the sequence number in `target` (a
    /// [`seek_key`](crate::key::seek_key)).
    pub fn get(&self, tables: &TableCache, ukey: &[u8], target: &[u8]) -> Result<Lookup> {
        for f in &self.files[0] {
            if in_range(f, ukey) {
                if let Some(found) = lookup_table(tables, f, target, ukey)? {
                    return Ok(found);
                }
            }
        }
        for level in &self.files[1..] {
            // First file whose largest key is >= the target; files do not overlap.
            let i = level
                .partition_point(|f| compare_internal_keys(&f.largest, target) == Ordering::Less);
            if let Some(f) = level.get(i) {
                if in_range(f, ukey) {
                    if let Some(found) = lookup_table(tables, f, target, ukey)? {
                        return Ok(found);
                    }
                }
            }
        }
        Ok(Lookup::Absent)
    }

    /// Iterators for a merged scan: one per level-0 file (they overlap) and one per non-empty
    /// deeper level, which opens only the table it is reading.
    pub fn iterators(&self, tables: &Arc<TableCache>) -> Result<Vec<Box<dyn InternalIterator>>> {
        let mut out: Vec<Box<dyn InternalIterator>> = Vec::new();
        for f in &self.files[0] {
            out.push(Box::new(tables.get(f.number)?.iter()));
        }
        for level in self.files[1..].iter().filter(|l| !l.is_empty()) {
            out.push(Box::new(LevelIterator::new(
                Arc::clone(tables),
                level.clone(),
            )));
        }
        Ok(out)
    }

    /// Number of files at `level`.
    pub fn num_files(&self, level: usize) -> usize {
        self.files[level].len()
    }

    /// Total bytes of the files at `level`.
    pub fn level_bytes(&self, level: usize) -> u64 {
        self.files[level].iter().map(|f| f.size).sum()
    }

    /// Files at `level` whose user-key range intersects `[lo, hi]` (`None`: unbounded). For
    /// level 0 the result is closed under overlap: a file overlapping a chosen one is chosen too,
    /// so that no older overlapping level-0 file is left above newer data moved down.
    pub fn overlapping(
        &self,
        level: usize,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
    ) -> Vec<Arc<FileMetaData>> {
        let mut lo = lo.map(<[u8]>::to_vec);
        let mut hi = hi.map(<[u8]>::to_vec);
        loop {
            let chosen: Vec<_> = self.files[level]
                .iter()
                .filter(|f| {
                    lo.as_deref().is_none_or(|lo| user_key(&f.largest) >= lo)
                        && hi.as_deref().is_none_or(|hi| user_key(&f.smallest) <= hi)
                })
                .cloned()
                .collect();
            if level > 0 {
                return chosen;
            }
            // Widen the range to the chosen files' and repeat until nothing new is chosen.
            let mut widened = false;
            for f in &chosen {
                let (s, l) = (user_key(&f.smallest), user_key(&f.largest));
                if lo.as_deref().is_some_and(|lo| s < lo) {
                    lo = Some(s.to_vec());
                    widened = true;
                }
                if hi.as_deref().is_some_and(|hi| l > hi) {
                    hi = Some(l.to_vec());
                    widened = true;
                }
            }
            if !widened {
                return chosen;
            }
        }
    }

    /// Checks the structural invariants: levels >= 1 sorted by key and non-overlapping, every
    /// file's smallest key <= its largest, no file in two places.
    pub fn check_invariants(&self) -> Result<()> {
        let bad = |msg: String| Err(crate::Error::corruption(0, msg));
        let mut seen = std::collections::HashSet::new();
        for (level, files) in self.files.iter().enumerate() {
            for f in files {
                if !seen.insert(f.number) {
                    return bad(format!("table {} is listed twice", f.number));
                }
                if compare_internal_keys(&f.smallest, &f.largest) == Ordering::Greater {
                    return bad(format!("table {} has smallest > largest", f.number));
                }
            }
            if level == 0 {
                continue;
            }
            for pair in files.windows(2) {
                // Internal-key order: a table whose range tombstone ends (exclusively) at `k`
                // has a largest key that sorts before every entry of `k`.
                if compare_internal_keys(&pair[0].largest, &pair[1].smallest) != Ordering::Less {
                    return bad(format!(
                        "level {level}: tables {} and {} overlap or are out of order",
                        pair[0].number, pair[1].number
                    ));
                }
            }
        }
        Ok(())
    }

    /// True if no file below `level` may hold `user_key`: a tombstone for it at `level` can go.
    pub fn is_bottommost_for(&self, level: usize, ukey: &[u8]) -> bool {
        self.files.iter().skip(level + 1).all(|files| {
            let i = files.partition_point(|f| user_key(&f.largest) < ukey);
            files.get(i).is_none_or(|f| user_key(&f.smallest) > ukey)
        })
    }

    /// Table bytes with each user-key range counted once, at the deepest level holding it: an
    /// estimate of live data that discounts versions shadowed in higher levels.
    pub fn estimated_live_bytes(&self) -> u64 {
        let mut counted: Vec<(&[u8], &[u8])> = Vec::new();
        let mut total = 0;
        for files in self.files.iter().rev() {
            let mut added = Vec::new();
            for f in files {
                let (lo, hi) = (user_key(&f.smallest), user_key(&f.largest));
                if !counted.iter().any(|&(a, b)| lo <= b && a <= hi) {
                    total += f.size;
                    added.push((lo, hi));
                }
            }
            counted.extend(added);
        }
        total
    }

    /// True if no file below `level` overlaps the user keys `[start, end)`.
    pub fn is_bottommost_for_range(&self, level: usize, start: &[u8], end: &[u8]) -> bool {
        self.files
            .iter()
            .skip(level + 1)
            .flatten()
            .all(|f| user_key(&f.largest) < start || user_key(&f.smallest) >= end)
    }

    /// Every file number this version references.
    pub fn file_numbers(&self) -> impl Iterator<Item = u64> + '_ {
        self.files.iter().flatten().map(|f| f.number)
    }
}

fn in_range(f: &FileMetaData, ukey: &[u8]) -> bool {
    ukey >= user_key(&f.smallest) && ukey <= user_key(&f.largest)
}

fn lookup_table(
    tables: &TableCache,
    f: &FileMetaData,
    target: &[u8],
    ukey: &[u8],
) -> Result<Option<Lookup>> {
    let table = tables.get(f.number)?;
    let Some((ikey, value)) = table.get(target, ukey)? else {
        return Ok(None);
    };
    match parse_internal_key(&ikey) {
        Some(p) if p.user_key == ukey => Ok(Some(match p.kind {
            ValueKind::Value => Lookup::Found(p.seq, value),
            ValueKind::Deletion | ValueKind::RangeDeletion => Lookup::Deleted(p.seq),
        })),
        Some(_) => Ok(None),
        None => Err(crate::Error::corruption(0, "malformed internal key")
            .in_file(crate::filename::table_name(f.number), 0)),
    }
}
