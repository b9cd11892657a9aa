//! Launching a local cluster: shard-master replicas and shard-server groups as child processes
//! of this one, on free 127.0.0.1 ports, with their data and logs under one directory.
//!
//! `strata demo` runs on this, and so does the test harness (`strata-cluster-tests`): the
//! processes run `<binary> master ...` and `<binary> server ...`, the `strata` tool's own
//! subcommands. Nothing here waits on a network answer beyond a TCP connect: joining groups and
//! reading status is the caller's business (through `strata_client`).
//!
//! - [`child`]: one process ([`Proc`]), which dies with its parent.
//! - [`LocalCluster`]: the masters and the groups, with their addresses and data directories.

pub mod child;
pub mod prometheus;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_rpc::tls::{Identity, Security, TlsPaths};

pub use child::Proc;

/// How long a stopping process may take to exit cleanly before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A 127.0.0.1 port that was free a moment ago (the OS picked it; it is released at once, so
/// another process could take it first, which is unlikely on a development machine). Never
/// one this process was handed before: a port given to a child that has not bound it yet
/// looks free to the OS too.
pub fn free_port() -> io::Result<u16> {
    Ok(free_ports(1)?[0])
}

/// `n` distinct addresses on 127.0.0.1 whose ports were free a moment ago (see
/// [`free_port`]).
pub fn free_addresses(n: usize) -> io::Result<Vec<String>> {
    Ok(free_ports(n)?
        .into_iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect())
}

/// `n` distinct free ports: the listeners are held until all `n` are picked, so the OS
/// cannot hand the same port twice, and ports handed out before by this process are skipped.
fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    use std::sync::Mutex;
    /// Ports this process handed out (children may not have bound them yet).
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        held.push(listener);
        if given.insert(port) {
            ports.push(port);
        }
        if held.len() > n + 1024 {
            return Err(io::Error::other("no free port left on 127.0.0.1"));
        }
    }
    Ok(ports)
}

/// The `--peers` argument naming the replicas at `addresses`: `1=ADDRESS,2=ADDRESS,...` (the
/// replica at `addresses[i]` has id `i + 1`).
pub fn peers_arg(addresses: &[String]) -> String {
    addresses
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}={a}", i + 1))
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits until something accepts TCP connections at `address`; fails with the process's log
/// tail if it exits first or `timeout` passes.
pub fn wait_listening(address: &str, p: &mut Proc, timeout: Duration) -> io::Result<()> {
    let until = Instant::now() + timeout;
    loop {
        if std::net::TcpStream::connect(address).is_ok() {
            return Ok(());
        }
        let exited = p.try_exit_status();
        if exited.is_some() || Instant::now() >= until {
            let log = p.log();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            let why = match exited {
                Some(status) => format!("exited ({status})"),
                None => format!("did not listen within {timeout:?}"),
            };
            return Err(io::Error::other(format!(
                "the process for {address} {why}; its log ({}) ends with:\n{}",
                p.log_path().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `args` with `--http-listen` on a free port if `http`; and that address.
fn with_http(mut args: Vec<String>, http: bool) -> io::Result<(Vec<String>, Option<String>)> {
    if !http {
        return Ok((args, None));
    }
    let address = format!("127.0.0.1:{}", free_port()?);
    args.extend(["--http-listen".to_string(), address.clone()]);
    Ok((args, Some(address)))
}

/// What a [`LocalCluster`] is made of.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// The executable with `master` and `server` subcommands (the `strata` binary itself).
    pub binary: PathBuf,
    /// Where data directories and logs go; a new temporary directory if `None` (removed on
    /// drop unless [`LocalCluster::keep_dir`]).
    pub dir: Option<PathBuf>,
    /// Shard-master replicas.
    pub masters: usize,
    /// The cluster's shard count.
    pub shards: usize,
    /// Paxos tick of every process, in milliseconds.
    pub tick_ms: u64,
    /// `RUST_LOG` of the processes.
    pub log_filter: String,
    /// More arguments for every server (e.g. `--chaos-percent 5`).
    pub server_args: Vec<String>,
    /// Give every process an HTTP endpoint (`/metrics`, `/health`) on a free port.
    pub http: bool,
    /// Mutual TLS everywhere: a CA and a certificate per process (and an admin's and a
    /// client's) are made in `<dir>/certs`.
    pub tls: bool,
}

impl LaunchOptions {
    /// Three masters of 64 shards at 20 ms ticks, logging at `info`, running `binary`.
    pub fn new(binary: impl Into<PathBuf>) -> LaunchOptions {
        LaunchOptions {
            binary: binary.into(),
            dir: None,
            masters: 3,
            shards: 64,
            tick_ms: 20,
            log_filter: "info".into(),
            server_args: Vec::new(),
            http: true,
            tls: false,
        }
    }
}

/// One replica process of a local cluster.
pub struct Replica {
    /// Its id within its group (1-based).
    pub id: u64,
    /// The address it serves gRPC on.
    pub address: String,
    /// The address of its HTTP endpoint (`/metrics`, `/health`), if it has one.
    pub http_address: Option<String>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// The process.
    pub process: Proc,
}

/// Masters and shard-server groups running as children of this process. Dropping it kills
/// every process (use [`LocalCluster::shutdown`] for a clean stop) and removes a temporary
/// directory.
pub struct LocalCluster {
    options: LaunchOptions,
    root: PathBuf,
    temp: Option<tempfile::TempDir>,
    masters: Vec<Replica>,
    groups: BTreeMap<u64, Vec<Replica>>,
    tls: Option<ClusterTls>,
}

/// A TLS cluster's certificates.
struct ClusterTls {
    ca: crate::certs::Ca,
    dir: PathBuf,
    admin: TlsPaths,
    client: TlsPaths,
}

/// How long a local cluster's certificates are valid.
const LOCAL_CERT_DAYS: u32 = 30;

impl LocalCluster {
    /// Starts the masters; returns once each listens.
    pub fn start(options: LaunchOptions) -> io::Result<LocalCluster> {
        let (root, temp) = match &options.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new().prefix("strata-").tempdir()?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        let tls = if options.tls {
            Some(ClusterTls::make(root.join("certs")).map_err(io::Error::other)?)
        } else {
            None
        };
        let mut cluster = LocalCluster {
            options,
            root,
            temp,
            masters: Vec::new(),
            groups: BTreeMap::new(),
            tls,
        };
        let addresses = free_addresses(cluster.options.masters)?;
        let peers = peers_arg(&addresses);
        for (i, address) in addresses.into_iter().enumerate() {
            let id = i as u64 + 1;
            let data_dir = cluster.root.join(format!("master-{id}"));
            let args = vec![
                "master".to_string(),
                "--id".into(),
                id.to_string(),
                "--peers".into(),
                peers.clone(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--shards".into(),
                cluster.options.shards.to_string(),
                "--tick-ms".into(),
                cluster.options.tick_ms.to_string(),
            ];
            let mut args = args;
            args.extend(cluster.tls_args(0, id)?);
            let (args, http_address) = with_http(args, cluster.options.http)?;
            let log = cluster.root.join(format!("master-{id}.log"));
            let process = cluster.spawn(args, log)?;
            cluster.masters.push(Replica {
                id,
                address,
                http_address,
                data_dir,
                process,
            });
        }
        for m in &mut cluster.masters {
            wait_listening(&m.address, &mut m.process, Duration::from_secs(10))?;
        }
        Ok(cluster)
    }

    fn spawn(&self, args: Vec<String>, log: PathBuf) -> io::Result<Proc> {
        let args = args.into_iter().map(OsString::from).collect();
        let mut p = Proc::new(&self.options.binary, args, log)
            .env("RUST_LOG", &self.options.log_filter)
            .env("NO_COLOR", "1");
        p.start()?;
        Ok(p)
    }

    /// Starts group `gid` with `replicas` servers (not joined at the master: see
    /// [`LocalCluster::group_addresses`]); returns once each listens.
    pub fn add_group(&mut self, gid: u64, replicas: usize) -> io::Result<()> {
        if self.groups.contains_key(&gid) {
            return Err(io::Error::other(format!("group {gid} is already running")));
        }
        let addresses = free_addresses(replicas)?;
        let peers = peers_arg(&addresses);
        let masters = self.master_addresses().join(",");
        let mut group = Vec::new();
        for (i, address) in addresses.into_iter().enumerate() {
            let id = i as u64 + 1;
            let data_dir = self.root.join(format!("group-{gid}-{id}"));
            let mut args = vec![
                "server".to_string(),
                "--gid".into(),
                gid.to_string(),
                "--id".into(),
                id.to_string(),
                "--peers".into(),
                peers.clone(),
                "--masters".into(),
                masters.clone(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--tick-ms".into(),
                self.options.tick_ms.to_string(),
            ];
            args.extend(self.options.server_args.iter().cloned());
            args.extend(self.tls_args(gid, id)?);
            let (args, http_address) = with_http(args, self.options.http)?;
            let log = self.root.join(format!("group-{gid}-{id}.log"));
            let process = self.spawn(args, log)?;
            group.push(Replica {
                id,
                address,
                http_address,
                data_dir,
                process,
            });
        }
        for r in &mut group {
            wait_listening(&r.address, &mut r.process, Duration::from_secs(10))?;
        }
        self.groups.insert(gid, group);
        Ok(())
    }

    /// The `--tls-*` arguments of replica `id` of group `gid` (a certificate made for it
    /// now), or none without TLS.
    fn tls_args(&self, gid: u64, id: u64) -> io::Result<Vec<String>> {
        let Some(tls) = &self.tls else {
            return Ok(Vec::new());
        };
        let identity = Identity::Node { gid, id };
        let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
        let validity = crate::certs::Validity::days(LOCAL_CERT_DAYS);
        let paths = (tls.ca)
            .issue_into(&tls.dir, &identity, &hosts, validity)
            .map_err(io::Error::other)?;
        Ok(vec![
            "--tls-ca".into(),
            paths.ca.display().to_string(),
            "--tls-cert".into(),
            paths.cert.display().to_string(),
            "--tls-key".into(),
            paths.key.display().to_string(),
        ])
    }

    /// The admin's certificate files (`strata://admin/admin`), if the cluster runs TLS.
    pub fn admin_tls(&self) -> Option<&TlsPaths> {
        self.tls.as_ref().map(|t| &t.admin)
    }

    /// A client's certificate files (`strata://client/client`), if the cluster runs TLS.
    pub fn client_tls(&self) -> Option<&TlsPaths> {
        self.tls.as_ref().map(|t| &t.client)
    }

    /// The directory of the certificates (and of the CA's key), if the cluster runs TLS.
    pub fn certs_dir(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.dir.as_path())
    }

    /// How an operator connects to this cluster: with the admin's certificate, or plaintext.
    pub fn security(&self) -> io::Result<Security> {
        Security::from_paths(self.admin_tls().cloned()).map_err(io::Error::other)
    }

    /// The masters' addresses.
    pub fn master_addresses(&self) -> Vec<String> {
        self.masters.iter().map(|r| r.address.clone()).collect()
    }

    /// The URL of the status page (the first master's HTTP endpoint), if the masters serve
    /// HTTP.
    pub fn status_page(&self) -> Option<String> {
        let address = self.masters.first()?.http_address.as_ref()?;
        Some(format!("http://{address}/"))
    }

    /// A Prometheus configuration scraping every process's HTTP endpoint
    /// ([`prometheus::scrape_config`]).
    pub fn prometheus_config(&self) -> String {
        let http = |replicas: &[Replica]| -> Vec<String> {
            replicas
                .iter()
                .filter_map(|r| r.http_address.clone())
                .collect()
        };
        let groups: Vec<(u64, Vec<String>)> =
            self.groups.iter().map(|(gid, g)| (*gid, http(g))).collect();
        prometheus::scrape_config(&http(&self.masters), &groups)
    }

    /// The running groups' ids.
    pub fn gids(&self) -> Vec<u64> {
        self.groups.keys().copied().collect()
    }

    /// Group `gid`'s server addresses in replica-id order (what a Join names).
    pub fn group_addresses(&self, gid: u64) -> Vec<String> {
        self.groups
            .get(&gid)
            .map(|g| g.iter().map(|r| r.address.clone()).collect())
            .unwrap_or_default()
    }

    /// The master replicas.
    pub fn masters(&mut self) -> &mut [Replica] {
        &mut self.masters
    }

    /// Group `gid`'s replicas.
    pub fn group(&mut self, gid: u64) -> Option<&mut [Replica]> {
        self.groups.get_mut(&gid).map(Vec::as_mut_slice)
    }

    /// Server `id` of group `gid`.
    pub fn server(&mut self, gid: u64, id: u64) -> Option<&mut Replica> {
        self.group(gid)?.iter_mut().find(|r| r.id == id)
    }

    /// Restarts a stopped or killed server on its data; returns once it listens.
    pub fn restart_server(&mut self, gid: u64, id: u64) -> io::Result<()> {
        let r = self
            .server(gid, id)
            .ok_or_else(|| io::Error::other(format!("no server {id} in group {gid}")))?;
        r.process.start()?;
        wait_listening(&r.address, &mut r.process, Duration::from_secs(10))
    }

    /// The process ids of every running child.
    pub fn pids(&self) -> Vec<u32> {
        self.all().filter_map(|r| r.process.pid()).collect()
    }

    /// Every running child with what it is: `master-ID` or `group-GID-ID`, and its pid.
    pub fn processes(&self) -> Vec<(String, u32)> {
        let masters = self.masters.iter().map(|r| (format!("master-{}", r.id), r));
        let servers = self
            .groups
            .iter()
            .flat_map(|(gid, g)| g.iter().map(move |r| (format!("group-{gid}-{}", r.id), r)));
        masters
            .chain(servers)
            .filter_map(|(label, r)| Some((label, r.process.pid()?)))
            .collect()
    }

    fn all(&self) -> impl Iterator<Item = &Replica> {
        self.masters.iter().chain(self.groups.values().flatten())
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut Replica> {
        self.masters
            .iter_mut()
            .chain(self.groups.values_mut().flatten())
    }

    /// Resident memory of all children together, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        self.all().filter_map(|r| r.process.rss_bytes()).sum()
    }

    /// The directory of data and logs.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Keeps a temporary directory after the cluster is dropped; returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        if let Some(temp) = self.temp.take() {
            let _ = temp.keep();
        }
        self.root.clone()
    }

    /// Stops every process cleanly: servers first, then masters, each SIGTERMed together and
    /// given [`STOP_GRACE`] to exit before SIGKILL. Returns how many had to be killed.
    pub fn shutdown(&mut self) -> usize {
        let servers: Vec<&mut Replica> = self.groups.values_mut().flatten().collect();
        let mut killed = stop_together(servers);
        killed += stop_together(self.masters.iter_mut().collect());
        killed
    }
}

/// SIGTERMs every replica, then waits for each until [`STOP_GRACE`] after the signal; kills
/// the ones still running. Returns how many were killed.
fn stop_together(mut replicas: Vec<&mut Replica>) -> usize {
    for r in &mut replicas {
        r.process.terminate();
    }
    let until = Instant::now() + STOP_GRACE;
    let mut killed = 0;
    for r in &mut replicas {
        let left = until.saturating_duration_since(Instant::now());
        if r.process.is_running() && r.process.wait_exit(left).is_none() {
            r.process.kill();
            killed += 1;
        }
    }
    killed
}

impl ClusterTls {
    /// A new CA in `dir` with an admin's and a client's certificates.
    fn make(dir: PathBuf) -> Result<ClusterTls, crate::error::CliError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::error::CliError::failed(format!("{}: {e}", dir.display())))?;
        let validity = crate::certs::Validity::days(LOCAL_CERT_DAYS);
        let ca = crate::certs::Ca::generate(validity)?;
        ca.save(&dir)?;
        let admin = Identity::Admin("admin".into());
        let admin = ca.issue_into(&dir, &admin, &[], validity)?;
        let client = Identity::Client("client".into());
        let client = ca.issue_into(&dir, &client, &[], validity)?;
        Ok(ClusterTls {
            ca,
            dir,
            admin,
            client,
        })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for r in self.all_mut() {
            r.process.kill();
        }
    }
}
