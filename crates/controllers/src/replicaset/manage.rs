//! The ReplicaSet controller's decisions, with no I/O: how many pods to
//! create or delete, in which batches, and which to delete
//! (upstream `replica_set.go` manageReplicas).

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{podutil, refmanager};

/// At most this many pods are created or deleted in one sync, so one huge
/// scale-up cannot flood the api-server; the next sync continues (upstream
/// `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// The first slow-start batch; each successful batch doubles the next
/// (upstream `SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH: usize = 1;

/// What a sync must do to reach `spec.replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diff {
    Create(usize),
    Delete(usize),
    Nothing,
}

/// Compares the active pods a ReplicaSet owns with what it wants.
pub fn replica_diff(active: usize, desired: i32) -> Diff {
    let desired = desired.max(0) as usize;
    if active < desired {
        Diff::Create((desired - active).min(BURST_REPLICAS))
    } else if active > desired {
        Diff::Delete((active - desired).min(BURST_REPLICAS))
    } else {
        Diff::Nothing
    }
}

/// Batch sizes for creating `count` pods: 1, 2, 4, ... and the rest. The
/// caller stops at the first batch with a failure, so a ReplicaSet whose
/// pods are all rejected (quota, a bad template) costs one call, not
/// hundreds.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let (mut remaining, mut size) = (count, SLOW_START_INITIAL_BATCH.min(count));
    while remaining > 0 {
        batches.push(size);
        remaining -= size;
        size = (2 * size).min(remaining);
    }
    batches
}

/// The `n` pods to delete when scaling down: the cheapest to lose first, in
/// upstream's `ActivePods` order (see [`podutil::active_pods_order`]).
/// Upstream also ranks pods by how many siblings share their node; tinykube
/// does not.
pub fn pods_to_delete(pods: &[Arc<Pod>], n: usize) -> Vec<Arc<Pod>> {
    let mut sorted = pods.to_vec();
    sorted.sort_by(|a, b| podutil::active_pods_order(a, b));
    sorted.truncate(n);
    sorted
}

/// A new pod for `rs`, from its template: named `<rs>-<random>` by the
/// api-server's generateName, with the template's labels and annotations
/// and a controller reference back to the ReplicaSet (upstream
/// `GetPodFromTemplate`).
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![refmanager::controller_ref::<ReplicaSet>(&rs.metadata)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podutil::testing::*;

    #[test]
    fn diffs() {
        let cases = [
            (0, 3, Diff::Create(3)),
            (2, 3, Diff::Create(1)),
            (3, 3, Diff::Nothing),
            (5, 3, Diff::Delete(2)),
            (4, 0, Diff::Delete(4)),
            (0, -1, Diff::Nothing),
            (0, 10_000, Diff::Create(BURST_REPLICAS)),
            (1_000, 0, Diff::Delete(BURST_REPLICAS)),
        ];
        for (active, desired, want) in cases {
            assert_eq!(replica_diff(active, desired), want, "{active} active, {desired} desired");
        }
    }

    #[test]
    fn slow_start_doubles() {
        let cases: [(usize, &[usize]); 6] = [(0, &[]), (1, &[1]), (2, &[1, 1]), (3, &[1, 2]), (10, &[1, 2, 4, 3]), (16, &[1, 2, 4, 8, 1])];
        for (count, want) in cases {
            let got = slow_start_batches(count);
            assert_eq!(got, want, "{count}");
            assert_eq!(got.iter().sum::<usize>(), count);
        }
    }

    #[test]
    fn victims_follow_active_pods_order() {
        let pods: Vec<Arc<Pod>> = vec![
            Arc::new(ready(on_node(pod("old-ready", 10, "Running"), "n1"), 20)),
            Arc::new(pod("unscheduled", 50, "Pending")),
            Arc::new(on_node(pod("running-not-ready", 30, "Running"), "n1")),
            Arc::new(ready(on_node(pod("new-ready", 40, "Running"), "n1"), 45)),
            Arc::new(on_node(pod("pending", 60, "Pending"), "n1")),
        ];
        let names = |n| pods_to_delete(&pods, n).iter().map(|p| p.metadata.name.clone().unwrap()).collect::<Vec<_>>();
        assert_eq!(names(1), ["unscheduled"]);
        assert_eq!(names(3), ["unscheduled", "pending", "running-not-ready"]);
        assert_eq!(names(5), ["unscheduled", "pending", "running-not-ready", "new-ready", "old-ready"]);
    }

    #[test]
    fn pods_come_from_the_template() {
        let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-5d9c", "namespace": "shop", "uid": "u1"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}
                }
            }
        }))
        .unwrap();
        let pod = pod_from_template(&rs);
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-5d9c-"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(pod.metadata.labels.unwrap()["app"], "web");
        assert_eq!(pod.metadata.annotations.unwrap()["a"], "b");
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("ReplicaSet", "web-5d9c", "u1"));
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
        assert_eq!(pod.spec.unwrap().containers[0].image.as_deref(), Some("nginx"));
    }
}
