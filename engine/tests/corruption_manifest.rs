//! A damaged MANIFEST or CURRENT file: a flipped byte in the MANIFEST is `Corruption` or an
//! open that serves exactly the right data; any damage to CURRENT is `Corruption` (or, if it
//! still names the live MANIFEST, the exact data), never another error.
//!
//! The database has three tables and writes in its WAL (`common::damage::build_three_table_db`);
//! each trial damages a fresh copy of it.

use std::fs;
use std::path::Path;

use strata::{Db, Error, Options};

mod common;
use common::damage::{
    assert_exact, build_three_table_db, open_paranoid, try_check_reads, watchdog, xor_byte, Scratch,
};
use common::log_records::parse_log;

fn current_manifest(dir: &Path) -> String {
    let s = fs::read_to_string(dir.join("CURRENT")).unwrap();
    s.trim_end().to_owned()
}

#[test]
fn manifest_flipped_byte_is_corruption_or_exact() {
    let _w = watchdog("manifest_flips", 120);
    let scratch = Scratch::new();
    let (model, absent) = build_three_table_db(&scratch.base);
    let manifest = current_manifest(&scratch.base);
    let data = fs::read(scratch.base.join(&manifest)).unwrap();
    let records = parse_log(&data);
    assert_eq!(records.len(), 4, "snapshot edit + three flush edits");
    let mut silent = Vec::new();
    for off in 0..data.len() {
        for mask in [0x01u8, 0x80] {
            let ctx = format!(
                "{manifest} ({} bytes), byte {off} ^ {mask:#04x}",
                data.len()
            );
            let trial = scratch.reset();
            xor_byte(&trial.join(&manifest), off, mask);
            for paranoid in [false, true] {
                match open_paranoid(trial, paranoid) {
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
    let scratch = Scratch::new();
    let (model, absent) = build_three_table_db(&scratch.base);
    let current = fs::read(scratch.base.join("CURRENT")).unwrap();
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
        let trial = scratch.reset();
        fs::write(trial.join("CURRENT"), &bytes).unwrap();
        match Db::open(trial, Options::default()) {
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
    let db = Db::open(scratch.reset(), Options::default()).unwrap();
    assert_exact(&db, &model, &absent, "intact copy");
}
