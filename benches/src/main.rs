//! `strata-bench`: a db_bench-style driver that runs the same workloads against Strata, fjall
//! and (with the `rocksdb` feature) RocksDB, each engine in a child process of its own so that
//! memory and write amplification are measured separately, and prints them side by side.
//!
//! ```text
//! strata-bench --benchmarks=fillrandom,readrandom --num=1000000 --engines=strata,fjall
//! ```

mod engine;
mod engines;
mod measure;
mod report;
mod workload;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use engine::{Compression, EngineSettings};
use report::{EngineRun, WorkloadResult};
use strata_workload::keys::{Distribution, MIN_KEY_SIZE};
use workload::{Bench, RunConfig, Workload};

/// db_bench's flags (`--name=value`), plus `--engines` and `--distribution`.
#[derive(Debug, Parser)]
#[command(name = "strata-bench", version, about, rename_all = "snake_case")]
struct Args {
    /// Comma-separated workloads, run in order: fillseq, fillrandom, fillbatch, overwrite,
    /// readrandom, readmissing, readseq, seekrandom, deleterandom, readwhilewriting,
    /// ycsba..ycsbf.
    #[arg(
        long,
        default_value = "fillseq,fillrandom,overwrite,readrandom,readmissing,readseq,seekrandom,deleterandom"
    )]
    benchmarks: String,
    /// Comma-separated engines, each run in its own child process: strata, fjall, rocksdb.
    #[arg(long, default_value = "strata,fjall")]
    engines: String,
    /// Keys written by the fills (and the key space of the random workloads).
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,
    /// Operations of the read workloads and YCSB mixes (default: --num).
    #[arg(long)]
    reads: Option<u64>,
    /// Bytes per key (at least 8).
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Threads per workload (readers, for readwhilewriting); operations are split among them.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Updates per write call in fillseq, fillrandom and overwrite.
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Entries read after each seek of seekrandom.
    #[arg(long, default_value_t = 0)]
    seek_nexts: usize,
    /// How random workloads pick keys.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    distribution: Distribution,
    /// fdatasync the log on every write.
    #[arg(long, default_value_t = false)]
    sync: bool,
    /// Block compression.
    #[arg(long, value_enum, default_value_t = Compression::Lz4)]
    compression_type: Compression,
    /// Block cache bytes.
    #[arg(long, default_value_t = 32 << 20)]
    cache_size: usize,
    /// Bloom filter bits per key (0: no filter).
    #[arg(long, default_value_t = 10)]
    bloom_bits: u32,
    /// Memtable bytes.
    #[arg(long, default_value_t = 64 << 20)]
    write_buffer_size: usize,
    /// A Bloom filter over each memtable's keys, about 2% of the memtable (db_bench's flag;
    /// RocksDB gets `memtable_prefix_bloom_size_ratio` 0.02 with it; fjall has no such filter).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    memtable_whole_key_filtering: bool,
    /// Write the log through a memory mapping (db_bench's flag; Strata's WAL, RocksDB's
    /// `allow_mmap_writes`; fjall has no such option and writes its journal with `write(2)`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    mmap_write: bool,
    /// Data block bytes.
    #[arg(long, default_value_t = 4096)]
    block_size: usize,
    /// Background threads for flushes and compactions.
    #[arg(long, default_value_t = 2)]
    max_background_jobs: usize,
    /// Directory under which each engine gets a database directory (wiped first).
    #[arg(long, default_value = "/tmp/strata-bench")]
    db: PathBuf,
    /// Random seed of the key choices.
    #[arg(long, default_value_t = 301)]
    seed: u64,
    /// Write machine-readable results here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run one engine in this process.
    #[arg(long, hide = true)]
    child_engine: Option<String>,
    /// Internal: where the child writes its results.
    #[arg(long, hide = true)]
    child_out: Option<PathBuf>,
}

impl Args {
    fn settings(&self) -> EngineSettings {
        EngineSettings {
            write_buffer_size: self.write_buffer_size,
            block_size: self.block_size,
            bloom_bits: self.bloom_bits,
            memtable_filter: self.memtable_whole_key_filtering,
            mmap_write: self.mmap_write,
            compression: self.compression_type,
            cache_size: self.cache_size,
            sync: self.sync,
            background_jobs: self.max_background_jobs,
        }
    }

    fn run_config(&self) -> RunConfig {
        RunConfig {
            num: self.num,
            reads: self.reads.unwrap_or(self.num),
            key_size: self.key_size,
            value_size: self.value_size,
            threads: self.threads.max(1),
            batch_size: self.batch_size.max(1),
            seek_nexts: self.seek_nexts,
            distribution: self.distribution,
            seed: self.seed,
        }
    }

    fn workloads(&self) -> anyhow::Result<Vec<Workload>> {
        split_list(&self.benchmarks).map(str::parse).collect()
    }
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.key_size >= MIN_KEY_SIZE,
        "--key_size must be at least {MIN_KEY_SIZE}"
    );
    anyhow::ensure!(args.num >= 1, "--num must be at least 1");
    args.workloads()?;
    match &args.child_engine {
        Some(engine) => run_child(&args, engine),
        None => run_parent(&args),
    }
}

/// The parent: prints the header, runs one child per engine, prints the comparison.
fn run_parent(args: &Args) -> anyhow::Result<()> {
    let engines: Vec<&str> = split_list(&args.engines).collect();
    anyhow::ensure!(!engines.is_empty(), "--engines is empty");
    for e in &engines {
        anyhow::ensure!(
            engine::available_engines().contains(e),
            "engine {e:?} is not available in this build (available: {}; RocksDB needs \
             `--features rocksdb`)",
            engine::available_engines().join(",")
        );
    }
    let cfg = args.run_config();
    let settings = args.settings();
    let machine = machine();
    println!("strata-bench: {}", machine.summary);
    println!("Keys:       {} bytes each", cfg.key_size);
    println!(
        "Values:     {} bytes each (about half compressible)",
        cfg.value_size
    );
    println!("Entries:    {}", cfg.num);
    println!("Reads:      {}", cfg.reads);
    println!("Threads:    {}", cfg.threads);
    println!("Keys drawn: {:?}", cfg.distribution);
    std::fs::create_dir_all(&args.db).with_context(|| format!("creating {}", args.db.display()))?;
    let exe = std::env::current_exe().context("locating strata-bench")?;
    let mut runs = Vec::new();
    for e in &engines {
        println!("------------------------------------------------");
        println!("{e}: {}", engine::describe(e, &settings));
        let out = args.db.join(format!("{e}.result.json"));
        let status = Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .arg(format!("--child_engine={e}"))
            .arg(format!("--child_out={}", out.display()))
            .status()
            .with_context(|| format!("starting the {e} child"))?;
        anyhow::ensure!(status.success(), "the {e} run failed ({status})");
        let text =
            std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
        let _ = std::fs::remove_file(&out);
        let run: EngineRun = serde_json::from_str(&text).context("parsing a child's results")?;
        println!(
            "{e}: peak RssAnon {:.1} MiB, write amp {:.2}, space amp {:.2}",
            run.peak_rss_anon_bytes as f64 / 1048576.0,
            run.write_amplification,
            run.space_amplification
        );
        runs.push(run);
    }
    if runs.len() > 1 {
        println!("================================================");
        print!("{}", report::comparison(&runs));
    }
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "machine": machine.json,
            "run": cfg,
            "settings": settings,
            "engines": runs,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A child: runs every workload against one engine and writes an [`EngineRun`].
fn run_child(args: &Args, name: &str) -> anyhow::Result<()> {
    let out = args
        .child_out
        .as_ref()
        .context("--child_engine needs --child_out")?;
    let settings = args.settings();
    let dir = args.db.join(name);
    let sampler = measure::RssSampler::start();
    let bench = Bench::new(args.run_config());
    wipe(&dir)?;
    let written_at_start = measure::bytes_written();
    let mut engine = engine::open_engine(name, &dir, &settings)?;
    let mut results = Vec::new();
    let mut user_bytes = 0;
    let mut dirty = false;
    for w in args.workloads()? {
        if w.needs_fresh_db() && dirty {
            engine.close()?;
            wipe(&dir)?;
            bench.live.clear();
            engine = engine::open_engine(name, &dir, &settings)?;
        }
        let bar = progress_bar(&format!("{name} {}", w.name()), bench.planned_ops(w));
        sampler.reset();
        let before = measure::bytes_written();
        let outcome = bench
            .run(w, engine.as_ref(), &bar)
            .with_context(|| format!("{name}: {}", w.name()))?;
        bar.finish_and_clear();
        let written = measure::bytes_written() - before;
        let result = WorkloadResult::new(
            w.name(),
            &outcome,
            written,
            sampler.reset(),
            measure::dir_bytes(&dir),
        );
        println!("{}", result.lines());
        user_bytes += outcome.user_bytes_written;
        dirty |= outcome.user_bytes_written > 0;
        results.push(result);
    }
    engine.flush()?;
    let bytes_written = measure::bytes_written() - written_at_start;
    let db_bytes = measure::dir_bytes(&dir);
    let live = bench.live_bytes();
    let engine_stats = engine.stats();
    engine.close()?;
    let run = EngineRun {
        engine: name.to_string(),
        configuration: engine::describe(name, &settings),
        workloads: results,
        peak_rss_anon_bytes: sampler.run_peak(),
        peak_rss_bytes: measure::status_bytes("VmHWM").unwrap_or(0),
        user_bytes_written: user_bytes,
        bytes_written,
        write_amplification: bytes_written as f64 / user_bytes.max(1) as f64,
        live_user_bytes: live,
        db_bytes,
        space_amplification: db_bytes as f64 / live.max(1) as f64,
        engine_stats,
    };
    std::fs::write(out, serde_json::to_string(&run)?)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn wipe(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// A bar on stderr; hidden when stderr is not a terminal.
fn progress_bar(label: &str, len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    bar
}

struct Machine {
    summary: String,
    json: serde_json::Value,
}

/// CPU model, core count, memory and kernel, for the report.
fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mem_gib = mem_kb as f64 / 1048576.0;
    Machine {
        summary: format!("{cpu}, {cores} cores, {mem_gib:.1} GiB, Linux {kernel}"),
        json: serde_json::json!({
            "cpu": cpu, "cores": cores, "mem_total_bytes": mem_kb * 1024, "kernel": kernel,
        }),
    }
}
