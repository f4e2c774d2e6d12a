//! The ReplicaSet controller (upstream `pkg/controller/replicaset`).
//!
//! A ReplicaSet says "keep `spec.replicas` pods like `spec.template`
//! running, and know them by `spec.selector`". Its controller makes that
//! true, one ReplicaSet at a time:
//!
//! 1. **Claim**: of the active pods in the namespace, those whose
//!    controller reference names this ReplicaSet and that still match the
//!    selector are its own; matching orphans are *adopted* (given a
//!    controller reference), and owned pods that no longer match are
//!    *released*.
//! 2. **Manage replicas**, only when [`Expectations`] are satisfied: create
//!    the missing pods in slow-start batches, or delete the surplus, the
//!    cheapest-to-lose first. Each create and delete is first recorded as
//!    an expectation so a second sync cannot repeat it before the informer
//!    has seen it.
//! 3. **Status**: write `replicas`, `readyReplicas`, `availableReplicas`,
//!    ... with `replace_status`, only when they changed.
//!
//! [`reconcile`] is idempotent and level-triggered: it reads the pods as
//! they are now, and its own effects (new pods, deletionTimestamps) are
//! what its next run sees.

pub mod manage;
pub mod status;

use std::sync::Arc;

use api::labels::Selector;
use api::ApiError;
use client::events::{EventType, Recorder};
use client::informer::Change;
use client::workqueue::WorkQueue;
use client::{Api, Client};
use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;

use crate::expectations::Expectations;
use crate::informers::{Caches, EventHandler};
use crate::podutil;
use crate::refmanager::{self, Claim};
use crate::runtime::{default_error_policy, Action};
use crate::Error;
use manage::Diff;

/// The component name on this controller's events.
pub const COMPONENT: &str = "replicaset-controller";

/// Everything [`reconcile`] needs besides the ReplicaSet itself.
pub struct Context {
    pub client: Client,
    pub caches: Caches,
    pub queue: WorkQueue<String>,
    pub expectations: Expectations,
    pub recorder: Recorder,
}

impl Context {
    pub fn new(client: Client, caches: Caches) -> Arc<Self> {
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), COMPONENT, None),
            client,
            caches,
            queue: WorkQueue::new(),
            expectations: Expectations::new(),
        })
    }

    /// Finds a ReplicaSet in the cache by key, for the worker loop.
    pub fn lookup(&self, key: &str) -> Option<Arc<ReplicaSet>> {
        self.caches.replicasets.get(key)
    }

    /// The ReplicaSet a pod's controller reference names, if it is in the
    /// cache with the same uid (a same-named successor is not the owner).
    fn owner_of(&self, pod: &Pod) -> Option<Arc<ReplicaSet>> {
        let r = refmanager::controller_of(&pod.metadata)?;
        if r.kind != "ReplicaSet" {
            return None;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        self.caches.replicasets.get(&format!("{ns}/{}", r.name)).filter(|rs| rs.metadata.uid.as_ref() == Some(&r.uid))
    }

    /// ReplicaSets whose selector matches an orphan pod: the candidates to
    /// adopt it.
    fn matching_replicasets(&self, pod: &Pod) -> Vec<Arc<ReplicaSet>> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        self.caches
            .replicasets
            .select(ns, &Selector::everything())
            .into_iter()
            .filter(|rs| selector_of(rs).is_ok_and(|s| !s.is_empty() && s.matches_opt(pod.metadata.labels.as_ref())))
            .collect()
    }

    fn enqueue(&self, rs: &ReplicaSet) {
        self.queue.add(podutil::key(&rs.metadata));
    }

    /// A pod of ours is gone or going: count it against the deletions we
    /// expect, and look at its ReplicaSet again.
    fn pod_deleted(&self, pod: &Pod) {
        if let Some(rs) = self.owner_of(pod) {
            let key = podutil::key(&rs.metadata);
            self.expectations.deletion_observed(&key, &podutil::key(&pod.metadata));
            self.queue.add(key);
        }
    }
}

fn selector_of(rs: &ReplicaSet) -> Result<Selector, String> {
    let sel = rs.spec.as_ref().map(|s| &s.selector).ok_or("spec is missing")?;
    Selector::from_label_selector(sel)
}

impl EventHandler for Context {
    fn on_replicaset(&self, change: &Change<ReplicaSet>) {
        match change {
            Change::Applied { new, .. } => self.enqueue(new),
            // Nothing left to reconcile; the garbage collector removes its pods.
            Change::Deleted(rs) => self.expectations.delete(&podutil::key(&rs.metadata)),
        }
    }

    fn on_pod(&self, change: &Change<Pod>) {
        match change {
            Change::Deleted(pod) => self.pod_deleted(pod),
            Change::Applied { old: None, new } => {
                // A pod that appears already terminating was never "created"
                // as far as counting goes (e.g. seen first on a relist).
                if new.metadata.deletion_timestamp.is_some() {
                    return self.pod_deleted(new);
                }
                if let Some(rs) = self.owner_of(new) {
                    let key = podutil::key(&rs.metadata);
                    self.expectations.creation_observed(&key);
                    self.queue.add(key);
                } else if refmanager::controller_of(&new.metadata).is_none() {
                    self.matching_replicasets(new).iter().for_each(|rs| self.enqueue(rs));
                }
            }
            Change::Applied { old: Some(old), new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                if new.metadata.deletion_timestamp.is_some() && old.metadata.deletion_timestamp.is_none() {
                    // Graceful deletion started: as good as gone for counting.
                    self.pod_deleted(new);
                }
                let (old_ref, new_ref) = (refmanager::controller_of(&old.metadata), refmanager::controller_of(&new.metadata));
                if old_ref != new_ref {
                    if let Some(rs) = self.owner_of(old) {
                        self.enqueue(&rs);
                    }
                }
                if let Some(rs) = self.owner_of(new) {
                    self.enqueue(&rs);
                } else if new_ref.is_none() && (old_ref.is_some() || old.metadata.labels != new.metadata.labels) {
                    // A new orphan, or an orphan relabelled: someone may adopt it.
                    self.matching_replicasets(new).iter().for_each(|rs| self.enqueue(rs));
                }
            }
        }
    }
}

/// Brings one ReplicaSet's pods and status in line with its spec.
/// Idempotent and level-triggered: see the module docs.
pub async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = podutil::key(&rs.metadata);
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let selector = match selector_of(&rs) {
        Ok(s) if !s.is_empty() => s,
        // Retrying cannot fix a bad selector; the user's next edit requeues us.
        Ok(_) => return invalid(&rs, &ctx, "an empty selector would select every pod").await,
        Err(e) => return invalid(&rs, &ctx, &e).await,
    };
    // Read expectations before the pods: if an observation lands in
    // between, we merely wait for the next sync instead of acting on a
    // cache that does not yet show it.
    let needs_sync = ctx.expectations.satisfied(&key) && rs.metadata.deletion_timestamp.is_none();
    let candidates: Vec<Arc<Pod>> =
        ctx.caches.pods.select(&ns, &Selector::everything()).into_iter().filter(|p| podutil::is_active(p)).collect();
    let owned = claim_pods(&rs, &selector, candidates, &ctx).await?;

    let manage_result = if needs_sync { manage_replicas(&rs, &owned, &ctx).await } else { Ok(()) };
    let manage_error = manage_result.as_ref().err().map(|e| e.to_string());

    let now = jiff::Timestamp::now();
    let new_status = status::calculate_status(&rs, &owned, manage_error.as_deref(), now);
    if rs.status.as_ref() != Some(&new_status) {
        let mut updated = (*rs).clone();
        updated.status = Some(new_status);
        Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns)
            .replace_status(&updated)
            .await
            .map_err(|e| Error::api(format!("update status of ReplicaSet {key}"), e))?;
    }
    manage_result?;
    Ok(match status::next_availability_check(&rs, &owned, now) {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// The error policy: retry with back-off.
pub fn error_policy(rs: Arc<ReplicaSet>, err: &Error, _ctx: Arc<Context>) -> Action {
    default_error_policy("replicaset", &podutil::key(&rs.metadata), err)
}

async fn invalid(rs: &ReplicaSet, ctx: &Context, why: &str) -> Result<Action, Error> {
    tracing::warn!(replicaset = %podutil::key(&rs.metadata), why, "invalid selector; not syncing");
    ctx.recorder.record(rs, EventType::Warning, "InvalidSelector", why).await;
    Ok(Action::await_change())
}

/// Claims pods (see [`refmanager::claim`]), adopting and releasing through the
/// api-server, and returns the active pods the ReplicaSet now owns.
async fn claim_pods(rs: &ReplicaSet, selector: &Selector, candidates: Vec<Arc<Pod>>, ctx: &Context) -> Result<Vec<Arc<Pod>>, Error> {
    let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns);
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut owned = Vec::new();
    // Adopting is checked once against a fresh read of the ReplicaSet, so a
    // stale cache cannot make a deleted ReplicaSet take pods it will never
    // manage (upstream `RecheckDeletionTimestamp`).
    let mut can_adopt: Option<bool> = None;
    for pod in candidates {
        match refmanager::claim(&pod.metadata, &rs.metadata, selector.matches_opt(pod.metadata.labels.as_ref()), deleting) {
            Claim::Owned => owned.push(pod),
            Claim::Ignore => {}
            Claim::Adopt => {
                if can_adopt.is_none() {
                    can_adopt = Some(still_current(rs, ctx).await?);
                }
                if can_adopt != Some(true) {
                    continue;
                }
                let adopted = refmanager::with_controller_ref::<ReplicaSet, _>(&*pod, &rs.metadata);
                match pods.replace(&adopted).await {
                    Ok(p) => owned.push(Arc::new(p)),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(Error::api(format!("adopt pod {}", podutil::key(&pod.metadata)), e)),
                }
            }
            Claim::Release => {
                let released = refmanager::without_owner(&*pod, &rs.metadata);
                match pods.replace(&released).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(Error::api(format!("release pod {}", podutil::key(&pod.metadata)), e)),
                }
            }
        }
    }
    Ok(owned)
}

/// Whether the ReplicaSet still exists as we know it (same uid, not being
/// deleted), read live from the api-server.
async fn still_current(rs: &ReplicaSet, ctx: &Context) -> Result<bool, Error> {
    let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
    let name = rs.metadata.name.as_deref().unwrap_or_default();
    let live = Api::<ReplicaSet>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| Error::api(format!("get ReplicaSet {ns}/{name}"), e))?;
    Ok(live.is_some_and(|l| l.metadata.uid == rs.metadata.uid && l.metadata.deletion_timestamp.is_none()))
}

/// Creates or deletes pods to reach `spec.replicas`, recording
/// expectations first.
async fn manage_replicas(rs: &ReplicaSet, owned: &[Arc<Pod>], ctx: &Context) -> Result<(), Error> {
    let key = podutil::key(&rs.metadata);
    let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns);
    let desired = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    match manage::replica_diff(owned.len(), desired) {
        Diff::Nothing => Ok(()),
        Diff::Create(n) => {
            ctx.expectations.expect_creations(&key, n);
            let template = manage::pod_from_template(rs);
            let mut attempted = 0;
            let mut first_error = None;
            let mut terminating = false;
            for batch in manage::slow_start_batches(n) {
                attempted += batch;
                let results = join_all((0..batch).map(|_| pods.create(&template))).await;
                for result in results {
                    match result {
                        Ok(pod) => {
                            let msg = format!("Created pod: {}", pod.metadata.name.as_deref().unwrap_or_default());
                            ctx.recorder.record(rs, EventType::Normal, "SuccessfulCreate", &msg).await;
                        }
                        Err(e) if crate::error::is_namespace_terminating(&e) => {
                            // The namespace is being emptied: every create
                            // fails and nothing is wrong (upstream stays
                            // quiet too). The namespace controller deletes us.
                            ctx.expectations.creation_observed(&key);
                            terminating = true;
                        }
                        Err(e) => {
                            // The informer will never see this pod.
                            ctx.expectations.creation_observed(&key);
                            ctx.recorder.record(rs, EventType::Warning, "FailedCreate", &format!("Error creating: {e}")).await;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                if first_error.is_some() || terminating {
                    break;
                }
            }
            // Batches we never started will never be observed either.
            for _ in attempted..n {
                ctx.expectations.creation_observed(&key);
            }
            match first_error {
                Some(e) => Err(Error::api(format!("create pods for ReplicaSet {key}"), e)),
                None => Ok(()),
            }
        }
        Diff::Delete(n) => {
            let victims = manage::pods_to_delete(owned, n);
            ctx.expectations.expect_deletions(&key, victims.iter().map(|p| podutil::key(&p.metadata)));
            let pods = &pods;
            let results = join_all(victims.iter().map(|p| async move {
                let name = p.metadata.name.as_deref().unwrap_or_default();
                (p, pods.delete(name).await)
            }))
            .await;
            let mut first_error: Option<ApiError> = None;
            for (pod, result) in results {
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                match result {
                    Ok(()) => {
                        ctx.recorder.record(rs, EventType::Normal, "SuccessfulDelete", &format!("Deleted pod: {name}")).await;
                    }
                    Err(e) => {
                        ctx.expectations.deletion_observed(&key, &podutil::key(&pod.metadata));
                        if !e.is_not_found() {
                            ctx.recorder.record(rs, EventType::Warning, "FailedDelete", &format!("Error deleting: {e}")).await;
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
            match first_error {
                Some(e) => Err(Error::api(format!("delete pods of ReplicaSet {key}"), e)),
                None => Ok(()),
            }
        }
    }
}
