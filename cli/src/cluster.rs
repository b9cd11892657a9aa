//! What every client command shares to reach a cluster: the clients built from the global
//! options with `--timeout` as their deadline, the quick `NodeStatus` probe of one process,
//! and how the client libraries' errors read as one line.

use std::future::Future;
use std::time::Duration;

use strata_client::{
    Client, ClientError, ClientOptions, KvError, MasterClient, MasterClientOptions,
};
use strata_rpc::tls::Security;
use strata_rpc::v1;

use crate::cli::Global;
use crate::error::{CliError, CliResult};

/// Longest a status probe of one process waits (less when `--timeout` is shorter): a dead
/// process shows as unreachable at once, a live one answers in milliseconds.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// One RPC's deadline: `--timeout`, at most 3 s (a request retries other replicas within
/// `--timeout`).
fn rpc_timeout(global: &Global) -> Duration {
    global.timeout.min(Duration::from_secs(3))
}

/// A key-value client of the cluster: fetches the latest configuration, within `--timeout`.
pub async fn kv_client(global: &Global, scan_page: u32) -> CliResult<Client> {
    let masters = global.master_addresses()?;
    let options = kv_client_options(global, global.security()?, scan_page);
    within(global, Client::connect_with(masters, options))
        .await?
        .map_err(kv_error)
}

/// The options of a key-value client whose requests give up after `--timeout`.
pub fn kv_client_options(global: &Global, security: Security, scan_page: u32) -> ClientOptions {
    ClientOptions {
        rpc_timeout: rpc_timeout(global),
        request_timeout: global.timeout,
        scan_page: scan_page.max(1),
        security,
        ..ClientOptions::default()
    }
}

/// A client of the shard master, whose requests give up after `--timeout`.
pub fn master_client(global: &Global) -> CliResult<MasterClient> {
    let masters = global.master_addresses()?;
    Ok(MasterClient::with_options(
        masters,
        MasterClientOptions {
            rpc_timeout: rpc_timeout(global),
            request_timeout: global.timeout,
            security: global.security()?,
            ..MasterClientOptions::default()
        },
    ))
}

/// Runs `work`, failing if it is not done within `--timeout` and a second of grace (the
/// clients keep their own deadlines; this is the backstop that no command outlives).
pub async fn within<T>(global: &Global, work: impl Future<Output = T>) -> CliResult<T> {
    let limit = global.timeout + Duration::from_secs(1);
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| CliError::failed(format!("no answer from the cluster within {limit:?}")))
}

/// A key-value client's error as one line.
pub fn kv_error(e: KvError) -> CliError {
    match e {
        KvError::Timeout { deadline, last } => CliError::failed(format!(
            "no answer from the cluster within {deadline:?} (last error: {last})"
        )),
        KvError::InvalidArgument(message) => {
            CliError::failed(format!("refused by the cluster: {message}"))
        }
        e => CliError::failed(e),
    }
}

/// The shard master client's error as one line.
pub fn master_error(e: ClientError) -> CliError {
    match e {
        ClientError::Timeout { deadline, last } => CliError::failed(format!(
            "no answer from the shard master within {deadline:?} (last error: {last})"
        )),
        e => CliError::failed(e),
    }
}

/// The `NodeStatus` of the process at `address`, or why it did not answer within `timeout`
/// (connecting included).
pub async fn probe(
    security: &Security,
    address: &str,
    timeout: Duration,
) -> Result<v1::StatusResponse, String> {
    strata_rpc::probe::node_status(security, address, timeout).await
}

/// The probe deadline for this command: [`PROBE_TIMEOUT`], or `--timeout` if shorter.
pub fn probe_timeout(global: &Global) -> Duration {
    global.timeout.min(PROBE_TIMEOUT)
}

/// Runs `tasks` concurrently (each on its own tokio task) and returns their outputs in order.
pub async fn concurrently<T, F>(tasks: Vec<F>) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let n = tasks.len();
    for (i, task) in tasks.into_iter().enumerate() {
        set.spawn(async move { (i, task.await) });
    }
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, value)) = joined {
            out[i] = Some(value);
        }
    }
    // A task panicking is a bug in this crate, not the cluster's doing.
    out.into_iter()
        .map(|v| v.expect("a probe task panicked"))
        .collect()
}
