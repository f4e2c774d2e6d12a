//! The container runtime interface, in the shape of Kubernetes' CRI.
//!
//! The kubelet never runs a process itself. It talks to a *container
//! runtime* (containerd, CRI-O) through the Container Runtime Interface, a
//! gRPC API with calls such as `CreateContainer`, `StartContainer`,
//! `StopContainer(timeout)`, `RemoveContainer`, `ContainerStatus` and
//! `ListContainers`. The kubelet decides *what* should run; the runtime only
//! does what it is told and reports what it sees.
//!
//! tinykube keeps that split as the [`Runtime`] trait, so the pod workers are
//! the same whichever runtime is underneath. Its three parts are CRI's:
//! - the *pod sandbox* (`RunPodSandbox`, `StopPodSandbox`,
//!   `RemovePodSandbox`, `PodSandboxStatus`): what the pod's containers
//!   share. With Docker it is a small infrastructure container (the
//!   "pause" container) that holds the pod's network namespace and IP;
//!   every container of the pod joins it, so they share `localhost` and
//!   ports;
//! - the *containers* (`CreateContainer`, `StartContainer`,
//!   `StopContainer(timeout)`, `RemoveContainer`, `ContainerStatus`,
//!   `ListContainers`, `ExecSync`, `Exec`);
//! - the *image service* (`ImageStatus`, `PullImage`); the policy of when
//!   to pull is the kubelet's own (see [`crate::images`]).
//!
//! Where tinykube simplifies: the trait is in-process rather than gRPC,
//! and instead of the kubelet's PLEG (Pod Lifecycle Event Generator)
//! relisting the runtime every second, a runtime here *pushes* a
//! [`ContainerEvent`] when a container changes state, and the agent wakes
//! the pod's worker.
//!
//! Runtimes:
//! - [`docker`]: real containers through the Docker Engine API.
//! - [`process`]: the container's command as a local process group,
//!   supervised by a shim (see [`crate::shim`]); the pod shares the host's
//!   network and the image is not used.
//! - `hollow` (simulated, for scale tests) is planned behind this same trait.

pub mod docker;
pub mod hostexec;
pub mod process;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

/// The pod a container belongs to: CRI's `PodSandboxMetadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// What the agent asks for when it runs a pod's sandbox: CRI's
/// `PodSandboxConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    pub pod: PodRef,
    /// Which sandbox of this pod this is (a pod whose sandbox died gets a
    /// new one, with every container started again).
    pub attempt: i32,
    /// The pod's hostname: `spec.hostname`, else its name.
    pub hostname: String,
    /// `hostNetwork: true`: no network namespace of its own.
    pub host_network: bool,
    /// Every `hostPort` the pod's containers ask for: the sandbox owns the
    /// network namespace, so it owns the port mappings too.
    pub port_mappings: Vec<PortMapping>,
}

/// One `hostPort` mapping: CRI's `PortMapping`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    pub container_port: u16,
    pub host_port: u16,
    /// Empty: every address of the host.
    pub host_ip: String,
}

/// A sandbox's state as CRI reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxState {
    Ready,
    NotReady,
}

/// What a runtime knows about one sandbox: CRI's `PodSandboxStatus`.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxStatus {
    pub id: String,
    pub pod: PodRef,
    pub attempt: i32,
    pub state: SandboxState,
    /// The pod's IP; `None` when the pod uses the host's network (then the
    /// pod's IP is the node's).
    pub ip: Option<String>,
}

/// One mount of a container: CRI's `Mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: MountSource,
    pub container_path: String,
    pub read_only: bool,
}

/// Where a mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A file or directory on the host, bind-mounted.
    HostPath(PathBuf),
    /// A tmpfs that every container of the pod shares (emptyDir with medium
    /// Memory); `name` is unique on the node (`<pod uid>-<volume name>`),
    /// `size_limit` in bytes from `sizeLimit`.
    Memory { name: String, size_limit: Option<u64> },
}

/// The kernel limits a container runs under: CRI's
/// `LinuxContainerResources`, computed by the kubelet from the container's
/// `resources` and the pod's QoS class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// cgroup `cpu.shares`: 1024 per requested cpu, at least 2.
    pub cpu_shares: Option<i64>,
    /// CFS quota per `cpu_period` microseconds: the cpu limit.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<i64>,
    /// The memory limit in bytes: above it the kernel's OOM killer ends the
    /// container (reported as `OOMKilled`).
    pub memory_limit: Option<i64>,
    /// `/proc/<pid>/oom_score_adj`: who the kernel kills first when the
    /// node runs out of memory (BestEffort pods before Guaranteed ones).
    pub oom_score_adj: Option<i32>,
}

/// The container's `securityContext`, resolved: CRI's
/// `LinuxContainerSecurityContext`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub privileged: bool,
    pub read_only_root_filesystem: bool,
}

/// What the agent asks a runtime to run: CRI's `ContainerConfig`, already
/// resolved (environment values looked up, `$(VAR)` references expanded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    pub pod: PodRef,
    /// The sandbox the container joins.
    pub sandbox_id: String,
    /// The container's name in the pod spec.
    pub name: String,
    /// Which run of this container this is: the pod status's `restartCount`.
    /// CRI calls it the attempt; it also names the log file.
    pub attempt: i32,
    /// The image as the pod spec names it.
    pub image: String,
    /// The container's `command`, expanded: replaces the image's entrypoint
    /// when set (empty: the image's own).
    pub command: Vec<String>,
    /// The container's `args`, expanded: replace the image's `CMD` when set.
    pub args: Vec<String>,
    /// The container's environment, in order (later entries win).
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub mounts: Vec<Mount>,
    pub resources: Resources,
    pub security: Security,
    /// Where stdout and stderr go, as CRI log records; chosen by the
    /// agent, as the kubelet chooses CRI's `LogPath`.
    pub log_path: PathBuf,
}

impl ContainerConfig {
    /// `command` followed by `args`: what runs when neither comes from an
    /// image (the process runtime has no image).
    pub fn argv(&self) -> Vec<String> {
        self.command.iter().chain(&self.args).cloned().collect()
    }
}

/// A container's lifecycle as CRI reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
}

/// What a runtime knows about one container: CRI's `ContainerStatus`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStatus {
    /// The runtime's id for this container (one per attempt).
    pub id: String,
    /// The id the pod status shows, `<runtime>://<id>`, as upstream's
    /// `containerID: containerd://3f2a...`.
    pub uri: String,
    pub pod: PodRef,
    pub name: String,
    pub attempt: i32,
    pub image: String,
    /// The runtime's reference for the image it ran, the pod status's
    /// `imageID` (`docker-pullable://busybox@sha256:...`, `process://...`).
    pub image_ref: String,
    pub state: ContainerState,
    /// The main process, while it runs (and after, for the record).
    pub pid: Option<u32>,
    pub started_at: Option<jiff::Timestamp>,
    pub finished_at: Option<jiff::Timestamp>,
    /// Set once exited; a process killed by signal N reports 128 + N, as a
    /// shell and Docker do.
    pub exit_code: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, `StartError` or
    /// `ContainerStatusUnknown`.
    pub reason: String,
    pub message: String,
    pub log_path: PathBuf,
}

impl ContainerStatus {
    pub fn is_running(&self) -> bool {
        self.state == ContainerState::Running
    }

    /// The id the pod status shows.
    pub fn container_id(&self) -> String {
        self.uri.clone()
    }
}

/// "Something happened to this container": the push-based stand-in for the
/// kubelet's PLEG events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub pod_uid: String,
    pub container_id: String,
}

/// Credentials for one registry, from the pod's `imagePullSecrets`
/// (CRI's `AuthConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The registry's host as the secret names it (`registry.example:5000`).
    pub server: String,
    pub username: String,
    pub password: String,
}

/// How an [`Runtime::exec_sync`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecSync {
    /// The command ran to its end: its exit code (128 + N when killed by
    /// signal N) and its stdout followed by its stderr.
    Exited { code: i32, output: Vec<u8> },
    /// It outlived its timeout and was killed.
    TimedOut,
    /// It could not be started; the text is the runtime's (runc's
    /// `exec: "foo": executable file not found in $PATH`).
    NotStarted(String),
}

/// What an interactive exec asks for: CRI's `ExecRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// A terminal was asked for: one output stream (stderr goes to stdout).
    pub tty: bool,
}

/// What the client sends into a running exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecInput {
    Stdin(Vec<u8>),
    CloseStdin,
    Resize { width: u16, height: u16 },
}

/// What a running exec sends back; [`ExecOutput::Exit`] is always last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The command's exit code (-1 with `error` when it never ran).
    Exit {
        code: i32,
        error: String,
    },
}

/// A running exec: CRI's streaming `Exec`. Dropping both ends before the
/// command exits kills it: nobody is listening any more.
#[derive(Debug)]
pub struct ExecSession {
    pub input: mpsc::Sender<ExecInput>,
    pub output: mpsc::Receiver<ExecOutput>,
}

/// A runtime's failures.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No container (or sandbox) has this id.
    #[error("container {0:?} not found")]
    NotFound(String),
    /// The config cannot be run by this runtime (upstream reports these as
    /// `CreateContainerError`).
    #[error("{0}")]
    InvalidConfig(String),
    /// The process could not be started (upstream: `StartError`).
    #[error("{0}")]
    Start(String),
    /// The container outlived SIGKILL (a process stuck in the kernel).
    #[error("container {0:?} did not exit after SIGKILL")]
    Unkillable(String),
    /// The container is not in a state that allows the call.
    #[error("container {id:?} is {state:?}")]
    WrongState { id: String, state: ContainerState },
    /// The container engine refused or failed a call; the text is its own.
    #[error("{0}")]
    Engine(String),
    /// Reading or writing the runtime's files failed.
    #[error("runtime I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The CRI-shaped interface between the agent and a container runtime.
///
/// Every method is idempotent where CRI's is: stopping a stopped container
/// or removing a removed one succeeds.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    /// `<name>://<version>`, reported as the Node's `containerRuntimeVersion`.
    fn version(&self) -> String;

    /// Creates and starts the pod's sandbox; returns its id. Its status
    /// carries the pod's IP.
    async fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<String, RuntimeError>;

    /// Stops the sandbox (and with it the pod's network); its containers
    /// must have been stopped first.
    async fn stop_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError>;

    /// Forgets the sandbox and whatever the runtime made for it.
    async fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError>;

    async fn pod_sandbox_status(&self, id: &str) -> Result<SandboxStatus, RuntimeError>;

    /// Every sandbox the runtime knows, including a previous agent's.
    async fn list_pod_sandboxes(&self) -> Vec<SandboxStatus>;

    /// The image's reference (`imageID`) when it is present on the node.
    async fn image_status(&self, image: &str) -> Result<Option<String>, RuntimeError>;

    /// Pulls the image with the first of `auths` whose registry matches,
    /// returning its reference; the error text is the engine's.
    async fn pull_image(&self, image: &str, auths: &[RegistryAuth]) -> Result<String, RuntimeError>;

    /// Prepares a container without starting it; returns its id.
    async fn create_container(&self, config: ContainerConfig) -> Result<String, RuntimeError>;

    /// Starts a created container. On failure the container is left
    /// `Exited` with reason `StartError`, so it is handled like a crash.
    async fn start_container(&self, id: &str) -> Result<(), RuntimeError>;

    /// Asks the container to stop (SIGTERM), waits up to `grace`, then
    /// forces it (SIGKILL). Returns once it has exited.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;

    /// Forgets a container, killing it first if it still runs. Its log file
    /// stays: the agent removes a pod's logs with the pod.
    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError>;

    async fn container_status(&self, id: &str) -> Result<ContainerStatus, RuntimeError>;

    /// Every container the runtime knows, including those it adopted from a
    /// previous run of the agent: how the agent avoids starting duplicates.
    async fn list_containers(&self) -> Vec<ContainerStatus>;

    /// The file holding a container's output in the CRI log format (see
    /// [`crate::crilog`]); the agent serves it as logs.
    async fn log_path(&self, id: &str) -> Result<PathBuf, RuntimeError>;

    /// Runs a command in the running container to its end, keeping at most
    /// `limit` bytes of output: what exec probes and hooks use.
    async fn exec_sync(&self, id: &str, command: &[String], timeout: Duration, limit: usize) -> ExecSync;

    /// Starts an interactive command in the running container.
    async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecSession, RuntimeError>;

    /// A stream of container state changes.
    fn subscribe(&self) -> broadcast::Receiver<ContainerEvent>;
}

/// The labels every container and sandbox carries, as the kubelet's
/// dockershim put them: which pod, namespace and container it is, so that
/// `docker ps` reads like `kubectl get pods` and a restarted agent can
/// adopt what it finds.
pub fn labels(pod: &PodRef, container: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_POD_NAME.to_string(), pod.name.clone()),
        (LABEL_POD_NAMESPACE.to_string(), pod.namespace.clone()),
        (LABEL_POD_UID.to_string(), pod.uid.clone()),
    ]);
    if let Some(name) = container {
        labels.insert(LABEL_CONTAINER_NAME.to_string(), name.to_string());
    }
    labels
}

/// The pod's name, as dockershim labelled it.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
