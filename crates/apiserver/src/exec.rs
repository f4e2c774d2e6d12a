//! `kubectl exec`: a command in a running container, bridged from a
//! WebSocket to the pod's node agent.
//!
//! In Kubernetes, `kubectl exec POD -- sh -c 'echo hi'` asks kube-apiserver
//! for the `pods/exec` subresource. The api-server does not run anything:
//! it checks the pod and container, then connects the client through to
//! the kubelet of the pod's node, which asks the container runtime to start
//! the command inside the container. Since Kubernetes 1.30 the client side
//! of that connection is a WebSocket with the *channel* sub-protocol
//! (`v5.channel.k8s.io`, KEP-3396): every binary message starts with one
//! byte naming a channel — 0 stdin, 1 stdout, 2 stderr, 3 the error
//! channel, 4 terminal resizes — and v5 adds 255, "close this channel",
//! so a client can say that its stdin has ended (`echo hi | kubectl exec -i
//! POD -- cat` needs that to finish). When the command ends the server
//! writes one `metav1.Status` on channel 3 — `Success`, or `Failure` with
//! reason `NonZeroExitCode` and the exit code in `details.causes` — and
//! closes the WebSocket; kubectl exits with that code.
//!
//! tinykube does the same: [`handle`] validates the request, opens the
//! agent's bidirectional `Exec` gRPC stream (the first message is an
//! `ExecStart`), answers `101 Switching Protocols`, and then a spawned task
//! copies WebSocket frames to `ExecInput`s and `ExecOutput`s to frames.
//!
//! Where tinykube simplifies: only the WebSocket transport with the v5 and
//! v4 channel protocols is spoken. Older clients and the SPDY fallback
//! kubectl tries when the WebSocket upgrade fails get a 400 that says so;
//! the base64 text variants (`base64.channel.k8s.io`) and `pods/attach`
//! are not offered. The api-server dials the agent itself rather than
//! redirecting or proxying an HTTP stream to it, as [`crate::proxy`] does
//! for logs.

use std::fmt;
use std::time::Duration;

use api::proto::{exec_input, exec_output, ExecExit, ExecInput, ExecOutput, ExecStart, TerminalSize};
use api::status::{Cause, Details};
use api::ApiError;
use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use http::{header, HeaderMap, Request, Response, StatusCode};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;

/// The channel sub-protocol with stream close (KEP-3396); kubectl 1.30+
/// asks for it first.
pub const V5_PROTOCOL: &str = "v5.channel.k8s.io";
/// The channel sub-protocol with a JSON `Status` on the error channel and
/// resizes, but no way to close stdin.
pub const V4_PROTOCOL: &str = "v4.channel.k8s.io";

/// The channel numbers, by convention the POSIX file descriptors for the
/// first three, as in upstream's `remotecommand` package.
pub mod channel {
    /// Client to server: bytes for the command's standard input.
    pub const STDIN: u8 = 0;
    /// Server to client: the command's standard output.
    pub const STDOUT: u8 = 1;
    /// Server to client: the command's standard error.
    pub const STDERR: u8 = 2;
    /// Server to client: one `metav1.Status` when the command has ended.
    pub const ERROR: u8 = 3;
    /// Client to server: `{"Width":80,"Height":24}` when the terminal
    /// changes size.
    pub const RESIZE: u8 = 4;
    /// Client to server (v5 only): `[255, n]` closes channel `n`.
    pub const CLOSE: u8 = 255;
}

/// How long to wait for the client's reply to our close frame before the
/// connection is dropped anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How many client frames may wait for the agent before the WebSocket
/// stops being read; a command that does not read its stdin thereby slows
/// the client down instead of filling the api-server's memory.
const INPUT_BUFFER: usize = 16;

/// Failures of a session after the upgrade; they end the session and are
/// logged, since the client has no HTTP response left to receive them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client message that does not follow the channel protocol.
    #[error("malformed frame: {0}")]
    Frame(String),
    /// The HTTP connection could not be taken over for the WebSocket.
    #[error("upgrading the connection: {0}")]
    Upgrade(#[from] hyper::Error),
    /// The WebSocket failed mid-session (the client vanished, say).
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
}

/// Which channel sub-protocol the client and server agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V5,
    V4,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V5 => V5_PROTOCOL,
            Protocol::V4 => V4_PROTOCOL,
        }
    }

    /// The first protocol in the client's list that tinykube speaks: the
    /// client's order is its preference, as in upstream's `wsstream`
    /// handshake. `values` are the `Sec-WebSocket-Protocol` header values,
    /// each possibly a comma-separated list.
    pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Protocol> {
        values.into_iter().flat_map(|v| v.split(',')).map(str::trim).find_map(|p| match p {
            V5_PROTOCOL => Some(Protocol::V5),
            V4_PROTOCOL => Some(Protocol::V4),
            _ => None,
        })
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The query of a `pods/exec` request, upstream's `PodExecOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// The command and its arguments, one `command=` parameter each.
    pub command: Vec<String>,
    /// Empty until [`resolve_container`] picks the pod's only container.
    pub container: String,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    /// Parses `command=sh&command=-c&container=c&stdin=true&...`. The
    /// kubelet's names `input`, `output` and `error` are accepted too.
    pub fn from_query(query: &str) -> Result<Self, ApiError> {
        let mut opts = ExecOptions::default();
        for (key, value) in form_pairs(query) {
            let flag =
                |v: &str| parse_bool(v).ok_or_else(|| ApiError::bad_request(format!("invalid value for {key}: {v:?} is not a boolean")));
            match key.as_str() {
                "command" => opts.command.push(value),
                "container" => opts.container = value,
                "stdin" | "input" => opts.stdin = flag(&value)?,
                "stdout" | "output" => opts.stdout = flag(&value)?,
                "stderr" | "error" => opts.stderr = flag(&value)?,
                "tty" => opts.tty = flag(&value)?,
                _ => {}
            }
        }
        // A terminal has one output stream; upstream drops stderr rather
        // than failing, and so does tinykube.
        if opts.tty {
            opts.stderr = false;
        }
        Ok(opts)
    }

    /// The checks that need no pod, with upstream's messages.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.command.is_empty() {
            return Err(ApiError::bad_request("you must specify at least one command for the container"));
        }
        if !self.stdin && !self.stdout && !self.stderr {
            return Err(ApiError::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
        }
        Ok(())
    }
}

/// Splits an `application/x-www-form-urlencoded` query (`+` is a space,
/// as Go's `url.ParseQuery` reads it) into decoded pairs, in order.
fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    let decode = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    query.split('&').filter(|p| !p.is_empty()).map(move |pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k), decode(v))
    })
}

/// Go's `strconv.ParseBool`, which the api-server's parameter codec uses.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Picks the container to run in, as upstream's `streamLocation` does: a
/// named container must exist in the pod (init and ephemeral containers
/// count), and with no name the pod must have exactly one container.
/// kubectl always names one, so the second rule matters to other clients.
pub fn resolve_container(pod: &Value, requested: &str) -> Result<String, ApiError> {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| cs.iter().filter_map(|c| c["name"].as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    let containers = names("containers");
    let init = names("initContainers");
    if requested.is_empty() {
        return match containers.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(ApiError::bad_request(format!("a container name must be specified for pod {pod_name}"))),
            many => {
                let mut msg = format!("a container name must be specified for pod {pod_name}, choose one of: [{}]", many.join(" "));
                if !init.is_empty() {
                    msg.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
                }
                Err(ApiError::bad_request(msg))
            }
        };
    }
    let ephemeral = names("ephemeralContainers");
    if containers.iter().chain(&init).chain(&ephemeral).any(|c| c == requested) {
        Ok(requested.to_string())
    } else {
        Err(ApiError::bad_request(format!("container {requested} is not valid for pod {pod_name}")))
    }
}

/// Whether the pod's status reports `container` as running. A command can
/// only start in a running container; the kubelet answers anything else
/// with "container not found".
pub fn container_running(pod: &Value, container: &str) -> bool {
    ["containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"].iter().any(|field| {
        pod["status"][*field]
            .as_array()
            .is_some_and(|ss| ss.iter().any(|s| s["name"] == container && s["state"]["running"].is_object()))
    })
}

/// The pre-upgrade checks against the pod object, in upstream's order:
/// the container, the node, then whether the container runs.
fn check_pod(pod: &Value, opts: &mut ExecOptions) -> Result<(), ApiError> {
    opts.container = resolve_container(pod, &opts.container)?;
    opts.validate()?;
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    if pod["spec"]["nodeName"].as_str().unwrap_or_default().is_empty() {
        return Err(ApiError::bad_request(format!("pod {pod_name} does not have a host assigned")));
    }
    if !container_running(pod, &opts.container) {
        return Err(ApiError::bad_request(format!("unable to upgrade connection: container not found ({:?})", opts.container)));
    }
    Ok(())
}

/// What the client sent on one WebSocket message, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// Bytes for the command's stdin.
    Stdin(Bytes),
    /// The client's terminal changed size.
    Resize { width: u32, height: u32 },
    /// The client's stdin has ended (v5 `[255, 0]`).
    CloseStdin,
    /// Nothing to do: an empty message, or a close of a channel the
    /// client does not write.
    Nothing,
}

/// One message on the wire: the channel byte, then the payload.
pub fn encode_frame(channel: u8, payload: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(payload.len() + 1);
    frame.push(channel);
    frame.extend_from_slice(payload);
    frame.into()
}

/// Reads one binary message from the client.
pub fn decode_client_frame(protocol: Protocol, data: &Bytes) -> Result<ClientFrame, Error> {
    let Some(&channel) = data.first() else {
        return Ok(ClientFrame::Nothing);
    };
    let payload = data.slice(1..);
    match channel {
        channel::STDIN => Ok(ClientFrame::Stdin(payload)),
        channel::RESIZE => {
            // Go's TerminalSize has no JSON tags, so the keys are the field
            // names; Go's decoder ignores case, hence the aliases.
            #[derive(Deserialize)]
            struct Size {
                #[serde(rename = "Width", alias = "width", default)]
                width: u32,
                #[serde(rename = "Height", alias = "height", default)]
                height: u32,
            }
            let size: Size = serde_json::from_slice(&payload).map_err(|e| Error::Frame(format!("resize: {e}")))?;
            Ok(ClientFrame::Resize { width: size.width, height: size.height })
        }
        channel::CLOSE if protocol == Protocol::V5 => match payload.as_ref() {
            [channel::STDIN] => Ok(ClientFrame::CloseStdin),
            [_] => Ok(ClientFrame::Nothing),
            _ => Err(Error::Frame(format!("a close message carries one channel, not {} bytes", payload.len()))),
        },
        other => Err(Error::Frame(format!("channel {other} is not writable by the client under {protocol}"))),
    }
}

/// `metav1.Status` as the error channel carries it: no `kind` or
/// `apiVersion` (upstream marshals the bare struct), an empty `metadata`,
/// and the remaining fields only when set. Field order follows the Go
/// struct so the bytes match kube's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamStatus {
    metadata: EmptyObject,
    pub status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct EmptyObject {}

fn is_zero(code: &u16) -> bool {
    *code == 0
}

impl StreamStatus {
    /// The command exited 0.
    pub fn success() -> Self {
        StreamStatus {
            metadata: EmptyObject {},
            status: "Success",
            message: String::new(),
            reason: String::new(),
            details: None,
            code: 0,
        }
    }

    /// The command exited with `code`; client-go reads the code from the
    /// `ExitCode` cause (whose JSON key is `reason`, Go's `StatusCause.Type`).
    /// The message is the kubelet's wrapping of the runtime's error text.
    pub fn non_zero_exit(command: &[String], code: i32) -> Self {
        StreamStatus {
            message: format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                command.join(" ")
            ),
            reason: "NonZeroExitCode".into(),
            details: Some(Details {
                causes: vec![Cause { reason: "ExitCode".into(), message: code.to_string(), field: String::new() }],
                ..Default::default()
            }),
            status: "Failure",
            ..Self::success()
        }
    }

    /// The command could not be run at all; upstream's
    /// `NewInternalError("error executing command in container: ...")`.
    pub fn internal(why: impl fmt::Display) -> Self {
        let cause = format!("error executing command in container: {why}");
        StreamStatus {
            message: format!("Internal error occurred: {cause}"),
            reason: "InternalError".into(),
            details: Some(Details {
                causes: vec![Cause { reason: String::new(), message: cause, field: String::new() }],
                ..Default::default()
            }),
            code: 500,
            status: "Failure",
            ..Self::success()
        }
    }

    /// The status for the agent's report of how the command ended. An
    /// exit code of -1 means it never started.
    pub fn from_exit(command: &[String], exit: &ExecExit) -> Self {
        match exit.code {
            0 => Self::success(),
            code if code < 0 => Self::internal(if exit.error.is_empty() { "the command could not be started" } else { &exit.error }),
            code => Self::non_zero_exit(command, code),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Handles GET/POST `.../pods/{name}/exec`. Validates, dials the pod's
/// agent, answers 101 and bridges in a spawned task.
///
/// The serving connection must allow upgrades (hyper's `with_upgrades`,
/// or hyper-util's `serve_connection_with_upgrades`), or the bridge never
/// gets the connection and the client sees it close after the 101.
pub async fn handle(
    registry: Registry,
    namespace: String,
    pod: String,
    mut req: Request<hyper::body::Incoming>,
) -> http::Response<crate::http::Body> {
    let session = match Session::open(&registry, &namespace, &pod, &req).await {
        Ok(s) => s,
        Err(e) => return crate::http::error(&e),
    };
    let response = session.switching_protocols();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let (ns, name) = (namespace, pod);
        if let Err(e) = session.run(on_upgrade).await {
            tracing::debug!(namespace = %ns, pod = %name, error = %e, "exec session ended with an error");
        }
    });
    response
}

/// An exec that passed the checks and whose agent stream is open, waiting
/// for the connection to be handed over.
struct Session {
    protocol: Protocol,
    accept_key: String,
    options: ExecOptions,
    /// Where client input goes; the first message (`start`) is already in.
    input: mpsc::Sender<ExecInput>,
    output: tonic::Streaming<ExecOutput>,
}

impl Session {
    async fn open(registry: &Registry, namespace: &str, pod: &str, req: &Request<hyper::body::Incoming>) -> Result<Self, ApiError> {
        let mut options = ExecOptions::from_query(req.uri().query().unwrap_or_default())?;
        let pods = api::resources::by_resource("", "pods").expect("pods are in the table");
        let pod_obj = registry.get(pods, namespace, pod).await?;
        check_pod(&pod_obj, &mut options)?;
        // Checked last so that kubectl's SPDY retry after a failed upgrade
        // reports the real problem (a missing pod, say) rather than this.
        let (protocol, accept_key) = websocket_handshake(req.headers())?;

        let mut agent = crate::proxy::agent_for_pod(registry, namespace, pod).await?;
        let (input, rx) = mpsc::channel(INPUT_BUFFER);
        let start = ExecStart {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: options.container.clone(),
            command: options.command.clone(),
            stdin: options.stdin,
            stdout: options.stdout,
            stderr: options.stderr,
            tty: options.tty,
        };
        input
            .send(ExecInput { input: Some(exec_input::Input::Start(start)) })
            .await
            .map_err(|_| ApiError::internal("the exec input channel closed before it was used"))?;
        let output = agent.exec(tokio_stream::wrappers::ReceiverStream::new(rx)).await.map_err(|s| ApiError::from_grpc(&s))?.into_inner();
        Ok(Session { protocol, accept_key, options, input, output })
    }

    fn switching_protocols(&self) -> Response<crate::http::Body> {
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, &self.accept_key)
            .header(header::SEC_WEBSOCKET_PROTOCOL, self.protocol.name())
            .body(crate::http::full(Bytes::new()))
            .unwrap_or_else(|_| crate::http::error(&ApiError::internal("building the 101 response")))
    }

    /// Runs the session to its end: the command's exit, the client
    /// leaving, or a broken connection.
    async fn run(self, on_upgrade: OnUpgrade) -> Result<(), Error> {
        let upgraded = on_upgrade.await?;
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let (mut sink, stream) = ws.split();
        let client_gone = CancellationToken::new();
        let inbound = tokio::spawn(pump_client(stream, self.protocol, self.options.clone(), self.input, client_gone.clone()));

        let outcome = pump_agent(&mut sink, self.output, &self.options, &client_gone).await;
        if let Ok(Some(status)) = &outcome {
            // The status, then a normal close: client-go reads the error
            // channel until the connection closes, so the close is what
            // lets kubectl exit.
            sink.send(Message::Binary(encode_frame(channel::ERROR, &status.to_bytes()))).await?;
            sink.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await?;
        }
        // Give the client a moment to answer the close; dropping the
        // inbound half also drops the agent's input, ending its stream.
        let abort = inbound.abort_handle();
        if tokio::time::timeout(CLOSE_GRACE, inbound).await.is_err() {
            abort.abort();
        }
        outcome.map(|_| ())
    }
}

/// Checks that the request is a WebSocket upgrade speaking a channel
/// protocol tinykube knows; returns that protocol and the
/// `Sec-WebSocket-Accept` value.
fn websocket_handshake(headers: &HeaderMap) -> Result<(Protocol, String), ApiError> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err(ApiError::bad_request(format!(
            "tinykube supports exec over WebSocket ({V5_PROTOCOL}) only; upgrade the request to a WebSocket (kubectl 1.30 or newer does)"
        )));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| ApiError::bad_request("the WebSocket upgrade has no Sec-WebSocket-Key header"))?;
    let offered: Vec<&str> = headers.get_all(header::SEC_WEBSOCKET_PROTOCOL).iter().filter_map(|v| v.to_str().ok()).collect();
    let protocol = Protocol::negotiate(offered.iter().copied()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unable to upgrade connection: requested protocol(s) are not supported: [{}]; supports [{V5_PROTOCOL} {V4_PROTOCOL}]",
            offered.join(" ")
        ))
    })?;
    Ok((protocol, derive_accept_key(key.as_bytes())))
}

type WsSink = SplitSink<WebSocketStream<TokioIo<Upgraded>>, Message>;
type WsStream = SplitStream<WebSocketStream<TokioIo<Upgraded>>>;

/// Copies the agent's output to the client until the command exits.
/// Returns the status to send on the error channel, or `None` when the
/// client left first.
async fn pump_agent(
    sink: &mut WsSink,
    mut output: tonic::Streaming<ExecOutput>,
    opts: &ExecOptions,
    client_gone: &CancellationToken,
) -> Result<Option<StreamStatus>, Error> {
    loop {
        let next = tokio::select! {
            _ = client_gone.cancelled() => return Ok(None),
            next = output.message() => next,
        };
        let (channel, data) = match next {
            Ok(Some(ExecOutput { output: Some(exec_output::Output::Stdout(data)) })) if opts.stdout => (channel::STDOUT, data),
            Ok(Some(ExecOutput { output: Some(exec_output::Output::Stderr(data)) })) if opts.stderr => (channel::STDERR, data),
            Ok(Some(ExecOutput { output: Some(exec_output::Output::Exit(exit)) })) => {
                return Ok(Some(StreamStatus::from_exit(&opts.command, &exit)));
            }
            // Output on a stream the client did not ask for, or an empty
            // message: nothing to forward.
            Ok(Some(_)) => continue,
            Ok(None) => return Ok(Some(StreamStatus::internal("the node agent ended the stream without an exit code"))),
            Err(status) => return Ok(Some(StreamStatus::internal(format!("the node agent failed: {}", status.message())))),
        };
        if !data.is_empty() {
            sink.send(Message::Binary(encode_frame(channel, &data))).await?;
        }
    }
}

/// Reads the client's messages and hands stdin, resizes and the stdin
/// close to the agent. Cancels `client_gone` when the client closes or the
/// connection breaks. Pings are answered by the WebSocket layer while it
/// reads.
async fn pump_client(
    mut stream: WsStream,
    protocol: Protocol,
    opts: ExecOptions,
    input: mpsc::Sender<ExecInput>,
    client_gone: CancellationToken,
) {
    let mut stdin_open = opts.stdin;
    while let Some(msg) = stream.next().await {
        let data = match msg {
            Ok(Message::Binary(data)) => data,
            // The channel protocols read a text frame's bytes like a binary
            // one (upstream receives both as `[]byte`); the Python client
            // sends its stdin strings that way.
            Ok(Message::Text(text)) => Bytes::from(text),
            Ok(Message::Close(_)) | Err(_) => break,
            // Pings and pongs are answered by tungstenite.
            Ok(_) => continue,
        };
        let to_agent = match decode_client_frame(protocol, &data) {
            Ok(ClientFrame::Stdin(bytes)) if stdin_open => exec_input::Input::Stdin(bytes.to_vec()),
            Ok(ClientFrame::CloseStdin) if stdin_open => {
                stdin_open = false;
                exec_input::Input::CloseStdin(true)
            }
            Ok(ClientFrame::Resize { width, height }) if opts.tty => exec_input::Input::Resize(TerminalSize { width, height }),
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring a client message");
                continue;
            }
        };
        if input.send(ExecInput { input: Some(to_agent) }).await.is_err() {
            break;
        }
    }
    client_gone.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_encode_with_the_channel_byte_first() {
        assert_eq!(encode_frame(channel::STDOUT, b"hi\n").as_ref(), b"\x01hi\n");
        assert_eq!(encode_frame(channel::ERROR, b"").as_ref(), b"\x03");
    }

    #[test]
    fn client_frames_decode_per_protocol() {
        use ClientFrame::*;
        let cases: &[(Protocol, &[u8], Option<ClientFrame>)] = &[
            (Protocol::V5, b"\x00hello", Some(Stdin(Bytes::from_static(b"hello")))),
            (Protocol::V4, b"\x00", Some(Stdin(Bytes::new()))),
            (Protocol::V5, b"", Some(Nothing)),
            (Protocol::V5, b"\x04{\"Width\":80,\"Height\":24}", Some(Resize { width: 80, height: 24 })),
            (Protocol::V4, b"\x04{\"width\":100,\"height\":40}", Some(Resize { width: 100, height: 40 })),
            (Protocol::V5, b"\x04not json", None),
            (Protocol::V5, b"\xff\x00", Some(CloseStdin)),
            // Closing a channel only the server writes changes nothing.
            (Protocol::V5, b"\xff\x01", Some(Nothing)),
            (Protocol::V5, b"\xff", None),
            (Protocol::V5, b"\xff\x00\x01", None),
            // v4 has no close message.
            (Protocol::V4, b"\xff\x00", None),
            // Output channels are not the client's to write.
            (Protocol::V5, b"\x01oops", None),
            (Protocol::V5, b"\x03{}", None),
        ];
        for (protocol, data, want) in cases {
            let got = decode_client_frame(*protocol, &Bytes::copy_from_slice(data)).ok();
            assert_eq!(&got, want, "{protocol} {data:?}");
        }
    }

    #[test]
    fn status_json_matches_the_kubelet_bytes() {
        let command: Vec<String> = ["sh", "-c", "exit 3"].map(String::from).into();
        let cases = [
            (StreamStatus::success(), r#"{"metadata":{},"status":"Success"}"#.to_string()),
            (
                StreamStatus::non_zero_exit(&command, 3),
                r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#.to_string(),
            ),
            (
                StreamStatus::internal("no such file"),
                r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing command in container: no such file","reason":"InternalError","details":{"causes":[{"message":"error executing command in container: no such file"}]},"code":500}"#.to_string(),
            ),
        ];
        for (status, want) in cases {
            assert_eq!(String::from_utf8(status.to_bytes()).unwrap(), want);
        }
    }

    #[test]
    fn exit_reports_become_statuses() {
        let command = vec!["false".to_string()];
        let exit = |code, error: &str| ExecExit { code, error: error.into() };
        assert_eq!(StreamStatus::from_exit(&command, &exit(0, "")), StreamStatus::success());
        assert_eq!(StreamStatus::from_exit(&command, &exit(1, "")), StreamStatus::non_zero_exit(&command, 1));
        assert_eq!(StreamStatus::from_exit(&command, &exit(-1, "no sh")), StreamStatus::internal("no sh"));
        assert_eq!(
            StreamStatus::from_exit(&command, &exit(-1, "")).message,
            "Internal error occurred: error executing command in container: the command could not be started"
        );
    }

    #[test]
    fn exec_options_parse_like_the_parameter_codec() {
        let cases: &[(&str, Result<ExecOptions, &str>)] = &[
            (
                "command=sh&command=-c&command=echo+hi%3B+exit+3&container=c&stdin=true&stdout=true&stderr=true&tty=false",
                Ok(ExecOptions {
                    command: vec!["sh".into(), "-c".into(), "echo hi; exit 3".into()],
                    container: "c".into(),
                    stdin: true,
                    stdout: true,
                    stderr: true,
                    tty: false,
                }),
            ),
            // The kubelet's spelling, and tty dropping stderr.
            (
                "command=ls&output=1&error=1&tty=1",
                Ok(ExecOptions { command: vec!["ls".into()], stdout: true, tty: true, ..Default::default() }),
            ),
            ("", Ok(ExecOptions::default())),
            ("command=ls&stdout=yes", Err("invalid value for stdout: \"yes\" is not a boolean")),
        ];
        for (query, want) in cases {
            let got = ExecOptions::from_query(query).map_err(|e| e.message);
            assert_eq!(got, want.clone().map_err(String::from), "{query}");
        }
    }

    #[test]
    fn exec_options_validate_with_upstream_messages() {
        let ok = ExecOptions { command: vec!["ls".into()], stdout: true, ..Default::default() };
        let cases = [
            (ok.clone(), None),
            (ExecOptions { command: vec![], ..ok.clone() }, Some("you must specify at least one command for the container")),
            (ExecOptions { stdout: false, ..ok.clone() }, Some("you must specify at least 1 of stdin, stdout, stderr")),
            (ExecOptions { stdout: false, stdin: true, ..ok }, None),
        ];
        for (opts, want) in cases {
            assert_eq!(opts.validate().err().map(|e| e.message), want.map(String::from), "{opts:?}");
        }
    }

    fn pod(containers: &[&str], init: &[&str]) -> Value {
        let named = |names: &[&str]| names.iter().map(|n| json!({"name": n, "image": "busybox"})).collect::<Vec<_>>();
        json!({"metadata": {"name": "web"}, "spec": {"containers": named(containers), "initContainers": named(init)}})
    }

    #[test]
    fn container_resolution_follows_stream_location() {
        let cases: &[(Value, &str, Result<&str, &str>)] = &[
            (pod(&["app"], &[]), "", Ok("app")),
            (pod(&["app"], &[]), "app", Ok("app")),
            (pod(&["app", "side"], &["init"]), "init", Ok("init")),
            (pod(&["app"], &[]), "nope", Err("container nope is not valid for pod web")),
            (pod(&[], &[]), "", Err("a container name must be specified for pod web")),
            (pod(&["app", "side"], &[]), "", Err("a container name must be specified for pod web, choose one of: [app side]")),
            (
                pod(&["app", "side"], &["init"]),
                "",
                Err("a container name must be specified for pod web, choose one of: [app side] or one of the init containers: [init]"),
            ),
        ];
        for (pod, requested, want) in cases {
            let got = resolve_container(pod, requested);
            assert_eq!(got.as_deref().map_err(|e| e.message.as_str()), *want, "{requested:?} in {pod}");
            if let Err(e) = got {
                assert_eq!(e.code, 400);
            }
        }
    }

    #[test]
    fn only_running_containers_accept_commands() {
        let mut p = pod(&["app", "side"], &["init"]);
        p["status"] = json!({
            "containerStatuses": [
                {"name": "app", "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}}},
                {"name": "side", "state": {"waiting": {"reason": "ContainerCreating"}}},
            ],
            "initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 0}}}],
        });
        let cases = [("app", true), ("side", false), ("init", false), ("missing", false)];
        for (container, want) in cases {
            assert_eq!(container_running(&p, container), want, "{container}");
        }
    }

    #[test]
    fn pod_checks_run_in_upstream_order() {
        let mut p = pod(&["app"], &[]);
        let mut opts = ExecOptions { command: vec!["ls".into()], stdout: true, ..Default::default() };
        let message = |p: &Value, opts: &mut ExecOptions| check_pod(p, opts).err().map(|e| e.message);
        assert_eq!(message(&p, &mut opts.clone()).as_deref(), Some("pod web does not have a host assigned"));
        p["spec"]["nodeName"] = json!("n1");
        assert_eq!(message(&p, &mut opts.clone()).as_deref(), Some("unable to upgrade connection: container not found (\"app\")"));
        p["status"] = json!({"containerStatuses": [{"name": "app", "state": {"running": {}}}]});
        assert_eq!(message(&p, &mut opts), None);
        assert_eq!(opts.container, "app", "the only container is picked");
    }

    #[test]
    fn protocol_negotiation_prefers_the_clients_order() {
        let cases: &[(&[&str], Option<Protocol>)] = &[
            (&["v5.channel.k8s.io, v4.channel.k8s.io, v3.channel.k8s.io"], Some(Protocol::V5)),
            (&["v4.channel.k8s.io,v5.channel.k8s.io"], Some(Protocol::V4)),
            (&["base64.channel.k8s.io", "v4.channel.k8s.io"], Some(Protocol::V4)),
            (&["channel.k8s.io"], None),
            (&[], None),
        ];
        for (offered, want) in cases {
            assert_eq!(Protocol::negotiate(offered.iter().copied()), *want, "{offered:?}");
        }
    }

    #[test]
    fn handshake_requires_a_websocket_upgrade() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, http::HeaderValue::from_static(v));
            }
            h
        };
        // RFC 6455 section 1.3's example key and accept value.
        let good = [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "v5.channel.k8s.io, v4.channel.k8s.io"),
        ];
        assert_eq!(websocket_handshake(&headers(&good)).unwrap(), (Protocol::V5, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_string()));
        let spdy = headers(&[("connection", "Upgrade"), ("upgrade", "SPDY/3.1"), ("x-stream-protocol-version", "v4.channel.k8s.io")]);
        let err = websocket_handshake(&spdy).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.starts_with("tinykube supports exec over WebSocket (v5.channel.k8s.io) only"), "{}", err.message);
        let unknown = headers(&[good[0], good[1], good[2], ("sec-websocket-protocol", "channel.k8s.io")]);
        assert!(websocket_handshake(&unknown).unwrap_err().message.contains("requested protocol(s) are not supported: [channel.k8s.io]"));
        let keyless = headers(&[good[0], good[1], good[3]]);
        assert!(websocket_handshake(&keyless).unwrap_err().message.contains("Sec-WebSocket-Key"));
    }

    /// An api-server with one node whose fake agent runs commands, served
    /// over real sockets, driven by a real WebSocket client.
    mod bridge {
        use std::net::SocketAddr;
        use std::pin::Pin;
        use std::sync::Arc;

        use api::proto::agent_server::{Agent, AgentServer};
        use api::proto::{LogChunk, LogsRequest};
        use futures::Stream;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::{TcpListener, TcpStream};
        use tokio::sync::Notify;
        use tokio_stream::wrappers::ReceiverStream;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status, Streaming};

        use super::*;

        type OutputStream = Pin<Box<dyn Stream<Item = Result<ExecOutput, Status>> + Send>>;

        /// Runs pretend commands: `cat` echoes stdin (and resizes) until
        /// stdin closes; `wait` runs until its input stream ends and then
        /// tells the test; `fail` cannot start; anything else prints to
        /// stdout and stderr and exits with the last word of its last
        /// argument as the code (`sh -c 'exit 3'` exits 3).
        #[derive(Default)]
        struct FakeAgent {
            input_ended: Arc<Notify>,
        }

        fn out(o: exec_output::Output) -> Result<ExecOutput, Status> {
            Ok(ExecOutput { output: Some(o) })
        }

        #[tonic::async_trait]
        impl Agent for FakeAgent {
            type LogsStream = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;
            type ExecStream = OutputStream;

            async fn logs(&self, _: GrpcRequest<LogsRequest>) -> Result<GrpcResponse<Self::LogsStream>, Status> {
                Err(Status::unimplemented("the fake agent has no logs"))
            }

            async fn exec(&self, req: GrpcRequest<Streaming<ExecInput>>) -> Result<GrpcResponse<Self::ExecStream>, Status> {
                let mut input = req.into_inner();
                let Some(ExecInput { input: Some(exec_input::Input::Start(start)) }) = input.message().await? else {
                    return Err(Status::invalid_argument("the first message must be start"));
                };
                let (tx, rx) = mpsc::channel(16);
                let input_ended = self.input_ended.clone();
                tokio::spawn(async move {
                    let exit = |code, error: &str| out(exec_output::Output::Exit(ExecExit { code, error: error.into() }));
                    match start.command.first().map(String::as_str) {
                        Some("cat") => {
                            while let Ok(Some(msg)) = input.message().await {
                                let echo = match msg.input {
                                    Some(exec_input::Input::Stdin(b)) => b,
                                    Some(exec_input::Input::Resize(s)) => format!("resize {}x{}\n", s.width, s.height).into_bytes(),
                                    Some(exec_input::Input::CloseStdin(_)) => break,
                                    _ => continue,
                                };
                                let _ = tx.send(out(exec_output::Output::Stdout(echo))).await;
                            }
                            let _ = tx.send(exit(0, "")).await;
                        }
                        Some("wait") => {
                            while let Ok(Some(_)) = input.message().await {}
                            input_ended.notify_one();
                        }
                        Some("fail") => {
                            let _ = tx.send(exit(-1, "executable file not found in $PATH")).await;
                        }
                        _ => {
                            let code = start.command.last().and_then(|c| c.split_whitespace().last()?.parse().ok()).unwrap_or(0);
                            let _ = tx.send(out(exec_output::Output::Stdout(format!("out of {}\n", start.container).into_bytes()))).await;
                            let _ = tx.send(out(exec_output::Output::Stderr(b"err\n".to_vec()))).await;
                            let _ = tx.send(exit(code, "")).await;
                        }
                    }
                });
                Ok(GrpcResponse::new(Box::pin(ReceiverStream::new(rx)) as OutputStream))
            }
        }

        struct Fixture {
            addr: SocketAddr,
            input_ended: Arc<Notify>,
        }

        /// Starts the fake agent, a registry with node `n1` pointing at it
        /// and pods `web` (running) and `pending` on it, and an HTTP server
        /// routing `/api/v1/namespaces/NS/pods/NAME/exec` to [`handle`].
        async fn start() -> Fixture {
            let agent_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let agent_port = agent_listener.local_addr().unwrap().port();
            let input_ended = Arc::new(Notify::new());
            let agent = FakeAgent { input_ended: input_ended.clone() };
            // The agent's port as a real agent serves it: TLS, a
            // certificate it signed itself, clients the CA signed.
            let ca = api::pki::Ca::generate("test-ca").unwrap();
            let serving = api::pki::self_signed(&api::pki::CertSpec::server("agent", vec![], vec!["127.0.0.1".parse().unwrap()])).unwrap();
            let tls = api::tls::server_config(&serving, ca.cert_pem(), api::tls::ClientAuth::Required).unwrap();
            let incoming = client::connect::accept_tls(agent_listener, tls, |_| true, tokio_util::sync::CancellationToken::new());
            tokio::spawn(tonic::transport::Server::builder().add_service(AgentServer::new(agent)).serve_with_incoming(incoming));

            let store = store::Store::open_temporary().unwrap();
            let kubelet_client = client::Credentials {
                trust: api::tls::Trust::AnyServer,
                identity: Some(ca.issue(&api::pki::CertSpec::client("kube-apiserver-kubelet-client", &[])).unwrap()),
                bearer: None,
            };
            let registry = Registry::new(Arc::new(store)).with_kubelet_client(kubelet_client);
            registry.bootstrap().await.unwrap();
            let nodes = api::resources::by_resource("", "nodes").unwrap();
            let pods = api::resources::by_resource("", "pods").unwrap();
            let opts = crate::registry::WriteOptions::default();
            let node = json!({
                "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": agent_port}},
                },
            });
            registry.create(nodes, "", node, &opts).await.unwrap();
            for (name, state) in [("web", json!({"running": {}})), ("pending", json!({"waiting": {"reason": "ContainerCreating"}}))] {
                let pod = json!({
                    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                    "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
                    "status": {"phase": "Running", "containerStatuses": [
                        {"name": "c", "image": "busybox", "imageID": "", "ready": true, "restartCount": 0, "state": state},
                    ]},
                });
                registry.create(pods, "default", pod, &opts).await.unwrap();
            }

            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let registry = registry.clone();
                    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let registry = registry.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let parts: Vec<&str> = path.split('/').collect();
                            let response = match parts.as_slice() {
                                ["", "api", "v1", "namespaces", ns, "pods", pod, "exec"] => {
                                    handle(registry, ns.to_string(), pod.to_string(), req).await
                                }
                                _ => crate::http::error(&ApiError::not_found("", "paths", req.uri().path())),
                            };
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades(),
                    );
                }
            });
            Fixture { addr, input_ended }
        }

        type Client = WebSocketStream<TcpStream>;

        async fn connect(addr: SocketAddr, pod: &str, query: &str) -> (Client, String) {
            let mut req = format!("ws://{addr}/api/v1/namespaces/default/pods/{pod}/exec?{query}").into_client_request().unwrap();
            req.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                http::HeaderValue::from_static("v5.channel.k8s.io, v4.channel.k8s.io, v3.channel.k8s.io"),
            );
            let tcp = TcpStream::connect(addr).await.unwrap();
            let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
            let protocol = resp.headers()[header::SEC_WEBSOCKET_PROTOCOL].to_str().unwrap().to_string();
            (ws, protocol)
        }

        /// Everything the server sent, per channel, until it closed.
        #[derive(Debug, Default)]
        struct Received {
            stdout: Vec<u8>,
            stderr: Vec<u8>,
            status: Option<Value>,
            close_code: Option<CloseCode>,
        }

        async fn receive_all(ws: &mut Client) -> Received {
            let mut got = Received::default();
            let deadline = tokio::time::sleep(Duration::from_secs(10));
            tokio::pin!(deadline);
            loop {
                let msg = tokio::select! {
                    _ = &mut deadline => panic!("the session did not end: {got:?}"),
                    msg = ws.next() => msg,
                };
                match msg {
                    Some(Ok(Message::Binary(data))) => match (data[0], &data[1..]) {
                        (channel::STDOUT, d) => got.stdout.extend_from_slice(d),
                        (channel::STDERR, d) => got.stderr.extend_from_slice(d),
                        (channel::ERROR, d) => got.status = Some(serde_json::from_slice(d).unwrap()),
                        (other, _) => panic!("unexpected channel {other}"),
                    },
                    Some(Ok(Message::Close(frame))) => got.close_code = frame.map(|f| f.code),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return got,
                }
            }
        }

        #[tokio::test]
        async fn output_and_exit_code_reach_the_client() {
            let fx = start().await;
            let (mut ws, protocol) =
                connect(fx.addr, "web", "command=sh&command=-c&command=exit+3&container=c&stdout=true&stderr=true").await;
            assert_eq!(protocol, V5_PROTOCOL);
            let got = receive_all(&mut ws).await;
            assert_eq!(got.stdout, b"out of c\n");
            assert_eq!(got.stderr, b"err\n");
            let status = got.status.expect("a status on the error channel");
            assert_eq!(status["reason"], "NonZeroExitCode");
            assert_eq!(status["details"]["causes"][0], json!({"reason": "ExitCode", "message": "3"}));
            assert_eq!(got.close_code, Some(CloseCode::Normal));
        }

        #[tokio::test]
        async fn stdin_round_trips_and_closing_it_ends_the_command() {
            let fx = start().await;
            let (mut ws, _) = connect(fx.addr, "web", "command=cat&stdin=true&stdout=true&stderr=true").await;
            ws.send(Message::Binary(encode_frame(channel::STDIN, b"hi\n"))).await.unwrap();
            // Resizes are dropped without a terminal.
            ws.send(Message::Binary(encode_frame(channel::RESIZE, br#"{"Width":80,"Height":24}"#))).await.unwrap();
            // A text frame, as the Python client sends stdin strings.
            ws.send(Message::text("\u{0}there\n")).await.unwrap();
            ws.send(Message::Binary(Bytes::from_static(&[channel::CLOSE, channel::STDIN]))).await.unwrap();
            let got = receive_all(&mut ws).await;
            assert_eq!(String::from_utf8_lossy(&got.stdout), "hi\nthere\n");
            assert_eq!(got.status, Some(json!({"metadata": {}, "status": "Success"})));
        }

        #[tokio::test]
        async fn a_terminal_gets_resizes() {
            let fx = start().await;
            let (mut ws, _) = connect(fx.addr, "web", "command=cat&stdin=true&stdout=true&tty=true").await;
            ws.send(Message::Binary(encode_frame(channel::RESIZE, br#"{"Width":120,"Height":40}"#))).await.unwrap();
            ws.send(Message::Binary(Bytes::from_static(&[channel::CLOSE, channel::STDIN]))).await.unwrap();
            let got = receive_all(&mut ws).await;
            assert_eq!(String::from_utf8_lossy(&got.stdout), "resize 120x40\n");
        }

        #[tokio::test]
        async fn a_command_that_cannot_start_is_an_internal_error() {
            let fx = start().await;
            let (mut ws, _) = connect(fx.addr, "web", "command=fail&stdout=true").await;
            let status = receive_all(&mut ws).await.status.expect("a status");
            assert_eq!(status["reason"], "InternalError");
            assert_eq!(status["code"], 500);
            assert!(status["message"].as_str().unwrap().contains("executable file not found"), "{status}");
        }

        #[tokio::test]
        async fn a_client_that_leaves_ends_the_agent_stream() {
            let fx = start().await;
            let (mut ws, _) = connect(fx.addr, "web", "command=wait&stdin=true&stdout=true").await;
            ws.close(None).await.unwrap();
            tokio::time::timeout(Duration::from_secs(10), fx.input_ended.notified()).await.expect("the agent saw its input end");
        }

        /// A plain HTTP request; returns the status line and the body.
        async fn plain_get(addr: SocketAddr, path_and_query: &str, extra_headers: &str) -> (String, String) {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            let req = format!("GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\n{extra_headers}Connection: close\r\n\r\n");
            tcp.write_all(req.as_bytes()).await.unwrap();
            let mut raw = String::new();
            tcp.read_to_string(&mut raw).await.unwrap();
            let (head, body) = raw.split_once("\r\n\r\n").unwrap();
            (head.lines().next().unwrap().to_string(), body.to_string())
        }

        #[tokio::test]
        async fn refusals_are_kubernetes_statuses() {
            let fx = start().await;
            let ws_headers = "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n";
            let cases = [
                (
                    "/api/v1/namespaces/default/pods/web/exec?command=ls&stdout=true",
                    "",
                    "400",
                    "tinykube supports exec over WebSocket (v5.channel.k8s.io) only",
                ),
                ("/api/v1/namespaces/default/pods/nope/exec?command=ls&stdout=true", ws_headers, "404", "pods \"nope\" not found"),
                (
                    "/api/v1/namespaces/default/pods/web/exec?stdout=true",
                    ws_headers,
                    "400",
                    "you must specify at least one command for the container",
                ),
                (
                    "/api/v1/namespaces/default/pods/web/exec?command=ls&container=x&stdout=true",
                    ws_headers,
                    "400",
                    "container x is not valid for pod web",
                ),
                (
                    "/api/v1/namespaces/default/pods/pending/exec?command=ls&stdout=true",
                    ws_headers,
                    "400",
                    "unable to upgrade connection: container not found (\"c\")",
                ),
            ];
            for (path, headers, code, message) in cases {
                // `Connection: close` is sent too; hyper reads the upgrade
                // token only when it is in the same header, so the
                // WebSocket cases put both in one.
                let headers = headers.replace("Upgrade: websocket\r\n", "Upgrade: websocket\r\nConnection: Upgrade\r\n");
                let (status_line, body) = plain_get(fx.addr, path, &headers).await;
                assert!(status_line.contains(code), "{path}: {status_line}");
                let status: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
                assert_eq!(status["kind"], "Status");
                let got = status["message"].as_str().unwrap_or_default();
                assert!(got.starts_with(message), "{path}: {got}");
            }
        }
    }
}
