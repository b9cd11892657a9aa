//! Checkpoints: a consistent, openable copy of the database in another directory, made while
//! writes go on.
//!
//! 1. Pin the current version and stop obsolete-file deletion (so neither its tables nor the
//!    WALs it still needs can disappear), and note the counters.
//! 2. Note each needed WAL's length. Appends only ever add whole records after that point, so
//!    the first `len` bytes are a consistent prefix of history (the active WAL's length is read
//!    under the WAL lock, between two group commits).
//! 3. Hard-link the pinned tables (copy if linking fails, e.g. across file systems), copy the
//!    WAL prefixes, write a fresh MANIFEST naming the tables, sync everything and the directory.
//! 4. Unpin. Writers are never blocked beyond the instant of step 2.

use std::path::Path;

use super::DbInner;
use crate::error::{Error, Result};
use crate::filename::{parse_file_name, table_path, wal_path, FileKind};
use crate::version::set::write_manifest;

impl DbInner {
    pub(crate) fn checkpoint(&self, target: &Path) -> Result<()> {
        if self.fs.exists(target) {
            return Err(Error::InvalidArgument(format!(
                "checkpoint directory {} already exists",
                target.display()
            )));
        }
        let (version, edit, manifest_number, log_number) = {
            let mut st = self.state.lock();
            Self::check_open(&st)?;
            st.file_deletions_disabled += 1;
            let version = st.versions.current();
            let log_number = st.versions.log_number();
            let manifest_number = st.versions.new_file_number();
            let edit = st.versions.snapshot_edit(&version, log_number);
            (version, edit, manifest_number, log_number)
        };
        let result = (|| -> Result<()> {
            // WAL lengths first: everything they hold is newer than the pinned tables or
            // already in them (replaying it again is harmless: same keys, same seqnos).
            let active = self
                .wal
                .lock()
                .as_ref()
                .map(|w| (w.number, w.writer.offset()));
            let mut wals: Vec<u64> = self
                .fs
                .list_dir(&self.dir)?
                .iter()
                .filter_map(|n| match parse_file_name(n) {
                    Some(FileKind::Wal(w)) if w >= log_number => Some(w),
                    _ => None,
                })
                .collect();
            wals.sort_unstable();
            let mut wal_prefixes = Vec::new();
            for &w in &wals {
                let len = match active {
                    // The WAL that was active when its length was read: only that prefix.
                    Some((active, len)) if active == w => len,
                    // WALs after it were started since: nothing of theirs is needed.
                    Some((active, _)) if w > active => continue,
                    // Older WALs are complete (synced when they were switched away from).
                    _ => self.fs.file_size(&wal_path(&self.dir, w))?,
                };
                wal_prefixes.push((w, len));
            }

            self.fs.create_dir_all(target)?;
            for f in version.files.iter().flatten() {
                let from = table_path(&self.dir, f.number);
                let to = table_path(target, f.number);
                if self.fs.hard_link(&from, &to).is_err() {
                    copy_prefix(self, &from, &to, f.size)?;
                }
            }
            for (w, len) in wal_prefixes {
                copy_prefix(self, &wal_path(&self.dir, w), &wal_path(target, w), len)?;
            }
            write_manifest(self.fs.as_ref(), target, manifest_number, &edit)?;
            self.fs.sync_dir(target)?;
            Ok(())
        })();
        self.state.lock().file_deletions_disabled -= 1;
        drop(version);
        result
    }
}

/// Copies the first `len` bytes of `from` to a new file `to` and syncs it.
fn copy_prefix(db: &DbInner, from: &Path, to: &Path, len: u64) -> Result<()> {
    let src = db.fs.open(from)?;
    let bytes = src.bytes();
    let len = usize::try_from(len).unwrap_or(usize::MAX).min(bytes.len());
    let mut out = db.fs.create(to)?;
    for chunk in bytes[..len].chunks(1 << 20) {
        out.append(chunk)?;
    }
    out.sync()?;
    Ok(())
}
