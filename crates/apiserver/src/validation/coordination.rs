//! The coordination group (`pkg/apis/coordination/validation`): a Lease
//! is a lock with a holder and a term; node heartbeats and leader
//! election both rest on it.

use api::status::FieldError;
use k8s_openapi::api::coordination::v1::Lease;

use super::{validate_nonnegative_field, ErrorList};

/// `ValidateLeaseSpec`: a term of at least a second, and a count of
/// holder changes that only grows from zero.
pub fn validate_lease(lease: &Lease) -> ErrorList {
    let Some(spec) = &lease.spec else { return Vec::new() };
    let mut errs = Vec::new();
    if let Some(d) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
        errs.push(FieldError::invalid("spec.leaseDurationSeconds", d, "must be greater than 0"));
    }
    if let Some(t) = spec.lease_transitions {
        errs.extend(validate_nonnegative_field(i64::from(t), "spec.leaseTransitions"));
    }
    errs
}
