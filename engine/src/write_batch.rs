//! Write batches: a group of puts and deletes applied atomically.
//!
//! A batch's representation is also its WAL record payload:
//!
//! ```text
//! +------------+-----------+---------------------------------------------+
//! | seq: u64le | count:u32 | record * count                              |
//! +------------+-----------+---------------------------------------------+
//! record = kind: u8 (1 = put, 0 = delete, 2 = delete range)
//!          | varint key_len | key [| varint val_len | value]      (value or range end)
//! ```
//! Record `i` gets sequence number `seq + i`.

use crate::coding::{put_length_prefixed, varint_len, Decoder};
use crate::error::{Error, Result};
use crate::key::{SeqNo, ValueKind};

const HEADER_LEN: usize = 12;
/// Record kind of a range deletion in a batch (point records use their `ValueKind`).
const RANGE_DELETION: u8 = 2;

/// Largest user key the engine accepts (64 KiB).
pub const MAX_KEY_SIZE: usize = 64 * 1024;
/// Largest value the engine accepts (16 MiB).
pub const MAX_VALUE_SIZE: usize = 16 * 1024 * 1024;

/// An ordered group of updates applied atomically by [`Db::write`](crate::Db::write): after a
/// crash either every update of the batch is visible or none is.
#[derive(Clone, PartialEq, Eq)]
pub struct WriteBatch {
    rep: Vec<u8>,
    /// Bytes of keys and values added (for write-amplification accounting).
    user_bytes: u64,
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("count", &self.count())
            .field("bytes", &self.rep.len())
            .finish()
    }
}

impl Default for WriteBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// One update of a batch, as decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOp<'a> {
    /// Set `key` to `value`.
    Put(&'a [u8], &'a [u8]),
    /// Delete `key`.
    Delete(&'a [u8]),
    /// Delete every key in `[start, end)`.
    DeleteRange(&'a [u8], &'a [u8]),
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch {
            rep: vec![0; HEADER_LEN],
            user_bytes: 0,
        }
    }

    /// Adds `key -> value`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        let (key, value) = (key.as_ref(), value.as_ref());
        // One reservation for the whole record (tag, two varint lengths, the bytes): growing
        // the buffer piecemeal reallocates several times for a single small put.
        let (k, v) = (key.len(), value.len());
        self.rep
            .reserve(1 + varint_len(k as u64) + k + varint_len(v as u64) + v);
        self.rep.push(ValueKind::Value as u8);
        put_length_prefixed(&mut self.rep, key);
        put_length_prefixed(&mut self.rep, value);
        self.user_bytes += (key.len() + value.len()) as u64;
        self.set_count(self.count() + 1);
        self
    }

    /// Adds a deletion of `key`.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        let key = key.as_ref();
        self.rep
            .reserve(1 + varint_len(key.len() as u64) + key.len());
        self.rep.push(ValueKind::Deletion as u8);
        put_length_prefixed(&mut self.rep, key);
        self.user_bytes += key.len() as u64;
        self.set_count(self.count() + 1);
        self
    }

    /// Adds a deletion of every key in `[start, end)` (see [`Db::delete_range`](crate::Db::delete_range)).
    pub fn delete_range(&mut self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> &mut Self {
        self.rep.push(RANGE_DELETION);
        put_length_prefixed(&mut self.rep, start.as_ref());
        put_length_prefixed(&mut self.rep, end.as_ref());
        self.user_bytes += (start.as_ref().len() + end.as_ref().len()) as u64;
        self.set_count(self.count() + 1);
        self
    }

    /// Removes every update.
    pub fn clear(&mut self) {
        self.rep.clear();
        self.rep.resize(HEADER_LEN, 0);
        self.user_bytes = 0;
    }

    /// Number of updates.
    pub fn count(&self) -> u32 {
        u32::from_le_bytes([self.rep[8], self.rep[9], self.rep[10], self.rep[11]])
    }

    /// True when the batch holds no update.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Size of the encoded batch in bytes.
    pub fn approximate_size(&self) -> usize {
        self.rep.len()
    }

    /// Iterates over the updates in order. The batch was built through the API, so decoding
    /// cannot fail.
    pub fn iter(&self) -> impl Iterator<Item = BatchOp<'_>> {
        BatchReader::new(&self.rep)
            .into_iter()
            .flat_map(|r| r.map_while(|op| op.ok()))
    }

    fn set_count(&mut self, n: u32) {
        self.rep[8..12].copy_from_slice(&n.to_le_bytes());
    }

    pub(crate) fn sequence(&self) -> SeqNo {
        u64::from_le_bytes(self.rep[..8].try_into().unwrap_or([0; 8]))
    }

    pub(crate) fn set_sequence(&mut self, seq: SeqNo) {
        self.rep[..8].copy_from_slice(&seq.to_le_bytes());
    }

    /// Bytes of keys and values in the batch (what write amplification is measured against).
    pub(crate) fn user_bytes(&self) -> u64 {
        self.user_bytes
    }

    /// Appends the updates of `other` (group commit merges a group into one WAL record).
    pub(crate) fn append(&mut self, other: &WriteBatch) {
        self.set_count(self.count() + other.count());
        self.rep.extend_from_slice(&other.rep[HEADER_LEN..]);
        self.user_bytes += other.user_bytes;
    }

    /// The encoded form (the WAL payload).
    pub(crate) fn data(&self) -> &[u8] {
        &self.rep
    }

    /// Adopts a decoded WAL record after checking that every update in it is well-formed.
    pub(crate) fn from_record(rep: Vec<u8>) -> Result<WriteBatch> {
        let mut user_bytes = 0;
        for op in BatchReader::new(&rep)? {
            user_bytes += match op? {
                BatchOp::Put(k, v) | BatchOp::DeleteRange(k, v) => k.len() + v.len(),
                BatchOp::Delete(k) => k.len(),
            } as u64;
        }
        Ok(WriteBatch { rep, user_bytes })
    }

    /// Checks the key and value size limits.
    pub(crate) fn validate(&self) -> Result<()> {
        for op in self.iter() {
            let (key, value) = match op {
                BatchOp::Put(k, v) => (k, v),
                BatchOp::Delete(k) => (k, &[][..]),
                BatchOp::DeleteRange(start, end) => {
                    if end.len() > MAX_KEY_SIZE && end != crate::range_del::unbounded_end() {
                        return Err(Error::InvalidArgument(format!(
                            "range end of {} bytes exceeds the {MAX_KEY_SIZE}-byte key limit",
                            end.len()
                        )));
                    }
                    (start, &[][..])
                }
            };
            if key.len() > MAX_KEY_SIZE {
                return Err(Error::InvalidArgument(format!(
                    "key of {} bytes exceeds the {MAX_KEY_SIZE}-byte limit",
                    key.len()
                )));
            }
            if value.len() > MAX_VALUE_SIZE {
                return Err(Error::InvalidArgument(format!(
                    "value of {} bytes exceeds the {MAX_VALUE_SIZE}-byte limit",
                    value.len()
                )));
            }
        }
        Ok(())
    }
}

/// Decodes an encoded batch (a WAL record) without trusting it.
#[derive(Debug)]
pub struct BatchReader<'a> {
    seq: SeqNo,
    count: u32,
    seen: u32,
    decoder: Decoder<'a>,
    failed: bool,
}

impl<'a> BatchReader<'a> {
    /// Parses the header; `Corruption` if the record is too short to be a batch.
    pub fn new(rep: &'a [u8]) -> Result<Self> {
        let mut decoder = Decoder::new(rep);
        let (Some(seq), Some(count)) = (decoder.fixed64(), decoder.fixed32()) else {
            return Err(Error::corruption(0, "write batch shorter than its header"));
        };
        Ok(BatchReader {
            seq,
            count,
            seen: 0,
            decoder,
            failed: false,
        })
    }

    /// Sequence number of the first update.
    pub fn sequence(&self) -> SeqNo {
        self.seq
    }

    /// Number of updates the header claims.
    pub fn claimed_count(&self) -> u32 {
        self.count
    }

    fn decode_one(&mut self) -> Option<BatchOp<'a>> {
        let kind = self.decoder.u8()?;
        let key = self.decoder.length_prefixed()?;
        match kind {
            k if k == ValueKind::Value as u8 => {
                Some(BatchOp::Put(key, self.decoder.length_prefixed()?))
            }
            k if k == ValueKind::Deletion as u8 => Some(BatchOp::Delete(key)),
            RANGE_DELETION => Some(BatchOp::DeleteRange(key, self.decoder.length_prefixed()?)),
            _ => None,
        }
    }
}

impl<'a> Iterator for BatchReader<'a> {
    type Item = Result<BatchOp<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.seen == self.count {
            if self.decoder.is_empty() {
                return None;
            }
            self.failed = true;
            return Some(Err(Error::corruption(
                self.decoder.position() as u64,
                "write batch has bytes after its last record",
            )));
        }
        let at = self.decoder.position() as u64;
        match self.decode_one() {
            Some(op) => {
                self.seen += 1;
                Some(Ok(op))
            }
            None => {
                self.failed = true;
                Some(Err(Error::corruption(at, "malformed write batch record")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_append() {
        let mut a = WriteBatch::new();
        a.put("k1", "v1")
            .delete("k2")
            .put("", "")
            .delete_range("a", "c");
        let mut b = WriteBatch::new();
        b.put("k3", vec![7u8; 1000]);
        a.append(&b);
        a.set_sequence(42);
        let r = BatchReader::new(a.data()).unwrap();
        assert_eq!(r.sequence(), 42);
        assert_eq!(r.claimed_count(), 5);
        let ops: Vec<_> = r.map(|o| o.unwrap()).collect();
        assert_eq!(
            ops,
            vec![
                BatchOp::Put(b"k1", b"v1"),
                BatchOp::Delete(b"k2"),
                BatchOp::Put(b"", b""),
                BatchOp::DeleteRange(b"a", b"c"),
                BatchOp::Put(b"k3", &[7u8; 1000]),
            ]
        );
        a.clear();
        assert!(a.is_empty());
        assert_eq!(a.iter().count(), 0);
    }

    #[test]
    fn malformed_batches_are_corruption() {
        let mut a = WriteBatch::new();
        a.put("key", "value").delete("gone");
        let rep = a.data().to_vec();
        assert!(BatchReader::new(&rep[..11]).is_err());
        // Every truncation inside the records is reported, never a panic.
        for cut in HEADER_LEN..rep.len() {
            let results: Vec<_> = BatchReader::new(&rep[..cut]).unwrap().collect();
            assert!(results.iter().any(|r| r.is_err()), "cut at {cut}");
        }
        // A count larger than the records.
        let mut lying = rep.clone();
        lying[8] = 3;
        assert!(BatchReader::new(&lying).unwrap().any(|r| r.is_err()));
        // Trailing bytes after the claimed records.
        let mut extra = rep.clone();
        extra.push(1);
        assert!(BatchReader::new(&extra).unwrap().any(|r| r.is_err()));
        // Unknown kind byte.
        let mut bad_kind = rep;
        bad_kind[HEADER_LEN] = 9;
        assert!(BatchReader::new(&bad_kind).unwrap().any(|r| r.is_err()));
    }

    #[test]
    fn validate_enforces_limits() {
        let mut ok = WriteBatch::new();
        ok.put(vec![0u8; MAX_KEY_SIZE], vec![0u8; 10]);
        assert!(ok.validate().is_ok());
        let mut big_key = WriteBatch::new();
        big_key.delete(vec![0u8; MAX_KEY_SIZE + 1]);
        assert!(matches!(big_key.validate(), Err(Error::InvalidArgument(_))));
        let mut big_value = WriteBatch::new();
        big_value.put("k", vec![0u8; MAX_VALUE_SIZE + 1]);
        assert!(matches!(
            big_value.validate(),
            Err(Error::InvalidArgument(_))
        ));
    }
}
