//! Losing a leader: find a group's leader, SIGKILL it, watch the others elect a new one, then
//! restart the killed replica and watch it catch up with the leader's log.

use std::time::{Duration, Instant};

use strata_client::Gid;

use super::cluster::ClusterThread;
use super::probe::{ballot, Probe};
use crate::error::{CliError, CliResult};

/// How often statuses are polled while waiting.
const POLL: Duration = Duration::from_millis(20);

/// What happened to the group.
#[derive(Debug, Clone)]
pub struct Failover {
    /// The group.
    pub gid: Gid,
    /// The replica id of the leader that was killed.
    pub killed: u64,
    /// The replica id of the leader elected after it.
    pub elected: u64,
    /// From the kill until another replica led.
    pub election: Duration,
    /// The killed replica's restart until its applied index reached the leader's.
    pub catch_up: Duration,
    /// The slot it caught up to.
    pub caught_up_to: u64,
}

/// The replica id and ballot of the group's leader, waiting up to `timeout` for one.
async fn wait_leader(
    probe: &Probe,
    addresses: &[String],
    not: Option<u64>,
    timeout: Duration,
) -> CliResult<(usize, strata_rpc::v1::StatusResponse)> {
    let until = Instant::now() + timeout;
    loop {
        if let Some((i, status)) = probe.leader(addresses).await {
            if not != Some(status.replica_id) {
                return Ok((i, status));
            }
        }
        if Instant::now() >= until {
            return Err(CliError::failed(format!(
                "no leader in the group at {} within {timeout:?}",
                addresses.join(",")
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Kills the leader of group `gid` (servers at `addresses`, replica `i + 1` at
/// `addresses[i]`), waits for a new leader, restarts the killed replica and waits until it
/// caught up. Prints each event as it happens. `on_elected` runs once the new leader is
/// known (the caller measures the load meanwhile).
pub async fn kill_leader(
    cluster: &ClusterThread,
    probe: &Probe,
    gid: Gid,
    addresses: &[String],
    timeout: Duration,
    on_elected: impl FnOnce(),
) -> CliResult<Failover> {
    let (i, old) = wait_leader(probe, addresses, None, timeout).await?;
    let killed = old.replica_id;
    let killed_at = Instant::now();
    cluster.kill(gid, killed).await?;
    say!(
        "  killed the leader of group {gid}: replica {killed} ({}, ballot {:?}) with SIGKILL",
        addresses[i],
        ballot(&old)
    );
    let (j, new) = wait_leader(probe, addresses, Some(killed), timeout).await?;
    let election = killed_at.elapsed();
    on_elected();
    say!(
        "  replica {} ({}) elected leader in {:.2} s (ballot {:?})",
        new.replica_id,
        addresses[j],
        election.as_secs_f64(),
        ballot(&new)
    );

    cluster.restart(gid, killed).await?;
    let restarted_at = Instant::now();
    let target = probe
        .status(&addresses[j])
        .await
        .map_or(new.applied_index, |s| s.applied_index);
    say!("  replica {killed} restarted on its data; catching up to slot {target}");
    let until = Instant::now() + timeout;
    let caught_up_to = loop {
        if let Some(s) = probe.status(&addresses[i]).await {
            if s.applied_index >= target {
                break s.applied_index;
            }
        }
        if Instant::now() >= until {
            return Err(CliError::failed(format!(
                "replica {killed} of group {gid} did not catch up to slot {target} within {timeout:?}"
            )));
        }
        tokio::time::sleep(POLL).await;
    };
    let catch_up = restarted_at.elapsed();
    say!(
        "  replica {killed} caught up: applied slot {caught_up_to} in {:.2} s",
        catch_up.as_secs_f64()
    );
    Ok(Failover {
        gid,
        killed,
        elected: new.replica_id,
        election,
        catch_up,
        caught_up_to,
    })
}
