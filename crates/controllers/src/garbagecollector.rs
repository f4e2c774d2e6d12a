//! The garbage collector (upstream `pkg/controller/garbagecollector`,
//! simplified).
//!
//! Deleting a Deployment does not delete its ReplicaSets, and deleting a
//! ReplicaSet does not delete its pods — not directly. Each dependent names
//! its owners in `metadata.ownerReferences`, and the garbage collector
//! acts on those references. What it does depends on how the owner was
//! deleted, the `propagationPolicy` of the delete:
//!
//! - **Background** (the default): the owner goes at once. Its dependents
//!   are now *garbage* — every owner they name is gone — and the collector
//!   deletes them, which in turn makes their own dependents garbage.
//! - **Foreground**: the api-server keeps the owner, with a
//!   `deletionTimestamp` and the `foregroundDeletion` finalizer, while the
//!   collector deletes its dependents. Such an owner is *waiting for
//!   dependents deletion*; a dependent whose owners are all gone or
//!   waiting is deleted — itself in the foreground if it has dependents of
//!   its own, so the wait reaches down the whole tree. Once no dependent
//!   with `blockOwnerDeletion: true` remains, the collector removes the
//!   finalizer and the api-server removes the owner. `kubectl delete
//!   --cascade=foreground` returns only then.
//! - **Orphan**: the api-server keeps the owner with the `orphan`
//!   finalizer; the collector removes the owner's reference from every
//!   dependent, then the finalizer. The dependents live on, ownerless.
//!
//! A dependent that still has a live owner ("solid", in upstream's word)
//! is never deleted; references it holds to owners that are gone or
//! waiting are removed from it instead, so it no longer blocks them.
//!
//! An owner is gone when no object of its kind and name exists with the
//! uid the reference records (a new object with the same name is not the
//! owner). The informer caches answer first; but because a cache may lag,
//! nothing is deleted or finalized on the cache's word alone: the object
//! and its owners or dependents are read live from the api-server first,
//! deletes carry a uid precondition and updates a resourceVersion.
//!
//! Where tinykube simplifies: upstream builds a graph of every object of
//! every kind from generic metadata informers. Here the objects looked at
//! are those of the [`WATCHED`] kinds (Deployments, ReplicaSets and pods),
//! which have shared informers; an owner of another kind is checked live,
//! and re-checked every few minutes since no watch tells us it vanished.
//! Adding a kind means adding its informer and one arm in
//! `Context::cached`; every write here is generic (`DynamicApi` over JSON).

use std::sync::Arc;
use std::time::Duration;

use api::labels::Selector;
use api::ResourceInfo;
use client::dynamic::DynamicApi;
use client::informer::Change;
use client::workqueue::WorkQueue;
use client::{Client, ListParams};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;

use crate::informers::{Caches, EventHandler};
use crate::retry::{remove_finalizer, remove_owner_references, update_live};
use crate::runtime::{default_error_policy, Action};
use crate::Error;

/// The finalizer a Foreground delete puts on the owner.
pub const FOREGROUND_DELETION: &str = "foregroundDeletion";

/// The finalizer an Orphan delete puts on the owner.
pub const ORPHAN: &str = "orphan";

/// The kinds the garbage collector watches, as owners and as dependents.
pub const WATCHED: &[&str] = &["deployments", "replicasets", "pods"];

/// How often a dependent whose owner is of a kind we do not watch is
/// looked at again.
pub const UNWATCHED_OWNER_RECHECK: Duration = Duration::from_secs(5 * 60);

/// How often an owner waiting for its dependents looks again although no
/// event woke it. Normally each dependent's disappearance wakes it.
pub const FOREGROUND_RECHECK: Duration = Duration::from_secs(10);

/// When the cache and the api-server disagree about an owner's blocking
/// dependents, the cache is behind: look again shortly.
const CACHE_LAG_RECHECK: Duration = Duration::from_millis(500);

/// One object as the garbage collector sees it — upstream's graph `node`:
/// its kind and its metadata. Spec and status never matter here.
#[derive(Debug, Clone)]
pub struct GraphNode {
    pub info: &'static ResourceInfo,
    pub meta: ObjectMeta,
}

impl GraphNode {
    fn key(&self) -> String {
        gc_key(self.info.resource, &self.meta)
    }

    fn namespace(&self) -> &str {
        self.meta.namespace.as_deref().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.meta.name.as_deref().unwrap_or_default()
    }

    fn uid(&self) -> &str {
        self.meta.uid.as_deref().unwrap_or_default()
    }
}

/// The garbage collector's queue key: `<resource>/<namespace>/<name>`.
fn gc_key(resource: &str, meta: &ObjectMeta) -> String {
    format!("{resource}/{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
}

/// The resource table's row for a watched kind.
fn watched_info(resource: &str) -> Option<&'static ResourceInfo> {
    if !WATCHED.contains(&resource) {
        return None;
    }
    api::resources::RESOURCES.iter().find(|r| r.resource == resource)
}

fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// Whether the object is being deleted and waits for the garbage
/// collector (it carries one of the finalizers the collector serves).
pub fn awaits_collector(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some() && (has_finalizer(meta, ORPHAN) || has_finalizer(meta, FOREGROUND_DELETION))
}

fn names_owner(meta: &ObjectMeta, owner_uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|r| r.uid == owner_uid)
}

/// Whether `dependent` holds up the foreground deletion of the owner with
/// `owner_uid`: its reference to that owner says `blockOwnerDeletion`.
pub fn blocks_owner(dependent: &ObjectMeta, owner_uid: &str) -> bool {
    dependent.owner_references.iter().flatten().any(|r| r.uid == owner_uid && r.block_owner_deletion == Some(true))
}

/// What an owner reference's owner is, as far as we can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// It exists with the recorded uid and is not waiting for its
    /// dependents: upstream's "solid" owner.
    Present,
    /// Nothing with that name and uid exists: a "dangling" reference.
    Absent,
    /// It is being deleted in the foreground and waits for its
    /// dependents to go first.
    WaitingForDependentsDeletion,
    /// We cannot tell (a kind outside the resource table): never treated
    /// as gone.
    Unknown,
}

/// Classifies an owner from its current metadata (`None`: not found).
pub fn owner_state(owner: Option<&ObjectMeta>, uid: &str) -> OwnerState {
    match owner {
        Some(m) if m.uid.as_deref() == Some(uid) => {
            if m.deletion_timestamp.is_some() && has_finalizer(m, FOREGROUND_DELETION) {
                OwnerState::WaitingForDependentsDeletion
            } else {
                OwnerState::Present
            }
        }
        _ => OwnerState::Absent,
    }
}

/// How a dependent is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
}

impl Propagation {
    fn as_str(self) -> &'static str {
        match self {
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
        }
    }
}

/// What to do with a dependent (upstream `attemptToDeleteItem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It has a live owner and nothing to tidy, or we cannot tell.
    Keep,
    /// It has a live owner, but also references (by uid) to owners that
    /// are gone or waiting for it: remove those.
    RemoveReferences(Vec<String>),
    /// Every owner is gone or waiting: delete it.
    Delete(Propagation),
}

/// Decides for a dependent from the state of each owner (uid, state) and
/// whether it has dependents of its own. Foreground propagation is chosen
/// only when an owner waits and the dependent has its own dependents, so
/// that the owner's wait covers them too.
pub fn decide(owners: &[(String, OwnerState)], has_dependents: bool) -> Decision {
    if owners.is_empty() || owners.iter().any(|(_, s)| *s == OwnerState::Unknown) {
        return Decision::Keep;
    }
    let stale: Vec<String> = owners.iter().filter(|(_, s)| *s != OwnerState::Present).map(|(uid, _)| uid.clone()).collect();
    if owners.iter().any(|(_, s)| *s == OwnerState::Present) {
        return if stale.is_empty() { Decision::Keep } else { Decision::RemoveReferences(stale) };
    }
    let waited_for = owners.iter().any(|(_, s)| *s == OwnerState::WaitingForDependentsDeletion);
    Decision::Delete(if waited_for && has_dependents { Propagation::Foreground } else { Propagation::Background })
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

    /// Finds an object in the caches by its queue key.
    pub fn lookup(&self, key: &str) -> Option<Arc<GraphNode>> {
        let (resource, cache_key) = key.split_once('/')?;
        let info = watched_info(resource)?;
        let meta = self.cached(resource, cache_key)??;
        Some(Arc::new(GraphNode { info, meta }))
    }

    /// An object's metadata from the caches: `None` when the kind is not
    /// watched, `Some(None)` when the cache does not hold the object.
    fn cached(&self, resource: &str, key: &str) -> Option<Option<ObjectMeta>> {
        Some(match resource {
            "deployments" => self.caches.deployments.get(key).map(|o| o.metadata.clone()),
            "replicasets" => self.caches.replicasets.get(key).map(|o| o.metadata.clone()),
            "pods" => self.caches.pods.get(key).map(|o| o.metadata.clone()),
            _ => return None,
        })
    }

    /// Every cached object in `namespace` that names `owner_uid` as owner.
    fn cached_dependents(&self, namespace: &str, owner_uid: &str) -> Vec<GraphNode> {
        let all = Selector::everything();
        let mut found = Vec::new();
        for resource in WATCHED {
            let Some(info) = watched_info(resource) else { continue };
            let metas: Vec<ObjectMeta> = match *resource {
                "deployments" => self.caches.deployments.select(namespace, &all).iter().map(|o| o.metadata.clone()).collect(),
                "replicasets" => self.caches.replicasets.select(namespace, &all).iter().map(|o| o.metadata.clone()).collect(),
                "pods" => self.caches.pods.select(namespace, &all).iter().map(|o| o.metadata.clone()).collect(),
                _ => Vec::new(),
            };
            found.extend(metas.into_iter().filter(|m| names_owner(m, owner_uid)).map(|meta| GraphNode { info, meta }));
        }
        found
    }

    /// Every object in `namespace` that names `owner_uid`, read live.
    async fn live_dependents(&self, namespace: &str, owner_uid: &str) -> Result<Vec<GraphNode>, Error> {
        let mut found = Vec::new();
        for resource in WATCHED {
            let Some(info) = watched_info(resource) else { continue };
            let list = DynamicApi::new(self.client.clone(), info, namespace)
                .list(&ListParams::default())
                .await
                .map_err(|e| Error::api(format!("list {resource} in {namespace}"), e))?;
            for item in list["items"].as_array().into_iter().flatten() {
                let meta: ObjectMeta = serde_json::from_value(item["metadata"].clone())
                    .map_err(|source| Error::Serialize { what: "object metadata", source })?;
                if names_owner(&meta, owner_uid) {
                    found.push(GraphNode { info, meta });
                }
            }
        }
        Ok(found)
    }

    /// An owner vanished: every dependent naming its uid may be garbage now.
    fn enqueue_dependents(&self, owner: &ObjectMeta) {
        let (Some(ns), Some(uid)) = (owner.namespace.as_deref(), owner.uid.as_deref()) else { return };
        for dep in self.cached_dependents(ns, uid) {
            self.queue.add(dep.key());
        }
    }

    /// A dependent went away or dropped references: the owners it named
    /// that wait for the collector may be free to go now.
    fn enqueue_waiting_owners(&self, dependent: &ObjectMeta) {
        let ns = dependent.namespace.as_deref().unwrap_or_default();
        for r in dependent.owner_references.iter().flatten() {
            let Ok(info) = api::resources::by_kind(&r.api_version, &r.kind) else { continue };
            let Some(Some(owner)) = self.cached(info.resource, &format!("{ns}/{}", r.name)) else { continue };
            if owner.uid.as_deref() == Some(r.uid.as_str()) && awaits_collector(&owner) {
                self.queue.add(gc_key(info.resource, &owner));
            }
        }
    }

    /// What the caches say about an owner; `None` when they cannot say
    /// (a kind we do not watch).
    fn cached_owner(&self, namespace: &str, r: &OwnerReference) -> Option<OwnerState> {
        let info = api::resources::by_kind(&r.api_version, &r.kind).ok()?;
        let owner = self.cached(info.resource, &format!("{namespace}/{}", r.name))?;
        Some(owner_state(owner.as_ref(), &r.uid))
    }

    /// Reads an owner live from the api-server.
    async fn live_owner(&self, namespace: &str, r: &OwnerReference) -> Result<OwnerState, Error> {
        let Ok(info) = api::resources::by_kind(&r.api_version, &r.kind) else {
            return Ok(OwnerState::Unknown);
        };
        match DynamicApi::new(self.client.clone(), info, namespace).get(&r.name).await {
            Ok(obj) => {
                let meta: ObjectMeta = serde_json::from_value(obj["metadata"].clone())
                    .map_err(|source| Error::Serialize { what: "owner metadata", source })?;
                Ok(owner_state(Some(&meta), &r.uid))
            }
            Err(e) if e.is_not_found() => Ok(OwnerState::Absent),
            Err(e) => Err(Error::api(format!("get owner {} {namespace}/{}", r.kind, r.name), e)),
        }
    }

    /// Turns one informer change into keys, whatever the kind.
    fn observe<K: client::Object>(&self, resource: &str, change: &Change<K>) {
        match change {
            Change::Applied { old, new } => {
                let (old, new) = (old.as_ref().map(|o| o.metadata()), new.metadata());
                if awaits_collector(new) {
                    self.queue.add(gc_key(resource, new));
                }
                // Owner references rarely change; other updates need no look.
                let refs_changed = old.is_none_or(|o| o.owner_references != new.owner_references);
                if refs_changed && new.owner_references.as_ref().is_some_and(|r| !r.is_empty()) {
                    self.queue.add(gc_key(resource, new));
                }
                if let Some(old) = old.filter(|_| refs_changed) {
                    self.enqueue_waiting_owners(old);
                }
            }
            Change::Deleted(obj) => {
                self.enqueue_dependents(obj.metadata());
                self.enqueue_waiting_owners(obj.metadata());
            }
        }
    }
}

impl EventHandler for Context {
    fn on_pod(&self, change: &Change<Pod>) {
        self.observe("pods", change);
    }

    fn on_replicaset(&self, change: &Change<ReplicaSet>) {
        self.observe("replicasets", change);
    }

    fn on_deployment(&self, change: &Change<Deployment>) {
        self.observe("deployments", change);
    }
}

/// Does the collector's part for one object: for an owner being deleted
/// with the `orphan` or `foregroundDeletion` finalizer, orphans or deletes
/// its dependents and then removes the finalizer; for any other object,
/// deletes it if its owners are gone. Idempotent and level-triggered: it
/// decides from the owners and dependents as they are now, and a second
/// run finds the work done.
pub async fn reconcile(node: Arc<GraphNode>, ctx: Arc<Context>) -> Result<Action, Error> {
    if node.meta.deletion_timestamp.is_some() {
        // Orphaning first: it removes the references that foreground
        // deletion would otherwise follow (both finalizers at once is
        // rare, and upstream orphans too).
        if has_finalizer(&node.meta, ORPHAN) {
            return orphan_dependents(&node, &ctx).await;
        }
        if has_finalizer(&node.meta, FOREGROUND_DELETION) {
            return process_deleting_dependents(&node, &ctx).await;
        }
        return Ok(Action::await_change());
    }
    attempt_to_delete(&node, &ctx).await
}

/// The dependent side: delete the object, or tidy its references, if its
/// owners are gone or waiting for it.
async fn attempt_to_delete(node: &GraphNode, ctx: &Context) -> Result<Action, Error> {
    let refs = node.meta.owner_references.clone().unwrap_or_default();
    if refs.is_empty() {
        return Ok(Action::await_change());
    }
    let (ns, name) = (node.namespace(), node.name());
    let cached: Vec<Option<OwnerState>> = refs.iter().map(|r| ctx.cached_owner(ns, r)).collect();
    let recheck = if cached.iter().all(Option::is_some) { Action::await_change() } else { Action::requeue(UNWATCHED_OWNER_RECHECK) };
    // The cheap test first: all owners alive in the caches means nothing to do.
    if cached.iter().all(|s| *s == Some(OwnerState::Present)) {
        return Ok(recheck);
    }
    // Then the truth, from the api-server: the object as it is now...
    let api = DynamicApi::new(ctx.client.clone(), node.info, ns);
    let live = match api.get(name).await {
        Ok(obj) => obj,
        Err(e) if e.is_not_found() => return Ok(Action::await_change()),
        Err(e) => return Err(Error::api(format!("get {} {ns}/{name}", node.info.resource), e)),
    };
    let live: ObjectMeta =
        serde_json::from_value(live["metadata"].clone()).map_err(|source| Error::Serialize { what: "object metadata", source })?;
    if live.uid != node.meta.uid || live.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // ...and each of its owners.
    let mut owners = Vec::new();
    for r in live.owner_references.iter().flatten() {
        owners.push((r.uid.clone(), ctx.live_owner(ns, r).await?));
    }
    let has_dependents = !ctx.cached_dependents(ns, node.uid()).is_empty();
    match decide(&owners, has_dependents) {
        Decision::Keep => Ok(recheck),
        Decision::RemoveReferences(uids) => {
            tracing::info!(resource = node.info.resource, namespace = ns, name, owners = ?uids, "removing references to owners that are gone or being deleted");
            update_live(&api, name, Some(node.uid()), |obj| remove_owner_references(obj, &uids))
                .await
                .map_err(|e| Error::api(format!("remove owner references from {} {ns}/{name}", node.info.resource), e))?;
            Ok(recheck)
        }
        Decision::Delete(propagation) => {
            tracing::info!(
                resource = node.info.resource,
                namespace = ns,
                name,
                propagation = propagation.as_str(),
                "deleting object whose owners are gone or being deleted"
            );
            let options = serde_json::json!({
                "propagationPolicy": propagation.as_str(),
                "preconditions": {"uid": node.uid()},
            });
            match api.delete(name, &options).await {
                // Gone already, or replaced by a new object (uid precondition).
                Err(e) if e.is_not_found() || e.is_conflict() => Ok(Action::await_change()),
                Err(e) => Err(Error::api(format!("delete {} {ns}/{name}", node.info.resource), e)),
                Ok(_) => Ok(Action::await_change()),
            }
        }
    }
}

/// The owner side of a Foreground delete (upstream
/// `processDeletingDependentsItem`): wake each blocking dependent so the
/// dependent side deletes it, and once none is left, remove the
/// `foregroundDeletion` finalizer so the api-server removes the owner.
async fn process_deleting_dependents(owner: &GraphNode, ctx: &Context) -> Result<Action, Error> {
    let (ns, uid) = (owner.namespace(), owner.uid());
    let blocking: Vec<GraphNode> = ctx.cached_dependents(ns, uid).into_iter().filter(|d| blocks_owner(&d.meta, uid)).collect();
    if !blocking.is_empty() {
        // A dependent already being deleted is on its way (in the
        // foreground itself, or gracefully on its node); the others are
        // looked at by the dependent side, which sees this owner waiting.
        for dep in blocking.iter().filter(|d| d.meta.deletion_timestamp.is_none()) {
            ctx.queue.add(dep.key());
        }
        return Ok(Action::requeue(FOREGROUND_RECHECK));
    }
    // The cache says nothing blocks; make sure before letting the owner go.
    let live_blocking = ctx.live_dependents(ns, uid).await?.into_iter().filter(|d| blocks_owner(&d.meta, uid)).count();
    if live_blocking > 0 {
        return Ok(Action::requeue(CACHE_LAG_RECHECK));
    }
    remove_own_finalizer(owner, ctx, FOREGROUND_DELETION).await?;
    Ok(Action::await_change())
}

/// The owner side of an Orphan delete (upstream `orphanDependents`):
/// remove the owner's reference from every dependent, then the `orphan`
/// finalizer. The dependents are read live: one left out would be deleted
/// as garbage once the owner goes.
async fn orphan_dependents(owner: &GraphNode, ctx: &Context) -> Result<Action, Error> {
    let (ns, uid) = (owner.namespace(), owner.uid().to_string());
    for dep in ctx.live_dependents(ns, &uid).await? {
        let api = DynamicApi::new(ctx.client.clone(), dep.info, ns);
        tracing::info!(resource = dep.info.resource, namespace = ns, name = dep.name(), owner = owner.name(), "orphaning dependent");
        update_live(&api, dep.name(), Some(dep.uid()), |obj| remove_owner_references(obj, std::slice::from_ref(&uid)))
            .await
            .map_err(|e| Error::api(format!("orphan {} {ns}/{}", dep.info.resource, dep.name()), e))?;
    }
    remove_own_finalizer(owner, ctx, ORPHAN).await?;
    Ok(Action::await_change())
}

/// Removes one of the collector's finalizers from an owner. If it was the
/// last finalizer, the api-server removes the object.
async fn remove_own_finalizer(owner: &GraphNode, ctx: &Context, finalizer: &str) -> Result<(), Error> {
    let (ns, name) = (owner.namespace(), owner.name());
    tracing::info!(resource = owner.info.resource, namespace = ns, name, finalizer, "dependents handled; removing finalizer");
    let api = DynamicApi::new(ctx.client.clone(), owner.info, ns);
    update_live(&api, name, Some(owner.uid()), |obj: &mut Value| remove_finalizer(obj, finalizer))
        .await
        .map_err(|e| Error::api(format!("remove finalizer {finalizer} from {} {ns}/{name}", owner.info.resource), e))?;
    Ok(())
}

/// The error policy: retry with back-off.
pub fn error_policy(node: Arc<GraphNode>, err: &Error, _ctx: Arc<Context>) -> Action {
    default_error_policy("garbagecollector", &node.key(), err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use OwnerState::*;

    fn meta(uid: &str, deleting: bool, finalizers: &[&str]) -> ObjectMeta {
        ObjectMeta {
            uid: Some(uid.into()),
            deletion_timestamp: deleting.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
            finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn owner_state_from_metadata() {
        let cases = [
            ("not found", None, Absent),
            ("another uid", Some(meta("u2", false, &[])), Absent),
            ("alive", Some(meta("u1", false, &[])), Present),
            ("being deleted in the background", Some(meta("u1", true, &[])), Present),
            ("being orphaned", Some(meta("u1", true, &[ORPHAN])), Present),
            ("foreground", Some(meta("u1", true, &[FOREGROUND_DELETION])), WaitingForDependentsDeletion),
            ("finalizer but not yet deleting", Some(meta("u1", false, &[FOREGROUND_DELETION])), Present),
        ];
        for (name, owner, want) in cases {
            assert_eq!(owner_state(owner.as_ref(), "u1"), want, "{name}");
        }
    }

    #[test]
    fn decisions_for_a_dependent() {
        use Decision::*;
        use Propagation::*;
        type Owners = Vec<(String, OwnerState)>;
        let o = |states: &[(&str, OwnerState)]| -> Owners { states.iter().map(|(u, s)| (u.to_string(), *s)).collect() };
        let cases: Vec<(&str, Owners, bool, Decision)> = vec![
            ("no owners: not garbage", o(&[]), false, Keep),
            ("owner alive", o(&[("a", Present)]), true, Keep),
            ("owner gone", o(&[("a", Absent)]), false, Delete(Background)),
            ("owner gone, has dependents: still background", o(&[("a", Absent)]), true, Delete(Background)),
            ("all owners gone", o(&[("a", Absent), ("b", Absent)]), false, Delete(Background)),
            ("owner unknowable", o(&[("a", Unknown)]), false, Keep),
            ("gone and unknowable", o(&[("a", Absent), ("b", Unknown)]), false, Keep),
            (
                "one alive, one gone: drop the dangling reference",
                o(&[("a", Present), ("b", Absent)]),
                false,
                RemoveReferences(vec!["b".into()]),
            ),
            (
                "one alive, one waiting: stop blocking it",
                o(&[("a", WaitingForDependentsDeletion), ("b", Present)]),
                false,
                RemoveReferences(vec!["a".into()]),
            ),
            ("owner waiting, leaf dependent", o(&[("a", WaitingForDependentsDeletion)]), false, Delete(Background)),
            ("owner waiting, dependent with dependents", o(&[("a", WaitingForDependentsDeletion)]), true, Delete(Foreground)),
            ("waiting and gone, with dependents", o(&[("a", WaitingForDependentsDeletion), ("b", Absent)]), true, Delete(Foreground)),
        ];
        for (name, owners, has_dependents, want) in cases {
            assert_eq!(decide(&owners, has_dependents), want, "{name}");
        }
    }

    #[test]
    fn only_blocking_references_hold_up_an_owner() {
        let r = |uid: &str, block: Option<bool>| OwnerReference { uid: uid.into(), block_owner_deletion: block, ..Default::default() };
        let dep = |refs: Vec<OwnerReference>| ObjectMeta { owner_references: Some(refs), ..Default::default() };
        let cases = [
            ("blocking", dep(vec![r("o", Some(true))]), true),
            ("explicitly not blocking", dep(vec![r("o", Some(false))]), false),
            ("unset means not blocking", dep(vec![r("o", None)]), false),
            ("blocks another owner", dep(vec![r("x", Some(true))]), false),
            ("no references", ObjectMeta::default(), false),
        ];
        for (name, meta, want) in cases {
            assert_eq!(blocks_owner(&meta, "o"), want, "{name}");
        }
    }

    #[test]
    fn only_deleting_objects_with_collector_finalizers_await_it() {
        let cases = [
            (meta("u", false, &[ORPHAN]), false),
            (meta("u", true, &[]), false),
            (meta("u", true, &["example.com/other"]), false),
            (meta("u", true, &[ORPHAN]), true),
            (meta("u", true, &[FOREGROUND_DELETION]), true),
        ];
        for (m, want) in cases {
            assert_eq!(awaits_collector(&m), want, "{m:?}");
        }
    }

    #[test]
    fn keys_name_the_resource_then_the_cache_key() {
        let meta = ObjectMeta { name: Some("web-1".into()), namespace: Some("shop".into()), ..Default::default() };
        assert_eq!(gc_key("pods", &meta), "pods/shop/web-1");
        assert!(watched_info("replicasets").is_some_and(|i| i.group == "apps"));
        assert!(watched_info("configmaps").is_none(), "not watched");
    }
}
