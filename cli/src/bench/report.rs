//! What `strata bench` reports: one result per (target, workload, client count) with
//! throughput, latency percentiles and the CPU the target's servers used, printed as a
//! db_bench-like line as it finishes; the targets' idle CPU; a side-by-side table of
//! Strata/etcd ratios when both ran; or all of it as one JSON document (`--json`).

use serde::Serialize;

use super::cpu::{CpuUse, ServerProcess};
use super::workload::Outcome;
use crate::output::Table;

/// Latency percentiles of a phase, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Longest.
    pub max: f64,
}

/// CPU used during a phase.
#[derive(Debug, Clone, Serialize)]
pub struct CpuFigures {
    /// CPU seconds (user + system) of the processes together.
    pub seconds: f64,
    /// Cores kept busy on average (CPU seconds / wall seconds).
    pub cores: f64,
    /// CPU microseconds per operation (None with no operations).
    pub us_per_op: Option<f64>,
    /// Processes measured.
    pub processes: usize,
}

impl CpuFigures {
    /// The figures of `used` over `ops` operations; None if no process was measured.
    pub fn of(used: &CpuUse, ops: u64) -> Option<CpuFigures> {
        let seconds = used.seconds()?;
        Some(CpuFigures {
            seconds,
            cores: used.cores()?,
            us_per_op: (ops > 0).then(|| seconds * 1e6 / ops as f64),
            processes: used.measured(),
        })
    }
}

/// One phase's result.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    /// `strata` or `etcd`.
    pub target: String,
    /// The workload's name (`load` for the load of the records).
    pub workload: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Operations that succeeded.
    pub operations: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Reads of a loaded key that did not find it (should be 0).
    pub not_found: u64,
    /// Wall-clock seconds of the phase.
    pub seconds: f64,
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Latency percentiles of the successful operations.
    pub latency_ms: LatencyMs,
    /// CPU of the target's server processes (None: not measured).
    pub cpu: Option<CpuFigures>,
    /// CPU of the benchmark process itself (the clients).
    pub client_cpu: Option<CpuFigures>,
    /// The first failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// What the move-100mb workload measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub move_shard: Option<super::move_shard::MoveReport>,
}

impl PhaseResult {
    /// The result of `outcome`, with the CPU `servers` and `client` used meanwhile.
    pub fn new(
        target: &str,
        workload: &str,
        clients: usize,
        outcome: &Outcome,
        servers: &CpuUse,
        client: &CpuUse,
    ) -> PhaseResult {
        let seconds = outcome.elapsed.as_secs_f64();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let l = &outcome.latency;
        PhaseResult {
            target: target.into(),
            workload: workload.into(),
            clients,
            operations: outcome.ops,
            errors: outcome.errors,
            not_found: outcome.not_found,
            seconds,
            ops_per_sec: if seconds > 0.0 {
                outcome.ops as f64 / seconds
            } else {
                0.0
            },
            latency_ms: LatencyMs {
                p50: ms(l.quantile(0.5)),
                p99: ms(l.quantile(0.99)),
                p999: ms(l.quantile(0.999)),
                max: ms(l.max()),
            },
            cpu: CpuFigures::of(servers, outcome.ops),
            client_cpu: CpuFigures::of(client, outcome.ops),
            first_error: outcome.first_error.clone(),
            move_shard: None,
        }
    }

    /// The db_bench-like line: `strata  put  c=64  : 12,345 ops/s  p50 ... cpu ...`.
    pub fn line(&self) -> String {
        let l = &self.latency_ms;
        let mut line = format!(
            "{:<7} {:<10} c={:<4}: {:>9.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  max {:>8.2} ms  cpu {}",
            self.target, self.workload, self.clients, self.ops_per_sec, l.p50, l.p99, l.p999, l.max,
            cpu_text(self.cpu.as_ref()),
        );
        if self.errors > 0 {
            line.push_str(&format!(
                "  ERRORS {} (first: {})",
                self.errors,
                self.first_error.as_deref().unwrap_or("")
            ));
        }
        if self.not_found > 0 {
            line.push_str(&format!("  NOT FOUND {} loaded keys", self.not_found));
        }
        line
    }
}

/// `123.4 µs/op 1.52 cores`, or `-` when not measured.
fn cpu_text(cpu: Option<&CpuFigures>) -> String {
    match cpu {
        Some(CpuFigures {
            us_per_op: Some(us),
            cores,
            ..
        }) => format!("{us:>7.1} µs/op {cores:>5.2} cores"),
        Some(c) => format!("{:.2} cores", c.cores),
        None => "-".into(),
    }
}

/// One process's CPU while the target was idle.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCores {
    /// What it is.
    pub label: String,
    /// Its pid.
    pub pid: u32,
    /// Cores it kept busy.
    pub cores: f64,
}

/// A target's CPU while no client ran.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// How long it was measured.
    pub seconds: f64,
    /// Cores all its server processes kept busy together.
    pub cores: f64,
    /// The mean per process.
    pub cores_per_process: f64,
    /// Each process.
    pub processes: Vec<ProcessCores>,
}

impl IdleReport {
    /// The report of `used` by `processes` (in the same order); None if none was measured.
    pub fn new(processes: &[ServerProcess], used: &CpuUse) -> Option<IdleReport> {
        let wall = used.wall.as_secs_f64();
        let each: Vec<ProcessCores> = processes
            .iter()
            .zip(&used.per_process)
            .filter_map(|(p, s)| {
                Some(ProcessCores {
                    label: p.label.clone(),
                    pid: p.pid,
                    cores: s.as_ref()? / wall,
                })
            })
            .collect();
        let cores = used.cores()?;
        Some(IdleReport {
            seconds: wall,
            cores,
            cores_per_process: cores / each.len() as f64,
            processes: each,
        })
    }

    /// `idle 2.0 s: 0.034 cores in 6 processes (0.006 per process; most: group-100-1 0.012)`.
    pub fn line(&self, target: &str) -> String {
        let busiest = self
            .processes
            .iter()
            .max_by(|a, b| a.cores.total_cmp(&b.cores))
            .map(|p| format!("; most: {} {:.3}", p.label, p.cores))
            .unwrap_or_default();
        format!(
            "{target:<7} idle {:.1} s: {:.3} cores in {} processes ({:.3} per process{busiest})",
            self.seconds,
            self.cores,
            self.processes.len(),
            self.cores_per_process
        )
    }
}

/// One system under test in the report.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// `strata` or `etcd`.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Its server processes, whose CPU is measured.
    pub processes: Vec<ServerProcess>,
    /// Its CPU while idle.
    pub idle: Option<IdleReport>,
    /// The load of the records.
    pub load: Option<PhaseResult>,
}

/// Strata's figures over etcd's for one workload and client count.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The workload.
    pub workload: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Throughput ratio (> 1: Strata faster).
    pub ops_per_sec_ratio: f64,
    /// Median latency ratio (< 1: Strata lower).
    pub p50_ratio: f64,
    /// p99 latency ratio (< 1: Strata lower).
    pub p99_ratio: f64,
    /// CPU per operation ratio (< 1: Strata cheaper); None unless both were measured.
    pub cpu_per_op_ratio: Option<f64>,
}

/// The comparisons of every (workload, client count) both `strata` and `etcd` ran.
pub fn compare(results: &[PhaseResult]) -> Vec<Comparison> {
    let of = |target: &'static str| results.iter().filter(move |r| r.target == target);
    of("strata")
        .filter_map(|s| {
            let e = of("etcd").find(|e| e.workload == s.workload && e.clients == s.clients)?;
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
            let cpu = |r: &PhaseResult| r.cpu.as_ref().and_then(|c| c.us_per_op);
            Some(Comparison {
                workload: s.workload.clone(),
                clients: s.clients,
                ops_per_sec_ratio: ratio(s.ops_per_sec, e.ops_per_sec),
                p50_ratio: ratio(s.latency_ms.p50, e.latency_ms.p50),
                p99_ratio: ratio(s.latency_ms.p99, e.latency_ms.p99),
                cpu_per_op_ratio: Some(ratio(cpu(s)?, cpu(e)?)),
            })
        })
        .collect()
}

/// The side-by-side table of `comparisons`, with both targets' figures.
pub fn comparison_table(results: &[PhaseResult], comparisons: &[Comparison]) -> Table {
    let mut t = Table::new([
        "WORKLOAD",
        "C",
        "STRATA OPS/S",
        "ETCD OPS/S",
        "RATIO",
        "STRATA P99",
        "ETCD P99",
        "RATIO",
        "STRATA CPU/OP",
        "ETCD CPU/OP",
        "RATIO",
    ]);
    let find = |target: &str, c: &Comparison| {
        results
            .iter()
            .find(|r| r.target == target && r.workload == c.workload && r.clients == c.clients)
    };
    let us = |r: &PhaseResult| match r.cpu.as_ref().and_then(|c| c.us_per_op) {
        Some(us) => format!("{us:.1} µs"),
        None => "-".into(),
    };
    for c in comparisons {
        let (Some(s), Some(e)) = (find("strata", c), find("etcd", c)) else {
            continue;
        };
        t.row([
            c.workload.clone(),
            c.clients.to_string(),
            format!("{:.0}", s.ops_per_sec),
            format!("{:.0}", e.ops_per_sec),
            format!("{:.2}", c.ops_per_sec_ratio),
            format!("{:.2} ms", s.latency_ms.p99),
            format!("{:.2} ms", e.latency_ms.p99),
            format!("{:.2}", c.p99_ratio),
            us(s),
            us(e),
            c.cpu_per_op_ratio.map_or("-".into(), |r| format!("{r:.2}")),
        ]);
    }
    t
}

/// The machine the run measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs available to this process.
    pub cpus: usize,
    /// The CPU model.
    pub cpu_model: String,
    /// Memory in GiB.
    pub memory_gib: u64,
}

impl Machine {
    /// This machine, from `/proc`.
    pub fn this() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_default();
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                let kb = s
                    .lines()
                    .next()?
                    .split_whitespace()
                    .nth(1)?
                    .parse::<u64>()
                    .ok()?;
                Some(kb >> 20)
            })
            .unwrap_or(0);
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory_gib,
        }
    }
}

/// The run's settings.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Where it ran.
    pub machine: Machine,
    /// The workloads, in order.
    pub workloads: Vec<String>,
    /// Keys loaded first.
    pub records: u64,
    /// Bytes per key.
    pub key_size: usize,
    /// Bytes per value.
    pub value_size: u64,
    /// How keys were picked.
    pub distribution: strata_workload::keys::Distribution,
    /// Client counts.
    pub clients: Vec<usize>,
    /// Seconds per phase, when phases were timed.
    pub seconds: Option<f64>,
    /// Operations per phase, when phases were counted.
    pub operations: Option<u64>,
    /// Seed of the key choices.
    pub seed: u64,
}

impl Settings {
    /// The settings lines printed before the results.
    pub fn lines(&self) -> Vec<String> {
        let m = &self.machine;
        let phase = match (self.seconds, self.operations) {
            (_, Some(n)) => format!("{n} operations per phase"),
            (Some(s), None) => format!("{s} s per phase"),
            (None, None) => String::new(),
        };
        vec![
            format!(
                "machine   {} CPUs, {}, {} GiB RAM; the clients run on the same cores",
                m.cpus, m.cpu_model, m.memory_gib
            ),
            format!(
                "workload  {}; {} records of {} B keys and {} B values, {} keys; {phase}; clients {:?}",
                self.workloads.join(","),
                self.records,
                self.key_size,
                self.value_size,
                self.distribution.name(),
                self.clients
            ),
        ]
    }
}

/// Everything a run measured: the `--json` document.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The run's settings.
    pub settings: Settings,
    /// The systems under test.
    pub targets: Vec<TargetReport>,
    /// One result per (target, workload, client count), in the order they ran.
    pub results: Vec<PhaseResult>,
    /// Strata/etcd ratios, when both ran.
    pub comparison: Vec<Comparison>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn result(target: &str, workload: &str, ops_per_sec: f64, us: f64) -> PhaseResult {
        PhaseResult {
            target: target.into(),
            workload: workload.into(),
            clients: 4,
            operations: 100,
            errors: 0,
            not_found: 0,
            seconds: 1.0,
            ops_per_sec,
            latency_ms: LatencyMs {
                p50: 1.0,
                p99: 2.0,
                p999: 3.0,
                max: 4.0,
            },
            cpu: Some(CpuFigures {
                seconds: 1.0,
                cores: 1.0,
                us_per_op: Some(us),
                processes: 3,
            }),
            client_cpu: None,
            first_error: None,
            move_shard: None,
        }
    }

    #[test]
    fn ratios_pair_the_same_workload_and_clients() {
        let results = vec![
            result("strata", "put", 3000.0, 50.0),
            result("strata", "get", 1000.0, 10.0),
            result("etcd", "put", 1000.0, 100.0),
        ];
        let c = compare(&results);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].workload, "put");
        assert_eq!(c[0].ops_per_sec_ratio, 3.0);
        assert_eq!(c[0].cpu_per_op_ratio, Some(0.5));
        let table = comparison_table(&results, &c).render();
        assert!(table.lines().nth(1).unwrap().starts_with("put"), "{table}");
    }

    #[test]
    fn idle_cores_are_per_process() {
        let processes = vec![
            ServerProcess {
                label: "a".into(),
                pid: 1,
            },
            ServerProcess {
                label: "b".into(),
                pid: 2,
            },
            ServerProcess {
                label: "c".into(),
                pid: 3,
            },
        ];
        let used = CpuUse {
            wall: Duration::from_secs(2),
            per_process: vec![Some(0.2), None, Some(0.1)],
        };
        let idle = IdleReport::new(&processes, &used).unwrap();
        assert_eq!(idle.processes.len(), 2);
        assert!((idle.cores - 0.15).abs() < 1e-9);
        assert!((idle.cores_per_process - 0.075).abs() < 1e-9);
        assert!(idle.line("strata").contains("most: a 0.100"));
    }
}
