//! Writes a table file: data blocks as entries arrive, then filter, index, properties and footer
//! (layout in [`format`](super::format)).
//!
//! Index entries are written lazily: when block *i* is cut, its separator is chosen only once the
//! first key of block *i+1* is known, so it can be shortened to any key `k` with
//! `last(i) <= k < first(i+1)`.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::fs::WritableFile;
use crate::key::{self, ValueKind, KIND_FOR_SEEK, MAX_SEQNO, TRAILER_LEN};

use super::block_builder::BlockBuilder;
use super::filter::BloomFilterBuilder;
use super::format::{block_trailer, BlockCompressor, BlockHandle, Compression, Footer};
use super::properties::TableProperties;

/// Largest `key.len() + value.len()` one entry may have; keeps every block well below the 4 GiB
/// that its u32 offsets can address.
pub const MAX_ENTRY_LEN: usize = 1 << 30;

/// How a table is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableBuilderOptions {
    /// Target uncompressed size of a data block (a block is cut once it reaches this).
    pub block_size: usize,
    /// Entries between restart points in data blocks.
    pub block_restart_interval: usize,
    /// Bloom filter bits per user key; 0 writes no filter.
    pub bloom_bits_per_key: u32,
    /// Compression for data and index blocks.
    pub compression: Compression,
}

impl Default for TableBuilderOptions {
    fn default() -> Self {
        TableBuilderOptions {
            block_size: 4096,
            block_restart_interval: 16,
            bloom_bits_per_key: 10,
            compression: Compression::Lz4,
        }
    }
}

/// What [`TableBuilder::finish`] wrote.
#[derive(Clone, Debug)]
pub struct TableSummary {
    /// Size of the finished file in bytes.
    pub file_size: u64,
    /// The properties stored in the file (key range, seqno range, counts, sizes).
    pub properties: TableProperties,
}

/// Streams sorted entries into a new table file.
pub struct TableBuilder {
    opts: TableBuilderOptions,
    out: BlockWriter,
    data_block: BlockBuilder,
    index_block: BlockBuilder,
    filter: Option<BloomFilterBuilder>,
    /// The last key added (the largest so far).
    last_key: Vec<u8>,
    /// Handle of the last data block written, whose index entry still waits for the next key.
    pending_handle: Option<BlockHandle>,
    props: TableProperties,
}

/// The output side of a table builder: the file, where the next block goes, and the
/// compressor's reusable state. Kept apart from the block builders so that a finished block is
/// written straight from its builder's buffer.
struct BlockWriter {
    file: Box<dyn WritableFile>,
    offset: u64,
    /// Set after an I/O error: the file's contents are unknown, so nothing more is written.
    failed: bool,
    compressor: BlockCompressor,
}

impl TableBuilder {
    /// Starts a table that will be written to `file`.
    pub fn new(opts: TableBuilderOptions, file: Box<dyn WritableFile>) -> Self {
        let filter =
            (opts.bloom_bits_per_key > 0).then(|| BloomFilterBuilder::new(opts.bloom_bits_per_key));
        TableBuilder {
            data_block: BlockBuilder::new(opts.block_restart_interval),
            index_block: BlockBuilder::new(1),
            props: TableProperties {
                compression: opts.compression,
                bloom_bits_per_key: opts.bloom_bits_per_key,
                ..TableProperties::default()
            },
            opts,
            out: BlockWriter {
                file,
                offset: 0,
                failed: false,
                compressor: BlockCompressor::default(),
            },
            filter,
            last_key: Vec::new(),
            pending_handle: None,
        }
    }

    /// Adds an entry. Keys must be internal keys in strictly increasing
    /// [`compare_internal_keys`](crate::key::compare_internal_keys) order; anything else is
    /// rejected with `Error::InvalidArgument` and leaves the builder unchanged.
    pub fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        self.check_usable()?;
        if ikey.len() < TRAILER_LEN {
            return Err(Error::InvalidArgument(format!(
                "table key of {} bytes is shorter than an internal key trailer",
                ikey.len()
            )));
        }
        if ikey.len().saturating_add(value.len()) > MAX_ENTRY_LEN {
            return Err(Error::InvalidArgument(format!(
                "table entry of {} bytes exceeds {MAX_ENTRY_LEN}",
                ikey.len().saturating_add(value.len())
            )));
        }
        if self.props.num_entries > 0
            && key::compare_internal_keys(ikey, &self.last_key) != Ordering::Greater
        {
            return Err(Error::InvalidArgument(
                "table keys must be added in strictly increasing internal-key order".into(),
            ));
        }

        if let Some(handle) = self.pending_handle.take() {
            let sep = shortest_separator(&self.last_key, ikey);
            self.index_block.add(&sep, &handle.encode());
        }
        let user_key = key::user_key(ikey);
        if let Some(f) = &mut self.filter {
            // Consecutive versions of one user key need only one filter entry.
            if self.props.num_entries == 0 || key::user_key(&self.last_key) != user_key {
                f.add_key(user_key);
            }
        }

        let trailer = key::trailer(ikey);
        let seq = trailer >> 8;
        let p = &mut self.props;
        if p.num_entries == 0 {
            p.smallest_key = ikey.to_vec();
            p.min_seqno = seq;
            p.max_seqno = seq;
        } else {
            p.min_seqno = p.min_seqno.min(seq);
            p.max_seqno = p.max_seqno.max(seq);
        }
        p.num_entries += 1;
        if trailer as u8 == ValueKind::Deletion as u8 {
            p.num_deletions += 1;
        }
        p.raw_key_size += ikey.len() as u64;
        p.raw_value_size += value.len() as u64;
        self.last_key.clear();
        self.last_key.extend_from_slice(ikey);

        self.data_block.add(ikey, value);
        if self.data_block.current_size_estimate() >= self.opts.block_size {
            self.flush_data_block()?;
        }
        Ok(())
    }

    /// Entries added so far.
    pub fn num_entries(&self) -> u64 {
        self.props.num_entries
    }

    /// Bytes written so far plus the unfinished data block (meta blocks not included).
    pub fn estimated_file_size(&self) -> u64 {
        self.out.offset + self.data_block.current_size_estimate() as u64
    }

    /// Writes the last data block, filter, index, properties and footer, syncs the file and
    /// returns what was written.
    pub fn finish(mut self) -> Result<TableSummary> {
        self.check_usable()?;
        self.flush_data_block()?;
        self.props.data_size = self.out.offset;
        if let Some(handle) = self.pending_handle.take() {
            let sep = short_successor(&self.last_key);
            self.index_block.add(&sep, &handle.encode());
        }
        self.props.largest_key = self.last_key.clone();

        let filter_handle = match self.filter.take() {
            Some(f) => {
                let bytes = f.finish();
                self.out.write_block(&bytes, Compression::None)?
            }
            None => BlockHandle::default(),
        };
        self.props.filter_size = self.out.offset - self.props.data_size;

        let index_start = self.out.offset;
        let index_handle = self
            .out
            .write_block(self.index_block.finish(), self.opts.compression)?;
        self.props.index_size = self.out.offset - index_start;

        let props_handle = self.out.write_block(&self.props.encode(), Compression::None)?;
        let footer = Footer {
            index: index_handle,
            filter: filter_handle,
            properties: props_handle,
        };
        self.out.append(&footer.encode())?;
        if let Err(e) = self.out.file.sync() {
            self.out.failed = true;
            return Err(e.into());
        }
        Ok(TableSummary {
            file_size: self.out.offset,
            properties: self.props,
        })
    }

    fn check_usable(&self) -> Result<()> {
        if self.out.failed {
            return Err(Error::InvalidArgument(
                "table builder is unusable after an earlier I/O error".into(),
            ));
        }
        Ok(())
    }

    fn flush_data_block(&mut self) -> Result<()> {
        if self.data_block.is_empty() {
            return Ok(());
        }
        let handle = self
            .out
            .write_block(self.data_block.finish(), self.opts.compression)?;
        self.data_block.reset();
        self.pending_handle = Some(handle);
        self.props.num_data_blocks += 1;
        Ok(())
    }

}

impl BlockWriter {
    /// Writes `raw` (compressed if that pays) and its trailer; returns its handle.
    fn write_block(&mut self, raw: &[u8], compression: Compression) -> Result<BlockHandle> {
        let (contents, ty) = self.compressor.compress(raw, compression);
        let handle = BlockHandle::new(self.offset, contents.len() as u64);
        let trailer = block_trailer(contents, ty);
        if let Err(e) = self
            .file
            .append(contents)
            .and_then(|()| self.file.append(&trailer))
        {
            self.failed = true;
            return Err(e.into());
        }
        self.offset += (contents.len() + trailer.len()) as u64;
        Ok(handle)
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        if let Err(e) = self.file.append(bytes) {
            self.failed = true;
            return Err(e.into());
        }
        self.offset += bytes.len() as u64;
        Ok(())
    }
}

fn seek_trailer() -> [u8; TRAILER_LEN] {
    key::pack_trailer(MAX_SEQNO, KIND_FOR_SEEK).to_le_bytes()
}

/// A short internal key `k` with `start <= k < limit` (internal-key order), given
/// `start < limit`. Shortens the user key when the two differ after a common prefix by more than
/// one in the first differing byte; the shortened key gets the smallest trailer of its user key.
pub(crate) fn shortest_separator(start: &[u8], limit: &[u8]) -> Vec<u8> {
    let (su, lu) = (key::user_key(start), key::user_key(limit));
    let common = su.iter().zip(lu).take_while(|(a, b)| a == b).count();
    if common < su.len() && common < lu.len() {
        let b = su[common];
        if b < 0xff && b + 1 < lu[common] && common + 1 < su.len() {
            let mut k = su[..=common].to_vec();
            k[common] = b + 1;
            k.extend_from_slice(&seek_trailer());
            return k;
        }
    }
    start.to_vec()
}

/// A short internal key `>= key`: the user key with its first non-0xff byte incremented and the
/// rest dropped, or `key` itself when that would not be shorter.
pub(crate) fn short_successor(ikey: &[u8]) -> Vec<u8> {
    let uk = key::user_key(ikey);
    if let Some(i) = uk.iter().position(|&b| b != 0xff) {
        if i + 1 < uk.len() {
            let mut k = uk[..=i].to_vec();
            k[i] += 1;
            k.extend_from_slice(&seek_trailer());
            return k;
        }
    }
    ikey.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{compare_internal_keys, make_internal_key};

    #[test]
    fn separators_are_between_and_short() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"abcdefgh", b"abzz"),
            (b"abc", b"abd"),
            (b"abc", b"abcd"),
            (b"a", b"b"),
            (b"helloworld", b"hellz"),
            (b"\xff\xffx", b"\xff\xffz"),
            (b"", b"a"),
            (b"same", b"same"),
        ];
        for &(a, b) in cases {
            let start = make_internal_key(a, 5, ValueKind::Value);
            let limit = make_internal_key(b, 3, ValueKind::Value);
            let sep = shortest_separator(&start, &limit);
            assert_ne!(
                compare_internal_keys(&sep, &start),
                Ordering::Less,
                "{a:?} {b:?}"
            );
            assert_eq!(
                compare_internal_keys(&sep, &limit),
                Ordering::Less,
                "{a:?} {b:?}"
            );
            assert!(sep.len() <= start.len());
        }
        let sep = shortest_separator(
            &make_internal_key(b"abcdefgh", 5, ValueKind::Value),
            &make_internal_key(b"abzz", 5, ValueKind::Value),
        );
        assert_eq!(key::user_key(&sep), b"abd");
    }

    #[test]
    fn successor_is_not_smaller() {
        for uk in [&b"abc"[..], b"\xff\xff", b"", b"\xffa\xff", b"z"] {
            let k = make_internal_key(uk, 9, ValueKind::Deletion);
            let s = short_successor(&k);
            assert_ne!(compare_internal_keys(&s, &k), Ordering::Less, "{uk:?}");
            assert!(s.len() <= k.len());
        }
        assert_eq!(
            key::user_key(&short_successor(&make_internal_key(
                b"abc",
                1,
                ValueKind::Value
            ))),
            b"b"
        );
    }
}
