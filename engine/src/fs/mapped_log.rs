//! A log file written through a shared memory mapping: an append is a copy into the page
//! cache, with no system call per record (RocksDB's `allow_mmap_writes`, for the WAL only).
//!
//! The file grows by segments, each reserved with `fallocate` before it is mapped, so that a
//! full disk is an error from [`append`](WritableFile::append), never a `SIGBUS` on a store
//! into the mapping. Segments double from [`FIRST_SEGMENT`] up to [`MAX_SEGMENT`]; only the
//! one being written is mapped. Bytes past the last append are zeros, which the log reader
//! takes as the end of the log: after a crash the file ends in the unused rest of its last
//! segment, and dropping the file truncates it to what was appended.
//!
//! Durability is that of buffered writes. An append is in the page cache when it returns, so
//! it survives the process being killed, and [`flush`](WritableFile::flush) has nothing to do.
//! [`sync`](WritableFile::sync) is `fdatasync`, which writes back the pages dirtied through a
//! mapping (of this segment or of earlier, unmapped ones) like any other dirty pages: Linux
//! marks a shared file page dirty on the first store after each writeback.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use memmap2::{MmapMut, MmapOptions};

use super::WritableFile;

/// Size of the first segment: small logs stay small.
pub const FIRST_SEGMENT: usize = 64 << 10;
/// Largest segment.
pub const MAX_SEGMENT: usize = 4 << 20;

/// A log file appended to through a mapping of its current segment.
pub struct MappedLogFile {
    file: File,
    /// The mapping of the current segment, which starts at file offset `segment_start`
    /// (`None` before the first append).
    map: Option<MmapMut>,
    segment_start: u64,
    /// Bytes appended so far: the file's logical length.
    len: u64,
    /// Size of the next segment.
    next_segment: usize,
}

impl MappedLogFile {
    /// Creates (or truncates) the log file at `path`.
    pub fn create(path: &Path) -> io::Result<MappedLogFile> {
        // A shared writable mapping needs the file open for reading too.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(MappedLogFile {
            file,
            map: None,
            segment_start: 0,
            len: 0,
            next_segment: FIRST_SEGMENT,
        })
    }

    /// Reserves and maps the segment that starts at the current length. Segment sizes are
    /// multiples of the page size, so every segment starts on a page boundary.
    fn start_segment(&mut self) -> io::Result<()> {
        let size = self.next_segment;
        reserve(&self.file, self.len, size as u64)?;
        // Unmap the full segment first: its dirty pages stay dirty in the page cache.
        self.map = None;
        // SAFETY: the mapped range lies inside the file (just reserved), which this handle
        // created and alone writes; readers of the log map it read-only and read only a prefix
        // that was appended before they looked. Another process truncating the file under us
        // is outside the contract, as for every mmap-based engine.
        let map = unsafe {
            MmapOptions::new()
                .offset(self.len)
                .len(size)
                .map_mut(&self.file)?
        };
        self.map = Some(map);
        self.segment_start = self.len;
        self.next_segment = (size * 2).min(MAX_SEGMENT);
        Ok(())
    }
}

/// Makes `offset..offset + len` of `file` allocated (and the file at least that long), so that
/// stores into a mapping of it cannot fail for lack of space.
fn reserve(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "log file too large",
        ));
    };
    // SAFETY: plain system call on an open descriptor we own; no memory is passed.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
        // A file system without fallocate: extend the file sparsely instead. A full disk then
        // shows up as SIGBUS on a store, as with any writable mapping there.
        return file.set_len((offset + len) as u64);
    }
    Err(e)
}

impl WritableFile for MappedLogFile {
    fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let at = (self.len - self.segment_start) as usize;
            let Some(map) = self.map.as_mut().filter(|m| at < m.len()) else {
                self.start_segment()?;
                continue;
            };
            let n = (map.len() - at).min(data.len());
            map[at..at + n].copy_from_slice(&data[..n]);
            self.len += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl Drop for MappedLogFile {
    fn drop(&mut self) {
        self.map = None;
        // Leave no zero tail behind a cleanly closed log (the reader would skip it anyway).
        if let Err(e) = self.file.set_len(self.len) {
            tracing::warn!(error = %e, "truncating a log file to its length failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{LogReader, LogWriter, WalRecoveryMode};

    fn records(n: usize) -> Vec<Vec<u8>> {
        // Sizes from a few bytes to several blocks, so records cross blocks and segments.
        (0..n)
            .map(|i| vec![(i % 251) as u8; (i * 7919) % 100_000 + 1])
            .collect()
    }

    fn read_back(path: &Path) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(path).unwrap();
        let mut reader = LogReader::new(&bytes, "log".into(), WalRecoveryMode::TolerateTornTail);
        let mut out = Vec::new();
        while let Some(r) = reader.read_record().unwrap() {
            out.push(r.to_vec());
        }
        assert!(reader.dropped().is_none());
        out
    }

    /// A mapped log at `path` holding `records`, each flushed, still open.
    fn write_log(path: &Path, records: &[Vec<u8>]) -> LogWriter {
        let mut w = LogWriter::new(Box::new(MappedLogFile::create(path).unwrap()));
        for r in records {
            w.add_record(r).unwrap();
            w.flush().unwrap();
        }
        w
    }

    #[test]
    fn appends_cross_segments_and_a_closed_file_has_exactly_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let want = records(400);
        let mut w = write_log(&path, &want);
        let len = w.offset();
        assert!(
            len > 3 * MAX_SEGMENT as u64,
            "the test crosses several segments: {len}"
        );
        w.sync().unwrap();
        drop(w);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
        assert_eq!(read_back(&path), want);
    }

    #[test]
    fn a_file_left_without_closing_ends_in_zeros_that_read_as_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.log");
        let want = records(30);
        let w = write_log(&path, &want);
        let len = w.offset();
        // What a killed process leaves: no truncation, the rest of the segment reserved.
        std::mem::forget(w);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size > len, "{size} > {len}");
        assert_eq!(read_back(&path), want);
    }

    #[test]
    fn an_empty_log_is_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut f = MappedLogFile::create(&path).unwrap();
        f.flush().unwrap();
        f.sync().unwrap();
        drop(f);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}
