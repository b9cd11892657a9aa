//! The shard master's client.
//!
//! One request at a time per client (a second caller waits for the first): the master keeps
//! only each client's latest reply, so a retried mutation is applied at most once as long as
//! the client never has two in flight. Every mutation carries the client's random 128-bit id
//! and the next sequence number; a retry reuses them.
//!
//! Finding the leader: the client remembers the replica that answered last. A `WRONG_LEADER`
//! answer with a hint sends the retry to the hinted replica at once; without a hint, and after
//! timeouts or connection failures, the client tries the next replica, backing off
//! exponentially (10 ms doubling to 1 s) until the request's overall deadline passes. An
//! overloaded or not-ready replica is asked again after the delay it names.
//! `INVALID_ARGUMENT` is final and returned at once, as is any status that is not retryable
//! (see `strata_rpc::error::classify`, the table every client shares).

use std::collections::BTreeMap;
use std::time::Duration;

use strata_rpc::config::{groups_to_proto, Config, Gid, ShardId};
use strata_rpc::error::{self, Action, Failure};
use strata_rpc::v1;
use strata_rpc::v1::shard_master_client::ShardMasterClient;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Status;

use crate::channels::Channels;
use strata_rpc::tls::Security;

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The master refused the request (unknown group, duplicate gid, shard out of range, ...).
    /// Not retried: the same request would be refused again.
    #[error("refused by the shard master: {0}")]
    InvalidArgument(String),
    /// No replica answered within the request's deadline; for a mutation the outcome is
    /// unknown (it may still be applied, once).
    #[error("no answer from the shard master within {deadline:?} (last error: {last})")]
    Timeout {
        /// The overall deadline of the request.
        deadline: Duration,
        /// The last failure seen.
        last: String,
    },
    /// A failure the client cannot recover from by retrying.
    #[error("shard master error: {0}")]
    Fatal(String),
}

/// Timeouts and back-off of a [`MasterClient`].
#[derive(Debug, Clone)]
pub struct MasterClientOptions {
    /// Deadline of one RPC to one replica.
    pub rpc_timeout: Duration,
    /// Deadline of a whole request, retries included.
    pub request_timeout: Duration,
    /// First back-off delay; doubles on every retry without a fresh leader hint.
    pub initial_backoff: Duration,
    /// Largest back-off delay.
    pub max_backoff: Duration,
    /// Plaintext or mutual TLS (with an admin certificate for Join, Leave and Move).
    pub security: Security,
}

impl Default for MasterClientOptions {
    fn default() -> Self {
        MasterClientOptions {
            rpc_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
            security: Security::Plaintext,
        }
    }
}

/// A client of the replicated shard master.
pub struct MasterClient {
    client_id: [u8; 16],
    options: MasterClientOptions,
    inner: Mutex<Inner>,
}

struct Inner {
    addresses: Vec<String>,
    channels: Channels,
    /// The replica to try first (the last one that answered, or the hinted leader).
    leader: usize,
    /// The sequence number of the last mutation sent.
    seq: u64,
}

enum Attempt<T> {
    Done(T),
    Final(ClientError),
    /// Retry at this replica at once (a fresh leader hint).
    Redirect(usize, String),
    /// Retry at the next replica after a back-off.
    Retry(String),
    /// Retry at the same replica after this delay.
    Wait(Duration, String),
}

impl MasterClient {
    /// A client of the master replicas at `addresses` (`host:port`), with default options.
    /// Connections are made on first use.
    pub fn new(addresses: Vec<String>) -> MasterClient {
        MasterClient::with_options(addresses, MasterClientOptions::default())
    }

    /// A client with explicit timeouts.
    pub fn with_options(addresses: Vec<String>, options: MasterClientOptions) -> MasterClient {
        assert!(
            !addresses.is_empty(),
            "a MasterClient needs at least one address"
        );
        let channels = Channels::with_security(options.security.clone());
        MasterClient {
            client_id: rand::random::<u128>().to_be_bytes(),
            options,
            inner: Mutex::new(Inner {
                addresses,
                channels,
                leader: 0,
                seq: 0,
            }),
        }
    }

    /// This client's id, as sent to the master.
    pub fn client_id(&self) -> u128 {
        u128::from_be_bytes(self.client_id)
    }

    /// Adds groups (gid to server addresses); returns the number of the config created. The
    /// master first checks that a majority of each group's servers answer as members of that
    /// group (a group that does not exist would be given shards it can never take).
    pub async fn join(&self, groups: BTreeMap<Gid, Vec<String>>) -> Result<u64, ClientError> {
        self.join_with(groups, false).await
    }

    /// [`MasterClient::join`] without the check that the servers answer: for servers that
    /// are not running yet (their shards wait until they are).
    pub async fn join_unchecked(
        &self,
        groups: BTreeMap<Gid, Vec<String>>,
    ) -> Result<u64, ClientError> {
        self.join_with(groups, true).await
    }

    async fn join_with(
        &self,
        groups: BTreeMap<Gid, Vec<String>>,
        force: bool,
    ) -> Result<u64, ClientError> {
        let groups = groups_to_proto(&groups);
        let client_id = self.client_id.to_vec();
        self.mutate(move |mut c, seq| {
            let request = v1::JoinRequest {
                client_id: client_id.clone(),
                seq,
                first_incomplete_seq: seq,
                groups: groups.clone(),
                force,
            };
            async move { c.join(request).await.map(|r| r.into_inner().config_num) }
        })
        .await
    }

    /// Gives groups of the latest configuration new server lists (after their membership
    /// changed), keeping the shards where they are; returns the number of the config created.
    pub async fn set_servers(
        &self,
        groups: BTreeMap<Gid, Vec<String>>,
    ) -> Result<u64, ClientError> {
        let groups = groups_to_proto(&groups);
        let client_id = self.client_id.to_vec();
        self.mutate(move |mut c, seq| {
            let request = v1::SetServersRequest {
                client_id: client_id.clone(),
                seq,
                first_incomplete_seq: seq,
                groups: groups.clone(),
            };
            async move {
                c.set_servers(request)
                    .await
                    .map(|r| r.into_inner().config_num)
            }
        })
        .await
    }

    /// Removes groups; returns the number of the config created.
    pub async fn leave(&self, gids: Vec<Gid>) -> Result<u64, ClientError> {
        let client_id = self.client_id.to_vec();
        self.mutate(move |mut c, seq| {
            let request = v1::LeaveRequest {
                client_id: client_id.clone(),
                seq,
                first_incomplete_seq: seq,
                gids: gids.clone(),
            };
            async move { c.leave(request).await.map(|r| r.into_inner().config_num) }
        })
        .await
    }

    /// Assigns `shard` to group `gid`; returns the number of the config created.
    pub async fn move_shard(&self, shard: ShardId, gid: Gid) -> Result<u64, ClientError> {
        let client_id = self.client_id.to_vec();
        self.mutate(move |mut c, seq| {
            let request = v1::MoveRequest {
                client_id: client_id.clone(),
                seq,
                first_incomplete_seq: seq,
                shard,
                gid,
            };
            async move { c.r#move(request).await.map(|r| r.into_inner().config_num) }
        })
        .await
    }

    /// Config `num`, or the latest for `None` (or for a number beyond the latest).
    /// Linearizable: at least as new as any config created before the call started.
    pub async fn query(&self, num: Option<u64>) -> Result<Config, ClientError> {
        let mut inner = self.inner.lock().await;
        let config = self
            .call(&mut inner, |mut c| async move {
                c.query(v1::QueryRequest { num })
                    .await
                    .map(|r| r.into_inner().config)
            })
            .await?;
        config
            .map(Config::from_proto)
            .ok_or_else(|| ClientError::Fatal("a query reply without a config".into()))
    }

    async fn mutate<F, Fut>(&self, mut rpc: F) -> Result<u64, ClientError>
    where
        F: FnMut(ShardMasterClient<Channel>, u64) -> Fut,
        Fut: std::future::Future<Output = Result<u64, Status>>,
    {
        let mut inner = self.inner.lock().await;
        // A new seq per request; retries of this request reuse it, so the master applies it
        // at most once whichever replica (or how many) sees it.
        inner.seq += 1;
        let seq = inner.seq;
        self.call(&mut inner, |c| rpc(c, seq)).await
    }

    /// Sends one request until a replica answers it or the deadline passes.
    async fn call<T, F, Fut>(&self, inner: &mut Inner, mut rpc: F) -> Result<T, ClientError>
    where
        F: FnMut(ShardMasterClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let o = &self.options;
        let deadline = Instant::now() + o.request_timeout;
        let mut backoff = o.initial_backoff;
        let mut last = String::from("no attempt");
        // Hints can be stale (two followers naming each other): follow a few, then back off.
        let mut redirects = 0;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Timeout {
                    deadline: o.request_timeout,
                    last,
                });
            }
            let i = inner.leader;
            let attempt = match inner.client(i) {
                Err(e) => Attempt::Retry(e),
                Ok(client) => {
                    let budget = o.rpc_timeout.min(deadline - now);
                    match tokio::time::timeout(budget, rpc(client)).await {
                        Ok(Ok(value)) => Attempt::Done(value),
                        Ok(Err(status)) => inner.classify(i, &status),
                        Err(_) => Attempt::Retry(format!(
                            "{}: no answer within {budget:?}",
                            inner.addresses[i]
                        )),
                    }
                }
            };
            match attempt {
                Attempt::Done(value) => return Ok(value),
                Attempt::Final(e) => return Err(e),
                Attempt::Redirect(j, why) if redirects < inner.addresses.len() => {
                    redirects += 1;
                    tracing::debug!(from = %inner.addresses[i], to = %inner.addresses[j], "following leader hint");
                    last = why;
                    inner.leader = j;
                }
                Attempt::Wait(delay, why) => {
                    tracing::debug!(replica = %inner.addresses[i], error = %why, ?delay, "waiting");
                    last = why;
                    let delay = delay.min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(delay).await;
                }
                Attempt::Redirect(_, why) | Attempt::Retry(why) => {
                    redirects = 0;
                    tracing::debug!(replica = %inner.addresses[i], error = %why, ?backoff, "retrying");
                    last = why;
                    inner.leader = (i + 1) % inner.addresses.len();
                    let pause = backoff.min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                    backoff = (backoff * 2).min(o.max_backoff);
                }
            }
        }
    }
}

impl Inner {
    fn client(&self, i: usize) -> Result<ShardMasterClient<Channel>, String> {
        let channel = self.channels.get(&self.addresses[i])?;
        Ok(strata_rpc::limits::master_client(channel))
    }

    /// What the request loop does after `status` from replica `i`: [`error::classify`]'s
    /// answer. A master has no configuration to refresh, so `RefreshConfig` is final.
    fn classify<T>(&mut self, i: usize, status: &Status) -> Attempt<T> {
        let why = format!(
            "{}: {:?}: {}",
            self.addresses[i],
            status.code(),
            status.message()
        );
        match error::classify(status) {
            Action::TryAnotherReplica {
                leader: Some(address),
            } => {
                let j = match self.addresses.iter().position(|a| *a == address) {
                    Some(j) => j,
                    None => {
                        self.addresses.push(address);
                        self.addresses.len() - 1
                    }
                };
                if j == i {
                    Attempt::Retry(why)
                } else {
                    Attempt::Redirect(j, why)
                }
            }
            Action::TryAnotherReplica { leader: None } => Attempt::Retry(why),
            Action::RetrySame { after } => Attempt::Wait(after, why),
            Action::Fail(Failure::InvalidArgument) => {
                Attempt::Final(ClientError::InvalidArgument(status.message().to_owned()))
            }
            Action::RefreshConfig { .. } | Action::Fail(_) => {
                Attempt::Final(ClientError::Fatal(why))
            }
        }
    }
}
