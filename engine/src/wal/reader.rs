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
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::wal::format::{encode_header, MAX_FRAGMENT};
    use crate::wal::testing::encode_log;

    const TORN: WalRecoveryMode = WalRecoveryMode::TolerateTornTail;
    const PIT: WalRecoveryMode = WalRecoveryMode::PointInTime;

    /// Everything a reader returns until it ends or fails, and how it ended.
    fn read_all(
        data: &[u8],
        mode: WalRecoveryMode,
    ) -> (Vec<Vec<u8>>, Result<()>, Option<DroppedTail>) {
        let mut r = LogReader::new(data, "000007.log".into(), mode);
        let mut out = Vec::new();
        // Each record takes at least HEADER_SIZE bytes: more iterations would be a loop.
        for _ in 0..=data.len() / HEADER_SIZE + 1 {
            match r.read_record() {
                Ok(Some(rec)) => out.push(rec),
                Ok(None) => {
                    assert_eq!(r.read_record().unwrap(), None, "end is sticky");
                    return (out, Ok(()), r.dropped());
                }
                Err(e) => {
                    assert!(r.read_record().is_err(), "error is sticky");
                    return (out, Err(e), r.dropped());
                }
            }
        }
        panic!("reader did not terminate");
    }

    fn payload(seed: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i.wrapping_mul(31) ^ seed) as u8 | 1)
            .collect()
    }

    /// Offset where the logical record that follows a record ending at `end` starts.
    fn next_start(end: usize) -> usize {
        if BLOCK_SIZE - end % BLOCK_SIZE < HEADER_SIZE {
            (end / BLOCK_SIZE + 1) * BLOCK_SIZE
        } else {
            end
        }
    }

    fn assert_roundtrip(records: &[Vec<u8>]) {
        let (data, _) = encode_log(records);
        for mode in [TORN, PIT] {
            let (got, res, dropped) = read_all(&data, mode);
            res.unwrap();
            assert_eq!(dropped, None);
            assert!(got == records, "round trip of {} records", records.len());
        }
    }

    fn corruption_offset(res: Result<()>) -> u64 {
        match res {
            Err(Error::Corruption { file, offset, .. }) => {
                assert_eq!(file, "000007.log");
                offset
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn roundtrip_edge_sizes() {
        let sizes = [
            0,
            1,
            MAX_FRAGMENT,
            MAX_FRAGMENT + 1,
            BLOCK_SIZE - 6,
            BLOCK_SIZE - 2 * HEADER_SIZE,
            BLOCK_SIZE,
            100 * 1024,
            1024 * 1024,
            0,
            3,
        ];
        let records: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| payload(i, n))
            .collect();
        assert_roundtrip(&records);
        assert_roundtrip(&[]);
        assert_roundtrip(&[vec![]]);
        assert_roundtrip(&[vec![], vec![], vec![]]);
    }

    #[test]
    fn roundtrip_every_fragment_edge_at_block_end() {
        // The first record ends at every offset from 16 bytes before the block's last header slot
        // to just past the block end; the second starts with every possible room left.
        for first in (MAX_FRAGMENT - 16)..=(MAX_FRAGMENT + 2) {
            for second in [0, 1, 6, 7, 8, MAX_FRAGMENT - 1, MAX_FRAGMENT, BLOCK_SIZE] {
                assert_roundtrip(&[payload(1, first), payload(2, second), payload(3, 5)]);
            }
        }
    }

    #[test]
    fn roundtrip_random_sizes() {
        let mut rng = StdRng::seed_from_u64(0x5742_4c01);
        let records: Vec<Vec<u8>> = (0..600)
            .map(|i| {
                let len = match rng.random_range(0..10) {
                    0 => 0,
                    1..=6 => rng.random_range(0..200),
                    7 | 8 => rng.random_range(0..BLOCK_SIZE),
                    _ => rng.random_range(0..3 * BLOCK_SIZE),
                };
                payload(i, len)
            })
            .collect();
        assert_roundtrip(&records);
    }

    #[test]
    fn roundtrip_16_mib_record() {
        let big = payload(7, 16 * 1024 * 1024 + 3);
        assert_roundtrip(&[b"before".to_vec(), big, b"after".to_vec()]);
    }

    #[test]
    fn full_records_are_borrowed_fragmented_ones_owned() {
        let (data, _) = encode_log(&[vec![1u8; 10], vec![2u8; BLOCK_SIZE]]);
        let mut r = LogReader::new(&data, String::new(), TORN);
        assert!(matches!(
            r.read_record_cow().unwrap(),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(r.last_record_offset(), 0);
        assert!(matches!(r.read_record_cow().unwrap(), Some(Cow::Owned(_))));
        assert_eq!(r.last_record_offset(), (HEADER_SIZE + 10) as u64);
    }

    /// Cuts `records`' log at every offset in `cuts` and checks: a prefix of the records, no
    /// error, and a drop report exactly when the cut leaves non-zero bytes of an unfinished record.
    fn check_truncations(records: &[Vec<u8>], cuts: impl Iterator<Item = usize>) {
        let (data, ends) = encode_log(records);
        for cut in cuts {
            let cut = cut.min(data.len());
            let complete = ends.iter().take_while(|&&e| e <= cut).count();
            let prev_end = if complete == 0 { 0 } else { ends[complete - 1] };
            let torn = data[prev_end..cut].iter().any(|&b| b != 0);
            for mode in [TORN, PIT] {
                let (got, res, dropped) = read_all(&data[..cut], mode);
                assert!(res.is_ok(), "cut at {cut}: {res:?}");
                assert!(
                    got[..] == records[..complete],
                    "cut at {cut}: wrong records"
                );
                if torn {
                    let start = next_start(prev_end);
                    let d = dropped.unwrap_or_else(|| panic!("cut at {cut}: no drop report"));
                    assert_eq!(
                        (d.offset, d.bytes),
                        (start as u64, (cut - start) as u64),
                        "cut {cut}"
                    );
                } else {
                    assert_eq!(dropped, None, "cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn truncation_at_every_offset_of_a_small_log_drops_only_the_tail() {
        let records: Vec<Vec<u8>> = [0, 1, 50, 0, 7, 300, 2, 1000]
            .iter()
            .enumerate()
            .map(|(i, &n)| payload(i, n))
            .collect();
        let (data, _) = encode_log(&records);
        check_truncations(&records, 0..=data.len());
    }

    #[test]
    fn truncation_around_every_boundary_of_a_multi_block_log() {
        let sizes = [
            10,
            0,
            MAX_FRAGMENT - 20,
            3,
            40_000,
            BLOCK_SIZE - 2 * HEADER_SIZE,
            0,
            5,
            70_000,
            1,
        ];
        let records: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| payload(i, n))
            .collect();
        let (data, ends) = encode_log(&records);
        let mut interesting: Vec<usize> = ends.clone();
        interesting.extend((0..=data.len() / BLOCK_SIZE).map(|b| b * BLOCK_SIZE));
        let cuts = interesting
            .iter()
            .flat_map(|&p| p.saturating_sub(HEADER_SIZE + 3)..=p + HEADER_SIZE + 3)
            .chain((0..data.len()).step_by(211))
            .chain([data.len()]);
        check_truncations(&records, cuts);
    }

    fn three_records() -> (Vec<Vec<u8>>, Vec<u8>, Vec<usize>) {
        // The middle record's damage is always followed by data past its block, so even a
        // damaged length field cannot make the rest look like a tail.
        let records = vec![payload(1, 100), payload(2, 200), payload(3, 2 * BLOCK_SIZE)];
        let (data, ends) = encode_log(&records);
        (records, data, ends)
    }

    #[test]
    fn damage_followed_by_valid_data_is_corruption_or_point_in_time_stop() {
        let (records, data, ends) = three_records();
        for i in ends[0]..ends[1] {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = data.clone();
                bad[i] ^= flip;
                let (got, res, dropped) = read_all(&bad, TORN);
                assert_eq!(got, records[..1], "byte {i}");
                assert_eq!(corruption_offset(res), ends[0] as u64, "byte {i}");
                assert_eq!(dropped, None);

                let (got, res, dropped) = read_all(&bad, PIT);
                res.unwrap();
                assert_eq!(got, records[..1]);
                let d = dropped.unwrap();
                assert_eq!(
                    (d.offset, d.bytes),
                    (ends[0] as u64, (bad.len() - ends[0]) as u64)
                );
            }
        }
    }

    #[test]
    fn damaged_fragment_drops_from_its_first() {
        let (records, data, ends) = three_records();
        // Damage the payload of the MIDDLE fragment of the last record (in block 1).
        let mut bad = data.clone();
        bad[BLOCK_SIZE + 100] ^= 0x10;
        bad.extend_from_slice(&encode_log(&[b"later"]).0);
        let (got, res, _) = read_all(&bad, TORN);
        assert_eq!(got, records[..2]);
        assert_eq!(corruption_offset(res), BLOCK_SIZE as u64);
        let (got, res, dropped) = read_all(&bad, PIT);
        res.unwrap();
        assert_eq!(got, records[..2]);
        let d = dropped.unwrap();
        assert_eq!(
            (d.offset, d.reason),
            (ends[1] as u64, DropReason::ChecksumMismatch)
        );
    }

    #[test]
    fn damage_in_the_last_record_is_a_torn_tail() {
        let records = vec![payload(1, 100), payload(2, 300)];
        let (data, ends) = encode_log(&records);
        let lengths = ends[0] + 4..ends[0] + 6;
        for zeros_after in [0, 5, 40_000] {
            for i in (ends[0]..ends[1]).filter(|i| !lengths.contains(i)) {
                let mut bad = data.clone();
                bad[i] ^= 0x40;
                bad.resize(bad.len() + zeros_after, 0);
                for mode in [TORN, PIT] {
                    let (got, res, dropped) = read_all(&bad, mode);
                    res.unwrap();
                    assert_eq!(got, records[..1], "byte {i}");
                    let d = dropped.unwrap();
                    assert_eq!(d.offset, ends[0] as u64);
                    assert_eq!(d.bytes, (bad.len() - ends[0]) as u64);
                    assert_eq!(d.reason, DropReason::ChecksumMismatch);
                }
            }
        }
    }

    #[test]
    fn damaged_length_of_the_last_record() {
        let records = vec![payload(1, 100), payload(2, 300)];
        let (data, ends) = encode_log(&records);
        let len_at = ends[0] + 4;
        // Longer than the file: indistinguishable from a torn write, dropped.
        let mut longer = data.clone();
        longer[len_at] += 1;
        let (got, res, dropped) = read_all(&longer, TORN);
        res.unwrap();
        assert_eq!(got, records[..1]);
        assert_eq!(dropped.unwrap().reason, DropReason::TruncatedPayload);
        // Shorter: leaves non-zero bytes after the claimed record, so it is not a tail.
        let mut shorter = data.clone();
        shorter[len_at] -= 1;
        let (got, res, _) = read_all(&shorter, TORN);
        assert_eq!(got, records[..1]);
        assert_eq!(corruption_offset(res), ends[0] as u64);
        let (_, res, dropped) = read_all(&shorter, PIT);
        res.unwrap();
        assert_eq!(dropped.unwrap().reason, DropReason::ChecksumMismatch);
    }

    #[test]
    fn trailing_zeros_are_a_clean_end() {
        let records = vec![payload(1, 100), payload(2, BLOCK_SIZE)];
        let (mut data, _) = encode_log(&records);
        data.resize(data.len() + 3 * BLOCK_SIZE + 5, 0);
        for mode in [TORN, PIT] {
            let (got, res, dropped) = read_all(&data, mode);
            res.unwrap();
            assert_eq!(got, records);
            assert_eq!(dropped, None);
        }
        let zeros = vec![0u8; 100_000];
        assert_eq!(read_all(&zeros, TORN).0.len(), 0);
        assert_eq!(read_all(&zeros, TORN).2, None);
    }

    #[test]
    fn zeros_followed_by_data_are_corruption() {
        let mut data = encode_log(&[b"a"]).0;
        data.resize(BLOCK_SIZE, 0);
        data.extend_from_slice(&encode_log(&[b"b"]).0);
        let (got, res, _) = read_all(&data, TORN);
        assert_eq!(got, vec![b"a".to_vec()]);
        assert_eq!(corruption_offset(res), (HEADER_SIZE + 1) as u64);
    }

    fn phys(kind: RecordType, payload: &[u8]) -> Vec<u8> {
        let mut v = encode_header(kind, payload).to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn fragment_sequence_errors() {
        use RecordType::*;
        let full = phys(Full, b"ok");
        let cases: Vec<(Vec<Vec<u8>>, DropReason)> = vec![
            (vec![phys(Middle, b"m")], DropReason::OrphanFragment(Middle)),
            (vec![phys(Last, b"l")], DropReason::OrphanFragment(Last)),
            (
                vec![phys(First, b"f"), phys(First, b"f")],
                DropReason::InterruptedRecord(First),
            ),
            (
                vec![phys(First, b"f"), phys(Full, b"x")],
                DropReason::InterruptedRecord(Full),
            ),
            (
                vec![phys(First, b"f"), phys(Middle, b"m"), phys(Full, b"x")],
                DropReason::InterruptedRecord(Full),
            ),
        ];
        for (bad, reason) in cases {
            let mut data = full.clone();
            for r in &bad {
                data.extend_from_slice(r);
            }
            let err_at = data.len() - bad.last().unwrap().len();
            data.extend_from_slice(&full);
            let (got, res, _) = read_all(&data, TORN);
            assert_eq!(got, vec![b"ok".to_vec()]);
            assert_eq!(corruption_offset(res), err_at as u64, "{reason:?}");
            let (got, res, dropped) = read_all(&data, PIT);
            res.unwrap();
            assert_eq!(got, vec![b"ok".to_vec()]);
            let d = dropped.unwrap();
            assert_eq!((d.offset, d.reason), (full.len() as u64, reason));
            assert_eq!(d.bytes, (data.len() - full.len()) as u64);
        }
    }

    #[test]
    fn unfinished_fragmented_record_is_a_torn_tail() {
        use RecordType::*;
        let mut data = phys(Full, b"ok");
        data.extend_from_slice(&phys(First, b"f"));
        data.extend_from_slice(&phys(Middle, b"m"));
        for zeros in [0, 3, 100] {
            let mut d = data.clone();
            d.resize(d.len() + zeros, 0);
            for mode in [TORN, PIT] {
                let (got, res, dropped) = read_all(&d, mode);
                res.unwrap();
                assert_eq!(got, vec![b"ok".to_vec()]);
                let dr = dropped.unwrap();
                assert_eq!((dr.offset, dr.reason), (9, DropReason::UnfinishedRecord));
            }
        }
    }

    #[test]
    fn unknown_type_with_valid_checksum() {
        let mut rec = phys(RecordType::Full, b"zz");
        rec[6] = 9;
        rec[..4].copy_from_slice(&crate::wal::format::record_crc(9, b"zz").to_le_bytes());
        let mut data = rec.clone();
        data.extend_from_slice(&phys(RecordType::Full, b"ok"));
        assert_eq!(corruption_offset(read_all(&data, TORN).1), 0);
        let (_, res, dropped) = read_all(&rec, TORN);
        res.unwrap();
        assert_eq!(dropped.unwrap().reason, DropReason::UnknownType(9));
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = StdRng::seed_from_u64(0x9a3b);
        for _ in 0..300 {
            let len = rng.random_range(0..3 * BLOCK_SIZE);
            let mut data = vec![0u8; len];
            rng.fill(&mut data[..]);
            for mode in [TORN, PIT] {
                let _ = read_all(&data, mode);
            }
        }
    }

    #[test]
    fn mutated_logs_never_panic_and_never_invent_records() {
        let mut rng = StdRng::seed_from_u64(0x10c);
        let records: Vec<Vec<u8>> = (0..40)
            .map(|i| payload(i, rng.random_range(0..5000)))
            .collect();
        let (data, _) = encode_log(&records);
        for _ in 0..300 {
            let mut bad = data.clone();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..bad.len());
                bad[i] = rng.random();
            }
            bad.truncate(rng.random_range(0..=bad.len()));
            for mode in [TORN, PIT] {
                let (got, _, _) = read_all(&bad, mode);
                // crc32c catches these few-byte changes: whatever comes back is a true prefix.
                assert!(got[..] == records[..got.len()]);
            }
        }
    }
}
