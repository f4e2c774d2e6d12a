//! # End-to-end tests of tinykube
//!
//! These tests drive the real `tinykube` binary the way a user does: start
//! `tinykube server` on a loopback port of its own choosing (port 0; the
//! harness reads the port it got from the kubeconfig the server writes once
//! it listens) with its own data directory,
//! talk to it with the `tinykube` CLI and the gRPC client, look at the real
//! processes on the host, kill the server with SIGKILL and start it again.
//!
//! [`Cluster`] is the harness: it builds the binary once, starts and stops
//! servers, and offers helpers to wait for a condition and to count the
//! processes a test's pods run (each test marks its containers' command
//! lines with a unique token, so tests running side by side never count
//! each other's processes).
//!
//! [`Hosts`] makes test hosts as network namespaces on one switch; a
//! [`Cluster`] started with [`Cluster::start_on`] runs its server in one
//! of them and [`Cluster::join_on`] its agents in others, each at its
//! host's address, while the test and `kubectl` stay in the root
//! namespace.
//!
//! [`Kubectl`] drives the real `kubectl` against a [`Cluster`] with a
//! discovery cache of its own, and [`Streaming`] reads a long-running
//! command's output (`get -w`, `logs -f`) line by line with a deadline.
//! A test that needs such an external client calls [`require_tool`]: it
//! is skipped with a reason when the tool is missing, and fails when
//! `TINYKUBE_E2E_REQUIRE=1` (as in CI).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub mod docker;
pub mod hosts;

pub use hosts::{Host, Hosts};

/// The `tinykube` binary, built once per test run.
pub fn tinykube_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "tinykube", "--bin", "tinykube"])
            .current_dir(&root)
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building tinykube failed");
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
        target.join("debug/tinykube")
    })
}

/// The `--listen` port that asks the kernel for a free one.
const ANY_PORT: u16 = 0;

/// How long a starting server may take to bind its port and write its
/// kubeconfig.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

/// The port in the `server:` URL of a kubeconfig `tinykube server` wrote.
fn kubeconfig_port(kubeconfig: &str) -> Option<u16> {
    let server = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("server: "))?;
    server.rsplit_once(':')?.1.trim_end_matches('/').parse().ok().filter(|p| *p != ANY_PORT)
}

/// A unique token for marking one test's processes.
pub fn token(test: &str) -> String {
    format!("tk{}x{}x{}", test.replace(['_', '-'], ""), std::process::id(), Instant::now().elapsed().as_nanos() % 100_000)
}

/// A TLS connection to the api-server ([`Cluster::connect`]).
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// Reads what is left of an answer on a [`TlsStream`] until the server
/// closes the connection. A close without TLS's `close_notify` ends the
/// answer too: the HTTP framing (HTTP/1.0, `Connection: close`) says
/// where it ends, not the TLS layer.
pub fn read_to_end(stream: &mut TlsStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    use std::io::Read;
    let before = buf.len();
    match stream.read_to_end(buf) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(buf.len() - before),
        other => other,
    }
}

/// Who a hand-written request is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The admin of the kubeconfig (`system:masters`).
    Admin,
    /// Nobody: no client certificate, no token.
    Anonymous,
}

/// The cluster CA and the admin's certificate and key (PEM).
#[derive(Debug, Clone)]
pub struct Admin {
    pub ca_pem: String,
    pub identity: api::pki::Identity,
}

impl Admin {
    /// Reads the `*-data` fields of a kubeconfig `tinykube server` wrote.
    pub fn from_kubeconfig(text: &str) -> Result<Self> {
        use base64::Engine;
        let field = |key: &str| -> Result<String> {
            let b64 = text
                .lines()
                .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
                .with_context(|| format!("no {key} in the kubeconfig"))?;
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim()).with_context(|| format!("{key} is not base64"))?;
            Ok(String::from_utf8(bytes)?)
        };
        Ok(Admin {
            ca_pem: field("certificate-authority-data")?,
            identity: api::pki::Identity { cert_pem: field("client-certificate-data")?, key_pem: field("client-key-data")? },
        })
    }
}

/// One `tinykube server` process and its data directory.
pub struct Cluster {
    pub data_dir: tempfile::TempDir,
    /// The api-server's port: chosen by the server when it first starts,
    /// and asked for again when it restarts, so clients keep their URL.
    pub port: u16,
    pub node_name: String,
    /// Where the server runs and listens.
    pub host: Host,
    server: Option<Child>,
    extra_args: Vec<String>,
}

impl Cluster {
    /// Starts a server and waits until its node is Ready.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Starts a server with extra `tinykube server` flags.
    pub fn start_with(extra_args: &[&str]) -> Result<Self> {
        Self::start_node("e2e-node", extra_args)
    }

    /// Starts a server whose local node is called `node_name`.
    pub fn start_node(node_name: &str, extra_args: &[&str]) -> Result<Self> {
        Self::start_on(&Host::local(), node_name, extra_args)
    }

    /// Starts a server on `host` (a test host's network namespace, or
    /// [`Host::local`]) whose local node is called `node_name`. On a test
    /// host it listens, and its node is reached, at the host's address,
    /// which its serving certificate names; the kubeconfig it writes
    /// points there, so `kubectl` in the root namespace uses it as is.
    pub fn start_on(host: &Host, node_name: &str, extra_args: &[&str]) -> Result<Self> {
        let data_dir = tempfile::Builder::new().prefix("tinykube-e2e").tempdir()?;
        host.register_data_dir(data_dir.path());
        let mut c = Cluster {
            data_dir,
            port: ANY_PORT,
            node_name: node_name.into(),
            host: host.clone(),
            server: None,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        c.spawn_server()?;
        Ok(c)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.path().join("kubeconfig.yaml")
    }

    pub fn url(&self) -> String {
        format!("https://{}", std::net::SocketAddr::new(self.host.ip, self.port))
    }

    /// The cluster CA and the admin's certificate, from the kubeconfig the
    /// server wrote.
    pub fn admin(&self) -> Result<Admin> {
        Admin::from_kubeconfig(&std::fs::read_to_string(self.kubeconfig())?)
    }

    /// A TLS connection to the api-server for hand-written HTTP/1.x
    /// requests: it checks the server against the cluster CA and, as
    /// `who` says, presents the admin's certificate or none.
    pub fn connect(&self, who: Who) -> Result<TlsStream> {
        let admin = self.admin()?;
        let identity = match who {
            Who::Admin => Some(&admin.identity),
            Who::Anonymous => None,
        };
        let mut config = (*api::tls::client_config(&api::tls::Trust::Ca(admin.ca_pem.clone()), identity)?).clone();
        // Hand-written requests speak HTTP/1.x: offer no h2.
        config.alpn_protocols.clear();
        let name = rustls::pki_types::ServerName::from(self.host.ip);
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)?;
        let tcp = std::net::TcpStream::connect((self.host.ip, self.port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(rustls::StreamOwned::new(conn, tcp))
    }

    fn spawn_server(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.data_dir.path().join("server.log"))?;
        let ip = self.host.ip.to_string();
        let on_test_host: &[&str] = if self.host.is_local() { &[] } else { &["--tls-san", &ip, "--node-ip", &ip] };
        let child = self
            .host
            .command(tinykube_bin())
            .args(["server", "--listen", &std::net::SocketAddr::new(self.host.ip, self.port).to_string(), "--node-name", &self.node_name])
            .args(["--backoff-base-ms", "500"])
            .args(on_test_host)
            .args(&self.extra_args)
            // The tests count and signal their containers' processes on this
            // host, so they run the process runtime unless they ask for
            // another (the docker tests do).
            .args(if self.extra_args.iter().any(|a| a == "--runtime") { &[][..] } else { &["--runtime", "process"][..] })
            .args(host_network_defaults(&self.extra_args))
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting tinykube server")?;
        self.server = Some(child);
        if self.port == ANY_PORT {
            self.port = self.wait_for_listening_port()?;
        }
        if self.extra_args.iter().any(|a| a == "--no-agent") {
            // No node will come: wait for the api-server alone.
            return self.wait_for("the api-server", Duration::from_secs(20), || {
                self.cli(&["get", "namespaces", "-o", "name"]).ok().filter(|o| o.status.success()).map(|_| ())
            });
        }
        self.wait_for("node Ready", Duration::from_secs(20), || {
            let out = self.cli(&["get", "nodes", "-o", "json"]).ok()?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let ready = v["items"].as_array()?.iter().any(|n| {
                n["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            });
            ready.then_some(())
        })
    }

    /// The port a server started with port 0 got, from the kubeconfig it
    /// writes once it listens (the file is renamed into place, so it is
    /// never read half-written). Fails early if the server exits instead.
    fn wait_for_listening_port(&mut self) -> Result<u16> {
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        loop {
            let written = std::fs::read_to_string(self.kubeconfig()).unwrap_or_default();
            if let Some(port) = kubeconfig_port(&written) {
                return Ok(port);
            }
            if let Some(status) = self.server.as_mut().map(Child::try_wait).transpose()?.flatten() {
                bail!("tinykube server exited ({status}) before listening\n--- server log tail ---\n{}", self.log_tail());
            }
            if Instant::now() > deadline {
                bail!("tinykube server wrote no kubeconfig within {LISTEN_TIMEOUT:?}\n--- server log tail ---\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a `tinykube` CLI command against this cluster.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        Ok(Command::new(tinykube_bin()).arg("--kubeconfig").arg(self.kubeconfig()).args(args).stdin(Stdio::null()).output()?)
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cli(args)?;
        if !out.status.success() {
            bail!("tinykube {} failed: {}{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Applies a manifest given as text.
    pub fn apply(&self, manifest: &str) -> Result<String> {
        static MANIFESTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MANIFESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.data_dir.path().join(format!("manifest-{n}.yaml"));
        std::fs::write(&path, manifest)?;
        self.ok(&["apply", "-f", path.to_str().expect("utf-8 path")])
    }

    /// `get -o json` of a kind, parsed.
    pub fn get_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        Ok(serde_json::from_str(&self.ok(&all)?)?)
    }

    /// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout`.
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check() {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}\n--- server log tail ---\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data_dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The server's pid.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    /// SIGKILLs the server: no cleanup of any kind happens.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.server.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the server again on the same data directory and port (the
    /// one it got when it first started).
    pub fn restart(&mut self) -> Result<()> {
        self.spawn_server()
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let Some(mut child) = self.server.take() else { bail!("not running") };
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                child.kill()?;
                bail!("server did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// How long a joining agent may take from its start to its Node Ready.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

impl Cluster {
    /// The join token the server wrote (`<data-dir>/token`).
    pub fn join_token(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.data_dir.path().join("token"))?.trim().to_string())
    }

    /// Starts `tinykube agent` on this host as node `name`, joining with the
    /// server's token, and waits until its Node is Ready.
    pub fn join(&self, name: &str, extra_args: &[&str]) -> Result<Agent> {
        let mut agent = self.spawn_agent(name, &self.join_token()?, extra_args)?;
        self.wait_for_node_ready(&mut agent)?;
        Ok(agent)
    }

    /// Starts `tinykube agent` on `host` as node `name`, joining with the
    /// server's token, and waits until its Node is Ready. It serves, and
    /// its Node's `InternalIP` is, the host's address.
    pub fn join_on(&self, host: &Host, name: &str, extra_args: &[&str]) -> Result<Agent> {
        let mut agent = self.spawn_agent_on(host, name, &self.join_token()?, extra_args)?;
        self.wait_for_node_ready(&mut agent)?;
        Ok(agent)
    }

    /// Starts `tinykube agent` as node `name` with `token`, without waiting.
    pub fn spawn_agent(&self, name: &str, token: &str, extra_args: &[&str]) -> Result<Agent> {
        self.spawn_agent_on(&Host::local(), name, token, extra_args)
    }

    /// Starts `tinykube agent` on `host` as node `name` with `token`,
    /// without waiting.
    pub fn spawn_agent_on(&self, host: &Host, name: &str, token: &str, extra_args: &[&str]) -> Result<Agent> {
        let data_dir = tempfile::Builder::new().prefix("tinykube-e2e-agent").tempdir()?;
        host.register_data_dir(data_dir.path());
        let ip = host.ip.to_string();
        let listen = std::net::SocketAddr::new(host.ip, 0).to_string();
        let mut args: Vec<String> =
            ["agent", "--server", &self.url(), "--token", token, "--node-name", name, "--listen", &listen].map(String::from).into();
        args.extend(["--node-ip", &ip, "--backoff-base-ms", "500"].map(String::from));
        if !extra_args.contains(&"--runtime") {
            args.extend(["--runtime", "process"].map(String::from));
        }
        args.extend(host_network_defaults(extra_args));
        args.extend(extra_args.iter().map(|a| a.to_string()));
        args.push("--data-dir".into());
        args.push(data_dir.path().display().to_string());
        let mut agent = Agent { name: name.into(), data_dir, host: host.clone(), args, child: None };
        agent.spawn()?;
        Ok(agent)
    }

    /// Waits until `agent`'s Node is Ready, failing early if it exits.
    pub fn wait_for_node_ready(&self, agent: &mut Agent) -> Result<()> {
        let deadline = Instant::now() + JOIN_TIMEOUT;
        loop {
            if self.node_ready(&agent.name) {
                return Ok(());
            }
            if let Some(status) = agent.child.as_mut().map(Child::try_wait).transpose()?.flatten() {
                bail!(
                    "tinykube agent {} exited ({status}) before its node was Ready\n--- agent log tail ---\n{}",
                    agent.name,
                    agent.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!("node {} not Ready within {JOIN_TIMEOUT:?}\n--- agent log tail ---\n{}", agent.name, agent.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether node `name` has `Ready=True`.
    pub fn node_ready(&self, name: &str) -> bool {
        let Ok(node) = self.get_json(&["node", name]) else { return false };
        node["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
    }
}

/// One `tinykube agent` process on this host and its data directory: a
/// node that joined a [`Cluster`]. Killed when dropped.
pub struct Agent {
    pub name: String,
    pub data_dir: tempfile::TempDir,
    /// Where the agent runs.
    pub host: Host,
    args: Vec<String>,
    child: Option<Child>,
}

impl Agent {
    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.data_dir.path().join("agent.log"))?;
        let child = self
            .host
            .command(tinykube_bin())
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting tinykube agent")?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits up to `timeout` for the agent to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let child = self.child.as_mut().context("not running")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("tinykube agent {} still running after {timeout:?}\n--- agent log tail ---\n{}", self.name, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the agent: as if its host died. Its pods' processes live on
    /// (they are their own process groups), as containers outlive a kubelet.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the agent again on the same data directory: it reuses the
    /// certificate it got when it joined.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9()?;
        self.spawn()
    }

    /// A kubeconfig that speaks as this node (`system:node:<name>`), with
    /// the certificate the agent got through its CSR.
    pub fn kubeconfig(&self, cluster: &Cluster) -> Result<PathBuf> {
        use base64::Engine;
        let pki = self.data_dir.path().join("agent/pki");
        let b64 = |file: &str| -> Result<String> {
            let pem = std::fs::read(pki.join(file)).with_context(|| format!("{} has no {file}", pki.display()))?;
            Ok(base64::engine::general_purpose::STANDARD.encode(pem))
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: node\ncurrent-context: c\nusers:\n- name: node\n  user:\n\
             \x20   client-certificate-data: {}\n    client-key-data: {}\n",
            cluster.url(),
            b64("ca.crt")?,
            b64("node.crt")?,
            b64("node.key")?,
        );
        let path = self.data_dir.path().join("node-kubeconfig.yaml");
        std::fs::write(&path, text)?;
        Ok(path)
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data_dir.path().join("agent.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Agent {
    /// Stops the agent with SIGTERM (SIGKILL after 10 s), then removes the
    /// pod network namespaces it left, before its data dir (which names
    /// them) goes.
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            signal(child.id(), libc::SIGTERM);
        }
        if self.wait_exit(Duration::from_secs(10)).is_err() {
            let _ = self.kill9();
        }
        hosts::clean_pod_netns(self.data_dir.path());
    }
}

impl Drop for Cluster {
    /// Stops the server, then fails the test if the server's log holds a
    /// panic: a handler's panic is caught and answered with a 500, so only
    /// the log tells, and no request of any test may reach one.
    fn drop(&mut self) {
        if self.server.is_some() {
            let _ = self.stop();
        }
        hosts::clean_pod_netns(self.data_dir.path());
        let log = std::fs::read_to_string(self.data_dir.path().join("server.log")).unwrap_or_default();
        if let Some(at) = log.find(" panicked at ") {
            let start = log[..at].rfind('\n').map_or(0, |i| i + 1);
            let excerpt: String = log[start..].lines().take(12).collect::<Vec<_>>().join("\n");
            if std::thread::panicking() {
                eprintln!("the server log holds a panic:\n{excerpt}");
            } else {
                panic!("the server log holds a panic:\n{excerpt}");
            }
        }
    }
}

/// The pod network flags a test's server or agent gets unless it names
/// them: pods on the host's network and no routes. Tests share the
/// machine's own network namespace, where every cluster's bridge, pod
/// namespaces and routes would meet; the tests of the pod network run
/// their hosts in namespaces of their own (the `hosts` module) with the defaults.
fn host_network_defaults<S: AsRef<str>>(extra_args: &[S]) -> Vec<String> {
    let named = |flag: &str| extra_args.iter().any(|a| a.as_ref() == flag || a.as_ref().starts_with(&format!("{flag}=")));
    let mut args = Vec::new();
    if !named("--pod-network") {
        args.extend(["--pod-network", "host"].map(String::from));
    }
    if !named("--flannel-backend") {
        args.extend(["--flannel-backend", "none"].map(String::from));
    }
    args
}

/// Polls `check` every 200 ms until it returns `Some`, for at most
/// `timeout`. An error from `check` counts as "not yet" (a server being
/// restarted, a command that fails for a moment); the last one is in the
/// timeout's message.
pub fn wait<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = Some(e),
        }
        if Instant::now() > deadline {
            let why = last.map(|e| format!(" (last error: {e:#})")).unwrap_or_default();
            bail!("timed out after {timeout:?} waiting for {what}{why}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends a signal to a process.
#[allow(unsafe_code)]
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; a stale pid only
    // makes it fail with ESRCH.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Pids of live processes whose command line contains `marker`
/// (zombies excluded: they have exited and only await reaping). A child
/// with its parent's very command line is the parent forked and not yet
/// exec'd (a shell about to run `sleep`), not another container: it is
/// left out too, so a count never flickers above the number of containers.
pub fn pids_with(marker: &str) -> Vec<u32> {
    let mut marked = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(marker) {
            continue;
        }
        // `pid (comm) state ppid ...`: the fields after the command name.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let mut fields = stat.rsplit_once(") ").map(|(_, rest)| rest.split(' ')).into_iter().flatten();
        let state = fields.next().and_then(|s| s.chars().next());
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        if state.is_some_and(|s| s != 'Z') {
            marked.push((pid, ppid, cmdline));
        }
    }
    let forked = |ppid: Option<u32>, cmdline: &[u8]| marked.iter().any(|(p, _, c)| Some(*p) == ppid && c == cmdline);
    marked.iter().filter(|(_, ppid, cmdline)| !forked(*ppid, cmdline)).map(|(pid, _, _)| *pid).collect()
}

/// A Deployment manifest whose container prints a line every second; its
/// shell command line carries `marker` so its processes can be counted.
pub fn ticker_deployment(name: &str, replicas: u32, marker: &str, greeting: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: ticker
        image: busybox
        command: ["sh", "-c", "while true; do echo \"$GREETING from $HOSTNAME\"; sleep 1; done # {marker}"]
        env:
        - name: GREETING
          value: "{greeting}"
"#
    )
}

/// Whether a test whose external tool is missing must fail rather than
/// skip: CI sets `TINYKUBE_E2E_REQUIRE=1` so a missing tool never passes
/// silently there.
pub fn e2e_required() -> bool {
    std::env::var("TINYKUBE_E2E_REQUIRE").is_ok_and(|v| v == "1")
}

/// Decides whether a test that needs `tool` runs: `true` when the tool is
/// present; otherwise panics under `TINYKUBE_E2E_REQUIRE=1`, or prints why
/// the test is skipped and returns `false`.
pub fn require_tool(tool: &str, present: bool, install_hint: &str) -> bool {
    if present {
        return true;
    }
    assert!(!e2e_required(), "{tool} is required (TINYKUBE_E2E_REQUIRE=1) but missing: {install_hint}");
    eprintln!("skipped: {tool} is not available ({install_hint}); set TINYKUBE_E2E_REQUIRE=1 to make this a failure");
    false
}

/// Runs `cmd` to completion with piped output, killing it after `timeout`
/// so that a hung client fails the test instead of hanging it.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Output> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    // Drain both pipes on their own threads so a chatty child never blocks
    // on a full pipe while this thread waits for it to exit.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(Output { status, stdout, stderr })
}

/// The real `kubectl` pointed at a [`Cluster`], with a discovery cache of
/// its own: kubectl caches discovery and OpenAPI for hours, so a shared
/// cache would let one server's answers leak into another test.
pub struct Kubectl {
    kubeconfig: PathBuf,
    cache_dir: tempfile::TempDir,
    /// How long one non-streaming command may take.
    pub timeout: Duration,
}

impl Kubectl {
    /// Whether a `kubectl` binary is on the PATH.
    pub fn available() -> bool {
        Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success())
    }

    pub fn new(cluster: &Cluster) -> Result<Self> {
        Self::with_kubeconfig(cluster.kubeconfig())
    }

    /// kubectl with `kubeconfig`: for a cluster this harness did not start
    /// (the containers of docker-compose.yml).
    pub fn with_kubeconfig(kubeconfig: PathBuf) -> Result<Self> {
        let cache_dir = tempfile::Builder::new().prefix("tinykube-kubecache").tempdir()?;
        Ok(Kubectl { kubeconfig, cache_dir, timeout: Duration::from_secs(45) })
    }

    /// A `kubectl` command with this cluster's kubeconfig and cache; no
    /// other flag is added, so kubectl behaves as it does for a user.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.args(args).env("KUBECONFIG", &self.kubeconfig).env("KUBECACHEDIR", self.cache_dir.path());
        cmd
    }

    /// Runs a command to completion (bounded by `self.timeout`).
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        run_with_timeout(self.command(args), self.timeout)
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a command that must fail; returns its exit code, stdout and stderr.
    pub fn fails(&self, args: &[&str]) -> Result<(i32, String, String)> {
        let out = self.run(args)?;
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        if out.status.success() {
            bail!("kubectl {} succeeded but should have failed:\n{stdout}{stderr}", args.join(" "));
        }
        Ok((out.status.code().unwrap_or(-1), stdout, stderr))
    }

    /// `get ... -o json`, parsed.
    pub fn get_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        Ok(serde_json::from_str(&self.ok(&all)?)?)
    }

    /// Starts a long-running command (`get -w`, `logs -f`) whose stdout
    /// lines the test reads as they arrive.
    pub fn spawn(&self, args: &[&str]) -> Result<Streaming> {
        Streaming::spawn(self.command(args))
    }
}

/// A running child process whose stdout is read line by line on a thread,
/// so a test can wait, with a deadline, for a line to appear. The child is
/// killed when this is dropped.
pub struct Streaming {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Streaming {
    pub fn spawn(mut cmd: Command) -> Result<Self> {
        use std::io::BufRead;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting a streaming command")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Streaming { child, lines, seen: Vec::new() })
    }

    /// Reads lines until one satisfies `pred` and returns it; fails after
    /// `timeout`, or when the stream ends first, showing what was seen.
    pub fn wait_line(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Ok(line);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    bail!("timed out after {timeout:?} waiting for {what}; lines so far:\n{}", self.seen.join("\n"))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("the stream ended ({:?}) before {what}; lines:\n{}", self.child.try_wait(), self.seen.join("\n"))
                }
            }
        }
    }

    /// Every line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Whether the child is still running (a follow stream must not end by itself).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a pod (as JSON) is Running with every container ready, and not
/// being deleted: what `kubectl get pods` shows as `n/n Running`.
pub fn is_running_and_ready(pod: &serde_json::Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["phase"] == "Running"
        && pod["status"]["containerStatuses"].as_array().is_some_and(|cs| cs.iter().all(|c| c["ready"] == true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_comes_from_the_kubeconfigs_server_url() {
        let written = "apiVersion: v1\nclusters:\n- name: tinykube\n  cluster:\n    server: https://127.0.0.1:40123\n";
        assert_eq!(kubeconfig_port(written), Some(40123));
        assert_eq!(kubeconfig_port("    server: https://127.0.0.1:0\n"), None, "port 0 is a request, not an answer");
        assert_eq!(kubeconfig_port(""), None);
    }
}
