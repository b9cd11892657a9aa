//! The database: the public [`Db`] handle and the shared state behind it.
//!
//! Submodules follow the life of a write: `open` (recovery), `write` (group commit into the WAL
//! and memtable, write stalls), `background` (the threads), `flush` (memtables to level-0
//! tables, obsolete file deletion), `compact` (compactions), `read` (gets, scans, snapshots).

mod background;
mod checkpoint;
mod compact;
mod flush;
mod open;
mod read;
mod write;

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::fs::{FileLock, FileSystem};
use crate::iter::DbIterator;
use crate::memtable::mem::MemTable;
use crate::options::{Options, ReadOptions, WriteOptions};
use crate::snapshot::{Snapshot, SnapshotList};
use crate::stats::{Counters, Stats};
use crate::table_cache::TableCache;
use crate::version::{ManifestWriter, VersionSet, NUM_LEVELS};
use crate::wal::LogWriter;
use crate::write_batch::WriteBatch;

/// An open database. Cheap to clone (an `Arc` inside); `Send + Sync`, so clones can be used
/// from many threads. The database closes when [`close`](Db::close) is called on any clone or
/// when the last clone drops.
///
/// ```
/// use strata::{Db, Options, WriteBatch};
/// let dir = tempfile::tempdir()?;
/// let db = Db::open(dir.path(), Options::create())?;
/// db.put(b"apple", b"red")?;
/// let mut batch = WriteBatch::new();
/// batch.put(b"banana", b"yellow").delete(b"apple");
/// db.write(batch)?;
/// assert_eq!(db.get(b"apple")?, None);
/// let all: Vec<_> = db.scan::<&[u8]>(..).collect::<Result<_, _>>()?;
/// assert_eq!(all, vec![(b"banana".to_vec(), b"yellow".to_vec())]);
/// db.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Db {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.inner().dir)
            .finish()
    }
}

/// Closes the database when the last `Db` clone drops. Background threads, snapshots and
/// iterators hold `DbInner` directly, so they never keep a database open by themselves.
struct Handle {
    inner: Arc<DbInner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Err(e) = self.inner.close() {
            tracing::warn!(error = %e, "closing database on drop failed");
        }
    }
}

/// State shared by the handles, the write path and the background thread.
pub(crate) struct DbInner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) tables: Arc<TableCache>,
    /// Lock order: `manifest` before `state`; `state` before `wal` is never taken (the leader
    /// releases `state` before touching `wal`).
    pub(crate) state: Mutex<State>,
    /// Signalled when a write group completes: queued writers check whether they are done or
    /// now lead the queue.
    pub(crate) write_cv: Condvar,
    /// Signalled when background work is requested or finishes (a memtable became immutable, a
    /// flush completed, an error was recorded, the database is closing).
    pub(crate) bg_cv: Condvar,
    /// The active WAL. Only the write leader (front of the writer queue) touches it, so the lock
    /// is uncontended except against `close`.
    pub(crate) wal: Mutex<Option<ActiveWal>>,
    /// The live MANIFEST; held while an edit is logged, which serializes version changes.
    pub(crate) manifest: Mutex<Option<ManifestWriter>>,
    pub(crate) snapshots: Arc<SnapshotList>,
    pub(crate) counters: Counters,
    /// Held for the whole of a `compact_range`: manual compactions run one at a time.
    pub(crate) manual_compaction: Mutex<()>,
    /// Set by `close`: running jobs stop early and abandon their outputs.
    pub(crate) shutting_down: AtomicBool,
    lock: Mutex<Option<Box<dyn FileLock>>>,
    bg_threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The WAL being appended to.
pub(crate) struct ActiveWal {
    pub(crate) writer: LogWriter,
    /// Its file number.
    pub(crate) number: u64,
}

/// Everything protected by `DbInner::state`.
///
/// Invariants:
/// - `mem` and every memtable in `imm` are pinned here until their contents are in a table
///   named by the current version (the flush installs the version and pops `imm` under one
///   lock acquisition, so a reader sees the data in exactly one of the two places... or, for an
///   instant, both, which is harmless: same keys, same sequence numbers);
/// - `imm` is oldest first, and its WAL numbers increase, ending below `mem`'s;
/// - `versions.last_sequence()` is published only after the group it covers is in the memtable;
/// - `writers` is the queue of writers in arrival order; its front is the leader.
pub(crate) struct State {
    pub(crate) mem: Arc<MemTable>,
    pub(crate) imm: VecDeque<Arc<MemTable>>,
    pub(crate) versions: VersionSet,
    pub(crate) writers: VecDeque<u64>,
    pub(crate) pending: HashMap<u64, write::PendingWrite>,
    pub(crate) completed: HashMap<u64, Result<()>>,
    pub(crate) next_writer_id: u64,
    /// Set by the first failed WAL write, sync, flush or MANIFEST write; poisons the database.
    pub(crate) bg_error: Option<String>,
    pub(crate) closed: bool,
    /// Table numbers being written that no version names yet; not obsolete.
    pub(crate) pending_outputs: HashSet<u64>,
    /// A flush (and the file deletion after it) is running; flushes run one at a time.
    pub(crate) flush_running: bool,
    /// Files that running compactions read or move; the picker leaves them alone.
    pub(crate) compacting: HashSet<u64>,
    /// Inputs of failed compactions: never picked again until reopen (no retry loop on a
    /// damaged table).
    pub(crate) quarantined: HashSet<u64>,
    /// The last compaction failure, if any.
    pub(crate) compaction_error: Option<String>,
    /// While positive (checkpoints running), obsolete files are not deleted.
    pub(crate) file_deletions_disabled: usize,
    /// While positive (a `compact_range` runs), automatic compactions are not picked.
    pub(crate) manual_compactions: usize,
}

impl Db {
    /// Opens (or, with `create_if_missing`, creates) the database in `path`, replaying its
    /// MANIFEST and WALs.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        let inner = open::open(path.as_ref(), options)?;
        Ok(Db {
            handle: Arc::new(Handle { inner }),
        })
    }

    fn inner(&self) -> &Arc<DbInner> {
        &self.handle.inner
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.write(b)
    }

    /// Deletes `key` (a no-op if absent).
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.write(b)
    }

    /// Deletes every key in `range` at once: one range tombstone, written like any other update
    /// (atomically, durably per the WAL, visible to reads and scans immediately, invisible to
    /// older snapshots). Compaction later drops the covered entries, and whole tables that lie
    /// inside the range without rewriting them.
    pub fn delete_range<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<()> {
        use std::ops::Bound;
        let successor = |k: &K| {
            let mut k = k.as_ref().to_vec();
            k.push(0);
            k
        };
        let start = match range.start_bound() {
            Bound::Included(k) => k.as_ref().to_vec(),
            Bound::Excluded(k) => successor(k),
            Bound::Unbounded => Vec::new(),
        };
        let end = match range.end_bound() {
            Bound::Excluded(k) => k.as_ref().to_vec(),
            Bound::Included(k) => successor(k),
            Bound::Unbounded => crate::range_del::unbounded_end(),
        };
        if start >= end {
            return Ok(());
        }
        let mut b = WriteBatch::new();
        b.delete_range(start, end);
        self.write(b)
    }

    /// Applies `batch` atomically, without syncing.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_opt(batch, &WriteOptions::default())
    }

    /// Applies `batch` atomically with the given options.
    pub fn write_opt(&self, batch: WriteBatch, options: &WriteOptions) -> Result<()> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        self.inner().write(Some(batch), options.sync)
    }

    /// The newest value of `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        self.inner().get(key.as_ref(), &ReadOptions::default())
    }

    /// The value of `key` as of `options.snapshot` (or the newest).
    pub fn get_opt(&self, key: impl AsRef<[u8]>, options: &ReadOptions) -> Result<Option<Vec<u8>>> {
        self.inner().get(key.as_ref(), options)
    }

    /// An ordered iterator over the live keys in `range`, at the current point in time.
    pub fn scan<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> DbIterator {
        self.scan_opt(range, &ReadOptions::default())
    }

    /// Like [`scan`](Db::scan), reading at `options.snapshot` if set.
    pub fn scan_opt<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        options: &ReadOptions,
    ) -> DbIterator {
        let own = |b: std::ops::Bound<&K>| b.map(|k| k.as_ref().to_vec());
        self.inner()
            .scan(own(range.start_bound()), own(range.end_bound()), options)
    }

    /// A snapshot of the current state: reads through it see exactly the writes acknowledged
    /// before this call, for as long as it (or a clone) lives.
    pub fn snapshot(&self) -> Result<Snapshot> {
        self.inner().snapshot()
    }

    /// Freezes the memtable and waits until every memtable written so far is in a level-0
    /// table (after which its WAL is deleted).
    pub fn flush(&self) -> Result<()> {
        self.inner().flush()
    }

    /// Flushes, then compacts every table overlapping `range` down to the deepest non-empty
    /// level, dropping overwritten versions and tombstones no snapshot needs. Blocks until done.
    pub fn compact_range<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<()> {
        let own = |b: std::ops::Bound<&K>| b.map(|k| k.as_ref().to_vec());
        self.inner()
            .compact_range(own(range.start_bound()), own(range.end_bound()))
    }

    /// Makes a consistent, openable copy of the database in `dir` (which must not exist): hard
    /// links to the table files, the needed WAL prefix copied, and a fresh MANIFEST. Writes go
    /// on meanwhile; the copy holds every write acknowledged before the call and possibly some
    /// made during it (always a prefix of history). The basis for backups and for shipping a
    /// replica's state.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.inner().checkpoint(dir.as_ref())
    }

    /// Checks the database's structure: levels 1 and deeper sorted and non-overlapping, and
    /// every table the current version names present on disk with its recorded size. Cheap
    /// (metadata only); tests call it after every compaction.
    pub fn check_consistency(&self) -> Result<()> {
        let inner = self.inner();
        let version = {
            let st = inner.state.lock();
            DbInner::check_open(&st)?;
            st.versions.current()
        };
        version.check_invariants()?;
        for f in version.files.iter().flatten() {
            let path = crate::filename::table_path(&inner.dir, f.number);
            let size = inner.fs.file_size(&path).map_err(|e| Error::Corruption {
                file: crate::filename::table_name(f.number),
                offset: 0,
                msg: format!("table named by the current version is unreadable: {e}"),
            })?;
            if size != f.size {
                return Err(Error::Corruption {
                    file: crate::filename::table_name(f.number),
                    offset: size,
                    msg: format!("table is {size} bytes, the version says {}", f.size),
                });
            }
        }
        Ok(())
    }

    /// A named property, as text: `strata.stats` (the [`Stats::report`] table),
    /// `strata.num-files-at-level<N>`, `strata.total-sst-size`, `strata.estimate-live-data-size`,
    /// `strata.write-amplification`. `None` for unknown names.
    pub fn property(&self, name: &str) -> Option<String> {
        let s = self.stats();
        match name {
            "strata.stats" => Some(s.report()),
            "strata.total-sst-size" => Some(s.table_bytes().to_string()),
            "strata.estimate-live-data-size" => Some(s.estimated_live_bytes.to_string()),
            "strata.estimate-pending-compaction-bytes" => {
                Some(s.pending_compaction_bytes.to_string())
            }
            "strata.write-amplification" => Some(format!("{:.3}", s.write_amplification())),
            _ => {
                let level: usize = name
                    .strip_prefix("strata.num-files-at-level")?
                    .parse()
                    .ok()?;
                Some(s.files_per_level.get(level)?.to_string())
            }
        }
    }

    /// Statistics and memory use.
    pub fn stats(&self) -> Stats {
        self.inner().stats()
    }

    /// Stops background work, syncs the WAL and releases the directory lock. Every later call
    /// on any clone returns [`Error::Closed`]. Unflushed memtables are not flushed: their WAL
    /// is replayed on the next open.
    pub fn close(&self) -> Result<()> {
        self.inner().close()
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.inner().dir
    }
}

impl DbInner {
    pub(crate) fn poison(&self, st: &mut State, e: &Error) {
        if st.bg_error.is_none() {
            tracing::error!(error = %e, "database poisoned");
            st.bg_error = Some(e.to_string());
        }
        self.bg_cv.notify_all();
        self.write_cv.notify_all();
    }

    pub(crate) fn check_open(st: &State) -> Result<()> {
        if st.closed {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn close(&self) -> Result<()> {
        {
            let mut st = self.state.lock();
            if st.closed {
                return Ok(());
            }
            st.closed = true;
            self.shutting_down.store(true, Ordering::Relaxed);
            self.bg_cv.notify_all();
            self.write_cv.notify_all();
        }
        // Running jobs see `shutting_down` and stop; a flush in progress completes.
        let threads = std::mem::take(&mut *self.bg_threads.lock());
        for t in threads {
            if t.thread().id() != std::thread::current().id() && t.join().is_err() {
                tracing::error!("background thread panicked");
            }
        }
        let synced = match self.wal.lock().as_mut() {
            Some(w) => w.writer.sync(),
            None => Ok(()),
        };
        self.manifest.lock().take();
        self.lock.lock().take();
        synced
    }

    fn stats(&self) -> Stats {
        let c = &self.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let (mem, imm, version, last_sequence, log_number) = {
            let st = self.state.lock();
            (
                st.mem.clone(),
                st.imm.clone(),
                st.versions.current(),
                st.versions.last_sequence(),
                st.versions.log_number(),
            )
        };
        // The active WAL counts what was written to it, not the space reserved ahead of that.
        let active_wal = self
            .wal
            .lock()
            .as_ref()
            .map(|w| (w.number, w.writer.offset()));
        let wal_file_bytes = self
            .fs
            .list_dir(&self.dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|name| match crate::filename::parse_file_name(name) {
                Some(crate::filename::FileKind::Wal(n)) if n >= log_number => match active_wal {
                    Some((active, written)) if active == n => Some(written),
                    _ => self.fs.file_size(&self.dir.join(name)).ok(),
                },
                _ => None,
            })
            .sum();
        let cache = self.tables.block_cache();
        let mut s = Stats {
            writes: load(&c.writes),
            write_batches: load(&c.write_batches),
            write_groups: load(&c.write_groups),
            wal_syncs: load(&c.wal_syncs),
            wal_bytes: load(&c.wal_bytes),
            flushes: load(&c.flushes),
            flush_bytes: load(&c.flush_bytes),
            write_stalls: load(&c.write_stalls),
            write_stall_micros: load(&c.write_stall_micros),
            wal_recovery_dropped_bytes: load(&c.wal_recovery_dropped_bytes),
            memtable_bytes: mem.memory_usage() as u64,
            immutable_memtables: imm.len() as u64,
            immutable_memtable_bytes: imm.iter().map(|m| m.memory_usage() as u64).sum(),
            block_cache_bytes: cache.usage() as u64,
            block_cache_capacity: cache.capacity() as u64,
            block_cache_hits: cache.hits(),
            block_cache_misses: cache.misses(),
            open_tables: self.tables.open_tables() as u64,
            table_metadata_bytes: self.tables.memory_usage() as u64,
            last_sequence,
            live_snapshots: self.snapshots.len() as u64,
            user_bytes_written: load(&c.user_bytes_written),
            trivial_moves: load(&c.trivial_moves),
            compaction_errors: load(&c.compaction_errors),
            tables_dropped_by_range_deletion: load(&c.tables_dropped_by_range_deletion),
            wal_file_bytes,
            estimated_live_bytes: version.estimated_live_bytes(),
            pending_compaction_bytes: crate::compaction::picker::pending_compaction_bytes(
                &version,
                &self.picker_options(),
            ),
            ..Stats::default()
        };
        for level in 0..NUM_LEVELS {
            s.files_per_level[level] = version.num_files(level) as u64;
            s.bytes_per_level[level] = version.level_bytes(level);
            let lc = &c.levels[level];
            s.compactions_per_level[level] = load(&lc.compactions);
            s.compaction_bytes_read_per_level[level] = load(&lc.bytes_read);
            s.compaction_bytes_written_per_level[level] = load(&lc.bytes_written);
            s.compaction_micros_per_level[level] = load(&lc.micros);
        }
        s
    }
}
