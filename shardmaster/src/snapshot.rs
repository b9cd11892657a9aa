//! Snapshots of a [`MasterState`] as a stream of chunks, and restoring from such a stream.
//!
//! ```text
//! chunk    = Header | Config | Sessions                  (Config and Outcome: see codec)
//! Header   = 0x01 "SMS1" v(version = 1) v(num_shards) v(configs) v(sessions)
//! Config   = 0x02 Config                                 one chunk per config, 0 first
//! Sessions = 0x03 v(count) { client(16 bytes LE) v(seq) Outcome }
//!                                                        up to 1024 per chunk, clients ascending
//! ```
//!
//! A stream is one Header, then every Config in order, then the Sessions chunks. Chunks are
//! produced lazily ([`SnapshotChunks`]) and consumed one by one ([`SnapshotRestore`]), so
//! neither side holds the whole encoded snapshot. A chunk stays small: a config of 65,536
//! shards is at most a few hundred KiB plus its groups' addresses. The restorer checks the
//! structure and the state's invariants (numbering, shard count, owners are groups of their
//! config, replies refer to existing configs) and refuses a stream that is incomplete.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::codec::DecodeError;
use crate::codec::{decode_outcome, encode_outcome, read_config, write_config, Reader, Writer};
use crate::config::{Config, UNASSIGNED};
use crate::state::{MasterState, Outcome, Session, CONFIGS_IN_MEMORY};

const MAGIC: &[u8; 4] = b"SMS1";
const VERSION: u64 = 1;
const TAG_HEADER: u8 = 0x01;
const TAG_CONFIG: u8 = 0x02;
const TAG_SESSIONS: u8 = 0x03;
/// Sessions per Sessions chunk.
const SESSIONS_PER_CHUNK: usize = 1024;

/// The header chunk of a snapshot with these counts.
pub(crate) fn header_chunk(num_shards: usize, configs: usize, sessions: usize) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(TAG_HEADER);
    w.buf.extend_from_slice(MAGIC);
    w.varint(VERSION);
    w.len(num_shards);
    w.len(configs);
    w.len(sessions);
    w.buf
}

/// The chunk of one config.
pub(crate) fn config_chunk(config: &Config) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(TAG_CONFIG);
    write_config(&mut w, config);
    w.buf
}

/// A sessions chunk (clients must be ascending).
pub(crate) fn sessions_chunk<'a>(
    sessions: impl IntoIterator<Item = (&'a u128, &'a Session)>,
) -> Vec<u8> {
    let batch: Vec<_> = sessions.into_iter().collect();
    let mut w = Writer::default();
    w.u8(TAG_SESSIONS);
    w.len(batch.len());
    for (&client, session) in batch {
        w.u128(client);
        w.varint(session.seq);
        encode_outcome(&mut w, &session.outcome);
    }
    w.buf
}

/// The chunks of a snapshot of a [`MasterState`], encoded one at a time as the iterator is
/// advanced (see [`MasterState::snapshot_chunks`]). It owns a copy of the state (the
/// configurations in memory and the sessions; paged-out configurations are read back from
/// the archive one at a time), so it may be consumed while the state moves on.
#[derive(Debug)]
pub struct SnapshotChunks {
    state: MasterState,
    header_sent: bool,
    next_config: u64,
    /// The last client whose session was sent.
    sessions_after: Option<u128>,
}

impl Iterator for SnapshotChunks {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if !self.header_sent {
            self.header_sent = true;
            return Some(header_chunk(
                self.state.num_shards(),
                self.state.num_configs() as usize,
                self.state.sessions().len(),
            ));
        }
        if self.next_config < self.state.num_configs() {
            let num = self.next_config;
            self.next_config += 1;
            return Some(match self.state.config(num) {
                Some(config) => config_chunk(&config),
                // Unreadable (logged): a chunk that fails to decode, so that the receiver
                // refuses this snapshot instead of installing a short one.
                None => vec![TAG_CONFIG],
            });
        }
        let from = match self.sessions_after {
            Some(c) => Bound::Excluded(c),
            None => Bound::Unbounded,
        };
        let batch: Vec<_> = (self.state.sessions().range((from, Bound::Unbounded)))
            .take(SESSIONS_PER_CHUNK)
            .collect();
        self.sessions_after = Some(*batch.last()?.0);
        Some(sessions_chunk(batch))
    }
}

impl MasterState {
    /// A snapshot of the state as a lazy stream of chunks (one header, one chunk per config,
    /// then the sessions in batches); [`MasterState::restore`] rebuilds the state from them.
    pub fn snapshot_chunks(&self) -> SnapshotChunks {
        SnapshotChunks {
            state: self.clone(),
            header_sent: false,
            next_config: 0,
            sessions_after: None,
        }
    }

    /// Rebuilds a state from the chunks of [`MasterState::snapshot_chunks`], in order, with
    /// every configuration in memory.
    pub fn restore<I>(chunks: I) -> Result<MasterState, DecodeError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut restore = SnapshotRestore::new();
        for chunk in chunks {
            restore.push(chunk.as_ref())?;
        }
        restore.finish()
    }

    /// [`MasterState::restore`] keeping only the latest [`CONFIGS_IN_MEMORY`] configurations
    /// (for chunks read from an archive that holds them all: attach it with
    /// [`MasterState::page_out_to`]).
    pub(crate) fn restore_latest<I>(chunks: I) -> Result<MasterState, DecodeError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut restore = SnapshotRestore {
            keep: Some(CONFIGS_IN_MEMORY),
            ..SnapshotRestore::new()
        };
        for chunk in chunks {
            restore.push(chunk.as_ref())?;
        }
        restore.finish()
    }
}

struct Header {
    num_shards: usize,
    configs: u64,
    sessions: u64,
}

/// Rebuilds a [`MasterState`] from snapshot chunks pushed one at a time.
#[derive(Default)]
pub struct SnapshotRestore {
    header: Option<Header>,
    /// The configurations kept, the latest last: `configs[i]` is config `first + i`.
    configs: Vec<Config>,
    first: u64,
    /// Keep only about this many configurations (`None`: all).
    keep: Option<usize>,
    sessions: BTreeMap<u128, Session>,
}

impl std::fmt::Debug for SnapshotRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotRestore")
            .field("configs", &self.count())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl SnapshotRestore {
    /// A restore that expects the header chunk first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Configurations pushed so far.
    fn count(&self) -> u64 {
        self.first + self.configs.len() as u64
    }

    /// Consumes the next chunk. After an error the restore is unusable (start again).
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader::new(chunk);
        let tag = r.u8()?;
        match (tag, &self.header) {
            (TAG_HEADER, None) => self.header = Some(read_header(&mut r)?),
            (TAG_HEADER, Some(_)) => return Err(DecodeError::Invalid("second header")),
            (TAG_CONFIG | TAG_SESSIONS, None) => {
                return Err(DecodeError::Invalid("chunk before the header"))
            }
            (TAG_CONFIG, Some(header)) => {
                let mut config = read_config(&mut r)?;
                check_config(header, self.count(), &self.sessions, &config)?;
                // Share the group map with the previous configuration when it is the same, as
                // the live state does (a restored history costs what the original did).
                if let Some(previous) = self.configs.last() {
                    if previous.groups == config.groups {
                        config.groups = previous.groups.clone();
                    }
                }
                self.configs.push(config);
                if let Some(keep) = self.keep {
                    if self.configs.len() >= 2 * keep {
                        let drop = self.configs.len() - keep;
                        self.configs.drain(..drop);
                        self.first += drop as u64;
                    }
                }
            }
            (TAG_SESSIONS, Some(header)) => {
                if self.count() != header.configs {
                    return Err(DecodeError::Invalid("sessions before the last config"));
                }
                let n = r.count(18)?;
                for _ in 0..n {
                    let client = r.u128()?;
                    let seq = r.varint()?;
                    let outcome = decode_outcome(&mut r)?;
                    check_outcome(&outcome, self.count())?;
                    if self
                        .sessions
                        .last_key_value()
                        .is_some_and(|(&c, _)| c >= client)
                    {
                        return Err(DecodeError::Invalid("client ids not strictly ascending"));
                    }
                    if self.sessions.len() as u64 >= header.sessions {
                        return Err(DecodeError::Invalid("more sessions than announced"));
                    }
                    self.sessions.insert(client, Session { seq, outcome });
                }
            }
            (tag, _) => return Err(DecodeError::UnknownTag { what: "chunk", tag }),
        }
        r.finish()
    }

    /// The restored state, once every announced chunk has been pushed.
    pub fn finish(self) -> Result<MasterState, DecodeError> {
        let count = self.count();
        let header = self.header.ok_or(DecodeError::Truncated)?;
        if count != header.configs || self.sessions.len() as u64 != header.sessions {
            return Err(DecodeError::Truncated);
        }
        Ok(MasterState::from_parts(
            self.configs,
            self.first,
            self.sessions,
        ))
    }
}

fn read_header(r: &mut Reader<'_>) -> Result<Header, DecodeError> {
    if r.bytes(MAGIC.len())? != MAGIC {
        return Err(DecodeError::Invalid("bad snapshot magic"));
    }
    if r.varint()? != VERSION {
        return Err(DecodeError::Invalid("unsupported snapshot version"));
    }
    let num_shards = usize::try_from(r.varint()?).unwrap_or(usize::MAX);
    crate::config::validate_num_shards(num_shards)
        .map_err(|_| DecodeError::Invalid("shard count"))?;
    let configs = r.varint()?;
    if configs == 0 {
        return Err(DecodeError::Invalid("snapshot without config 0"));
    }
    Ok(Header {
        num_shards,
        configs,
        sessions: r.varint()?,
    })
}

/// Checks config number `count` (the configs before it were checked).
fn check_config(
    header: &Header,
    count: u64,
    sessions: &BTreeMap<u128, Session>,
    config: &Config,
) -> Result<(), DecodeError> {
    if !sessions.is_empty() {
        return Err(DecodeError::Invalid("config after sessions"));
    }
    if count >= header.configs {
        return Err(DecodeError::Invalid("more configs than announced"));
    }
    if config.num != count {
        return Err(DecodeError::Invalid(
            "configs not numbered consecutively from 0",
        ));
    }
    if config.num_shards() != header.num_shards {
        return Err(DecodeError::Invalid("config with another shard count"));
    }
    if config.num == 0
        && (!config.groups.is_empty() || config.shards.iter().any(|&g| g != UNASSIGNED))
    {
        return Err(DecodeError::Invalid("config 0 is not the initial config"));
    }
    Ok(())
}

fn check_outcome(outcome: &Outcome, configs: u64) -> Result<(), DecodeError> {
    let valid = match *outcome {
        Outcome::Created(num) => num >= 1 && num < configs,
        Outcome::Queried(num) => num < configs,
        Outcome::Refused(_) => true,
    };
    if valid {
        Ok(())
    } else {
        Err(DecodeError::Invalid("reply refers to a missing config"))
    }
}
