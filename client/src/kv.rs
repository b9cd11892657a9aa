//! The routing key-value client.
//!
//! A key goes to shard `crc32c(key) % N`, the shard to the group that owns it in the cached
//! configuration, and the request to that group's leader (the replica that answered last, or
//! the one a `WRONG_LEADER` hint names). Failures are retried until the request's deadline:
//!
//! | answer | what the client does |
//! |---|---|
//! | `WRONG_LEADER` with a hint | retries at once at the hinted replica |
//! | `WRONG_GROUP` | refreshes the configuration from the master, re-routes, retries |
//! | `INSTALLING` / `NOT_READY` | waits the server's `retry_after`, retries |
//! | `UNAVAILABLE`, timeouts, connection failures | tries the group's next replica, backing off |
//! | `INVALID_ARGUMENT` | returns [`KvError::InvalidArgument`] |
//! | `SESSION_EXPIRED` | returns [`KvError::SessionExpired`] and continues under a new client id |
//! | anything else (a bare `ABORTED`, `FAILED_PRECONDITION`, ...) | returns [`KvError::Fatal`] |
//!
//! The table is `strata_rpc::error::classify`'s, shared with the master's client and the
//! servers' reconfiguration worker.
//!
//! # Exactly once
//!
//! The client has a random 128-bit id and numbers its mutations; a retry reuses the number,
//! so the servers apply each mutation at most once, wherever the retry lands (the dedup table
//! moves with its shard). Many requests may be in flight: each carries the lowest number still
//! in flight, below which the servers may forget replies. The first request to a shard says it
//! opens a session there; any later one whose session the shard no longer knows (idle past the
//! servers' session timeout) is refused with `SESSION_EXPIRED` instead of risking a second
//! execution. A request that gives up (deadline) has an unknown outcome: it may still be
//! applied, once.
//!
//! # Scans
//!
//! [`Client::scan`] reads every shard a page at a time and merges the pages into one stream in
//! key order (hash partitioning scatters keys over shards), holding at most one page per shard.
//! Hash partitioning also means that even the shortest scan needs the first page of every
//! shard, so those are requested all at once. Later, a shard that runs out of entries must be
//! read again before the next entry is known; the shards whose pages are at least half used
//! up are then refilled in the same round trip. A scan with a [limit](Scanner::limit) never
//! asks a shard for more entries than it still needs.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use parking_lot::Mutex;
use strata_rpc::error::{self, Action, Failure};
use strata_rpc::shard_for_key;
use strata_rpc::v1::{self, shard_kv_client::ShardKvClient};
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Status;

use strata_rpc::config::Config;

use crate::channels::Channels;
use crate::master::{MasterClient, MasterClientOptions};
use strata_rpc::tls::Security;

/// Why a key-value request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The request is malformed or too large (the message names the limit). Not retried.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The client's session at the shard expired: the outcome of this mutation is unknown.
    /// The client continues under a new id.
    #[error("session expired: the outcome of this request is unknown")]
    SessionExpired,
    /// No answer within the request's deadline; a mutation's outcome is unknown.
    #[error("no answer within {deadline:?} (last error: {last})")]
    Timeout {
        /// The deadline.
        deadline: Duration,
        /// The last failure seen.
        last: String,
    },
    /// Something the client cannot recover from.
    #[error("{0}")]
    Fatal(String),
}

/// Timeouts and back-off of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline of one RPC to one server.
    pub rpc_timeout: Duration,
    /// Deadline of a whole request, retries included. Keep it well below the servers'
    /// session timeout (10 minutes by default): exactly-once relies on a request never being
    /// retried after its session could have expired.
    pub request_timeout: Duration,
    /// First back-off delay; doubles on each retry.
    pub initial_backoff: Duration,
    /// Largest back-off delay.
    pub max_backoff: Duration,
    /// Entries per shard per page of a scan, fewer when the scan's [limit](Scanner::limit)
    /// needs fewer (0: the server picks, up to the limit if the scan has one).
    pub scan_page: u32,
    /// Plaintext or mutual TLS (with a client or admin certificate).
    pub security: Security,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            rpc_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(500),
            scan_page: 256,
            security: Security::Plaintext,
        }
    }
}

/// The result of a compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasOutcome {
    /// The comparison held and the new value was written.
    pub swapped: bool,
    /// When not swapped: the key's value at the time (None: absent, or omitted).
    pub current: Option<Vec<u8>>,
    /// Set when the answer came from the group's dedup table (a retry of a CAS that was
    /// applied but whose first answer was lost) and the value it saw was over 4 KiB: the
    /// outcome is known, the value is not kept. Read the key if it matters.
    pub current_omitted: bool,
}

/// What one attempt of a request is sent with: the configuration it was routed by, and how
/// long the client waits for its answer.
#[derive(Debug, Clone, Copy)]
struct Routing {
    config_num: u64,
    budget: Duration,
}

/// Sequence numbers and shards touched, under one lock.
///
/// Invariant: `in_flight` holds the seqs of the mutations started and not finished; every seq
/// below its minimum (or below `next` when empty) is finished.
struct Sessions {
    client_id: u128,
    next: u64,
    in_flight: BTreeSet<u64>,
    /// Shards that have (or may have) a session for `client_id`.
    opened: HashSet<u32>,
}

/// A client of the sharded key-value service. Share it (`Arc`) between tasks: requests run
/// concurrently.
pub struct Client {
    master: MasterClient,
    options: ClientOptions,
    config: Mutex<Arc<Config>>,
    /// Serialises configuration refreshes.
    refresh: tokio::sync::Mutex<()>,
    /// Per group: index (in the group's server list) of the replica believed to lead.
    leaders: Mutex<HashMap<u64, usize>>,
    channels: Channels,
    sessions: Mutex<Sessions>,
}

enum Attempt<T> {
    Done(T),
    Final(KvError),
    /// Try the replica at this address at once.
    Redirect(String, String),
    /// Refresh the configuration, then retry.
    Refresh(String),
    /// Retry the same replica after this delay.
    Wait(Duration, String),
    /// Try the next replica after a back-off.
    Next(String),
}

impl Client {
    /// Connects to the shard master at `masters` and fetches the latest configuration.
    pub async fn connect(masters: Vec<String>) -> Result<Client, KvError> {
        Client::connect_with(masters, ClientOptions::default()).await
    }

    /// Like [`connect`](Client::connect), with explicit options.
    pub async fn connect_with(
        masters: Vec<String>,
        options: ClientOptions,
    ) -> Result<Client, KvError> {
        if masters.is_empty() {
            return Err(KvError::InvalidArgument("no master address".into()));
        }
        let master = MasterClient::with_options(
            masters,
            MasterClientOptions {
                rpc_timeout: options.rpc_timeout,
                request_timeout: options.request_timeout,
                security: options.security.clone(),
                ..MasterClientOptions::default()
            },
        );
        let channels = Channels::with_security(options.security.clone());
        let client = Client {
            master,
            options,
            config: Mutex::new(Arc::new(Config::default())),
            refresh: tokio::sync::Mutex::new(()),
            leaders: Mutex::new(HashMap::new()),
            channels,
            sessions: Mutex::new(Sessions {
                client_id: rand::random(),
                next: 1,
                in_flight: BTreeSet::new(),
                opened: HashSet::new(),
            }),
        };
        client.refresh_config(0).await?;
        Ok(client)
    }

    /// The configuration the client routes with.
    pub fn config(&self) -> Arc<Config> {
        self.config.lock().clone()
    }

    /// The client's current id.
    pub fn client_id(&self) -> u128 {
        self.sessions.lock().client_id
    }

    /// Fetches the latest configuration unless one newer than `seen` arrived meanwhile.
    async fn refresh_config(&self, seen: u64) -> Result<(), KvError> {
        let _one_at_a_time = self.refresh.lock().await;
        if self.config.lock().num > seen {
            return Ok(());
        }
        let latest = self.master.query(None).await.map_err(|e| match e {
            crate::ClientError::Timeout { deadline, last } => KvError::Timeout { deadline, last },
            e => KvError::Fatal(e.to_string()),
        })?;
        let mut config = self.config.lock();
        if latest.num >= config.num {
            *config = Arc::new(latest);
        }
        Ok(())
    }

    fn kv_client(&self, address: &str) -> Result<ShardKvClient<Channel>, String> {
        Ok(strata_rpc::limits::kv_client(self.channels.get(address)?))
    }

    /// Sends a request about `shard` (or about `key`'s shard) to the owning group until it is
    /// answered or the deadline passes.
    async fn call<T, F, Fut>(&self, route: Route<'_>, mut rpc: F) -> Result<T, KvError>
    where
        F: FnMut(ShardKvClient<Channel>, Routing) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let o = &self.options;
        let deadline = Instant::now() + o.request_timeout;
        let mut backoff = o.initial_backoff;
        let mut last = String::from("no attempt");
        let mut redirects = 0;
        let mut failures = 0usize;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(KvError::Timeout {
                    deadline: o.request_timeout,
                    last,
                });
            }
            let config = self.config();
            let n = config.shards.len() as u32;
            let shard = match route {
                Route::Key(key) if n > 0 => Some(shard_for_key(key, n)),
                Route::Shard(s) if s < n => Some(s),
                Route::Shard(s) if n > 0 => {
                    return Err(KvError::InvalidArgument(format!(
                        "shard {s} is out of range ({n} shards)"
                    )))
                }
                _ => None,
            };
            let gid = shard.map_or(0, |s| config.owner(s));
            let servers = config.groups.get(&gid).filter(|s| !s.is_empty());
            let Some(servers) = servers else {
                // No configuration yet, or the shard is unassigned: ask the master again.
                last = format!("shard not assigned in config {}", config.num);
                self.pause(&mut backoff, deadline).await;
                let _ = self.refresh_config(config.num).await;
                continue;
            };
            let i = *self.leaders.lock().entry(gid).or_insert(0) % servers.len();
            let address = &servers[i];
            let attempt = match self.kv_client(address) {
                Err(e) => Attempt::Next(e),
                Ok(client) => {
                    let budget = o.rpc_timeout.min(deadline - now);
                    let routing = Routing {
                        config_num: config.num,
                        budget,
                    };
                    match tokio::time::timeout(budget, rpc(client, routing)).await {
                        Ok(Ok(v)) => Attempt::Done(v),
                        Ok(Err(status)) => classify(address, &status),
                        Err(_) => Attempt::Next(format!("{address}: no answer within {budget:?}")),
                    }
                }
            };
            match attempt {
                Attempt::Done(v) => return Ok(v),
                Attempt::Final(e) => return Err(e),
                Attempt::Redirect(to, why) if redirects < 2 * servers.len() => {
                    redirects += 1;
                    last = why;
                    let j = servers.iter().position(|a| *a == to).unwrap_or(i + 1);
                    self.leaders.lock().insert(gid, j);
                }
                Attempt::Redirect(_, why) | Attempt::Next(why) => {
                    redirects = 0;
                    last = why;
                    self.leaders.lock().insert(gid, i + 1);
                    self.pause(&mut backoff, deadline).await;
                    failures += 1;
                    if failures.is_multiple_of(servers.len()) {
                        // No replica of the group answered: it may have left the
                        // configuration (and shut down) since we cached it.
                        let _ = self.refresh_config(config.num).await;
                    }
                }
                Attempt::Refresh(why) => {
                    last = why;
                    self.pause(&mut backoff, deadline).await;
                    if let Err(e) = self.refresh_config(config.num).await {
                        last = e.to_string();
                    }
                }
                Attempt::Wait(delay, why) => {
                    last = why;
                    let delay = delay.min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn pause(&self, backoff: &mut Duration, deadline: Instant) {
        let pause = (*backoff).min(deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(pause).await;
        *backoff = (*backoff * 2).min(self.options.max_backoff);
    }

    /// Runs a mutation of `key` under a new seq.
    async fn mutate<T, F, Fut>(&self, key: &[u8], mut rpc: F) -> Result<T, KvError>
    where
        F: FnMut(ShardKvClient<Channel>, v1::RequestHeader) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let (client_id, seq) = {
            let mut s = self.sessions.lock();
            let seq = s.next;
            s.next += 1;
            s.in_flight.insert(seq);
            (s.client_id, seq)
        };
        let result = self
            .call(Route::Key(key), |c, routing| {
                let header = {
                    let s = self.sessions.lock();
                    let n = self.config.lock().shards.len() as u32;
                    let shard = if n > 0 { shard_for_key(key, n) } else { 0 };
                    v1::RequestHeader {
                        client_id: client_id.to_be_bytes().to_vec(),
                        seq,
                        first_incomplete_seq: s.in_flight.first().copied().unwrap_or(seq),
                        config_num: routing.config_num,
                        opens_session: s.client_id != client_id || !s.opened.contains(&shard),
                        timeout_ms: routing.budget.as_millis().try_into().unwrap_or(u64::MAX),
                    }
                };
                rpc(c, header)
            })
            .await;
        let mut s = self.sessions.lock();
        s.in_flight.remove(&seq);
        if s.client_id == client_id {
            match &result {
                Err(KvError::SessionExpired) => {
                    // Continue under a new id: nothing of the old session can be trusted.
                    s.client_id = rand::random();
                    s.opened.clear();
                }
                // Answered, or given up (it may have opened a session): later requests to
                // this shard must not open one again.
                _ => {
                    let n = self.config.lock().shards.len() as u32;
                    if n > 0 {
                        s.opened.insert(shard_for_key(key, n));
                    }
                }
            }
        }
        result
    }

    /// The value of `key` (None if absent). Linearizable.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, KvError> {
        let key = key.as_ref();
        self.call(Route::Key(key), |mut c, routing| {
            let request = v1::GetRequest {
                key: key.to_vec(),
                config_num: routing.config_num,
            };
            async move { c.get(request).await.map(|r| r.into_inner().value) }
        })
        .await
    }

    /// Sets `key` to `value`.
    pub async fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), KvError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.mutate(key, |mut c, header| {
            let request = v1::PutRequest {
                header: Some(header),
                key: key.to_vec(),
                value: value.to_vec(),
            };
            async move { c.put(request).await.map(|_| ()) }
        })
        .await
    }

    /// Appends `value` to `key`'s value (a missing key counts as empty).
    pub async fn append(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), KvError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.mutate(key, |mut c, header| {
            let request = v1::AppendRequest {
                header: Some(header),
                key: key.to_vec(),
                value: value.to_vec(),
            };
            async move { c.append(request).await.map(|_| ()) }
        })
        .await
    }

    /// Deletes `key`; returns whether it existed.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool, KvError> {
        let key = key.as_ref();
        self.mutate(key, |mut c, header| {
            let request = v1::DeleteRequest {
                header: Some(header),
                key: key.to_vec(),
            };
            async move { c.delete(request).await.map(|r| r.into_inner().existed) }
        })
        .await
    }

    /// Sets `key` to `new_value` (None: deletes it) if its value is `expected` (None: absent).
    pub async fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        expected: Option<&[u8]>,
        new_value: Option<&[u8]>,
    ) -> Result<CasOutcome, KvError> {
        let key = key.as_ref();
        self.mutate(key, |mut c, header| {
            let request = v1::CompareAndSwapRequest {
                header: Some(header),
                key: key.to_vec(),
                expected: expected.map(<[u8]>::to_vec),
                new_value: new_value.map(<[u8]>::to_vec),
            };
            async move {
                c.compare_and_swap(request).await.map(|r| {
                    let r = r.into_inner();
                    CasOutcome {
                        swapped: r.swapped,
                        current: r.current,
                        current_omitted: r.current_omitted,
                    }
                })
            }
        })
        .await
    }

    /// Every key in `[start, end)` (`end` None: to the end of the keyspace) with its value,
    /// in key order, across all shards. Each page of each shard is a linearizable read; the
    /// scan as a whole is not a snapshot.
    pub fn scan(&self, start: Vec<u8>, end: Option<Vec<u8>>) -> Scanner<'_> {
        Scanner {
            client: self,
            start,
            end,
            shards: Vec::new(),
            heads: BinaryHeap::new(),
            started: false,
            remaining: None,
        }
    }

    /// Reads one page of at most `limit` entries (0: the server's default) of `shard`.
    async fn scan_page(
        &self,
        shard: u32,
        start: &[u8],
        end: Option<&[u8]>,
        resume_token: &[u8],
        limit: u32,
    ) -> Result<v1::ScanResponse, KvError> {
        self.call(Route::Shard(shard), |mut c, routing| {
            let request = v1::ScanRequest {
                shard,
                start: start.to_vec(),
                end: end.map(<[u8]>::to_vec),
                limit,
                resume_token: resume_token.to_vec(),
                config_num: routing.config_num,
            };
            async move { c.scan(request).await.map(|r| r.into_inner()) }
        })
        .await
    }
}

/// Where a request goes.
#[derive(Clone, Copy)]
enum Route<'a> {
    /// The shard of this key.
    Key(&'a [u8]),
    /// This shard.
    Shard(u32),
}

/// What the request loop does after `status` from `address`: [`error::classify`]'s answer.
fn classify<T>(address: &str, status: &Status) -> Attempt<T> {
    let why = format!("{address}: {:?}: {}", status.code(), status.message());
    match error::classify(status) {
        Action::TryAnotherReplica {
            leader: Some(to), ..
        } if to != address => Attempt::Redirect(to, why),
        Action::TryAnotherReplica { .. } => Attempt::Next(why),
        Action::RefreshConfig { .. } => Attempt::Refresh(why),
        Action::RetrySame { after } => Attempt::Wait(after, why),
        Action::Fail(Failure::SessionExpired) => Attempt::Final(KvError::SessionExpired),
        Action::Fail(Failure::InvalidArgument) => {
            Attempt::Final(KvError::InvalidArgument(status.message().to_owned()))
        }
        Action::Fail(Failure::Reclaimed | Failure::Other) => Attempt::Final(KvError::Fatal(why)),
    }
}

/// Most page requests one scan has in flight at once.
const MAX_PAGES_IN_FLIGHT: usize = 64;

/// One shard's part of a scan.
struct ShardCursor {
    buffered: VecDeque<(Vec<u8>, Vec<u8>)>,
    resume_token: Vec<u8>,
    more: bool,
}

impl ShardCursor {
    /// Whether the scan cannot yield another entry before reading this shard again.
    fn exhausted_buffer(&self) -> bool {
        self.more && self.buffered.is_empty()
    }
}

/// How many entries to ask a shard holding `buffered` entries for, or None to leave it be:
/// it has no more than half a `page` left (0: only when empty, as the server picks the page
/// size), the request tops it up to a page, and no more than the `remaining` entries of the
/// scan (None: all of them) need — the shard's buffered entries come before the new ones.
fn page_request(page: u32, buffered: usize, remaining: Option<usize>) -> Option<u32> {
    let page = page as usize;
    if 2 * buffered > page {
        return None;
    }
    let wanted = match remaining {
        Some(r) => r.checked_sub(buffered).filter(|&w| w > 0)?,
        None => usize::MAX,
    };
    let limit = match page {
        0 if remaining.is_none() => 0,
        0 => wanted,
        _ => wanted.min(page - buffered),
    };
    Some(u32::try_from(limit).unwrap_or(u32::MAX))
}

/// A whole-keyspace scan in key order: see [`Client::scan`].
pub struct Scanner<'a> {
    client: &'a Client,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    shards: Vec<ShardCursor>,
    /// The smallest buffered key of each shard that has one.
    heads: BinaryHeap<Reverse<(Vec<u8>, u32)>>,
    started: bool,
    /// Entries the scan may still yield (None: no limit).
    remaining: Option<usize>,
}

impl Scanner<'_> {
    /// Ends the scan after at most `limit` more entries. Short scans should say so: no shard
    /// is then asked for more entries than the scan still needs.
    pub fn limit(mut self, limit: usize) -> Self {
        self.remaining = Some(self.remaining.map_or(limit, |r| r.min(limit)));
        self
    }

    /// The next entry, or None at the end. After an error the scan can go on: `next` asks
    /// again for what it could not read.
    pub async fn next(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>, KvError> {
        if self.remaining == Some(0) {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            let n = self.client.config().shards.len();
            self.shards = (0..n)
                .map(|_| ShardCursor {
                    buffered: VecDeque::new(),
                    resume_token: Vec::new(),
                    more: true,
                })
                .collect();
        }
        self.fill().await?;
        let Some(Reverse((_, shard))) = self.heads.pop() else {
            return Ok(None);
        };
        let cursor = &mut self.shards[shard as usize];
        let entry = cursor
            .buffered
            .pop_front()
            .expect("a head has a buffered entry");
        if let Some((key, _)) = cursor.buffered.front() {
            self.heads.push(Reverse((key.clone(), shard)));
        }
        if let Some(r) = &mut self.remaining {
            *r -= 1;
        }
        Ok(Some(entry))
    }

    /// Collects up to `limit` entries (see [`limit`](Scanner::limit)).
    pub async fn collect(self, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        let mut scanner = self.limit(limit);
        let mut out = Vec::new();
        while let Some(e) = scanner.next().await? {
            out.push(e);
        }
        Ok(out)
    }

    /// Reads shards until none that may have more has an empty buffer, so that the smallest
    /// head is the scan's next entry. Each round trip also tops up the shards that are half
    /// empty. Pages that arrive are kept even when another request fails.
    async fn fill(&mut self) -> Result<(), KvError> {
        while self.shards.iter().any(ShardCursor::exhausted_buffer) {
            let page = self.client.options.scan_page;
            // Owned tokens: a future borrowing its closure's argument would not be `Send` for
            // every lifetime, as a caller spawning the scan needs.
            let requests: Vec<(u32, Vec<u8>, u32)> = (self.shards.iter().enumerate())
                .filter(|(_, c)| c.more)
                .filter_map(|(shard, c)| {
                    let limit = page_request(page, c.buffered.len(), self.remaining)?;
                    Some((shard as u32, c.resume_token.clone(), limit))
                })
                .collect();
            let (client, start, end) = (self.client, &self.start[..], self.end.as_deref());
            let pages: Vec<_> = stream::iter(requests)
                .map(|(shard, token, limit)| async move {
                    let page = client.scan_page(shard, start, end, &token, limit).await;
                    (shard, page)
                })
                .buffer_unordered(MAX_PAGES_IN_FLIGHT)
                .collect()
                .await;
            let mut failure = None;
            for (shard, page) in pages {
                match page {
                    Ok(page) => self.take(shard, page),
                    Err(e) => failure = failure.or(Some(e)),
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Appends a page of `shard` to its buffer.
    fn take(&mut self, shard: u32, page: v1::ScanResponse) {
        let cursor = &mut self.shards[shard as usize];
        let was_empty = cursor.buffered.is_empty();
        cursor.more = page.more;
        cursor.resume_token = page.resume_token;
        cursor
            .buffered
            .extend(page.entries.into_iter().map(|kv| (kv.key, kv.value)));
        if let (true, Some((key, _))) = (was_empty, cursor.buffered.front()) {
            self.heads.push(Reverse((key.clone(), shard)));
        }
    }
}
