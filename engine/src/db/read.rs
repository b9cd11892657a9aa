//! The read path: point lookups, scans and snapshots. Readers take the state lock only to copy
//! a few `Arc`s (memtables, current version) and the sequence number to read at; everything
//! else runs without locks.

use std::ops::Bound;
use std::sync::Arc;

use super::DbInner;
use crate::error::Result;
use crate::iter::merging::MergingIterator;
use crate::iter::{DbIterator, InternalIterator};
use crate::key::{seek_key, SeqNo};
use crate::memtable::mem::MemTable;
use crate::options::ReadOptions;
use crate::snapshot::Snapshot;
use crate::version::{Lookup, Version};

/// What a read pins: the sequence number and the sources to consult, newest first.
struct ReadView {
    seq: SeqNo,
    mem: Arc<MemTable>,
    /// Newest first.
    imm: Vec<Arc<MemTable>>,
    version: Arc<Version>,
}

impl DbInner {
    fn read_view(&self, options: &ReadOptions) -> Result<ReadView> {
        let st = self.state.lock();
        Self::check_open(&st)?;
        Ok(ReadView {
            seq: options
                .snapshot
                .as_ref()
                .map_or(st.versions.last_sequence(), Snapshot::sequence),
            mem: st.mem.clone(),
            imm: st.imm.iter().rev().cloned().collect(),
            version: st.versions.current(),
        })
    }

    pub(crate) fn get(&self, key: &[u8], options: &ReadOptions) -> Result<Option<Vec<u8>>> {
        let view = self.read_view(options)?;
        let target = seek_key(key, view.seq);
        for mem in std::iter::once(&view.mem).chain(&view.imm) {
            match mem.get(&target, key) {
                Lookup::Found(v) => return Ok(Some(v)),
                Lookup::Deleted => return Ok(None),
                Lookup::Absent => {}
            }
        }
        match view.version.get(&self.tables, key, &target)? {
            Lookup::Found(v) => Ok(Some(v)),
            Lookup::Deleted | Lookup::Absent => Ok(None),
        }
    }

    pub(crate) fn scan(
        &self,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        options: &ReadOptions,
    ) -> DbIterator {
        let view = match self.read_view(options) {
            Ok(v) => v,
            Err(e) => return DbIterator::failed(e),
        };
        let mut children: Vec<Box<dyn InternalIterator>> = vec![Box::new(view.mem.iter())];
        children.extend(
            view.imm
                .iter()
                .map(|m| Box::new(m.iter()) as Box<dyn InternalIterator>),
        );
        match view.version.iterators(&self.tables) {
            Ok(tables) => children.extend(tables),
            Err(e) => return DbIterator::failed(e),
        }
        let merged = MergingIterator::new(children);
        // The version pin keeps the files of this scan from being deleted until it drops.
        DbIterator::new(
            Box::new(merged),
            view.seq,
            start,
            end,
            Box::new(view.version),
        )
    }

    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        let st = self.state.lock();
        Self::check_open(&st)?;
        Ok(self.snapshots.acquire(st.versions.last_sequence()))
    }
}
