//! One level of the tree (level 1 and up: sorted, non-overlapping files) as a single
//! iterator that opens only the table it is in (LevelDB's concatenating iterator).
//!
//! A scan merges every source, so without this a seek would open, seek and read a data block
//! in every table of the database; with it, each level costs one table.

use std::cmp::Ordering;
use std::sync::Arc;

use super::edit::FileMetaData;
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::key::compare_internal_keys;
use crate::sstable::TableIterator;
use crate::table_cache::TableCache;

/// Iterates over the files of one level, in key order, as one sequence.
pub struct LevelIterator {
    tables: Arc<TableCache>,
    /// The level's files, sorted by key, not overlapping.
    files: Vec<Arc<FileMetaData>>,
    /// Index in `files` of the table `current` reads.
    file: usize,
    current: Option<TableIterator>,
    err: Option<Error>,
}

impl LevelIterator {
    /// An (unpositioned) iterator over `files`, which must be sorted and non-overlapping.
    pub fn new(tables: Arc<TableCache>, files: Vec<Arc<FileMetaData>>) -> Self {
        LevelIterator {
            tables,
            files,
            file: 0,
            current: None,
            err: None,
        }
    }

    /// Opens file `i` (or clears `current` past the last file).
    fn open(&mut self, i: usize) {
        self.file = i;
        self.current = None;
        let Some(f) = self.files.get(i) else { return };
        match self.tables.get(f.number) {
            Ok(t) => self.current = Some(t.iter()),
            Err(e) => self.err = Some(e),
        }
    }

    /// While the current table is exhausted (without error), moves to the next file's first
    /// entry.
    fn skip_exhausted_files(&mut self) {
        while let Some(cur) = &self.current {
            if cur.valid() || cur.status().is_err() {
                return;
            }
            self.open(self.file + 1);
            if let Some(cur) = &mut self.current {
                cur.seek_to_first();
            }
        }
    }
}

impl InternalIterator for LevelIterator {
    fn valid(&self) -> bool {
        self.err.is_none() && self.current.as_ref().is_some_and(|c| c.valid())
    }

    fn seek_to_first(&mut self) {
        self.err = None;
        self.open(0);
        if let Some(cur) = &mut self.current {
            cur.seek_to_first();
        }
        self.skip_exhausted_files();
    }

    fn seek(&mut self, target: &[u8]) {
        self.err = None;
        // The first file whose largest key is >= target holds the first entry >= target, if
        // any file does.
        let i = self
            .files
            .partition_point(|f| compare_internal_keys(&f.largest, target) == Ordering::Less);
        if i != self.file || self.current.is_none() {
            self.open(i);
        }
        if let Some(cur) = &mut self.current {
            cur.seek(target);
        }
        self.skip_exhausted_files();
    }

    fn next(&mut self) {
        if let Some(cur) = &mut self.current {
            cur.next();
            self.skip_exhausted_files();
        }
    }

    fn key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |c| c.key())
    }

    fn value(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |c| c.value())
    }

    fn status(&self) -> Result<()> {
        if let Some(e) = &self.err {
            return Err(e.duplicate());
        }
        self.current.as_ref().map_or(Ok(()), |c| c.status())
    }
}
