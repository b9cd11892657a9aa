//! Memory of shard servers holding a lot of data: fills one group of three `strata-server`
//! replicas with `--mb` MiB of incompressible 100 KiB values, then prints each replica's peak
//! and current anonymous RSS beside the memory its engines are configured to use.
//!
//! ```sh
//! cargo build --release -p strata-cluster-tests --bin strata-cluster
//! cargo run --release -p strata-cluster-tests --example rss_fill -- target/release/strata-cluster 1024
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_cluster_tests::ShardCluster;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let binary = args.next().expect("usage: rss_fill BINARY [MIB]");
    let mib: usize = args.next().map_or(1024, |s| s.parse().expect("MiB"));
    let (mut c, _) = ShardCluster::setup(binary, 10, 20)
        .groups(&[(1, 3)])
        .settled(Duration::from_secs(30))
        .await;
    let client = Arc::new(c.client().await);
    let values = mib * 10; // 100 KiB each
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let value: Vec<u8> = (0..100 << 10).map(|_| rand::random::<u8>()).collect();
            for i in (t..values).step_by(16) {
                client.put(format!("fill-{i}"), &value).await.expect("put");
            }
        }));
    }
    let mut peak = [0u64; 3];
    while tasks.iter().any(|t| !t.is_finished()) {
        for (i, p) in peak.iter_mut().enumerate() {
            if let Some(rss) = c.group(1).replica(i).rss_anon_bytes() {
                *p = (*p).max(rss);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = started.elapsed();
    println!(
        "wrote {mib} MiB in {elapsed:?} ({:.1} MiB/s)",
        mib as f64 / elapsed.as_secs_f64()
    );
    // Defaults: data engine 2 x 8 MiB memtables + 16 MiB block cache; Paxos engine 2 x 8 MiB
    // memtables + 4 MiB cache; in-memory Paxos log up to ~8 MiB + 2 MiB unsynced.
    println!("configured engine memory: ~62 MiB per replica (see strata-server --help)");
    for (i, p) in peak.iter().enumerate() {
        let now = c.group(1).replica(i).rss_anon_bytes().unwrap_or(0);
        let disk = c.group_ref(1).state_bytes(i);
        println!(
            "replica {}: RssAnon peak {} MiB, now {} MiB; state on disk {} MiB",
            i + 1,
            p >> 20,
            now >> 20,
            disk >> 20
        );
    }
}
