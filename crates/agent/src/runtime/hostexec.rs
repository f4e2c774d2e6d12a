//! Commands run on this host "as in a container": what `exec` means for
//! the process runtime, which has no namespaces to enter.
//!
//! "In the container" means with what the container's own process has:
//! its environment and working directory, read from `/proc/<pid>` of the
//! container's main process (so an adopted container is exec'd into as
//! faithfully as one this agent started). The command runs in a process
//! group of its own, so that it and whatever it starts can be killed
//! together when its client goes away or its timeout passes. No terminal
//! is allocated: with `tty` the command still runs with pipes, its stderr
//! is sent as stdout (a terminal has one output), and resizes are ignored.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{ExecInput, ExecOutput, ExecRequest, ExecSession, ExecSync};
use crate::sys;

/// How long output still in the pipes is waited for once the command has
/// exited (a background process it started may hold them open forever).
const DRAIN_WAIT: Duration = Duration::from_secs(1);
/// The most bytes sent in one chunk.
const CHUNK: usize = 32 * 1024;

/// Where and how a command runs: a container's environment and directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// The process's network namespace when it is not the agent's (a pod
    /// on the node bridge): the command joins it.
    pub netns: Option<std::path::PathBuf>,
}

impl Context {
    /// The context of the running process `pid`: its environment and its
    /// current directory, as the kernel shows them.
    pub fn of_process(pid: u32) -> std::io::Result<Context> {
        let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
        let env = environ
            .split(|b| *b == 0)
            .filter(|kv| !kv.is_empty())
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        let working_dir = std::fs::read_link(format!("/proc/{pid}/cwd")).ok().map(|p| p.display().to_string());
        Ok(Context { env, working_dir, netns: sys::other_netns(pid) })
    }
}

/// The message for a command that could not be started, in the words of
/// runc's `exec: "foo": executable file not found in $PATH`.
pub fn start_error(command: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound && !command.contains('/') {
        format!("exec: {command:?}: executable file not found in $PATH")
    } else {
        format!("exec: {command:?}: {e}")
    }
}

/// A command set up to run in `ctx`, in a process group of its own.
/// `argv` must not be empty.
fn command(argv: &[String], ctx: &Context) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_clear().envs(ctx.env.iter().map(|(k, v)| (k, v))).process_group(0).kill_on_drop(true);
    if let Some(dir) = &ctx.working_dir {
        cmd.current_dir(dir);
    }
    if let Some(netns) = &ctx.netns {
        // A namespace that vanished makes the spawn fail with its error.
        if let Err(e) = sys::join_netns_on_exec(cmd.as_std_mut(), netns) {
            tracing::warn!(netns = %netns.display(), error = %e, "cannot open the container's network namespace");
        }
    }
    cmd
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|sig| 128 + sig)).unwrap_or(-1)
}

/// Runs a command to its end and collects its output, as CRI's `ExecSync`
/// does for the kubelet's exec probes: no stdin, at most `limit` bytes of
/// output kept, killed with its process group after `timeout`.
pub async fn exec_sync(argv: &[String], ctx: &Context, timeout: Duration, limit: usize) -> ExecSync {
    if argv.is_empty() {
        return ExecSync::NotStarted("exec: no command".into());
    }
    let mut cmd = command(argv, ctx);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return ExecSync::NotStarted(start_error(&argv[0], &e)),
    };
    let pid = child.id();
    let readers: Vec<_> =
        [child.stdout.take().map(|p| Box::new(p) as Box<dyn AsyncRead + Send + Unpin>), child.stderr.take().map(|p| Box::new(p) as _)]
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
    ExecSync::Exited { code: exit_code(status), output }
}

/// Starts an interactive command; its output and exit come on the
/// session's `output`.
pub fn exec(ctx: Context, request: ExecRequest) -> ExecSession {
    let (input_tx, input) = mpsc::channel(16);
    let (tx, output) = mpsc::channel(16);
    tokio::spawn(run(ctx, request, input, tx));
    ExecSession { input: input_tx, output }
}

type Tx = mpsc::Sender<ExecOutput>;

/// Runs the command and pumps the streams until it exits; then sends the
/// exit message.
async fn run(ctx: Context, request: ExecRequest, mut input: mpsc::Receiver<ExecInput>, tx: Tx) {
    if request.command.is_empty() {
        let _ = tx.send(ExecOutput::Exit { code: -1, error: "exec: no command".into() }).await;
        return;
    }
    let piped = |wanted: bool| if wanted { Stdio::piped() } else { Stdio::null() };
    let mut cmd = command(&request.command, &ctx);
    cmd.stdin(piped(request.stdin))
        .stdout(piped(request.stdout || request.tty))
        .stderr(piped(request.stderr || request.tty));
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let error = start_error(&request.command[0], &e);
            let _ = tx.send(ExecOutput::Exit { code: -1, error }).await;
            return;
        }
    };
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let mut copiers = tokio::task::JoinSet::new();
    if let Some(out) = child.stdout.take() {
        copiers.spawn(copy_output(out, tx.clone(), ExecOutput::Stdout));
    }
    if let Some(err) = child.stderr.take() {
        // With a tty there is one output stream, as on a terminal.
        let as_stream = if request.tty { ExecOutput::Stdout } else { ExecOutput::Stderr };
        copiers.spawn(copy_output(err, tx.clone(), as_stream));
    }

    let mut input_open = true;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            message = input.recv(), if input_open => match message {
                Some(ExecInput::Stdin(bytes)) => {
                    if let Some(pipe) = stdin.as_mut() {
                        if pipe.write_all(&bytes).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Some(ExecInput::CloseStdin) => stdin = None,
                // Resizes mean nothing without a terminal.
                Some(ExecInput::Resize { .. }) => {}
                None => {
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
        Ok(s) => ExecOutput::Exit { code: exit_code(s), error: String::new() },
        Err(e) => ExecOutput::Exit { code: -1, error: format!("cannot wait for the command: {e}") },
    };
    let _ = tx.send(exit).await;
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

/// Copies one of the command's output pipes into the session's output.
async fn copy_output(mut pipe: impl AsyncRead + Unpin, tx: Tx, kind: fn(Vec<u8>) -> ExecOutput) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(kind(buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}
