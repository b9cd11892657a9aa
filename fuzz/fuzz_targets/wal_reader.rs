//! Arbitrary bytes as a log file (WAL or MANIFEST), read in both recovery modes.
//!
//! Properties beyond "never panics, always terminates":
//! - the records returned never hold more bytes than the file (nothing invented);
//! - both modes return the same records; they differ only in how reading ends
//!   (`Err(Corruption)` vs `Ok(None)` + `dropped()`), and PointInTime never fails;
//! - an error repeats on the next call, and the end of the log stays the end;
//! - `dropped()` describes a suffix of the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::wal::{LogReader, WalRecoveryMode};

/// Records read until the log ended; `true` if it ended with an error.
fn read_all(data: &[u8], mode: WalRecoveryMode, cow: bool) -> (Vec<Vec<u8>>, bool) {
    let mut reader = LogReader::new(data, "fuzz.log".into(), mode);
    let mut records = Vec::new();
    let mut total = 0usize;
    loop {
        // Each record takes at least a 7-byte header, so more calls than bytes means a loop.
        assert!(records.len() <= data.len(), "reader does not make progress");
        let next = if cow {
            reader.read_record_cow().map(|r| r.map(|c| c.into_owned()))
        } else {
            reader.read_record()
        };
        match next {
            Ok(Some(r)) => {
                total += r.len();
                assert!(total <= data.len(), "records hold {total} bytes of a {}-byte file", data.len());
                assert!(reader.last_record_offset() < data.len() as u64);
                records.push(r);
            }
            Ok(None) => {
                assert!(matches!(reader.read_record(), Ok(None)), "end of log is not sticky");
                if let Some(d) = reader.dropped() {
                    assert!(d.offset <= data.len() as u64);
                    assert_eq!(d.offset + d.bytes, data.len() as u64);
                }
                return (records, false);
            }
            Err(e) => {
                assert!(
                    matches!(e, strata::Error::Corruption { .. }),
                    "unexpected error kind: {e:?}"
                );
                assert!(reader.read_record().is_err(), "error is not sticky");
                return (records, true);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (strict, strict_failed) = read_all(data, WalRecoveryMode::TolerateTornTail, false);
    let (pit, pit_failed) = read_all(data, WalRecoveryMode::PointInTime, true);
    assert!(!pit_failed, "PointInTime must not fail");
    let _ = strict_failed;
    assert_eq!(strict, pit, "recovery modes disagree on the records before the damage");
});
