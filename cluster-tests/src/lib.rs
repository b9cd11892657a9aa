//! A local-cluster harness: real Strata processes on free 127.0.0.1 ports with temporary data
//! directories, which tests start, SIGKILL, pause (SIGSTOP), resume (SIGCONT), restart on the
//! same data and stop. Everything is killed and removed when the harness is dropped.
//!
//! The processes are the `strata` tool, built in this package as `strata-cluster`
//! (`strata-cluster master ...` is `strata master ...`), which integration tests find with
//! `env!("CARGO_BIN_EXE_strata-cluster")`, so `cargo test --workspace --release` builds and runs
//! them from a clean checkout.
//!
//! - [`process`]: one child process ([`Proc`], the `strata` launcher's, which dies with its
//!   parent): start, signals, log file.
//! - [`masters`]: [`MasterCluster`], N shard-master replicas.
//! - [`shards`]: [`ShardCluster`], a master and shard-server groups.
//! - [`linearizability`]: a checker for recorded histories of key-value operations.
//! - [`workload`]: continuous client load whose history is checked at the end.
//! - [`free_port`]: a port nothing listens on ([`free_addresses`]: several, as addresses);
//!   [`peers_arg`]: the `--peers` argument naming replicas; [`node_status_at`]: any process's
//!   `NodeStatus`.
//!
//! Process tests share the machine's cores: run them one at a time ([`serial`]).

#![warn(missing_docs)]

pub mod linearizability;
pub mod masters;
pub mod process;
pub mod shards;
pub mod tls;
pub mod workload;

pub use masters::MasterCluster;
pub use process::{test_proc, Proc};
pub use shards::{ServerGroup, ShardCluster, ShardSetup};

pub use strata_cli::launch::peers_arg;

/// A 127.0.0.1 port that was free a moment ago (see `strata_cli::launch::free_port`).
pub fn free_port() -> u16 {
    strata_cli::launch::free_port().expect("binding 127.0.0.1:0")
}

/// `n` addresses on 127.0.0.1 whose ports were free a moment ago (see [`free_port`]).
pub fn free_addresses(n: usize) -> Vec<String> {
    strata_cli::launch::free_addresses(n).expect("binding 127.0.0.1:0")
}

/// The `NodeStatus` of the process at `address`, or `None` if it does not answer within
/// 500 ms.
pub async fn node_status_at(address: &str) -> Option<strata_rpc::v1::StatusResponse> {
    let timeout = std::time::Duration::from_millis(500);
    strata_rpc::probe::node_status(&tls::security(), address, timeout)
        .await
        .ok()
}

/// A channel to `address` for a quick question: connected within 500 ms, each call limited
/// to 500 ms; `None` if the process does not answer.
pub async fn probe_channel(address: &str) -> Option<tonic::transport::Channel> {
    use std::time::Duration;
    let security = tls::security();
    let endpoint = (security.endpoint(address).ok()?)
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_millis(500));
    tokio::time::timeout(Duration::from_millis(500), security.connect(endpoint))
        .await
        .ok()?
        .ok()
}

/// Held by each process test for its whole run, so that tests of one test binary never run
/// concurrently (they start several processes each and share the cores).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
