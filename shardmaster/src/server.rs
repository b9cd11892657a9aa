//! The `ShardMaster` gRPC service of one master replica.
//!
//! Join, Leave and Move go through the Paxos log: the handler checks the request's shape,
//! proposes the encoded command on the local node and answers with the state machine's reply
//! once the command is applied here. Only the leader proposes: a follower answers
//! `WRONG_LEADER` with its hint. Query is a linearizable read: the node's read barrier (a quorum
//! confirms this replica still leads, and it has applied everything chosen before the read
//! started) then a look at the applied state, without a log entry.
//!
//! Status codes (see `strata_rpc::error`): a refused operation ([`OpError`](crate::OpError)) or a malformed
//! request is `INVALID_ARGUMENT`; a follower is `UNAVAILABLE` with a `WRONG_LEADER` detail; a
//! proposal or read that does not complete within the deadline (no quorum) is `UNAVAILABLE`
//! without a detail — its outcome is unknown, and the client retries under the same
//! `(client_id, seq)`, which the state machine applies at most once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use strata_node::grpc::{propose_within, read_barrier_within};
use strata_node::Node;
use strata_paxos::ReplicaId;
use strata_rpc::config::groups_from_proto;
use strata_rpc::error::invalid_argument;
use strata_rpc::tls::Security;
use strata_rpc::{v1, MAX_ADDRESSES_PER_GROUP, MAX_ADDRESS_BYTES, MAX_GROUPS};
use tonic::{Request, Response, Status};

use crate::codec::encode_command;
use crate::machine::MasterReply;
use crate::op::{Op, Reply};
use crate::state::MasterState;
use crate::wire::client_id_from_bytes;

/// How long a handler waits for a proposal to be applied or a read to be confirmed, unless
/// told otherwise.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(2);

/// The `ShardMaster` service over one replica's [`Node`].
#[derive(Clone)]
pub struct MasterService {
    node: Node<MasterReply>,
    state: Arc<RwLock<MasterState>>,
    peers: Arc<BTreeMap<ReplicaId, String>>,
    op_timeout: Duration,
    /// How this replica connects to the servers a Join names (to probe them).
    security: Security,
}

impl MasterService {
    /// A service proposing on `node` and reading `state` (the
    /// [`MasterMachine::shared`](crate::machine::MasterMachine::shared) handle of the machine
    /// the node runs). `peers` maps replica ids to gRPC addresses, for leader hints.
    pub fn new(
        node: Node<MasterReply>,
        state: Arc<RwLock<MasterState>>,
        peers: BTreeMap<ReplicaId, String>,
        op_timeout: Duration,
        security: Security,
    ) -> MasterService {
        MasterService {
            node,
            state,
            peers: Arc::new(peers),
            op_timeout,
            security,
        }
    }

    /// Proposes `op` for `(client_id, seq)` and returns the number of the config it created.
    async fn mutate(&self, client_id: &[u8], seq: u64, op: Op) -> Result<u64, Status> {
        let client = client_id_from_bytes(client_id).ok_or_else(|| {
            invalid_argument(format!(
                "client_id must be 16 bytes, got {}",
                client_id.len()
            ))
        })?;
        if seq == 0 {
            return Err(invalid_argument("seq must be at least 1"));
        }
        let command = encode_command(client, seq, &op);
        let reply = propose_within(&self.node, command, self.op_timeout, &self.peers).await?;
        match reply {
            Some(Ok(Reply::Created { num })) => Ok(num),
            Some(Ok(Reply::Config(_))) => {
                Err(Status::internal("a mutation was answered with a config"))
            }
            Some(Err(e)) => Err(invalid_argument(e.to_string())),
            None => Err(Status::internal(
                "the replicas could not decode the command",
            )),
        }
    }
}

#[tonic::async_trait]
impl v1::shard_master_server::ShardMaster for MasterService {
    async fn join(
        &self,
        request: Request<v1::JoinRequest>,
    ) -> Result<Response<v1::JoinResponse>, Status> {
        let r = request.into_inner();
        if r.groups.is_empty() {
            return Err(invalid_argument("join names no group"));
        }
        check_join_addresses(&r.groups).map_err(invalid_argument)?;
        if !r.force {
            probe_join(&self.security, &r.groups, JOIN_PROBE_TIMEOUT)
                .await
                .map_err(invalid_argument)?;
        }
        let members = self.state.read().latest().groups.len();
        if members + r.groups.len() > MAX_GROUPS {
            return Err(invalid_argument(format!(
                "{} groups joining {members} would exceed MAX_GROUPS ({MAX_GROUPS})",
                r.groups.len()
            )));
        }
        // The wire map cannot hold a gid twice; the state machine checks the rest.
        let op = Op::Join(groups_from_proto(r.groups));
        let config_num = self.mutate(&r.client_id, r.seq, op).await?;
        Ok(Response::new(v1::JoinResponse { config_num }))
    }

    async fn leave(
        &self,
        request: Request<v1::LeaveRequest>,
    ) -> Result<Response<v1::LeaveResponse>, Status> {
        let r = request.into_inner();
        if r.gids.is_empty() {
            return Err(invalid_argument("leave names no group"));
        }
        if r.gids.len() > MAX_GROUPS {
            return Err(invalid_argument(format!(
                "leave names {} groups, over MAX_GROUPS ({MAX_GROUPS})",
                r.gids.len()
            )));
        }
        let config_num = self.mutate(&r.client_id, r.seq, Op::Leave(r.gids)).await?;
        Ok(Response::new(v1::LeaveResponse { config_num }))
    }

    async fn r#move(
        &self,
        request: Request<v1::MoveRequest>,
    ) -> Result<Response<v1::MoveResponse>, Status> {
        let r = request.into_inner();
        let op = Op::Move {
            shard: r.shard,
            gid: r.gid,
        };
        let config_num = self.mutate(&r.client_id, r.seq, op).await?;
        Ok(Response::new(v1::MoveResponse { config_num }))
    }

    async fn set_servers(
        &self,
        request: Request<v1::SetServersRequest>,
    ) -> Result<Response<v1::SetServersResponse>, Status> {
        let r = request.into_inner();
        if r.groups.is_empty() {
            return Err(invalid_argument("set-servers names no group"));
        }
        check_join_addresses(&r.groups).map_err(invalid_argument)?;
        let op = Op::SetServers(groups_from_proto(r.groups));
        let config_num = self.mutate(&r.client_id, r.seq, op).await?;
        Ok(Response::new(v1::SetServersResponse { config_num }))
    }

    async fn query(
        &self,
        request: Request<v1::QueryRequest>,
    ) -> Result<Response<v1::QueryResponse>, Status> {
        let num = request.into_inner().num;
        read_barrier_within(&self.node, self.op_timeout, &self.peers).await?;
        let config = match self.state.read().query(num) {
            Some(c) => c.to_proto(),
            None => {
                return Err(Status::unavailable(format!(
                    "configuration {num:?} could not be read from this replica's store"
                )))
            }
        };
        Ok(Response::new(v1::QueryResponse {
            config: Some(config),
        }))
    }
}

/// How long a Join waits for the servers it names to answer `NodeStatus`.
const JOIN_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks every server a Join names for its `NodeStatus`, until `timeout`: each group needs a
/// majority of its servers answering as members of that group. A server of another group is
/// refused at once. (The servers may be starting: silent ones are asked again.)
pub async fn probe_join(
    security: &Security,
    groups: &BTreeMap<u64, v1::ServerList>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    for (&gid, list) in groups {
        let need = list.addresses.len() / 2 + 1;
        let mut confirmed = std::collections::BTreeSet::new();
        loop {
            let pending: Vec<&String> = list
                .addresses
                .iter()
                .filter(|a| !confirmed.contains(*a))
                .collect();
            let mut asks = tokio::task::JoinSet::new();
            for address in pending {
                let (address, security) = (address.clone(), security.clone());
                asks.spawn(async move {
                    let asked = node_group(&security, &address);
                    let answer = tokio::time::timeout_at(deadline, asked).await;
                    (address, answer.ok().flatten())
                });
            }
            while let Some(Ok((address, answer))) = asks.join_next().await {
                match answer {
                    Some(g) if g == gid => {
                        confirmed.insert(address);
                    }
                    Some(g) => {
                        return Err(format!(
                            "{address} is a replica of group {g}, not of group {gid}"
                        ))
                    }
                    None => {}
                }
            }
            if confirmed.len() >= need {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "only {} of the {} servers of group {gid} answered as its members within \
                     {timeout:?} (start them first, or join with force)",
                    confirmed.len(),
                    list.addresses.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// The group a server says it belongs to, or `None` if it does not answer.
async fn node_group(security: &Security, address: &str) -> Option<u64> {
    let timeout = Duration::from_millis(500);
    let status = strata_rpc::probe::node_status(security, address, timeout).await;
    Some(status.ok()?.group_id)
}

/// The servers a Join names, checked before anything reaches the log: each group lists 1 to
/// [`MAX_ADDRESSES_PER_GROUP`] distinct `host:port` addresses of at most
/// [`MAX_ADDRESS_BYTES`], and no address is named for two groups. (A group whose servers do
/// not exist would be given shards it can never take.)
pub fn check_join_addresses(groups: &BTreeMap<u64, v1::ServerList>) -> Result<(), String> {
    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    for (&gid, list) in groups {
        let n = list.addresses.len();
        if n == 0 {
            return Err(format!("group {gid} has no server"));
        }
        if n > MAX_ADDRESSES_PER_GROUP {
            return Err(format!(
                "group {gid} lists {n} servers, over MAX_ADDRESSES_PER_GROUP ({MAX_ADDRESSES_PER_GROUP})"
            ));
        }
        for address in &list.addresses {
            if address.len() > MAX_ADDRESS_BYTES {
                return Err(format!(
                    "group {gid}: an address of {} bytes exceeds MAX_ADDRESS_BYTES ({MAX_ADDRESS_BYTES})",
                    address.len()
                ));
            }
            let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty()
                    && !host.chars().any(|c| c.is_whitespace() || c.is_control())
                    && port.parse::<u16>().is_ok_and(|p| p != 0)
            });
            if !valid {
                return Err(format!(
                    "group {gid}: `{}` is not a host:port address",
                    address.escape_debug()
                ));
            }
            if let Some(other) = seen.insert(address, gid) {
                return Err(if other == gid {
                    format!("group {gid} lists {address} twice")
                } else {
                    format!("{address} is named for groups {other} and {gid}")
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(groups: &[(u64, &[&str])]) -> BTreeMap<u64, v1::ServerList> {
        groups
            .iter()
            .map(|(gid, a)| {
                let addresses = a.iter().map(|s| s.to_string()).collect();
                (*gid, v1::ServerList { addresses })
            })
            .collect()
    }

    #[test]
    fn join_addresses_are_checked() {
        let ok = join(&[(1, &["127.0.0.1:7001", "h:7002"]), (2, &["[::1]:7003"])]);
        assert_eq!(check_join_addresses(&ok), Ok(()));
        let long = format!("{}:1", "h".repeat(MAX_ADDRESS_BYTES));
        let many: Vec<String> = (1..=16).map(|p| format!("h:{p}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let bad: Vec<(BTreeMap<u64, v1::ServerList>, &str)> = vec![
            (join(&[(1, &[])]), "no server"),
            (join(&[(1, &[""])]), "not a host:port"),
            (join(&[(1, &["h"])]), "not a host:port"),
            (join(&[(1, &[":7001"])]), "not a host:port"),
            (join(&[(1, &["h:0"])]), "not a host:port"),
            (join(&[(1, &["h:70000"])]), "not a host:port"),
            (join(&[(1, &["h :1"])]), "not a host:port"),
            (join(&[(1, &[long.as_str()])]), "MAX_ADDRESS_BYTES"),
            (join(&[(1, &many)]), "MAX_ADDRESSES_PER_GROUP"),
            (join(&[(1, &["h:1", "h:1"])]), "twice"),
            (join(&[(1, &["h:1"]), (2, &["h:1"])]), "groups 1 and 2"),
        ];
        for (groups, why) in bad {
            let e = check_join_addresses(&groups).expect_err(why);
            assert!(e.contains(why), "{e} (expected {why})");
        }
    }
}
