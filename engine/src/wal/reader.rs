//! Reads logical records back from a log file's bytes, deciding what a damaged record means.
//!
//! The recovery contract is documented on [`WalRecoveryMode`].

use std::borrow::Cow;
use std::fmt;

use crate::error::{Error, Result};

use super::format::{decode_physical, BadRecord, Physical, RecordType, BLOCK_SIZE, HEADER_SIZE};

/// What recovery does with a damaged log record.
///
/// # Recovery contract
///
/// A *bad* physical record is one the WAL's record decoder rejects
/// (header or payload cut by end of file, a length crossing its block, a checksum mismatch, an
/// unknown type). A *structural* error is an intact physical record in the wrong place: MIDDLE or
/// LAST without a FIRST, or FIRST or
/// FULL while a FIRST..LAST sequence is open.
///
/// **End of log.** The log ends cleanly at end of file, or where every byte from the next
/// record's start to end of file is `0x00` (block padding, preallocated space). If a FIRST..LAST
/// sequence is open there, it is a torn tail (see below) with reason
/// `DropReason::UnfinishedRecord`.
///
/// **"Only zeros follow."** For a bad record starting at offset `p`, let `extent_end` be the end
/// of the bytes its header claims: `p + 7 + length`, clamped to the end of `p`'s block and to end
/// of file (for a header cut by end of file, end of file itself). The record is *the last thing
/// in the file* when every byte in `extent_end..EOF` is `0x00` (an empty range counts). This is
/// deliberately strict: a record whose damaged length field claims fewer bytes than it had leaves
/// non-zero bytes behind and is reported as corruption, because the reader cannot tell those
/// bytes from a following record that was synced.
///
/// A damaged length field that claims more bytes than the file (or block) has would look like a
/// torn append; LevelDB and RocksDB drop it. Before calling anything a torn tail, this reader
/// checks that no checksum-valid record starts anywhere after the bad one: if one does, the
/// damage is not a tail and is reported as corruption. (The price: a torn append whose payload
/// happens to contain an intact log record, e.g. a value that is itself a log file, is reported
/// as corruption, which fails safe; [`WalRecoveryMode::PointInTime`] still recovers it.)
///
/// [`WalRecoveryMode::TolerateTornTail`] (the default):
/// - a bad record that is the last thing in the file is a *torn tail*: it is dropped (with the
///   open FIRST..MIDDLE fragments before it, if any), reading ends with `Ok(None)`, and
///   the log reader's `dropped()` describes what was skipped. A power cut during an unsynced append
///   produces exactly this, and nothing that was acknowledged as synced is lost by dropping it;
/// - any other bad record, and every structural error, is [`Error::Corruption`] naming the file
///   and the offset: dropping it could silently lose synced, acknowledged writes behind it. The
///   error repeats on every later call.
///
/// [`WalRecoveryMode::PointInTime`] (opt-in): the first bad record or structural error of any
/// kind ends the log. Reading returns `Ok(None)` from then on and `dropped()` reports the offset
/// of the first byte not replayed (the start of the logical record that could not be completed)
/// and how many bytes from there to end of file were not replayed.
///
/// The reader never panics, terminates (every step consumes at least one byte), and allocates
/// only for fragmented records, never more than the fragment bytes actually present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WalRecoveryMode {
    /// Drop only a torn record at the very tail of the file; any other damage is an error.
    #[default]
    TolerateTornTail,
    /// Replay up to the first damaged record of any kind and silently (but reported) stop there.
    PointInTime,
}

/// Why the reader stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Fewer than 7 header bytes before end of file.
    TruncatedHeader,
    /// The payload runs past end of file.
    TruncatedPayload,
    /// The header's length crosses the end of its block.
    LengthPastBlock,
    /// The checksum does not match.
    ChecksumMismatch,
    /// A type byte that is not FULL, FIRST, MIDDLE or LAST (with a matching checksum).
    UnknownType(u8),
    /// A FIRST (and maybe MIDDLEs) with no LAST before the end of the log.
    UnfinishedRecord,
    /// A MIDDLE or LAST with no FIRST before it.
    OrphanFragment(RecordType),
    /// A FULL or FIRST while a FIRST..LAST sequence was still open.
    InterruptedRecord(RecordType),
}

impl From<BadRecord> for DropReason {
    fn from(b: BadRecord) -> Self {
        match b {
            BadRecord::TruncatedHeader => DropReason::TruncatedHeader,
            BadRecord::TruncatedPayload => DropReason::TruncatedPayload,
            BadRecord::LengthPastBlock => DropReason::LengthPastBlock,
            BadRecord::ChecksumMismatch => DropReason::ChecksumMismatch,
            BadRecord::UnknownType(t) => DropReason::UnknownType(t),
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::TruncatedHeader => write!(f, "record header cut by end of file"),
            DropReason::TruncatedPayload => write!(f, "record payload cut by end of file"),
            DropReason::LengthPastBlock => write!(f, "record length crosses its block boundary"),
            DropReason::ChecksumMismatch => write!(f, "record checksum mismatch"),
            DropReason::UnknownType(t) => write!(f, "unknown record type {t}"),
            DropReason::UnfinishedRecord => write!(f, "fragmented record without its LAST"),
            DropReason::OrphanFragment(t) => write!(f, "{t:?} fragment without a FIRST"),
            DropReason::InterruptedRecord(t) => {
                write!(f, "{t:?} record inside an unfinished fragmented record")
            }
        }
    }
}

/// What the reader skipped at the end of the log instead of replaying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DroppedTail {
    /// Offset of the first byte not replayed: the start of the logical record that could not be
    /// read. Every record before it was returned.
    pub offset: u64,
    /// Bytes from `offset` to end of file.
    pub bytes: u64,
    /// Why.
    pub reason: DropReason,
}

#[derive(Debug, Clone)]
enum State {
    Reading,
    Done,
    Failed { offset: u64, msg: String },
}

/// Reads the logical records of one log file, mapped in memory.
#[derive(Debug)]
pub struct LogReader<'a> {
    data: &'a [u8],
    file_name: String,
    mode: WalRecoveryMode,
    /// Next byte to decode.
    pos: usize,
    last_record_offset: u64,
    state: State,
    dropped: Option<DroppedTail>,
}

impl<'a> LogReader<'a> {
    /// Reads the log in `data` (the whole file); `file_name` names it in errors.
    pub fn new(data: &'a [u8], file_name: String, mode: WalRecoveryMode) -> Self {
        LogReader {
            data,
            file_name,
            mode,
            pos: 0,
            last_record_offset: 0,
            state: State::Reading,
            dropped: None,
        }
    }

    /// The next logical record, `Ok(None)` at the end of the log, or `Err(Error::Corruption)`
    /// for damage the recovery mode does not tolerate (see [`WalRecoveryMode`]).
    pub fn read_record(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(self.read_record_cow()?.map(Cow::into_owned))
    }

    /// Like [`read_record`](Self::read_record), but an unfragmented record is borrowed from the
    /// file's bytes instead of copied.
    pub fn read_record_cow(&mut self) -> Result<Option<Cow<'a, [u8]>>> {
        match &self.state {
            State::Reading => {}
            State::Done => return Ok(None),
            State::Failed { offset, msg } => return Err(self.corruption(*offset, msg.clone())),
        }
        // Start offset and fragments so far of an open FIRST..LAST sequence.
        let mut pending: Option<(usize, Vec<u8>)> = None;
        loop {
            let leftover = BLOCK_SIZE - self.pos % BLOCK_SIZE;
            if leftover < HEADER_SIZE {
                // Block trailer: carries no data and no checksum; the writer zero-fills it.
                self.pos = self.pos.saturating_add(leftover).min(self.data.len());
            }
            let rest = self.data.get(self.pos..).unwrap_or_default();
            if rest.iter().all(|&b| b == 0) {
                return Ok(self.end_of_log(pending.map(|(start, _)| start)));
            }
            let at = self.pos;
            match decode_physical(self.data, at) {
                Physical::Good { kind, payload, end } => {
                    self.pos = end;
                    match (kind, pending.take()) {
                        (RecordType::Full, None) => {
                            self.last_record_offset = at as u64;
                            return Ok(Some(Cow::Borrowed(payload)));
                        }
                        (RecordType::First, None) => pending = Some((at, payload.to_vec())),
                        (RecordType::Middle, Some((start, mut buf))) => {
                            buf.extend_from_slice(payload);
                            pending = Some((start, buf));
                        }
                        (RecordType::Last, Some((start, mut buf))) => {
                            buf.extend_from_slice(payload);
                            self.last_record_offset = start as u64;
                            return Ok(Some(Cow::Owned(buf)));
                        }
                        (RecordType::Full | RecordType::First, Some((start, _))) => {
                            let reason = DropReason::InterruptedRecord(kind);
                            return self.damaged(at, start, reason, false);
                        }
                        (RecordType::Middle | RecordType::Last, None) => {
                            return self.damaged(at, at, DropReason::OrphanFragment(kind), false);
                        }
                    }
                }
                Physical::Bad { why, extent_end } => {
                    let only_zeros_follow = self
                        .data
                        .get(extent_end..)
                        .unwrap_or_default()
                        .iter()
                        .all(|&b| b == 0);
                    // A torn append is the last thing in the file: if an intact record follows
                    // anywhere, the damage (e.g. a flipped length byte) hides data behind it.
                    let is_tail = only_zeros_follow && !intact_record_after(self.data, at);
                    let drop_from = pending.as_ref().map_or(at, |(start, _)| *start);
                    return self.damaged(at, drop_from, why.into(), is_tail);
                }
            }
        }
    }

    /// What was dropped at the tail instead of replayed, once reading ended that way.
    pub fn dropped(&self) -> Option<DroppedTail> {
        self.dropped
    }

    /// Offset of the first physical record of the last logical record returned (0 before any).
    pub fn last_record_offset(&self) -> u64 {
        self.last_record_offset
    }

    /// Name of the file being read, as given to [`LogReader::new`].
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The log ends at `self.pos`: only zeros (or nothing) follow.
    fn end_of_log(&mut self, pending_start: Option<usize>) -> Option<Cow<'a, [u8]>> {
        if let Some(start) = pending_start {
            self.drop_tail(start, DropReason::UnfinishedRecord);
        } else {
            self.state = State::Done;
        }
        None
    }

    /// A damaged record at `at`; replay would stop at `drop_from`. `is_tail` says whether it is
    /// the last thing in the file, which TolerateTornTail accepts.
    fn damaged(
        &mut self,
        at: usize,
        drop_from: usize,
        reason: DropReason,
        is_tail: bool,
    ) -> Result<Option<Cow<'a, [u8]>>> {
        if is_tail || self.mode == WalRecoveryMode::PointInTime {
            self.drop_tail(drop_from, reason);
            return Ok(None);
        }
        let msg = format!(
            "{reason} with more data after it (not a torn tail; records before offset \
             {drop_from} are intact; WalRecoveryMode::PointInTime would replay up to there)"
        );
        self.state = State::Failed {
            offset: at as u64,
            msg: msg.clone(),
        };
        Err(self.corruption(at as u64, msg))
    }

    fn drop_tail(&mut self, from: usize, reason: DropReason) {
        self.dropped = Some(DroppedTail {
            offset: from as u64,
            bytes: self.data.len().saturating_sub(from) as u64,
            reason,
        });
        self.state = State::Done;
    }

    fn corruption(&self, offset: u64, msg: String) -> Error {
        Error::corruption(offset, msg).in_file(self.file_name.clone(), 0)
    }
}

/// Whether a checksum-valid physical record starts anywhere after offset `at`. Only run on the
/// damage path; cheap header checks (type byte, length within the block) skip almost every
/// offset before a checksum is computed.
fn intact_record_after(data: &[u8], at: usize) -> bool {
    (at + 1..data.len()).any(|p| {
        let left_in_block = BLOCK_SIZE - p % BLOCK_SIZE;
        if left_in_block < HEADER_SIZE || p + HEADER_SIZE > data.len() {
            return false;
        }
        let length = usize::from(u16::from_le_bytes([data[p + 4], data[p + 5]]));
        let plausible = (1..=4).contains(&data[p + 6])
            && HEADER_SIZE + length <= left_in_block
            && p + HEADER_SIZE + length <= data.len();
        plausible && matches!(decode_physical(data, p), Physical::Good { .. })
    })
}

#[cfg(test)]
mod tests;
