//! The garbage collector (upstream `pkg/controller/garbagecollector`,
//! much simplified).
//!
//! Deleting a Deployment does not delete its ReplicaSets, and deleting a
//! ReplicaSet does not delete its pods — not directly. Each dependent names
//! its owners in `metadata.ownerReferences`, and the garbage collector
//! deletes any dependent whose owners are *all* gone. Deleting a Deployment
//! therefore removes its ReplicaSets, whose disappearance in turn makes
//! their pods garbage: Kubernetes' *background* cascading deletion.
//!
//! An owner is gone when no object of its kind and name exists with the
//! uid the reference records (a new object with the same name is not the
//! owner). The informer caches answer first; but because a cache may lag,
//! nothing is ever deleted on the cache's word alone: the dependent and
//! each of its owners are read live from the api-server first, and the
//! delete carries a uid precondition.
//!
//! Where tinykube simplifies: upstream builds a graph of every object of
//! every kind from generic metadata informers, and implements foreground
//! deletion and orphaning with finalizers (`foregroundDeletion`,
//! `orphan`). Here the dependents considered are ReplicaSets and pods, the
//! owners watched are Deployments and ReplicaSets (owners of other kinds
//! are checked live, and re-checked every few minutes since no watch tells
//! us they vanished), deletion is always background, and a dependent
//! with some owners gone and some alive is left alone rather than having
//! the dangling references removed.

use std::sync::Arc;
use std::time::Duration;

use api::labels::Selector;
use api::proto;
use client::informer::Change;
use client::workqueue::WorkQueue;
use client::{Api, Client};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::informers::{Caches, EventHandler};
use crate::runtime::{default_error_policy, Action};
use crate::Error;

/// How often a dependent whose owner is of a kind we do not watch is
/// looked at again.
pub const UNWATCHED_OWNER_RECHECK: Duration = Duration::from_secs(5 * 60);

/// An object that may be garbage.
#[derive(Debug, Clone)]
pub enum Dependent {
    ReplicaSet(Arc<ReplicaSet>),
    Pod(Arc<Pod>),
}

impl Dependent {
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Dependent::ReplicaSet(rs) => &rs.metadata,
            Dependent::Pod(p) => &p.metadata,
        }
    }

    fn resource(&self) -> &'static str {
        match self {
            Dependent::ReplicaSet(_) => "replicasets",
            Dependent::Pod(_) => "pods",
        }
    }
}

/// The garbage collector's queue key: `<resource>/<namespace>/<name>`.
fn gc_key(resource: &str, meta: &ObjectMeta) -> String {
    format!("{resource}/{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
}

/// What an owner reference's owner is, as far as we can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// It exists with the recorded uid.
    Present,
    /// Nothing with that name and uid exists.
    Absent,
    /// We cannot tell (a kind outside the resource table): never treated
    /// as absent.
    Unknown,
}

/// The decision for a dependent, given what is known of each owner: it is
/// garbage only if it has owners and every one is known to be absent.
pub fn is_garbage(owners: &[OwnerState]) -> bool {
    !owners.is_empty() && owners.iter().all(|o| *o == OwnerState::Absent)
}

/// Everything [`reconcile`] needs.
pub struct Context {
    pub client: Client,
    pub caches: Caches,
    pub queue: WorkQueue<String>,
}

impl Context {
    pub fn new(client: Client, caches: Caches) -> Arc<Self> {
        Arc::new(Context { client, caches, queue: WorkQueue::new() })
    }

    /// Finds a dependent in the caches by its queue key.
    pub fn lookup(&self, key: &str) -> Option<Arc<Dependent>> {
        let (resource, cache_key) = key.split_once('/')?;
        match resource {
            "replicasets" => self.caches.replicasets.get(cache_key).map(|rs| Arc::new(Dependent::ReplicaSet(rs))),
            "pods" => self.caches.pods.get(cache_key).map(|p| Arc::new(Dependent::Pod(p))),
            _ => None,
        }
    }

    fn enqueue_if_owned(&self, resource: &str, old: Option<&ObjectMeta>, new: &ObjectMeta) {
        let has_owners = new.owner_references.as_ref().is_some_and(|r| !r.is_empty());
        // Owner references rarely change; other updates need no look.
        if has_owners && old.is_none_or(|o| o.owner_references != new.owner_references) {
            self.queue.add(gc_key(resource, new));
        }
    }

    /// An owner vanished: every dependent naming its uid may be garbage now.
    fn enqueue_dependents(&self, owner: &ObjectMeta) {
        let (Some(ns), Some(uid)) = (owner.namespace.as_deref(), owner.uid.as_deref()) else { return };
        let names_owner = |m: &ObjectMeta| m.owner_references.iter().flatten().any(|r| r.uid == uid);
        for rs in self.caches.replicasets.select(ns, &Selector::everything()) {
            if names_owner(&rs.metadata) {
                self.queue.add(gc_key("replicasets", &rs.metadata));
            }
        }
        for pod in self.caches.pods.select(ns, &Selector::everything()) {
            if names_owner(&pod.metadata) {
                self.queue.add(gc_key("pods", &pod.metadata));
            }
        }
    }

    /// What the caches say about an owner; `None` when they cannot say
    /// (a kind we do not watch).
    fn cached_owner(&self, namespace: &str, r: &OwnerReference) -> Option<OwnerState> {
        let key = format!("{namespace}/{}", r.name);
        let uid = |m: &ObjectMeta| m.uid.clone();
        let found = match (r.api_version.as_str(), r.kind.as_str()) {
            ("apps/v1", "Deployment") => self.caches.deployments.get(&key).map(|d| uid(&d.metadata)),
            ("apps/v1", "ReplicaSet") => self.caches.replicasets.get(&key).map(|rs| uid(&rs.metadata)),
            ("v1", "Pod") => self.caches.pods.get(&key).map(|p| uid(&p.metadata)),
            _ => return None,
        };
        Some(if found.flatten().as_deref() == Some(r.uid.as_str()) { OwnerState::Present } else { OwnerState::Absent })
    }

    /// Reads an owner live from the api-server.
    async fn live_owner(&self, namespace: &str, r: &OwnerReference) -> Result<OwnerState, Error> {
        let Ok(info) = api::resources::by_kind(&r.api_version, &r.kind) else {
            return Ok(OwnerState::Unknown);
        };
        let req = proto::GetRequest { resource: Some(info.to_ref(namespace)), name: r.name.clone() };
        match self.client.grpc().get(req).await {
            Ok(reply) => {
                let obj: serde_json::Value = serde_json::from_slice(&reply.into_inner().json)
                    .map_err(|source| Error::Serialize { what: "owner object", source })?;
                let live_uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
                Ok(if live_uid == r.uid { OwnerState::Present } else { OwnerState::Absent })
            }
            Err(status) => {
                let e = api::ApiError::from_grpc(&status);
                if e.is_not_found() {
                    Ok(OwnerState::Absent)
                } else {
                    Err(Error::api(format!("get owner {} {namespace}/{}", r.kind, r.name), e))
                }
            }
        }
    }
}

impl EventHandler for Context {
    fn on_pod(&self, change: &Change<Pod>) {
        if let Change::Applied { old, new } = change {
            self.enqueue_if_owned("pods", old.as_ref().map(|o| &o.metadata), &new.metadata);
        }
    }

    fn on_replicaset(&self, change: &Change<ReplicaSet>) {
        match change {
            Change::Applied { old, new } => self.enqueue_if_owned("replicasets", old.as_ref().map(|o| &o.metadata), &new.metadata),
            Change::Deleted(rs) => self.enqueue_dependents(&rs.metadata),
        }
    }

    fn on_deployment(&self, change: &Change<Deployment>) {
        if let Change::Deleted(d) = change {
            self.enqueue_dependents(&d.metadata);
        }
    }
}

/// Deletes the dependent if all its owners are gone. Idempotent and
/// level-triggered: it decides from the owners' existence now, and a
/// second run finds the dependent gone or terminating.
pub async fn reconcile(dep: Arc<Dependent>, ctx: Arc<Context>) -> Result<Action, Error> {
    let meta = dep.metadata();
    let refs = meta.owner_references.clone().unwrap_or_default();
    if refs.is_empty() || meta.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let recheck = if refs.iter().all(|r| ctx.cached_owner(&ns, r).is_some()) {
        Action::await_change()
    } else {
        Action::requeue(UNWATCHED_OWNER_RECHECK)
    };
    // The cheap test first: any owner the caches still hold keeps it.
    if refs.iter().any(|r| ctx.cached_owner(&ns, r) == Some(OwnerState::Present)) {
        return Ok(recheck);
    }
    // Then the truth, from the api-server: the dependent as it is now...
    let live_refs = match dep.as_ref() {
        Dependent::ReplicaSet(_) => live_refs(Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns), &name, meta).await?,
        Dependent::Pod(_) => live_refs(Api::<Pod>::namespaced(ctx.client.clone(), &ns), &name, meta).await?,
    };
    let Some(live_refs) = live_refs else { return Ok(Action::await_change()) };
    // ...and each of its owners.
    let mut owners = Vec::with_capacity(live_refs.len());
    for r in &live_refs {
        owners.push(ctx.live_owner(&ns, r).await?);
    }
    if !is_garbage(&owners) {
        return Ok(recheck);
    }
    tracing::info!(resource = dep.resource(), namespace = %ns, name, "deleting object whose owners are all gone");
    let options = serde_json::json!({
        "propagationPolicy": "Background",
        "preconditions": {"uid": meta.uid},
    });
    let result = match dep.as_ref() {
        Dependent::ReplicaSet(_) => Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns).delete_with(&name, &options).await,
        Dependent::Pod(_) => Api::<Pod>::namespaced(ctx.client.clone(), &ns).delete_with(&name, &options).await,
    };
    match result {
        // Gone already, or replaced by a new object (uid precondition).
        Err(e) if e.is_not_found() || e.is_conflict() => Ok(Action::await_change()),
        Err(e) => Err(Error::api(format!("delete {} {ns}/{name}", dep.resource()), e)),
        Ok(()) => Ok(Action::await_change()),
    }
}

/// The owner references of the live object, if it is still the object we
/// cached (same uid) and not already terminating.
async fn live_refs<K: client::Object>(api: Api<K>, name: &str, cached: &ObjectMeta) -> Result<Option<Vec<OwnerReference>>, Error> {
    let live = api.get_opt(name).await.map_err(|e| Error::api(format!("get {} {name}", K::KIND), e))?;
    Ok(live
        .map(|l| l.metadata().clone())
        .filter(|m| m.uid == cached.uid && m.deletion_timestamp.is_none())
        .map(|m| m.owner_references.unwrap_or_default()))
}

/// The error policy: retry with back-off.
pub fn error_policy(dep: Arc<Dependent>, err: &Error, _ctx: Arc<Context>) -> Action {
    let (resource, meta) = (dep.resource(), dep.metadata());
    default_error_policy("garbagecollector", &gc_key(resource, meta), err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use OwnerState::*;

    #[test]
    fn garbage_only_when_every_owner_is_known_gone() {
        let cases: [(&[OwnerState], bool); 7] = [
            (&[], false),
            (&[Absent], true),
            (&[Present], false),
            (&[Unknown], false),
            (&[Absent, Absent], true),
            (&[Absent, Present], false),
            (&[Absent, Unknown], false),
        ];
        for (owners, want) in cases {
            assert_eq!(is_garbage(owners), want, "{owners:?}");
        }
    }

    #[test]
    fn keys_name_the_resource_then_the_cache_key() {
        let meta = ObjectMeta { name: Some("web-1".into()), namespace: Some("shop".into()), ..Default::default() };
        assert_eq!(gc_key("pods", &meta), "pods/shop/web-1");
    }
}
