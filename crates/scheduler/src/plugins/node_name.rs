//! NodeName: a pod that names its node (`spec.nodeName`) fits only there.
//!
//! A pod created with `spec.nodeName` already set is not scheduled at all
//! (it is bound from the start), so this filter matters for pods whose
//! name is checked against nodes before binding, as upstream keeps it.

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{Code, CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, Status};

pub const NAME: &str = "NodeName";
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

/// The filter plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeName;

/// Whether `pod` may run on the node called `node_name`.
pub fn fits(pod: &Pod, node_name: &str) -> bool {
    match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        None | Some("") => true,
        Some(wanted) => wanted == node_name,
    }
}

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if fits(&pod.pod, node.name()) {
            Status::success()
        } else {
            Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, node_info, pod, pod_info};

    #[test]
    fn filter() {
        let cases = [
            ("no node name fits anywhere", "", "node-1", true),
            ("same name fits", "node-1", "node-1", true),
            ("another name does not", "node-2", "node-1", false),
        ];
        for (name, wanted, node_name, want) in cases {
            let mut p = pod("p");
            if let Some(spec) = p.spec.as_mut() {
                spec.node_name = (!wanted.is_empty()).then(|| wanted.to_string());
            }
            let status = NodeName.filter(&CycleState::default(), &pod_info(p), &node_info(node(node_name)));
            let expected = if want { Status::success() } else { Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON) };
            assert_eq!(status, expected, "{name}");
        }
    }
}
