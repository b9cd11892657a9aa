//! A decoded block (see [`block_builder`](super::block_builder) for the byte layout) and the
//! iterator over it.
//!
//! [`Block::new`] validates the restart array once: at least one restart, the first at offset 0,
//! offsets strictly increasing and inside the entry area. Entries themselves are validated as the
//! iterator decodes them; any inconsistency stops the iterator with `Error::Corruption` (offsets
//! relative to the block's first byte), never a panic.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::coding::{get_fixed32, get_varint32};
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::key::compare_internal_keys;

/// An immutable, validated block held in memory (an owned copy: blocks never borrow the mapped
/// file, so a cached block does not keep a deleted table's mapping alive).
#[derive(Debug)]
pub struct Block {
    data: Vec<u8>,
    restarts_offset: usize,
    num_restarts: usize,
}

impl Drop for Block {
    fn drop(&mut self) {
        super::block_buf::give(std::mem::take(&mut self.data));
    }
}

impl Block {
    /// Validates the restart array of `data` and wraps it.
    pub fn new(data: Vec<u8>) -> Result<Block> {
        let len = data.len();
        let n = len
            .checked_sub(4)
            .and_then(|p| get_fixed32(&data[p..]))
            .ok_or_else(|| {
                Error::corruption(0, format!("block of {len} bytes has no restart count"))
            })? as usize;
        let restarts_offset = n
            .checked_mul(4)
            .and_then(|r| len.checked_sub(4)?.checked_sub(r))
            .ok_or_else(|| {
                Error::corruption(
                    len.saturating_sub(4) as u64,
                    format!("{n} restarts do not fit in a block of {len} bytes"),
                )
            })?;
        if n == 0 {
            return Err(Error::corruption(
                restarts_offset as u64,
                "block has no restart points",
            ));
        }
        let mut prev: Option<usize> = None;
        for i in 0..n {
            let at = restarts_offset + 4 * i;
            let r = get_fixed32(&data[at..]).unwrap_or(u32::MAX) as usize;
            let ok = match prev {
                None => r == 0,
                Some(p) => r > p && r < restarts_offset,
            };
            if !ok {
                return Err(Error::corruption(
                    at as u64,
                    format!("bad restart offset {r}"),
                ));
            }
            prev = Some(r);
        }
        Ok(Block {
            data,
            restarts_offset,
            num_restarts: n,
        })
    }

    /// The whole block, restart array included.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Bytes this block holds in memory (its cache charge).
    pub fn size(&self) -> usize {
        self.data.capacity() + std::mem::size_of::<Block>()
    }

    /// Number of restart points.
    pub fn num_restarts(&self) -> usize {
        self.num_restarts
    }

    /// True when the block holds no entries.
    pub fn is_empty(&self) -> bool {
        self.restarts_offset == 0
    }

    fn restart_point(&self, i: usize) -> usize {
        get_fixed32(self.data.get(self.restarts_offset + 4 * i..).unwrap_or(&[])).unwrap_or(0)
            as usize
    }

    /// An iterator over the block's entries (unpositioned).
    pub fn iter(self: &Arc<Self>) -> BlockIter {
        BlockIter {
            block: Arc::clone(self),
            next_offset: self.restarts_offset,
            key: Vec::new(),
            value: (0, 0),
            valid: false,
            err: None,
        }
    }

    /// Decodes the entry header at `offset`: `(shared, non_shared, value_len, header_len)`,
    /// checking the entry lies inside the entry area.
    fn entry_at(&self, offset: usize) -> Result<(usize, usize, usize, usize)> {
        let area = self.data.get(offset..self.restarts_offset).unwrap_or(&[]);
        let bad = || Error::corruption(offset as u64, "malformed block entry");
        let (shared, a) = get_varint32(area).ok_or_else(bad)?;
        let (non_shared, b) = get_varint32(&area[a..]).ok_or_else(bad)?;
        let (value_len, c) = get_varint32(&area[a + b..]).ok_or_else(bad)?;
        let header = a + b + c;
        let body = (non_shared as usize).checked_add(value_len as usize);
        match body.and_then(|x| x.checked_add(header)) {
            Some(total) if total <= area.len() => Ok((
                shared as usize,
                non_shared as usize,
                value_len as usize,
                header,
            )),
            _ => Err(Error::corruption(
                offset as u64,
                "block entry runs past the entries",
            )),
        }
    }
}

/// A cursor over one block's entries in internal-key order.
pub struct BlockIter {
    block: Arc<Block>,
    /// Offset of the entry after the current one.
    next_offset: usize,
    key: Vec<u8>,
    value: (usize, usize),
    valid: bool,
    err: Option<Error>,
}

impl BlockIter {
    fn fail(&mut self, e: Error) {
        self.valid = false;
        self.err = Some(e);
    }

    /// Decodes the entry at `next_offset`, extending the current key.
    fn parse_next(&mut self) {
        let offset = self.next_offset;
        if offset >= self.block.restarts_offset {
            self.valid = false;
            return;
        }
        let (shared, non_shared, value_len, header) = match self.block.entry_at(offset) {
            Ok(h) => h,
            Err(e) => return self.fail(e),
        };
        if shared > self.key.len() {
            return self.fail(Error::corruption(
                offset as u64,
                format!(
                    "entry shares {shared} bytes of a {}-byte key",
                    self.key.len()
                ),
            ));
        }
        let key_start = offset + header;
        let value_start = key_start + non_shared;
        self.key.truncate(shared);
        self.key
            .extend_from_slice(self.block.data.get(key_start..value_start).unwrap_or(&[]));
        self.value = (value_start, value_start + value_len);
        self.next_offset = value_start + value_len;
        self.valid = true;
    }

    /// The full key stored at restart point `i` (which must not share a prefix).
    fn restart_key(&self, i: usize) -> Result<&[u8]> {
        let offset = self.block.restart_point(i);
        let (shared, non_shared, _, header) = self.block.entry_at(offset)?;
        if shared != 0 {
            return Err(Error::corruption(
                offset as u64,
                "restart entry shares a prefix",
            ));
        }
        let start = offset + header;
        Ok(self
            .block
            .data
            .get(start..start + non_shared)
            .unwrap_or(&[]))
    }

    fn seek_to_restart(&mut self, i: usize) {
        self.key.clear();
        self.valid = false;
        self.next_offset = self.block.restart_point(i);
        self.parse_next();
    }
}

impl InternalIterator for BlockIter {
    fn valid(&self) -> bool {
        self.valid
    }

    fn seek_to_first(&mut self) {
        self.err = None;
        if self.block.is_empty() {
            self.valid = false;
            return;
        }
        self.seek_to_restart(0);
    }

    fn seek(&mut self, target: &[u8]) {
        self.err = None;
        if self.block.is_empty() {
            self.valid = false;
            return;
        }
        // Last restart point whose key is < target (or the first one).
        let (mut left, mut right) = (0usize, self.block.num_restarts - 1);
        while left < right {
            let mid = left + (right - left).div_ceil(2);
            match self.restart_key(mid) {
                Ok(k) if compare_internal_keys(k, target) == Ordering::Less => left = mid,
                Ok(_) => right = mid - 1,
                Err(e) => return self.fail(e),
            }
        }
        self.seek_to_restart(left);
        while self.valid && compare_internal_keys(&self.key, target) == Ordering::Less {
            self.parse_next();
        }
    }

    fn next(&mut self) {
        if self.valid {
            self.parse_next();
        }
    }

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn value(&self) -> &[u8] {
        self.block
            .data
            .get(self.value.0..self.value.1)
            .unwrap_or(&[])
    }

    fn status(&self) -> Result<()> {
        match &self.err {
            None => Ok(()),
            Some(e) => Err(e.duplicate()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{make_internal_key, ValueKind};
    use crate::sstable::BlockBuilder;
    use rand::{Rng, SeedableRng};

    fn ikey(i: usize) -> Vec<u8> {
        make_internal_key(
            format!("key{i:06}").as_bytes(),
            100 + i as u64,
            ValueKind::Value,
        )
    }

    fn build(entries: &[(Vec<u8>, Vec<u8>)], interval: usize) -> Arc<Block> {
        let mut b = BlockBuilder::new(interval);
        for (k, v) in entries {
            b.add(k, v);
        }
        Arc::new(Block::new(b.finish().to_vec()).unwrap())
    }

    fn collect(it: &mut BlockIter) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        while it.valid() {
            out.push((it.key().to_vec(), it.value().to_vec()));
            it.next();
        }
        it.status().unwrap();
        out
    }

    #[test]
    fn roundtrip_across_restart_intervals() {
        for interval in [1, 2, 3, 16, 1000] {
            for n in [0, 1, 15, 16, 17, 33, 200] {
                let entries: Vec<_> = (0..n)
                    .map(|i| (ikey(i), format!("value{i}").repeat(i % 4).into_bytes()))
                    .collect();
                let block = build(&entries, interval);
                assert_eq!(
                    block.num_restarts(),
                    if n == 0 { 1 } else { n.div_ceil(interval) }
                );
                let mut it = block.iter();
                it.seek_to_first();
                assert_eq!(collect(&mut it), entries, "interval {interval} n {n}");
            }
        }
    }

    #[test]
    fn seek_to_every_key_and_between_keys() {
        // Even-numbered keys only, so odd ones fall between entries.
        let entries: Vec<_> = (0..100).map(|i| (ikey(2 * i), vec![i as u8; i])).collect();
        for interval in [1, 4, 16] {
            let block = build(&entries, interval);
            let mut it = block.iter();
            for i in 0..=200 {
                it.seek(&ikey(i));
                let expect = i.div_ceil(2);
                if expect < entries.len() {
                    assert!(it.valid(), "seek {i}");
                    assert_eq!(it.key(), &entries[expect].0[..]);
                    assert_eq!(it.value(), &entries[expect].1[..]);
                } else {
                    assert!(!it.valid());
                }
                it.status().unwrap();
            }
            // Before everything, and past everything.
            it.seek(b"");
            assert_eq!(it.key(), &entries[0].0[..]);
            it.seek(&make_internal_key(b"zzz", 0, ValueKind::Deletion));
            assert!(!it.valid());
        }
    }

    #[test]
    fn empty_keys_values_and_large_entries() {
        let big = vec![0xabu8; 100_000];
        let entries = vec![
            (make_internal_key(b"", 9, ValueKind::Value), Vec::new()),
            (make_internal_key(b"", 8, ValueKind::Deletion), Vec::new()),
            (make_internal_key(b"a", 1, ValueKind::Value), big.clone()),
            (make_internal_key(&big, 1, ValueKind::Value), b"x".to_vec()),
            (make_internal_key(&big, 0, ValueKind::Value), big.clone()),
        ];
        let block = build(&entries, 2);
        let mut it = block.iter();
        it.seek_to_first();
        assert_eq!(collect(&mut it), entries);
        it.seek(&entries[3].0);
        assert_eq!(it.value(), b"x");
    }

    #[test]
    fn rejects_bad_restart_arrays() {
        let entries: Vec<_> = (0..40).map(|i| (ikey(i), b"v".to_vec())).collect();
        let mut b = BlockBuilder::new(16);
        for (k, v) in &entries {
            b.add(k, v);
        }
        let good = b.finish().to_vec();
        let len = good.len();
        assert!(Block::new(Vec::new()).is_err());
        assert!(Block::new(vec![1, 0, 0]).is_err());
        assert!(Block::new(vec![0, 0, 0, 0]).is_err()); // zero restarts
        let mut huge = good.clone();
        huge[len - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Block::new(huge).is_err());
        // Restart 1 pointing past the entries, and out of order.
        let r1 = len - 4 - 3 * 4 + 4;
        let mut past = good.clone();
        past[r1..r1 + 4].copy_from_slice(&((len - 16) as u32).to_le_bytes());
        assert!(Block::new(past).is_err());
        let mut unordered = good.clone();
        unordered[r1..r1 + 4].copy_from_slice(&0u32.to_le_bytes());
        assert!(Block::new(unordered).is_err());
        assert!(Block::new(good).is_ok());
    }

    #[test]
    fn garbage_blocks_never_panic() {
        let entries: Vec<_> = (0..50).map(|i| (ikey(i), vec![b'v'; i % 7])).collect();
        let mut b = BlockBuilder::new(4);
        for (k, v) in &entries {
            b.add(k, v);
        }
        let good = b.finish().to_vec();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..3000 {
            let data = if round % 3 == 0 {
                let n = rng.random_range(0..64);
                (0..n).map(|_| rng.random()).collect()
            } else {
                let mut d = good.clone();
                for _ in 0..rng.random_range(1..6) {
                    let i = rng.random_range(0..d.len());
                    d[i] = rng.random();
                }
                d
            };
            let Ok(block) = Block::new(data) else {
                continue;
            };
            let block = Arc::new(block);
            let mut it = block.iter();
            it.seek_to_first();
            let mut steps = 0;
            while it.valid() {
                let _ = (it.key(), it.value());
                it.next();
                steps += 1;
                assert!(steps <= block.data().len());
            }
            let _ = it.status();
            it.seek(&ikey(rng.random_range(0..60)));
            let _ = it.status();
        }
    }
}
