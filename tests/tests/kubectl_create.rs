//! kubectl's imperative commands against tinykube: `create deployment`,
//! `run`, `create service|configmap|secret|namespace|job|serviceaccount`
//! and `expose`.
//!
//! The `create` commands build the object in kubectl and POST it through
//! client-go's typed clientset, which encodes it as protobuf
//! (`application/vnd.kubernetes.protobuf`) and does not fall back to JSON
//! (`run` and `expose` send JSON).
//! Each command runs twice: as itself in namespace `pb`, and in namespace
//! `js` as `--dry-run=client -o json` piped (through a file) into
//! `kubectl create -f`, which sends the very same object as JSON. The two
//! stored objects must be the same: the encoding a client picks does not
//! change what the api-server stores.
//!
//! A second test speaks protobuf over raw HTTP to check what kubectl never
//! sends: an unknown field, refused under `fieldValidation=Strict` and
//! warned about under `Warn`.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use tinykube_tests::{read_to_end, require_tool, Cluster, Kubectl, Who};

/// One imperative command: the object it makes, its arguments (without a
/// namespace), and whether kubectl 1.32 sends it as protobuf (`run` and
/// `expose` build an unstructured object and send JSON; they are here so
/// that every imperative command a user reaches for is covered).
struct Imperative {
    object: &'static str,
    args: &'static [&'static str],
    protobuf: bool,
}

const COMMANDS: &[Imperative] = &[
    Imperative {
        object: "deployment/d1",
        args: &["create", "deployment", "d1", "--image=busybox", "--replicas=2", "--port=8080", "--", "sleep", "100"],
        protobuf: true,
    },
    Imperative {
        object: "pod/p",
        args: &["run", "p", "--image=busybox", "--labels=app=p", "--env=A=1", "--", "sleep", "100"],
        protobuf: false,
    },
    Imperative {
        object: "service/s",
        args: &["create", "service", "clusterip", "s", "--tcp=80:8080", "--tcp=443:https"],
        protobuf: true,
    },
    Imperative {
        object: "configmap/c",
        args: &["create", "configmap", "c", "--from-literal=a=b", "--from-literal=c=d"],
        protobuf: true,
    },
    Imperative {
        object: "secret/s",
        args: &["create", "secret", "generic", "s", "--from-literal=a=b"],
        protobuf: true,
    },
    Imperative { object: "job/j", args: &["create", "job", "j", "--image=busybox", "--", "true"], protobuf: true },
    Imperative { object: "serviceaccount/sa", args: &["create", "serviceaccount", "sa"], protobuf: true },
    Imperative {
        object: "service/d1",
        args: &["expose", "deployment", "d1", "--port", "80", "--target-port", "8080"],
        protobuf: false,
    },
];

/// What differs between two objects made by the same command at different
/// moments in different namespaces, and what controllers fill in on their
/// own time: identity, timestamps, status, the node a pod landed on.
fn comparable(mut obj: Value) -> Value {
    if let Some(meta) = obj["metadata"].as_object_mut() {
        for key in ["uid", "resourceVersion", "creationTimestamp", "namespace", "managedFields", "selfLink"] {
            meta.remove(key);
        }
    }
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    if let Some(spec) = obj["spec"].as_object_mut() {
        for key in ["nodeName", "clusterIP", "clusterIPs"] {
            spec.remove(key);
        }
    }
    obj
}

/// Runs `kubectl -v=8 ARGS` and checks which encoding its POST used.
fn create_logged(k: &Kubectl, args: &[&str], protobuf: bool) -> Result<()> {
    let mut all = vec!["-v=8"];
    all.extend_from_slice(args);
    let out = k.run(&all)?;
    let log = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "kubectl {} failed:\n{log}", args.join(" "));
    if protobuf {
        ensure!(
            log.contains("Content-Type: application/vnd.kubernetes.protobuf"),
            "kubectl {} did not send protobuf, so this test no longer covers it:\n{log}",
            args.join(" ")
        );
    }
    Ok(())
}

/// Sends the same object as JSON: kubectl prints it (`--dry-run=client -o
/// json`), and `create -f` posts the file.
fn create_as_json(k: &Kubectl, dir: &std::path::Path, name: &str, args: &[&str]) -> Result<()> {
    let mut dry = vec!["--dry-run=client", "-o", "json"];
    dry.extend_from_slice(args);
    let json = k.ok(&dry)?;
    let path = dir.join(format!("{}.json", name.replace('/', "-")));
    std::fs::write(&path, json)?;
    let path = path.to_str().context("utf-8 path")?;
    k.ok(&["create", "-f", path])?;
    Ok(())
}

/// Waits until the object in `pb` and its twin in `js` compare equal
/// (controllers may still be annotating one of them), or fails showing
/// both.
fn same_when_settled(k: &Kubectl, object: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pb = comparable(k.get_json(&["-n", "pb", object])?);
        let js = comparable(k.get_json(&["-n", "js", object])?);
        if pb == js {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{object} stored from protobuf differs from the one stored from JSON:\nprotobuf: {}\nJSON:     {}",
                serde_json::to_string_pretty(&pb)?,
                serde_json::to_string_pretty(&js)?
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn imperative_commands_store_what_json_would() -> Result<()> {
    if !require_tool("kubectl", Kubectl::available(), "install kubectl 1.32 and put it on the PATH") {
        return Ok(());
    }
    let cluster = Cluster::start()?;
    let k = Kubectl::new(&cluster)?;
    let files = tempfile::tempdir()?;

    // The namespaces themselves: `pb` from protobuf, `js` from JSON.
    create_logged(&k, &["create", "namespace", "pb"], true)?;
    create_as_json(&k, files.path(), "namespace", &["create", "namespace", "js"])?;
    let namespace = |name: &str| -> Result<Value> {
        let mut ns = comparable(k.get_json(&["namespace", name])?);
        ns["metadata"].as_object_mut().context("metadata")?.remove("name");
        if let Some(labels) = ns["metadata"]["labels"].as_object_mut() {
            labels.remove("kubernetes.io/metadata.name");
        }
        Ok(ns)
    };
    assert_eq!(namespace("pb")?, namespace("js")?, "namespaces");

    for c in COMMANDS {
        let mut pb = vec!["-n", "pb"];
        pb.extend_from_slice(c.args);
        create_logged(&k, &pb, c.protobuf)?;
        let mut js = vec!["-n", "js"];
        js.extend_from_slice(c.args);
        create_as_json(&k, files.path(), c.object, &js)?;
    }
    for c in COMMANDS {
        same_when_settled(&k, c.object)?;
    }

    // Spot checks that the comparison compares something: the fields
    // each command set made it through protobuf.
    let d = k.get_json(&["-n", "pb", "deployment/d1"])?;
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["command"], serde_json::json!(["sleep", "100"]));
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"], 8080);
    let s = k.get_json(&["-n", "pb", "service/s"])?;
    assert_eq!(s["spec"]["ports"][1]["targetPort"], "https");
    assert_eq!(k.get_json(&["-n", "pb", "secret/s"])?["data"]["a"], "Yg==");
    assert_eq!(k.get_json(&["-n", "pb", "service/d1"])?["spec"]["selector"]["app"], "d1");
    Ok(())
}

// ---------------------------------------------------------- raw protobuf

/// A length-delimited protobuf field (field numbers and lengths below
/// 2^14 are all this test needs).
fn field(number: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for mut v in [u64::from(number) << 3 | 2, bytes.len() as u64] {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    out.extend_from_slice(bytes);
    out
}

/// A ConfigMap named `name` with `data: {a: b}` and field 99, which no
/// ConfigMap has.
fn config_map_with_unknown_field(name: &str) -> Vec<u8> {
    let meta = field(1, name.as_bytes());
    let raw = [field(1, &meta), field(2, &[field(1, b"a"), field(2, b"b")].concat()), field(99, b"surprise")].concat();
    let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
    [b"k8s\x00".as_slice(), &field(1, &type_meta), &field(2, &raw)].concat()
}

/// POSTs `body` over HTTP/1.1 (TLS, as the admin); returns the status code and the
/// whole response.
fn post(cluster: &Cluster, path: &str, body: &[u8]) -> Result<(u16, String)> {
    let mut stream = cluster.connect(Who::Admin)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/vnd.kubernetes.protobuf\r\n\
         Accept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    read_to_end(&mut stream, &mut response)?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).context("an HTTP status line")?;
    Ok((code, response))
}

#[test]
fn unknown_protobuf_fields_meet_field_validation() -> Result<()> {
    let cluster = Cluster::start()?;
    let collection = "/api/v1/namespaces/default/configmaps";

    let (code, response) = post(&cluster, &format!("{collection}?fieldValidation=Strict"), &config_map_with_unknown_field("strict"))?;
    assert_eq!(code, 400, "{response}");
    assert!(response.contains(r#"strict decoding error: unknown field \"<field 99>\""#), "{response}");

    let (code, response) = post(&cluster, &format!("{collection}?fieldValidation=Warn"), &config_map_with_unknown_field("warn"))?;
    assert_eq!(code, 201, "{response}");
    // Header names arrive lower-cased from hyper.
    assert!(response.to_ascii_lowercase().contains(r#"warning: 299 - "unknown field '<field 99>'""#), "{response}");
    let stored: Value = serde_json::from_str(&cluster.ok(&["get", "configmap", "warn", "-o", "json"])?)?;
    assert_eq!(stored["data"], serde_json::json!({"a": "b"}));
    assert_eq!(stored.get("<field 99>"), None, "the unknown field is not stored");
    Ok(())
}
