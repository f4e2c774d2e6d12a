//! The pod network: how pods get addresses and reach each other across
//! nodes.
//!
//! The node IPAM controller gives every Node a `spec.podCIDR` out of the
//! cluster's range. The agent then
//! - puts its pods on that range: the docker runtime makes its bridge
//!   network on it; the process runtime, when the agent runs as root, gives
//!   each pod a network namespace on a node bridge ([`bridge`]);
//! - routes every other node's range via that node's InternalIP and
//!   blackholes the rest of the cluster range ([`routes`]).
//!
//! Every step is an `ip` command ([`ip`]), so the agent's debug log reads
//! as the shell script that builds the network by hand.

pub mod bridge;
pub mod ip;
pub mod routes;

pub use bridge::{Attachment, PodNetwork};
pub use ip::NetError;

/// How the process runtime networks its pods (`--pod-network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodNetworkMode {
    /// A network namespace per pod on the node bridge (needs root).
    Bridge,
    /// Every pod shares the host's network; its IP is the node's.
    Host,
}

/// How the agent routes other nodes' pod ranges (`--flannel-backend`, as
/// k3s names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A route per node via its InternalIP, and a blackhole for the rest.
    HostGw,
    /// No routes: the pods reach only their own node.
    None,
}

/// Whether this process may change the host's network (is root).
pub fn can_configure() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    euid == 0
}
