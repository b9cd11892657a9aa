//! Snapshots: a sequence number that reads can be pinned to.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::key::SeqNo;

/// The live snapshots of a database, as a multiset of sequence numbers (compaction keeps every
/// version some snapshot can still see).
#[derive(Debug, Default)]
pub(crate) struct SnapshotList {
    seqs: Mutex<BTreeMap<SeqNo, usize>>,
}

impl SnapshotList {
    pub(crate) fn acquire(self: &Arc<Self>, seq: SeqNo) -> Snapshot {
        *self.seqs.lock().entry(seq).or_insert(0) += 1;
        Snapshot {
            inner: Arc::new(Handle {
                seq,
                list: self.clone(),
            }),
        }
    }

    /// Number of live snapshot handles.
    pub(crate) fn len(&self) -> usize {
        self.seqs.lock().values().sum()
    }

    /// The distinct sequence numbers of live snapshots, ascending.
    pub(crate) fn sequences(&self) -> Vec<SeqNo> {
        self.seqs.lock().keys().copied().collect()
    }

    /// Oldest live snapshot, if any.
    #[cfg(test)]
    pub(crate) fn oldest(&self) -> Option<SeqNo> {
        self.seqs.lock().keys().next().copied()
    }
}

#[derive(Debug)]
struct Handle {
    seq: SeqNo,
    list: Arc<SnapshotList>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut seqs = self.list.seqs.lock();
        if let Some(n) = seqs.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                seqs.remove(&self.seq);
            }
        }
    }
}

/// A consistent point-in-time view: reads through [`ReadOptions::at`](crate::ReadOptions::at)
/// see exactly the writes acknowledged before [`Db::snapshot`](crate::Db::snapshot) returned.
/// Cheap to clone; released when the last clone drops.
#[derive(Debug, Clone)]
pub struct Snapshot {
    inner: Arc<Handle>,
}

impl Snapshot {
    /// The sequence number the snapshot reads at.
    pub fn sequence(&self) -> SeqNo {
        self.inner.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_counted_until_dropped() {
        let list = Arc::new(SnapshotList::default());
        let a = list.acquire(5);
        let b = list.acquire(3);
        let a2 = a.clone();
        let c = list.acquire(5);
        assert_eq!(list.len(), 3); // a and a2 share one handle
        assert_eq!(list.oldest(), Some(3));
        drop(b);
        assert_eq!(list.oldest(), Some(5));
        drop(a);
        drop(a2);
        assert_eq!(list.len(), 1);
        assert_eq!(c.sequence(), 5);
        drop(c);
        assert_eq!(list.oldest(), None);
    }
}
