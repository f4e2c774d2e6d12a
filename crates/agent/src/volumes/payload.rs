//! What the files of configMap, secret, downwardAPI and projected volumes
//! hold: pure functions from already fetched objects to a [`Payload`]
//! (upstream: each plugin's `MakePayload` / `CollectData`).
//!
//! - **configMap / secret**: without `items`, one file per key (for a
//!   ConfigMap both `data` and `binaryData`); with `items`, only the keys
//!   listed, each at its `path` with its own `mode`. A listed key that is
//!   missing is an error unless the volume is `optional`, and an optional
//!   volume whose object is missing is simply empty.
//! - **downwardAPI**: one file per item, holding a field of the pod
//!   (`metadata.name`, `metadata.labels`, ...) or a container's resource
//!   request or limit, scaled by a `divisor`.
//!
//! Modes default to `defaultMode`, which defaults to 0644.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, ResourceFieldSelector, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{FileProjection, Payload, SetUpError};
use crate::node::HostInfo;

/// `defaultMode` when a volume gives none (upstream's API default, 0644).
pub const DEFAULT_MODE: i32 = 0o644;

/// A volume's file mode, checked as upstream's validation checks it.
pub fn file_mode(mode: i32) -> Result<u32, SetUpError> {
    u32::try_from(mode).ok().filter(|m| *m <= 0o777).ok_or(SetUpError::InvalidMode(mode))
}

/// The payload of a configMap volume or projection.
pub fn config_map_payload(items: &[KeyToPath], config_map: &ConfigMap, default_mode: i32, optional: bool) -> Result<Payload, SetUpError> {
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, v) in config_map.data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    for (k, v) in config_map.binary_data.iter().flatten() {
        data.insert(k.clone(), v.0.clone());
    }
    key_payload(items, data, default_mode, optional, SetUpError::MissingConfigMapKey)
}

/// The payload of a secret volume or projection. `data` arrives decoded
/// from base64; `stringData`, if the object still carries it, wins over
/// `data` as it does when the api-server merges the two on write.
pub fn secret_payload(items: &[KeyToPath], secret: &Secret, default_mode: i32, optional: bool) -> Result<Payload, SetUpError> {
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        data.insert(k.clone(), v.0.clone());
    }
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    key_payload(items, data, default_mode, optional, SetUpError::MissingSecretKey)
}

fn key_payload(
    items: &[KeyToPath],
    mut data: BTreeMap<String, Vec<u8>>,
    default_mode: i32,
    optional: bool,
    missing: fn(String) -> SetUpError,
) -> Result<Payload, SetUpError> {
    let default_mode = file_mode(default_mode)?;
    if items.is_empty() {
        return Ok(data.into_iter().map(|(key, data)| (key, FileProjection { data, mode: default_mode })).collect());
    }
    let mut payload = Payload::new();
    for item in items {
        let Some(bytes) = data.remove(&item.key) else {
            if optional {
                continue;
            }
            return Err(missing(item.key.clone()));
        };
        let mode = item.mode.map(file_mode).transpose()?.unwrap_or(default_mode);
        payload.insert(item.path.clone(), FileProjection { data: bytes, mode });
    }
    Ok(payload)
}

/// What the node can give a container whose limit is unset: upstream
/// substitutes the node's allocatable resources for a missing limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAllocatable {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    /// tinykube's Node reports no ephemeral storage, so this is 0.
    pub ephemeral_storage_bytes: i64,
}

impl NodeAllocatable {
    /// The same figures the agent publishes as the Node's allocatable.
    pub fn from_host(host: &HostInfo) -> Self {
        NodeAllocatable {
            cpu_millis: i64::try_from(host.cpus).unwrap_or(i64::MAX).saturating_mul(1000),
            memory_bytes: i64::try_from(host.memory_kib).unwrap_or(i64::MAX).saturating_mul(1024),
            ephemeral_storage_bytes: 0,
        }
    }
}

/// The payload of a downwardAPI volume or projection.
pub fn downward_api_payload(
    items: &[DownwardAPIVolumeFile],
    pod: &Pod,
    node: &NodeAllocatable,
    default_mode: i32,
) -> Result<Payload, SetUpError> {
    let mut payload = Payload::new();
    for item in items {
        let mode = file_mode(item.mode.unwrap_or(default_mode))?;
        let data = if let Some(field) = &item.field_ref {
            field_path_value(pod, &field.field_path)?
        } else if let Some(resource) = &item.resource_field_ref {
            let name = resource.container_name.as_deref().unwrap_or_default();
            if name.is_empty() {
                return Err(SetUpError::MissingContainerName(item.path.clone()));
            }
            let spec = pod.spec.as_ref();
            let container = spec
                .into_iter()
                .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
                .find(|c| c.name == name)
                .ok_or_else(|| SetUpError::ContainerNotFound(name.to_string()))?;
            resource_field_value(resource, container, node)?
        } else {
            // Validation upstream requires one of the two; an item with
            // neither is an empty file there too.
            String::new()
        };
        payload.insert(item.path.clone(), FileProjection { data: data.into_bytes(), mode });
    }
    Ok(payload)
}

/// A `fieldRef` of a downwardAPI volume (upstream's
/// `ExtractFieldPathAsString`). Volumes offer fewer fields than
/// environment variables: only metadata, but with whole maps of labels and
/// annotations, which can change while the pod runs and so only a file can
/// follow.
pub fn field_path_value(pod: &Pod, field_path: &str) -> Result<String, SetUpError> {
    let meta = &pod.metadata;
    match field_path {
        "metadata.labels" => Ok(format_map(meta.labels.as_ref())),
        "metadata.annotations" => Ok(format_map(meta.annotations.as_ref())),
        "metadata.name" | "metadata.namespace" | "metadata.uid" => Ok(crate::env::field_ref_value(pod, field_path, "").unwrap_or_default()),
        p if p.starts_with("metadata.labels[") || p.starts_with("metadata.annotations[") => {
            crate::env::field_ref_value(pod, p, "").ok_or_else(|| SetUpError::UnsupportedFieldPath(p.to_string()))
        }
        other => Err(SetUpError::UnsupportedFieldPath(other.to_string())),
    }
}

/// `key="value"` lines, sorted by key, values quoted as Go's `%q` quotes
/// them (upstream's `fieldpath.FormatMap`); no newline after the last.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter().flatten().map(|(k, v)| format!("{k}={}", api::go::quote(v))).collect::<Vec<_>>().join("\n")
}

/// A `resourceFieldRef`: the container's request or limit of `cpu`,
/// `memory`, `ephemeral-storage` or `hugepages-<size>`, divided by the
/// `divisor` (default 1) and rounded up, as upstream's
/// `ExtractContainerResourceValue`. An unset limit of cpu, memory or
/// ephemeral storage is the node's allocatable amount, because that is
/// what the container may in fact use; an unset request is 0. Environment
/// variables take the same values, so this is public for the env resolver.
pub fn resource_field_value(selector: &ResourceFieldSelector, container: &Container, node: &NodeAllocatable) -> Result<String, SetUpError> {
    let unsupported = || SetUpError::UnsupportedResource(selector.resource.clone());
    let (which, name) = selector.resource.split_once('.').ok_or_else(unsupported)?;
    let resources = container.resources.as_ref();
    let amounts = match which {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => return Err(unsupported()),
    };
    let amount = amounts.and_then(|a| a.get(name));
    let limits = which == "limits";
    let one = Quantity("1".to_string());
    let divisor = selector.divisor.as_ref().filter(|d| api::quantity::bytes(d).is_ok_and(|v| v != 0)).unwrap_or(&one);
    let quantity = |q: &Quantity, f: fn(&Quantity) -> Result<i64, String>| f(q).map_err(SetUpError::InvalidQuantity);

    let (value, divisor) = match name {
        "cpu" => {
            let fallback = if limits { node.cpu_millis } else { 0 };
            let value = amount.map(|q| quantity(q, api::quantity::cpu_millis)).transpose()?.unwrap_or(fallback);
            (value, quantity(divisor, api::quantity::cpu_millis)?)
        }
        "memory" | "ephemeral-storage" => {
            let fallback = match (limits, name) {
                (false, _) => 0,
                (true, "memory") => node.memory_bytes,
                (true, _) => node.ephemeral_storage_bytes,
            };
            let value = amount.map(|q| quantity(q, api::quantity::bytes)).transpose()?.unwrap_or(fallback);
            (value, quantity(divisor, api::quantity::bytes)?)
        }
        huge if huge.starts_with("hugepages-") => {
            let value = amount.map(|q| quantity(q, api::quantity::bytes)).transpose()?.unwrap_or(0);
            (value, quantity(divisor, api::quantity::bytes)?)
        }
        _ => return Err(unsupported()),
    };
    // Upstream divides as floats and takes the ceiling; `value` is never
    // negative for a valid pod, and both are far below 2^53 in practice.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let scaled = (value as f64 / divisor.max(1) as f64).ceil() as i64;
    Ok(scaled.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ObjectFieldSelector, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath { key: key.into(), path: path.into(), mode }
    }

    fn files(p: &Payload) -> Vec<(String, String, u32)> {
        p.iter().map(|(k, f)| (k.clone(), String::from_utf8_lossy(&f.data).into_owned(), f.mode)).collect()
    }

    fn owned(v: &[(&str, &str, u32)]) -> Vec<(String, String, u32)> {
        v.iter().map(|(a, b, m)| (a.to_string(), b.to_string(), *m)).collect()
    }

    fn config_map() -> ConfigMap {
        ConfigMap {
            data: Some([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())].into()),
            binary_data: Some([("bin".to_string(), ByteString(vec![0xff, 0x00]))].into()),
            ..Default::default()
        }
    }

    #[test]
    fn config_map_items_optional_and_modes() {
        let cm = config_map();
        let everything = config_map_payload(&[], &cm, DEFAULT_MODE, false).unwrap();
        assert_eq!(everything["bin"].data, [0xff, 0x00]);
        assert_eq!(everything.len(), 3);

        for (items, default_mode, optional, want) in [
            (vec![], 0o600, false, Ok(owned(&[("a", "1", 0o600), ("b", "2", 0o600), ("bin", "\u{fffd}\0", 0o600)]))),
            (vec![item("a", "conf/a.txt", None)], DEFAULT_MODE, false, Ok(owned(&[("conf/a.txt", "1", 0o644)]))),
            (
                vec![item("a", "x", Some(0o400)), item("b", "y", None)],
                DEFAULT_MODE,
                false,
                Ok(owned(&[("x", "1", 0o400), ("y", "2", 0o644)])),
            ),
            (vec![item("a", "x", None), item("nope", "y", None)], DEFAULT_MODE, true, Ok(owned(&[("x", "1", 0o644)]))),
            (vec![item("nope", "y", None)], DEFAULT_MODE, false, Err("configmap references non-existent config key: nope".to_string())),
            (
                vec![item("a", "x", Some(0o1777))],
                DEFAULT_MODE,
                false,
                Err("invalid mode 1023: must be a number between 0 and 0777 (octal), both inclusive".to_string()),
            ),
        ] {
            let got = config_map_payload(&items, &cm, default_mode, optional).map(|p| files(&p)).map_err(|e| e.to_string());
            assert_eq!(got, want, "{items:?}");
        }
    }

    #[test]
    fn secret_keys_and_string_data() {
        let secret = Secret {
            data: Some([("user".to_string(), ByteString(b"admin".to_vec())), ("pw".to_string(), ByteString(b"old".to_vec()))].into()),
            string_data: Some([("pw".to_string(), "s3cret".to_string())].into()),
            ..Default::default()
        };
        assert_eq!(
            files(&secret_payload(&[], &secret, 0o400, false).unwrap()),
            owned(&[("pw", "s3cret", 0o400), ("user", "admin", 0o400)])
        );
        let err = secret_payload(&[item("token", "t", None)], &secret, DEFAULT_MODE, false).unwrap_err();
        assert_eq!(err.to_string(), "secret references non-existent secret key: token");
        // An optional secret that is missing is fetched as an empty object.
        assert!(secret_payload(&[item("token", "t", None)], &Secret::default(), DEFAULT_MODE, true).unwrap().is_empty());
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u-1".into()),
                labels: Some([("tier".to_string(), "front".to_string()), ("app".to_string(), "shop".to_string())].into()),
                annotations: Some([("note".to_string(), "say \"hi\"\n\tbye\u{a0}é".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![Container {
                    name: "app".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some(
                            [("cpu".to_string(), Quantity("250m".into())), ("memory".to_string(), Quantity("64Mi".into()))].into(),
                        ),
                        limits: Some([("memory".to_string(), Quantity("128Mi".into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn field_paths_of_a_volume() {
        let pod = pod();
        for (path, want) in [
            ("metadata.name", Ok("web")),
            ("metadata.namespace", Ok("shop")),
            ("metadata.uid", Ok("u-1")),
            ("metadata.labels", Ok("app=\"shop\"\ntier=\"front\"")),
            ("metadata.annotations", Ok(r#"note="say \"hi\"\n\tbye\u00a0é""#)),
            ("metadata.labels['tier']", Ok("front")),
            ("metadata.annotations['none']", Ok("")),
            ("spec.nodeName", Err("unsupported fieldPath: spec.nodeName")),
            ("status.podIP", Err("unsupported fieldPath: status.podIP")),
            ("metadata.labels[tier]", Err("unsupported fieldPath: metadata.labels[tier]")),
        ] {
            let got = field_path_value(&pod, path).map_err(|e| e.to_string());
            assert_eq!(got, want.map(str::to_string).map_err(str::to_string), "{path}");
        }
        assert_eq!(format_map(None), "");
    }

    #[test]
    fn resource_fields_with_divisors() {
        let pod = pod();
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let node = NodeAllocatable { cpu_millis: 4000, memory_bytes: 8 << 30, ephemeral_storage_bytes: 0 };
        for (resource, divisor, want) in [
            ("requests.cpu", None, Ok("1")),
            ("requests.cpu", Some("1m"), Ok("250")),
            ("requests.memory", None, Ok("67108864")),
            ("requests.memory", Some("1Mi"), Ok("64")),
            ("limits.memory", Some("1Gi"), Ok("1")),
            ("limits.memory", Some("0"), Ok("134217728")),
            // Unset limits are the node's allocatable.
            ("limits.cpu", None, Ok("4")),
            ("limits.cpu", Some("1m"), Ok("4000")),
            ("requests.ephemeral-storage", None, Ok("0")),
            ("requests.hugepages-2Mi", None, Ok("0")),
            ("limits.gpu", None, Err("unsupported container resource : limits.gpu")),
            ("cpu", None, Err("unsupported container resource : cpu")),
        ] {
            let selector =
                ResourceFieldSelector { resource: resource.into(), divisor: divisor.map(|d| Quantity(d.into())), container_name: None };
            let got = resource_field_value(&selector, container, &node).map_err(|e| e.to_string());
            assert_eq!(got, want.map(str::to_string).map_err(str::to_string), "{resource} / {divisor:?}");
        }
    }

    #[test]
    fn downward_api_items() {
        let pod = pod();
        let node = NodeAllocatable { cpu_millis: 2000, memory_bytes: 1 << 30, ephemeral_storage_bytes: 0 };
        let field = |path: &str, field_path: &str, mode| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector { field_path: field_path.into(), api_version: None }),
            mode,
            resource_field_ref: None,
        };
        let resource = |path: &str, container: Option<&str>| DownwardAPIVolumeFile {
            path: path.into(),
            resource_field_ref: Some(ResourceFieldSelector {
                resource: "limits.cpu".into(),
                container_name: container.map(str::to_string),
                divisor: Some(Quantity("1m".into())),
            }),
            ..Default::default()
        };
        let got = downward_api_payload(
            &[field("labels", "metadata.labels", None), field("name", "metadata.name", Some(0o400)), resource("cpu", Some("app"))],
            &pod,
            &node,
            0o600,
        )
        .unwrap();
        assert_eq!(
            files(&got),
            owned(&[("cpu", "2000", 0o600), ("labels", "app=\"shop\"\ntier=\"front\"", 0o600), ("name", "web", 0o400)])
        );

        for (items, want) in [
            (vec![resource("cpu", Some("sidecar"))], "container sidecar not found"),
            (vec![resource("cpu", None)], "resourceFieldRef of \"cpu\" must name its container (containerName)"),
            (vec![field("node", "spec.nodeName", None)], "unsupported fieldPath: spec.nodeName"),
        ] {
            assert_eq!(downward_api_payload(&items, &pod, &node, DEFAULT_MODE).unwrap_err().to_string(), want);
        }
    }
}
