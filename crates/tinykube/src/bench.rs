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
//! It prints each run and the medians.
//!
//! `bench load` starts a fresh `tinykube server --no-agent` and drives its
//! Kubernetes REST API as client libraries do, over HTTP/1.1:
//! - N clients walk ConfigMaps and Pods through create, get, update (PUT),
//!   merge patch, list and delete, at a fixed aggregate rate. The rate is
//!   open-loop — each request has a slot on a schedule, and its latency is
//!   counted from that slot — so a server that stalls pays for the queue
//!   it causes instead of silently slowing the clients down (the
//!   "coordinated omission" that closed-loop load tools hide);
//! - a watcher matches each write with its watch event and times the
//!   delivery;
//! - then it stores 10,000 Pending pods and reads the server's RSS, the
//!   store's size on disk and the time to list them all.
//!
//! `bench disk` probes the disk the others write to, without tinykube: a
//! 4 KiB append plus `fdatasync` at a fixed rate, in a file under the
//! temporary directory (where the other benches put their data
//! directories; `TMPDIR` moves both). An acknowledged write in the store
//! waits for one such flush, so its latency is a floor for every write
//! request's.
//!
//! Results and the exact commands are recorded in BENCHMARKS.md.

use std::collections::BTreeMap;
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

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
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

pub(crate) fn rss_kib(pid: u32) -> Result<u64> {
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
        let client = admin_client(&dir).await?;
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
                let ready = n
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if ready {
                    return Ok(Instant::now());
                }
            }
        }
    }
}

/// Creates a Deployment of `replicas` sleeping pods and times until a
/// watch on pods has seen all of them Running.
pub(crate) async fn time_deployment(client: &Client, replicas: i32) -> Result<Duration> {
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

// ---------------------------------------------------------------------------
// `bench load`: the REST API under a steady request rate.
// ---------------------------------------------------------------------------

/// Options of `tinykube bench load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Parallel clients, each on its own HTTP/1.1 connection.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Target aggregate rate, requests per second (open loop: requests are
    /// scheduled at this rate whatever the latency, as wrk2 does).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of steady load.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Pods to store in the second phase (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Fresh servers to run it all on; with more than one, medians follow.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
}

/// The REST body every bench request carries.
type ReqBody = http_body_util::Full<bytes::Bytes>;
type HttpClient = hyper_util::client::legacy::Client<client::connect::Connector, ReqBody>;

/// The admin's credentials for the server under test: one server runs at
/// a time, and each new one (with its own CA) replaces them.
static CREDENTIALS: std::sync::RwLock<Option<client::Credentials>> = std::sync::RwLock::new(None);

/// Waits for the kubeconfig a server started on `dir` writes, and makes
/// its admin credentials the ones [`http_client`] uses; returns a gRPC
/// client as that admin.
pub(crate) async fn admin_client(dir: &std::path::Path) -> Result<Client> {
    let path = dir.join("kubeconfig.yaml");
    let deadline = Instant::now() + Duration::from_secs(30);
    let target = loop {
        if let Ok(t) = crate::kubeconfig::load(Some(&path)) {
            break t;
        }
        if Instant::now() > deadline {
            bail!("the server wrote no kubeconfig in {} within 30 s", dir.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    *CREDENTIALS.write().expect("not poisoned") = Some(target.credentials.clone());
    Ok(Client::new(&target.server, &target.credentials)?)
}

fn http_client() -> HttpClient {
    let credentials = CREDENTIALS.read().expect("not poisoned").clone().expect("admin_client ran first");
    let uri: http::Uri = "https://127.0.0.1".parse().expect("a fixed URI");
    let connector = client::connect::Connector::new(&uri, &credentials).expect("the admin's TLS configuration");
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector)
}

/// One REST call: status and parsed JSON body (Null when not JSON).
async fn call(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    content_type: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, serde_json::Value)> {
    use http_body_util::BodyExt;
    let bytes = body.map(serde_json::to_vec).transpose()?.unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::CONTENT_TYPE, content_type)
        .body(http_body_util::Full::new(bytes::Bytes::from(bytes)))?;
    let resp = client.request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)))
}

/// A started `tinykube server --no-agent` on a temporary data dir.
pub(crate) struct BenchServer {
    child: tokio::process::Child,
    pub(crate) pid: u32,
    pub(crate) base: String,
    pub(crate) dir: std::path::PathBuf,
}

impl BenchServer {
    /// Starts `tinykube server --no-agent` on a free loopback port and
    /// waits until it answers as the admin.
    pub(crate) async fn start(tag: &str) -> Result<Self> {
        Self::start_with(tag, &[]).await
    }

    /// [`BenchServer::start`] with more server flags.
    pub(crate) async fn start_with(tag: &str, extra_args: &[&str]) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let dir = std::env::temp_dir().join(format!("tinykube-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = tokio::process::Command::new(&exe)
            .args(["server", "--no-agent", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra_args)
            .arg("--data-dir")
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().context("server pid")?;
        let base = format!("https://127.0.0.1:{port}");
        admin_client(&dir).await?;
        let client = http_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) =
                call(&client, http::Method::GET, &format!("{base}/api/v1/namespaces/default"), "application/json", None).await
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("the server did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(BenchServer { child, pid, base, dir })
    }

    /// The arguments of a `tinykube agent` that joins this server as node
    /// `name`, on this host (loopback, the process runtime). Several such
    /// nodes share the host's network: their pods are on it, and none of
    /// them adds routes. `--data-dir` is left to the caller.
    pub(crate) fn local_agent_args(&self, name: &str) -> Result<Vec<String>> {
        let token = std::fs::read_to_string(self.dir.join("token")).context("the server's join token")?;
        let args = ["agent", "--server", &self.base, "--token", token.trim(), "--node-name", name, "--runtime", "process"]
            .into_iter()
            .chain(["--listen", "127.0.0.1:0", "--node-ip", "127.0.0.1", "--pod-network", "host", "--flannel-backend", "none"]);
        Ok(args.map(String::from).collect())
    }

    pub(crate) async fn stop(mut self) {
        crate::signal_process(self.pid, libc::SIGTERM);
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Bytes under `path`, recursively.
fn disk_usage(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The nearest-rank percentile `p` (0..=100) of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50, p90, p99 and max of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Quantiles {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Quantiles {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Quantiles {
            n: samples.len(),
            p50: ms(percentile(&samples, 50.0)),
            p90: ms(percentile(&samples, 90.0)),
            p99: ms(percentile(&samples, 99.0)),
            max: ms(samples.last().copied().unwrap_or_default()),
        }
    }

    fn median_of(runs: &[Quantiles]) -> Self {
        let pick = |f: fn(&Quantiles) -> f64| median(runs.iter().map(f).collect());
        Quantiles {
            n: runs.iter().map(|q| q.n).sum::<usize>() / runs.len().max(1),
            p50: pick(|q| q.p50),
            p90: pick(|q| q.p90),
            p99: pick(|q| q.p99),
            max: pick(|q| q.max),
        }
    }
}

impl std::fmt::Display for Quantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2}", self.n, self.p50, self.p90, self.p99, self.max)
    }
}

/// Matches each write with the watch event it causes, whichever of the
/// write's response and the event arrives first.
///
/// An ADDED or MODIFIED event carries the resourceVersion the write's
/// response reported; a DELETED event carries a new one, so deletes are
/// matched by object instead (each bench object is deleted once).
#[derive(Debug, Default)]
struct DeliveryTracker {
    pending: std::collections::HashMap<String, Pending>,
    /// From just before the write was sent to the event's arrival.
    from_send: Vec<Duration>,
    /// From the write's response to the event's arrival (0 if the event
    /// came first).
    from_reply: Vec<Duration>,
}

#[derive(Debug)]
enum Pending {
    Written { sent: Instant, answered: Instant },
    Seen(Instant),
}

impl DeliveryTracker {
    fn written(&mut self, key: String, sent: Instant, answered: Instant) {
        match self.pending.remove(&key) {
            Some(Pending::Seen(seen)) => self.complete(sent, answered, seen),
            _ => {
                self.pending.insert(key, Pending::Written { sent, answered });
            }
        }
    }

    fn seen(&mut self, key: String, seen: Instant) {
        match self.pending.remove(&key) {
            Some(Pending::Written { sent, answered }) => self.complete(sent, answered, seen),
            _ => {
                self.pending.insert(key, Pending::Seen(seen));
            }
        }
    }

    fn complete(&mut self, sent: Instant, answered: Instant, seen: Instant) {
        self.from_send.push(seen.saturating_duration_since(sent));
        self.from_reply.push(seen.saturating_duration_since(answered));
    }

    /// Writes whose event never came.
    fn unseen(&self) -> usize {
        self.pending.values().filter(|p| matches!(p, Pending::Written { .. })).count()
    }
}

type Tracker = std::sync::Arc<std::sync::Mutex<DeliveryTracker>>;

fn track(tracker: &Tracker) -> std::sync::MutexGuard<'_, DeliveryTracker> {
    tracker.lock().unwrap_or_else(|p| p.into_inner())
}

/// Watches `resource` in `default` for objects labelled `bench=load` and
/// reports each event's arrival to the tracker. Returns once the watch is
/// established (its response headers arrived).
async fn spawn_watcher(base: &str, resource: &str, tracker: Tracker) -> Result<tokio::task::JoinHandle<()>> {
    use http_body_util::BodyExt;
    let client = http_client();
    let (_, list) =
        call(&client, http::Method::GET, &format!("{base}/api/v1/namespaces/default/{resource}?limit=1"), "application/json", None).await?;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
    let url = format!("{base}/api/v1/namespaces/default/{resource}?watch=true&labelSelector=bench%3Dload&resourceVersion={rv}");
    let req = http::Request::get(&url).body(http_body_util::Full::new(bytes::Bytes::new()))?;
    let resp = client.request(req).await?;
    if !resp.status().is_success() {
        bail!("watch {resource}: {}", resp.status());
    }
    let resource = resource.to_string();
    let mut body = resp.into_body();
    Ok(tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let now = Instant::now();
            let Ok(data) = frame.into_data() else { continue };
            buf.extend_from_slice(&data);
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let Ok(ev) = serde_json::from_slice::<serde_json::Value>(&line) else { continue };
                let meta = &ev["object"]["metadata"];
                let key = match ev["type"].as_str() {
                    Some("ADDED" | "MODIFIED") => meta["resourceVersion"].as_str().unwrap_or_default().to_string(),
                    Some("DELETED") => format!("del:{resource}/{}", meta["name"].as_str().unwrap_or_default()),
                    _ => continue,
                };
                track(&tracker).seen(key, now);
            }
        }
    }))
}

/// The verbs a load client cycles through for each object.
const CYCLE: [&str; 6] = ["POST", "GET", "PUT", "PATCH", "LIST", "DELETE"];

/// One sample: which request, and its latency from the moment the
/// schedule meant to send it (so a server that falls behind pays for the
/// queue it causes) and from the moment it was sent.
struct Sample {
    op: String,
    scheduled: Duration,
    service: Duration,
    ok: bool,
}

fn configmap(name: &str, client: usize, n: u64) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"bench": "load", "client": format!("c{client}")}},
        "data": {"n": n.to_string(), "settings.yaml": "log-level: info\nretries: 3\ntimeout: 30s\n"},
    })
}

fn pod(name: &str, labels: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "web", "image": "nginx:1.27",
                "ports": [{"containerPort": 80, "name": "http"}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            }],
        },
    })
}

/// One load client: walks objects through create, get, update, patch,
/// list and delete, alternating ConfigMaps and Pods, taking the next slot
/// of the shared schedule before each request.
async fn load_client(
    id: usize,
    base: String,
    schedule: std::sync::Arc<std::sync::atomic::AtomicU64>,
    start: Instant,
    interval: Duration,
    end: Instant,
    tracker: Tracker,
) -> Result<Vec<Sample>> {
    use http::Method;
    let client = http_client();
    let mut samples = Vec::new();
    let mut object = 0u64;
    let mut step = 0usize;
    let mut current = serde_json::Value::Null;
    loop {
        let slot = schedule.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let scheduled = start + interval.mul_f64(slot as f64);
        if scheduled >= end {
            return Ok(samples);
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let resource = if object.is_multiple_of(2) { "configmaps" } else { "pods" };
        let name = format!("load-{id}-{object}");
        let coll = format!("{base}/api/v1/namespaces/default/{resource}");
        let one = format!("{coll}/{name}");
        let labels = |n: u64| serde_json::json!({"bench": "load", "client": format!("c{id}"), "n": n.to_string()});
        let verb = CYCLE[step];
        let (method, url, ct, body) = match verb {
            "POST" => {
                let obj = if resource == "pods" { pod(&name, labels(0)) } else { configmap(&name, id, 0) };
                (Method::POST, coll.clone(), "application/json", Some(obj))
            }
            "GET" => (Method::GET, one.clone(), "application/json", None),
            "PUT" => {
                let mut obj = current.clone();
                if resource == "pods" {
                    obj["metadata"]["labels"]["n"] = serde_json::json!("1");
                } else {
                    obj["data"]["n"] = serde_json::json!("1");
                }
                (Method::PUT, one.clone(), "application/json", Some(obj))
            }
            "PATCH" => {
                let patch = if resource == "pods" {
                    serde_json::json!({"metadata": {"labels": {"n": "2"}}})
                } else {
                    serde_json::json!({"data": {"n": "2"}})
                };
                (Method::PATCH, one.clone(), "application/merge-patch+json", Some(patch))
            }
            "LIST" => (Method::GET, format!("{coll}?labelSelector=client%3Dc{id}"), "application/json", None),
            _ => (Method::DELETE, one.clone(), "application/json", None),
        };
        let sent = Instant::now();
        let result = call(&client, method, &url, ct, body.as_ref()).await;
        let answered = Instant::now();
        let ok = matches!(&result, Ok((code, _)) if (200..300).contains(code));
        if let Ok((_, reply)) = &result {
            if ok {
                match verb {
                    "POST" | "PUT" | "PATCH" => {
                        let rv = reply["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
                        track(&tracker).written(rv, sent, answered);
                        current = reply.clone();
                    }
                    "GET" => current = reply.clone(),
                    "DELETE" => track(&tracker).written(format!("del:{resource}/{name}"), sent, answered),
                    _ => {}
                }
            }
        }
        samples.push(Sample {
            op: format!("{verb} {resource}"),
            scheduled: answered.saturating_duration_since(scheduled),
            service: answered - sent,
            ok,
        });
        if !ok && step == 0 {
            // The object was not created: start the next one.
            object += 1;
            continue;
        }
        step += 1;
        if step == CYCLE.len() {
            step = 0;
            object += 1;
        }
    }
}

/// What one run measured.
#[derive(Debug, Default)]
struct LoadRun {
    /// Per verb (all resources), latency from the schedule.
    verbs: BTreeMap<String, Quantiles>,
    /// Per verb and resource, latency from the schedule.
    ops: BTreeMap<String, Quantiles>,
    /// All mutating requests, from the schedule and as service time.
    mutating: Quantiles,
    mutating_service: Quantiles,
    watch_from_send: Quantiles,
    watch_from_reply: Quantiles,
    unseen: usize,
    errors: usize,
    achieved_rate: f64,
    rss_idle_mb: f64,
    rss_loaded_mb: f64,
    /// The server's own view from `/metrics`, to tell server time from
    /// network and client time.
    server_writes: BucketSummary,
    store_writes: BucketSummary,
    bulk: Option<BulkResult>,
}

/// A Prometheus histogram read back from `/metrics`, summed over the
/// series that matched: observations, their sum, and cumulative counts
/// per upper bound.
#[derive(Debug, Default, Clone)]
struct BucketSummary {
    count: f64,
    sum: f64,
    buckets: BTreeMap<String, f64>,
}

impl BucketSummary {
    /// Sums `metric`'s series whose labels satisfy `select`.
    fn scrape(text: &str, metric: &str, select: impl Fn(&str) -> bool) -> Self {
        let mut out = BucketSummary::default();
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let Some((name, labels)) = series.split_once('{') else { continue };
            if !select(labels) {
                continue;
            }
            if name == format!("{metric}_count") {
                out.count += value;
            } else if name == format!("{metric}_sum") {
                out.sum += value;
            } else if name == format!("{metric}_bucket") {
                if let Some(le) = labels.split("le=\"").nth(1).and_then(|r| r.split('"').next()) {
                    *out.buckets.entry(le.to_string()).or_default() += value;
                }
            }
        }
        out
    }

    /// "n 4000, mean 1.2 ms, ≤5 ms 97.1%, ≤25 ms 99.0%, ..."
    fn describe(&self) -> String {
        let mut text = format!("n {:.0}, mean {:.2} ms", self.count, if self.count > 0.0 { self.sum / self.count * 1e3 } else { 0.0 });
        for le in ["0.005", "0.025", "0.05", "0.1"] {
            let within = self.buckets.get(le).copied().unwrap_or(0.0);
            let share = if self.count > 0.0 { within / self.count * 100.0 } else { 0.0 };
            let ms = le.parse::<f64>().unwrap_or(0.0) * 1e3;
            text.push_str(&format!(", ≤{ms:.0} ms {share:.1}%"));
        }
        text
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct BulkResult {
    pods: usize,
    create_secs: f64,
    /// RSS once the pods are stored, before anything lists them.
    rss_stored_mb: f64,
    /// Events the scheduler recorded about the pods it could not place.
    events: usize,
    /// RSS after listing them all (the lists' buffers are freed, but the
    /// allocator keeps some of the memory).
    rss_mb: f64,
    peak_rss_mb: f64,
    store_mb: f64,
    list: Quantiles,
    list_mb: f64,
    /// Of a LIST, the time spent in the store's range read (server side).
    store_list_ms: f64,
}

fn rss_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

async fn load_once(args: &LoadArgs, run: usize) -> Result<LoadRun> {
    let server = BenchServer::start(&format!("load-{run}")).await?;
    let mut out = LoadRun { rss_idle_mb: rss_mb(server.pid, "VmRSS:"), ..Default::default() };

    // Phase 1: steady load with a watcher.
    let tracker: Tracker = Default::default();
    let watchers =
        [spawn_watcher(&server.base, "configmaps", tracker.clone()).await?, spawn_watcher(&server.base, "pods", tracker.clone()).await?];
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + Duration::from_secs(args.duration);
    let schedule = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clients: Vec<_> = (0..args.clients)
        .map(|id| tokio::spawn(load_client(id, server.base.clone(), schedule.clone(), start, interval, end, tracker.clone())))
        .collect();
    let mut samples = Vec::new();
    for c in clients {
        samples.extend(c.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Let the last events arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for w in watchers {
        w.abort();
    }
    out.rss_loaded_mb = rss_mb(server.pid, "VmRSS:");
    if let Ok(metrics) = scrape_metrics(&server.base).await {
        out.server_writes = BucketSummary::scrape(&metrics, "apiserver_request_duration_seconds", |l| {
            ["POST", "PUT", "PATCH", "DELETE"].iter().any(|v| l.contains(&format!("verb=\"{v}\"")))
                && (l.contains("resource=\"configmaps\"") || l.contains("resource=\"pods\""))
        });
        out.store_writes = BucketSummary::scrape(&metrics, "etcd_request_duration_seconds", |l| {
            ["create", "update", "delete"].iter().any(|op| l.contains(&format!("operation=\"{op}\"")))
        });
    }
    out.achieved_rate = samples.len() as f64 / elapsed;
    out.errors = samples.iter().filter(|s| !s.ok).count();
    let mut by_verb: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let mut by_op: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let (mut mutating, mut mutating_service) = (Vec::new(), Vec::new());
    for s in samples.iter().filter(|s| s.ok) {
        let verb = s.op.split(' ').next().unwrap_or_default().to_string();
        if matches!(verb.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
            mutating.push(s.scheduled);
            mutating_service.push(s.service);
        }
        by_verb.entry(verb).or_default().push(s.scheduled);
        by_op.entry(s.op.clone()).or_default().push(s.scheduled);
    }
    out.verbs = by_verb.into_iter().map(|(k, v)| (k, Quantiles::of(v))).collect();
    out.ops = by_op.into_iter().map(|(k, v)| (k, Quantiles::of(v))).collect();
    out.mutating = Quantiles::of(mutating);
    out.mutating_service = Quantiles::of(mutating_service);
    {
        let t = track(&tracker);
        out.watch_from_send = Quantiles::of(t.from_send.clone());
        out.watch_from_reply = Quantiles::of(t.from_reply.clone());
        out.unseen = t.unseen();
    }
    print_phase1(run, &out);

    // Phase 2: many stored pods.
    if args.pods > 0 {
        let bulk = store_many_pods(&server, args.pods, args.clients).await?;
        println!(
            "run {run}: {} pods created in {:.1} s ({:.0}/s), {} events; server RSS {:.1} MB stored, {:.1} MB after 5 LISTs \
             (peak {:.1} MB); store on disk {:.1} MB; LIST all pods ({:.1} MB of JSON) p50 {:.0} ms, max {:.0} ms \
             (store range read: mean {:.0} ms)",
            bulk.pods,
            bulk.create_secs,
            bulk.pods as f64 / bulk.create_secs,
            bulk.events,
            bulk.rss_stored_mb,
            bulk.rss_mb,
            bulk.peak_rss_mb,
            bulk.store_mb,
            bulk.list_mb,
            bulk.list.p50,
            bulk.list.max,
            bulk.store_list_ms
        );
        out.bulk = Some(bulk);
    }
    server.stop().await;
    Ok(out)
}

/// The server's `/metrics` text.
async fn scrape_metrics(base: &str) -> Result<String> {
    use http_body_util::BodyExt;
    let req = http::Request::get(format!("{base}/metrics")).body(http_body_util::Full::new(bytes::Bytes::new()))?;
    let resp = http_client().request(req).await?;
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Creates `count` pods as fast as `clients` connections allow, then
/// measures the server's memory, the store's size and listing them all.
async fn store_many_pods(server: &BenchServer, count: usize, clients: usize) -> Result<BulkResult> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (next, base) = (next.clone(), server.base.clone());
            tokio::spawn(async move {
                let client = http_client();
                let url = format!("{base}/api/v1/namespaces/default/pods");
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let labels = serde_json::json!({"app": format!("web-{}", i % 50), "tier": "frontend", "bench": "bulk"});
                    let (code, body) =
                        call(&client, http::Method::POST, &url, "application/json", Some(&pod(&format!("bulk-{i:05}"), labels))).await?;
                    if code != 201 {
                        bail!("creating pod {i}: {code} {body}");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    let create_secs = t0.elapsed().as_secs_f64();
    // Let the scheduler's attempts on the new pods settle before reading
    // memory.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_stored_mb = rss_mb(server.pid, "VmRSS:");
    let client = http_client();
    let (_, events) = call(&client, http::Method::GET, &format!("{}/api/v1/events", server.base), "application/json", None).await?;
    let events = events["items"].as_array().map(Vec::len).unwrap_or(0);
    let pods_range =
        |text: &str| BucketSummary::scrape(text, "etcd_request_duration_seconds", |l| l.contains("operation=\"list\",type=\"pods\""));
    let ranges_before = pods_range(&scrape_metrics(&server.base).await.unwrap_or_default());
    let mut lists = Vec::new();
    let mut list_bytes = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let (code, body) = call(&client, http::Method::GET, &format!("{}/api/v1/pods", server.base), "application/json", None).await?;
        lists.push(t.elapsed());
        if code != 200 {
            bail!("listing pods: {code}");
        }
        let items = body["items"].as_array().map(Vec::len).unwrap_or(0);
        if items < count {
            bail!("listed {items} pods, expected at least {count}");
        }
        list_bytes = serde_json::to_vec(&body)?.len();
    }
    // The store's share of those lists: the growth of its range-read
    // histogram while they ran (informers may add a range or two).
    let ranges_after = pods_range(&scrape_metrics(&server.base).await.unwrap_or_default());
    let (n, sum) = (ranges_after.count - ranges_before.count, ranges_after.sum - ranges_before.sum);
    let store_list_ms = if n > 0.0 { sum / n * 1e3 } else { 0.0 };
    Ok(BulkResult {
        pods: count,
        create_secs,
        rss_stored_mb,
        events,
        rss_mb: rss_mb(server.pid, "VmRSS:"),
        peak_rss_mb: rss_mb(server.pid, "VmHWM:"),
        store_mb: disk_usage(&server.dir.join("store")) as f64 / 1e6,
        list: Quantiles::of(lists),
        list_mb: list_bytes as f64 / 1e6,
        store_list_ms,
    })
}

fn print_phase1(run: usize, r: &LoadRun) {
    println!(
        "run {run}: {:.1} req/s achieved, {} errors; server RSS {:.1} MB idle, {:.1} MB after the load",
        r.achieved_rate, r.errors, r.rss_idle_mb, r.rss_loaded_mb
    );
    println!("  latency from schedule, ms     {:>7} {:>8} {:>8} {:>8} {:>8}", "n", "p50", "p90", "p99", "max");
    for (op, q) in &r.ops {
        println!("  {op:<30}{q}");
    }
    for (verb, q) in &r.verbs {
        println!("  {:<30}{q}", format!("{verb} (all)"));
    }
    println!("  {:<30}{}", "mutating (all)", r.mutating);
    println!("  {:<30}{}", "mutating, service time", r.mutating_service);
    println!("  {:<30}{}", "watch delivery from send", r.watch_from_send);
    println!("  {:<30}{}   ({} writes never seen)", "watch delivery from reply", r.watch_from_reply, r.unseen);
    println!("  server-side, mutating requests (apiserver_request_duration_seconds): {}", r.server_writes.describe());
    println!("  server-side, store writes (etcd_request_duration_seconds):           {}", r.store_writes.describe());
}

pub async fn load(args: LoadArgs) -> Result<()> {
    println!(
        "bench load: {} clients, {:.0} req/s target for {} s, then {} pods stored; {} run(s) on fresh servers",
        args.clients, args.rate, args.duration, args.pods, args.runs
    );
    let mut runs = Vec::new();
    for run in 1..=args.runs.max(1) {
        runs.push(load_once(&args, run).await?);
    }
    if runs.len() > 1 {
        println!("median of {} runs:", runs.len());
        let med = |f: &dyn Fn(&LoadRun) -> Quantiles| Quantiles::median_of(&runs.iter().map(f).collect::<Vec<_>>());
        println!("  {:<30}{:>7} {:>8} {:>8} {:>8} {:>8}", "latency from schedule, ms", "n", "p50", "p90", "p99", "max");
        for verb in runs[0].verbs.keys() {
            println!("  {verb:<30}{}", med(&|r| r.verbs.get(verb).copied().unwrap_or_default()));
        }
        println!("  {:<30}{}", "mutating (all)", med(&|r| r.mutating));
        println!("  {:<30}{}", "watch delivery from send", med(&|r| r.watch_from_send));
        println!("  {:<30}{}", "watch delivery from reply", med(&|r| r.watch_from_reply));
        println!("  achieved {:.1} req/s", median(runs.iter().map(|r| r.achieved_rate).collect()));
        let bulks: Vec<BulkResult> = runs.iter().filter_map(|r| r.bulk).collect();
        if !bulks.is_empty() {
            println!(
                "  {} pods: RSS {:.1} MB stored, {:.1} MB after LISTs, store {:.1} MB, LIST all p50 {:.0} ms, created at {:.0}/s",
                bulks[0].pods,
                median(bulks.iter().map(|b| b.rss_stored_mb).collect()),
                median(bulks.iter().map(|b| b.rss_mb).collect()),
                median(bulks.iter().map(|b| b.store_mb).collect()),
                median(bulks.iter().map(|b| b.list.p50).collect()),
                median(bulks.iter().map(|b| b.pods as f64 / b.create_secs).collect()),
            );
        }
    }
    let last = runs.last().context("no run")?;
    let goal = |ok: bool| if ok { "met" } else { "MISSED" };
    let mutating_p99 = median(runs.iter().map(|r| r.mutating.p99).collect());
    let watch_p99 = median(runs.iter().map(|r| r.watch_from_reply.p99).collect());
    println!(
        "goals: mutating p99 {mutating_p99:.1} ms ≤ 25 ms at {:.0} req/s: {}; watch delivery p99 {watch_p99:.1} ms ≤ 10 ms: {}",
        last.achieved_rate,
        goal(mutating_p99 <= 25.0 && last.achieved_rate >= args.rate * 0.95),
        goal(watch_p99 <= 10.0)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        // (percentile, expected sample in ms)
        for (p, want) in [(50.0, 50), (90.0, 90), (99.0, 99), (100.0, 100), (0.0, 1)] {
            assert_eq!(percentile(&samples, p), Duration::from_millis(want), "p{p}");
        }
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
        assert_eq!(percentile(&[Duration::from_millis(7)], 50.0), Duration::from_millis(7));
    }

    #[test]
    fn deliveries_match_whichever_arrives_first() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = DeliveryTracker::default();
        // The response first, then the event.
        t.written("10".into(), ms(0), ms(2));
        t.seen("10".into(), ms(3));
        // The event before the response: delivery from the reply is 0.
        t.seen("del:pods/a".into(), ms(5));
        t.written("del:pods/a".into(), ms(4), ms(6));
        // A write whose event never comes, and an event nobody wrote.
        t.written("11".into(), ms(7), ms(8));
        t.seen("99".into(), ms(9));
        assert_eq!(t.from_send, vec![Duration::from_millis(3), Duration::from_millis(1)]);
        assert_eq!(t.from_reply, vec![Duration::from_millis(1), Duration::ZERO]);
        assert_eq!(t.unseen(), 1);
    }

    #[test]
    fn histograms_are_read_back_from_the_text_format() {
        let text = r#"# TYPE etcd_request_duration_seconds histogram
etcd_request_duration_seconds_bucket{operation="create",type="pods",le="0.005"} 3
etcd_request_duration_seconds_bucket{operation="create",type="pods",le="+Inf"} 4
etcd_request_duration_seconds_sum{operation="create",type="pods"} 0.04
etcd_request_duration_seconds_count{operation="create",type="pods"} 4
etcd_request_duration_seconds_bucket{operation="get",type="pods",le="0.005"} 9
etcd_request_duration_seconds_count{operation="get",type="pods"} 9
"#;
        let s = BucketSummary::scrape(text, "etcd_request_duration_seconds", |l| l.contains(r#"operation="create""#));
        assert_eq!(s.count, 4.0);
        assert!((s.sum - 0.04).abs() < 1e-12);
        assert_eq!(s.buckets.get("0.005"), Some(&3.0));
        assert!(s.describe().starts_with("n 4, mean 10.00 ms, ≤5 ms 75.0%"), "{}", s.describe());
    }
}

/// Options of `tinykube bench disk`.
#[derive(Debug, clap::Args)]
pub struct DiskArgs {
    /// Flushed writes per second (133 is the store's write rate under
    /// `bench load`'s default 200 requests/s).
    #[arg(long, default_value_t = 133.0)]
    pub rate: f64,
    /// Seconds per run.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// How many runs.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// The size of one probe write: a page, as a small store commit is.
const DISK_PROBE_WRITE: usize = 4096;

/// `tinykube bench disk`: the latency of a 4 KiB write plus `fdatasync`.
pub async fn disk(args: DiskArgs) -> Result<()> {
    if args.rate.is_nan() || args.rate <= 0.0 {
        bail!("--rate must be positive");
    }
    let dir = std::env::temp_dir();
    println!(
        "disk probe: {DISK_PROBE_WRITE}-byte append + fdatasync, {} per second for {} s, in {}",
        args.rate,
        args.seconds,
        dir.display()
    );
    println!("  {:<14}{:>7} {:>8} {:>8} {:>8} {:>8}  (ms)", "", "n", "p50", "p90", "p99", "max");
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let path = dir.join(format!("tinykube-bench-disk-{}-{run}", std::process::id()));
        let (rate, seconds) = (args.rate, args.seconds);
        let probe = tokio::task::spawn_blocking(move || {
            let result = probe_disk(&path, rate, Duration::from_secs(seconds));
            let _ = std::fs::remove_file(&path);
            result
        });
        let (latencies, achieved) = probe.await.context("the disk probe panicked")??;
        let q = Quantiles::of(latencies);
        println!("  {:<14}{q}  at {achieved:.1}/s", format!("run {run}"));
        runs.push(q);
    }
    println!("  {:<14}{}", "median", Quantiles::median_of(&runs));
    Ok(())
}

/// Appends 4 KiB and flushes it with `fdatasync`, `rate` times a second for
/// `duration`; returns each write's latency and the rate achieved. Each
/// write is timed from its own start, not from its slot on the schedule:
/// this is the disk's latency (after a slow flush, the writes that fell
/// behind follow back to back, as one writer's queued commits would).
fn probe_disk(path: &std::path::Path, rate: f64, duration: Duration) -> Result<(Vec<Duration>, f64)> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let block = vec![0x5a_u8; DISK_PROBE_WRITE];
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut next = started;
    while started.elapsed() < duration {
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = Instant::now();
        file.write_all(&block).with_context(|| format!("writing {}", path.display()))?;
        file.sync_data().with_context(|| format!("fdatasync of {}", path.display()))?;
        latencies.push(t.elapsed());
        next += interval;
    }
    let achieved = latencies.len() as f64 / started.elapsed().as_secs_f64();
    Ok((latencies, achieved))
}
