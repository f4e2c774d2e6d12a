//! The scheduler cache: nodes and the pods on each node — including pods
//! the scheduler has *assumed* onto a node but not yet seen bound.
//!
//! Binding is a round trip to the api-server, and the binding shows up in
//! the pod informer later still. If the scheduler waited for that before
//! counting the pod on its node, a burst of pods would all see the same
//! free space and land on the same node. Upstream's answer, kept here:
//! right after choosing a node, the scheduler *assumes* the pod there
//! ([`SchedulerCache::assume_pod`]), and the next cycle already sees the
//! node's reduced room, and the pod among the node's pods that topology
//! spreading counts: six replicas created at once spread over three nodes
//! two by two, not by the state before the first binding landed. If the binding fails the assumption is dropped
//! ([`SchedulerCache::forget_pod`]); when the informer delivers the pod
//! bound, [`SchedulerCache::add_pod`] *confirms* it.
//!
//! Where tinykube simplifies: upstream expires an assumed pod whose binding
//! never shows up after a TTL; tinykube's binding task always reports
//! success or failure, so an assumption ends by confirm or forget. Pods are
//! keyed by `namespace/name`, which the ordered informer stream makes safe.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::framework::types::pod_key;
use crate::framework::{NodeInfo, PodInfo, Resource};
use crate::Error;

/// What the cache knows about one pod that occupies a node.
#[derive(Debug, Clone)]
struct PodState {
    node: String,
    /// Placed by this scheduler and not yet seen bound by the informer.
    assumed: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Nodes by name, each with its allocatable parsed once and no pods.
    nodes: BTreeMap<String, NodeInfo>,
    /// Pods bound to, or assumed on, a node — by `namespace/name`.
    pods: HashMap<String, PodState>,
    /// The pods on each node, by node name and then `namespace/name`; kept
    /// for pods whose node the cache has not seen yet.
    pods_by_node: HashMap<String, BTreeMap<String, PodInfo>>,
}

impl State {
    fn remove(&mut self, key: &str) -> Option<PodState> {
        let p = self.pods.remove(key)?;
        if let Some(on_node) = self.pods_by_node.get_mut(&p.node) {
            on_node.remove(key);
            if on_node.is_empty() {
                self.pods_by_node.remove(&p.node);
            }
        }
        Some(p)
    }

    fn insert(&mut self, key: String, info: PodInfo, p: PodState) {
        self.remove(&key);
        self.pods_by_node.entry(p.node.clone()).or_default().insert(key.clone(), info);
        self.pods.insert(key, p);
    }
}

/// A cloneable handle to the one cache the informers and the scheduling
/// loop share.
#[derive(Debug, Clone, Default)]
pub struct SchedulerCache {
    state: Arc<Mutex<State>>,
}

impl SchedulerCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add_or_update_node(&self, node: Arc<Node>) {
        let info = NodeInfo::new(node);
        self.lock().nodes.insert(info.name().to_string(), info);
    }

    pub fn remove_node(&self, name: &str) {
        self.lock().nodes.remove(name);
    }

    /// Counts a bound pod on its node, or confirms an assumed one; an
    /// update replaces the pod's earlier version (its labels, say). Pods
    /// without a node name are ignored. A pod whose requests do not parse
    /// counts as requesting nothing (the api-server validates quantities,
    /// so this is only reachable with a foreign writer) and is logged.
    pub fn add_pod(&self, pod: &Pod) {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()) else {
            return;
        };
        let key = pod_key(pod);
        let pod = Arc::new(pod.clone());
        let info = PodInfo::new(pod.clone()).unwrap_or_else(|e| {
            tracing::warn!(pod = %key, error = %e, "counting pod with malformed requests as requesting nothing");
            PodInfo { pod, requests: Resource::default(), non_zero_requests: Resource::default() }
        });
        self.lock().insert(key, info, PodState { node, assumed: false });
    }

    /// Stops counting a pod (deleted, or finished); true if it was counted.
    pub fn remove_pod(&self, key: &str) -> bool {
        self.lock().remove(key).is_some()
    }

    /// Counts `pod` on `node` before its binding is seen: its requests
    /// against the node's room, and its labels for every plugin that counts
    /// pods (PodTopologySpread), so the next cycle sees it at once.
    pub fn assume_pod(&self, pod: &PodInfo, node: &str) -> Result<(), Error> {
        let key = pod.key();
        let mut s = self.lock();
        if s.pods.contains_key(&key) {
            return Err(Error::PodAlreadyInCache(key));
        }
        s.insert(key, pod.clone(), PodState { node: node.to_string(), assumed: true });
        Ok(())
    }

    /// Drops an assumption after its binding failed. A pod the informer has
    /// meanwhile confirmed is left alone.
    pub fn forget_pod(&self, key: &str) {
        let mut s = self.lock();
        if s.pods.get(key).is_some_and(|p| p.assumed) {
            s.remove(key);
        }
    }

    /// Whether the pod is assumed and not yet confirmed.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.lock().pods.get(key).is_some_and(|p| p.assumed)
    }

    /// Whether the pod occupies a node, bound or assumed.
    pub fn contains_pod(&self, key: &str) -> bool {
        self.lock().pods.contains_key(key)
    }

    /// The nodes, in name order, each with the pods on it now and what
    /// they request: the input of one scheduling cycle (upstream
    /// `UpdateSnapshot`, which copies only what changed since the last
    /// cycle; tinykube copies everything, which costs one clone of a
    /// reference per pod).
    pub fn snapshot(&self) -> Vec<NodeInfo> {
        let s = self.lock();
        s.nodes
            .values()
            .map(|n| {
                let mut info = n.clone();
                for pod in s.pods_by_node.get(info.name()).into_iter().flat_map(BTreeMap::values) {
                    info.add_pod(pod.clone());
                }
                info
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod, pod_info, quantities};

    fn requesting(name: &str, cpu: &str, node_name: Option<&str>) -> Pod {
        let mut p = pod(name);
        if let Some(spec) = p.spec.as_mut() {
            spec.containers[0].resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
                requests: Some(quantities(&[("cpu", cpu)])),
                ..Default::default()
            });
            spec.node_name = node_name.map(str::to_string);
        }
        p
    }

    fn cpu_on(cache: &SchedulerCache, node: &str) -> (i64, i64) {
        let snap = cache.snapshot();
        let info = snap.iter().find(|n| n.name() == node).expect("node in snapshot");
        (info.requested.milli_cpu, info.pod_count())
    }

    #[test]
    fn assume_confirm_forget() {
        let cache = SchedulerCache::new();
        cache.add_or_update_node(Arc::new(node("n1")));
        cache.add_pod(&requesting("bound", "500m", Some("n1")));
        cache.add_pod(&requesting("pending", "1", None));
        assert_eq!(cpu_on(&cache, "n1"), (500, 1), "a bound pod counts, a pending one does not");

        let web = pod_info(requesting("web", "1", None));
        cache.assume_pod(&web, "n1").expect("first assumption");
        assert!(cache.is_assumed("default/web"));
        assert_eq!(cpu_on(&cache, "n1"), (1500, 2), "the assumed pod counts at once");
        assert!(cache.assume_pod(&web, "n1").is_err(), "assuming twice is a bookkeeping bug");

        // The informer shows it bound: confirmed, counted once.
        cache.add_pod(&requesting("web", "1", Some("n1")));
        assert!(!cache.is_assumed("default/web"));
        assert_eq!(cpu_on(&cache, "n1"), (1500, 2));
        cache.forget_pod("default/web");
        assert_eq!(cpu_on(&cache, "n1"), (1500, 2), "forget leaves a confirmed pod alone");

        // A failed binding: the assumption goes away.
        let api = pod_info(requesting("api", "2", None));
        cache.assume_pod(&api, "n1").expect("assume");
        assert_eq!(cpu_on(&cache, "n1"), (3500, 3));
        cache.forget_pod("default/api");
        assert_eq!(cpu_on(&cache, "n1"), (1500, 2));

        assert!(cache.remove_pod("default/bound"));
        assert!(!cache.remove_pod("default/bound"));
        assert_eq!(cpu_on(&cache, "n1"), (1000, 1));
    }

    #[test]
    fn pods_on_unknown_nodes_count_once_the_node_appears() {
        let cache = SchedulerCache::new();
        cache.add_pod(&requesting("early", "250m", Some("late-node")));
        assert!(cache.snapshot().is_empty());
        cache.add_or_update_node(Arc::new(node("late-node")));
        assert_eq!(cpu_on(&cache, "late-node"), (250, 1));
        // A node update keeps the usage.
        cache.add_or_update_node(Arc::new(node("late-node")));
        assert_eq!(cpu_on(&cache, "late-node"), (250, 1));
    }
}
