//! The NodeRestriction admission plugin: a node writes only its own.
//!
//! Authorization ([`crate::authz`]) lets a node user write Nodes, Leases,
//! pod status and pod deletions at all; which ones it may touch depends on
//! the objects, so upstream checks it in admission, where the object and
//! the stored one are at hand. A node may write:
//! - the Node named after it (create, update, status) — but not its taints,
//!   which would let it shrug off the node lifecycle controller's
//!   `unreachable` taint or steer workloads to itself, and not its pod
//!   range (`spec.podCIDR`), which the node IPAM controller hands out so
//!   that no two nodes share one (upstream leaves that to validation,
//!   which lets anyone set an empty range once; here only the controller
//!   may);
//! - the Lease of that name in `kube-node-lease`;
//! - the status of pods bound to it (`spec.nodeName` is its name), and
//!   delete those pods (the last step of a graceful deletion).
//!
//! Everyone else is not restricted here. Messages are upstream's.

use api::{ApiError, ResourceInfo};
use serde_json::Value;

use crate::authn;
use crate::strategy::Op;

/// Checks a create or update of `obj` (with the stored `old`) by the
/// current user.
pub fn admit_write(info: &ResourceInfo, op: Op, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let Some(user) = authn::current() else { return Ok(()) };
    let Some(node) = user.node_name() else { return Ok(()) };
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    match (info.group, info.resource) {
        ("", "nodes") if name != node => Err(forbidden(info, name, format!("node \"{node}\" is not allowed to modify node \"{name}\""))),
        ("", "nodes") => {
            let changed = |field: &str| old.map_or(&Value::Null, |o| &o["spec"][field]) != &obj["spec"][field];
            if changed("podCIDRs") {
                return Err(forbidden(info, name, format!("node \"{node}\" is not allowed to set podCIDR")));
            }
            // On create a node may register with taints (the kubelet's
            // `--register-with-taints`); afterwards they are not its own.
            if op != Op::Create && changed("taints") {
                return Err(forbidden(info, name, format!("node \"{node}\" is not allowed to modify taints")));
            }
            Ok(())
        }
        ("coordination.k8s.io", "leases") => {
            let namespace = obj["metadata"]["namespace"].as_str().unwrap_or_default();
            if namespace != "kube-node-lease" || name != node {
                return Err(forbidden(info, name, "can only access node lease with the same name as the requesting node".into()));
            }
            Ok(())
        }
        ("", "pods") if op == Op::UpdateStatus => {
            let bound_to = old.unwrap_or(obj)["spec"]["nodeName"].as_str().unwrap_or_default();
            if bound_to != node {
                return Err(forbidden(
                    info,
                    name,
                    format!("node \"{node}\" can only update pod status for pods with spec.nodeName set to itself"),
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Checks a delete of the stored `obj` by the current user.
pub fn admit_delete(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    let Some(user) = authn::current() else { return Ok(()) };
    let Some(node) = user.node_name() else { return Ok(()) };
    if info.group.is_empty() && info.resource == "pods" {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        if obj["spec"]["nodeName"].as_str().unwrap_or_default() != node {
            return Err(forbidden(info, name, format!("node \"{node}\" can only delete pods with spec.nodeName set to itself")));
        }
    }
    Ok(())
}

fn forbidden(info: &ResourceInfo, name: &str, why: String) -> ApiError {
    let qualified = if info.group.is_empty() { info.resource.to_string() } else { format!("{}.{}", info.resource, info.group) };
    ApiError::forbidden(info.group, info.resource, name, format!("{qualified} \"{name}\" is forbidden: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::{User, NODES};
    use serde_json::json;

    fn info(group: &str, resource: &str) -> &'static ResourceInfo {
        api::resources::by_resource(group, resource).unwrap()
    }

    fn as_node<T>(f: impl std::future::Future<Output = T>) -> T {
        let user = User { name: "system:node:n1".into(), groups: vec![NODES.into()] };
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(authn::scope(user, f))
    }

    #[test]
    fn a_node_writes_only_its_own() {
        as_node(async {
            let nodes = info("", "nodes");
            let own = json!({"metadata": {"name": "n1"}});
            assert!(admit_write(nodes, Op::Update, &own, Some(&own)).is_ok());
            let with_cidr = json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]}});
            let e = admit_write(nodes, Op::Create, &with_cidr, None).unwrap_err();
            assert_eq!(e.message, "nodes \"n1\" is forbidden: node \"n1\" is not allowed to set podCIDR");
            assert_eq!(admit_write(nodes, Op::Update, &with_cidr, Some(&own)).unwrap_err().code, 403);
            assert!(admit_write(nodes, Op::Update, &with_cidr, Some(&with_cidr)).is_ok(), "keeping the range it was given");
            let tainted =
                json!({"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]}});
            let e = admit_write(nodes, Op::Update, &own, Some(&tainted)).unwrap_err();
            assert_eq!(e.message, "nodes \"n1\" is forbidden: node \"n1\" is not allowed to modify taints");
            assert!(admit_write(nodes, Op::Create, &tainted, None).is_ok(), "registering with taints");
            assert!(admit_write(nodes, Op::UpdateStatus, &tainted, Some(&tainted)).is_ok());
            let e = admit_write(nodes, Op::UpdateStatus, &json!({"metadata": {"name": "n2"}}), None).unwrap_err();
            assert_eq!((e.code, e.message.as_str()), (403, "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""));

            let leases = info("coordination.k8s.io", "leases");
            let own = json!({"metadata": {"name": "n1", "namespace": "kube-node-lease"}});
            assert!(admit_write(leases, Op::Update, &own, None).is_ok());
            let other = json!({"metadata": {"name": "n2", "namespace": "kube-node-lease"}});
            assert_eq!(admit_write(leases, Op::Create, &other, None).unwrap_err().code, 403);

            let pods = info("", "pods");
            let mine = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
            let theirs = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n2"}});
            assert!(admit_write(pods, Op::UpdateStatus, &mine, Some(&mine)).is_ok());
            // The stored pod decides, not what the request claims.
            let e = admit_write(pods, Op::UpdateStatus, &mine, Some(&theirs)).unwrap_err();
            assert!(e.message.ends_with("can only update pod status for pods with spec.nodeName set to itself"), "{}", e.message);
            assert!(admit_delete(pods, &mine).is_ok());
            assert_eq!(admit_delete(pods, &theirs).unwrap_err().code, 403);
        });
    }

    #[test]
    fn others_are_not_restricted_here() {
        let theirs = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n2"}});
        assert!(admit_delete(info("", "pods"), &theirs).is_ok());
    }
}
