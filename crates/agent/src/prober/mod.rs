//! Container probes: how the agent learns that a running container is
//! healthy, ready for traffic, and done starting.
//!
//! A process that runs is not necessarily a process that works. Kubernetes
//! lets a container declare three *probes*, each a check the kubelet runs
//! against it periodically:
//!
//! - `readinessProbe`: "send me traffic". While it fails the container is
//!   `ready: false`, the pod's `Ready` and `ContainersReady` conditions are
//!   False, the pod is left out of its Services' endpoints, and a
//!   Deployment does not count it as available (`kubectl rollout status`
//!   waits for it). Nothing is restarted.
//! - `livenessProbe`: "I am not stuck". Once it has failed
//!   `failureThreshold` times in a row, the kubelet kills the container
//!   (event `Killing`: "Container app failed liveness probe, will be
//!   restarted") and the restart policy takes over.
//! - `startupProbe`: "I am still starting". Until it succeeds, liveness and
//!   readiness probes are not run at all, so a slow starter is not killed
//!   by its liveness probe; if it fails `failureThreshold` times, the
//!   container is killed as for liveness. Its success is the container
//!   status's `started` field.
//!
//! A check is one of four *handlers* (see [`handlers`]): `exec` (a command
//! in the container; exit 0 is success), `httpGet` (a status from 200 to
//! 399), `tcpSocket` (the port accepts a connection) or `grpc` (the gRPC
//! health protocol). Its timing is `initialDelaySeconds` after the
//! container starts, then every `periodSeconds` (default 10), each check
//! given `timeoutSeconds` (default 1); `successThreshold` (default 1, and 1
//! for liveness and startup) and `failureThreshold` (default 3)
//! consecutive results flip the outcome.
//!
//! The kubelet's prober has three parts, and so has this module:
//! - a *worker* per (container, probe type) that ticks every period,
//!   decides whether to probe at all (initial delay, startup gating, a
//!   container that is not running), runs the probe and applies the
//!   thresholds ([`worker`]: a pure state machine, [`worker::ProbeState`],
//!   driven by a small loop);
//! - the *prober* that runs one check and records the `Unhealthy` events
//!   ([`runner`], over the [`handlers`]);
//! - the *manager* ([`Manager`], one per pod here, one per kubelet
//!   upstream) that starts the workers, keeps their latest results per
//!   container id, and answers the pod worker's questions: is this
//!   container started? ready? should it be killed?
//!
//! The pod worker and the probe workers meet in two places, as upstream's
//! pod workers and probe workers meet in the status manager and the
//! results managers. The pod worker tells each probe worker what it last
//! saw of its container ([`ContainerNow`]: its id, since when it runs,
//! whether it was started); the probe workers publish their results and
//! wake the pod worker ([`Manager::changed`]), which folds them into the
//! pod status and kills a container that failed its liveness probe.
//!
//! Results belong to one container *id*, not to a container name: a
//! restarted container begins again from the probe type's initial result
//! (readiness: failure, liveness: success, startup: unknown).
//!
//! Where tinykube simplifies:
//! - Probes run on the agent's host: an `exec` probe runs its command with
//!   the container's environment (as `kubectl exec` does here, see
//!   [`crate::exec`]), and `httpGet`/`tcpSocket` connect to the pod IP,
//!   which is the node's address in the process runtime.
//! - `httpGet` speaks plain HTTP/1.1 and does not follow redirects (a 3xx
//!   counts as success with a `ProbeWarning` event, which is what upstream
//!   reports for a redirect it does not follow). `HTTPS` and `grpc`
//!   probes are reported as errored on every try (event `Unhealthy`:
//!   "... probe errored ..."), which upstream treats as "no result": a
//!   readiness probe then keeps the container unready, a liveness probe
//!   never kills it.
//! - A worker wakes at once when its container changes (a new container,
//!   `started` flipping) and when the initial delay ends, instead of
//!   waiting for its next tick; upstream's first probe comes at a random
//!   point of the first period.

pub mod handlers;
pub mod runner;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use runner::Prober;
use worker::{ContainerSnapshot, ProbeWorker};

/// A pod's IP as its probes see it: set once its sandbox runs, changed if
/// the sandbox is replaced.
#[derive(Debug, Clone, Default)]
pub struct PodIp(Arc<std::sync::RwLock<String>>);

impl PodIp {
    pub fn new(ip: &str) -> Self {
        PodIp(Arc::new(std::sync::RwLock::new(ip.to_string())))
    }

    pub fn get(&self) -> String {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set(&self, ip: &str) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = ip.to_string();
    }
}

/// Which of a container's three probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeType {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeType {
    /// The probe's place in a container spec.
    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            ProbeType::Liveness => c.liveness_probe.as_ref(),
            ProbeType::Readiness => c.readiness_probe.as_ref(),
            ProbeType::Startup => c.startup_probe.as_ref(),
        }
    }

    /// What a new container's probe reports before it has run: a
    /// container is not ready until proven so, alive until proven not, and
    /// neither started nor failed to start.
    pub fn initial_result(self) -> ProbeResult {
        match self {
            ProbeType::Liveness => ProbeResult::Success,
            ProbeType::Readiness => ProbeResult::Failure,
            ProbeType::Startup => ProbeResult::Unknown,
        }
    }

    /// The lowercase name in the Killing event ("failed liveness probe").
    pub fn lower(self) -> &'static str {
        match self {
            ProbeType::Liveness => "liveness",
            ProbeType::Readiness => "readiness",
            ProbeType::Startup => "startup",
        }
    }

    const ALL: [ProbeType; 3] = [ProbeType::Startup, ProbeType::Liveness, ProbeType::Readiness];
}

/// Upstream's words in events: "Liveness probe failed: ...".
impl fmt::Display for ProbeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeType::Liveness => "Liveness",
            ProbeType::Readiness => "Readiness",
            ProbeType::Startup => "Startup",
        })
    }
}

/// A probe's verdict on a container (upstream's `results.Result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    /// Not known yet: a startup probe that has not decided.
    Unknown,
    Success,
    Failure,
}

/// The latest published result of each worker, for the container id it
/// was about, and a bell that wakes the pod worker when one changes.
#[derive(Debug, Default)]
pub(crate) struct Results {
    latest: Mutex<HashMap<(String, ProbeType), (String, ProbeResult)>>,
    changed: Notify,
}

impl Results {
    /// Stores (or clears) a worker's result; rings only on a change.
    pub(crate) fn set(&self, container: &str, probe_type: ProbeType, result: Option<(String, ProbeResult)>) {
        let key = (container.to_string(), probe_type);
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let changed = match result {
            Some(r) => latest.insert(key, r.clone()) != Some(r),
            None => latest.remove(&key).is_some(),
        };
        drop(latest);
        if changed {
            // One waiter, the pod worker; a permit is kept if it is busy.
            self.changed.notify_one();
        }
    }

    fn get(&self, container: &str, probe_type: ProbeType, container_id: &str) -> Option<ProbeResult> {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.get(&(container.to_string(), probe_type)).filter(|(id, _)| id == container_id).map(|(_, result)| *result)
    }
}

/// What the pod worker last saw of one container, as it tells the manager.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerNow {
    /// The status's `containerID` of the latest run, once there is one.
    pub container_id: Option<String>,
    /// When the latest run started, while it runs.
    pub running_since: Option<jiff::Timestamp>,
    /// Whether a run that ended will be followed by another (restart
    /// policy, a finished pod). Workers of a container that will never
    /// run again stop.
    pub will_restart: bool,
}

struct WorkerHandle {
    snapshots: watch::Sender<ContainerSnapshot>,
    cancel: CancellationToken,
}

/// One pod's probe workers and their results (upstream's
/// `prober_manager.go`, which holds every pod's).
pub struct Manager {
    /// The probes the pod's spec declares, whether or not their worker
    /// still runs (liveness and startup workers stop when the pod
    /// terminates).
    declared: HashSet<(String, ProbeType)>,
    workers: HashMap<(String, ProbeType), WorkerHandle>,
    results: Arc<Results>,
    /// Per container: the id of its current run and the monotonic instant
    /// it started, computed once per run so that repeated syncs hand the
    /// workers identical snapshots.
    since: HashMap<String, (String, Instant)>,
    added: bool,
    cancel: CancellationToken,
}

impl Default for Manager {
    fn default() -> Self {
        Manager {
            declared: HashSet::new(),
            workers: HashMap::new(),
            results: Arc::new(Results::default()),
            since: HashMap::new(),
            added: false,
            cancel: CancellationToken::new(),
        }
    }
}

impl Manager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a worker for every probe the pod's containers declare, each
    /// running its checks through the prober `make` builds (upstream's
    /// `AddPod`). Only the first call does anything: a pod's containers
    /// and probes cannot change.
    pub fn add_pod(&mut self, pod: &Pod, mut make: impl FnMut(&Container, ProbeType, &Probe) -> Arc<dyn Prober>) {
        if self.added {
            return;
        }
        self.added = true;
        let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
        for c in containers {
            for probe_type in ProbeType::ALL {
                let Some(probe) = probe_type.of(c) else { continue };
                let key = (c.name.clone(), probe_type);
                let (snapshots, rx) = watch::channel(ContainerSnapshot::default());
                let cancel = self.cancel.child_token();
                let worker = ProbeWorker::new(
                    c.name.clone(),
                    probe_type,
                    probe,
                    make(c, probe_type, probe),
                    rx,
                    self.results.clone(),
                    cancel.clone(),
                );
                tokio::spawn(worker.run());
                self.declared.insert(key.clone());
                self.workers.insert(key, WorkerHandle { snapshots, cancel });
            }
        }
    }

    /// Tells the container's workers what the pod worker sees now. Workers
    /// are woken only when something they look at changed.
    pub fn update(&mut self, container: &str, now: &ContainerNow) {
        let running_since = match (&now.container_id, now.running_since) {
            (Some(id), Some(started_at)) => Some(self.running_since(container, id, started_at)),
            _ => None,
        };
        let snapshot = ContainerSnapshot {
            container_id: now.container_id.clone(),
            running_since,
            will_restart: now.will_restart,
            started: self.is_started(container, now.container_id.as_deref(), running_since.is_some()),
        };
        for probe_type in ProbeType::ALL {
            if let Some(w) = self.workers.get(&(container.to_string(), probe_type)) {
                w.snapshots.send_if_modified(|old| {
                    let changed = *old != snapshot;
                    if changed {
                        *old = snapshot.clone();
                    }
                    changed
                });
            }
        }
    }

    /// The monotonic instant a run began, from its wall-clock start.
    fn running_since(&mut self, container: &str, id: &str, started_at: jiff::Timestamp) -> Instant {
        if let Some((known, since)) = self.since.get(container) {
            if known == id {
                return *since;
            }
        }
        // A start in the future (clocks disagree) counts as "just now".
        let ago = std::time::Duration::try_from(jiff::Timestamp::now().duration_since(started_at)).unwrap_or_default();
        let now = Instant::now();
        let since = now.checked_sub(ago).unwrap_or(now);
        self.since.insert(container.to_string(), (id.to_string(), since));
        since
    }

    fn result(&self, container: &str, probe_type: ProbeType, id: &str) -> Option<ProbeResult> {
        self.results.get(container, probe_type, id)
    }

    /// The status's `started`: running, and either no startup probe or one
    /// that succeeded for this run (upstream's `isContainerStarted`).
    pub fn is_started(&self, container: &str, id: Option<&str>, running: bool) -> bool {
        let (Some(id), true) = (id, running) else { return false };
        if !self.declared.contains(&(container.to_string(), ProbeType::Startup)) {
            return true;
        }
        self.result(container, ProbeType::Startup, id) == Some(ProbeResult::Success)
    }

    /// The status's `ready`: started, and either no readiness probe or one
    /// whose latest verdict for this run is success.
    pub fn is_ready(&self, container: &str, id: Option<&str>, running: bool) -> bool {
        if !self.is_started(container, id, running) {
            return false;
        }
        if !self.declared.contains(&(container.to_string(), ProbeType::Readiness)) {
            return true;
        }
        id.and_then(|id| self.result(container, ProbeType::Readiness, id)) == Some(ProbeResult::Success)
    }

    /// Which probe, if any, says this run must be killed: a liveness
    /// failure, else a startup failure (upstream's `computePodActions`).
    pub fn kill_reason(&self, container: &str, id: &str) -> Option<ProbeType> {
        [ProbeType::Liveness, ProbeType::Startup]
            .into_iter()
            .find(|t| self.result(container, *t, id) == Some(ProbeResult::Failure))
    }

    /// The probe declared for `container` of type `probe_type`, if any.
    pub fn declares(&self, container: &str, probe_type: ProbeType) -> bool {
        self.declared.contains(&(container.to_string(), probe_type))
    }

    /// Resolves when some worker published a new result.
    pub async fn changed(&self) {
        self.results.changed.notified().await
    }

    /// A terminating pod is not killed for failing liveness or startup
    /// probes: its containers are being stopped anyway (upstream's
    /// `StopLivenessAndStartup`). Readiness keeps running, as upstream.
    pub fn stop_liveness_and_startup(&mut self) {
        self.workers.retain(|(_, probe_type), w| {
            let keep = *probe_type == ProbeType::Readiness;
            if !keep {
                w.cancel.cancel();
            }
            keep
        });
    }
}

/// The pod worker is done with the pod: its probe workers end too.
impl Drop for Manager {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_results_follow_upstream() {
        assert_eq!(ProbeType::Readiness.initial_result(), ProbeResult::Failure);
        assert_eq!(ProbeType::Liveness.initial_result(), ProbeResult::Success);
        assert_eq!(ProbeType::Startup.initial_result(), ProbeResult::Unknown);
        assert_eq!(format!("{} probe failed", ProbeType::Liveness), "Liveness probe failed");
    }

    /// The manager's answers to the pod worker, as a table over which
    /// probes are declared and what they published for the current run.
    #[test]
    fn started_ready_and_kill_follow_the_published_results() {
        use ProbeResult::*;
        use ProbeType::*;
        // (declared probes, published results for run "c1", running,
        //  want started, want ready, want kill)
        type Row = (Vec<ProbeType>, Vec<(ProbeType, &'static str, ProbeResult)>, bool, bool, bool, Option<ProbeType>);
        let table: Vec<Row> = vec![
            (vec![], vec![], true, true, true, None),
            (vec![], vec![], false, false, false, None),
            (vec![Readiness], vec![], true, true, false, None),
            (vec![Readiness], vec![(Readiness, "c1", Failure)], true, true, false, None),
            (vec![Readiness], vec![(Readiness, "c1", Success)], true, true, true, None),
            (vec![Readiness], vec![(Readiness, "c1", Success)], false, false, false, None),
            // A result about the previous run says nothing about this one.
            (vec![Readiness], vec![(Readiness, "c0", Success)], true, true, false, None),
            (vec![Startup, Readiness], vec![(Readiness, "c1", Success)], true, false, false, None),
            (vec![Startup, Readiness], vec![(Startup, "c1", Unknown), (Readiness, "c1", Success)], true, false, false, None),
            (vec![Startup, Readiness], vec![(Startup, "c1", Success), (Readiness, "c1", Success)], true, true, true, None),
            (vec![Startup], vec![(Startup, "c1", Failure)], true, false, false, Some(Startup)),
            (vec![Liveness], vec![(Liveness, "c1", Success)], true, true, true, None),
            (vec![Liveness], vec![(Liveness, "c1", Failure)], true, true, true, Some(Liveness)),
            (vec![Liveness], vec![(Liveness, "c0", Failure)], true, true, true, None),
            (vec![Liveness, Startup], vec![(Liveness, "c1", Failure), (Startup, "c1", Failure)], true, false, false, Some(Liveness)),
        ];
        for (i, (declared, published, running, started, ready, kill)) in table.into_iter().enumerate() {
            let mut m = Manager::new();
            for t in declared {
                m.declared.insert(("app".into(), t));
            }
            for (t, id, r) in published {
                m.results.set("app", t, Some((id.into(), r)));
            }
            assert_eq!(m.is_started("app", Some("c1"), running), started, "row {i}: started");
            assert_eq!(m.is_ready("app", Some("c1"), running), ready, "row {i}: ready");
            assert_eq!(m.kill_reason("app", "c1"), kill, "row {i}: kill");
        }
    }

    #[tokio::test]
    async fn a_changed_result_rings_once_and_an_unchanged_one_not_at_all() {
        let results = Results::default();
        results.set("app", ProbeType::Readiness, Some(("c1".into(), ProbeResult::Success)));
        tokio::time::timeout(std::time::Duration::from_millis(100), results.changed.notified()).await.expect("the change rang");
        results.set("app", ProbeType::Readiness, Some(("c1".into(), ProbeResult::Success)));
        let rang = tokio::time::timeout(std::time::Duration::from_millis(50), results.changed.notified()).await;
        assert!(rang.is_err(), "the same result again does not ring");
    }
}
