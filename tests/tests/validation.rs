//! Validation through the real server: every bad object the api-server
//! hardening issue found is sent over REST (create, PUT, merge patch, JSON
//! patch) and must come back with kube-apiserver's code, reason and
//! message, leaving the store's revision where it was.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tinykube_tests::{read_to_end, Cluster, Who};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const PODS: &str = "/api/v1/namespaces/default/pods";

const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const JSON: &str = "application/json";

/// Decodes a `Transfer-Encoding: chunked` body.
fn unchunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// One HTTP/1.1 request (TLS, as the admin); the status code and the JSON body.
fn request(cluster: &Cluster, method: &str, path: &str, content_type: &str, body: &str) -> Result<(u16, Value)> {
    let mut stream = cluster.connect(Who::Admin)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut response = Vec::new();
    read_to_end(&mut stream, &mut response)?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).context("an HTTP status line")?;
    let (headers, body) = response.split_once("\r\n\r\n").context("a header block")?;
    let body = if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") { unchunk(body) } else { body.to_string() };
    let value = serde_json::from_str(&body).with_context(|| format!("a JSON body in {response}"))?;
    Ok((code, value))
}

/// The store's revision, as a list reports it.
fn revision(cluster: &Cluster) -> Result<String> {
    let (code, list) = request(cluster, "GET", CONFIGMAPS, JSON, "")?;
    assert_eq!(code, 200, "{list}");
    Ok(list["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string())
}

/// Waits until no component has written for a second, so that a changed
/// revision can only be the request's doing.
fn wait_until_quiet(cluster: &Cluster) -> Result<()> {
    let mut last = revision(cluster)?;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_secs(1));
        let now = revision(cluster)?;
        if now == last {
            return Ok(());
        }
        last = now;
    }
    anyhow::bail!("the store never went quiet")
}

/// One bad request and what kube-apiserver answers to it.
struct Case {
    rule: &'static str,
    method: &'static str,
    path: String,
    content_type: &'static str,
    body: Value,
    code: u16,
    /// Upstream's reason; empty for a plain 500, whose Status has none.
    reason: &'static str,
    message: String,
}

fn pod(name: &str, container: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container]}})
}

fn config_map(name: &str, extra: Value) -> Value {
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    if let (Some(cm), Some(extra)) = (cm.as_object_mut(), extra.as_object()) {
        cm.extend(extra.clone());
    }
    cm
}

#[test]
fn bad_objects_are_refused_with_upstreams_answers() -> Result<()> {
    let cluster = Cluster::start_with(&["--no-agent"])?;
    let (code, cm) = request(&cluster, "POST", CONFIGMAPS, JSON, &config_map("cm", json!({"data": {"a": "b"}})).to_string())?;
    assert_eq!(code, 201, "{cm}");
    let uid = cm["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    // Bound to a node that never comes, so no scheduler writes about it.
    let mut bound = pod("p", json!({"name": "c", "image": "busybox"}));
    bound["spec"]["nodeName"] = json!("nowhere");
    let (code, p) = request(&cluster, "POST", PODS, JSON, &bound.to_string())?;
    assert_eq!(code, 201, "{p}");
    wait_until_quiet(&cluster)?;
    let cm_path = format!("{CONFIGMAPS}/cm");
    let mut put_other_uid = cm.clone();
    put_other_uid["metadata"]["uid"] = json!("another-uid");
    if let Some(m) = put_other_uid["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let mut bad_port_pod = p.clone();
    bad_port_pod["spec"]["containers"][0]["ports"] = json!([{"containerPort": 70000}]);
    let quantity = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
    let go_struct = r#"struct { APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" }"#;

    let cases = vec![
        Case {
            rule: "ValidateAnnotations: total size",
            method: "POST",
            path: CONFIGMAPS.into(),
            content_type: JSON,
            body: config_map("big", json!({"metadata": {"name": "big", "annotations": {"a": "x".repeat(262144)}}})),
            code: 422,
            reason: "Invalid",
            message: "ConfigMap \"big\" is invalid: metadata.annotations: Too long: must have at most 262144 bytes".into(),
        },
        Case {
            rule: "validateContainerPorts: containerPort range",
            method: "POST",
            path: PODS.into(),
            content_type: JSON,
            body: pod("p2", json!({"name": "c", "image": "busybox", "ports": [{"containerPort": 70000}]})),
            code: 422,
            reason: "Invalid",
            message: "Pod \"p2\" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
                .into(),
        },
        Case {
            rule: "ResourceRequirements: a quantity that does not parse is a decode error",
            method: "POST",
            path: PODS.into(),
            content_type: JSON,
            body: pod("p3", json!({"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "abc"}}})),
            code: 400,
            reason: "BadRequest",
            message: format!("Pod in version \"v1\" cannot be handled as a Pod: {quantity}"),
        },
        Case {
            rule: "IsConfigMapKey: no '..'",
            method: "POST",
            path: CONFIGMAPS.into(),
            content_type: JSON,
            body: config_map("dots", json!({"data": {"..": "x"}})),
            code: 422,
            reason: "Invalid",
            message: "ConfigMap \"dots\" is invalid: data[..]: Invalid value: \"..\": must not be '..'".into(),
        },
        Case {
            rule: "IsConfigMapKey: the character set",
            method: "POST",
            path: CONFIGMAPS.into(),
            content_type: JSON,
            body: config_map("space", json!({"data": {"a b": "x"}})),
            code: 422,
            reason: "Invalid",
            message: "ConfigMap \"space\" is invalid: data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, \
                      '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
                .into(),
        },
        Case {
            rule: "ValidateConfigMap: a key in data and binaryData",
            method: "POST",
            path: CONFIGMAPS.into(),
            content_type: JSON,
            body: config_map("dup", json!({"data": {"k": "x"}, "binaryData": {"k": "eA=="}})),
            code: 422,
            reason: "Invalid",
            message: "ConfigMap \"dup\" is invalid: [data[k]: Invalid value: \"k\": duplicate of key present in binaryData, \
                      binaryData[k]: Invalid value: \"k\": duplicate of key present in data]"
                .into(),
        },
        Case {
            rule: "validateOwnerReference: uid",
            method: "POST",
            path: CONFIGMAPS.into(),
            content_type: JSON,
            body: config_map("owned", json!({"metadata": {"name": "owned", "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p"}]}})),
            code: 422,
            reason: "Invalid",
            message: "ConfigMap \"owned\" is invalid: metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty".into(),
        },
        Case {
            rule: "ValidateRollingUpdateDeployment: maxSurge percent",
            method: "POST",
            path: "/apis/apps/v1/namespaces/default/deployments".into(),
            content_type: JSON,
            body: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {
                "selector": {"matchLabels": {"app": "d"}},
                "strategy": {"rollingUpdate": {"maxSurge": "abc"}},
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
            code: 422,
            reason: "Invalid",
            message: "Deployment.apps \"d\" is invalid: spec.strategy.rollingUpdate.maxSurge: Invalid value: \
                      intstr.IntOrString{Type:1, IntVal:0, StrVal:\"abc\"}: a valid percent string must be a numeric string followed by an \
                      ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
                .into(),
        },
        Case {
            rule: "validateServicePort: port range",
            method: "POST",
            path: "/api/v1/namespaces/default/services".into(),
            content_type: JSON,
            body: json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 0}]}}),
            code: 422,
            reason: "Invalid",
            // The target port defaults to the port, and is checked too.
            message: "Service \"s\" is invalid: [spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, \
                      spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive]"
                .into(),
        },
        Case {
            rule: "ValidateSecret: a dockerconfigjson Secret needs its key",
            method: "POST",
            path: "/api/v1/namespaces/default/secrets".into(),
            content_type: JSON,
            body: json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "reg"}, "type": "kubernetes.io/dockerconfigjson"}),
            code: 422,
            reason: "Invalid",
            message: "Secret \"reg\" is invalid: data[.dockerconfigjson]: Required value".into(),
        },
        Case {
            rule: "etcd3 store: resourceVersion on create",
            method: "POST",
            path: CONFIGMAPS.into(),
            content_type: JSON,
            body: config_map("rv", json!({"metadata": {"name": "rv", "resourceVersion": "5"}})),
            code: 500,
            reason: "",
            message: "resourceVersion should not be set on objects to be created".into(),
        },
        Case {
            rule: "Preconditions: a PUT's uid",
            method: "PUT",
            path: cm_path.clone(),
            content_type: JSON,
            body: put_other_uid,
            code: 409,
            reason: "Conflict",
            message: format!("Operation cannot be fulfilled on configmaps \"cm\": Precondition failed: UID in precondition: another-uid, UID in object meta: {uid}"),
        },
        Case {
            rule: "checkName: a merge patch that renames",
            method: "PATCH",
            path: cm_path.clone(),
            content_type: MERGE,
            body: json!({"metadata": {"name": "other"}}),
            code: 400,
            reason: "BadRequest",
            message: "the name of the object (other) does not match the name on the URL (cm)".into(),
        },
        Case {
            rule: "checkName: a JSON patch that moves namespaces",
            method: "PATCH",
            path: cm_path.clone(),
            content_type: JSON_PATCH,
            body: json!([{"op": "replace", "path": "/metadata/namespace", "value": "x"}]),
            code: 400,
            reason: "BadRequest",
            message: "the namespace of the object (x) does not match the namespace on the request (default)".into(),
        },
        Case {
            rule: "ValidateObjectMetaUpdate: uid",
            method: "PATCH",
            path: cm_path.clone(),
            content_type: MERGE,
            body: json!({"metadata": {"uid": "another-uid"}}),
            code: 422,
            reason: "Invalid",
            message: "ConfigMap \"cm\" is invalid: metadata.uid: Invalid value: \"another-uid\": field is immutable".into(),
        },
        Case {
            rule: "patcher: a result that is not an object",
            method: "PATCH",
            path: cm_path.clone(),
            content_type: JSON_PATCH,
            body: json!([{"op": "replace", "path": "", "value": []}]),
            code: 422,
            reason: "Invalid",
            message: format!(" \"\" is invalid: patch: Invalid value: \"[]\": couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type {go_struct}"),
        },
        Case {
            rule: "ValidateLabels: a merge patch with a bad label value",
            method: "PATCH",
            path: cm_path.clone(),
            content_type: MERGE,
            body: json!({"metadata": {"labels": {"app": "-bad"}}}),
            code: 422,
            reason: "Invalid",
            message: "ConfigMap \"cm\" is invalid: metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string or consist of \
                      alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or \
                      'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                .into(),
        },
        Case {
            rule: "IsConfigMapKey: a JSON patch adding '..'",
            method: "PATCH",
            path: cm_path.clone(),
            content_type: JSON_PATCH,
            body: json!([{"op": "add", "path": "/data/..", "value": "x"}]),
            code: 422,
            reason: "Invalid",
            message: "ConfigMap \"cm\" is invalid: data[..]: Invalid value: \"..\": must not be '..'".into(),
        },
        Case {
            rule: "validateContainerPorts: a PUT of a pod",
            method: "PUT",
            path: format!("{PODS}/p"),
            content_type: JSON,
            body: bad_port_pod,
            code: 422,
            reason: "Invalid",
            // Upstream reports the port and, since ports are not among what
            // a pod update may change, the spec change as well.
            message: String::new(),
        },
    ];

    for case in cases {
        let before = revision(&cluster)?;
        let (code, status) = request(&cluster, case.method, &case.path, case.content_type, &case.body.to_string())?;
        assert_eq!(code, case.code, "{}: {status}", case.rule);
        assert_eq!(status["reason"].as_str().unwrap_or_default(), case.reason, "{}: {status}", case.rule);
        let message = status["message"].as_str().unwrap_or_default();
        if case.message.is_empty() {
            assert!(
                message.contains("containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"),
                "{}: {message}",
                case.rule
            );
            assert!(message.contains("spec: Forbidden: pod updates may not change fields other than"), "{}: {message}", case.rule);
        } else {
            assert_eq!(message, case.message, "{}", case.rule);
        }
        assert_eq!(revision(&cluster)?, before, "{}: the store changed", case.rule);
    }

    // A resourceVersion that is not a positive revision is dropped, as
    // upstream's store does (kubernetes/kubernetes#113847).
    for (name, rv) in [("rv-zero", "0"), ("rv-negative", "-1")] {
        let body = config_map(name, json!({"metadata": {"name": name, "resourceVersion": rv}}));
        let (code, created) = request(&cluster, "POST", CONFIGMAPS, JSON, &body.to_string())?;
        assert_eq!(code, 201, "{rv}: {created}");
        assert_ne!(created["metadata"]["resourceVersion"], json!(rv));
    }

    // A changed creation time is quietly put back (`BeforeUpdate`), so the
    // patch is a no-op and nothing is written.
    let before = revision(&cluster)?;
    let (code, patched) =
        request(&cluster, "PATCH", &cm_path, MERGE, &json!({"metadata": {"creationTimestamp": "2001-01-01T00:00:00Z"}}).to_string())?;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["metadata"]["creationTimestamp"], cm["metadata"]["creationTimestamp"]);
    assert_eq!(revision(&cluster)?, before);

    // A pod's spec is fixed but for images and a few more fields.
    let (code, status) = request(&cluster, "PATCH", &format!("{PODS}/p"), MERGE, &json!({"spec": {"restartPolicy": "Never"}}).to_string())?;
    assert_eq!(code, 422, "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message
            .starts_with("Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
        "{message}"
    );
    let (code, status) = request(
        &cluster,
        "PATCH",
        &format!("{PODS}/p"),
        JSON_PATCH,
        &json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "nginx"}]).to_string(),
    )?;
    assert_eq!(code, 200, "{status}");
    Ok(())
}
