//! An unreliable network, in process, for tests (`--chaos-percent`): like the 6.824 labrpc
//! "unreliable" mode, a share of requests are dropped before they run, a share of replies are
//! lost after the request ran, and others are delayed (so they overtake each other). Applied
//! to client requests and to shard migration (pulls are also cut off mid-stream).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::NamedService;
use tonic::Status;

/// Drops and delays with a given probability.
#[derive(Debug)]
pub struct Chaos {
    percent: u64,
    state: AtomicU64,
}

impl Chaos {
    /// Drops about `percent`% of requests and as many replies; delays about as many more.
    pub fn new(percent: u32) -> Chaos {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Chaos {
            percent: u64::from(percent.min(100)),
            state: AtomicU64::new(seed),
        }
    }

    /// A pseudo-random number (splitmix64 over a shared counter).
    fn next(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `percent`%.
    pub fn roll(&self) -> bool {
        self.next() % 100 < self.percent
    }

    /// Before a request runs: maybe drop it, maybe delay it.
    pub async fn before(&self) -> Result<(), Status> {
        if self.roll() {
            return Err(Status::unavailable("chaos: request dropped"));
        }
        if self.roll() {
            let ms = self.next() % 100;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(())
    }

    /// After a request ran: maybe lose its reply.
    pub fn after<T>(&self, result: Result<T, Status>) -> Result<T, Status> {
        if result.is_ok() && self.roll() {
            return Err(Status::unavailable("chaos: reply lost"));
        }
        result
    }
}

/// A gRPC service behind the unreliable network: every call may be dropped or delayed before
/// it reaches the service, and its reply lost after it ran ([`Chaos::before`],
/// [`Chaos::after`]). Without chaos it passes calls straight through. One layer for every
/// handler of the services it wraps, instead of a wrapper in each.
#[derive(Clone)]
pub struct Chaotic<S> {
    inner: S,
    chaos: Option<Arc<Chaos>>,
}

impl<S> Chaotic<S> {
    /// `inner` behind `chaos` (none: unchanged).
    pub fn new(inner: S, chaos: Option<Arc<Chaos>>) -> Chaotic<S> {
        Chaotic { inner, chaos }
    }
}

impl<S: NamedService> NamedService for Chaotic<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Chaotic<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Some(chaos) = self.chaos.clone() else {
            return Box::pin(self.inner.call(request));
        };
        // The clone that was made ready is the one that serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            if let Err(status) = chaos.before().await {
                return Ok(status.into_http());
            }
            let response = inner.call(request).await?;
            Ok(chaos.after(Ok(response)).unwrap_or_else(Status::into_http))
        })
    }
}
