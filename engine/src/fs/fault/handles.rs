//! The handles [`FaultFs`](super::FaultFs) hands out: a writable file that appends to and syncs
//! its inode, a reader's snapshot of the bytes at `open` time, and a lock guard. Writers and
//! locks carry the generation they were made in, so that after a power cut a handle of the
//! "previous boot" fails every operation and its drop neither frees an inode nor releases a
//! lock taken since.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{InodeId, State};
use crate::fs::{FileLock, ReadableFile, WritableFile};

pub(super) struct FaultWritable {
    pub(super) fs: Arc<Mutex<State>>,
    pub(super) inode: InodeId,
    pub(super) generation: u64,
}

impl WritableFile for FaultWritable {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.check_handle(self.generation)?;
        if let Some(left) = s.writes_left.as_mut() {
            if *left == 0 {
                return Err(io::Error::other("injected write failure"));
            }
            *left -= 1;
        }
        let inode = s
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| io::Error::other("inode vanished"))?;
        Arc::make_mut(&mut inode.data).extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.fs.lock().check_handle(self.generation)
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.check_handle(self.generation)?;
        if s.fail_syncs {
            return Err(io::Error::other("injected sync failure"));
        }
        let inode = s
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| io::Error::other("inode vanished"))?;
        inode.synced_len = inode.data.len();
        Ok(())
    }
}

impl Drop for FaultWritable {
    fn drop(&mut self) {
        let mut s = self.fs.lock();
        if s.generation != self.generation {
            return;
        }
        if let Some(inode) = s.inodes.get_mut(&self.inode) {
            inode.open_writers = inode.open_writers.saturating_sub(1);
        }
        s.collect_garbage();
    }
}

pub(super) struct Snapshot(pub(super) Arc<Vec<u8>>);

impl ReadableFile for Snapshot {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

pub(super) struct FaultLock {
    pub(super) fs: Arc<Mutex<State>>,
    pub(super) path: PathBuf,
    pub(super) token: u64,
}

impl FileLock for FaultLock {}

impl Drop for FaultLock {
    fn drop(&mut self) {
        let mut s = self.fs.lock();
        if s.locks.get(&self.path) == Some(&self.token) {
            s.locks.remove(&self.path);
        }
    }
}
