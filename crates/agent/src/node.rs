//! Node registration and status: how a node joins the cluster and shows it
//! is alive.
//!
//! A kubelet's first act is to create its Node object, labelled with its
//! hostname, OS and architecture and carrying what the scheduler needs:
//! `status.capacity` and `allocatable` (cpu, memory, pods), addresses, and
//! `daemonEndpoints.kubeletEndpoint.port` — where the api-server dials to
//! proxy `kubectl logs`. Then, every status period, it writes the Node's
//! conditions (`Ready`, `MemoryPressure`, `DiskPressure`, `PIDPressure`)
//! with a fresh `lastHeartbeatTime`. Cheap liveness is the Lease's job (see
//! the `lease` module); the node lifecycle controller reads both.
//!
//! Where tinykube simplifies: nothing is reserved for the system, so
//! allocatable equals capacity, and the pressure conditions are always
//! false (nothing measures pressure yet).

use std::collections::BTreeMap;

use client::{Api, Client};
use k8s_openapi::api::core::v1::{DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

/// The version the agent reports as its kubelet version.
pub const KUBELET_VERSION: &str = "v1.32.0-tinykube";
/// How many pods a node accepts, upstream's default `--max-pods`.
pub const MAX_PODS: &str = "110";

/// Facts about the host, read once at start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostInfo {
    pub cpus: usize,
    /// `MemTotal` from `/proc/meminfo`, in KiB.
    pub memory_kib: u64,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
    /// Go's name for the architecture (`amd64`, `arm64`), as labels use.
    pub arch: String,
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `MemTotal:  16318480 kB` → 16318480.
pub fn parse_mem_total_kib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"` → the quoted text.
pub fn parse_os_pretty_name(os_release: &str) -> Option<String> {
    let line = os_release.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
    Some(line.trim_start_matches("PRETTY_NAME=").trim_matches('"').to_string())
}

/// Rust's architecture name in Go's spelling, which Kubernetes labels use.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl HostInfo {
    pub fn read() -> Self {
        let machine_id = read_trimmed("/etc/machine-id").or_else(|| read_trimmed("/var/lib/dbus/machine-id")).unwrap_or_default();
        HostInfo {
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_kib: std::fs::read_to_string("/proc/meminfo").ok().as_deref().and_then(parse_mem_total_kib).unwrap_or(0),
            system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid").unwrap_or_else(|| machine_id.clone()),
            machine_id,
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
            os_image: std::fs::read_to_string("/etc/os-release")
                .ok()
                .as_deref()
                .and_then(parse_os_pretty_name)
                .unwrap_or_else(|| "Linux".into()),
            arch: go_arch(std::env::consts::ARCH).to_string(),
        }
    }
}

/// What the agent says about itself on its Node.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub name: String,
    /// The address pods and the api-server reach this node at.
    pub address: String,
    /// The port of the agent's own gRPC server (logs).
    pub port: u16,
    pub runtime_version: String,
}

/// The labels a kubelet puts on its Node.
pub fn node_labels(name: &str, arch: &str) -> BTreeMap<String, String> {
    [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", arch),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The four conditions a kubelet reports, keeping each one's
/// `lastTransitionTime` when its status is unchanged and stamping
/// `lastHeartbeatTime` with `now`.
pub fn node_conditions(old: &[NodeCondition], now: &Time) -> Vec<NodeCondition> {
    [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    .into_iter()
    .map(|(type_, status, reason, message)| {
        let since = old
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        NodeCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(since),
        }
    })
    .collect()
}

/// The Node's whole status, given the conditions it had before.
pub fn node_status(id: &NodeIdentity, host: &HostInfo, old: &[NodeCondition], now: &Time) -> NodeStatus {
    let capacity: BTreeMap<String, Quantity> =
        [("cpu", host.cpus.to_string()), ("memory", format!("{}Ki", host.memory_kib)), ("pods", MAX_PODS.to_string())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Quantity(v)))
            .collect();
    NodeStatus {
        allocatable: Some(capacity.clone()),
        capacity: Some(capacity),
        conditions: Some(node_conditions(old, now)),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: id.address.clone() },
            NodeAddress { type_: "Hostname".into(), address: id.name.clone() },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints { kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(id.port) }) }),
        node_info: Some(NodeSystemInfo {
            architecture: host.arch.clone(),
            boot_id: host.boot_id.clone(),
            container_runtime_version: id.runtime_version.clone(),
            kernel_version: host.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: host.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: host.os_image.clone(),
            system_uuid: host.system_uuid.clone(),
        }),
        ..Default::default()
    }
}

/// Creates the Node, or updates its labels if it already exists (a
/// restarted agent, or a node an admin pre-created), then writes its
/// status. Returns the Node as stored.
pub async fn register(client: &Client, id: &NodeIdentity, host: &HostInfo) -> Result<Node, api::ApiError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let labels = node_labels(&id.name, &host.arch);
    let now = api::time::now();
    let stored = match nodes.get_opt(&id.name).await? {
        None => {
            let node = Node {
                metadata: ObjectMeta { name: Some(id.name.clone()), labels: Some(labels), ..Default::default() },
                status: Some(node_status(id, host, &[], &now)),
                ..Default::default()
            };
            match nodes.create(&node).await {
                Ok(created) => created,
                // Someone created it between our get and create: use theirs.
                Err(e) if e.is_already_exists() => nodes.get(&id.name).await?,
                Err(e) => return Err(e),
            }
        }
        Some(mut existing) => {
            let current = existing.metadata.labels.get_or_insert_with(BTreeMap::new);
            let missing = labels.iter().any(|(k, v)| current.get(k) != Some(v));
            if missing {
                current.extend(labels);
                nodes.replace(&existing).await?
            } else {
                existing
            }
        }
    };
    update_status(&nodes, stored, id, host).await
}

/// Writes a fresh status (conditions with a new heartbeat) onto `node`.
async fn update_status(nodes: &Api<Node>, mut node: Node, id: &NodeIdentity, host: &HostInfo) -> Result<Node, api::ApiError> {
    let old = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    node.status = Some(node_status(id, host, &old, &api::time::now()));
    nodes.replace_status(&node).await
}

/// One heartbeat: re-reads the Node and refreshes its status; re-registers
/// it if it was deleted.
pub async fn heartbeat(client: &Client, id: &NodeIdentity, host: &HostInfo) -> Result<Node, api::ApiError> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.get_opt(&id.name).await? {
        Some(node) => update_status(&nodes, node, id, host).await,
        None => {
            tracing::warn!(node = %id.name, "our Node object is gone; registering again");
            register(client, id, host).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap())
    }

    #[test]
    fn host_files_are_parsed() {
        let meminfo = "MemTotal:       16318480 kB\nMemFree:         1000 kB\n";
        assert_eq!(parse_mem_total_kib(meminfo), Some(16_318_480));
        assert_eq!(parse_mem_total_kib("nothing"), None);
        let os = "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(parse_os_pretty_name(os).as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        let host = HostInfo::read();
        assert!(host.cpus >= 1);
    }

    #[test]
    fn heartbeat_refreshes_only_the_heartbeat_time() {
        let first = node_conditions(&[], &t(0));
        assert!(first.iter().all(|c| c.last_transition_time == Some(t(0))));
        let second = node_conditions(&first, &t(10));
        for c in &second {
            assert_eq!(c.last_heartbeat_time, Some(t(10)), "{}", c.type_);
            assert_eq!(c.last_transition_time, Some(t(0)), "{}", c.type_);
        }
        let ready = second.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("True", Some("KubeletReady")));
    }

    #[test]
    fn status_carries_capacity_and_the_logs_port() {
        let id = NodeIdentity { name: "n1".into(), address: "10.0.0.7".into(), port: 4321, runtime_version: "process://0.1".into() };
        let host = HostInfo { cpus: 4, memory_kib: 2048, arch: "amd64".into(), ..Default::default() };
        let s = node_status(&id, &host, &[], &t(0));
        let cap = s.capacity.unwrap();
        assert_eq!(cap["cpu"].0, "4");
        assert_eq!(cap["memory"].0, "2048Ki");
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(s.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port, 4321);
        let addresses = s.addresses.unwrap();
        assert_eq!((addresses[0].type_.as_str(), addresses[0].address.as_str()), ("InternalIP", "10.0.0.7"));
        let info = s.node_info.unwrap();
        assert_eq!(info.kubelet_version, KUBELET_VERSION);
        assert_eq!(info.container_runtime_version, "process://0.1");
        let labels = node_labels("n1", "amd64");
        assert_eq!(labels["kubernetes.io/hostname"], "n1");
        assert!(!labels.contains_key("node-role.kubernetes.io/control-plane"));
    }
}
