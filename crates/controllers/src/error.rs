//! The controller-manager's one error type.

use api::ApiError;

/// Why a reconcile (or the controller-manager itself) failed. A reconcile
/// error is never fatal: the controller's error policy decides when the
/// object's key is looked at again.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the api-server failed; `action` says which call, for the
    /// log. (Boxed: a Kubernetes `Status` is large, and errors are rare.)
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: Box<ApiError>,
    },

    /// An object's spec cannot be acted on (an unparsable selector, a
    /// malformed maxSurge). Retrying will not help until the user edits it.
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },

    /// The name a Deployment's template hash gives its new ReplicaSet is
    /// taken by a ReplicaSet with another template. The controller bumps
    /// `status.collisionCount` and tries again with a different hash, as
    /// upstream does.
    #[error("hash collision for ReplicaSet {name}; collisionCount is now {collision_count}")]
    HashCollision { name: String, collision_count: i32 },

    /// Every block of the cluster CIDR is held by a node, so `node` gets
    /// no pod range until one is deleted (upstream's cidrset error).
    #[error("node {node}: {}", crate::nodeipam::NO_CIDRS_REMAINING)]
    RangeExhausted { node: String },

    /// An object could not be turned into JSON (for template hashing).
    #[error("cannot serialise {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Wraps an api-server error with what we were doing when it happened.
    pub fn api(action: impl Into<String>, source: ApiError) -> Self {
        Error::Api { action: action.into(), source: Box::new(source) }
    }

    /// A 409 Conflict: our cached copy was stale. Expected now and then in
    /// any controller; the retry sees the fresh object.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Api { source, .. } if source.is_conflict())
    }
}

/// Whether a create failed only because its namespace is being deleted
/// (the `NamespaceTerminating` cause of the api-server's 403). Controllers
/// treat that as "nothing to do", as upstream's do.
pub fn is_namespace_terminating(e: &ApiError) -> bool {
    e.code == 403 && e.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::status::{Cause, Details};

    #[test]
    fn only_the_namespace_terminating_cause_counts() {
        let forbidden = |cause: &str| ApiError {
            code: 403,
            reason: "Forbidden".into(),
            message: "forbidden".into(),
            details: Some(Box::new(Details {
                causes: vec![Cause { reason: cause.into(), message: String::new(), field: String::new() }],
                ..Default::default()
            })),
        };
        let cases = [
            ("terminating namespace", forbidden("NamespaceTerminating"), true),
            ("forbidden for another reason", forbidden("SomethingElse"), false),
            ("a plain conflict", ApiError::conflict("", "pods", "p", "stale"), false),
            ("not found", ApiError::not_found("", "namespaces", "shop"), false),
        ];
        for (name, err, want) in cases {
            assert_eq!(is_namespace_terminating(&err), want, "{name}");
        }
    }
}
