//! Tests for the protobuf decoder: real kubectl bodies against kubectl's
//! own JSON, hand-built bodies for each rule of the JSON form, the unknown
//! field reports, broken bodies, and the schema tables themselves.

use std::collections::HashSet;

use api::resources::{self, ResourceInfo};
use serde_json::{json, Value};

use super::schema::{self, Card, Form, Message, Type};
use super::*;
use crate::registry::FieldValidation;
use crate::strategy::{self, Op};

// ------------------------------------------------------------ a tiny encoder

/// Protobuf bytes built field by field, for bodies the tests make.
#[derive(Default, Clone)]
struct Pb(Vec<u8>);

impl Pb {
    fn key(mut self, number: u32, wire: u64) -> Self {
        put_varint(&mut self.0, (u64::from(number) << 3) | wire);
        self
    }
    fn varint(self, number: u32, v: u64) -> Self {
        let mut s = self.key(number, 0);
        put_varint(&mut s.0, v);
        s
    }
    fn int(self, number: u32, v: i64) -> Self {
        self.varint(number, v as u64)
    }
    fn bytes(self, number: u32, b: &[u8]) -> Self {
        let mut s = self.key(number, 2);
        put_varint(&mut s.0, b.len() as u64);
        s.0.extend_from_slice(b);
        s
    }
    fn str(self, number: u32, v: &str) -> Self {
        self.bytes(number, v.as_bytes())
    }
    fn msg(self, number: u32, m: Pb) -> Self {
        self.bytes(number, &m.0)
    }
    /// A `map<string, string>` entry.
    fn entry(self, number: u32, k: &str, v: &str) -> Self {
        self.msg(number, Pb::default().str(1, k).str(2, v))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A whole request body: magic, `runtime.Unknown`, the object.
fn body(api_version: &str, kind: &str, raw: Pb) -> Vec<u8> {
    let type_meta = Pb::default().str(1, api_version).str(2, kind);
    let unknown = Pb::default().msg(1, type_meta).msg(2, raw).str(3, "").str(4, "");
    [MAGIC.as_slice(), &unknown.0].concat()
}

fn decode_ok(body: &[u8]) -> Value {
    match decode(body) {
        Ok(v) => v,
        Err(e) => panic!("decoding failed: {e}"),
    }
}

fn info(kind: &str) -> &'static ResourceInfo {
    resources::RESOURCES.iter().find(|r| r.kind == kind).expect("a served kind")
}

/// A pod `{metadata: {name}, spec: {containers: [container]}}`.
fn pod_with_container(container: Pb) -> Vec<u8> {
    let meta = Pb::default().str(1, "p");
    body("v1", "Pod", Pb::default().msg(1, meta).msg(2, Pb::default().msg(2, container)))
}

// --------------------------------------------------- real kubectl 1.32 bodies

/// A body kubectl 1.32 sent (captured with `-v=9`) and the JSON the same
/// command prints with `--dry-run=client -o json`: Go's JSON of the very
/// object that was encoded.
struct Golden {
    command: &'static str,
    body: &'static str,
    json: &'static str,
}

const GOLDEN: &[Golden] = &[
    Golden {
        command: "kubectl create deployment d1 --image=busybox --replicas=2 --port=8080 -- sleep 100",
        body: "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412c5010a1d0a02643112001a0022002a00320038004200\
         5a090a03617070120264311295010802120b0a090a03617070120264311a7c0a1b0a0012001a0022002a003200380042005a\
         090a0361707012026431125d123f0a0762757379626f78120762757379626f781a05736c6565701a033130302a00320b0a00\
         100018903f22002a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a\
         0100c2010022020a00280038001a0c0800100018002000280038001a002200",
        json: r#"{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d1","creationTimestamp":null,"labels":{"app":"d1"}},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"d1"}},"template":{"metadata":{"creationTimestamp":null,"labels":{"app":"d1"}},"spec":{"containers":[{"name":"busybox","image":"busybox","command":["sleep","100"],"ports":[{"containerPort":8080}],"resources":{}}]}},"strategy":{}},"status":{}}"#,
    },
    Golden {
        command: "kubectl create service clusterip s --tcp=80:8080 --tcp=443:https",
        body: "6b3873000a0d0a0276311207536572766963651287010a1b0a017312001a0022002a003200380042005a080a036170701201\
         7312640a1b0a0738302d38303830120354435018502207080010903f1a0028000a220a093434332d68747470731203544350\
         18bb03220b080110001a056874747073280012080a036170701201731a002209436c757374657249503a00420052005a0060\
         0068001a020a001a002200",
        json: r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"s","creationTimestamp":null,"labels":{"app":"s"}},"spec":{"ports":[{"name":"80-8080","protocol":"TCP","port":80,"targetPort":8080},{"name":"443-https","protocol":"TCP","port":443,"targetPort":"https"}],"selector":{"app":"s"},"type":"ClusterIP"},"status":{"loadBalancer":{}}}"#,
    },
    Golden {
        command: "kubectl create configmap c --from-literal=a=b --from-literal=c=d",
        body: "6b3873000a0f0a0276311209436f6e6669674d617012230a110a016312001a0022002a0032003800420012060a0161120162\
         12060a01631201641a002200",
        json: r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c","creationTimestamp":null},"data":{"a":"b","c":"d"}}"#,
    },
    Golden {
        command: "kubectl create secret generic s --from-literal=a=b --type=Opaque",
        body: "6b3873000a0c0a027631120653656372657412230a110a017312001a0022002a0032003800420012060a01611201621a064f\
         70617175651a002200",
        json: r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","creationTimestamp":null},"data":{"a":"Yg=="},"type":"Opaque"}"#,
    },
    Golden {
        command: "kubectl create namespace x",
        body: "6b3873000a0f0a02763112094e616d65737061636512190a110a017812001a0022002a0032003800420012001a020a001a00\
         2200",
        json: r#"{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"x","creationTimestamp":null},"spec":{},"status":{}}"#,
    },
    Golden {
        command: "kubectl create job j --image=busybox -- true",
        body: "6b3873000a0f0a0862617463682f763112034a6f62127e0a110a016a12001a0022002a00320038004200125f325d0a100a00\
         12001a0022002a00320038004200124912260a016a120762757379626f781a04747275652a0042006a007200800100880100\
         900100a201001a054e65766572320042004a0052005800600068008201008a01009a0100c201001a082000280030003a001a\
         002200",
        json: r#"{"kind":"Job","apiVersion":"batch/v1","metadata":{"name":"j","creationTimestamp":null},"spec":{"template":{"metadata":{"creationTimestamp":null},"spec":{"containers":[{"name":"j","image":"busybox","command":["true"],"resources":{}}],"restartPolicy":"Never"}}},"status":{}}"#,
    },
];

fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex digits"))
        .collect()
}

#[test]
fn kubectl_bodies_decode_to_kubectls_own_json() {
    for g in GOLDEN {
        let want: Value = serde_json::from_str(g.json).expect("golden JSON");
        assert_eq!(decode_ok(&unhex(g.body)), want, "{}", g.command);
    }
}

/// The decoded body and kubectl's JSON come out of the strategy (parse,
/// strict field validation, defaulting, validation) as the same object:
/// what the registry stores does not depend on the encoding.
#[test]
fn kubectl_bodies_store_as_their_json_would() {
    for g in GOLDEN {
        let decoded = decode_ok(&unhex(g.body));
        let info = info(decoded["kind"].as_str().unwrap_or_default());
        let json: Value = serde_json::from_str(g.json).expect("golden JSON");
        let from_pb = strategy::normalize(info, decoded, None, Op::Create, FieldValidation::Strict);
        let from_json = strategy::normalize(info, json, None, Op::Create, FieldValidation::Strict);
        match (from_pb, from_json) {
            (Ok((pb, pb_warnings)), Ok((js, _))) => {
                assert_eq!(pb, js, "{}", g.command);
                assert_eq!(pb_warnings, Vec::<String>::new(), "{}", g.command);
            }
            (pb, js) => panic!("{}: protobuf gave {pb:?}, JSON gave {js:?}", g.command),
        }
    }
}

// -------------------------------------------------------- the JSON form rules

#[test]
fn zero_values_follow_gos_omitempty_and_pointers() {
    let port = Pb::default().str(1, "").int(2, 0).int(3, 0).str(4, "").str(5, "");
    let container = Pb::default().str(1, "c").str(2, "").msg(6, port).varint(16, 0);
    let spec = Pb::default()
        .msg(2, container)
        .int(4, 0) // terminationGracePeriodSeconds: *int64, zero kept
        .str(10, "") // nodeName: omitempty, dropped
        .varint(11, 0) // hostNetwork: omitempty, dropped
        .varint(21, 0); // automountServiceAccountToken: *bool, kept
    let pod = decode_ok(&body("v1", "Pod", Pb::default().msg(1, Pb::default().str(1, "p")).msg(2, spec)));
    assert_eq!(
        pod["spec"],
        json!({
            "containers": [{"name": "c", "ports": [{"containerPort": 0}]}],
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
        })
    );
    // `replicas` is a pointer: zero replicas is a choice, not an absence.
    let deployment = decode_ok(&body("apps/v1", "Deployment", Pb::default().msg(2, Pb::default().int(1, 0))));
    assert_eq!(deployment["spec"], json!({"replicas": 0}));
}

#[test]
fn special_messages_take_their_json_form() {
    type Check = (&'static str, Vec<u8>, &'static str, Value);
    let time = |s: i64, n: i64| Pb::default().int(1, s).int(2, n);
    let meta = |m: Pb| body("v1", "ConfigMap", Pb::default().msg(1, m));
    let int_or_string =
        |p: Pb| pod_with_container(Pb::default().str(1, "c").msg(10, Pb::default().msg(1, Pb::default().msg(2, Pb::default().msg(2, p)))));
    let cases: Vec<Check> = vec![
        (
            "Time to the second, nanos dropped",
            meta(Pb::default().msg(8, time(1_700_000_000, 5))),
            "/metadata/creationTimestamp",
            json!("2023-11-14T22:13:20Z"),
        ),
        ("empty Time is null", meta(Pb::default().msg(8, Pb::default())), "/metadata/creationTimestamp", Value::Null),
        (
            "Time at the epoch is a time",
            meta(Pb::default().msg(9, time(0, 0))),
            "/metadata/deletionTimestamp",
            json!("1970-01-01T00:00:00Z"),
        ),
        (
            "MicroTime keeps microseconds",
            body("coordination.k8s.io/v1", "Lease", Pb::default().msg(2, Pb::default().msg(4, time(1_700_000_000, 123_456_789)))),
            "/spec/renewTime",
            json!("2023-11-14T22:13:20.123456Z"),
        ),
        (
            "IntOrString as int",
            int_or_string(Pb::default().int(1, 0).int(2, 8080).str(3, "")),
            "/spec/containers/0/livenessProbe/httpGet/port",
            json!(8080),
        ),
        (
            "IntOrString as string",
            int_or_string(Pb::default().int(1, 1).int(2, 0).str(3, "http")),
            "/spec/containers/0/livenessProbe/httpGet/port",
            json!("http"),
        ),
        (
            "Quantity map",
            pod_with_container(
                Pb::default().str(1, "c").msg(
                    8,
                    Pb::default()
                        .msg(1, Pb::default().str(1, "cpu").msg(2, Pb::default().str(1, "500m")))
                        .msg(1, Pb::default().str(1, "memory").msg(2, Pb::default().str(1, "64Mi"))),
                ),
            ),
            "/spec/containers/0/resources/limits",
            json!({"cpu": "500m", "memory": "64Mi"}),
        ),
        (
            "bytes are base64",
            body("v1", "Secret", Pb::default().msg(2, Pb::default().str(1, "k").bytes(2, &[0, 255, 1]))),
            "/data",
            json!({"k": "AP8B"}),
        ),
        ("negative int32", body("apps/v1", "Deployment", Pb::default().msg(2, Pb::default().int(1, -1))), "/spec/replicas", json!(-1)),
        (
            "repeated int64, unpacked",
            body("v1", "Pod", Pb::default().msg(2, Pb::default().msg(14, Pb::default().int(4, 1000).int(4, 2000)))),
            "/spec/securityContext/supplementalGroups",
            json!([1000, 2000]),
        ),
        (
            "repeated int64, packed",
            body("v1", "Pod", Pb::default().msg(2, Pb::default().msg(14, Pb::default().bytes(4, &[0xe8, 0x07, 0xd0, 0x0f])))),
            "/spec/securityContext/supplementalGroups",
            json!([1000, 2000]),
        ),
        (
            "FieldsV1 holds JSON",
            meta(Pb::default().msg(17, Pb::default().str(1, "kubectl").msg(7, Pb::default().str(1, r#"{"f:data":{}}"#)))),
            "/metadata/managedFields/0",
            json!({"manager": "kubectl", "fieldsV1": {"f:data": {}}}),
        ),
        (
            "inline VolumeSource",
            body(
                "v1",
                "Pod",
                Pb::default().msg(2, Pb::default().msg(1, Pb::default().str(1, "v").msg(2, Pb::default().msg(2, Pb::default())))),
            ),
            "/spec/volumes/0",
            json!({"name": "v", "emptyDir": {}}),
        ),
        (
            "inline LocalObjectReference",
            pod_with_container(Pb::default().str(1, "c").msg(19, Pb::default().msg(2, Pb::default().msg(1, Pb::default().str(1, "cm"))))),
            "/spec/containers/0/envFrom/0",
            json!({"configMapRef": {"name": "cm"}}),
        ),
        (
            "a message twice is merged",
            body(
                "v1",
                "ConfigMap",
                Pb::default()
                    .msg(1, Pb::default().str(1, "a").entry(11, "x", "1"))
                    .msg(1, Pb::default().str(3, "ns").entry(11, "y", "2")),
            ),
            "/metadata",
            json!({"name": "a", "namespace": "ns", "labels": {"x": "1", "y": "2"}}),
        ),
        ("the last scalar wins", meta(Pb::default().str(1, "a").str(1, "b")), "/metadata/name", json!("b")),
        ("a map entry without value", body("v1", "ConfigMap", Pb::default().msg(2, Pb::default().str(1, "k"))), "/data", json!({"k": ""})),
    ];
    for (name, body, pointer, want) in cases {
        let got = decode_ok(&body);
        assert_eq!(got.pointer(pointer), Some(&want), "{name}: {got}");
    }
}

// ------------------------------------------------------------ unknown fields

#[test]
fn unknown_fields_are_kept_where_they_were_found() {
    let container = Pb::default().str(1, "c").str(99, "surprise").varint(98, 0).str(97, "");
    let pod = decode_ok(&pod_with_container(container));
    assert_eq!(
        pod["spec"]["containers"][0],
        json!({"name": "c", "<field 99>": "c3VycHJpc2U="}),
        "zero-valued unknown fields are what a newer client sends for its unset fields, and are skipped"
    );
    // A message whose JSON is not an object hands its unknown fields to
    // the enclosing object.
    let port = Pb::default().int(3, 80).msg(4, Pb::default().int(1, 0).int(2, 8080).varint(9, 1));
    let service = decode_ok(&body("v1", "Service", Pb::default().msg(2, Pb::default().msg(1, port))));
    assert_eq!(service["spec"]["ports"][0], json!({"port": 80, "targetPort": 8080, "targetPort.<field 9>": 1}));
    let unknown_top = decode_ok(&body("v1", "Namespace", Pb::default().msg(1, Pb::default().str(1, "x")).varint(42, 7)));
    assert_eq!(unknown_top["<field 42>"], json!(7));
}

/// Field validation, unchanged, does the rest: Strict refuses, Warn warns
/// and drops, Ignore drops.
#[test]
fn unknown_fields_meet_field_validation() {
    let container = Pb::default().str(1, "c").str(2, "busybox").str(99, "surprise");
    let pod = decode_ok(&pod_with_container(container));
    let strict = strategy::normalize(info("Pod"), pod.clone(), None, Op::Create, FieldValidation::Strict);
    match strict {
        Err(e) => assert_eq!(
            e.message,
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.containers[0].<field 99>\""
        ),
        Ok(_) => panic!("strict accepted an unknown field"),
    }
    let (stored, warnings) = strategy::normalize(info("Pod"), pod.clone(), None, Op::Create, FieldValidation::Warn).expect("warn accepts");
    assert_eq!(warnings, vec!["unknown field \"spec.containers[0].<field 99>\"".to_string()]);
    assert_eq!(stored["spec"]["containers"][0].get("<field 99>"), None);
    let (_, warnings) = strategy::normalize(info("Pod"), pod, None, Op::Create, FieldValidation::Ignore).expect("ignore accepts");
    assert!(warnings.is_empty(), "{warnings:?}");
}

// ------------------------------------------------------------ broken bodies

#[test]
fn broken_bodies_are_refused() {
    let pod = |raw: Vec<u8>| {
        let type_meta = Pb::default().str(1, "v1").str(2, "Pod");
        [MAGIC.as_slice(), &Pb::default().msg(1, type_meta).bytes(2, &raw).0].concat()
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("JSON sent as protobuf", br#"{"kind":"Pod"}"#.to_vec(), 400, "does not appear to be a protobuf message"),
        ("no typeMeta", [MAGIC.as_slice(), &Pb::default().bytes(2, b"").0].concat(), 400, "names no kind"),
        ("a kind without a schema", body("v1", "PersistentVolume", Pb::default()), 415, "cannot decode PersistentVolume"),
        ("truncated length", pod(vec![0x0a, 0x05, 0x0a]), 400, "object: truncated field"),
        ("truncated varint", pod(vec![0x12, 0x02, 0x20, 0x80]), 400, "spec: truncated varint"),
        (
            "a string sent as varint",
            pod(Pb::default().msg(2, Pb::default().varint(10, 1)).0),
            400,
            "spec.nodeName: wire type varint does not fit a string",
        ),
        ("a group", pod(vec![0x13, 0x14]), 400, "field 2 is a proto2 group"),
        (
            "bad IntOrString type",
            pod(Pb::default()
                .msg(
                    2,
                    Pb::default().msg(
                        2,
                        Pb::default()
                            .str(1, "c")
                            .msg(10, Pb::default().msg(1, Pb::default().msg(2, Pb::default().msg(2, Pb::default().int(1, 7))))),
                    ),
                )
                .0),
            400,
            "spec.containers[0].livenessProbe.httpGet.port: IntOrString type 7",
        ),
    ];
    for (name, body, code, contains) in cases {
        match decode(&body) {
            Ok(v) => panic!("{name}: decoded to {v}"),
            Err(e) => {
                let e = ApiError::from(e);
                assert_eq!(e.code, code, "{name}: {}", e.message);
                assert!(e.message.contains(contains), "{name}: {}", e.message);
            }
        }
    }
}

// -------------------------------------------------------------- the schema

/// Every message reachable from the kinds, each once.
fn all_messages() -> Vec<&'static Message> {
    fn visit(m: &'static Message, out: &mut Vec<&'static Message>) {
        if out.iter().any(|seen| std::ptr::eq(*seen, m)) {
            return;
        }
        out.push(m);
        for f in m.fields {
            if let Type::Msg(child) = f.ty {
                visit(child, out);
            }
        }
    }
    let mut out = Vec::new();
    for (_, _, m) in schema::KINDS {
        visit(m, &mut out);
    }
    out
}

#[test]
fn every_served_kind_has_a_schema() {
    for r in resources::RESOURCES {
        assert!(schema::kind(&r.api_version(), r.kind).is_some(), "{} {}", r.api_version(), r.kind);
    }
}

#[test]
fn schema_tables_are_well_formed() {
    let messages = all_messages();
    assert_eq!(messages.len(), 220, "messages reachable from the kinds");
    for m in messages {
        let numbers: Vec<u32> = m.fields.iter().map(|f| f.number).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{}: field numbers must be sorted and unique: {numbers:?}", m.name);
        let mut names = HashSet::new();
        for f in m.fields {
            assert!(names.insert(f.name), "{}: field name {} twice", m.name, f.name);
            if f.card == Card::Inline {
                assert!(matches!(f.ty, Type::Msg(child) if child.form == Form::Object), "{}.{}: only objects inline", m.name, f.name);
            }
            if m.form != Form::Object {
                assert!(f.card == Card::Keep && !matches!(f.ty, Type::Msg(_)), "{}.{}: special forms hold plain scalars", m.name, f.name);
            }
        }
    }
}

/// Builds a message with every field set to something that is not zero,
/// down the whole tree (a message already on the path is left empty, in
/// case a schema ever recurses).
fn everything(m: &'static Message, path: &mut Vec<&'static Message>) -> Pb {
    if path.iter().any(|seen| std::ptr::eq(*seen, m)) {
        return Pb::default();
    }
    match m.form {
        Form::Object => {}
        Form::Time | Form::MicroTime => return Pb::default().int(1, 1_700_000_000),
        Form::Quantity => return Pb::default().str(1, "1"),
        Form::IntOrString => return Pb::default().int(2, 1),
        Form::RawJson => return Pb::default().str(1, "{}"),
    }
    path.push(m);
    let mut pb = Pb::default();
    for f in m.fields {
        let value = |path: &mut Vec<&'static Message>, pb: Pb, number: u32| match f.ty {
            Type::Str | Type::Bytes => pb.str(number, "x"),
            Type::Bool | Type::I32 | Type::I64 => pb.varint(number, 1),
            Type::Msg(child) => pb.msg(number, everything(child, path)),
        };
        pb = match f.card {
            Card::Map => {
                let entry = value(path, Pb::default().str(1, "k"), 2);
                pb.msg(f.number, entry)
            }
            _ => value(path, pb, f.number),
        };
    }
    path.pop();
    pb
}

/// Decodes `json` into the `k8s-openapi` type of `kind` and back.
fn roundtrip(kind: &str, json: &Value) -> Value {
    use k8s_openapi::api::{
        apps::v1 as apps, autoscaling::v1 as autoscaling, batch::v1 as batch, certificates::v1 as certificates,
        coordination::v1 as coordination, core::v1 as core,
    };
    macro_rules! via {
        ($($kind:literal => $ty:ty),* $(,)?) => {
            match kind {
                $($kind => serde_json::to_value(serde_json::from_value::<$ty>(json.clone()).unwrap_or_else(|e| panic!("{kind}: {e}"))),)*
                other => panic!("no type for {other}"),
            }
        };
    }
    via! {
        "Pod" => core::Pod, "Node" => core::Node, "Namespace" => core::Namespace, "Event" => core::Event,
        "Service" => core::Service, "Endpoints" => core::Endpoints, "ConfigMap" => core::ConfigMap, "Secret" => core::Secret,
        "ServiceAccount" => core::ServiceAccount, "Binding" => core::Binding, "Deployment" => apps::Deployment,
        "ReplicaSet" => apps::ReplicaSet, "DaemonSet" => apps::DaemonSet, "StatefulSet" => apps::StatefulSet, "Job" => batch::Job,
        "Lease" => coordination::Lease, "Scale" => autoscaling::Scale,
        "CertificateSigningRequest" => certificates::CertificateSigningRequest,
    }
    .expect("encodes")
}

/// Every field of every table, set at once, decodes to JSON that the
/// `k8s-openapi` types (generated from the OpenAPI schema, independently
/// of the `.proto` files) read completely: a misspelt name, a missing
/// inline or a wrong JSON form would show up as an unknown field or a
/// parse error.
#[test]
fn every_schema_field_is_a_field_of_the_json_types() {
    for (api_version, kind, message) in schema::KINDS {
        let raw = everything(message, &mut Vec::new());
        let decoded = decode_ok(&body(api_version, kind, raw));
        let unknown = crate::fieldvalidation::unknown_fields(&decoded, &roundtrip(kind, &decoded));
        assert_eq!(unknown, Vec::<String>::new(), "{kind}");
    }
}
