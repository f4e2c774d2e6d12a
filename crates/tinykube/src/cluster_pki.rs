//! What the server makes on its first start so that everything can speak
//! TLS: the cluster CA, the api-server's serving certificate, the
//! certificates of the components it runs, and the join token.
//!
//! Files, in `<data-dir>/tls/` (as kubeadm's `/etc/kubernetes/pki/`):
//! - `ca.crt`, `ca.key`: the cluster CA, made once and kept.
//! - `server.crt`, `server.key`: the api-server's serving certificate,
//!   made anew at every start so its names follow the addresses.
//! - `admin.crt`, `admin.key`: `kubernetes-admin` in `system:masters`, the
//!   user of the kubeconfig.
//!
//! And `<data-dir>/token`: the join token for agents, kept across starts
//! (its bootstrap token is stored as upstream stores them, as the Secret
//! `kube-system/bootstrap-token-<id>`).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use api::pki::{Ca, CertSpec, Identity, JoinToken};
use base64::Engine;
use serde_json::json;

/// The Common Name of the cluster CA.
pub const CA_NAME: &str = "tinykube-ca";
/// The Organization that names the default node token's extra group.
const TOKEN_GROUP: &str = "system:bootstrappers:tinykube:default-node-token";

/// The cluster's certificates, as this start of the server has them.
#[derive(Debug)]
pub struct ClusterPki {
    pub ca: Ca,
    pub serving: Identity,
    pub admin: Identity,
    pub token: JoinToken,
    pub dir: PathBuf,
}

impl ClusterPki {
    /// Loads or makes everything in `data_dir`. `listen` and `extra_sans`
    /// (`--tls-san`) name the addresses the serving certificate covers,
    /// besides `localhost`, the loopback addresses, the host's name and
    /// the in-cluster `kubernetes.default.svc` names.
    pub fn prepare(data_dir: &Path, listen: SocketAddr, extra_sans: &[String]) -> Result<ClusterPki> {
        let dir = data_dir.join("tls");
        let ca = Ca::load_or_create(&dir, CA_NAME).context("the cluster CA")?;

        let (dns, ips) = serving_names(listen, extra_sans);
        let serving = ca.issue(&CertSpec::server("kube-apiserver", dns, ips)).context("the serving certificate")?;
        serving.write(&dir, "server").context("writing the serving certificate")?;
        let admin = ca.issue(&CertSpec::client("kubernetes-admin", &["system:masters"])).context("the admin certificate")?;
        admin.write(&dir, "admin").context("writing the admin certificate")?;

        let token = load_or_make_token(&data_dir.join("token"), &ca)?;
        Ok(ClusterPki { ca, serving, admin, token, dir })
    }

    /// A client certificate for a component the server runs itself.
    pub fn component(&self, user: &str, groups: &[&str]) -> Result<Identity> {
        self.ca.issue(&CertSpec::client(user, groups)).with_context(|| format!("a certificate for {user}"))
    }

    /// Stores what joining nodes need: the bootstrap token's Secret, and
    /// the public `kube-public/cluster-info` ConfigMap with the CA and the
    /// server's URL (kubeadm's discovery object).
    pub async fn publish(&self, registry: &apiserver::Registry, server_url: &str) -> Result<()> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let secrets = api::resources::by_resource("", "secrets").expect("secrets are in the table");
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("bootstrap-token-{}", self.token.id), "namespace": "kube-system"},
            "type": apiserver::authn::BOOTSTRAP_TOKEN_TYPE,
            "data": {
                "description": b64("The join token of tinykube agents, written to <data-dir>/token."),
                "token-id": b64(&self.token.id),
                "token-secret": b64(&self.token.secret),
                "usage-bootstrap-authentication": b64("true"),
                "usage-bootstrap-signing": b64("true"),
                "auth-extra-groups": b64(TOKEN_GROUP),
            },
        });
        registry.ensure(secrets, "kube-system", secret).await.context("storing the bootstrap token")?;
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    certificate-authority-data: {}\n    server: {server_url}\ncontexts: []\ncurrent-context: \"\"\npreferences: {{}}\nusers: []\n",
            b64(self.ca.cert_pem())
        );
        let configmaps = api::resources::by_resource("", "configmaps").expect("configmaps are in the table");
        let info = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": apiserver::authz::CLUSTER_INFO.1, "namespace": apiserver::authz::CLUSTER_INFO.0},
            "data": {"kubeconfig": kubeconfig},
        });
        registry.ensure(configmaps, apiserver::authz::CLUSTER_INFO.0, info).await.context("storing cluster-info")?;
        Ok(())
    }
}

/// The token in `path`, or a new one written there. A token for another
/// CA (the CA files were replaced) is replaced too.
fn load_or_make_token(path: &Path, ca: &Ca) -> Result<JoinToken> {
    if let Ok(text) = std::fs::read_to_string(path) {
        match JoinToken::parse(&text) {
            Ok(t) if t.ca_hash.as_deref() == Some(ca.hash().as_str()) => return Ok(t),
            Ok(_) => tracing::warn!(path = %path.display(), "the join token names another CA; writing a new one"),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "the join token does not parse; writing a new one"),
        }
    }
    let token = JoinToken::generate(&ca.hash());
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{token}").with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// The names and addresses of the serving certificate.
fn serving_names(listen: SocketAddr, extra: &[String]) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns: BTreeSet<String> =
        ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
            .into_iter()
            .map(String::from)
            .collect();
    dns.insert(crate::server::hostname());
    let mut ips: BTreeSet<IpAddr> = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)].into();
    if listen.ip().is_unspecified() {
        ips.extend(local_ipv4_addresses());
    } else {
        ips.insert(listen.ip());
    }
    for san in extra.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        match san.parse::<IpAddr>() {
            Ok(ip) => ips.insert(ip),
            Err(_) => dns.insert(san.to_string()),
        };
    }
    (dns.into_iter().collect(), ips.into_iter().collect())
}

/// This host's IPv4 addresses, from the kernel's routing trie: every
/// `/32 host LOCAL` leaf is an address of an interface.
fn local_ipv4_addresses() -> Vec<IpAddr> {
    let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") else { return Vec::new() };
    let mut found = BTreeSet::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in trie.lines() {
        let line = line.trim_start_matches([' ', '|', '+', '-']);
        if let Some(ip) = line.split_whitespace().next().and_then(|w| w.parse::<Ipv4Addr>().ok()) {
            last = Some(ip);
        } else if line.contains("/32 host LOCAL") {
            if let Some(ip) = last {
                found.insert(IpAddr::V4(ip));
            }
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_names_cover_what_clients_dial() {
        let (dns, ips) = serving_names("10.1.2.3:6443".parse().unwrap(), &["api.example,192.0.2.7".into()]);
        assert!(dns.contains(&"localhost".into()) && dns.contains(&"api.example".into()));
        assert!(dns.contains(&"kubernetes.default.svc".into()));
        for ip in ["127.0.0.1", "10.1.2.3", "192.0.2.7", "::1"] {
            assert!(ips.contains(&ip.parse().unwrap()), "{ip}");
        }
        let (_, all) = serving_names("0.0.0.0:6443".parse().unwrap(), &[]);
        assert!(all.contains(&"127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn the_token_is_kept_across_starts_and_follows_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = ClusterPki::prepare(dir.path(), "127.0.0.1:0".parse().unwrap(), &[]).unwrap();
        let again = ClusterPki::prepare(dir.path(), "127.0.0.1:0".parse().unwrap(), &[]).unwrap();
        assert_eq!(first.token, again.token);
        assert_eq!(first.token.ca_hash.as_deref(), Some(first.ca.hash().as_str()));
        std::fs::remove_file(dir.path().join("tls/ca.crt")).unwrap();
        std::fs::remove_file(dir.path().join("tls/ca.key")).unwrap();
        let new_ca = ClusterPki::prepare(dir.path(), "127.0.0.1:0".parse().unwrap(), &[]).unwrap();
        assert_ne!(new_ca.token, first.token);
    }
}
