//! What each fuzz target checks, one function per target.
//!
//! A fuzz target is a function from arbitrary bytes to "no panic". The
//! functions here are that function for each target; the files in
//! `fuzz_targets/` only hand libFuzzer's input to them. Keeping them apart
//! from libFuzzer lets a plain `cargo test` replay every seed and every
//! crash found so far (`crates/apiserver/tests/fuzz_regressions.rs` includes
//! this file), so a crash that was fixed stays fixed without a fuzzer.
//!
//! Besides "no panic", each check asserts what must hold of any input:
//!
//! - a body that decodes encodes to JSON that decodes to the same value,
//!   and a refused body or patch is the client's error (4xx), never the
//!   server's (but for strategic merge patches, where upstream answers some
//!   malformed ones with 500 and tinykube does the same);
//! - a patch that applies leaves no strategic merge directive (`$patch`,
//!   `$retainKeys`, ...) in the object, and a JSON merge patch applied a
//!   second time changes nothing (RFC 7386 patches are idempotent);
//! - a label selector that parses prints as a string that parses to the
//!   same selector, and each `field=value` term of a field selector pins
//!   its field;
//! - a quantity that parses agrees with itself: its canonical form (in
//!   millicores or in bytes) parses to the same amount, and a quantity that
//!   validates is never refused for its form by the conversions.

use api::fields::FieldSelector;
use api::labels::Selector;
use api::quantity;
use api::status::ApiError;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;
use tinykube_apiserver::patch::{self, PatchType};

/// The names of the fuzz targets, as `fuzz_targets/` and `corpus/` name them.
pub const TARGETS: [&str; 6] = ["decode_body", "patch_json", "patch_merge", "patch_strategic", "selectors", "quantity"];

/// Runs the check of `target` on `data`; panics where the fuzzer would
/// report a crash.
pub fn check(target: &str, data: &[u8]) {
    match target {
        "decode_body" => decode_body(data),
        "patch_json" => patch_with(PatchType::Json, data),
        "patch_merge" => patch_with(PatchType::Merge, data),
        "patch_strategic" => patch_with(PatchType::StrategicMerge, data),
        "selectors" => selectors(data),
        "quantity" => quantity(data),
        other => panic!("no fuzz target is called {other:?}"),
    }
}

/// A request body as the REST front door reads it: as JSON, as YAML, and
/// as Kubernetes protobuf (the bytes are tried all three ways).
pub fn decode_body(data: &[u8]) {
    for yaml in [false, true] {
        match tinykube_apiserver::rest::parse_body(data, yaml) {
            Ok(value) => assert_reparses(&value),
            Err(e) => assert_client_error(&e),
        }
    }
    match tinykube_apiserver::protobuf::decode(data) {
        Ok(value) => {
            assert!(value.get("kind").is_some_and(Value::is_string), "a decoded protobuf body has a kind: {value}");
            assert_reparses(&value);
        }
        Err(e) => assert_client_error(&ApiError::from(e)),
    }
}

/// A decoded body written back as JSON reads as the same value.
///
/// Floating-point numbers may come back one unit in the last place off:
/// serde_json, as the workspace builds it (without its `float_roundtrip`
/// feature), parses decimal floats with a fast algorithm that is not
/// always correctly rounded, so `1.11111111111e79` written and read again
/// is `1.1111111111099999e79`. That is a property of the JSON parser, not
/// of a decoder (fuzz/regressions/decode_body/ has the input that showed
/// it); anything larger than that drift still fails.
fn assert_reparses(value: &Value) {
    let json = serde_json::to_vec(value).expect("a JSON value encodes");
    let again = tinykube_apiserver::rest::parse_body(&json, false).expect("the JSON of a decoded body decodes");
    assert!(same(&again, value), "decoding the JSON of a decoded body changed it: {value} became {again}");
}

/// Equal, but for floats, which may differ by one unit in the last place.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || x.to_bits().abs_diff(y.to_bits()) <= 1,
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w))),
        _ => a == b,
    }
}

fn assert_client_error(e: &ApiError) {
    assert!((400..500).contains(&e.code), "a malformed request answered {} {}: {}", e.code, e.reason, e.message);
}

/// The stored objects the patch targets patch: the first input byte picks
/// one, the rest is the patch.
pub const ORIGINALS: [(&str, &str, &str); 3] = [
    ("apps", "deployments", include_str!("../originals/deployment.json")),
    ("", "pods", include_str!("../originals/pod.json")),
    ("", "configmaps", include_str!("../originals/configmap.json")),
];

/// A PATCH of one of [`ORIGINALS`] in the language `kind`.
pub fn patch_with(kind: PatchType, data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else { return };
    let (group, resource, original) = ORIGINALS[usize::from(pick) % ORIGINALS.len()];
    let info = api::resources::by_resource(group, resource).expect("the originals are of served kinds");
    let original: Value = serde_json::from_str(original).expect("the originals are JSON");
    let patched = match patch::apply(kind, info, &original, body) {
        Ok(patched) => patched,
        // Upstream answers some malformed strategic merge patches with 500:
        // `interpretStrategicMergePatchError` turns only a few of
        // strategicpatch's errors into a 400, and `ErrNoMergeKey` ("does not
        // contain declared merge key") or `ErrBadPatchType` ("unknown patch
        // type") fall through as internal errors. tinykube answers as upstream
        // does (fuzz/regressions/patch_strategic/ has both).
        Err(_) if kind == PatchType::StrategicMerge => return,
        Err(e) => return assert_client_error(&e),
    };
    if let Some(key) = directive_in(&patched) {
        panic!("the patched object still carries the directive {key:?}: {patched}");
    }
    if kind == PatchType::Merge {
        let twice = patch::apply(kind, info, &patched, body).expect("a merge patch that applied once applies again");
        assert_eq!(twice, patched, "a JSON merge patch applied twice changed the object again");
    }
}

/// The first strategic merge directive found anywhere in `value`.
fn directive_in(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let directive =
                k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") || k.starts_with("$deleteFromPrimitiveList/");
            if directive {
                Some(k.clone())
            } else {
                directive_in(v)
            }
        }),
        Value::Array(items) => items.iter().find_map(directive_in),
        _ => None,
    }
}

/// `?labelSelector=` and `?fieldSelector=` values. The first byte says
/// which parser reads the rest, so that each has inputs of its own.
pub fn selectors(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(s) = std::str::from_utf8(rest) else { return };
    if pick % 2 == 0 {
        if let Ok(selector) = Selector::parse(s) {
            let printed = selector.to_string();
            let again = Selector::parse(&printed).unwrap_or_else(|e| panic!("{s:?} parsed but its printed form {printed:?} does not: {e}"));
            assert_eq!(again, selector, "{s:?} printed as {printed:?}, which parses to another selector");
        }
    } else if let Ok(selector) = FieldSelector::parse(s) {
        // The scheduler and the agent watch pods with `spec.nodeName=<node>`
        // and read the node back with `equality`: every `=` term pins its field.
        for term in selector.terms.iter().filter(|t| !t.negated) {
            assert!(selector.equality(&term.field).is_some(), "{s:?} has the term {term:?} but pins no value for it");
        }
    }
}

/// A resource quantity (`100m`, `1Gi`, `1e3`, `0.5`).
pub fn quantity(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let q = Quantity(s.to_string());
    let valid = quantity::validate(&q).is_ok();
    let millis = quantity::cpu_millis(&q);
    let bytes = quantity::bytes(&q);
    if !valid {
        assert!(millis.is_err() && bytes.is_err(), "{s:?} is refused by validate but converts: {millis:?} {bytes:?}");
        return;
    }
    // Conversions of a valid quantity fail only for its size.
    for result in [&millis, &bytes] {
        if let Err(e) = result {
            assert!(e.contains("too large"), "the valid quantity {s:?} failed to convert: {e}");
        }
    }
    if let Ok(m) = millis {
        let canonical = quantity::format_cpu_millis(m);
        assert_eq!(quantity::cpu_millis(&Quantity(canonical.clone())), Ok(m), "{s:?} is {m} millicores, written {canonical:?}");
    }
    if let Ok(b) = bytes {
        let canonical = quantity::format_bytes_as_ki(b);
        assert_eq!(quantity::bytes(&Quantity(canonical.clone())), Ok(b), "{s:?} is {b} bytes, written {canonical:?}");
    }
}
