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
    /// `inner` is still positioned on the entry returned last (it moves on at the next call,
    /// so that the entry can be lent out without a copy).
    on_returned: bool,
    /// User key of the last entry emitted or found deleted (when `has_skip`): older versions of
    /// it are hidden. A buffer reused from entry to entry.
    skip: Vec<u8>,
    has_skip: bool,
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
            on_returned: false,
            skip: Vec::new(),
            has_skip: false,
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
                self.skip.clear();
                self.skip.extend_from_slice(k);
                self.has_skip = true;
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

    /// Moves `inner` to the next live entry at or after its position: `Some(Ok(()))` when it
    /// is on one, `None` at the end of the range.
    fn find_live(&mut self) -> Option<Result<()>> {
        while self.inner.valid() {
            let Some(parsed) = parse_internal_key(self.inner.key()) else {
                return Some(Err(Error::corruption(0, "malformed internal key in scan")));
            };
            if parsed.seq > self.seq || (self.has_skip && self.skip == parsed.user_key) {
                self.inner.next();
                continue;
            }
            if self.past_end(parsed.user_key) {
                return None;
            }
            self.skip.clear();
            self.skip.extend_from_slice(parsed.user_key);
            self.has_skip = true;
            match parsed.kind {
                ValueKind::Value if !self.tombstones.hides(&self.skip, parsed.seq, self.seq) => {
                    return Some(Ok(()));
                }
                ValueKind::Value | ValueKind::Deletion => self.inner.next(),
                ValueKind::RangeDeletion => {
                    return Some(Err(Error::corruption(
                        0,
                        "range tombstone among point entries",
                    )))
                }
            }
        }
        self.inner.status().err().map(Err)
    }

    /// The next live entry, lent out without copying: the key and value borrow from the
    /// iterator and are valid until the next call. The zero-copy form of [`Iterator::next`]
    /// (which returns owned vectors); the two may be mixed.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let db = strata::Db::open(dir.path(), strata::Options::create())?;
    /// db.put(b"a", b"1")?;
    /// db.put(b"b", b"22")?;
    /// let mut it = db.scan(b"a".to_vec()..);
    /// let mut total = 0;
    /// while let Some(entry) = it.next_ref() {
    ///     let (_key, value) = entry?;
    ///     total += value.len();
    /// }
    /// assert_eq!(total, 3);
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn next_ref(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        if self.done {
            return None;
        }
        if let Some(e) = self.pending_error.take() {
            self.done = true;
            return Some(Err(e));
        }
        if !self.started {
            self.start();
        } else if self.on_returned {
            self.inner.next();
        }
        self.on_returned = false;
        match self.find_live() {
            Some(Ok(())) => {
                self.on_returned = true;
                Some(Ok((&self.skip, self.inner.value())))
            }
            Some(Err(e)) => {
                self.done = true;
                Some(Err(e))
            }
            None => {
                self.done = true;
                None
            }
        }
    }
}

impl Iterator for DbIterator {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_ref()
            .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }
}
