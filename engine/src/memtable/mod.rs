//! The memtable's building blocks: an arena that owns node memory and a concurrent skiplist
//! (serialized writers, lock-free readers) ordered by a pluggable key comparator.

pub mod arena;
pub mod skiplist;
