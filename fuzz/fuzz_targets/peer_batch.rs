//! The Paxos peer service's input path, as an authenticated peer could drive it: arbitrary
//! bytes, cut into length-prefixed batches, each decoded as a `PaxosBatch` the way the gRPC
//! service decodes it (prost), its messages converted by `strata_node::wire::from_proto` and
//! stepped into a replica of a 3-member group (`Replica::step`), with ticks and `take_ready`
//! in between. Must never panic, and what the replica asks to persist must stay sane: the
//! promised ballot never goes down, and a slot persisted as chosen never changes its value.
//! (A peer that is a real member can of course vote; it cannot make one replica contradict
//! itself.)
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use strata_paxos::{Ballot, Config, Replica, Slot, Value};
use strata_rpc::v1;

/// Batches per input, at most.
const MAX_BATCHES: usize = 64;

fuzz_target!(|data: &[u8]| {
    let mut cfg = Config::new(1, vec![1, 2, 3]);
    cfg.seed = 7;
    let Ok(mut replica) = Replica::new(cfg) else {
        return;
    };
    let mut promised = Ballot::default();
    let mut chosen: BTreeMap<Slot, Value> = BTreeMap::new();
    let mut rest = data;
    for _ in 0..MAX_BATCHES {
        let Some((&len, tail)) = rest.split_first() else {
            break;
        };
        let len = usize::from(len).min(tail.len());
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        let Ok(batch) = v1::PaxosBatch::decode(bytes) else {
            replica.tick();
            continue;
        };
        for m in batch.messages {
            if let Some(message) = strata_node::wire::from_proto(batch.from, batch.to, m) {
                replica.step(message);
            }
        }
        replica.tick();
        let ready = replica.take_ready();
        if let Some(b) = ready.promised {
            assert!(b >= promised, "promised ballot went down: {promised:?} -> {b:?}");
            promised = b;
        }
        for e in &ready.entries {
            if e.chosen {
                if let Some(v) = chosen.get(&e.slot) {
                    assert_eq!(v, &e.value, "slot {} chosen twice with different values", e.slot);
                }
                chosen.insert(e.slot, e.value.clone());
            }
        }
        for (slot, value) in &ready.committed {
            if let Some(v) = chosen.get(slot) {
                assert_eq!(v, value, "slot {slot} committed with another value than chosen");
            }
        }
    }
});
