//! Mutual TLS for every Strata connection, and the identities certificates carry.
//!
//! # Identities
//!
//! Every certificate of a Strata cluster names who holds it in a subject-alternative-name URI
//! (what SPIFFE does with `spiffe://`):
//!
//! | URI | who | may |
//! |---|---|---|
//! | `strata://node/<gid>/<id>` | replica `id` of group `gid` (the shard master's group is [`MASTER_GROUP`]) | Paxos traffic within its own group, shard pulls and handoffs between groups the configuration names, queries |
//! | `strata://admin/<name>` | an operator | everything a client may, and the master's admin operations |
//! | `strata://client/<name>` | an application | key-value operations and queries |
//!
//! A node's certificate also names the hosts it serves on (IP and DNS SANs), which clients
//! check as for any TLS server. Who may call what is decided by the servers (see
//! `strata_node::auth`); this module only establishes who is calling.
//!
//! # Connections
//!
//! [`Security`] is how a process connects and accepts: [`Security::Plaintext`] (the
//! default, as before TLS existed) or [`Security::Tls`]. With TLS, a server requires a client
//! certificate signed by the cluster's CA (plaintext connections and strangers fail the
//! handshake), and a client requires the server's certificate to be signed by it and to name
//! the host dialled. Both speak HTTP/2 (ALPN `h2`).
//!
//! # Rotation
//!
//! [`Tls`] re-reads its three files (CA, certificate, key) when their modification time or
//! size changes, checked at most once per [`RELOAD_CHECK`] when a connection is made or
//! accepted: a rotated certificate is used for new connections without a restart (as TiKV
//! does). Connections already open keep the certificates they were made with. Files that do
//! not parse (caught mid-write, or wrong) are reported and the previous ones kept.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The shard master's Paxos group id: its replicas are `strata://node/0/<id>`. Shard
/// groups' gids start at 1.
pub const MASTER_GROUP: u64 = 0;

/// How often, at most, the certificate files are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Who holds a certificate (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// Replica `id` of Paxos group `gid`.
    Node {
        /// The group ([`MASTER_GROUP`] for the shard master's).
        gid: u64,
        /// The replica id within it.
        id: u64,
    },
    /// An operator.
    Admin(String),
    /// An application.
    Client(String),
}

impl Identity {
    /// Parses `strata://node/<gid>/<id>`, `strata://admin/<name>` or `strata://client/<name>`.
    pub fn parse(uri: &str) -> Option<Identity> {
        let rest = uri.strip_prefix("strata://")?;
        let (kind, rest) = rest.split_once('/')?;
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        match kind {
            "node" => {
                let (gid, id) = rest.split_once('/')?;
                let number = |s: &str| s.parse::<u64>().ok().filter(|_| !s.starts_with('+'));
                Some(Identity::Node {
                    gid: number(gid)?,
                    id: number(id)?,
                })
            }
            "admin" if name_ok(rest) => Some(Identity::Admin(rest.to_string())),
            "client" if name_ok(rest) => Some(Identity::Client(rest.to_string())),
            _ => None,
        }
    }

    /// The identity a certificate (DER) names: its first `strata://` SAN URI that parses.
    pub fn of_certificate(der: &[u8]) -> Result<Identity, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("the certificate does not parse: {e}"))?;
        let sans = cert
            .subject_alternative_name()
            .map_err(|e| format!("the certificate's alternative names do not parse: {e}"))?;
        let uris = sans.iter().flat_map(|san| san.value.general_names.iter());
        for name in uris {
            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                if let Some(identity) = Identity::parse(uri) {
                    return Ok(identity);
                }
            }
        }
        Err(
            "the certificate names no strata:// identity (a SAN URI such as strata://client/NAME)"
                .into(),
        )
    }

    /// True for an operator.
    pub fn is_admin(&self) -> bool {
        matches!(self, Identity::Admin(_))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Node { gid, id } => write!(f, "strata://node/{gid}/{id}"),
            Identity::Admin(name) => write!(f, "strata://admin/{name}"),
            Identity::Client(name) => write!(f, "strata://client/{name}"),
        }
    }
}

/// What a server knows of a connection's other end; every request carries it in its
/// extensions (`request.extensions().get::<PeerInfo>()`).
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// The remote address.
    pub remote: Option<SocketAddr>,
    /// Who it is, from its certificate; `None` on a plaintext connection.
    pub identity: Option<Identity>,
}

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The files do not make a usable configuration.
    #[error("{0}")]
    Config(String),
}

/// Where a process's TLS material is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// The cluster's CA certificate (PEM): peers must present certificates it signed.
    pub ca: PathBuf,
    /// This process's certificate chain (PEM), its own certificate first.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// Modification time and size of each of the three files.
type Stamp = [(Option<SystemTime>, u64); 3];

/// The configurations made from the files as they were at `stamp`.
struct Loaded {
    stamp: Stamp,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    identity: Identity,
}

/// A process's TLS material, re-read when it changes on disk.
pub struct Tls {
    paths: TlsPaths,
    /// The current configurations and when the files were last looked at. Held while the
    /// files are checked (three `stat`s, at most once per [`RELOAD_CHECK`]) and, when they
    /// changed, re-read: only connection set-up waits for it, never a request.
    current: Mutex<(Instant, Loaded)>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("paths", &self.paths).finish()
    }
}

impl Tls {
    /// Reads the material at `paths`, or says what is wrong with it.
    pub fn load(paths: TlsPaths) -> Result<Arc<Tls>, TlsError> {
        let loaded = build(&paths)?;
        Ok(Arc::new(Tls {
            paths,
            current: Mutex::new((Instant::now(), loaded)),
        }))
    }

    /// Who this process is, by its certificate.
    pub fn identity(&self) -> Identity {
        self.current().identity
    }

    /// The configuration for accepting a connection.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current().server
    }

    /// The configuration for making a connection.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.current().client
    }

    fn current(&self) -> Loaded {
        let mut current = self.current.lock();
        let (checked, loaded) = &mut *current;
        if checked.elapsed() >= RELOAD_CHECK {
            *checked = Instant::now();
            let stamp = stamp(&self.paths);
            if stamp != loaded.stamp {
                match build(&self.paths) {
                    Ok(new) => {
                        tracing::info!(identity = %new.identity, "TLS certificates reloaded");
                        *loaded = new;
                    }
                    Err(e) => {
                        // Keep serving with what works; look again at the next check.
                        tracing::warn!(error = %e, "TLS certificates changed but cannot be used; keeping the previous ones");
                    }
                }
            }
        }
        Loaded {
            stamp: loaded.stamp,
            server: loaded.server.clone(),
            client: loaded.client.clone(),
            identity: loaded.identity.clone(),
        }
    }

    /// Completes the server side of a handshake on `io`, requiring a client certificate from
    /// the cluster's CA; returns the stream and who the client is.
    pub async fn accept<IO>(
        &self,
        io: IO,
    ) -> io::Result<(tokio_rustls::server::TlsStream<IO>, Identity)>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.server_config());
        let stream = acceptor.accept(io).await?;
        let cert = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::PermissionDenied, "no client certificate")
            })?;
        let identity = Identity::of_certificate(cert)
            .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
        Ok((stream, identity))
    }

    /// Connects to `host:port` of `uri` and completes the client side of a handshake,
    /// checking the server's certificate against the CA and the host.
    pub async fn connect(
        &self,
        uri: &Uri,
    ) -> io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
        let host = uri.host().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: no host"))
        })?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(443);
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        let connector = tokio_rustls::TlsConnector::from(self.client_config());
        Ok(TokioIo::new(connector.connect(name, tcp).await?))
    }
}

fn stamp(paths: &TlsPaths) -> Stamp {
    let one = |p: &Path| match std::fs::metadata(p) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    };
    [one(&paths.ca), one(&paths.cert), one(&paths.key)]
}

fn file_error(path: &Path, message: impl fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn build(paths: &TlsPaths) -> Result<Loaded, TlsError> {
    let stamp = stamp(paths);
    let ca = read_certificates(&paths.ca)?;
    let chain = read_certificates(&paths.cert)?;
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(|e| file_error(&paths.key, e))?;
    let identity = Identity::of_certificate(&chain[0]).map_err(|e| file_error(&paths.cert, e))?;
    let mut roots = RootCertStore::empty();
    for cert in ca {
        roots
            .add(cert)
            .map_err(|e| file_error(&paths.ca, format!("not a usable CA certificate: {e}")))?;
    }
    let roots = Arc::new(roots);
    // ring, not aws-lc-rs: no C toolchain build on a 2-core CI machine. Its provider lacks
    // the post-quantum key exchange rustls now prefers (hence the deprecation); inside a
    // cluster whose certificates are short-lived that is a trade-off we accept for now.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = |e: rustls::Error| TlsError::Config(e.to_string());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| file_error(&paths.key, format!("does not match the certificate: {e}")))?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| file_error(&paths.key, format!("does not match the certificate: {e}")))?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Loaded {
        stamp,
        server: Arc::new(server),
        client: Arc::new(client),
        identity,
    })
}

/// How a process connects to others and accepts connections.
#[derive(Debug, Clone, Default)]
pub enum Security {
    /// No TLS: anyone who can reach a port is trusted (a closed network only).
    #[default]
    Plaintext,
    /// Mutual TLS with this material.
    Tls(Arc<Tls>),
}

impl Security {
    /// TLS from `paths`, or plaintext if `None`.
    pub fn from_paths(paths: Option<TlsPaths>) -> Result<Security, TlsError> {
        Ok(match paths {
            Some(paths) => Security::Tls(Tls::load(paths)?),
            None => Security::Plaintext,
        })
    }

    /// True with TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Security::Tls(_))
    }

    /// The endpoint of a server at `address` (`host:port`), to tune before connecting.
    pub fn endpoint(&self, address: &str) -> Result<Endpoint, tonic::transport::Error> {
        Endpoint::from_shared(format!("http://{address}"))
    }

    /// Connects `endpoint` (made by [`Security::endpoint`]) now.
    pub async fn connect(&self, endpoint: Endpoint) -> Result<Channel, tonic::transport::Error> {
        match self {
            Security::Plaintext => endpoint.connect().await,
            Security::Tls(tls) => {
                (endpoint)
                    .connect_with_connector(connector(tls.clone(), CONNECT_TIMEOUT))
                    .await
            }
        }
    }

    /// A channel to `endpoint` that connects on first use and reconnects after failures.
    pub fn connect_lazy(&self, endpoint: Endpoint) -> Channel {
        match self {
            Security::Plaintext => endpoint.connect_lazy(),
            Security::Tls(tls) => {
                endpoint.connect_with_connector_lazy(connector(tls.clone(), CONNECT_TIMEOUT))
            }
        }
    }
}

/// How long a TLS connection (TCP and handshake) may take (the endpoint's own connect
/// timeout only covers tonic's plaintext connector).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

type Connecting = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>,
            > + Send,
    >,
>;

fn connector(
    tls: Arc<Tls>,
    timeout: Duration,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    Error = io::Error,
    Future = Connecting,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |uri: Uri| -> Connecting {
        let tls = tls.clone();
        Box::pin(async move {
            match tokio::time::timeout(timeout, tls.connect(&uri)).await {
                Ok(connected) => connected,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {uri} (TLS) timed out"),
                )),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_through_their_uris() {
        for identity in [
            Identity::Node { gid: 0, id: 3 },
            Identity::Node { gid: 101, id: 1 },
            Identity::Admin("ops".into()),
            Identity::Client("app-1".into()),
        ] {
            assert_eq!(Identity::parse(&identity.to_string()), Some(identity));
        }
        for bad in [
            "strata://node/1",
            "strata://node/x/1",
            "strata://node/1/+2",
            "strata://admin/",
            "strata://admin/a b",
            "strata://root/x",
            "spiffe://node/1/2",
            "",
        ] {
            assert_eq!(Identity::parse(bad), None, "{bad}");
        }
    }

    fn certificate(sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = sans;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_certificate_names_its_identity_in_a_san_uri() {
        let uri = |s: &str| rcgen::SanType::URI(s.try_into().unwrap());
        let dns = rcgen::SanType::DnsName("localhost".try_into().unwrap());
        let der = certificate(vec![
            dns.clone(),
            uri("https://x"),
            uri("strata://node/2/3"),
        ]);
        assert_eq!(
            Identity::of_certificate(&der),
            Ok(Identity::Node { gid: 2, id: 3 })
        );
        let none = certificate(vec![dns]);
        assert!(Identity::of_certificate(&none)
            .unwrap_err()
            .contains("no strata://"));
        assert!(Identity::of_certificate(b"garbage").is_err());
    }
}
