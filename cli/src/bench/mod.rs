//! `strata bench`: YCSB-style workloads against a Strata cluster and/or etcd, side by side,
//! with throughput, latency percentiles and the CPU the servers spent per operation.
//!
//! For each target in turn (Strata first; never both at once, so they do not compete for
//! the cores): start it or find it, measure its idle CPU, load `--records` keys, then run
//! every workload once per client count, each phase printing one line as it ends; last, a
//! table of Strata/etcd ratios when both ran. With `--json`, one document instead.
//!
//! - [`args`]: the command line, checked into a plan.
//! - [`workload`]: keys and values, the load, one phase of clients running a workload.
//! - [`target`]: a system under test and a client's connection to it; [`strata`] and
//!   [`etcd`] for each system (a local etcd runs the system's `etcd` binary).
//! - [`cpu`]: CPU seconds of the server processes from `/proc`, and finding them.
//! - [`move_shard`]: the move-100mb scenario.
//! - [`report`]: results, lines, the ratio table and the JSON document.

pub mod args;
pub mod cpu;
pub mod etcd;
pub mod move_shard;
pub mod report;
pub mod strata;
pub mod target;
pub mod workload;

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use self::args::{EtcdTarget, Plan, Stop, Workload};
use self::cpu::{own_process, CpuSample};
use self::report::{IdleReport, PhaseResult, Report, Settings, TargetReport};
use self::target::{System, Target};
use self::workload::{Keyspace, KEY_SIZE};
use crate::cli::Global;
use crate::error::{CliError, CliResult, Context};
use crate::output::{print_json, print_stdout};

pub use self::args::BenchArgs;

/// Connections that load the records (the largest client count, if more).
const LOAD_CLIENTS: usize = 32;

/// Runs `strata bench`. Whatever it started is stopped, and its directories removed, however
/// it ends (Ctrl-C included).
pub async fn run(global: Global, args: BenchArgs) -> CliResult {
    let plan = Plan::new(args, &global)?;
    if let Some(EtcdTarget::Local(binary)) = &plan.etcd {
        if etcd::find_binary(binary).is_none() {
            return Err(CliError::failed(format!(
                "--etcd-local: no `{}` found (install Debian's etcd-server, or pass --etcd-binary PATH)",
                binary.display()
            )));
        }
    }
    // From here on a Ctrl-C is ours: the run's future is dropped, which stops what it
    // started and removes its directories.
    let mut sigint = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        r = bench(&plan, &global) => r,
        _ = sigint.recv() => Err(CliError::failed("interrupted")),
        _ = sigterm.recv() => Err(CliError::failed("terminated")),
    }
}

/// What the run prints as it goes (nothing with `--json`).
struct Out {
    json: bool,
}

impl Out {
    fn line(&self, text: &str) {
        if !self.json {
            print_stdout(&format!("{text}\n"));
        }
    }
}

async fn bench(plan: &Plan, global: &Global) -> CliResult {
    let args = &plan.args;
    let out = Out { json: plan.json };
    let settings = Settings {
        machine: report::Machine::this(),
        workloads: args
            .workloads
            .iter()
            .map(|w| w.name().to_string())
            .collect(),
        records: args.records,
        key_size: KEY_SIZE,
        value_size: args.value_size,
        distribution: args.distribution,
        clients: plan.clients.clone(),
        seconds: match plan.stop {
            Stop::After(d) => Some(d.as_secs_f64()),
            Stop::Operations(_) => None,
        },
        operations: args.operations,
        seed: args.seed,
    };
    for line in settings.lines() {
        out.line(&line);
    }
    let mut report = Report {
        settings,
        targets: Vec::new(),
        results: Vec::new(),
        comparison: Vec::new(),
    };
    if let Some(strata) = &plan.strata {
        out.line("");
        out.line("starting the Strata cluster ...");
        let target = Target::strata(strata, plan, global).await?;
        bench_target(target, plan, &out, &mut report).await?;
    }
    if let Some(etcd) = &plan.etcd {
        out.line("");
        out.line("starting etcd ...");
        let target = Target::etcd(etcd, global).await?;
        bench_target(target, plan, &out, &mut report).await?;
    }
    report.comparison = report::compare(&report.results);
    if plan.json {
        print_json(&report);
    } else if !report.comparison.is_empty() {
        out.line("");
        out.line("== Strata / etcd (throughput ratio > 1: Strata faster; p99 and CPU ratios < 1: Strata lower)");
        print_stdout(&report::comparison_table(&report.results, &report.comparison).render());
    }
    let failed: u64 = report.results.iter().map(|r| r.errors).sum();
    if failed > 0 {
        let first = report
            .results
            .iter()
            .find_map(|r| r.first_error.clone())
            .unwrap_or_default();
        return Err(CliError::failed(format!(
            "{failed} operations failed (first: {first})"
        )));
    }
    Ok(())
}

/// Runs every phase against `target`, then stops what the run started of it.
async fn bench_target(
    mut target: Target,
    plan: &Plan,
    out: &Out,
    report: &mut Report,
) -> CliResult {
    let measured = measure(&target, plan, out, report).await;
    let stopped = target.shutdown().await;
    measured?;
    stopped
}

async fn measure(target: &Target, plan: &Plan, out: &Out, report: &mut Report) -> CliResult {
    let args = &plan.args;
    let name = target.name;
    out.line(&format!("== {name}: {}", target.description));
    if target.processes.is_empty() {
        out.line("   server processes: none found on this machine (CPU not measured)");
    } else {
        let list: Vec<String> = (target.processes.iter())
            .map(|p| format!("{} {}", p.label, p.pid))
            .collect();
        out.line(&format!("   server processes: {}", list.join(", ")));
    }
    let mut target_report = TargetReport {
        name: name.into(),
        description: target.description.clone(),
        processes: target.processes.clone(),
        idle: None,
        load: None,
    };
    if args.idle > 0.0 {
        let before = CpuSample::take(&target.processes);
        tokio::time::sleep(Duration::from_secs_f64(args.idle)).await;
        let used = before.until(&CpuSample::take(&target.processes));
        target_report.idle = IdleReport::new(&target.processes, &used);
        if let Some(idle) = &target_report.idle {
            out.line(&idle.line(name));
        }
    }

    let conns = target.connect(plan.max_clients().max(LOAD_CLIENTS)).await?;
    workload::warm_up(&conns).await;
    let keys = Arc::new(Keyspace::new(plan));
    let show_progress = !plan.json;
    let load = measured(target, "load", conns.len(), async {
        Ok(workload::load(&conns, &keys, show_progress).await)
    })
    .await?;
    out.line(&load.line());
    if load.errors > 0 {
        return Err(CliError::failed(format!(
            "{name}: loading {} records: {} puts failed (first: {})",
            keys.records,
            load.errors,
            load.first_error.as_deref().unwrap_or("")
        )));
    }
    target_report.load = Some(load);
    report.targets.push(target_report);

    let mut salt = 1;
    for &w in &args.workloads {
        if w.strata_only() && target.name != "strata" {
            out.line(&format!("{name:<7} {:<10} skipped: Strata only", w.name()));
            continue;
        }
        for &c in &plan.clients {
            salt += 1;
            let clients = &conns[..c];
            let result = match (w, &target.system) {
                (Workload::Move100Mb, System::Strata(cluster)) => {
                    let say = |line: &str| out.line(line);
                    let moving = move_shard::run(cluster, clients, &keys, args.move_mb, say);
                    let mut move_report = None;
                    let mut result = measured(target, w.name(), c, async {
                        let (outcome, moved) = moving.await?;
                        move_report = Some(moved);
                        Ok(outcome)
                    })
                    .await?;
                    result.move_shard = move_report;
                    result
                }
                _ => {
                    let stop = plan.stop;
                    let phase = workload::run_phase(clients, &keys, w, stop, salt, show_progress);
                    measured(target, w.name(), c, async { Ok(phase.await) }).await?
                }
            };
            out.line(&result.line());
            if let Some(m) = &result.move_shard {
                for line in m.lines() {
                    out.line(&line);
                }
            }
            report.results.push(result);
        }
    }
    Ok(())
}

/// Runs `work` (a phase of `workload` with `clients` clients) between two samples of the CPU
/// of `target`'s servers and of this process; its result.
async fn measured(
    target: &Target,
    workload: &str,
    clients: usize,
    work: impl std::future::Future<Output = CliResult<workload::Outcome>>,
) -> CliResult<PhaseResult> {
    let me = [own_process()];
    let servers = CpuSample::take(&target.processes);
    let client = CpuSample::take(&me);
    let outcome = work.await?;
    let servers = servers.until(&CpuSample::take(&target.processes));
    let client = client.until(&CpuSample::take(&me));
    Ok(PhaseResult::new(
        target.name,
        workload,
        clients,
        &outcome,
        &servers,
        &client,
    ))
}
