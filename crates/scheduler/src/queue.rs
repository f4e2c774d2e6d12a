//! The scheduling queue: which pending pod to try next, and when to try
//! again one that did not fit (upstream `internal/queue/scheduling_queue.go`).
//!
//! A pending pod is always in exactly one of three places, or *in flight*
//! (popped, being scheduled or bound):
//!
//! - **activeQ**: ready to be tried, highest `spec.priority` first, then
//!   first come first served (upstream's `PrioritySort`).
//! - **backoffQ**: failed recently; waits out a per-pod backoff that starts
//!   at 1 s and doubles with every attempt up to 10 s
//!   ([`POD_INITIAL_BACKOFF`], [`POD_MAX_BACKOFF`]), then moves to activeQ.
//! - **unschedulable pods**: did not fit anywhere. Trying again is useless
//!   until the cluster changes, so they wait for a [`ClusterEvent`] — a node
//!   added or changed, a pod deleted — which moves them to backoffQ (if
//!   their backoff has not run out) or activeQ. A pod left there 5 minutes
//!   is moved anyway, in case an event was missed.
//!
//! A cluster event that arrives while a pod is in flight must not be lost:
//! the pod was evaluated against the old state. The queue remembers the
//! cycle of the last move request, and a pod whose cycle began before it
//! goes to backoffQ instead of the unschedulable pods (upstream's
//! `moveRequestCycle`). Updates and deletions of an in-flight pod are
//! remembered the same way.
//!
//! Which events wake which pods: a pod remembers the plugins that rejected
//! it, and an event moves it only if one of them cares. Most events — a
//! node added or changed, a pod gone — can help any plugin. An assigned pod
//! *added* or *relabelled* can only help PodTopologySpread (it may raise
//! the emptiest domain's count), so it wakes only the pods that plugin
//! rejected; otherwise every binding would retry every unschedulable pod.
//!
//! Where tinykube simplifies: upstream asks each plugin, per event and per
//! pod, whether the change can make that pod schedulable (queueing hints:
//! does the added pod match the rejected pod's selector?); tinykube decides
//! by event kind and rejecting plugin alone, and backoff keeps the retries
//! spaced.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::framework::types::pod_key;
use crate::plugins::pod_topology_spread;

/// The first retry delay of a pod that failed (upstream `podInitialBackoffDuration`).
pub const POD_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest retry delay (upstream `podMaxBackoffDuration`).
pub const POD_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a pod may sit among the unschedulable pods before it is tried
/// again regardless (upstream `podMaxInUnschedulablePodsDuration`).
pub const POD_MAX_IN_UNSCHEDULABLE_PODS_DURATION: Duration = Duration::from_secs(5 * 60);

/// A change in the cluster that may let an unschedulable pod fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterEvent {
    NodeAdd,
    /// A node changed in a way that matters to a filter (labels, taints,
    /// allocatable, cordon, readiness) — not a heartbeat.
    NodeUpdate,
    /// A pod that held resources on a node went away (or an assumption was
    /// forgotten after a failed binding).
    AssignedPodDelete,
    /// A pod appeared on a node: bound by anyone, this scheduler included.
    AssignedPodAdd,
    /// A pod on a node changed its labels or began terminating, which
    /// changes what topology spreading counts.
    AssignedPodUpdate,
    /// The 5-minute flush of pods left unschedulable.
    UnschedulableTimeout,
}

impl ClusterEvent {
    /// Whether the event can make a pod fit that `plugins` rejected
    /// (upstream's plugins declare this in `EventsToRegister`).
    pub fn may_help(self, plugins: &BTreeSet<&'static str>) -> bool {
        match self {
            ClusterEvent::AssignedPodAdd | ClusterEvent::AssignedPodUpdate => plugins.contains(pod_topology_spread::NAME),
            ClusterEvent::NodeAdd | ClusterEvent::NodeUpdate | ClusterEvent::AssignedPodDelete | ClusterEvent::UnschedulableTimeout => true,
        }
    }
}

/// A pod in the queue, with the bookkeeping its backoff needs.
#[derive(Debug, Clone)]
pub struct QueuedPodInfo {
    pub pod: Arc<Pod>,
    /// Scheduling attempts so far; [`SchedulingQueue::pop`] counts one.
    pub attempts: u32,
    /// When the pod last entered the queue; its backoff runs from here.
    pub timestamp: Instant,
    /// The plugins that rejected some node in the last attempt (upstream
    /// `UnschedulablePlugins`); they decide which events wake the pod.
    pub unschedulable_plugins: BTreeSet<&'static str>,
}

/// How a failed attempt is put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// No node fit: wait for a cluster event (or the 5-minute flush).
    Unschedulable,
    /// Something failed that a retry may fix (a binding error): backoffQ.
    Error,
}

/// Where a queued pod is; the keys let it be removed from its sub-queue.
#[derive(Debug, Clone, Copy)]
enum Place {
    Active((Reverse<i32>, u64)),
    Backoff((Instant, u64)),
    Unschedulable,
}

#[derive(Debug)]
struct Entry {
    info: QueuedPodInfo,
    place: Place,
}

#[derive(Debug)]
struct State {
    active: BTreeMap<(Reverse<i32>, u64), String>,
    backoff: BTreeMap<(Instant, u64), String>,
    pods: HashMap<String, Entry>,
    /// Popped pods; `Some` holds a newer version seen while in flight.
    in_flight: HashMap<String, Option<Arc<Pod>>>,
    /// Orders pods within a priority, and makes sub-queue keys unique.
    seq: u64,
    scheduling_cycle: u64,
    move_request_cycle: u64,
    initial_backoff: Duration,
    max_backoff: Duration,
    closed: bool,
}

impl State {
    fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.initial_backoff;
        for _ in 1..attempts {
            if d >= self.max_backoff {
                break;
            }
            d *= 2;
        }
        d.min(self.max_backoff)
    }

    fn backoff_expiry(&self, info: &QueuedPodInfo) -> Instant {
        info.timestamp + self.backoff_duration(info.attempts)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn push_active(&mut self, key: String, info: QueuedPodInfo) {
        let priority = info.pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        let slot = (Reverse(priority), self.next_seq());
        self.active.insert(slot, key.clone());
        self.pods.insert(key, Entry { info, place: Place::Active(slot) });
    }

    fn push_backoff(&mut self, key: String, info: QueuedPodInfo) {
        let slot = (self.backoff_expiry(&info), self.next_seq());
        self.backoff.insert(slot, key.clone());
        self.pods.insert(key, Entry { info, place: Place::Backoff(slot) });
    }

    /// Active if its backoff is over, else backoffQ.
    fn push_active_or_backoff(&mut self, key: String, info: QueuedPodInfo, now: Instant) {
        if self.backoff_expiry(&info) > now {
            self.push_backoff(key, info);
        } else {
            self.push_active(key, info);
        }
    }

    fn remove(&mut self, key: &str) -> Option<QueuedPodInfo> {
        let entry = self.pods.remove(key)?;
        match entry.place {
            Place::Active(slot) => {
                self.active.remove(&slot);
            }
            Place::Backoff(slot) => {
                self.backoff.remove(&slot);
            }
            Place::Unschedulable => {}
        }
        Some(entry.info)
    }

    /// The unschedulable pods `event` may help.
    fn unschedulable_keys(&self, event: ClusterEvent) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, e)| matches!(e.place, Place::Unschedulable) && event.may_help(&e.info.unschedulable_plugins))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Moves every pod whose backoff is over from backoffQ to activeQ, and
    /// every pod left unschedulable too long out of the unschedulable pods.
    fn flush(&mut self, now: Instant) {
        while let Some((&slot, _)) = self.backoff.first_key_value() {
            if slot.0 > now {
                break;
            }
            if let Some(key) = self.backoff.remove(&slot) {
                if let Some(entry) = self.pods.remove(&key) {
                    self.push_active(key, entry.info);
                }
            }
        }
        let stale: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, e)| matches!(e.place, Place::Unschedulable) && e.info.timestamp + POD_MAX_IN_UNSCHEDULABLE_PODS_DURATION <= now)
            .map(|(k, _)| k.clone())
            .collect();
        if !stale.is_empty() {
            tracing::debug!(pods = stale.len(), event = ?ClusterEvent::UnschedulableTimeout, "moving pods");
        }
        for key in stale {
            if let Some(info) = self.remove(&key) {
                self.push_active_or_backoff(key, info, now);
            }
        }
    }

    /// When `pop` must look again even if nothing is added.
    fn next_deadline(&self) -> Option<Instant> {
        let backoff = self.backoff.first_key_value().map(|(slot, _)| slot.0);
        let unschedulable = self
            .pods
            .values()
            .filter(|e| matches!(e.place, Place::Unschedulable))
            .map(|e| e.info.timestamp + POD_MAX_IN_UNSCHEDULABLE_PODS_DURATION)
            .min();
        match (backoff, unschedulable) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Sizes of the sub-queues, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub in_flight: usize,
}

/// A cloneable handle to the scheduling queue. Informer handlers add and
/// move pods; the scheduling loop pops them.
#[derive(Debug, Clone)]
pub struct SchedulingQueue {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

impl Default for SchedulingQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl SchedulingQueue {
    /// A queue with upstream's backoff: 1 s doubling to 10 s.
    pub fn new() -> Self {
        Self::with_backoff(POD_INITIAL_BACKOFF, POD_MAX_BACKOFF)
    }

    pub fn with_backoff(initial: Duration, max: Duration) -> Self {
        SchedulingQueue {
            state: Arc::new(Mutex::new(State {
                active: BTreeMap::new(),
                backoff: BTreeMap::new(),
                pods: HashMap::new(),
                in_flight: HashMap::new(),
                seq: 0,
                scheduling_cycle: 0,
                move_request_cycle: 0,
                initial_backoff: initial,
                max_backoff: max,
                closed: false,
            })),
            notify: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The backoff after `attempts` attempts: 1 s, 2 s, 4 s, 8 s, 10 s, 10 s...
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        self.lock().backoff_duration(attempts)
    }

    /// A pending pod was added or changed. A new pod goes to activeQ; a
    /// queued one is replaced by its new version, and if it was waiting as
    /// unschedulable the change may have made it fit, so it moves on; an
    /// in-flight one is remembered for when its attempt ends.
    pub fn add_or_update(&self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        let now = Instant::now();
        let mut s = self.lock();
        if s.closed {
            return;
        }
        if let Some(slot) = s.in_flight.get_mut(&key) {
            *slot = Some(pod);
            return;
        }
        match s.pods.get_mut(&key) {
            Some(entry) if !matches!(entry.place, Place::Unschedulable) => {
                entry.info.pod = pod;
                return;
            }
            Some(_) => {
                if let Some(mut info) = s.remove(&key) {
                    info.pod = pod;
                    s.push_active_or_backoff(key, info, now);
                }
            }
            None => {
                let info = QueuedPodInfo { pod, attempts: 0, timestamp: now, unschedulable_plugins: BTreeSet::new() };
                s.push_active(key, info);
            }
        }
        drop(s);
        self.notify.notify_one();
    }

    /// The pod was deleted, bound, or is otherwise no longer this
    /// scheduler's to place.
    pub fn delete(&self, key: &str) {
        let mut s = self.lock();
        s.remove(key);
        s.in_flight.remove(key);
    }

    /// Waits for the next pod to try and returns it with its scheduling
    /// cycle number; `None` once the queue is closed. The pod is in flight
    /// until [`SchedulingQueue::done`] or [`SchedulingQueue::requeue`].
    pub async fn pop(&self) -> Option<(QueuedPodInfo, u64)> {
        loop {
            let notified = self.notify.notified();
            let deadline = {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                s.flush(Instant::now());
                if let Some((_, key)) = s.active.pop_first() {
                    if let Some(entry) = s.pods.remove(&key) {
                        let mut info = entry.info;
                        info.attempts += 1;
                        s.scheduling_cycle += 1;
                        let cycle = s.scheduling_cycle;
                        s.in_flight.insert(key, None);
                        return Some((info, cycle));
                    }
                    continue;
                }
                s.next_deadline()
            };
            match deadline {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// The pod's attempt succeeded (it is bound); it leaves the queue.
    pub fn done(&self, key: &str) {
        self.lock().in_flight.remove(key);
    }

    /// Puts back a pod whose attempt in scheduling cycle `cycle` failed
    /// (upstream `AddUnschedulableIfNotPresent`). A pod deleted or bound
    /// meanwhile is dropped. A pod that changed while in flight, or that
    /// missed a cluster event during its cycle, goes to backoffQ rather than
    /// waiting for an event that already happened.
    pub fn requeue(&self, mut info: QueuedPodInfo, cycle: u64, how: Requeue) {
        let key = pod_key(&info.pod);
        let now = Instant::now();
        let mut s = self.lock();
        let Some(updated) = s.in_flight.remove(&key) else {
            return;
        };
        if s.closed || s.pods.contains_key(&key) {
            return;
        }
        let changed = updated.is_some();
        if let Some(pod) = updated {
            info.pod = pod;
        }
        info.timestamp = now;
        if how == Requeue::Error || changed || s.move_request_cycle >= cycle {
            s.push_backoff(key, info);
        } else {
            s.pods.insert(key, Entry { info, place: Place::Unschedulable });
        }
        drop(s);
        // pop() must learn the new backoff deadline.
        self.notify.notify_one();
    }

    /// A cluster event may have made unschedulable pods fit: move those it
    /// may help to backoffQ or activeQ (upstream
    /// `MoveAllToActiveOrBackoffQueue`).
    pub fn move_all_to_active_or_backoff(&self, event: ClusterEvent) {
        let now = Instant::now();
        let mut s = self.lock();
        s.move_request_cycle = s.scheduling_cycle;
        let keys = s.unschedulable_keys(event);
        if keys.is_empty() {
            return;
        }
        tracing::debug!(?event, pods = keys.len(), "moving unschedulable pods");
        for key in keys {
            if let Some(info) = s.remove(&key) {
                s.push_active_or_backoff(key, info, now);
            }
        }
        drop(s);
        self.notify.notify_one();
    }

    /// Ends the queue: `pop` returns `None` from now on.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    pub fn counts(&self) -> QueueCounts {
        let s = self.lock();
        QueueCounts {
            active: s.active.len(),
            backoff: s.backoff.len(),
            unschedulable: s.pods.values().filter(|e| matches!(e.place, Place::Unschedulable)).count(),
            in_flight: s.in_flight.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::pod;

    fn pending(name: &str) -> Arc<Pod> {
        Arc::new(pod(name))
    }

    fn with_priority(name: &str, priority: i32) -> Arc<Pod> {
        let mut p = pod(name);
        if let Some(spec) = p.spec.as_mut() {
            spec.priority = Some(priority);
        }
        Arc::new(p)
    }

    async fn pop_name(q: &SchedulingQueue) -> (String, QueuedPodInfo, u64) {
        let (info, cycle) = q.pop().await.expect("queue open");
        (info.pod.metadata.name.clone().unwrap_or_default(), info, cycle)
    }

    /// `pop` with a deadline: `None` if nothing becomes ready in time.
    async fn try_pop(q: &SchedulingQueue, within: Duration) -> Option<String> {
        tokio::time::timeout(within, q.pop()).await.ok().flatten().and_then(|(i, _)| i.pod.metadata.name.clone())
    }

    #[test]
    fn backoff_doubles_from_one_to_ten_seconds() {
        let q = SchedulingQueue::new();
        let got: Vec<u64> = (1..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn higher_priority_first_then_fifo() {
        let q = SchedulingQueue::new();
        q.add_or_update(pending("a"));
        q.add_or_update(with_priority("urgent", 1000));
        q.add_or_update(pending("b"));
        q.add_or_update(pending("a")); // an update does not reorder
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(pop_name(&q).await.0);
        }
        assert_eq!(order, ["urgent", "a", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pod_waits_for_an_event_then_its_backoff() {
        let q = SchedulingQueue::new();
        q.add_or_update(pending("web"));
        let (_, info, cycle) = pop_name(&q).await;
        assert_eq!(info.attempts, 1);
        q.requeue(info, cycle, Requeue::Unschedulable);
        assert_eq!(q.counts(), QueueCounts { unschedulable: 1, ..Default::default() });

        // Without an event it is not retried, even after its backoff.
        assert_eq!(try_pop(&q, Duration::from_secs(30)).await, None);

        // A node appears; its 1 s backoff ran out long ago: straight to activeQ.
        q.move_all_to_active_or_backoff(ClusterEvent::NodeAdd);
        assert_eq!(q.counts().active, 1);
        let (_, info, cycle) = pop_name(&q).await;
        assert_eq!(info.attempts, 2);
        q.requeue(info, cycle, Requeue::Unschedulable);

        // An event right away: the pod is still backing off (2 s after two
        // attempts), so it goes to backoffQ and pops only once that is over.
        let start = Instant::now();
        q.move_all_to_active_or_backoff(ClusterEvent::NodeUpdate);
        assert_eq!(q.counts().backoff, 1);
        let (name, _, _) = pop_name(&q).await;
        assert_eq!(name, "web");
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    /// An assigned pod added or relabelled wakes only the pods that
    /// topology spreading rejected; a deleted one wakes them all.
    #[tokio::test(start_paused = true)]
    async fn pod_events_wake_only_the_plugins_they_can_help() {
        let q = SchedulingQueue::new();
        q.add_or_update(pending("spread"));
        q.add_or_update(pending("cpu"));
        for _ in 0..2 {
            let (name, mut info, cycle) = pop_name(&q).await;
            let plugin = if name == "spread" { pod_topology_spread::NAME } else { "NodeResourcesFit" };
            info.unschedulable_plugins = BTreeSet::from([plugin]);
            q.requeue(info, cycle, Requeue::Unschedulable);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        q.move_all_to_active_or_backoff(ClusterEvent::AssignedPodAdd);
        assert_eq!(q.counts(), QueueCounts { active: 1, unschedulable: 1, ..Default::default() });
        assert_eq!(pop_name(&q).await.0, "spread");
        q.move_all_to_active_or_backoff(ClusterEvent::AssignedPodUpdate);
        assert_eq!(q.counts(), QueueCounts { unschedulable: 1, in_flight: 1, ..Default::default() });
        q.move_all_to_active_or_backoff(ClusterEvent::AssignedPodDelete);
        assert_eq!(pop_name(&q).await.0, "cpu");
    }

    #[tokio::test(start_paused = true)]
    async fn errors_retry_after_a_growing_backoff() {
        let q = SchedulingQueue::new();
        q.add_or_update(pending("p"));
        let mut waits = Vec::new();
        for _ in 0..6 {
            let start = Instant::now();
            let (_, info, cycle) = pop_name(&q).await;
            waits.push(start.elapsed().as_secs());
            q.requeue(info, cycle, Requeue::Error);
        }
        assert_eq!(waits, [0, 1, 2, 4, 8, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn event_during_the_cycle_is_not_lost() {
        let q = SchedulingQueue::new();
        q.add_or_update(pending("p"));
        let (_, info, cycle) = pop_name(&q).await;
        // A node is added while the pod is being evaluated against the old nodes.
        q.move_all_to_active_or_backoff(ClusterEvent::NodeAdd);
        q.requeue(info, cycle, Requeue::Unschedulable);
        assert_eq!(q.counts(), QueueCounts { backoff: 1, ..Default::default() });
        assert_eq!(try_pop(&q, Duration::from_millis(1001)).await.as_deref(), Some("p"));
    }

    #[tokio::test(start_paused = true)]
    async fn updates_and_deletes_while_in_flight() {
        let q = SchedulingQueue::new();
        q.add_or_update(pending("changed"));
        q.add_or_update(pending("gone"));
        let (_, changed, c1) = pop_name(&q).await;
        let (_, gone, c2) = pop_name(&q).await;
        assert_eq!(q.counts().in_flight, 2);

        let mut newer = pod("changed");
        newer.metadata.labels = Some(crate::plugins::testing::labels(&[("v", "2")]));
        q.add_or_update(Arc::new(newer));
        q.delete("default/gone");

        q.requeue(changed, c1, Requeue::Unschedulable);
        q.requeue(gone, c2, Requeue::Unschedulable);
        assert_eq!(q.counts(), QueueCounts { backoff: 1, ..Default::default() }, "deleted pod dropped, updated pod retried");
        let (_, info, _) = pop_name(&q).await;
        assert!(info.pod.metadata.labels.is_some(), "the retry uses the newer version");
    }

    #[tokio::test(start_paused = true)]
    async fn update_of_an_unschedulable_pod_moves_it() {
        let q = SchedulingQueue::new();
        q.add_or_update(pending("p"));
        let (_, info, cycle) = pop_name(&q).await;
        q.requeue(info, cycle, Requeue::Unschedulable);
        tokio::time::sleep(Duration::from_secs(5)).await;
        q.add_or_update(pending("p"));
        assert_eq!(q.counts().active, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_are_flushed_after_five_minutes() {
        let q = SchedulingQueue::new();
        q.add_or_update(pending("p"));
        let (_, info, cycle) = pop_name(&q).await;
        let start = Instant::now();
        q.requeue(info, cycle, Requeue::Unschedulable);
        let (name, _, _) = pop_name(&q).await;
        assert_eq!(name, "p");
        assert_eq!(start.elapsed(), POD_MAX_IN_UNSCHEDULABLE_PODS_DURATION);
    }

    #[tokio::test(start_paused = true)]
    async fn done_and_close() {
        let q = SchedulingQueue::new();
        q.add_or_update(pending("p"));
        let (_, _, _) = pop_name(&q).await;
        q.done("default/p");
        assert_eq!(q.counts(), QueueCounts::default());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.pop().await.is_none() }
        });
        tokio::task::yield_now().await;
        q.close();
        assert!(waiter.await.unwrap_or(false), "pop returns None once closed");
    }
}
