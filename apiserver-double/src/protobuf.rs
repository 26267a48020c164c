//! Decoding of the few protobuf request bodies kubectl sends.
//!
//! kubectl's typed commands (`kubectl create namespace|configmap|secret|serviceaccount`)
//! send `application/vnd.kubernetes.protobuf` bodies, whatever the server prefers. This
//! module turns those into the JSON objects every other path works with, for exactly
//! these kinds: `v1` Namespace, ConfigMap, Secret and ServiceAccount. Any other kind is a
//! 415, telling the client to send JSON. Responses are always JSON (kubectl accepts it).
//!
//! Wire format (Kubernetes' protobuf envelope): the magic bytes `k8s\0`, then a
//! `runtime.Unknown` message {1: TypeMeta {1: apiVersion, 2: kind}, 2: raw object bytes,
//! 3: contentEncoding, 4: contentType}. The raw object is the kind's generated message;
//! field numbers below are those of `k8s.io/api/core/v1/generated.proto` and
//! `k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`. Empty strings are written by
//! Go for unset fields and are read as absent; server-set metadata is skipped.

use serde_json::{Map, Value, json};

/// The media type of protobuf bodies.
pub(crate) const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ProtobufError {
    #[error("the body does not start with the Kubernetes protobuf magic bytes")]
    MissingMagic,
    #[error("the body ends inside a field")]
    Truncated,
    #[error("unsupported protobuf wire type {wire_type} (field {field})")]
    WireType { field: u64, wire_type: u64 },
    #[error("field {field} is not valid UTF-8")]
    Utf8 { field: u64 },
    #[error(
        "the API server double decodes protobuf bodies only for v1 Namespace, ConfigMap, Secret and ServiceAccount, not {api_version} {kind}; send JSON"
    )]
    UnsupportedKind { api_version: String, kind: String },
}

/// One field of a message: its number and value.
#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The fields of one message, in order.
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ProtobufError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (field, wire_type) = (key >> 3, key & 7);
        let value = match wire_type {
            0 => Field::Varint(varint(&mut buf)?),
            2 => {
                let len =
                    usize::try_from(varint(&mut buf)?).map_err(|_| ProtobufError::Truncated)?;
                let (bytes, rest) = buf.split_at_checked(len).ok_or(ProtobufError::Truncated)?;
                buf = rest;
                Field::Bytes(bytes)
            }
            1 | 5 => {
                let width = if wire_type == 1 { 8 } else { 4 };
                buf = buf.get(width..).ok_or(ProtobufError::Truncated)?;
                continue;
            }
            _ => return Err(ProtobufError::WireType { field, wire_type }),
        };
        out.push((field, value));
    }
    Ok(out)
}

fn varint(buf: &mut &[u8]) -> Result<u64, ProtobufError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or(ProtobufError::Truncated)?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ProtobufError::Truncated)
}

fn string(field: u64, value: Field<'_>) -> Result<Option<String>, ProtobufError> {
    match value {
        Field::Bytes(b) => {
            let s = std::str::from_utf8(b).map_err(|_| ProtobufError::Utf8 { field })?;
            Ok((!s.is_empty()).then(|| s.to_owned()))
        }
        Field::Varint(_) => Ok(None),
    }
}

fn bytes(value: Field<'_>) -> &[u8] {
    match value {
        Field::Bytes(b) => b,
        Field::Varint(_) => &[],
    }
}

fn boolean(value: Field<'_>) -> bool {
    matches!(value, Field::Varint(v) if v != 0)
}

/// A `map<string, string>` (or `map<string, bytes>`, base64-encoded as in JSON) entry.
fn map_entry(value: Field<'_>, base64_values: bool) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut val = Value::String(String::new());
    for (n, f) in fields(bytes(value))? {
        match n {
            1 => key = string(1, f)?.unwrap_or_default(),
            2 if base64_values => val = json!(base64(bytes(f))),
            2 => val = json!(string(2, f)?.unwrap_or_default()),
            _ => {}
        }
    }
    Ok((key, val))
}

fn insert_entry(obj: &mut Map<String, Value>, field: &str, (key, value): (String, Value)) {
    if let Value::Object(map) = obj.entry(field).or_insert_with(|| json!({})) {
        map.insert(key, value);
    }
}

fn push(obj: &mut Map<String, Value>, field: &str, value: Value) {
    if let Value::Array(items) = obj.entry(field).or_insert_with(|| json!([])) {
        items.push(value);
    }
}

/// ObjectMeta: the fields a client sets on create.
fn object_meta(raw: &[u8]) -> Result<Value, ProtobufError> {
    let mut meta = Map::new();
    for (n, f) in fields(raw)? {
        let name = match n {
            1 => "name",
            2 => "generateName",
            3 => "namespace",
            11 => {
                insert_entry(&mut meta, "labels", map_entry(f, false)?);
                continue;
            }
            12 => {
                insert_entry(&mut meta, "annotations", map_entry(f, false)?);
                continue;
            }
            13 => {
                push(&mut meta, "ownerReferences", owner_reference(bytes(f))?);
                continue;
            }
            14 => {
                if let Some(s) = string(n, f)? {
                    push(&mut meta, "finalizers", json!(s));
                }
                continue;
            }
            _ => continue,
        };
        if let Some(s) = string(n, f)? {
            meta.insert(name.into(), json!(s));
        }
    }
    Ok(Value::Object(meta))
}

fn owner_reference(raw: &[u8]) -> Result<Value, ProtobufError> {
    let mut owner = Map::new();
    for (n, f) in fields(raw)? {
        match n {
            1 | 3 | 4 | 5 => {
                let name =
                    ["", "kind", "", "name", "uid", "apiVersion"][usize::try_from(n).unwrap_or(0)];
                if let Some(s) = string(n, f)? {
                    owner.insert(name.into(), json!(s));
                }
            }
            6 => {
                owner.insert("controller".into(), json!(boolean(f)));
            }
            7 => {
                owner.insert("blockOwnerDeletion".into(), json!(boolean(f)));
            }
            _ => {}
        }
    }
    Ok(Value::Object(owner))
}

/// The JSON object a protobuf request body encodes.
pub(crate) fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(envelope)? {
        match n {
            1 => {
                for (tn, tf) in fields(bytes(f))? {
                    match tn {
                        1 => api_version = string(tn, tf)?.unwrap_or_default(),
                        2 => kind = string(tn, tf)?.unwrap_or_default(),
                        _ => {}
                    }
                }
            }
            2 => raw = bytes(f),
            _ => {}
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    for (n, f) in fields(raw)? {
        if n == 1 {
            obj.insert("metadata".into(), object_meta(bytes(f))?);
            continue;
        }
        match (api_version.as_str(), kind.as_str(), n) {
            ("v1", "Namespace", 2) => {
                let mut spec = Map::new();
                for (sn, sf) in fields(bytes(f))? {
                    if let (1, Some(s)) = (sn, string(sn, sf)?) {
                        push(&mut spec, "finalizers", json!(s));
                    }
                }
                obj.insert("spec".into(), Value::Object(spec));
            }
            ("v1", "ConfigMap", 2) => insert_entry(&mut obj, "data", map_entry(f, false)?),
            ("v1", "ConfigMap", 3) => insert_entry(&mut obj, "binaryData", map_entry(f, true)?),
            ("v1", "ConfigMap", 4) | ("v1", "Secret", 5) => {
                obj.insert("immutable".into(), json!(boolean(f)));
            }
            ("v1", "Secret", 2) => insert_entry(&mut obj, "data", map_entry(f, true)?),
            ("v1", "Secret", 3) => {
                if let Some(t) = string(n, f)? {
                    obj.insert("type".into(), json!(t));
                }
            }
            ("v1", "Secret", 4) => insert_entry(&mut obj, "stringData", map_entry(f, false)?),
            ("v1", "ServiceAccount", 3) => {
                let name = fields(bytes(f))?
                    .into_iter()
                    .find(|(ln, _)| *ln == 1)
                    .map(|(ln, lf)| string(ln, lf))
                    .transpose()?
                    .flatten()
                    .unwrap_or_default();
                push(&mut obj, "imagePullSecrets", json!({"name": name}));
            }
            ("v1", "ServiceAccount", 4) => {
                obj.insert("automountServiceAccountToken".into(), json!(boolean(f)));
            }
            ("v1", "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount", _) => {}
            _ => {
                return Err(ProtobufError::UnsupportedKind { api_version, kind });
            }
        }
    }
    if !matches!(
        (api_version.as_str(), kind.as_str()),
        (
            "v1",
            "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount"
        )
    ) {
        return Err(ProtobufError::UnsupportedKind { api_version, kind });
    }
    Ok(Value::Object(obj))
}

/// Standard base64 with padding, as JSON carries `[]byte`.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bodies captured from `kubectl create ...` (kubectl v1.33).
    const NAMESPACE: &[u8] = b"k8s\0\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x1e\x0a\x16\x0a\x06golden\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x00\x1a\x02\x0a\x00\x1a\x00\x22\x00";
    const CONFIGMAP: &[u8] = b"k8s\0\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12\x2f\x0a\x1d\x0a\x06golden\x12\x00\x1a\x07default\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x06\x0a\x01a\x12\x01b\x12\x06\x0a\x01c\x12\x01d\x1a\x00\x22\x00";
    const SECRET: &[u8] = b"k8s\0\x0a\x0c\x0a\x02v1\x12\x06Secret\x12\x2f\x0a\x1d\x0a\x06golden\x12\x00\x1a\x07default\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x06\x0a\x01k\x12\x01v\x1a\x06Opaque\x1a\x00\x22\x00";
    const DEPLOYMENT_HEAD: &[u8] = b"k8s\0\x0a\x15\x0a\x07apps/v1\x12\x0aDeployment\x12\x00";

    #[test]
    fn kubectl_create_namespace_decodes() {
        let obj = decode(NAMESPACE).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "golden"}, "spec": {}})
        );
    }

    #[test]
    fn kubectl_create_configmap_decodes_its_data() {
        let obj = decode(CONFIGMAP).unwrap();
        assert_eq!(
            obj["metadata"],
            json!({"name": "golden", "namespace": "default"})
        );
        assert_eq!(obj["data"], json!({"a": "b", "c": "d"}));
    }

    #[test]
    fn kubectl_create_secret_decodes_bytes_as_base64() {
        let obj = decode(SECRET).unwrap();
        assert_eq!(obj["data"], json!({"k": "dg=="}));
        assert_eq!(obj["type"], "Opaque");
    }

    #[test]
    fn other_kinds_and_broken_bodies_are_refused() {
        assert!(matches!(
            decode(DEPLOYMENT_HEAD),
            Err(ProtobufError::UnsupportedKind { .. })
        ));
        assert_eq!(decode(b"{}"), Err(ProtobufError::MissingMagic));
        assert_eq!(decode(&NAMESPACE[..20]), Err(ProtobufError::Truncated));
    }

    #[test]
    fn base64_pads_like_the_standard_encoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }
}
