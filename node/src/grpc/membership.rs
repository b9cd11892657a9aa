//! The `GroupMembership` service: an administrator's membership change, proposed at the
//! leader and answered once chosen (issue 17). The rules and refusals are the Paxos core's
//! (`strata_paxos::Replica::propose_membership_change`); this maps them to gRPC.

use std::collections::BTreeMap;
use std::time::Duration;

use strata_paxos::{MembershipChange, ReplicaId};
use strata_rpc::v1;
use strata_rpc::v1::group_membership_server::{GroupMembership, GroupMembershipServer};
use strata_rpc::v1::membership_change_request::Kind;
use tonic::{Request, Response, Status};

use crate::grpc::calls::node_error_status;
use crate::node::Node;

/// How long a change may take to be chosen before the caller is told the outcome is
/// unknown (it then reads the membership and retries).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

struct MembershipService<R> {
    node: Node<R>,
    /// The group's first replicas' addresses (for the leader hint).
    peers: BTreeMap<ReplicaId, String>,
}

/// The change a request asks for, or why it is not one.
pub fn change_from_proto(req: &v1::MembershipChangeRequest) -> Result<MembershipChange, Status> {
    let id = req.replica_id;
    if id == 0 {
        return Err(strata_rpc::error::invalid_argument(
            "replica id 0 is not one",
        ));
    }
    match Kind::try_from(req.kind) {
        Ok(Kind::AddLearner) => {
            let address = req.address.trim();
            if address.is_empty() || !address.contains(':') {
                return Err(strata_rpc::error::invalid_argument(format!(
                    "a new replica needs an address host:port, not {:?}",
                    req.address
                )));
            }
            Ok(MembershipChange::AddLearner(id, address.to_string()))
        }
        Ok(Kind::Promote) => Ok(MembershipChange::Promote(id)),
        Ok(Kind::Remove) => Ok(MembershipChange::Remove(id)),
        _ => Err(strata_rpc::error::invalid_argument(
            "membership change kind not set",
        )),
    }
}

#[tonic::async_trait]
impl<R: Send + 'static> GroupMembership for MembershipService<R> {
    async fn change(
        &self,
        request: Request<v1::MembershipChangeRequest>,
    ) -> Result<Response<v1::MembershipChangeResponse>, Status> {
        let change = change_from_proto(request.get_ref())?;
        tracing::info!(?change, "membership change asked for");
        let mut peers = self.peers.clone();
        peers.extend(self.node.status().membership.addresses);
        let result = tokio::time::timeout(CHANGE_TIMEOUT, self.node.change_membership(change))
            .await
            .map_err(|_| {
                Status::unavailable(format!(
                    "not chosen within {CHANGE_TIMEOUT:?}; the outcome is unknown: read the \
                     membership and retry"
                ))
            })?;
        let membership = result.map_err(|e| node_error_status(e, &peers))?;
        tracing::info!(version = membership.version, voters = ?membership.voters, learners = ?membership.learners, "membership change chosen");
        Ok(Response::new(v1::MembershipChangeResponse {
            membership: Some(crate::wire::membership_to_proto(&membership)),
        }))
    }
}

/// The `GroupMembership` service of `node`; `peers` are the group's first replicas'
/// addresses.
pub fn membership_service<R: Send + 'static>(
    node: Node<R>,
    peers: BTreeMap<ReplicaId, String>,
) -> GroupMembershipServer<impl GroupMembership> {
    GroupMembershipServer::new(MembershipService { node, peers })
}
