//! Joining a cluster: the kubelet's TLS bootstrap.
//!
//! A new node knows the server's URL and a join token, nothing else. It
//! gets from there to a client certificate of its own in four steps, each
//! the one a kubelet and `kubeadm join` take:
//! 1. **Discovery.** Read the public `kube-public/cluster-info` ConfigMap
//!    without trusting the server yet, and take the CA from it.
//! 2. **Pinning.** Hash the CA's public key and compare it with the hash in
//!    the token (`--discovery-token-ca-cert-hash`). A mismatch means the
//!    token is for another cluster, or someone is in between: stop.
//! 3. **Request.** Trusting that CA now, make a key and post a
//!    `CertificateSigningRequest` for `system:node:<name>`, authenticated
//!    with the bootstrap token.
//! 4. **Wait.** The controller-manager approves and signs it
//!    (`tinykube-controllers`' `certificates`); the certificate appears in
//!    the CSR's status.
//!
//! The key, the certificate and the CA are kept in `<data-dir>/agent/pki/`
//! (the kubelet's `/var/lib/kubelet/pki/`), so a restarted agent reuses
//! them and needs the token only to join.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use api::pki::{Identity, JoinToken};
use api::ApiError;
use base64::Engine;
use client::{Api, Client, Credentials};
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::ByteString;

/// How long the agent waits for its CSR to be approved and signed.
pub const CSR_TIMEOUT: Duration = Duration::from_secs(60);

/// Why joining failed; each says what to check.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("cannot read cluster-info from {server}: {source}")]
    Discovery { server: String, source: ApiError },
    #[error("cluster-info at {server} holds no usable CA: {0}", server = .1)]
    BadClusterInfo(String, String),
    #[error(
        "the CA of {server} has hash {found}, but the join token expects {expected}: the token is for another cluster, or something between this host and the server is answering in its place"
    )]
    CaMismatch { server: String, found: String, expected: String },
    #[error("the server refused the join token ({0}): check --token against the server's <data-dir>/token")]
    TokenRefused(String),
    #[error("the certificate request failed: {0}")]
    Request(ApiError),
    #[error("the certificate request {name} was {how}: {message}")]
    Refused { name: String, how: String, message: String },
    #[error("the certificate request {0} was not signed within {CSR_TIMEOUT:?}: is the controller-manager running?")]
    Timeout(String),
    #[error("{0}")]
    Pki(#[from] api::pki::PkiError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// The files a joined agent keeps.
pub fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("agent").join("pki")
}

/// This node's credentials: the ones kept from an earlier join if they
/// are for this node and this server's CA, else a fresh join with
/// `token`.
pub async fn credentials(server: &str, token: &JoinToken, node_name: &str, data_dir: &Path) -> Result<(Credentials, String), JoinError> {
    let dir = pki_dir(data_dir);
    if let Some(kept) = kept(&dir, token, node_name) {
        tracing::info!(dir = %dir.display(), "using the node certificate from an earlier join");
        return Ok(kept);
    }
    let started = Instant::now();
    let ca_pem = discover(server, token).await?;
    let identity = request_certificate(server, &ca_pem, token, node_name).await?;
    std::fs::create_dir_all(&dir).map_err(|source| JoinError::Io { path: dir.display().to_string(), source })?;
    identity.write(&dir, "node")?;
    std::fs::write(dir.join("ca.crt"), &ca_pem)
        .map_err(|source| JoinError::Io { path: dir.join("ca.crt").display().to_string(), source })?;
    tracing::info!(node = node_name, elapsed_ms = started.elapsed().as_millis() as u64, "joined: the node has its client certificate");
    Ok((Credentials::certificate(&ca_pem, identity), ca_pem))
}

fn kept(dir: &Path, token: &JoinToken, node_name: &str) -> Option<(Credentials, String)> {
    let identity = Identity::read(dir, "node").ok()?;
    let ca_pem = std::fs::read_to_string(dir.join("ca.crt")).ok()?;
    let subject = identity.subject().ok()?;
    let ca_hash = api::pki::spki_hash(&api::pki::pem_to_der(&ca_pem).ok()?).ok()?;
    let same_ca = token.ca_hash.as_deref().is_none_or(|h| h == ca_hash);
    (subject.common_name == format!("system:node:{node_name}") && same_ca)
        .then(|| (Credentials::certificate(&ca_pem, identity.clone()), ca_pem))
}

/// Steps 1 and 2: the CA from `cluster-info`, checked against the token.
pub async fn discover(server: &str, token: &JoinToken) -> Result<String, JoinError> {
    let (ns, name) = ("kube-public", "cluster-info");
    let anonymous = Client::new(server, &Credentials::anonymous_any_server())
        .map_err(|source| JoinError::Discovery { server: server.into(), source })?;
    let info = Api::<ConfigMap>::namespaced(anonymous, ns)
        .get(name)
        .await
        .map_err(|source| JoinError::Discovery { server: server.into(), source })?;
    let bad = |why: &str| JoinError::BadClusterInfo(why.to_string(), server.to_string());
    let kubeconfig = info.data.as_ref().and_then(|d| d.get("kubeconfig")).ok_or_else(|| bad("no data.kubeconfig"))?;
    let parsed: serde_json::Value = serde_yaml::from_str(kubeconfig).map_err(|e| bad(&format!("its kubeconfig is not YAML: {e}")))?;
    let ca_b64 = parsed["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .ok_or_else(|| bad("no certificate-authority-data"))?;
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca_b64.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad("certificate-authority-data is not base64 PEM"))?;
    let found = api::pki::spki_hash(&api::pki::pem_to_der(&ca_pem)?)?;
    match &token.ca_hash {
        Some(expected) if *expected != found => {
            return Err(JoinError::CaMismatch { server: server.into(), found, expected: expected.clone() });
        }
        Some(_) => tracing::info!(ca_hash = %found, "the server's CA matches the join token"),
        None => tracing::warn!(ca_hash = %found, "the join token carries no CA hash: trusting the CA the server presented"),
    }
    Ok(ca_pem)
}

/// Steps 3 and 4: a CSR with the bootstrap token, then its certificate.
async fn request_certificate(server: &str, ca_pem: &str, token: &JoinToken, node_name: &str) -> Result<Identity, JoinError> {
    let (csr_pem, key_pem) = api::pki::make_csr(&format!("system:node:{node_name}"), &["system:nodes"])?;
    let bootstrap = Client::new(server, &Credentials::token(ca_pem, &token.bearer())).map_err(JoinError::Request)?;
    let api: Api<CertificateSigningRequest> = Api::all(bootstrap);
    let mut csr = CertificateSigningRequest {
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem.into_bytes()),
            signer_name: api::pki::KUBELET_CLIENT_SIGNER.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    csr.metadata.generate_name = Some("node-csr-".into());
    let created = api.create(&csr).await.map_err(|e| match e.code {
        401 => JoinError::TokenRefused(format!("{} {}", e.code, e.reason)),
        _ => JoinError::Request(e),
    })?;
    let name = created.metadata.name.clone().unwrap_or_default();
    tracing::info!(csr = %name, "certificate signing request posted; waiting for approval");
    let deadline = Instant::now() + CSR_TIMEOUT;
    let mut wait = Duration::from_millis(20);
    loop {
        let csr = api.get(&name).await.map_err(JoinError::Request)?;
        let status = csr.status.unwrap_or_default();
        if let Some(c) = status.conditions.iter().flatten().find(|c| matches!(c.type_.as_str(), "Denied" | "Failed") && c.status == "True")
        {
            return Err(JoinError::Refused { name, how: c.type_.to_lowercase(), message: c.message.clone().unwrap_or_default() });
        }
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            let cert_pem =
                String::from_utf8(cert.0).map_err(|_| JoinError::Request(ApiError::internal("the certificate is not PEM text")))?;
            return Ok(Identity { cert_pem, key_pem });
        }
        if Instant::now() > deadline {
            return Err(JoinError::Timeout(name));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(500));
    }
}
