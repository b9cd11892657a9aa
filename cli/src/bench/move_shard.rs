//! The move-100mb workload (Strata only): while C clients put and get loaded keys of the other
//! shards, one shard is filled with `--move-mb` MB of 100 KiB incompressible values and then
//! moved to another group with the master's Move. Reports how long the fill and the move took
//! (until a majority of every group settled in the new configuration), the clients' throughput
//! per 500 ms window before, during and after, and whether the moved keys read back right.
//! The big keys are deleted afterwards.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::Serialize;
use strata_client::Gid;
use strata_rpc::shard_for_key;

use super::args::Stop;
use super::strata::StrataCluster;
use super::target::Conn;
use super::workload::{key, run_clients, Keyspace, Outcome};
use crate::cluster::{kv_error, master_error};
use crate::demo::moves::wait_settled;
use crate::error::{CliError, CliResult};

/// Bytes per value of the filled shard.
const BIG_VALUE: usize = 100 << 10;
/// Concurrent writers of the fill.
const FILL_WRITERS: usize = 8;
/// Width of a throughput window.
const WINDOW: Duration = Duration::from_millis(500);
/// Windows kept (20 minutes).
const MAX_WINDOWS: usize = 2400;
/// Load alone before the fill, and after the fill and the move.
const QUIET: Duration = Duration::from_secs(2);
/// Longest wait for the move to settle.
const MOVE_TIMEOUT: Duration = Duration::from_secs(180);
/// Every how many big keys one is read back after the move.
const VERIFY_EVERY: usize = 20;

/// The clients' throughput in one stage of the scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// Mean ops/s over the stage's windows.
    pub mean_ops_per_sec: f64,
    /// The worst 500 ms window's ops/s.
    pub worst_ops_per_sec: f64,
}

/// What move-100mb measured.
#[derive(Debug, Clone, Serialize)]
pub struct MoveReport {
    /// The shard moved.
    pub shard: u32,
    /// Its owner before.
    pub from: Gid,
    /// Its owner after.
    pub to: Gid,
    /// The configuration of the move.
    pub config: u64,
    /// Bytes of values in the shard.
    pub bytes: u64,
    /// Seconds the fill took.
    pub fill_seconds: f64,
    /// Seconds from the Move until every group settled.
    pub move_seconds: f64,
    /// The move's rate, MiB/s.
    pub move_mib_per_sec: f64,
    /// Throughput before the fill.
    pub base: Stage,
    /// ... during the fill.
    pub fill: Stage,
    /// ... during the move.
    pub moving: Stage,
    /// ... after the move.
    pub after: Stage,
    /// Big keys read back wrong after the move (of those sampled).
    pub wrong_keys: u64,
    /// Ops/s of every 500 ms window, in order.
    pub windows: Vec<f64>,
}

impl MoveReport {
    /// The lines printed under the result line.
    pub fn lines(&self) -> Vec<String> {
        let stage = |name: &str, s: &Stage| {
            format!(
                "  during {name:<6} mean {:>8.0} ops/s, worst 500 ms window {:>8.0} ops/s",
                s.mean_ops_per_sec, s.worst_ops_per_sec
            )
        };
        let mut lines = vec![
            format!(
                "  shard {} group {} -> {} (config {}): fill {} MiB in {:.2} s, move {:.2} s ({:.1} MiB/s){}",
                self.shard,
                self.from,
                self.to,
                self.config,
                self.bytes >> 20,
                self.fill_seconds,
                self.move_seconds,
                self.move_mib_per_sec,
                if self.wrong_keys > 0 {
                    format!("  {} SAMPLED KEYS WRONG AFTER THE MOVE", self.wrong_keys)
                } else {
                    String::new()
                }
            ),
            stage("base", &self.base),
            stage("fill", &self.fill),
            stage("move", &self.moving),
            stage("after", &self.after),
        ];
        let peak = self.windows.iter().copied().fold(1.0, f64::max);
        let bars: String = self
            .windows
            .iter()
            .map(|&w| {
                [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'][((w / peak) * 8.0).round() as usize]
            })
            .collect();
        lines.push(format!("  ops/s per 500 ms: {bars}"));
        lines
    }
}

/// When each stage started, from the start of the background load.
struct Marks {
    fill: Duration,
    fill_end: Duration,
    moving: Duration,
    moved: Duration,
    end: Duration,
}

/// Runs the scenario with one background client per connection of `conns`; returns the
/// clients' outcome and what the move measured.
pub async fn run(
    cluster: &StrataCluster,
    conns: &[Conn],
    keys: &Arc<Keyspace>,
    megabytes: u64,
    say: impl Fn(&str),
) -> CliResult<(Outcome, MoveReport)> {
    let master = cluster.master();
    let config = master.query(None).await.map_err(master_error)?;
    let shards = config.num_shards() as u32;
    let shard = 0;
    let from = config.owner(shard);
    let to = *config
        .groups
        .keys()
        .find(|&&g| g != from)
        .ok_or_else(|| CliError::failed("move-100mb needs a second replica group"))?;
    let count = (megabytes * 10) as usize;
    let big: Vec<Vec<u8>> = (0u64..)
        .map(|i| format!("bench/big/{i:010}").into_bytes())
        .filter(|k| shard_for_key(k, shards) == shard)
        .take(count)
        .collect();
    let background: Arc<Vec<u64>> = Arc::new(
        (0..keys.records)
            .filter(|&id| shard_for_key(&key(id), shards) != shard)
            .collect(),
    );
    if background.is_empty() {
        return Err(CliError::failed(
            "move-100mb: every loaded key is in the moving shard (raise --records)",
        ));
    }

    let halt = Arc::new(AtomicBool::new(false));
    let windows: Arc<Vec<AtomicU64>> =
        Arc::new((0..MAX_WINDOWS).map(|_| AtomicU64::new(0)).collect());
    let t0 = Instant::now();
    let load = run_clients(
        conns,
        Stop::After(Duration::from_secs(24 * 3600)),
        Some(halt.clone()),
        "move",
        false,
        |i, conn, budget| {
            let (keys, ids, windows) = (keys.clone(), background.clone(), windows.clone());
            background_client(i, conn, keys, ids, windows, t0, budget)
        },
    );
    let scenario = async {
        let result = fill_and_move(cluster, &big, shard, to, t0, &say).await;
        halt.store(true, Ordering::Relaxed);
        result
    };
    let (outcome, marks) = tokio::join!(load, scenario);
    let (marks, num) = marks?;

    let admin = cluster.admin();
    let mut wrong = 0;
    for k in big.iter().step_by(VERIFY_EVERY) {
        match admin.get(k).await {
            Ok(Some(v)) if v.len() == BIG_VALUE && v.starts_with(k) => {}
            _ => wrong += 1,
        }
    }
    for k in &big {
        admin.delete(k).await.map_err(kv_error)?;
    }

    let per_s: Vec<f64> = windows
        [..((marks.end.as_millis() / WINDOW.as_millis()) as usize).min(MAX_WINDOWS)]
        .iter()
        .map(|w| w.load(Ordering::Relaxed) as f64 / WINDOW.as_secs_f64())
        .collect();
    let stage = |from: Duration, to: Duration| {
        let ws: Vec<f64> = per_s
            .iter()
            .enumerate()
            .filter(|&(w, _)| {
                let mid = WINDOW * w as u32 + WINDOW / 2;
                mid >= from && mid < to
            })
            .map(|(_, &v)| v)
            .collect();
        Stage {
            mean_ops_per_sec: if ws.is_empty() {
                f64::NAN
            } else {
                ws.iter().sum::<f64>() / ws.len() as f64
            },
            worst_ops_per_sec: ws.iter().copied().fold(f64::NAN, f64::min),
        }
    };
    let bytes = (big.len() * BIG_VALUE) as u64;
    let move_seconds = (marks.moved - marks.moving).as_secs_f64();
    let report = MoveReport {
        shard,
        from,
        to,
        config: num,
        bytes,
        fill_seconds: (marks.fill_end - marks.fill).as_secs_f64(),
        move_seconds,
        move_mib_per_sec: bytes as f64 / (1 << 20) as f64 / move_seconds.max(1e-3),
        base: stage(Duration::ZERO, marks.fill),
        fill: stage(marks.fill, marks.fill_end),
        moving: stage(marks.moving, marks.moved),
        after: stage(marks.moved, marks.end),
        wrong_keys: wrong,
        windows: per_s,
    };
    Ok((outcome, report))
}

/// Fills the shard, moves it to `to` and waits for every group to settle, with quiet
/// stretches before and after; returns when each stage began (from `t0`) and the
/// configuration of the move.
async fn fill_and_move(
    cluster: &StrataCluster,
    big: &[Vec<u8>],
    shard: u32,
    to: Gid,
    t0: Instant,
    say: &impl Fn(&str),
) -> CliResult<(Marks, u64)> {
    tokio::time::sleep(QUIET).await;
    let fill = t0.elapsed();
    say(&format!(
        "  filling shard {shard} with {} values of {} KiB",
        big.len(),
        BIG_VALUE >> 10
    ));
    let mut base = vec![0u8; BIG_VALUE];
    SmallRng::seed_from_u64(7).fill_bytes(&mut base);
    let base = Arc::new(base);
    let mut writers = Vec::new();
    for chunk in big.chunks(big.len().div_ceil(FILL_WRITERS)) {
        let (client, chunk, base) = (cluster.admin().clone(), chunk.to_vec(), base.clone());
        writers.push(tokio::spawn(async move {
            for k in chunk {
                let mut v = base.as_ref().clone();
                v[..k.len()].copy_from_slice(&k);
                client.put(&k, &v).await.map_err(kv_error)?;
            }
            Ok::<(), CliError>(())
        }));
    }
    for w in writers {
        w.await
            .map_err(|e| CliError::failed(format!("a fill writer failed: {e}")))??;
    }
    let fill_end = t0.elapsed();
    tokio::time::sleep(QUIET / 2).await;
    say(&format!("  moving shard {shard} to group {to}"));
    let moving = t0.elapsed();
    let master = cluster.master();
    let num = master.move_shard(shard, to).await.map_err(master_error)?;
    let config = master.query(Some(num)).await.map_err(master_error)?;
    wait_settled(&cluster.probe(), &config, MOVE_TIMEOUT).await?;
    let moved = t0.elapsed();
    tokio::time::sleep(QUIET).await;
    let marks = Marks {
        fill,
        fill_end,
        moving,
        moved,
        end: t0.elapsed(),
    };
    Ok((marks, num))
}

/// One background client: puts and gets (half each) of loaded keys outside the moving
/// shard, counting successes per window.
async fn background_client(
    index: usize,
    mut conn: Conn,
    keys: Arc<Keyspace>,
    ids: Arc<Vec<u64>>,
    windows: Arc<Vec<AtomicU64>>,
    t0: Instant,
    budget: Arc<super::workload::Budget>,
) -> Outcome {
    let mut rng = SmallRng::seed_from_u64(index as u64 ^ 0x5EED);
    let mut out = Outcome::default();
    while budget.claim() {
        let id = ids[rng.random_range(0..ids.len())];
        let k = key(id);
        let t = Instant::now();
        let result = if rng.random_bool(0.5) {
            conn.put(&k, keys.value(id, 1)).await
        } else {
            conn.get(&k).await.map(|_| ())
        };
        match result {
            Ok(()) => {
                out.ops += 1;
                out.latency.record(t.elapsed());
                let w = (t0.elapsed().as_millis() / WINDOW.as_millis()) as usize;
                if let Some(count) = windows.get(w) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => out.failed(e),
        }
        budget.done_one();
    }
    out
}
