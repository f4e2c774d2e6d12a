//! Request options from the query string, read and checked as
//! kube-apiserver reads them.
//!
//! Upstream decodes a request's query into a typed options object —
//! `ListOptions` for list and watch, `CreateOptions`, `UpdateOptions`,
//! `PatchOptions`, `DeleteOptions` for writes — with the same conversion
//! functions for every parameter (`k8s.io/apimachinery/pkg/runtime/conversion.go`),
//! and then validates the object as a whole
//! (`pkg/apis/meta/internalversion/validation`, `pkg/apis/meta/v1/validation`).
//! The two steps fail differently, and clients can tell them apart:
//!
//! - **Decoding** fails with a 400 `BadRequest` whose message is the
//!   parser's own: `strconv.ParseInt: parsing "abc": invalid syntax` for an
//!   integer, the selector parser's message for a selector. Booleans never
//!   fail: `0` and `false` (any case) are false, anything else — `abc`,
//!   or the key alone — is true.
//! - **Validation** fails with a 422 `Invalid` on the options kind, as for
//!   any object: `ListOptions.meta.k8s.io "" is invalid:
//!   resourceVersionMatch: Forbidden: ...`.
//!
//! A few checks live deeper upstream, in storage, and keep its wording:
//! a malformed `resourceVersion` (`invalid resource version: ...`) and a
//! `continue` token given with a `resourceVersion`.

use api::labels::Selector;
use api::status::FieldError;
use api::ApiError;

use crate::rest::Query;

/// The group of the options kinds in upstream's `Invalid` errors.
const META_GROUP: &str = "meta.k8s.io";

/// `?fieldManager=` is at most this long (upstream's `FieldManagerMaxLength`).
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// A query boolean, converted as upstream's `Convert_Slice_string_To_bool`:
/// absent is false; `0` and `false` in any case are false; any other value,
/// including none (`?watch`), is true.
pub fn query_bool(query: &Query, key: &str) -> bool {
    query.get(key).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// A query boolean that may be absent (`*bool` upstream).
fn query_optional_bool(query: &Query, key: &str) -> Option<bool> {
    query.get(key).map(|_| query_bool(query, key))
}

/// A query integer, converted as upstream's `Convert_Slice_string_To_int64`:
/// absent is `None`; anything Go's `strconv.ParseInt` refuses, even the
/// empty value, is a 400 with Go's message.
pub fn query_int(query: &Query, key: &str) -> Result<Option<i64>, ApiError> {
    query.get(key).map(parse_int).transpose().map_err(ApiError::bad_request)
}

/// Go's `strconv.ParseInt(s, 10, 64)`, with its error text.
fn parse_int(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {}: invalid syntax", api::go::quote(s)));
    }
    s.parse().map_err(|_| format!("strconv.ParseInt: parsing {}: value out of range", api::go::quote(s)))
}

/// Go's `strconv.ParseUint(s, 10, 64)`, with its error text.
fn parse_uint(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {}: invalid syntax", api::go::quote(s)));
    }
    s.parse().map_err(|_| format!("strconv.ParseUint: parsing {}: value out of range", api::go::quote(s)))
}

/// A resourceVersion as storage reads it: "" and "0" mean "any", anything
/// else must be an unsigned integer. Upstream's message nests the
/// versioner's field error inside storage's.
///
/// Where tinykube differs: upstream's list path wraps the versioner's
/// error in this 400, but its watch path returns it bare, which the front
/// door answers as a 500 with no reason. A malformed resourceVersion is the
/// client's mistake, so a watch gets the list's 400 here.
pub fn parse_resource_version(rv: &str) -> Result<u64, ApiError> {
    if rv.is_empty() || rv == "0" {
        return Ok(0);
    }
    parse_uint(rv).map_err(|e| {
        ApiError::bad_request(format!("invalid resource version: resourceVersion: Invalid value: {}: {e}", api::go::quote(rv)))
    })
}

/// `metav1.ResourceVersionMatch` values.
const MATCH_NOT_OLDER_THAN: &str = "NotOlderThan";
const MATCH_EXACT: &str = "Exact";

/// The options of a list or a watch (`metainternalversion.ListOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub label_selector: String,
    pub field_selector: String,
    pub watch: bool,
    pub allow_watch_bookmarks: bool,
    pub resource_version: String,
    pub resource_version_match: String,
    pub timeout_seconds: Option<i64>,
    /// Zero or less: no limit (upstream pages only for a positive limit).
    pub limit: i64,
    pub continue_token: String,
    pub send_initial_events: Option<bool>,
}

impl ListOptions {
    /// Decodes and validates the options of a list or watch, in upstream's
    /// order: the integers, the selectors, the whole object, then the
    /// storage-level checks of `resourceVersion` and `continue`.
    pub fn parse(query: &Query) -> Result<Self, ApiError> {
        let opts = ListOptions {
            label_selector: query.str("labelSelector").to_string(),
            field_selector: query.str("fieldSelector").to_string(),
            watch: query_bool(query, "watch"),
            allow_watch_bookmarks: query_bool(query, "allowWatchBookmarks"),
            resource_version: query.str("resourceVersion").to_string(),
            resource_version_match: query.str("resourceVersionMatch").to_string(),
            timeout_seconds: query_int(query, "timeoutSeconds")?,
            limit: query_int(query, "limit")?.unwrap_or(0),
            continue_token: query.str("continue").to_string(),
            send_initial_events: query_optional_bool(query, "sendInitialEvents"),
        };
        Selector::parse(&opts.label_selector).map_err(ApiError::bad_request)?;
        api::fields::FieldSelector::parse(&opts.field_selector).map_err(ApiError::bad_request)?;
        let errors = opts.validate();
        if !errors.is_empty() {
            return Err(ApiError::invalid(META_GROUP, "ListOptions", "", &errors));
        }
        if !opts.watch && !opts.continue_token.is_empty() && !matches!(opts.resource_version.as_str(), "" | "0") {
            return Err(ApiError::bad_request("specifying resource version is not allowed when using continue"));
        }
        if opts.watch || opts.continue_token.is_empty() {
            parse_resource_version(&opts.resource_version)?;
        }
        Ok(opts)
    }

    /// Upstream's `ValidateListOptions`, after `SetListOptionsDefaults`
    /// with the WatchList feature on (as it is in 1.32): a watch from ""
    /// or "0" with neither `sendInitialEvents` nor `resourceVersionMatch`
    /// counts as asking for initial events, not older than that version.
    fn validate(&self) -> Vec<FieldError> {
        let match_ = self.resource_version_match.as_str();
        let mut errors = Vec::new();
        let forbidden = |detail: &str| FieldError::forbidden("resourceVersionMatch", detail);
        if self.watch {
            let legacy = matches!(self.resource_version.as_str(), "" | "0");
            let defaulted = self.send_initial_events.is_none() && match_.is_empty() && legacy;
            let (send_initial, match_) = if defaulted { (Some(true), MATCH_NOT_OLDER_THAN) } else { (self.send_initial_events, match_) };
            if send_initial.is_some() && match_ != MATCH_NOT_OLDER_THAN {
                errors.push(forbidden("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"));
            }
            if !match_.is_empty() {
                if send_initial.is_none() {
                    errors.push(forbidden("resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"));
                }
                if match_ != MATCH_NOT_OLDER_THAN {
                    errors.push(not_supported("resourceVersionMatch", match_, &[MATCH_NOT_OLDER_THAN]));
                }
                if !self.continue_token.is_empty() {
                    errors.push(forbidden("resourceVersionMatch is forbidden when continue is provided"));
                }
            }
            return errors;
        }
        if !match_.is_empty() {
            if self.resource_version.is_empty() {
                errors.push(forbidden("resourceVersionMatch is forbidden unless resourceVersion is provided"));
            }
            if !self.continue_token.is_empty() {
                errors.push(forbidden("resourceVersionMatch is forbidden when continue is provided"));
            }
            if match_ != MATCH_EXACT && match_ != MATCH_NOT_OLDER_THAN {
                errors.push(not_supported("resourceVersionMatch", match_, &[MATCH_EXACT, MATCH_NOT_OLDER_THAN, ""]));
            }
            if match_ == MATCH_EXACT && self.resource_version == "0" {
                errors.push(forbidden("resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""));
            }
        }
        if self.send_initial_events.is_some() {
            errors.push(FieldError::forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"));
        }
        errors
    }
}

/// `Unsupported value: "x": supported values: "a", "b"`, with the value
/// quoted as upstream quotes a string.
fn not_supported(field: &str, value: &str, supported: &[&str]) -> FieldError {
    FieldError::not_supported(field, api::go::quote(value), supported)
}

/// Which write the options belong to: names the options kind in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Create,
    Update,
    Patch,
}

impl WriteKind {
    fn options_kind(self) -> &'static str {
        match self {
            WriteKind::Create => "CreateOptions",
            WriteKind::Update => "UpdateOptions",
            WriteKind::Patch => "PatchOptions",
        }
    }
}

/// Upstream's `ValidateCreateOptions` / `ValidateUpdateOptions` /
/// `ValidatePatchOptions` for the parameters tinykube reads: `fieldManager`,
/// `dryRun` and `fieldValidation`, as a 422 on the options kind.
pub fn validate_write_options(query: &Query, kind: WriteKind) -> Result<(), ApiError> {
    let mut errors = field_manager_errors(query.str("fieldManager"));
    errors.extend(dry_run_errors(&query.get_all("dryRun")));
    let validation = query.str("fieldValidation");
    if !matches!(validation, "" | "Ignore" | "Strict" | "Warn") {
        errors.push(not_supported("fieldValidation", validation, &["", "Ignore", "Strict", "Warn"]));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(META_GROUP, kind.options_kind(), "", &errors))
    }
}

/// Upstream's `ValidateDeleteOptions` for the options tinykube reads, once
/// the body and the query are merged into `options`.
pub fn validate_delete_options(options: &serde_json::Value) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let policy = options.get("propagationPolicy").filter(|p| !p.is_null());
    if options.get("orphanDependents").is_some_and(|o| !o.is_null()) {
        if let Some(p) = policy {
            errors.push(FieldError::invalid(
                "propagationPolicy",
                api::go::quote(p.as_str().unwrap_or_default()),
                "orphanDependents and deletionPropagation cannot be both set",
            ));
        }
    }
    if let Some(p) = policy {
        let text = p.as_str().unwrap_or_default();
        if !matches!(text, "Foreground" | "Background" | "Orphan") {
            errors.push(not_supported("propagationPolicy", text, &["Foreground", "Background", "Orphan", "nil"]));
        }
    }
    let dry_run: Vec<String> = match options.get("dryRun") {
        Some(serde_json::Value::Array(values)) => values.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect(),
        _ => Vec::new(),
    };
    errors.extend(dry_run_errors(&dry_run));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(META_GROUP, "DeleteOptions", "", &errors))
    }
}

/// `fieldManager`: at most 128 bytes, every character printable.
fn field_manager_errors(manager: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if manager.len() > FIELD_MANAGER_MAX_LENGTH {
        errors.push(FieldError {
            field: "fieldManager".into(),
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes"),
        });
    }
    for (i, c) in manager.char_indices() {
        if c.is_control() {
            errors.push(FieldError::invalid(
                "fieldManager",
                api::go::quote(manager),
                format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    errors
}

/// `dryRun`: every value must be `All`. Upstream prints the list as Go
/// source, `[]string{"x"}`.
fn dry_run_errors(values: &[String]) -> Vec<FieldError> {
    if values.iter().all(|v| v == "All") {
        return Vec::new();
    }
    let list = values.iter().map(|v| api::go::quote(v)).collect::<Vec<_>>().join(", ");
    vec![FieldError::not_supported("dryRun", format!("[]string{{{list}}}"), &["All"])]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(raw: &str) -> Result<ListOptions, ApiError> {
        ListOptions::parse(&Query::parse(Some(raw)))
    }

    #[test]
    fn booleans_decode_leniently_like_upstream() {
        for (raw, want) in [("watch=true", true), ("watch=1", true), ("watch", true), ("watch=abc", true), ("watch=0", false)] {
            assert_eq!(query_bool(&Query::parse(Some(raw)), "watch"), want, "{raw}");
        }
        for raw in ["watch=false", "watch=FALSE", "watch=False", ""] {
            assert!(!query_bool(&Query::parse(Some(raw)), "watch"), "{raw}");
        }
    }

    #[test]
    fn good_list_options() {
        let cases = [
            "",
            "limit=-5",
            "limit=%2B5",
            "resourceVersion=0",
            "resourceVersion=12&resourceVersionMatch=NotOlderThan",
            "resourceVersion=12&resourceVersionMatch=Exact",
            "continue=abc&resourceVersion=0",
            "watch=1&resourceVersion=7",
            "watch=1&resourceVersion=0&allowWatchBookmarks=true",
            "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
            "watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan",
            "watch=1&continue=x&resourceVersion=3",
            "labelSelector=a+in+()&fieldSelector=metadata.name%3D%3D",
        ];
        for raw in cases {
            assert!(list(raw).is_ok(), "{raw}: {:?}", list(raw).err());
        }
        assert_eq!(list("limit=-5").unwrap().limit, -5);
    }

    /// Each bad query: the code, reason and message upstream answers with.
    #[test]
    fn bad_list_options_fail_like_upstream() {
        const INVALID: &str = "ListOptions.meta.k8s.io \"\" is invalid: ";
        let cases: &[(&str, u16, &str, String)] = &[
            ("limit=abc", 400, "BadRequest", "strconv.ParseInt: parsing \"abc\": invalid syntax".into()),
            ("limit=", 400, "BadRequest", "strconv.ParseInt: parsing \"\": invalid syntax".into()),
            ("limit=1.5", 400, "BadRequest", "strconv.ParseInt: parsing \"1.5\": invalid syntax".into()),
            (
                "limit=99999999999999999999",
                400,
                "BadRequest",
                "strconv.ParseInt: parsing \"99999999999999999999\": value out of range".into(),
            ),
            ("watch=1&timeoutSeconds=abc", 400, "BadRequest", "strconv.ParseInt: parsing \"abc\": invalid syntax".into()),
            ("labelSelector=a%3Db%2C", 400, "BadRequest", "found '', expected: identifier after ','".into()),
            ("labelSelector=%2C%2C", 400, "BadRequest", "found ',', expected: !, identifier, or 'end of string'".into()),
            ("fieldSelector=nonsense", 400, "BadRequest", "invalid selector: 'nonsense'; can't understand 'nonsense'".into()),
            (
                "resourceVersion=abc",
                400,
                "BadRequest",
                "invalid resource version: resourceVersion: Invalid value: \"abc\": strconv.ParseUint: parsing \"abc\": invalid syntax".into(),
            ),
            (
                "watch=1&resourceVersion=-1",
                400,
                "BadRequest",
                "invalid resource version: resourceVersion: Invalid value: \"-1\": strconv.ParseUint: parsing \"-1\": invalid syntax".into(),
            ),
            ("continue=abc&resourceVersion=5", 400, "BadRequest", "specifying resource version is not allowed when using continue".into()),
            (
                "resourceVersionMatch=NotOlderThan",
                422,
                "Invalid",
                format!("{INVALID}resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"),
            ),
            (
                "resourceVersion=5&resourceVersionMatch=Bogus",
                422,
                "Invalid",
                format!("{INVALID}resourceVersionMatch: Unsupported value: \"Bogus\": supported values: \"Exact\", \"NotOlderThan\", \"\""),
            ),
            (
                "resourceVersion=0&resourceVersionMatch=Exact",
                422,
                "Invalid",
                format!("{INVALID}resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""),
            ),
            (
                "resourceVersion=5&resourceVersionMatch=Exact&continue=x",
                422,
                "Invalid",
                format!("{INVALID}resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided"),
            ),
            (
                "sendInitialEvents=true",
                422,
                "Invalid",
                format!("{INVALID}sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"),
            ),
            (
                "watch=1&sendInitialEvents=true",
                422,
                "Invalid",
                format!("{INVALID}resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"),
            ),
            (
                "watch=1&resourceVersionMatch=NotOlderThan&resourceVersion=5",
                422,
                "Invalid",
                format!(
                    "{INVALID}resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
                ),
            ),
            (
                "watch=1&sendInitialEvents=true&resourceVersionMatch=Exact",
                422,
                "Invalid",
                format!(
                    "{INVALID}[resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan, \
                     resourceVersionMatch: Unsupported value: \"Exact\": supported values: \"NotOlderThan\"]"
                ),
            ),
        ];
        for (raw, code, reason, message) in cases {
            let err = list(raw).expect_err(raw);
            assert_eq!((err.code, err.reason.as_str(), err.message.as_str()), (*code, *reason, message.as_str()), "{raw}");
        }
    }

    #[test]
    fn bad_write_options_fail_like_upstream() {
        let write = |raw: &str| validate_write_options(&Query::parse(Some(raw)), WriteKind::Create);
        assert!(write("dryRun=All&fieldManager=kubectl&fieldValidation=Strict").is_ok());
        let long = "m".repeat(129);
        let cases: &[(String, &str)] = &[
            ("dryRun=Bogus".into(), "dryRun: Unsupported value: []string{\"Bogus\"}: supported values: \"All\""),
            ("dryRun=All&dryRun=x".into(), "dryRun: Unsupported value: []string{\"All\", \"x\"}: supported values: \"All\""),
            (format!("fieldManager={long}"), "fieldManager: Too long: may not be more than 128 bytes"),
            ("fieldManager=a%07b".into(), "fieldManager: Invalid value: \"a\\ab\": invalid character U+0007 (at position 1)"),
            (
                "fieldValidation=Bogus".into(),
                "fieldValidation: Unsupported value: \"Bogus\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
            ),
        ];
        for (raw, want) in cases {
            let err = write(raw).expect_err(raw);
            assert_eq!(
                (err.code, err.message.as_str()),
                (422, format!("CreateOptions.meta.k8s.io \"\" is invalid: {want}").as_str()),
                "{raw}"
            );
        }
        let delete = |v: serde_json::Value| validate_delete_options(&v).map_err(|e| e.message);
        assert!(delete(serde_json::json!({"propagationPolicy": "Background"})).is_ok());
        assert_eq!(
            delete(serde_json::json!({"propagationPolicy": "Bogus"})).unwrap_err(),
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Bogus\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
        );
    }

    #[test]
    fn go_quoting() {
        assert_eq!(api::go::quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    }
}
