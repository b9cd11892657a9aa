//! The peer transport: per peer, a bounded queue and one task that (re)connects with
//! exponential back-off and sends the queue as batches capped at
//! [`MAX_PAXOS_BATCH_BYTES`](strata_rpc::MAX_PAXOS_BATCH_BYTES). When a peer is down or slow
//! its queue fills and further messages to it are dropped — Paxos tolerates loss, the leader
//! re-sends what matters — so a dead peer never grows the sender's memory. Snapshots go as a
//! stream of chunks, one transfer per peer at a time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use strata_paxos::{Message, ReplicaId, Slot};
use strata_rpc::v1;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream;
use tonic::Request;

use crate::state_machine::SnapshotStream;
use crate::transport::Transport;
use crate::wire::to_proto;

/// Messages queued per peer before new ones are dropped...
const PEER_QUEUE: usize = 4096;
/// ...and bytes (of command payload) queued per peer: a peer that is down or stalled costs
/// the sender at most this much memory plus one message. As much as a node admits in flight
/// (`MAX_INFLIGHT_PROPOSAL_BYTES`), so that the Accepts of a full window, or the parts of a
/// promise reporting it, pass whole instead of being dropped part by part forever.
const PEER_QUEUE_BYTES: usize = 64 << 20;
/// Deadline of one batch RPC.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
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

/// Why a connection to a peer was not made.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    #[error("connecting timed out")]
    Timeout,
}

async fn connect(addr: &str) -> Result<tonic::transport::Channel, ConnectError> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true);
    // The whole connection set-up, HTTP/2 handshake included, has a deadline: a peer that
    // accepts TCP but never answers (stopped, hung) must not hold the sender forever.
    match tokio::time::timeout(Duration::from_secs(2), endpoint.connect()).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ConnectError::Timeout),
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
