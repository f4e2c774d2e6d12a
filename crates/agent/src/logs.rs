//! The agent's own gRPC server: container logs, as the kubelet's
//! `/containerLogs` endpoint.
//!
//! `kubectl logs` asks the api-server, which looks up the pod's node and
//! dials that node's kubelet at `InternalIP:daemonEndpoints.kubeletEndpoint.port`;
//! the kubelet reads the container's log file and streams it back. Here the
//! api-server dials the `Agent` service of `proto/tinykube/v1`, served by
//! [`LogsService`].
//!
//! Options, as upstream's `PodLogOptions`:
//! - `container`: required when the pod has more than one container;
//! - `previous`: the log of the run before the current one
//!   (`<restartCount - 1>.log`);
//! - `tail_lines`: only the last N lines (negative: all);
//! - `follow`: keep streaming what is appended until the container stops or
//!   the client goes away;
//! - `timestamps`: not supported. The process runtime stores raw output, so
//!   there is no per-line time to show; the flag is accepted and ignored.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use api::proto::agent_server::Agent;
use api::proto::{LogChunk, LogsRequest};
use api::ApiError;
use futures::Stream;
use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::runtime::Runtime;
use crate::worker::{log_path, pod_ref};

/// How often a followed log is checked for new bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// The most bytes sent in one chunk.
const CHUNK: usize = 32 * 1024;

/// Finds a pod on this node by namespace and name (the agent's informer
/// cache; a plain map in tests).
pub type PodLookup = Arc<dyn Fn(&str, &str) -> Option<Arc<Pod>> + Send + Sync>;

/// The `Agent` gRPC service.
pub struct LogsService {
    pub runtime: Arc<dyn Runtime>,
    pub data_dir: PathBuf,
    pub pods: PodLookup,
}

/// The offset in `data` where its last `n` lines begin. A final line
/// without a newline counts as a line.
pub fn tail_start(data: &[u8], n: usize) -> usize {
    if n == 0 {
        return data.len();
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

/// The log file a request asks for, and the runtime container to watch
/// when following it.
#[derive(Debug)]
struct Target {
    path: PathBuf,
    follow_id: Option<String>,
}

impl LogsService {
    async fn target(&self, req: &LogsRequest) -> Result<Target, ApiError> {
        let pod = (self.pods)(&req.namespace, &req.pod).ok_or_else(|| ApiError::not_found("", "pods", &req.pod))?;
        let p = pod_ref(&pod);
        let names: Vec<String> = pod.spec.as_ref().map(|s| s.containers.iter().map(|c| c.name.clone()).collect()).unwrap_or_default();
        let container = if req.container.is_empty() {
            match names.as_slice() {
                [only] => only.clone(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "a container name must be specified for pod {}, choose one of: [{}]",
                        p.name,
                        names.join(" ")
                    )))
                }
            }
        } else if names.contains(&req.container) {
            req.container.clone()
        } else {
            return Err(ApiError::bad_request(format!("container {} is not valid for pod {}", req.container, p.name)));
        };

        // The latest run: what the runtime knows, else what the pod status says.
        let latest = self
            .runtime
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

        let path = if req.previous {
            let missing = || ApiError::bad_request(format!("previous terminated container \"{container}\" in pod \"{}\" not found", p.name));
            if attempt == 0 {
                return Err(missing());
            }
            let path = log_path(&self.data_dir, &p, &container, attempt - 1);
            if !path.exists() {
                return Err(missing());
            }
            return Ok(Target { path, follow_id: None });
        } else {
            log_path(&self.data_dir, &p, &container, attempt)
        };
        if !path.exists() {
            let reason = status
                .and_then(|s| s.state)
                .and_then(|s| s.waiting)
                .and_then(|w| w.reason)
                .unwrap_or_else(|| "ContainerCreating".into());
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{}\" is waiting to start: {reason}",
                p.name
            )));
        }
        Ok(Target { path, follow_id: if req.follow { running_id } else { None } })
    }
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

/// Streams the file (its tail), then, when following, whatever is
/// appended until the container stops or the client leaves.
async fn stream_log(runtime: Arc<dyn Runtime>, target: Target, tail_lines: i64, tx: Tx) {
    let data = match tokio::fs::read(&target.path).await {
        Ok(d) => d,
        Err(e) => {
            let _ = tx.send(Err(ApiError::internal(format!("cannot read log: {e}")).to_grpc())).await;
            return;
        }
    };
    let start = usize::try_from(tail_lines).map(|n| tail_start(&data, n)).unwrap_or(0);
    if !send_all(&tx, &data[start..]).await {
        return;
    }
    let Some(id) = target.follow_id else { return };
    let mut offset = data.len() as u64;
    loop {
        // Look at the container before reading, so bytes written just
        // before it exited are still sent.
        let running = runtime.container_status(&id).await.is_ok_and(|s| s.is_running());
        let fresh = match read_from(&target.path, offset).await {
            Ok(b) => b,
            Err(_) => return,
        };
        if !fresh.is_empty() {
            offset += fresh.len() as u64;
            if !send_all(&tx, &fresh).await {
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

#[tonic::async_trait]
impl Agent for LogsService {
    type LogsStream = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;

    async fn logs(&self, request: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let req = request.into_inner();
        let target = self.target(&req).await.map_err(|e| e.to_grpc())?;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(stream_log(self.runtime.clone(), target, req.tail_lines, tx));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_counts_lines_from_the_end() {
        let data = b"one\ntwo\nthree\n";
        for (n, want) in [(0, ""), (1, "three\n"), (2, "two\nthree\n"), (3, "one\ntwo\nthree\n"), (9, "one\ntwo\nthree\n")] {
            assert_eq!(std::str::from_utf8(&data[tail_start(data, n)..]).unwrap(), want, "tail {n}");
        }
        let unterminated = b"a\nb";
        assert_eq!(&unterminated[tail_start(unterminated, 1)..], b"b");
        assert_eq!(tail_start(b"", 3), 0);
    }

    mod serving {
        use super::*;
        use crate::runtime::process::ProcessRuntime;
        use crate::runtime::{ContainerConfig, PodRef};
        use futures::StreamExt;
        use k8s_openapi::api::core::v1::{Container, PodSpec};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

        fn pod(containers: &[&str]) -> Arc<Pod> {
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

        fn service(dir: &std::path::Path, runtime: Arc<dyn Runtime>, pod: Arc<Pod>) -> LogsService {
            LogsService {
                runtime,
                data_dir: dir.to_path_buf(),
                pods: Arc::new(move |ns: &str, name: &str| (ns == "default" && name == "web").then(|| pod.clone())),
            }
        }

        fn request(container: &str, follow: bool, previous: bool, tail_lines: i64) -> Request<LogsRequest> {
            Request::new(LogsRequest {
                namespace: "default".into(),
                pod: "web".into(),
                container: container.into(),
                follow,
                tail_lines,
                previous,
                timestamps: false,
            })
        }

        async fn collect(svc: &LogsService, req: Request<LogsRequest>) -> Result<String, ApiError> {
            let mut stream = svc.logs(req).await.map_err(|s| ApiError::from_grpc(&s))?.into_inner();
            let mut out = Vec::new();
            while let Some(chunk) = stream.next().await {
                out.extend(chunk.map_err(|s| ApiError::from_grpc(&s))?.data);
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        }

        #[tokio::test]
        async fn follows_until_the_container_exits_and_serves_previous() {
            let dir = tempfile::tempdir().unwrap();
            let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::open(dir.path().join("state")).unwrap());
            let p = PodRef { namespace: "default".into(), name: "web".into(), uid: "u1".into() };
            std::fs::create_dir_all(log_path(dir.path(), &p, "app", 0).parent().unwrap()).unwrap();
            std::fs::write(log_path(dir.path(), &p, "app", 0), "old run\n").unwrap();
            let config = ContainerConfig {
                pod: p.clone(),
                name: "app".into(),
                attempt: 1,
                image: "busybox".into(),
                argv: vec!["sh".into(), "-c".into(), "echo one; echo two; sleep 0.3; echo three".into()],
                env: vec![],
                working_dir: None,
                log_path: log_path(dir.path(), &p, "app", 1),
            };
            let id = runtime.create_container(config).await.unwrap();
            runtime.start_container(&id).await.unwrap();
            let svc = service(dir.path(), runtime.clone(), pod(&["app"]));

            let followed = collect(&svc, request("", true, false, -1)).await.unwrap();
            assert_eq!(followed, "one\ntwo\nthree\n", "followed to the end, then the stream closed");
            assert_eq!(collect(&svc, request("app", false, false, 1)).await.unwrap(), "three\n");
            assert_eq!(collect(&svc, request("app", false, true, -1)).await.unwrap(), "old run\n");
        }

        #[tokio::test]
        async fn errors_match_upstream() {
            let dir = tempfile::tempdir().unwrap();
            let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::open(dir.path().join("state")).unwrap());
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
            missing.get_mut().pod = "nope".into();
            let err = collect(&svc, missing).await.unwrap_err();
            assert_eq!((err.code, err.message.as_str()), (404, "pods \"nope\" not found"));
        }
    }
}
