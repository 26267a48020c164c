//! Defaulting of custom resources from their CRD's `openAPIV3Schema`.
//!
//! Owns applying `default` values: on every write of a custom resource, a field absent
//! from an object whose schema gives it a `default` is set to it, top-down, so a defaulted
//! object also gets its own fields' defaults (as structural-schema defaulting does). That
//! is all the double does with schemas: it does not validate custom resources against
//! them, nor prune unknown fields; `metadata` is never defaulted.

use serde_json::Value;

/// Sets the schema defaults missing from `obj` (a whole custom resource).
pub(crate) fn apply_defaults(obj: &mut Value, schema: &Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, prop) in properties.iter().filter(|(k, _)| k.as_str() != "metadata") {
        if !map.contains_key(key)
            && let Some(default) = prop.get("default").filter(|d| !d.is_null())
        {
            map.insert(key.clone(), default.clone());
        }
        if let Some(value) = map.get_mut(key) {
            default_value(value, prop);
        }
    }
}

fn default_value(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            if let Some(properties) = properties {
                for (key, prop) in properties {
                    if !map.contains_key(key)
                        && let Some(default) = prop.get("default").filter(|d| !d.is_null())
                    {
                        map.insert(key.clone(), default.clone());
                    }
                    if let Some(v) = map.get_mut(key) {
                        default_value(v, prop);
                    }
                }
            }
            if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (key, v) in map.iter_mut() {
                    if !properties.is_some_and(|p| p.contains_key(key)) {
                        default_value(v, additional);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    default_value(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_fields_get_their_defaults_recursively() {
        let schema = json!({"properties": {
            "metadata": {"type": "object", "properties": {"name": {"default": "never"}}},
            "spec": {"type": "object", "default": {}, "properties": {
                "replicas": {"type": "integer", "default": 3},
                "storage": {"type": "object", "default": {}, "properties": {"size": {"default": "1Gi"}}},
                "listeners": {"type": "array", "items": {"properties": {"tls": {"default": false}}}},
            }},
        }});
        let mut obj =
            json!({"metadata": {}, "spec": {"replicas": 1, "listeners": [{"name": "a"}]}});
        apply_defaults(&mut obj, &schema);
        assert_eq!(obj["spec"]["replicas"], 1, "present values are kept");
        assert_eq!(
            obj["spec"]["storage"]["size"], "1Gi",
            "a defaulted object gets its defaults"
        );
        assert_eq!(obj["spec"]["listeners"][0]["tls"], false);
        assert_eq!(obj["metadata"], json!({}));

        let mut empty = json!({"metadata": {}});
        apply_defaults(&mut empty, &schema);
        assert_eq!(empty["spec"]["replicas"], 3);
    }
}
