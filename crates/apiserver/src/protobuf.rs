//! Request bodies in Kubernetes' protobuf encoding.
//!
//! kube-apiserver reads three encodings: JSON, YAML and protobuf
//! (`application/vnd.kubernetes.protobuf`). Protobuf is the one Go clients
//! prefer: kubectl 1.32 builds the objects of `create deployment`,
//! `create service`, `create configmap`, `create secret`, `create
//! namespace`, `create job` and `create serviceaccount` itself and POSTs
//! them through client-go's typed clientset as protobuf, and client-go
//! does not retry as JSON when a server refuses it. (`apply`, `run` and
//! `expose` send JSON.) Answers may still be JSON — those clients accept
//! both — so tinykube only ever has to *read* protobuf.
//!
//! # The wire format
//! A body is the four bytes `k8s\0` followed by a `runtime.Unknown`
//! message (`k8s.io/apimachinery/pkg/runtime/generated.proto`):
//!
//! ```text
//! message Unknown {
//!   optional TypeMeta typeMeta = 1;       // {apiVersion = 1, kind = 2}
//!   optional bytes raw = 2;               // the object itself
//!   optional string contentEncoding = 3;  // unused
//!   optional string contentType = 4;      // unused
//! }
//! ```
//!
//! `raw` is the object as its `generated.proto` describes it —
//! `Deployment {metadata = 1, spec = 2, status = 3}` — without apiVersion
//! and kind, which only the envelope carries. The messages are proto2 and
//! written by gogo-protobuf, which writes every field of a Go value type,
//! even when empty, and a pointer field only when set.
//!
//! # Decoding to JSON
//! The rest of the api-server handles objects as JSON (see the crate
//! docs), so a protobuf body is turned into the JSON the same Go object
//! would have been sent as, and from there on nothing knows the difference:
//! strategies, field validation and storage are the JSON path's. That
//! needs a schema: field numbers, names and types, plus what makes the
//! JSON differ from a plain field-by-field mapping:
//! - a field Go tags `omitempty` is left out when zero, but a pointer
//!   (`*int32 replicas`) keeps its zero, so each field says which it is;
//! - an embedded struct (`Volume`'s `VolumeSource`) is a nested message in
//!   protobuf and spliced into its parent in JSON;
//! - `metav1.Time {seconds, nanos}` is an RFC 3339 string (whole seconds,
//!   as upstream's decoder drops the nanos; `null` when empty),
//!   `MicroTime` keeps microseconds, `resource.Quantity {string}` is its
//!   string, `intstr.IntOrString {type, intVal, strVal}` a number or a
//!   string, and `FieldsV1 {Raw}` the JSON it holds;
//! - `bytes` are base64, proto maps are objects.
//!
//! The schema lives in `protobuf/schema.rs`: one table per message, written from
//! the Kubernetes 1.32 `generated.proto` and `types.go` files, covering
//! every message the kinds tinykube serves reach (216 messages).
//!
//! Why tables and not a protobuf library: the `k8s-pb` crate has prost
//! structs for every Kubernetes type, but no serde, so each of them would
//! need a hand-written conversion to JSON — more code than the schema —
//! and it alone takes a minute to compile on a two-core machine (the
//! tables take a fifth of a second).
//! `prost-reflect` would decode dynamically from a descriptor, but the
//! descriptor has to be built from `.proto` files we would have to
//! write anyway, its JSON mapping is proto3's (int64 as strings, no
//! `omitempty`, no inlining, no special types), and it is one more
//! dependency. The protobuf wire format itself is small — varints,
//! length-delimited bytes, two fixed widths — and is read here in a few
//! dozen lines, with no new dependency and no build step.
//!
//! # Unknown fields
//! A field number the schema does not have is not dropped silently: it
//! becomes a key `<field N>` in the JSON object of its message, where the
//! JSON path's field validation ([`crate::fieldvalidation`]) finds it like
//! any misspelt key — `fieldValidation=Strict` fails with
//! `unknown field "spec.template.spec.<field 99>"`, `Warn` warns, and
//! `Ignore` drops it when the object is parsed into its type. An unknown
//! field holding its zero value (`0`, empty bytes) is skipped: that is how
//! a newer client's unset fields arrive (gogo-protobuf writes them all),
//! and JSON would not have carried them at all.
//!
//! Where tinykube simplifies: only request bodies are decoded (and only
//! of the kinds tinykube serves, plus `Binding` and `Scale`); responses
//! stay JSON. Upstream's gogo-protobuf decoder skips unknown fields
//! without a word; tinykube reports them. Proto2 groups, which Kubernetes
//! never uses, are refused.

mod schema;

use std::borrow::Cow;

use api::ApiError;
use base64::Engine;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use serde_json::{Map, Value};

use schema::{Card, Field, Form, Message, Type};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with: `k8s` and an
/// encoding byte, 0 for "a `runtime.Unknown` follows".
pub const MAGIC: &[u8; 4] = b"k8s\x00";

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body does not start with [`MAGIC`] (upstream's wording).
    #[error("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")]
    NoMagic,
    /// The envelope's `typeMeta` names no kind or no apiVersion.
    #[error("the protobuf envelope names no {0}")]
    MissingTypeMeta(&'static str),
    /// A kind tinykube has no protobuf schema for.
    #[error("tinykube cannot decode {kind} in version {api_version:?} from protobuf; send it as application/json")]
    UnsupportedKind { api_version: String, kind: String },
    /// The bytes are not well-formed protobuf for the kind's schema.
    #[error("{at}: {problem}")]
    Malformed { at: String, problem: String },
}

impl From<DecodeError> for ApiError {
    /// A kind without a schema is the media type's limit here (415, as for
    /// any body the server cannot read); broken bytes are the client's
    /// (400, as upstream answers a body it cannot decode).
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::UnsupportedKind { .. } => {
                let mut err = ApiError::bad_request(e.to_string());
                err.code = 415;
                err.reason = "UnsupportedMediaType".into();
                err
            }
            other => ApiError::bad_request(format!("the body of the request could not be decoded as {MEDIA_TYPE}: {other}")),
        }
    }
}

/// Decodes a protobuf request body into the JSON object it stands for,
/// with `apiVersion` and `kind` from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    let envelope = body.strip_prefix(MAGIC.as_slice()).ok_or(DecodeError::NoMagic)?;
    let unknown = Envelope::parse(envelope)?;
    if unknown.kind.is_empty() {
        return Err(DecodeError::MissingTypeMeta("kind"));
    }
    if unknown.api_version.is_empty() {
        return Err(DecodeError::MissingTypeMeta("apiVersion"));
    }
    let message = schema::kind(&unknown.api_version, &unknown.kind)
        .ok_or_else(|| DecodeError::UnsupportedKind { api_version: unknown.api_version.clone(), kind: unknown.kind.clone() })?;
    let (object, _) = decode_message(message, unknown.raw, "")?;
    let Value::Object(mut object) = object else {
        return Err(malformed("", format!("{} is not an object", message.name)));
    };
    object.insert("apiVersion".into(), Value::String(unknown.api_version));
    object.insert("kind".into(), Value::String(unknown.kind));
    Ok(Value::Object(object))
}

/// The `runtime.Unknown` envelope. `contentEncoding` and `contentType`
/// are read past: upstream's decoder ignores them too.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
}

impl<'a> Envelope<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut envelope = Envelope { api_version: String::new(), kind: String::new(), raw: &[] };
        for (number, value) in wire_fields(bytes).map_err(|p| malformed("runtime.Unknown", p))? {
            match (number, value) {
                (1, Wire::Len(type_meta)) => {
                    for (number, value) in wire_fields(type_meta).map_err(|p| malformed("runtime.Unknown.typeMeta", p))? {
                        match (number, value) {
                            (1, Wire::Len(s)) => envelope.api_version = String::from_utf8_lossy(s).into_owned(),
                            (2, Wire::Len(s)) => envelope.kind = String::from_utf8_lossy(s).into_owned(),
                            _ => {}
                        }
                    }
                }
                (2, Wire::Len(raw)) => envelope.raw = raw,
                _ => {}
            }
        }
        Ok(envelope)
    }
}

// ---------------------------------------------------------------- the wire

/// One field's value as the wire carries it. The wire says how long a
/// value is, not what it means: that is the schema's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire<'a> {
    /// Wire type 0: integers and bools.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, messages, packed repeated numbers.
    Len(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl Wire<'_> {
    /// The zero value a gogo-protobuf writer emits for an unset field.
    fn is_zero(&self) -> bool {
        match *self {
            Wire::Varint(v) | Wire::Fixed64(v) => v == 0,
            Wire::Fixed32(v) => v == 0,
            Wire::Len(b) => b.is_empty(),
        }
    }

    /// A stand-in for the value of an unknown field (only ever reported,
    /// never stored).
    fn to_json(self) -> Value {
        match self {
            Wire::Varint(v) | Wire::Fixed64(v) => Value::from(v),
            Wire::Fixed32(v) => Value::from(v),
            Wire::Len(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        }
    }
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let end = pos.checked_add(n).filter(|end| *end <= buf.len()).ok_or("truncated field")?;
    let bytes = &buf[*pos..end];
    *pos = end;
    Ok(bytes)
}

/// Splits a message into its fields, in wire order.
fn wire_fields(buf: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, String> {
    let mut fields = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        let number = u32::try_from(key >> 3).ok().filter(|n| *n > 0).ok_or_else(|| format!("invalid field number {}", key >> 3))?;
        let value = match key & 7 {
            0 => Wire::Varint(read_varint(buf, &mut pos)?),
            1 => Wire::Fixed64(u64::from_le_bytes(take(buf, &mut pos, 8)?.try_into().map_err(|_| "truncated fixed64")?)),
            2 => {
                let len = usize::try_from(read_varint(buf, &mut pos)?).map_err(|_| "length out of range")?;
                Wire::Len(take(buf, &mut pos, len)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(take(buf, &mut pos, 4)?.try_into().map_err(|_| "truncated fixed32")?)),
            3 | 4 => return Err(format!("field {number} is a proto2 group, which Kubernetes never uses")),
            other => return Err(format!("field {number} has invalid wire type {other}")),
        };
        fields.push((number, value));
    }
    Ok(fields)
}

// -------------------------------------------------------------- the schema

/// Unknown fields a message could not hold itself because its JSON is
/// not an object (an `IntOrString` with an extra field): `(key relative to
/// the message, value)`, for the enclosing object to hold.
type Strays = Vec<(String, Value)>;

/// A decoded message and its [`Strays`].
type Decoded = (Value, Strays);

/// The key an unknown field is reported under.
fn unknown_key(number: u32) -> String {
    format!("<field {number}>")
}

fn malformed(at: &str, problem: impl Into<String>) -> DecodeError {
    DecodeError::Malformed { at: if at.is_empty() { "object".into() } else { at.to_string() }, problem: problem.into() }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Decodes one message at `path` (for errors) into its JSON form.
fn decode_message(message: &'static Message, bytes: &[u8], path: &str) -> Result<Decoded, DecodeError> {
    let wire = wire_fields(bytes).map_err(|p| malformed(path, p))?;
    let mut object = Map::new();
    let mut strays = Vec::new();
    for field in message.fields {
        let values: Vec<Wire<'_>> = wire.iter().filter(|(n, _)| *n == field.number).map(|(_, v)| *v).collect();
        if values.is_empty() {
            continue;
        }
        decode_field(field, &values, path, &mut object, &mut strays)?;
    }
    for (number, value) in &wire {
        if !value.is_zero() && message.fields.binary_search_by_key(number, |f| f.number).is_err() {
            strays.push((unknown_key(*number), value.to_json()));
        }
    }
    if message.form == Form::Object {
        object.extend(strays.drain(..));
        return Ok((Value::Object(object), strays));
    }
    let value = special_form(message.form, &object).map_err(|p| malformed(path, p))?;
    Ok((value, strays))
}

/// Adds one field, present on the wire as `values`, to `object`.
fn decode_field(
    field: &Field,
    values: &[Wire<'_>],
    path: &str,
    object: &mut Map<String, Value>,
    strays: &mut Strays,
) -> Result<(), DecodeError> {
    let name = field.name;
    let at = || join(path, name);
    match (field.card, field.ty) {
        // A message field that occurs more than once is merged, which for
        // protobuf is the same as decoding the occurrences concatenated.
        (Card::Omitempty | Card::Keep, Type::Msg(child)) => {
            let bytes = concat(values).map_err(|p| malformed(&at(), p))?;
            let (value, inner) = decode_message(child, &bytes, &at())?;
            object.insert(name.into(), value);
            strays.extend(inner.into_iter().map(|(k, v)| (format!("{name}.{k}"), v)));
        }
        (Card::Inline, Type::Msg(child)) => {
            let bytes = concat(values).map_err(|p| malformed(&at(), p))?;
            match decode_message(child, &bytes, path)? {
                (Value::Object(inner), more) => {
                    object.extend(inner);
                    strays.extend(more);
                }
                _ => return Err(malformed(&at(), format!("inline {} is not an object", child.name))),
            }
        }
        (Card::Omitempty | Card::Keep | Card::Inline, scalar) => {
            // The last occurrence of a scalar wins, as in every protobuf
            // decoder.
            let last = values[values.len() - 1];
            let value = decode_scalar(scalar, last).map_err(|p| malformed(&at(), p))?;
            if field.card == Card::Keep || !is_zero(&value) {
                object.insert(name.into(), value);
            }
        }
        (Card::Repeated, ty) => {
            let mut items = Vec::with_capacity(values.len());
            for value in values {
                match (ty, *value) {
                    (Type::Msg(child), Wire::Len(bytes)) => {
                        let i = items.len();
                        let (item, inner) = decode_message(child, bytes, &format!("{}[{i}]", at()))?;
                        items.push(item);
                        strays.extend(inner.into_iter().map(|(k, v)| (format!("{name}[{i}].{k}"), v)));
                    }
                    // Numbers may come packed: several varints in one
                    // length-delimited value.
                    (Type::Bool | Type::I32 | Type::I64, Wire::Len(packed)) => {
                        let mut pos = 0;
                        while pos < packed.len() {
                            let v = read_varint(packed, &mut pos).map_err(|p| malformed(&at(), p))?;
                            items.push(decode_scalar(ty, Wire::Varint(v)).map_err(|p| malformed(&at(), p))?);
                        }
                    }
                    (ty, value) => items.push(decode_scalar(ty, value).map_err(|p| malformed(&at(), p))?),
                }
            }
            object.insert(name.into(), Value::Array(items));
        }
        (Card::Map, ty) => {
            let mut map = Map::new();
            for value in values {
                let Wire::Len(entry) = *value else {
                    return Err(malformed(&at(), "a map entry must be length-delimited"));
                };
                let (key, value, inner) = decode_map_entry(ty, entry, &at())?;
                strays.extend(inner.into_iter().map(|(k, v)| (format!("{name}.{k}"), v)));
                map.insert(key, value);
            }
            object.insert(name.into(), Value::Object(map));
        }
    }
    Ok(())
}

/// One `{key = 1, value = 2}` entry of a proto map with string keys. A
/// missing value is the type's zero, as in Go.
fn decode_map_entry(ty: Type, entry: &[u8], at: &str) -> Result<(String, Value, Strays), DecodeError> {
    let mut key = String::new();
    let mut value = None;
    let mut strays = Vec::new();
    for (number, v) in wire_fields(entry).map_err(|p| malformed(at, p))? {
        match number {
            1 => key = decode_scalar(Type::Str, v).map_err(|p| malformed(at, p))?.as_str().unwrap_or_default().to_string(),
            2 => value = Some(v),
            n if !v.is_zero() => strays.push((unknown_key(n), v.to_json())),
            _ => {}
        }
    }
    let at = format!("{at}[{key}]");
    let value = match (ty, value) {
        (Type::Msg(child), v) => {
            let bytes = match v {
                Some(Wire::Len(b)) => b,
                None => &[][..],
                Some(_) => return Err(malformed(&at, "a message must be length-delimited")),
            };
            let (value, inner) = decode_message(child, bytes, &at)?;
            strays.extend(inner.into_iter().map(|(k, v)| (format!("{key}.{k}"), v)));
            value
        }
        (ty, Some(v)) => decode_scalar(ty, v).map_err(|p| malformed(&at, p))?,
        (ty, None) => decode_scalar(ty, Wire::Len(&[])).or_else(|_| decode_scalar(ty, Wire::Varint(0))).map_err(|p| malformed(&at, p))?,
    };
    Ok((key, value, strays))
}

fn concat<'a>(values: &[Wire<'a>]) -> Result<Cow<'a, [u8]>, String> {
    let mut parts = values.iter().map(|v| match v {
        Wire::Len(b) => Ok(*b),
        _ => Err("a message must be length-delimited".to_string()),
    });
    match values.len() {
        1 => Ok(Cow::Borrowed(parts.next().unwrap_or(Ok(&[]))?)),
        _ => Ok(Cow::Owned(parts.collect::<Result<Vec<_>, _>>()?.concat())),
    }
}

fn decode_scalar(ty: Type, value: Wire<'_>) -> Result<Value, String> {
    Ok(match (ty, value) {
        // Go does not check UTF-8 in proto2 strings, and its JSON encoder
        // replaces invalid bytes with U+FFFD: the same as a lossy decode.
        (Type::Str, Wire::Len(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
        (Type::Bytes, Wire::Len(b)) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        (Type::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        // int32 is sign-extended to 64 bits on the wire; truncating gives
        // it back.
        (Type::I32, Wire::Varint(v)) => Value::from(v as i32),
        (Type::I64, Wire::Varint(v)) => Value::from(v as i64),
        (ty, value) => return Err(format!("wire type {} does not fit a {}", wire_type_name(&value), type_name(ty))),
    })
}

fn wire_type_name(value: &Wire<'_>) -> &'static str {
    match value {
        Wire::Varint(_) => "varint",
        Wire::Fixed64(_) => "fixed64",
        Wire::Len(_) => "length-delimited",
        Wire::Fixed32(_) => "fixed32",
    }
}

fn type_name(ty: Type) -> &'static str {
    match ty {
        Type::Str => "string",
        Type::Bytes => "bytes",
        Type::Bool => "bool",
        Type::I32 => "int32",
        Type::I64 => "int64",
        Type::Msg(m) => m.name,
    }
}

/// What Go's `omitempty` leaves out.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// The JSON of a message that is not an object, from its fields decoded
/// as one.
fn special_form(form: Form, fields: &Map<String, Value>) -> Result<Value, String> {
    let int = |name: &str| fields.get(name).and_then(Value::as_i64).unwrap_or(0);
    let string = |name: &str| fields.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(match form {
        Form::Object => Value::Object(fields.clone()),
        // Go's zero time marshals to no bytes, and to `null` in JSON.
        Form::Time | Form::MicroTime if fields.is_empty() => Value::Null,
        // Upstream's `Time.Unmarshal` keeps whole seconds only (its JSON
        // never had more).
        Form::Time => {
            let at = jiff::Timestamp::from_second(int("seconds")).map_err(|e| format!("time out of range: {e}"))?;
            serde_json::to_value(Time(at)).map_err(|e| e.to_string())?
        }
        Form::MicroTime => {
            let nanos = i32::try_from(int("nanos")).map_err(|_| "nanos out of range")?;
            let at = jiff::Timestamp::new(int("seconds"), nanos).map_err(|e| format!("time out of range: {e}"))?;
            serde_json::to_value(MicroTime(at)).map_err(|e| e.to_string())?
        }
        // The zero Quantity prints as "0".
        Form::Quantity => match string("string") {
            s if s.is_empty() => Value::String("0".into()),
            s => Value::String(s),
        },
        Form::IntOrString => match int("type") {
            0 => Value::from(int("intVal")),
            1 => Value::String(string("strVal")),
            other => return Err(format!("IntOrString type {other} is neither 0 (int) nor 1 (string)")),
        },
        Form::RawJson => {
            let raw = base64::engine::general_purpose::STANDARD.decode(string("Raw")).map_err(|e| e.to_string())?;
            if raw.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&raw).map_err(|e| format!("FieldsV1 is not JSON: {e}"))?
            }
        }
    })
}

#[cfg(test)]
mod tests;
