//! Appends logical records to a log file, fragmenting them across 32 KiB blocks.

use crate::error::{Error, Result};
use crate::fs::WritableFile;

use super::format::{encode_header, RecordType, BLOCK_SIZE, HEADER_SIZE};

/// Writes records in the log format ([`super::format`]) to a freshly created file.
///
/// The writer assumes the file is empty when it is handed over: block boundaries are computed
/// from offset 0.
///
/// After any I/O error (append, flush or sync) the writer is *poisoned*: the file may hold a
/// partial record, and after a failed `fsync` the kernel may have dropped dirty pages, so every
/// later call fails with [`Error::Poisoned`] instead of appending behind bytes of unknown state.
/// The owner must switch to a new log file (or reopen the database).
pub struct LogWriter {
    file: Box<dyn WritableFile>,
    /// Bytes handed to `file` so far, including block trailers.
    offset: u64,
    /// First I/O error seen; set forever once set.
    poisoned: Option<String>,
}

impl LogWriter {
    /// Starts a log at offset 0 of `file`.
    pub fn new(file: Box<dyn WritableFile>) -> Self {
        LogWriter {
            file,
            offset: 0,
            poisoned: None,
        }
    }

    /// Appends one logical record (any length, including zero). The bytes may sit in a user-space
    /// buffer until [`flush`](Self::flush) or [`sync`](Self::sync).
    pub fn add_record(&mut self, payload: &[u8]) -> Result<()> {
        self.check_poisoned()?;
        let result = self.emit_record(payload);
        self.poison_on_error(result)
    }

    /// Hands buffered bytes to the operating system (survives a process crash, not power loss).
    pub fn flush(&mut self) -> Result<()> {
        self.check_poisoned()?;
        let result = self.file.flush().map_err(Error::from);
        self.poison_on_error(result)
    }

    /// Makes every record added so far durable.
    pub fn sync(&mut self) -> Result<()> {
        self.check_poisoned()?;
        let result = self.file.sync().map_err(Error::from);
        self.poison_on_error(result)
    }

    /// Bytes written to the file so far (records, headers and block trailers).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn emit_record(&mut self, payload: &[u8]) -> Result<()> {
        let mut rest = payload;
        let mut first = true;
        // A do-while: a zero-length record still emits one (empty) FULL fragment.
        loop {
            let block_offset = (self.offset % BLOCK_SIZE as u64) as usize;
            let leftover = BLOCK_SIZE - block_offset;
            if leftover < HEADER_SIZE {
                const ZEROS: [u8; HEADER_SIZE] = [0; HEADER_SIZE];
                self.append(&ZEROS[..leftover])?;
                continue;
            }
            let available = leftover - HEADER_SIZE;
            let (fragment, tail) = rest.split_at(rest.len().min(available));
            let last = tail.is_empty();
            let kind = match (first, last) {
                (true, true) => RecordType::Full,
                (true, false) => RecordType::First,
                (false, true) => RecordType::Last,
                (false, false) => RecordType::Middle,
            };
            self.append(&encode_header(kind, fragment))?;
            self.append(fragment)?;
            rest = tail;
            first = false;
            if last {
                return Ok(());
            }
        }
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.append(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    fn poison_on_error(&mut self, result: Result<()>) -> Result<()> {
        if let Err(e) = &result {
            self.poisoned = Some(format!("log write failed: {e}"));
        }
        result
    }
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("offset", &self.offset)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}
