//! Taints and tolerations: the words every component uses for "keep pods
//! away from this node" (upstream `k8s.io/api/core/v1` `toleration.go` and
//! `well_known_taints.go`).
//!
//! A taint `key=value:Effect` on a node repels pods; a toleration on a pod
//! lets it stay or land there anyway. The scheduler reads them to place
//! pods (`NoSchedule`), the taint-eviction controller to remove running
//! pods (`NoExecute`), and the node lifecycle controller writes the
//! well-known taints below when a node's conditions say it is unwell. They
//! all match tolerations to taints with [`tolerates_taint`].

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// The node's `Ready` condition is `False`.
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The node's `Ready` condition is `Unknown`: nothing heard from its agent.
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The node is cordoned (`spec.unschedulable`).
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// `MemoryPressure` is `True`.
pub const TAINT_NODE_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// `DiskPressure` is `True`.
pub const TAINT_NODE_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// `PIDPressure` is `True`.
pub const TAINT_NODE_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// `NetworkUnavailable` is `True`.
pub const TAINT_NODE_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// Whether one toleration matches one taint (upstream
/// `Toleration.ToleratesTaint`): an empty effect matches every effect, an
/// empty key (with `Exists`) every key; `Exists` ignores the value, while
/// `Equal` (the default operator) requires the same value.
pub fn tolerates_taint(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => toleration.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default(),
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of `tolerations` matches `taint`.
pub fn tolerations_tolerate_taint(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates_taint(t, taint))
}

/// Whether two taints are the same taint: key and effect make a taint's
/// identity on a node (upstream `Taint.MatchTaint`); the value and
/// `timeAdded` are what it says.
pub fn same_taint(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()).filter(|v: &String| !v.is_empty()),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
        let some = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        Toleration {
            key: some(key),
            operator: some(operator),
            value: some(value),
            effect: some(effect),
            toleration_seconds: None,
        }
    }

    #[test]
    fn tolerates_taint_table() {
        let gpu = taint("dedicated", "gpu", "NoSchedule");
        let cases = [
            ("equal key, value and effect", toleration("dedicated", "Equal", "gpu", "NoSchedule"), true),
            ("empty operator means Equal", toleration("dedicated", "", "gpu", "NoSchedule"), true),
            ("empty effect matches all effects", toleration("dedicated", "Equal", "gpu", ""), true),
            ("other value", toleration("dedicated", "Equal", "cpu", "NoSchedule"), false),
            ("other effect", toleration("dedicated", "Equal", "gpu", "NoExecute"), false),
            ("other key", toleration("team", "Equal", "gpu", "NoSchedule"), false),
            ("Exists ignores the value", toleration("dedicated", "Exists", "", "NoSchedule"), true),
            ("empty key with Exists tolerates everything", toleration("", "Exists", "", ""), true),
            ("unknown operator", toleration("dedicated", "In", "gpu", "NoSchedule"), false),
        ];
        for (name, t, want) in cases {
            assert_eq!(tolerates_taint(&t, &gpu), want, "{name}");
        }
    }

    #[test]
    fn a_taint_is_its_key_and_effect() {
        assert!(same_taint(&taint("k", "a", "NoExecute"), &taint("k", "b", "NoExecute")));
        assert!(!same_taint(&taint("k", "", "NoExecute"), &taint("k", "", "NoSchedule")));
        assert!(!same_taint(&taint("k", "", "NoExecute"), &taint("j", "", "NoExecute")));
    }
}
