//! The gRPC services of one shard-server replica: `ShardKv` (clients), `ShardMigration`
//! (other groups pulling shards from this one) and `ShardGroup` (status).
//!
//! Mutations go through the Paxos log and are answered with the state machine's reply once
//! applied here; ownership is decided at apply time. Reads (`Get`, `Scan`) wait on the node's
//! read barrier (a quorum confirms the leadership and the replica has applied everything
//! committed before the read began), then check ownership and read the store under the view's
//! read lock, so a shard cannot be handed over and deleted between the check and the read.
//!
//! A follower answers `WRONG_LEADER` with the leader's address when it knows it.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use strata_node::grpc::{propose_within, read_barrier_within};
use strata_node::Node;
use strata_paxos::ReplicaId;
use strata_rpc::error::{
    installing, invalid_argument, not_ready, overloaded, reclaimed, session_expired, wrong_group,
};
use strata_rpc::tls::{Identity, PeerInfo};
use strata_rpc::v1::{self, kv_reply::Reply, ErrorReason};
use strata_rpc::{MAX_COMMAND_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES};
use tokio::sync::watch;
use tonic::codegen::tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status};

use crate::chaos::Chaos;
use crate::command::{now_ms, Command, Kind, Outcome, Refusal, ShardRef};
use crate::handoff::{read_chunk, HandoffError, CHUNK_BYTES};
use crate::machine::read::ReadError;
use crate::machine::{Reader, View};
use crate::session::ClientRequest;
use crate::store::Store;

/// Entries per `Scan` page when the request does not say.
pub const DEFAULT_SCAN_LIMIT: u32 = 1000;
/// Most entries per `Scan` page.
pub const MAX_SCAN_LIMIT: u32 = 10_000;
/// Bytes of keys and values per `Scan` page (at least one entry is always returned).
pub const MAX_SCAN_PAGE_BYTES: usize = 4 << 20;
/// How long a client should wait before retrying a shard that is being installed.
const INSTALL_RETRY: Duration = Duration::from_millis(50);

/// What every handler of one replica shares. Cheap to clone.
#[derive(Clone)]
pub struct Replica {
    /// The replica's group.
    pub gid: u64,
    /// The Paxos node.
    pub node: Node<Outcome>,
    /// The state machine's view.
    pub view: Arc<RwLock<View>>,
    /// The state machine's applied index.
    pub applied: Arc<AtomicU64>,
    /// Reads of the state machine (keys, pages, kept replies).
    pub reader: Reader,
    /// The state machine's store, which shard hand-offs read.
    pub store: Arc<dyn Store>,
    /// The group's replicas: id to address (for leader hints).
    pub peers: Arc<BTreeMap<ReplicaId, String>>,
    /// How long a proposal or read may wait for a quorum.
    pub op_timeout: Duration,
    /// Simulated unreliable network (tests only).
    pub chaos: Option<Arc<Chaos>>,
    /// Mutations proposed here and not yet answered, by `(client id, seq)`.
    pub in_flight: InFlight,
    /// The server's own metrics (operations and figures per shard, migrations).
    pub metrics: crate::metrics::ShardMetrics,
    /// Refused requests (with TLS: shard pulls and deletions from the wrong group).
    pub refusals: strata_node::auth::Refusals,
}

/// The outcome of a proposal, once known.
type PendingOutcome = Option<Result<Outcome, Status>>;

/// Mutations proposed at one replica and not yet answered, by `(client id, seq)`: a retry of
/// one (the client gave up waiting and asked again) waits for the first attempt's outcome
/// instead of putting a second copy of the command — possibly a large value — in the log.
/// Invariant: an entry exists exactly while the proposal that inserted it runs; its guard
/// removes it however that proposal ends.
#[derive(Clone, Default)]
pub struct InFlight(Arc<parking_lot::Mutex<HashMap<RequestId, watch::Receiver<PendingOutcome>>>>);

/// A client's request: its client id and sequence number.
type RequestId = (Vec<u8>, u64);

/// Removes an in-flight entry when the proposal that inserted it ends.
struct InFlightGuard {
    map: InFlight,
    key: RequestId,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.map.0.lock().remove(&self.key);
    }
}

/// A mutation's session: who asked, and which request of theirs it is.
fn request_id(kind: &Kind) -> Option<RequestId> {
    kind.header().map(|h| (h.client_id.clone(), h.seq))
}

impl Replica {
    /// Counts `op` served for the key of `hash` ([`strata_rpc::key_hash`], taken before a
    /// mutation consumes its request), on its shard in the configuration applied
    /// here now (a first request may be sent before this replica applied its group's first
    /// configuration and served after; nothing is counted before any).
    fn served_hash(&self, hash: u32, op: &'static str) {
        let shards = self.view.read().config.shards.len();
        if let Some(n) = u32::try_from(shards).ok().filter(|&n| n > 0) {
            self.metrics.served(hash % n, op);
        }
    }

    /// Counts `op` served for `key`.
    fn served(&self, key: &[u8], op: &'static str) {
        self.served_hash(strata_rpc::key_hash(key), op);
    }

    /// Proposes `kind` and returns what applying it produced here.
    pub async fn propose(&self, kind: Kind) -> Result<Outcome, Status> {
        self.propose_for(kind, self.op_timeout).await
    }

    /// [`Replica::propose`], waiting for a quorum at most `timeout`.
    async fn propose_for(&self, kind: Kind, timeout: Duration) -> Result<Outcome, Status> {
        let command = Command::new(now_ms(), kind).encode();
        propose_within(&self.node, command, timeout, &self.peers).await
    }

    /// [`Replica::propose`] for a client's mutation, at most once at a time per request: a
    /// retry that arrives while the first attempt is in flight here shares its outcome.
    pub async fn propose_once(&self, kind: Kind) -> Result<Outcome, Status> {
        // The client's wait bounds ours: past it, nobody reads the answer.
        let timeout = match kind.header().map_or(0, |h| h.timeout_ms) {
            0 => self.op_timeout,
            ms => self.op_timeout.min(Duration::from_millis(ms)),
        };
        let Some(key) = request_id(&kind) else {
            return self.propose_for(kind, timeout).await;
        };
        let (tx, first) = {
            let mut map = self.in_flight.0.lock();
            match map.get(&key) {
                Some(rx) => (None, Some(rx.clone())),
                None => {
                    let (tx, rx) = watch::channel(None);
                    map.insert(key.clone(), rx);
                    (Some(tx), None)
                }
            }
        };
        if let Some(mut rx) = first {
            let wait = async move {
                loop {
                    if let Some(outcome) = rx.borrow_and_update().clone() {
                        return outcome;
                    }
                    if rx.changed().await.is_err() {
                        return Err(Status::unavailable(
                            "the first attempt of this request ended without an answer; retry",
                        ));
                    }
                }
            };
            return tokio::time::timeout(timeout, wait)
                .await
                .unwrap_or_else(|_| {
                    Err(Status::unavailable(
                        "the first attempt of this request is still in flight; retry",
                    ))
                });
        }
        let _guard = InFlightGuard {
            map: self.in_flight.clone(),
            key,
        };
        let outcome = self.propose_for(kind, timeout).await;
        if let Some(tx) = tx {
            let _ = tx.send(Some(outcome.clone()));
        }
        outcome
    }

    /// Waits until a linearizable read may be served here.
    pub async fn read_barrier(&self) -> Result<(), Status> {
        read_barrier_within(&self.node, self.op_timeout, &self.peers).await
    }
}

/// The status a client gets for a refusal of the state machine.
pub fn refusal_status(r: &Refusal) -> Status {
    match r.reason() {
        ErrorReason::WrongGroup => wrong_group(r.shard, r.config_num),
        ErrorReason::Installing => installing(r.shard, r.config_num, INSTALL_RETRY),
        ErrorReason::SessionExpired => session_expired(),
        ErrorReason::Overloaded => overloaded(Duration::from_millis(100)),
        ErrorReason::InvalidArgument => invalid_argument(r.message.clone()),
        _ => Status::internal(r.message.clone()),
    }
}

fn check_key(key: &[u8]) -> Result<(), Status> {
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid_argument(format!(
            "key of {} bytes exceeds MAX_KEY_BYTES ({MAX_KEY_BYTES} bytes)",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), Status> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(invalid_argument(format!(
            "value of {} bytes exceeds MAX_VALUE_BYTES ({MAX_VALUE_BYTES} bytes)",
            value.len()
        )));
    }
    Ok(())
}

/// Checks a client mutation where it enters, once: its header (see
/// [`ClientRequest::from_header`]), its key and values against the limits, and its whole size
/// as the log will carry it (a CompareAndSwap holds two values).
fn check_mutation(kind: &Kind, encoded_len: usize) -> Result<ClientRequest, Status> {
    let request =
        ClientRequest::from_header(kind.header()).map_err(|e| invalid_argument(e.to_string()))?;
    if let Some((key, values)) = kind.mutation() {
        check_key(key)?;
        values.into_iter().flatten().try_for_each(check_value)?;
    }
    if encoded_len > MAX_COMMAND_BYTES {
        return Err(invalid_argument(format!(
            "request of {encoded_len} bytes exceeds MAX_COMMAND_BYTES ({MAX_COMMAND_BYTES} bytes)"
        )));
    }
    Ok(request)
}

/// The `ShardKv` service.
#[derive(Clone)]
pub struct KvService(pub Replica);

impl KvService {
    /// Checks a client mutation, proposes it (once, however often the client retries while it
    /// is in flight) and returns the state machine's reply.
    async fn mutate(&self, kind: Kind, encoded_len: usize) -> Result<Reply, Status> {
        let request = check_mutation(&kind, encoded_len)?;
        // Ownership decides at apply time (rule 1); this early look, at the leader (whose
        // view is current; a follower sends the client there), only keeps requests that
        // would be refused out of the log — a client retrying large values at a shard that
        // is still being installed would otherwise fill it with refusals.
        if self.0.node.is_leader() {
            if let Some((key, _)) = kind.mutation() {
                let admitted = self.0.reader.admits(key, request.client, request.seq);
                // A retry of a request applied already: its reply is in the shard's dedup
                // table (applied, hence chosen). Answered from there, it costs no log entry —
                // a client that keeps timing out on a large request would otherwise log a
                // copy per retry and never see the answer.
                if let Some(reply) = admitted.map_err(|r| refusal_status(&r))? {
                    return Ok(reply);
                }
            }
        }
        match self.0.propose_once(kind).await? {
            Outcome::Kv(v1::KvReply { reply: Some(reply) }) => Ok(reply),
            Outcome::Refused(r) => Err(refusal_status(&r)),
            _ => Err(Status::internal("a mutation got an unexpected reply")),
        }
    }
}

fn wrong_reply() -> Status {
    Status::internal("the state machine answered with another operation's reply")
}

/// The status a client gets for a read that was not served.
fn read_status(e: ReadError) -> Status {
    match e {
        ReadError::Refused(r) => refusal_status(&r),
        ReadError::Store(e) => Status::internal(format!("reading the store: {e}")),
    }
}

#[tonic::async_trait]
impl v1::shard_kv_server::ShardKv for KvService {
    async fn get(
        &self,
        request: Request<v1::GetRequest>,
    ) -> Result<Response<v1::GetResponse>, Status> {
        let r = request.into_inner();
        check_key(&r.key)?;
        self.0.read_barrier().await?;
        let value = self.0.reader.get(&r.key).map_err(read_status)?;
        self.0.served(&r.key, "get");
        Ok(Response::new(v1::GetResponse { value }))
    }

    async fn put(
        &self,
        request: Request<v1::PutRequest>,
    ) -> Result<Response<v1::PutResponse>, Status> {
        let r = request.into_inner();
        let len = prost::Message::encoded_len(&r);
        let key_hash = strata_rpc::key_hash(&r.key);
        match self.mutate(Kind::Put(r), len).await? {
            Reply::Put(p) => {
                self.0.served_hash(key_hash, "put");
                Ok(Response::new(p))
            }
            _ => Err(wrong_reply()),
        }
    }

    async fn append(
        &self,
        request: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        let r = request.into_inner();
        let len = prost::Message::encoded_len(&r);
        let key_hash = strata_rpc::key_hash(&r.key);
        match self.mutate(Kind::Append(r), len).await? {
            Reply::Append(p) => {
                self.0.served_hash(key_hash, "append");
                Ok(Response::new(p))
            }
            _ => Err(wrong_reply()),
        }
    }

    async fn delete(
        &self,
        request: Request<v1::DeleteRequest>,
    ) -> Result<Response<v1::DeleteResponse>, Status> {
        let r = request.into_inner();
        let len = prost::Message::encoded_len(&r);
        let key_hash = strata_rpc::key_hash(&r.key);
        match self.mutate(Kind::Delete(r), len).await? {
            Reply::Delete(p) => {
                self.0.served_hash(key_hash, "delete");
                Ok(Response::new(p))
            }
            _ => Err(wrong_reply()),
        }
    }

    async fn compare_and_swap(
        &self,
        request: Request<v1::CompareAndSwapRequest>,
    ) -> Result<Response<v1::CompareAndSwapResponse>, Status> {
        let r = request.into_inner();
        let len = prost::Message::encoded_len(&r);
        let key_hash = strata_rpc::key_hash(&r.key);
        match self.mutate(Kind::CompareAndSwap(r), len).await? {
            Reply::CompareAndSwap(p) => {
                self.0.served_hash(key_hash, "cas");
                Ok(Response::new(p))
            }
            _ => Err(wrong_reply()),
        }
    }

    async fn scan(
        &self,
        request: Request<v1::ScanRequest>,
    ) -> Result<Response<v1::ScanResponse>, Status> {
        let r = request.into_inner();
        check_key(&r.start)?;
        if let Some(end) = &r.end {
            check_key(end)?;
        }
        let limit = match r.limit {
            0 => DEFAULT_SCAN_LIMIT,
            n => n.min(MAX_SCAN_LIMIT),
        } as usize;
        // The resume token is the first key of the next page.
        let from = if r.resume_token.is_empty() {
            &r.start
        } else if r.resume_token < r.start {
            return Err(invalid_argument("resume_token is before the range's start"));
        } else {
            &r.resume_token
        };
        check_key(from)?;
        self.0.read_barrier().await?;
        let page = (self.0.reader)
            .scan(r.shard, from, r.end.as_deref(), limit, MAX_SCAN_PAGE_BYTES)
            .map_err(read_status)?;
        let resume_token = match (page.more, page.entries.last()) {
            (true, Some(last)) => {
                let mut t = last.key.clone();
                t.push(0);
                t
            }
            _ => Vec::new(),
        };
        Ok(Response::new(v1::ScanResponse {
            entries: page.entries,
            resume_token,
            more: page.more,
        }))
    }
}

/// Proposes that the last chunk of `shard` (frozen for `config_num`) is handed out; `Err` if
/// it was taken back meanwhile or the grant could not be decided here (not the leader).
async fn grant(replica: &Replica, shard: u32, config_num: u64) -> Result<(), Status> {
    let grant = Kind::Grant(ShardRef { shard, config_num });
    match replica.propose(grant).await? {
        Outcome::Done(true) => Ok(()),
        _ => Err(pull_refusal(&replica.view.read(), shard, config_num)
            .unwrap_or_else(|| reclaimed(shard, config_num))),
    }
}

/// The `ShardMigration` service.
#[derive(Clone)]
pub struct MigrationService(pub Replica);

/// With TLS, who may pull or delete `shard` for `config_num` on behalf of group `gid`: a
/// server of that very group (the auth layer already required a shard group's node), and,
/// when this replica applied configuration `config_num`, the group it gives the shard to. A
/// client, an admin, a master or another group cannot take or delete a group's shard.
/// Without TLS (no identity) there is nobody to compare with.
fn check_mover(
    replica: &Replica,
    peer: Option<&PeerInfo>,
    r: (u32, u64, u64),
    method: &str,
) -> Result<(), Status> {
    let (shard, config_num, gid) = r;
    let Some(identity) = peer.and_then(|p| p.identity.as_ref()) else {
        return Ok(());
    };
    let caller_gid = match identity {
        Identity::Node { gid, .. } => Some(*gid),
        _ => None,
    };
    let why = if caller_gid != Some(gid) {
        format!("{identity} may not act for group {gid}")
    } else {
        let view = replica.view.read();
        let owner = (view.config.num == config_num)
            .then(|| view.config.shards.get(shard as usize).copied())
            .flatten();
        match owner {
            Some(owner) if owner != gid => format!(
                "configuration {config_num} gives shard {shard} to group {owner}, not to {gid}"
            ),
            _ => return Ok(()),
        }
    };
    Err(replica.refusals.deny(peer, method, why))
}

/// Why a shard cannot be handed out for a configuration (rule 3), or `None` if it can: this
/// replica must have applied exactly that configuration and hold the shard frozen for it. A
/// shard this group took back for that configuration is refused for good (`RECLAIMED`).
pub fn pull_refusal(view: &View, shard: u32, config_num: u64) -> Option<Status> {
    if view.reclaimed.contains(&(shard, config_num)) {
        return Some(reclaimed(shard, config_num));
    }
    if view.config.num < config_num {
        return Some(not_ready(
            format!(
                "this replica has applied config {}, not yet {config_num}",
                view.config.num
            ),
            Some(view.config.num),
            Duration::from_millis(50),
        ));
    }
    match view.shards.get(shard as usize) {
        Some(s) if s.is_frozen() && view.config.num == config_num => None,
        _ => Some(Status::failed_precondition(format!(
            "shard {shard} is not held for a move in config {config_num} (this replica is at config {}); it was handed over already",
            view.config.num
        ))),
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<v1::ShardChunk, Status>> + Send>>;

#[tonic::async_trait]
impl v1::shard_migration_server::ShardMigration for MigrationService {
    type PullShardStream = ChunkStream;

    async fn pull_shard(
        &self,
        request: Request<v1::PullShardRequest>,
    ) -> Result<Response<Self::PullShardStream>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let r = request.into_inner();
        let asked = (r.shard, r.config_num, r.gid);
        check_mover(&self.0, peer.as_ref(), asked, "ShardMigration/PullShard")?;
        if let Some(status) = pull_refusal(&self.0.view.read(), r.shard, r.config_num) {
            return Err(status);
        }
        tracing::info!(
            shard = r.shard,
            config = r.config_num,
            to = r.gid,
            "handing a shard over"
        );
        // Two chunks in flight at most: gRPC's flow control holds the reader back, so a large
        // shard never sits in memory.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let replica = self.0.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut token = r.resume_token;
            loop {
                let chunk = {
                    // Frozen data; the lock only guards against a concurrent deletion.
                    let view = replica.view.read();
                    if let Some(status) = pull_refusal(&view, r.shard, r.config_num) {
                        let _ = tx.blocking_send(Err(status));
                        return;
                    }
                    read_chunk(
                        replica.store.as_ref(),
                        r.shard,
                        r.config_num,
                        &token,
                        CHUNK_BYTES,
                    )
                };
                if replica.chaos.as_ref().is_some_and(|c| c.roll()) {
                    let _ = tx.blocking_send(Err(Status::unavailable("chaos: stream cut")));
                    return;
                }
                if chunk.as_ref().is_ok_and(|c| c.done) {
                    // The last chunk makes the shard its new owner's: first make sure, through
                    // the log, that it was not taken back (and can no longer be).
                    if let Err(status) = runtime.block_on(grant(&replica, r.shard, r.config_num)) {
                        let _ = tx.blocking_send(Err(status));
                        return;
                    }
                }
                match chunk {
                    Ok(chunk) => {
                        let done = chunk.done;
                        token = chunk.resume_token.clone();
                        if tx.blocking_send(Ok(chunk)).is_err() || done {
                            return;
                        }
                    }
                    Err(e) => {
                        let why = format!("cannot read shard {}: {e}", r.shard);
                        let status = match e {
                            HandoffError::BadToken(_) => invalid_argument(why),
                            HandoffError::Store(_) => Status::internal(why),
                        };
                        let _ = tx.blocking_send(Err(status));
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delete_shard(
        &self,
        request: Request<v1::DeleteShardRequest>,
    ) -> Result<Response<v1::DeleteShardResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let r = request.into_inner();
        let asked = (r.shard, r.config_num, r.gid);
        check_mover(&self.0, peer.as_ref(), asked, "ShardMigration/DeleteShard")?;
        let delete = async {
            let outcome = self
                .0
                .propose(Kind::DeleteShard(ShardRef {
                    shard: r.shard,
                    config_num: r.config_num,
                }))
                .await?;
            match outcome {
                Outcome::Done(deleted) => {
                    if deleted {
                        tracing::info!(
                            shard = r.shard,
                            config = r.config_num,
                            by = r.gid,
                            "handed-over shard deleted"
                        );
                    }
                    Ok(v1::DeleteShardResponse { deleted })
                }
                _ => Err(Status::internal("DeleteShard got an unexpected reply")),
            }
        };
        delete.await.map(Response::new)
    }
}

/// The `ShardGroup` service.
#[derive(Clone)]
pub struct GroupService(pub Replica);

#[tonic::async_trait]
impl v1::shard_group_server::ShardGroup for GroupService {
    async fn shards(
        &self,
        _request: Request<v1::ShardsRequest>,
    ) -> Result<Response<v1::ShardsResponse>, Status> {
        let view = self.0.view.read();
        Ok(Response::new(v1::ShardsResponse {
            gid: self.0.gid,
            config_num: view.config.num,
            shards: view.shards.iter().map(|s| s.to_proto() as i32).collect(),
            applied_index: self.0.applied.load(Ordering::Acquire),
            sessions: view.sessions as u64,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard_state::ShardState;
    use strata_rpc::config::Config;

    #[test]
    fn rule3_a_shard_is_handed_out_only_for_the_config_the_replica_applied() {
        let mut view = View {
            gid: 1,
            config: Config {
                num: 5,
                shards: vec![2, 1],
                ..Config::default()
            },
            shards: vec![ShardState::Leaving { to: 2 }, ShardState::Serving],
            ..View::default()
        };
        // Frozen for config 5: served.
        assert!(pull_refusal(&view, 0, 5).is_none());
        // Config 6 not applied yet: the shard may still change here, so not yet.
        let s = pull_refusal(&view, 0, 6).unwrap();
        assert_eq!(strata_rpc::error::reason(&s), ErrorReason::NotReady);
        // Not frozen (still served, or already deleted), or a stale config: refused.
        assert!(pull_refusal(&view, 1, 5).is_some());
        assert!(pull_refusal(&view, 0, 4).is_some());
        // Its last chunk handed out: still served (a resumed pull may need it again).
        view.shards[0] = ShardState::Handed { to: 2 };
        assert!(pull_refusal(&view, 0, 5).is_none());
        view.shards[0] = ShardState::Absent;
        assert_eq!(
            pull_refusal(&view, 0, 5).unwrap().code(),
            tonic::Code::FailedPrecondition
        );
        assert_ne!(
            strata_rpc::error::reason(&pull_refusal(&view, 0, 5).unwrap()),
            ErrorReason::Reclaimed
        );
        // Taken back: refused for good, even once the group moved on.
        view.shards[0] = ShardState::Reclaimed;
        view.reclaimed.insert((0, 5));
        for v in [
            view.clone(),
            View {
                config: Config {
                    num: 9,
                    ..view.config.clone()
                },
                ..view
            },
        ] {
            let s = pull_refusal(&v, 0, 5).unwrap();
            assert_eq!(strata_rpc::error::reason(&s), ErrorReason::Reclaimed);
            assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        }
    }
}
