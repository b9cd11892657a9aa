//! The file-system seam: every byte the engine reads or writes goes through [`FileSystem`].
//!
//! [`StdFs`] is the real one (buffered writes, logs written through `mmap` on Linux,
//! `fdatasync`, reads through `mmap`). Tests swap in
//! [`FaultFs`](fault::FaultFs), an in-memory file system that can simulate a power cut by
//! forgetting everything that was not synced — file contents past the last `sync` and directory
//! entries created or renamed since the last `sync_dir` — the way LevelDB's fault-injection test
//! does. Durability claims are proven against it.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

pub mod fault;
#[cfg(target_os = "linux")]
mod mapped_log;
mod std_fs;

pub use std_fs::StdFs;

/// A file open for appending. Dropping it closes it (without syncing).
pub trait WritableFile: Send {
    /// Appends bytes (possibly into a user-space buffer).
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Hands buffered bytes to the operating system: they survive a crash of this process
    /// (SIGKILL), not a power cut.
    fn flush(&mut self) -> io::Result<()>;
    /// Flushes and makes the file's data durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
}

/// An immutable file mapped for reading. The engine only maps files that are no longer written
/// (finished SSTables, logs being recovered), so the bytes never change under a reader.
pub trait ReadableFile: Send + Sync {
    /// The whole file.
    fn bytes(&self) -> &[u8];
}

/// A held lock on a database directory; dropping it releases the lock.
pub trait FileLock: Send + Sync {}

/// The operations the engine needs from a file system.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates (or truncates) a file for writing. The new directory entry is durable only after
    /// [`FileSystem::sync_dir`] on its parent.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Creates (or truncates) a log file: appended to in small records, each of which must
    /// survive a crash of this process once [`WritableFile::flush`] returns, and read back only
    /// by the log reader. An implementation may reserve space ahead, so the file may end in
    /// zero bytes, which the reader takes as the end of the log. By default, [`create`].
    ///
    /// [`create`]: FileSystem::create
    fn create_log(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.create(path)
    }
    /// Opens a file for reading.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn ReadableFile>>;
    /// Whether a file or directory exists.
    fn exists(&self, path: &Path) -> bool;
    /// Size of a file in bytes.
    fn file_size(&self, path: &Path) -> io::Result<u64>;
    /// Names (not paths) of the entries of a directory.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Atomically renames `from` to `to`, replacing `to`. Durable after `sync_dir`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` (created if missing), failing with
    /// `io::ErrorKind::WouldBlock` if someone else holds it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>>;
    /// Creates `to` as a hard link to `from` (used by checkpoints).
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Reads a whole (small) file, e.g. `CURRENT`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        Ok(self.open(path)?.bytes().to_vec())
    }
}
