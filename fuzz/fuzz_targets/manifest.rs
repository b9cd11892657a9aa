//! MANIFEST decoding: the bytes as a log whose records are version edits, and the bytes as one
//! edit. Whatever decodes must re-encode to an edit that decodes equal (and re-encodes to the
//! same bytes: the encoding is canonical once decoded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::version::VersionEdit;
use strata::wal::{LogReader, WalRecoveryMode};

fn check_edit(bytes: &[u8]) {
    let Ok(edit) = VersionEdit::decode(bytes) else { return };
    let mut enc = Vec::new();
    edit.encode(&mut enc);
    let again = VersionEdit::decode(&enc).expect("re-encoded edit must decode");
    assert_eq!(edit, again, "edit changed through encode/decode");
    let mut enc2 = Vec::new();
    again.encode(&mut enc2);
    assert_eq!(enc, enc2, "encoding is not stable");
}

fuzz_target!(|data: &[u8]| {
    check_edit(data);
    for mode in [WalRecoveryMode::TolerateTornTail, WalRecoveryMode::PointInTime] {
        let mut reader = LogReader::new(data, "MANIFEST-000001".into(), mode);
        for _ in 0..=data.len() {
            match reader.read_record_cow() {
                Ok(Some(record)) => check_edit(&record),
                Ok(None) | Err(_) => break,
            }
        }
    }
});
