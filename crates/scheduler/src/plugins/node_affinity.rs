//! NodeAffinity: a pod's `nodeSelector` and required node affinity pick
//! the nodes it may run on, by their labels.
//!
//! `spec.nodeSelector` is a plain map: every pair must be among the node's
//! labels. `spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`
//! is a list of terms, any of which may match; within a term every
//! requirement must hold. Requirements compare a label with the operators
//! `In`, `NotIn`, `Exists`, `DoesNotExist`, and `Gt`/`Lt` (which read the
//! label as an integer); `matchFields` may name the node (`metadata.name`).
//! Both must be satisfied when both are given. The preferred (soft)
//! affinity only scores nodes upstream, which tinykube does not do.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod};

use crate::framework::{Code, CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, Status};

pub const NAME: &str = "NodeAffinity";
pub const ERR_REASON: &str = "node(s) didn't match Pod's node affinity/selector";

/// The filter plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeAffinity;

/// Whether one requirement holds for a label value (`None`: no such label).
/// An unknown operator or a malformed `Gt`/`Lt` value matches nothing, as
/// upstream treats a requirement it cannot parse.
pub fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let compare = |ordering: std::cmp::Ordering| {
        let (Some(label), [bound]) = (value, values) else {
            return false;
        };
        match (label.parse::<i64>(), bound.parse::<i64>()) {
            (Ok(label), Ok(bound)) => label.cmp(&bound) == ordering,
            _ => false,
        }
    };
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => compare(std::cmp::Ordering::Greater),
        "Lt" => compare(std::cmp::Ordering::Less),
        _ => false,
    }
}

/// Whether one term matches: all its label expressions and all its field
/// expressions hold. A term with neither matches no node.
pub fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions.iter().all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| r.key == "metadata.name" && requirement_matches(r, Some(node_name)))
}

/// Whether any term of a node selector matches.
pub fn node_selector_matches(selector: &NodeSelector, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
    selector.node_selector_terms.iter().any(|t| term_matches(t, labels, node_name))
}

/// Whether `pod`'s nodeSelector and required node affinity both admit `node`.
pub fn fits(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let node_name = node.metadata.name.as_deref().unwrap_or_default();
    let selector_ok = spec.node_selector.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref());
    selector_ok && required.is_none_or(|sel| node_selector_matches(sel, labels, node_name))
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if fits(&pod.pod, &node.node) {
            Status::success()
        } else {
            Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{labels, node, pod};
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity as NodeAffinitySpec};

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn term(expressions: Vec<NodeSelectorRequirement>, fields: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: (!expressions.is_empty()).then_some(expressions),
            match_fields: (!fields.is_empty()).then_some(fields),
        }
    }

    #[test]
    fn requirement_operators() {
        let cases = [
            ("In, value listed", req("zone", "In", &["a", "b"]), Some("b"), true),
            ("In, value not listed", req("zone", "In", &["a"]), Some("c"), false),
            ("In, label missing", req("zone", "In", &["a"]), None, false),
            ("NotIn, value not listed", req("zone", "NotIn", &["a"]), Some("c"), true),
            ("NotIn, value listed", req("zone", "NotIn", &["a"]), Some("a"), false),
            ("NotIn, label missing", req("zone", "NotIn", &["a"]), None, true),
            ("Exists, present", req("gpu", "Exists", &[]), Some(""), true),
            ("Exists, missing", req("gpu", "Exists", &[]), None, false),
            ("DoesNotExist, missing", req("gpu", "DoesNotExist", &[]), None, true),
            ("DoesNotExist, present", req("gpu", "DoesNotExist", &[]), Some("x"), false),
            ("Gt, greater", req("cores", "Gt", &["4"]), Some("8"), true),
            ("Gt, equal", req("cores", "Gt", &["4"]), Some("4"), false),
            ("Gt, not a number", req("cores", "Gt", &["4"]), Some("many"), false),
            ("Gt, missing", req("cores", "Gt", &["4"]), None, false),
            ("Gt, two values", req("cores", "Gt", &["4", "5"]), Some("8"), false),
            ("Lt, less", req("cores", "Lt", &["4"]), Some("-1"), true),
            ("Lt, greater", req("cores", "Lt", &["4"]), Some("5"), false),
            ("unknown operator", req("zone", "Like", &["a"]), Some("a"), false),
        ];
        for (name, r, value, want) in cases {
            assert_eq!(requirement_matches(&r, value), want, "{name}");
        }
    }

    #[test]
    fn filter() {
        let required = |terms: Vec<NodeSelectorTerm>| {
            Some(Affinity {
                node_affinity: Some(NodeAffinitySpec {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector { node_selector_terms: terms }),
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        let node_labels = labels(&[("zone", "a"), ("disk", "ssd")]);
        let cases = vec![
            ("nothing asked", labels(&[]), None, true),
            ("nodeSelector matches", labels(&[("zone", "a")]), None, true),
            ("nodeSelector value differs", labels(&[("zone", "b")]), None, false),
            ("nodeSelector label missing", labels(&[("gpu", "true")]), None, false),
            ("affinity term matches", labels(&[]), required(vec![term(vec![req("zone", "In", &["a", "b"])], vec![])]), true),
            (
                "affinity: every requirement of a term must hold",
                labels(&[]),
                required(vec![term(vec![req("zone", "In", &["a"]), req("disk", "In", &["hdd"])], vec![])]),
                false,
            ),
            (
                "affinity: any term may match",
                labels(&[]),
                required(vec![term(vec![req("zone", "In", &["z"])], vec![]), term(vec![req("disk", "Exists", &[])], vec![])]),
                true,
            ),
            ("affinity: an empty term matches nothing", labels(&[]), required(vec![term(vec![], vec![])]), false),
            (
                "affinity: matchFields on the node name",
                labels(&[]),
                required(vec![term(vec![], vec![req("metadata.name", "In", &["n"])])]),
                true,
            ),
            (
                "affinity: matchFields on another name",
                labels(&[]),
                required(vec![term(vec![], vec![req("metadata.name", "In", &["m"])])]),
                false,
            ),
            (
                "selector and affinity must both hold",
                labels(&[("zone", "a")]),
                required(vec![term(vec![req("disk", "NotIn", &["ssd"])], vec![])]),
                false,
            ),
        ];
        for (name, selector, affinity, want) in cases {
            let mut n = node("n");
            n.metadata.labels = Some(node_labels.clone());
            let mut p = pod("p");
            if let Some(spec) = p.spec.as_mut() {
                spec.node_selector = (!selector.is_empty()).then_some(selector);
                spec.affinity = affinity;
            }
            assert_eq!(fits(&p, &n), want, "{name}");
        }
    }
}
