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
use crate::options::{self, ListOptions, WriteKind};
use crate::registry::{FieldValidation, Filter, Registry, WriteOptions};
use crate::strategy::Op;
use crate::{discovery, metrics, table, watch};

/// The largest request body accepted, as kube-apiserver's 3 MiB limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The Kubernetes version tinykube answers to (`/version`): kubectl picks
/// its matching release from it.
pub const KUBE_MINOR: &str = "32";

/// The longest path and query accepted; a longer one is a 414 with a
/// `Status` body. (hyper refuses URIs over 64 KiB on its own, without one.)
pub const MAX_URI_BYTES: usize = 32 * 1024;

/// The most header bytes accepted, half of Go's `DefaultMaxHeaderBytes`
/// that kube-apiserver keeps: a larger head is a 431 with a `Status`
/// body. The connection's read buffer is sized above it, in
/// [`crate::ApiServer::serve`], so this check is reached first.
pub const MAX_HEADER_BYTES: usize = 512 * 1024;

/// At most this many watches may be open at once from one client address;
/// one more is a 429 `TooManyRequests` with a `Retry-After`, as
/// kube-apiserver's max-in-flight filter answers when it is full.
pub const MAX_WATCHES_PER_CLIENT: usize = 100;

/// Shared state of the REST front door.
#[derive(Debug)]
pub struct Rest {
    pub registry: Registry,
    /// `host:port` clients reach the server at, for `/api`.
    pub server_address: String,
    /// Open watches per client address.
    pub watches: Arc<WatchLimiter>,
}

/// The address a request came from, set on each request by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// Counts open watches per client IP.
#[derive(Debug, Default)]
pub struct WatchLimiter {
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One open watch, counted until dropped (with the response body).
#[derive(Debug)]
pub struct WatchPermit {
    limiter: Arc<WatchLimiter>,
    ip: std::net::IpAddr,
}

impl WatchLimiter {
    /// A permit for one more watch from `ip`, or `None` at the cap.
    pub fn acquire(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<WatchPermit> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= MAX_WATCHES_PER_CLIENT {
            return None;
        }
        *count += 1;
        Some(WatchPermit { limiter: self.clone(), ip })
    }
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// 429, as upstream's max-in-flight filter: try again in a second.
fn too_many_requests() -> Response<Body> {
    let err = ApiError {
        code: 429,
        reason: "TooManyRequests".into(),
        message: "Too many requests, please try again later.".into(),
        details: None,
    };
    let mut resp = h::error(&err);
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
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

    /// A boolean parameter, decoded as upstream decodes them: see
    /// [`options::query_bool`].
    pub fn flag(&self, key: &str) -> bool {
        options::query_bool(self, key)
    }

    /// An integer parameter; a malformed one is a 400 with Go's message.
    fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        options::query_int(self, key)
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
///
/// A panic in a handler is a bug, never the client's fault, and must not
/// take the connection or the server with it: it is caught here, logged
/// with the request, and answered as a 500 `InternalError` Status.
pub async fn handle(rest: Arc<Rest>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let labels = metric_labels(&req, &path);
    let resp = match check_limits(&req) {
        Err(e) => h::error(&e),
        Ok(()) => without_panics(&method, &path, route(&rest, req)).await,
    };
    let status = resp.status().as_u16();
    metrics::global().observe_request(labels, status, started.elapsed());
    tracing::debug!(%method, path, status, elapsed_us = started.elapsed().as_micros() as u64, "request");
    resp
}

/// Runs a handler; its error becomes a `Status` response, and so does a
/// panic: a 500 `InternalError`, logged with the request that caused it.
async fn without_panics<F>(method: &Method, path: &str, handler: F) -> Response<Body>
where
    F: std::future::Future<Output = Result<Response<Body>, ApiError>>,
{
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(handler).catch_unwind().await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => h::error(&e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            tracing::error!(%method, path, panic = what, "a request handler panicked");
            h::error(&ApiError::internal(format!("the server failed to serve {method} {path}; see the server log")))
        }
    }
}

/// The URI and header limits, checked before anything else is read.
fn check_limits<B>(req: &Request<B>) -> Result<(), ApiError> {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return Err(ApiError {
            code: 414,
            reason: "RequestURITooLong".into(),
            message: format!("the request URI is {uri_len} bytes long; the limit is {MAX_URI_BYTES}"),
            details: None,
        });
    }
    let header_len: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if header_len > MAX_HEADER_BYTES {
        return Err(ApiError {
            code: 431,
            reason: "RequestHeaderFieldsTooLarge".into(),
            message: format!("the request headers are {header_len} bytes long; the limit is {MAX_HEADER_BYTES}"),
            details: None,
        });
    }
    Ok(())
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
    let user = crate::authn::current().unwrap_or_else(crate::authn::User::anonymous);
    // Who may ask comes before whether the path exists, as upstream's
    // filters run before its router: an anonymous probe learns nothing.
    let target = match parse_target(&path) {
        Err(_) if user.is_anonymous() => return Err(ApiError::unauthorized()),
        t => t?,
    };
    authorize(&rest.registry, &user, &target, &method, &query, &path).await?;
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

/// Authorizes a parsed request: its verb as upstream's RequestInfo
/// derives it from the method, the name and `watch`.
async fn authorize(
    registry: &Registry,
    user: &crate::authn::User,
    target: &Target,
    method: &Method,
    query: &Query,
    path: &str,
) -> Result<(), ApiError> {
    let (info, namespace, name, sub) = match target {
        Target::Resource { info, namespace, name, sub } => (*info, namespace.as_str(), name.as_deref(), sub.as_deref()),
        Target::Bindings(ns) => {
            (api::resources::by_resource("", "pods").expect("pods are in the table"), ns.as_str(), None, Some("binding"))
        }
        _ => return crate::authz::authorize_path(user, path),
    };
    let verb = match (method, name) {
        (&Method::GET | &Method::HEAD, _) if sub == Some("exec") => "create",
        (&Method::GET | &Method::HEAD, None) if query.flag("watch") => "watch",
        (&Method::GET | &Method::HEAD, None) => "list",
        (&Method::GET | &Method::HEAD, Some(_)) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, None) => "deletecollection",
        (&Method::DELETE, Some(_)) => "delete",
        _ => return Ok(()),
    };
    let attrs = crate::authz::Attributes { verb, group: info.group, resource: info.resource, subresource: sub, namespace, name };
    crate::authz::check(registry, user, &attrs).await
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

/// A request body as read: already decoded (protobuf), or text to parse.
enum RawBody {
    Decoded(Value),
    Text { bytes: Bytes, yaml: bool },
}

/// Reads a request body (JSON, YAML or protobuf, as labelled), within the
/// size limit. A missing Content-Type is JSON: the Python client sends
/// none.
async fn read_raw(req: Request<Incoming>) -> Result<RawBody, ApiError> {
    let ct = content_type(&req).unwrap_or_default();
    let media = ct.split(';').next().unwrap_or_default().trim().to_string();
    let yaml = match media.as_str() {
        "" | "application/json" | "*/*" => false,
        "application/yaml" | "application/x-yaml" | "text/yaml" => true,
        // client-go's typed clientsets (kubectl create, expose) send
        // protobuf: decoded into the JSON the same object would be.
        crate::protobuf::MEDIA_TYPE => return Ok(RawBody::Decoded(crate::protobuf::decode(&read_bytes(req).await?)?)),
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
    Ok(RawBody::Text { bytes: read_bytes(req).await?, yaml })
}

/// Reads and parses a request body.
async fn read_body(req: Request<Incoming>) -> Result<Value, ApiError> {
    match read_raw(req).await? {
        RawBody::Decoded(v) => Ok(v),
        RawBody::Text { bytes, yaml } => parse_body(&bytes, yaml),
    }
}

/// Reads the object of a create or update, and applies `fieldValidation`
/// to its duplicate fields, which only the raw bytes show: `Strict`
/// refuses them as upstream's strict decoder does, `Warn` returns one
/// warning each (`duplicate field "spec.replicas"`), `Ignore` keeps the
/// last value silently.
async fn read_object(req: Request<Incoming>, info: &ResourceInfo, opts: &WriteOptions) -> Result<(Value, Vec<String>), ApiError> {
    let (bytes, yaml) = match read_raw(req).await? {
        RawBody::Decoded(v) => return Ok((v, Vec::new())),
        RawBody::Text { bytes, yaml } => (bytes, yaml),
    };
    let body = parse_body(&bytes, yaml)?;
    if opts.validation == FieldValidation::Ignore {
        return Ok((body, Vec::new()));
    }
    let duplicates = crate::fieldvalidation::duplicate_fields_in(&bytes, yaml);
    if duplicates.is_empty() {
        return Ok((body, Vec::new()));
    }
    if opts.validation == FieldValidation::Strict {
        return Err(crate::fieldvalidation::strict_error_with_duplicates(info.kind, info.version, &[], &duplicates));
    }
    Ok((body, crate::fieldvalidation::warnings(&[], &duplicates)))
}

/// How deeply objects and lists may nest in a body: serde_json's and
/// serde_yaml's own recursion limit, which keeps a hostile body (a
/// hundred thousand `[`) from overflowing the stack.
pub const MAX_BODY_DEPTH: usize = 128;

/// Parses a JSON or YAML body into a value. Never panics: an empty body,
/// a syntax error or nesting past [`MAX_BODY_DEPTH`] is a 400.
pub fn parse_body(bytes: &[u8], yaml: bool) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let parsed = if yaml {
        serde_yaml::from_slice::<Value>(bytes).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(bytes).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| {
        if e.contains("recursion limit exceeded") {
            ApiError::bad_request(format!("the body of the request nests objects or lists more than {MAX_BODY_DEPTH} levels deep: {e}"))
        } else {
            ApiError::bad_request(format!("the body of the request was in an unknown format: {e}"))
        }
    })
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

/// The media types a client may ask resources in, as upstream lists them.
/// tinykube answers JSON to all three: JSON is also YAML, and client-go,
/// which asks for protobuf (kubectl's typed clients ask for nothing else),
/// decodes whatever the response's Content-Type says.
const ANSWER_MEDIA_TYPES: &[&str] = &["application/json", "application/yaml", crate::protobuf::MEDIA_TYPE];

/// 406 `NotAcceptable`, as upstream's negotiation, when the `Accept`
/// header names no media type the server answers in.
fn check_accept<B>(req: &Request<B>) -> Result<(), ApiError> {
    let Some(accept) = req.headers().get(header::ACCEPT) else { return Ok(()) };
    let accept = String::from_utf8_lossy(accept.as_bytes()).to_ascii_lowercase();
    let takes_json = accept
        .split(',')
        .map(|part| part.split(';').next().unwrap_or_default().trim())
        .any(|media| media.is_empty() || media == "*/*" || media == "application/*" || ANSWER_MEDIA_TYPES.contains(&media));
    if takes_json {
        return Ok(());
    }
    Err(ApiError {
        code: 406,
        reason: "NotAcceptable".into(),
        message: format!("only the following media types are accepted: {}", ANSWER_MEDIA_TYPES.join(", ")),
        details: None,
    })
}

fn wants_table<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').next().is_some_and(|first| first.contains("as=Table")))
}

/// The options of a create, update or patch, validated as upstream's
/// `Validate{Create,Update,Patch}Options`.
fn write_options(query: &Query, kind: WriteKind) -> Result<WriteOptions, ApiError> {
    options::validate_write_options(query, kind)?;
    let dry_run = !query.get_all("dryRun").is_empty();
    Ok(WriteOptions { dry_run, validation: FieldValidation::parse(query.str("fieldValidation"))? })
}

/// Adds `Warning` headers: a kind no component acts on, and field warnings.
fn with_warnings(mut resp: Response<Body>, info: &ResourceInfo, warnings: &[String]) -> Response<Body> {
    let mut all: Vec<String> = warnings.to_vec();
    if !info.active {
        all.push(format!("tinykube stores {} but no controller acts on them yet: this object will not run", info.qualified()));
    }
    for w in all {
        add_warning(&mut resp, &w);
    }
    resp
}

/// One `Warning: 299 - "<text>"` header, as upstream sends them.
fn add_warning(resp: &mut Response<Body>, text: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{}\"", text.replace('"', "'"))) {
        resp.headers_mut().append("Warning", v);
    }
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
    // Logs are text and exec a WebSocket; everything else answers JSON.
    if !matches!(sub.as_deref(), Some("log" | "exec")) {
        check_accept(&req)?;
    }
    let not_allowed =
        || ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method})"));
    match (name, sub.as_deref()) {
        // The collection.
        (None, None) => match method {
            Method::GET if query.flag("watch") => {
                let client = req.extensions().get::<ClientAddr>().copied();
                watch_response(rest, info, &namespace, &query, wants_table(&req), client).await
            }
            Method::GET => list_response(reg, info, &namespace, &query, wants_table(&req)).await,
            Method::POST => {
                let opts = write_options(&query, WriteKind::Create)?;
                let (body, mut warnings) = read_object(req, info, &opts).await?;
                check_kind(info, &body)?;
                let written = reg.create(info, &namespace, body, &opts).await?;
                warnings.extend(written.warnings);
                Ok(with_warnings(h::json(StatusCode::CREATED, &written.object), info, &warnings))
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
                let opts = write_options(&query, WriteKind::Update)?;
                let (body, mut warnings) = read_object(req, info, &opts).await?;
                check_kind(info, &body)?;
                check_name(&body, &name)?;
                let written = reg.update(info, &namespace, body, Op::Update, &opts).await?;
                warnings.extend(written.warnings);
                Ok(with_warnings(h::json(StatusCode::OK, &written.object), info, &warnings))
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
                let opts = write_options(&query, WriteKind::Update)?;
                let (body, warnings) = read_object(req, info, &opts).await?;
                check_name(&body, &name)?;
                let written = reg.update(info, &namespace, body, Op::UpdateStatus, &opts).await?;
                let mut resp = h::json(StatusCode::OK, &written.object);
                for w in warnings.iter().chain(&written.warnings) {
                    add_warning(&mut resp, w);
                }
                Ok(resp)
            }
            Method::PATCH => patch_response(reg, info, &namespace, &name, Op::UpdateStatus, &query, req).await,
            _ => Err(not_allowed()),
        },
        // `kubectl certificate approve|deny`: the approval conditions of a
        // CSR, and nothing else of it, as upstream's approval strategy.
        (Some(name), Some("approval")) if info.resource == "certificatesigningrequests" => match method {
            Method::GET => Ok(h::json(StatusCode::OK, &reg.get(info, &namespace, &name).await?)),
            Method::PUT => {
                let opts = write_options(&query, WriteKind::Update)?;
                let (body, warnings) = read_object(req, info, &opts).await?;
                check_name(&body, &name)?;
                let stored = reg.get(info, &namespace, &name).await?;
                let merged = with_approval_conditions(&stored, &body);
                let written = reg.update(info, &namespace, merged, Op::UpdateStatus, &opts).await?;
                let mut resp = h::json(StatusCode::OK, &written.object);
                for w in warnings.iter().chain(&written.warnings) {
                    add_warning(&mut resp, w);
                }
                Ok(resp)
            }
            _ => Err(not_allowed()),
        },
        (Some(name), Some("scale")) if matches!(info.resource, "deployments" | "replicasets" | "statefulsets") => {
            scale(reg, info, &namespace, &name, &query, req).await
        }
        (Some(name), Some("binding")) if info.resource == "pods" && method == Method::POST => {
            let mut body = read_body(req).await?;
            // The pod named on the URL, unless the Binding names it.
            let Some(obj) = body.as_object_mut() else {
                return Err(ApiError::bad_request("Binding in version \"v1\" cannot be handled as a Binding: the body is not an object"));
            };
            let meta = obj.entry("metadata").or_insert_with(|| json!({}));
            let Some(meta) = meta.as_object_mut() else {
                return Err(ApiError::bad_request("Binding in version \"v1\" cannot be handled as a Binding: metadata is not an object"));
            };
            if meta.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
                meta.insert("name".into(), json!(name));
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
    // As upstream's `checkName`: a body without a name does not match either.
    let in_body = body["metadata"]["name"].as_str().unwrap_or_default();
    if in_body != name {
        return Err(ApiError::bad_request(format!("the name of the object ({in_body}) does not match the name on the URL ({name})")));
    }
    Ok(())
}

/// DeleteOptions from the body (kubectl) or the query (curl, clients).
async fn delete_options(query: &Query, req: Request<Incoming>) -> Result<Value, ApiError> {
    let bytes = read_bytes(req).await?;
    let mut options = if bytes.iter().all(u8::is_ascii_whitespace) { json!({}) } else { parse_body(&bytes, false)? };
    if options.is_null() {
        options = json!({});
    }
    // Only an object decodes into DeleteOptions (`[null, null]` once
    // panicked the handler below, where the query's options are set on it).
    if !options.is_object() {
        let found = match &options {
            Value::Array(_) => "array",
            Value::String(_) => "string",
            Value::Number(_) => "number",
            Value::Bool(_) => "bool",
            _ => "null",
        };
        // Upstream's decoder first reads apiVersion and kind, and fails there.
        return Err(ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: json: cannot unmarshal {found} into Go value of type \
             struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}"
        )));
    }
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
    options::validate_delete_options(&options)?;
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
    let opts = ListOptions::parse(query)?;
    let filter = Filter::parse(info, &opts.label_selector, &opts.field_selector)?;
    let page = reg.list_page(info, ns, &filter, opts.limit, &opts.continue_token).await?;
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
    client: Option<ClientAddr>,
) -> Result<Response<Body>, ApiError> {
    let opts = ListOptions::parse(query)?;
    let filter = Filter::parse(info, &opts.label_selector, &opts.field_selector)?;
    // Held by the response body: the watch counts until the client goes.
    let permit = match client {
        Some(ClientAddr(addr)) => match rest.watches.acquire(addr.ip()) {
            Some(p) => Some(p),
            None => return Ok(too_many_requests()),
        },
        None => None,
    };
    let mut rv = opts.resource_version.clone();
    let legacy = rv.is_empty() || rv == "0";
    if opts.send_initial_events == Some(true) && !legacy {
        // "Initial events, then changes": from a snapshot, as "0" does.
        rv = String::new();
    }
    if opts.send_initial_events == Some(false) && legacy {
        // "Changes only, from now": no synthetic ADDED events.
        rv = rest.registry.revision().await?.to_string();
    }
    let params = watch::WatchParams {
        namespace: ns.to_string(),
        filter,
        resource_version: rv.clone(),
        bookmark_interval: opts.allow_watch_bookmarks.then_some(BOOKMARK_INTERVAL),
        initial_events_end: opts.send_initial_events == Some(true) && opts.allow_watch_bookmarks,
    };
    // With resourceVersion "0" (or unset) kubectl expects the current state
    // first, as synthetic ADDED events; `watch::watch` does that.
    let rx = watch::watch(&rest.registry, info, params).await?;
    // Counted in `apiserver_longrunning_requests` until the stream is
    // dropped: when the client goes away or the watch times out.
    let open = metrics::global().long_running(metrics::RequestInfo::resource(&Method::GET, info, ns, false, None, true, false, false));
    let timeout = opts.timeout_seconds.filter(|s| *s != 0).map(|s| Duration::from_secs(s.max(0) as u64));
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let events = tokio_stream::wrappers::ReceiverStream::new(rx);
    let stream = events
        .map(move |mut ev| {
            let (_open, _permit) = (&open, &permit);
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
    let opts = write_options(query, WriteKind::Patch)?;
    let ct = content_type(&req).unwrap_or_default();
    let kind = crate::patch::PatchType::from_content_type(&ct).ok_or_else(|| unsupported_media(&ct))?;
    if kind == crate::patch::PatchType::Apply {
        return Err(unsupported_media(&ct));
    }
    let body = read_bytes(req).await?;
    // Duplicate fields of the patch itself, which only its bytes show.
    let duplicates = match opts.validation {
        FieldValidation::Ignore => Vec::new(),
        _ => crate::fieldvalidation::duplicate_fields(&body),
    };
    let written = reg
        .guaranteed_update(
            info,
            ns,
            name,
            "",
            &opts,
            |current| {
                let patched = crate::patch::apply(kind, info, current, &body)?;
                if !duplicates.is_empty() && opts.validation == FieldValidation::Strict {
                    let patch: Value = serde_json::from_slice(&body).unwrap_or_default();
                    return Err(crate::fieldvalidation::patch_strict_error(kind, &patched, &patch, &duplicates));
                }
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
    let mut warnings = crate::fieldvalidation::patch_warnings(kind, &duplicates);
    warnings.extend(written.warnings);
    Ok(with_warnings(h::json(StatusCode::OK, &written.object), info, &warnings))
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
    let opts = write_options(query, if method == Method::PATCH { WriteKind::Patch } else { WriteKind::Update })?;
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

/// The stored CSR with the approval conditions (`Approved`, `Denied`) of
/// `body` and every other condition as stored; the body's metadata, so its
/// resourceVersion guards the write.
fn with_approval_conditions(stored: &Value, body: &Value) -> Value {
    let is_approval = |c: &&Value| matches!(c["type"].as_str(), Some("Approved" | "Denied"));
    let conditions = |obj: &Value| obj["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let mut kept: Vec<Value> = conditions(stored).iter().filter(|c| !is_approval(c)).cloned().collect();
    kept.extend(conditions(body).iter().filter(is_approval).cloned());
    let mut merged = stored.clone();
    merged["metadata"] = body["metadata"].clone();
    if !merged["status"].is_object() {
        merged["status"] = json!({});
    }
    merged["status"]["conditions"] = Value::Array(kept);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_write_changes_only_the_approval_conditions() {
        let stored = json!({"metadata": {"name": "c", "resourceVersion": "5"}, "spec": {"signerName": "s"},
            "status": {"certificate": "Y2VydA==", "conditions": [{"type": "Failed", "status": "True"}]}});
        let body = json!({"metadata": {"name": "c", "resourceVersion": "5"}, "spec": {"signerName": "other"},
            "status": {"certificate": "", "conditions": [{"type": "Approved", "status": "True"}, {"type": "Failed", "status": "False"}]}});
        let merged = with_approval_conditions(&stored, &body);
        assert_eq!(merged["spec"], stored["spec"]);
        assert_eq!(merged["status"]["certificate"], "Y2VydA==");
        assert_eq!(merged["status"]["conditions"], json!([{"type": "Failed", "status": "True"}, {"type": "Approved", "status": "True"}]));
        assert_eq!(merged["metadata"]["resourceVersion"], "5");
    }

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
        assert_eq!(q.int("watch").unwrap(), Some(1));
        assert!(q.int("empty").is_err(), "an empty integer is malformed, as upstream");
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_status() {
        let resp = without_panics(&Method::GET, "/api/v1/pods", async { panic!("boom") }).await;
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let status: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "InternalError");
        assert_eq!(status["message"], "Internal error occurred: the server failed to serve GET /api/v1/pods; see the server log");
    }

    /// Bodies a client could send by mistake or malice: each a 400, none
    /// a panic or a stack overflow.
    #[test]
    fn hostile_bodies_are_bad_requests() {
        let deep_json = "[".repeat(100_000);
        let deep_yaml = "- ".repeat(100_000) + "x";
        let deep_flow = "[".repeat(100_000);
        let deep_map = "{\"a\":".repeat(100_000);
        let cases: &[(&[u8], bool, &str)] = &[
            (
                deep_json.as_bytes(),
                false,
                "the body of the request nests objects or lists more than 128 levels deep: recursion limit exceeded",
            ),
            (
                deep_map.as_bytes(),
                false,
                "the body of the request nests objects or lists more than 128 levels deep: recursion limit exceeded",
            ),
            (
                deep_yaml.as_bytes(),
                true,
                "the body of the request nests objects or lists more than 128 levels deep: recursion limit exceeded",
            ),
            (
                deep_flow.as_bytes(),
                true,
                "the body of the request nests objects or lists more than 128 levels deep: recursion limit exceeded",
            ),
            (b"", false, "the request body is empty"),
            (b"{", false, "the body of the request was in an unknown format: EOF while parsing an object"),
            (b"\xff\xfe", false, "the body of the request was in an unknown format: expected value"),
            (b"a: [", true, "the body of the request was in an unknown format: "),
        ];
        for (body, yaml, want) in cases {
            let err = parse_body(body, *yaml).expect_err("must fail");
            assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
            assert!(err.message.starts_with(want), "{}: {}", String::from_utf8_lossy(&body[..body.len().min(20)]), err.message);
        }
        // Within the limit, deep bodies parse.
        let ok = "[".repeat(100) + &"]".repeat(100);
        assert!(parse_body(ok.as_bytes(), false).is_ok());
    }

    #[test]
    fn uri_and_header_limits_answer_with_a_status() {
        let long = format!("/api/v1/pods?labelSelector={}", "a".repeat(MAX_URI_BYTES));
        let err = check_limits(&Request::get(long).body(()).unwrap()).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (414, "RequestURITooLong"));
        let mut req = Request::get("/api/v1/pods").body(()).unwrap();
        for i in 0..9 {
            req.headers_mut()
                .insert(format!("x-big-{i}").parse::<header::HeaderName>().unwrap(), "v".repeat(64 * 1024).parse().unwrap());
        }
        let err = check_limits(&req).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (431, "RequestHeaderFieldsTooLarge"));
        assert!(check_limits(&Request::get("/api/v1/pods?limit=5").body(()).unwrap()).is_ok());
    }

    #[test]
    fn accept_headers_are_negotiated() {
        let with = |accept: &str| check_accept(&Request::get("/api/v1/pods").header(header::ACCEPT, accept).body(()).unwrap());
        for ok in [
            "application/json",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            "application/vnd.kubernetes.protobuf, */*",
            "application/json;stream=watch",
            "APPLICATION/*",
        ] {
            assert!(with(ok).is_ok(), "{ok}");
        }
        let err = with("application/xml").unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (406, "NotAcceptable"));
        assert_eq!(
            err.message,
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        );
        assert!(with("application/vnd.kubernetes.protobuf").is_ok(), "kubectl's typed clients ask for protobuf alone");
    }

    #[test]
    fn watches_per_client_are_capped() {
        let limiter = Arc::new(WatchLimiter::default());
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let permits: Vec<_> = (0..MAX_WATCHES_PER_CLIENT).map(|_| limiter.acquire(ip).expect("under the cap")).collect();
        assert!(limiter.acquire(ip).is_none(), "one over the cap");
        assert!(limiter.acquire("10.0.0.2".parse().unwrap()).is_some(), "another client has its own count");
        drop(permits);
        assert!(limiter.acquire(ip).is_some(), "permits are returned when watches end");
        let resp = too_many_requests();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
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
