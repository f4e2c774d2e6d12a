//! # The api-server: the only door to the cluster's state
//!
//! In Kubernetes nothing talks to etcd but kube-apiserver. Every other
//! component — kubectl, the scheduler, controllers, kubelets — reads and
//! writes objects through it, and it is where an object becomes valid: it
//! fills in defaults, checks fields, assigns uid and resourceVersion,
//! enforces optimistic concurrency, and turns etcd's change feed into
//! watches. tinykube's api-server does the same over the etcd v3 interface
//! of `tinykube-store` ([`store::Kv`]), so it runs unchanged on the embedded
//! store or, later, on a real etcd.
//!
//! Every connection is TLS. A request is authenticated (a client
//! certificate the cluster CA signed, or a bootstrap token), authorized,
//! and only then served; the user rides along so admission can ask who is
//! writing.
//!
//! Where tinykube simplifies: one strategy per kind in one module rather
//! than a package per kind; no admission webhooks, RBAC or aggregation;
//! objects are handled as JSON between the front door and the strategy,
//! where they are parsed into their `k8s-openapi` type.
//!
//! # Layout
//! - [`authn`]: who is asking: client certificates and bootstrap tokens.
//! - [`authz`]: may they: the control plane, nodes, bootstrappers, anonymous.
//! - [`noderestriction`]: a node writes only its own Node, Lease and pods.
//! - [`defaulttolerationseconds`]: pods tolerate an unready or unreachable
//!   node for a while (300 s) before they are evicted.
//! - [`registry`]: get, list, create, update, delete and bind over the
//!   store, with compare-and-swap and graceful pod deletion.
//! - [`strategy`]: per-kind defaulting, validation and the status split.
//! - [`validation`]: upstream's validation rules and messages, for every
//!   kind and every verb.
//! - [`watch`]: store events as Kubernetes watch events, with selectors.
//! - [`patch`]: JSON patch, merge patch and strategic merge patch.
//! - [`patchmeta`]: upstream's `patchStrategy` and `patchMergeKey` tags, the
//!   one table both the OpenAPI documents and the strategic merge read.
//! - [`rest`]: the Kubernetes REST API kubectl and client libraries use.
//! - [`discovery`]: `/api`, `/apis` and the resource lists clients discover.
//! - [`openapi`]: the OpenAPI v3 documents, schemas traced from the types.
//! - [`fieldvalidation`]: unknown and duplicate fields for `fieldValidation`.
//! - [`options`]: query parameters read and validated as upstream reads them.
//! - [`protobuf`]: request bodies in Kubernetes' protobuf encoding, as JSON.
//! - [`grpc`]: the `Resources` gRPC service components use.
//! - [`http`]: response bodies and JSON/Status responses for REST.
//! - [`proxy`]: reaching a pod's node agent for logs.
//! - [`exec`]: `kubectl exec`, a client's WebSocket bridged to the agent.
//! - [`table`]: the columns `get` prints for each kind.
//! - [`metrics`]: `/metrics` in Prometheus' format, and the timed store.
//! - [`ApiServer`]: serving it all on one listener, plus the compactor.

pub mod authn;
pub mod authz;
pub mod defaulttolerationseconds;
pub mod discovery;
pub mod exec;
pub mod fieldvalidation;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod noderestriction;
pub mod openapi;
pub mod options;
pub mod patch;
pub mod patchmeta;
pub mod protobuf;
pub mod proxy;
pub mod registry;
pub mod rest;
pub mod strategy;
pub mod table;
pub mod validation;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use api::ApiError;
use store::Kv;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use registry::Registry;

/// How often history is compacted, as kube-apiserver's default
/// `--etcd-compaction-interval`.
pub const COMPACTION_INTERVAL: Duration = Duration::from_secs(300);

/// Errors that stop the api-server itself (request errors are [`ApiError`]s).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bootstrapping the system namespaces failed.
    #[error("bootstrap: {0}")]
    Bootstrap(ApiError),
    /// The listener failed.
    #[error("serving: {0}")]
    Serve(String),
}

/// A configured api-server over one store.
#[derive(Debug, Clone)]
pub struct ApiServer {
    registry: Registry,
    compaction_interval: Duration,
}

impl ApiServer {
    /// Creates the api-server and the namespaces every cluster has.
    ///
    /// Every store call the registry makes is timed into
    /// `etcd_request_duration_seconds` by wrapping `kv` in a
    /// [`metrics::MeteredKv`].
    pub async fn new(kv: Arc<dyn Kv>) -> Result<Self, Error> {
        let registry = Registry::new(Arc::new(metrics::MeteredKv::new(kv)));
        registry.bootstrap().await.map_err(Error::Bootstrap)?;
        Ok(ApiServer { registry, compaction_interval: COMPACTION_INTERVAL })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Dials node agents (logs, exec) with these credentials: a client
    /// certificate agents accept, as kube-apiserver's
    /// `--kubelet-client-certificate`.
    pub fn with_kubelet_client(mut self, credentials: client::Credentials) -> Self {
        self.registry = self.registry.with_kubelet_client(credentials);
        self
    }

    /// Gives pods these default tolerations of `not-ready` and
    /// `unreachable` nodes instead of 300 s each (see
    /// [`defaulttolerationseconds`]).
    pub fn with_default_toleration_seconds(mut self, seconds: defaulttolerationseconds::DefaultTolerationSeconds) -> Self {
        self.registry = self.registry.with_default_toleration_seconds(seconds);
        self
    }

    /// Compacts history this often instead of [`COMPACTION_INTERVAL`]
    /// (kube-apiserver's `--etcd-compaction-interval`).
    pub fn with_compaction_interval(mut self, interval: Duration) -> Self {
        self.compaction_interval = interval;
        self
    }

    /// Serves gRPC and Kubernetes REST over TLS on `listener` until
    /// `cancel`, and compacts history periodically.
    ///
    /// One port carries both, as k3s serves everything on 6443: each
    /// request is routed on its `content-type` — `application/grpc` goes to
    /// the gRPC service, everything else to the REST front door. HTTP/1.1
    /// and HTTP/2 are both accepted (ALPN picks; kubectl and the Python
    /// client may speak either, gRPC speaks HTTP/2).
    ///
    /// The TLS handshake asks for a client certificate; the subject of the
    /// one given (or none) is kept for the connection, and every request
    /// is authenticated from it and its `Authorization` header before
    /// anything else ([`authn`]). A request with a bad token is answered
    /// 401 here; authorization happens where the request has been parsed
    /// (in [`rest`] and [`grpc`]).
    ///
    /// Each REST request carries the client's address ([`rest::ClientAddr`])
    /// so the front door can cap watches per client, and the HTTP/1 read
    /// buffer is sized past [`rest::MAX_HEADER_BYTES`] so that an oversized
    /// request head is refused by the front door, with a `Status`, rather
    /// than by hyper with an empty body.
    pub async fn serve(self, listener: TcpListener, tls: Arc<rustls::ServerConfig>, cancel: CancellationToken) -> Result<(), Error> {
        let compactor = tokio::spawn(compact_periodically(self.registry.clone(), self.compaction_interval, cancel.clone()));
        let server_address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let grpc = tonic::service::Routes::new(
            api::proto::resources_server::ResourcesServer::new(grpc::ResourcesService::new(self.registry.clone()))
                .max_decoding_message_size(4 << 20)
                .max_encoding_message_size(64 << 20),
        );
        let rest = Arc::new(rest::Rest { registry: self.registry.clone(), server_address, watches: Default::default() });
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (stream, peer) = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let (grpc, rest, acceptor, watcher) = (grpc.clone(), rest.clone(), acceptor.clone(), graceful.watcher());
            // The handshake runs in the connection's task, so a slow or
            // silent client holds up nobody else.
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(api::tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                let stream = match handshake {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                };
                let identity = authn::Peer(api::tls::peer_subject(stream.get_ref().1.peer_certificates()));
                let service = hyper::service::service_fn(move |req| serve_request(grpc.clone(), rest.clone(), identity.clone(), peer, req));
                let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                // Room for a request head past the REST front door's own
                // limits, so that it, not hyper, refuses an oversized one.
                builder.http1().max_buf_size(2 * rest::MAX_HEADER_BYTES).max_headers(1024);
                let conn = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        // Let in-flight requests finish briefly; watches and log streams
        // are cut, and clients reconnect to the next server.
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
        compactor.abort();
        Ok(())
    }
}

type Routed = ::http::Response<http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::io::Error>>;

/// One request: authenticated, then routed to gRPC or REST, served as its
/// user ([`authn::scope`]).
async fn serve_request(
    grpc: tonic::service::Routes,
    rest: Arc<rest::Rest>,
    peer: authn::Peer,
    addr: std::net::SocketAddr,
    mut req: ::http::Request<hyper::body::Incoming>,
) -> Result<Routed, std::convert::Infallible> {
    let is_grpc = req.headers().get(::http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let authorization = req.headers().get(::http::header::AUTHORIZATION).map(|v| v.as_bytes().to_vec());
    let user = match authn::authenticate(&rest.registry, &peer, authorization.as_deref()).await {
        Ok(user) => user,
        Err(e) if is_grpc => return Ok(grpc_error(&e)),
        Err(e) => return Ok(http::error(&e)),
    };
    req.extensions_mut().insert(user.clone());
    if is_grpc {
        use tower::ServiceExt;
        let resp = authn::scope(user, grpc.oneshot(req)).await.unwrap_or_else(|never| match never {});
        Ok(resp
            .map(|b| http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(b, |s| std::io::Error::other(s.to_string())))))
    } else {
        req.extensions_mut().insert(rest::ClientAddr(addr));
        Ok(authn::scope(user, rest::handle(rest, req)).await)
    }
}

/// An error answered as gRPC, before the gRPC service has seen the request.
fn grpc_error(e: &ApiError) -> Routed {
    let resp = e.to_grpc().into_http::<tonic::body::Body>();
    resp.map(|b| http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(b, |s| std::io::Error::other(s.to_string()))))
}

/// Compacts the store to the revision seen one interval ago, so watchers
/// that keep up never lose history, as kube-apiserver's compactor does.
async fn compact_periodically(registry: Registry, interval: Duration, cancel: CancellationToken) {
    let mut previous: Option<i64> = None;
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some(rev) = previous {
            if let Err(e) = registry.kv().compact(rev).await {
                tracing::warn!(revision = rev, error = %e, "compaction failed");
            } else {
                tracing::debug!(revision = rev, "compacted history");
            }
        }
        previous = registry.revision().await.ok();
    }
}
