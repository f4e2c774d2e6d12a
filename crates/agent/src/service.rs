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
use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::pods::PodLookup;
use crate::runtime::Runtime;

/// The stream of a `Logs` reply.
pub type LogsStream = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;
/// The stream of an `Exec` reply.
pub type ExecStream = Pin<Box<dyn Stream<Item = Result<ExecOutput, Status>> + Send>>;

/// The `Agent` gRPC service.
pub struct AgentService {
    pub runtime: Arc<dyn Runtime>,
    /// Where the pods' logs live (see [`crate::pods::log_path`]).
    pub data_dir: PathBuf,
    pub pods: PodLookup,
}

#[tonic::async_trait]
impl Agent for AgentService {
    type LogsStream = LogsStream;
    type ExecStream = ExecStream;

    async fn logs(&self, request: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let stream = crate::logs::serve(self.runtime.clone(), &self.data_dir, &self.pods, request.into_inner())
            .await
            .map_err(|e| e.to_grpc())?;
        Ok(Response::new(stream))
    }

    async fn exec(&self, request: Request<Streaming<ExecInput>>) -> Result<Response<Self::ExecStream>, Status> {
        let stream = crate::exec::serve(self.runtime.clone(), &self.pods, request.into_inner()).await.map_err(|e| e.to_grpc())?;
        Ok(Response::new(stream))
    }
}
