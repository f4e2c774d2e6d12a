//! Field validation: what happens to fields the server does not know.
//!
//! A typo in a manifest (`replicass: 3`, `imagee: nginx`) used to vanish
//! silently: the api-server decoded the JSON into its Go types and dropped
//! whatever had no field to land in. Since 1.27 every write takes a
//! `fieldValidation` query parameter: `Ignore` keeps the old behaviour,
//! `Warn` drops the fields but answers with one `Warning` header per field
//! (`unknown field "spec.replicass"`), and `Strict` fails the request with
//! a 400 naming them all. kubectl sends `Strict` by default once the
//! OpenAPI document says the server understands the parameter (see
//! [`crate::openapi`]).
//!
//! Upstream finds the fields while decoding (a strict mode of its JSON
//! decoder). tinykube compares instead: the request is decoded into its
//! `k8s-openapi` type and encoded again, and every field of the input that
//! did not survive that round trip is one the type does not have —
//! [`unknown_fields`]. Duplicate keys never reach a `serde_json::Value`
//! (the last one wins), so [`duplicate_fields`] looks at the raw body.
//!
//! Where tinykube simplifies: a field the type does not know but that is
//! set to `null` is not reported (the round trip drops explicit nulls of
//! known fields too, such as kubectl's `creationTimestamp: null`, and a
//! null carries nothing that could be lost); fields are listed in key
//! order rather than document order; a duplicate key in a YAML body is
//! named by its path, as in JSON (upstream reports YAML's own error there,
//! `yaml: unmarshal errors: line 5: key "name" already set in map`); and
//! under `Strict` a body with duplicate keys is refused for those alone,
//! before its unknown fields are looked for.

use api::ApiError;

use crate::patch::PatchType;
use serde::de::{self, DeserializeSeed, Deserializer, Visitor};
use serde_json::Value;

/// Paths of fields present in `input` that did not survive a round trip
/// through the typed object (`roundtripped`), in upstream's notation:
/// `spec.template.spec.containers[0].imagee`.
///
/// `roundtripped` must be the plain round trip —
/// `serde_json::to_value(serde_json::from_value::<K>(input))` — taken
/// before a strategy touches the object: defaulting only adds fields, but
/// a status split or a cleared field would make known fields look unknown.
/// Values are not compared, only which keys exist: a quantity `1` that
/// comes back as `"1"` is the same field.
pub fn unknown_fields(input: &Value, roundtripped: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_unknown(input, roundtripped, "", &mut out);
    out
}

fn walk_unknown(input: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (input, back) {
        (Value::Object(input), Value::Object(back)) => {
            for (key, value) in input {
                if value.is_null() {
                    continue;
                }
                let child = join(path, key);
                match back.get(key) {
                    Some(back_value) => walk_unknown(value, back_value, &child, out),
                    None => out.push(child),
                }
            }
        }
        // Lists keep their order and length through a round trip, so the
        // elements pair up by index.
        (Value::Array(input), Value::Array(back)) => {
            for (i, (value, back_value)) in input.iter().zip(back).enumerate() {
                walk_unknown(value, back_value, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Paths of keys that appear more than once in the same JSON object of
/// `body`, such as `spec.replicas` given twice. A body that is not JSON
/// has none (its parse error is reported elsewhere).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    match (DuplicateWalk { path: String::new(), out: &mut out }).deserialize(&mut deserializer) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// [`duplicate_fields`] for a JSON or a YAML body. YAML keys are read as
/// strings, so `1: a` and `"1": b` in one mapping are the same field, as
/// they are once upstream converts YAML to JSON.
pub fn duplicate_fields_in(body: &[u8], yaml: bool) -> Vec<String> {
    if !yaml {
        return duplicate_fields(body);
    }
    let mut out = Vec::new();
    // A multi-document stream is refused by the parse; only one is walked.
    match (DuplicateWalk { path: String::new(), out: &mut out }).deserialize(serde_yaml::Deserializer::from_slice(body)) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// Walks raw JSON without building it, remembering the keys of each
/// object.
struct DuplicateWalk<'a> {
    path: String,
    out: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for DuplicateWalk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DuplicateWalk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq.next_element_seed(DuplicateWalk { path: format!("{}[{i}]", self.path), out: &mut *self.out })?.is_some() {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = join(&self.path, &key);
            if !seen.insert(key) && !self.out.contains(&child) {
                self.out.push(child.clone());
            }
            map.next_value_seed(DuplicateWalk { path: child, out: &mut *self.out })?;
        }
        Ok(())
    }
}

/// One finding of strict decoding, worded as upstream's decoder words it.
fn problems(unknown: &[String], duplicates: &[String]) -> Vec<String> {
    unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .chain(duplicates.iter().map(|f| format!("duplicate field \"{f}\"")))
        .collect()
}

/// Upstream's error for strict mode: a 400 `BadRequest` such as
/// `Deployment in version "v1" cannot be handled as a Deployment: strict
/// decoding error: unknown field "spec.replicass"`.
pub fn strict_error(kind: &str, version: &str, unknown: &[String]) -> ApiError {
    strict_error_with_duplicates(kind, version, unknown, &[])
}

/// [`strict_error`] naming duplicate fields too (after the unknown ones):
/// `..., unknown field "spec.foo", duplicate field "spec.replicas"`.
pub fn strict_error_with_duplicates(kind: &str, version: &str, unknown: &[String], duplicates: &[String]) -> ApiError {
    ApiError::bad_request(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        problems(unknown, duplicates).join(", ")
    ))
}

/// Upstream's strict error for duplicate fields in a patch body: the
/// patch handler reports strict errors as a 422 with no kind, on the field
/// `patch`, whose value is the patched object as JSON (JSON and merge
/// patches) or the patch as Go prints a map (strategic merge patches):
/// ` "" is invalid: patch: Invalid value: "{...}": strict decoding error:
/// duplicate field "spec.replicas"`. A JSON patch's fields are named
/// `json patch duplicate field "[0].value.x"`.
pub fn patch_strict_error(kind: PatchType, patched: &Value, patch: &Value, duplicates: &[String]) -> ApiError {
    let (value, problems) = match kind {
        PatchType::StrategicMerge => (api::go::quote(&go_print(patch)), problems(&[], duplicates)),
        PatchType::Json => {
            (api::go::quote(&patched.to_string()), duplicates.iter().map(|d| format!("json patch duplicate field \"{d}\"")).collect())
        }
        _ => (api::go::quote(&patched.to_string()), problems(&[], duplicates)),
    };
    let detail = format!("strict decoding error: {}", problems.join(", "));
    ApiError::invalid("", "", "", &[api::status::FieldError::invalid("patch", value, detail)])
}

/// The warnings for duplicate fields of a patch under `Warn`.
pub fn patch_warnings(kind: PatchType, duplicates: &[String]) -> Vec<String> {
    match kind {
        PatchType::Json => duplicates.iter().map(|d| format!("json patch duplicate field \"{d}\"")).collect(),
        _ => problems(&[], duplicates),
    }
}

/// A JSON value as Go's `%+v` prints the `map[string]interface{}` it
/// decodes to: `map[a:1 b:[x y] c:map[d:<nil>]]`, keys sorted.
fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys.iter().map(|k| format!("{k}:{}", go_print(&map[k.as_str()]))).collect();
            format!("map[{}]", fields.join(" "))
        }
    }
}

/// The texts of the `Warning` headers for `fieldValidation=Warn`, one per
/// field: `unknown field "spec.replicass"`. The front door sends each as
/// `Warning: 299 - "<text>"`, and kubectl prints `Warning: <text>`.
pub fn warnings(unknown: &[String], duplicates: &[String]) -> Vec<String> {
    problems(unknown, duplicates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Pod, Secret, Service};
    use serde_json::json;

    fn roundtrip<K: serde::de::DeserializeOwned + serde::Serialize>(input: &Value) -> Value {
        let typed: K = serde_json::from_value(input.clone()).expect("decodes");
        serde_json::to_value(typed).expect("encodes")
    }

    /// A Deployment with the fields manifests commonly use, including
    /// kubectl's `creationTimestamp: null`, an empty `status`, quantities
    /// as numbers and int-or-strings both ways.
    fn full_deployment() -> Value {
        serde_yaml::from_str(FULL_DEPLOYMENT).expect("valid YAML")
    }

    const FULL_DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  creationTimestamp: null
  labels: {app: web}
  annotations: {kubectl.kubernetes.io/last-applied-configuration: "{}"}
  resourceVersion: "12"
  uid: u-1
  generation: 2
  finalizers: [x/y]
  ownerReferences: [{apiVersion: v1, kind: Foo, name: f, uid: u-2, controller: true}]
spec:
  replicas: 3
  revisionHistoryLimit: 5
  minReadySeconds: 1
  progressDeadlineSeconds: 600
  paused: false
  selector:
    matchLabels: {app: web}
    matchExpressions: [{key: tier, operator: In, values: [a]}]
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
      creationTimestamp: null
    spec:
      restartPolicy: Always
      terminationGracePeriodSeconds: 30
      dnsPolicy: ClusterFirst
      serviceAccountName: default
      nodeSelector: {disk: ssd}
      hostNetwork: false
      securityContext: {runAsNonRoot: true, fsGroup: 2000}
      tolerations: [{key: k, operator: Exists, effect: NoSchedule}]
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a]}]}]
      imagePullSecrets: [{name: reg}]
      initContainers: [{name: init, image: busybox, command: ["true"]}]
      containers:
      - name: web
        image: nginx:1.27
        imagePullPolicy: IfNotPresent
        command: [nginx]
        args: [-g, daemon off;]
        workingDir: /
        ports: [{containerPort: 80, name: http, protocol: TCP}]
        env:
        - {name: A, value: "1"}
        - {name: B, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: C, valueFrom: {secretKeyRef: {name: s, key: k}}}
        envFrom: [{configMapRef: {name: cm}}]
        resources:
          limits: {cpu: 1, memory: 128Mi}
          requests: {cpu: 100m}
        volumeMounts: [{name: data, mountPath: /data, readOnly: true}]
        livenessProbe: {httpGet: {path: /, port: 80}, initialDelaySeconds: 3, periodSeconds: 10}
        readinessProbe: {tcpSocket: {port: http}, failureThreshold: 3}
        startupProbe: {exec: {command: ["true"]}}
        lifecycle: {preStop: {exec: {command: [sleep, "1"]}}}
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        terminationMessagePath: /dev/termination-log
        terminationMessagePolicy: File
        stdin: false
        tty: false
      volumes:
      - {name: data, emptyDir: {}}
      - {name: cfg, configMap: {name: cm, items: [{key: a, path: a}]}}
      - {name: sec, secret: {secretName: s, defaultMode: 420}}
status: {}
"#;

    #[test]
    fn a_full_deployment_has_no_unknown_fields() {
        let input = full_deployment();
        assert_eq!(unknown_fields(&input, &roundtrip::<Deployment>(&input)), Vec::<String>::new());
    }

    #[test]
    fn misspelt_fields_are_named_by_path() {
        type Edit = fn(&mut Value);
        let cases: &[(&str, Edit, &[&str])] = &[
            (
                "container field",
                |d| d["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("nginx"),
                &["spec.template.spec.containers[0].imagee"],
            ),
            ("spec field", |d| d["spec"]["replicass"] = json!(3), &["spec.replicass"]),
            ("top level", |d| d["specc"] = json!({}), &["specc"]),
            ("metadata", |d| d["metadata"]["lables"] = json!({"a": "b"}), &["metadata.lables"]),
            (
                "second list element",
                |d| d["spec"]["template"]["spec"]["volumes"][1]["configMap"]["nmae"] = json!("x"),
                &["spec.template.spec.volumes[1].configMap.nmae"],
            ),
            (
                "two at once",
                |d| {
                    d["spec"]["replicass"] = json!(3);
                    d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerport"] = json!(80);
                },
                &["spec.replicass", "spec.template.spec.containers[0].ports[0].containerport"],
            ),
            ("unknown object keeps its path, not its insides", |d| d["spec"]["extra"] = json!({"a": {"b": 1}}), &["spec.extra"]),
            ("unknown null is dropped silently", |d| d["spec"]["replicass"] = Value::Null, &[]),
        ];
        for (name, edit, want) in cases {
            let mut input = full_deployment();
            edit(&mut input);
            let got = unknown_fields(&input, &roundtrip::<Deployment>(&input));
            assert_eq!(got, want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{name}");
        }
    }

    /// Free-form maps (labels, data, limits) keep every key, and values
    /// that change form (numbers to quantities) are still the same field.
    #[test]
    fn other_kinds_round_trip_cleanly() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": 0.5, "nvidia.com/gpu": 1}}}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}});
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque",
            "data": {"k": "dmFsdWU="}, "stringData": {"p": "plain"}});
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http", "nodePort": 30080}], "type": "NodePort"}});
        for (name, input, back) in [
            ("pod", &pod, roundtrip::<Pod>(&pod)),
            ("secret", &secret, roundtrip::<Secret>(&secret)),
            ("service", &service, roundtrip::<Service>(&service)),
        ] {
            assert_eq!(unknown_fields(input, &back), Vec::<String>::new(), "{name}");
        }
    }

    #[test]
    fn duplicate_keys_are_found_in_the_raw_body() {
        for (body, want) in [
            (r#"{"spec":{"replicas":1,"replicas":2}}"#, vec!["spec.replicas"]),
            (r#"{"a":1,"a":2,"a":3}"#, vec!["a"]),
            (r#"{"spec":{"containers":[{"name":"a"},{"name":"b","name":"c"}]}}"#, vec!["spec.containers[1].name"]),
            (r#"{"a":{"x":1},"b":{"x":1}}"#, vec![]),
            (r#"{"a":1"#, vec![]),
        ] {
            assert_eq!(duplicate_fields(body.as_bytes()), want, "{body}");
        }
    }

    #[test]
    fn strict_errors_read_like_upstreams() {
        let one = strict_error("Deployment", "v1", &["spec.replicass".to_string()]);
        assert_eq!(one.code, 400);
        assert_eq!(one.reason, "BadRequest");
        assert_eq!(
            one.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicass\""
        );
        let many = strict_error_with_duplicates("Pod", "v1", &["a".into(), "b".into()], &["spec.x".into()]);
        assert_eq!(
            many.message,
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"a\", unknown field \"b\", duplicate field \"spec.x\""
        );
        assert_eq!(warnings(&["a".into()], &["b".into()]), vec!["unknown field \"a\"", "duplicate field \"b\""]);
    }

    #[test]
    fn duplicate_keys_are_found_in_yaml_too() {
        for (body, want) in [
            ("spec:\n  replicas: 1\n  replicas: 2\n", vec!["spec.replicas"]),
            ("a: [{x: 1, x: 2}]\n", vec!["a[0].x"]),
            ("a: 1\nb: 2\n", vec![]),
            ("a: [\n", vec![]),
        ] {
            assert_eq!(duplicate_fields_in(body.as_bytes(), true), want, "{body}");
        }
        assert_eq!(duplicate_fields_in(br#"{"a":1,"a":2}"#, false), vec!["a"]);
    }

    #[test]
    fn patch_strict_errors_read_like_upstreams() {
        let patch = json!({"spec": {"replicas": 2}});
        let patched = json!({"kind": "Pod", "spec": {"replicas": 2}});
        let dups = ["spec.replicas".to_string()];
        let merge = patch_strict_error(PatchType::Merge, &patched, &patch, &dups);
        assert_eq!((merge.code, merge.reason.as_str()), (422, "Invalid"));
        assert_eq!(
            merge.message,
            r#" "" is invalid: patch: Invalid value: "{\"kind\":\"Pod\",\"spec\":{\"replicas\":2}}": strict decoding error: duplicate field "spec.replicas""#
        );
        let strategic = patch_strict_error(PatchType::StrategicMerge, &patched, &patch, &dups);
        assert_eq!(
            strategic.message,
            r#" "" is invalid: patch: Invalid value: "map[spec:map[replicas:2]]": strict decoding error: duplicate field "spec.replicas""#
        );
        assert_eq!(patch_warnings(PatchType::Json, &["[0].value".into()]), vec![r#"json patch duplicate field "[0].value""#]);
        assert_eq!(go_print(&json!({"b": [1, "x", null], "a": true})), "map[a:true b:[1 x <nil>]]");
    }
}
