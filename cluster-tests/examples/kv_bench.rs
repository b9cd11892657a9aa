//! `kv_bench`: Strata's sharded KV service and a 3-member etcd side by side, on this machine.
//!
//! ```text
//! cargo run --release -p strata-cluster-tests --example kv_bench -- \
//!     [--clients 1,16,64] [--seconds 10] [--value-size 100] [--etcd] [--groups 1|2] \
//!     [--move-100mb] [--shared-client]
//! ```
//!
//! What runs:
//!
//! - **Strata**: a shard master of 3 replicas and 1 group of 3 `strata-server` replicas (2
//!   groups with `--groups 2`), 10 shards, started through the process harness
//!   ([`ShardCluster`]) from the `strata-cluster` dispatch binary, which this example builds
//!   first (`cargo build --bin strata-cluster` in the same profile and target directory; pass
//!   `--binary PATH` to skip that).
//! - **etcd** (`--etcd`): 3 members of the system's `etcd` (Debian's `etcd-server`, 3.4) on
//!   127.0.0.1 free ports, data in a temporary directory, every setting at its default (fsync
//!   of the WAL before every commit, snapshot every 100 000 entries, 2 GiB backend quota).
//!   The client is tonic, generated from a minimal copy of etcd's KV proto
//!   (`proto/etcd/`, compiled by this package's `build.rs`).
//!
//! For each client count C: a Put phase (C tasks, each putting `--value-size`-byte values to
//! random 16-byte keys out of `--keys`, for `--seconds`), then a Get phase (random keys among
//! those written so far). Every operation's latency is recorded; a line per (system, op, C)
//! gives throughput and percentiles, and a final table the Strata/etcd ratios.
//!
//! **Connections.** By default each task has its *own* client: for Strata its own
//! `strata_client::Client` (own session, own channel per server), for etcd its own gRPC
//! channel (HTTP/2 connection) to member `task % 3`, round-robin like etcd's `benchmark` tool
//! with `--conns = --clients`. This is the shape of many independent clients. With
//! `--shared-client` every task shares one Strata `Client` / one etcd channel per member
//! (requests multiplexed on one HTTP/2 connection per server).
//!
//! Both systems read linearizably: a Strata Get goes through the group leader's read-index
//! round, an etcd Range has `serializable = false` (ReadIndex through the leader; a member
//! that is not the leader forwards the request).
//!
//! `--move-100mb` (Strata, forces 2 groups): 16 background clients put/get keys of the
//! other shards while one shard is filled with 1000 x 100 KiB values and then moved to the
//! other group with the master's Move; prints the move's duration and throughput and the
//! background throughput per 500 ms window.
//!
//! The load generator runs on the same cores as every server process; numbers are for
//! comparing the two systems on one machine, not absolute capacity.

#[allow(clippy::all)]
mod mvccpb {
    tonic::include_proto!("mvccpb");
}
#[allow(clippy::all)]
mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Parser;
use etcdserverpb::kv_client::KvClient;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use strata_client::Client;
use strata_cluster_tests::{free_port, test_proc, Proc, ShardCluster};
use strata_rpc::shard_for_key;
use tonic::transport::{Channel, Endpoint};

const SHARDS: usize = 10;
const SETTLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Parser)]
#[command(about = "Strata vs etcd: put/get throughput and latency on this machine")]
struct Args {
    /// Client counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Seconds per phase (one Put and one Get phase per client count and system).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Key space: keys are `k` + 15 digits (16 bytes), chosen uniformly among this many.
    #[arg(long, default_value_t = 100_000)]
    keys: u32,
    /// Also run the workloads against a 3-member etcd cluster.
    #[arg(long)]
    etcd: bool,
    /// Strata replica groups (of 3 servers each).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=2))]
    groups: u64,
    /// Fill a shard with 100 MB and move it between groups under load (forces --groups 2).
    #[arg(long)]
    move_100mb: bool,
    /// All tasks share one client (one connection per server) instead of one each.
    #[arg(long)]
    shared_client: bool,
    /// Paxos tick of the Strata processes, in ms.
    #[arg(long, default_value_t = 20)]
    tick_ms: u64,
    /// The `strata-cluster` binary to run (default: build it next to this example).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// The etcd binary.
    #[arg(long, default_value = "etcd")]
    etcd_binary: PathBuf,
}

/// One task's connection to the system under test.
#[derive(Clone)]
enum Conn {
    Strata(Arc<Client>),
    Etcd(KvClient<Channel>),
}

impl Conn {
    async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        match self {
            Conn::Strata(c) => c.put(key, value).await.map_err(|e| e.to_string()),
            Conn::Etcd(c) => c
                .put(etcdserverpb::PutRequest {
                    key: key.to_vec(),
                    value: value.to_vec(),
                    ..Default::default()
                })
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }

    /// Whether the key was found.
    async fn get(&mut self, key: &[u8]) -> Result<bool, String> {
        match self {
            Conn::Strata(c) => c
                .get(key)
                .await
                .map(|v| v.is_some())
                .map_err(|e| e.to_string()),
            Conn::Etcd(c) => c
                .range(etcdserverpb::RangeRequest {
                    key: key.to_vec(),
                    serializable: false,
                    ..Default::default()
                })
                .await
                .map(|r| !r.into_inner().kvs.is_empty())
                .map_err(|e| e.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Get,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
        }
    }
}

fn key(n: u32) -> String {
    format!("k{n:015}")
}

/// What one task did in a phase.
#[derive(Default)]
struct TaskOutcome {
    ops: u64,
    errors: u64,
    misses: u64,
    first_error: Option<String>,
    latencies_us: Vec<u32>,
    written: Vec<u32>,
}

/// One printed result.
#[derive(Debug, Clone)]
struct Row {
    op: Op,
    clients: usize,
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

/// Runs `op` from one task per connection for `duration`; returns the row and the keys
/// written.
async fn run_phase(
    system: &'static str,
    conns: &[Conn],
    op: Op,
    keys: Arc<Vec<u32>>,
    value: Arc<Vec<u8>>,
    duration: Duration,
) -> (Row, Vec<u32>) {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = conns
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, mut conn)| {
            let (keys, value) = (keys.clone(), value.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(rand::random::<u64>() ^ i as u64);
                let mut out = TaskOutcome {
                    latencies_us: Vec::with_capacity(1 << 16),
                    ..Default::default()
                };
                while Instant::now() < deadline {
                    let n = keys[rng.random_range(0..keys.len())];
                    let k = key(n);
                    let t = Instant::now();
                    let result = match op {
                        Op::Put => conn.put(k.as_bytes(), &value).await.map(|()| true),
                        Op::Get => conn.get(k.as_bytes()).await,
                    };
                    let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    match result {
                        Ok(found) => {
                            out.ops += 1;
                            out.latencies_us.push(us);
                            if op == Op::Put {
                                out.written.push(n);
                            } else if !found {
                                out.misses += 1;
                            }
                        }
                        Err(e) => {
                            out.errors += 1;
                            out.first_error.get_or_insert(e);
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut all = TaskOutcome::default();
    for t in tasks {
        let o = t.await.expect("a load task panicked");
        all.ops += o.ops;
        all.errors += o.errors;
        all.misses += o.misses;
        if all.first_error.is_none() {
            all.first_error = o.first_error;
        }
        all.latencies_us.extend(o.latencies_us);
        all.written.extend(o.written);
    }
    let elapsed = started.elapsed();
    all.latencies_us.sort_unstable();
    let lat = &all.latencies_us;
    let row = Row {
        op,
        clients: conns.len(),
        ops_per_s: all.ops as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile_ms(lat, 50.0),
        p99_ms: percentile_ms(lat, 99.0),
        p999_ms: percentile_ms(lat, 99.9),
    };
    let mut line = format!(
        "{:<7} {}  c={:<3} {:>8.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  max {:>7.2} ms",
        system,
        op.name(),
        conns.len(),
        row.ops_per_s,
        row.p50_ms,
        row.p99_ms,
        row.p999_ms,
        lat.last().map_or(f64::NAN, |&m| m as f64 / 1000.0),
    );
    if all.errors > 0 {
        line.push_str(&format!(
            "  ERRORS {} (first: {})",
            all.errors,
            all.first_error.unwrap_or_default()
        ));
    }
    if all.misses > 0 {
        line.push_str(&format!("  MISSING {} written keys", all.misses));
    }
    println!("{line}");
    (row, all.written)
}

/// Runs the Put and Get phases for every client count against `conns` (at least as many as
/// the largest count; the first C are used).
async fn run_workloads(
    system: &'static str,
    conns: &[Conn],
    args: &Args,
    value: Arc<Vec<u8>>,
) -> Vec<Row> {
    let duration = Duration::from_secs_f64(args.seconds);
    let keyspace: Arc<Vec<u32>> = Arc::new((0..args.keys).collect());
    let mut written = vec![false; args.keys as usize];
    let mut rows = Vec::new();
    for &c in &args.clients {
        let (row, keys) = run_phase(
            system,
            &conns[..c],
            Op::Put,
            keyspace.clone(),
            value.clone(),
            duration,
        )
        .await;
        rows.push(row);
        for k in keys {
            written[k as usize] = true;
        }
        let readable: Arc<Vec<u32>> =
            Arc::new((0..args.keys).filter(|&k| written[k as usize]).collect());
        if readable.is_empty() {
            println!("{system:<7} get  c={c:<3} skipped: no key was written");
            continue;
        }
        let (row, _) = run_phase(
            system,
            &conns[..c],
            Op::Get,
            readable,
            value.clone(),
            duration,
        )
        .await;
        rows.push(row);
    }
    rows
}

/// The `strata-cluster` binary: `--binary`, or built now next to this example (same target
/// directory and profile), so that it is never older than the code this example was built
/// from.
fn strata_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(b) = &args.binary {
        return Ok(b.clone());
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .context("locating the target directory")?;
    let target_dir = profile_dir
        .parent()
        .context("locating the target directory")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(p) => p.to_string(),
        None => bail!("unexpected example path {}", exe.display()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    eprintln!("building strata-cluster (profile {profile})...");
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--profile", &profile])
        .args(["-p", "strata-cluster-tests", "--bin", "strata-cluster"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .context("running cargo build")?;
    ensure!(status.success(), "building strata-cluster failed");
    let bin = profile_dir.join("strata-cluster");
    ensure!(bin.exists(), "{} missing after the build", bin.display());
    Ok(bin)
}

/// A 3-member etcd cluster on 127.0.0.1; killed (SIGKILL) and removed when dropped.
struct EtcdCluster {
    members: Vec<Proc>,
    client_urls: Vec<String>,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    async fn start(binary: &PathBuf, n: usize) -> anyhow::Result<EtcdCluster> {
        let dir = tempfile::Builder::new()
            .prefix("kv-bench-etcd-")
            .tempdir()?;
        let client_urls: Vec<String> = (0..n)
            .map(|_| format!("http://127.0.0.1:{}", free_port()))
            .collect();
        let peer_urls: Vec<String> = (0..n)
            .map(|_| format!("http://127.0.0.1:{}", free_port()))
            .collect();
        let initial = peer_urls
            .iter()
            .enumerate()
            .map(|(i, u)| format!("m{}={u}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for i in 0..n {
            let name = format!("m{}", i + 1);
            let args: Vec<OsString> = [
                "--name".to_string(),
                name.clone(),
                "--data-dir".into(),
                dir.path().join(&name).display().to_string(),
                "--listen-client-urls".into(),
                client_urls[i].clone(),
                "--advertise-client-urls".into(),
                client_urls[i].clone(),
                "--listen-peer-urls".into(),
                peer_urls[i].clone(),
                "--initial-advertise-peer-urls".into(),
                peer_urls[i].clone(),
                "--initial-cluster".into(),
                initial.clone(),
                "--initial-cluster-token".into(),
                "kv-bench".into(),
                "--initial-cluster-state".into(),
                "new".into(),
                "--logger".into(),
                "zap".into(),
            ]
            .into_iter()
            .map(OsString::from)
            .collect();
            let mut p = test_proc(binary, args, dir.path().join(format!("{name}.log")));
            p.start().expect("starting a process");
            members.push(p);
        }
        let cluster = EtcdCluster {
            members,
            client_urls,
            _dir: dir,
        };
        // Ready once every member answers a linearizable write (a leader was elected).
        let until = Instant::now() + Duration::from_secs(30);
        for url in &cluster.client_urls {
            loop {
                let attempt = async {
                    let ch = Endpoint::from_shared(url.clone())?
                        .connect_timeout(Duration::from_millis(300))
                        .timeout(Duration::from_secs(2))
                        .connect()
                        .await?;
                    KvClient::new(ch)
                        .put(etcdserverpb::PutRequest {
                            key: b"kv-bench-ready".to_vec(),
                            value: b"1".to_vec(),
                            ..Default::default()
                        })
                        .await?;
                    anyhow::Ok(())
                };
                match attempt.await {
                    Ok(()) => break,
                    Err(e) if Instant::now() > until => {
                        bail!("etcd at {url} not ready: {e}\n{}", cluster.logs())
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        Ok(cluster)
    }

    async fn channel(&self, i: usize) -> anyhow::Result<Channel> {
        Ok(
            Endpoint::from_shared(self.client_urls[i % self.client_urls.len()].clone())?
                .connect()
                .await?,
        )
    }

    fn logs(&self) -> String {
        self.members
            .iter()
            .map(|p| {
                let l = p.log();
                let start = l.len().saturating_sub(3000);
                let start = (start..l.len())
                    .find(|&i| l.is_char_boundary(i))
                    .unwrap_or(0);
                format!("==== {} ====\n{}", p.log_path().display(), &l[start..])
            })
            .collect()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
    }
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn print_settings(args: &Args) {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(String::new(), |kb| format!("{} GiB", kb >> 20));
    println!("== settings ==");
    println!("machine        nproc {nproc}, {cpu}, {mem} RAM; load generator on the same cores");
    println!(
        "tmp dir        {} (data directories of both systems)",
        std::env::temp_dir().display()
    );
    println!(
        "workload       values {} B, keys 16 B uniform over {}, {} s per phase, clients {:?}, {}",
        args.value_size,
        args.keys,
        args.seconds,
        args.clients,
        if args.shared_client {
            "one shared client (one connection per server)"
        } else {
            "one client per task (own connections)"
        }
    );
    println!(
        "strata         1 master group x 3, {} group(s) x 3 servers, {SHARDS} shards, tick {} ms; \
         fsync: Paxos acceptor state/log synced (fdatasync, group commit) before every \
         accept reply; state engine synced every 256 commands / 2 MiB (recovered from the log)",
        args.groups, args.tick_ms
    );
    if args.etcd {
        let version = command_output(args.etcd_binary.to_str().unwrap_or("etcd"), &["--version"])
            .and_then(|v| v.lines().next().map(str::to_string))
            .unwrap_or_else(|| "etcd (version unknown)".into());
        println!(
            "etcd           {version}, 3 members, defaults: WAL fsync before every commit, \
             snapshot-count 100000, heartbeat 100 ms / election 1000 ms, quota 2 GiB; \
             client conns round-robin over members; linearizable Range (serializable=false)"
        );
    }
    println!();
}

async fn strata_conns(cluster: &ShardCluster, n: usize, shared: bool) -> Vec<Conn> {
    if shared {
        let c = Arc::new(cluster.client().await);
        return (0..n).map(|_| Conn::Strata(c.clone())).collect();
    }
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::Strata(Arc::new(cluster.client().await)));
    }
    conns
}

async fn etcd_conns(etcd: &EtcdCluster, n: usize, shared: bool) -> anyhow::Result<Vec<Conn>> {
    let mut shared_channels = Vec::new();
    if shared {
        for i in 0..etcd.client_urls.len() {
            shared_channels.push(etcd.channel(i).await?);
        }
    }
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let ch = if shared {
            shared_channels[i % shared_channels.len()].clone()
        } else {
            etcd.channel(i).await?
        };
        conns.push(Conn::Etcd(KvClient::new(ch)));
    }
    Ok(conns)
}

const WINDOW: Duration = Duration::from_millis(500);
const MAX_WINDOWS: usize = 2400;

/// The 100 MB shard move under background load.
async fn move_100mb(cluster: &mut ShardCluster, args: &Args) -> anyhow::Result<()> {
    const BACKGROUND: usize = 16;
    const BIG_KEYS: usize = 1000;
    const BIG_VALUE: usize = 100 << 10;
    println!("\n== 100 MB shard move under load (16 clients on the other shards) ==");
    let admin = Arc::new(cluster.client().await);
    let config = admin.config();
    let shard = 0u32;
    let from = config.owner(shard);
    let to = if from == 1 { 2 } else { 1 };
    let big: Vec<String> = (0..)
        .map(|i| format!("big-{i:011}"))
        .filter(|k| shard_for_key(k.as_bytes(), SHARDS as u32) == shard)
        .take(BIG_KEYS)
        .collect();
    let background_keys: Arc<Vec<String>> = Arc::new(
        (0..)
            .map(|i| format!("bg{i:014}"))
            .filter(|k| shard_for_key(k.as_bytes(), SHARDS as u32) != shard)
            .take(args.keys as usize)
            .collect(),
    );
    let counts: Arc<Vec<AtomicU64>> =
        Arc::new((0..MAX_WINDOWS).map(|_| AtomicU64::new(0)).collect());
    let max_us: Arc<Vec<AtomicU64>> =
        Arc::new((0..MAX_WINDOWS).map(|_| AtomicU64::new(0)).collect());
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let value = Arc::new(vec![0x5au8; args.value_size]);
    let mut conns = strata_conns(cluster, BACKGROUND, args.shared_client).await;
    let t0 = Instant::now();
    let background: Vec<_> = conns
        .drain(..)
        .enumerate()
        .map(|(i, mut conn)| {
            let (keys, value, counts, max_us, errors, stop) = (
                background_keys.clone(),
                value.clone(),
                counts.clone(),
                max_us.clone(),
                errors.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(rand::random::<u64>() ^ i as u64);
                while !stop.load(Ordering::Relaxed) {
                    let k = &keys[rng.random_range(0..keys.len())];
                    let t = Instant::now();
                    let ok = if rng.random_bool(0.5) {
                        conn.put(k.as_bytes(), &value).await.is_ok()
                    } else {
                        conn.get(k.as_bytes()).await.is_ok()
                    };
                    let end = Instant::now();
                    let w = ((end - t0).as_millis() / WINDOW.as_millis()) as usize;
                    if ok && w < MAX_WINDOWS {
                        counts[w].fetch_add(1, Ordering::Relaxed);
                        max_us[w].fetch_max((end - t).as_micros() as u64, Ordering::Relaxed);
                    } else if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    // Fill: 8 writers, distinct incompressible values.
    let fill_start = t0.elapsed();
    let mut base = vec![0u8; BIG_VALUE];
    StdRng::seed_from_u64(7).fill_bytes(&mut base);
    let base = Arc::new(base);
    let mut writers = Vec::new();
    for chunk in big.chunks(BIG_KEYS / 8) {
        let (client, chunk, base) = (admin.clone(), chunk.to_vec(), base.clone());
        writers.push(tokio::spawn(async move {
            for k in chunk {
                let mut v = base.as_ref().clone();
                v[..k.len()].copy_from_slice(k.as_bytes());
                client.put(&k, &v).await.map_err(|e| format!("{k}: {e}"))?;
            }
            Ok::<(), String>(())
        }));
    }
    for w in writers {
        if let Err(e) = w.await? {
            bail!("filling the shard failed: {e}");
        }
    }
    let fill_end = t0.elapsed();
    let bytes = (BIG_KEYS * BIG_VALUE) as f64;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Move, sampling the replicas' anonymous memory until both groups settle.
    let gids = [1u64, 2];
    let mut rss: Vec<(u64, usize, u64, u64)> = Vec::new();
    for g in gids {
        for i in 0..cluster.group_ref(g).len() {
            let b = cluster.group(g).replica(i).rss_anon_bytes().unwrap_or(0);
            rss.push((g, i, b, b));
        }
    }
    let move_start = t0.elapsed();
    let num = cluster
        .master()
        .move_shard(shard, to)
        .await
        .map_err(|e| anyhow::anyhow!("move: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        for r in &mut rss {
            if let Some(b) = cluster.group(r.0).replica(r.1).rss_anon_bytes() {
                r.3 = r.3.max(b);
            }
        }
        if cluster.is_settled(&gids, num).await {
            break;
        }
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            bail!("the move did not settle within 180 s\n{}", cluster.logs());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let move_end = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for b in background {
        b.await?;
    }
    let end = t0.elapsed();

    // The moved data is served by its new owner.
    let check = Client::connect(cluster.masters.addresses()).await?;
    let mut bad = 0;
    for k in big.iter().step_by(50) {
        match check.get(k).await {
            Ok(Some(v)) if v.len() == BIG_VALUE && v.starts_with(k.as_bytes()) => {}
            _ => bad += 1,
        }
    }

    let fill = fill_end - fill_start;
    let moved = move_end - move_start;
    println!(
        "fill   {} x {} KiB into shard {shard} (group {from}): {:.2} s, {:.1} MiB/s",
        BIG_KEYS,
        BIG_VALUE >> 10,
        fill.as_secs_f64(),
        bytes / (1 << 20) as f64 / fill.as_secs_f64()
    );
    println!(
        "move   shard {shard} group {from} -> {to} (config {num}), until a majority of both \
         groups settled: {:.2} s, {:.1} MiB/s{}",
        moved.as_secs_f64(),
        bytes / (1 << 20) as f64 / moved.as_secs_f64(),
        if bad > 0 {
            format!("  {bad} SAMPLED KEYS WRONG AFTER THE MOVE")
        } else {
            String::new()
        }
    );
    for r in &rss {
        println!(
            "       group {} replica {}: RssAnon {} MiB -> peak {} MiB during the move",
            r.0,
            r.1 + 1,
            r.2 >> 20,
            r.3 >> 20
        );
    }
    let windows = (end.as_millis() / WINDOW.as_millis()) as usize;
    let per_s = |w: usize| counts[w].load(Ordering::Relaxed) as f64 / WINDOW.as_secs_f64();
    let peak = (0..windows).map(per_s).fold(1.0, f64::max);
    let phase = |w: usize| {
        let mid = WINDOW * w as u32 + WINDOW / 2;
        if mid < fill_start {
            "base"
        } else if mid < fill_end {
            "fill"
        } else if mid < move_start {
            "-"
        } else if mid < move_end {
            "MOVE"
        } else {
            "after"
        }
    };
    let mean = |name: &str| {
        let ws: Vec<f64> = (0..windows)
            .filter(|&w| phase(w) == name)
            .map(per_s)
            .collect();
        if ws.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (
                ws.iter().sum::<f64>() / ws.len() as f64,
                ws.iter().copied().fold(f64::INFINITY, f64::min),
            )
        }
    };
    for name in ["base", "fill", "MOVE", "after"] {
        let (avg, min) = mean(name);
        println!("       background during {name:<5}: mean {avg:>7.0} ops/s, worst 500 ms window {min:>7.0} ops/s");
    }
    println!(
        "       background errors: {}",
        errors.load(Ordering::Relaxed)
    );
    println!("  t (s)    ops/s   max ms  phase");
    for w in 0..windows {
        let bar = "#".repeat((per_s(w) / peak * 40.0).round() as usize);
        println!(
            "  {:>5.1} {:>8.0} {:>8.1}  {:<5} {bar}",
            (WINDOW * w as u32).as_secs_f64(),
            per_s(w),
            max_us[w].load(Ordering::Relaxed) as f64 / 1000.0,
            phase(w)
        );
    }
    Ok(())
}

fn print_summary(strata: &[Row], etcd: &[Row]) {
    println!("\n== summary: Strata / etcd ==");
    println!(
        "{:<4} {:>4}  {:>12} {:>12} {:>6}   {:>10} {:>10} {:>6}",
        "op", "c", "strata op/s", "etcd op/s", "ratio", "strata p99", "etcd p99", "ratio"
    );
    for s in strata {
        let Some(e) = etcd.iter().find(|e| e.op == s.op && e.clients == s.clients) else {
            continue;
        };
        println!(
            "{:<4} {:>4}  {:>12.0} {:>12.0} {:>6.2}   {:>7.2} ms {:>7.2} ms {:>6.2}",
            s.op.name(),
            s.clients,
            s.ops_per_s,
            e.ops_per_s,
            s.ops_per_s / e.ops_per_s,
            s.p99_ms,
            e.p99_ms,
            s.p99_ms / e.p99_ms
        );
    }
    println!("(throughput ratio > 1: Strata faster; p99 ratio < 1: Strata lower latency)");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    ensure!(!args.clients.is_empty(), "--clients is empty");
    ensure!(args.clients.iter().all(|&c| c > 0), "a client count is 0");
    ensure!(args.keys > 0, "--keys is 0");
    if args.move_100mb && args.groups < 2 {
        eprintln!("--move-100mb: using 2 groups");
        args.groups = 2;
    }
    let max_clients = *args.clients.iter().max().expect("not empty");
    let binary = strata_binary(&args)?;
    print_settings(&args);

    let mut value = vec![0u8; args.value_size];
    rand::rng().fill_bytes(&mut value);
    let value = Arc::new(value);

    // Strata.
    let strata_rows = {
        let groups: Vec<(u64, usize)> = (1..=args.groups).map(|g| (g, 3)).collect();
        let (mut cluster, _) = ShardCluster::setup(&binary, SHARDS, args.tick_ms)
            .groups(&groups)
            .settled(SETTLE)
            .await;
        let conns = strata_conns(&cluster, max_clients, args.shared_client).await;
        let rows = run_workloads("strata", &conns, &args, value.clone()).await;
        drop(conns);
        if args.move_100mb {
            move_100mb(&mut cluster, &args).await?;
        }
        rows
    };

    // etcd.
    if args.etcd {
        println!();
        let etcd = EtcdCluster::start(&args.etcd_binary, 3)
            .await
            .context("starting etcd (is etcd-server installed? apt-get install etcd-server)")?;
        let conns = etcd_conns(&etcd, max_clients, args.shared_client).await?;
        let etcd_rows = run_workloads("etcd", &conns, &args, value.clone()).await;
        drop(conns);
        drop(etcd);
        print_summary(&strata_rows, &etcd_rows);
    }
    Ok(())
}
