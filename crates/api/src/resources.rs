//! The kinds tinykube serves, and where their objects live in the store.
//!
//! kube-apiserver learns its resources from Go type registrations; tinykube
//! has a plain table. Each row says what a REST path and a discovery
//! document need (group, version, plural, scope, short names) and whether
//! a controller in tinykube acts on the kind yet.

use crate::status::ApiError;

/// One kind the api-server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; `""` is the core group served under `/api/v1`.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural, lower-case: the path segment and the store key prefix.
    pub resource: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// The kind has a `status` subresource: a plain update ignores status,
    /// and an update-status ignores everything else.
    pub has_status: bool,
    /// Some component of tinykube acts on objects of this kind. Kinds that
    /// are only stored get a warning on write, so nobody waits in vain.
    pub active: bool,
}

impl ResourceInfo {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` for the core group: the qualified
    /// resource that upstream error messages name.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// The `List` kind for this resource: `PodList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The store key of one object: `/registry/pods/default/web-1`, or
    /// `/registry/nodes/node-1` for a cluster-scoped kind. These are the
    /// keys kube-apiserver uses in etcd.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("/registry/{}/{}/{}", self.resource, namespace, name)
        } else {
            format!("/registry/{}/{}", self.resource, name)
        }
    }

    /// The key prefix of a collection: every object of the kind, or of the
    /// kind in one namespace when `namespace` is given. Ends in `/`.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced && !ns.is_empty() => format!("/registry/{}/{}/", self.resource, ns),
            _ => format!("/registry/{}/", self.resource),
        }
    }

    /// The `ResourceRef` that addresses this collection over gRPC.
    pub fn to_ref(&self, namespace: &str) -> crate::proto::ResourceRef {
        crate::proto::ResourceRef {
            group: self.group.into(),
            version: self.version.into(),
            resource: self.resource.into(),
            namespace: if self.namespaced { namespace.into() } else { String::new() },
        }
    }
}

macro_rules! r {
    ($group:literal, $version:literal, $resource:literal, $singular:literal, $kind:literal, $ns:literal, [$($short:literal),*], $status:literal, $active:literal) => {
        ResourceInfo {
            group: $group, version: $version, resource: $resource, singular: $singular, kind: $kind,
            namespaced: $ns, short_names: &[$($short),*], has_status: $status, active: $active,
        }
    };
}

/// Every kind tinykube serves. `active` marks those a tinykube component acts on.
pub const RESOURCES: &[ResourceInfo] = &[
    r!("", "v1", "namespaces", "namespace", "Namespace", false, ["ns"], true, true),
    r!("", "v1", "nodes", "node", "Node", false, ["no"], true, true),
    r!("", "v1", "pods", "pod", "Pod", true, ["po"], true, true),
    r!("", "v1", "events", "event", "Event", true, ["ev"], false, true),
    r!("", "v1", "services", "service", "Service", true, ["svc"], true, false),
    r!("", "v1", "endpoints", "endpoints", "Endpoints", true, ["ep"], false, false),
    r!("", "v1", "configmaps", "configmap", "ConfigMap", true, ["cm"], false, true),
    r!("", "v1", "secrets", "secret", "Secret", true, [], false, true),
    r!("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, ["sa"], false, false),
    r!("apps", "v1", "deployments", "deployment", "Deployment", true, ["deploy"], true, true),
    r!("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, ["rs"], true, true),
    r!("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, ["ds"], true, false),
    r!("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, ["sts"], true, false),
    r!("batch", "v1", "jobs", "job", "Job", true, [], true, false),
    r!("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, [], false, true),
    r!(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "certificatesigningrequest",
        "CertificateSigningRequest",
        false,
        ["csr"],
        true,
        true
    ),
];

/// Looks a resource up by group and plural name, as a REST path or a
/// `ResourceRef` names it.
pub fn by_resource(group: &str, resource: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.group == group && r.resource == resource)
}

/// Looks a resource up by `apiVersion` and `kind`, as a manifest names it.
pub fn by_kind(api_version: &str, kind: &str) -> Result<&'static ResourceInfo, ApiError> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
        .ok_or_else(|| ApiError::bad_request(format!("no matches for kind \"{kind}\" in version \"{api_version}\"")))
}

/// Resolves what a user types on a command line (`po`, `pod`, `pods`,
/// `Pod`, `deployments.apps`) to a resource, as kubectl's RESTMapper does.
pub fn by_user_name(name: &str) -> Option<&'static ResourceInfo> {
    let lower = name.to_ascii_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b.to_string(), Some(g.to_string())),
        None => (lower, None),
    };
    RESOURCES.iter().find(|r| {
        group.as_deref().is_none_or(|g| g == r.group)
            && (r.resource == base || r.singular == base || r.kind.eq_ignore_ascii_case(&base) || r.short_names.contains(&base.as_str()))
    })
}

/// Splits a store key back into (namespace, name); namespace is empty for
/// cluster-scoped kinds.
pub fn split_key<'k>(info: &ResourceInfo, key: &'k str) -> Option<(&'k str, &'k str)> {
    let rest = key.strip_prefix("/registry/")?.strip_prefix(info.resource)?.strip_prefix('/')?;
    if info.namespaced {
        rest.split_once('/')
    } else {
        Some(("", rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_upstreams() {
        let pods = by_resource("", "pods").unwrap();
        assert_eq!(pods.key("default", "web-1"), "/registry/pods/default/web-1");
        assert_eq!(pods.prefix(Some("default")), "/registry/pods/default/");
        assert_eq!(pods.prefix(None), "/registry/pods/");
        assert_eq!(split_key(pods, "/registry/pods/default/web-1"), Some(("default", "web-1")));
        let nodes = by_resource("", "nodes").unwrap();
        assert_eq!(nodes.key("ignored", "n1"), "/registry/nodes/n1");
        assert_eq!(split_key(nodes, "/registry/nodes/n1"), Some(("", "n1")));
    }

    #[test]
    fn user_names_resolve_like_kubectl() {
        for (typed, want) in [
            ("po", "pods"),
            ("pod", "pods"),
            ("Pods", "pods"),
            ("deploy", "deployments"),
            ("deployments.apps", "deployments"),
            ("rs", "replicasets"),
            ("no", "nodes"),
            ("Deployment", "deployments"),
        ] {
            assert_eq!(by_user_name(typed).map(|r| r.resource), Some(want), "{typed}");
        }
        assert!(by_user_name("frobs").is_none());
        assert!(by_kind("apps/v1", "Deployment").is_ok());
        assert!(by_kind("v1", "Deployment").is_err());
    }
}
