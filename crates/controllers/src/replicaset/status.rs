//! A ReplicaSet's status, computed from the pods it owns (upstream
//! `replica_set_utils.go` calculateStatus).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::podutil;

/// The condition a ReplicaSet carries while it cannot create or delete pods.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// The status `rs` should have, given the active pods it owns (`pods`) and
/// the error, if any, of this sync's attempt to create or delete pods.
///
/// - `replicas`: active pods owned;
/// - `fullyLabeledReplicas`: those carrying every label of the template;
/// - `readyReplicas`: those whose `Ready` condition is true;
/// - `availableReplicas`: those ready for at least `minReadySeconds`;
/// - `observedGeneration`: the spec generation this status describes;
/// - a `ReplicaFailure` condition while creating or deleting fails.
pub fn calculate_status(rs: &ReplicaSet, pods: &[Arc<Pod>], manage_error: Option<&str>, now: jiff::Timestamp) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut status = rs.status.clone().unwrap_or_default();
    let (mut fully_labeled, mut ready, mut available) = (0, 0, 0);
    for pod in pods {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if template_labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            fully_labeled += 1;
        }
        if podutil::is_ready(pod) {
            ready += 1;
            if podutil::is_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let mut conditions = status.conditions.take().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match manage_error {
        Some(message) if !has_failure => {
            let reason = if (pods.len() as i64) < i64::from(desired) { "FailedCreate" } else { "FailedDelete" };
            conditions.push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if has_failure => conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    status.conditions = if conditions.is_empty() { None } else { Some(conditions) };
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas = Some(fully_labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.observed_generation = rs.metadata.generation;
    status
}

/// When to look at `rs` again because a ready pod will then have been
/// ready for `minReadySeconds` and become available; no watch event marks
/// that moment, so the controller sets a timer.
pub fn next_availability_check(rs: &ReplicaSet, pods: &[Arc<Pod>], now: jiff::Timestamp) -> Option<Duration> {
    let min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    if min_ready <= 0 {
        return None;
    }
    pods.iter()
        .filter_map(|p| podutil::available_in(p, min_ready, now))
        .filter(|&s| s > 0)
        .min()
        // One second late rather than early: timestamps are whole seconds.
        .map(|s| Duration::from_secs(s as u64 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podutil::testing::*;

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "generation": 4},
            "spec": {
                "replicas": replicas,
                "minReadySeconds": min_ready,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}}
            }
        }))
        .unwrap()
    }

    fn labelled(mut p: Pod, pairs: &[(&str, &str)]) -> Pod {
        p.metadata.labels = Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        p
    }

    #[test]
    fn counts() {
        let now = ts(100);
        let full = [("app", "web"), ("tier", "fe")];
        let pods: Vec<Arc<Pod>> = vec![
            Arc::new(labelled(pod("a", 0, "Pending"), &full)),
            Arc::new(labelled(ready(pod("b", 0, "Running"), 10), &full)),
            Arc::new(labelled(ready(pod("c", 0, "Running"), 95), &[("app", "web")])),
        ];
        // (minReadySeconds, want (replicas, fully labeled, ready, available))
        let cases = [(0, (3, 2, 2, 2)), (10, (3, 2, 2, 1)), (200, (3, 2, 2, 0))];
        for (mrs, want) in cases {
            let s = calculate_status(&rs(3, mrs), &pods, None, now);
            let got = (s.replicas, s.fully_labeled_replicas.unwrap(), s.ready_replicas.unwrap(), s.available_replicas.unwrap());
            assert_eq!(got, want, "minReadySeconds={mrs}");
            assert_eq!(s.observed_generation, Some(4));
            assert!(s.conditions.is_none());
        }
    }

    #[test]
    fn replica_failure_condition_comes_and_goes() {
        let now = ts(100);
        let failing = calculate_status(&rs(3, 0), &[], Some("quota exceeded"), now);
        let cond = &failing.conditions.as_ref().unwrap()[0];
        assert_eq!((cond.type_.as_str(), cond.reason.as_deref()), (REPLICA_FAILURE, Some("FailedCreate")));
        let mut healed = rs(3, 0);
        healed.status = Some(failing);
        assert!(calculate_status(&healed, &[], None, now).conditions.is_none());
    }

    #[test]
    fn availability_timer() {
        let now = ts(100);
        let pods: Vec<Arc<Pod>> = vec![
            Arc::new(ready(pod("a", 0, "Running"), 95)),
            Arc::new(ready(pod("b", 0, "Running"), 98)),
            Arc::new(pod("c", 0, "Pending")),
        ];
        let cases = [(0, None), (3, Some(2)), (10, Some(6)), (1, None)];
        for (mrs, want) in cases {
            assert_eq!(next_availability_check(&rs(3, mrs), &pods, now), want.map(Duration::from_secs), "minReadySeconds={mrs}");
        }
    }
}
