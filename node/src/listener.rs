//! Connection admission for every server process: what a flood of connections — idle,
//! never speaking, or simply too many — can cost, and how real clients keep being served.
//!
//! - **Open files.** [`raise_open_files_limit`] lifts the soft `RLIMIT_NOFILE` to the hard one
//!   at start (a 1,024 soft limit is common and was enough to take a server down).
//! - **A bounded number of connections**, kept well below the open-file limit
//!   ([`ConnectionLimits::effective_max`]); the Paxos log, the engine and outgoing peer
//!   connections need descriptors too.
//! - **A handshake deadline.** A connection must send its first bytes within
//!   `handshake_timeout`, or it is closed before the HTTP/2 server ever sees it.
//! - **An idle timeout.** A connection on which the peer sent nothing for `idle_timeout` is
//!   closed. Only bytes *from the peer* count, so the server sends no HTTP/2 keepalive pings of
//!   its own (their acknowledgements would make every connection look busy); a peer that died
//!   without closing is found by TCP keepalive (probes after 60 s idle) or, at the latest, by
//!   the idle timeout. A client that wants to keep an idle connection sends HTTP/2 pings.
//! - **Eviction instead of refusal.** When a new connection arrives at the limit, the oldest
//!   connection that has not spoken yet is closed to make room, else the one that has been
//!   silent longest: a flood of idle connections displaces itself, never the clients that
//!   talk.
//!
//! - **TLS** (with [`Security::Tls`]): the handshake, which requires a client certificate
//!   from the cluster's CA, must finish within the handshake deadline too; a connection that
//!   fails it (plaintext, a stranger's or an expired certificate) is closed, logged with its
//!   address and counted, before the HTTP/2 server sees it. Every request then carries the
//!   client's [`PeerInfo`] (its certificate's identity) for the services to authorize.
//!
//! [`incoming`] turns a listener into the stream of admitted connections that tonic's
//! `serve_with_incoming*` takes.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use strata_rpc::tls::{PeerInfo, Security};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::tokio_stream::{Stream, StreamExt};
use tonic::transport::server::Connected;

/// What a server admits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most open client and peer connections (further capped by the open-file limit).
    pub max_connections: usize,
    /// A new connection must send its first bytes within this.
    pub handshake_timeout: Duration,
    /// A connection whose peer sent nothing for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Descriptors kept for everything but client connections (log, tables, peers).
const RESERVED_FILES: u64 = 256;

impl ConnectionLimits {
    /// `max_connections`, lowered to three quarters of what the soft open-file limit leaves
    /// after 256 descriptors kept for the log, tables and peers (at least 16).
    pub fn effective_max(&self) -> usize {
        let soft = open_files_limit().map_or(1024, |(soft, _)| soft);
        let by_files = (soft.saturating_sub(RESERVED_FILES) * 3 / 4).max(16);
        self.max_connections
            .min(usize::try_from(by_files).unwrap_or(usize::MAX))
            .max(1)
    }
}

/// The soft and hard `RLIMIT_NOFILE`.
pub fn open_files_limit() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then_some((limit.rlim_cur, limit.rlim_max))
}

/// Raises the soft open-file limit to the hard one; returns `(before, after)`.
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    let (soft, hard) = open_files_limit().ok_or_else(io::Error::last_os_error)?;
    if soft >= hard {
        return Ok((soft, soft));
    }
    let limit = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one rlimit we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((soft, hard))
}

/// Milliseconds since the registry started, for "last heard from" stamps.
fn millis(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One open connection as the registry sees it.
struct Slot {
    /// It has sent its first bytes (it was handed to the HTTP/2 server).
    spoke: bool,
    /// When its peer last sent bytes (registry milliseconds).
    heard: Arc<AtomicU64>,
    /// Told to close (eviction).
    close: Arc<Notify>,
}

/// The open connections, by admission order (so the first entry is the oldest).
/// Invariant: an entry exists exactly while its connection is open; its [`SlotGuard`]
/// removes it.
struct Registry {
    start: Instant,
    next: u64,
    slots: BTreeMap<u64, Slot>,
}

impl Registry {
    /// Picks the connection to close for a newcomer: the oldest that never spoke, else the
    /// one silent longest.
    fn evict(&mut self) {
        let victim = self
            .slots
            .iter()
            .find(|(_, s)| !s.spoke)
            .or_else(|| {
                self.slots
                    .iter()
                    .min_by_key(|(_, s)| s.heard.load(Ordering::Relaxed))
            })
            .map(|(&id, _)| id);
        if let Some(id) = victim {
            if let Some(slot) = self.slots.remove(&id) {
                slot.close.notify_one();
            }
        }
    }
}

/// Removes a connection's registry entry when the connection is dropped.
struct SlotGuard {
    registry: Arc<Mutex<Registry>>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.registry.lock().slots.remove(&self.id);
    }
}

/// An admitted connection: a TCP stream that closes itself when its peer stays silent for
/// the idle timeout, or when it is evicted.
pub struct Conn {
    io: TcpStream,
    idle_timeout: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
    heard: Arc<AtomicU64>,
    start: Instant,
    closed: Pin<Box<tokio::sync::futures::OwnedNotified>>,
    _slot: SlotGuard,
}

/// A connection handed to the server: as admitted, or after its TLS handshake.
pub enum Accepted {
    /// A plaintext connection.
    Plain(Conn),
    /// A TLS connection and who the client is.
    Tls(Box<tokio_rustls::server::TlsStream<Conn>>, PeerInfo),
}

impl Connected for Accepted {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        match self {
            Accepted::Plain(conn) => PeerInfo {
                remote: conn.io.peer_addr().ok(),
                identity: None,
            },
            Accepted::Tls(_, peer) => peer.clone(),
        }
    }
}

impl AsyncRead for Accepted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Plain(c) => Pin::new(c).poll_read(cx, buf),
            Accepted::Tls(t, _) => Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Accepted::Plain(c) => Pin::new(c).poll_write(cx, buf),
            Accepted::Tls(t, _) => Pin::new(t.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Plain(c) => Pin::new(c).poll_flush(cx),
            Accepted::Tls(t, _) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Plain(c) => Pin::new(c).poll_shutdown(cx),
            Accepted::Tls(t, _) => Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Accepted::Plain(c) => Pin::new(c).poll_write_vectored(cx, bufs),
            Accepted::Tls(t, _) => Pin::new(t.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Accepted::Plain(c) => c.is_write_vectored(),
            Accepted::Tls(t, _) => t.is_write_vectored(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.closed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(())); // evicted: end of stream
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let deadline = tokio::time::Instant::now() + self.idle_timeout;
                    self.idle.as_mut().reset(deadline);
                    let now = millis(self.start);
                    self.heard.store(now, Ordering::Relaxed);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The admitted connections of `listener`, for `serve_with_incoming*`, in plaintext or
/// after a TLS handshake as `security` says; `refused` counts failed handshakes. Spawns the
/// accept loop on the current tokio runtime; it ends when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    security: Security,
    refused: Counter,
) -> impl Stream<Item = io::Result<Accepted>> + Send + 'static {
    let max = limits.effective_max();
    let (tx, rx) = mpsc::channel(64);
    let registry = Arc::new(Mutex::new(Registry {
        start: Instant::now(),
        next: 0,
        slots: BTreeMap::new(),
    }));
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let stream = match stream {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, or the peer gave up before we accepted: wait a
                    // little (eviction frees descriptors) rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(
                &socket2::TcpKeepalive::new()
                    .with_time(Duration::from_secs(60))
                    .with_interval(Duration::from_secs(10)),
            );
            let (id, heard, close, start) = {
                let mut r = registry.lock();
                while r.slots.len() >= max {
                    r.evict();
                }
                let id = r.next;
                r.next += 1;
                let heard = Arc::new(AtomicU64::new(millis(r.start)));
                let close = Arc::new(Notify::new());
                let slot = Slot {
                    spoke: false,
                    heard: heard.clone(),
                    close: close.clone(),
                };
                r.slots.insert(id, slot);
                (id, heard, close, r.start)
            };
            let guard = SlotGuard {
                registry: registry.clone(),
                id,
            };
            let (tx, registry) = (tx.clone(), registry.clone());
            let (security, refused) = (security.clone(), refused.clone());
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                let spoke = tokio::select! {
                    r = tokio::time::timeout(limits.handshake_timeout, stream.peek(&mut first)) => {
                        matches!(r, Ok(Ok(n)) if n > 0)
                    }
                    () = close.clone().notified_owned() => false,
                };
                if !spoke {
                    return; // never spoke, or evicted: dropping the stream closes it
                }
                match registry.lock().slots.get_mut(&id) {
                    Some(slot) => slot.spoke = true,
                    None => return, // evicted meanwhile
                }
                heard.store(millis(start), Ordering::Relaxed);
                let conn = Conn {
                    io: stream,
                    idle_timeout: limits.idle_timeout,
                    idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
                    heard,
                    start,
                    closed: Box::pin(close.notified_owned()),
                    _slot: guard,
                };
                let accepted = match &security {
                    Security::Plaintext => Accepted::Plain(conn),
                    Security::Tls(tls) => {
                        let remote = conn.io.peer_addr().ok();
                        let handshake = tls.accept(conn);
                        match tokio::time::timeout(limits.handshake_timeout, handshake).await {
                            Ok(Ok((stream, identity))) => {
                                let identity = Some(identity);
                                Accepted::Tls(Box::new(stream), PeerInfo { remote, identity })
                            }
                            Ok(Err(e)) => {
                                refused.inc();
                                tracing::info!(?remote, error = %e, "TLS handshake refused");
                                return;
                            }
                            Err(_) => {
                                refused.inc();
                                tracing::info!(?remote, "TLS handshake timed out");
                                return;
                            }
                        }
                    }
                };
                let _ = tx.send(accepted).await;
            });
        }
    });
    ReceiverStream::new(rx).map(Ok)
}
