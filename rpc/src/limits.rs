//! Clients and servers with Strata's message size limits set.
//!
//! tonic defaults to 4 MiB for decoding (and unlimited encoding), below our 16 MiB values.
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
use crate::MAX_MESSAGE_BYTES;

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
