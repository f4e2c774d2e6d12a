//! Dialling the api-server (or an agent): TCP, then TLS for `https` URLs,
//! with the credentials a component proves itself with.
//!
//! Every component of a cluster authenticates to the api-server the same
//! two ways kube-apiserver accepts: a client certificate the cluster CA
//! signed (the kubelet, the scheduler, the controller-manager, the admin),
//! or a bearer token (a joining node's bootstrap token, before it has a
//! certificate). [`Credentials`] holds what a client has; [`Connector`] is
//! the tower service tonic dials through, so the same gRPC channel works
//! over TLS without tonic's own TLS features.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use api::pki::Identity;
use api::tls::Trust;
use api::ApiError;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

/// What a client trusts and how it proves who it is.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Whom to trust as the server, for `https` URLs.
    pub trust: Trust,
    /// A client certificate, if the client has one.
    pub identity: Option<Identity>,
    /// A bearer token (`Authorization: Bearer ...`), if any.
    pub bearer: Option<String>,
}

impl Credentials {
    /// A client certificate, trusting servers the CA (PEM) signed.
    pub fn certificate(ca_pem: &str, identity: Identity) -> Self {
        Credentials { trust: Trust::Ca(ca_pem.to_string()), identity: Some(identity), bearer: None }
    }

    /// A bearer token, trusting servers the CA (PEM) signed.
    pub fn token(ca_pem: &str, token: &str) -> Self {
        Credentials { trust: Trust::Ca(ca_pem.to_string()), identity: None, bearer: Some(token.to_string()) }
    }

    /// No credentials, trusting any server: only for fetching the public
    /// `cluster-info` while joining, whose CA is then checked against a hash.
    pub fn anonymous_any_server() -> Self {
        Credentials { trust: Trust::AnyServer, identity: None, bearer: None }
    }
}

/// One connection: plain TCP for `http` URLs, TLS over TCP for `https`,
/// as hyper reads and writes it (tonic's channel, or hyper's own client).
pub struct Stream(TokioIo<Either<TcpStream, TlsStream<TcpStream>>>);

impl hyper::rt::Read for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: hyper::rt::ReadBufCursor<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl hyper_util::client::legacy::connect::Connection for Stream {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        let h2 = matches!(self.0.inner(), Either::Right(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2"));
        let connected = hyper_util::client::legacy::connect::Connected::new();
        if h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

/// Dials the URI tonic asks for, with TLS when the configuration has it.
#[derive(Clone)]
pub struct Connector {
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").field("tls", &self.tls.is_some()).finish()
    }
}

impl Connector {
    /// A connector for `url`: TLS with `credentials` for `https`, plain TCP
    /// for `http` (a server behind a TLS-terminating proxy; tests of the
    /// client itself).
    pub fn new(url: &http::Uri, credentials: &Credentials) -> Result<Self, ApiError> {
        let tls = match url.scheme_str() {
            Some("https") => {
                let config = api::tls::client_config(&credentials.trust, credentials.identity.as_ref())
                    .map_err(|e| ApiError::bad_request(format!("the client's TLS configuration: {e}")))?;
                Some(tokio_rustls::TlsConnector::from(config))
            }
            Some("http") => None,
            other => return Err(ApiError::bad_request(format!("unsupported URL scheme {other:?} in {url}: use https"))),
        };
        Ok(Connector { tls })
    }

    /// Connects to `uri`'s host and port (443 or 80 by default).
    pub async fn connect(&self, uri: &http::Uri) -> Result<Stream, std::io::Error> {
        let host = uri.host().ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else { return Ok(Stream(TokioIo::new(Either::Left(tcp)))) };
        let name = ServerName::try_from(host.clone()).map_err(|e| std::io::Error::other(format!("server name {host:?}: {e}")))?;
        let stream = tls.connect(name, tcp).await?;
        Ok(Stream(TokioIo::new(Either::Right(stream))))
    }
}

impl tower::Service<http::Uri> for Connector {
    type Response = Stream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(&uri).await })
    }
}

/// Adds `Authorization: Bearer <token>` to every gRPC call, when there is
/// a token.
#[derive(Clone, Debug, Default)]
pub struct BearerAuth(Option<Arc<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>>);

impl BearerAuth {
    pub fn new(token: Option<&str>) -> Result<Self, ApiError> {
        let value = token
            .map(|t| format!("Bearer {t}").parse().map_err(|_| ApiError::bad_request("a bearer token must be printable ASCII".to_string())))
            .transpose()?;
        Ok(BearerAuth(value.map(Arc::new)))
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", (**v).clone());
        }
        Ok(request)
    }
}

/// One accepted TLS connection, as tonic's server takes it.
pub struct TlsConn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = Option<std::net::SocketAddr>;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.peer_addr().ok()
    }
}

impl tokio::io::AsyncRead for TlsConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The accepted, handshaken connections of `listener` whose client
/// certificate `admit` lets in, as tonic's `serve_with_incoming` takes
/// them: the accepting side of a TLS port that serves only certificates
/// (an agent's; tests' stand-ins for one).
pub fn accept_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    admit: fn(&api::pki::Subject) -> bool,
    cancel: tokio_util::sync::CancellationToken,
) -> impl futures::Stream<Item = Result<TlsConn, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = cancel.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS port: accept failed");
                        continue;
                    }
                },
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(api::tls::HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return tracing::info!(%peer, error = %e, "TLS port: TLS handshake refused"),
                    Err(_) => return tracing::info!(%peer, "TLS port: TLS handshake timed out"),
                };
                match api::tls::peer_subject(stream.get_ref().1.peer_certificates()) {
                    Some(subject) if admit(&subject) => {
                        let _ = tx.send(Ok(TlsConn(stream))).await;
                    }
                    other => tracing::info!(%peer, subject = ?other, "TLS port: a client certificate was refused"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
