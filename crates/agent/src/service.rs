//! The agent's own gRPC server, the kubelet's streaming endpoints:
//! container logs (the kubelet's `/containerLogs`) and exec (`/exec`).
//!
//! `kubectl logs` and `kubectl exec` ask the api-server, which looks up the
//! pod's node and dials that node's kubelet at
//! `InternalIP:daemonEndpoints.kubeletEndpoint.port`. Here the api-server
//! dials the `Agent` service of `proto/tinykube/v1`, served by
//! [`AgentService`]; [`crate::logs`] and [`crate::exec`] do the work.
//!
//! The port is TLS and serves only the api-server: a client must present
//! a certificate the cluster CA signed for
//! [`crate::APISERVER_CLIENT_USER`] (or for `system:masters`); anyone
//! else is cut off after the handshake. The agent's own serving
//! certificate is one it signs itself ([`tls`]).

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

/// The agent port's TLS: a serving certificate the agent signs itself for
/// its address, and client certificates required, signed by the CA.
pub fn tls(ca_pem: &str, node_ip: std::net::IpAddr) -> Result<Arc<rustls::ServerConfig>, api::pki::PkiError> {
    let spec = api::pki::CertSpec::server("tinykube-agent", vec!["localhost".into()], vec![node_ip]);
    let serving = api::pki::self_signed(&spec)?;
    api::tls::server_config(&serving, ca_pem, api::tls::ClientAuth::Required)
}

/// Whether a client certificate's subject may use the agent's port.
pub fn may_connect(subject: &api::pki::Subject) -> bool {
    subject.common_name == crate::APISERVER_CLIENT_USER || subject.organizations.iter().any(|o| o == "system:masters")
}

/// The accepted, handshaken and admitted connections of `listener`: only
/// clients [`may_connect`].
pub fn incoming(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    cancel: tokio_util::sync::CancellationToken,
) -> impl Stream<Item = Result<client::connect::TlsConn, std::io::Error>> {
    client::connect::accept_tls(listener, tls, may_connect, cancel)
}
