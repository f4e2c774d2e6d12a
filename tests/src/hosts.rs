//! Test hosts as network namespaces: several "machines" on one test
//! process's machine, each with a network stack of its own, wired to one
//! switch.
//!
//! ```text
//!   root netns (the test, kubectl)            switch netns tk<pid>as
//!   tk<pid>ar 10.123.N.254 ──veth── root ──┐
//!                                          ├─ br0 (a Linux bridge)
//!   host netns tk<pid>ah0: eth0 .1 ─veth─ h0 ┤
//!   host netns tk<pid>ah1: eth0 .2 ─veth─ h1 ┤
//!   ...                                      ┘
//! ```
//!
//! Every host is a network namespace with loopback up, IP forwarding on
//! (a node routes its pods' traffic) and one veth whose other end is a
//! port of the bridge in the *switch* namespace. The root namespace gets a
//! port too, so the test and the real `kubectl` reach the api-server in
//! host 0 at its link address.
//!
//! Processes run in a host through [`Host::command`]: `nsenter --net`
//! into the host's namespace, then a mount namespace of their own with a
//! fresh `/sys` (so `/sys/class/net` shows the host's links), as
//! `ip netns exec` does, but without `ip netns exec`'s `mount --make-rslave /`.
//! That matters for agents, which make a network namespace per pod with
//! `ip netns add`, a bind mount under `/run/netns`: under `ip netns exec`
//! the mount would stay in the agent's private mount namespace, so neither
//! the test (to list and delete pod namespaces, to find their processes)
//! nor the same agent restarted (in a new `ip netns exec`) could enter
//! them. Here `/run/netns` stays shared with the root namespace, as on a
//! real host.
//!
//! Why a switch namespace of its own rather than a bridge in the root
//! namespace: Docker sets the root namespace's iptables FORWARD policy to
//! DROP and loads `br_netfilter`, which hands bridged frames to iptables
//! (`net.bridge.bridge-nf-call-iptables=1`). A bridge in the root
//! namespace would drop host-to-host traffic unless the test added an
//! ACCEPT rule to the machine's firewall and removed it afterwards. The
//! sysctl and the iptables tables are per network namespace, so in a fresh
//! switch namespace the FORWARD policy is ACCEPT, and the fixture also
//! sets `bridge-nf-call-iptables` (and the ip6tables and arptables ones)
//! to 0 there so bridged frames never reach netfilter at all: nothing of
//! the machine's firewall is touched. Traffic between the root namespace
//! and host 0 is local delivery on the root side (OUTPUT and INPUT), not
//! forwarding, so the root FORWARD policy does not apply to it either.
//!
//! Names and addresses are unique per test process: the namespaces carry
//! the pid and a letter per [`Hosts`] of the process (`tk<pid>as`,
//! `tk<pid>ah<i>`, the root veth `tk<pid>ar`, at most 11 of the 15
//! characters an interface name may have), and the link
//! subnet is a `/24` of 10.123.0.0/16 or 10.124.0.0/16 that no address or
//! route of the root namespace overlaps, picked under a lock file so two
//! test processes never pick the same one.
//!
//! Dropping [`Hosts`] kills every process still in its namespaces (and in
//! the pod namespaces agents made, which agents record in
//! `<data dir>/agent/sandboxes/<id>.json`), then deletes those namespaces,
//! the hosts, the switch and the root veth. Every step is bounded and
//! failures are only printed. Leftovers of an earlier run of this fixture
//! that crashed (its pid no longer alive) are removed when a new [`Hosts`]
//! is made.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::run_with_timeout;

/// How long one `ip` command may take.
const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// Gives a new mount namespace a `/sys` of the network namespace it is
/// in, without touching the mounts it shares with the root namespace
/// (`/sys` is made a slave first so its unmounting does not propagate
/// back), then execs its arguments.
const FRESH_SYS: &str = r#"mount --make-rslave /sys && umount -l /sys && mount -t sysfs sysfs /sys && exec "$@""#;

/// The bridge inside the switch namespace.
const BRIDGE: &str = "br0";

/// The name of a host's link inside its own namespace.
pub const HOST_LINK: &str = "eth0";

/// The host octet of the root namespace's address on the link subnet.
const ROOT_OCTET: u8 = 254;

/// The ranges the link subnet is taken from (second octet of 10.x.y.0/24),
/// ranges no other test uses.
const SUBNET_RANGES: [u8; 2] = [123, 124];

/// Where a tinykube process runs: this machine's own network (loopback),
/// or a test host's network namespace at its link address.
#[derive(Debug, Clone)]
pub struct Host {
    /// The host's network namespace; `None` for this machine itself.
    pub netns: Option<String>,
    /// The address the host's processes serve and are reached at.
    pub ip: IpAddr,
    /// The data directories of the agents on this host (shared by the
    /// clones of this host): the [`Hosts`] it belongs to deletes the pod
    /// namespaces recorded in them when dropped.
    data_dirs: Arc<Mutex<Vec<PathBuf>>>,
}

impl Host {
    /// This machine, on loopback: the single-host harness.
    pub fn local() -> Host {
        Host { netns: None, ip: IpAddr::V4(Ipv4Addr::LOCALHOST), data_dirs: Arc::default() }
    }

    /// Whether this is the machine itself rather than a namespace.
    pub fn is_local(&self) -> bool {
        self.netns.is_none()
    }

    /// A command that runs `program` (with the arguments the caller adds)
    /// on this host; see the module docs for how it enters a test host.
    /// Each step execs the next in place (no step forks), so the child's
    /// pid is the program's.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.netns {
            None => Command::new(program),
            Some(ns) => {
                let mut cmd = Command::new("nsenter");
                cmd.arg(format!("--net=/run/netns/{ns}"))
                    .args(["--", "unshare", "--mount", "--propagation", "unchanged", "--", "sh", "-c", FRESH_SYS, ns])
                    .arg(program);
                cmd
            }
        }
    }

    /// Runs `program args` on this host to completion (bounded).
    pub fn run(&self, program: &str, args: &[&str], timeout: Duration) -> Result<Output> {
        let mut cmd = self.command(program);
        cmd.args(args);
        run_with_timeout(cmd, timeout)
    }

    /// Runs `ip args` in this host's namespace (`ip -n <netns>`); fails
    /// unless it succeeds, and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all: Vec<&str> = Vec::new();
        if let Some(ns) = &self.netns {
            all.extend(["-n", ns.as_str()]);
        }
        all.extend_from_slice(args);
        ip_ok(&all)
    }

    /// Pids of every process in this host's network namespace and in the
    /// pod namespaces of its agents (for the local host: none are listed,
    /// the machine is not ours to count).
    pub fn pids(&self) -> Vec<u32> {
        let Some(ns) = &self.netns else { return Vec::new() };
        let mut pids = netns_pids(ns);
        for pod in self.pod_netns() {
            pids.extend(netns_pids(&pod));
        }
        pids
    }

    /// Those of [`Host::pids`] whose command line contains `marker`, as
    /// [`crate::pids_with`] counts them (no zombies, no forks not yet
    /// exec'd).
    pub fn pids_with(&self, marker: &str) -> Vec<u32> {
        let here = self.pids();
        crate::pids_with(marker).into_iter().filter(|p| here.contains(p)).collect()
    }

    /// The pod namespaces recorded in this host's agents' data dirs that
    /// still exist.
    pub fn pod_netns(&self) -> Vec<String> {
        let dirs = self.data_dirs.lock().map(|d| d.clone()).unwrap_or_default();
        let recorded: Vec<String> = dirs.iter().flat_map(|d| recorded_pod_netns(d)).collect();
        if recorded.is_empty() {
            return recorded;
        }
        let existing = netns_list();
        recorded.into_iter().filter(|ns| existing.contains(ns)).collect()
    }

    /// Remembers an agent data directory on this host, whose pod
    /// namespaces [`Hosts`] deletes when it is dropped.
    pub fn register_data_dir(&self, dir: &Path) {
        if let Ok(mut dirs) = self.data_dirs.lock() {
            dirs.push(dir.to_path_buf());
        }
    }
}

/// Why test hosts cannot be made here, if they cannot: they need root,
/// iproute2's `ip`, and util-linux's `nsenter`, `unshare` and `mount`.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some("network namespaces need root".into());
    }
    let runs = |program: &str, arg: &str| Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success());
    if !runs("ip", "-V") {
        return Some("no `ip` (iproute2) on the PATH".into());
    }
    for tool in ["nsenter", "unshare", "mount"] {
        if !runs(tool, "--version") {
            return Some(format!("no `{tool}` (util-linux) on the PATH"));
        }
    }
    None
}

/// N test hosts on one switch; see the module docs. Index it for a host.
pub struct Hosts {
    hosts: Vec<Host>,
    switch: String,
    root_veth: String,
    /// The first three octets of the link subnet (`10.123.N`).
    subnet: [u8; 3],
}

impl std::ops::Index<usize> for Hosts {
    type Output = Host;
    fn index(&self, i: usize) -> &Host {
        &self.hosts[i]
    }
}

impl Hosts {
    /// Makes `n` hosts, `tk<pid><letter>h0` at `10.x.y.1` up to
    /// `tk<pid><letter>h<n-1>`.
    pub fn new(n: usize) -> Result<Hosts> {
        static INSTANCES: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
        if n == 0 || n > 200 {
            bail!("between 1 and 200 hosts, not {n}");
        }
        let instance = INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if instance >= 26 {
            bail!("at most 26 sets of test hosts per test process");
        }
        remove_leftovers();
        let pid = std::process::id();
        let prefix = format!("tk{pid}{}", char::from(b'a' + instance));
        let mut hosts = Hosts { hosts: Vec::new(), switch: format!("{prefix}s"), root_veth: format!("{prefix}r"), subnet: [0; 3] };
        // From here on, whatever exists is removed by `drop` if a step fails.
        ip_ok(&["netns", "add", &hosts.switch])?;
        let switch = hosts.switch_host();
        switch.ip(&["link", "set", "lo", "up"])?;
        // Bridged frames skip netfilter in the switch (see the module docs).
        // The sysctls exist only while br_netfilter is loaded.
        for table in ["iptables", "ip6tables", "arptables"] {
            let key = format!("/proc/sys/net/bridge/bridge-nf-call-{table}");
            let out = switch.run("sh", &["-c", &format!("[ ! -e {key} ] || echo 0 > {key}")], IP_TIMEOUT)?;
            if !out.status.success() {
                bail!("setting {key} to 0 in {}: {}", hosts.switch, String::from_utf8_lossy(&out.stderr));
            }
        }
        switch.ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        switch.ip(&["link", "set", BRIDGE, "up"])?;

        // The root namespace's port, with the subnet picked under the lock.
        {
            let _lock = SubnetLock::take()?;
            hosts.subnet = free_subnet(pid)?;
            ip_ok(&["link", "add", &hosts.root_veth, "type", "veth", "peer", "name", "root", "netns", &hosts.switch])?;
            ip_ok(&["addr", "add", &format!("{}/24", hosts.addr(ROOT_OCTET)), "dev", &hosts.root_veth])?;
        }
        ip_ok(&["link", "set", &hosts.root_veth, "up"])?;
        switch.ip(&["link", "set", "root", "master", BRIDGE, "up"])?;

        for i in 0..n {
            let ns = format!("{prefix}h{i}");
            let ip = hosts.addr(i as u8 + 1);
            ip_ok(&["netns", "add", &ns])?;
            let host = Host { netns: Some(ns.clone()), ip: IpAddr::V4(ip), data_dirs: Arc::default() };
            hosts.hosts.push(host.clone());
            let port = format!("h{i}");
            switch.ip(&["link", "add", &port, "type", "veth", "peer", "name", HOST_LINK, "netns", &ns])?;
            switch.ip(&["link", "set", &port, "master", BRIDGE, "up"])?;
            host.ip(&["link", "set", "lo", "up"])?;
            host.ip(&["addr", "add", &format!("{ip}/24"), "dev", HOST_LINK])?;
            host.ip(&["link", "set", HOST_LINK, "up"])?;
            let out = host.run("sh", &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"], IP_TIMEOUT)?;
            if !out.status.success() {
                bail!("ip_forward in {ns}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        Ok(hosts)
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The switch's network namespace.
    pub fn switch_netns(&self) -> &str {
        &self.switch
    }

    /// The link subnet, `10.x.y.0/24`.
    pub fn subnet(&self) -> String {
        format!("{}/24", self.addr(0))
    }

    /// The root namespace's address on the link subnet.
    pub fn root_ip(&self) -> Ipv4Addr {
        self.addr(ROOT_OCTET)
    }

    fn addr(&self, last: u8) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, last)
    }

    /// The switch namespace, as a host, to run `ip` in.
    fn switch_host(&self) -> Host {
        Host { netns: Some(self.switch.clone()), ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED), data_dirs: Arc::default() }
    }

    /// Pulls host `i`'s cable: its port on the switch goes down. The host's
    /// own link loses its carrier; its addresses and routes stay as they
    /// are, as on a machine whose cable is pulled.
    pub fn cut(&self, i: usize) -> Result<()> {
        self.switch_host().ip(&["link", "set", &format!("h{i}"), "down"]).map(drop)
    }

    /// Plugs host `i`'s cable back in.
    pub fn reconnect(&self, i: usize) -> Result<()> {
        self.switch_host().ip(&["link", "set", &format!("h{i}"), "up"]).map(drop)
    }

    /// The pod namespaces of every host's agents that still exist.
    pub fn pod_netns(&self) -> Vec<String> {
        self.hosts.iter().flat_map(Host::pod_netns).collect()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let pods = self.pod_netns();
        let mut spaces: Vec<&str> = self.hosts.iter().filter_map(|h| h.netns.as_deref()).collect();
        spaces.extend(pods.iter().map(String::as_str));
        // Processes first: a namespace with processes in it outlives its
        // name, and an agent left running would make new pod namespaces.
        for ns in &spaces {
            kill_all_in(ns);
        }
        for ns in pods.iter().chain(self.hosts.iter().filter_map(|h| h.netns.as_ref())) {
            warn_on_error(ip_ok(&["netns", "del", ns]));
        }
        // Deleting the switch takes the bridge and every veth with it; the
        // root veth is deleted by name as well, in case the switch was not.
        warn_on_error(ip_ok(&["netns", "del", &self.switch]));
        if link_exists(&self.root_veth) {
            warn_on_error(ip_ok(&["link", "del", &self.root_veth]));
        }
    }
}

/// Kills the processes left in the pod namespaces recorded in an agent's
/// data dir and deletes those namespaces: for a harness that drops an
/// agent (and its data dir) before the [`Hosts`] it ran on. Bounded;
/// does nothing (and runs no `ip`) when no sandbox names a namespace.
pub fn clean_pod_netns(data_dir: &Path) {
    let recorded = recorded_pod_netns(data_dir);
    if recorded.is_empty() {
        return;
    }
    let existing = netns_list();
    for ns in recorded.iter().filter(|ns| existing.contains(ns)) {
        kill_all_in(ns);
        warn_on_error(ip_ok(&["netns", "del", ns]));
    }
}

/// The `"netns"` fields of `<data dir>/agent/sandboxes/*.json`.
fn recorded_pod_netns(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("agent/sandboxes")) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter_map(|v| v["netns"].as_str().map(String::from))
        .filter(|ns| !ns.is_empty() && !ns.contains('/'))
        .collect()
}

/// Runs `ip args`; fails unless it succeeds; returns its stdout.
fn ip_ok(args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    let out = run_with_timeout(cmd, IP_TIMEOUT)?;
    if !out.status.success() {
        bail!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn warn_on_error(r: Result<String>) {
    if let Err(e) = r {
        eprintln!("test hosts clean-up: {e:#}");
    }
}

/// The named network namespaces (`ip netns list` prints `name (id: N)`).
fn netns_list() -> Vec<String> {
    ip_ok(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// Pids of the processes in network namespace `ns`.
fn netns_pids(ns: &str) -> Vec<u32> {
    ip_ok(&["netns", "pids", ns]).unwrap_or_default().split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

/// SIGKILLs every process in `ns`, a few rounds for processes forked
/// meanwhile, for at most about a second.
fn kill_all_in(ns: &str) {
    for _ in 0..10 {
        let pids = netns_pids(ns);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            crate::signal(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("test hosts clean-up: processes still in {ns}: {:?}", netns_pids(ns));
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Removes the namespaces and root veths of earlier runs of this fixture
/// whose process is gone (a test killed before its drop ran). Names of
/// live processes are left alone: they are other tests running now.
fn remove_leftovers() {
    let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
    let mut stale: Vec<(String, bool)> = netns_list()
        .into_iter()
        .filter_map(|ns| {
            leftover_pid(&ns).filter(|(p, kind)| !alive(*p) && *kind != Kind::RootVeth).map(|(_, kind)| (ns, kind == Kind::Switch))
        })
        .collect();
    // Hosts before switches, so no veth dangles in between.
    stale.sort_by_key(|(_, is_switch)| *is_switch);
    for (ns, _) in stale {
        kill_all_in(&ns);
        warn_on_error(ip_ok(&["netns", "del", &ns]));
    }
    let Ok(links) = std::fs::read_dir("/sys/class/net") else { return };
    for link in links.flatten() {
        let name = link.file_name().to_string_lossy().into_owned();
        if let Some((pid, Kind::RootVeth)) = leftover_pid(&name) {
            if !alive(pid) {
                warn_on_error(ip_ok(&["link", "del", &name]));
            }
        }
    }
}

/// What a name this fixture makes names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Switch,
    Host,
    RootVeth,
}

/// The pid in a name this fixture makes, and what it names:
/// `tk<pid><letter>s` (a switch), `tk<pid><letter>h<i>` (a host),
/// `tk<pid><letter>r` (a root veth).
fn leftover_pid(name: &str) -> Option<(u32, Kind)> {
    let rest = name.strip_prefix("tk")?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let (pid, tail) = rest.split_at(digits);
    let mut chars = tail.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) {
        return None;
    }
    let kind = match chars.as_str() {
        "s" => Kind::Switch,
        "r" => Kind::RootVeth,
        h => {
            let i = h.strip_prefix('h')?;
            if i.is_empty() || !i.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            Kind::Host
        }
    };
    Some((pid.parse().ok()?, kind))
}

/// An exclusive lock (flock(2)) over picking a link subnet and claiming it
/// with an address, so that two test processes never pick the same one.
struct SubnetLock {
    _file: std::fs::File,
}

impl SubnetLock {
    fn take() -> Result<SubnetLock> {
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join("tinykube-test-hosts.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| path.display().to_string())?;
        // SAFETY: flock(2) on a descriptor this File owns; the lock goes
        // when the File is closed.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            bail!("locking {}: {}", path.display(), std::io::Error::last_os_error());
        }
        Ok(SubnetLock { _file: file })
    }
}

/// A `/24` of the subnet ranges that nothing in the root namespace
/// overlaps, starting from one the pid picks.
fn free_subnet(pid: u32) -> Result<[u8; 3]> {
    let mut taken = Vec::new();
    for args in [&["-4", "-o", "addr", "show"][..], &["-4", "route", "show", "table", "all"][..]] {
        taken.extend(prefixes_in(&ip_ok(args)?));
    }
    let start = (pid % 256) as u8;
    for second in SUBNET_RANGES {
        for k in 0..=255u8 {
            let third = start.wrapping_add(k);
            let candidate = (Ipv4Addr::new(10, second, third, 0), 24);
            if !taken.iter().any(|t| overlaps(*t, candidate)) {
                return Ok([10, second, third]);
            }
        }
    }
    bail!("no free /24 in 10.123.0.0/16 or 10.124.0.0/16 of the root namespace");
}

/// Every IPv4 address or prefix (`a.b.c.d` or `a.b.c.d/len`) in the output
/// of `ip addr` or `ip route`; `default` is no prefix of ours to avoid.
fn prefixes_in(text: &str) -> Vec<(Ipv4Addr, u8)> {
    text.split_whitespace()
        .filter_map(|word| {
            let (addr, len) = word.split_once('/').unwrap_or((word, "32"));
            Some((addr.parse().ok()?, len.parse().ok().filter(|l| *l <= 32)?))
        })
        .collect()
}

/// Whether two prefixes share an address.
fn overlaps((a, alen): (Ipv4Addr, u8), (b, blen): (Ipv4Addr, u8)) -> bool {
    let len = alen.min(blen);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from(a) & mask) == (u32::from(b) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_prefixes() {
        let p = |s: &str| prefixes_in(s)[0];
        assert!(overlaps(p("10.123.5.0/24"), p("10.123.5.7")));
        assert!(overlaps(p("10.0.0.0/8"), p("10.123.5.0/24")));
        assert!(!overlaps(p("10.123.6.0/24"), p("10.123.5.0/24")));
        assert!(overlaps(p("0.0.0.0/0"), p("10.123.5.0/24")));
    }

    #[test]
    fn addresses_and_routes_are_read_from_ip_output() {
        let route = "default via 192.0.2.1 dev eth0\n172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown\n\
                     local 10.123.9.254 dev tk1r table local proto kernel scope host src 10.123.9.254\n";
        let got = prefixes_in(route);
        assert!(got.contains(&("172.17.0.0".parse().unwrap(), 16)));
        assert!(got.contains(&("10.123.9.254".parse().unwrap(), 32)));
        assert!(!got.iter().any(|(a, l)| *l == 0 && a.is_unspecified()), "`default` is not 0.0.0.0/0 here: {got:?}");
        let addr = "2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever";
        assert!(prefixes_in(addr).contains(&("192.0.2.2".parse().unwrap(), 24)));
    }

    #[test]
    fn only_this_fixtures_names_are_leftovers() {
        assert_eq!(leftover_pid("tk1234as"), Some((1234, Kind::Switch)));
        assert_eq!(leftover_pid("tk1234bh0"), Some((1234, Kind::Host)));
        assert_eq!(leftover_pid("tk1234ah12"), Some((1234, Kind::Host)));
        assert_eq!(leftover_pid("tk1234ar"), Some((1234, Kind::RootVeth)));
        for other in ["tk-0123456789ab", "tk1234", "tk1234a", "tk1234ax", "tk1234ah", "tk1234s", "tkas", "docker0", "tk12r", "tk1Ar"] {
            assert_eq!(leftover_pid(other), None, "{other}");
        }
    }
}
