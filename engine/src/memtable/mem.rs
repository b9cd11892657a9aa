//! The memtable: recent writes, ordered by internal key, in our arena skiplist.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::filter::MemFilter;
use super::skiplist::{KeyComparator, SkipList, SkipListIter};
use crate::error::Result;
use crate::iter::InternalIterator;
use crate::key::{append_internal_key, parse_internal_key, ValueKind};
use crate::range_del::RangeTombstone;
use crate::version::Lookup;
use crate::write_batch::{BatchOp, WriteBatch};

/// Orders skiplist entries by [`compare_internal_keys`](crate::key::compare_internal_keys).
#[derive(Debug, Clone, Copy, Default)]
pub struct InternalKeyComparator;

impl KeyComparator for InternalKeyComparator {
    fn compare(&self, a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        crate::key::compare_internal_keys(a, b)
    }
}

/// A memtable and the number of the WAL that holds the same writes.
///
/// One writer at a time inserts (the group-commit leader); any number of readers and iterators
/// read concurrently without locks (see the skiplist's contract). Entries become visible to
/// reads only once the database publishes their sequence number, which happens after the whole
/// batch is inserted, so no reader ever sees part of a batch.
pub struct MemTable {
    list: Arc<SkipList<InternalKeyComparator>>,
    /// Every user key with a point entry (put or delete) in `list`: lookups of other keys skip
    /// the skiplist search.
    filter: Option<MemFilter>,
    /// Range tombstones, kept apart from point entries (few; appended by the writer, read
    /// under a short lock and filtered by sequence number like everything else).
    range_dels: RwLock<Vec<RangeTombstone>>,
    /// Bytes held by `range_dels`.
    range_del_bytes: AtomicUsize,
    wal_number: u64,
}

impl MemTable {
    /// An empty memtable whose writes are logged in WAL `wal_number`, sized for
    /// `write_buffer_size` bytes, with a filter over its keys if `whole_key_filter`.
    pub fn new(wal_number: u64, write_buffer_size: usize, whole_key_filter: bool) -> Self {
        let chunk = (write_buffer_size / 8).clamp(4096, 1 << 20);
        MemTable {
            list: Arc::new(SkipList::new(InternalKeyComparator, chunk)),
            filter: whole_key_filter.then(|| MemFilter::for_write_buffer(write_buffer_size)),
            range_dels: RwLock::new(Vec::new()),
            range_del_bytes: AtomicUsize::new(0),
            wal_number,
        }
    }

    /// Number of the WAL holding this memtable's writes.
    pub fn wal_number(&self) -> u64 {
        self.wal_number
    }

    /// Inserts every update of `batch`, numbered from the batch's sequence number.
    pub fn apply(&self, batch: &WriteBatch) {
        let mut ikey = Vec::new();
        for (seq, op) in (batch.sequence()..).zip(batch.iter()) {
            ikey.clear();
            let value = match op {
                BatchOp::Put(k, v) => {
                    append_internal_key(&mut ikey, k, seq, ValueKind::Value);
                    v
                }
                BatchOp::Delete(k) => {
                    append_internal_key(&mut ikey, k, seq, ValueKind::Deletion);
                    &[][..]
                }
                BatchOp::DeleteRange(start, end) => {
                    self.range_del_bytes
                        .fetch_add(start.len() + end.len() + 64, Ordering::Relaxed);
                    self.range_dels.write().push(RangeTombstone {
                        start: start.to_vec(),
                        end: end.to_vec(),
                        seq,
                    });
                    continue;
                }
            };
            if let Some(f) = &self.filter {
                f.add(crate::key::user_key(&ikey));
            }
            self.list.insert(&ikey, value);
        }
    }

    /// The newest entry for `user_key` visible at the sequence number of `target`
    /// (a [`seek_key`](crate::key::seek_key)).
    pub fn get(&self, target: &[u8], user_key: &[u8]) -> Lookup {
        if self.filter.as_ref().is_some_and(|f| !f.may_contain(user_key)) {
            return Lookup::Absent;
        }
        let mut it = SkipListIter::new(self.list.clone());
        it.seek(target);
        if !it.valid() {
            return Lookup::Absent;
        }
        match parse_internal_key(it.key()) {
            Some(p) if p.user_key == user_key => match p.kind {
                ValueKind::Value => Lookup::Found(p.seq, it.value().to_vec()),
                ValueKind::Deletion | ValueKind::RangeDeletion => Lookup::Deleted(p.seq),
            },
            _ => Lookup::Absent,
        }
    }

    /// An iterator over all entries; it keeps the memtable's memory alive.
    pub fn iter(&self) -> MemTableIterator {
        MemTableIterator {
            inner: SkipListIter::new(self.list.clone()),
        }
    }

    /// Bytes allocated by the memtable's arena, its filter and its range tombstones.
    pub fn memory_usage(&self) -> usize {
        self.list.memory_usage()
            + self.filter.as_ref().map_or(0, MemFilter::memory_usage)
            + self.range_del_bytes.load(Ordering::Relaxed)
    }

    /// True if nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.range_dels.read().is_empty()
    }

    /// The range tombstones (all sequence numbers; readers filter).
    pub fn range_tombstones(&self) -> Vec<RangeTombstone> {
        self.range_dels.read().clone()
    }

    /// Whether the memtable holds any range tombstone.
    pub fn has_range_tombstones(&self) -> bool {
        !self.range_dels.read().is_empty()
    }
}

/// [`InternalIterator`] over a memtable.
pub struct MemTableIterator {
    inner: SkipListIter<InternalKeyComparator>,
}

impl InternalIterator for MemTableIterator {
    fn valid(&self) -> bool {
        self.inner.valid()
    }
    fn seek_to_first(&mut self) {
        self.inner.seek_to_first()
    }
    fn seek(&mut self, target: &[u8]) {
        self.inner.seek(target)
    }
    fn next(&mut self) {
        self.inner.next()
    }
    fn key(&self) -> &[u8] {
        self.inner.key()
    }
    fn value(&self) -> &[u8] {
        self.inner.value()
    }
    fn status(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::seek_key;

    #[test]
    fn get_sees_newest_visible_version() {
        let mem = MemTable::new(1, 1 << 20, true);
        let mut b = WriteBatch::new();
        b.put("k", "v1");
        b.set_sequence(1);
        mem.apply(&b);
        let mut b = WriteBatch::new();
        b.delete("k").put("other", "x").delete("never-put");
        b.set_sequence(2);
        mem.apply(&b);
        let mut b = WriteBatch::new();
        b.put("k", "v4");
        b.set_sequence(4);
        mem.apply(&b);
        assert_eq!(
            mem.get(&seek_key(b"k", 1), b"k"),
            Lookup::Found(1, b"v1".to_vec())
        );
        assert_eq!(mem.get(&seek_key(b"k", 2), b"k"), Lookup::Deleted(2));
        // A key that was only deleted here must still be found (its tombstone hides older
        // tables' versions), so the key filter holds deletions too.
        assert_eq!(
            mem.get(&seek_key(b"never-put", 9), b"never-put"),
            Lookup::Deleted(4)
        );
        assert_eq!(mem.get(&seek_key(b"k", 3), b"k"), Lookup::Deleted(2));
        assert_eq!(
            mem.get(&seek_key(b"k", 9), b"k"),
            Lookup::Found(4, b"v4".to_vec())
        );
        assert_eq!(mem.get(&seek_key(b"k", 0), b"k"), Lookup::Absent);
        assert_eq!(mem.get(&seek_key(b"j", 9), b"j"), Lookup::Absent);
        assert_eq!(mem.get(&seek_key(b"zz", 9), b"zz"), Lookup::Absent);
        let mut it = mem.iter();
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        assert_eq!(n, 5);
    }
}
