//! Helpers shared by the fuzz targets: a cursor that turns fuzz bytes into choices, in-memory
//! files, and generators of small, overlapping keys (so overwrites and shared prefixes happen).

use std::cmp::Ordering;
use std::io;
use std::sync::{Arc, Mutex};

use strata::fs::{ReadableFile, WritableFile};
use strata::key::{compare_internal_keys, make_internal_key, ValueKind};

/// Reads choices from the fuzz input; once it runs dry every read returns zeros / empty.
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    /// True when no bytes are left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    /// One byte (0 once empty).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A key of 0..=3 letters from a 4-letter alphabet: 85 distinct keys, lots of overlap.
    pub fn small_key(&mut self) -> Vec<u8> {
        let b = self.u8();
        let len = (b & 3) as usize;
        let mut bits = b >> 2;
        let mut k = Vec::with_capacity(len);
        for _ in 0..len {
            k.push(b"abcz"[(bits & 3) as usize]);
            bits >>= 2;
            if bits == 0 {
                bits = self.u8();
            }
        }
        k
    }

    /// A value: usually short, sometimes up to 2 KiB (to fill blocks and memtables), with a
    /// recognizable pattern derived from `tag` so mixed-up values are caught.
    pub fn value(&mut self, tag: u64) -> Vec<u8> {
        let b = self.u8();
        let len = match b >> 6 {
            0..=2 => (b & 0x3f) as usize,
            _ => (b & 0x3f) as usize * 32,
        };
        let seed = tag.to_le_bytes();
        (0..len).map(|i| seed[i % 8] ^ (i / 8) as u8).collect()
    }
}

/// A readable file over a vector.
pub struct MemFile(pub Vec<u8>);

impl ReadableFile for MemFile {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A writable file appending into a shared vector.
#[derive(Clone, Default)]
pub struct VecSink(pub Arc<Mutex<Vec<u8>>>);

impl WritableFile for VecSink {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sorted, distinct internal keys with values, derived from the input (at most `max` entries).
pub fn internal_entries(c: &mut Cursor<'_>, max: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let n = (c.u8() as usize).min(max);
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        if c.is_empty() {
            break;
        }
        let user = c.small_key();
        let b = c.u8();
        let seq = u64::from(b >> 1);
        let kind = if b & 1 == 0 { ValueKind::Value } else { ValueKind::Deletion };
        let ikey = make_internal_key(&user, seq, kind);
        let value = c.value(i as u64 + 1);
        entries.push((ikey, value));
    }
    entries.sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
    entries.dedup_by(|a, b| compare_internal_keys(&a.0, &b.0) == Ordering::Equal);
    entries
}
