//! `strata_rpc_duration_seconds{method,code}`: a histogram of every gRPC request a process
//! serves, by method and status code, measured by a tower layer around the whole tonic server
//! (each service of the process, the Paxos peer and status services included).
//!
//! The code is the `grpc-status` of the response headers: tonic puts an error status there
//! (a "trailers-only" response), and a successful unary response carries its `OK` in the
//! trailers, so a response without one in its headers counts as `OK`. Paths that no Strata
//! proto defines are counted under `method="unknown"`, so that nobody can grow the label set
//! by sending made-up paths. A stream's duration is until its response headers.
//!
//! Cost per request: a binary search of the path among the methods, an `Arc` clone, and the
//! histogram's two atomic adds ([`DurationHistogram`]); no lock, no allocation.
//!
//! The layer also opens the request's `tracing` span, `rpc{method=...}` at `debug` level,
//! entered whenever the handler runs: with `RUST_LOG=debug` (or `strata_node=debug`) whatever
//! the handler logs carries the method it serves; at `info` the span is disabled and free.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::histogram::{exponential_bounds, DurationHistogram};

/// gRPC status codes (0 `OK` to 16 `UNAUTHENTICATED`).
const CODES: usize = 17;

/// The histograms of one method, one per status code, created on the code's first use.
type PerCode = [OnceLock<DurationHistogram>; CODES];

/// Every method's histograms: a fixed table indexed like `methods` (the protos' methods,
/// sorted, then `unknown`), so that a request finds its histogram by a binary search over
/// `&str`s, with no lock and no allocation; the label set cannot grow past the table.
#[derive(Debug)]
struct Table {
    methods: Vec<&'static str>,
    durations: Vec<PerCode>,
}

impl Table {
    fn new(methods: &[&'static str]) -> Table {
        let mut methods = methods.to_vec();
        methods.sort_unstable();
        methods.dedup();
        methods.push("unknown");
        let durations = methods.iter().map(|_| Default::default()).collect();
        Table { methods, durations }
    }

    /// The row of `path` (`package.Service/Method`): its index, or `unknown`'s.
    fn method(&self, path: &str) -> usize {
        let known = self.methods.len() - 1;
        self.methods[..known].binary_search(&path).unwrap_or(known)
    }

    /// The histogram of row `method` answered with `code` (an unknown code counts as
    /// `UNKNOWN`).
    fn histogram(&self, method: usize, code: i32) -> &DurationHistogram {
        let code = usize::try_from(code)
            .ok()
            .filter(|&c| c < CODES)
            .unwrap_or(2);
        self.durations[method][code].get_or_init(new_histogram)
    }
}

fn new_histogram() -> DurationHistogram {
    // 50 µs to about 3.3 s, doubling.
    DurationHistogram::new(exponential_bounds(0.00005, 2.0, 17))
}

/// The layer: add it to the tonic server; [`RpcMetricsLayer::register`] exposes its figures.
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    table: Arc<Table>,
}

impl Default for RpcMetricsLayer {
    /// A layer that knows every method of the Strata protos.
    fn default() -> Self {
        RpcMetricsLayer::with_methods(strata_rpc::v1::METHODS)
    }
}

impl RpcMetricsLayer {
    /// A layer that knows `methods` (`package.Service/Method`); others count as `unknown`.
    pub fn with_methods(methods: &[&'static str]) -> RpcMetricsLayer {
        RpcMetricsLayer {
            table: Arc::new(Table::new(methods)),
        }
    }

    /// Registers `strata_rpc_duration_seconds` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(RpcDurations(self.table.clone())));
    }
}

/// Exposes the table as the family `strata_rpc_duration_seconds{method,code}`: every
/// (method, code) that was used at least once.
#[derive(Debug)]
struct RpcDurations(Arc<Table>);

impl Collector for RpcDurations {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "strata_rpc_duration_seconds",
            "Seconds to serve a gRPC request, by method and status code",
            None,
            MetricType::Histogram,
        )?;
        for (method, per_code) in self.0.methods.iter().zip(&self.0.durations) {
            for (code, histogram) in per_code.iter().enumerate() {
                if let Some(h) = histogram.get() {
                    let labels = [("method", *method), ("code", code_name(code as i32))];
                    h.encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics {
            inner,
            table: self.table.clone(),
        }
    }
}

/// The service the layer wraps around the server's.
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    table: Arc<Table>,
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
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Measured<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The histogram is found before the call, by path alone: the code is known only at
        // the end, so the method's row of the table is what the future keeps.
        let path = request.uri().path().trim_start_matches('/');
        let method = self.table.method(path);
        // At debug level: an enabled span costs an allocation (its formatted fields) per
        // request, which a server logging at `info` should not pay.
        let span = tracing::debug_span!("rpc", method = self.table.methods[method]);
        let inner = span.in_scope(|| self.inner.call(request));
        Measured {
            started: Instant::now(),
            method,
            table: self.table.clone(),
            span,
            inner,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's response future, timed: when it completes, its duration goes into
    /// the histogram of its method and status code. No allocation beyond the inner future's.
    pub struct Measured<F> {
        #[pin]
        inner: F,
        started: Instant,
        method: usize,
        table: Arc<Table>,
        span: tracing::Span,
    }
}

impl<F, R, E> Future for Measured<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let response = std::task::ready!(this.inner.poll(cx));
        let code = match &response {
            Ok(r) => r
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok()?.parse::<i32>().ok())
                .unwrap_or(0),
            Err(_) => 2, // the transport failed: UNKNOWN
        };
        this.table
            .histogram(*this.method, code)
            .observe(this.started.elapsed());
        Poll::Ready(response)
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

    #[test]
    fn requests_are_counted_by_method_and_code_and_strangers_as_unknown() {
        let layer = RpcMetricsLayer::with_methods(&["strata.v1.Kv/Put", "strata.v1.Kv/Get"]);
        let table = &layer.table;
        let get = table.method("strata.v1.Kv/Get");
        let made_up = table.method("strata.v1.Kv/Nope");
        assert_eq!(table.methods[get], "strata.v1.Kv/Get");
        assert_eq!(table.methods[made_up], "unknown");
        let tick = std::time::Duration::from_millis(1);
        table.histogram(get, 0).observe(tick);
        table.histogram(get, 0).observe(tick);
        table.histogram(get, 14).observe(tick);
        table.histogram(made_up, 99).observe(tick); // an impossible code: UNKNOWN
        let mut registry = Registry::default();
        layer.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let count = |labels: &str| {
            let line = format!("strata_rpc_duration_seconds_count{{{labels}}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(line.as_str()))
                .unwrap_or_else(|| panic!("no {line} in\n{text}"))
                .to_string()
        };
        assert_eq!(count("method=\"strata.v1.Kv/Get\",code=\"OK\""), "2");
        assert_eq!(
            count("method=\"strata.v1.Kv/Get\",code=\"UNAVAILABLE\""),
            "1"
        );
        assert_eq!(count("method=\"unknown\",code=\"UNKNOWN\""), "1");
        assert!(
            !text.contains("Kv/Put"),
            "unused methods are not exposed:\n{text}"
        );
    }

    #[test]
    fn the_handler_runs_in_the_requests_span() {
        #[derive(Clone, Default)]
        struct Lines(Arc<parking_lot::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        let handler = tower::service_fn(|_: http::Request<()>| async {
            tracing::info!("handling");
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        });
        let mut service = tower::Layer::layer(&RpcMetricsLayer::default(), handler);
        let request = http::Request::builder()
            .uri("/strata.v1.ShardKv/Put")
            .body(())
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let call = tower::Service::call(&mut service, request);
            runtime.block_on(call).unwrap();
        });
        let text = String::from_utf8(lines.0.lock().clone()).unwrap();
        assert!(
            text.contains("rpc{method=\"strata.v1.ShardKv/Put\"}: ") && text.contains("handling"),
            "{text}"
        );
    }

    #[test]
    fn the_table_knows_every_method_of_the_protos() {
        let layer = RpcMetricsLayer::default();
        for method in ["strata.v1.ShardKv/Put", "strata.v1.PaxosPeer/Send"] {
            let row = layer.table.method(method);
            assert_eq!(layer.table.methods[row], method);
        }
    }
}
