//! Helpers shared by the engine's integration tests. Each test file declares `mod common;` and
//! uses the modules it needs.
#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;

use strata::{Db, WriteBatch};

pub mod crash;
pub mod damage;
pub mod log_records;

/// The expected contents of a database.
pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// A batch as written: `None` is a deletion.
pub type Batch = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Applies a batch to the model.
pub fn apply(model: &mut Model, batch: &Batch) {
    for (k, v) in batch {
        match v {
            Some(v) => model.insert(k.clone(), v.clone()),
            None => model.remove(k),
        };
    }
}

/// The engine batch that writes `batch`.
pub fn to_write_batch(batch: &Batch) -> WriteBatch {
    let mut wb = WriteBatch::new();
    for (k, v) in batch {
        match v {
            Some(v) => wb.put(k, v),
            None => wb.delete(k),
        };
    }
    wb
}

/// Everything in the database.
pub fn contents(db: &Db) -> Model {
    db.scan::<&[u8]>(..).collect::<Result<_, _>>().unwrap()
}
