//! A container's environment, resolved as the kubelet does before it asks
//! the runtime to create the container.
//!
//! Sources, in upstream's order (later wins): `envFrom` (every key of a
//! ConfigMap or Secret, with an optional prefix), then `env` entries, each a
//! plain `value` or a `valueFrom`: a `fieldRef` into the pod
//! (`metadata.name`, `status.podIP`, ...), or one key of a ConfigMap or
//! Secret read through the api-server. `$(VAR)` in a value, a command or an
//! argument is replaced by a variable defined before it, with upstream's
//! rules: `$$` is a literal `$`, and an undefined reference stays as written.
//!
//! A missing ConfigMap, Secret or key that is not `optional` makes the
//! container wait with reason `CreateContainerConfigError` and upstream's
//! message; the worker retries on its next sync.

use std::collections::BTreeMap;

use client::{Api, Client};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

/// Why an environment could not be resolved; shown as the waiting message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(pub String);

/// Expands `$(VAR)` references in `input` using `lookup`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(close) => {
                    let name = &body[..close];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[close + 1..];
                }
                None => {
                    out.push_str(&rest[pos..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The value of a `fieldRef` (downward API) for this pod, or `None` when
/// the path is not one upstream supports for environment variables.
pub fn field_ref_value(pod: &Pod, field_path: &str, host_ip: &str) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let bracketed =
        |prefix: &str| -> Option<String> { field_path.strip_prefix(prefix)?.strip_prefix("['")?.strip_suffix("']").map(str::to_string) };
    Some(match field_path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        // The pod's own IP is the caller's to know (see `resolve`); a pod
        // on the host's network has the node's.
        "status.hostIP" | "status.hostIPs" | "status.podIP" | "status.podIPs" => host_ip.to_string(),
        _ => {
            if let Some(key) = bracketed("metadata.labels") {
                meta.labels.as_ref().and_then(|l| l.get(&key).cloned()).unwrap_or_default()
            } else if let Some(key) = bracketed("metadata.annotations") {
                meta.annotations.as_ref().and_then(|a| a.get(&key).cloned()).unwrap_or_default()
            } else {
                return None;
            }
        }
    })
}

/// Reads ConfigMaps and Secrets once per resolution.
struct Sources<'a> {
    client: &'a Client,
    namespace: &'a str,
    config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    secrets: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

impl Sources<'_> {
    async fn config_map(&mut self, name: &str) -> Result<Option<BTreeMap<String, String>>, EnvError> {
        if !self.config_maps.contains_key(name) {
            let cm =
                Api::<ConfigMap>::namespaced(self.client.clone(), self.namespace).get_opt(name).await.map_err(|e| EnvError(e.message))?;
            self.config_maps.insert(name.to_string(), cm.map(|c| c.data.unwrap_or_default()));
        }
        Ok(self.config_maps.get(name).cloned().flatten())
    }

    async fn secret(&mut self, name: &str) -> Result<Option<BTreeMap<String, String>>, EnvError> {
        if !self.secrets.contains_key(name) {
            let secret =
                Api::<Secret>::namespaced(self.client.clone(), self.namespace).get_opt(name).await.map_err(|e| EnvError(e.message))?;
            let data = secret.map(|s| {
                let mut data: BTreeMap<String, String> = s.string_data.unwrap_or_default();
                for (k, v) in s.data.unwrap_or_default() {
                    data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                }
                data
            });
            self.secrets.insert(name.to_string(), data);
        }
        Ok(self.secrets.get(name).cloned().flatten())
    }
}

/// Appends or replaces `name` in the ordered environment.
fn set(env: &mut Vec<(String, String)>, name: String, value: String) {
    match env.iter_mut().find(|(k, _)| *k == name) {
        Some(slot) => slot.1 = value,
        None => env.push((name, value)),
    }
}

/// Resolves `container`'s environment. The result keeps definition order.
///
/// `host_ip` is the node's address and `pod_ip` the pod's (its sandbox's;
/// the node's when the pod shares the host's network).
pub async fn resolve(
    client: &Client,
    pod: &Pod,
    container: &Container,
    host_ip: &str,
    pod_ip: &str,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut sources = Sources { client, namespace, config_maps: BTreeMap::new(), secrets: BTreeMap::new() };
    let mut env: Vec<(String, String)> = Vec::new();

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_map(&r.name).await? {
                Some(data) => data.into_iter().for_each(|(k, v)| set(&mut env, format!("{prefix}{k}"), v)),
                None if r.optional == Some(true) => {}
                None => return Err(EnvError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secret(&r.name).await? {
                Some(data) => data.into_iter().for_each(|(k, v)| set(&mut env, format!("{prefix}{k}"), v)),
                None if r.optional == Some(true) => {}
                None => return Err(EnvError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }

    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                match f.field_path.as_str() {
                    "status.podIP" | "status.podIPs" => Some(pod_ip.to_string()),
                    path => field_ref_value(pod, path, host_ip),
                }
                .ok_or_else(|| EnvError(format!("unsupported fieldRef {:?} in env {:?}", f.field_path, var.name)))?
            } else if let Some(r) = &from.resource_field_ref {
                // The container named, else this one; an unset limit is the
                // node's allocatable amount, as upstream.
                let named = r.container_name.as_deref().filter(|n| !n.is_empty());
                let target = match named {
                    Some(n) => pod.spec.as_ref().and_then(|s| s.containers.iter().find(|c| c.name == n)).unwrap_or(container),
                    None => container,
                };
                let node = crate::volumes::payload::NodeAllocatable::from_host(&crate::node::HostInfo::read());
                crate::volumes::payload::resource_field_value(r, target, &node).map_err(|e| EnvError(format!("env {:?}: {e}", var.name)))?
            } else if let Some(k) = &from.config_map_key_ref {
                let optional = k.optional == Some(true);
                match sources.config_map(&k.name).await? {
                    Some(data) => match data.get(&k.key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => return Err(EnvError(format!("couldn't find key {} in ConfigMap {namespace}/{}", k.key, k.name))),
                    },
                    None if optional => continue,
                    None => return Err(EnvError(format!("configmap \"{}\" not found", k.name))),
                }
            } else if let Some(k) = &from.secret_key_ref {
                let optional = k.optional == Some(true);
                match sources.secret(&k.name).await? {
                    Some(data) => match data.get(&k.key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => return Err(EnvError(format!("couldn't find key {} in Secret {namespace}/{}", k.key, k.name))),
                    },
                    None if optional => continue,
                    None => return Err(EnvError(format!("secret \"{}\" not found", k.name))),
                }
            } else {
                return Err(EnvError(format!("env {:?}: resourceFieldRef and fileKeyRef are not supported by tinykube's agent", var.name)));
            }
        } else {
            let defined = env.clone();
            expand(var.value.as_deref().unwrap_or_default(), |name| defined.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

/// `command` followed by `args`, with `$(VAR)` expanded from `env`.
pub fn argv(container: &Container, env: &[(String, String)]) -> Vec<String> {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    container.command.iter().flatten().chain(container.args.iter().flatten()).map(|s| expand(s, lookup)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn expansion_follows_upstream_rules() {
        let lookup = |n: &str| match n {
            "A" => Some("1".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        for (input, want) in [
            ("$(A)", "1"),
            ("x$(A)y$(A)", "x1y1"),
            ("$(MISSING)", "$(MISSING)"),
            ("$$(A)", "$(A)"),
            ("$$", "$"),
            ("cost: $5", "cost: $5"),
            ("trailing $", "trailing $"),
            ("$(A", "$(A"),
            ("[$(EMPTY)]", "[]"),
        ] {
            assert_eq!(expand(input, lookup), want, "{input}");
        }
    }

    #[test]
    fn field_refs_read_the_pod() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("u-1".into()),
                labels: Some([("app".to_string(), "shop".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: Some("node-a".into()), ..Default::default() }),
            ..Default::default()
        };
        for (path, want) in [
            ("metadata.name", Some("web")),
            ("metadata.namespace", Some("prod")),
            ("metadata.uid", Some("u-1")),
            ("spec.nodeName", Some("node-a")),
            ("status.podIP", Some("10.1.1.1")),
            ("status.hostIP", Some("10.1.1.1")),
            ("metadata.labels['app']", Some("shop")),
            ("metadata.labels['nope']", Some("")),
            ("spec.containers", None),
        ] {
            assert_eq!(field_ref_value(&pod, path, "10.1.1.1").as_deref(), want, "{path}");
        }
    }

    #[test]
    fn argv_is_command_then_args_expanded() {
        let c = Container {
            name: "c".into(),
            command: Some(vec!["sh".into(), "-c".into()]),
            args: Some(vec!["echo $(GREETING) $$(GREETING)".into()]),
            ..Default::default()
        };
        let env = vec![("GREETING".to_string(), "hi".to_string())];
        assert_eq!(argv(&c, &env), ["sh", "-c", "echo hi $(GREETING)"]);
    }
}
