//! An open, immutable table: footer, properties, index and filter are parsed and verified at
//! open and held in memory; data blocks are read on demand, verified, and shared through the
//! optional [`BlockCache`].

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::fs::ReadableFile;
use crate::iter::InternalIterator;
use crate::key;

use super::block::{Block, BlockIter};
use super::filter::filter_may_contain;
use super::format::{decode_block_contents, BlockHandle, Footer, FOOTER_LEN};
use super::properties::TableProperties;
use super::table_file_name;

/// Source of process-unique cache ids: a table's cache keys never alias another table's, even
/// when a file number is reused or the same file is opened twice.
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// An open table file. `Send + Sync`; share it as `Arc<Table>`.
pub struct Table {
    file: Arc<dyn ReadableFile>,
    file_name: String,
    cache_id: u64,
    cache: Option<Arc<BlockCache>>,
    footer: Footer,
    /// Start of the footer: every block must end at or before it.
    footer_offset: u64,
    index: Arc<Block>,
    filter: Option<Vec<u8>>,
    properties: TableProperties,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("file", &self.file_name)
            .field("cache_id", &self.cache_id)
            .field("footer", &self.footer)
            .finish_non_exhaustive()
    }
}

impl Table {
    /// Opens a table: parses and verifies the footer, properties, index and filter.
    /// `file_number` names the file (`{:06}.sst`) in corruption errors.
    pub fn open(
        file: Arc<dyn ReadableFile>,
        file_number: u64,
        cache: Option<Arc<BlockCache>>,
    ) -> Result<Arc<Table>> {
        let file_name = table_file_name(file_number);
        let bytes = file.bytes();
        let len = bytes.len();
        let footer_offset = len.checked_sub(FOOTER_LEN).ok_or_else(|| {
            Error::corruption(0, format!("file of {len} bytes is too short for a table"))
                .in_file(&file_name, 0)
        })?;
        let footer = Footer::decode(&bytes[footer_offset..])
            .map_err(|e| e.in_file(&file_name, footer_offset as u64))?;

        let fo = footer_offset as u64;
        let read = |h: BlockHandle, what: &str| read_stored_block(bytes, fo, &file_name, h, what);
        let properties = TableProperties::decode(&read(footer.properties, "properties")?)
            .map_err(|e| e.in_file(&file_name, footer.properties.offset))?;
        let index = Block::new(read(footer.index, "index")?)
            .map_err(|e| e.in_file(&file_name, footer.index.offset))?;
        let filter = match footer.filter.size {
            0 => None,
            _ => Some(read(footer.filter, "filter")?),
        };
        Ok(Arc::new(Table {
            file_name,
            cache_id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            cache,
            footer,
            footer_offset: fo,
            index: Arc::new(index),
            filter,
            properties,
            file,
        }))
    }

    /// Returns the data block at `handle`, from the cache or read, verified and cached.
    fn data_block(&self, handle: BlockHandle) -> Result<Arc<Block>> {
        self.read_data_block(handle, true)
    }

    /// A data block, from the block cache if it is there; read from the file otherwise, and
    /// then kept in the cache only if `fill_cache`.
    fn read_data_block(&self, handle: BlockHandle, fill_cache: bool) -> Result<Arc<Block>> {
        let cache_key = (self.cache_id, handle.offset);
        if let Some(cache) = &self.cache {
            if let Some(block) = cache.get(cache_key) {
                return Ok(block);
            }
        }
        let contents = read_stored_block(
            self.file.bytes(),
            self.footer_offset,
            &self.file_name,
            handle,
            "data",
        )?;
        let block =
            Arc::new(Block::new(contents).map_err(|e| e.in_file(&self.file_name, handle.offset))?);
        if let Some(cache) = self.cache.as_ref().filter(|_| fill_cache) {
            cache.insert(cache_key, Arc::clone(&block));
        }
        Ok(block)
    }

    fn decode_index_value(&self, value: &[u8]) -> Result<BlockHandle> {
        BlockHandle::decode(value).map_err(|e| e.in_file(&self.file_name, self.footer.index.offset))
    }

    /// Bloom filter check on a user key: `false` means the table has no entry for it.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        match &self.filter {
            Some(f) => filter_may_contain(f, user_key),
            None => true,
        }
    }

    /// The first entry whose internal key is `>= target` (a seek key), if its user key equals
    /// `user_key`. Consults the filter first and reads at most one data block.
    pub fn get(&self, target: &[u8], user_key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        if !self.may_contain(user_key) {
            return Ok(None);
        }
        let mut index = self.index.iter();
        index.seek(target);
        if !index.valid() {
            index
                .status()
                .map_err(|e| e.in_file(&self.file_name, self.footer.index.offset))?;
            return Ok(None);
        }
        // The separator of block i is < every key of block i+1, so if block i has no entry
        // >= target, no later block has one with this user key either.
        let handle = self.decode_index_value(index.value())?;
        let block = self.data_block(handle)?;
        let mut it = block.iter();
        it.seek(target);
        if it.valid() {
            if key::user_key(it.key()) == user_key {
                return Ok(Some((it.key().to_vec(), it.value().to_vec())));
            }
            return Ok(None);
        }
        it.status()
            .map_err(|e| e.in_file(&self.file_name, handle.offset))?;
        Ok(None)
    }

    /// A two-level iterator over all entries (index block -> data blocks, loaded lazily).
    pub fn iter(self: &Arc<Self>) -> TableIterator {
        self.iter_with(true)
    }

    /// Like [`iter`](Self::iter), but blocks it reads from the file are not added to the block
    /// cache: for compactions, which read every block once (RocksDB's `fill_cache = false`).
    /// Filling the cache from them would evict what readers use and, allocated on the
    /// compaction thread, leave freed block memory stranded in that thread's malloc arena.
    pub fn iter_without_caching(self: &Arc<Self>) -> TableIterator {
        self.iter_with(false)
    }

    fn iter_with(self: &Arc<Self>, fill_cache: bool) -> TableIterator {
        TableIterator {
            index: self.index.iter(),
            table: Arc::clone(self),
            fill_cache,
            data: None,
            data_offset: 0,
            err: None,
        }
    }

    /// The table's properties.
    pub fn properties(&self) -> &TableProperties {
        &self.properties
    }

    /// The footer read at open.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The process-unique id under which this table's blocks are cached.
    pub fn cache_id(&self) -> u64 {
        self.cache_id
    }

    /// Bytes this open table holds in memory (index, filter, properties), for statistics.
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Table>()
            + self.index.size()
            + self.filter.as_ref().map_or(0, Vec::len)
            + self.properties.smallest_key.len()
            + self.properties.largest_key.len()
            + self.file_name.len()
    }
}

/// Verifies and decodes the block at `handle` of a file whose footer starts at `footer_offset`.
fn read_stored_block(
    bytes: &[u8],
    footer_offset: u64,
    file_name: &str,
    handle: BlockHandle,
    what: &str,
) -> Result<Vec<u8>> {
    let raw = handle
        .end_with_trailer()
        .filter(|&end| end <= footer_offset)
        .and_then(|end| bytes.get(usize::try_from(handle.offset).ok()?..usize::try_from(end).ok()?))
        .ok_or_else(|| {
            Error::corruption(
                handle.offset,
                format!(
                    "{what} block handle (offset {}, size {}) lies outside the {footer_offset} bytes before the footer",
                    handle.offset, handle.size
                ),
            )
            .in_file(file_name, 0)
        })?;
    let contents = decode_block_contents(raw).map_err(|e| e.in_file(file_name, handle.offset))?;
    Ok(match contents {
        Cow::Owned(v) => v,
        Cow::Borrowed(b) => super::block_buf::copy_of(b),
    })
}

/// Iterator over a whole table. Holds the table (and thus its file) alive.
pub struct TableIterator {
    table: Arc<Table>,
    index: BlockIter,
    /// Whether blocks read from the file go into the block cache.
    fill_cache: bool,
    data: Option<BlockIter>,
    /// File offset of the current data block, to name it in errors.
    data_offset: u64,
    err: Option<Error>,
}

impl TableIterator {
    fn fail(&mut self, e: Error) {
        self.data = None;
        self.err = Some(e);
    }

    /// Loads the data block the index iterator points at (or clears `data` at the end).
    fn load_data_block(&mut self) {
        self.data = None;
        if !self.index.valid() {
            if let Err(e) = self.index.status() {
                let e = e.in_file(&self.table.file_name, self.table.footer.index.offset);
                self.fail(e);
            }
            return;
        }
        let block = self
            .table
            .decode_index_value(self.index.value())
            .and_then(|h| Ok((h, self.table.read_data_block(h, self.fill_cache)?)));
        match block {
            Ok((h, block)) => {
                self.data_offset = h.offset;
                self.data = Some(block.iter());
            }
            Err(e) => self.fail(e),
        }
    }

    /// Moves past exhausted data blocks until positioned on an entry, at the end, or failed.
    fn skip_exhausted_blocks(&mut self) {
        loop {
            match &self.data {
                None => return,
                Some(d) if d.valid() => return,
                Some(d) => {
                    if let Err(e) = d.status() {
                        let e = e.in_file(&self.table.file_name, self.data_offset);
                        return self.fail(e);
                    }
                }
            }
            self.index.next();
            self.load_data_block();
            if let Some(d) = &mut self.data {
                d.seek_to_first();
            }
        }
    }
}

impl InternalIterator for TableIterator {
    fn valid(&self) -> bool {
        self.err.is_none() && self.data.as_ref().is_some_and(|d| d.valid())
    }

    fn seek_to_first(&mut self) {
        self.err = None;
        self.index.seek_to_first();
        self.load_data_block();
        if let Some(d) = &mut self.data {
            d.seek_to_first();
        }
        self.skip_exhausted_blocks();
    }

    fn seek(&mut self, target: &[u8]) {
        self.err = None;
        self.index.seek(target);
        self.load_data_block();
        if let Some(d) = &mut self.data {
            d.seek(target);
        }
        self.skip_exhausted_blocks();
    }

    fn next(&mut self) {
        if let Some(d) = &mut self.data {
            d.next();
            self.skip_exhausted_blocks();
        }
    }

    fn key(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], |d| d.key())
    }

    fn value(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], |d| d.value())
    }

    fn status(&self) -> Result<()> {
        match &self.err {
            None => Ok(()),
            Some(e) => Err(e.duplicate()),
        }
    }
}
