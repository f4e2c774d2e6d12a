//! NodeReady: pods go only to nodes whose agent says they are Ready.
//!
//! This plugin is tinykube's, not upstream's, and here is why. Upstream
//! kube-scheduler does not read node conditions: the node lifecycle
//! controller turns them into taints (`node.kubernetes.io/not-ready` when
//! `Ready` is False, `node.kubernetes.io/unreachable` when it is Unknown,
//! and the kubelet registers a new node with the not-ready taint), and
//! TaintToleration filters on those. tinykube's scheduler should not
//! depend on another component having tainted a node in time, so this
//! filter applies the same rule directly: a node whose `Ready` condition is
//! not `True` (or is missing) is filtered unless the pod tolerates the taint
//! the controller would have put there, with effect `NoSchedule`. A pod
//! that tolerates it (a DaemonSet pod, say) is placed as it would be
//! upstream. When the controller has tainted the node, TaintToleration runs
//! first and reports the taint, as upstream users would see it.

use api::taints::{tolerations_tolerate_taint, TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE};
use k8s_openapi::api::core::v1::{Node, Taint, Toleration};

use crate::framework::{Code, CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, Status};

pub const NAME: &str = "NodeReady";
/// The reason the pre-framework scheduler's `CheckNodeCondition` gave.
pub const ERR_REASON: &str = "node(s) were not ready";

/// The filter plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeReady;

/// The taint the node lifecycle controller puts on a node in this state,
/// or `None` for a Ready node.
pub fn condition_taint(node: &Node) -> Option<Taint> {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    let key = match ready {
        Some("True") => return None,
        Some("Unknown") => TAINT_NODE_UNREACHABLE,
        _ => TAINT_NODE_NOT_READY,
    };
    Some(Taint { key: key.into(), effect: "NoSchedule".into(), ..Default::default() })
}

/// Whether a pod with these tolerations may land on `node`.
pub fn fits(tolerations: &[Toleration], node: &Node) -> bool {
    condition_taint(node).is_none_or(|taint| tolerations_tolerate_taint(tolerations, &taint))
}

impl Plugin for NodeReady {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodeReady {
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
    use k8s_openapi::api::core::v1::NodeCondition;

    #[test]
    fn filter() {
        let cases = vec![
            ("Ready=True", Some("True"), vec![], true),
            ("Ready=False", Some("False"), vec![], false),
            ("Ready=Unknown", Some("Unknown"), vec![], false),
            ("no Ready condition yet", None, vec![], false),
            ("Ready=False, not-ready tolerated", Some("False"), vec![toleration(TAINT_NODE_NOT_READY, "Exists", "", "NoSchedule")], true),
            ("Ready=Unknown, only not-ready tolerated", Some("Unknown"), vec![toleration(TAINT_NODE_NOT_READY, "Exists", "", "")], false),
            ("Ready=Unknown, unreachable tolerated", Some("Unknown"), vec![toleration(TAINT_NODE_UNREACHABLE, "Exists", "", "")], true),
            (
                "Ready=False, NoExecute toleration does not help",
                Some("False"),
                vec![toleration(TAINT_NODE_NOT_READY, "Exists", "", "NoExecute")],
                false,
            ),
        ];
        for (name, ready, tolerations, want) in cases {
            let mut n = node("n");
            if let Some(status) = n.status.as_mut() {
                status.conditions = ready.map(|r| vec![NodeCondition { type_: "Ready".into(), status: r.into(), ..Default::default() }]);
            }
            assert_eq!(fits(&tolerations, &n), want, "{name}");
        }
    }
}
