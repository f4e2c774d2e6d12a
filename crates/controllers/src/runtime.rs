//! The controller loop, in kube-runtime's shape.
//!
//! Every controller here is three things: a work queue of object keys
//! (`namespace/name`), an informer cache to look the keys up in, and a
//! `reconcile(obj, ctx) -> Result<Action, Error>` function with an
//! `error_policy(obj, &err, ctx) -> Action`. Event handlers only *enqueue
//! keys*; workers take a key, read the object's current state from the
//! cache and call `reconcile`. That makes every reconcile:
//!
//! - **level-triggered**: it looks at what the world is now, never at the
//!   event that woke it (events coalesce in the queue, and after a relist an
//!   event may stand for many changes);
//! - **idempotent**: running it twice in a row does nothing the second time,
//!   because the first run's writes are what the second run observes (and
//!   where the cache lags behind our own writes, *expectations* or an
//!   optimistic-concurrency 409 stop us from acting twice).
//!
//! The [`Action`] a reconcile returns says when to look again even if
//! nothing changes: a ReplicaSet whose pods become available after
//! `minReadySeconds`, a Deployment whose progress deadline will pass. The
//! error policy turns a failure into an `Action` too; the usual one is
//! [`Action::requeue_with_backoff`], the queue's per-key exponential
//! back-off.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use client::workqueue::WorkQueue;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// What to do with a key after reconciling it, as kube-runtime's `Action`.
///
/// Note that a requeue is a *minimum* wait for a timer-driven look; any
/// change to the object or its dependents wakes the controller sooner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    requeue_after: Option<Duration>,
    backoff: bool,
}

impl Action {
    /// Look again after `after`, whether or not anything changes.
    pub fn requeue(after: Duration) -> Self {
        Action { requeue_after: Some(after), backoff: false }
    }

    /// Only look again when a watched object changes.
    pub fn await_change() -> Self {
        Action { requeue_after: None, backoff: false }
    }

    /// Look again after the key's back-off, which doubles with every
    /// consecutive failure (see `client::workqueue`).
    pub fn requeue_with_backoff() -> Self {
        Action { requeue_after: None, backoff: true }
    }

    /// The earlier of two requeues (`await_change` is "never").
    pub fn min(self, other: Action) -> Action {
        match (self.requeue_after, other.requeue_after) {
            (Some(a), Some(b)) => Action::requeue(a.min(b)),
            (Some(_), None) => self,
            _ => other,
        }
    }

    pub fn requeue_after(&self) -> Option<Duration> {
        self.requeue_after
    }
}

/// The error policy every controller here uses: log, then retry with the
/// key's back-off. A 409 Conflict is routine (our cache was a step behind a
/// write), so it is logged quietly.
pub fn default_error_policy(controller: &str, key: &str, err: &Error) -> Action {
    if err.is_conflict() {
        tracing::debug!(controller, key, error = %err, "conflict; will retry with a fresh copy");
    } else {
        tracing::warn!(controller, key, error = %err, "reconcile failed; will retry");
    }
    Action::requeue_with_backoff()
}

/// One controller's queue, context and object lookup; [`Controller::run`]
/// drives its workers.
pub struct Controller<K, C> {
    /// Used in logs: `replicaset`, `deployment`, `garbagecollector`.
    pub name: &'static str,
    pub queue: WorkQueue<String>,
    pub ctx: Arc<C>,
    /// Finds the current state of a key, normally in an informer cache.
    /// `None` means the object is gone and there is nothing to reconcile.
    pub lookup: fn(&C, &str) -> Option<Arc<K>>,
}

impl<K, C> Controller<K, C>
where
    K: Send + Sync + 'static,
    C: Send + Sync + 'static,
{
    /// Runs `workers` workers until `cancel`, then shuts the queue down and
    /// waits for in-flight reconciles to finish.
    pub async fn run<R, Fut>(
        self,
        workers: usize,
        reconcile: R,
        error_policy: fn(Arc<K>, &Error, Arc<C>) -> Action,
        cancel: CancellationToken,
    ) where
        R: Fn(Arc<K>, Arc<C>) -> Fut + Copy + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, Error>> + Send + 'static,
    {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let queue = self.queue.clone();
            let ctx = self.ctx.clone();
            let (name, lookup) = (self.name, self.lookup);
            tasks.spawn(async move {
                while let Some(key) = queue.get().await {
                    let action = match lookup(&ctx, &key) {
                        None => Action::await_change(),
                        Some(obj) => match reconcile(obj.clone(), ctx.clone()).await {
                            Ok(action) => {
                                queue.forget(&key);
                                action
                            }
                            Err(err) => {
                                tracing::debug!(controller = name, key, error = %err, "reconcile error");
                                error_policy(obj, &err, ctx.clone())
                            }
                        },
                    };
                    if action.backoff {
                        queue.add_rate_limited(key.clone());
                    } else if let Some(after) = action.requeue_after {
                        queue.add_after(key.clone(), after);
                    }
                    queue.done(&key);
                }
            });
        }
        cancel.cancelled().await;
        self.queue.shut_down();
        while tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_prefers_the_sooner_requeue() {
        let s = |n| Action::requeue(Duration::from_secs(n));
        let cases = [
            (s(5), s(3), Some(3)),
            (s(5), Action::await_change(), Some(5)),
            (Action::await_change(), s(7), Some(7)),
            (Action::await_change(), Action::await_change(), None),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.min(b).requeue_after(), want.map(Duration::from_secs), "{a:?} min {b:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn worker_reconciles_each_key_and_requeues_on_request() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Ctx {
            runs: AtomicUsize,
        }
        async fn reconcile(obj: Arc<String>, ctx: Arc<Ctx>) -> Result<Action, Error> {
            let n = ctx.runs.fetch_add(1, Ordering::SeqCst);
            // The first run asks to be looked at again in a minute.
            Ok(if n == 0 && obj.as_str() == "ns/a" { Action::requeue(Duration::from_secs(60)) } else { Action::await_change() })
        }
        fn policy(_: Arc<String>, _: &Error, _: Arc<Ctx>) -> Action {
            Action::requeue_with_backoff()
        }
        let ctx = Arc::new(Ctx { runs: AtomicUsize::new(0) });
        let queue = WorkQueue::new();
        let controller = Controller {
            name: "test",
            queue: queue.clone(),
            ctx: ctx.clone(),
            lookup: |_: &Ctx, k: &str| Some(Arc::new(k.to_string())),
        };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(controller.run(2, reconcile, policy, cancel.clone()));
        queue.add("ns/a".to_string());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(ctx.runs.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(ctx.runs.load(Ordering::SeqCst), 2, "requeued after 60s");
        cancel.cancel();
        task.await.unwrap();
    }
}
