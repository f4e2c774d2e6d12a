//! The CSR approver and signer: how a joining node gets its certificate.
//!
//! A new node has no certificate yet, only a bootstrap token. It makes a
//! key, posts a `CertificateSigningRequest` for `CN=system:node:<name>,
//! O=system:nodes` with the signer `kubernetes.io/kube-apiserver-client-kubelet`,
//! and waits. Two controllers of kube-controller-manager answer:
//! - **csrapproving** approves a request that is exactly a kubelet's
//!   client certificate and was made by a bootstrapper (a node renewing its
//!   own certificate is approved too); anything else is left for a human
//!   (`kubectl certificate approve`).
//! - **csrsigning** signs approved requests of the signers it serves
//!   (kubelets' client certificates, and `kubernetes.io/kube-apiserver-client`
//!   for users, once someone approved them through the CSR's `/approval`
//!   subresource) with the cluster CA and puts the certificate in
//!   `status.certificate`.
//!
//! tinykube runs both in one reconcile, over a CSR informer. It is
//! level-triggered and idempotent: a CSR already approved is not approved
//! again, one already issued is not signed again.

use std::sync::Arc;

use api::pki::{Ca, Usage};
use client::informer::{Change, Informer};
use client::{Api, Client, ListParams};
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestCondition};
use k8s_openapi::ByteString;
use tokio_util::sync::CancellationToken;

pub use api::pki::KUBELET_CLIENT_SIGNER;

/// Upstream's signer of client certificates for users of the api-server,
/// which only a person approves (`kubectl certificate approve`).
pub const APISERVER_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// The signers csrsigning serves, both with the cluster CA as kube-controller-manager's
/// `--cluster-signing-cert-file` serves them.
const SIGNERS: [&str; 2] = [KUBELET_CLIENT_SIGNER, APISERVER_CLIENT_SIGNER];

/// What the approver decides about one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Approve, with upstream's message.
    Approve(&'static str),
    /// Not ours to approve: leave it pending.
    Leave,
}

/// Upstream csrapproving's test: a kubelet client certificate, requested
/// by a bootstrapper (new node) or by that node itself (renewal).
pub fn decide(csr: &CertificateSigningRequest) -> Decision {
    let spec = &csr.spec;
    if spec.signer_name != KUBELET_CLIENT_SIGNER {
        return Decision::Leave;
    }
    let Ok(subject) = std::str::from_utf8(&spec.request.0)
        .map_err(|e| e.to_string())
        .and_then(|pem| api::pki::csr_subject(pem).map_err(|e| e.to_string()))
    else {
        return Decision::Leave;
    };
    let is_kubelet_client = subject.common_name.starts_with("system:node:")
        && subject.common_name.len() > "system:node:".len()
        && subject.organizations == ["system:nodes"]
        && spec
            .usages
            .as_deref()
            .unwrap_or_default()
            .iter()
            .all(|u| matches!(u.as_str(), "digital signature" | "key encipherment" | "client auth"));
    if !is_kubelet_client {
        return Decision::Leave;
    }
    let groups = spec.groups.as_deref().unwrap_or_default();
    let username = spec.username.as_deref().unwrap_or_default();
    if groups.iter().any(|g| g == "system:bootstrappers") {
        return Decision::Approve("Auto approving kubelet client certificate after SubjectAccessReview.");
    }
    if username == subject.common_name && groups.iter().any(|g| g == "system:nodes") {
        return Decision::Approve("Auto approving self kubelet client certificate after SubjectAccessReview.");
    }
    Decision::Leave
}

fn condition(csr: &CertificateSigningRequest, type_: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// Approves and signs one request, if it is ours to.
pub async fn reconcile(api: &Api<CertificateSigningRequest>, ca: &Ca, csr: &CertificateSigningRequest) -> Result<(), api::ApiError> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    if condition(csr, "Denied") || condition(csr, "Failed") {
        return Ok(());
    }
    let issued = csr.status.as_ref().and_then(|s| s.certificate.as_ref()).is_some_and(|c| !c.0.is_empty());
    if issued {
        return Ok(());
    }
    let mut csr = csr.clone();
    let status = csr.status.get_or_insert_with(Default::default);
    if !condition(&CertificateSigningRequest { status: Some(status.clone()), ..Default::default() }, "Approved") {
        let Decision::Approve(message) = decide(&csr) else { return Ok(()) };
        let now = api::time::now();
        csr.status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new)
            .push(CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: Some("AutoApproved".into()),
                message: Some(message.into()),
                last_update_time: Some(now.clone()),
                last_transition_time: Some(now),
            });
        tracing::info!(csr = %name, "approved a kubelet client certificate request");
    }
    if SIGNERS.contains(&csr.spec.signer_name.as_str()) {
        let pem = std::str::from_utf8(&csr.spec.request.0).unwrap_or_default().to_string();
        match ca.sign_csr(&pem, Usage::Client) {
            Ok(cert) => {
                csr.status.get_or_insert_with(Default::default).certificate = Some(ByteString(cert.into_bytes()));
                tracing::info!(csr = %name, "signed a kubelet client certificate");
            }
            Err(e) => {
                let now = api::time::now();
                csr.status.get_or_insert_with(Default::default).conditions.get_or_insert_with(Vec::new).push(
                    CertificateSigningRequestCondition {
                        type_: "Failed".into(),
                        status: "True".into(),
                        reason: Some("SigningError".into()),
                        message: Some(e.to_string()),
                        last_update_time: Some(now.clone()),
                        last_transition_time: Some(now),
                    },
                );
            }
        }
    }
    api.replace_status(&csr).await.map(|_| ())
}

/// Runs the approver and signer until `cancel`.
pub async fn run(client: Client, ca: Arc<Ca>, cancel: CancellationToken) -> Result<(), crate::Error> {
    let api: Api<CertificateSigningRequest> = Api::all(client);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let informer = Informer::spawn(api.clone(), ListParams::default(), cancel.clone(), move |change: Change<CertificateSigningRequest>| {
        let _ = tx.send(change.object().clone());
    });
    loop {
        let csr = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            next = rx.recv() => match next { Some(c) => c, None => return Ok(()) },
        };
        // Work from the cache's latest copy: a stale event must not
        // overwrite a newer status.
        let key = client::informer::key_of(csr.as_ref());
        let Some(latest) = informer.cache.get(&key) else { continue };
        if let Err(e) = reconcile(&api, &ca, &latest).await {
            if !e.is_conflict() && !e.is_not_found() {
                tracing::warn!(csr = %key, error = %e, "CSR approval or signing failed; it will be retried on its next change");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;

    fn csr(cn: &str, orgs: &[&str], signer: &str, username: &str, groups: &[&str]) -> CertificateSigningRequest {
        let (pem, _key) = api::pki::make_csr(cn, orgs).unwrap();
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: signer.into(),
                usages: Some(vec!["digital signature".into(), "client auth".into()]),
                username: Some(username.into()),
                groups: Some(groups.iter().map(|g| g.to_string()).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn only_kubelet_client_requests_are_approved() {
        let boot = ["system:bootstrappers", "system:authenticated"];
        let s = KUBELET_CLIENT_SIGNER;
        assert!(matches!(decide(&csr("system:node:n1", &["system:nodes"], s, "system:bootstrap:abcdef", &boot)), Decision::Approve(_)));
        assert!(matches!(decide(&csr("system:node:n1", &["system:nodes"], s, "system:node:n1", &["system:nodes"])), Decision::Approve(_)));
        // Renewing someone else's, another subject, another signer: left.
        assert_eq!(decide(&csr("system:node:n2", &["system:nodes"], s, "system:node:n1", &["system:nodes"])), Decision::Leave);
        assert_eq!(decide(&csr("admin", &["system:masters"], s, "system:bootstrap:abcdef", &boot)), Decision::Leave);
        assert_eq!(decide(&csr("system:node:n1", &["system:nodes", "system:masters"], s, "x", &boot)), Decision::Leave);
        assert_eq!(decide(&csr("system:node:n1", &["system:nodes"], "example.com/other", "x", &boot)), Decision::Leave);
    }
}
