//! N shard-master replicas as real processes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_client::{MasterClient, MasterClientOptions};
use strata_rpc::v1;
use tempfile::TempDir;

use crate::process::{test_proc, Proc};
use crate::{free_addresses, peers_arg};

/// A shard master of N replicas (ids 1..=N) on free 127.0.0.1 ports, each with its own data
/// directory under one temporary directory. Dropping it kills every replica and removes the
/// directories (set `STRATA_KEEP_TEST_DIRS=1` to keep them, e.g. to read the logs).
pub struct MasterCluster {
    replicas: Vec<Proc>,
    addresses: Vec<String>,
    ids: Vec<u64>,
    /// Replicas removed from the master group's membership ([`MasterCluster::retire`]).
    retired: Vec<bool>,
    dir: Option<TempDir>,
    binary: PathBuf,
    shards: usize,
    tick_ms: u64,
}

impl MasterCluster {
    /// Starts `n` replicas of `binary` (the `strata-cluster` dispatch binary) for a cluster of
    /// `shards` shards, with a Paxos tick of `tick_ms`. Returns once they listen.
    pub fn start(
        binary: impl Into<PathBuf>,
        n: usize,
        shards: usize,
        tick_ms: u64,
    ) -> MasterCluster {
        let binary = binary.into();
        let dir = tempfile::Builder::new()
            .prefix("strata-masters-")
            .tempdir()
            .expect("creating the cluster directory");
        let addresses = free_addresses(n);
        let peers = peers_arg(&addresses);
        let replicas = (0..n)
            .map(|i| {
                let id = i + 1;
                let args: Vec<OsString> = [
                    "master".to_string(),
                    "--id".into(),
                    id.to_string(),
                    "--peers".into(),
                    peers.clone(),
                    "--listen".into(),
                    addresses[i].clone(),
                    "--data-dir".into(),
                    dir.path().join(format!("m{id}")).display().to_string(),
                    "--shards".into(),
                    shards.to_string(),
                    "--tick-ms".into(),
                    tick_ms.to_string(),
                ]
                .into_iter()
                .chain(crate::tls::replica_args(0, id as u64))
                .map(OsString::from)
                .collect();
                let mut p = test_proc(&binary, args, dir.path().join(format!("m{id}.log")));
                p.start().expect("starting a replica");
                p
            })
            .collect();
        let cluster = MasterCluster {
            replicas,
            addresses,
            ids: (1..=n as u64).collect(),
            retired: vec![false; n],
            dir: Some(dir),
            binary,
            shards,
            tick_ms,
        };
        for i in 0..n {
            cluster.wait_listening(i, Duration::from_secs(10));
        }
        cluster
    }

    /// The number of replicas.
    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    /// Whether there are no replicas.
    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// The gRPC addresses of the replicas not retired (the master group's members as the
    /// harness knows them), in the order they were started: what clients are given.
    pub fn addresses(&self) -> Vec<String> {
        (0..self.len())
            .filter(|&i| !self.retired[i])
            .map(|i| self.addresses[i].clone())
            .collect()
    }

    /// Replica `i`'s address (the replicas started first have ids `i + 1`).
    pub fn address(&self, i: usize) -> &str {
        &self.addresses[i]
    }

    /// Replica `i`'s id.
    pub fn id(&self, i: usize) -> u64 {
        self.ids[i]
    }

    /// Marks replica `i` as removed from the membership and SIGKILLs it: it is no longer in
    /// [`MasterCluster::addresses`].
    pub fn retire(&mut self, i: usize) {
        self.replicas[i].kill();
        self.retired[i] = true;
    }

    /// SIGKILLs replica `i` and deletes its data directory (a lost disk).
    pub fn wipe(&mut self, i: usize) {
        self.replicas[i].kill();
        let dir = self.data_dir(i);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("deleting {}: {e}", dir.display()),
        }
    }

    /// Starts a new replica `id` on a free port and an empty data directory, with `--join`
    /// naming the member at `via`; it waits to be added to the membership (e.g. by
    /// [`MasterCluster::admin`]). Returns its index.
    pub fn start_joiner(&mut self, id: u64, via: &str) -> usize {
        let address = free_addresses(1).remove(0);
        let args: Vec<OsString> = [
            "master".to_string(),
            "--id".into(),
            id.to_string(),
            "--join".into(),
            via.to_string(),
            "--listen".into(),
            address.clone(),
            "--data-dir".into(),
            self.root().join(format!("m{id}")).display().to_string(),
            "--shards".into(),
            self.shards.to_string(),
            "--tick-ms".into(),
            self.tick_ms.to_string(),
        ]
        .into_iter()
        .chain(crate::tls::replica_args(0, id))
        .map(OsString::from)
        .collect();
        let mut p = test_proc(&self.binary, args, self.root().join(format!("m{id}.log")));
        p.start().expect("starting a replica");
        self.replicas.push(p);
        self.addresses.push(address);
        self.ids.push(id);
        self.retired.push(false);
        let i = self.len() - 1;
        self.wait_listening(i, Duration::from_secs(10));
        i
    }

    /// An administrator of the master group's membership, reaching it at every replica's
    /// address (retired ones included).
    pub fn admin(&self) -> strata_client::GroupAdmin {
        strata_client::GroupAdmin::new(self.addresses.clone(), crate::tls::security())
    }

    /// The dispatch binary the replicas run.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The data directory of replica `i`.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.root().join(format!("m{}", self.ids[i]))
    }

    fn root(&self) -> &Path {
        self.dir.as_ref().expect("cluster directory").path()
    }

    /// A client of this master with default options.
    pub fn client(&self) -> MasterClient {
        self.client_with(MasterClientOptions::default())
    }

    /// A client with explicit options (connecting as [`crate::tls::security`] says).
    pub fn client_with(&self, options: MasterClientOptions) -> MasterClient {
        let options = MasterClientOptions {
            security: crate::tls::security(),
            ..options
        };
        MasterClient::with_options(self.addresses(), options)
    }

    /// Replica `i`'s process.
    pub fn replica(&mut self, i: usize) -> &mut Proc {
        &mut self.replicas[i]
    }

    /// SIGKILLs replica `i`.
    pub fn kill(&mut self, i: usize) {
        self.replicas[i].kill();
    }

    /// SIGSTOPs replica `i`.
    pub fn pause(&mut self, i: usize) {
        self.replicas[i].pause();
    }

    /// SIGCONTs replica `i`.
    pub fn resume(&mut self, i: usize) {
        self.replicas[i].resume();
    }

    /// SIGTERMs replica `i` and waits for it to exit (SIGKILL after 5 s).
    pub fn stop(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.replicas[i].stop(Duration::from_secs(5))
    }

    /// Restarts replica `i` (killed or stopped) on its data directory and waits until it listens.
    pub fn restart(&mut self, i: usize) {
        self.replicas[i].kill();
        self.replicas[i].start().expect("starting a replica");
        self.wait_listening(i, Duration::from_secs(10));
    }

    fn wait_listening(&self, i: usize, timeout: Duration) {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if std::net::TcpStream::connect(&self.addresses[i]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "master replica {} did not listen on {} within {timeout:?}; log:\n{}",
            self.ids[i],
            self.addresses[i],
            self.replicas[i].log()
        );
    }

    /// Replica `i`'s `Status`, or `None` if it does not answer within 500 ms.
    pub async fn status(&self, i: usize) -> Option<v1::StatusResponse> {
        crate::node_status_at(&self.addresses[i]).await
    }

    /// The replica that reports itself leader, waiting up to `timeout` for one.
    pub async fn leader(&self, timeout: Duration) -> Option<usize> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            for i in 0..self.len() {
                if !self.replicas[i].is_running() || self.replicas[i].is_paused() {
                    continue;
                }
                if let Some(s) = self.status(i).await {
                    if s.role() == v1::Role::Leader {
                        return Some(i);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Every replica's log, for failure messages.
    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, p)| format!("==== master replica {} ====\n{}", self.ids[i], p.log()))
            .collect()
    }
}

impl Drop for MasterCluster {
    fn drop(&mut self) {
        for p in &mut self.replicas {
            p.kill();
        }
        if std::env::var_os("STRATA_KEEP_TEST_DIRS").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("keeping {}", dir.keep().display());
            }
        }
    }
}
