//! The scheduler's driver: informers in, one scheduling loop, bindings
//! out (upstream `scheduler.go` and `schedule_one.go`'s `ScheduleOne`).
//!
//! The loop takes one pod at a time from the queue and decides
//! synchronously against a snapshot of the cache, so two decisions never
//! race for the same room. The binding — a network round trip — runs in
//! its own task, which is safe because the pod was assumed on its node
//! before the loop moved on.

use std::sync::Arc;
use std::time::Duration;

use client::events::{EventType, Recorder};
use client::informer::Informer;
use client::{Api, Client, ListParams};
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cache::SchedulerCache;
use crate::eventhandlers::{is_assigned, node_handler, pod_handler};
use crate::framework::types::pod_key;
use crate::framework::PodInfo;
use crate::plugins::default_framework;
use crate::plugins::pod_topology_spread::Workloads;
use crate::queue::{ClusterEvent, QueuedPodInfo, Requeue, SchedulingQueue};
use crate::schedule_one::{Algorithm, ScheduleError};
use crate::{Error, SCHEDULER_NAME};

/// How long shutdown waits for bindings already sent to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the scheduler until `cancel` fires: watches pods and nodes, and
/// binds every pending pod whose `spec.schedulerName` is empty or
/// `default-scheduler` to a node that fits it.
pub async fn run(client: Client, cancel: CancellationToken) -> Result<(), Error> {
    let queue = SchedulingQueue::new();
    let cache = SchedulerCache::new();
    let nodes = Informer::spawn(
        Api::<Node>::all(client.clone()),
        ListParams::default(),
        cancel.clone(),
        node_handler(queue.clone(), cache.clone()),
    );
    // All pods, bound ones included: they are what occupies the nodes.
    let pods =
        Informer::spawn(Api::<Pod>::all(client.clone()), ListParams::default(), cancel.clone(), pod_handler(queue.clone(), cache.clone()));
    // What system-default topology spreading reads to find a pod's
    // siblings; only their caches matter, so changes wake nothing (as
    // upstream's PodTopologySpread registers no events for them).
    let services = Informer::spawn(Api::<Service>::all(client.clone()), ListParams::default(), cancel.clone(), |_| {});
    let replica_sets = Informer::spawn(Api::<ReplicaSet>::all(client.clone()), ListParams::default(), cancel.clone(), |_| {});
    let stateful_sets = Informer::spawn(Api::<StatefulSet>::all(client.clone()), ListParams::default(), cancel.clone(), |_| {});
    // Deciding before the caches are filled would place pods on nodes
    // that only look empty.
    tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        _ = async {
            nodes.wait_synced().await;
            pods.wait_synced().await;
            services.wait_synced().await;
            replica_sets.wait_synced().await;
            stateful_sets.wait_synced().await;
        } => {}
    }
    let workloads = Workloads { services: services.cache, replica_sets: replica_sets.cache, stateful_sets: stateful_sets.cache };
    tracing::info!(scheduler = SCHEDULER_NAME, "caches synced; scheduling");

    let mut scheduler = Scheduler {
        client: client.clone(),
        recorder: Recorder::new(client, SCHEDULER_NAME, None),
        queue: queue.clone(),
        cache,
        algorithm: Algorithm::new(default_framework(workloads)),
        tasks: JoinSet::new(),
    };
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break,
            next = queue.pop() => next,
        };
        let Some((info, cycle)) = next else { break };
        scheduler.schedule_one(info, cycle);
        // Reap finished binding and event tasks so the set stays small.
        while let Some(done) = scheduler.tasks.try_join_next() {
            if let Err(e) = done {
                tracing::error!(error = %e, "scheduler task failed");
            }
        }
    }
    queue.close();
    let drain = async { while scheduler.tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!("abandoning bindings still in flight at shutdown");
        scheduler.tasks.abort_all();
    }
    Ok(())
}

/// The loop's state: what one scheduling cycle needs.
struct Scheduler {
    client: Client,
    recorder: Recorder,
    queue: SchedulingQueue,
    cache: SchedulerCache,
    algorithm: Algorithm,
    /// Bindings and events in flight.
    tasks: JoinSet<()>,
}

impl Scheduler {
    /// One scheduling cycle for one pod: decide, assume, and start the binding.
    fn schedule_one(&mut self, info: QueuedPodInfo, cycle: u64) {
        let pod = info.pod.clone();
        let key = pod_key(&pod);
        // Upstream's skipPodSchedule: a pod being deleted, or one already
        // placed (a stale copy re-queued by an update), is not scheduled.
        if pod.metadata.deletion_timestamp.is_some() || is_assigned(&pod) || self.cache.contains_pod(&key) {
            self.queue.done(&key);
            return;
        }
        let result = PodInfo::new(pod.clone()).map_err(|e| ScheduleError::Error(format!("pod {key}: {e}"))).and_then(|pod_info| {
            let node = self.algorithm.schedule_pod(&pod_info, &self.cache.snapshot())?;
            Ok((pod_info, node))
        });
        match result {
            Ok((pod_info, node)) => {
                if let Err(e) = self.cache.assume_pod(&pod_info, &node) {
                    tracing::error!(pod = %key, error = %e, "cannot assume pod");
                    self.queue.requeue(info, cycle, Requeue::Error);
                    return;
                }
                tracing::debug!(pod = %key, node = %node, attempts = info.attempts, "assumed");
                self.spawn_binding(info, cycle, node);
            }
            Err(err) => {
                tracing::debug!(pod = %key, attempts = info.attempts, reason = %err, "unschedulable");
                // The rejecting plugins decide which events wake the pod.
                let mut info = info;
                info.unschedulable_plugins = match &err {
                    ScheduleError::Unschedulable(fit) => fit.diagnosis.unschedulable_plugins.clone(),
                    ScheduleError::NoNodesAvailable | ScheduleError::Error(_) => Default::default(),
                };
                let how = match err {
                    ScheduleError::NoNodesAvailable | ScheduleError::Unschedulable(_) => Requeue::Unschedulable,
                    ScheduleError::Error(_) => Requeue::Error,
                };
                // One event per attempt; attempts are spaced by the backoff.
                let recorder = self.recorder.clone();
                let message = err.to_string();
                self.tasks.spawn(async move {
                    recorder.record(pod.as_ref(), EventType::Warning, "FailedScheduling", &message).await;
                });
                self.queue.requeue(info, cycle, how);
            }
        }
    }

    /// The binding cycle: write the Binding; on failure forget the
    /// assumption (freeing the room for others) and retry after backoff.
    fn spawn_binding(&mut self, info: QueuedPodInfo, cycle: u64, node: String) {
        let (client, recorder, queue, cache) = (self.client.clone(), self.recorder.clone(), self.queue.clone(), self.cache.clone());
        self.tasks.spawn(async move {
            let pod: Arc<Pod> = info.pod.clone();
            let key = pod_key(&pod);
            let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
            let name = pod.metadata.name.clone().unwrap_or_default();
            match client.bind(&namespace, &name, &node).await {
                Ok(()) => {
                    queue.done(&key);
                    tracing::info!(pod = %key, node = %node, "bound");
                    let message = format!("Successfully assigned {namespace}/{name} to {node}");
                    recorder.record(pod.as_ref(), EventType::Normal, "Scheduled", &message).await;
                }
                Err(e) => {
                    tracing::warn!(pod = %key, node = %node, error = %e, "binding failed");
                    cache.forget_pod(&key);
                    // The room the assumption held is free again.
                    queue.move_all_to_active_or_backoff(ClusterEvent::AssignedPodDelete);
                    queue.requeue(info, cycle, Requeue::Error);
                    let message = format!("Binding rejected: {e}");
                    recorder.record(pod.as_ref(), EventType::Warning, "FailedScheduling", &message).await;
                }
            }
        });
    }
}
