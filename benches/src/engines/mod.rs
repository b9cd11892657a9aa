//! [`KvEngine`](crate::engine::KvEngine) implementations, one file per engine.

pub mod fjall;
#[cfg(feature = "rocksdb")]
pub mod rocksdb;
pub mod strata;
