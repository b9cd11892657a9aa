//! Byte formats of [`Op`] (replicated through the Paxos log) and of the values inside a
//! snapshot ([`Config`], [`Outcome`]): [`Op::encode`], [`encode_config`], [`encode_command`]
//! and their decoders.
//!
//! Integers are unsigned LEB128 varints (`v`), in canonical form only (no redundant trailing
//! zero groups); a client id is 16 bytes little-endian; a string is `v(len) bytes` (UTF-8);
//! a list is `v(count) items`.
//!
//! ```text
//! Op      = 0x01 v(groups) { v(gid) v(servers) { str } }   Join, gids strictly ascending
//!         | 0x02 v(count) { v(gid) }                       Leave, in the client's order
//!         | 0x03 v(shard) v(gid)                           Move
//!         | 0x04                                           Query(latest)
//!         | 0x05 v(num)                                    Query(num)
//! Config  = v(num) v(num_shards) v(groups) { v(gid) v(servers) { str } }
//!           v(runs) { v(gid) v(run_len) }                  shards, run-length encoded
//! Outcome = 0x01 v(num) | 0x02 v(num) | 0x03 OpError       Created | Queried | Refused
//! OpError = tag (0x01..=0x0a, in declaration order) then the variant's fields
//! ```
//!
//! Decoders check every length against the bytes that remain before allocating, reject
//! trailing bytes, and return [`DecodeError`], never panic, whatever the input.
//!
//! # Why not prost
//!
//! Everything on the network is protobuf (`strata-rpc`); these bytes never are: they are what
//! the master's Paxos log and store hold, so they are kept hand-written, for four reasons.
//! They are *canonical*: one value has one encoding, and the decoder refuses any other
//! (redundant varint groups, gids out of order or repeated, trailing bytes), while protobuf
//! accepts fields in any order, repeated fields (last wins) and unknown fields, so each
//! replica's decoded log would need the same checks written again on top. They are
//! *validated where decoded*: a config that decodes has a legal shard count and owners that
//! are its groups. They are *compact* where it matters: the store keeps every config of the
//! history, and a run-length encoded config 0 of 65,536 shards is under 10 bytes where a
//! packed `repeated uint64` is at least 64 KiB. And they are *fuzzed*
//! (`fuzz/fuzz_targets/shardmaster_codec.rs`, and the round-trip and garbage properties of
//! `tests/codec.rs`). Moving to prost would also change the format of existing data
//! directories: the snapshot stream is versioned (`SMS1`, version 1, see
//! [`snapshot`](crate::snapshot)) but the log's commands are not, so that move needs a
//! version byte first.

use std::collections::BTreeMap;

use crate::config::{validate_num_shards, Config, Gid, ShardId};
use crate::op::{Op, OpError};
use crate::state::Outcome;

/// Bytes that are not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ends in the middle of a value.
    #[error("truncated input")]
    Truncated,
    /// A varint is longer than 10 bytes, overflows 64 bits, or is not in canonical form.
    #[error("malformed varint")]
    BadVarint,
    /// An unknown tag byte.
    #[error("unknown {what} tag {tag:#04x}")]
    UnknownTag {
        /// What was being decoded.
        what: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// A string is not UTF-8.
    #[error("string is not UTF-8")]
    BadUtf8,
    /// Bytes remain after the value.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// The bytes are well formed but describe something invalid.
    #[error("invalid encoding: {0}")]
    Invalid(&'static str),
}

/// Appends encoded values to a byte vector.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub(crate) fn len(&mut self, n: usize) {
        self.varint(n as u64);
    }

    pub(crate) fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.len(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub(crate) fn groups(&mut self, groups: &BTreeMap<Gid, Vec<String>>) {
        self.len(groups.len());
        for (&gid, servers) in groups {
            self.varint(gid);
            self.len(servers.len());
            for server in servers {
                self.str(server);
            }
        }
    }
}

/// Reads encoded values from a byte slice.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.buf.split_first().ok_or(DecodeError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            // The tenth byte may carry only the top bit of a u64.
            if i == 9 && bits > 1 {
                return Err(DecodeError::BadVarint);
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(DecodeError::BadVarint);
                }
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint)
    }

    /// A count of items that each take at least `min_item_bytes`: bounded by what remains, so
    /// a hostile count cannot make the decoder allocate or loop beyond the input's size.
    pub(crate) fn count(&mut self, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        let max = self.remaining() / min_item_bytes.max(1);
        if n > max as u64 {
            return Err(DecodeError::Truncated);
        }
        Ok(n as usize)
    }

    pub(crate) fn u128(&mut self) -> Result<u128, DecodeError> {
        let bytes = self.bytes(16)?;
        let mut arr = [0u8; 16];
        arr.copy_from_slice(bytes);
        Ok(u128::from_le_bytes(arr))
    }

    pub(crate) fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.count(1)?;
        let bytes = self.bytes(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::BadUtf8)
    }

    /// A group map; gids must be strictly ascending (the canonical order, and no duplicates).
    pub(crate) fn groups(&mut self) -> Result<BTreeMap<Gid, Vec<String>>, DecodeError> {
        let n = self.count(2)?;
        let mut groups = BTreeMap::new();
        let mut previous: Option<Gid> = None;
        for _ in 0..n {
            let gid = self.varint()?;
            if previous.is_some_and(|p| gid <= p) {
                return Err(DecodeError::Invalid("group ids not strictly ascending"));
            }
            previous = Some(gid);
            let count = self.count(1)?;
            let mut servers = Vec::with_capacity(count);
            for _ in 0..count {
                servers.push(self.str()?);
            }
            groups.insert(gid, servers);
        }
        Ok(groups)
    }
}

impl Op {
    /// The operation's bytes (see the module docs for the layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Op::Join(groups) => {
                w.u8(0x01);
                w.groups(groups);
            }
            Op::Leave(gids) => {
                w.u8(0x02);
                w.len(gids.len());
                for &gid in gids {
                    w.varint(gid);
                }
            }
            Op::Move { shard, gid } => {
                w.u8(0x03);
                w.varint(u64::from(*shard));
                w.varint(*gid);
            }
            Op::SetServers(groups) => {
                w.u8(0x06);
                w.groups(groups);
            }
            Op::Query(None) => w.u8(0x04),
            Op::Query(Some(num)) => {
                w.u8(0x05);
                w.varint(*num);
            }
        }
        w.buf
    }

    /// Decodes bytes made by [`Op::encode`]. Only the structure is checked here; whether the
    /// operation is valid against the state is decided when it is applied.
    pub fn decode(bytes: &[u8]) -> Result<Op, DecodeError> {
        let mut r = Reader::new(bytes);
        let op = match r.u8()? {
            0x01 => Op::Join(r.groups()?),
            0x02 => {
                let n = r.count(1)?;
                let mut gids = Vec::with_capacity(n);
                for _ in 0..n {
                    gids.push(r.varint()?);
                }
                Op::Leave(gids)
            }
            0x03 => {
                let shard = ShardId::try_from(r.varint()?)
                    .map_err(|_| DecodeError::Invalid("shard id above u32"))?;
                Op::Move {
                    shard,
                    gid: r.varint()?,
                }
            }
            0x04 => Op::Query(None),
            0x05 => Op::Query(Some(r.varint()?)),
            0x06 => Op::SetServers(r.groups()?),
            tag => return Err(DecodeError::UnknownTag { what: "op", tag }),
        };
        r.finish()?;
        Ok(op)
    }
}

/// The configuration's bytes (see the module docs; shards are run-length encoded).
pub fn encode_config(config: &Config) -> Vec<u8> {
    let mut w = Writer::default();
    write_config(&mut w, config);
    w.buf
}

/// Decodes bytes made by [`encode_config`], checking the shard count and that every shard's
/// owner is unassigned or a group of the configuration.
pub fn decode_config(bytes: &[u8]) -> Result<Config, DecodeError> {
    let mut r = Reader::new(bytes);
    let config = read_config(&mut r)?;
    r.finish()?;
    Ok(config)
}

pub(crate) fn write_config(w: &mut Writer, config: &Config) {
    w.varint(config.num);
    w.len(config.shards.len());
    w.groups(&config.groups);
    let mut runs: Vec<(Gid, usize)> = Vec::new();
    for &gid in &config.shards {
        match runs.last_mut() {
            Some((g, len)) if *g == gid => *len += 1,
            _ => runs.push((gid, 1)),
        }
    }
    w.len(runs.len());
    for (gid, len) in runs {
        w.varint(gid);
        w.len(len);
    }
}

pub(crate) fn read_config(r: &mut Reader<'_>) -> Result<Config, DecodeError> {
    let num = r.varint()?;
    let num_shards = usize::try_from(r.varint()?).unwrap_or(usize::MAX);
    validate_num_shards(num_shards).map_err(|_| DecodeError::Invalid("shard count"))?;
    let groups = r.groups()?;
    if groups.contains_key(&0) {
        return Err(DecodeError::Invalid("group with gid 0"));
    }
    if groups
        .values()
        .any(|s| s.is_empty() || s.iter().any(String::is_empty))
    {
        return Err(DecodeError::Invalid("group without servers"));
    }
    let runs = r.count(2)?;
    let mut shards = Vec::with_capacity(num_shards);
    for _ in 0..runs {
        let gid = r.varint()?;
        let len = r.varint()?;
        if len == 0 || len > (num_shards - shards.len()) as u64 {
            return Err(DecodeError::Invalid("shard run length"));
        }
        if gid != 0 && !groups.contains_key(&gid) {
            return Err(DecodeError::Invalid("shard owned by an unknown group"));
        }
        shards.resize(shards.len() + len as usize, gid);
    }
    if shards.len() != num_shards {
        return Err(DecodeError::Invalid("shard runs do not cover every shard"));
    }
    Ok(Config {
        num,
        shards,
        groups: groups.into(),
    })
}

pub(crate) fn encode_outcome(w: &mut Writer, outcome: &Outcome) {
    match outcome {
        Outcome::Created(num) => {
            w.u8(0x01);
            w.varint(*num);
        }
        Outcome::Queried(num) => {
            w.u8(0x02);
            w.varint(*num);
        }
        Outcome::Refused(e) => {
            w.u8(0x03);
            encode_error(w, e);
        }
    }
}

pub(crate) fn decode_outcome(r: &mut Reader<'_>) -> Result<Outcome, DecodeError> {
    match r.u8()? {
        0x01 => Ok(Outcome::Created(r.varint()?)),
        0x02 => Ok(Outcome::Queried(r.varint()?)),
        0x03 => Ok(Outcome::Refused(decode_error(r)?)),
        tag => Err(DecodeError::UnknownTag {
            what: "outcome",
            tag,
        }),
    }
}

fn encode_error(w: &mut Writer, e: &OpError) {
    match e {
        OpError::ReservedGid => w.u8(0x01),
        OpError::AlreadyJoined(gid) => {
            w.u8(0x02);
            w.varint(*gid);
        }
        OpError::DuplicateGid(gid) => {
            w.u8(0x03);
            w.varint(*gid);
        }
        OpError::EmptyServerList(gid) => {
            w.u8(0x04);
            w.varint(*gid);
        }
        OpError::EmptyServerAddress(gid) => {
            w.u8(0x05);
            w.varint(*gid);
        }
        OpError::NoGroups => w.u8(0x06),
        OpError::UnknownGroup(gid) => {
            w.u8(0x07);
            w.varint(*gid);
        }
        OpError::ShardOutOfRange { shard, num_shards } => {
            w.u8(0x08);
            w.varint(u64::from(*shard));
            w.len(*num_shards);
        }
        OpError::StaleRequest {
            client_id,
            seq,
            latest,
        } => {
            w.u8(0x09);
            w.u128(*client_id);
            w.varint(*seq);
            w.varint(*latest);
        }
        OpError::ConfigUnavailable(num) => {
            w.u8(0x0a);
            w.varint(*num);
        }
    }
}

fn decode_error(r: &mut Reader<'_>) -> Result<OpError, DecodeError> {
    Ok(match r.u8()? {
        0x01 => OpError::ReservedGid,
        0x02 => OpError::AlreadyJoined(r.varint()?),
        0x03 => OpError::DuplicateGid(r.varint()?),
        0x04 => OpError::EmptyServerList(r.varint()?),
        0x05 => OpError::EmptyServerAddress(r.varint()?),
        0x06 => OpError::NoGroups,
        0x07 => OpError::UnknownGroup(r.varint()?),
        0x08 => OpError::ShardOutOfRange {
            shard: ShardId::try_from(r.varint()?)
                .map_err(|_| DecodeError::Invalid("shard id above u32"))?,
            num_shards: usize::try_from(r.varint()?)
                .map_err(|_| DecodeError::Invalid("shard count above usize"))?,
        },
        0x09 => OpError::StaleRequest {
            client_id: r.u128()?,
            seq: r.varint()?,
            latest: r.varint()?,
        },
        0x0a => OpError::ConfigUnavailable(r.varint()?),
        tag => return Err(DecodeError::UnknownTag { what: "error", tag }),
    })
}

/// The config of a stored config chunk (tag byte, then a config).
pub(crate) fn decode_config_chunk(chunk: &[u8]) -> Result<Config, String> {
    let body = chunk.get(1..).ok_or("empty config chunk")?;
    let mut r = Reader::new(body);
    let config = read_config(&mut r).map_err(|e| e.to_string())?;
    r.finish().map_err(|e| e.to_string())?;
    Ok(config)
}

/// The shard count of a stored config chunk (tag byte, then a config).
pub(crate) fn decode_config_chunk_shards(chunk: &[u8]) -> Result<usize, String> {
    let body = chunk.get(1..).ok_or("empty config chunk")?;
    let mut r = Reader::new(body);
    let config = read_config(&mut r).map_err(|e| e.to_string())?;
    Ok(config.num_shards())
}

/// A replicated request: who sent it, its sequence number, and the operation.
///
/// ```text
/// client_id: u128 (16 bytes) | varint seq | op
/// ```
pub fn encode_command(client_id: u128, seq: u64, op: &Op) -> Vec<u8> {
    let mut w = Writer::default();
    w.u128(client_id);
    w.varint(seq);
    let mut out = w.buf;
    out.extend_from_slice(&op.encode());
    out
}

/// Decodes [`encode_command`]'s bytes.
pub fn decode_command(bytes: &[u8]) -> Result<(u128, u64, Op), DecodeError> {
    let mut r = Reader::new(bytes);
    let client = r.u128()?;
    let seq = r.varint()?;
    let rest = r.bytes(r.remaining())?;
    Ok((client, seq, Op::decode(rest)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn varint_bytes(v: u64) -> Vec<u8> {
        let mut w = Writer::default();
        w.varint(v);
        w.buf
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let bytes = varint_bytes(v);
            let mut r = Reader::new(&bytes);
            assert_eq!(r.varint(), Ok(v));
            assert_eq!(r.finish(), Ok(()));
        }
        assert_eq!(varint_bytes(u64::MAX).len(), 10);
    }

    #[test]
    fn malformed_varints_are_errors() {
        // Overlong (eleven bytes), overflowing tenth byte, non-canonical, truncated.
        let cases: [&[u8]; 4] = [
            &[0xff; 11],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            &[0x80, 0x00],
            &[0x80],
        ];
        for bytes in cases {
            assert!(Reader::new(bytes).varint().is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn a_huge_count_is_refused_before_allocating() {
        // Leave with a count of 2^62 gids and three bytes of them.
        let mut bytes = vec![0x02];
        bytes.extend(varint_bytes(1 << 62));
        bytes.extend([1, 2, 3]);
        assert_eq!(Op::decode(&bytes), Err(DecodeError::Truncated));
    }

    #[test]
    fn join_gids_must_be_ascending() {
        let op = Op::join([(1, vec!["a".into()]), (2, vec!["b".into()])]).unwrap();
        let mut bytes = op.encode();
        // Layout: tag, count, gid 1, 1 server, len 1, "a", gid 2, ... — make the second gid 1.
        assert_eq!(bytes[6], 2);
        bytes[6] = 1;
        assert!(matches!(Op::decode(&bytes), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn config_shards_are_run_length_encoded() {
        let config = Config::initial(4096);
        assert!(encode_config(&config).len() < 10);
        assert_eq!(decode_config(&encode_config(&config)), Ok(config));
    }

    #[test]
    fn config_with_an_unknown_owner_is_refused() {
        let mut config = Config::initial(3);
        Arc::make_mut(&mut config.groups).insert(1, vec!["a".into()]);
        config.shards = vec![1, 1, 2];
        assert_eq!(
            decode_config(&encode_config(&config)),
            Err(DecodeError::Invalid("shard owned by an unknown group"))
        );
    }

    #[test]
    fn commands_round_trip() {
        let op = Op::Move { shard: 3, gid: 7 };
        let bytes = encode_command(u128::MAX - 5, 42, &op);
        assert_eq!(decode_command(&bytes).unwrap(), (u128::MAX - 5, 42, op));
        assert!(decode_command(&bytes[..10]).is_err());
    }

    #[test]
    fn every_error_round_trips() {
        let errors = [
            OpError::ReservedGid,
            OpError::AlreadyJoined(3),
            OpError::DuplicateGid(u64::MAX),
            OpError::EmptyServerList(4),
            OpError::EmptyServerAddress(5),
            OpError::NoGroups,
            OpError::UnknownGroup(6),
            OpError::ShardOutOfRange {
                shard: u32::MAX,
                num_shards: 64,
            },
            OpError::StaleRequest {
                client_id: u128::MAX - 7,
                seq: 9,
                latest: 10,
            },
            OpError::ConfigUnavailable(12),
        ];
        for e in errors {
            let outcome = Outcome::Refused(e);
            let mut w = Writer::default();
            encode_outcome(&mut w, &outcome);
            let mut r = Reader::new(&w.buf);
            assert_eq!(decode_outcome(&mut r), Ok(outcome));
            assert_eq!(r.finish(), Ok(()));
        }
    }
}
