//! Durable Paxos acceptor state in its own `strata` engine (own directory, synced writes).
//!
//! ```text
//! key                          value
//! "meta/promised"              varint round, varint replica
//! "meta/log_start"             varint slot
//! "meta/membership"            varint version, varint since, varint n, n x varint voter,
//!                              varint m, m x varint learner,
//!                              varint k, k x (varint id, varint len, address)
//! "log/" ++ slot (u64 BE)      varint ballot.round, varint ballot.replica, u8 chosen,
//!                              varint n, n x (varint len, command bytes)
//! "log/" ++ slot ++ "c"        varint ballot.round, varint ballot.replica
//! ```
//! Big-endian slots make the log one ordered key range, so compaction is one `delete_range`
//! (a slot's chosen mark sorts right after its entry, inside the same range).
//! Every `persist` is one write batch, synced when it holds a promise, a membership or an
//! acceptance: those are durable before the driver sends the messages that depend on them.
//!
//! # Chosen marks
//!
//! Most entries are written twice: accepted, then known chosen. The second time only a mark
//! is written — the slot's *chosen mark*, naming the ballot of the entry it marks — when
//! this storage itself wrote that slot's entry, unchosen, with the same ballot and the same
//! value (it keeps the entries it wrote unchosen since it was opened, until they are marked
//! or compacted); otherwise the whole entry is written again, flagged chosen. (The ballot
//! alone would not do: a replica stores a value it learned chosen under the ballot of the
//! entry it had, whose value may differ.) On load an entry is chosen if it is flagged so, or
//! if a mark follows it naming its ballot; a mark naming another ballot (the entry was
//! replaced since by a later acceptance) is ignored: forgetting that a value is chosen is
//! always allowed (a peer teaches it again), claiming it never is.

use std::collections::BTreeMap;
use std::path::Path;

use strata::coding::{put_varint64, Decoder};
use strata::{Db, Options, WriteBatch, WriteOptions};
use strata_paxos::{
    Ballot, Membership, PersistedEntry, PersistentState, Ready, Slot, Storage, Value,
};

const PROMISED: &[u8] = b"meta/promised";
const LOG_START: &[u8] = b"meta/log_start";
const MEMBERSHIP: &[u8] = b"meta/membership";
const LOG_PREFIX: &[u8] = b"log/";

/// Errors of the Paxos storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] strata::Error),
    /// A stored record does not decode.
    #[error("corrupt Paxos record under key {key:?}")]
    Corrupt {
        /// The key whose value is bad.
        key: Vec<u8>,
    },
}

/// Paxos storage on a dedicated engine.
#[derive(Debug)]
pub struct EnginePaxosStorage {
    db: Db,
    /// The entries this storage wrote unchosen since it was opened and has not marked, by
    /// slot: a chosen entry with the same ballot and value is then written as a mark only.
    /// Trimmed by compaction; emptied when a write fails (what it holds is unknown).
    unmarked: BTreeMap<Slot, (Ballot, Value)>,
}

impl EnginePaxosStorage {
    /// A handle on the engine, for its statistics (`Db` is a cheap, shared handle).
    pub fn db_handle(&self) -> Db {
        self.db.clone()
    }
}

fn log_key(slot: Slot) -> Vec<u8> {
    let mut k = LOG_PREFIX.to_vec();
    k.extend_from_slice(&slot.to_be_bytes());
    k
}

/// The suffix of a chosen mark's key (after the slot's log key).
const MARK_SUFFIX: u8 = b'c';

fn mark_key(slot: Slot) -> Vec<u8> {
    let mut k = log_key(slot);
    k.push(MARK_SUFFIX);
    k
}

fn decode_ballot(bytes: &[u8]) -> Option<Ballot> {
    let mut d = Decoder::new(bytes);
    let b = Ballot::new(d.varint64()?, d.varint64()?);
    d.is_empty().then_some(b)
}

fn encode_ballot(dst: &mut Vec<u8>, b: Ballot) {
    put_varint64(dst, b.round);
    put_varint64(dst, b.replica);
}

fn encode_entry(e: &PersistedEntry) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + e.value.payload_bytes() + 4 * e.value.commands.len());
    encode_ballot(&mut v, e.ballot);
    v.push(u8::from(e.chosen));
    put_varint64(&mut v, e.value.commands.len() as u64);
    for c in &e.value.commands {
        put_varint64(&mut v, c.len() as u64);
        v.extend_from_slice(c);
    }
    v
}

fn encode_membership(m: &Membership) -> Vec<u8> {
    let mut v = Vec::new();
    put_varint64(&mut v, m.version);
    put_varint64(&mut v, m.since);
    for list in [&m.voters, &m.learners] {
        put_varint64(&mut v, list.len() as u64);
        for id in list {
            put_varint64(&mut v, *id);
        }
    }
    put_varint64(&mut v, m.addresses.len() as u64);
    for (id, address) in &m.addresses {
        put_varint64(&mut v, *id);
        put_varint64(&mut v, address.len() as u64);
        v.extend_from_slice(address.as_bytes());
    }
    v
}

fn decode_membership(bytes: &[u8]) -> Option<Membership> {
    let mut d = Decoder::new(bytes);
    let (version, since) = (d.varint64()?, d.varint64()?);
    let mut lists = [Vec::new(), Vec::new()];
    for list in &mut lists {
        let n = d.varint64()?;
        if n > bytes.len() as u64 {
            return None;
        }
        for _ in 0..n {
            list.push(d.varint64()?);
        }
    }
    let n = d.varint64()?;
    if n > bytes.len() as u64 {
        return None;
    }
    let mut addresses = std::collections::BTreeMap::new();
    for _ in 0..n {
        let id = d.varint64()?;
        let address = String::from_utf8(d.length_prefixed()?.to_vec()).ok()?;
        addresses.insert(id, address);
    }
    let [voters, learners] = lists;
    d.is_empty().then_some(Membership {
        version,
        since,
        voters,
        learners,
        addresses,
    })
}

fn decode_entry(slot: Slot, bytes: &[u8]) -> Option<PersistedEntry> {
    let mut d = Decoder::new(bytes);
    let ballot = Ballot::new(d.varint64()?, d.varint64()?);
    let chosen = match d.u8()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let n = d.varint64()?;
    if n > bytes.len() as u64 {
        return None;
    }
    let mut commands = Vec::with_capacity(n as usize);
    for _ in 0..n {
        commands.push(d.length_prefixed()?.to_vec());
    }
    d.is_empty().then_some(PersistedEntry {
        slot,
        ballot,
        value: Value { commands },
        chosen,
    })
}

impl EnginePaxosStorage {
    /// Opens (creating if needed) the Paxos log in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let db = Db::open(
            dir,
            Options {
                // The log is written and trimmed continuously: small memtables keep recovery
                // quick and memory low.
                write_buffer_size: 8 << 20,
                // Read only on start and to serve a lagging peer: a small cache does.
                block_cache_bytes: 4 << 20,
                ..Options::create()
            },
        )?;
        Ok(EnginePaxosStorage {
            db,
            unmarked: BTreeMap::new(),
        })
    }

    /// The engine underneath (for statistics).
    pub fn db(&self) -> &Db {
        &self.db
    }
}

impl Storage for EnginePaxosStorage {
    type Error = StorageError;

    fn persist(&mut self, ready: &Ready) -> Result<(), StorageError> {
        if !ready.must_persist() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        if let Some(b) = ready.promised {
            let mut v = Vec::new();
            encode_ballot(&mut v, b);
            batch.put(PROMISED, v);
        }
        if let Some(m) = &ready.membership {
            batch.put(MEMBERSHIP, encode_membership(m));
        }
        for e in &ready.entries {
            let written = self.unmarked.get(&e.slot);
            if e.chosen && written.is_some_and(|(b, v)| *b == e.ballot && *v == e.value) {
                let mut v = Vec::new();
                encode_ballot(&mut v, e.ballot);
                batch.put(mark_key(e.slot), v);
            } else {
                batch.put(log_key(e.slot), encode_entry(e));
            }
            if e.chosen {
                self.unmarked.remove(&e.slot);
            } else {
                self.unmarked.insert(e.slot, (e.ballot, e.value.clone()));
            }
        }
        if let Some(start) = ready.compact_to {
            let mut v = Vec::new();
            put_varint64(&mut v, start);
            batch.put(LOG_START, v);
            batch.delete_range(log_key(0), log_key(start));
            self.unmarked = self.unmarked.split_off(&start);
        }
        // Only what this replica promised or accepted must be durable before it answers;
        // marking entries chosen, the membership they make (and compacting) records facts
        // any peer can teach it again,
        // so a round that does nothing else skips the fsync. A later synced write makes it
        // durable too (one log, written in order).
        // A membership is synced too: rare, and the one a snapshot brings must be durable
        // before the state machine installs the snapshot (see the driver).
        let sync = ready.must_sync();
        if let Err(e) = self.db.write_opt(batch, &WriteOptions { sync }) {
            // What was written is unknown now: mark nothing on that belief.
            self.unmarked.clear();
            return Err(e.into());
        }
        Ok(())
    }

    fn load(&self) -> Result<PersistentState, StorageError> {
        let corrupt = |key: &[u8]| StorageError::Corrupt { key: key.to_vec() };
        let promised = match self.db.get(PROMISED)? {
            Some(v) => {
                let mut d = Decoder::new(&v);
                let b = (|| Some(Ballot::new(d.varint64()?, d.varint64()?)))();
                b.ok_or_else(|| corrupt(PROMISED))?
            }
            None => Ballot::ZERO,
        };
        let log_start = match self.db.get(LOG_START)? {
            Some(v) => Decoder::new(&v)
                .varint64()
                .ok_or_else(|| corrupt(LOG_START))?,
            None => 1,
        };
        let membership = match self.db.get(MEMBERSHIP)? {
            Some(v) => Some(decode_membership(&v).ok_or_else(|| corrupt(MEMBERSHIP))?),
            None => None,
        };
        let mut entries: Vec<PersistedEntry> = Vec::new();
        for kv in self.db.scan(log_key(log_start)..log_key(u64::MAX)) {
            let (k, v) = kv?;
            let rest = k.get(LOG_PREFIX.len()..).ok_or_else(|| corrupt(&k))?;
            let (slot, mark) = match rest.len() {
                8 => (rest, false),
                9 if rest[8] == MARK_SUFFIX => (&rest[..8], true),
                _ => return Err(corrupt(&k)),
            };
            let slot = u64::from_be_bytes(slot.try_into().map_err(|_| corrupt(&k))?);
            if mark {
                // Sorted right after its slot's entry; it counts only for that ballot.
                let ballot = decode_ballot(&v).ok_or_else(|| corrupt(&k))?;
                if let Some(e) = entries.last_mut() {
                    if e.slot == slot && e.ballot == ballot {
                        e.chosen = true;
                    }
                }
            } else {
                entries.push(decode_entry(slot, &v).ok_or_else(|| corrupt(&k))?);
            }
        }
        Ok(PersistentState {
            promised,
            log_start,
            entries,
            membership,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(slot: Slot, cmds: &[&[u8]], chosen: bool) -> PersistedEntry {
        PersistedEntry {
            slot,
            ballot: Ballot::new(3, 2),
            value: Value {
                commands: cmds.iter().map(|c| c.to_vec()).collect(),
            },
            chosen,
        }
    }

    #[test]
    fn persists_promises_entries_and_compaction_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = EnginePaxosStorage::open(dir.path()).unwrap();
            assert_eq!(
                s.load().unwrap(),
                PersistentState {
                    log_start: 1,
                    ..Default::default()
                }
            );
            let ready = Ready {
                promised: Some(Ballot::new(3, 2)),
                entries: vec![
                    entry(1, &[b"a"], true),
                    entry(2, &[], false),
                    entry(3, &[b"b", b""], false),
                ],
                ..Ready::default()
            };
            s.persist(&ready).unwrap();
            // Upsert: slot 2 becomes chosen with a value.
            s.persist(&Ready {
                entries: vec![entry(2, &[b"x"], true)],
                ..Ready::default()
            })
            .unwrap();
            s.persist(&Ready {
                compact_to: Some(2),
                ..Ready::default()
            })
            .unwrap();
        }
        let membership = Membership {
            version: 2,
            since: 7,
            voters: vec![1, 2, 4],
            learners: vec![9],
            addresses: [(9, "127.0.0.1:9".to_string())].into(),
        };
        {
            let mut s = EnginePaxosStorage::open(dir.path()).unwrap();
            assert_eq!(s.load().unwrap().membership, None);
            s.persist(&Ready {
                membership: Some(membership.clone()),
                ..Ready::default()
            })
            .unwrap();
        }
        let s = EnginePaxosStorage::open(dir.path()).unwrap();
        let state = s.load().unwrap();
        assert_eq!(state.membership, Some(membership.clone()));
        assert_eq!(
            decode_membership(&encode_membership(&membership)),
            Some(membership)
        );
        assert_eq!(decode_membership(&[1, 2, 200]), None);
        assert_eq!(state.promised, Ballot::new(3, 2));
        assert_eq!(state.log_start, 2);
        assert_eq!(
            state.entries,
            vec![entry(2, &[b"x"], true), entry(3, &[b"b", b""], false)]
        );
    }

    fn entry_at(slot: Slot, round: u64, cmd: &[u8], chosen: bool) -> PersistedEntry {
        PersistedEntry {
            ballot: Ballot::new(round, 1),
            ..entry(slot, &[cmd], chosen)
        }
    }

    fn put(s: &mut EnginePaxosStorage, entries: Vec<PersistedEntry>) {
        s.persist(&Ready {
            entries,
            ..Ready::default()
        })
        .unwrap();
    }

    #[test]
    fn an_entry_written_here_is_marked_chosen_without_its_value_again() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = EnginePaxosStorage::open(dir.path()).unwrap();
            let value = vec![7u8; 4096];
            put(&mut s, vec![entry_at(1, 1, &value, false)]);
            let before = s.db.stats().wal_bytes;
            put(&mut s, vec![entry_at(1, 1, &value, true)]);
            let mark = s.db.stats().wal_bytes - before;
            assert!(mark < 100, "a chosen mark wrote {mark} bytes");
            assert_eq!(
                s.load().unwrap().entries,
                vec![entry_at(1, 1, &value, true)]
            );
            // Slot 2: accepted at ballot 1, replaced at ballot 2, then ballot 2 is chosen; slot
            // 3: marked at ballot 1, then replaced by an acceptance at ballot 2 (the mark
            // names another ballot now); slot 4: chosen without being accepted here; slot 5:
            // accepted, then another value learned chosen under the same ballot (as a replica
            // stores a learned value): written whole, never a mark of the old value.
            put(&mut s, vec![entry_at(2, 1, b"old", false)]);
            put(&mut s, vec![entry_at(2, 2, b"new", false)]);
            put(&mut s, vec![entry_at(2, 2, b"new", true)]);
            put(&mut s, vec![entry_at(3, 1, b"x", false)]);
            put(&mut s, vec![entry_at(3, 1, b"x", true)]);
            put(&mut s, vec![entry_at(3, 2, b"x", false)]);
            put(&mut s, vec![entry_at(4, 1, b"learned", true)]);
            put(&mut s, vec![entry_at(5, 1, b"accepted", false)]);
            put(&mut s, vec![entry_at(5, 1, b"chosen", true)]);
        }
        let mut s = EnginePaxosStorage::open(dir.path()).unwrap();
        let expected = |from: usize| {
            vec![
                entry_at(1, 1, &[7u8; 4096], true),
                entry_at(2, 2, b"new", true),
                entry_at(3, 2, b"x", false),
                entry_at(4, 1, b"learned", true),
                entry_at(5, 1, b"chosen", true),
            ][from..]
                .to_vec()
        };
        assert_eq!(s.load().unwrap().entries, expected(0));
        // Reopened, it remembers nothing it wrote: slot 3 chosen now is written whole.
        put(&mut s, vec![entry_at(3, 2, b"x", true)]);
        assert_eq!(s.load().unwrap().entries[2], entry_at(3, 2, b"x", true));
        // Compaction takes the marks with their entries.
        s.persist(&Ready {
            compact_to: Some(3),
            ..Ready::default()
        })
        .unwrap();
        let left: Vec<_> = s.db.scan(log_key(0)..log_key(u64::MAX)).collect();
        assert_eq!(
            left.len(),
            4,
            "slots 3 to 5 and the stale mark of 3; none of 1 and 2"
        );
        let mut now = expected(2);
        now[0].chosen = true;
        assert_eq!(s.load().unwrap().entries, now);
    }

    #[test]
    fn a_mark_that_does_not_decode_or_a_stray_log_key_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = EnginePaxosStorage::open(dir.path()).unwrap();
        put(&mut s, vec![entry_at(1, 1, b"v", false)]);
        s.db.put(mark_key(1), [0x80]).unwrap();
        assert!(matches!(s.load(), Err(StorageError::Corrupt { .. })));
        s.db.put(mark_key(1), [1, 1, 9]).unwrap();
        assert!(matches!(s.load(), Err(StorageError::Corrupt { .. })));
        s.db.put(mark_key(1), [1, 1]).unwrap();
        assert!(s.load().unwrap().entries[0].chosen);
        let mut stray = log_key(1);
        stray.push(b'x');
        s.db.put(stray, [1, 1]).unwrap();
        assert!(matches!(s.load(), Err(StorageError::Corrupt { .. })));
    }

    #[test]
    fn garbage_records_are_reported_not_trusted() {
        for bad in [
            &[][..],
            &[1],
            &[1, 1, 7],
            &[1, 1, 1, 5, 1],
            &[1, 1, 0, 0, 9],
        ] {
            assert!(decode_entry(1, bad).is_none(), "{bad:?}");
        }
        let e = entry(9, &[b"cmd"], true);
        assert_eq!(decode_entry(9, &encode_entry(&e)), Some(e));
    }
}
