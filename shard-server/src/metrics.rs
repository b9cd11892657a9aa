//! A shard server's own metrics.
//!
//! - `strata_shard_ops_total{shard,op}`: the client operations this replica served
//!   successfully, by shard and kind (`get`, `put`, `append`, `delete`, `cas`, `scan`).
//!   Counted where the request was answered: a group's leader counts its group's writes and
//!   linearizable reads. Cost per request: the key's CRC32C, a read lock of the labelled
//!   family to find the counter (created on first use), and an atomic add.
//! - `strata_shard_keys{shard}`, `strata_shard_bytes{shard}`: live keys of each shard this
//!   replica serves, and the bytes of those keys and values, as last counted in the
//!   background by [`crate::shard_figures`] (which says how often, at what cost, and how far
//!   off they may be). Nothing on the request or apply path touches them.
//! - `strata_migration_in_flight`, `strata_migration_bytes_total`,
//!   `strata_migration_duration_seconds`: the shard pulls this replica runs (as its group's
//!   leader, see [`crate::worker`]), the bytes they received (counted per installed chunk),
//!   and how long each whole-shard pull took from its start on this replica to its last
//!   chunk installed. A pull that a change of leader cut short and another replica finished
//!   is timed by neither.
//!
//! Besides the exposition, the per-shard figures are kept for the replica's `NodeStatus`
//! ([`ShardMetrics::figures`]), which the master's status page reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use strata_rpc::v1;

/// The operations `strata_shard_ops_total` counts, by their `op` label.
pub const OPS: [&str; 6] = ["get", "put", "append", "delete", "cas", "scan"];

/// Buckets of `strata_migration_duration_seconds`: 10 ms to about 20 minutes.
const MOVE_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1200.0,
];

/// The labels of `strata_shard_ops_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardOp {
    /// The shard.
    pub shard: u32,
    /// The operation: `get`, `put`, `append`, `delete`, `cas`, `scan`.
    pub op: &'static str,
}

/// The label of the per-shard gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabel {
    /// The shard.
    pub shard: u32,
}

/// One completed count of a shard (see [`crate::shard_figures`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    /// Live keys.
    pub keys: u64,
    /// Bytes of the keys and their values.
    pub bytes: u64,
}

/// The shard server's metrics (cheap to clone: shared handles).
#[derive(Debug, Clone)]
pub struct ShardMetrics {
    ops: Family<ShardOp, Counter>,
    keys: Family<ShardLabel, Gauge>,
    bytes: Family<ShardLabel, Gauge>,
    /// The latest completed count of every shard counted, for the status. Lock: written by
    /// the background count once per shard per pass, read by `NodeStatus`; never taken on
    /// the request or apply path.
    counted: Arc<RwLock<BTreeMap<u32, Counted>>>,
    migration_in_flight: Gauge,
    migration_bytes: Counter,
    migration_duration: Histogram,
    /// Bytes received so far by each pull running here, by shard. Lock: taken when a pull
    /// starts, ends or installs a chunk, and by `NodeStatus`; never on the request path.
    pulls: Arc<Mutex<BTreeMap<u32, Arc<AtomicU64>>>>,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        ShardMetrics {
            ops: Family::default(),
            keys: Family::default(),
            bytes: Family::default(),
            counted: Arc::default(),
            migration_in_flight: Gauge::default(),
            migration_bytes: Counter::default(),
            migration_duration: Histogram::new(MOVE_BUCKETS),
            pulls: Arc::default(),
        }
    }
}

impl ShardMetrics {
    /// Registers them in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "strata_shard_ops",
            "Client operations served successfully, by shard and kind",
            self.ops.clone(),
        );
        registry.register(
            "strata_shard_keys",
            "Live keys of each shard this replica serves, as last counted in the background",
            self.keys.clone(),
        );
        registry.register(
            "strata_shard_bytes",
            "Bytes of the keys and values of each shard this replica serves (user data, not \
             on-disk size), as last counted in the background",
            self.bytes.clone(),
        );
        registry.register(
            "strata_migration_in_flight",
            "Shard pulls running on this replica",
            self.migration_in_flight.clone(),
        );
        registry.register(
            "strata_migration_bytes",
            "Bytes of shards pulled by this replica (installed chunks)",
            self.migration_bytes.clone(),
        );
        registry.register(
            "strata_migration_duration_seconds",
            "Duration of whole-shard pulls completed by this replica",
            self.migration_duration.clone(),
        );
    }

    /// Counts one `op` served on `shard`.
    pub fn served(&self, shard: u32, op: &'static str) {
        self.ops.get_or_create(&ShardOp { shard, op }).inc();
    }

    /// Publishes a completed count of `shard`.
    pub fn set_counted(&self, shard: u32, counted: Counted) {
        let label = ShardLabel { shard };
        self.keys
            .get_or_create(&label)
            .set(i64::try_from(counted.keys).unwrap_or(i64::MAX));
        self.bytes
            .get_or_create(&label)
            .set(i64::try_from(counted.bytes).unwrap_or(i64::MAX));
        self.counted.write().insert(shard, counted);
    }

    /// Forgets the figures of every shard not in `held` (shards that left this replica).
    pub fn retain_counted(&self, held: &[u32]) {
        let mut counted = self.counted.write();
        let gone: Vec<u32> = (counted.keys())
            .filter(|s| held.binary_search(s).is_err())
            .copied()
            .collect();
        for shard in gone {
            counted.remove(&shard);
            self.keys.remove(&ShardLabel { shard });
            self.bytes.remove(&ShardLabel { shard });
        }
    }

    /// The latest count of `shard`, if one completed.
    pub fn counted(&self, shard: u32) -> Option<Counted> {
        self.counted.read().get(&shard).copied()
    }

    /// Client operations served on `shard`, of every kind.
    pub fn ops_total(&self, shard: u32) -> u64 {
        (OPS.iter())
            .filter_map(|&op| self.ops.get(&ShardOp { shard, op }).map(|c| c.get()))
            .sum()
    }

    /// Starts timing a pull of `shard`: it is in flight until the returned guard is dropped
    /// (a pull task aborted on a change of leader drops it too).
    pub fn pull_started(&self, shard: u32) -> PullGuard {
        self.migration_in_flight.inc();
        let moved = Arc::new(AtomicU64::new(0));
        self.pulls.lock().insert(shard, moved.clone());
        PullGuard {
            metrics: self.clone(),
            shard,
            moved,
            started: Instant::now(),
        }
    }

    /// `(shard, bytes received so far)` of every pull running here, by shard.
    pub fn pulls(&self) -> Vec<(u32, u64)> {
        (self.pulls.lock().iter())
            .map(|(&shard, moved)| (shard, moved.load(Ordering::Relaxed)))
            .collect()
    }

    /// The figures of the shards in `served` and of the pulls running here, for the status.
    pub fn figures(&self, served: &[u32]) -> Vec<v1::ShardFigures> {
        let mut out: BTreeMap<u32, v1::ShardFigures> = BTreeMap::new();
        for &shard in served {
            let counted = self.counted(shard);
            out.insert(
                shard,
                v1::ShardFigures {
                    shard,
                    keys: counted.map(|c| c.keys),
                    bytes: counted.map(|c| c.bytes),
                    ops_total: self.ops_total(shard),
                    pulling: false,
                    migration_bytes: 0,
                },
            );
        }
        for (shard, moved) in self.pulls() {
            let entry = out.entry(shard).or_insert_with(|| v1::ShardFigures {
                shard,
                ops_total: self.ops_total(shard),
                ..Default::default()
            });
            entry.pulling = true;
            entry.migration_bytes = moved;
        }
        out.into_values().collect()
    }
}

/// A shard pull in flight (see [`ShardMetrics::pull_started`]).
#[derive(Debug)]
pub struct PullGuard {
    metrics: ShardMetrics,
    shard: u32,
    moved: Arc<AtomicU64>,
    started: Instant,
}

impl PullGuard {
    /// Counts `bytes` received and installed.
    pub fn moved(&self, bytes: u64) {
        self.moved.fetch_add(bytes, Ordering::Relaxed);
        self.metrics.migration_bytes.inc_by(bytes);
    }

    /// Bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.moved.load(Ordering::Relaxed)
    }

    /// The whole shard is installed: observes the pull's duration (in seconds, returned).
    pub fn finished(self) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        self.metrics.migration_duration.observe(seconds);
        seconds
    }
}

impl Drop for PullGuard {
    fn drop(&mut self) {
        self.metrics.migration_in_flight.dec();
        let mut pulls = self.metrics.pulls.lock();
        // Only this pull's entry: a newer pull of the same shard may have replaced it.
        if pulls
            .get(&self.shard)
            .is_some_and(|m| Arc::ptr_eq(m, &self.moved))
        {
            pulls.remove(&self.shard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(metrics: &ShardMetrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn counted_figures_are_exported_and_forgotten_when_the_shard_leaves() {
        let metrics = ShardMetrics::default();
        metrics.set_counted(3, Counted { keys: 2, bytes: 20 });
        metrics.set_counted(5, Counted { keys: 1, bytes: 7 });
        metrics.served(3, "put");
        metrics.served(3, "get");
        let text = exposition(&metrics);
        assert!(
            text.contains("strata_shard_keys{shard=\"3\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("strata_shard_bytes{shard=\"5\"} 7\n"),
            "{text}"
        );
        assert_eq!(metrics.ops_total(3), 2);
        assert_eq!(metrics.ops_total(5), 0);
        let figures = metrics.figures(&[3, 5]);
        assert_eq!(figures.len(), 2);
        assert_eq!(
            (figures[0].shard, figures[0].keys, figures[0].ops_total),
            (3, Some(2), 2)
        );
        assert_eq!(metrics.figures(&[4])[0].keys, None, "never counted");

        metrics.retain_counted(&[3]);
        let text = exposition(&metrics);
        assert!(!text.contains("shard=\"5\""), "{text}");
        assert!(
            text.contains("strata_shard_keys{shard=\"3\"} 2\n"),
            "{text}"
        );
        assert_eq!(metrics.counted(5), None);
    }

    #[test]
    fn a_pull_is_in_flight_until_its_guard_drops_and_timed_only_when_finished() {
        let metrics = ShardMetrics::default();
        let pull = metrics.pull_started(7);
        pull.moved(100);
        pull.moved(50);
        let aborted = metrics.pull_started(8);
        let text = exposition(&metrics);
        assert!(text.contains("strata_migration_in_flight 2\n"), "{text}");
        assert_eq!(metrics.pulls(), vec![(7, 150), (8, 0)]);
        let figures = metrics.figures(&[1]);
        assert_eq!(figures.len(), 3);
        assert!(figures[1].pulling && figures[1].migration_bytes == 150);
        assert!(!figures[0].pulling);
        assert!(pull.finished() >= 0.0);
        drop(aborted);
        let text = exposition(&metrics);
        assert!(text.contains("strata_migration_in_flight 0\n"), "{text}");
        assert!(
            text.contains("strata_migration_bytes_total 150\n"),
            "{text}"
        );
        assert!(
            text.contains("strata_migration_duration_seconds_count 1\n"),
            "{text}"
        );
        assert!(metrics.pulls().is_empty());
    }
}
