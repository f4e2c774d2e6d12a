//! One probe worker: a (container, probe type) pair probed every period.
//!
//! Upstream's `worker.go` is a goroutine whose loop body, `doProbe`, first
//! decides whether to probe at all, then probes and applies the
//! thresholds. Here the decisions are a pure state machine,
//! [`ProbeState`], tested as tables, and `ProbeWorker::run` is the thin
//! loop around it that sleeps, calls the prober and publishes results.
//!
//! A tick, in upstream's order:
//! 1. No container yet: wait. A container id not seen before is a new
//!    run: its result starts at the probe type's initial value and a
//!    worker that was *on hold* (see 5) resumes.
//! 2. On hold: wait for a new run.
//! 3. Not running: the result for this run becomes failure; the worker
//!    stops for good if the container will never run again.
//! 4. Within `initialDelaySeconds` of the start: wait. Until the startup
//!    probe succeeded (`started`), only the startup probe runs; once it
//!    has, only the others do.
//! 5. Probe. `failureThreshold` failures (or `successThreshold` successes)
//!    in a row publish the result; fewer leave it as it was. A liveness or
//!    startup failure that is published puts the worker on hold: the
//!    container is about to be killed, and probing it while it stops only
//!    adds noise.
//!
//! A probe that *errored* (a port name that does not exist, an
//! unsupported handler) gives no result at all: the tick is thrown away.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ProbeResult, ProbeType, Prober, Results};

/// `periodSeconds` when unset.
const DEFAULT_PERIOD_SECONDS: i32 = 10;
/// `failureThreshold` when unset.
const DEFAULT_FAILURE_THRESHOLD: i32 = 3;

/// What a probe worker knows of its container: the pod worker's latest
/// view (upstream's workers read it from the status manager).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSnapshot {
    /// The latest run's `containerID`; `None` before the first run.
    pub container_id: Option<String>,
    /// When the run started, while it runs.
    pub running_since: Option<Instant>,
    /// Whether a run that ended will be followed by another.
    pub will_restart: bool,
    /// The container status's `started` (its startup probe succeeded, or it
    /// has none).
    pub started: bool,
}

/// A probe's timing and thresholds, with upstream's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub initial_delay: Duration,
    pub period: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Settings {
    /// Reads a probe spec. Zero or negative values (which the api-server's
    /// validation would refuse) fall back to the defaults, and liveness and
    /// startup probes always use a success threshold of 1, the only value
    /// upstream's validation allows for them.
    pub fn of(probe_type: ProbeType, probe: &Probe) -> Self {
        let positive = |v: Option<i32>, default: i32| v.filter(|v| *v > 0).unwrap_or(default);
        let success_threshold = match probe_type {
            ProbeType::Readiness => positive(probe.success_threshold, 1),
            ProbeType::Liveness | ProbeType::Startup => 1,
        };
        Settings {
            initial_delay: Duration::from_secs(probe.initial_delay_seconds.filter(|d| *d > 0).unwrap_or(0) as u64),
            period: Duration::from_secs(positive(probe.period_seconds, DEFAULT_PERIOD_SECONDS) as u64),
            success_threshold: success_threshold as u32,
            failure_threshold: positive(probe.failure_threshold, DEFAULT_FAILURE_THRESHOLD) as u32,
        }
    }
}

/// What a tick decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Run the probe now.
    Probe,
    /// Not now; `until` is when waiting can end on its own (the initial
    /// delay running out), if known.
    Wait { until: Option<Instant> },
    /// The container will never run again: the worker ends.
    Stop,
}

/// The decisions of one probe worker, free of I/O.
#[derive(Debug, Clone)]
pub struct ProbeState {
    probe_type: ProbeType,
    settings: Settings,
    /// The run the worker is looking at.
    container_id: Option<String>,
    /// A liveness or startup failure was published for this run: wait for
    /// the next one.
    on_hold: bool,
    /// The latest probe result and how many times in a row it came.
    last_result: Option<ProbeResult>,
    result_run: u32,
    /// What the worker says about `container_id`, as the results manager
    /// would hold it.
    published: Option<(String, ProbeResult)>,
}

impl ProbeState {
    pub fn new(probe_type: ProbeType, settings: Settings) -> Self {
        ProbeState {
            probe_type,
            settings,
            container_id: None,
            on_hold: false,
            last_result: None,
            result_run: 0,
            published: None,
        }
    }

    /// The result the worker publishes now, for which run.
    pub fn published(&self) -> Option<&(String, ProbeResult)> {
        self.published.as_ref()
    }

    /// Steps 1 to 4: whether to probe now.
    pub fn decide(&mut self, c: &ContainerSnapshot, now: Instant) -> Step {
        let Some(id) = &c.container_id else {
            // Not created yet (or gone): nothing to say about it.
            self.container_id = None;
            self.published = None;
            return Step::Wait { until: None };
        };
        if self.container_id.as_ref() != Some(id) {
            self.container_id = Some(id.clone());
            self.published = Some((id.clone(), self.probe_type.initial_result()));
            self.on_hold = false;
            // Upstream carries the streak over to the new run; a new run
            // starting its count afresh is what the thresholds mean.
            self.last_result = None;
            self.result_run = 0;
        }
        if self.on_hold {
            return Step::Wait { until: None };
        }
        let Some(since) = c.running_since else {
            self.published = Some((id.clone(), ProbeResult::Failure));
            return if c.will_restart { Step::Wait { until: None } } else { Step::Stop };
        };
        let delay_ends = since + self.settings.initial_delay;
        if now < delay_ends {
            return Step::Wait { until: Some(delay_ends) };
        }
        let gated = match self.probe_type {
            // A started container is not probed for startup again.
            ProbeType::Startup => c.started,
            ProbeType::Liveness | ProbeType::Readiness => !c.started,
        };
        if gated {
            return Step::Wait { until: None };
        }
        Step::Probe
    }

    /// Step 5: folds one probe result in; returns whether the published
    /// result changed.
    pub fn record(&mut self, result: ProbeResult) -> bool {
        let Some(id) = self.container_id.clone() else { return false };
        if self.last_result == Some(result) {
            self.result_run += 1;
        } else {
            self.last_result = Some(result);
            self.result_run = 1;
        }
        let below = match result {
            ProbeResult::Failure => self.result_run < self.settings.failure_threshold,
            ProbeResult::Success => self.result_run < self.settings.success_threshold,
            ProbeResult::Unknown => false,
        };
        if below {
            return false;
        }
        let new = Some((id, result));
        let changed = self.published != new;
        self.published = new;
        if result == ProbeResult::Failure && matches!(self.probe_type, ProbeType::Liveness | ProbeType::Startup) {
            self.on_hold = true;
            self.result_run = 0;
        }
        changed
    }
}

/// The task behind one [`ProbeState`].
pub(crate) struct ProbeWorker {
    container: String,
    probe_type: ProbeType,
    state: ProbeState,
    prober: Arc<dyn Prober>,
    snapshots: watch::Receiver<ContainerSnapshot>,
    results: Arc<Results>,
    cancel: CancellationToken,
}

impl ProbeWorker {
    pub(crate) fn new(
        container: String,
        probe_type: ProbeType,
        probe: &Probe,
        prober: Arc<dyn Prober>,
        snapshots: watch::Receiver<ContainerSnapshot>,
        results: Arc<Results>,
        cancel: CancellationToken,
    ) -> Self {
        let state = ProbeState::new(probe_type, Settings::of(probe_type, probe));
        ProbeWorker { container, probe_type, state, prober, snapshots, results, cancel }
    }

    fn publish(&self) {
        self.results.set(&self.container, self.probe_type, self.state.published().cloned());
    }

    /// Ticks every period until the container will never run again or the
    /// worker is cancelled; a changed snapshot or the end of the initial
    /// delay is a tick too.
    pub(crate) async fn run(mut self) {
        let period = self.state.settings.period;
        let mut next_tick = Instant::now();
        loop {
            let snapshot = self.snapshots.borrow_and_update().clone();
            let now = Instant::now();
            match self.state.decide(&snapshot, now) {
                Step::Stop => {
                    self.publish();
                    return;
                }
                Step::Wait { until } => {
                    self.publish();
                    if next_tick <= now {
                        next_tick = now + period;
                    }
                    if let Some(until) = until {
                        next_tick = next_tick.min(until);
                    }
                }
                Step::Probe => {
                    self.publish();
                    next_tick = now + period;
                    let Some(id) = snapshot.container_id.clone() else { continue };
                    let result = tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        result = self.prober.probe(self.probe_type, &id) => result,
                    };
                    // `None`: the probe errored; the tick is thrown away.
                    if let Some(result) = result {
                        if self.state.record(result) {
                            self.publish();
                        }
                    }
                }
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep_until(next_tick) => {}
                changed = self.snapshots.changed() => if changed.is_err() { return },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use ProbeResult::{Failure, Success, Unknown};

    fn settings(initial_delay: u64, success: u32, failure: u32) -> Settings {
        Settings {
            initial_delay: Duration::from_secs(initial_delay),
            period: Duration::from_secs(10),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    fn running(id: &str, since: Instant, started: bool) -> ContainerSnapshot {
        ContainerSnapshot { container_id: Some(id.into()), running_since: Some(since), will_restart: true, started }
    }

    #[test]
    fn settings_default_like_upstream() {
        let s = Settings::of(ProbeType::Readiness, &Probe::default());
        assert_eq!(
            s,
            Settings {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                success_threshold: 1,
                failure_threshold: 3
            }
        );
        let p = Probe {
            success_threshold: Some(3),
            failure_threshold: Some(5),
            period_seconds: Some(2),
            initial_delay_seconds: Some(4),
            ..Default::default()
        };
        assert_eq!(Settings::of(ProbeType::Readiness, &p), settings(4, 3, 5).with_period(2));
        assert_eq!(Settings::of(ProbeType::Liveness, &p).success_threshold, 1, "liveness needs one success");
        assert_eq!(Settings::of(ProbeType::Startup, &p).success_threshold, 1, "startup needs one success");
    }

    impl Settings {
        fn with_period(mut self, secs: u64) -> Self {
            self.period = Duration::from_secs(secs);
            self
        }
    }

    /// Thresholds: a sequence of probe results and what is published after
    /// each one.
    #[test]
    fn thresholds_decide_when_a_result_is_published() {
        // (probe type, success threshold, failure threshold, results, published after each)
        type Row = (ProbeType, u32, u32, Vec<ProbeResult>, Vec<ProbeResult>);
        let table: Vec<Row> = vec![
            // Readiness starts at failure; one success flips it.
            (ProbeType::Readiness, 1, 3, vec![Success], vec![Success]),
            // Three failures in a row are needed to flip it back.
            (ProbeType::Readiness, 1, 3, vec![Success, Failure, Failure, Failure], vec![Success, Success, Success, Failure]),
            // A success in between restarts the count.
            (ProbeType::Readiness, 1, 3, vec![Success, Failure, Failure, Success, Failure, Failure], vec![Success; 6]),
            // successThreshold 2: one success is not enough.
            (ProbeType::Readiness, 2, 1, vec![Success, Success, Failure, Success], vec![Failure, Success, Failure, Failure]),
            // Liveness starts at success; failureThreshold 1 flips it at once.
            (ProbeType::Liveness, 1, 1, vec![Failure], vec![Failure]),
            (ProbeType::Liveness, 1, 2, vec![Failure, Success, Failure, Failure], vec![Success, Success, Success, Failure]),
            // Startup is unknown until it decides.
            (ProbeType::Startup, 1, 3, vec![Failure, Failure, Success], vec![Unknown, Unknown, Success]),
            (ProbeType::Startup, 1, 2, vec![Failure, Failure], vec![Unknown, Failure]),
        ];
        let t0 = Instant::now();
        for (i, (probe_type, success, failure, results, want)) in table.into_iter().enumerate() {
            let mut state = ProbeState::new(probe_type, settings(0, success, failure));
            let started = probe_type != ProbeType::Startup;
            assert_eq!(state.decide(&running("c1", t0, started), t0), Step::Probe, "row {i}");
            let got: Vec<ProbeResult> = results
                .into_iter()
                .map(|r| {
                    state.record(r);
                    state.published().map(|(_, r)| *r).expect("a result for a running container")
                })
                .collect();
            assert_eq!(got, want, "row {i}: {probe_type:?}");
        }
    }

    /// When a tick probes, waits or stops.
    #[test]
    fn decisions_follow_initial_delay_startup_gating_and_container_state() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let exited =
            |will_restart: bool| ContainerSnapshot { container_id: Some("c1".into()), running_since: None, will_restart, started: false };
        // (probe type, initial delay, snapshot, now, step, published)
        type Row = (ProbeType, u64, ContainerSnapshot, Instant, Step, Option<ProbeResult>);
        let table: Vec<Row> = vec![
            (ProbeType::Readiness, 0, ContainerSnapshot::default(), t0, Step::Wait { until: None }, None),
            (ProbeType::Readiness, 0, running("c1", t0, true), t0, Step::Probe, Some(Failure)),
            (ProbeType::Liveness, 0, running("c1", t0, true), t0, Step::Probe, Some(Success)),
            (ProbeType::Readiness, 5, running("c1", t0, true), s(3), Step::Wait { until: Some(s(5)) }, Some(Failure)),
            (ProbeType::Readiness, 5, running("c1", t0, true), s(5), Step::Probe, Some(Failure)),
            // The startup probe gates the others until `started`...
            (ProbeType::Liveness, 0, running("c1", t0, false), s(1), Step::Wait { until: None }, Some(Success)),
            (ProbeType::Readiness, 0, running("c1", t0, false), s(1), Step::Wait { until: None }, Some(Failure)),
            (ProbeType::Startup, 0, running("c1", t0, false), s(1), Step::Probe, Some(Unknown)),
            // ... and is done once it is.
            (ProbeType::Startup, 0, running("c1", t0, true), s(1), Step::Wait { until: None }, Some(Unknown)),
            // A container that exited is failing until its next run...
            (ProbeType::Readiness, 0, exited(true), t0, Step::Wait { until: None }, Some(Failure)),
            // ... and a worker whose container never runs again ends.
            (ProbeType::Liveness, 0, exited(false), t0, Step::Stop, Some(Failure)),
        ];
        for (i, (probe_type, delay, snapshot, now, step, published)) in table.into_iter().enumerate() {
            let mut state = ProbeState::new(probe_type, settings(delay, 1, 3));
            assert_eq!(state.decide(&snapshot, now), step, "row {i}");
            assert_eq!(state.published().map(|(_, r)| *r), published, "row {i}");
        }
    }

    #[test]
    fn a_published_liveness_failure_holds_until_a_new_container() {
        let t0 = Instant::now();
        let mut state = ProbeState::new(ProbeType::Liveness, settings(0, 1, 2));
        assert_eq!(state.decide(&running("c1", t0, true), t0), Step::Probe);
        state.record(Failure);
        assert_eq!(state.decide(&running("c1", t0, true), t0), Step::Probe, "one failure of two");
        assert!(state.record(Failure));
        assert_eq!(state.published(), Some(&("c1".to_string(), Failure)));
        assert_eq!(state.decide(&running("c1", t0, true), t0), Step::Wait { until: None }, "on hold while it is killed");
        // The restarted container starts from success, with a fresh count.
        assert_eq!(state.decide(&running("c2", t0, true), t0), Step::Probe);
        assert_eq!(state.published(), Some(&("c2".to_string(), Success)));
        state.record(Failure);
        assert_eq!(state.published(), Some(&("c2".to_string(), Success)), "one failure of two again");
    }

    /// A prober that answers from a script and remembers when it was asked.
    struct Scripted {
        answers: Mutex<VecDeque<Option<ProbeResult>>>,
        asked: Mutex<Vec<Duration>>,
        t0: Instant,
    }

    #[async_trait::async_trait]
    impl Prober for Scripted {
        async fn probe(&self, _: ProbeType, _: &str) -> Option<ProbeResult> {
            self.asked.lock().unwrap().push(Instant::now() - self.t0);
            self.answers.lock().unwrap().pop_front().unwrap_or(Some(Success))
        }
    }

    struct Harness {
        prober: Arc<Scripted>,
        snapshots: watch::Sender<ContainerSnapshot>,
        results: Arc<Results>,
        cancel: CancellationToken,
        t0: Instant,
    }

    fn start(probe_type: ProbeType, probe: Probe, answers: Vec<Option<ProbeResult>>) -> Harness {
        let t0 = Instant::now();
        let prober = Arc::new(Scripted { answers: Mutex::new(answers.into()), asked: Mutex::default(), t0 });
        let (snapshots, rx) = watch::channel(ContainerSnapshot::default());
        let results = Arc::new(Results::default());
        let cancel = CancellationToken::new();
        let worker = ProbeWorker::new("app".into(), probe_type, &probe, prober.clone(), rx, results.clone(), cancel.clone());
        tokio::spawn(worker.run());
        Harness { prober, snapshots, results, cancel, t0 }
    }

    impl Harness {
        fn asked_at(&self) -> Vec<u64> {
            self.prober.asked.lock().unwrap().iter().map(|d| d.as_secs()).collect()
        }
        fn result(&self, id: &str, t: ProbeType) -> Option<ProbeResult> {
            self.results.get("app", t, id)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_worker_waits_the_initial_delay_then_probes_every_period() {
        let probe = Probe { initial_delay_seconds: Some(5), period_seconds: Some(2), ..Default::default() };
        let h = start(ProbeType::Readiness, probe, vec![Some(Failure), Some(Success)]);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(h.asked_at().is_empty(), "no container, no probe");
        h.snapshots.send_replace(running("c1", h.t0 + Duration::from_secs(3), true));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(h.result("c1", ProbeType::Readiness), Some(Failure), "unready until the first success");
        assert!(h.asked_at().is_empty(), "within the initial delay");
        tokio::time::sleep(Duration::from_secs(8)).await;
        // Started at 3 s, delay 5 s: probes at 8, 10.
        assert_eq!(h.asked_at(), [8, 10]);
        assert_eq!(h.result("c1", ProbeType::Readiness), Some(Success));
        h.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_fails_after_the_threshold_and_holds_until_a_new_container() {
        let probe = Probe { period_seconds: Some(1), failure_threshold: Some(3), ..Default::default() };
        let h = start(ProbeType::Liveness, probe, vec![Some(Failure), None, Some(Failure), Some(Failure), Some(Failure)]);
        h.snapshots.send_replace(running("c1", h.t0, true));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // Probes at 0, 1 (errored: thrown away), 2: two failures counted.
        assert_eq!(h.result("c1", ProbeType::Liveness), Some(Success));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(h.result("c1", ProbeType::Liveness), Some(Failure));
        assert_eq!(h.asked_at(), [0, 1, 2, 3], "on hold after the failure");
        // The container is restarted: a new id, probed at once.
        h.snapshots.send_replace(running("c2", Instant::now(), true));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(h.asked_at(), [0, 1, 2, 3, 5]);
        // Its first failure is one of three: it is still alive.
        assert_eq!(h.result("c2", ProbeType::Liveness), Some(Success));
        assert_eq!(h.result("c1", ProbeType::Liveness), None, "results belong to a run");
        h.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_startup_worker_stops_probing_once_started() {
        let probe = Probe { period_seconds: Some(1), failure_threshold: Some(10), ..Default::default() };
        let h = start(ProbeType::Startup, probe, vec![Some(Failure), Some(Failure), Some(Success)]);
        h.snapshots.send_replace(running("c1", h.t0, false));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(h.result("c1", ProbeType::Startup), Some(Unknown));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(h.result("c1", ProbeType::Startup), Some(Success));
        // The pod worker folds the success into `started`.
        h.snapshots.send_replace(running("c1", h.t0, true));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(h.asked_at(), [0, 1, 2]);
        assert_eq!(h.result("c1", ProbeType::Startup), Some(Success));
        h.cancel.cancel();
    }
}
