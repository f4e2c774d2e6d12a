//! The shipped `docker-compose.yml`: a server and three agents as
//! containers, each container a "host" on a network of their own, joined
//! over TLS with the server's token. Driven as a user drives it: compose
//! builds the node image from `deploy/node.Dockerfile` (the binary on the
//! local `tinykube.local/node:1`; here the debug binary the harness builds,
//! through the file's `TINYKUBE_BIN`, which spares CI a release build),
//! `kubectl` on this host reads the kubeconfig the server wrote into a
//! host folder and sees four Ready nodes; a Deployment's pods run on the agents, inside their containers,
//! with addresses from their nodes' ranges that reach each other across
//! the containers (`--pod-network bridge --flannel-backend host-gw`);
//! an agent stopped with `compose stop` is a host gone, and its pods move.
//!
//! The copy of the cluster is the test's own: a compose project `tk<pid>`,
//! a free port on 127.0.0.1, a kubeconfig folder and an image tag of its
//! own (the compose file's `TINYKUBE_*` variables), so it runs beside a
//! user's `docker compose up`. Where the engine cannot give a container
//! every capability (Docker inside a container), the nodes run with
//! `TINYKUBE_PRIVILEGED=false`. `compose down -v` and the image's removal
//! run when the test ends, however it ends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use tinykube_tests::docker::{engine_version, require_image};
use tinykube_tests::{e2e_required, is_running_and_ready, require_tool, run_with_timeout, tinykube_bin, wait, Kubectl};

/// The base image `scripts/images.sh node` builds.
const NODE_IMAGE: &str = "tinykube.local/node:1";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// `docker compose` (v2) when the engine's CLI has it, else `docker-compose` (1.x).
fn compose_program() -> Option<Vec<&'static str>> {
    let works = |argv: &[&str]| Command::new(argv[0]).args(&argv[1..]).output().is_ok_and(|o| o.status.success());
    if works(&["docker", "compose", "version"]) {
        Some(vec!["docker", "compose"])
    } else if works(&["docker-compose", "version"]) {
        Some(vec!["docker-compose"])
    } else {
        None
    }
}

/// One compose project of the repository's docker-compose.yml; brought
/// down, volumes and all, and its image removed, when dropped.
struct Project {
    program: Vec<&'static str>,
    name: String,
    port: u16,
    image: String,
    /// The binary the image holds, relative to the repository's root.
    bin: String,
    privileged: bool,
    kubeconfig_dir: tempfile::TempDir,
}

impl Project {
    fn command(&self, args: &[&str]) -> Command {
        let root = workspace_root();
        let mut cmd = Command::new(self.program[0]);
        cmd.args(&self.program[1..])
            .arg("-f")
            .arg(root.join("docker-compose.yml"))
            .args(["-p", &self.name])
            .args(args)
            .current_dir(&root)
            .env("TINYKUBE_PORT", self.port.to_string())
            .env("TINYKUBE_KUBECONFIG_DIR", self.kubeconfig_dir.path())
            .env("TINYKUBE_IMAGE", &self.image)
            .env("TINYKUBE_BIN", &self.bin)
            .env("TINYKUBE_PRIVILEGED", self.privileged.to_string())
            // The classic builder: no BuildKit front end to pull.
            .env("DOCKER_BUILDKIT", "0")
            .env("COMPOSE_DOCKER_CLI_BUILD", "0");
        cmd
    }

    /// Runs a compose command that must succeed within `timeout`; its stdout.
    fn ok(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let out = run_with_timeout(self.command(args), timeout)?;
        if !out.status.success() {
            bail!(
                "compose {} failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn kubeconfig(&self) -> PathBuf {
        self.kubeconfig_dir.path().join("kubeconfig.yaml")
    }

    /// The last lines each container logged, for a failure's message.
    fn logs(&self) -> String {
        self.ok(&["logs", "--no-color", "--tail", "30"], Duration::from_secs(30)).unwrap_or_else(|e| format!("no logs: {e:#}"))
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- compose logs ---\n{}", self.logs());
        }
        if let Err(e) = self.ok(&["down", "-v", "--remove-orphans", "--timeout", "5"], Duration::from_secs(120)) {
            eprintln!("compose down failed: {e:#}");
        }
        let _ = Command::new("docker").args(["image", "rm", "-f", &self.image]).output();
    }
}

/// Ready nodes and their InternalIPs.
fn ready_nodes(kubectl: &Kubectl) -> Result<Vec<(String, String)>> {
    let nodes = kubectl.get_json(&["nodes"])?;
    let mut ready = Vec::new();
    for n in nodes["items"].as_array().into_iter().flatten() {
        let is_ready = n["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True");
        let ip = n["status"]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["type"] == "InternalIP")
            .map(|a| a["address"].clone());
        if is_ready {
            ready.push((
                n["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                ip.and_then(|a| a.as_str().map(String::from)).unwrap_or_default(),
            ));
        }
    }
    ready.sort();
    Ok(ready)
}

fn pods(kubectl: &Kubectl) -> Result<Vec<Value>> {
    Ok(kubectl.get_json(&["pods", "-l", "app=sleeper"])?["items"].as_array().cloned().unwrap_or_default())
}

fn node_of(pod: &Value) -> String {
    pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string()
}

/// Six busybox pods kept off the server's node, so that they all run on
/// agents; spread over them by the scheduler's default spreading.
const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: sleeper
spec:
  replicas: 6
  selector:
    matchLabels:
      app: sleeper
  template:
    metadata:
      labels:
        app: sleeper
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - key: kubernetes.io/hostname
                operator: NotIn
                values: [server]
      containers:
      - name: sleep
        image: busybox
        command: ["/bin/busybox", "sleep", "3600"]
"#;

#[test]
fn compose_runs_a_server_and_three_agents_whose_pods_move_when_one_stops() -> Result<()> {
    let docker = engine_version();
    if !require_tool("a Docker Engine", docker.is_ok(), &format!("{:?}; start dockerd", docker.err())) {
        return Ok(());
    }
    let Some(program) = compose_program() else {
        require_tool("docker compose or docker-compose", false, "apt-get install docker-compose");
        return Ok(());
    };
    if !require_tool("kubectl", Kubectl::available(), "install kubectl 1.32 and put it on the PATH") {
        return Ok(());
    }
    if !require_image(NODE_IMAGE) {
        return Ok(());
    }
    let root = workspace_root();
    let Some(bin) = tinykube_bin().strip_prefix(&root).ok().and_then(Path::to_str).map(String::from) else {
        // The compose file's build context is the repository's root.
        assert!(!e2e_required(), "CARGO_TARGET_DIR puts the binary outside docker-compose.yml's build context");
        eprintln!("skipped: the binary {} is outside the repository (CARGO_TARGET_DIR)", tinykube_bin().display());
        return Ok(());
    };
    let privileged = Command::new("docker")
        .args(["run", "--rm", "--privileged", "--network", "none", NODE_IMAGE, "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !privileged {
        eprintln!("this Docker Engine cannot start a privileged container: the nodes run with TINYKUBE_PRIVILEGED=false");
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let name = format!("tk{}", std::process::id());
    let project = Project {
        program,
        image: format!("tinykube.local/tinykube:{name}"),
        name,
        port,
        bin,
        privileged,
        kubeconfig_dir: tempfile::Builder::new().prefix("tinykube-compose").tempdir()?,
    };
    let t0 = Instant::now();
    project.ok(&["up", "-d", "--build"], Duration::from_secs(300))?;
    eprintln!("compose up: {:?}", t0.elapsed());

    // The kubeconfig the server wrote for the host names the published port.
    let kubeconfig = project.kubeconfig();
    let text = std::fs::read_to_string(&kubeconfig).with_context(|| format!("{} after compose up", kubeconfig.display()))?;
    ensure!(text.contains(&format!("server: https://127.0.0.1:{port}\n")), "{text}");
    let kubectl = Kubectl::with_kubeconfig(kubeconfig)?;

    let nodes = wait("four Ready nodes", Duration::from_secs(90), || {
        let ready = ready_nodes(&kubectl)?;
        Ok((ready.len() == 4).then_some(ready))
    })?;
    let names: Vec<&str> = nodes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["agent-1", "agent-2", "agent-3", "server"]);
    let ips: std::collections::BTreeSet<&str> = nodes.iter().map(|(_, ip)| ip.as_str()).collect();
    assert_eq!(ips.len(), 4, "each node has its container's address: {nodes:?}");
    assert!(!ips.contains("127.0.0.1"), "{nodes:?}");
    let wide = kubectl.ok(&["get", "nodes", "-o", "wide"])?;
    eprintln!("{wide}");

    let manifest = project.kubeconfig_dir.path().join("sleeper.yaml");
    std::fs::write(&manifest, DEPLOYMENT)?;
    kubectl.ok(&["apply", "-f", manifest.to_str().unwrap_or_default()])?;
    let running = wait("six pods Running on the agents", Duration::from_secs(60), || {
        let p = pods(&kubectl)?;
        Ok((p.iter().filter(|p| is_running_and_ready(p)).count() == 6).then_some(p))
    })?;
    for p in &running {
        let node = node_of(p);
        assert!(node.starts_with("agent-"), "{node}");
        let ip = nodes.iter().find(|(n, _)| *n == node).map(|(_, ip)| ip.as_str());
        assert_eq!(p["status"]["hostIP"].as_str(), ip, "the pod's hostIP is its node's address");
        // --pod-network bridge: an address from the node's own range.
        let cidr = kubectl.get_json(&["node", &node])?["spec"]["podCIDR"].as_str().unwrap_or_default().to_string();
        let prefix = cidr.strip_suffix(".0/24").map(|p| format!("{p}.")).unwrap_or(cidr.clone());
        let pod_ip = p["status"]["podIP"].as_str().unwrap_or_default();
        assert!(cidr.starts_with("10.244.") && pod_ip.starts_with(&prefix), "pod IP {pod_ip} on {node} ({cidr})");
    }
    // Pod to pod across hosts: host-gw routes between the containers.
    let (from, to) = {
        let first = &running[0];
        let other = running.iter().find(|p| node_of(p) != node_of(first)).context("pods on two agents")?;
        (first["metadata"]["name"].as_str().unwrap_or_default(), other["status"]["podIP"].as_str().unwrap_or_default())
    };
    let ping = kubectl.ok(&["exec", from, "--", "/bin/busybox", "ping", "-c", "1", "-W", "5", to])?;
    assert!(ping.contains("1 packets received"), "{ping}");
    // The pods' processes run inside their agent's container (the image is
    // not used: the process runtime runs the command in the node's root).
    let on = |agent: &str| running.iter().filter(|p| node_of(p) == agent).count();
    let busiest = ["agent-1", "agent-2", "agent-3"].into_iter().max_by_key(|a| on(a)).unwrap_or("agent-1");
    let ps = project.ok(&["exec", "-T", busiest, "ps", "-o", "args"], Duration::from_secs(30))?;
    // Not the shims, whose command lines end with their container's.
    let sleeping = ps.lines().filter(|l| l.trim_start().starts_with("/bin/busybox sleep 3600")).count();
    assert_eq!(sleeping, on(busiest), "{busiest}'s processes:\n{ps}");
    eprintln!("{}", kubectl.ok(&["get", "pods", "-o", "wide"])?);

    // A host gone: its pods die with its container, and move.
    let stopped = Instant::now();
    project.ok(&["stop", busiest], Duration::from_secs(60))?;
    let moved = wait("six pods Running on the two other agents", Duration::from_secs(90), || {
        let p = pods(&kubectl)?;
        let live: Vec<&Value> = p.iter().filter(|p| is_running_and_ready(p) && node_of(p) != busiest).collect();
        Ok((live.len() == 6).then(|| live.iter().map(|p| node_of(p)).collect::<Vec<_>>()))
    })?;
    eprintln!("{busiest} stopped: six pods Running elsewhere after {:?}", stopped.elapsed());
    assert!(moved.iter().all(|n| n.starts_with("agent-") && n != busiest), "{moved:?}");
    let node = kubectl.get_json(&["node", busiest])?;
    let taints = node["spec"]["taints"].as_array().cloned().unwrap_or_default();
    assert!(taints.iter().any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute"), "{taints:?}");
    Ok(())
}
