//! The informers the controller-manager shares among its controllers, as
//! kube-controller-manager's `SharedInformerFactory`.
//!
//! Six kinds are watched — pods, ReplicaSets and Deployments across all
//! namespaces, the Namespaces and Nodes themselves, and the node heartbeat
//! Leases in `kube-node-lease` — each with one reflector and one cache,
//! however many controllers read them. Every change is forwarded into one channel; a
//! dispatcher task hands it to each controller's [`EventHandler`], which
//! does nothing but update expectations and enqueue keys. The channel also
//! breaks a knot: a handler needs several caches (a pod event is routed to
//! its ReplicaSet through the ReplicaSet cache), but a cache exists only
//! once its informer is spawned with its handler.

use std::sync::Arc;

use client::informer::{Cache, Change, Informer};
use client::{Api, Client, ListParams};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The shared caches, cheap to clone.
#[derive(Clone, Debug)]
pub struct Caches {
    pub pods: Cache<Pod>,
    pub replicasets: Cache<ReplicaSet>,
    pub deployments: Cache<Deployment>,
    /// Keyed by name alone: namespaces are cluster-scoped.
    pub namespaces: Cache<Namespace>,
    /// Keyed by name alone: nodes are cluster-scoped.
    pub nodes: Cache<Node>,
    /// The nodes' heartbeat Leases, keyed `kube-node-lease/<node>`.
    pub node_leases: Cache<Lease>,
}

/// Where nodes renew their heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// One change from one of the shared informers.
#[derive(Debug)]
pub enum Event {
    Pod(Change<Pod>),
    ReplicaSet(Change<ReplicaSet>),
    Deployment(Change<Deployment>),
    Namespace(Change<Namespace>),
    Node(Change<Node>),
    NodeLease(Change<Lease>),
}

/// What a controller does when a shared informer sees a change. Handlers
/// run on the dispatcher task and must not block: they enqueue keys.
pub trait EventHandler: Send + Sync {
    fn on_pod(&self, _change: &Change<Pod>) {}
    fn on_replicaset(&self, _change: &Change<ReplicaSet>) {}
    fn on_deployment(&self, _change: &Change<Deployment>) {}
    fn on_namespace(&self, _change: &Change<Namespace>) {}
    fn on_node(&self, _change: &Change<Node>) {}
    fn on_node_lease(&self, _change: &Change<Lease>) {}
}

/// Starts the shared reflectors (they run until `cancel`) and
/// returns their caches, a handle to wait for their first lists, and the
/// dispatcher that delivers their changes.
pub fn start(client: &Client, cancel: &CancellationToken) -> (Caches, SyncHandle, Dispatcher) {
    let (tx, events) = mpsc::unbounded_channel();
    let pods = Informer::spawn(Api::<Pod>::all(client.clone()), ListParams::default(), cancel.clone(), forward(&tx, Event::Pod));
    let replicasets =
        Informer::spawn(Api::<ReplicaSet>::all(client.clone()), ListParams::default(), cancel.clone(), forward(&tx, Event::ReplicaSet));
    let deployments =
        Informer::spawn(Api::<Deployment>::all(client.clone()), ListParams::default(), cancel.clone(), forward(&tx, Event::Deployment));
    let namespaces =
        Informer::spawn(Api::<Namespace>::all(client.clone()), ListParams::default(), cancel.clone(), forward(&tx, Event::Namespace));
    let nodes = Informer::spawn(Api::<Node>::all(client.clone()), ListParams::default(), cancel.clone(), forward(&tx, Event::Node));
    let node_leases = Informer::spawn(
        Api::<Lease>::namespaced(client.clone(), NODE_LEASE_NAMESPACE),
        ListParams::default(),
        cancel.clone(),
        forward(&tx, Event::NodeLease),
    );
    let caches = Caches {
        pods: pods.cache.clone(),
        replicasets: replicasets.cache.clone(),
        deployments: deployments.cache.clone(),
        namespaces: namespaces.cache.clone(),
        nodes: nodes.cache.clone(),
        node_leases: node_leases.cache.clone(),
    };
    (caches, SyncHandle { pods, replicasets, deployments, namespaces, nodes, node_leases }, Dispatcher { events })
}

/// An informer handler that forwards each change, wrapped, to the dispatcher.
fn forward<K: 'static>(tx: &mpsc::UnboundedSender<Event>, wrap: fn(Change<K>) -> Event) -> impl Fn(Change<K>) + Send + Sync + 'static {
    let tx = tx.clone();
    move |c| {
        // A send fails only once the dispatcher is gone, at shutdown.
        let _ = tx.send(wrap(c));
    }
}

/// Waits for the shared caches' first lists.
pub struct SyncHandle {
    pods: Informer<Pod>,
    replicasets: Informer<ReplicaSet>,
    deployments: Informer<Deployment>,
    namespaces: Informer<Namespace>,
    nodes: Informer<Node>,
    node_leases: Informer<Lease>,
}

impl SyncHandle {
    /// Returns once every cache holds its first full list. Controllers must
    /// not act before, or they would see pods "missing" that merely have not
    /// been listed yet.
    pub async fn wait_synced(&self) {
        self.pods.wait_synced().await;
        self.replicasets.wait_synced().await;
        self.deployments.wait_synced().await;
        self.namespaces.wait_synced().await;
        self.nodes.wait_synced().await;
        self.node_leases.wait_synced().await;
    }
}

/// Delivers the shared informers' changes to the controllers' handlers.
pub struct Dispatcher {
    events: mpsc::UnboundedReceiver<Event>,
}

impl Dispatcher {
    /// Hands every change to every handler until the informers stop.
    pub async fn run(mut self, handlers: Vec<Arc<dyn EventHandler>>) {
        while let Some(event) = self.events.recv().await {
            for h in &handlers {
                match &event {
                    Event::Pod(c) => h.on_pod(c),
                    Event::ReplicaSet(c) => h.on_replicaset(c),
                    Event::Deployment(c) => h.on_deployment(c),
                    Event::Namespace(c) => h.on_namespace(c),
                    Event::Node(c) => h.on_node(c),
                    Event::NodeLease(c) => h.on_node_lease(c),
                }
            }
        }
    }
}
