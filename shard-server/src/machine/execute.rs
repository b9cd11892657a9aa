//! Client mutations: the session table decides whether a request is replayed, executed or
//! refused; executing one turns it into writes of the command's batch and a reply.

use strata::WriteBatch;
use strata_rpc::v1::{self, kv_reply::Reply, ErrorReason};
use strata_rpc::{shard_for_key, MAX_KEY_BYTES, MAX_VALUE_BYTES};

use super::{check_serving, refusal, KvMachine};
use crate::command::{Outcome, Refusal};
use crate::keys;
use crate::session::{ClientRequest, Decision, Refused};
use crate::store::{Store, StoreError};

impl<S: Store> KvMachine<S> {
    pub(super) fn expire_sessions(&mut self, batch: &mut WriteBatch) {
        let cutoff = self
            .log_time
            .saturating_sub(self.options.session_timeout_ms);
        for (shard, client) in self.sessions.expire(cutoff) {
            batch.delete(keys::session_key(shard, client));
        }
    }

    /// Applies a client mutation of `key`: refused unless its shard is served here, then as
    /// the session table decides (replayed, executed once, or refused).
    pub(super) fn mutate(
        &mut self,
        batch: &mut WriteBatch,
        header: Option<&v1::RequestHeader>,
        key: Vec<u8>,
        op: Mutation,
    ) -> (Outcome, bool) {
        let refused = |r: Refusal| (Outcome::Refused(r), false);
        let num = self.config.num;
        let n = self.config.shards.len() as u32;
        let shard = if n == 0 { 0 } else { shard_for_key(&key, n) };
        if let Err(r) = check_serving(self.gid, &self.config, &self.shards, shard) {
            return refused(r);
        }
        let request = match ClientRequest::from_header(header) {
            Ok(r) => r,
            Err(e) => {
                let message = e.to_string();
                return refused(refusal(ErrorReason::InvalidArgument, num, shard, message));
            }
        };
        let (client, seq) = (request.client, request.seq);
        let decision = self.sessions.admit(
            shard,
            &request,
            self.log_time,
            self.options.max_pending_replies,
        );
        let mut session = match decision {
            Decision::Execute(session) => session,
            Decision::Replay(reply, session) => {
                batch.put(keys::session_key(shard, client), session.encode(client));
                self.sessions.put(shard, client, session);
                return (Outcome::Kv(reply), false);
            }
            Decision::Refuse(why) => {
                let (reason, message) = match why {
                    Refused::Expired => (
                        ErrorReason::SessionExpired,
                        format!(
                            "shard {shard} has no session for this client (expired after {} ms idle?): the outcome of request {seq} is unknown",
                            self.options.session_timeout_ms
                        ),
                    ),
                    Refused::Completed { first_incomplete } => (
                        ErrorReason::InvalidArgument,
                        format!(
                            "request {seq} was already completed (the client acknowledged every seq below {first_incomplete})"
                        ),
                    ),
                    Refused::TooManyPending(n) => (
                        ErrorReason::Overloaded,
                        format!("the client has {n} unacknowledged requests on shard {shard}"),
                    ),
                };
                return refused(refusal(reason, num, shard, message));
            }
        };
        let reply = match self.execute(batch, shard, &key, op) {
            Ok(reply) => reply,
            Err(ExecError::Invalid(message)) => {
                // Decided by the command and the state alone, so every replica refuses it
                // alike and the log moves on: a chosen command never stops a replica.
                return refused(refusal(ErrorReason::InvalidArgument, num, shard, message));
            }
            Err(ExecError::Store(e)) => {
                // Reading the store failed: every replica would fail alike only if its store
                // is damaged alike; this replica must not diverge silently.
                tracing::error!(error = %e, "reading the store failed while applying; stopping");
                std::process::abort();
            }
        };
        let reply = v1::KvReply { reply: Some(reply) };
        session.replies.insert(seq, reply_to_keep(&reply));
        batch.put(keys::session_key(shard, client), session.encode(client));
        self.sessions.put(shard, client, session);
        (Outcome::Kv(reply), false)
    }

    fn execute(
        &self,
        batch: &mut WriteBatch,
        shard: u32,
        key: &[u8],
        op: Mutation,
    ) -> Result<Reply, ExecError> {
        let data_key = keys::data_key(shard, key);
        if data_key.len() > strata::MAX_KEY_SIZE {
            return Err(ExecError::Invalid(format!(
                "key of {} bytes exceeds MAX_KEY_BYTES ({MAX_KEY_BYTES} bytes)",
                key.len()
            )));
        }
        let check_value = |len: usize, what: &str| {
            if len > MAX_VALUE_BYTES {
                return Err(ExecError::Invalid(format!(
                    "{what} of {len} bytes exceeds MAX_VALUE_BYTES ({MAX_VALUE_BYTES} bytes)"
                )));
            }
            Ok(())
        };
        let get = |k: &[u8]| self.store.get(k).map_err(ExecError::Store);
        Ok(match op {
            Mutation::Put(value) => {
                check_value(value.len(), "value")?;
                batch.put(&data_key, value);
                Reply::Put(v1::PutResponse {})
            }
            Mutation::Append(value) => {
                let mut current = get(&data_key)?.unwrap_or_default();
                check_value(current.len() + value.len(), "the appended value")?;
                current.extend_from_slice(&value);
                batch.put(&data_key, current);
                Reply::Append(v1::AppendResponse {})
            }
            Mutation::Delete => {
                let existed = get(&data_key)?.is_some();
                if existed {
                    batch.delete(&data_key);
                }
                Reply::Delete(v1::DeleteResponse { existed })
            }
            Mutation::CompareAndSwap {
                expected,
                new_value,
            } => {
                if let Some(v) = &new_value {
                    check_value(v.len(), "new value")?;
                }
                let current = get(&data_key)?;
                if current == expected {
                    match new_value {
                        Some(v) => batch.put(&data_key, v),
                        None => batch.delete(&data_key),
                    };
                    Reply::CompareAndSwap(v1::CompareAndSwapResponse {
                        swapped: true,
                        current: None,
                        current_omitted: false,
                    })
                } else {
                    Reply::CompareAndSwap(v1::CompareAndSwapResponse {
                        swapped: false,
                        current,
                        current_omitted: false,
                    })
                }
            }
        })
    }
}

/// Why a mutation was not executed.
enum ExecError {
    /// The command cannot be applied (a limit): every replica decides the same, the client is
    /// told `INVALID_ARGUMENT`.
    Invalid(String),
    /// Reading this replica's store failed.
    Store(StoreError),
}

/// Largest `current` value of a failed CompareAndSwap kept in a session's dedup table: a
/// session is one stored record, so it must not hold whole large values (a retry of such a
/// CAS is answered with `current_omitted`).
const KEPT_CAS_CURRENT_BYTES: usize = 4 << 10;

/// The reply a session keeps for retries: the reply itself, except that a failed
/// CompareAndSwap's large `current` value is dropped (flagged `current_omitted`).
fn reply_to_keep(reply: &v1::KvReply) -> v1::KvReply {
    match &reply.reply {
        Some(Reply::CompareAndSwap(c))
            if c.current
                .as_ref()
                .is_some_and(|v| v.len() > KEPT_CAS_CURRENT_BYTES) =>
        {
            v1::KvReply {
                reply: Some(Reply::CompareAndSwap(v1::CompareAndSwapResponse {
                    swapped: c.swapped,
                    current: None,
                    current_omitted: true,
                })),
            }
        }
        _ => reply.clone(),
    }
}

/// A client mutation's operation.
pub(super) enum Mutation {
    Put(Vec<u8>),
    Append(Vec<u8>),
    Delete,
    CompareAndSwap {
        expected: Option<Vec<u8>>,
        new_value: Option<Vec<u8>>,
    },
}
