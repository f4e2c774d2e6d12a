//! # A cluster whose pods are Docker containers
//!
//! [`DockerCluster`] starts the real `tinykube server --runtime docker` on
//! top of [`Cluster`] and cleans up after it. With the docker runtime a
//! pod is what dockershim made of it: one *sandbox* (pause) container that
//! holds the pod's network namespace on the node's bridge network
//! `tinykube-<node>`, and one container per pod container that joins it.
//! Everything the agent makes carries the label `tinykube.io/node=<node>`,
//! which is how a test finds its own containers on an engine that other
//! tests (and other people) use at the same time.
//!
//! Tests running at once must not collide on the engine, so each cluster
//! gets:
//!
//! - **a node name of its own**, `dk-<pid>-<n>`: its network, containers
//!   and volumes are told apart by it;
//! - **a pod range of its own**, `10.88.N.0/24`: Docker refuses two
//!   networks whose subnets overlap, so N is claimed across processes with
//!   an exclusive lock on `<tmp>/tinykube-e2e-cidr/N` (see `CidrClaim`),
//!   and a range an existing network already covers is passed over.
//!
//! When a [`DockerCluster`] is dropped, also while a failing test unwinds,
//! the server is stopped and every container, volume and network labelled
//! with its node is removed: Docker outlives the test process, so nothing
//! else would clean them up.
//!
//! The engine here has no registry: images are the local ones
//! `scripts/images.sh` builds ([`BUSYBOX`], [`PYTHON`]), and the only
//! registry a test names is [`MISSING_IMAGE`]'s loopback port, where
//! nothing listens, so no pull ever leaves the machine.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::{e2e_required, Cluster, Kubectl};

/// The local busybox image (busybox-static: `sh`, `httpd`, `nc`, `wget`).
pub const BUSYBOX: &str = "tinykube.local/busybox:1";
/// The local Python image, the base of `examples/python-app`.
pub const PYTHON: &str = "tinykube.local/python:3";
/// An image whose registry is a loopback port where nothing listens: its
/// pull fails at once with the engine's `connection refused`.
pub const MISSING_IMAGE: &str = "127.0.0.1:5999/missing:1";
/// How the local images are made.
pub const IMAGES_HINT: &str = "build the local images with bash scripts/images.sh";

/// The pod ranges `10.88.N.0/24` the harness hands out. Other users of the
/// engine keep away from them: the older docker tests take N from 100 to
/// 249, the docker benchmark 250 and 251.
const CIDR_SLOTS: std::ops::RangeInclusive<u8> = 10..=99;

/// `docker <args>`; its stdout, or an error with its stderr.
pub fn docker(args: &[&str]) -> Result<String> {
    let out = Command::new("docker").args(args).output().context("running docker")?;
    if !out.status.success() {
        bail!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Docker Engine's version, or why none answers.
pub fn engine_version() -> Result<String> {
    Ok(docker(&["version", "--format", "{{.Server.Version}}"])?.trim().to_string())
}

/// Whether the engine has `image` locally.
pub fn image_present(image: &str) -> bool {
    docker(&["image", "inspect", "--format", "{{.Id}}", image]).is_ok()
}

/// Decides whether a test that needs `image` runs: `true` when the engine
/// has it; otherwise fails under `TINYKUBE_E2E_REQUIRE=1`, or prints why
/// the test is skipped and returns `false`.
pub fn require_image(image: &str) -> bool {
    if image_present(image) {
        return true;
    }
    assert!(!e2e_required(), "the image {image} is required (TINYKUBE_E2E_REQUIRE=1) but missing: {IMAGES_HINT}");
    eprintln!("skipped: the image {image} is missing ({IMAGES_HINT}); set TINYKUBE_E2E_REQUIRE=1 to make this a failure");
    false
}

/// What the agent makes per pod: dockershim's `io.kubernetes.docker.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The pause container holding the pod's namespaces.
    Sandbox,
    /// A container of the pod's spec.
    Container,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Sandbox => "podsandbox",
            Kind::Container => "container",
        }
    }
}

/// One container of this node as `docker ps -a` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerContainer {
    /// `k8s_POD_<pod>_<ns>_<uid>_<attempt>` or `k8s_<container>_<pod>_<ns>_<uid>_<attempt>`.
    pub name: String,
    /// The full id, as a pod's `containerID` names it after `docker://`.
    pub id: String,
    /// The engine's state: `created`, `running`, `exited`, ...
    pub state: String,
    /// The `io.kubernetes.pod.name` label.
    pub pod: String,
    /// The `io.kubernetes.pod.uid` label.
    pub pod_uid: String,
}

impl DockerContainer {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

/// A `tinykube server --runtime docker` and everything it made in Docker.
pub struct DockerCluster {
    pub cluster: Cluster,
    /// The node's name: the `tinykube.io/node` label of its containers.
    pub node: String,
    /// The node's pod range, `10.88.N.0/24`.
    pub cidr: String,
    /// Held until the network is gone, so no other test takes the range
    /// while it is still in use.
    _claim: CidrClaim,
}

/// Node names handed out by this process.
static NODES: AtomicU32 = AtomicU32::new(0);

impl DockerCluster {
    /// Starts a server with the docker runtime, or returns `None` (having
    /// printed why) when this machine cannot run one: no Docker Engine, or
    /// no local busybox image. Under `TINYKUBE_E2E_REQUIRE=1` either is a
    /// failure instead.
    pub fn start() -> Result<Option<Self>> {
        Self::start_with(&[])
    }

    /// As [`DockerCluster::start`], with more `tinykube server` flags.
    pub fn start_with(extra_args: &[&str]) -> Result<Option<Self>> {
        if let Err(e) = engine_version() {
            assert!(!e2e_required(), "a Docker Engine is required (TINYKUBE_E2E_REQUIRE=1) but none answers: {e:#}");
            eprintln!("skipped: no Docker Engine answers ({e:#}); set TINYKUBE_E2E_REQUIRE=1 to make this a failure");
            return Ok(None);
        }
        if !require_image(BUSYBOX) {
            return Ok(None);
        }
        let node = format!("dk-{}-{}", std::process::id(), NODES.fetch_add(1, Ordering::SeqCst));
        let claim = CidrClaim::take()?;
        let cidr = claim.cidr();
        // A network left by an earlier run of this very name (a test
        // process SIGKILLed before its cleanup) would carry another range.
        let _ = docker(&["network", "rm", &format!("tinykube-{node}")]);
        let mut args = vec!["--runtime", "docker", "--pod-cidr", &cidr];
        args.extend_from_slice(extra_args);
        // Whatever fails from here on is cleaned up by `drop`: the cluster
        // exists as soon as the server was spawned.
        let cluster = Cluster::start_node(&node, &args);
        let cluster = match cluster {
            Ok(c) => c,
            Err(e) => {
                remove_node_objects(&node);
                return Err(e);
            }
        };
        Ok(Some(DockerCluster { cluster, node, cidr, _claim: claim }))
    }

    /// The real kubectl, pointed at this cluster.
    pub fn kubectl(&self) -> Result<Kubectl> {
        Kubectl::new(&self.cluster)
    }

    /// The node's bridge network.
    pub fn network(&self) -> String {
        format!("tinykube-{}", self.node)
    }

    /// This node's containers of `kind`, in any state, sorted by name.
    pub fn containers(&self, kind: Kind) -> Vec<DockerContainer> {
        let format = "{{.ID}}\t{{.Names}}\t{{.State}}\t{{.Label \"io.kubernetes.pod.name\"}}\t{{.Label \"io.kubernetes.pod.uid\"}}";
        let out = docker(&[
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label=tinykube.io/node={}", self.node),
            "--filter",
            &format!("label=io.kubernetes.docker.type={}", kind.label()),
            "--format",
            format,
        ])
        .unwrap_or_default();
        let mut all: Vec<DockerContainer> = out
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t').map(str::to_string);
                Some(DockerContainer { id: f.next()?, name: f.next()?, state: f.next()?, pod: f.next()?, pod_uid: f.next()? })
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// This node's running containers of `kind`.
    pub fn running(&self, kind: Kind) -> Vec<DockerContainer> {
        self.containers(kind).into_iter().filter(DockerContainer::running).collect()
    }

    /// `docker inspect --format <format> <id>`, trimmed.
    pub fn inspect(&self, id: &str, format: &str) -> Result<String> {
        Ok(docker(&["inspect", "--format", format, id])?.trim().to_string())
    }

    /// Whether `ip` is inside this node's pod range.
    pub fn in_pod_range(&self, ip: &str) -> bool {
        let (Some(range), Ok(ip)) = (Subnet::parse(&self.cidr), ip.parse::<Ipv4Addr>()) else { return false };
        range.contains(ip)
    }

    /// The server's log so far (its data directory's `server.log`).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.cluster.data_dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server log tail of node {} ---\n{}", self.node, self.cluster.log_tail());
        }
        // The server first, so that it starts nothing while its containers go.
        let _ = self.cluster.stop();
        remove_node_objects(&self.node);
    }
}

/// Removes every container, volume and network of `node`.
fn remove_node_objects(node: &str) {
    let label = format!("label=tinykube.io/node={node}");
    let ids = docker(&["ps", "-aq", "--filter", &label]).unwrap_or_default();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend_from_slice(&ids);
        if let Err(e) = docker(&args) {
            eprintln!("cleanup of node {node}: {e:#}");
        }
    }
    for volume in docker(&["volume", "ls", "-q", "--filter", &label]).unwrap_or_default().split_whitespace() {
        let _ = docker(&["volume", "rm", "-f", volume]);
    }
    let network = format!("tinykube-{node}");
    if docker(&["network", "inspect", "--format", "{{.Name}}", &network]).is_ok() {
        if let Err(e) = docker(&["network", "rm", &network]) {
            eprintln!("cleanup of node {node}: {e:#}");
        }
    }
}

/// An IPv4 subnet such as `10.88.7.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Subnet {
    base: u32,
    bits: u32,
}

impl Subnet {
    fn parse(cidr: &str) -> Option<Self> {
        let (ip, bits) = cidr.split_once('/')?;
        let bits: u32 = bits.parse().ok().filter(|b| *b <= 32)?;
        let ip = u32::from(ip.parse::<Ipv4Addr>().ok()?);
        let subnet = Subnet { base: 0, bits };
        Some(Subnet { base: ip & subnet.mask(), bits })
    }

    fn mask(self) -> u32 {
        u32::MAX.checked_shl(32 - self.bits).unwrap_or(0)
    }

    fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.base
    }

    /// Two subnets overlap exactly when the wider one holds the other's base.
    fn overlaps(self, other: Subnet) -> bool {
        let wider = if self.bits <= other.bits { self } else { other };
        let narrower = if wider == self { other } else { self };
        narrower.base & wider.mask() == wider.base
    }
}

/// The IPv4 subnets of every network the engine has now.
fn engine_subnets() -> Vec<Subnet> {
    let ids = docker(&["network", "ls", "-q"]).unwrap_or_default();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"];
    args.extend_from_slice(&ids);
    // A network removed between the two calls fails the inspect of all;
    // fall back to one at a time.
    let listed = docker(&args).unwrap_or_else(|_| {
        ids.iter()
            .filter_map(|id| docker(&["network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", id]).ok())
            .collect()
    });
    listed.split_whitespace().filter_map(Subnet::parse).collect()
}

/// One pod range `10.88.N.0/24`, held by this process.
///
/// The claim is an exclusive `flock(2)` on `<tmp>/tinykube-e2e-cidr/N`, and
/// the file names the holder's pid for a person who wonders. A lock rather
/// than the file's existence marks the claim: the kernel drops it when
/// its process dies, even by SIGKILL, so a crashed run never leaves a
/// range taken, and no process ever has to decide that another is dead
/// and take its range over (two could decide so at once). For the same
/// reason the files are never deleted: a process could lock the file just
/// unlinked while a third creates and locks a new one of the same name.
struct CidrClaim {
    n: u8,
    _lock: std::fs::File,
}

impl CidrClaim {
    fn dir() -> PathBuf {
        std::env::temp_dir().join("tinykube-e2e-cidr")
    }

    /// Takes the first free range that no Docker network overlaps.
    fn take() -> Result<Self> {
        Self::take_in(&Self::dir(), &engine_subnets())
    }

    /// Takes the first range unclaimed in `dir` that overlaps none of `in_use`.
    fn take_in(dir: &Path, in_use: &[Subnet]) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for n in CIDR_SLOTS {
            let Some(range) = Subnet::parse(&format!("10.88.{n}.0/24")) else { continue };
            if in_use.iter().any(|s| s.overlaps(range)) {
                continue;
            }
            let path = dir.join(n.to_string());
            let mut file = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path)?;
            if !try_lock(&file) {
                continue;
            }
            file.set_len(0)?;
            writeln!(file, "{}", std::process::id())?;
            return Ok(CidrClaim { n, _lock: file });
        }
        bail!(
            "no free pod range 10.88.N.0/24 for N in {CIDR_SLOTS:?}: each is claimed by a running test or overlapped by a Docker network (docker network ls)"
        )
    }

    fn cidr(&self) -> String {
        format!("10.88.{}.0/24", self.n)
    }
}

/// An exclusive, non-blocking `flock(2)`; it is released when the file is
/// closed (the claim dropped) or its process dies.
#[allow(unsafe_code)]
fn try_lock(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) only reads the descriptor, which `file` keeps open
    // for the duration of the call.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// An HTTP reply: the status code and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub body: String,
}

/// `GET path` to `ip:port` over HTTP/1.0 on a plain TCP connection (the
/// server closes it after the reply), every step bounded by a short
/// timeout so an unreachable pod fails fast.
pub fn curl(ip: &str, port: u16, path: &str) -> Result<HttpReply> {
    let addr: SocketAddr = format!("{ip}:{port}").parse().with_context(|| format!("address {ip}:{port}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.set_write_timeout(Some(Duration::from_secs(3)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\n\r\n")?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).with_context(|| format!("reading the reply of {addr}"))?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| head.starts_with("HTTP/1."))
        .with_context(|| format!("not an HTTP reply from {addr}: {head:?}"))?;
    Ok(HttpReply { status, body: body.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_overlap_when_one_holds_the_others_base() {
        let s = |c| Subnet::parse(c).unwrap();
        assert!(s("10.88.0.0/16").overlaps(s("10.88.7.0/24")));
        assert!(s("10.88.7.0/24").overlaps(s("10.88.0.0/16")));
        assert!(s("10.88.7.0/24").overlaps(s("10.88.7.128/25")));
        assert!(!s("10.88.7.0/24").overlaps(s("10.88.8.0/24")));
        assert!(!s("172.17.0.0/16").overlaps(s("10.88.7.0/24")));
        assert!(s("0.0.0.0/0").overlaps(s("10.88.7.0/24")));
        assert!(s("10.88.7.0/24").contains("10.88.7.254".parse().unwrap()));
        assert!(!s("10.88.7.0/24").contains("10.88.8.1".parse().unwrap()));
        assert_eq!(s("10.88.7.9/24"), s("10.88.7.0/24"), "host bits are dropped");
    }

    #[test]
    fn a_claimed_range_is_not_handed_out_twice_and_is_free_again_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let taken_by_a_network = [Subnet::parse("10.88.10.0/24").unwrap()];
        let take = || CidrClaim::take_in(dir.path(), &taken_by_a_network).unwrap();
        let (first, second) = (take(), take());
        assert_eq!((first.cidr().as_str(), second.cidr().as_str()), ("10.88.11.0/24", "10.88.12.0/24"));
        drop(first);
        assert_eq!(take().cidr(), "10.88.11.0/24");
        let everything = [Subnet::parse("10.88.0.0/16").unwrap()];
        assert!(CidrClaim::take_in(dir.path(), &everything).is_err(), "a /16 network overlaps every range");
    }
}
