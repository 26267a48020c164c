//! The `Topic` reconciler: fetch (the Topic, its Cluster, the committed topic from the
//! hosted controller) → [`plan`] (pure) → apply (controller calls) → status.
//!
//! Deletion goes through the [`FINALIZER`]: with `deletionPolicy: Delete` the Kafka topic
//! is deleted first; with `Retain` it stays (and reappears as a Topic resource labelled
//! as created through the Kafka API, since every topic of a cluster has one). The
//! finalizer is released at once when the Cluster is gone or going, so deleting a
//! namespace never hangs.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use serde_json::json;
use tracing::info;
use weir_controller::metadata::TopicMetadata;
use weir_controller::{
    BrokerId, ConfigChange, ControlPlane, ControllerError, PartitionRef, ReassignmentChange,
    TopicRef,
};

use super::plan::{Step, plan};
use crate::context::Context;
use crate::crd::{Cluster, ConditionType, DeletionPolicy, Topic, set_condition};
use crate::hosting::HostedPlane;
use crate::kube_store::is_kafka_api;

/// Held by every `Topic` until its Kafka topic is dealt with.
pub const FINALIZER: &str = "weir.dev/topic";

const REQUEUE_WAITING: Duration = Duration::from_secs(5);
const REQUEUE_IDLE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("Kubernetes API error on {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("the controller of Cluster {cluster} is not running here yet")]
    ControllerNotReady { cluster: String },
    #[error("the controller refused: {source}")]
    Controller {
        #[source]
        source: ControllerError,
    },
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl TopicError {
    pub fn reason(&self) -> &'static str {
        match self {
            TopicError::Kube { .. } => "KubernetesApi",
            TopicError::ControllerNotReady { .. } => "ControllerNotReady",
            TopicError::Controller { .. } => "Controller",
            TopicError::Finalizer(_) => "Finalizer",
        }
    }
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> TopicError {
    let what = what.into();
    move |source| TopicError::Kube { what, source }
}

pub async fn reconcile(topic: Arc<Topic>, ctx: Arc<Context>) -> Result<Action, TopicError> {
    let namespace = topic.namespace().unwrap_or_default();
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, topic, |event| async {
        match event {
            Event::Apply(topic) => apply(&topic, &ctx).await,
            Event::Cleanup(topic) => cleanup(&topic, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => TopicError::Finalizer(other.to_string()),
    })
}

/// The Cluster the topic names, unless it is gone or being deleted.
async fn live_cluster(topic: &Topic, ctx: &Context) -> Result<Option<Cluster>, TopicError> {
    let api: Api<Cluster> =
        Api::namespaced(ctx.client.clone(), &topic.namespace().unwrap_or_default());
    let cluster = api
        .get_opt(&topic.spec.cluster)
        .await
        .map_err(kube_error(format!(
            "reading Cluster {}",
            topic.spec.cluster
        )))?;
    Ok(cluster.filter(|c| c.metadata.deletion_timestamp.is_none()))
}

async fn apply(topic: &Topic, ctx: &Context) -> Result<Action, TopicError> {
    let namespace = topic.namespace().unwrap_or_default();
    if live_cluster(topic, ctx).await?.is_none() {
        let message = format!(
            "Cluster {} does not exist in namespace {namespace}",
            topic.spec.cluster
        );
        write_status(topic, ctx, false, "ClusterNotFound", message).await?;
        return Ok(Action::requeue(REQUEUE_WAITING * 6));
    }
    let Some(plane) = ctx.hosting.get(&namespace, &topic.spec.cluster) else {
        write_status(
            topic,
            ctx,
            false,
            "ControllerNotReady",
            "waiting for the cluster's controller".to_owned(),
        )
        .await?;
        return Ok(Action::requeue(REQUEUE_WAITING));
    };
    let name = topic.topic_name().to_owned();
    let (committed, brokers) = snapshot(&plane, &name).await;
    // A topic made through the Kafka API is managed through it; its spec mirrors Kafka
    // (see `kube_store`). Removing the origin label hands it to this reconciler.
    let steps = if is_kafka_api(topic) {
        Ok(Vec::new())
    } else {
        plan(&name, &topic.spec, committed.as_ref(), &brokers)
    };
    let steps = match steps {
        Ok(steps) => steps,
        Err(unreachable) => {
            write_status(
                topic,
                ctx,
                false,
                unreachable.reason(),
                unreachable.to_string(),
            )
            .await?;
            return Ok(Action::requeue(REQUEUE_WAITING * 6));
        }
    };
    for step in steps {
        if let Err(source) = run(&plane, &name, step).await {
            // Kafka's own answer (not enough brokers, an invalid config value, …).
            write_status(topic, ctx, false, "ControllerRefused", source.to_string()).await?;
            return Ok(Action::requeue(REQUEUE_WAITING * 6));
        }
    }
    let (committed, _) = snapshot(&plane, &name).await;
    let Some(committed) = committed else {
        write_status(
            topic,
            ctx,
            false,
            "Creating",
            "the topic is being created".to_owned(),
        )
        .await?;
        return Ok(Action::requeue(REQUEUE_WAITING));
    };
    let offline = committed
        .partitions
        .iter()
        .filter(|p| p.leader.is_none())
        .count();
    let under = committed
        .partitions
        .iter()
        .filter(|p| p.isr.len() < p.replicas.len() - p.adding_replicas.len())
        .count();
    let reassigning = committed.partitions.iter().any(|p| p.is_reassigning());
    let (ready, reason, message) = if offline > 0 {
        (
            false,
            "OfflinePartitions",
            format!("{offline} partition(s) have no leader"),
        )
    } else if reassigning {
        let message = "replicas are moving to the specified replication factor";
        (false, "Reassigning", message.to_owned())
    } else {
        let message = format!(
            "{} partition(s), replication factor {}",
            committed.partitions.len(),
            committed.replication_factor()
        );
        (true, "Ready", message)
    };
    let degraded = if offline > 0 {
        (
            true,
            "OfflinePartitions",
            format!("{offline} partition(s) have no leader"),
        )
    } else if under > 0 {
        (
            true,
            "UnderReplicatedPartitions",
            format!("{under} partition(s) are under-replicated"),
        )
    } else {
        (
            false,
            "AsExpected",
            "every partition has a leader and a full ISR".to_owned(),
        )
    };
    write_status_with(topic, ctx, (ready, reason, message), Some(degraded)).await?;
    Ok(Action::requeue(if ready {
        REQUEUE_IDLE
    } else {
        REQUEUE_WAITING
    }))
}

/// The committed topic and the registered, unfenced brokers.
async fn snapshot(plane: &HostedPlane, name: &str) -> (Option<TopicMetadata>, Vec<BrokerId>) {
    let controller = plane.controller().lock().await;
    let metadata = controller.metadata();
    let brokers = metadata
        .brokers
        .values()
        .filter(|b| b.is_live())
        .map(|b| b.id)
        .collect();
    (metadata.topic(name).cloned(), brokers)
}

async fn run(plane: &HostedPlane, name: &str, step: Step) -> Result<(), ControllerError> {
    info!(topic = name, ?step, "changing the topic");
    match step {
        Step::Create(create) => plane.create_topic(create, false).await.map(drop),
        Step::AddPartitions { total } => plane
            .create_partitions(name, total, None, false)
            .await
            .map(drop),
        Step::SetConfig(config) => plane
            .alter_topic_configs(name, ConfigChange::Replace(config), false)
            .await
            .map(drop),
        Step::Reassign(targets) => {
            let changes = targets
                .into_iter()
                .map(|(partition, replicas)| ReassignmentChange {
                    partition: PartitionRef {
                        topic: name.to_owned(),
                        partition,
                    },
                    target: Some(replicas),
                })
                .collect();
            for (_, result) in plane.alter_reassignments(changes).await? {
                result?;
            }
            Ok(())
        }
    }
}

async fn cleanup(topic: &Topic, ctx: &Context) -> Result<Action, TopicError> {
    let namespace = topic.namespace().unwrap_or_default();
    if topic.spec.deletion_policy == DeletionPolicy::Retain
        || live_cluster(topic, ctx).await?.is_none()
    {
        return Ok(Action::await_change());
    }
    let plane = ctx
        .hosting
        .get(&namespace, &topic.spec.cluster)
        .ok_or_else(|| TopicError::ControllerNotReady {
            cluster: topic.spec.cluster.clone(),
        })?;
    let name = topic.topic_name().to_owned();
    match plane.delete_topic(TopicRef::Name(name.clone())).await {
        Ok(_) => info!(topic = %name, "deleted the topic with its Topic resource"),
        Err(ControllerError::UnknownTopic { .. }) => {}
        Err(source) => return Err(TopicError::Controller { source }),
    }
    Ok(Action::await_change())
}

async fn write_status(
    topic: &Topic,
    ctx: &Context,
    ready: bool,
    reason: &str,
    message: String,
) -> Result<(), TopicError> {
    write_status_with(topic, ctx, (ready, reason, message), None).await
}

/// `Ready` and, when known, `Degraded`, each as `(status, reason, message)`.
async fn write_status_with(
    topic: &Topic,
    ctx: &Context,
    ready: (bool, &str, String),
    degraded: Option<(bool, &str, String)>,
) -> Result<(), TopicError> {
    let generation = topic.metadata.generation;
    let mut conditions = topic
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = Time(Timestamp::now());
    let (status, reason, message) = ready;
    set_condition(
        &mut conditions,
        ConditionType::Ready,
        status,
        reason,
        message,
        generation,
        &now,
    );
    if let Some((status, reason, message)) = degraded {
        set_condition(
            &mut conditions,
            ConditionType::Degraded,
            status,
            reason,
            message,
            generation,
            &now,
        );
    }
    let api: Api<Topic> =
        Api::namespaced(ctx.client.clone(), &topic.namespace().unwrap_or_default());
    let patch = json!({"status": {
        "observedGeneration": generation,
        "conditions": conditions,
        "topicName": topic.topic_name(),
    }});
    api.patch_status(
        &topic.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(kube_error("writing the Topic status"))?;
    Ok(())
}
