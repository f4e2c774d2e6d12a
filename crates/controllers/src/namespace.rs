//! The namespace controller (upstream `pkg/controller/namespace`).
//!
//! Deleting a namespace means deleting everything in it, and that takes
//! time: pods stop gracefully on their nodes, owners wait for their
//! dependents. So `kubectl delete namespace shop` does not remove the
//! namespace at once. The api-server marks it — a `deletionTimestamp`,
//! `status.phase: Terminating` — and keeps it while `spec.finalizers`
//! holds `kubernetes`, the finalizer that stands for "the namespace
//! controller has not finished". It also refuses new objects in a
//! terminating namespace, so controllers cannot refill what is being
//! emptied.
//!
//! This controller then, for every namespaced kind the api-server serves,
//! deletes each object in the namespace (background propagation, and the
//! pod's own grace period, so containers stop as they would on any
//! delete), and counts what is left. While anything is left it looks again
//! — woken by the deletions it watches, or after [`CONTENT_RECHECK`] for
//! kinds it does not watch — and reports the count in the namespace's
//! conditions (`NamespaceContentRemaining`, ...), which `kubectl describe
//! namespace` shows. When nothing is left it removes `kubernetes` from
//! `spec.finalizers`, and the api-server removes the namespace; kubectl,
//! which waits for that, returns.
//!
//! Where tinykube simplifies: the kinds come from the resource table
//! rather than discovery; upstream clears the finalizer through the
//! `namespaces/{name}/finalize` subresource, tinykube through a normal
//! update; objects are deleted one by one rather than by deletecollection
//! (the gRPC API has no such call); the `NamespaceDeletionDiscoveryFailure`
//! and `NamespaceDeletionGroupVersionParsingFailure` conditions, which
//! cannot happen here, are not reported.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use api::ResourceInfo;
use client::dynamic::DynamicApi;
use client::informer::Change;
use client::workqueue::WorkQueue;
use client::{Api, Client, ListParams};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{json, Value};

use crate::informers::{Caches, EventHandler};
use crate::retry::{remove_spec_finalizer, update_live};
use crate::runtime::{default_error_policy, Action};
use crate::Error;

/// The finalizer in `spec.finalizers` that keeps a terminating namespace
/// until this controller has emptied it (upstream `FinalizerKubernetes`).
pub const FINALIZER_KUBERNETES: &str = "kubernetes";

/// How soon a namespace with content left is looked at again when no
/// watched deletion wakes it first.
pub const CONTENT_RECHECK: Duration = Duration::from_secs(2);

/// What is left in a namespace after one round of deletes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Remaining {
    /// Objects still present, by qualified resource (`pods`, `replicasets.apps`).
    pub resources: BTreeMap<String, usize>,
    /// Finalizers those objects still carry, with how many carry each.
    pub finalizers: BTreeMap<String, usize>,
    /// Lists and deletes that failed.
    pub failures: Vec<String>,
}

impl Remaining {
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.failures.is_empty()
    }

    fn count(&mut self, info: &ResourceInfo, left: &[ObjectMeta]) {
        if left.is_empty() {
            return;
        }
        self.resources.insert(info.qualified(), left.len());
        for f in left.iter().flat_map(|m| m.finalizers.iter().flatten()) {
            *self.finalizers.entry(f.clone()).or_default() += 1;
        }
    }
}

/// The deletion conditions for what is left, with upstream's types,
/// reasons and messages (`kubectl describe namespace` prints them).
pub fn deletion_conditions(remaining: &Remaining) -> Vec<NamespaceCondition> {
    let cond = |type_: &str, failing: bool, reason: &str, message: String| NamespaceCondition {
        type_: type_.into(),
        status: if failing { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: None,
    };
    let content_failure = if remaining.failures.is_empty() {
        cond(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        )
    } else {
        cond(
            "NamespaceDeletionContentFailure",
            true,
            "ContentDeletionFailed",
            format!("Failed to delete all resource types, {} remaining: {}", remaining.failures.len(), remaining.failures.join(", ")),
        )
    };
    let content = if remaining.resources.is_empty() {
        cond("NamespaceContentRemaining", false, "ContentRemoved", "All content successfully removed".into())
    } else {
        let counts: Vec<String> = remaining.resources.iter().map(|(r, n)| format!("{r} has {n} resource instances")).collect();
        cond("NamespaceContentRemaining", true, "SomeResourcesRemain", format!("Some resources are remaining: {}", counts.join(", ")))
    };
    let finalizers = if remaining.finalizers.is_empty() {
        cond("NamespaceFinalizersRemaining", false, "ContentHasNoFinalizers", "All content-preserving finalizers finished".into())
    } else {
        let counts: Vec<String> = remaining.finalizers.iter().map(|(f, n)| format!("{f} in {n} resource instances")).collect();
        cond(
            "NamespaceFinalizersRemaining",
            true,
            "SomeFinalizersRemain",
            format!("Some content in the namespace has finalizers remaining: {}", counts.join(", ")),
        )
    };
    vec![content_failure, content, finalizers]
}

/// `current` with `wanted` merged in: a condition whose status, reason
/// and message are unchanged keeps its lastTransitionTime; a changed or new
/// one gets `now`. Returns `None` when nothing changed.
pub fn merge_conditions(current: &[NamespaceCondition], wanted: Vec<NamespaceCondition>, now: &Time) -> Option<Vec<NamespaceCondition>> {
    let mut merged: Vec<NamespaceCondition> = current.to_vec();
    let mut changed = false;
    for mut w in wanted {
        match merged.iter_mut().find(|c| c.type_ == w.type_) {
            Some(c) if c.status == w.status && c.reason == w.reason && c.message == w.message => {}
            Some(c) => {
                w.last_transition_time = Some(now.clone());
                *c = w;
                changed = true;
            }
            None => {
                w.last_transition_time = Some(now.clone());
                merged.push(w);
                changed = true;
            }
        }
    }
    changed.then_some(merged)
}

/// Everything [`reconcile`] needs.
pub struct Context {
    pub client: Client,
    pub caches: Caches,
    /// Keys are namespace names.
    pub queue: WorkQueue<String>,
}

impl Context {
    pub fn new(client: Client, caches: Caches) -> Arc<Self> {
        Arc::new(Context { client, caches, queue: WorkQueue::new() })
    }

    /// Finds a namespace in the cache by name.
    pub fn lookup(&self, key: &str) -> Option<Arc<Namespace>> {
        self.caches.namespaces.get(key)
    }

    /// Something in `namespace` went away: if the namespace is being
    /// emptied, that may have been the last of it.
    fn content_deleted(&self, meta: &ObjectMeta) {
        let Some(ns) = meta.namespace.as_deref() else { return };
        if self.caches.namespaces.get(ns).is_some_and(|n| n.metadata.deletion_timestamp.is_some()) {
            self.queue.add(ns.to_string());
        }
    }
}

impl EventHandler for Context {
    fn on_namespace(&self, change: &Change<Namespace>) {
        if let Change::Applied { new, .. } = change {
            if new.metadata.deletion_timestamp.is_some() {
                self.queue.add(new.metadata.name.clone().unwrap_or_default());
            }
        }
    }

    fn on_pod(&self, change: &Change<Pod>) {
        if let Change::Deleted(p) = change {
            self.content_deleted(&p.metadata);
        }
    }

    fn on_replicaset(&self, change: &Change<ReplicaSet>) {
        if let Change::Deleted(rs) = change {
            self.content_deleted(&rs.metadata);
        }
    }

    fn on_deployment(&self, change: &Change<Deployment>) {
        if let Change::Deleted(d) = change {
            self.content_deleted(&d.metadata);
        }
    }
}

fn has_kubernetes_finalizer(ns: &Namespace) -> bool {
    ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()).is_some_and(|f| f.iter().any(|x| x == FINALIZER_KUBERNETES))
}

/// Empties a terminating namespace, then lets it go. Idempotent and
/// level-triggered: each run deletes what is there now and counts what is
/// left; only an empty namespace is finalized.
pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_none() || !has_kubernetes_finalizer(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.metadata.name.clone().unwrap_or_default();
    let remaining = delete_all_content(&ctx, &name).await?;
    update_conditions(&ctx, &ns, &remaining).await?;
    if !remaining.is_empty() {
        tracing::debug!(namespace = name, ?remaining, "namespace content remaining");
        return Ok(Action::requeue(CONTENT_RECHECK));
    }
    tracing::info!(namespace = name, "namespace is empty; removing the kubernetes finalizer");
    let info = client::info_of::<Namespace>();
    let api = DynamicApi::new(ctx.client.clone(), info, "");
    update_live(&api, &name, ns.metadata.uid.as_deref(), |obj: &mut Value| remove_spec_finalizer(obj, FINALIZER_KUBERNETES))
        .await
        .map_err(|e| Error::api(format!("finalize namespace {name}"), e))?;
    Ok(Action::await_change())
}

/// Deletes every object of every namespaced kind in `namespace` that is
/// not already being deleted, and reports what is left (upstream
/// `namespacedResourcesDeleter.deleteAllContent`).
async fn delete_all_content(ctx: &Context, namespace: &str) -> Result<Remaining, Error> {
    let mut remaining = Remaining::default();
    for info in api::resources::RESOURCES.iter().filter(|r| r.namespaced) {
        let api = DynamicApi::new(ctx.client.clone(), info, namespace);
        let items = match list_metadata(&api).await {
            Ok(items) => items,
            Err(e) => {
                remaining.failures.push(format!("list {}: {e}", info.qualified()));
                continue;
            }
        };
        if items.is_empty() {
            continue;
        }
        for meta in items.iter().filter(|m| m.deletion_timestamp.is_none()) {
            let name = meta.name.as_deref().unwrap_or_default();
            let options = json!({"propagationPolicy": "Background", "preconditions": {"uid": meta.uid}});
            match api.delete(name, &options).await {
                Ok(_) => {}
                // Gone already, or replaced (and the new one is refused
                // in a terminating namespace, so that is rare).
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => remaining.failures.push(format!("delete {} {name}: {e}", info.qualified())),
            }
        }
        // What the deletes left: pods stopping on their nodes, objects
        // waiting on finalizers.
        match list_metadata(&api).await {
            Ok(left) => remaining.count(info, &left),
            Err(e) => remaining.failures.push(format!("list {}: {e}", info.qualified())),
        }
    }
    Ok(remaining)
}

async fn list_metadata(api: &DynamicApi) -> Result<Vec<ObjectMeta>, Error> {
    let list = api.list(&ListParams::default()).await.map_err(|e| Error::api(format!("list {}", api.info().qualified()), e))?;
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| serde_json::from_value(item["metadata"].clone()).map_err(|source| Error::Serialize { what: "object metadata", source }))
        .collect()
}

/// Writes the deletion conditions when they changed.
async fn update_conditions(ctx: &Context, ns: &Namespace, remaining: &Remaining) -> Result<(), Error> {
    let current = ns.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let Some(merged) = merge_conditions(&current, deletion_conditions(remaining), &api::time::now()) else {
        return Ok(());
    };
    let mut updated = ns.clone();
    updated.status.get_or_insert_with(Default::default).conditions = Some(merged);
    match Api::<Namespace>::all(ctx.client.clone()).replace_status(&updated).await {
        // The namespace went meanwhile, or changed: the next run sees it.
        Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
        Err(e) => Err(Error::api(format!("update status of namespace {}", ns.metadata.name.as_deref().unwrap_or_default()), e)),
        Ok(_) => Ok(()),
    }
}

/// The error policy: retry with back-off.
pub fn error_policy(ns: Arc<Namespace>, err: &Error, _ctx: Arc<Context>) -> Action {
    default_error_policy("namespace", ns.metadata.name.as_deref().unwrap_or_default(), err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remaining(resources: &[(&str, usize)], finalizers: &[(&str, usize)], failures: &[&str]) -> Remaining {
        Remaining {
            resources: resources.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            finalizers: finalizers.iter().map(|(f, n)| (f.to_string(), *n)).collect(),
            failures: failures.iter().map(|f| f.to_string()).collect(),
        }
    }

    /// (type, status, reason, message) of each condition.
    fn summary(conds: &[NamespaceCondition]) -> Vec<(String, String, String, String)> {
        conds
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn conditions_say_what_is_left() {
        let s = |t: &str, st: &str, r: &str, m: &str| (t.to_string(), st.to_string(), r.to_string(), m.to_string());
        let cases = [
            (
                "empty",
                remaining(&[], &[], &[]),
                vec![
                    s(
                        "NamespaceDeletionContentFailure",
                        "False",
                        "ContentDeleted",
                        "All content successfully deleted, may be waiting on finalization",
                    ),
                    s("NamespaceContentRemaining", "False", "ContentRemoved", "All content successfully removed"),
                    s("NamespaceFinalizersRemaining", "False", "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
                ],
            ),
            (
                "pods stopping, a ReplicaSet waiting for them",
                remaining(&[("pods", 2), ("replicasets.apps", 1)], &[("foregroundDeletion", 1)], &[]),
                vec![
                    s(
                        "NamespaceDeletionContentFailure",
                        "False",
                        "ContentDeleted",
                        "All content successfully deleted, may be waiting on finalization",
                    ),
                    s(
                        "NamespaceContentRemaining",
                        "True",
                        "SomeResourcesRemain",
                        "Some resources are remaining: pods has 2 resource instances, replicasets.apps has 1 resource instances",
                    ),
                    s(
                        "NamespaceFinalizersRemaining",
                        "True",
                        "SomeFinalizersRemain",
                        "Some content in the namespace has finalizers remaining: foregroundDeletion in 1 resource instances",
                    ),
                ],
            ),
            (
                "a delete failed",
                remaining(&[("configmaps", 1)], &[], &["delete configmaps c: boom"]),
                vec![
                    s(
                        "NamespaceDeletionContentFailure",
                        "True",
                        "ContentDeletionFailed",
                        "Failed to delete all resource types, 1 remaining: delete configmaps c: boom",
                    ),
                    s(
                        "NamespaceContentRemaining",
                        "True",
                        "SomeResourcesRemain",
                        "Some resources are remaining: configmaps has 1 resource instances",
                    ),
                    s("NamespaceFinalizersRemaining", "False", "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
                ],
            ),
        ];
        for (name, rem, want) in cases {
            assert_eq!(summary(&deletion_conditions(&rem)), want, "{name}");
        }
    }

    #[test]
    fn only_failures_or_objects_keep_a_namespace() {
        let cases = [
            (remaining(&[], &[], &[]), true),
            (remaining(&[("pods", 1)], &[], &[]), false),
            (remaining(&[], &[], &["list pods: unavailable"]), false),
        ];
        for (rem, empty) in cases {
            assert_eq!(rem.is_empty(), empty, "{rem:?}");
        }
    }

    #[test]
    fn merging_keeps_transition_times_of_unchanged_conditions() {
        let t = |s: i64| Time(jiff::Timestamp::from_second(s).unwrap());
        let first = merge_conditions(&[], deletion_conditions(&remaining(&[("pods", 1)], &[], &[])), &t(10)).expect("new conditions");
        assert!(first.iter().all(|c| c.last_transition_time == Some(t(10))));

        // The same again: nothing to write.
        assert_eq!(merge_conditions(&first, deletion_conditions(&remaining(&[("pods", 1)], &[], &[])), &t(20)), None);

        // The pods went: only NamespaceContentRemaining changes, and only it gets the new time.
        let second = merge_conditions(&first, deletion_conditions(&remaining(&[], &[], &[])), &t(30)).expect("a change");
        for c in &second {
            let want = if c.type_ == "NamespaceContentRemaining" { t(30) } else { t(10) };
            assert_eq!(c.last_transition_time, Some(want), "{}", c.type_);
        }
    }
}
