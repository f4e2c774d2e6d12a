//! `tinykube agent`: a node agent on its own, joining a server elsewhere —
//! the kubelet of a worker node. It joins with the token the server wrote
//! (see `agent::bootstrap`), then runs as `system:node:<name>`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::server::{hostname, shutdown_signal, RuntimeArg};

/// Options of `tinykube agent`.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The api-server's URL, e.g. https://10.0.0.1:6443.
    #[arg(long, env = "TINYKUBE_SERVER")]
    pub server: String,
    /// The join token, from the server's `<data-dir>/token`
    /// (`K10<CA hash>::<id>.<secret>`). Not needed again once the agent
    /// has joined: its certificate is kept in its data dir.
    #[arg(long, env = "TINYKUBE_TOKEN")]
    pub token: String,
    /// This node's name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Where agent state and container logs live.
    #[arg(long, default_value = "/var/lib/tinykube-agent")]
    pub data_dir: PathBuf,
    /// Address the agent serves logs on; the api-server dials it.
    #[arg(long, default_value = "0.0.0.0:10250")]
    pub listen: std::net::SocketAddr,
    /// The address other hosts reach this node at.
    #[arg(long)]
    pub node_ip: Option<std::net::IpAddr>,
    /// How the agent runs containers (default: docker when a Docker Engine
    /// answers at DOCKER_HOST or the default socket, else process).
    #[arg(long, value_enum)]
    pub runtime: Option<RuntimeArg>,
    #[command(flatten)]
    pub network: PodNetworkArgs,
    /// The cluster's pod range, as the server's `--cluster-cidr`: what
    /// this host blackholes under the routes to other nodes' pods.
    #[arg(long, default_value = agent::DEFAULT_CLUSTER_CIDR)]
    pub cluster_cidr: api::cidr::Cidr,
    /// First restart back-off of a crashed container, in milliseconds.
    #[arg(long, default_value_t = 10_000, hide = true)]
    pub backoff_base_ms: u64,
    /// How often the agent writes its Node's status and renews its Lease,
    /// as the kubelet's flag (a Go duration: `10s`, `1m`). It must stay
    /// well under the server's `--node-monitor-grace-period`.
    #[arg(long, default_value = "10s", value_parser = api::go::parse_duration)]
    pub node_status_update_frequency: Duration,
}

/// How a node's pods are networked: flags of both `tinykube agent` and
/// `tinykube server` (for its own node).
#[derive(Debug, Clone, clap::Args)]
pub struct PodNetworkArgs {
    /// This node's pod range, instead of waiting for the one the node IPAM
    /// controller gives the Node, as the kubelet's flag. Only this node
    /// uses it: other nodes route to the Node's `spec.podCIDR`, so with
    /// several nodes leave it to the controller.
    #[arg(long)]
    pub pod_cidr: Option<api::cidr::Cidr>,
    /// How the process runtime networks pods: `bridge`, a network
    /// namespace per pod on the node bridge `tinykube0` (needs root; the
    /// default then), or `host`, the host's network (a pod's IP is the
    /// node's).
    #[arg(long, value_enum)]
    pub pod_network: Option<PodNetworkArg>,
    /// How other nodes' pod ranges are reached, as k3s's flag: `host-gw`
    /// routes each via its node's InternalIP and blackholes the rest of
    /// the cluster range (needs root); `none` adds no routes.
    #[arg(long, value_enum, default_value = "host-gw")]
    pub flannel_backend: BackendArg,
}

impl PodNetworkArgs {
    /// Puts these choices into an agent's config.
    pub fn apply(&self, config: &mut agent::Config) {
        config.pod_cidr = self.pod_cidr.map(|c| c.to_string());
        config.pod_network = self.pod_network.map(|m| match m {
            PodNetworkArg::Bridge => agent::network::PodNetworkMode::Bridge,
            PodNetworkArg::Host => agent::network::PodNetworkMode::Host,
        });
        config.backend = match self.flannel_backend {
            BackendArg::HostGw => agent::network::Backend::HostGw,
            BackendArg::None => agent::network::Backend::None,
        };
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PodNetworkArg {
    Bridge,
    Host,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BackendArg {
    HostGw,
    None,
}

pub async fn run(args: AgentArgs) -> Result<()> {
    let node_name = args.node_name.clone().unwrap_or_else(hostname);
    if !args.server.starts_with("https://") {
        anyhow::bail!("--server must be an https:// URL (the api-server serves only TLS), not {:?}", args.server);
    }
    let token = api::pki::JoinToken::parse(&args.token).context("--token")?;
    let (credentials, ca_pem) = agent::bootstrap::credentials(&args.server, &token, &node_name, &args.data_dir).await?;
    let client = client::Client::new(&args.server, &credentials)?;
    let mut config = agent::Config::new(&node_name, args.data_dir.clone());
    config.listen = args.listen;
    if let Some(ip) = args.node_ip {
        config.node_ip = ip;
    }
    config.backoff_base = Duration::from_millis(args.backoff_base_ms);
    config.status_update_period = args.node_status_update_frequency;
    config.runtime = args.runtime.map(Into::into);
    args.network.apply(&mut config);
    config.cluster_cidr = args.cluster_cidr.to_string();
    config.ca_pem = ca_pem;
    let cancel = CancellationToken::new();
    let task = tokio::spawn(agent::run(client, config, cancel.clone()));
    shutdown_signal().await;
    cancel.cancel();
    task.await??;
    Ok(())
}
