//! PATCH: changing part of an object without sending all of it.
//!
//! A `PUT` replaces the whole object and fails with 409 when someone else
//! wrote in between. A `PATCH` sends only the change, and the api-server
//! applies it to whatever is stored *now*, inside the same read-modify-write
//! loop an update uses (`Registry::guaranteed_update`). That is why
//! `kubectl scale`, `kubectl label` and `kubectl apply` rarely conflict:
//! they describe a change, not a snapshot. The `Content-Type` says which of
//! three languages the change is written in:
//!
//! - **JSON patch** (`application/json-patch+json`, RFC 6902): a list of
//!   operations — `add`, `remove`, `replace`, `move`, `copy`, `test` — on
//!   JSON pointers such as `/spec/template/spec/containers/0/image`. Exact,
//!   but it addresses list items by position.
//! - **JSON merge patch** (`application/merge-patch+json`, RFC 7386): a
//!   partial object; maps merge recursively, `null` deletes a key, and a
//!   list in the patch replaces the stored list wholesale. `kubectl scale`
//!   sends `{"spec":{"replicas":3}}` this way.
//! - **Strategic merge patch** (`application/strategic-merge-patch+json`),
//!   Kubernetes' own: a merge patch that knows which lists are really sets
//!   of named things. Patching `containers: [{name: web, image: v2}]`
//!   updates the container called `web` instead of throwing the others
//!   away. It also carries *directives*, keys starting with `$` that
//!   client-side `kubectl apply` computes: `$patch: delete` and
//!   `$patch: replace`, `$setElementOrder/<list>`, `$retainKeys` and
//!   `$deleteFromPrimitiveList/<list>`. Upstream lives in
//!   `k8s.io/apimachinery/pkg/util/strategicpatch`; its server-side half
//!   (`StrategicMergeMapPatch`) is what this module re-tells.
//!
//! The fourth type, server-side apply (`application/apply-patch+yaml`),
//! needs managed fields and field ownership, which tinykube does not keep:
//! [`apply`] answers it with 415, which kubectl reports as "Server-side
//! apply not available on the server".
//!
//! # Where the list strategies come from
//!
//! Upstream reads each list's strategy from Go struct tags on the typed
//! object (`patchStrategy:"merge" patchMergeKey:"name"` on
//! `PodSpec.Containers`), walking the Go type with `reflect` as it walks
//! the patch. tinykube handles objects as JSON, so it needs the same two
//! things from elsewhere: the tags are [`crate::patchmeta`]'s table, and
//! the type of each field is the OpenAPI schema traced from the
//! `k8s-openapi` types ([`crate::openapi::field_type`]) — the same
//! documents from which kubectl computes the patch. Walking down the
//! object and the patch together, the merge always knows which type it is
//! in, so `ports` merges by `containerPort` inside a container and by
//! `port` inside a Service spec, and `finalizers` is a set in `metadata`
//! but atomic in a Namespace's spec. A field without a tag has the default
//! strategy: maps merge, lists are replaced.
//!
//! Where tinykube differs from upstream, on purpose:
//! - Upstream copies a value the stored object lacks verbatim and lets the
//!   typed decoding drop whatever directives it carries. tinykube merges
//!   such a value into an empty one instead, so directives inside it are
//!   obeyed, and no `$` key ever reaches the store.
//! - `$patch: merge` is accepted as "merge as usual"; upstream rejects it
//!   (in a map: "unknown patch type", in a list: "merging lists cannot yet
//!   be specified in the patch").
//! - `$deleteFromPrimitiveList/<list>` against a list the object does not
//!   have is a no-op; upstream stores the deletion list as the list.
//! - A `$setElementOrder` on a list that does not merge is ignored;
//!   upstream can crash on it (it hashes maps).
//!
//! Error codes and messages follow `k8s.io/apiserver/pkg/endpoints/handlers/patch.go`
//! and `interpretStrategicMergePatchError` there; the error texts are
//! upstream's (`k8s.io/apimachinery/pkg/util/mergepatch/errors.go`), with
//! Go's `%v` formatting of maps and lists imitated by `go_fmt`.

use api::{ApiError, ResourceInfo};
use serde_json::{Map, Value};

use crate::patchmeta;

/// The `$patch` key of a directive map.
const DIRECTIVE_MARKER: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Upstream's `maxJSONPatchOperations`: more operations than this is 413.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The patch content types the api-server accepts, in upstream's order.
pub const ACCEPTED_CONTENT_TYPES: [&str; 3] =
    ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"];

/// Which language a PATCH body is written in, chosen by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 operations: `application/json-patch+json`.
    Json,
    /// RFC 7386 merge patch: `application/merge-patch+json`.
    Merge,
    /// Kubernetes' strategic merge patch: `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// Server-side apply: `application/apply-patch+yaml`. Not supported;
    /// [`apply`] answers 415.
    Apply,
}

impl PatchType {
    /// Reads a `Content-Type` header value, ignoring parameters such as
    /// `; charset=utf-8`. `None` for anything else; the caller answers
    /// that with [`unsupported_media_type`].
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The media type this patch type is sent with.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// 415 for a PATCH whose content type the server does not take, with
/// upstream's message (`negotiation.NewUnsupportedMediaTypeError`). kubectl
/// recognises the reason and, for server-side apply, says "Server-side
/// apply not available on the server".
pub fn unsupported_media_type() -> ApiError {
    ApiError {
        code: 415,
        reason: "UnsupportedMediaType".into(),
        message: format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            ACCEPTED_CONTENT_TYPES.join(", ")
        ),
        details: None,
    }
}

/// Applies `patch`, written in `kind`, to `original` (the stored object,
/// as JSON) and returns the patched object. The result still has to go
/// through the kind's strategy (defaulting, validation) like any update.
///
/// `info` names the resource; the strategic merge reads the object's own
/// `kind` first (a `/scale` patch works on a `Scale`), then `info.kind`.
pub fn apply(kind: PatchType, info: &ResourceInfo, original: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    match kind {
        PatchType::Json => json_patch(original, patch),
        PatchType::Merge => merge_patch(original, patch),
        PatchType::StrategicMerge => {
            let object_kind = original.get("kind").and_then(Value::as_str).unwrap_or(info.kind);
            strategic_merge_patch(object_kind, original, patch)
        }
        PatchType::Apply => Err(unsupported_media_type()),
    }
}

/// 422 exactly as upstream builds it for a patch that cannot be applied
/// (`NewGenericServerResponse(422, ...)`): the detailed reason is not sent,
/// only this fixed sentence, so kubectl prints "The request is invalid:
/// the server rejected our request due to an error in our request".
fn unprocessable() -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid".into(),
        message: "the server rejected our request due to an error in our request".into(),
        details: Some(Box::default()),
    }
}

/// RFC 6902. A body that is not a JSON list is 400; an operation that is
/// malformed (unknown `op`, missing `path`) or fails (a `test` that does
/// not match, a path that does not exist) is upstream's generic 422.
fn json_patch(original: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Value::Array(ops) = &raw else {
        return Err(ApiError::bad_request(format!("json: cannot unmarshal {} into Go value of type jsonpatch.Patch", go_json_kind(&raw))));
    };
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError::too_large(format!(
            "Request entity too large: The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let operations: json_patch::Patch = serde_json::from_value(raw).map_err(|e| {
        tracing::debug!(error = %e, "JSON patch has a malformed operation");
        unprocessable()
    })?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &operations).map_err(|e| {
        tracing::debug!(error = %e, "JSON patch failed");
        unprocessable()
    })?;
    Ok(doc)
}

/// RFC 7386. Upstream (evanphx/json-patch `MergePatch`) calls a body that
/// is not JSON, or is `null`, "Invalid JSON Patch" (400). A body that is
/// JSON but not an object would replace the whole object; that can never
/// decode as one, so it gets the same 400 here.
fn merge_patch(original: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body).map_err(|_| ApiError::bad_request("Invalid JSON Patch"))?;
    if !patch.is_object() {
        return Err(ApiError::bad_request("Invalid JSON Patch"));
    }
    let mut doc = original.clone();
    json_patch::merge(&mut doc, &patch);
    Ok(doc)
}

/// Kubernetes' strategic merge patch, server side: upstream's
/// `StrategicMergeMapPatch` with `MergeParallelList` and
/// `IgnoreUnmatchedNulls` set.
fn strategic_merge_patch(object_kind: &str, original: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            go_json_kind(&patch)
        )));
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let merged = merge_map(original, patch, Schema::root(object_kind))?;
    Ok(Value::Object(merged))
}

/// Why a strategic merge patch failed, sorted by the HTTP answer upstream
/// gives (`interpretStrategicMergePatchError`). Converted to an
/// [`ApiError`] in exactly one place, the `From` impl below.
#[derive(Debug, thiserror::Error)]
enum SmpError {
    /// A malformed directive: upstream's 400 `BadRequest` cases
    /// (`ErrBadPatchFormatForRetainKeys`, `...ForPrimitiveList`,
    /// `...ForSetElementOrderList`).
    #[error("{0}")]
    BadRequest(String),
    /// A list of lists (`ErrNoListOfLists`): upstream's generic 422.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// Everything else (a missing merge key, an unknown `$patch` value,
    /// mixed element types): upstream passes the plain Go error up, which
    /// the handler turns into a 500 `Status` with an empty reason and the
    /// error text as message.
    #[error("{0}")]
    Other(String),
}

impl From<SmpError> for ApiError {
    fn from(e: SmpError) -> Self {
        match e {
            SmpError::BadRequest(m) => ApiError::bad_request(m),
            SmpError::ListOfLists => {
                tracing::debug!("strategic merge patch: lists of lists are not supported");
                unprocessable()
            }
            SmpError::Other(message) => ApiError { code: 500, reason: String::new(), message, details: None },
        }
    }
}

fn bad_retain_keys() -> SmpError {
    SmpError::BadRequest("invalid patch format of retainKeys".into())
}

fn bad_primitive_list() -> SmpError {
    SmpError::BadRequest("invalid patch format of primitive list".into())
}

fn bad_set_element_order() -> SmpError {
    SmpError::BadRequest("invalid patch format of setElementOrder list".into())
}

/// `mergepatch.ErrBadArgType`: a list was expected.
fn not_a_list(actual: &Value) -> SmpError {
    SmpError::Other(format!("expected a []interface {{}}, but received a {}", go_type(actual)))
}

/// `mergepatch.ErrNoMergeKey`.
fn no_merge_key(item: &Map<String, Value>, key: &str) -> SmpError {
    SmpError::Other(format!("map: {} does not contain declared merge key: {key}", go_fmt_map(item)))
}

/// `mergepatch.ErrBadPatchType`.
fn bad_patch_type(directive: &Value, item: &Map<String, Value>) -> SmpError {
    SmpError::Other(format!("unknown patch type: {} in map: {}", go_fmt(directive), go_fmt_map(item)))
}

// ---------------------------------------------------------------------
// Where the merge is: types and their tags.
// ---------------------------------------------------------------------

/// The type a map being merged has: the short name of its schema
/// (`PodSpec`), or `None` where no schema is known, so maps merge and
/// lists replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Schema(Option<&'static str>);

/// How a list field merges, upstream's `patchStrategy` and `patchMergeKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    /// No strategy (or `+listType=atomic`): the patch's list replaces.
    Replace,
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: items are maps
    /// matched by the value of this key.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` on a list of scalars: a set.
    MergeSet,
}

/// What the merge knows about one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    /// How the field merges if it is a list.
    list: ListStrategy,
    /// The type of the field's value, or of its items if it is a list.
    schema: Schema,
}

impl Schema {
    /// The schema at the top of an object of `kind`: the documents name a
    /// kind's schema by its kind.
    fn root(kind: &str) -> Schema {
        Schema(crate::openapi::type_name(kind))
    }
}

/// How `name`, a field of a map of type `parent`, merges, and what type
/// its value has.
fn field(parent: Schema, name: &str) -> Field {
    let Schema(Some(type_name)) = parent else {
        return Field { list: ListStrategy::Replace, schema: Schema(None) };
    };
    let list = match patchmeta::lookup(type_name, name) {
        Some(meta) if meta.merges() => match meta.merge_key {
            Some(key) => ListStrategy::MergeByKey(key),
            None => ListStrategy::MergeSet,
        },
        _ => ListStrategy::Replace,
    };
    Field { list, schema: Schema(crate::openapi::field_type(type_name, name)) }
}

// ---------------------------------------------------------------------
// The merge.
// ---------------------------------------------------------------------

/// Merges `patch` into `original`, both maps of type `schema`
/// (upstream's `mergeMap`). In order: a `$patch` directive on the map
/// itself; `$retainKeys`; each `$setElementOrder/<list>` with its list;
/// then every other key — `null` deletes, maps recurse, lists merge by
/// their strategy, anything else replaces.
fn merge_map(mut original: Map<String, Value>, mut patch: Map<String, Value>, schema: Schema) -> Result<Map<String, Value>, SmpError> {
    if let Some(directive) = patch.remove(DIRECTIVE_MARKER) {
        match directive.as_str() {
            // The patch is the new value of this map, not a change to it.
            Some("replace") => return merge_map(Map::new(), patch, schema),
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => {
                patch.insert(DIRECTIVE_MARKER.into(), directive.clone());
                return Err(bad_patch_type(&directive, &patch));
            }
        }
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_set_element_order(&mut original, &mut patch, schema)?;

    for (key, value) in patch {
        if let Some(rest) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let list_key = rest.strip_prefix('/').filter(|k| !k.is_empty()).ok_or_else(bad_primitive_list)?;
            let Value::Array(doomed) = value else { return Err(bad_primitive_list()) };
            if let Some(Value::Array(list)) = original.get_mut(list_key) {
                list.retain(|v| !doomed.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            // An unknown directive: upstream copies it in and the typed
            // decoding drops it again. Dropping it here has the same effect.
            continue;
        }
        if value.is_null() {
            original.remove(&key);
            continue;
        }
        let f = field(schema, &key);
        let merged = match (original.remove(&key), value) {
            (Some(Value::Object(o)), Value::Object(p)) => Value::Object(merge_map(o, p, f.schema)?),
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(merge_list(o, p, f)?),
            // Absent, or of another JSON type: the patch's value wins.
            (_, v) => materialize(v, f)?,
        };
        original.insert(key, merged);
    }
    Ok(original)
}

/// A patch value the object does not have yet, merged into nothing so its
/// directives are obeyed and removed.
fn materialize(value: Value, f: Field) -> Result<Value, SmpError> {
    Ok(match value {
        Value::Object(p) => Value::Object(merge_map(Map::new(), p, f.schema)?),
        Value::Array(p) => Value::Array(merge_list(Vec::new(), p, f)?),
        scalar => scalar,
    })
}

/// `$retainKeys: [a, b]`: keys of the stored map not in the list are
/// cleared, so switching a Deployment's `strategy` to `Recreate` drops
/// `rollingUpdate`. Every key the patch sets must be in the list.
fn apply_retain_keys(original: &mut Map<String, Value>, patch: &mut Map<String, Value>) -> Result<(), SmpError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else { return Ok(()) };
    let Value::Array(retain) = retain else { return Err(bad_retain_keys()) };
    let kept = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_FROM_PRIMITIVE_LIST) || k.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if !kept(k) {
            return Err(bad_retain_keys());
        }
    }
    original.retain(|k, _| kept(k));
    Ok(())
}

/// `$setElementOrder/<list>: [...]` (upstream's `mergePatchIntoOriginal`):
/// merges `<list>` from the patch, then orders the result — items the
/// directive names in its order, the others where they were on the
/// server. Client-side apply sends it for every merging list it touches,
/// naming the items in the order of the user's manifest.
fn apply_set_element_order(original: &mut Map<String, Value>, patch: &mut Map<String, Value>, schema: Schema) -> Result<(), SmpError> {
    let directives: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for directive in directives {
        let Some(order) = patch.remove(&directive) else { continue };
        let list_key = directive
            .strip_prefix(SET_ELEMENT_ORDER)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|k| !k.is_empty())
            .ok_or_else(bad_set_element_order)?
            .to_string();
        let Value::Array(order) = order else { return Err(not_a_list(&order)) };
        let f = field(schema, &list_key);
        let original_list = match original.remove(&list_key) {
            Some(Value::Array(l)) => Some(l),
            Some(other) => return Err(not_a_list(&other)),
            None => None,
        };
        let patch_list = match patch.remove(&list_key) {
            Some(Value::Array(l)) => Some(l),
            Some(other) => return Err(not_a_list(&other)),
            None => None,
        };
        let merge_key = match f.list {
            ListStrategy::MergeByKey(k) => Some(k),
            ListStrategy::MergeSet => None,
            ListStrategy::Replace => {
                // Nothing to order: the patch's list (if any) replaces.
                let merged = match (original_list, patch_list) {
                    (_, Some(p)) => merge_list(Vec::new(), p, f)?,
                    (Some(o), None) => o,
                    (None, None) => continue,
                };
                original.insert(list_key, Value::Array(merged));
                continue;
            }
        };
        if let Some(p) = &patch_list {
            validate_patch_with_set_order(p, &order, merge_key)?;
        }
        let server_order: Vec<Value> = match &original_list {
            Some(o) => identities(o, merge_key)?,
            None => Vec::new(),
        };
        let merged = match (original_list, patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => merge_list(Vec::new(), p, f)?,
            (Some(o), Some(p)) => merge_list(o, p, f)?,
            (None, None) => continue,
        };
        let wanted = identities(&order, merge_key)?;
        let (in_order, server_only): (Vec<Value>, Vec<Value>) =
            merged.into_iter().partition(|item| wanted.contains(&identity(item, merge_key)));
        let sorted = normalize_element_order(in_order, server_only, &wanted, &server_order, merge_key);
        original.insert(list_key, Value::Array(sorted));
    }
    Ok(())
}

/// Upstream's `validatePatchWithSetOrderList`: the items the patch sends
/// (apart from deletions and directive items) must appear in the
/// `$setElementOrder` list, in the same relative order.
fn validate_patch_with_set_order(patch_list: &[Value], order: &[Value], merge_key: Option<&str>) -> Result<(), SmpError> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut items = Vec::new();
    for item in patch_list {
        if merge_key.is_some() {
            let Value::Object(m) = item else {
                return Err(SmpError::Other(format!("expected a map[string]interface {{}}, but received a {}", go_type(item))));
            };
            if m.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        items.push(item);
    }
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if items[p].get(DIRECTIVE_MARKER).is_some() {
            p += 1;
            continue;
        }
        if identity_checked(items[p], merge_key)? == identity_checked(&order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() {
        return Err(SmpError::Other(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_fmt(&Value::Array(patch_list.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

/// Merges a patch list into a stored list by the field's strategy
/// (upstream's `mergeSliceHandler` and `mergeSlice`).
fn merge_list(original: Vec<Value>, patch: Vec<Value>, f: Field) -> Result<Vec<Value>, SmpError> {
    let item_field = Field { list: ListStrategy::Replace, schema: f.schema };
    let merge_key = match f.list {
        ListStrategy::Replace => return patch.into_iter().map(|item| materialize(item, item_field)).collect(),
        ListStrategy::MergeByKey(key) => Some(key),
        ListStrategy::MergeSet => None,
    };
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let maps = match element_kind(&original, &patch)? {
        ElementKind::Map => true,
        ElementKind::Scalar => false,
    };
    match (maps, merge_key) {
        (false, _) => Ok(merge_scalar_set(original, patch)),
        (true, Some(key)) => merge_keyed_maps(original, patch, key, f.schema),
        (true, None) => Err(SmpError::Other("cannot merge lists without merge key for type map".into())),
    }
}

/// A list of scalars with the merge strategy, such as `finalizers`: the
/// union, each value once. Values the patch names are ordered as in the
/// patch; the others keep their place (see [`merge_sorted`]).
fn merge_scalar_set(original: Vec<Value>, patch: Vec<Value>) -> Vec<Value> {
    let server_order = original.clone();
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for v in original.into_iter().chain(patch.iter().cloned()) {
        if !merged.contains(&v) {
            merged.push(v);
        }
    }
    let (in_patch, server_only): (Vec<Value>, Vec<Value>) = merged.into_iter().partition(|v| patch.contains(v));
    normalize_element_order(in_patch, server_only, &patch, &server_order, None)
}

/// A list of maps merged by `key`, such as `containers` by `name`: items
/// with `$patch: delete` remove the stored item with that key; an item
/// `{"$patch": "replace"}` makes the rest of the patch list the new list;
/// other items merge into the stored item with the same key, or are added.
fn merge_keyed_maps(original: Vec<Value>, patch: Vec<Value>, key: &'static str, schema: Schema) -> Result<Vec<Value>, SmpError> {
    let mut original = original;
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(mut m) = item else { return unreachable_kind() };
        let Some(directive) = m.get(DIRECTIVE_MARKER).cloned() else {
            plain.push(m);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(doomed) = m.get(key) else { return Err(no_merge_key(&m, key)) };
                original.retain(|o| o.get(key) != Some(doomed));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                m.remove(DIRECTIVE_MARKER);
                plain.push(m);
            }
            _ => return Err(bad_patch_type(&directive, &m)),
        }
    }
    let item_field = Field { list: ListStrategy::Replace, schema };
    if replace {
        // Upstream keeps the replacement in the patch's order.
        return plain.into_iter().map(|m| materialize(Value::Object(m), item_field)).collect();
    }

    let server_order = identities(&original, Some(key))?;
    let mut patch_order = Vec::with_capacity(plain.len());
    for m in plain {
        let Some(id) = m.get(key).cloned() else { return Err(no_merge_key(&m, key)) };
        patch_order.push(id.clone());
        match original.iter().position(|o| o.get(key) == Some(&id)) {
            Some(i) => {
                let Value::Object(stored) = std::mem::take(&mut original[i]) else { return unreachable_kind() };
                original[i] = Value::Object(merge_map(stored, m, schema)?);
            }
            None => original.push(materialize(Value::Object(m), item_field)?),
        }
    }
    let (in_patch, server_only): (Vec<Value>, Vec<Value>) =
        original.into_iter().partition(|item| patch_order.contains(&identity(item, Some(key))));
    Ok(normalize_element_order(in_patch, server_only, &patch_order, &server_order, Some(key)))
}

/// The error for an item whose JSON type [`element_kind`] already checked.
fn unreachable_kind<T>() -> Result<T, SmpError> {
    Err(SmpError::Other("invalid element type in merging list".into()))
}

/// What a merging list holds.
enum ElementKind {
    Map,
    Scalar,
}

/// Upstream's `sliceElementType`: all items of both lists must have the
/// same JSON type, and lists of lists are refused.
fn element_kind(original: &[Value], patch: &[Value]) -> Result<ElementKind, SmpError> {
    let mut seen: Option<u8> = None;
    for v in original.iter().chain(patch) {
        let tag = match v {
            Value::Array(_) => return Err(SmpError::ListOfLists),
            Value::Object(_) => 0,
            Value::String(_) => 1,
            Value::Number(_) => 2,
            Value::Bool(_) => 3,
            Value::Null => 4,
        };
        match seen {
            None => seen = Some(tag),
            Some(t) if t == tag => {}
            Some(_) => {
                return Err(SmpError::Other(format!(
                    "list element types are not identical: [{} {}]",
                    go_fmt(&Value::Array(original.to_vec())),
                    go_fmt(&Value::Array(patch.to_vec()))
                )))
            }
        }
    }
    Ok(if seen == Some(0) { ElementKind::Map } else { ElementKind::Scalar })
}

/// What identifies a list item: its merge key's value, or the scalar itself.
fn identity(item: &Value, merge_key: Option<&str>) -> Value {
    match merge_key {
        Some(k) => item.get(k).cloned().unwrap_or(Value::Null),
        None => item.clone(),
    }
}

/// [`identity`], failing like upstream when a map lacks its merge key.
fn identity_checked(item: &Value, merge_key: Option<&str>) -> Result<Value, SmpError> {
    match (merge_key, item) {
        (Some(k), Value::Object(m)) => m.get(k).cloned().ok_or_else(|| no_merge_key(m, k)),
        (Some(_), other) => Err(SmpError::Other(format!("expected a map[string]interface {{}}, but received a {}", go_type(other)))),
        (None, v) => Ok(v.clone()),
    }
}

fn identities(items: &[Value], merge_key: Option<&str>) -> Result<Vec<Value>, SmpError> {
    items.iter().map(|i| identity_checked(i, merge_key)).collect()
}

/// Upstream's `normalizeElementOrder`: the items the patch names sorted by
/// `patch_order`, the server-only items sorted by `server_order`, then the
/// two interleaved by [`merge_sorted`].
fn normalize_element_order(
    mut in_patch: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let position = |order: &[Value], item: &Value| {
        let id = identity(item, merge_key);
        order.iter().position(|o| *o == id)
    };
    // Stable sorts; an item missing from the order goes last.
    in_patch.sort_by_key(|item| position(patch_order, item).unwrap_or(usize::MAX));
    server_only.sort_by_key(|item| position(server_order, item).unwrap_or(usize::MAX));
    merge_sorted(server_only, in_patch, |item| position(server_order, item))
}

/// Upstream's `mergeSortedSlice`: walks both lists and takes the
/// server-only item first only when both items were on the server and it
/// came earlier there; otherwise the patch item goes first. So a new item
/// lands right after the patch item before it — or, with no patch item
/// before it, ahead of the server-only items. That is why kubectl always
/// sends `$setElementOrder`: without it a new container or finalizer is
/// put first.
fn merge_sorted(server_only: Vec<Value>, in_patch: Vec<Value>, server_index: impl Fn(&Value) -> Option<usize>) -> Vec<Value> {
    let mut out = Vec::with_capacity(server_only.len() + in_patch.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = in_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!((server_index(l), server_index(r)), (Some(li), Some(ri)) if li < ri),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

// ---------------------------------------------------------------------
// Go-style formatting, so error texts read like upstream's.
// ---------------------------------------------------------------------

/// Go's `%v` of a decoded JSON value: `map[a:1 b:[x y]]`, `<nil>`.
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => go_fmt_map(m),
    }
}

fn go_fmt_map(m: &Map<String, Value>) -> String {
    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    format!("map[{}]", entries.iter().map(|(k, v)| format!("{k}:{}", go_fmt(v))).collect::<Vec<_>>().join(" "))
}

/// The Go type a decoded JSON value has, as `reflect.TypeOf` prints it.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "%!s(<nil>)",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// The JSON kind Go's decoder names in "cannot unmarshal X into ...".
fn go_json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(resource: &str, group: &str) -> &'static ResourceInfo {
        api::resources::by_resource(group, resource).expect("resource in the table")
    }

    /// No `$` key anywhere: directives never reach the store.
    fn assert_no_directives(v: &Value, path: &str) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    assert!(!k.starts_with('$'), "directive {k} left at {path}");
                    assert_no_directives(v, &format!("{path}.{k}"));
                }
            }
            Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| assert_no_directives(v, &format!("{path}[{i}]"))),
            _ => {}
        }
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "default", "uid": "u-1",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "finalizers": ["a.example/one", "b.example/two"]
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web", "image": "nginx:1.27",
                                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                "env": [
                                    {"name": "GREETING", "value": "hello"},
                                    {"name": "X", "value": "x"},
                                    {"name": "Z", "value": "z"}
                                ]
                            },
                            {"name": "sidecar", "image": "busybox", "args": ["sleep", "3600"]}
                        ],
                        "tolerations": [{"key": "k", "operator": "Exists"}]
                    }
                }
            },
            "status": {
                "replicas": 2,
                "conditions": [
                    {"type": "Available", "status": "True"},
                    {"type": "Progressing", "status": "True"}
                ]
            }
        })
    }

    fn pod_spec(v: &Value) -> &Value {
        &v["spec"]["template"]["spec"]
    }

    fn names(list: &Value, key: &str) -> Vec<String> {
        list.as_array()
            .map(|a| a.iter().map(|i| i[key].as_str().map(str::to_string).unwrap_or_else(|| i[key].to_string())).collect())
            .unwrap_or_default()
    }

    #[test]
    fn content_types() {
        for (ct, want) in [
            ("application/json-patch+json", Some(PatchType::Json)),
            ("application/merge-patch+json", Some(PatchType::Merge)),
            ("application/strategic-merge-patch+json", Some(PatchType::StrategicMerge)),
            ("application/strategic-merge-patch+json; charset=utf-8", Some(PatchType::StrategicMerge)),
            ("Application/Merge-Patch+JSON", Some(PatchType::Merge)),
            ("application/apply-patch+yaml", Some(PatchType::Apply)),
            ("application/json", None),
            ("", None),
        ] {
            assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
            if let Some(t) = want {
                assert_eq!(PatchType::from_content_type(t.content_type()), Some(t));
            }
        }
    }

    /// One strategic merge case: a patch against [`deployment`] and what
    /// must hold afterwards.
    struct Case {
        name: &'static str,
        patch: Value,
        check: fn(&Value),
    }

    #[test]
    fn strategic_merge_on_a_deployment() {
        let cases = [
            Case {
                // What kubectl 1.32 `apply` sends after GREETING changed in
                // the manifest (and the sidecar and X were never in it).
                name: "kubectl apply edit",
                patch: json!({
                    "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}\n"}},
                    "spec": {"template": {"spec": {
                        "$setElementOrder/containers": [{"name": "web"}],
                        "containers": [{"env": [{"name": "GREETING", "value": "bonjour"}], "name": "web"}]
                    }}}
                }),
                check: |v| {
                    let web = &pod_spec(v)["containers"][0];
                    assert_eq!(web["name"], "web");
                    assert_eq!(web["image"], "nginx:1.27", "untouched fields stay");
                    assert_eq!(names(&web["env"], "name"), ["GREETING", "X", "Z"]);
                    assert_eq!(web["env"][0]["value"], "bonjour");
                    assert_eq!(names(&pod_spec(v)["containers"], "name"), ["web", "sidecar"], "server-only items stay");
                    assert_eq!(v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"], "{\"new\":true}\n");
                    assert_eq!(v["metadata"]["labels"]["tier"], "front");
                },
            },
            Case {
                name: "$patch: delete of a container",
                patch: json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [{"$patch": "delete", "name": "sidecar"}]
                }}}}),
                check: |v| assert_eq!(names(&pod_spec(v)["containers"], "name"), ["web"]),
            },
            Case {
                name: "$retainKeys when switching to Recreate",
                patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
                check: |v| assert_eq!(v["spec"]["strategy"], json!({"type": "Recreate"})),
            },
            Case {
                name: "$retainKeys drops keys the patch does not mention",
                patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
                check: |v| assert_eq!(v["spec"]["strategy"], json!({"type": "Recreate"})),
            },
            Case {
                name: "env var removal",
                patch: json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "web", "env": [{"$patch": "delete", "name": "X"}]}
                ]}}}}),
                check: |v| assert_eq!(names(&pod_spec(v)["containers"][0]["env"], "name"), ["GREETING", "Z"]),
            },
            Case {
                name: "$setElementOrder/env reorders and places a new var",
                patch: json!({"spec": {"template": {"spec": {"containers": [{
                    "name": "web",
                    "$setElementOrder/env": [{"name": "Z"}, {"name": "NEW"}, {"name": "GREETING"}, {"name": "X"}],
                    "env": [{"name": "NEW", "value": "n"}]
                }]}}}}),
                check: |v| assert_eq!(names(&pod_spec(v)["containers"][0]["env"], "name"), ["Z", "NEW", "GREETING", "X"]),
            },
            Case {
                name: "$setElementOrder names only some items: the others keep their server place",
                patch: json!({"spec": {"template": {"spec": {"containers": [{
                    "name": "web",
                    "$setElementOrder/env": [{"name": "Z"}, {"name": "GREETING"}]
                }]}}}}),
                check: |v| assert_eq!(names(&pod_spec(v)["containers"][0]["env"], "name"), ["X", "Z", "GREETING"]),
            },
            Case {
                name: "$deleteFromPrimitiveList/finalizers",
                patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/one"]}}),
                check: |v| assert_eq!(v["metadata"]["finalizers"], json!(["b.example/two"])),
            },
            Case {
                name: "finalizers merge as a set; without an order a new one goes first, as upstream",
                patch: json!({"metadata": {"finalizers": ["c.example/three", "a.example/one"]}}),
                check: |v| assert_eq!(v["metadata"]["finalizers"], json!(["c.example/three", "a.example/one", "b.example/two"])),
            },
            Case {
                name: "finalizers with $setElementOrder, as kubectl apply sends them",
                patch: json!({"metadata": {
                    "$setElementOrder/finalizers": ["a.example/one", "b.example/two", "c.example/three"],
                    "finalizers": ["c.example/three"]
                }}),
                check: |v| assert_eq!(v["metadata"]["finalizers"], json!(["a.example/one", "b.example/two", "c.example/three"])),
            },
            Case {
                name: "label deleted with null, another added",
                patch: json!({"metadata": {"labels": {"tier": null, "team": "blue"}}}),
                check: |v| assert_eq!(v["metadata"]["labels"], json!({"app": "web", "team": "blue"})),
            },
            Case {
                name: "a new container without order lands before the server-only ones, as upstream",
                patch: json!({"spec": {"template": {"spec": {"containers": [{"name": "log", "image": "fluentd"}]}}}}),
                check: |v| assert_eq!(names(&pod_spec(v)["containers"], "name"), ["log", "web", "sidecar"]),
            },
            Case {
                name: "a new item follows the patch item before it",
                patch: json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "web", "image": "nginx:1.28"}, {"name": "log", "image": "fluentd"}
                ]}}}}),
                check: |v| {
                    assert_eq!(names(&pod_spec(v)["containers"], "name"), ["web", "log", "sidecar"]);
                    assert_eq!(pod_spec(v)["containers"][0]["image"], "nginx:1.28");
                },
            },
            Case {
                name: "container ports merge by containerPort",
                patch: json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "web", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}
                ]}}}}),
                check: |v| {
                    let ports = &pod_spec(v)["containers"][0]["ports"];
                    assert_eq!(ports, &json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}]));
                },
            },
            Case {
                name: "atomic lists (tolerations, args) are replaced",
                patch: json!({"spec": {"template": {"spec": {
                    "tolerations": [{"key": "other", "operator": "Exists"}],
                    "containers": [{"name": "sidecar", "args": ["sleep", "10"]}]
                }}}}),
                check: |v| {
                    assert_eq!(pod_spec(v)["tolerations"], json!([{"key": "other", "operator": "Exists"}]));
                    assert_eq!(pod_spec(v)["containers"][1]["args"], json!(["sleep", "10"]));
                },
            },
            Case {
                name: "$patch: replace on a map",
                patch: json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}}),
                check: |v| assert_eq!(v["metadata"]["labels"], json!({"only": "this"})),
            },
            Case {
                name: "$patch: replace in a list",
                patch: json!({"spec": {"template": {"spec": {"containers": [
                    {"$patch": "replace"}, {"name": "solo", "image": "alpine"}
                ]}}}}),
                check: |v| assert_eq!(pod_spec(v)["containers"], json!([{"name": "solo", "image": "alpine"}])),
            },
            Case {
                name: "$patch: delete on a map empties it",
                patch: json!({"spec": {"strategy": {"$patch": "delete"}}}),
                check: |v| assert_eq!(v["spec"]["strategy"], json!({})),
            },
            Case {
                name: "$patch: merge is the default",
                patch: json!({"metadata": {"labels": {"$patch": "merge", "team": "blue"}}}),
                check: |v| assert_eq!(v["metadata"]["labels"], json!({"app": "web", "tier": "front", "team": "blue"})),
            },
            Case {
                name: "directives inside a value the object lacks are obeyed",
                patch: json!({"spec": {"template": {"spec": {"initContainers": [
                    {"name": "init", "image": "busybox", "env": [{"name": "A", "value": "1"}, {"$patch": "delete", "name": "B"}]}
                ]}}}}),
                check: |v| assert_eq!(pod_spec(v)["initContainers"][0]["env"], json!([{"name": "A", "value": "1"}])),
            },
            Case {
                name: "status conditions merge by type",
                patch: json!({"status": {"conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}}),
                check: |v| {
                    assert_eq!(names(&v["status"]["conditions"], "type"), ["Available", "Progressing"]);
                    assert_eq!(v["status"]["conditions"][0]["status"], "False");
                },
            },
            Case {
                name: "an unknown directive key is dropped",
                patch: json!({"metadata": {"$frobnicate": 1, "labels": {"x": "y"}}}),
                check: |v| assert_eq!(v["metadata"]["labels"]["x"], "y"),
            },
            Case {
                name: "scale through the main resource",
                patch: json!({"spec": {"replicas": 5}}),
                check: |v| assert_eq!(v["spec"]["replicas"], 5),
            },
        ];
        let deployments = info("deployments", "apps");
        for case in cases {
            let body = serde_json::to_vec(&case.patch).unwrap();
            let out =
                apply(PatchType::StrategicMerge, deployments, &deployment(), &body).unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
            assert_no_directives(&out, case.name);
            (case.check)(&out);
        }
    }

    #[test]
    fn strategic_merge_uses_the_parent_type() {
        let service = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}
        });
        let body = br#"{"spec":{"ports":[{"port":80,"targetPort":9090}]}}"#;
        let out = apply(PatchType::StrategicMerge, info("services", ""), &service, body).unwrap();
        assert_eq!(out["spec"]["ports"], json!([{"port": 80, "targetPort": 9090}, {"port": 443, "targetPort": 8443}]));

        // A Namespace's spec.finalizers is atomic, unlike metadata.finalizers.
        let ns = json!({"kind": "Namespace", "metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes"]}});
        let body = br#"{"spec":{"finalizers":["other"]}}"#;
        let out = apply(PatchType::StrategicMerge, info("namespaces", ""), &ns, body).unwrap();
        assert_eq!(out["spec"]["finalizers"], json!(["other"]));

        // ownerReferences merge by uid.
        let rs = json!({"kind": "ReplicaSet", "metadata": {"name": "r", "ownerReferences": [
            {"uid": "1", "name": "a", "kind": "Deployment"}
        ]}});
        let body = br#"{"metadata":{"ownerReferences":[{"uid":"1","controller":true},{"uid":"2","name":"b","kind":"Deployment"}]}}"#;
        let out = apply(PatchType::StrategicMerge, info("replicasets", "apps"), &rs, body).unwrap();
        assert_eq!(names(&out["metadata"]["ownerReferences"], "uid"), ["1", "2"]);
        assert_eq!(out["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(out["metadata"]["ownerReferences"][0]["name"], "a");

        // A Pod's own spec, and a Scale object (kind read from the object).
        let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "a"}]}});
        let out =
            apply(PatchType::StrategicMerge, info("pods", ""), &pod, br#"{"spec":{"containers":[{"name":"c","image":"b"}]}}"#).unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name": "c", "image": "b"}]));
        let scale = json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": "web"}, "spec": {"replicas": 1}});
        let out = apply(PatchType::StrategicMerge, info("deployments", "apps"), &scale, br#"{"spec":{"replicas":3}}"#).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
    }

    /// Lists deep inside kinds other than Deployments merge by their own
    /// tags too.
    #[test]
    fn strategic_merge_reaches_every_tagged_list() {
        let cases = [
            (
                "a container status's volumeMounts are keyed by mountPath",
                "pods",
                "",
                json!({"kind": "Pod", "metadata": {"name": "p"}, "status": {"containerStatuses": [
                    {"name": "c", "volumeMounts": [{"mountPath": "/a", "name": "a"}, {"mountPath": "/b", "name": "b"}]}
                ]}}),
                // containerStatuses itself is atomic upstream, so the patch's
                // list replaces it; the delete directive is read by mountPath.
                json!({"status": {"containerStatuses": [{"name": "c", "volumeMounts": [
                    {"mountPath": "/b", "readOnly": true}, {"$patch": "delete", "mountPath": "/a"}
                ]}]}}),
                "/status/containerStatuses/0/volumeMounts",
                json!([{"mountPath": "/b", "readOnly": true}]),
            ),
            (
                "an ephemeral container's env merges by name",
                "pods",
                "",
                json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"ephemeralContainers": [
                    {"name": "debug", "env": [{"name": "A", "value": "1"}]}
                ]}}),
                json!({"spec": {"ephemeralContainers": [{"name": "debug", "env": [{"name": "B", "value": "2"}]}]}}),
                "/spec/ephemeralContainers/0/env",
                json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]),
            ),
            (
                "a DaemonSet's template containers merge by name",
                "daemonsets",
                "apps",
                json!({"kind": "DaemonSet", "metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [
                    {"name": "a", "image": "x"}, {"name": "b", "image": "y"}
                ]}}}}),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "z"}]}}}}),
                "/spec/template/spec/containers",
                json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}]),
            ),
            (
                "a volume claim template's status conditions merge by type",
                "statefulsets",
                "apps",
                json!({"kind": "StatefulSet", "metadata": {"name": "s"}, "spec": {"volumeClaimTemplates": [
                    {"metadata": {"name": "data"}, "status": {"conditions": [{"type": "Resizing", "status": "True"}]}}
                ]}}),
                // volumeClaimTemplates is atomic: the item is replaced, but
                // inside it the conditions are a keyed list again.
                json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "status": {"conditions": [
                    {"type": "Resizing", "status": "False"}, {"$patch": "delete", "type": "Gone"}
                ]}}]}}),
                "/spec/volumeClaimTemplates/0/status/conditions",
                json!([{"type": "Resizing", "status": "False"}]),
            ),
            (
                "a Namespace's status conditions merge by type",
                "namespaces",
                "",
                json!({"kind": "Namespace", "metadata": {"name": "n"}, "status": {"conditions": [
                    {"type": "NamespaceDeletionDiscoveryFailure", "status": "False"}
                ]}}),
                json!({"status": {"conditions": [{"type": "NamespaceContentRemaining", "status": "True"}]}}),
                "/status/conditions",
                json!([{"type": "NamespaceContentRemaining", "status": "True"}, {"type": "NamespaceDeletionDiscoveryFailure", "status": "False"}]),
            ),
            (
                "a Node's podCIDRs merge as a set",
                "nodes",
                "",
                json!({"kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.0.0.0/24"]}}),
                json!({"spec": {"podCIDRs": ["fd00::/64"]}}),
                "/spec/podCIDRs",
                json!(["fd00::/64", "10.0.0.0/24"]),
            ),
        ];
        for (name, resource, group, object, patch, pointer, want) in cases {
            let body = serde_json::to_vec(&patch).unwrap();
            let out = apply(PatchType::StrategicMerge, info(resource, group), &object, &body).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_no_directives(&out, name);
            assert_eq!(out.pointer(pointer), Some(&want), "{name}: {out}");
        }
    }

    #[test]
    fn merge_patch() {
        let d = info("deployments", "apps");
        for (name, patch, check) in [
            ("kubectl scale", json!({"spec": {"replicas": 3}}), (|v: &Value| assert_eq!(v["spec"]["replicas"], 3)) as fn(&Value)),
            ("label null-delete", json!({"metadata": {"labels": {"tier": null}}}), |v: &Value| {
                assert_eq!(v["metadata"]["labels"], json!({"app": "web"}))
            }),
            // No strategy: the list is the patch's list, the sidecar is gone.
            ("lists replace", json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}}}), |v: &Value| {
                assert_eq!(pod_spec(v)["containers"], json!([{"name": "web", "image": "x"}]))
            }),
        ] {
            let out =
                apply(PatchType::Merge, d, &deployment(), &serde_json::to_vec(&patch).unwrap()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            check(&out);
        }
    }

    #[test]
    fn json_patch_ops() {
        let d = info("deployments", "apps");
        let body = br#"[
            {"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"},
            {"op":"add","path":"/metadata/labels/app.kubernetes.io~1name","value":"web"},
            {"op":"remove","path":"/metadata/labels/tier"},
            {"op":"test","path":"/spec/replicas","value":2}
        ]"#;
        let out = apply(PatchType::Json, d, &deployment(), body).unwrap();
        assert_eq!(pod_spec(&out)["containers"][0]["image"], "nginx:1.28");
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "app.kubernetes.io/name": "web"}));
    }

    #[test]
    fn errors_have_upstream_codes() {
        let d = info("deployments", "apps");
        let cases: &[(&str, PatchType, &str, u16, &str)] = &[
            ("bad JSON, JSON patch", PatchType::Json, "[{", 400, "BadRequest"),
            ("JSON patch not a list", PatchType::Json, r#"{"op":"add"}"#, 400, "BadRequest"),
            ("unknown op", PatchType::Json, r#"[{"op":"frob","path":"/a"}]"#, 422, "Invalid"),
            ("failed test op", PatchType::Json, r#"[{"op":"test","path":"/spec/replicas","value":7}]"#, 422, "Invalid"),
            ("missing path", PatchType::Json, r#"[{"op":"remove","path":"/spec/nothing/here"}]"#, 422, "Invalid"),
            ("bad JSON, merge", PatchType::Merge, "{", 400, "BadRequest"),
            ("null merge patch", PatchType::Merge, "null", 400, "BadRequest"),
            ("bad JSON, strategic", PatchType::StrategicMerge, "{\"a\":", 400, "BadRequest"),
            ("strategic patch not an object", PatchType::StrategicMerge, "[1]", 400, "BadRequest"),
            ("unknown $patch value", PatchType::StrategicMerge, r#"{"metadata":{"labels":{"$patch":"frob"}}}"#, 500, ""),
            (
                "unknown $patch in a list",
                PatchType::StrategicMerge,
                r#"{"spec":{"template":{"spec":{"containers":[{"$patch":"frob","name":"web"}]}}}}"#,
                500,
                "",
            ),
            (
                "delete without merge key",
                PatchType::StrategicMerge,
                r#"{"spec":{"template":{"spec":{"containers":[{"$patch":"delete"}]}}}}"#,
                500,
                "",
            ),
            (
                "item without merge key",
                PatchType::StrategicMerge,
                r#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
                500,
                "",
            ),
            ("$retainKeys not a list", PatchType::StrategicMerge, r#"{"spec":{"strategy":{"$retainKeys":"type"}}}"#, 400, "BadRequest"),
            (
                "$retainKeys misses a patched key",
                PatchType::StrategicMerge,
                r#"{"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{}}}}"#,
                400,
                "BadRequest",
            ),
            (
                "bad $deleteFromPrimitiveList",
                PatchType::StrategicMerge,
                r#"{"metadata":{"$deleteFromPrimitiveList":["a"]}}"#,
                400,
                "BadRequest",
            ),
            ("bad $setElementOrder", PatchType::StrategicMerge, r#"{"metadata":{"$setElementOrder":["a"]}}"#, 400, "BadRequest"),
            (
                "order does not match patch",
                PatchType::StrategicMerge,
                r#"{"metadata":{"$setElementOrder/finalizers":["a"],"finalizers":["b"]}}"#,
                500,
                "",
            ),
            ("list of lists", PatchType::StrategicMerge, r#"{"metadata":{"finalizers":[["a"]]}}"#, 422, "Invalid"),
            ("mixed element types", PatchType::StrategicMerge, r#"{"metadata":{"finalizers":[1]}}"#, 500, ""),
            ("server-side apply", PatchType::Apply, "{}", 415, "UnsupportedMediaType"),
        ];
        for (name, kind, body, code, reason) in cases {
            let err = apply(*kind, d, &deployment(), body.as_bytes()).expect_err(name);
            assert_eq!((err.code, err.reason.as_str()), (*code, *reason), "{name}: {}", err.message);
        }
    }

    #[test]
    fn error_messages_read_like_upstream() {
        let d = info("deployments", "apps");
        let err = apply(PatchType::StrategicMerge, d, &deployment(), br#"{"metadata":{"labels":{"$patch":"frob","a":"b"}}}"#).unwrap_err();
        assert_eq!(err.message, "unknown patch type: frob in map: map[$patch:frob a:b]");
        let err = apply(
            PatchType::StrategicMerge,
            d,
            &deployment(),
            br#"{"spec":{"template":{"spec":{"containers":[{"$patch":"delete","image":"x"}]}}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.message, "map: map[$patch:delete image:x] does not contain declared merge key: name");
        let err = apply(PatchType::Json, d, &deployment(), br#"[{"op":"test","path":"/spec/replicas","value":7}]"#).unwrap_err();
        assert_eq!(err.message, "the server rejected our request due to an error in our request");
        assert_eq!(err.to_status_json()["details"], json!({}));
        let err = apply(PatchType::Apply, d, &deployment(), b"{}").unwrap_err();
        assert!(err
            .message
            .starts_with("the body of the request was in an unknown format - accepted media types include: application/json-patch+json"));
    }

    #[test]
    fn too_many_json_patch_operations() {
        let ops: Vec<Value> =
            (0..=MAX_JSON_PATCH_OPERATIONS).map(|_| json!({"op": "test", "path": "/kind", "value": "Deployment"})).collect();
        let err = apply(PatchType::Json, info("deployments", "apps"), &deployment(), &serde_json::to_vec(&ops).unwrap()).unwrap_err();
        assert_eq!(err.code, 413);
    }
}
