//! Asking any Strata process for its `NodeStatus` with a hard deadline: what `strata status`,
//! the master's status page and the test harness use to tell a live process from a dead or
//! frozen one without hanging on it.

use std::time::Duration;

use crate::tls::Security;
use crate::v1;

/// The `NodeStatus` of the process at `address` (`host:port`), or why it did not answer within
/// `timeout` (connecting included: a frozen process accepts TCP but never speaks HTTP/2).
/// Connects as `security` says.
pub async fn node_status(
    security: &Security,
    address: &str,
    timeout: Duration,
) -> Result<v1::StatusResponse, String> {
    let endpoint = (security.endpoint(address))
        .map_err(|e| format!("bad address: {e}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let ask = async {
        let channel = (security.connect(endpoint).await).map_err(|e| root_cause(&e))?;
        let mut client = crate::limits::node_status_client(channel);
        client
            .status(v1::StatusRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| match s.code() {
                // The client's own deadline (`Endpoint::timeout`) ends the call as cancelled.
                tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => {
                    format!("no answer within {timeout:?}")
                }
                code => format!("{code:?}: {}", s.message()),
            })
    };
    tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// A `StatusResponse.role`'s name: `leader`, `candidate`, `follower`, or `stopped` (a node
/// whose Paxos storage failed reports no role).
pub fn role_name(role: i32) -> &'static str {
    match v1::Role::try_from(role) {
        Ok(v1::Role::Leader) => "leader",
        Ok(v1::Role::Candidate) => "candidate",
        Ok(v1::Role::Follower) => "follower",
        _ => "stopped",
    }
}

/// An error's innermost cause ("connection refused" rather than "transport error").
pub fn root_cause(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message = s.to_string();
        source = s.source();
    }
    message
}
