//! Strata's wire protocol: the gRPC services of every process, and the rules all of them share.
//!
//! - [`v1`]: the messages, clients and servers generated from `proto/strata/v1/*.proto`
//!   (package `strata.v1`) by `build.rs`, with no system `protoc` (`protox` parses the files).
//!   Services: [`ShardMaster`](v1::shard_master_server::ShardMaster) (`master.proto`),
//!   [`ShardKv`](v1::shard_kv_server::ShardKv) (`kv.proto`),
//!   [`ShardMigration`](v1::shard_migration_server::ShardMigration) (`migration.proto`),
//!   [`PaxosPeer`](v1::paxos_peer_server::PaxosPeer) (`paxos.proto`) and
//!   [`NodeStatus`](v1::node_status_server::NodeStatus) (`node.proto`); the error detail is in
//!   `error.proto`.
//! - [`shard_for_key`]: which shard a key belongs to.
//! - [`config`]: [`Config`], the configuration (which group owns each shard, the groups'
//!   servers) shared by the master, the shard servers and the clients, with [`Gid`],
//!   [`ShardId`] and its wire conversion.
//! - [`error`]: how failures map to gRPC status codes, with an [`v1::ErrorDetail`] in the
//!   status details.
//! - [`limits`]: the table of limits every layer is sized by (keys, values, commands, Paxos
//!   messages, chunks, configurations), and clients and servers built with the message size
//!   limit ([`MAX_MESSAGE_BYTES`]).
//!
//! This crate depends on no other crate of the workspace: conversions between these messages
//! and a crate's own types live in that crate (the configuration, which every crate above
//! shares, is the one type defined here).
//!
//! # Example
//!
//! ```
//! use strata_rpc::{error, shard_for_key, v1};
//!
//! // Route a key.
//! let shard = shard_for_key(b"user:42", 64);
//! assert!(shard < 64);
//!
//! // A server answers "not the leader, try replica 2 at 10.0.0.2:7000"...
//! let status = error::wrong_leader(Some(2), "10.0.0.2:7000");
//! assert_eq!(status.code(), tonic::Code::Unavailable);
//!
//! // ...and the client reads the hint back.
//! let detail = error::error_detail(&status).expect("a Strata error");
//! assert_eq!(detail.reason(), v1::ErrorReason::WrongLeader);
//! assert_eq!(detail.leader_hint.unwrap().address, "10.0.0.2:7000");
//! ```

#![warn(missing_docs)]

pub mod codec;
pub mod config;
pub mod error;
pub mod limits;
pub mod probe;
pub mod tls;

/// The generated protocol, package `strata.v1`.
///
/// Messages are at the top (`v1::PutRequest`, `v1::Config`, ...), oneofs in a module named
/// after their message (`v1::paxos_message::Body`), and each service has a client module
/// (`v1::shard_kv_client::ShardKvClient`) and a server module (`v1::shard_kv_server::{ShardKv,
/// ShardKvServer}`). Build clients and servers through [`limits`] so that the
/// message size limits are set. Proto `map`s are `BTreeMap`s (deterministic iteration); `bytes`
/// are `Vec<u8>`; enum fields are `i32` with typed getters (`detail.reason()`); `optional`
/// scalars and message fields are `Option`s.
// Generated code: clean today; the allows keep a newer clippy or rustdoc lint on the
// generated items (or on proto comments turned into docs) from failing our builds.
#[allow(
    clippy::all,
    clippy::pedantic,
    rustdoc::broken_intra_doc_links,
    rustdoc::invalid_html_tags,
    rustdoc::bare_urls
)]
pub mod v1 {
    tonic::include_proto!("strata.v1");
    include!(concat!(env!("OUT_DIR"), "/methods.rs"));
}

pub use config::{Config, Gid, ShardId, UNASSIGNED};
pub use limits::{
    ENGINE_MAX_KEY_BYTES, ENGINE_MAX_VALUE_BYTES, KEY_PREFIX_HEADROOM, LOG_ENTRY_HEADROOM,
    MAX_ADDRESSES_PER_GROUP, MAX_ADDRESS_BYTES, MAX_COMMAND_BYTES, MAX_GROUPS, MAX_KEY_BYTES,
    MAX_MESSAGE_BYTES, MAX_PAXOS_BATCH_BYTES, MAX_SHARD_CHUNK_BYTES, MAX_VALUE_BYTES,
};

/// Length of a client id (`client_id` fields): 128 random bits.
pub const CLIENT_ID_BYTES: usize = 16;

/// The shard a key belongs to: `crc32c(key) % num_shards` (CRC-32C, Castagnoli polynomial, as
/// in iSCSI: the check value of `"123456789"` is `0xE306_9283`).
///
/// Every client and server routes with this function and nothing else. The number of shards is
/// fixed when the cluster is created.
///
/// # Panics
///
/// If `num_shards` is 0.
pub fn shard_for_key(key: &[u8], num_shards: u32) -> u32 {
    assert!(num_shards > 0, "a cluster has at least one shard");
    key_hash(key) % num_shards
}

/// The hash a key's shard is derived from: its shard is `key_hash(key) % num_shards`.
pub fn key_hash(key: &[u8]) -> u32 {
    crc32c::crc32c(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32C bit by bit, reflected, polynomial 0x82F63B78: independent of the `crc32c`
    /// crate's table-driven and hardware paths.
    fn crc32c_bitwise(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                let mask = (crc & 1).wrapping_neg();
                crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
            }
        }
        !crc
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c_bitwise(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(shard_for_key(b"123456789", u32::MAX), 0xE306_9283);
    }

    /// RFC 3720 (iSCSI) CRC-32C vectors, for the reference implementation itself.
    #[test]
    fn crc32c_rfc3720_vectors() {
        let ascending: Vec<u8> = (0u8..32).collect();
        let vectors: &[(&[u8], u32)] = &[
            (&[0u8; 32], 0x8A91_36AA),
            (&[0xFFu8; 32], 0x62A8_AB43),
            (&ascending, 0x46DD_794E),
        ];
        for &(data, crc) in vectors {
            assert_eq!(crc32c_bitwise(data), crc);
            assert_eq!(crc32c::crc32c(data), crc);
        }
    }

    /// Fixed vectors (computed by a separate bit-by-bit implementation): a change of routing
    /// would silently misplace every stored key.
    #[test]
    fn shard_vectors() {
        let all_bytes: Vec<u8> = (0..=255u8).collect();
        let vectors: &[(&[u8], u32, u32)] = &[
            (b"", 1, 0),
            (b"", 64, 0),   // crc32c("") = 0
            (b"a", 64, 48), // 0xC1D04330
            (b"123456789", 64, 3),
            (b"123456789", 10, 5),
            (b"123456789", 4096, 643),
            (b"user:42", 64, 45),     // 0x35C33CED
            (b"key-0", 64, 18),       // 0x7AFCF8D2
            (b"key-1", 1000, 9),      // 0x88977BD1
            (b"hello world", 64, 42), // 0xC99465AA
            (&all_bytes, 4096, 2123), // 0x9C44184B
            (&[0u8; 32], 7, 2),       // 0x8A9136AA
        ];
        for &(key, n, shard) in vectors {
            assert_eq!(shard_for_key(key, n), shard, "key {key:?} n {n}");
            assert_eq!(crc32c_bitwise(key) % n, shard, "key {key:?} n {n}");
        }
    }

    #[test]
    fn shard_matches_bitwise_crc_on_many_keys() {
        for n in [1u32, 10, 64, 1000, 4096] {
            for i in 0u32..2000 {
                let key = format!("key-{i}").into_bytes();
                let shard = shard_for_key(&key, n);
                assert!(shard < n);
                assert_eq!(shard, crc32c_bitwise(&key) % n);
            }
        }
    }

    #[test]
    #[should_panic(expected = "at least one shard")]
    fn zero_shards_panics() {
        shard_for_key(b"k", 0);
    }
}
