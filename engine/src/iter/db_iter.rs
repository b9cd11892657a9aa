//! The user-facing scan iterator: turns the merged stream of internal entries into the live
//! `(key, value)` pairs visible at one sequence number, within a key range.

use std::ops::Bound;

use super::InternalIterator;
use crate::error::{Error, Result};
use crate::key::{parse_internal_key, seek_key, SeqNo, ValueKind};
use crate::range_del::TombstoneSet;

/// An ordered iterator over the live keys of a range at one point in time, returned by
/// [`Db::scan`](crate::Db::scan).
///
/// It streams: it holds the memtables and table files it reads (so they outlive flushes and
/// compactions that happen meanwhile) and the current block, never the whole range. Items are
/// `Err` if a file turns out to be damaged; iteration ends after the first error.
pub struct DbIterator {
    inner: Box<dyn InternalIterator>,
    seq: SeqNo,
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    tombstones: TombstoneSet,
    started: bool,
    done: bool,
    /// User key of the last entry emitted or found deleted: older versions of it are hidden.
    skip: Option<Vec<u8>>,
    pending_error: Option<Error>,
    // Keeps the pinned state (memtables, version) alive for as long as `inner` reads it.
    _pins: Box<dyn Send>,
}

impl std::fmt::Debug for DbIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbIterator")
            .field("seq", &self.seq)
            .finish()
    }
}

impl DbIterator {
    pub(crate) fn new(
        inner: Box<dyn InternalIterator>,
        seq: SeqNo,
        (start, end): (Bound<Vec<u8>>, Bound<Vec<u8>>),
        tombstones: TombstoneSet,
        pins: Box<dyn Send>,
    ) -> Self {
        DbIterator {
            inner,
            seq,
            start,
            end,
            tombstones,
            started: false,
            done: false,
            skip: None,
            pending_error: None,
            _pins: pins,
        }
    }

    /// An iterator whose only item is `err` (e.g. the database was closed).
    pub(crate) fn failed(err: Error) -> Self {
        let mut it = DbIterator::new(
            Box::new(super::merging::MergingIterator::new(Vec::new())),
            0,
            (Bound::Unbounded, Bound::Unbounded),
            TombstoneSet::default(),
            Box::new(()),
        );
        it.started = true;
        it.pending_error = Some(err);
        it
    }

    fn start(&mut self) {
        self.started = true;
        match &self.start {
            Bound::Unbounded => self.inner.seek_to_first(),
            Bound::Included(k) => self.inner.seek(&seek_key(k, self.seq)),
            Bound::Excluded(k) => {
                self.inner.seek(&seek_key(k, self.seq));
                self.skip = Some(k.clone());
            }
        }
    }

    fn past_end(&self, user_key: &[u8]) -> bool {
        match &self.end {
            Bound::Unbounded => false,
            Bound::Included(e) => user_key > e.as_slice(),
            Bound::Excluded(e) => user_key >= e.as_slice(),
        }
    }

    fn advance(&mut self) -> Option<Result<(Vec<u8>, Vec<u8>)>> {
        while self.inner.valid() {
            let ikey = self.inner.key();
            let Some(parsed) = parse_internal_key(ikey) else {
                return Some(Err(Error::corruption(0, "malformed internal key in scan")));
            };
            if parsed.seq > self.seq || self.skip.as_deref() == Some(parsed.user_key) {
                self.inner.next();
                continue;
            }
            if self.past_end(parsed.user_key) {
                return None;
            }
            let key = parsed.user_key.to_vec();
            let item = match parsed.kind {
                ValueKind::Value if !self.tombstones.hides(&key, parsed.seq, self.seq) => {
                    Some((key.clone(), self.inner.value().to_vec()))
                }
                ValueKind::Value | ValueKind::Deletion => None,
                ValueKind::RangeDeletion => {
                    return Some(Err(Error::corruption(
                        0,
                        "range tombstone among point entries",
                    )))
                }
            };
            self.skip = Some(key);
            self.inner.next();
            if let Some(item) = item {
                return Some(Ok(item));
            }
        }
        self.inner.status().err().map(Err)
    }
}

impl Iterator for DbIterator {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.pending_error.take() {
            self.done = true;
            return Some(Err(e));
        }
        if !self.started {
            self.start();
        }
        let item = self.advance();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}
