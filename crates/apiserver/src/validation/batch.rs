//! The batch group (`pkg/apis/batch/validation/validation.go`): a Job's
//! pods run to completion, so they never restart always, and the counts
//! that describe the work are non-negative.

use api::status::FieldError;
use k8s_openapi::api::batch::v1::Job;

use super::core::validate_pod_template_spec;
use super::{quote, validate_immutable_field, validate_label_selector, validate_nonnegative_field, ErrorList};

/// `ValidateJob`.
pub fn validate_job(job: &Job) -> ErrorList {
    let Some(spec) = &job.spec else { return vec![FieldError::required("spec")] };
    let mut errs = Vec::new();
    for (name, v) in [("parallelism", spec.parallelism), ("completions", spec.completions), ("backoffLimit", spec.backoff_limit)] {
        if let Some(v) = v {
            errs.extend(validate_nonnegative_field(i64::from(v), &format!("spec.{name}")));
        }
    }
    if let Some(d) = spec.active_deadline_seconds {
        errs.extend(validate_nonnegative_field(d, "spec.activeDeadlineSeconds"));
    }
    if let Some(ttl) = spec.ttl_seconds_after_finished {
        errs.extend(validate_nonnegative_field(i64::from(ttl), "spec.ttlSecondsAfterFinished"));
    }
    if let Some(mode) = spec.completion_mode.as_deref() {
        if !matches!(mode, "NonIndexed" | "Indexed") {
            errs.push(FieldError::not_supported("spec.completionMode", quote(mode), &["NonIndexed", "Indexed"]));
        }
        if mode == "Indexed" && spec.completions.is_none() {
            errs.push(FieldError::required_because("spec.completions", "when completion mode is Indexed"));
        }
    }
    if let Some(selector) = &spec.selector {
        errs.extend(validate_label_selector(selector, "spec.selector"));
    }
    errs.extend(validate_pod_template_spec(&spec.template, "spec.template"));
    // An absent policy is upstream's default, Always, which a Job refuses.
    let policy = spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    if !matches!(policy, "OnFailure" | "Never") {
        errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", quote(policy), &["OnFailure", "Never"]));
    }
    errs
}

/// `ValidateJobUpdate`: what the work is — completions, the selector, the
/// pod template of a running Job — is fixed once the Job exists.
pub fn validate_job_update(new: &Job, old: &Job) -> ErrorList {
    let (n, o) = (new.spec.clone().unwrap_or_default(), old.spec.clone().unwrap_or_default());
    let mut errs = validate_immutable_field(&n.completions, &o.completions, "spec.completions");
    errs.extend(validate_immutable_field(&n.selector, &o.selector, "spec.selector"));
    errs.extend(validate_immutable_field(&n.completion_mode, &o.completion_mode, "spec.completionMode"));
    // A suspended Job may get a new template before it starts.
    if o.suspend != Some(true) {
        errs.extend(validate_immutable_field(&n.template, &o.template, "spec.template"));
    }
    errs
}
