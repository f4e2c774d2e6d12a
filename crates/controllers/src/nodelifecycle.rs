//! The node lifecycle controller: noticing that a node has gone silent
//! (upstream `pkg/controller/nodelifecycle`).
//!
//! A node's agent proves it is alive two ways: it renews its Lease in
//! `kube-node-lease` and it rewrites its Node's conditions with a fresh
//! `lastHeartbeatTime` (see the agent's `node` and `lease` modules). This
//! controller looks at every node every `--node-monitor-period` (5 s) and
//! remembers, on its own clock, when it last saw either heartbeat move. A
//! node that has shown no sign of life for `--node-monitor-grace-period`
//! (50 s in Kubernetes 1.32; 60 s for a node that never reported at all)
//! has all its conditions — `Ready`, `MemoryPressure`, `DiskPressure`,
//! `PIDPressure` — set to `Unknown` with reason `NodeStatusUnknown`: nobody
//! knows any more. Its own clock, not the timestamps in the objects, so
//! that clocks that disagree between hosts cannot make a node look dead.
//!
//! Conditions become taints, which is how the rest of the cluster acts on
//! them:
//! - `NoSchedule` taints keep new pods away: `node.kubernetes.io/not-ready`
//!   for `Ready=False`, `node.kubernetes.io/unreachable` for
//!   `Ready=Unknown`, `memory-pressure`, `disk-pressure`, `pid-pressure`
//!   and `network-unavailable` for those conditions, and `unschedulable`
//!   for a cordoned node. The scheduler's TaintToleration filter reads them.
//! - `NoExecute` taints, `not-ready` or `unreachable` (never both: they
//!   swap as `Ready` changes), remove the pods already there — through the
//!   taint-eviction controller, after each pod's `tolerationSeconds` (300 s
//!   unless the pod says otherwise, see the api-server's
//!   DefaultTolerationSeconds). Each taint carries `timeAdded`, from which
//!   those seconds count.
//!
//! When the node's agent comes back its heartbeat sets `Ready=True` again
//! and the taints go. The pods on a node that is not Ready are marked
//! `Ready=False` (upstream's MarkPodsNotReady), so that whatever counts
//! ready pods — a Deployment's status, Service endpoints — stops counting
//! them before they are evicted.
//!
//! One safety valve, as upstream: when *no* node is Ready the problem is
//! most likely the control plane's own network, not every node at once, so
//! no `NoExecute` taint is added and those there are removed — evicting
//! every pod of the cluster would only make things worse.
//!
//! [`reconcile`] is level-triggered: each run compares the node's
//! conditions and taints with what they should be now and writes the
//! difference, so it runs on every Node and Lease change as well as every
//! monitor period, and running it twice changes nothing.
//!
//! Where tinykube simplifies: the whole cluster is one zone (upstream
//! judges disruption per `topology.kubernetes.io/zone`), and `NoExecute`
//! taints are added at once rather than at upstream's 0.1 nodes a second;
//! there is no `RegisteredNode` event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use api::taints::{
    same_taint, TAINT_NODE_DISK_PRESSURE, TAINT_NODE_MEMORY_PRESSURE, TAINT_NODE_NETWORK_UNAVAILABLE, TAINT_NODE_NOT_READY,
    TAINT_NODE_PID_PRESSURE, TAINT_NODE_UNREACHABLE, TAINT_NODE_UNSCHEDULABLE,
};
use client::dynamic::DynamicApi;
use client::events::{EventType, Recorder};
use client::informer::Change;
use client::workqueue::WorkQueue;
use client::{Api, Client};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use serde_json::Value;
use tokio::time::Instant;

use crate::informers::{Caches, EventHandler, NODE_LEASE_NAMESPACE};
use crate::podutil::update_pod_condition;
use crate::retry::{update_live, update_status_live};
use crate::runtime::{default_error_policy, Action};
use crate::Error;

/// Upstream's `--node-monitor-period`.
pub const DEFAULT_NODE_MONITOR_PERIOD: Duration = Duration::from_secs(5);
/// Upstream 1.32's `--node-monitor-grace-period` (it was 40 s before).
pub const DEFAULT_NODE_MONITOR_GRACE_PERIOD: Duration = Duration::from_secs(50);
/// Upstream's `--node-startup-grace-period`: how long a node that has
/// never reported its conditions is given.
pub const NODE_STARTUP_GRACE_PERIOD: Duration = Duration::from_secs(60);
/// A node with this label is left out when judging whether every node is
/// down (upstream `labelNodeDisruptionExclusion`).
pub const LABEL_NODE_DISRUPTION_EXCLUSION: &str = "node.kubernetes.io/exclude-disruption";

/// The conditions a silent node's are all set `Unknown` (upstream leaves
/// `NetworkUnavailable` alone: the network plugin, not the kubelet, owns it).
const NODE_CONDITION_TYPES: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// How often and how patiently nodes are watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Monitor {
    /// `--node-monitor-period`: how often each node is looked at.
    pub period: Duration,
    /// `--node-monitor-grace-period`: how long a node may be silent.
    pub grace_period: Duration,
    /// How long a node that never reported may be silent.
    pub startup_grace_period: Duration,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            period: DEFAULT_NODE_MONITOR_PERIOD,
            grace_period: DEFAULT_NODE_MONITOR_GRACE_PERIOD,
            startup_grace_period: NODE_STARTUP_GRACE_PERIOD,
        }
    }
}

/// What the controller last saw of a node's heartbeats, and when (on its
/// own clock) it last saw one move (upstream `nodeHealthData`).
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// When a heartbeat last moved, or the node was first seen.
    pub probed: Instant,
    /// The `Ready` condition's `lastHeartbeatTime`.
    pub heartbeat: Option<Time>,
    /// The Lease's `renewTime`.
    pub renewed: Option<MicroTime>,
}

/// The `Ready` condition's `lastHeartbeatTime`, if there is a condition.
fn ready_heartbeat(node: &Node) -> Option<Time> {
    condition(node, "Ready").and_then(|c| c.last_heartbeat_time.clone())
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// The status of the node's `Ready` condition (`None` before its agent
/// first reported).
pub fn ready_status(node: &Node) -> Option<&str> {
    condition(node, "Ready").map(|c| c.status.as_str())
}

/// Folds one look at a node into what was known of it: a first sight,
/// a new `Ready` heartbeat or a later Lease renewal counts as a sign of
/// life at `now`.
pub fn observe(previous: Option<&Health>, node: &Node, lease: Option<&Lease>, now: Instant) -> Health {
    let heartbeat = ready_heartbeat(node);
    let renewed = lease.and_then(|l| l.spec.as_ref()).and_then(|s| s.renew_time.clone());
    let Some(prev) = previous else { return Health { probed: now, heartbeat, renewed } };
    let beat = heartbeat != prev.heartbeat;
    let renewal = match (&renewed, &prev.renewed) {
        (Some(new), Some(old)) => new.0 > old.0,
        (Some(_), None) => true,
        _ => false,
    };
    let probed = if beat || renewal { now } else { prev.probed };
    Health { probed, heartbeat, renewed: renewed.or_else(|| prev.renewed.clone()) }
}

/// Whether a node last heard of at `health.probed` has been silent past
/// its grace period.
pub fn is_silent(health: &Health, grace: Duration, now: Instant) -> bool {
    now > health.probed + grace
}

/// The conditions of a silent node: each of the four set `Unknown`, as
/// upstream writes them (keeping `lastHeartbeatTime`, so one can see when
/// the node was last heard of). `None` when they already are.
pub fn unknown_conditions(node: &Node, now: &Time) -> Option<Vec<NodeCondition>> {
    let mut conditions = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let mut changed = false;
    for type_ in NODE_CONDITION_TYPES {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => {
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
            Some(c) if c.status != "Unknown" => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(now.clone());
                changed = true;
            }
            Some(_) => {}
        }
    }
    changed.then_some(conditions)
}

/// Whether this controller manages `taint`: the condition taints with
/// effect `NoSchedule`, and `not-ready` and `unreachable` with `NoExecute`.
fn is_managed(taint: &Taint) -> bool {
    match taint.effect.as_str() {
        "NoSchedule" => [
            TAINT_NODE_NOT_READY,
            TAINT_NODE_UNREACHABLE,
            TAINT_NODE_MEMORY_PRESSURE,
            TAINT_NODE_DISK_PRESSURE,
            TAINT_NODE_PID_PRESSURE,
            TAINT_NODE_NETWORK_UNAVAILABLE,
            TAINT_NODE_UNSCHEDULABLE,
        ]
        .contains(&taint.key.as_str()),
        "NoExecute" => taint.key == TAINT_NODE_NOT_READY || taint.key == TAINT_NODE_UNREACHABLE,
        _ => false,
    }
}

/// The managed taints `node` should carry now (upstream's
/// `nodeConditionToTaintKeyStatusMap` for `NoSchedule`, and the
/// `NoExecute` taint of its `Ready` state unless `evict` is off because
/// every node is down).
pub fn condition_taints(node: &Node, evict: bool) -> Vec<Taint> {
    let taint = |key: &str, effect: &str| Taint { key: key.into(), effect: effect.into(), value: None, time_added: None };
    let mut want = Vec::new();
    for c in node.status.iter().flat_map(|s| s.conditions.iter().flatten()) {
        let key = match (c.type_.as_str(), c.status.as_str()) {
            ("Ready", "False") => TAINT_NODE_NOT_READY,
            ("Ready", "Unknown") => TAINT_NODE_UNREACHABLE,
            ("MemoryPressure", "True") => TAINT_NODE_MEMORY_PRESSURE,
            ("DiskPressure", "True") => TAINT_NODE_DISK_PRESSURE,
            ("PIDPressure", "True") => TAINT_NODE_PID_PRESSURE,
            ("NetworkUnavailable", "True") => TAINT_NODE_NETWORK_UNAVAILABLE,
            _ => continue,
        };
        want.push(taint(key, "NoSchedule"));
        if evict && c.type_ == "Ready" {
            want.push(taint(key, "NoExecute"));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        want.push(taint(TAINT_NODE_UNSCHEDULABLE, "NoSchedule"));
    }
    want
}

/// The node's taints with its managed ones made `desired`: others (an
/// admin's) are kept as they are, managed ones still wanted keep their
/// `timeAdded`, new ones get `now` (as upstream's
/// `SwapNodeControllerTaint` stamps them). `None` when nothing changes.
pub fn reconcile_taints(current: &[Taint], desired: &[Taint], now: &Time) -> Option<Vec<Taint>> {
    let mut next: Vec<Taint> = current.iter().filter(|t| !is_managed(t) || desired.iter().any(|d| same_taint(d, t))).cloned().collect();
    for d in desired {
        if !next.iter().any(|t| same_taint(t, d)) {
            next.push(Taint { time_added: Some(now.clone()), ..d.clone() });
        }
    }
    (next != current).then_some(next)
}

/// Whether every node (but those excluded by label) is not Ready: then
/// nobody is evicted (upstream's full disruption, for one zone).
pub fn fully_disrupted<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> bool {
    let (mut ready, mut not_ready) = (0, 0);
    for n in nodes {
        if n.metadata.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_NODE_DISRUPTION_EXCLUSION)) {
            continue;
        }
        if ready_status(n) == Some("True") {
            ready += 1;
        } else {
            not_ready += 1;
        }
    }
    ready == 0 && not_ready > 0
}

/// Everything [`reconcile`] needs.
pub struct Context {
    pub client: Client,
    pub caches: Caches,
    /// Keys are node names.
    pub queue: WorkQueue<String>,
    pub monitor: Monitor,
    health: Mutex<HashMap<String, Health>>,
    recorder: Recorder,
}

impl Context {
    pub fn new(client: Client, caches: Caches, monitor: Monitor) -> Arc<Self> {
        let recorder = Recorder::new(client.clone(), "node-controller", None);
        Arc::new(Context { client, caches, queue: WorkQueue::new(), monitor, health: Mutex::default(), recorder })
    }

    pub fn lookup(&self, key: &str) -> Option<Arc<Node>> {
        self.caches.nodes.get(key)
    }

    fn health(&self) -> MutexGuard<'_, HashMap<String, Health>> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl EventHandler for Context {
    fn on_node(&self, change: &Change<Node>) {
        match change {
            Change::Applied { new, .. } => self.queue.add(new.metadata.name.clone().unwrap_or_default()),
            Change::Deleted(node) => {
                self.health().remove(node.metadata.name.as_deref().unwrap_or_default());
            }
        }
    }

    fn on_node_lease(&self, change: &Change<Lease>) {
        if let Change::Applied { new, .. } = change {
            self.queue.add(new.metadata.name.clone().unwrap_or_default());
        }
    }
}

/// Looks at one node: marks it `Unknown` if it has been silent too long,
/// makes its taints match its conditions, and marks its pods not ready if
/// it is not Ready. Then looks again after the monitor period.
pub async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let lease = ctx.caches.node_leases.get(&format!("{NODE_LEASE_NAMESPACE}/{name}"));
    let now = Instant::now();
    let health = {
        let mut all = ctx.health();
        let h = observe(all.get(&name), &node, lease.as_deref(), now);
        all.insert(name.clone(), h.clone());
        h
    };
    let grace = if ready_status(&node).is_some() { ctx.monitor.grace_period } else { ctx.monitor.startup_grace_period };

    let mut node = node;
    if is_silent(&health, grace, now) {
        if let Some(conditions) = unknown_conditions(&node, &api::time::now()) {
            let was_ready = ready_status(&node) == Some("True");
            let mut updated = (*node).clone();
            updated.status.get_or_insert_with(Default::default).conditions = Some(conditions);
            let written = Api::<Node>::all(ctx.client.clone())
                .replace_status(&updated)
                .await
                .map_err(|e| Error::api(format!("mark node {name} Unknown"), e))?;
            tracing::warn!(node = %name, grace = ?grace, "node stopped posting status; its conditions are now Unknown");
            if was_ready {
                ctx.recorder
                    .record(&written, EventType::Normal, "NodeNotReady", &format!("Node {name} status is now: NodeNotReady"))
                    .await;
            }
            node = Arc::new(written);
        }
    }

    let nodes = ctx.caches.nodes.list();
    let evict = !fully_disrupted(nodes.iter().map(|n| if n.metadata.name == node.metadata.name { node.as_ref() } else { n.as_ref() }));
    update_taints(&ctx, &node, evict).await?;

    if ready_status(&node).is_some_and(|s| s != "True") {
        mark_pods_not_ready(&ctx, &name).await?;
    }
    Ok(Action::requeue(ctx.monitor.period))
}

/// Writes the node's managed taints if they differ from what its
/// conditions call for, judged afresh on every retry.
async fn update_taints(ctx: &Context, node: &Node, evict: bool) -> Result<(), Error> {
    let current = |n: &Node| n.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let now = api::time::now();
    if reconcile_taints(&current(node), &condition_taints(node, evict), &now).is_none() {
        return Ok(());
    }
    let name = node.metadata.name.clone().unwrap_or_default();
    let api = DynamicApi::new(ctx.client.clone(), client::info_of::<Node>(), "");
    let edit = |obj: &mut Value| {
        let Ok(fresh) = serde_json::from_value::<Node>(obj.clone()) else { return false };
        let Some(taints) = reconcile_taints(&current(&fresh), &condition_taints(&fresh, evict), &now) else { return false };
        if taints.is_empty() {
            if let Some(spec) = obj["spec"].as_object_mut() {
                spec.remove("taints");
            }
        } else {
            obj["spec"]["taints"] = serde_json::to_value(&taints).unwrap_or_default();
        }
        true
    };
    let written = update_live(&api, &name, node.metadata.uid.as_deref(), edit)
        .await
        .map_err(|e| Error::api(format!("update taints of node {name}"), e))?;
    if let Some(obj) = written {
        let taints: Vec<String> = obj["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| serde_json::from_value::<Taint>(t.clone()).ok())
            .filter(is_managed)
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect();
        tracing::info!(node = %name, ready = ?ready_status(node), ?taints, "node's condition taints updated");
    }
    Ok(())
}

/// Sets `Ready=False` on every pod bound to `node` that still says it is
/// ready (upstream `MarkPodsNotReady`), with a `NodeNotReady` event.
async fn mark_pods_not_ready(ctx: &Context, node: &str) -> Result<(), Error> {
    let on_node = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node);
    let ready = |p: &Pod| crate::podutil::is_ready(p);
    for pod in ctx.caches.pods.list().into_iter().filter(|p| on_node(p) && ready(p)) {
        let (ns, name) = (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default());
        let api = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
        let now = api::time::now();
        let edit = |p: &mut Pod| {
            let Some(mut ready) = crate::podutil::ready_condition(p).cloned() else { return false };
            ready.status = "False".into();
            update_pod_condition(p.status.get_or_insert_with(Default::default), ready, &now)
        };
        match update_status_live(&api, &name, pod.metadata.uid.as_deref(), edit).await {
            Ok(Some(written)) => {
                tracing::info!(pod = %format!("{ns}/{name}"), node, "node is not ready; marked its pod not ready");
                ctx.recorder.record(&written, EventType::Warning, "NodeNotReady", "Node is not ready").await;
            }
            Ok(None) => {}
            Err(e) => return Err(Error::api(format!("mark pod {ns}/{name} not ready"), e)),
        }
    }
    Ok(())
}

/// The error policy: retry with back-off.
pub fn error_policy(node: Arc<Node>, err: &Error, _ctx: Arc<Context>) -> Action {
    default_error_policy("nodelifecycle", node.metadata.name.as_deref().unwrap_or_default(), err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use serde_json::json;

    fn t(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000 + s).unwrap())
    }

    fn node(conditions: Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "creationTimestamp": "2023-11-14T22:13:20Z"},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn ready(status: &str, heartbeat: i64) -> Value {
        json!({"type": "Ready", "status": status, "reason": "KubeletReady", "message": "kubelet is posting ready status",
               "lastHeartbeatTime": t(heartbeat), "lastTransitionTime": t(0)})
    }

    fn lease(renewed: i64) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(jiff::Timestamp::from_second(1_700_000_000 + renewed).unwrap())),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_is_silent_once_neither_heartbeat_moves_for_the_grace_period() {
        let grace = Duration::from_secs(40);
        let start = Instant::now();
        let mut h = observe(None, &node(json!([ready("True", 0)])), Some(&lease(0)), start);
        assert_eq!(h.probed, start, "first sight counts as a sign of life");

        // The Lease is renewed: alive, though the status is old.
        tokio::time::advance(Duration::from_secs(30)).await;
        h = observe(Some(&h), &node(json!([ready("True", 0)])), Some(&lease(30)), Instant::now());
        assert_eq!(h.probed, start + Duration::from_secs(30));

        // A new status heartbeat, the Lease unchanged: alive.
        tokio::time::advance(Duration::from_secs(30)).await;
        h = observe(Some(&h), &node(json!([ready("True", 60)])), Some(&lease(30)), Instant::now());
        assert_eq!(h.probed, start + Duration::from_secs(60));

        // Then nothing moves.
        tokio::time::advance(grace).await;
        h = observe(Some(&h), &node(json!([ready("True", 60)])), Some(&lease(30)), Instant::now());
        assert!(!is_silent(&h, grace, Instant::now()), "exactly the grace period is still within it");
        tokio::time::advance(Duration::from_secs(1)).await;
        h = observe(Some(&h), &node(json!([ready("True", 60)])), Some(&lease(30)), Instant::now());
        assert!(is_silent(&h, grace, Instant::now()));

        // A Lease that goes back in time is no sign of life.
        h = observe(Some(&h), &node(json!([ready("True", 60)])), Some(&lease(10)), Instant::now());
        assert!(is_silent(&h, grace, Instant::now()));
    }

    #[test]
    fn a_silent_nodes_conditions_become_unknown() {
        let pressure = json!({"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                              "lastHeartbeatTime": t(5), "lastTransitionTime": t(0)});
        let n = node(json!([ready("True", 5), pressure]));
        let conditions = unknown_conditions(&n, &t(100)).unwrap();
        let by_type: HashMap<&str, &NodeCondition> = conditions.iter().map(|c| (c.type_.as_str(), c)).collect();
        let r = by_type["Ready"];
        assert_eq!((r.status.as_str(), r.reason.as_deref()), ("Unknown", Some("NodeStatusUnknown")));
        assert_eq!(r.message.as_deref(), Some("Kubelet stopped posting node status."));
        assert_eq!((r.last_heartbeat_time.clone(), r.last_transition_time.clone()), (Some(t(5)), Some(t(100))));
        assert_eq!(by_type["MemoryPressure"].status, "Unknown");
        // Conditions the agent never wrote are added, as never updated.
        let disk = by_type["DiskPressure"];
        assert_eq!((disk.status.as_str(), disk.reason.as_deref()), ("Unknown", Some("NodeStatusNeverUpdated")));
        assert_eq!(disk.last_heartbeat_time, n.metadata.creation_timestamp);
        assert_eq!(conditions.len(), 4);

        let mut again = n.clone();
        again.status.as_mut().unwrap().conditions = Some(conditions);
        assert_eq!(unknown_conditions(&again, &t(200)), None, "already Unknown: nothing to write");
    }

    fn taint(key: &str, effect: &str, added: Option<i64>) -> Taint {
        Taint { key: key.into(), effect: effect.into(), value: None, time_added: added.map(t) }
    }

    #[test]
    fn conditions_call_for_taints() {
        let keys = |taints: Vec<Taint>| taints.into_iter().map(|t| format!("{}:{}", t.key, t.effect)).collect::<Vec<_>>();
        let cases = [
            ("ready", json!([ready("True", 0)]), true, vec![]),
            (
                "not ready",
                json!([ready("False", 0)]),
                true,
                vec!["node.kubernetes.io/not-ready:NoSchedule", "node.kubernetes.io/not-ready:NoExecute"],
            ),
            (
                "unknown",
                json!([ready("Unknown", 0)]),
                true,
                vec!["node.kubernetes.io/unreachable:NoSchedule", "node.kubernetes.io/unreachable:NoExecute"],
            ),
            ("unknown, every node down", json!([ready("Unknown", 0)]), false, vec!["node.kubernetes.io/unreachable:NoSchedule"]),
            (
                "memory pressure",
                json!([ready("True", 0), {"type": "MemoryPressure", "status": "True"}]),
                true,
                vec!["node.kubernetes.io/memory-pressure:NoSchedule"],
            ),
            ("never reported", json!([]), true, vec![]),
        ];
        for (name, conditions, evict, want) in cases {
            assert_eq!(keys(condition_taints(&node(conditions), evict)), want, "{name}");
        }
        let mut cordoned = node(json!([ready("True", 0)]));
        cordoned.spec = Some(k8s_openapi::api::core::v1::NodeSpec { unschedulable: Some(true), ..Default::default() });
        assert_eq!(keys(condition_taints(&cordoned, true)), ["node.kubernetes.io/unschedulable:NoSchedule"]);
    }

    #[test]
    fn taints_swap_keep_their_time_and_leave_others_alone() {
        let admin = taint("dedicated", "NoSchedule", None);
        let not_ready = [taint(TAINT_NODE_NOT_READY, "NoSchedule", None), taint(TAINT_NODE_NOT_READY, "NoExecute", None)];
        let unreachable = [taint(TAINT_NODE_UNREACHABLE, "NoSchedule", None), taint(TAINT_NODE_UNREACHABLE, "NoExecute", None)];

        // Ready -> Unknown: both unreachable taints, stamped now.
        let tainted = reconcile_taints(std::slice::from_ref(&admin), &unreachable, &t(10)).unwrap();
        assert_eq!(
            tainted,
            [admin.clone(), taint(TAINT_NODE_UNREACHABLE, "NoSchedule", Some(10)), taint(TAINT_NODE_UNREACHABLE, "NoExecute", Some(10))]
        );
        assert_eq!(reconcile_taints(&tainted, &unreachable, &t(20)), None, "again: nothing changes, timeAdded stays");

        // Unknown -> False: swapped for not-ready.
        let swapped = reconcile_taints(&tainted, &not_ready, &t(30)).unwrap();
        assert_eq!(
            swapped,
            [admin.clone(), taint(TAINT_NODE_NOT_READY, "NoSchedule", Some(30)), taint(TAINT_NODE_NOT_READY, "NoExecute", Some(30))]
        );

        // Ready again: only the admin's taint is left.
        assert_eq!(reconcile_taints(&swapped, &[], &t(40)), Some(vec![admin.clone()]));
        assert_eq!(reconcile_taints(&[admin], &[], &t(50)), None);
    }

    #[test]
    fn nobody_is_evicted_when_every_node_is_down() {
        let up = node(json!([ready("True", 0)]));
        let down = node(json!([ready("Unknown", 0)]));
        let mut excluded = up.clone();
        excluded.metadata.labels = Some([(LABEL_NODE_DISRUPTION_EXCLUSION.to_string(), String::new())].into());
        assert!(!fully_disrupted([&up, &down]));
        assert!(fully_disrupted([&down, &down]));
        assert!(fully_disrupted([&down, &excluded]), "an excluded node does not count as up");
        assert!(!fully_disrupted([]), "no nodes: nothing is disrupted");
        assert!(fully_disrupted([&node(json!([]))]), "a node that never reported is not up");
    }
}
