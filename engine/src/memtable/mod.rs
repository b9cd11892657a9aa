//! The memtable: recent writes in an arena skiplist (serialized writers, lock-free readers),
//! wrapped as [`MemTable`] with internal-key ordering and snapshot-aware lookups.

pub mod arena;
pub mod filter;
pub mod mem;
pub mod skiplist;

pub use mem::{MemTable, MemTableIterator};
