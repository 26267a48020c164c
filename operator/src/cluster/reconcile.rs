//! The `Cluster` reconciler: fetch → [`validate`] → [`build`] → apply (server-side apply,
//! StatefulSet last) → status, plus hosting the cluster's controller and, for a new
//! StatefulSet revision, restarting brokers one at a time ([`Observed::next_restart`]).
//!
//! An invalid spec sets `Ready=False` (and `Degraded=True`) with the reason and waits for
//! the next change; API errors requeue with per-object exponential backoff.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;
use tracing::info;
use weir_broker::config::BrokerConfig;

use super::build::{CLUSTER_LABEL, COMPONENT_LABEL, CONFIG_HASH_ANNOTATION, config_hash};
use super::status::{Observed, observe};
use super::{InvalidSpec, Owned, ValidCluster, build, validate};
use crate::context::{Context, MANAGER};
use crate::crd::{Cluster, ConditionType, set_condition};

/// How soon a cluster that is not yet healthy, or is rolling, is looked at again.
const REQUEUE_BUSY: Duration = Duration::from_secs(5);
/// How often a healthy cluster's status is refreshed.
const REQUEUE_IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API error on {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("the cluster's controller failed: {source}")]
    Controller {
        #[source]
        source: weir_controller::ControllerError,
    },
    #[error("the Cluster has no uid yet")]
    NoUid,
}

impl ReconcileError {
    /// A short label for the error metric.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Kube { .. } => "KubernetesApi",
            ReconcileError::Controller { .. } => "Controller",
            ReconcileError::NoUid => "NoUid",
        }
    }
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ReconcileError {
    let what = what.into();
    move |source| ReconcileError::Kube { what, source }
}

fn now() -> Time {
    Time(Timestamp::now())
}

pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    if cluster.metadata.deletion_timestamp.is_some() {
        // Owned objects go with the Cluster (ownerReferences); its controller goes now.
        ctx.hosting.stop(&namespace, &name);
        return Ok(Action::await_change());
    }
    let valid = match validate(&cluster, &ctx.defaults) {
        Ok(valid) => valid,
        Err(invalid) => {
            report_invalid(&cluster, &ctx, &invalid).await?;
            return Ok(Action::await_change());
        }
    };
    let mut broker_config = BrokerConfig::default();
    // Validate parsed these settings already.
    let _ = broker_config.apply(&valid.shared_settings);
    let plane = ctx
        .hosting
        .ensure(&namespace, &name, broker_config.controller_config())
        .await
        .map_err(|source| ReconcileError::Controller { source })?;
    let owner = cluster
        .controller_owner_ref(&())
        .ok_or(ReconcileError::NoUid)?;
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let previous_hash = statefulsets
        .get_opt(&valid.names.statefulset())
        .await
        .map_err(kube_error("reading the StatefulSet"))?
        .and_then(|sts| template_hash(&sts));
    let objects = build(&valid, &owner);
    for owned in objects.in_apply_order() {
        apply(&ctx, &namespace, &owned).await?;
    }
    let hash = config_hash(&valid);
    if previous_hash.as_deref() != Some(hash.as_str()) {
        let (reason, note) = match previous_hash {
            None => (
                "Created",
                format!(
                    "created {} brokers' StatefulSet, Services and config",
                    valid.spec.brokers
                ),
            ),
            Some(old) => (
                "ConfigChanged",
                format!("broker config revision {old} → {hash}; brokers restart one at a time"),
            ),
        };
        ctx.event(&cluster.object_ref(&()), false, reason, "Apply", note)
            .await;
    }

    let statefulset = statefulsets
        .get_opt(&valid.names.statefulset())
        .await
        .map_err(kube_error("reading the StatefulSet"))?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = format!("{CLUSTER_LABEL}={name},{COMPONENT_LABEL}=broker");
    let pods = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kube_error("listing the broker pods"))?
        .items;
    let metadata = plane.controller().lock().await.metadata().clone();
    let observed = observe(
        &valid.names,
        valid.spec.brokers,
        statefulset.as_ref(),
        &pods,
        Some(&metadata),
    );
    if let Some(pod) = observed.next_restart() {
        restart(&cluster, &ctx, &namespace, pod).await?;
    }
    write_status(&cluster, &ctx, &valid, &observed, &metadata.cluster_id).await?;
    let idle = observed.healthy() && observed.outdated.is_empty();
    Ok(Action::requeue(if idle {
        REQUEUE_IDLE
    } else {
        REQUEUE_BUSY
    }))
}

/// The config revision a StatefulSet's pod template carries.
fn template_hash(statefulset: &StatefulSet) -> Option<String> {
    statefulset
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(CONFIG_HASH_ANNOTATION)
        .cloned()
}

/// Server-side applies one owned object as [`MANAGER`], taking over fields others set.
async fn apply(ctx: &Context, namespace: &str, owned: &Owned) -> Result<(), ReconcileError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), namespace, &owned.resource);
    let name = owned.object.name_any();
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&owned.object),
    )
    .await
    .map_err(kube_error(format!(
        "applying {} {name}",
        owned.resource.kind
    )))?;
    Ok(())
}

/// Deletes a broker pod for the rolling update; the StatefulSet recreates it on the new
/// revision, and the broker moves its leadership away on SIGTERM first.
async fn restart(
    cluster: &Cluster,
    ctx: &Context,
    namespace: &str,
    pod: &str,
) -> Result<(), ReconcileError> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    info!(cluster = %cluster.name_any(), pod, "restarting a broker for the new revision");
    pods.delete(pod, &DeleteParams::default())
        .await
        .map_err(kube_error(format!("deleting pod {pod}")))?;
    ctx.event(
        &cluster.object_ref(&()),
        false,
        "RestartingBroker",
        "RollingRestart",
        format!("restarting {pod}: every broker is in sync and {pod} runs an old revision"),
    )
    .await;
    Ok(())
}

async fn write_status(
    cluster: &Cluster,
    ctx: &Context,
    valid: &ValidCluster,
    observed: &Observed,
    cluster_id: &str,
) -> Result<(), ReconcileError> {
    let generation = cluster.metadata.generation;
    let previous = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let conditions = observed.conditions(&previous, generation, &now());
    let patch = json!({"status": {
        "observedGeneration": generation,
        "conditions": conditions,
        "readyBrokers": observed.ready_brokers,
        "brokers": observed.brokers,
        "underReplicatedPartitions": observed.under_replicated_partitions,
        "controllerEndpoint": ctx.defaults.controller_address,
        "bootstrapServers": valid.names.bootstrap_servers(),
        "clusterId": cluster_id,
    }});
    patch_status(cluster, ctx, &patch).await
}

async fn patch_status(
    cluster: &Cluster,
    ctx: &Context,
    patch: &serde_json::Value,
) -> Result<(), ReconcileError> {
    let api: Api<Cluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    api.patch_status(
        &cluster.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map_err(kube_error("writing the Cluster status"))?;
    Ok(())
}

/// `Ready=False` and `Degraded=True` with the reason; an Event when the reason is new.
async fn report_invalid(
    cluster: &Cluster,
    ctx: &Context,
    invalid: &InvalidSpec,
) -> Result<(), ReconcileError> {
    let generation = cluster.metadata.generation;
    let mut conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let already = conditions.iter().any(|c| {
        c.type_ == "Ready" && c.reason == invalid.reason() && c.observed_generation == generation
    });
    let message = invalid.to_string();
    let now = now();
    set_condition(
        &mut conditions,
        ConditionType::Ready,
        false,
        invalid.reason(),
        message.clone(),
        generation,
        &now,
    );
    set_condition(
        &mut conditions,
        ConditionType::Degraded,
        true,
        invalid.reason(),
        message.clone(),
        generation,
        &now,
    );
    set_condition(
        &mut conditions,
        ConditionType::Progressing,
        false,
        "InvalidSpec",
        "waiting for a valid spec",
        generation,
        &now,
    );
    let patch = json!({"status": {"observedGeneration": generation, "conditions": conditions}});
    patch_status(cluster, ctx, &patch).await?;
    if !already {
        ctx.event(
            &cluster.object_ref(&()),
            true,
            invalid.reason(),
            "Validate",
            message,
        )
        .await;
    }
    Ok(())
}
