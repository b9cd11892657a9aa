//! Results: db_bench's result lines, the JSON a child hands its parent, and the side-by-side
//! table with ratios against Strata.

use serde::{Deserialize, Serialize};

use crate::engine::EngineStats;
use crate::workload::Outcome;

/// Latency percentiles of one workload, in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// One workload on one engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// Workload name.
    pub name: String,
    /// Operations measured.
    pub ops: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Wall-clock microseconds per operation (all threads together).
    pub micros_per_op: f64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Key + value MiB moved per second.
    pub mb_per_sec: f64,
    /// Reads that found their key.
    pub found: Option<u64>,
    /// Per-call latency.
    pub latency_us: Latency,
    /// Key + value bytes written by the workload.
    pub user_bytes_written: u64,
    /// Bytes the process handed to `write(2)` during the workload.
    pub bytes_written: u64,
    /// `bytes_written / user_bytes_written` for workloads that write.
    pub write_amplification: Option<f64>,
    /// Peak `RssAnon` during the workload.
    pub peak_rss_anon_bytes: u64,
    /// Size of the database directory right after the workload.
    pub db_bytes: u64,
    /// A note for the result line.
    pub note: Option<String>,
}

impl WorkloadResult {
    /// Builds the result of `outcome`; `bytes_written`, RSS and size are measured by the caller.
    pub fn new(
        name: String,
        o: &Outcome,
        bytes_written: u64,
        peak_rss: u64,
        db_bytes: u64,
    ) -> Self {
        let secs = o.elapsed.as_secs_f64().max(1e-9);
        let ops = o.ops.max(1) as f64;
        let us = |q: f64| o.latency.value_at_quantile(q) as f64 / 1000.0;
        WorkloadResult {
            name,
            ops: o.ops,
            seconds: secs,
            micros_per_op: secs * 1e6 / ops,
            ops_per_sec: o.ops as f64 / secs,
            mb_per_sec: o.bytes as f64 / 1048576.0 / secs,
            found: o.found,
            latency_us: Latency {
                p50: us(0.5),
                p99: us(0.99),
                p999: us(0.999),
                max: o.latency.max() as f64 / 1000.0,
                mean: o.latency.mean() / 1000.0,
            },
            user_bytes_written: o.user_bytes_written,
            bytes_written,
            write_amplification: (o.user_bytes_written > 0)
                .then(|| bytes_written as f64 / o.user_bytes_written as f64),
            peak_rss_anon_bytes: peak_rss,
            db_bytes,
            note: o.note.clone(),
        }
    }

    /// db_bench's line (`fillrandom   :       2.968 micros/op 336887 ops/sec;   37.3 MB/s`)
    /// and a latency line under it.
    pub fn lines(&self) -> String {
        let mut extra = String::new();
        if let Some(found) = self.found {
            extra.push_str(&format!(" ({found} of {} found)", self.ops));
        }
        if let Some(note) = &self.note {
            extra.push_str(&format!(" ({note})"));
        }
        let l = &self.latency_us;
        format!(
            "{:<12} : {:>11.3} micros/op {:.0} ops/sec; {:>6.1} MB/s{extra}\n{:<12}   latency us: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.0}",
            self.name, self.micros_per_op, self.ops_per_sec, self.mb_per_sec, "", l.p50, l.p99, l.p999, l.max
        )
    }
}

/// Everything one engine's child process measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineRun {
    /// Engine name.
    pub engine: String,
    /// How the shared settings were applied to this engine.
    pub configuration: String,
    /// One entry per workload, in order.
    pub workloads: Vec<WorkloadResult>,
    /// Peak `RssAnon` of the whole run (sampled every 10 ms).
    pub peak_rss_anon_bytes: u64,
    /// Peak resident set (`VmHWM`: anonymous plus file-backed pages, such as mapped tables).
    pub peak_rss_bytes: u64,
    /// Key + value bytes written by all workloads.
    pub user_bytes_written: u64,
    /// Bytes handed to `write(2)` from open to the final flush.
    pub bytes_written: u64,
    /// `bytes_written / user_bytes_written`.
    pub write_amplification: f64,
    /// Key + value bytes of the keys that exist at the end.
    pub live_user_bytes: u64,
    /// Size of the database directory after the final flush.
    pub db_bytes: u64,
    /// `db_bytes / live_user_bytes`.
    pub space_amplification: f64,
    /// The engine's own statistics.
    pub engine_stats: EngineStats,
}

/// The side-by-side table: ops/s, p99 and ratios against Strata, then memory and amplification.
pub fn comparison(runs: &[EngineRun]) -> String {
    let mut out = String::new();
    let base = runs.iter().find(|r| r.engine == "strata");
    let names: Vec<&str> = runs.iter().map(|r| r.engine.as_str()).collect();
    out.push_str(&format!("{:<17}", "ops/sec"));
    for n in &names {
        out.push_str(&format!("{n:>22}"));
    }
    out.push_str(&format!("{:>22}\n", "p99 us (each engine)"));
    let first = runs.first().map(|r| r.workloads.as_slice()).unwrap_or(&[]);
    for (i, w) in first.iter().enumerate() {
        out.push_str(&format!("{:<17}", w.name));
        let base_ops = base.and_then(|b| b.workloads.get(i)).map(|b| b.ops_per_sec);
        let mut p99s = Vec::new();
        for r in runs {
            let Some(rw) = r.workloads.get(i) else {
                out.push_str(&format!("{:>22}", "-"));
                continue;
            };
            let ratio = match base_ops {
                Some(b) if r.engine != "strata" && b > 0.0 => {
                    format!(" ({:.2}x)", rw.ops_per_sec / b)
                }
                _ => String::new(),
            };
            out.push_str(&format!("{:>22}", format!("{:.0}{ratio}", rw.ops_per_sec)));
            p99s.push(format!("{:.1}", rw.latency_us.p99));
        }
        out.push_str(&format!("{:>22}\n", p99s.join(" / ")));
    }
    let row = |label: &str, f: &dyn Fn(&EngineRun) -> String| {
        let mut line = format!("{label:<17}");
        for r in runs {
            line.push_str(&format!("{:>22}", f(r)));
        }
        line.push('\n');
        line
    };
    out.push_str(&row("peak RssAnon MiB", &|r| {
        format!("{:.1}", r.peak_rss_anon_bytes as f64 / 1048576.0)
    }));
    out.push_str(&row("peak RSS MiB", &|r| {
        format!("{:.1}", r.peak_rss_bytes as f64 / 1048576.0)
    }));
    out.push_str(&row("write amp", &|r| {
        format!("{:.2}", r.write_amplification)
    }));
    out.push_str(&row("space amp", &|r| {
        format!("{:.2}", r.space_amplification)
    }));
    out.push_str(&row("db size MiB", &|r| {
        format!("{:.1}", r.db_bytes as f64 / 1048576.0)
    }));
    out.push_str("(ratios: engine ops/sec divided by Strata's; p99 in engine order)\n");
    out
}
