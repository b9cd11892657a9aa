//! The demo's closing report: what was written, how fast, what moved, who was elected, how
//! long each step took, and the verification line.

use std::time::Duration;

use super::failover::Failover;
use super::load::{Latency, LoadReport};
use super::moves::Move;
use super::verify::Verified;
use crate::output::human_bytes;

/// Everything the summary reports.
pub struct Summary<'a> {
    /// The bulk load.
    pub load: LoadReport,
    /// The background load.
    pub background: LoadReport,
    /// The shards that moved to the new group.
    pub moved: Vec<Move>,
    /// From the join until every shard settled.
    pub move_time: Duration,
    /// The group that joined.
    pub new_gid: u64,
    /// The leader kill, if the groups were large enough for it.
    pub failover: Option<Failover>,
    /// Each step's name and duration.
    pub steps: &'a [(&'static str, Duration)],
    /// The whole demo so far.
    pub total: Duration,
    /// Peak resident memory of the children, sampled between steps.
    pub peak_rss: u64,
    /// What verification found.
    pub verified: Verified,
    /// The cluster's shard count.
    pub shards: u64,
}

impl Summary<'_> {
    /// Prints the summary to stdout; its last line starts with `verified: `.
    pub fn print(self) {
        let Summary {
            load,
            background,
            moved,
            move_time,
            new_gid,
            failover,
            steps,
            total,
            peak_rss,
            verified,
            shards,
        } = self;
        let mut latency = Latency::default();
        latency.merge(&load.latency);
        latency.merge(&background.latency);
        say!("summary");
        say!(
            "  keys:                {} ({} loaded + {} by the background load), {}",
            grouped(load.keys + background.keys),
            grouped(load.keys),
            grouped(background.keys),
            human_bytes(load.bytes + background.bytes)
        );
        say!(
            "  load:                {:.0} ops/s; {}",
            load.ops_per_sec(),
            load.latency.summary()
        );
        say!(
            "  background load:     {:.0} ops/s; {}",
            background.ops_per_sec(),
            background.latency.summary()
        );
        say!("  latency, all puts:   {}", latency.summary());
        say!(
            "  shards moved:        {} to group {new_gid} in {:.2} s ({} keys)",
            moved.len(),
            move_time.as_secs_f64(),
            grouped(moved.iter().map(|m| m.keys).sum())
        );
        match &failover {
            Some(f) => say!(
                "  new leader elected:  group {} replica {} in {:.2} s after replica {} was \
                 killed; it rejoined and caught up (slot {}) in {:.2} s",
                f.gid,
                f.elected,
                f.election.as_secs_f64(),
                f.killed,
                f.caught_up_to,
                f.catch_up.as_secs_f64()
            ),
            None => say!("  failover:            skipped (fewer than 3 replicas per group)"),
        }
        say!(
            "  steps:               {}; total {:.1} s",
            steps
                .iter()
                .map(|(name, d)| format!("{name} {:.1} s", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", "),
            total.as_secs_f64()
        );
        say!(
            "  memory:              children's resident memory peaked at {} (sampled between steps)",
            human_bytes(peak_rss)
        );
        say!(
            "verified: {} keys, all values exact (one scan of all {} shards: none missing, none \
             extra; {} point reads) in {:.2} s",
            grouped(verified.exact),
            shards,
            verified.point_reads,
            verified.elapsed.as_secs_f64()
        );
    }
}

/// `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
