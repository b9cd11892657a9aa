//! A replica's HTTP endpoint (`--http-listen`), beside its gRPC server:
//!
//! - `GET /metrics`: the process's metrics, in OpenMetrics text to a scraper that asks for it
//!   (Prometheus does), in the classic Prometheus text format otherwise;
//! - `GET /health`: `200` and a small JSON body when this replica is fit to serve — its Paxos
//!   store works, its group has a leader it can reach (itself, or one it heard from within an
//!   election timeout: a follower that stops hearing its leader starts an election and knows
//!   none), its applied index is within `--health-max-lag` slots of its commit index, and the
//!   file system of its data directory has at least `--health-min-free-bytes` free; `503`
//!   with the reason otherwise (`store poisoned: <why>`, `not a member`, `no leader`,
//!   `lagging by N slots`, `disk full: N bytes free`).
//!
//! - whatever routes the service adds (`ReplicaHost::http_routes`): the master's status page at
//!   `/`.
//!
//! Unknown paths get 404, other methods than GET 405. The endpoint has its own listener and
//! tasks: a slow or silent HTTP client holds nothing the gRPC service needs.
//!
//! Served with axum (the HTTP stack tonic is built on) over HTTP/1.1.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::node::NodeStatus;

/// What the endpoint reads: the metrics registry and the node's latest status.
#[derive(Clone)]
pub struct HttpState {
    /// The process's metrics.
    pub registry: Arc<Registry>,
    /// The node's status now.
    pub status: Arc<dyn Fn() -> NodeStatus + Send + Sync>,
    /// The replica's data directory (whose file system must not be full).
    pub data_dir: PathBuf,
    /// What a healthy replica stays within.
    pub limits: HealthLimits,
}

/// What a healthy replica stays within.
#[derive(Debug, Clone, Copy)]
pub struct HealthLimits {
    /// Most slots the applied index may trail the commit index.
    pub max_lag: u64,
    /// Fewest bytes free (for this process) on the data directory's file system.
    pub min_free_bytes: u64,
}

/// The endpoint's routes.
pub fn router(state: HttpState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(state)
}

/// OpenMetrics to a reader that asks for it (Prometheus does), the classic text format
/// otherwise.
async fn metrics(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let accepts_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if accepts_openmetrics {
        let body = crate::metrics::encode(&state.registry);
        let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        ([(header::CONTENT_TYPE, kind)], body).into_response()
    } else {
        let body = crate::metrics::encode_classic(&state.registry);
        let kind = "text/plain; version=0.0.4; charset=utf-8";
        ([(header::CONTENT_TYPE, kind)], body).into_response()
    }
}

async fn health(State(state): State<HttpState>) -> Response {
    let status = (state.status)();
    let free = free_bytes(&state.data_dir);
    let verdict = verdict(&status, free, state.limits);
    let code = if verdict.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "healthy": verdict.is_ok(),
        "reason": verdict.err(),
        "replica": status.id,
        "role": status.role,
        "leader": status.leader,
        "commit_index": status.commit_index,
        "applied_index": status.applied_index,
        "free_bytes": free,
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string() + "\n",
    )
        .into_response()
}

/// Bytes available to this (unprivileged) process on the file system of `dir`; `None` if
/// it cannot be asked.
pub fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a NUL-terminated string and `stat` a writable struct of the right
    // type; statvfs only writes into it.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Whether a replica with `status`, `free` bytes left on its disk, is healthy; the reason
/// when not.
pub fn verdict(status: &NodeStatus, free: Option<u64>, limits: HealthLimits) -> Result<(), String> {
    if status.role == "stopped" {
        let why = status.last_error.as_deref().unwrap_or("a write failed");
        return Err(format!("store poisoned: {why}"));
    }
    if let Some(free) = free.filter(|&f| f < limits.min_free_bytes) {
        return Err(format!(
            "disk full: {free} bytes free, below {}",
            limits.min_free_bytes
        ));
    }
    if status.role.is_empty() {
        return Err("starting".into());
    }
    if status.not_member {
        return Err("not a member of its group (removed, or joined and not added yet)".into());
    }
    if status.leader.is_none() {
        return Err(format!("no leader (this replica is a {})", status.role));
    }
    let lag = status.commit_index.saturating_sub(status.applied_index);
    if lag > limits.max_lag {
        return Err(format!(
            "lagging by {lag} slots (applied {} of {})",
            status.applied_index, status.commit_index
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(role: &str, leader: Option<u64>, commit: u64, applied: u64) -> NodeStatus {
        NodeStatus {
            id: 1,
            role: role.into(),
            leader,
            commit_index: commit,
            applied_index: applied,
            ..NodeStatus::default()
        }
    }

    const LIMITS: HealthLimits = HealthLimits {
        max_lag: 10,
        min_free_bytes: 1000,
    };

    #[test]
    fn healthy_needs_a_leader_a_small_lag_and_free_space() {
        let roomy = Some(1 << 30);
        let healthy = |s: &NodeStatus| verdict(s, roomy, LIMITS);
        assert_eq!(healthy(&status("follower", Some(2), 100, 100)), Ok(()));
        assert_eq!(healthy(&status("leader", Some(1), 100, 95)), Ok(()));
        let e = healthy(&status("candidate", None, 100, 100)).unwrap_err();
        assert!(e.starts_with("no leader"), "{e}");
        let e = healthy(&status("follower", Some(2), 100, 50)).unwrap_err();
        assert!(e.starts_with("lagging by 50 slots"), "{e}");
        let mut stopped = status("stopped", None, 100, 100);
        stopped.last_error = Some("log write failed: No space left on device".into());
        let e = healthy(&stopped).unwrap_err();
        assert_eq!(
            e,
            "store poisoned: log write failed: No space left on device"
        );
        let full = verdict(&status("leader", Some(1), 100, 100), Some(999), LIMITS);
        assert_eq!(full.unwrap_err(), "disk full: 999 bytes free, below 1000");
        let mut removed = status("follower", Some(2), 100, 100);
        removed.not_member = true;
        let e = healthy(&removed).unwrap_err();
        assert!(e.starts_with("not a member"), "{e}");
        // A file system that cannot be asked is not taken for a full one.
        let unknown = verdict(&status("leader", Some(1), 100, 100), None, LIMITS);
        assert_eq!(unknown, Ok(()));
    }

    #[test]
    fn free_bytes_of_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).is_some_and(|f| f > 0));
        assert_eq!(free_bytes(&dir.path().join("missing")), None);
    }
}
