//! The sync loop: routes pod changes and container events to pod workers.
//!
//! The kubelet's `syncLoop` reads from several sources — pod updates from
//! the api-server watch, PLEG events from the runtime, timers — and hands
//! each pod's work to that pod's worker. This is the same loop: an
//! informer delivers pods bound to this node, the runtime delivers
//! [`crate::runtime::ContainerEvent`]s, and [`PodWorkers`]
//! keeps one worker per pod uid (a pod deleted and re-created under the same
//! name is a new pod with a new worker).

use std::collections::HashMap;
use std::sync::Arc;

use client::informer::Change;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::runtime::ContainerEvent;
use crate::worker::{Context, PodWorker};

/// One worker per pod uid.
pub struct PodWorkers {
    ctx: Arc<Context>,
    workers: HashMap<String, watch::Sender<Option<Arc<Pod>>>>,
    tasks: JoinSet<String>,
    cancel: CancellationToken,
}

impl PodWorkers {
    pub fn new(ctx: Arc<Context>, cancel: CancellationToken) -> Self {
        PodWorkers { ctx, workers: HashMap::new(), tasks: JoinSet::new(), cancel }
    }

    /// Gives the pod's worker the pod's latest version, starting a worker
    /// for a pod seen for the first time.
    pub fn update(&mut self, pod: Arc<Pod>) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(tx) = self.workers.get(&uid) {
            // The informer's echo of a status write (most often the
            // worker's own) replaces the worker's copy without waking it:
            // a resync for it would turn a just-reported ErrImagePull into
            // ImagePullBackOff at once and record every BackOff event
            // twice. The kubelet's sync loop, too, wakes a pod worker for
            // spec changes, runtime events and timers, not for status. A
            // poke sent before the echo still wakes the worker.
            tx.send_if_modified(|current| {
                let echo = current.as_deref().is_some_and(|old| status_echo(old, &pod));
                *current = Some(pod);
                !echo
            });
            return;
        }
        let (tx, rx) = watch::channel(Some(pod));
        let worker = PodWorker::new(self.ctx.clone());
        let cancel = self.cancel.clone();
        let key = uid.clone();
        self.tasks.spawn(async move {
            worker.run(rx, cancel).await;
            key
        });
        self.workers.insert(uid, tx);
    }

    /// Tells the worker its pod is gone.
    pub fn remove(&mut self, uid: &str) {
        if let Some(tx) = self.workers.get(uid) {
            tx.send_replace(None);
        }
    }

    /// Wakes a worker without a new pod version: a container changed.
    pub fn poke(&self, uid: &str) {
        if let Some(tx) = self.workers.get(uid) {
            tx.send_modify(|_| {});
        }
    }

    fn poke_all(&self) {
        for tx in self.workers.values() {
            tx.send_modify(|_| {});
        }
    }

    /// Applies one informer change.
    pub fn handle(&mut self, change: Change<Pod>) {
        match change {
            Change::Applied { old, new } => {
                // Same name, new uid: the old pod is gone.
                if let Some(old) = old {
                    if old.metadata.uid != new.metadata.uid {
                        self.remove(old.metadata.uid.as_deref().unwrap_or_default());
                    }
                }
                self.update(new);
            }
            Change::Deleted(pod) => self.remove(pod.metadata.uid.as_deref().unwrap_or_default()),
        }
    }

    /// Runs until `cancel`, then waits for every worker to return. Workers
    /// do not stop containers on cancel: the agent's shutdown does.
    pub async fn run(mut self, mut pods: mpsc::UnboundedReceiver<Change<Pod>>, mut events: broadcast::Receiver<ContainerEvent>) {
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                change = pods.recv() => match change {
                    Some(change) => self.handle(change),
                    None => break,
                },
                event = events.recv() => match event {
                    Ok(e) => self.poke(&e.pod_uid),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.poke_all(),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                Some(done) = self.tasks.join_next() => {
                    if let Ok(uid) = done {
                        self.workers.remove(&uid);
                    }
                }
            }
        }
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Whether `new` is `old` with only its status changed (and so its
/// resourceVersion and managedFields).
fn status_echo(old: &Pod, new: &Pod) -> bool {
    let strip = |p: &Pod| {
        let mut p = p.clone();
        p.status = None;
        p.metadata.resource_version = None;
        p.metadata.managed_fields = None;
        p
    };
    strip(old) == strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};

    fn pod(rv: &str, phase: &str, image: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.metadata.resource_version = Some(rv.into());
        p.spec = Some(PodSpec {
            containers: vec![k8s_openapi::api::core::v1::Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
            ..Default::default()
        });
        p.status = Some(PodStatus { phase: Some(phase.into()), ..Default::default() });
        p
    }

    #[test]
    fn only_a_status_change_is_an_echo() {
        let old = pod("1", "Pending", "busybox");
        assert!(status_echo(&old, &pod("2", "Running", "busybox")));
        assert!(!status_echo(&old, &pod("2", "Pending", "busybox:2")), "a new image is a spec change");
        let mut deleting = pod("2", "Pending", "busybox");
        deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()));
        assert!(!status_echo(&old, &deleting), "a deletion is not an echo");
    }
}
