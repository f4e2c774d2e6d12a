//! Routes between nodes: flannel's `host-gw` backend. Every node's pods
//! live in its `spec.podCIDR`; a packet for another node's pod goes to that
//! node's `InternalIP`, which forwards it onto its bridge:
//!
//! ```text
//! ip route replace blackhole 10.244.0.0/16          # the whole cluster range
//! ip route replace 10.244.2.0/24 via 192.168.1.12   # node b's pods
//! ip route replace 10.244.3.0/24 via 192.168.1.13   # node c's pods
//! ```
//!
//! The blackhole under the specific routes is the safety net: a pod range
//! with no route yet (a node just joined, or its route was removed) is
//! dropped here with "no route to host", never sent out by the default
//! route to whatever network the host sits on. The node's own range is
//! reached through its bridge, which is more specific still.
//!
//! The routes follow the Nodes: a watch keeps the set current as nodes
//! come, change address and go, and a periodic pass repairs what someone
//! removed by hand. Host-gw needs every node on one layer-2 network (the
//! next hop must be directly reachable); that is the test hosts' switch and
//! the compose file's network.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use api::cidr::Cidr;
use client::informer::Informer;
use client::{Api, Client, ListParams};
use k8s_openapi::api::core::v1::Node;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::ip::{ip, NetError};

/// How often the routes are checked even when no Node changed.
const RESYNC: Duration = Duration::from_secs(30);

/// The routes this node should have: every other node's pod range, via
/// its InternalIP. Nodes without either are left out (their range stays
/// blackholed until they have both).
pub fn desired(nodes: &[Arc<Node>], me: &str) -> BTreeMap<Cidr, IpAddr> {
    let mut routes = BTreeMap::new();
    for node in nodes {
        if node.metadata.name.as_deref() == Some(me) {
            continue;
        }
        let Some(via) = internal_ip(node) else { continue };
        let spec = node.spec.as_ref();
        let ranges = spec
            .and_then(|s| s.pod_cidrs.clone())
            .filter(|l| !l.is_empty())
            .or_else(|| spec.and_then(|s| s.pod_cidr.clone()).map(|c| vec![c]));
        for range in ranges.unwrap_or_default() {
            if let Ok(range) = range.parse::<Cidr>() {
                if range.network().is_ipv4() == via.is_ipv4() {
                    routes.insert(range, via);
                }
            }
        }
    }
    routes
}

/// A Node's `InternalIP` address.
pub fn internal_ip(node: &Node) -> Option<IpAddr> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    addresses.iter().find(|a| a.type_ == "InternalIP").and_then(|a| a.address.parse().ok())
}

/// Keeps this host's routes to the other nodes' pods current until
/// `cancel`. `cluster` is blackholed first; every failure is logged and
/// retried on the next change or resync.
pub async fn run(client: Client, me: String, cluster: Cidr, cancel: CancellationToken) {
    let changed = Arc::new(Notify::new());
    let notify = changed.clone();
    let informer = Informer::spawn(Api::<Node>::all(client), ListParams::default(), cancel.child_token(), move |_| notify.notify_one());
    let mut installed: BTreeMap<Cidr, IpAddr> = BTreeMap::new();
    allow_forwarding(cluster).await;
    // Every heartbeat of every node is a Node change; only a change of the
    // routes wanted, or the periodic pass, runs `ip`.
    let mut resync_at = tokio::time::Instant::now();
    loop {
        let full = tokio::time::Instant::now() >= resync_at;
        if full {
            if let Err(e) = blackhole(cluster).await {
                tracing::warn!(error = %e, "cannot blackhole the cluster's pod range");
            }
        }
        if informer.has_synced() {
            let want = desired(&informer.cache.list(), &me);
            if full || want != installed {
                installed = sync(&installed, &want, cluster).await;
            }
        }
        if full {
            resync_at = tokio::time::Instant::now() + RESYNC;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = changed.notified() => {}
            _ = tokio::time::sleep_until(resync_at) => {}
        }
    }
}

/// Lets the host forward pod traffic, as flannel's `FLANNEL-FWD` rules
/// do: a host whose FORWARD policy is DROP (Docker sets it) would
/// otherwise drop every packet between pods on two nodes, and between
/// pods on one bridge where `br_netfilter` hands bridged frames to
/// iptables. Adds `-A FORWARD -s <cluster> -j ACCEPT` and `-d` the same,
/// once; hosts without `iptables` need nothing (their policy is ACCEPT
/// unless someone set it).
pub async fn allow_forwarding(cluster: Cidr) {
    let range = cluster.to_string();
    for dir in ["-s", "-d"] {
        let rule = ["FORWARD", dir, range.as_str(), "-m", "comment", "--comment", "tinykube pod network", "-j", "ACCEPT"];
        let check = tokio::process::Command::new("iptables").arg("-w").arg("-C").args(rule).output().await;
        match check {
            Err(_) => return,
            Ok(out) if out.status.success() => continue,
            Ok(_) => {}
        }
        let added = tokio::process::Command::new("iptables").arg("-w").arg("-A").args(rule).output().await;
        match added {
            Ok(out) if out.status.success() => {
                tracing::info!(rule = %format!("iptables -A {}", rule.join(" ")), "pod traffic may be forwarded")
            }
            Ok(out) => tracing::warn!(error = %String::from_utf8_lossy(&out.stderr).trim(), "cannot let pod traffic be forwarded"),
            Err(e) => tracing::warn!(error = %e, "cannot run iptables"),
        }
    }
}

/// `ip route replace blackhole <cluster>`: idempotent.
pub async fn blackhole(cluster: Cidr) -> Result<(), NetError> {
    ip(&["route", "replace", "blackhole", &cluster.to_string()]).await.map(drop)
}

/// Makes the routes `want`; removes the ones installed before that are no
/// longer wanted, and any other gateway route inside the cluster range (a
/// route an earlier agent left for a node since deleted). Returns what is
/// installed now.
async fn sync(installed: &BTreeMap<Cidr, IpAddr>, want: &BTreeMap<Cidr, IpAddr>, cluster: Cidr) -> BTreeMap<Cidr, IpAddr> {
    let mut now = BTreeMap::new();
    for (range, via) in want {
        match ip(&["route", "replace", &range.to_string(), "via", &via.to_string()]).await {
            Ok(_) => {
                if installed.get(range) != Some(via) {
                    tracing::info!(%range, %via, "route to a node's pods");
                }
                now.insert(*range, *via);
            }
            Err(e) => tracing::warn!(%range, %via, error = %e, "cannot route to a node's pods"),
        }
    }
    let mut stale: Vec<Cidr> = installed.keys().filter(|r| !want.contains_key(r)).copied().collect();
    match gateway_routes().await {
        Ok(present) => stale.extend(present.into_iter().filter(|r| cluster.covers(r) && !want.contains_key(r))),
        Err(e) => tracing::warn!(error = %e, "cannot list routes"),
    }
    stale.sort();
    stale.dedup();
    for range in stale {
        match ip(&["route", "del", &range.to_string()]).await {
            Ok(_) => tracing::info!(%range, "removed the route to a node's pods: the node is gone"),
            Err(e) if e.0.contains("No such process") => {}
            Err(e) => tracing::warn!(%range, error = %e, "cannot remove a route"),
        }
    }
    now
}

/// The destinations of this host's routes through a gateway (`via`).
async fn gateway_routes() -> Result<Vec<Cidr>, NetError> {
    let out = ip(&["-4", "route", "show"]).await?;
    Ok(parse_gateway_routes(&out))
}

/// `10.244.2.0/24 via 10.1.0.12 dev eth0` → `10.244.2.0/24`.
fn parse_gateway_routes(out: &str) -> Vec<Cidr> {
    out.lines()
        .filter(|l| l.split_whitespace().any(|w| w == "via"))
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|dst| dst.parse::<Cidr>().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            spec: Some(NodeSpec { pod_cidr: cidr.map(String::from), ..Default::default() }),
            status: Some(NodeStatus {
                addresses: ip.map(|ip| {
                    vec![
                        NodeAddress { type_: "Hostname".into(), address: name.into() },
                        NodeAddress { type_: "InternalIP".into(), address: ip.into() },
                    ]
                }),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn every_other_node_with_a_range_and_an_address_gets_a_route() {
        let nodes = [
            node("me", Some("10.244.0.0/24"), Some("10.1.0.1")),
            node("b", Some("10.244.1.0/24"), Some("10.1.0.2")),
            node("no-range", None, Some("10.1.0.3")),
            node("no-address", Some("10.244.3.0/24"), None),
            node("bad", Some("nonsense"), Some("10.1.0.5")),
        ];
        let want = desired(&nodes, "me");
        assert_eq!(want.len(), 1, "{want:?}");
        assert_eq!(want[&"10.244.1.0/24".parse::<Cidr>().unwrap()].to_string(), "10.1.0.2");
    }

    #[test]
    fn gateway_routes_are_read_from_ip_route_show() {
        let out = "default via 192.168.1.1 dev eth0\n\
                   blackhole 10.244.0.0/16\n\
                   10.244.0.0/24 dev tinykube0 proto kernel scope link src 10.244.0.1\n\
                   10.244.2.0/24 via 10.1.0.12 dev eth0\n";
        assert_eq!(parse_gateway_routes(out), vec!["10.244.2.0/24".parse::<Cidr>().unwrap()]);
    }
}
