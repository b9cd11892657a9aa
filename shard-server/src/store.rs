//! Where a shard server keeps its state machine: the [`Store`] trait, with the engine
//! ([`DbStore`]) in servers and a `BTreeMap` ([`MemStore`]) in the simulator and fuzzing.
//!
//! The state machine needs little: point reads, atomic write batches (with range deletes),
//! ordered point-in-time scans, and the atomic replacement of everything by a snapshot
//! received from a peer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use strata::write_batch::BatchOp;
use strata::{Db, Options, WriteBatch, WriteOptions};
use strata_node::TransferError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] strata::Error),
    /// The file system failed while the store's directories were set up or swapped.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
    /// Stored or received contents are not a valid state.
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// A snapshot being received broke off.
    #[error(transparent)]
    Transfer(#[from] TransferError),
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Entries in key order; an `Err` ends the iteration.
pub type EntryIter = Box<dyn Iterator<Item = Result<Entry, StoreError>> + Send>;

/// The storage of a shard server's state machine.
pub trait Store: Send + Sync + 'static {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Applies `batch` atomically; with `sync`, durably before returning.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StoreError>;
    /// The entries in `[start, end)` as of this call, in key order (later writes are not seen).
    fn scan(&self, start: &[u8], end: &[u8]) -> EntryIter;
    /// Replaces the whole contents with `entries` (in key order). Atomic: if an entry is an
    /// `Err` (or writing fails), the old contents stay.
    fn replace(
        &self,
        entries: &mut dyn Iterator<Item = Result<Entry, StoreError>>,
    ) -> Result<(), StoreError>;
    /// Reclaims the space of deleted data in `[start, end)` (a hint; may do nothing).
    fn compact(&self, _start: &[u8], _end: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// An in-memory store (simulation, fuzzing, unit tests). Cloning shares the contents.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    map: Arc<RwLock<BTreeMap<Vec<u8>, Vec<u8>>>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Number of keys (for tests).
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// No keys at all.
    pub fn is_empty(&self) -> bool {
        self.map.read().is_empty()
    }

    /// A copy of the whole contents (for tests).
    pub fn dump(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.map.read().clone()
    }
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.read().get(key).cloned())
    }

    fn write(&self, batch: WriteBatch, _sync: bool) -> Result<(), StoreError> {
        let mut map = self.map.write();
        for op in batch.iter() {
            match op {
                BatchOp::Put(k, v) => {
                    map.insert(k.to_vec(), v.to_vec());
                }
                BatchOp::Delete(k) => {
                    map.remove(k);
                }
                BatchOp::DeleteRange(start, end) => {
                    if start < end {
                        let doomed: Vec<Vec<u8>> = map
                            .range(start.to_vec()..end.to_vec())
                            .map(|(k, _)| k.clone())
                            .collect();
                        for k in doomed {
                            map.remove(&k);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn scan(&self, start: &[u8], end: &[u8]) -> EntryIter {
        if start >= end {
            return Box::new(std::iter::empty());
        }
        let entries: Vec<Entry> = self
            .map
            .read()
            .range(start.to_vec()..end.to_vec())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Box::new(entries.into_iter().map(Ok))
    }

    fn replace(
        &self,
        entries: &mut dyn Iterator<Item = Result<Entry, StoreError>>,
    ) -> Result<(), StoreError> {
        let fresh = entries.collect::<Result<BTreeMap<_, _>, StoreError>>()?;
        *self.map.write() = fresh;
        Ok(())
    }
}

/// The engine as a store, in `root/db`.
///
/// [`replace`](Store::replace) builds the new database aside in `root/db.incoming`, marks it
/// complete (`root/INCOMING_COMPLETE`), then swaps directories: `db` -> `db.old`,
/// `db.incoming` -> `db`, removes the mark and `db.old`. Opening finishes or discards an
/// interrupted swap, so a crash at any point leaves either the old or the new contents.
pub struct DbStore {
    root: PathBuf,
    options: Options,
    /// The open database. Readers clone the handle under the read lock; `replace` swaps it
    /// under the write lock.
    db: RwLock<Db>,
}

impl std::fmt::Debug for DbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbStore").field("root", &self.root).finish()
    }
}

const COMPLETE_MARK: &str = "INCOMING_COMPLETE";

fn io_err(what: &str) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        what: what.to_owned(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err("syncing the state directory"))
}

fn remove_dir_if_present(dir: &Path) -> Result<(), StoreError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Io {
            what: format!("removing {}", dir.display()),
            source,
        }),
    }
}

impl DbStore {
    /// The data engine's statistics now (exported as metrics).
    pub fn stats(&self) -> strata::Stats {
        self.db.read().stats()
    }

    /// Opens (creating if needed) the store in `root`, finishing or discarding an interrupted
    /// snapshot install. `options` tune the engine (`create_if_missing` is set here).
    pub fn open(root: &Path, options: Options) -> Result<DbStore, StoreError> {
        std::fs::create_dir_all(root).map_err(io_err("creating the state directory"))?;
        let (db_dir, incoming, old) = Self::dirs(root);
        let mark = root.join(COMPLETE_MARK);
        if mark.exists() {
            // The new contents are complete: finish the swap.
            if incoming.exists() {
                if db_dir.exists() {
                    remove_dir_if_present(&old)?;
                    std::fs::rename(&db_dir, &old).map_err(io_err("renaming db"))?;
                }
                std::fs::rename(&incoming, &db_dir).map_err(io_err("renaming db.incoming"))?;
            }
            sync_dir(root)?;
            std::fs::remove_file(&mark).map_err(io_err("removing the install mark"))?;
            sync_dir(root)?;
        }
        remove_dir_if_present(&incoming)?;
        remove_dir_if_present(&old)?;
        let options = Options {
            create_if_missing: true,
            error_if_exists: false,
            ..options
        };
        let db = Db::open(&db_dir, options.clone()).map_err(StoreError::from)?;
        Ok(DbStore {
            root: root.to_owned(),
            options,
            db: RwLock::new(db),
        })
    }

    fn dirs(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
        (
            root.join("db"),
            root.join("db.incoming"),
            root.join("db.old"),
        )
    }

    /// The open database (e.g. for statistics).
    pub fn db(&self) -> Db {
        self.db.read().clone()
    }

    fn build_incoming(
        &self,
        dir: &Path,
        entries: &mut dyn Iterator<Item = Result<Entry, StoreError>>,
    ) -> Result<(), StoreError> {
        let db = Db::open(
            dir,
            Options {
                error_if_exists: true,
                ..self.options.clone()
            },
        )
        .map_err(StoreError::from)?;
        let result = (|| {
            let mut batch = WriteBatch::new();
            for entry in entries {
                let (k, v) = entry?;
                batch.put(k, v);
                if batch.approximate_size() >= 1 << 20 {
                    db.write(std::mem::take(&mut batch))
                        .map_err(StoreError::from)?;
                }
            }
            if !batch.is_empty() {
                db.write(batch).map_err(StoreError::from)?;
            }
            db.flush().map_err(StoreError::from)
        })();
        let closed = db.close().map_err(StoreError::from);
        result.and(closed)
    }
}

impl Store for DbStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.read().get(key).map_err(StoreError::from)
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StoreError> {
        let db = self.db.read().clone();
        db.write_opt(batch, &WriteOptions { sync })
            .map_err(StoreError::from)
    }

    fn scan(&self, start: &[u8], end: &[u8]) -> EntryIter {
        if start >= end {
            return Box::new(std::iter::empty());
        }
        let db = self.db.read().clone();
        Box::new(
            db.scan(start.to_vec()..end.to_vec())
                .map(|r| r.map_err(StoreError::from)),
        )
    }

    fn replace(
        &self,
        entries: &mut dyn Iterator<Item = Result<Entry, StoreError>>,
    ) -> Result<(), StoreError> {
        let (db_dir, incoming, old) = Self::dirs(&self.root);
        remove_dir_if_present(&incoming)?;
        if let Err(e) = self.build_incoming(&incoming, entries) {
            let _ = remove_dir_if_present(&incoming);
            return Err(e);
        }
        let mark = self.root.join(COMPLETE_MARK);
        std::fs::write(&mark, b"").map_err(io_err("writing the install mark"))?;
        sync_dir(&self.root)?;
        let mut current = self.db.write();
        current.close().map_err(StoreError::from)?;
        // From here on a crash is finished by `open`.
        std::fs::rename(&db_dir, &old).map_err(io_err("renaming db"))?;
        std::fs::rename(&incoming, &db_dir).map_err(io_err("renaming db.incoming"))?;
        sync_dir(&self.root)?;
        std::fs::remove_file(&mark).map_err(io_err("removing the install mark"))?;
        sync_dir(&self.root)?;
        *current = Db::open(&db_dir, self.options.clone()).map_err(StoreError::from)?;
        drop(current);
        remove_dir_if_present(&old)
    }

    fn compact(&self, start: &[u8], end: &[u8]) -> Result<(), StoreError> {
        let db = self.db.read().clone();
        db.compact_range(start.to_vec()..end.to_vec())
            .map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(store: &dyn Store) -> Vec<Entry> {
        store
            .scan(b"", &[0xff; 4])
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn exercise(store: &dyn Store) {
        let mut b = WriteBatch::new();
        b.put(b"a", b"1")
            .put(b"b", b"2")
            .put(b"c", b"3")
            .put(b"d", b"4");
        store.write(b, false).unwrap();
        let mut b = WriteBatch::new();
        b.delete_range(b"b", b"d").delete(b"a").put(b"e", b"5");
        store.write(b, true).unwrap();
        assert_eq!(store.get(b"a").unwrap(), None);
        assert_eq!(store.get(b"d").unwrap(), Some(b"4".to_vec()));
        let before = store.scan(b"a", b"z");
        store
            .write(WriteBatch::new().put(b"f", b"6").clone(), false)
            .unwrap();
        let seen: Vec<_> = before.map(|r| r.unwrap().0).collect();
        assert_eq!(seen, vec![b"d".to_vec(), b"e".to_vec()], "point in time");

        // A broken replacement keeps the old contents; a whole one replaces everything.
        let old = contents(store);
        let mut broken = vec![
            Ok((b"x".to_vec(), b"1".to_vec())),
            Err(StoreError::Corrupt("cut".into())),
        ]
        .into_iter();
        assert!(store.replace(&mut broken).is_err());
        assert_eq!(contents(store), old);
        let mut whole = vec![Ok((b"y".to_vec(), b"2".to_vec()))].into_iter();
        store.replace(&mut whole).unwrap();
        assert_eq!(contents(store), vec![(b"y".to_vec(), b"2".to_vec())]);
        store
            .write(WriteBatch::new().put(b"z", b"3").clone(), true)
            .unwrap();
        assert_eq!(store.get(b"z").unwrap(), Some(b"3".to_vec()));
    }

    #[test]
    fn mem_store_behaves_like_a_store() {
        exercise(&MemStore::new());
    }

    #[test]
    fn db_store_behaves_like_a_store_and_survives_reopen_after_replace() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = DbStore::open(dir.path(), Options::default()).unwrap();
            exercise(&store);
        }
        let store = DbStore::open(dir.path(), Options::default()).unwrap();
        assert_eq!(
            contents(&store),
            vec![
                (b"y".to_vec(), b"2".to_vec()),
                (b"z".to_vec(), b"3".to_vec())
            ]
        );
    }

    #[test]
    fn db_store_finishes_or_discards_an_interrupted_install() {
        let dir = tempfile::tempdir().unwrap();
        let fill = |path: &Path, key: &[u8]| {
            let db = Db::open(path, Options::create()).unwrap();
            db.put(key, b"v").unwrap();
            db.close().unwrap();
        };
        // Crash while building: the incomplete copy is discarded.
        fill(&dir.path().join("db"), b"old");
        fill(&dir.path().join("db.incoming"), b"new");
        let store = DbStore::open(dir.path(), Options::default()).unwrap();
        assert_eq!(contents(&store), vec![(b"old".to_vec(), b"v".to_vec())]);
        drop(store);
        // Crash after marking it complete, before or in the middle of the swap: finished.
        fill(&dir.path().join("db.incoming"), b"new");
        std::fs::write(dir.path().join(COMPLETE_MARK), b"").unwrap();
        let store = DbStore::open(dir.path(), Options::default()).unwrap();
        assert_eq!(contents(&store), vec![(b"new".to_vec(), b"v".to_vec())]);
        drop(store);
        fill(&dir.path().join("db.incoming"), b"newer");
        std::fs::rename(dir.path().join("db"), dir.path().join("db.old")).unwrap();
        std::fs::write(dir.path().join(COMPLETE_MARK), b"").unwrap();
        let store = DbStore::open(dir.path(), Options::default()).unwrap();
        assert_eq!(contents(&store), vec![(b"newer".to_vec(), b"v".to_vec())]);
        assert!(!dir.path().join("db.old").exists());
    }
}
