//! # The controller-manager: making the world match the spec
//!
//! Kubernetes objects are wishes. A ReplicaSet says "three pods like this
//! should exist"; a Deployment says "my pods should run this template,
//! and changing it should not take the service down". Nothing in the
//! api-server makes those wishes come true. *Controllers* do: each watches
//! some kinds, compares what is wished (`spec`) with what is (other
//! objects, `status`), acts to close the gap, and reports what it sees in
//! `status`. kube-controller-manager is one process running dozens of them;
//! tinykube's runs four.
//!
//! Every controller here has the same shape, kube-runtime's:
//! informers keep local caches of the objects; event handlers turn changes
//! into *keys* on a rate-limited work queue; workers call
//! `reconcile(obj, ctx) -> Result<Action, Error>` for each key, with an
//! `error_policy` deciding when to retry a failure. Reconcile is
//! **level-triggered** — it reads the current state, never the event that
//! woke it — and **idempotent** — running it again changes nothing more.
//! That is what lets events coalesce, informers relist after a lost watch,
//! and the whole controller-manager restart at any moment without harm.
//!
//! The controllers build on each other: the Deployment controller only
//! writes ReplicaSets, the ReplicaSet controller only writes pods, the
//! scheduler binds those pods, and the agents run them. Deleting works the
//! same way in reverse: the garbage collector follows owner references
//! down from a deleted Deployment — at once in the background, or, when
//! the delete asked for it with a finalizer, in the foreground (owner
//! last) or by orphaning the dependents — and the namespace controller
//! empties a namespace being deleted before letting it go. A controller
//! whose object is being deleted stops creating children, so it never
//! fights the collector.
//!
//! Nodes have controllers of their own. The node IPAM controller gives
//! each new Node its slice of the pod network (`spec.podCIDR`); the node
//! lifecycle controller watches the nodes' heartbeats and, when one goes
//! silent, marks it `Unknown` and taints it; the taint-eviction controller
//! then removes the pods from the tainted node once their tolerations run
//! out, and the ReplicaSet controller replaces them elsewhere. That chain,
//! from a missed heartbeat to a pod running on another host, is how a
//! cluster heals.
//!
//! Where tinykube simplifies: seven controllers (ReplicaSet, Deployment,
//! garbage collector, namespace, node IPAM, node lifecycle, taint
//! eviction; plus the certificate approver and signer, run apart because
//! they need the cluster CA's key) rather than upstream's dozens; no leader
//! election yet, so run one controller-manager per cluster; the garbage
//! collector's graph covers Deployments, ReplicaSets and pods (see
//! [`garbagecollector`]); scale-down does not rank pods by node
//! co-location; deprecated rollback annotations are not supported (a
//! rollback is simply a template change back to an old revision, as
//! `kubectl rollout undo` does it today).
//!
//! # Layout
//! - [`runtime`]: [`Action`], the error policy and the worker loop every
//!   controller runs.
//! - [`informers`]: the pod, ReplicaSet, Deployment, Namespace, Node and
//!   node Lease informers the controllers share, and the dispatcher
//!   feeding their event handlers.
//! - [`expectations`]: creations and deletions in flight, so a controller
//!   does not act twice before its cache catches up.
//! - [`refmanager`]: controller references; adopting and releasing.
//! - [`podutil`]: active, ready, available; the order pods are deleted in.
//! - [`replicaset`]: the ReplicaSet controller; pure decisions in
//!   `replicaset::manage` and `replicaset::status`.
//! - [`certificates`]: approving and signing kubelets' certificate requests.
//! - [`deployment`]: the Deployment controller; pure decisions in
//!   `deployment::{hash, rolling, scaling, status, util}`.
//! - [`garbagecollector`]: cascading deletion along owner references:
//!   background, foreground (`foregroundDeletion`) and orphan (`orphan`).
//! - [`namespace`]: empties a terminating namespace, then removes its
//!   `kubernetes` finalizer.
//! - [`nodeipam`]: gives every Node a `podCIDR` from the cluster CIDR.
//! - [`nodelifecycle`]: heartbeats, `Unknown` conditions, condition taints
//!   and pods marked not ready.
//! - [`tainteviction`]: deletes pods from nodes with `NoExecute` taints
//!   they do not (or no longer) tolerate.
//! - [`retry`]: read, edit and write back objects we do not own, retrying
//!   on conflict.
//! - [`Error`]: the one error type.

pub mod certificates;
pub mod deployment;
pub mod error;
pub mod expectations;
pub mod garbagecollector;
pub mod informers;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podutil;
pub mod refmanager;
pub mod replicaset;
pub mod retry;
pub mod runtime;
pub mod tainteviction;

use std::sync::Arc;

use client::Client;
use tokio_util::sync::CancellationToken;

pub use error::Error;
pub use runtime::Action;
use runtime::Controller;

/// Workers per controller: how many objects of one kind are reconciled at
/// once (upstream defaults to 5 for ReplicaSets and Deployments, 20 for the
/// garbage collector; a learning cluster needs fewer).
const WORKERS: usize = 4;

/// The controller-manager's settings, kube-controller-manager's flags of
/// the same names. [`Config::default`] is upstream 1.32's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `--cluster-cidr`: the pod network nodes get their ranges from.
    pub cluster_cidr: api::cidr::Cidr,
    /// `--node-cidr-mask-size`: the size of each node's range.
    pub node_cidr_mask_size: u8,
    /// `--node-monitor-period` and `--node-monitor-grace-period`.
    pub node_monitor: nodelifecycle::Monitor,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster_cidr: nodeipam::DEFAULT_CLUSTER_CIDR.parse().expect("the default cluster CIDR parses"),
            node_cidr_mask_size: nodeipam::DEFAULT_NODE_CIDR_MASK_SIZE,
            node_monitor: nodelifecycle::Monitor::default(),
        }
    }
}

impl Config {
    /// Checks the settings before anything starts, with the message the
    /// user should see.
    pub fn validate(&self) -> Result<(), String> {
        nodeipam::CidrSet::new(self.cluster_cidr, self.node_cidr_mask_size)?;
        if self.node_monitor.period.is_zero() {
            return Err("--node-monitor-period must be greater than 0".into());
        }
        Ok(())
    }
}

/// Runs the controller-manager: starts the shared informers, waits for
/// their caches to fill, then runs the ReplicaSet, Deployment, garbage
/// collector, namespace, node IPAM, node lifecycle and taint-eviction
/// controllers until `cancel` fires. Returns once every worker has
/// finished its current reconcile.
pub async fn run(client: Client, config: Config, cancel: CancellationToken) -> Result<(), Error> {
    let cidrs = nodeipam::CidrSet::new(config.cluster_cidr, config.node_cidr_mask_size)
        .map_err(|reason| Error::Invalid { key: "--node-cidr-mask-size".into(), reason })?;
    let (caches, synced, dispatcher) = informers::start(&client, &cancel);

    let replicasets = replicaset::Context::new(client.clone(), caches.clone());
    let deployments = deployment::Context::new(client.clone(), caches.clone());
    let gc = garbagecollector::Context::new(client.clone(), caches.clone());
    let namespaces = namespace::Context::new(client.clone(), caches.clone());
    let ipam = nodeipam::Context::new(client.clone(), caches.clone(), cidrs);
    let lifecycle = nodelifecycle::Context::new(client.clone(), caches.clone(), config.node_monitor);
    let evictions = tainteviction::Context::new(client.clone(), caches);

    // Handlers enqueue from the first event on; workers wait for the sync.
    let dispatch = tokio::spawn(dispatcher.run(vec![
        replicasets.clone() as Arc<dyn informers::EventHandler>,
        deployments.clone(),
        gc.clone(),
        namespaces.clone(),
        ipam.clone(),
        lifecycle.clone(),
        evictions.clone(),
    ]));
    tokio::select! {
        _ = synced.wait_synced() => tracing::info!("controller-manager caches synced"),
        _ = cancel.cancelled() => {
            dispatch.abort();
            return Ok(());
        }
    }

    // Before any node is given a range, every range already given is taken.
    ipam.occupy_existing();

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(
        Controller {
            name: "replicaset",
            queue: replicasets.queue.clone(),
            ctx: replicasets,
            lookup: replicaset::Context::lookup,
        }
        .run(WORKERS, replicaset::reconcile, replicaset::error_policy, cancel.clone()),
    );
    tasks.spawn(
        Controller {
            name: "deployment",
            queue: deployments.queue.clone(),
            ctx: deployments,
            lookup: deployment::Context::lookup,
        }
        .run(WORKERS, deployment::reconcile, deployment::error_policy, cancel.clone()),
    );
    tasks.spawn(
        Controller {
            name: "garbagecollector",
            queue: gc.queue.clone(),
            ctx: gc,
            lookup: garbagecollector::Context::lookup,
        }
        .run(WORKERS, garbagecollector::reconcile, garbagecollector::error_policy, cancel.clone()),
    );
    tasks.spawn(
        Controller {
            name: "namespace",
            queue: namespaces.queue.clone(),
            ctx: namespaces,
            lookup: namespace::Context::lookup,
        }
        .run(WORKERS, namespace::reconcile, namespace::error_policy, cancel.clone()),
    );
    tasks.spawn(
        Controller { name: "nodeipam", queue: ipam.queue.clone(), ctx: ipam, lookup: nodeipam::Context::lookup }
            // One worker hands out ranges in order, as upstream's one
            // allocator goroutine does.
            .run(1, nodeipam::reconcile, nodeipam::error_policy, cancel.clone()),
    );
    tasks.spawn(
        Controller {
            name: "nodelifecycle",
            queue: lifecycle.queue.clone(),
            ctx: lifecycle,
            lookup: nodelifecycle::Context::lookup,
        }
        .run(WORKERS, nodelifecycle::reconcile, nodelifecycle::error_policy, cancel.clone()),
    );
    tasks.spawn(
        Controller {
            name: "tainteviction",
            queue: evictions.queue.clone(),
            ctx: evictions,
            lookup: tainteviction::Context::lookup,
        }
        .run(WORKERS, tainteviction::reconcile, tainteviction::error_policy, cancel.clone()),
    );
    while tasks.join_next().await.is_some() {}
    // The informers stop on `cancel`, which closes the dispatcher's channel.
    dispatch.abort();
    Ok(())
}
