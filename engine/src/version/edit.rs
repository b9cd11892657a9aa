//! Version edits: the records of the MANIFEST.
//!
//! A MANIFEST is a log (same record format as the WAL, see `FORMAT.md`) whose records are
//! encoded `VersionEdit`s. Replaying them in order rebuilds the set of live files per level and
//! the counters. Each edit is a sequence of tagged fields:
//!
//! ```text
//! field            tag  payload
//! log_number        1   varint64           WALs numbered below this are fully in tables
//! next_file_number  2   varint64           next number to hand out for any file
//! last_sequence     3   varint64           largest sequence number written to any file
//! deleted_file      4   varint32 level, varint64 number
//! new_file          5   varint32 level, varint64 number, varint64 size,
//!                       len-prefixed smallest internal key, len-prefixed largest internal key,
//!                       varint64 smallest seqno, varint64 largest seqno
//! compact_pointer   6   varint32 level, len-prefixed internal key   where the next compaction
//!                                                                    of that level starts
//! new_file_ranges   7   as new_file, then varint count and count x (len-prefixed start,
//!                       len-prefixed end, varint64 seqno): a table with range tombstones
//! ```
//! Every edit the engine writes carries `last_sequence` and `next_file_number`, so recovery
//! never hands out a sequence number or file number already used on disk.

use std::sync::Arc;

use crate::coding::{put_length_prefixed, put_varint32, put_varint64, Decoder};
use crate::error::{Error, Result};
use crate::key::{compare_internal_keys, make_internal_key, range_end_bound, SeqNo, ValueKind};
use crate::range_del::RangeTombstone;
use crate::sstable::TableProperties;

/// Number of levels in the tree (L0..L6).
pub const NUM_LEVELS: usize = 7;

const TAG_LOG_NUMBER: u32 = 1;
const TAG_NEXT_FILE: u32 = 2;
const TAG_LAST_SEQUENCE: u32 = 3;
const TAG_DELETED_FILE: u32 = 4;
const TAG_NEW_FILE: u32 = 5;
const TAG_COMPACT_POINTER: u32 = 6;
const TAG_NEW_FILE_WITH_RANGES: u32 = 7;

/// What the engine knows about one table file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMetaData {
    /// File number (`NNNNNN.sst`).
    pub number: u64,
    /// Size in bytes.
    pub size: u64,
    /// Smallest internal key in the file.
    pub smallest: Vec<u8>,
    /// Largest internal key in the file.
    pub largest: Vec<u8>,
    /// Smallest sequence number in the file.
    pub smallest_seq: SeqNo,
    /// Largest sequence number in the file (of its entries and range tombstones).
    pub largest_seq: SeqNo,
    /// Range tombstones the table carries; its key range covers them. Kept in the MANIFEST,
    /// not in the table file, so every version knows them without opening tables.
    pub range_tombstones: Vec<RangeTombstone>,
}

impl FileMetaData {
    /// Metadata of a finished table carrying `range_tombstones`: its key and sequence ranges
    /// cover its entries (from the table's properties) and its tombstones.
    pub fn new(
        number: u64,
        size: u64,
        props: &TableProperties,
        range_tombstones: Vec<RangeTombstone>,
    ) -> FileMetaData {
        let mut smallest = (props.num_entries > 0).then(|| props.smallest_key.clone());
        let mut largest = (props.num_entries > 0).then(|| props.largest_key.clone());
        let mut seqs = (props.num_entries > 0).then_some((props.min_seqno, props.max_seqno));
        for t in &range_tombstones {
            let lo = make_internal_key(&t.start, t.seq, ValueKind::RangeDeletion);
            let hi = range_end_bound(&t.end);
            if smallest
                .as_ref()
                .is_none_or(|s| compare_internal_keys(&lo, s).is_lt())
            {
                smallest = Some(lo);
            }
            if largest
                .as_ref()
                .is_none_or(|l| compare_internal_keys(&hi, l).is_gt())
            {
                largest = Some(hi);
            }
            seqs = Some(seqs.map_or((t.seq, t.seq), |(a, b)| (a.min(t.seq), b.max(t.seq))));
        }
        let (smallest_seq, largest_seq) = seqs.unwrap_or((0, 0));
        FileMetaData {
            number,
            size,
            smallest: smallest.unwrap_or_default(),
            largest: largest.unwrap_or_default(),
            smallest_seq,
            largest_seq,
            range_tombstones,
        }
    }
}

/// A change to the set of live files and counters, as logged in the MANIFEST.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionEdit {
    /// WALs with a smaller number are no longer needed.
    pub log_number: Option<u64>,
    /// Next file number to allocate.
    pub next_file_number: Option<u64>,
    /// Last sequence number used.
    pub last_sequence: Option<SeqNo>,
    /// Files removed, as `(level, number)`.
    pub deleted_files: Vec<(usize, u64)>,
    /// Files added, as `(level, metadata)`.
    pub new_files: Vec<(usize, Arc<FileMetaData>)>,
    /// Round-robin compaction positions, as `(level, largest internal key compacted)`.
    pub compact_pointers: Vec<(usize, Vec<u8>)>,
}

impl VersionEdit {
    /// Appends the encoded edit to `dst`.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        if let Some(v) = self.log_number {
            put_varint32(dst, TAG_LOG_NUMBER);
            put_varint64(dst, v);
        }
        if let Some(v) = self.next_file_number {
            put_varint32(dst, TAG_NEXT_FILE);
            put_varint64(dst, v);
        }
        if let Some(v) = self.last_sequence {
            put_varint32(dst, TAG_LAST_SEQUENCE);
            put_varint64(dst, v);
        }
        for &(level, number) in &self.deleted_files {
            put_varint32(dst, TAG_DELETED_FILE);
            put_varint32(dst, level as u32);
            put_varint64(dst, number);
        }
        for (level, f) in &self.new_files {
            let tag = if f.range_tombstones.is_empty() {
                TAG_NEW_FILE
            } else {
                TAG_NEW_FILE_WITH_RANGES
            };
            put_varint32(dst, tag);
            put_varint32(dst, *level as u32);
            put_varint64(dst, f.number);
            put_varint64(dst, f.size);
            put_length_prefixed(dst, &f.smallest);
            put_length_prefixed(dst, &f.largest);
            put_varint64(dst, f.smallest_seq);
            put_varint64(dst, f.largest_seq);
            if !f.range_tombstones.is_empty() {
                put_varint64(dst, f.range_tombstones.len() as u64);
                for t in &f.range_tombstones {
                    put_length_prefixed(dst, &t.start);
                    put_length_prefixed(dst, &t.end);
                    put_varint64(dst, t.seq);
                }
            }
        }
        for (level, key) in &self.compact_pointers {
            put_varint32(dst, TAG_COMPACT_POINTER);
            put_varint32(dst, *level as u32);
            put_length_prefixed(dst, key);
        }
    }

    /// Decodes an edit; `Corruption` (offset relative to `src`) on any malformed field.
    pub fn decode(src: &[u8]) -> Result<VersionEdit> {
        let mut d = Decoder::new(src);
        let mut edit = VersionEdit::default();
        while !d.is_empty() {
            let at = d.position() as u64;
            let bad = |what: &str| Error::corruption(at, format!("version edit: bad {what}"));
            let tag = d.varint32().ok_or_else(|| bad("tag"))?;
            match tag {
                TAG_LOG_NUMBER => {
                    edit.log_number = Some(d.varint64().ok_or_else(|| bad("log number"))?)
                }
                TAG_NEXT_FILE => {
                    edit.next_file_number =
                        Some(d.varint64().ok_or_else(|| bad("next file number"))?)
                }
                TAG_LAST_SEQUENCE => {
                    edit.last_sequence = Some(d.varint64().ok_or_else(|| bad("last sequence"))?)
                }
                TAG_DELETED_FILE => {
                    let level = decode_level(&mut d).ok_or_else(|| bad("deleted file level"))?;
                    let number = d.varint64().ok_or_else(|| bad("deleted file number"))?;
                    edit.deleted_files.push((level, number));
                }
                TAG_NEW_FILE | TAG_NEW_FILE_WITH_RANGES => {
                    let level = decode_level(&mut d).ok_or_else(|| bad("new file level"))?;
                    let mut f = decode_file(&mut d).ok_or_else(|| bad("new file"))?;
                    if tag == TAG_NEW_FILE_WITH_RANGES {
                        f.range_tombstones =
                            decode_tombstones(&mut d).ok_or_else(|| bad("range tombstones"))?;
                    }
                    edit.new_files.push((level, Arc::new(f)));
                }
                TAG_COMPACT_POINTER => {
                    let level = decode_level(&mut d).ok_or_else(|| bad("compact pointer level"))?;
                    let key = d.length_prefixed().ok_or_else(|| bad("compact pointer"))?;
                    edit.compact_pointers.push((level, key.to_vec()));
                }
                other => return Err(bad(&format!("tag {other}"))),
            }
        }
        Ok(edit)
    }
}

fn decode_level(d: &mut Decoder<'_>) -> Option<usize> {
    let level = d.varint32()? as usize;
    (level < NUM_LEVELS).then_some(level)
}

fn decode_tombstones(d: &mut Decoder<'_>) -> Option<Vec<RangeTombstone>> {
    let n = d.varint64()?;
    // Each tombstone takes at least 3 bytes: bound the allocation by the input.
    if n > d.remaining().len() as u64 / 3 {
        return None;
    }
    (0..n)
        .map(|_| {
            Some(RangeTombstone {
                start: d.length_prefixed()?.to_vec(),
                end: d.length_prefixed()?.to_vec(),
                seq: d.varint64()?,
            })
        })
        .collect()
}

fn decode_file(d: &mut Decoder<'_>) -> Option<FileMetaData> {
    Some(FileMetaData {
        number: d.varint64()?,
        size: d.varint64()?,
        smallest: d.length_prefixed()?.to_vec(),
        largest: d.length_prefixed()?.to_vec(),
        smallest_seq: d.varint64()?,
        largest_seq: d.varint64()?,
        range_tombstones: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> VersionEdit {
        VersionEdit {
            log_number: Some(12),
            next_file_number: Some(99),
            last_sequence: Some(1 << 40),
            deleted_files: vec![(0, 5), (3, 77)],
            new_files: vec![(
                1,
                Arc::new(FileMetaData {
                    number: 13,
                    size: 4096,
                    smallest: make_internal_key(b"a", 1, ValueKind::Value),
                    largest: make_internal_key(b"zz", 9, ValueKind::Deletion),
                    smallest_seq: 1,
                    largest_seq: 9,
                    range_tombstones: vec![RangeTombstone {
                        start: b"b".to_vec(),
                        end: b"d".to_vec(),
                        seq: 7,
                    }],
                }),
            )],
            compact_pointers: vec![(2, make_internal_key(b"m", 5, ValueKind::Value))],
        }
    }

    #[test]
    fn roundtrip() {
        let edit = sample();
        let mut buf = Vec::new();
        edit.encode(&mut buf);
        assert_eq!(VersionEdit::decode(&buf).unwrap(), edit);
        assert_eq!(VersionEdit::decode(&[]).unwrap(), VersionEdit::default());
    }

    #[test]
    fn malformed_edits_are_corruption() {
        let mut buf = Vec::new();
        sample().encode(&mut buf);
        for cut in 1..buf.len() {
            match VersionEdit::decode(&buf[..cut]) {
                Err(e) => assert!(e.is_corruption()),
                // A cut that falls exactly between fields decodes to a shorter edit.
                Ok(partial) => assert_ne!(partial, sample(), "cut {cut}"),
            }
        }
        assert!(VersionEdit::decode(&[42, 1]).unwrap_err().is_corruption());
        // Level out of range.
        assert!(VersionEdit::decode(&[4, 9, 1]).unwrap_err().is_corruption());
    }
}
