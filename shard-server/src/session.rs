//! Dedup sessions: per shard and client, the replies of the mutations the client has not yet
//! acknowledged, so that a retried mutation is answered instead of applied again.
//!
//! A request carries `(client_id, seq, first_incomplete_seq)`; the shard keeps, per client,
//! the replies of the seqs at or above the newest `first_incomplete_seq` it has seen and drops
//! the rest. A session idle for longer than the timeout, measured in *log time* (the largest
//! leader timestamp applied), is dropped; a later request of that client that does not say it
//! opens a session gets `SESSION_EXPIRED`, because the shard can no longer tell whether it ran.
//!
//! The table of the shards a replica serves is kept in memory (mirrored in the store with
//! every change); the tables of shards being handed over or installed live only in the store.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost::Message;
use strata_rpc::v1;

/// One client's session in one shard.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Session {
    /// Seqs below this completed at the client.
    pub first_incomplete: u64,
    /// Log time of the session's last request.
    pub last_active_ms: u64,
    /// Replies of seqs at or above `first_incomplete`.
    pub replies: BTreeMap<u64, v1::KvReply>,
}

impl Session {
    /// Its wire (and stored) form.
    pub fn to_proto(&self, client: u128) -> v1::ClientSession {
        v1::ClientSession {
            client_id: client.to_be_bytes().to_vec(),
            first_incomplete_seq: self.first_incomplete,
            last_active_ms: self.last_active_ms,
            replies: self
                .replies
                .iter()
                .map(|(&seq, reply)| v1::CachedReply {
                    seq,
                    reply: Some(reply.clone()),
                })
                .collect(),
        }
    }

    /// From the wire form; `None` if the client id is not 16 bytes.
    pub fn from_proto(p: v1::ClientSession) -> Option<(u128, Session)> {
        let client = u128::from_be_bytes(p.client_id.as_slice().try_into().ok()?);
        let replies = p
            .replies
            .into_iter()
            .filter_map(|r| Some((r.seq, r.reply?)))
            .collect();
        Some((
            client,
            Session {
                first_incomplete: p.first_incomplete_seq,
                last_active_ms: p.last_active_ms,
                replies,
            },
        ))
    }

    /// Stored bytes.
    pub fn encode(&self, client: u128) -> Vec<u8> {
        self.to_proto(client).encode_to_vec()
    }

    /// Decodes stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<(u128, Session), String> {
        let p = v1::ClientSession::decode(bytes).map_err(|e| format!("session: {e}"))?;
        Session::from_proto(p).ok_or_else(|| "session with a malformed client id".to_string())
    }
}

/// The sessions of the shards a replica serves, with an index by last activity for expiry.
///
/// Invariant: `by_activity` holds exactly one `(last_active_ms, shard, client)` per session in
/// `sessions`, with the session's current `last_active_ms`.
#[derive(Debug, Default)]
pub struct SessionTable {
    sessions: HashMap<(u32, u128), Session>,
    by_activity: BTreeSet<(u64, u32, u128)>,
}

impl SessionTable {
    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// No sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The session of `client` in `shard`.
    pub fn get(&self, shard: u32, client: u128) -> Option<&Session> {
        self.sessions.get(&(shard, client))
    }

    /// Inserts or replaces a session.
    pub fn put(&mut self, shard: u32, client: u128, session: Session) {
        if let Some(old) = self.sessions.get(&(shard, client)) {
            self.by_activity
                .remove(&(old.last_active_ms, shard, client));
        }
        self.by_activity
            .insert((session.last_active_ms, shard, client));
        self.sessions.insert((shard, client), session);
    }

    /// Forgets every session of `shard` (it is handed over or deleted; the store keeps what
    /// must move).
    pub fn forget_shard(&mut self, shard: u32) {
        let doomed: Vec<(u32, u128)> = self
            .sessions
            .keys()
            .filter(|(s, _)| *s == shard)
            .copied()
            .collect();
        for key in doomed {
            if let Some(s) = self.sessions.remove(&key) {
                self.by_activity.remove(&(s.last_active_ms, key.0, key.1));
            }
        }
    }

    /// Removes and returns the sessions idle since before `cutoff_ms`, oldest first.
    pub fn expire(&mut self, cutoff_ms: u64) -> Vec<(u32, u128)> {
        let mut expired = Vec::new();
        while let Some(&(at, shard, client)) = self.by_activity.first() {
            if at >= cutoff_ms {
                break;
            }
            self.by_activity.pop_first();
            self.sessions.remove(&(shard, client));
            expired.push((shard, client));
        }
        expired
    }

    /// Sessions per shard (for status).
    pub fn iter(&self) -> impl Iterator<Item = (&(u32, u128), &Session)> {
        self.sessions.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(at: u64) -> Session {
        Session {
            first_incomplete: 1,
            last_active_ms: at,
            replies: BTreeMap::from([(
                1,
                v1::KvReply {
                    reply: Some(v1::kv_reply::Reply::Put(v1::PutResponse {})),
                },
            )]),
        }
    }

    #[test]
    fn expiry_follows_the_latest_activity() {
        let mut t = SessionTable::default();
        t.put(1, 10, session(100));
        t.put(2, 20, session(200));
        t.put(1, 10, session(300)); // touched again
        assert_eq!(t.expire(250), vec![(2, 20)]);
        assert_eq!(t.len(), 1);
        assert!(t.get(1, 10).is_some());
        t.put(3, 30, session(50));
        t.forget_shard(1);
        assert_eq!(t.expire(1000), vec![(3, 30)]);
        assert!(t.is_empty());
    }

    #[test]
    fn sessions_round_trip() {
        let s = session(7);
        let (client, back) = Session::decode(&s.encode(99)).unwrap();
        assert_eq!((client, back), (99, s));
        assert!(Session::decode(&[0x0a, 0x01, 0x00]).is_err());
    }
}
