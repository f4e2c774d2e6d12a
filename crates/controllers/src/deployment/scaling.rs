//! Scaling a Deployment that is not rolling out: what happens to its
//! ReplicaSets when only `spec.replicas` changes (upstream `sync.go`
//! `scale`, `isScalingEvent`, `getProportion`).
//!
//! With one active ReplicaSet the answer is simple: it gets all the
//! replicas. In the middle of a rollout, with several active ReplicaSets,
//! the change is shared *proportionally*: each ReplicaSet's share of the
//! new `replicas + maxSurge` follows its share of the old one (remembered
//! in its `max-replicas` annotation), so a half-finished rollout stays half
//! finished rather than jumping forward or back.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::rolling;
use super::util::{self, desired};

/// Whether `spec.replicas` changed since the active ReplicaSets were last
/// sized: any of them records a different `desired-replicas`.
pub fn is_scaling_event(d: &Deployment, all: &[Arc<ReplicaSet>]) -> bool {
    util::active(all).iter().filter_map(|rs| util::desired_replicas_annotation(rs)).any(|n| n != desired(d))
}

/// The one ReplicaSet to give all replicas to, if there is one: the only
/// active ReplicaSet, or (none active) the new one, else the newest old one.
pub fn find_active_or_latest(new: Option<&Arc<ReplicaSet>>, old: &[Arc<ReplicaSet>]) -> Option<Arc<ReplicaSet>> {
    let mut old = old.to_vec();
    util::sort_by_creation(&mut old);
    old.reverse();
    let mut all = old.clone();
    all.extend(new.cloned());
    let active = util::active(&all);
    match active.len() {
        0 => new.cloned().or_else(|| old.first().cloned()),
        1 => active.first().cloned(),
        _ => None,
    }
}

/// The new ReplicaSet already holds every replica, all available: then the
/// old ones can simply go to zero.
pub fn is_saturated(d: &Deployment, rs: Option<&Arc<ReplicaSet>>) -> bool {
    let Some(rs) = rs else { return false };
    let want = desired(d);
    util::rs_replicas(rs) == want && util::desired_replicas_annotation(rs) == Some(want) && util::rs_available(rs) == want
}

/// How many replicas one ReplicaSet gains (or, negative, loses) out of
/// `to_add`, having handed out `added` already (upstream `GetProportion`).
fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    let replicas = util::rs_replicas(rs);
    if replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if desired(d) == 0 {
        -replicas
    } else {
        let total = desired(d) + rolling::max_surge(d);
        // Without the annotation, fall back to the Deployment's last
        // observed size; the min/max below keep us within bounds anyway.
        let annotated = util::max_replicas_annotation(rs)
            .or_else(|| d.status.as_ref().and_then(|s| s.replicas))
            .filter(|n| *n > 0)
            .unwrap_or(replicas);
        let scaled = f64::from(replicas) * f64::from(total) / f64::from(annotated);
        scaled.round() as i32 - replicas
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// New sizes for the active ReplicaSets `active` (any order) when the
/// Deployment was scaled mid-rollout, in the same order as given. The total
/// becomes `replicas + maxSurge`; leftovers from rounding go to the largest
/// ReplicaSet (newer first when growing, older first when shrinking).
pub fn proportional_sizes(d: &Deployment, active: &[Arc<ReplicaSet>]) -> Vec<i32> {
    let current: i32 = active.iter().map(|rs| util::rs_replicas(rs)).sum();
    let allowed = if desired(d) > 0 { desired(d) + rolling::max_surge(d) } else { 0 };
    let to_add = allowed - current;
    let mut order: Vec<usize> = (0..active.len()).collect();
    let created = |i: usize| active[i].metadata.creation_timestamp.as_ref().map(|t| t.0);
    order.sort_by(|&a, &b| {
        let by_size = util::rs_replicas(&active[b]).cmp(&util::rs_replicas(&active[a]));
        if to_add > 0 {
            by_size.then_with(|| created(b).cmp(&created(a)))
        } else {
            by_size.then_with(|| created(a).cmp(&created(b)))
        }
    });
    let mut sizes: Vec<i32> = active.iter().map(|rs| util::rs_replicas(rs)).collect();
    if to_add == 0 {
        return sizes;
    }
    let mut added = 0;
    for &i in &order {
        let p = proportion(&active[i], d, to_add, added);
        sizes[i] += p;
        added += p;
    }
    if let Some(&largest) = order.first() {
        sizes[largest] = (sizes[largest] + to_add - added).max(0);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podutil::testing::ts;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn deployment(replicas: i32) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {}, "template": {},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}}
        }))
        .unwrap()
    }

    fn rs(name: &str, created: i64, replicas: i32, desired: i32, max: i32) -> Arc<ReplicaSet> {
        let mut rs: ReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "annotations": {
                util::DESIRED_REPLICAS_ANNOTATION: desired.to_string(),
                util::MAX_REPLICAS_ANNOTATION: max.to_string()}},
            "spec": {"replicas": replicas, "selector": {}}
        }))
        .unwrap();
        rs.metadata.creation_timestamp = Some(Time(ts(created)));
        Arc::new(rs)
    }

    #[test]
    fn proportional_scaling_keeps_the_rollout_where_it_was() {
        // A Deployment of 10 (maxSurge 3) mid-rollout: old 8, new 5 = 13.
        let old = rs("old", 1, 8, 10, 13);
        let new = rs("new", 2, 5, 10, 13);
        // (new replicas, want [old, new])
        let cases = [(20, vec![14, 9]), (5, vec![5, 3]), (10, vec![8, 5]), (0, vec![0, 0])];
        for (replicas, want) in cases {
            let d = deployment(replicas);
            let sizes = proportional_sizes(&d, &[old.clone(), new.clone()]);
            assert_eq!(sizes, want, "scale to {replicas}");
            let allowed = if replicas > 0 { replicas + 3 } else { 0 };
            assert_eq!(sizes.iter().sum::<i32>(), allowed, "scale to {replicas}: total");
        }
    }

    #[test]
    fn scaling_events_and_single_active_replicaset() {
        let d = deployment(5);
        let settled = rs("a", 1, 5, 5, 8);
        let stale = rs("b", 2, 3, 3, 6);
        let empty = rs("c", 3, 0, 3, 6);
        assert!(!is_scaling_event(&d, &[settled.clone(), empty.clone()]));
        assert!(is_scaling_event(&d, std::slice::from_ref(&stale)));
        // Only one active: it is the one to scale.
        let pick = find_active_or_latest(None, &[settled.clone(), empty.clone()]).unwrap();
        assert_eq!(pick.metadata.name.as_deref(), Some("a"));
        // None active: the new one, else the newest old one.
        let pick = find_active_or_latest(Some(&empty), &[rs("z", 0, 0, 1, 1)]).unwrap();
        assert_eq!(pick.metadata.name.as_deref(), Some("c"));
        let pick = find_active_or_latest(None, &[rs("y", 0, 0, 1, 1), rs("z", 9, 0, 1, 1)]).unwrap();
        assert_eq!(pick.metadata.name.as_deref(), Some("z"));
        // Two active: proportional scaling's job.
        assert!(find_active_or_latest(None, &[settled, stale]).is_none());
    }
}
