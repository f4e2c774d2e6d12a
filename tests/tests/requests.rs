//! Every malformed request a client can send, over real HTTP to the real
//! binary: each must be answered as kube-apiserver 1.32 answers it — the
//! same code, `Status` reason and message — and none may panic the server,
//! hang, or change what it stores.
//!
//! The requests are written by hand on a TLS stream with the admin's
//! certificate (HTTP/1.0, so every body ends with the connection and
//! nothing is chunked), because a client library would refuse to send most
//! of them.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use tinykube_tests::{read_to_end, require_tool, Cluster, Kubectl, TlsStream, Who};

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    code: u16,
    /// Header lines, names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn status(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// An answer's status code, its headers, and the bytes of its body read so far.
type Head = (u16, Vec<(String, String)>, Vec<u8>);

/// Reads the status line and headers of an answer from `stream`; the body
/// is what follows.
fn read_head(stream: &mut TlsStream) -> Result<Head> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk)?;
        anyhow::ensure!(n > 0, "the connection closed before the answer's head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let code = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).context("an HTTP status line")?;
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    Ok((code, headers, buf[end + 4..].to_vec()))
}

/// Sends one request with `extra` header lines and reads the whole answer.
fn send(cluster: &Cluster, method: &str, target: &str, extra: &str, body: &[u8]) -> Result<Answer> {
    let mut stream = cluster.connect(Who::Admin)?;
    let head = format!("{method} {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n{extra}Content-Length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes())?;
    // The server may answer (413) before reading a large body; a write
    // error then is expected, and the answer is still there to read.
    let _ = stream.write_all(body);
    let (code, headers, mut rest) = read_head(&mut stream)?;
    read_to_end(&mut stream, &mut rest).with_context(|| format!("reading the body of {method} {target}"))?;
    Ok(Answer { code, headers, body: rest })
}

fn get(cluster: &Cluster, target: &str) -> Result<Answer> {
    send(cluster, "GET", target, "", b"")
}

/// The store's revision, as a list reports it.
fn revision(cluster: &Cluster) -> Result<String> {
    let list = get(cluster, "/api/v1/namespaces")?.status();
    list["metadata"]["resourceVersion"].as_str().map(str::to_string).context("a list resourceVersion")
}

/// The server is still up, has the same revision, and never panicked.
fn assert_unharmed(cluster: &Cluster, before: &str) -> Result<()> {
    assert_eq!(get(cluster, "/healthz")?.code, 200, "the server still answers");
    assert_eq!(revision(cluster)?, before, "no bad request may write anything");
    let log = std::fs::read_to_string(cluster.data_dir.path().join("server.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "the server log holds a panic:\n{}", cluster.log_tail());
    Ok(())
}

const PODS: &str = "/api/v1/namespaces/default/pods";
const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const LIST_INVALID: &str = "ListOptions.meta.k8s.io \"\" is invalid: ";
const JSON: &str = "Content-Type: application/json\r\n";

/// One bad request and upstream's answer to it.
struct Case {
    method: &'static str,
    target: String,
    headers: String,
    body: Vec<u8>,
    code: u16,
    reason: &'static str,
    message: String,
}

fn case(method: &'static str, target: impl Into<String>, code: u16, reason: &'static str, message: impl Into<String>) -> Case {
    Case {
        method,
        target: target.into(),
        headers: String::new(),
        body: Vec::new(),
        code,
        reason,
        message: message.into(),
    }
}

fn with_body(mut c: Case, headers: &str, body: impl Into<Vec<u8>>) -> Case {
    c.headers = headers.to_string();
    c.body = body.into();
    c
}

fn bad_requests() -> Vec<Case> {
    let label_char =
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    let config_map = |name: &str| format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"a":"1"}}}}"#);
    vec![
        // Label selectors.
        case("GET", format!("{PODS}?labelSelector=a%3Db%2C"), 400, "BadRequest", "found '', expected: identifier after ','"),
        case("GET", format!("{PODS}?labelSelector=%2C%2C"), 400, "BadRequest", "found ',', expected: !, identifier, or 'end of string'"),
        case("GET", format!("{PODS}?labelSelector=a+in+(b"), 400, "BadRequest", "unable to parse requirement: found '', expected: ',' or ')'"),
        case(
            "GET",
            format!("{PODS}?labelSelector=a+b"),
            400,
            "BadRequest",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
        ),
        case("GET", format!("{PODS}?labelSelector=-a"), 400, "BadRequest", format!("unable to parse requirement: <nil>: Invalid value: \"-a\": {label_char}")),
        case("GET", format!("{PODS}?watch=1&labelSelector=%3Da"), 400, "BadRequest", "found '=', expected: !, identifier, or 'end of string'"),
        // Field selectors.
        case("GET", format!("{PODS}?fieldSelector=nonsense"), 400, "BadRequest", "invalid selector: 'nonsense'; can't understand 'nonsense'"),
        case("GET", format!("{PODS}?fieldSelector=metadata.name%3D%3Da%3Db"), 400, "BadRequest", "invalid field selector: unescaped character in value: 61"),
        case("GET", format!("{PODS}?fieldSelector=spec.bogus%3Dx"), 400, "BadRequest", "field label not supported: spec.bogus"),
        // Integers.
        case("GET", format!("{PODS}?limit=abc"), 400, "BadRequest", "strconv.ParseInt: parsing \"abc\": invalid syntax"),
        case("GET", format!("{PODS}?limit=1.5"), 400, "BadRequest", "strconv.ParseInt: parsing \"1.5\": invalid syntax"),
        case("GET", format!("{PODS}?watch=1&timeoutSeconds=abc"), 400, "BadRequest", "strconv.ParseInt: parsing \"abc\": invalid syntax"),
        // resourceVersion, continue and resourceVersionMatch.
        case(
            "GET",
            format!("{PODS}?resourceVersion=abc"),
            400,
            "BadRequest",
            "invalid resource version: resourceVersion: Invalid value: \"abc\": strconv.ParseUint: parsing \"abc\": invalid syntax",
        ),
        case(
            "GET",
            format!("{PODS}?watch=1&resourceVersion=-1"),
            400,
            "BadRequest",
            "invalid resource version: resourceVersion: Invalid value: \"-1\": strconv.ParseUint: parsing \"-1\": invalid syntax",
        ),
        case("GET", format!("{PODS}?continue=abc&resourceVersion=5"), 400, "BadRequest", "specifying resource version is not allowed when using continue"),
        case(
            "GET",
            format!("{PODS}?resourceVersionMatch=NotOlderThan"),
            422,
            "Invalid",
            format!("{LIST_INVALID}resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"),
        ),
        case(
            "GET",
            format!("{PODS}?resourceVersion=1&resourceVersionMatch=Bogus"),
            422,
            "Invalid",
            format!("{LIST_INVALID}resourceVersionMatch: Unsupported value: \"Bogus\": supported values: \"Exact\", \"NotOlderThan\", \"\""),
        ),
        case(
            "GET",
            format!("{PODS}?resourceVersion=0&resourceVersionMatch=Exact"),
            422,
            "Invalid",
            format!("{LIST_INVALID}resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""),
        ),
        case(
            "GET",
            format!("{PODS}?sendInitialEvents=true"),
            422,
            "Invalid",
            format!("{LIST_INVALID}sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"),
        ),
        case(
            "GET",
            format!("{PODS}?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"),
            422,
            "Invalid",
            format!("{LIST_INVALID}resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"),
        ),
        case(
            "GET",
            format!("{PODS}?watch=1&resourceVersion=1&resourceVersionMatch=NotOlderThan"),
            422,
            "Invalid",
            format!("{LIST_INVALID}resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"),
        ),
        // Write options.
        with_body(
            case(
                "POST",
                format!("{CONFIGMAPS}?dryRun=Bogus"),
                422,
                "Invalid",
                "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Bogus\"}: supported values: \"All\"",
            ),
            JSON,
            config_map("dry"),
        ),
        with_body(
            case(
                "POST",
                format!("{CONFIGMAPS}?fieldManager={}", "m".repeat(129)),
                422,
                "Invalid",
                "CreateOptions.meta.k8s.io \"\" is invalid: fieldManager: Too long: may not be more than 128 bytes",
            ),
            JSON,
            config_map("manager"),
        ),
        with_body(
            case(
                "POST",
                format!("{CONFIGMAPS}?fieldValidation=Bogus"),
                422,
                "Invalid",
                "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Bogus\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
            ),
            JSON,
            config_map("validation"),
        ),
        case(
            "DELETE",
            format!("{CONFIGMAPS}/kube-root-ca.crt?propagationPolicy=Bogus"),
            422,
            "Invalid",
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Bogus\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"",
        ),
        // A DeleteOptions body that is not an object (it once panicked the
        // handler when the query set options on it).
        with_body(
            case(
                "DELETE",
                format!("{CONFIGMAPS}/kube-root-ca.crt?gracePeriodSeconds=0"),
                400,
                "BadRequest",
                r#"couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type struct { APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" }"#,
            ),
            JSON,
            "[null, null]",
        ),
        // Duplicate fields under Strict, in JSON and in YAML.
        with_body(
            case(
                "POST",
                format!("{CONFIGMAPS}?fieldValidation=Strict"),
                400,
                "BadRequest",
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: duplicate field \"data.a\"",
            ),
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1","a":"2"}}"#,
        ),
        with_body(
            case(
                "POST",
                format!("{CONFIGMAPS}?fieldValidation=Strict"),
                400,
                "BadRequest",
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: duplicate field \"metadata.name\"",
            ),
            "Content-Type: application/yaml\r\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n",
        ),
        // Bodies.
        with_body(
            case(
                "POST",
                CONFIGMAPS,
                400,
                "BadRequest",
                "the body of the request nests objects or lists more than 128 levels deep: recursion limit exceeded at line 1 column 128",
            ),
            JSON,
            "[".repeat(100_000),
        ),
        with_body(case("POST", CONFIGMAPS, 413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728"), JSON, vec![b' '; 3 * 1024 * 1024 + 1]),
        with_body(
            case(
                "POST",
                CONFIGMAPS,
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got application/cbor)",
            ),
            "Content-Type: application/cbor\r\n",
            "x",
        ),
        // Content negotiation.
        with_body(
            case(
                "GET",
                PODS,
                406,
                "NotAcceptable",
                "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
            ),
            "Accept: application/xml\r\n",
            "",
        ),
        // Paths and methods.
        case("GET", "/nope", 404, "NotFound", "the server could not find the requested resource"),
        case("PUT", CONFIGMAPS, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource (PUT)"),
        // Limits of the request head.
        case(
            "GET",
            format!("{PODS}?labelSelector={}", "a".repeat(40 * 1024)),
            414,
            "RequestURITooLong",
            format!("the request URI is {} bytes long; the limit is 32768", PODS.len() + "?labelSelector=".len() + 40 * 1024),
        ),
    ]
}

#[test]
fn every_bad_request_is_answered_as_upstream_without_harm() -> Result<()> {
    let cluster = Cluster::start_with(&["--no-agent"])?;
    let before = revision(&cluster)?;
    let mut failures = Vec::new();
    for c in bad_requests() {
        let answer = send(&cluster, c.method, &c.target, &c.headers, &c.body)?;
        let status = answer.status();
        let got = (answer.code, status["reason"].as_str().unwrap_or_default(), status["message"].as_str().unwrap_or_default());
        let shown: String = c.target.chars().take(100).collect();
        if got != (c.code, c.reason, c.message.as_str()) || status["kind"] != "Status" || status["code"] != c.code {
            failures.push(format!("{} {shown}\n   want {} {} {:?}\n    got {got:?}", c.method, c.code, c.reason, c.message));
        }
    }
    assert!(failures.is_empty(), "{} answers differ from upstream's:\n{}", failures.len(), failures.join("\n"));

    // Headers past the limit: a 431 with a Status.
    let big = format!("X-Big: {}\r\n", "v".repeat(600 * 1024));
    let answer = send(&cluster, "GET", PODS, &big, b"")?;
    assert_eq!((answer.code, answer.status()["reason"].as_str()), (431, Some("RequestHeaderFieldsTooLarge")), "{answer:?}");

    // Booleans decode leniently, as upstream: `watch=abc` is a watch.
    let mut stream = cluster.connect(Who::Admin)?;
    stream.write_all(format!("GET {CONFIGMAPS}?watch=abc HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())?;
    let (code, headers, _) = read_head(&mut stream)?;
    assert_eq!(code, 200);
    assert!(!headers.iter().any(|(k, _)| k == "content-length"), "a watch streams: {headers:?}");
    drop(stream);

    assert_unharmed(&cluster, &before)
}

#[test]
fn duplicate_fields_under_warn_are_warnings() -> Result<()> {
    let cluster = Cluster::start_with(&["--no-agent"])?;
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1","a":"2"}}"#;
    let answer = send(&cluster, "POST", &format!("{CONFIGMAPS}?fieldValidation=Warn&dryRun=All"), JSON, body.as_bytes())?;
    assert_eq!(answer.code, 201, "{:?}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.header("warning"), Some(r#"299 - "duplicate field 'data.a'""#));
    assert_eq!(answer.status()["data"]["a"], "2", "the last value wins, as in Go");
    let answer = send(&cluster, "POST", &format!("{CONFIGMAPS}?fieldValidation=Ignore&dryRun=All"), JSON, body.as_bytes())?;
    assert_eq!((answer.code, answer.header("warning")), (201, None));
    Ok(())
}

#[test]
fn watches_are_capped_per_client() -> Result<()> {
    let cluster = Cluster::start_with(&["--no-agent"])?;
    let open_watch = || -> Result<(TlsStream, Head)> {
        let mut stream = cluster.connect(Who::Admin)?;
        stream.write_all(format!("GET {CONFIGMAPS}?watch=1 HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())?;
        let head = read_head(&mut stream)?;
        Ok((stream, head))
    };
    let mut open = Vec::new();
    for i in 0..100 {
        let (stream, (code, _, _)) = open_watch()?;
        assert_eq!(code, 200, "watch {i}");
        open.push(stream);
    }
    let (mut stream, (code, headers, mut body)) = open_watch()?;
    read_to_end(&mut stream, &mut body)?;
    assert_eq!(code, 429);
    assert!(headers.contains(&("retry-after".to_string(), "1".to_string())), "{headers:?}");
    let status: Value = serde_json::from_slice(&body)?;
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["message"], "Too many requests, please try again later.");
    // Lists are not watches: still served.
    assert_eq!(get(&cluster, CONFIGMAPS)?.code, 200);
    // A watch that ends gives its place back.
    drop(open.pop());
    cluster.wait_for("a watch slot to free up", Duration::from_secs(10), || {
        open_watch().ok().filter(|(_, (code, _, _))| *code == 200).map(|_| ())
    })?;
    Ok(())
}

#[test]
fn kubectl_prints_the_servers_messages() -> Result<()> {
    if !require_tool("kubectl", Kubectl::available(), "install kubectl 1.32 and put it on the PATH") {
        return Ok(());
    }
    let cluster = Cluster::start_with(&["--no-agent"])?;
    let kubectl = Kubectl::new(&cluster)?;
    let (_, _, stderr) = kubectl.fails(&["get", "--raw", "/api/v1/configmaps?limit=abc"])?;
    assert!(
        stderr.contains("strconv.ParseInt: parsing \\\"abc\\\": invalid syntax")
            || stderr.contains("strconv.ParseInt: parsing \"abc\": invalid syntax"),
        "{stderr}"
    );
    let (_, _, stderr) = kubectl.fails(&["get", "configmaps", "-l", "a in (b"])?;
    assert!(stderr.contains("unable to parse requirement: found '', expected: ',' or ')'"), "{stderr}");
    let (_, _, stderr) = kubectl.fails(&["get", "configmaps", "--field-selector", "nonsense"])?;
    assert!(stderr.contains("can't understand 'nonsense'"), "{stderr}");
    // `in ()` is a valid selector upstream: the set of the empty value.
    kubectl.ok(&["get", "configmaps", "-l", "a in ()"])?;
    Ok(())
}
