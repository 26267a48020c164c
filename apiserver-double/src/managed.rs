//! `metadata.managedFields`: who owns which fields of an object.
//!
//! Owns [`ManagedEntry`] (manager, operation `Apply` or `Update`, apiVersion, time,
//! subresource, field set) and the bookkeeping of non-apply writes: a create, update or
//! patch makes its manager own every tracked field it added or changed and takes those
//! fields from every other entry, as the real server does; fields it removed leave every
//! entry. Entries left with no fields are dropped. A non-empty `managedFields` list in a
//! create, update or patch body replaces the stored one before the write is accounted
//! (`[{}]` clears it), as on the real server; an empty or missing list keeps it.

use serde_json::{Value, json};

use crate::fields::{FieldSet, Part, PathElement, value_at};
use crate::shape::Shape;

/// `Apply` for server-side apply, `Update` for every other write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ManagedEntry {
    pub(crate) manager: String,
    pub(crate) operation: Operation,
    pub(crate) api_version: String,
    pub(crate) time: String,
    /// `Some("status")` for writes to the status subresource.
    pub(crate) subresource: Option<String>,
    pub(crate) fields: FieldSet,
}

impl ManagedEntry {
    /// Whether this entry is the one a write by `manager` with `operation` on
    /// `subresource` updates.
    pub(crate) fn is(
        &self,
        manager: &str,
        operation: Operation,
        subresource: Option<&str>,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }
}

/// The entries of `obj.metadata.managedFields`; malformed entries are skipped.
pub(crate) fn read(obj: &Value) -> Vec<ManagedEntry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(ManagedEntry {
                manager: e["manager"].as_str()?.to_owned(),
                operation: match e["operation"].as_str()? {
                    "Apply" => Operation::Apply,
                    _ => Operation::Update,
                },
                api_version: e["apiVersion"].as_str().unwrap_or_default().to_owned(),
                time: e["time"].as_str().unwrap_or_default().to_owned(),
                subresource: e["subresource"].as_str().map(str::to_owned),
                fields: FieldSet::from_fields_v1(&e["fieldsV1"]),
            })
        })
        .collect()
}

/// Replaces `obj.metadata.managedFields` with `entries` (removed when there are none).
pub(crate) fn write(obj: &mut Value, entries: &[ManagedEntry]) {
    let meta = crate::meta::metadata_mut(obj);
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut entry = json!({
                "manager": e.manager,
                "operation": e.operation.as_str(),
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.fields.to_fields_v1(),
            });
            if let Some(sub) = &e.subresource {
                entry["subresource"] = json!(sub);
            }
            entry
        })
        .collect();
    if rendered.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(rendered));
    }
}

/// Who made a non-apply write, and where.
#[derive(Debug, Clone)]
pub(crate) struct Writer<'a> {
    pub(crate) manager: &'a str,
    pub(crate) api_version: &'a str,
    pub(crate) part: Part,
    pub(crate) now: &'a str,
}

/// The entries after a non-apply write changed `old` (None: a create) into `new`.
pub(crate) fn after_update(
    mut entries: Vec<ManagedEntry>,
    old: Option<&Value>,
    new: &Value,
    shape: Shape<'_>,
    writer: &Writer<'_>,
) -> Vec<ManagedEntry> {
    let new_fields = FieldSet::of(new, shape, writer.part);
    let old_fields = old
        .map(|o| FieldSet::of(o, shape, writer.part))
        .unwrap_or_default();
    let changed: Vec<&Vec<PathElement>> = new_fields
        .iter()
        .filter(|path| match old {
            None => true,
            // A keyed item's own node changes only when the item is new; changes inside it
            // are accounted to its fields.
            Some(old) if is_item(path) => value_at(old, path).is_none(),
            Some(old) => value_at(old, path) != value_at(new, path),
        })
        .collect();
    let removed: Vec<&Vec<PathElement>> = old_fields
        .iter()
        .filter(|path| value_at(new, path).is_none())
        .collect();
    if changed.is_empty() && removed.is_empty() {
        return entries;
    }
    for entry in &mut entries {
        for path in changed.iter().chain(removed.iter()) {
            entry.fields.remove(path);
        }
    }
    let subresource = (writer.part == Part::Status).then_some("status");
    let index = match entries
        .iter()
        .position(|e| e.is(writer.manager, Operation::Update, subresource))
    {
        Some(i) => i,
        None => {
            entries.push(ManagedEntry {
                manager: writer.manager.to_owned(),
                operation: Operation::Update,
                api_version: writer.api_version.to_owned(),
                time: writer.now.to_owned(),
                subresource: subresource.map(str::to_owned),
                fields: FieldSet::default(),
            });
            entries.len() - 1
        }
    };
    let entry = &mut entries[index];
    entry.time = writer.now.to_owned();
    entry.api_version = writer.api_version.to_owned();
    for path in changed {
        entry.fields.insert(path.clone());
    }
    entries.retain(|e| !e.fields.is_empty());
    entries
}

fn is_item(path: &[PathElement]) -> bool {
    matches!(path.last(), Some(PathElement::Key(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "v1",
            part: Part::Main { skip_status: false },
            now: "2025-01-01T00:00:00Z",
        }
    }

    fn owns(entries: &[ManagedEntry], manager: &str, path: &[&str]) -> bool {
        let path: Vec<PathElement> = path
            .iter()
            .map(|p| PathElement::Field((*p).into()))
            .collect();
        entries
            .iter()
            .any(|e| e.manager == manager && e.fields.contains(&path))
    }

    #[test]
    fn an_update_takes_changed_fields_from_other_managers() {
        let shape = Shape::root(None);
        let v1 = json!({"data": {"a": "1", "b": "2"}});
        let entries = after_update(Vec::new(), None, &v1, shape, &writer("creator"));
        assert!(owns(&entries, "creator", &["data", "a"]));
        let v2 = json!({"data": {"a": "changed", "b": "2", "c": "3"}});
        let entries = after_update(entries, Some(&v1), &v2, shape, &writer("editor"));
        assert!(owns(&entries, "editor", &["data", "a"]));
        assert!(owns(&entries, "editor", &["data", "c"]));
        assert!(!owns(&entries, "creator", &["data", "a"]));
        assert!(owns(&entries, "creator", &["data", "b"]));
    }

    #[test]
    fn entries_round_trip_through_metadata() {
        let shape = Shape::root(None);
        let mut obj = json!({"metadata": {"name": "x"}, "data": {"a": "1"}});
        let entries = after_update(Vec::new(), None, &obj.clone(), shape, &writer("m"));
        write(&mut obj, &entries);
        assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "m");
        assert_eq!(
            obj["metadata"]["managedFields"][0]["fieldsV1"]["f:data"]["f:a"],
            json!({})
        );
        assert_eq!(read(&obj), entries);
    }
}
