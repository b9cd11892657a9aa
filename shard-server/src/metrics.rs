//! A shard server's own metrics: `strata_shard_ops_total{shard,op}`, the client operations
//! this replica served successfully, by shard and kind (`get`, `put`, `append`, `delete`,
//! `cas`, `scan`). Counted where the request was answered: a group's leader counts its
//! group's writes and linearizable reads.
//!
//! Cost per request: the key's CRC32C, a read lock of the labelled family to find the
//! counter (created on first use), and an atomic add.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The labels of `strata_shard_ops_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardOp {
    /// The shard.
    pub shard: u32,
    /// The operation: `get`, `put`, `append`, `delete`, `cas`, `scan`.
    pub op: &'static str,
}

/// The shard server's metrics (cheap to clone: shared handles).
#[derive(Debug, Clone, Default)]
pub struct ShardMetrics {
    ops: Family<ShardOp, Counter>,
}

impl ShardMetrics {
    /// Registers them in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "strata_shard_ops",
            "Client operations served successfully, by shard and kind",
            self.ops.clone(),
        );
    }

    /// Counts one `op` served on `shard`.
    pub fn served(&self, shard: u32, op: &'static str) {
        self.ops.get_or_create(&ShardOp { shard, op }).inc();
    }
}
