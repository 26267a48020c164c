//! Create, update and patch: the rules every write of an object goes through.
//!
//! Owns turning a request body into the stored object, the same way for POST, PUT, PATCH
//! (all four patch types) and their `/status` variants:
//!
//! - `apiVersion`/`kind` in the body must match the path (400); the namespace comes from
//!   the path (400 on a mismatch) and must exist and not be terminating (404/403); names
//!   must be DNS-1123 subdomains (labels for namespaces and services) (422);
//!   `generateName` gets a five-character suffix.
//! - The server owns `uid`, `creationTimestamp`, `resourceVersion`, `generation`,
//!   `deletionTimestamp` and `deletionGracePeriodSeconds`; bodies cannot change them.
//!   `managedFields` is recomputed on every write, starting from the body's list when a
//!   create, update or patch of the main resource sends a non-empty one (as the real
//!   server allows; kubectl moves ownership that way when it upgrades client-side apply
//!   to server-side apply), else from the stored list.
//! - A non-empty `metadata.resourceVersion` (or `uid`) in an update or patch body is a
//!   precondition (409 `Conflict`). An update (PUT) of a custom resource must carry a
//!   resourceVersion (422); built-in types may be updated unconditionally.
//! - With a status subresource, writes to the main resource keep `.status` (and a create
//!   drops it); writes to `/status` change only `.status`.
//! - `generation` starts at 1 and grows when anything but `metadata` (and `status`, for
//!   resources with the subresource) changes.
//! - An update that changes nothing (apart from managedFields timestamps) is not stored:
//!   no new resourceVersion, no event, as on the real server.
//! - Objects being deleted cannot gain finalizers (422); one whose last finalizer is
//!   removed is deleted ([`crate::gc`]), unless it is a pod still in its grace period.
//! - CustomResourceDefinitions register or update their resource when stored, and get the
//!   `Established`/`NamesAccepted` status the real server gives them.

use serde_json::{Value, json};

use crate::apply::Apply;
use crate::fields::Part;
use crate::gc;
use crate::managed::{self, Writer};
use crate::meta;
use crate::patch::{self, PatchType};
use crate::registry::{self, ResourceKey, ResourceType};
use crate::schema;
use crate::shape::Shape;
use crate::status::ApiError;
use crate::store::{ObjectKey, State};

/// The resource a request addresses: its type, the version in the path, the namespace.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) rt: ResourceType,
    pub(crate) version: String,
    /// From the path; `None` for cluster-scoped resources (and cross-namespace lists).
    pub(crate) namespace: Option<String>,
}

impl Target {
    pub(crate) fn key(&self) -> ResourceKey {
        self.rt.key()
    }

    pub(crate) fn object_key(&self, name: &str) -> ObjectKey {
        (self.namespace.clone().unwrap_or_default(), name.to_owned())
    }

    pub(crate) fn api_version(&self) -> String {
        self.rt.api_version(&self.version)
    }

    pub(crate) fn shape(&self) -> Shape<'_> {
        if self.rt.crd.is_some() {
            Shape::custom(self.rt.schema(&self.version))
        } else {
            Shape::root(None)
        }
    }

    fn part(&self, status: bool) -> Part {
        if status {
            Part::Status
        } else {
            Part::Main {
                skip_status: self.rt.status_subresource,
            }
        }
    }

    pub(crate) fn not_found(&self, name: &str) -> ApiError {
        ApiError::NotFound {
            resource: self.rt.qualified(),
            name: name.to_owned(),
        }
    }

    /// The object as this request's version presents it.
    pub(crate) fn present(&self, mut obj: Value) -> Value {
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), json!(self.api_version()));
            map.insert("kind".into(), json!(self.rt.kind));
        }
        obj
    }

    /// The object as `view` shows it.
    pub(crate) fn present_as(&self, obj: Value, view: View) -> Value {
        match view {
            View::Full => self.present(obj),
            View::Metadata => json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
            }),
        }
    }

    /// `kind` and `apiVersion` of a list of objects shown as `view`.
    pub(crate) fn list_type(&self, view: View) -> (String, String) {
        match view {
            View::Full => (format!("{}List", self.rt.kind), self.api_version()),
            View::Metadata => ("PartialObjectMetadataList".into(), "meta.k8s.io/v1".into()),
        }
    }
}

/// How objects are shown to a client: whole, or only their metadata
/// (`PartialObjectMetadata`, when `Accept` asks for `as=PartialObjectMetadata[List]`, as
/// kube's `get_metadata`, `list_metadata` and `metadata_watcher` do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum View {
    #[default]
    Full,
    Metadata,
}

impl View {
    pub(crate) fn from_accept(accept: &str) -> View {
        if accept.contains("as=PartialObjectMetadata") {
            View::Metadata
        } else {
            View::Full
        }
    }
}

/// Who writes, and whether the write is only tried (`dryRun=All`).
#[derive(Debug, Clone)]
pub(crate) struct WriteOptions {
    /// `fieldManager`, or the User-Agent's product name.
    pub(crate) manager: String,
    pub(crate) dry_run: bool,
}

/// Whether a write is the main resource or its `/status` subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sub {
    Main,
    Status,
}

/// How managedFields of a write are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Managed {
    /// From the change, for the writing manager.
    Update,
    /// Already computed by server-side apply into the new object.
    Apply,
}

/// POST: stores a new object.
pub(crate) fn create(
    state: &mut State,
    t: &Target,
    opts: &WriteOptions,
    body: Value,
) -> Result<Value, ApiError> {
    let now = meta::now_rfc3339();
    let base = managed::read(&body);
    let mut obj = prepare_new(state, t, body, &now)?;
    let api_version = t.api_version();
    let writer = Writer {
        manager: &opts.manager,
        api_version: &api_version,
        part: t.part(false),
        now: &now,
    };
    let entries = managed::after_update(base, None, &obj, t.shape(), &writer);
    managed::write(&mut obj, &entries);
    insert(state, t, obj, opts.dry_run, &now)
}

/// PUT: replaces an existing object (or its status).
pub(crate) fn update(
    state: &mut State,
    t: &Target,
    opts: &WriteOptions,
    name: &str,
    body: Value,
    sub: Sub,
) -> Result<Value, ApiError> {
    let old = state
        .get(&t.key(), &t.object_key(name))
        .cloned()
        .ok_or_else(|| t.not_found(name))?;
    if !body.is_object() {
        return Err(ApiError::MalformedBody {
            format: "JSON object",
            detail: "the body is not an object".into(),
        });
    }
    // Custom resources do not allow unconditional updates (built-in types mostly do).
    if t.rt.crd.is_some() && meta::resource_version(&body).is_empty() {
        return Err(ApiError::Invalid {
            kind: t.rt.kind.clone(),
            name: name.to_owned(),
            field: "metadata.resourceVersion".into(),
            detail: "Invalid value: 0x0: must be specified for an update".into(),
        });
    }
    replace(state, t, opts, &old, body, sub, Managed::Update)
}

/// PATCH of any type; the flag says whether server-side apply created the object.
#[allow(clippy::too_many_arguments)] // one per request parameter
pub(crate) fn patch(
    state: &mut State,
    t: &Target,
    opts: &WriteOptions,
    name: &str,
    patch_type: PatchType,
    body: &[u8],
    sub: Sub,
    force: bool,
) -> Result<(Value, bool), ApiError> {
    let current = state.get(&t.key(), &t.object_key(name)).cloned();
    if patch_type != PatchType::Apply {
        let current = current.ok_or_else(|| t.not_found(name))?;
        let body = patch::parse_json(body)?;
        let patched = match patch_type {
            PatchType::Merge => patch::merge_patch(&current, &body),
            PatchType::Json => patch::json_patch(&current, body)?,
            PatchType::Strategic if t.rt.crd.is_some() => {
                return Err(ApiError::UnsupportedMediaType {
                    content_type: "application/strategic-merge-patch+json".into(),
                    accepted: "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                });
            }
            PatchType::Strategic | PatchType::Apply => {
                patch::strategic_merge_patch(&current, &body, t.shape())
            }
        };
        return Ok((
            replace(state, t, opts, &current, patched, sub, Managed::Update)?,
            false,
        ));
    }

    let config = parse_apply_body(body)?;
    if let Some(body_name) = meta::meta_str(&config, "name").filter(|n| *n != name) {
        return Err(ApiError::NameMismatch {
            in_body: body_name.to_owned(),
            in_url: name.to_owned(),
        });
    }
    let now = meta::now_rfc3339();
    let api_version = t.api_version();
    let apply = Apply {
        manager: &opts.manager,
        force,
        api_version: &api_version,
        part: t.part(sub == Sub::Status),
        now: &now,
        shape: t.shape(),
    };
    let conflict = |conflicts| ApiError::ApplyConflict {
        resource: t.rt.qualified(),
        name: name.to_owned(),
        conflicts,
    };
    match current {
        None if sub == Sub::Status => Err(t.not_found(name)),
        None => {
            let mut merged = apply.run(None, &config).map_err(conflict)?;
            meta::metadata_mut(&mut merged).insert("name".into(), json!(name));
            let obj = prepare_new(state, t, merged, &now)?;
            Ok((insert(state, t, obj, opts.dry_run, &now)?, true))
        }
        Some(current) => {
            let merged = apply.run(Some(&current), &config).map_err(conflict)?;
            Ok((
                replace(state, t, opts, &current, merged, sub, Managed::Apply)?,
                false,
            ))
        }
    }
}

fn parse_apply_body(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_yaml::from_slice(body).map_err(|e| ApiError::MalformedBody {
        format: "YAML or JSON",
        detail: e.to_string(),
    })?;
    if !value.is_object() {
        return Err(ApiError::MalformedBody {
            format: "apply configuration",
            detail: "the body is not an object".into(),
        });
    }
    Ok(value)
}

/// Checks `apiVersion` and `kind` of a body against the path, filling them in if absent.
fn check_type_meta(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    let expected_version = t.api_version();
    let map = obj.as_object_mut().ok_or_else(|| ApiError::MalformedBody {
        format: "JSON object",
        detail: "the body is not an object".into(),
    })?;
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != expected_version => {
            return Err(ApiError::ApiVersionMismatch {
                in_body: v.to_owned(),
                expected: expected_version,
            });
        }
        _ => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k != t.rt.kind => {
            return Err(ApiError::KindMismatch {
                in_body: k.to_owned(),
                expected: t.rt.kind.clone(),
            });
        }
        _ => {}
    }
    map.insert("apiVersion".into(), json!(expected_version));
    map.insert("kind".into(), json!(t.rt.kind));
    Ok(())
}

/// Validates a new object and fills in what the server sets on create (not
/// `resourceVersion` and not `managedFields`).
fn prepare_new(state: &State, t: &Target, mut obj: Value, now: &str) -> Result<Value, ApiError> {
    check_type_meta(t, &mut obj)?;
    let key = t.key();
    let body_namespace = meta::meta_str(&obj, "namespace")
        .unwrap_or_default()
        .to_owned();
    if t.rt.namespaced() {
        let ns = t.namespace.clone().unwrap_or_default();
        if !body_namespace.is_empty() && body_namespace != ns {
            return Err(ApiError::NamespaceMismatch {
                in_body: body_namespace,
                in_url: ns,
            });
        }
        match state.get(
            &ResourceKey::new("", "namespaces"),
            &(String::new(), ns.clone()),
        ) {
            None => {
                return Err(ApiError::NotFound {
                    resource: "namespaces".into(),
                    name: ns,
                });
            }
            Some(n) if meta::is_deleting(n) => {
                return Err(ApiError::Forbidden {
                    resource: t.rt.qualified(),
                    name: meta::name(&obj).to_owned(),
                    detail: format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                });
            }
            Some(_) => {}
        }
        meta::metadata_mut(&mut obj).insert("namespace".into(), json!(ns));
    } else {
        meta::metadata_mut(&mut obj).remove("namespace");
    }

    let mut name = meta::name(&obj).to_owned();
    if name.is_empty()
        && let Some(prefix) = meta::meta_str(&obj, "generateName").filter(|p| !p.is_empty())
    {
        name = format!("{prefix}{}", meta::generated_suffix());
    }
    let max_len = if key.is_namespace() || (key.group.is_empty() && key.plural == "services") {
        63
    } else {
        253
    };
    if let Some(problem) = meta::dns1123_problem(&name, max_len) {
        return Err(ApiError::Invalid {
            kind: t.rt.kind.clone(),
            name,
            field: "metadata.name".into(),
            detail: problem,
        });
    }
    if state.get(&key, &t.object_key(&name)).is_some() {
        return Err(ApiError::AlreadyExists {
            resource: t.rt.qualified(),
            name,
        });
    }

    let meta = meta::metadata_mut(&mut obj);
    meta.insert("name".into(), json!(name));
    meta.insert("uid".into(), json!(meta::new_uid()));
    meta.insert("creationTimestamp".into(), json!(now));
    meta.insert("generation".into(), json!(1));
    for server_owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(server_owned);
    }
    if key.is_namespace() {
        meta.entry("labels")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|labels| labels.insert("kubernetes.io/metadata.name".into(), json!(name)));
    }
    if let Some(map) = obj.as_object_mut() {
        if t.rt.status_subresource {
            map.remove("status");
        }
        if key.is_namespace() {
            map.insert("status".into(), json!({"phase": "Active"}));
            let spec = map.entry("spec").or_insert_with(|| json!({}));
            if spec.get("finalizers").is_none() {
                spec["finalizers"] = json!(["kubernetes"]);
            }
        }
    }
    if let Some(schema) = t.rt.schema(&t.version).filter(|_| t.rt.crd.is_some()) {
        schema::apply_defaults(&mut obj, schema);
    }
    Ok(obj)
}

/// Stores a prepared new object at the next resourceVersion.
fn insert(
    state: &mut State,
    t: &Target,
    mut obj: Value,
    dry_run: bool,
    now: &str,
) -> Result<Value, ApiError> {
    let registered = crd_hook(t, &mut obj, now)?;
    if dry_run {
        return Ok(obj);
    }
    let rv = state.next_rv();
    meta::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
    let key = t.object_key(meta::name(&obj));
    state.put(&t.key(), key.clone(), obj.clone());
    if let Some(rt) = registered {
        register_crd_resource(state, rt);
    }
    gc::collect_if_dangling(state, &t.key(), &key);
    Ok(obj)
}

/// For a CustomResourceDefinition: validates it, sets its status and returns the resource
/// it declares (registered once the CRD is stored).
fn crd_hook(t: &Target, obj: &mut Value, now: &str) -> Result<Option<ResourceType>, ApiError> {
    if !t.key().is_crd() {
        return Ok(None);
    }
    let rt = registry::from_crd(obj)?;
    obj["status"] = registry::crd_status(obj, &rt, now);
    Ok(Some(rt))
}

fn register_crd_resource(state: &mut State, rt: ResourceType) {
    if let Some(previous) = rt.crd.as_deref().and_then(|crd| state.registry.by_crd(crd)) {
        let previous = previous.key();
        if previous != rt.key() {
            state.registry.unregister(&previous);
        }
    }
    state.registry.register(rt);
}

/// Server-owned metadata, copied from the stored object into every update.
const SERVER_METADATA: [&str; 8] = [
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
];

/// Stores `new` in place of `old` under the update rules of the module docs.
fn replace(
    state: &mut State,
    t: &Target,
    opts: &WriteOptions,
    old: &Value,
    mut new: Value,
    sub: Sub,
    managed_by: Managed,
) -> Result<Value, ApiError> {
    let now = meta::now_rfc3339();
    let name = meta::name(old).to_owned();
    check_type_meta(t, &mut new)?;
    if let Some(body_name) = meta::meta_str(&new, "name").filter(|n| !n.is_empty() && *n != name) {
        return Err(ApiError::NameMismatch {
            in_body: body_name.to_owned(),
            in_url: name,
        });
    }
    let old_namespace = meta::meta_str(old, "namespace").unwrap_or_default();
    if let Some(ns) =
        meta::meta_str(&new, "namespace").filter(|n| !n.is_empty() && *n != old_namespace)
    {
        return Err(ApiError::NamespaceMismatch {
            in_body: ns.to_owned(),
            in_url: old_namespace.to_owned(),
        });
    }
    let body_rv = meta::resource_version(&new);
    if !body_rv.is_empty() && body_rv != meta::resource_version(old) {
        return Err(ApiError::StaleResourceVersion {
            resource: t.rt.qualified(),
            name,
        });
    }
    let body_uid = meta::uid(&new);
    if !body_uid.is_empty() && body_uid != meta::uid(old) {
        return Err(ApiError::PreconditionFailed {
            resource: t.rt.qualified(),
            name,
            field: "UID",
            expected: body_uid.to_owned(),
            actual: meta::uid(old).to_owned(),
        });
    }

    // Apply: computed by server-side apply. Update: the client's own list, if it sent a
    // non-empty one, replaces the stored one before this write is accounted.
    let body_managed_fields = new["metadata"]["managedFields"].clone();
    let mut result = match sub {
        Sub::Status => {
            let mut result = old.clone();
            set_or_remove(&mut result, "status", new.get("status"));
            result
        }
        Sub::Main => {
            if t.rt.status_subresource {
                set_or_remove(&mut new, "status", old.get("status"));
            }
            new
        }
    };
    {
        let meta = meta::metadata_mut(&mut result);
        meta.remove("selfLink");
        for field in SERVER_METADATA {
            match old["metadata"].get(field) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
    }

    if meta::is_deleting(old) {
        let before = meta::finalizers(old);
        let added: Vec<String> = meta::finalizers(&result)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            return Err(ApiError::Invalid {
                kind: t.rt.kind.clone(),
                name,
                field: "metadata.finalizers".into(),
                detail: format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                ),
            });
        }
    }
    if let Some(schema) = t.rt.schema(&t.version).filter(|_| t.rt.crd.is_some()) {
        schema::apply_defaults(&mut result, schema);
    }
    let registered = crd_hook(t, &mut result, &now)?;

    match managed_by {
        Managed::Apply => set_or_remove(
            meta::metadata_mut(&mut result),
            "managedFields",
            Some(&body_managed_fields).filter(|v| !v.is_null()),
        ),
        Managed::Update => {
            let base = match body_managed_fields.as_array() {
                Some(list) if !list.is_empty() && sub == Sub::Main => {
                    managed::read(&json!({"metadata": {"managedFields": list}}))
                }
                _ => managed::read(old),
            };
            let api_version = t.api_version();
            let writer = Writer {
                manager: &opts.manager,
                api_version: &api_version,
                part: t.part(sub == Sub::Status),
                now: &now,
            };
            let entries = managed::after_update(base, Some(old), &result, t.shape(), &writer);
            managed::write(&mut result, &entries);
        }
    }

    if spec_changed(old, &result, t.rt.status_subresource) {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        meta::metadata_mut(&mut result).insert("generation".into(), json!(generation));
    }
    if same_ignoring_managed_times(old, &result) || opts.dry_run {
        return Ok(if opts.dry_run { result } else { old.clone() });
    }

    let rv = state.next_rv();
    meta::metadata_mut(&mut result).insert("resourceVersion".into(), json!(rv.to_string()));
    let key = t.object_key(&name);
    state.put(&t.key(), key.clone(), result.clone());
    if let Some(rt) = registered {
        register_crd_resource(state, rt);
    }
    // A pod still in its grace period waits for its kubelet's grace-0 DELETE instead.
    if meta::is_deleting(&result)
        && meta::finalizers(&result).is_empty()
        && gc::deletion_grace(&result) == 0
    {
        gc::finish_deletion(state, &t.key(), &key);
    } else if meta::owner_uids(&result) != meta::owner_uids(old) {
        gc::collect_if_dangling(state, &t.key(), &key);
    }
    Ok(result)
}

/// Sets `map[field]` to `value`, or removes the field when `value` is `None`.
fn set_or_remove<M: MapLike>(map: &mut M, field: &str, value: Option<&Value>) {
    match value {
        Some(v) => map.set(field, v.clone()),
        None => map.unset(field),
    }
}

trait MapLike {
    fn set(&mut self, field: &str, value: Value);
    fn unset(&mut self, field: &str);
}

impl MapLike for Value {
    fn set(&mut self, field: &str, value: Value) {
        if let Some(m) = self.as_object_mut() {
            m.insert(field.to_owned(), value);
        }
    }
    fn unset(&mut self, field: &str) {
        if let Some(m) = self.as_object_mut() {
            m.remove(field);
        }
    }
}

impl MapLike for serde_json::Map<String, Value> {
    fn set(&mut self, field: &str, value: Value) {
        self.insert(field.to_owned(), value);
    }
    fn unset(&mut self, field: &str) {
        self.remove(field);
    }
}

/// Whether anything counted by `generation` differs: all but metadata (and status when
/// the resource has a status subresource).
fn spec_changed(old: &Value, new: &Value, status_subresource: bool) -> bool {
    let counted = |obj: &Value| -> Value {
        let mut obj = obj.clone();
        if let Some(map) = obj.as_object_mut() {
            map.remove("metadata");
            map.remove("apiVersion");
            map.remove("kind");
            if status_subresource {
                map.remove("status");
            }
        }
        obj
    };
    counted(old) != counted(new)
}

/// Whether two versions of an object are equal when managedFields times are ignored.
fn same_ignoring_managed_times(old: &Value, new: &Value) -> bool {
    let strip = |obj: &Value| -> Value {
        let mut obj = obj.clone();
        if let Some(Value::Array(entries)) = obj["metadata"].get_mut("managedFields") {
            for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
                entry.remove("time");
            }
        }
        obj
    };
    strip(old) == strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Scope;

    fn target(rt: ResourceType, ns: Option<&str>) -> Target {
        Target {
            version: rt.versions[0].clone(),
            rt,
            namespace: ns.map(str::to_owned),
        }
    }

    fn configmaps() -> Target {
        target(
            ResourceType::new("", "v1", "ConfigMap", "configmaps", Scope::Namespaced),
            Some("default"),
        )
    }

    fn opts() -> WriteOptions {
        WriteOptions {
            manager: "test".into(),
            dry_run: false,
        }
    }

    #[test]
    fn create_sets_server_metadata_and_rejects_duplicates() {
        let mut state = State::new(100, 16);
        let t = configmaps();
        let body = json!({"metadata": {"name": "a", "uid": "client-chosen"}, "data": {"k": "v"}});
        let obj = create(&mut state, &t, &opts(), body.clone()).unwrap();
        assert_eq!(obj["apiVersion"], "v1");
        assert_eq!(obj["metadata"]["namespace"], "default");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert_ne!(obj["metadata"]["uid"], "client-chosen");
        assert_eq!(obj["metadata"]["resourceVersion"], state.rv().to_string());
        assert_eq!(
            create(&mut state, &t, &opts(), body).unwrap_err().code(),
            409
        );
    }

    #[test]
    fn create_checks_the_name_namespace_and_kind() {
        let mut state = State::new(100, 16);
        let t = configmaps();
        let bad_name = create(
            &mut state,
            &t,
            &opts(),
            json!({"metadata": {"name": "Not_Valid"}}),
        );
        assert_eq!(bad_name.unwrap_err().code(), 422);
        let wrong_kind = create(
            &mut state,
            &t,
            &opts(),
            json!({"kind": "Secret", "metadata": {"name": "a"}}),
        );
        assert_eq!(wrong_kind.unwrap_err().code(), 400);
        let mut elsewhere = configmaps();
        elsewhere.namespace = Some("missing".into());
        let missing_ns = create(
            &mut state,
            &elsewhere,
            &opts(),
            json!({"metadata": {"name": "a"}}),
        );
        assert_eq!(missing_ns.unwrap_err().code(), 404);
        let generated = create(
            &mut state,
            &t,
            &opts(),
            json!({"metadata": {"generateName": "gen-"}}),
        )
        .unwrap();
        assert!(meta::name(&generated).starts_with("gen-") && meta::name(&generated).len() == 9);
    }

    #[test]
    fn an_update_that_changes_nothing_keeps_the_resource_version() {
        let mut state = State::new(100, 16);
        let t = configmaps();
        let obj = create(
            &mut state,
            &t,
            &opts(),
            json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
        )
        .unwrap();
        let rv = state.rv();
        let same = update(&mut state, &t, &opts(), "a", obj.clone(), Sub::Main).unwrap();
        assert_eq!(state.rv(), rv);
        assert_eq!(
            same["metadata"]["resourceVersion"],
            obj["metadata"]["resourceVersion"]
        );
    }

    #[test]
    fn status_writes_keep_the_rest_and_main_writes_keep_status() {
        let mut state = State::new(100, 16);
        let rt = ResourceType::new(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            Scope::Namespaced,
        )
        .with_status_subresource();
        let t = target(rt, Some("default"));
        let created = create(
            &mut state,
            &t,
            &opts(),
            json!({"metadata": {"name": "s"}, "spec": {"replicas": 1}, "status": {"replicas": 9}}),
        )
        .unwrap();
        assert!(created.get("status").is_none(), "create drops status");
        let mut body = created.clone();
        body["spec"]["replicas"] = json!(5);
        body["status"] = json!({"replicas": 1});
        let status = update(&mut state, &t, &opts(), "s", body.clone(), Sub::Status).unwrap();
        assert_eq!(status["spec"]["replicas"], 1);
        assert_eq!(status["status"]["replicas"], 1);
        assert_eq!(status["metadata"]["generation"], 1);
        body["metadata"]["resourceVersion"] = status["metadata"]["resourceVersion"].clone();
        body["status"] = json!({"replicas": 7});
        let main = update(&mut state, &t, &opts(), "s", body, Sub::Main).unwrap();
        assert_eq!(main["spec"]["replicas"], 5);
        assert_eq!(main["status"]["replicas"], 1);
        assert_eq!(main["metadata"]["generation"], 2);
    }
}
