//! A replica's Prometheus metrics: what the node measures about its Paxos group, registered in
//! the process's [`Registry`] and served by [`crate::http`] as `/metrics`.
//!
//! Built on `prometheus-client`: an explicit registry per process (no global state, so the
//! tests' several nodes in one process keep their own), typed metrics, and histograms with
//! explicit buckets (aggregatable across replicas, unlike summaries). The exposition is
//! OpenMetrics text, which Prometheus scrapes natively.
//!
//! Names follow etcd's (`etcd_server_*`) where it has one, with the `strata_paxos_` prefix;
//! each metric is documented where it is registered ([`NodeMetrics::register`]).
//! [`ProcessCollector`] adds the standard `process_*` figures of the whole process.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::histogram::{exponential_bounds, DurationHistogram};

/// How a request ended, as labelled in `strata_paxos_proposals_failed_total` (`reason`) and
/// `strata_paxos_reads_total` (`outcome`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Chosen and applied (a read: confirmed by a quorum and applied here).
    Committed,
    /// Refused or dropped: this replica does not (or no longer) lead.
    NotLeader,
    /// Refused by admission control (bytes in flight, follower backlog).
    Overloaded,
    /// The node stopped or failed first.
    Failed,
}

impl Outcome {
    /// The label value: `committed`, `not_leader`, `overloaded`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Committed => "committed",
            Outcome::NotLeader => "not_leader",
            Outcome::Overloaded => "overloaded",
            Outcome::Failed => "failed",
        }
    }
}

/// The label set of `strata_paxos_proposals_failed_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why the proposal failed ([`Outcome::as_str`]).
    pub reason: &'static str,
}

/// The label set of `strata_paxos_reads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// How the read ended ([`Outcome::as_str`]).
    pub outcome: &'static str,
}

/// The node's metrics. Cheap to update from any thread (each update is an atomic operation;
/// a labelled family takes a read lock to find its child, and none is on a request's path).
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    /// 1 while this replica leads its group.
    pub is_leader: Gauge,
    /// 1 while this replica knows a leader (itself included).
    pub has_leader: Gauge,
    /// Times the believed leader changed (to another replica or to none).
    pub leader_changes_seen: Counter,
    /// The promised ballot's round.
    pub ballot: Gauge,
    /// Every slot below is known chosen.
    pub commit_index: Gauge,
    /// Every slot below was applied to the state machine.
    pub applied_index: Gauge,
    /// Entries in the in-memory Paxos log.
    pub log_entries: Gauge,
    /// Bytes of commands in the Paxos log.
    pub log_bytes: Gauge,
    /// Proposals submitted here that were chosen and applied.
    pub proposals_committed: Counter,
    /// Proposals submitted here that failed, by reason.
    pub proposals_failed: Family<ReasonLabel, Counter>,
    /// Proposals submitted here and not yet resolved.
    pub proposals_pending: Gauge,
    /// Commands applied to this replica's state machine (from any proposer).
    pub proposals_applied: Counter,
    /// Seconds from a proposal's submission to its reply (committed ones only).
    pub proposal_duration_seconds: DurationHistogram,
    /// Seconds one persist round (acceptor state and log entries, one synced write) took.
    pub log_fsync_duration_seconds: DurationHistogram,
    /// Linearizable read barriers, by outcome.
    pub reads: Family<OutcomeLabel, Counter>,
    /// Application snapshots this replica started streaming to a lagging peer.
    pub snapshots_sent: Counter,
    /// Application snapshots this replica installed.
    pub snapshots_received: Counter,
    /// Application snapshots refused unread: not asked for (forged, or stale).
    pub snapshots_refused: Counter,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics::new()
    }
}

/// Latency buckets: 100 µs to about 6.5 s, doubling (17 buckets): a synced write on a good
/// disk is well under a millisecond, an election a few hundred milliseconds.
fn latency_buckets() -> Vec<f64> {
    exponential_bounds(0.0001, 2.0, 17)
}

impl NodeMetrics {
    /// Metrics at zero, registered nowhere yet. Every label value is created at zero, so
    /// that each series exists from the first scrape (`rate()` and alerts see it).
    pub fn new() -> NodeMetrics {
        let metrics = NodeMetrics::unlabelled();
        for outcome in [Outcome::NotLeader, Outcome::Overloaded, Outcome::Failed] {
            let reason = outcome.as_str();
            let _ = metrics
                .proposals_failed
                .get_or_create(&ReasonLabel { reason });
        }
        for outcome in [
            Outcome::Committed,
            Outcome::NotLeader,
            Outcome::Overloaded,
            Outcome::Failed,
        ] {
            let outcome = outcome.as_str();
            let _ = metrics.reads.get_or_create(&OutcomeLabel { outcome });
        }
        metrics
    }

    fn unlabelled() -> NodeMetrics {
        NodeMetrics {
            is_leader: Gauge::default(),
            has_leader: Gauge::default(),
            leader_changes_seen: Counter::default(),
            ballot: Gauge::default(),
            commit_index: Gauge::default(),
            applied_index: Gauge::default(),
            log_entries: Gauge::default(),
            log_bytes: Gauge::default(),
            proposals_committed: Counter::default(),
            proposals_failed: Family::default(),
            proposals_pending: Gauge::default(),
            proposals_applied: Counter::default(),
            proposal_duration_seconds: DurationHistogram::new(latency_buckets()),
            log_fsync_duration_seconds: DurationHistogram::new(latency_buckets()),
            reads: Family::default(),
            snapshots_sent: Counter::default(),
            snapshots_received: Counter::default(),
            snapshots_refused: Counter::default(),
        }
    }

    /// Registers every metric under `strata_paxos_` in `registry` (the metrics are shared
    /// handles: updates after registration show in the registry).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("strata_paxos");
        let gauges = [
            (
                "is_leader",
                "1 while this replica leads its group",
                &self.is_leader,
            ),
            (
                "has_leader",
                "1 while this replica knows a leader of its group (itself included)",
                &self.has_leader,
            ),
            (
                "ballot",
                "Round of the highest ballot this replica promised",
                &self.ballot,
            ),
            (
                "commit_index",
                "Every Paxos slot below this is known chosen",
                &self.commit_index,
            ),
            (
                "applied_index",
                "Every Paxos slot below this is applied to the state machine",
                &self.applied_index,
            ),
            (
                "log_entries",
                "Entries in the in-memory Paxos log",
                &self.log_entries,
            ),
            (
                "log_bytes",
                "Bytes of commands in the in-memory Paxos log",
                &self.log_bytes,
            ),
            (
                "proposals_pending",
                "Proposals submitted at this replica and not yet resolved",
                &self.proposals_pending,
            ),
        ];
        for (name, help, gauge) in gauges {
            r.register(name, help, gauge.clone());
        }
        let counters = [
            (
                "leader_changes_seen",
                "Times the leader this replica believes in changed",
                &self.leader_changes_seen,
            ),
            (
                "proposals_committed",
                "Proposals submitted at this replica that were chosen and applied",
                &self.proposals_committed,
            ),
            (
                "proposals_applied",
                "Commands applied to this replica's state machine, from any proposer",
                &self.proposals_applied,
            ),
            (
                "snapshots_sent",
                "Application snapshots this replica streamed to a lagging peer",
                &self.snapshots_sent,
            ),
            (
                "snapshots_received",
                "Application snapshots this replica installed",
                &self.snapshots_received,
            ),
            (
                "snapshots_refused",
                "Application snapshots refused unread because this replica did not ask for them",
                &self.snapshots_refused,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        r.register(
            "proposals_failed",
            "Proposals submitted at this replica that failed, by reason",
            self.proposals_failed.clone(),
        );
        r.register(
            "proposal_duration_seconds",
            "Seconds from a proposal's submission to its reply, for committed proposals",
            self.proposal_duration_seconds.clone(),
        );
        r.register(
            "log_fsync_duration_seconds",
            "Seconds one persist round of Paxos state took (one synced write)",
            self.log_fsync_duration_seconds.clone(),
        );
        r.register(
            "reads",
            "Linearizable read barriers asked at this replica, by outcome",
            self.reads.clone(),
        );
    }

    /// Counts one proposal's outcome.
    pub fn proposal(&self, outcome: Outcome) {
        if outcome == Outcome::Committed {
            self.proposals_committed.inc();
        } else {
            let reason = outcome.as_str();
            self.proposals_failed
                .get_or_create(&ReasonLabel { reason })
                .inc();
        }
    }

    /// Counts one read barrier's outcome.
    pub fn read(&self, outcome: Outcome) {
        let outcome = outcome.as_str();
        self.reads.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}

/// The standard `process_*` metrics of this process, read from `/proc/self` at each scrape:
/// resident memory, CPU seconds (user and system), open file descriptors and their limit.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name (which may hold spaces): state is field 3, utime 14,
        // stime 15, rss 24 (in pages).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        // SAFETY: sysconf has no memory-safety preconditions.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            let seconds = (utime + stime) as f64 / ticks.max(1) as f64;
            let cpu = ConstCounter::new(seconds);
            let help = "Total user and system CPU time spent in seconds";
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                help,
                None,
                cpu.metric_type(),
            )?)?;
        }
        if let Some(rss) = field(24) {
            let bytes = ConstGauge::new(gauge_value(rss.saturating_mul(page.max(0) as u64)));
            let help = "Resident memory size in bytes";
            let m = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                help,
                None,
                bytes.metric_type(),
            )?;
            bytes.encode(m)?;
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds = ConstGauge::new(gauge_value(dir.count()));
            let help = "Number of open file descriptors";
            fds.encode(encoder.encode_descriptor(
                "process_open_fds",
                help,
                None,
                fds.metric_type(),
            )?)?;
        }
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes only into the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            let max = ConstGauge::new(gauge_value(limit.rlim_cur));
            let help = "Maximum number of open file descriptors";
            max.encode(encoder.encode_descriptor(
                "process_max_fds",
                help,
                None,
                max.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// A gauge value from an index or size (saturating: a gauge is an `i64`).
pub fn gauge_value(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// The registry's exposition in OpenMetrics text (what Prometheus asks for first).
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the encoder only fails when its writer does.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// The registry's exposition in Prometheus's classic text format (0.0.4), for every other
/// reader (`curl`, `promtool check metrics`, older scrapers). The two differ only where this
/// registry uses them: OpenMetrics names a counter's family without the `_total` of its
/// sample and ends with `# EOF`; the classic format names the family as the sample.
pub fn encode_classic(registry: &Registry) -> String {
    let open = encode(registry);
    let counters: std::collections::HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let header = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match header {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_metrics_show_their_updates_in_the_exposition() {
        let m = NodeMetrics::new();
        let mut registry = Registry::default();
        m.register(&mut registry);
        registry.register_collector(Box::new(ProcessCollector));
        m.is_leader.set(1);
        m.commit_index.set(42);
        m.proposal(Outcome::Committed);
        m.proposal(Outcome::Committed);
        m.proposal(Outcome::NotLeader);
        m.log_fsync_duration_seconds
            .observe(std::time::Duration::from_millis(3));
        let text = encode(&registry);
        assert!(text.contains("strata_paxos_is_leader 1\n"), "{text}");
        assert!(text.contains("strata_paxos_commit_index 42\n"), "{text}");
        assert!(
            text.contains("strata_paxos_proposals_committed_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains("strata_paxos_proposals_failed_total{reason=\"not_leader\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("strata_paxos_log_fsync_duration_seconds_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("strata_paxos_log_fsync_duration_seconds_bucket{le=\"+Inf\"} 1\n"),
            "{text}"
        );
        let rss = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .map(|v| v.parse::<f64>().unwrap());
        assert!(rss.is_some_and(|b| b > 1e6), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
        assert!(text.contains("process_open_fds "), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");

        let classic = encode_classic(&registry);
        for line in [
            "# TYPE strata_paxos_proposals_committed_total counter\n",
            "# HELP strata_paxos_proposals_committed_total Proposals",
            "# TYPE process_cpu_seconds_total counter\n",
            "# TYPE strata_paxos_is_leader gauge\n",
            "# TYPE strata_paxos_log_fsync_duration_seconds histogram\n",
        ] {
            assert!(classic.contains(line), "{line} in {classic}");
        }
        assert!(!classic.contains("# EOF"), "{classic}");
        let samples = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples(&classic), samples(&text));
    }
}
