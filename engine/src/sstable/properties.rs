//! The properties block: facts about a table that compaction and stats use without reading data.
//!
//! ```text
//! properties block:
//!   record*            records in strictly increasing tag order
//!
//! record:
//!   varint32 tag | varint64 len | value (len bytes)
//!
//!   integer values are one varint64 spanning exactly `len` bytes; key values are raw bytes
//!
//!   tag  field                 tag  field
//!    1   num_entries            8   filter_size
//!    2   num_deletions          9   smallest_key (internal key)
//!    3   raw_key_size          10   largest_key  (internal key)
//!    4   raw_value_size        11   min_seqno
//!    5   num_data_blocks       12   max_seqno
//!    6   data_size             13   compression (0 none, 1 lz4)
//!    7   index_size            14   bloom_bits_per_key (0 = no filter)
//! ```
//!
//! Tags 1..=14 are required; unknown larger tags are skipped, so later versions can add fields.

use crate::coding::{put_length_prefixed, put_varint32, put_varint64, Decoder};
use crate::error::{Error, Result};

use super::format::Compression;

/// What a table holds, written by the builder and read eagerly by [`Table::open`].
///
/// Sizes are on-disk bytes including block trailers.
///
/// [`Table::open`]: super::Table::open
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TableProperties {
    /// Number of entries (values and tombstones).
    pub num_entries: u64,
    /// Number of tombstones.
    pub num_deletions: u64,
    /// Sum of internal key lengths.
    pub raw_key_size: u64,
    /// Sum of value lengths.
    pub raw_value_size: u64,
    /// Number of data blocks.
    pub num_data_blocks: u64,
    /// Bytes of all data blocks.
    pub data_size: u64,
    /// Bytes of the index block.
    pub index_size: u64,
    /// Bytes of the filter block (0 without a filter).
    pub filter_size: u64,
    /// Smallest internal key (empty for an empty table).
    pub smallest_key: Vec<u8>,
    /// Largest internal key (empty for an empty table).
    pub largest_key: Vec<u8>,
    /// Smallest sequence number of any entry (0 for an empty table).
    pub min_seqno: u64,
    /// Largest sequence number of any entry (0 for an empty table).
    pub max_seqno: u64,
    /// The compression the table was built with (each block may still be stored raw).
    pub compression: Compression,
    /// Bloom filter bits per key (0: no filter).
    pub bloom_bits_per_key: u32,
}

const NUM_REQUIRED_TAGS: u32 = 14;

impl TableProperties {
    /// Encodes the properties block contents.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.smallest_key.len() + self.largest_key.len());
        let int = |out: &mut Vec<u8>, tag: u32, v: u64| {
            let mut val = Vec::with_capacity(10);
            put_varint64(&mut val, v);
            put_varint32(out, tag);
            put_length_prefixed(out, &val);
        };
        int(&mut out, 1, self.num_entries);
        int(&mut out, 2, self.num_deletions);
        int(&mut out, 3, self.raw_key_size);
        int(&mut out, 4, self.raw_value_size);
        int(&mut out, 5, self.num_data_blocks);
        int(&mut out, 6, self.data_size);
        int(&mut out, 7, self.index_size);
        int(&mut out, 8, self.filter_size);
        put_varint32(&mut out, 9);
        put_length_prefixed(&mut out, &self.smallest_key);
        put_varint32(&mut out, 10);
        put_length_prefixed(&mut out, &self.largest_key);
        int(&mut out, 11, self.min_seqno);
        int(&mut out, 12, self.max_seqno);
        int(&mut out, 13, u64::from(self.compression.to_u8()));
        int(&mut out, 14, u64::from(self.bloom_bits_per_key));
        out
    }

    /// Decodes and validates a properties block; error offsets are relative to its start.
    pub fn decode(src: &[u8]) -> Result<TableProperties> {
        let mut p = TableProperties::default();
        let mut d = Decoder::new(src);
        let mut last_tag = 0u32;
        let mut seen = 0u32;
        while !d.is_empty() {
            let at = d.position() as u64;
            let tag = d
                .varint32()
                .ok_or_else(|| Error::corruption(at, "properties: malformed tag"))?;
            let val = d
                .length_prefixed()
                .ok_or_else(|| Error::corruption(at, "properties: truncated record"))?;
            if tag <= last_tag {
                return Err(Error::corruption(
                    at,
                    format!("properties: tag {tag} out of order"),
                ));
            }
            last_tag = tag;
            let int = || -> Result<u64> {
                match crate::coding::get_varint64(val) {
                    Some((v, n)) if n == val.len() => Ok(v),
                    _ => Err(Error::corruption(
                        at,
                        format!("properties: bad integer for tag {tag}"),
                    )),
                }
            };
            match tag {
                1 => p.num_entries = int()?,
                2 => p.num_deletions = int()?,
                3 => p.raw_key_size = int()?,
                4 => p.raw_value_size = int()?,
                5 => p.num_data_blocks = int()?,
                6 => p.data_size = int()?,
                7 => p.index_size = int()?,
                8 => p.filter_size = int()?,
                9 => p.smallest_key = val.to_vec(),
                10 => p.largest_key = val.to_vec(),
                11 => p.min_seqno = int()?,
                12 => p.max_seqno = int()?,
                13 => {
                    p.compression = u8::try_from(int()?)
                        .ok()
                        .and_then(Compression::from_u8)
                        .ok_or_else(|| Error::corruption(at, "properties: unknown compression"))?
                }
                14 => {
                    p.bloom_bits_per_key = u32::try_from(int()?)
                        .map_err(|_| Error::corruption(at, "properties: bits per key too large"))?
                }
                _ => {}
            }
            if tag <= NUM_REQUIRED_TAGS {
                seen += 1;
            }
        }
        if seen != NUM_REQUIRED_TAGS {
            return Err(Error::corruption(
                src.len() as u64,
                format!("properties: {seen} of {NUM_REQUIRED_TAGS} required fields"),
            ));
        }
        if p.num_deletions > p.num_entries || p.min_seqno > p.max_seqno {
            return Err(Error::corruption(
                0,
                "properties: inconsistent counts or seqno range",
            ));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TableProperties {
        TableProperties {
            num_entries: 1000,
            num_deletions: 10,
            raw_key_size: 20_000,
            raw_value_size: u64::MAX,
            num_data_blocks: 7,
            data_size: 30_000,
            index_size: 300,
            filter_size: 1300,
            smallest_key: b"a\0\0\0\0\0\0\0\0".to_vec(),
            largest_key: Vec::new(),
            min_seqno: 5,
            max_seqno: 77,
            compression: Compression::Lz4,
            bloom_bits_per_key: 10,
        }
    }

    #[test]
    fn roundtrip() {
        let p = sample();
        assert_eq!(TableProperties::decode(&p.encode()).unwrap(), p);
        let empty = TableProperties::default();
        assert_eq!(TableProperties::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn unknown_trailing_tags_are_skipped() {
        let p = sample();
        let mut enc = p.encode();
        put_varint32(&mut enc, 99);
        put_length_prefixed(&mut enc, b"future");
        assert_eq!(TableProperties::decode(&enc).unwrap(), p);
    }

    #[test]
    fn rejects_malformed() {
        let enc = sample().encode();
        for cut in 0..enc.len() {
            assert!(TableProperties::decode(&enc[..cut]).is_err(), "cut {cut}");
        }
        // Every single-byte change either still decodes or is Corruption; never a panic.
        for i in 0..enc.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut bad = enc.clone();
                bad[i] ^= x;
                if let Err(e) = TableProperties::decode(&bad) {
                    assert!(e.is_corruption());
                }
            }
        }
        let mut dup = enc.clone();
        put_varint32(&mut dup, 3);
        put_length_prefixed(&mut dup, &[1]);
        assert!(TableProperties::decode(&dup).is_err());
    }
}
