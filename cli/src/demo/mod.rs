//! `strata demo`: a real local cluster in one command — three masters and shard-server groups
//! as child processes, a load with its latencies, a group joining while the load runs (shards
//! moving live), a leader SIGKILLed and replaced, every written key verified — then a clean
//! stop. `--keep` leaves the cluster running for other `strata` commands until Ctrl-C.
//!
//! - [`cluster`]: the thread that owns the child processes.
//! - [`probe`]: a process's Paxos status and a server's shard states, with short deadlines.
//! - [`map`]: the shard map as a table.
//! - [`load`]: keys and the values derived from them, the bulk and background loads,
//!   latency histograms.
//! - [`progress`]: a progress bar, or plain lines off a terminal.
//! - [`moves`]: watching shards change hands.
//! - [`failover`]: killing a leader, the election, the restarted replica catching up.
//! - [`verify`]: checking every key written.

pub mod cluster;
pub mod failover;
pub mod load;
pub mod map;
pub mod moves;
pub mod probe;
pub mod progress;
pub mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_client::{Client, MasterClient};
use tokio::signal::unix::{signal, SignalKind};

use self::cluster::{ClusterThread, Started};
use self::load::{BackgroundLoad, Latency, LoadReport, ShardCounts};
use self::moves::human_bytes;
use self::probe::Probe;
use crate::error::{CliError, CliResult, Context};
use crate::launch::LaunchOptions;

/// The gid of the first group; the others follow.
pub const FIRST_GID: u64 = 100;

/// Longest wait for the cluster to do one thing (settle, elect, catch up).
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// After an interruption, how long the servers get to finish the writes in flight before
/// they are stopped.
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(500);

/// Clients the load's writers share.
const CLIENTS: usize = 4;

/// Writers of the background load.
const BACKGROUND_WRITERS: usize = 16;

/// `strata demo`: start a local cluster, load it, move shards, kill a leader, verify.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Keys to load.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(0..=100_000_000))]
    pub keys: u64,
    /// Replica groups to start with (one more joins during the demo).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub groups: u64,
    /// Servers per group.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=7))]
    pub replicas: u64,
    /// Shards of the cluster.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub shards: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    pub value_size: u64,
    /// Concurrent writers of the load.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub writers: u64,
    /// Where data and logs go (kept afterwards); a temporary directory, removed at the end,
    /// if not given.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Stop after the shard map (or the load, with --load) and keep the cluster running
    /// until Ctrl-C, printing STRATA_MASTERS for other commands.
    #[arg(long)]
    pub keep: bool,
    /// With --keep: load the keys before keeping the cluster.
    #[arg(long, requires = "keep")]
    pub load: bool,
    /// Paxos tick of every process, in milliseconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub tick_ms: u64,
}

/// How the demo's steps ended.
enum Ending {
    /// Every step ran (or --keep ended by SIGTERM).
    Done,
    /// Stopped by a signal before the end.
    Interrupted(&'static str),
}

/// Runs the demo; the cluster is stopped and a temporary directory removed however it ends.
pub async fn run(args: DemoArgs) -> CliResult {
    // Listen before any child exists: from here on a Ctrl-C is ours to handle, so the
    // children are stopped and the directory removed rather than left behind.
    let mut sigint = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    if let Some(dir) = &args.dir {
        let occupied = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
        if occupied {
            return Err(CliError::usage(format!(
                "--dir {}: not empty (the demo starts a new cluster; give it an empty or new directory)",
                dir.display()
            )));
        }
    }
    let binary = std::env::current_exe().context("finding the strata executable")?;
    let mut options = LaunchOptions::new(binary);
    options.dir = args.dir.clone();
    options.shards = args.shards as usize;
    options.tick_ms = args.tick_ms;
    options.log_filter = "info".into();

    let started_at = Instant::now();
    println!(
        "step 1: starting 3 masters and {} groups of {} servers ({} shards)",
        args.groups, args.replicas, args.shards
    );
    let (mut cluster, started) = tokio::select! {
        r = ClusterThread::start(options) => r?,
        _ = sigint.recv() => return Err(CliError::failed("interrupted")),
        _ = sigterm.recv() => return Err(CliError::failed("terminated")),
    };
    let mut demo = Demo::new(&args, started, started_at);
    let ending = tokio::select! {
        r = demo.steps(&cluster) => r.map(|()| Ending::Done),
        _ = sigint.recv() => Ok(Ending::Interrupted("interrupted (Ctrl-C)")),
        _ = sigterm.recv() => Ok(if args.keep {
            Ending::Done
        } else {
            Ending::Interrupted("terminated (SIGTERM)")
        }),
    };
    // The steps' future is gone: its load tasks were aborted and its progress bar cleared.
    if let Ok(Ending::Interrupted(why)) = &ending {
        eprintln!("strata demo: {why}; stopping the cluster");
        // Writes the servers already took are still being chosen: let them finish first. A
        // leader SIGTERMed with proposals in flight while its followers stop too can outlive
        // the stop's grace period (and be SIGKILLed).
        tokio::time::sleep(IN_FLIGHT_GRACE).await;
    }
    let pids = cluster.pids().await.map(|p| p.len()).unwrap_or(0);
    let stopping = Instant::now();
    let killed = cluster.shutdown().await?;
    let kept = if args.dir.is_some() {
        format!("data and logs kept in {}", demo.started.dir.display())
    } else {
        format!("{} removed", demo.started.dir.display())
    };
    println!(
        "stopped {pids} processes in {:.1} s ({killed} needed SIGKILL); {kept}",
        stopping.elapsed().as_secs_f64()
    );
    match ending? {
        Ending::Done => Ok(()),
        Ending::Interrupted(why) => Err(CliError::failed(why)),
    }
}

/// The demo's state across steps.
struct Demo<'a> {
    args: &'a DemoArgs,
    started: Started,
    started_at: Instant,
    probe: Probe,
    steps: Vec<(&'static str, Duration)>,
    step_started: Instant,
    /// Peak resident memory of the children together, sampled between steps.
    peak_rss: u64,
}

impl<'a> Demo<'a> {
    fn new(args: &'a DemoArgs, started: Started, started_at: Instant) -> Demo<'a> {
        Demo {
            args,
            started,
            started_at,
            probe: Probe::new(),
            steps: Vec::new(),
            step_started: started_at,
            peak_rss: 0,
        }
    }

    /// Ends the current step, naming it, and starts the next.
    async fn step_done(&mut self, name: &'static str, cluster: &ClusterThread) {
        self.steps.push((name, self.step_started.elapsed()));
        self.step_started = Instant::now();
        if let Ok(rss) = cluster.rss_bytes().await {
            self.peak_rss = self.peak_rss.max(rss);
        }
    }

    async fn steps(&mut self, cluster: &ClusterThread) -> CliResult {
        let args = self.args;
        let masters = self.started.masters.clone();
        let gids: Vec<u64> = (0..args.groups).map(|g| FIRST_GID + g).collect();
        let mut groups = BTreeMap::new();
        for &gid in &gids {
            let addresses = cluster.add_group(gid, args.replicas as usize).await?;
            groups.insert(gid, addresses);
        }
        println!("  masters:        {}", masters.join(","));
        println!("  data and logs:  {}", self.started.dir.display());
        println!("  pids: {}", pid_list(&cluster.pids().await?));
        self.step_done("start", cluster).await;

        println!("step 2: joining groups {gids:?}");
        let master = MasterClient::new(masters.clone());
        let before = master.query(None).await.context("querying the master")?;
        let num = master
            .join(groups.clone())
            .await
            .context("joining the groups")?;
        let config = master
            .query(Some(num))
            .await
            .context("querying the master")?;
        let counts = Arc::new(ShardCounts::new(args.shards as usize));
        let entry_bytes = 17 + args.value_size;
        moves::watch_moves(
            &self.probe,
            &before,
            &config,
            Instant::now(),
            &counts,
            entry_bytes,
            STEP_TIMEOUT,
        )
        .await?;
        println!("  shard map (config {}):", config.num);
        print_indented(&map::shard_table(&config).render());
        self.step_done("join", cluster).await;

        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let client = Client::connect(masters.clone())
                .await
                .context("connecting a client")?;
            clients.push(Arc::new(client));
        }
        let load = if !args.keep || args.load {
            println!(
                "step 3: loading {} keys of {} B values with {} concurrent writers",
                grouped(args.keys),
                args.value_size,
                args.writers
            );
            let report = load::bulk_load(
                &clients,
                args.keys,
                args.value_size as usize,
                args.writers as usize,
                counts.clone(),
            )
            .await?;
            println!("  {}", load_line(&report));
            self.step_done("load", cluster).await;
            Some(report)
        } else {
            None
        };

        if args.keep {
            return self.keep(cluster, &masters).await;
        }
        let load = load.expect("the demo without --keep loads");

        let new_gid = FIRST_GID + args.groups;
        println!("step 4: group {new_gid} joins while a background load writes new keys");
        let background = BackgroundLoad::start(
            &clients,
            BACKGROUND_WRITERS,
            args.value_size as usize,
            counts.clone(),
        );
        let addresses = cluster.add_group(new_gid, args.replicas as usize).await?;
        let old = master.query(None).await.context("querying the master")?;
        let acked_before = background.acked();
        let joined_at = Instant::now();
        let num = master
            .join(BTreeMap::from([(new_gid, addresses)]))
            .await
            .context("joining the new group")?;
        let new = master
            .query(Some(num))
            .await
            .context("querying the master")?;
        println!(
            "  config {}: {} shards move to group {new_gid}",
            new.num,
            moves::moving_shards(&old, &new).len()
        );
        let moved = moves::watch_moves(
            &self.probe,
            &old,
            &new,
            joined_at,
            &counts,
            entry_bytes,
            STEP_TIMEOUT,
        )
        .await?;
        let move_time = joined_at.elapsed();
        println!(
            "  every shard settled in {:.2} s; background load meanwhile: {:.0} ops/s",
            move_time.as_secs_f64(),
            rate(background.acked() - acked_before, move_time)
        );
        println!("  shard map (config {}):", new.num);
        print_indented(&map::shard_table(&new).render());
        self.step_done("move", cluster).await;

        let victim = FIRST_GID;
        let failover = if args.replicas >= 3 {
            println!("step 5: SIGKILL the leader of group {victim} while the load runs");
            let victim_addresses = new.groups.get(&victim).cloned().unwrap_or_default();
            let acked_before = background.acked();
            let step_started = Instant::now();
            let acked_at_election = std::sync::Mutex::new(None);
            let failover = failover::kill_leader(
                cluster,
                &self.probe,
                victim,
                &victim_addresses,
                STEP_TIMEOUT,
                || {
                    if let Ok(mut a) = acked_at_election.lock() {
                        *a = Some((background.acked(), step_started.elapsed()));
                    }
                },
            )
            .await?;
            let during_election = acked_at_election.lock().ok().and_then(|a| *a);
            if let Some((acked, took)) = during_election {
                println!(
                    "  background load during the election: {} writes ({:.0} ops/s)",
                    grouped(acked - acked_before),
                    rate(acked - acked_before, took)
                );
            }
            let failover_ops = rate(background.acked() - acked_before, step_started.elapsed());
            println!("  background load over the step: {failover_ops:.0} ops/s");
            self.step_done("failover", cluster).await;
            Some(failover)
        } else {
            println!(
                "step 5: skipped: with {} replicas a group has no majority once its leader is \
                 gone (use --replicas 3 or more)",
                args.replicas
            );
            None
        };

        println!("step 6: stopping the background load and verifying every key");
        let background = background.stop().await?;
        println!("  {}", load_line(&background));
        let verified = verify::verify(
            &clients[0],
            load.keys,
            background.keys,
            args.value_size as usize,
        )
        .await?;
        self.step_done("verify", cluster).await;

        let mut latency = Latency::default();
        latency.merge(&load.latency);
        latency.merge(&background.latency);
        println!("summary");
        println!(
            "  keys:                {} ({} loaded + {} by the background load), {}",
            grouped(load.keys + background.keys),
            grouped(load.keys),
            grouped(background.keys),
            human_bytes(load.bytes + background.bytes)
        );
        println!(
            "  load:                {:.0} ops/s; {}",
            load.ops_per_sec(),
            load.latency.summary()
        );
        println!(
            "  background load:     {:.0} ops/s; {}",
            background.ops_per_sec(),
            background.latency.summary()
        );
        println!(
            "  shards moved:        {} to group {new_gid} in {:.2} s ({} keys)",
            moved.len(),
            move_time.as_secs_f64(),
            grouped(moved.iter().map(|m| m.keys).sum())
        );
        match &failover {
            Some(f) => println!(
                "  new leader elected:  group {} replica {} in {:.2} s after replica {} was \
                 killed; it rejoined and caught up (slot {}) in {:.2} s",
                f.gid,
                f.elected,
                f.election.as_secs_f64(),
                f.killed,
                f.caught_up_to,
                f.catch_up.as_secs_f64()
            ),
            None => println!("  failover:            skipped (fewer than 3 replicas per group)"),
        }
        println!(
            "  steps:               {}; total {:.1} s",
            self.steps
                .iter()
                .map(|(name, d)| format!("{name} {:.1} s", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", "),
            self.started_at.elapsed().as_secs_f64()
        );
        println!(
            "  memory:              children's resident memory peaked at {} (sampled between steps)",
            human_bytes(self.peak_rss)
        );
        println!(
            "verified: {} keys, all values exact (one scan of all {} shards: none missing, none \
             extra; {} point reads) in {:.2} s",
            grouped(verified.exact),
            args.shards,
            verified.point_reads,
            verified.elapsed.as_secs_f64()
        );
        Ok(())
    }

    /// `--keep`: prints how to use the cluster, then waits (the caller stops on a signal).
    async fn keep(&mut self, cluster: &ClusterThread, masters: &[String]) -> CliResult {
        let list = masters.join(",");
        println!("the cluster is running; stop it with Ctrl-C");
        println!("  masters: {list}");
        println!("  data and logs: {}", self.started.dir.display());
        println!("  pids: {}", pid_list(&cluster.pids().await?));
        println!("try, in another shell:");
        println!("  export STRATA_MASTERS={list}");
        println!("  strata put greeting hello");
        println!("  strata get greeting");
        if self.args.load && self.args.keys > 0 {
            let key = load::load_key(self.args.keys / 2);
            println!(
                "  strata get {}   # one of the {} loaded keys",
                String::from_utf8_lossy(&key),
                grouped(self.args.keys)
            );
        }
        println!("  strata status");
        std::future::pending::<()>().await;
        Ok(())
    }
}

fn pid_list(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_indented(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn load_line(r: &LoadReport) -> String {
    format!(
        "{} puts ({}) in {:.2} s: {:.0} ops/s; latency {}",
        grouped(r.keys),
        human_bytes(r.bytes),
        r.elapsed.as_secs_f64(),
        r.ops_per_sec(),
        r.latency.summary()
    )
}

/// `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1234567), "1,234,567");
    }
}
