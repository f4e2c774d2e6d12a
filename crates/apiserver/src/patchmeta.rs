//! How each list merges in a strategic merge patch: upstream's struct tags.
//!
//! A strategic merge patch treats some lists as sets of named things:
//! `containers` merge by `name`, so a patch that names one container
//! changes that container and leaves the others. Upstream says which lists
//! do so with Go struct tags on the API types, e.g. in
//! `k8s.io/api/core/v1/types.go`:
//!
//! ```text
//! Containers []Container `json:"containers" patchStrategy:"merge" patchMergeKey:"name"`
//! ```
//!
//! The tags reach two places, and both must agree: the OpenAPI documents
//! publish them as `x-kubernetes-patch-strategy` and
//! `x-kubernetes-patch-merge-key`, from which kubectl *computes* a patch,
//! and the api-server *applies* the patch by them. tinykube's types come
//! from `k8s-openapi`, which carries no such tags, so [`PATCH_META`] is
//! the one copy of them: [`crate::openapi`] annotates the schemas from it
//! and [`crate::patch`] merges by it.
//!
//! A field without an entry has no strategy: a map merges key by key, a
//! list is replaced as a whole (`args`, `tolerations`, a Namespace's
//! `spec.finalizers`).

/// One field's tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchMeta {
    /// The short type name, as `k8s-openapi` names the struct (`PodSpec`).
    pub type_name: &'static str,
    /// The JSON field name (`containers`).
    pub field: &'static str,
    /// `patchStrategy`: `merge`, `retainKeys` or `merge,retainKeys`.
    /// `retainKeys` only tells a client to send the `$retainKeys`
    /// directive; the server obeys that directive wherever it appears.
    pub strategy: &'static str,
    /// `patchMergeKey`: the field that identifies an item of a merging list
    /// of maps. A merging list without one is a set of scalars
    /// (`finalizers`).
    pub merge_key: Option<&'static str>,
}

impl PatchMeta {
    /// Whether the list merges rather than being replaced.
    pub fn merges(&self) -> bool {
        self.strategy.split(',').any(|s| s == "merge")
    }
}

const fn tag(type_name: &'static str, field: &'static str, strategy: &'static str, merge_key: Option<&'static str>) -> PatchMeta {
    PatchMeta { type_name, field, strategy, merge_key }
}

/// Every `patchStrategy` tag on the types tinykube serves and the types
/// inside them, as Kubernetes 1.32 declares them in `k8s.io/api`
/// (`core/v1`, `apps/v1`, `batch/v1`; `coordination/v1` and
/// `autoscaling/v1` `Scale` have none) and in
/// `k8s.io/apimachinery/pkg/apis/meta/v1` (`ObjectMeta`).
pub const PATCH_META: &[PatchMeta] = &[
    // meta/v1
    tag("ObjectMeta", "finalizers", "merge", None),
    tag("ObjectMeta", "ownerReferences", "merge", Some("uid")),
    // core/v1: pods
    tag("PodSpec", "volumes", "merge,retainKeys", Some("name")),
    tag("PodSpec", "initContainers", "merge", Some("name")),
    tag("PodSpec", "containers", "merge", Some("name")),
    tag("PodSpec", "ephemeralContainers", "merge", Some("name")),
    tag("PodSpec", "imagePullSecrets", "merge", Some("name")),
    tag("PodSpec", "hostAliases", "merge", Some("ip")),
    // Server-side apply keys these on topologyKey and whenUnsatisfiable;
    // to a strategic merge patch two constraints with one topologyKey are
    // one item, upstream too.
    tag("PodSpec", "topologySpreadConstraints", "merge", Some("topologyKey")),
    tag("PodSpec", "schedulingGates", "merge", Some("name")),
    tag("PodSpec", "resourceClaims", "merge,retainKeys", Some("name")),
    tag("Container", "ports", "merge", Some("containerPort")),
    tag("Container", "env", "merge", Some("name")),
    tag("Container", "volumeMounts", "merge", Some("mountPath")),
    tag("Container", "volumeDevices", "merge", Some("devicePath")),
    // Upstream's EphemeralContainerCommon, which `k8s-openapi` flattens
    // into EphemeralContainer.
    tag("EphemeralContainer", "ports", "merge", Some("containerPort")),
    tag("EphemeralContainer", "env", "merge", Some("name")),
    tag("EphemeralContainer", "volumeMounts", "merge", Some("mountPath")),
    tag("EphemeralContainer", "volumeDevices", "merge", Some("devicePath")),
    tag("PodStatus", "conditions", "merge", Some("type")),
    tag("PodStatus", "hostIPs", "merge", Some("ip")),
    tag("PodStatus", "podIPs", "merge", Some("ip")),
    tag("PodStatus", "resourceClaimStatuses", "merge,retainKeys", Some("name")),
    tag("ContainerStatus", "volumeMounts", "merge", Some("mountPath")),
    tag("ContainerStatus", "allocatedResourcesStatus", "merge", Some("name")),
    // core/v1: everything else
    tag("ServiceSpec", "ports", "merge", Some("port")),
    tag("ServiceStatus", "conditions", "merge", Some("type")),
    tag("ServiceAccount", "secrets", "merge", Some("name")),
    tag("NodeSpec", "podCIDRs", "merge", None),
    tag("NodeStatus", "conditions", "merge", Some("type")),
    tag("NodeStatus", "addresses", "merge", Some("type")),
    tag("NamespaceStatus", "conditions", "merge", Some("type")),
    // Inside a StatefulSet's volumeClaimTemplates.
    tag("PersistentVolumeClaimStatus", "conditions", "merge", Some("type")),
    // apps/v1
    tag("DeploymentSpec", "strategy", "retainKeys", None),
    tag("DeploymentStatus", "conditions", "merge", Some("type")),
    tag("ReplicaSetStatus", "conditions", "merge", Some("type")),
    tag("DaemonSetStatus", "conditions", "merge", Some("type")),
    tag("StatefulSetStatus", "conditions", "merge", Some("type")),
    // batch/v1
    tag("JobStatus", "conditions", "merge", Some("type")),
];

/// The tags of `field` in the type named `type_name`, if it has any.
pub fn lookup(type_name: &str, field: &str) -> Option<&'static PatchMeta> {
    PATCH_META.iter().find(|m| m.type_name == type_name && m.field == field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_field_is_tagged_once() {
        for (i, m) in PATCH_META.iter().enumerate() {
            assert!(
                !PATCH_META[..i].iter().any(|o| o.type_name == m.type_name && o.field == m.field),
                "{}.{} is listed twice",
                m.type_name,
                m.field
            );
        }
    }

    #[test]
    fn strategies_are_upstreams_words() {
        for m in PATCH_META {
            assert!(["merge", "retainKeys", "merge,retainKeys"].contains(&m.strategy), "{}.{}: {}", m.type_name, m.field, m.strategy);
            // A merge key only means something for a merging list.
            assert!(m.merge_key.is_none() || m.merges(), "{}.{}", m.type_name, m.field);
        }
        assert!(lookup("PodSpec", "volumes").is_some_and(PatchMeta::merges));
        assert!(lookup("DeploymentSpec", "strategy").is_some_and(|m| !m.merges()));
        assert_eq!(lookup("NamespaceSpec", "finalizers"), None);
    }
}
