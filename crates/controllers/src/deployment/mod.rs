//! The Deployment controller (upstream `pkg/controller/deployment`).
//!
//! A Deployment manages pods through ReplicaSets: one per distinct pod
//! template, named by the template's hash (see [`hash`]). The ReplicaSet
//! whose template equals the Deployment's is the *new* one; all others are
//! *old*. Each sync does one of:
//!
//! - **scale** (`spec.replicas` changed, or the Deployment is paused): give
//!   the change to the one active ReplicaSet, or share it proportionally
//!   among several ([`scaling`]);
//! - **roll** (`RollingUpdate`, the default): grow the new ReplicaSet
//!   within maxSurge, shrink old ones within maxUnavailable ([`rolling`]);
//! - **recreate** (`Recreate`): scale every old ReplicaSet to zero, wait
//!   until their pods are gone, then create and scale up the new one;
//!
//! then prunes ReplicaSets beyond `revisionHistoryLimit` once a rollout is
//! complete, and writes the status and conditions ([`status`]) that
//! `kubectl rollout status` reads.
//!
//! Unlike the ReplicaSet controller it needs no expectations: its writes
//! are updates of ReplicaSets it read from the cache with their
//! resourceVersion, so acting on a stale copy fails with 409 Conflict and
//! is retried; and creating a ReplicaSet twice fails on its fixed name.
//!
//! [`reconcile`] is idempotent and level-triggered: it looks only at the
//! Deployment and ReplicaSets as they are now.

pub mod hash;
pub mod rolling;
pub mod scaling;
pub mod status;
pub mod util;

use std::sync::Arc;

use api::labels::Selector;
use client::events::{EventType, Recorder};
use client::informer::Change;
use client::workqueue::WorkQueue;
use client::{Api, Client};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;

use crate::informers::{Caches, EventHandler};
use crate::podutil;
use crate::refmanager::{self, Claim};
use crate::runtime::{default_error_policy, Action};
use crate::Error;
use rolling::{Counts, RollingStep};
use util::desired;

/// The component name on this controller's events.
pub const COMPONENT: &str = "deployment-controller";

/// Everything [`reconcile`] needs besides the Deployment itself.
pub struct Context {
    pub client: Client,
    pub caches: Caches,
    pub queue: WorkQueue<String>,
    pub recorder: Recorder,
}

impl Context {
    pub fn new(client: Client, caches: Caches) -> Arc<Self> {
        Arc::new(Context { recorder: Recorder::new(client.clone(), COMPONENT, None), client, caches, queue: WorkQueue::new() })
    }

    /// Finds a Deployment in the cache by key, for the worker loop.
    pub fn lookup(&self, key: &str) -> Option<Arc<Deployment>> {
        self.caches.deployments.get(key)
    }

    /// The Deployment a ReplicaSet's controller reference names, if cached
    /// with the same uid.
    fn owner_of(&self, rs: &ReplicaSet) -> Option<Arc<Deployment>> {
        let r = refmanager::controller_of(&rs.metadata).filter(|r| r.kind == "Deployment")?;
        let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
        self.caches.deployments.get(&format!("{ns}/{}", r.name)).filter(|d| d.metadata.uid.as_ref() == Some(&r.uid))
    }

    fn enqueue(&self, d: &Deployment) {
        self.queue.add(podutil::key(&d.metadata));
    }

    /// Deployments whose selector matches an orphan ReplicaSet.
    fn enqueue_matching(&self, rs: &ReplicaSet) {
        let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
        for d in self.caches.deployments.select(ns, &Selector::everything()) {
            let sel = d.spec.as_ref().map(|s| Selector::from_label_selector(&s.selector));
            if let Some(Ok(sel)) = sel {
                if !sel.is_empty() && sel.matches_opt(rs.metadata.labels.as_ref()) {
                    self.enqueue(&d);
                }
            }
        }
    }
}

impl EventHandler for Context {
    fn on_deployment(&self, change: &Change<Deployment>) {
        if let Change::Applied { new, .. } = change {
            self.enqueue(new);
        }
    }

    fn on_replicaset(&self, change: &Change<ReplicaSet>) {
        match change {
            Change::Applied { old, new } => {
                if let Some(old) = old {
                    if refmanager::controller_of(&old.metadata) != refmanager::controller_of(&new.metadata) {
                        if let Some(d) = self.owner_of(old) {
                            self.enqueue(&d);
                        }
                    }
                }
                match self.owner_of(new) {
                    Some(d) => self.enqueue(&d),
                    None if refmanager::controller_of(&new.metadata).is_none() => self.enqueue_matching(new),
                    None => {}
                }
            }
            Change::Deleted(rs) => {
                if let Some(d) = self.owner_of(rs) {
                    self.enqueue(&d);
                }
            }
        }
    }

    /// A Recreate rollout waits for the old pods to be gone, so their
    /// deletion is worth a look.
    fn on_pod(&self, change: &Change<Pod>) {
        let Change::Deleted(pod) = change else { return };
        let Some(r) = refmanager::controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else { return };
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let Some(rs) = self.caches.replicasets.get(&format!("{ns}/{}", r.name)) else { return };
        if let Some(d) = self.owner_of(&rs) {
            if !rolling::is_rolling_update(&d) {
                self.enqueue(&d);
            }
        }
    }
}

/// Brings one Deployment's ReplicaSets and status in line with its spec.
/// Idempotent and level-triggered: see the module docs.
pub async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let mut sync = Sync {
        ctx: &ctx,
        d: (*d).clone(),
        deployments: Api::namespaced(ctx.client.clone(), &ns),
        replicasets: Api::namespaced(ctx.client.clone(), &ns),
    };
    sync.run().await
}

/// The error policy: retry with back-off.
pub fn error_policy(d: Arc<Deployment>, err: &Error, _ctx: Arc<Context>) -> Action {
    default_error_policy("deployment", &podutil::key(&d.metadata), err)
}

/// One sync of one Deployment. `d` is always the latest copy the
/// api-server returned, so each write carries a current resourceVersion.
struct Sync<'a> {
    ctx: &'a Context,
    d: Deployment,
    deployments: Api<Deployment>,
    replicasets: Api<ReplicaSet>,
}

impl Sync<'_> {
    fn key(&self) -> String {
        podutil::key(&self.d.metadata)
    }

    fn name(&self) -> &str {
        self.d.metadata.name.as_deref().unwrap_or_default()
    }

    async fn run(&mut self) -> Result<Action, Error> {
        let spec = self.d.spec.clone().unwrap_or_default();
        let selector = Selector::from_label_selector(&spec.selector).map_err(|reason| Error::Invalid { key: self.key(), reason })?;
        if selector.is_empty() {
            // Upstream refuses to act on a Deployment that would select
            // every pod in the namespace, and says so.
            let msg = "This deployment is selecting all pods. A non-empty selector is required.";
            self.ctx.recorder.record(&self.d, EventType::Warning, "SelectingAll", msg).await;
            let mut st = self.d.status.clone().unwrap_or_default();
            if st.observed_generation < self.d.metadata.generation {
                st.observed_generation = self.d.metadata.generation;
                self.write_status(st).await?;
            }
            return Ok(Action::await_change());
        }
        let rs_list = self.claim_replicasets(&selector).await?;

        if self.d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only(rs_list).await;
        }
        if let Some(cond) = status::paused_condition(&self.d, jiff::Timestamp::now()) {
            let mut st = self.d.status.clone().unwrap_or_default();
            status::set_condition(&mut st, cond);
            self.write_status(st).await?;
            // The status write wakes us again, with a fresh copy.
            return Ok(Action::await_change());
        }
        if spec.paused == Some(true) || scaling::is_scaling_event(&self.d, &rs_list) {
            return self.sync(rs_list).await;
        }
        if rolling::is_rolling_update(&self.d) {
            self.rollout_rolling(rs_list).await
        } else {
            self.rollout_recreate(rs_list).await
        }
    }

    async fn write_status(&mut self, st: DeploymentStatus) -> Result<(), Error> {
        self.d.status = Some(st);
        self.d = self
            .deployments
            .replace_status(&self.d)
            .await
            .map_err(|e| Error::api(format!("update status of Deployment {}", self.key()), e))?;
        Ok(())
    }

    /// Sets one condition and writes the status.
    async fn write_condition(&mut self, cond: DeploymentCondition) -> Result<(), Error> {
        let mut st = self.d.status.clone().unwrap_or_default();
        status::set_condition(&mut st, cond);
        self.write_status(st).await
    }

    /// Copies the new ReplicaSet's revision onto the Deployment. The
    /// annotation is metadata, so this is a `replace`, not a status write.
    async fn sync_revision(&mut self, revision: &str) -> Result<(), Error> {
        if util::set_deployment_revision(&mut self.d, revision) {
            self.d = self
                .deployments
                .replace(&self.d)
                .await
                .map_err(|e| Error::api(format!("update revision of Deployment {}", self.key()), e))?;
        }
        Ok(())
    }

    /// The ReplicaSets this Deployment owns after adopting matching orphans
    /// and releasing owned ones that no longer match.
    async fn claim_replicasets(&mut self, selector: &Selector) -> Result<Vec<Arc<ReplicaSet>>, Error> {
        let ns = self.d.metadata.namespace.clone().unwrap_or_default();
        let deleting = self.d.metadata.deletion_timestamp.is_some();
        let mut owned = Vec::new();
        let mut can_adopt = None;
        for rs in self.ctx.caches.replicasets.select(&ns, &Selector::everything()) {
            let matches = selector.matches_opt(rs.metadata.labels.as_ref());
            match refmanager::claim(&rs.metadata, &self.d.metadata, matches, deleting) {
                Claim::Owned => owned.push(rs),
                Claim::Ignore => {}
                Claim::Adopt => {
                    if can_adopt.is_none() {
                        let live = self
                            .deployments
                            .get_opt(self.name())
                            .await
                            .map_err(|e| Error::api(format!("get Deployment {}", self.key()), e))?;
                        can_adopt =
                            Some(live.is_some_and(|l| l.metadata.uid == self.d.metadata.uid && l.metadata.deletion_timestamp.is_none()));
                    }
                    if can_adopt != Some(true) {
                        continue;
                    }
                    let adopted = refmanager::with_controller_ref::<Deployment, _>(&*rs, &self.d.metadata);
                    match self.replicasets.replace(&adopted).await {
                        Ok(rs) => owned.push(Arc::new(rs)),
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(Error::api(format!("adopt ReplicaSet {}", podutil::key(&rs.metadata)), e)),
                    }
                }
                Claim::Release => {
                    let released = refmanager::without_owner(&*rs, &self.d.metadata);
                    match self.replicasets.replace(&released).await {
                        Ok(_) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(Error::api(format!("release ReplicaSet {}", podutil::key(&rs.metadata)), e)),
                    }
                }
            }
        }
        Ok(owned)
    }

    /// Splits the ReplicaSets into the new one and the old ones, bringing
    /// the new one's annotations and the Deployment's revision up to date;
    /// creates the new one if `create` and it does not exist (upstream
    /// `getAllReplicaSetsAndSyncRevision`).
    async fn new_and_old(
        &mut self,
        rs_list: &[Arc<ReplicaSet>],
        create: bool,
    ) -> Result<(Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>), Error> {
        let spec = self.d.spec.clone().unwrap_or_default();
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = hash::pod_template_hash(&spec.template, collision_count)?;
        let existing = util::find_new_replicaset(&self.d, rs_list, &hash);
        let old: Vec<Arc<ReplicaSet>> =
            rs_list.iter().filter(|rs| existing.as_ref().is_none_or(|n| n.metadata.uid != rs.metadata.uid)).cloned().collect();
        let new_revision = util::max_revision(&old) + 1;

        if let Some(rs) = existing {
            let mut copy = (*rs).clone();
            let annotations_changed = util::set_new_replicaset_annotations(&self.d, &mut copy, new_revision, true);
            let rs_spec = copy.spec.get_or_insert_with(Default::default);
            let min_ready_changed = rs_spec.min_ready_seconds != spec.min_ready_seconds;
            if annotations_changed || min_ready_changed {
                rs_spec.min_ready_seconds = spec.min_ready_seconds;
                let updated = self
                    .replicasets
                    .replace(&copy)
                    .await
                    .map_err(|e| Error::api(format!("update ReplicaSet {}", podutil::key(&copy.metadata)), e))?;
                // The Deployment's revision follows on the next sync, which
                // this update triggers.
                return Ok((Some(Arc::new(updated)), old));
            }
            self.sync_revision(&util::revision(&copy.metadata).to_string()).await?;
            let has_progressing = self.d.status.as_ref().and_then(|s| status::get_condition(s, status::PROGRESSING)).is_some();
            if status::progress_deadline(&self.d).is_some() && !has_progressing {
                let msg = format!("Found new replica set \"{}\"", copy.metadata.name.as_deref().unwrap_or_default());
                let cond = status::condition(status::PROGRESSING, "True", status::FOUND_NEW_REPLICASET, msg, jiff::Timestamp::now());
                self.write_condition(cond).await?;
            }
            return Ok((Some(rs), old));
        }
        if !create {
            return Ok((None, old));
        }

        let replicas = if rolling::is_rolling_update(&self.d) {
            let total: i32 = old.iter().map(|rs| util::rs_replicas(rs)).sum();
            rolling::new_rs_new_replicas(desired(&self.d), rolling::max_surge(&self.d), total, 0)
        } else {
            desired(&self.d)
        };
        let new_rs = util::new_replicaset(&self.d, &hash, new_revision, replicas);
        let rs_name = new_rs.metadata.name.clone().unwrap_or_default();
        let (created, already_existed) = match self.replicasets.create(&new_rs).await {
            Ok(rs) => (rs, false),
            Err(e) if e.is_already_exists() => {
                // Ours with the same template (our cache was behind)? Use
                // it. Anything else is a hash collision.
                let live = self.replicasets.get_opt(&rs_name).await.map_err(|e| Error::api(format!("get ReplicaSet {rs_name}"), e))?;
                let ours = live.filter(|rs| {
                    refmanager::controller_of(&rs.metadata).map(|r| &r.uid) == self.d.metadata.uid.as_ref()
                        && rs.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| util::equal_ignore_hash(t, &spec.template))
                });
                match ours {
                    Some(rs) => (rs, true),
                    None => {
                        let mut st = self.d.status.clone().unwrap_or_default();
                        let count = st.collision_count.unwrap_or(0) + 1;
                        st.collision_count = Some(count);
                        self.write_status(st).await?;
                        return Err(Error::HashCollision { name: rs_name, collision_count: count });
                    }
                }
            }
            Err(e) => {
                let msg = format!("Failed to create new replica set \"{rs_name}\": {e}");
                self.ctx.recorder.record(&self.d, EventType::Warning, "FailedCreate", &msg).await;
                if status::progress_deadline(&self.d).is_some() {
                    let cond =
                        status::condition(status::PROGRESSING, "False", status::REPLICASET_CREATE_ERROR, msg, jiff::Timestamp::now());
                    self.write_condition(cond).await?;
                }
                return Err(Error::api(format!("create ReplicaSet {rs_name}"), e));
            }
        };
        if !already_existed && replicas > 0 {
            let msg = format!("Scaled up replica set {rs_name} to {replicas} from 0");
            self.ctx.recorder.record(&self.d, EventType::Normal, "ScalingReplicaSet", &msg).await;
        }
        self.sync_revision(&new_revision.to_string()).await?;
        if !already_existed && status::progress_deadline(&self.d).is_some() {
            let msg = format!("Created new replica set \"{rs_name}\"");
            let cond = status::condition(status::PROGRESSING, "True", status::NEW_REPLICASET_CREATED, msg, jiff::Timestamp::now());
            self.write_condition(cond).await?;
        }
        Ok((Some(Arc::new(created)), old))
    }

    /// Sets a ReplicaSet's size (and the replica annotations); records a
    /// `ScalingReplicaSet` event when the size changed. Returns whether it
    /// did, and the ReplicaSet as now stored.
    async fn scale(&self, rs: &Arc<ReplicaSet>, to: i32) -> Result<(bool, Arc<ReplicaSet>), Error> {
        let want = desired(&self.d);
        let max = want + rolling::max_surge(&self.d);
        let from = util::rs_replicas(rs);
        if from == to && !util::replicas_annotations_need_update(rs, want, max) {
            return Ok((false, rs.clone()));
        }
        let mut copy = (**rs).clone();
        copy.spec.get_or_insert_with(Default::default).replicas = Some(to);
        util::set_replicas_annotations(&mut copy, want, max);
        let name = copy.metadata.name.clone().unwrap_or_default();
        let updated = self.replicasets.replace(&copy).await.map_err(|e| Error::api(format!("scale ReplicaSet {name}"), e))?;
        if from != to {
            let op = if to > from { "up" } else { "down" };
            let msg = format!("Scaled {op} replica set {name} to {to} from {from}");
            self.ctx.recorder.record(&self.d, EventType::Normal, "ScalingReplicaSet", &msg).await;
        }
        Ok((from != to, Arc::new(updated)))
    }

    /// [`Sync::scale`] only when the size differs (upstream
    /// `scaleReplicaSetAndRecordEvent`).
    async fn scale_if_needed(&self, rs: &Arc<ReplicaSet>, to: i32) -> Result<(bool, Arc<ReplicaSet>), Error> {
        if util::rs_replicas(rs) == to {
            return Ok((false, rs.clone()));
        }
        self.scale(rs, to).await
    }

    /// One step of a rolling update, then the status.
    async fn rollout_rolling(&mut self, rs_list: Vec<Arc<ReplicaSet>>) -> Result<Action, Error> {
        let (new, mut old) = self.new_and_old(&rs_list, true).await?;
        let Some(mut new) = new else { return Ok(Action::await_change()) };
        util::sort_by_creation(&mut old);
        let counts = |rs: &ReplicaSet| Counts { replicas: util::rs_replicas(rs), available: util::rs_available(rs) };
        // Only old ReplicaSets that still have replicas take part.
        let active: Vec<usize> = (0..old.len()).filter(|&i| util::rs_replicas(&old[i]) > 0).collect();
        let old_counts: Vec<Counts> = active.iter().map(|&i| counts(&old[i])).collect();
        let step = rolling::rolling_step(
            desired(&self.d),
            rolling::max_surge(&self.d),
            rolling::max_unavailable(&self.d),
            counts(&new),
            &old_counts,
        );
        match step {
            RollingStep::ScaleNew(to) => new = self.scale_if_needed(&new, to).await?.1,
            RollingStep::ScaleOld(targets) => {
                for (&i, to) in active.iter().zip(targets) {
                    old[i] = self.scale_if_needed(&old[i], to).await?.1;
                }
            }
            RollingStep::Wait => {
                let st = self.d.status.clone().unwrap_or_default();
                if status::deployment_complete(&self.d, &st) {
                    self.cleanup(&old).await?;
                }
            }
        }
        self.sync_rollout_status(old, Some(new)).await
    }

    /// Recreate: old ReplicaSets to zero, wait for their pods to go, then
    /// the new ReplicaSet to full size.
    async fn rollout_recreate(&mut self, rs_list: Vec<Arc<ReplicaSet>>) -> Result<Action, Error> {
        let (new, mut old) = self.new_and_old(&rs_list, false).await?;
        let mut scaled_down = false;
        for rs in old.iter_mut() {
            if util::rs_replicas(rs) > 0 {
                let (scaled, updated) = self.scale_if_needed(rs, 0).await?;
                scaled_down |= scaled;
                *rs = updated;
            }
        }
        if scaled_down || self.old_pods_running(new.as_ref(), &old) {
            return self.sync_rollout_status(old, new).await;
        }
        let (new, old) = match new {
            Some(n) => (Some(n), old),
            None => self.new_and_old(&rs_list, true).await?,
        };
        let new = match new {
            Some(n) => Some(self.scale_if_needed(&n, desired(&self.d)).await?.1),
            None => None,
        };
        let st = self.d.status.clone().unwrap_or_default();
        if status::deployment_complete(&self.d, &st) {
            self.cleanup(&old).await?;
        }
        self.sync_rollout_status(old, new).await
    }

    /// Whether any pod of an old ReplicaSet may still be running: its
    /// status still counts pods, or a pod (even a terminating one) that is
    /// not Succeeded or Failed remains in the cache.
    fn old_pods_running(&self, new: Option<&Arc<ReplicaSet>>, old: &[Arc<ReplicaSet>]) -> bool {
        if old.iter().map(|rs| util::rs_status_replicas(rs)).sum::<i32>() > 0 {
            return true;
        }
        let old_uids: Vec<&String> = old.iter().filter_map(|rs| rs.metadata.uid.as_ref()).collect();
        let new_uid = new.and_then(|rs| rs.metadata.uid.as_ref());
        let ns = self.d.metadata.namespace.as_deref().unwrap_or_default();
        self.ctx.caches.pods.select(ns, &Selector::everything()).iter().any(|pod| {
            let Some(r) = refmanager::controller_of(&pod.metadata) else { return false };
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default();
            Some(&r.uid) != new_uid && old_uids.contains(&&r.uid) && phase != "Succeeded" && phase != "Failed"
        })
    }

    /// Scaling without a rollout, for a scaled or paused Deployment
    /// (upstream `sync`).
    async fn sync(&mut self, rs_list: Vec<Arc<ReplicaSet>>) -> Result<Action, Error> {
        let (new, mut old) = self.new_and_old(&rs_list, false).await?;
        let mut new = new;
        let want = desired(&self.d);
        if let Some(target) = scaling::find_active_or_latest(new.as_ref(), &old) {
            if util::rs_replicas(&target) != want {
                let (_, updated) = self.scale_if_needed(&target, want).await?;
                replace_by_uid(&mut new, &mut old, updated);
            }
        } else if scaling::is_saturated(&self.d, new.as_ref()) {
            for rs in old.iter_mut() {
                if util::rs_replicas(rs) > 0 {
                    *rs = self.scale_if_needed(rs, 0).await?.1;
                }
            }
        } else if rolling::is_rolling_update(&self.d) {
            let mut all = old.clone();
            all.extend(new.clone());
            let active = util::active(&all);
            let sizes = scaling::proportional_sizes(&self.d, &active);
            for (rs, size) in active.iter().zip(sizes) {
                let (_, updated) = self.scale(rs, size).await?;
                replace_by_uid(&mut new, &mut old, updated);
            }
        }
        if self.d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            self.cleanup(&old).await?;
        }
        self.sync_status_only_with(old, new).await
    }

    /// Writes counts and `Available` without estimating progress.
    async fn sync_status_only(&mut self, rs_list: Vec<Arc<ReplicaSet>>) -> Result<Action, Error> {
        let (new, old) = self.new_and_old(&rs_list, false).await?;
        self.sync_status_only_with(old, new).await
    }

    async fn sync_status_only_with(&mut self, old: Vec<Arc<ReplicaSet>>, new: Option<Arc<ReplicaSet>>) -> Result<Action, Error> {
        let mut all = old;
        all.extend(new.clone());
        let st = status::calculate_status(&self.d, &all, new.as_ref(), jiff::Timestamp::now());
        if self.d.status.as_ref() != Some(&st) {
            self.write_status(st).await?;
        }
        Ok(Action::await_change())
    }

    /// Writes the status with the `Progressing` estimate; if nothing
    /// changed and the rollout is unfinished, asks to be woken when its
    /// progress deadline passes.
    async fn sync_rollout_status(&mut self, old: Vec<Arc<ReplicaSet>>, new: Option<Arc<ReplicaSet>>) -> Result<Action, Error> {
        let mut all = old;
        all.extend(new.clone());
        let now = jiff::Timestamp::now();
        let st = status::rollout_status(&self.d, &all, new.as_ref(), now);
        if self.d.status.as_ref() == Some(&st) {
            return Ok(match status::requeue_stuck_after(&self.d, &st, now) {
                Some(after) => Action::requeue(after),
                None => Action::await_change(),
            });
        }
        self.write_status(st).await?;
        Ok(Action::await_change())
    }

    /// Deletes the oldest old ReplicaSets beyond `revisionHistoryLimit`
    /// (default 10), only those fully scaled down and settled.
    async fn cleanup(&self, old: &[Arc<ReplicaSet>]) -> Result<(), Error> {
        let limit = self.d.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10).max(0) as usize;
        let mut cleanable: Vec<&Arc<ReplicaSet>> = old.iter().filter(|rs| rs.metadata.deletion_timestamp.is_none()).collect();
        if cleanable.len() <= limit {
            return Ok(());
        }
        let excess = cleanable.len() - limit;
        cleanable.sort_by_key(|rs| (util::revision(&rs.metadata), rs.metadata.creation_timestamp.as_ref().map(|t| t.0)));
        for rs in cleanable.into_iter().take(excess) {
            let settled = rs.status.as_ref().and_then(|s| s.observed_generation) >= rs.metadata.generation;
            if util::rs_status_replicas(rs) != 0 || util::rs_replicas(rs) != 0 || !settled {
                continue;
            }
            let name = rs.metadata.name.as_deref().unwrap_or_default();
            tracing::debug!(deployment = %self.key(), replicaset = name, "cleaning up old ReplicaSet");
            match self.replicasets.delete(name).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(Error::api(format!("delete old ReplicaSet {name}"), e)),
            }
        }
        Ok(())
    }
}

/// Puts an updated ReplicaSet in place of its older copy.
fn replace_by_uid(new: &mut Option<Arc<ReplicaSet>>, old: &mut [Arc<ReplicaSet>], updated: Arc<ReplicaSet>) {
    if let Some(n) = new.as_mut().filter(|n| n.metadata.uid == updated.metadata.uid) {
        *n = updated;
        return;
    }
    if let Some(o) = old.iter_mut().find(|o| o.metadata.uid == updated.metadata.uid) {
        *o = updated;
    }
}
