//! NodeUnschedulable: a cordoned node (`spec.unschedulable`, what
//! `kubectl cordon` sets) takes no new pods, except pods that tolerate the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint — DaemonSet pods do,
//! so that they still land on cordoned nodes.

use api::taints::{tolerations_tolerate_taint, TAINT_NODE_UNSCHEDULABLE};
use k8s_openapi::api::core::v1::{Node, Taint, Toleration};

use crate::framework::{Code, CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, Status};

pub const NAME: &str = "NodeUnschedulable";
pub const ERR_REASON: &str = "node(s) were unschedulable";
/// The filter plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeUnschedulable;

/// Whether a pod with these tolerations may land on `node`.
pub fn fits(tolerations: &[Toleration], node: &Node) -> bool {
    let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    if !cordoned {
        return true;
    }
    let taint = Taint { key: TAINT_NODE_UNSCHEDULABLE.into(), effect: "NoSchedule".into(), ..Default::default() };
    tolerations_tolerate_taint(tolerations, &taint)
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let tolerations = pod.tolerations();
        if fits(tolerations, &node.node) {
            Status::success()
        } else {
            Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, toleration};

    #[test]
    fn filter() {
        let cases = vec![
            ("schedulable node", false, vec![], true),
            ("cordoned node", true, vec![], false),
            ("cordoned node, pod tolerates it", true, vec![toleration(TAINT_NODE_UNSCHEDULABLE, "Exists", "", "NoSchedule")], true),
            ("cordoned node, pod tolerates everything", true, vec![toleration("", "Exists", "", "")], true),
            ("cordoned node, wrong effect tolerated", true, vec![toleration(TAINT_NODE_UNSCHEDULABLE, "Exists", "", "NoExecute")], false),
        ];
        for (name, cordoned, tolerations, want) in cases {
            let mut n = node("n");
            if let Some(spec) = n.spec.as_mut() {
                spec.unschedulable = Some(cordoned);
            }
            assert_eq!(fits(&tolerations, &n), want, "{name}");
        }
    }
}
