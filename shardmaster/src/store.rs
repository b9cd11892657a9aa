//! The master's state on disk, so that its Paxos log can be compacted.
//!
//! The state is kept in its own `strata` engine in the snapshot's chunk format, one key per
//! chunk, updated with every applied command in one atomic write batch together with the
//! applied index:
//!
//! ```text
//! "c/" ++ num (u64 BE)      config chunk
//! "s/" ++ client (u128 BE)  sessions chunk holding that one client
//! "meta/applied"            u64 LE: every slot below is reflected here
//! ```
//! Loading streams the chunks (header first) through the snapshot restorer, which validates
//! them and keeps only the latest configurations in memory: the store is the archive
//! ([`ConfigArchive`]) the state reads older ones back from. Every `SYNC_EVERY` commands a write is synced; the applied index of the last synced
//! write is what the node may compact the Paxos log below (`durable_index`).

use std::path::Path;

use strata::{Db, Options, WriteBatch, WriteOptions};
use strata_paxos::Slot;

use crate::codec::decode_config_chunk;
use crate::config::Config;
use crate::snapshot::{config_chunk, header_chunk, sessions_chunk};
use crate::state::{ConfigArchive, MasterState};

const APPLIED: &[u8] = b"meta/applied";

fn config_key(num: u64) -> Vec<u8> {
    let mut k = b"c/".to_vec();
    k.extend_from_slice(&num.to_be_bytes());
    k
}

fn session_key(client: u128) -> Vec<u8> {
    let mut k = b"s/".to_vec();
    k.extend_from_slice(&client.to_be_bytes());
    k
}

/// The master's state in its own engine.
#[derive(Debug)]
pub struct MasterStore {
    db: Db,
}

impl MasterStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<MasterStore, String> {
        let db = Db::open(
            dir,
            Options {
                write_buffer_size: 4 << 20,
                ..Options::create()
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(MasterStore { db })
    }

    /// The stored state (with only its latest configurations in memory: attach this store
    /// as its archive) and its applied index, or `None` for an empty store.
    pub fn load(&self) -> Result<Option<(MasterState, Slot)>, String> {
        let Some(applied) = self.db.get(APPLIED).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let applied = u64::from_le_bytes(
            applied
                .try_into()
                .map_err(|_| "malformed applied index".to_string())?,
        );
        // Configurations stream from the store (a long history never sits in memory); a
        // first pass counts them for the header.
        let configs = || self.db.scan(b"c/".to_vec()..b"c0".to_vec());
        let mut count = 0;
        for kv in configs() {
            kv.map_err(|e| e.to_string())?;
            count += 1;
        }
        let sessions: Vec<Vec<u8>> = self
            .db
            .scan(b"s/".to_vec()..b"s0".to_vec())
            .map(|kv| kv.map(|(_, v)| v))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let first = self
            .db
            .get(config_key(0))
            .map_err(|e| e.to_string())?
            .ok_or("store without config 0")?;
        let num_shards = crate::codec::decode_config_chunk_shards(&first)?;
        let header = header_chunk(num_shards, count, sessions.len());
        let mut failed = None;
        let stored =
            configs().map_while(|kv| kv.map(|(_, v)| v).map_err(|e| failed = Some(e)).ok());
        let chunks = std::iter::once(header).chain(stored).chain(sessions);
        let state = MasterState::restore_latest(chunks);
        if let Some(e) = failed {
            return Err(format!("reading the stored master state: {e}"));
        }
        let state = state.map_err(|e| format!("stored master state: {e}"))?;
        Ok(Some((state, applied)))
    }

    /// Records what applying one command at `slot` changed: the config it created (if any)
    /// and the client's session, with the new applied index, in one batch.
    pub fn record(
        &self,
        state: &MasterState,
        created: Option<u64>,
        client: Option<u128>,
        slot: Slot,
        sync: bool,
    ) -> Result<(), String> {
        let mut b = WriteBatch::new();
        if let Some(num) = created {
            if let Some(c) = state.config(num) {
                b.put(config_key(num), config_chunk(&c));
            }
        }
        if let Some(client) = client {
            if let Some(s) = state.sessions().get(&client) {
                b.put(session_key(client), sessions_chunk([(&client, s)]));
            }
        }
        b.put(APPLIED, (slot + 1).to_le_bytes());
        self.db
            .write_opt(b, &WriteOptions { sync })
            .map_err(|e| e.to_string())
    }

    /// Replaces the whole stored state (after a snapshot install, or on first start), synced.
    pub fn replace(&self, state: &MasterState, applied: Slot) -> Result<(), String> {
        let mut b = WriteBatch::new();
        b.delete_range(b"c/", b"c0");
        b.delete_range(b"s/", b"s0");
        for num in 0..state.num_configs() {
            let c = state
                .config(num)
                .ok_or_else(|| format!("configuration {num} could not be read"))?;
            b.put(config_key(num), config_chunk(&c));
        }
        for (client, s) in state.sessions() {
            b.put(session_key(*client), sessions_chunk([(client, s)]));
        }
        b.put(APPLIED, applied.to_le_bytes());
        self.db
            .write_opt(b, &WriteOptions { sync: true })
            .map_err(|e| e.to_string())
    }
}

impl ConfigArchive for MasterStore {
    fn load(&self, num: u64) -> Result<Option<Config>, String> {
        match self.db.get(config_key(num)).map_err(|e| e.to_string())? {
            Some(chunk) => decode_config_chunk(&chunk).map(Some),
            None => Ok(None),
        }
    }
}
