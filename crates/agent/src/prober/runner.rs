//! The prober: runs one container's probe once and says what it means.
//!
//! Upstream's `prober.go` turns a probe spec into a handler call (the
//! command, the URL from the pod IP and a port that may be named, the
//! timeout) and the handler's outcome into a result and an event:
//! failures are Warning events with reason `Unhealthy` and text such as
//! "Readiness probe failed: HTTP probe failed with statuscode: 500"; a
//! probe that could not be run at all is reported as "errored" and gives
//! no result.

use std::sync::Arc;
use std::time::Duration;

use client::events::{object_reference, EventType, Recorder};
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::handlers::{self, HttpGet, Outcome};
use super::PodIp;
use super::{ProbeResult, ProbeType};
use crate::pods::pod_ref;
use crate::runtime::{ExecSync, Runtime};

/// `timeoutSeconds` when unset.
const DEFAULT_TIMEOUT_SECONDS: i32 = 1;

/// Runs a container's probe once. The seam between a probe worker and the
/// world: the real one is [`ContainerProber`]; tests script their own.
#[async_trait::async_trait]
pub trait Prober: Send + Sync {
    /// Probes run `container_id` of the container; `None` when the probe
    /// errored and its result must be thrown away.
    async fn probe(&self, probe_type: ProbeType, container_id: &str) -> Option<ProbeResult>;
}

/// The port a probe names: a number, or the name of one of the
/// container's `ports` (upstream's `extractPort`).
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            let named = container.ports.iter().flatten().find(|p| p.name.as_deref() == Some(name.as_str()));
            match (named, name.parse::<i64>()) {
                (Some(p), _) => i64::from(p.container_port),
                // Last ditch, as upstream: a number written as a string.
                (None, Ok(n)) => n,
                (None, Err(_)) => return Err(format!("couldn't find port: {name} in container {}", container.name)),
            }
        }
    };
    u16::try_from(number).ok().filter(|p| *p > 0).ok_or_else(|| format!("invalid port number: {number}"))
}

/// The prober of one container's probe in a pod on this node.
pub struct ContainerProber {
    pod: Arc<Pod>,
    container: Container,
    probe: Probe,
    runtime: Arc<dyn Runtime>,
    recorder: Recorder,
    /// The pod's IP, which `httpGet` and `tcpSocket` connect to when the
    /// probe names no host: its sandbox's (the node's address when the pod
    /// shares the host's network).
    pod_ip: PodIp,
}

impl ContainerProber {
    pub fn new(pod: Arc<Pod>, container: Container, probe: Probe, runtime: Arc<dyn Runtime>, recorder: Recorder, pod_ip: PodIp) -> Self {
        ContainerProber { pod, container, probe, runtime, recorder, pod_ip }
    }

    fn timeout(&self) -> Duration {
        let seconds = self.probe.timeout_seconds.filter(|t| *t > 0).unwrap_or(DEFAULT_TIMEOUT_SECONDS);
        Duration::from_secs(seconds as u64)
    }

    /// Runs the handler the probe names.
    async fn run_handler(&self, container_id: &str) -> Outcome {
        let p = &self.probe;
        if let Some(action) = &p.exec {
            let command = action.command.clone().unwrap_or_default();
            // The prober knows the run by the id the pod status shows.
            let run = self.runtime.list_containers().await.into_iter().find(|c| c.container_id() == container_id);
            let result = match run {
                Some(run) => self.runtime.exec_sync(&run.id, &command, self.timeout(), handlers::MAX_OUTPUT).await,
                None => ExecSync::NotStarted(format!("container {container_id} is not running")),
            };
            return handlers::exec(&command, result);
        }
        if let Some(action) = &p.http_get {
            if action.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("https")) {
                return Outcome::Error(
                    "HTTPS probes are not supported by tinykube's agent (it has no TLS client); use scheme HTTP or a tcpSocket probe"
                        .into(),
                );
            }
            let port = match resolve_port(&action.port, &self.container) {
                Ok(port) => port,
                Err(e) => return Outcome::Error(e),
            };
            let req = HttpGet {
                host: action.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| self.pod_ip.get()),
                port,
                path: action.path.clone().unwrap_or_default(),
                headers: action.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect(),
            };
            return handlers::http_get(&req, self.timeout()).await;
        }
        if let Some(action) = &p.tcp_socket {
            let port = match resolve_port(&action.port, &self.container) {
                Ok(port) => port,
                Err(e) => return Outcome::Error(e),
            };
            let host = action.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| self.pod_ip.get());
            return handlers::tcp_socket(&host, port, self.timeout()).await;
        }
        if p.grpc.is_some() {
            return Outcome::Error("gRPC probes are not supported by tinykube's agent; use an exec, httpGet or tcpSocket probe".into());
        }
        Outcome::Error("missing probe handler".into())
    }

    /// Records an event about the container, as upstream's
    /// `recordContainerEvent` (the `fieldPath` names the container).
    async fn event(&self, kind: EventType, reason: &str, message: &str) {
        let mut involved = object_reference(self.pod.as_ref());
        involved.field_path = Some(format!("spec.containers{{{}}}", self.container.name));
        self.recorder.record_ref(involved, kind, reason, message).await;
    }
}

#[async_trait::async_trait]
impl Prober for ContainerProber {
    async fn probe(&self, probe_type: ProbeType, container_id: &str) -> Option<ProbeResult> {
        let outcome = self.run_handler(container_id).await;
        let p = pod_ref(&self.pod);
        match outcome {
            Outcome::Success => Some(ProbeResult::Success),
            Outcome::Warning(output) => {
                self.event(EventType::Warning, "ProbeWarning", &format!("{probe_type} probe warning: {output}")).await;
                Some(ProbeResult::Success)
            }
            Outcome::Failure(output) => {
                tracing::debug!(pod = %format!("{}/{}", p.namespace, p.name), container = %self.container.name, probe = %probe_type, %output, "probe failed");
                self.event(EventType::Warning, "Unhealthy", &format!("{probe_type} probe failed: {output}")).await;
                Some(ProbeResult::Failure)
            }
            Outcome::Error(error) => {
                tracing::warn!(pod = %format!("{}/{}", p.namespace, p.name), container = %self.container.name, probe = %probe_type, %error, "probe errored");
                let message = format!("{probe_type} probe errored and resulted in unknown state: {error}");
                self.event(EventType::Warning, "Unhealthy", &message).await;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    #[test]
    fn ports_resolve_by_number_or_name() {
        let c = Container {
            name: "app".into(),
            ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: 8080, ..Default::default() }]),
            ..Default::default()
        };
        let table: Vec<(IntOrString, Result<u16, String>)> = vec![
            (IntOrString::Int(80), Ok(80)),
            (IntOrString::String("http".into()), Ok(8080)),
            (IntOrString::String("9090".into()), Ok(9090)),
            (IntOrString::String("metrics".into()), Err("couldn't find port: metrics in container app".into())),
            (IntOrString::Int(0), Err("invalid port number: 0".into())),
            (IntOrString::Int(70000), Err("invalid port number: 70000".into())),
        ];
        for (port, want) in table {
            assert_eq!(resolve_port(&port, &c), want, "{port:?}");
        }
    }

    fn prober(probe: Probe) -> ContainerProber {
        let client = client::Client::unconnected();
        let pod = Arc::new(Pod::default());
        let container = Container { name: "app".into(), ..Default::default() };
        let recorder = Recorder::new(client, "kubelet", None);
        // No container runs: the handlers under test never reach the runtime.
        let state = tempfile::tempdir().unwrap();
        let runtime: Arc<dyn Runtime> = Arc::new(crate::runtime::process::ProcessRuntime::open(state.path(), "/bin/false").unwrap());
        ContainerProber::new(pod, container, probe, runtime, recorder, PodIp::new("127.0.0.1"))
    }

    #[tokio::test]
    async fn unsupported_handlers_error_clearly() {
        use k8s_openapi::api::core::v1::{GRPCAction, HTTPGetAction};
        let https = Probe {
            http_get: Some(HTTPGetAction { scheme: Some("HTTPS".into()), port: IntOrString::Int(443), ..Default::default() }),
            ..Default::default()
        };
        let Outcome::Error(e) = prober(https).run_handler("c1").await else { panic!("HTTPS must error") };
        assert!(e.contains("HTTPS probes are not supported"), "{e}");
        let grpc = Probe { grpc: Some(GRPCAction { port: 9000, ..Default::default() }), ..Default::default() };
        let Outcome::Error(e) = prober(grpc).run_handler("c1").await else { panic!("gRPC must error") };
        assert!(e.contains("gRPC probes are not supported"), "{e}");
    }

    #[tokio::test]
    async fn a_tcp_probe_connects_to_the_pod_ip() {
        use k8s_openapi::api::core::v1::TCPSocketAction;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let probe = Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(i32::from(port)), host: None }),
            ..Default::default()
        };
        assert_eq!(prober(probe).run_handler("c1").await, Outcome::Success);
    }
}
