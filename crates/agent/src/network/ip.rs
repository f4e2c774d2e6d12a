//! Running iproute2's `ip`: every change the agent makes to the host's
//! network is one `ip` command, logged at debug level, so a learner can
//! read (and type) exactly what happened.
//!
//! Why the `ip` program and not netlink from Rust: the commands are the
//! documentation. `ip netns add`, `ip link add ... type veth` and `ip route
//! replace` are what every Kubernetes networking guide shows, the agent's
//! log replays as a shell script, and iproute2 is on every Linux host,
//! where a netlink crate would add a dozen crates and hide the steps.

use std::time::Duration;

/// How long one `ip` command may take.
const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed network step: the command and what it printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NetError(pub String);

/// Runs `ip <args>` and returns its stdout; a non-zero exit is an error
/// carrying the command line and `ip`'s own message.
pub async fn ip(args: &[&str]) -> Result<String, NetError> {
    let line = format!("ip {}", args.join(" "));
    tracing::debug!(command = %line, "network");
    let run = tokio::process::Command::new("ip").args(args).kill_on_drop(true).output();
    let out = match tokio::time::timeout(IP_TIMEOUT, run).await {
        Err(_) => return Err(NetError(format!("{line}: no answer within {IP_TIMEOUT:?}"))),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(NetError(format!("{line}: the `ip` program (iproute2) is not installed")))
        }
        Ok(Err(e)) => return Err(NetError(format!("{line}: {e}"))),
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(NetError(format!("{line}: {}", stderr.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether an error is `ip` saying the thing is already there.
pub fn exists(e: &NetError) -> bool {
    e.0.contains("File exists")
}

/// Whether an error is `ip` saying there is no such thing.
pub fn missing(e: &NetError) -> bool {
    ["Cannot find device", "No such file or directory", "No such process", "does not exist"].iter().any(|m| e.0.contains(m))
}

/// Turns on IPv4 forwarding: a node routes its pods' packets to other
/// nodes and back.
pub fn enable_forwarding() -> Result<(), NetError> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    match std::fs::read_to_string(path) {
        Ok(v) if v.trim() == "1" => Ok(()),
        _ => std::fs::write(path, "1").map_err(|e| NetError(format!("cannot turn on IP forwarding ({path}): {e}"))),
    }
}
