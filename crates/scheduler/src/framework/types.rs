//! What plugins look at: the pod with its computed requests ([`PodInfo`]),
//! a node with what is already allocated on it ([`NodeInfo`]), and what
//! comes back when no node fits ([`FitError`] with its [`Diagnosis`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use api::quantity;
use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::Status;

/// The cpu request a container without one is counted as when *scoring*
/// (upstream `DefaultMilliCPURequest`), so that nodes full of best-effort
/// pods do not look empty. Filtering never uses it.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory counterpart, 200 MiB (upstream `DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of the two resources tinykube schedules on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
}

impl Resource {
    fn add(&mut self, other: Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
    }

    fn max(&mut self, other: Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
    }
}

/// The pod being scheduled, with its requests computed once per cycle
/// rather than once per node.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// What the pod asks for, as the kubelet admits it (upstream
    /// `resource.PodRequests`).
    pub requests: Resource,
    /// The same with [`DEFAULT_MILLI_CPU_REQUEST`] and
    /// [`DEFAULT_MEMORY_REQUEST`] for containers that ask for nothing; used
    /// only for scoring.
    pub non_zero_requests: Resource,
}

impl PodInfo {
    /// The pod's tolerations (none when unset).
    pub fn tolerations(&self) -> &[k8s_openapi::api::core::v1::Toleration] {
        self.pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default()
    }

    pub fn new(pod: Arc<Pod>) -> Result<Self, String> {
        let requests = pod_requests(&pod, false)?;
        let non_zero_requests = pod_requests(&pod, true)?;
        Ok(PodInfo { pod, requests, non_zero_requests })
    }

    /// `namespace/name`, as events and logs name a pod.
    pub fn key(&self) -> String {
        pod_key(&self.pod)
    }
}

/// `namespace/name` of a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or_default())
}

/// One container's request for a resource: its `requests` entry, or its
/// `limits` entry when only a limit is set (the api-server defaults
/// requests to limits), or — when `non_zero` — the scoring default.
fn container_request(
    c: &Container,
    name: &str,
    parse: fn(&Quantity) -> Result<i64, String>,
    non_zero_default: Option<i64>,
) -> Result<i64, String> {
    let resources = c.resources.as_ref();
    let requested = resources
        .and_then(|r| r.requests.as_ref())
        .and_then(|m| m.get(name))
        .or_else(|| resources.and_then(|r| r.limits.as_ref()).and_then(|m| m.get(name)));
    match (requested, non_zero_default) {
        (Some(q), _) => parse(q).map_err(|e| format!("container {:?}: {name}: {e}", c.name)),
        (None, Some(default)) => Ok(default),
        (None, None) => Ok(0),
    }
}

fn container_requests(c: &Container, non_zero: bool) -> Result<Resource, String> {
    Ok(Resource {
        milli_cpu: container_request(c, "cpu", quantity::cpu_millis, non_zero.then_some(DEFAULT_MILLI_CPU_REQUEST))?,
        memory: container_request(c, "memory", quantity::bytes, non_zero.then_some(DEFAULT_MEMORY_REQUEST))?,
    })
}

/// A pod's effective request, computed as upstream's `PodRequests`:
/// - app containers run together, so their requests add up;
/// - init containers run one at a time before them, so the pod needs at
///   least the largest one;
/// - sidecars (init containers with `restartPolicy: Always`) keep running,
///   so they add to the app containers and to every later init container;
/// - `spec.overhead` (the sandbox's own cost) is added on top.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Result<Resource, String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(Resource::default());
    };
    let mut requests = Resource::default();
    for c in &spec.containers {
        requests.add(container_requests(c, non_zero)?);
    }
    let mut sidecars = Resource::default();
    let mut init_peak = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let own = container_requests(c, non_zero)?;
        if c.restart_policy.as_deref() == Some("Always") {
            requests.add(own);
            sidecars.add(own);
            init_peak.max(sidecars);
        } else {
            let mut during = sidecars;
            during.add(own);
            init_peak.max(during);
        }
    }
    requests.max(init_peak);
    if let Some(overhead) = spec.overhead.as_ref() {
        if let Some(q) = overhead.get("cpu") {
            requests.milli_cpu += quantity::cpu_millis(q).map_err(|e| format!("overhead: cpu: {e}"))?;
        }
        if let Some(q) = overhead.get("memory") {
            requests.memory += quantity::bytes(q).map_err(|e| format!("overhead: memory: {e}"))?;
        }
    }
    Ok(requests)
}

/// A node as the plugins see it: the Node object, what it can hold, the
/// pods bound to it (or assumed on it), and the sum of what they request.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    /// `status.allocatable`: capacity minus what the system reserves.
    pub allocatable: Resource,
    /// `status.allocatable["pods"]`: how many pods the node's agent runs.
    pub allowed_pod_number: i64,
    /// The sum of the requests of the pods on this node.
    pub requested: Resource,
    /// The same with the scoring defaults (see [`PodInfo::non_zero_requests`]).
    pub non_zero_requested: Resource,
    /// The pods on the node, assumed ones included, in `namespace/name`
    /// order. Plugins that count pods (PodTopologySpread) read their labels.
    pub pods: Vec<PodInfo>,
}

impl NodeInfo {
    /// A node with nothing on it yet. Allocatable falls back to capacity
    /// when a node reports none, as the api-server's Node defaulting does;
    /// a malformed quantity counts as zero (and is logged), so such a node
    /// receives no pods rather than too many.
    pub fn new(node: Arc<Node>) -> Self {
        let status = node.status.as_ref();
        let allocatable = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
        let name = node.metadata.name.clone().unwrap_or_default();
        let read = |resource: &str, parse: fn(&Quantity) -> Result<i64, String>| -> i64 {
            match allocatable.and_then(|a| a.get(resource)).map(parse) {
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    tracing::warn!(node = %name, resource, error = %e, "ignoring malformed allocatable");
                    0
                }
                None => 0,
            }
        };
        NodeInfo {
            allocatable: Resource { milli_cpu: read("cpu", quantity::cpu_millis), memory: read("memory", quantity::bytes) },
            allowed_pod_number: read("pods", quantity::bytes),
            requested: Resource::default(),
            non_zero_requested: Resource::default(),
            pods: Vec::new(),
            node,
        }
    }

    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or_default()
    }

    /// The node's labels (none when unset).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.node.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }

    /// How many pods are on the node, counting assumed ones.
    pub fn pod_count(&self) -> i64 {
        self.pods.len() as i64
    }

    /// Counts a pod on this node.
    pub fn add_pod(&mut self, pod: PodInfo) {
        self.requested.add(pod.requests);
        self.non_zero_requested.add(pod.non_zero_requests);
        self.pods.push(pod);
    }
}

/// Why each node was rejected (upstream `framework.Diagnosis`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// The failing status of every rejected node, by node name.
    pub node_to_status: BTreeMap<String, Status>,
    /// The plugins that rejected at least one node.
    pub unschedulable_plugins: BTreeSet<&'static str>,
}

/// No node can run the pod (upstream `framework.FitError`). Its `Display`
/// is the message users read in the `FailedScheduling` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_all_nodes: usize,
    pub diagnosis: Diagnosis,
}

impl FitError {
    /// "`count reason`" strings, one per distinct reason, sorted as
    /// upstream's `sortReasonsHistogram` does: it sorts the formatted
    /// strings, so the count's digits lead the order ("1 node(s) had
    /// untolerated taint ..." before "2 Insufficient cpu").
    pub fn reason_histogram(&self) -> Vec<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for status in self.diagnosis.node_to_status.values() {
            for reason in &status.reasons {
                *counts.entry(reason.as_str()).or_default() += 1;
            }
        }
        let mut histogram: Vec<String> = counts.into_iter().map(|(reason, n)| format!("{n} {reason}")).collect();
        histogram.sort();
        histogram
    }
}

impl fmt::Display for FitError {
    /// "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated:
    /// gpu}, 2 Insufficient cpu." — upstream's `FitError.Error()` without
    /// the PreFilter and PostFilter (preemption) parts tinykube lacks.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        let histogram = self.reason_histogram();
        if !histogram.is_empty() {
            write!(f, " {}.", histogram.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for FitError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)], restart_policy: Option<&str>) -> Container {
        let list =
            |kv: &[(&str, &str)]| (!kv.is_empty()).then(|| kv.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect());
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements { requests: list(requests), limits: list(limits), ..Default::default() }),
            restart_policy: restart_policy.map(str::to_string),
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>, init: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec { containers, init_containers: (!init.is_empty()).then_some(init), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn pod_requests_follow_upstream_rules() {
        const MI: i64 = 1024 * 1024;
        struct Case {
            name: &'static str,
            pod: Pod,
            want: Resource,
            want_non_zero: Resource,
        }
        let cases = vec![
            Case {
                name: "containers add up",
                pod: pod(
                    vec![container(&[("cpu", "100m"), ("memory", "64Mi")], &[], None), container(&[("cpu", "0.2")], &[], None)],
                    vec![],
                ),
                want: Resource { milli_cpu: 300, memory: 64 * MI },
                want_non_zero: Resource { milli_cpu: 300, memory: 64 * MI + DEFAULT_MEMORY_REQUEST },
            },
            Case {
                name: "limits stand in for missing requests",
                pod: pod(vec![container(&[("memory", "1Gi")], &[("cpu", "2"), ("memory", "2Gi")], None)], vec![]),
                want: Resource { milli_cpu: 2000, memory: 1024 * MI },
                want_non_zero: Resource { milli_cpu: 2000, memory: 1024 * MI },
            },
            Case {
                name: "best effort requests nothing but scores as 100m/200Mi",
                pod: pod(vec![container(&[], &[], None)], vec![]),
                want: Resource::default(),
                want_non_zero: Resource { milli_cpu: 100, memory: 200 * MI },
            },
            Case {
                name: "the largest init container wins over smaller app containers",
                pod: pod(vec![container(&[("cpu", "100m")], &[], None)], vec![container(&[("cpu", "1")], &[], None)]),
                want: Resource { milli_cpu: 1000, memory: 0 },
                want_non_zero: Resource { milli_cpu: 1000, memory: 200 * MI },
            },
            Case {
                name: "sidecars add to app containers and later init containers",
                pod: pod(
                    vec![container(&[("cpu", "100m")], &[], None)],
                    vec![container(&[("cpu", "200m")], &[], Some("Always")), container(&[("cpu", "500m")], &[], None)],
                ),
                want: Resource { milli_cpu: 700, memory: 0 },
                want_non_zero: Resource { milli_cpu: 700, memory: 400 * MI },
            },
        ];
        for c in cases {
            assert_eq!(pod_requests(&c.pod, false), Ok(c.want), "{}", c.name);
            assert_eq!(pod_requests(&c.pod, true), Ok(c.want_non_zero), "{} (non-zero)", c.name);
        }
        let bad = pod(vec![container(&[("cpu", "lots")], &[], None)], vec![]);
        assert!(pod_requests(&bad, false).is_err());
    }

    #[test]
    fn fit_error_message_matches_upstream() {
        let status = |reasons: &[&str]| Status { code: Code::Unschedulable, reasons: reasons.iter().map(|r| r.to_string()).collect() };
        let fit_error = |num_all_nodes: usize, statuses: Vec<(&str, Status)>| FitError {
            num_all_nodes,
            diagnosis: Diagnosis {
                node_to_status: statuses.into_iter().map(|(n, s)| (n.to_string(), s)).collect(),
                unschedulable_plugins: BTreeSet::new(),
            },
        };
        let cases = vec![
            (
                fit_error(
                    3,
                    vec![
                        ("a", status(&["Insufficient cpu"])),
                        ("b", status(&["Insufficient cpu"])),
                        ("c", status(&["node(s) had untolerated taint {dedicated: gpu}"])),
                    ],
                ),
                "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu.",
            ),
            (
                fit_error(
                    2,
                    vec![("a", status(&["Insufficient cpu", "Insufficient memory"])), ("b", status(&["Insufficient memory"]))],
                ),
                "0/2 nodes are available: 1 Insufficient cpu, 2 Insufficient memory.",
            ),
            (
                fit_error(
                    3,
                    vec![
                        ("a", status(&["node(s) were unschedulable"])),
                        ("b", status(&["node(s) didn't match Pod's node affinity/selector"])),
                        ("c", status(&["Too many pods"])),
                    ],
                ),
                "0/3 nodes are available: 1 Too many pods, 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were unschedulable.",
            ),
            (fit_error(0, vec![]), "0/0 nodes are available:"),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }
}
