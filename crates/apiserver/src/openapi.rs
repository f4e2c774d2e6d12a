//! OpenAPI documents: how clients learn the shape of every kind.
//!
//! kube-apiserver publishes its API as OpenAPI. kubectl reads it for three
//! things: whether the server checks fields itself (a `fieldValidation`
//! query parameter on a kind's PATCH operation — then `kubectl apply`
//! sends `?fieldValidation=Strict` and skips its own check), how lists
//! inside an object merge in a strategic merge patch
//! (`x-kubernetes-patch-merge-key: name` on `containers`), and the fields
//! `kubectl explain` prints. Since 1.27 the documents are OpenAPI 3.0, one
//! per group-version: `/openapi/v3` lists them, each under a
//! `serverRelativeURL` carrying a content hash so clients can cache them
//! forever, and `/openapi/v3/apis/apps/v1?hash=...` is the document.
//!
//! Upstream generates the schemas from the Go types at build time.
//! tinykube derives them at run time from the `k8s-openapi` types the
//! server decodes requests with: a tracing [`Deserializer`] walks a type's
//! own `Deserialize` impl, which names every field it accepts
//! (`deserialize_struct(name, fields, ...)`) and asks for each value in
//! its type (`deserialize_i32`, `deserialize_seq`, a `Time` newtype...).
//! So the published schema lists exactly the fields the server accepts —
//! the same fields [`crate::fieldvalidation`] calls known. What the Rust
//! types do not carry is added from a small table: upstream's
//! `patchStrategy`/`patchMergeKey` struct tags ([`crate::patchmeta`]).
//! The server applies strategic merge patches by the same schemas
//! ([`field_type`] tells [`crate::patch`] which type a field holds), so
//! what kubectl computes and what the server applies cannot disagree.
//!
//! Where tinykube simplifies: schemas have types, formats and patch
//! metadata but no descriptions and no `required` lists (the `k8s-openapi`
//! decoders accept every field as optional, and the strategies report
//! what is missing); components are named by their short type name
//! (`PodSpec`, not `io.k8s.api.core.v1.PodSpec`); there is no OpenAPI v2
//! document ([`v2_document`] is `None`, a 404): kubectl 1.32 only falls
//! back to v2 when v3 is missing, and for strategic merge patches it then
//! falls back to the types compiled into it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use api::resources::RESOURCES;
use api::ResourceInfo;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ListMeta, Status};
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};
use serde_json::{json, Map, Value};

use crate::patchmeta;

/// The Kubernetes version the documents describe, as `info.version`.
const KUBERNETES_VERSION: &str = "v1.32.0";

/// The patch content types the REST front door accepts. Listing
/// strategic merge here tells kubectl to compute its apply patch from
/// these schemas (with their merge keys) rather than its built-in types.
const PATCH_CONTENT_TYPES: &[&str] =
    &["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"];

/// `GET /openapi/v3`: the group-versions with a document each, under a
/// URL that changes whenever the document does.
pub fn v3_index() -> Value {
    documents().index.clone()
}

/// `GET /openapi/v3/<path>` for `path` = `api/v1`, `apis/apps/v1`, ...:
/// an OpenAPI 3.0 document of every resource of that group-version.
/// The `?hash=` query is not part of `path`; any hash is answered with
/// the current document, as upstream does.
pub fn v3_document(path: &str) -> Option<Value> {
    documents().v3.get(path.trim_matches('/')).cloned()
}

/// `GET /openapi/v2`: tinykube publishes no Swagger 2.0 document, so the
/// front door answers 404. kubectl 1.32 reads v3 first; a missing v2 only
/// makes `kubectl apply` compute strategic merge patches from its
/// compiled-in types for kinds v3 cannot serve, which for built-in kinds
/// gives the same patch.
pub fn v2_document() -> Option<Value> {
    None
}

/// The name of the component schema called `name` (a kind, or a type
/// inside one), if the documents have one, borrowed from the documents.
pub fn type_name(name: &str) -> Option<&'static str> {
    documents().types.get_key_value(name).map(|(k, _)| k.as_str())
}

/// The type of the value of `field` in the type named `type_name`, or of
/// its items if it is a list. `None` when the field is unknown or holds no
/// named type: a string, a list of strings, or a map (no served type has a
/// map whose values are objects, so the merge never needs their type).
pub fn field_type(type_name: &str, field: &str) -> Option<&'static str> {
    let docs = documents();
    let path = docs.types.get(type_name)?;
    referenced(&docs.v3[path]["components"]["schemas"][type_name]["properties"][field])
}

/// The component a property refers to, through `allOf` and list items.
fn referenced(schema: &Value) -> Option<&str> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.strip_prefix("#/components/schemas/");
    }
    referenced(schema.get("allOf").and_then(|all| all.get(0)).or_else(|| schema.get("items"))?)
}

/// The documents, built once: tracing the types is cheap (milliseconds)
/// but every kubectl invocation asks for them.
struct Documents {
    index: Value,
    v3: BTreeMap<String, Value>,
    /// Every component name, with the first document that holds it (short
    /// names are unambiguous across documents; a test checks).
    types: BTreeMap<String, String>,
}

fn documents() -> &'static Documents {
    static DOCUMENTS: OnceLock<Documents> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let mut v3 = BTreeMap::new();
        let mut types = BTreeMap::new();
        let mut paths = Map::new();
        for (group, version) in group_versions() {
            let path = gv_path(group, version);
            let doc = build_document(group, version);
            let hash = fnv1a(&serde_json::to_vec(&doc).unwrap_or_default());
            paths.insert(path.clone(), json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={hash:016X}") }));
            for name in doc["components"]["schemas"].as_object().into_iter().flat_map(Map::keys) {
                types.entry(name.clone()).or_insert_with(|| path.clone());
            }
            v3.insert(path, doc);
        }
        Documents { index: json!({ "paths": paths }), v3, types }
    })
}

/// The group-versions of [`RESOURCES`], in table order, each once.
fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// `api/v1` for the core group, `apis/<group>/<version>` otherwise: the
/// REST prefix without its leading slash, which is also the document's key.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A content hash for the `?hash=` query (FNV-1a; upstream uses SHA-512,
/// but clients only compare it).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The schema of one kind, traced from its `k8s-openapi` type. Kinds
/// missing here get a bare `type: object` schema, which still lets kubectl
/// find the kind (and a test catches the gap).
fn trace_kind(info: &ResourceInfo, components: &mut Components) -> Result<(), TraceError> {
    macro_rules! dispatch {
        ($($resource:literal => $ty:ty),* $(,)?) => {
            match info.resource {
                $($resource => trace::<$ty>(components, Some((<$ty as k8s_openapi::Resource>::API_VERSION, info.kind))),)*
                other => Err(TraceError(format!("no type for {other}"))),
            }
        };
    }
    dispatch! {
        "pods" => Pod, "nodes" => Node, "namespaces" => Namespace, "events" => Event,
        "services" => Service, "endpoints" => Endpoints, "configmaps" => ConfigMap, "secrets" => Secret,
        "serviceaccounts" => ServiceAccount, "deployments" => Deployment, "replicasets" => ReplicaSet,
        "daemonsets" => DaemonSet, "statefulsets" => StatefulSet, "jobs" => Job, "leases" => Lease,
        "certificatesigningrequests" => CertificateSigningRequest,
    }
}

/// Kinds with a `scale` subresource (`autoscaling/v1` `Scale`), as upstream.
fn has_scale(info: &ResourceInfo) -> bool {
    info.group == "apps" && matches!(info.resource, "deployments" | "replicasets" | "statefulsets")
}

fn build_document(group: &str, version: &str) -> Value {
    let mut components = Components::default();
    let mut paths = Map::new();
    let resources: Vec<&ResourceInfo> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    for info in &resources {
        if let Err(e) = trace_kind(info, &mut components) {
            tracing::warn!(kind = info.kind, error = %e, "no OpenAPI schema traced; publishing a bare object");
            components.schemas.insert(info.kind.to_string(), json!({ "type": "object" }));
        }
        if let Some(schema) = components.schemas.get_mut(info.kind).and_then(Value::as_object_mut) {
            schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk(group, version, info.kind)]));
        }
        components.schemas.insert(info.list_kind(), list_schema(info));
        resource_paths(info, &mut paths);
    }
    if resources.iter().any(|r| has_scale(r)) {
        if trace::<Scale>(&mut components, Some(("autoscaling/v1", "Scale"))).is_err() {
            components.schemas.insert("Scale".into(), json!({ "type": "object" }));
        }
        if let Some(schema) = components.schemas.get_mut("Scale").and_then(Value::as_object_mut) {
            schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk("autoscaling", "v1", "Scale")]));
        }
    }
    // The shared meta types every path refers to.
    for result in [
        trace::<Status>(&mut components, Some(("v1", "Status"))),
        trace::<DeleteOptions>(&mut components, None),
        trace::<ListMeta>(&mut components, None),
    ] {
        if let Err(e) = result {
            tracing::warn!(error = %e, "tracing a meta type failed");
        }
    }
    components
        .schemas
        .insert("Patch".into(), json!({ "type": "object", "description": "A JSON patch, merge patch or strategic merge patch document." }));
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": KUBERNETES_VERSION },
        "paths": paths,
        "components": { "schemas": components.schemas },
    })
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "version": version, "kind": kind })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// `PodList`: `items` of the kind plus list metadata.
fn list_schema(info: &ResourceInfo) -> Value {
    json!({
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": { "type": "string" },
            "kind": { "type": "string" },
            "metadata": { "allOf": [schema_ref("ListMeta")], "default": {} },
            "items": { "type": "array", "items": { "allOf": [schema_ref(info.kind)], "default": {} } },
        },
        "x-kubernetes-group-version-kind": [gvk(info.group, info.version, &info.list_kind())],
    })
}

/// The operations of one resource, named as upstream names them
/// (`listAppsV1NamespacedDeployment`), so a learner can compare documents.
fn resource_paths(info: &ResourceInfo, paths: &mut Map<String, Value>) {
    let prefix = format!("/{}", gv_path(info.group, info.version));
    let namer = OpNamer { info, group_camel: operation_group(info.group, info.version) };
    let this_gvk = gvk(info.group, info.version, info.kind);
    let collection = if info.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", info.resource)
    } else {
        format!("{prefix}/{}", info.resource)
    };
    let item = format!("{collection}/{{name}}");
    let mut scope_params = vec![];
    if info.namespaced {
        scope_params.push(path_param("namespace", "object name and auth scope, such as for teams and projects"));
    }
    let mut item_params = vec![path_param("name", &format!("name of the {}", info.kind))];
    item_params.extend(scope_params.iter().cloned());

    let kind = info.kind;
    let list_kind = info.list_kind();

    // The collection: list and create.
    let mut list = namer.op("list", "list", kind, &this_gvk, true);
    list.insert("parameters".into(), Value::Array(list_params()));
    list.insert("responses".into(), responses(&[("200", &list_kind)]));
    let mut create = namer.op("create", "post", kind, &this_gvk, true);
    create.insert("parameters".into(), Value::Array(write_params(false)));
    create.insert("requestBody".into(), body(&["application/json"], kind));
    create.insert("responses".into(), responses(&[("200", kind), ("201", kind), ("202", kind)]));
    let mut path = Map::new();
    path.insert("get".into(), Value::Object(list));
    path.insert("post".into(), Value::Object(create));
    path.insert("parameters".into(), Value::Array(with_pretty(&scope_params)));
    paths.insert(collection.clone(), Value::Object(path));

    // One object: read, replace, patch, delete.
    paths.insert(item.clone(), item_path(&namer, kind, "", &this_gvk, &item_params, true));

    // Every object of a namespaced kind, across namespaces.
    if info.namespaced {
        let mut all = namer.op("list", "list", &format!("{kind}ForAllNamespaces"), &this_gvk, false);
        all.insert("parameters".into(), Value::Array(list_params()));
        all.insert("responses".into(), responses(&[("200", &list_kind)]));
        let mut path = Map::new();
        path.insert("get".into(), Value::Object(all));
        path.insert("parameters".into(), Value::Array(with_pretty(&[])));
        paths.insert(format!("{prefix}/{}", info.resource), Value::Object(path));
    }
    if info.has_status {
        paths.insert(format!("{item}/status"), item_path(&namer, kind, "Status", &this_gvk, &item_params, false));
    }
    if has_scale(info) {
        let scale_gvk = gvk("autoscaling", "v1", "Scale");
        paths.insert(format!("{item}/scale"), item_path(&namer, kind, "Scale", &scale_gvk, &item_params, false));
    }
}

/// What the operations of one resource share: upstream's operation id is
/// verb, group-version, scope and kind (`patchAppsV1NamespacedDeploymentScale`).
struct OpNamer<'a> {
    info: &'a ResourceInfo,
    group_camel: String,
}

impl OpNamer<'_> {
    /// One operation. `name` is the kind plus any suffix; `scoped` adds
    /// `Namespaced` for a namespaced kind (not for `...ForAllNamespaces`).
    fn op(&self, verb: &str, action: &str, name: &str, gvk: &Value, scoped: bool) -> Map<String, Value> {
        let scope = if scoped && self.info.namespaced { "Namespaced" } else { "" };
        let mut m = Map::new();
        m.insert("operationId".into(), json!(format!("{verb}{}{scope}{name}", self.group_camel)));
        m.insert("tags".into(), json!([tag(self.info.group, self.info.version)]));
        m.insert("x-kubernetes-action".into(), json!(action));
        m.insert("x-kubernetes-group-version-kind".into(), gvk.clone());
        m
    }
}

/// Read, replace and patch (and delete for the object itself) of an
/// object or one of its subresources. `suffix` is `Status` or `Scale`.
fn item_path(namer: &OpNamer<'_>, kind: &str, suffix: &str, gvk: &Value, item_params: &[Value], with_delete: bool) -> Value {
    let schema_kind = gvk["kind"].as_str().unwrap_or(kind).to_string();
    let name = format!("{kind}{suffix}");
    let mut path = Map::new();
    let mut read = namer.op("read", "get", &name, gvk, true);
    read.insert("responses".into(), responses(&[("200", &schema_kind)]));
    path.insert("get".into(), Value::Object(read));
    let mut replace = namer.op("replace", "put", &name, gvk, true);
    replace.insert("parameters".into(), Value::Array(write_params(false)));
    replace.insert("requestBody".into(), body(&["application/json"], &schema_kind));
    replace.insert("responses".into(), responses(&[("200", &schema_kind), ("201", &schema_kind)]));
    path.insert("put".into(), Value::Object(replace));
    let mut patch = namer.op("patch", "patch", &name, gvk, true);
    patch.insert("parameters".into(), Value::Array(write_params(true)));
    patch.insert("requestBody".into(), body(PATCH_CONTENT_TYPES, "Patch"));
    patch.insert("responses".into(), responses(&[("200", &schema_kind), ("201", &schema_kind)]));
    path.insert("patch".into(), Value::Object(patch));
    if with_delete {
        let mut delete = namer.op("delete", "delete", &name, gvk, true);
        let mut params = vec![query_param("dryRun", "string", "When present, the change is not persisted. The only value is `All`.")];
        params.push(query_param("gracePeriodSeconds", "integer", "Seconds before the object is deleted; zero means at once."));
        params.push(query_param("propagationPolicy", "string", "Orphan, Background or Foreground garbage collection of dependents."));
        delete.insert("parameters".into(), Value::Array(params));
        delete.insert("requestBody".into(), body(&["application/json"], "DeleteOptions"));
        delete.insert("responses".into(), responses(&[("200", &schema_kind), ("202", &schema_kind)]));
        path.insert("delete".into(), Value::Object(delete));
    }
    path.insert("parameters".into(), Value::Array(with_pretty(item_params)));
    Value::Object(path)
}

/// `CoreV1`, `AppsV1`, `CoordinationV1`: the group part of upstream's
/// operation ids (the first label of the group, capitalised).
fn operation_group(group: &str, version: &str) -> String {
    let first = if group.is_empty() { "core" } else { group.split('.').next().unwrap_or(group) };
    format!("{}{}", capitalise(first), capitalise(version))
}

/// `core_v1`, `apps_v1`, `coordination_v1`: upstream's operation tags.
fn tag(group: &str, version: &str) -> String {
    let first = if group.is_empty() { "core" } else { group.split('.').next().unwrap_or(group) };
    format!("{first}_{version}")
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string", "uniqueItems": true } })
}

fn query_param(name: &str, ty: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "description": description, "schema": { "type": ty, "uniqueItems": true } })
}

fn with_pretty(params: &[Value]) -> Vec<Value> {
    let mut out = params.to_vec();
    out.push(query_param("pretty", "string", "If 'true', the output is pretty printed."));
    out
}

fn list_params() -> Vec<Value> {
    vec![
        query_param("labelSelector", "string", "A selector to restrict the list of returned objects by their labels."),
        query_param("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."),
        query_param("limit", "integer", "The maximum number of objects to return."),
        query_param("continue", "string", "The continue token of a previous paginated list."),
        query_param("resourceVersion", "string", "The resourceVersion to list or watch from."),
        query_param("resourceVersionMatch", "string", "How resourceVersion applies to a list."),
        query_param("watch", "boolean", "Watch for changes instead of listing."),
        query_param("allowWatchBookmarks", "boolean", "Ask for BOOKMARK watch events."),
        query_param("timeoutSeconds", "integer", "Timeout for the list or watch call."),
    ]
}

/// The parameters of a write. `fieldValidation` is the one kubectl looks
/// for: its presence on a kind's PATCH operation is how kubectl knows the
/// server validates fields and that it need not validate on its own.
fn write_params(patch: bool) -> Vec<Value> {
    let mut params = vec![
        query_param("dryRun", "string", "When present, the change is not persisted. The only value is `All`."),
        query_param("fieldManager", "string", "The name of the actor making the change."),
        query_param(
            "fieldValidation",
            "string",
            "What to do with unknown or duplicate fields in the request: `Ignore` drops them, `Warn` drops them and \
             answers with a Warning header per field, `Strict` (kubectl's default) fails the request naming them.",
        ),
    ];
    if patch {
        params.push(query_param("force", "boolean", "Force an apply patch over conflicts (server-side apply only)."));
    }
    params
}

fn body(content_types: &[&str], schema: &str) -> Value {
    let content: Map<String, Value> = content_types.iter().map(|ct| (ct.to_string(), json!({ "schema": schema_ref(schema) }))).collect();
    json!({ "content": content, "required": true })
}

fn responses(codes: &[(&str, &str)]) -> Value {
    let mut out: Map<String, Value> = codes
        .iter()
        .map(|(code, schema)| {
            (code.to_string(), json!({ "description": "OK", "content": { "application/json": { "schema": schema_ref(schema) } } }))
        })
        .collect();
    out.insert("401".into(), json!({ "description": "Unauthorized" }));
    Value::Object(out)
}

// ---------------------------------------------------------------------
// Schemas traced from `Deserialize` impls.
// ---------------------------------------------------------------------

/// The named object schemas found so far, by short type name.
#[derive(Default)]
struct Components {
    schemas: BTreeMap<String, Value>,
    /// Types being traced, to refuse a recursive type instead of looping.
    in_progress: Vec<&'static str>,
    /// Short names met twice with different fields: two types that would
    /// share one component (a test keeps this empty).
    collisions: Vec<String>,
}

/// A type could not be traced (it has an unexpected shape, such as a Rust
/// enum, or is recursive).
#[derive(Debug)]
struct TraceError(String);

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TraceError(msg.to_string())
    }
}

/// Traces `T` into `components`. `resource` gives the `apiVersion` and
/// `kind` a top-level kind insists on (its decoder rejects other values).
fn trace<T: serde::de::DeserializeOwned>(components: &mut Components, resource: Option<(&'static str, &str)>) -> Result<(), TraceError> {
    let mut out = None;
    let tracer = Tracer {
        components,
        out: &mut out,
        sample: "",
        resource: resource.map(|(v, k)| (v.to_string(), k.to_string())),
    };
    T::deserialize(tracer).map(drop)
}

/// A `Deserializer` that answers every request with a harmless sample
/// value and writes down, in `out`, the schema of what was asked for.
struct Tracer<'a> {
    components: &'a mut Components,
    out: &'a mut Option<Value>,
    /// The string handed to `deserialize_str`: empty, or a timestamp
    /// inside a `Time`, whose decoder parses it.
    sample: &'static str,
    /// `apiVersion` and `kind` for the top-level struct of a kind.
    resource: Option<(String, String)>,
}

/// The text a visitor expects (`"a base64-encoded string"`,
/// `"IntOrString"`): the one hint about types serde cannot otherwise tell
/// apart.
fn expecting<'de, V: Visitor<'de>>(visitor: &V) -> String {
    format!("{}", visitor as &dyn de::Expected)
}

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = TraceError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        // `IntOrString` decodes from any JSON; so does `serde_json::Value`.
        // An int-or-string is either JSON type, as upstream's v3 documents
        // say with `oneOf` (`IntOrString.OpenAPIV3OneOfTypes`): a `type` of
        // `string` alone would make every `targetPort: 80` the server
        // returns a violation of its own schema.
        *self.out = Some(if expecting(&visitor) == "IntOrString" {
            json!({
                "oneOf": [{ "type": "integer" }, { "type": "string" }],
                "format": "int-or-string",
                "x-kubernetes-int-or-string": true,
            })
        } else {
            json!({ "x-kubernetes-preserve-unknown-fields": true })
        });
        visitor.visit_str(self.sample)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        *self.out = Some(json!({ "type": "boolean" }));
        visitor.visit_bool(false)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_i32(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_i32(visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        *self.out = Some(json!({ "type": "integer", "format": "int32" }));
        visitor.visit_i32(0)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        *self.out = Some(json!({ "type": "integer", "format": "int64" }));
        visitor.visit_i64(0)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        *self.out = Some(json!({ "type": "integer", "format": "int64" }));
        visitor.visit_u64(0)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        *self.out = Some(json!({ "type": "number", "format": "double" }));
        visitor.visit_f64(0.0)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        // `ByteString` (Secret data) asks for a string it base64-decodes.
        *self.out = Some(if expecting(&visitor).contains("base64") {
            json!({ "type": "string", "format": "byte" })
        } else {
            json!({ "type": "string" })
        });
        visitor.visit_str(self.sample)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        *self.out = Some(json!({ "type": "string", "format": "byte" }));
        visitor.visit_bytes(&[])
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        // Every field of a `k8s-openapi` type decodes through an Option,
        // so optionality says nothing about `required`.
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        *self.out = Some(json!({}));
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, TraceError> {
        // The apimachinery scalars are newtypes with their own JSON forms.
        let (schema, sample) = match name {
            "Time" => (json!({ "type": "string", "format": "date-time" }), "1970-01-01T00:00:00Z"),
            "MicroTime" => (json!({ "type": "string", "format": "date-time" }), "1970-01-01T00:00:00.000000Z"),
            "Quantity" => (json!({ "type": "string", "x-kubernetes-int-or-string": true }), "0"),
            "FieldsV1" => (json!({ "type": "object" }), ""),
            _ => return visitor.visit_newtype_struct(self),
        };
        let mut inner = None;
        let value = visitor.visit_newtype_struct(Tracer { components: self.components, out: &mut inner, sample, resource: None })?;
        *self.out = Some(schema);
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        let mut items = None;
        let value = visitor.visit_seq(OneElement { components: self.components, out: &mut items, done: false })?;
        *self.out = Some(json!({ "type": "array", "items": wrap_ref(items.unwrap_or_else(|| json!({}))) }));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _name: &'static str, _len: usize, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        // A map from strings (labels, `resources.limits`): one sample entry.
        let mut values = None;
        let value = visitor.visit_map(Fields {
            components: self.components,
            fields: &["key"],
            next: 0,
            resource: None,
            schemas: vec![],
            out_single: Some(&mut values),
        })?;
        *self.out = Some(json!({ "type": "object", "additionalProperties": wrap_ref(values.unwrap_or_else(|| json!({}))) }));
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        if self.components.in_progress.contains(&name) {
            return Err(TraceError(format!("{name} is recursive")));
        }
        self.components.in_progress.push(name);
        let resource = self.resource.or_else(|| embedded_resource(name));
        let mut access = Fields { components: &mut *self.components, fields, next: 0, resource, schemas: vec![], out_single: None };
        let result = visitor.visit_map(&mut access);
        let schemas = std::mem::take(&mut access.schemas);
        self.components.in_progress.retain(|n| *n != name);
        let value = result?;
        let mut properties = Map::new();
        for (field, schema) in schemas {
            let mut schema = wrap_ref(schema);
            if let Some(meta) = patchmeta::lookup(name, field) {
                if let Some(obj) = schema.as_object_mut() {
                    obj.insert("x-kubernetes-patch-strategy".into(), json!(meta.strategy));
                    if let Some(key) = meta.merge_key {
                        obj.insert("x-kubernetes-patch-merge-key".into(), json!(key));
                    }
                }
            }
            properties.insert(field.to_string(), schema);
        }
        match self.components.schemas.get(name) {
            Some(existing) if existing["properties"] != Value::Object(properties.clone()) => {
                self.components.collisions.push(name.to_string());
            }
            Some(_) => {}
            None => {
                self.components.schemas.insert(name.to_string(), json!({ "type": "object", "properties": properties }));
            }
        }
        *self.out = Some(schema_ref(name));
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, TraceError> {
        Err(TraceError(format!("enum {name} cannot be traced")))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_unit(visitor)
    }
}

/// A whole kind embedded in another (a StatefulSet's
/// `volumeClaimTemplates` are PersistentVolumeClaims): its decoder, too,
/// insists on its own `apiVersion` and `kind`. `k8s-openapi` names a
/// kind's struct by its kind.
fn embedded_resource(name: &str) -> Option<(String, String)> {
    const EMBEDDED: &[(&str, &str)] = &[("v1", "PersistentVolumeClaim")];
    EMBEDDED
        .iter()
        .find(|(_, kind)| *kind == name)
        .map(|(v, k)| (v.to_string(), k.to_string()))
        .or_else(|| RESOURCES.iter().find(|r| r.kind == name).map(|r| (r.api_version(), r.kind.to_string())))
}

/// A reference used as a property or list item is wrapped in `allOf`, as
/// upstream's v3 documents do (kubectl resolves either form).
fn wrap_ref(schema: Value) -> Value {
    if schema.get("$ref").is_some() {
        json!({ "allOf": [schema] })
    } else {
        schema
    }
}

/// The one element of a traced list.
struct OneElement<'a> {
    components: &'a mut Components,
    out: &'a mut Option<Value>,
    done: bool,
}

impl<'de> de::SeqAccess<'de> for OneElement<'_> {
    type Error = TraceError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, TraceError> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        let tracer = Tracer { components: &mut *self.components, out: &mut *self.out, sample: "", resource: None };
        seed.deserialize(tracer).map(Some)
    }
}

/// The fields of a traced struct, offered one by one, each value traced
/// into `schemas`; or (with `out_single`) the one entry of a traced map.
struct Fields<'a> {
    components: &'a mut Components,
    fields: &'static [&'static str],
    next: usize,
    resource: Option<(String, String)>,
    schemas: Vec<(&'static str, Value)>,
    out_single: Option<&'a mut Option<Value>>,
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, TraceError> {
        match self.fields.get(self.next) {
            Some(field) => seed.deserialize((*field).into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, TraceError> {
        let field = self.fields.get(self.next).copied().unwrap_or_default();
        self.next += 1;
        let mut out = None;
        let value = match (&self.resource, field) {
            // A kind's decoder insists on its own apiVersion and kind; any
            // other string field takes the empty sample.
            (Some((api_version, _)), "apiVersion") => {
                out = Some(json!({ "type": "string" }));
                seed.deserialize(api_version.as_str().into_deserializer())?
            }
            (Some((_, kind)), "kind") => {
                out = Some(json!({ "type": "string" }));
                seed.deserialize(kind.as_str().into_deserializer())?
            }
            _ => {
                let tracer = Tracer { components: &mut *self.components, out: &mut out, sample: "", resource: None };
                seed.deserialize(tracer)?
            }
        };
        let schema = out.unwrap_or_else(|| json!({}));
        match self.out_single.as_mut() {
            Some(single) => **single = Some(schema),
            None => self.schemas.push((field, schema)),
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(path: &str) -> Value {
        v3_document(path).unwrap_or_else(|| panic!("no document for {path}"))
    }

    /// Follows `allOf` and `$ref` to the named component.
    fn resolve<'v>(doc: &'v Value, schema: &'v Value) -> &'v Value {
        let schema = schema.get("allOf").and_then(|a| a.get(0)).unwrap_or(schema);
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
            None => schema,
        }
    }

    /// The schema at a dotted path below a kind, through lists.
    fn at<'v>(doc: &'v Value, kind: &str, path: &str) -> &'v Value {
        let mut schema = &doc["components"]["schemas"][kind];
        for part in path.split('.') {
            let obj = resolve(doc, schema);
            let obj = if obj["type"] == "array" { resolve(doc, &obj["items"]) } else { obj };
            schema = &obj["properties"][part];
            assert!(!schema.is_null(), "{kind}: no {part} in {path}");
        }
        schema
    }

    #[test]
    fn index_lists_every_group_version_with_a_hash() {
        let index = v3_index();
        for (path, want) in [
            ("api/v1", "/openapi/v3/api/v1?hash="),
            ("apis/apps/v1", "/openapi/v3/apis/apps/v1?hash="),
            ("apis/batch/v1", "/openapi/v3/apis/batch/v1?hash="),
            ("apis/coordination.k8s.io/v1", "/openapi/v3/apis/coordination.k8s.io/v1?hash="),
        ] {
            let url = index["paths"][path]["serverRelativeURL"].as_str().unwrap_or_default();
            assert!(url.starts_with(want), "{path}: {url}");
            assert!(v3_document(path).is_some(), "{path}");
        }
        assert!(v3_document("apis/extensions/v1beta1").is_none());
        assert!(v2_document().is_none());
    }

    /// Components are named by short type name, so two types of one name
    /// would collide; tracing every kind into one set finds none.
    #[test]
    fn short_names_are_unambiguous() {
        let mut components = Components::default();
        for info in RESOURCES {
            assert!(trace_kind(info, &mut components).is_ok(), "{}", info.kind);
        }
        assert!(trace::<Scale>(&mut components, Some(("autoscaling/v1", "Scale"))).is_ok());
        assert!(trace::<DeleteOptions>(&mut components, None).is_ok());
        assert_eq!(components.collisions, Vec::<String>::new());
    }

    #[test]
    fn every_kind_is_traced_with_its_gvk() {
        for info in RESOURCES {
            let doc = doc(&gv_path(info.group, info.version));
            let schema = &doc["components"]["schemas"][info.kind];
            assert_eq!(schema["x-kubernetes-group-version-kind"][0]["kind"], info.kind, "{}", info.kind);
            assert!(schema["properties"]["metadata"].is_object(), "{}: not traced: {schema}", info.kind);
        }
    }

    /// kubectl decides that the server validates fields by finding the
    /// `fieldValidation` parameter on the kind's PATCH operations (every
    /// one of them: it stops at the first that matches the kind).
    #[test]
    fn every_patch_operation_offers_field_validation() {
        for info in RESOURCES {
            let doc = doc(&gv_path(info.group, info.version));
            let mut found = 0;
            for (path, item) in doc["paths"].as_object().into_iter().flatten() {
                let Some(patch) = item.get("patch") else { continue };
                let params: Vec<&str> = patch["parameters"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
                assert!(params.contains(&"fieldValidation"), "{path}");
                assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object(), "{path}");
                if patch["x-kubernetes-group-version-kind"]["kind"] == info.kind {
                    found += 1;
                }
            }
            assert!(found >= 1, "{}: no PATCH operation", info.kind);
        }
    }

    #[test]
    fn paths_are_upstreams() {
        let core = doc("api/v1");
        let apps = doc("apis/apps/v1");
        for (doc, path, verb, op_id) in [
            (&core, "/api/v1/namespaces/{namespace}/pods", "get", "listCoreV1NamespacedPod"),
            (&core, "/api/v1/namespaces/{namespace}/pods", "post", "createCoreV1NamespacedPod"),
            (&core, "/api/v1/namespaces/{namespace}/pods/{name}", "patch", "patchCoreV1NamespacedPod"),
            (&core, "/api/v1/namespaces/{namespace}/pods/{name}/status", "put", "replaceCoreV1NamespacedPodStatus"),
            (&core, "/api/v1/pods", "get", "listCoreV1PodForAllNamespaces"),
            (&core, "/api/v1/nodes/{name}", "delete", "deleteCoreV1Node"),
            (&apps, "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale", "patch", "patchAppsV1NamespacedDeploymentScale"),
        ] {
            assert_eq!(doc["paths"][path][verb]["operationId"], op_id, "{path} {verb}");
        }
        assert_eq!(
            apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]["x-kubernetes-group-version-kind"]
                ["kind"],
            "Scale"
        );
        assert!(apps["components"]["schemas"]["Scale"]["properties"]["spec"].is_object());
        assert!(core["paths"]["/api/v1/namespaces/{namespace}/events/{name}/status"].is_null(), "events have no status subresource");
    }

    /// The traced types, formats and upstream's merge keys: what kubectl
    /// needs to compute a strategic merge patch.
    #[test]
    fn schemas_carry_types_and_patch_metadata() {
        let apps = doc("apis/apps/v1");
        let core = doc("api/v1");
        let containers = "spec.template.spec.containers";
        for (doc, kind, path, key, want) in [
            (&apps, "Deployment", "spec.replicas", "type", json!("integer")),
            (&apps, "Deployment", "spec.paused", "type", json!("boolean")),
            (&apps, "Deployment", containers, "type", json!("array")),
            (&apps, "Deployment", containers, "x-kubernetes-patch-merge-key", json!("name")),
            (&apps, "Deployment", containers, "x-kubernetes-patch-strategy", json!("merge")),
            (&apps, "Deployment", "spec.template.spec.containers.ports", "x-kubernetes-patch-merge-key", json!("containerPort")),
            (&apps, "Deployment", "spec.template.spec.containers.env", "x-kubernetes-patch-merge-key", json!("name")),
            (&apps, "Deployment", "spec.template.spec.volumes", "x-kubernetes-patch-strategy", json!("merge,retainKeys")),
            (&apps, "Deployment", "spec.strategy", "x-kubernetes-patch-strategy", json!("retainKeys")),
            (&apps, "Deployment", "spec.strategy.rollingUpdate.maxSurge", "format", json!("int-or-string")),
            (&apps, "Deployment", "metadata.creationTimestamp", "format", json!("date-time")),
            (&apps, "Deployment", "metadata.labels", "type", json!("object")),
            (&apps, "Deployment", "metadata.labels", "additionalProperties", json!({ "type": "string" })),
            (&apps, "Deployment", "metadata.ownerReferences", "x-kubernetes-patch-merge-key", json!("uid")),
            (
                &core,
                "Pod",
                "spec.containers.resources.limits",
                "additionalProperties",
                json!({ "type": "string", "x-kubernetes-int-or-string": true }),
            ),
            (&core, "Secret", "data", "additionalProperties", json!({ "type": "string", "format": "byte" })),
            (&core, "Event", "eventTime", "format", json!("date-time")),
            (&core, "Service", "spec.ports", "x-kubernetes-patch-merge-key", json!("port")),
            (&core, "Service", "spec.ports.targetPort", "oneOf", json!([{ "type": "integer" }, { "type": "string" }])),
            (&core, "Node", "status.addresses", "x-kubernetes-patch-merge-key", json!("type")),
        ] {
            assert_eq!(at(doc, kind, path)[key], want, "{kind} {path} {key}");
        }
    }

    /// Every tag in the table lands on a field of a traced type, so a
    /// misspelt type or field cannot go unnoticed; merging fields are lists.
    #[test]
    fn every_patch_tag_names_a_traced_field() {
        for meta in crate::patchmeta::PATCH_META {
            let path = documents().types.get(meta.type_name).unwrap_or_else(|| panic!("{} is not traced", meta.type_name));
            let property = &doc(path)["components"]["schemas"][meta.type_name]["properties"][meta.field];
            assert_eq!(property["x-kubernetes-patch-strategy"], meta.strategy, "{}.{}", meta.type_name, meta.field);
            if meta.merges() {
                assert_eq!(property["type"], "array", "{}.{}", meta.type_name, meta.field);
            }
        }
    }

    #[test]
    fn field_types_follow_references_and_lists() {
        for (ty, field, want) in [
            ("Pod", "spec", Some("PodSpec")),
            ("PodSpec", "containers", Some("Container")),
            ("PodSpec", "ephemeralContainers", Some("EphemeralContainer")),
            ("Deployment", "metadata", Some("ObjectMeta")),
            ("StatefulSetSpec", "volumeClaimTemplates", Some("PersistentVolumeClaim")),
            ("Scale", "spec", Some("ScaleSpec")),
            ("ObjectMeta", "finalizers", None),
            ("ObjectMeta", "labels", None),
            ("PodSpec", "nothing", None),
            ("NoSuchType", "spec", None),
        ] {
            assert_eq!(field_type(ty, field), want, "{ty}.{field}");
        }
        assert_eq!(type_name("Deployment"), Some("Deployment"));
        assert_eq!(type_name("CronJob"), None, "not served");
    }

    #[test]
    fn lists_refer_to_their_items() {
        let core = doc("api/v1");
        let list = &core["components"]["schemas"]["PodList"];
        assert_eq!(list["properties"]["items"]["items"]["allOf"][0]["$ref"], "#/components/schemas/Pod");
        assert_eq!(list["x-kubernetes-group-version-kind"][0]["kind"], "PodList");
        assert_eq!(
            core["paths"]["/api/v1/pods"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/PodList"
        );
    }

    /// Every `$ref` in every document names a component of that document.
    #[test]
    fn references_resolve() {
        fn walk(v: &Value, doc: &Value, path: &str) {
            match v {
                Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                        let name = r.trim_start_matches("#/components/schemas/");
                        assert!(doc["components"]["schemas"][name].is_object(), "{path}: dangling {r}");
                    }
                    for (k, v) in m {
                        walk(v, doc, &format!("{path}/{k}"));
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, doc, path)),
                _ => {}
            }
        }
        for (path, _) in v3_index()["paths"].as_object().into_iter().flatten() {
            let d = doc(path);
            walk(&d, &d, path);
        }
    }

    #[test]
    fn operation_names_follow_upstream() {
        for (group, version, op, tag_want) in [
            ("", "v1", "CoreV1", "core_v1"),
            ("apps", "v1", "AppsV1", "apps_v1"),
            ("coordination.k8s.io", "v1", "CoordinationV1", "coordination_v1"),
        ] {
            assert_eq!(operation_group(group, version), op);
            assert_eq!(tag(group, version), tag_want);
        }
    }
}
