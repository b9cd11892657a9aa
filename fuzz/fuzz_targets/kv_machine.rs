//! The shard server's state machine (`strata_server::KvMachine` over a `MemStore`) under
//! arbitrary log entries. The input is a header (group id, shard count, options) then a
//! sequence of steps:
//!
//! - **garbage**: raw bytes as a log entry (an undecodable one must be refused and change
//!   nothing but the applied index);
//! - **client mutations** (Put, Append, Delete, CompareAndSwap) on small keys, from clients
//!   with well-formed or malformed ids, arbitrary seqs, `first_incomplete_seq` and
//!   `opens_session`, with a log time that jumps forward (sessions expire) or back;
//! - **reconfiguration steps**: `Reconfigure` (usually the next number, shard lists of the
//!   right or a wrong length, gids 0 / ours / others), `Install` (chunks that continue the
//!   machine's install progress or not, of the pulled shard or another, entries with
//!   `continues` set, keys of other shards, sessions with arbitrary ids and replies,
//!   arbitrary resume tokens), `DeleteShard`, `Notified`, and a command without a kind;
//! - **restart** of the twin (below), a **snapshot** round trip into a fresh store, a restore
//!   from a damaged snapshot (broken off: refused with the old state kept; or with corrupted
//!   chunk bytes: no panic), and `handoff::read_chunk` with arbitrary tokens and budgets.
//!
//! Two machines apply every entry: `a` runs from the start; its twin `b` (own store) is
//! reopened from its store or rebuilt from `a`'s snapshot now and then. Checked after every
//! entry: no panic; both give the same reply and hold the same store (nothing the machine
//! keeps in memory is missing from the store); the reply decodes; and every key that changed
//! is metadata (first byte 0x00), or in the range of the shard the command named
//! (`keys::shard_range`; for client operations the key's shard, for `Install` also its
//! `keys::piece_range`), or — for `Reconfigure` — a deletion in any shard, or the deletion of
//! an expired session. Also: install pieces exist only for a shard being pulled, as many as
//! its state counts; an absent shard holds no keys; every key held in a shard's range
//! belongs to that shard.
//!
//! `KV_FUZZ_TRACE=1` prints every entry applied.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use strata_rpc::config::Config;
use strata_fuzz::Cursor;
use strata_node::StateMachine;
use strata_rpc::shard_for_key;
use strata_rpc::v1::{self, kv_reply::Reply};
use strata_server::command::{Command, InstallChunk, Kind, Outcome, ShardRef};
use strata_server::handoff::read_chunk;
use strata_server::keys;
use strata_server::session::Session;
use strata_server::shard_state::ShardState;
use strata_server::{KvMachine, MachineOptions, MemStore};


/// `KV_FUZZ_TRACE=1` prints every applied entry, its outcome and the shard states (to read a
/// reproducer).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var("KV_FUZZ_TRACE").is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// Keeps one input's work small.
const MAX_STEPS: usize = 300;
/// Other groups' ids (0: unassigned).
const OTHERS: [u64; 3] = [0, 7, 9];

type Dump = BTreeMap<Vec<u8>, Vec<u8>>;

struct Harness {
    gid: u64,
    n: u32,
    options: MachineOptions,
    a: KvMachine<MemStore>,
    a_store: MemStore,
    b: KvMachine<MemStore>,
    b_store: MemStore,
    slot: u64,
    /// The log time the next command carries.
    now: u64,
}

fn open(gid: u64, options: &MachineOptions) -> (KvMachine<MemStore>, MemStore) {
    let store = MemStore::new();
    let m = KvMachine::open(gid, Arc::new(store.clone()), options.clone()).expect("open empty");
    (m, store)
}

fn u64_raw(c: &mut Cursor<'_>) -> u64 {
    let mut b = [0u8; 8];
    for x in &mut b {
        *x = c.u8();
    }
    u64::from_le_bytes(b)
}

fn bytes(c: &mut Cursor<'_>, max: usize) -> Vec<u8> {
    let n = c.u8() as usize % (max + 1);
    c.take(n).to_vec()
}

/// A small number, sometimes an extreme one.
fn small_u64(c: &mut Cursor<'_>) -> u64 {
    match c.u8() {
        b @ 0..=239 => u64::from(b % 16),
        240..=247 => u64::MAX - u64::from(c.u8() % 4),
        _ => u64_raw(c),
    }
}

fn client_id(c: &mut Cursor<'_>) -> Vec<u8> {
    match c.u8() % 8 {
        0 => bytes(c, 20),
        k => u128::from(k).to_be_bytes().to_vec(),
    }
}

fn shard_index(c: &mut Cursor<'_>, n: u32) -> u32 {
    match c.u8() {
        b @ 0..=247 => u32::from(b) % n.max(1),
        248..=251 => n + u32::from(c.u8() % 3),
        _ => u32::MAX - u32::from(c.u8() % 2),
    }
}

/// A key of `shard` (of `n`), if a short one is found.
fn key_of_shard(c: &mut Cursor<'_>, shard: u32, n: u32) -> Vec<u8> {
    let start = c.u8();
    (0u16..512)
        .map(|i| format!("k{}", u16::from(start) + i).into_bytes())
        .find(|k| n == 0 || shard_for_key(k, n) == shard)
        .unwrap_or_else(|| b"k".to_vec())
}

fn key_range_contains((start, end): &(Vec<u8>, Vec<u8>), key: &[u8]) -> bool {
    start.as_slice() <= key && key < end.as_slice()
}

fn shard_of_engine_key(key: &[u8]) -> Option<u32> {
    key.get(1..5)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
}

impl Harness {
    fn new(c: &mut Cursor<'_>) -> Harness {
        let gid = [1u64, 7, u64::MAX][c.u8() as usize % 3];
        let n = 1 + u32::from(c.u8() % 8);
        let options = MachineOptions {
            session_timeout_ms: 1 + u64::from(c.u8()) * 40,
            sync_every: 1 + u32::from(c.u8() % 4),
            max_pending_replies: 1 + (c.u8() % 6) as usize,
            ..MachineOptions::default()
        };
        let (a, a_store) = open(gid, &options);
        let (b, b_store) = open(gid, &options);
        Harness {
            gid,
            n,
            options,
            a,
            a_store,
            b,
            b_store,
            slot: 1,
            now: 1_000,
        }
    }

    fn tick(&mut self, c: &mut Cursor<'_>) -> u64 {
        match c.u8() {
            b @ 0..=239 => self.now = self.now.saturating_add(u64::from(b) * 25),
            240..=249 => self.now = self.now.saturating_sub(u64::from(c.u8()) * 25),
            _ => self.now = u64_raw(c),
        }
        self.now
    }

    fn config_n(&self) -> u32 {
        self.a.config().shards.len() as u32
    }

    /// Shard count to aim at: the machine's, or the header's before the first config.
    fn n(&self) -> u32 {
        match self.config_n() {
            0 => self.n,
            n => n,
        }
    }

    fn client_op(&mut self, c: &mut Cursor<'_>, which: u8) -> Kind {
        let client_id = client_id(c);
        let seq = small_u64(c);
        let first_incomplete_seq = match c.u8() % 4 {
            0 => small_u64(c),
            1 => seq.saturating_sub(1),
            _ => seq,
        };
        let opens_session = c.u8() % 3 != 0;
        let config_num = small_u64(c);
        let key = if c.u8() % 4 == 0 {
            bytes(c, 12)
        } else {
            c.small_key()
        };
        // Now and then no header at all (refused alike everywhere).
        let header = (!c.u8().is_multiple_of(32)).then(|| v1::RequestHeader {
            client_id,
            seq,
            first_incomplete_seq,
            config_num,
            opens_session,
            ..Default::default()
        });
        match which {
            0 => Kind::Put(v1::PutRequest {
                header,
                key,
                value: c.value(seq),
            }),
            1 => Kind::Append(v1::AppendRequest {
                header,
                key,
                value: c.value(seq),
            }),
            2 => Kind::Delete(v1::DeleteRequest {
                header,
                key,
            }),
            _ => {
                let b = c.u8();
                let expected = (b & 1 == 0).then(|| c.value(seq ^ 1));
                let new_value = (b & 2 == 0).then(|| c.value(seq ^ 2));
                Kind::CompareAndSwap(v1::CompareAndSwapRequest {
                    header,
                    key,
                    expected,
                    new_value,
                })
            }
        }
    }

    fn reconfigure(&mut self, c: &mut Cursor<'_>) -> Kind {
        let current = self.a.config().num;
        let num = match c.u8() % 8 {
            0 => small_u64(c),
            1 => current,
            _ => current.saturating_add(1),
        };
        let len = match c.u8() % 16 {
            0 => c.u8() as usize % 12,
            _ => self.n() as usize,
        };
        let shards: Vec<u64> = (0..len)
            .map(|_| match c.u8() % 4 {
                0 => OTHERS[c.u8() as usize % 3],
                1 => self.gid,
                2 => 7,
                _ => self.gid,
            })
            .collect();
        let mut groups: BTreeMap<u64, Vec<String>> = shards
            .iter()
            .filter(|&&g| g != 0)
            .map(|&g| (g, vec![format!("g{g}:1")]))
            .collect();
        if c.u8() % 8 == 0 {
            groups.insert(
                small_u64(c),
                vec![String::from_utf8_lossy(&bytes(c, 8)).into_owned()],
            );
        }
        Kind::Reconfigure(
            Config {
                num,
                shards,
                groups: groups.into(),
            }
            .to_proto(),
        )
    }

    fn install(&mut self, c: &mut Cursor<'_>) -> Kind {
        // Usually a shard being pulled, continuing its progress.
        let pulling: Vec<(u32, Vec<u8>)> = self
            .a
            .shard_states()
            .iter()
            .enumerate()
            .filter_map(|(s, st)| match st {
                ShardState::Pulling { token, .. } => Some((s as u32, token.clone())),
                _ => None,
            })
            .collect();
        let b = c.u8();
        let (shard, progress) = if b % 4 != 0 && !pulling.is_empty() {
            pulling[b as usize % pulling.len()].clone()
        } else {
            (shard_index(c, self.n()), Vec::new())
        };
        let after = match c.u8() % 8 {
            0 => Vec::new(),
            1 => bytes(c, 16),
            _ => progress,
        };
        let config_num = match c.u8() % 8 {
            0 => small_u64(c),
            _ => self.a.config().num,
        };
        let n = self.n();
        let entries = (0..c.u8() % 6)
            .map(|i| v1::ShardEntry {
                key: if c.u8() % 4 == 0 {
                    c.small_key()
                } else {
                    key_of_shard(c, shard, n)
                },
                value: c.value(u64::from(i) + 77),
                continues: c.u8() % 3 == 0,
            })
            .collect();
        let sessions = (0..c.u8() % 3)
            .map(|_| v1::ClientSession {
                client_id: client_id(c),
                first_incomplete_seq: small_u64(c),
                last_active_ms: match c.u8() % 4 {
                    0 => u64_raw(c),
                    _ => self.now.saturating_sub(u64::from(c.u8()) * 40),
                },
                replies: (0..c.u8() % 3)
                    .map(|_| v1::CachedReply {
                        seq: small_u64(c),
                        reply: match c.u8() % 4 {
                            0 => None,
                            1 => Some(v1::KvReply { reply: None }),
                            2 => Some(v1::KvReply {
                                reply: Some(Reply::Delete(v1::DeleteResponse { existed: true })),
                            }),
                            _ => Some(v1::KvReply {
                                reply: Some(Reply::Put(v1::PutResponse {})),
                            }),
                        },
                    })
                    .collect(),
            })
            .collect();
        let resume_token = match c.u8() % 4 {
            0 => bytes(c, 16),
            _ => {
                let mut t = u32::from(c.u8() % 4).to_be_bytes().to_vec();
                t.extend(keys::data_key(shard, &c.small_key()));
                t
            }
        };
        Kind::Install(InstallChunk {
            after,
            chunk: Some(v1::ShardChunk {
                shard,
                config_num,
                entries,
                sessions,
                resume_token,
                done: c.u8() % 3 == 0,
            }),
            source: u64::from(c.u8() % 4),
        })
    }

    fn shard_ref(&mut self, c: &mut Cursor<'_>) -> ShardRef {
        ShardRef {
            shard: shard_index(c, self.n()),
            config_num: match c.u8() % 8 {
                0 => small_u64(c),
                1 => self.a.config().num.saturating_sub(1),
                _ => self.a.config().num,
            },
        }
    }

    /// Applies one log entry to both machines and checks everything.
    fn apply(&mut self, entry: &[u8]) {
        let before = self.a_store.dump();
        let n_before = self.config_n();
        let ra = self.a.apply(self.slot, entry);
        let rb = self.b.apply(self.slot, entry);
        self.slot += 1;
        assert_eq!(ra, rb, "a reopened (or restored) twin answers differently");
        let after = self.a_store.dump();
        assert!(
            after == self.b_store.dump(),
            "a reopened (or restored) twin's store differs"
        );
        let outcome = ra;
        let command = Command::decode(entry).ok();
        if trace() {
            eprintln!(
                "slot {}: {command:?}\n  -> {outcome:?}; config {} {:?}",
                self.slot - 1,
                self.a.config().num,
                self.a.shard_states()
            );
        }
        if command.is_none() {
            assert!(
                matches!(outcome, Outcome::Refused(_)),
                "an undecodable entry was not refused: {outcome:?}"
            );
        }
        self.check_writes(&before, &after, command.as_ref(), n_before);
        self.check_state(&after);
    }

    /// Every key the entry changed is one it may change.
    fn check_writes(&self, before: &Dump, after: &Dump, command: Option<&Command>, n: u32) {
        let log_time = after
            .get(keys::LOG_TIME)
            .map(|v| u64::from_le_bytes(v.as_slice().try_into().expect("log time is 8 bytes")))
            .unwrap_or(0);
        let cutoff = log_time.saturating_sub(self.options.session_timeout_ms);
        let changed = before
            .iter()
            .filter(|(k, v)| after.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .chain(
                after
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(*v))
                    .map(|(k, _)| k),
            );
        let kind = command.and_then(|c| c.kind.as_ref());
        for key in changed {
            if key.first() == Some(&0x00) {
                continue;
            }
            let deleted = !after.contains_key(key);
            let client_shard = |k: &[u8]| (n > 0).then(|| keys::shard_range(shard_for_key(k, n)));
            let allowed = match kind {
                Some(Kind::Put(r)) => client_shard(&r.key),
                Some(Kind::Append(r)) => client_shard(&r.key),
                Some(Kind::Delete(r)) => client_shard(&r.key),
                Some(Kind::CompareAndSwap(r)) => client_shard(&r.key),
                Some(Kind::Install(i)) => i.chunk.as_ref().and_then(|ch| {
                    let pieces = keys::piece_range(ch.shard);
                    if key_range_contains(&pieces, key) {
                        Some(pieces)
                    } else {
                        Some(keys::shard_range(ch.shard))
                    }
                }),
                Some(Kind::DeleteShard(r)) if deleted => Some(keys::shard_range(r.shard)),
                Some(Kind::Abandon(r)) if deleted => {
                    let pieces = keys::piece_range(r.shard);
                    if key_range_contains(&pieces, key) {
                        Some(pieces)
                    } else {
                        Some(keys::shard_range(r.shard))
                    }
                }
                Some(Kind::Reconfigure(_)) if deleted && key.first() == Some(&0x01) => {
                    shard_of_engine_key(key).map(keys::shard_range)
                }
                _ => None,
            };
            if allowed.is_some_and(|r| key_range_contains(&r, key)) {
                continue;
            }
            // Any command may drop sessions that expired (in log time).
            let expired = deleted
                && shard_of_engine_key(key)
                    .is_some_and(|s| key_range_contains(&keys::session_range(s), key))
                && Session::decode(&before[key]).is_ok_and(|(_, s)| s.last_active_ms < cutoff);
            assert!(
                expired,
                "{kind:?} changed key {key:?} ({} -> {}) outside what it names",
                if before.contains_key(key) {
                    "present"
                } else {
                    "absent"
                },
                if deleted { "deleted" } else { "written" }
            );
        }
    }

    /// What the store holds agrees with the shard states.
    fn check_state(&self, dump: &Dump) {
        let states = self.a.shard_states();
        let n = self.config_n();
        assert_eq!(states.len(), n as usize, "one state per shard");
        let applied = dump.get(keys::APPLIED).expect("applied index stored");
        assert_eq!(applied.as_slice(), self.slot.to_le_bytes(), "applied index");
        let mut pieces: BTreeMap<u32, u32> = BTreeMap::new();
        for key in dump.keys() {
            match key.first() {
                Some(0x00) => {}
                Some(0x01) => {
                    let s = shard_of_engine_key(key).expect("a shard key has a shard");
                    let state = states.get(s as usize);
                    assert!(
                        matches!(
                            state,
                            Some(ShardState::Serving)
                                | Some(ShardState::Notifying { .. })
                                | Some(ShardState::Pulling { .. })
                                | Some(ShardState::Leaving { .. })
                                | Some(ShardState::Handed { .. })
                                | Some(ShardState::Reclaimed)
                        ),
                        "shard {s} ({state:?}) holds {key:?}"
                    );
                    if let Some(user) = keys::user_key(s, key) {
                        assert_eq!(shard_for_key(user, n), s, "key {user:?} filed in shard {s}");
                    }
                }
                Some(0x02) => {
                    let s = shard_of_engine_key(key).expect("a piece key has a shard");
                    *pieces.entry(s).or_default() += 1;
                }
                _ => panic!("key {key:?} outside every namespace"),
            }
        }
        for (s, state) in states.iter().enumerate() {
            let want = match state {
                ShardState::Pulling { pieces, .. } => *pieces,
                _ => 0,
            };
            let held = pieces.remove(&(s as u32)).unwrap_or(0);
            assert_eq!(
                held, want,
                "shard {s} ({state:?}) holds {held} install pieces"
            );
        }
        assert!(
            pieces.is_empty(),
            "install pieces of shards beyond the config: {pieces:?}"
        );
    }

    fn restart_twin(&mut self) {
        self.b = KvMachine::open(
            self.gid,
            Arc::new(self.b_store.clone()),
            self.options.clone(),
        )
        .expect("a store the machine wrote reopens");
        assert_eq!(self.b.config(), self.a.config());
        assert_eq!(self.b.shard_states(), self.a.shard_states());
    }

    fn snapshot_twin(&mut self) {
        let (index, chunks) = self.a.snapshot();
        assert_eq!(index, self.slot, "a snapshot covers every applied slot");
        let (mut m, store) = open(self.gid, &self.options);
        let mut it = chunks.map(Ok);
        m.restore(index, &mut it).expect("a snapshot restores");
        assert!(
            store.dump() == self.a_store.dump(),
            "a restored snapshot differs"
        );
        assert_eq!(m.shard_states(), self.a.shard_states());
        self.b = m;
        self.b_store = store;
    }

    /// Restores the twin from a damaged copy of `a`'s snapshot: a stream that breaks off (an
    /// `Err` chunk) must fail and keep the old state (the `StateMachine::restore` contract);
    /// with `corrupt`, a chunk's bytes are damaged instead (a peer sending garbage): it must
    /// not panic, and a refusal must keep the old state too. Either way the twin is then resynchronized from `a`.
    fn damaged_restore(&mut self, c: &mut Cursor<'_>, corrupt: bool) {
        let (index, chunks) = self.a.snapshot();
        let mut chunks: Vec<Vec<u8>> = chunks.collect();
        let at = c.u8() as usize % (chunks.len() + 1);
        let stream: Vec<Result<Vec<u8>, strata_node::TransferError>> = if corrupt {
            if let Some(chunk) = chunks.get_mut(at) {
                let pos = c.u16() as usize % chunk.len().max(1);
                match c.u8() % 3 {
                    0 => chunk.truncate(pos),
                    1 => {
                        if let Some(b) = chunk.get_mut(pos) {
                            *b ^= 1 << (c.u8() % 8);
                        }
                    }
                    _ => chunk.splice(pos..pos, bytes(c, 8)).for_each(drop),
                }
            }
            chunks.into_iter().map(Ok).collect()
        } else {
            let mut s: Vec<_> = chunks.into_iter().map(Ok).collect();
            s.insert(at, Err(strata_node::TransferError("the transfer broke off".to_string())));
            s
        };
        let restored = self.b.restore(index, &mut stream.into_iter());
        match restored {
            Ok(()) => {
                assert!(corrupt, "a broken-off snapshot stream restored");
                // Whatever it restored, resynchronize the twin.
                self.snapshot_twin();
            }
            Err(e) => {
                assert!(
                    self.b_store.dump() == self.a_store.dump(),
                    "a refused snapshot ({e}) changed the store"
                );
                assert_eq!(
                    self.b.config(),
                    self.a.config(),
                    "a refused snapshot ({e}) changed the config"
                );
                assert_eq!(
                    self.b.shard_states(),
                    self.a.shard_states(),
                    "a refused snapshot ({e}) changed the shard states"
                );
            }
        }
    }

    fn read_chunk(&self, c: &mut Cursor<'_>) {
        let n = self.config_n();
        let shard = shard_index(c, self.n());
        let token = match c.u8() % 4 {
            0 => Vec::new(),
            1 => bytes(c, 16),
            _ => match self.a.shard_states().get(shard as usize) {
                Some(ShardState::Pulling { token, .. }) => token.clone(),
                _ => {
                    let mut t = u32::from(c.u8() % 8).to_be_bytes().to_vec();
                    t.extend(keys::data_key(shard, &c.small_key()));
                    t
                }
            },
        };
        let budget = c.u8() as usize * 4;
        if let Ok(chunk) = read_chunk(&self.a_store, shard, self.a.config().num, &token, budget) {
            assert_eq!(chunk.shard, shard);
            for e in &chunk.entries {
                if n > 0 {
                    assert_eq!(
                        shard_for_key(&e.key, n),
                        shard,
                        "read_chunk returned a foreign key"
                    );
                }
            }
            assert!(chunk.done || !chunk.resume_token.is_empty());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    let mut h = Harness::new(&mut c);
    for _ in 0..MAX_STEPS {
        if c.is_empty() {
            break;
        }
        let op = c.u8();
        let kind = match op % 16 {
            0 => {
                let entry = bytes(&mut c, 48);
                h.apply(&entry);
                continue;
            }
            1..=3 => h.client_op(&mut c, 0),
            4 => h.client_op(&mut c, 1),
            5 => h.client_op(&mut c, 2),
            6 => h.client_op(&mut c, 3),
            7 | 8 => h.reconfigure(&mut c),
            9 | 10 => h.install(&mut c),
            11 => Kind::DeleteShard(h.shard_ref(&mut c)),
            12 => {
                let r = h.shard_ref(&mut c);
                match c.u8() % 4 {
                    0 => Kind::Notified(r),
                    1 => Kind::Grant(r),
                    2 => Kind::Reclaim(r),
                    _ => Kind::Abandon(r),
                }
            }
            13 => {
                match c.u8() % 5 {
                    0 => h.restart_twin(),
                    1 => h.snapshot_twin(),
                    2 => h.damaged_restore(&mut c, false),
                    3 => h.damaged_restore(&mut c, true),
                    _ => h.read_chunk(&mut c),
                }
                continue;
            }
            14 => {
                // A command without a kind.
                let entry = Command {
                    now_ms: h.tick(&mut c),
                    kind: None,
                }
                .encode_to_vec();
                h.apply(&entry);
                continue;
            }
            _ => h.client_op(&mut c, op / 16 % 4),
        };
        let now = h.tick(&mut c);
        let entry = Command::new(now, kind).encode();
        h.apply(&entry);
    }
});
