//! Deletion semantics through the real binary and the real `kubectl`:
//! cascading deletion in the foreground and by orphaning, a namespace
//! emptied before it goes, deleting by label selector, and a forced
//! delete. Each test starts its own `tinykube server`.
//!
//! The pods here ignore SIGTERM, so each takes its whole grace period to
//! stop: that makes "the owner waits for its dependents" observable
//! instead of a race won in milliseconds.
//!
//! Skipped with a message when `kubectl` is not installed, unless
//! `TINYKUBE_E2E_REQUIRE=1`, which makes a missing kubectl a failure.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::Value;
use tinykube_tests::{pids_with, token, Cluster};

/// `kubectl` against one cluster, with a cache directory of its own.
struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    /// `None` (test skipped) when kubectl is missing and not required.
    fn find(c: &Cluster) -> Option<Kubectl> {
        let found = Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success());
        if !found {
            if std::env::var("TINYKUBE_E2E_REQUIRE").is_ok_and(|v| v == "1") {
                panic!("kubectl is required (TINYKUBE_E2E_REQUIRE=1) but not found on PATH");
            }
            eprintln!("SKIPPED: kubectl not found on PATH (set TINYKUBE_E2E_REQUIRE=1 to make this a failure)");
            return None;
        }
        Some(Kubectl { kubeconfig: c.kubeconfig(), cache: c.data_dir.path().join("kubectl-cache") })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.args(args).env("KUBECONFIG", &self.kubeconfig).env("KUBECACHEDIR", &self.cache).stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Result<Output> {
        Ok(self.command(args).output()?)
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if !out.status.success() {
            bail!("kubectl {} failed: {}{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Applies a manifest given as text.
    fn apply(&self, manifest: &str) -> Result<String> {
        let mut child = self.command(&["apply", "-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin.write_all(manifest.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("kubectl apply failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The items of `kubectl get ... -o json`.
    fn items(&self, args: &[&str]) -> Result<Vec<Value>> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let v: Value = serde_json::from_str(&self.ok(&all)?)?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// One object, or `None` when it does not exist.
    fn object(&self, args: &[&str]) -> Result<Option<Value>> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json", "--ignore-not-found"]);
        let out = self.ok(&all)?;
        Ok(if out.trim().is_empty() { None } else { Some(serde_json::from_str(&out)?) })
    }
}

/// A Deployment whose containers ignore SIGTERM (so each pod takes its
/// grace period to stop); its command line carries `marker`.
fn stubborn_deployment(name: &str, namespace: &str, replicas: u32, marker: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
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
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done # {marker}"]
"#
    )
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

/// Waits until `n` pods of `app` run, not terminating, and `n` processes carry `marker`.
fn wait_running(c: &Cluster, k: &Kubectl, ns: &str, app: &str, n: usize, marker: &str) -> Result<Vec<Value>> {
    let pods = c.wait_for(&format!("{n} running pods of {app}"), Duration::from_secs(30), || {
        let pods = k.items(&["pods", "-n", ns, "-l", &format!("app={app}")]).ok()?;
        let running: Vec<Value> =
            pods.into_iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running").collect();
        (running.len() == n).then_some(running)
    })?;
    c.wait_for(&format!("{n} processes"), Duration::from_secs(30), || (pids_with(marker).len() == n).then_some(()))?;
    Ok(pods)
}

fn wait_no_processes(c: &Cluster, marker: &str) -> Result<()> {
    c.wait_for("every process to stop", Duration::from_secs(30), || pids_with(marker).is_empty().then_some(()))
}

#[test]
fn foreground_deletion_removes_dependents_before_the_owner() -> Result<()> {
    let c = Cluster::start()?;
    let Some(k) = Kubectl::find(&c) else { return Ok(()) };
    let marker = token("foreground");
    k.apply(&stubborn_deployment("web", "default", 2, &marker))?;
    wait_running(&c, &k, "default", "web", 2, &marker)?;

    let started = Instant::now();
    let mut delete = k
        .command(&["delete", "deployment", "web", "--cascade=foreground", "--timeout=60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Until kubectl returns, watch the order: whenever the Deployment is
    // gone, its ReplicaSets and pods (read afterwards) must be gone too.
    let mut saw_waiting_owner = false;
    while delete.try_wait()?.is_none() {
        let deployment = k.object(&["deployment", "web"])?;
        let (replicasets, pods) = (k.items(&["replicasets", "-l", "app=web"])?, k.items(&["pods", "-l", "app=web"])?);
        match deployment {
            Some(d) if !d["metadata"]["deletionTimestamp"].is_null() => {
                let finalizers = d["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
                assert!(
                    finalizers.iter().any(|f| f == "foregroundDeletion"),
                    "a Deployment deleted in the foreground carries the finalizer: {finalizers:?}"
                );
                saw_waiting_owner |= !pods.is_empty();
            }
            Some(_) => {}
            None => assert!(
                replicasets.is_empty() && pods.is_empty(),
                "the Deployment went before its dependents: {} ReplicaSets, {} pods left",
                replicasets.len(),
                pods.len()
            ),
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = delete.kill();
            bail!("kubectl delete --cascade=foreground did not return within 60 s\n{}", c.log_tail());
        }
    }
    let out = delete.wait_with_output()?;
    assert!(out.status.success(), "kubectl delete failed: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("foreground delete returned after {:?}", started.elapsed());
    assert!(saw_waiting_owner, "the Deployment should have waited, terminating, while its pods stopped");

    // kubectl returned once the Deployment was gone; everything under it went first.
    assert!(k.object(&["deployment", "web"])?.is_none());
    assert!(k.items(&["replicasets", "-l", "app=web"])?.is_empty(), "ReplicaSets left");
    assert!(k.items(&["pods", "-l", "app=web"])?.is_empty(), "pods left");
    wait_no_processes(&c, &marker)
}

/// Deletes a Deployment of no replicas in the background and waits until
/// the garbage collector has deleted its ReplicaSet: proof that the
/// collector has worked through what was queued before.
fn collect_later_garbage(c: &Cluster, k: &Kubectl) -> Result<()> {
    k.apply(&stubborn_deployment("later", "default", 0, "unused"))?;
    c.wait_for("the ReplicaSet of the later Deployment", Duration::from_secs(30), || {
        k.items(&["replicasets", "-l", "app=later"]).ok().filter(|rs| rs.len() == 1)
    })?;
    k.ok(&["delete", "deployment", "later", "--cascade=background", "--timeout=60s"])?;
    c.wait_for("the collector to delete the later ReplicaSet", Duration::from_secs(30), || {
        k.items(&["replicasets", "-l", "app=later"]).ok().filter(|rs| rs.is_empty())
    })?;
    Ok(())
}

#[test]
fn orphan_deletion_keeps_dependents_without_the_reference() -> Result<()> {
    let c = Cluster::start()?;
    let Some(k) = Kubectl::find(&c) else { return Ok(()) };
    let marker = token("orphan");
    k.apply(&stubborn_deployment("web", "default", 2, &marker))?;
    let pods_before = wait_running(&c, &k, "default", "web", 2, &marker)?;

    let out = k.ok(&["delete", "deployment", "web", "--cascade=orphan", "--timeout=60s"])?;
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    assert!(k.object(&["deployment", "web"])?.is_none(), "the Deployment is gone");

    // The ReplicaSet stays, no longer owned; its pods stay, still owned by it.
    let replicasets = k.items(&["replicasets", "-l", "app=web"])?;
    assert_eq!(replicasets.len(), 1, "{replicasets:?}");
    let rs = &replicasets[0];
    assert!(rs["metadata"]["deletionTimestamp"].is_null());
    assert!(
        rs["metadata"]["ownerReferences"].as_array().is_none_or(|r| r.is_empty()),
        "the reference to the deleted Deployment is removed: {}",
        rs["metadata"]["ownerReferences"]
    );
    // Had the collector taken the ReplicaSet or its pods for garbage, it
    // would have done so while handling this delete. Make it handle a
    // later one: once it has collected the ReplicaSet of another deleted
    // Deployment, it has been through everything queued before.
    collect_later_garbage(&c, &k)?;
    let pods = k.items(&["pods", "-l", "app=web"])?;
    let names = |ps: &[Value]| {
        let mut n: Vec<String> = ps.iter().map(name_of).collect();
        n.sort();
        n
    };
    assert_eq!(names(&pods), names(&pods_before), "the same pods keep running");
    for p in &pods {
        assert!(p["metadata"]["deletionTimestamp"].is_null(), "{} is being deleted", name_of(p));
        let owners = p["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
        assert!(owners.iter().any(|o| o["kind"] == "ReplicaSet" && o["uid"] == rs["metadata"]["uid"]), "{owners:?}");
    }
    assert_eq!(pids_with(&marker).len(), 2, "both processes still run");

    // The orphaned ReplicaSet can still be deleted, and its pods go with it.
    k.ok(&["delete", "replicaset", &name_of(rs), "--timeout=60s"])?;
    c.wait_for("pods of the orphaned ReplicaSet to go", Duration::from_secs(30), || {
        k.items(&["pods", "-l", "app=web"]).ok().filter(|p| p.is_empty())
    })?;
    wait_no_processes(&c, &marker)
}

#[test]
fn deleting_a_namespace_empties_it_first() -> Result<()> {
    let c = Cluster::start()?;
    let Some(k) = Kubectl::find(&c) else { return Ok(()) };
    let marker = token("namespace");
    k.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n")?;
    k.apply(&stubborn_deployment("web", "shop", 2, &marker))?;
    k.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  a: b\n")?;
    wait_running(&c, &k, "shop", "web", 2, &marker)?;

    let started = Instant::now();
    let mut delete = k.command(&["delete", "namespace", "shop", "--timeout=60s"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    // While it terminates, the namespace is shown as such and takes no new
    // content. Its pods ignore SIGTERM and take their 2 s grace period to
    // stop, so the namespace is still there while this is checked.
    c.wait_for("the namespace to be Terminating", Duration::from_secs(10), || {
        k.object(&["namespace", "shop"]).ok().flatten().filter(|n| n["status"]["phase"] == "Terminating")
    })?;
    let refused = k.command(&["apply", "-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().and_then(
        |mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: late\n  namespace: shop\n")?;
            child.wait_with_output()
        },
    )?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("unable to create new content in namespace shop because it is being terminated"),
        "new content in a terminating namespace must be refused: {stderr}"
    );
    let timeout = Duration::from_secs(60);
    while delete.try_wait()?.is_none() {
        if started.elapsed() > timeout {
            let _ = delete.kill();
            bail!("kubectl delete namespace did not return within {timeout:?}\n{}", c.log_tail());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = delete.wait_with_output()?;
    assert!(out.status.success(), "kubectl delete namespace failed: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("namespace delete returned after {:?}", started.elapsed());

    // kubectl returns once the namespace is gone, and it goes only when empty.
    assert!(k.object(&["namespace", "shop"])?.is_none(), "the namespace is gone");
    for kind in ["deployments", "replicasets", "pods", "configmaps"] {
        assert!(k.items(&[kind, "-n", "shop"])?.is_empty(), "{kind} left in the deleted namespace");
    }
    assert!(pids_with(&marker).is_empty(), "the pods' processes stopped before the namespace went");

    // The name can be used again, for a fresh, empty namespace.
    k.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n")?;
    assert!(k.items(&["configmaps", "-n", "shop"])?.is_empty());
    Ok(())
}

#[test]
fn delete_by_label_and_forced_delete() -> Result<()> {
    let c = Cluster::start()?;
    let Some(k) = Kubectl::find(&c) else { return Ok(()) };
    let marker = token("collection");
    k.apply(&stubborn_deployment("web", "default", 2, &marker))?;
    let before: Vec<String> = wait_running(&c, &k, "default", "web", 2, &marker)?.iter().map(name_of).collect();

    // Deleting the pods by label: they stop gracefully, and their
    // ReplicaSet replaces them.
    let out = k.ok(&["delete", "pods", "-l", "app=web", "--timeout=60s"])?;
    for name in &before {
        assert!(out.contains(&format!("pod \"{name}\" deleted")), "{out}");
        assert!(k.object(&["pod", name])?.is_none(), "kubectl waited for {name} to go");
    }
    let after = wait_running(&c, &k, "default", "web", 2, &marker)?;
    assert!(after.iter().all(|p| !before.contains(&name_of(p))), "new pods replace the deleted ones");

    // A forced delete removes the object at once, without waiting for
    // the node; the node then stops the orphaned process.
    let victim = name_of(&after[0]);
    let started = Instant::now();
    let out = k.run(&["delete", "pod", &victim, "--grace-period=0", "--force"])?;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("pod \"{victim}\" force deleted")), "{stdout}");
    assert!(stderr.contains("Immediate deletion does not wait"), "kubectl warns: {stderr}");
    assert!(k.object(&["pod", &victim])?.is_none(), "a forced delete is immediate");
    assert!(started.elapsed() < Duration::from_secs(2), "no grace period was waited: {:?}", started.elapsed());
    // Its replacement starts, and the process count settles at two again.
    wait_running(&c, &k, "default", "web", 2, &marker)?;
    Ok(())
}
