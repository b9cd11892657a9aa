//! A replica's HTTP endpoint (`--http-listen`), beside its gRPC server:
//!
//! - `GET /metrics`: the process's metrics, in OpenMetrics text to a scraper that asks for it
//!   (Prometheus does), in the classic Prometheus text format otherwise;
//! - `GET /health`: `200` and a small JSON body when this replica is fit to serve — its group
//!   has a leader it can reach (itself, or one it heard from within an election timeout: a
//!   follower that stops hearing its leader starts an election and knows none), and its
//!   applied index is within `--health-max-lag` slots of its commit index; `503` with the
//!   reason otherwise (`no leader`, `lagging by N slots`, `stopped: <why>`).
//!
//! - whatever routes the service adds (`ReplicaHost::http_routes`): the master's status page at
//!   `/`.
//!
//! Unknown paths get 404, other methods than GET 405. The endpoint has its own listener and
//! tasks: a slow or silent HTTP client holds nothing the gRPC service needs.
//!
//! Served with axum (the HTTP stack tonic is built on) over HTTP/1.1.

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
    /// Most slots the applied index may trail the commit index on a healthy replica.
    pub max_lag: u64,
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
    let verdict = verdict(&status, state.max_lag);
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
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string() + "\n",
    )
        .into_response()
}

/// Whether a replica with `status` is healthy; the reason when not.
pub fn verdict(status: &NodeStatus, max_lag: u64) -> Result<(), String> {
    if status.role == "stopped" {
        return Err("stopped: its Paxos storage failed".into());
    }
    if status.role.is_empty() {
        return Err("starting".into());
    }
    if status.leader.is_none() {
        return Err(format!("no leader (this replica is a {})", status.role));
    }
    let lag = status.commit_index.saturating_sub(status.applied_index);
    if lag > max_lag {
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

    #[test]
    fn healthy_needs_a_leader_and_a_small_lag() {
        assert_eq!(verdict(&status("follower", Some(2), 100, 100), 10), Ok(()));
        assert_eq!(verdict(&status("leader", Some(1), 100, 95), 10), Ok(()));
        let e = verdict(&status("candidate", None, 100, 100), 10).unwrap_err();
        assert!(e.starts_with("no leader"), "{e}");
        let e = verdict(&status("follower", Some(2), 100, 50), 10).unwrap_err();
        assert!(e.starts_with("lagging by 50 slots"), "{e}");
        let e = verdict(&status("stopped", None, 100, 100), 10).unwrap_err();
        assert!(e.starts_with("stopped"), "{e}");
    }
}
