//! What the informers' changes do to the cache and the queue (upstream
//! `eventhandlers.go`).
//!
//! The pod informer watches every pod, because the scheduler needs both
//! kinds: *pending* pods (no `spec.nodeName`) go to the queue, and
//! *assigned* pods go to the cache, where they count against their node.
//! Nodes go to the cache. Any change that can free room or add a place —
//! a node added or changed in a way filters care about, an assigned pod
//! deleted or finished — moves the unschedulable pods back to be tried; an
//! assigned pod added or relabelled moves those topology spreading
//! rejected (see [`crate::queue`]).
//!
//! These run on the informers' tasks and must not block: they only touch
//! the in-memory cache and queue.

use client::informer::Change;
use k8s_openapi::api::core::v1::{Node, Pod};

use crate::cache::SchedulerCache;
use crate::framework::types::pod_key;
use crate::queue::{ClusterEvent, SchedulingQueue};
use crate::SCHEDULER_NAME;

/// Whether this scheduler places `pod`: `spec.schedulerName` empty (the
/// api-server defaults it to `default-scheduler`) or `default-scheduler`.
pub fn responsible_for_pod(pod: &Pod) -> bool {
    matches!(pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()), None | Some("") | Some(SCHEDULER_NAME))
}

/// Whether the pod is bound to a node.
pub fn is_assigned(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty())
}

/// Whether the pod has finished: it holds no resources any more.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded") | Some("Failed"))
}

/// Whether a node update can change a filter's verdict. Agents rewrite
/// their Node's status with fresh heartbeat times; those updates must not
/// wake every unschedulable pod (upstream `nodeSchedulingPropertiesChange`).
pub fn node_scheduling_properties_changed(old: &Node, new: &Node) -> bool {
    let spec = |n: &Node| n.spec.clone().unwrap_or_default();
    let (old_spec, new_spec) = (spec(old), spec(new));
    let conditions = |n: &Node| -> Vec<(String, String)> {
        let mut cs: Vec<(String, String)> = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| cs.iter().map(|c| (c.type_.clone(), c.status.clone())).collect())
            .unwrap_or_default();
        cs.sort();
        cs
    };
    let allocatable = |n: &Node| n.status.as_ref().and_then(|s| s.allocatable.clone().or_else(|| s.capacity.clone()));
    old_spec.unschedulable != new_spec.unschedulable
        || old_spec.taints != new_spec.taints
        || old.metadata.labels != new.metadata.labels
        || allocatable(old) != allocatable(new)
        || conditions(old) != conditions(new)
}

/// Applies a node change.
pub fn on_node_change(queue: &SchedulingQueue, cache: &SchedulerCache, change: Change<Node>) {
    match change {
        Change::Applied { old, new } => {
            cache.add_or_update_node(new.clone());
            match old {
                None => queue.move_all_to_active_or_backoff(ClusterEvent::NodeAdd),
                Some(old) if node_scheduling_properties_changed(&old, &new) => {
                    queue.move_all_to_active_or_backoff(ClusterEvent::NodeUpdate)
                }
                Some(_) => {}
            }
        }
        Change::Deleted(node) => cache.remove_node(node.metadata.name.as_deref().unwrap_or_default()),
    }
}

/// What a change of a pod now on a node means to pods waiting on topology
/// spreading: it arrived (its binding seen, or created bound), or it
/// changed what spreading counts — its labels, or whether it is
/// terminating. Other updates (status, say) mean nothing to them.
pub fn assigned_pod_event(old: Option<&Pod>, new: &Pod) -> Option<ClusterEvent> {
    match old {
        None => Some(ClusterEvent::AssignedPodAdd),
        Some(old) if !is_assigned(old) => Some(ClusterEvent::AssignedPodAdd),
        Some(old)
            if old.metadata.labels != new.metadata.labels
                || old.metadata.deletion_timestamp.is_some() != new.metadata.deletion_timestamp.is_some() =>
        {
            Some(ClusterEvent::AssignedPodUpdate)
        }
        Some(_) => None,
    }
}

/// Applies a pod change.
pub fn on_pod_change(queue: &SchedulingQueue, cache: &SchedulerCache, change: Change<Pod>) {
    match change {
        Change::Applied { old, new } => {
            let key = pod_key(&new);
            if is_assigned(&new) {
                // Bound (by us or anyone): not pending any more. It counts on
                // its node until it finishes.
                queue.delete(&key);
                if is_terminal(&new) {
                    if cache.remove_pod(&key) {
                        queue.move_all_to_active_or_backoff(ClusterEvent::AssignedPodDelete);
                    }
                } else {
                    cache.add_pod(&new);
                    if let Some(event) = assigned_pod_event(old.as_deref(), &new) {
                        queue.move_all_to_active_or_backoff(event);
                    }
                }
            } else if new.metadata.deletion_timestamp.is_some() || is_terminal(&new) || !responsible_for_pod(&new) {
                queue.delete(&key);
            } else if !cache.is_assumed(&key) {
                // An assumed pod's binding is on its way; it is not pending.
                queue.add_or_update(new);
            }
        }
        Change::Deleted(pod) => {
            let key = pod_key(&pod);
            queue.delete(&key);
            if cache.remove_pod(&key) {
                queue.move_all_to_active_or_backoff(ClusterEvent::AssignedPodDelete);
            }
        }
    }
}

/// The informer handler for nodes.
pub fn node_handler(queue: SchedulingQueue, cache: SchedulerCache) -> impl Fn(Change<Node>) + Send + Sync + 'static {
    move |change| on_node_change(&queue, &cache, change)
}

/// The informer handler for pods.
pub fn pod_handler(queue: SchedulingQueue, cache: SchedulerCache) -> impl Fn(Change<Pod>) + Send + Sync + 'static {
    move |change| on_pod_change(&queue, &cache, change)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::plugins::testing::{labels, node, pod, taint};
    use crate::queue::QueueCounts;
    use k8s_openapi::api::core::v1::NodeCondition;

    fn applied<K>(old: Option<K>, new: K) -> Change<K> {
        Change::Applied { old: old.map(Arc::new), new: Arc::new(new) }
    }

    #[test]
    fn which_node_updates_matter() {
        let base = node("n");
        let heartbeat = {
            let mut n = base.clone();
            if let Some(cs) = n.status.as_mut().and_then(|s| s.conditions.as_mut()) {
                cs[0].last_heartbeat_time = Some(api::time::now());
                cs[0].message = Some("kubelet is posting ready status".into());
            }
            n
        };
        let not_ready = {
            let mut n = base.clone();
            if let Some(s) = n.status.as_mut() {
                s.conditions = Some(vec![NodeCondition { type_: "Ready".into(), status: "False".into(), ..Default::default() }]);
            }
            n
        };
        let cordoned = {
            let mut n = base.clone();
            if let Some(spec) = n.spec.as_mut() {
                spec.unschedulable = Some(true);
            }
            n
        };
        let tainted = {
            let mut n = base.clone();
            if let Some(spec) = n.spec.as_mut() {
                spec.taints = Some(vec![taint("k", "v", "NoSchedule")]);
            }
            n
        };
        let labelled = {
            let mut n = base.clone();
            n.metadata.labels = Some(labels(&[("zone", "a")]));
            n
        };
        let bigger = {
            let mut n = base.clone();
            if let Some(s) = n.status.as_mut() {
                s.allocatable = Some(crate::plugins::testing::quantities(&[("cpu", "8")]));
            }
            n
        };
        let cases = [
            ("heartbeat only", heartbeat, false),
            ("readiness", not_ready, true),
            ("cordon", cordoned, true),
            ("taint", tainted, true),
            ("labels", labelled, true),
            ("allocatable", bigger, true),
        ];
        for (name, new, want) in cases {
            assert_eq!(node_scheduling_properties_changed(&base, &new), want, "{name}");
        }
    }

    #[test]
    fn responsibility() {
        let with_scheduler = |name: Option<&str>| {
            let mut p = pod("p");
            if let Some(spec) = p.spec.as_mut() {
                spec.scheduler_name = name.map(str::to_string);
            }
            p
        };
        let cases = [(None, true), (Some(""), true), (Some("default-scheduler"), true), (Some("my-scheduler"), false)];
        for (name, want) in cases {
            assert_eq!(responsible_for_pod(&with_scheduler(name)), want, "{name:?}");
        }
    }

    #[test]
    fn which_assigned_pod_changes_matter_to_spreading() {
        let on_node = |p: Pod| {
            let mut p = p;
            if let Some(spec) = p.spec.as_mut() {
                spec.node_name = Some("n1".into());
            }
            p
        };
        let bound = on_node(pod("web"));
        let relabelled = {
            let mut p = bound.clone();
            p.metadata.labels = Some(labels(&[("app", "web")]));
            p
        };
        let terminating = {
            let mut p = bound.clone();
            p.metadata.deletion_timestamp = Some(api::time::now());
            p
        };
        let running = {
            let mut p = bound.clone();
            p.status = Some(k8s_openapi::api::core::v1::PodStatus { phase: Some("Running".into()), ..Default::default() });
            p
        };
        let cases = [
            ("created bound", None, &bound, Some(ClusterEvent::AssignedPodAdd)),
            ("binding seen", Some(pod("web")), &bound, Some(ClusterEvent::AssignedPodAdd)),
            ("labels changed", Some(bound.clone()), &relabelled, Some(ClusterEvent::AssignedPodUpdate)),
            ("began terminating", Some(bound.clone()), &terminating, Some(ClusterEvent::AssignedPodUpdate)),
            ("status only", Some(bound.clone()), &running, None),
        ];
        for (name, old, new, want) in cases {
            assert_eq!(assigned_pod_event(old.as_ref(), new), want, "{name}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pods_flow_between_queue_and_cache() {
        let queue = SchedulingQueue::new();
        let cache = SchedulerCache::new();
        on_node_change(&queue, &cache, applied(None, node("n1")));

        // A pending pod is queued; a deleting or foreign one is not.
        on_pod_change(&queue, &cache, applied(None, pod("web")));
        let mut deleting = pod("old");
        deleting.metadata.deletion_timestamp = Some(api::time::now());
        on_pod_change(&queue, &cache, applied(None, deleting));
        let mut foreign = pod("other");
        if let Some(spec) = foreign.spec.as_mut() {
            spec.scheduler_name = Some("my-scheduler".into());
        }
        on_pod_change(&queue, &cache, applied(None, foreign));
        assert_eq!(queue.counts(), QueueCounts { active: 1, ..Default::default() });

        // Once bound it leaves the queue and counts on its node.
        let mut bound = pod("web");
        if let Some(spec) = bound.spec.as_mut() {
            spec.node_name = Some("n1".into());
        }
        on_pod_change(&queue, &cache, applied(Some(pod("web")), bound.clone()));
        assert_eq!(queue.counts(), QueueCounts::default());
        assert_eq!(cache.snapshot()[0].pod_count(), 1);

        // An unschedulable pod waits; deleting the bound pod wakes it.
        on_pod_change(&queue, &cache, applied(None, pod("big")));
        let (info, cycle) = queue.pop().await.expect("queued");
        queue.requeue(info, cycle, crate::queue::Requeue::Unschedulable);
        assert_eq!(queue.counts().unschedulable, 1);
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        on_pod_change(&queue, &cache, Change::Deleted(Arc::new(bound)));
        assert_eq!(cache.snapshot()[0].pod_count(), 0);
        assert_eq!(queue.counts().active, 1);

        // A heartbeat does not wake unschedulable pods.
        let (info, cycle) = queue.pop().await.expect("queued");
        queue.requeue(info, cycle, crate::queue::Requeue::Unschedulable);
        on_node_change(&queue, &cache, applied(Some(node("n1")), node("n1")));
        assert_eq!(queue.counts().unschedulable, 1);
    }
}
