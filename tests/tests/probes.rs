//! Container probes end to end, through the real binary: a readiness probe
//! keeps a running pod out of its Deployment's available replicas until it
//! passes, and a liveness probe that starts failing gets the container
//! killed and restarted.
//!
//! Both probes are `exec` probes testing for files in a directory only
//! this test uses, so the test decides when they pass.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;
use tinykube_tests::{token, Cluster};

fn deployment(name: &str, marker: &str, ready_file: &Path, alive_file: &Path) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: app
        image: busybox
        command: ["sh", "-c", "while true; do sleep 1; done # {marker}"]
        readinessProbe:
          exec:
            command: ["test", "-f", "{ready}"]
          periodSeconds: 1
        livenessProbe:
          exec:
            command: ["test", "-f", "{alive}"]
          periodSeconds: 1
          failureThreshold: 2
"#,
        ready = ready_file.display(),
        alive = alive_file.display(),
    )
}

/// The one pod of `app`, once it exists.
fn the_pod(c: &Cluster, app: &str) -> Option<Value> {
    let pods = c.get_json(&["pods", "-l", &format!("app={app}")]).ok()?;
    let items = pods["items"].as_array()?;
    items.iter().find(|p| p["metadata"]["deletionTimestamp"].is_null()).cloned()
}

fn condition<'a>(pod: &'a Value, type_: &str) -> Option<&'a Value> {
    pod["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

/// Messages of the events about `pod` with this reason.
fn events(c: &Cluster, pod: &str, reason: &str) -> Vec<String> {
    let Ok(list) = c.get_json(&["events"]) else { return vec![] };
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == pod && e["reason"] == reason)
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

/// How many times the probe whose `Unhealthy` messages start with `prefix`
/// has failed for `pod`: the sum of the events' counts.
fn failures(c: &Cluster, pod: &str, prefix: &str) -> i64 {
    let Ok(list) = c.get_json(&["events"]) else { return 0 };
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == pod && e["reason"] == "Unhealthy")
        .filter(|e| e["message"].as_str().is_some_and(|m| m.starts_with(prefix)))
        .map(|e| e["count"].as_i64().unwrap_or(1))
        .sum()
}

#[test]
fn readiness_gates_availability_and_liveness_restarts() -> Result<()> {
    let began = Instant::now();
    let c = Cluster::start()?;
    let files = tempfile::Builder::new().prefix(&token("probes")).tempdir()?;
    let (ready, alive) = (files.path().join("ready"), files.path().join("alive"));
    std::fs::write(&alive, "")?;
    c.apply(&deployment("probed", &token("probes"), &ready, &alive))?;

    // Running but not Ready: the readiness probe fails until the file exists.
    let pod =
        c.wait_for("a running pod", Duration::from_secs(15), || the_pod(&c, "probed").filter(|p| p["status"]["phase"] == "Running"))?;
    let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
    // Wait until the readiness probe has failed several times (the events
    // fold repeats into a count): the agent has probed, so a pod shown
    // ready now would be the agent ignoring its probe, not a probe yet to run.
    c.wait_for("three readiness failures", Duration::from_secs(15), || (failures(&c, &name, "Readiness probe failed") >= 3).then_some(()))?;
    let pod = the_pod(&c, "probed").expect("the pod");
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!((status["ready"].as_bool(), status["started"].as_bool()), (Some(false), Some(true)), "{status}");
    let ready_cond = condition(&pod, "Ready").expect("a Ready condition");
    assert_eq!(ready_cond["status"], "False");
    assert_eq!(ready_cond["reason"], "ContainersNotReady");
    assert_eq!(ready_cond["message"], "containers with unready status: [app]");
    assert_eq!(condition(&pod, "ContainersReady").map(|c| c["status"].clone()), Some("False".into()));
    let table = c.ok(&["get", "pods", "-l", "app=probed"])?;
    assert!(table.contains("0/1") && table.contains("Running"), "{table}");
    let deploy = c.get_json(&["deployment", "probed"])?;
    assert_eq!(deploy["status"]["availableReplicas"].as_i64().unwrap_or(0), 0, "{}", deploy["status"]);
    let unhealthy = events(&c, &name, "Unhealthy");
    assert!(unhealthy.iter().any(|m| m.starts_with("Readiness probe failed")), "{unhealthy:?}");

    // The file appears: Ready, and the Deployment counts it as available.
    std::fs::write(&ready, "")?;
    c.wait_for("the pod Ready", Duration::from_secs(10), || {
        let pod = the_pod(&c, "probed")?;
        (pod["status"]["containerStatuses"][0]["ready"] == true && condition(&pod, "Ready")?["status"] == "True").then_some(())
    })?;
    c.wait_for("the deployment available", Duration::from_secs(10), || {
        let d = c.get_json(&["deployment", "probed"]).ok()?;
        (d["status"]["availableReplicas"] == 1).then_some(())
    })?;
    let table = c.ok(&["get", "pods", "-l", "app=probed"])?;
    assert!(table.contains("1/1"), "{table}");

    // The liveness file goes away: two failures, then the container is
    // killed and restarted.
    std::fs::remove_file(&alive)?;
    c.wait_for("a restart", Duration::from_secs(15), || {
        let pod = the_pod(&c, "probed")?;
        (pod["status"]["containerStatuses"][0]["restartCount"].as_i64()? >= 1).then_some(())
    })?;
    std::fs::write(&alive, "")?;
    let unhealthy = events(&c, &name, "Unhealthy");
    assert!(unhealthy.iter().any(|m| m.starts_with("Liveness probe failed")), "{unhealthy:?}");
    let killing = events(&c, &name, "Killing");
    assert!(killing.iter().any(|m| m == "Container app failed liveness probe, will be restarted"), "{killing:?}");
    // The new run is probed afresh and becomes ready again.
    c.wait_for("the restarted container ready", Duration::from_secs(10), || {
        let pod = the_pod(&c, "probed")?;
        let s = &pod["status"]["containerStatuses"][0];
        (s["ready"] == true && s["state"]["running"].is_object()).then_some(())
    })?;

    c.ok(&["delete", "deployment", "probed"])?;
    eprintln!("probes end to end took {:?}", began.elapsed());
    Ok(())
}
