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
//! - [`summary`]: the closing report.
//! - `steps`: the steps themselves, in order.

/// `println!` that ignores a closed stdout (`strata demo | head`): the demo still stops its
/// cluster and removes its directory rather than panicking on the first line nobody reads.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that ignores a closed stderr.
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

pub mod cluster;
pub mod failover;
pub mod load;
pub mod map;
pub mod moves;
pub mod probe;
pub mod progress;
mod steps;
pub mod summary;
pub mod verify;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};

use self::cluster::ClusterThread;
use self::steps::Demo;
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
    /// With --keep: write a Prometheus configuration scraping every process
    /// (`DIR/prometheus.yml`) and the shipped alert rules (`DIR/alerts.yml`) into DIR.
    #[arg(long, requires = "keep", value_name = "DIR")]
    pub prometheus: Option<PathBuf>,
    /// Paxos tick of every process, in milliseconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub tick_ms: u64,
    /// Run without TLS. By default every connection is mutual TLS, with a CA and
    /// certificates made for the demo in its directory (`certs/`).
    #[arg(long)]
    pub insecure: bool,
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
    options.tls = !args.insecure;

    let started_at = Instant::now();
    say!(
        "step 1: starting 3 masters and {} groups of {} servers ({} shards)",
        args.groups,
        args.replicas,
        args.shards
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
        say_err!("strata demo: {why}; stopping the cluster");
        // Writes the servers already took are still being chosen: let them finish first. A
        // server stopped while its Paxos driver has a backlog can miss the stop and be
        // SIGKILLed after the grace period (node/src/driver.rs drains queued inputs with
        // `try_recv` and `handle` ignores `Input::Stop` there); a quiet cluster stops cleanly.
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
    say!(
        "stopped {pids} processes in {:.1} s ({killed} needed SIGKILL); {kept}",
        stopping.elapsed().as_secs_f64()
    );
    match ending? {
        Ending::Done => Ok(()),
        Ending::Interrupted(why) => Err(CliError::failed(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::summary::grouped;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1234567), "1,234,567");
    }
}
