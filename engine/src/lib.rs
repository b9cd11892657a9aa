//! Strata: an embeddable LSM-tree key-value storage engine.
//!
//! Writes go to a write-ahead log (group-committed, optionally synced) and an in-memory skiplist;
//! full memtables are flushed by a background thread into immutable, checksummed, optionally
//! lz4-compressed SSTables with Bloom filters, read through `mmap`. A MANIFEST records which
//! tables make up the database. Every write batch gets consecutive sequence numbers, which gives
//! atomic batches and point-in-time snapshots.
//!
//! ```
//! use strata::{Db, Options, ReadOptions, WriteBatch, WriteOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let db = Db::open(dir.path(), Options::create())?;
//!
//! db.put(b"user:1", b"ada")?;
//! let mut batch = WriteBatch::new();
//! batch.put(b"user:2", b"grace").put(b"user:3", b"edsger").delete(b"user:1");
//! db.write_opt(batch, &WriteOptions { sync: true })?;
//!
//! let snap = db.snapshot()?;
//! db.put(b"user:2", b"hopper")?;
//! assert_eq!(db.get(b"user:2")?.as_deref(), Some(&b"hopper"[..]));
//! assert_eq!(db.get_opt(b"user:2", &ReadOptions::at(&snap))?.as_deref(), Some(&b"grace"[..]));
//!
//! let keys: Vec<Vec<u8>> = db
//!     .scan(b"user:".to_vec()..b"user;".to_vec())
//!     .map(|kv| kv.map(|(k, _)| k))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(keys, vec![b"user:2".to_vec(), b"user:3".to_vec()]);
//!
//! db.close()?;
//! let db = Db::open(dir.path(), Options::default())?; // reopen: the WAL is replayed
//! assert_eq!(db.get(b"user:3")?.as_deref(), Some(&b"edsger"[..]));
//! # Ok::<(), strata::Error>(())
//! ```
//!
//! Limits: keys up to [`MAX_KEY_SIZE`] (64 KiB), values up to [`MAX_VALUE_SIZE`] (16 MiB);
//! larger ones are refused with [`Error::InvalidArgument`]. On-disk formats are described in
//! `FORMAT.md` beside this crate.

#![warn(missing_docs)]

/// Declares engine-internal modules: public with the `bench-internals` cargo feature (for the
/// micro-benchmarks in `benches/` and the fuzz targets, which drive the parts directly; not a
/// stable API), crate-private otherwise.
macro_rules! internal_mods {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "bench-internals")]
        pub mod $name;
        #[cfg(not(feature = "bench-internals"))]
        #[allow(dead_code, unused_imports)]
        mod $name;
    )*};
}

internal_mods!(
    cache,
    compaction,
    filename,
    iter,
    key,
    memtable,
    range_del,
    sstable,
    table_cache,
    version,
    wal,
);

pub mod coding;
mod db;
pub mod error;
pub mod fs;
pub mod options;
mod snapshot;
mod stats;
pub mod write_batch;

pub use db::Db;
pub use error::{Error, Result};
pub use iter::DbIterator;
pub use options::{Compression, Options, ReadOptions, WalRecoveryMode, WriteOptions};
pub use snapshot::Snapshot;
pub use stats::Stats;
pub use write_batch::{WriteBatch, MAX_KEY_SIZE, MAX_VALUE_SIZE};
