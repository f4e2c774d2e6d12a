//! Reaching a pod's node agent, as kube-apiserver reaches the kubelet.
//!
//! `kubectl logs` asks the api-server, which finds the pod's node, reads
//! the node's address (`status.addresses`, InternalIP first) and the
//! agent's port (`status.daemonEndpoints.kubeletEndpoint.port`), and
//! forwards the request there over TLS, proving itself with its own
//! client certificate, which is all an agent's port accepts. Nothing else
//! in tinykube dials an agent.

use api::proto::agent_client::AgentClient;
use api::ApiError;
use tonic::transport::{Channel, Endpoint};

use crate::registry::Registry;

/// A connection to the agent that runs `namespace/pod`.
pub async fn agent_for_pod(registry: &Registry, namespace: &str, pod: &str) -> Result<AgentClient<Channel>, ApiError> {
    let pods = api::resources::by_resource("", "pods").expect("pods are in the table");
    let nodes = api::resources::by_resource("", "nodes").expect("nodes are in the table");
    let ns = if namespace.is_empty() { "default" } else { namespace };
    let pod_obj = registry.get(pods, ns, pod).await?;
    let node_name = pod_obj["spec"]["nodeName"].as_str().unwrap_or_default();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!("pod {pod} does not have a host assigned")));
    }
    let node = registry.get(nodes, "", node_name).await?;
    let addresses = node["status"]["addresses"].as_array().cloned().unwrap_or_default();
    let address = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|t| addresses.iter().find(|a| a["type"] == *t).and_then(|a| a["address"].as_str()))
        .ok_or_else(|| ApiError::unavailable(format!("node {node_name} has no address")))?
        .to_string();
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_i64()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::unavailable(format!("node {node_name} publishes no agent port")))?;
    let host = if address.contains(':') { format!("[{address}]") } else { address };
    let credentials = registry
        .kubelet_client()
        .ok_or_else(|| ApiError::unavailable("the api-server has no client certificate for node agents".to_string()))?;
    let endpoint = Endpoint::from_shared(format!("https://{host}:{port}"))
        .map_err(|e| ApiError::internal(format!("bad agent address: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(3));
    let connector = client::connect::Connector::new(endpoint.uri(), credentials)?;
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot reach the agent of node {node_name}: {e}")))?;
    Ok(AgentClient::new(channel))
}
