//! Node lifecycle through the real binary and real kubectl: a joining node
//! gets a pod range of its own; when its agent dies its Node goes
//! `Ready=Unknown` with the `unreachable` taints, its pods are evicted
//! once their (shortened) default toleration runs out, and their
//! ReplicaSet replaces them on the other node; when the agent comes back
//! it stops the stale pods and they leave the API, so no replica runs
//! twice.
//!
//! Both "hosts" are agents on this machine with the process runtime: the
//! server's own node and a joined `tinykube agent`. Killing the joined
//! agent with SIGKILL is the host going silent — its containers live on,
//! as containers outlive a dead kubelet's network link.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;
use tinykube_tests::{is_running_and_ready, pids_with, require_tool, signal, ticker_deployment, token, wait, Cluster, Kubectl};

/// Kills the test's container processes when the test ends, however it
/// ends: those of an agent killed with SIGKILL have nobody else to stop them.
struct KillMarked(String);

impl Drop for KillMarked {
    fn drop(&mut self) {
        for pid in pids_with(&self.0) {
            signal(pid, libc::SIGKILL);
        }
    }
}

/// The Deployment's pods, as kubectl lists them.
fn pods(kubectl: &Kubectl, app: &str) -> Result<Vec<Value>> {
    let list = kubectl.get_json(&["pods", "-l", &format!("app={app}")])?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

fn node_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or_default()
}

fn name_of(pod: &Value) -> String {
    pod["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_silent_node_is_tainted_and_its_pods_move() -> Result<()> {
    if !require_tool("kubectl", Kubectl::available(), "install kubectl 1.32 and put it on the PATH") {
        return Ok(());
    }
    let fast = ["--node-status-update-frequency", "1s"];
    let cluster = Cluster::start_node(
        "host-1",
        &[
            "--node-monitor-grace-period",
            "3s",
            "--node-monitor-period",
            "1s",
            "--default-unreachable-toleration-seconds",
            "2",
            fast[0],
            fast[1],
        ],
    )?;
    let kubectl = Kubectl::new(&cluster)?;
    let mut host2 = cluster.join("host-2", &fast)?;

    // Each node has a range of its own from the cluster CIDR.
    let cidrs = wait("both nodes' pod ranges", Duration::from_secs(10), || {
        let nodes = kubectl.get_json(&["nodes"])?;
        let cidrs: Vec<String> = nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["spec"]["podCIDR"].as_str().map(String::from))
            .collect();
        Ok((cidrs.len() == 2).then_some(cidrs))
    })?;
    assert_ne!(cidrs[0], cidrs[1], "two nodes, one range: {cidrs:?}");
    for c in &cidrs {
        assert!(c.starts_with("10.244.") && c.ends_with("/24"), "{c} is a /24 of the default cluster CIDR");
    }
    let spec = kubectl.get_json(&["node", "host-2"])?["spec"].clone();
    assert_eq!(spec["podCIDRs"], serde_json::json!([spec["podCIDR"]]), "{spec}");

    // Three replicas on host-2: the server's node is cordoned meanwhile.
    let marker = token("lifecycle");
    let _cleanup = KillMarked(marker.clone());
    kubectl.ok(&["cordon", "host-1"])?;
    let manifest = std::env::temp_dir().join(format!("{marker}.yaml"));
    std::fs::write(&manifest, ticker_deployment("mover", 3, &marker, "hello"))?;
    kubectl.ok(&["apply", "-f", manifest.to_str().unwrap_or_default()])?;
    let _ = std::fs::remove_file(&manifest);
    let before: BTreeSet<String> = wait("3 pods Running on host-2", Duration::from_secs(30), || {
        let p = pods(&kubectl, "mover")?;
        let running: BTreeSet<String> = p.iter().filter(|p| is_running_and_ready(p) && node_of(p) == "host-2").map(name_of).collect();
        Ok((running.len() == 3).then_some(running))
    })?;
    let first = pods(&kubectl, "mover")?.into_iter().next().unwrap_or_default();
    let tolerations = first["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
    assert!(
        tolerations.iter().any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["tolerationSeconds"] == 2),
        "DefaultTolerationSeconds gave the pod the flag's 2 s: {tolerations:?}"
    );
    kubectl.ok(&["uncordon", "host-1"])?;

    // The host goes silent.
    let cut = Instant::now();
    host2.kill9()?;

    wait("host-2 Ready=Unknown with the unreachable taints", Duration::from_secs(15), || {
        let node = kubectl.get_json(&["node", "host-2"])?;
        let ready = node["status"]["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Ready")).cloned();
        let unknown = ready.as_ref().is_some_and(|r| r["status"] == "Unknown" && r["reason"] == "NodeStatusUnknown");
        let taints = node["spec"]["taints"].as_array().cloned().unwrap_or_default();
        let has = |effect: &str| {
            taints
                .iter()
                .any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == effect && t["timeAdded"].is_string())
        };
        Ok((unknown && has("NoSchedule") && has("NoExecute")).then_some(()))
    })?;
    let detected = cut.elapsed();
    let status = kubectl.ok(&["get", "node", "host-2"])?;
    assert!(status.contains("NotReady"), "kubectl shows the node NotReady:\n{status}");

    // The old pods are evicted and replaced on host-1.
    let moved = wait("3 replacements Running on host-1", Duration::from_secs(30), || {
        let p = pods(&kubectl, "mover")?;
        let evicted = p.iter().filter(|p| before.contains(&name_of(p))).all(|p| p["metadata"]["deletionTimestamp"].is_string());
        let replacements: Vec<&Value> = p.iter().filter(|p| is_running_and_ready(p) && node_of(p) == "host-1").collect();
        Ok((evicted && replacements.len() == 3).then(|| replacements.iter().map(|p| name_of(p)).collect::<BTreeSet<_>>()))
    })?;
    let took = cut.elapsed();
    eprintln!("host-2 cut off: Unknown and tainted after {detected:?}, replacements running after {took:?}");
    assert!(took < Duration::from_secs(15), "replacements ran {took:?} after the cut");
    assert!(moved.is_disjoint(&before));
    let old = kubectl.get_json(&["pod", before.iter().next().map(String::as_str).unwrap_or_default()])?;
    let disruption = old["status"]["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionTarget")).cloned();
    assert_eq!(disruption.as_ref().map(|c| c["reason"].clone()), Some(Value::from("DeletionByTaintManager")), "{old}");
    let events = kubectl.ok(&["get", "events", "--field-selector", "reason=TaintManagerEviction", "-o", "jsonpath={.items[*].message}"])?;
    for name in &before {
        assert!(events.contains(&format!("Marking for deletion Pod default/{name}")), "{events}");
    }

    // The host comes back: its agent stops the stale pods, which leave the
    // API; the taints go; the replicas stay where they are, once each.
    let back = Instant::now();
    host2.restart()?;
    cluster.wait_for_node_ready(&mut host2)?;
    wait("the stale pods to leave the API and their processes to stop", Duration::from_secs(30), || {
        let names: BTreeSet<String> = pods(&kubectl, "mover")?.iter().map(name_of).collect();
        Ok((names == moved && pids_with(&marker).len() == 3).then_some(()))
    })?;
    eprintln!("host-2 back: its stale pods gone after {:?}", back.elapsed());
    wait("host-2's taints to go", Duration::from_secs(10), || {
        let node = kubectl.get_json(&["node", "host-2"])?;
        Ok(node["spec"]["taints"].is_null().then_some(()))
    })?;
    let p = pods(&kubectl, "mover")?;
    assert_eq!(p.len(), 3, "no duplicate replicas");
    assert!(p.iter().all(|p| is_running_and_ready(p) && node_of(p) == "host-1"));
    kubectl.ok(&["delete", "deployment", "mover"])?;
    Ok(())
}
