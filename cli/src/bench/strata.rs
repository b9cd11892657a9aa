//! The Strata side of `strata bench`: a cluster started for the run (the demo's launcher on
//! its own thread: 3 masters and `--groups` groups, joined and settled), or a running one
//! found through its masters; clients of it; and its server processes, for CPU accounting.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strata_client::{Client, ClientOptions, MasterClient, MasterClientOptions};
use strata_rpc::tls::Security;
use strata_workload::ycsb::MAX_SCAN_LENGTH;

use super::args::Plan;
use super::cpu::{processes_at, ServerProcess};
use crate::cli::Global;
use crate::cluster::{kv_client_options, kv_error, master_error, within};
use crate::demo::cluster::ClusterThread;
use crate::demo::moves::wait_settled;
use crate::demo::probe::Probe;
use crate::demo::FIRST_GID;
use crate::error::{CliError, CliResult, Context};
use crate::launch::LaunchOptions;

/// Longest wait for a new cluster's groups to take their shards.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A Strata cluster under test.
pub struct StrataCluster {
    /// The cluster this run started, if it did.
    local: Option<ClusterThread>,
    masters: Vec<String>,
    security: Security,
    options: ClientOptions,
    /// A client for the benchmark's own requests (not one of the measured clients).
    admin: Arc<Client>,
    /// What it is, for people.
    pub description: String,
}

/// Entries per shard per page of a scan: a short scan of up to [`MAX_SCAN_LENGTH`] entries
/// reads the first page of every shard (hash partitioning scatters a key range over all of
/// them), so a page holds about twice a shard's expected share of the longest scan.
pub fn scan_page(shards: usize) -> u32 {
    (2 * MAX_SCAN_LENGTH)
        .div_ceil(shards.max(1))
        .clamp(8, MAX_SCAN_LENGTH) as u32
}

impl StrataCluster {
    /// Starts a cluster for the run: 3 masters, `--groups` groups of `--replicas` servers
    /// joined at the master, every shard settled.
    pub async fn start_local(plan: &Plan, global: &Global) -> CliResult<StrataCluster> {
        let args = &plan.args;
        let binary = std::env::current_exe().context("finding the strata executable")?;
        let mut options = LaunchOptions::new(binary);
        options.shards = args.shards as usize;
        options.tick_ms = args.tick_ms;
        options.tls = args.tls;
        let (cluster, started) = ClusterThread::start(options).await?;
        let mut groups = BTreeMap::new();
        for gid in (0..args.groups).map(|g| FIRST_GID + g) {
            groups.insert(gid, cluster.add_group(gid, args.replicas as usize).await?);
        }
        let master = MasterClient::with_options(
            started.masters.clone(),
            MasterClientOptions {
                security: started.security.clone(),
                ..MasterClientOptions::default()
            },
        );
        let num = master.join(groups).await.context("joining the groups")?;
        let config = master
            .query(Some(num))
            .await
            .context("querying the master")?;
        wait_settled(
            &Probe::new(started.security.clone()),
            &config,
            SETTLE_TIMEOUT,
        )
        .await?;
        let description = format!(
            "local: 3 masters, {} group(s) x {} servers, {} shards, tick {} ms, {}, data in {}",
            args.groups,
            args.replicas,
            args.shards,
            args.tick_ms,
            if args.tls { "mutual TLS" } else { "plaintext" },
            started.dir.display()
        );
        let mut strata = StrataCluster::connect(started.masters, started.security, global).await?;
        strata.local = Some(cluster);
        strata.description = description;
        Ok(strata)
    }

    /// Connects to the running cluster whose masters are `masters`.
    pub async fn connect(
        masters: Vec<String>,
        security: Security,
        global: &Global,
    ) -> CliResult<StrataCluster> {
        let options = kv_client_options(global, security.clone(), scan_page(1));
        let admin = within(
            global,
            Client::connect_with(masters.clone(), options.clone()),
        )
        .await?
        .map_err(kv_error)?;
        let shards = admin.config().num_shards();
        if admin.config().groups.is_empty() {
            return Err(CliError::failed(
                "the cluster has no replica group yet (strata group join ...)",
            ));
        }
        let options = ClientOptions {
            scan_page: scan_page(shards),
            ..options
        };
        let description = format!(
            "{} (masters), {} group(s), {shards} shards",
            masters.join(","),
            admin.config().groups.len()
        );
        Ok(StrataCluster {
            local: None,
            masters,
            security,
            options,
            admin: Arc::new(admin),
            description,
        })
    }

    /// `n` clients, each with its own session and connections.
    pub async fn clients(&self, n: usize) -> CliResult<Vec<Arc<Client>>> {
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            let client = Client::connect_with(self.masters.clone(), self.options.clone())
                .await
                .map_err(kv_error)?;
            clients.push(Arc::new(client));
        }
        Ok(clients)
    }

    /// The benchmark's own client (for setting up, never measured).
    pub fn admin(&self) -> &Arc<Client> {
        &self.admin
    }

    /// A client of the shard master.
    pub fn master(&self) -> MasterClient {
        MasterClient::with_options(
            self.masters.clone(),
            MasterClientOptions {
                security: self.security.clone(),
                ..MasterClientOptions::default()
            },
        )
    }

    /// A prober of the servers' states.
    pub fn probe(&self) -> Probe {
        Probe::new(self.security.clone())
    }

    /// The server processes: every master and server this run started, or those listening
    /// on the masters' and servers' addresses on this machine.
    pub async fn processes(&self) -> CliResult<Vec<ServerProcess>> {
        if let Some(local) = &self.local {
            let processes = local.processes().await?;
            return Ok(processes
                .into_iter()
                .map(|(label, pid)| ServerProcess { label, pid })
                .collect());
        }
        let master = self.master();
        let config = master.query(None).await.map_err(master_error)?;
        let mut addresses = self.masters.clone();
        addresses.extend(config.groups.values().flatten().cloned());
        Ok(processes_at(&addresses))
    }

    /// Stops a cluster this run started (cleanly, then removes its directory).
    pub async fn shutdown(&mut self) -> CliResult {
        if let Some(mut local) = self.local.take() {
            local.shutdown().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_pages_hold_twice_a_shards_share_of_the_longest_scan() {
        assert_eq!(scan_page(1), 100);
        assert_eq!(scan_page(10), 20);
        assert_eq!(scan_page(64), 8);
        assert_eq!(scan_page(0), 100);
    }
}
