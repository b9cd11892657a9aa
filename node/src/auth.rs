//! Who may call what, with mutual TLS on (`--tls-*`): a tower layer around every server
//! process's gRPC services that checks the caller's certificate identity ([`PeerInfo`],
//! put on each request by the listener) against the role the method needs.
//!
//! | methods | who |
//! |---|---|
//! | `PaxosPeer/*` (Paxos traffic, snapshots) | a node of this replica's own group |
//! | `ShardMigration/*` (shard pulls, handoffs) | a node of a shard group |
//! | `ShardMaster/Join`, `Leave`, `Move` | an admin |
//! | `ShardKv/*`, `ShardGroup/*` | a client or an admin |
//! | `ShardMaster/Query`, `NodeStatus/*` | anyone the CA vouches for |
//!
//! The layer decides by method and identity kind; what depends on the request — that a
//! Paxos batch's sender is the certificate's replica, that a pulling group is the one the
//! configuration names — is checked by the services, from the request's [`PeerInfo`]. A
//! refusal is `UNAUTHENTICATED` (no identity on a TLS server: cannot happen after the handshake, kept as
//! the safe default) or `PERMISSION_DENIED`, logged with the caller and counted in
//! `strata_auth_refusals_total{reason}` (with `reason="handshake"` for connections whose TLS
//! handshake failed). Without TLS there are no identities and the layer lets everything
//! through: the protocol's own checks are all that stands (see `strata_paxos`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use strata_rpc::tls::{Identity, PeerInfo, MASTER_GROUP};

/// What a method requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A replica of the serving process's own Paxos group.
    OwnGroup,
    /// A replica of a shard group (not the master's).
    ShardNode,
    /// An operator.
    Admin,
    /// An application or an operator.
    Data,
    /// Anyone with a certificate from the cluster's CA.
    Anyone,
    /// Nobody (a method this table does not know).
    Nobody,
}

/// The role `path` (`/package.Service/Method`) requires.
pub fn required(path: &str) -> Role {
    let path = path.trim_start_matches('/');
    let Some((service, method)) = path.rsplit_once('/') else {
        return Role::Nobody;
    };
    match (service, method) {
        ("strata.v1.PaxosPeer", _) => Role::OwnGroup,
        ("strata.v1.ShardMigration", _) => Role::ShardNode,
        ("strata.v1.ShardMaster", "Query") => Role::Anyone,
        ("strata.v1.ShardMaster", _) => Role::Admin,
        ("strata.v1.ShardKv" | "strata.v1.ShardGroup", _) => Role::Data,
        ("strata.v1.NodeStatus", _) => Role::Anyone,
        ("strata.v1.GroupMembership", _) => Role::Admin,
        _ => Role::Nobody,
    }
}

/// Whether `identity` may call a method that requires `role` on a replica of group `group`.
pub fn allows(role: Role, identity: &Identity, group: u64) -> bool {
    match role {
        Role::OwnGroup => matches!(identity, Identity::Node { gid, .. } if *gid == group),
        Role::ShardNode => matches!(identity, Identity::Node { gid, .. } if *gid != MASTER_GROUP),
        Role::Admin => identity.is_admin(),
        Role::Data => matches!(identity, Identity::Admin(_) | Identity::Client(_)),
        Role::Anyone => true,
        Role::Nobody => false,
    }
}

/// The label of `strata_auth_refusals_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabel {
    /// `handshake`, `unauthenticated` or `permission_denied`.
    pub reason: &'static str,
}

/// Counts of refused connections and requests (cheap to clone: shared handles).
#[derive(Debug, Clone)]
pub struct Refusals {
    family: Family<RefusalLabel, Counter>,
    /// TLS handshakes that failed (plaintext, unknown CA, expired, no identity).
    pub handshake: Counter,
    /// Requests without an identity on a TLS server.
    pub unauthenticated: Counter,
    /// Requests whose caller may not call the method (or not with these arguments).
    pub permission_denied: Counter,
}

impl Default for Refusals {
    fn default() -> Self {
        let family = Family::<RefusalLabel, Counter>::default();
        let get = |reason| family.get_or_create_owned(&RefusalLabel { reason });
        Refusals {
            handshake: get("handshake"),
            unauthenticated: get("unauthenticated"),
            permission_denied: get("permission_denied"),
            family,
        }
    }
}

impl Refusals {
    /// Registers `strata_auth_refusals_total{reason}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "strata_auth_refusals",
            "Connections and requests refused: failed TLS handshakes, unauthenticated or forbidden callers",
            self.family.clone(),
        );
    }

    /// Logs and counts a request refused for `why`, and returns its status.
    pub fn deny(&self, peer: Option<&PeerInfo>, method: &str, why: String) -> tonic::Status {
        self.permission_denied.inc();
        let identity = peer.and_then(|p| p.identity.as_ref());
        let remote = peer.and_then(|p| p.remote);
        tracing::warn!(
            caller = identity.map(ToString::to_string),
            ?remote,
            method,
            reason = %why,
            "request refused"
        );
        tonic::Status::permission_denied(why)
    }
}

/// The layer: add it to the tonic server inside the metrics layer.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    group: u64,
    enforce: bool,
    refusals: Refusals,
}

impl AuthLayer {
    /// Checks callers of a replica of `group` when `enforce` (TLS is on); counts refusals in
    /// `refusals`.
    pub fn new(group: u64, enforce: bool, refusals: Refusals) -> AuthLayer {
        AuthLayer {
            group,
            enforce,
            refusals,
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service the layer wraps around the server's.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    layer: AuthLayer,
}

impl AuthLayer {
    /// `None` if the request may go on; the refusal otherwise.
    fn check<B>(&self, request: &http::Request<B>) -> Option<tonic::Status> {
        if !self.enforce {
            return None;
        }
        let path = request.uri().path();
        let peer = request.extensions().get::<PeerInfo>();
        let Some(identity) = peer.and_then(|p| p.identity.as_ref()) else {
            self.refusals.unauthenticated.inc();
            tracing::warn!(method = path, "request without a client identity refused");
            return Some(tonic::Status::unauthenticated(
                "a client certificate is required",
            ));
        };
        let role = required(path);
        if allows(role, identity, self.group) {
            return None;
        }
        let why = format!("{identity} may not call {path} (it needs {role:?})");
        Some(self.refusals.deny(peer, path, why))
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AuthFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.layer.check(&request) {
            None => AuthFuture {
                inner: Some(self.inner.call(request)),
                refused: None,
            },
            Some(status) => AuthFuture {
                inner: None,
                refused: Some(status.into_http()),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future if the request goes on (`inner`), or the refusal
    /// (`refused`, taken on the first poll).
    pub struct AuthFuture<F, R> {
        #[pin]
        inner: Option<F>,
        refused: Option<http::Response<R>>,
    }
}

impl<F, R, E> Future for AuthFuture<F, R>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(inner) = this.inner.as_pin_mut() {
            return inner.poll(cx);
        }
        match this.refused.take() {
            Some(r) => Poll::Ready(Ok(r)),
            None => Poll::Pending, // polled after completion: never ready again
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(gid: u64, id: u64) -> Identity {
        Identity::Node { gid, id }
    }

    #[test]
    fn each_method_needs_its_role() {
        let admin = Identity::Admin("ops".into());
        let client = Identity::Client("app".into());
        let may = |path: &str, who: &Identity, group: u64| allows(required(path), who, group);
        // Paxos traffic only within the group.
        assert!(may("/strata.v1.PaxosPeer/Send", &node(3, 1), 3));
        assert!(!may("/strata.v1.PaxosPeer/Send", &node(4, 1), 3));
        assert!(!may("/strata.v1.PaxosPeer/InstallSnapshot", &admin, 3));
        assert!(!may("/strata.v1.PaxosPeer/Send", &node(MASTER_GROUP, 1), 3));
        // Shard pulls between shard groups, never from clients or masters.
        assert!(may("/strata.v1.ShardMigration/PullShard", &node(4, 2), 3));
        assert!(!may("/strata.v1.ShardMigration/PullShard", &client, 3));
        assert!(!may("/strata.v1.ShardMigration/DeleteShard", &admin, 3));
        assert!(!may(
            "/strata.v1.ShardMigration/DeleteShard",
            &node(MASTER_GROUP, 1),
            3
        ));
        // Admin operations at the master only from admins; queries from anyone.
        for op in ["Join", "Leave", "Move"] {
            let path = format!("/strata.v1.ShardMaster/{op}");
            assert!(may(&path, &admin, MASTER_GROUP));
            assert!(!may(&path, &client, MASTER_GROUP));
            assert!(!may(&path, &node(1, 1), MASTER_GROUP));
        }
        assert!(may(
            "/strata.v1.ShardMaster/Query",
            &node(1, 1),
            MASTER_GROUP
        ));
        assert!(may("/strata.v1.ShardMaster/Query", &client, MASTER_GROUP));
        // Data from clients and admins, not from nodes.
        assert!(may("/strata.v1.ShardKv/Put", &client, 1));
        assert!(may("/strata.v1.ShardKv/Get", &admin, 1));
        assert!(!may("/strata.v1.ShardKv/Put", &node(2, 1), 1));
        assert!(may("/strata.v1.NodeStatus/Status", &client, 1));
        // Unknown methods: nobody.
        assert!(!may("/strata.v1.Nope/Do", &admin, 1));
        assert!(!may("garbage", &admin, 1));
    }

    #[test]
    fn the_layer_refuses_with_a_grpc_status_and_counts() {
        use tower::{Layer, Service};
        let refusals = Refusals::default();
        let layer = AuthLayer::new(1, true, refusals.clone());
        let inner = tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::from("served")))
        });
        let mut service = layer.layer(inner);
        let request = |path: &str, identity: Option<Identity>| {
            let mut r = http::Request::builder().uri(path).body(()).unwrap();
            r.extensions_mut().insert(PeerInfo {
                remote: None,
                identity,
            });
            r
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let client = Identity::Client("app".into());
        let served = runtime
            .block_on(service.call(request("/strata.v1.ShardKv/Put", Some(client.clone()))))
            .unwrap();
        assert_eq!(served.body(), "served");
        let denied = runtime
            .block_on(service.call(request("/strata.v1.ShardMaster/Join", Some(client))))
            .unwrap();
        assert_eq!(
            denied.headers().get("grpc-status").unwrap(),
            &(tonic::Code::PermissionDenied as i32).to_string()
        );
        let anonymous = runtime
            .block_on(service.call(request("/strata.v1.ShardKv/Put", None)))
            .unwrap();
        assert_eq!(
            anonymous.headers().get("grpc-status").unwrap(),
            &(tonic::Code::Unauthenticated as i32).to_string()
        );
        assert_eq!(refusals.permission_denied.get(), 1);
        assert_eq!(refusals.unauthenticated.get(), 1);
        // Without TLS nothing is checked.
        let mut open = AuthLayer::new(1, false, Refusals::default()).layer(tower::service_fn(
            |_: http::Request<()>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            },
        ));
        let r = runtime
            .block_on(open.call(request("/strata.v1.ShardMaster/Join", None)))
            .unwrap();
        assert!(r.headers().get("grpc-status").is_none());
    }
}
