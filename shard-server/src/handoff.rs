//! The previous owner's side of a shard move: reading a frozen shard as a stream of bounded
//! chunks (data in key order, then the dedup table), resumable at any chunk boundary.
//!
//! A resume token is a position `offset:u32be ++ engine key`: continue at that key (inclusive),
//! skipping the first `offset` bytes of its value (a value larger than a chunk is split over
//! consecutive entries with `continues` set).

use strata_rpc::v1;

use crate::keys;
use crate::session::Session;
use crate::store::{Store, StoreError};

/// Bytes of keys and values per chunk: well below 1 MiB, so a chunk and the log entry that
/// installs it stay under [`strata_rpc::MAX_SHARD_CHUNK_BYTES`].
pub const CHUNK_BYTES: usize = 256 << 10;

fn token(offset: u32, key: &[u8]) -> Vec<u8> {
    let mut t = offset.to_be_bytes().to_vec();
    t.extend_from_slice(key);
    t
}

/// The key right after `key`.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0);
    k
}

/// Why a chunk could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// The puller's resume token is not one this replica handed out.
    #[error("{0}")]
    BadToken(&'static str),
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads the chunk of `shard` (frozen for `config_num`) that starts at `resume` (empty: the
/// beginning), with at most about `budget` bytes of keys and values.
pub fn read_chunk(
    store: &dyn Store,
    shard: u32,
    config_num: u64,
    resume: &[u8],
    budget: usize,
) -> Result<v1::ShardChunk, HandoffError> {
    let (range_start, range_end) = keys::shard_range(shard);
    let (mut offset, start) = if resume.is_empty() {
        (0, range_start.clone())
    } else {
        if resume.len() < 4 {
            return Err(HandoffError::BadToken("malformed resume token"));
        }
        let offset = u32::from_be_bytes(resume[..4].try_into().expect("4 bytes"));
        let key = resume[4..].to_vec();
        if key < range_start || key > range_end {
            return Err(HandoffError::BadToken("resume token outside the shard"));
        }
        (offset, key)
    };
    let budget = budget.max(1);
    let mut chunk = v1::ShardChunk {
        shard,
        config_num,
        ..Default::default()
    };
    let mut bytes = 0usize;
    let mut next = token(0, &range_end);
    let mut done = true;
    for entry in store.scan(&start, &range_end) {
        let (key, value) = entry?;
        if let Some(user_key) = keys::user_key(shard, &key) {
            let rest = value.get(offset as usize..).unwrap_or_default();
            let size = user_key.len() + rest.len();
            if bytes > 0 && bytes + size > budget {
                next = token(offset, &key);
                done = false;
                break;
            }
            if size > budget {
                // Split: as much as fits now, the rest in later chunks.
                let piece = budget.saturating_sub(user_key.len()).max(1).min(rest.len());
                chunk.entries.push(v1::ShardEntry {
                    key: user_key.to_vec(),
                    value: rest[..piece].to_vec(),
                    continues: piece < rest.len(),
                });
                if piece < rest.len() {
                    offset += piece as u32;
                    next = token(offset, &key);
                    done = false;
                    break;
                }
                bytes += user_key.len() + piece;
            } else {
                chunk.entries.push(v1::ShardEntry {
                    key: user_key.to_vec(),
                    value: rest.to_vec(),
                    continues: false,
                });
                bytes += size;
            }
        } else {
            // A session of the dedup table (the only other thing in a shard's range).
            if bytes > 0 && bytes + value.len() > budget {
                next = token(0, &key);
                done = false;
                break;
            }
            let (client, session) = Session::decode(&value)?;
            chunk.sessions.push(session.to_proto(client));
            bytes += value.len();
        }
        offset = 0;
        next = token(0, &successor(&key));
    }
    chunk.resume_token = next;
    chunk.done = done;
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use strata::WriteBatch;

    #[test]
    fn a_shard_streams_in_bounded_chunks_and_resumes_anywhere() {
        let store = MemStore::new();
        let mut b = WriteBatch::new();
        for i in 0..50u32 {
            b.put(keys::data_key(3, &i.to_be_bytes()), vec![i as u8; 100]);
        }
        b.put(keys::data_key(3, b"big"), vec![7u8; 5000]);
        b.put(keys::data_key(4, b"other"), b"x");
        b.put(keys::session_key(3, 9), Session::default().encode(9));
        store.write(b, false).unwrap();

        let mut token = Vec::new();
        let mut values: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
        let mut sessions = 0;
        let mut chunks = 0;
        loop {
            let c = read_chunk(&store, 3, 5, &token, 1000).unwrap();
            chunks += 1;
            let full = read_chunk(&store, 3, 5, &token, CHUNK_BYTES).unwrap();
            let entry = crate::command::Command::new(
                u64::MAX,
                crate::command::Kind::Install(crate::command::InstallChunk {
                    after: token.clone(),
                    chunk: Some(full),
                    source: 0,
                }),
            );
            assert!(entry.encode().len() <= strata_rpc::MAX_SHARD_CHUNK_BYTES);
            let size: usize = c.entries.iter().map(|e| e.key.len() + e.value.len()).sum();
            assert!(size <= 1000, "chunk of {size} bytes");
            for e in c.entries {
                values.entry(e.key).or_default().extend_from_slice(&e.value);
            }
            sessions += c.sessions.len();
            if c.done {
                break;
            }
            token = c.resume_token;
        }
        assert!(chunks > 10);
        assert_eq!(values.len(), 51);
        assert_eq!(values[&b"big".to_vec()], vec![7u8; 5000]);
        assert!(!values.contains_key(b"other".as_slice()));
        assert_eq!(sessions, 1);
        assert!(read_chunk(&store, 3, 5, &[1, 2], 1000).is_err());
        assert!(read_chunk(&store, 3, 5, &super::token(0, b"\x09"), 1000).is_err());
    }
}
