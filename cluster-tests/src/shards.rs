//! A whole sharded cluster as real processes: a shard master of three replicas and any number
//! of shard-server groups, each of several `strata-server` replicas.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_client::{Client, ClientOptions, MasterClient};
use strata_rpc::v1;
use tempfile::TempDir;

use crate::masters::MasterCluster;
use crate::process::{test_proc, Proc};
use crate::{free_addresses, peers_arg};

/// One replica group of shard servers: the replicas it started with (replica `i` has id
/// `i + 1`), then any started later with `--join` ([`ShardCluster::start_joiner`]).
pub struct ServerGroup {
    gid: u64,
    replicas: Vec<Proc>,
    addresses: Vec<String>,
    dirs: Vec<PathBuf>,
    ids: Vec<u64>,
    /// Replicas removed from the group's membership ([`ServerGroup::retire`]).
    retired: Vec<bool>,
}

impl ServerGroup {
    /// The group's id.
    pub fn gid(&self) -> u64 {
        self.gid
    }

    /// The addresses of the replicas not retired (the group's members as the harness knows
    /// them), in the order they were started.
    pub fn addresses(&self) -> Vec<String> {
        self.members().map(|i| self.addresses[i].clone()).collect()
    }

    /// Replica `i`'s address.
    pub fn address(&self, i: usize) -> &str {
        &self.addresses[i]
    }

    /// Replica `i`'s id within the group.
    pub fn id(&self, i: usize) -> u64 {
        self.ids[i]
    }

    /// The index of the replica with id `id`.
    pub fn index_of(&self, id: u64) -> usize {
        (self.ids.iter().position(|&x| x == id)).unwrap_or_else(|| panic!("no replica {id}"))
    }

    /// The indices of the replicas not retired.
    pub fn members(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.replicas.len()).filter(|&i| !self.retired[i])
    }

    /// Marks replica `i` as removed from the group's membership and SIGKILLs it: it no
    /// longer counts in [`ServerGroup::addresses`] or towards a settled majority.
    pub fn retire(&mut self, i: usize) {
        self.replicas[i].kill();
        self.retired[i] = true;
    }

    /// SIGKILLs replica `i` and deletes its data directory (a lost disk).
    pub fn wipe(&mut self, i: usize) {
        self.replicas[i].kill();
        match std::fs::remove_dir_all(&self.dirs[i]) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("deleting {}: {e}", self.dirs[i].display()),
        }
    }

    /// An administrator of the group's membership, reaching it at every replica's address
    /// (retired ones included: they answer with hints or not at all).
    pub fn admin(&self) -> strata_client::GroupAdmin {
        strata_client::GroupAdmin::new(self.addresses.clone(), crate::tls::security())
    }

    /// Number of replicas.
    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    /// No replicas.
    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// Replica `i`'s process.
    pub fn replica(&mut self, i: usize) -> &mut Proc {
        &mut self.replicas[i]
    }

    /// SIGKILLs replica `i`.
    pub fn kill(&mut self, i: usize) {
        self.replicas[i].kill();
    }

    /// SIGKILLs every replica.
    pub fn kill_all(&mut self) {
        for p in &mut self.replicas {
            p.kill();
        }
    }

    /// (Re)starts replica `i` on its data directory and waits until it listens.
    pub fn restart(&mut self, i: usize) {
        self.replicas[i].kill();
        self.replicas[i].start().expect("starting a replica");
        wait_listening(&self.addresses[i], &self.replicas[i]);
    }

    /// Restarts every replica.
    pub fn restart_all(&mut self) {
        for i in 0..self.len() {
            if self.retired[i] {
                continue;
            }
            self.restart(i);
        }
    }

    /// The data directory of replica `i`.
    pub fn data_dir(&self, i: usize) -> &Path {
        &self.dirs[i]
    }

    /// Bytes on disk of replica `i`'s state-machine engine.
    pub fn state_bytes(&self, i: usize) -> u64 {
        dir_bytes(&self.dirs[i].join("state"))
    }

    /// Replica `i`'s `NodeStatus`, or `None` if it does not answer (or is paused).
    pub async fn status(&self, i: usize) -> Option<v1::StatusResponse> {
        if !self.replicas[i].is_running() || self.replicas[i].is_paused() {
            return None;
        }
        crate::node_status_at(&self.addresses[i]).await
    }

    /// Replica `i`'s shards and configuration, or `None` if it does not answer.
    pub async fn shards(&self, i: usize) -> Option<v1::ShardsResponse> {
        if !self.replicas[i].is_running() || self.replicas[i].is_paused() {
            return None;
        }
        let channel = crate::probe_channel(&self.addresses[i]).await?;
        let mut client = strata_rpc::limits::shard_group_client(channel);
        client
            .shards(v1::ShardsRequest {})
            .await
            .ok()
            .map(|r| r.into_inner())
    }

    /// Every replica's log, for failure messages.
    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "==== group {} replica {} ====\n{}",
                    self.gid,
                    self.ids[i],
                    p.log()
                )
            })
            .collect()
    }
}

/// Asserts that `result` is the client's `InvalidArgument` and its message names `limit` (a
/// request over a limit of `strata_rpc::limits`); `what` says which request, for the failure.
pub fn assert_refused_naming(result: Result<(), strata_client::KvError>, limit: &str, what: &str) {
    match result {
        Err(strata_client::KvError::InvalidArgument(m)) => {
            assert!(m.contains(limit), "{what}: {m}")
        }
        other => panic!("{what}: expected INVALID_ARGUMENT naming {limit}, got {other:?}"),
    }
}

/// A `ShardKv` client of the server at `address` (connected now), for tests that talk to one
/// server directly.
pub async fn kv_client_at(
    address: &str,
) -> strata_rpc::v1::shard_kv_client::ShardKvClient<tonic::transport::Channel> {
    let security = crate::tls::security();
    let endpoint = security.endpoint(address).expect("address");
    let channel = security.connect(endpoint).await.expect("connecting");
    strata_rpc::limits::kv_client(channel)
}

/// Bytes of the files under `dir`, recursively (0 for a missing one).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn wait_listening(address: &str, p: &Proc) {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if std::net::TcpStream::connect(address).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{address} did not listen within 10 s; log:\n{}", p.log());
}

/// A shard master and shard-server groups on 127.0.0.1, in one temporary directory. Dropping
/// it kills every process and removes the directory (`STRATA_KEEP_TEST_DIRS=1` keeps it).
pub struct ShardCluster {
    /// The shard master.
    pub masters: MasterCluster,
    groups: BTreeMap<u64, ServerGroup>,
    dir: Option<TempDir>,
    binary: PathBuf,
    tick_ms: u64,
    extra_args: Vec<String>,
}

impl ShardCluster {
    /// A master of three replicas for `shards` shards, and no groups yet.
    pub fn start(binary: impl Into<PathBuf>, shards: usize, tick_ms: u64) -> ShardCluster {
        let binary = binary.into();
        let masters = MasterCluster::start(&binary, 3, shards, tick_ms);
        let dir = tempfile::Builder::new()
            .prefix("strata-shards-")
            .tempdir()
            .expect("creating the cluster directory");
        ShardCluster {
            masters,
            groups: BTreeMap::new(),
            dir: Some(dir),
            binary,
            tick_ms,
            extra_args: Vec::new(),
        }
    }

    /// A cluster to start as most tests begin: see [`ShardSetup`].
    ///
    /// ```ignore
    /// let (mut c, num) = ShardCluster::setup(BIN, SHARDS, 20)
    ///     .groups(&[(1, 3), (2, 3)])
    ///     .settled(SETTLE)
    ///     .await;
    /// ```
    pub fn setup(binary: impl Into<PathBuf>, shards: usize, tick_ms: u64) -> ShardSetup {
        ShardSetup {
            binary: binary.into(),
            shards,
            tick_ms,
            server_args: Vec::new(),
            groups: Vec::new(),
            joined: None,
        }
    }

    /// Extra arguments for every server started from now on (e.g. a session timeout).
    pub fn server_args(&mut self, args: &[&str]) {
        self.extra_args = args.iter().map(|s| s.to_string()).collect();
    }

    /// Starts group `gid` with `n` replicas (not joined to the master yet).
    pub fn add_group(&mut self, gid: u64, n: usize) -> &mut ServerGroup {
        let addresses = free_addresses(n);
        let peers = peers_arg(&addresses);
        let mut replicas = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..n {
            let id = i as u64 + 1;
            let (p, dir) = self.server_proc(gid, id, vec!["--peers".into(), peers.clone()]);
            replicas.push(p);
            dirs.push(dir);
        }
        for (a, p) in addresses.iter().zip(&replicas) {
            wait_listening(a, p);
        }
        self.groups.insert(
            gid,
            ServerGroup {
                gid,
                retired: vec![false; n],
                ids: (1..=n as u64).collect(),
                replicas,
                addresses,
                dirs,
            },
        );
        self.groups.get_mut(&gid).expect("just inserted")
    }

    /// Starts a new replica `id` of group `gid` on a free port and an empty data directory,
    /// with `--join` naming the member at `via`: it waits to be added to the group's
    /// membership (e.g. by [`ServerGroup::admin`]). Returns its index in the group.
    pub fn start_joiner(&mut self, gid: u64, id: u64, via: &str) -> usize {
        let address = free_addresses(1).remove(0);
        let membership = vec![
            "--join".into(),
            via.to_string(),
            "--listen".into(),
            address.clone(),
        ];
        let (p, dir) = self.server_proc(gid, id, membership);
        wait_listening(&address, &p);
        let g = self.group(gid);
        g.replicas.push(p);
        g.addresses.push(address);
        g.dirs.push(dir);
        g.ids.push(id);
        g.retired.push(false);
        g.replicas.len() - 1
    }

    /// The command line of replica `id` of group `gid` with `membership` (`--peers` or
    /// `--join`), started; and its data directory.
    fn server_proc(&self, gid: u64, id: u64, membership: Vec<String>) -> (Proc, PathBuf) {
        let name = format!("g{gid}-{id}");
        let (mut p, dir) = self.server_command(gid, id, membership, &name);
        p.start().expect("starting a replica");
        (p, dir)
    }

    /// The process of replica `id` of group `gid` with `membership` (`--peers` or `--join`
    /// and `--listen`), not started; and its data directory, `<root>/<name>` (the replicas
    /// the harness starts use `g<gid>-<id>`), next to its log `<root>/<name>.log`.
    pub fn server_command(
        &self,
        gid: u64,
        id: u64,
        membership: Vec<String>,
        name: &str,
    ) -> (Proc, PathBuf) {
        let root = self.root();
        let dir = root.join(name);
        let mut args: Vec<String> = vec![
            "server".into(),
            "--gid".into(),
            gid.to_string(),
            "--id".into(),
            id.to_string(),
        ];
        args.extend(membership);
        args.extend([
            "--masters".into(),
            self.masters.addresses().join(","),
            "--data-dir".into(),
            dir.display().to_string(),
            "--tick-ms".into(),
            self.tick_ms.to_string(),
        ]);
        args.extend(self.extra_args.iter().cloned());
        args.extend(crate::tls::replica_args(gid, id));
        let args = args.into_iter().map(OsString::from).collect();
        let p = test_proc(&self.binary, args, root.join(format!("{name}.log")));
        (p, dir)
    }

    /// The cluster's temporary directory.
    pub fn root(&self) -> PathBuf {
        (self.dir.as_ref().expect("cluster directory").path()).to_owned()
    }

    /// Group `gid`.
    pub fn group(&mut self, gid: u64) -> &mut ServerGroup {
        self.groups.get_mut(&gid).expect("no such group")
    }

    /// Group `gid`, shared.
    pub fn group_ref(&self, gid: u64) -> &ServerGroup {
        &self.groups[&gid]
    }

    /// A master client.
    pub fn master(&self) -> MasterClient {
        self.masters.client()
    }

    /// Joins groups (already started) at the master; returns the new config number.
    pub async fn join(&self, gids: &[u64]) -> u64 {
        let groups = gids
            .iter()
            .map(|g| (*g, self.groups[g].addresses()))
            .collect();
        self.master().join(groups).await.expect("join")
    }

    /// Tells the master group `gid`'s current servers (its replicas not retired), in a new
    /// configuration, so that clients and other groups find new replicas; returns the new
    /// config number.
    pub async fn publish_servers(&self, gid: u64) -> u64 {
        let servers = self.groups[&gid].addresses();
        (self.master().set_servers([(gid, servers)].into()).await)
            .unwrap_or_else(|e| panic!("setting group {gid}'s servers: {e}\n{}", self.logs()))
    }

    /// Removes groups at the master; returns the new config number.
    pub async fn leave(&self, gids: &[u64]) -> u64 {
        self.master().leave(gids.to_vec()).await.expect("leave")
    }

    /// A KV client with default options.
    pub async fn client(&self) -> Client {
        self.client_with(ClientOptions::default()).await
    }

    /// A KV client with explicit options (connecting as [`crate::tls::security`] says).
    pub async fn client_with(&self, options: ClientOptions) -> Client {
        let options = ClientOptions {
            security: crate::tls::security(),
            ..options
        };
        Client::connect_with(self.masters.addresses(), options)
            .await
            .expect("connecting a client")
    }

    /// Whether a majority of every group in `gids` has applied config `num` (or a later one)
    /// with every shard settled: absent, serving or reclaimed.
    pub async fn is_settled(&self, gids: &[u64], num: u64) -> bool {
        let mut all = true;
        for gid in gids {
            let g = &self.groups[gid];
            let mut ok = 0;
            let members: Vec<usize> = g.members().collect();
            for &i in &members {
                if let Some(s) = g.shards(i).await {
                    let settled = s.shards.iter().all(|&st| {
                        st == v1::ShardState::Absent as i32
                            || st == v1::ShardState::Serving as i32
                            || st == v1::ShardState::Reclaimed as i32
                    });
                    if s.config_num >= num && settled {
                        ok += 1;
                    }
                }
            }
            if ok * 2 <= members.len() {
                all = false;
            }
        }
        all
    }

    /// Waits until a majority of every group in `gids` has applied config `num` with every
    /// shard settled ([`ShardCluster::is_settled`]); panics with the logs after `timeout`.
    pub async fn wait_settled(&self, gids: &[u64], num: u64, timeout: Duration) {
        let until = Instant::now() + timeout;
        loop {
            if self.is_settled(gids, num).await {
                return;
            }
            if Instant::now() > until {
                panic!(
                    "groups {gids:?} did not settle in config {num} within {timeout:?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every process's log (tails), for failure messages.
    pub fn logs(&self) -> String {
        let tail = |s: String| {
            let start = s.len().saturating_sub(6000);
            let start = (start..s.len())
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(0);
            s[start..].to_string()
        };
        let mut out = tail(self.masters.logs());
        for g in self.groups.values() {
            out.push_str(&tail(g.logs()));
        }
        out
    }
}

/// What [`ShardCluster::setup`] starts: a master, then (with the extra server arguments) the
/// groups, then joins them and waits until they have settled in the config of the join.
#[must_use = "call .settled(timeout).await to start the cluster"]
pub struct ShardSetup {
    binary: PathBuf,
    shards: usize,
    tick_ms: u64,
    server_args: Vec<String>,
    groups: Vec<(u64, usize)>,
    joined: Option<Vec<u64>>,
}

impl ShardSetup {
    /// Extra arguments for every server (see [`ShardCluster::server_args`]).
    pub fn server_args(mut self, args: &[&str]) -> ShardSetup {
        self.server_args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The groups to start, as (gid, number of replicas), in order.
    pub fn groups(mut self, groups: &[(u64, usize)]) -> ShardSetup {
        self.groups = groups.to_vec();
        self
    }

    /// Joins only `gids` (the other groups are started but left out of the master); by
    /// default every group is joined.
    pub fn join_only(mut self, gids: &[u64]) -> ShardSetup {
        self.joined = Some(gids.to_vec());
        self
    }

    /// Starts the cluster, joins the groups in one request and waits (at most `timeout`)
    /// until they have settled; returns the cluster and the config number of the join.
    pub async fn settled(self, timeout: Duration) -> (ShardCluster, u64) {
        let mut cluster = ShardCluster::start(self.binary, self.shards, self.tick_ms);
        cluster.extra_args = self.server_args;
        for &(gid, replicas) in &self.groups {
            cluster.add_group(gid, replicas);
        }
        let joined = self
            .joined
            .unwrap_or_else(|| self.groups.iter().map(|&(gid, _)| gid).collect());
        let num = cluster.join(&joined).await;
        cluster.wait_settled(&joined, num, timeout).await;
        (cluster, num)
    }
}

impl Drop for ShardCluster {
    fn drop(&mut self) {
        for g in self.groups.values_mut() {
            g.kill_all();
        }
        if std::env::var_os("STRATA_KEEP_TEST_DIRS").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("keeping {}", dir.keep().display());
            }
        }
    }
}
