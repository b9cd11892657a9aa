//! How long replacing a replica of a loaded group takes, and what clients see meanwhile
//! (issue 17's measurement): one group of three servers holding `--mb` megabytes (100 KiB
//! incompressible values), 16 clients of small puts and gets on other keys the whole time;
//! replica 3 is SIGKILLed and its data deleted, a new replica 4 starts with `--join` and an
//! empty directory, and `GroupAdmin::replace_replica` adds it, waits for its catch-up (a
//! snapshot of the whole state), promotes it and removes replica 3.
//!
//! Prints the time of each step, the snapshot transfer rate (the new replica's data directory
//! size over the catch-up time), client throughput and p99 before, during the catch-up and
//! after, and the longest stretch without any member reporting a leader.
//!
//! ```text
//! cargo run --release -p strata-cluster-tests --example replace_bench -- --mb 1024
//! ```

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Parser;
use parking_lot_free::Samples;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use strata_client::{GroupAdmin, ReplaceStep};
use strata_cluster_tests::{free_addresses, test_proc, ShardCluster};
use strata_rpc::tls::Security;

const SHARDS: usize = 8;

#[derive(Debug, Parser)]
#[command(about = "Replace a replica of a loaded group; measure the catch-up and the clients")]
struct Args {
    /// Megabytes of data in the group before the replacement.
    #[arg(long, default_value_t = 1024)]
    mb: u64,
    /// Clients of small puts and gets during the whole run.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds of load measured before the replacement starts.
    #[arg(long, default_value_t = 10)]
    before_seconds: u64,
    /// Seconds of load measured after it ends.
    #[arg(long, default_value_t = 10)]
    after_seconds: u64,
    /// The `strata-cluster` binary (default: next to this example).
    #[arg(long)]
    binary: Option<PathBuf>,
}

/// Latencies of the client operations, with the time each ended.
mod parking_lot_free {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// Every operation's end time and latency.
    #[derive(Default)]
    pub struct Samples(Mutex<Vec<(Instant, Duration)>>);

    impl Samples {
        pub fn push(&self, end: Instant, latency: Duration) {
            self.0.lock().expect("samples").push((end, latency));
        }

        /// Operations per second and p99 (ms) of those that ended in `from..to`.
        pub fn window(&self, from: Instant, to: Instant) -> (f64, f64, usize) {
            let all = self.0.lock().expect("samples");
            let mut lat: Vec<Duration> = (all.iter())
                .filter(|(end, _)| *end >= from && *end < to)
                .map(|(_, l)| *l)
                .collect();
            lat.sort_unstable();
            let n = lat.len();
            let p99 = if n == 0 {
                0.0
            } else {
                lat[(n * 99 / 100).min(n - 1)].as_secs_f64() * 1e3
            };
            let secs = (to - from).as_secs_f64().max(1e-9);
            (n as f64 / secs, p99, n)
        }
    }
}

fn binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(b) = &args.binary {
        return Ok(b.clone());
    }
    let exe = std::env::current_exe()?;
    let dir = (exe.parent().and_then(|e| e.parent())).context("locating the target directory")?;
    let bin = dir.join("strata-cluster");
    ensure!(
        bin.exists(),
        "{} missing: cargo build --release -p strata-cluster-tests --bin strata-cluster",
        bin.display()
    );
    Ok(bin)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = binary(&args)?;
    let (mut cluster, _) = ShardCluster::setup(&bin, SHARDS, 20)
        .groups(&[(1, 3)])
        .settled(Duration::from_secs(60))
        .await;
    let client = Arc::new(cluster.client().await);

    // Fill: 8 writers of 100 KiB incompressible values.
    let t = Instant::now();
    let values = (args.mb << 20) / (100 << 10);
    let mut base = vec![0u8; 100 << 10];
    StdRng::seed_from_u64(7).fill_bytes(&mut base);
    let base = Arc::new(base);
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let (client, base) = (client.clone(), base.clone());
        writers.push(tokio::spawn(async move {
            for i in (w..values).step_by(8) {
                let key = format!("big-{i:010}");
                let mut v = base.as_ref().clone();
                v[..16].copy_from_slice(&i.to_le_bytes().repeat(2));
                client
                    .put(&key, &v)
                    .await
                    .map_err(|e| format!("{key}: {e}"))?;
            }
            Ok::<(), String>(())
        }));
    }
    for w in writers {
        w.await?.map_err(anyhow::Error::msg)?;
    }
    println!(
        "filled {} MB ({values} values of 100 KiB) in {:.1?}",
        args.mb,
        t.elapsed()
    );

    // The load: small puts and gets on keys of their own.
    let samples = Arc::new(Samples::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for c in 0..args.clients {
        let (client, samples, stop) = (client.clone(), samples.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(c as u64);
            while !stop.load(Ordering::Relaxed) {
                let key = format!("small-{:06}", rng.random_range(0..10_000u32));
                let start = Instant::now();
                let ok = if rng.random_bool(0.5) {
                    client.put(&key, &[0x5a; 100][..]).await.is_ok()
                } else {
                    client.get(&key).await.is_ok()
                };
                if ok {
                    samples.push(Instant::now(), start.elapsed());
                }
            }
        }));
    }
    let before = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.before_seconds)).await;

    // Replica 3's disk dies.
    let group = cluster.group(1);
    let addresses = group.addresses();
    group.kill(2);
    std::fs::remove_dir_all(group.data_dir(2)).context("deleting replica 3's data")?;
    let killed = Instant::now();
    let new_address = free_addresses(1).remove(0);
    let root = group
        .data_dir(0)
        .parent()
        .context("cluster dir")?
        .to_owned();
    let new_dir = root.join("g1-4");
    let masters = cluster.masters.addresses().join(",");
    let argv: Vec<OsString> = [
        "server",
        "--gid",
        "1",
        "--id",
        "4",
        "--join",
        &addresses[0],
        "--listen",
        &new_address,
        "--masters",
        &masters,
        "--data-dir",
        &new_dir.display().to_string(),
        "--tick-ms",
        "20",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let mut joiner = test_proc(&bin, argv, root.join("g1-4.log"));
    joiner.start().context("starting replica 4")?;
    while std::net::TcpStream::connect(&new_address).is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Watch for leaderless stretches among the members.
    let watching = Arc::new(AtomicBool::new(true));
    let mut members = addresses.clone();
    members.push(new_address.clone());
    let watch = {
        let (watching, members) = (watching.clone(), members.clone());
        tokio::spawn(async move {
            let (mut longest, mut since) = (Duration::ZERO, None::<Instant>);
            while watching.load(Ordering::Relaxed) {
                let mut leader = false;
                for a in &members {
                    let timeout = Duration::from_millis(200);
                    if let Ok(s) =
                        strata_rpc::probe::node_status(&Security::Plaintext, a, timeout).await
                    {
                        leader |= strata_rpc::probe::role_name(s.role) == "leader";
                    }
                }
                match (leader, since) {
                    (false, None) => since = Some(Instant::now()),
                    (true, Some(t)) => {
                        longest = longest.max(t.elapsed());
                        since = None;
                    }
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            longest
        })
    };

    let admin = GroupAdmin::new(addresses[..2].to_vec(), Security::Plaintext);
    let start = Instant::now();
    let mut added = None;
    let mut promoted = None;
    let m = admin
        .replace_replica(3, 4, &new_address, |step| match step {
            ReplaceStep::Added(_) => added = Some(Instant::now()),
            ReplaceStep::Promoted(_) => promoted = Some(Instant::now()),
            _ => {}
        })
        .await?;
    let removed = Instant::now();
    ensure!(m.voters == vec![1, 2, 4], "voters after: {:?}", m.voters);
    let servers = vec![
        addresses[0].clone(),
        addresses[1].clone(),
        new_address.clone(),
    ];
    cluster.master().set_servers([(1, servers)].into()).await?;
    tokio::time::sleep(Duration::from_secs(args.after_seconds)).await;
    let after = Instant::now();
    stop.store(true, Ordering::Relaxed);
    watching.store(false, Ordering::Relaxed);
    for l in load {
        l.await?;
    }
    let longest_leaderless = watch.await?;

    let added = added.unwrap_or(start);
    let promoted = promoted.context("never promoted")?;
    let new_bytes = strata_cluster_tests::shards::dir_bytes(&new_dir);
    let catch_up = promoted - added;
    println!("replica 3 killed, its data deleted; replica 4 started with --join");
    println!(
        "  add learner: {:.2?}   catch-up (snapshot + log) until promoted: {:.2?}   remove: {:.2?}   total: {:.2?}",
        added - start,
        catch_up,
        removed - promoted,
        removed - start
    );
    println!(
        "  new replica's data directory: {:.0} MB, transfer rate {:.1} MB/s",
        new_bytes as f64 / 1e6,
        new_bytes as f64 / 1e6 / catch_up.as_secs_f64()
    );
    for (name, from, to) in [
        ("before (3 replicas)", before, killed),
        ("replica 3 dead, joining", killed, added),
        ("during catch-up", added, promoted),
        ("after", removed, after),
    ] {
        let (ops, p99, n) = samples.window(from, to);
        println!("  {name:<26} {ops:>8.0} ops/s  p99 {p99:>7.2} ms  ({n} ops)");
    }
    println!("  longest stretch without a leader: {longest_leaderless:.2?}");
    joiner.kill();
    Ok(())
}
