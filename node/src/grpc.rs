//! The gRPC side of a node: the `PaxosPeer` service that receives batches, the transport that
//! sends them, the `NodeStatus` service, and the identity check of a data directory.
//!
//! The transport keeps, per peer, a bounded queue and one task that (re)connects with
//! exponential back-off and sends the queue as batches capped at
//! [`MAX_PAXOS_BATCH_BYTES`](strata_rpc::MAX_PAXOS_BATCH_BYTES). When a peer is down or slow
//! its queue fills and further messages to it are dropped — Paxos tolerates loss, the leader
//! re-sends what matters — so a dead peer never grows the sender's memory.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use strata_paxos::{Message, ReplicaId, Slot};
use strata_rpc::v1;
use strata_rpc::v1::node_status_server::{NodeStatus, NodeStatusServer};
use strata_rpc::v1::paxos_peer_server::{PaxosPeer, PaxosPeerServer};
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::{self, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::driver::{Node, NodeError};
use crate::state_machine::SnapshotStream;
use crate::transport::Transport;
use crate::wire::{from_proto, to_proto};

/// The gRPC status a service answers with when its node refuses or fails a proposal or read:
/// `WRONG_LEADER` with the leader's address from `peers` (replica id to address) when known.
pub fn node_error_status(e: NodeError, peers: &BTreeMap<ReplicaId, String>) -> Status {
    match e {
        NodeError::NotLeader(hint) => {
            let address = hint
                .and_then(|id| peers.get(&id).cloned())
                .unwrap_or_default();
            strata_rpc::error::wrong_leader(hint, address)
        }
        NodeError::Stopped => Status::unavailable("the replica is shutting down"),
        // The client backs off and retries (the detail carries the delay).
        NodeError::Overloaded { .. } => {
            strata_rpc::error::overloaded_because(e.to_string(), Duration::from_millis(200))
        }
        NodeError::Storage(e) => Status::unavailable(format!("paxos storage failed: {e}")),
        NodeError::Config(e) => Status::failed_precondition(format!("paxos configuration: {e}")),
    }
}

/// Proposes `command` on `node` and waits at most `timeout` for its reply, failing with the
/// status a client acts on (`UNAVAILABLE` on timeout: the outcome is unknown, the client
/// retries the same request, which the state machine applies at most once).
pub async fn propose_within<R: Send + 'static>(
    node: &Node<R>,
    command: Vec<u8>,
    timeout: Duration,
    peers: &BTreeMap<ReplicaId, String>,
) -> Result<R, Status> {
    tokio::time::timeout(timeout, node.propose(command))
        .await
        .map_err(|_| {
            Status::unavailable(format!(
                "not committed within {timeout:?} (no quorum?); the outcome is unknown, retry the same request"
            ))
        })?
        .map_err(|e| node_error_status(e, peers))
}

/// Waits at most `timeout` until `node` may serve a linearizable read.
pub async fn read_barrier_within<R: Send + 'static>(
    node: &Node<R>,
    timeout: Duration,
    peers: &BTreeMap<ReplicaId, String>,
) -> Result<(), Status> {
    tokio::time::timeout(timeout, node.read_barrier())
        .await
        .map_err(|_| {
            Status::unavailable(format!(
                "the read was not confirmed by a quorum within {timeout:?}"
            ))
        })?
        .map_err(|e| node_error_status(e, peers))
}

/// Messages queued per peer before new ones are dropped...
const PEER_QUEUE: usize = 4096;
/// ...and bytes (of command payload) queued per peer: a peer that is down or stalled costs
/// the sender at most this much memory plus one message. As much as a node admits in flight
/// (`MAX_INFLIGHT_PROPOSAL_BYTES`), so that the Accepts of a full window, or the parts of a
/// promise reporting it, pass whole instead of being dropped part by part forever.
const PEER_QUEUE_BYTES: usize = 64 << 20;
/// Deadline of one batch RPC.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the next chunk of a snapshot being installed.
const SNAPSHOT_CHUNK_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of one snapshot transfer.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(600);

/// Sends Paxos traffic to the peers of one group over gRPC.
pub struct GrpcTransport {
    group: u64,
    me: ReplicaId,
    peers: BTreeMap<ReplicaId, PeerLink>,
}

/// The queue to one peer. Invariant: `queued_bytes` is the payload size of the messages in
/// the channel (added before a send, subtracted when the sender task takes one out).
struct PeerLink {
    addr: String,
    tx: mpsc::Sender<Message>,
    queued_bytes: Arc<AtomicUsize>,
    /// A snapshot transfer to this peer is running: another one is not started meanwhile
    /// (a large snapshot outlasts the leader's re-requests).
    snapshot_running: Arc<AtomicBool>,
}

/// Clears a peer's `snapshot_running` when its transfer ends, however it ends.
struct TransferGuard(Arc<AtomicBool>);

impl Drop for TransferGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl GrpcTransport {
    /// A transport to `peers` (replica id → `host:port`; this replica's own entry is ignored).
    /// Spawns one sender task per peer on the current tokio runtime.
    pub fn new(
        group: u64,
        me: ReplicaId,
        peers: BTreeMap<ReplicaId, String>,
    ) -> Arc<GrpcTransport> {
        let mut links = BTreeMap::new();
        for (id, addr) in peers {
            if id == me {
                continue;
            }
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            let queued_bytes = Arc::new(AtomicUsize::new(0));
            tokio::spawn(peer_sender(
                group,
                me,
                id,
                addr.clone(),
                rx,
                queued_bytes.clone(),
            ));
            links.insert(
                id,
                PeerLink {
                    addr,
                    tx,
                    queued_bytes,
                    snapshot_running: Arc::new(AtomicBool::new(false)),
                },
            );
        }
        Arc::new(GrpcTransport {
            group,
            me,
            peers: links,
        })
    }
}

impl Transport for GrpcTransport {
    fn send(&self, messages: Vec<Message>) {
        for m in messages {
            let Some(link) = self.peers.get(&m.to) else {
                continue;
            };
            // Full queue: the peer is down or slow; dropping is safe (Paxos re-sends what
            // matters), and it bounds the memory a dead peer costs.
            // A queue below its bound takes any one message, however large (an Accept of the
            // largest command is above the bound, and small messages such as heartbeats are
            // nearly always queued beside it): otherwise it would be dropped forever. So the
            // queue holds at most the bound plus one message.
            let size = Message::payload_bytes(&m);
            let queued = link.queued_bytes.load(Ordering::Relaxed);
            if queued >= PEER_QUEUE_BYTES {
                tracing::debug!(peer = m.to, queued, "peer queue full: message dropped");
                continue;
            }
            link.queued_bytes.fetch_add(size, Ordering::Relaxed);
            if link.tx.try_send(m).is_err() {
                link.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                tracing::debug!("peer queue full (count): message dropped");
            }
        }
    }

    fn send_snapshot(&self, to: ReplicaId, index: Slot, chunks: SnapshotStream) {
        let Some(PeerLink {
            addr,
            snapshot_running,
            ..
        }) = self.peers.get(&to)
        else {
            return;
        };
        if snapshot_running.swap(true, Ordering::AcqRel) {
            return; // one is on its way; the leader asks again if that one fails
        }
        let guard = TransferGuard(snapshot_running.clone());
        let (group, me) = (self.group, self.me);
        let chunks = chunks.enumerate().map(move |(i, data)| v1::SnapshotChunk {
            group_id: group,
            from: me,
            to,
            ballot: None,
            index,
            chunk_index: i as u64,
            data,
            done: false,
        });
        let last = v1::SnapshotChunk {
            group_id: group,
            from: me,
            to,
            index,
            done: true,
            ..Default::default()
        };
        let chunks: Box<dyn Iterator<Item = v1::SnapshotChunk> + Send> =
            Box::new(chunks.chain(std::iter::once(last)));
        let addr = addr.clone();
        tokio::spawn(async move {
            transfer_snapshot(addr, to, chunks).await;
            drop(guard);
        });
    }
}

/// Streams one snapshot to a peer; failures are logged (the leader asks again later).
async fn transfer_snapshot(
    addr: String,
    to: ReplicaId,
    chunks: Box<dyn Iterator<Item = v1::SnapshotChunk> + Send>,
) {
    let channel = match connect(&addr).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(peer = to, error = %e, "snapshot transfer: peer unreachable");
            return;
        }
    };
    let mut client = strata_rpc::limits::paxos_peer_client(channel);
    // Chunks are produced on a blocking thread (they may come from disk) and flow through a
    // small bounded channel: the snapshot is never held whole in memory.
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        for chunk in chunks {
            if tx.blocking_send(chunk).is_err() {
                return; // the transfer was abandoned
            }
        }
    });
    let mut req = Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.set_timeout(SNAPSHOT_TIMEOUT);
    if let Err(e) = client.install_snapshot(req).await {
        tracing::warn!(peer = to, error = %e, "snapshot transfer failed");
    }
}

async fn connect(addr: &str) -> Result<tonic::transport::Channel, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true);
    // The whole connection set-up, HTTP/2 handshake included, has a deadline: a peer that
    // accepts TCP but never answers (stopped, hung) must not hold the sender forever.
    match tokio::time::timeout(Duration::from_secs(2), endpoint.connect()).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("connecting to {addr} timed out")),
    }
}

/// Sends one peer's queue as batches, reconnecting with back-off.
async fn peer_sender(
    group: u64,
    me: ReplicaId,
    to: ReplicaId,
    addr: String,
    mut rx: mpsc::Receiver<Message>,
    queued_bytes: Arc<AtomicUsize>,
) {
    let taken = |m: &Message| {
        queued_bytes.fetch_sub(m.payload_bytes(), Ordering::Relaxed);
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut client = match connect(&addr).await {
            Ok(c) => {
                backoff = Duration::from_millis(50);
                strata_rpc::limits::paxos_peer_client(c)
            }
            Err(e) => {
                tracing::debug!(peer = to, error = %e, "peer unreachable");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                // Messages queued meanwhile are stale by now; drop them rather than replay.
                while let Ok(m) = rx.try_recv() {
                    taken(&m);
                }
                continue;
            }
        };
        loop {
            let Some(first) = rx.recv().await else {
                return; // the transport was dropped
            };
            taken(&first);
            let mut batch = v1::PaxosBatch {
                group_id: group,
                from: me,
                to,
                messages: vec![to_proto(&first.body)],
            };
            let mut bytes = batch.encoded_len();
            while bytes < strata_rpc::MAX_PAXOS_BATCH_BYTES {
                let Ok(m) = rx.try_recv() else { break };
                taken(&m);
                let p = to_proto(&m.body);
                bytes += p.encoded_len() + 4;
                batch.messages.push(p);
            }
            let mut req = Request::new(batch);
            req.set_timeout(SEND_TIMEOUT);
            if let Err(e) = client.send(req).await {
                tracing::debug!(peer = to, error = %e, "send failed; reconnecting");
                break;
            }
        }
    }
}

struct PeerService<R> {
    group: u64,
    node: Node<R>,
}

type AckResult = Result<Response<v1::SendAck>, Status>;

impl<R: Send + 'static> PeerService<R> {
    fn deliver(&self, batch: v1::PaxosBatch) -> Result<(), Status> {
        if batch.group_id != self.group {
            return Err(strata_rpc::error::invalid_argument(format!(
                "batch for group {} sent to group {}",
                batch.group_id, self.group
            )));
        }
        for m in batch.messages {
            if let Some(m) = from_proto(batch.from, batch.to, m) {
                self.node.deliver(m);
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl<R: Send + 'static> PaxosPeer for PeerService<R> {
    async fn send(&self, request: Request<v1::PaxosBatch>) -> AckResult {
        self.deliver(request.into_inner())?;
        Ok(Response::new(v1::SendAck {}))
    }

    async fn send_stream(&self, request: Request<Streaming<v1::PaxosBatch>>) -> AckResult {
        let mut stream = request.into_inner();
        while let Some(batch) = stream.next().await {
            self.deliver(batch?)?;
        }
        Ok(Response::new(v1::SendAck {}))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<v1::SnapshotChunk>>,
    ) -> Result<Response<v1::InstallSnapshotResponse>, Status> {
        let mut stream = request.into_inner();
        // Chunks flow to the state machine as they arrive, through a small bounded channel:
        // the snapshot is never held whole in memory. A transfer that breaks off hands the
        // state machine an error, so it keeps its old state.
        let first = match stream.next().await {
            Some(chunk) => chunk?,
            None => return Err(Status::aborted("empty snapshot stream")),
        };
        if first.group_id != self.group {
            return Err(strata_rpc::error::invalid_argument(
                "snapshot for another group",
            ));
        }
        let index = first.index;
        let (tx, mut rx) = mpsc::channel::<Result<Vec<u8>, String>>(4);
        let chunks = std::iter::from_fn(move || rx.blocking_recv());
        self.node.install_snapshot(index, Box::new(chunks)).await;
        let mut next = Some(first);
        let mut complete = false;
        while let Some(chunk) = next.take() {
            if chunk.index != index || chunk.group_id != self.group {
                let _ = tx
                    .send(Err("snapshot chunks disagree on index or group".into()))
                    .await;
                return Err(strata_rpc::error::invalid_argument(
                    "inconsistent snapshot stream",
                ));
            }
            if chunk.done {
                complete = true;
                break;
            }
            if tx.send(Ok(chunk.data)).await.is_err() {
                return Err(Status::aborted("the node stopped consuming the snapshot"));
            }
            // The node's driver waits on these chunks while it installs: a sender that stalls
            // must not hold it (and the replica's progress) for the transfer's whole deadline.
            next = match tokio::time::timeout(SNAPSHOT_CHUNK_TIMEOUT, stream.next()).await {
                Ok(Some(Ok(c))) => Some(c),
                Ok(Some(Err(e))) => {
                    let _ = tx.send(Err(format!("snapshot stream failed: {e}"))).await;
                    return Err(e);
                }
                Ok(None) => None,
                Err(_) => {
                    let why = format!("no snapshot chunk for {SNAPSHOT_CHUNK_TIMEOUT:?}");
                    let _ = tx.send(Err(why.clone())).await;
                    return Err(Status::deadline_exceeded(why));
                }
            };
        }
        if !complete {
            let _ = tx
                .send(Err("snapshot stream ended before its last chunk".into()))
                .await;
            return Err(Status::aborted("snapshot stream ended early"));
        }
        drop(tx);
        Ok(Response::new(v1::InstallSnapshotResponse {
            applied_index: self.node.status().applied_index,
        }))
    }
}

/// The `PaxosPeer` gRPC service delivering batches for `group` to `node`.
pub fn peer_service<R: Send + 'static>(
    group: u64,
    node: Node<R>,
) -> PaxosPeerServer<impl PaxosPeer> {
    strata_rpc::limits::paxos_peer_server(PeerService { group, node })
}

struct StatusService<R> {
    group: u64,
    node: Node<R>,
}

#[tonic::async_trait]
impl<R: Send + 'static> NodeStatus for StatusService<R> {
    async fn status(
        &self,
        _: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusResponse>, Status> {
        let s = self.node.status();
        let role = match s.role.as_str() {
            "leader" => v1::Role::Leader,
            "candidate" => v1::Role::Candidate,
            "follower" => v1::Role::Follower,
            _ => v1::Role::Unspecified,
        };
        Ok(Response::new(v1::StatusResponse {
            role: role as i32,
            ballot: Some(v1::Ballot {
                round: s.ballot.round,
                replica: s.ballot.replica,
            }),
            leader_id: s.leader,
            leader_address: String::new(),
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            log_start: s.log_start,
            log_entries: s.log_len,
            log_bytes: s.log_bytes as u64,
            group_id: self.group,
            replica_id: s.id,
            config_num: None,
        }))
    }
}

/// The `NodeStatus` service: role, ballot, leader, commit and applied index, log size.
pub fn status_service<R: Send + 'static>(
    group: u64,
    node: Node<R>,
) -> NodeStatusServer<impl NodeStatus> {
    strata_rpc::limits::node_status_server(StatusService { group, node })
}

/// Writes `dir/IDENTITY` (group and replica id) on first start; afterwards refuses to run a
/// replica on a directory that belongs to another group or replica.
pub fn check_identity(dir: &Path, group: u64, id: ReplicaId) -> Result<(), String> {
    let path = dir.join("IDENTITY");
    let mine = format!("group={group}\nreplica={id}\n");
    match std::fs::read_to_string(&path) {
        Ok(found) if found == mine => Ok(()),
        Ok(found) => Err(format!(
            "{} belongs to another node ({}), not group {group} replica {id}",
            dir.display(),
            found.trim().replace('\n', ", ")
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let tmp = dir.join("IDENTITY.tmp");
            std::fs::write(&tmp, &mine).map_err(|e| e.to_string())?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_written_once_and_enforced() {
        let dir = tempfile::tempdir().unwrap();
        check_identity(dir.path(), 1, 2).unwrap();
        check_identity(dir.path(), 1, 2).unwrap();
        let err = check_identity(dir.path(), 1, 3).unwrap_err();
        assert!(err.contains("belongs to another node"), "{err}");
        assert!(check_identity(dir.path(), 9, 2).is_err());
    }
}
