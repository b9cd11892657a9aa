//! Whole table files: `Table::open`, full iteration, `get`.
//!
//! First byte even: the rest is an arbitrary file. Errors are fine; panics, hangs and huge
//! allocations are not.
//!
//! First byte odd: the rest describes a table (builder options and sorted entries), which is
//! built with `TableBuilder`, then optionally damaged (byte flips, truncation) as the input says,
//! and read back. An undamaged table must return exactly what was written, through iteration,
//! exact gets and newest-version gets. A damaged one may fail anywhere, but whatever it does
//! return must be an entry that was written (every part of a table is checksummed).
#![no_main]

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata::cache::BlockCache;
use strata::iter::InternalIterator;
use strata::key::{compare_internal_keys, seek_key, user_key, MAX_SEQNO};
use strata::sstable::{Compression, Table, TableBuilder, TableBuilderOptions};
use strata_fuzz::{internal_entries, Cursor, MemFile, VecSink};

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Every entry the table iterator yields before it ends or fails.
fn iterate(table: &Arc<Table>, limit: usize) -> (Entries, bool) {
    let mut it = table.iter();
    it.seek_to_first();
    let mut out = Vec::new();
    while it.valid() {
        assert!(out.len() <= limit, "table iterator does not make progress");
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.next();
    }
    let ok = it.status().is_ok();
    (out, ok)
}

fn arbitrary_file(bytes: &[u8]) {
    let len = bytes.len();
    let cache = Arc::new(BlockCache::with_shards(1 << 16, 1));
    let Ok(table) = Table::open(Arc::new(MemFile(bytes.to_vec())), 7, Some(cache)) else {
        return;
    };
    let (entries, _) = iterate(&table, len);
    let mut targets: Vec<Vec<u8>> = entries.iter().take(8).map(|e| e.0.clone()).collect();
    targets.extend(bytes.chunks(13).take(4).map(<[u8]>::to_vec));
    for t in &targets {
        let uk = user_key(t).to_vec();
        if let Ok(Some((k, _))) = table.get(t, &uk) {
            assert_eq!(user_key(&k), &uk[..], "get returned another user key");
        }
        let _ = table.get(&seek_key(&uk, MAX_SEQNO), &uk);
        let mut it = table.iter();
        it.seek(t);
        if it.valid() {
            // Only holds where the file's blocks are sorted; a forged file need not be.
            let _ = compare_internal_keys(it.key(), t);
        }
    }
    let _ = table.may_contain(b"a");
    let _ = table.memory_usage();
}

/// The first written entry `>= target` if it has `user` as user key: what `get` must return.
fn expected_get(entries: &Entries, target: &[u8], user: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    entries
        .iter()
        .find(|e| compare_internal_keys(&e.0, target) != Ordering::Less)
        .filter(|e| user_key(&e.0) == user)
        .cloned()
}

fn built_table(c: &mut Cursor<'_>) {
    let opts = TableBuilderOptions {
        block_size: 32 + (c.u8() as usize) * 8,
        block_restart_interval: (c.u8() % 16) as usize + 1,
        bloom_bits_per_key: [0, 1, 10, 20][(c.u8() % 4) as usize],
        compression: if c.u8() & 1 == 0 { Compression::None } else { Compression::Lz4 },
    };
    let entries = internal_entries(c, 255);
    let sink = VecSink::default();
    let mut builder = TableBuilder::new(opts, Box::new(sink.clone()));
    for (k, v) in &entries {
        builder.add(k, v).expect("sorted entries are accepted");
    }
    let summary = builder.finish().expect("in-memory table finishes");
    let mut bytes = sink.0.lock().unwrap().clone();
    assert_eq!(summary.file_size as usize, bytes.len());
    assert_eq!(summary.properties.num_entries as usize, entries.len());

    // Damage: up to 4 byte flips, maybe a truncation.
    let damage = c.u8();
    let mut damaged = false;
    for _ in 0..(damage & 3) {
        let at = c.u16() as usize;
        let mask = c.u8() | 1;
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] ^= mask;
            damaged = true;
        }
    }
    if damage & 4 != 0 {
        let cut = c.u16() as usize % (bytes.len() + 1);
        damaged |= cut < bytes.len();
        bytes.truncate(cut);
    }
    let written: BTreeMap<Vec<u8>, Vec<u8>> = entries.iter().cloned().collect();
    let len = bytes.len();

    let table = match Table::open(Arc::new(MemFile(bytes)), 9, Some(Arc::new(BlockCache::new(1 << 20)))) {
        Ok(t) => t,
        Err(e) => {
            assert!(damaged, "undamaged table fails to open: {e}");
            return;
        }
    };
    let (got, ok) = iterate(&table, len);
    if damaged {
        for (k, v) in &got {
            assert_eq!(written.get(k), Some(v), "damaged table invents entry {k:?}");
        }
    } else {
        assert!(ok, "undamaged table fails to iterate: {:?}", table.iter().status());
        assert_eq!(got, entries, "table does not return what was written");
        assert_eq!(table.properties().num_entries as usize, entries.len());
    }

    // Gets: every written key exactly, the newest version of every user key, some absent keys.
    let mut probes: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (k, _) in entries.iter().take(64) {
        let uk = user_key(k).to_vec();
        probes.push((k.clone(), uk.clone()));
        probes.push((seek_key(&uk, MAX_SEQNO), uk.clone()));
        probes.push((seek_key(&uk, 40), uk));
    }
    while !c.is_empty() && probes.len() < 200 {
        let uk = c.small_key();
        let seq = u64::from(c.u8());
        probes.push((seek_key(&uk, seq), uk));
    }
    for (target, uk) in &probes {
        match table.get(target, uk) {
            Ok(Some((k, v))) => {
                assert_eq!(written.get(&k), Some(&v), "get({target:?}) returned an entry never written");
                if !damaged {
                    assert_eq!(Some((k, v)), expected_get(&entries, target, uk), "get({target:?})");
                }
            }
            Ok(None) => {
                if !damaged {
                    assert_eq!(None, expected_get(&entries, target, uk), "get({target:?}) missed");
                }
            }
            Err(e) => assert!(damaged, "undamaged table fails get: {e}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    if c.u8() & 1 == 0 {
        arbitrary_file(c.rest());
    } else {
        built_table(&mut c);
    }
});
