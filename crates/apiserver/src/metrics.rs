//! `/metrics`: what the api-server has been doing, in Prometheus' text
//! format.
//!
//! kube-apiserver instruments every request in one filter
//! (`k8s.io/apiserver/pkg/endpoints/metrics`): a counter of requests and a
//! latency histogram, both labelled with the verb, the API group, version,
//! resource and subresource, the scope and — for the counter — the HTTP
//! code; a gauge of open long-running requests (watches); and, one layer
//! down, a histogram of every call its storage makes to etcd
//! (`k8s.io/apiserver/pkg/storage/etcd3/metrics`). Dashboards and the
//! Kubernetes API-call latency SLO are written against those names, so
//! tinykube keeps them:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `apiserver_request_total` | counter | verb, dry_run, group, version, resource, subresource, scope, component, code |
//! | `apiserver_request_duration_seconds` | histogram | verb, dry_run, group, version, resource, subresource, scope, component |
//! | `apiserver_longrunning_requests` | gauge | verb, group, version, resource, subresource, scope, component |
//! | `etcd_request_duration_seconds` | histogram | operation, type |
//! | `process_resident_memory_bytes` | gauge | — |
//!
//! Where tinykube simplifies: the registry is a few mutex-guarded maps
//! rather than the Prometheus client library — every label value is a
//! `&'static str` drawn from the resource table or a fixed list, so the
//! label sets are bounded and recording costs one short lock and no
//! allocation. Only REST requests are counted: the gRPC service the
//! components use is tinykube's own, with no upstream metric to match. A
//! watch's duration is recorded when its response starts (the moment the
//! client learns the watch is established), not when it ends; upstream's
//! SLO excludes watches for the same reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use store::{
    DeleteRangeRequest, DeleteRangeResponse, Kv, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
    WatchRequest, Watcher,
};

/// Upstream's buckets for `apiserver_request_duration_seconds` and
/// `etcd_request_duration_seconds`, in seconds: fine at the bottom for the
/// SLO's "1 s for a mutating call", long at the top for big lists.
pub const DURATION_BUCKETS: &[f64] =
    &[0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0];

/// The `component` label: upstream's constant for the api-server.
pub const COMPONENT: &str = "apiserver";

/// The media type Prometheus scrapes (text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A cumulative histogram with fixed upper bounds, as Prometheus keeps one:
/// a count per bucket (observations `<=` its bound), plus a sum and a
/// total count. Bounds must be ascending; values above the last fall into
/// the implicit `+Inf` bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts, one per bound plus one for `+Inf`; rendering
    /// accumulates them.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0, count: 0 }
    }

    pub fn observe(&mut self, value: f64) {
        // The first bucket whose bound is >= value: `le` means "less than
        // or equal", so a value on a bound belongs to that bucket.
        let i = self.bounds.partition_point(|b| *b < value);
        self.counts[i] += 1;
        self.sum += value;
        self.count += 1;
    }

    /// `(upper bound, cumulative count)` for each bucket, ending with
    /// `+Inf` whose count is the total.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut running = 0;
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&self.counts)
            .map(|(bound, n)| {
                running += n;
                (bound, running)
            })
            .collect()
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

/// What a REST request was, in upstream's metric labels. Build it with
/// [`RequestInfo::resource`] or [`RequestInfo::non_resource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestInfo {
    /// `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE`,
    /// `DELETECOLLECTION`, `CONNECT` — upstream's normalized verbs.
    pub verb: &'static str,
    /// `All` for a dry run, empty otherwise.
    pub dry_run: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    /// `resource` (one named object, or a create), `namespace`, `cluster`,
    /// or empty for a non-resource path such as `/version`.
    pub scope: &'static str,
}

impl RequestInfo {
    /// Labels for a request on a resource, normalized as upstream's
    /// `NormalizedVerb` and `CleanScope` do: a GET of a collection is a
    /// LIST, or a WATCH with `watch=true`; a DELETE of a collection is a
    /// DELETECOLLECTION; exec and attach are CONNECT; an apply patch is
    /// APPLY.
    #[allow(clippy::too_many_arguments)]
    pub fn resource(
        method: &http::Method,
        info: &'static api::ResourceInfo,
        namespace: &str,
        named: bool,
        subresource: Option<&str>,
        watch: bool,
        apply: bool,
        dry_run: bool,
    ) -> Self {
        let subresource = clean_subresource(subresource);
        let verb = match *method {
            _ if matches!(subresource, "exec" | "attach" | "portforward" | "proxy") => "CONNECT",
            http::Method::GET | http::Method::HEAD if named => "GET",
            http::Method::GET | http::Method::HEAD if watch => "WATCH",
            http::Method::GET | http::Method::HEAD => "LIST",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::PATCH if apply => "APPLY",
            http::Method::PATCH => "PATCH",
            http::Method::DELETE if named => "DELETE",
            http::Method::DELETE => "DELETECOLLECTION",
            _ => "other",
        };
        let scope = if named || verb == "POST" {
            "resource"
        } else if !namespace.is_empty() {
            "namespace"
        } else {
            "cluster"
        };
        RequestInfo {
            verb,
            dry_run: if dry_run { "All" } else { "" },
            group: info.group,
            version: info.version,
            resource: info.resource,
            subresource,
            scope,
        }
    }

    /// Labels for a path that names no resource (`/version`, `/api`,
    /// `/openapi/v3`, `/metrics`, a 404): only the verb is known.
    pub fn non_resource(method: &http::Method) -> Self {
        let verb = match *method {
            http::Method::GET => "GET",
            http::Method::HEAD => "HEAD",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::PATCH => "PATCH",
            http::Method::DELETE => "DELETE",
            _ => "other",
        };
        RequestInfo { verb, dry_run: "", group: "", version: "", resource: "", subresource: "", scope: "" }
    }
}

/// Subresources with a name of their own in the labels; anything else (a
/// path that will 404) is `other`, so a client cannot grow the label set.
fn clean_subresource(sub: Option<&str>) -> &'static str {
    match sub {
        None => "",
        Some("status") => "status",
        Some("scale") => "scale",
        Some("binding") => "binding",
        Some("log") => "log",
        Some("exec") => "exec",
        Some("attach") => "attach",
        Some("portforward") => "portforward",
        Some("proxy") => "proxy",
        Some("finalize") => "finalize",
        Some(_) => "other",
    }
}

/// The `type` label of a store call: the qualified resource its key is
/// under (`pods`, `deployments.apps`), as upstream labels it since 1.26.
/// Kept as (resource, group) so recording allocates nothing.
type ObjectType = (&'static str, &'static str);

fn object_type(key: &[u8]) -> ObjectType {
    let resource = key.strip_prefix(b"/registry/").map(|rest| rest.split(|b| *b == b'/').next().unwrap_or_default()).unwrap_or_default();
    api::resources::RESOURCES
        .iter()
        .find(|r| r.resource.as_bytes() == resource)
        .map(|r| (r.resource, r.group))
        .unwrap_or(("", ""))
}

/// The metrics registry. One per process, reached through [`global`], as
/// upstream's `legacyregistry`.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(RequestInfo, u16), u64>>,
    durations: Mutex<BTreeMap<RequestInfo, Histogram>>,
    longrunning: Arc<Mutex<BTreeMap<RequestInfo, i64>>>,
    etcd: Mutex<BTreeMap<(&'static str, ObjectType), Histogram>>,
}

/// The process' metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);
    &METRICS
}

/// A poisoned lock only means a panic elsewhere mid-increment; the counts
/// are still usable, so recording carries on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Holds one slot of `apiserver_longrunning_requests` while a watch is
/// open; dropping it (the client went away, or the watch ended) releases
/// the slot.
#[derive(Debug)]
pub struct LongRunning {
    gauge: Arc<Mutex<BTreeMap<RequestInfo, i64>>>,
    info: RequestInfo,
}

impl Drop for LongRunning {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.gauge).get_mut(&self.info) {
            *n -= 1;
        }
    }
}

impl Metrics {
    /// Records a finished REST request: its count by code, and its latency.
    pub fn observe_request(&self, info: RequestInfo, code: u16, elapsed: Duration) {
        *lock(&self.requests).entry((info, code)).or_default() += 1;
        lock(&self.durations).entry(info).or_insert_with(|| Histogram::new(DURATION_BUCKETS)).observe(elapsed.as_secs_f64());
    }

    /// Counts a long-running request (a watch) as open until the returned
    /// guard is dropped.
    pub fn long_running(&self, info: RequestInfo) -> LongRunning {
        *lock(&self.longrunning).entry(info).or_default() += 1;
        LongRunning { gauge: self.longrunning.clone(), info }
    }

    /// Records one call to the store.
    pub fn observe_etcd(&self, operation: &'static str, key: &[u8], elapsed: Duration) {
        lock(&self.etcd)
            .entry((operation, object_type(key)))
            .or_insert_with(|| Histogram::new(DURATION_BUCKETS))
            .observe(elapsed.as_secs_f64());
    }

    /// Requests counted so far with these labels and code, for tests.
    pub fn request_count(&self, info: &RequestInfo, code: u16) -> u64 {
        lock(&self.requests).get(&(*info, code)).copied().unwrap_or(0)
    }

    /// Everything, in the Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        header(&mut out, "apiserver_request_total", "counter", "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.");
        for ((info, code), n) in lock(&self.requests).iter() {
            let _ = writeln!(out, "apiserver_request_total{{{},code=\"{code}\"}} {n}", request_labels(info, true));
        }
        header(&mut out, "apiserver_request_duration_seconds", "histogram", "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.");
        for (info, h) in lock(&self.durations).iter() {
            histogram(&mut out, "apiserver_request_duration_seconds", &request_labels(info, true), h);
        }
        header(&mut out, "apiserver_longrunning_requests", "gauge", "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component. Not all requests are tracked this way.");
        for (info, n) in lock(&self.longrunning).iter() {
            let _ = writeln!(out, "apiserver_longrunning_requests{{{}}} {n}", request_labels(info, false));
        }
        header(
            &mut out,
            "etcd_request_duration_seconds",
            "histogram",
            "Etcd request latency in seconds for each operation and object type.",
        );
        for ((operation, (resource, group)), h) in lock(&self.etcd).iter() {
            let ty = if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") };
            let labels = format!("operation=\"{}\",type=\"{}\"", escape(operation), escape(&ty));
            histogram(&mut out, "etcd_request_duration_seconds", &labels, h);
        }
        if let Some(rss) = resident_memory_bytes() {
            header(&mut out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
            let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn request_labels(info: &RequestInfo, with_dry_run: bool) -> String {
    let mut pairs = vec![("verb", info.verb)];
    if with_dry_run {
        pairs.push(("dry_run", info.dry_run));
    }
    pairs.extend([
        ("group", info.group),
        ("version", info.version),
        ("resource", info.resource),
        ("subresource", info.subresource),
        ("scope", info.scope),
        ("component", COMPONENT),
    ]);
    pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect::<Vec<_>>().join(",")
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    for (bound, n) in h.cumulative() {
        let le = if bound.is_infinite() { "+Inf".to_string() } else { bound.to_string() };
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum());
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count());
}

/// Label values escape backslash, double quote and newline (format 0.0.4).
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// This process' resident set, from `/proc` (Linux only).
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// The store as the registry sees it, with every call timed into
/// `etcd_request_duration_seconds` — the place upstream's etcd3 storage
/// records it, one layer above the client.
///
/// Operations are named as upstream's storage names them: a one-key range
/// is `get`, a prefix range `list` (or `listWithCount` when only counting),
/// a guarded transaction `create` when it guards on absence, `delete` when
/// it deletes, else `update` (GuaranteedUpdate's compare-and-swap).
pub struct MeteredKv {
    inner: Arc<dyn Kv>,
    metrics: &'static Metrics,
}

impl std::fmt::Debug for MeteredKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredKv").finish_non_exhaustive()
    }
}

impl MeteredKv {
    /// Wraps `inner`, recording into the [`global`] metrics.
    pub fn new(inner: Arc<dyn Kv>) -> Self {
        MeteredKv { inner, metrics: global() }
    }
}

fn txn_operation(req: &TxnRequest) -> &'static str {
    let deletes = req.success.iter().any(|op| matches!(op, RequestOp::DeleteRange(_)));
    let creates = req.compare.iter().any(|c| {
        matches!(
            c.target,
            store::CompareTarget::ModRevision(0) | store::CompareTarget::CreateRevision(0) | store::CompareTarget::Version(0)
        )
    });
    if deletes {
        "delete"
    } else if creates {
        "create"
    } else {
        "update"
    }
}

#[async_trait]
impl Kv for MeteredKv {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, store::Error> {
        let operation = match (req.range_end.is_empty(), req.count_only) {
            (true, _) => "get",
            (false, true) => "listWithCount",
            (false, false) => "list",
        };
        let key = req.key.clone();
        let started = Instant::now();
        let resp = self.inner.range(req).await;
        self.metrics.observe_etcd(operation, &key, started.elapsed());
        resp
    }

    async fn put(&self, req: PutRequest) -> Result<PutResponse, store::Error> {
        let key = req.key.clone();
        let started = Instant::now();
        let resp = self.inner.put(req).await;
        self.metrics.observe_etcd("update", &key, started.elapsed());
        resp
    }

    async fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse, store::Error> {
        let key = req.key.clone();
        let started = Instant::now();
        let resp = self.inner.delete_range(req).await;
        self.metrics.observe_etcd("delete", &key, started.elapsed());
        resp
    }

    async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, store::Error> {
        let operation = txn_operation(&req);
        let key = req.compare.first().map(|c| c.key.clone()).unwrap_or_default();
        let started = Instant::now();
        let resp = self.inner.txn(req).await;
        self.metrics.observe_etcd(operation, &key, started.elapsed());
        resp
    }

    async fn watch(&self, req: WatchRequest) -> Result<Watcher, store::Error> {
        let key = req.key.clone();
        let started = Instant::now();
        let resp = self.inner.watch(req).await;
        self.metrics.observe_etcd("watch", &key, started.elapsed());
        resp
    }

    async fn compact(&self, revision: i64) -> Result<(), store::Error> {
        let started = Instant::now();
        let resp = self.inner.compact(revision).await;
        self.metrics.observe_etcd("compact", b"", started.elapsed());
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_hold_values_up_to_and_including_their_bound() {
        static BOUNDS: &[f64] = &[0.005, 0.025, 0.1];
        // (value, the bucket index it lands in; 3 is +Inf)
        let cases = [(0.0, 0), (0.001, 0), (0.005, 0), (0.0051, 1), (0.025, 1), (0.05, 2), (0.1, 2), (0.2, 3), (100.0, 3)];
        for (value, want) in cases {
            let mut h = Histogram::new(BOUNDS);
            h.observe(value);
            let cumulative: Vec<u64> = h.cumulative().into_iter().map(|(_, n)| n).collect();
            let mut expected = vec![0u64; 4];
            for slot in expected.iter_mut().skip(want) {
                *slot = 1;
            }
            assert_eq!(cumulative, expected, "value {value}");
        }
    }

    #[test]
    fn histogram_accumulates_counts_and_sum() {
        let mut h = Histogram::new(DURATION_BUCKETS);
        for v in [0.001, 0.003, 0.03, 0.5, 120.0] {
            h.observe(v);
        }
        let c = h.cumulative();
        assert_eq!(c.len(), DURATION_BUCKETS.len() + 1);
        assert_eq!(c[0], (0.005, 2));
        assert_eq!(c[1], (0.025, 2));
        assert_eq!(c[2], (0.05, 3));
        assert_eq!(c[c.len() - 2], (60.0, 4));
        assert_eq!(c[c.len() - 1].1, 5);
        assert_eq!(h.count(), 5);
        assert!((h.sum() - 120.534).abs() < 1e-9);
    }

    fn pods() -> &'static api::ResourceInfo {
        api::resources::by_resource("", "pods").expect("pods")
    }

    #[test]
    fn verbs_and_scopes_are_normalized_like_upstream() {
        use http::Method;
        let deploy = api::resources::by_resource("apps", "deployments").expect("deployments");
        // (method, resource, namespace, named, subresource, watch, apply) -> (verb, scope, subresource)
        type Case = (
            Method,
            &'static api::ResourceInfo,
            &'static str,
            bool,
            Option<&'static str>,
            bool,
            bool,
            (&'static str, &'static str, &'static str),
        );
        let cases: &[Case] = &[
            (Method::GET, pods(), "default", true, None, false, false, ("GET", "resource", "")),
            (Method::GET, pods(), "default", false, None, false, false, ("LIST", "namespace", "")),
            (Method::GET, pods(), "", false, None, false, false, ("LIST", "cluster", "")),
            (Method::GET, pods(), "default", false, None, true, false, ("WATCH", "namespace", "")),
            (Method::POST, pods(), "default", false, None, false, false, ("POST", "resource", "")),
            (Method::PUT, pods(), "default", true, Some("status"), false, false, ("PUT", "resource", "status")),
            (Method::PATCH, deploy, "default", true, Some("scale"), false, false, ("PATCH", "resource", "scale")),
            (Method::PATCH, deploy, "default", true, None, false, true, ("APPLY", "resource", "")),
            (Method::DELETE, pods(), "default", true, None, false, false, ("DELETE", "resource", "")),
            (Method::DELETE, pods(), "default", false, None, false, false, ("DELETECOLLECTION", "namespace", "")),
            (Method::POST, pods(), "default", true, Some("exec"), false, false, ("CONNECT", "resource", "exec")),
            (Method::GET, pods(), "default", true, Some("log"), false, false, ("GET", "resource", "log")),
            (Method::GET, pods(), "default", true, Some("nonsense"), false, false, ("GET", "resource", "other")),
        ];
        for (method, info, ns, named, sub, watch, apply, (verb, scope, subresource)) in cases {
            let got = RequestInfo::resource(method, info, ns, *named, *sub, *watch, *apply, false);
            assert_eq!((got.verb, got.scope, got.subresource), (*verb, *scope, *subresource), "{method} {} {sub:?}", info.resource);
        }
    }

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::default();
        let list = RequestInfo::resource(&http::Method::GET, pods(), "default", false, None, false, false, false);
        m.observe_request(list, 200, Duration::from_millis(3));
        m.observe_request(list, 200, Duration::from_millis(30));
        m.observe_etcd("list", b"/registry/deployments/default/", Duration::from_millis(1));
        let watch = RequestInfo::resource(&http::Method::GET, pods(), "", false, None, true, false, false);
        let open = m.long_running(watch);
        let text = m.render();
        let labels =
            r#"verb="LIST",dry_run="",group="",version="v1",resource="pods",subresource="",scope="namespace",component="apiserver""#;
        for line in [
            "# TYPE apiserver_request_total counter".to_string(),
            format!("apiserver_request_total{{{labels},code=\"200\"}} 2"),
            "# TYPE apiserver_request_duration_seconds histogram".to_string(),
            format!("apiserver_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 1"),
            format!("apiserver_request_duration_seconds_bucket{{{labels},le=\"0.05\"}} 2"),
            format!("apiserver_request_duration_seconds_bucket{{{labels},le=\"1\"}} 2"),
            format!("apiserver_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2"),
            format!("apiserver_request_duration_seconds_count{{{labels}}} 2"),
            r#"apiserver_longrunning_requests{verb="WATCH",group="",version="v1",resource="pods",subresource="",scope="cluster",component="apiserver"} 1"#.to_string(),
            r#"etcd_request_duration_seconds_bucket{operation="list",type="deployments.apps",le="0.005"} 1"#.to_string(),
            r#"etcd_request_duration_seconds_count{operation="list",type="deployments.apps"} 1"#.to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        let sum_line = text.lines().find(|l| l.starts_with(&format!("apiserver_request_duration_seconds_sum{{{labels}}}"))).expect("sum");
        let sum: f64 = sum_line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a number");
        assert!((sum - 0.033).abs() < 1e-9, "{sum_line}");
        drop(open);
        assert!(m.render().contains(r#"scope="cluster",component="apiserver"} 0"#), "the watch gauge drops back to 0");
    }

    /// One HTTP/1.1 request as the admin, over TLS on a fresh connection;
    /// the whole response.
    async fn http_get(addr: std::net::SocketAddr, tls: &tokio_rustls::TlsConnector, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name").to_owned();
        let mut conn = tls.connect(name, tcp).await.expect("handshake");
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        conn.write_all(req.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let _ = conn.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn the_metrics_endpoint_counts_requests_and_store_calls() {
        let kv: Arc<dyn Kv> = Arc::new(store::Store::open_temporary().expect("store"));
        let server = crate::ApiServer::new(kv).await.expect("api-server");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cancel = tokio_util::sync::CancellationToken::new();
        let ca = api::pki::Ca::generate("test-ca").expect("ca");
        let serving = ca.issue(&api::pki::CertSpec::server("kube-apiserver", vec![], vec![addr.ip()])).expect("serving");
        let tls = api::tls::server_config(&serving, ca.cert_pem(), api::tls::ClientAuth::Optional).expect("server tls");
        tokio::spawn(server.serve(listener, tls, cancel.clone()));
        let admin = ca.issue(&api::pki::CertSpec::client("admin", &["system:masters"])).expect("admin");
        let mut client = (*api::tls::client_config(&api::tls::Trust::Ca(ca.cert_pem().into()), Some(&admin)).expect("client tls")).clone();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client));

        let list = RequestInfo::resource(
            &http::Method::GET,
            api::resources::by_resource("", "configmaps").expect("configmaps"),
            "default",
            false,
            None,
            false,
            false,
            false,
        );
        let before = global().request_count(&list, 200);
        let answer = http_get(addr, &tls, "/api/v1/namespaces/default/configmaps").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let scraped = http_get(addr, &tls, "/metrics").await;
        cancel.cancel();

        assert!(scraped.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{scraped}");
        assert_eq!(global().request_count(&list, 200), before + 1);
        let counted = format!("apiserver_request_total{{{},code=\"200\"}} {}", request_labels(&list, true), before + 1);
        assert!(scraped.lines().any(|l| l == counted), "missing {counted:?} in\n{scraped}");
        assert!(scraped.contains(r#"etcd_request_duration_seconds_count{operation="list",type="configmaps"}"#), "{scraped}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), r"x\ny");
    }

    #[test]
    fn store_calls_are_named_like_upstream_storage() {
        use store::{Compare, CompareResult, CompareTarget};
        let guard = |target| Compare { key: b"/registry/pods/default/a".to_vec(), range_end: vec![], result: CompareResult::Equal, target };
        let put = RequestOp::Put(PutRequest::default());
        let del = RequestOp::DeleteRange(DeleteRangeRequest::default());
        let cases = [
            (TxnRequest { compare: vec![guard(CompareTarget::ModRevision(0))], success: vec![put.clone()], failure: vec![] }, "create"),
            (TxnRequest { compare: vec![guard(CompareTarget::ModRevision(7))], success: vec![put], failure: vec![] }, "update"),
            (TxnRequest { compare: vec![guard(CompareTarget::ModRevision(7))], success: vec![del], failure: vec![] }, "delete"),
        ];
        for (txn, want) in cases {
            assert_eq!(txn_operation(&txn), want);
        }
        assert_eq!(object_type(b"/registry/pods/default/a"), ("pods", ""));
        assert_eq!(object_type(b"/registry/replicasets/default/a"), ("replicasets", "apps"));
        assert_eq!(object_type(b"/elsewhere"), ("", ""));
    }
}
