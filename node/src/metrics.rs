//! A replica's Prometheus metrics: what the node measures about its Paxos group, registered in
//! the process's [`Registry`] and served by [`crate::http`] as `/metrics`.
//!
//! Built on `prometheus-client`: an explicit registry per process (no global state, so the
//! tests' several nodes in one process keep their own), typed metrics, and histograms with
//! explicit buckets (aggregatable across replicas, unlike summaries). The exposition is
//! OpenMetrics text, which Prometheus scrapes natively.
//!
//! Names: `strata_node_*` for the replica's Paxos state and work. Each metric is documented
//! where it is registered ([`NodeMetrics::register`]); the set is the one an operator of etcd
//! looks at first (leader changes, proposals committed and failed, commit latency, disk sync
//! latency, applied lag).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// How a proposal ended, as counted in `strata_node_proposals_total`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Chosen and applied; the caller got its reply.
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

/// The label set of `strata_node_proposals_total` and `strata_node_reads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// How the request ended ([`Outcome::as_str`]).
    pub outcome: &'static str,
}

/// The node's metrics. Cheap to update from any thread (atomics).
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    /// 1 while this replica leads its group.
    pub is_leader: Gauge,
    /// 1 while this replica knows a leader (itself included).
    pub has_leader: Gauge,
    /// Times the believed leader changed (to another replica or to none).
    pub leader_changes: Counter,
    /// The promised ballot's round.
    pub ballot_round: Gauge,
    /// Every slot below is known chosen.
    pub commit_index: Gauge,
    /// Every slot below was applied to the state machine.
    pub applied_index: Gauge,
    /// Entries and bytes in the in-memory Paxos log.
    pub log_entries: Gauge,
    /// Bytes of commands in the Paxos log.
    pub log_bytes: Gauge,
    /// Proposals by outcome.
    pub proposals: Family<OutcomeLabel, Counter>,
    /// Seconds from a proposal's submission to its reply (committed ones only).
    pub proposal_seconds: Histogram,
    /// Seconds one persist round (acceptor state and log entries, one synced write) took.
    pub persist_seconds: Histogram,
    /// Linearizable reads confirmed here, and those that failed (not leader, stopped).
    pub reads: Family<OutcomeLabel, Counter>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics::new()
    }
}

/// Latency buckets: 100 µs to about 6.5 s, doubling (17 buckets): a synced write on a good
/// disk is well under a millisecond, an election a few hundred milliseconds.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 17)
}

impl NodeMetrics {
    /// Metrics at zero, registered nowhere yet.
    pub fn new() -> NodeMetrics {
        NodeMetrics {
            is_leader: Gauge::default(),
            has_leader: Gauge::default(),
            leader_changes: Counter::default(),
            ballot_round: Gauge::default(),
            commit_index: Gauge::default(),
            applied_index: Gauge::default(),
            log_entries: Gauge::default(),
            log_bytes: Gauge::default(),
            proposals: Family::default(),
            proposal_seconds: Histogram::new(latency_buckets()),
            persist_seconds: Histogram::new(latency_buckets()),
            reads: Family::default(),
        }
    }

    /// Registers every metric under `strata_node_` in `registry` (the metrics are shared
    /// handles: updates after registration show in the registry).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("strata_node");
        r.register(
            "is_leader",
            "1 while this replica leads its group",
            self.is_leader.clone(),
        );
        r.register(
            "has_leader",
            "1 while this replica knows a leader of its group (itself included)",
            self.has_leader.clone(),
        );
        r.register(
            "leader_changes",
            "Times the leader this replica believes in changed",
            self.leader_changes.clone(),
        );
        r.register(
            "ballot_round",
            "Round of the highest ballot this replica promised",
            self.ballot_round.clone(),
        );
        r.register(
            "commit_index",
            "Every Paxos slot below this is known chosen",
            self.commit_index.clone(),
        );
        r.register(
            "applied_index",
            "Every Paxos slot below this is applied to the state machine",
            self.applied_index.clone(),
        );
        r.register(
            "log_entries",
            "Entries in the in-memory Paxos log",
            self.log_entries.clone(),
        );
        r.register(
            "log_bytes",
            "Bytes of commands in the in-memory Paxos log",
            self.log_bytes.clone(),
        );
        r.register(
            "proposals",
            "Proposals submitted at this replica, by outcome",
            self.proposals.clone(),
        );
        r.register(
            "proposal_seconds",
            "Seconds from a proposal's submission to its reply, for committed proposals",
            self.proposal_seconds.clone(),
        );
        r.register(
            "persist_seconds",
            "Seconds one persist round of Paxos state took (one synced write)",
            self.persist_seconds.clone(),
        );
        r.register(
            "reads",
            "Linearizable read barriers asked at this replica, by outcome",
            self.reads.clone(),
        );
    }

    /// Counts one proposal's outcome.
    pub fn proposal(&self, outcome: Outcome) {
        let outcome = outcome.as_str();
        self.proposals
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Counts one read barrier's outcome.
    pub fn read(&self, outcome: Outcome) {
        let outcome = outcome.as_str();
        self.reads.get_or_create(&OutcomeLabel { outcome }).inc();
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
        m.is_leader.set(1);
        m.commit_index.set(42);
        m.proposal(Outcome::Committed);
        m.proposal(Outcome::Committed);
        m.proposal(Outcome::NotLeader);
        m.persist_seconds.observe(0.003);
        let text = encode(&registry);
        assert!(text.contains("strata_node_is_leader 1\n"), "{text}");
        assert!(text.contains("strata_node_commit_index 42\n"), "{text}");
        assert!(
            text.contains("strata_node_proposals_total{outcome=\"committed\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("strata_node_proposals_total{outcome=\"not_leader\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("strata_node_persist_seconds_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("strata_node_persist_seconds_bucket{le=\"+Inf\"} 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");

        let classic = encode_classic(&registry);
        assert!(
            classic.contains("# TYPE strata_node_proposals_total counter\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# HELP strata_node_proposals_total Proposals"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE strata_node_is_leader gauge\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE strata_node_persist_seconds histogram\n"),
            "{classic}"
        );
        assert!(!classic.contains("# EOF"), "{classic}");
        let samples = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples(&classic), samples(&text));
    }
}
