//! The master's own metrics, read from its state at each scrape: the latest configuration's
//! number, its groups, and the shards each group owns.

use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use strata_rpc::config::UNASSIGNED;

use crate::state::MasterState;

/// `strata_master_config_num`, `strata_master_groups`, `strata_master_shards{gid}` (gid
/// `0`: unassigned shards).
#[derive(Debug)]
pub struct MasterCollector(pub Arc<RwLock<MasterState>>);

/// The label set of `strata_master_shards`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct GidLabel {
    gid: u64,
}

impl Collector for MasterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (num, groups, shards) = {
            let state = self.0.read();
            let latest = state.latest();
            let mut shards = std::collections::BTreeMap::<u64, i64>::new();
            for &gid in latest.groups.keys() {
                shards.insert(gid, 0);
            }
            for &gid in &latest.shards {
                *shards.entry(gid).or_default() += 1;
            }
            shards.entry(UNASSIGNED).or_default();
            (latest.num, latest.groups.len(), shards)
        };
        let gauge = |v: u64| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
        let config = gauge(num);
        let help = "Number of the latest configuration";
        config.encode(encoder.encode_descriptor(
            "strata_master_config_num",
            help,
            None,
            config.metric_type(),
        )?)?;
        let count = gauge(groups as u64);
        let help = "Groups in the latest configuration";
        count.encode(encoder.encode_descriptor(
            "strata_master_groups",
            help,
            None,
            count.metric_type(),
        )?)?;
        let family: Family<GidLabel, Gauge> = Family::default();
        for (gid, n) in shards {
            family.get_or_create(&GidLabel { gid }).set(n);
        }
        let help = "Shards each group owns in the latest configuration (gid 0: unassigned)";
        family.encode(encoder.encode_descriptor(
            "strata_master_shards",
            help,
            None,
            family.metric_type(),
        )?)?;
        Ok(())
    }
}
