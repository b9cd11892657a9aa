//! Caches shared by all open tables.

pub mod block_cache;

pub use block_cache::BlockCache;
