//! Authorization: may this user do this?
//!
//! kube-apiserver asks its authorizers in turn (`--authorization-mode=
//! Node,RBAC` by default in kubeadm clusters). tinykube has no RBAC yet,
//! so its one authorizer gives each kind of user what RBAC's default
//! roles and upstream's Node authorizer give it:
//! - `system:masters` (the admin kubeconfig), and the scheduler and
//!   controller-manager users (`system:kube-scheduler`,
//!   `system:kube-controller-manager`): everything.
//! - nodes (`system:node:<name>` in `system:nodes`): reading everything
//!   but Secrets and ConfigMaps, which only by name and only those a pod
//!   bound to the node uses (upstream's Node authorizer keeps a graph of
//!   pods, nodes and what they reference; here [`check`] asks the store
//!   for the node's pods in that namespace when such a read comes);
//!   writing Nodes, their Leases, pod status, pod deletion, events and
//!   their own CSRs. Which Node, Lease and pods a node may write is
//!   checked on the object itself by the NodeRestriction admission
//!   ([`crate::noderestriction`]), as upstream splits it.
//! - bootstrappers (`system:bootstrappers`, a joining node's token):
//!   creating and reading CertificateSigningRequests, nothing else.
//! - anonymous requests: only the public `kube-public/cluster-info`
//!   ConfigMap, `/version` and the health checks — everything else is a
//!   401, as with upstream's `--anonymous-auth=false`.
//! - anyone else (a certificate the CA signed for another name): 403.
//!
//! A refusal is a 403 `Forbidden` with upstream's message:
//! `nodes is forbidden: User "system:bootstrap:abcdef" cannot list
//! resource "nodes" in API group "" at the cluster scope`.

use api::ApiError;
use serde_json::Value;

use crate::authn::{User, BOOTSTRAPPERS, MASTERS};
use crate::registry::{Filter, Registry};

/// What [`authorize`] decided, when it did not refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed if a pod bound to this node uses the Secret or ConfigMap
    /// asked for: the Node authorizer's graph, which [`check`] looks up.
    IfNodeUses(String),
}

/// Decides a request completely: [`authorize`], then, for a node reading
/// a Secret or ConfigMap, whether one of its pods uses it.
pub async fn check(registry: &Registry, user: &User, a: &Attributes<'_>) -> Result<(), ApiError> {
    let Decision::IfNodeUses(node) = authorize(user, a)? else { return Ok(()) };
    let pods = api::resources::by_resource("", "pods").expect("pods are in the table");
    let filter = Filter::parse(pods, "", &format!("spec.nodeName={node}"))?;
    let name = a.name.unwrap_or_default();
    let listed = registry.list(pods, a.namespace, &filter).await?;
    if listed.items.iter().any(|pod| pod_uses(pod, a.resource, name)) {
        Ok(())
    } else {
        Err(forbidden(user, a, "no relationship found between node and this object"))
    }
}

/// Whether `pod` names the Secret or ConfigMap (`resource`) `name`: in a
/// volume (plain or projected), an environment variable or `envFrom` of
/// any container, or (Secrets) its image pull secrets.
pub fn pod_uses(pod: &Value, resource: &str, name: &str) -> bool {
    let spec = &pod["spec"];
    let (volume_key, ref_key, env_ref, env_from) = match resource {
        "secrets" => ("secret", "secretName", "secretKeyRef", "secretRef"),
        "configmaps" => ("configMap", "name", "configMapKeyRef", "configMapRef"),
        _ => return false,
    };
    let is = |v: &Value| v.as_str() == Some(name);
    let items = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let in_volumes = items(&spec["volumes"])
        .iter()
        .any(|v| is(&v[volume_key][ref_key]) || items(&v["projected"]["sources"]).iter().any(|source| is(&source[volume_key]["name"])));
    let mut containers = ["initContainers", "containers", "ephemeralContainers"].into_iter().flat_map(|k| items(&spec[k]));
    let in_containers = containers.any(|c| {
        items(&c["env"]).iter().any(|e| is(&e["valueFrom"][env_ref]["name"]))
            || items(&c["envFrom"]).iter().any(|e| is(&e[env_from]["name"]))
    });
    let pull = resource == "secrets" && items(&spec["imagePullSecrets"]).iter().any(|s| is(&s["name"]));
    in_volumes || in_containers || pull
}

/// What a request asks to do, as upstream's `authorizer.Attributes`.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: &'a str,
    pub name: Option<&'a str>,
}

/// Users that may do everything until RBAC arrives: the control plane's.
const CONTROL_PLANE_USERS: &[&str] = &["system:kube-scheduler", "system:kube-controller-manager", "system:kube-apiserver"];

/// The namespace and name of the public cluster information a joining
/// node reads before it trusts the server (kubeadm's discovery).
pub const CLUSTER_INFO: (&str, &str) = ("kube-public", "cluster-info");

/// Decides a resource request.
pub fn authorize(user: &User, a: &Attributes<'_>) -> Result<Decision, ApiError> {
    if user.in_group(MASTERS) || CONTROL_PLANE_USERS.contains(&user.name.as_str()) {
        return Ok(Decision::Allow);
    }
    let reads = matches!(a.verb, "get" | "list" | "watch");
    if user.is_anonymous() {
        let cluster_info = a.verb == "get"
            && a.group.is_empty()
            && a.resource == "configmaps"
            && a.subresource.is_none()
            && (a.namespace, a.name.unwrap_or_default()) == CLUSTER_INFO;
        return if cluster_info { Ok(Decision::Allow) } else { Err(ApiError::unauthorized()) };
    }
    if let Some(node) = user.node_name() {
        // Secrets and ConfigMaps only one by one, never listed, and only
        // those its pods use: [`check`] looks that up.
        let secret_like = a.group.is_empty() && matches!(a.resource, "secrets" | "configmaps");
        if secret_like && reads {
            return if a.verb == "get" && a.name.is_some() {
                Ok(Decision::IfNodeUses(node.to_string()))
            } else {
                Err(forbidden(user, a, "no relationship found between node and this object"))
            };
        }
        let allowed = reads
            || match (a.group, a.resource, a.subresource) {
                ("", "nodes", None | Some("status")) => matches!(a.verb, "create" | "update" | "patch"),
                ("coordination.k8s.io", "leases", None) => matches!(a.verb, "create" | "update" | "patch"),
                ("", "pods", Some("status")) => matches!(a.verb, "update" | "patch"),
                ("", "pods", None) => a.verb == "delete",
                ("", "events", None) | ("events.k8s.io", "events", None) => matches!(a.verb, "create" | "update" | "patch"),
                ("certificates.k8s.io", "certificatesigningrequests", None) => a.verb == "create",
                _ => false,
            };
        return if allowed { Ok(Decision::Allow) } else { Err(forbidden(user, a, "")) };
    }
    if user.in_group(BOOTSTRAPPERS) {
        let csr = a.group == "certificates.k8s.io" && a.resource == "certificatesigningrequests" && a.subresource.is_none();
        return if csr && (reads || a.verb == "create") { Ok(Decision::Allow) } else { Err(forbidden(user, a, "")) };
    }
    Err(forbidden(user, a, ""))
}

/// Decides a request for a path that is not a resource (`/version`,
/// `/healthz`, discovery, OpenAPI, `/metrics`).
pub fn authorize_path(user: &User, path: &str) -> Result<(), ApiError> {
    const PUBLIC: &[&str] = &["/version", "/healthz", "/livez", "/readyz"];
    if PUBLIC.contains(&path.trim_end_matches('/')) {
        return Ok(());
    }
    if user.is_anonymous() {
        return Err(ApiError::unauthorized());
    }
    // Discovery and OpenAPI are for every authenticated user, as
    // upstream's `system:discovery` role; `/metrics` for the admin.
    if path.starts_with("/metrics") && !(user.in_group(MASTERS) || CONTROL_PLANE_USERS.contains(&user.name.as_str())) {
        return Err(ApiError::forbidden("", "", "", format!("forbidden: User \"{}\" cannot get path \"{path}\"", user.name)));
    }
    Ok(())
}

/// Upstream's refusal: `<resource> "<name>" is forbidden: User "<user>"
/// cannot <verb> resource "<resource>" in API group "<group>" in the
/// namespace "<ns>"`, with `: <why>` when there is one.
pub fn forbidden(user: &User, a: &Attributes<'_>, why: &str) -> ApiError {
    let qualified = if a.group.is_empty() { a.resource.to_string() } else { format!("{}.{}", a.resource, a.group) };
    let object = match a.name {
        Some(n) if !n.is_empty() => format!("{qualified} \"{n}\""),
        _ => qualified,
    };
    let resource = match a.subresource {
        Some(sub) => format!("{}/{sub}", a.resource),
        None => a.resource.to_string(),
    };
    let scope = if a.namespace.is_empty() { "at the cluster scope".to_string() } else { format!("in the namespace \"{}\"", a.namespace) };
    let why = if why.is_empty() { String::new() } else { format!(": {why}") };
    ApiError::forbidden(
        a.group,
        a.resource,
        a.name.unwrap_or_default(),
        format!(
            "{object} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}{why}",
            user.name, a.verb, a.group
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::NODES;

    fn user(name: &str, groups: &[&str]) -> User {
        User { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect() }
    }

    fn attrs<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        sub: Option<&'a str>,
        ns: &'a str,
        name: Option<&'a str>,
    ) -> Attributes<'a> {
        Attributes { verb, group, resource, subresource: sub, namespace: ns, name }
    }

    #[test]
    fn who_may_do_what() {
        let admin = user("kubernetes-admin", &[MASTERS]);
        let node = user("system:node:n1", &[NODES]);
        let boot = user("system:bootstrap:abcdef", &[BOOTSTRAPPERS]);
        let anon = User::anonymous();
        let alice = user("alice", &[]);
        let secret = attrs("delete", "", "secrets", None, "default", Some("s"));
        let cases: &[(&User, Attributes<'_>, u16)] = &[
            (&admin, secret, 0),
            (&node, attrs("list", "", "pods", None, "", None), 0),
            (&node, attrs("patch", "", "nodes", Some("status"), "", Some("n1")), 0),
            (&node, attrs("update", "", "pods", Some("status"), "default", Some("p")), 0),
            (&node, attrs("create", "", "pods", None, "default", None), 403),
            (&node, secret, 403),
            (&node, attrs("get", "", "secrets", None, "default", Some("s")), 1),
            (&node, attrs("list", "", "secrets", None, "", None), 403),
            (&node, attrs("get", "", "configmaps", None, "default", Some("c")), 1),
            (&node, attrs("create", "certificates.k8s.io", "certificatesigningrequests", None, "", None), 0),
            (&boot, attrs("create", "certificates.k8s.io", "certificatesigningrequests", None, "", None), 0),
            (&boot, attrs("watch", "certificates.k8s.io", "certificatesigningrequests", None, "", None), 0),
            (&boot, attrs("list", "", "nodes", None, "", None), 403),
            (&anon, attrs("get", "", "configmaps", None, "kube-public", Some("cluster-info")), 0),
            (&anon, attrs("get", "", "configmaps", None, "kube-public", Some("other")), 401),
            (&anon, attrs("list", "", "pods", None, "", None), 401),
            (&alice, attrs("get", "", "pods", None, "default", Some("p")), 403),
        ];
        for (u, a, want) in cases {
            let got = match authorize(u, a) {
                Ok(Decision::Allow) => 0,
                Ok(Decision::IfNodeUses(node)) => {
                    assert_eq!(node, "n1");
                    1
                }
                Err(e) => e.code,
            };
            assert_eq!(got, *want, "{} {:?}", u.name, a);
        }
    }

    #[test]
    fn the_refusal_reads_as_upstream() {
        let boot = user("system:bootstrap:abcdef", &[BOOTSTRAPPERS]);
        let e = authorize(&boot, &attrs("list", "", "nodes", None, "", None)).unwrap_err();
        assert_eq!(
            e.message,
            "nodes is forbidden: User \"system:bootstrap:abcdef\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        );
        let e = authorize(&boot, &attrs("get", "apps", "deployments", Some("scale"), "default", Some("web"))).unwrap_err();
        assert_eq!(
            e.message,
            "deployments.apps \"web\" is forbidden: User \"system:bootstrap:abcdef\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"default\""
        );
        assert_eq!(e.reason, "Forbidden");
    }

    #[test]
    fn paths() {
        assert!(authorize_path(&User::anonymous(), "/healthz").is_ok());
        assert_eq!(authorize_path(&User::anonymous(), "/api").unwrap_err().code, 401);
        assert!(authorize_path(&user("system:node:n", &[NODES]), "/apis").is_ok());
        assert_eq!(authorize_path(&user("system:node:n", &[NODES]), "/metrics").unwrap_err().code, 403);
    }

    #[test]
    fn what_a_pod_uses() {
        let pod = serde_json::json!({"spec": {
            "volumes": [
                {"name": "a", "secret": {"secretName": "in-volume"}},
                {"name": "b", "configMap": {"name": "cm-volume"}},
                {"name": "c", "projected": {"sources": [{"secret": {"name": "projected"}}, {"configMap": {"name": "cm-projected"}}]}},
            ],
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "env-from"}}]}],
            "containers": [{"name": "c", "env": [
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-key", "key": "k"}}},
                {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "k"}}},
            ]}],
            "imagePullSecrets": [{"name": "pull"}],
        }});
        for name in ["in-volume", "projected", "env-from", "env-key", "pull"] {
            assert!(pod_uses(&pod, "secrets", name), "{name}");
            assert!(!pod_uses(&pod, "configmaps", name), "{name} is a Secret");
        }
        for name in ["cm-volume", "cm-projected", "cm-env"] {
            assert!(pod_uses(&pod, "configmaps", name), "{name}");
        }
        assert!(!pod_uses(&pod, "secrets", "other"));
        assert!(!pod_uses(&pod, "pods", "in-volume"));
    }
}
