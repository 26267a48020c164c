//! The non-apply patch types: JSON merge patch, JSON patch and strategic merge patch.
//!
//! Owns [`PatchType`] (chosen from the request's `Content-Type`) and applying the three
//! body formats to the current object's JSON:
//!
//! - `application/merge-patch+json`: RFC 7386, exactly (the `json-patch` crate).
//! - `application/json-patch+json`: RFC 6902, exactly (the `json-patch` crate); a failed
//!   operation, including a failed `test`, is a 422 `Invalid` as on the real server.
//! - `application/strategic-merge-patch+json`: a JSON merge patch in which lists merge as
//!   [`crate::shape`] says (keyed lists by their first key, `finalizers` as a set, others
//!   replaced), with the directives `$patch: delete|replace` (maps and keyed list items),
//!   `$deleteFromPrimitiveList/<field>` and `$retainKeys`; `$setElementOrder/<field>` is
//!   accepted and ignored. Custom resources refuse it with 415, as the real server does.
//!
//! Server-side apply lives in [`crate::apply`].

use serde_json::{Map, Value};

use crate::shape::{ListType, Shape, item_key};
use crate::status::ApiError;

/// A PATCH body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    /// The patch type a `Content-Type` names (parameters such as `charset` ignored).
    pub(crate) fn from_content_type(content_type: &str) -> Result<PatchType, ApiError> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchType::Apply),
            _ => Err(ApiError::UnsupportedMediaType {
                content_type: content_type.to_owned(),
                accepted: "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
            }),
        }
    }
}

/// Parses a JSON body, as a 400 when it is not JSON.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::MalformedBody {
        format: "JSON",
        detail: e.to_string(),
    })
}

/// `current` with the RFC 7386 merge patch applied.
pub(crate) fn merge_patch(current: &Value, patch: &Value) -> Value {
    let mut out = current.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// `current` with the RFC 6902 patch applied, as the real server's library
/// (evanphx/json-patch) applies it: a `test` for `null` passes on a path that does not
/// exist. kube-runtime's finalizer helper relies on that to add the first finalizer
/// (`test /metadata/finalizers null`, then `add`).
pub(crate) fn json_patch(current: &Value, patch: Value) -> Result<Value, ApiError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch).map_err(|e| ApiError::MalformedBody {
            format: "JSON patch",
            detail: e.to_string(),
        })?;
    let mut out = current.clone();
    for op in &ops.0 {
        if let json_patch::PatchOperation::Test(test) = op
            && test.value.is_null()
            && out.pointer(test.path.as_str()).is_none()
        {
            continue;
        }
        json_patch::patch(&mut out, std::slice::from_ref(op))
            .map_err(|source| ApiError::JsonPatchFailed { source })?;
    }
    Ok(out)
}

/// `current` with the strategic merge patch applied.
pub(crate) fn strategic_merge_patch(current: &Value, patch: &Value, shape: Shape<'_>) -> Value {
    let mut out = current.clone();
    match (&mut out, patch) {
        (Value::Object(target), Value::Object(p)) => merge_object(target, p, shape),
        (out, p) => *out = strip_directives(p),
    }
    out
}

fn merge_object(target: &mut Map<String, Value>, patch: &Map<String, Value>, shape: Shape<'_>) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        if let Value::Object(replacement) = strip_directives(&Value::Object(patch.clone())) {
            *target = replacement;
        }
        return;
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(remove)) =
                (target.get_mut(field), value.as_array())
            {
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(p) if p.get("$patch").and_then(Value::as_str) == Some("delete") => {
                target.remove(key);
            }
            Value::Object(p) => {
                let field_shape = shape.field(key);
                let entry = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                match entry {
                    Value::Object(t) if !field_shape.atomic_map() => {
                        merge_object(t, p, field_shape)
                    }
                    other => *other = strip_directives(value),
                }
            }
            Value::Array(items) => {
                let merged = merge_list(target.get(key), items, key, shape.field(key));
                target.insert(key.clone(), merged);
            }
            scalar => {
                target.insert(key.clone(), scalar.clone());
            }
        }
    }
    if let Some(Value::Array(retain)) = patch.get("$retainKeys") {
        target.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
}

fn merge_list(current: Option<&Value>, patch: &[Value], name: &str, shape: Shape<'_>) -> Value {
    let is_replace = |i: &Value| i.get("$patch").and_then(Value::as_str) == Some("replace");
    if patch.iter().any(is_replace) {
        return Value::Array(
            patch
                .iter()
                .filter(|i| !is_replace(i))
                .map(strip_directives)
                .collect(),
        );
    }
    let current: Vec<Value> = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let all: Vec<&Value> = current.iter().chain(patch).collect();
    match shape.list_type(name, &all) {
        ListType::Atomic => Value::Array(patch.iter().map(strip_directives).collect()),
        ListType::Set => {
            let mut out = current;
            for item in patch {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Value::Array(out)
        }
        ListType::Map(keys) => {
            // Strategic merge identifies items by one merge key (patchMergeKey).
            let keys = &keys[..1];
            let mut out = current;
            for item in patch {
                let key = item_key(item, keys);
                let position = out.iter().position(|c| item_key(c, keys) == key);
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (position, item) {
                    (Some(i), _) if delete => {
                        out.remove(i);
                    }
                    (None, _) if delete => {}
                    (Some(i), Value::Object(p)) => {
                        if let Value::Object(t) = &mut out[i] {
                            merge_object(t, p, shape.items());
                        }
                    }
                    _ => out.push(strip_directives(item)),
                }
            }
            Value::Array(out)
        }
    }
}

/// `value` without strategic-merge directives (`$patch`, `$retainKeys`, ...).
fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types_pick_the_patch_type() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8").unwrap(),
            PatchType::Merge
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml").unwrap(),
            PatchType::Apply
        );
        assert_eq!(
            PatchType::from_content_type("text/plain")
                .unwrap_err()
                .code(),
            415
        );
    }

    #[test]
    fn merge_patch_null_removes_a_field() {
        let out = merge_patch(
            &json!({"data": {"a": "1", "b": "2"}}),
            &json!({"data": {"a": null, "c": "3"}}),
        );
        assert_eq!(out, json!({"data": {"b": "2", "c": "3"}}));
    }

    #[test]
    fn failed_json_patch_test_is_invalid() {
        let err = json_patch(
            &json!({"a": 1}),
            json!([{"op": "test", "path": "/a", "value": 2}]),
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
        let ok = json_patch(
            &json!({"a": 1}),
            json!([{"op": "replace", "path": "/a", "value": 2}]),
        )
        .unwrap();
        assert_eq!(ok, json!({"a": 2}));
    }

    #[test]
    fn a_test_for_null_passes_on_a_missing_path_as_the_real_server_answers() {
        let out = json_patch(
            &json!({"metadata": {"name": "x"}}),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
            ]),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["f"]));
        let present = json_patch(
            &json!({"metadata": {"finalizers": ["g"]}}),
            json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]),
        );
        assert!(present.is_err(), "null does not match an existing list");
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let current = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "image": "2"}, {"name": "c", "image": "3"}]}});
        let out = strategic_merge_patch(&current, &patch, Shape::root(None));
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "1"}, {"name": "b", "image": "2"}, {"name": "c", "image": "3"}])
        );
    }

    #[test]
    fn strategic_merge_directives_delete_items_and_primitives() {
        let current = json!({"metadata": {"finalizers": ["x", "y"]},
                             "spec": {"containers": [{"name": "a"}, {"name": "b"}], "args": ["1"]}});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]},
                           "spec": {"containers": [{"name": "a", "$patch": "delete"}],
                                    "$setElementOrder/containers": [{"name": "b"}], "args": ["2"]}});
        let out = strategic_merge_patch(&current, &patch, Shape::root(None));
        assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
        assert_eq!(
            out["spec"]["args"],
            json!(["2"]),
            "other lists are replaced"
        );
        assert!(out["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn strategic_merge_unions_finalizers() {
        let out = strategic_merge_patch(
            &json!({"metadata": {"finalizers": ["x"]}}),
            &json!({"metadata": {"finalizers": ["y"]}}),
            Shape::root(None),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
    }
}
