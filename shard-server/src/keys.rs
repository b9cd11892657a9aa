//! Key layout of a shard server's data engine.
//!
//! Everything a shard is — its data and its dedup table — lives in one contiguous key range,
//! so that streaming, installing or deleting a shard is one range operation:
//!
//! ```text
//! 0x00 name                                     metadata (applied index, configs, shard states)
//! 0x01 shard:u32be 0x00 user key                a key of the shard (-> its value)
//! 0x01 shard:u32be 0x01 client:u128be           a session of the shard's dedup table
//! 0x02 shard:u32be key piece:u32be              a piece of a large value being installed
//! ```
//! Big-endian shard numbers keep shards in numeric order and each shard's range is
//! `[0x01 shard, 0x01 shard+1)`. The pieces of a value that arrive split over several install
//! chunks are kept outside the shard's range until the value is complete.

/// The metadata namespace.
const META: u8 = 0x00;
/// The shards namespace.
const SHARD: u8 = 0x01;
/// Pieces of values being installed.
const PIECE: u8 = 0x02;
/// Within a shard: data.
const DATA: u8 = 0x00;
/// Within a shard: sessions.
const SESSION: u8 = 0x01;

/// Metadata: every slot below this is applied (u64 LE).
pub const APPLIED: &[u8] = b"\x00applied";
/// Metadata: the replica's current configuration (encoded `v1::Config`).
pub const CONFIG: &[u8] = b"\x00config";
/// Metadata: the configuration before it (encoded `v1::Config`).
pub const PREVIOUS_CONFIG: &[u8] = b"\x00config.previous";
/// Metadata: the shard states (encoded, see `shard_state`).
pub const SHARD_STATES: &[u8] = b"\x00shards";
/// Metadata: the shards this group took back, by the configuration they were pulled for
/// (encoded, see `shard_state::encode_reclaims`).
pub const RECLAIMED: &[u8] = b"\x00reclaimed";
/// Metadata: the log time, the largest leader timestamp applied (u64 LE, ms).
pub const LOG_TIME: &[u8] = b"\x00time";

/// First key of the metadata namespace.
pub fn meta_start() -> Vec<u8> {
    vec![META]
}

fn shard_prefix(namespace: u8, shard: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(6);
    k.push(namespace);
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

/// `[start, end)` of everything of `shard` (data and sessions).
pub fn shard_range(shard: u32) -> (Vec<u8>, Vec<u8>) {
    let start = shard_prefix(SHARD, shard);
    let end = match shard.checked_add(1) {
        Some(next) => shard_prefix(SHARD, next),
        None => vec![SHARD + 1],
    };
    (start, end)
}

/// `[start, end)` of the data of `shard`.
pub fn data_range(shard: u32) -> (Vec<u8>, Vec<u8>) {
    let mut start = shard_prefix(SHARD, shard);
    let mut end = start.clone();
    start.push(DATA);
    end.push(DATA + 1);
    (start, end)
}

/// `[start, end)` of the sessions of `shard`.
pub fn session_range(shard: u32) -> (Vec<u8>, Vec<u8>) {
    let mut start = shard_prefix(SHARD, shard);
    let mut end = start.clone();
    start.push(SESSION);
    end.push(SESSION + 1);
    (start, end)
}

/// The engine key of `key` in `shard`.
pub fn data_key(shard: u32, key: &[u8]) -> Vec<u8> {
    let mut k = shard_prefix(SHARD, shard);
    k.reserve(1 + key.len());
    k.push(DATA);
    k.extend_from_slice(key);
    k
}

/// The user key of a data key of `shard` (None if `engine_key` is not one).
pub fn user_key(shard: u32, engine_key: &[u8]) -> Option<&[u8]> {
    let prefix = shard_prefix(SHARD, shard);
    let rest = engine_key.strip_prefix(prefix.as_slice())?;
    rest.strip_prefix(&[DATA])
}

/// The engine key of `client`'s session in `shard`.
pub fn session_key(shard: u32, client: u128) -> Vec<u8> {
    let mut k = shard_prefix(SHARD, shard);
    k.push(SESSION);
    k.extend_from_slice(&client.to_be_bytes());
    k
}

/// Whether `engine_key` lies in the session range of some shard's dedup table (well-formed
/// or not).
pub fn in_session_range(engine_key: &[u8]) -> bool {
    engine_key.len() > 5 && engine_key[0] == SHARD && engine_key[5] == SESSION
}

/// The client `engine_key` is the session of, or `None` if it is not a well-formed session key.
pub fn session_client(engine_key: &[u8]) -> Option<u128> {
    if !in_session_range(engine_key) {
        return None;
    }
    Some(u128::from_be_bytes(engine_key[6..].try_into().ok()?))
}

/// `[start, end)` of the pieces of values being installed into `shard`.
pub fn piece_range(shard: u32) -> (Vec<u8>, Vec<u8>) {
    let start = shard_prefix(PIECE, shard);
    let end = match shard.checked_add(1) {
        Some(next) => shard_prefix(PIECE, next),
        None => vec![PIECE + 1],
    };
    (start, end)
}

/// The key of piece `index` of a value being installed into `shard` (the key it belongs to
/// is stored with the piece).
pub fn piece_key(shard: u32, index: u32) -> Vec<u8> {
    let mut k = shard_prefix(PIECE, shard);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_is_one_contiguous_range_holding_its_data_and_sessions() {
        let (start, end) = shard_range(7);
        for k in [
            data_key(7, b""),
            data_key(7, &[0xff; 40]),
            session_key(7, 0),
            session_key(7, u128::MAX),
        ] {
            assert!(start <= k && k < end, "{k:?}");
        }
        for k in [
            data_key(6, &[0xff; 8]),
            data_key(8, b""),
            session_key(8, 0),
            APPLIED.to_vec(),
            piece_key(7, 0),
        ] {
            assert!(!(start <= k && k < end), "{k:?}");
        }
        let (ds, de) = data_range(7);
        let (ss, se) = session_range(7);
        assert!(start <= ds && de <= ss && se <= end);
        assert_eq!(user_key(7, &data_key(7, b"abc")), Some(&b"abc"[..]));
        assert_eq!(user_key(8, &data_key(7, b"abc")), None);
        assert_eq!(user_key(7, &session_key(7, 1)), None);
        assert_eq!(session_client(&session_key(7, 1 << 100)), Some(1 << 100));
        assert_eq!(session_client(&data_key(7, &[0u8; 17])), None);
        let mut long = session_key(7, 1);
        long.push(0);
        assert!(in_session_range(&long));
        assert_eq!(session_client(&long), None);
        assert!(!in_session_range(&data_key(7, &[0u8; 17])));
        let (ps, pe) = piece_range(u32::MAX);
        assert!(ps <= piece_key(u32::MAX, 3) && piece_key(u32::MAX, 3) < pe);
        assert_eq!(shard_range(u32::MAX).1, vec![0x02]);
    }
}
