//! Byte-level pieces shared by the SSTable writer and reader: block handles, the per-block
//! trailer and compression, and the fixed-size footer.
//!
//! ```text
//! table file:
//!   +--------------------------+
//!   | data block 0   | trailer |   trailer = type (1 byte) | fixed32 masked crc32c
//!   | data block 1   | trailer |             crc covers the block contents ++ type byte
//!   | ...                      |
//!   | filter block   | trailer |   (absent when the filter is disabled: handle size 0)
//!   | index block    | trailer |
//!   | properties     | trailer |
//!   | footer (64 bytes)        |
//!   +--------------------------+
//!
//! block handle (inside index entries):  varint64 offset | varint64 size
//!   `size` counts the stored contents only, not the 5-byte trailer that follows them.
//!
//! lz4 block contents (type 1):  varint64 uncompressed_len | lz4 block-format bytes
//!
//! footer:
//!   0  fixed64 index.offset       8  fixed64 index.size
//!  16  fixed64 filter.offset     24  fixed64 filter.size
//!  32  fixed64 properties.offset 40  fixed64 properties.size
//!  48  fixed32 format version (1)
//!  52  fixed32 masked crc32c of bytes 0..52
//!  56  fixed64 magic 0x5354_5241_5441_5353
//! ```

use std::borrow::Cow;

use crate::coding::{get_fixed32, get_fixed64, put_fixed32, put_fixed64, put_varint64, Decoder};
use crate::coding::{masked_crc, varint_len};
use crate::error::{Error, Result};

/// Bytes that follow every stored block: compression type and checksum.
pub const BLOCK_TRAILER_LEN: usize = 5;
/// Size of the footer at the end of every table file.
pub const FOOTER_LEN: usize = 64;
/// Magic number closing every table file (reads "STRATASS" as big-endian ASCII).
pub const TABLE_MAGIC: u64 = 0x5354_5241_5441_5353;
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Largest uncompressed size a compressed block may claim; the writer never compresses blocks
/// larger than this, so a larger claim is corruption, rejected before allocating.
pub const MAX_UNCOMPRESSED_BLOCK_LEN: usize = 64 << 20;
/// LZ4's best possible ratio is below 255:1; a claim beyond this bound is corruption.
const LZ4_MAX_RATIO: usize = 255;
const LZ4_RATIO_SLACK: usize = 16;

/// How a block's contents are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// Stored raw.
    None,
    /// LZ4 block format (`lz4_flex`), prefixed by the uncompressed length.
    #[default]
    Lz4,
}

impl Compression {
    /// The type byte stored in block trailers.
    pub fn to_u8(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
        }
    }

    /// Decodes a stored type byte.
    pub fn from_u8(b: u8) -> Option<Compression> {
        match b {
            0 => Some(Compression::None),
            1 => Some(Compression::Lz4),
            _ => None,
        }
    }
}

/// Where a block lives in the file: its offset and the length of its stored contents
/// (excluding the trailer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BlockHandle {
    /// Offset of the block's first byte.
    pub offset: u64,
    /// Length of the stored (possibly compressed) contents, without the trailer.
    pub size: u64,
}

impl BlockHandle {
    /// Longest varint encoding of a handle.
    pub const MAX_ENCODED_LEN: usize = 20;

    /// A handle for `size` bytes at `offset`.
    pub fn new(offset: u64, size: u64) -> BlockHandle {
        BlockHandle { offset, size }
    }

    /// Appends the varint encoding.
    pub fn encode_to(&self, dst: &mut Vec<u8>) {
        put_varint64(dst, self.offset);
        put_varint64(dst, self.size);
    }

    /// The varint encoding as a new vector.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(varint_len(self.offset) + varint_len(self.size));
        self.encode_to(&mut v);
        v
    }

    /// Decodes a varint handle that must span all of `src` (an index entry's value).
    pub fn decode(src: &[u8]) -> Result<BlockHandle> {
        let mut d = Decoder::new(src);
        let offset = d.varint64();
        let size = d.varint64();
        match (offset, size) {
            (Some(offset), Some(size)) if d.is_empty() => Ok(BlockHandle { offset, size }),
            _ => Err(Error::corruption(0, "malformed block handle")),
        }
    }

    /// Offset one past the block's trailer, or `None` on overflow.
    pub fn end_with_trailer(&self) -> Option<u64> {
        self.offset
            .checked_add(self.size)?
            .checked_add(BLOCK_TRAILER_LEN as u64)
    }
}

/// The fixed-size record at the end of a table that locates its meta blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Footer {
    /// The index block.
    pub index: BlockHandle,
    /// The filter block; `size == 0` means the table has no filter.
    pub filter: BlockHandle,
    /// The properties block.
    pub properties: BlockHandle,
}

impl Footer {
    /// Encodes the footer.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut v = Vec::with_capacity(FOOTER_LEN);
        for h in [self.index, self.filter, self.properties] {
            put_fixed64(&mut v, h.offset);
            put_fixed64(&mut v, h.size);
        }
        put_fixed32(&mut v, FORMAT_VERSION);
        let crc = masked_crc(&v);
        put_fixed32(&mut v, crc);
        put_fixed64(&mut v, TABLE_MAGIC);
        let mut out = [0u8; FOOTER_LEN];
        out.copy_from_slice(&v);
        out
    }

    /// Decodes and verifies a footer; `src` must be exactly [`FOOTER_LEN`] bytes. Error offsets
    /// are relative to the footer's first byte.
    pub fn decode(src: &[u8]) -> Result<Footer> {
        if src.len() != FOOTER_LEN {
            return Err(Error::corruption(
                0,
                format!("footer is {} bytes", src.len()),
            ));
        }
        let magic = get_fixed64(&src[56..]).unwrap_or(0);
        if magic != TABLE_MAGIC {
            return Err(Error::corruption(56, format!("bad table magic {magic:#x}")));
        }
        let stored_crc = get_fixed32(&src[52..]).unwrap_or(0);
        if masked_crc(&src[..52]) != stored_crc {
            return Err(Error::corruption(52, "footer checksum mismatch"));
        }
        let version = get_fixed32(&src[48..]).unwrap_or(0);
        if version != FORMAT_VERSION {
            return Err(Error::corruption(
                48,
                format!("unsupported table format version {version}"),
            ));
        }
        let mut d = Decoder::new(&src[..48]);
        let mut handle = || -> BlockHandle {
            BlockHandle {
                offset: d.fixed64().unwrap_or(0),
                size: d.fixed64().unwrap_or(0),
            }
        };
        Ok(Footer {
            index: handle(),
            filter: handle(),
            properties: handle(),
        })
    }
}

/// The 5-byte trailer for `contents` stored with compression type `ty`.
pub fn block_trailer(contents: &[u8], ty: Compression) -> [u8; BLOCK_TRAILER_LEN] {
    let ty = ty.to_u8();
    let crc = crc32c::crc32c_append(crc32c::crc32c(contents), &[ty]);
    let masked = crate::coding::mask_crc(crc);
    let mut t = [0u8; BLOCK_TRAILER_LEN];
    t[0] = ty;
    t[1..].copy_from_slice(&masked.to_le_bytes());
    t
}

/// Compresses `raw` if `compression` asks for it and it saves at least 12.5%; returns the stored
/// contents and the type actually used. A one-off convenience over [`BlockCompressor`], which
/// table builders keep so that lz4's hash table and the output buffer are reused.
pub fn compress_block(raw: &[u8], compression: Compression) -> (Cow<'_, [u8]>, Compression) {
    let mut c = BlockCompressor::default();
    match c.compress(raw, compression) {
        (_, Compression::None) => (Cow::Borrowed(raw), Compression::None),
        (body, ty) => (Cow::Owned(body.to_vec()), ty),
    }
}

/// Block compression with state reused from block to block: lz4's 8 KiB hash table (allocated
/// and zeroed on every call by `lz4_flex::block::compress`) and the output buffer.
#[derive(Default)]
pub struct BlockCompressor {
    table: lz4_flex::block::CompressTable,
    out: Vec<u8>,
}

impl BlockCompressor {
    /// Compresses `raw` if `compression` asks for it and it saves at least 12.5%; returns the
    /// stored contents (`raw` itself when stored uncompressed) and the type actually used.
    pub fn compress<'a>(&'a mut self, raw: &'a [u8], compression: Compression) -> (&'a [u8], Compression) {
        if compression == Compression::Lz4 && raw.len() <= MAX_UNCOMPRESSED_BLOCK_LEN {
            let header = varint_len(raw.len() as u64);
            self.out.clear();
            put_varint64(&mut self.out, raw.len() as u64);
            self.out
                .resize(header + lz4_flex::block::get_maximum_output_size(raw.len()), 0);
            let written = lz4_flex::block::compress_into_with_table(
                raw,
                &mut self.out[header..],
                &mut self.table,
            );
            // The output is sized for the worst case, so this cannot fail; if it somehow did,
            // storing the block raw is always correct.
            if let Ok(body_len) = written {
                self.out.truncate(header + body_len);
                // The reader's ratio bound must accept everything the writer produces.
                let within_bound = raw.len() <= lz4_bound(body_len);
                if within_bound && self.out.len() < raw.len() - raw.len() / 8 {
                    return (&self.out, Compression::Lz4);
                }
            }
        }
        (raw, Compression::None)
    }
}

/// Verifies and decodes one stored block: `raw_with_trailer` is the stored contents followed by
/// the 5-byte trailer. Returns the uncompressed block bytes (borrowed when stored raw).
///
/// Never panics and never allocates more than [`MAX_UNCOMPRESSED_BLOCK_LEN`] (nor more than the
/// LZ4 ratio bound allows for the input size). Error offsets are relative to the block start.
pub fn decode_block_contents(raw_with_trailer: &[u8]) -> Result<Cow<'_, [u8]>> {
    let n = raw_with_trailer
        .len()
        .checked_sub(BLOCK_TRAILER_LEN)
        .ok_or_else(|| Error::corruption(0, "block shorter than its trailer"))?;
    let (contents, trailer) = raw_with_trailer.split_at(n);
    let ty_byte = trailer[0];
    let stored_crc = get_fixed32(&trailer[1..]).unwrap_or(0);
    let crc = crc32c::crc32c_append(crc32c::crc32c(contents), &[ty_byte]);
    if crate::coding::mask_crc(crc) != stored_crc {
        return Err(Error::corruption(n as u64, "block checksum mismatch"));
    }
    match Compression::from_u8(ty_byte) {
        Some(Compression::None) => Ok(Cow::Borrowed(contents)),
        Some(Compression::Lz4) => decompress_lz4(contents).map(Cow::Owned),
        None => Err(Error::corruption(
            n as u64,
            format!("unknown block compression type {ty_byte}"),
        )),
    }
}

/// Largest uncompressed length an lz4 body of `body_len` bytes may claim.
fn lz4_bound(body_len: usize) -> usize {
    body_len
        .saturating_mul(LZ4_MAX_RATIO)
        .saturating_add(LZ4_RATIO_SLACK)
        .min(MAX_UNCOMPRESSED_BLOCK_LEN)
}

fn decompress_lz4(contents: &[u8]) -> Result<Vec<u8>> {
    let mut d = Decoder::new(contents);
    let claimed = d
        .varint64()
        .ok_or_else(|| Error::corruption(0, "lz4 block: malformed length header"))?;
    let body = d.remaining();
    let bound = lz4_bound(body.len());
    let claimed = match usize::try_from(claimed) {
        Ok(c) if c <= bound => c,
        _ => {
            return Err(Error::corruption(
                0,
                format!(
                    "lz4 block claims {claimed} uncompressed bytes from {} (limit {bound})",
                    body.len()
                ),
            ))
        }
    };
    let mut out = super::block_buf::take(claimed);
    out.resize(claimed, 0);
    let written = lz4_flex::block::decompress_into(body, &mut out)
        .map_err(|e| Error::corruption(d.position() as u64, format!("lz4 block: {e}")))?;
    if written != claimed {
        return Err(Error::corruption(
            0,
            format!("lz4 block decoded to {written} bytes, header says {claimed}"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(contents: &[u8], ty: Compression) -> Vec<u8> {
        let mut v = contents.to_vec();
        v.extend_from_slice(&block_trailer(contents, ty));
        v
    }

    #[test]
    fn footer_roundtrip_and_rejects_damage() {
        let f = Footer {
            index: BlockHandle::new(1, 2),
            filter: BlockHandle::new(3, 4),
            properties: BlockHandle::new(u64::MAX, 6),
        };
        let enc = f.encode();
        assert_eq!(Footer::decode(&enc).unwrap(), f);
        for i in 0..FOOTER_LEN {
            let mut bad = enc;
            bad[i] ^= 0x01;
            assert!(
                Footer::decode(&bad).unwrap_err().is_corruption(),
                "byte {i}"
            );
        }
        assert!(Footer::decode(&enc[1..]).is_err());
    }

    #[test]
    fn handle_roundtrip_and_malformed() {
        let h = BlockHandle::new(u64::MAX, 12345);
        assert_eq!(BlockHandle::decode(&h.encode()).unwrap(), h);
        assert!(h.encode().len() <= BlockHandle::MAX_ENCODED_LEN);
        assert!(BlockHandle::decode(&[0x80]).is_err());
        let mut trailing = h.encode();
        trailing.push(0);
        assert!(BlockHandle::decode(&trailing).is_err());
        assert_eq!(h.end_with_trailer(), None);
    }

    #[test]
    fn compression_only_when_it_pays() {
        let compressible = vec![7u8; 4096];
        let (c, ty) = compress_block(&compressible, Compression::Lz4);
        assert_eq!(ty, Compression::Lz4);
        assert!(c.len() < 200);
        let s = stored(&c, ty);
        assert_eq!(&*decode_block_contents(&s).unwrap(), &compressible[..]);

        // Pseudo-random bytes do not compress: stored raw.
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let (c, ty) = compress_block(&noise, Compression::Lz4);
        assert_eq!(ty, Compression::None);
        assert_eq!(&*c, &noise[..]);
        let (_, ty) = compress_block(&compressible, Compression::None);
        assert_eq!(ty, Compression::None);
    }

    #[test]
    fn a_reused_compressor_roundtrips_every_block() {
        // The hash table and output buffer carry over between calls; stale state from a
        // previous block must never leak into the next one.
        let mut c = BlockCompressor::default();
        let mut x = 0x9e37_79b9u32;
        for round in 0..200usize {
            let len = 1 + (round * 977) % 70_000; // crosses lz4's small/large table boundary
            let raw: Vec<u8> = (0..len)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    // Mostly repetitive text, with noise in some rounds.
                    if round % 3 == 0 { x as u8 } else { b"abcdefgh"[(i / 5 + round) % 8] }
                })
                .collect();
            let (body, ty) = c.compress(&raw, Compression::Lz4);
            let s = stored(body, ty);
            assert_eq!(&*decode_block_contents(&s).unwrap(), &raw[..], "round {round}");
        }
    }

    #[test]
    fn block_checksum_and_type_are_verified() {
        let s = stored(b"hello block", Compression::None);
        assert_eq!(&*decode_block_contents(&s).unwrap(), b"hello block");
        for i in 0..s.len() {
            let mut bad = s.clone();
            bad[i] ^= 0x40;
            assert!(decode_block_contents(&bad).unwrap_err().is_corruption());
        }
        for cut in 0..s.len() {
            assert!(decode_block_contents(&s[..cut]).is_err());
        }
        // A valid checksum over an unknown type byte is still rejected.
        let mut unknown = b"abc".to_vec();
        let mut t = block_trailer(b"abc", Compression::None);
        t[0] = 9;
        let crc = crc32c::crc32c_append(crc32c::crc32c(b"abc"), &[9]);
        t[1..].copy_from_slice(&crate::coding::mask_crc(crc).to_le_bytes());
        unknown.extend_from_slice(&t);
        assert!(decode_block_contents(&unknown).unwrap_err().is_corruption());
    }

    #[test]
    fn extremely_compressible_blocks_roundtrip() {
        for len in [
            1000,
            4096,
            1 << 20,
            16 << 20,
            MAX_UNCOMPRESSED_BLOCK_LEN + 1,
        ] {
            let zeros = vec![0u8; len];
            let (c, ty) = compress_block(&zeros, Compression::Lz4);
            if len > MAX_UNCOMPRESSED_BLOCK_LEN {
                assert_eq!(ty, Compression::None);
            }
            let s = stored(&c, ty);
            assert!(decode_block_contents(&s).unwrap() == zeros, "len {len}");
        }
    }

    #[test]
    fn lz4_huge_claim_rejected_before_allocation() {
        // Header claims ~4 GiB (and separately 60 MiB) from a 3-byte body: both rejected by the
        // bounds, with valid checksums so the decoder really reaches the length check.
        for claim in [u32::MAX as u64, 60 << 20, u64::MAX, 1 << 40] {
            let mut contents = Vec::new();
            put_varint64(&mut contents, claim);
            contents.extend_from_slice(&[0x10, 0x41, 0x00]);
            let s = stored(&contents, Compression::Lz4);
            let err = decode_block_contents(&s).unwrap_err();
            assert!(err.to_string().contains("claims"), "{err}");
        }
        // Within the bounds but lying about the size: rejected after decoding.
        let body = lz4_flex::block::compress(b"abcdefgh");
        let mut contents = Vec::new();
        put_varint64(&mut contents, 9);
        contents.extend_from_slice(&body);
        assert!(decode_block_contents(&stored(&contents, Compression::Lz4)).is_err());
        // Garbage lz4 body.
        let mut contents = Vec::new();
        put_varint64(&mut contents, 100);
        contents.extend_from_slice(&[0xff; 20]);
        assert!(decode_block_contents(&stored(&contents, Compression::Lz4)).is_err());
    }
}
