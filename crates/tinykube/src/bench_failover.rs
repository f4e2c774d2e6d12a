//! `tinykube bench failover`: how long the pods of a node that dies take
//! to run again elsewhere, and where that time goes.
//!
//! One server without a local agent, its node timers shortened by flags
//! (the bench's own, passed on); three `tinykube agent` processes on this
//! host join it (process runtime, loopback, pods on the host's network),
//! and a Deployment spreads over them. Each round SIGKILLs the agent with the most of its pods — a host
//! gone silent, as far as the control plane can tell — and follows
//! watches on nodes and pods to time the chain upstream's controllers
//! make, one part after another:
//!
//! 1. detection: the kill → the Node's `Ready` condition `Unknown` (no
//!    Lease renewal for `--node-monitor-grace-period`, seen by the node
//!    lifecycle controller, which looks every `--node-monitor-period`);
//! 2. taint: → the `node.kubernetes.io/unreachable:NoExecute` taint;
//! 3. eviction: → every pod of the node marked for deletion by the taint
//!    eviction controller (after their `tolerationSeconds`, which the
//!    DefaultTolerationSeconds admission gave them from
//!    `--default-unreachable-toleration-seconds`);
//! 4. rescheduling: → as many replacements, made by the ReplicaSet
//!    controller, bound to the other nodes by the scheduler;
//! 5. start-up: → the replacements Running on their agents.
//!
//! Each part ends when its last pod gets there. Then the agent starts
//! again on its data directory, stops its stale pods (which leave the
//! API) and its node is Ready and untainted, so every round starts from
//! three nodes and all replicas running. Medians follow the rounds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use client::{Api, Client, ListParams, WatchEvent};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};

use crate::bench::{admin_client, median, BenchServer};

/// Options of `tinykube bench failover`.
#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    /// Agents killed, one per round.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Replicas of the Deployment spread over the three nodes.
    #[arg(long, default_value_t = 6)]
    pub pods: usize,
    /// The server's `--node-monitor-grace-period` (upstream: 50s).
    #[arg(long, default_value = "3s", value_parser = api::go::parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// The server's `--node-monitor-period` (upstream: 5s).
    #[arg(long, default_value = "1s", value_parser = api::go::parse_duration)]
    pub node_monitor_period: Duration,
    /// The server's `--default-unreachable-toleration-seconds` (upstream: 300).
    #[arg(long, default_value_t = 2)]
    pub default_unreachable_toleration_seconds: i64,
    /// The agents' `--node-status-update-frequency` (upstream: 10s).
    #[arg(long, default_value = "1s", value_parser = api::go::parse_duration)]
    pub node_status_update_frequency: Duration,
}

/// Agents joined to the server: three hosts.
const AGENTS: usize = 3;
/// The Deployment's label, and the mark on its pods' command lines.
const APP: &str = "bench-failover";

/// A Go duration in milliseconds, which every duration flag takes.
fn go_ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// One `tinykube agent` of this host and its data directory.
struct BenchAgent {
    name: String,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<tokio::process::Child>,
}

impl BenchAgent {
    fn spawn(&mut self) -> Result<()> {
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args(&self.args)
            .arg("--data-dir")
            .arg(&self.dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting agent {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: the host is gone. Its pods' processes live on, as
    /// containers outlive a kubelet that crashed.
    async fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            tokio::time::timeout(Duration::from_secs(10), child.wait()).await.context("the killed agent did not exit")??;
        }
        Ok(())
    }

    /// SIGTERM, the agent's own shutdown: it stops its pods first.
    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                crate::signal_process(pid, libc::SIGTERM);
            }
            if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
                let _ = child.start_kill();
            }
        }
    }
}

/// The instants one round saw, after the kill at `t0`.
#[derive(Debug, Default)]
struct Seen {
    unknown: Option<Instant>,
    tainted: Option<Instant>,
    evicted: Option<Instant>,
    bound: Option<Instant>,
    running: Option<Instant>,
}

/// The parts of one round, in seconds.
struct Parts {
    detection: f64,
    taint: f64,
    eviction: f64,
    rescheduling: f64,
    startup: f64,
    total: f64,
}

impl Parts {
    fn new(t0: Instant, seen: &Seen) -> Option<Parts> {
        let (unknown, tainted, evicted, bound, running) = (seen.unknown?, seen.tainted?, seen.evicted?, seen.bound?, seen.running?);
        let secs = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64();
        Some(Parts {
            detection: secs(t0, unknown),
            taint: secs(unknown, tainted),
            eviction: secs(tainted, evicted),
            rescheduling: secs(evicted, bound),
            startup: secs(bound, running),
            total: secs(t0, running),
        })
    }
}

impl std::fmt::Display for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "detection {:.2} s, taint {:.2} s, eviction {:.2} s, rescheduling {:.3} s, start-up {:.3} s, total {:.2} s",
            self.detection, self.taint, self.eviction, self.rescheduling, self.startup, self.total
        )
    }
}

pub async fn failover(args: FailoverArgs) -> Result<()> {
    if args.pods < AGENTS {
        bail!("--pods must be at least {AGENTS}, so that every node has some");
    }
    let timers = [
        "--node-monitor-grace-period".to_string(),
        go_ms(args.node_monitor_grace_period),
        "--node-monitor-period".into(),
        go_ms(args.node_monitor_period),
        "--default-unreachable-toleration-seconds".into(),
        args.default_unreachable_toleration_seconds.to_string(),
    ];
    let server = BenchServer::start_with("failover", &timers.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    let marker = format!("tk{APP}{}", std::process::id());
    let _strays = KillMarked(marker.clone());
    let result = run(&server, &args, &marker).await;
    server.stop().await;
    result
}

async fn run(server: &BenchServer, args: &FailoverArgs, marker: &str) -> Result<()> {
    let client = admin_client(&server.dir).await?;
    println!(
        "timers: --node-monitor-grace-period {:?} --node-monitor-period {:?} --default-unreachable-toleration-seconds {} \
         --node-status-update-frequency {:?} (upstream 1.32: 50s, 5s, 300, 10s)",
        args.node_monitor_grace_period,
        args.node_monitor_period,
        args.default_unreachable_toleration_seconds,
        args.node_status_update_frequency
    );

    let mut agents = Vec::new();
    for i in 1..=AGENTS {
        let name = format!("{APP}-{i}");
        let mut agent = BenchAgent {
            dir: server.dir.join(&name),
            args: server
                .local_agent_args(&name)?
                .into_iter()
                .chain(["--node-status-update-frequency".into(), go_ms(args.node_status_update_frequency)])
                .collect(),
            name,
            child: None,
        };
        agent.spawn()?;
        agents.push(agent);
    }
    let result = rounds(&client, &mut agents, args, marker).await;
    for agent in &mut agents {
        agent.stop().await;
    }
    result
}

async fn rounds(client: &Client, agents: &mut [BenchAgent], args: &FailoverArgs, marker: &str) -> Result<()> {
    let names: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
    settle(client, &names, 0, Duration::from_secs(60)).await.context("the agents joining")?;
    create_deployment(client, args.pods, marker).await?;
    let mut all = Vec::new();
    for round in 1..=args.rounds {
        let on = settle(client, &names, args.pods, Duration::from_secs(60)).await.with_context(|| format!("round {round}'s start"))?;
        // The node with the most pods: every round has some to move.
        let victim = names.iter().max_by_key(|n| on.get(*n).map_or(0, BTreeSet::len)).cloned().unwrap_or_default();
        let moving = on.get(&victim).cloned().unwrap_or_default();
        let before: BTreeSet<String> = on.values().flatten().cloned().collect();
        let agent = agents.iter_mut().find(|a| a.name == victim).context("the victim's agent")?;

        let (t0, seen) = kill_and_follow(client, agent, &moving, &before, args).await.with_context(|| format!("round {round}"))?;
        let parts = Parts::new(t0, &seen).context("a part was not seen")?;
        println!("round {round}: SIGKILL {victim} with {} pods: {parts}", moving.len());
        all.push(parts);

        // The host comes back; its stale pods stop and leave the API.
        agent.spawn()?;
    }
    settle(client, &names, args.pods, Duration::from_secs(60)).await.context("after the last round")?;
    let m = |f: fn(&Parts) -> f64| median(all.iter().map(f).collect());
    let medians = Parts {
        detection: m(|p| p.detection),
        taint: m(|p| p.taint),
        eviction: m(|p| p.eviction),
        rescheduling: m(|p| p.rescheduling),
        startup: m(|p| p.startup),
        total: m(|p| p.total),
    };
    println!("median of {} rounds: {medians}", all.len());
    let grace = args.node_monitor_grace_period.as_secs_f64();
    let toleration = args.default_unreachable_toleration_seconds as f64;
    println!(
        "beyond the timers: detection − grace {:+.2} s, eviction − toleration {:+.2} s, the rest (taint, rescheduling, start-up) {:.2} s",
        medians.detection - grace,
        medians.eviction - toleration,
        medians.taint + medians.rescheduling + medians.startup
    );
    Ok(())
}

/// A Deployment of `replicas` sleeping pods whose command lines carry `marker`.
async fn create_deployment(client: &Client, replicas: usize, marker: &str) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let manifest = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": APP},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": APP}},
            "template": {"metadata": {"labels": {"app": APP}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": "busybox",
                    "command": ["sh", "-c", format!("sleep 3600; : {marker}")]}]}}}
    });
    deployments.create(&serde_json::from_value(manifest)?).await?;
    Ok(())
}

fn is_ready(node: &Node) -> Option<&str> {
    let conditions = node.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status.as_str())
}

fn has_unreachable_no_execute(node: &Node) -> bool {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_ref());
    taints.is_some_and(|ts| ts.iter().any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute"))
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// Waits until every node in `names` is Ready and untainted and the app
/// has exactly `replicas` pods (none before the Deployment exists), all
/// Running and none terminating; returns each node's pods.
async fn settle(client: &Client, names: &[String], replicas: usize, timeout: Duration) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + timeout;
    loop {
        let node_list = nodes.list(&ListParams::default()).await?.items;
        let nodes_ok = names.iter().all(|name| {
            node_list.iter().any(|n| {
                n.metadata.name.as_deref() == Some(name)
                    && is_ready(n) == Some("True")
                    && n.spec.as_ref().is_none_or(|s| s.taints.is_none())
            })
        });
        let pod_list = pods.list(&ListParams::labels(format!("app={APP}"))).await?.items;
        let running = pod_list.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && phase(p) == Some("Running")).count();
        let pods_ok = pod_list.len() == replicas && running == replicas;
        if nodes_ok && pods_ok {
            let mut on: BTreeMap<String, BTreeSet<String>> = names.iter().map(|n| (n.clone(), BTreeSet::new())).collect();
            for p in &pod_list {
                if let (Some(node), Some(name)) = (node_name(p), p.metadata.name.clone()) {
                    on.entry(node.to_string()).or_default().insert(name);
                }
            }
            return Ok(on);
        }
        if Instant::now() > deadline {
            bail!(
                "not settled within {timeout:?}: nodes Ready and untainted {nodes_ok}; {} pods, {running} Running, of {replicas}",
                pod_list.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills `agent` and follows, through watches opened before the kill,
/// its node going Unknown and tainted, the eviction of the pods in
/// `moving`, and replacements (pods not in `before`) bound and Running.
async fn kill_and_follow(
    client: &Client,
    agent: &mut BenchAgent,
    moving: &BTreeSet<String>,
    before: &BTreeSet<String>,
    args: &FailoverArgs,
) -> Result<(Instant, Seen)> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let by_app = ListParams::labels(format!("app={APP}"));
    let node_rv = nodes.list(&ListParams::default()).await?.resource_version;
    let pod_rv = pods.list(&by_app).await?.resource_version;
    let mut node_events = nodes.watch(&ListParams::default(), &node_rv, 0).await?;
    let mut pod_events = pods.watch(&by_app, &pod_rv, 0).await?;

    let budget = args.node_monitor_grace_period
        + args.node_monitor_period
        + Duration::from_secs(args.default_unreachable_toleration_seconds.max(0) as u64)
        + Duration::from_secs(30);
    let deadline = tokio::time::sleep(budget);
    tokio::pin!(deadline);
    let t0 = Instant::now();
    agent.kill9().await?;

    let mut seen = Seen::default();
    let (mut evicted, mut bound, mut running) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    while seen.running.is_none() || seen.evicted.is_none() || seen.tainted.is_none() {
        tokio::select! {
            _ = &mut deadline => bail!(
                "{budget:?} after the kill: {seen:?}; {} of {} pods evicted, {} replacements bound, {} Running",
                evicted.len(), moving.len(), bound.len(), running.len()
            ),
            ev = node_events.next() => match ev {
                Some(Ok(WatchEvent::Modified(n))) if n.metadata.name.as_deref() == Some(&agent.name) => {
                    let now = Instant::now();
                    if seen.unknown.is_none() && is_ready(&n) == Some("Unknown") {
                        seen.unknown = Some(now);
                    }
                    if seen.tainted.is_none() && has_unreachable_no_execute(&n) {
                        seen.tainted = Some(now);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("the watch on nodes failed: {e}"),
                None => bail!("the watch on nodes ended"),
            },
            ev = pod_events.next() => {
                let now = Instant::now();
                let (pod, deleted) = match ev {
                    Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p))) => (p, false),
                    Some(Ok(WatchEvent::Deleted(p))) => (p, true),
                    Some(Ok(WatchEvent::Bookmark(_))) => continue,
                    Some(Err(e)) => bail!("the watch on pods failed: {e}"),
                    None => bail!("the watch on pods ended"),
                };
                let name = pod.metadata.name.clone().unwrap_or_default();
                if moving.contains(&name) && (deleted || pod.metadata.deletion_timestamp.is_some()) {
                    evicted.insert(name.clone());
                    if evicted.len() == moving.len() {
                        seen.evicted.get_or_insert(now);
                    }
                }
                if !before.contains(&name) && !deleted && pod.metadata.deletion_timestamp.is_none() {
                    if node_name(&pod).is_some() {
                        bound.insert(name.clone());
                        if bound.len() == moving.len() {
                            seen.bound.get_or_insert(now);
                        }
                    }
                    if phase(&pod) == Some("Running") {
                        running.insert(name);
                        if running.len() == moving.len() {
                            seen.running.get_or_insert(now);
                        }
                    }
                }
            }
        }
    }
    Ok((t0, seen))
}

/// Kills what the bench's pods run, however the bench ends: a SIGKILLed
/// agent's pods have nobody else to stop them. Their command lines carry
/// the mark; each is its own process group (the shell and its sleep).
struct KillMarked(String);

impl Drop for KillMarked {
    fn drop(&mut self) {
        for pid in pids_with(&self.0) {
            crate::signal_process(pid, libc::SIGKILL);
            // The group too: `sleep` is the marked shell's child.
            crate::signal_process_group(pid, libc::SIGKILL);
        }
    }
}

/// Pids of the processes whose command line contains `marker`.
fn pids_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            let cmdline = std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(marker)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_follow_one_another_from_the_kill() {
        let t0 = Instant::now();
        let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
        let seen = Seen { unknown: at(3_000), tainted: at(3_000), evicted: at(5_050), bound: at(5_060), running: at(5_100) };
        let p = Parts::new(t0, &seen).unwrap();
        assert_eq!((p.detection, p.taint, p.eviction), (3.0, 0.0, 2.05));
        assert!((p.rescheduling - 0.01).abs() < 1e-9 && (p.startup - 0.04).abs() < 1e-9);
        assert_eq!(p.total, 5.1);
        assert!(Parts::new(t0, &Seen { running: None, ..seen }).is_none(), "a part not seen is no figure");
    }

    #[test]
    fn durations_pass_on_as_go_durations() {
        assert_eq!(go_ms(Duration::from_secs(3)), "3000ms");
        assert_eq!(api::go::parse_duration(&go_ms(Duration::from_millis(1500))).unwrap(), Duration::from_millis(1500));
    }
}
