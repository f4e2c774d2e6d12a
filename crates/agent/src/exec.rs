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
//! The agent only bridges: it finds the container's running instance and
//! asks the runtime for an exec session (CRI's `Exec`): the docker runtime
//! runs the command inside the container through the engine's exec API;
//! the process runtime, which has no namespaces to enter, runs it on this
//! host with the container process's environment and directory (see
//! [`crate::runtime::hostexec`]). A client that goes away before the
//! command ends takes the command with it.

use api::proto::exec_input::Input;
use api::proto::exec_output::Output;
use api::proto::{ExecExit, ExecInput, ExecOutput, ExecStart};
use api::ApiError;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::Status;

use std::sync::Arc;

use crate::pods::{self, pick_container, pod_ref, PodLookup};
use crate::runtime::{self, ExecRequest, ExecSession, Runtime};

/// The stream of an `Exec` reply.
pub type ExecStream = std::pin::Pin<Box<dyn Stream<Item = Result<ExecOutput, Status>> + Send>>;

type Tx = mpsc::Sender<Result<ExecOutput, Status>>;

/// Serves one exec stream: reads `start`, checks the pod and container
/// (upstream's errors), then runs the command and streams its output.
/// Once the command is under way every failure is reported in the stream's
/// `exit` message rather than as an error.
pub(crate) async fn serve<S>(runtime: Arc<dyn Runtime>, pods: &PodLookup, mut input: S) -> Result<ExecStream, ApiError>
where
    S: Stream<Item = Result<ExecInput, Status>> + Send + Unpin + 'static,
{
    let start = match input.next().await {
        Some(Ok(ExecInput { input: Some(Input::Start(start)) })) => start,
        Some(Err(status)) => return Err(ApiError::from_grpc(&status)),
        _ => return Err(ApiError::bad_request("the first message of an exec stream must be `start`")),
    };
    let session = open(runtime.as_ref(), pods, start).await?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(pump(session, input, tx));
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// Finds the running container and starts the command in it.
async fn open(runtime: &dyn Runtime, pods: &PodLookup, start: ExecStart) -> Result<ExecSession, ApiError> {
    let pod = pods::find(pods, &start.namespace, &start.pod)?;
    let container = pick_container(&pod, &start.container, true)?;
    if start.command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least one command for the container"));
    }
    let p = pod_ref(&pod);
    let running = runtime.list_containers().await.into_iter().find(|c| c.pod.uid == p.uid && c.name == container.name && c.is_running());
    let Some(running) = running else {
        // The kubelet's words when the runtime has no such running container.
        return Err(ApiError::bad_request(format!("container not found (\"{}\")", container.name)));
    };
    let request = ExecRequest {
        command: start.command,
        stdin: start.stdin,
        stdout: start.stdout,
        stderr: start.stderr,
        tty: start.tty,
    };
    runtime
        .exec(&running.id, request)
        .await
        .map_err(|e| ApiError::internal(format!("cannot exec in container {}: {e}", container.name)))
}

/// Moves the client's input into the session and the session's output to
/// the client until the command's exit has been sent.
async fn pump<S>(mut session: ExecSession, mut input: S, tx: Tx)
where
    S: Stream<Item = Result<ExecInput, Status>> + Send + Unpin + 'static,
{
    let mut input_open = true;
    loop {
        tokio::select! {
            out = session.output.recv() => {
                let output = match out {
                    Some(runtime::ExecOutput::Stdout(b)) => Output::Stdout(b),
                    Some(runtime::ExecOutput::Stderr(b)) => Output::Stderr(b),
                    Some(runtime::ExecOutput::Exit { code, error }) => Output::Exit(ExecExit { code, error }),
                    None => Output::Exit(ExecExit { code: -1, error: "the exec session ended without an exit code".into() }),
                };
                let last = matches!(output, Output::Exit(_));
                if tx.send(Ok(ExecOutput { output: Some(output) })).await.is_err() || last {
                    return;
                }
            }
            message = input.next(), if input_open => {
                let forwarded = match message {
                    Some(Ok(ExecInput { input: Some(Input::Stdin(bytes)) })) => Some(runtime::ExecInput::Stdin(bytes)),
                    Some(Ok(ExecInput { input: Some(Input::CloseStdin(true)) })) => Some(runtime::ExecInput::CloseStdin),
                    Some(Ok(ExecInput { input: Some(Input::Resize(size)) })) => Some(runtime::ExecInput::Resize {
                        width: u16::try_from(size.width).unwrap_or(u16::MAX),
                        height: u16::try_from(size.height).unwrap_or(u16::MAX),
                    }),
                    // A second start is ignored.
                    Some(Ok(_)) => None,
                    // The client finished sending (or its side failed): no more stdin.
                    Some(Err(_)) | None => {
                        input_open = false;
                        Some(runtime::ExecInput::CloseStdin)
                    }
                };
                if let Some(m) = forwarded {
                    let _ = session.input.send(m).await;
                }
            }
            // Nobody is listening any more: dropping the session ends the command.
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::tests::{pod, service};
    use crate::runtime::process::ProcessRuntime;
    use crate::runtime::{ContainerConfig, PodRef, Runtime};
    use crate::service::AgentService;
    use crate::sys;
    use crate::test_support::shim_binary;
    use api::proto::TerminalSize;
    use std::sync::Arc;
    use std::time::Duration;

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
                image: "busybox".into(),
                command: vec!["sleep".into(), "100".into()],
                env: vec![("GREETING".into(), "hello".into())],
                working_dir: Some(dir.display().to_string()),
                log_path: crate::pods::log_path(dir, &p, "app", 0),
                ..Default::default()
            })
            .await
            .unwrap();
        runtime.start_container(&id).await.unwrap();
        service(dir, runtime, pod(&["app", "idle"]))
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
        let stream = serve(svc.runtime.clone(), &svc.pods, input).await?;
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
        let mut stream = serve(svc.runtime.clone(), &svc.pods, tokio_stream::wrappers::ReceiverStream::new(input_rx)).await.unwrap();
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
