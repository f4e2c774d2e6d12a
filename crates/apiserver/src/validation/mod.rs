//! Validation: which objects the api-server agrees to store.
//!
//! kube-apiserver validates every write in one place, the storage's
//! `BeforeCreate` / `BeforeUpdate` (`k8s.io/apiserver/pkg/registry/rest`),
//! by calling the kind's strategy, which calls the validation functions of
//! `pkg/apis/<group>/validation`. Create, update, patch, the status and
//! scale subresources and a Binding all end there, so no verb and no front
//! door can store an object that one of them would refuse. tinykube keeps
//! that shape: [`crate::strategy::normalize`] is the one function every
//! write goes through, and it calls this module.
//!
//! The functions carry upstream's names (`ValidateObjectMeta` is
//! [`meta::validate_object_meta`], `ValidatePodSpec` is
//! [`core::validate_pod_spec`]), and they return upstream's field paths and
//! messages word for word, since those messages are what users search for.
//! A validation error is a [`FieldError`]; a list of them becomes one 422
//! `Invalid` whose message joins them all.
//!
//! # Layout
//! - [`meta`]: `ObjectMeta` on create and on update: names, labels,
//!   annotations, finalizers, owner references, managed fields, and the
//!   fields an update may not change.
//! - [`core`]: the core group: pods and pod templates, services,
//!   ConfigMaps, Secrets, namespaces, nodes, endpoints, events and
//!   service accounts.
//! - [`apps`]: Deployments, ReplicaSets, DaemonSets and StatefulSets.
//! - [`batch`]: Jobs, which run to completion.
//! - [`coordination`]: Leases, for heartbeats and leader election.

pub mod apps;
pub mod batch;
pub mod coordination;
pub mod core;
pub mod meta;

use std::collections::BTreeMap;

use api::names;
use api::status::FieldError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Upstream's `field.ErrorList`.
pub type ErrorList = Vec<FieldError>;

/// A string as Go's `%q` prints it, which is how a field error shows a
/// string value.
pub use api::go::quote;

/// A value as a field error shows a Go value that is neither a string
/// nor a number; JSON is the closest readable form.
pub fn shown<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `ValidateNonnegativeField`.
pub fn validate_nonnegative_field(value: i64, field: &str) -> ErrorList {
    if value < 0 {
        vec![FieldError::invalid(field, value, "must be greater than or equal to 0")]
    } else {
        Vec::new()
    }
}

/// `ValidateDNS1123Label`: each problem as an invalid value.
pub fn validate_dns1123_label(value: &str, field: &str) -> ErrorList {
    names::validate_label(value).into_iter().map(|m| FieldError::invalid(field, quote(value), m)).collect()
}

/// `ValidateDNS1123Subdomain`.
pub fn validate_dns1123_subdomain(value: &str, field: &str) -> ErrorList {
    names::validate_subdomain(value).into_iter().map(|m| FieldError::invalid(field, quote(value), m)).collect()
}

/// `ValidateImmutableField`: an update that changes `new` from `old`.
pub fn validate_immutable_field<T: PartialEq + serde::Serialize>(new: &T, old: &T, field: &str) -> ErrorList {
    if new == old {
        Vec::new()
    } else {
        vec![FieldError::invalid(field, shown(new), "field is immutable")]
    }
}

/// `ValidateLabels`: every key a qualified name, every value a valid label
/// value. Upstream reports both at the map's own path.
pub fn validate_labels(labels: Option<&BTreeMap<String, String>>, field: &str) -> ErrorList {
    let mut errs = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        errs.extend(names::validate_qualified_name(k).into_iter().map(|m| FieldError::invalid(field, quote(k), m)));
        errs.extend(names::validate_label_value(v).into_iter().map(|m| FieldError::invalid(field, quote(v), m)));
    }
    errs
}

/// `ValidateLabelSelector`: match labels as labels, and each match
/// expression's operator with the values it needs.
pub fn validate_label_selector(selector: &LabelSelector, field: &str) -> ErrorList {
    let mut errs = validate_labels(selector.match_labels.as_ref(), &format!("{field}.matchLabels"));
    for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{field}.matchExpressions[{i}]");
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                errs.push(FieldError::required_because(format!("{at}.values"), "must be specified when `operator` is 'In' or 'NotIn'"))
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => errs
                .push(FieldError::forbidden(format!("{at}.values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(format!("{at}.operator"), quote(other), "not a valid selector operator")),
        }
        errs.extend(
            names::validate_qualified_name(&req.key)
                .into_iter()
                .map(|m| FieldError::invalid(format!("{at}.key"), quote(&req.key), m)),
        );
    }
    errs
}

/// Whether a selector selects everything (`{}`), which no controller may
/// use: it would adopt every pod in the namespace.
pub fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty()) && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

/// An `IntOrString` as a field error prints it: Go's `%#v` of the struct,
/// since its `String` method is on the pointer.
pub fn int_or_string_go(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => format!("intstr.IntOrString{{Type:0, IntVal:{i}, StrVal:\"\"}}"),
        IntOrString::String(s) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}", quote(s)),
    }
}

/// `ValidatePortNumOrName`: a port number, or the name of a container port.
pub fn validate_port_num_or_name(port: &IntOrString, field: &str) -> ErrorList {
    match port {
        IntOrString::Int(p) => names::validate_port_num(i64::from(*p)).into_iter().map(|m| FieldError::invalid(field, p, m)).collect(),
        IntOrString::String(s) => names::validate_port_name(s).into_iter().map(|m| FieldError::invalid(field, quote(s), m)).collect(),
    }
}

/// `ValidatePositiveIntOrPercent`: a non-negative count or `N%`.
pub fn validate_positive_int_or_percent(v: &IntOrString, field: &str) -> ErrorList {
    match v {
        IntOrString::String(s) => {
            names::validate_percent(s).into_iter().map(|m| FieldError::invalid(field, int_or_string_go(v), m)).collect()
        }
        IntOrString::Int(i) => validate_nonnegative_field(i64::from(*i), field),
    }
}

/// The number in a valid `N%`, or `None` for an integer or a malformed
/// string (upstream's `getPercentValue`).
pub fn percent_value(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::String(s) if names::validate_percent(s).is_empty() => s.trim_end_matches('%').parse().ok(),
        _ => None,
    }
}

/// Upstream's `getIntOrPercentValue`: the percent's number, the integer,
/// or 0 for anything else.
pub fn int_or_percent_value(v: &IntOrString) -> i64 {
    match v {
        IntOrString::Int(i) => i64::from(*i),
        IntOrString::String(s) => percent_value(v).unwrap_or_else(|| s.parse().unwrap_or(0)),
    }
}

/// `IsNotMoreThan100Percent`.
pub fn is_not_more_than_100_percent(v: &IntOrString, field: &str) -> ErrorList {
    match percent_value(v) {
        Some(p) if p > 100 => vec![FieldError::invalid(field, int_or_string_go(v), "must not be greater than 100%")],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_percent_rules_match_upstream() {
        let bad = IntOrString::String("abc".into());
        let errs = validate_positive_int_or_percent(&bad, "spec.strategy.rollingUpdate.maxSurge");
        assert_eq!(
            errs[0].to_string_with_field(),
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"abc\"}: \
             a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', \
             regex used for validation is '[0-9]+%')"
        );
        assert!(validate_positive_int_or_percent(&IntOrString::String("25%".into()), "f").is_empty());
        assert_eq!(validate_positive_int_or_percent(&IntOrString::Int(-1), "f").len(), 1);
        assert_eq!(int_or_percent_value(&IntOrString::String("0%".into())), 0);
        assert_eq!(is_not_more_than_100_percent(&IntOrString::String("101%".into()), "f").len(), 1);
    }

    #[test]
    fn selectors_need_values_for_in_and_none_for_exists() {
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchExpressions": [{"key": "a", "operator": "In"}, {"key": "b", "operator": "Exists", "values": ["x"]}]
        }))
        .unwrap();
        let errs = validate_label_selector(&sel, "spec.selector");
        assert_eq!(errs.len(), 2);
        assert_eq!(
            errs[0].to_string_with_field(),
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        );
        assert_eq!(errs[1].field, "spec.selector.matchExpressions[1].values");
    }
}
