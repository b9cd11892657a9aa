//! A system under test ([`Target`]: Strata or etcd, started for the run or already running)
//! and one client's connection to it ([`Conn`]), through which every workload runs the same
//! operations against either.

use std::sync::Arc;

use strata_client::Client;
use tonic::transport::Channel;

use super::args::{EtcdTarget, Plan, StrataTarget};
use super::cpu::{processes_at, ServerProcess};
use super::etcd::{self, etcdserverpb::kv_client::KvClient, LocalEtcd};
use super::strata::StrataCluster;
use crate::cli::Global;
use crate::error::{CliError, CliResult};

/// One client's connection to the system under test.
#[derive(Clone)]
pub enum Conn {
    /// A Strata client: its own session, its own channel per server.
    Strata(Arc<Client>),
    /// An etcd client: its own gRPC channel (HTTP/2 connection) to one member.
    Etcd(KvClient<Channel>),
}

impl Conn {
    /// Writes `key` = `value`.
    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        match self {
            Conn::Strata(c) => c.put(key, value).await.map_err(|e| e.to_string()),
            Conn::Etcd(c) => etcd::put(c, key, value).await,
        }
    }

    /// Reads `key` linearizably; whether it was found.
    pub async fn get(&mut self, key: &[u8]) -> Result<bool, String> {
        match self {
            Conn::Strata(c) => c
                .get(key)
                .await
                .map(|v| v.is_some())
                .map_err(|e| e.to_string()),
            Conn::Etcd(c) => etcd::get(c, key).await,
        }
    }

    /// Reads up to `limit` entries in key order from `start`; how many it read.
    pub async fn scan(&mut self, start: &[u8], limit: usize) -> Result<usize, String> {
        match self {
            Conn::Strata(c) => c
                .scan(start.to_vec(), None)
                .collect(limit)
                .await
                .map(|entries| entries.len())
                .map_err(|e| e.to_string()),
            Conn::Etcd(c) => etcd::scan(c, start, limit).await,
        }
    }
}

/// What a target runs on.
pub enum System {
    /// A Strata cluster.
    Strata(StrataCluster),
    /// An etcd cluster: the members started for the run, if it did, and the client URLs.
    Etcd {
        /// Members started for the run.
        local: Option<LocalEtcd>,
        /// The members' client URLs.
        urls: Vec<String>,
    },
}

/// A system under test, ready for clients.
pub struct Target {
    /// `strata` or `etcd`.
    pub name: &'static str,
    /// What it is, for people.
    pub description: String,
    /// Its server processes (empty: its CPU is not measured).
    pub processes: Vec<ServerProcess>,
    /// The system.
    pub system: System,
    global: Global,
}

impl Target {
    /// Starts or finds the Strata cluster of `target`.
    pub async fn strata(target: &StrataTarget, plan: &Plan, global: &Global) -> CliResult<Target> {
        let cluster = match target {
            StrataTarget::Local => StrataCluster::start_local(plan, global).await?,
            StrataTarget::Masters(masters) => {
                StrataCluster::connect(masters.clone(), global.security()?, global).await?
            }
        };
        let processes = cluster.processes().await?;
        Ok(Target {
            name: "strata",
            description: cluster.description.clone(),
            processes,
            system: System::Strata(cluster),
            global: global.clone(),
        })
    }

    /// Starts or finds the etcd of `target`.
    pub async fn etcd(target: &EtcdTarget, global: &Global) -> CliResult<Target> {
        let (local, urls, description) = match target {
            EtcdTarget::Local(binary) => {
                let etcd = LocalEtcd::start(binary).await?;
                let urls = etcd.client_urls.clone();
                let description = format!(
                    "local: {}, 3 members, default settings, client connections round-robin over members",
                    etcd.version()
                );
                (Some(etcd), urls, description)
            }
            EtcdTarget::Endpoints(urls) => {
                let description = format!("{} (client URLs)", urls.join(","));
                (None, urls.clone(), description)
            }
        };
        let processes = match &local {
            Some(etcd) => etcd.processes(),
            None => {
                let addresses: Vec<String> = urls
                    .iter()
                    .map(|u| u.trim_start_matches("http://").to_string())
                    .collect();
                processes_at(&addresses)
            }
        };
        Ok(Target {
            name: "etcd",
            description,
            processes,
            system: System::Etcd { local, urls },
            global: global.clone(),
        })
    }

    /// `n` connections, one per client.
    pub async fn connect(&self, n: usize) -> CliResult<Vec<Conn>> {
        match &self.system {
            System::Strata(cluster) => Ok(cluster
                .clients(n)
                .await?
                .into_iter()
                .map(Conn::Strata)
                .collect()),
            System::Etcd { urls, .. } => {
                let mut conns = Vec::with_capacity(n);
                for i in 0..n {
                    let url = &urls[i % urls.len()];
                    let channel = etcd::channel(url, self.global.timeout)
                        .await
                        .map_err(|e| CliError::failed(format!("connecting to etcd: {e}")))?;
                    conns.push(Conn::Etcd(KvClient::new(channel)));
                }
                Ok(conns)
            }
        }
    }

    /// Stops what the run started.
    pub async fn shutdown(&mut self) -> CliResult {
        match &mut self.system {
            System::Strata(cluster) => cluster.shutdown().await,
            System::Etcd { local, .. } => {
                if let Some(mut etcd) = local.take() {
                    etcd.stop();
                }
                Ok(())
            }
        }
    }
}
