//! Block decoding: `decode_block_contents` (trailer, checksum, lz4) and `Block::new` + `BlockIter`.
//!
//! The first byte picks a mode:
//! - 0: the rest is a stored block with its trailer, as read from a file (mostly checksum errors);
//! - 1: the rest is a block body; a valid uncompressed trailer is appended, so the block parser
//!   and iterator see arbitrary entries and restart arrays;
//! - 2: the rest is an lz4 body (varint length + lz4 block); a valid lz4 trailer is appended;
//! - 3: the rest describes sorted entries; they are built with `BlockBuilder`, stored
//!   (maybe compressed), decoded and must come back exactly, sorted, and seek must find them.
//!
//! Modes 0-2 check what holds for any bytes: no panic, bounded steps, a valid seek lands on a key
//! `>= target`. Keys of a forged block (valid checksum, unsorted entries) need not be sorted, so
//! sortedness is asserted only on blocks the builder wrote.
#![no_main]

use std::cmp::Ordering;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata::iter::InternalIterator;
use strata::key::compare_internal_keys;
use strata::sstable::format::{block_trailer, compress_block};
use strata::sstable::{decode_block_contents, Block, BlockBuilder, Compression};
use strata_fuzz::{internal_entries, Cursor};

/// Every entry of the block, or `None` if iteration hit corruption.
fn collect(block: &Arc<Block>, limit: usize) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut it = block.iter();
    it.seek_to_first();
    let mut out = Vec::new();
    while it.valid() {
        // Every entry has at least a 3-byte header.
        assert!(out.len() <= limit, "block iterator does not make progress");
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.next();
    }
    it.status().ok().map(|_| out)
}

fn check_seek(block: &Arc<Block>, target: &[u8]) -> Option<Vec<u8>> {
    let mut it = block.iter();
    it.seek(target);
    if it.valid() {
        assert_ne!(compare_internal_keys(it.key(), target), Ordering::Less, "seek went backwards");
        let _ = it.value();
        Some(it.key().to_vec())
    } else {
        None
    }
}

fn arbitrary_block(stored: &[u8], targets: &[u8]) {
    let Ok(contents) = decode_block_contents(stored) else { return };
    let len = contents.len();
    let Ok(block) = Block::new(contents.into_owned()) else { return };
    let block = Arc::new(block);
    let entries = collect(&block, len).unwrap_or_default();
    for (k, _) in entries.iter().take(8) {
        check_seek(&block, k);
    }
    for t in targets.chunks(9).take(4) {
        check_seek(&block, t);
    }
    check_seek(&block, b"");
}

fn built_block(c: &mut Cursor<'_>) {
    let interval = (c.u8() % 8) as usize + 1;
    let compression = if c.u8() & 1 == 0 { Compression::None } else { Compression::Lz4 };
    let entries = internal_entries(c, 200);
    let mut b = BlockBuilder::new(interval);
    for (k, v) in &entries {
        b.add(k, v);
    }
    let raw = b.finish().to_vec();
    let (body, ty) = compress_block(&raw, compression);
    let mut stored = body.into_owned();
    stored.extend_from_slice(&block_trailer(&stored, ty));
    let contents = decode_block_contents(&stored).expect("builder's block must decode");
    assert_eq!(&*contents, &raw[..], "decoded block differs from the one built");
    let block = Arc::new(Block::new(raw).expect("builder's block must validate"));
    let got = collect(&block, usize::MAX).expect("builder's block must iterate");
    assert_eq!(got, entries, "block does not return what was added");
    assert!(got.windows(2).all(|w| compare_internal_keys(&w[0].0, &w[1].0) == Ordering::Less));
    // Seek to every key and to targets from the input: the first key >= target.
    let mut targets: Vec<Vec<u8>> = entries.iter().map(|e| e.0.clone()).collect();
    for t in c.rest().chunks(9).take(16) {
        targets.push(t.to_vec());
    }
    for t in &targets {
        let want = entries
            .iter()
            .find(|e| compare_internal_keys(&e.0, t) != Ordering::Less)
            .map(|e| e.0.clone());
        assert_eq!(check_seek(&block, t), want, "seek({t:?})");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    match c.u8() % 4 {
        0 => arbitrary_block(c.rest(), c.rest()),
        1 => {
            let mut stored = c.rest().to_vec();
            stored.extend_from_slice(&block_trailer(c.rest(), Compression::None));
            arbitrary_block(&stored, c.rest());
        }
        2 => {
            let mut stored = c.rest().to_vec();
            stored.extend_from_slice(&block_trailer(c.rest(), Compression::Lz4));
            arbitrary_block(&stored, c.rest());
        }
        _ => built_block(&mut c),
    }
});
