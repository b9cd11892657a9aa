//! Encode/decode round trips of operations, configs and snapshots, and decoders fed garbage:
//! random bytes, truncations, bit flips and misordered chunk streams give errors, never panics.

use std::collections::BTreeMap;

use proptest::prelude::*;
use strata_shardmaster::{
    decode_config, encode_config, DecodeError, Gid, MasterState, Op, OpError, SnapshotRestore,
    UNASSIGNED,
};

fn op() -> impl Strategy<Value = Op> {
    let server = "[a-z0-9.:é]{0,12}";
    prop_oneof![
        prop::collection::btree_map(any::<u64>(), prop::collection::vec(server, 0..4), 0..6)
            .prop_map(Op::Join),
        prop::collection::vec(any::<u64>(), 0..8).prop_map(Op::Leave),
        (any::<u32>(), any::<u64>()).prop_map(|(shard, gid)| Op::Move { shard, gid }),
        prop::option::of(any::<u64>()).prop_map(Op::Query),
    ]
}

/// A state reached by a random sequence of operations from several clients.
fn state() -> impl Strategy<Value = MasterState> {
    (
        prop_oneof![Just(1usize), Just(10), Just(64), Just(1000)],
        prop::collection::vec((0..4u128, 0..3u8, 1..30u64, any::<u32>()), 0..40),
    )
        .prop_map(|(n, steps)| {
            let mut master = MasterState::new(n).unwrap();
            let mut seqs = BTreeMap::new();
            for (client, kind, gid, shard) in steps {
                let op = match kind {
                    0 => Op::join([(gid, vec![format!("h{gid}:1")])]).unwrap(),
                    1 => Op::Leave(vec![gid]),
                    _ => Op::Move {
                        shard: shard % (n as u32 + 1),
                        gid,
                    },
                };
                let seq = seqs.entry(client).or_insert(0u64);
                *seq += 1;
                let _ = master.apply(client << 100 | client, *seq, op);
            }
            master
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ops_round_trip(op in op()) {
        prop_assert_eq!(Op::decode(&op.encode()), Ok(op));
    }

    #[test]
    fn op_decode_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(op) = Op::decode(&bytes) {
            // Whatever decodes is canonical: it encodes back to the same bytes.
            prop_assert_eq!(op.encode(), bytes);
        }
    }

    #[test]
    fn op_decode_never_panics_on_damaged_encodings(op in op(), at in any::<prop::sample::Index>(), bit in 0..8u8, cut in any::<prop::sample::Index>()) {
        let bytes = op.encode();
        let mut flipped = bytes.clone();
        let i = at.index(flipped.len());
        flipped[i] ^= 1 << bit;
        let _ = Op::decode(&flipped);
        let cut = cut.index(bytes.len());
        prop_assert!(Op::decode(&bytes[..cut]).is_err(), "a strict prefix decoded");
    }

    #[test]
    fn snapshots_round_trip(master in state()) {
        let chunks: Vec<Vec<u8>> = master.snapshot_chunks().collect();
        // One header, one chunk per config, then the sessions.
        prop_assert!(chunks.len() > master.configs().len());
        prop_assert_eq!(MasterState::restore(&chunks), Ok(master.clone()));
        for config in master.configs() {
            prop_assert_eq!(decode_config(&encode_config(config)), Ok(config.clone()));
        }
    }

    #[test]
    fn restore_never_panics_on_damaged_snapshots(
        master in state(),
        chunk in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        bit in 0..8u8,
        cut in any::<prop::sample::Index>(),
    ) {
        let chunks: Vec<Vec<u8>> = master.snapshot_chunks().collect();
        let c = chunk.index(chunks.len());

        let mut flipped = chunks.clone();
        let i = at.index(flipped[c].len());
        flipped[c][i] ^= 1 << bit;
        if let Ok(restored) = MasterState::restore(&flipped) {
            // A flip the checks cannot see still yields a well-formed state.
            for (n, config) in restored.configs().iter().enumerate() {
                prop_assert_eq!(config.num, n as u64);
                prop_assert!(config.shards.iter().all(|g| *g == UNASSIGNED || config.groups.contains_key(g)));
            }
        }

        let mut truncated = chunks.clone();
        let len = truncated[c].len();
        truncated[c].truncate(cut.index(len));
        prop_assert!(MasterState::restore(&truncated).is_err(), "a truncated chunk restored");

        // Dropping any chunk, or stopping early, is detected.
        let mut dropped = chunks.clone();
        dropped.remove(c);
        prop_assert!(MasterState::restore(&dropped).is_err(), "a snapshot missing chunk {} restored", c);
    }

    #[test]
    fn restore_never_panics_on_random_chunks(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 0..6)) {
        let _ = MasterState::restore(&chunks);
    }

    #[test]
    fn config_decode_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_config(&bytes);
    }
}

#[test]
fn snapshot_chunks_are_lazy_and_one_per_config() {
    let mut master = MasterState::new(64).unwrap();
    for gid in 1..=5u64 {
        master
            .apply(1, gid, Op::join([(gid, vec!["a:1".into()])]).unwrap())
            .unwrap();
    }
    let mut chunks = master.snapshot_chunks();
    let header = chunks.next().unwrap();
    assert_eq!(header[0], 0x01);
    assert_eq!(&header[1..5], b"SMS1");
    let rest: Vec<Vec<u8>> = chunks.collect();
    // Six configs, then one sessions chunk.
    assert_eq!(rest.len(), 7);
    assert!(rest[..6].iter().all(|c| c[0] == 0x02));
    assert_eq!(rest[6][0], 0x03);
}

#[test]
fn sessions_are_split_into_bounded_chunks() {
    let mut master = MasterState::new(4).unwrap();
    for client in 0..2500u128 {
        master.apply(client, 1, Op::Query(None)).unwrap();
    }
    let chunks: Vec<Vec<u8>> = master.snapshot_chunks().collect();
    assert_eq!(chunks.len(), 1 + 1 + 3);
    assert_eq!(MasterState::restore(&chunks), Ok(master));
}

#[test]
fn restore_refuses_misordered_or_incomplete_streams() {
    let mut master = MasterState::new(8).unwrap();
    master
        .apply(1, 1, Op::join([(3, vec!["a:1".into()])]).unwrap())
        .unwrap();
    master.apply(1, 2, Op::Leave(vec![3])).unwrap();
    let chunks: Vec<Vec<u8>> = master.snapshot_chunks().collect();
    assert_eq!(chunks.len(), 5);

    assert_eq!(
        MasterState::restore(Vec::<Vec<u8>>::new()),
        Err(DecodeError::Truncated)
    );
    assert_eq!(
        MasterState::restore(&chunks[..4]),
        Err(DecodeError::Truncated)
    );
    let swapped = [&chunks[0], &chunks[2], &chunks[1], &chunks[3], &chunks[4]];
    assert!(matches!(
        MasterState::restore(swapped),
        Err(DecodeError::Invalid(_))
    ));
    let no_header = &chunks[1..];
    assert!(matches!(
        MasterState::restore(no_header),
        Err(DecodeError::Invalid(_))
    ));
    let two_headers = [&chunks[0], &chunks[0]];
    assert!(matches!(
        MasterState::restore(two_headers),
        Err(DecodeError::Invalid(_))
    ));
    let sessions_first = [&chunks[0], &chunks[4]];
    assert!(matches!(
        MasterState::restore(sessions_first),
        Err(DecodeError::Invalid(_))
    ));
    let mut extra = chunks.clone();
    extra.push(chunks[3].clone());
    assert!(MasterState::restore(&extra).is_err());

    // Pushing chunk by chunk works the same.
    let mut restore = SnapshotRestore::new();
    for chunk in &chunks {
        restore.push(chunk).unwrap();
    }
    assert_eq!(restore.finish(), Ok(master));
}

#[test]
fn restore_refuses_a_config_from_another_cluster_size() {
    let small = MasterState::new(8).unwrap();
    let big = MasterState::new(16).unwrap();
    let mut chunks: Vec<Vec<u8>> = small.snapshot_chunks().collect();
    chunks[1] = big.snapshot_chunks().nth(1).unwrap();
    assert!(matches!(
        MasterState::restore(&chunks),
        Err(DecodeError::Invalid(_))
    ));
}

#[test]
fn decode_errors_are_specific() {
    assert_eq!(Op::decode(&[]), Err(DecodeError::Truncated));
    assert_eq!(
        Op::decode(&[0x09]),
        Err(DecodeError::UnknownTag {
            what: "op",
            tag: 0x09
        })
    );
    assert_eq!(
        Op::decode(&[0x04, 0x00]),
        Err(DecodeError::TrailingBytes(1))
    );
    // Move to shard 2^32.
    assert!(matches!(
        Op::decode(&[0x03, 0x80, 0x80, 0x80, 0x80, 0x10, 0x01]),
        Err(DecodeError::Invalid(_))
    ));
    // Join with a server name that is not UTF-8.
    assert_eq!(
        Op::decode(&[0x01, 0x01, 0x05, 0x01, 0x02, 0xff, 0xfe]),
        Err(DecodeError::BadUtf8)
    );
}

#[test]
fn decoded_ops_are_validated_when_applied() {
    // Structure is the decoder's business; meaning is apply's.
    let bytes = Op::Join(BTreeMap::from([(0 as Gid, vec![])])).encode();
    let op = Op::decode(&bytes).unwrap();
    let mut master = MasterState::new(4).unwrap();
    assert_eq!(master.apply(1, 1, op), Err(OpError::ReservedGid));
    assert_eq!(master.configs().len(), 1);
}
