//! [`FaultFs`]: an in-memory [`FileSystem`] that can simulate a power cut, modelled on LevelDB's
//! fault-injection test environment.
//!
//! # Model
//!
//! - A file is an *inode*: its bytes and `synced_len`, the prefix made durable by the last
//!   successful `sync`. `append` grows the bytes; `flush` does nothing (process crashes are not
//!   modelled here, only power loss); `sync` sets `synced_len` to the current length.
//! - The namespace exists twice: the *live* entries (path -> inode) that every operation sees, and
//!   the *durable* entries that survive a power cut. `create`, `rename`, `hard_link` and
//!   `remove_file` change only the live entries; `sync_dir(dir)` makes the live entries of `dir`
//!   (its direct children, including removals) durable. A renamed or hard-linked file keeps its
//!   inode, so its data and `synced_len` go with it.
//! - [`FaultFs::power_cut`] replaces the live namespace by the durable one and truncates every
//!   inode to its `synced_len`: a file whose directory entry was never synced disappears even if
//!   its data was synced; a rename or removal not followed by `sync_dir` is undone.
//! - Handles from before a cut are dead: every operation on a [`WritableFile`] created before the
//!   last `power_cut` fails with an `io::Error` (kind `Other`), so a leftover writer of the
//!   "previous boot" can never resurrect data. Locks are released by a cut (their holder is gone);
//!   dropping a stale lock guard later does not release a lock taken after the cut.
//! - Readers get a snapshot of the bytes at `open` time (the engine only reads immutable files).
//!
//! # Simplifications (documented, deliberate)
//!
//! - Directories are durable as soon as `create_dir_all` returns, and are never removed.
//! - Paths are compared as given (no normalisation): use one spelling per file, e.g. absolute
//!   paths like `/db/000001.log`.
//! - `create` on an existing path truncates that inode in place (like `O_TRUNC`, visible through
//!   its hard links) and the truncation is immediately durable (`synced_len` becomes 0): the
//!   pessimistic outcome for the old contents.
//! - A failed append (see [`FaultFs::fail_writes_after`]) appends nothing; a failed sync (see
//!   [`FaultFs::fail_syncs`]) changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileLock, FileSystem, ReadableFile, WritableFile};

mod handles;

use handles::{FaultLock, FaultWritable, Snapshot};

/// An in-memory file system that forgets unsynced data and directory entries on
/// [`power_cut`](FaultFs::power_cut). Cloning shares the same file system.
#[derive(Clone, Default)]
pub struct FaultFs {
    inner: Arc<Mutex<State>>,
}

type InodeId = u64;

#[derive(Default)]
struct Inode {
    /// Shared with readers' snapshots; copied on the next append if a snapshot is alive.
    data: Arc<Vec<u8>>,
    synced_len: usize,
    /// Open writable handles of the current generation (keeps the inode alive when unlinked).
    open_writers: usize,
}

#[derive(Default)]
struct State {
    inodes: HashMap<InodeId, Inode>,
    next_inode: InodeId,
    live: BTreeMap<PathBuf, InodeId>,
    durable: BTreeMap<PathBuf, InodeId>,
    dirs: BTreeSet<PathBuf>,
    /// Held locks: path -> token of the guard holding it.
    locks: HashMap<PathBuf, u64>,
    next_lock_token: u64,
    /// Bumped by every power cut; handles of an older generation are dead.
    generation: u64,
    fail_syncs: bool,
    /// Appends still allowed before every append fails; `None` = no limit.
    writes_left: Option<u64>,
}

impl State {
    fn dir_exists(&self, dir: Option<&Path>) -> bool {
        match dir {
            None => true,
            Some(d) if d.as_os_str().is_empty() => true,
            Some(d) => self.dirs.contains(d),
        }
    }

    fn live_inode(&self, path: &Path) -> io::Result<InodeId> {
        self.live.get(path).copied().ok_or_else(|| not_found(path))
    }

    /// Forgets inodes that no directory entry and no open handle refers to.
    fn collect_garbage(&mut self) {
        let referenced: BTreeSet<InodeId> = self
            .live
            .values()
            .chain(self.durable.values())
            .copied()
            .collect();
        self.inodes
            .retain(|id, inode| inode.open_writers > 0 || referenced.contains(id));
    }

    fn check_handle(&self, generation: u64) -> io::Result<()> {
        if generation == self.generation {
            Ok(())
        } else {
            Err(io::Error::other(
                "file handle from before a simulated power cut",
            ))
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl FaultFs {
    /// An empty file system (no directories yet; call `create_dir_all`).
    pub fn new() -> Self {
        FaultFs::default()
    }

    /// Simulates losing power: the durable namespace becomes the live one, every file is cut
    /// back to what was synced, open writable handles die and locks are released.
    pub fn power_cut(&self) {
        let mut s = self.inner.lock();
        s.live = s.durable.clone();
        s.generation += 1;
        s.locks.clear();
        for inode in s.inodes.values_mut() {
            inode.open_writers = 0;
            let synced = inode.synced_len;
            if inode.data.len() > synced {
                Arc::make_mut(&mut inode.data).truncate(synced);
            }
        }
        s.collect_garbage();
    }

    /// While `fail` is set, `WritableFile::sync` and `FileSystem::sync_dir` fail with an
    /// `io::Error` and change nothing.
    pub fn fail_syncs(&self, fail: bool) {
        self.inner.lock().fail_syncs = fail;
    }

    /// `Some(n)`: the next `n` appends (over all files) succeed, every later one fails with an
    /// `io::Error` and appends nothing. `None` lifts the limit.
    pub fn fail_writes_after(&self, n: Option<u64>) {
        self.inner.lock().writes_left = n;
    }

    /// Bytes of `path` that would survive a power cut right now if its directory entry is
    /// durable (its `synced_len`); `None` if `path` does not exist.
    pub fn synced_len(&self, path: &Path) -> Option<usize> {
        let s = self.inner.lock();
        let id = s.live.get(path)?;
        s.inodes.get(id).map(|i| i.synced_len)
    }

    /// Whether `path`'s directory entry would survive a power cut right now.
    pub fn is_durable(&self, path: &Path) -> bool {
        self.inner.lock().durable.contains_key(path)
    }
}

impl fmt::Debug for FaultFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.lock();
        f.debug_struct("FaultFs")
            .field("live_files", &s.live.len())
            .field("durable_files", &s.durable.len())
            .field("generation", &s.generation)
            .finish_non_exhaustive()
    }
}

impl FileSystem for FaultFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.inner.lock();
        for dir in path.ancestors() {
            if dir.as_os_str().is_empty() {
                continue;
            }
            if s.live.contains_key(dir) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} is a file", dir.display()),
                ));
            }
            s.dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let mut s = self.inner.lock();
        if !s.dir_exists(path.parent()) {
            return Err(not_found(path));
        }
        if s.dirs.contains(path) {
            return Err(io::Error::other(format!(
                "{} is a directory",
                path.display()
            )));
        }
        let id = match s.live.get(path).copied() {
            Some(id) => id,
            None => {
                let id = s.next_inode;
                s.next_inode += 1;
                s.inodes.insert(id, Inode::default());
                s.live.insert(path.to_path_buf(), id);
                id
            }
        };
        let inode = s
            .inodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("inode vanished"))?;
        inode.data = Arc::new(Vec::new());
        inode.synced_len = 0;
        inode.open_writers += 1;
        Ok(Box::new(FaultWritable {
            fs: self.inner.clone(),
            inode: id,
            generation: s.generation,
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn ReadableFile>> {
        let s = self.inner.lock();
        let id = s.live_inode(path)?;
        let inode = s.inodes.get(&id).ok_or_else(|| not_found(path))?;
        Ok(Arc::new(Snapshot(inode.data.clone())))
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.inner.lock();
        s.live.contains_key(path) || s.dirs.contains(path)
    }

    fn file_size(&self, path: &Path) -> io::Result<u64> {
        let s = self.inner.lock();
        let id = s.live_inode(path)?;
        let inode = s.inodes.get(&id).ok_or_else(|| not_found(path))?;
        Ok(inode.data.len() as u64)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let s = self.inner.lock();
        if !s.dirs.contains(path) {
            return Err(not_found(path));
        }
        let children = s.live.keys().chain(s.dirs.iter());
        Ok(children
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.inner.lock();
        let id = s.live_inode(from)?;
        if !s.dir_exists(to.parent()) {
            return Err(not_found(to));
        }
        if s.dirs.contains(to) {
            return Err(io::Error::other(format!("{} is a directory", to.display())));
        }
        s.live.remove(from);
        s.live.insert(to.to_path_buf(), id);
        s.collect_garbage();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.inner.lock();
        s.live.remove(path).ok_or_else(|| not_found(path))?;
        s.collect_garbage();
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.inner.lock();
        if !s.dirs.contains(path) {
            return Err(not_found(path));
        }
        if s.fail_syncs {
            return Err(io::Error::other("injected sync failure"));
        }
        let State { live, durable, .. } = &mut *s;
        durable.retain(|p, _| p.parent() != Some(path));
        for (p, id) in live.iter() {
            if p.parent() == Some(path) {
                durable.insert(p.clone(), *id);
            }
        }
        s.collect_garbage();
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        // Like the real one, locking creates the (empty) lock file if it is missing.
        if !self.exists(path) {
            drop(self.create(path)?);
        }
        let mut s = self.inner.lock();
        if s.locks.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "lock held by another user",
            ));
        }
        let token = s.next_lock_token;
        s.next_lock_token += 1;
        s.locks.insert(path.to_path_buf(), token);
        Ok(Box::new(FaultLock {
            fs: self.inner.clone(),
            path: path.to_path_buf(),
            token,
        }))
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.inner.lock();
        let id = s.live_inode(from)?;
        if s.live.contains_key(to) || s.dirs.contains(to) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", to.display()),
            ));
        }
        if !s.dir_exists(to.parent()) {
            return Err(not_found(to));
        }
        s.live.insert(to.to_path_buf(), id);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
