//! Unit tests of the StatefulSet plan and claim ownership: the decisions without a server.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, Pod, PodCondition, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::claims;
use super::plan::{Plan, Set, Step, new_pod, plan};

fn set(
    replicas: i32,
    policy: &str,
    strategy: serde_json::Value,
    retention: (&str, &str),
) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid", "generation": 4},
        "spec": {
            "replicas": replicas,
            "serviceName": "svc",
            "selector": {"matchLabels": {"app": "web"}},
            "podManagementPolicy": policy,
            "updateStrategy": strategy,
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": retention.0, "whenScaled": retention.1},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}],
        },
    }))
    .unwrap()
}

fn on_delete() -> serde_json::Value {
    json!({"type": "OnDelete"})
}

/// Pod `ordinal` of `view` as stored, Running and Ready when `ready`.
fn stored_pod(view: &Set<'_>, ordinal: i32, ready: bool) -> Pod {
    let mut pod = new_pod(view, ordinal, &view.update);
    pod.metadata.uid = Some(format!("pod-uid-{ordinal}"));
    pod.status = Some(PodStatus {
        phase: Some(if ready { "Running" } else { "Pending" }.into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            last_transition_time: Some(Time(Timestamp::UNIX_EPOCH)),
            ..PodCondition::default()
        }]),
        ..PodStatus::default()
    });
    pod
}

fn claims_of(view: &Set<'_>, ordinals: &[i32]) -> BTreeMap<String, PersistentVolumeClaim> {
    ordinals
        .iter()
        .map(|o| {
            let mut claim = claims::new_claim(view, &view.claim_templates[0], *o);
            claim.metadata.uid = Some(format!("claim-uid-{o}"));
            claim.status = Some(k8s_openapi::api::core::v1::PersistentVolumeClaimStatus {
                phase: Some("Bound".into()),
                ..Default::default()
            });
            (claim.metadata.name.clone().unwrap(), claim)
        })
        .collect()
}

/// The steps as short strings: `+claim data-web-0`, `+pod web-1`, `-pod web-2`, ...
fn summary(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| match s {
            Step::CreateClaim(c) => format!("+claim {}", c.metadata.name.as_deref().unwrap()),
            Step::BindClaim { name, .. } => format!("bind {name}"),
            Step::SetClaimOwners { name, owners, .. } => format!(
                "owners {name} {:?}",
                owners.iter().map(|o| o.kind.as_str()).collect::<Vec<_>>()
            ),
            Step::CreatePod(p) => format!("+pod {}", p.metadata.name.as_deref().unwrap()),
            Step::DeletePod { name, .. } => format!("-pod {name}"),
        })
        .collect()
}

#[test]
fn parallel_creates_every_missing_pod_after_its_claims_and_ordered_ready_only_the_first() {
    let parallel = set(2, "Parallel", on_delete(), ("Retain", "Retain"));
    let view = Set::new(&parallel, None).unwrap();
    let p = plan(&view, &[], &BTreeMap::new(), Timestamp::now());
    assert_eq!(
        summary(&p),
        [
            "+claim data-web-0",
            "+pod web-0",
            "+claim data-web-1",
            "+pod web-1"
        ]
    );
    assert_eq!(p.status.replicas, 0);
    assert_eq!(p.status.observed_generation, Some(4));
    assert_eq!(p.status.update_revision, p.status.current_revision);

    let ordered = set(3, "OrderedReady", on_delete(), ("Retain", "Retain"));
    let view = Set::new(&ordered, None).unwrap();
    let claims = claims_of(&view, &[0, 1, 2]);
    let none = plan(&view, &[], &claims, Timestamp::now());
    assert_eq!(summary(&none), ["+pod web-0"], "claims exist: only the pod");
    let waiting = plan(
        &view,
        &[stored_pod(&view, 0, false)],
        &claims,
        Timestamp::now(),
    );
    assert!(
        summary(&waiting).is_empty(),
        "web-1 waits for web-0 to be ready"
    );
    let ready = plan(
        &view,
        &[stored_pod(&view, 0, true)],
        &claims,
        Timestamp::now(),
    );
    assert_eq!(summary(&ready), ["+pod web-1"]);
}

#[test]
fn ordered_ready_scales_down_from_the_top_one_at_a_time() {
    let ordered = set(1, "OrderedReady", on_delete(), ("Retain", "Retain"));
    let view = Set::new(&ordered, None).unwrap();
    let claims = claims_of(&view, &[0, 1, 2]);
    let mut pods: Vec<Pod> = (0..3).map(|o| stored_pod(&view, o, true)).collect();
    assert_eq!(
        summary(&plan(&view, &pods, &claims, Timestamp::now())),
        ["-pod web-2"]
    );
    pods[2].metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    assert!(summary(&plan(&view, &pods, &claims, Timestamp::now())).is_empty());
    pods.pop();
    assert_eq!(
        summary(&plan(&view, &pods, &claims, Timestamp::now())),
        ["-pod web-1"]
    );
    // Parallel: all condemned pods at once.
    let parallel = set(1, "Parallel", on_delete(), ("Retain", "Retain"));
    let view = Set::new(&parallel, None).unwrap();
    let pods: Vec<Pod> = (0..3).map(|o| stored_pod(&view, o, false)).collect();
    assert_eq!(
        summary(&plan(&view, &pods, &claims, Timestamp::now())),
        ["-pod web-2", "-pod web-1"]
    );
}

#[test]
fn rolling_update_deletes_the_highest_outdated_pod_at_or_above_the_partition() {
    let old = set(
        3,
        "Parallel",
        json!({"type": "RollingUpdate"}),
        ("Retain", "Retain"),
    );
    let old_view = Set::new(&old, None).unwrap();
    let mut pods: Vec<Pod> = (0..3).map(|o| stored_pod(&old_view, o, true)).collect();
    let mut new = set(
        3,
        "Parallel",
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}),
        ("Retain", "Retain"),
    );
    new.spec
        .as_mut()
        .unwrap()
        .template
        .metadata
        .as_mut()
        .unwrap()
        .annotations = Some([("v".to_owned(), "2".to_owned())].into());
    new.status = Some(k8s_openapi::api::apps::v1::StatefulSetStatus {
        current_revision: Some(old_view.update.name.clone()),
        ..Default::default()
    });
    let old_template: PodTemplateSpec = old.spec.as_ref().unwrap().template.clone();
    let view = Set::new(&new, Some(&old_template)).unwrap();
    assert_ne!(view.update.name, old_view.update.name);
    let claims = claims_of(&view, &[0, 1, 2]);
    assert_eq!(
        summary(&plan(&view, &pods, &claims, Timestamp::now())),
        ["-pod web-2"]
    );

    // web-2 recreated on the new revision but not ready: web-1 waits.
    pods[2] = stored_pod(&view, 2, false);
    assert!(summary(&plan(&view, &pods, &claims, Timestamp::now())).is_empty());
    pods[2] = stored_pod(&view, 2, true);
    let p = plan(&view, &pods, &claims, Timestamp::now());
    assert_eq!(summary(&p), ["-pod web-1"]);
    assert_eq!(p.status.updated_replicas, Some(1));
    assert_eq!(
        p.status.current_revision.as_deref(),
        Some(old_view.update.name.as_str())
    );

    // web-0 is below the partition: never deleted, and recreated on the current revision.
    pods[1] = stored_pod(&view, 1, true);
    assert!(summary(&plan(&view, &pods, &claims, Timestamp::now())).is_empty());
    pods.remove(0);
    let p = plan(&view, &pods, &claims, Timestamp::now());
    let Some(Step::CreatePod(web0)) = p.steps.first() else {
        panic!("web-0 recreated: {:?}", summary(&p));
    };
    let labels = web0.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["controller-revision-hash"], old_view.update.name);
    assert!(
        web0.metadata.annotations.is_none(),
        "built from the old template"
    );
}

#[test]
fn claim_owners_follow_the_retention_policy() {
    let kinds =
        |owners: Vec<OwnerReference>| owners.into_iter().map(|o| o.kind).collect::<Vec<_>>();
    for (policy, in_range, scaled_down) in [
        (("Retain", "Retain"), vec![], vec![]),
        (
            ("Delete", "Retain"),
            vec!["StatefulSet"],
            vec!["StatefulSet"],
        ),
        (("Retain", "Delete"), vec![], vec!["Pod"]),
        (("Delete", "Delete"), vec!["StatefulSet"], vec!["Pod"]),
    ] {
        let s = set(1, "Parallel", on_delete(), policy);
        let view = Set::new(&s, None).unwrap();
        let foreign = OwnerReference {
            kind: "Thing".into(),
            uid: "other".into(),
            ..OwnerReference::default()
        };
        let stale_set = OwnerReference {
            kind: "StatefulSet".into(),
            name: "web".into(),
            uid: "older-incarnation".into(),
            ..OwnerReference::default()
        };
        let current = [foreign.clone(), stale_set];
        let got = claims::owners(&current, &view, "web-0", Some("pod-uid"), false);
        assert_eq!(got[0], foreign, "{policy:?}: other owners are kept");
        assert_eq!(kinds(got[1..].to_vec()), in_range, "{policy:?} in range");
        let got = claims::owners(&current, &view, "web-0", Some("pod-uid"), true);
        assert_eq!(
            kinds(got[1..].to_vec()),
            scaled_down,
            "{policy:?} scaled down"
        );
        assert!(got.iter().all(|o| o.controller.is_none()));
        // Stable: what it asks for is what it then finds.
        assert_eq!(
            claims::owners(&got, &view, "web-0", Some("pod-uid"), true),
            got
        );
    }
}

#[test]
fn a_claim_still_owned_by_a_previous_pod_blocks_the_new_pod_under_when_scaled_delete() {
    let s = set(1, "Parallel", on_delete(), ("Retain", "Delete"));
    let view = Set::new(&s, None).unwrap();
    let mut claims = claims_of(&view, &[0]);
    let claim = claims.get_mut("data-web-0").unwrap();
    claim.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: "web-0".into(),
        uid: "gone-pod".into(),
        ..OwnerReference::default()
    }]);
    assert!(summary(&plan(&view, &[], &claims, Timestamp::now())).is_empty());
    claims
        .get_mut("data-web-0")
        .unwrap()
        .metadata
        .owner_references = None;
    assert_eq!(
        summary(&plan(&view, &[], &claims, Timestamp::now())),
        ["+pod web-0"]
    );
}

#[test]
fn ordinals_start_where_spec_ordinals_says_and_names_must_be_canonical() {
    let mut s = set(2, "Parallel", on_delete(), ("Retain", "Retain"));
    s.spec.as_mut().unwrap().ordinals =
        Some(k8s_openapi::api::apps::v1::StatefulSetOrdinals { start: Some(5) });
    let view = Set::new(&s, None).unwrap();
    let p = plan(&view, &[], &claims_of(&view, &[5, 6]), Timestamp::now());
    assert_eq!(summary(&p), ["+pod web-5", "+pod web-6"]);
    let mut odd = stored_pod(&view, 5, true);
    odd.metadata.name = Some("web-05".into());
    assert_eq!(view.ordinal_of(&odd), None);
    odd.metadata.name = Some("web-x".into());
    assert_eq!(view.ordinal_of(&odd), None);
}
