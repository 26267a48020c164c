//! A minimal Deployment controller, enough to run an operator's Deployment from its Helm
//! chart: `replicas` pods from the template, owned by the Deployment directly (the real
//! one puts a ReplicaSet in between; there is none here), named
//! `<deployment>-<template hash>-<5 characters>` and labelled `pod-template-hash`. A
//! deleted or finished pod is replaced; a template change replaces the old pods at once
//! (no surge or unavailability budget). Status: replicas, ready, available, updated and
//! the `Available` condition.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::json;

use super::{hash_of, list_all, owned_by, pod_ready};

const HASH_LABEL: &str = "pod-template-hash";

pub(super) async fn reconcile_all(client: &Client) -> kube::Result<()> {
    let deployments: Vec<Deployment> = list_all(client).await?;
    if deployments.is_empty() {
        return Ok(());
    }
    let pods: Vec<Pod> = list_all(client).await?;
    for deployment in &deployments {
        if deployment.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Err(e) = reconcile(client, deployment, &pods).await {
            tracing::debug!(deployment = %deployment.name_any(), error = %e, "reconcile failed");
        }
    }
    Ok(())
}

/// Five characters of a pod name suffix, as `generateName` would pick.
fn suffix(seed: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..5)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[usize::try_from(x % ALPHABET.len() as u64).unwrap_or(0)] as char
        })
        .collect()
}

async fn reconcile(client: &Client, deployment: &Deployment, all_pods: &[Pod]) -> kube::Result<()> {
    let name = deployment.name_any();
    let namespace = deployment.namespace().unwrap_or_default();
    let uid = deployment.uid().unwrap_or_default();
    let Some(spec) = deployment.spec.as_ref() else {
        return Ok(());
    };
    let replicas = usize::try_from(spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
    let hash = hash_of(&spec.template);
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let owned: Vec<&Pod> = all_pods
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|p| owned_by(&p.metadata, &uid))
        .collect();
    let live: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Failed" | "Succeeded")
            )
        })
        .collect();
    let (current, old): (Vec<&Pod>, Vec<&Pod>) = live
        .iter()
        .partition(|p| p.labels().get(HASH_LABEL) == Some(&hash));
    // Replace old pods; keep `replicas` current ones.
    let extra = current.iter().skip(replicas);
    for pod in old.iter().chain(extra) {
        api.delete(&pod.name_any(), &DeleteParams::default())
            .await?;
    }
    let owner = deployment.controller_owner_ref(&());
    for i in current.len()..replicas {
        let mut meta = spec.template.metadata.clone().unwrap_or_default();
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default()
            .wrapping_add(i as u64);
        meta.name = Some(format!("{name}-{hash}-{}", suffix(seed)));
        meta.namespace = Some(namespace.clone());
        meta.owner_references = owner.clone().map(|o| vec![o]);
        let pod = Pod {
            metadata: meta,
            spec: spec.template.spec.clone(),
            status: None,
        };
        api.create(&PostParams::default(), &pod).await?;
    }
    let ready = i32::try_from(current.iter().filter(|p| pod_ready(p)).count()).unwrap_or(0);
    let count = i32::try_from(live.len()).unwrap_or(0);
    let updated = i32::try_from(current.len()).unwrap_or(0);
    let available = ready >= i32::try_from(replicas).unwrap_or(0).min(1);
    let status = json!({"status": {
        "observedGeneration": deployment.metadata.generation,
        "replicas": count,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "updatedReplicas": updated,
        "conditions": [{
            "type": "Available",
            "status": if available { "True" } else { "False" },
            "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
        }],
    }});
    let previous = deployment.status.as_ref();
    let unchanged = previous.is_some_and(|s| {
        s.observed_generation == deployment.metadata.generation
            && s.replicas == Some(count)
            && s.ready_replicas == Some(ready)
            && s.updated_replicas == Some(updated)
    });
    if !unchanged {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
        deployments
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
    }
    Ok(())
}
