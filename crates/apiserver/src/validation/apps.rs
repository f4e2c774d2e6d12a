//! The apps group (`pkg/apis/apps/validation/validation.go`): the
//! workload controllers. Each one owns the pods its selector matches and
//! stamps them from its template, so the selector must be non-empty and
//! must match the template's labels — or the controller would create pods
//! it does not see and create them again, forever.

use api::labels::Selector;
use api::status::FieldError;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, RollingUpdateDeployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::core::validate_pod_template_spec;
use super::{
    int_or_percent_value, int_or_string_go, is_not_more_than_100_percent, quote, selector_is_empty, shown, validate_immutable_field,
    validate_label_selector, validate_nonnegative_field, validate_positive_int_or_percent, ErrorList,
};

/// The selector of a controller: present, well-formed and not empty.
fn validate_controller_selector(selector: Option<&LabelSelector>, kind: &str) -> ErrorList {
    let Some(selector) = selector else { return vec![FieldError::required("spec.selector")] };
    let mut errs = validate_label_selector(selector, "spec.selector");
    if selector_is_empty(selector) {
        errs.push(FieldError::invalid("spec.selector", shown(selector), format!("empty selector is invalid for {kind}")));
    }
    errs
}

/// `ValidatePodTemplateSpecForReplicaSet` (and its twins for the other
/// controllers): the template's labels match the selector, its pods
/// restart always, and they run until the controller removes them.
fn validate_template_for_controller(template: &PodTemplateSpec, selector: Option<&LabelSelector>, kind: &str) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(parsed) = selector.and_then(|s| Selector::from_label_selector(s).ok()).filter(|s| !s.is_empty()) {
        let labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
        if !parsed.matches(&labels) {
            let shown = labels.iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect::<Vec<_>>().join(", ");
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                format!("map[string]string{{{shown}}}"),
                "`selector` does not match template `labels`",
            ));
        }
    }
    errs.extend(validate_pod_template_spec(template, "spec.template"));
    let spec = template.spec.clone().unwrap_or_default();
    // Not every workload's template is defaulted here; an absent policy
    // is upstream's default, Always.
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if policy != "Always" {
        errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", quote(policy), &["Always"]));
    }
    if spec.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

/// `ValidateRollingUpdateDeployment`: surge and unavailability as a count
/// or a percent, not both zero (the rollout could never move), and no more
/// than all of the pods unavailable.
fn validate_rolling_update(ru: &RollingUpdateDeployment, field: &str) -> ErrorList {
    let zero = IntOrString::Int(0);
    let unavailable = ru.max_unavailable.as_ref().unwrap_or(&zero);
    let surge = ru.max_surge.as_ref().unwrap_or(&zero);
    let mut errs = validate_positive_int_or_percent(unavailable, &format!("{field}.maxUnavailable"));
    errs.extend(validate_positive_int_or_percent(surge, &format!("{field}.maxSurge")));
    if int_or_percent_value(unavailable) == 0 && int_or_percent_value(surge) == 0 {
        errs.push(FieldError::invalid(
            format!("{field}.maxUnavailable"),
            int_or_string_go(unavailable),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    errs.extend(is_not_more_than_100_percent(unavailable, &format!("{field}.maxUnavailable")));
    errs
}

/// `ValidateDeployment`.
pub fn validate_deployment(d: &Deployment) -> ErrorList {
    let Some(spec) = &d.spec else { return vec![FieldError::required("spec")] };
    let mut errs = validate_nonnegative_field(i64::from(spec.replicas.unwrap_or(1)), "spec.replicas");
    errs.extend(validate_controller_selector(Some(&spec.selector), "deployment"));
    errs.extend(validate_template_for_controller(&spec.template, Some(&spec.selector), "ReplicaSet"));
    let strategy = spec.strategy.clone().unwrap_or_default();
    match strategy.type_.as_deref().unwrap_or_default() {
        "Recreate" => {
            if strategy.rolling_update.is_some() {
                errs.push(FieldError::forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"));
            }
        }
        "RollingUpdate" => match &strategy.rolling_update {
            Some(ru) => errs.extend(validate_rolling_update(ru, "spec.strategy.rollingUpdate")),
            None => errs.push(FieldError::required_because("spec.strategy.rollingUpdate", "this should be defaulted and never be nil")),
        },
        other => {
            let shown = format!("apps.DeploymentStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}}", quote(other));
            errs.push(FieldError::not_supported("spec.strategy", shown, &["Recreate", "RollingUpdate"]));
        }
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    errs.extend(validate_nonnegative_field(i64::from(min_ready), "spec.minReadySeconds"));
    if let Some(limit) = spec.revision_history_limit {
        errs.extend(validate_nonnegative_field(i64::from(limit), "spec.revisionHistoryLimit"));
    }
    if let Some(deadline) = spec.progress_deadline_seconds {
        errs.extend(validate_nonnegative_field(i64::from(deadline), "spec.progressDeadlineSeconds"));
        if deadline <= min_ready {
            errs.push(FieldError::invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"));
        }
    }
    errs
}

/// `ValidateDeploymentUpdate`: the selector is how a Deployment finds its
/// ReplicaSets, so it is fixed in apps/v1.
pub fn validate_deployment_update(new: &Deployment, old: &Deployment) -> ErrorList {
    let sel = |d: &Deployment| d.spec.as_ref().map(|s| s.selector.clone());
    validate_immutable_field(&sel(new), &sel(old), "spec.selector")
}

/// `ValidateReplicaSet`.
pub fn validate_replica_set(rs: &ReplicaSet) -> ErrorList {
    let Some(spec) = &rs.spec else { return vec![FieldError::required("spec")] };
    let mut errs = validate_nonnegative_field(i64::from(spec.replicas.unwrap_or(1)), "spec.replicas");
    errs.extend(validate_nonnegative_field(i64::from(spec.min_ready_seconds.unwrap_or(0)), "spec.minReadySeconds"));
    errs.extend(validate_controller_selector(Some(&spec.selector), "deployment"));
    let template = spec.template.clone().unwrap_or_default();
    errs.extend(validate_template_for_controller(&template, Some(&spec.selector), "ReplicaSet"));
    errs
}

/// `ValidateReplicaSetUpdate`.
pub fn validate_replica_set_update(new: &ReplicaSet, old: &ReplicaSet) -> ErrorList {
    let sel = |r: &ReplicaSet| r.spec.as_ref().map(|s| s.selector.clone());
    validate_immutable_field(&sel(new), &sel(old), "spec.selector")
}

/// `ValidateDaemonSet`.
pub fn validate_daemon_set(ds: &DaemonSet) -> ErrorList {
    let Some(spec) = &ds.spec else { return vec![FieldError::required("spec")] };
    let mut errs = validate_controller_selector(Some(&spec.selector), "daemonset");
    errs.extend(validate_template_for_controller(&spec.template, Some(&spec.selector), "DaemonSet"));
    errs.extend(validate_nonnegative_field(i64::from(spec.min_ready_seconds.unwrap_or(0)), "spec.minReadySeconds"));
    if let Some(limit) = spec.revision_history_limit {
        errs.extend(validate_nonnegative_field(i64::from(limit), "spec.revisionHistoryLimit"));
    }
    if let Some(strategy) = &spec.update_strategy {
        match strategy.type_.as_deref() {
            Some("OnDelete") | None => {}
            Some("RollingUpdate") => {
                if let Some(ru) = &strategy.rolling_update {
                    let zero = IntOrString::Int(0);
                    let unavailable = ru.max_unavailable.as_ref().unwrap_or(&zero);
                    let surge = ru.max_surge.as_ref().unwrap_or(&zero);
                    let at = "spec.updateStrategy.rollingUpdate";
                    errs.extend(validate_positive_int_or_percent(unavailable, &format!("{at}.maxUnavailable")));
                    errs.extend(validate_positive_int_or_percent(surge, &format!("{at}.maxSurge")));
                    if int_or_percent_value(unavailable) == 0 && int_or_percent_value(surge) == 0 {
                        errs.push(FieldError::invalid(
                            format!("{at}.maxUnavailable"),
                            int_or_string_go(unavailable),
                            "may not be 0 when `maxSurge` is 0",
                        ));
                    }
                    errs.extend(is_not_more_than_100_percent(unavailable, &format!("{at}.maxUnavailable")));
                }
            }
            Some(other) => errs.push(FieldError::not_supported("spec.updateStrategy.type", quote(other), &["OnDelete", "RollingUpdate"])),
        }
    }
    errs
}

/// `ValidateDaemonSetUpdate`.
pub fn validate_daemon_set_update(new: &DaemonSet, old: &DaemonSet) -> ErrorList {
    let sel = |d: &DaemonSet| d.spec.as_ref().map(|s| s.selector.clone());
    validate_immutable_field(&sel(new), &sel(old), "spec.selector")
}

/// `ValidateStatefulSet`.
pub fn validate_stateful_set(ss: &StatefulSet) -> ErrorList {
    let Some(spec) = &ss.spec else { return vec![FieldError::required("spec")] };
    let mut errs = Vec::new();
    if let Some(policy) = spec.pod_management_policy.as_deref() {
        if !matches!(policy, "OrderedReady" | "Parallel") {
            errs.push(FieldError::not_supported("spec.podManagementPolicy", quote(policy), &["OrderedReady", "Parallel"]));
        }
    }
    if let Some(kind) = spec.update_strategy.as_ref().and_then(|s| s.type_.as_deref()) {
        if !matches!(kind, "RollingUpdate" | "OnDelete") {
            errs.push(FieldError::not_supported("spec.updateStrategy.type", quote(kind), &["OnDelete", "RollingUpdate"]));
        }
    }
    errs.extend(validate_nonnegative_field(i64::from(spec.replicas.unwrap_or(1)), "spec.replicas"));
    errs.extend(validate_nonnegative_field(i64::from(spec.min_ready_seconds.unwrap_or(0)), "spec.minReadySeconds"));
    errs.extend(validate_controller_selector(Some(&spec.selector), "statefulset"));
    errs.extend(validate_template_for_controller(&spec.template, Some(&spec.selector), "StatefulSet"));
    errs
}

/// `ValidateStatefulSetUpdate`: a StatefulSet's identity (selector,
/// service name, volume claims) is fixed; only these may change.
pub fn validate_stateful_set_update(new: &StatefulSet, old: &StatefulSet) -> ErrorList {
    let (Some(n), Some(o)) = (&new.spec, &old.spec) else { return Vec::new() };
    let mut restored = n.clone();
    restored.replicas = o.replicas;
    restored.ordinals = o.ordinals.clone();
    restored.template = o.template.clone();
    restored.update_strategy = o.update_strategy.clone();
    restored.revision_history_limit = o.revision_history_limit;
    restored.persistent_volume_claim_retention_policy = o.persistent_volume_claim_retention_policy.clone();
    restored.min_ready_seconds = o.min_ready_seconds;
    if &restored != o {
        return vec![FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        )];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn deployment(spec_extra: Value) -> Deployment {
        let mut spec = json!({
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "i"}]}},
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), spec_extra.as_object()) {
            s.extend(e.clone());
        }
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": spec})).unwrap()
    }

    /// Each row: upstream's rule, what the spec changes, the messages.
    #[test]
    fn validate_deployment_matches_upstream() {
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("a valid deployment", json!({}), vec![]),
            ("replicas", json!({"replicas": -1}), vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]),
            (
                "not both zero",
                json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}),
                vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is 0"],
            ),
            (
                "at most 100%",
                json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "150%"}}}),
                vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%"],
            ),
            (
                "progressDeadlineSeconds > minReadySeconds",
                json!({"minReadySeconds": 10, "progressDeadlineSeconds": 10}),
                vec!["spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds"],
            ),
            (
                "revisionHistoryLimit",
                json!({"revisionHistoryLimit": -1}),
                vec!["spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0"],
            ),
            (
                "empty selector",
                json!({"selector": {}}),
                vec!["spec.selector: Invalid value: {}: empty selector is invalid for deployment"],
            ),
            (
                "Recreate takes no rollingUpdate",
                json!({"strategy": {"type": "Recreate", "rollingUpdate": {}}}),
                vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"],
            ),
        ];
        for (rule, extra, want) in cases {
            let got: Vec<String> = validate_deployment(&deployment(extra)).iter().map(FieldError::to_string_with_field).collect();
            assert_eq!(got, want, "{rule}");
        }
    }

    /// DaemonSets, StatefulSets and Jobs keep their templates as written, so
    /// what upstream would default (restart policy, port protocol) is read
    /// as its default.
    #[test]
    fn undefaulted_templates_read_as_upstreams_defaults() {
        let ds: DaemonSet = serde_json::from_value(json!({"metadata": {"name": "ds"}, "spec": {
            "selector": {"matchLabels": {"app": "ds"}},
            "template": {"metadata": {"labels": {"app": "ds"}}, "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}]}},
        }}))
        .unwrap();
        assert_eq!(validate_daemon_set(&ds), Vec::<FieldError>::new());
        let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": {
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
        }}))
        .unwrap();
        let got: Vec<String> = crate::validation::batch::validate_job(&job).iter().map(FieldError::to_string_with_field).collect();
        assert_eq!(
            got,
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""]
        );
    }
}
