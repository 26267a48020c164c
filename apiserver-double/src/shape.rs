//! How lists and maps inside an object merge: the part of the OpenAPI schema that
//! strategic merge patch and server-side apply need.
//!
//! Owns [`Shape`], a cursor into either a CRD's `openAPIV3Schema` (where
//! `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and `x-kubernetes-map-type`
//! decide, and lists are atomic unless declared otherwise, as on a real server) or, for
//! built-in types, whose schemas the double does not carry, a fixed table of the list
//! fields that are keyed in Kubernetes (`containers` by `name`, `volumeMounts` by
//! `mountPath`, `conditions` by `type`, `finalizers` as a set, ...). Every other built-in
//! list is atomic. The table is an approximation of the real schemas, not a copy.

use serde_json::{Map, Value};

/// How the items of a list are identified when merging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListType {
    /// The list is replaced as a whole.
    Atomic,
    /// Scalar items, merged as a set (`finalizers`).
    Set,
    /// Object items identified by these key fields (`containers` by `name`).
    Map(Vec<String>),
}

#[derive(Debug, Clone, Copy)]
enum Mode<'a> {
    /// A built-in type (or `metadata` of any type): the built-in table decides.
    Builtin,
    /// Inside a CRD schema; `None` where the schema says nothing.
    Schema(Option<&'a Value>),
}

/// A position inside an object's type, used to pick list and map merge semantics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape<'a> {
    mode: Mode<'a>,
    root: bool,
}

impl<'a> Shape<'a> {
    /// The root of an object: of a custom resource when `schema` is given, else built-in.
    pub(crate) fn root(schema: Option<&'a Value>) -> Shape<'a> {
        Shape {
            mode: match schema {
                Some(s) => Mode::Schema(Some(s)),
                None => Mode::Builtin,
            },
            root: true,
        }
    }

    /// The root of a custom resource: its schema (if it has one) decides, and lists the
    /// schema says nothing about are atomic.
    pub(crate) fn custom(schema: Option<&'a Value>) -> Shape<'a> {
        Shape {
            mode: Mode::Schema(schema),
            root: true,
        }
    }

    /// The shape of field `name` of an object at this shape.
    pub(crate) fn field(&self, name: &str) -> Shape<'a> {
        let mode = match self.mode {
            _ if self.root && name == "metadata" => Mode::Builtin,
            Mode::Builtin => Mode::Builtin,
            Mode::Schema(None) => Mode::Schema(None),
            Mode::Schema(Some(s)) => Mode::Schema(
                s.get("properties")
                    .and_then(|p| p.get(name))
                    .or_else(|| s.get("additionalProperties").filter(|a| a.is_object())),
            ),
        };
        Shape { mode, root: false }
    }

    /// The shape of the items of a list at this shape.
    pub(crate) fn items(&self) -> Shape<'a> {
        let mode = match self.mode {
            Mode::Schema(Some(s)) => Mode::Schema(s.get("items")),
            other => other,
        };
        Shape { mode, root: false }
    }

    /// Whether an object at this shape is replaced as a whole (`x-kubernetes-map-type: atomic`).
    pub(crate) fn atomic_map(&self) -> bool {
        matches!(self.mode, Mode::Schema(Some(s)) if s["x-kubernetes-map-type"] == "atomic")
    }

    /// How the list `field` at this shape (the shape of the list itself) merges.
    pub(crate) fn list_type(&self, field: &str, items: &[&Value]) -> ListType {
        let list_type = match self.mode {
            Mode::Builtin => builtin_list_type(field, items),
            Mode::Schema(None) => ListType::Atomic,
            Mode::Schema(Some(s)) => match s["x-kubernetes-list-type"].as_str() {
                Some("set") => ListType::Set,
                Some("map") => ListType::Map(
                    s["x-kubernetes-list-map-keys"]
                        .as_array()
                        .map(|keys| {
                            keys.iter()
                                .filter_map(|k| k.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                _ => ListType::Atomic,
            },
        };
        match list_type {
            // Keyed merging needs object items that carry the first key.
            ListType::Map(keys)
                if keys.is_empty() || !items.iter().all(|i| i.get(&keys[0]).is_some()) =>
            {
                ListType::Atomic
            }
            ListType::Set if items.iter().any(|i| i.is_object() || i.is_array()) => {
                ListType::Atomic
            }
            other => other,
        }
    }
}

fn builtin_list_type(field: &str, items: &[&Value]) -> ListType {
    let keys: &[&str] = match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => &["name"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "hostAliases" => &["ip"],
        "conditions" => &["type"],
        "ownerReferences" => &["uid"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        "ports" if items.iter().any(|i| i.get("containerPort").is_some()) => {
            &["containerPort", "protocol"]
        }
        "ports" => &["port", "protocol"],
        "finalizers" => return ListType::Set,
        _ => return ListType::Atomic,
    };
    ListType::Map(keys.iter().map(|k| (*k).to_owned()).collect())
}

/// The identity of a keyed list item: its key fields that are present, in key order.
pub(crate) fn item_key(item: &Value, keys: &[String]) -> Value {
    let mut key = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            key.insert(k.clone(), v.clone());
        }
    }
    Value::Object(key)
}

/// Whether `item` has the identity `key` (as made by [`item_key`]).
pub(crate) fn item_has_key(item: &Value, key: &Value, keys: &[String]) -> bool {
    item_key(item, keys) == *key
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_containers_merge_by_name_and_finalizers_as_a_set() {
        let shape = Shape::root(None)
            .field("spec")
            .field("template")
            .field("spec");
        let c = json!({"name": "broker"});
        assert_eq!(
            shape.field("containers").list_type("containers", &[&c]),
            ListType::Map(vec!["name".into()])
        );
        let meta = Shape::root(None).field("metadata");
        let f = json!("weir.dev/cleanup");
        assert_eq!(
            meta.field("finalizers").list_type("finalizers", &[&f]),
            ListType::Set
        );
        assert_eq!(
            shape.field("args").list_type("args", &[&f]),
            ListType::Atomic
        );
    }

    #[test]
    fn crd_lists_follow_the_schema_and_are_atomic_by_default() {
        let schema = json!({"properties": {"spec": {"properties": {
            "listeners": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["name"]},
            "hosts": {"type": "array"},
            "containers": {"type": "array"},
        }}}});
        let spec = Shape::root(Some(&schema)).field("spec");
        let item = json!({"name": "a"});
        assert_eq!(
            spec.field("listeners").list_type("listeners", &[&item]),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(
            spec.field("hosts").list_type("hosts", &[&item]),
            ListType::Atomic
        );
        assert_eq!(
            spec.field("containers").list_type("containers", &[&item]),
            ListType::Atomic,
            "a CRD's own list named like a built-in one is still atomic"
        );
        let f = json!("x");
        let meta = Shape::root(Some(&schema)).field("metadata");
        assert_eq!(
            meta.field("finalizers").list_type("finalizers", &[&f]),
            ListType::Set
        );
    }

    #[test]
    fn keyed_items_without_the_key_fall_back_to_atomic() {
        let shape = Shape::root(None).field("spec");
        let item = json!({"image": "x"});
        assert_eq!(shape.list_type("containers", &[&item]), ListType::Atomic);
    }
}
