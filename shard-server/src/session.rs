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

use crate::store::StoreError;

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
    pub fn decode(bytes: &[u8]) -> Result<(u128, Session), StoreError> {
        let p = v1::ClientSession::decode(bytes)
            .map_err(|e| StoreError::Corrupt(format!("session: {e}")))?;
        Session::from_proto(p)
            .ok_or_else(|| StoreError::Corrupt("session with a malformed client id".into()))
    }
}

/// A mutation's session fields, checked: what a [`v1::RequestHeader`] says once it passed
/// [`ClientRequest::from_header`] — at the edge (the gRPC service answers `INVALID_ARGUMENT`)
/// and again when the command is applied (a log entry is not trusted to have passed the edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRequest {
    /// The client.
    pub client: u128,
    /// This request's sequence number (at least 1).
    pub seq: u64,
    /// Every seq below this completed at the client (at most `seq`).
    pub first_incomplete: u64,
    /// The client may start a session with this request.
    pub opens_session: bool,
}

impl ClientRequest {
    /// Checks a request's header: present, a 16-byte client id, `1 <= first_incomplete_seq`
    /// (when set) `<= seq`.
    pub fn from_header(header: Option<&v1::RequestHeader>) -> Result<ClientRequest, BadHeader> {
        let h = header.ok_or(BadHeader::Missing)?;
        let client = <[u8; 16]>::try_from(h.client_id.as_slice())
            .map(u128::from_be_bytes)
            .map_err(|_| BadHeader::ClientId(h.client_id.len()))?;
        if h.seq == 0 {
            return Err(BadHeader::ZeroSeq);
        }
        if h.first_incomplete_seq > h.seq {
            return Err(BadHeader::FirstIncompleteAboveSeq {
                first_incomplete: h.first_incomplete_seq,
                seq: h.seq,
            });
        }
        Ok(ClientRequest {
            client,
            seq: h.seq,
            first_incomplete: h.first_incomplete_seq,
            opens_session: h.opens_session,
        })
    }
}

/// Why a request's header is refused (`INVALID_ARGUMENT`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadHeader {
    /// The request has no header.
    #[error("the request has no header")]
    Missing,
    /// The client id is not 16 bytes.
    #[error("client_id must be 16 bytes, got {0}")]
    ClientId(usize),
    /// Seq 0.
    #[error("seq must be at least 1")]
    ZeroSeq,
    /// The client says a later request than this one is incomplete.
    #[error("first_incomplete_seq {first_incomplete} is above the request's own seq {seq}")]
    FirstIncompleteAboveSeq {
        /// What the client says.
        first_incomplete: u64,
        /// This request's seq.
        seq: u64,
    },
}

/// What the session table decides for a mutation (see [`SessionTable::admit`]).
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Applied before: answer with the reply kept, and store the session (its activity
    /// refreshed) again.
    Replay(v1::KvReply, Session),
    /// Execute it, then keep its reply in this session (already trimmed to the replies the
    /// client still awaits).
    Execute(Session),
    /// Refuse it.
    Refuse(Refused),
}

/// Why the session table refuses a mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The shard has no session for the client and the request may not open one: the outcome
    /// of an earlier execution of it is unknown.
    Expired,
    /// The client acknowledged this seq already (it completed).
    Completed {
        /// The session's first incomplete seq.
        first_incomplete: u64,
    },
    /// The session holds this many unacknowledged replies, the most allowed.
    TooManyPending(usize),
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

    /// Decides what to do with `request` in `shard` at log time `now_ms`, allowing at most
    /// `max_pending` unacknowledged replies per session. Deterministic (a replica's log
    /// decides it alike everywhere); changes nothing — the caller stores the session it is
    /// handed.
    pub fn admit(
        &self,
        shard: u32,
        request: &ClientRequest,
        now_ms: u64,
        max_pending: usize,
    ) -> Decision {
        let mut session = match self.get(shard, request.client) {
            Some(s) => s.clone(),
            None if request.opens_session => Session::default(),
            None => return Decision::Refuse(Refused::Expired),
        };
        if request.seq < session.first_incomplete {
            return Decision::Refuse(Refused::Completed {
                first_incomplete: session.first_incomplete,
            });
        }
        session.last_active_ms = now_ms;
        if let Some(reply) = session.replies.get(&request.seq) {
            return Decision::Replay(reply.clone(), session);
        }
        if request.first_incomplete > session.first_incomplete {
            session.first_incomplete = request.first_incomplete;
            session.replies = session.replies.split_off(&request.first_incomplete);
        }
        if session.replies.len() >= max_pending {
            return Decision::Refuse(Refused::TooManyPending(session.replies.len()));
        }
        Decision::Execute(session)
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
    fn a_header_is_checked_once_into_a_client_request() {
        let header = |id: usize, seq, first| v1::RequestHeader {
            client_id: vec![9; id],
            seq,
            first_incomplete_seq: first,
            opens_session: true,
            ..Default::default()
        };
        let ok = ClientRequest::from_header(Some(&header(16, 5, 3))).unwrap();
        assert_eq!(
            ok,
            ClientRequest {
                client: u128::from_be_bytes([9; 16]),
                seq: 5,
                first_incomplete: 3,
                opens_session: true,
            }
        );
        for (bad, why) in [
            (None, "no header"),
            (Some(header(15, 5, 3)), "16 bytes, got 15"),
            (Some(header(16, 0, 0)), "at least 1"),
            (Some(header(16, 5, 6)), "above the request's own seq"),
        ] {
            let e = ClientRequest::from_header(bad.as_ref())
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn the_table_replays_executes_or_refuses() {
        let mut t = SessionTable::default();
        let req = |seq, first, opens| ClientRequest {
            client: 7,
            seq,
            first_incomplete: first,
            opens_session: opens,
        };
        // No session: only a request that may open one executes.
        assert_eq!(
            t.admit(0, &req(1, 1, false), 10, 8),
            Decision::Refuse(Refused::Expired)
        );
        let Decision::Execute(fresh) = t.admit(0, &req(1, 1, true), 10, 8) else {
            panic!("a new session executes");
        };
        assert_eq!(fresh.last_active_ms, 10);
        t.put(0, 7, session(10));
        // Seq 1's reply is kept: a retry replays it, refreshing the session's activity.
        match t.admit(0, &req(1, 1, false), 20, 8) {
            Decision::Replay(reply, s) => {
                assert_eq!(Some(&reply), session(0).replies.get(&1));
                assert_eq!(s.last_active_ms, 20);
            }
            d => panic!("{d:?}"),
        }
        // Seq 2 acknowledging seq 1: executes with seq 1's reply dropped.
        match t.admit(0, &req(2, 2, false), 20, 8) {
            Decision::Execute(s) => {
                assert_eq!(s.first_incomplete, 2);
                assert!(s.replies.is_empty());
            }
            d => panic!("{d:?}"),
        }
        // The same session in another shard is another session.
        assert_eq!(
            t.admit(1, &req(2, 2, false), 20, 8),
            Decision::Refuse(Refused::Expired)
        );
        // Too many replies kept.
        assert_eq!(
            t.admit(0, &req(2, 1, false), 20, 1),
            Decision::Refuse(Refused::TooManyPending(1))
        );
        // Acknowledged already.
        let mut acked = session(10);
        acked.first_incomplete = 5;
        t.put(0, 7, acked);
        assert_eq!(
            t.admit(0, &req(4, 4, true), 20, 8),
            Decision::Refuse(Refused::Completed {
                first_incomplete: 5
            })
        );
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
