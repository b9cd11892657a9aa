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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;
    use crate::wal::format::{decode_physical, Physical, MAX_FRAGMENT};
    use crate::wal::testing::{encode_log, VecFile};

    /// The physical records of a log as (offset, type, payload length), walking block trailers.
    fn physical_records(data: &[u8]) -> Vec<(usize, RecordType, usize)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            if BLOCK_SIZE - pos % BLOCK_SIZE < HEADER_SIZE {
                let trailer_end = (pos / BLOCK_SIZE + 1) * BLOCK_SIZE;
                assert!(data[pos..trailer_end.min(data.len())]
                    .iter()
                    .all(|&b| b == 0));
                pos = trailer_end;
                continue;
            }
            match decode_physical(data, pos) {
                Physical::Good { kind, payload, end } => {
                    out.push((pos, kind, payload.len()));
                    pos = end;
                }
                bad => panic!("writer produced a bad record at {pos}: {bad:?}"),
            }
        }
        out
    }

    #[test]
    fn empty_record_is_one_empty_full() {
        let (data, ends) = encode_log(&[b""]);
        assert_eq!(ends, vec![HEADER_SIZE]);
        assert_eq!(physical_records(&data), vec![(0, RecordType::Full, 0)]);
    }

    #[test]
    fn record_filling_a_block_exactly_is_one_full() {
        let (data, ends) = encode_log(&[vec![1u8; MAX_FRAGMENT], vec![2u8; 3]]);
        assert_eq!(ends, vec![BLOCK_SIZE, BLOCK_SIZE + HEADER_SIZE + 3]);
        assert_eq!(
            physical_records(&data),
            vec![
                (0, RecordType::Full, MAX_FRAGMENT),
                (BLOCK_SIZE, RecordType::Full, 3)
            ]
        );
    }

    #[test]
    fn fewer_than_header_bytes_left_are_zero_padded() {
        for left in 1..HEADER_SIZE {
            let first = BLOCK_SIZE - HEADER_SIZE - left;
            let (data, ends) = encode_log(&[vec![1u8; first], vec![2u8; 5]]);
            assert_eq!(ends[0], BLOCK_SIZE - left);
            assert_eq!(ends[1], BLOCK_SIZE + HEADER_SIZE + 5, "left={left}");
            assert!(data[BLOCK_SIZE - left..BLOCK_SIZE].iter().all(|&b| b == 0));
            assert_eq!(
                physical_records(&data)[1],
                (BLOCK_SIZE, RecordType::Full, 5)
            );
        }
    }

    #[test]
    fn exactly_header_bytes_left_hold_an_empty_first_or_an_empty_full() {
        let first = BLOCK_SIZE - 2 * HEADER_SIZE;
        let (data, _) = encode_log(&[vec![1u8; first], vec![2u8; 5]]);
        assert_eq!(
            physical_records(&data)[1..],
            [
                (BLOCK_SIZE - HEADER_SIZE, RecordType::First, 0),
                (BLOCK_SIZE, RecordType::Last, 5)
            ]
        );
        let (data, ends) = encode_log(&[vec![1u8; first], vec![]]);
        assert_eq!(ends[1], BLOCK_SIZE);
        assert_eq!(
            physical_records(&data)[1],
            (BLOCK_SIZE - HEADER_SIZE, RecordType::Full, 0)
        );
    }

    #[test]
    fn large_record_is_first_middles_last() {
        let len = 3 * MAX_FRAGMENT + 10;
        let (data, ends) = encode_log(&[vec![9u8; len]]);
        assert_eq!(ends, vec![3 * BLOCK_SIZE + HEADER_SIZE + 10]);
        let kinds: Vec<_> = physical_records(&data).iter().map(|r| (r.1, r.2)).collect();
        assert_eq!(
            kinds,
            vec![
                (RecordType::First, MAX_FRAGMENT),
                (RecordType::Middle, MAX_FRAGMENT),
                (RecordType::Middle, MAX_FRAGMENT),
                (RecordType::Last, 10)
            ]
        );
    }

    #[test]
    fn offset_counts_every_byte_written() {
        let sizes = [0usize, 1, 100, MAX_FRAGMENT, 70_000, 5, BLOCK_SIZE - 20];
        let records: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0xab; n]).collect();
        let (data, ends) = encode_log(&records);
        assert_eq!(*ends.last().unwrap(), data.len());
        physical_records(&data);
    }

    #[test]
    fn io_error_poisons_the_writer() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let mut w = LogWriter::new(Box::new(VecFile {
            buf: buf.clone(),
            fail_after: Some(3),
        }));
        w.add_record(b"ok").unwrap(); // header + payload: 2 appends
        let err = w.add_record(b"torn").unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{err:?}");
        // The header of "torn" went out without its payload; nothing may follow it.
        assert!(matches!(w.add_record(b"more"), Err(Error::Poisoned(_))));
        assert!(matches!(w.sync(), Err(Error::Poisoned(_))));
        assert!(matches!(w.flush(), Err(Error::Poisoned(_))));
        assert_eq!(buf.lock().len(), HEADER_SIZE + 2 + HEADER_SIZE);
    }
}
