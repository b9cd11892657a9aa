//! A damaged write-ahead log and the WAL recovery modes: damage before the tail is
//! `Corruption` (and `PointInTime` recovery keeps the batches before it), a damaged or torn last
//! record is dropped alone, and a log cut anywhere recovers a prefix of its batches. No damaged
//! length field may silently drop synced batches.
//!
//! Every test writes `WAL_BATCHES` synced batches that stay in the WAL only, then damages copies
//! of that database; see `common::damage` for the read check they must pass.

use std::fs;
use std::path::{Path, PathBuf};

use strata::{Db, Error, Options, WalRecoveryMode, WriteOptions};

mod common;
use common::damage::{
    assert_exact, bytes, file_name, files_with_ext, only_file_with_ext, watchdog, xor_byte, Scratch,
};
use common::log_records::{parse_log, LogRecord, LOG_BLOCK, LOG_HEADER};
use common::{apply, to_write_batch, Batch, Model};

const WAL_BATCHES: u64 = 24;
/// Batches this large span several 32 KiB log blocks (FIRST/MIDDLE/LAST fragments).
const BIG_BATCHES: [u64; 3] = [4, 11, 17];

/// Batch `i`: a few fresh keys, an overwrite of a shared key, and a deletion of one of the
/// previous batch's keys, so that the state after each prefix of batches is distinct.
fn wal_batch(i: u64) -> Batch {
    let mut ops = Vec::new();
    let n = 1 + i % 4;
    for j in 0..n {
        let len = if BIG_BATCHES.contains(&i) && j == 0 {
            45_000
        } else {
            10 + (i * 7 + j * 3) as usize % 90
        };
        ops.push((
            format!("w{i:03}-{j}").into_bytes(),
            Some(bytes(i * 10 + j, len, j % 2 == 0)),
        ));
    }
    ops.push((b"shared".to_vec(), Some(format!("batch {i}").into_bytes())));
    if i % 2 == 1 {
        ops.push((format!("w{:03}-0", i - 1).into_bytes(), None));
    }
    ops
}

/// The state after batches `0..k`.
fn wal_model(k: u64) -> Model {
    let mut m = Model::new();
    for i in 0..k {
        apply(&mut m, &wal_batch(i));
    }
    m
}

/// Every key any batch touches that is not in `model`.
fn wal_absent(model: &Model) -> Vec<Vec<u8>> {
    (0..WAL_BATCHES)
        .flat_map(wal_batch)
        .map(|(k, _)| k)
        .filter(|k| !model.contains_key(k))
        .collect()
}

/// A database whose `WAL_BATCHES` synced batches are only in its WAL, the WAL's name, bytes
/// and logical records (one per batch), and a place to damage copies of it.
struct WalDb {
    scratch: Scratch,
    wal_name: String,
    data: Vec<u8>,
    records: Vec<LogRecord>,
}

impl WalDb {
    fn build() -> WalDb {
        let scratch = Scratch::new();
        let (wal, records) = build_wal_db(&scratch.base);
        WalDb {
            wal_name: file_name(&wal),
            data: fs::read(&wal).unwrap(),
            records,
            scratch,
        }
    }

    /// A fresh copy of the database with `mask` flipped in byte `off` of its WAL.
    fn damaged_copy(&self, off: usize, mask: u8) -> &Path {
        let trial = self.scratch.reset();
        xor_byte(&trial.join(&self.wal_name), off, mask);
        trial
    }

    /// A fresh copy of the database with its WAL cut to `cut` bytes.
    fn truncated_copy(&self, cut: usize) -> &Path {
        let trial = self.scratch.reset();
        fs::write(trial.join(&self.wal_name), &self.data[..cut]).unwrap();
        trial
    }
}

/// A closed database whose `WAL_BATCHES` synced batches are only in its WAL. Returns the WAL
/// path and its logical records (one per batch).
fn build_wal_db(dir: &Path) -> (PathBuf, Vec<LogRecord>) {
    let db = Db::open(dir, Options::create()).unwrap();
    for i in 0..WAL_BATCHES {
        db.write_opt(to_write_batch(&wal_batch(i)), &WriteOptions { sync: true })
            .unwrap();
    }
    assert_eq!(db.stats().flushes, 0);
    db.close().unwrap();
    assert!(files_with_ext(dir, "sst").is_empty(), "nothing was flushed");
    let wal = only_file_with_ext(dir, "log");
    let records = parse_log(&fs::read(&wal).unwrap());
    assert_eq!(
        records.len() as u64,
        WAL_BATCHES,
        "one log record per synced batch"
    );
    for &i in &BIG_BATCHES {
        assert!(
            records[i as usize].fragments.len() > 1,
            "batch {i} should be fragmented"
        );
    }
    assert!(records.last().unwrap().fragments.len() == 1);
    (wal, records)
}

fn open_mode(dir: &Path, mode: WalRecoveryMode) -> strata::Result<Db> {
    Db::open(
        dir,
        Options {
            wal_recovery_mode: mode,
            ..Options::default()
        },
    )
}

/// Opens `dir` in `mode` and asserts it holds exactly the first `k` batches and reports
/// `dropped` bytes; then reopens (default mode) and asserts the same state survived.
fn assert_prefix_recovered(dir: &Path, mode: WalRecoveryMode, k: u64, dropped: u64, ctx: &str) {
    let db = match open_mode(dir, mode) {
        Ok(db) => db,
        Err(e) => panic!("{ctx}: open in {mode:?} failed: {e}"),
    };
    let model = wal_model(k);
    assert_exact(&db, &model, &wal_absent(&model), ctx);
    assert_eq!(
        db.stats().wal_recovery_dropped_bytes,
        dropped,
        "{ctx}: dropped bytes"
    );
    db.close().unwrap();
    let db = open_mode(dir, WalRecoveryMode::TolerateTornTail)
        .unwrap_or_else(|e| panic!("{ctx}: reopen after recovery failed: {e}"));
    assert_exact(
        &db,
        &model,
        &wal_absent(&model),
        &format!("{ctx}, reopened"),
    );
    assert_eq!(
        db.stats().wal_recovery_dropped_bytes,
        0,
        "{ctx}: reopened: nothing left to drop"
    );
}

/// Offsets inside record `r` that are not its fragments' length fields: checksum, type and
/// payload bytes (a sample of the payload for long fragments).
fn non_length_offsets(r: &LogRecord) -> Vec<usize> {
    let mut v = Vec::new();
    for &(h, len) in &r.fragments {
        v.extend([h, h + 1, h + 2, h + 3, h + 6]);
        let p = h + LOG_HEADER;
        if len > 0 {
            v.extend([p, p + len / 2, p + len - 1]);
            v.extend((p..p + len).step_by(4099));
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

#[test]
fn wal_damage_before_the_tail_is_corruption_and_point_in_time_keeps_a_prefix() {
    let _w = watchdog("wal_middle", 120);
    let w = WalDb::build();
    let (records, wal_len) = (&w.records, w.data.len());
    let mid = records.len() / 2;
    // The middle record, a fragmented one, the first and the one before the last.
    for ri in [mid, BIG_BATCHES[1] as usize, 0, records.len() - 2] {
        let r = &records[ri];
        for (n, off) in non_length_offsets(r).into_iter().enumerate() {
            let mask = [0x01, 0x80, 0xff][n % 3];
            let ctx = format!(
                "WAL record {ri} (of {}), byte {off} ^ {mask:#04x}",
                records.len()
            );
            let trial = w.damaged_copy(off, mask);
            match open_mode(trial, WalRecoveryMode::TolerateTornTail) {
                Err(Error::Corruption { file, .. }) => {
                    assert_eq!(file, w.wal_name, "{ctx}: the error names the WAL")
                }
                Ok(_) => panic!("{ctx}: default open accepted damage before the tail"),
                Err(e) => panic!("{ctx}: default open: expected Corruption, got {e}"),
            }
            // A failed open leaves the directory usable: point-in-time recovery still works.
            assert_prefix_recovered(
                trial,
                WalRecoveryMode::PointInTime,
                ri as u64,
                (wal_len - r.start) as u64,
                &ctx,
            );
        }
    }
}

#[test]
fn wal_flipped_length_field_before_the_tail_is_never_silently_dropped() {
    // A length field damaged upward can claim more bytes than the file has, which is what a
    // torn append looks like (FORMAT.md's "known limit"); but a record with synced records
    // behind it is not at the tail, and dropping it silently loses acknowledged writes.
    let _w = watchdog("wal_length", 120);
    let w = WalDb::build();
    let records = &w.records;
    let mut failures = Vec::new();
    for (ri, r) in records.iter().enumerate().take(records.len() - 1) {
        let (h, _) = r.fragments[0];
        for (off, mask) in [(h + 4, 0x01u8), (h + 5, 0x80), (h + 5, 0x7f), (h + 4, 0xff)] {
            match open_mode(w.damaged_copy(off, mask), WalRecoveryMode::TolerateTornTail) {
                Err(Error::Corruption { .. }) => {}
                Err(e) => panic!("record {ri}, byte {off} ^ {mask:#04x}: non-corruption error {e}"),
                Ok(db) => {
                    let lost = WAL_BATCHES - ri as u64;
                    failures.push(format!(
                        "record {ri} at {} (block {}), byte {off} ^ {mask:#04x}: open Ok, \
                         dropped {} bytes, {lost} synced batches lost",
                        r.start,
                        r.start / LOG_BLOCK,
                        db.stats().wal_recovery_dropped_bytes
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "a damaged length field silently dropped acknowledged batches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn wal_damaged_last_record_is_dropped_alone() {
    let _w = watchdog("wal_last", 60);
    let w = WalDb::build();
    let wal_len = w.data.len();
    let last = w.records.last().unwrap().clone();
    assert_eq!(last.end, wal_len, "the log ends with the last record");
    let dropped = (wal_len - last.start) as u64;
    for (n, off) in (last.start..last.end).enumerate() {
        let mask = [0x01, 0x80, 0xff][n % 3];
        let ctx = format!("last WAL record, byte {off} ^ {mask:#04x}");
        let trial = w.damaged_copy(off, mask);
        let is_length = off == last.start + 4 || off == last.start + 5;
        if is_length {
            // A shorter length leaves non-zero bytes behind: documented as Corruption. A
            // longer one looks torn and is dropped.
            match open_mode(trial, WalRecoveryMode::TolerateTornTail) {
                Err(Error::Corruption { .. }) => {}
                Err(e) => panic!("{ctx}: non-corruption error {e}"),
                Ok(db) => {
                    drop(db);
                    assert_prefix_recovered(
                        trial,
                        WalRecoveryMode::TolerateTornTail,
                        WAL_BATCHES - 1,
                        0,
                        &ctx,
                    );
                }
            }
            continue;
        }
        assert_prefix_recovered(
            trial,
            WalRecoveryMode::TolerateTornTail,
            WAL_BATCHES - 1,
            dropped,
            &ctx,
        );
    }
    // Point-in-time mode drops the same.
    assert_prefix_recovered(
        w.damaged_copy(last.end - 1, 0x01),
        WalRecoveryMode::PointInTime,
        WAL_BATCHES - 1,
        dropped,
        "PIT, last record",
    );
}

#[test]
fn wal_truncated_anywhere_recovers_a_prefix_of_batches() {
    let _w = watchdog("wal_truncated", 120);
    let w = WalDb::build();
    let (records, data) = (&w.records, &w.data);

    let mut cuts: Vec<usize> = (0..data.len()).step_by(1231).collect();
    for r in records {
        for &(h, len) in &r.fragments {
            for c in [h, h + 1, h + 6, h + 7, h + 8, h + LOG_HEADER + len - 1] {
                cuts.push(c);
            }
        }
        cuts.push(r.end);
    }
    cuts.extend((1..=data.len() / LOG_BLOCK).map(|b| b * LOG_BLOCK));
    cuts.extend(data.len() - 40..data.len());
    cuts.retain(|&c| c <= data.len());
    cuts.sort_unstable();
    cuts.dedup();
    for &cut in &cuts {
        let k = records.iter().take_while(|r| r.end <= cut).count();
        let dropped = match records.get(k) {
            Some(r) if r.start < cut && data[r.start..cut].iter().any(|&b| b != 0) => cut - r.start,
            _ => 0,
        };
        let ctx = format!("WAL cut at {cut} of {}", data.len());
        let db = open_mode(w.truncated_copy(cut), WalRecoveryMode::TolerateTornTail)
            .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
        let model = wal_model(k as u64);
        assert_exact(&db, &model, &wal_absent(&model), &ctx);
        assert_eq!(
            db.stats().wal_recovery_dropped_bytes,
            dropped as u64,
            "{ctx}: dropped bytes"
        );
    }
}
