//! `tinykube bench`: measurements, as commands rather than timed tests.
//!
//! `bench skeleton` starts fresh `tinykube server` processes (this same
//! binary) on temporary data directories and measures, each run:
//! - start to a Ready node: from spawning the server to the moment a watch
//!   on nodes sees `Ready=True`;
//! - idle RSS of the server (with its agent) after it has settled;
//! - a 10-replica Deployment from create to 10 pods Running, seen through
//!   a watch on pods.
//!
//! It prints each run and the medians. Results and the exact command are
//! recorded in BENCHMARKS.md.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use client::{Api, Client, ListParams, WatchEvent};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};

/// Options of `tinykube bench skeleton`.
#[derive(Debug, clap::Args)]
pub struct SkeletonArgs {
    /// How many fresh servers to start.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Replicas of the Deployment timed from apply to Running.
    #[arg(long, default_value_t = 10)]
    pub replicas: i32,
    /// Seconds to let the server settle before reading its RSS.
    #[arg(long, default_value_t = 5)]
    pub settle: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 { 0.0 } else if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

pub async fn skeleton(args: SkeletonArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let size = std::fs::metadata(&exe)?.len();
    println!("binary: {} ({:.1} MB)", exe.display(), size as f64 / 1e6);
    let (mut starts, mut rsss, mut deploys, mut shim_rsss) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 1..=args.runs {
        let dir = std::env::temp_dir().join(format!("tinykube-bench-{}-{run}", std::process::id()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let t0 = Instant::now();
        let mut server = tokio::process::Command::new(&exe)
            .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--node-name", "bench-node", "--data-dir"])
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let pid = server.id().context("server pid")?;
        let client = Client::new(&format!("http://127.0.0.1:{port}"))?;
        let ready = wait_node_ready(&client).await?;
        let start = ready.duration_since(t0);

        tokio::time::sleep(Duration::from_secs(args.settle)).await;
        let rss = rss_kib(pid)?;

        let deploy = time_deployment(&client, args.replicas).await?;
        let shims = shim_rss_kib(&exe);
        let shim_avg = if shims.is_empty() { 0.0 } else { shims.iter().sum::<u64>() as f64 / shims.len() as f64 / 1024.0 };
        println!(
            "run {run}: start→Ready {:.0} ms, idle RSS {:.1} MB, {}-replica Deployment→Running {:.0} ms, {} shims at {:.1} MB RSS each",
            start.as_secs_f64() * 1e3,
            rss as f64 / 1024.0,
            args.replicas,
            deploy.as_secs_f64() * 1e3,
            shims.len(),
            shim_avg,
        );
        shim_rsss.push(shim_avg);
        starts.push(start.as_secs_f64() * 1e3);
        rsss.push(rss as f64 / 1024.0);
        deploys.push(deploy.as_secs_f64() * 1e3);

        crate::signal_process(pid, libc::SIGTERM);
        let _ = tokio::time::timeout(Duration::from_secs(20), server.wait()).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "median of {} runs: start→Ready {:.0} ms, idle RSS {:.1} MB, {}-replica Deployment→Running {:.0} ms, shim RSS {:.1} MB per container, binary {:.1} MB",
        args.runs,
        median(starts),
        median(rsss),
        args.replicas,
        median(deploys),
        median(shim_rsss),
        size as f64 / 1e6
    );
    Ok(())
}

/// RSS of every running container shim of this binary (each container
/// has one supervisor process, `tinykube shim`).
fn shim_rss_kib(exe: &std::path::Path) -> Vec<u64> {
    let exe = exe.to_string_lossy().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            args.first().is_some_and(|a| *a == exe) && args.get(1).is_some_and(|a| a == "shim")
        })
        .filter_map(|pid| rss_kib(pid).ok())
        .collect()
}

/// Returns the instant a watch first sees a Ready node.
async fn wait_node_ready(client: &Client) -> Result<Instant> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    // The server may not be listening yet: retry the watch until it is.
    loop {
        if Instant::now() > deadline {
            bail!("no Ready node within 30 s");
        }
        let Ok(mut stream) = nodes.watch(&ListParams::default(), "0", 0).await else {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        };
        while let Some(ev) = stream.next().await {
            if let Ok(WatchEvent::Added(n) | WatchEvent::Modified(n)) = ev {
                let ready = n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
                    cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                });
                if ready {
                    return Ok(Instant::now());
                }
            }
        }
    }
}

/// Creates a Deployment of `replicas` sleeping pods and times until a
/// watch on pods has seen all of them Running.
async fn time_deployment(client: &Client, replicas: i32) -> Result<Duration> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let manifest = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bench"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "bench"}},
            "template": {"metadata": {"labels": {"app": "bench"}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}}
    });
    let deployment: Deployment = serde_json::from_value(manifest)?;
    let list = pods.list(&ListParams::labels("app=bench")).await?;
    let mut stream = pods.watch(&ListParams::labels("app=bench"), &list.resource_version, 0).await?;
    let t0 = Instant::now();
    deployments.create(&deployment).await?;
    let mut running = std::collections::HashSet::new();
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => bail!("only {} of {replicas} pods Running after 60 s", running.len()),
            ev = stream.next() => match ev {
                Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p))) => {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                        running.insert(name);
                        if running.len() as i32 >= replicas {
                            return Ok(t0.elapsed());
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("watch failed: {e}"),
                None => bail!("watch ended"),
            }
        }
    }
}
