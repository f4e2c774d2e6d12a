//! The `docker` runtime: pods as real containers, through the Docker
//! Engine's HTTP API.
//!
//! This is the shape the kubelet had with dockershim, its built-in bridge
//! to Docker before CRI runtimes took over:
//!
//! - **The sandbox** is one small container per pod, the *pause*
//!   container. It does nothing but sleep; it exists to hold the pod's
//!   network namespace (and IPC namespace), so the pod's IP outlives any
//!   one of its containers. It is attached to the node's bridge network
//!   (`tinykube-<node>`, subnet `--pod-cidr`), which is how every pod gets
//!   an IP of the node's pod range that the host can reach. Its image is
//!   built by the agent on first use from the running `tinykube` binary
//!   (`tinykube pause`) and the shared libraries it runs with, so it needs
//!   no registry.
//! - **Every container of the pod** joins the sandbox's namespaces
//!   (`--network container:<sandbox>`), so the pod's containers share
//!   `localhost`, ports and the hostname.
//! - **Names and labels** follow dockershim: a sandbox is
//!   `k8s_POD_<pod>_<namespace>_<uid>_<attempt>`, a container
//!   `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`, and both carry the
//!   `io.kubernetes.pod.*` labels, so `docker ps` reads like `kubectl get
//!   pods`. A `tinykube.io/node` label says which agent owns them: on
//!   restart the agent finds its containers by that label and adopts them.
//!   Docker is the only record: nothing is kept on the agent's disk.
//! - **Logs**: for each container a copier follows the engine's log stream
//!   and writes it to the kubelet's log file in the CRI format (see
//!   [`crate::crilog`]), so `kubectl logs`, `--previous` and `-f` read the
//!   same files with either runtime. A copier started after an agent
//!   restart resumes after the last record in the file.
//! - **State changes** come from the engine's event stream (`start`, `die`,
//!   `oom`), which stands in for the kubelet's PLEG relist; a cache of
//!   container statuses is refreshed from `inspect` on each event.
//!
//! Where tinykube simplifies: an exec whose client goes away is not killed
//! (the engine has no API for that; dockershim had the same limit); cluster
//! DNS is not configured yet (containers use the engine's resolver).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummaryStateEnum,
    EndpointSettings, ExecConfig, HostConfig, Ipam, IpamConfig, MountType, NetworkCreateRequest, NetworkingConfig, PortBinding,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, CreateImageOptions, EventsOptions, InspectContainerOptions, ListContainersOptions,
    ListNetworksOptions, ListVolumesOptions, LogsOptions, RemoveContainerOptions, RemoveVolumeOptions, StopContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{
    ContainerConfig, ContainerEvent, ContainerState, ContainerStatus, ExecInput, ExecOutput, ExecRequest, ExecSession, ExecSync, Mount,
    MountSource, PodRef, RegistryAuth, Runtime, RuntimeError, SandboxConfig, SandboxState, SandboxStatus, LABEL_CONTAINER_NAME,
    LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};
use crate::crilog::{self, Stream};

/// Which agent owns a container or sandbox: the node's name.
pub const LABEL_NODE: &str = "tinykube.io/node";
/// `podsandbox` or `container`, dockershim's `io.kubernetes.docker.type`.
pub const LABEL_TYPE: &str = "io.kubernetes.docker.type";
/// The attempt (restart count) of a container or sandbox.
const LABEL_ATTEMPT: &str = "tinykube.io/attempt";
/// Where the container's CRI log file is, as dockershim's label said.
const LABEL_LOG_PATH: &str = "io.kubernetes.container.logpath";
/// The image as the pod spec named it (the engine only keeps its id).
const LABEL_IMAGE: &str = "tinykube.io/image";

const TYPE_SANDBOX: &str = "podsandbox";
const TYPE_CONTAINER: &str = "container";

/// How long any one engine call may take. A stop waits out the grace
/// period inside the call, so this is generous.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(900);
/// How long a Docker Engine gets to answer when the agent looks for one.
const DETECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How soon a broken event stream is opened again.
const EVENTS_RETRY: Duration = Duration::from_secs(1);

/// Connects to the Docker Engine that `DOCKER_HOST` (else the default
/// socket) names and agrees on an API version; `Err` says why there is
/// none. The agent's default runtime is `docker` exactly when this works.
pub async fn connect() -> Result<(Docker, String), String> {
    let docker = Docker::connect_with_defaults().map_err(|e| e.to_string())?;
    let negotiated = tokio::time::timeout(DETECT_TIMEOUT, docker.negotiate_version())
        .await
        .map_err(|_| format!("no answer from the Docker Engine within {DETECT_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let version = tokio::time::timeout(DETECT_TIMEOUT, negotiated.version())
        .await
        .map_err(|_| format!("no answer from the Docker Engine within {DETECT_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let docker = negotiated.with_timeout(ENGINE_TIMEOUT);
    Ok((docker, version.version.unwrap_or_else(|| "unknown".into())))
}

/// How the docker runtime is set up for one node.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    pub node_name: String,
    /// The node's pod range: the subnet of its bridge network.
    pub pod_cidr: String,
    /// The binary the sandbox image is made of: `tinykube` itself.
    pub pause_binary: PathBuf,
}

/// The docker runtime; see the module docs.
pub struct DockerRuntime {
    docker: Docker,
    engine_version: String,
    config: DockerConfig,
    network: String,
    /// Built on first use; `None` until then.
    pause_image: tokio::sync::Mutex<Option<String>>,
    /// Whether the engine may lower a container's `oom_score_adj` below 0
    /// (it needs CAP_SYS_RESOURCE, which a Docker Engine inside a container
    /// may lack); learned with the pause image.
    negative_oom_score_adj: std::sync::atomic::AtomicBool,
    /// What the runtime knows of each of its containers, kept fresh by
    /// the event stream and by its own calls.
    cache: Mutex<HashMap<String, ContainerStatus>>,
    /// One log copier per container that may still write output.
    copiers: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    events: broadcast::Sender<ContainerEvent>,
    closed: CancellationToken,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("engine", &self.engine_version)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

impl Drop for DockerRuntime {
    fn drop(&mut self) {
        // Stops the event stream and the log copiers; the containers run on.
        self.closed.cancel();
    }
}

/// The engine's own words for an error, without bollard's wrapping.
fn engine_message(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError { message, .. } => message.clone(),
        E::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

fn engine(e: bollard::errors::Error) -> RuntimeError {
    RuntimeError::Engine(engine_message(&e))
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// Docker's names may hold `[a-zA-Z0-9_.-]`; pod and namespace names
/// already do.
fn sandbox_name(pod: &PodRef, attempt: i32) -> String {
    format!("k8s_POD_{}_{}_{}_{attempt}", pod.name, pod.namespace, pod.uid)
}

fn container_name(pod: &PodRef, name: &str, attempt: i32) -> String {
    format!("k8s_{name}_{}_{}_{}_{attempt}", pod.name, pod.namespace, pod.uid)
}

/// A time the engine reports, `None` for its zero time.
fn engine_time(t: Option<&str>) -> Option<jiff::Timestamp> {
    t.and_then(|t| t.parse::<jiff::Timestamp>().ok()).filter(|t| t.as_second() > 0)
}

fn label_filter(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), pairs.iter().map(|(k, v)| format!("{k}={v}")).collect())])
}

/// The pod a labelled object belongs to.
fn pod_of(labels: &HashMap<String, String>) -> PodRef {
    let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
    PodRef { namespace: get(LABEL_POD_NAMESPACE), name: get(LABEL_POD_NAME), uid: get(LABEL_POD_UID) }
}

fn attempt_of(labels: &HashMap<String, String>) -> i32 {
    labels.get(LABEL_ATTEMPT).and_then(|a| a.parse().ok()).unwrap_or(0)
}

/// A container's status from the engine's `inspect`.
fn status_from(inspect: &ContainerInspectResponse) -> ContainerStatus {
    let id = inspect.id.clone().unwrap_or_default();
    let labels = inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
    let state = inspect.state.clone().unwrap_or_default();
    let error = state.error.clone().unwrap_or_default();
    let exit_code = state.exit_code.map(|c| c as i32);
    let (state_now, reason, message, code) = match state.status {
        Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::PAUSED | ContainerStateStatusEnum::RESTARTING) => {
            (ContainerState::Running, String::new(), String::new(), None)
        }
        // A container the engine could not start stays `created` with an
        // error: the kubelet reports it as a StartError with exit code 128.
        Some(ContainerStateStatusEnum::CREATED) if !error.is_empty() => (ContainerState::Exited, "StartError".into(), error, Some(128)),
        Some(ContainerStateStatusEnum::CREATED) => (ContainerState::Created, String::new(), String::new(), None),
        _ => {
            let reason = if state.oom_killed == Some(true) {
                "OOMKilled"
            } else if !error.is_empty() {
                "StartError"
            } else if exit_code == Some(0) {
                "Completed"
            } else {
                "Error"
            };
            (ContainerState::Exited, reason.to_string(), error, exit_code)
        }
    };
    ContainerStatus {
        uri: format!("docker://{id}"),
        id,
        pod: pod_of(&labels),
        name: labels.get(LABEL_CONTAINER_NAME).cloned().unwrap_or_default(),
        attempt: attempt_of(&labels),
        image: labels.get(LABEL_IMAGE).cloned().unwrap_or_default(),
        image_ref: inspect.image.clone().map(|i| format!("docker://{i}")).unwrap_or_default(),
        state: state_now,
        pid: state.pid.filter(|p| *p > 0).and_then(|p| u32::try_from(p).ok()),
        started_at: engine_time(state.started_at.as_deref()),
        finished_at: if state_now == ContainerState::Exited { engine_time(state.finished_at.as_deref()) } else { None },
        exit_code: code,
        reason,
        message,
        log_path: labels.get(LABEL_LOG_PATH).map(PathBuf::from).unwrap_or_default(),
    }
}

/// The registry an image reference names: its first path component when
/// that looks like a host (has a `.` or a `:`, or is `localhost`), else
/// Docker Hub — the engine's own rule.
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// Whether a `.dockerconfigjson` server entry (`https://host/v1/`, `host`)
/// names `registry`.
fn auth_matches(server: &str, registry: &str) -> bool {
    let host = server.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    host == registry || (registry == "docker.io" && matches!(host, "index.docker.io" | "registry-1.docker.io"))
}

/// The files the pause image needs: the binary and every shared object it
/// runs with (the running process's own mappings name them exactly).
fn pause_files(binary: &Path) -> std::io::Result<Vec<PathBuf>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut files: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && (p.contains(".so")))
        .map(PathBuf::from)
        .collect();
    // The dynamic loader at the path the binary names (the mappings show
    // where its symlink leads instead).
    files.extend(interpreter_of(binary)?.map(PathBuf::from));
    files.sort();
    files.dedup();
    files.insert(0, binary.to_path_buf());
    Ok(files)
}

/// The program interpreter of the ELF file at `path`, read from its first
/// 64 KiB, where linkers put the headers and the interpreter's name; the
/// whole file is read only when they are not there. (Reading all of a
/// binary of tens of MB costs the agent that much memory, which the
/// allocator then keeps.)
fn interpreter_of(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    const HEAD: u64 = 64 * 1024;
    let mut head = Vec::new();
    std::fs::File::open(path)?.take(HEAD).read_to_end(&mut head)?;
    match interpreter(&head) {
        Some(found) => Ok(Some(found)),
        None if head.len() as u64 == HEAD => Ok(interpreter(&std::fs::read(path)?)),
        None => Ok(None),
    }
}

/// The program interpreter (`PT_INTERP`) a 64-bit little-endian ELF file
/// names, e.g. `/lib64/ld-linux-x86-64.so.2`; `None` for a static binary.
fn interpreter(elf: &[u8]) -> Option<String> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    if elf.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let (phoff, phentsize, phnum) = (usize::try_from(u64_at(0x20)?).ok()?, usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    (0..phnum).find_map(|i| {
        let ph = phoff + i * phentsize;
        const PT_INTERP: u32 = 3;
        if u32_at(ph)? != PT_INTERP {
            return None;
        }
        let (offset, size) = (usize::try_from(u64_at(ph + 8)?).ok()?, usize::try_from(u64_at(ph + 32)?).ok()?);
        let raw = elf.get(offset..offset + size)?;
        Some(String::from_utf8_lossy(raw).trim_end_matches('\0').to_string())
    })
}

/// The build context of the pause image: a Dockerfile and the files, the
/// binary at `/tinykube`, each library at its own path.
fn pause_context(binary: &Path) -> std::io::Result<Vec<u8>> {
    let files = pause_files(binary)?;
    // Sized up front (each entry: its data, a header, padding, maybe a long
    // name): grown by doubling, the buffer would reach twice the binary's size.
    let size: u64 = files.iter().map(|f| std::fs::metadata(f).map_or(0, |m| m.len()) + 2048).sum::<u64>() + 4096;
    let mut tar = tar::Builder::new(Vec::with_capacity(usize::try_from(size).unwrap_or(0)));
    tar.follow_symlinks(true);
    // The classic builder cannot read GNU sparse entries.
    tar.sparse(false);
    let dockerfile = b"FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/tinykube\", \"pause\"]\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", &dockerfile[..])?;
    for (i, file) in files.iter().enumerate() {
        let inside =
            if i == 0 { PathBuf::from("rootfs/tinykube") } else { Path::new("rootfs").join(file.strip_prefix("/").unwrap_or(file)) };
        tar.append_path_with_name(file, inside)?;
    }
    tar.into_inner()
}

/// The pause image's tag: it changes whenever the binary does, so a new
/// build of `tinykube` gets a matching image.
fn pause_tag(binary: &Path) -> String {
    let meta = std::fs::metadata(binary).ok();
    let size = meta.as_ref().map_or(0, |m| m.len());
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("tinykube/pause:{}-{:x}", env!("CARGO_PKG_VERSION"), (u128::from(size) << 64) ^ mtime)
}

impl DockerRuntime {
    /// Opens the runtime for a node: makes (or finds) the node's bridge
    /// network, learns the containers a previous agent left, resumes their
    /// log copiers, and follows the engine's events.
    pub async fn open(docker: Docker, engine_version: String, config: DockerConfig) -> Result<Arc<Self>, RuntimeError> {
        let network = format!("tinykube-{}", config.node_name);
        let (events, _) = broadcast::channel(1024);
        let runtime = Arc::new(DockerRuntime {
            docker,
            engine_version,
            network,
            config,
            pause_image: tokio::sync::Mutex::new(None),
            negative_oom_score_adj: std::sync::atomic::AtomicBool::new(true),
            cache: Mutex::new(HashMap::new()),
            copiers: Mutex::new(HashMap::new()),
            events,
            closed: CancellationToken::new(),
        });
        runtime.ensure_network().await?;
        runtime.load().await?;
        tokio::spawn(Self::follow_events(Arc::downgrade(&runtime), runtime.closed.clone()));
        Ok(runtime)
    }

    /// The node's bridge network, made when missing. A network of that
    /// name with another subnet is an error the user must resolve: its
    /// pods' addresses would not be where `--pod-cidr` says.
    async fn ensure_network(&self) -> Result<(), RuntimeError> {
        let options = ListNetworksOptions { filters: Some(HashMap::from([("name".to_string(), vec![self.network.clone()])])) };
        let found = self.docker.list_networks(Some(options)).await.map_err(engine)?;
        if let Some(existing) = found.iter().find(|n| n.name.as_deref() == Some(self.network.as_str())) {
            let subnets: Vec<String> =
                existing.ipam.as_ref().and_then(|i| i.config.clone()).unwrap_or_default().into_iter().filter_map(|c| c.subnet).collect();
            if !subnets.contains(&self.config.pod_cidr) {
                return Err(RuntimeError::InvalidConfig(format!(
                    "docker network {} exists with subnet {} but this node's pod range is {}; remove the network (docker network rm {}) or pass --pod-cidr {}",
                    self.network,
                    subnets.join(","),
                    self.config.pod_cidr,
                    self.network,
                    subnets.first().cloned().unwrap_or_default()
                )));
            }
            return Ok(());
        }
        let request = NetworkCreateRequest {
            name: self.network.clone(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig { subnet: Some(self.config.pod_cidr.clone()), ..Default::default() }]),
                ..Default::default()
            }),
            labels: Some(HashMap::from([(LABEL_NODE.to_string(), self.config.node_name.clone())])),
            ..Default::default()
        };
        self.docker.create_network(request).await.map_err(|e| {
            RuntimeError::InvalidConfig(format!(
                "cannot create docker network {} with subnet {}: {}",
                self.network,
                self.config.pod_cidr,
                engine_message(&e)
            ))
        })?;
        tracing::info!(network = %self.network, subnet = %self.config.pod_cidr, "created the node's pod network");
        Ok(())
    }

    /// Fills the cache with every container of this node and starts a log
    /// copier for each (one whose container already ended copies what is
    /// left and stops).
    async fn load(self: &Arc<Self>) -> Result<(), RuntimeError> {
        let node = self.config.node_name.clone();
        let filters = label_filter(&[(LABEL_NODE, &node), (LABEL_TYPE, TYPE_CONTAINER)]);
        let listed = self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
            .await
            .map_err(engine)?;
        for summary in listed {
            let Some(id) = summary.id else { continue };
            if let Ok(status) = self.inspect(&id).await {
                if status.is_running() {
                    tracing::info!(pod = %format!("{}/{}", status.pod.namespace, status.pod.name), container = %status.name, id = %&id[..12.min(id.len())],
                        "adopting a container left running by a previous agent");
                }
                self.spawn_copier(&status);
            }
        }
        Ok(())
    }

    /// Creates a container named `name`. One of that name already there
    /// (the engine answers 409) is removed and the create made again: a
    /// remove before every create would cost an engine call per container.
    async fn create_named(&self, name: String, body: ContainerCreateBody) -> Result<ContainerCreateResponse, bollard::errors::Error> {
        let options = || Some(CreateContainerOptions { name: Some(name.clone()), ..Default::default() });
        match self.docker.create_container(options(), body.clone()).await {
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                let _ = self.docker.remove_container(&name, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
                self.docker.create_container(options(), body).await
            }
            other => other,
        }
    }

    /// Inspects a container and refreshes its cache entry.
    async fn inspect(&self, id: &str) -> Result<ContainerStatus, RuntimeError> {
        match self.docker.inspect_container(id, None::<InspectContainerOptions>).await {
            Ok(inspect) => {
                let status = status_from(&inspect);
                self.lock_cache().insert(status.id.clone(), status.clone());
                Ok(status)
            }
            Err(e) if is_not_found(&e) => {
                self.lock_cache().remove(id);
                Err(RuntimeError::NotFound(id.to_string()))
            }
            Err(e) => Err(engine(e)),
        }
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, ContainerStatus>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows the engine's container events for this node until the
    /// runtime closes, refreshing the cache and telling the agent.
    async fn follow_events(runtime: std::sync::Weak<Self>, closed: CancellationToken) {
        let mut since: Option<i64> = None;
        loop {
            let Some(rt) = runtime.upgrade() else { return };
            let mut filters = label_filter(&[(LABEL_NODE, &rt.config.node_name)]);
            filters.insert("type".into(), vec!["container".into()]);
            filters.insert("event".into(), vec!["start".into(), "die".into(), "oom".into(), "destroy".into()]);
            let options = EventsOptions { since: since.map(|s| s.to_string()), filters: Some(filters), ..Default::default() };
            let mut stream = rt.docker.events(Some(options));
            drop(rt);
            loop {
                let next = tokio::select! {
                    _ = closed.cancelled() => return,
                    next = stream.next() => next,
                };
                let Some(Ok(event)) = next else { break };
                since = event.time.or(since);
                let Some(rt) = runtime.upgrade() else { return };
                let actor = event.actor.unwrap_or_default();
                let (Some(id), attributes) = (actor.id, actor.attributes.unwrap_or_default()) else { continue };
                if attributes.get(LABEL_TYPE).map(String::as_str) == Some(TYPE_CONTAINER) {
                    let _ = rt.inspect(&id).await;
                }
                let pod_uid = attributes.get(LABEL_POD_UID).cloned().unwrap_or_default();
                let _ = rt.events.send(ContainerEvent { pod_uid, container_id: id });
            }
            tokio::select! {
                _ = closed.cancelled() => return,
                _ = tokio::time::sleep(EVENTS_RETRY) => {}
            }
        }
    }

    /// Starts the log copier of a container unless one runs.
    fn spawn_copier(&self, status: &ContainerStatus) {
        if status.log_path.as_os_str().is_empty() {
            return;
        }
        let mut copiers = self.copiers.lock().unwrap_or_else(|p| p.into_inner());
        if copiers.get(&status.id).is_some_and(|h| !h.is_finished()) {
            return;
        }
        let (docker, id, path, closed) = (self.docker.clone(), status.id.clone(), status.log_path.clone(), self.closed.clone());
        let task = tokio::spawn(async move {
            tokio::select! {
                _ = closed.cancelled() => {}
                result = copy_logs(docker, id.clone(), path) => if let Err(e) = result {
                    tracing::warn!(container = %id, error = %e, "cannot copy container logs");
                }
            }
        });
        copiers.insert(status.id.clone(), task);
    }

    /// The sandbox image, built on first use (see the module docs).
    async fn pause_image(&self) -> Result<String, RuntimeError> {
        let mut image = self.pause_image.lock().await;
        if let Some(image) = image.as_ref() {
            return Ok(image.clone());
        }
        let tag = pause_tag(&self.config.pause_binary);
        if self.image_status(&tag).await?.is_none() {
            tracing::info!(image = %tag, "building the pod sandbox image from this binary");
            let context = pause_context(&self.config.pause_binary)?;
            let options =
                BuildImageOptions { t: Some(tag.clone()), dockerfile: "Dockerfile".into(), rm: true, forcerm: true, ..Default::default() };
            let mut build = self.docker.build_image(options, None, Some(bollard::body_full(context.into())));
            while let Some(step) = build.next().await {
                match step {
                    Ok(info) if info.error_detail.is_some() => {
                        let message = info.error_detail.and_then(|d| d.message).unwrap_or_default();
                        return Err(RuntimeError::Engine(format!("cannot build the sandbox image {tag}: {message}")));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(RuntimeError::Engine(format!("cannot build the sandbox image {tag}: {}", engine_message(&e)))),
                }
            }
        }
        self.check_negative_oom_score_adj(&tag).await;
        *image = Some(tag.clone());
        Ok(tag)
    }

    /// Starts a throw-away pause container with a negative `oom_score_adj`
    /// to learn whether the engine may set one.
    async fn check_negative_oom_score_adj(&self, image: &str) {
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            labels: Some(HashMap::from([(LABEL_NODE.to_string(), self.config.node_name.clone())])),
            host_config: Some(HostConfig { oom_score_adj: Some(-998), network_mode: Some("none".into()), ..Default::default() }),
            ..Default::default()
        };
        let Ok(created) = self.docker.create_container(None::<CreateContainerOptions>, body).await else { return };
        let allowed = self.docker.start_container(&created.id, None).await.is_ok();
        let _ = self.docker.remove_container(&created.id, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
        if !allowed {
            tracing::warn!("this Docker Engine may not lower a container's oom_score_adj (it lacks CAP_SYS_RESOURCE): Guaranteed containers and sandboxes run with 0 instead");
        }
        self.negative_oom_score_adj.store(allowed, std::sync::atomic::Ordering::Relaxed);
    }

    /// The OOM score adjustment the engine can apply.
    fn oom_score_adj(&self, wanted: i32) -> i64 {
        let allowed = self.negative_oom_score_adj.load(std::sync::atomic::Ordering::Relaxed);
        i64::from(if allowed { wanted } else { wanted.max(0) })
    }

    /// The labels of every object this runtime makes for a pod.
    fn labels(&self, pod: &PodRef, kind: &str, attempt: i32) -> HashMap<String, String> {
        let mut labels: HashMap<String, String> = super::labels(pod, None).into_iter().collect();
        labels.insert(LABEL_NODE.into(), self.config.node_name.clone());
        labels.insert(LABEL_TYPE.into(), kind.into());
        labels.insert(LABEL_ATTEMPT.into(), attempt.to_string());
        labels
    }

    /// Makes the pod-wide tmpfs volumes a container's mounts name.
    async fn ensure_memory_volume(&self, pod: &PodRef, name: &str, size_limit: Option<u64>) -> Result<String, RuntimeError> {
        let volume = format!("tinykube-{name}");
        let mut opts = HashMap::from([("type".to_string(), "tmpfs".to_string()), ("device".to_string(), "tmpfs".to_string())]);
        if let Some(size) = size_limit {
            opts.insert("o".into(), format!("size={size}"));
        }
        let request = VolumeCreateRequest {
            name: Some(volume.clone()),
            driver: Some("local".into()),
            driver_opts: Some(opts),
            labels: Some(self.labels(pod, "volume", 0)),
            ..Default::default()
        };
        // Creating an existing volume with the same options is a no-op.
        self.docker.create_volume(request).await.map_err(engine)?;
        Ok(volume)
    }

    async fn engine_mounts(&self, pod: &PodRef, mounts: &[Mount]) -> Result<Vec<bollard::models::Mount>, RuntimeError> {
        let mut out = Vec::new();
        for m in mounts {
            let (typ, source) = match &m.source {
                MountSource::HostPath(path) => (MountType::BIND, path.display().to_string()),
                MountSource::Memory { name, size_limit } => (MountType::VOLUME, self.ensure_memory_volume(pod, name, *size_limit).await?),
            };
            out.push(bollard::models::Mount {
                target: Some(m.container_path.clone()),
                source: Some(source),
                typ: Some(typ),
                read_only: Some(m.read_only),
                ..Default::default()
            });
        }
        Ok(out)
    }

    /// Runs an exec attached and returns its id and streams.
    async fn start_exec(&self, id: &str, request: &ExecRequest) -> Result<(String, bollard::exec::StartExecResults), RuntimeError> {
        let config = ExecConfig {
            cmd: Some(request.command.clone()),
            attach_stdin: Some(request.stdin),
            attach_stdout: Some(request.stdout || request.tty),
            attach_stderr: Some(request.stderr || request.tty),
            tty: Some(request.tty),
            ..Default::default()
        };
        let created = self.docker.create_exec(id, config).await.map_err(engine)?;
        let options = bollard::exec::StartExecOptions { detach: false, tty: request.tty, output_capacity: None };
        let started = self.docker.start_exec(&created.id, Some(options)).await.map_err(engine)?;
        Ok((created.id, started))
    }

    /// An exec's exit code, once it has one.
    async fn exec_exit(&self, exec_id: &str) -> Result<i32, RuntimeError> {
        for _ in 0..50 {
            let inspect = self.docker.inspect_exec(exec_id).await.map_err(engine)?;
            if inspect.running != Some(true) {
                return Ok(inspect.exit_code.map_or(-1, |c| c as i32));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(RuntimeError::Engine(format!("exec {exec_id} has no exit code")))
    }
}

/// Follows a container's output and appends it to `path` as CRI records,
/// skipping what an earlier copier already wrote; returns when the
/// container's output ends.
async fn copy_logs(docker: Docker, id: String, path: PathBuf) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let written = last_record_time(&path).await;
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        timestamps: true,
        // Whole seconds only; records at or before `written` are dropped below.
        since: written.map_or(0, |t| i32::try_from(t.as_second()).unwrap_or(0)),
        ..Default::default()
    };
    let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await?;
    let mut stream = docker.logs(&id, Some(options));
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let (stream_kind, message) = match chunk {
            Ok(bollard::container::LogOutput::StdOut { message }) | Ok(bollard::container::LogOutput::Console { message }) => {
                (Stream::Stdout, message)
            }
            Ok(bollard::container::LogOutput::StdErr { message }) => (Stream::Stderr, message),
            Ok(_) => continue,
            Err(e) => return Err(std::io::Error::other(engine_message(&e))),
        };
        // `<RFC 3339 nano> <content>`, as the engine writes with timestamps.
        let Some(space) = message.iter().position(|b| *b == b' ') else { continue };
        let Ok(time) = std::str::from_utf8(&message[..space]).unwrap_or_default().parse::<jiff::Timestamp>() else { continue };
        if written.is_some_and(|w| time <= w) {
            continue;
        }
        let content = &message[space + 1..];
        let (content, full) = match content.strip_suffix(b"\n") {
            Some(line) => (line, true),
            None => (content, false),
        };
        buf.clear();
        crilog::encode(&mut buf, time, stream_kind, full, content);
        file.write_all(&buf).await?;
    }
    file.flush().await
}

/// The time of the last record in a CRI log file.
async fn last_record_time(path: &Path) -> Option<jiff::Timestamp> {
    let data = tokio::fs::read(path).await.ok()?;
    let last = data.split(|b| *b == b'\n').rev().find(|l| !l.is_empty())?;
    let record = crilog::parse(last)?;
    Some(record.time)
}

#[async_trait::async_trait]
impl Runtime for DockerRuntime {
    fn version(&self) -> String {
        format!("docker://{}", self.engine_version)
    }

    async fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<String, RuntimeError> {
        let image = self.pause_image().await?;
        let name = sandbox_name(&config.pod, config.attempt);
        let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for p in &config.port_mappings {
            let key = format!("{}/{}", p.container_port, p.protocol.to_ascii_lowercase());
            let binding =
                PortBinding { host_ip: Some(p.host_ip.clone()).filter(|h| !h.is_empty()), host_port: Some(p.host_port.to_string()) };
            port_bindings.entry(key).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(binding);
        }
        let network_mode = if config.host_network { "host".to_string() } else { self.network.clone() };
        let body = ContainerCreateBody {
            image: Some(image),
            hostname: Some(config.hostname.clone()).filter(|_| !config.host_network),
            labels: Some(self.labels(&config.pod, TYPE_SANDBOX, config.attempt)),
            exposed_ports: Some(port_bindings.keys().cloned().collect()).filter(|p: &Vec<String>| !p.is_empty()),
            host_config: Some(HostConfig {
                network_mode: Some(network_mode.clone()),
                port_bindings: Some(port_bindings).filter(|p| !p.is_empty()),
                // The pod's containers join its IPC namespace too.
                ipc_mode: Some("shareable".into()),
                // The pause container is the last to be OOM-killed.
                oom_score_adj: Some(self.oom_score_adj(-998)),
                ..Default::default()
            }),
            networking_config: (!config.host_network)
                .then(|| NetworkingConfig { endpoints_config: Some(HashMap::from([(network_mode, EndpointSettings::default())])) }),
            ..Default::default()
        };
        // A sandbox of this attempt left behind (a crash between create and
        // start) is replaced.
        let created = self.create_named(name, body).await.map_err(engine)?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            let _ = self.docker.remove_container(&created.id, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
            return Err(engine(e));
        }
        Ok(created.id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        match self.docker.stop_container(id, Some(StopContainerOptions { t: Some(0), ..Default::default() })).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let pod = match self.pod_sandbox_status(id).await {
            Ok(s) => Some(s.pod),
            Err(RuntimeError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        match self.docker.remove_container(id, Some(RemoveContainerOptions { force: true, ..Default::default() })).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine(e)),
        }
        // The pod's memory-backed emptyDirs go with it.
        if let Some(pod) = pod {
            let filters = label_filter(&[(LABEL_NODE, &self.config.node_name), (LABEL_POD_UID, &pod.uid)]);
            let volumes = self.docker.list_volumes(Some(ListVolumesOptions { filters: Some(filters) })).await.map_err(engine)?;
            for v in volumes.volumes.unwrap_or_default() {
                if let Err(e) = self.docker.remove_volume(&v.name, Some(RemoveVolumeOptions { force: true })).await {
                    tracing::warn!(volume = %v.name, error = %engine_message(&e), "cannot remove a pod's memory volume");
                }
            }
        }
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<SandboxStatus, RuntimeError> {
        let inspect = match self.docker.inspect_container(id, None::<InspectContainerOptions>).await {
            Ok(i) => i,
            Err(e) if is_not_found(&e) => return Err(RuntimeError::NotFound(id.to_string())),
            Err(e) => return Err(engine(e)),
        };
        let labels = inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        let running = inspect.state.as_ref().and_then(|s| s.running) == Some(true);
        let ip = inspect
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .and_then(|n| n.get(&self.network))
            .and_then(|e| e.ip_address.clone())
            .filter(|ip| !ip.is_empty());
        Ok(SandboxStatus {
            id: inspect.id.clone().unwrap_or_else(|| id.to_string()),
            pod: pod_of(&labels),
            attempt: attempt_of(&labels),
            state: if running { SandboxState::Ready } else { SandboxState::NotReady },
            ip,
        })
    }

    async fn list_pod_sandboxes(&self) -> Vec<SandboxStatus> {
        let filters = label_filter(&[(LABEL_NODE, &self.config.node_name), (LABEL_TYPE, TYPE_SANDBOX)]);
        let listed = match self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
            .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %engine_message(&e), "cannot list pod sandboxes");
                return Vec::new();
            }
        };
        // The list carries each sandbox's labels, state and addresses: no
        // inspect per sandbox (every new pod's worker lists them all once).
        listed
            .into_iter()
            .filter_map(|s| {
                let labels = s.labels.unwrap_or_default();
                // As `inspect`'s `running`, which is also true while paused or restarting.
                let running = matches!(
                    s.state,
                    Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::PAUSED | ContainerSummaryStateEnum::RESTARTING)
                );
                let ip = s
                    .network_settings
                    .and_then(|n| n.networks)
                    .and_then(|mut n| n.remove(&self.network))
                    .and_then(|e| e.ip_address)
                    .filter(|ip| !ip.is_empty());
                Some(SandboxStatus {
                    id: s.id?,
                    pod: pod_of(&labels),
                    attempt: attempt_of(&labels),
                    state: if running { SandboxState::Ready } else { SandboxState::NotReady },
                    ip,
                })
            })
            .collect()
    }

    async fn image_status(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(Some(format!("docker://{}", i.id.unwrap_or_default()))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine(e)),
        }
    }

    async fn pull_image(&self, image: &str, auths: &[RegistryAuth]) -> Result<String, RuntimeError> {
        let registry = registry_of(image);
        let credentials = auths.iter().find(|a| auth_matches(&a.server, registry)).map(|a| bollard::auth::DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(a.server.clone()),
            ..Default::default()
        });
        // Without a tag the engine pulls every tag; Kubernetes means `latest`.
        let reference = if image.contains('@') || image.rsplit('/').next().is_some_and(|last| last.contains(':')) {
            image.to_string()
        } else {
            format!("{image}:latest")
        };
        let options = CreateImageOptions { from_image: Some(reference), ..Default::default() };
        let mut pull = self.docker.create_image(Some(options), None, credentials);
        while let Some(step) = pull.next().await {
            if let Err(e) = step {
                return Err(RuntimeError::Engine(format!("Error response from daemon: {}", engine_message(&e))));
            }
        }
        self.image_status(image)
            .await?
            .ok_or_else(|| RuntimeError::Engine(format!("image {image} is not present after its pull")))
    }

    async fn create_container(&self, config: ContainerConfig) -> Result<String, RuntimeError> {
        let mut labels = self.labels(&config.pod, TYPE_CONTAINER, config.attempt);
        labels.insert(LABEL_CONTAINER_NAME.into(), config.name.clone());
        labels.insert(LABEL_LOG_PATH.into(), config.log_path.display().to_string());
        labels.insert(LABEL_IMAGE.into(), config.image.clone());
        let r = &config.resources;
        let s = &config.security;
        let user = match (s.run_as_user, s.run_as_group) {
            (Some(u), Some(g)) => Some(format!("{u}:{g}")),
            (Some(u), None) => Some(u.to_string()),
            // A group alone keeps the image's user.
            (None, Some(_)) | (None, None) => None,
        };
        let sandbox = format!("container:{}", config.sandbox_id);
        let body = ContainerCreateBody {
            image: Some(config.image.clone()),
            entrypoint: Some(config.command.clone()).filter(|c| !c.is_empty()),
            cmd: Some(config.args.clone()).filter(|c| !c.is_empty()),
            env: Some(config.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: config.working_dir.clone(),
            user,
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some(sandbox.clone()),
                ipc_mode: Some(sandbox),
                mounts: Some(self.engine_mounts(&config.pod, &config.mounts).await?),
                memory: r.memory_limit,
                // No swap beyond the limit, as the kubelet configures it.
                memory_swap: r.memory_limit,
                cpu_shares: r.cpu_shares,
                cpu_quota: r.cpu_quota,
                cpu_period: r.cpu_period,
                oom_score_adj: r.oom_score_adj.map(|adj| self.oom_score_adj(adj)),
                privileged: Some(s.privileged),
                readonly_rootfs: Some(s.read_only_root_filesystem),
                ..Default::default()
            }),
            ..Default::default()
        };
        if let Some(dir) = config.log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let name = container_name(&config.pod, &config.name, config.attempt);
        // An earlier try of this same attempt (created, never started) is replaced.
        let created = self.create_named(name, body).await.map_err(|e| RuntimeError::InvalidConfig(engine_message(&e)))?;
        self.inspect(&created.id).await?;
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let started = self.docker.start_container(id, None).await;
        let status = self.inspect(id).await?;
        // The copier reads the engine's log from the container's start, so
        // nothing printed before it attaches is lost.
        self.spawn_copier(&status);
        match started {
            Ok(()) => Ok(()),
            Err(e) => Err(RuntimeError::Start(engine_message(&e))),
        }
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let t = i32::try_from(grace.as_secs() + u64::from(grace.subsec_nanos() > 0)).unwrap_or(i32::MAX);
        match self.docker.stop_container(id, Some(StopContainerOptions { t: Some(t), ..Default::default() })).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => {}
            Err(e) => return Err(engine(e)),
        }
        let status = self.inspect(id).await?;
        if status.is_running() {
            return Err(RuntimeError::Unkillable(id.to_string()));
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        match self.docker.remove_container(id, Some(RemoveContainerOptions { force: true, ..Default::default() })).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine(e)),
        }
        self.lock_cache().remove(id);
        if let Some(task) = self.copiers.lock().unwrap_or_else(|p| p.into_inner()).remove(id) {
            task.abort();
        }
        Ok(())
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus, RuntimeError> {
        if let Some(cached) = self.lock_cache().get(id) {
            return Ok(cached.clone());
        }
        self.inspect(id).await
    }

    async fn list_containers(&self) -> Vec<ContainerStatus> {
        let mut all: Vec<ContainerStatus> = self.lock_cache().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    async fn log_path(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        Ok(self.container_status(id).await?.log_path)
    }

    async fn exec_sync(&self, id: &str, command: &[String], timeout: Duration, limit: usize) -> ExecSync {
        let request = ExecRequest { command: command.to_vec(), stdout: true, stderr: true, ..Default::default() };
        let run = async {
            let (exec_id, started) = self.start_exec(id, &request).await?;
            let mut output = Vec::new();
            if let bollard::exec::StartExecResults::Attached { output: mut stream, .. } = started {
                while let Some(Ok(chunk)) = stream.next().await {
                    let bytes = chunk.into_bytes();
                    let room = limit.saturating_sub(output.len());
                    output.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
            }
            let code = self.exec_exit(&exec_id).await?;
            Ok::<_, RuntimeError>(ExecSync::Exited { code, output })
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => ExecSync::NotStarted(e.to_string()),
            Err(_) => ExecSync::TimedOut,
        }
    }

    async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecSession, RuntimeError> {
        let (exec_id, started) = self.start_exec(id, &request).await?;
        let bollard::exec::StartExecResults::Attached { output: mut stream, input: mut stdin } = started else {
            return Err(RuntimeError::Engine("the engine did not attach to the exec".into()));
        };
        let (input_tx, mut input) = mpsc::channel(16);
        let (tx, output) = mpsc::channel(16);
        let docker = self.docker.clone();
        let tty = request.tty;
        tokio::spawn(async move {
            let mut input_open = true;
            loop {
                tokio::select! {
                    chunk = stream.next() => match chunk {
                        Some(Ok(bollard::container::LogOutput::StdErr { message })) if !tty => {
                            if tx.send(ExecOutput::Stderr(message.to_vec())).await.is_err() { return }
                        }
                        Some(Ok(other)) => {
                            if tx.send(ExecOutput::Stdout(other.into_bytes().to_vec())).await.is_err() { return }
                        }
                        Some(Err(_)) | None => break,
                    },
                    message = input.recv(), if input_open => match message {
                        Some(ExecInput::Stdin(bytes)) => { let _ = stdin.write_all(&bytes).await; let _ = stdin.flush().await; }
                        Some(ExecInput::CloseStdin) | None => { input_open = false; let _ = stdin.shutdown().await; }
                        Some(ExecInput::Resize { width, height }) => {
                            let size = bollard::exec::ResizeExecOptions { width, height };
                            let _ = docker.resize_exec(&exec_id, size).await;
                        }
                    },
                    _ = tx.closed() => return,
                }
            }
            let mut code = -1;
            for _ in 0..50 {
                match docker.inspect_exec(&exec_id).await {
                    Ok(i) if i.running != Some(true) => {
                        code = i.exit_code.map_or(-1, |c| c as i32);
                        break;
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(_) => break,
                }
            }
            let _ = tx.send(ExecOutput::Exit { code, error: String::new() }).await;
        });
        Ok(ExecSession { input: input_tx, output })
    }

    fn subscribe(&self) -> broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }
}

/// `tinykube pause`, the sandbox's only process: as PID 1 of its
/// container it gets no default signal handling, so it waits for SIGTERM
/// or SIGINT itself and exits 0 on either.
pub fn pause() -> i32 {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_io().build() else { return 1 };
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else { return 1 };
        tokio::select! {
            _ = term.recv() => 0,
            _ = int.recv() => 0,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_found_as_the_engine_finds_them() {
        for (image, want) in [
            ("busybox", "docker.io"),
            ("library/busybox:1", "docker.io"),
            ("tinykube.local/busybox:1", "tinykube.local"),
            ("127.0.0.1:5999/missing:1", "127.0.0.1:5999"),
            ("localhost/x", "localhost"),
        ] {
            assert_eq!(registry_of(image), want, "{image}");
        }
        assert!(auth_matches("https://index.docker.io/v1/", "docker.io"));
        assert!(auth_matches("registry.example:5000", "registry.example:5000"));
        assert!(!auth_matches("other.example", "registry.example:5000"));
    }

    #[test]
    fn names_follow_dockershim() {
        let p = PodRef { namespace: "default".into(), name: "web".into(), uid: "u1".into() };
        assert_eq!(sandbox_name(&p, 0), "k8s_POD_web_default_u1_0");
        assert_eq!(container_name(&p, "app", 2), "k8s_app_web_default_u1_2");
    }

    #[test]
    fn the_pause_image_carries_the_binary_and_its_libraries() {
        let exe = std::env::current_exe().unwrap();
        let files = pause_files(&exe).unwrap();
        assert_eq!(files[0], exe);
        assert!(files.iter().any(|f| f.to_string_lossy().contains("libc.so")), "{files:?}");
        let named = interpreter(&std::fs::read(&exe).unwrap()).expect("a dynamically linked test binary");
        assert_eq!(interpreter_of(&exe).unwrap().as_deref(), Some(named.as_str()), "the head of the file names it too");
        assert!(files.contains(&PathBuf::from(&named)), "{named} in {files:?}");
    }
}
