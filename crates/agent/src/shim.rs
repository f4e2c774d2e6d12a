//! The container shim: a small supervisor process per container, in the
//! role of containerd's `containerd-shim-runc-v2` or CRI-O's `conmon`.
//!
//! Why a process between the agent and the container? Three things must
//! outlive the agent, which can be upgraded, restarted or killed at any
//! time while the pods go on running:
//! - someone must hold the read end of the container's stdout and stderr
//!   and write them to the log file, with a timestamp per line (the CRI log
//!   format, see [`crate::crilog`]); a container writing into a pipe nobody
//!   reads would block, and a plain file could carry no timestamps;
//! - someone must be the container's parent, because only the parent can
//!   `wait()` for a process and learn how it ended;
//! - that exit status must be kept until an agent asks for it.
//!
//! So the agent runs `tinykube shim -- --id ID` (the same binary, a hidden
//! subcommand) and writes a [`ShimSpec`] on its stdin: the command, its
//! environment and working directory, the log file and the exit file. The
//! shim leaves the agent's session (`setsid`),
//! starts the command in a process group of its own (so that a stop signal
//! sent to the group reaches everything the command forked), tells the
//! agent the container's pid and start time as one JSON line on its stdout
//! (the *handshake*), copies both output streams into the log file, and
//! when the command exits writes an *exit file* (exit code, or 128 + the
//! signal number, and the finish time) and exits itself. It never talks to
//! the agent again: the agent stops a container by signalling its process
//! group, learns that it ended when the shim exits (its child, or a pid it
//! polls after a restart), and reads the exit file. That is how an agent
//! restarted while a container ended still reports the real exit code.
//!
//! Where tinykube simplifies: containerd's shim serves a ttrpc API (start,
//! kill, exec, resize, ...) and is a subreaper for the container's
//! orphans; this one only supervises one process and has no API. A
//! container's output without a final newline stays unwritten until more
//! comes or the stream closes, as with containerd.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crilog::{self, Stream};
use crate::sys;

/// How long the shim waits for output still buffered in the pipes after
/// the container's process group is gone. Only a process that left the
/// group (and kept the pipes) can hold them open longer.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// The one line the shim writes on its stdout, for the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Handshake {
    /// The container runs: its pid (also its process group id) and the
    /// start time that, with the pid, identifies it (see `sys`).
    Started { pid: u32, start_time: u64 },
    /// The container could not be started; the shim exits.
    Failed { error: String },
}

/// How a container ended, as the shim records it in the exit file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit code, or 128 + the signal that killed the process, as a
    /// shell and Docker report it.
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// RFC 3339.
    pub finished_at: String,
}

impl ExitRecord {
    /// Reads an exit file; `None` when there is none (yet) or it is torn.
    pub fn read(path: &Path) -> Option<ExitRecord> {
        std::fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok())
    }
}

/// What the shim is asked to run. The agent writes it as JSON on the
/// shim's stdin rather than on its command line, so that the container's
/// command shows up once in `ps` (as the container), and its environment
/// never becomes the shim's own (a pod's `LD_PRELOAD` is the container's
/// business, not the supervisor's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimSpec {
    /// The log file, appended to in the CRI format.
    pub log: PathBuf,
    /// Where the exit record goes when the container has ended.
    pub exit_file: PathBuf,
    /// The container's working directory; the shim's own when absent.
    pub cwd: Option<PathBuf>,
    /// `command` followed by `args`.
    pub argv: Vec<String>,
    /// The container's whole environment, in order (later entries win).
    pub env: Vec<(String, String)>,
    /// The pod's network namespace, joined before the command runs;
    /// `None`: the host's network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
}

/// The shim's entry point: `tinykube shim -- [--id ID]` calls it with what
/// follows `--`; the id only names the shim in `ps`. The [`ShimSpec`] comes
/// on stdin. Returns the process exit code: 0 once the container ran and
/// its exit file is written, 1 when it could not be started.
pub fn main(args: Vec<OsString>) -> i32 {
    let spec = match read_spec(&args) {
        Ok(spec) => spec,
        Err(e) => {
            handshake(&Handshake::Failed { error: format!("tinykube shim: {e}") });
            return 1;
        }
    };
    // Fails only if we lead a process group already, i.e. someone started
    // us by hand from a shell; we then run in that session, which is fine.
    let _ = sys::setsid();
    match supervise(&spec) {
        Ok(()) => 0,
        Err(e) => {
            handshake(&Handshake::Failed { error: e });
            1
        }
    }
}

/// Checks the arguments and reads the spec from stdin.
fn read_spec(args: &[OsString]) -> Result<ShimSpec, String> {
    match args {
        [] => {}
        [flag, _] if flag == "--id" => {}
        _ => return Err(format!("unexpected arguments {args:?}: the spec comes on stdin")),
    }
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).map_err(|e| format!("cannot read the spec: {e}"))?;
    let spec: ShimSpec = serde_json::from_slice(&input).map_err(|e| format!("bad spec: {e}"))?;
    if spec.argv.is_empty() {
        return Err("no command to run".into());
    }
    Ok(spec)
}

/// Writes the handshake line; false when the agent is no longer there.
fn handshake(h: &Handshake) -> bool {
    let Ok(mut line) = serde_json::to_vec(h) else { return false };
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&line).and_then(|()| out.flush()).is_ok()
}

/// Runs the container to its end. An `Err` is a start failure, reported in
/// the handshake; once the handshake says `Started`, this returns `Ok`.
fn supervise(args: &ShimSpec) -> Result<(), String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)
        .map_err(|e| format!("cannot open log file {}: {e}", args.log.display()))?;
    let mut cmd = Command::new(&args.argv[0]);
    cmd.args(&args.argv[1..])
        .env_clear()
        .envs(args.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: the agent's stop signal goes to -pid.
        .process_group(0);
    if let Some(dir) = &args.cwd {
        cmd.current_dir(dir);
    }
    if let Some(netns) = &args.netns {
        sys::join_netns_on_exec(&mut cmd, netns)
            .map_err(|e| format!("cannot open the pod's network namespace {}: {e}", netns.display()))?;
    }
    let mut child = cmd.spawn().map_err(|e| format!("exec: {:?}: {e}", args.argv[0]))?;
    let pid = child.id();
    // Our child is not reaped yet, so its /proc entry exists.
    let start_time = sys::proc_stat(pid).map(|s| s.start_time).unwrap_or_default();

    let log = Arc::new(Mutex::new(log));
    let (done_tx, done_rx) = mpsc::channel();
    let pipes: [(Option<Box<dyn Read + Send>>, Stream); 2] = [
        (child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>), Stream::Stdout),
        (child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>), Stream::Stderr),
    ];
    let mut copiers = 0;
    for (pipe, stream) in pipes {
        let Some(pipe) = pipe else { continue };
        let (log, done) = (log.clone(), done_tx.clone());
        std::thread::spawn(move || {
            copy_lines(pipe, stream, &log);
            let _ = done.send(());
        });
        copiers += 1;
    }

    if !handshake(&Handshake::Started { pid, start_time }) {
        // Nobody will ever know this container runs, so nobody could stop
        // it or keep a restarted agent from starting a second one: end it.
        let _ = sys::kill_process_group(pid, libc::SIGKILL);
        let _ = child.wait();
        return Ok(());
    }

    // Learn that the main process exited, but keep its pid reserved while
    // we take down whatever it left in its group: a container ends when
    // its main process does.
    let _ = sys::wait_exited_no_reap(pid);
    let finished_at = jiff::Timestamp::now();
    let _ = sys::kill_process_group(pid, libc::SIGKILL);
    let status = child.wait();
    for _ in 0..copiers {
        if done_rx.recv_timeout(DRAIN_WAIT).is_err() {
            break;
        }
    }
    let (exit_code, signal) = match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => (code, None),
            (None, Some(sig)) => (128 + sig, Some(sig)),
            (None, None) => (128 + libc::SIGKILL, None),
        },
        Err(_) => (128 + libc::SIGKILL, None),
    };
    let record = ExitRecord { exit_code, signal, finished_at: finished_at.to_string() };
    write_exit_file(&args.exit_file, &record);
    Ok(())
}

/// Writes the exit file atomically (a temporary file, then a rename), so a
/// reader sees either nothing or the whole record.
fn write_exit_file(path: &Path, record: &ExitRecord) {
    let Ok(bytes) = serde_json::to_vec(record) else { return };
    let name = path.file_name().unwrap_or(OsStr::new("exit"));
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    if std::fs::write(&tmp, bytes).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// Copies one stream into the log as CRI records until it closes. Lines
/// longer than [`crilog::MAX_LINE`] are split into partial records; output
/// that ends without a newline ends with a partial record.
fn copy_lines(mut pipe: impl Read, stream: Stream, log: &Mutex<File>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 32 * 1024];
    loop {
        let n = match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&chunk[..n]);
        let mut records = Vec::new();
        let consumed = split_records(&pending, false, &mut |full, content| {
            crilog::encode(&mut records, jiff::Timestamp::now(), stream, full, content);
        });
        pending.drain(..consumed);
        append(log, &records);
    }
    let mut records = Vec::new();
    split_records(&pending, true, &mut |full, content| {
        crilog::encode(&mut records, jiff::Timestamp::now(), stream, full, content);
    });
    append(log, &records);
}

/// Appends whole records under the lock, so the two streams' records never
/// interleave mid-line. A failed write (a full disk) loses those lines but
/// the pipe keeps being drained, so the container never blocks on it.
fn append(log: &Mutex<File>, records: &[u8]) {
    if records.is_empty() {
        return;
    }
    let mut file = log.lock().unwrap_or_else(|p| p.into_inner());
    let _ = file.write_all(records);
}

/// Cuts `data` into records, calling `emit(full, content)` for each, and
/// returns how many bytes it consumed. Without `at_eof`, an unterminated
/// tail shorter than [`crilog::MAX_LINE`] is left for the next read.
fn split_records(data: &[u8], at_eof: bool, emit: &mut dyn FnMut(bool, &[u8])) -> usize {
    let mut start = 0;
    loop {
        let rest = &data[start..];
        match rest.iter().position(|b| *b == b'\n') {
            Some(nl) => {
                let line = &rest[..nl];
                let mut pieces = line.chunks(crilog::MAX_LINE).peekable();
                if line.is_empty() {
                    emit(true, b"");
                }
                while let Some(piece) = pieces.next() {
                    emit(pieces.peek().is_none(), piece);
                }
                start += nl + 1;
            }
            None if rest.len() >= crilog::MAX_LINE => {
                emit(false, &rest[..crilog::MAX_LINE]);
                start += crilog::MAX_LINE;
            }
            None if at_eof && !rest.is_empty() => {
                emit(false, rest);
                return data.len();
            }
            None => return start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(data: &[u8], at_eof: bool) -> (Vec<(bool, usize)>, usize) {
        let mut got = Vec::new();
        let used = split_records(data, at_eof, &mut |full, content| got.push((full, content.len())));
        (got, used)
    }

    #[test]
    fn records_are_cut_at_newlines_and_at_the_line_limit() {
        let max = crilog::MAX_LINE;
        let long = [vec![b'x'; max + 10], b"\n".to_vec()].concat();
        let very_long = vec![b'y'; 2 * max + 1];
        // (input, at_eof, records as (full, length), bytes consumed)
        type Row = (Vec<u8>, bool, Vec<(bool, usize)>, usize);
        let table: Vec<Row> = vec![
            (b"a\nbc\n".to_vec(), false, vec![(true, 1), (true, 2)], 5),
            (b"\n".to_vec(), false, vec![(true, 0)], 1),
            (b"a\nunfinished".to_vec(), false, vec![(true, 1)], 2),
            (b"a\nunfinished".to_vec(), true, vec![(true, 1), (false, 10)], 12),
            (long.clone(), false, vec![(false, max), (true, 10)], max + 11),
            (very_long.clone(), false, vec![(false, max), (false, max)], 2 * max),
            (very_long, true, vec![(false, max), (false, max), (false, 1)], 2 * max + 1),
            (Vec::new(), true, vec![], 0),
        ];
        for (input, at_eof, want, used) in table {
            assert_eq!(split(&input, at_eof), (want, used), "{} bytes, eof {at_eof}", input.len());
        }
    }

    #[test]
    fn only_an_id_may_be_given_as_arguments() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        for bad in [os(&["--log", "x"]), os(&["--id"]), os(&["--id", "a", "b"])] {
            assert!(read_spec(&bad).unwrap_err().starts_with("unexpected arguments"), "{bad:?}");
        }
    }

    #[test]
    fn the_handshake_is_one_json_line() {
        let started = serde_json::to_string(&Handshake::Started { pid: 7, start_time: 9 }).unwrap();
        assert_eq!(started, r#"{"started":{"pid":7,"start_time":9}}"#);
        let failed: Handshake = serde_json::from_str(r#"{"failed":{"error":"exec: \"x\": no"}}"#).unwrap();
        assert_eq!(failed, Handshake::Failed { error: "exec: \"x\": no".into() });
    }
}
