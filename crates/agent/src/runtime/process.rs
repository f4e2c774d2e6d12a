//! The `process` runtime: each container is a local process group,
//! supervised by a shim.
//!
//! For machines without Docker. The container's `command` and `args` run
//! on this host under a [`crate::shim`] process (`tinykube shim`), which
//! the runtime starts with the container's environment: the shim starts
//! the command in a process group of its own, so that a stop signal reaches
//! everything the command forked, writes its output to the container's log
//! file in the CRI format, and records how it ended in an *exit file*. The
//! image is recorded but not used: there is no filesystem isolation and no
//! resource limit.
//!
//! # The pod's network
//!
//! Given a [`PodNetwork`] (the agent runs as root with `--pod-network
//! bridge`), each pod's sandbox is a network namespace on the node bridge
//! with an address from the node's pod range, and every container of the
//! pod is started inside it (the shim joins it before it execs the
//! command). The sandbox is a JSON record under the sandboxes directory
//! (`<id>.json`: pod, attempt, namespace, address), so a restarted agent
//! finds the namespaces its pods run in. Without one, or for a
//! `hostNetwork` pod, the pod shares the host's network and its IP is the
//! node's.
//!
//! # Surviving an agent restart
//!
//! For each container the runtime keeps a small JSON *state file* under its
//! state directory: pod, container, attempt, the pids and start times of
//! the container and of its shim, and when it started; the shim writes the
//! exit file next to it (`<id>.exit`). Both stay until the container is
//! removed. When a new runtime opens that directory it looks at each state
//! file:
//! - the shim still runs (same pid *and* start time, so a recycled pid is
//!   never mistaken for ours): the container is *adopted* as running; the
//!   runtime polls `/proc` until the shim is gone, then reads the exit file;
//! - the shim is gone and left an exit file: the container ended while no
//!   agent watched, and its real exit code is reported;
//! - the shim is gone without an exit file (it was killed) but the
//!   container still runs: adopted, and its exit code is unknown when it
//!   ends — reported, as upstream does for a container that vanished, as
//!   reason `ContainerStatusUnknown` with exit code 137;
//! - nothing is left: the record is stale and removed.
//!
//! This is how the agent never starts a duplicate of a container that runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::hostexec;
use super::{
    ContainerConfig, ContainerEvent, ContainerState, ContainerStatus, ExecRequest, ExecSession, ExecSync, PodRef, RegistryAuth, Runtime,
    RuntimeError, SandboxConfig, SandboxState, SandboxStatus,
};
use crate::network::{bridge, Attachment, PodNetwork};
use crate::shim::{ExitRecord, Handshake, ShimSpec};
use crate::sys;

/// The runtime's `containerRuntimeVersion`.
pub const VERSION: &str = "process://0.1";
/// How often an adopted shim (or container) is checked for.
const ADOPTED_POLL: Duration = Duration::from_millis(250);
/// How long to wait for a process to vanish after SIGKILL before giving up.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How long a shim may take to report that the container started.
const SHIM_START: Duration = Duration::from_secs(10);
/// The exit code upstream reports for a container whose end nobody saw.
const UNKNOWN_EXIT_CODE: i32 = 137;

/// One running (or recently run) container.
struct Entry {
    config: ContainerConfig,
    status: watch::Sender<ContainerStatus>,
    /// The start time of `status.pid`, to never signal a recycled pid.
    start_time: Mutex<Option<u64>>,
}

impl Entry {
    fn snapshot(&self) -> ContainerStatus {
        self.status.borrow().clone()
    }

    /// Records how the container ended: what the shim's exit file says, or
    /// "unknown" when there is none.
    fn finish(&self, exit: Option<ExitRecord>) {
        self.status.send_modify(|s| {
            s.state = ContainerState::Exited;
            match exit {
                Some(e) => {
                    s.finished_at = e.finished_at.parse().ok().or_else(|| Some(jiff::Timestamp::now()));
                    s.exit_code = Some(e.exit_code);
                    s.reason = if e.exit_code == 0 { "Completed".into() } else { "Error".into() };
                    s.message = e.signal.map(|sig| format!("killed by signal {sig}")).unwrap_or_default();
                }
                None => {
                    s.finished_at = Some(jiff::Timestamp::now());
                    s.exit_code = Some(UNKNOWN_EXIT_CODE);
                    s.reason = "ContainerStatusUnknown".into();
                    s.message = "The container's shim ended without recording its exit code".into();
                }
            }
        });
    }
}

/// A process the runtime knows by pid and start time (see `sys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct ProcessId {
    pid: u32,
    /// Field 22 of `/proc/<pid>/stat` when the process was started.
    start_time: u64,
}

impl ProcessId {
    fn is_alive(&self) -> bool {
        sys::is_same_process(self.pid, self.start_time)
    }
}

/// The on-disk record of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StateFile {
    pod: PodRef,
    container: String,
    attempt: i32,
    image: String,
    pid: u32,
    /// Field 22 of `/proc/<pid>/stat` when the process was started.
    start_time: u64,
    /// The container's shim. Absent in records written before the runtime
    /// used shims; such a container is watched through its own pid.
    #[serde(default)]
    shim: Option<ProcessId>,
    /// RFC 3339.
    started_at: String,
    log_path: PathBuf,
}

/// The process runtime. Dropping it leaves the containers (and their
/// shims) running, as a crashed agent would; [`Runtime::stop_container`]
/// is how they end.
pub struct ProcessRuntime {
    state_dir: PathBuf,
    /// The binary run as `<shim> shim -- ...`: `tinykube` itself.
    shim: PathBuf,
    containers: Mutex<HashMap<String, Arc<Entry>>>,
    events: broadcast::Sender<ContainerEvent>,
    /// Cancelled on drop: stops the tasks that watch shims, without
    /// touching the processes.
    closed: CancellationToken,
    /// The node bridge pods get namespaces on, and where their sandbox
    /// records live; `None`: pods share the host's network.
    network: Option<(Arc<PodNetwork>, PathBuf)>,
}

/// The on-disk record of one pod's sandbox with a network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SandboxFile {
    pod: PodRef,
    attempt: i32,
    #[serde(flatten)]
    network: Attachment,
    /// False once stopped: the namespace is gone, the record stays until
    /// the sandbox is removed (CRI's NotReady).
    ready: bool,
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime").field("state_dir", &self.state_dir).field("shim", &self.shim).finish_non_exhaustive()
    }
}

impl Drop for ProcessRuntime {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// The runtime id of a container attempt; also its state file's name.
fn container_id(pod_uid: &str, name: &str, attempt: i32) -> String {
    format!("{pod_uid}_{name}_{attempt}")
}

impl ProcessRuntime {
    /// Opens the runtime over `state_dir`, adopting every container a
    /// previous agent left there; containers will be started through the
    /// binary `shim` (see [`crate::shim`]). Must be called inside a tokio
    /// runtime (adopted containers get a watcher task).
    pub fn open(state_dir: impl Into<PathBuf>, shim: impl Into<PathBuf>) -> Result<Self, RuntimeError> {
        let state_dir = state_dir.into();
        std::fs::create_dir_all(&state_dir)?;
        let (events, _) = broadcast::channel(1024);
        let runtime = ProcessRuntime {
            state_dir,
            shim: shim.into(),
            containers: Mutex::new(HashMap::new()),
            events,
            closed: CancellationToken::new(),
            network: None,
        };
        runtime.adopt_all()?;
        Ok(runtime)
    }

    /// Gives every pod that does not use the host's network a namespace on
    /// `network`, recording sandboxes under `sandbox_dir`.
    pub fn with_pod_network(mut self, network: Arc<PodNetwork>, sandbox_dir: impl Into<PathBuf>) -> Result<Self, RuntimeError> {
        let dir = sandbox_dir.into();
        std::fs::create_dir_all(&dir)?;
        self.network = Some((network, dir));
        Ok(self)
    }

    fn sandbox_path(&self, id: &str) -> Option<PathBuf> {
        self.network.as_ref().map(|(_, dir)| dir.join(format!("{id}.json")))
    }

    fn read_sandbox(&self, id: &str) -> Option<SandboxFile> {
        let path = self.sandbox_path(id)?;
        std::fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok())
    }

    fn write_sandbox(&self, id: &str, record: &SandboxFile) -> Result<(), RuntimeError> {
        let Some(path) = self.sandbox_path(id) else { return Ok(()) };
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(record).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, path)?;
        Ok(())
    }

    fn sandbox_status(id: &str, record: &SandboxFile) -> SandboxStatus {
        let ready = record.ready && bridge::netns_exists(&record.network);
        SandboxStatus {
            id: id.to_string(),
            pod: record.pod.clone(),
            attempt: record.attempt,
            state: if ready { SandboxState::Ready } else { SandboxState::NotReady },
            ip: Some(record.network.ip.to_string()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(&self, id: &str) -> Result<Arc<Entry>, RuntimeError> {
        self.lock().get(id).cloned().ok_or_else(|| RuntimeError::NotFound(id.to_string()))
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.state_dir.join(format!("{id}.json"))
    }

    fn exit_path(&self, id: &str) -> PathBuf {
        self.state_dir.join(format!("{id}.exit"))
    }

    /// Reads every state file and adopts, records as exited, or forgets
    /// its container, as the module docs describe.
    fn adopt_all(&self) -> Result<(), RuntimeError> {
        for dirent in std::fs::read_dir(&self.state_dir)? {
            let path = dirent?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let record: Option<StateFile> = std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let Some(r) = record else {
                tracing::warn!(path = %path.display(), "removing an unreadable container state file");
                remove_file_if_exists(&path);
                continue;
            };
            let id = container_id(&r.pod.uid, &r.container, r.attempt);
            let container = ProcessId { pid: r.pid, start_time: r.start_time };
            let watched = r.shim.filter(ProcessId::is_alive).or_else(|| Some(container).filter(ProcessId::is_alive));
            let exit = ExitRecord::read(&self.exit_path(&id));
            match (watched, exit) {
                (Some(watched), _) => self.adopt(r, watched),
                (None, Some(exit)) => {
                    tracing::info!(pod = %format!("{}/{}", r.pod.namespace, r.pod.name), container = %r.container,
                        exit_code = exit.exit_code, "a container ended while no agent was running");
                    let entry = self.insert_adopted(&r);
                    entry.finish(Some(exit));
                }
                (None, None) => {
                    tracing::info!(path = %path.display(), "forgetting a container that is no longer running");
                    remove_file_if_exists(&path);
                }
            }
        }
        Ok(())
    }

    /// Makes an entry for a container a previous agent started.
    fn insert_adopted(&self, r: &StateFile) -> Arc<Entry> {
        let id = container_id(&r.pod.uid, &r.container, r.attempt);
        let status = ContainerStatus {
            id: id.clone(),
            pod: r.pod.clone(),
            name: r.container.clone(),
            attempt: r.attempt,
            image: r.image.clone(),
            uri: format!("process://{}", r.pid),
            image_ref: format!("process://{}", r.image),
            state: ContainerState::Running,
            pid: Some(r.pid),
            started_at: r.started_at.parse().ok(),
            finished_at: None,
            exit_code: None,
            reason: String::new(),
            message: String::new(),
            log_path: r.log_path.clone(),
        };
        let config = ContainerConfig {
            pod: r.pod.clone(),
            name: r.container.clone(),
            attempt: r.attempt,
            image: r.image.clone(),
            log_path: r.log_path.clone(),
            ..Default::default()
        };
        let entry = Arc::new(Entry { config, status: watch::Sender::new(status), start_time: Mutex::new(Some(r.start_time)) });
        self.lock().insert(id, entry.clone());
        entry
    }

    /// Adopts a running container: watches `watched` (its shim, or the
    /// container itself when the shim is gone) until it ends, then reads
    /// the exit file.
    fn adopt(&self, r: StateFile, watched: ProcessId) {
        let id = container_id(&r.pod.uid, &r.container, r.attempt);
        tracing::info!(pod = %format!("{}/{}", r.pod.namespace, r.pod.name), container = %r.container, pid = r.pid,
            "adopting a container left running by a previous agent");
        let entry = self.insert_adopted(&r);
        let (events, closed, exit_path) = (self.events.clone(), self.closed.clone(), self.exit_path(&id));
        tokio::spawn(async move {
            tokio::select! {
                _ = closed.cancelled() => {}
                _ = poll_until_gone(watched) => {
                    entry.finish(ExitRecord::read(&exit_path));
                    let _ = events.send(ContainerEvent { pod_uid: entry.config.pod.uid.clone(), container_id: id });
                }
            }
        });
    }

    fn write_state(&self, id: &str, record: &StateFile) -> Result<(), RuntimeError> {
        let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        // Write then rename, so a crash never leaves half a record.
        let tmp = self.state_dir.join(format!(".{id}.json.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, self.state_path(id))?;
        Ok(())
    }

    fn notify(&self, entry: &Entry) {
        let _ = self.events.send(ContainerEvent { pod_uid: entry.config.pod.uid.clone(), container_id: entry.snapshot().id });
    }

    fn fail_start(&self, entry: &Entry, message: String) -> RuntimeError {
        entry.status.send_modify(|s| {
            s.state = ContainerState::Exited;
            s.finished_at = Some(jiff::Timestamp::now());
            s.exit_code = Some(128);
            s.reason = "StartError".into();
            s.message = message.clone();
        });
        self.notify(entry);
        RuntimeError::Start(message)
    }

    /// The shim's command line, and the spec to write on its stdin. The
    /// container's environment is PATH (the agent's), HOSTNAME (the pod's
    /// name, as a container's hostname is), then its own variables.
    fn shim_command(&self, id: &str, config: &ContainerConfig) -> (tokio::process::Command, ShimSpec) {
        let spec = ShimSpec {
            log: config.log_path.clone(),
            exit_file: self.exit_path(id),
            cwd: config.working_dir.as_ref().map(PathBuf::from),
            argv: config.argv(),
            env: container_env(&config.pod, &config.env),
            netns: self.read_sandbox(&config.sandbox_id).filter(|r| r.ready).map(|r| r.network.netns_path()),
        };
        let mut cmd = tokio::process::Command::new(shim_program(&self.shim));
        cmd.arg0(&self.shim)
            .args(["shim", "--", "--id", id])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // The shim outlives the agent: it must hold none of the
            // agent's own output streams open.
            .stderr(Stdio::null())
            // The shim and the container outlive the agent on purpose.
            .kill_on_drop(false);
        (cmd, spec)
    }

    /// Signals a running container's process group, if the pid is still the
    /// process we started.
    fn signal(entry: &Entry, signal: i32) {
        let (pid, running) = {
            let s = entry.status.borrow();
            (s.pid, s.is_running())
        };
        let start_time = *entry.start_time.lock().unwrap_or_else(|p| p.into_inner());
        let (Some(pid), Some(start_time)) = (pid, start_time) else { return };
        if !running || !sys::is_same_process(pid, start_time) {
            return;
        }
        if let Err(e) = sys::kill_process_group(pid, signal) {
            tracing::warn!(pid, signal, error = %e, "cannot signal container process group");
        }
    }
}

/// A container's environment, in the order later entries win: PATH (the
/// agent's), HOSTNAME (the pod's name), then the container's variables.
/// `exec` runs commands with the same environment.
pub fn container_env(pod: &PodRef, env: &[(String, String)]) -> Vec<(String, String)> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let mut all = vec![("PATH".to_string(), path), ("HOSTNAME".to_string(), pod.name.clone())];
    all.extend(env.iter().cloned());
    all
}

/// Writes the spec on the shim's stdin and closes it.
async fn send_spec(stdin: Option<tokio::process::ChildStdin>, spec: &ShimSpec) -> std::io::Result<()> {
    let mut stdin = stdin.ok_or_else(|| std::io::Error::other("the shim has no stdin"))?;
    let bytes = serde_json::to_vec(spec).map_err(std::io::Error::other)?;
    stdin.write_all(&bytes).await?;
    stdin.shutdown().await
}

/// Reads the shim's handshake line.
async fn read_handshake(stdout: Option<tokio::process::ChildStdout>) -> Result<Handshake, String> {
    let stdout = stdout.ok_or("the shim has no stdout")?;
    let mut line = String::new();
    let read = tokio::time::timeout(SHIM_START, tokio::io::BufReader::new(stdout).read_line(&mut line)).await;
    match read {
        Err(_) => Err(format!("the shim did not report within {SHIM_START:?}")),
        Ok(Err(e)) => Err(format!("cannot read from the shim: {e}")),
        Ok(Ok(0)) => Err("the shim exited without reporting".into()),
        Ok(Ok(_)) => serde_json::from_str(&line).map_err(|e| format!("the shim said {line:?}: {e}")),
    }
}

/// Waits until `process` has ended.
async fn poll_until_gone(process: ProcessId) {
    while process.is_alive() {
        tokio::time::sleep(ADOPTED_POLL).await;
    }
}

fn remove_file_if_exists(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove container state");
        }
    }
}

/// Waits until the container is no longer running, or `limit` passes.
async fn wait_exited(entry: &Entry, limit: Duration) -> bool {
    let mut rx = entry.status.subscribe();
    let exited = tokio::time::timeout(limit, rx.wait_for(|s| !s.is_running())).await.is_ok();
    exited
}

#[async_trait::async_trait]
impl Runtime for ProcessRuntime {
    fn version(&self) -> String {
        VERSION.into()
    }

    // A pod on the host's network has nothing to make or remove: its
    // sandbox id names the pod, so its status needs no record. A pod on
    // the node bridge gets its namespace here (see the module docs).
    async fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<String, RuntimeError> {
        let id = format!("{SANDBOX_PREFIX}{}", config.pod.uid);
        let Some((network, _)) = self.network.as_ref().filter(|_| !config.host_network) else {
            return Ok(id);
        };
        let attachment = network.attach(&config.pod.uid).await.map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let record = SandboxFile { pod: config.pod.clone(), attempt: config.attempt, network: attachment, ready: true };
        if let Err(e) = self.write_sandbox(&id, &record) {
            network.detach(&config.pod.uid, &record.network).await;
            return Err(e);
        }
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let (Some((network, _)), Some(mut record)) = (self.network.as_ref(), self.read_sandbox(id)) else {
            return Ok(());
        };
        if record.ready {
            network.detach(&record.pod.uid, &record.network).await;
            record.ready = false;
            self.write_sandbox(id, &record)?;
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        self.stop_pod_sandbox(id).await?;
        if let Some(path) = self.sandbox_path(id) {
            remove_file_if_exists(&path);
        }
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<SandboxStatus, RuntimeError> {
        if let Some(record) = self.read_sandbox(id) {
            return Ok(Self::sandbox_status(id, &record));
        }
        let uid = id.strip_prefix(SANDBOX_PREFIX).ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        let pod = self.lock().values().map(|e| e.config.pod.clone()).find(|p| p.uid == uid);
        let pod = pod.unwrap_or(PodRef { uid: uid.to_string(), ..Default::default() });
        Ok(SandboxStatus { id: id.to_string(), pod, attempt: 0, state: SandboxState::Ready, ip: None })
    }

    async fn list_pod_sandboxes(&self) -> Vec<SandboxStatus> {
        let Some((_, dir)) = &self.network else { return Vec::new() };
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Some(id) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else { continue };
            if let Some(record) = self.read_sandbox(id) {
                all.push(Self::sandbox_status(id, &record));
            }
        }
        all
    }

    async fn image_status(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        // Images are recorded, never used: every image is "present".
        Ok(Some(format!("process://{image}")))
    }

    async fn pull_image(&self, image: &str, _auths: &[RegistryAuth]) -> Result<String, RuntimeError> {
        Ok(format!("process://{image}"))
    }

    async fn create_container(&self, config: ContainerConfig) -> Result<String, RuntimeError> {
        if config.argv().is_empty() {
            return Err(RuntimeError::InvalidConfig(format!(
                "container {:?} has no command: the process runtime cannot run image {:?} without one (set `command`)",
                config.name, config.image
            )));
        }
        let id = container_id(&config.pod.uid, &config.name, config.attempt);
        if let Some(old) = self.lock().get(&id) {
            let state = old.snapshot().state;
            if state != ContainerState::Exited {
                return Err(RuntimeError::WrongState { id, state });
            }
        }
        if let Some(dir) = config.log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // A previous container with this id left its exit file behind.
        remove_file_if_exists(&self.exit_path(&id));
        let status = ContainerStatus {
            id: id.clone(),
            pod: config.pod.clone(),
            name: config.name.clone(),
            attempt: config.attempt,
            image: config.image.clone(),
            uri: format!("process://{id}"),
            image_ref: format!("process://{}", config.image),
            state: ContainerState::Created,
            pid: None,
            started_at: None,
            finished_at: None,
            exit_code: None,
            reason: String::new(),
            message: String::new(),
            log_path: config.log_path.clone(),
        };
        let entry = Arc::new(Entry { config, status: watch::Sender::new(status), start_time: Mutex::new(None) });
        self.lock().insert(id.clone(), entry);
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let entry = self.entry(id)?;
        let state = entry.snapshot().state;
        if state != ContainerState::Created {
            return Err(RuntimeError::WrongState { id: id.to_string(), state });
        }
        let config = &entry.config;
        let (mut cmd, spec) = self.shim_command(id, config);
        let mut shim = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return Err(self.fail_start(&entry, format!("cannot run the shim {}: {e}", self.shim.display()))),
        };
        if let Err(e) = send_spec(shim.stdin.take(), &spec).await {
            let _ = shim.start_kill();
            let _ = shim.wait().await;
            return Err(self.fail_start(&entry, format!("cannot talk to the shim: {e}")));
        }
        // Our unreaped child is at worst a zombie, so its /proc entry exists.
        let shim_id = shim.id().and_then(|pid| sys::proc_stat(pid).map(|s| ProcessId { pid, start_time: s.start_time }));
        let (pid, start_time) = match read_handshake(shim.stdout.take()).await {
            Ok(Handshake::Started { pid, start_time }) => (pid, start_time),
            Ok(Handshake::Failed { error }) => {
                let _ = shim.wait().await;
                return Err(self.fail_start(&entry, error));
            }
            Err(e) => {
                let _ = shim.start_kill();
                let _ = shim.wait().await;
                return Err(self.fail_start(&entry, e));
            }
        };
        let started_at = jiff::Timestamp::now();
        *entry.start_time.lock().unwrap_or_else(|p| p.into_inner()) = Some(start_time);
        let record = StateFile {
            pod: config.pod.clone(),
            container: config.name.clone(),
            attempt: config.attempt,
            image: config.image.clone(),
            pid,
            start_time,
            shim: shim_id,
            started_at: started_at.to_string(),
            log_path: config.log_path.clone(),
        };
        if let Err(e) = self.write_state(id, &record) {
            // Without a state file a restarted agent could not adopt the
            // container and might start a duplicate; refuse to run it.
            let _ = sys::kill_process_group(pid, libc::SIGKILL);
            let _ = shim.wait().await;
            return Err(self.fail_start(&entry, format!("cannot record container state: {e}")));
        }
        entry.status.send_modify(|s| {
            s.state = ContainerState::Running;
            s.uri = format!("process://{pid}");
            s.pid = Some(pid);
            s.started_at = Some(started_at);
        });
        self.notify(&entry);

        let (events, closed, exit_path, id) = (self.events.clone(), self.closed.clone(), self.exit_path(id), id.to_string());
        tokio::spawn(async move {
            tokio::select! {
                // The runtime was dropped (the agent is going away without
                // stopping its containers): leave the shim, the container
                // and the state file for the next agent to adopt.
                _ = closed.cancelled() => return,
                // The shim exits once it has written the exit file.
                _ = shim.wait() => {}
            }
            entry.finish(ExitRecord::read(&exit_path));
            let _ = events.send(ContainerEvent { pod_uid: entry.config.pod.uid.clone(), container_id: id });
        });
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let entry = self.entry(id)?;
        if entry.snapshot().state == ContainerState::Created {
            // Never started: nothing to signal.
            entry.status.send_modify(|s| {
                s.state = ContainerState::Exited;
                s.exit_code = Some(0);
                s.reason = "Completed".into();
            });
            return Ok(());
        }
        if !entry.snapshot().is_running() {
            return Ok(());
        }
        Self::signal(&entry, libc::SIGTERM);
        if wait_exited(&entry, grace).await {
            return Ok(());
        }
        tracing::info!(id, grace_seconds = grace.as_secs_f64(), "container ignored SIGTERM for its grace period; sending SIGKILL");
        Self::signal(&entry, libc::SIGKILL);
        if wait_exited(&entry, KILL_WAIT).await {
            Ok(())
        } else {
            Err(RuntimeError::Unkillable(id.to_string()))
        }
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let Ok(entry) = self.entry(id) else { return Ok(()) };
        if entry.snapshot().is_running() {
            self.stop_container(id, Duration::ZERO).await?;
        }
        self.lock().remove(id);
        remove_file_if_exists(&self.state_path(id));
        remove_file_if_exists(&self.exit_path(id));
        Ok(())
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus, RuntimeError> {
        Ok(self.entry(id)?.snapshot())
    }

    async fn list_containers(&self) -> Vec<ContainerStatus> {
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        let mut all: Vec<ContainerStatus> = entries.iter().map(|e| e.snapshot()).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    async fn log_path(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        Ok(self.entry(id)?.config.log_path.clone())
    }

    async fn exec_sync(&self, id: &str, command: &[String], timeout: Duration, limit: usize) -> ExecSync {
        match self.exec_context(id) {
            Ok(ctx) => hostexec::exec_sync(command, &ctx, timeout, limit).await,
            Err(e) => ExecSync::NotStarted(e.to_string()),
        }
    }

    async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecSession, RuntimeError> {
        Ok(hostexec::exec(self.exec_context(id)?, request))
    }

    fn subscribe(&self) -> broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }
}

/// The process runtime's sandbox ids: the prefix, then the pod's uid.
const SANDBOX_PREFIX: &str = "process-sandbox-";

impl ProcessRuntime {
    /// What a command exec'd "into" a running container gets: the
    /// environment and directory of the container's main process.
    fn exec_context(&self, id: &str) -> Result<hostexec::Context, RuntimeError> {
        let status = self.entry(id)?.snapshot();
        match status.pid {
            Some(pid) if status.is_running() => Ok(hostexec::Context::of_process(pid)?),
            _ => Err(RuntimeError::WrongState { id: id.to_string(), state: status.state }),
        }
    }
}

/// The program to exec as the shim. When the shim is this very binary,
/// exec it through `/proc/self/exe`, which names the running executable
/// even after its file was replaced: an upgrade of `tinykube` on disk must
/// not hand new containers to a shim of another version.
fn shim_program(shim: &Path) -> PathBuf {
    // Once the file is replaced, the kernel reports the running one as
    // "<path> (deleted)".
    let running = std::env::current_exe().ok().map(|p| p.to_string_lossy().trim_end_matches(" (deleted)").to_string());
    let self_exe = Path::new("/proc/self/exe");
    if running.as_deref() == Some(&*shim.to_string_lossy()) && self_exe.exists() {
        self_exe.to_path_buf()
    } else {
        shim.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crilog::{self, Stream};
    use crate::test_support::shim_binary;
    use std::time::Instant;

    fn open(state: &Path) -> ProcessRuntime {
        ProcessRuntime::open(state, shim_binary()).expect("open runtime")
    }

    fn config(dir: &Path, name: &str, argv: &[&str]) -> ContainerConfig {
        let pod = PodRef { namespace: "default".into(), name: "web".into(), uid: "uid-1".into() };
        ContainerConfig {
            log_path: dir.join("pods").join(name).join("0.log"),
            pod,
            name: name.into(),
            attempt: 0,
            image: "busybox".into(),
            command: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("FOO".into(), "bar".into())],
            ..Default::default()
        }
    }

    /// What the container printed, decoded from its CRI log.
    fn output(log: &Path) -> String {
        let data = std::fs::read(log).unwrap_or_default();
        let mut decoder = crilog::Decoder::new(false);
        let mut out = Vec::new();
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            decoder.push_line(line, &mut out);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn run(rt: &ProcessRuntime, config: ContainerConfig) -> String {
        let id = rt.create_container(config).await.expect("create");
        rt.start_container(&id).await.expect("start");
        id
    }

    async fn wait_exit(rt: &ProcessRuntime, id: &str) -> ContainerStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = rt.container_status(id).await.expect("status");
            if s.state == ContainerState::Exited {
                return s;
            }
            assert!(Instant::now() < deadline, "container {id} did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn runs_a_command_and_records_exit_code_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let rt = open(&state);
        let mut events = rt.subscribe();
        let cfg = config(dir.path(), "c", &["sh", "-c", "echo out $FOO $HOSTNAME; echo err >&2; exit 3"]);
        let log = cfg.log_path.clone();
        let id = run(&rt, cfg).await;
        let s = wait_exit(&rt, &id).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (Some(3), "Error"));
        assert!(s.started_at.is_some() && s.finished_at.is_some());
        assert_eq!(s.image_ref, "process://busybox");
        let printed = output(&log);
        assert!(printed.contains("out bar web\n"), "{printed:?}");
        assert!(printed.contains("err\n"), "{printed:?}");
        // Started, then exited: two events for this pod.
        assert_eq!(events.recv().await.unwrap().pod_uid, "uid-1");
        assert_eq!(events.recv().await.unwrap().container_id, id);
        // The state and exit files stay until the container is removed.
        assert_eq!(files_in(&state), [format!("{id}.exit"), format!("{id}.json")]);
        rt.remove_container(&id).await.unwrap();
        assert!(files_in(&state).is_empty());
    }

    #[tokio::test]
    async fn the_shim_writes_cri_records_and_the_exit_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let rt = open(&state);
        // A short line on each stream, a line longer than a record may be,
        // and output without a final newline.
        let script = "echo out; echo err >&2; head -c 20000 /dev/zero | tr '\\0' x; echo; printf tail; exit 3";
        let cfg = config(dir.path(), "c", &["sh", "-c", script]);
        let log = cfg.log_path.clone();
        let before = jiff::Timestamp::now();
        let id = run(&rt, cfg).await;
        assert_eq!(wait_exit(&rt, &id).await.exit_code, Some(3));
        let after = jiff::Timestamp::now();

        let data = std::fs::read(&log).unwrap();
        let records: Vec<crilog::Record<'_>> =
            data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| crilog::parse(l).expect("a CRI record")).collect();
        let summary: Vec<(Stream, bool, usize)> = records.iter().map(|r| (r.stream, r.full, r.content.len())).collect();
        let stderr_line = summary.iter().position(|r| r.0 == Stream::Stderr).expect("a stderr record");
        assert_eq!(summary[stderr_line], (Stream::Stderr, true, 3));
        let stdout: Vec<_> = summary.iter().filter(|r| r.0 == Stream::Stdout).copied().collect();
        assert_eq!(
            stdout,
            [
                (Stream::Stdout, true, 3),
                (Stream::Stdout, false, crilog::MAX_LINE),
                (Stream::Stdout, true, 20000 - crilog::MAX_LINE),
                (Stream::Stdout, false, 4),
            ]
        );
        for r in &records {
            assert!(before <= r.time && r.time <= after, "{} is when the line was read", r.time);
        }
        let text = String::from_utf8_lossy(&data);
        assert!(text.contains(" stdout F out\n") && text.contains(" stderr F err\n"), "{text:.200}");

        let exit = ExitRecord::read(&state.join(format!("{id}.exit"))).expect("exit file");
        assert_eq!((exit.exit_code, exit.signal), (3, None));
        let finished: jiff::Timestamp = exit.finished_at.parse().unwrap();
        assert!(before <= finished && finished <= after);
    }

    #[tokio::test]
    async fn a_container_killed_by_sigkill_exits_137() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let rt = open(&state);
        let id = run(&rt, config(dir.path(), "c", &["sleep", "100"])).await;
        let pid = rt.container_status(&id).await.unwrap().pid.unwrap();
        sys::kill_process_group(pid, libc::SIGKILL).unwrap();
        let s = wait_exit(&rt, &id).await;
        assert_eq!((s.exit_code, s.reason.as_str(), s.message.as_str()), (Some(137), "Error", "killed by signal 9"));
        let exit = ExitRecord::read(&state.join(format!("{id}.exit"))).unwrap();
        assert_eq!((exit.exit_code, exit.signal), (137, Some(libc::SIGKILL)));
    }

    #[tokio::test]
    async fn working_dir_and_clean_exit() {
        let dir = tempfile::tempdir().unwrap();
        let rt = open(&dir.path().join("state"));
        let mut cfg = config(dir.path(), "c", &["sh", "-c", "pwd"]);
        cfg.working_dir = Some(dir.path().display().to_string());
        let log = cfg.log_path.clone();
        let id = run(&rt, cfg).await;
        let s = wait_exit(&rt, &id).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (Some(0), "Completed"));
        assert_eq!(output(&log).trim(), dir.path().display().to_string());
    }

    #[tokio::test]
    async fn no_command_missing_executable_and_missing_shim_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let rt = open(&dir.path().join("state"));
        let err = rt.create_container(config(dir.path(), "c", &[])).await.unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidConfig(ref m) if m.contains("has no command")), "{err}");

        let id = rt.create_container(config(dir.path(), "d", &["/no/such/binary"])).await.unwrap();
        let err = rt.start_container(&id).await.unwrap_err();
        assert!(matches!(err, RuntimeError::Start(ref m) if m.starts_with("exec: \"/no/such/binary\": ")), "{err}");
        let s = rt.container_status(&id).await.unwrap();
        assert_eq!((s.state, s.exit_code, s.reason.as_str()), (ContainerState::Exited, Some(128), "StartError"));

        let mut cfg = config(dir.path(), "e", &["true"]);
        cfg.working_dir = Some("/no/such/dir".into());
        let id = rt.create_container(cfg).await.unwrap();
        assert!(matches!(rt.start_container(&id).await, Err(RuntimeError::Start(_))));

        let no_shim = ProcessRuntime::open(dir.path().join("state2"), "/no/such/shim").unwrap();
        let id = no_shim.create_container(config(dir.path(), "f", &["true"])).await.unwrap();
        let err = no_shim.start_container(&id).await.unwrap_err();
        assert!(err.to_string().starts_with("cannot run the shim /no/such/shim"), "{err}");
    }

    #[tokio::test]
    async fn stop_sends_sigterm_to_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let rt = open(&dir.path().join("state"));
        // The shell prints its background child's pid, then waits for it.
        let cfg = config(dir.path(), "c", &["sh", "-c", "sleep 100 & echo $!; wait"]);
        let log = cfg.log_path.clone();
        let id = run(&rt, cfg).await;
        let grandchild: u32 = loop {
            if let Ok(pid) = output(&log).trim().parse() {
                break pid;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let began = Instant::now();
        rt.stop_container(&id, Duration::from_secs(10)).await.unwrap();
        assert!(began.elapsed() < Duration::from_secs(5), "SIGTERM alone ends it");
        let s = rt.container_status(&id).await.unwrap();
        assert_eq!(s.exit_code, Some(128 + libc::SIGTERM));
        // The forked child was in the group, so it got the signal too.
        let deadline = Instant::now() + Duration::from_secs(5);
        while sys::proc_stat(grandchild).is_some_and(|s| s.is_alive()) {
            assert!(Instant::now() < deadline, "grandchild {grandchild} survived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn stop_escalates_to_sigkill_after_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let rt = open(&dir.path().join("state"));
        let cfg = config(dir.path(), "c", &["sh", "-c", "trap '' TERM; echo ready; sleep 100"]);
        let log = cfg.log_path.clone();
        let id = run(&rt, cfg).await;
        // Signal only once the trap is set.
        while !output(&log).contains("ready") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let grace = Duration::from_millis(500);
        let began = Instant::now();
        rt.stop_container(&id, grace).await.unwrap();
        let took = began.elapsed();
        assert!(took >= grace, "SIGTERM was ignored, so the full grace passed: {took:?}");
        assert!(took < grace + Duration::from_secs(2), "SIGKILL came promptly: {took:?}");
        assert_eq!(rt.container_status(&id).await.unwrap().exit_code, Some(128 + libc::SIGKILL));
    }

    #[tokio::test]
    async fn a_new_runtime_adopts_running_containers_instead_of_starting_them() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let rt = open(&state);
        let id = run(&rt, config(dir.path(), "c", &["sleep", "100"])).await;
        let pid = rt.container_status(&id).await.unwrap().pid.unwrap();
        // The agent "crashes": the runtime goes, the shim and process stay.
        drop(rt);
        assert!(sys::proc_stat(pid).is_some_and(|s| s.is_alive()));

        let rt = open(&state);
        let listed = rt.list_containers().await;
        assert_eq!(listed.len(), 1, "exactly the one container, no duplicate");
        let adopted = &listed[0];
        assert_eq!((adopted.id.as_str(), adopted.pid, adopted.state), (id.as_str(), Some(pid), ContainerState::Running));
        assert_eq!(adopted.pod.name, "web");
        assert!(adopted.started_at.is_some());

        // It can be stopped like any other, and its shim tells how it ended.
        rt.stop_container(&id, Duration::from_secs(5)).await.unwrap();
        let s = rt.container_status(&id).await.unwrap();
        assert_eq!((s.exit_code, s.reason.as_str()), (Some(128 + libc::SIGTERM), "Error"));
        rt.remove_container(&id).await.unwrap();
        assert!(files_in(&state).is_empty());
    }

    #[tokio::test]
    async fn a_container_that_ended_while_no_runtime_watched_reports_its_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let rt = open(&state);
        let cfg = config(dir.path(), "c", &["sh", "-c", "sleep 0.3; echo bye; exit 7"]);
        let log = cfg.log_path.clone();
        let id = run(&rt, cfg).await;
        drop(rt);
        // The shim outlives the runtime: it keeps logging and records the exit.
        let deadline = Instant::now() + Duration::from_secs(10);
        while ExitRecord::read(&state.join(format!("{id}.exit"))).is_none() {
            assert!(Instant::now() < deadline, "the shim never wrote the exit file");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(output(&log), "bye\n");

        let rt = open(&state);
        let listed = rt.list_containers().await;
        assert_eq!(listed.len(), 1);
        let s = &listed[0];
        assert_eq!((s.id.as_str(), s.state, s.exit_code, s.reason.as_str()), (id.as_str(), ContainerState::Exited, Some(7), "Error"));
        assert!(s.started_at.is_some() && s.finished_at >= s.started_at);
    }

    #[tokio::test]
    async fn the_shim_survives_its_parent_being_killed() {
        let dir = tempfile::tempdir().unwrap();
        let (log, exit_file) = (dir.path().join("c.log"), dir.path().join("c.exit"));
        let spec = ShimSpec {
            log: log.clone(),
            exit_file: exit_file.clone(),
            cwd: None,
            argv: vec!["sh".into(), "-c".into(), "sleep 0.5; echo late; exit 4".into()],
            env: vec![("PATH".into(), std::env::var("PATH").unwrap())],
            netns: None,
        };
        let spec_file = dir.path().join("spec.json");
        std::fs::write(&spec_file, serde_json::to_vec(&spec).unwrap()).unwrap();
        // A stand-in agent: a shell that starts the shim, then is SIGKILLed.
        let mut parent = tokio::process::Command::new("sh")
            .arg("-c")
            .arg("\"$@\" < \"$SPEC\" & wait")
            .arg("sh")
            .arg(shim_binary())
            .args(["shim", "--", "--id", "c"])
            .env("SPEC", &spec_file)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let Ok(Handshake::Started { pid, .. }) = read_handshake(parent.stdout.take()).await else { panic!("no handshake") };
        parent.start_kill().unwrap();
        parent.wait().await.unwrap();
        assert!(sys::proc_stat(pid).is_some_and(|s| s.is_alive()), "the container outlived the agent");
        let deadline = Instant::now() + Duration::from_secs(10);
        while ExitRecord::read(&exit_file).is_none() {
            assert!(Instant::now() < deadline, "the shim never wrote the exit file");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(ExitRecord::read(&exit_file).unwrap().exit_code, 4);
        assert_eq!(output(&log), "late\n");
    }

    #[tokio::test]
    async fn dead_or_recycled_pids_are_not_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let mut exited = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = exited.id();
        exited.wait().unwrap();
        let me = std::process::id();
        let my_start = sys::proc_stat(me).unwrap().start_time;
        let pod = PodRef { namespace: "default".into(), name: "web".into(), uid: "uid-1".into() };
        // A pid that is gone, and a pid that lives but started at another
        // time: someone else's process now. Neither left an exit file.
        for (name, pid, start_time) in [("dead", dead_pid, 1), ("recycled", me, my_start + 1)] {
            let record = StateFile {
                pod: pod.clone(),
                container: name.into(),
                attempt: 0,
                image: "busybox".into(),
                pid,
                start_time,
                shim: Some(ProcessId { pid, start_time }),
                started_at: jiff::Timestamp::now().to_string(),
                log_path: dir.path().join("x.log"),
            };
            std::fs::write(state.join(format!("{}.json", container_id("uid-1", name, 0))), serde_json::to_vec(&record).unwrap()).unwrap();
        }
        let rt = open(&state);
        assert!(rt.list_containers().await.is_empty());
        assert!(files_in(&state).is_empty(), "stale records are removed");
        assert!(sys::proc_stat(me).is_some_and(|s| s.is_alive()), "and nobody was signalled");
    }
}
