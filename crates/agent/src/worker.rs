//! Pod workers: one task per pod that makes what runs match what the pod
//! asks for.
//!
//! The kubelet's `podWorkers` give every pod its own goroutine, so a slow
//! pod (a container with a long grace period) never holds up the others.
//! Each worker runs `syncPod` whenever the pod changes or one of its
//! containers does, and on a timer while a container waits out its
//! back-off. A sync is level-based: it looks at the pod and at the runtime
//! as they are now, never at what woke it, so running it twice is harmless.
//!
//! One sync:
//! 1. A pod with a `deletionTimestamp` is *terminating*: stop every
//!    container (SIGTERM, the pod's grace period, SIGKILL), write the final
//!    status, and delete the pod object with grace period 0, which is how
//!    the kubelet tells the api-server it is really gone.
//! 2. Otherwise each container is checked against the runtime: running is
//!    fine; never started means start it; exited means restart it if the
//!    restart policy says so and the back-off allows, else report
//!    `CrashLoopBackOff` and wake when the back-off ends.
//!    A running container whose liveness (or startup) probe failed is
//!    killed first, with the probe's grace period, and then restarted like
//!    any container that exited.
//! 3. The probes' verdicts (see `prober`) are folded in as each
//!    container's `started` and `ready`, the pod status is computed (see
//!    `status`) and written if it changed. A probe result that changes
//!    wakes the worker as a container event does.
//!
//! Before any container, the pod's *sandbox* must run (CRI's
//! `RunPodSandbox`): it holds the pod's network namespace and IP, which
//! every container joins. A sandbox that died is replaced, as the kubelet
//! does ("Pod sandbox changed, it will be killed and re-created"): the
//! pod's containers are stopped and started again in the new one.
//!
//! Before each container start, its image is made present as its
//! `imagePullPolicy` says (see [`crate::images`]).
//!
//! A pod that vanishes from the watch without passing through termination
//! (a forced delete) only has its containers and sandbox removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use client::events::{EventType, Recorder};
use client::{Api, Client};
use k8s_openapi::api::core::v1::{Container, ContainerStateTerminated, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::{go_duration, Backoff};
use crate::env;
use crate::images::ImageManager;
use crate::lifecycle;
use crate::pods::{log_path, pod_dir, pod_ref};
use crate::prober::{self, runner::ContainerProber, ContainerNow, PodIp};
use crate::runtime::{
    ContainerConfig, ContainerState, ContainerStatus, PortMapping, Resources, Runtime, RuntimeError, SandboxConfig, SandboxState,
    SandboxStatus, Security,
};
use crate::status::{self, ContainerView, Current};

/// The kubelet never gives a container less than this to stop when a pod
/// is deleted (upstream's `minimumGracePeriodInSeconds`).
const MINIMUM_GRACE: Duration = Duration::from_secs(2);
/// The pod's `terminationGracePeriodSeconds` when unset.
const DEFAULT_GRACE_SECONDS: i64 = 30;
/// How often the contents of ConfigMap, Secret and downward API volumes
/// are brought up to date (the kubelet's sync period is 1 min; a learning
/// cluster answers faster).
const VOLUME_RESYNC: Duration = Duration::from_secs(5);
/// How soon to retry a failed api-server write.
const RETRY: Duration = Duration::from_secs(1);

/// What every pod worker shares.
pub struct Context {
    pub client: Client,
    pub runtime: Arc<dyn Runtime>,
    pub recorder: Recorder,
    pub node_address: String,
    pub data_dir: PathBuf,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// The node's memory, in bytes: the scale of the OOM score adjustment
    /// of Burstable containers.
    pub memory_capacity: i64,
}

/// The grace period to stop a pod's containers with: the deletion's, else
/// the pod's own.
pub fn grace_period(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// Whether a container that exited with `exit_code` runs again.
pub fn should_restart(restart_policy: &str, exit_code: i32) -> bool {
    match restart_policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// The pod status's view of a finished runtime container.
fn terminated_from(s: &ContainerStatus) -> ContainerStateTerminated {
    ContainerStateTerminated {
        container_id: Some(s.container_id()),
        exit_code: s.exit_code.unwrap_or(137),
        reason: Some(s.reason.clone()).filter(|r| !r.is_empty()),
        message: Some(s.message.clone()).filter(|m| !m.is_empty()),
        started_at: s.started_at.map(Time),
        finished_at: s.finished_at.map(Time),
        ..Default::default()
    }
}

/// The worker's memory of one container across syncs.
#[derive(Debug, Default)]
struct Record {
    /// The attempt number of the latest run (the status's restartCount).
    restart_count: i32,
    /// The runtime id of the latest run, while the runtime knows it.
    instance: Option<String>,
    /// How the latest run ended, when the runtime no longer knows it
    /// (learned from the pod status after an agent restart).
    ended: Option<ContainerStateTerminated>,
    /// How the run before the latest one ended.
    last_terminated: Option<ContainerStateTerminated>,
    /// When the worker first saw the latest run exit: the back-off clock.
    exit_seen: Option<Instant>,
    /// Why the container cannot be created, when it cannot.
    create_error: Option<(String, String)>,
    /// The BackOff event for the latest exit has been recorded.
    backoff_reported: bool,
    /// The runtime's reference of the image the latest run uses.
    image_id: String,
}

impl Record {
    fn has_run(&self) -> bool {
        self.instance.is_some() || self.ended.is_some()
    }
}

/// What a sync tells the worker loop.
enum Outcome {
    /// Sync again on the next change, or at this instant.
    Wait(Option<Instant>),
    /// The pod is gone: the worker ends.
    Done,
}

/// One pod's worker.
pub struct PodWorker {
    ctx: Arc<Context>,
    records: HashMap<String, Record>,
    backoff: Backoff,
    seeded: bool,
    /// The status we last wrote and the resourceVersion the write
    /// produced, so an informer that has not caught up yet does not make
    /// us write the same status again.
    last_written: Option<(u64, PodStatus)>,
    /// The pod's probe workers and their verdicts.
    prober: prober::Manager,
    /// The pod's sandbox, once it runs.
    sandbox: Option<SandboxStatus>,
    /// The highest sandbox attempt seen: a replacement gets the next.
    sandbox_attempt: Option<i32>,
    pod_ip: PodIp,
    images: ImageManager,
    /// After a failed sandbox start, no new try before this.
    sandbox_retry_at: Option<Instant>,
    /// The pod's volumes as last set up, and when to set them up again
    /// (ConfigMap, Secret and downward API contents follow their sources).
    volumes: Option<crate::volumes::PodVolumes>,
    volumes_due: Option<Instant>,
}

fn rv(pod: &Pod) -> u64 {
    pod.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl PodWorker {
    pub fn new(ctx: Arc<Context>) -> Self {
        let backoff = Backoff::new(ctx.backoff_base, ctx.backoff_cap);
        let images = ImageManager::new(ctx.backoff_base, ctx.backoff_cap);
        // No IP until the sandbox runs.
        let pod_ip = PodIp::default();
        PodWorker {
            ctx,
            records: HashMap::new(),
            backoff,
            seeded: false,
            last_written: None,
            prober: prober::Manager::new(),
            sandbox: None,
            sandbox_attempt: None,
            pod_ip,
            images,
            sandbox_retry_at: None,
            volumes: None,
            volumes_due: None,
        }
    }

    /// Runs until the pod is gone or `cancel` fires. `pods` carries the
    /// latest version of the pod, `None` once it left the watch; a change
    /// notification with the same value means "a container changed".
    pub async fn run(mut self, mut pods: watch::Receiver<Option<Arc<Pod>>>, cancel: CancellationToken) {
        let mut last_pod: Option<Arc<Pod>> = None;
        loop {
            let current = pods.borrow_and_update().clone();
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return,
                outcome = async {
                    match &current {
                        Some(pod) => self.sync(pod).await,
                        None => {
                            if let Some(pod) = &last_pod {
                                self.stop_all(pod, grace_period(pod)).await;
                                self.remove_all().await;
                                remove_dir(&pod_dir(&self.ctx.data_dir, &pod_ref(pod)));
                            }
                            Outcome::Done
                        }
                    }
                } => outcome,
            };
            if current.is_some() {
                last_pod = current;
            }
            let wake = match outcome {
                Outcome::Done => return,
                Outcome::Wait(wake) => wake,
            };
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = pods.changed() => if changed.is_err() { return },
                _ = sleep => {}
                _ = self.prober.changed() => {}
            }
        }
    }

    /// Learns, once, what already exists: containers the runtime adopted
    /// after an agent restart, and restart counts and last states from the
    /// pod status, so counts keep growing and logs are not overwritten.
    async fn seed(&mut self, pod: &Pod) {
        self.seeded = true;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        // The sandbox a previous agent left: the latest ready one is
        // adopted, any other is removed.
        let mut sandboxes: Vec<SandboxStatus> =
            self.ctx.runtime.list_pod_sandboxes().await.into_iter().filter(|s| s.pod.uid == uid).collect();
        sandboxes.sort_by_key(|s| s.attempt);
        self.sandbox_attempt = sandboxes.last().map(|s| s.attempt);
        if let Some(latest) = sandboxes.pop().filter(|s| s.state == SandboxState::Ready) {
            self.pod_ip.set(latest.ip.as_deref().unwrap_or(&self.ctx.node_address));
            self.sandbox = Some(latest);
        }
        for stale in sandboxes {
            let _ = self.ctx.runtime.remove_pod_sandbox(&stale.id).await;
        }
        for c in self.ctx.runtime.list_containers().await.into_iter().filter(|c| c.pod.uid == uid) {
            let rec = self.records.entry(c.name.clone()).or_default();
            if rec.instance.is_none() || c.attempt >= rec.restart_count {
                rec.restart_count = c.attempt;
                rec.instance = Some(c.id.clone());
            }
        }
        let statuses: Vec<_> = pod
            .status
            .as_ref()
            .map(|s| s.init_container_statuses.iter().flatten().chain(s.container_statuses.iter().flatten()).cloned().collect())
            .unwrap_or_default();
        for s in statuses {
            let rec = self.records.entry(s.name.clone()).or_default();
            let state = s.state.clone().unwrap_or_default();
            let last = s.last_state.as_ref().and_then(|l| l.terminated.clone());
            if rec.instance.is_some() {
                rec.last_terminated = last;
                continue;
            }
            rec.restart_count = rec.restart_count.max(s.restart_count);
            if let Some(t) = state.terminated {
                rec.ended = Some(t);
                rec.last_terminated = last;
            } else if state.running.is_some() {
                // It was running when the previous agent lost sight of it.
                rec.ended = Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("ContainerStatusUnknown".into()),
                    message: Some("The container could not be located when the agent restarted".into()),
                    started_at: state.running.and_then(|r| r.started_at),
                    ..Default::default()
                });
                rec.last_terminated = last;
            } else if last.is_some() {
                // It was waiting out a back-off after its latest run.
                rec.ended = last;
            }
        }
    }

    async fn sync(&mut self, pod: &Arc<Pod>) -> Outcome {
        if !self.seeded {
            self.seed(pod).await;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            self.prober.stop_liveness_and_startup();
            return self.terminate(pod).await;
        }
        let spec = pod.spec.clone().unwrap_or_default();
        if let Some(at) = self.sandbox_retry_at.filter(|at| *at > Instant::now()) {
            return Outcome::Wait(Some(at));
        }
        if let Err(message) = self.ensure_sandbox(pod).await {
            self.sandbox_retry_at = Some(Instant::now() + self.ctx.backoff_base);
            tracing::warn!(pod = ?pod.metadata.name, error = %message, "cannot run the pod sandbox");
            self.ctx
                .recorder
                .record(pod.as_ref(), EventType::Warning, "FailedCreatePodSandBox", &format!("Failed to create pod sandbox: {message}"))
                .await;
            let waiting = |list: &[Container]| -> Vec<ContainerView> {
                list.iter().map(|c| waiting_view(c, self.records.get(&c.name), "ContainerCreating")).collect()
            };
            let init_views = waiting(spec.init_containers.as_deref().unwrap_or_default());
            let views = waiting(&spec.containers);
            let new_status = status::pod_status(pod, &init_views, &views, &self.ctx.node_address, None, false, &api::time::now());
            self.write_status(pod, new_status).await;
            return Outcome::Wait(Some(Instant::now() + self.ctx.backoff_base));
        }
        if let Err(message) = self.ensure_volumes(pod).await {
            self.ctx.recorder.record(pod.as_ref(), EventType::Warning, "FailedMount", &message).await;
            let waiting = |list: &[Container]| -> Vec<ContainerView> {
                list.iter().map(|c| waiting_view(c, self.records.get(&c.name), "ContainerCreating")).collect()
            };
            let (init_views, views) = (waiting(spec.init_containers.as_deref().unwrap_or_default()), waiting(&spec.containers));
            let pod_ip = Some(self.pod_ip.get()).filter(|ip| !ip.is_empty());
            let new_status =
                status::pod_status(pod, &init_views, &views, &self.ctx.node_address, pod_ip.as_deref(), false, &api::time::now());
            self.write_status(pod, new_status).await;
            return Outcome::Wait(self.volumes_due);
        }
        self.start_probes(pod);
        let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
        // A pod that already finished never runs anything again.
        let finished = matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
        let mut wake: Option<Instant> = None;
        // Init containers run one at a time, in order, each to a clean exit,
        // before any app container starts. A failed one runs again (the
        // pod's `Always` means `OnFailure` for them), unless the pod's policy
        // is `Never`: then the pod has failed.
        let init_policy = if policy == "Never" { "Never" } else { "OnFailure" };
        let mut init_views = Vec::new();
        let mut initialized = true;
        for c in spec.init_containers.iter().flatten() {
            if !initialized {
                init_views.push(waiting_view(c, self.records.get(&c.name), "PodInitializing"));
                continue;
            }
            let v = self.sync_container(pod, c, init_policy, finished, &mut wake).await;
            initialized = matches!(&v.current, Current::Terminated(t) if t.exit_code == 0);
            init_views.push(v);
        }
        let mut views = Vec::with_capacity(spec.containers.len());
        for c in &spec.containers {
            if initialized {
                views.push(self.sync_container(pod, c, &policy, finished, &mut wake).await);
            } else {
                views.push(waiting_view(c, self.records.get(&c.name), "PodInitializing"));
            }
        }
        self.apply_probes(&mut views, &policy, finished);
        let pod_ip = Some(self.pod_ip.get()).filter(|ip| !ip.is_empty() && self.sandbox.is_some());
        let new_status = status::pod_status(pod, &init_views, &views, &self.ctx.node_address, pod_ip.as_deref(), false, &api::time::now());
        if let Some(due) = self.volumes_due {
            wake = earliest(wake, due);
        }
        if !self.write_status(pod, new_status).await {
            wake = earliest(wake, Instant::now() + RETRY);
        }
        Outcome::Wait(wake)
    }

    /// Decides about one container and returns how it looks now.
    async fn sync_container(
        &mut self,
        pod: &Arc<Pod>,
        c: &Container,
        policy: &str,
        finished: bool,
        wake: &mut Option<Instant>,
    ) -> ContainerView {
        let image = c.image.clone().unwrap_or_default();
        let runtime = self.ctx.runtime.clone();
        let view = |rec: &Record, current: Current| ContainerView {
            name: c.name.clone(),
            image: image.clone(),
            image_id: rec.image_id.clone(),
            restart_count: rec.restart_count,
            current,
            last_terminated: rec.last_terminated.clone(),
            // Filled in from the probes once every container is synced.
            started: false,
            ready: false,
        };
        if let Some(id) = self.records.get(&c.name).and_then(|r| r.instance.clone()) {
            self.kill_if_unhealthy(pod, c, &id, policy).await;
        }
        let rec = self.records.entry(c.name.clone()).or_default();

        if let Some(id) = rec.instance.clone() {
            match runtime.container_status(&id).await {
                Ok(s) if s.state == ContainerState::Running => {
                    let current = Current::Running { started_at: s.started_at.map(Time), container_id: s.container_id() };
                    return view(rec, current);
                }
                Ok(s) if s.state == ContainerState::Exited => rec.ended = Some(terminated_from(&s)),
                Ok(_) => return view(rec, Current::Waiting { reason: "ContainerCreating".into(), message: None }),
                Err(_) => rec.instance = None,
            }
        }

        let attempt = match rec.ended.clone() {
            Some(ended) => {
                if finished || !should_restart(policy, ended.exit_code) {
                    return view(rec, Current::Terminated(ended));
                }
                let seen = *rec.exit_seen.get_or_insert_with(Instant::now);
                if let Some(remaining) = self.backoff.in_backoff_since(&c.name, seen, Instant::now()) {
                    let p = pod_ref(pod);
                    let message = format!(
                        "back-off {} restarting failed container={} pod={}_{}({})",
                        go_duration(self.backoff.get(&c.name)),
                        c.name,
                        p.name,
                        p.namespace,
                        p.uid
                    );
                    if !rec.backoff_reported {
                        rec.backoff_reported = true;
                        let event = format!("Back-off restarting failed container {} in pod {}_{}({})", c.name, p.name, p.namespace, p.uid);
                        self.ctx.recorder.record(pod.as_ref(), EventType::Warning, "BackOff", &event).await;
                    }
                    *wake = earliest(*wake, Instant::now() + remaining);
                    let mut v = view(rec, Current::Waiting { reason: "CrashLoopBackOff".into(), message: Some(message) });
                    // While waiting, the run that just ended is the last state.
                    v.last_terminated = Some(ended);
                    return v;
                }
                self.backoff.next(&c.name, seen);
                if let Some(old) = rec.instance.take() {
                    if let Err(e) = runtime.remove_container(&old).await {
                        tracing::warn!(container = %c.name, error = %e, "cannot remove exited container");
                    }
                }
                rec.last_terminated = Some(ended);
                rec.ended = None;
                rec.exit_seen = None;
                rec.backoff_reported = false;
                rec.restart_count + 1
            }
            None if finished => {
                return view(rec, Current::Waiting { reason: "ContainerCreating".into(), message: None });
            }
            None => {
                if rec.has_run() {
                    rec.restart_count + 1
                } else {
                    rec.restart_count
                }
            }
        };

        let result = self.start(pod, c, attempt).await;
        let rec = self.records.entry(c.name.clone()).or_default();
        match result {
            Ok(s) => {
                rec.create_error = None;
                rec.restart_count = attempt;
                rec.instance = Some(s.id.clone());
                let current = if s.is_running() {
                    Current::Running { started_at: s.started_at.map(Time), container_id: s.container_id() }
                } else {
                    // It failed to start; the runtime's event brings us
                    // back to handle it like any other exit.
                    Current::Terminated(terminated_from(&s))
                };
                view(rec, current)
            }
            Err((reason, message, retry)) => {
                // Image problems have their own events (see `images`).
                let image_problem = matches!(reason.as_str(), "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull");
                if !image_problem && rec.create_error.as_ref() != Some(&(reason.clone(), message.clone())) {
                    self.ctx.recorder.record(pod.as_ref(), EventType::Warning, "Failed", &format!("Error: {message}")).await;
                }
                rec.create_error = Some((reason.clone(), message.clone()));
                if let Some(after) = retry {
                    *wake = earliest(*wake, Instant::now() + after);
                }
                view(rec, Current::Waiting { reason, message: Some(message) })
            }
        }
    }

    /// Creates and starts attempt `attempt` of container `c`. On failure
    /// returns the waiting reason, its message, and when to retry (a
    /// missing ConfigMap may appear; a missing command will not).
    async fn start(&mut self, pod: &Arc<Pod>, c: &Container, attempt: i32) -> Result<ContainerStatus, (String, String, Option<Duration>)> {
        let p = pod_ref(pod);
        let retry = Some(self.ctx.backoff_base);
        let mut involved = client::events::object_reference(pod.as_ref());
        involved.field_path = Some(format!("spec.containers{{{}}}", c.name));
        let image_id = self
            .images
            .ensure(self.ctx.runtime.as_ref(), &self.ctx.client, &self.ctx.recorder, pod, c, involved)
            .await
            .map_err(|w| (w.reason, w.message, Some(w.retry_in)))?;
        self.records.entry(c.name.clone()).or_default().image_id = image_id;
        let pod_ip = self.pod_ip.get();
        let env = env::resolve(&self.ctx.client, pod, c, &self.ctx.node_address, &pod_ip)
            .await
            .map_err(|e| ("CreateContainerConfigError".to_string(), e.0, retry))?;
        let expand = |list: &Option<Vec<String>>| -> Vec<String> {
            let lookup = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            list.iter().flatten().map(|s| env::expand(s, lookup)).collect()
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let mounts = match &self.volumes {
            Some(v) => v.mounts(c, &env).map_err(|e| ("CreateContainerConfigError".to_string(), e.to_string(), retry))?,
            None => Vec::new(),
        };
        let config = ContainerConfig {
            pod: p.clone(),
            sandbox_id: self.sandbox.as_ref().map(|s| s.id.clone()).unwrap_or_default(),
            name: c.name.clone(),
            attempt,
            image: c.image.clone().unwrap_or_default(),
            command: expand(&c.command),
            args: expand(&c.args),
            env,
            working_dir: c.working_dir.clone().filter(|d| !d.is_empty()),
            mounts,
            resources: resources(&spec, c, self.ctx.memory_capacity),
            security: security(&spec, c),
            log_path: log_path(&self.ctx.data_dir, &p, &c.name, attempt),
        };
        let runtime = &self.ctx.runtime;
        let id = runtime.create_container(config).await.map_err(|e| match e {
            RuntimeError::InvalidConfig(m) => ("CreateContainerError".to_string(), m, retry),
            other => ("CreateContainerError".to_string(), other.to_string(), retry),
        })?;
        self.ctx.recorder.record(pod.as_ref(), EventType::Normal, "Created", &format!("Created container: {}", c.name)).await;
        match runtime.start_container(&id).await {
            Ok(()) => {
                self.ctx.recorder.record(pod.as_ref(), EventType::Normal, "Started", &format!("Started container {}", c.name)).await;
                if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
                    if let Err(message) = lifecycle::run(runtime.as_ref(), &id, hook, c, &pod_ip, grace_period(pod)).await {
                        self.ctx.recorder.record(pod.as_ref(), EventType::Warning, "FailedPostStartHook", &message).await;
                        self.ctx
                            .recorder
                            .record(
                                pod.as_ref(),
                                EventType::Normal,
                                "Killing",
                                &format!("FailedPostStartHook: container {} will be restarted", c.name),
                            )
                            .await;
                        let _ = runtime.stop_container(&id, grace_period(pod).max(MINIMUM_GRACE)).await;
                    }
                }
            }
            Err(e) => {
                self.ctx.recorder.record(pod.as_ref(), EventType::Warning, "Failed", &format!("Error: {e}")).await;
            }
        }
        runtime.container_status(&id).await.map_err(|e| ("CreateContainerError".to_string(), e.to_string(), retry))
    }

    /// Sets the pod's volumes up when due: first before any container, then
    /// every [`VOLUME_RESYNC`] while the pod has volumes whose content comes
    /// from the api-server. A failure keeps what was set up before.
    async fn ensure_volumes(&mut self, pod: &Arc<Pod>) -> Result<(), String> {
        if self.volumes.is_some() && self.volumes_due.is_none_or(|due| due > Instant::now()) {
            return Ok(());
        }
        let follows = pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).is_some_and(|vs| {
            vs.iter().any(|v| v.config_map.is_some() || v.secret.is_some() || v.downward_api.is_some() || v.projected.is_some())
        });
        let dir = pod_dir(&self.ctx.data_dir, &pod_ref(pod));
        let result = crate::volumes::setup(&self.ctx.client, pod, &dir).await;
        let retry = Instant::now() + self.ctx.backoff_base.min(VOLUME_RESYNC);
        match result {
            Ok(v) => {
                self.volumes = Some(v);
                self.volumes_due = follows.then(|| Instant::now() + VOLUME_RESYNC);
                Ok(())
            }
            Err(e) if self.volumes.is_some() => {
                tracing::warn!(pod = ?pod.metadata.name, error = %e, "cannot refresh the pod's volumes; keeping their contents");
                self.volumes_due = Some(retry);
                Ok(())
            }
            Err(e) => {
                self.volumes_due = (!e.is_permanent()).then_some(retry);
                Err(e.to_string())
            }
        }
    }

    /// Makes sure the pod's sandbox runs: adopts the one it has, replaces
    /// one that died (stopping the pod's containers first, since their
    /// network went with it), or runs the first.
    async fn ensure_sandbox(&mut self, pod: &Arc<Pod>) -> Result<(), String> {
        let runtime = self.ctx.runtime.clone();
        if let Some(current) = self.sandbox.clone() {
            match runtime.pod_sandbox_status(&current.id).await {
                Ok(s) if s.state == SandboxState::Ready => return Ok(()),
                _ => {
                    self.ctx
                        .recorder
                        .record(pod.as_ref(), EventType::Normal, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
                        .await;
                    self.stop_all(pod, Duration::ZERO).await;
                    let _ = runtime.remove_pod_sandbox(&current.id).await;
                    self.sandbox = None;
                }
            }
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let p = pod_ref(pod);
        // A failed try is made again under the same attempt.
        let attempt = match (self.sandbox_attempt, self.sandbox_retry_at) {
            (Some(a), Some(_)) => a,
            (Some(a), None) => a + 1,
            (None, _) => 0,
        };
        self.sandbox_attempt = Some(attempt);
        let config = SandboxConfig {
            hostname: spec.hostname.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| p.name.clone()),
            pod: p,
            attempt,
            host_network: spec.host_network == Some(true),
            port_mappings: port_mappings(&spec),
        };
        let id = runtime.run_pod_sandbox(config).await.map_err(|e| e.to_string())?;
        let status = runtime.pod_sandbox_status(&id).await.map_err(|e| e.to_string())?;
        self.sandbox_retry_at = None;
        self.pod_ip.set(status.ip.as_deref().unwrap_or(&self.ctx.node_address));
        self.sandbox = Some(status);
        Ok(())
    }

    /// Removes the pod's containers and its sandbox.
    async fn remove_all(&mut self) {
        let runtime = self.ctx.runtime.clone();
        for rec in self.records.values_mut() {
            if let Some(id) = rec.instance.take() {
                let _ = runtime.remove_container(&id).await;
            }
        }
        if let Some(sandbox) = self.sandbox.take() {
            if let Err(e) = runtime.stop_pod_sandbox(&sandbox.id).await {
                tracing::warn!(sandbox = %sandbox.id, error = %e, "cannot stop pod sandbox");
            }
            if let Err(e) = runtime.remove_pod_sandbox(&sandbox.id).await {
                tracing::warn!(sandbox = %sandbox.id, error = %e, "cannot remove pod sandbox");
            }
        }
    }

    /// Starts the pod's probe workers, once; each probes through a
    /// [`ContainerProber`] that reports to this agent's event recorder.
    fn start_probes(&mut self, pod: &Arc<Pod>) {
        let ctx = &self.ctx;
        let pod_ip = &self.pod_ip;
        self.prober.add_pod(pod, |c, _, probe| {
            Arc::new(ContainerProber::new(pod.clone(), c.clone(), probe.clone(), ctx.runtime.clone(), ctx.recorder.clone(), pod_ip.clone()))
        });
    }

    /// Tells the probe workers what each container does now, and fills in
    /// each view's `started` and `ready` from their verdicts.
    fn apply_probes(&mut self, views: &mut [ContainerView], policy: &str, finished: bool) {
        for v in views.iter_mut() {
            let (id, running_since, will_restart) = match &v.current {
                Current::Running { started_at, container_id } => {
                    // A start time the runtime does not know counts as now.
                    let since = started_at.as_ref().map_or_else(jiff::Timestamp::now, |t| t.0);
                    (Some(container_id.clone()), Some(since), true)
                }
                Current::Terminated(t) => (t.container_id.clone(), None, !finished && should_restart(policy, t.exit_code)),
                Current::Waiting { .. } => (None, None, true),
            };
            let running = running_since.is_some();
            self.prober.update(&v.name, &ContainerNow { container_id: id.clone(), running_since, will_restart });
            v.started = self.prober.is_started(&v.name, id.as_deref(), running);
            v.ready = self.prober.is_ready(&v.name, id.as_deref(), running);
        }
    }

    /// Kills the container's run `id` if its liveness or startup probe
    /// failed, as the kubelet's `computePodActions` does: event `Killing`,
    /// SIGTERM, the probe's `terminationGracePeriodSeconds` (else the
    /// pod's), SIGKILL. The caller then finds it exited and restarts it
    /// as the restart policy says.
    async fn kill_if_unhealthy(&mut self, pod: &Arc<Pod>, c: &Container, id: &str, policy: &str) {
        let runtime = self.ctx.runtime.clone();
        let Ok(status) = runtime.container_status(id).await else { return };
        if !status.is_running() {
            return;
        }
        let Some(probe_type) = self.prober.kill_reason(&c.name, &status.container_id()) else { return };
        let mut message = format!("Container {} failed {} probe", c.name, probe_type.lower());
        if policy != "Never" {
            message.push_str(", will be restarted");
        }
        self.ctx.recorder.record(pod.as_ref(), EventType::Normal, "Killing", &message).await;
        let probe_grace = probe_type.of(c).and_then(|p| p.termination_grace_period_seconds);
        let grace = match probe_grace {
            Some(seconds) => Duration::from_secs(u64::try_from(seconds).unwrap_or(0)),
            None => grace_period(pod),
        }
        .max(MINIMUM_GRACE);
        tracing::info!(pod = ?pod.metadata.name, container = %c.name, probe = %probe_type, ?grace, "killing a container that failed its probe");
        if let Err(e) = runtime.stop_container(id, grace).await {
            tracing::warn!(container = %c.name, error = %e, "cannot stop a container that failed its probe");
        }
    }

    /// Stops every running container of the pod at once, each with `grace`.
    async fn stop_all(&mut self, pod: &Pod, grace: Duration) {
        let runtime = self.ctx.runtime.clone();
        let mut stops = Vec::new();
        let spec = pod.spec.clone().unwrap_or_default();
        let pod_ip = self.pod_ip.get();
        for (name, rec) in &self.records {
            let Some(id) = rec.instance.clone() else { continue };
            let running = runtime.container_status(&id).await.is_ok_and(|s| s.is_running());
            if !running {
                continue;
            }
            self.ctx.recorder.record(pod, EventType::Normal, "Killing", &format!("Stopping container {name}")).await;
            let runtime = runtime.clone();
            let container = spec.containers.iter().find(|c| &c.name == name).cloned();
            let (recorder, pod_ip) = (self.ctx.recorder.clone(), pod_ip.clone());
            stops.push(async move {
                // The preStop hook runs inside the grace period; what it
                // leaves of it is the container's time to stop.
                let began = Instant::now();
                let hook = container.as_ref().and_then(|c| c.lifecycle.as_ref()?.pre_stop.clone().map(|h| (c.clone(), h)));
                if let Some((c, hook)) = hook {
                    if let Err(message) = lifecycle::run(runtime.as_ref(), &id, &hook, &c, &pod_ip, grace).await {
                        recorder.record(pod, EventType::Warning, "FailedPreStopHook", &message).await;
                    }
                }
                let left = grace.saturating_sub(began.elapsed()).max(MINIMUM_GRACE.min(grace));
                if let Err(e) = runtime.stop_container(&id, left).await {
                    tracing::warn!(container = %id, error = %e, "cannot stop container");
                }
            });
        }
        futures::future::join_all(stops).await;
        for rec in self.records.values_mut() {
            if let Some(id) = &rec.instance {
                if let Ok(s) = runtime.container_status(id).await {
                    if s.state == ContainerState::Exited {
                        rec.ended = Some(terminated_from(&s));
                    }
                }
            }
        }
    }

    /// Stops the pod's containers, writes the final status and deletes the
    /// pod object.
    async fn terminate(&mut self, pod: &Arc<Pod>) -> Outcome {
        let grace = grace_period(pod).max(MINIMUM_GRACE);
        self.stop_all(pod, grace).await;
        let spec = pod.spec.clone().unwrap_or_default();
        let view = |c: &Container| {
            let rec = self.records.get(&c.name);
            match rec.and_then(|r| r.ended.clone()) {
                Some(t) => ContainerView { current: Current::Terminated(t), ..waiting_view(c, rec, "") },
                None => waiting_view(c, rec, "ContainerCreating"),
            }
        };
        let init_views: Vec<ContainerView> = spec.init_containers.iter().flatten().map(view).collect();
        let views: Vec<ContainerView> = spec.containers.iter().map(view).collect();
        let pod_ip = Some(self.pod_ip.get()).filter(|ip| !ip.is_empty());
        let final_status = status::pod_status(pod, &init_views, &views, &self.ctx.node_address, pod_ip.as_deref(), true, &api::time::now());
        self.write_status(pod, final_status).await;
        self.remove_all().await;
        let p = pod_ref(pod);
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &p.namespace);
        // Grace period 0 tells the api-server the containers are stopped;
        // the uid precondition keeps us from deleting a new pod that took
        // the old one's name meanwhile.
        let options = serde_json::json!({"gracePeriodSeconds": 0, "preconditions": {"uid": p.uid}});
        match pods.delete_with(&p.name, &options).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => {
                tracing::warn!(pod = %format!("{}/{}", p.namespace, p.name), error = %e, "cannot delete terminated pod; retrying");
                return Outcome::Wait(Some(Instant::now() + RETRY));
            }
        }
        remove_dir(&pod_dir(&self.ctx.data_dir, &p));
        Outcome::Done
    }

    /// Writes `new_status` if it differs from what the pod has; returns
    /// false when a retry is needed.
    async fn write_status(&mut self, pod: &Pod, new_status: PodStatus) -> bool {
        if pod.status.as_ref() == Some(&new_status) {
            return true;
        }
        if let Some((written_rv, written)) = &self.last_written {
            if *written == new_status && rv(pod) < *written_rv {
                return true;
            }
        }
        let mut updated = pod.clone();
        updated.status = Some(new_status.clone());
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &pod_ref(pod).namespace);
        match pods.replace_status(&updated).await {
            Ok(stored) => {
                self.last_written = Some((rv(&stored), new_status));
                true
            }
            Err(e) if e.is_not_found() => true,
            Err(e) => {
                // A conflict means a newer pod is on its way to us through
                // the watch; anything else is retried on a timer.
                tracing::debug!(pod = ?pod.metadata.name, error = %e, "pod status update failed");
                false
            }
        }
    }
}

/// Every `hostPort` of the pod's containers, for its sandbox.
fn port_mappings(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<PortMapping> {
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|h| *h > 0)?;
            Some(PortMapping {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                container_port: u16::try_from(p.container_port).ok()?,
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// The kubelet's cgroup settings for a container (`pkg/kubelet/kuberuntime`
/// `calculateLinuxResources`): cpu shares from the request (at least 2),
/// a CFS quota from the limit over a 100 ms period, the memory limit, and
/// the OOM score adjustment of the pod's QoS class.
pub fn resources(spec: &k8s_openapi::api::core::v1::PodSpec, c: &Container, memory_capacity: i64) -> Resources {
    const MIN_SHARES: i64 = 2;
    const PERIOD: i64 = 100_000;
    const MIN_QUOTA: i64 = 1_000;
    let r = c.resources.clone().unwrap_or_default();
    let get = |m: &Option<std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>, k: &str| {
        m.as_ref().and_then(|m| m.get(k)).cloned()
    };
    let cpu_request = get(&r.requests, "cpu").or_else(|| get(&r.limits, "cpu")).and_then(|q| api::quantity::cpu_millis(&q).ok());
    let cpu_limit = get(&r.limits, "cpu").and_then(|q| api::quantity::cpu_millis(&q).ok());
    let memory_limit = get(&r.limits, "memory").and_then(|q| api::quantity::bytes(&q).ok()).filter(|b| *b > 0);
    Resources {
        cpu_shares: Some(cpu_request.map_or(MIN_SHARES, |m| (m * 1024 / 1000).max(MIN_SHARES))),
        cpu_quota: cpu_limit.map(|m| (m * PERIOD / 1000).max(MIN_QUOTA)),
        cpu_period: cpu_limit.map(|_| PERIOD),
        memory_limit,
        oom_score_adj: Some(api::qos::oom_score_adj(spec, c, memory_capacity)),
    }
}

/// The container's `securityContext` over the pod's.
pub fn security(spec: &k8s_openapi::api::core::v1::PodSpec, c: &Container) -> Security {
    let pod = spec.security_context.clone().unwrap_or_default();
    let own = c.security_context.clone().unwrap_or_default();
    Security {
        run_as_user: own.run_as_user.or(pod.run_as_user),
        run_as_group: own.run_as_group.or(pod.run_as_group),
        privileged: own.privileged == Some(true),
        read_only_root_filesystem: own.read_only_root_filesystem == Some(true),
    }
}

/// The view of a container that has not started yet and waits for `reason`.
fn waiting_view(c: &Container, rec: Option<&Record>, reason: &str) -> ContainerView {
    ContainerView {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: rec.map(|r| r.image_id.clone()).unwrap_or_default(),
        restart_count: rec.map_or(0, |r| r.restart_count),
        current: Current::Waiting { reason: reason.into(), message: None },
        last_terminated: rec.and_then(|r| r.last_terminated.clone()),
        started: false,
        ready: false,
    }
}

fn earliest(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove pod directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy_table() {
        for (policy, code, want) in [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 2, true),
            ("Never", 0, false),
            ("Never", 1, false),
        ] {
            assert_eq!(should_restart(policy, code), want, "{policy} exit {code}");
        }
    }

    #[test]
    fn grace_prefers_the_deletion_grace() {
        let mut pod = Pod::default();
        assert_eq!(grace_period(&pod), Duration::from_secs(30));
        pod.spec = Some(k8s_openapi::api::core::v1::PodSpec { termination_grace_period_seconds: Some(5), ..Default::default() });
        assert_eq!(grace_period(&pod), Duration::from_secs(5));
        pod.metadata.deletion_grace_period_seconds = Some(1);
        assert_eq!(grace_period(&pod), Duration::from_secs(1));
    }

    /// A pod worker against a real process runtime and an api-server that
    /// cannot be reached: the worker must still run its containers (status
    /// writes and events fail and are retried or dropped).
    mod with_processes {
        use super::*;
        use crate::runtime::process::ProcessRuntime;
        use crate::test_support::shim_binary;
        use k8s_openapi::api::core::v1::PodSpec;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

        fn context(dir: &Path, runtime: Arc<dyn Runtime>) -> Arc<Context> {
            let client = Client::unconnected();
            Arc::new(Context {
                recorder: Recorder::new(client.clone(), "kubelet", Some("n1")),
                client,
                runtime,
                node_address: "127.0.0.1".into(),
                data_dir: dir.to_path_buf(),
                backoff_base: Duration::from_millis(200),
                backoff_cap: Duration::from_millis(800),
                memory_capacity: 1 << 30,
            })
        }

        fn pod(policy: &str, script: &str) -> Arc<Pod> {
            Arc::new(Pod {
                metadata: ObjectMeta {
                    name: Some("web".into()),
                    namespace: Some("default".into()),
                    uid: Some("uid-w".into()),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    node_name: Some("n1".into()),
                    restart_policy: Some(policy.into()),
                    termination_grace_period_seconds: Some(1),
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some("busybox".into()),
                        command: Some(vec!["sh".into(), "-c".into(), script.into()]),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            })
        }

        fn spawn_worker(
            ctx: Arc<Context>,
            pod: Arc<Pod>,
        ) -> (watch::Sender<Option<Arc<Pod>>>, CancellationToken, tokio::task::JoinHandle<()>) {
            let (tx, rx) = watch::channel(Some(pod));
            let cancel = CancellationToken::new();
            let mut events = ctx.runtime.subscribe();
            let poke = tx.clone();
            // Stand-in for the sync loop: container events wake the worker.
            tokio::spawn(async move {
                while events.recv().await.is_ok() {
                    poke.send_modify(|_| {});
                }
            });
            let handle = tokio::spawn(PodWorker::new(ctx).run(rx, cancel.clone()));
            (tx, cancel, handle)
        }

        fn attempts(dir: &Path) -> Vec<i32> {
            let logs = dir.join("pods/default_web_uid-w/app");
            let mut found: Vec<i32> = std::fs::read_dir(logs)
                .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".log")?.parse().ok()).collect())
                .unwrap_or_default();
            found.sort();
            found
        }

        /// When attempt `n` printed its first line (each attempt prints
        /// one), from its CRI log record.
        fn first_output(dir: &Path, n: i32) -> Option<jiff::Timestamp> {
            let data = std::fs::read(dir.join(format!("pods/default_web_uid-w/app/{n}.log"))).ok()?;
            let line = data.split(|b| *b == b'\n').next()?;
            crate::crilog::parse(line).map(|r| r.time)
        }

        #[tokio::test]
        async fn a_crashing_container_restarts_with_growing_backoff() {
            let dir = tempfile::tempdir().unwrap();
            let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::open(dir.path().join("state"), shim_binary()).unwrap());
            let (_tx, cancel, handle) = spawn_worker(context(dir.path(), runtime.clone()), pod("Always", "echo run; exit 1"));
            // Waits between attempts: 0 (the first restart is immediate),
            // then the back-off: 200 ms, 400 ms, 800 ms (the cap).
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            let starts: Vec<jiff::Timestamp> = loop {
                let found: Vec<_> = (0..5).map_while(|n| first_output(dir.path(), n)).collect();
                if found.len() == 5 {
                    break found;
                }
                assert!(std::time::Instant::now() < deadline, "only {} attempts ran: {:?}", found.len(), attempts(dir.path()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let gap = |n: usize| (starts[n] - starts[n - 1]).total(jiff::Unit::Millisecond).unwrap();
            for (n, backoff_ms) in [(2, 200.0), (3, 400.0), (4, 800.0)] {
                assert!(gap(n) >= backoff_ms * 0.9, "attempt {n} came {}ms after the one before, back-off {backoff_ms}ms", gap(n));
            }
            assert!(gap(4) > gap(2), "back-off grows: {:?}", (1..5).map(gap).collect::<Vec<_>>());
            assert!(runtime.list_containers().await.len() <= 1, "exited attempts are removed");
            cancel.cancel();
            handle.await.unwrap();
        }

        #[tokio::test]
        async fn never_means_run_once() {
            let dir = tempfile::tempdir().unwrap();
            let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::open(dir.path().join("state"), shim_binary()).unwrap());
            let (_tx, cancel, handle) = spawn_worker(context(dir.path(), runtime.clone()), pod("Never", "exit 0"));
            // Long enough for two back-offs (200 ms, 400 ms): a restart would have come.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !runtime.list_containers().await.iter().any(|c| c.exit_code == Some(0)) {
                assert!(std::time::Instant::now() < deadline, "the container never exited");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
            assert_eq!(attempts(dir.path()), [0]);
            let only = runtime.list_containers().await;
            assert_eq!((only.len(), only[0].exit_code), (1, Some(0)));
            cancel.cancel();
            handle.await.unwrap();
        }

        #[tokio::test]
        async fn a_restarted_agent_adopts_instead_of_starting_again() {
            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("state");
            let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::open(&state, shim_binary()).unwrap());
            let p = pod("Always", "sleep 100");
            let (_tx, cancel, handle) = spawn_worker(context(dir.path(), runtime.clone()), p.clone());
            tokio::time::sleep(Duration::from_millis(300)).await;
            let before = runtime.list_containers().await;
            assert_eq!(before.len(), 1);
            cancel.cancel();
            handle.await.unwrap();
            drop(runtime);

            let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::open(&state, shim_binary()).unwrap());
            let (tx, cancel, handle) = spawn_worker(context(dir.path(), runtime.clone()), p.clone());
            tokio::time::sleep(Duration::from_millis(300)).await;
            let after = runtime.list_containers().await;
            assert_eq!(after.len(), 1, "no duplicate");
            assert_eq!(after[0].pid, before[0].pid, "the same process, adopted");
            assert_eq!(attempts(dir.path()), [0]);

            // The pod is force-deleted: the worker stops the process and ends.
            tx.send_replace(None);
            tokio::time::timeout(Duration::from_secs(5), handle).await.expect("worker ends").unwrap();
            let pid = before[0].pid.unwrap();
            assert!(!crate::sys::proc_stat(pid).is_some_and(|s| s.is_alive()), "process {pid} stopped");
            cancel.cancel();
        }

        /// The pod status still says "running" (the old agent never saw the
        /// end), but the shim recorded exit code 0: with `OnFailure` the new
        /// agent must not run the container again. Without the exit file it
        /// would have to assume 137 (ContainerStatusUnknown) and restart it.
        #[tokio::test]
        async fn a_restarted_agent_learns_the_real_exit_code_of_a_container_that_ended_meanwhile() {
            use k8s_openapi::api::core::v1::{
                ContainerState as PodContainerState, ContainerStateRunning, ContainerStatus as PodContainerStatus,
            };
            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("state");
            let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::open(&state, shim_binary()).unwrap());
            let p = pod("OnFailure", "sleep 0.5; exit 0");
            let (_tx, cancel, handle) = spawn_worker(context(dir.path(), runtime.clone()), p.clone());
            tokio::time::sleep(Duration::from_millis(200)).await;
            let started = runtime.list_containers().await;
            assert_eq!(started.len(), 1);
            cancel.cancel();
            handle.await.unwrap();
            drop(runtime);
            // The agent is down while the container finishes.
            tokio::time::sleep(Duration::from_millis(800)).await;

            let mut seen_running = (*p).clone();
            seen_running.status = Some(PodStatus {
                container_statuses: Some(vec![PodContainerStatus {
                    name: "app".into(),
                    state: Some(PodContainerState { running: Some(ContainerStateRunning::default()), ..Default::default() }),
                    ..Default::default()
                }]),
                ..Default::default()
            });
            let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::open(&state, shim_binary()).unwrap());
            let listed = runtime.list_containers().await;
            assert_eq!((listed.len(), listed[0].exit_code, listed[0].reason.as_str()), (1, Some(0), "Completed"));
            let (_tx, cancel, handle) = spawn_worker(context(dir.path(), runtime.clone()), Arc::new(seen_running));
            tokio::time::sleep(Duration::from_millis(600)).await;
            assert_eq!(attempts(dir.path()), [0], "a container that succeeded is not run again under OnFailure");
            cancel.cancel();
            handle.await.unwrap();
        }

        /// A liveness probe that starts failing gets the container killed
        /// and restarted (a second attempt), and the new run is probed
        /// afresh: while the probe passes again, no third attempt comes.
        #[tokio::test]
        async fn a_failing_liveness_probe_restarts_the_container() {
            use k8s_openapi::api::core::v1::{ExecAction, Probe};
            let dir = tempfile::tempdir().unwrap();
            let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::open(dir.path().join("state"), shim_binary()).unwrap());
            let healthy = dir.path().join("healthy");
            std::fs::write(&healthy, "").unwrap();
            let mut p = (*pod("Always", "sleep 100")).clone();
            p.spec.as_mut().unwrap().containers[0].liveness_probe = Some(Probe {
                exec: Some(ExecAction { command: Some(vec!["test".into(), "-f".into(), healthy.display().to_string()]) }),
                period_seconds: Some(1),
                failure_threshold: Some(1),
                // Gives the test time to restore the file before the new
                // run's first probe.
                initial_delay_seconds: Some(1),
                ..Default::default()
            });
            let (_tx, cancel, handle) = spawn_worker(context(dir.path(), runtime.clone()), Arc::new(p));
            tokio::time::sleep(Duration::from_millis(2500)).await;
            assert_eq!(attempts(dir.path()), [0], "a passing probe leaves the container alone");
            std::fs::remove_file(&healthy).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(8);
            while attempts(dir.path()) != [0, 1] {
                assert!(std::time::Instant::now() < deadline, "not restarted: {:?}", attempts(dir.path()));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            std::fs::write(&healthy, "").unwrap();
            tokio::time::sleep(Duration::from_millis(2500)).await;
            assert_eq!(attempts(dir.path()), [0, 1], "the new run passes its probe");
            let running: Vec<_> = runtime.list_containers().await.into_iter().filter(|c| c.is_running()).collect();
            assert_eq!((running.len(), running[0].attempt), (1, 1));
            cancel.cancel();
            handle.await.unwrap();
            for c in runtime.list_containers().await {
                runtime.remove_container(&c.id).await.unwrap();
            }
        }

        #[tokio::test]
        async fn deletion_stops_a_stubborn_container_within_grace_and_slack() {
            let dir = tempfile::tempdir().unwrap();
            let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::open(dir.path().join("state"), shim_binary()).unwrap());
            let p = pod("Always", "trap '' TERM; echo ready; sleep 100");
            let (tx, cancel, handle) = spawn_worker(context(dir.path(), runtime.clone()), p.clone());
            let log = dir.path().join("pods/default_web_uid-w/app/0.log");
            // The output can come before the runtime has recorded the pid.
            let pid = loop {
                let started = runtime.list_containers().await.first().and_then(|c| c.pid);
                match started {
                    Some(pid) if std::fs::read_to_string(&log).unwrap_or_default().contains("ready") => break pid,
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            };
            let mut deleting = (*p).clone();
            deleting.metadata.deletion_timestamp = Some(api::time::now());
            deleting.metadata.deletion_grace_period_seconds = Some(1);
            let began = std::time::Instant::now();
            tx.send_replace(Some(Arc::new(deleting)));
            while crate::sys::proc_stat(pid).is_some_and(|s| s.is_alive()) {
                assert!(began.elapsed() < MINIMUM_GRACE + Duration::from_secs(2), "still running after grace + slack");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The grace given was the kubelet's minimum, 2 s, not the pod's 1 s.
            assert!(began.elapsed() >= MINIMUM_GRACE - Duration::from_millis(100));
            cancel.cancel();
            handle.await.unwrap();
        }
    }
}
