//! The agent's own gRPC server, the kubelet's streaming endpoints:
//! container logs (the kubelet's `/containerLogs`) and exec (`/exec`).
//!
//! `kubectl logs` and `kubectl exec` ask the api-server, which looks up the
//! pod's node and dials that node's kubelet at
//! `InternalIP:daemonEndpoints.kubeletEndpoint.port`. Here the api-server
//! dials the `Agent` service of `proto/tinykube/v1`, served by
//! [`AgentService`]; [`crate::logs`] and [`crate::exec`] do the work.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use api::proto::agent_server::Agent;
use api::proto::{ExecInput, ExecOutput, LogChunk, LogsRequest};
use api::ApiError;
use client::Client;
use futures::Stream;
use k8s_openapi::api::core::v1::{Container, Pod};
use tonic::{Request, Response, Status, Streaming};

use crate::runtime::Runtime;

/// Finds a pod on this node by namespace and name (the agent's informer
/// cache; a plain map in tests).
pub type PodLookup = Arc<dyn Fn(&str, &str) -> Option<Arc<Pod>> + Send + Sync>;

/// The stream of a `Logs` reply.
pub type LogsStream = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;
/// The stream of an `Exec` reply.
pub type ExecStream = Pin<Box<dyn Stream<Item = Result<ExecOutput, Status>> + Send>>;

/// The `Agent` gRPC service.
pub struct AgentService {
    pub runtime: Arc<dyn Runtime>,
    /// Where the pods' logs live (see [`crate::worker::log_path`]).
    pub data_dir: PathBuf,
    pub pods: PodLookup,
    /// For an exec'd command's environment (ConfigMap and Secret values).
    pub client: Client,
    /// The node's address, for `status.podIP` and friends in that environment.
    pub node_address: String,
}

impl AgentService {
    /// The pod, or upstream's 404.
    pub(crate) fn pod(&self, namespace: &str, name: &str) -> Result<Arc<Pod>, ApiError> {
        (self.pods)(namespace, name).ok_or_else(|| ApiError::not_found("", "pods", name))
    }
}

/// The pod's container called `name`, with upstream's errors for a name
/// that is not in the pod. An empty name means the only container; with
/// `default_to_first`, the first one when there are several (exec's rule
/// here; logs insist on a name, as upstream).
pub(crate) fn pick_container(pod: &Pod, name: &str, default_to_first: bool) -> Result<Container, ApiError> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    if name.is_empty() {
        return match containers {
            [] => Err(ApiError::bad_request(format!("a container name must be specified for pod {pod_name}"))),
            [only] => Ok(only.clone()),
            [first, ..] if default_to_first => Ok(first.clone()),
            _ => {
                let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
                Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    names.join(" ")
                )))
            }
        };
    }
    containers
        .iter()
        .find(|c| c.name == name)
        .cloned()
        .ok_or_else(|| ApiError::bad_request(format!("container {name} is not valid for pod {pod_name}")))
}

#[tonic::async_trait]
impl Agent for AgentService {
    type LogsStream = LogsStream;
    type ExecStream = ExecStream;

    async fn logs(&self, request: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let stream = crate::logs::serve(self, request.into_inner()).await.map_err(|e| e.to_grpc())?;
        Ok(Response::new(stream))
    }

    async fn exec(&self, request: Request<Streaming<ExecInput>>) -> Result<Response<Self::ExecStream>, Status> {
        let stream = crate::exec::serve(self, request.into_inner()).await.map_err(|e| e.to_grpc())?;
        Ok(Response::new(stream))
    }
}
