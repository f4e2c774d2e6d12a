//! A Deployment's status and conditions, with no I/O (upstream
//! `sync.go` calculateStatus, `progress.go` syncRolloutStatus and the
//! condition helpers of `deployment_util.go`).
//!
//! Two conditions tell users — and `kubectl rollout status` — where a
//! Deployment stands:
//! - `Available`: at least `replicas - maxUnavailable` pods are available
//!   (`MinimumReplicasAvailable`), or not (`MinimumReplicasUnavailable`).
//! - `Progressing`: a rollout is moving (`NewReplicaSetCreated`,
//!   `FoundNewReplicaSet`, `ReplicaSetUpdated`), has finished
//!   (`NewReplicaSetAvailable`), or has made no progress for
//!   `progressDeadlineSeconds` (`ProgressDeadlineExceeded`, status False).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::rolling;
use super::util::{self, desired};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";

pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
pub const NEW_REPLICASET_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_REPLICASET: &str = "FoundNewReplicaSet";
pub const REPLICASET_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_REPLICASET_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
pub const REPLICASET_CREATE_ERROR: &str = "ReplicaSetCreateError";
pub const DEPLOYMENT_PAUSED: &str = "DeploymentPaused";
pub const DEPLOYMENT_RESUMED: &str = "DeploymentResumed";

/// The default `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

/// Condition times are whole seconds, as `metav1.Time` serialises them;
/// truncating here keeps a freshly computed status equal to the one read
/// back from the server.
pub fn whole_seconds(t: jiff::Timestamp) -> Time {
    Time(jiff::Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// A condition stamped `now` for both times.
pub fn condition(type_: &str, status: &str, reason: &str, message: String, now: jiff::Timestamp) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(whole_seconds(now)),
        last_transition_time: Some(whole_seconds(now)),
    }
}

pub fn get_condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = status.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
    }
}

/// Sets a condition, upstream's way: nothing changes if one of the same
/// type already has the same status and reason; a condition keeps its
/// `lastTransitionTime` while its status stays the same.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(current) = get_condition(status, &cond.type_) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &cond.type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

/// `spec.progressDeadlineSeconds`, defaulting to 600; `None` if the user
/// disabled it with the maximum int32, as upstream allows.
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    let s = d.spec.as_ref()?.progress_deadline_seconds.unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS);
    (s != i32::MAX).then_some(s)
}

/// Counts and the `Available` condition (upstream `calculateStatus`).
/// `all` holds every ReplicaSet of the Deployment, including `new`.
pub fn calculate_status(d: &Deployment, all: &[Arc<ReplicaSet>], new: Option<&Arc<ReplicaSet>>, now: jiff::Timestamp) -> DeploymentStatus {
    let available: i32 = all.iter().map(|rs| util::rs_available(rs)).sum();
    let total_spec: i32 = all.iter().map(|rs| util::rs_replicas(rs)).sum();
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(all.iter().map(|rs| util::rs_status_replicas(rs)).sum()),
        updated_replicas: Some(new.map(|rs| util::rs_status_replicas(rs)).unwrap_or(0)),
        ready_replicas: Some(all.iter().map(|rs| rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total_spec - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions,
    };
    let cond = if available >= desired(d) - rolling::max_unavailable(d) {
        condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE, "Deployment has minimum availability.".into(), now)
    } else {
        condition(AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE, "Deployment does not have minimum availability.".into(), now)
    };
    set_condition(&mut status, cond);
    status
}

/// Every replica is updated and available, and the status describes the
/// current spec: the rollout is done.
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let n = desired(d);
    status.updated_replicas == Some(n)
        && status.replicas == Some(n)
        && status.available_replicas == Some(n)
        && status.observed_generation >= d.metadata.generation
}

/// Something moved since the last status: more updated, fewer old, more
/// ready or more available replicas.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// No progress for `progressDeadlineSeconds` since the Progressing
/// condition was last updated.
pub fn deployment_timed_out(d: &Deployment, status: &DeploymentStatus, now: jiff::Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else { return false };
    let Some(cond) = get_condition(status, PROGRESSING) else { return false };
    match cond.reason.as_deref() {
        Some(NEW_REPLICASET_AVAILABLE) => false,
        Some(PROGRESS_DEADLINE_EXCEEDED) => true,
        _ => cond.last_update_time.as_ref().is_some_and(|t| t.0.as_second() + i64::from(deadline) < now.as_second()),
    }
}

/// The full status after a rollout step: counts, `Available`, and the
/// `Progressing` condition estimated from how the counts moved (upstream
/// `syncRolloutStatus`).
pub fn rollout_status(d: &Deployment, all: &[Arc<ReplicaSet>], new: Option<&Arc<ReplicaSet>>, now: jiff::Timestamp) -> DeploymentStatus {
    let mut status = calculate_status(d, all, new, now);
    if progress_deadline(d).is_none() {
        remove_condition(&mut status, PROGRESSING);
        return status;
    }
    let current = d.status.as_ref().and_then(|s| get_condition(s, PROGRESSING)).cloned();
    let complete_before = status.replicas == status.updated_replicas
        && current.as_ref().is_some_and(|c| c.reason.as_deref() == Some(NEW_REPLICASET_AVAILABLE));
    if complete_before {
        return status;
    }
    let subject = match new {
        Some(rs) => format!("ReplicaSet \"{}\"", rs.metadata.name.as_deref().unwrap_or_default()),
        None => format!("Deployment \"{}\"", d.metadata.name.as_deref().unwrap_or_default()),
    };
    if deployment_complete(d, &status) {
        let msg = format!("{subject} has successfully progressed.");
        set_condition(&mut status, condition(PROGRESSING, "True", NEW_REPLICASET_AVAILABLE, msg, now));
    } else if deployment_progressing(d, &status) {
        // Progress refreshes lastUpdateTime even when the reason stays the
        // same; that is what pushes the deadline back.
        let mut cond = condition(PROGRESSING, "True", REPLICASET_UPDATED, format!("{subject} is progressing."), now);
        if let Some(c) = current.as_ref().filter(|c| c.status == "True") {
            cond.last_transition_time = c.last_transition_time.clone();
        }
        remove_condition(&mut status, PROGRESSING);
        set_condition(&mut status, cond);
    } else if deployment_timed_out(d, &status, now) {
        let msg = format!("{subject} has timed out progressing.");
        set_condition(&mut status, condition(PROGRESSING, "False", PROGRESS_DEADLINE_EXCEEDED, msg, now));
    }
    status
}

/// When to look again at a rollout that is stuck, so the deadline is
/// noticed even though no object changes (upstream
/// `requeueStuckDeployment`).
pub fn requeue_stuck_after(d: &Deployment, status: &DeploymentStatus, now: jiff::Timestamp) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let cond = get_condition(status, PROGRESSING)?;
    if cond.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED) || deployment_complete(d, status) {
        return None;
    }
    let since = cond.last_update_time.as_ref()?.0.as_second();
    let left = since + i64::from(deadline) - now.as_second();
    // One second past the deadline, since timed_out compares strictly.
    Some(Duration::from_secs(left.max(0) as u64 + 1))
}

/// The Progressing condition a pause or resume calls for, if it is not
/// already there (upstream `checkPausedConditions`).
pub fn paused_condition(d: &Deployment, now: jiff::Timestamp) -> Option<DeploymentCondition> {
    progress_deadline(d)?;
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let current = d.status.as_ref().and_then(|s| get_condition(s, PROGRESSING));
    let was_paused = current.is_some_and(|c| c.reason.as_deref() == Some(DEPLOYMENT_PAUSED));
    match (paused, was_paused) {
        (true, false) => Some(condition(PROGRESSING, "Unknown", DEPLOYMENT_PAUSED, "Deployment is paused".into(), now)),
        (false, true) => Some(condition(PROGRESSING, "Unknown", DEPLOYMENT_RESUMED, "Deployment is resumed".into(), now)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podutil::testing::ts;

    fn deployment(replicas: i32, generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": status
        }))
        .unwrap()
    }

    fn rs(name: &str, spec: i32, replicas: i32, ready: i32, available: i32) -> Arc<ReplicaSet> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"replicas": spec, "selector": {}},
                "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": available}
            }))
            .unwrap(),
        )
    }

    fn reason(s: &DeploymentStatus, t: &str) -> Option<String> {
        get_condition(s, t).and_then(|c| c.reason.clone())
    }

    #[test]
    fn counts_and_availability() {
        let now = ts(1000);
        let d = deployment(4, 2, serde_json::json!({}));
        let old = rs("web-old", 2, 2, 2, 2);
        let new = rs("web-new", 3, 3, 2, 1);
        let s = calculate_status(&d, &[old.clone(), new.clone()], Some(&new), now);
        assert_eq!(
            (s.replicas, s.updated_replicas, s.ready_replicas, s.available_replicas, s.unavailable_replicas, s.observed_generation),
            (Some(5), Some(3), Some(4), Some(3), Some(2), Some(2))
        );
        // 3 available >= 4 - 1 (25% of 4): minimum availability.
        assert_eq!(reason(&s, AVAILABLE).as_deref(), Some(MINIMUM_REPLICAS_AVAILABLE));
        let starved = calculate_status(&d, &[rs("web-new", 4, 4, 1, 1)], None, now);
        let cond = get_condition(&starved, AVAILABLE).unwrap();
        assert_eq!((cond.status.as_str(), cond.message.as_deref()), ("False", Some("Deployment does not have minimum availability.")));
    }

    #[test]
    fn progressing_condition_through_a_rollout() {
        let t0 = ts(1_000);
        let progressing = |at: i64| {
            serde_json::json!({"type": "Progressing", "status": "True", "reason": REPLICASET_UPDATED,
                               "message": "ReplicaSet \"web-new\" is progressing.",
                               "lastUpdateTime": ts(at).to_string(), "lastTransitionTime": ts(at).to_string()})
        };
        // (case, deployment status before, ReplicaSets, now, want reason, want message)
        let cases = [
            (
                "progress made",
                serde_json::json!({"replicas": 3, "updatedReplicas": 1, "availableReplicas": 3, "conditions": [progressing(900)]}),
                vec![rs("web-old", 1, 1, 1, 1), rs("web-new", 3, 3, 2, 2)],
                t0,
                REPLICASET_UPDATED,
                "ReplicaSet \"web-new\" is progressing.",
            ),
            (
                "complete",
                serde_json::json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2, "conditions": [progressing(900)]}),
                vec![rs("web-new", 3, 3, 3, 3)],
                t0,
                NEW_REPLICASET_AVAILABLE,
                "ReplicaSet \"web-new\" has successfully progressed.",
            ),
            (
                "stuck within the deadline",
                serde_json::json!({"replicas": 4, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3, "conditions": [progressing(900)]}),
                vec![rs("web-old", 3, 3, 3, 3), rs("web-new", 1, 1, 0, 0)],
                t0,
                REPLICASET_UPDATED,
                "ReplicaSet \"web-new\" is progressing.",
            ),
            (
                "stuck past the deadline",
                serde_json::json!({"replicas": 4, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3, "conditions": [progressing(900)]}),
                vec![rs("web-old", 3, 3, 3, 3), rs("web-new", 1, 1, 0, 0)],
                ts(900 + 601),
                PROGRESS_DEADLINE_EXCEEDED,
                "ReplicaSet \"web-new\" has timed out progressing.",
            ),
        ];
        for (name, before, rss, now, want_reason, want_msg) in cases {
            let d = deployment(3, 1, before);
            let new = rss.last().cloned();
            let s = rollout_status(&d, &rss, new.as_ref(), now);
            let c = get_condition(&s, PROGRESSING).unwrap();
            assert_eq!((c.reason.as_deref(), c.message.as_deref()), (Some(want_reason), Some(want_msg)), "{name}");
            if want_reason == PROGRESS_DEADLINE_EXCEEDED {
                assert_eq!(c.status, "False", "{name}");
                assert_eq!(requeue_stuck_after(&d, &s, now), None, "{name}: no timer once timed out");
            }
        }
    }

    #[test]
    fn stuck_rollouts_are_looked_at_when_the_deadline_passes() {
        let d = deployment(3, 1, serde_json::json!({}));
        let mut s = DeploymentStatus::default();
        set_condition(&mut s, condition(PROGRESSING, "True", REPLICASET_UPDATED, "x".into(), ts(1_000)));
        assert_eq!(requeue_stuck_after(&d, &s, ts(1_100)), Some(Duration::from_secs(501)));
        assert_eq!(requeue_stuck_after(&d, &s, ts(5_000)), Some(Duration::from_secs(1)));
    }

    #[test]
    fn set_condition_keeps_transition_time_while_status_holds() {
        let mut s = DeploymentStatus::default();
        set_condition(&mut s, condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE, "a".into(), ts(10)));
        set_condition(&mut s, condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE, "a".into(), ts(20)));
        assert_eq!(get_condition(&s, AVAILABLE).unwrap().last_update_time, Some(whole_seconds(ts(10))), "same reason: untouched");
        set_condition(&mut s, condition(AVAILABLE, "True", "Other", "b".into(), ts(30)));
        let c = get_condition(&s, AVAILABLE).unwrap();
        assert_eq!(
            (c.last_transition_time.clone(), c.last_update_time.clone()),
            (Some(whole_seconds(ts(10))), Some(whole_seconds(ts(30))))
        );
        set_condition(&mut s, condition(AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE, "c".into(), ts(40)));
        assert_eq!(get_condition(&s, AVAILABLE).unwrap().last_transition_time, Some(whole_seconds(ts(40))));
        assert_eq!(s.conditions.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn pause_and_resume_conditions() {
        let now = ts(10);
        let mut d = deployment(3, 1, serde_json::json!({}));
        assert!(paused_condition(&d, now).is_none());
        d.spec.as_mut().unwrap().paused = Some(true);
        let c = paused_condition(&d, now).unwrap();
        assert_eq!((c.reason.as_deref(), c.message.as_deref()), (Some(DEPLOYMENT_PAUSED), Some("Deployment is paused")));
        let mut s = DeploymentStatus::default();
        set_condition(&mut s, c);
        d.status = Some(s);
        assert!(paused_condition(&d, now).is_none(), "already recorded");
        d.spec.as_mut().unwrap().paused = Some(false);
        assert_eq!(paused_condition(&d, now).unwrap().reason.as_deref(), Some(DEPLOYMENT_RESUMED));
    }
}
