//! The Kubernetes REST front door: what kubectl and client libraries speak.
//!
//! kube-apiserver's HTTP API maps a path and a method onto a verb on a
//! resource (`k8s.io/apiserver/pkg/endpoints/installer.go`):
//!
//! ```text
//! GET    /api/v1/namespaces/{ns}/pods             list (or watch, with ?watch=true)
//! POST   /api/v1/namespaces/{ns}/pods             create
//! DELETE /api/v1/namespaces/{ns}/pods             deletecollection
//! GET    /api/v1/namespaces/{ns}/pods/{name}      get
//! PUT    /api/v1/namespaces/{ns}/pods/{name}      update
//! PATCH  /api/v1/namespaces/{ns}/pods/{name}      patch
//! DELETE /api/v1/namespaces/{ns}/pods/{name}      delete
//! .../pods/{name}/status | /binding | /log | /exec, .../deployments/{name}/scale
//! /apis/{group}/{version}/...                     the same for named groups
//! ```
//!
//! This module parses the request into that shape, calls the [`Registry`]
//! (the same one the gRPC service uses), and renders the answer: the
//! object, a `List`, a `Table` when kubectl asks for one, a stream of
//! watch events, or a `Status` error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::{ApiError, ResourceInfo};
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::http::{self as h, Body};
use crate::registry::{FieldValidation, Filter, Registry, WriteOptions};
use crate::strategy::Op;
use crate::{discovery, metrics, table, watch};

/// The largest request body accepted, as kube-apiserver's 3 MiB limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The Kubernetes version tinykube answers to (`/version`): kubectl picks
/// its matching release from it.
pub const KUBE_MINOR: &str = "32";

/// Shared state of the REST front door.
#[derive(Debug)]
pub struct Rest {
    pub registry: Registry,
    /// `host:port` clients reach the server at, for `/api`.
    pub server_address: String,
}

/// The query string, decoded; keys may repeat (`command=sh&command=-c`).
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let decode = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        Query(
            raw.unwrap_or_default()
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn get_all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }

    pub fn str(&self, key: &str) -> &str {
        self.get(key).unwrap_or_default()
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | ""))
    }

    fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid {key}: {v:?}"))),
        }
    }
}

/// What a path addresses.
#[derive(Debug)]
enum Target {
    Version,
    Health,
    /// `/metrics`, for Prometheus.
    Metrics,
    Api,
    Apis,
    ApiGroup(String),
    ApiResources(String, String),
    OpenApiV3Index,
    OpenApiV3(String),
    OpenApiV2,
    /// `POST /api/v1/namespaces/{ns}/bindings`
    Bindings(String),
    Resource {
        info: &'static ResourceInfo,
        namespace: String,
        name: Option<String>,
        sub: Option<String>,
    },
}

/// Upstream's 404 for a path that names nothing it serves.
fn not_found_path(path: &str) -> ApiError {
    let mut e = ApiError::not_found("", "", "");
    e.message = "the server could not find the requested resource".into();
    e.details = None;
    tracing::debug!(path, "no such path");
    e
}

fn parse_target(path: &str) -> Result<Target, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(Target::Version),
        ["healthz" | "livez" | "readyz"] => return Ok(Target::Health),
        ["metrics"] => return Ok(Target::Metrics),
        ["api"] => return Ok(Target::Api),
        ["apis"] => return Ok(Target::Apis),
        ["apis", g] => return Ok(Target::ApiGroup(g.to_string())),
        ["openapi", "v3"] => return Ok(Target::OpenApiV3Index),
        ["openapi", "v3", rest @ ..] => return Ok(Target::OpenApiV3(rest.join("/"))),
        ["openapi", "v2"] => return Ok(Target::OpenApiV2),
        ["api", v] => return Ok(Target::ApiResources(String::new(), v.to_string())),
        ["apis", g, v] => return Ok(Target::ApiResources(g.to_string(), v.to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found_path(path)),
    };
    let resource = |name: &str| -> Result<&'static ResourceInfo, ApiError> {
        api::resources::by_resource(group, name).filter(|i| i.version == version).ok_or_else(|| not_found_path(path))
    };
    // `namespaces/{ns}` alone, or with a namespace subresource, is the
    // Namespace object itself; longer paths are resources inside it.
    let (namespace, rest): (String, &[&str]) = match rest {
        ["namespaces", ns, r, ..]
            if group.is_empty() && !matches!(*r, "status" | "finalize")
                || !group.is_empty() && rest.len() >= 3 && rest[0] == "namespaces" =>
        {
            (ns.to_string(), &rest[2..])
        }
        _ => (String::new(), rest),
    };
    if group.is_empty() && !namespace.is_empty() && rest == ["bindings"] {
        return Ok(Target::Bindings(namespace));
    }
    let (info, name, sub) = match rest {
        [r] => (resource(r)?, None, None),
        [r, n] => (resource(r)?, Some(n.to_string()), None),
        [r, n, s] => (resource(r)?, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(not_found_path(path)),
    };
    if info.namespaced && namespace.is_empty() && name.is_some() {
        return Err(not_found_path(path));
    }
    if !info.namespaced && !namespace.is_empty() {
        return Err(not_found_path(path));
    }
    Ok(Target::Resource { info, namespace, name, sub })
}

/// Serves one REST request, counting it in `/metrics`.
pub async fn handle(rest: Arc<Rest>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let labels = metric_labels(&req, &path);
    let resp = match route(&rest, req).await {
        Ok(r) => r,
        Err(e) => h::error(&e),
    };
    let status = resp.status().as_u16();
    metrics::global().observe_request(labels, status, started.elapsed());
    tracing::debug!(%method, path, status, elapsed_us = started.elapsed().as_micros() as u64, "request");
    resp
}

/// The request in upstream's metric labels (verb, resource, scope...).
fn metric_labels<B>(req: &Request<B>, path: &str) -> metrics::RequestInfo {
    match parse_target(path) {
        Ok(Target::Resource { info, namespace, name, sub }) => {
            let query = Query::parse(req.uri().query());
            let apply = content_type(req).is_some_and(|c| c.starts_with("application/apply-patch"));
            metrics::RequestInfo::resource(
                req.method(),
                info,
                &namespace,
                name.is_some(),
                sub.as_deref(),
                query.flag("watch"),
                apply,
                query.get("dryRun").is_some(),
            )
        }
        Ok(Target::Bindings(ns)) => metrics::RequestInfo::resource(
            req.method(),
            api::resources::by_resource("", "pods").expect("pods are in the table"),
            &ns,
            true,
            Some("binding"),
            false,
            false,
            false,
        ),
        _ => metrics::RequestInfo::non_resource(req.method()),
    }
}

async fn route(rest: &Arc<Rest>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query());
    let method = req.method().clone();
    let target = parse_target(&path)?;
    let ok = |v: Value| Ok(h::json(StatusCode::OK, &v));
    match target {
        Target::Version => ok(version()),
        Target::Health => Ok(Response::builder()
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(h::full("ok"))
            .expect("static response")),
        Target::Metrics => Ok(Response::builder()
            .header(header::CONTENT_TYPE, metrics::CONTENT_TYPE)
            .body(h::full(metrics::global().render()))
            .expect("static response")),
        Target::Api => ok(discovery::api_versions(&rest.server_address)),
        Target::Apis => ok(discovery::api_group_list()),
        Target::ApiGroup(g) => discovery::api_group(&g).map(|v| h::json(StatusCode::OK, &v)).ok_or_else(|| not_found_path(&path)),
        Target::ApiResources(g, v) => {
            discovery::api_resource_list(&g, &v).map(|v| h::json(StatusCode::OK, &v)).ok_or_else(|| not_found_path(&path))
        }
        Target::OpenApiV3Index => ok(crate::openapi::v3_index()),
        Target::OpenApiV3(doc) => {
            crate::openapi::v3_document(&doc).map(|v| h::json(StatusCode::OK, &v)).ok_or_else(|| not_found_path(&path))
        }
        Target::OpenApiV2 => crate::openapi::v2_document().map(|v| h::json(StatusCode::OK, &v)).ok_or_else(|| not_found_path(&path)),
        Target::Bindings(ns) => {
            if method != Method::POST {
                return Err(ApiError::method_not_allowed(format!(
                    "the server does not allow this method on the requested resource ({method})"
                )));
            }
            let body = read_body(req).await?;
            rest.registry.bind(&ns, &body).await?;
            Ok(h::json(StatusCode::CREATED, &success_status()))
        }
        Target::Resource { info, namespace, name, sub } => resource(rest, info, namespace, name, sub, query, req).await,
    }
}

/// `/version`, as kube-apiserver answers it.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-tinykube.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}

fn success_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

/// Reads a request body (JSON, YAML or protobuf, as labelled), within the
/// size limit. A missing Content-Type is JSON: the Python client sends
/// none.
async fn read_body(req: Request<Incoming>) -> Result<Value, ApiError> {
    let ct = content_type(&req).unwrap_or_default();
    let media = ct.split(';').next().unwrap_or_default().trim().to_string();
    let yaml = match media.as_str() {
        "" | "application/json" | "*/*" => false,
        "application/yaml" | "application/x-yaml" | "text/yaml" => true,
        // client-go's typed clientsets (kubectl create, expose) send
        // protobuf: decoded into the JSON the same object would be.
        crate::protobuf::MEDIA_TYPE => return Ok(crate::protobuf::decode(&read_bytes(req).await?)?),
        // Anything else (CBOR) is refused with 415.
        other => {
            let mut e = ApiError::bad_request(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, {} (got {other})",
                crate::protobuf::MEDIA_TYPE
            ));
            e.code = 415;
            e.reason = "UnsupportedMediaType".into();
            return Err(e);
        }
    };
    let bytes = read_bytes(req).await?;
    parse_body(&bytes, yaml)
}

pub fn parse_body(bytes: &[u8], yaml: bool) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let parsed = if yaml {
        serde_yaml::from_slice::<Value>(bytes).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(bytes).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| ApiError::bad_request(format!("the body of the request was in an unknown format: {e}")))
}

async fn read_bytes(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::too_large(format!("Request entity too large: limit is {MAX_BODY_BYTES}")))
        }
        Err(e) => Err(ApiError::bad_request(format!("reading the request body: {e}"))),
    }
}

fn content_type<B>(req: &Request<B>) -> Option<String> {
    req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase)
}

fn wants_table<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').next().is_some_and(|first| first.contains("as=Table")))
}

fn write_options(query: &Query) -> Result<WriteOptions, ApiError> {
    let dry_run = match query.get_all("dryRun").as_slice() {
        [] => false,
        [one] if one == "All" => true,
        other => return Err(ApiError::bad_request(format!("Invalid dry run value: {other:?}; supported: All"))),
    };
    Ok(WriteOptions { dry_run, validation: FieldValidation::parse(query.str("fieldValidation"))? })
}

/// Adds `Warning` headers: a kind no component acts on, and field warnings.
fn with_warnings(mut resp: Response<Body>, info: &ResourceInfo, warnings: &[String]) -> Response<Body> {
    let mut all: Vec<String> = warnings.to_vec();
    if !info.active {
        all.push(format!("tinykube stores {} but no controller acts on them yet: this object will not run", info.qualified()));
    }
    for w in all {
        let text = format!("299 - \"{}\"", w.replace('"', "'"));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("Warning", v);
        }
    }
    resp
}

async fn resource(
    rest: &Arc<Rest>,
    info: &'static ResourceInfo,
    namespace: String,
    name: Option<String>,
    sub: Option<String>,
    query: Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let reg = &rest.registry;
    let method = req.method().clone();
    let not_allowed =
        || ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method})"));
    match (name, sub.as_deref()) {
        // The collection.
        (None, None) => match method {
            Method::GET if query.flag("watch") => watch_response(rest, info, &namespace, &query, wants_table(&req)).await,
            Method::GET => list_response(reg, info, &namespace, &query, wants_table(&req)).await,
            Method::POST => {
                let opts = write_options(&query)?;
                let body = read_body(req).await?;
                check_kind(info, &body)?;
                let written = reg.create(info, &namespace, body, &opts).await?;
                Ok(with_warnings(h::json(StatusCode::CREATED, &written.object), info, &written.warnings))
            }
            Method::DELETE => {
                let options = delete_options(&query, req).await?;
                let filter = Filter::parse(info, query.str("labelSelector"), query.str("fieldSelector"))?;
                let deleted = reg.delete_collection(info, &namespace, &filter, &options).await?;
                let list = json!({"apiVersion": info.api_version(), "kind": info.list_kind(), "metadata": {}, "items": deleted});
                Ok(h::json(StatusCode::OK, &list))
            }
            _ => Err(not_allowed()),
        },
        // One object.
        (Some(name), None) => match method {
            Method::GET if wants_table(&req) => {
                let obj = reg.get(info, &namespace, &name).await?;
                let rv = obj["metadata"]["resourceVersion"].clone();
                Ok(h::json(StatusCode::OK, &to_table(info, std::slice::from_ref(&obj), rv.as_str().unwrap_or_default(), "")))
            }
            Method::GET => Ok(h::json(StatusCode::OK, &reg.get(info, &namespace, &name).await?)),
            Method::PUT => {
                let opts = write_options(&query)?;
                let body = read_body(req).await?;
                check_kind(info, &body)?;
                check_name(&body, &name)?;
                let written = reg.update(info, &namespace, body, Op::Update, &opts).await?;
                Ok(with_warnings(h::json(StatusCode::OK, &written.object), info, &written.warnings))
            }
            Method::PATCH => patch_response(reg, info, &namespace, &name, Op::Update, &query, req).await,
            Method::DELETE => {
                let options = delete_options(&query, req).await?;
                let deleted = reg.delete(info, &namespace, &name, &options).await?;
                Ok(delete_reply(info, deleted))
            }
            _ => Err(not_allowed()),
        },
        (Some(name), Some("status")) if info.has_status => match method {
            Method::GET => Ok(h::json(StatusCode::OK, &reg.get(info, &namespace, &name).await?)),
            Method::PUT => {
                let opts = write_options(&query)?;
                let body = read_body(req).await?;
                check_name(&body, &name)?;
                let written = reg.update(info, &namespace, body, Op::UpdateStatus, &opts).await?;
                Ok(h::json(StatusCode::OK, &written.object))
            }
            Method::PATCH => patch_response(reg, info, &namespace, &name, Op::UpdateStatus, &query, req).await,
            _ => Err(not_allowed()),
        },
        (Some(name), Some("scale")) if matches!(info.resource, "deployments" | "replicasets" | "statefulsets") => {
            scale(reg, info, &namespace, &name, &query, req).await
        }
        (Some(name), Some("binding")) if info.resource == "pods" && method == Method::POST => {
            let mut body = read_body(req).await?;
            if body["metadata"]["name"].as_str().is_none_or(str::is_empty) {
                body["metadata"]["name"] = json!(name);
            }
            reg.bind(&namespace, &body).await?;
            Ok(h::json(StatusCode::CREATED, &success_status()))
        }
        (Some(name), Some("log")) if info.resource == "pods" && method == Method::GET => logs(reg, &namespace, &name, &query).await,
        (Some(name), Some("exec")) if info.resource == "pods" && (method == Method::GET || method == Method::POST) => {
            Ok(crate::exec::handle(reg.clone(), namespace, name, req).await)
        }
        (Some(_), Some(s)) => {
            let mut e = ApiError::not_found(info.group, &format!("{}/{s}", info.resource), "");
            e.message = "the server could not find the requested resource".into();
            Err(e)
        }
        (None, Some(_)) => Err(not_found_path("")),
    }
}

/// A body's `kind` and `apiVersion`, when given, must be the path's.
fn check_kind(info: &ResourceInfo, body: &Value) -> Result<(), ApiError> {
    let kind = body["kind"].as_str().unwrap_or_default();
    let api_version = body["apiVersion"].as_str().unwrap_or_default();
    if !kind.is_empty() && kind != info.kind {
        return Err(ApiError::bad_request(format!("the kind in the data ({kind}) does not match the expected kind ({})", info.kind)));
    }
    if !api_version.is_empty() && api_version != info.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            info.api_version()
        )));
    }
    Ok(())
}

fn check_name(body: &Value, name: &str) -> Result<(), ApiError> {
    let in_body = body["metadata"]["name"].as_str().unwrap_or_default();
    if !in_body.is_empty() && in_body != name {
        return Err(ApiError::bad_request(format!("the name of the object ({in_body}) does not match the name on the URL ({name})")));
    }
    Ok(())
}

/// DeleteOptions from the body (kubectl) or the query (curl, clients).
async fn delete_options(query: &Query, req: Request<Incoming>) -> Result<Value, ApiError> {
    let bytes = read_bytes(req).await?;
    let mut options = if bytes.iter().all(u8::is_ascii_whitespace) { json!({}) } else { parse_body(&bytes, false)? };
    if let Some(g) = query.int("gracePeriodSeconds")? {
        options["gracePeriodSeconds"] = json!(g);
    }
    if let Some(p) = query.get("propagationPolicy") {
        options["propagationPolicy"] = json!(p);
    }
    if query.get("orphanDependents").is_some() {
        options["orphanDependents"] = json!(query.flag("orphanDependents"));
    }
    let dry = query.get_all("dryRun");
    if !dry.is_empty() {
        options["dryRun"] = json!(dry);
    }
    Ok(options)
}

/// Upstream answers a delete with the object while it still exists
/// (202 Accepted while finalizers or a node are pending) and, once it is
/// gone, with the object for pods and a `Status` for other kinds.
fn delete_reply(info: &ResourceInfo, deleted: crate::registry::Deleted) -> Response<Body> {
    if deleted.pending {
        return h::json(StatusCode::ACCEPTED, &deleted.object);
    }
    if info.resource == "pods" {
        return h::json(StatusCode::OK, &deleted.object);
    }
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {
            "name": deleted.object["metadata"]["name"], "group": info.group, "kind": info.resource,
            "uid": deleted.object["metadata"]["uid"],
        },
    });
    h::json(StatusCode::OK, &status)
}

async fn list_response(
    reg: &Registry,
    info: &'static ResourceInfo,
    ns: &str,
    query: &Query,
    table: bool,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::parse(info, query.str("labelSelector"), query.str("fieldSelector"))?;
    let limit = query.int("limit")?.unwrap_or(0);
    let page = reg.list_page(info, ns, &filter, limit, query.str("continue")).await?;
    let rv = page.revision.to_string();
    if table {
        return Ok(h::json(StatusCode::OK, &to_table(info, &page.items, &rv, &page.continue_token)));
    }
    let mut metadata = json!({"resourceVersion": rv});
    if !page.continue_token.is_empty() {
        metadata["continue"] = json!(page.continue_token);
        if let Some(r) = page.remaining {
            metadata["remainingItemCount"] = json!(r);
        }
    }
    let list = json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": metadata, "items": page.items});
    Ok(h::json(StatusCode::OK, &list))
}

/// A `meta.k8s.io/v1` Table of `items`, as kubectl's `get` prints it.
pub fn to_table(info: &ResourceInfo, items: &[Value], rv: &str, continue_token: &str) -> Value {
    let columns: Vec<Value> = table::columns(info)
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "name": title_case(c.name),
                "type": "string",
                "format": if i == 0 && c.name == "NAME" { "name" } else { "" },
                "description": "",
                "priority": if c.wide { 1 } else { 0 },
            })
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            json!({
                "cells": table::row(info, obj),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj["metadata"],
                },
            })
        })
        .collect();
    let mut metadata = json!({"resourceVersion": rv});
    if !continue_token.is_empty() {
        metadata["continue"] = json!(continue_token);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns, "rows": rows})
}

/// `UP-TO-DATE` → `Up-to-date`, as upstream names table columns.
fn title_case(upper: &str) -> String {
    let lower = upper.to_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// How often an idle watch gets a bookmark when the client allows them.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

async fn watch_response(
    rest: &Arc<Rest>,
    info: &'static ResourceInfo,
    ns: &str,
    query: &Query,
    table: bool,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::parse(info, query.str("labelSelector"), query.str("fieldSelector"))?;
    let send_initial = query.flag("sendInitialEvents");
    let mut rv = query.str("resourceVersion").to_string();
    if send_initial && !rv.is_empty() && rv != "0" {
        // "Initial events, then changes": from a snapshot, as "0" does.
        rv = String::new();
    }
    let params = watch::WatchParams {
        namespace: ns.to_string(),
        filter,
        resource_version: rv.clone(),
        bookmark_interval: query.flag("allowWatchBookmarks").then_some(BOOKMARK_INTERVAL),
        initial_events_end: send_initial && query.flag("allowWatchBookmarks"),
    };
    // With resourceVersion "0" (or unset) kubectl expects the current state
    // first, as synthetic ADDED events; `watch::watch` does that.
    let rx = watch::watch(&rest.registry, info, params).await?;
    // Counted in `apiserver_longrunning_requests` until the stream is
    // dropped: when the client goes away or the watch times out.
    let open = metrics::global().long_running(metrics::RequestInfo::resource(&Method::GET, info, ns, false, None, true, false, false));
    let timeout = query.int("timeoutSeconds")?.map(|s| Duration::from_secs(s.max(0) as u64));
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let events = tokio_stream::wrappers::ReceiverStream::new(rx);
    let stream = events
        .map(move |mut ev| {
            let _open = &open;
            if table && ev["type"] != "BOOKMARK" && ev["type"] != "ERROR" {
                let rv = ev["object"]["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
                ev["object"] = to_table(info, std::slice::from_ref(&ev["object"]), &rv, "");
            }
            let mut line = serde_json::to_vec(&ev).unwrap_or_default();
            line.push(b'\n');
            Ok::<Bytes, std::io::Error>(Bytes::from(line))
        })
        .take_until(async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(h::streaming(stream))
        .expect("static response"))
}

async fn patch_response(
    reg: &Registry,
    info: &'static ResourceInfo,
    ns: &str,
    name: &str,
    op: Op,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let opts = write_options(query)?;
    let ct = content_type(&req).unwrap_or_default();
    let kind = crate::patch::PatchType::from_content_type(&ct).ok_or_else(|| unsupported_media(&ct))?;
    if kind == crate::patch::PatchType::Apply {
        return Err(unsupported_media(&ct));
    }
    let body = read_bytes(req).await?;
    let written = reg
        .guaranteed_update(
            info,
            ns,
            name,
            "",
            &opts,
            |current| {
                let patched = crate::patch::apply(kind, info, current, &body)?;
                // A patch may carry a resourceVersion: then it is a precondition.
                let wanted = patched["metadata"]["resourceVersion"].as_str().unwrap_or_default();
                let have = current["metadata"]["resourceVersion"].as_str().unwrap_or_default();
                if !wanted.is_empty() && wanted != have {
                    return Err(ApiError::conflict(info.group, info.resource, name, ApiError::OPTIMISTIC_LOCK));
                }
                Ok(patched)
            },
            op,
        )
        .await?;
    Ok(with_warnings(h::json(StatusCode::OK, &written.object), info, &written.warnings))
}

fn unsupported_media(ct: &str) -> ApiError {
    let mut e = ApiError::bad_request(format!(
        "the body of the request was in an unknown format - accepted media types include: \
         application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct:?}); \
         server-side apply (application/apply-patch+yaml) is not available on tinykube"
    ));
    e.code = 415;
    e.reason = "UnsupportedMediaType".into();
    e
}

/// Computes the new Scale of a workload from the current object.
type ScaleFn = dyn Fn(&Value) -> Result<Value, ApiError> + Send + Sync;

/// The `autoscaling/v1` Scale view of a workload.
fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": table::selector_string(&obj["spec"]["selector"]).replace("<none>", ""),
        },
    })
}

async fn scale(
    reg: &Registry,
    info: &'static ResourceInfo,
    ns: &str,
    name: &str,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    if method == Method::GET {
        let obj = reg.get(info, ns, name).await?;
        return Ok(h::json(StatusCode::OK, &scale_of(&obj)));
    }
    let opts = write_options(query)?;
    let (wanted_rv, new_scale): (String, Box<ScaleFn>) = match method {
        Method::PUT => {
            let body = read_body(req).await?;
            let replicas = body["spec"]["replicas"].as_i64();
            let rv = body["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
            (rv, Box::new(move |_current: &Value| Ok(json!({"spec": {"replicas": replicas}}))))
        }
        Method::PATCH => {
            let ct = content_type(&req).unwrap_or_default();
            let kind = crate::patch::PatchType::from_content_type(&ct)
                .filter(|k| *k != crate::patch::PatchType::Apply)
                .ok_or_else(|| unsupported_media(&ct))?;
            let body = read_bytes(req).await?;
            let scale_info = info;
            (String::new(), Box::new(move |current: &Value| crate::patch::apply(kind, scale_info, &scale_of(current), &body)))
        }
        _ => {
            return Err(ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method})")))
        }
    };
    let written = reg
        .guaranteed_update(
            info,
            ns,
            name,
            &wanted_rv,
            &opts,
            |current| {
                let scale = new_scale(current)?;
                let replicas = scale["spec"]["replicas"].as_i64().ok_or_else(|| {
                    ApiError::invalid("autoscaling", "Scale", name, &[api::status::FieldError::required("spec.replicas")])
                })?;
                if replicas < 0 {
                    return Err(ApiError::invalid(
                        "autoscaling",
                        "Scale",
                        name,
                        &[api::status::FieldError::invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
                    ));
                }
                let mut new = current.clone();
                new["spec"]["replicas"] = json!(replicas);
                Ok(new)
            },
            Op::Update,
        )
        .await?;
    Ok(h::json(StatusCode::OK, &scale_of(&written.object)))
}

/// `pods/{name}/log`: proxied to the pod's agent, streamed as text.
async fn logs(reg: &Registry, ns: &str, pod: &str, query: &Query) -> Result<Response<Body>, ApiError> {
    let request = api::proto::LogsRequest {
        namespace: ns.to_string(),
        pod: pod.to_string(),
        container: query.str("container").to_string(),
        follow: query.flag("follow"),
        tail_lines: query.int("tailLines")?.unwrap_or(-1),
        previous: query.flag("previous"),
        timestamps: query.flag("timestamps"),
    };
    let mut agent = crate::proxy::agent_for_pod(reg, ns, pod).await?;
    let stream = agent.logs(request).await.map_err(|s| ApiError::from_grpc(&s))?.into_inner();
    let limit = query.int("limitBytes")?.filter(|l| *l > 0);
    let body = stream
        .map(|chunk| match chunk {
            Ok(c) => Ok(Bytes::from(c.data)),
            Err(s) => Err(std::io::Error::other(s.message().to_string())),
        })
        .scan(limit, |left, chunk| {
            let out = match (left.as_mut(), chunk) {
                (Some(0), _) => None,
                (Some(n), Ok(mut b)) => {
                    if b.len() as i64 > *n {
                        b.truncate(*n as usize);
                    }
                    *n -= b.len() as i64;
                    Some(Ok(b))
                }
                (_, c) => Some(c),
            };
            futures::future::ready(out)
        });
    Ok(Response::builder().header(header::CONTENT_TYPE, "text/plain").body(h::streaming(body)).expect("static response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> (String, String, Option<String>, Option<String>) {
        match parse_target(path).unwrap() {
            Target::Resource { info, namespace, name, sub } => (info.resource.to_string(), namespace, name, sub),
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths_map_to_resources_like_upstream() {
        assert_eq!(resource("/api/v1/pods"), ("pods".into(), "".into(), None, None));
        assert_eq!(resource("/api/v1/namespaces/default/pods"), ("pods".into(), "default".into(), None, None));
        assert_eq!(
            resource("/api/v1/namespaces/default/pods/web/log"),
            ("pods".into(), "default".into(), Some("web".into()), Some("log".into()))
        );
        assert_eq!(resource("/api/v1/namespaces/kube-system"), ("namespaces".into(), "".into(), Some("kube-system".into()), None));
        assert_eq!(resource("/api/v1/namespaces/x/status"), ("namespaces".into(), "".into(), Some("x".into()), Some("status".into())));
        assert_eq!(resource("/api/v1/nodes/n1/status"), ("nodes".into(), "".into(), Some("n1".into()), Some("status".into())));
        assert_eq!(
            resource("/apis/apps/v1/namespaces/default/deployments/web/scale"),
            ("deployments".into(), "default".into(), Some("web".into()), Some("scale".into()))
        );
        assert_eq!(resource("/apis/apps/v1/deployments"), ("deployments".into(), "".into(), None, None));
        assert!(matches!(parse_target("/api/v1/namespaces/default/bindings").unwrap(), Target::Bindings(ns) if ns == "default"));
        for bad in ["/api/v2/pods", "/apis/apps/v1/frobs", "/api/v1/namespaces/default/nodes/n1", "/nope", "/api/v1/pods/x"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&command=sh&command=-c&empty"));
        assert_eq!(q.str("labelSelector"), "app=web,tier in (a)");
        assert!(q.flag("watch"));
        assert!(q.flag("empty"));
        assert_eq!(q.get_all("command"), vec!["sh", "-c"]);
        assert!(q.int("watch").is_ok());
    }

    #[test]
    fn table_columns_follow_the_printer() {
        let pods = api::resources::by_resource("", "pods").unwrap();
        let t = to_table(pods, &[json!({"metadata": {"name": "p"}, "spec": {}, "status": {}})], "5", "");
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        assert_eq!(t["rows"][0]["cells"][0], "p");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
