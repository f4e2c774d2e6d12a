//! `ScheduleAnyway`: PreScore counts, Score charges, NormalizeScore turns
//! the charge into a preference (upstream `scoring.go`).
//!
//! A node's raw score is what placing the pod there would *cost*: for each
//! soft constraint, the matching pods in its domain times the constraint's
//! weight, plus `maxSkew - 1`. The weight is `ln(domains + 2)`, so that a
//! constraint over many small domains (hostnames) is not drowned out by
//! one over a few large ones (zones); adding `maxSkew - 1` to every node
//! waters down the differences the larger `maxSkew` tolerates.
//! NormalizeScore then flips the cost into a score from 0 to 100, where the
//! cheapest node gets the most:
//!
//! ```text
//! score = 100 * (max + min - raw) / max        (all 100 when max is 0)
//! ```
//!
//! Only domains of *feasible* nodes are counted, but their pods are counted
//! over all nodes that the inclusion policies admit. With the pod's own
//! constraints, a feasible node missing one of their keys is not ranked
//! (it scores 0); system-default constraints do not demand every key, so a
//! cluster without zone labels still spreads over hostnames.

use std::collections::{BTreeMap, BTreeSet};

use super::{count_pods_match_selector, node_has_all_topology_keys, Constraint, LABEL_HOSTNAME};
use crate::framework::{NodeInfo, NodeScore, PodInfo, MAX_NODE_SCORE};

/// Where PreScore leaves its counts in the cycle state.
pub const PRE_SCORE_STATE_KEY: &str = "PreScorePodTopologySpread";

/// The counts of one cycle (upstream `preScoreState`).
#[derive(Debug, Clone, PartialEq)]
pub struct PreScoreState {
    pub constraints: Vec<Constraint>,
    /// Feasible nodes missing a topology key of the pod's own constraints;
    /// they are not ranked.
    pub ignored_nodes: BTreeSet<String>,
    /// Per constraint: the domains of the feasible nodes with their
    /// matching pods. Hostname constraints are counted per node in Score
    /// instead, and have no entries here.
    pub domain_counts: Vec<BTreeMap<String, i64>>,
    /// Per constraint: `ln(domains + 2)` (upstream
    /// `TopologyNormalizingWeight`).
    pub weights: Vec<f64>,
}

/// The weight of a constraint with `domains` domains among the feasible
/// nodes (upstream `topologyNormalizingWeight`).
pub fn topology_normalizing_weight(domains: usize) -> f64 {
    (domains as f64 + 2.0).ln()
}

/// One constraint's raw score for a node whose domain holds `count`
/// matching pods (upstream `scoreForCount`).
pub fn score_for_count(count: i64, max_skew: i32, weight: f64) -> f64 {
    count as f64 * weight + f64::from(max_skew - 1)
}

impl PreScoreState {
    /// Finds the domains of `feasible` nodes and counts their pods over
    /// `all_nodes` (upstream `initPreScoreState` and `PreScore`).
    pub fn new(
        pod: &PodInfo,
        constraints: Vec<Constraint>,
        require_all_topologies: bool,
        feasible: &[&NodeInfo],
        all_nodes: &[NodeInfo],
    ) -> Self {
        let namespace = pod.pod.metadata.namespace.as_deref();
        let mut ignored_nodes = BTreeSet::new();
        let mut domain_counts: Vec<BTreeMap<String, i64>> = vec![BTreeMap::new(); constraints.len()];
        for node in feasible {
            if require_all_topologies && !node_has_all_topology_keys(node, &constraints) {
                ignored_nodes.insert(node.name().to_string());
                continue;
            }
            for (c, counts) in constraints.iter().zip(domain_counts.iter_mut()) {
                if c.topology_key != LABEL_HOSTNAME {
                    counts.entry(domain_of(node, c)).or_insert(0);
                }
            }
        }
        let weights = constraints
            .iter()
            .zip(&domain_counts)
            .map(|(c, counts)| {
                let domains = if c.topology_key == LABEL_HOSTNAME { feasible.len() - ignored_nodes.len() } else { counts.len() };
                topology_normalizing_weight(domains)
            })
            .collect();
        for node in all_nodes {
            if require_all_topologies && !node_has_all_topology_keys(node, &constraints) {
                continue;
            }
            for (c, counts) in constraints.iter().zip(domain_counts.iter_mut()) {
                if !c.includes_node(pod, &node.node) {
                    continue;
                }
                // Only domains of feasible nodes are worth counting.
                if let Some(count) = counts.get_mut(&domain_of(node, c)) {
                    *count += count_pods_match_selector(&node.pods, c, namespace);
                }
            }
        }
        PreScoreState { constraints, ignored_nodes, domain_counts, weights }
    }

    /// The node's raw score: the weighted matching pods of its domains,
    /// rounded. Lower is better until [`PreScoreState::normalize`].
    pub fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        if self.ignored_nodes.contains(node.name()) {
            return 0;
        }
        let namespace = pod.pod.metadata.namespace.as_deref();
        let mut score = 0.0;
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(domain) = node.labels().get(&c.topology_key) else { continue };
            let count = if c.topology_key == LABEL_HOSTNAME {
                count_pods_match_selector(&node.pods, c, namespace)
            } else {
                self.domain_counts[i].get(domain).copied().unwrap_or(0)
            };
            score += score_for_count(count, c.max_skew, self.weights[i]);
        }
        score.round() as i64
    }

    /// Turns raw costs into scores, the cheapest node highest; ignored
    /// nodes get 0 (upstream `NormalizeScore`).
    pub fn normalize(&self, scores: &mut [NodeScore]) {
        let ranked = || scores.iter().filter(|s| !self.ignored_nodes.contains(&s.name)).map(|s| s.score);
        let (min, max) = (ranked().min().unwrap_or(0), ranked().max().unwrap_or(0));
        for s in scores.iter_mut() {
            s.score = if self.ignored_nodes.contains(&s.name) {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - s.score) / max
            };
        }
    }
}

fn domain_of(node: &NodeInfo, c: &Constraint) -> String {
    // A node without the key is in the "" domain; only system defaults,
    // which do not require every key, let such a node get this far.
    node.labels().get(&c.topology_key).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{app_pod, snapshot, spread, with_constraints, zoned};
    use super::super::{PodTopologySpread, Workloads, DO_NOT_SCHEDULE, LABEL_HOSTNAME, LABEL_TOPOLOGY_ZONE, SCHEDULE_ANYWAY};
    use super::*;
    use crate::framework::{CycleState, PodInfo, ScorePlugin, Status};
    use crate::plugins::testing::{labels, pod};
    use k8s_openapi::api::core::v1::{Node, Pod, Service, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// PreScore, Score and NormalizeScore over the feasible nodes named,
    /// with `plugin`: each node's final score.
    fn run_with(plugin: &PodTopologySpread, pod: &PodInfo, nodes: &[Node], pods: &[Pod], feasible: &[&str]) -> Vec<(String, i64)> {
        let all = snapshot(nodes, pods);
        let feasible: Vec<&NodeInfo> = all.iter().filter(|n| feasible.contains(&n.name())).collect();
        let mut state = CycleState::default();
        let pre = plugin.pre_score(&mut state, pod, &feasible, &all);
        assert!(pre.is_success(), "PreScore: {pre:?}");
        let mut scores: Vec<NodeScore> = feasible
            .iter()
            .map(|n| NodeScore { name: n.name().to_string(), score: plugin.score(&state, pod, n).expect("score") })
            .collect();
        assert!(plugin.normalize_score(&state, pod, &mut scores).is_success());
        scores.into_iter().map(|s| (s.name, s.score)).collect()
    }

    fn run(pod: &PodInfo, nodes: &[Node], pods: &[Pod], feasible: &[&str]) -> Vec<(String, i64)> {
        run_with(&PodTopologySpread::default(), pod, nodes, pods, feasible)
    }

    fn scores(kv: &[(&str, i64)]) -> Vec<(String, i64)> {
        kv.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    fn hosts(names: &[&str]) -> Vec<Node> {
        names.iter().map(|n| zoned(n, "")).collect()
    }

    #[test]
    fn weights_and_counts() {
        // ln(3 + 2) for three hostnames, ln(2 + 2) for two zones.
        assert!((topology_normalizing_weight(3) - 1.609).abs() < 0.001);
        assert!((topology_normalizing_weight(2) - 1.386).abs() < 0.001);
        assert_eq!(score_for_count(0, 1, 1.609), 0.0);
        assert_eq!(score_for_count(2, 3, 1.5), 5.0);
    }

    #[test]
    fn score_table() {
        struct Case {
            name: &'static str,
            pod: PodInfo,
            nodes: Vec<Node>,
            pods: Vec<Pod>,
            feasible: &'static [&'static str],
            want: &'static [(&'static str, i64)],
        }
        let web = |name: &str, node: &str| app_pod(name, "web", node);
        let soft = |key: &str, max_skew: i32| spread(key, max_skew, SCHEDULE_ANYWAY, "web");
        let incoming = |constraints| with_constraints(app_pod("new", "web", ""), constraints);
        let cases = vec![
            Case {
                name: "no matching pods anywhere: all equal",
                pod: incoming(vec![soft(LABEL_HOSTNAME, 1)]),
                nodes: hosts(&["n1", "n2", "n3"]),
                pods: vec![],
                feasible: &["n1", "n2", "n3"],
                want: &[("n1", 100), ("n2", 100), ("n3", 100)],
            },
            Case {
                // weight ln(5) = 1.609: raw 3.2 -> 3, 1.6 -> 2, 0; max 3, min 0.
                name: "hostname: fewer matching pods, higher score",
                pod: incoming(vec![soft(LABEL_HOSTNAME, 1)]),
                nodes: hosts(&["n1", "n2", "n3"]),
                pods: vec![web("a", "n1"), web("b", "n1"), web("c", "n2")],
                feasible: &["n1", "n2", "n3"],
                want: &[("n1", 0), ("n2", 33), ("n3", 100)],
            },
            Case {
                // raw 3+2=5, 2+2=4, 0+2=2; max 5, min 2: 100*(7-s)/5.
                name: "maxSkew 3 waters the differences down",
                pod: incoming(vec![soft(LABEL_HOSTNAME, 3)]),
                nodes: hosts(&["n1", "n2", "n3"]),
                pods: vec![web("a", "n1"), web("b", "n1"), web("c", "n2")],
                feasible: &["n1", "n2", "n3"],
                want: &[("n1", 40), ("n2", 60), ("n3", 100)],
            },
            Case {
                // Zones a (a1, a2) and b (b1): weight ln(4) = 1.386; zone a
                // holds 2 pods (raw 2.77 -> 3), zone b 1 (1.39 -> 1).
                name: "zones: every node of a domain scores alike",
                pod: incoming(vec![soft(LABEL_TOPOLOGY_ZONE, 1)]),
                nodes: vec![zoned("a1", "a"), zoned("a2", "a"), zoned("b1", "b")],
                pods: vec![web("x", "a1"), web("y", "a2"), web("z", "b1")],
                feasible: &["a1", "a2", "b1"],
                want: &[("a1", 33), ("a2", 33), ("b1", 100)],
            },
            Case {
                // Only zones with a feasible node are domains; pods in zone b
                // (not feasible) do not matter, pods on infeasible a2 do.
                name: "domains come from feasible nodes, counts from all",
                pod: incoming(vec![soft(LABEL_TOPOLOGY_ZONE, 1)]),
                nodes: vec![zoned("a1", "a"), zoned("a2", "a"), zoned("b1", "b"), zoned("c1", "c")],
                pods: vec![web("x", "a2"), web("y", "b1"), web("z", "b1")],
                feasible: &["a1", "c1"],
                want: &[("a1", 0), ("c1", 100)],
            },
            Case {
                name: "own constraints: a node without the key is not ranked",
                pod: incoming(vec![soft(LABEL_TOPOLOGY_ZONE, 1)]),
                nodes: vec![zoned("a1", "a"), zoned("b1", "b"), zoned("bare", "")],
                pods: vec![web("x", "a1")],
                feasible: &["a1", "b1", "bare"],
                want: &[("a1", 0), ("b1", 100), ("bare", 0)],
            },
            Case {
                name: "hard constraints are not scored here",
                pod: incoming(vec![soft(LABEL_HOSTNAME, 1), spread(LABEL_TOPOLOGY_ZONE, 1, DO_NOT_SCHEDULE, "web")]),
                nodes: hosts(&["n1", "n2"]),
                pods: vec![web("a", "n1")],
                feasible: &["n1", "n2"],
                want: &[("n1", 0), ("n2", 100)],
            },
            Case {
                name: "terminating pods and other namespaces do not count",
                pod: incoming(vec![soft(LABEL_HOSTNAME, 1)]),
                nodes: hosts(&["n1", "n2"]),
                pods: vec![
                    {
                        let mut p = web("a", "n1");
                        p.metadata.deletion_timestamp = Some(api::time::now());
                        p
                    },
                    {
                        let mut p = web("b", "n1");
                        p.metadata.namespace = Some("other".into());
                        p
                    },
                ],
                feasible: &["n1", "n2"],
                want: &[("n1", 100), ("n2", 100)],
            },
        ];
        for c in cases {
            assert_eq!(run(&c.pod, &c.nodes, &c.pods, c.feasible), scores(c.want), "{}", c.name);
        }
    }

    /// A Service selects the pod, which has no constraints: the system
    /// defaults spread it over hostnames even though no node has a zone.
    #[test]
    fn system_defaults_spread_service_pods() {
        let service = Service {
            metadata: ObjectMeta { name: Some("web".into()), namespace: Some("default".into()), ..Default::default() },
            spec: Some(ServiceSpec { selector: Some(labels(&[("app", "web")])), ..Default::default() }),
            ..Default::default()
        };
        let plugin = PodTopologySpread::new(Workloads { services: [service].into_iter().collect(), ..Default::default() });
        let nodes = hosts(&["n1", "n2", "n3"]);
        let pods = vec![app_pod("a", "web", "n1"), app_pod("b", "web", "n1"), app_pod("c", "web", "n2")];
        // ln(5) weight, maxSkew 3: raw 5.2 -> 5, 3.6 -> 4, 2; 100*(7-s)/5.
        let new = crate::plugins::testing::pod_info(app_pod("new", "web", ""));
        assert_eq!(run_with(&plugin, &new, &nodes, &pods, &["n1", "n2", "n3"]), scores(&[("n1", 40), ("n2", 60), ("n3", 100)]));

        // A pod no workload selects gets no default constraints.
        let mut state = CycleState::default();
        let all = snapshot(&nodes, &pods);
        let feasible: Vec<&NodeInfo> = all.iter().collect();
        let lonely = crate::plugins::testing::pod_info(pod("lonely"));
        assert_eq!(plugin.pre_score(&mut state, &lonely, &feasible, &all), Status::skip());
        let hard_only = with_constraints(app_pod("p", "web", ""), vec![spread(LABEL_HOSTNAME, 1, DO_NOT_SCHEDULE, "web")]);
        assert_eq!(plugin.pre_score(&mut state, &hard_only, &feasible, &all), Status::skip(), "own constraints replace the defaults");
    }

    #[test]
    fn a_soft_constraint_with_other_keys_still_ranks() {
        let constraint = spread("rack", 1, SCHEDULE_ANYWAY, "web");
        let mut nodes = hosts(&["r1", "r2"]);
        for (n, rack) in nodes.iter_mut().zip(["x", "y"]) {
            n.metadata.labels.get_or_insert_default().insert("rack".into(), rack.into());
        }
        let pod = with_constraints(app_pod("new", "web", ""), vec![constraint]);
        let got = run(&pod, &nodes, &[app_pod("a", "web", "r1")], &["r1", "r2"]);
        assert_eq!(got, scores(&[("r1", 0), ("r2", 100)]));
    }
}
