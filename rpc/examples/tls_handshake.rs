//! What a new mutual-TLS connection costs, on loopback: TCP connect plus the TLS 1.3
//! handshake with client certificates, as `strata_rpc::tls` makes and accepts them, against a
//! plain TCP connect.
//!
//! ```text
//! cargo run --release -p strata-rpc --example tls_handshake -- [CONNECTIONS]
//! ```
//!
//! Client and server run on one thread, so a handshake's time is the CPU both ends spend on
//! it (ECDHE and ECDSA P-256 signatures each way). Every handshake is a full one: each
//! connection is dropped as soon as it is up, before the server's session ticket is read, so
//! nothing is resumed. Strata's clients and peers keep their connections open: this is paid
//! per connection, not per request.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use strata_rpc::tls::{Tls, TlsPaths};

fn issue(
    dir: &std::path::Path,
    name: &str,
    uri: &str,
    ca: &rcgen::Issuer<'_, rcgen::KeyPair>,
) -> TlsPaths {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![
        rcgen::SanType::URI(uri.try_into().unwrap()),
        rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()),
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, ca).unwrap();
    let paths = TlsPaths {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&paths.cert, cert.pem()).unwrap();
    std::fs::write(&paths.key, key.serialize_pem()).unwrap();
    paths
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{what:<34} n={:<5} p50 {:>8.1} µs  p99 {:>8.1} µs",
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server = Tls::load(issue(dir.path(), "server", "strata://node/1/1", &issuer)).unwrap();
    let client = Tls::load(issue(
        dir.path(),
        "client",
        "strata://client/bench",
        &issuer,
    ))
    .unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let tls_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_address: SocketAddr = tls_listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        tokio::spawn(async move {
            while let Ok((stream, _)) = tls_listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let _ = server.accept(stream).await;
                });
            }
        });
        let mut plain = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let stream = tokio::net::TcpStream::connect(address).await.unwrap();
            plain.push(started.elapsed());
            drop(stream);
        }
        let uri: tonic::transport::Uri = format!("http://{tls_address}").parse().unwrap();
        let started = Instant::now();
        let first = client.connect(&uri).await.expect("the TLS handshake");
        let full = started.elapsed();
        drop(first);
        let mut handshakes = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let stream = client.connect(&uri).await.expect("the TLS handshake");
            handshakes.push(started.elapsed());
            drop(stream);
        }
        report("TCP connect", plain);
        println!(
            "{:<34} n=1     {:>13.1} µs",
            "TCP + TLS 1.3, first handshake",
            full.as_secs_f64() * 1e6
        );
        report("TCP + TLS 1.3 handshake", handshakes);
    });
}
