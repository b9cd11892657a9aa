//! Quick questions to one process: its Paxos status (`NodeStatus`) and a server's shard
//! states (`Shards`), each answered within [`PROBE_TIMEOUT`] or not at all (a killed or busy
//! process is "no answer", never a hang).

use std::time::Duration;

use strata_client::Channels;
use strata_rpc::tls::Security;
use strata_rpc::v1;

/// How long one probe waits for its answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Probes over one cache of lazily connected channels (one per address).
#[derive(Debug, Clone, Default)]
pub struct Probe {
    channels: Channels,
}

impl Probe {
    /// A probe with no connections yet, connecting as `security` says.
    pub fn new(security: Security) -> Probe {
        Probe {
            channels: Channels::with_security(security),
        }
    }

    /// The `NodeStatus` of the process at `address`, if it answers in time.
    pub async fn status(&self, address: &str) -> Option<v1::StatusResponse> {
        let mut client = strata_rpc::limits::node_status_client(self.channels.get(address).ok()?);
        tokio::time::timeout(PROBE_TIMEOUT, client.status(v1::StatusRequest {}))
            .await
            .ok()?
            .ok()
            .map(|r| r.into_inner())
    }

    /// The shard states of the server at `address`, if it answers in time.
    pub async fn shards(&self, address: &str) -> Option<v1::ShardsResponse> {
        let mut client = strata_rpc::limits::shard_group_client(self.channels.get(address).ok()?);
        tokio::time::timeout(PROBE_TIMEOUT, client.shards(v1::ShardsRequest {}))
            .await
            .ok()?
            .ok()
            .map(|r| r.into_inner())
    }

    /// The replica of a group (by its position in `addresses`, and its status) that says it
    /// leads with the highest ballot, if any answers so.
    pub async fn leader(&self, addresses: &[String]) -> Option<(usize, v1::StatusResponse)> {
        let mut best: Option<(usize, v1::StatusResponse)> = None;
        for (i, address) in addresses.iter().enumerate() {
            let Some(status) = self.status(address).await else {
                continue;
            };
            if status.role != v1::Role::Leader as i32 {
                continue;
            }
            let newer = match &best {
                None => true,
                Some((_, b)) => ballot(&status) > ballot(b),
            };
            if newer {
                best = Some((i, status));
            }
        }
        best
    }
}

/// A status's ballot as a comparable pair (round, replica).
pub fn ballot(status: &v1::StatusResponse) -> (u64, u64) {
    status
        .ballot
        .as_ref()
        .map(|b| (b.round, b.replica))
        .unwrap_or((0, 0))
}

/// Whether a shard state is final: the group serves the shard, or does not hold it.
pub fn is_settled(state: i32) -> bool {
    state == v1::ShardState::Absent as i32
        || state == v1::ShardState::Serving as i32
        || state == v1::ShardState::Reclaimed as i32
}
