//! The bytes of the log format shared by the WAL and the MANIFEST (LevelDB's `log_format.md`).
//!
//! ```text
//! file     := block* partial_block?
//! block    := physical* trailer?                       (exactly BLOCK_SIZE = 32 KiB)
//!
//! physical := +----------+--------+------+-----------------+
//!             | checksum | length | type | payload         |
//!             | fixed32  | u16 LE | u8   | [u8; length]    |
//!             +----------+--------+------+-----------------+
//!             |<------ HEADER_SIZE = 7 -->|
//!
//!   checksum = masked crc32c(type ++ payload)
//!   type     = FULL=1 | FIRST=2 | MIDDLE=3 | LAST=4        (0 is reserved: zeroed or
//!                                                          preallocated space)
//! trailer  := 1..=6 zero bytes, written when fewer than HEADER_SIZE bytes remain in a block;
//!             the next physical record starts at the next block.
//!
//! block 0                          block 1                          block 2
//! +--------------------------------+--------------------------------+-----------
//! | FULL a | FIRST b ............. | MIDDLE b ..................... | LAST b | 00
//! +--------------------------------+--------------------------------+-----------
//! ```
//!
//! A physical record never spans a block boundary, so every block starts with a header: a reader
//! can always tell where a block's first record begins. A logical record (what the writer was
//! given) is one FULL, or FIRST MIDDLE* LAST. A zero-length logical record is a FULL with
//! length 0 (or, when exactly `HEADER_SIZE` bytes are left in a block, a zero-length FIRST there
//! followed by the LAST in the next block).
//!
//! This module only encodes and decodes single physical records; what to do with a bad one is
//! the reader's policy ([`WalRecoveryMode`](super::WalRecoveryMode)).

use crate::coding::mask_crc;

/// Size of a block. Physical records never cross a multiple of this offset.
pub const BLOCK_SIZE: usize = 32 * 1024;

/// Size of a physical record header: checksum (4) + length (2) + type (1).
pub const HEADER_SIZE: usize = 7;

/// Largest payload one physical record can carry (a whole block minus its header).
pub const MAX_FRAGMENT: usize = BLOCK_SIZE - HEADER_SIZE;

/// The type byte of a physical record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// A whole logical record.
    Full = 1,
    /// The first fragment of a logical record.
    First = 2,
    /// An inner fragment.
    Middle = 3,
    /// The last fragment.
    Last = 4,
}

impl RecordType {
    /// Decodes a type byte; `None` for 0 (reserved) and unknown values.
    pub fn from_u8(b: u8) -> Option<RecordType> {
        match b {
            1 => Some(RecordType::Full),
            2 => Some(RecordType::First),
            3 => Some(RecordType::Middle),
            4 => Some(RecordType::Last),
            _ => None,
        }
    }
}

/// The masked crc32c a physical record of type `kind` with `payload` stores.
pub fn record_crc(kind: u8, payload: &[u8]) -> u32 {
    mask_crc(crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload))
}

/// Encodes the header of a physical record. `payload.len()` must be at most [`MAX_FRAGMENT`];
/// the writer guarantees it by construction.
pub fn encode_header(kind: RecordType, payload: &[u8]) -> [u8; HEADER_SIZE] {
    debug_assert!(payload.len() <= MAX_FRAGMENT);
    let mut h = [0u8; HEADER_SIZE];
    h[..4].copy_from_slice(&record_crc(kind as u8, payload).to_le_bytes());
    h[4..6].copy_from_slice(&(payload.len() as u16).to_le_bytes());
    h[6] = kind as u8;
    h
}

/// Why a physical record could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRecord {
    /// Fewer than [`HEADER_SIZE`] bytes remain before end of file.
    TruncatedHeader,
    /// The header is whole but its payload runs past end of file.
    TruncatedPayload,
    /// The declared length runs past the end of the record's block, which the writer never does.
    LengthPastBlock,
    /// The checksum does not match the type and payload.
    ChecksumMismatch,
    /// The checksum matches but the type byte is not one of FULL, FIRST, MIDDLE, LAST.
    UnknownType(u8),
}

/// The result of decoding the physical record that starts at some offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Physical<'a> {
    /// An intact record.
    Good {
        /// Its type.
        kind: RecordType,
        /// Its payload.
        payload: &'a [u8],
        /// Offset just past it.
        end: usize,
    },
    /// A record that is not intact.
    Bad {
        /// What is wrong.
        why: BadRecord,
        /// Offset just past the bytes the header claims (clamped to the block and to end of
        /// file); for a truncated record, the end of the file.
        extent_end: usize,
    },
}

/// Decodes the physical record starting at `pos` in `data`. Requires `pos < data.len()` and at
/// least [`HEADER_SIZE`] bytes left in `pos`'s block (the caller skips block trailers).
pub fn decode_physical(data: &[u8], pos: usize) -> Physical<'_> {
    let eof = data.len();
    let block_end = (pos / BLOCK_SIZE + 1) * BLOCK_SIZE;
    let Some(&[c0, c1, c2, c3, l0, l1, kind]) = data.get(pos..pos.saturating_add(HEADER_SIZE))
    else {
        return Physical::Bad {
            why: BadRecord::TruncatedHeader,
            extent_end: eof,
        };
    };
    let stored_crc = u32::from_le_bytes([c0, c1, c2, c3]);
    let length = usize::from(u16::from_le_bytes([l0, l1]));
    let end = pos + HEADER_SIZE + length;
    if end > block_end {
        return Physical::Bad {
            why: BadRecord::LengthPastBlock,
            extent_end: block_end.min(eof),
        };
    }
    let Some(payload) = data.get(pos + HEADER_SIZE..end) else {
        return Physical::Bad {
            why: BadRecord::TruncatedPayload,
            extent_end: eof,
        };
    };
    if record_crc(kind, payload) != stored_crc {
        return Physical::Bad {
            why: BadRecord::ChecksumMismatch,
            extent_end: end,
        };
    }
    match RecordType::from_u8(kind) {
        Some(kind) => Physical::Good { kind, payload, end },
        None => Physical::Bad {
            why: BadRecord::UnknownType(kind),
            extent_end: end,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::get_fixed32;

    fn record(kind: RecordType, payload: &[u8]) -> Vec<u8> {
        let mut v = encode_header(kind, payload).to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn header_layout_is_crc_length_type() {
        let r = record(RecordType::First, b"abc");
        assert_eq!(r.len(), HEADER_SIZE + 3);
        assert_eq!(get_fixed32(&r), Some(record_crc(2, b"abc")));
        assert_eq!(&r[4..7], &[3, 0, 2]);
        assert_eq!(&r[7..], b"abc");
    }

    #[test]
    fn crc_covers_type_and_payload() {
        assert_ne!(record_crc(1, b"x"), record_crc(2, b"x"));
        assert_ne!(record_crc(1, b"x"), record_crc(1, b"y"));
        assert_eq!(
            record_crc(1, b"xy"),
            crate::coding::masked_crc(&[1, b'x', b'y'])
        );
    }

    #[test]
    fn an_all_zero_header_is_never_a_good_record() {
        assert_ne!(record_crc(0, &[]), 0);
        let zeros = [0u8; 64];
        assert!(matches!(
            decode_physical(&zeros, 0),
            Physical::Bad {
                why: BadRecord::ChecksumMismatch,
                extent_end: HEADER_SIZE
            }
        ));
    }

    #[test]
    fn decode_reports_each_kind_of_damage() {
        let r = record(RecordType::Full, b"hello");
        assert_eq!(
            decode_physical(&r, 0),
            Physical::Good {
                kind: RecordType::Full,
                payload: b"hello",
                end: r.len()
            }
        );
        assert!(matches!(
            decode_physical(&r[..6], 0),
            Physical::Bad {
                why: BadRecord::TruncatedHeader,
                extent_end: 6
            }
        ));
        assert!(matches!(
            decode_physical(&r[..9], 0),
            Physical::Bad {
                why: BadRecord::TruncatedPayload,
                extent_end: 9
            }
        ));
        let mut bad = r.clone();
        bad[8] ^= 1;
        assert!(matches!(
            decode_physical(&bad, 0),
            Physical::Bad {
                why: BadRecord::ChecksumMismatch,
                ..
            }
        ));
        let mut unknown = r.clone();
        unknown[6] = 9;
        unknown[..4].copy_from_slice(&record_crc(9, b"hello").to_le_bytes());
        assert!(matches!(
            decode_physical(&unknown, 0),
            Physical::Bad {
                why: BadRecord::UnknownType(9),
                ..
            }
        ));
        // A length that crosses the block boundary, with the file going on past it.
        let mut long = vec![0u8; BLOCK_SIZE + 100];
        let pos = BLOCK_SIZE - 10;
        long[pos + 4..pos + 6].copy_from_slice(&10u16.to_le_bytes());
        long[pos + 6] = 1;
        assert!(matches!(
            decode_physical(&long, pos),
            Physical::Bad {
                why: BadRecord::LengthPastBlock,
                extent_end: BLOCK_SIZE
            }
        ));
    }
}
