//! Deployment bookkeeping without I/O (upstream
//! `pkg/controller/deployment/util/deployment_util.go`): revisions, the
//! replica annotations, finding the new ReplicaSet, and building one.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::rolling;
use crate::refmanager;

/// The label that ties a ReplicaSet and its pods to one pod template.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// The revision of a ReplicaSet (and, on the Deployment, of its newest
/// ReplicaSet). `kubectl rollout history` lists these.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet had, when a rollback re-used it.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when it last sized this ReplicaSet;
/// a difference means the Deployment was scaled since.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` at that time, the base of proportional scaling.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";

/// Deployment annotations that are not copied onto its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    "deprecated.deployment.rollback.to",
];

/// `spec.replicas`, defaulting to 1 as the api-server does.
pub fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// A ReplicaSet's `spec.replicas`.
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// A ReplicaSet's `status.availableReplicas`.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

/// A ReplicaSet's `status.replicas`: active pods it saw last.
pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn int_annotation(meta: &ObjectMeta, key: &str) -> Option<i32> {
    annotation(meta, key)?.parse().ok()
}

/// The revision annotation as a number; 0 when absent or malformed.
pub fn revision(meta: &ObjectMeta) -> i64 {
    annotation(meta, REVISION_ANNOTATION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// The highest revision among `rss`.
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a Arc<ReplicaSet>>) -> i64 {
    rss.into_iter().map(|rs| revision(&rs.metadata)).max().unwrap_or(0)
}

pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION)
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION)
}

/// ReplicaSets that still want pods (`spec.replicas > 0`).
pub fn active(rss: &[Arc<ReplicaSet>]) -> Vec<Arc<ReplicaSet>> {
    rss.iter().filter(|rs| rs_replicas(rs) > 0).cloned().collect()
}

/// Oldest first, by creationTimestamp then name (upstream
/// `ReplicaSetsByCreationTimestamp`).
pub fn sort_by_creation(rss: &mut [Arc<ReplicaSet>]) {
    rss.sort_by(|a, b| {
        let t = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(a).cmp(&t(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

fn without_hash(t: &PodTemplateSpec) -> serde_json::Value {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
        if labels.is_empty() {
            if let Some(m) = t.metadata.as_mut() {
                m.labels = None;
            }
        }
    }
    serde_json::to_value(t).unwrap_or_default()
}

/// Whether two templates are the same apart from the hash label (upstream
/// `EqualIgnoreHash`): that is what makes a ReplicaSet the Deployment's
/// *new* one.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// The Deployment's new ReplicaSet among those it owns: the oldest whose
/// template equals the Deployment's. As a safety net against the
/// api-server defaulting the two templates differently, a ReplicaSet named
/// `<deployment>-<hash>` and labelled with the current hash also counts.
pub fn find_new_replicaset(d: &Deployment, rss: &[Arc<ReplicaSet>], hash: &str) -> Option<Arc<ReplicaSet>> {
    let template = &d.spec.as_ref()?.template;
    let mut sorted = rss.to_vec();
    sort_by_creation(&mut sorted);
    let template_of = |rs: &ReplicaSet| rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    if let Some(rs) = sorted.iter().find(|rs| equal_ignore_hash(&template_of(rs), template)) {
        return Some(rs.clone());
    }
    let name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default());
    sorted.into_iter().find(|rs| {
        rs.metadata.name.as_deref() == Some(name.as_str())
            && rs.metadata.labels.as_ref().and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL)).map(String::as_str) == Some(hash)
    })
}

/// Copies the Deployment's annotations onto the ReplicaSet, except the
/// ones that describe the ReplicaSet itself. Returns whether anything
/// changed.
fn copy_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let target = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED.contains(&k.as_str()) || target.get(k) == Some(v) {
            continue;
        }
        target.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Sets `desired-replicas` and `max-replicas`; returns whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS_ANNOTATION, desired), (MAX_REPLICAS_ANNOTATION, max)] {
        let v = v.to_string();
        if a.get(k) != Some(&v) {
            a.insert(k.to_string(), v);
            changed = true;
        }
    }
    changed
}

/// Whether `set_replicas_annotations` would change anything.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    desired_replicas_annotation(rs) != Some(desired) || max_replicas_annotation(rs) != Some(max)
}

/// Brings the new ReplicaSet's annotations up to date: the Deployment's
/// own annotations, the revision (raised to `new_revision` if lower,
/// remembering the old one in `revision-history`, which is what a
/// rollback to an old template looks like), and, for a ReplicaSet about to
/// be created, the replica annotations. Returns whether anything changed.
pub fn set_new_replicaset_annotations(d: &Deployment, rs: &mut ReplicaSet, new_revision: i64, exists: bool) -> bool {
    let mut changed = copy_annotations(d, rs);
    let old = annotation(&rs.metadata, REVISION_ANNOTATION).map(str::to_string);
    let old_revision = match old.as_deref() {
        None => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(n) => n,
            // Someone wrote garbage; leave the revision alone.
            Err(_) => return changed,
        },
    };
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if old_revision < new_revision {
        a.insert(REVISION_ANNOTATION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = match a.get(REVISION_HISTORY_ANNOTATION) {
                Some(h) if !h.is_empty() => format!("{h},{old}"),
                _ => old,
            };
            a.insert(REVISION_HISTORY_ANNOTATION.into(), history);
        }
    }
    if !exists {
        let desired = desired(d);
        changed |= set_replicas_annotations(rs, desired, desired + rolling::max_surge(d));
    }
    changed
}

/// Copies the new ReplicaSet's revision onto the Deployment; returns
/// whether it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let a = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if a.get(REVISION_ANNOTATION).map(String::as_str) == Some(revision) {
        return false;
    }
    a.insert(REVISION_ANNOTATION.into(), revision.to_string());
    true
}

/// The ReplicaSet for a Deployment's current template: name
/// `<deployment>-<hash>`, the hash label added to its labels, selector and
/// template, annotations as [`set_new_replicaset_annotations`], and a
/// controller reference to the Deployment.
pub fn new_replicaset(d: &Deployment, hash: &str, new_revision: i64, replicas: i32) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template;
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut selector = spec.selector;
    selector.match_labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default())),
            namespace: d.metadata.namespace.clone(),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            owner_references: Some(vec![refmanager::controller_ref::<Deployment>(&d.metadata)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    };
    set_new_replicaset_annotations(d, &mut rs, new_revision, false);
    rs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid",
                         "annotations": {"team": "shop", "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn new_replicaset_carries_hash_revision_and_owner() {
        let d = deployment();
        let rs = new_replicaset(&d, "5d9c", 3, 1);
        assert_eq!(rs.metadata.name.as_deref(), Some("web-5d9c"));
        assert_eq!(rs.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH_LABEL], "5d9c");
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(spec.selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH_LABEL], "5d9c");
        assert_eq!(spec.selector.match_labels.as_ref().unwrap()["app"], "web");
        let tlabels = spec.template.as_ref().unwrap().metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert_eq!((tlabels["app"].as_str(), tlabels[POD_TEMPLATE_HASH_LABEL].as_str()), ("web", "5d9c"));
        let a = rs.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[REVISION_ANNOTATION], "3");
        assert_eq!(a[DESIRED_REPLICAS_ANNOTATION], "4");
        assert_eq!(a[MAX_REPLICAS_ANNOTATION], "5", "4 + 25% surge rounded up");
        assert_eq!(a["team"], "shop");
        assert!(!a.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert_eq!(rs.metadata.owner_references.as_ref().unwrap()[0].uid, "d-uid");
        // The ReplicaSet's template still equals the Deployment's, hash aside.
        assert!(equal_ignore_hash(spec.template.as_ref().unwrap(), &d.spec.as_ref().unwrap().template));
    }

    #[test]
    fn revisions_only_go_up_and_rollbacks_keep_history() {
        let d = deployment();
        // (current revision annotation, new revision, want revision, want history)
        let cases = [(None, 1, "1", None), (Some("2"), 5, "5", Some("2")), (Some("7"), 5, "7", None)];
        for (current, new, want, history) in cases {
            let mut rs = new_replicaset(&d, "h", 1, 1);
            let a = rs.metadata.annotations.as_mut().unwrap();
            a.remove(REVISION_ANNOTATION);
            if let Some(c) = current {
                a.insert(REVISION_ANNOTATION.into(), c.into());
            }
            set_new_replicaset_annotations(&d, &mut rs, new, true);
            let a = rs.metadata.annotations.as_ref().unwrap();
            assert_eq!(a[REVISION_ANNOTATION], want, "{current:?} -> {new}");
            assert_eq!(a.get(REVISION_HISTORY_ANNOTATION).map(String::as_str), history, "{current:?} -> {new}");
        }
    }

    #[test]
    fn finds_the_replicaset_of_the_current_template() {
        let d = deployment();
        let current = Arc::new(new_replicaset(&d, "aaaa", 2, 1));
        let mut changed = d.clone();
        changed.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        let mut old = new_replicaset(&changed, "bbbb", 1, 1);
        old.metadata.name = Some("web-bbbb".into());
        let old = Arc::new(old);
        let rss = vec![old.clone(), current.clone()];
        assert_eq!(find_new_replicaset(&d, &rss, "aaaa").unwrap().metadata.name, current.metadata.name);
        assert_eq!(find_new_replicaset(&changed, &rss, "bbbb").unwrap().metadata.name, old.metadata.name);
        assert!(find_new_replicaset(&d, std::slice::from_ref(&old), "aaaa").is_none());
        assert_eq!(max_revision(&rss), 2);
    }
}
