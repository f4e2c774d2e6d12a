//! # The node agent: tinykube's kubelet
//!
//! In Kubernetes, nothing the api-server stores ever runs by itself. On every
//! node a *kubelet* makes the node's share of the cluster real: it registers
//! a Node object so the scheduler can place pods there, proves every few
//! seconds that it is alive (a Lease and the Node's `Ready` condition),
//! watches the pods bound to its node, and for each one asks a container
//! runtime to start, restart and stop containers until what runs matches
//! what the pod asks for. It reports back through the pod's status, which is
//! how `kubectl get pods` learns that a pod is `Running` or in
//! `CrashLoopBackOff`. Deleting a pod is a conversation: the api-server only
//! marks it (`deletionTimestamp`); the kubelet stops the containers, giving
//! each its grace period between SIGTERM and SIGKILL, and then deletes the
//! object for good.
//!
//! This crate is that agent, shaped like the kubelet so that the names can
//! be looked up upstream: node registration and status, the node Lease, a
//! sync loop feeding per-pod workers, a CRI-shaped runtime interface,
//! restart policies with crash-loop back-off, liveness, readiness and
//! startup probes, and the logs and exec endpoints.
//!
//! Between the agent and each container sits a *shim*, as containerd puts
//! `containerd-shim` between itself and runc: a small process (`tinykube
//! shim`, see [`shim`]) that is the container's parent, writes its output
//! to the log file in the CRI format (one timestamped record per line, see
//! [`crilog`]) and records its exit code. The shim does not need the agent,
//! so containers keep running and logging while the agent restarts, and the
//! next agent still learns how a container ended while it was away.
//!
//! Where tinykube simplifies:
//! - Two runtimes sit behind the same CRI-shaped [`runtime::Runtime`]
//!   trait: `docker` (real containers, a sandbox per pod with its own IP on
//!   the node's bridge network; the default when a Docker Engine answers)
//!   and `process` (a container is its command run as a local process
//!   group; the image is recorded, never pulled). A `hollow` (simulated)
//!   runtime is planned.
//! - The pod network is flannel's `host-gw` with the CNI bridge plugin
//!   built in (see [`network`]): pods get addresses from the Node's
//!   `spec.podCIDR` (the docker runtime's bridge network, or with the
//!   process runtime a network namespace per pod on the node bridge when
//!   the agent is root; else pods share the host's network and a pod's IP
//!   is the node's), and every node routes the others' ranges via their
//!   InternalIP.
//! - Probes: `exec` probes run in the container through the runtime,
//!   `httpGet` (plain HTTP only) and `tcpSocket` against the pod's IP;
//!   `grpc` and HTTPS probes are reported as unsupported (see [`prober`]).
//! - Exec goes through the runtime: inside the container with Docker; on
//!   the host, with the container process's environment, with the process
//!   runtime (see [`exec`]).
//! - Writing only the agent's own Node, own Lease and the status of its own
//!   pods — the architecture invariant — holds here as upstream.
//!
//! A restarted agent does not start duplicates: the process runtime keeps a
//! state file per container and *adopts* containers whose shim is still
//! alive (see [`runtime::process`]).
//!
//! # Layout
//! - [`run`] and [`Config`]: the entry point the binary calls.
//! - [`bootstrap`]: joining a cluster with a token (the kubelet's TLS bootstrap).
//! - [`node`]: Node registration, capacity and the status heartbeat.
//! - [`lease`]: the `kube-node-lease` heartbeat Lease.
//! - [`sync_loop`]: routes pod changes and container events to workers.
//! - [`worker`]: one pod worker per pod: start, restart, terminate.
//! - [`prober`]: liveness, readiness and startup probes: one probe worker
//!   per container and probe type, the handlers, and the verdicts the pod
//!   worker folds into the status.
//! - [`status`]: pod status and phase as pure functions.
//! - [`pods`]: a pod's identity, files and containers by name, shared by the
//!   workers and the endpoints.
//! - [`backoff`]: crash-loop back-off.
//! - [`lifecycle`]: `postStart` and `preStop` hooks.
//! - [`env`](mod@env): a container's environment (fieldRef, ConfigMap and Secret keys).
//! - [`runtime`]: the CRI-shaped [`runtime::Runtime`] trait, the docker and
//!   process runtimes.
//! - [`volumes`]: the volume manager: emptyDir, hostPath, configMap,
//!   secret, downwardAPI and projected volumes, and each container's mounts.
//! - [`images`]: the image manager: pull policies, pull back-off, pull secrets.
//! - [`network`]: the node bridge, pod network namespaces and host-gw routes.
//! - [`shim`]: the per-container supervisor process (`tinykube shim`).
//! - [`crilog`]: the CRI log format the shim writes and the logs endpoint reads.
//! - [`service`]: the agent's gRPC server (`Agent.Logs`, `Agent.Exec`), with
//!   [`logs`] and [`exec`] behind it.
//! - `sys`: signals, sessions and `/proc`.

pub mod backoff;
pub mod bootstrap;
pub mod crilog;
pub mod env;
pub mod exec;
pub mod images;
pub mod lease;
pub mod lifecycle;
pub mod logs;
pub mod network;
pub mod node;
pub mod pods;
pub mod prober;
pub mod runtime;
pub mod service;
pub mod shim;
pub mod status;
pub mod sync_loop;
mod sys;
#[cfg(test)]
mod test_support;
pub mod volumes;
pub mod worker;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api::cidr::Cidr;
use api::proto::agent_server::AgentServer;
use client::informer::{Cache, Informer};
use client::{Api, Client, ListParams};
use k8s_openapi::api::core::v1::{Node, Pod};
use tokio_util::sync::CancellationToken;

use crate::node::{HostInfo, NodeIdentity};
use crate::pods::PodLookup;
use crate::runtime::process::ProcessRuntime;
use crate::runtime::{Runtime, RuntimeError};
use crate::service::AgentService;
use crate::sync_loop::PodWorkers;
use crate::worker::Context;

/// Which container runtime runs the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Real containers through the Docker Engine; see [`runtime::docker`].
    Docker,
    /// Containers as local processes; see [`runtime::process`].
    Process,
}

/// The user of the api-server's client certificate for agents, as
/// kubeadm names it: the one client an agent's port serves (besides
/// `system:masters`).
pub const APISERVER_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// The cluster's pod range when nothing else is said (`--cluster-cidr`),
/// as kube-controller-manager's and flannel's defaults.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.244.0.0/16";

/// How the agent runs. [`Config::new`] gives upstream's defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Node's name; also its `kubernetes.io/hostname` label.
    pub node_name: String,
    /// Agent state (`agent/`) and container logs (`pods/`) live here.
    pub data_dir: PathBuf,
    /// `None`: docker when a Docker Engine answers, else process.
    pub runtime: Option<RuntimeKind>,
    /// This node's pod range, when set by hand (`--pod-cidr`, as the
    /// kubelet's flag for a node without a node IPAM controller): used
    /// as is, not written to the Node, whose `spec.podCIDR` only the
    /// controller sets (and other nodes route to). `None`: the range the
    /// controller gives the Node, waited for at start.
    pub pod_cidr: Option<String>,
    /// The cluster's whole pod range: blackholed under the routes to the
    /// other nodes' ranges.
    pub cluster_cidr: String,
    /// How the process runtime networks pods; `None`: a namespace per pod
    /// when the agent is root, else the host's network (with a warning).
    pub pod_network: Option<network::PodNetworkMode>,
    /// How other nodes' pod ranges are routed.
    pub backend: network::Backend,
    /// Where the agent's own gRPC server (logs, exec) listens; port 0 picks one.
    /// The chosen port is published on the Node for the api-server.
    pub listen: SocketAddr,
    /// The node's `InternalIP`: where the api-server reaches this agent,
    /// and the IP of every pod on the host's network.
    pub node_ip: IpAddr,
    /// First crash-loop back-off (upstream: 10 s), doubled per restart...
    pub backoff_base: Duration,
    /// ... up to this (upstream: 300 s).
    pub backoff_cap: Duration,
    /// How often the Node status is written and the Lease renewed.
    pub status_update_period: Duration,
    /// The cluster CA (PEM): the agent's port accepts only clients with a
    /// certificate it signed for the api-server.
    pub ca_pem: String,
    /// The binary that supervises each container, run as `<shim> shim --
    /// ...` (see [`shim`]): the `tinykube` binary itself. [`Config::new`]
    /// takes the running executable, which is right inside `tinykube`;
    /// anything else embedding the agent must point it at a `tinykube`
    /// binary. `None` refuses to start: the process runtime has no way to
    /// run a container without a shim.
    pub shim: Option<PathBuf>,
}

impl Config {
    pub fn new(node_name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Config {
            node_name: node_name.into(),
            data_dir: data_dir.into(),
            runtime: None,
            pod_cidr: None,
            cluster_cidr: DEFAULT_CLUSTER_CIDR.into(),
            pod_network: None,
            backend: network::Backend::HostGw,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            node_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            backoff_base: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(300),
            status_update_period: Duration::from_secs(10),
            shim: std::env::current_exe().ok(),
            ca_pem: String::new(),
        }
    }
}

/// The agent's failures; everything after start-up is retried instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The container runtime could not be opened (its state directory).
    #[error("container runtime: {0}")]
    Runtime(#[from] RuntimeError),
    /// No shim binary was configured ([`Config::shim`] is `None`).
    #[error("no shim binary configured: the process runtime runs every container through `tinykube shim`")]
    NoShim,
    /// The docker runtime was asked for and no Docker Engine answers.
    #[error("the docker runtime needs a Docker Engine: {0}")]
    NoDocker(String),
    /// The agent's TLS configuration could not be made.
    #[error("the agent's TLS: {0}")]
    Tls(api::pki::PkiError),
    /// A pod range flag is not a CIDR.
    #[error("{0}")]
    Cidr(#[from] api::cidr::ParseCidrError),
    /// The node's pod network could not be set up.
    #[error("pod network: {0}")]
    Network(#[from] network::NetError),
    /// The agent's gRPC server could not bind its address.
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// How long shutdown gives each container between SIGTERM and SIGKILL at
/// most: the agent is going away, not the pod.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How soon a failed registration is retried.
const REGISTER_RETRY: Duration = Duration::from_secs(1);
/// How long the agent waits for its podCIDR before it says so.
const POD_CIDR_PATIENCE: Duration = Duration::from_secs(10);

/// Runs the agent until `cancel`: registers the Node, keeps its status and
/// Lease fresh, runs the pods bound to it and serves their logs and exec.
/// On cancel it stops every container it runs (SIGTERM, at most 5 s,
/// SIGKILL) but leaves the pods' objects alone, and returns. The containers'
/// shims are started from [`Config::shim`].
pub async fn run(client: Client, config: Config, cancel: CancellationToken) -> Result<(), Error> {
    let cluster_cidr: Cidr = config.cluster_cidr.parse()?;
    let own_cidr: Option<Cidr> = config.pod_cidr.as_deref().map(str::parse).transpose()?;
    let engine = choose_runtime(&config).await?;
    // The process runtime's pods get namespaces of their own.
    let bridge = engine.is_none() && pod_network_mode(&config) == network::PodNetworkMode::Bridge;
    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|source| Error::Listen { addr: config.listen, source })?;
    let port = listener.local_addr().map_err(|source| Error::Listen { addr: config.listen, source })?.port();
    let identity = NodeIdentity {
        name: config.node_name.clone(),
        address: config.node_ip.to_string(),
        port,
        runtime_version: match &engine {
            Some((_, version)) => format!("docker://{version}"),
            None => runtime::process::VERSION.to_string(),
        },
    };
    let host = HostInfo::read();
    let memory_capacity = i64::try_from(host.memory_kib).unwrap_or(i64::MAX / 1024) * 1024;
    tracing::info!(node = %identity.name, port, runtime = %identity.runtime_version, "agent starting");

    let Some(node) = register_until_done(&client, &identity, &host, &cancel).await else {
        return Ok(());
    };
    // Pods need the node's range before they can get addresses from it.
    let needs_range = engine.is_some() || bridge;
    let range = match own_cidr {
        Some(range) => Some(range),
        None if needs_range => match wait_for_pod_cidr(&client, &config.node_name, &cancel).await {
            Some(range) => Some(range),
            None => return Ok(()),
        },
        None => None,
    };
    if let Some(range) = range.filter(|r| !cluster_cidr.covers(r)) {
        tracing::warn!(
            %range, cluster_cidr = %cluster_cidr,
            "this node's pod range is outside --cluster-cidr: give the agent the server's --cluster-cidr, or the blackhole does not cover the cluster's pods"
        );
    }
    let runtime = open_runtime(&config, engine, range, bridge).await?;
    let mut background = tokio::task::JoinSet::new();
    if config.backend == network::Backend::HostGw && needs_range {
        if network::can_configure() {
            background.spawn(network::routes::run(client.clone(), config.node_name.clone(), cluster_cidr, cancel.clone()));
        } else {
            tracing::warn!(
                "not root: no routes to other nodes' pods (--flannel-backend host-gw needs root); pods reach only this node's pods"
            );
        }
    }
    background.spawn(status_loop(client.clone(), identity.clone(), host.clone(), config.status_update_period, cancel.clone()));
    background.spawn(lease_loop(client.clone(), node, config.status_update_period, cancel.clone()));

    // Subscribe before anything runs so no container event is missed.
    let events = runtime.subscribe();
    let (changes_tx, changes) = tokio::sync::mpsc::unbounded_channel();
    let informer = Informer::spawn(
        Api::<Pod>::all(client.clone()),
        ListParams::fields(format!("spec.nodeName={}", config.node_name)),
        cancel.child_token(),
        move |change| {
            let _ = changes_tx.send(change);
        },
    );

    let cache = informer.cache.clone();
    let lookup: PodLookup = Arc::new(move |ns: &str, name: &str| cache.get(&format!("{ns}/{name}")));
    let service = AgentService { runtime: runtime.clone(), data_dir: config.data_dir.clone(), pods: lookup };
    let server_cancel = cancel.clone();
    let tls = service::tls(&config.ca_pem, config.node_ip).map_err(Error::Tls)?;
    background.spawn(async move {
        let incoming = service::incoming(listener, tls, server_cancel.clone());
        let served = tonic::transport::Server::builder()
            .add_service(AgentServer::new(service))
            .serve_with_incoming_shutdown(incoming, server_cancel.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "agent gRPC server failed");
        }
    });

    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = informer.wait_synced() => {
            kill_orphans(&runtime, &informer.cache).await;
            let ctx = Arc::new(Context {
                client: client.clone(),
                runtime: runtime.clone(),
                recorder: client::events::Recorder::new(client.clone(), "kubelet", Some(&config.node_name)),
                node_address: config.node_ip.to_string(),
                data_dir: config.data_dir.clone(),
                backoff_base: config.backoff_base,
                backoff_cap: config.backoff_cap,
                memory_capacity,
            });
            PodWorkers::new(ctx, cancel.child_token()).run(changes, events).await;
        }
    }

    shutdown(&runtime, &informer.cache).await;
    cancel.cancel();
    while background.join_next().await.is_some() {}
    tracing::info!(node = %config.node_name, "agent stopped");
    Ok(())
}

/// How the process runtime networks pods: as asked, except that a
/// namespace per pod needs root (then the host's network, with a warning).
fn pod_network_mode(config: &Config) -> network::PodNetworkMode {
    use network::PodNetworkMode::{Bridge, Host};
    let root = network::can_configure();
    match config.pod_network {
        Some(Host) => Host,
        Some(Bridge) | None if root => Bridge,
        asked => {
            tracing::warn!(
                asked = ?asked,
                "not root: the process runtime's pods share the host's network (no namespace per pod), so a pod's IP is the node's and pods on two nodes cannot reach each other by pod IP"
            );
            Host
        }
    }
}

/// Waits until the node IPAM controller has given our Node a
/// `spec.podCIDR`; `None` if cancelled first.
async fn wait_for_pod_cidr(client: &Client, node: &str, cancel: &CancellationToken) -> Option<Cidr> {
    let nodes: Api<Node> = Api::all(client.clone());
    let started = std::time::Instant::now();
    let mut warned = false;
    loop {
        match nodes.get_opt(node).await {
            Ok(Some(n)) => {
                let spec = n.spec.unwrap_or_default();
                let cidr = spec.pod_cidrs.and_then(|l| l.into_iter().next()).or(spec.pod_cidr);
                match cidr.as_deref().map(str::parse::<Cidr>) {
                    Some(Ok(range)) => {
                        tracing::info!(node, %range, "the node's pod range");
                        return Some(range);
                    }
                    Some(Err(e)) => tracing::warn!(node, error = %e, "the Node's podCIDR is not a range"),
                    None => {}
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(node, error = %e, "cannot read our Node"),
        }
        if !warned && started.elapsed() > POD_CIDR_PATIENCE {
            warned = true;
            tracing::warn!(
                node,
                "still no spec.podCIDR on our Node: is the node IPAM controller running (tinykube server --cluster-cidr)? Waiting"
            );
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(REGISTER_RETRY / 2) => {}
        }
    }
}

/// The runtime to open: the Docker Engine and its version, or `None` for
/// the process runtime. The config's choice, or with none named docker
/// when a Docker Engine answers (`DOCKER_HOST` or the default socket),
/// else process. The choice and its reason are logged.
async fn choose_runtime(config: &Config) -> Result<Option<(bollard::Docker, String)>, Error> {
    let docker = match config.runtime {
        Some(RuntimeKind::Process) => None,
        Some(RuntimeKind::Docker) => Some(runtime::docker::connect().await.map_err(Error::NoDocker)?),
        None => match runtime::docker::connect().await {
            Ok(found) => {
                tracing::info!(engine = %found.1, "runtime docker: a Docker Engine answers");
                Some(found)
            }
            Err(why) => {
                tracing::info!(reason = %why, "runtime process: no Docker Engine answers; containers run as local processes and their images are not used");
                None
            }
        },
    };
    if docker.is_none() && config.runtime == Some(RuntimeKind::Process) {
        tracing::info!("runtime process: as asked; containers run as local processes and their images are not used");
    }
    Ok(docker)
}

/// Opens the chosen runtime on the node's pod range: the docker runtime's
/// network, or (with `bridge`) the process runtime's node bridge.
async fn open_runtime(
    config: &Config,
    engine: Option<(bollard::Docker, String)>,
    range: Option<Cidr>,
    bridge: bool,
) -> Result<Arc<dyn Runtime>, Error> {
    let shim = config.shim.clone().ok_or(Error::NoShim)?;
    if let Some((docker, version)) = engine {
        let pod_cidr = range.map(|r| r.to_string()).unwrap_or_default();
        let docker_config = runtime::docker::DockerConfig { node_name: config.node_name.clone(), pod_cidr, pause_binary: shim };
        return Ok(runtime::docker::DockerRuntime::open(docker, version, docker_config).await?);
    }
    let agent_dir = config.data_dir.join("agent");
    let process = ProcessRuntime::open(agent_dir.join("containers"), shim)?;
    match range.filter(|_| bridge) {
        Some(range) => {
            let net = network::PodNetwork::open(network::bridge::DEFAULT_BRIDGE, range, &agent_dir.join("network")).await?;
            Ok(Arc::new(process.with_pod_network(Arc::new(net), agent_dir.join("sandboxes"))?))
        }
        None => Ok(Arc::new(process)),
    }
}

/// Registers the Node, retrying until it works; `None` if cancelled first.
async fn register_until_done(client: &Client, id: &NodeIdentity, host: &HostInfo, cancel: &CancellationToken) -> Option<Node> {
    loop {
        match node::register(client, id, host).await {
            Ok(node) => return Some(node),
            Err(e) => tracing::warn!(node = %id.name, error = %e, "node registration failed; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(REGISTER_RETRY) => {}
        }
    }
}

async fn status_loop(client: Client, id: NodeIdentity, host: HostInfo, period: Duration, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        if let Err(e) = node::heartbeat(&client, &id, &host).await {
            tracing::warn!(node = %id.name, error = %e, "node status update failed");
        }
    }
}

async fn lease_loop(client: Client, node: Node, period: Duration, cancel: CancellationToken) {
    loop {
        if let Err(e) = lease::renew(&client, &node).await {
            tracing::warn!(node = ?node.metadata.name, error = %e, "node lease renewal failed");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

/// Kills containers (adopted from a previous agent) whose pod is no longer
/// bound to this node, as the kubelet's housekeeping kills orphaned pods.
async fn kill_orphans(runtime: &Arc<dyn Runtime>, pods: &Cache<Pod>) {
    let live: std::collections::HashSet<String> = pods.list().iter().filter_map(|p| p.metadata.uid.clone()).collect();
    for c in runtime.list_containers().await {
        if live.contains(&c.pod.uid) {
            continue;
        }
        tracing::info!(pod = %format!("{}/{}", c.pod.namespace, c.pod.name), container = %c.name, "killing a container whose pod is gone");
        if let Err(e) = runtime.remove_container(&c.id).await {
            tracing::warn!(container = %c.id, error = %e, "cannot kill orphaned container");
        }
    }
    for s in runtime.list_pod_sandboxes().await {
        if live.contains(&s.pod.uid) {
            continue;
        }
        tracing::info!(pod = %format!("{}/{}", s.pod.namespace, s.pod.name), "removing a sandbox whose pod is gone");
        let _ = runtime.stop_pod_sandbox(&s.id).await;
        if let Err(e) = runtime.remove_pod_sandbox(&s.id).await {
            tracing::warn!(sandbox = %s.id, error = %e, "cannot remove orphaned sandbox");
        }
    }
}

/// Stops every running container at once, each with its pod's grace period
/// capped at [`SHUTDOWN_GRACE`].
async fn shutdown(runtime: &Arc<dyn Runtime>, pods: &Cache<Pod>) {
    let all_pods = pods.list();
    let stops = runtime.list_containers().await.into_iter().filter(|c| c.is_running()).map(|c| {
        let grace = all_pods
            .iter()
            .find(|p| p.metadata.uid.as_deref() == Some(c.pod.uid.as_str()))
            .map(|p| worker::grace_period(p))
            .unwrap_or(SHUTDOWN_GRACE)
            .min(SHUTDOWN_GRACE);
        let runtime = runtime.clone();
        async move {
            if let Err(e) = runtime.stop_container(&c.id, grace).await {
                tracing::warn!(container = %c.id, error = %e, "cannot stop container at shutdown");
            }
        }
    });
    futures::future::join_all(stops).await;
}
