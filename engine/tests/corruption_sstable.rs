//! Damaged tables: a flipped byte anywhere in an SSTable (with and without lz4 blocks) yields
//! `Corruption` or the exact answer, never a panic, a wrong value or a hang; a table that is
//! truncated, extended or missing makes `Db::open` fail naming it.
//!
//! See `common::damage` for the read check every damaged database must pass and the watchdog
//! that turns a hang into a failure.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use strata::iter::InternalIterator;
use strata::sstable::{decode_block_contents, Block, BlockHandle, BLOCK_TRAILER_LEN, FOOTER_LEN};
use strata::{Compression, Db, Error, Options};

mod common;
use common::damage::{
    assert_corruption_in, assert_exact, build_three_table_db, bytes, check_reads, file_name,
    files_with_ext, only_file_with_ext, open_paranoid, watchdog, Scratch,
};
use common::Model;

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

/// A closed database holding one table, the table's path and pristine bytes, the model of
/// what it holds and keys that must read as absent.
struct SingleTable {
    _tmp: TempDir,
    dir: PathBuf,
    sst: PathBuf,
    pristine: Vec<u8>,
    model: Model,
    absent: Vec<Vec<u8>>,
}

impl SingleTable {
    fn build(compression: Compression) -> SingleTable {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        let (model, absent) = build_single_table_db(&dir, compression);
        let sst = only_file_with_ext(&dir, "sst");
        let pristine = fs::read(&sst).unwrap();
        SingleTable {
            _tmp: tmp,
            dir,
            sst,
            pristine,
            model,
            absent,
        }
    }

    /// Puts the pristine table back and asserts that everything reads back exactly: the
    /// damage and the failed opens before changed nothing else.
    fn assert_restored(&self, paranoid: bool, ctx: &str) {
        fs::write(&self.sst, &self.pristine).unwrap();
        let db = open_paranoid(&self.dir, paranoid).unwrap();
        assert_exact(&db, &self.model, &self.absent, ctx);
    }
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
    let t = SingleTable::build(compression);
    let (dir, sst, pristine, model, absent) = (&t.dir, &t.sst, &t.pristine, &t.model, &t.absent);
    let layout = sst_layout(pristine);
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
        let mut damaged = pristine.to_vec();
        damaged[off] ^= mask;
        fs::write(sst, &damaged).unwrap();

        for paranoid in [true, false] {
            let ctx = format!("{compression:?} table, byte {off} ({what}) ^ {mask:#04x}, paranoid_checks {paranoid}");
            let opts = Options {
                paranoid_checks: paranoid,
                compression,
                ..Options::default()
            };
            let db = match Db::open(dir, opts) {
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
                (model, absent)
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
    t.assert_restored(true, "restored table");
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
    let t = SingleTable::build(Compression::Lz4);
    let (dir, sst, pristine) = (&t.dir, &t.sst, &t.pristine);
    let name = file_name(sst);
    let cuts = [
        0,
        1,
        FOOTER_LEN,
        pristine.len() / 2,
        pristine.len() - FOOTER_LEN,
        pristine.len() - 1,
    ];
    for (i, &cut) in cuts.iter().enumerate() {
        fs::write(sst, &pristine[..cut]).unwrap();
        let ctx = format!("table cut to {cut} bytes");
        assert_corruption_in(open_paranoid(dir, i % 2 == 0), &name, &ctx);
    }
    let mut longer = pristine.clone();
    longer.push(0);
    fs::write(sst, &longer).unwrap();
    assert_corruption_in(
        Db::open(dir, Options::default()),
        &name,
        "table one byte too long",
    );
    t.assert_restored(false, "restored table");
}

#[test]
fn sst_missing_table_fails_open_naming_it() {
    let _w = watchdog("sst_missing", 60);
    let t = SingleTable::build(Compression::None);
    let name = file_name(&t.sst);
    fs::remove_file(&t.sst).unwrap();
    for paranoid in [false, true] {
        let ctx = format!("missing table, paranoid_checks {paranoid}");
        assert_corruption_in(open_paranoid(&t.dir, paranoid), &name, &ctx);
    }
    // A failed open changed nothing: with the table back, everything is there.
    t.assert_restored(false, "table put back");
}

#[test]
fn manifest_names_missing_or_resized_tables_fails_open() {
    let _w = watchdog("manifest_tables", 60);
    let scratch = Scratch::new();
    let (model, absent) = build_three_table_db(&scratch.base);
    let tables = files_with_ext(&scratch.base, "sst");
    assert_eq!(tables.len(), 3);
    for t in &tables {
        let name = file_name(t);
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
                let table = scratch.reset().join(&name);
                match &contents {
                    None => fs::remove_file(table).unwrap(),
                    Some(c) => fs::write(table, c).unwrap(),
                }
                let ctx = format!("table {name} {what}, paranoid_checks {paranoid}");
                assert_corruption_in(open_paranoid(&scratch.trial, paranoid), &name, &ctx);
            }
        }
    }
    let db = open_paranoid(scratch.reset(), true).unwrap();
    assert_exact(&db, &model, &absent, "intact copy");
}
