//! The StatefulSet controller, as far as Weir's operator depends on it:
//!
//! - Pods `<sts>-<ordinal>` for ordinals `0..replicas` from the pod template, owned by the
//!   StatefulSet, with `hostname`/`subdomain` (their DNS identity through the governing
//!   Service) and the labels `statefulset.kubernetes.io/pod-name`,
//!   `apps.kubernetes.io/pod-index` and `controller-revision-hash`.
//! - Revisions: `<sts>-<hash of the template>`; `status.updateRevision` is the current
//!   template's, `status.currentRevision` moves to it once every pod runs it.
//! - `podManagementPolicy`: `Parallel` creates and deletes pods all at once; `OrderedReady`
//!   creates ordinal N only when 0..N-1 are Ready and removes the highest ordinal first.
//! - `updateStrategy`: `OnDelete` never replaces a pod; a deleted one comes back on the
//!   update revision. `RollingUpdate` (honouring `partition`) deletes the highest-ordinal
//!   pod not on the update revision once every pod is Ready, one at a time.
//! - A pod is recreated only once the old object is gone (a terminating pod is waited
//!   for); a `Failed` or `Succeeded` pod is deleted to be recreated.
//! - `volumeClaimTemplates`: PVC `<template>-<sts>-<ordinal>` created before the pod, never
//!   changed after, `Bound` at once; the pod mounts it. `persistentVolumeClaimRetentionPolicy`
//!   (KEP-1847): `whenDeleted: Delete` gives the PVCs an owner reference to the StatefulSet,
//!   so the garbage collector deletes them with it; `whenScaled: Delete` deletes a
//!   scaled-away ordinal's PVCs once its pod is gone (the real controller does it through
//!   an owner reference to the pod; the outcome is the same). Both default to `Retain`.
//!
//! Not done: ControllerRevision objects, `minReadySeconds`, `maxUnavailable`, `ordinals.start`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::json;

use super::{hash_of, list_all, owned_by, pod_ready};

pub(crate) const REVISION_LABEL: &str = "controller-revision-hash";

pub(super) async fn reconcile_all(client: &Client) -> kube::Result<()> {
    let statefulsets: Vec<StatefulSet> = list_all(client).await?;
    if statefulsets.is_empty() {
        return Ok(());
    }
    let pods: Vec<Pod> = list_all(client).await?;
    let claims: Vec<PersistentVolumeClaim> = list_all(client).await?;
    for sts in &statefulsets {
        if sts.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Err(e) = reconcile(client, sts, &pods, &claims).await {
            tracing::debug!(statefulset = %sts.name_any(), error = %e, "reconcile failed");
        }
    }
    Ok(())
}

fn ordinal_of(sts: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(sts)?.strip_prefix('-')?.parse().ok()
}

async fn reconcile(
    client: &Client,
    sts: &StatefulSet,
    all_pods: &[Pod],
    all_claims: &[PersistentVolumeClaim],
) -> kube::Result<()> {
    let name = sts.name_any();
    let namespace = sts.namespace().unwrap_or_default();
    let uid = sts.uid().unwrap_or_default();
    let Some(spec) = sts.spec.as_ref() else {
        return Ok(());
    };
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let revision = format!("{name}-{}", hash_of(&spec.template));
    let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
    let on_delete = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete");
    let retention = spec.persistent_volume_claim_retention_policy.as_ref();
    let delete_with_sts = retention.and_then(|r| r.when_deleted.as_deref()) == Some("Delete");
    let delete_when_scaled = retention.and_then(|r| r.when_scaled.as_deref()) == Some("Delete");
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);

    let pods: BTreeMap<i32, &Pod> = all_pods
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|p| owned_by(&p.metadata, &uid))
        .filter_map(|p| Some((ordinal_of(&name, &p.name_any())?, p)))
        .collect();
    let claims: BTreeSet<String> = all_claims
        .iter()
        .filter(|c| c.namespace().as_deref() == Some(namespace.as_str()))
        .map(|c| c.name_any())
        .collect();
    let templates = spec.volume_claim_templates.clone().unwrap_or_default();
    let owner = sts
        .controller_owner_ref(&())
        .unwrap_or_else(|| OwnerReference {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            name: name.clone(),
            uid: uid.clone(),
            ..OwnerReference::default()
        });

    // Create: claims first, then the pod, for each missing ordinal.
    for ordinal in 0..replicas {
        if pods.contains_key(&ordinal) {
            continue;
        }
        if !parallel && !(0..ordinal).all(|o| pods.get(&o).is_some_and(|p| pod_ready(p))) {
            break;
        }
        let pod_name = format!("{name}-{ordinal}");
        let mut volumes = Vec::new();
        for template in &templates {
            let template_name = template.name_any();
            let claim_name = format!("{template_name}-{name}-{ordinal}");
            if !claims.contains(&claim_name) {
                let mut labels = template.metadata.labels.clone().unwrap_or_default();
                if let Some(selector) = spec.selector.match_labels.as_ref() {
                    labels.extend(selector.clone());
                }
                let claim = PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some(claim_name.clone()),
                        namespace: Some(namespace.clone()),
                        labels: Some(labels),
                        annotations: template.metadata.annotations.clone(),
                        owner_references: delete_with_sts.then(|| {
                            vec![OwnerReference {
                                controller: Some(false),
                                ..owner.clone()
                            }]
                        }),
                        ..ObjectMeta::default()
                    },
                    spec: template.spec.clone(),
                    status: None,
                };
                let created = claims_api.create(&PostParams::default(), &claim).await?;
                let bound = json!({"status": {"phase": "Bound"}});
                claims_api
                    .patch_status(
                        &created.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&bound),
                    )
                    .await?;
            }
            volumes.push(Volume {
                name: template_name,
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name,
                    read_only: None,
                }),
                ..Volume::default()
            });
        }
        let mut meta = spec.template.metadata.clone().unwrap_or_default();
        let labels = meta.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(
            "statefulset.kubernetes.io/pod-name".into(),
            pod_name.clone(),
        );
        labels.insert("apps.kubernetes.io/pod-index".into(), ordinal.to_string());
        labels.insert(REVISION_LABEL.into(), revision.clone());
        meta.name = Some(pod_name.clone());
        meta.namespace = Some(namespace.clone());
        meta.owner_references = Some(vec![owner.clone()]);
        let mut pod_spec = spec.template.spec.clone().unwrap_or_default();
        pod_spec.hostname = Some(pod_name.clone());
        pod_spec.subdomain = Some(spec.service_name.clone().unwrap_or_default());
        let mut all_volumes = pod_spec.volumes.take().unwrap_or_default();
        all_volumes.retain(|v| volumes.iter().all(|c| c.name != v.name));
        all_volumes.extend(volumes);
        pod_spec.volumes = Some(all_volumes);
        let pod = Pod {
            metadata: meta,
            spec: Some(pod_spec),
            status: None,
        };
        match pods_api.create(&PostParams::default(), &pod).await {
            Ok(_) => {}
            // The old pod is still being removed; next pass.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
        if !parallel {
            break;
        }
    }

    // Finished pods are replaced.
    for pod in pods.values() {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Failed" | "Succeeded"))
            && pod.metadata.deletion_timestamp.is_none()
        {
            pods_api
                .delete(&pod.name_any(), &DeleteParams::default())
                .await?;
        }
    }

    // Scale down: the highest ordinals go (all at once when Parallel).
    let condemned: Vec<&&Pod> = pods.range(replicas..).rev().map(|(_, p)| p).collect();
    for pod in &condemned {
        if pod.metadata.deletion_timestamp.is_none() {
            pods_api
                .delete(&pod.name_any(), &DeleteParams::default())
                .await?;
        }
        if !parallel {
            break;
        }
    }
    if delete_when_scaled {
        for claim in &claims {
            let scaled_away = templates.iter().any(|t| {
                claim
                    .strip_prefix(&format!("{}-{name}-", t.name_any()))
                    .and_then(|o| o.parse::<i32>().ok())
                    .is_some_and(|o| o >= replicas && !pods.contains_key(&o))
            });
            if scaled_away {
                claims_api.delete(claim, &DeleteParams::default()).await?;
            }
        }
    }

    // Rolling update: one outdated pod at a time, once all are Ready.
    let current: Vec<&Pod> = pods.range(..replicas).map(|(_, p)| *p).collect();
    let revision_of = |p: &Pod| p.labels().get(REVISION_LABEL).cloned();
    if !on_delete && current.len() == usize::try_from(replicas).unwrap_or(0) {
        let partition = spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0);
        if current.iter().all(|p| pod_ready(p)) {
            let outdated = pods
                .range(partition..replicas)
                .rev()
                .find(|(_, p)| revision_of(p).as_deref() != Some(revision.as_str()));
            if let Some((_, pod)) = outdated {
                pods_api
                    .delete(&pod.name_any(), &DeleteParams::default())
                    .await?;
            }
        }
    }

    // Status.
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(pods.values().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let ready = count(&|p| pod_ready(p));
    let updated = count(&|p| revision_of(p).as_deref() == Some(revision.as_str()));
    let previous = sts.status.clone().unwrap_or_default();
    let current_revision = if updated == replicas && pods.len() == current.len() {
        revision.clone()
    } else {
        previous
            .current_revision
            .clone()
            .unwrap_or_else(|| revision.clone())
    };
    let status = StatefulSetStatus {
        observed_generation: sts.metadata.generation,
        replicas: i32::try_from(pods.len()).unwrap_or(i32::MAX),
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        current_replicas: Some(if current_revision == revision {
            updated
        } else {
            i32::try_from(pods.len()).unwrap_or(0) - updated
        }),
        updated_replicas: Some(updated),
        current_revision: Some(current_revision),
        update_revision: Some(revision),
        collision_count: Some(0),
        conditions: None,
    };
    if sts.status.as_ref() != Some(&status) {
        let api: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await?;
    }
    Ok(())
}
