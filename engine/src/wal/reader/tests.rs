//! Unit tests of the log reader: round trips at every fragment edge, truncation at every offset,
//! damage in and before the tail under both recovery modes, fragment-sequence errors, and
//! random garbage and mutations that must never panic or invent records.

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
