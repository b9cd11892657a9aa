//! A stalled peer (it accepts connections and never reads, like a SIGSTOPped process) must not
//! stop commits — two of three still decide — nor grow the senders' memory: what queues for it
//! is bounded in bytes and dropped beyond.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_node::{
    peer_service, EnginePaxosStorage, GrpcTransport, Node, NodeConfig, NodeError, SnapshotStream,
    StateMachine,
};
use strata_paxos::Slot;

mod common;
use common::free_port;

/// Counts applied bytes; its state is "durable" as soon as applied, so the log is compacted.
struct Counter {
    applied: Slot,
    bytes: Arc<AtomicU64>,
}

impl StateMachine for Counter {
    type Reply = Vec<u8>;

    fn apply(&mut self, slot: Slot, command: &[u8]) -> Vec<u8> {
        self.applied = slot + 1;
        self.bytes
            .fetch_add(command.len() as u64, Ordering::Relaxed);
        Vec::new()
    }
    fn durable_index(&self) -> Slot {
        self.applied
    }
    fn snapshot(&self) -> (Slot, SnapshotStream) {
        (self.applied, Box::new(std::iter::empty()))
    }
    fn restore(
        &mut self,
        index: Slot,
        _: &mut dyn Iterator<Item = Result<Vec<u8>, strata_node::TransferError>>,
    ) -> Result<(), strata_node::RestoreError> {
        self.applied = index;
        Ok(())
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_peer_neither_stops_commits_nor_grows_memory() {
    // Replica 3 is a black hole: the kernel accepts, nobody reads.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_addr = hole.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hole.incoming().flatten() {
            held.push(conn); // never read
            if held.len() > 1000 {
                let _ = held.remove(0).read(&mut [0u8; 1]);
            }
        }
    });
    let group = 1;
    let mut addrs: BTreeMap<u64, String> = (1..=2u64)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    addrs.insert(3, hole_addr);
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let applied = Arc::new(AtomicU64::new(0));
    let mut nodes = Vec::new();
    for id in 1..=2u64 {
        let cfg = NodeConfig {
            paxos: strata_paxos::Config::new(id, vec![1, 2, 3]),
            tick: Duration::from_millis(10),
            compaction_slack: 64,
            compaction_bytes: 64 << 20,
            queue_capacity: 10_000,
        };
        let storage = EnginePaxosStorage::open(dirs[id as usize - 1].path()).unwrap();
        let sm = Counter {
            applied: 1,
            bytes: if id == 1 {
                applied.clone()
            } else {
                Arc::new(AtomicU64::new(0))
            },
        };
        let node = Node::start(
            cfg,
            storage,
            sm,
            GrpcTransport::new(group, id, addrs.clone()),
        )
        .unwrap();
        let router = tonic::transport::Server::builder().add_service(peer_service(
            group,
            node.clone(),
            Default::default(),
        ));
        tokio::spawn(router.serve(addrs[&id].parse().unwrap()));
        nodes.push(node);
    }

    const COMMAND: usize = 32 << 10;
    let proposed = Arc::new(AtomicU64::new(0));
    let run = |secs: u64| {
        let (nodes, proposed) = (nodes.clone(), proposed.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(secs);
            let mut workers = Vec::new();
            for w in 0..4u8 {
                let (nodes, proposed) = (nodes.clone(), proposed.clone());
                workers.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let Some(leader) = nodes.iter().find(|n| n.status().role == "leader")
                        else {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        match tokio::time::timeout(
                            Duration::from_secs(2),
                            leader.propose(vec![w; COMMAND]),
                        )
                        .await
                        {
                            Ok(Ok(_)) => {
                                proposed.fetch_add(COMMAND as u64, Ordering::Relaxed);
                            }
                            Ok(Err(NodeError::NotLeader(_))) | Err(_) => {
                                tokio::time::sleep(Duration::from_millis(10)).await
                            }
                            Ok(Err(e)) => panic!("{e}"),
                        }
                    }
                }));
            }
            for w in workers {
                w.await.unwrap();
            }
        }
    };
    // Warm up: allocator arenas, memtables, caches reach their working size.
    run(3).await;
    let before = rss_bytes();
    let committed_before = proposed.load(Ordering::Relaxed);
    run(8).await;
    let after = rss_bytes();
    let committed = proposed.load(Ordering::Relaxed) - committed_before;
    let growth = after.saturating_sub(before);
    println!(
        "committed {:.1} MiB with a stalled peer; RSS {:.1} -> {:.1} MiB",
        committed as f64 / (1 << 20) as f64,
        before as f64 / (1 << 20) as f64,
        after as f64 / (1 << 20) as f64
    );
    assert!(
        committed >= 64 << 20,
        "commits must go on with a stalled peer: {committed} bytes"
    );
    // Everything sent to the stalled peer while committing that much would be several times
    // this bound if it were kept; queues are capped in bytes per link (64 MiB, filled during the
    // warm-up).
    assert!(
        growth < 48 << 20,
        "RSS grew {growth} bytes while committing {committed} bytes"
    );
    assert!(applied.load(Ordering::Relaxed) >= committed);
}
