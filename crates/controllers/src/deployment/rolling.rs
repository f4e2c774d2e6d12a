//! Rolling-update arithmetic, with no I/O (upstream `rolling.go` and the
//! fencepost helpers of `deployment_util.go`).
//!
//! A rolling update moves `spec.replicas` pods from old ReplicaSets to the
//! new one within two bounds:
//! - **maxSurge**: at most `replicas + maxSurge` pods exist at once, so the
//!   new ReplicaSet may only grow into that headroom;
//! - **maxUnavailable**: at least `replicas - maxUnavailable` pods stay
//!   available, so old ReplicaSets may only shrink by what is available
//!   beyond that floor (after first dropping their own unhealthy pods,
//!   which cost no availability).
//!
//! Each sync takes one step — grow the new ReplicaSet, else shrink old ones
//! — and waits for the ReplicaSets' status to move before the next.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The default of both maxSurge and maxUnavailable.
pub const DEFAULT_FENCEPOST: &str = "25%";

/// Resolves an int-or-percent against `total`: a percentage is rounded up
/// (surge) or down (unavailable) as `round_up` says (upstream
/// `GetScaledValueFromIntOrPercent`).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let scaled = pct * i64::from(total);
            let v = if round_up { (scaled + 99).div_euclid(100) } else { scaled.div_euclid(100) };
            Ok(v as i32)
        }
    }
}

/// `(maxSurge, maxUnavailable)` for `desired` replicas. Both resolving to
/// zero would make progress impossible, so then maxUnavailable is 1, as
/// upstream's `ResolveFenceposts` does (validation forbids writing 0/0, but
/// percentages may round to it: 10% of 5 replicas is 0 unavailable).
pub fn resolve_fenceposts(surge: Option<&IntOrString>, unavailable: Option<&IntOrString>, desired: i32) -> Result<(i32, i32), String> {
    let default = IntOrString::String(DEFAULT_FENCEPOST.into());
    let surge = scaled_value(surge.unwrap_or(&default), desired, true)?;
    let mut unavailable = scaled_value(unavailable.unwrap_or(&default), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

fn rolling_params(d: &Deployment) -> Option<(Option<&IntOrString>, Option<&IntOrString>)> {
    let strategy = d.spec.as_ref()?.strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") != "RollingUpdate" {
        return None;
    }
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    Some((ru.and_then(|r| r.max_surge.as_ref()), ru.and_then(|r| r.max_unavailable.as_ref())))
}

/// Whether the Deployment rolls (the default) rather than recreates.
pub fn is_rolling_update(d: &Deployment) -> bool {
    rolling_params(d).is_some()
}

/// The Deployment's resolved maxSurge; 0 for Recreate. A malformed value
/// counts as 0 (validation should have refused it).
pub fn max_surge(d: &Deployment) -> i32 {
    let Some((s, u)) = rolling_params(d) else { return 0 };
    resolve_fenceposts(s, u, super::util::desired(d)).map(|(s, _)| s).unwrap_or(0)
}

/// The Deployment's resolved maxUnavailable, never more than its replicas;
/// 0 for Recreate or zero replicas.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let desired = super::util::desired(d);
    let Some((s, u)) = rolling_params(d) else { return 0 };
    if desired == 0 {
        return 0;
    }
    resolve_fenceposts(s, u, desired).map(|(_, u)| u.min(desired)).unwrap_or(0)
}

/// What a rolling sync sees of one ReplicaSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// The size the new ReplicaSet may grow to now: up to `desired`, within
/// `desired + max_surge` pods in total (upstream `NewRSNewReplicas`).
/// `total` is the sum of every ReplicaSet's `spec.replicas`.
pub fn new_rs_new_replicas(desired: i32, max_surge: i32, total: i32, new_replicas: i32) -> i32 {
    let max_total = desired + max_surge;
    if total >= max_total {
        return new_replicas;
    }
    new_replicas + (max_total - total).min(desired - new_replicas).max(0)
}

/// One rolling sync's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollingStep {
    /// Set the new ReplicaSet's replicas to this.
    ScaleNew(i32),
    /// Set the old ReplicaSets' replicas to these (same order as given).
    ScaleOld(Vec<i32>),
    /// Nothing can move until some status changes.
    Wait,
}

/// Decides one step of a rolling update (upstream `rolloutRolling`: first
/// `reconcileNewReplicaSet`, and only if that does nothing
/// `reconcileOldReplicaSets`). `old` must be sorted oldest first.
pub fn rolling_step(desired: i32, max_surge: i32, max_unavailable: i32, new: Counts, old: &[Counts]) -> RollingStep {
    if new.replicas > desired {
        return RollingStep::ScaleNew(desired);
    }
    if new.replicas < desired {
        let total = new.replicas + old.iter().map(|c| c.replicas).sum::<i32>();
        let target = new_rs_new_replicas(desired, max_surge, total, new.replicas);
        if target != new.replicas {
            return RollingStep::ScaleNew(target);
        }
    }
    let targets = scale_down_old(desired, max_unavailable, new, old);
    if targets.iter().zip(old).any(|(t, o)| *t != o.replicas) {
        RollingStep::ScaleOld(targets)
    } else {
        RollingStep::Wait
    }
}

/// New `spec.replicas` for the old ReplicaSets (upstream
/// `reconcileOldReplicaSets`): how far all of them together may shrink is
/// `total - minAvailable - newUnavailable`, where the new ReplicaSet's
/// not-yet-available pods are counted as if they might become available,
/// so they are not double-booked. Within that budget, first remove old pods
/// that are not available (`cleanupUnhealthyReplicas`, which costs no
/// availability), then available ones, but only as many as are available
/// beyond `minAvailable` (`scaleDownOldReplicaSetsForRollingUpdate`).
pub fn scale_down_old(desired: i32, max_unavailable: i32, new: Counts, old: &[Counts]) -> Vec<i32> {
    let mut targets: Vec<i32> = old.iter().map(|c| c.replicas).collect();
    let old_total: i32 = targets.iter().sum();
    if old_total == 0 {
        return targets;
    }
    let min_available = desired - max_unavailable;
    let new_unavailable = new.replicas - new.available;
    let max_scaled_down = old_total + new.replicas - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return targets;
    }
    // Unhealthy old replicas first.
    let mut cleaned = 0;
    for (t, o) in targets.iter_mut().zip(old) {
        if cleaned >= max_scaled_down {
            break;
        }
        if *t == 0 || *t == o.available {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(*t - o.available);
        *t -= n;
        cleaned += n;
    }
    // Then available ones, down to the availability floor.
    let available: i32 = new.available + old.iter().map(|c| c.available).sum::<i32>();
    if available <= min_available {
        return targets;
    }
    let budget = available - min_available;
    let mut scaled = 0;
    for t in targets.iter_mut() {
        if scaled >= budget {
            break;
        }
        if *t == 0 {
            continue;
        }
        let n = (*t).min(budget - scaled);
        *t -= n;
        scaled += n;
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(i: i32) -> IntOrString {
        IntOrString::Int(i)
    }
    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn fenceposts() {
        type Case = (Option<IntOrString>, Option<IntOrString>, i32, (i32, i32));
        // (maxSurge, maxUnavailable, replicas, want (surge, unavailable))
        let cases: Vec<Case> = vec![
            (None, None, 4, (1, 1)),
            (None, None, 10, (3, 2)), // 2.5 rounds up for surge, down for unavailable
            (None, None, 1, (1, 0)),
            (Some(int(0)), Some(int(0)), 3, (0, 1)),        // both zero: unavailable becomes 1
            (Some(pct("0%")), Some(pct("10%")), 5, (0, 1)), // 10% of 5 rounds to 0
            (Some(int(2)), Some(pct("50%")), 5, (2, 2)),
            (Some(pct("100%")), Some(int(0)), 3, (3, 0)),
        ];
        for (s, u, n, want) in cases {
            assert_eq!(resolve_fenceposts(s.as_ref(), u.as_ref(), n).unwrap(), want, "{s:?}/{u:?} of {n}");
        }
        assert!(resolve_fenceposts(Some(&pct("lots")), None, 3).is_err());
    }

    #[test]
    fn deployment_fenceposts_by_strategy() {
        let d = |strategy: serde_json::Value, replicas: i32| -> Deployment {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web"},
                "spec": {"replicas": replicas, "selector": {}, "template": {}, "strategy": strategy}
            }))
            .unwrap()
        };
        let cases = [
            (serde_json::json!({}), 4, (1, 1)),
            (serde_json::json!({"type": "Recreate"}), 4, (0, 0)),
            (serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 10}}), 4, (0, 4)),
            (serde_json::json!({"type": "RollingUpdate"}), 0, (0, 0)),
        ];
        for (strategy, replicas, want) in cases {
            let dep = d(strategy.clone(), replicas);
            assert_eq!((max_surge(&dep), max_unavailable(&dep)), want, "{strategy} x{replicas}");
        }
    }

    #[test]
    fn new_replicaset_growth() {
        // (desired, maxSurge, total spec, new spec, want)
        let cases = [
            (3, 1, 3, 0, 1), // one pod of headroom
            (3, 1, 4, 1, 1), // headroom used up
            (10, 3, 10, 0, 3),
            (3, 5, 3, 0, 3), // never past desired
            (3, 0, 2, 1, 2), // room left by a scaled-down old RS
        ];
        for (desired, surge, total, new, want) in cases {
            assert_eq!(new_rs_new_replicas(desired, surge, total, new), want, "{desired}/{surge}/{total}/{new}");
        }
    }

    #[test]
    fn old_scale_down() {
        let c = |replicas, available| Counts { replicas, available };
        // (desired, maxUnavailable, new, old, want old targets)
        let cases = [
            ("floor reached", 3, 1, c(1, 0), vec![c(3, 3)], vec![2]),
            ("new pods unavailable block", 3, 0, c(1, 0), vec![c(3, 3)], vec![3]),
            ("new available frees old", 3, 0, c(1, 1), vec![c(3, 3)], vec![2]),
            ("unhealthy old go first, even below the floor", 3, 1, c(1, 0), vec![c(3, 1)], vec![2]),
            ("oldest first", 4, 1, c(2, 2), vec![c(1, 1), c(3, 3)], vec![0, 1]),
            ("nothing old", 3, 1, c(3, 3), vec![c(0, 0)], vec![0]),
        ];
        for (name, desired, mu, new, old, want) in cases {
            assert_eq!(scale_down_old(desired, mu, new, &old), want, "{name}");
        }
    }

    /// A simulated cluster: per ReplicaSet, its spec and its pods
    /// (available or not). The ReplicaSet controller matches pods to spec
    /// at once, deleting unavailable pods first; new pods become available
    /// one step after they appear unless `broken`.
    struct Sim {
        old_spec: i32,
        old_pods: Vec<bool>,
        new_spec: i32,
        new_pods: Vec<bool>,
    }

    fn converge(spec: i32, pods: &mut Vec<bool>) {
        while pods.len() as i32 > spec {
            match pods.iter().position(|a| !a) {
                Some(i) => pods.remove(i),
                None => pods.remove(0),
            };
        }
        while (pods.len() as i32) < spec {
            pods.push(false);
        }
    }

    /// Rolls `n` pods from an old to a new template; returns the steps taken
    /// (or `None` if it never finished) after checking the invariants at
    /// every step.
    fn rollout(n: i32, surge: &IntOrString, unavailable: &IntOrString, broken: bool) -> Option<usize> {
        let (max_surge, max_unavailable) = resolve_fenceposts(Some(surge), Some(unavailable), n).unwrap();
        let max_unavailable = max_unavailable.min(n);
        let mut sim = Sim { old_spec: n, old_pods: vec![true; n as usize], new_spec: 0, new_pods: vec![] };
        for step in 0..500 {
            let count = |pods: &[bool]| Counts { replicas: 0, available: pods.iter().filter(|a| **a).count() as i32 };
            let new = Counts { replicas: sim.new_spec, ..count(&sim.new_pods) };
            let old = Counts { replicas: sim.old_spec, ..count(&sim.old_pods) };
            match rolling_step(n, max_surge, max_unavailable, new, &[old]) {
                RollingStep::ScaleNew(t) => sim.new_spec = t,
                RollingStep::ScaleOld(t) => sim.old_spec = t[0],
                RollingStep::Wait => {}
            }
            converge(sim.old_spec, &mut sim.old_pods);
            converge(sim.new_spec, &mut sim.new_pods);
            let total = sim.old_pods.len() + sim.new_pods.len();
            let available = sim.old_pods.iter().chain(&sim.new_pods).filter(|a| **a).count();
            let ctx = format!("n={n} surge={surge:?} unavailable={unavailable:?} broken={broken} step {step}");
            assert!(total as i32 <= n + max_surge, "{ctx}: {total} pods > {n} + {max_surge}");
            assert!(available as i32 >= n - max_unavailable, "{ctx}: {available} available < {n} - {max_unavailable}");
            if sim.old_pods.is_empty() && sim.new_pods.len() as i32 == n && sim.new_pods.iter().all(|a| *a) {
                return Some(step);
            }
            if !broken {
                sim.new_pods.iter_mut().for_each(|a| *a = true);
            }
        }
        None
    }

    #[test]
    fn simulated_rollouts_respect_surge_and_availability() {
        let settings = [
            (pct("25%"), pct("25%")),
            (int(1), int(0)),
            (int(0), int(1)),
            (int(0), int(0)),
            (pct("100%"), int(0)),
            (int(3), int(2)),
            (pct("0%"), pct("100%")),
        ];
        for n in [1, 2, 3, 5, 10, 17] {
            for (surge, unavailable) in &settings {
                assert!(rollout(n, surge, unavailable, false).is_some(), "n={n} {surge:?}/{unavailable:?} did not finish");
                // With new pods that never become ready the rollout stalls,
                // but never eats into availability.
                assert!(rollout(n, surge, unavailable, true).is_none(), "n={n} {surge:?}/{unavailable:?} finished while broken");
            }
        }
    }
}
