//! The state machine's durable form: the metadata it keeps beside the data (applied index,
//! log time, configurations, shard states, shards taken back), loading it, and snapshots —
//! streamed out of the store, checked while they stream back in.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use prost::Message;
use strata::WriteBatch;
use strata_node::{RestoreError, SnapshotStream, TransferError};
use strata_paxos::Slot;
use strata_rpc::config::Config;
use strata_rpc::v1;

use super::KvMachine;
use crate::keys;
use crate::session::{Session, SessionTable};
use crate::shard_state::{decode_reclaims, decode_states, ShardState};
use crate::store::{MemStore, Store, StoreError};

fn decode_config(bytes: &[u8]) -> Result<Config, StoreError> {
    v1::Config::decode(bytes)
        .map(Config::from_proto)
        .map_err(|e| StoreError::Corrupt(format!("stored config: {e}")))
}

/// The metadata of a stored state machine.
struct Meta {
    applied: Slot,
    log_time: u64,
    config: Config,
    previous: Config,
    shards: Vec<ShardState>,
    reclaimed: BTreeSet<(u32, u64)>,
}

impl Meta {
    /// Reads and checks the metadata in `store`.
    fn read(store: &dyn Store) -> Result<Meta, StoreError> {
        let u64_at = |key: &[u8]| -> Result<Option<u64>, StoreError> {
            match store.get(key)? {
                None => Ok(None),
                Some(v) => Ok(Some(u64::from_le_bytes(v.as_slice().try_into().map_err(
                    |_| StoreError::Corrupt(format!("malformed metadata {key:?}")),
                )?))),
            }
        };
        let config_at = |key: &[u8]| -> Result<Config, StoreError> {
            store
                .get(key)?
                .map_or(Ok(Config::default()), |b| decode_config(&b))
        };
        let meta = Meta {
            applied: u64_at(keys::APPLIED)?.unwrap_or(1),
            log_time: u64_at(keys::LOG_TIME)?.unwrap_or(0),
            config: config_at(keys::CONFIG)?,
            previous: config_at(keys::PREVIOUS_CONFIG)?,
            shards: match store.get(keys::SHARD_STATES)? {
                Some(b) => decode_states(&b).map_err(StoreError::Corrupt)?,
                None => Vec::new(),
            },
            reclaimed: match store.get(keys::RECLAIMED)? {
                Some(b) => decode_reclaims(&b).map_err(StoreError::Corrupt)?,
                None => BTreeSet::new(),
            },
        };
        if meta.shards.len() != meta.config.shards.len() {
            return Err(StoreError::Corrupt(format!(
                "stored state has {} shard states for {} shards",
                meta.shards.len(),
                meta.config.shards.len()
            )));
        }
        Ok(meta)
    }
}

/// Adds the stored sessions of `shard` to `table`.
pub(super) fn load_sessions(
    store: &dyn Store,
    shard: u32,
    table: &mut SessionTable,
) -> Result<(), StoreError> {
    let (start, end) = keys::session_range(shard);
    for entry in store.scan(&start, &end) {
        let (key, bytes) = entry?;
        let (client, session) = session_entry(&key, &bytes)?;
        table.put(shard, client, session);
    }
    Ok(())
}

/// Decodes a stored session, checking that its key names its client.
fn session_entry(key: &[u8], value: &[u8]) -> Result<(u128, Session), StoreError> {
    let (client, session) = Session::decode(value)?;
    if keys::session_client(key) != Some(client) {
        return Err(StoreError::Corrupt(format!(
            "session key {key:?} does not name the session's client {client:x}"
        )));
    }
    Ok((client, session))
}

/// Checks a snapshot's entries while they stream into the store: keys must strictly ascend
/// (a snapshot is a scan of the store), the metadata (the first keys) must load and carry
/// `index`, and every session must decode; otherwise an `Err` entry makes the store keep its
/// old contents.
struct CheckedSnapshot<I> {
    entries: I,
    index: Slot,
    meta: MemStore,
    meta_checked: bool,
    /// The key of the last entry passed on.
    last_key: Option<Vec<u8>>,
    failed: bool,
}

impl<I: Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>>> CheckedSnapshot<I> {
    fn check_meta(&mut self) -> Result<(), StoreError> {
        self.meta_checked = true;
        let meta = Meta::read(&self.meta)
            .map_err(|e| StoreError::Corrupt(format!("snapshot metadata: {e}")))?;
        if meta.applied != self.index {
            return Err(StoreError::Corrupt(format!(
                "snapshot labelled {} holds the state after slot {}",
                self.index, meta.applied
            )));
        }
        Ok(())
    }

    fn check(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        // Without this, a metadata key arriving after the metadata was checked would reach
        // the store unchecked.
        if let Some(last) = self.last_key.as_deref().filter(|last| key <= *last) {
            return Err(StoreError::Corrupt(format!(
                "snapshot keys out of order: {key:?} after {last:?}"
            )));
        }
        let last = self.last_key.get_or_insert_with(Vec::new);
        last.clear();
        last.extend_from_slice(key);
        if key.first() == Some(&0) {
            let mut b = WriteBatch::new();
            b.put(key, value);
            return self.meta.write(b, false);
        }
        if !self.meta_checked {
            self.check_meta()?;
        }
        if keys::in_session_range(key) {
            session_entry(key, value)?;
        }
        Ok(())
    }
}

impl<I: Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>>> Iterator for CheckedSnapshot<I> {
    type Item = Result<(Vec<u8>, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = match self.entries.next() {
            Some(Ok((k, v))) => self.check(&k, &v).map(|()| (k, v)),
            Some(Err(e)) => Err(e),
            None if !self.meta_checked => match self.check_meta() {
                Ok(()) => return None,
                Err(e) => Err(e),
            },
            None => return None,
        };
        self.failed = item.is_err();
        Some(item)
    }
}

/// One chunk of a state-machine snapshot: engine entries.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotChunk {
    /// Keys and values of the store, in key order.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<v1::KeyValue>,
}

/// Bytes of entries per snapshot chunk.
const SNAPSHOT_CHUNK_BYTES: usize = 512 << 10;

impl<S: Store> KvMachine<S> {
    /// (Re)loads everything from the store; on error nothing changes.
    pub(super) fn load(&mut self) -> Result<(), StoreError> {
        let meta = Meta::read(self.store.as_ref())?;
        let mut sessions = SessionTable::default();
        for (s, state) in meta.shards.iter().enumerate() {
            if state.is_served() {
                load_sessions(self.store.as_ref(), s as u32, &mut sessions)?;
            }
        }
        self.log_time = meta.log_time;
        self.config = meta.config;
        self.previous = meta.previous;
        self.shards = meta.shards;
        self.reclaimed = meta.reclaimed;
        self.sessions = sessions;
        self.applied.store(meta.applied, Ordering::Release);
        self.durability.synced(meta.applied);
        self.publish();
        Ok(())
    }

    /// A point-in-time snapshot of the store, as chunks of [`SnapshotChunk`].
    pub(super) fn snapshot_stream(&self) -> (Slot, SnapshotStream) {
        let index = self.applied.load(Ordering::Acquire);
        let mut entries = self.store.scan(&[], &[0xff; 8]);
        let chunks = std::iter::from_fn(move || {
            let mut chunk = SnapshotChunk::default();
            let mut bytes = 0;
            for entry in entries.by_ref() {
                match entry {
                    Ok((key, value)) => {
                        bytes += key.len() + value.len();
                        chunk.entries.push(v1::KeyValue { key, value });
                        if bytes >= SNAPSHOT_CHUNK_BYTES {
                            break;
                        }
                    }
                    Err(e) => {
                        // A short snapshot must not install: end with a chunk that does not
                        // decode.
                        tracing::error!(error = %e, "reading the store for a snapshot failed");
                        return Some(vec![0xff]);
                    }
                }
            }
            (!chunk.entries.is_empty()).then(|| chunk.encode_to_vec())
        });
        (index, Box::new(chunks))
    }

    /// Replaces the store with a snapshot covering every slot below `index`, checked while it
    /// streams in; on error the old state stays.
    pub(super) fn restore_stream(
        &mut self,
        index: Slot,
        chunks: &mut dyn Iterator<Item = Result<Vec<u8>, TransferError>>,
    ) -> Result<(), RestoreError> {
        let entries = chunks.flat_map(|chunk| -> Box<dyn Iterator<Item = _>> {
            let chunk = chunk.map_err(StoreError::from).and_then(|c| {
                SnapshotChunk::decode(c.as_slice())
                    .map_err(|e| StoreError::Corrupt(format!("snapshot chunk: {e}")))
            });
            match chunk {
                Ok(c) => Box::new(c.entries.into_iter().map(|kv| Ok((kv.key, kv.value)))),
                Err(e) => Box::new(std::iter::once(Err(e))),
            }
        });
        let mut checked = CheckedSnapshot {
            entries,
            index,
            meta: MemStore::new(),
            meta_checked: false,
            last_key: None,
            failed: false,
        };
        self.store.replace(&mut checked).map_err(|e| match e {
            StoreError::Transfer(e) => RestoreError::Transfer(e),
            StoreError::Corrupt(why) => RestoreError::Invalid(why),
            e => RestoreError::Store(e.to_string()),
        })?;
        // Checked while streaming: loads (a failure here would be a bug; the machine stops
        // using the snapshot and says so).
        self.load()
            .map_err(|e| RestoreError::Invalid(format!("loading an installed snapshot: {e}")))
    }
}
