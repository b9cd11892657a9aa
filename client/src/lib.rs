//! Clients of Strata's services. Depends only on `strata-rpc`.
//!
//! - [`kv`]: [`Client`], the routing key-value client (get, put, append, delete,
//!   compare-and-swap, ordered whole-keyspace scans), exactly-once and retrying;
//! - [`master`]: [`MasterClient`], the shard master's client (join, leave, move, query), which
//!   finds the leader and retries with back-off;
//! - [`group`]: [`GroupAdmin`], membership changes of one Paxos group (add, promote,
//!   remove, replace a replica);
//! - [`channels`]: [`Channels`], the cache of lazily connected gRPC channels by address that
//!   both clients (and a shard server's reconfiguration worker) use.
//!
//! [`Config`] (with [`Gid`] and [`ShardId`]) is `strata-rpc`'s configuration type, re-exported:
//! the one the master creates and the servers replicate.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use strata_client::{Client, MasterClient};
//!
//! let masters = vec![
//!     "127.0.0.1:7001".to_string(),
//!     "127.0.0.1:7002".to_string(),
//!     "127.0.0.1:7003".to_string(),
//! ];
//! // An operator adds a replica group of shard servers...
//! let servers = vec!["127.0.0.1:8001".to_string(), "127.0.0.1:8002".to_string()];
//! MasterClient::new(masters.clone()).join([(100, servers)].into()).await?;
//! // ...and applications use the routing client.
//! let kv = Client::connect(masters).await?;
//! kv.put("user:1", "ada").await?;
//! kv.append("log", "+1").await?;
//! assert_eq!(kv.get("user:1").await?, Some(b"ada".to_vec()));
//! let cas = kv
//!     .compare_and_swap("user:1", Some(&b"ada"[..]), Some(&b"grace"[..]))
//!     .await?;
//! assert!(cas.swapped);
//! let everything = kv.scan(Vec::new(), None).collect(1000).await?;
//! assert!(everything.windows(2).all(|w| w[0].0 < w[1].0));
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod channels;
pub mod group;
pub mod kv;
pub mod master;

pub use channels::Channels;
pub use group::{GroupAdmin, GroupError, ReplaceStep};
pub use kv::{CasOutcome, Client, ClientOptions, KvError, Scanner};
pub use master::{ClientError, MasterClient, MasterClientOptions};
pub use strata_rpc::config::{Config, Gid, ShardId, UNASSIGNED};
