//! A k-way merge of sorted internal iterators (memtables, level-0 tables, levels) into one
//! sorted stream, driven by a binary min-heap of child indices ordered by current key.

use std::cmp::Ordering;

use super::InternalIterator;
use crate::error::{Error, Result};
use crate::key::compare_internal_keys;

/// Merges children that are each sorted by internal key. Internal keys are unique across
/// children (every write has its own sequence number), so ties never need breaking.
///
/// An error in any child stops the merge: skipping a failed child would silently hide its
/// entries, so `valid()` turns false and `status()` reports the error.
pub struct MergingIterator {
    children: Vec<Box<dyn InternalIterator>>,
    /// Indices of valid children, a min-heap by their current key.
    heap: Vec<usize>,
    error: Option<Error>,
}

impl MergingIterator {
    /// Merges `children`; positioned nowhere until a seek.
    pub fn new(children: Vec<Box<dyn InternalIterator>>) -> Self {
        MergingIterator {
            children,
            heap: Vec::new(),
            error: None,
        }
    }

    fn less(&self, a: usize, b: usize) -> bool {
        compare_internal_keys(self.children[a].key(), self.children[b].key()) == Ordering::Less
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if l < n && self.less(self.heap[l], self.heap[smallest]) {
                smallest = l;
            }
            if r < n && self.less(self.heap[r], self.heap[smallest]) {
                smallest = r;
            }
            if smallest == i {
                return;
            }
            self.heap.swap(i, smallest);
            i = smallest;
        }
    }

    /// Rebuilds the heap after every child was repositioned.
    fn rebuild(&mut self) {
        self.heap.clear();
        for i in 0..self.children.len() {
            if self.children[i].valid() {
                self.heap.push(i);
            } else if let Err(e) = self.children[i].status() {
                self.fail(e);
                return;
            }
        }
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_down(i);
        }
    }

    fn fail(&mut self, e: Error) {
        self.error = Some(e);
        self.heap.clear();
    }
}

impl InternalIterator for MergingIterator {
    fn valid(&self) -> bool {
        !self.heap.is_empty()
    }

    fn seek_to_first(&mut self) {
        self.error = None;
        for c in &mut self.children {
            c.seek_to_first();
        }
        self.rebuild();
    }

    fn seek(&mut self, target: &[u8]) {
        self.error = None;
        for c in &mut self.children {
            c.seek(target);
        }
        self.rebuild();
    }

    fn next(&mut self) {
        let Some(&top) = self.heap.first() else {
            return;
        };
        self.children[top].next();
        if self.children[top].valid() {
            self.sift_down(0);
            return;
        }
        if let Err(e) = self.children[top].status() {
            self.fail(e);
            return;
        }
        let last = self.heap.len() - 1;
        self.heap.swap(0, last);
        self.heap.pop();
        self.sift_down(0);
    }

    fn key(&self) -> &[u8] {
        self.children[self.heap[0]].key()
    }

    fn value(&self) -> &[u8] {
        self.children[self.heap[0]].value()
    }

    fn status(&self) -> Result<()> {
        match &self.error {
            None => Ok(()),
            Some(e) => Err(e.duplicate()),
        }
    }
}

/// An in-memory sorted iterator over owned entries; used by tests and small merges.
pub struct VecIterator {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    pos: usize,
}

impl VecIterator {
    /// Sorts `entries` by internal key.
    pub fn new(mut entries: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        entries.sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
        let pos = entries.len();
        VecIterator { entries, pos }
    }
}

impl InternalIterator for VecIterator {
    fn valid(&self) -> bool {
        self.pos < self.entries.len()
    }
    fn seek_to_first(&mut self) {
        self.pos = 0;
    }
    fn seek(&mut self, target: &[u8]) {
        self.pos = self
            .entries
            .partition_point(|(k, _)| compare_internal_keys(k, target) == Ordering::Less);
    }
    fn next(&mut self) {
        self.pos += 1;
    }
    fn key(&self) -> &[u8] {
        &self.entries[self.pos].0
    }
    fn value(&self) -> &[u8] {
        &self.entries[self.pos].1
    }
    fn status(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{make_internal_key, seek_key, ValueKind};

    fn entry(k: &str, seq: u64) -> (Vec<u8>, Vec<u8>) {
        (
            make_internal_key(k.as_bytes(), seq, ValueKind::Value),
            format!("{k}@{seq}").into_bytes(),
        )
    }

    fn collect(it: &mut dyn InternalIterator) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while it.valid() {
            out.push(it.value().to_vec());
            it.next();
        }
        out
    }

    #[test]
    fn merges_in_internal_key_order() {
        let a = VecIterator::new(vec![entry("a", 1), entry("c", 5), entry("e", 2)]);
        let b = VecIterator::new(vec![entry("b", 3), entry("c", 7)]);
        let c = VecIterator::new(vec![]);
        let d = VecIterator::new(vec![entry("d", 4), entry("f", 9)]);
        let mut m = MergingIterator::new(vec![Box::new(a), Box::new(b), Box::new(c), Box::new(d)]);
        m.seek_to_first();
        let got: Vec<String> = collect(&mut m)
            .into_iter()
            .map(|v| String::from_utf8(v).unwrap())
            .collect();
        assert_eq!(got, ["a@1", "b@3", "c@7", "c@5", "d@4", "e@2", "f@9"]);
        m.seek(&seek_key(b"c", 6));
        assert_eq!(m.value(), b"c@5");
        m.seek(&seek_key(b"zzz", 100));
        assert!(!m.valid());
        assert!(m.status().is_ok());
    }

    struct Failing;
    impl InternalIterator for Failing {
        fn valid(&self) -> bool {
            false
        }
        fn seek_to_first(&mut self) {}
        fn seek(&mut self, _: &[u8]) {}
        fn next(&mut self) {}
        fn key(&self) -> &[u8] {
            unreachable!()
        }
        fn value(&self) -> &[u8] {
            unreachable!()
        }
        fn status(&self) -> Result<()> {
            Err(Error::corruption(3, "bad"))
        }
    }

    #[test]
    fn a_failing_child_stops_the_merge() {
        let a = VecIterator::new(vec![entry("a", 1)]);
        let mut m = MergingIterator::new(vec![Box::new(a), Box::new(Failing)]);
        m.seek_to_first();
        assert!(!m.valid());
        assert!(m.status().unwrap_err().is_corruption());
    }
}
