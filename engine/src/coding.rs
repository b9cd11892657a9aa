//! Little-endian fixed-width and LEB128 varint encodings shared by every on-disk format, plus the
//! masked crc32c that LevelDB-style formats store.
//!
//! Decoders never panic: they return `None` on truncated or malformed input and let the caller
//! turn that into an [`Error::Corruption`](crate::Error::Corruption) with a file and offset.

/// Appends `v` as 4 little-endian bytes.
pub fn put_fixed32(dst: &mut Vec<u8>, v: u32) {
    dst.extend_from_slice(&v.to_le_bytes());
}

/// Appends `v` as 8 little-endian bytes.
pub fn put_fixed64(dst: &mut Vec<u8>, v: u64) {
    dst.extend_from_slice(&v.to_le_bytes());
}

/// Reads 4 little-endian bytes at the start of `src`.
pub fn get_fixed32(src: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(src.get(..4)?.try_into().ok()?))
}

/// Reads 8 little-endian bytes at the start of `src`.
pub fn get_fixed64(src: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(src.get(..8)?.try_into().ok()?))
}

/// Appends `v` as a LEB128 varint (1..=5 bytes).
pub fn put_varint32(dst: &mut Vec<u8>, v: u32) {
    put_varint64(dst, u64::from(v))
}

/// Appends `v` as a LEB128 varint (1..=10 bytes).
pub fn put_varint64(dst: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        dst.push((v as u8) | 0x80);
        v >>= 7;
    }
    dst.push(v as u8);
}

/// Number of bytes `put_varint64(v)` appends.
pub fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Decodes a varint from the front of `src`; returns the value and the bytes consumed.
/// `None` if `src` ends inside the varint or it overflows 64 bits.
#[inline]
pub fn get_varint64(src: &[u8]) -> Option<(u64, usize)> {
    // Most varints in blocks and batches are lengths below 128: one byte.
    match src.first() {
        Some(&b) if b < 0x80 => Some((u64::from(b), 1)),
        _ => get_varint64_multibyte(src),
    }
}

fn get_varint64_multibyte(src: &[u8]) -> Option<(u64, usize)> {
    let mut result = 0u64;
    for (i, &byte) in src.iter().enumerate().take(10) {
        let shift = 7 * i as u32;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return None;
        }
        result |= bits << shift;
        if byte & 0x80 == 0 {
            return Some((result, i + 1));
        }
    }
    None
}

/// Decodes a varint that must fit in 32 bits.
#[inline]
pub fn get_varint32(src: &[u8]) -> Option<(u32, usize)> {
    let (v, n) = get_varint64(src)?;
    Some((u32::try_from(v).ok()?, n))
}

/// Appends `varint(len) ++ bytes`.
pub fn put_length_prefixed(dst: &mut Vec<u8>, bytes: &[u8]) {
    put_varint64(dst, bytes.len() as u64);
    dst.extend_from_slice(bytes);
}

/// A forward cursor over a byte slice for decoders: every read checks bounds.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// Starts decoding at the front of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// True when everything was consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads a varint64.
    pub fn varint64(&mut self) -> Option<u64> {
        let (v, n) = get_varint64(self.remaining())?;
        self.pos += n;
        Some(v)
    }

    /// Reads a varint32.
    pub fn varint32(&mut self) -> Option<u32> {
        let (v, n) = get_varint32(self.remaining())?;
        self.pos += n;
        Some(v)
    }

    /// Reads a fixed32.
    pub fn fixed32(&mut self) -> Option<u32> {
        let v = get_fixed32(self.remaining())?;
        self.pos += 4;
        Some(v)
    }

    /// Reads a fixed64.
    pub fn fixed64(&mut self) -> Option<u64> {
        let v = get_fixed64(self.remaining())?;
        self.pos += 8;
        Some(v)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Option<u8> {
        let v = *self.remaining().first()?;
        self.pos += 1;
        Some(v)
    }

    /// Reads `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let v = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(v)
    }

    /// Reads `varint(len) ++ bytes`.
    pub fn length_prefixed(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint64()?).ok()?;
        self.bytes(n)
    }
}

const MASK_DELTA: u32 = 0xa282_ead8;

/// crc32c of `data`, masked as LevelDB does so that a crc stored inside data that is itself
/// checksummed does not produce degenerate values.
pub fn masked_crc(data: &[u8]) -> u32 {
    mask_crc(crc32c::crc32c(data))
}

/// Masks a raw crc32c.
pub fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Inverse of [`mask_crc`].
pub fn unmask_crc(masked: u32) -> u32 {
    masked.wrapping_sub(MASK_DELTA).rotate_left(15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_roundtrip_and_lengths() {
        let values = [
            0u64,
            1,
            127,
            128,
            255,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ];
        for &v in &values {
            let mut buf = Vec::new();
            put_varint64(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v), "length of {v}");
            assert_eq!(get_varint64(&buf), Some((v, buf.len())));
            // Every strict prefix is truncated, never a wrong value.
            for cut in 0..buf.len() {
                assert_eq!(get_varint64(&buf[..cut]), None);
            }
        }
    }

    #[test]
    fn varint_rejects_overflow() {
        assert_eq!(get_varint64(&[0xff; 11]), None);
        assert_eq!(
            get_varint64(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            None
        );
        assert_eq!(get_varint32(&[0x80, 0x80, 0x80, 0x80, 0x10]), None);
    }

    #[test]
    fn decoder_checks_bounds() {
        let mut buf = Vec::new();
        put_length_prefixed(&mut buf, b"hello");
        put_fixed32(&mut buf, 7);
        let mut d = Decoder::new(&buf);
        assert_eq!(d.length_prefixed(), Some(&b"hello"[..]));
        assert_eq!(d.fixed32(), Some(7));
        assert!(d.is_empty());
        assert_eq!(d.fixed64(), None);
        assert_eq!(Decoder::new(&[10, 1, 2]).length_prefixed(), None);
    }

    #[test]
    fn crc_mask_roundtrip() {
        let crc = crc32c::crc32c(b"strata");
        assert_ne!(mask_crc(crc), crc);
        assert_eq!(unmask_crc(mask_crc(crc)), crc);
    }
}
