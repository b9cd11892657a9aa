//! Builds blocks of sorted key/value entries with shared-prefix key compression.
//!
//! ```text
//! block:
//!   entry 0 | entry 1 | ... | entry n-1 | restart[0] | ... | restart[r-1] | num_restarts
//!
//! entry:
//!   varint32 shared | varint32 non_shared | varint32 value_len | key[shared..] | value
//!
//!   restart[i]    fixed32 offset of the i-th restart entry (an entry with shared = 0)
//!   num_restarts  fixed32, at least 1 (an empty block has the single restart offset 0)
//! ```
//!
//! Every `restart_interval` entries the key is stored whole (a *restart point*), so a reader can
//! binary-search the restart array and then scan at most `restart_interval` entries. The index
//! block uses interval 1, so every index entry is a restart point.

use crate::coding::{put_fixed32, put_varint32};

/// Accumulates entries (added in strictly increasing key order) into one block.
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    counter: usize,
    num_entries: usize,
    last_key: Vec<u8>,
    finished: bool,
}

impl BlockBuilder {
    /// A new, empty builder; `restart_interval` is clamped to at least 1.
    pub fn new(restart_interval: usize) -> BlockBuilder {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            restart_interval: restart_interval.max(1),
            counter: 0,
            num_entries: 0,
            last_key: Vec::new(),
            finished: false,
        }
    }

    /// Clears the builder for the next block, keeping its allocations.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.restarts.clear();
        self.restarts.push(0);
        self.counter = 0;
        self.num_entries = 0;
        self.last_key.clear();
        self.finished = false;
    }

    /// True when no entry was added since the last reset.
    pub fn is_empty(&self) -> bool {
        self.num_entries == 0
    }

    /// Entries added since the last reset.
    pub fn num_entries(&self) -> usize {
        self.num_entries
    }

    /// The last key added (empty if none).
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Size the block would have if finished now.
    pub fn current_size_estimate(&self) -> usize {
        self.buf.len() + self.restarts.len() * 4 + 4
    }

    /// Appends an entry. The caller guarantees keys increase and that each key and value is
    /// shorter than 4 GiB and the block stays below 4 GiB (the table builder enforces both).
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        debug_assert!(!self.finished, "add after finish without reset");
        let shared = if self.counter < self.restart_interval {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
            0
        };
        let non_shared = &key[shared..];
        put_varint32(&mut self.buf, shared as u32);
        put_varint32(&mut self.buf, non_shared.len() as u32);
        put_varint32(&mut self.buf, value.len() as u32);
        self.buf.extend_from_slice(non_shared);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(non_shared);
        self.counter += 1;
        self.num_entries += 1;
    }

    /// Appends the restart array and returns the finished block bytes. Call [`reset`] before
    /// adding to the next block.
    ///
    /// [`reset`]: BlockBuilder::reset
    pub fn finish(&mut self) -> &[u8] {
        if !self.finished {
            for &r in &self.restarts {
                put_fixed32(&mut self.buf, r);
            }
            put_fixed32(&mut self.buf, self.restarts.len() as u32);
            self.finished = true;
        }
        &self.buf
    }
}
