//! TLS for every port: the rustls configurations of the api-server, the
//! agents and the clients, from the cluster's certificates ([`crate::pki`]).
//!
//! The api-server asks every client for a certificate but accepts a
//! connection without one, as kube-apiserver does: a request may instead
//! carry a bearer token (a joining node's bootstrap token), and one with
//! neither is answered with 401 by the api-server itself, with a `Status`,
//! rather than by a failed handshake. An agent's port accepts nothing but
//! a certificate the cluster CA signed.
//!
//! Both sides offer HTTP/2 and HTTP/1.1 by ALPN: gRPC needs HTTP/2, and
//! kubectl and the Python client speak either.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::pki::{Identity, PkiError};

/// How long a server gives a client to finish the TLS handshake, so that a
/// slow or silent client cannot hold a connection open for nothing.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How a server configuration treats client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Asked for and checked when given; a connection without one goes on
    /// (the api-server: tokens and 401s are answered over HTTP).
    Optional,
    /// Required, signed by the CA (an agent's port).
    Required,
}

/// Whom a client trusts as the server.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Servers whose certificate this CA (PEM) signed.
    Ca(String),
    /// Any server, without checking its certificate. Only for discovery:
    /// a joining node downloads the CA this way, then checks it against the
    /// hash in its token before trusting anything it said.
    AnyServer,
}

fn tls_err(what: &str) -> impl Fn(rustls::Error) -> PkiError + '_ {
    move |e| PkiError::Certificate(format!("{what}: {e}"))
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| PkiError::Certificate(format!("reading PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(PkiError::Certificate("no certificate in the PEM text".into()));
    }
    Ok(certs)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Certificate(format!("reading a PEM private key: {e}")))
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(ca_pem)? {
        roots.add(cert).map_err(tls_err("trusting the CA"))?;
    }
    Ok(Arc::new(roots))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server presenting `identity`, checking client certificates against
/// the CA (PEM) as `auth` says, offering HTTP/2 and HTTP/1.1.
pub fn server_config(identity: &Identity, ca_pem: &str, auth: ClientAuth) -> Result<Arc<ServerConfig>, PkiError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider());
    let verifier = match auth {
        ClientAuth::Optional => verifier.allow_unauthenticated(),
        ClientAuth::Required => verifier,
    }
    .build()
    .map_err(|e| PkiError::Certificate(format!("the client certificate verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("TLS versions"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&identity.cert_pem)?, key(&identity.key_pem)?)
        .map_err(tls_err("the serving certificate"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client trusting `trust` and proving itself with `identity`, if any.
/// It offers only HTTP/2: gRPC is its one use.
pub fn client_config(trust: &Trust, identity: Option<&Identity>) -> Result<Arc<ClientConfig>, PkiError> {
    let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().map_err(tls_err("TLS versions"))?;
    let builder = match trust {
        Trust::Ca(pem) => builder.with_root_certificates(roots(pem)?),
        Trust::AnyServer => builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServer(provider()))),
    };
    let mut config = match identity {
        Some(id) => builder.with_client_auth_cert(certs(&id.cert_pem)?, key(&id.key_pem)?).map_err(tls_err("the client certificate"))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The subject of the first certificate a peer presented, if any.
pub fn peer_subject(certs: Option<&[CertificateDer<'_>]>) -> Option<crate::pki::Subject> {
    crate::pki::subject_of(certs?.first()?.as_ref()).ok()
}

/// Accepts any server certificate; the handshake's signatures are still
/// checked, so the server at least holds the key of what it presented.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
