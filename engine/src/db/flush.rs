//! Flushing immutable memtables to level-0 tables, logging the version edits that install them,
//! and deleting files no version needs any more.

use std::sync::Arc;

use super::{DbInner, State};
use crate::error::{Error, Result};
use crate::filename::{parse_file_name, table_path, FileKind};
use crate::iter::InternalIterator;
use crate::memtable::mem::MemTable;
use crate::sstable::{TableBuilder, TableBuilderOptions};
use crate::stats::Counters;
use crate::version::{FileMetaData, VersionEdit};

impl DbInner {
    /// Writes `mem` (the oldest immutable memtable) as table `number`, logs the edit and
    /// installs the new version, removing `mem` from the immutable list in the same step.
    pub(crate) fn flush_memtable(&self, mem: &Arc<MemTable>, number: u64) -> Result<()> {
        let meta = self.write_level0_table(mem, number)?;
        let mut edit = VersionEdit::default();
        let bytes = meta.as_ref().map_or(0, |m| m.size);
        if let Some(m) = meta {
            edit.new_files.push((0, m));
        }
        edit.log_number = Some({
            let st = self.state.lock();
            st.imm
                .get(1)
                .map_or(st.mem.wal_number(), |m| m.wal_number())
        });
        self.log_and_apply(edit, |st| {
            st.imm.pop_front();
        })?;
        Counters::add(&self.counters.flushes, 1);
        Counters::add(&self.counters.flush_bytes, bytes);
        Ok(())
    }

    /// Builds a level-0 table from a memtable; `None` if the memtable is empty.
    pub(crate) fn write_level0_table(
        &self,
        mem: &MemTable,
        number: u64,
    ) -> Result<Option<Arc<FileMetaData>>> {
        if mem.is_empty() {
            return Ok(None);
        }
        let file = self.fs.create(&table_path(&self.dir, number))?;
        let mut builder = TableBuilder::new(self.table_options(), file);
        let mut it = mem.iter();
        it.seek_to_first();
        while it.valid() {
            builder.add(it.key(), it.value())?;
            it.next();
        }
        let summary = builder.finish()?;
        // The table's directory entry must be durable before a MANIFEST names it.
        self.fs.sync_dir(&self.dir)?;
        Ok(Some(Arc::new(FileMetaData::new(
            number,
            summary.file_size,
            &summary.properties,
            mem.range_tombstones(),
        ))))
    }

    pub(crate) fn table_options(&self) -> TableBuilderOptions {
        TableBuilderOptions {
            block_size: self.opts.block_size,
            block_restart_interval: self.opts.block_restart_interval,
            bloom_bits_per_key: self.opts.bloom_bits_per_key,
            compression: self.opts.compression,
        }
    }

    /// Logs `edit` to the MANIFEST (synced), then installs the resulting version and runs
    /// `then` under the same state lock. Edits are serialized by the MANIFEST lock, so the
    /// current version cannot change between preparing and installing.
    pub(crate) fn log_and_apply(
        &self,
        mut edit: VersionEdit,
        then: impl FnOnce(&mut State),
    ) -> Result<()> {
        let mut manifest = self.manifest.lock();
        let manifest = manifest.as_mut().ok_or(Error::Closed)?;
        let version = self.state.lock().versions.prepare(&mut edit)?;
        manifest.append(&edit)?;
        let mut st = self.state.lock();
        st.versions.install(version, &edit);
        then(&mut st);
        Ok(())
    }

    /// Deletes WALs, tables, MANIFESTs and temp files that nothing needs. Errors are logged,
    /// not returned: a file left behind is retried next time.
    pub(crate) fn delete_obsolete_files(&self) {
        // Files numbered from `next` on were allocated after this snapshot of what is live, by
        // jobs running concurrently: they are never candidates.
        let (live, log_number, manifest_number, next) = {
            let mut st = self.state.lock();
            if st.file_deletions_disabled > 0 {
                return; // a checkpoint is copying files; the next deletion pass catches up
            }
            let mut live = st.versions.live_files();
            live.extend(st.pending_outputs.iter().copied());
            let v = &st.versions;
            (
                live,
                v.log_number(),
                v.manifest_number(),
                v.next_file_number(),
            )
        };
        let names = match self.fs.list_dir(&self.dir) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "listing database directory failed");
                return;
            }
        };
        for name in names {
            let obsolete = match parse_file_name(&name) {
                Some(FileKind::Wal(n)) => n < log_number,
                Some(FileKind::Table(n)) => n < next && !live.contains(&n),
                Some(FileKind::Manifest(n)) => n < next && n != manifest_number,
                Some(FileKind::Temp(n)) => n < next,
                Some(FileKind::Current | FileKind::Lock) | None => false,
            };
            if !obsolete {
                continue;
            }
            if let Some(FileKind::Table(n)) = parse_file_name(&name) {
                self.tables.evict(n);
            }
            match self.fs.remove_file(&self.dir.join(&name)) {
                Ok(()) => tracing::debug!(file = %name, "deleted obsolete file"),
                // Another background thread got there first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = %name, error = %e, "deleting obsolete file failed"),
            }
        }
    }

    /// Switches the memtable if it holds anything and waits until no memtable awaits flush.
    pub(crate) fn flush(&self) -> Result<()> {
        self.write(None, false)?;
        let mut st = self.state.lock();
        loop {
            if let Some(e) = &st.bg_error {
                return Err(Error::Poisoned(e.clone()));
            }
            Self::check_open(&st)?;
            if st.imm.is_empty() && !st.flush_running {
                return Ok(());
            }
            self.bg_cv.wait(&mut st);
        }
    }
}
