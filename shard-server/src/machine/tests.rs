use std::collections::BTreeMap;

use super::*;
use crate::command::{InstallChunk, ShardRef};
use crate::handoff::read_chunk;
use crate::keys;
use crate::store::MemStore;
use prost::Message;
use strata_rpc::v1::{self, kv_reply::Reply, ErrorReason};

const N: usize = 4;

/// A machine of group `gid` with a slot counter.
struct Replica {
    m: KvMachine<MemStore>,
    slot: Slot,
    now: u64,
    client: [u8; 16],
    seq: u64,
}

fn config(num: u64, shards: [u64; N]) -> Config {
    let groups = shards
        .iter()
        .filter(|&&g| g != 0)
        .map(|&g| (g, vec![format!("g{g}:1")]))
        .collect::<BTreeMap<_, _>>();
    Config {
        num,
        shards: shards.to_vec(),
        groups: groups.into(),
    }
}

/// A key of `shard`.
fn key_of(shard: u32) -> Vec<u8> {
    (0u32..)
        .map(|i| format!("k{i}").into_bytes())
        .find(|k| shard_for_key(k, N as u32) == shard)
        .unwrap()
}

impl Replica {
    fn new(gid: u64) -> Replica {
        Replica::on(gid, MemStore::new(), MachineOptions::default())
    }

    fn on(gid: u64, store: MemStore, options: MachineOptions) -> Replica {
        Replica {
            m: KvMachine::open(gid, Arc::new(store), options).unwrap(),
            slot: 1,
            now: 1_000,
            client: u128::from(gid as u32 * 1000 + 7).to_be_bytes(),
            seq: 0,
        }
    }

    fn apply(&mut self, kind: Kind) -> Outcome {
        let bytes = Command::new(self.now, kind).encode();
        let reply = self.m.apply(self.slot, &bytes);
        self.slot += 1;
        reply
    }

    /// The header of this replica's client's request `seq`.
    fn header(&self, seq: u64, first_incomplete: u64, opens: bool) -> Option<v1::RequestHeader> {
        Some(v1::RequestHeader {
            client_id: self.client.to_vec(),
            seq,
            first_incomplete_seq: first_incomplete,
            opens_session: opens,
            ..Default::default()
        })
    }

    fn reconfigure(&mut self, c: &Config) -> bool {
        self.apply(Kind::Reconfigure(c.to_proto())) == Outcome::Done(true)
    }

    fn put_seq(&mut self, key: &[u8], value: &[u8], seq: u64, opens: bool) -> Outcome {
        self.apply(Kind::Put(v1::PutRequest {
            header: self.header(seq, seq, opens),
            key: key.to_vec(),
            value: value.to_vec(),
        }))
    }

    fn append_seq(&mut self, key: &[u8], value: &[u8], seq: u64, first: u64) -> Outcome {
        self.apply(Kind::Append(v1::AppendRequest {
            header: self.header(seq, first, true),
            key: key.to_vec(),
            value: value.to_vec(),
        }))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Outcome {
        self.seq += 1;
        self.put_seq(key, value, self.seq, true)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let shard = shard_for_key(key, N as u32);
        self.m.store.get(&keys::data_key(shard, key)).unwrap()
    }

    fn state(&self, shard: u32) -> ShardState {
        self.m.shard_states()[shard as usize].clone()
    }

    /// Moves `shard` from `from` into this replica through the handoff path.
    fn pull_from(&mut self, from: &Replica, shard: u32, budget: usize) {
        let num = self.m.config().num;
        // From the install progress, as a new leader would.
        let ShardState::Pulling { token, .. } = self.state(shard) else {
            panic!("shard {shard} is not being pulled");
        };
        let mut after = token;
        loop {
            let chunk = read_chunk(from.m.store.as_ref(), shard, num, &after, budget).unwrap();
            let (token, done) = (chunk.resume_token.clone(), chunk.done);
            let outcome = self.apply(Kind::Install(InstallChunk {
                after: after.clone(),
                chunk: Some(chunk),
                source: 0,
            }));
            assert_eq!(outcome, Outcome::Done(true));
            if done {
                break;
            }
            after = token;
        }
    }
}

fn refusal_reason(o: &Outcome) -> Option<ErrorReason> {
    match o {
        Outcome::Refused(r) => Some(r.reason()),
        _ => None,
    }
}

fn ok_put() -> Outcome {
    Outcome::Kv(v1::KvReply {
        reply: Some(Reply::Put(v1::PutResponse {})),
    })
}

#[test]
fn before_any_config_nothing_is_served() {
    let mut r = Replica::new(1);
    assert_eq!(
        refusal_reason(&r.put(b"a", b"1")),
        Some(ErrorReason::WrongGroup)
    );
}

#[test]
fn rule1_ownership_is_checked_when_a_mutation_is_applied() {
    let mut r = Replica::new(1);
    assert!(r.reconfigure(&config(1, [1; N])));
    let key = key_of(2);
    assert_eq!(r.put(&key, b"before"), ok_put());
    // The put below was accepted while the group owned the shard; the config that takes the
    // shard away is chosen before it: applying it must refuse.
    assert!(r.reconfigure(&config(2, [1, 1, 2, 1])));
    let o = r.put(&key, b"after");
    assert_eq!(refusal_reason(&o), Some(ErrorReason::WrongGroup));
    assert_eq!(r.get(&key), Some(b"before".to_vec()), "frozen");
    assert_eq!(r.state(2), ShardState::Leaving { to: 2 });
}

#[test]
fn rule2_configs_apply_in_order_and_only_once_settled() {
    let mut r = Replica::new(1);
    assert!(!r.reconfigure(&config(2, [1; N])), "skips a number");
    assert!(r.reconfigure(&config(1, [1; N])));
    assert!(!r.reconfigure(&config(1, [1; N])), "applied twice");
    assert!(r.reconfigure(&config(2, [2, 1, 1, 1])));
    // Shard 0 is leaving until group 2 has it: config 3 must wait.
    assert!(!r.reconfigure(&config(3, [2, 2, 1, 1])));
    assert_eq!(r.m.config().num, 2);
    assert_eq!(
        r.apply(Kind::DeleteShard(ShardRef {
            shard: 0,
            config_num: 2
        })),
        Outcome::Done(true)
    );
    assert!(r.reconfigure(&config(3, [2, 2, 1, 1])));
}

#[test]
fn a_shard_moves_with_its_data_and_dedup_table() {
    let mut a = Replica::new(1);
    let mut b = Replica::new(2);
    let c1 = config(1, [1; N]);
    let c2 = config(2, [1, 1, 1, 2]);
    assert!(a.reconfigure(&c1) && b.reconfigure(&c1));
    let key = key_of(3);
    let writer = a.client;
    a.client = 4242u128.to_be_bytes();
    assert_eq!(a.append_seq(&key, b"x", 1, 1), ok_append());
    a.client = writer;
    let mut small = Vec::new();
    for i in 0..200u32 {
        let k = format!("m{i}").into_bytes();
        if shard_for_key(&k, N as u32) == 3 {
            assert_eq!(a.put(&k, &[i as u8; 300]), ok_put());
            small.push(k);
        }
    }
    let big = key_of(3).into_iter().chain(*b"big").collect::<Vec<u8>>();
    let big = if shard_for_key(&big, N as u32) == 3 {
        big
    } else {
        key_of(3)
    };
    assert_eq!(a.put(&big, &vec![9u8; 70_000]), ok_put());
    assert!(a.reconfigure(&c2) && b.reconfigure(&c2));
    assert!(matches!(b.state(3), ShardState::Pulling { from: 1, .. }));
    // Not served while installing.
    assert_eq!(
        refusal_reason(&b.put(&key, b"y")),
        Some(ErrorReason::Installing)
    );
    b.pull_from(&a, 3, 8 << 10);
    assert_eq!(b.state(3), ShardState::Notifying { from: 1 });
    for k in &small {
        assert_eq!(b.get(k), a.get(k));
    }
    assert_eq!(b.get(&big), Some(vec![9u8; 70_000]));
    // The retry of the append (seq 1) is answered from the moved table: not applied twice.
    b.client = 4242u128.to_be_bytes();
    assert_eq!(b.append_seq(&key, b"x", 1, 1), ok_append());
    assert_eq!(b.get(&key), Some(b"x".to_vec()));
    // The old owner deletes its copy when told; the new owner then settles.
    let del = ShardRef {
        shard: 3,
        config_num: 2,
    };
    assert_eq!(a.apply(Kind::DeleteShard(del)), Outcome::Done(true));
    assert_eq!(a.state(3), ShardState::Absent);
    assert_eq!(a.get(&key), None);
    assert_eq!(a.m.view().read().deleted_ranges.len(), 1);
    assert_eq!(b.apply(Kind::Notified(del)), Outcome::Done(true));
    assert_eq!(b.state(3), ShardState::Serving);
    // Only shard 3's keys reached b.
    let (start, end) = keys::shard_range(3);
    for k in b.m.store.dump().keys() {
        assert!(k[0] == 0 || (start <= *k && *k < end), "{k:?}");
    }
}

fn ok_append() -> Outcome {
    Outcome::Kv(v1::KvReply {
        reply: Some(Reply::Append(v1::AppendResponse {})),
    })
}

#[test]
fn rule4_an_install_clears_the_range_first_and_restarts_cleanly() {
    let mut a = Replica::new(1);
    let mut b = Replica::new(2);
    let c1 = config(1, [1; N]);
    let c2 = config(2, [1, 2, 1, 1]);
    assert!(a.reconfigure(&c1) && b.reconfigure(&c1));
    let keys_1: Vec<Vec<u8>> = (0..400u32)
        .map(|i| format!("n{i}").into_bytes())
        .filter(|k| shard_for_key(k, N as u32) == 1)
        .collect();
    for k in &keys_1 {
        a.put(k, &[b'v'; 20]);
    }
    assert!(a.reconfigure(&c2) && b.reconfigure(&c2));
    // Left-overs in b's range (e.g. a copy from long ago) must not survive the install.
    let stale = keys::data_key(1, b"stale");
    b.m.store
        .write(WriteBatch::new().put(&stale, b"old").clone(), false)
        .unwrap();
    // Half an install, then the leader changes and the new one starts over.
    let first = read_chunk(a.m.store.as_ref(), 1, 2, &[], 512).unwrap();
    assert!(!first.done);
    let token = first.resume_token.clone();
    let install = |after: Vec<u8>, chunk| {
        Kind::Install(InstallChunk {
            after,
            chunk: Some(chunk),
            source: 0,
        })
    };
    assert_eq!(b.apply(install(vec![], first.clone())), Outcome::Done(true));
    // A duplicate of the first chunk, or a chunk out of order, is ignored.
    assert_eq!(
        b.apply(install(vec![], first.clone())),
        Outcome::Done(false)
    );
    let third = read_chunk(a.m.store.as_ref(), 1, 2, &token, 512).unwrap();
    assert_eq!(
        b.apply(install(third.resume_token.clone(), third)),
        Outcome::Done(false)
    );
    // Crash and restart of b halfway: the progress is durable in the store.
    let store = b.m.store.as_ref().clone();
    let mut b = Replica::on(2, store, MachineOptions::default());
    b.slot = 100;
    assert!(
        matches!(b.state(1), ShardState::Pulling { ref token, .. } if *token == first.resume_token)
    );
    b.pull_from(&a, 1, 512);
    assert_eq!(b.m.store.get(&stale).unwrap(), None);
    for k in &keys_1 {
        assert_eq!(b.get(k), Some(vec![b'v'; 20]));
    }
}

#[test]
fn rule5_a_stale_delete_never_removes_a_shard_that_came_back() {
    // Shard 0 moves A -> B in config 2 and back B -> A in config 3.
    let mut a = Replica::new(1);
    let mut b = Replica::new(2);
    let c1 = config(1, [1; N]);
    let c2 = config(2, [2, 1, 1, 1]);
    let c3 = config(3, [1; N]);
    assert!(a.reconfigure(&c1) && b.reconfigure(&c1));
    let key = key_of(0);
    a.put(&key, b"v1");
    assert!(a.reconfigure(&c2) && b.reconfigure(&c2));
    b.pull_from(&a, 0, 1 << 20);
    let r2 = ShardRef {
        shard: 0,
        config_num: 2,
    };
    assert_eq!(a.apply(Kind::DeleteShard(r2)), Outcome::Done(true));
    assert_eq!(b.apply(Kind::Notified(r2)), Outcome::Done(true));
    b.put(&key, b"v2");
    assert!(a.reconfigure(&c3) && b.reconfigure(&c3));
    a.pull_from(&b, 0, 1 << 20);
    assert_eq!(a.get(&key), Some(b"v2".to_vec()));
    // B's delete request for config 2 arrives again, late: A serves the shard (config 3).
    assert_eq!(a.apply(Kind::DeleteShard(r2)), Outcome::Done(true));
    assert_eq!(a.get(&key), Some(b"v2".to_vec()), "not deleted");
    assert!(a.state(0).is_served());
    // And a delete for a config not reached yet does nothing.
    let r9 = ShardRef {
        shard: 0,
        config_num: 9,
    };
    assert_eq!(b.apply(Kind::DeleteShard(r9)), Outcome::Done(false));
    assert_eq!(b.get(&key), Some(b"v2".to_vec()));
}

#[test]
fn retries_are_answered_once_and_acknowledged_replies_are_dropped() {
    let mut r = Replica::new(1);
    assert!(r.reconfigure(&config(1, [1; N])));
    let key = key_of(0);
    // Two requests in flight (seq 1 and 2), each retried.
    assert_eq!(r.append_seq(&key, b"a", 1, 1), ok_append());
    assert_eq!(r.append_seq(&key, b"b", 2, 1), ok_append());
    assert_eq!(r.append_seq(&key, b"a", 1, 1), ok_append());
    assert_eq!(r.append_seq(&key, b"b", 2, 1), ok_append());
    assert_eq!(r.get(&key), Some(b"ab".to_vec()));
    // Seq 3 says 1 and 2 completed: their replies go, and a late retry of 1 is refused, not
    // applied.
    assert_eq!(r.append_seq(&key, b"c", 3, 3), ok_append());
    let shard = shard_for_key(&key, N as u32);
    let s = r.m.sessions.get(shard, 1007).unwrap();
    assert_eq!(s.replies.keys().copied().collect::<Vec<_>>(), vec![3]);
    assert_eq!(
        refusal_reason(&r.append_seq(&key, b"a", 1, 1)),
        Some(ErrorReason::InvalidArgument)
    );
    assert_eq!(r.get(&key), Some(b"abc".to_vec()));
}

#[test]
fn idle_sessions_expire_in_log_time_and_their_clients_are_told() {
    let options = MachineOptions {
        session_timeout_ms: 1_000,
        ..MachineOptions::default()
    };
    let mut r = Replica::on(1, MemStore::new(), options);
    assert!(r.reconfigure(&config(1, [1; N])));
    let key = key_of(1);
    assert_eq!(r.put_seq(&key, b"1", 1, true), ok_put());
    // Another client keeps the log moving for longer than the timeout.
    let mine = r.client;
    r.client = 8u128.to_be_bytes();
    r.now += 1_500;
    assert_eq!(r.put_seq(&key, b"2", 1, true), ok_put());
    assert!(r.m.sessions.get(1, 1007).is_none(), "expired");
    assert_eq!(r.m.sessions.len(), 1);
    // The first client's retry of seq 1 cannot be told apart from a new request: refused.
    r.client = mine;
    let o = r.put_seq(&key, b"1", 1, false);
    assert_eq!(refusal_reason(&o), Some(ErrorReason::SessionExpired));
    assert_eq!(r.get(&key), Some(b"2".to_vec()));
    // A replica's clock going backwards (a new leader with a slower clock) does not revive
    // or expire anything: log time only moves forward.
    r.now = 500;
    assert_eq!(r.put_seq(&key, b"3", 5, true), ok_put());
    assert_eq!(r.m.log_time, 2_500);
}

#[test]
fn compare_and_swap_and_delete() {
    let mut r = Replica::new(1);
    assert!(r.reconfigure(&config(1, [1; N])));
    let key = key_of(2);
    let cas = |r: &mut Replica, expected: Option<&[u8]>, new: Option<&[u8]>| {
        r.seq += 1;
        let o = r.apply(Kind::CompareAndSwap(v1::CompareAndSwapRequest {
            header: r.header(r.seq, r.seq, true),
            key: key.clone(),
            expected: expected.map(<[u8]>::to_vec),
            new_value: new.map(<[u8]>::to_vec),
        }));
        match o {
            Outcome::Kv(v1::KvReply {
                reply: Some(Reply::CompareAndSwap(c)),
            }) => (c.swapped, c.current),
            o => panic!("{o:?}"),
        }
    };
    assert_eq!(cas(&mut r, None, Some(b"1")), (true, None));
    assert_eq!(cas(&mut r, None, Some(b"2")), (false, Some(b"1".to_vec())));
    assert_eq!(cas(&mut r, Some(b"1"), Some(b"2")), (true, None));
    assert_eq!(cas(&mut r, Some(b"2"), None), (true, None));
    assert_eq!(r.get(&key), None);
    r.seq += 1;
    let del = r.apply(Kind::Delete(v1::DeleteRequest {
        header: r.header(r.seq, r.seq, true),
        key: key.clone(),
    }));
    assert_eq!(
        del,
        Outcome::Kv(v1::KvReply {
            reply: Some(Reply::Delete(v1::DeleteResponse { existed: false }))
        })
    );
}

#[test]
fn the_state_survives_reopen_and_moves_by_snapshot() {
    let mut r = Replica::new(1);
    assert!(r.reconfigure(&config(1, [1; N])));
    for i in 0..100u32 {
        r.put(format!("k{i}").as_bytes(), &[i as u8; 10]);
    }
    assert!(r.reconfigure(&config(2, [1, 1, 2, 1])));
    let store = r.m.store.as_ref().clone();
    let applied = r.slot;
    let reopened = Replica::on(1, store.clone(), MachineOptions::default());
    assert_eq!(reopened.m.applied.load(Ordering::Relaxed), applied);
    assert_eq!(reopened.m.config().num, 2);
    assert_eq!(reopened.state(2), ShardState::Leaving { to: 2 });
    assert_eq!(
        reopened.m.sessions.len(),
        r.m.sessions.len() - sessions_in(&r, 2)
    );

    let (index, chunks) = r.m.snapshot();
    assert_eq!(index, applied);
    let mut other = Replica::new(1);
    other.m.restore(index, &mut chunks.map(Ok)).unwrap();
    assert_eq!(other.m.store.dump(), store.dump());
    assert_eq!(other.m.config().num, 2);
    // A transfer that breaks off keeps the old state.
    let (index, chunks) = r.m.snapshot();
    let mut third = Replica::new(1);
    let mut broken = chunks
        .take(1)
        .map(Ok)
        .chain(std::iter::once(Err(TransferError("cut".to_string()))));
    assert!(matches!(
        third.m.restore(index, &mut broken),
        Err(RestoreError::Transfer(_))
    ));
    assert_eq!(third.m.config().num, 0);
    assert!(third.m.store.is_empty());
}

fn sessions_in(r: &Replica, shard: u32) -> usize {
    r.m.sessions
        .iter()
        .filter(|((s, _), _)| *s == shard)
        .count()
}

#[test]
fn garbage_commands_are_refused_without_effect() {
    let mut r = Replica::new(1);
    assert!(r.reconfigure(&config(1, [1; N])));
    let before = r.m.store.dump();
    let o = r.m.apply(r.slot, &[0xff, 0x00, 0x13]);
    assert_eq!(refusal_reason(&o), Some(ErrorReason::InvalidArgument));
    let mut after = r.m.store.dump();
    after.remove(keys::APPLIED);
    let mut before = before;
    before.remove(keys::APPLIED);
    assert_eq!(before, after);
}

#[test]
fn a_snapshot_that_decodes_but_does_not_load_is_refused_without_effect() {
    let mut source = Replica::new(1);
    assert!(source.reconfigure(&config(1, [1; N])));
    source.put(&key_of(0), b"v");
    let (index, chunks) = source.m.snapshot();
    // Damage the metadata inside a well-formed chunk: the shard states no longer match.
    let damaged: Vec<Vec<u8>> = chunks
        .map(|c| {
            let mut chunk = SnapshotChunk::decode(c.as_slice()).unwrap();
            for kv in &mut chunk.entries {
                if kv.key == keys::SHARD_STATES {
                    kv.value = encode_states(&[ShardState::Serving]);
                }
            }
            chunk.encode_to_vec()
        })
        .collect();
    let mut target = Replica::new(1);
    assert!(target.reconfigure(&config(1, [1; N])));
    target.put(&key_of(1), b"mine");
    let before = target.m.store.dump();
    let err = target
        .m
        .restore(index, &mut damaged.into_iter().map(Ok))
        .unwrap_err()
        .to_string();
    assert!(err.contains("shard states"), "{err}");
    assert_eq!(target.m.store.dump(), before);
    assert_eq!(target.m.config().num, 1);
    assert_eq!(target.m.shard_states().len(), N);
    // A snapshot labelled with another index than the state it holds is refused too.
    let (index, chunks) = source.m.snapshot();
    let err = target
        .m
        .restore(index + 5, &mut chunks.map(Ok))
        .unwrap_err()
        .to_string();
    assert!(err.contains("labelled"), "{err}");
    assert_eq!(target.m.store.dump(), before);
}

/// Restores `source`'s snapshot, its entries damaged by `damage`, into a replica holding data
/// of its own; checks that the restore is refused without effect and returns the error.
fn refused_snapshot(source: &Replica, damage: impl FnOnce(&mut Vec<v1::KeyValue>)) -> String {
    let (index, chunks) = source.m.snapshot();
    let mut entries: Vec<v1::KeyValue> = chunks
        .flat_map(|c| SnapshotChunk::decode(c.as_slice()).unwrap().entries)
        .collect();
    damage(&mut entries);
    let chunk = SnapshotChunk { entries }.encode_to_vec();
    let mut target = Replica::new(1);
    assert!(target.reconfigure(&config(1, [1; N])));
    target.put(&key_of(1), b"mine");
    let before = target.m.store.dump();
    let err = target
        .m
        .restore(index, &mut std::iter::once(Ok(chunk)))
        .unwrap_err()
        .to_string();
    assert_eq!(target.m.store.dump(), before, "{err}");
    assert_eq!(target.m.shard_states().len(), N, "{err}");
    // The snapshot as it was made still installs.
    let (index, chunks) = source.m.snapshot();
    target.m.restore(index, &mut chunks.map(Ok)).unwrap();
    assert_eq!(target.m.store.dump(), source.m.store.dump());
    err
}

#[test]
fn a_snapshot_with_keys_out_of_order_is_refused_without_effect() {
    let mut source = Replica::new(1);
    assert!(source.reconfigure(&config(1, [1; N])));
    source.put(&key_of(0), b"v");
    // A metadata entry repeated after the data, where the metadata has already been checked:
    // the shard states it carries would not match the configuration.
    let err = refused_snapshot(&source, |entries| {
        entries.push(v1::KeyValue {
            key: keys::SHARD_STATES.to_vec(),
            value: encode_states(&[ShardState::Serving]),
        })
    });
    assert!(err.contains("out of order"), "{err}");
    let err = refused_snapshot(&source, |entries| {
        let first = entries[0].clone();
        entries.insert(1, first);
    });
    assert!(err.contains("out of order"), "{err}");
}

#[test]
fn a_snapshot_with_a_malformed_session_key_is_refused_without_effect() {
    let mut source = Replica::new(1);
    assert!(source.reconfigure(&config(1, [1; N])));
    source.put(&key_of(0), b"v");
    let session_at = |entries: &Vec<v1::KeyValue>| {
        entries
            .iter()
            .position(|kv| keys::in_session_range(&kv.key))
            .expect("the snapshot holds a session")
    };
    // A session key one byte too long, still in key order.
    let err = refused_snapshot(&source, |entries| {
        let at = session_at(entries);
        entries[at].key.push(0);
    });
    assert!(err.contains("does not name"), "{err}");
    // A session filed under another client.
    let err = refused_snapshot(&source, |entries| {
        let at = session_at(entries);
        *entries[at].key.last_mut().unwrap() ^= 1;
    });
    assert!(err.contains("does not name"), "{err}");
}

fn shard_ref(shard: u32, config_num: u64) -> ShardRef {
    ShardRef { shard, config_num }
}

#[test]
fn rule6_a_shard_is_taken_back_only_if_its_last_chunk_was_never_handed_out() {
    let mut a = Replica::new(1);
    assert!(a.reconfigure(&config(1, [1; N])));
    let (k0, k1) = (key_of(0), key_of(1));
    a.put(&k0, b"zero");
    a.put(&k1, b"one");
    // Config 2 gives shards 0 and 1 to group 2, which never pulls shard 0 and takes shard 1.
    assert!(a.reconfigure(&config(2, [2, 2, 1, 1])));
    let mut b = Replica::new(2);
    assert!(b.reconfigure(&config(1, [1; N])));
    assert!(b.reconfigure(&config(2, [2, 2, 1, 1])));
    assert_eq!(a.apply(Kind::Grant(shard_ref(1, 2))), Outcome::Done(true));
    assert_eq!(a.state(1), ShardState::Handed { to: 2 });
    assert_eq!(
        a.apply(Kind::Grant(shard_ref(1, 2))),
        Outcome::Done(true),
        "idempotent"
    );
    b.pull_from(&a, 1, 1 << 20);
    // Handed out: never taken back. Not handed out: taken back, once.
    assert_eq!(
        a.apply(Kind::Reclaim(shard_ref(1, 2))),
        Outcome::Done(false)
    );
    assert_eq!(
        a.apply(Kind::Reclaim(shard_ref(0, 3))),
        Outcome::Done(false),
        "wrong config"
    );
    assert_eq!(a.apply(Kind::Reclaim(shard_ref(0, 2))), Outcome::Done(true));
    assert_eq!(a.apply(Kind::Reclaim(shard_ref(0, 2))), Outcome::Done(true));
    assert_eq!(a.state(0), ShardState::Reclaimed);
    // ... after which its last chunk is never handed out.
    assert_eq!(a.apply(Kind::Grant(shard_ref(0, 2))), Outcome::Done(false));
    assert!(a.m.view.read().reclaimed.contains(&(0, 2)));
    // Not served while the configuration says it is group 2's; the group may move on once
    // group 2 confirmed shard 1.
    assert_eq!(
        refusal_reason(&a.put(&k0, b"x")),
        Some(ErrorReason::WrongGroup)
    );
    assert!(
        !a.reconfigure(&config(3, [1, 2, 1, 1])),
        "shard 1 not deleted yet"
    );
    assert_eq!(
        a.apply(Kind::DeleteShard(shard_ref(1, 2))),
        Outcome::Done(true)
    );
    // The puller of shard 0 abandons it, and settles.
    assert_eq!(b.apply(Kind::Abandon(shard_ref(0, 2))), Outcome::Done(true));
    assert_eq!(b.state(0), ShardState::Absent);
    assert_eq!(
        b.apply(Kind::Abandon(shard_ref(1, 2))),
        Outcome::Done(false),
        "installed"
    );
    // Config 3 gives shard 0 back to group 1: served again, with its data and its session.
    let store = a.m.store.as_ref().clone();
    let mut a = Replica::on(1, store, MachineOptions::default());
    assert_eq!(a.state(0), ShardState::Reclaimed, "survives a reopen");
    assert!(a.m.view.read().reclaimed.contains(&(0, 2)));
    a.seq = 1;
    assert!(a.reconfigure(&config(3, [1, 2, 1, 1])));
    assert_eq!(a.state(0), ShardState::Serving);
    assert_eq!(a.get(&k0), Some(b"zero".to_vec()));
    assert_eq!(
        a.put_seq(&k0, b"zero", 1, false),
        ok_put(),
        "a retry replays"
    );
    assert_eq!(a.put(&k0, b"again"), ok_put());
    assert_eq!(b.state(1), ShardState::Notifying { from: 1 });
    assert_eq!(
        b.apply(Kind::Notified(shard_ref(1, 2))),
        Outcome::Done(true)
    );
    assert!(b.reconfigure(&config(3, [1, 2, 1, 1])));
    assert_eq!(b.state(0), ShardState::Absent);
    assert_eq!(b.state(1), ShardState::Serving);
}

#[test]
fn a_shard_taken_back_goes_on_to_the_next_owner_from_its_holder() {
    let mut a = Replica::new(1);
    assert!(a.reconfigure(&config(1, [1; N])));
    let k0 = key_of(0);
    a.put(&k0, b"zero");
    assert!(a.reconfigure(&config(2, [2, 1, 1, 1])));
    assert_eq!(a.apply(Kind::Reclaim(shard_ref(0, 2))), Outcome::Done(true));
    // Config 3 gives it to group 3 (group 2 left): frozen for group 3 here...
    let three = Config {
        groups: BTreeMap::from([(1, vec!["g1:1".into()]), (3, vec!["g3:1".into()])]).into(),
        ..config(3, [3, 1, 1, 1])
    };
    assert!(a.reconfigure(&three));
    assert_eq!(a.state(0), ShardState::Leaving { to: 3 });
    // ... and group 3, which sees group 2 as the previous owner, installs it from group 1.
    let mut c = Replica::new(3);
    assert!(c.reconfigure(&config(1, [1; N])));
    assert!(c.reconfigure(&config(2, [2, 1, 1, 1])));
    assert!(c.reconfigure(&three));
    assert_eq!(
        c.state(0),
        ShardState::Pulling {
            from: 2,
            token: Vec::new(),
            pieces: 0
        }
    );
    let chunk = read_chunk(a.m.store.as_ref(), 0, 3, &[], 1 << 20).unwrap();
    assert!(chunk.done);
    let install = InstallChunk {
        after: Vec::new(),
        chunk: Some(chunk),
        source: 1,
    };
    assert_eq!(c.apply(Kind::Install(install)), Outcome::Done(true));
    assert_eq!(c.state(0), ShardState::Notifying { from: 1 });
    assert_eq!(c.get(&k0), Some(b"zero".to_vec()));
}

/// What a test's subscriber logs.
#[derive(Clone, Default)]
struct Log(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn reconfiguration_steps_apply_in_a_span_and_client_mutations_in_none() {
    let log = Log::default();
    let writer = log.clone();
    // Every span made is logged as it is created (a "new" line).
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        // Callsites registered by tests on other threads, with no subscriber, between this
        // one's creation and its first use could be cached as uninteresting: ask again.
        tracing::callsite::rebuild_interest_cache();
        let mut r = Replica::new(1);
        assert!(r.reconfigure(&config(1, [1; N])));
        assert_eq!(r.put(&key_of(0), b"v"), ok_put());
        // Shard 3 assigned to nobody: its data is dropped, with a warning.
        assert!(r.reconfigure(&config(2, [1, 1, 1, 0])));
        assert_eq!(
            r.apply(Kind::Notified(shard_ref(3, 2))),
            Outcome::Done(false)
        );
    });
    let text = String::from_utf8(log.0.lock().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let made: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.ends_with(" new"))
        .collect();
    assert_eq!(
        made.len(),
        3,
        "one span per reconfiguration step, none for the put:\n{text}"
    );
    assert!(
        made[0].contains("reconfig{step=\"apply\" command=\"reconfigure\" gid=1 config=1}"),
        "{text}"
    );
    assert!(
        made[2].contains("reconfig{step=\"apply\" command=\"notified\" gid=1 shard=3 config=2}"),
        "{text}"
    );
    // A line logged while the step applies carries the step's context.
    let dropped = lines
        .iter()
        .find(|l| l.contains("shard unassigned by the master"))
        .unwrap_or_else(|| panic!("the warning is logged:\n{text}"));
    assert!(
        dropped.contains("reconfig{step=\"apply\" command=\"reconfigure\" gid=1 config=2}: ")
            && dropped.contains("shard=3"),
        "{dropped}"
    );
}
