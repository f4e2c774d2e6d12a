//! A stored object reads back as it was written.
//!
//! For every kind the api-server serves, valid objects (names, labels,
//! annotations and a few spec fields, drawn by proptest) go through the
//! registry the way a client's calls do: create, get, a PUT of exactly what
//! the get returned, and a second get. Defaulting and validation happen on
//! the create; from then on the object is in its canonical form, and the
//! update must neither change it nor reject it. Only `resourceVersion` may
//! move. A kind whose strategy defaults a field differently on update than
//! on create, or whose typed decoding drops or rewrites a field the JSON
//! had, fails here.
//!
//! `PROPTEST_CASES` sets how many objects each kind gets (32 by default).

use std::collections::BTreeMap;
use std::sync::Arc;

use api::resources::{ResourceInfo, RESOURCES};
use proptest::collection::btree_map;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use tinykube_apiserver::registry::WriteOptions;
use tinykube_apiserver::strategy::Op;
use tinykube_apiserver::Registry;

/// What every generated object is made of; each kind arranges the parts
/// into its own fields.
#[derive(Debug, Clone)]
struct Parts {
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    /// A label value every workload's selector and template share.
    app: String,
    image: String,
    /// A small count: replicas, a port offset, a duration.
    count: u16,
    /// Free text: a message, a holder identity, a config value.
    text: String,
}

/// A DNS-1035 label (a DNS-1123 label that starts with a letter): what
/// every kind accepts as a name, Services included.
fn dns_label() -> impl Strategy<Value = String> {
    "[a-z]([-a-z0-9]{0,30}[a-z0-9])?"
}

/// A label key, optionally with a DNS subdomain prefix.
fn label_key() -> impl Strategy<Value = String> {
    ("([a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){0,2}/)?", "[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?").prop_map(|(p, n)| p + &n)
}

/// A label value, possibly empty.
fn label_value() -> impl Strategy<Value = String> {
    "([A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?)?"
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        dns_label(),
        btree_map(label_key(), label_value(), 0..4),
        // Annotation values are any text: quotes, newlines, non-ASCII.
        btree_map(label_key(), any::<String>(), 0..3),
        "[a-z0-9]{1,12}",
        "[a-z0-9]{1,10}(/[a-z0-9]{1,10})?(:[a-z0-9.]{1,8})?",
        0u16..200,
        "[ -~]{0,40}",
    )
        .prop_map(|(name, labels, annotations, app, image, count, text)| Parts { name, labels, annotations, app, image, count, text })
}

/// A pod template whose labels carry `app`, as workload selectors need.
fn template(p: &Parts, restart_policy: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": p.app}},
        "spec": {
            "restartPolicy": restart_policy,
            "containers": [{
                "name": "main",
                "image": p.image,
                "args": [p.text],
                "ports": [{"containerPort": 1000 + u32::from(p.count), "protocol": "TCP"}],
                "env": [{"name": "TEXT", "value": p.text}],
            }],
        },
    })
}

/// A valid object of kind `info` named `name`, built from `p`.
/// One certificate request (base64 PEM, as the JSON form has it), made
/// once: making a key per case would only slow the test.
fn csr_base64() -> &'static str {
    static CSR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSR.get_or_init(|| {
        use base64::Engine;
        let (pem, _key) = api::pki::make_csr("system:node:roundtrip", &["system:nodes"]).expect("a CSR");
        base64::engine::general_purpose::STANDARD.encode(pem)
    })
}

fn object(info: &ResourceInfo, name: &str, p: &Parts) -> Value {
    let mut metadata = json!({"name": name, "labels": p.labels, "annotations": p.annotations});
    if info.namespaced {
        metadata["namespace"] = json!("default");
    }
    let n = u32::from(p.count);
    let selector = json!({"matchLabels": {"app": p.app}});
    let body = match info.resource {
        "pods" => json!({"spec": template(p, "Always")["spec"]}),
        "nodes" => json!({"spec": {"unschedulable": n % 2 == 0, "podCIDR": format!("10.88.{}.0/24", n % 250)}}),
        "namespaces" => json!({}),
        "events" => json!({
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": p.app},
            "reason": "Scheduled",
            "message": p.text,
            "type": if n % 2 == 0 { "Normal" } else { "Warning" },
            "count": n + 1,
        }),
        "services" => json!({"spec": {
            "selector": {"app": p.app},
            "ports": [{"name": "http", "port": 80 + n, "targetPort": 8000 + n, "protocol": "TCP"}],
        }}),
        "endpoints" => json!({"subsets": [{
            "addresses": [{"ip": format!("10.88.0.{}", n % 250 + 1)}],
            "ports": [{"name": "http", "port": 8000 + n, "protocol": "TCP"}],
        }]}),
        "configmaps" => json!({"data": {"text": p.text, "app": p.app}}),
        "secrets" => json!({"type": "Opaque", "stringData": {"text": p.text}, "data": {"app": "YXBw"}}),
        "serviceaccounts" => json!({"automountServiceAccountToken": n % 2 == 0}),
        "deployments" | "replicasets" => {
            json!({"spec": {"replicas": n % 5, "selector": selector, "template": template(p, "Always")}})
        }
        "daemonsets" => json!({"spec": {"selector": selector, "template": template(p, "Always")}}),
        "statefulsets" => json!({"spec": {
            "replicas": n % 5, "serviceName": p.app, "selector": selector, "template": template(p, "Always"),
        }}),
        "jobs" => json!({"spec": {"backoffLimit": n % 7, "template": template(p, "Never")}}),
        "leases" => json!({"spec": {"holderIdentity": p.text, "leaseDurationSeconds": n + 1}}),
        "certificatesigningrequests" => json!({"spec": {
            "request": csr_base64(),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
            "expirationSeconds": 600 + n,
        }}),
        other => panic!("the round trip has no objects of {other}; add them here"),
    };
    let mut obj = json!({"apiVersion": info.api_version(), "kind": info.kind, "metadata": metadata});
    for (k, v) in body.as_object().expect("an object body") {
        obj[k] = v.clone();
    }
    obj
}

fn without_resource_version(mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    obj
}

/// A JSON map of strings; absent (as an empty map is stored) is empty.
fn string_map(v: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

/// One object through create, get, update and get.
async fn round_trip(registry: &Registry, info: &ResourceInfo, name: &str, p: &Parts) -> Result<(), TestCaseError> {
    let ns = if info.namespaced { "default" } else { "" };
    let opts = WriteOptions::default();
    let sent = object(info, name, p);
    let created = registry.create(info, ns, sent.clone(), &opts).await.map_err(|e| TestCaseError::fail(format!("create: {e:?}")))?;
    let first = registry.get(info, ns, name).await.map_err(|e| TestCaseError::fail(format!("get: {e:?}")))?;
    prop_assert_eq!(&first, &created.object, "the created object and the stored one differ");
    // A namespace gains its `kubernetes.io/metadata.name` label; nothing
    // the client sent is lost or changed.
    let labels = string_map(&first["metadata"]["labels"]);
    for (k, v) in &p.labels {
        prop_assert_eq!(labels.get(k), Some(v), "the label {} changed on create", k);
    }
    prop_assert_eq!(string_map(&first["metadata"]["annotations"]), p.annotations.clone(), "annotations changed on create");

    let updated = registry
        .update(info, ns, first.clone(), Op::Update, &opts)
        .await
        .map_err(|e| TestCaseError::fail(format!("update: {e:?}")))?;
    let second = registry.get(info, ns, name).await.map_err(|e| TestCaseError::fail(format!("get after update: {e:?}")))?;
    prop_assert_eq!(&second, &updated.object, "the updated object and the stored one differ");
    prop_assert_eq!(without_resource_version(second), without_resource_version(first), "a PUT of what a GET returned changed the object");
    Ok(())
}

#[test]
fn every_kind_reads_back_as_written() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let store = store::Store::open_temporary().expect("a temporary store");
    let registry = Registry::new(Arc::new(store));
    runtime.block_on(registry.bootstrap()).expect("the system namespaces");

    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(32);
    for info in RESOURCES {
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        // Generated names repeat across cases (and shrinking retries the
        // same one), so each attempt gets a number of its own.
        let attempt = std::cell::Cell::new(0u32);
        let result = runner.run(&parts(), |p| {
            attempt.set(attempt.get() + 1);
            let name = format!("{}-{}", p.name, attempt.get());
            runtime.block_on(round_trip(&registry, info, &name, &p))
        });
        if let Err(e) = result {
            panic!("{}: {e}", info.qualified());
        }
    }
}
