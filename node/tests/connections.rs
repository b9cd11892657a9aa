//! Connection admission (`strata_node::listener`) over a real tonic server on 127.0.0.1: a
//! flood of connections that never speak, or speak once and fall silent, costs bounded
//! descriptors and never keeps a real client from being served (issue 12, case 7).

use std::time::{Duration, Instant};

use strata_node::listener::{incoming, ConnectionLimits};
use strata_rpc::{limits, v1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::{Request, Response, Status};

struct Up;

#[tonic::async_trait]
impl v1::node_status_server::NodeStatus for Up {
    async fn status(
        &self,
        _: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusResponse>, Status> {
        Ok(Response::new(v1::StatusResponse {
            group_id: 7,
            ..Default::default()
        }))
    }
}

const LIMITS: ConnectionLimits = ConnectionLimits {
    max_connections: 32,
    handshake_timeout: Duration::from_millis(500),
    idle_timeout: Duration::from_secs(2),
};

async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = incoming(listener, LIMITS, Default::default(), Default::default());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(limits::node_status_server(Up))
            .serve_with_incoming(conns),
    );
    addr
}

/// A real client: a fresh connection and one call, within `deadline`.
async fn call(addr: std::net::SocketAddr, deadline: Duration) -> Result<u64, String> {
    let work = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let mut client = limits::node_status_client(channel);
        let r = client
            .status(v1::StatusRequest {})
            .await
            .map_err(|e| e.to_string())?;
        Ok(r.into_inner().group_id)
    };
    tokio::time::timeout(deadline, work)
        .await
        .map_err(|_| format!("no answer within {deadline:?}"))?
}

/// Reads until the server closes the connection; returns how long that took.
async fn until_closed(mut s: TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, closed)
        .await
        .ok()
        .map(|()| start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_never_keeps_real_clients_out() {
    let addr = serve().await;
    // Ten times the limit of connections that never send a byte.
    let mut silent = Vec::new();
    for _ in 0..10 * LIMITS.max_connections {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // Real clients keep being served while the flood stands.
    for _ in 0..5 {
        assert_eq!(call(addr, Duration::from_secs(5)).await, Ok(7));
    }
    // Every silent connection is closed by the server: evicted, or at the handshake deadline.
    for s in silent {
        assert!(
            until_closed(s, LIMITS.handshake_timeout + Duration::from_secs(5))
                .await
                .is_some(),
            "a silent connection stayed open"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_falls_silent_is_closed_after_the_idle_timeout() {
    let addr = serve().await;
    // An HTTP/2 client preface and an empty SETTINGS frame, then nothing.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let took = until_closed(s, LIMITS.idle_timeout + Duration::from_secs(5))
        .await
        .expect("the silent connection was not closed");
    assert!(
        took >= LIMITS.idle_timeout - Duration::from_millis(200),
        "closed after {took:?}, before the idle timeout"
    );
    // A connection that keeps talking is not idle: a client calling every half timeout.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = limits::node_status_client(channel);
    for _ in 0..6 {
        client.status(v1::StatusRequest {}).await.unwrap();
        tokio::time::sleep(LIMITS.idle_timeout / 2).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talking_clients_survive_a_flood_of_connections_that_spoke_once() {
    let addr = serve().await;
    // A client that keeps calling on one connection...
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut talker = limits::node_status_client(channel);
    talker.status(v1::StatusRequest {}).await.unwrap();
    // ...then many connections that complete the HTTP/2 preface and fall silent, more than
    // the limit: the silent ones are evicted, oldest silence first.
    let mut idle = Vec::new();
    for _ in 0..3 * LIMITS.max_connections {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        idle.push(s);
        talker.status(v1::StatusRequest {}).await.unwrap();
    }
    assert_eq!(call(addr, Duration::from_secs(5)).await, Ok(7));
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let (soft, hard) = strata_node::listener::open_files_limit().unwrap();
    let (before, after) = strata_node::listener::raise_open_files_limit().unwrap();
    assert_eq!(before, soft);
    assert_eq!(after, hard);
    assert_eq!(
        strata_node::listener::open_files_limit(),
        Some((hard, hard))
    );
}
