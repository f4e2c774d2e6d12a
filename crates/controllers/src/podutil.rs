//! Facts about pods that every controller shares (upstream
//! `pkg/api/v1/pod` and `pkg/controller/controller_utils.go`).

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

/// A pod counts towards its controller's replicas while it may still run:
/// not Succeeded or Failed, and not being deleted. A terminating pod is on
/// its way out, so a ReplicaSet replaces it at once rather than waiting for
/// its grace period to end.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default();
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's `Ready` condition, if the agent has reported one.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

/// Sets `condition` in `status` (upstream `UpdatePodCondition`): a new
/// condition, or one whose status changes, gets `lastTransitionTime` =
/// `now` unless it brings its own; one whose status stays keeps its old
/// transition time. Returns whether anything changed.
pub fn update_pod_condition(status: &mut PodStatus, mut condition: PodCondition, now: &Time) -> bool {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        None => {
            condition.last_transition_time.get_or_insert_with(|| now.clone());
            conditions.push(condition);
            true
        }
        Some(old) => {
            condition.last_transition_time =
                if old.status == condition.status { old.last_transition_time.clone() } else { Some(now.clone()) };
            let changed = *old != condition;
            *old = condition;
            changed
        }
    }
}

/// `Ready` is `True`: every container passed its readiness probe.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Available = ready, and ready for at least `min_ready_seconds`
/// (`lastTransitionTime + minReadySeconds <= now`). `minReadySeconds` lets a
/// rollout wait for a new pod to prove itself before counting it.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    available_in(pod, min_ready_seconds, now) == Some(0)
}

/// Seconds until a ready pod becomes available: `Some(0)` if it already is,
/// `None` if it is not ready at all (so no timer can help).
pub fn available_in(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> Option<i64> {
    let cond = ready_condition(pod).filter(|c| c.status == "True")?;
    if min_ready_seconds <= 0 {
        return Some(0);
    }
    // A ready pod without a transition time cannot prove how long it has
    // been ready; upstream treats it as not yet available.
    let since = cond.last_transition_time.as_ref()?.0.as_second();
    Some((since + i64::from(min_ready_seconds) - now.as_second()).max(0))
}

/// The sum of container restart counts, the "flappiness" upstream uses to
/// prefer deleting crash-looping pods.
pub fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

fn is_assigned(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty())
}

/// Upstream's `ActivePods` ordering: pods that sort first are the cheapest
/// to lose, so a ReplicaSet scaling down deletes from the front.
///
/// 1. unassigned before assigned (it has not started anything yet);
/// 2. Pending before Unknown before Running;
/// 3. not ready before ready;
/// 4. of two ready pods, the one ready for less time first;
/// 5. more container restarts first;
/// 6. newer (later creationTimestamp) first.
pub fn active_pods_order(a: &Pod, b: &Pod) -> Ordering {
    is_assigned(a)
        .cmp(&is_assigned(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| {
            if is_ready(a) && is_ready(b) {
                let since = |p: &Pod| ready_condition(p).and_then(|c| c.last_transition_time.as_ref()).map(|t| t.0);
                // Later transition = ready for less time = first.
                since(b).cmp(&since(a))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(b).cmp(&created(a))
        })
}

/// `namespace/name`, the key informer caches and work queues use.
pub fn key(meta: &ObjectMeta) -> String {
    format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
}

#[cfg(test)]
pub(crate) mod testing {
    //! Small builders for test pods.
    use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    pub fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(secs).expect("valid timestamp")
    }

    /// A pod named `name`, created at `created` (seconds), in `phase`.
    pub fn pod(name: &str, created: i64, phase: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(ts(created))),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus { phase: Some(phase.into()), ..Default::default() }),
        }
    }

    pub fn on_node(mut p: Pod, node: &str) -> Pod {
        p.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
        p
    }

    /// Marks the pod Ready since `since` (seconds).
    pub fn ready(mut p: Pod, since: i64) -> Pod {
        let st = p.status.get_or_insert_with(Default::default);
        st.conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(ts(since))),
            ..Default::default()
        }]);
        p
    }

    pub fn restarted(mut p: Pod, n: i32) -> Pod {
        let st = p.status.get_or_insert_with(Default::default);
        st.container_statuses = Some(vec![ContainerStatus { name: "c".into(), restart_count: n, ..Default::default() }]);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn activity() {
        let mut deleting = pod("d", 0, "Running");
        deleting.metadata.deletion_timestamp = Some(Time(ts(10)));
        let cases = [
            (pod("p", 0, "Pending"), true),
            (pod("r", 0, "Running"), true),
            (pod("u", 0, "Unknown"), true),
            (pod("s", 0, "Succeeded"), false),
            (pod("f", 0, "Failed"), false),
            (deleting, false),
        ];
        for (p, want) in cases {
            assert_eq!(is_active(&p), want, "{:?}", p.metadata.name);
        }
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now = ts(100);
        // (pod, minReadySeconds, available?, seconds until available)
        let cases = [
            (pod("a", 0, "Running"), 0, false, None),
            (ready(pod("b", 0, "Running"), 100), 0, true, Some(0)),
            (ready(pod("c", 0, "Running"), 95), 5, true, Some(0)),
            (ready(pod("d", 0, "Running"), 96), 5, false, Some(1)),
            (ready(pod("e", 0, "Running"), 50), 60, false, Some(10)),
        ];
        for (p, mrs, want, wait) in cases {
            assert_eq!(is_available(&p, mrs, now), want, "{:?}", p.metadata.name);
            assert_eq!(available_in(&p, mrs, now), wait, "{:?}", p.metadata.name);
        }
    }

    #[test]
    fn active_pods_ordering_puts_cheapest_first() {
        // Each pair: the first sorts strictly before the second.
        let cases = [
            ("unassigned < assigned", pod("a", 0, "Pending"), on_node(pod("b", 0, "Pending"), "n1")),
            ("pending < unknown", on_node(pod("a", 0, "Pending"), "n1"), on_node(pod("b", 0, "Unknown"), "n1")),
            ("unknown < running", on_node(pod("a", 0, "Unknown"), "n1"), on_node(pod("b", 0, "Running"), "n1")),
            ("not ready < ready", on_node(pod("a", 0, "Running"), "n1"), ready(on_node(pod("b", 0, "Running"), "n1"), 5)),
            (
                "ready for less time < longer",
                ready(on_node(pod("a", 0, "Running"), "n1"), 50),
                ready(on_node(pod("b", 0, "Running"), "n1"), 10),
            ),
            (
                "more restarts < fewer",
                restarted(on_node(pod("a", 0, "Running"), "n1"), 3),
                restarted(on_node(pod("b", 0, "Running"), "n1"), 1),
            ),
            ("newer < older", on_node(pod("a", 20, "Running"), "n1"), on_node(pod("b", 10, "Running"), "n1")),
        ];
        for (why, first, second) in cases {
            assert_eq!(active_pods_order(&first, &second), Ordering::Less, "{why}");
            assert_eq!(active_pods_order(&second, &first), Ordering::Greater, "{why} (reversed)");
        }
    }

    #[test]
    fn updating_a_condition_keeps_its_transition_time_unless_its_status_changes() {
        let t = |s: i64| Time(jiff::Timestamp::from_second(1_700_000_000 + s).unwrap());
        let cond = |type_: &str, status: &str, reason: Option<&str>| PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.map(Into::into),
            ..Default::default()
        };
        let mut status = PodStatus::default();
        assert!(update_pod_condition(&mut status, cond("Ready", "True", None), &t(0)));
        assert!(!update_pod_condition(&mut status, cond("Ready", "True", None), &t(5)), "nothing changed");
        assert!(update_pod_condition(&mut status, cond("Ready", "True", Some("Why")), &t(6)), "a new reason");
        let ready = |s: &PodStatus| s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Ready").unwrap().clone();
        assert_eq!(ready(&status).last_transition_time, Some(t(0)));
        assert!(update_pod_condition(&mut status, cond("Ready", "False", None), &t(9)));
        assert_eq!((ready(&status).status.as_str(), ready(&status).last_transition_time), ("False", Some(t(9))));
        assert!(update_pod_condition(&mut status, cond("DisruptionTarget", "True", Some("DeletionByTaintManager")), &t(10)));
        assert_eq!(status.conditions.as_ref().unwrap().len(), 2);
    }
}
