//! What both controllers ask of pods (phase, readiness, availability, termination,
//! ownership) and the template hash both name revisions with, defined as the real
//! controllers define them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// A pod's `status.phase`, `""` when no kubelet has written one yet. (A real API server
/// stores every new pod as `Pending`; the double stores no status on create.)
pub(crate) fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Not yet running: `Pending`, or no phase at all.
pub(crate) fn is_pending(pod: &Pod) -> bool {
    matches!(phase(pod), "" | "Pending")
}

/// The pod has ended (`Failed` or `Succeeded`): controllers that keep pods running replace
/// it.
pub(crate) fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Failed" | "Succeeded")
}

/// Deletion has begun (`deletionTimestamp`): the kubelet is stopping it, or a finalizer
/// holds it. Its name stays taken until the object is gone.
pub(crate) fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// When the pod's `Ready` condition became `True`, if it is `True`.
fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// `Running` with condition `Ready=True`: what the controllers count as ready.
pub(crate) fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && ready_since(pod).is_some()
}

/// Running and ready for at least `min_ready_seconds` (a condition without a transition
/// time counts as ready long enough).
pub(crate) fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if phase(pod) != "Running" {
        return false;
    }
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => true,
        Some(Some(since)) => since
            .saturating_add(SignedDuration::from_secs(i64::from(min_ready_seconds)))
            .is_ok_and(|ready_enough| ready_enough <= now),
    }
}

/// Whether `meta` names `uid` as its controller.
pub(crate) fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// Whether `meta` has no controller: an orphan a controller whose selector matches may
/// adopt.
pub(crate) fn is_orphan(meta: &ObjectMeta) -> bool {
    !meta
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true))
}

/// Whether `labels` match `selector` (`matchLabels` and `matchExpressions` with `In`,
/// `NotIn`, `Exists`, `DoesNotExist`). An empty selector matches nothing here: adopting
/// every pod of a namespace is never what a test means (the real API rejects workloads
/// with an empty selector).
pub(crate) fn selector_matches(
    selector: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let match_labels = selector.match_labels.iter().flatten();
    let expressions = selector.match_expressions.iter().flatten();
    if match_labels.clone().next().is_none() && expressions.clone().next().is_none() {
        return false;
    }
    match_labels.clone().all(|(k, v)| labels.get(k) == Some(v))
        && expressions.clone().all(|e| {
            let value = labels.get(&e.key);
            let listed = |v: &String| e.values.iter().flatten().any(|x| x == v);
            match e.operator.as_str() {
                "In" => value.is_some_and(listed),
                "NotIn" => !value.is_some_and(listed),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// The controller reference a workload puts on what it creates, as `NewControllerRef`
/// builds it: `blockOwnerDeletion` set, so foreground deletion would wait for them.
pub(crate) fn controller_ref(kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The label value of `key` on `meta`.
pub(crate) fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// A short, stable hash of a pod template, as the controllers name revisions with it
/// (`controller-revision-hash`, `pod-template-hash`): FNV-1a (32 bits) of the template's
/// JSON, its decimal digits spelled in the vowel-free alphabet Kubernetes uses
/// (`rand.SafeEncodeString`), e.g. `7b9c5d6f4`. The JSON of the typed template is
/// canonical (fields in declaration order, maps sorted), so equal templates hash alike
/// however they were written; any change to the template changes it.
pub(crate) fn template_hash(template: &PodTemplateSpec) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut hash: u32 = 0x811c_9dc5;
    for byte in json {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash.to_string()
        .bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// The template's labels with `extra` added (overriding).
pub(crate) fn labels_with(
    template: &PodTemplateSpec,
    extra: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.extend(extra);
    labels
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web", "tier": "x"}},
            "spec": {"containers": [{"name": "c", "image": image}]},
        }))
        .unwrap()
    }

    #[test]
    fn template_hash_is_stable_short_and_changes_with_the_template() {
        let a = template_hash(&template("one"));
        assert_eq!(a, template_hash(&template("one")));
        assert_ne!(a, template_hash(&template("two")));
        assert!((1..=10).contains(&a.len()), "{a}");
        assert!(a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        // Key order in the written JSON does not matter.
        let reordered: PodTemplateSpec = serde_json::from_value(json!({
            "spec": {"containers": [{"image": "one", "name": "c"}]},
            "metadata": {"labels": {"tier": "x", "app": "web"}},
        }))
        .unwrap();
        assert_eq!(a, template_hash(&reordered));
    }

    #[test]
    fn selectors_match_labels_and_expressions_and_an_empty_one_matches_nothing() {
        let selector: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }))
        .unwrap();
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(selector_matches(
            &selector,
            Some(&labels(&[("app", "web"), ("tier", "a")]))
        ));
        assert!(!selector_matches(
            &selector,
            Some(&labels(&[("app", "web"), ("tier", "c")]))
        ));
        assert!(!selector_matches(
            &selector,
            Some(&labels(&[("app", "web"), ("tier", "a"), ("canary", "1")]))
        ));
        assert!(!selector_matches(&selector, None));
        assert!(!selector_matches(
            &LabelSelector::default(),
            Some(&labels(&[("app", "web")]))
        ));
    }

    fn pod(phase: &str, ready: Option<Timestamp>) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.to_owned()),
                conditions: ready.map(|t| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(t)),
                        ..PodCondition::default()
                    }]
                }),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn availability_waits_min_ready_seconds_after_readiness() {
        let now = Timestamp::now();
        let just = pod("Running", Some(now));
        assert!(is_running_and_ready(&just));
        assert!(is_available(&just, 0, now));
        assert!(!is_available(&just, 5, now));
        assert!(is_available(&just, 5, now + SignedDuration::from_secs(5)));
        assert!(!is_running_and_ready(&pod("Pending", Some(now))));
        assert!(!is_running_and_ready(&pod("Running", None)));
        assert!(is_pending(&Pod::default()));
        assert!(is_finished(&pod("Failed", None)));
    }
}
