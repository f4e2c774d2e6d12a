//! The kubeconfig file: how `tinykube` and `kubectl` find the server.
//!
//! `tinykube server` writes `<data-dir>/kubeconfig.yaml` in the standard
//! format, so `KUBECONFIG=<data-dir>/kubeconfig.yaml kubectl get pods`
//! works. The CLI looks for a kubeconfig in `--kubeconfig`, then
//! `$KUBECONFIG`, then the default data directory — and reads only what it
//! needs: the current context's server URL, namespace, CA and user.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use api::pki::Identity;
use serde_json::Value;

/// The default data directory: `$TINYKUBE_DATA_DIR`, else
/// `$XDG_DATA_HOME/tinykube`, else `~/.local/share/tinykube`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TINYKUBE_DATA_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("tinykube");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/tinykube")
}

/// The mode of a kubeconfig the server writes: readable only by its owner,
/// since it holds the admin's private key.
pub const PRIVATE: u32 = 0o600;

/// Writes a kubeconfig for `server` to `path`, atomically and with file
/// mode `mode` (whatever the umask; [`PRIVATE`] unless the user asked for
/// another): the CA to trust and the admin's client certificate, embedded
/// as kubeadm's `admin.conf` embeds them.
pub fn write(path: &Path, mode: u32, server: &str, ca_pem: &str, admin: &Identity) -> Result<()> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: tinykube
  cluster:
    server: {server}
    certificate-authority-data: {ca}
contexts:
- name: tinykube
  context:
    cluster: tinykube
    user: admin
    namespace: default
current-context: tinykube
preferences: {{}}
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
",
        ca = b64(ca_pem),
        cert = b64(&admin.cert_pem),
        key = b64(&admin.key_pem),
    );
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = path.with_extension("yaml.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    // Private while it is written; the umask cannot narrow a mode set after.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", tmp.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Where the server is, how to trust it and who to be, and the namespace
/// commands default to.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: String,
    pub namespace: String,
    pub credentials: client::Credentials,
}

/// Finds and reads the kubeconfig the way the CLI contract says.
pub fn load(explicit: Option<&Path>) -> Result<Target> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
            // KUBECONFIG may list several files; the first one that exists wins.
            Some(list) => std::env::split_paths(&list)
                .find(|p| p.exists())
                .ok_or_else(|| anyhow!("no file in KUBECONFIG={} exists", list.to_string_lossy()))?,
            None => default_data_dir().join("kubeconfig.yaml"),
        },
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read kubeconfig {} (is `tinykube server` running?)", path.display()))?;
    parse(&text, path.parent()).with_context(|| format!("in kubeconfig {}", path.display()))
}

/// Reads the current context: its server, namespace, CA and user. The CA
/// and certificates may be embedded (`*-data`, base64) or files (paths
/// relative to the kubeconfig's folder); a bearer `token` is read too.
fn parse(text: &str, dir: Option<&Path>) -> Result<Target> {
    use base64::Engine;
    let cfg: Value = serde_yaml::from_str(text).context("not valid YAML")?;
    let current = cfg["current-context"].as_str().unwrap_or_default();
    let find = |list: &str, name: &str| -> Option<Value> { cfg[list].as_array()?.iter().find(|e| e["name"] == name).cloned() };
    let context = find("contexts", current).ok_or_else(|| anyhow!("current context {current:?} is not defined"))?;
    let cluster_name = context["context"]["cluster"].as_str().unwrap_or_default();
    let cluster = find("clusters", cluster_name).ok_or_else(|| anyhow!("cluster {cluster_name:?} is not defined"))?;
    let server = cluster["cluster"]["server"].as_str().ok_or_else(|| anyhow!("cluster {cluster_name:?} has no server"))?;
    let namespace = context["context"]["namespace"].as_str().unwrap_or("default");
    let user_name = context["context"]["user"].as_str().unwrap_or_default();
    let user = find("users", user_name).map(|u| u["user"].clone()).unwrap_or(Value::Null);
    // `<field>-data` (base64) or `<field>` (a file).
    let pem = |section: &Value, field: &str| -> Result<Option<String>> {
        if let Some(data) = section[format!("{field}-data")].as_str() {
            let bytes =
                base64::engine::general_purpose::STANDARD.decode(data.trim()).with_context(|| format!("{field}-data is not base64"))?;
            return Ok(Some(String::from_utf8(bytes).with_context(|| format!("{field}-data is not PEM text"))?));
        }
        match section[field].as_str() {
            Some(file) => {
                let path = dir.map(|d| d.join(file)).unwrap_or_else(|| file.into());
                Ok(Some(std::fs::read_to_string(&path).with_context(|| format!("reading {field} {}", path.display()))?))
            }
            None => Ok(None),
        }
    };
    let trust = match pem(&cluster["cluster"], "certificate-authority")? {
        Some(ca) => api::tls::Trust::Ca(ca),
        None if cluster["cluster"]["insecure-skip-tls-verify"].as_bool() == Some(true) => api::tls::Trust::AnyServer,
        None => bail!("cluster {cluster_name:?} names no certificate-authority to trust"),
    };
    let identity = match (pem(&user, "client-certificate")?, pem(&user, "client-key")?) {
        (Some(cert_pem), Some(key_pem)) => Some(Identity { cert_pem, key_pem }),
        _ => None,
    };
    let bearer = user["token"].as_str().map(str::to_string);
    Ok(Target {
        server: server.to_string(),
        namespace: namespace.to_string(),
        credentials: client::Credentials { trust, identity, bearer },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_kubeconfig_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig.yaml");
        let ca = api::pki::Ca::generate("kubernetes").unwrap();
        let admin = ca.issue(&api::pki::CertSpec::client("kubernetes-admin", &["system:masters"])).unwrap();
        write(&path, PRIVATE, "https://127.0.0.1:7443", ca.cert_pem(), &admin).unwrap();
        let t = load(Some(&path)).unwrap();
        assert_eq!(t.server, "https://127.0.0.1:7443");
        assert_eq!(t.namespace, "default");
        assert!(matches!(&t.credentials.trust, api::tls::Trust::Ca(pem) if pem == ca.cert_pem()));
        assert_eq!(t.credentials.identity.unwrap().cert_pem, admin.cert_pem);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "the admin key is private");
    }

    #[test]
    fn a_kubeconfig_for_another_user_gets_the_mode_asked_for() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.yaml");
        let ca = api::pki::Ca::generate("kubernetes").unwrap();
        let admin = ca.issue(&api::pki::CertSpec::client("kubernetes-admin", &["system:masters"])).unwrap();
        // Written twice: the second replaces the first, mode and all.
        write(&path, PRIVATE, "https://127.0.0.1:1", ca.cert_pem(), &admin).unwrap();
        write(&path, 0o644, "https://127.0.0.1:6443", ca.cert_pem(), &admin).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(load(Some(&path)).unwrap().server, "https://127.0.0.1:6443");
        assert!(!dir.path().join("out.yaml.tmp").exists());
    }
}
