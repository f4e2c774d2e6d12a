//! The walking skeleton, end to end through the real binary: a Deployment
//! goes from a manifest to running processes and back, survives a crashed
//! process and a SIGKILLed server, and bad input changes nothing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;
use tinykube_tests::{is_running_and_ready, pids_with, signal, ticker_deployment, token, Cluster};

/// Pods of `app` that are Running with all containers ready, not terminating.
fn running_pods(c: &Cluster, app: &str) -> Result<Vec<Value>> {
    let pods = c.get_json(&["pods", "-l", &format!("app={app}")])?;
    Ok(pods["items"].as_array().cloned().unwrap_or_default().into_iter().filter(is_running_and_ready).collect())
}

/// Samples the number of marked processes until stopped; returns the maximum seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicUsize>,
    handle: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start(marker: &str) -> Self {
        let (stop, max) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (s, m, marker) = (stop.clone(), max.clone(), marker.to_string());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(pids_with(&marker).len(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler { stop, max, handle }
    }

    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        self.max.load(Ordering::Relaxed)
    }
}

fn wait_processes(c: &Cluster, marker: &str, n: usize) -> Result<()> {
    c.wait_for(&format!("{n} processes"), Duration::from_secs(30), || (pids_with(marker).len() == n).then_some(()))
}

fn wait_running(c: &Cluster, app: &str, n: usize, timeout: Duration) -> Result<Vec<Value>> {
    c.wait_for(&format!("{n} running pods of {app}"), timeout, || running_pods(c, app).ok().filter(|p| p.len() == n))
}

#[test]
fn deployment_runs_scales_rolls_restarts_and_deletes() -> Result<()> {
    let c = Cluster::start()?;
    let marker = token("lifecycle");

    // Apply: three pods Running within 5 s, three real processes.
    let started = Instant::now();
    let out = c.apply(&ticker_deployment("ticker", 3, &marker, "hello"))?;
    assert!(out.contains("deployment.apps/ticker created"), "{out}");
    let pods = wait_running(&c, "ticker", 3, Duration::from_secs(5))?;
    eprintln!("3 pods running after {:?}", started.elapsed());
    wait_processes(&c, &marker, 3)?;

    // logs shows the container's output.
    let pod = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    let logs = c.wait_for("log output", Duration::from_secs(5), || c.ok(&["logs", &pod]).ok().filter(|l| l.contains("hello from")))?;
    assert!(logs.contains(&format!("hello from {pod}")), "{logs}");

    // get prints kubectl's columns.
    let table = c.ok(&["get", "deployments"])?;
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("READY") && table.contains("UP-TO-DATE") && table.contains("AVAILABLE"), "{table}");

    // Scale to 7, then 2: exactly that many processes, never more.
    let sampler = Sampler::start(&marker);
    c.ok(&["scale", "deployment/ticker", "--replicas", "7"])?;
    wait_running(&c, "ticker", 7, Duration::from_secs(20))?;
    wait_processes(&c, &marker, 7)?;
    assert!(sampler.finish() <= 7, "more than 7 processes while scaling to 7");

    let sampler = Sampler::start(&marker);
    c.ok(&["scale", "deployment/ticker", "--replicas", "2"])?;
    wait_running(&c, "ticker", 2, Duration::from_secs(20))?;
    wait_processes(&c, &marker, 2)?;
    assert!(sampler.finish() <= 7, "more processes than before while scaling down");

    // Change the template's env: a rolling update; rollout status returns
    // when it is done, and every pod then runs the new template.
    c.apply(&ticker_deployment("ticker", 2, &marker, "bonjour"))?;
    let status = c.ok(&["rollout", "status", "deployment/ticker", "--timeout", "60"])?;
    assert!(status.contains("successfully rolled out"), "{status}");
    let pods = wait_running(&c, "ticker", 2, Duration::from_secs(20))?;
    wait_processes(&c, &marker, 2)?;
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap();
        assert_eq!(p["spec"]["containers"][0]["env"][0]["value"], "bonjour");
        c.wait_for("new greeting", Duration::from_secs(5), || c.ok(&["logs", name]).ok().filter(|l| l.contains("bonjour from")))?;
    }
    let rs = c.get_json(&["replicasets", "-l", "app=ticker"])?;
    assert_eq!(rs["items"].as_array().unwrap().len(), 2, "old and new ReplicaSet");

    // kill -9 one pod's process: restarted, restartCount 1.
    let victim = pids_with(&marker)[0];
    signal(victim, libc::SIGKILL);
    let restarted = c.wait_for("a restart", Duration::from_secs(20), || {
        let pods = running_pods(&c, "ticker").ok()?;
        let restarted: Vec<_> = pods.iter().filter(|p| p["status"]["containerStatuses"][0]["restartCount"] == 1).cloned().collect();
        (pods.len() == 2 && restarted.len() == 1).then_some(restarted)
    })?;
    wait_processes(&c, &marker, 2)?;
    assert!(!pids_with(&marker).contains(&victim));
    assert_eq!(restarted[0]["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"], 137);

    // Delete the Deployment: its ReplicaSets, pods and processes all gone.
    let out = c.ok(&["delete", "deployment", "ticker"])?;
    assert!(out.contains("deployment.apps \"ticker\" deleted"), "{out}");
    c.wait_for("everything gone", Duration::from_secs(30), || {
        let rs = c.get_json(&["replicasets"]).ok()?;
        let pods = c.get_json(&["pods"]).ok()?;
        (rs["items"].as_array()?.is_empty() && pods["items"].as_array()?.is_empty() && pids_with(&marker).is_empty()).then_some(())
    })?;
    Ok(())
}

#[test]
fn server_sigkill_and_restart_keeps_every_object_and_process() -> Result<()> {
    let mut c = Cluster::start()?;
    let marker = token("restart");
    c.apply(&ticker_deployment("survivor", 3, &marker, "hi"))?;
    let before = wait_running(&c, "survivor", 3, Duration::from_secs(10))?;
    wait_processes(&c, &marker, 3)?;
    let mut names: Vec<String> = before.iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    let mut pids = pids_with(&marker);
    pids.sort();

    c.kill9()?;
    // The containers outlive their agent, as containers outlive a crashed kubelet.
    assert_eq!(pids_with(&marker).len(), 3);
    let sampler = Sampler::start(&marker);
    c.restart()?;

    // The new agent lists its pods and syncs each: the moment it would
    // start duplicates if it did not adopt. A fourth replica, created
    // after the restart, comes to it after that list; once it runs, the
    // agent has synced the pods it found.
    c.ok(&["scale", "deployment/survivor", "--replicas", "4"])?;
    let after = wait_running(&c, "survivor", 4, Duration::from_secs(20))?;
    wait_processes(&c, &marker, 4)?;
    let most = sampler.finish();
    let mut names_after: Vec<String> = after.iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()).collect();
    names_after.retain(|n| names.contains(n));
    names_after.sort();
    assert_eq!(names, names_after, "the same pods");
    let pids_after = pids_with(&marker);
    assert!(pids.iter().all(|p| pids_after.contains(p)), "the same processes: {pids:?} then {pids_after:?}");
    assert_eq!(most, 4, "no duplicates, not even for a moment");
    assert_eq!(c.get_json(&["deployments"])?["items"].as_array().unwrap().len(), 1);
    for p in after.iter().filter(|p| names.iter().any(|n| p["metadata"]["name"] == n.as_str())) {
        assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0, "adopted, not restarted");
    }

    // A graceful stop takes every process with it.
    let status = c.stop()?;
    assert!(status.success(), "server exit status {status}");
    assert!(pids_with(&marker).is_empty(), "processes left after SIGTERM");
    Ok(())
}

#[test]
fn bad_input_is_a_clear_error_and_changes_nothing() -> Result<()> {
    let c = Cluster::start()?;
    let marker = token("bad");
    let good = ticker_deployment("good", 1, &marker, "x");

    let cases = [
        (format!("{good}---\nkind: Deployment\n  bad: [indent"), "error parsing"),
        (format!("{good}---\napiVersion: v1\nkind: Frobnicator\nmetadata:\n  name: f\n"), "no matches for kind \"Frobnicator\""),
        (
            format!("{good}---\n{}", ticker_deployment("Bad_Name", 1, &marker, "x")),
            "The Deployment \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\"",
        ),
        (
            format!("{good}---\n{}", ticker_deployment("neg", 1, &marker, "x").replace("replicas: 1", "replicas: -1")),
            "The Deployment \"neg\" is invalid",
        ),
    ];
    for (manifest, want) in cases {
        let path = c.data_dir.path().join("bad.yaml");
        std::fs::write(&path, &manifest)?;
        let out = c.cli(&["apply", "-f", path.to_str().unwrap()])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "apply should fail for {want}");
        assert!(stderr.contains(want), "wanted {want:?} in:\n{stderr}");
        // The good document in the same file was not applied either.
        let got = c.cli(&["get", "deployment", "good"])?;
        assert!(!got.status.success());
        assert!(String::from_utf8_lossy(&got.stderr).contains("deployments.apps \"good\" not found"));
    }

    // A pod asking for more cpu than any node has: Pending, with upstream's event.
    c.apply(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: greedy
spec:
  containers:
  - name: c
    image: busybox
    command: ["sleep", "1000"]
    resources:
      requests:
        cpu: "1000"
"#,
    )?;
    let described = c.wait_for("FailedScheduling", Duration::from_secs(10), || {
        c.ok(&["describe", "pod", "greedy"]).ok().filter(|d| d.contains("FailedScheduling"))
    })?;
    assert!(described.contains("0/1 nodes are available: 1 Insufficient cpu."), "{described}");
    let pod = c.get_json(&["pod", "greedy"])?;
    assert_eq!(pod["status"]["phase"], "Pending");
    assert!(pod["spec"]["nodeName"].is_null());
    Ok(())
}
