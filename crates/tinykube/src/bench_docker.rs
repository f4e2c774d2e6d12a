//! `tinykube bench docker`: pod start-up with the `docker` runtime, side
//! by side with the engine's own floor, and the agent's memory with many
//! pods running.
//!
//! It starts one `tinykube server --runtime docker` (this same binary) on
//! a temporary data directory, with its own node name and pod range, and
//! measures:
//!
//! - **tinykube**: a Deployment of N replicas (busybox `sleep 3600`,
//!   `imagePullPolicy: IfNotPresent`) from its create call to each pod's
//!   `Running` as a watch on pods sees it; per pod, the time from the
//!   create to that pod's `Running`.
//! - **the floor**: the same containers per pod made straight through the
//!   Docker Engine API, N pods at once: a sandbox from the same pause image
//!   on a bridge network of its own, then the app container joined to its
//!   network and IPC namespaces (`container:<sandbox>`); per pod, the time
//!   from the start of the batch to its app container's start returning.
//!   This is what any agent must wait for; everything tinykube adds (the
//!   api-server, controllers, scheduler, the agent's sync and status
//!   reports, the watch) is above it.
//!
//! Each N (1, 5, 20 by default) is measured floor first, then tinykube,
//! and the whole sequence is repeated over several rounds, so both see the
//! same machine; the medians over rounds and their ratios are printed. A
//! warm-up pod of each kind comes first (it builds the pause image if this
//! binary has none yet) and is reported apart.
//!
//! Then it scales to 50 pods and reads the server's `VmRSS` (the server
//! process holds the agent); the pause processes and the Docker Engine's
//! own memory are not part of that figure.
//!
//! Everything it makes (containers, both networks, the data directory) is
//! removed at the end, after an error, and on Ctrl-C. The pause image is
//! kept: the agent builds one per binary and reuses it.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use agent::runtime::docker::{LABEL_NODE, LABEL_TYPE};
use anyhow::{anyhow, bail, Context, Result};
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, Ipam, IpamConfig, NetworkCreateRequest, NetworkingConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListImagesOptions, ListNetworksOptions, RemoveContainerOptions,
};
use bollard::Docker;
use client::{Api, Client, ListParams, WatchEvent};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};

/// Marks the floor's containers and network with this run's name.
const LABEL_FLOOR: &str = "tinykube.io/bench-floor";
/// How long one batch of pods may take to start, or to go away.
const BATCH_TIMEOUT: Duration = Duration::from_secs(180);

/// Options of `tinykube bench docker`.
#[derive(Debug, clap::Args)]
pub struct DockerArgs {
    /// Rounds of (floor, tinykube) for every pod count; medians over them.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Pod counts started at once, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,5,20")]
    pub pods: Vec<usize>,
    /// Pods running while the server's RSS is read (0 skips it).
    #[arg(long, default_value_t = 50)]
    pub rss_pods: usize,
    /// The app image; it must be present (nothing is pulled).
    #[arg(long, default_value = "tinykube.local/busybox:1")]
    pub image: String,
    /// The server node's pod range (its bridge network's subnet);
    /// default: the first 10.88.N.0/24, N from 250 up, that no Docker
    /// network uses.
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// The subnet of the floor's own bridge network; default: the next
    /// free one.
    #[arg(long)]
    pub floor_cidr: Option<String>,
    /// Seconds to let the server settle before reading its RSS.
    #[arg(long, default_value_t = 5)]
    pub settle: u64,
    /// Where the server's log goes (default: discarded).
    #[arg(long)]
    pub server_log: Option<PathBuf>,
    /// The server's log filter (RUST_LOG syntax).
    #[arg(long, default_value = "warn")]
    pub server_log_level: String,
}

/// p50, p99 and max of one batch, in milliseconds (nearest rank).
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let rank = |p: f64| {
            if samples.is_empty() {
                return 0.0;
            }
            let r = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            samples[r.clamp(1, samples.len()) - 1].as_secs_f64() * 1e3
        };
        Stats { p50: rank(50.0), p99: rank(99.0), max: rank(100.0) }
    }

    fn median_of(runs: &[Stats]) -> Self {
        let pick = |f: fn(&Stats) -> f64| median(runs.iter().map(f).collect());
        Stats { p50: pick(|s| s.p50), p99: pick(|s| s.p99), max: pick(|s| s.max) }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p50 {:>6.0} ms  p99 {:>6.0} ms  max {:>6.0} ms", self.p50, self.p99, self.max)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A field of `/proc/PID/status` in MB (`VmRSS:`, `VmHWM:`).
fn status_mb(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} for pid {pid}"))?;
    Ok(kib / 1024.0)
}

fn label_filter(key: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{key}={value}")])])
}

/// The `tinykube server --runtime docker` under test.
struct Server {
    child: tokio::process::Child,
    pid: u32,
    client: Client,
    dir: PathBuf,
}

/// One run of the bench: what it made, so that all of it can be removed.
struct Bench {
    docker: Docker,
    /// Names this run's node, containers and networks.
    run: String,
    image: String,
    floor_network: String,
    /// The sandbox image the agent uses, learned from its first sandbox.
    pause_image: Option<String>,
    server: Option<Server>,
}

/// `tinykube bench docker`.
pub async fn docker(args: DockerArgs) -> Result<()> {
    if args.rounds == 0 || args.pods.contains(&0) {
        bail!("--rounds and every --pods count must be at least 1");
    }
    let (docker, version) = agent::runtime::docker::connect().await.map_err(|e| anyhow!("no Docker Engine: {e}"))?;
    if docker.inspect_image(&args.image).await.is_err() {
        bail!("the image {} is not present (this bench never pulls)", args.image);
    }
    let run = format!("bench-docker-{}", std::process::id());
    println!("bench docker: Docker Engine {version}; image {}; {} round(s) of N = {:?}; node {run}", args.image, args.rounds, args.pods);
    let mut bench = Bench {
        docker,
        floor_network: format!("{run}-floor"),
        run,
        image: args.image.clone(),
        pause_image: None,
        server: None,
    };
    let result = tokio::select! {
        r = bench.measure(&args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    bench.cleanup().await;
    result
}

impl Bench {
    async fn measure(&mut self, args: &DockerArgs) -> Result<()> {
        let mut free = self.free_subnets().await?.into_iter();
        let pod_cidr = args.pod_cidr.clone().or_else(|| free.next()).context("no free 10.88.N.0/24 for the node")?;
        let floor_cidr = args.floor_cidr.clone().or_else(|| free.find(|s| *s != pod_cidr)).context("no free 10.88.N.0/24 for the floor")?;
        println!("networks: node tinykube-{} on {pod_cidr}, floor {} on {floor_cidr}", self.run, self.floor_network);
        self.create_floor_network(&floor_cidr).await?;
        let pause_before = self.pause_images().await;
        let t = Instant::now();
        self.start_server(args, &pod_cidr).await?;
        println!("server: start → Ready node {:.0} ms", t.elapsed().as_secs_f64() * 1e3);

        // Warm-up: the agent's first sandbox (which builds the pause image
        // when this binary has none), then the floor's first pod with it.
        let warm = self.tinykube_batch(1, "warm").await?;
        let pause = self.learn_pause_image().await?;
        self.tinykube_teardown("warm").await?;
        let built = if pause_before.contains(&pause) { "already present" } else { "built by the agent during this pod" };
        println!("warm-up: first tinykube pod {:.0} ms (pause image {pause}: {built})", Stats::of(warm).max);
        let warm = self.floor_batch(1, "warm").await?;
        self.floor_teardown().await?;
        println!("warm-up: first floor pod {:.0} ms", Stats::of(warm).max);

        let mut floor: HashMap<usize, Vec<Stats>> = HashMap::new();
        let mut tiny: HashMap<usize, Vec<Stats>> = HashMap::new();
        for round in 1..=args.rounds {
            for &n in &args.pods {
                let tag = format!("r{round}n{n}");
                let f = Stats::of(self.floor_batch(n, &tag).await?);
                self.floor_teardown().await?;
                println!("round {round}  N={n:<3} floor     {f}");
                let k = Stats::of(self.tinykube_batch(n, &tag).await?);
                self.tinykube_teardown(&tag).await?;
                println!("round {round}  N={n:<3} tinykube  {k}");
                floor.entry(n).or_default().push(f);
                tiny.entry(n).or_default().push(k);
            }
        }

        println!("medians over {} round(s), per-pod start-up in ms:", args.rounds);
        println!(
            "  {:>4} {:>10} {:>10} {:>10} {:>12} {:>12} {:>12} {:>10} {:>10}",
            "N", "floor p50", "floor p99", "floor max", "tinykube p50", "tinykube p99", "tinykube max", "ratio p50", "ratio p99"
        );
        let mut worst: f64 = 0.0;
        for &n in &args.pods {
            let (f, k) = (Stats::median_of(&floor[&n]), Stats::median_of(&tiny[&n]));
            let (r50, r99) = (k.p50 / f.p50, k.p99 / f.p99);
            worst = worst.max(r50).max(r99);
            println!(
                "  {n:>4} {:>10.0} {:>10.0} {:>10.0} {:>12.0} {:>12.0} {:>12.0} {:>9.2}× {:>9.2}×",
                f.p50, f.p99, f.max, k.p50, k.p99, k.max, r50, r99
            );
        }
        println!(
            "goal: tinykube ≤ 1.2× the floor at p50 and p99: worst ratio {worst:.2}×: {}",
            if worst <= 1.2 { "met" } else { "MISSED" }
        );

        if args.rss_pods > 0 {
            self.rss(args).await?;
        }
        Ok(())
    }

    async fn start_server(&mut self, args: &DockerArgs, pod_cidr: &str) -> Result<()> {
        let exe = std::env::current_exe()?;
        let dir = std::env::temp_dir().join(&self.run);
        let _ = std::fs::remove_dir_all(&dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = match &args.server_log {
            Some(path) => Stdio::from(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
            None => Stdio::null(),
        };
        let child = tokio::process::Command::new(&exe)
            .args(["server", "--runtime", "docker", "--pod-cidr", pod_cidr, "--node-name", &self.run])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(&dir)
            .env("RUST_LOG", &args.server_log_level)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().context("server pid")?;
        let client = crate::bench::admin_client(&dir).await?;
        self.server = Some(Server { child, pid, client: client.clone(), dir });
        wait_node_ready(&client, &self.run).await
    }

    fn client(&self) -> Result<&Client> {
        Ok(&self.server.as_ref().context("no server")?.client)
    }

    /// The tags of the pause images the engine has.
    async fn pause_images(&self) -> HashSet<String> {
        let filters = HashMap::from([("reference".to_string(), vec!["tinykube/pause".to_string()])]);
        let images = self
            .docker
            .list_images(Some(ListImagesOptions { filters: Some(filters), ..Default::default() }))
            .await
            .unwrap_or_default();
        images.into_iter().flat_map(|i| i.repo_tags).collect()
    }

    /// The image of the agent's running sandbox: the floor uses the same.
    async fn learn_pause_image(&mut self) -> Result<String> {
        let mut filters = label_filter(LABEL_NODE, &self.run);
        filters.get_mut("label").context("filter")?.push(format!("{LABEL_TYPE}=podsandbox"));
        let listed = self.docker.list_containers(Some(ListContainersOptions { filters: Some(filters), ..Default::default() })).await?;
        let image = listed.into_iter().find_map(|c| c.image).context("the agent's sandbox was not found")?;
        self.pause_image = Some(image.clone());
        Ok(image)
    }

    // -- tinykube ------------------------------------------------------------

    /// Creates a Deployment of `n` pods and returns, per pod, the time from
    /// the create call to a watch seeing it Running.
    async fn tinykube_batch(&self, n: usize, tag: &str) -> Result<Vec<Duration>> {
        let client = self.client()?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let name = format!("bench-{tag}");
        let selector = ListParams::labels(format!("app={name}"));
        let list = pods.list(&selector).await?;
        let mut stream = pods.watch(&selector, &list.resource_version, 0).await?;
        let deployment = deployment_of(&name, n, &self.image)?;
        let t0 = Instant::now();
        deployments.create(&deployment).await?;
        let mut running: HashMap<String, Duration> = HashMap::new();
        let deadline = tokio::time::sleep(BATCH_TIMEOUT);
        tokio::pin!(deadline);
        while running.len() < n {
            tokio::select! {
                _ = &mut deadline => bail!("{name}: only {} of {n} pods Running after {BATCH_TIMEOUT:?}", running.len()),
                ev = stream.next() => match ev {
                    Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p))) => {
                        if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                            running.entry(p.metadata.name.unwrap_or_default()).or_insert_with(|| t0.elapsed());
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => bail!("watch failed: {e}"),
                    None => bail!("watch ended"),
                }
            }
        }
        Ok(running.into_values().collect())
    }

    /// Deletes the Deployment and waits until its pods are gone and the
    /// agent has removed their containers.
    async fn tinykube_teardown(&self, tag: &str) -> Result<()> {
        let client = self.client()?;
        let name = format!("bench-{tag}");
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        deployments.delete_with(&name, &serde_json::json!({"propagationPolicy": "Background"})).await?;
        let deadline = Instant::now() + BATCH_TIMEOUT;
        loop {
            let left = pods.list(&ListParams::labels(format!("app={name}"))).await?.items.len();
            let containers = self.containers(LABEL_NODE, &self.run).await?.len();
            if left == 0 && containers == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{name}: {left} pods and {containers} containers left {BATCH_TIMEOUT:?} after the delete");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Scales to `--rss-pods` pods and reads the server's memory.
    async fn rss(&self, args: &DockerArgs) -> Result<()> {
        let server = self.server.as_ref().context("no server")?;
        tokio::time::sleep(Duration::from_secs(args.settle)).await;
        let idle = status_mb(server.pid, "VmRSS:")?;
        let n = args.rss_pods;
        let started = Stats::of(self.tinykube_batch(n, "rss").await?);
        tokio::time::sleep(Duration::from_secs(args.settle)).await;
        let running = self.containers(LABEL_NODE, &self.run).await?.len();
        let (rss, hwm) = (status_mb(server.pid, "VmRSS:")?, status_mb(server.pid, "VmHWM:")?);
        println!("{n} pods: started in {:.1} s (last pod Running), {running} containers of the node running", started.max / 1e3);
        println!(
            "server RSS (store, api-server, scheduler, controllers and agent in one process): {idle:.1} MB idle, {rss:.1} MB with {n} pods Running {}s later (peak {hwm:.1} MB); pause processes and the Docker Engine are not counted",
            args.settle
        );
        println!("goal: ≤ 60 MB with {n} pods: {}", if rss <= 60.0 { "met" } else { "MISSED" });
        self.tinykube_teardown("rss").await
    }

    // -- the floor -----------------------------------------------------------

    /// The 10.88.N.0/24 that no Docker network uses, N from 250 to 254
    /// (the e2e tests keep below 250).
    async fn free_subnets(&self) -> Result<Vec<String>> {
        let used: HashSet<String> = self
            .docker
            .list_networks(None::<ListNetworksOptions>)
            .await?
            .into_iter()
            .flat_map(|n| n.ipam.and_then(|i| i.config).unwrap_or_default())
            .filter_map(|c| c.subnet)
            .collect();
        Ok((250..=254).map(|n| format!("10.88.{n}.0/24")).filter(|s| !used.contains(s)).collect())
    }

    async fn create_floor_network(&self, subnet: &str) -> Result<()> {
        let request = NetworkCreateRequest {
            name: self.floor_network.clone(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig { subnet: Some(subnet.to_string()), ..Default::default() }]),
                ..Default::default()
            }),
            labels: Some(HashMap::from([(LABEL_FLOOR.to_string(), self.run.clone())])),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .with_context(|| format!("creating the floor's network {} ({subnet})", self.floor_network))?;
        Ok(())
    }

    /// Starts `n` pods straight through the engine, all at once; per pod,
    /// the time from the batch's start to its app container started.
    async fn floor_batch(&self, n: usize, tag: &str) -> Result<Vec<Duration>> {
        let pause = self.pause_image.clone().context("no pause image yet")?;
        let t0 = Instant::now();
        let pods = (0..n).map(|i| {
            let pause = pause.clone();
            async move {
                let pod = format!("{}-{tag}-{i}", self.run);
                let sandbox =
                    self.floor_container(format!("{pod}-pause"), sandbox_body(&pause, &pod, &self.floor_network, &self.run)).await?;
                self.floor_container(format!("{pod}-app"), app_body(&self.image, &sandbox, &self.run)).await?;
                Ok::<_, anyhow::Error>(t0.elapsed())
            }
        });
        tokio::time::timeout(BATCH_TIMEOUT, futures::future::join_all(pods))
            .await
            .context("the floor's batch timed out")?
            .into_iter()
            .collect()
    }

    async fn floor_container(&self, name: String, body: ContainerCreateBody) -> Result<String> {
        let created = self
            .docker
            .create_container(Some(CreateContainerOptions { name: Some(name.clone()), ..Default::default() }), body)
            .await?;
        self.docker.start_container(&created.id, None).await.with_context(|| format!("starting {name}"))?;
        Ok(created.id)
    }

    /// Removes the floor's containers: app containers, then sandboxes.
    async fn floor_teardown(&self) -> Result<()> {
        let all = self.containers(LABEL_FLOOR, &self.run).await?;
        let (apps, sandboxes): (Vec<_>, Vec<_>) = all.into_iter().partition(|(name, _)| name.ends_with("-app"));
        for batch in [apps, sandboxes] {
            let removals = batch.iter().map(|(_, id)| self.remove(id));
            for r in futures::future::join_all(removals).await {
                r?;
            }
        }
        Ok(())
    }

    // -- shared --------------------------------------------------------------

    /// `(name, id)` of every container (running or not) labelled `key=value`.
    async fn containers(&self, key: &str, value: &str) -> Result<Vec<(String, String)>> {
        let options = ListContainersOptions { all: true, filters: Some(label_filter(key, value)), ..Default::default() };
        let listed = self.docker.list_containers(Some(options)).await?;
        Ok(listed.into_iter().filter_map(|c| Some((c.names.unwrap_or_default().join(","), c.id?))).collect())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        match self.docker.remove_container(id, Some(RemoveContainerOptions { force: true, ..Default::default() })).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(anyhow!("removing container {id}: {e}")),
        }
    }

    /// Stops the server and removes every container and network of this
    /// run (the agent leaves its containers running when it stops).
    async fn cleanup(&mut self) {
        if let Some(mut server) = self.server.take() {
            crate::signal_process(server.pid, libc::SIGTERM);
            if tokio::time::timeout(Duration::from_secs(20), server.child.wait()).await.is_err() {
                let _ = server.child.kill().await;
            }
            let _ = std::fs::remove_dir_all(&server.dir);
        }
        for (key, value) in [(LABEL_NODE, self.run.clone()), (LABEL_FLOOR, self.run.clone())] {
            let Ok(all) = self.containers(key, &value).await else { continue };
            let removals = all.iter().map(|(_, id)| self.remove(id));
            for r in futures::future::join_all(removals).await {
                if let Err(e) = r {
                    eprintln!("cleanup: {e:#}");
                }
            }
        }
        // The engine may report endpoints of just-removed containers for a
        // moment; a network it still refuses after that is reported.
        for network in [format!("tinykube-{}", self.run), self.floor_network.clone()] {
            for attempt in 1..=10 {
                match self.docker.remove_network(&network).await {
                    Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => break,
                    Err(e) if attempt == 10 => eprintln!("cleanup: removing network {network}: {e}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        }
    }
}

/// The Deployment timed: `n` busybox pods sleeping.
fn deployment_of(name: &str, n: usize, image: &str) -> Result<Deployment> {
    let manifest = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": n, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}}}
    });
    Ok(serde_json::from_value(manifest)?)
}

/// A sandbox as the agent makes one: the pause image on the bridge
/// network, the pod's name as hostname, a shareable IPC namespace. (The
/// agent also asks for `oom_score_adj` -998 where the engine allows it.)
fn sandbox_body(pause: &str, pod: &str, network: &str, run: &str) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(pause.to_string()),
        hostname: Some(pod.to_string()),
        labels: Some(HashMap::from([(LABEL_FLOOR.to_string(), run.to_string())])),
        host_config: Some(HostConfig { network_mode: Some(network.to_string()), ipc_mode: Some("shareable".into()), ..Default::default() }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network.to_string(), EndpointSettings::default())])),
        }),
        ..Default::default()
    }
}

/// The app container in the sandbox's network and IPC namespaces.
fn app_body(image: &str, sandbox: &str, run: &str) -> ContainerCreateBody {
    let join = format!("container:{sandbox}");
    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["sleep".into(), "3600".into()]),
        labels: Some(HashMap::from([(LABEL_FLOOR.to_string(), run.to_string())])),
        host_config: Some(HostConfig { network_mode: Some(join.clone()), ipc_mode: Some(join), ..Default::default() }),
        ..Default::default()
    }
}

/// Waits until a watch on nodes sees `node` Ready.
async fn wait_node_ready(client: &Client, node: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    // The server may not be listening yet: retry the watch until it is.
    loop {
        if Instant::now() > deadline {
            bail!("node {node} not Ready within 60 s");
        }
        let Ok(mut stream) = nodes.watch(&ListParams::default(), "0", 0).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while let Some(ev) = stream.next().await {
            if let Ok(WatchEvent::Added(n) | WatchEvent::Modified(n)) = ev {
                let ready = n
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if ready && n.metadata.name.as_deref() == Some(node) {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_nearest_rank() {
        let ms = |v: &[u64]| v.iter().map(|m| Duration::from_millis(*m)).collect::<Vec<_>>();
        let s = Stats::of(ms(&[30, 10, 20, 40, 50]));
        assert_eq!((s.p50, s.p99, s.max), (30.0, 50.0, 50.0));
        let s = Stats::of(ms(&[7]));
        assert_eq!((s.p50, s.p99, s.max), (7.0, 7.0, 7.0));
        let m = Stats::median_of(&[
            Stats { p50: 1.0, p99: 9.0, max: 9.0 },
            Stats { p50: 3.0, p99: 5.0, max: 6.0 },
            Stats { p50: 2.0, p99: 7.0, max: 8.0 },
        ]);
        assert_eq!((m.p50, m.p99, m.max), (2.0, 7.0, 8.0));
    }

    #[test]
    fn the_floor_joins_its_sandbox_as_the_agent_does() {
        let app = app_body("img", "abc", "run");
        let host = app.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("container:abc"));
        assert_eq!(host.ipc_mode.as_deref(), Some("container:abc"));
        let sandbox = sandbox_body("pause", "pod", "net", "run");
        assert_eq!(sandbox.host_config.unwrap().ipc_mode.as_deref(), Some("shareable"));
        let d = deployment_of("bench-x", 5, "img").unwrap();
        assert_eq!(d.spec.unwrap().replicas, Some(5));
    }
}
