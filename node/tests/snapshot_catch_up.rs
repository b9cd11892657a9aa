//! A replica that joins after the others compacted their logs is caught up with a snapshot
//! streamed over gRPC in chunks, then with the log entries after it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_node::{
    peer_service, EnginePaxosStorage, GrpcTransport, Node, NodeConfig, NodeError, SnapshotStream,
    StateMachine,
};
use strata_paxos::Slot;

mod common;
use common::free_port;

/// Keeps every applied command; durable as soon as applied, so logs get compacted.
struct Log {
    applied: Slot,
    commands: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl StateMachine for Log {
    type Reply = Vec<u8>;

    fn apply(&mut self, slot: Slot, command: &[u8]) -> Vec<u8> {
        self.applied = slot + 1;
        self.commands.lock().push(command.to_vec());
        Vec::new()
    }
    fn durable_index(&self) -> Slot {
        self.applied
    }
    fn snapshot(&self) -> (Slot, SnapshotStream) {
        // One chunk per command (a real service would stream from a pinned engine snapshot).
        let commands = self.commands.lock().clone();
        (self.applied, Box::new(commands.into_iter()))
    }
    fn restore(
        &mut self,
        index: Slot,
        chunks: &mut dyn Iterator<Item = Result<Vec<u8>, strata_node::TransferError>>,
    ) -> Result<(), strata_node::RestoreError> {
        let mut fresh = Vec::new();
        for chunk in chunks {
            fresh.push(chunk?);
        }
        *self.commands.lock() = fresh;
        self.applied = index;
        Ok(())
    }
}

/// The commands a node applied, shared with the test.
type Applied = Arc<Mutex<Vec<Vec<u8>>>>;

fn start(
    id: u64,
    addrs: &BTreeMap<u64, String>,
    dir: &std::path::Path,
) -> (Node<Vec<u8>>, Applied) {
    let commands = Arc::new(Mutex::new(Vec::new()));
    let cfg = NodeConfig {
        paxos: strata_paxos::Config::new(id, vec![1, 2, 3]),
        tick: Duration::from_millis(10),
        compaction_slack: 16,
        compaction_bytes: 64 << 20,
        queue_capacity: 10_000,
    };
    let storage = EnginePaxosStorage::open(dir).unwrap();
    let sm = Log {
        applied: 1,
        commands: commands.clone(),
    };
    let node = Node::start(cfg, storage, sm, GrpcTransport::new(5, id, addrs.clone())).unwrap();
    let router = tonic::transport::Server::builder().add_service(peer_service(
        5,
        node.clone(),
        Default::default(),
    ));
    tokio::spawn(router.serve(addrs[&id].parse().unwrap()));
    (node, commands)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_replica_is_caught_up_by_a_streamed_snapshot() {
    let addrs: BTreeMap<u64, String> = (1..=3u64)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (n1, l1) = start(1, &addrs, dirs[0].path());
    let (n2, _l2) = start(2, &addrs, dirs[1].path());
    let nodes = [n1.clone(), n2.clone()];
    let mut done = 0;
    while done < 300 {
        let Some(leader) = nodes.iter().find(|n| n.status().role == "leader") else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        match tokio::time::timeout(
            Duration::from_secs(2),
            leader.propose(format!("c{done}").into_bytes()),
        )
        .await
        {
            Ok(Ok(_)) => done += 1,
            Ok(Err(NodeError::NotLeader(_))) | Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Ok(Err(e)) => panic!("{e}"),
        }
    }
    let leader = nodes
        .iter()
        .find(|n| n.status().role == "leader")
        .unwrap()
        .clone();
    assert!(
        leader.status().log_start > 100,
        "the leader should have compacted: {:?}",
        leader.status()
    );

    // Replica 3 arrives with nothing: what it lacks is compacted away everywhere.
    let (n3, l3) = start(3, &addrs, dirs[2].path());
    let target = leader.status().applied_index;
    let mut caught_up = false;
    for _ in 0..500 {
        if n3.status().applied_index >= target {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        caught_up,
        "replica 3 never caught up: {:?} vs {target}",
        n3.status()
    );
    let from_snapshot = l3.lock().clone();
    let reference = l1.lock().clone();
    assert!(from_snapshot.len() >= 300);
    assert_eq!(
        from_snapshot[..],
        reference[..from_snapshot.len()],
        "replica 3 diverged"
    );
}
