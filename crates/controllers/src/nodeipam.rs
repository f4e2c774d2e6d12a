//! The node IPAM controller: every node gets its own slice of the pod
//! network (upstream `pkg/controller/nodeipam`, the range allocator that
//! kube-controller-manager runs with `--allocate-node-cidrs`).
//!
//! Pods get their IPs from their node, so no two nodes may hand out
//! addresses from the same range. The cluster has one pod network,
//! `--cluster-cidr` (`10.244.0.0/16` by default, flannel's), cut into
//! blocks of `--node-cidr-mask-size` bits (`/24`: 256 blocks of 254
//! usable addresses). Each Node without a range gets the next free block in
//! `spec.podCIDR` and `spec.podCIDRs`; its agent then gives its pods
//! addresses from it, and other hosts route the block to the node's
//! `InternalIP`.
//!
//! The allocator's memory is the Nodes themselves: at start it marks every
//! block some Node already holds as taken (a restart never reassigns one),
//! and when a Node is deleted its block is free again. A block, once
//! written, is never changed — the api-server refuses to change a Node's
//! `podCIDRs` once set (pods already have addresses from it), and a node's
//! own agent may not set it at all (NodeRestriction). When every block is
//! taken, a new node waits without a range, with a `CIDRNotAvailable` event
//! saying so, until a node is deleted.
//!
//! [`reconcile`] is level-triggered and idempotent: a Node that has a range
//! is only recorded as holding it; one that has none is given one, and a
//! block already set aside for a node whose write has not reached the
//! cache yet is given again rather than a second one.
//!
//! Where tinykube simplifies: one cluster CIDR, so one IP family (upstream
//! takes two for dual-stack); no Service range to keep out of the pod
//! network; the controller writes the whole Node back guarded by its
//! resourceVersion instead of a strategic merge patch (the effect is the
//! same: only `spec.podCIDR` and `spec.podCIDRs` change).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use api::cidr::Cidr;
use client::dynamic::DynamicApi;
use client::events::{EventType, Recorder};
use client::informer::Change;
use client::workqueue::WorkQueue;
use client::Client;
use k8s_openapi::api::core::v1::Node;
use serde_json::{json, Value};

use crate::informers::{Caches, EventHandler};
use crate::retry::update_live;
use crate::runtime::{default_error_policy, Action};
use crate::Error;

/// Upstream's default `--cluster-cidr` in most distributions (flannel's).
pub const DEFAULT_CLUSTER_CIDR: &str = "10.244.0.0/16";
/// Upstream's default `--node-cidr-mask-size` for an IPv4 cluster CIDR...
pub const DEFAULT_NODE_CIDR_MASK_SIZE: u8 = 24;
/// ... and for an IPv6 one.
pub const DEFAULT_NODE_CIDR_MASK_SIZE_IPV6: u8 = 64;

/// The default node range size for `cluster`'s family.
pub fn default_node_cidr_mask_size(cluster: &Cidr) -> u8 {
    if cluster.bits() == 32 {
        DEFAULT_NODE_CIDR_MASK_SIZE
    } else {
        DEFAULT_NODE_CIDR_MASK_SIZE_IPV6
    }
}
/// The most blocks a cluster CIDR may be cut into, as upstream's 16 bits
/// of difference between the two masks.
const MAX_SUBNET_BITS: u8 = 16;

/// The message upstream's cidrset gives when every block is taken.
pub const NO_CIDRS_REMAINING: &str = "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range";

/// Which blocks of the cluster CIDR are taken, and by which node (upstream
/// `cidrset.CidrSet`). Blocks are handed out round-robin from where the
/// last one was, so a block freed by a deleted node is not reused at once.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Cidr,
    mask: u8,
    count: u64,
    /// Block index -> the node holding it.
    used: BTreeMap<u64, String>,
    next_candidate: u64,
}

/// Why a node's range could not be recorded as taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OccupyError {
    /// The range is not inside the cluster CIDR (a node configured by
    /// hand, or a cluster CIDR changed under existing nodes).
    OutOfRange,
    /// Another node holds it already.
    HeldBy(String),
}

impl CidrSet {
    /// A set over `cluster` cut into blocks of `/mask`, with upstream's
    /// checks on the sizes.
    pub fn new(cluster: Cidr, mask: u8) -> Result<Self, String> {
        if mask < cluster.prefix() || mask > cluster.bits() {
            return Err(format!(
                "--node-cidr-mask-size {mask} must be between the cluster CIDR's prefix length ({}) and {}",
                cluster.prefix(),
                cluster.bits()
            ));
        }
        if mask - cluster.prefix() > MAX_SUBNET_BITS {
            return Err(format!(
                "--node-cidr-mask-size {mask} cuts {cluster} into more than 2^{MAX_SUBNET_BITS} blocks; New CIDR set failed; the node CIDR size is too big"
            ));
        }
        let count = cluster.subnet_count(mask).expect("checked above");
        Ok(CidrSet { cluster, mask, count, used: BTreeMap::new(), next_candidate: 0 })
    }

    /// The next free block, now held by `node`; `None` when all are taken.
    pub fn allocate_next(&mut self, node: &str) -> Option<Cidr> {
        for i in 0..self.count {
            let candidate = (self.next_candidate + i) % self.count;
            if let Entry::Vacant(free) = self.used.entry(candidate) {
                free.insert(node.to_string());
                self.next_candidate = (candidate + 1) % self.count;
                return self.cluster.subnet(self.mask, candidate);
            }
        }
        None
    }

    /// The blocks `cidr` covers (one, or several for a larger range).
    fn blocks(&self, cidr: &Cidr) -> Option<std::ops::Range<u64>> {
        if cidr.bits() != self.cluster.bits() {
            return None;
        }
        let prefix = cidr.prefix().min(self.mask);
        let first = self.cluster.index_of(&Cidr::new(cidr.network(), self.mask)?)?;
        let span = 1u64.checked_shl(u32::from(self.mask - prefix))?;
        // A range larger than the cluster CIDR is not inside it.
        (prefix >= self.cluster.prefix()).then_some(first..first + span)
    }

    /// Records that `node` holds `cidr` (found on it at start, or written
    /// by someone else). Holding it already is fine.
    pub fn occupy(&mut self, cidr: &Cidr, node: &str) -> Result<(), OccupyError> {
        let blocks = self.blocks(cidr).ok_or(OccupyError::OutOfRange)?;
        if let Some(other) = blocks.clone().find_map(|b| self.used.get(&b).filter(|n| *n != node)) {
            return Err(OccupyError::HeldBy(other.clone()));
        }
        for b in blocks {
            self.used.insert(b, node.to_string());
        }
        Ok(())
    }

    /// The block set aside for `node`, if any.
    pub fn held_by(&self, node: &str) -> Option<Cidr> {
        self.used.iter().find(|(_, n)| *n == node).and_then(|(b, _)| self.cluster.subnet(self.mask, *b))
    }

    /// Frees every block `node` holds.
    pub fn release_node(&mut self, node: &str) {
        self.used.retain(|_, n| n != node);
    }

    /// How many blocks are taken.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}

/// The ranges a Node carries, parsed; unparsable ones are left out
/// (validation keeps them from being stored).
pub fn pod_cidrs(node: &Node) -> Vec<Cidr> {
    node.spec.iter().flat_map(|s| s.pod_cidrs.iter().flatten()).filter_map(|c| c.parse().ok()).collect()
}

/// Everything [`reconcile`] needs.
pub struct Context {
    pub client: Client,
    pub caches: Caches,
    /// Keys are node names.
    pub queue: WorkQueue<String>,
    cidrs: Mutex<CidrSet>,
    recorder: Recorder,
}

impl Context {
    pub fn new(client: Client, caches: Caches, cidrs: CidrSet) -> Arc<Self> {
        let recorder = Recorder::new(client.clone(), "cidrAllocator", None);
        Arc::new(Context { client, caches, queue: WorkQueue::new(), cidrs: Mutex::new(cidrs), recorder })
    }

    pub fn lookup(&self, key: &str) -> Option<Arc<Node>> {
        self.caches.nodes.get(key)
    }

    fn cidrs(&self) -> MutexGuard<'_, CidrSet> {
        self.cidrs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks every range the cached Nodes hold as taken. Called once the
    /// caches are synced and before any worker runs, so that no block a
    /// node already has is handed to another (upstream's allocator does
    /// the same when it starts).
    pub fn occupy_existing(&self) {
        let mut cidrs = self.cidrs();
        for node in self.caches.nodes.list() {
            record_held(&mut cidrs, &node);
        }
        tracing::info!(taken = cidrs.len(), "node IPAM: recorded the pod ranges nodes already hold");
    }
}

/// Records the ranges `node` carries as held by it, logging what cannot be.
fn record_held(cidrs: &mut CidrSet, node: &Node) {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    for cidr in pod_cidrs(node) {
        match cidrs.occupy(&cidr, name) {
            Ok(()) => {}
            Err(OccupyError::OutOfRange) => {
                tracing::warn!(node = name, %cidr, "node's podCIDR is outside the cluster CIDR; not tracked")
            }
            Err(OccupyError::HeldBy(other)) => {
                tracing::error!(node = name, %cidr, other = %other, "node's podCIDR is also held by another node")
            }
        }
    }
}

impl EventHandler for Context {
    fn on_node(&self, change: &Change<Node>) {
        match change {
            Change::Applied { new, .. } => self.queue.add(new.metadata.name.clone().unwrap_or_default()),
            Change::Deleted(node) => {
                let name = node.metadata.name.as_deref().unwrap_or_default();
                self.cidrs().release_node(name);
                tracing::info!(node = name, cidrs = ?pod_cidrs(node).iter().map(ToString::to_string).collect::<Vec<_>>(), "node deleted; its pod range is free");
                // A node waiting for a range may have one now.
                for waiting in self.caches.nodes.list().iter().filter(|n| pod_cidrs(n).is_empty()) {
                    self.queue.add(waiting.metadata.name.clone().unwrap_or_default());
                }
            }
        }
    }
}

/// Gives `node` a pod range if it has none; records it as taken if it has.
pub async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = node.metadata.name.clone().unwrap_or_default();
    if !pod_cidrs(&node).is_empty() {
        record_held(&mut ctx.cidrs(), &node);
        return Ok(Action::await_change());
    }
    let allocated = {
        let mut cidrs = ctx.cidrs();
        cidrs.held_by(&name).or_else(|| cidrs.allocate_next(&name))
    };
    let Some(cidr) = allocated else {
        ctx.recorder
            .record(node.as_ref(), EventType::Normal, "CIDRNotAvailable", &format!("Node {name} status is now: CIDRNotAvailable"))
            .await;
        return Err(Error::RangeExhausted { node: name });
    };
    let api = DynamicApi::new(ctx.client.clone(), client::info_of::<Node>(), "");
    let value = cidr.to_string();
    let set = |obj: &mut Value| {
        let has_one = obj["spec"]["podCIDRs"].as_array().is_some_and(|l| !l.is_empty());
        if !has_one {
            obj["spec"]["podCIDR"] = json!(value);
            obj["spec"]["podCIDRs"] = json!([value]);
        }
        !has_one
    };
    let written = match update_live(&api, &name, node.metadata.uid.as_deref(), set).await {
        Ok(written) => written,
        Err(e) => {
            ctx.cidrs().release_node(&name);
            return Err(Error::api(format!("set podCIDR {cidr} on node {name}"), e));
        }
    };
    match written.map(|obj| serde_json::from_value::<Node>(obj).map(|n| pod_cidrs(&n))) {
        Some(Ok(held)) if held == [cidr] => tracing::info!(node = %name, %cidr, "node IPAM: gave the node its pod range"),
        Some(Ok(held)) => {
            // Someone else gave it a range meanwhile: theirs stands.
            let mut cidrs = ctx.cidrs();
            cidrs.release_node(&name);
            for other in held {
                let _ = cidrs.occupy(&other, &name);
            }
        }
        // Gone, or replaced by a new node of that name.
        _ => ctx.cidrs().release_node(&name),
    }
    Ok(Action::await_change())
}

/// The error policy: retry with back-off (an exhausted range is retried
/// too, and sooner when a node is deleted).
pub fn error_policy(node: Arc<Node>, err: &Error, _ctx: Arc<Context>) -> Action {
    default_error_policy("nodeipam", node.metadata.name.as_deref().unwrap_or_default(), err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn masks_are_checked_as_upstream_checks_them() {
        assert!(CidrSet::new(c("10.244.0.0/16"), 24).is_ok());
        assert!(CidrSet::new(c("10.244.0.0/16"), 16).is_ok(), "one block: the whole range");
        assert!(CidrSet::new(c("10.244.0.0/16"), 8).is_err(), "blocks larger than the range");
        assert!(CidrSet::new(c("10.0.0.0/8"), 26).unwrap_err().contains("the node CIDR size is too big"));
        assert!(CidrSet::new(c("10.244.0.0/16"), 33).is_err());
        assert!(CidrSet::new(c("fd00::/48"), 64).is_ok());
    }

    #[test]
    fn blocks_go_round_robin_and_never_twice() {
        let mut set = CidrSet::new(c("10.0.0.0/30"), 32).unwrap();
        let got: Vec<String> = ["a", "b", "c", "d"].iter().map(|n| set.allocate_next(n).unwrap().to_string()).collect();
        assert_eq!(got, ["10.0.0.0/32", "10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"]);
        assert_eq!(set.allocate_next("e"), None, "exhausted");
        set.release_node("b");
        assert_eq!(set.allocate_next("e"), Some(c("10.0.0.1/32")), "the freed block, the only one");
        assert_eq!(set.held_by("e"), Some(c("10.0.0.1/32")));
        assert_eq!(set.held_by("b"), None);
    }

    #[test]
    fn a_freed_block_waits_its_turn() {
        let mut set = CidrSet::new(c("10.244.0.0/16"), 24).unwrap();
        assert_eq!(set.allocate_next("a"), Some(c("10.244.0.0/24")));
        assert_eq!(set.allocate_next("b"), Some(c("10.244.1.0/24")));
        set.release_node("a");
        assert_eq!(set.allocate_next("c"), Some(c("10.244.2.0/24")), "not a's old block at once");
    }

    #[test]
    fn existing_ranges_are_taken_before_anything_is_allocated() {
        let mut set = CidrSet::new(c("10.244.0.0/16"), 24).unwrap();
        set.occupy(&c("10.244.0.0/24"), "old-1").unwrap();
        set.occupy(&c("10.244.1.0/24"), "old-2").unwrap();
        assert_eq!(set.occupy(&c("10.244.1.0/24"), "old-2"), Ok(()), "holding it again is fine");
        assert_eq!(set.occupy(&c("10.244.1.0/24"), "other"), Err(OccupyError::HeldBy("old-2".into())));
        assert_eq!(set.occupy(&c("10.88.0.0/24"), "stray"), Err(OccupyError::OutOfRange));
        assert_eq!(set.occupy(&c("10.0.0.0/8"), "huge"), Err(OccupyError::OutOfRange));
        assert_eq!(set.allocate_next("new"), Some(c("10.244.2.0/24")));
        // A larger range held by hand takes every block it covers.
        set.occupy(&c("10.244.4.0/23"), "big").unwrap();
        assert_eq!(set.allocate_next("n2"), Some(c("10.244.3.0/24")));
        assert_eq!(set.allocate_next("n3"), Some(c("10.244.6.0/24")));
        assert_eq!(set.len(), 7);
    }

    #[test]
    fn a_nodes_ranges_are_read_from_its_spec() {
        let node: Node = serde_json::from_value(json!({"spec": {"podCIDR": "10.244.3.0/24", "podCIDRs": ["10.244.3.0/24"]}})).unwrap();
        assert_eq!(pod_cidrs(&node), [c("10.244.3.0/24")]);
        assert!(pod_cidrs(&Node::default()).is_empty());
    }
}
