//! Deletion: finalizers, owner-reference garbage collection and namespace termination.
//!
//! Owns what happens when an object is deleted, done synchronously inside the request
//! (the real server's garbage collector and namespace controller do it asynchronously,
//! moments later; tests see the end state as soon as the DELETE returns):
//!
//! - An object with finalizers gets `deletionTimestamp` (and
//!   `deletionGracePeriodSeconds: 0`) and stays (MODIFIED); it is removed when an update
//!   leaves its finalizers empty ([`finish_deletion`]). Without finalizers it is removed at
//!   once (DELETED, at a new resourceVersion).
//! - When an object is removed, its dependents (objects whose `ownerReferences` name its
//!   uid) are deleted too, recursively and with their finalizers respected, unless another
//!   owner of theirs still exists, in which case only the dangling reference is removed
//!   (as the real garbage collector does). `propagationPolicy: Orphan` removes the
//!   references instead of deleting. `Foreground` is treated as `Background` (the owner
//!   is removed first, without the `foregroundDeletion` finalizer phase).
//! - An object written with owner references none of which exists (by uid, in its own
//!   namespace or cluster-scoped) is collected right after the write; references to
//!   missing owners beside a live one are removed.
//! - Deleting a namespace marks it `Terminating`, deletes everything in it, and removes it
//!   once it is empty (objects with finalizers keep it until they go). The initial
//!   namespaces `default`, `kube-system`, `kube-public` and `kube-node-lease` cannot be
//!   deleted (403).
//! - Removing a CustomResourceDefinition unregisters its resource and removes all its
//!   objects at once (their finalizers are not waited for; a simplification).
//!
//! # Graceful pod deletion
//!
//! As on the real server, a Pod bound to a node (`spec.nodeName` set) and not finished
//! (phase neither `Succeeded` nor `Failed`) is not removed by a DELETE: it gets
//! `deletionTimestamp` = now + grace and `deletionGracePeriodSeconds` = grace and stays
//! (MODIFIED), so its kubelet can stop the containers (SIGTERM, then SIGKILL once the
//! grace is over) and then remove it with a DELETE of grace 0. The grace is the
//! `gracePeriodSeconds` of the DeleteOptions (body or query), else the pod's
//! `spec.terminationGracePeriodSeconds`, else 30. A grace of 0 (or a pod without a node,
//! or a finished one) is deleted at once, finalizers respected as for any object. A
//! later DELETE of a terminating pod may only shorten the grace; one with grace 0 ends
//! it. The garbage collector and namespace termination delete bound pods gracefully
//! too, as theirs do. An update removing the last finalizer of a pod still in its grace
//! period does not remove it: only the grace-0 DELETE does. Nothing here enforces the
//! grace: without a kubelet (see the `kubelet` module) a bound pod stays terminating.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::meta;
use crate::registry::ResourceKey;
use crate::status::ApiError;
use crate::store::{ObjectKey, State};
use crate::write::Target;

/// How dependents of a deleted object are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

/// The options of a DELETE (from its `DeleteOptions` body and query).
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOptions {
    pub(crate) propagation: Propagation,
    pub(crate) precondition_uid: Option<String>,
    pub(crate) precondition_rv: Option<String>,
    pub(crate) dry_run: bool,
    /// `gracePeriodSeconds`; only pods use it (see the module docs). Negative values are
    /// not kept (the pod's own grace applies).
    pub(crate) grace_period_seconds: Option<i64>,
}

/// The grace period a pod's termination takes when the kubelet does not say otherwise.
const DEFAULT_POD_GRACE_SECONDS: i64 = 30;

const PROTECTED_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Deletes one object; returns its last state and whether it is gone (false: it waits for
/// finalizers or, for a namespace, for its contents).
pub(crate) fn delete(
    state: &mut State,
    t: &Target,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(Value, bool), ApiError> {
    let resource = t.key();
    let key = t.object_key(name);
    let current = state
        .get(&resource, &key)
        .cloned()
        .ok_or_else(|| t.not_found(name))?;
    let preconditions = [
        ("UID", &opts.precondition_uid, meta::uid(&current)),
        (
            "ResourceVersion",
            &opts.precondition_rv,
            meta::resource_version(&current),
        ),
    ];
    for (field, expected, actual) in preconditions {
        if let Some(expected) = expected.as_deref().filter(|e| *e != actual) {
            return Err(ApiError::PreconditionFailed {
                resource: t.rt.qualified(),
                name: name.to_owned(),
                field,
                expected: expected.to_owned(),
                actual: actual.to_owned(),
            });
        }
    }
    if opts.dry_run {
        return Ok((current, true));
    }
    if resource.is_namespace() {
        if PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::Forbidden {
                resource: "namespaces".into(),
                name: name.to_owned(),
                detail: "this namespace may not be deleted".into(),
            });
        }
        return Ok(terminate_namespace(state, name));
    }
    if opts.propagation == Propagation::Orphan {
        orphan_dependents(state, meta::uid(&current));
    }
    if let Some(grace) = pod_grace(&resource, &current, opts.grace_period_seconds) {
        return Ok((
            start_grace(state, &resource, &key, grace).unwrap_or(current),
            false,
        ));
    }
    if !meta::finalizers(&current).is_empty() {
        return Ok((
            mark_deleting(state, &resource, &key).unwrap_or(current),
            false,
        ));
    }
    Ok((
        remove_and_collect(state, &resource, &key).unwrap_or(current),
        true,
    ))
}

/// Removes an object whose last finalizer an update just removed.
pub(crate) fn finish_deletion(state: &mut State, resource: &ResourceKey, key: &ObjectKey) {
    if resource.is_namespace() {
        finish_namespace(state, &key.1);
    } else {
        remove_and_collect(state, resource, key);
    }
}

/// The grace period of a DELETE that only marks `obj` (a bound, unfinished pod) as
/// terminating; `None` when the DELETE proceeds as for any object (grace 0, not a pod,
/// not bound, finished). For a pod already terminating, `Some` of its current grace when
/// the request would not shorten it.
fn pod_grace(resource: &ResourceKey, obj: &Value, requested: Option<i64>) -> Option<i64> {
    if !(resource.group.is_empty() && resource.plural == "pods") {
        return None;
    }
    let bound = obj["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        obj["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !bound || finished {
        return None;
    }
    let grace = requested
        .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(DEFAULT_POD_GRACE_SECONDS)
        .max(0);
    if grace == 0 {
        return None;
    }
    if meta::is_deleting(obj) {
        let current = deletion_grace(obj);
        // Already at 0 (waiting for finalizers): nothing to shorten.
        return (current > 0).then_some(grace.min(current));
    }
    Some(grace)
}

/// `metadata.deletionGracePeriodSeconds`, 0 when absent.
pub(crate) fn deletion_grace(obj: &Value) -> i64 {
    obj["metadata"]["deletionGracePeriodSeconds"]
        .as_i64()
        .unwrap_or(0)
}

/// Marks a pod terminating with `grace` seconds, or shortens its grace to `grace`;
/// returns it (unchanged when the grace is not shorter).
fn start_grace(
    state: &mut State,
    resource: &ResourceKey,
    key: &ObjectKey,
    grace: i64,
) -> Option<Value> {
    let mut obj = state.get(resource, key)?.clone();
    if meta::is_deleting(&obj) && deletion_grace(&obj) <= grace {
        return Some(obj);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let deadline = meta::format_rfc3339(now + u64::try_from(grace).unwrap_or_default());
    let rv = state.next_rv();
    let meta = meta::metadata_mut(&mut obj);
    meta.insert("deletionTimestamp".into(), json!(deadline));
    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    state.put(resource, key.clone(), obj.clone());
    Some(obj)
}

/// Sets `deletionTimestamp` (now) and `deletionGracePeriodSeconds: 0` on a stored object,
/// unless it is already deleting with no grace left; returns it.
fn mark_deleting(state: &mut State, resource: &ResourceKey, key: &ObjectKey) -> Option<Value> {
    let mut obj = state.get(resource, key)?.clone();
    if meta::is_deleting(&obj) && deletion_grace(&obj) == 0 {
        return Some(obj);
    }
    let rv = state.next_rv();
    let meta = meta::metadata_mut(&mut obj);
    meta.insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    state.put(resource, key.clone(), obj.clone());
    Some(obj)
}

/// Deletes an object as the garbage collector does (background, finalizers respected).
fn delete_in_background(state: &mut State, resource: &ResourceKey, key: &ObjectKey) {
    let Some(obj) = state.get(resource, key) else {
        return;
    };
    if let Some(grace) = pod_grace(resource, obj, None) {
        start_grace(state, resource, key, grace);
    } else if meta::finalizers(obj).is_empty() {
        remove_and_collect(state, resource, key);
    } else {
        mark_deleting(state, resource, key);
    }
}

/// Removes a stored object and collects what depended on it; returns its last state.
fn remove_and_collect(state: &mut State, resource: &ResourceKey, key: &ObjectKey) -> Option<Value> {
    let mut first = None;
    let mut queue = VecDeque::from([(resource.clone(), key.clone())]);
    while let Some((resource, key)) = queue.pop_front() {
        let Some(mut obj) = state.get(&resource, &key).cloned() else {
            continue;
        };
        let rv = state.next_rv();
        meta::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        state.remove(&resource, &key, obj.clone());
        let uid = meta::uid(&obj).to_owned();
        if resource.is_crd()
            && let Some(rt) = state.registry.by_crd(meta::name(&obj)).map(|rt| rt.key())
        {
            state.registry.unregister(&rt);
            queue.extend(state.keys_of(&rt).into_iter().map(|k| (rt.clone(), k)));
        }
        for (dep_resource, dep_key) in state.dependents_of(&uid) {
            let Some(dependent) = state.get(&dep_resource, &dep_key) else {
                continue;
            };
            let other_owner_alive = meta::owner_uids(dependent)
                .iter()
                .any(|owner| *owner != uid && owner_exists(state, &dep_key.0, owner));
            if other_owner_alive {
                remove_owner_reference(state, &dep_resource, &dep_key, &uid);
            } else if let Some(grace) = pod_grace(&dep_resource, dependent, None) {
                start_grace(state, &dep_resource, &dep_key, grace);
            } else if meta::finalizers(dependent).is_empty() {
                queue.push_back((dep_resource, dep_key));
            } else {
                mark_deleting(state, &dep_resource, &dep_key);
            }
        }
        if !key.0.is_empty() {
            finish_namespace(state, &key.0);
        }
        first.get_or_insert(obj);
    }
    first
}

/// Whether the owner with `uid` exists where a dependent in `namespace` can have it: in
/// the same namespace, or cluster-scoped (the real garbage collector looks owners up in
/// the dependent's namespace, so a reference across namespaces dangles).
fn owner_exists(state: &State, namespace: &str, uid: &str) -> bool {
    state
        .find_uid(uid)
        .is_some_and(|(_, (owner_namespace, _))| {
            owner_namespace.is_empty() || owner_namespace == namespace
        })
}

/// After a write of an object with owner references: collects it if none of its owners
/// exists, or drops the references to missing owners if some exist, as the real garbage
/// collector does a moment after such a write.
pub(crate) fn collect_if_dangling(state: &mut State, resource: &ResourceKey, key: &ObjectKey) {
    let Some(obj) = state.get(resource, key) else {
        return;
    };
    let owners = meta::owner_uids(obj);
    if owners.is_empty() {
        return;
    }
    let (alive, dangling): (Vec<String>, Vec<String>) = owners
        .into_iter()
        .partition(|uid| owner_exists(state, &key.0, uid));
    if alive.is_empty() {
        delete_in_background(state, resource, key);
    } else {
        for uid in dangling {
            remove_owner_reference(state, resource, key, &uid);
        }
    }
}

/// Drops the `ownerReferences` entries naming `owner_uid` from a stored object.
fn remove_owner_reference(
    state: &mut State,
    resource: &ResourceKey,
    key: &ObjectKey,
    owner_uid: &str,
) {
    let Some(mut obj) = state.get(resource, key).cloned() else {
        return;
    };
    let meta = meta::metadata_mut(&mut obj);
    if let Some(Value::Array(refs)) = meta.get_mut("ownerReferences") {
        refs.retain(|r| r["uid"] != owner_uid);
        if refs.is_empty() {
            meta.remove("ownerReferences");
        }
    }
    let rv = state.next_rv();
    meta::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
    state.put(resource, key.clone(), obj);
}

fn orphan_dependents(state: &mut State, uid: &str) {
    for (resource, key) in state.dependents_of(uid) {
        remove_owner_reference(state, &resource, &key, uid);
    }
}

/// Marks a namespace Terminating and deletes its contents; returns it and whether it is gone.
fn terminate_namespace(state: &mut State, name: &str) -> (Value, bool) {
    let resource = ResourceKey::new("", "namespaces");
    let key = (String::new(), name.to_owned());
    let mut marked = state.get(&resource, &key).cloned().unwrap_or(Value::Null);
    if let Some(mut ns) = state
        .get(&resource, &key)
        .cloned()
        .filter(|ns| !meta::is_deleting(ns))
    {
        let rv = state.next_rv();
        let meta = meta::metadata_mut(&mut ns);
        meta.insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        ns["status"] = json!({"phase": "Terminating"});
        state.put(&resource, key.clone(), ns.clone());
        marked = ns;
        for (resource, key) in state.keys_in_namespace(name) {
            delete_in_background(state, &resource, &key);
        }
    }
    match (finish_namespace(state, name), state.get(&resource, &key)) {
        (Some(removed), _) => (removed, true),
        (None, Some(waiting)) => (waiting.clone(), false),
        // Removed as its last object went.
        (None, None) => (marked, true),
    }
}

/// Removes a terminating namespace once it is empty and has no finalizers left.
fn finish_namespace(state: &mut State, name: &str) -> Option<Value> {
    let resource = ResourceKey::new("", "namespaces");
    let key = (String::new(), name.to_owned());
    let ns = state.get(&resource, &key)?;
    if !meta::is_deleting(ns)
        || !meta::finalizers(ns).is_empty()
        || !state.keys_in_namespace(name).is_empty()
    {
        return None;
    }
    let mut ns = ns.clone();
    let rv = state.next_rv();
    meta::metadata_mut(&mut ns).insert("resourceVersion".into(), json!(rv.to_string()));
    state.remove(&resource, &key, ns.clone());
    Some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{ResourceType, Scope};
    use crate::write::{self, WriteOptions};

    fn target(plural: &str, kind: &str, ns: &str) -> Target {
        Target {
            rt: ResourceType::new("", "v1", kind, plural, Scope::Namespaced),
            version: "v1".into(),
            namespace: Some(ns.into()),
        }
    }

    fn opts() -> WriteOptions {
        WriteOptions {
            manager: "test".into(),
            dry_run: false,
        }
    }

    fn create(state: &mut State, t: &Target, body: Value) -> Value {
        write::create(state, t, &opts(), body).unwrap()
    }

    fn owned_by(owner: &Value) -> Value {
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": meta::name(owner), "uid": meta::uid(owner)}])
    }

    #[test]
    fn removing_an_owner_removes_its_dependents_recursively() {
        let mut state = State::new(1000, 16);
        let cms = target("configmaps", "ConfigMap", "default");
        let owner = create(&mut state, &cms, json!({"metadata": {"name": "owner"}}));
        let child = create(
            &mut state,
            &cms,
            json!({"metadata": {"name": "child", "ownerReferences": owned_by(&owner)}}),
        );
        create(
            &mut state,
            &cms,
            json!({"metadata": {"name": "grandchild", "ownerReferences": owned_by(&child)}}),
        );
        let (_, gone) = delete(&mut state, &cms, "owner", &DeleteOptions::default()).unwrap();
        assert!(gone);
        assert_eq!(state.list(&cms.key(), None).count(), 0);
    }

    #[test]
    fn orphan_propagation_keeps_dependents_without_the_reference() {
        let mut state = State::new(1000, 16);
        let cms = target("configmaps", "ConfigMap", "default");
        let owner = create(&mut state, &cms, json!({"metadata": {"name": "owner"}}));
        create(
            &mut state,
            &cms,
            json!({"metadata": {"name": "child", "ownerReferences": owned_by(&owner)}}),
        );
        let opts = DeleteOptions {
            propagation: Propagation::Orphan,
            ..DeleteOptions::default()
        };
        delete(&mut state, &cms, "owner", &opts).unwrap();
        let child = state.get(&cms.key(), &cms.object_key("child")).unwrap();
        assert!(child["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn a_dependent_with_another_live_owner_only_loses_the_reference() {
        let mut state = State::new(1000, 16);
        let cms = target("configmaps", "ConfigMap", "default");
        let a = create(&mut state, &cms, json!({"metadata": {"name": "a"}}));
        let b = create(&mut state, &cms, json!({"metadata": {"name": "b"}}));
        let mut refs = owned_by(&a);
        refs.as_array_mut()
            .unwrap()
            .extend(owned_by(&b).as_array().unwrap().clone());
        create(
            &mut state,
            &cms,
            json!({"metadata": {"name": "child", "ownerReferences": refs}}),
        );
        delete(&mut state, &cms, "a", &DeleteOptions::default()).unwrap();
        let child = state.get(&cms.key(), &cms.object_key("child")).unwrap();
        assert_eq!(meta::owner_uids(child), [meta::uid(&b)]);
    }

    #[test]
    fn deleting_a_namespace_removes_its_objects_and_waits_for_finalizers() {
        let mut state = State::new(1000, 16);
        let namespaces = Target {
            rt: ResourceType::new("", "v1", "Namespace", "namespaces", Scope::Cluster)
                .with_status_subresource(),
            version: "v1".into(),
            namespace: None,
        };
        create(
            &mut state,
            &namespaces,
            json!({"metadata": {"name": "tenant"}}),
        );
        let cms = target("configmaps", "ConfigMap", "tenant");
        create(&mut state, &cms, json!({"metadata": {"name": "plain"}}));
        create(
            &mut state,
            &cms,
            json!({"metadata": {"name": "held", "finalizers": ["x/y"]}}),
        );
        let (ns, gone) =
            delete(&mut state, &namespaces, "tenant", &DeleteOptions::default()).unwrap();
        assert!(!gone);
        assert_eq!(ns["status"]["phase"], "Terminating");
        assert!(state.get(&cms.key(), &cms.object_key("plain")).is_none());
        let held = state
            .get(&cms.key(), &cms.object_key("held"))
            .unwrap()
            .clone();
        assert!(meta::is_deleting(&held));
        let mut released = held.clone();
        released["metadata"]["finalizers"] = json!([]);
        write::update(
            &mut state,
            &cms,
            &opts(),
            "held",
            released,
            write::Sub::Main,
        )
        .unwrap();
        assert!(state.get(&cms.key(), &cms.object_key("held")).is_none());
        assert!(
            state
                .get(&namespaces.key(), &(String::new(), "tenant".into()))
                .is_none()
        );
    }

    #[test]
    fn an_object_written_with_only_missing_owners_is_collected_at_once() {
        let mut state = State::new(1000, 16);
        let cms = target("configmaps", "ConfigMap", "default");
        let ghost = json!({"metadata": {"name": "ghost", "uid": "no-such-uid"}});
        create(
            &mut state,
            &cms,
            json!({"metadata": {"name": "orphan", "ownerReferences": owned_by(&ghost)}}),
        );
        assert!(state.get(&cms.key(), &cms.object_key("orphan")).is_none());

        let owner = create(&mut state, &cms, json!({"metadata": {"name": "owner"}}));
        let mut refs = owned_by(&owner);
        refs.as_array_mut()
            .unwrap()
            .extend(owned_by(&ghost).as_array().unwrap().clone());
        create(
            &mut state,
            &cms,
            json!({"metadata": {"name": "half", "ownerReferences": refs}}),
        );
        let half = state.get(&cms.key(), &cms.object_key("half")).unwrap();
        assert_eq!(
            meta::owner_uids(half),
            [meta::uid(&owner)],
            "the missing owner's reference goes"
        );
    }

    #[test]
    fn an_owner_in_another_namespace_does_not_count() {
        let mut state = State::new(1000, 16);
        let namespaces = Target {
            rt: ResourceType::new("", "v1", "Namespace", "namespaces", Scope::Cluster)
                .with_status_subresource(),
            version: "v1".into(),
            namespace: None,
        };
        create(
            &mut state,
            &namespaces,
            json!({"metadata": {"name": "elsewhere"}}),
        );
        let owner = create(
            &mut state,
            &target("configmaps", "ConfigMap", "elsewhere"),
            json!({"metadata": {"name": "owner"}}),
        );
        let cms = target("configmaps", "ConfigMap", "default");
        create(
            &mut state,
            &cms,
            json!({"metadata": {"name": "child", "ownerReferences": owned_by(&owner)}}),
        );
        assert!(state.get(&cms.key(), &cms.object_key("child")).is_none());
    }

    fn pods() -> Target {
        Target {
            rt: ResourceType::new("", "v1", "Pod", "pods", Scope::Namespaced)
                .with_status_subresource(),
            version: "v1".into(),
            namespace: Some("default".into()),
        }
    }

    fn grace(seconds: Option<i64>) -> DeleteOptions {
        DeleteOptions {
            grace_period_seconds: seconds,
            ..DeleteOptions::default()
        }
    }

    fn bound_pod(state: &mut State, name: &str, extra_meta: Value) -> Value {
        let mut body = json!({
            "metadata": {"name": name},
            "spec": {"nodeName": "node-a", "terminationGracePeriodSeconds": 45, "containers": []},
        });
        if let (Some(meta), Some(extra)) =
            (body["metadata"].as_object_mut(), extra_meta.as_object())
        {
            meta.extend(extra.clone());
        }
        create(state, &pods(), body)
    }

    #[test]
    fn a_bound_pod_terminates_gracefully_and_only_shortens_its_grace() {
        let mut state = State::new(1000, 16);
        let t = pods();
        bound_pod(&mut state, "p", json!({}));
        let (pod, gone) = delete(&mut state, &t, "p", &grace(None)).unwrap();
        assert!(!gone, "a bound pod waits for its kubelet");
        assert_eq!(
            deletion_grace(&pod),
            45,
            "the pod's terminationGracePeriodSeconds"
        );
        let stamp = pod["metadata"]["deletionTimestamp"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(stamp > meta::now_rfc3339(), "now + grace: {stamp}");

        let (pod, gone) = delete(&mut state, &t, "p", &grace(Some(10))).unwrap();
        assert!(!gone);
        assert_eq!(deletion_grace(&pod), 10, "a shorter grace wins");
        let rv = state.rv();
        let (pod, _) = delete(&mut state, &t, "p", &grace(Some(20))).unwrap();
        assert_eq!(deletion_grace(&pod), 10, "a longer one does not");
        assert_eq!(state.rv(), rv, "and writes nothing");

        let (_, gone) = delete(&mut state, &t, "p", &grace(Some(0))).unwrap();
        assert!(gone, "grace 0 removes it");
        assert!(state.get(&t.key(), &t.object_key("p")).is_none());
    }

    #[test]
    fn unbound_or_finished_pods_and_grace_zero_are_deleted_at_once() {
        let mut state = State::new(1000, 16);
        let t = pods();
        create(
            &mut state,
            &t,
            json!({"metadata": {"name": "unbound"}, "spec": {"containers": []}}),
        );
        assert!(delete(&mut state, &t, "unbound", &grace(None)).unwrap().1);

        let pod = bound_pod(&mut state, "done", json!({}));
        let mut finished = pod.clone();
        finished["status"] = json!({"phase": "Succeeded"});
        write::update(
            &mut state,
            &t,
            &opts(),
            "done",
            finished,
            write::Sub::Status,
        )
        .unwrap();
        assert!(delete(&mut state, &t, "done", &grace(None)).unwrap().1);

        bound_pod(&mut state, "now", json!({}));
        assert!(delete(&mut state, &t, "now", &grace(Some(0))).unwrap().1);
    }

    #[test]
    fn a_terminating_pod_outlives_its_last_finalizer_until_grace_zero() {
        let mut state = State::new(1000, 16);
        let t = pods();
        bound_pod(&mut state, "p", json!({"finalizers": ["x/y"]}));
        let (pod, gone) = delete(&mut state, &t, "p", &grace(Some(5))).unwrap();
        assert!(!gone);
        assert_eq!(deletion_grace(&pod), 5);
        let mut released = pod.clone();
        released["metadata"]["finalizers"] = json!([]);
        write::update(&mut state, &t, &opts(), "p", released, write::Sub::Main).unwrap();
        assert!(
            state.get(&t.key(), &t.object_key("p")).is_some(),
            "still in its grace period"
        );
        assert!(delete(&mut state, &t, "p", &grace(Some(0))).unwrap().1);

        bound_pod(&mut state, "q", json!({"finalizers": ["x/y"]}));
        let (pod, gone) = delete(&mut state, &t, "q", &grace(Some(0))).unwrap();
        assert!(!gone, "grace 0 still waits for finalizers");
        assert_eq!(deletion_grace(&pod), 0);
    }

    #[test]
    fn garbage_collected_bound_pods_terminate_gracefully() {
        let mut state = State::new(1000, 16);
        let cms = target("configmaps", "ConfigMap", "default");
        let owner = create(&mut state, &cms, json!({"metadata": {"name": "owner"}}));
        let t = pods();
        bound_pod(
            &mut state,
            "owned",
            json!({"ownerReferences": owned_by(&owner)}),
        );
        delete(&mut state, &cms, "owner", &DeleteOptions::default()).unwrap();
        let pod = state.get(&t.key(), &t.object_key("owned")).unwrap();
        assert!(meta::is_deleting(pod));
        assert_eq!(deletion_grace(pod), 45);
    }

    #[test]
    fn the_default_namespace_cannot_be_deleted() {
        let mut state = State::new(1000, 16);
        let namespaces = Target {
            rt: ResourceType::new("", "v1", "Namespace", "namespaces", Scope::Cluster),
            version: "v1".into(),
            namespace: None,
        };
        let err = delete(
            &mut state,
            &namespaces,
            "default",
            &DeleteOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), 403);
    }
}
