//! A replica process's host: what every server binary built on a node shares besides its
//! state machine and its own services, in one place and with one failure policy —
//!
//! - the command line's common part (`--peers`, `--listen`, `--tick-ms`) checked;
//! - the data directory: created, its `IDENTITY` checked (a directory of another replica is
//!   refused), the Paxos log and acceptor state in `<data-dir>/paxos/`;
//! - the listening socket, bound before the node starts (a taken port fails the start), with
//!   connection admission ([`crate::listener`]);
//! - the node, started on the Paxos storage with the service's state machine;
//! - one tonic server: the service's own gRPC services plus the `PaxosPeer` and `NodeStatus`
//!   services, until SIGTERM or SIGINT; then the node stops;
//! - the process: allocator tuning, a tokio runtime, signal handlers installed first.
//!
//! How a host fails: [`RunError`], one line for people. A failed write of a state machine's
//! own store is not the host's to handle — the state in memory is ahead of the store, so the
//! state machine stops the process and a restart replays the log (both services do this).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use strata_paxos::ReplicaId;
use tonic::service::Routes;

use crate::grpc::{peer_service, status_service_with, GrpcTransport, ServiceStatus, StatusExtras};
use crate::identity::check_identity;
use crate::node::{Node, NodeConfig};
use crate::paxos_storage::EnginePaxosStorage;
use crate::state_machine::StateMachine;

/// Ticks between a leader's heartbeats (see [`ReplicaHost::paxos_config`]).
pub const HEARTBEAT_TICKS: u32 = 5;
/// Ticks of silence after which a follower runs for leader: a range drawn from.
pub const ELECTION_TICKS: (u32, u32) = (25, 50);

/// How long a stopping server lets requests in flight finish before it closes the connections
/// still open (other replicas' peer streams stay open for good).
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(2);

/// Why a server replica (master or shard server) could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The command line is inconsistent.
    #[error("invalid arguments: {0}")]
    Args(String),
    /// The data directory is unusable, belongs to another replica, or disagrees with the
    /// arguments.
    #[error("data directory {dir}: {message}")]
    DataDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// I/O on the data directory or the listening socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The Paxos storage or node failed to start.
    #[error("paxos node: {0}")]
    Node(String),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Server(#[from] tonic::transport::Error),
}

/// The command line every replica process shares (flattened into `strata-server`'s and
/// `strata-master`'s).
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicaArgs {
    /// This replica's id within its group (one of the ids in --peers).
    #[arg(long)]
    pub id: ReplicaId,
    /// Every replica of the group, this one included: `id=host:port`, comma-separated or
    /// repeated. The addresses are the ones clients and other replicas use.
    #[arg(long, value_delimiter = ',', required_unless_present = "join", value_parser = parse_peer)]
    pub peers: Vec<(ReplicaId, String)>,
    /// Join a running group instead (`--peers` is then not given): the address of any of
    /// its members. The replica starts with an empty data directory, learns the group's
    /// membership from that member, and waits to be added (`strata group add-replica`), then
    /// catches up. `--listen` is the address the others reach it at. Later starts read the
    /// membership from the data directory.
    #[arg(long, conflicts_with = "peers", requires = "listen")]
    pub join: Option<String>,
    /// Address to serve gRPC on, `host:port` (defaults to this replica's address in --peers).
    #[arg(long)]
    pub listen: Option<String>,
    /// Directory of this replica's durable state.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Length of one Paxos tick in milliseconds (elections after 10..20 silent ticks,
    /// heartbeats every 2).
    #[arg(long, default_value_t = 20)]
    pub tick_ms: u64,
    /// How long a request waits for a quorum before failing with UNAVAILABLE, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub op_timeout_ms: u64,
    /// Most open connections (clients and peers); a new one beyond it closes the connection
    /// silent longest. Also capped below the open-file limit.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Serve HTTP on this address, `host:port`: `/metrics` (Prometheus) and `/health`.
    #[arg(long)]
    pub http_listen: Option<String>,
    /// `/health` fails when the applied index trails the commit index by more slots.
    #[arg(long, default_value_t = 1000)]
    pub health_max_lag: u64,
    /// `/health` fails ("disk full") when the data directory's file system has fewer bytes
    /// free for this process.
    #[arg(long, default_value_t = 256 << 20)]
    pub health_min_free_bytes: u64,
    /// The cluster's CA certificate (PEM): with --tls-cert and --tls-key, every connection
    /// this process makes or accepts is mutual TLS, and plaintext ones are refused.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// This process's certificate (PEM), naming it `strata://node/<gid>/<id>`.
    #[arg(long, requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// This process's private key (PEM).
    #[arg(long, requires_all = ["tls_ca", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
}

impl ReplicaArgs {
    /// The TLS files given, if any.
    pub fn tls_paths(&self) -> Option<strata_rpc::tls::TlsPaths> {
        Some(strata_rpc::tls::TlsPaths {
            ca: self.tls_ca.clone()?,
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }
}

/// How a node runs beyond what the host decides (its id, members, tick and election seed).
#[derive(Debug, Clone)]
pub struct NodeTuning {
    /// See [`NodeConfig::compaction_slack`].
    pub compaction_slack: u64,
    /// See [`NodeConfig::compaction_bytes`].
    pub compaction_bytes: usize,
    /// See [`NodeConfig::queue_capacity`].
    pub queue_capacity: usize,
}

/// A replica process being set up, then served (see the module documentation).
pub struct ReplicaHost {
    /// The Paxos group.
    pub group: u64,
    /// This replica's id.
    pub id: ReplicaId,
    /// The group's replicas by id.
    pub peers: BTreeMap<ReplicaId, String>,
    /// The address served.
    pub listen: String,
    /// The data directory.
    pub data_dir: PathBuf,
    tick: Duration,
    max_connections: usize,
    listener: tokio::net::TcpListener,
    /// The HTTP endpoint's socket (`--http-listen`), and `--health-max-lag`.
    http: Option<(tokio::net::TcpListener, crate::http::HealthLimits)>,
    /// The process's metrics; the node's are added when it is served.
    registry: Registry,
    /// The storage engines whose figures are exported (the Paxos one, and the service's).
    engines: crate::engine_metrics::EngineCollector,
    /// Routes the service adds to the HTTP endpoint (the master's status page).
    http_routes: axum::Router,
    /// Taken when the node starts.
    storage: Option<EnginePaxosStorage>,
    /// Plaintext or mutual TLS, for every connection made or accepted.
    security: strata_rpc::tls::Security,
    /// Refused connections and requests.
    refusals: crate::auth::Refusals,
    /// Started with `--join`: the voters this replica was told of (it is a learner-to-be).
    joined_voters: Option<Vec<ReplicaId>>,
    /// The service's part of the `NodeStatus` answers (see [`ReplicaHost::report_status`]).
    service_status: Option<crate::grpc::ServiceStatusFn>,
}

impl ReplicaHost {
    /// Checks the arguments of a replica of `group`, prepares the data directory (identity,
    /// Paxos storage) and binds the listening socket.
    pub async fn open(group: u64, args: &ReplicaArgs) -> Result<ReplicaHost, RunError> {
        let listen = args.listen.as_deref();
        let (peers, listen) = match &args.join {
            Some(_) => {
                if args.tick_ms == 0 {
                    return Err(RunError::Args("--tick-ms must be at least 1".into()));
                }
                (BTreeMap::new(), listen.unwrap_or_default().to_string())
            }
            None => peers_and_listen(args.id, &args.peers, listen, args.tick_ms)?,
        };
        let data_dir = args.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| RunError::Io {
            what: format!("creating the data directory {}", data_dir.display()),
            source,
        })?;
        check_identity(&data_dir, group, args.id).map_err(|e| RunError::DataDir {
            dir: data_dir.clone(),
            message: e.to_string(),
        })?;
        let security = strata_rpc::tls::Security::from_paths(args.tls_paths())
            .map_err(|e| RunError::Args(format!("TLS: {e}")))?;
        if let strata_rpc::tls::Security::Tls(tls) = &security {
            let mine = strata_rpc::tls::Identity::Node {
                gid: group,
                id: args.id,
            };
            if tls.identity() != mine {
                return Err(RunError::Args(format!(
                    "TLS: --tls-cert names {}, but this replica is {mine}",
                    tls.identity()
                )));
            }
        }
        let mut storage = EnginePaxosStorage::open(&data_dir.join("paxos"))
            .map_err(|e| RunError::Node(e.to_string()))?;
        let (peers, joined_voters) = match &args.join {
            Some(member) => {
                let m = join_membership(&mut storage, &security, group, args.id, member).await?;
                let mut peers = m.addresses.clone();
                peers.insert(args.id, listen.clone());
                (peers, Some(m.voters))
            }
            None => (peers, None),
        };
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|source| RunError::Io {
                what: format!("listening on {listen}"),
                source,
            })?;
        let http = match &args.http_listen {
            Some(address) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|source| RunError::Io {
                        what: format!("listening for HTTP on {address}"),
                        source,
                    })?;
                let limits = crate::http::HealthLimits {
                    max_lag: args.health_max_lag,
                    min_free_bytes: args.health_min_free_bytes,
                };
                Some((listener, limits))
            }
            None => None,
        };
        let mut engines = crate::engine_metrics::EngineCollector::default();
        let paxos_db = storage.db_handle();
        engines.add("paxos", Arc::new(move || paxos_db.stats()));
        Ok(ReplicaHost {
            group,
            id: args.id,
            peers,
            listen,
            data_dir,
            tick: Duration::from_millis(args.tick_ms),
            max_connections: args.max_connections,
            listener,
            http,
            registry: Registry::default(),
            http_routes: axum::Router::new(),
            engines,
            storage: Some(storage),
            service_status: None,
            security,
            refusals: crate::auth::Refusals::default(),
            joined_voters,
        })
    }

    /// Exports the figures of one more storage engine (`strata_engine_*{engine=label}`).
    pub fn add_engine(&mut self, label: &'static str, stats: crate::engine_metrics::StatsFn) {
        self.engines.add(label, stats);
    }

    /// Adds the service's own routes to the HTTP endpoint (if `--http-listen` is given).
    pub fn http_routes(&mut self, routes: axum::Router) {
        self.http_routes = std::mem::take(&mut self.http_routes).merge(routes);
    }

    /// The process's metrics registry, for a service to add its own metrics before
    /// [`ReplicaHost::serve`].
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// How this process connects to others (plaintext or mutual TLS with its certificate):
    /// what the service uses for its own outgoing connections.
    pub fn security(&self) -> strata_rpc::tls::Security {
        self.security.clone()
    }

    /// The refusal counters, for a service's own request-level checks
    /// ([`crate::auth::Refusals::deny`]).
    pub fn refusals(&self) -> crate::auth::Refusals {
        self.refusals.clone()
    }

    /// Has the `NodeStatus` service ask `status` for the service's part of every answer
    /// (configuration applied, shards held, last error). Call before [`ReplicaHost::serve`].
    pub fn report_status(&mut self, status: impl Fn() -> ServiceStatus + Send + Sync + 'static) {
        self.service_status = Some(std::sync::Arc::new(status));
    }

    /// The error for something wrong with the data directory (or a part of it).
    pub fn data_dir_error(&self, message: impl Into<String>) -> RunError {
        RunError::DataDir {
            dir: self.data_dir.clone(),
            message: message.into(),
        }
    }

    /// This replica's Paxos configuration: its id, the group's members, the heartbeat and
    /// election timing of a replica host, and an election seed
    /// that differs between replicas and restarts. Defaults otherwise, for the caller to tune.
    pub fn paxos_config(&self) -> strata_paxos::Config {
        let mut paxos = strata_paxos::Config::new(self.id, self.peers.keys().copied().collect());
        if let Some(voters) = &self.joined_voters {
            // Only what the configuration must hold to be valid: the membership persisted
            // when it joined (or chosen since: it may be a voter by now) is the one in force.
            paxos.members = voters.clone();
            paxos.learners = if voters.contains(&self.id) {
                Vec::new()
            } else {
                vec![self.id]
            };
        }
        paxos.seed = election_seed(self.id);
        paxos.addresses = self.peers.clone();
        // etcd's proportions: a heartbeat every 5 ticks (100 ms at the default 20 ms tick),
        // an election after 25 to 50 ticks of silence (0.5 to 1 s). An idle group's cost is
        // its heartbeats (each an RPC to every peer and one back): 2 ticks cost an idle
        // replica twice the CPU of an idle etcd member. The tick itself stays short: it
        // paces re-sends and batching, not failure detection.
        paxos.heartbeat_interval = HEARTBEAT_TICKS;
        paxos.election_timeout = ELECTION_TICKS;
        paxos
    }

    /// Starts the node: `machine` replicated by `paxos` over this host's Paxos storage, talking
    /// to the group's peers over gRPC.
    pub fn start_node<S: StateMachine>(
        &mut self,
        paxos: strata_paxos::Config,
        tuning: NodeTuning,
        machine: S,
    ) -> Result<Node<S::Reply>, RunError> {
        let storage = self
            .storage
            .take()
            .ok_or_else(|| RunError::Node("the node was started already".into()))?;
        let cfg = NodeConfig {
            paxos,
            tick: self.tick,
            compaction_slack: tuning.compaction_slack,
            compaction_bytes: tuning.compaction_bytes,
            queue_capacity: tuning.queue_capacity,
        };
        let peer_metrics = crate::grpc::PeerMetrics::default();
        peer_metrics.register(&mut self.registry);
        let transport = GrpcTransport::with_security(
            self.group,
            self.id,
            self.peers.clone(),
            &peer_metrics,
            self.security.clone(),
        );
        Node::start(cfg, storage, machine, transport).map_err(|e| RunError::Node(e.to_string()))
    }

    /// Serves `services` (the service's own gRPC services) with `node`'s `PaxosPeer` and
    /// `NodeStatus` services, every request measured (`strata_rpc_duration_seconds`), until
    /// `shutdown` resolves; then stops the node.
    pub async fn serve<R: Send + 'static>(
        self,
        node: Node<R>,
        services: Routes,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RunError> {
        let http_address = (self.http.as_ref())
            .and_then(|(listener, _)| listener.local_addr().ok())
            .map(|a| a.to_string());
        let mut registry = self.registry;
        node.metrics().register(&mut registry);
        let rpc_metrics = crate::rpc_metrics::RpcMetricsLayer::default();
        rpc_metrics.register(&mut registry);
        registry.register_collector(Box::new(crate::metrics::ProcessCollector));
        registry.register_collector(Box::new(self.engines));
        self.refusals.register(&mut registry);
        let extra_routes = self.http_routes;
        let data_dir = self.data_dir.clone();
        let http = self.http.map(|(listener, limits)| {
            let status_of = node.clone();
            let state = crate::http::HttpState {
                registry: Arc::new(registry),
                status: Arc::new(move || status_of.status()),
                data_dir,
                limits,
            };
            tokio::spawn(async move {
                let routes = crate::http::router(state).merge(extra_routes);
                if let Err(e) = axum::serve(listener, routes).await {
                    tracing::error!(error = %e, "the HTTP endpoint failed");
                }
            })
        });
        let incoming = admitted_connections(
            self.listener,
            self.max_connections,
            self.security.clone(),
            self.refusals.handshake.clone(),
        );
        let auth =
            crate::auth::AuthLayer::new(self.group, self.security.is_tls(), self.refusals.clone());
        // tonic's graceful shutdown waits for every open connection to finish, and the other
        // replicas' peer streams never do: after the signal, requests in flight get
        // `SHUTDOWN_DRAIN` to finish, then the server is dropped with whatever is still open.
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            shutdown.await;
            let _ = signalled_tx.send(());
        };
        let server = tonic::transport::Server::builder()
            .layer(rpc_metrics)
            .layer(auth)
            .add_routes(services)
            .add_service(peer_service(
                self.group,
                node.clone(),
                self.refusals.clone(),
            ))
            .add_service(crate::grpc::membership_service(
                node.clone(),
                self.peers.clone(),
            ))
            .add_service(status_service_with(
                self.group,
                node.clone(),
                StatusExtras {
                    peers: self.peers.clone(),
                    data_dir: Some(self.data_dir.clone()),
                    service: self.service_status.clone(),
                    http_address,
                },
            ))
            .serve_with_incoming_shutdown(incoming, shutdown);
        let drained = async {
            if signalled_rx.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_DRAIN).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let served = tokio::select! {
            served = server => served.map_err(RunError::from),
            () = drained => {
                tracing::info!(?SHUTDOWN_DRAIN, "connections still open after the drain; closing them");
                Ok(())
            }
        };
        if let Some(http) = http {
            http.abort();
        }
        node.stop().await;
        served
    }
}

/// The future [`run_process`] hands its server: resolves on SIGTERM or SIGINT.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs a server process until SIGTERM or SIGINT: tunes the allocator, starts a tokio runtime
/// of its own (multi-threaded: a node needs it), installs the signal handlers first (a SIGTERM
/// during start-up is a clean stop, not a kill), then runs `serve` with the shutdown signal.
pub fn run_process<F, Fut>(serve: F) -> Result<(), RunError>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = Result<(), RunError>>,
{
    tune_allocator();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| RunError::Io {
            what: "starting the tokio runtime".into(),
            source,
        })?;
    let shutdown: Shutdown = {
        let _runtime = runtime.enter();
        Box::pin(shutdown_signal())
    };
    runtime.block_on(serve(shutdown))
}

/// The membership a replica started with `--join` runs with: the one in its Paxos storage,
/// or, on the first start (empty storage), the one `member` has in force — persisted before
/// anything else, so that a restart finds it. Refused if this id is already a member (a
/// replica that lost its data must not come back under its old id: its promises and
/// acceptances are gone) or `member` belongs to another group.
async fn join_membership(
    storage: &mut EnginePaxosStorage,
    security: &strata_rpc::tls::Security,
    group: u64,
    id: ReplicaId,
    member: &str,
) -> Result<strata_paxos::Membership, RunError> {
    use strata_paxos::Storage as _;
    let state = storage.load().map_err(|e| RunError::Node(e.to_string()))?;
    if let Some(m) = state.membership {
        return Ok(m);
    }
    if state.promised != strata_paxos::Ballot::ZERO || !state.entries.is_empty() {
        return Err(RunError::Args(
            "--join needs an empty data directory (this one holds a Paxos log)".into(),
        ));
    }
    let status = strata_rpc::probe::node_status(security, member, Duration::from_secs(5))
        .await
        .map_err(|e| RunError::Args(format!("--join: {member} did not answer: {e}")))?;
    if status.group_id != group {
        return Err(RunError::Args(format!(
            "--join: {member} is a replica of group {}, not {group}",
            status.group_id
        )));
    }
    let m = (status.membership)
        .and_then(crate::wire::membership_from_proto)
        .ok_or_else(|| RunError::Args(format!("--join: {member} reported no membership")))?;
    if m.contains(id) {
        return Err(RunError::Args(format!(
            "--join: replica {id} is already a member of group {group}; a replica with an \
             empty data directory joins under a new id"
        )));
    }
    let boot = strata_paxos::Ready {
        membership: Some(m.clone()),
        ..Default::default()
    };
    storage
        .persist(&boot)
        .map_err(|e| RunError::Node(e.to_string()))?;
    tracing::info!(member, version = m.version, voters = ?m.voters, "joining: waiting to be added");
    Ok(m)
}

/// Checks a replica's `--id`, `--peers`, `--listen` and `--tick-ms`: returns the peers by id
/// and the address to listen on (its own address in `--peers` unless `--listen` says).
pub fn peers_and_listen(
    id: ReplicaId,
    peers: &[(ReplicaId, String)],
    listen: Option<&str>,
    tick_ms: u64,
) -> Result<(BTreeMap<ReplicaId, String>, String), RunError> {
    let map: BTreeMap<ReplicaId, String> = peers.iter().cloned().collect();
    if map.len() != peers.len() {
        return Err(RunError::Args(
            "a replica id is listed twice in --peers".into(),
        ));
    }
    let Some(own_address) = map.get(&id) else {
        return Err(RunError::Args(format!(
            "--id {id} is not one of the --peers"
        )));
    };
    if tick_ms == 0 {
        return Err(RunError::Args("--tick-ms must be at least 1".into()));
    }
    let listen = listen.map_or_else(|| own_address.clone(), str::to_owned);
    Ok((map, listen))
}

/// Parses one `id=host:port` peer of a `--peers` list.
pub fn parse_peer(s: &str) -> Result<(ReplicaId, String), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("peer `{s}` is not `id=host:port`"))?;
    let id = id
        .trim()
        .parse()
        .map_err(|e| format!("peer `{s}`: bad id: {e}"))?;
    let addr = addr.trim();
    if addr.is_empty() {
        return Err(format!("peer `{s}` has an empty address"));
    }
    Ok((id, addr.to_owned()))
}

/// A future that resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called (inside a tokio runtime), not when the future is first polled, so a signal that
/// arrives while the server is still starting is not lost (nor kills the process).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            },
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM/SIGINT");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The connections a server process admits on `listener` (see [`crate::listener`]): first
/// raises the soft open-file limit to the hard one and says so, then caps connections at
/// `max_connections` (and below the open-file limit), with the default handshake deadline
/// and idle timeout.
pub fn admitted_connections(
    listener: tokio::net::TcpListener,
    max_connections: usize,
    security: strata_rpc::tls::Security,
    refused: prometheus_client::metrics::counter::Counter,
) -> impl tonic::codegen::tokio_stream::Stream<Item = std::io::Result<crate::listener::Accepted>>
       + Send
       + 'static {
    match crate::listener::raise_open_files_limit() {
        Ok((before, after)) if after > before => {
            tracing::info!(before, after, "raised the soft open-file limit")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    let limits = crate::listener::ConnectionLimits {
        max_connections,
        ..Default::default()
    };
    tracing::info!(
        max_connections = limits.effective_max(),
        handshake_timeout = ?limits.handshake_timeout,
        idle_timeout = ?limits.idle_timeout,
        "connection limits"
    );
    crate::listener::incoming(listener, limits, security, refused)
}

/// Allocations of this size and above are mapped, and unmapped when freed.
const MMAP_THRESHOLD: i32 = 4 << 20;

/// Tunes the C allocator for a server that moves values of up to 16 MiB: glibc raises its
/// mmap threshold to 32 MiB after the first large free, so from then on every freed value
/// buffer stays in the heap, fragmented across arenas, and a replica writing 15 MiB values
/// holds twice the memory it uses. A fixed threshold returns large buffers to the system as
/// soon as they are freed. Call once at start, before other threads allocate.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; no memory is touched.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// A seed for election-timeout randomness that differs between replicas and restarts.
pub fn election_seed(id: ReplicaId) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse() {
        assert_eq!(parse_peer("3=h:1").unwrap(), (3, "h:1".to_string()));
        assert!(parse_peer("3").is_err());
        assert!(parse_peer("x=h:1").is_err());
        assert!(parse_peer("3=").is_err());
    }
}
