//! Container logs, as the kubelet serves them (`kubectl logs`).
//!
//! A container's output is in its log file in the CRI format (see
//! [`crate::crilog`]), one file per run: `<restartCount>.log` under the
//! pod's directory. Serving a log reads that file, turns its records back
//! into what the container printed, and, when following, keeps streaming
//! what the shim appends until the container stops or the client goes
//! away: the kubelet's `ReadLogs`.
//!
//! Options, as upstream's `PodLogOptions`:
//! - `container`: required when the pod has more than one container;
//! - `previous`: the log of the run before the current one
//!   (`<restartCount - 1>.log`);
//! - `tail_lines`: only the last N lines (negative: all);
//! - `follow`: keep streaming until the container stops;
//! - `timestamps`: each line starts with the time the shim read it, in
//!   RFC 3339 with nine fractional digits and a space, as the kubelet
//!   writes it.
//!
//! Not supported yet: `sinceSeconds`, `sinceTime` and `limitBytes` (the
//! internal `LogsRequest` has no fields for them).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api::proto::{LogChunk, LogsRequest};
use api::ApiError;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tonic::Status;

use crate::crilog::{self, Decoder};
use crate::pods::{self, log_path, pick_container, pod_ref, PodLookup};
use crate::runtime::Runtime;

/// The stream of a `Logs` reply.
pub type LogsStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<LogChunk, Status>> + Send>>;

/// How often a followed log is checked for new bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// The most bytes sent in one chunk.
const CHUNK: usize = 32 * 1024;

/// The log file a request asks for, and the runtime container to watch
/// when following it.
#[derive(Debug)]
struct Target {
    path: PathBuf,
    follow_id: Option<String>,
}

/// Starts streaming the log a request asks for; upstream's errors when
/// there is no such pod, container or log.
pub(crate) async fn serve(
    runtime: Arc<dyn Runtime>,
    data_dir: &std::path::Path,
    pods: &PodLookup,
    req: LogsRequest,
) -> Result<LogsStream, ApiError> {
    let target = target(runtime.as_ref(), data_dir, pods, &req).await?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(stream_log(runtime, target, req.tail_lines, req.timestamps, tx));
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

async fn target(runtime: &dyn Runtime, data_dir: &std::path::Path, pods: &PodLookup, req: &LogsRequest) -> Result<Target, ApiError> {
    let pod = pods::find(pods, &req.namespace, &req.pod)?;
    let p = pod_ref(&pod);
    let container = pick_container(&pod, &req.container, false)?.name;

    // The latest run: what the runtime knows, else what the pod status says.
    let latest = runtime
        .list_containers()
        .await
        .into_iter()
        .filter(|c| c.pod.uid == p.uid && c.name == container)
        .max_by_key(|c| c.attempt);
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|s| s.name == container).cloned());
    let (attempt, running_id) = match (&latest, &status) {
        (Some(c), _) => (c.attempt, c.is_running().then(|| c.id.clone())),
        (None, Some(s)) => (s.restart_count, None),
        (None, None) => (0, None),
    };

    if req.previous {
        let missing = || ApiError::bad_request(format!("previous terminated container \"{container}\" in pod \"{}\" not found", p.name));
        if attempt == 0 {
            return Err(missing());
        }
        let path = log_path(data_dir, &p, &container, attempt - 1);
        if !path.exists() {
            return Err(missing());
        }
        return Ok(Target { path, follow_id: None });
    }
    let path = log_path(data_dir, &p, &container, attempt);
    if !path.exists() {
        let reason = status
            .and_then(|s| s.state)
            .and_then(|s| s.waiting)
            .and_then(|w| w.reason)
            .unwrap_or_else(|| "ContainerCreating".into());
        return Err(ApiError::bad_request(format!("container \"{container}\" in pod \"{}\" is waiting to start: {reason}", p.name)));
    }
    Ok(Target { path, follow_id: if req.follow { running_id } else { None } })
}

type Tx = mpsc::Sender<Result<LogChunk, Status>>;

/// Sends `data` in chunks; false when the client has gone.
async fn send_all(tx: &Tx, data: &[u8]) -> bool {
    for chunk in data.chunks(CHUNK) {
        if tx.send(Ok(LogChunk { data: chunk.to_vec() })).await.is_err() {
            return false;
        }
    }
    true
}

/// Reads the bytes of `path` after `offset`.
async fn read_from(path: &std::path::Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).await?;
    Ok(buf)
}

/// The length of the whole file lines at the start of `data`: a record
/// the shim is still writing is left for the next read.
fn complete_lines(data: &[u8]) -> usize {
    data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
}

/// Decodes whole file lines into what the container printed.
fn decode(decoder: &mut Decoder, lines: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.len());
    for line in lines.strip_suffix(b"\n").unwrap_or(lines).split(|b| *b == b'\n') {
        decoder.push_line(line, &mut out);
    }
    out
}

/// Streams the file (its tail), then, when following, whatever is
/// appended until the container stops or the client leaves.
async fn stream_log(runtime: Arc<dyn Runtime>, target: Target, tail_lines: i64, timestamps: bool, tx: Tx) {
    let data = match tokio::fs::read(&target.path).await {
        Ok(d) => d,
        Err(e) => {
            let _ = tx.send(Err(ApiError::internal(format!("cannot read log: {e}")).to_grpc())).await;
            return;
        }
    };
    let whole = &data[..complete_lines(&data)];
    let start = usize::try_from(tail_lines).map(|n| crilog::tail_start(whole, n)).unwrap_or(0);
    let mut decoder = Decoder::new(timestamps);
    if start < whole.len() && !send_all(&tx, &decode(&mut decoder, &whole[start..])).await {
        return;
    }
    let Some(id) = target.follow_id else { return };
    let mut offset = whole.len() as u64;
    loop {
        // Look at the container before reading, so lines written just
        // before it exited are still sent.
        let running = runtime.container_status(&id).await.is_ok_and(|s| s.is_running());
        let fresh = match read_from(&target.path, offset).await {
            Ok(b) => b,
            Err(_) => return,
        };
        let n = complete_lines(&fresh);
        if n > 0 {
            offset += n as u64;
            if !send_all(&tx, &decode(&mut decoder, &fresh[..n])).await {
                return;
            }
            continue;
        }
        if !running {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::runtime::process::ProcessRuntime;
    use crate::runtime::{ContainerConfig, PodRef};
    use crate::service::AgentService;
    use crate::test_support::shim_binary;
    use api::proto::agent_server::Agent;
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use tonic::Request;

    pub(crate) fn pod(containers: &[&str]) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: containers.iter().map(|n| Container { name: n.to_string(), ..Default::default() }).collect(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    pub(crate) fn service(dir: &std::path::Path, runtime: Arc<dyn Runtime>, pod: Arc<Pod>) -> AgentService {
        AgentService {
            runtime,
            data_dir: dir.to_path_buf(),
            pods: Arc::new(move |ns: &str, name: &str| (ns == "default" && name == "web").then(|| pod.clone())),
        }
    }

    fn request(container: &str, follow: bool, previous: bool, tail_lines: i64) -> LogsRequest {
        LogsRequest {
            namespace: "default".into(),
            pod: "web".into(),
            container: container.into(),
            follow,
            tail_lines,
            previous,
            timestamps: false,
        }
    }

    async fn collect(svc: &AgentService, req: LogsRequest) -> Result<String, ApiError> {
        let mut stream = svc.logs(Request::new(req)).await.map_err(|s| ApiError::from_grpc(&s))?.into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend(chunk.map_err(|s| ApiError::from_grpc(&s))?.data);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[tokio::test]
    async fn follows_until_the_container_exits_and_serves_previous_with_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::open(dir.path().join("state"), shim_binary()).unwrap());
        let p = PodRef { namespace: "default".into(), name: "web".into(), uid: "u1".into() };
        let previous = log_path(dir.path(), &p, "app", 0);
        std::fs::create_dir_all(previous.parent().unwrap()).unwrap();
        std::fs::write(
            &previous,
            "2026-11-22T03:00:00.5Z stdout F old run\n2026-11-22T03:00:01Z stderr P part\n2026-11-22T03:00:02Z stderr F ial\n",
        )
        .unwrap();
        let config = ContainerConfig {
            pod: p.clone(),
            name: "app".into(),
            attempt: 1,
            image: "busybox".into(),
            command: vec!["sh".into(), "-c".into(), "echo one; echo two; sleep 0.3; echo three".into()],
            log_path: log_path(dir.path(), &p, "app", 1),
            ..Default::default()
        };
        let id = runtime.create_container(config).await.unwrap();
        runtime.start_container(&id).await.unwrap();
        let svc = service(dir.path(), runtime.clone(), pod(&["app"]));

        let followed = collect(&svc, request("", true, false, -1)).await.unwrap();
        assert_eq!(followed, "one\ntwo\nthree\n", "followed to the end, then the stream closed");
        assert_eq!(collect(&svc, request("app", false, false, 1)).await.unwrap(), "three\n");
        let mut stamped = request("app", false, false, -1);
        stamped.timestamps = true;
        let lines: Vec<String> = collect(&svc, stamped).await.unwrap().lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        for (line, text) in lines.iter().zip(["one", "two", "three"]) {
            let (time, rest) = line.split_once(' ').unwrap();
            assert_eq!(rest, text);
            assert_eq!(time.len(), "2026-11-22T03:00:00.000000000Z".len(), "nine fractional digits: {time}");
            assert!(time.parse::<jiff::Timestamp>().is_ok(), "{time}");
        }

        assert_eq!(collect(&svc, request("app", false, true, -1)).await.unwrap(), "old run\npartial\n");
        let mut previous = request("app", false, true, 1);
        previous.timestamps = true;
        assert_eq!(collect(&svc, previous).await.unwrap(), "2026-11-22T03:00:01.000000000Z partial\n");
    }

    #[tokio::test]
    async fn errors_match_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::open(dir.path().join("state"), shim_binary()).unwrap());
        let svc = service(dir.path(), runtime, pod(&["a", "b"]));
        let err = collect(&svc, request("", false, false, -1)).await.unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "a container name must be specified for pod web, choose one of: [a b]"));
        let err = collect(&svc, request("zzz", false, false, -1)).await.unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "container zzz is not valid for pod web"));
        let err = collect(&svc, request("a", false, true, -1)).await.unwrap_err();
        assert_eq!(err.message, "previous terminated container \"a\" in pod \"web\" not found");
        let err = collect(&svc, request("a", false, false, -1)).await.unwrap_err();
        assert_eq!(err.message, "container \"a\" in pod \"web\" is waiting to start: ContainerCreating");
        let mut missing = request("a", false, false, -1);
        missing.pod = "nope".into();
        let err = collect(&svc, missing).await.unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (404, "pods \"nope\" not found"));
    }
}
