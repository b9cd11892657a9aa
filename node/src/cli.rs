//! What the server binaries built on a node share: parsing `--peers` and waiting for the
//! signal to shut down, and how they fail.

use strata_paxos::ReplicaId;

use std::path::PathBuf;

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

/// Checks a replica's `--id`, `--peers`, `--listen` and `--tick-ms`: returns the peers by id
/// and the address to listen on (its own address in `--peers` unless `--listen` says).
pub fn peers_and_listen(
    id: ReplicaId,
    peers: &[(ReplicaId, String)],
    listen: Option<&str>,
    tick_ms: u64,
) -> Result<(std::collections::BTreeMap<ReplicaId, String>, String), RunError> {
    let map: std::collections::BTreeMap<ReplicaId, String> = peers.iter().cloned().collect();
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
) -> impl tonic::codegen::tokio_stream::Stream<Item = std::io::Result<crate::listener::Conn>>
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
    crate::listener::incoming(listener, limits)
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
