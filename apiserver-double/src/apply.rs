//! Server-side apply (`application/apply-patch+yaml`).
//!
//! Owns merging an applied configuration into the live object with field ownership:
//!
//! 1. The applied config's tracked fields ([`crate::fields`]) become the manager's
//!    `Apply` entry in `metadata.managedFields` (one per manager and subresource).
//! 2. A field the config sets to a value other than the live one, and that another entry
//!    owns, is a conflict: 409 `Conflict` listing them, unless `force`, which moves the
//!    fields to the applier. Conflicts are only checked on scalar/atomic leaves.
//! 3. The config is merged into the object: maps field by field, lists as
//!    [`crate::shape`] says (keyed lists item by item, sets as sets, others replaced).
//! 4. Fields the manager applied before and omits now are removed from the object unless
//!    another entry still owns them (or something below them); maps and lists emptied by
//!    that are removed too unless owned.
//!
//! Approximations: no schema-driven validation or type coercion of the applied config,
//! built-in list semantics come from a table, not the OpenAPI schema; an explicit `null`
//! in the config removes the field and is not tracked.

use serde_json::{Map, Value};

use crate::fields::{
    FieldSet, Part, Path, PathElement, display, is_empty_container, remove_at, value_at,
};
use crate::managed::{self, ManagedEntry, Operation};
use crate::shape::{ListType, Shape, item_key};
use crate::status::FieldConflict;

/// The parameters of one apply request.
#[derive(Debug, Clone)]
pub(crate) struct Apply<'a> {
    pub(crate) manager: &'a str,
    pub(crate) force: bool,
    pub(crate) api_version: &'a str,
    pub(crate) part: Part,
    pub(crate) now: &'a str,
    pub(crate) shape: Shape<'a>,
}

impl Apply<'_> {
    fn subresource(&self) -> Option<&'static str> {
        (self.part == Part::Status).then_some("status")
    }

    /// The object after applying `config` to `current` (None: the object does not exist),
    /// with `metadata.managedFields` updated, or the conflicts that stop it.
    pub(crate) fn run(
        &self,
        current: Option<&Value>,
        config: &Value,
    ) -> Result<Value, Vec<FieldConflict>> {
        let base = current
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        let mut entries = managed::read(&base);
        let subresource = self.subresource();
        let new_set = FieldSet::of(config, self.shape, self.part);
        let mine = entries
            .iter()
            .position(|e| e.is(self.manager, Operation::Apply, subresource));
        let old_set = mine.map(|i| entries[i].fields.clone()).unwrap_or_default();

        let mut conflicts = Vec::new();
        let mut taken: Vec<(usize, Path)> = Vec::new();
        for path in new_set.iter() {
            if !matches!(path.last(), Some(PathElement::Field(_)))
                || value_at(config, path) == value_at(&base, path)
            {
                continue;
            }
            for (i, entry) in entries.iter().enumerate() {
                if Some(i) != mine && entry.fields.contains(path) {
                    conflicts.push(FieldConflict {
                        manager: entry.manager.clone(),
                        field: display(path),
                    });
                    taken.push((i, path.clone()));
                }
            }
        }
        if !conflicts.is_empty() && !self.force {
            return Err(conflicts);
        }
        for (i, path) in taken {
            entries[i].fields.remove(&path);
        }

        let mut merged = base;
        merge(&mut merged, config, "", self.shape);

        let owned_by_others = |entries: &[ManagedEntry], path: &[PathElement]| {
            entries
                .iter()
                .enumerate()
                .any(|(i, e)| Some(i) != mine && e.fields.owns_at_or_below(path))
        };
        for path in old_set.iter() {
            if new_set.owns_at_or_below(path) || owned_by_others(&entries, path) {
                continue;
            }
            if remove_at(&mut merged, path) {
                let mut parent = &path[..path.len() - 1];
                while !parent.is_empty()
                    && parent != [PathElement::Field("metadata".into())]
                    && is_empty_container(&merged, parent)
                    && !new_set.owns_at_or_below(parent)
                    && !owned_by_others(&entries, parent)
                {
                    remove_at(&mut merged, parent);
                    parent = &parent[..parent.len() - 1];
                }
            }
        }

        let entry = ManagedEntry {
            manager: self.manager.to_owned(),
            operation: Operation::Apply,
            api_version: self.api_version.to_owned(),
            time: self.now.to_owned(),
            subresource: subresource.map(str::to_owned),
            fields: new_set,
        };
        match mine {
            Some(i) => entries[i] = entry,
            None => entries.push(entry),
        }
        entries.retain(|e| !e.fields.is_empty());
        managed::write(&mut merged, &entries);
        Ok(merged)
    }
}

/// Merges the applied `config` into `target`.
fn merge(target: &mut Value, config: &Value, name: &str, shape: Shape<'_>) {
    match (target, config) {
        (Value::Object(t), Value::Object(c)) if !shape.atomic_map() => {
            for (key, value) in c {
                if key == "managedFields" && name == "metadata" {
                    continue;
                }
                if value.is_null() {
                    t.remove(key);
                    continue;
                }
                let field_shape = shape.field(key);
                match t.get_mut(key) {
                    Some(existing) => merge(existing, value, key, field_shape),
                    None => {
                        let mut fresh = empty_like(value);
                        merge(&mut fresh, value, key, field_shape);
                        t.insert(key.clone(), fresh);
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(c)) => {
            let all: Vec<&Value> = t.iter().chain(c).collect();
            match shape.list_type(name, &all) {
                ListType::Atomic => *t = c.clone(),
                ListType::Set => {
                    for item in c {
                        if !t.contains(item) {
                            t.push(item.clone());
                        }
                    }
                }
                ListType::Map(keys) => {
                    for item in c {
                        let key = item_key(item, &keys);
                        match t
                            .iter_mut()
                            .find(|existing| item_key(existing, &keys) == key)
                        {
                            Some(existing) => merge(existing, item, "", shape.items()),
                            None => t.push(item.clone()),
                        }
                    }
                }
            }
        }
        (target, config) => *target = without_nulls(config),
    }
}

fn empty_like(value: &Value) -> Value {
    match value {
        Value::Object(_) => Value::Object(Map::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        _ => Value::Null,
    }
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply<'a>(manager: &'a str, force: bool) -> Apply<'a> {
        Apply {
            manager,
            force,
            api_version: "v1",
            part: Part::Main { skip_status: false },
            now: "2025-01-01T00:00:00Z",
            shape: Shape::root(None),
        }
    }

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": data})
    }

    #[test]
    fn fields_a_manager_stops_applying_are_removed() {
        let first = apply("mgr", false)
            .run(None, &cm(json!({"a": "1", "b": "2"})))
            .unwrap();
        assert_eq!(first["data"], json!({"a": "1", "b": "2"}));
        let second = apply("mgr", false)
            .run(Some(&first), &cm(json!({"a": "1"})))
            .unwrap();
        assert_eq!(second["data"], json!({"a": "1"}));
        let third = apply("mgr", false)
            .run(
                Some(&second),
                &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
            )
            .unwrap();
        assert!(
            third.get("data").is_none(),
            "the emptied map goes too: {third}"
        );
    }

    #[test]
    fn fields_another_manager_applied_stay() {
        let a = apply("a", false)
            .run(None, &cm(json!({"shared": "1", "a": "1"})))
            .unwrap();
        let b = apply("b", false)
            .run(Some(&a), &cm(json!({"shared": "1", "b": "1"})))
            .unwrap();
        let a2 = apply("a", false).run(Some(&b), &cm(json!({}))).unwrap();
        assert_eq!(a2["data"], json!({"shared": "1", "b": "1"}));
    }

    #[test]
    fn a_different_value_for_anothers_field_conflicts_unless_forced() {
        let a = apply("a", false).run(None, &cm(json!({"k": "1"}))).unwrap();
        let conflicts = apply("b", false)
            .run(Some(&a), &cm(json!({"k": "2"})))
            .unwrap_err();
        assert_eq!(
            conflicts,
            vec![FieldConflict {
                manager: "a".into(),
                field: ".data.k".into()
            }]
        );
        let forced = apply("b", true)
            .run(Some(&a), &cm(json!({"k": "2"})))
            .unwrap();
        assert_eq!(forced["data"]["k"], "2");
        // The field moved: a applying without it no longer removes it.
        let a2 = apply("a", false)
            .run(Some(&forced), &cm(json!({"other": "x"})))
            .unwrap();
        assert_eq!(a2["data"], json!({"k": "2", "other": "x"}));
    }

    #[test]
    fn keyed_list_items_merge_and_omitted_items_are_removed() {
        let sts = |containers: Value| {
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"},
                   "spec": {"template": {"spec": {"containers": containers}}}})
        };
        let first = apply("op", false)
            .run(
                None,
                &sts(json!([{"name": "a", "image": "1"}, {"name": "b", "image": "1"}])),
            )
            .unwrap();
        let mut edited = first.clone();
        edited["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        let second = apply("op", false)
            .run(Some(&edited), &sts(json!([{"name": "a", "image": "2"}])))
            .unwrap();
        assert_eq!(
            second["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "2", "imagePullPolicy": "Always"}])
        );
    }
}
