//! The PersistentVolumeClaims of a StatefulSet: their names, what a new one looks like,
//! and which owner references the retention policy (KEP-1847) wants on them.
//!
//! Ownership is how retention works, as in Kubernetes: a claim that should go with the
//! StatefulSet (`whenDeleted: Delete`) names the set as a (non-controller) owner, and the
//! API server's garbage collector deletes it with the set; a claim of a pod scaled away
//! under `whenScaled: Delete` names that *pod* as owner instead (the set reference is
//! removed, else the set would keep it alive), so it goes when the pod is gone. `Retain`
//! is the absence of those references. The controller rewrites the references whenever
//! they disagree with the policy, so changing the policy applies to existing claims.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::plan::Set;

/// `persistentVolumeClaimRetentionPolicy`: `true` where the policy is `Delete` (both
/// default to `Retain`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Retention {
    pub(crate) when_deleted: bool,
    pub(crate) when_scaled: bool,
}

/// `<template>-<set>-<ordinal>`, the claim a pod of that ordinal mounts.
pub(crate) fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// The claim to create for `ordinal` from `template`: the template's metadata and spec,
/// labels plus the set's `matchLabels`, owners as the policy wants for a pod in range.
pub(crate) fn new_claim(
    set: &Set<'_>,
    template: &PersistentVolumeClaim,
    ordinal: i32,
) -> PersistentVolumeClaim {
    let template_name = template.metadata.name.clone().unwrap_or_default();
    let mut labels = template.metadata.labels.clone().unwrap_or_default();
    labels.extend(set.match_labels.clone());
    let owners = owners(&[], set, &set.pod_name(ordinal), None, false);
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(claim_name(&template_name, &set.name, ordinal)),
            namespace: Some(set.namespace.clone()),
            labels: Some(labels),
            annotations: template.metadata.annotations.clone(),
            owner_references: (!owners.is_empty()).then_some(owners),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// The owner references a claim of pod `pod_name` should have: `current` without the
/// references to the set or to that pod (matched by kind and name, so references to an
/// earlier incarnation go too) that the policy does not want, plus those it wants and
/// lacks. `pod_uid` is the pod's uid when it exists; `scaled_down` says whether its
/// ordinal is out of range. Equal to `current` when nothing needs to change.
pub(crate) fn owners(
    current: &[OwnerReference],
    set: &Set<'_>,
    pod_name: &str,
    pod_uid: Option<&str>,
    scaled_down: bool,
) -> Vec<OwnerReference> {
    let want_set = set.retention.when_deleted && !(set.retention.when_scaled && scaled_down);
    let want_pod = set.retention.when_scaled && scaled_down;
    let set_ref = OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: "StatefulSet".to_owned(),
        name: set.name.clone(),
        uid: set.uid.clone(),
        ..OwnerReference::default()
    };
    let pod_ref = pod_uid.map(|uid| OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        name: pod_name.to_owned(),
        uid: uid.to_owned(),
        ..OwnerReference::default()
    });
    let wanted: Vec<OwnerReference> = [want_set.then_some(set_ref), pod_ref.filter(|_| want_pod)]
        .into_iter()
        .flatten()
        .collect();
    let is_set = |r: &OwnerReference| r.kind == "StatefulSet" && r.name == set.name;
    let is_pod = |r: &OwnerReference| r.kind == "Pod" && r.name == pod_name;
    let mut result: Vec<OwnerReference> = current
        .iter()
        .filter(|r| !(is_set(r) || is_pod(r)) || wanted.iter().any(|w| w.uid == r.uid))
        .cloned()
        .collect();
    for w in wanted {
        if !result.iter().any(|r| r.uid == w.uid) {
            result.push(w);
        }
    }
    result
}

/// Under `whenScaled: Delete`, a claim that still names an earlier pod of the same name
/// as its owner is about to be collected with it: a new pod must not start on it.
pub(crate) fn is_stale(
    claim: &PersistentVolumeClaim,
    pod_name: &str,
    pod_uid: Option<&str>,
) -> bool {
    claim
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.kind == "Pod" && r.name == pod_name && Some(r.uid.as_str()) != pod_uid)
}

/// Bound (as a volume binder marks it): `status.phase: Bound`.
pub(crate) fn is_bound(claim: &PersistentVolumeClaim) -> bool {
    claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
}
