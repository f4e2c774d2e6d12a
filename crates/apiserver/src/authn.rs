//! Authentication: who is asking.
//!
//! kube-apiserver runs a chain of authenticators on every request and
//! takes the first that recognises it. tinykube runs upstream's two that a
//! cluster of its own needs:
//! - **x509 client certificates**: the TLS handshake has already checked
//!   that the cluster CA signed the certificate; the user is its Common
//!   Name and the groups its Organizations.
//! - **bootstrap tokens**: `Authorization: Bearer <id>.<secret>`, checked
//!   against the Secret `kube-system/bootstrap-token-<id>` (type
//!   `bootstrap.kubernetes.io/token`) as upstream's bootstrap token
//!   authenticator does; the user is `system:bootstrap:<id>` in the group
//!   `system:bootstrappers`. Joining nodes use it for their CSR.
//!
//! A request with neither is `system:anonymous`; authorization refuses it
//! everything but the public cluster information ([`crate::authz`]). A
//! token that is wrong, expired or unknown is a 401 at once, as upstream.
//!
//! The user travels with the request in a task-local ([`scope`],
//! [`current`]), as upstream carries it in the request's context, so the
//! admission step deep in the write path ([`crate::noderestriction`]) can
//! ask who is writing.

use std::future::Future;

use api::pki::{parse_bootstrap_token, Subject};
use api::ApiError;
use base64::Engine;

use crate::registry::Registry;

/// The user a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// Upstream's well-known names.
pub const ANONYMOUS: &str = "system:anonymous";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
pub const AUTHENTICATED: &str = "system:authenticated";
pub const MASTERS: &str = "system:masters";
pub const NODES: &str = "system:nodes";
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";
/// The prefix of a node's user name: `system:node:<node name>`.
pub const NODE_PREFIX: &str = "system:node:";

impl User {
    pub fn anonymous() -> Self {
        User { name: ANONYMOUS.into(), groups: vec![UNAUTHENTICATED.into()] }
    }

    /// The user a client certificate names.
    pub fn from_certificate(subject: &Subject) -> Self {
        let mut groups = subject.organizations.clone();
        groups.push(AUTHENTICATED.into());
        User { name: subject.common_name.clone(), groups }
    }

    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The node this user is, for `system:node:<name>` in `system:nodes`.
    pub fn node_name(&self) -> Option<&str> {
        self.name.strip_prefix(NODE_PREFIX).filter(|n| !n.is_empty() && self.in_group(NODES))
    }
}

/// The peer certificate of a connection, as the TLS handshake left it:
/// put in every request's extensions by the server.
#[derive(Debug, Clone, Default)]
pub struct Peer(pub Option<Subject>);

tokio::task_local! {
    static CURRENT: User;
}

/// Runs `f` as `user`: [`current`] answers `user` inside it.
pub async fn scope<F: Future>(user: User, f: F) -> F::Output {
    CURRENT.scope(user, f).await
}

/// The user of the request being served, if any: `None` outside a
/// request (the registry's own writes at start-up).
pub fn current() -> Option<User> {
    CURRENT.try_with(|u| u.clone()).ok()
}

/// Authenticates a request from its connection's certificate and its
/// `Authorization` header.
pub async fn authenticate(registry: &Registry, peer: &Peer, authorization: Option<&[u8]>) -> Result<User, ApiError> {
    if let Some(header) = authorization {
        let header = std::str::from_utf8(header).map_err(|_| ApiError::unauthorized())?;
        let token = header.strip_prefix("Bearer ").map(str::trim).ok_or_else(ApiError::unauthorized)?;
        return bootstrap_token(registry, token).await;
    }
    Ok(match &peer.0 {
        Some(subject) => User::from_certificate(subject),
        None => User::anonymous(),
    })
}

/// The Secret type of bootstrap tokens.
pub const BOOTSTRAP_TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";

/// Checks `<id>.<secret>` against `kube-system/bootstrap-token-<id>`.
async fn bootstrap_token(registry: &Registry, token: &str) -> Result<User, ApiError> {
    let (id, secret) = parse_bootstrap_token(token).ok_or_else(ApiError::unauthorized)?;
    let secrets = api::resources::by_resource("", "secrets").expect("secrets are in the table");
    let stored = match registry.get(secrets, "kube-system", &format!("bootstrap-token-{id}")).await {
        Ok(s) => s,
        Err(e) if e.is_not_found() => {
            tracing::info!(token_id = id, "a bootstrap token with no Secret was refused");
            return Err(ApiError::unauthorized());
        }
        Err(e) => return Err(e),
    };
    let field = |k: &str| -> String {
        stored["data"][k]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default()
    };
    let valid = stored["type"] == BOOTSTRAP_TOKEN_TYPE
        && field("token-id") == id
        && constant_time_eq(field("token-secret").as_bytes(), secret.as_bytes())
        && field("usage-bootstrap-authentication") == "true"
        && !expired(&field("expiration"));
    if !valid {
        tracing::info!(token_id = id, "a bootstrap token did not match its Secret, or has expired");
        return Err(ApiError::unauthorized());
    }
    let mut groups = vec![BOOTSTRAPPERS.to_string()];
    groups.extend(
        field("auth-extra-groups")
            .split(',')
            .map(str::trim)
            .filter(|g| g.starts_with("system:bootstrappers:"))
            .map(String::from),
    );
    groups.push(AUTHENTICATED.into());
    Ok(User { name: format!("system:bootstrap:{id}"), groups })
}

fn expired(expiration: &str) -> bool {
    if expiration.is_empty() {
        return false;
    }
    match expiration.parse::<jiff::Timestamp>() {
        Ok(t) => t <= jiff::Timestamp::now(),
        // An expiration that does not parse makes the token unusable, as upstream.
        Err(_) => true,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_users_and_nodes() {
        let admin = User::from_certificate(&Subject { common_name: "kubernetes-admin".into(), organizations: vec![MASTERS.into()] });
        assert!(admin.in_group(MASTERS) && admin.in_group(AUTHENTICATED));
        assert_eq!(admin.node_name(), None);
        let node = User::from_certificate(&Subject { common_name: "system:node:n1".into(), organizations: vec![NODES.into()] });
        assert_eq!(node.node_name(), Some("n1"));
        // The name alone does not make a node: the group is needed too.
        let pretender = User::from_certificate(&Subject { common_name: "system:node:n1".into(), organizations: vec![] });
        assert_eq!(pretender.node_name(), None);
        assert!(User::anonymous().is_anonymous());
    }

    #[test]
    fn expiration() {
        assert!(!expired(""));
        assert!(expired("2000-01-01T00:00:00Z"));
        assert!(!expired("2999-01-01T00:00:00Z"));
        assert!(expired("soon"));
    }
}
