//! Internal keys: the user key followed by an 8-byte trailer that carries the sequence number
//! and the kind of entry.
//!
//! ```text
//! internal key = user_key ++ fixed64_le((seqno << 8) | kind)
//! ```
//!
//! Internal keys sort by user key ascending (bytewise), then by trailer *descending*, so that for
//! one user key the newest version comes first. A read at snapshot `s` seeks to
//! `(user_key, s, KIND_FOR_SEEK)` and lands on the newest version with `seqno <= s`.

use std::cmp::Ordering;

/// A sequence number. Every write batch gets consecutive ones; a snapshot is one.
pub type SeqNo = u64;

/// Largest sequence number that fits in the 56 bits of the trailer.
pub const MAX_SEQNO: SeqNo = (1 << 56) - 1;

/// Length of the trailer appended to every user key.
pub const TRAILER_LEN: usize = 8;

/// The kind of an entry, stored in the low byte of the trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// A tombstone: the key was deleted at this sequence number.
    Deletion = 0,
    /// A value.
    Value = 1,
    /// Only in the bounds of a table's key range: the exclusive end of a range tombstone the
    /// table carries (see [`range_end_bound`]). Never stored as an entry.
    RangeDeletion = 2,
}

impl ValueKind {
    /// Decodes a stored kind byte.
    pub fn from_u8(b: u8) -> Option<ValueKind> {
        match b {
            0 => Some(ValueKind::Deletion),
            1 => Some(ValueKind::Value),
            2 => Some(ValueKind::RangeDeletion),
            _ => None,
        }
    }
}

/// Kind byte used only in seek targets: larger than every stored kind, so that with descending
/// trailer order the target sorts before every entry of the same user key and seqno.
pub const KIND_FOR_SEEK: u8 = 0xff;

/// Packs a sequence number and kind byte into a trailer.
pub fn pack_trailer(seq: SeqNo, kind: u8) -> u64 {
    debug_assert!(seq <= MAX_SEQNO);
    (seq << 8) | u64::from(kind)
}

/// Appends the internal key for `(user_key, seq, kind)` to `dst`.
pub fn append_internal_key(dst: &mut Vec<u8>, user_key: &[u8], seq: SeqNo, kind: ValueKind) {
    dst.extend_from_slice(user_key);
    dst.extend_from_slice(&pack_trailer(seq, kind as u8).to_le_bytes());
}

/// Builds an owned internal key.
pub fn make_internal_key(user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Vec<u8> {
    let mut k = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    append_internal_key(&mut k, user_key, seq, kind);
    k
}

/// Builds the seek target that finds the newest version of `user_key` visible at `seq`.
pub fn seek_key(user_key: &[u8], seq: SeqNo) -> Vec<u8> {
    let mut k = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    k.extend_from_slice(user_key);
    k.extend_from_slice(&pack_trailer(seq, KIND_FOR_SEEK).to_le_bytes());
    k
}

/// The internal key that bounds a table whose range tombstone ends (exclusively) at `end`: it
/// sorts before every entry of user key `end` (largest possible trailer), so a table ending here
/// does not overlap a next table that starts at `end`.
pub fn range_end_bound(end: &[u8]) -> Vec<u8> {
    make_internal_key(end, MAX_SEQNO, ValueKind::RangeDeletion)
}

/// An internal key split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedInternalKey<'a> {
    /// The user's key.
    pub user_key: &'a [u8],
    /// Sequence number of the write.
    pub seq: SeqNo,
    /// Value or tombstone.
    pub kind: ValueKind,
}

/// Splits an internal key; `None` if it is shorter than a trailer or has an unknown kind.
pub fn parse_internal_key(ikey: &[u8]) -> Option<ParsedInternalKey<'_>> {
    let split = ikey.len().checked_sub(TRAILER_LEN)?;
    let trailer = u64::from_le_bytes(ikey[split..].try_into().ok()?);
    Some(ParsedInternalKey {
        user_key: &ikey[..split],
        seq: trailer >> 8,
        kind: ValueKind::from_u8(trailer as u8)?,
    })
}

/// The user key of an internal key (the whole slice if it is too short to hold a trailer, so that
/// malformed keys read from a corrupt file still compare without panicking).
pub fn user_key(ikey: &[u8]) -> &[u8] {
    &ikey[..ikey.len().saturating_sub(TRAILER_LEN)]
}

/// The trailer of an internal key (0 if it is too short).
pub fn trailer(ikey: &[u8]) -> u64 {
    match ikey.len().checked_sub(TRAILER_LEN) {
        Some(split) => u64::from_le_bytes(ikey[split..].try_into().unwrap_or([0; 8])),
        None => 0,
    }
}

/// Total order on internal keys: user key ascending, then trailer descending.
#[inline]
pub fn compare_internal_keys(a: &[u8], b: &[u8]) -> Ordering {
    compare_bytes(user_key(a), user_key(b)).then_with(|| trailer(b).cmp(&trailer(a)))
}

/// Lexicographic byte order (`a.cmp(b)`), inlined for short keys: eight bytes at a time as
/// big-endian words. The engine compares keys on every skiplist step, block search and merge
/// step, mostly keys of a few dozen bytes, where a call into `memcmp` costs more than the
/// comparison; long common prefixes still go to `memcmp`.
#[inline]
pub fn compare_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    let (a_head, b_head) = (&a[..n], &b[..n]);
    if n > 64 {
        return a_head.cmp(b_head).then(a.len().cmp(&b.len()));
    }
    let mut a_words = a_head.chunks_exact(8);
    let mut b_words = b_head.chunks_exact(8);
    for (x, y) in (&mut a_words).zip(&mut b_words) {
        let x = u64::from_be_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]);
        let y = u64::from_be_bytes([y[0], y[1], y[2], y[3], y[4], y[5], y[6], y[7]]);
        if x != y {
            return x.cmp(&y);
        }
    }
    for (x, y) in a_words.remainder().iter().zip(b_words.remainder()) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn compare_bytes_is_slice_order(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..140),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..140),
            shared in 0usize..140,
        ) {
            // Long shared prefixes too, so that the word loop and the tail both decide.
            let mut b2 = a[..shared.min(a.len())].to_vec();
            b2.extend_from_slice(&b);
            proptest::prop_assert_eq!(compare_bytes(&a, &b), a.cmp(&b));
            proptest::prop_assert_eq!(compare_bytes(&a, &b2), a.cmp(&b2));
            proptest::prop_assert_eq!(compare_bytes(&b2, &a), b2.cmp(&a));
        }
    }

    #[test]
    fn orders_by_user_key_then_newest_first() {
        let a1 = make_internal_key(b"a", 1, ValueKind::Value);
        let a2 = make_internal_key(b"a", 2, ValueKind::Value);
        let a2d = make_internal_key(b"a", 2, ValueKind::Deletion);
        let b1 = make_internal_key(b"b", 1, ValueKind::Value);
        let ab = make_internal_key(b"ab", 9, ValueKind::Value);
        let mut keys = vec![b1.clone(), a1.clone(), ab.clone(), a2d.clone(), a2.clone()];
        keys.sort_by(|x, y| compare_internal_keys(x, y));
        assert_eq!(keys, vec![a2, a2d, a1, ab, b1]);
    }

    #[test]
    fn seek_key_lands_on_newest_visible_version() {
        let v5 = make_internal_key(b"k", 5, ValueKind::Value);
        let v3 = make_internal_key(b"k", 3, ValueKind::Deletion);
        // At snapshot 4, the target sorts after v5 and before v3.
        let target = seek_key(b"k", 4);
        assert_eq!(compare_internal_keys(&v5, &target), Ordering::Less);
        assert_eq!(compare_internal_keys(&target, &v3), Ordering::Less);
        // At snapshot 5 the target sorts before v5 (same seq, larger kind byte).
        assert_eq!(
            compare_internal_keys(&seek_key(b"k", 5), &v5),
            Ordering::Less
        );
    }

    #[test]
    fn parse_roundtrip_and_malformed() {
        let k = make_internal_key(b"user", MAX_SEQNO, ValueKind::Deletion);
        let p = parse_internal_key(&k).unwrap();
        assert_eq!(p.user_key, b"user");
        assert_eq!(p.seq, MAX_SEQNO);
        assert_eq!(p.kind, ValueKind::Deletion);
        assert!(parse_internal_key(b"short").is_none());
        let mut bad = make_internal_key(b"x", 1, ValueKind::Value);
        let n = bad.len();
        bad[n - 8] = 7;
        assert!(parse_internal_key(&bad).is_none());
        // Keys too short for a trailer (only in corrupt files) compare as empty user keys with
        // trailer 0, without panicking.
        assert_eq!(compare_internal_keys(b"ab", b"abc"), Ordering::Equal);
        assert_eq!(compare_internal_keys(b"ab", &k), Ordering::Less);
    }
}
