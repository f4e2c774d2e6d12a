//! Quality of Service classes: which pods the node gives up first.
//!
//! A node can promise more memory than it has, because most containers use
//! less than their limit. When it does run out, something must be killed,
//! and Kubernetes decides what from how a pod asked for resources. Each pod
//! falls into one of three *QoS classes*, computed once when the pod is
//! created and stored in `status.qosClass`:
//!
//! - **Guaranteed**: every container sets a cpu and a memory limit, and the
//!   requests equal the limits. The pod gets exactly what it asked for and
//!   is the last to go.
//! - **BestEffort**: no container requests or limits any cpu or memory. The
//!   pod lives on whatever is spare and is the first to go.
//! - **Burstable**: everything in between. The pod is promised its requests
//!   and may use more while the node has it.
//!
//! Only cpu and memory count, and only positive amounts; init containers
//! count like the others. The sums over all containers are compared, not
//! each container on its own, as upstream's `ComputePodQOS`
//! (`pkg/apis/core/helper/qos`) does. A container that sets only limits has
//! requests equal to them: the api-server writes them so when it defaults
//! a pod, and [`qos_class`] reads a limit in place of a missing request so
//! it gives the same answer before defaulting.
//!
//! The node acts on the class through the kernel's OOM killer: the kubelet
//! writes each container's `oom_score_adj` (from −1000, never killed, to
//! 1000, killed first) from the class and the container's memory request,
//! as [`oom_score_adj`] computes it (upstream `pkg/kubelet/qos/policy.go`).
//!
//! Where tinykube simplifies: quantities are compared as the integers the
//! scheduler uses (millicores of cpu, bytes of memory) rather than as exact
//! decimals, and unparsable quantities count as zero (the api-server does
//! not validate them yet). Pod-level `spec.resources` is ignored, as
//! upstream ignores it while its `PodLevelResources` feature gate is off
//! (the default in 1.32).

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

use crate::quantity;

/// `status.qosClass` of a pod whose requests equal its limits.
pub const GUARANTEED: &str = "Guaranteed";
/// `status.qosClass` of a pod that requests something but is not Guaranteed.
pub const BURSTABLE: &str = "Burstable";
/// `status.qosClass` of a pod that requests and limits nothing.
pub const BEST_EFFORT: &str = "BestEffort";

/// The OOM score adjustment of Guaranteed containers and node-critical pods.
const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
/// The OOM score adjustment of BestEffort containers: killed first.
const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;

/// `spec.priority` from which a pod is critical (upstream
/// `scheduling.SystemCriticalPriority`).
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;
/// The priority class of pods a node must keep running above all others.
const SYSTEM_NODE_CRITICAL: &str = "system-node-critical";

/// The compute resources that decide a QoS class.
const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// A quantity of `resource` as an integer: millicores for cpu, bytes for
/// memory. Unparsable quantities are zero.
fn amount(resource: &str, q: &Quantity) -> i64 {
    let parsed = if resource == "cpu" { quantity::cpu_millis(q) } else { quantity::bytes(q) };
    parsed.unwrap_or(0)
}

/// The container's request of `resource`, or its limit when it sets no
/// request, as upstream's defaulting makes it.
fn request(c: &Container, resource: &str) -> Option<i64> {
    let res = c.resources.as_ref()?;
    let from = |list: &Option<BTreeMap<String, Quantity>>| list.as_ref()?.get(resource).map(|q| amount(resource, q));
    from(&res.requests).or_else(|| from(&res.limits))
}

fn limit(c: &Container, resource: &str) -> Option<i64> {
    let q = c.resources.as_ref()?.limits.as_ref()?.get(resource)?;
    Some(amount(resource, q))
}

/// The QoS class of a pod: [`GUARANTEED`], [`BURSTABLE`] or [`BEST_EFFORT`].
pub fn qos_class(spec: &PodSpec) -> &'static str {
    // Sums of the positive requests and limits per resource; a resource
    // that no container sets positively is absent.
    let mut requests: BTreeMap<&str, i64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i64> = BTreeMap::new();
    let mut guaranteed = true;
    for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        let mut limited = 0;
        for resource in QOS_RESOURCES {
            if let Some(r) = request(c, resource).filter(|r| *r > 0) {
                *requests.entry(resource).or_default() += r;
            }
            if let Some(l) = limit(c, resource).filter(|l| *l > 0) {
                *limits.entry(resource).or_default() += l;
                limited += 1;
            }
        }
        // Every container must limit both cpu and memory.
        if limited < QOS_RESOURCES.len() {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return BEST_EFFORT;
    }
    if guaranteed && requests == limits {
        GUARANTEED
    } else {
        BURSTABLE
    }
}

/// Whether the pod is one the node must keep above all others (upstream
/// `IsNodeCriticalPod`). Upstream also counts static and mirror pods as
/// critical, which their annotations tell; tinykube has neither, so the
/// spec suffices.
fn is_node_critical(spec: &PodSpec) -> bool {
    spec.priority_class_name.as_deref() == Some(SYSTEM_NODE_CRITICAL) && spec.priority.is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY)
}

/// A restartable init container runs for the pod's whole life, beside the
/// regular containers.
fn is_sidecar(spec: &PodSpec, c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always") && spec.init_containers.iter().flatten().any(|init| init.name == c.name)
}

/// The Burstable formula: a container that requests a tenth of the node's
/// memory gets 900, so it reaches 1000 (first to be killed) once it uses
/// more than it asked for.
fn burstable_adj(memory_request: i64, memory_capacity_bytes: i64) -> i128 {
    1000 - 1000 * i128::from(memory_request) / i128::from(memory_capacity_bytes.max(1))
}

/// The `oom_score_adj` the kubelet gives the processes of `container`, one
/// of the pod's containers, on a node with `memory_capacity_bytes` of
/// memory (upstream `GetContainerOOMScoreAdjust`).
///
/// Guaranteed containers (and node-critical pods) get −997, BestEffort
/// containers 1000. A Burstable container gets
/// `1000 − 1000 × memory request / capacity`, kept within [3, 999] so it
/// always ranks between the other two classes. A sidecar (a restartable
/// init container) gets no more than the regular container with the least
/// memory, so it is not killed before the containers it serves.
pub fn oom_score_adj(spec: &PodSpec, container: &Container, memory_capacity_bytes: i64) -> i32 {
    if is_node_critical(spec) {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match qos_class(spec) {
        GUARANTEED => return GUARANTEED_OOM_SCORE_ADJ,
        BEST_EFFORT => return BEST_EFFORT_OOM_SCORE_ADJ,
        _ => {}
    }
    let memory = |c: &Container| request(c, "memory").unwrap_or(0);
    let mut adj = burstable_adj(memory(container), memory_capacity_bytes);
    if is_sidecar(spec, container) {
        if let Some(min) = spec.containers.iter().map(memory).min() {
            adj = adj.min(burstable_adj(min, memory_capacity_bytes));
        }
    }
    // A Guaranteed container using all of the node's memory has an OOM
    // score of 1000 − 997 = 3; a Burstable one must stay above it, and
    // below BestEffort.
    let clamped = adj.clamp(i128::from(1000 + GUARANTEED_OOM_SCORE_ADJ), i128::from(BEST_EFFORT_OOM_SCORE_ADJ - 1));
    i32::try_from(clamped).expect("clamped to [3, 999]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    /// A container with `requests` and `limits` given as `resource=quantity`
    /// pairs.
    fn container(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let list = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| pairs.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect())
        };
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements { requests: list(requests), limits: list(limits), ..Default::default() }),
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>, init: Vec<Container>) -> PodSpec {
        PodSpec { containers, init_containers: (!init.is_empty()).then_some(init), ..Default::default() }
    }

    const CPU_MEM: &[(&str, &str)] = &[("cpu", "100m"), ("memory", "100Mi")];

    #[test]
    fn qos_classes_as_upstream_computes_them() {
        let none = || container("c", &[], &[]);
        let cases: Vec<(&str, PodSpec, &str)> = vec![
            ("no resources", pod(vec![none()], vec![]), BEST_EFFORT),
            ("zero requests count as none", pod(vec![container("c", &[("cpu", "0"), ("memory", "0")], &[])], vec![]), BEST_EFFORT),
            (
                "only other resources",
                pod(vec![container("c", &[("nvidia.com/gpu", "1")], &[("ephemeral-storage", "1Gi")])], vec![]),
                BEST_EFFORT,
            ),
            ("requests equal limits", pod(vec![container("c", CPU_MEM, CPU_MEM)], vec![]), GUARANTEED),
            ("limits only: requests default to them", pod(vec![container("c", &[], CPU_MEM)], vec![]), GUARANTEED),
            (
                "same amount written differently",
                pod(vec![container("c", &[("cpu", "0.1"), ("memory", "104857600")], CPU_MEM)], vec![]),
                GUARANTEED,
            ),
            (
                "other resources do not matter",
                pod(
                    vec![container("c", &[("cpu", "1"), ("memory", "1Gi"), ("hugepages-2Mi", "2Mi")], &[("cpu", "1"), ("memory", "1Gi")])],
                    vec![],
                ),
                GUARANTEED,
            ),
            ("requests only", pod(vec![container("c", CPU_MEM, &[])], vec![]), BURSTABLE),
            ("requests below limits", pod(vec![container("c", &[("cpu", "50m"), ("memory", "100Mi")], CPU_MEM)], vec![]), BURSTABLE),
            ("only a cpu limit", pod(vec![container("c", &[], &[("cpu", "1")])], vec![]), BURSTABLE),
            ("one container without resources", pod(vec![container("a", CPU_MEM, CPU_MEM), none()], vec![]), BURSTABLE),
            (
                "an init container counts too",
                pod(vec![container("c", CPU_MEM, CPU_MEM)], vec![container("init", &[("cpu", "10m")], &[])]),
                BURSTABLE,
            ),
            ("an init container alone makes it burstable", pod(vec![none()], vec![container("init", CPU_MEM, &[])]), BURSTABLE),
            (
                "guaranteed init containers",
                pod(vec![container("c", CPU_MEM, CPU_MEM)], vec![container("init", CPU_MEM, CPU_MEM)]),
                GUARANTEED,
            ),
            // Upstream compares sums over the pod, not each container.
            (
                "sums match though containers differ",
                pod(
                    vec![
                        container("a", &[("cpu", "1"), ("memory", "1Gi")], &[("cpu", "2"), ("memory", "1Gi")]),
                        container("b", &[("cpu", "2"), ("memory", "1Gi")], &[("cpu", "1"), ("memory", "1Gi")]),
                    ],
                    vec![],
                ),
                GUARANTEED,
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(qos_class(&spec), want, "{name}");
        }
    }

    #[test]
    fn oom_score_adj_as_the_kubelet_sets_it() {
        const GI: i64 = 1 << 30;
        let burstable = |memory: &'static str| container("c", &[("memory", memory)], &[]);
        let critical = PodSpec {
            priority_class_name: Some(SYSTEM_NODE_CRITICAL.into()),
            priority: Some(2_000_001_000),
            ..pod(vec![burstable("1Gi")], vec![])
        };
        let mut sidecar = container("proxy", &[("memory", "1Gi")], &[]);
        sidecar.restart_policy = Some("Always".into());
        let with_sidecar = pod(vec![burstable("5Gi"), container("d", &[("memory", "2Gi")], &[])], vec![sidecar.clone()]);
        let mut one_shot = sidecar.clone();
        one_shot.restart_policy = None;
        let with_init = pod(vec![burstable("5Gi")], vec![one_shot.clone()]);

        let cases: Vec<(&str, PodSpec, Container, i64, i32)> = vec![
            ("guaranteed", pod(vec![container("c", CPU_MEM, CPU_MEM)], vec![]), container("c", CPU_MEM, CPU_MEM), 10 * GI, -997),
            ("best effort", pod(vec![container("c", &[], &[])], vec![]), container("c", &[], &[]), 10 * GI, 1000),
            ("node critical, whatever its class", critical.clone(), critical.containers[0].clone(), 10 * GI, -997),
            ("burstable, a tenth of the node", pod(vec![burstable("1Gi")], vec![]), burstable("1Gi"), 10 * GI, 900),
            ("burstable, half the node", pod(vec![burstable("5Gi")], vec![]), burstable("5Gi"), 10 * GI, 500),
            ("burstable, more than the node", pod(vec![burstable("20Gi")], vec![]), burstable("20Gi"), 10 * GI, 3),
            ("burstable, all of the node", pod(vec![burstable("10Gi")], vec![]), burstable("10Gi"), 10 * GI, 3),
            ("burstable, a tiny request stays below best effort", pod(vec![burstable("1Ki")], vec![]), burstable("1Ki"), 10 * GI, 999),
            (
                "burstable container without a memory request",
                pod(vec![container("c", &[("cpu", "1")], &[])], vec![]),
                container("c", &[("cpu", "1")], &[]),
                10 * GI,
                999,
            ),
            (
                "burstable, limits only",
                pod(vec![container("c", &[], &[("memory", "1Gi")])], vec![]),
                container("c", &[], &[("memory", "1Gi")]),
                10 * GI,
                900,
            ),
            ("sidecar: no higher than the smallest regular container", with_sidecar.clone(), sidecar, 10 * GI, 800),
            ("regular container next to a sidecar", with_sidecar.clone(), with_sidecar.containers[0].clone(), 10 * GI, 500),
            ("one-shot init container: its own request", with_init, one_shot, 10 * GI, 900),
        ];
        for (name, spec, c, capacity, want) in cases {
            assert_eq!(oom_score_adj(&spec, &c, capacity), want, "{name}");
        }
    }
}
