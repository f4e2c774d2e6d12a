//! TaintToleration: a node's taints repel pods that do not tolerate them.
//!
//! A taint `key=value:Effect` on a node keeps away every pod without a
//! matching toleration. The filter looks at the two effects that forbid
//! placement, `NoSchedule` and `NoExecute`; `PreferNoSchedule` only lowers
//! a node's score upstream, which tinykube does not score. How a
//! toleration matches a taint is `api::taints::tolerates_taint`, shared with
//! the taint-eviction controller.

use api::taints::tolerations_tolerate_taint;
use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::framework::{Code, CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, Status};

pub const NAME: &str = "TaintToleration";
/// The reason's prefix; the first untolerated taint follows as
/// `{key: value}`, as upstream's `ErrReasonNotMatch` formats it.
pub const ERR_REASON: &str = "node(s) had untolerated taint";

/// The filter plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaintToleration;

/// The first `NoSchedule` or `NoExecute` taint no toleration matches.
pub fn find_untolerated_taint<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerations_tolerate_taint(tolerations, t))
}

/// The reason string for an untolerated taint: `node(s) had untolerated
/// taint {dedicated: gpu}`.
pub fn err_reason(taint: &Taint) -> String {
    format!("{ERR_REASON} {{{}: {}}}", taint.key, taint.value.as_deref().unwrap_or_default())
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let taints = node.node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
        let tolerations = pod.tolerations();
        match find_untolerated_taint(taints, tolerations) {
            None => Status::success(),
            Some(taint) => Status::new(Code::UnschedulableAndUnresolvable, err_reason(taint)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, node_info, pod, pod_info, taint, toleration};

    #[test]
    fn filter() {
        let cases = vec![
            ("no taints", vec![], vec![], None),
            (
                "untolerated NoSchedule",
                vec![taint("dedicated", "gpu", "NoSchedule")],
                vec![],
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                "untolerated NoExecute",
                vec![taint("node.kubernetes.io/unreachable", "", "NoExecute")],
                vec![],
                Some("node(s) had untolerated taint {node.kubernetes.io/unreachable: }"),
            ),
            ("PreferNoSchedule never filters", vec![taint("dedicated", "gpu", "PreferNoSchedule")], vec![], None),
            ("tolerated", vec![taint("dedicated", "gpu", "NoSchedule")], vec![toleration("dedicated", "Equal", "gpu", "NoSchedule")], None),
            (
                "first untolerated of several is reported",
                vec![taint("a", "1", "NoSchedule"), taint("b", "2", "NoSchedule")],
                vec![toleration("a", "Exists", "", "")],
                Some("node(s) had untolerated taint {b: 2}"),
            ),
        ];
        for (name, taints, tolerations, want) in cases {
            let mut n = node("n");
            if let Some(spec) = n.spec.as_mut() {
                spec.taints = Some(taints);
            }
            let mut p = pod("p");
            if let Some(spec) = p.spec.as_mut() {
                spec.tolerations = Some(tolerations);
            }
            let status = TaintToleration.filter(&CycleState::default(), &pod_info(p), &node_info(n));
            let expected = match want {
                None => Status::success(),
                Some(reason) => Status::new(Code::UnschedulableAndUnresolvable, reason),
            };
            assert_eq!(status, expected, "{name}");
        }
    }
}
