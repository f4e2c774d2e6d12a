//! Topology spread constraints through the real binary: a server without a
//! node of its own and three agents joined on this host. A Deployment whose
//! six replicas are created at once lands two per node, even where
//! least-allocated scoring would rather avoid one of them; a pod that asks to
//! spread over a label no node has stays pending with upstream's
//! `FailedScheduling` message; and (with kubectl, to label the nodes) zones
//! are domains: two nodes in one zone share what one node in the other
//! zone holds alone.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;
use tinykube_tests::{pids_with, require_tool, token, Agent, Cluster, Kubectl};

const NODES: [&str; 3] = ["spread-1", "spread-2", "spread-3"];

/// A Deployment of `replicas` ticking processes (marked with `marker`)
/// spread by `constraint` (YAML, indented for the pod spec).
fn spread_deployment(name: &str, replicas: u32, marker: &str, constraint: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
{constraint}
      containers:
      - name: ticker
        image: busybox
        command: ["sh", "-c", "while true; do sleep 1; done # {marker}"]
"#
    )
}

/// A cluster of three joined agents and nothing else.
fn three_node_cluster() -> Result<(Cluster, Vec<Agent>)> {
    let cluster = Cluster::start_with(&["--no-agent"])?;
    let agents = NODES.iter().map(|n| cluster.join(n, &[])).collect::<Result<Vec<_>>>()?;
    Ok((cluster, agents))
}

/// How many of `app`'s pods are bound to each node, once all `n` are.
fn wait_placed(c: &Cluster, app: &str, n: usize) -> Result<BTreeMap<String, usize>> {
    c.wait_for(&format!("{n} pods of {app} bound"), Duration::from_secs(30), || {
        let pods = c.get_json(&["pods", "-l", &format!("app={app}")]).ok()?;
        let nodes: Vec<String> =
            pods["items"].as_array()?.iter().filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string)).collect();
        (nodes.len() == n).then(|| {
            nodes.into_iter().fold(BTreeMap::new(), |mut m, node| {
                *m.entry(node).or_insert(0) += 1;
                m
            })
        })
    })
}

/// Deletes what the test made and waits for its processes to stop.
fn clean_up(c: &Cluster, marker: &str, what: &[&str]) -> Result<()> {
    for w in what {
        c.ok(&["delete", "deployment", w])?;
    }
    c.wait_for("every process to stop", Duration::from_secs(30), || pids_with(marker).is_empty().then_some(()))
}

#[test]
fn six_replicas_spread_two_per_node_and_a_missing_label_is_explained() -> Result<()> {
    let (c, _agents) = three_node_cluster()?;
    let marker = token("spread-hostname");
    // A pod holding a quarter of spread-1's cpu: least-allocated scoring
    // alone would put every replica on the two other nodes.
    let cpus: u32 = c.get_json(&["node", NODES[0]])?["status"]["allocatable"]["cpu"].as_str().and_then(|v| v.parse().ok()).unwrap_or(1);
    c.apply(&format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "hog"}},
            "spec": {{"nodeName": "{}", "terminationGracePeriodSeconds": 1, "containers": [{{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "while true; do sleep 1; done # {marker}"],
            "resources": {{"requests": {{"cpu": "{}m"}}}}}}]}}}}"#,
        NODES[0],
        cpus * 250
    ))?;
    let hostname = "      - maxSkew: 1\n        topologyKey: kubernetes.io/hostname\n        whenUnsatisfiable: DoNotSchedule\n        labelSelector:\n          matchLabels:\n            app: web";
    c.apply(&spread_deployment("web", 6, &marker, hostname))?;
    let placed = wait_placed(&c, "web", 6)?;
    let want: BTreeMap<String, usize> = NODES.iter().map(|n| (n.to_string(), 2)).collect();
    assert_eq!(placed, want, "six replicas created at once, two per node");

    // No node has a rack label: the pod stays pending, and says why.
    let rack = "      - maxSkew: 1\n        topologyKey: example.com/rack\n        whenUnsatisfiable: DoNotSchedule\n        labelSelector:\n          matchLabels:\n            app: racked";
    c.apply(&spread_deployment("racked", 1, &marker, rack))?;
    let message = c.wait_for("a FailedScheduling event", Duration::from_secs(30), || {
        let events = c.get_json(&["events"]).ok()?;
        events["items"]
            .as_array()?
            .iter()
            .find(|e| e["reason"] == "FailedScheduling")
            .and_then(|e| e["message"].as_str().map(str::to_string))
    })?;
    assert_eq!(message, "0/3 nodes are available: 3 node(s) didn't match pod topology spread constraints (missing required label).");
    let pending = c.get_json(&["pods", "-l", "app=racked"])?;
    assert!(pending["items"].as_array().is_some_and(|p| p.len() == 1 && p[0]["spec"]["nodeName"].is_null()), "{pending}");

    c.ok(&["delete", "pod", "hog"])?;
    clean_up(&c, &marker, &["web", "racked"])
}

#[test]
fn zones_are_domains_of_several_nodes() -> Result<()> {
    if !require_tool("kubectl", Kubectl::available(), "install kubectl 1.32 and put it on the PATH") {
        return Ok(());
    }
    let (c, _agents) = three_node_cluster()?;
    let kubectl = Kubectl::new(&c)?;
    for (node, zone) in NODES.iter().zip(["a", "a", "b"]) {
        kubectl.ok(&["label", "node", node, &format!("topology.kubernetes.io/zone={zone}")])?;
    }
    let nodes = kubectl.get_json(&["nodes"])?;
    let zones: Vec<&str> = nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n: &Value| n["metadata"]["labels"]["topology.kubernetes.io/zone"].as_str())
        .collect();
    assert_eq!(zones, ["a", "a", "b"], "{nodes}");

    let marker = token("spread-zone");
    let zone = "      - maxSkew: 1\n        topologyKey: topology.kubernetes.io/zone\n        whenUnsatisfiable: DoNotSchedule\n        labelSelector:\n          matchLabels:\n            app: zoned";
    c.apply(&spread_deployment("zoned", 4, &marker, zone))?;
    let placed = wait_placed(&c, "zoned", 4)?;
    let in_zone_a = placed.get("spread-1").copied().unwrap_or(0) + placed.get("spread-2").copied().unwrap_or(0);
    assert_eq!((in_zone_a, placed.get("spread-3").copied().unwrap_or(0)), (2, 2), "two per zone: {placed:?}");

    clean_up(&c, &marker, &["zoned"])
}
