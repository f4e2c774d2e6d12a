//! `tinykube bench join`: how long a node takes to join, and what the
//! server holds with several nodes and their pods.
//!
//! One server without a local agent; then, one after another, `--agents`
//! `tinykube agent` processes on this host join it with the server's token
//! (discovery, the CA-hash check, a CSR, its approval and signing, the
//! Node's registration and its first Ready status). Each join is timed from
//! the agent's spawn to a watch seeing its Node `Ready=True`. Then a
//! Deployment of `--pods` replicas spreads over the agents' nodes, and the
//! server's RSS is read once they run.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use client::{Api, Client, ListParams, WatchEvent};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;

use crate::bench::{admin_client, median, rss_kib, time_deployment, BenchServer};

/// Options of `tinykube bench join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// How many agents join, one after another.
    #[arg(long, default_value_t = 3)]
    pub agents: usize,
    /// Replicas of the Deployment spread over the joined nodes.
    #[arg(long, default_value_t = 30)]
    pub pods: i32,
    /// Seconds to let the server settle before reading its RSS.
    #[arg(long, default_value_t = 5)]
    pub settle: u64,
}

pub async fn join(args: JoinArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let server = BenchServer::start("join").await?;
    let dir = server.dir.clone();
    let client = admin_client(&dir).await?;

    let mut agents = Vec::new();
    let mut joins = Vec::new();
    for i in 1..=args.agents {
        let name = format!("bench-join-{i}");
        let ready = tokio::spawn(wait_ready(client.clone(), name.clone()));
        // Let the watch open first, so that it sees the Node appear.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t0 = Instant::now();
        let agent = tokio::process::Command::new(&exe)
            .args(server.local_agent_args(&name)?)
            .arg("--data-dir")
            .arg(dir.join(&name))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        agents.push(agent);
        let at = ready.await??;
        let took = at.duration_since(t0).as_secs_f64() * 1e3;
        println!("agent {i}: start → Node Ready {took:.0} ms");
        joins.push(took);
    }

    let deploy = time_deployment(&client, args.pods).await?;
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let rss = rss_kib(server.pid)? as f64 / 1024.0;
    println!(
        "median agent start → Node Ready {:.0} ms over {} joins; {}-replica Deployment on {} joined nodes → Running {:.0} ms; server RSS {rss:.1} MB",
        median(joins),
        args.agents,
        args.pods,
        args.agents,
        deploy.as_secs_f64() * 1e3,
    );

    for agent in &agents {
        if let Some(pid) = agent.id() {
            crate::signal_process(pid, libc::SIGTERM);
        }
    }
    for mut agent in agents {
        let _ = tokio::time::timeout(Duration::from_secs(20), agent.wait()).await;
    }
    server.stop().await;
    Ok(())
}

/// The instant a watch sees node `name` Ready.
async fn wait_ready(client: Client, name: String) -> Result<Instant> {
    let nodes: Api<Node> = Api::all(client);
    let list = nodes.list(&ListParams::default()).await?;
    let mut stream = nodes.watch(&ListParams::default(), &list.resource_version, 0).await?;
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => bail!("node {name} not Ready within 60 s"),
            ev = stream.next() => match ev {
                Some(Ok(WatchEvent::Added(n) | WatchEvent::Modified(n))) if n.metadata.name.as_deref() == Some(&name) => {
                    let ready = n.status.as_ref().and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                    if ready {
                        return Ok(Instant::now());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("watch failed: {e}"),
                None => bail!("watch ended"),
            }
        }
    }
}
