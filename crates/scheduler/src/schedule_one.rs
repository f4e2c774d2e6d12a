//! One scheduling decision: filter, score, select (upstream
//! `schedule_one.go`, `schedulePod`).
//!
//! 1. **Filter**: run every filter plugin's PreFilter once, then every
//!    filter plugin against every node; a node that any plugin rejects is
//!    out, and its status goes into the [`Diagnosis`].
//! 2. **Score**: if more than one node is left, every score plugin's
//!    PreScore runs once, then the plugin ranks each node and normalizes
//!    its ranks; the weighted sum is the node's score.
//! 3. **Select**: the highest score wins. Upstream breaks ties at random
//!    (reservoir sampling); tinykube breaks them round-robin over the tied
//!    nodes in name order, which spreads equal nodes just as well and keeps
//!    decisions reproducible in tests.
//!
//! Where tinykube simplifies: upstream stops filtering once it has found
//! enough feasible nodes in large clusters (`percentageOfNodesToScore`),
//! starting each cycle where the last left off; tinykube always looks at
//! every node.
//!
//! [`schedule_one`] is the whole decision as a pure function of a pod, the
//! nodes and the pods already placed — the scheduler's logic without the
//! api-server, for tests and for learning.

use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::framework::{CycleState, Diagnosis, FitError, Framework, NodeInfo, PodInfo};
use crate::plugins::default_framework;
use crate::plugins::pod_topology_spread::Workloads;

/// Upstream's `ErrNoNodesAvailable` text, the event message when the
/// cluster has no nodes at all.
pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";

/// Why a pod was not placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// The cluster has no nodes.
    NoNodesAvailable,
    /// Every node was filtered out; the message counts the reasons.
    Unschedulable(FitError),
    /// A plugin failed, or the pod cannot be evaluated (a malformed
    /// quantity): not the nodes' fault, so the pod is retried after backoff.
    Error(String),
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::NoNodesAvailable => f.write_str(NO_NODES_AVAILABLE),
            ScheduleError::Unschedulable(e) => e.fmt(f),
            ScheduleError::Error(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ScheduleError {}

/// The scheduling algorithm: a framework plus the tie-breaking state that
/// carries over from one decision to the next.
#[derive(Debug)]
pub struct Algorithm {
    framework: Framework,
    /// Advances on every tie so equal nodes take turns.
    next_tie: usize,
}

impl Algorithm {
    pub fn new(framework: Framework) -> Self {
        Algorithm { framework, next_tie: 0 }
    }

    /// Chooses a node for `pod` among `nodes` (a cache snapshot).
    pub fn schedule_pod(&mut self, pod: &PodInfo, nodes: &[NodeInfo]) -> Result<String, ScheduleError> {
        if nodes.is_empty() {
            return Err(ScheduleError::NoNodesAvailable);
        }
        let mut state = CycleState::default();
        let feasible = match self.find_nodes_that_fit(&mut state, pod, nodes)? {
            Ok(feasible) => feasible,
            Err(diagnosis) => {
                return Err(ScheduleError::Unschedulable(FitError { num_all_nodes: nodes.len(), diagnosis }));
            }
        };
        // With one node left there is nothing to rank.
        if feasible.len() == 1 || !self.framework.has_score_plugins() {
            return Ok(feasible[0].name().to_string());
        }
        self.framework.run_pre_score_plugins(&mut state, pod, &feasible, nodes).map_err(|s| ScheduleError::Error(s.message()))?;
        let totals = self.framework.run_score_plugins(&state, pod, &feasible).map_err(|s| ScheduleError::Error(s.message()))?;
        let scored: Vec<(&str, i64)> = feasible.iter().map(|n| n.name()).zip(totals).collect();
        Ok(self.select_host(&scored))
    }

    /// The nodes every filter accepts, or — if there are none — why each
    /// node was rejected. PreFilter runs first; one that rejects the pod
    /// rejects every node with its status. A plugin returning
    /// [`Code::Error`](crate::framework::Code::Error) aborts the cycle.
    fn find_nodes_that_fit<'a>(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &'a [NodeInfo],
    ) -> Result<Result<Vec<&'a NodeInfo>, Diagnosis>, ScheduleError> {
        let mut diagnosis = Diagnosis::default();
        if let Err((plugin, status)) = self.framework.run_pre_filter_plugins(state, pod, nodes) {
            if !status.is_rejected() {
                return Err(ScheduleError::Error(format!("running PreFilter plugin {plugin:?}: {}", status.message())));
            }
            diagnosis.unschedulable_plugins.insert(plugin);
            for node in nodes {
                diagnosis.node_to_status.insert(node.name().to_string(), status.clone());
            }
            return Ok(Err(diagnosis));
        }
        let mut feasible = Vec::new();
        for node in nodes {
            match self.framework.run_filter_plugins(state, pod, node) {
                Ok(()) => feasible.push(node),
                Err((_, status)) if !status.is_rejected() => return Err(ScheduleError::Error(status.message())),
                Err((plugin, status)) => {
                    diagnosis.unschedulable_plugins.insert(plugin);
                    diagnosis.node_to_status.insert(node.name().to_string(), status);
                }
            }
        }
        Ok(if feasible.is_empty() { Err(diagnosis) } else { Ok(feasible) })
    }

    /// The highest-scoring node; ties go round-robin.
    fn select_host(&mut self, scored: &[(&str, i64)]) -> String {
        let best = scored.iter().map(|(_, s)| *s).max().unwrap_or_default();
        let tied: Vec<&str> = scored.iter().filter(|(_, s)| *s == best).map(|(n, _)| *n).collect();
        let pick = tied[self.next_tie % tied.len()];
        self.next_tie = self.next_tie.wrapping_add(1);
        pick.to_string()
    }
}

/// Node infos for `nodes` with every pod of `pods` that is bound to one of
/// them counted in — the snapshot the cache would give. Pods that finished
/// (`Succeeded`, `Failed`) hold no resources, as upstream's informer
/// filters them out.
pub fn node_infos(nodes: &[Node], pods: &[Pod]) -> Vec<NodeInfo> {
    let cache = crate::cache::SchedulerCache::new();
    for node in nodes {
        cache.add_or_update_node(Arc::new(node.clone()));
    }
    for pod in pods.iter().filter(|p| !crate::eventhandlers::is_terminal(p)) {
        cache.add_pod(pod);
    }
    cache.snapshot()
}

/// Schedules one pod against in-memory nodes and pods with the default
/// plugins: the node it would be bound to, or why none fits. No Services
/// or workloads are known, so only a pod's own spread constraints apply.
pub fn schedule_one(pod: &Pod, nodes: &[Node], pods: &[Pod]) -> Result<String, ScheduleError> {
    let info = PodInfo::new(Arc::new(pod.clone())).map_err(ScheduleError::Error)?;
    Algorithm::new(default_framework(Workloads::default())).schedule_pod(&info, &node_infos(nodes, pods))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::cache::SchedulerCache;
    use crate::plugins::testing::{labels, node, pod, pod_info, quantities, taint, toleration};
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn with_requests(mut p: Pod, cpu: &str, memory: &str) -> Pod {
        if let Some(spec) = p.spec.as_mut() {
            spec.containers[0].resources =
                Some(ResourceRequirements { requests: Some(quantities(&[("cpu", cpu), ("memory", memory)])), ..Default::default() });
        }
        p
    }

    fn bound(p: Pod, node: &str) -> Pod {
        let mut p = p;
        if let Some(spec) = p.spec.as_mut() {
            spec.node_name = Some(node.into());
        }
        p
    }

    fn tainted(name: &str, key: &str, value: &str) -> Node {
        let mut n = node(name);
        if let Some(spec) = n.spec.as_mut() {
            spec.taints = Some(vec![taint(key, value, "NoSchedule")]);
        }
        n
    }

    #[test]
    fn end_to_end_decisions() {
        struct Case {
            name: &'static str,
            pod: Pod,
            nodes: Vec<Node>,
            pods: Vec<Pod>,
            want: Result<&'static str, &'static str>,
        }
        let cases = vec![
            Case {
                name: "no nodes at all",
                pod: pod("p"),
                nodes: vec![],
                pods: vec![],
                want: Err("no nodes available to schedule pods"),
            },
            Case {
                name: "least allocated node wins",
                pod: with_requests(pod("p"), "1", "1Gi"),
                nodes: vec![node("busy"), node("idle")],
                pods: vec![bound(with_requests(pod("q"), "2", "4Gi"), "busy")],
                want: Ok("idle"),
            },
            Case {
                name: "the brief's example: two nodes short of cpu, one tainted",
                pod: with_requests(pod("p"), "3", "1Gi"),
                nodes: vec![node("a"), node("b"), tainted("c", "dedicated", "gpu")],
                pods: vec![bound(with_requests(pod("x"), "2", "0"), "a"), bound(with_requests(pod("y"), "2", "0"), "b")],
                want: Err("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."),
            },
            Case {
                name: "finished pods free their resources",
                pod: with_requests(pod("p"), "3", "1Gi"),
                nodes: vec![node("a")],
                pods: vec![{
                    let mut done = bound(with_requests(pod("x"), "2", "0"), "a");
                    done.status = Some(k8s_openapi::api::core::v1::PodStatus { phase: Some("Succeeded".into()), ..Default::default() });
                    done
                }],
                want: Ok("a"),
            },
            Case {
                name: "toleration lets the pod onto the tainted node",
                pod: {
                    let mut p = with_requests(pod("p"), "3", "1Gi");
                    if let Some(spec) = p.spec.as_mut() {
                        spec.tolerations = Some(vec![toleration("dedicated", "Equal", "gpu", "NoSchedule")]);
                    }
                    p
                },
                nodes: vec![node("a"), tainted("c", "dedicated", "gpu")],
                pods: vec![bound(with_requests(pod("x"), "2", "0"), "a")],
                want: Ok("c"),
            },
            Case {
                name: "nodeSelector picks the labelled node",
                pod: {
                    let mut p = pod("p");
                    if let Some(spec) = p.spec.as_mut() {
                        spec.node_selector = Some(labels(&[("disk", "ssd")]));
                    }
                    p
                },
                nodes: vec![node("plain"), {
                    let mut n = node("fast");
                    n.metadata.labels = Some(labels(&[("disk", "ssd")]));
                    n
                }],
                pods: vec![],
                want: Ok("fast"),
            },
            Case {
                name: "cordoned, not ready and full nodes, one reason each",
                pod: with_requests(pod("p"), "100m", "100Mi"),
                nodes: vec![
                    {
                        let mut n = node("cordoned");
                        if let Some(spec) = n.spec.as_mut() {
                            spec.unschedulable = Some(true);
                        }
                        n
                    },
                    {
                        let mut n = node("down");
                        if let Some(status) = n.status.as_mut() {
                            status.conditions = None;
                        }
                        n
                    },
                    {
                        let mut n = node("tiny");
                        if let Some(status) = n.status.as_mut() {
                            status.allocatable = Some(quantities(&[("cpu", "4"), ("memory", "8Gi"), ("pods", "1")]));
                        }
                        n
                    },
                ],
                pods: vec![bound(pod("x"), "tiny")],
                want: Err("0/3 nodes are available: 1 Too many pods, 1 node(s) were not ready, 1 node(s) were unschedulable."),
            },
        ];
        for c in cases {
            let got = schedule_one(&c.pod, &c.nodes, &c.pods).map_err(|e| e.to_string());
            assert_eq!(got, c.want.map(str::to_string).map_err(str::to_string), "{}", c.name);
        }
    }

    #[test]
    fn diagnosis_names_the_rejecting_plugins() {
        let p = with_requests(pod("p"), "8", "1Gi");
        let nodes = vec![node("a"), tainted("b", "k", "v")];
        match schedule_one(&p, &nodes, &[]) {
            Err(ScheduleError::Unschedulable(e)) => {
                let plugins: Vec<_> = e.diagnosis.unschedulable_plugins.into_iter().collect();
                assert_eq!(plugins, vec!["NodeResourcesFit", "TaintToleration"]);
            }
            other => panic!("expected a FitError, got {other:?}"),
        }
    }

    #[test]
    fn ties_go_round_robin() {
        let nodes = node_infos(&[node("a"), node("b"), node("c")], &[]);
        let mut algorithm = Algorithm::new(default_framework(Workloads::default()));
        let picks: Vec<String> = (0..4).map(|_| algorithm.schedule_pod(&pod_info(pod("p")), &nodes).unwrap_or_default()).collect();
        assert_eq!(picks, ["a", "b", "c", "a"]);
    }

    /// A burst of pods scheduled back to back, each assumed before the next
    /// cycle, must not overcommit a node: 2-cpu pods on two 4-cpu nodes fill
    /// each node with exactly two, and the fifth does not fit.
    #[test]
    fn assumed_pods_prevent_overcommit() {
        let cache = SchedulerCache::new();
        cache.add_or_update_node(Arc::new(node("a")));
        cache.add_or_update_node(Arc::new(node("b")));
        let mut algorithm = Algorithm::new(default_framework(Workloads::default()));
        let mut placed = Vec::new();
        for i in 0..5 {
            let info = pod_info(with_requests(pod(&format!("burst-{i}")), "2", "1Gi"));
            match algorithm.schedule_pod(&info, &cache.snapshot()) {
                Ok(node) => {
                    cache.assume_pod(&info, &node).expect("assume");
                    placed.push(node);
                }
                Err(e) => {
                    assert_eq!(e.to_string(), "0/2 nodes are available: 2 Insufficient cpu.");
                    assert_eq!(i, 4, "only the fifth pod should fail");
                }
            }
        }
        placed.sort();
        assert_eq!(placed, ["a", "a", "b", "b"]);
    }

    /// A 6-replica workload created at once, scheduled one pod per cycle
    /// with each assumed before the next cycle, as the scheduling loop
    /// does. One node is sixteen times bigger, so least-allocated scoring
    /// alone would put every pod there; a hostname spread constraint makes
    /// it two per node — as a hard rule, and as a preference too, since
    /// PodTopologySpread's score outweighs NodeResourcesFit's.
    #[test]
    fn a_burst_spreads_two_per_node() {
        use crate::plugins::pod_topology_spread::testing::{spread, zoned};
        use crate::plugins::pod_topology_spread::{DO_NOT_SCHEDULE, LABEL_HOSTNAME, SCHEDULE_ANYWAY};

        let burst = |when: Option<&str>| -> BTreeMap<String, usize> {
            let cache = SchedulerCache::new();
            let mut big = zoned("big", "");
            if let Some(status) = big.status.as_mut() {
                status.allocatable = Some(quantities(&[("cpu", "64"), ("memory", "128Gi"), ("pods", "110")]));
            }
            for n in [big, zoned("small-1", ""), zoned("small-2", "")] {
                cache.add_or_update_node(Arc::new(n));
            }
            let mut algorithm = Algorithm::new(default_framework(Workloads::default()));
            let mut per_node = BTreeMap::new();
            for i in 0..6 {
                let mut p = with_requests(pod(&format!("web-{i}")), "500m", "512Mi");
                p.metadata.labels = Some(labels(&[("app", "web")]));
                if let (Some(spec), Some(when)) = (p.spec.as_mut(), when) {
                    spec.topology_spread_constraints = Some(vec![spread(LABEL_HOSTNAME, 1, when, "web")]);
                }
                let info = pod_info(p);
                let node = algorithm.schedule_pod(&info, &cache.snapshot()).expect("a node fits");
                cache.assume_pod(&info, &node).expect("assume");
                *per_node.entry(node).or_insert(0) += 1;
            }
            per_node
        };
        let counts = |kv: &[(&str, usize)]| kv.iter().map(|(n, c)| (n.to_string(), *c)).collect::<BTreeMap<_, _>>();
        assert_eq!(burst(None), counts(&[("big", 6)]), "least allocated alone");
        let even = counts(&[("big", 2), ("small-1", 2), ("small-2", 2)]);
        assert_eq!(burst(Some(DO_NOT_SCHEDULE)), even, "DoNotSchedule");
        assert_eq!(burst(Some(SCHEDULE_ANYWAY)), even, "ScheduleAnyway");
    }

    #[test]
    fn spread_reasons_in_the_event_message() {
        use crate::plugins::pod_topology_spread::testing::{app_pod, spread, zoned};
        use crate::plugins::pod_topology_spread::{DO_NOT_SCHEDULE, LABEL_TOPOLOGY_ZONE};

        let mut p = app_pod("web-3", "web", "");
        if let Some(spec) = p.spec.as_mut() {
            spec.topology_spread_constraints = Some(vec![spread(LABEL_TOPOLOGY_ZONE, 1, DO_NOT_SCHEDULE, "web")]);
        }
        let nodes = [zoned("a1", "a"), zoned("b1", "b"), zoned("bare", "")];
        // Zone b's node is full, so a 1-cpu pod would put zone a two ahead.
        let pods = [app_pod("web-1", "web", "a1"), with_requests(app_pod("hog", "hog", "b1"), "4", "0")];
        let hungry = with_requests(p.clone(), "1", "0");
        assert_eq!(
            schedule_one(&hungry, &nodes, &pods).map_err(|e| e.to_string()),
            Err("0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match pod topology spread constraints, \
                 1 node(s) didn't match pod topology spread constraints (missing required label)."
                .to_string())
        );
        assert_eq!(schedule_one(&p, &nodes, &pods), Ok("b1".to_string()), "a pod asking for nothing still fits in b");
    }

    #[test]
    fn malformed_requests_are_an_error_not_a_fit_failure() {
        let p = with_requests(pod("p"), "a lot", "1Gi");
        assert!(matches!(schedule_one(&p, &[node("a")], &[]), Err(ScheduleError::Error(_))));
    }
}
