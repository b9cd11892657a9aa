//! `strata_rpc_duration_seconds{method,code}`: a histogram of every gRPC request a process
//! serves, by method and status code, measured by a tower layer around the whole tonic server
//! (each service of the process, the Paxos peer and status services included).
//!
//! The code is the `grpc-status` of the response headers: tonic puts an error status there
//! (a "trailers-only" response), and a successful unary response carries its `OK` in the
//! trailers, so a response without one in its headers counts as `OK`. Paths the server does
//! not serve are counted under `method="unknown"`, so that nobody can grow the label set by
//! sending made-up paths. A stream's duration is until its response headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The labels of `strata_rpc_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// `package.Service/Method`, or `unknown`.
    pub method: String,
    /// The gRPC status code's name (`OK`, `UNAVAILABLE`, ...).
    pub code: &'static str,
}

type Durations = Family<RpcLabels, Histogram, fn() -> Histogram>;

fn new_histogram() -> Histogram {
    // 50 µs to about 3.3 s, doubling.
    Histogram::new(exponential_buckets(0.00005, 2.0, 17))
}

/// The layer: add it to the tonic server; [`RpcMetricsLayer::register`] exposes its figures.
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    durations: Durations,
}

impl Default for RpcMetricsLayer {
    fn default() -> Self {
        RpcMetricsLayer {
            durations: Family::new_with_constructor(new_histogram),
        }
    }
}

impl RpcMetricsLayer {
    /// Registers `strata_rpc_duration_seconds` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "strata_rpc_duration_seconds",
            "Seconds to serve a gRPC request, by method and status code",
            self.durations.clone(),
        );
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics {
            inner,
            durations: self.durations.clone(),
        }
    }
}

/// The service the layer wraps around the server's.
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    durations: Durations,
}

/// The name of a gRPC status code, as Prometheus users know them.
fn code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|c| NAMES.get(c))
        .copied()
        .unwrap_or("UNKNOWN")
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let path = request.uri().path().trim_start_matches('/').to_string();
        let durations = self.durations.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            let code = match &response {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok()?.parse::<i32>().ok())
                    .unwrap_or(0),
                Err(_) => 2, // the transport failed: UNKNOWN
            };
            let method = if code == 12 {
                "unknown".to_string()
            } else {
                path
            };
            let labels = RpcLabels {
                method,
                code: code_name(code),
            };
            let seconds = started.elapsed().as_secs_f64();
            durations.get_or_create(&labels).observe(seconds);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_their_grpc_names() {
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(14), "UNAVAILABLE");
        assert_eq!(code_name(16), "UNAUTHENTICATED");
        assert_eq!(code_name(99), "UNKNOWN");
        assert_eq!(code_name(-1), "UNKNOWN");
    }
}
