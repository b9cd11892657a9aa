//! Running compactions inside the database: automatic ones picked by the background threads and
//! manual ones from `compact_range`.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::Mutex;

use super::DbInner;
use crate::compaction::job::{self, JobContext};
use crate::compaction::picker::{pick_manual, PickerOptions};
use crate::compaction::{Choice, Compaction};
use crate::error::{Error, Result};
use crate::stats::Counters;
use crate::version::{FileMetaData, VersionEdit, NUM_LEVELS};

impl DbInner {
    pub(crate) fn picker_options(&self) -> PickerOptions {
        PickerOptions {
            l0_trigger: self.opts.level0_file_num_compaction_trigger,
            level_base: self.opts.max_bytes_for_level_base,
            multiplier: self.opts.max_bytes_for_level_multiplier,
            target_file_size: self.opts.target_file_size,
        }
    }

    /// Carries out a picked choice (its files already marked busy), then unmarks them. A
    /// failed compaction does not poison the database: its inputs are quarantined (never picked
    /// again until reopen, so a damaged table cannot cause a busy loop) and the error is counted
    /// and logged, while reads of intact data go on.
    pub(crate) fn run_compaction(&self, choice: Choice) {
        let files = choice.files();
        let result = match &choice {
            Choice::Move { level, file } => {
                let edit = VersionEdit {
                    deleted_files: vec![(*level, file.number)],
                    new_files: vec![(level + 1, file.clone())],
                    compact_pointers: vec![(*level, file.largest.clone())],
                    ..VersionEdit::default()
                };
                self.log_and_apply(edit, |_| {}).map(|()| {
                    Counters::add(&self.counters.trivial_moves, 1);
                })
            }
            Choice::Merge(c) => self.merge(c).map(drop),
        };
        let mut st = self.state.lock();
        for f in &files {
            st.compacting.remove(&f.number);
        }
        match result {
            Ok(()) | Err(Error::Closed) => {}
            Err(e) => {
                Counters::add(&self.counters.compaction_errors, 1);
                tracing::error!(error = %e, level = choice.level(), "compaction failed");
                st.compaction_error = Some(e.to_string());
                st.quarantined.extend(files.iter().map(|f| f.number));
            }
        }
        self.bg_cv.notify_all();
        drop(st);
        self.delete_obsolete_files();
    }

    /// Merges `c`'s inputs into new tables and installs them; returns the new tables.
    fn merge(&self, c: &Compaction) -> Result<Vec<Arc<FileMetaData>>> {
        let (version, mut snapshots) = {
            let st = self.state.lock();
            (st.versions.current(), self.snapshots.sequences())
        };
        snapshots.sort_unstable();
        let allocated = Mutex::new(Vec::new());
        let new_file_number = || {
            let mut st = self.state.lock();
            let n = st.versions.new_file_number();
            st.pending_outputs.insert(n);
            allocated.lock().push(n);
            n
        };
        let ctx = JobContext {
            fs: self.fs.as_ref(),
            dir: &self.dir,
            tables: &self.tables,
            table_options: self.table_options(),
            target_file_size: self.opts.target_file_size,
            snapshots,
            version,
            new_file_number: &new_file_number,
            shutting_down: &self.shutting_down,
        };
        let result = job::run(c, &ctx).and_then(|out| {
            let mut edit = VersionEdit::default();
            edit.deleted_files
                .extend(c.inputs.iter().map(|f| (c.level, f.number)));
            edit.deleted_files
                .extend(c.next_inputs.iter().map(|f| (c.output_level, f.number)));
            edit.new_files
                .extend(out.files.iter().map(|f| (c.output_level, f.clone())));
            if let Some(last) = c
                .inputs
                .iter()
                .map(|f| &f.largest)
                .max_by(|a, b| crate::key::compare_internal_keys(a, b))
            {
                edit.compact_pointers.push((c.level, last.clone()));
            }
            self.log_and_apply(edit, |_| {})?;
            let lc = &self.counters.levels[c.output_level];
            Counters::add(&lc.compactions, 1);
            Counters::add(&lc.bytes_read, out.bytes_read);
            Counters::add(&lc.bytes_written, out.bytes_written);
            Counters::add(&lc.micros, out.micros);
            Counters::add(
                &self.counters.tables_dropped_by_range_deletion,
                out.files_dropped,
            );
            tracing::debug!(
                level = c.level,
                inputs = c.inputs.len() + c.next_inputs.len(),
                outputs = out.files.len(),
                bytes_read = out.bytes_read,
                bytes_written = out.bytes_written,
                "compaction finished"
            );
            Ok(out.files)
        });
        let mut st = self.state.lock();
        for n in allocated.lock().drain(..) {
            st.pending_outputs.remove(&n);
        }
        result
    }

    /// Flushes, then compacts every file overlapping the range down to the deepest non-empty
    /// level (at least level 1), level by level, and finally rewrites the files of that level
    /// in the range that this call did not just write, so that overwritten versions and
    /// tombstones in the range are dropped (unless a live snapshot still needs them).
    ///
    /// Exclusive, like RocksDB's default manual compaction: automatic compactions pause and
    /// running ones are waited for, so files cannot move below the level being compacted
    /// meanwhile. Flushes go on. One manual compaction runs at a time.
    pub(crate) fn compact_range(&self, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> Result<()> {
        self.flush()?;
        // Bounds are widened to inclusive user keys: compacting a little more is harmless.
        let lo = match lo {
            Bound::Included(k) | Bound::Excluded(k) => Some(k),
            Bound::Unbounded => None,
        };
        let hi = match hi {
            Bound::Included(k) | Bound::Excluded(k) => Some(k),
            Bound::Unbounded => None,
        };
        let _exclusive = self.manual_compaction.lock();
        let mut st = self.state.lock();
        st.manual_compactions += 1;
        let ready = loop {
            if let Err(e) = Self::check_open(&st) {
                break Err(e);
            }
            if st.compacting.is_empty() {
                break Ok(());
            }
            self.bg_cv.wait(&mut st);
        };
        drop(st);
        let result =
            ready.and_then(|()| self.compact_range_exclusive(lo.as_deref(), hi.as_deref()));
        self.state.lock().manual_compactions -= 1;
        self.bg_cv.notify_all();
        // Also tables made obsolete earlier but pinned by readers then: calling
        // `compact_range` again once the readers are gone reclaims their space.
        self.delete_obsolete_files();
        result
    }

    fn compact_range_exclusive(&self, lo: Option<&[u8]>, hi: Option<&[u8]>) -> Result<()> {
        let current = || self.state.lock().versions.current();
        let bottom = {
            let v = current();
            (1..NUM_LEVELS)
                .rev()
                .find(|&l| v.num_files(l) > 0)
                .unwrap_or(1)
        };
        let mut fresh: HashSet<u64> = HashSet::new();
        for level in 0..bottom {
            if let Some(c) = pick_manual(&current(), level, lo, hi) {
                fresh = self
                    .manual_step(&c)?
                    .into_iter()
                    .map(|f| f.number)
                    .collect();
            }
        }
        // The bottom level's files in the range that were not just written: each rewritten
        // into itself (one at a time, so no output can overlap a neighbour).
        for f in current().overlapping(bottom, lo, hi) {
            if fresh.contains(&f.number) {
                continue;
            }
            self.manual_step(&Compaction {
                level: bottom,
                output_level: bottom,
                inputs: vec![f],
                next_inputs: Vec::new(),
                grandparents: Vec::new(),
            })?;
        }
        Ok(())
    }

    /// Runs one manual merge (automatic compactions are paused, so its files are free).
    fn manual_step(&self, c: &Compaction) -> Result<Vec<Arc<FileMetaData>>> {
        {
            let mut st = self.state.lock();
            Self::check_open(&st)?;
            if let Some(e) = &st.bg_error {
                return Err(Error::Poisoned(e.clone()));
            }
            for f in c.all_inputs() {
                st.compacting.insert(f.number);
            }
        }
        let result = self.merge(c);
        let mut st = self.state.lock();
        for f in c.all_inputs() {
            st.compacting.remove(&f.number);
        }
        self.bg_cv.notify_all();
        drop(st);
        self.delete_obsolete_files();
        result
    }
}
