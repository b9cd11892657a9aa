//! A `Version`: the immutable set of table files per level at one point in time.

use std::cmp::Ordering;
use std::sync::Arc;

use super::edit::{FileMetaData, NUM_LEVELS};
use crate::error::Result;
use crate::iter::InternalIterator;
use crate::key::{compare_internal_keys, parse_internal_key, user_key, ValueKind};
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
}

/// Outcome of looking a key up in one source.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The newest visible entry is a value.
    Found(Vec<u8>),
    /// The newest visible entry is a tombstone.
    Deleted,
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

    /// One iterator per level-0 file and per file of the other levels, for a merged scan.
    pub fn iterators(&self, tables: &TableCache) -> Result<Vec<Box<dyn InternalIterator>>> {
        let mut out: Vec<Box<dyn InternalIterator>> = Vec::new();
        for level in &self.files {
            for f in level {
                out.push(Box::new(tables.get(f.number)?.iter()));
            }
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
            ValueKind::Value => Lookup::Found(value),
            ValueKind::Deletion => Lookup::Deleted,
        })),
        Some(_) => Ok(None),
        None => Err(crate::Error::corruption(0, "malformed internal key")
            .in_file(crate::filename::table_name(f.number), 0)),
    }
}
