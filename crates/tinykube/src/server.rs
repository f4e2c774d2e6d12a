//! `tinykube server`: the whole control plane and a node in one process.
//!
//! Start-up order follows the dependencies: the store opens (recovering
//! its revision from disk), the cluster's certificates are loaded or made
//! ([`crate::cluster_pki`]), the api-server binds its TLS port, creates
//! the system namespaces and publishes the join token's Secret and
//! `cluster-info`, the kubeconfig is written, and then the scheduler, the
//! controller-manager and the local agent start as clients of the
//! api-server over gRPC, each with its own client certificate — exactly
//! as they would from other machines.
//!
//! Shutdown (SIGINT or SIGTERM) cancels one token that every task watches.
//! The agent stops the processes it runs; the api-server stops serving;
//! the store flushes. A second signal, or the grace period running out,
//! exits at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cluster_pki::ClusterPki;
use crate::kubeconfig;

/// How long shutdown waits for tasks (the agent stopping containers).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// Options of `tinykube server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Where the store, agent state and logs live.
    #[arg(long, env = "TINYKUBE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the api-server: gRPC and Kubernetes REST on one port.
    /// Port 0 takes a free port; the kubeconfig, written once the server
    /// listens, names the port it got.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// More names and addresses for the serving certificate (repeatable,
    /// or comma-separated), as k3s's `--tls-san`: what clients on other
    /// hosts dial, when it is not an address of this host.
    #[arg(long, value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// How the local agent runs containers (default: docker when a Docker
    /// Engine answers at DOCKER_HOST or the default socket, else process).
    #[arg(long, value_enum)]
    pub runtime: Option<RuntimeArg>,
    /// The address other hosts reach the local node at (its
    /// `InternalIP`); its agent then listens there too.
    #[arg(long)]
    pub node_ip: Option<std::net::IpAddr>,
    #[command(flatten)]
    pub network: crate::agent_cmd::PodNetworkArgs,
    /// Run only the control plane, no local agent.
    #[arg(long)]
    pub no_agent: bool,
    /// The local node's name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Seconds between compactions of the store's history (watches from an
    /// older resourceVersion then get 410 Expired), as kube-apiserver's
    /// `--etcd-compaction-interval`.
    #[arg(long, default_value_t = 300)]
    pub compaction_interval: u64,
    /// First restart back-off of a crashed container, in milliseconds
    /// (Kubernetes uses 10 s doubling to 5 min; tests shorten it).
    #[arg(long, default_value_t = 10_000, hide = true)]
    pub backoff_base_ms: u64,
    /// How often the local agent writes its Node's status and renews its
    /// Lease, as the kubelet's flag (a Go duration: `10s`, `1m`).
    #[arg(long, default_value = "10s", value_parser = api::go::parse_duration)]
    pub node_status_update_frequency: Duration,
    /// Also write the admin kubeconfig to this file, as k3s's flag does:
    /// for a server in a container, a file in a folder shared with the
    /// host. Its server URL is the same as `<data-dir>/kubeconfig.yaml`'s.
    #[arg(long, env = "TINYKUBE_KUBECONFIG_OUTPUT")]
    pub write_kubeconfig: Option<PathBuf>,
    /// The file mode of `--write-kubeconfig`'s file, in octal (k3s's flag;
    /// default 600, since the file holds the admin's private key; 644 lets
    /// a host user other than the container's root read it).
    #[arg(long, env = "TINYKUBE_KUBECONFIG_MODE", value_parser = parse_mode, default_value = "600")]
    pub write_kubeconfig_mode: u32,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// A file mode in octal, as chmod takes it: `644`, `0600`.
fn parse_mode(text: &str) -> Result<u32, String> {
    match u32::from_str_radix(text, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("{text:?} is not a file mode in octal, such as 600 or 644")),
    }
}

/// The control plane's settings for nodes, with kube-controller-manager's
/// and kube-apiserver's flag names and upstream 1.32's defaults.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// The pod network, cut into one range per node (the node IPAM
    /// controller's `--cluster-cidr`).
    #[arg(long, default_value = controllers::nodeipam::DEFAULT_CLUSTER_CIDR)]
    pub cluster_cidr: api::cidr::Cidr,
    /// The prefix length of each node's range (default 24 for IPv4, 64
    /// for IPv6).
    #[arg(long)]
    pub node_cidr_mask_size: Option<u8>,
    /// How often the node lifecycle controller looks at every node.
    #[arg(long, default_value = "5s", value_parser = api::go::parse_duration)]
    pub node_monitor_period: Duration,
    /// How long a node may send no heartbeat before it is `Unknown` and
    /// tainted unreachable.
    #[arg(long, default_value = "50s", value_parser = api::go::parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// The `tolerationSeconds` every pod gets for `node.kubernetes.io/not-ready:NoExecute`.
    #[arg(long, default_value_t = apiserver::defaulttolerationseconds::DEFAULT_TOLERATION_SECONDS)]
    pub default_not_ready_toleration_seconds: i64,
    /// The `tolerationSeconds` every pod gets for `node.kubernetes.io/unreachable:NoExecute`.
    #[arg(long, default_value_t = apiserver::defaulttolerationseconds::DEFAULT_TOLERATION_SECONDS)]
    pub default_unreachable_toleration_seconds: i64,
}

impl ClusterArgs {
    /// The controller-manager's settings, checked.
    pub fn controllers(&self) -> Result<controllers::Config> {
        let mask = self.node_cidr_mask_size.unwrap_or_else(|| controllers::nodeipam::default_node_cidr_mask_size(&self.cluster_cidr));
        let config = controllers::Config {
            cluster_cidr: self.cluster_cidr,
            node_cidr_mask_size: mask,
            node_monitor: controllers::nodelifecycle::Monitor {
                period: self.node_monitor_period,
                grace_period: self.node_monitor_grace_period,
                ..Default::default()
            },
        };
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }

    /// The DefaultTolerationSeconds admission plugin's settings.
    pub fn toleration_seconds(&self) -> apiserver::defaulttolerationseconds::DefaultTolerationSeconds {
        apiserver::defaulttolerationseconds::DefaultTolerationSeconds {
            not_ready: self.default_not_ready_toleration_seconds,
            unreachable: self.default_unreachable_toleration_seconds,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RuntimeArg {
    /// Real containers through the Docker Engine.
    Docker,
    /// Each container's command as a local process; images are not used.
    Process,
}

impl From<RuntimeArg> for agent::RuntimeKind {
    fn from(arg: RuntimeArg) -> Self {
        match arg {
            RuntimeArg::Docker => agent::RuntimeKind::Docker,
            RuntimeArg::Process => agent::RuntimeKind::Process,
        }
    }
}

/// The host name, for the default node name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty() && api::names::validate_subdomain(h).is_empty())
        .unwrap_or_else(|| "tinykube-node".into())
}

pub async fn run(args: ServerArgs) -> Result<()> {
    let started = Instant::now();
    let controller_config = args.cluster.controllers()?;
    let data_dir = args.data_dir.clone().unwrap_or_else(kubeconfig::default_data_dir);
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;

    let store = store::Store::open(&data_dir.join("store"))
        .with_context(|| format!("opening the store in {}", data_dir.join("store").display()))?;
    tracing::info!(revision = store.revision(), "store open");

    let pki = ClusterPki::prepare(&data_dir, args.listen, &args.tls_san)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {} (is another server running?)", args.listen))?;
    let addr = listener.local_addr()?;
    // Components dial the server where it listens, or on loopback when it
    // listens on every address; the serving certificate covers both.
    let dial = if addr.ip().is_unspecified() { SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port()) } else { addr };
    let url = format!("https://{dial}");
    let tls = api::tls::server_config(&pki.serving, pki.ca.cert_pem(), api::tls::ClientAuth::Optional)?;
    let kubelet_client = client::Credentials {
        // Agents serve a certificate they signed themselves; as upstream
        // without --kubelet-certificate-authority, it is not checked.
        trust: api::tls::Trust::AnyServer,
        identity: Some(pki.component(agent::APISERVER_CLIENT_USER, &["system:masters"])?),
        bearer: None,
    };
    let apiserver = apiserver::ApiServer::new(Arc::new(store.clone()))
        .await?
        .with_kubelet_client(kubelet_client)
        .with_default_toleration_seconds(args.cluster.toleration_seconds())
        .with_compaction_interval(Duration::from_secs(args.compaction_interval.max(1)));
    pki.publish(apiserver.registry(), &url).await?;

    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(named("api-server", apiserver.serve(listener, tls, cancel.clone())));

    let kubeconfig_path = data_dir.join("kubeconfig.yaml");
    kubeconfig::write(&kubeconfig_path, kubeconfig::PRIVATE, &url, pki.ca.cert_pem(), &pki.admin)?;
    if let Some(out) = &args.write_kubeconfig {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        kubeconfig::write(out, args.write_kubeconfig_mode, &url, pki.ca.cert_pem(), &pki.admin)?;
        tracing::info!(kubeconfig = %out.display(), mode = format!("{:o}", args.write_kubeconfig_mode), "wrote the admin kubeconfig");
    }
    tracing::info!(url, kubeconfig = %kubeconfig_path.display(), token = %data_dir.join("token").display(), "api-server listening");

    let ca = pki.ca.cert_pem().to_string();
    let as_user = |user: &str, groups: &[&str]| -> Result<client::Client> {
        Ok(client::Client::new(&url, &client::Credentials::certificate(&ca, pki.component(user, groups)?))?)
    };
    tasks.spawn(named("scheduler", scheduler::run(as_user("system:kube-scheduler", &[])?, cancel.clone())));
    let controller_manager = as_user("system:kube-controller-manager", &[])?;
    tasks.spawn(named("controller-manager", controllers::run(controller_manager.clone(), controller_config, cancel.clone())));
    let signer = Arc::new(api::pki::Ca::from_pem(pki.ca.cert_pem(), &std::fs::read_to_string(pki.dir.join("ca.key"))?)?);
    tasks.spawn(named("csr-signer", controllers::certificates::run(controller_manager, signer, cancel.clone())));
    if !args.no_agent {
        let node_name = args.node_name.clone().unwrap_or_else(hostname);
        let mut config = agent::Config {
            node_name: node_name.clone(),
            backoff_base: Duration::from_millis(args.backoff_base_ms),
            status_update_period: args.node_status_update_frequency,
            runtime: args.runtime.map(Into::into),
            cluster_cidr: args.cluster.cluster_cidr.to_string(),
            ca_pem: ca.clone(),
            ..agent::Config::new(&node_name, data_dir.clone())
        };
        args.network.apply(&mut config);
        if let Some(ip) = args.node_ip {
            config.node_ip = ip;
            config.listen = SocketAddr::new(ip, 0);
        }
        let node_client = as_user(&format!("system:node:{node_name}"), &["system:nodes"])?;
        tasks.spawn(named("agent", agent::run(node_client, config, cancel.clone())));
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "tinykube is up");

    // Run until a signal, or until a component fails.
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        Some(done) = tasks.join_next() => {
            if let Ok(Err(e)) = &done { tracing::error!(error = %e, "a component failed; shutting down"); }
        }
    }
    cancel.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(res) = tasks.join_next().await {
            if let Ok(Err(e)) = res {
                tracing::warn!(error = %e, "component ended with an error");
            }
        }
    });
    tokio::select! {
        r = drained => if r.is_err() { tracing::warn!("grace period over; exiting") },
        _ = shutdown_signal() => tracing::warn!("second signal; exiting now"),
    }
    store.flush().await.context("flushing the store")?;
    tracing::info!("stopped");
    Ok(())
}

/// Runs a component and labels its error with its name.
async fn named<E: std::fmt::Display>(name: &'static str, fut: impl std::future::Future<Output = Result<(), E>>) -> Result<()> {
    fut.await.map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_modes_are_octal() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("666"), Ok(0o666));
        for bad in ["", "8", "rw-r--r--", "1777", "-1"] {
            assert!(parse_mode(bad).is_err(), "{bad:?}");
        }
    }
}
