//! The demo's cluster, owned by one thread of its own.
//!
//! A child started with `PR_SET_PDEATHSIG` dies when the *thread* that forked it exits, so
//! the [`LocalCluster`] lives on a dedicated thread for the whole demo: every start, kill and
//! restart is forked from it, never from a short-lived blocking thread. The async side sends
//! requests and awaits the answers, so a slow stop never blocks the runtime.

use std::path::PathBuf;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::error::{CliError, CliResult};
use crate::launch::{LaunchOptions, LocalCluster};
use strata_rpc::tls::{Security, TlsPaths};

type Reply<T> = oneshot::Sender<Result<T, String>>;

enum Request {
    AddGroup(u64, usize, Reply<Vec<String>>),
    Kill(u64, u64, Reply<()>),
    Restart(u64, u64, Reply<()>),
    Pids(Reply<Vec<u32>>),
    Processes(Reply<Vec<(String, u32)>>),
    RssBytes(Reply<u64>),
    PrometheusConfig(Reply<String>),
    Shutdown(Reply<usize>),
}

/// What the cluster looked like when it started.
#[derive(Debug, Clone)]
pub struct Started {
    /// The masters' addresses.
    pub masters: Vec<String>,
    /// The directory of data and logs.
    pub dir: PathBuf,
    /// The URL of the masters' status page.
    pub status_page: Option<String>,
    /// With TLS: the admin's certificate files, which the demo's own clients use.
    pub admin_tls: Option<TlsPaths>,
    /// How the demo's clients connect.
    pub security: Security,
}

/// The handle of the thread that owns the cluster. Dropping it stops the thread, which kills
/// every child (and removes a temporary directory); [`ClusterThread::shutdown`] stops them
/// cleanly first.
pub struct ClusterThread {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClusterThread {
    /// Starts the thread and, on it, the masters; returns once they listen.
    pub async fn start(options: LaunchOptions) -> CliResult<(ClusterThread, Started)> {
        let (requests, inbox) = mpsc::channel::<Request>();
        let (started_tx, started_rx) = oneshot::channel();
        let place = match &options.dir {
            Some(dir) => format!(" in {}", dir.display()),
            None => String::new(),
        };
        let thread = std::thread::Builder::new()
            .name("demo-cluster".into())
            .spawn(move || {
                let cluster = match LocalCluster::start(options) {
                    Ok(cluster) => cluster,
                    Err(e) => {
                        let _ = started_tx.send(Err(one_line(&e.to_string())));
                        return;
                    }
                };
                let security = match cluster.security() {
                    Ok(security) => security,
                    Err(e) => {
                        let _ = started_tx.send(Err(one_line(&e.to_string())));
                        return;
                    }
                };
                let started = Started {
                    masters: cluster.master_addresses(),
                    dir: cluster.dir().to_owned(),
                    status_page: cluster.status_page(),
                    admin_tls: cluster.admin_tls().cloned(),
                    security,
                };
                if started_tx.send(Ok(started)).is_err() {
                    return;
                }
                serve(cluster, inbox);
            })
            .map_err(|e| CliError::failed(format!("starting the cluster thread: {e}")))?;
        let mut handle = ClusterThread {
            requests: Some(requests),
            thread: Some(thread),
        };
        match started_rx.await {
            Ok(Ok(started)) => Ok((handle, started)),
            Ok(Err(e)) => Err(CliError::failed(format!(
                "starting the masters{place}: {e}"
            ))),
            Err(_) => {
                handle.join();
                Err(CliError::failed("the cluster thread ended while starting"))
            }
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> CliResult<T> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .as_ref()
            .and_then(|r| r.send(make(tx)).ok())
            .ok_or_else(|| CliError::failed("the cluster is stopped"))?;
        rx.await
            .map_err(|_| CliError::failed("the cluster thread ended"))?
            .map_err(CliError::failed)
    }

    /// Starts group `gid` of `replicas` servers; returns their addresses once they listen.
    pub async fn add_group(&self, gid: u64, replicas: usize) -> CliResult<Vec<String>> {
        self.ask(|r| Request::AddGroup(gid, replicas, r)).await
    }

    /// SIGKILLs server `id` of group `gid`.
    pub async fn kill(&self, gid: u64, id: u64) -> CliResult<()> {
        self.ask(|r| Request::Kill(gid, id, r)).await
    }

    /// Restarts server `id` of group `gid` on its data; returns once it listens.
    pub async fn restart(&self, gid: u64, id: u64) -> CliResult<()> {
        self.ask(|r| Request::Restart(gid, id, r)).await
    }

    /// The process ids of the running children.
    pub async fn pids(&self) -> CliResult<Vec<u32>> {
        self.ask(Request::Pids).await
    }

    /// The running children: `master-ID` or `group-GID-ID`, and the pid.
    pub async fn processes(&self) -> CliResult<Vec<(String, u32)>> {
        self.ask(Request::Processes).await
    }

    /// The children's resident memory together, in bytes.
    pub async fn rss_bytes(&self) -> CliResult<u64> {
        self.ask(Request::RssBytes).await
    }

    /// A Prometheus configuration scraping every child.
    pub async fn prometheus_config(&self) -> CliResult<String> {
        self.ask(Request::PrometheusConfig).await
    }

    /// Stops every child (SIGTERM, then SIGKILL after the grace period), removes a temporary
    /// directory and ends the thread. Returns how many children had to be killed.
    pub async fn shutdown(&mut self) -> CliResult<usize> {
        let killed = self.ask(Request::Shutdown).await;
        self.join();
        killed
    }

    fn join(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ClusterThread {
    fn drop(&mut self) {
        // Closing the channel ends the thread, whose cluster's drop kills every child.
        self.join();
    }
}

fn serve(mut cluster: LocalCluster, inbox: mpsc::Receiver<Request>) {
    let io = |r: std::io::Result<()>| r.map_err(|e| one_line(&e.to_string()));
    while let Ok(request) = inbox.recv() {
        match request {
            Request::AddGroup(gid, replicas, reply) => {
                let result =
                    io(cluster.add_group(gid, replicas)).map(|()| cluster.group_addresses(gid));
                let _ = reply.send(result);
            }
            Request::Kill(gid, id, reply) => {
                let result = match cluster.server(gid, id) {
                    Some(r) => {
                        r.process.kill();
                        Ok(())
                    }
                    None => Err(format!("no server {id} in group {gid}")),
                };
                let _ = reply.send(result);
            }
            Request::Restart(gid, id, reply) => {
                let _ = reply.send(io(cluster.restart_server(gid, id)));
            }
            Request::Pids(reply) => {
                let _ = reply.send(Ok(cluster.pids()));
            }
            Request::Processes(reply) => {
                let _ = reply.send(Ok(cluster.processes()));
            }
            Request::RssBytes(reply) => {
                let _ = reply.send(Ok(cluster.rss_bytes()));
            }
            Request::PrometheusConfig(reply) => {
                let _ = reply.send(Ok(cluster.prometheus_config()));
            }
            Request::Shutdown(reply) => {
                let killed = cluster.shutdown();
                // Answer only once a temporary directory is gone: the caller exits next.
                drop(cluster);
                let _ = reply.send(Ok(killed));
                return;
            }
        }
    }
}

/// A launcher error (which may end in a child's log tail) on one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}
