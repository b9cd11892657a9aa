//! The limits of the service, in one table, and clients and servers built with them.
//!
//! # The table
//!
//! Every request a client or operator can send is checked against these limits once, at the
//! edge (the gRPC service), and refused with `INVALID_ARGUMENT` naming the limit before it
//! reaches a Paxos log. Every layer below is sized for the largest request admitted, with the
//! internal prefixes, headers and envelopes accounted for, so that an admitted request can
//! always be logged, replicated, applied, snapshotted and migrated. The compile-time
//! assertions at the end of this table tie the numbers together.
//!
//! | limit | value | what it bounds |
//! |---|---|---|
//! | [`MAX_KEY_BYTES`] | 63 KiB | a client's key (the engine's 64 KiB less [`KEY_PREFIX_HEADROOM`] for the shard prefix a server adds) |
//! | [`MAX_VALUE_BYTES`] | 16 MiB − 128 KiB | a value, also after an `Append` |
//! | [`MAX_COMMAND_BYTES`] | 16 MiB − 64 KiB | one encoded mutation request (a CAS carries two values: together they must fit) |
//! | [`LOG_ENTRY_HEADROOM`] | 64 KiB | proposer envelope, command stamp and Paxos entry encoding around one command |
//! | [`MAX_PAXOS_BATCH_BYTES`] | 8 MiB | Paxos messages packed into one peer RPC (a larger single message travels alone) |
//! | [`MAX_SHARD_CHUNK_BYTES`] | 1 MiB | one chunk of a shard migration or snapshot (larger values are split) |
//! | [`MAX_MESSAGE_BYTES`] | 64 MiB | any gRPC message, sent or received |
//! | [`MAX_ADDRESSES_PER_GROUP`] | 15 | servers named for one replica group in a `Join` |
//! | [`MAX_ADDRESS_BYTES`] | 255 | one `host:port` address |
//! | [`MAX_GROUPS`] | 1024 | replica groups in one configuration |
//!
//! # Clients and servers
//!
//! tonic defaults to 4 MiB for decoding (and unlimited encoding), below our values.
//! Every generated client and server must therefore be built with
//! `.max_decoding_message_size(MAX_MESSAGE_BYTES).max_encoding_message_size(MAX_MESSAGE_BYTES)`;
//! the functions here do exactly that, and nothing else:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use strata_rpc::{limits, v1};
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:7000")
//!     .connect()
//!     .await?;
//! let mut kv = limits::kv_client(channel);
//! let reply = kv.get(v1::GetRequest { key: b"k".to_vec(), config_num: 1 }).await?;
//! # let _ = reply;
//! # Ok(())
//! # }
//! ```
//!
//! A server: `Server::builder().add_service(limits::kv_server(my_service))`.

/// The storage engine's largest key (`strata::MAX_KEY_SIZE`, checked equal where both crates
/// meet): whatever a server stores must fit.
pub const ENGINE_MAX_KEY_BYTES: usize = 64 << 10;

/// The storage engine's largest value (`strata::MAX_VALUE_SIZE`, checked equal where both
/// crates meet): a Paxos log entry and a stored value must fit.
pub const ENGINE_MAX_VALUE_BYTES: usize = 16 << 20;

/// Bytes a server may add in front of a client's key when it stores it (namespace, shard id).
pub const KEY_PREFIX_HEADROOM: usize = 1 << 10;

/// Largest key a client may send: 63 KiB, so that with a server's prefix it still fits the
/// engine. Larger keys are refused with `INVALID_ARGUMENT`.
pub const MAX_KEY_BYTES: usize = ENGINE_MAX_KEY_BYTES - KEY_PREFIX_HEADROOM;

/// Bytes around one command in the Paxos log: the proposer's envelope, the command's stamp and
/// kind, and the log entry's own encoding (slot, ballot, lengths).
pub const LOG_ENTRY_HEADROOM: usize = 64 << 10;

/// Largest encoded mutation request (`prost::Message::encoded_len` of a Put, Append, Delete or
/// CompareAndSwap request): 16 MiB − 64 KiB, so that the log entry carrying it alone fits the
/// engine.
pub const MAX_COMMAND_BYTES: usize = ENGINE_MAX_VALUE_BYTES - LOG_ENTRY_HEADROOM;

/// Largest value: 16 MiB − 128 KiB, so that a Put of the largest key and value is within
/// [`MAX_COMMAND_BYTES`]. It bounds the value an `Append` produces too. Larger values are
/// refused with `INVALID_ARGUMENT`.
pub const MAX_VALUE_BYTES: usize = MAX_COMMAND_BYTES - MAX_KEY_BYTES - KEY_PREFIX_HEADROOM;

/// Largest encoded message any Strata client or server sends or accepts: 64 MiB.
///
/// Above tonic's 4 MiB default because a value travels whole in a `Put`, in a Paxos `Accept`
/// carrying that command, and in a `Get` reply. Every server and client sets it with
/// `max_decoding_message_size(MAX_MESSAGE_BYTES)` and `max_encoding_message_size(MAX_MESSAGE_BYTES)`
/// on the generated `XxxServer` / `XxxClient` (the constructors here do it). Without the
/// decoding limit a receiver rejects a message above 4 MiB with `OUT_OF_RANGE`.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Byte budget of one [`v1::PaxosBatch`](crate::v1::PaxosBatch): 8 MiB.
///
/// A sender packs messages into a batch while its encoded size stays within this budget, then
/// starts another batch. One Paxos message that alone exceeds the budget (an `Accept` of the
/// largest command) travels alone in its own batch; it still fits in [`MAX_MESSAGE_BYTES`].
pub const MAX_PAXOS_BATCH_BYTES: usize = 8 << 20;

/// Target size of one chunk of a streamed shard ([`v1::ShardChunk`](crate::v1::ShardChunk))
/// or snapshot: 1 MiB at most, so a migration never needs a large message or log entry
/// (values larger than this are split with `ShardEntry.continues`).
pub const MAX_SHARD_CHUNK_BYTES: usize = 1 << 20;

/// Most servers a `Join` may name for one group (Paxos groups are 3, 5 or 7 replicas).
pub const MAX_ADDRESSES_PER_GROUP: usize = 15;

/// Longest server address (`host:port`), as DNS bounds a name to 253 bytes.
pub const MAX_ADDRESS_BYTES: usize = 255;

/// Most replica groups in one configuration.
pub const MAX_GROUPS: usize = 1024;

const _: () = {
    assert!(MAX_KEY_BYTES + KEY_PREFIX_HEADROOM <= ENGINE_MAX_KEY_BYTES);
    assert!(MAX_COMMAND_BYTES + LOG_ENTRY_HEADROOM <= ENGINE_MAX_VALUE_BYTES);
    assert!(MAX_KEY_BYTES + MAX_VALUE_BYTES + KEY_PREFIX_HEADROOM <= MAX_COMMAND_BYTES);
    // A Paxos message carrying the largest command, and a Get reply of the largest value,
    // fit in one gRPC message with room for the framing.
    assert!(MAX_COMMAND_BYTES + LOG_ENTRY_HEADROOM < MAX_MESSAGE_BYTES);
    assert!(MAX_PAXOS_BATCH_BYTES < MAX_MESSAGE_BYTES);
    assert!(MAX_SHARD_CHUNK_BYTES + LOG_ENTRY_HEADROOM < MAX_COMMAND_BYTES);
    // A configuration's addresses stay far below one message.
    assert!(MAX_GROUPS * MAX_ADDRESSES_PER_GROUP * (MAX_ADDRESS_BYTES + 8) < MAX_MESSAGE_BYTES / 8);
};

use tonic::transport::Channel;

use crate::v1::{
    node_status_client::NodeStatusClient,
    node_status_server::{NodeStatus, NodeStatusServer},
    paxos_peer_client::PaxosPeerClient,
    paxos_peer_server::{PaxosPeer, PaxosPeerServer},
    shard_group_client::ShardGroupClient,
    shard_group_server::{ShardGroup, ShardGroupServer},
    shard_kv_client::ShardKvClient,
    shard_kv_server::{ShardKv, ShardKvServer},
    shard_master_client::ShardMasterClient,
    shard_master_server::{ShardMaster, ShardMasterServer},
    shard_migration_client::ShardMigrationClient,
    shard_migration_server::{ShardMigration, ShardMigrationServer},
};

/// A [`ShardMasterClient`] over `channel`, with the message size limits.
pub fn master_client(channel: Channel) -> ShardMasterClient<Channel> {
    ShardMasterClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A [`ShardKvClient`] over `channel`, with the message size limits.
pub fn kv_client(channel: Channel) -> ShardKvClient<Channel> {
    ShardKvClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A [`ShardGroupClient`] over `channel`, with the message size limits.
pub fn shard_group_client(channel: Channel) -> ShardGroupClient<Channel> {
    ShardGroupClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A [`ShardGroupServer`] for `service`, with the message size limits.
pub fn shard_group_server<S: ShardGroup>(service: S) -> ShardGroupServer<S> {
    ShardGroupServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A [`ShardMigrationClient`] over `channel`, with the message size limits.
pub fn migration_client(channel: Channel) -> ShardMigrationClient<Channel> {
    ShardMigrationClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A [`PaxosPeerClient`] over `channel`, with the message size limits.
pub fn paxos_peer_client(channel: Channel) -> PaxosPeerClient<Channel> {
    PaxosPeerClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A [`NodeStatusClient`] over `channel`, with the message size limits.
pub fn node_status_client(channel: Channel) -> NodeStatusClient<Channel> {
    NodeStatusClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A [`ShardMasterServer`] for `service`, with the message size limits.
pub fn master_server<S: ShardMaster>(service: S) -> ShardMasterServer<S> {
    ShardMasterServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A [`ShardKvServer`] for `service`, with the message size limits.
pub fn kv_server<S: ShardKv>(service: S) -> ShardKvServer<S> {
    ShardKvServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A [`ShardMigrationServer`] for `service`, with the message size limits.
pub fn migration_server<S: ShardMigration>(service: S) -> ShardMigrationServer<S> {
    ShardMigrationServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A [`PaxosPeerServer`] for `service`, with the message size limits.
pub fn paxos_peer_server<S: PaxosPeer>(service: S) -> PaxosPeerServer<S> {
    PaxosPeerServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A [`NodeStatusServer`] for `service`, with the message size limits.
pub fn node_status_server<S: NodeStatus>(service: S) -> NodeStatusServer<S> {
    NodeStatusServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}
