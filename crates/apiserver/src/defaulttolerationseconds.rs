//! The DefaultTolerationSeconds admission plugin: how long a pod stays on
//! a node that stopped answering.
//!
//! When a node goes `NotReady` or silent, the node lifecycle controller
//! taints it `node.kubernetes.io/not-ready:NoExecute` or
//! `node.kubernetes.io/unreachable:NoExecute`, and the taint-eviction
//! controller removes every pod that does not tolerate the taint. Evicting
//! at the first missed heartbeat would turn every network blip into a
//! storm of rescheduling, so this plugin gives every pod that does not say
//! otherwise a toleration of both taints for a while — 300 seconds unless
//! the api-server's `--default-not-ready-toleration-seconds` and
//! `--default-unreachable-toleration-seconds` say otherwise. A pod that
//! already tolerates a taint (with its own `tolerationSeconds`, or forever)
//! keeps what it asked for.
//!
//! As upstream, the plugin mutates pods on create and on update (an update
//! that leaves the tolerations out gets them back, so that it does not
//! fail the rule that tolerations may only be added), never subresources.

use api::taints::{TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE};
use api::ResourceInfo;
use k8s_openapi::api::core::v1::Toleration;
use serde_json::Value;

/// Upstream's default for both flags.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// The plugin's configuration: kube-apiserver's two flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultTolerationSeconds {
    /// `--default-not-ready-toleration-seconds`.
    pub not_ready: i64,
    /// `--default-unreachable-toleration-seconds`.
    pub unreachable: i64,
}

impl Default for DefaultTolerationSeconds {
    fn default() -> Self {
        DefaultTolerationSeconds { not_ready: DEFAULT_TOLERATION_SECONDS, unreachable: DEFAULT_TOLERATION_SECONDS }
    }
}

/// Whether `t` already covers `key:NoExecute`: the same key or every key,
/// and the `NoExecute` effect or every effect (upstream's test, which looks
/// at neither operator nor value).
fn covers(t: &Toleration, key: &str) -> bool {
    let k = t.key.as_deref().unwrap_or_default();
    let effect = t.effect.as_deref().unwrap_or_default();
    (k == key || k.is_empty()) && (effect == "NoExecute" || effect.is_empty())
}

impl DefaultTolerationSeconds {
    /// Adds the missing default tolerations to a pod's `spec.tolerations`.
    /// Anything that is not a pod, or a pod whose tolerations cannot be
    /// read, is left alone for validation to judge.
    pub fn admit(&self, info: &ResourceInfo, pod: &mut Value) {
        let is_pod = info.group.is_empty() && info.resource == "pods";
        if !is_pod || !pod["spec"].is_object() {
            return;
        }
        let tolerations = &pod["spec"]["tolerations"];
        let existing: Vec<Toleration> = match tolerations {
            Value::Null => Vec::new(),
            other => match serde_json::from_value(other.clone()) {
                Ok(list) => list,
                Err(_) => return,
            },
        };
        let mut added = Vec::new();
        for (key, seconds) in [(TAINT_NODE_NOT_READY, self.not_ready), (TAINT_NODE_UNREACHABLE, self.unreachable)] {
            if !existing.iter().any(|t| covers(t, key)) {
                added.push(serde_json::json!({
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": seconds,
                }));
            }
        }
        if added.is_empty() {
            return;
        }
        match pod["spec"]["tolerations"].as_array_mut() {
            Some(list) => list.extend(added),
            None => pod["spec"]["tolerations"] = Value::Array(added),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> &'static ResourceInfo {
        api::resources::by_resource("", "pods").unwrap()
    }

    fn defaults(not_ready: i64, unreachable: i64) -> Value {
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": not_ready},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": unreachable},
        ])
    }

    #[test]
    fn pods_get_what_they_do_not_already_tolerate() {
        let plugin = DefaultTolerationSeconds::default();
        let own_unreachable =
            json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 6000});
        let cases = [
            ("no tolerations", json!(null), defaults(300, 300)),
            (
                "an unrelated toleration is kept, first",
                json!([{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]),
                json!([{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}, defaults(300, 300)[0], defaults(300, 300)[1]]),
            ),
            ("its own unreachable toleration wins", json!([own_unreachable]), json!([own_unreachable, defaults(300, 300)[0]])),
            ("tolerating everything", json!([{"operator": "Exists"}]), json!([{"operator": "Exists"}])),
            (
                "a key with every effect",
                json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]),
                json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}, defaults(300, 300)[1]]),
            ),
            (
                "NoSchedule does not cover NoExecute",
                json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}]),
                json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}, defaults(300, 300)[0], defaults(300, 300)[1]]),
            ),
        ];
        for (name, tolerations, want) in cases {
            let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tolerations}});
            plugin.admit(pods(), &mut pod);
            assert_eq!(pod["spec"]["tolerations"], want, "{name}");
        }
    }

    #[test]
    fn the_seconds_come_from_the_flags_and_other_kinds_are_left_alone() {
        let plugin = DefaultTolerationSeconds { not_ready: 5, unreachable: 2 };
        let mut pod = json!({"spec": {"containers": []}});
        plugin.admit(pods(), &mut pod);
        assert_eq!(pod["spec"]["tolerations"], defaults(5, 2));

        let mut unreadable = json!({"spec": {"tolerations": "all of them"}});
        plugin.admit(pods(), &mut unreadable);
        assert_eq!(unreadable["spec"]["tolerations"], "all of them", "validation reports it");

        let mut rs = json!({"spec": {"template": {"spec": {"containers": []}}}});
        plugin.admit(api::resources::by_resource("apps", "replicasets").unwrap(), &mut rs);
        assert_eq!(rs, json!({"spec": {"template": {"spec": {"containers": []}}}}), "templates are not pods");
    }
}
