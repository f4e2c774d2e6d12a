//! # The scheduler: which node runs each pod
//!
//! A Pod is created without a node. Until something sets its
//! `spec.nodeName`, no agent will run it: it is *pending*. The scheduler is
//! that something. It watches pending pods and the nodes, picks a node for
//! each pod, and records the choice with a single write, a *Binding*
//! (`POST pods/<name>/binding`), which the api-server turns into
//! `spec.nodeName` and a `PodScheduled` condition. The agent on that node
//! sees the pod appear in its watch and starts it. The scheduler never
//! talks to agents, and never writes anything but Bindings and Events.
//!
//! Choosing a node is done in kube-scheduler's shape:
//!
//! 1. A **queue** ([`queue`]) hands out pending pods one at a time —
//!    higher priority first — and holds back pods that did not fit: with a
//!    per-pod backoff (1 s doubling to 10 s), and until something changes
//!    in the cluster that could let them fit.
//! 2. A **framework** ([`framework`]) of plugins ([`plugins`]) decides.
//!    *Filter* plugins rule out nodes that cannot run the pod — cordoned,
//!    wrong name, untolerated taint, not ready, wrong labels, not enough
//!    room, too uneven a spread; *Score* plugins rank the rest, and the
//!    best node wins ([`schedule_one`]).
//! 3. A **cache** ([`cache`]) knows, per node, the pods on it and what
//!    they request. Scheduling is by *requests*, not by measured usage: a node
//!    with 4 cpu holds pods requesting 4 cpu in total, however idle they
//!    are. The chosen node is charged at once (*assumed*), before the
//!    Binding is even sent, so a burst of pods cannot all squeeze into the
//!    same free space, and topology spreading counts the pod at once.
//! 4. The **Binding** is sent asynchronously; an event says what happened:
//!    `Scheduled` ("Successfully assigned default/web-1 to node-1") or
//!    `FailedScheduling` with the diagnosis users know:
//!    "0/3 nodes are available: 1 node(s) had untolerated taint
//!    {dedicated: gpu}, 2 Insufficient cpu."
//!
//! Where tinykube simplifies: one profile (`default-scheduler`) with the
//! plugins above and no configuration; no preemption (so no PostFilter,
//! and nominated nodes are ignored); no inter-pod affinity, ports, volumes
//! or extended resources; two scores (topology spread and least
//! allocated) with round-robin ties instead of random ones; every node is
//! evaluated (no `percentageOfNodesToScore`); unschedulable pods are
//! retried on the events their rejecting plugins care about, decided by
//! the kind of event rather than by per-pod queueing hints. Node readiness is checked directly by a `NodeReady` filter
//! rather than only through the taints the node lifecycle controller adds
//! (see [`plugins::node_ready`]). The scheduler does not set the
//! `PodScheduled=False` condition on pods it cannot place, because its
//! only writes are Bindings and Events; the `FailedScheduling` event
//! carries the same message.
//!
//! # Layout
//! - [`scheduler`]: [`run`], the driver: informers, the scheduling loop and
//!   the binding tasks.
//! - [`eventhandlers`]: how pod and node changes reach the queue and the cache.
//! - [`queue`]: activeQ, backoffQ and the unschedulable pods.
//! - [`cache`]: nodes and the pods on them, with assumed pods.
//! - [`schedule_one`]: one decision — filter, score, select — and the pure
//!   [`schedule_one::schedule_one`] over in-memory nodes and pods.
//! - [`framework`]: the `FilterPlugin` and `ScorePlugin` traits with their
//!   PreFilter, PreScore and NormalizeScore steps, `CycleState`, `Status`,
//!   `NodeInfo`, `PodInfo`, and `FitError` with its message.
//! - [`plugins`]: NodeUnschedulable, NodeName, TaintToleration, NodeReady,
//!   NodeAffinity, NodeResourcesFit and PodTopologySpread, one module each.

pub mod cache;
pub mod eventhandlers;
pub mod framework;
pub mod plugins;
pub mod queue;
pub mod schedule_one;
pub mod scheduler;

pub use scheduler::run;

/// The name pods use in `spec.schedulerName` to ask for this scheduler, and
/// the component its events are reported by.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// What can go wrong in the scheduler. Failed api-server calls are not
/// among them: informers retry their list and watch, and a failed Binding
/// sends its pod back to the queue, so [`run`] returns only when cancelled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pod was assumed while the cache already counted it: a bookkeeping
    /// bug in the scheduling loop, reported instead of double-counting.
    #[error("pod {0} is already in the scheduler cache")]
    PodAlreadyInCache(String),
}
