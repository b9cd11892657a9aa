//! A service's calls into its node, with the gRPC status a client acts on: proposals and read
//! barriers bounded by a deadline, and how a node's refusal becomes a status.

use std::collections::BTreeMap;
use std::time::Duration;

use strata_paxos::ReplicaId;
use tonic::Status;

use crate::node::{Node, NodeError};

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
        NodeError::MembershipRefused(why) => {
            Status::failed_precondition(format!("membership change refused: {why}"))
        }
        NodeError::InvalidCommand(why) => strata_rpc::error::invalid_argument(why),
    }
}

/// `peers` with the addresses of members added since the group started (a leader hint must
/// name where a new member is reached).
fn with_members<R: Send + 'static>(
    node: &Node<R>,
    peers: &BTreeMap<ReplicaId, String>,
) -> BTreeMap<ReplicaId, String> {
    let mut all = peers.clone();
    all.extend(node.status().membership.addresses);
    all
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
        .map_err(|e| node_error_status(e, &with_members(node, peers)))
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
        .map_err(|e| node_error_status(e, &with_members(node, peers)))
}
