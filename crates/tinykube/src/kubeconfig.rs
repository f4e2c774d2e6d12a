//! The kubeconfig file: how `tinykube` and `kubectl` find the server.
//!
//! `tinykube server` writes `<data-dir>/kubeconfig.yaml` in the standard
//! format, so `KUBECONFIG=<data-dir>/kubeconfig.yaml kubectl get pods`
//! works. The CLI looks for a kubeconfig in `--kubeconfig`, then
//! `$KUBECONFIG`, then the default data directory — and reads only what it
//! needs: the current context's server URL and namespace.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
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

/// Writes a kubeconfig for `server` to `path`, atomically.
pub fn write(path: &Path, server: &str) -> Result<()> {
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: tinykube
  cluster:
    server: {server}
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
  user: {{}}
"
    );
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Where the server is, and the namespace commands default to.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: String,
    pub namespace: String,
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
    parse(&text).with_context(|| format!("in kubeconfig {}", path.display()))
}

fn parse(text: &str) -> Result<Target> {
    let cfg: Value = serde_yaml::from_str(text).context("not valid YAML")?;
    let current = cfg["current-context"].as_str().unwrap_or_default();
    let find = |list: &str, name: &str| -> Option<Value> { cfg[list].as_array()?.iter().find(|e| e["name"] == name).cloned() };
    let context = find("contexts", current).ok_or_else(|| anyhow!("current context {current:?} is not defined"))?;
    let cluster_name = context["context"]["cluster"].as_str().unwrap_or_default();
    let cluster = find("clusters", cluster_name).ok_or_else(|| anyhow!("cluster {cluster_name:?} is not defined"))?;
    let server = cluster["cluster"]["server"].as_str().ok_or_else(|| anyhow!("cluster {cluster_name:?} has no server"))?;
    let namespace = context["context"]["namespace"].as_str().unwrap_or("default");
    Ok(Target { server: server.to_string(), namespace: namespace.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_kubeconfig_reads_back() {
        let dir = std::env::temp_dir().join(format!("tk-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kubeconfig.yaml");
        write(&path, "http://127.0.0.1:7443").unwrap();
        let t = load(Some(&path)).unwrap();
        assert_eq!(t.server, "http://127.0.0.1:7443");
        assert_eq!(t.namespace, "default");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
