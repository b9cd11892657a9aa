//! Opening a database: lock the directory, create or recover the MANIFEST, check the tables it
//! names, replay the WALs into level-0 tables, start a fresh WAL and MANIFEST, and start the
//! background thread.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::write::create_wal;
use super::{DbInner, State};
use crate::error::{Error, Result};
use crate::filename::{
    current_path, lock_path, parse_file_name, table_name, table_path, wal_path, FileKind,
};
use crate::memtable::mem::MemTable;
use crate::options::{Options, WalRecoveryMode};
use crate::snapshot::SnapshotList;
use crate::stats::Counters;
use crate::table_cache::TableCache;
use crate::version::{VersionEdit, VersionSet};
use crate::wal::LogReader;
use crate::write_batch::WriteBatch;

pub(super) fn open(dir: &Path, opts: Options) -> Result<Arc<DbInner>> {
    opts.validate()?;
    let fs = opts.fs.clone();
    if !fs.exists(dir) {
        if !opts.create_if_missing {
            return Err(Error::NotADatabase(dir.to_owned()));
        }
        fs.create_dir_all(dir)?;
    }
    let lock = match fs.lock(&lock_path(dir)) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            return Err(Error::Locked(dir.to_owned()))
        }
        Err(e) => return Err(e.into()),
    };
    if !fs.exists(&current_path(dir)) {
        if !opts.create_if_missing {
            return Err(Error::NotADatabase(dir.to_owned()));
        }
        VersionSet::create_new(fs.as_ref(), dir)?;
    } else if opts.error_if_exists {
        return Err(Error::AlreadyExists(dir.to_owned()));
    }
    let versions = VersionSet::recover(fs.as_ref(), dir)?;

    let block_cache = Arc::new(crate::cache::BlockCache::new(opts.block_cache_bytes));
    let tables = Arc::new(TableCache::new(
        fs.clone(),
        dir.to_owned(),
        opts.max_open_files,
        block_cache,
    ));
    let inner = Arc::new(DbInner {
        dir: dir.to_owned(),
        fs,
        tables,
        state: Mutex::new(State {
            mem: Arc::new(MemTable::new(
                0,
                opts.write_buffer_size,
                opts.memtable_whole_key_filtering,
            )),
            imm: VecDeque::new(),
            versions,
            writers: VecDeque::new(),
            pending: HashMap::new(),
            completed: HashMap::new(),
            next_writer_id: 0,
            bg_error: None,
            closed: false,
            pending_outputs: HashSet::new(),
            flush_running: false,
            compacting: HashSet::new(),
            quarantined: HashSet::new(),
            compaction_error: None,
            file_deletions_disabled: 0,
            manual_compactions: 0,
        }),
        opts,
        write_cv: Condvar::new(),
        bg_cv: Condvar::new(),
        wal: Mutex::new(None),
        manifest: Mutex::new(None),
        snapshots: Arc::new(SnapshotList::default()),
        counters: Counters::default(),
        manual_compaction: Mutex::new(()),
        shutting_down: AtomicBool::new(false),
        lock: Mutex::new(Some(lock)),
        bg_threads: Mutex::new(Vec::new()),
    });
    inner.check_tables()?;
    inner.recover_wals()?;
    inner.delete_obsolete_files();
    inner.start_background()?;
    Ok(inner)
}

impl DbInner {
    /// Every table the MANIFEST names must exist with its recorded size (and, with
    /// `paranoid_checks`, open cleanly).
    ///
    /// Also, the WAL the MANIFEST names as oldest needed must exist. It is deleted only after an
    /// edit moving past it is synced, so if it is gone, that edit was lost from the MANIFEST
    /// (a damaged record taken for a torn tail) and opening would silently lose its table.
    fn check_tables(&self) -> Result<()> {
        let (version, log_number, manifest) = {
            let st = self.state.lock();
            let v = &st.versions;
            (v.current(), v.log_number(), v.manifest_number())
        };
        if log_number != 0 && !self.fs.exists(&wal_path(&self.dir, log_number)) {
            return Err(Error::Corruption {
                file: crate::filename::manifest_name(manifest),
                offset: 0,
                msg: format!(
                    "WAL {log_number:06}.log, which the MANIFEST says is still needed, is \
                     missing: the MANIFEST lost edits"
                ),
            });
        }
        for f in version.files.iter().flatten() {
            let name = table_name(f.number);
            let size = match self.fs.file_size(&table_path(&self.dir, f.number)) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::Corruption {
                        file: name,
                        offset: 0,
                        msg: "table named by the MANIFEST is missing".into(),
                    })
                }
                Err(e) => return Err(e.into()),
            };
            if size != f.size {
                return Err(Error::Corruption {
                    file: name,
                    offset: size,
                    msg: format!("table is {size} bytes, the MANIFEST says {}", f.size),
                });
            }
            if self.opts.paranoid_checks {
                self.tables.get(f.number)?;
            }
        }
        Ok(())
    }

    /// Replays the WALs the MANIFEST still needs into level-0 tables, then starts a new WAL and
    /// a new MANIFEST that no longer need them.
    fn recover_wals(&self) -> Result<()> {
        let (log_number, mut last_seq) = {
            let st = self.state.lock();
            (st.versions.log_number(), st.versions.last_sequence())
        };
        let mut wals = Vec::new();
        for name in self.fs.list_dir(&self.dir)? {
            if let Some(kind) = parse_file_name(&name) {
                let n = match kind {
                    FileKind::Wal(n) => {
                        if n >= log_number {
                            wals.push(n);
                        }
                        n
                    }
                    FileKind::Table(n) | FileKind::Manifest(n) | FileKind::Temp(n) => n,
                    FileKind::Current | FileKind::Lock => continue,
                };
                self.state.lock().versions.mark_file_number_used(n);
            }
        }
        wals.sort_unstable();

        let mut edit = VersionEdit::default();
        let mut mem = MemTable::new(
            0,
            self.opts.write_buffer_size,
            self.opts.memtable_whole_key_filtering,
        );
        let mut dropped_bytes = 0u64;
        let mut stop = false;
        for (i, &number) in wals.iter().enumerate() {
            let path = wal_path(&self.dir, number);
            let name = format!("{number:06}.log");
            if stop {
                dropped_bytes += self.fs.file_size(&path)?;
                continue;
            }
            let file = self.fs.open(&path)?;
            let mut reader =
                LogReader::new(file.bytes(), name.clone(), self.opts.wal_recovery_mode);
            while let Some(record) = reader.read_record()? {
                let batch = WriteBatch::from_record(record).map_err(|e| e.in_file(&name, 0))?;
                let first = batch.sequence();
                let count = u64::from(batch.count());
                mem.apply(&batch);
                if count > 0 {
                    last_seq = last_seq.max(first + count - 1);
                }
                if mem.memory_usage() >= self.opts.write_buffer_size {
                    self.flush_recovered(&mut mem, &mut edit)?;
                }
            }
            if let Some(d) = reader.dropped() {
                let newest = i + 1 == wals.len();
                if self.opts.wal_recovery_mode == WalRecoveryMode::PointInTime {
                    dropped_bytes += d.bytes;
                    stop = true;
                } else if newest {
                    dropped_bytes += d.bytes;
                } else {
                    // Older logs were synced before the switch: a damaged tail there is not a
                    // crash artefact but lost data.
                    return Err(Error::Corruption {
                        file: name,
                        offset: d.offset,
                        msg: format!(
                            "damaged record in a WAL that is not the newest: {}",
                            d.reason
                        ),
                    });
                }
                tracing::warn!(wal = %name, offset = d.offset, bytes = d.bytes, reason = %d.reason,
                    "dropped the damaged tail of a WAL");
            }
        }
        self.flush_recovered(&mut mem, &mut edit)?;
        Counters::add(&self.counters.wal_recovery_dropped_bytes, dropped_bytes);

        // Nothing else runs yet (the background thread starts after open), so holding the state
        // lock across this I/O blocks no one.
        let manifest = {
            let mut st = self.state.lock();
            st.versions.set_last_sequence(last_seq);
            let wal_number = st.versions.new_file_number();
            *self.wal.lock() = Some(create_wal(self, wal_number)?);
            edit.log_number = Some(wal_number);
            let manifest = st
                .versions
                .write_new_manifest(self.fs.as_ref(), &self.dir, edit)?;
            st.mem = Arc::new(MemTable::new(
                wal_number,
                self.opts.write_buffer_size,
                self.opts.memtable_whole_key_filtering,
            ));
            manifest
        };
        *self.manifest.lock() = Some(manifest);
        Ok(())
    }

    fn flush_recovered(&self, mem: &mut MemTable, edit: &mut VersionEdit) -> Result<()> {
        if mem.is_empty() {
            return Ok(());
        }
        let number = self.state.lock().versions.new_file_number();
        if let Some(meta) = self.write_level0_table(mem, number)? {
            edit.new_files.push((0, meta));
        }
        *mem = MemTable::new(
            0,
            self.opts.write_buffer_size,
            self.opts.memtable_whole_key_filtering,
        );
        Ok(())
    }
}
