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
use crate::range_del::{RangeTombstone, TombstoneSet};
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
        // The newest point entry visible at `view.seq`: sources are newest first.
        let mut point = Lookup::Absent;
        for mem in std::iter::once(&view.mem).chain(&view.imm) {
            point = mem.get(&target, key);
            if point != Lookup::Absent {
                break;
            }
        }
        if point == Lookup::Absent {
            point = view.version.get(&self.tables, key, &target)?;
        }
        let Lookup::Found(seq, value) = point else {
            return Ok(None);
        };
        // A newer range tombstone, wherever it is, hides it.
        let hidden = view.version.tombstones.hides(key, seq, view.seq)
            || std::iter::once(&view.mem).chain(&view.imm).any(|m| {
                m.has_range_tombstones()
                    && m.range_tombstones()
                        .iter()
                        .any(|t| t.contains(key) && seq < t.seq && t.seq <= view.seq)
            });
        Ok((!hidden).then_some(value))
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
        let mut mem_tombstones: Vec<RangeTombstone> = Vec::new();
        for m in std::iter::once(&view.mem).chain(&view.imm) {
            mem_tombstones.extend(m.range_tombstones());
        }
        let tombstones = if mem_tombstones.is_empty() {
            view.version.tombstones.clone()
        } else {
            let files = view.version.files.iter().flatten();
            let all = mem_tombstones
                .iter()
                .chain(files.flat_map(|f| f.range_tombstones.iter()));
            TombstoneSet::new(all)
        };
        // The version pin keeps the files of this scan from being deleted until it drops.
        DbIterator::new(
            Box::new(merged),
            view.seq,
            (start, end),
            tombstones,
            Box::new(view.version),
        )
    }

    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        let st = self.state.lock();
        Self::check_open(&st)?;
        Ok(self.snapshots.acquire(st.versions.last_sequence()))
    }
}
