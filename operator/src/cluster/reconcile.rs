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
use tracing::{info, warn};
use weir_broker::config::BrokerConfig;
use weir_controller::BrokerId;
use weir_controller::balance;

use super::build::{CLUSTER_LABEL, COMPONENT_LABEL, CONFIG_HASH_ANNOTATION, config_hash};
use super::scaling::{self, Scale};
use super::status::{Observed, observe};
use super::{InvalidSpec, Owned, ValidCluster, build, validate};
use crate::context::{Context, MANAGER};
use crate::crd::{Cluster, ConditionType, set_condition};
use crate::hosting::HostedPlane;

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
    // A scale-down below a topic's replication factor is refused before anything else
    // (the broker config may be invalid for that size too, but the topic is the reason).
    if let Some(message) = scale_down_blocked(&cluster, &ctx, &namespace, &name).await? {
        report_refusal(&cluster, &ctx, "ScaleDownBlocked", message).await?;
        return Ok(Action::requeue(REQUEUE_BUSY));
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
    let existing = statefulsets
        .get_opt(&valid.names.statefulset())
        .await
        .map_err(kube_error("reading the StatefulSet"))?;
    let previous_hash = existing.as_ref().and_then(template_hash);
    let wanted = valid.spec.brokers;
    let current = existing
        .as_ref()
        .and_then(|sts| sts.spec.as_ref()?.replicas)
        .unwrap_or(wanted);
    let scale = {
        let controller = plane.controller().lock().await;
        scaling::decide(wanted, current, controller.metadata())
    };
    // While draining or blocked the leaving brokers keep running: render them too.
    let rendered = scale.brokers(wanted, current);
    let valid = if rendered == wanted {
        valid
    } else {
        let mut larger = Cluster::clone(&cluster);
        larger.spec.brokers = rendered;
        validate(&larger, &ctx.defaults).unwrap_or(valid)
    };
    let overrides = act_on_scale(&cluster, &ctx, &plane, &scale, wanted).await?;
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
    let balanced = balanced_brokers(&cluster, &ctx, &plane, &scale, &observed, &pods).await?;
    write_status(
        &cluster,
        &ctx,
        &valid,
        &observed,
        &metadata.cluster_id,
        &overrides,
        &balanced,
    )
    .await?;
    let idle = observed.healthy() && observed.outdated.is_empty() && scale == Scale::Steady;
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

fn broker_list(brokers: &std::collections::BTreeSet<BrokerId>) -> String {
    let ids: Vec<String> = brokers.iter().map(|b| b.0.to_string()).collect();
    ids.join(", ")
}

/// Carries out a scale-down step (reassignments off the leaving brokers) and says what
/// the status must show for it.
async fn act_on_scale(
    cluster: &Cluster,
    ctx: &Context,
    plane: &HostedPlane,
    scale: &Scale,
    wanted: i32,
) -> Result<Vec<Override>, ReconcileError> {
    let object = cluster.object_ref(&());
    Ok(match scale {
        Scale::Steady => Vec::new(),
        Scale::Blocked { message } => {
            let already = cluster.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.reason == "ScaleDownBlocked")
            });
            if !already {
                ctx.event(&object, true, "ScaleDownBlocked", "Scale", message.clone())
                    .await;
            }
            [ConditionType::Ready, ConditionType::Degraded]
                .into_iter()
                .map(|type_| Override {
                    type_,
                    status: type_ == ConditionType::Degraded,
                    reason: "ScaleDownBlocked",
                    message: message.clone(),
                })
                .collect()
        }
        Scale::Draining {
            leaving,
            changes,
            partitions_left,
        } => {
            if !changes.is_empty() {
                let moved = changes.len();
                let results = plane
                    .controller()
                    .lock()
                    .await
                    .alter_reassignments(changes.clone())
                    .await
                    .map_err(|source| ReconcileError::Controller { source })?;
                for (partition, result) in results {
                    if let Err(e) = result {
                        warn!(topic = %partition.topic, partition = partition.partition, error = %e, "draining: reassignment refused");
                    }
                }
                ctx.event(
                    &object,
                    false,
                    "DrainingBrokers",
                    "Scale",
                    format!(
                        "moving {moved} partition(s) off broker(s) {} before scaling down to {wanted}",
                        broker_list(leaving)
                    ),
                )
                .await;
            }
            vec![Override {
                type_: ConditionType::Progressing,
                status: true,
                reason: "DrainingBrokers",
                message: format!(
                    "draining broker(s) {} before scaling down to {wanted}: {partitions_left} \
                     partition(s) still have replicas there",
                    broker_list(leaving)
                ),
            }]
        }
        Scale::Shrink { leaving } => {
            ctx.event(
                &object,
                false,
                "ScaledDown",
                "Scale",
                format!(
                    "broker(s) {} hold no replicas: scaling down to {wanted}",
                    broker_list(leaving)
                ),
            )
            .await;
            vec![Override {
                type_: ConditionType::Progressing,
                status: true,
                reason: "ScalingDown",
                message: format!("removing drained broker(s) {}", broker_list(leaving)),
            }]
        }
    })
}

/// After a scale change settles: unregisters brokers scaled away whose pods are gone,
/// starts the rebalance onto new brokers when one is due, and returns the brokers the
/// replicas are spread over (`status.balancedBrokers`).
async fn balanced_brokers(
    cluster: &Cluster,
    ctx: &Context,
    plane: &HostedPlane,
    scale: &Scale,
    observed: &Observed,
    pods: &[Pod],
) -> Result<Vec<i32>, ReconcileError> {
    let wanted = cluster.spec.brokers;
    let previous = cluster
        .status
        .as_ref()
        .map(|s| s.balanced_brokers.clone())
        .unwrap_or_default();
    if *scale != Scale::Steady {
        return Ok(previous);
    }
    let all: Vec<i32> = (0..wanted).collect();
    let names = super::Names::new(
        &cluster.name_any(),
        &cluster.namespace().unwrap_or_default(),
    );
    let mut controller = plane.controller().lock().await;
    let gone: Vec<BrokerId> = controller
        .metadata()
        .brokers
        .keys()
        .filter(|b| b.0 >= wanted && !pods.iter().any(|p| p.name_any() == names.pod(b.0)))
        .copied()
        .collect();
    for broker in gone {
        match controller.unregister_broker(broker).await {
            Ok(()) => {
                info!(cluster = %cluster.name_any(), %broker, "unregistered a broker scaled away")
            }
            Err(e) => {
                warn!(cluster = %cluster.name_any(), %broker, error = %e, "cannot unregister a broker scaled away yet")
            }
        }
    }
    let on_scale_up = cluster
        .spec
        .rebalance
        .as_ref()
        .is_some_and(|r| r.on_scale_up);
    if previous.is_empty() || !on_scale_up {
        return Ok(all);
    }
    if !scaling::rebalance_due(on_scale_up, wanted, &previous) {
        return Ok(previous.into_iter().filter(|b| *b < wanted).collect());
    }
    let reassigning = controller
        .metadata()
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .any(|p| p.is_reassigning());
    let registered = (0..wanted).all(|b| {
        controller
            .metadata()
            .brokers
            .get(&BrokerId(b))
            .is_some_and(|info| !info.fenced)
    });
    if !observed.healthy() || reassigning || !registered {
        return Ok(previous);
    }
    let brokers: Vec<BrokerId> = all.iter().map(|b| BrokerId(*b)).collect();
    let changes = balance::balance(controller.metadata(), &brokers);
    if !changes.is_empty() {
        let moved = changes.len();
        controller
            .alter_reassignments(changes)
            .await
            .map_err(|source| ReconcileError::Controller { source })?;
        drop(controller);
        ctx.event(
            &cluster.object_ref(&()),
            false,
            "Rebalancing",
            "Scale",
            format!(
                "moving {moved} replica(s) so brokers 0-{} hold an even share",
                wanted - 1
            ),
        )
        .await;
    }
    Ok(all)
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

/// A condition the scaling steps set over what the observation says.
struct Override {
    type_: ConditionType,
    status: bool,
    reason: &'static str,
    message: String,
}

#[allow(clippy::too_many_arguments)]
async fn write_status(
    cluster: &Cluster,
    ctx: &Context,
    valid: &ValidCluster,
    observed: &Observed,
    cluster_id: &str,
    overrides: &[Override],
    balanced: &[i32],
) -> Result<(), ReconcileError> {
    let generation = cluster.metadata.generation;
    let previous = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = now();
    let mut conditions = observed.conditions(&previous, generation, &now);
    for o in overrides {
        set_condition(
            &mut conditions,
            o.type_,
            o.status,
            o.reason,
            o.message.clone(),
            generation,
            &now,
        );
    }
    let patch = json!({"status": {
        "balancedBrokers": balanced,
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

/// Why a scale-down must wait: a topic's replication factor is above the new size.
async fn scale_down_blocked(
    cluster: &Cluster,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, ReconcileError> {
    let Some(plane) = ctx.hosting.get(namespace, name) else {
        return Ok(None);
    };
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
    let names = super::Names::new(name, namespace);
    let current = statefulsets
        .get_opt(&names.statefulset())
        .await
        .map_err(kube_error("reading the StatefulSet"))?
        .and_then(|sts| sts.spec?.replicas);
    let Some(current) = current.filter(|c| *c > cluster.spec.brokers) else {
        return Ok(None);
    };
    let controller = plane.controller().lock().await;
    Ok(
        match scaling::decide(cluster.spec.brokers, current, controller.metadata()) {
            Scale::Blocked { message } => Some(message),
            _ => None,
        },
    )
}

/// `Ready=False` and `Degraded=True` with the reason; an Event when the reason is new.
async fn report_invalid(
    cluster: &Cluster,
    ctx: &Context,
    invalid: &InvalidSpec,
) -> Result<(), ReconcileError> {
    report_refusal(cluster, ctx, invalid.reason(), invalid.to_string()).await
}

/// `Ready=False` and `Degraded=True` with `reason`; an Event when the reason is new.
async fn report_refusal(
    cluster: &Cluster,
    ctx: &Context,
    reason: &str,
    message: String,
) -> Result<(), ReconcileError> {
    let generation = cluster.metadata.generation;
    let mut conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let already = conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.reason == reason && c.observed_generation == generation);
    let now = now();
    set_condition(
        &mut conditions,
        ConditionType::Ready,
        false,
        reason,
        message.clone(),
        generation,
        &now,
    );
    set_condition(
        &mut conditions,
        ConditionType::Degraded,
        true,
        reason,
        message.clone(),
        generation,
        &now,
    );
    set_condition(
        &mut conditions,
        ConditionType::Progressing,
        false,
        reason,
        "waiting for a change to the spec",
        generation,
        &now,
    );
    let patch = json!({"status": {"observedGeneration": generation, "conditions": conditions}});
    patch_status(cluster, ctx, &patch).await?;
    if !already {
        ctx.event(&cluster.object_ref(&()), true, reason, "Validate", message)
            .await;
    }
    Ok(())
}
