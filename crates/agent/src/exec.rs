//! Exec: running a command in a running container (`kubectl exec`).
//!
//! Upstream, the api-server upgrades the client's connection and proxies it
//! to the kubelet, which asks the runtime to start the command *inside* the
//! container: in its namespaces and cgroup, with its image's filesystem and
//! its environment. Standard input, output and error travel as channels of
//! one stream, the resize of a terminal too, and the last word is the
//! command's exit code.
//!
//! Here the api-server bridges the client's WebSocket to the bidirectional
//! `Agent.Exec` stream: the first message is `start` (pod, container,
//! command, which streams, tty), then stdin bytes, resizes and `close_stdin`;
//! the reply is stdout and stderr chunks, then one `exit`.
//!
//! Where tinykube simplifies: the process runtime has no namespaces to
//! enter, so "in the container" means what the container's own process
//! gets: the same environment (resolved again from the pod spec, as for a
//! start), `workingDir` and `HOSTNAME`, on this host. No terminal is
//! allocated: with `tty` the command still runs with pipes, its stderr is
//! sent as stdout (a terminal has one output), and resizes are ignored; a
//! program that insists on a terminal (an interactive shell's prompt,
//! `top`) behaves as when piped. The command runs in a process group of its
//! own, which is killed if the client goes away before it ends.

use std::process::Stdio;
use std::time::Duration;

use api::proto::exec_input::Input;
use api::proto::exec_output::Output;
use api::proto::{ExecExit, ExecInput, ExecOutput, ExecStart};
use api::ApiError;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tonic::Status;

use crate::runtime::process::container_env;
use crate::service::{pick_container, AgentService, ExecStream};
use crate::worker::pod_ref;
use crate::{env, sys};

/// How long output still in the pipes is waited for once the command has
/// exited (a background process it started may hold them open forever).
const DRAIN_WAIT: Duration = Duration::from_secs(1);
/// The most bytes sent in one chunk.
const CHUNK: usize = 32 * 1024;

type Tx = mpsc::Sender<Result<ExecOutput, Status>>;

/// What a `start` resolves to: the command, ready to spawn.
struct Prepared {
    start: ExecStart,
    env: Vec<(String, String)>,
    working_dir: Option<String>,
}

/// Serves one exec stream: reads `start`, checks the pod and container
/// (upstream's errors), then runs the command and streams its output.
/// Once the command is under way every failure is reported in the stream's
/// `exit` message rather than as an error.
pub(crate) async fn serve<S>(svc: &AgentService, mut input: S) -> Result<ExecStream, ApiError>
where
    S: Stream<Item = Result<ExecInput, Status>> + Send + Unpin + 'static,
{
    let start = match input.next().await {
        Some(Ok(ExecInput { input: Some(Input::Start(start)) })) => start,
        Some(Err(status)) => return Err(ApiError::from_grpc(&status)),
        _ => return Err(ApiError::bad_request("the first message of an exec stream must be `start`")),
    };
    let prepared = prepare(svc, start).await?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(run(prepared, input, tx));
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

async fn prepare(svc: &AgentService, start: ExecStart) -> Result<Prepared, ApiError> {
    let pod = svc.pod(&start.namespace, &start.pod)?;
    let container = pick_container(&pod, &start.container, true)?;
    if start.command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least one command for the container"));
    }
    let p = pod_ref(&pod);
    let running = svc.runtime.list_containers().await.into_iter().any(|c| c.pod.uid == p.uid && c.name == container.name && c.is_running());
    if !running {
        // The kubelet's words when the runtime has no such running container.
        return Err(ApiError::bad_request(format!("container not found (\"{}\")", container.name)));
    }
    let resolved = env::resolve(&svc.client, &pod, &container, &svc.node_address)
        .await
        .map_err(|e| ApiError::internal(format!("cannot resolve the environment of container {}: {e}", container.name)))?;
    Ok(Prepared {
        env: container_env(&p, &resolved),
        working_dir: container.working_dir.clone().filter(|d| !d.is_empty()),
        start,
    })
}

/// The message for a command that could not be started, in the words of
/// runc's `exec: "foo": executable file not found in $PATH`.
fn start_error(command: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound && !command.contains('/') {
        format!("exec: {command:?}: executable file not found in $PATH")
    } else {
        format!("exec: {command:?}: {e}")
    }
}

/// Runs the command and pumps the streams until it exits; then sends the
/// exit message.
async fn run<S>(prepared: Prepared, mut input: S, tx: Tx)
where
    S: Stream<Item = Result<ExecInput, Status>> + Send + Unpin + 'static,
{
    let start = &prepared.start;
    let piped = |wanted: bool| if wanted { Stdio::piped() } else { Stdio::null() };
    let mut cmd = command(&start.command, &prepared.env, prepared.working_dir.as_deref());
    cmd.stdin(piped(start.stdin)).stdout(piped(start.stdout || start.tty)).stderr(piped(start.stderr || start.tty));
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let error = start_error(&start.command[0], &e);
            let _ = tx.send(Ok(ExecOutput { output: Some(Output::Exit(ExecExit { code: -1, error })) })).await;
            return;
        }
    };
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let mut copiers = tokio::task::JoinSet::new();
    if let Some(out) = child.stdout.take() {
        copiers.spawn(copy_output(out, tx.clone(), Output::Stdout));
    }
    if let Some(err) = child.stderr.take() {
        // With a tty there is one output stream, as on a terminal.
        let as_stream = if start.tty { Output::Stdout } else { Output::Stderr };
        copiers.spawn(copy_output(err, tx.clone(), as_stream));
    }

    let mut input_open = true;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            message = input.next(), if input_open => match message {
                Some(Ok(ExecInput { input: Some(Input::Stdin(bytes)) })) => {
                    if let Some(pipe) = stdin.as_mut() {
                        if pipe.write_all(&bytes).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Some(Ok(ExecInput { input: Some(Input::CloseStdin(true)) })) => stdin = None,
                // Resizes mean nothing without a terminal; a second start is ignored.
                Some(Ok(_)) => {}
                // The client finished sending (or its side failed): no more stdin.
                Some(Err(_)) | None => {
                    input_open = false;
                    stdin = None;
                }
            },
            _ = tx.closed() => {
                // Nobody is listening any more: end the command and what it started.
                if let Some(pid) = pid {
                    let _ = sys::kill_process_group(pid, libc::SIGKILL);
                }
                let _ = child.wait().await;
                return;
            }
        }
    };
    drop(stdin);
    let _ = tokio::time::timeout(DRAIN_WAIT, async { while copiers.join_next().await.is_some() {} }).await;
    copiers.abort_all();
    let exit = match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            let code = s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(-1);
            ExecExit { code, error: String::new() }
        }
        Err(e) => ExecExit { code: -1, error: format!("cannot wait for the command: {e}") },
    };
    let _ = tx.send(Ok(ExecOutput { output: Some(Output::Exit(exit)) })).await;
}

/// A command set up to run "in the container": only the container's
/// environment, its working directory, and a process group of its own so
/// that it and whatever it starts can be killed together. `argv` must not
/// be empty.
fn command(argv: &[String], env: &[(String, String)], working_dir: Option<&str>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_clear().envs(env.iter().map(|(k, v)| (k, v))).process_group(0).kill_on_drop(true);
    if let Some(dir) = working_dir {
        cmd.current_dir(dir);
    }
    cmd
}

/// How an [`exec_sync`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExecSync {
    /// The command ran to its end: its exit code (128 + N when killed by
    /// signal N) and its stdout followed by its stderr.
    Exited { code: i32, output: Vec<u8> },
    /// It outlived its timeout and was killed with its process group.
    TimedOut,
    /// It could not be started; the text is runc's.
    NotStarted(String),
}

/// Runs a command in a container's context to its end and collects its
/// output, as CRI's `ExecSync` does for the kubelet's exec probes: no
/// stdin, at most `limit` bytes of output kept, killed after `timeout`.
/// `env` is the container's full environment (see
/// [`container_env`](crate::runtime::process::container_env)).
pub(crate) async fn exec_sync(
    argv: &[String],
    env: &[(String, String)],
    working_dir: Option<&str>,
    timeout: Duration,
    limit: usize,
) -> ExecSync {
    if argv.is_empty() {
        return ExecSync::NotStarted("exec: no command".into());
    }
    let mut cmd = command(argv, env, working_dir);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return ExecSync::NotStarted(start_error(&argv[0], &e)),
    };
    let pid = child.id();
    let readers: Vec<_> = [child.stdout.take().map(|p| Box::new(p) as Box<dyn AsyncRead + Send + Unpin>), child.stderr.take().map(|p| Box::new(p) as _)]
        .into_iter()
        .flatten()
        .map(|pipe| tokio::spawn(read_capped(pipe, limit)))
        .collect();
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return ExecSync::NotStarted(format!("cannot wait for the command: {e}")),
        Err(_) => {
            if let Some(pid) = pid {
                let _ = sys::kill_process_group(pid, libc::SIGKILL);
            }
            let _ = child.wait().await;
            for reader in readers {
                reader.abort();
            }
            return ExecSync::TimedOut;
        }
    };
    let mut output = Vec::new();
    for reader in readers {
        let abort = reader.abort_handle();
        // Something the command started in the background may hold the
        // pipe open; what arrived by then is what there is.
        match tokio::time::timeout(DRAIN_WAIT, reader).await {
            Ok(Ok(bytes)) => output.extend(bytes),
            _ => abort.abort(),
        }
    }
    output.truncate(limit);
    use std::os::unix::process::ExitStatusExt;
    let code = status.code().or_else(|| status.signal().map(|sig| 128 + sig)).unwrap_or(-1);
    ExecSync::Exited { code, output }
}

/// Reads a pipe to its end, keeping the first `limit` bytes: the rest is
/// drained so the writer never blocks on a full pipe.
async fn read_capped(mut pipe: impl AsyncRead + Unpin, limit: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Copies one of the command's output pipes into the reply stream.
async fn copy_output(mut pipe: impl AsyncRead + Unpin, tx: Tx, kind: fn(Vec<u8>) -> Output) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(Ok(ExecOutput { output: Some(kind(buf[..n].to_vec())) })).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::tests::{pod, service};
    use crate::runtime::process::ProcessRuntime;
    use crate::runtime::{ContainerConfig, PodRef, Runtime};
    use crate::test_support::shim_binary;
    use api::proto::TerminalSize;
    use k8s_openapi::api::core::v1::EnvVar;
    use std::sync::Arc;

    /// A service whose pod `web` has containers `app` (running `sleep`,
    /// with an environment and a working directory) and `idle` (never
    /// started).
    async fn running_service(dir: &std::path::Path) -> AgentService {
        let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::open(dir.join("state"), shim_binary()).unwrap());
        let p = PodRef { namespace: "default".into(), name: "web".into(), uid: "u1".into() };
        let id = runtime
            .create_container(ContainerConfig {
                pod: p.clone(),
                name: "app".into(),
                attempt: 0,
                image: "busybox".into(),
                argv: vec!["sleep".into(), "100".into()],
                env: vec![],
                working_dir: None,
                log_path: crate::worker::log_path(dir, &p, "app", 0),
            })
            .await
            .unwrap();
        runtime.start_container(&id).await.unwrap();
        let mut pod = (*pod(&["app", "idle"])).clone();
        let app = &mut pod.spec.as_mut().unwrap().containers[0];
        app.env = Some(vec![EnvVar { name: "GREETING".into(), value: Some("hello".into()), ..Default::default() }]);
        app.working_dir = Some(dir.display().to_string());
        service(dir, runtime, Arc::new(pod))
    }

    /// Stops the `sleep` the service's pod runs, so no test leaves it behind.
    async fn stop(runtime: &Arc<dyn Runtime>) {
        for c in runtime.list_containers().await {
            runtime.remove_container(&c.id).await.unwrap();
        }
    }

    fn start(container: &str, command: &[&str], stdin: bool) -> ExecInput {
        ExecInput {
            input: Some(Input::Start(ExecStart {
                namespace: "default".into(),
                pod: "web".into(),
                container: container.into(),
                command: command.iter().map(|s| s.to_string()).collect(),
                stdin,
                stdout: true,
                stderr: true,
                tty: false,
            })),
        }
    }

    /// Runs an exec with the given input messages; returns (stdout,
    /// stderr, exit) or the error the call was refused with.
    async fn exec(svc: &AgentService, messages: Vec<ExecInput>) -> Result<(String, String, ExecExit), ApiError> {
        let input = futures::stream::iter(messages.into_iter().map(Ok));
        let stream = serve(svc, input).await?;
        collect(stream).await
    }

    async fn collect(mut stream: ExecStream) -> Result<(String, String, ExecExit), ApiError> {
        let (mut out, mut err, mut exit) = (Vec::new(), Vec::new(), None);
        while let Some(message) = stream.next().await {
            match message.map_err(|s| ApiError::from_grpc(&s))?.output {
                Some(Output::Stdout(b)) => out.extend(b),
                Some(Output::Stderr(b)) => err.extend(b),
                Some(Output::Exit(e)) => exit = Some(e),
                None => {}
            }
        }
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        Ok((text(out), text(err), exit.expect("an exit message ends the stream")))
    }

    #[tokio::test]
    async fn runs_with_the_containers_environment_and_reports_output_and_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let svc = running_service(dir.path()).await;
        let script = "echo $GREETING $HOSTNAME; pwd; echo oops >&2; exit 5";
        let (out, err, exit) = exec(&svc, vec![start("app", &["sh", "-c", script], false)]).await.unwrap();
        assert_eq!(out, format!("hello web\n{}\n", dir.path().display()));
        assert_eq!((err.as_str(), exit.code, exit.error.as_str()), ("oops\n", 5, ""));
        // No container named: the first one.
        let (out, _, exit) = exec(&svc, vec![start("", &["echo", "first"], false)]).await.unwrap();
        assert_eq!((out.as_str(), exit.code), ("first\n", 0));
        stop(&svc.runtime).await;
    }

    #[tokio::test]
    async fn stdin_round_trips_until_closed() {
        let dir = tempfile::tempdir().unwrap();
        let svc = running_service(dir.path()).await;
        let messages = vec![
            start("app", &["sh", "-c", "tr a-z A-Z; echo done"], true),
            ExecInput { input: Some(Input::Stdin(b"abc\n".to_vec())) },
            ExecInput { input: Some(Input::Resize(TerminalSize { width: 80, height: 24 })) },
            ExecInput { input: Some(Input::Stdin(b"def".to_vec())) },
            ExecInput { input: Some(Input::CloseStdin(true)) },
        ];
        let (out, _, exit) = exec(&svc, messages).await.unwrap();
        assert_eq!((out.as_str(), exit.code), ("ABC\nDEFdone\n", 0));
        stop(&svc.runtime).await;
    }

    #[tokio::test]
    async fn a_command_that_cannot_start_reports_minus_one() {
        let dir = tempfile::tempdir().unwrap();
        let svc = running_service(dir.path()).await;
        let (_, _, exit) = exec(&svc, vec![start("app", &["no-such-command-here"], false)]).await.unwrap();
        assert_eq!((exit.code, exit.error.as_str()), (-1, "exec: \"no-such-command-here\": executable file not found in $PATH"));
        stop(&svc.runtime).await;
    }

    #[tokio::test]
    async fn errors_match_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let svc = running_service(dir.path()).await;
        let err = |r: Result<(String, String, ExecExit), ApiError>| {
            let e = r.unwrap_err();
            (e.code, e.message)
        };
        assert_eq!(err(exec(&svc, vec![start("nope", &["true"], false)]).await), (400, "container nope is not valid for pod web".into()));
        assert_eq!(err(exec(&svc, vec![start("idle", &["true"], false)]).await), (400, "container not found (\"idle\")".into()));
        assert_eq!(
            err(exec(&svc, vec![start("app", &[], false)]).await),
            (400, "you must specify at least one command for the container".into())
        );
        let mut elsewhere = start("app", &["true"], false);
        if let Some(Input::Start(s)) = elsewhere.input.as_mut() {
            s.pod = "ghost".into();
        }
        assert_eq!(err(exec(&svc, vec![elsewhere]).await), (404, "pods \"ghost\" not found".into()));
        assert_eq!(
            err(exec(&svc, vec![ExecInput { input: Some(Input::CloseStdin(true)) }]).await),
            (400, "the first message of an exec stream must be `start`".into())
        );
        stop(&svc.runtime).await;
    }

    #[tokio::test]
    async fn a_client_that_goes_away_takes_the_command_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let svc = running_service(dir.path()).await;
        let (input_tx, input_rx) = mpsc::channel(4);
        input_tx.send(Ok(start("app", &["sh", "-c", "echo $$; exec sleep 100"], true))).await.unwrap();
        let mut stream = serve(&svc, tokio_stream::wrappers::ReceiverStream::new(input_rx)).await.unwrap();
        let Some(Ok(ExecOutput { output: Some(Output::Stdout(pid)) })) = stream.next().await else { panic!("no pid") };
        let pid: u32 = String::from_utf8_lossy(&pid).trim().parse().unwrap();
        drop(stream);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sys::proc_stat(pid).is_some_and(|s| s.is_alive()) {
            assert!(std::time::Instant::now() < deadline, "command {pid} outlived its client");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(input_tx);
        stop(&svc.runtime).await;
    }

    #[tokio::test]
    async fn serves_exec_over_grpc() {
        use api::proto::agent_client::AgentClient;
        use api::proto::agent_server::AgentServer;
        let dir = tempfile::tempdir().unwrap();
        let svc = running_service(dir.path()).await;
        let runtime = svc.runtime.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AgentServer::new(svc))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let mut client = AgentClient::connect(format!("http://{addr}")).await.unwrap();
        let messages = vec![
            start("app", &["sh", "-c", "cat; exit 2"], true),
            ExecInput { input: Some(Input::Stdin(b"over the wire".to_vec())) },
            ExecInput { input: Some(Input::CloseStdin(true)) },
        ];
        let reply = client.exec(futures::stream::iter(messages)).await.unwrap().into_inner();
        let (out, _, exit) = collect(Box::pin(reply)).await.unwrap();
        assert_eq!((out.as_str(), exit.code), ("over the wire", 2));

        let status = client.exec(futures::stream::iter(vec![start("idle", &["true"], false)])).await.unwrap_err();
        assert_eq!(ApiError::from_grpc(&status).message, "container not found (\"idle\")");
        server.abort();
        stop(&runtime).await;
    }
}
