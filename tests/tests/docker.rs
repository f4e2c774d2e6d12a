//! The docker runtime end to end: real Docker containers, driven by real
//! kubectl through the real binary.
//!
//! Each test starts its own server with `--runtime docker`, a node name of
//! its own and a pod range of its own (so tests running at once on one
//! Docker Engine never share a bridge network), and removes every
//! container, volume and network labelled with its node when it ends, even
//! when it fails. Images are the local ones `scripts/images.sh` builds;
//! the only "registry" named is a loopback port where nothing listens, so
//! no pull ever leaves the machine.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tinykube_tests::{e2e_required, is_running_and_ready, Cluster, Kubectl};

const BUSYBOX: &str = "tinykube.local/busybox:1";

/// A server running pods in Docker, and the cleanup of what it made.
struct DockerCluster {
    cluster: Cluster,
    node: String,
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
        let label = format!("label=tinykube.io/node={}", self.node);
        let ids = docker(&["ps", "-aq", "--filter", &label]).unwrap_or_default();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f", "-v"]).args(&ids).output();
        }
        let volumes = docker(&["volume", "ls", "-q", "--filter", &label]).unwrap_or_default();
        for v in volumes.split_whitespace() {
            let _ = docker(&["volume", "rm", "-f", v]);
        }
        let _ = docker(&["network", "rm", &format!("tinykube-{}", self.node)]);
    }
}

fn docker(args: &[&str]) -> Result<String> {
    let out = Command::new("docker").args(args).output().context("running docker")?;
    if !out.status.success() {
        bail!("docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether this machine can run the docker tests; with
/// `TINYKUBE_E2E_REQUIRE=1` a missing piece is a failure.
fn docker_ready() -> bool {
    let engine = docker(&["version", "--format", "{{.Server.Version}}"]).is_ok();
    let image = engine && docker(&["image", "inspect", BUSYBOX]).is_ok();
    let kubectl = Kubectl::available();
    if engine && image && kubectl {
        return true;
    }
    let why = if !engine {
        "no Docker Engine answers"
    } else if !image {
        "the local busybox image is missing (bash scripts/images.sh)"
    } else {
        "no kubectl on the PATH"
    };
    assert!(!e2e_required(), "the docker tests cannot run: {why} (TINYKUBE_E2E_REQUIRE=1)");
    eprintln!("skipping: {why}");
    false
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl DockerCluster {
    fn start() -> Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let node = format!("dk{}-{n}", std::process::id());
        // One /24 per test of this process; the pid spreads processes apart.
        let third = 100 + (std::process::id() % 100 + n * 37) % 150;
        let cidr = format!("10.88.{third}.0/24");
        let cluster = Cluster::start_node(&node, &["--runtime", "docker", "--pod-cidr", &cidr])?;
        Ok(DockerCluster { cluster, node })
    }

    /// `(name, state)` of this node's containers of `kind` (`podsandbox` or `container`).
    fn containers(&self, kind: &str) -> Vec<(String, String)> {
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=tinykube.io/node={}", self.node),
            "--filter",
            &format!("label=io.kubernetes.docker.type={kind}"),
            "--format",
            "{{.ID}} {{.State}}",
        ])
        .unwrap_or_default();
        out.lines().filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string()))).collect()
    }

    fn running(&self, kind: &str) -> Vec<String> {
        let mut ids: Vec<String> = self.containers(kind).into_iter().filter(|(_, s)| s == "running").map(|(id, _)| id).collect();
        ids.sort();
        ids
    }
}

/// `GET path` over HTTP/1.0 with a short timeout; the body.
fn http_get(ip: &str, port: u16, path: &str) -> Option<String> {
    let addr = format!("{ip}:{port}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    reply.starts_with("HTTP/1.").then(|| reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

fn pods(k: &Kubectl, selector: &str) -> Vec<Value> {
    k.get_json(&["pods", "-l", selector]).ok().and_then(|v| v["items"].as_array().cloned()).unwrap_or_default()
}

fn httpd_deployment(name: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: httpd
        image: {BUSYBOX}
        command: ["sh", "-c", "echo hello from $HOSTNAME > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
        ports: [{{containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /index.html, port: 8080}}
          periodSeconds: 1
"#
    )
}

/// Three replicas of busybox httpd: three sandboxes and three containers
/// in Docker, each pod answering on its own IP from the host, readiness
/// gating availability; a `kill -9` of the server changes nothing that
/// runs; deleting the Deployment removes every container.
#[test]
fn a_deployment_runs_as_docker_containers_that_answer_on_their_pod_ips_and_survive_a_server_kill() -> Result<()> {
    if !docker_ready() {
        return Ok(());
    }
    let mut dc = DockerCluster::start()?;
    let k = Kubectl::new(&dc.cluster)?;
    let node = k.get_json(&["node", &dc.node])?;
    let runtime = node["status"]["nodeInfo"]["containerRuntimeVersion"].as_str().unwrap_or_default().to_string();
    assert!(runtime.starts_with("docker://"), "containerRuntimeVersion {runtime}");

    dc.cluster.apply(&httpd_deployment("web", 3))?;
    dc.cluster.wait_for("3 available replicas", Duration::from_secs(90), || {
        let d = k.get_json(&["deployment", "web"]).ok()?;
        (d["status"]["availableReplicas"] == 3).then_some(())
    })?;
    let ready = pods(&k, "app=web");
    assert_eq!(ready.len(), 3);
    assert!(ready.iter().all(is_running_and_ready));
    assert_eq!(dc.running("podsandbox").len(), 3, "one sandbox per pod");
    assert_eq!(dc.running("container").len(), 3, "one container per pod");
    for pod in &ready {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let ip = pod["status"]["podIP"].as_str().unwrap();
        assert!(ip.starts_with("10.88."), "pod IP {ip} from the node's range");
        let body = http_get(ip, 8080, "/index.html");
        assert_eq!(body.as_deref(), Some(format!("hello from {name}\n").as_str()), "{name} on {ip}");
        let id = pod["status"]["containerStatuses"][0]["containerID"].as_str().unwrap();
        assert!(id.starts_with("docker://"), "containerID {id}");
    }
    let sandboxes = dc.running("podsandbox");
    let containers = dc.running("container");

    // A SIGKILLed server adopts what runs: same ids, nothing restarted.
    dc.cluster.kill9()?;
    dc.cluster.restart()?;
    dc.cluster.wait_for("3 pods Ready again", Duration::from_secs(60), || {
        let p = pods(&k, "app=web");
        (p.len() == 3 && p.iter().all(is_running_and_ready)).then_some(())
    })?;
    // Give the new agent time to act on what it found: a fresh status
    // write proves it synced the pods.
    let after = pods(&k, "app=web");
    assert!(after.iter().all(|p| p["status"]["containerStatuses"][0]["restartCount"] == 0), "no restarts: {after:?}");
    assert_eq!(dc.running("podsandbox"), sandboxes, "the same sandboxes");
    assert_eq!(dc.running("container"), containers, "the same containers");

    k.ok(&["delete", "deployment", "web", "--wait=false"])?;
    dc.cluster.wait_for("every container and sandbox removed", Duration::from_secs(60), || {
        (dc.containers("container").is_empty() && dc.containers("podsandbox").is_empty() && pods(&k, "app=web").is_empty()).then_some(())
    })?;
    Ok(())
}

/// Two containers of one pod share `localhost`; exec runs in the
/// container with its exit code and stdin; logs come from Docker.
#[test]
fn containers_of_a_pod_share_localhost_and_exec_and_logs_reach_inside() -> Result<()> {
    if !docker_ready() {
        return Ok(());
    }
    let dc = DockerCluster::start()?;
    let k = Kubectl::new(&dc.cluster)?;
    dc.cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: duo}}
spec:
  initContainers:
  - name: prepare
    image: {BUSYBOX}
    command: ["sh", "-c", "echo prepared"]
  containers:
  - name: server
    image: {BUSYBOX}
    command: ["sh", "-c", "echo from-server > /tmp/i; exec httpd -f -p 8080 -h /tmp"]
  - name: client
    image: {BUSYBOX}
    command: ["sh", "-c", "until wget -qO- http://localhost:8080/i; do sleep 0.2; done; sleep 3600"]
"#
    ))?;
    dc.cluster.wait_for("the client reached the server on localhost", Duration::from_secs(90), || {
        let out = k.run(&["logs", "duo", "-c", "client"]).ok()?;
        String::from_utf8_lossy(&out.stdout).contains("from-server").then_some(())
    })?;
    let pod = k.get_json(&["pod", "duo"])?;
    assert_eq!(pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"], "Completed", "{pod}");

    let (code, out, _) = k.fails(&["exec", "duo", "-c", "client", "--", "sh", "-c", "echo in $(hostname); exit 3"])?;
    assert_eq!((code, out.trim()), (3, "in duo"));
    let mut tr = k.command(&["exec", "-i", "duo", "-c", "client", "--", "tr", "a-z", "A-Z"]);
    tr.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = tr.spawn()?;
    child.stdin.take().unwrap().write_all(b"abc\n")?;
    let out = child.wait_with_output()?;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ABC\n");
    let stamped = k.ok(&["logs", "duo", "-c", "client", "--timestamps"])?;
    let first = stamped.lines().next().unwrap_or_default();
    assert!(first.ends_with(" from-server") && first.split(' ').next().unwrap().parse::<jiff::Timestamp>().is_ok(), "{first}");
    Ok(())
}

/// An image that cannot be pulled waits with ErrImagePull, then
/// ImagePullBackOff, in the engine's words; `Never` with a missing image
/// is ErrImageNeverPull; a pod beside them runs.
#[test]
fn a_missing_image_waits_with_upstreams_reasons_and_disturbs_nothing() -> Result<()> {
    if !docker_ready() {
        return Ok(());
    }
    let dc = DockerCluster::start()?;
    let k = Kubectl::new(&dc.cluster)?;
    dc.cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: missing}}
spec:
  containers:
  - {{name: app, image: "127.0.0.1:5999/missing:1"}}
---
apiVersion: v1
kind: Pod
metadata: {{name: never}}
spec:
  containers:
  - {{name: app, image: "tinykube.local/absent:1", imagePullPolicy: Never}}
---
apiVersion: v1
kind: Pod
metadata: {{name: fine}}
spec:
  containers:
  - {{name: app, image: {BUSYBOX}, command: [sleep, "3600"]}}
"#
    ))?;
    let waiting = |pod: &str| -> Option<(String, String)> {
        let p = k.get_json(&["pod", pod]).ok()?;
        let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        Some((w["reason"].as_str()?.to_string(), w["message"].as_str().unwrap_or_default().to_string()))
    };
    // ErrImagePull lasts only until the back-off starts (500 ms in these
    // tests), too short to be sure to see in the status; its events stay.
    let pulled = dc.cluster.wait_for("the failed pull's events", Duration::from_secs(60), || {
        let out = k.run(&["get", "events", "--field-selector", "involvedObject.name=missing", "-o", "json"]).ok()?;
        let e = String::from_utf8_lossy(&out.stdout).into_owned();
        (e.contains("Error: ErrImagePull") && e.contains("Failed to pull image")).then_some(e)
    })?;
    assert!(pulled.contains("127.0.0.1:5999/missing:1") && pulled.contains("connection refused"), "the engine's words: {pulled}");
    let (_, message) = dc
        .cluster
        .wait_for("ImagePullBackOff", Duration::from_secs(60), || waiting("missing").filter(|(r, _)| r == "ImagePullBackOff"))?;
    assert_eq!(message, "Back-off pulling image \"127.0.0.1:5999/missing:1\"");
    let (_, message) = dc
        .cluster
        .wait_for("ErrImageNeverPull", Duration::from_secs(60), || waiting("never").filter(|(r, _)| r == "ErrImageNeverPull"))?;
    assert_eq!(message, "Container image \"tinykube.local/absent:1\" is not present with pull policy of Never");
    dc.cluster.wait_for("the other pod Running", Duration::from_secs(60), || {
        let p = k.get_json(&["pod", "fine"]).ok()?;
        is_running_and_ready(&p).then_some(())
    })?;
    Ok(())
}

/// A container over its memory limit is OOM-killed (`OOMKilled`, 137) and
/// restarted; a failing liveness probe restarts a container too.
#[test]
fn an_oom_killed_or_unhealthy_container_is_restarted() -> Result<()> {
    if !docker_ready() {
        return Ok(());
    }
    let dc = DockerCluster::start()?;
    let k = Kubectl::new(&dc.cluster)?;
    dc.cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: hungry}}
spec:
  containers:
  - name: app
    image: {BUSYBOX}
    # A string that doubles until the kernel's OOM killer ends the shell.
    command: ["sh", "-c", "sleep 1; x=aaaaaaaa; while true; do x=$x$x; done"]
    resources: {{limits: {{memory: 32Mi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: sick}}
spec:
  containers:
  - name: app
    image: {BUSYBOX}
    command: ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec: {{command: [test, -f, /tmp/healthy]}}
      periodSeconds: 1
      failureThreshold: 1
"#
    ))?;
    let last = |pod: &str| -> Option<Value> {
        let p = k.get_json(&["pod", pod]).ok()?;
        let s = p["status"]["containerStatuses"][0].clone();
        (s["restartCount"].as_i64()? >= 1).then_some(s)
    };
    let hungry = dc.cluster.wait_for("an OOM kill and a restart", Duration::from_secs(90), || last("hungry"))?;
    let t = &hungry["lastState"]["terminated"];
    assert_eq!((t["reason"].as_str(), t["exitCode"].as_i64()), (Some("OOMKilled"), Some(137)), "{hungry}");
    let sick = dc.cluster.wait_for("a liveness restart", Duration::from_secs(90), || last("sick"))?;
    assert!(sick["lastState"]["terminated"].is_object(), "{sick}");
    let events = k.ok(&["get", "events", "--field-selector", "involvedObject.name=sick"])?;
    assert!(events.contains("failed liveness probe, will be restarted"), "{events}");
    Ok(())
}

/// The seeds' walk-through: the Python app built with `docker build`,
/// applied as it is, three pods answering, scaled to five, a new version
/// rolled out, deleted.
#[test]
fn the_python_app_walk_through() -> Result<()> {
    if !docker_ready() {
        return Ok(());
    }
    if docker(&["image", "inspect", "tinykube.local/python:3"]).is_err() {
        assert!(!e2e_required(), "the local python image is missing (bash scripts/images.sh)");
        eprintln!("skipping: the local python image is missing (bash scripts/images.sh)");
        return Ok(());
    }
    let app_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/python-app");
    let built = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "--build-arg", "BASE=tinykube.local/python:3", "-t", "tinykube-python-app:1", app_dir])
        .output()?;
    assert!(built.status.success(), "docker build: {}", String::from_utf8_lossy(&built.stderr));
    let dc = DockerCluster::start()?;
    let k = Kubectl::new(&dc.cluster)?;
    k.ok(&["apply", "-f", &format!("{app_dir}/k8s.yaml")])?;
    let answers = |replicas: usize, version: &str| -> Option<()> {
        let p = pods(&k, "app=python-app");
        let live: Vec<&Value> = p.iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect();
        if live.len() != replicas || !live.iter().all(|p| is_running_and_ready(p)) {
            return None;
        }
        live.iter()
            .all(|p| {
                let (ip, name) = (p["status"]["podIP"].as_str().unwrap_or_default(), p["metadata"]["name"].as_str().unwrap_or_default());
                http_get(ip, 8080, "/").is_some_and(|b| b.contains(&format!("version {version}")) && b.contains(name))
            })
            .then_some(())
    };
    dc.cluster.wait_for("3 pods answering", Duration::from_secs(120), || answers(3, "1"))?;
    k.ok(&["scale", "deployment/python-app", "--replicas", "5"])?;
    dc.cluster.wait_for("5 pods answering", Duration::from_secs(120), || answers(5, "1"))?;
    k.ok(&["set", "env", "deployment/python-app", "VERSION=2"])?;
    dc.cluster.wait_for("5 pods answering version 2", Duration::from_secs(180), || answers(5, "2"))?;
    k.ok(&["delete", "-f", &format!("{app_dir}/k8s.yaml")])?;
    let began = Instant::now();
    dc.cluster
        .wait_for("every container removed", Duration::from_secs(90), || dc.containers("container").is_empty().then_some(()))?;
    assert!(began.elapsed() < Duration::from_secs(60));
    Ok(())
}

/// Volumes: an init container's output reaches the app container through
/// an emptyDir; a configMap volume follows an edit of its ConfigMap inside
/// the running container; a read-only mount refuses writes.
#[test]
fn volumes_carry_an_init_containers_output_and_follow_a_configmap_edit() -> Result<()> {
    if !docker_ready() {
        return Ok(());
    }
    let dc = DockerCluster::start()?;
    let k = Kubectl::new(&dc.cluster)?;
    dc.cluster.apply(&format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{greeting: hello}}
---
apiVersion: v1
kind: Pod
metadata: {{name: vols}}
spec:
  initContainers:
  - name: prepare
    image: {BUSYBOX}
    command: ["sh", "-c", "echo prepared-by-init > /work/note"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: app
    image: {BUSYBOX}
    command: ["sh", "-c", "cat /work/note; while true; do cat /config/greeting; echo; sleep 0.5; done"]
    volumeMounts:
    - {{name: work, mountPath: /work}}
    - {{name: config, mountPath: /config}}
  volumes:
  - {{name: work, emptyDir: {{}}}}
  - {{name: config, configMap: {{name: settings}}}}
"#
    ))?;
    let logs = || k.run(&["logs", "vols", "-c", "app"]).map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    dc.cluster.wait_for("the init container's note and the greeting", Duration::from_secs(90), || {
        let l = logs();
        (l.starts_with("prepared-by-init\n") && l.contains("hello")).then_some(())
    })?;
    k.ok(&["patch", "configmap", "settings", "--type=merge", "-p", r#"{"data":{"greeting":"bye"}}"#])?;
    dc.cluster
        .wait_for("the edit visible inside the container", Duration::from_secs(60), || logs().contains("bye").then_some(()))?;
    assert_eq!(k.ok(&["exec", "vols", "--", "cat", "/config/greeting"])?, "bye");
    let (code, _, err) = k.fails(&["exec", "vols", "--", "sh", "-c", "echo x > /config/greeting"])?;
    assert!(code != 0 && err.contains("Read-only file system"), "{code} {err}");
    Ok(())
}

/// Hooks and restarts: postStart runs in the container before it counts
/// as started, preStop runs before the stop signal; a container that keeps
/// failing goes to CrashLoopBackOff and `logs --previous` shows its last
/// run; `resourceFieldRef` reaches the environment.
#[test]
fn hooks_crash_loops_previous_logs_and_resource_env() -> Result<()> {
    if !docker_ready() {
        return Ok(());
    }
    let dc = DockerCluster::start()?;
    let k = Kubectl::new(&dc.cluster)?;
    let out = dc.cluster.data_dir.path().join("hook-out");
    dc.cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: app
    image: {BUSYBOX}
    command: ["sh", "-c", "echo limit=$MEM_MI; sleep 3600"]
    env:
    - name: MEM_MI
      valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}
    resources: {{limits: {{memory: 64Mi}}}}
    lifecycle:
      postStart: {{exec: {{command: ["sh", "-c", "echo started > /tmp/post"]}}}}
      preStop: {{exec: {{command: ["sh", "-c", "echo stopping > /out/prestop"]}}}}
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes:
  - {{name: out, hostPath: {{path: "{out}", type: DirectoryOrCreate}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: crashy}}
spec:
  containers:
  - name: app
    image: {BUSYBOX}
    command: ["sh", "-c", "echo run at $(date +%s%N); exit 1"]
"#,
        out = out.display()
    ))?;
    dc.cluster.wait_for("hooked Running", Duration::from_secs(60), || {
        let p = k.get_json(&["pod", "hooked"]).ok()?;
        is_running_and_ready(&p).then_some(())
    })?;
    assert_eq!(k.ok(&["exec", "hooked", "--", "cat", "/tmp/post"])?, "started\n", "postStart ran in the container");
    assert!(k.ok(&["logs", "hooked"])?.contains("limit=64"), "resourceFieldRef in the environment");

    let crashy = dc.cluster.wait_for("CrashLoopBackOff", Duration::from_secs(90), || {
        let p = k.get_json(&["pod", "crashy"]).ok()?;
        let s = p["status"]["containerStatuses"][0].clone();
        (s["state"]["waiting"]["reason"] == "CrashLoopBackOff" && s["restartCount"].as_i64()? >= 2).then_some(s)
    })?;
    assert_eq!(crashy["lastState"]["terminated"]["exitCode"], 1, "{crashy}");
    let previous = k.ok(&["logs", "crashy", "--previous"])?;
    assert!(previous.starts_with("run at "), "{previous}");

    // preStop runs in the container before it is stopped.
    k.ok(&["delete", "pod", "hooked", "--wait=false"])?;
    dc.cluster.wait_for("the preStop hook's file", Duration::from_secs(30), || {
        std::fs::read_to_string(out.join("prestop")).ok().filter(|t| t == "stopping\n").map(|_| ())
    })?;
    Ok(())
}
