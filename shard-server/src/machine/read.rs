//! What the RPC handlers read of a replica's state: one key, one page of a shard, the reply a
//! shard's dedup table keeps for a request. Each checks that the shard is served here and
//! reads the store under the view's read lock, so the shard cannot be handed over and deleted
//! between the check and the read. (Linearizability is the caller's part: it passes the
//! node's read barrier first.)

use std::sync::Arc;

use parking_lot::RwLock;
use strata_rpc::v1::{self, kv_reply::Reply, ErrorReason};

use super::{refusal, View};
use crate::command::Refusal;
use crate::keys;
use crate::session::Session;
use crate::store::{Store, StoreError};

/// Why a read was not served.
#[derive(Debug)]
pub enum ReadError {
    /// Not served here (wrong group, installing) or not a valid request: the client is told.
    Refused(Refusal),
    /// Reading this replica's store failed.
    Store(StoreError),
}

/// One page of a shard's keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// Keys (as clients wrote them) and values, in key order.
    pub entries: Vec<v1::KeyValue>,
    /// More entries follow the last one.
    pub more: bool,
}

/// Reads a replica's state machine. Cheap to clone.
#[derive(Clone)]
pub struct Reader {
    view: Arc<RwLock<View>>,
    store: Arc<dyn Store>,
}

impl Reader {
    /// A reader of the state behind `view` and `store` (a [`super::KvMachine`]'s).
    pub fn new(view: Arc<RwLock<View>>, store: Arc<dyn Store>) -> Reader {
        Reader { view, store }
    }

    /// The value of `key`, if its shard is served here.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        let view = self.view.read();
        let shard = view.shard_of(key).unwrap_or(0);
        view.check_serving(shard).map_err(ReadError::Refused)?;
        self.store
            .get(&keys::data_key(shard, key))
            .map_err(ReadError::Store)
    }

    /// The entries of `shard` from `from` (inclusive) to `end` (exclusive; `None`: the shard's
    /// end): at most `limit` of them, and no more than `max_bytes` of keys and values beyond
    /// the first.
    pub fn scan(
        &self,
        shard: u32,
        from: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page, ReadError> {
        let view = self.view.read();
        let n = view.config.shards.len();
        if n > 0 && shard as usize >= n {
            return Err(ReadError::Refused(refusal(
                ErrorReason::InvalidArgument,
                view.config.num,
                shard,
                format!("shard {shard} is out of range: the cluster has {n} shards"),
            )));
        }
        view.check_serving(shard).map_err(ReadError::Refused)?;
        let start = keys::data_key(shard, from);
        let end = match end {
            Some(end) => keys::data_key(shard, end),
            None => keys::data_range(shard).1,
        };
        let mut page = Page::default();
        let mut bytes = 0;
        for entry in self.store.scan(&start, &end) {
            let (k, value) = entry.map_err(ReadError::Store)?;
            if page.entries.len() >= limit
                || (!page.entries.is_empty() && bytes + k.len() + value.len() > max_bytes)
            {
                page.more = true;
                break;
            }
            let Some(key) = keys::user_key(shard, &k) else {
                continue;
            };
            bytes += k.len() + value.len();
            page.entries.push(v1::KeyValue {
                key: key.to_vec(),
                value,
            });
        }
        Ok(page)
    }

    /// Whether a mutation of `key` would be served here — `Ok(Some(reply))` if the request
    /// (`client`, `seq`) was applied already and its shard's dedup table keeps the reply,
    /// `Ok(None)` if it is still to be proposed — or the refusal it would get.
    pub fn admits(&self, key: &[u8], client: u128, seq: u64) -> Result<Option<Reply>, Refusal> {
        let view = self.view.read();
        let Some(shard) = view.shard_of(key) else {
            return Ok(None);
        };
        view.check_serving(shard)?;
        let kept = (self.store.get(&keys::session_key(shard, client)).ok())
            .flatten()
            .and_then(|stored| Session::decode(&stored).ok())
            .and_then(|(_, session)| session.replies.get(&seq)?.reply.clone());
        Ok(kept)
    }
}
