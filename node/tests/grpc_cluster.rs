//! Three nodes in one process, talking real gRPC over 127.0.0.1: the transport, the peer and
//! status services, and the driver together.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_node::{
    peer_service, status_service, EnginePaxosStorage, GrpcTransport, Node, NodeConfig, NodeError,
};

mod common;
use common::{free_port, Recorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_grpc_choose_and_apply_the_same_commands() {
    let group = 7;
    let addrs: BTreeMap<u64, String> = (1..=3u64)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = BTreeMap::new();
    let mut logs = BTreeMap::new();
    for id in 1..=3u64 {
        let log = Arc::new(Mutex::new(Vec::new()));
        logs.insert(id, log.clone());
        let cfg = NodeConfig {
            paxos: strata_paxos::Config::new(id, vec![1, 2, 3]),
            tick: Duration::from_millis(10),
            compaction_slack: 1000,
            compaction_bytes: 64 << 20,
            queue_capacity: 10_000,
        };
        let storage = EnginePaxosStorage::open(dirs[id as usize - 1].path()).unwrap();
        let transport = GrpcTransport::new(group, id, addrs.clone());
        let node = Node::start(cfg, storage, Recorder(log), transport).unwrap();
        let addr = addrs[&id].parse().unwrap();
        let router = tonic::transport::Server::builder()
            .add_service(peer_service(group, node.clone(), Default::default()))
            .add_service(status_service(group, node.clone()));
        tokio::spawn(router.serve(addr));
        nodes.insert(id, node);
    }
    let mut done = 0;
    for i in 0..100u32 {
        let cmd = format!("cmd{i}").into_bytes();
        for _ in 0..500 {
            let leader = nodes
                .values()
                .find(|n| n.status().role == "leader")
                .cloned();
            let Some(leader) = leader else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            match tokio::time::timeout(Duration::from_secs(2), leader.propose(cmd.clone())).await {
                Ok(Ok(reply)) => {
                    assert_eq!(reply, b"ok");
                    done += 1;
                    break;
                }
                Ok(Err(NodeError::NotLeader(_))) | Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Ok(Err(e)) => panic!("{e}"),
            }
        }
    }
    assert_eq!(done, 100);
    // Followers learn the commit index from heartbeats.
    for _ in 0..200 {
        if logs.values().all(|l| l.lock().len() >= 100) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = logs[&1].lock().clone();
    assert!(first.len() >= 100);
    for id in 2..=3 {
        assert_eq!(
            *logs[&id].lock(),
            first,
            "replica {id} applied a different sequence"
        );
    }
    // The status service answers over gRPC.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", addrs[&1]))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = strata_rpc::limits::node_status_client(channel)
        .status(strata_rpc::v1::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.group_id, group);
    assert_eq!(status.replica_id, 1);
    assert!(status.applied_index > 100, "{status:?}");
    assert!(status.leader_id.is_some());
}
