//! `DoNotSchedule`: PreFilter counts, Filter judges (upstream
//! `filtering.go`).
//!
//! PreFilter walks every node once. A node counts if it carries the
//! topology keys of all hard constraints; then, per constraint that its
//! inclusion policies admit, its matching pods are added to its domain.
//! Filter then checks each node in constant time:
//!
//! ```text
//! skew = pods in the node's domain + (1 if the pod matches its own selector)
//!        - global minimum (0 while fewer domains than minDomains exist)
//! skew > maxSkew  =>  "node(s) didn't match pod topology spread constraints"
//! ```
//!
//! A node without a constraint's topology key cannot belong to any domain,
//! and no change of pods will fix that, so it is rejected as unresolvable
//! with "(missing required label)". A pod that does not match its own
//! selector adds nothing to the domain it joins.

use std::collections::BTreeMap;

use super::{
    count_pods_match_selector, node_has_all_topology_keys, Constraint, ERR_REASON_CONSTRAINTS_NOT_MATCH, ERR_REASON_NODE_LABEL_NOT_MATCH,
};
use crate::framework::{Code, NodeInfo, PodInfo, Status};

/// Where PreFilter leaves its counts in the cycle state.
pub const PRE_FILTER_STATE_KEY: &str = "PreFilterPodTopologySpread";

/// The counts of one cycle (upstream `preFilterState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreFilterState {
    pub constraints: Vec<Constraint>,
    /// Per constraint: every domain among the counted nodes, with its
    /// number of matching pods (upstream `TpValueToMatchNum`).
    pub domain_counts: Vec<BTreeMap<String, i64>>,
}

impl PreFilterState {
    /// Counts the matching pods of every domain over all `nodes` (upstream
    /// `calPreFilterState`).
    pub fn new(pod: &PodInfo, constraints: Vec<Constraint>, nodes: &[NodeInfo]) -> Self {
        let namespace = pod.pod.metadata.namespace.as_deref();
        let mut domain_counts = vec![BTreeMap::new(); constraints.len()];
        for node in nodes.iter().filter(|n| node_has_all_topology_keys(n, &constraints)) {
            for (c, counts) in constraints.iter().zip(domain_counts.iter_mut()) {
                if !c.includes_node(pod, &node.node) {
                    continue;
                }
                let domain = node.labels()[&c.topology_key].clone();
                *counts.entry(domain).or_insert(0) += count_pods_match_selector(&node.pods, c, namespace);
            }
        }
        PreFilterState { constraints, domain_counts }
    }

    /// The global minimum of constraint `i`: its emptiest domain, or 0
    /// while there are fewer domains than `minDomains` (upstream
    /// `minMatchNum`).
    pub fn min_match_num(&self, i: usize) -> i64 {
        let counts = &self.domain_counts[i];
        if counts.len() < self.constraints[i].min_domains.max(0) as usize {
            return 0;
        }
        counts.values().copied().min().unwrap_or(0)
    }

    /// Whether placing `pod` on `node` keeps every hard constraint's skew
    /// within its `maxSkew`.
    pub fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Status {
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(domain) = node.labels().get(&c.topology_key) else {
                return Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            let self_match = i64::from(c.selects(pod.pod.metadata.labels.as_ref()));
            let match_num = self.domain_counts[i].get(domain).copied().unwrap_or(0);
            let skew = match_num + self_match - self.min_match_num(i);
            if skew > i64::from(c.max_skew) {
                tracing::trace!(node = node.name(), topology_key = %c.topology_key, match_num, self_match, max_skew = c.max_skew, "skew too large");
                return Status::new(Code::Unschedulable, ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{app_pod, snapshot, spread, with_constraints, zoned};
    use super::super::{PodTopologySpread, DO_NOT_SCHEDULE, LABEL_HOSTNAME, LABEL_TOPOLOGY_ZONE, SCHEDULE_ANYWAY};
    use crate::framework::{CycleState, FilterPlugin, PodInfo, Status};
    use crate::plugins::testing::{labels, taint, toleration};
    use k8s_openapi::api::core::v1::{Node, Pod, TopologySpreadConstraint};

    const NOT_MATCH: &str = super::ERR_REASON_CONSTRAINTS_NOT_MATCH;
    const MISSING: &str = super::ERR_REASON_NODE_LABEL_NOT_MATCH;

    /// Runs PreFilter and Filter on every node: the nodes that pass, and
    /// each rejected node with its reason.
    fn run(pod: &PodInfo, nodes: &[Node], pods: &[Pod]) -> (Vec<String>, Vec<(String, String)>) {
        let snapshot = snapshot(nodes, pods);
        let plugin = PodTopologySpread::default();
        let mut state = CycleState::default();
        let pre = plugin.pre_filter(&mut state, pod, &snapshot);
        assert!(pre.is_success(), "PreFilter: {pre:?}");
        let (mut pass, mut fail) = (Vec::new(), Vec::new());
        for node in &snapshot {
            let status = plugin.filter(&state, pod, node);
            if status.is_success() {
                pass.push(node.name().to_string());
            } else {
                fail.push((node.name().to_string(), status.message()));
            }
        }
        (pass, fail)
    }

    fn three_zones() -> Vec<Node> {
        vec![zoned("a1", "a"), zoned("a2", "a"), zoned("b1", "b"), zoned("c1", "c")]
    }

    fn zone(max_skew: i32) -> TopologySpreadConstraint {
        spread(LABEL_TOPOLOGY_ZONE, max_skew, DO_NOT_SCHEDULE, "web")
    }

    #[test]
    fn filter_table() {
        struct Case {
            name: &'static str,
            pod: PodInfo,
            nodes: Vec<Node>,
            pods: Vec<Pod>,
            pass: &'static [&'static str],
            fail: &'static [(&'static str, &'static str)],
        }
        let web = |name: &str, node: &str| app_pod(name, "web", node);
        let incoming = |constraints| with_constraints(app_pod("new", "web", ""), constraints);
        let cases = vec![
            Case {
                name: "empty cluster: every zone is fine",
                pod: incoming(vec![zone(1)]),
                nodes: three_zones(),
                pods: vec![],
                pass: &["a1", "a2", "b1", "c1"],
                fail: &[],
            },
            Case {
                name: "skew: zone a already holds one more than the minimum",
                pod: incoming(vec![zone(1)]),
                nodes: three_zones(),
                pods: vec![web("w1", "a1"), web("w2", "b1")],
                pass: &["c1"],
                fail: &[("a1", NOT_MATCH), ("a2", NOT_MATCH), ("b1", NOT_MATCH)],
            },
            Case {
                name: "maxSkew 2 tolerates it",
                pod: incoming(vec![zone(2)]),
                nodes: three_zones(),
                pods: vec![web("w1", "a1"), web("w2", "b1")],
                pass: &["a1", "a2", "b1", "c1"],
                fail: &[],
            },
            Case {
                name: "a domain is the zone, not the node: a2 is as full as a1",
                pod: incoming(vec![zone(1)]),
                nodes: three_zones(),
                pods: vec![web("w1", "a1"), web("w2", "b1"), web("w3", "c1")],
                pass: &["a1", "a2", "b1", "c1"],
                fail: &[],
            },
            Case {
                name: "a node without the topology key is rejected for good",
                pod: incoming(vec![zone(1)]),
                nodes: vec![zoned("a1", "a"), zoned("bare", "")],
                pods: vec![],
                pass: &["a1"],
                fail: &[("bare", MISSING)],
            },
            Case {
                name: "pods on nodes without the key are not counted",
                pod: incoming(vec![zone(1)]),
                nodes: vec![zoned("a1", "a"), zoned("b1", "b"), zoned("bare", "")],
                pods: vec![web("w1", "bare"), web("w2", "bare"), web("w3", "a1")],
                pass: &["b1"],
                fail: &[("a1", NOT_MATCH), ("bare", MISSING)],
            },
            Case {
                name: "a pod not matching its own selector adds nothing",
                pod: with_constraints(app_pod("new", "batch", ""), vec![zone(1)]),
                nodes: three_zones(),
                pods: vec![web("w1", "a1"), web("w2", "b1")],
                pass: &["a1", "a2", "b1", "c1"],
                fail: &[],
            },
            Case {
                name: "terminating pods are not counted",
                pod: incoming(vec![zone(1)]),
                nodes: three_zones(),
                pods: vec![
                    {
                        let mut p = web("w1", "a1");
                        p.metadata.deletion_timestamp = Some(api::time::now());
                        p
                    },
                    web("w2", "b1"),
                ],
                pass: &["a1", "a2", "c1"],
                fail: &[("b1", NOT_MATCH)],
            },
            Case {
                name: "other pods and other namespaces are not counted",
                pod: incoming(vec![zone(1)]),
                nodes: three_zones(),
                pods: vec![app_pod("db", "db", "a1"), {
                    let mut p = web("w1", "b1");
                    p.metadata.namespace = Some("other".into());
                    p
                }],
                pass: &["a1", "a2", "b1", "c1"],
                fail: &[],
            },
            Case {
                name: "minDomains: with 3 of 5 required zones the minimum is 0",
                pod: incoming(vec![TopologySpreadConstraint { min_domains: Some(5), ..zone(1) }]),
                nodes: three_zones(),
                pods: vec![web("w1", "a1"), web("w2", "b1"), web("w3", "c1")],
                pass: &[],
                fail: &[("a1", NOT_MATCH), ("a2", NOT_MATCH), ("b1", NOT_MATCH), ("c1", NOT_MATCH)],
            },
            Case {
                name: "minDomains met: the real minimum applies",
                pod: incoming(vec![TopologySpreadConstraint { min_domains: Some(3), ..zone(1) }]),
                nodes: three_zones(),
                pods: vec![web("w1", "a1"), web("w2", "b1"), web("w3", "c1")],
                pass: &["a1", "a2", "b1", "c1"],
                fail: &[],
            },
            Case {
                name: "hostname spreading: each node is a domain",
                pod: incoming(vec![spread(LABEL_HOSTNAME, 1, DO_NOT_SCHEDULE, "web")]),
                nodes: three_zones(),
                pods: vec![web("w1", "a1"), web("w2", "a2"), web("w3", "b1")],
                pass: &["c1"],
                fail: &[("a1", NOT_MATCH), ("a2", NOT_MATCH), ("b1", NOT_MATCH)],
            },
            Case {
                name: "two constraints: every one must hold",
                pod: incoming(vec![zone(1), spread(LABEL_HOSTNAME, 1, DO_NOT_SCHEDULE, "web")]),
                nodes: three_zones(),
                pods: vec![web("w1", "a1"), web("w2", "b1"), web("w3", "c1")],
                pass: &["a2"],
                fail: &[("a1", NOT_MATCH), ("b1", NOT_MATCH), ("c1", NOT_MATCH)],
            },
            Case {
                name: "matchLabelKeys: only the pod's own revision counts",
                pod: with_constraints(
                    {
                        let mut p = app_pod("new", "web", "");
                        p.metadata.labels = Some(labels(&[("app", "web"), ("pod-template-hash", "v2")]));
                        p
                    },
                    vec![TopologySpreadConstraint { match_label_keys: Some(vec!["pod-template-hash".into()]), ..zone(1) }],
                ),
                nodes: three_zones(),
                pods: vec![
                    {
                        let mut p = web("old", "b1");
                        p.metadata.labels = Some(labels(&[("app", "web"), ("pod-template-hash", "v1")]));
                        p
                    },
                    {
                        let mut p = web("new-1", "a1");
                        p.metadata.labels = Some(labels(&[("app", "web"), ("pod-template-hash", "v2")]));
                        p
                    },
                ],
                pass: &["b1", "c1"],
                fail: &[("a1", NOT_MATCH), ("a2", NOT_MATCH)],
            },
            Case {
                name: "soft constraints are not filtered",
                pod: incoming(vec![zone(1), spread(LABEL_HOSTNAME, 1, SCHEDULE_ANYWAY, "web")]),
                nodes: three_zones(),
                pods: vec![web("w1", "a1"), web("w2", "a1")],
                pass: &["b1", "c1"],
                fail: &[("a1", NOT_MATCH), ("a2", NOT_MATCH)],
            },
        ];
        for c in cases {
            let (pass, fail) = run(&c.pod, &c.nodes, &c.pods);
            assert_eq!(pass, c.pass, "{}: passing nodes", c.name);
            let want: Vec<(String, String)> = c.fail.iter().map(|(n, r)| (n.to_string(), r.to_string())).collect();
            assert_eq!(fail, want, "{}: rejected nodes", c.name);
        }
    }

    /// nodeAffinityPolicy and nodeTaintsPolicy decide which nodes' pods
    /// and domains count. Zone c's only node is outside the pod's node
    /// selector and tainted; zones a and b hold one pod each.
    #[test]
    fn node_inclusion_policies() {
        let mut c1 = zoned("c1", "c");
        c1.metadata.labels.get_or_insert_default().insert("disk".into(), "hdd".into());
        if let Some(spec) = c1.spec.as_mut() {
            spec.taints = Some(vec![taint("dedicated", "gpu", "NoSchedule")]);
        }
        let mut nodes = vec![zoned("a1", "a"), zoned("b1", "b"), c1];
        for n in nodes.iter_mut().take(2) {
            n.metadata.labels.get_or_insert_default().insert("disk".into(), "ssd".into());
        }
        let pods = vec![app_pod("w1", "web", "a1"), app_pod("w2", "web", "b1")];
        let pod = |affinity: Option<&str>, taints: Option<&str>, tolerate: bool| {
            let mut p = app_pod("new", "web", "");
            if let Some(spec) = p.spec.as_mut() {
                spec.node_selector = Some(labels(&[("disk", "ssd")]));
                if tolerate {
                    spec.tolerations = Some(vec![toleration("dedicated", "Exists", "", "")]);
                }
            }
            let c = TopologySpreadConstraint {
                node_affinity_policy: affinity.map(str::to_string),
                node_taints_policy: taints.map(str::to_string),
                ..zone(1)
            };
            with_constraints(p, vec![c])
        };
        // Filter alone, as the plugin sees every node (NodeAffinity and
        // TaintToleration would reject c1 before it, in the real cycle).
        let cases = [
            ("default: affinity honored, c does not count, the minimum is 1", pod(None, None, false), vec!["a1", "b1", "c1"]),
            ("affinity ignored, taints ignored: empty zone c counts", pod(Some("Ignore"), None, false), vec!["c1"]),
            (
                "affinity ignored, taints honored: c is tainted, does not count",
                pod(Some("Ignore"), Some("Honor"), false),
                vec!["a1", "b1", "c1"],
            ),
            ("affinity ignored, taints honored and tolerated: c counts", pod(Some("Ignore"), Some("Honor"), true), vec!["c1"]),
        ];
        for (name, p, want) in cases {
            let (pass, _) = run(&p, &nodes, &pods);
            assert_eq!(pass, want, "{name}");
        }
    }

    #[test]
    fn a_pod_without_hard_constraints_skips_the_filter() {
        let plugin = PodTopologySpread::default();
        let mut state = CycleState::default();
        let soft = with_constraints(app_pod("p", "web", ""), vec![spread(LABEL_HOSTNAME, 1, SCHEDULE_ANYWAY, "web")]);
        assert_eq!(plugin.pre_filter(&mut state, &soft, &snapshot(&three_zones(), &[])), Status::skip());
    }
}
