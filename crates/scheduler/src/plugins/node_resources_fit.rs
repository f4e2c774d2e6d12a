//! NodeResourcesFit: a pod fits a node only if the node has room for what
//! it requests; among nodes that fit, prefer the least allocated.
//!
//! Room is `status.allocatable` minus the requests of the pods already on
//! the node — bound ones, and *assumed* ones the scheduler has placed but
//! not yet seen bound (see `cache`). Usage is never measured: scheduling is
//! by requests, which is why a pod without requests fits anywhere.
//!
//! The score is upstream's `LeastAllocated` strategy: for cpu and memory,
//! `(allocatable - requested) * 100 / allocatable` with the pod counted in,
//! averaged with equal weights. It spreads pods over nodes. Scoring counts
//! containers without requests as 100m cpu and 200Mi memory, so that a
//! node full of best-effort pods does not look empty.

use crate::framework::{Code, CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, Resource, ScorePlugin, Status, MAX_NODE_SCORE};

pub const NAME: &str = "NodeResourcesFit";
pub const ERR_REASON_TOO_MANY_PODS: &str = "Too many pods";
pub const ERR_REASON_CPU: &str = "Insufficient cpu";
pub const ERR_REASON_MEMORY: &str = "Insufficient memory";
/// Upstream names the generic reason `Insufficient <resource>`; cpu and
/// memory are the resources tinykube schedules.
pub const ERR_REASON: &str = "Insufficient";

/// The filter and score plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeResourcesFit;

/// Why `request` does not fit on `node`: every reason that applies, in
/// upstream's order (pods, cpu, memory). Empty when it fits.
pub fn insufficient_resources(request: Resource, node: &NodeInfo) -> Vec<&'static str> {
    let mut reasons = Vec::new();
    if node.pod_count() + 1 > node.allowed_pod_number {
        reasons.push(ERR_REASON_TOO_MANY_PODS);
    }
    let free_cpu = node.allocatable.milli_cpu - node.requested.milli_cpu;
    if request.milli_cpu > 0 && request.milli_cpu > free_cpu {
        reasons.push(ERR_REASON_CPU);
    }
    let free_memory = node.allocatable.memory - node.requested.memory;
    if request.memory > 0 && request.memory > free_memory {
        reasons.push(ERR_REASON_MEMORY);
    }
    reasons
}

/// One resource's least-allocated score: the free fraction left after
/// placing the pod, from 0 to [`MAX_NODE_SCORE`].
pub fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// The node's least-allocated score with the pod on it, averaged over cpu
/// and memory.
pub fn least_allocated_score(pod_non_zero: Resource, node: &NodeInfo) -> i64 {
    let cpu = least_requested_score(node.non_zero_requested.milli_cpu + pod_non_zero.milli_cpu, node.allocatable.milli_cpu);
    let memory = least_requested_score(node.non_zero_requested.memory + pod_non_zero.memory, node.allocatable.memory);
    (cpu + memory) / 2
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodeResourcesFit {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let reasons = insufficient_resources(pod.requests, node);
        if reasons.is_empty() {
            Status::success()
        } else {
            Status { code: Code::Unschedulable, reasons: reasons.into_iter().map(str::to_string).collect() }
        }
    }
}

impl ScorePlugin for NodeResourcesFit {
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        Ok(least_allocated_score(pod.non_zero_requests, node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, node_info, pod, pod_info};

    const GI: i64 = 1 << 30;

    /// A node with 4 cpu, 8Gi and `pods` pod slots, `used` already requested
    /// by `count` pods.
    fn loaded(used: Resource, count: i64, pods: i64) -> NodeInfo {
        let mut info = node_info(node("n"));
        info.allowed_pod_number = pods;
        info.requested = used;
        info.non_zero_requested = used;
        info.pods = (0..count).map(|i| pod_info(pod(&format!("p{i}")))).collect();
        info
    }

    fn res(milli_cpu: i64, memory: i64) -> Resource {
        Resource { milli_cpu, memory }
    }

    #[test]
    fn filter() {
        let cases = vec![
            ("empty node", res(1000, GI), loaded(res(0, 0), 0, 110), vec![]),
            ("exactly full fits", res(1000, GI), loaded(res(3000, 7 * GI), 2, 110), vec![]),
            ("cpu short", res(1500, GI), loaded(res(3000, 0), 1, 110), vec![ERR_REASON_CPU]),
            ("memory short", res(100, 2 * GI), loaded(res(0, 7 * GI), 1, 110), vec![ERR_REASON_MEMORY]),
            ("both short", res(5000, 9 * GI), loaded(res(0, 0), 0, 110), vec![ERR_REASON_CPU, ERR_REASON_MEMORY]),
            ("pod slots full", res(0, 0), loaded(res(0, 0), 110, 110), vec![ERR_REASON_TOO_MANY_PODS]),
            ("no requests fit an overcommitted node", res(0, 0), loaded(res(9000, 20 * GI), 3, 110), vec![]),
            (
                "all three",
                res(4001, 8 * GI + 1),
                loaded(res(0, 0), 0, 0),
                vec![ERR_REASON_TOO_MANY_PODS, ERR_REASON_CPU, ERR_REASON_MEMORY],
            ),
        ];
        for (name, request, node, want) in cases {
            assert_eq!(insufficient_resources(request, &node), want, "{name}");
        }
    }

    #[test]
    fn least_allocated() {
        let cases = vec![
            // (4000-1000)*100/4000 = 75 and (8-2)*100/8 = 75.
            ("quarter used after placing", res(1000, 2 * GI), res(0, 0), 75),
            // cpu (4000-3000)/4000 = 25, memory (8-2)/8 = 75: average 50.
            ("cpu busier than memory", res(1000, GI), res(2000, GI), 50),
            ("full node scores 0", res(4000, 8 * GI), res(0, 0), 0),
            ("over capacity scores 0 for that resource", res(5000, 0), res(0, 0), 50),
        ];
        for (name, pod, used, want) in cases {
            assert_eq!(least_allocated_score(pod, &loaded(used, 0, 110)), want, "{name}");
        }
        assert_eq!(least_requested_score(1, 0), 0, "zero capacity");
    }
}
