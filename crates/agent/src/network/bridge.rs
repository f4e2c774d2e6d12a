//! The process runtime's pod network: one Linux bridge per node, one
//! network namespace per pod, a veth pair between them. This is what the
//! CNI `bridge` plugin with `host-local` IPAM does for a kubelet:
//!
//! ```text
//! ip link add tinykube0 type bridge                 # once per node
//! ip addr add 10.244.1.1/24 dev tinykube0           # the pods' gateway
//! ip netns add tk-0123456789ab                      # once per pod
//! ip link add tkv0123456789ab type veth peer name eth0 netns tk-0123456789ab
//! ip link set tkv0123456789ab master tinykube0 up
//! ip -n tk-0123456789ab addr add 10.244.1.2/24 dev eth0
//! ip -n tk-0123456789ab link set lo up
//! ip -n tk-0123456789ab link set eth0 up
//! ip -n tk-0123456789ab route add default via 10.244.1.1
//! ```
//!
//! Addresses come from the node's `spec.podCIDR`: `.1` is the bridge, pods
//! get the next free one. Each address taken is a file under the agent's
//! state (`network/ips/<address>`, holding the pod's uid), so a restarted
//! agent hands out no address twice (host-local's layout). The namespaces
//! are named files under `/run/netns` and outlive the agent, like the
//! pods' processes in them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use api::cidr::Cidr;

use super::ip::{self, ip, NetError};

/// The node bridge's default name.
pub const DEFAULT_BRIDGE: &str = "tinykube0";

/// Where `ip netns add` puts a namespace's handle.
const NETNS_DIR: &str = "/run/netns";

/// One node's bridge and the addresses it hands out.
#[derive(Debug)]
pub struct PodNetwork {
    bridge: String,
    range: Cidr,
    gateway: IpAddr,
    ips: PathBuf,
}

/// A pod's place on the network: its namespace and address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// The name under `/run/netns`.
    pub netns: String,
    pub ip: IpAddr,
}

impl Attachment {
    /// The namespace's handle, which `setns(2)` joins.
    pub fn netns_path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.netns)
    }
}

/// The namespace name of a pod: `tk-` and the first 12 hex digits of its
/// uid (an interface or namespace name is short; 48 bits of a random uid
/// do not collide on one node).
pub fn netns_name(pod_uid: &str) -> String {
    format!("tk-{}", uid_hex(pod_uid))
}

fn uid_hex(pod_uid: &str) -> String {
    pod_uid.chars().filter(char::is_ascii_hexdigit).take(12).collect::<String>().to_ascii_lowercase()
}

/// The host end of a pod's veth pair (at most 15 characters).
fn host_veth(pod_uid: &str) -> String {
    format!("tkv{}", uid_hex(pod_uid))
}

impl PodNetwork {
    /// Makes (or checks) the node's bridge on `range` and turns on
    /// forwarding. A bridge left with another range (the node got a new
    /// `podCIDR`) gets the new gateway address instead.
    pub async fn open(bridge: &str, range: Cidr, state: &Path) -> Result<Self, NetError> {
        let gateway = range.host(1).filter(|_| range.size() >= 4 && range.network().is_ipv4()).ok_or_else(|| {
            NetError(format!("pod range {range} is too small or not IPv4: the bridge network needs an IPv4 range of at least 4 addresses"))
        })?;
        let ips = state.join("ips");
        std::fs::create_dir_all(&ips).map_err(|e| NetError(format!("cannot create {}: {e}", ips.display())))?;
        match ip(&["link", "add", bridge, "type", "bridge"]).await {
            Ok(_) => tracing::info!(bridge, %range, "created the node's pod bridge"),
            Err(e) if ip::exists(&e) => {}
            Err(e) => return Err(e),
        }
        let want = format!("{gateway}/{}", range.prefix());
        let shown = ip(&["-o", "-4", "addr", "show", "dev", bridge]).await?;
        let words: Vec<&str> = shown.split_whitespace().collect();
        let has: Vec<&str> = words.windows(2).filter(|w| w[0] == "inet").map(|w| w[1]).collect();
        if has != [want.as_str()] {
            if !has.is_empty() {
                tracing::warn!(bridge, old = ?has, new = %want, "the pod bridge had another range; replacing its address");
                ip(&["addr", "flush", "dev", bridge]).await?;
            }
            ip(&["addr", "add", &want, "dev", bridge]).await?;
        }
        ip(&["link", "set", bridge, "up"]).await?;
        ip::enable_forwarding()?;
        Ok(PodNetwork { bridge: bridge.to_string(), range, gateway, ips })
    }

    pub fn range(&self) -> Cidr {
        self.range
    }

    /// Gives a pod its namespace, veth and address. Anything a crashed
    /// earlier try left under the same names is replaced.
    pub async fn attach(&self, pod_uid: &str) -> Result<Attachment, NetError> {
        let attachment = Attachment { netns: netns_name(pod_uid), ip: self.allocate(pod_uid)? };
        if let Err(e) = self.plumb(pod_uid, &attachment).await {
            self.detach(pod_uid, &attachment).await;
            return Err(e);
        }
        tracing::info!(netns = %attachment.netns, ip = %attachment.ip, "pod attached to the node bridge");
        Ok(attachment)
    }

    async fn plumb(&self, pod_uid: &str, a: &Attachment) -> Result<(), NetError> {
        let (ns, veth) = (a.netns.as_str(), host_veth(pod_uid));
        if a.netns_path().exists() {
            let _ = ip(&["netns", "del", ns]).await;
        }
        let _ = ip(&["link", "del", &veth]).await;
        ip(&["netns", "add", ns]).await?;
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", ns]).await?;
        ip(&["link", "set", &veth, "master", &self.bridge, "up"]).await?;
        ip(&["-n", ns, "addr", "add", &format!("{}/{}", a.ip, self.range.prefix()), "dev", "eth0"]).await?;
        ip(&["-n", ns, "link", "set", "lo", "up"]).await?;
        ip(&["-n", ns, "link", "set", "eth0", "up"]).await?;
        ip(&["-n", ns, "route", "add", "default", "via", &self.gateway.to_string()]).await?;
        Ok(())
    }

    /// Removes a pod's namespace (its veth goes with it) and frees its
    /// address. Idempotent; failures are logged, not returned: there is
    /// nothing better to do with a half-removed namespace than to go on.
    pub async fn detach(&self, pod_uid: &str, a: &Attachment) {
        if a.netns_path().exists() {
            if let Err(e) = ip(&["netns", "del", &a.netns]).await {
                tracing::warn!(netns = %a.netns, error = %e, "cannot remove the pod's network namespace");
            }
        }
        match ip(&["link", "del", &host_veth(pod_uid)]).await {
            Err(e) if !ip::missing(&e) => tracing::warn!(error = %e, "cannot remove the pod's veth"),
            _ => {}
        }
        self.release(pod_uid, a.ip);
    }

    /// The pod's address: the one it holds already, else the lowest free
    /// one after the gateway (the last address, broadcast, is never used).
    fn allocate(&self, pod_uid: &str) -> Result<IpAddr, NetError> {
        let io = |e: std::io::Error| NetError(format!("pod addresses ({}): {e}", self.ips.display()));
        for entry in std::fs::read_dir(&self.ips).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if std::fs::read_to_string(&path).is_ok_and(|owner| owner == pod_uid) {
                if let Some(addr) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()) {
                    if self.range.contains(addr) {
                        return Ok(addr);
                    }
                }
                let _ = std::fs::remove_file(&path);
            }
        }
        for n in 2..self.range.size().saturating_sub(1) {
            let Some(addr) = self.range.host(n) else { break };
            let path = self.ips.join(addr.to_string());
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    use std::io::Write;
                    file.write_all(pod_uid.as_bytes()).map_err(io)?;
                    return Ok(addr);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(e)),
            }
        }
        Err(NetError(format!("no free address left in the pod range {}", self.range)))
    }

    fn release(&self, pod_uid: &str, addr: IpAddr) {
        let path = self.ips.join(addr.to_string());
        if std::fs::read_to_string(&path).is_ok_and(|owner| owner == pod_uid) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Whether a pod's namespace is still there.
pub fn netns_exists(a: &Attachment) -> bool {
    a.netns_path().exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_in_an_interface_name() {
        let uid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        assert_eq!(netns_name(uid), "tk-0f1e2d3c4b5a");
        assert_eq!(host_veth(uid), "tkv0f1e2d3c4b5a");
        assert!(host_veth(uid).len() <= 15);
    }

    #[test]
    fn addresses_are_handed_out_once_and_kept_per_pod() {
        let dir = tempfile::tempdir().unwrap();
        let ips = dir.path().join("ips");
        std::fs::create_dir_all(&ips).unwrap();
        let net = PodNetwork { bridge: "b".into(), range: "10.9.0.0/29".parse().unwrap(), gateway: "10.9.0.1".parse().unwrap(), ips };
        let a = net.allocate("a").unwrap();
        let b = net.allocate("b").unwrap();
        assert_eq!(a.to_string(), "10.9.0.2");
        assert_eq!(b.to_string(), "10.9.0.3");
        assert_eq!(net.allocate("a").unwrap(), a, "a pod keeps its address");
        for uid in ["c", "d", "e"] {
            net.allocate(uid).unwrap();
        }
        let full = net.allocate("f").unwrap_err();
        assert!(full.0.contains("no free address"), "{full}");
        net.release("b", b);
        assert_eq!(net.allocate("f").unwrap(), b, "a freed address is used again");
        net.release("a", b);
        assert_eq!(net.allocate("f").unwrap(), b, "only the owner frees an address");
    }
}
