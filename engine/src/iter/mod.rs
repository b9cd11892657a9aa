//! Iterators over internal keys and the user-facing scan iterator built from them.

use crate::error::Result;

mod db_iter;
pub mod merging;

pub use db_iter::DbIterator;

/// A cursor over entries sorted by internal key (see [`crate::key`]).
///
/// Contract, shared by every implementation (memtable, block, table, merging):
/// - after `seek*` or `next`, either `valid()` and `key()`/`value()` are the current entry, or
///   the iterator is exhausted, or it hit an error, which `status()` then returns;
/// - `key()` and `value()` may only be called while `valid()`;
/// - an iterator never panics on corrupt input: it stops and reports `Error::Corruption`.
pub trait InternalIterator: Send {
    /// True when positioned on an entry.
    fn valid(&self) -> bool;
    /// Positions on the first entry.
    fn seek_to_first(&mut self);
    /// Positions on the first entry whose internal key is `>= target`.
    fn seek(&mut self, target: &[u8]);
    /// Advances to the next entry. Requires `valid()`.
    fn next(&mut self);
    /// Current internal key. Requires `valid()`.
    fn key(&self) -> &[u8];
    /// Current value. Requires `valid()`.
    fn value(&self) -> &[u8];
    /// The error that stopped iteration, if any.
    fn status(&self) -> Result<()>;
}

impl<I: InternalIterator + ?Sized> InternalIterator for Box<I> {
    fn valid(&self) -> bool {
        (**self).valid()
    }
    fn seek_to_first(&mut self) {
        (**self).seek_to_first()
    }
    fn seek(&mut self, target: &[u8]) {
        (**self).seek(target)
    }
    fn next(&mut self) {
        (**self).next()
    }
    fn key(&self) -> &[u8] {
        (**self).key()
    }
    fn value(&self) -> &[u8] {
        (**self).value()
    }
    fn status(&self) -> Result<()> {
        (**self).status()
    }
}
