//! The `process` runtime: each container is a local process group.
//!
//! For machines without Docker. The container's `command` and `args` run as
//! a child of the agent, in a process group of their own so that a stop
//! signal reaches everything the command forked, with stdout and stderr
//! appended to the container's log file. The child gets its own handles
//! to that file (opened `O_APPEND`), so its output keeps landing there even
//! if the agent dies. The image is recorded but not used: there is no
//! filesystem isolation, no network namespace and no resource limit.
//!
//! # Surviving an agent restart
//!
//! For each running container the runtime keeps a small JSON *state file*
//! under its state directory: pod, container, attempt, pid and the
//! process's start time. When a new runtime opens that directory it
//! *adopts* every process that is still alive with the same start time
//! (so a recycled pid is never mistaken for ours) and forgets the rest. An
//! adopted process is no longer our child, so nobody can `wait()` for it:
//! the runtime polls `/proc` instead, and when it is gone its exit code is
//! unknown — reported, as upstream does for a container that vanished, as
//! reason `ContainerStatusUnknown` with exit code 137.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::{ContainerConfig, ContainerEvent, ContainerState, ContainerStatus, PodRef, Runtime, RuntimeError};
use crate::sys;

/// How often an adopted process is checked for.
const ADOPTED_POLL: Duration = Duration::from_millis(250);
/// How long to wait for a process to vanish after SIGKILL before giving up.
const KILL_WAIT: Duration = Duration::from_secs(5);
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
}

/// The on-disk record of one running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StateFile {
    pod: PodRef,
    container: String,
    attempt: i32,
    image: String,
    pid: u32,
    /// Field 22 of `/proc/<pid>/stat` when the process was started.
    start_time: u64,
    /// RFC 3339.
    started_at: String,
    log_path: PathBuf,
}

/// The process runtime. Dropping it leaves the processes running (as a
/// crashed agent would); [`Runtime::stop_container`] is how they end.
pub struct ProcessRuntime {
    state_dir: PathBuf,
    containers: Mutex<HashMap<String, Arc<Entry>>>,
    events: broadcast::Sender<ContainerEvent>,
    /// Cancelled on drop: stops the tasks that watch processes, without
    /// touching the processes.
    closed: CancellationToken,
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime").field("state_dir", &self.state_dir).finish_non_exhaustive()
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
    /// previous agent left running there. Must be called inside a tokio
    /// runtime (adopted processes get a watcher task).
    pub fn open(state_dir: impl Into<PathBuf>) -> Result<Self, RuntimeError> {
        let state_dir = state_dir.into();
        std::fs::create_dir_all(&state_dir)?;
        let (events, _) = broadcast::channel(1024);
        let runtime =
            ProcessRuntime { state_dir, containers: Mutex::new(HashMap::new()), events, closed: CancellationToken::new() };
        runtime.adopt_all()?;
        Ok(runtime)
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

    /// Reads every state file: a live process with the recorded start time
    /// is adopted; any other record is stale and removed.
    fn adopt_all(&self) -> Result<(), RuntimeError> {
        for dirent in std::fs::read_dir(&self.state_dir)? {
            let path = dirent?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let record: Option<StateFile> =
                std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
            match record {
                Some(r) if sys::is_same_process(r.pid, r.start_time) => self.adopt(r),
                _ => {
                    tracing::info!(path = %path.display(), "forgetting a container that is no longer running");
                    remove_file_if_exists(&path);
                }
            }
        }
        Ok(())
    }

    fn adopt(&self, r: StateFile) {
        let id = container_id(&r.pod.uid, &r.container, r.attempt);
        tracing::info!(pod = %format!("{}/{}", r.pod.namespace, r.pod.name), container = %r.container, pid = r.pid,
            "adopting a container left running by a previous agent");
        let status = ContainerStatus {
            id: id.clone(),
            pod: r.pod.clone(),
            name: r.container.clone(),
            attempt: r.attempt,
            image: r.image.clone(),
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
            pod: r.pod,
            name: r.container,
            attempt: r.attempt,
            image: r.image,
            argv: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            log_path: r.log_path,
        };
        let entry = Arc::new(Entry {
            config,
            status: watch::Sender::new(status),
            start_time: Mutex::new(Some(r.start_time)),
        });
        self.lock().insert(id.clone(), entry.clone());
        let (events, closed, state_path) = (self.events.clone(), self.closed.clone(), self.state_path(&id));
        tokio::spawn(async move {
            tokio::select! {
                _ = closed.cancelled() => {}
                _ = poll_until_gone(r.pid, r.start_time) => {
                    remove_file_if_exists(&state_path);
                    entry.status.send_modify(|s| {
                        s.state = ContainerState::Exited;
                        s.finished_at = Some(jiff::Timestamp::now());
                        s.exit_code = Some(UNKNOWN_EXIT_CODE);
                        s.reason = "ContainerStatusUnknown".into();
                        s.message = "The container was adopted after an agent restart, so its exit code could not be observed".into();
                    });
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
        let _ = self.events.send(ContainerEvent {
            pod_uid: entry.config.pod.uid.clone(),
            container_id: entry.snapshot().id,
        });
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

    /// The command, environment and stdio of a container's process. PATH is
    /// the agent's, then HOSTNAME (the pod's name, as a container's hostname
    /// is), then the container's own variables.
    fn command(config: &ContainerConfig, log: &std::fs::File) -> std::io::Result<tokio::process::Command> {
        let mut cmd = tokio::process::Command::new(&config.argv[0]);
        cmd.args(&config.argv[1..])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()))
            .env("HOSTNAME", &config.pod.name)
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log.try_clone()?))
            // Its own process group: signals to -pgid reach its whole tree.
            .process_group(0)
            // The process outlives the agent on purpose; see the module docs.
            .kill_on_drop(false);
        if let Some(dir) = &config.working_dir {
            cmd.current_dir(dir);
        }
        Ok(cmd)
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

/// Waits until `pid` is no longer the process that started at `start_time`.
async fn poll_until_gone(pid: u32, start_time: u64) {
    while sys::is_same_process(pid, start_time) {
        tokio::time::sleep(ADOPTED_POLL).await;
    }
}

fn remove_file_if_exists(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove state file");
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
        "process://0.1".into()
    }

    async fn create_container(&self, config: ContainerConfig) -> Result<String, RuntimeError> {
        if config.argv.is_empty() {
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
        let status = ContainerStatus {
            id: id.clone(),
            pod: config.pod.clone(),
            name: config.name.clone(),
            attempt: config.attempt,
            image: config.image.clone(),
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
        let log = match std::fs::OpenOptions::new().create(true).append(true).open(&config.log_path) {
            Ok(f) => f,
            Err(e) => return Err(self.fail_start(&entry, format!("cannot open log file {}: {e}", config.log_path.display()))),
        };
        let spawned = Self::command(config, &log).and_then(|mut cmd| cmd.spawn());
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => return Err(self.fail_start(&entry, format!("exec: {:?}: {e}", config.argv[0]))),
        };
        let Some(pid) = child.id() else {
            return Err(self.fail_start(&entry, "the process exited before it could be observed".into()));
        };
        // Our unreaped child is at worst a zombie, so its /proc entry exists.
        let start_time = sys::proc_stat(pid).map(|s| s.start_time).unwrap_or_default();
        let started_at = jiff::Timestamp::now();
        *entry.start_time.lock().unwrap_or_else(|p| p.into_inner()) = Some(start_time);
        let record = StateFile {
            pod: config.pod.clone(),
            container: config.name.clone(),
            attempt: config.attempt,
            image: config.image.clone(),
            pid,
            start_time,
            started_at: started_at.to_string(),
            log_path: config.log_path.clone(),
        };
        if let Err(e) = self.write_state(id, &record) {
            // Without a state file a restarted agent could not adopt the
            // process and might start a duplicate; refuse to run it.
            let _ = sys::kill_process_group(pid, libc::SIGKILL);
            let _ = child.wait().await;
            return Err(self.fail_start(&entry, format!("cannot record container state: {e}")));
        }
        entry.status.send_modify(|s| {
            s.state = ContainerState::Running;
            s.pid = Some(pid);
            s.started_at = Some(started_at);
        });
        self.notify(&entry);

        let (events, closed, state_path, id) =
            (self.events.clone(), self.closed.clone(), self.state_path(id), id.to_string());
        tokio::spawn(async move {
            let exit = tokio::select! {
                // The runtime was dropped (the agent is going away without
                // stopping its containers): leave the process and its state
                // file for the next agent to adopt.
                _ = closed.cancelled() => return,
                exit = child.wait() => exit,
            };
            // A container ends when its main process does: take down
            // whatever it left behind in its group. The group id cannot be
            // reused while any member lives, so this reaches only ours.
            let _ = sys::kill_process_group(pid, libc::SIGKILL);
            remove_file_if_exists(&state_path);
            let (code, message) = match exit {
                Ok(status) => match (status.code(), status.signal()) {
                    (Some(code), _) => (code, String::new()),
                    (None, Some(sig)) => (128 + sig, format!("killed by signal {sig}")),
                    (None, None) => (UNKNOWN_EXIT_CODE, String::new()),
                },
                Err(e) => (UNKNOWN_EXIT_CODE, format!("cannot wait for the process: {e}")),
            };
            entry.status.send_modify(|s| {
                s.state = ContainerState::Exited;
                s.finished_at = Some(jiff::Timestamp::now());
                s.exit_code = Some(code);
                s.reason = if code == 0 { "Completed".into() } else { "Error".into() };
                s.message = message;
            });
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

    fn subscribe(&self) -> broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn config(dir: &Path, name: &str, argv: &[&str]) -> ContainerConfig {
        let pod = PodRef { namespace: "default".into(), name: "web".into(), uid: "uid-1".into() };
        ContainerConfig {
            log_path: dir.join("pods").join(name).join("0.log"),
            pod,
            name: name.into(),
            attempt: 0,
            image: "busybox".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("FOO".into(), "bar".into())],
            working_dir: None,
        }
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

    #[tokio::test]
    async fn runs_a_command_and_records_exit_code_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let rt = ProcessRuntime::open(dir.path().join("state")).unwrap();
        let mut events = rt.subscribe();
        let cfg = config(dir.path(), "c", &["sh", "-c", "echo out $FOO $HOSTNAME; echo err >&2; exit 3"]);
        let log = cfg.log_path.clone();
        let id = run(&rt, cfg).await;
        let s = wait_exit(&rt, &id).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (Some(3), "Error"));
        assert!(s.started_at.is_some() && s.finished_at.is_some());
        assert_eq!(s.image_ref, "process://busybox");
        let output = std::fs::read_to_string(log).unwrap();
        assert!(output.contains("out bar web\n"), "{output:?}");
        assert!(output.contains("err\n"), "{output:?}");
        // Started, then exited: two events for this pod.
        assert_eq!(events.recv().await.unwrap().pod_uid, "uid-1");
        assert_eq!(events.recv().await.unwrap().container_id, id);
        // The state file of a finished container is gone.
        assert_eq!(std::fs::read_dir(dir.path().join("state")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn working_dir_and_clean_exit() {
        let dir = tempfile::tempdir().unwrap();
        let rt = ProcessRuntime::open(dir.path().join("state")).unwrap();
        let mut cfg = config(dir.path(), "c", &["sh", "-c", "pwd"]);
        cfg.working_dir = Some(dir.path().display().to_string());
        let log = cfg.log_path.clone();
        let id = run(&rt, cfg).await;
        let s = wait_exit(&rt, &id).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (Some(0), "Completed"));
        assert_eq!(std::fs::read_to_string(log).unwrap().trim(), dir.path().display().to_string());
    }

    #[tokio::test]
    async fn no_command_and_missing_executable_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let rt = ProcessRuntime::open(dir.path().join("state")).unwrap();
        let err = rt.create_container(config(dir.path(), "c", &[])).await.unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidConfig(ref m) if m.contains("has no command")), "{err}");

        let id = rt.create_container(config(dir.path(), "d", &["/no/such/binary"])).await.unwrap();
        assert!(matches!(rt.start_container(&id).await, Err(RuntimeError::Start(_))));
        let s = rt.container_status(&id).await.unwrap();
        assert_eq!((s.state, s.exit_code, s.reason.as_str()), (ContainerState::Exited, Some(128), "StartError"));
    }

    #[tokio::test]
    async fn stop_sends_sigterm_to_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let rt = ProcessRuntime::open(dir.path().join("state")).unwrap();
        // The shell prints its background child's pid, then waits for it.
        let cfg = config(dir.path(), "c", &["sh", "-c", "sleep 100 & echo $!; wait"]);
        let log = cfg.log_path.clone();
        let id = run(&rt, cfg).await;
        let grandchild: u32 = loop {
            if let Ok(pid) = std::fs::read_to_string(&log).unwrap_or_default().trim().parse() {
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
        let rt = ProcessRuntime::open(dir.path().join("state")).unwrap();
        let cfg = config(dir.path(), "c", &["sh", "-c", "trap '' TERM; echo ready; sleep 100"]);
        let log = cfg.log_path.clone();
        let id = run(&rt, cfg).await;
        // Signal only once the trap is set.
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("ready") {
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
    async fn a_new_runtime_adopts_running_processes_instead_of_starting_them() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let rt = ProcessRuntime::open(&state).unwrap();
        let id = run(&rt, config(dir.path(), "c", &["sleep", "100"])).await;
        let pid = rt.container_status(&id).await.unwrap().pid.unwrap();
        // The agent "crashes": the runtime goes, the process stays.
        drop(rt);
        assert!(sys::proc_stat(pid).is_some_and(|s| s.is_alive()));

        let rt = ProcessRuntime::open(&state).unwrap();
        let listed = rt.list_containers().await;
        assert_eq!(listed.len(), 1, "exactly the one container, no duplicate");
        let adopted = &listed[0];
        assert_eq!((adopted.id.as_str(), adopted.pid, adopted.state), (id.as_str(), Some(pid), ContainerState::Running));
        assert_eq!(adopted.pod.name, "web");
        assert!(adopted.started_at.is_some());

        // It can be stopped like any other; its exit code was not ours to see.
        rt.stop_container(&id, Duration::from_secs(5)).await.unwrap();
        let s = rt.container_status(&id).await.unwrap();
        assert_eq!((s.exit_code, s.reason.as_str()), (Some(137), "ContainerStatusUnknown"));
        assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
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
        // time: someone else's process now.
        for (name, pid, start_time) in [("dead", dead_pid, 1), ("recycled", me, my_start + 1)] {
            let record = StateFile {
                pod: pod.clone(),
                container: name.into(),
                attempt: 0,
                image: "busybox".into(),
                pid,
                start_time,
                started_at: jiff::Timestamp::now().to_string(),
                log_path: dir.path().join("x.log"),
            };
            std::fs::write(state.join(format!("{}.json", container_id("uid-1", name, 0))), serde_json::to_vec(&record).unwrap())
                .unwrap();
        }
        let rt = ProcessRuntime::open(&state).unwrap();
        assert!(rt.list_containers().await.is_empty());
        assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0, "stale records are removed");
        assert!(sys::proc_stat(me).is_some_and(|s| s.is_alive()), "and nobody was signalled");
    }
}
