//! Field paths and field sets: which fields of an object a manager owns.
//!
//! Owns [`FieldSet`] and its wire format, `FieldsV1` as in `metadata.managedFields`:
//! a tree whose keys are `f:<field>` (a map field), `k:<json>` (a keyed list item,
//! e.g. `k:{"name":"broker"}`) and `v:<json>` (a set item), `{}` marking an owned leaf and
//! `".": {}` an owned node that also has owned children. The set holds the owned paths;
//! the intermediate maps leading to them are not owned themselves.
//!
//! Tracked fields are those server-side apply tracks: everything but `apiVersion`, `kind`
//! and server-set metadata (only `labels`, `annotations`, `finalizers` and
//! `ownerReferences` of `metadata` are tracked); on resources with a status subresource,
//! writes to the main resource track no `status` fields and writes to `/status` track only
//! `status` fields.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::shape::{ListType, Shape, item_has_key, item_key};

/// One step of a path into an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PathElement {
    /// A field of a map.
    Field(String),
    /// The item of a keyed list with this identity (JSON text of the key fields).
    Key(String),
    /// The item of a set list with this value (JSON text).
    Value(String),
}

pub(crate) type Path = Vec<PathElement>;

/// Which part of an object a write may change, and so which fields are tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The whole object; `status` excluded when the resource has a status subresource.
    Main { skip_status: bool },
    /// Only `status` (a write to the `/status` subresource).
    Status,
}

impl Part {
    fn tracks_top_level(&self, field: &str) -> bool {
        match (self, field) {
            (_, "apiVersion" | "kind") => false,
            (Part::Status, f) => f == "status",
            (Part::Main { skip_status }, "status") => !skip_status,
            (Part::Main { .. }, _) => true,
        }
    }
}

const TRACKED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// A set of owned field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    paths: BTreeSet<Path>,
}

impl FieldSet {
    /// The fields `value` sets, within `part`.
    pub(crate) fn of(value: &Value, shape: Shape<'_>, part: Part) -> FieldSet {
        let mut set = FieldSet::default();
        let Some(obj) = value.as_object() else {
            return set;
        };
        for (k, v) in obj {
            if !part.tracks_top_level(k) {
                continue;
            }
            let path = vec![PathElement::Field(k.clone())];
            if k == "metadata" {
                if let Some(meta) = v.as_object() {
                    for (mk, mv) in meta
                        .iter()
                        .filter(|(mk, _)| TRACKED_METADATA.contains(&mk.as_str()))
                    {
                        let mut p = path.clone();
                        p.push(PathElement::Field(mk.clone()));
                        set.collect(mv, mk, shape.field("metadata").field(mk), p);
                    }
                }
                continue;
            }
            set.collect(v, k, shape.field(k), path);
        }
        set
    }

    fn collect(&mut self, value: &Value, name: &str, shape: Shape<'_>, path: Path) {
        match value {
            Value::Object(map) if !map.is_empty() && !shape.atomic_map() => {
                for (k, v) in map {
                    let mut p = path.clone();
                    p.push(PathElement::Field(k.clone()));
                    self.collect(v, k, shape.field(k), p);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                let refs: Vec<&Value> = items.iter().collect();
                match shape.list_type(name, &refs) {
                    ListType::Atomic => {
                        self.paths.insert(path);
                    }
                    ListType::Set => {
                        for item in items {
                            let mut p = path.clone();
                            p.push(PathElement::Value(item.to_string()));
                            self.paths.insert(p);
                        }
                    }
                    ListType::Map(keys) => {
                        for item in items {
                            let mut p = path.clone();
                            p.push(PathElement::Key(item_key(item, &keys).to_string()));
                            self.paths.insert(p.clone());
                            if let Some(fields) = item.as_object() {
                                for (k, v) in fields {
                                    let mut fp = p.clone();
                                    fp.push(PathElement::Field(k.clone()));
                                    self.collect(v, k, shape.items().field(k), fp);
                                }
                            }
                        }
                    }
                }
            }
            _ => {
                self.paths.insert(path);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub(crate) fn contains(&self, path: &[PathElement]) -> bool {
        self.paths.contains(path)
    }

    /// Whether `path` or any path below it is in the set.
    pub(crate) fn owns_at_or_below(&self, path: &[PathElement]) -> bool {
        self.paths
            .range(path.to_vec()..)
            .next()
            .is_some_and(|p| p.starts_with(path))
    }

    pub(crate) fn insert(&mut self, path: Path) {
        self.paths.insert(path);
    }

    pub(crate) fn remove(&mut self, path: &[PathElement]) {
        self.paths.remove(path);
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Path> {
        self.paths.iter()
    }

    /// The `FieldsV1` JSON of this set.
    pub(crate) fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            owned: bool,
            children: BTreeMap<String, Node>,
        }
        fn render(node: &Node) -> Value {
            let mut map = Map::new();
            if node.owned && !node.children.is_empty() {
                map.insert(".".into(), Value::Object(Map::new()));
            }
            for (k, child) in &node.children {
                map.insert(k.clone(), render(child));
            }
            Value::Object(map)
        }
        let mut root = Node::default();
        for path in &self.paths {
            let mut node = &mut root;
            for element in path {
                node = node.children.entry(element_key(element)).or_default();
            }
            node.owned = true;
        }
        render(&root)
    }

    /// The set a `FieldsV1` JSON describes; unknown key prefixes (`i:`) are skipped.
    pub(crate) fn from_fields_v1(fields: &Value) -> FieldSet {
        fn walk(v: &Value, path: &mut Path, set: &mut FieldSet) {
            let Some(map) = v.as_object() else {
                return;
            };
            if map.is_empty() && !path.is_empty() {
                set.paths.insert(path.clone());
            }
            for (k, child) in map {
                if k == "." {
                    set.paths.insert(path.clone());
                    continue;
                }
                let element = match k.split_at_checked(2) {
                    Some(("f:", rest)) => PathElement::Field(rest.to_owned()),
                    Some(("k:", rest)) => PathElement::Key(canonical_json(rest)),
                    Some(("v:", rest)) => PathElement::Value(canonical_json(rest)),
                    _ => continue,
                };
                path.push(element);
                walk(child, path, set);
                path.pop();
            }
        }
        let mut set = FieldSet::default();
        walk(fields, &mut Vec::new(), &mut set);
        set
    }
}

fn element_key(element: &PathElement) -> String {
    match element {
        PathElement::Field(f) => format!("f:{f}"),
        PathElement::Key(k) => format!("k:{k}"),
        PathElement::Value(v) => format!("v:{v}"),
    }
}

/// JSON text re-serialised, so keys written by another encoder compare equal.
fn canonical_json(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| text.to_owned())
}

/// The list item a `Key` or `Value` element names, with its index.
fn find_item<'a>(items: &'a [Value], element: &PathElement) -> Option<(usize, &'a Value)> {
    match element {
        PathElement::Key(key) => {
            let key: Value = serde_json::from_str(key).ok()?;
            let keys: Vec<String> = key.as_object()?.keys().cloned().collect();
            items
                .iter()
                .enumerate()
                .find(|(_, item)| item_has_key(item, &key, &keys))
        }
        PathElement::Value(v) => {
            let v: Value = serde_json::from_str(v).ok()?;
            items.iter().enumerate().find(|(_, item)| **item == v)
        }
        PathElement::Field(_) => None,
    }
}

/// The value at `path` in `obj`, if there is one.
pub(crate) fn value_at<'a>(obj: &'a Value, path: &[PathElement]) -> Option<&'a Value> {
    let mut current = obj;
    for element in path {
        current = match (element, current) {
            (PathElement::Field(f), Value::Object(map)) => map.get(f)?,
            (_, Value::Array(items)) => find_item(items, element)?.1,
            _ => return None,
        };
    }
    Some(current)
}

/// The container (map or list) holding `path`'s parent, mutably.
fn value_at_mut<'a>(obj: &'a mut Value, path: &[PathElement]) -> Option<&'a mut Value> {
    let mut current = obj;
    for element in path {
        current = match (element, current) {
            (PathElement::Field(f), Value::Object(map)) => map.get_mut(f)?,
            (_, Value::Array(items)) => {
                let (i, _) = find_item(items, element)?;
                &mut items[i]
            }
            _ => return None,
        };
    }
    Some(current)
}

/// Removes the value at `path`; whether there was one.
pub(crate) fn remove_at(obj: &mut Value, path: &[PathElement]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    match (last, value_at_mut(obj, parent)) {
        (PathElement::Field(f), Some(Value::Object(map))) => map.remove(f).is_some(),
        (element, Some(Value::Array(items))) => match find_item(items, element) {
            Some((i, _)) => {
                items.remove(i);
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Whether the map or list at `path` exists and is empty.
pub(crate) fn is_empty_container(obj: &Value, path: &[PathElement]) -> bool {
    match value_at(obj, path) {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// A path as the real server prints it in conflicts: `.spec.replicas`,
/// `.spec.containers[name="broker"].image`.
pub(crate) fn display(path: &[PathElement]) -> String {
    let mut out = String::new();
    for element in path {
        match element {
            PathElement::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            PathElement::Key(k) => {
                let key: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                let parts: Vec<String> = key
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            PathElement::Value(v) => out.push_str(&format!("[={v}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(s: &str) -> PathElement {
        PathElement::Field(s.into())
    }

    #[test]
    fn field_set_of_a_deployment_like_object_tracks_leaves_items_and_metadata() {
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"app": "weir"}, "finalizers": ["a/b"]},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"replicas": 1},
        });
        let set = FieldSet::of(&obj, Shape::root(None), Part::Main { skip_status: true });
        let containers = vec![f("spec"), f("template"), f("spec"), f("containers")];
        let mut item = containers.clone();
        item.push(PathElement::Key(r#"{"name":"c"}"#.into()));
        let mut image = item.clone();
        image.push(f("image"));
        assert!(set.contains(&[f("spec"), f("replicas")]));
        assert!(set.contains(&item));
        assert!(set.contains(&image));
        assert!(set.contains(&[f("metadata"), f("labels"), f("app")]));
        assert!(set.contains(&[
            f("metadata"),
            f("finalizers"),
            PathElement::Value("\"a/b\"".into())
        ]));
        assert!(
            !set.contains(&[f("metadata"), f("name")]),
            "the name is not tracked"
        );
        assert!(
            !set.owns_at_or_below(&[f("status")]),
            "status belongs to the subresource"
        );
        assert!(set.owns_at_or_below(&containers));
        assert_eq!(value_at(&obj, &image), Some(&json!("i")));
    }

    #[test]
    fn fields_v1_round_trips() {
        let obj = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"ports": [{"port": 80, "name": "http"}], "x": {}}});
        let set = FieldSet::of(&obj, Shape::root(None), Part::Main { skip_status: false });
        let v1 = set.to_fields_v1();
        assert_eq!(v1["f:metadata"]["f:labels"]["f:a"], json!({}));
        assert_eq!(v1["f:spec"]["f:ports"][r#"k:{"port":80}"#]["."], json!({}));
        assert_eq!(v1["f:spec"]["f:x"], json!({}));
        assert_eq!(FieldSet::from_fields_v1(&v1), set);
    }

    #[test]
    fn remove_at_removes_map_fields_and_list_items() {
        let mut obj = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "image": "i"}]}, "m": {"finalizers": ["x", "y"]}});
        let b = vec![
            f("spec"),
            f("containers"),
            PathElement::Key(r#"{"name":"b"}"#.into()),
        ];
        let mut image = b.clone();
        image.push(f("image"));
        assert!(remove_at(&mut obj, &image));
        assert_eq!(obj["spec"]["containers"][1], json!({"name": "b"}));
        assert!(remove_at(&mut obj, &b));
        assert_eq!(obj["spec"]["containers"], json!([{"name": "a"}]));
        assert!(remove_at(
            &mut obj,
            &[f("m"), f("finalizers"), PathElement::Value("\"x\"".into())]
        ));
        assert_eq!(obj["m"]["finalizers"], json!(["y"]));
        assert!(!remove_at(&mut obj, &[f("nope"), f("x")]));
    }

    #[test]
    fn display_matches_the_servers_conflict_format() {
        let p = vec![
            f("spec"),
            f("containers"),
            PathElement::Key(r#"{"name":"c"}"#.into()),
            f("image"),
        ];
        assert_eq!(display(&p), r#".spec.containers[name="c"].image"#);
    }
}
