//! The services a node serves to its peers and operators: `PaxosPeer` (batches of messages,
//! snapshot installs). `NodeStatus` is in [`super::status`].

use std::time::Duration;

use strata_rpc::v1;
use strata_rpc::v1::paxos_peer_server::{PaxosPeer, PaxosPeerServer};
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use strata_rpc::tls::{Identity, PeerInfo};

use crate::auth::Refusals;
use crate::node::Node;
use crate::state_machine::TransferError;
use crate::wire::from_proto;

/// Longest wait for the next chunk of a snapshot being installed.
const SNAPSHOT_CHUNK_TIMEOUT: Duration = Duration::from_secs(10);

struct PeerService<R> {
    group: u64,
    node: Node<R>,
    refusals: Refusals,
}

type AckResult = Result<Response<v1::SendAck>, Status>;

impl<R: Send + 'static> PeerService<R> {
    /// With TLS, a replica speaks only for itself: the sender a batch or snapshot names must
    /// be the replica its certificate names (the layer already checked the group). Without
    /// TLS there is nobody to compare with.
    fn check_sender(&self, peer: Option<&PeerInfo>, from: u64, method: &str) -> Result<(), Status> {
        match peer.and_then(|p| p.identity.as_ref()) {
            None => Ok(()),
            Some(Identity::Node { gid, id }) if *gid == self.group && *id == from => Ok(()),
            Some(identity) => Err(self.refusals.deny(
                peer,
                method,
                format!(
                    "{identity} may not send as replica {from} of group {}",
                    self.group
                ),
            )),
        }
    }

    fn deliver(&self, peer: Option<&PeerInfo>, batch: v1::PaxosBatch) -> Result<(), Status> {
        self.check_sender(peer, batch.from, "PaxosPeer/Send")?;
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
        let peer = request.extensions().get::<PeerInfo>().cloned();
        self.deliver(peer.as_ref(), request.into_inner())?;
        Ok(Response::new(v1::SendAck {}))
    }

    async fn send_stream(&self, request: Request<Streaming<v1::PaxosBatch>>) -> AckResult {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let mut stream = request.into_inner();
        while let Some(batch) = stream.next().await {
            self.deliver(peer.as_ref(), batch?)?;
        }
        Ok(Response::new(v1::SendAck {}))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<v1::SnapshotChunk>>,
    ) -> Result<Response<v1::InstallSnapshotResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
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
        self.check_sender(peer.as_ref(), first.from, "PaxosPeer/InstallSnapshot")?;
        if first.to != self.node.status().id {
            return Err(strata_rpc::error::invalid_argument(format!(
                "snapshot for replica {}, sent to replica {}",
                first.to,
                self.node.status().id
            )));
        }
        let (index, from) = (first.index, first.from);
        let membership = match first.membership.clone() {
            Some(m) => Some(crate::wire::membership_from_proto(m).ok_or_else(|| {
                strata_rpc::error::invalid_argument("snapshot carries an impossible membership")
            })?),
            None => None,
        };
        let (tx, mut rx) = mpsc::channel::<Result<Vec<u8>, TransferError>>(4);
        let chunks = std::iter::from_fn(move || rx.blocking_recv());
        self.node
            .install_snapshot(from, index, membership, Box::new(chunks))
            .await;
        let mut next = Some(first);
        let mut complete = false;
        while let Some(chunk) = next.take() {
            if chunk.index != index || chunk.group_id != self.group || chunk.from != from {
                let _ = tx
                    .send(Err(TransferError(
                        "snapshot chunks disagree on index or group".into(),
                    )))
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
                    let _ = tx
                        .send(Err(TransferError(format!("snapshot stream failed: {e}"))))
                        .await;
                    return Err(e);
                }
                Ok(None) => None,
                Err(_) => {
                    let why = format!("no snapshot chunk for {SNAPSHOT_CHUNK_TIMEOUT:?}");
                    let _ = tx.send(Err(TransferError(why.clone()))).await;
                    return Err(Status::deadline_exceeded(why));
                }
            };
        }
        if !complete {
            let _ = tx
                .send(Err(TransferError(
                    "snapshot stream ended before its last chunk".into(),
                )))
                .await;
            return Err(Status::aborted("snapshot stream ended early"));
        }
        drop(tx);
        Ok(Response::new(v1::InstallSnapshotResponse {
            applied_index: self.node.status().applied_index,
        }))
    }
}

/// The `PaxosPeer` gRPC service delivering batches for `group` to `node`; refusals (a
/// replica sending as another, with TLS) are counted in `refusals`.
pub fn peer_service<R: Send + 'static>(
    group: u64,
    node: Node<R>,
    refusals: Refusals,
) -> PaxosPeerServer<impl PaxosPeer> {
    strata_rpc::limits::paxos_peer_server(PeerService {
        group,
        node,
        refusals,
    })
}
