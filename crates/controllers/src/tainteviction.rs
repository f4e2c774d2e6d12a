//! The taint-eviction controller: removing pods from a node that repels
//! them (upstream `pkg/controller/tainteviction`, kube-controller-manager's
//! `taint-eviction-controller`).
//!
//! A `NoExecute` taint is the strongest a node can carry: pods that do not
//! tolerate it must leave, not merely stay away. When the node lifecycle
//! controller taints a silent node `node.kubernetes.io/unreachable:NoExecute`
//! (or an admin runs `kubectl taint nodes n1 key=value:NoExecute`), this
//! controller looks at every pod bound to that node:
//! - a pod that does not tolerate one of the node's `NoExecute` taints is
//!   deleted at once;
//! - a pod that tolerates all of them, some for a limited
//!   `tolerationSeconds`, is deleted when the first of those runs out,
//!   counted from the taint's `timeAdded` — every pod gets 300 s of
//!   `not-ready` and `unreachable` by default (the api-server's
//!   DefaultTolerationSeconds), so a node that comes back within five
//!   minutes keeps its pods;
//! - a pod that tolerates them all forever stays.
//!
//! If the taint goes before the time is up, the eviction is cancelled. A
//! deletion is upstream's: the pod gets the `DisruptionTarget` condition
//! (reason `DeletionByTaintManager`) so that whoever reads its status knows
//! why it went, an event `TaintManagerEviction` ("Marking for deletion Pod
//! ns/name"), and an ordinary graceful delete. The pod's ReplicaSet stops
//! counting it as soon as it is terminating and creates a replacement,
//! which the scheduler keeps off the tainted node. On an unreachable node
//! nobody is left to finish the deletion: the pod stays `Terminating` until
//! its agent comes back and stops its containers, or the Node is deleted.
//!
//! [`reconcile`] works on one pod and is level-triggered: it decides from
//! the node's taints and the pod's tolerations as they are now, asks to be
//! woken when the earliest deadline passes, and whatever woke it — a pod
//! change, a taint change, the timer — decides again. A timer whose taint
//! has gone simply finds nothing to do. The pending evictions it remembers
//! serve only the cancellation event.
//!
//! Where tinykube simplifies: upstream counts `tolerationSeconds` from the
//! moment it saw the taint (so a restarted controller starts counting
//! again); tinykube counts from the taint's `timeAdded`, which the node
//! lifecycle controller always writes, and only for a taint without one
//! from when this controller first saw it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use api::taints::{same_taint, tolerates_taint};
use client::events::{EventType, Recorder};
use client::informer::{key_of, Change};
use client::workqueue::WorkQueue;
use client::{Api, Client};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, Taint, Toleration};
use serde_json::json;

use crate::informers::{Caches, EventHandler};
use crate::podutil::update_pod_condition;
use crate::retry::update_status_live;
use crate::runtime::{default_error_policy, Action};
use crate::Error;

/// What becomes of a pod on a node with `NoExecute` taints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// It tolerates every taint forever (or there are none).
    Never,
    /// It does not tolerate one, or its time is up.
    Now,
    /// It tolerates them all until this moment.
    At(Timestamp),
}

/// Upstream's decision, with every taint's start: for each taint the first
/// toleration that matches it; no match evicts now; the earliest
/// `start + tolerationSeconds` among those with seconds (zero or less is
/// "at once") is when the pod goes.
pub fn decide(taints: &[(Taint, Timestamp)], tolerations: &[Toleration], now: Timestamp) -> Eviction {
    let mut earliest: Option<Timestamp> = None;
    for (taint, since) in taints {
        let Some(toleration) = tolerations.iter().find(|t| tolerates_taint(t, taint)) else {
            return Eviction::Now;
        };
        let Some(seconds) = toleration.toleration_seconds else { continue };
        let deadline = since.checked_add(jiff::SignedDuration::from_secs(seconds.max(0))).unwrap_or(Timestamp::MAX);
        earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
    }
    match earliest {
        None => Eviction::Never,
        Some(at) if at <= now => Eviction::Now,
        Some(at) => Eviction::At(at),
    }
}

/// The node's `NoExecute` taints.
pub fn no_execute_taints(node: &Node) -> Vec<Taint> {
    node.spec.iter().flat_map(|s| s.taints.iter().flatten()).filter(|t| t.effect == "NoExecute").cloned().collect()
}

fn node_name(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default()
}

/// Everything [`reconcile`] needs.
pub struct Context {
    pub client: Client,
    pub caches: Caches,
    /// Keys are `namespace/name` of pods.
    pub queue: WorkQueue<String>,
    recorder: Recorder,
    /// Pods whose eviction is pending, and when it is due.
    scheduled: Mutex<HashMap<String, Timestamp>>,
    /// When `NoExecute` taints that carry no `timeAdded` were first seen,
    /// by node.
    first_seen: Mutex<HashMap<String, Vec<(Taint, Timestamp)>>>,
}

impl Context {
    pub fn new(client: Client, caches: Caches) -> Arc<Self> {
        let recorder = Recorder::new(client.clone(), "taint-eviction-controller", None);
        Arc::new(Context {
            client,
            caches,
            queue: WorkQueue::new(),
            recorder,
            scheduled: Mutex::default(),
            first_seen: Mutex::default(),
        })
    }

    pub fn lookup(&self, key: &str) -> Option<Arc<Pod>> {
        self.caches.pods.get(key)
    }

    fn scheduled(&self) -> MutexGuard<'_, HashMap<String, Timestamp>> {
        self.scheduled.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn first_seen(&self) -> MutexGuard<'_, HashMap<String, Vec<(Taint, Timestamp)>>> {
        self.first_seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When `taint` on `node` started counting: its `timeAdded`, else when
    /// this controller first saw it.
    fn since(&self, node: &str, taint: &Taint, now: Timestamp) -> Timestamp {
        if let Some(added) = &taint.time_added {
            return added.0;
        }
        let mut seen = self.first_seen();
        let list = seen.entry(node.to_string()).or_default();
        match list.iter().find(|(t, _)| same_taint(t, taint)) {
            Some((_, at)) => *at,
            None => {
                list.push((taint.clone(), now));
                now
            }
        }
    }

    fn enqueue_pods_on(&self, node: &str) {
        for pod in self.caches.pods.list().iter().filter(|p| node_name(p) == node) {
            self.queue.add(key_of(pod.as_ref()));
        }
    }

    /// Forgets a pending eviction; `true` if there was one.
    fn unschedule(&self, key: &str) -> bool {
        self.scheduled().remove(key).is_some()
    }
}

impl EventHandler for Context {
    fn on_node(&self, change: &Change<Node>) {
        match change {
            Change::Applied { old, new } => {
                let taints = no_execute_taints(new);
                if old.as_ref().is_some_and(|o| no_execute_taints(o) == taints) {
                    return;
                }
                let name = new.metadata.name.clone().unwrap_or_default();
                if let Some(seen) = self.first_seen().get_mut(&name) {
                    seen.retain(|(t, _)| taints.iter().any(|now| same_taint(now, t) && now.time_added.is_none()));
                }
                self.enqueue_pods_on(&name);
            }
            Change::Deleted(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                self.first_seen().remove(&name);
                self.enqueue_pods_on(&name);
            }
        }
    }

    fn on_pod(&self, change: &Change<Pod>) {
        match change {
            Change::Applied { new, .. } if !node_name(new).is_empty() => self.queue.add(key_of(new.as_ref())),
            Change::Applied { .. } => {}
            Change::Deleted(pod) => {
                self.unschedule(&key_of(pod.as_ref()));
            }
        }
    }
}

/// Evicts, schedules the eviction of, or leaves alone one pod.
pub async fn reconcile(pod: Arc<Pod>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = key_of(pod.as_ref());
    if pod.metadata.deletion_timestamp.is_some() {
        // On its way out already, by us or anyone.
        ctx.unschedule(&key);
        return Ok(Action::await_change());
    }
    let node = Some(node_name(&pod)).filter(|n| !n.is_empty()).and_then(|n| ctx.caches.nodes.get(n));
    let taints = node.as_deref().map(no_execute_taints).unwrap_or_default();
    let now = Timestamp::now();
    let node_name = node_name(&pod).to_string();
    let started: Vec<(Taint, Timestamp)> = taints
        .into_iter()
        .map(|t| {
            let since = ctx.since(&node_name, &t, now);
            (t, since)
        })
        .collect();
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
    match decide(&started, &tolerations, now) {
        Eviction::Never => {
            if ctx.unschedule(&key) {
                tracing::info!(pod = %key, node = %node_name, "NoExecute taint gone or tolerated; eviction cancelled");
                ctx.recorder
                    .record(pod.as_ref(), EventType::Normal, "TaintManagerEviction", &format!("Cancelling deletion of Pod {key}"))
                    .await;
            }
            Ok(Action::await_change())
        }
        Eviction::At(at) => {
            if ctx.scheduled().insert(key.clone(), at).is_none() {
                tracing::info!(pod = %key, node = %node_name, at = %at, "pod tolerates the node's NoExecute taints for a while; eviction scheduled");
            }
            let wait = (at.as_millisecond() - now.as_millisecond()).max(0);
            Ok(Action::requeue(Duration::from_millis(wait.unsigned_abs())))
        }
        Eviction::Now => {
            let taints: Vec<String> = started.iter().map(|(t, _)| format!("{}:{}", t.key, t.effect)).collect();
            tracing::info!(pod = %key, node = %node_name, ?taints, "evicting pod from a NoExecute-tainted node");
            ctx.recorder
                .record(pod.as_ref(), EventType::Normal, "TaintManagerEviction", &format!("Marking for deletion Pod {key}"))
                .await;
            evict(&ctx, &pod).await?;
            ctx.unschedule(&key);
            Ok(Action::await_change())
        }
    }
}

/// Upstream's `addConditionAndDeletePod`: `DisruptionTarget` on the
/// status, then a delete with the pod's own grace period.
async fn evict(ctx: &Context, pod: &Pod) -> Result<(), Error> {
    let (ns, name) = (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default());
    let uid = pod.metadata.uid.as_deref();
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
    let now = api::time::now();
    let condition = PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: Some("DeletionByTaintManager".into()),
        message: Some("Taint manager: deleting due to NoExecute taint".into()),
        ..Default::default()
    };
    let mark = |p: &mut Pod| update_pod_condition(p.status.get_or_insert_with(Default::default), condition.clone(), &now);
    if update_status_live(&api, &name, uid, mark)
        .await
        .map_err(|e| Error::api(format!("mark pod {ns}/{name} DisruptionTarget"), e))?
        .is_none()
    {
        return Ok(());
    }
    match api.delete_with(&name, &json!({"preconditions": {"uid": uid}})).await {
        // Gone, or replaced by a new pod of that name, meanwhile.
        Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
        Err(e) => Err(Error::api(format!("delete pod {ns}/{name}"), e)),
        Ok(()) => Ok(()),
    }
}

/// The error policy: retry with back-off.
pub fn error_policy(pod: Arc<Pod>, err: &Error, _ctx: Arc<Context>) -> Action {
    default_error_policy("tainteviction", &key_of(pod.as_ref()), err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn taint(key: &str) -> Taint {
        Taint { key: key.into(), effect: "NoExecute".into(), value: None, time_added: None }
    }

    fn tolerate(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: seconds,
            value: None,
        }
    }

    #[test]
    fn who_goes_and_when() {
        let unreachable = "node.kubernetes.io/unreachable";
        let cases = [
            ("no taints", vec![], vec![], Eviction::Never),
            ("untolerated", vec![(taint("dedicated"), at(0))], vec![tolerate(unreachable, Some(300))], Eviction::Now),
            ("tolerated forever", vec![(taint(unreachable), at(0))], vec![tolerate(unreachable, None)], Eviction::Never),
            (
                "tolerated for 300 s from timeAdded",
                vec![(taint(unreachable), at(0))],
                vec![tolerate(unreachable, Some(300))],
                Eviction::At(at(300)),
            ),
            ("time is up", vec![(taint(unreachable), at(-301))], vec![tolerate(unreachable, Some(300))], Eviction::Now),
            ("zero seconds", vec![(taint(unreachable), at(0))], vec![tolerate(unreachable, Some(0))], Eviction::Now),
            ("negative seconds are zero", vec![(taint(unreachable), at(0))], vec![tolerate(unreachable, Some(-5))], Eviction::Now),
            (
                "the earliest of several deadlines",
                vec![(taint(unreachable), at(0)), (taint("maintenance"), at(-50))],
                vec![tolerate(unreachable, Some(300)), tolerate("maintenance", Some(100))],
                Eviction::At(at(50)),
            ),
            (
                "one untolerated taint is enough",
                vec![(taint(unreachable), at(0)), (taint("maintenance"), at(0))],
                vec![tolerate(unreachable, None)],
                Eviction::Now,
            ),
            (
                "the first matching toleration counts",
                vec![(taint(unreachable), at(0))],
                vec![tolerate(unreachable, None), tolerate(unreachable, Some(10))],
                Eviction::Never,
            ),
        ];
        for (name, taints, tolerations, want) in cases {
            assert_eq!(decide(&taints, &tolerations, at(0)), want, "{name}");
        }
    }

    #[test]
    fn only_no_execute_taints_count() {
        let node: Node = serde_json::from_value(json!({"spec": {"taints": [
            {"key": "a", "effect": "NoSchedule"},
            {"key": "b", "effect": "NoExecute", "timeAdded": "2023-11-14T22:13:20Z"},
            {"key": "c", "effect": "PreferNoSchedule"},
        ]}}))
        .unwrap();
        let taints = no_execute_taints(&node);
        assert_eq!(taints.len(), 1);
        assert_eq!((taints[0].key.as_str(), taints[0].time_added.as_ref().map(|t| t.0)), ("b", Some(at(0))));
    }
}
