//! [`ApiError`]: a Kubernetes `Status` object used as an error.
//!
//! Every failure a client can see from the api-server is a `metav1.Status`
//! with an HTTP code, a machine-readable `reason` and a human message, as in
//! `k8s.io/apimachinery/pkg/api/errors`. The constructors here produce the
//! same reasons and message texts as upstream, so kubectl and the Python
//! client print what users already know.
//!
//! Over gRPC the Status travels as JSON in the `details` bytes of a
//! `tonic::Status`; [`ApiError::to_grpc`] and [`ApiError::from_grpc`] are the
//! one place that mapping lives.

use serde::{Deserialize, Serialize};

/// One reason an object is invalid, with the field path it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// `metav1.StatusDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
}

/// A failed API call, shaped exactly as a Kubernetes `Status` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code: 400, 404, 409, 410, 422, 500, ...
    pub code: u16,
    /// Upstream's `StatusReason`: `NotFound`, `AlreadyExists`, `Conflict`,
    /// `Invalid`, `BadRequest`, `Expired`, `InternalError`, ...
    pub reason: String,
    pub message: String,
    /// Boxed: it is rarely set, and keeping `ApiError` small keeps every
    /// `Result<_, ApiError>` small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<Details>>,
}

/// A field-level validation failure, collected into a 422 `Invalid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    /// Upstream's `FieldValueRequired`, `FieldValueInvalid`, ... reasons.
    pub reason: &'static str,
    /// Full message, e.g. `Invalid value: -1: must be greater than or equal to 0`.
    pub message: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: "FieldValueRequired", message: "Required value".into() }
    }

    pub fn invalid(field: impl Into<String>, value: impl std::fmt::Display, detail: impl AsRef<str>) -> Self {
        FieldError {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {value}: {}", detail.as_ref()),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: impl std::fmt::Display, supported: &[&str]) -> Self {
        let list = supported.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
        FieldError {
            field: field.into(),
            reason: "FieldValueNotSupported",
            message: format!("Unsupported value: {value}: supported values: {list}"),
        }
    }

    /// `Required value: detail`, upstream's `field.Required` with a detail.
    pub fn required_because(field: impl Into<String>, detail: impl AsRef<str>) -> Self {
        FieldError {
            field: field.into(),
            reason: "FieldValueRequired",
            message: format!("Required value: {}", detail.as_ref()),
        }
    }

    /// `Duplicate value: "x"`.
    pub fn duplicate(field: impl Into<String>, value: impl std::fmt::Display) -> Self {
        FieldError { field: field.into(), reason: "FieldValueDuplicate", message: format!("Duplicate value: {value}") }
    }

    /// `Not found: "x"`: a reference to something the object does not have.
    pub fn not_found(field: impl Into<String>, value: impl std::fmt::Display) -> Self {
        FieldError { field: field.into(), reason: "FieldValueNotFound", message: format!("Not found: {value}") }
    }

    /// `Too long: must have at most N bytes`.
    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Self {
        FieldError {
            field: field.into(),
            reason: "FieldValueTooLong",
            message: format!("Too long: must have at most {max_bytes} bytes"),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: "FieldValueForbidden", message: format!("Forbidden: {}", detail.into()) }
    }

    /// `spec.replicas: Invalid value: -1: must be ...`, as upstream prints it.
    pub fn to_string_with_field(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

impl ApiError {
    fn new(code: u16, reason: &str, message: String) -> Self {
        ApiError { code, reason: reason.into(), message, details: None }
    }

    fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        self.details = Some(Box::new(Details { name: name.into(), group: group.into(), kind: kind.into(), ..Default::default() }));
        self
    }

    /// 404: `deployments.apps "web" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", qualified(group, resource))).with_details(name, group, resource)
    }

    /// 409: `deployments.apps "web" already exists`.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", qualified(group, resource)))
            .with_details(name, group, resource)
    }

    /// 409 on a stale resourceVersion, with upstream's wording.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{name}\": {why}", qualified(group, resource)))
            .with_details(name, group, resource)
    }

    /// The `why` of a stale update, as upstream's `OptimisticLockErrorMsg`.
    pub const OPTIMISTIC_LOCK: &'static str = "the object has been modified; please apply your changes to the latest version and try again";

    /// 422: `Deployment.apps "web" is invalid: spec.replicas: Invalid value: ...`.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified_kind = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        let list = match errors {
            [one] => one.to_string_with_field(),
            many => format!("[{}]", many.iter().map(FieldError::to_string_with_field).collect::<Vec<_>>().join(", ")),
        };
        let mut err = Self::new(422, "Invalid", format!("{qualified_kind} \"{name}\" is invalid: {list}")).with_details(name, group, kind);
        if let Some(d) = err.details.as_mut() {
            d.causes =
                errors.iter().map(|e| Cause { reason: e.reason.into(), message: e.message.clone(), field: e.field.clone() }).collect();
        }
        err
    }

    /// 401: no valid credentials, as upstream answers it (`Unauthorized`).
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".into())
    }

    /// 403: an authenticated user may not do this. `message` is the whole
    /// message (`pods "p" is forbidden: User "u" cannot ...`); `name`,
    /// `group` and `resource` go in the details, as upstream fills them.
    pub fn forbidden(group: &str, resource: &str, name: &str, message: String) -> Self {
        Self::new(403, "Forbidden", message).with_details(name, group, resource)
    }

    /// 400: a request that cannot be understood.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into())
    }

    /// 410: a watch or list from a revision that was compacted away.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message.into())
    }

    /// 413: a request body over the limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message.into())
    }

    /// 405: a verb the resource does not support.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message.into())
    }

    /// 503: a dependency (the store, a node's agent) is unreachable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message.into())
    }

    /// 500: a bug or an I/O failure.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {message}"))
    }

    /// 500 with no reason: an error upstream's storage returns as a plain
    /// Go error, which the handler turns into `StatusReasonUnknown`.
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(500, "", message.into())
    }

    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }

    pub fn is_conflict(&self) -> bool {
        self.code == 409 && self.reason == "Conflict"
    }

    pub fn is_already_exists(&self) -> bool {
        self.code == 409 && self.reason == "AlreadyExists"
    }

    /// The full `Status` object as kube-apiserver returns it.
    pub fn to_status_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        // An error that is not a Status upstream (a storage failure) has the
        // empty reason `StatusReasonUnknown`, which the JSON leaves out.
        if self.reason.is_empty() {
            if let Some(m) = v.as_object_mut() {
                m.remove("reason");
            }
        }
        if let Some(d) = &self.details {
            v["details"] = serde_json::to_value(d).unwrap_or_default();
        }
        v
    }

    /// Parses a `Status` object (from a REST body or a gRPC detail).
    pub fn from_status_json(v: &serde_json::Value) -> Option<Self> {
        if v.get("kind")?.as_str()? != "Status" {
            return None;
        }
        Some(ApiError {
            code: v.get("code").and_then(|c| c.as_u64()).unwrap_or(500) as u16,
            reason: v.get("reason").and_then(|r| r.as_str()).unwrap_or_default().to_string(),
            message: v.get("message").and_then(|m| m.as_str()).unwrap_or_default().to_string(),
            details: v.get("details").and_then(|d| serde_json::from_value(d.clone()).ok()),
        })
    }

    /// The gRPC status for this error; the Status JSON rides in `details`.
    pub fn to_grpc(&self) -> tonic::Status {
        use tonic::Code;
        let code = match self.code {
            400 | 422 => Code::InvalidArgument,
            404 => Code::NotFound,
            409 if self.reason == "AlreadyExists" => Code::AlreadyExists,
            409 => Code::Aborted,
            410 => Code::OutOfRange,
            413 => Code::ResourceExhausted,
            405 => Code::Unimplemented,
            503 => Code::Unavailable,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            _ => Code::Internal,
        };
        let body = serde_json::to_vec(&self.to_status_json()).unwrap_or_default();
        tonic::Status::with_details(code, self.message.clone(), body.into())
    }

    /// Recovers the Kubernetes error from a gRPC status; a status that did
    /// not come from the api-server (a refused connection, say) becomes 503.
    pub fn from_grpc(status: &tonic::Status) -> Self {
        if let Some(err) = serde_json::from_slice(status.details()).ok().and_then(|v| Self::from_status_json(&v)) {
            return err;
        }
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => {
                Self::unavailable(format!("the server is unreachable: {}", status.message()))
            }
            _ => Self::internal(status.message()),
        }
    }
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_upstream() {
        assert_eq!(ApiError::not_found("apps", "deployments", "web").message, "deployments.apps \"web\" not found");
        assert_eq!(ApiError::not_found("", "pods", "p").message, "pods \"p\" not found");
        let inv = ApiError::invalid(
            "apps",
            "Deployment",
            "web",
            &[FieldError::invalid("spec.replicas", -1, "must be greater than or equal to 0")],
        );
        assert_eq!(inv.message, "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0");
        assert_eq!(inv.details.as_ref().unwrap().causes[0].field, "spec.replicas");
    }

    #[test]
    fn grpc_round_trip_keeps_everything() {
        let e = ApiError::conflict("apps", "deployments", "web", ApiError::OPTIMISTIC_LOCK);
        let back = ApiError::from_grpc(&e.to_grpc());
        assert_eq!(back, e);
        let plain = ApiError::from_grpc(&tonic::Status::unavailable("connection refused"));
        assert_eq!(plain.code, 503);
    }
}
