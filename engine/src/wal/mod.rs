//! The log: an append-only file of checksummed records in 32 KiB blocks (LevelDB's log format),
//! used both as the write-ahead log and as the MANIFEST.
//!
//! - [`format`](mod@format): the bytes of one physical record (layout drawn there and in `FORMAT.md`);
//! - [`LogWriter`]: fragments logical records into FULL / FIRST / MIDDLE / LAST records;
//! - [`LogReader`]: reassembles them and applies the recovery contract of
//!   [`WalRecoveryMode`]: a torn record at the very tail is dropped (and reported through
//!   [`LogReader::dropped`]); damage followed by more data is
//!   [`Error::Corruption`](crate::Error::Corruption), unless the caller opted into point-in-time recovery.
//!
//! ```
//! use std::path::Path;
//! use strata::fs::{fault::FaultFs, FileSystem};
//! use strata::wal::{LogReader, LogWriter, WalRecoveryMode};
//!
//! # fn main() -> strata::Result<()> {
//! let fs = FaultFs::new();
//! fs.create_dir_all(Path::new("/db"))?;
//! let mut log = LogWriter::new(fs.create(Path::new("/db/000001.log"))?);
//! log.add_record(b"first")?;
//! log.add_record(&vec![7u8; 100_000])?; // spans several 32 KiB blocks
//! log.sync()?;
//!
//! let file = fs.open(Path::new("/db/000001.log"))?;
//! let mut reader = LogReader::new(file.bytes(), "000001.log".into(), WalRecoveryMode::default());
//! assert_eq!(reader.read_record()?.as_deref(), Some(&b"first"[..]));
//! assert_eq!(reader.read_record()?.map(|r| r.len()), Some(100_000));
//! assert_eq!(reader.read_record()?, None);
//! assert_eq!(reader.dropped(), None);
//! # Ok(())
//! # }
//! ```

pub mod format;
mod reader;
mod writer;

pub use reader::{DropReason, DroppedTail, LogReader, WalRecoveryMode};
pub use writer::LogWriter;

#[cfg(test)]
pub(crate) mod testing {
    //! A `WritableFile` over a shared `Vec`, so tests can look at the bytes a writer produced.

    use std::io;
    use std::sync::Arc;

    use parking_lot::Mutex;

    use crate::fs::WritableFile;

    /// Appends into a shared buffer; `fail_after` appends, every append fails.
    pub(crate) struct VecFile {
        pub(crate) buf: Arc<Mutex<Vec<u8>>>,
        pub(crate) fail_after: Option<usize>,
    }

    impl WritableFile for VecFile {
        fn append(&mut self, data: &[u8]) -> io::Result<()> {
            if let Some(n) = self.fail_after.as_mut() {
                if *n == 0 {
                    return Err(io::Error::other("injected write failure"));
                }
                *n -= 1;
            }
            self.buf.lock().extend_from_slice(data);
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The bytes of a log holding `records`, and the end offset of each record.
    pub(crate) fn encode_log<R: AsRef<[u8]>>(records: &[R]) -> (Vec<u8>, Vec<usize>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let mut w = super::LogWriter::new(Box::new(VecFile {
            buf: buf.clone(),
            fail_after: None,
        }));
        let mut ends = Vec::new();
        for r in records {
            w.add_record(r.as_ref()).expect("in-memory append");
            ends.push(w.offset() as usize);
        }
        let bytes = buf.lock().clone();
        assert_eq!(bytes.len() as u64, w.offset());
        (bytes, ends)
    }
}
