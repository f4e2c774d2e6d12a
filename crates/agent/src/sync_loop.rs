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
            tx.send_replace(Some(pod));
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
