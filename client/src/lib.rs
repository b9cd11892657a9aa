//! Clients of Strata's services. Depends only on `strata-rpc`.
//!
//! - [`kv`]: [`Client`], the routing key-value client (get, put, append, delete,
//!   compare-and-swap, ordered whole-keyspace scans), exactly-once and retrying;
//! - [`master`]: [`MasterClient`], the shard master's client (join, leave, move, query), which
//!   finds the leader and retries with back-off.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), strata_client::ClientError> {
//! use std::collections::BTreeMap;
//! use strata_client::MasterClient;
//!
//! let master = MasterClient::new(vec![
//!     "127.0.0.1:7001".into(),
//!     "127.0.0.1:7002".into(),
//!     "127.0.0.1:7003".into(),
//! ]);
//! master.join(BTreeMap::from([(1, vec!["127.0.0.1:8001".to_string()])])).await?;
//! let latest = master.query(None).await?;
//! assert!(latest.shards.iter().all(|&gid| gid == 1));
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod kv;
pub mod master;

pub use kv::{CasOutcome, Client, ClientOptions, KvError, Scanner};
pub use master::{ClientError, Config, MasterClient, MasterClientOptions};
