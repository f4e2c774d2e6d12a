//! The plugins of the default profile, one module each, named as upstream
//! (`pkg/scheduler/framework/plugins/...`).
//!
//! Each module has the plugin's `NAME`, its `ERR_REASON` (the text counted
//! in `FailedScheduling` events), a pure helper holding the decision, and a
//! table of tests. The trait methods only adapt the helper to the framework.
//!
//! Filters run in [`default_framework`]'s order and a node reports only the
//! first plugin that rejects it, so the order is the one upstream's default
//! profile uses, with tinykube's `NodeReady` after `TaintToleration`.
//! Scores are weighted as upstream weighs them: PodTopologySpread 2,
//! NodeResourcesFit 1.

pub mod node_affinity;
pub mod node_name;
pub mod node_ready;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;

use crate::framework::Framework;
use pod_topology_spread::{PodTopologySpread, Workloads};

/// The default profile: the filters in upstream's order, then the scores
/// with upstream's weights. `workloads` are the caches system-default
/// topology spreading reads to find a pod's siblings.
pub fn default_framework(workloads: Workloads) -> Framework {
    Framework::new(
        vec![
            Box::new(node_unschedulable::NodeUnschedulable),
            Box::new(node_name::NodeName),
            Box::new(taint_toleration::TaintToleration),
            Box::new(node_ready::NodeReady),
            Box::new(node_affinity::NodeAffinity),
            Box::new(node_resources_fit::NodeResourcesFit),
            Box::new(PodTopologySpread::new(workloads.clone())),
        ],
        vec![(Box::new(PodTopologySpread::new(workloads)), 2), (Box::new(node_resources_fit::NodeResourcesFit), 1)],
    )
}

#[cfg(test)]
pub(crate) mod testing {
    //! Small builders for plugin tests.

    use std::collections::BTreeMap;
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, Taint, Toleration};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use crate::framework::{NodeInfo, PodInfo};

    pub fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    pub fn quantities(kv: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        kv.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect()
    }

    /// A ready node with 4 cpu, 8Gi and room for 110 pods.
    pub fn node(name: &str) -> Node {
        Node {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                allocatable: Some(quantities(&[("cpu", "4"), ("memory", "8Gi"), ("pods", "110")])),
                conditions: Some(vec![NodeCondition { type_: "Ready".into(), status: "True".into(), ..Default::default() }]),
                ..Default::default()
            }),
        }
    }

    pub fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("default".into()), ..Default::default() },
            spec: Some(PodSpec { containers: vec![Default::default()], ..Default::default() }),
            ..Default::default()
        }
    }

    pub fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            ..Default::default()
        }
    }

    pub fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration { key: opt(key), operator: opt(operator), value: opt(value), effect: opt(effect), ..Default::default() }
    }

    pub fn pod_info(pod: Pod) -> PodInfo {
        PodInfo::new(Arc::new(pod)).expect("test pod has valid requests")
    }

    pub fn node_info(node: Node) -> NodeInfo {
        NodeInfo::new(Arc::new(node))
    }
}
