//! Table-level tests: build, open, iterate, get, corruption and truncation.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::cache::BlockCache;
use crate::fs::{ReadableFile, WritableFile};
use crate::iter::InternalIterator;
use crate::key::{self, make_internal_key, seek_key, ValueKind, MAX_SEQNO};

struct MemFile(Vec<u8>);

impl ReadableFile for MemFile {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Appends to a shared buffer; records whether `sync` was called.
#[derive(Clone, Default)]
struct SharedSink {
    buf: Arc<Mutex<Vec<u8>>>,
    synced: Arc<AtomicBool>,
}

impl WritableFile for SharedSink {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.lock().unwrap().extend_from_slice(data);
        self.synced.store(false, AtomicOrdering::SeqCst);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.synced.store(true, AtomicOrdering::SeqCst);
        Ok(())
    }
}

struct FailingFile {
    budget: usize,
}

impl WritableFile for FailingFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() > self.budget {
            return Err(io::Error::other("disk full"));
        }
        self.budget -= data.len();
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn user_key_of(i: usize) -> Vec<u8> {
    format!("user-{:08}", i * 3).into_bytes()
}

/// `n` user keys; every 5th has an older version too, every 7th newest version is a tombstone.
fn make_entries(n: usize) -> Entries {
    let mut out = Vec::new();
    for i in 0..n {
        let uk = user_key_of(i);
        let seq = 10 + 2 * i as u64;
        let newest_kind = if i % 7 == 0 {
            ValueKind::Deletion
        } else {
            ValueKind::Value
        };
        let value = if newest_kind == ValueKind::Deletion {
            Vec::new()
        } else {
            format!("value-{i}-").repeat(1 + i % 5).into_bytes()
        };
        out.push((make_internal_key(&uk, seq + 1, newest_kind), value));
        if i % 5 == 0 {
            out.push((
                make_internal_key(&uk, seq, ValueKind::Value),
                format!("old-{i}").into_bytes(),
            ));
        }
    }
    out
}

fn build(entries: &Entries, opts: TableBuilderOptions) -> (Vec<u8>, TableSummary) {
    let sink = SharedSink::default();
    // Without compression the estimate never shrinks (a cut block only adds its trailer).
    let monotone = opts.compression == Compression::None;
    let mut b = TableBuilder::new(opts, Box::new(sink.clone()));
    let mut last_estimate = 0;
    for (k, v) in entries {
        b.add(k, v).unwrap();
        assert!(!monotone || b.estimated_file_size() >= last_estimate);
        last_estimate = b.estimated_file_size();
    }
    assert_eq!(b.num_entries(), entries.len() as u64);
    let summary = b.finish().unwrap();
    assert!(sink.synced.load(AtomicOrdering::SeqCst), "finish must sync");
    let bytes = sink.buf.lock().unwrap().clone();
    assert_eq!(summary.file_size, bytes.len() as u64);
    (bytes, summary)
}

fn open(bytes: Vec<u8>, cache: Option<Arc<BlockCache>>) -> Result<Arc<Table>, crate::Error> {
    Table::open(Arc::new(MemFile(bytes)), 42, cache)
}

fn scan(table: &Arc<Table>) -> Entries {
    let mut it = table.iter();
    it.seek_to_first();
    let mut out = Vec::new();
    while it.valid() {
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.next();
    }
    it.status().unwrap();
    out
}

fn all_options() -> Vec<TableBuilderOptions> {
    let mut v = Vec::new();
    for compression in [Compression::None, Compression::Lz4] {
        for bloom_bits_per_key in [0, 10] {
            v.push(TableBuilderOptions {
                compression,
                bloom_bits_per_key,
                ..TableBuilderOptions::default()
            });
        }
    }
    v
}

#[test]
fn shared_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Table>();
    send_sync::<BlockCache>();
    send_sync::<Block>();
    send::<TableIterator>();
    send::<BlockIter>();
    send::<TableBuilder>();
}

#[test]
fn build_open_iterate_get_all_configurations() {
    let n = 3000;
    let entries = make_entries(n);
    for opts in all_options() {
        let (bytes, summary) = build(&entries, opts.clone());
        let p = &summary.properties;
        assert_eq!(p.num_entries, entries.len() as u64);
        assert_eq!(p.num_deletions, n.div_ceil(7) as u64);
        assert_eq!(p.smallest_key, entries[0].0);
        assert_eq!(p.largest_key, entries.last().unwrap().0);
        assert_eq!(
            (p.min_seqno, p.max_seqno),
            (10, 10 + 2 * (n as u64 - 1) + 1)
        );
        assert!(p.num_data_blocks > 10, "{}", p.num_data_blocks);
        assert_eq!(p.filter_size > 0, opts.bloom_bits_per_key > 0);
        assert_eq!(p.compression, opts.compression);
        let raw: u64 = entries
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum();
        if opts.compression == Compression::Lz4 {
            assert!(p.data_size < raw / 2, "lz4 should shrink repetitive values");
        }

        for cache in [None, Some(Arc::new(BlockCache::new(1 << 20)))] {
            let table = open(bytes.clone(), cache.clone()).unwrap();
            assert_eq!(table.properties(), p);
            assert!(table.memory_usage() >= table.properties().index_size as usize / 2);
            assert_eq!(scan(&table), entries);

            // Newest version of every key, and older versions through older snapshots.
            for (i, (ikey, value)) in entries.iter().enumerate() {
                let uk = key::user_key(ikey);
                let parsed = key::parse_internal_key(ikey).unwrap();
                let got = table.get(&seek_key(uk, parsed.seq), uk).unwrap();
                assert_eq!(got, Some((ikey.clone(), value.clone())), "entry {i}");
                assert!(table.may_contain(uk));
            }
            // Absent keys: between present ones, before, after; and present keys at a snapshot
            // older than any of their versions.
            for i in 0..n {
                let absent = format!("user-{:08}", i * 3 + 1).into_bytes();
                assert_eq!(
                    table.get(&seek_key(&absent, MAX_SEQNO), &absent).unwrap(),
                    None
                );
                let uk = user_key_of(i);
                assert_eq!(table.get(&seek_key(&uk, 5), &uk).unwrap(), None);
            }
            for absent in [&b""[..], b"a", b"zzzz", b"user-"] {
                assert_eq!(
                    table.get(&seek_key(absent, MAX_SEQNO), absent).unwrap(),
                    None
                );
            }
            if let Some(c) = &cache {
                assert!(c.hits() > 0 && c.misses() > 0);
                assert!(c.usage() > 0 && c.usage() <= c.capacity());
            }
        }
    }
}

#[test]
fn iterator_seeks_to_every_key_and_between() {
    let entries = make_entries(1500);
    let opts = TableBuilderOptions {
        block_size: 512,
        ..TableBuilderOptions::default()
    };
    let (bytes, _) = build(&entries, opts);
    let table = open(bytes, None).unwrap();
    let mut it = table.iter();
    for (i, (ikey, _)) in entries.iter().enumerate() {
        it.seek(ikey);
        assert!(it.valid());
        assert_eq!(it.key(), &ikey[..]);
        // A seek key for the user key lands on its newest version.
        let uk = key::user_key(ikey);
        it.seek(&seek_key(uk, MAX_SEQNO));
        assert_eq!(key::user_key(it.key()), uk);
        // Just after this entry: the next entry.
        let p = key::parse_internal_key(ikey).unwrap();
        if p.seq > 0 {
            it.seek(&seek_key(uk, p.seq - 1));
            match entries.get(i + 1) {
                Some((next, _)) => assert_eq!(it.key(), &next[..], "after {i}"),
                None => assert!(!it.valid()),
            }
        }
    }
    // Between user keys, and after the end.
    it.seek(&seek_key(b"user-00000001", MAX_SEQNO));
    assert_eq!(key::user_key(it.key()), b"user-00000003");
    it.seek(&seek_key(b"zzz", MAX_SEQNO));
    assert!(!it.valid());
    it.status().unwrap();
    // Iteration after a seek continues across blocks.
    it.seek(&entries[700].0);
    let mut rest = Vec::new();
    while it.valid() {
        rest.push((it.key().to_vec(), it.value().to_vec()));
        it.next();
    }
    assert_eq!(rest, entries[700..]);
}

#[test]
fn empty_table() {
    let (bytes, summary) = build(&Vec::new(), TableBuilderOptions::default());
    assert_eq!(summary.properties.num_entries, 0);
    let table = open(bytes, None).unwrap();
    assert!(scan(&table).is_empty());
    let mut it = table.iter();
    it.seek(b"anything");
    assert!(!it.valid());
    it.status().unwrap();
    assert_eq!(table.get(&seek_key(b"k", 1), b"k").unwrap(), None);
}

#[test]
fn value_of_16_mib_and_tiny_neighbours() {
    let big: Vec<u8> = (0..16usize << 20)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect();
    let entries = vec![
        (
            make_internal_key(b"a", 3, ValueKind::Value),
            b"small".to_vec(),
        ),
        (make_internal_key(b"big", 2, ValueKind::Value), big.clone()),
        (make_internal_key(b"c", 1, ValueKind::Value), Vec::new()),
    ];
    for compression in [Compression::None, Compression::Lz4] {
        let opts = TableBuilderOptions {
            compression,
            ..TableBuilderOptions::default()
        };
        let (bytes, _) = build(&entries, opts);
        let table = open(bytes, Some(Arc::new(BlockCache::new(1 << 20)))).unwrap();
        let got = table.get(&seek_key(b"big", 9), b"big").unwrap().unwrap();
        assert!(got.1 == big);
        assert!(scan(&table) == entries);
    }
}

#[test]
fn builder_rejects_bad_keys_without_panicking() {
    let mut b = TableBuilder::new(
        TableBuilderOptions::default(),
        Box::new(SharedSink::default()),
    );
    assert!(matches!(
        b.add(b"short", b"v"),
        Err(crate::Error::InvalidArgument(_))
    ));
    let k2 = make_internal_key(b"b", 5, ValueKind::Value);
    b.add(&k2, b"v").unwrap();
    for bad in [
        k2.clone(),                                   // duplicate
        make_internal_key(b"a", 9, ValueKind::Value), // smaller user key
        make_internal_key(b"b", 6, ValueKind::Value), // same user key, newer seq sorts first
    ] {
        assert!(matches!(
            b.add(&bad, b"v"),
            Err(crate::Error::InvalidArgument(_))
        ));
    }
    b.add(&make_internal_key(b"b", 4, ValueKind::Value), b"older")
        .unwrap();
    assert_eq!(b.num_entries(), 2);
    assert_eq!(b.finish().unwrap().properties.num_entries, 2);
}

#[test]
fn builder_io_error_poisons_builder() {
    let opts = TableBuilderOptions {
        block_size: 64,
        ..TableBuilderOptions::default()
    };
    let mut b = TableBuilder::new(opts, Box::new(FailingFile { budget: 100 }));
    let mut failed = false;
    for (k, v) in make_entries(200) {
        match b.add(&k, &v) {
            Ok(()) => {}
            Err(crate::Error::Io(_)) => {
                failed = true;
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(failed);
    let k = make_internal_key(b"zzzz", 1, ValueKind::Value);
    assert!(b.add(&k, b"v").is_err());
    assert!(b.finish().is_err());
}

#[test]
fn block_cache_serves_second_scan() {
    let entries = make_entries(2000);
    let (bytes, summary) = build(&entries, TableBuilderOptions::default());
    let cache = Arc::new(BlockCache::new(8 << 20));
    let table = open(bytes.clone(), Some(cache.clone())).unwrap();
    let blocks = summary.properties.num_data_blocks;
    scan(&table);
    assert_eq!((cache.hits(), cache.misses()), (0, blocks));
    scan(&table);
    assert_eq!((cache.hits(), cache.misses()), (blocks, blocks));
    // A second open of the same file gets a new cache id: no aliasing with the first.
    let again = open(bytes, Some(cache.clone())).unwrap();
    assert_ne!(again.cache_id(), table.cache_id());
    scan(&again);
    assert_eq!(cache.misses(), 2 * blocks);
}

fn small_table() -> (Entries, Vec<u8>) {
    let entries = make_entries(60);
    let opts = TableBuilderOptions {
        block_size: 256,
        block_restart_interval: 4,
        ..TableBuilderOptions::default()
    };
    let (bytes, summary) = build(&entries, opts);
    assert!(summary.properties.num_data_blocks >= 4);
    (entries, bytes)
}

/// Opens, scans and point-reads `bytes`; every outcome must be Ok or Corruption, and every entry
/// returned must be one that was written. Returns whether any corruption was reported.
fn exercise_damaged(bytes: Vec<u8>, written: &BTreeMap<Vec<u8>, Vec<u8>>) -> bool {
    let table = match open(bytes, Some(Arc::new(BlockCache::new(1 << 16)))) {
        Ok(t) => t,
        Err(e) => {
            assert!(e.is_corruption(), "{e}");
            assert!(e.to_string().contains("000042.sst"), "{e}");
            return true;
        }
    };
    let mut detected = false;
    let mut it = table.iter();
    it.seek_to_first();
    let mut steps = 0;
    while it.valid() {
        assert_eq!(
            written.get(it.key()),
            Some(&it.value().to_vec()),
            "iterated a wrong entry"
        );
        it.next();
        steps += 1;
        assert!(steps <= written.len());
    }
    if let Err(e) = it.status() {
        assert!(e.is_corruption(), "{e}");
        detected = true;
    }
    for ikey in written.keys() {
        let uk = key::user_key(ikey);
        let seq = key::parse_internal_key(ikey).unwrap().seq;
        match table.get(&seek_key(uk, seq), uk) {
            Ok(Some((k, v))) => assert_eq!(written.get(&k), Some(&v), "get returned a wrong value"),
            Ok(None) => {}
            Err(e) => {
                assert!(e.is_corruption(), "{e}");
                detected = true;
            }
        }
    }
    detected
}

#[test]
fn every_byte_flip_is_detected_or_harmless() {
    let (entries, bytes) = small_table();
    let written: BTreeMap<_, _> = entries.into_iter().collect();
    let mut detected = 0;
    for i in 0..bytes.len() {
        for x in [0x01u8, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= x;
            if exercise_damaged(bad, &written) {
                detected += 1;
            }
        }
    }
    // Every byte is covered by a checksum or the magic, and the exercise touches every block.
    assert_eq!(detected, 2 * bytes.len());
}

#[test]
fn truncated_files_are_corruption() {
    let (_, bytes) = small_table();
    for cut in 0..bytes.len() {
        let err = open(bytes[..cut].to_vec(), None).unwrap_err();
        assert!(err.is_corruption(), "cut {cut}: {err}");
    }
    // Garbage appended after the footer also fails (the magic is no longer at the end).
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 10]);
    assert!(open(longer, None).unwrap_err().is_corruption());
}

/// Returns the handles of the data blocks, read through the public decoders.
fn data_handles(bytes: &[u8]) -> Vec<BlockHandle> {
    let footer = Footer::decode(&bytes[bytes.len() - FOOTER_LEN..]).unwrap();
    let ih = footer.index;
    let raw = &bytes[ih.offset as usize..(ih.offset + ih.size) as usize + BLOCK_TRAILER_LEN];
    let index = Arc::new(Block::new(decode_block_contents(raw).unwrap().into_owned()).unwrap());
    let mut it = index.iter();
    it.seek_to_first();
    let mut out = Vec::new();
    while it.valid() {
        out.push(BlockHandle::decode(it.value()).unwrap());
        it.next();
    }
    out
}

/// Mutations with a re-computed checksum reach the block decoder itself: it must not panic or
/// loop (values may legitimately differ, so only the outcome kinds are checked).
#[test]
fn checksum_valid_garbage_in_data_blocks_never_panics() {
    let entries = make_entries(60);
    for compression in [Compression::None, Compression::Lz4] {
        let opts = TableBuilderOptions {
            block_size: 256,
            block_restart_interval: 4,
            compression,
            ..TableBuilderOptions::default()
        };
        let (bytes, _) = build(&entries, opts);
        let handles = data_handles(&bytes);
        let h = handles[1];
        let (start, end) = (h.offset as usize, (h.offset + h.size) as usize);
        for i in start..end {
            for x in [0x01u8, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[i] ^= x;
                let ty = Compression::from_u8(bad[end]).unwrap();
                let trailer = format::block_trailer(&bad[start..end], ty);
                bad[end..end + BLOCK_TRAILER_LEN].copy_from_slice(&trailer);
                let table = open(bad, None).unwrap();
                let mut it = table.iter();
                it.seek_to_first();
                let mut steps = 0;
                while it.valid() {
                    it.next();
                    steps += 1;
                    assert!(steps < 10_000);
                }
                if let Err(e) = it.status() {
                    assert!(e.is_corruption() && e.to_string().contains("000042.sst"));
                }
                for (k, _) in &entries {
                    if let Err(e) = table.get(k, key::user_key(k)) {
                        assert!(e.is_corruption());
                    }
                }
            }
        }
    }
}

#[test]
fn handles_outside_the_file_are_corruption() {
    let (_, bytes) = small_table();
    let n = bytes.len();
    let mut footer = Footer::decode(&bytes[n - FOOTER_LEN..]).unwrap();
    for bad in [
        BlockHandle::new(u64::MAX - 2, 10),
        BlockHandle::new(0, u64::MAX),
        BlockHandle::new(n as u64 - 70, 10),
    ] {
        footer.index = bad;
        let mut b = bytes.clone();
        b[n - FOOTER_LEN..].copy_from_slice(&footer.encode());
        let err = open(b, None).unwrap_err();
        assert!(
            err.is_corruption() && err.to_string().contains("outside"),
            "{err}"
        );
    }
}

#[test]
fn corrupt_index_entry_reported_by_iterator() {
    // An index whose single entry holds a malformed handle, with valid checksums.
    let (_, bytes) = small_table();
    let n = bytes.len();
    let mut footer = Footer::decode(&bytes[n - FOOTER_LEN..]).unwrap();
    let mut index = BlockBuilder::new(1);
    index.add(
        &make_internal_key(b"zzz", 1, ValueKind::Value),
        &[0x80, 0x80],
    );
    let raw = index.finish().to_vec();
    let mut out = bytes[..n - FOOTER_LEN].to_vec();
    footer.index = BlockHandle::new(out.len() as u64, raw.len() as u64);
    out.extend_from_slice(&raw);
    out.extend_from_slice(&format::block_trailer(&raw, Compression::None));
    out.extend_from_slice(&footer.encode());
    let table = open(out, None).unwrap();
    let mut it = table.iter();
    it.seek_to_first();
    assert!(!it.valid());
    assert!(it.status().unwrap_err().is_corruption());
    let uk = user_key_of(0);
    assert!(table.may_contain(&uk));
    assert!(table
        .get(&seek_key(&uk, MAX_SEQNO), &uk)
        .unwrap_err()
        .is_corruption());
}
