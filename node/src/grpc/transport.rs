//! The peer transport: per peer, a bounded queue and one task that (re)connects with
//! exponential back-off and sends the queue as batches capped at
//! [`MAX_PAXOS_BATCH_BYTES`](strata_rpc::MAX_PAXOS_BATCH_BYTES). When a peer is down or slow
//! its queue fills and further messages to it are dropped — Paxos tolerates loss, the leader
//! re-sends what matters — so a dead peer never grows the sender's memory. Snapshots go as a
//! stream of chunks, one transfer per peer at a time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use prost::Message as _;
use strata_paxos::{Membership, Message, ReplicaId, Slot};
use strata_rpc::v1;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream;
use tonic::Request;

use strata_rpc::tls::Security;

use crate::histogram::{exponential_bounds, DurationHistogram};
use crate::node::SMALL_MESSAGE_BYTES;
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
/// Deadline of one batch RPC of small messages (a large one gets 100 ms more per MiB).
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of one snapshot transfer.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(600);

/// The label of the per-peer metrics: the peer's replica id.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    /// The peer's replica id.
    pub peer: String,
}

/// What the transport measures about each peer (etcd's `etcd_network_peer_*`):
///
/// - `strata_peer_send_queue_bytes{peer}`: bytes of messages queued for the peer and not yet
///   sent (a peer that is down or slow shows a full queue, `PEER_QUEUE_BYTES`, 64 MiB);
/// - `strata_peer_send_failures_total{peer}`: batches whose send failed (the peer was
///   unreachable, refused, or did not answer in time) and connection attempts that failed;
/// - `strata_peer_round_trip_seconds{peer}`: seconds from sending a batch to its
///   acknowledgement.
///
/// Cheap to clone (shared handles); each update is an atomic operation on a handle the
/// sender task holds, no lookup per message.
#[derive(Debug, Clone)]
pub struct PeerMetrics {
    queue_bytes: Family<PeerLabel, Gauge>,
    failures: Family<PeerLabel, Counter>,
    round_trip: Family<PeerLabel, DurationHistogram, fn() -> DurationHistogram>,
}

impl Default for PeerMetrics {
    fn default() -> Self {
        PeerMetrics {
            queue_bytes: Family::default(),
            failures: Family::default(),
            round_trip: Family::new_with_constructor(|| {
                // 100 µs to about 3.3 s, doubling.
                DurationHistogram::new(exponential_bounds(0.0001, 2.0, 16))
            }),
        }
    }
}

impl PeerMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("strata_peer");
        r.register(
            "send_queue_bytes",
            "Bytes of messages queued for a peer and not yet sent",
            self.queue_bytes.clone(),
        );
        r.register(
            "send_failures",
            "Batches to a peer whose send failed, and failed connection attempts",
            self.failures.clone(),
        );
        r.register(
            "round_trip_seconds",
            "Seconds from sending a batch to a peer to its acknowledgement",
            self.round_trip.clone(),
        );
    }

    /// The handles of one peer's metrics, created at zero.
    fn of(&self, peer: ReplicaId) -> PeerGauges {
        let label = PeerLabel {
            peer: peer.to_string(),
        };
        PeerGauges {
            queued_bytes: self.queue_bytes.get_or_create_owned(&label),
            failures: self.failures.get_or_create_owned(&label),
            round_trip: self.round_trip.get_or_create_owned(&label),
        }
    }
}

/// One peer's metric handles.
#[derive(Clone)]
struct PeerGauges {
    /// The payload size of the messages in the peer's channel (added before a send,
    /// subtracted when the sender task takes one out). Also the queue's byte bound's
    /// measure: see [`Transport::send`].
    queued_bytes: Gauge,
    failures: Counter,
    round_trip: DurationHistogram,
}

/// Sends Paxos traffic to the peers of one group over gRPC.
pub struct GrpcTransport {
    group: u64,
    me: ReplicaId,
    /// The link to each current member. The lock is held for a map lookup and a
    /// non-blocking queue push per message (or to swap links when the membership changes),
    /// never across I/O.
    peers: parking_lot::RwLock<BTreeMap<ReplicaId, PeerLink>>,
    security: Security,
    metrics: PeerMetrics,
}

/// The queues to one peer: two lanes, each with its own sender task and connection, so that
/// a heartbeat or a vote never waits behind the transfer of a large value (head-of-line
/// blocking would make a live leader look dead to a follower). Paxos tolerates the
/// reordering between lanes. Invariant: `gauges.queued_bytes` is the payload size of the
/// messages in both channels (added before a send, subtracted when a sender task takes one
/// out).
struct PeerLink {
    addr: String,
    /// Messages smaller than [`SMALL_MESSAGE_BYTES`] (no values: heartbeats, votes, acknowledgements).
    tx: mpsc::Sender<Message>,
    /// The others (`Accept`s, `Learn`s and `Promise`s carrying values).
    bulk_tx: mpsc::Sender<Message>,
    gauges: PeerGauges,
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
    /// Spawns one sender task per peer on the current tokio runtime. Its metrics are
    /// registered nowhere ([`GrpcTransport::with_metrics`] exposes them).
    pub fn new(
        group: u64,
        me: ReplicaId,
        peers: BTreeMap<ReplicaId, String>,
    ) -> Arc<GrpcTransport> {
        GrpcTransport::with_metrics(group, me, peers, &PeerMetrics::default())
    }

    /// [`GrpcTransport::new`], measuring each peer in `metrics`.
    pub fn with_metrics(
        group: u64,
        me: ReplicaId,
        peers: BTreeMap<ReplicaId, String>,
        metrics: &PeerMetrics,
    ) -> Arc<GrpcTransport> {
        GrpcTransport::with_security(group, me, peers, metrics, Security::Plaintext)
    }

    /// [`GrpcTransport::with_metrics`], connecting as `security` says (mutual TLS with this
    /// replica's certificate, or plaintext).
    pub fn with_security(
        group: u64,
        me: ReplicaId,
        peers: BTreeMap<ReplicaId, String>,
        metrics: &PeerMetrics,
        security: Security,
    ) -> Arc<GrpcTransport> {
        let transport = GrpcTransport {
            group,
            me,
            peers: parking_lot::RwLock::new(BTreeMap::new()),
            security,
            metrics: metrics.clone(),
        };
        let links = (peers.into_iter())
            .filter(|(id, _)| *id != me)
            .map(|(id, addr)| (id, transport.link(id, addr)))
            .collect();
        *transport.peers.write() = links;
        Arc::new(transport)
    }

    /// The queues to peer `id` at `addr`, with their sender tasks (which end when the link
    /// is dropped).
    fn link(&self, id: ReplicaId, addr: String) -> PeerLink {
        let gauges = self.metrics.of(id);
        let lane = || {
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            let peer = Peer {
                group: self.group,
                me: self.me,
                to: id,
                addr: addr.clone(),
                security: self.security.clone(),
            };
            tokio::spawn(peer_sender(peer, rx, gauges.clone()));
            tx
        };
        let (tx, bulk_tx) = (lane(), lane());
        PeerLink {
            addr,
            tx,
            bulk_tx,
            gauges,
            snapshot_running: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The peers this transport reaches, and where.
    pub fn peers(&self) -> BTreeMap<ReplicaId, String> {
        (self.peers.read().iter())
            .map(|(id, l)| (*id, l.addr.clone()))
            .collect()
    }
}

impl Transport for GrpcTransport {
    fn set_peers(&self, members: &[ReplicaId], addresses: &BTreeMap<ReplicaId, String>) {
        let mut peers = self.peers.write();
        peers.retain(|id, _| members.contains(id));
        for &id in members.iter().filter(|&&id| id != self.me) {
            let Some(addr) = addresses.get(&id) else {
                continue; // keeps the address it was built with, if any
            };
            if peers.get(&id).is_none_or(|l| l.addr != *addr) {
                tracing::info!(peer = id, addr = %addr, "reaching a new member");
                peers.insert(id, self.link(id, addr.clone()));
            }
        }
    }

    fn send(&self, messages: Vec<Message>) {
        let peers = self.peers.read();
        for m in messages {
            let Some(link) = peers.get(&m.to) else {
                continue;
            };
            // Full queue: the peer is down or slow; dropping is safe (Paxos re-sends what
            // matters), and it bounds the memory a dead peer costs.
            // A queue below its bound takes any one message, however large (an Accept of the
            // largest command is above the bound, and small messages such as heartbeats are
            // nearly always queued beside it): otherwise it would be dropped forever. So the
            // queue holds at most the bound plus one message. Small messages (heartbeats,
            // votes, acknowledgements) pass a full byte bound: see `SMALL_MESSAGE_BYTES`.
            let size = Message::payload_bytes(&m);
            let small = size < SMALL_MESSAGE_BYTES;
            let queued = link.gauges.queued_bytes.get();
            if queued >= PEER_QUEUE_BYTES as i64 && !small {
                tracing::debug!(peer = m.to, queued, "peer queue full: message dropped");
                continue;
            }
            let (size, lane) = (size as i64, if small { &link.tx } else { &link.bulk_tx });
            link.gauges.queued_bytes.inc_by(size);
            if lane.try_send(m).is_err() {
                link.gauges.queued_bytes.dec_by(size);
                tracing::debug!("peer queue full (count): message dropped");
            }
        }
    }

    fn send_snapshot(
        &self,
        to: ReplicaId,
        index: Slot,
        membership: Option<Membership>,
        chunks: SnapshotStream,
    ) {
        let peers = self.peers.read();
        let Some(PeerLink {
            addr,
            snapshot_running,
            ..
        }) = peers.get(&to)
        else {
            return;
        };
        if snapshot_running.swap(true, Ordering::AcqRel) {
            return; // one is on its way; the leader asks again if that one fails
        }
        let guard = TransferGuard(snapshot_running.clone());
        let (group, me) = (self.group, self.me);
        let membership = membership.as_ref().map(crate::wire::membership_to_proto);
        let carried = membership.clone();
        let chunks = chunks.enumerate().map(move |(i, data)| v1::SnapshotChunk {
            group_id: group,
            from: me,
            to,
            ballot: None,
            index,
            chunk_index: i as u64,
            data,
            done: false,
            membership: carried.clone(),
        });
        let last = v1::SnapshotChunk {
            group_id: group,
            from: me,
            to,
            index,
            done: true,
            membership,
            ..Default::default()
        };
        let chunks: Box<dyn Iterator<Item = v1::SnapshotChunk> + Send> =
            Box::new(chunks.chain(std::iter::once(last)));
        let addr = addr.clone();
        let security = self.security.clone();
        tokio::spawn(async move {
            transfer_snapshot(&security, addr, to, chunks).await;
            drop(guard);
        });
    }
}

/// Streams one snapshot to a peer; failures are logged (the leader asks again later).
async fn transfer_snapshot(
    security: &Security,
    addr: String,
    to: ReplicaId,
    chunks: Box<dyn Iterator<Item = v1::SnapshotChunk> + Send>,
) {
    let channel = match connect(security, &addr).await {
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

async fn connect(
    security: &Security,
    addr: &str,
) -> Result<tonic::transport::Channel, ConnectError> {
    let endpoint = (security.endpoint(addr)?)
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true);
    // The whole connection set-up, TLS and HTTP/2 handshakes included, has a deadline: a
    // peer that accepts TCP but never answers (stopped, hung) must not hold the sender
    // forever.
    match tokio::time::timeout(Duration::from_secs(2), security.connect(endpoint)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ConnectError::Timeout),
    }
}

/// One peer as its sender task sees it.
struct Peer {
    group: u64,
    me: ReplicaId,
    to: ReplicaId,
    addr: String,
    security: Security,
}

/// Sends one peer's queue as batches, reconnecting with back-off.
async fn peer_sender(peer: Peer, mut rx: mpsc::Receiver<Message>, gauges: PeerGauges) {
    let Peer {
        group,
        me,
        to,
        addr,
        security,
    } = peer;
    let taken = |m: &Message| {
        gauges.queued_bytes.dec_by(m.payload_bytes() as i64);
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut client = match connect(&security, &addr).await {
            Ok(c) => {
                backoff = Duration::from_millis(50);
                strata_rpc::limits::paxos_peer_client(c)
            }
            Err(e) => {
                tracing::debug!(peer = to, error = %e, "peer unreachable");
                gauges.failures.inc();
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
            // A large value takes longer to move than a heartbeat: 100 ms more per MiB.
            req.set_timeout(SEND_TIMEOUT + Duration::from_millis(100) * (bytes >> 20) as u32);
            let sent = Instant::now();
            if let Err(e) = client.send(req).await {
                tracing::debug!(peer = to, error = %e, "send failed; reconnecting");
                gauges.failures.inc();
                break;
            }
            gauges.round_trip.observe(sent.elapsed());
        }
    }
}
