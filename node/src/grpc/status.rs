//! The `NodeStatus` service: what a node reports about itself to operators (`strata status`,
//! `strata health`) and tests — its Paxos view (role, ballot, leader, commit and applied
//! index, log size), and, through [`StatusExtras`], what the host and the service running on
//! the node know: the leader's address, the data directory's size, the configuration applied
//! and the shards held. The node itself knows nothing of shards: a service hands in a
//! [`ServiceStatusFn`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use strata_paxos::ReplicaId;
use strata_rpc::v1;
use strata_rpc::v1::node_status_server::{NodeStatus, NodeStatusServer};
use tonic::{Request, Response, Status};

use crate::disk_usage::DiskUsage;
use crate::node::Node;

/// What the service running on a node adds to the node's status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceStatus {
    /// The latest configuration the service applied (shard servers and masters).
    pub config_num: Option<u64>,
    /// The shards the replica serves, ascending (shard servers).
    pub shards_held: Vec<u32>,
    /// The last error the service reported, if any.
    pub last_error: Option<String>,
    /// Figures of the shards the replica serves or pulls, by shard ascending (shard
    /// servers; the node passes them through without looking).
    pub shards: Vec<v1::ShardFigures>,
}

/// Called on every `Status` request for the service's part of the answer; must be quick (it
/// runs on the request's task).
pub type ServiceStatusFn = Arc<dyn Fn() -> ServiceStatus + Send + Sync>;

/// What the `NodeStatus` service reports beyond the node's own status.
#[derive(Clone, Default)]
pub struct StatusExtras {
    /// The group's replicas by id: the leader's address is looked up here.
    pub peers: BTreeMap<ReplicaId, String>,
    /// The replica's data directory, whose size is reported (measured now and then).
    pub data_dir: Option<PathBuf>,
    /// The service's part.
    pub service: Option<ServiceStatusFn>,
    /// The address of the process's HTTP endpoint, if it serves one.
    pub http_address: Option<String>,
}

struct StatusService<R> {
    group: u64,
    node: Node<R>,
    peers: BTreeMap<ReplicaId, String>,
    disk: Option<DiskUsage>,
    service: Option<ServiceStatusFn>,
    http_address: String,
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
        let service = self.service.as_ref().map(|f| f()).unwrap_or_default();
        let data_bytes = match &self.disk {
            Some(disk) => disk.bytes().await,
            None => 0,
        };
        let address_of = |id| {
            (s.membership.addresses.get(&id))
                .or_else(|| self.peers.get(&id))
                .cloned()
        };
        let leader_address = s.leader.and_then(address_of).unwrap_or_default();
        let mut membership = crate::wire::membership_to_proto(&s.membership);
        for id in s.membership.members() {
            if let Some(addr) = address_of(id) {
                membership.addresses.entry(id).or_insert(addr);
            }
        }
        let progress = (s.progress.iter())
            .map(|&(replica_id, commit_index, heard)| v1::ReplicaProgress {
                replica_id,
                commit_index,
                heard_ms_ago: heard.unwrap_or(u64::MAX),
            })
            .collect();
        Ok(Response::new(v1::StatusResponse {
            role: role as i32,
            ballot: Some(v1::Ballot {
                round: s.ballot.round,
                replica: s.ballot.replica,
            }),
            leader_id: s.leader,
            leader_address,
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            log_start: s.log_start,
            log_entries: s.log_len,
            log_bytes: s.log_bytes as u64,
            group_id: self.group,
            replica_id: s.id,
            config_num: service.config_num,
            shards_held: service.shards_held,
            data_bytes,
            // The node's own failure stops it: it outranks what the service last saw.
            last_error: s.last_error.or(service.last_error).unwrap_or_default(),
            http_address: self.http_address.clone(),
            shards: service.shards,
            membership: Some(membership),
            progress,
            not_member: s.not_member,
        }))
    }
}

/// The `NodeStatus` service of `node` in `group`: its Paxos view only.
pub fn status_service<R: Send + 'static>(
    group: u64,
    node: Node<R>,
) -> NodeStatusServer<impl NodeStatus> {
    status_service_with(group, node, StatusExtras::default())
}

/// The `NodeStatus` service of `node` in `group`, with what the host and the service add.
pub fn status_service_with<R: Send + 'static>(
    group: u64,
    node: Node<R>,
    extras: StatusExtras,
) -> NodeStatusServer<impl NodeStatus> {
    strata_rpc::limits::node_status_server(StatusService {
        group,
        node,
        peers: extras.peers,
        disk: extras.data_dir.map(DiskUsage::new),
        service: extras.service,
        http_address: extras.http_address.unwrap_or_default(),
    })
}
