//! The storage engines' figures as metrics, read from `strata::Db::stats()` at each scrape
//! (the engine itself stays free of metrics crates). A server has two engines, labelled
//! `engine="paxos"` (the Paxos log and acceptor state) and `engine="data"` (its shards); a
//! master has the first.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// Reads one engine's statistics now.
pub type StatsFn = Arc<dyn Fn() -> strata::Stats + Send + Sync>;

/// The engines of a process, by label.
#[derive(Clone, Default)]
pub struct EngineCollector {
    engines: Vec<(&'static str, StatsFn)>,
}

impl fmt::Debug for EngineCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.engines.iter().map(|(n, _)| *n).collect();
        f.debug_struct("EngineCollector")
            .field("engines", &names)
            .finish()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EngineLabel {
    engine: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabel {
    engine: &'static str,
    level: u32,
}

impl EngineCollector {
    /// Adds an engine under `label`.
    pub fn add(&mut self, label: &'static str, stats: StatsFn) {
        self.engines.push((label, stats));
    }
}

/// A metric's name, help, and how to read it from the statistics.
type Figure = (&'static str, &'static str, fn(&strata::Stats) -> u64);

/// The same, per level.
type LevelFigure = (&'static str, &'static str, fn(&strata::Stats, usize) -> u64);

fn gauge_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats: Vec<(&'static str, strata::Stats)> =
            self.engines.iter().map(|(l, f)| (*l, f())).collect();
        let stalled: Family<EngineLabel, Counter<f64, AtomicU64>> = Family::default();
        for (engine, s) in &stats {
            let seconds = s.write_stall_micros as f64 / 1e6;
            stalled
                .get_or_create(&EngineLabel { engine })
                .inc_by(seconds);
        }
        let help = "Seconds writes spent stalled, waiting for a flush or compaction";
        let name = "strata_engine_write_stall_seconds";
        stalled.encode(encoder.encode_descriptor(name, help, None, stalled.metric_type())?)?;
        let counters: [Figure; 8] = [
            (
                "write_stalls",
                "Writes that waited for a flush or compaction",
                |s| s.write_stalls,
            ),
            ("wal_syncs", "fdatasync calls on the write-ahead log", |s| {
                s.wal_syncs
            }),
            ("flushes", "Memtables flushed to level 0", |s| s.flushes),
            ("compaction_errors", "Compactions that failed", |s| {
                s.compaction_errors
            }),
            (
                "block_cache_hits",
                "Block reads served by the block cache",
                |s| s.block_cache_hits,
            ),
            (
                "block_cache_misses",
                "Block reads that missed the block cache",
                |s| s.block_cache_misses,
            ),
            (
                "user_bytes_written",
                "Bytes of keys and values written by users",
                |s| s.user_bytes_written,
            ),
            ("wal_bytes", "Bytes appended to the write-ahead log", |s| {
                s.wal_bytes
            }),
        ];
        for (name, help, read) in counters {
            let family: Family<EngineLabel, Counter> = Family::default();
            for (engine, s) in &stats {
                family
                    .get_or_create(&EngineLabel { engine })
                    .inc_by(read(s));
            }
            let name = format!("strata_engine_{name}");
            family.encode(encoder.encode_descriptor(&name, help, None, family.metric_type())?)?;
        }
        let gauges: [Figure; 5] = [
            (
                "memtable_bytes",
                "Bytes in the memtables, the immutable ones included",
                |s| s.memtable_bytes + s.immutable_memtable_bytes,
            ),
            ("block_cache_bytes", "Bytes in the block cache", |s| {
                s.block_cache_bytes
            }),
            ("open_tables", "Tables open", |s| s.open_tables),
            ("live_snapshots", "Snapshots held", |s| s.live_snapshots),
            (
                "pending_compaction_bytes",
                "Estimated bytes compaction must rewrite to bring every level within its target",
                |s| s.pending_compaction_bytes,
            ),
        ];
        for (name, help, read) in gauges {
            let family: Family<EngineLabel, Gauge> = Family::default();
            for (engine, s) in &stats {
                family
                    .get_or_create(&EngineLabel { engine })
                    .set(gauge_of(read(s)));
            }
            let name = format!("strata_engine_{name}");
            family.encode(encoder.encode_descriptor(&name, help, None, family.metric_type())?)?;
        }
        let levels: [LevelFigure; 2] = [
            ("level_files", "Table files per level", |s, l| {
                s.files_per_level[l]
            }),
            ("level_bytes", "Bytes of tables per level", |s, l| {
                s.bytes_per_level[l]
            }),
        ];
        for (name, help, read) in levels {
            let family: Family<LevelLabel, Gauge> = Family::default();
            for (engine, s) in &stats {
                for level in 0..s.files_per_level.len() {
                    let label = LevelLabel {
                        engine,
                        level: level as u32,
                    };
                    family.get_or_create(&label).set(gauge_of(read(s, level)));
                }
            }
            let name = format!("strata_engine_{name}");
            family.encode(encoder.encode_descriptor(&name, help, None, family.metric_type())?)?;
        }
        Ok(())
    }
}
