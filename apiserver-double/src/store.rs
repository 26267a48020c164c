//! The object store: every object, the resourceVersion counter, the event history and the
//! event fan-out to watchers.
//!
//! Owns [`State`], kept behind one mutex so that each request is atomic, as a single etcd
//! transaction is. Invariants:
//!
//! - `resourceVersion` is one global counter, as etcd's revision: every stored change
//!   (add, modify, delete) takes the next number, written as a decimal string into the
//!   object; a list answers with the current counter.
//! - Every change is appended to a bounded history and sent on a broadcast channel *while
//!   the lock is held*, so a watcher that snapshots the history and subscribes under the
//!   lock sees every later change exactly once and in order.
//! - `floor` is the oldest resourceVersion a watch may resume from: events after it are
//!   all still in the history. Older versions get 410 Gone (`Expired`).
//! - `uids` indexes every stored object by `metadata.uid`, for garbage collection.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::faults::{Fault, Verb};
use crate::meta;
use crate::registry::{Registry, ResourceKey};

/// Namespace (empty for cluster-scoped objects) and name.
pub(crate) type ObjectKey = (String, String);

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One stored change.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) rv: u64,
    pub(crate) resource: ResourceKey,
    pub(crate) kind: EventType,
    /// The object after the change (for a delete: the last state, at the delete's version).
    pub(crate) object: Arc<Value>,
    /// The object before the change, so selector watches can turn a modification into an
    /// add or delete when the object starts or stops matching.
    pub(crate) previous: Option<Arc<Value>>,
}

/// Where a new watch starts.
#[derive(Debug)]
pub(crate) enum WatchStart {
    /// The requested version is older than the history: the watch gets 410 Gone.
    Expired { requested: u64, floor: u64 },
    /// Replay these events, then follow `receiver`.
    Replay {
        /// Current objects (for a watch without a resourceVersion), sent as ADDED.
        snapshot: Vec<Value>,
        /// History events after the requested version.
        events: Vec<Arc<Event>>,
        receiver: broadcast::Receiver<Arc<Event>>,
        /// The resourceVersion when the watch started.
        current: u64,
    },
}

/// Every object and the machinery around it; one per server, behind a mutex.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) registry: Registry,
    rv: u64,
    objects: BTreeMap<ResourceKey, BTreeMap<ObjectKey, Value>>,
    uids: HashMap<String, (ResourceKey, ObjectKey)>,
    history: VecDeque<Arc<Event>>,
    history_limit: usize,
    floor: u64,
    events: broadcast::Sender<Arc<Event>>,
    faults: Vec<Fault>,
}

/// Namespaces a fresh cluster has.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl State {
    pub(crate) fn new(history_limit: usize, broadcast_capacity: usize) -> State {
        let (events, _) = broadcast::channel(broadcast_capacity.max(1));
        let mut state = State {
            registry: Registry::with_builtins(),
            rv: 0,
            objects: BTreeMap::new(),
            uids: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            floor: 0,
            events,
            faults: Vec::new(),
        };
        let now = meta::now_rfc3339();
        for ns in INITIAL_NAMESPACES {
            let rv = state.next_rv();
            let object = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns,
                    "uid": meta::new_uid(),
                    "resourceVersion": rv.to_string(),
                    "creationTimestamp": now,
                    "labels": {"kubernetes.io/metadata.name": ns},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            state.put(
                &ResourceKey::new("", "namespaces"),
                (String::new(), ns.to_owned()),
                object,
            );
        }
        state
    }

    /// The current resourceVersion.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    /// Takes the next resourceVersion; the caller stores a change at it.
    pub(crate) fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub(crate) fn get(&self, resource: &ResourceKey, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(resource)?.get(key)
    }

    /// Objects of `resource`, in one namespace or all, ordered by namespace and name.
    pub(crate) fn list<'a>(
        &'a self,
        resource: &ResourceKey,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .get(resource)
            .into_iter()
            .flat_map(|objects| objects.iter())
            .filter(move |((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v)
    }

    /// Keys of every object in `namespace`, across all resources.
    pub(crate) fn keys_in_namespace(&self, namespace: &str) -> Vec<(ResourceKey, ObjectKey)> {
        self.objects
            .iter()
            .flat_map(|(resource, objects)| {
                objects
                    .keys()
                    .filter(|(ns, _)| ns == namespace)
                    .map(move |key| (resource.clone(), key.clone()))
            })
            .collect()
    }

    /// Keys of the objects of `resource`.
    pub(crate) fn keys_of(&self, resource: &ResourceKey) -> Vec<ObjectKey> {
        self.objects
            .get(resource)
            .map(|objects| objects.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Where the object with this uid is stored, if it exists.
    pub(crate) fn find_uid(&self, uid: &str) -> Option<&(ResourceKey, ObjectKey)> {
        self.uids.get(uid)
    }

    /// Every object whose `ownerReferences` name `uid`.
    pub(crate) fn dependents_of(&self, uid: &str) -> Vec<(ResourceKey, ObjectKey)> {
        self.objects
            .iter()
            .flat_map(|(resource, objects)| {
                objects
                    .iter()
                    .filter(|(_, obj)| meta::owner_uids(obj).iter().any(|u| u == uid))
                    .map(move |(key, _)| (resource.clone(), key.clone()))
            })
            .collect()
    }

    /// Stores `object` (whose resourceVersion the caller set from [`State::next_rv`]),
    /// recording an ADDED or MODIFIED event.
    pub(crate) fn put(&mut self, resource: &ResourceKey, key: ObjectKey, object: Value) {
        let rv = parse_rv(meta::resource_version(&object));
        let uid = meta::uid(&object).to_owned();
        let previous = self
            .objects
            .entry(resource.clone())
            .or_default()
            .insert(key.clone(), object.clone());
        if !uid.is_empty() {
            self.uids.insert(uid, (resource.clone(), key));
        }
        let kind = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Event {
            rv,
            resource: resource.clone(),
            kind,
            object: Arc::new(object),
            previous: previous.map(Arc::new),
        });
    }

    /// Removes the object at `key`, recording a DELETED event carrying `last` (its final
    /// state, whose resourceVersion the caller set from [`State::next_rv`]).
    pub(crate) fn remove(&mut self, resource: &ResourceKey, key: &ObjectKey, last: Value) {
        let previous = self
            .objects
            .get_mut(resource)
            .and_then(|objects| objects.remove(key));
        self.uids.remove(meta::uid(&last));
        self.record(Event {
            rv: parse_rv(meta::resource_version(&last)),
            resource: resource.clone(),
            kind: EventType::Deleted,
            object: Arc::new(last),
            previous: previous.map(Arc::new),
        });
    }

    fn record(&mut self, event: Event) {
        let event = Arc::new(event);
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event.clone());
        self.history.push_back(event);
        while self.history.len() > self.history_limit {
            if let Some(evicted) = self.history.pop_front() {
                self.floor = evicted.rv;
            }
        }
    }

    /// Forgets the whole history, as an etcd compaction does: watches resuming from any
    /// earlier version get 410 Gone, and lists from now on answer a version a watch can
    /// resume from.
    pub(crate) fn compact(&mut self) {
        self.history.clear();
        self.floor = self.next_rv();
    }

    /// Starts a watch on `resource` from `from` (None: current objects as ADDED first).
    pub(crate) fn watch(
        &self,
        resource: &ResourceKey,
        namespace: Option<&str>,
        from: Option<u64>,
    ) -> WatchStart {
        let receiver = self.events.subscribe();
        match from {
            None => WatchStart::Replay {
                snapshot: self.list(resource, namespace).cloned().collect(),
                events: Vec::new(),
                receiver,
                current: self.rv,
            },
            Some(requested) if requested < self.floor => WatchStart::Expired {
                requested,
                floor: self.floor,
            },
            Some(requested) => WatchStart::Replay {
                snapshot: Vec::new(),
                events: self
                    .history
                    .iter()
                    .filter(|e| e.rv > requested && e.resource == *resource)
                    .cloned()
                    .collect(),
                receiver,
                current: self.rv,
            },
        }
    }

    pub(crate) fn add_fault(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    pub(crate) fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// The first injected fault matching the request, used up once.
    pub(crate) fn take_fault(
        &mut self,
        verb: Verb,
        group: &str,
        resource: &str,
        name: Option<&str>,
    ) -> Option<Fault> {
        let i = self
            .faults
            .iter()
            .position(|f| f.matches(verb, group, resource, name))?;
        let fault = self.faults[i].clone();
        if self.faults[i].use_once() {
            self.faults.remove(i);
        }
        Some(fault)
    }
}

fn parse_rv(rv: &str) -> u64 {
    rv.parse().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, rv: u64) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "resourceVersion": rv.to_string()}})
    }

    fn configmaps() -> ResourceKey {
        ResourceKey::new("", "configmaps")
    }

    #[test]
    fn a_fresh_store_has_the_standard_namespaces() {
        let state = State::new(10, 10);
        let names: Vec<_> = state
            .list(&ResourceKey::new("", "namespaces"), None)
            .map(|n| meta::name(n).to_owned())
            .collect();
        assert_eq!(
            names,
            ["default", "kube-node-lease", "kube-public", "kube-system"]
        );
        assert_eq!(state.rv(), 4);
    }

    #[test]
    fn watch_replays_history_after_the_version_and_expires_older_ones() {
        let mut state = State::new(3, 16);
        for name in ["a", "b", "c"] {
            let rv = state.next_rv();
            state.put(&configmaps(), ("default".into(), name.into()), cm(name, rv));
        }
        // History holds the last three events: rv 5, 6, 7; floor is 4.
        match state.watch(&configmaps(), None, Some(5)) {
            WatchStart::Replay { events, .. } => {
                assert_eq!(events.iter().map(|e| e.rv).collect::<Vec<_>>(), [6, 7]);
            }
            other => panic!("expected a replay, got {other:?}"),
        }
        assert!(matches!(
            state.watch(&configmaps(), None, Some(4)),
            WatchStart::Replay { .. }
        ));
        assert!(matches!(
            state.watch(&configmaps(), None, Some(3)),
            WatchStart::Expired {
                requested: 3,
                floor: 4
            }
        ));
    }

    #[test]
    fn compaction_expires_every_earlier_version_but_not_the_next_list() {
        let mut state = State::new(100, 16);
        let rv = state.next_rv();
        state.put(&configmaps(), ("default".into(), "a".into()), cm("a", rv));
        state.compact();
        assert!(matches!(
            state.watch(&configmaps(), None, Some(rv)),
            WatchStart::Expired { .. }
        ));
        assert!(matches!(
            state.watch(&configmaps(), None, Some(state.rv())),
            WatchStart::Replay { .. }
        ));
    }

    #[test]
    fn removal_records_a_deleted_event_and_forgets_the_uid() {
        let mut state = State::new(10, 16);
        let mut rx = state.events.subscribe();
        let rv = state.next_rv();
        let key = ("default".to_owned(), "a".to_owned());
        state.put(&configmaps(), key.clone(), cm("a", rv));
        assert!(state.find_uid("uid-a").is_some());
        let rv = state.next_rv();
        state.remove(&configmaps(), &key, cm("a", rv));
        assert!(state.find_uid("uid-a").is_none());
        assert_eq!(rx.try_recv().unwrap().kind, EventType::Added);
        let deleted = rx.try_recv().unwrap();
        assert_eq!((deleted.kind, deleted.rv), (EventType::Deleted, rv));
    }
}
