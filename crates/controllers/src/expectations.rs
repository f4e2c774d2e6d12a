//! Expectations: how a controller avoids acting twice on a stale cache
//! (upstream `controller_utils.go`, `ControllerExpectations` and
//! `UIDTrackingControllerExpectations`).
//!
//! A ReplicaSet controller that creates three pods returns before its pod
//! informer has seen them. If the ReplicaSet is reconciled again in that
//! window, the cache still shows three pods missing and the controller
//! would create three more. So before creating, it *expects* three
//! creations; the pod informer's handler *observes* each one as it arrives;
//! and the controller does not manage that ReplicaSet's pods again until
//! the expectations are *satisfied* (all observed), or a timeout passes in
//! case an observation was lost. Deletions work the same, but are tracked by
//! pod key: a bound pod is first marked with a deletionTimestamp and later
//! removed, and only the first of those two events may count.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// After this long, unobserved expectations are assumed lost and the
/// controller acts again (upstream `ExpectationsTimeout`).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
struct Expectation {
    /// Creations still to be observed.
    add: i64,
    /// Deletions still to be observed.
    del: i64,
    /// Keys of the pods whose deletion we are waiting for.
    deleting: HashSet<String>,
    /// When the expectations were set, for the timeout.
    since: Instant,
}

impl Expectation {
    fn fulfilled(&self) -> bool {
        self.add <= 0 && self.del <= 0
    }
}

/// Expectations of every controller object (keyed `namespace/name`).
#[derive(Debug, Default)]
pub struct Expectations {
    by_controller: Mutex<HashMap<String, Expectation>>,
}

impl Expectations {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Expectation>> {
        self.by_controller.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the controller may act on `key`: nothing is outstanding, or
    /// what is outstanding is older than [`EXPECTATIONS_TIMEOUT`], or no
    /// expectations were ever recorded (a new object, or a restarted
    /// controller-manager, which must act on what it sees).
    pub fn satisfied(&self, key: &str) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(e) => e.fulfilled() || e.since.elapsed() > EXPECTATIONS_TIMEOUT,
        }
    }

    /// About to create `n` pods for `key`. Replaces earlier expectations,
    /// which are satisfied whenever a controller gets this far.
    pub fn expect_creations(&self, key: &str, n: usize) {
        self.lock()
            .insert(key.to_string(), Expectation { add: n as i64, del: 0, deleting: HashSet::new(), since: Instant::now() });
    }

    /// About to delete the pods `pod_keys` for `key`.
    pub fn expect_deletions(&self, key: &str, pod_keys: impl IntoIterator<Item = String>) {
        let deleting: HashSet<String> = pod_keys.into_iter().collect();
        self.lock().insert(key.to_string(), Expectation { add: 0, del: deleting.len() as i64, deleting, since: Instant::now() });
    }

    /// The informer saw one of `key`'s pods appear (or a create failed, so
    /// it never will).
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.add -= 1;
        }
    }

    /// The informer saw `pod_key` start terminating or vanish (or a delete
    /// failed). Counted once per pod: later events for the same pod are
    /// ignored.
    pub fn deletion_observed(&self, key: &str, pod_key: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            if e.deleting.remove(pod_key) {
                e.del -= 1;
            }
        }
    }

    /// Forgets `key`, when its controller object is deleted.
    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Outstanding (creations, deletions) for `key`, for logs and tests.
    pub fn pending(&self, key: &str) -> Option<(i64, i64)> {
        self.lock().get(key).map(|e| (e.add, e.del))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of a table test against one ReplicaSet key.
    enum Step {
        ExpectCreate(usize),
        ExpectDelete(&'static [&'static str]),
        Created,
        Deleted(&'static str),
        Wait(Duration),
        Forget,
    }
    use Step::*;

    #[tokio::test(start_paused = true)]
    async fn satisfied_only_once_everything_is_observed_or_timed_out() {
        let min = Duration::from_secs(60);
        let cases: Vec<(&str, Vec<Step>, bool)> = vec![
            ("nothing recorded", vec![], true),
            ("creations in flight", vec![ExpectCreate(3), Created, Created], false),
            ("all creations observed", vec![ExpectCreate(2), Created, Created], true),
            ("extra observations are harmless", vec![ExpectCreate(1), Created, Created], true),
            ("deletion in flight", vec![ExpectDelete(&["ns/a", "ns/b"]), Deleted("ns/a")], false),
            (
                "a pod's second deletion event is not counted",
                vec![ExpectDelete(&["ns/a", "ns/b"]), Deleted("ns/a"), Deleted("ns/a")],
                false,
            ),
            ("unrelated pod deleted", vec![ExpectDelete(&["ns/a"]), Deleted("ns/x")], false),
            ("all deletions observed", vec![ExpectDelete(&["ns/a", "ns/b"]), Deleted("ns/b"), Deleted("ns/a")], true),
            ("not yet timed out", vec![ExpectCreate(1), Wait(4 * min)], false),
            ("timed out after five minutes", vec![ExpectCreate(1), Wait(5 * min + Duration::from_secs(1))], true),
            ("forgotten with its ReplicaSet", vec![ExpectCreate(5), Forget], true),
        ];
        for (name, steps, want) in cases {
            let exp = Expectations::new();
            for step in steps {
                match step {
                    ExpectCreate(n) => exp.expect_creations("ns/rs", n),
                    ExpectDelete(keys) => exp.expect_deletions("ns/rs", keys.iter().map(|k| k.to_string())),
                    Created => exp.creation_observed("ns/rs"),
                    Deleted(k) => exp.deletion_observed("ns/rs", k),
                    Wait(d) => tokio::time::advance(d).await,
                    Forget => exp.delete("ns/rs"),
                }
            }
            assert_eq!(exp.satisfied("ns/rs"), want, "{name}");
            assert!(exp.satisfied("ns/other"), "{name}: other keys are unaffected");
        }
    }
}
