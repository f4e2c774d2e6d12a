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
//! the same whichever runtime is underneath. Where tinykube simplifies: there
//! is no pod sandbox (no network namespace: pods share the host network, so a
//! pod's IP is the node's), no image service (images are recorded, not
//! pulled), and the trait is in-process rather than gRPC. Instead of the
//! kubelet's PLEG (Pod Lifecycle Event Generator) relisting the runtime every
//! second, a runtime here *pushes* a [`ContainerEvent`] when a container
//! changes state, and the agent wakes the pod's worker.
//!
//! Runtimes:
//! - [`process`]: the container's command as a local process group,
//!   supervised by a shim (see [`crate::shim`]).
//! - `docker` and `hollow` are planned; they implement this same trait.

pub mod process;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// The pod a container belongs to: CRI's `PodSandboxMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// What the agent asks a runtime to run: CRI's `ContainerConfig`, already
/// resolved (environment values looked up, `$(VAR)` references expanded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerConfig {
    pub pod: PodRef,
    /// The container's name in the pod spec.
    pub name: String,
    /// Which run of this container this is: the pod status's `restartCount`.
    /// CRI calls it the attempt; it also names the log file.
    pub attempt: i32,
    /// The image as the pod spec names it.
    pub image: String,
    /// `command` followed by `args`.
    pub argv: Vec<String>,
    /// The container's environment, in order (later entries win).
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// Where stdout and stderr go, as CRI log records; chosen by the
    /// agent, as the kubelet chooses CRI's `LogPath`.
    pub log_path: PathBuf,
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
    pub pod: PodRef,
    pub name: String,
    pub attempt: i32,
    pub image: String,
    /// The runtime's reference for the image it ran (`process://<image>`).
    pub image_ref: String,
    pub state: ContainerState,
    /// The main process, while it runs (and after, for the record).
    pub pid: Option<u32>,
    pub started_at: Option<jiff::Timestamp>,
    pub finished_at: Option<jiff::Timestamp>,
    /// Set once exited; a process killed by signal N reports 128 + N, as a
    /// shell and Docker do.
    pub exit_code: Option<i32>,
    /// `Completed`, `Error`, `StartError` or `ContainerStatusUnknown`.
    pub reason: String,
    pub message: String,
    pub log_path: PathBuf,
}

impl ContainerStatus {
    pub fn is_running(&self) -> bool {
        self.state == ContainerState::Running
    }

    /// The id the pod status shows: `<runtime>://<id>`, as upstream's
    /// `containerID: containerd://3f2a...`.
    pub fn container_id(&self) -> String {
        match self.pid {
            Some(pid) => format!("process://{pid}"),
            None => format!("process://{}", self.id),
        }
    }
}

/// "Something happened to this container": the push-based stand-in for the
/// kubelet's PLEG events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub pod_uid: String,
    pub container_id: String,
}

/// A runtime's failures.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No container has this id.
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

    /// A stream of container state changes.
    fn subscribe(&self) -> broadcast::Receiver<ContainerEvent>;
}
