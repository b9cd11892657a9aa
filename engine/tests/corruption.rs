//! Damaged files on disk: "a flipped byte in any SST or WAL yields `Corruption`, never a panic,
//! a wrong value or a hang", the WAL recovery modes, and the MANIFEST/CURRENT/table checks of
//! `Db::open`.
//!
//! Every test builds a real database in a temporary directory, closes it, damages one file (a
//! flipped byte, a truncation, a deletion), reopens and reads everything back. A read must return
//! the exact value the model holds or `Error::Corruption`; a key that exists must never read as
//! absent, a key that does not exist must never read as present, and a scan must yield exactly
//! the model's entries in order until it either ends or reports corruption. A watchdog aborts the
//! process if a test runs far longer than it should, so a hang fails instead of stalling CI.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use strata::iter::InternalIterator;
use strata::sstable::{decode_block_contents, Block, BlockHandle, BLOCK_TRAILER_LEN, FOOTER_LEN};
use strata::{Compression, Db, Error, Options, WalRecoveryMode, WriteBatch, WriteOptions};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Aborts the process if it is not dropped within `secs`: a hang becomes a test failure.
struct Watchdog(Option<mpsc::Sender<()>>);

fn watchdog(name: &'static str, secs: u64) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            eprintln!("{name}: still running after {secs} s; the engine hangs");
            std::process::abort();
        }
    });
    Watchdog(Some(tx))
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.take();
    }
}

/// Deterministic bytes: `compressible` ones are text-like (lz4 shrinks them), others are noise.
fn bytes(seed: u64, len: usize, compressible: bool) -> Vec<u8> {
    if compressible {
        let unit = format!("value-{seed}-");
        unit.bytes().cycle().take(len).collect()
    } else {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn only_file_with_ext(dir: &Path, ext: &str) -> PathBuf {
    let v = files_with_ext(dir, ext);
    assert_eq!(
        v.len(),
        1,
        "expected exactly one .{ext} file in {dir:?}: {v:?}"
    );
    v.into_iter().next().unwrap()
}

/// Replaces `dst`'s contents by a copy of every file in `src` (the LOCK file included: a copy
/// is not locked).
fn copy_dir(src: &Path, dst: &Path) {
    if dst.exists() {
        fs::remove_dir_all(dst).unwrap();
    }
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

fn xor_byte(path: &Path, offset: usize, mask: u8) {
    let mut data = fs::read(path).unwrap();
    data[offset] ^= mask;
    fs::write(path, data).unwrap();
}

/// What one round of reads saw.
#[derive(Debug, Default)]
struct Outcome {
    /// Gets that returned `Corruption`.
    get_errors: usize,
    /// The full scan ended with `Corruption`.
    scan_failed: bool,
}

/// Reads every key of `model`, every key of `absent`, and scans everything, asserting that each
/// answer is exact or `Corruption`.
fn check_reads(db: &Db, model: &Model, absent: &[Vec<u8>], ctx: &str) -> Outcome {
    try_check_reads(db, model, absent, ctx).unwrap_or_else(|e| panic!("{e}"))
}

/// [`check_reads`], returning the first violation instead of panicking.
fn try_check_reads(
    db: &Db,
    model: &Model,
    absent: &[Vec<u8>],
    ctx: &str,
) -> Result<Outcome, String> {
    let show = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
    let mut out = Outcome::default();
    for (k, v) in model {
        match db.get(k) {
            Ok(Some(got)) if &got == v => {}
            Ok(Some(got)) => {
                return Err(format!(
                    "{ctx}: get({:?}) returned a wrong value ({} bytes, expected {})",
                    show(k),
                    got.len(),
                    v.len()
                ))
            }
            Ok(None) => {
                return Err(format!(
                    "{ctx}: existing key {:?} read as absent instead of Corruption",
                    show(k)
                ))
            }
            Err(Error::Corruption { .. }) => out.get_errors += 1,
            Err(e) => return Err(format!("{ctx}: get returned a non-corruption error: {e}")),
        }
    }
    for k in absent {
        match db.get(k) {
            Ok(None) | Err(Error::Corruption { .. }) => {}
            Ok(Some(v)) => {
                return Err(format!(
                    "{ctx}: absent key {:?} read as present ({} bytes)",
                    show(k),
                    v.len()
                ))
            }
            Err(e) => return Err(format!("{ctx}: get returned a non-corruption error: {e}")),
        }
    }
    let mut expected = model.iter();
    let mut scan = db.scan::<&[u8]>(..);
    // Bounded: a scan yielding more than the model holds fails below instead of looping.
    for _ in 0..=model.len() {
        match scan.next() {
            Some(Ok((k, v))) => {
                let Some((ek, ev)) = expected.next() else {
                    return Err(format!(
                        "{ctx}: scan yielded {:?} past the last key",
                        show(&k)
                    ));
                };
                if &k != ek || &v != ev {
                    return Err(format!(
                        "{ctx}: scan yielded {:?} ({} bytes) where {:?} ({} bytes) was expected",
                        show(&k),
                        v.len(),
                        show(ek),
                        ev.len()
                    ));
                }
            }
            Some(Err(Error::Corruption { .. })) => {
                out.scan_failed = true;
                if scan.next().is_some() {
                    return Err(format!("{ctx}: scan went on after an error"));
                }
                break;
            }
            Some(Err(e)) => {
                return Err(format!("{ctx}: scan returned a non-corruption error: {e}"))
            }
            None => {
                if let Some((k, _)) = expected.next() {
                    return Err(format!(
                        "{ctx}: scan ended without error before key {:?}",
                        show(k)
                    ));
                }
                break;
            }
        }
    }
    Ok(out)
}

/// Asserts the database holds exactly `model` (no corruption tolerated).
fn assert_exact(db: &Db, model: &Model, absent: &[Vec<u8>], ctx: &str) {
    let o = check_reads(db, model, absent, ctx);
    assert!(
        o.get_errors == 0 && !o.scan_failed,
        "{ctx}: intact database reported corruption: {o:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// SSTables
// ---------------------------------------------------------------------------------------------

const SST_KEYS: u64 = 2000;

fn sst_key(i: u64) -> Vec<u8> {
    format!("key/{:05}/{}", i * 3, "x".repeat((i % 7) as usize)).into_bytes()
}

/// Sizes from empty to larger than a block; runs of 40 keys alternate between compressible and
/// incompressible, so with lz4 some blocks are stored compressed and some raw.
fn sst_value(i: u64, generation: u64) -> Vec<u8> {
    let len = match i % 10 {
        0 => 0,
        1..=6 => 5 + (i * 13 % 120) as usize,
        7 | 8 => 300 + (i * 31 % 500) as usize,
        _ if i % 50 == 9 => 5000 + (i % 977) as usize,
        _ => 1000,
    };
    bytes(i * 7 + generation, len, (i / 40).is_multiple_of(2))
}

/// A closed database holding one table: `SST_KEYS` keys, some overwritten (the older version is
/// in the table too and must never resurface) and some deleted (their tombstones shadow a value
/// in the same table). Returns the model and keys that must read as absent.
fn build_single_table_db(dir: &Path, compression: Compression) -> (Model, Vec<Vec<u8>>) {
    let opts = Options {
        compression,
        ..Options::create()
    };
    let db = Db::open(dir, opts).unwrap();
    let mut model = Model::new();
    let mut absent = Vec::new();
    for i in 0..SST_KEYS {
        db.put(sst_key(i), sst_value(i, 0)).unwrap();
        model.insert(sst_key(i), sst_value(i, 0));
    }
    for i in (0..SST_KEYS).filter(|i| i % 11 == 3) {
        db.put(sst_key(i), sst_value(i, 1)).unwrap();
        model.insert(sst_key(i), sst_value(i, 1));
    }
    for i in (0..SST_KEYS).filter(|i| i % 13 == 5) {
        db.delete(sst_key(i)).unwrap();
        model.remove(&sst_key(i));
        absent.push(sst_key(i));
    }
    // Keys between and around the stored ones.
    absent.extend(
        (0..SST_KEYS)
            .step_by(37)
            .map(|i| format!("key/{:05}", i * 3 + 1).into_bytes()),
    );
    absent.push(b"".to_vec());
    absent.push(b"zzz".to_vec());
    db.flush().unwrap();
    assert_eq!(db.stats().files_per_level[0], 1);
    db.close().unwrap();
    (model, absent)
}

/// Byte ranges of a table file, from its footer and index block.
struct SstLayout {
    data_blocks: Vec<BlockHandle>,
    filter: BlockHandle,
    index: BlockHandle,
    properties: BlockHandle,
    len: usize,
}

fn fixed64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn sst_layout(data: &[u8]) -> SstLayout {
    let f = data.len() - FOOTER_LEN;
    let handle = |at: usize| BlockHandle::new(fixed64(data, f + at), fixed64(data, f + at + 8));
    let (index, filter, properties) = (handle(0), handle(16), handle(32));
    let raw =
        &data[index.offset as usize..(index.offset + index.size) as usize + BLOCK_TRAILER_LEN];
    let block =
        std::sync::Arc::new(Block::new(decode_block_contents(raw).unwrap().into_owned()).unwrap());
    let mut it = block.iter();
    it.seek_to_first();
    let mut data_blocks = Vec::new();
    while it.valid() {
        data_blocks.push(BlockHandle::decode(it.value()).unwrap());
        it.next();
    }
    it.status().unwrap();
    SstLayout {
        data_blocks,
        filter,
        index,
        properties,
        len: data.len(),
    }
}

/// Which region of the table an offset is in, for messages and region-specific expectations.
fn region(l: &SstLayout, off: usize) -> &'static str {
    let within = |h: &BlockHandle| {
        (h.offset as usize..h.offset as usize + h.size as usize + BLOCK_TRAILER_LEN).contains(&off)
    };
    if off >= l.len - FOOTER_LEN {
        "footer"
    } else if within(&l.index) {
        "index"
    } else if l.filter.size > 0 && within(&l.filter) {
        "filter"
    } else if within(&l.properties) {
        "properties"
    } else {
        "data"
    }
}

/// Offsets to damage: a stride over the data blocks plus the first bytes, the restart count
/// and the trailer of every sixteenth data block; the index and filter with a stride plus their
/// edges and trailers; every byte of the properties block and the footer.
fn sst_offsets(l: &SstLayout) -> Vec<usize> {
    let mut v = Vec::new();
    let data_end = l
        .data_blocks
        .last()
        .map_or(0, |h| (h.offset + h.size) as usize + BLOCK_TRAILER_LEN);
    v.extend((0..data_end).step_by(4001));
    for h in l.data_blocks.iter().step_by(16) {
        let (s, e) = (h.offset as usize, (h.offset + h.size) as usize);
        v.extend(s..s + 3);
        v.extend(e - 4..e + BLOCK_TRAILER_LEN);
    }
    let whole =
        |h: &BlockHandle| h.offset as usize..(h.offset + h.size) as usize + BLOCK_TRAILER_LEN;
    for (h, stride) in [(&l.index, 19), (&l.filter, 61)] {
        let r = whole(h);
        v.extend(r.clone().step_by(stride));
        v.extend(r.start..r.start + 4);
        v.extend(r.end - 9..r.end);
    }
    v.extend(whole(&l.properties));
    v.extend(l.len - FOOTER_LEN..l.len);
    v.sort_unstable();
    v.dedup();
    v
}

fn sst_flips(compression: Compression) {
    let _w = watchdog("sst_flips", 120);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let (model, absent) = build_single_table_db(&dir, compression);
    let sst = only_file_with_ext(&dir, "sst");
    let pristine = fs::read(&sst).unwrap();
    let layout = sst_layout(&pristine);
    assert!(
        layout.data_blocks.len() > 50,
        "the table should have many blocks"
    );
    assert!(layout.filter.size > 0, "the table should have a filter");
    let lz4_blocks = layout
        .data_blocks
        .iter()
        .filter(|h| pristine[(h.offset + h.size) as usize] == 1)
        .count();
    match compression {
        Compression::Lz4 => assert!(
            lz4_blocks > 0 && lz4_blocks < layout.data_blocks.len(),
            "expected both lz4 and raw data blocks, got {lz4_blocks} lz4 blocks"
        ),
        Compression::None => assert_eq!(lz4_blocks, 0),
    }

    let model_sample: Model = model
        .iter()
        .step_by(19)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let absent_sample: Vec<Vec<u8>> = absent.iter().step_by(7).cloned().collect();
    let offsets = sst_offsets(&layout);
    let masks = [0x01u8, 0x80, 0xff, 0x10, 0x5a];
    let mut trials = 0;
    for (n, &off) in offsets.iter().enumerate() {
        let mask = masks[n % masks.len()];
        let what = region(&layout, off);
        let mut damaged = pristine.clone();
        damaged[off] ^= mask;
        fs::write(&sst, &damaged).unwrap();

        for paranoid in [true, false] {
            let ctx = format!("{compression:?} table, byte {off} ({what}) ^ {mask:#04x}, paranoid_checks {paranoid}");
            let opts = Options {
                paranoid_checks: paranoid,
                compression,
                ..Options::default()
            };
            let db = match Db::open(&dir, opts) {
                Ok(db) => db,
                Err(Error::Corruption { file, .. }) => {
                    assert!(
                        paranoid,
                        "{ctx}: open failed although tables are not checked"
                    );
                    assert!(file.ends_with(".sst"), "{ctx}: corruption names {file:?}");
                    continue;
                }
                Err(e) => panic!("{ctx}: open returned a non-corruption error: {e}"),
            };
            trials += 1;
            // Footer, index, filter and properties are verified when the table is opened.
            assert!(
                !(paranoid && what != "data"),
                "{ctx}: paranoid open accepted a damaged {what} block"
            );
            // A table that cannot be opened fails every get the same way: a sample of keys
            // suffices there, and keeps the test fast; a damaged data block gets every key.
            let (m, a) = if what == "data" {
                (&model, &absent)
            } else {
                (&model_sample, &absent_sample)
            };
            let o = check_reads(&db, m, a, &ctx);
            // Every byte of a table is under a checksum (or is the magic number), so the damage
            // must be noticed by the full scan, which reads every block.
            assert!(
                o.scan_failed,
                "{ctx}: the damage went unnoticed by a full scan"
            );
            if what != "data" {
                // The table cannot be opened: no key can be answered from it, with the
                // filter damaged no more than with anything else.
                assert_eq!(
                    o.get_errors,
                    m.len(),
                    "{ctx}: some gets succeeded on a table that cannot be opened"
                );
            } else {
                // Only the damaged block's keys fail: a handful, never most of the table (none
                // when the block holds only an older version or a shadowed value, which gets
                // never read but the scan does).
                assert!(
                    o.get_errors < model.len() / 4,
                    "{ctx}: {} gets failed",
                    o.get_errors
                );
            }
            db.close().unwrap();
        }
    }
    assert!(trials > 200, "only {trials} opened trials");

    // Restored, the table reads back completely: the trials above damaged nothing else.
    fs::write(&sst, &pristine).unwrap();
    let db = Db::open(
        &dir,
        Options {
            paranoid_checks: true,
            ..Options::default()
        },
    )
    .unwrap();
    assert_exact(&db, &model, &absent, "restored table");
}

#[test]
fn sst_flipped_byte_is_corruption_or_exact_lz4() {
    sst_flips(Compression::Lz4);
}

#[test]
fn sst_flipped_byte_is_corruption_or_exact_uncompressed() {
    sst_flips(Compression::None);
}

#[test]
fn sst_truncated_or_extended_table_fails_open() {
    let _w = watchdog("sst_truncated", 60);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let (model, absent) = build_single_table_db(&dir, Compression::Lz4);
    let sst = only_file_with_ext(&dir, "sst");
    let name = sst.file_name().unwrap().to_str().unwrap().to_owned();
    let pristine = fs::read(&sst).unwrap();
    let cuts = [
        0,
        1,
        FOOTER_LEN,
        pristine.len() / 2,
        pristine.len() - FOOTER_LEN,
        pristine.len() - 1,
    ];
    for (i, &cut) in cuts.iter().enumerate() {
        fs::write(&sst, &pristine[..cut]).unwrap();
        let r = Db::open(
            &dir,
            Options {
                paranoid_checks: i % 2 == 0,
                ..Options::default()
            },
        );
        match r {
            Err(Error::Corruption { file, .. }) => assert_eq!(file, name, "cut at {cut}"),
            other => panic!("table cut to {cut} bytes: expected Corruption, got {other:?}"),
        }
    }
    let mut longer = pristine.clone();
    longer.push(0);
    fs::write(&sst, &longer).unwrap();
    match Db::open(&dir, Options::default()) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, name),
        other => panic!("table one byte too long: expected Corruption, got {other:?}"),
    }
    fs::write(&sst, &pristine).unwrap();
    let db = Db::open(&dir, Options::default()).unwrap();
    assert_exact(&db, &model, &absent, "restored table");
}

#[test]
fn sst_missing_table_fails_open_naming_it() {
    let _w = watchdog("sst_missing", 60);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let (model, absent) = build_single_table_db(&dir, Compression::None);
    let sst = only_file_with_ext(&dir, "sst");
    let name = sst.file_name().unwrap().to_str().unwrap().to_owned();
    let saved = fs::read(&sst).unwrap();
    fs::remove_file(&sst).unwrap();
    for paranoid in [false, true] {
        match Db::open(
            &dir,
            Options {
                paranoid_checks: paranoid,
                ..Options::default()
            },
        ) {
            Err(Error::Corruption { file, msg, .. }) => {
                assert_eq!(file, name, "the error names the missing table ({msg})")
            }
            other => panic!("missing table: expected Corruption, got {other:?}"),
        }
    }
    // A failed open changed nothing: with the table back, everything is there.
    fs::write(&sst, saved).unwrap();
    let db = Db::open(&dir, Options::default()).unwrap();
    assert_exact(&db, &model, &absent, "table put back");
}

// ---------------------------------------------------------------------------------------------
// WAL
// ---------------------------------------------------------------------------------------------

const LOG_BLOCK: usize = 32 * 1024;
const LOG_HEADER: usize = 7;

/// One logical record of a log file: where it starts (its first header), where it ends (after
/// its last fragment), and the header offset and payload length of each fragment.
#[derive(Debug, Clone)]
struct LogRecord {
    start: usize,
    end: usize,
    fragments: Vec<(usize, usize)>,
}

/// Splits an intact log into logical records, from the format alone (FORMAT.md, "Log").
fn parse_log(data: &[u8]) -> Vec<LogRecord> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut open: Option<LogRecord> = None;
    loop {
        let left = LOG_BLOCK - pos % LOG_BLOCK;
        if left < LOG_HEADER {
            pos += left;
        }
        if pos + LOG_HEADER > data.len() || data[pos + 6] == 0 {
            break;
        }
        let len = u16::from_le_bytes([data[pos + 4], data[pos + 5]]) as usize;
        let end = pos + LOG_HEADER + len;
        match data[pos + 6] {
            1 => out.push(LogRecord {
                start: pos,
                end,
                fragments: vec![(pos, len)],
            }),
            2 => {
                open = Some(LogRecord {
                    start: pos,
                    end,
                    fragments: vec![(pos, len)],
                })
            }
            3 | 4 => {
                let mut r = open
                    .take()
                    .expect("fragment without FIRST in an intact log");
                r.fragments.push((pos, len));
                r.end = end;
                if data[pos + 6] == 4 {
                    out.push(r);
                } else {
                    open = Some(r);
                }
            }
            t => panic!("unknown record type {t} in an intact log"),
        }
        pos = end;
    }
    assert!(open.is_none());
    out
}

const WAL_BATCHES: u64 = 24;
/// Batches this large span several 32 KiB log blocks (FIRST/MIDDLE/LAST fragments).
const BIG_BATCHES: [u64; 3] = [4, 11, 17];

/// Batch `i`: a few fresh keys, an overwrite of a shared key, and a deletion of one of the
/// previous batch's keys, so that the state after each prefix of batches is distinct.
fn wal_batch(i: u64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
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
        for (key, v) in wal_batch(i) {
            match v {
                Some(v) => m.insert(key, v),
                None => m.remove(&key),
            };
        }
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

/// A closed database whose `WAL_BATCHES` synced batches are only in its WAL. Returns the WAL
/// path and its logical records (one per batch).
fn build_wal_db(dir: &Path) -> (PathBuf, Vec<LogRecord>) {
    let db = Db::open(dir, Options::create()).unwrap();
    for i in 0..WAL_BATCHES {
        let mut b = WriteBatch::new();
        for (k, v) in wal_batch(i) {
            match v {
                Some(v) => b.put(k, v),
                None => b.delete(k),
            };
        }
        db.write_opt(b, &WriteOptions { sync: true }).unwrap();
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
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let (wal, records) = build_wal_db(&base);
    let wal_name = wal.file_name().unwrap().to_str().unwrap().to_owned();
    let wal_len = fs::metadata(&wal).unwrap().len() as usize;
    let trial = tmp.path().join("trial");
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
            copy_dir(&base, &trial);
            xor_byte(&trial.join(&wal_name), off, mask);
            match open_mode(&trial, WalRecoveryMode::TolerateTornTail) {
                Err(Error::Corruption { file, .. }) => {
                    assert_eq!(file, wal_name, "{ctx}: the error names the WAL")
                }
                Ok(_) => panic!("{ctx}: default open accepted damage before the tail"),
                Err(e) => panic!("{ctx}: default open: expected Corruption, got {e}"),
            }
            // A failed open leaves the directory usable: point-in-time recovery still works.
            assert_prefix_recovered(
                &trial,
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
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let (wal, records) = build_wal_db(&base);
    let wal_name = wal.file_name().unwrap().to_str().unwrap().to_owned();
    let trial = tmp.path().join("trial");
    let mut failures = Vec::new();
    for (ri, r) in records.iter().enumerate().take(records.len() - 1) {
        let (h, _) = r.fragments[0];
        for (off, mask) in [(h + 4, 0x01u8), (h + 5, 0x80), (h + 5, 0x7f), (h + 4, 0xff)] {
            copy_dir(&base, &trial);
            xor_byte(&trial.join(&wal_name), off, mask);
            match open_mode(&trial, WalRecoveryMode::TolerateTornTail) {
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
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let (wal, records) = build_wal_db(&base);
    let wal_name = wal.file_name().unwrap().to_str().unwrap().to_owned();
    let wal_len = fs::metadata(&wal).unwrap().len() as usize;
    let trial = tmp.path().join("trial");
    let last = records.last().unwrap().clone();
    assert_eq!(last.end, wal_len, "the log ends with the last record");
    let dropped = (wal_len - last.start) as u64;
    for (n, off) in (last.start..last.end).enumerate() {
        let mask = [0x01, 0x80, 0xff][n % 3];
        let ctx = format!("last WAL record, byte {off} ^ {mask:#04x}");
        copy_dir(&base, &trial);
        xor_byte(&trial.join(&wal_name), off, mask);
        let is_length = off == last.start + 4 || off == last.start + 5;
        if is_length {
            // A shorter length leaves non-zero bytes behind: documented as Corruption. A
            // longer one looks torn and is dropped.
            match open_mode(&trial, WalRecoveryMode::TolerateTornTail) {
                Err(Error::Corruption { .. }) => {}
                Err(e) => panic!("{ctx}: non-corruption error {e}"),
                Ok(db) => {
                    drop(db);
                    assert_prefix_recovered(
                        &trial,
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
            &trial,
            WalRecoveryMode::TolerateTornTail,
            WAL_BATCHES - 1,
            dropped,
            &ctx,
        );
    }
    // Point-in-time mode drops the same.
    copy_dir(&base, &trial);
    xor_byte(&trial.join(&wal_name), last.end - 1, 0x01);
    assert_prefix_recovered(
        &trial,
        WalRecoveryMode::PointInTime,
        WAL_BATCHES - 1,
        dropped,
        "PIT, last record",
    );
}

#[test]
fn wal_truncated_anywhere_recovers_a_prefix_of_batches() {
    let _w = watchdog("wal_truncated", 120);
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let (wal, records) = build_wal_db(&base);
    let wal_name = wal.file_name().unwrap().to_str().unwrap().to_owned();
    let data = fs::read(&wal).unwrap();
    let trial = tmp.path().join("trial");

    let mut cuts: Vec<usize> = (0..data.len()).step_by(1231).collect();
    for r in &records {
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
        copy_dir(&base, &trial);
        fs::write(trial.join(&wal_name), &data[..cut]).unwrap();
        let ctx = format!("WAL cut at {cut} of {}", data.len());
        let db = open_mode(&trial, WalRecoveryMode::TolerateTornTail)
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

// ---------------------------------------------------------------------------------------------
// MANIFEST and CURRENT
// ---------------------------------------------------------------------------------------------

/// A closed database with three tables from three flushes (newer tables overwrite and delete
/// keys of older ones, so losing a table shows as wrong values) and a few writes only in the
/// WAL. Its MANIFEST holds the snapshot edit of the last open and one edit per flush.
fn build_manifest_db(dir: &Path) -> (Model, Vec<Vec<u8>>) {
    let db = Db::open(dir, Options::create()).unwrap();
    let mut model = Model::new();
    let mut absent = Vec::new();
    for gen in 0..3u64 {
        for i in 0..150u64 {
            let k = format!("m{:04}", i * (gen + 1)).into_bytes();
            if gen > 0 && i % 10 == 7 {
                db.delete(&k).unwrap();
                model.remove(&k);
                absent.push(k);
            } else {
                let v = bytes(i + gen * 1000, 20 + (i as usize * 5) % 200, i % 2 == 0);
                db.put(&k, &v).unwrap();
                model.insert(k, v);
            }
        }
        db.flush().unwrap();
    }
    for i in 0..20u64 {
        let k = format!("m{:04}", i * 5).into_bytes();
        db.put(&k, b"in the wal").unwrap();
        model.insert(k, b"in the wal".to_vec());
    }
    assert_eq!(db.stats().files_per_level[0], 3);
    db.close().unwrap();
    absent.retain(|k| !model.contains_key(k));
    (model, absent)
}

fn current_manifest(dir: &Path) -> String {
    let s = fs::read_to_string(dir.join("CURRENT")).unwrap();
    s.trim_end().to_owned()
}

#[test]
fn manifest_flipped_byte_is_corruption_or_exact() {
    let _w = watchdog("manifest_flips", 120);
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let (model, absent) = build_manifest_db(&base);
    let manifest = current_manifest(&base);
    let data = fs::read(base.join(&manifest)).unwrap();
    let records = parse_log(&data);
    assert_eq!(records.len(), 4, "snapshot edit + three flush edits");
    let trial = tmp.path().join("trial");
    let mut silent = Vec::new();
    for off in 0..data.len() {
        for mask in [0x01u8, 0x80] {
            let ctx = format!(
                "{manifest} ({} bytes), byte {off} ^ {mask:#04x}",
                data.len()
            );
            copy_dir(&base, &trial);
            xor_byte(&trial.join(&manifest), off, mask);
            for paranoid in [false, true] {
                let opts = Options {
                    paranoid_checks: paranoid,
                    ..Options::default()
                };
                match Db::open(&trial, opts) {
                    Err(Error::Corruption { .. }) => {}
                    Err(e) => panic!("{ctx}: open returned a non-corruption error: {e}"),
                    Ok(db) => {
                        if let Err(msg) = try_check_reads(&db, &model, &absent, &ctx) {
                            silent.push(msg);
                        }
                        // An accepted open has rewritten the MANIFEST: later trials start over.
                        break;
                    }
                }
            }
        }
    }
    assert!(
        silent.is_empty(),
        "{} damaged MANIFESTs were accepted and served wrong data, e.g.:\n{}",
        silent.len(),
        silent
            .iter()
            .take(12)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn current_damaged_is_corruption() {
    let _w = watchdog("current", 60);
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let (model, absent) = build_manifest_db(&base);
    let current = fs::read(base.join("CURRENT")).unwrap();
    let trial = tmp.path().join("trial");
    let mut garbage: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("text".into(), b"hello world\n".to_vec()),
        ("no newline".into(), current[..current.len() - 1].to_vec()),
        ("binary".into(), vec![0xff, 0x00, 0x17, b'\n']),
        (
            "names a missing MANIFEST".into(),
            b"MANIFEST-999999\n".to_vec(),
        ),
        ("names a non-MANIFEST".into(), b"CURRENT\n".to_vec()),
    ];
    for off in 0..current.len() {
        for mask in [0x01u8, 0x04, 0x80] {
            let mut c = current.clone();
            c[off] ^= mask;
            garbage.push((format!("byte {off} ^ {mask:#04x}"), c));
        }
    }
    let mut failures = Vec::new();
    for (what, bytes) in garbage {
        copy_dir(&base, &trial);
        fs::write(trial.join("CURRENT"), &bytes).unwrap();
        match Db::open(&trial, Options::default()) {
            Err(Error::Corruption { .. }) => {}
            Ok(db) => {
                // Only possible if the damage still names the live MANIFEST.
                assert_exact(&db, &model, &absent, &format!("CURRENT {what}"));
            }
            Err(e) => failures.push(format!(
                "CURRENT {what} ({:?}): {e}",
                String::from_utf8_lossy(&bytes)
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "damaged CURRENT files gave non-corruption errors:\n{}",
        failures.join("\n")
    );
    copy_dir(&base, &trial);
    let db = Db::open(&trial, Options::default()).unwrap();
    assert_exact(&db, &model, &absent, "intact copy");
}

#[test]
fn manifest_names_missing_or_resized_tables_fails_open() {
    let _w = watchdog("manifest_tables", 60);
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let (model, absent) = build_manifest_db(&base);
    let tables = files_with_ext(&base, "sst");
    assert_eq!(tables.len(), 3);
    let trial = tmp.path().join("trial");
    for t in &tables {
        let name = t.file_name().unwrap().to_str().unwrap().to_owned();
        let len = fs::metadata(t).unwrap().len() as usize;
        let data = fs::read(t).unwrap();
        let damage: [(&str, Option<Vec<u8>>); 4] = [
            ("deleted", None),
            ("truncated by one byte", Some(data[..len - 1].to_vec())),
            ("emptied", Some(Vec::new())),
            ("extended", Some([&data[..], &[0u8; 100]].concat())),
        ];
        for (what, contents) in damage {
            for paranoid in [false, true] {
                copy_dir(&base, &trial);
                match &contents {
                    None => fs::remove_file(trial.join(&name)).unwrap(),
                    Some(c) => fs::write(trial.join(&name), c).unwrap(),
                }
                let opts = Options {
                    paranoid_checks: paranoid,
                    ..Options::default()
                };
                match Db::open(&trial, opts) {
                    Err(Error::Corruption { file, .. }) => {
                        assert_eq!(file, name, "table {what}: the error names it")
                    }
                    other => panic!("table {name} {what}: expected Corruption, got {other:?}"),
                }
            }
        }
    }
    copy_dir(&base, &trial);
    let db = Db::open(
        &trial,
        Options {
            paranoid_checks: true,
            ..Options::default()
        },
    )
    .unwrap();
    assert_exact(&db, &model, &absent, "intact copy");
}
