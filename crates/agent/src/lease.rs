//! The node's heartbeat Lease, `kube-node-lease/<node>`.
//!
//! Writing the whole Node status every few seconds is expensive at scale,
//! so since Kubernetes 1.14 a kubelet also renews a small Lease object
//! (coordination.k8s.io/v1) in the `kube-node-lease` namespace: holder =
//! the node, `leaseDurationSeconds` 40, `renewTime` bumped every renew
//! interval. The node lifecycle controller treats a node whose Lease has
//! not been renewed within the grace period as not ready. The Lease is
//! owned by the Node, so deleting the Node collects it.

use client::{Api, Client};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};

/// The namespace that holds node leases.
pub const NAMESPACE: &str = "kube-node-lease";
/// Upstream's `nodeLeaseDurationSeconds`.
pub const DURATION_SECONDS: i32 = 40;

/// The Lease of `node`, renewed at `now`.
pub fn node_lease(node: &Node, now: MicroTime) -> Lease {
    let name = node.metadata.name.clone().unwrap_or_default();
    let owner = node.metadata.uid.clone().map(|uid| OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: name.clone(),
        uid,
        ..Default::default()
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(NAMESPACE.into()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name),
            lease_duration_seconds: Some(DURATION_SECONDS),
            renew_time: Some(now),
            ..Default::default()
        }),
    }
}

/// Creates or renews the node's Lease.
pub async fn renew(client: &Client, node: &Node) -> Result<Lease, api::ApiError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let name = node.metadata.name.clone().unwrap_or_default();
    let fresh = node_lease(node, api::time::now_micro());
    match leases.get_opt(&name).await? {
        None => leases.create(&fresh).await,
        Some(mut existing) => {
            // Keep metadata (resourceVersion, ownerReferences) and replace
            // the spec: the node holds its own lease, always.
            existing.spec = fresh.spec;
            if existing.metadata.owner_references.is_none() {
                existing.metadata.owner_references = fresh.metadata.owner_references;
            }
            leases.replace(&existing).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_is_held_by_and_owned_by_the_node() {
        let node = Node {
            metadata: ObjectMeta { name: Some("n1".into()), uid: Some("u1".into()), ..Default::default() },
            ..Default::default()
        };
        let now = api::time::now_micro();
        let lease = node_lease(&node, now.clone());
        assert_eq!(lease.metadata.namespace.as_deref(), Some("kube-node-lease"));
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert_eq!(spec.renew_time, Some(now));
        let owner = &lease.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "u1"));
    }
}
