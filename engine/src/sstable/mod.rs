//! Sorted string tables: immutable files of sorted internal keys, the unit of on-disk storage.
//!
//! A table is a sequence of data blocks (prefix-compressed entries with restart points, each
//! optionally lz4-compressed and checksummed), a Bloom filter over all user keys, an index block
//! with one separator key per data block, a properties block and a fixed 64-byte footer. The byte
//! layouts are drawn at the top of each format file and written down in `engine/FORMAT.md`.
//!
//! - [`block_builder`] / [`block`]: the block format and its iterator;
//! - [`format`](mod@format): block handles, block trailer and compression, footer;
//! - [`filter`]: the Bloom filter;
//! - [`properties`]: the properties block;
//! - [`builder`]: [`TableBuilder`], which writes a table;
//! - [`table`]: [`Table`], an open table, and [`TableIterator`].
//!
//! Every read path verifies checksums and bounds and reports bad bytes as
//! [`Error::Corruption`](crate::Error::Corruption) naming the file and offset; decoders never
//! panic and never allocate more than a bound derived from their input.

pub mod block;
pub mod block_buf;
pub mod block_builder;
pub mod builder;
pub mod filter;
pub mod format;
pub mod properties;
pub mod table;

#[cfg(test)]
mod tests;

pub use block::{Block, BlockIter};
pub use block_builder::BlockBuilder;
pub use builder::{TableBuilder, TableBuilderOptions, TableSummary, MAX_ENTRY_LEN};
pub use filter::{bloom_hash, filter_hash, filter_may_contain, BloomFilterBuilder};
pub use format::{
    decode_block_contents, BlockHandle, Compression, Footer, BLOCK_TRAILER_LEN, FOOTER_LEN,
    TABLE_MAGIC,
};
pub use properties::TableProperties;
pub use table::{Table, TableIterator};

/// The file name of table number `n`, as used in error messages and by the database directory.
pub fn table_file_name(n: u64) -> String {
    format!("{n:06}.sst")
}
