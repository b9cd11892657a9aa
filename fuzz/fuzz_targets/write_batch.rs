//! Write-batch records as found in the WAL: `BatchReader` over arbitrary bytes.
//!
//! Beyond no panics: the reader yields at most the claimed count of updates, stops for good after
//! an error, its keys and values are slices of the input, and a batch that reads cleanly
//! re-encodes (through `WriteBatch`) to updates that read back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::write_batch::{BatchOp, BatchReader};
use strata::WriteBatch;

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = BatchReader::new(data) else {
        assert!(data.len() < 12, "a 12-byte header must parse");
        return;
    };
    let claimed = reader.claimed_count();
    let mut ops = Vec::new();
    let mut failed = false;
    let mut bytes = 0usize;
    let mut reader = reader;
    for op in reader.by_ref() {
        assert!(!failed, "reader continued after an error");
        match op {
            Ok(op) => {
                bytes += match op {
                    BatchOp::Put(k, v) | BatchOp::DeleteRange(k, v) => k.len() + v.len(),
                    BatchOp::Delete(k) => k.len(),
                };
                assert!(bytes <= data.len(), "updates hold more bytes than the record");
                ops.push(op);
            }
            Err(_) => failed = true,
        }
        assert!(ops.len() <= claimed as usize, "more updates than claimed");
    }
    assert!(reader.next().is_none(), "reader resumed after its end");
    if failed {
        return;
    }
    assert_eq!(ops.len(), claimed as usize);
    // A clean batch round-trips through the public builder.
    let mut batch = WriteBatch::new();
    for op in &ops {
        match op {
            BatchOp::Put(k, v) => batch.put(k, v),
            BatchOp::Delete(k) => batch.delete(k),
            BatchOp::DeleteRange(start, end) => batch.delete_range(start, end),
        };
    }
    assert_eq!(batch.count(), claimed);
    let rebuilt: Vec<BatchOp<'_>> = batch.iter().collect();
    assert_eq!(rebuilt.len(), ops.len());
    for (a, b) in rebuilt.iter().zip(&ops) {
        assert!(same(a, b), "batch changed through re-encoding");
    }
});

fn same(a: &BatchOp<'_>, b: &BatchOp<'_>) -> bool {
    match (a, b) {
        (BatchOp::Put(k1, v1), BatchOp::Put(k2, v2)) => k1 == k2 && v1 == v2,
        (BatchOp::Delete(k1), BatchOp::Delete(k2)) => k1 == k2,
        (BatchOp::DeleteRange(s1, e1), BatchOp::DeleteRange(s2, e2)) => s1 == s2 && e1 == e2,
        _ => false,
    }
}
