//! `ObjectMeta`, the part every object shares.
//!
//! Upstream's `ValidateObjectMetaAccessor` (`k8s.io/apimachinery/pkg/api/validation/objectmeta.go`)
//! checks what a client may write into metadata on any kind: a name the
//! kind accepts, labels and annotations with qualified-name keys and a
//! bounded size, finalizer names, owner references that name their owner
//! fully, and managed-fields entries of the known shape. On update,
//! `ValidateObjectMetaAccessorUpdate` also refuses a change to the
//! object's identity: name, namespace, uid, creation and deletion times.

use std::collections::BTreeMap;

use api::names;
use api::status::FieldError;
use api::ResourceInfo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta, OwnerReference};

use super::{quote, shown, validate_immutable_field, validate_labels, ErrorList};

/// Annotations are for small tool-owned notes, not payloads: all keys and
/// values together may not exceed 256 KiB (`TotalAnnotationSizeLimitB`).
pub const TOTAL_ANNOTATION_SIZE_LIMIT_BYTES: usize = 256 * 1024;

/// The longest field manager name (`FieldManagerMaxLength`).
const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// The finalizers Kubernetes itself defines, which need no domain prefix
/// (`IsStandardFinalizerName`).
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// A name rule: the messages for what is wrong with a name, or for a
/// `generateName` prefix when `prefix` is set.
pub type NameFn = fn(&str, bool) -> Vec<String>;

/// A generated name gets a random suffix, so a prefix may end in '-'
/// (`maskTrailingDash`).
fn mask_trailing_dash(name: &str, prefix: bool) -> String {
    match name.strip_suffix('-') {
        Some(rest) if prefix && !rest.is_empty() => format!("{rest}a"),
        _ => name.to_string(),
    }
}

/// `NameIsDNSSubdomain`: the rule for most kinds.
pub fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    names::validate_subdomain(&mask_trailing_dash(name, prefix))
}

/// `NameIsDNSLabel`: namespaces, whose names are DNS labels.
pub fn name_is_dns_label(name: &str, prefix: bool) -> Vec<String> {
    names::validate_label(&mask_trailing_dash(name, prefix))
}

/// `NameIsDNS1035Label`: services, whose names become DNS labels and
/// environment variable prefixes, so they start with a letter.
pub fn name_is_dns1035_label(name: &str, prefix: bool) -> Vec<String> {
    names::validate_dns1035_label(&mask_trailing_dash(name, prefix))
}

/// The name rule of a kind, as its `Validate<Kind>Name`.
pub fn name_fn(info: &ResourceInfo) -> NameFn {
    match info.resource {
        "namespaces" => name_is_dns_label,
        "services" => name_is_dns1035_label,
        _ => name_is_dns_subdomain,
    }
}

/// `ValidatePathSegmentName`: whatever a kind allows, a name is one
/// segment of a URL path.
pub fn validate_path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if !prefix {
        for bad in [".", ".."] {
            if name == bad {
                errs.push(format!("may not be '{bad}'"));
            }
        }
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// `ValidateObjectMeta` for a new or updated object of kind `info`.
pub fn validate_object_meta(info: &ResourceInfo, meta: &ObjectMeta) -> ErrorList {
    let rule = name_fn(info);
    let mut errs = Vec::new();
    let name = meta.name.as_deref().unwrap_or_default();
    let generate_name = meta.generate_name.as_deref().unwrap_or_default();
    if !generate_name.is_empty() {
        errs.extend(rule(generate_name, true).into_iter().map(|m| FieldError::invalid("metadata.generateName", quote(generate_name), m)));
    }
    if name.is_empty() {
        errs.push(FieldError::required_because("metadata.name", "name or generateName is required"));
    } else {
        errs.extend(rule(name, false).into_iter().map(|m| FieldError::invalid("metadata.name", quote(name), m)));
    }
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    // The registry puts every namespaced object in the request's namespace
    // (or `default`) before it gets here, so upstream's "namespace is
    // required" cannot arise from a request; its name can still be wrong.
    if info.namespaced {
        if !namespace.is_empty() {
            errs.extend(
                names::validate_label(namespace).into_iter().map(|m| FieldError::invalid("metadata.namespace", quote(namespace), m)),
            );
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"));
    }
    if let Some(g) = meta.generation {
        errs.extend(super::validate_nonnegative_field(g, "metadata.generation"));
    }
    errs.extend(validate_labels(meta.labels.as_ref(), "metadata.labels"));
    errs.extend(validate_annotations(meta.annotations.as_ref(), "metadata.annotations"));
    errs.extend(validate_owner_references(meta.owner_references.as_deref().unwrap_or_default(), "metadata.ownerReferences"));
    errs.extend(validate_finalizers(meta.finalizers.as_deref().unwrap_or_default(), "metadata.finalizers"));
    errs.extend(validate_managed_fields(meta.managed_fields.as_deref().unwrap_or_default(), "metadata.managedFields"));
    // The generic check runs last, so the kind's own message wins when
    // both would fire (`BeforeCreate`).
    if errs.is_empty() && !name.is_empty() {
        errs.extend(validate_path_segment_name(name, false).into_iter().map(|m| FieldError::invalid("metadata.name", quote(name), m)));
    }
    errs
}

/// `ValidateAnnotations`: qualified-name keys (in any case) and at most
/// [`TOTAL_ANNOTATION_SIZE_LIMIT_BYTES`] of keys and values in all.
pub fn validate_annotations(annotations: Option<&BTreeMap<String, String>>, field: &str) -> ErrorList {
    let mut errs = Vec::new();
    let mut total = 0;
    for (k, v) in annotations.into_iter().flatten() {
        errs.extend(names::validate_qualified_name(&k.to_lowercase()).into_iter().map(|m| FieldError::invalid(field, quote(k), m)));
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES {
        errs.push(FieldError::too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT_BYTES));
    }
    errs
}

/// `ValidateOwnerReferences`: each reference names its owner by
/// apiVersion, kind, name and uid — the garbage collector looks owners up
/// by exactly these — and at most one of them is the controller.
pub fn validate_owner_references(refs: &[OwnerReference], field: &str) -> ErrorList {
    let mut errs = Vec::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        errs.extend(validate_owner_reference(r, field));
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    field,
                    shown(&refs),
                    format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// The version part of an apiVersion (`apps/v1` → `v1`), empty when the
/// apiVersion does not parse as upstream's `ParseGroupVersion`.
fn api_version_parts(api_version: &str) -> (String, String) {
    match api_version.split('/').collect::<Vec<_>>().as_slice() {
        [version] => (String::new(), version.to_string()),
        [group, version] => (group.to_string(), version.to_string()),
        _ => (String::new(), String::new()),
    }
}

fn validate_owner_reference(r: &OwnerReference, field: &str) -> ErrorList {
    let mut errs = Vec::new();
    let (group, version) = api_version_parts(&r.api_version);
    if version.is_empty() {
        errs.push(FieldError::invalid(format!("{field}.apiVersion"), quote(&r.api_version), "version must not be empty"));
    }
    if r.kind.is_empty() {
        errs.push(FieldError::invalid(format!("{field}.kind"), quote(&r.kind), "kind must not be empty"));
    }
    if r.name.is_empty() {
        errs.push(FieldError::invalid(format!("{field}.name"), quote(&r.name), "name must not be empty"));
    }
    if r.uid.is_empty() {
        errs.push(FieldError::invalid(format!("{field}.uid"), quote(&r.uid), "uid must not be empty"));
    }
    // An Event may not own anything: events are garbage collected by TTL,
    // and their dependents would go with them (`BannedOwners`).
    if group.is_empty() && version == "v1" && r.kind == "Event" {
        errs.push(FieldError::invalid(field, shown(r), "/v1, Kind=Event is disallowed from being an owner"));
    }
    errs
}

/// `ValidateFinalizers`, with the core group's rule that a finalizer
/// without a domain must be one Kubernetes defines.
pub fn validate_finalizers(finalizers: &[String], field: &str) -> ErrorList {
    let mut errs = Vec::new();
    for (i, f) in finalizers.iter().enumerate() {
        errs.extend(names::validate_qualified_name(f).into_iter().map(|m| FieldError::invalid(field, quote(f), m)));
        if !f.contains('/') && !STANDARD_FINALIZERS.contains(&f.as_str()) {
            errs.push(FieldError::invalid(
                format!("{field}[{i}]"),
                quote(f),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    // Orphaning the dependents and deleting them first are opposites.
    if finalizers.iter().any(|f| f == "orphan") && finalizers.iter().any(|f| f == "foregroundDeletion") {
        let go = format!("[]string{{{}}}", finalizers.iter().map(|f| quote(f)).collect::<Vec<_>>().join(", "));
        errs.push(FieldError::invalid(field, go, "finalizer orphan and foregroundDeletion cannot be both set"));
    }
    errs
}

/// `ValidateManagedFields`: each entry records an `Apply` or an `Update`
/// by a named manager, in the `FieldsV1` format.
pub fn validate_managed_fields(entries: &[ManagedFieldsEntry], field: &str) -> ErrorList {
    let mut errs = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let operation = e.operation.as_deref().unwrap_or_default();
        if !matches!(operation, "Apply" | "Update") {
            errs.push(FieldError::invalid(format!("{at}.operation"), quote(operation), "must be `Apply` or `Update`"));
        }
        let fields_type = e.fields_type.as_deref().unwrap_or_default();
        if !fields_type.is_empty() && fields_type != "FieldsV1" {
            errs.push(FieldError::invalid(format!("{at}.fieldsType"), quote(fields_type), "must be `FieldsV1`"));
        }
        let manager = e.manager.as_deref().unwrap_or_default();
        if manager.len() > FIELD_MANAGER_MAX_LENGTH {
            errs.push(FieldError::too_long(format!("{at}.manager"), FIELD_MANAGER_MAX_LENGTH));
        }
        if manager.chars().any(|c| c.is_control()) {
            errs.push(FieldError::invalid(format!("{at}.manager"), quote(manager), "must only contain printable characters"));
        }
        if e.subresource.as_deref().unwrap_or_default().len() > FIELD_MANAGER_MAX_LENGTH {
            errs.push(FieldError::too_long(format!("{at}.subresource"), FIELD_MANAGER_MAX_LENGTH));
        }
    }
    errs
}

/// `ValidateObjectMetaUpdate`: what an update may not change. The
/// registry has already filled an omitted uid and deletion fields from the
/// stored object and reset the creation time, as upstream's `BeforeUpdate`
/// does, so a difference here is a client's explicit change.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> ErrorList {
    let mut errs = Vec::new();
    if old.deletion_timestamp.is_some() {
        errs.extend(validate_no_new_finalizers(
            new.finalizers.as_deref().unwrap_or_default(),
            old.finalizers.as_deref().unwrap_or_default(),
        ));
    }
    if new.generation.unwrap_or(0) < old.generation.unwrap_or(0) {
        errs.push(FieldError::invalid("metadata.generation", new.generation.unwrap_or(0), "must not be decremented"));
    }
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    errs.extend(validate_immutable_field(&s(&new.name), &s(&old.name), "metadata.name"));
    errs.extend(validate_immutable_field(&s(&new.namespace), &s(&old.namespace), "metadata.namespace"));
    errs.extend(validate_immutable_field(&s(&new.uid), &s(&old.uid), "metadata.uid"));
    errs.extend(validate_immutable_field(&new.creation_timestamp, &old.creation_timestamp, "metadata.creationTimestamp"));
    errs.extend(validate_immutable_field(&new.deletion_timestamp, &old.deletion_timestamp, "metadata.deletionTimestamp"));
    errs.extend(validate_immutable_field(
        &new.deletion_grace_period_seconds,
        &old.deletion_grace_period_seconds,
        "metadata.deletionGracePeriodSeconds",
    ));
    errs
}

/// `ValidateNoNewFinalizers`: once an object is being deleted, its
/// finalizers can only go away, or deletion might never finish.
fn validate_no_new_finalizers(new: &[String], old: &[String]) -> ErrorList {
    let mut added: Vec<&String> = new.iter().filter(|f| !old.contains(f)).collect();
    added.sort();
    added.dedup();
    if added.is_empty() {
        return Vec::new();
    }
    let go = format!("[]string{{{}}}", added.iter().map(|f| quote(f)).collect::<Vec<_>>().join(", "));
    vec![FieldError::forbidden(
        "metadata.finalizers",
        format!("no new finalizers can be added if the object is being deleted, found new finalizers {go}"),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(resource: &str) -> &'static ResourceInfo {
        api::resources::RESOURCES.iter().find(|r| r.resource == resource).unwrap()
    }

    fn meta(v: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(v).unwrap()
    }

    /// Each row: the kind, its metadata, and the errors upstream reports.
    #[test]
    fn validate_object_meta_matches_upstream() {
        let long_annotation = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES);
        let cases: Vec<(&str, serde_json::Value, Vec<&str>)> = vec![
            ("configmaps", json!({"name": "ok", "namespace": "default"}), vec![]),
            ("configmaps", json!({"namespace": "default"}), vec!["metadata.name: Required value: name or generateName is required"]),
            ("configmaps", json!({"generateName": "web-", "name": "web-x1", "namespace": "default"}), vec![]),
            (
                "services",
                json!({"name": "1web", "namespace": "default"}),
                vec!["metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"],
            ),
            (
                "configmaps",
                json!({"name": "a", "namespace": "default", "annotations": {"a": long_annotation}}),
                vec!["metadata.annotations: Too long: must have at most 262144 bytes"],
            ),
            (
                "configmaps",
                json!({"name": "a", "namespace": "default", "annotations": {"bad key": "v"}}),
                vec!["metadata.annotations: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"],
            ),
            (
                "configmaps",
                json!({"name": "a", "namespace": "default", "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p"}]}),
                vec!["metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty"],
            ),
            (
                "configmaps",
                json!({"name": "a", "namespace": "default", "ownerReferences": [{"apiVersion": "", "kind": "", "name": "", "uid": "u"}]}),
                vec![
                    "metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty",
                    "metadata.ownerReferences.kind: Invalid value: \"\": kind must not be empty",
                    "metadata.ownerReferences.name: Invalid value: \"\": name must not be empty",
                ],
            ),
            (
                "configmaps",
                json!({"name": "a", "namespace": "default", "finalizers": ["mine"]}),
                vec!["metadata.finalizers[0]: Invalid value: \"mine\": name is neither a standard finalizer name nor is it fully qualified"],
            ),
            ("configmaps", json!({"name": "a", "namespace": "default", "finalizers": ["example.com/mine", "orphan"]}), vec![]),
            (
                "configmaps",
                json!({"name": "a", "namespace": "default", "managedFields": [{"manager": "m", "operation": "Patch", "fieldsType": "FieldsV2"}]}),
                vec![
                    "metadata.managedFields[0].operation: Invalid value: \"Patch\": must be `Apply` or `Update`",
                    "metadata.managedFields[0].fieldsType: Invalid value: \"FieldsV2\": must be `FieldsV1`",
                ],
            ),
        ];
        for (resource, m, want) in cases {
            let got: Vec<String> =
                validate_object_meta(info(resource), &meta(m.clone())).iter().map(FieldError::to_string_with_field).collect();
            assert_eq!(got, want, "{m}");
        }
    }

    #[test]
    fn only_one_owner_is_the_controller() {
        let m = meta(json!({"name": "a", "namespace": "default", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r1", "uid": "1", "controller": true},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r2", "uid": "2", "controller": true},
        ]}));
        let errs = validate_object_meta(info("pods"), &m);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.ends_with(
            "Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/r1 and ReplicaSet/r2"
        ));
    }

    #[test]
    fn identity_is_immutable_on_update() {
        let old = meta(json!({"name": "a", "namespace": "default", "uid": "1"}));
        let new = meta(json!({"name": "a", "namespace": "default", "uid": "2"}));
        let got: Vec<String> = validate_object_meta_update(&new, &old).iter().map(FieldError::to_string_with_field).collect();
        assert_eq!(got, vec!["metadata.uid: Invalid value: \"2\": field is immutable"]);
        let deleting = meta(json!({"name": "a", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a/b"]}));
        let mut added = deleting.clone();
        added.finalizers = Some(vec!["a/b".into(), "c/d".into()]);
        let got: Vec<String> = validate_object_meta_update(&added, &deleting).iter().map(FieldError::to_string_with_field).collect();
        assert_eq!(
            got,
            vec!["metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"c/d\"}"]
        );
    }
}
