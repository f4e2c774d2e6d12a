//! A cluster over several hosts, end to end: four test hosts as network
//! namespaces on one switch ([`Hosts`]), the server in host 0 and an agent
//! in each of hosts 1 to 3, driven from the root namespace with the real
//! `kubectl`.
//!
//! One cluster, one test, in steps, each bounded and timed:
//!
//! 1. six replicas spread by `kubernetes.io/hostname` land two on each
//!    agent's node;
//! 2. a pod on host 1 fetches HTTP from a pod on host 3 by its pod IP,
//!    through the nodes' host-gw routes (`--pod-network bridge
//!    --flannel-backend host-gw`: a network namespace per pod);
//! 3. an address of the cluster CIDR that no node has is blackholed on
//!    the host rather than sent out of its default route;
//! 4. host 3's cable is pulled: its Node goes `Ready=Unknown` with the
//!    `unreachable` taints and its two pods are replaced on hosts 1 and 2;
//! 5. host 3 comes back: its stale pods are stopped and leave the API, so
//!    no replica runs twice;
//! 6. the server is killed with SIGKILL and started again: no pod on the
//!    agents restarts.
//!
//! Pods run under the process runtime, so their commands are binaries of
//! this machine: Debian's static busybox gives `httpd`, `wget` and `sh`.
//! Every pod's command line carries a marker, the test's token, so the
//! test finds its processes and which host's namespaces they are in.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;
use tinykube_tests::{hosts, is_running_and_ready, pids_with, require_tool, tinykube_bin, token, wait, Cluster, Hosts, Kubectl};

/// The agents' hosts and node names; host 0 runs the server.
const AGENTS: [(usize, &str); 3] = [(1, "h1"), (2, "h2"), (3, "h3")];

/// The pod network inside the test hosts; it exists only there.
const CLUSTER_CIDR: &str = "10.200.0.0/16";

/// An address of [`CLUSTER_CIDR`] in a /24 no node is given (nodes get
/// the first /24s, one each).
const UNROUTED: &str = "10.200.250.1";

/// The port the pods' httpd serves.
const HTTP_PORT: u16 = 8080;

const BUSYBOX: &str = "/bin/busybox";

/// The Deployment: `replicas` pods spread over hostnames, each writing its
/// name into a directory of `www` and serving it with busybox httpd on
/// its own pod IP. The directory's path carries the marker, so httpd's
/// command line does too.
fn web_deployment(replicas: u32, www: &str) -> String {
    let serve = format!("exec {BUSYBOX} httpd -f -p {HTTP_PORT} -h {www}/$HOSTNAME");
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      # nodeTaintsPolicy Honor: a node whose taints the pods do not
      # tolerate is no spreading domain. With upstream's default (Ignore)
      # the tainted server node, and later the unreachable h3, would count
      # as empty domains and hold the skew above 1, leaving pods Pending.
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        nodeTaintsPolicy: Honor
        labelSelector:
          matchLabels:
            app: web
      containers:
      - name: httpd
        image: busybox
        command: ["{BUSYBOX}", "sh", "-c", "mkdir -p {www}/$HOSTNAME && echo $HOSTNAME > {www}/$HOSTNAME/index.html && {serve}"]
"#
    )
}

fn pods(kubectl: &Kubectl) -> Result<Vec<Value>> {
    Ok(kubectl.get_json(&["pods", "-l", "app=web"])?["items"].as_array().cloned().unwrap_or_default())
}

fn node_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or_default()
}

fn name_of(pod: &Value) -> String {
    pod["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

/// Running and ready pods, by node.
fn running_by_node(pods: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_node: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in pods.iter().filter(|p| is_running_and_ready(p)) {
        by_node.entry(node_of(p).to_string()).or_default().insert(name_of(p));
    }
    by_node
}

/// A node's Ready condition status (`True`, `False`, `Unknown`).
fn ready_status(kubectl: &Kubectl, node: &str) -> Result<String> {
    let node = kubectl.get_json(&["node", node])?;
    let ready = node["status"]["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Ready")).cloned();
    Ok(ready.and_then(|r| r["status"].as_str().map(String::from)).unwrap_or_default())
}

/// Each pod's container restart count and the pids of the test's
/// processes, to compare across the server's restart.
fn restart_counts(kubectl: &Kubectl) -> Result<BTreeMap<String, i64>> {
    Ok(pods(kubectl)?
        .iter()
        .map(|p| (name_of(p), p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(-1)))
        .collect())
}

#[test]
fn a_cluster_over_three_hosts_spreads_talks_and_survives_a_cut_and_a_server_restart() -> Result<()> {
    if !require_tool("test hosts (root and iproute2)", hosts::unavailable().is_none(), &hosts::unavailable().unwrap_or_default())
        || !require_tool("busybox", std::path::Path::new(BUSYBOX).exists(), "apt-get install busybox-static")
        || !require_tool("kubectl", Kubectl::available(), "install kubectl 1.32 and put it on the PATH")
    {
        return Ok(());
    }
    let marker = token("multihost");
    // Built (or found fresh) first, so the timings below leave the build out.
    tinykube_bin();

    // Declared first so it drops last: the agents and the server stop (and
    // stop their pods) before the hosts' namespaces go.
    let started = Instant::now();
    let hosts = Hosts::new(4)?;
    eprintln!("4 test hosts on {} (root at {}): {:?}", hosts.subnet(), hosts.root_ip(), started.elapsed());
    let www_dir = tempfile::Builder::new().prefix(&format!("{marker}-www")).tempdir()?;
    let www = www_dir.path().to_str().context("a UTF-8 temp dir")?.to_string();

    // Short timers, so the cut is seen within seconds: a node silent for
    // 2 s is Unknown, and pods tolerate that for 2 s more.
    let mut server_args = vec![
        "--cluster-cidr",
        CLUSTER_CIDR,
        "--node-monitor-grace-period",
        "2s",
        "--node-monitor-period",
        "500ms",
        "--default-unreachable-toleration-seconds",
        "2",
        "--default-not-ready-toleration-seconds",
        "2",
        "--node-status-update-frequency",
        "500ms",
    ];
    let mut agent_args = vec!["--node-status-update-frequency", "500ms"];
    // Each pod in a network namespace of its own on its node's bridge, and
    // host-gw routes between the nodes. The server's --cluster-cidr
    // (above) is the IPAM range and also what its own agent blackholes;
    // an agent's is only the latter.
    let network = ["--pod-network", "bridge", "--flannel-backend", "host-gw"];
    server_args.extend(network);
    agent_args.extend(network);
    agent_args.extend(["--cluster-cidr", CLUSTER_CIDR]);

    let t = Instant::now();
    let mut cluster = Cluster::start_on(&hosts[0], "h0", &server_args)?;
    eprintln!("server in {} at {}: node h0 Ready after {:?}", hosts[0].netns.as_deref().unwrap_or_default(), cluster.url(), t.elapsed());
    // Dropped before the cluster: each agent stops its pods first.
    let mut agents = Vec::new();
    for (i, name) in AGENTS {
        let t = Instant::now();
        agents.push(cluster.join_on(&hosts[i], name, &agent_args)?);
        eprintln!("agent {name} in host {i} at {}: Node Ready after {:?}", hosts[i].ip, t.elapsed());
    }
    let kubectl = Kubectl::new(&cluster)?;

    // The nodes are reached at their hosts' addresses.
    let nodes = kubectl.get_json(&["nodes"])?;
    let mut internal_ips = BTreeMap::new();
    let mut pod_cidrs = BTreeMap::new();
    for n in nodes["items"].as_array().into_iter().flatten() {
        let name = n["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let ip = n["status"]["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
            .and_then(|a| a["address"].as_str())
            .unwrap_or_default()
            .to_string();
        internal_ips.insert(name.clone(), ip);
        pod_cidrs.insert(name, n["spec"]["podCIDR"].as_str().unwrap_or_default().to_string());
    }
    let want: BTreeMap<String, String> =
        [(0, "h0")].into_iter().chain(AGENTS).map(|(i, n)| (n.to_string(), hosts[i].ip.to_string())).collect();
    assert_eq!(internal_ips, want, "each Node's InternalIP is its host's address");
    eprintln!("pod ranges: {pod_cidrs:?}");

    // The server's node takes no pods of this test: tainted NoSchedule as
    // kubeadm taints a control-plane node, so the six go to the agents.
    kubectl.ok(&["taint", "node", "h0", "node-role.kubernetes.io/control-plane:NoSchedule"])?;

    // Step 1: two replicas per agent node.
    let t = Instant::now();
    let manifest = tempfile::NamedTempFile::new()?;
    std::fs::write(manifest.path(), web_deployment(6, &www))?;
    kubectl.ok(&["apply", "-f", manifest.path().to_str().unwrap_or_default()])?;
    let placed = wait("6 pods Running, 2 on each agent node", Duration::from_secs(60), || {
        let by_node = running_by_node(&pods(&kubectl)?);
        let counts: BTreeMap<&str, usize> = by_node.iter().map(|(n, p)| (n.as_str(), p.len())).collect();
        Ok((counts == AGENTS.iter().map(|(_, n)| (*n, 2)).collect()).then_some(by_node))
    })?;
    eprintln!("step 1: 6 replicas Running, 2 per agent node, {:?} after apply: {placed:?}", t.elapsed());
    for (i, name) in AGENTS {
        let here = hosts[i].pids_with(&marker).len();
        assert_eq!(here, 2, "host {i} ({name}) runs its 2 pods' processes");
    }

    let all = pods(&kubectl)?;
    let on = |node: &str| -> Vec<&Value> { all.iter().filter(|p| node_of(p) == node && is_running_and_ready(p)).collect() };
    let client = on("h1")[0];
    let target = on("h3")[0];
    let target_ip = target["status"]["podIP"].as_str().unwrap_or_default().to_string();

    // kubectl exec goes from the root namespace to the api-server in host 0
    // and on to h1's agent at its host's address; the command runs in the
    // pod's network namespace, which holds the pod's IP from h1's range.
    let t = Instant::now();
    let client_ip = client["status"]["podIP"].as_str().unwrap_or_default().to_string();
    let h1_range: api::cidr::Cidr = pod_cidrs["h1"].parse()?;
    let ip: std::net::IpAddr = client_ip.parse().with_context(|| format!("pod IP {client_ip:?}"))?;
    assert_eq!(api::cidr::Cidr::new(ip, h1_range.prefix()), Some(h1_range), "{client_ip} is in h1's range {h1_range}");
    let addrs = kubectl.ok(&["exec", &name_of(client), "--", BUSYBOX, "ip", "-4", "-o", "addr", "show"])?;
    assert!(addrs.contains(&format!("inet {client_ip}/")), "{} has its pod IP {client_ip}:\n{addrs}", name_of(client));
    eprintln!("kubectl exec into {} on h1 ({client_ip}) in {:?}", name_of(client), t.elapsed());

    // Step 2: pod to pod across hosts by pod IP. (busybox 1.35's wget
    // crashes on -T here, so busybox timeout bounds it instead.)
    let h3_range: api::cidr::Cidr = pod_cidrs["h3"].parse()?;
    let ip: std::net::IpAddr = target_ip.parse().with_context(|| format!("pod IP {target_ip:?}"))?;
    assert_eq!(api::cidr::Cidr::new(ip, h3_range.prefix()), Some(h3_range), "{target_ip} is in h3's range {h3_range}");
    let route = hosts[1].ip(&["route", "get", &target_ip])?;
    assert!(route.contains(&format!("via {}", hosts[3].ip)), "host 1 routes h3's pods through host 3: {route}");
    let t = Instant::now();
    let url = format!("http://{target_ip}:{HTTP_PORT}/");
    let body = kubectl.ok(&["exec", &name_of(client), "--", BUSYBOX, "timeout", "5", BUSYBOX, "wget", "-qO-", &url])?;
    assert_eq!(body.trim(), name_of(target), "{} on h1 fetched {url} from {} on h3", name_of(client), name_of(target));
    eprintln!("step 2: {} (h1) got {url} from {} (h3) in {:?}", name_of(client), name_of(target), t.elapsed());

    // Step 3: a /24 of the cluster CIDR no node has is a blackhole on
    // the host: the route lookup ends in EINVAL, the kernel's answer for a
    // blackhole route, so such a packet is dropped on the node instead of
    // leaving by a default route (the test hosts have none; real hosts do).
    let blackholes = hosts[1].ip(&["route", "show", "type", "blackhole"])?;
    assert!(blackholes.contains(CLUSTER_CIDR), "host 1 blackholes the cluster CIDR: {blackholes:?}");
    let out = hosts[1].run("ip", &["route", "get", UNROUTED], Duration::from_secs(5))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("Invalid argument"), "ip route get {UNROUTED} on host 1: {stderr}");
    eprintln!("step 3: {UNROUTED} on host 1: {}", stderr.trim());

    // Step 4: pull host 3's cable.
    let before: BTreeSet<String> = placed["h3"].clone();
    let cut = Instant::now();
    hosts.cut(3)?;
    wait("h3 Ready=Unknown with the unreachable NoExecute taint", Duration::from_secs(15), || {
        let node = kubectl.get_json(&["node", "h3"])?;
        let unknown = ready_status(&kubectl, "h3")? == "Unknown";
        let tainted = node["spec"]["taints"]
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute"));
        Ok((unknown && tainted).then_some(()))
    })?;
    let detected = cut.elapsed();
    let moved = wait("h3's 2 pods replaced on h1 and h2", Duration::from_secs(30), || {
        let by_node = running_by_node(&pods(&kubectl)?);
        let count = |n: &str| by_node.get(n).map_or(0, BTreeSet::len);
        Ok((count("h1") + count("h2") == 6).then_some(by_node))
    })?;
    let replaced = cut.elapsed();
    eprintln!("step 4: h3 cut off: Unknown and tainted after {detected:?}, 6 pods Running on h1 and h2 after {replaced:?}: {moved:?}");
    assert!(replaced < Duration::from_secs(15), "replacements ran {replaced:?} after the cut");
    // The old pods are still running in host 3: its agent has heard nothing.
    assert_eq!(hosts[3].pids_with(&marker).len(), 2, "h3's pods run on, cut off");

    // Step 5: plug it back in; the stale pods stop and leave the API.
    let back = Instant::now();
    hosts.reconnect(3)?;
    wait("h3 Ready again", Duration::from_secs(30), || Ok((ready_status(&kubectl, "h3")? == "True").then_some(())))?;
    let ready_again = back.elapsed();
    wait("h3's unreachable taints to go", Duration::from_secs(10), || {
        Ok(kubectl.get_json(&["node", "h3"])?["spec"]["taints"].as_array().is_none_or(Vec::is_empty).then_some(()))
    })?;
    wait("h3's stale pods gone from the API, their processes and namespaces from host 3", Duration::from_secs(30), || {
        let p = pods(&kubectl)?;
        let stale = p.iter().any(|p| before.contains(&name_of(p)));
        // Gone from host 3 too: no marked process in its namespace or its
        // pods' namespaces, and no pod namespace left there.
        let left = hosts[3].pids_with(&marker).is_empty() && hosts[3].pod_netns().is_empty();
        Ok((!stale && p.len() == 6 && left).then_some(()))
    })?;
    eprintln!("step 5: h3 back: Ready after {ready_again:?}, stale pods gone after {:?}", back.elapsed());
    let p = pods(&kubectl)?;
    assert_eq!(p.len(), 6, "no replica runs twice");
    assert!(p.iter().all(|p| is_running_and_ready(p) && node_of(p) != "h3"), "none runs on h3");
    assert_eq!(pids_with(&marker).len(), 6, "six processes in all");

    // Step 6: kill the server and start it again; the pods live on.
    let counts = restart_counts(&kubectl)?;
    let mut procs = pids_with(&marker);
    procs.sort_unstable();
    let t = Instant::now();
    cluster.kill9()?;
    cluster.restart()?;
    for (_, name) in AGENTS {
        wait(&format!("{name} Ready after the restart"), Duration::from_secs(30), || {
            Ok((ready_status(&kubectl, name)? == "True").then_some(()))
        })?;
    }
    let up = t.elapsed();
    // Long enough for a bad decision to show: the nodes' grace period and
    // the pods' toleration, twice over.
    std::thread::sleep(Duration::from_secs(8));
    let mut after = pids_with(&marker);
    after.sort_unstable();
    assert_eq!(after, procs, "the same container processes run on");
    assert_eq!(restart_counts(&kubectl)?, counts, "no pod restarted or was replaced");
    for (_, name) in AGENTS {
        assert_eq!(ready_status(&kubectl, name)?, "True", "{name} stayed Ready");
    }
    eprintln!("step 6: server killed and restarted, agents Ready again after {up:?}; 8 s later the same 6 pods and processes");

    kubectl.ok(&["delete", "deployment", "web"])?;
    wait("the pods' processes to end", Duration::from_secs(30), || Ok(pids_with(&marker).is_empty().then_some(())))?;
    eprintln!("all steps done {:?} after the hosts were made", started.elapsed());
    Ok(())
}

/// The fixture itself: hosts reach each other and the root namespace
/// reaches them; bridged frames skip netfilter in the switch; dropping
/// the hosts kills what runs in them and deletes their namespaces and the
/// pod namespaces their agents recorded; a crashed run's leftovers go
/// when the next hosts are made.
#[test]
fn test_hosts_reach_each_other_and_leave_nothing_behind() -> Result<()> {
    if !require_tool("test hosts (root and iproute2)", hosts::unavailable().is_none(), &hosts::unavailable().unwrap_or_default())
        || !require_tool("busybox", std::path::Path::new(BUSYBOX).exists(), "apt-get install busybox-static")
    {
        return Ok(());
    }
    let netns = || -> Result<Vec<String>> {
        let out = std::process::Command::new("ip").args(["netns", "list"]).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().next().map(String::from)).collect())
    };
    // A "crashed run": namespaces named for a pid that has exited.
    let mut gone = std::process::Command::new("true").spawn()?;
    gone.wait()?;
    let crashed = format!("tk{}ah0", gone.id());
    std::process::Command::new("ip").args(["netns", "add", &crashed]).status()?;

    let t = Instant::now();
    let hosts = Hosts::new(2)?;
    eprintln!("2 hosts made in {:?}", t.elapsed());
    assert!(!netns()?.contains(&crashed), "the leftover {crashed} of a dead pid was removed");

    let ping = |from: &tinykube_tests::Host, to: &str| -> Result<bool> {
        Ok(from.run(BUSYBOX, &["ping", "-c1", "-W2", to], Duration::from_secs(5))?.status.success())
    };
    assert!(ping(&hosts[0], &hosts[1].ip.to_string())?, "host 0 reaches host 1");
    assert!(ping(&hosts[1], &hosts[0].ip.to_string())?, "host 1 reaches host 0");
    assert!(ping(&hosts[1], &hosts.root_ip().to_string())?, "host 1 reaches the root namespace");
    assert!(ping(&tinykube_tests::Host::local(), &hosts[0].ip.to_string())?, "the root namespace reaches host 0");
    let switch = hosts.switch_netns().to_string();
    let sysctl = std::process::Command::new("ip")
        .args(["netns", "exec", &switch, "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables"])
        .output()?;
    if sysctl.status.success() {
        assert_eq!(String::from_utf8_lossy(&sysctl.stdout).trim(), "0", "bridged frames skip iptables in the switch");
    }

    // What an agent leaves: a process in its host and a pod namespace,
    // with a process in it, recorded in its data dir.
    let data_dir = tempfile::tempdir()?;
    hosts[1].register_data_dir(data_dir.path());
    let pod_ns = format!("tk-{:012x}", std::process::id());
    std::process::Command::new("ip").args(["netns", "add", &pod_ns]).status()?;
    std::fs::create_dir_all(data_dir.path().join("agent/sandboxes"))?;
    std::fs::write(data_dir.path().join("agent/sandboxes/s1.json"), format!(r#"{{"id": "s1", "netns": "{pod_ns}"}}"#))?;
    let mut in_host = hosts[1].command(BUSYBOX).args(["sleep", "1000"]).spawn()?;
    wait("the host's sleep to exec", Duration::from_secs(5), || {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", in_host.id())).unwrap_or_default();
        Ok((cmdline == [BUSYBOX, "sleep", "1000"].map(|a| format!("{a}\0")).concat().as_bytes()).then_some(()))
    })?;
    let mut in_pod = std::process::Command::new("ip").args(["netns", "exec", &pod_ns, BUSYBOX, "sleep", "1000"]).spawn()?;
    wait("both sleeps in their namespaces", Duration::from_secs(5), || Ok((hosts[1].pids().len() == 2).then_some(())))?;
    let names: Vec<String> = [hosts[0].netns.clone(), hosts[1].netns.clone(), Some(switch)].into_iter().flatten().collect();

    let t = Instant::now();
    drop(hosts);
    eprintln!("2 hosts removed in {:?}", t.elapsed());
    let left = netns()?;
    for ns in names.iter().chain([&pod_ns]) {
        assert!(!left.contains(ns), "{ns} was deleted: {left:?}");
    }
    for child in [&mut in_host, &mut in_pod] {
        let status = wait("the sleep to be killed", Duration::from_secs(5), || Ok(child.try_wait()?))?;
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    }
    Ok(())
}
