//! Who may change a topic. A topic a user-written `Topic` resource declares is managed
//! there: Kafka admin requests that would change what the resource says — create it,
//! delete it, add partitions, change its config, or change its replication factor
//! through a reassignment — are refused with POLICY_VIOLATION naming the resource, as
//! Kafka's `CreateTopicPolicy`/`AlterConfigPolicy` refuse, so GitOps and Kafka clients
//! never fight over a field. Topics with no resource, and those whose resource carries
//! `weir.dev/origin=kafka-api` (made through the Kafka API), stay Kafka's to manage;
//! moving replicas without changing their number stays allowed (an operation, not a
//! field of the resource).
//!
//! The layer wraps the controller the brokers reach over gRPC: every such request comes
//! from the Kafka API. The Topic reconciler calls the hosted controller directly, past
//! the layer. Owners are looked up with a fresh list of the namespace's Topics for each
//! request the policy covers (admin requests are rare, and a cache could let a change
//! through just after the resource appeared); if that list fails, the request fails with
//! a retriable error instead of going through unchecked.

use std::ops::Range;
use std::sync::Arc;

use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt as _};
use tokio::sync::watch;
use weir_controller::metadata::ClusterMetadata;
use weir_controller::plane::{
    AlterPartition, Committed, ConfigChange, ControlledShutdownReply, ElectionResult, ElectionType,
    Heartbeat, HeartbeatReply, OngoingReassignment, PartitionRef, ReassignmentChange, Registered,
    TopicRef,
};
use weir_controller::{
    BrokerEpoch, BrokerId, ControlPlane, ControllerError, CreateTopic, PartitionState,
    RegisterBroker, StoreError, TopicMetadata,
};

use crate::crd::Topic;
use crate::kube_store::ORIGIN_LABEL;

/// The user-written Topic resource (`namespace/name`) that owns `topic`, if any.
pub fn owner(resources: &[Topic], cluster: &str, topic: &str) -> Option<String> {
    resources
        .iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .filter(|r| r.labels().get(ORIGIN_LABEL).map(String::as_str) != Some("kafka-api"))
        .find(|r| r.spec.cluster == cluster && r.topic_name() == topic)
        .map(|r| format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any()))
}

/// The refusal for a change to `topic`, owned by `resource`.
pub fn refusal(topic: &str, resource: &str) -> ControllerError {
    ControllerError::PolicyViolation {
        message: format!(
            "Topic '{topic}' is managed by Topic {resource} (weir.dev/v1alpha1): change that \
             resource instead, or delete it with deletionPolicy Retain to manage the topic \
             through Kafka"
        ),
    }
}

/// A cluster's controller as the Kafka API reaches it (see the module docs).
pub struct KafkaApiPolicy {
    inner: Arc<dyn ControlPlane>,
    topics: Api<Topic>,
    cluster: String,
}

impl std::fmt::Debug for KafkaApiPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaApiPolicy")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl KafkaApiPolicy {
    pub fn new(
        inner: Arc<dyn ControlPlane>,
        client: Client,
        namespace: &str,
        cluster: &str,
    ) -> KafkaApiPolicy {
        KafkaApiPolicy {
            inner,
            topics: Api::namespaced(client, namespace),
            cluster: cluster.to_owned(),
        }
    }

    /// Refuses a change to `topic` if a user-written resource owns it.
    async fn check(&self, topic: &str) -> Result<(), ControllerError> {
        let resources = self
            .topics
            .list(&ListParams::default())
            .await
            .map_err(|e| {
                ControllerError::Store(StoreError::Backend {
                    source: format!("listing Topic resources to check topic ownership: {e}").into(),
                })
            })?
            .items;
        match owner(&resources, &self.cluster, topic) {
            Some(resource) => {
                tracing::info!(topic, %resource, "refusing a Kafka admin change to a topic a Topic resource owns");
                Err(refusal(topic, &resource))
            }
            None => Ok(()),
        }
    }

    async fn metadata(&self) -> Result<Arc<ClusterMetadata>, ControllerError> {
        Ok(self.inner.watch_metadata().await?.borrow().clone())
    }
}

#[async_trait::async_trait]
impl ControlPlane for KafkaApiPolicy {
    async fn watch_metadata(
        &self,
    ) -> Result<watch::Receiver<Arc<ClusterMetadata>>, ControllerError> {
        self.inner.watch_metadata().await
    }

    async fn register_broker(
        &self,
        request: RegisterBroker,
    ) -> Result<Registered, ControllerError> {
        self.inner.register_broker(request).await
    }

    async fn broker_heartbeat(
        &self,
        request: Heartbeat,
    ) -> Result<HeartbeatReply, ControllerError> {
        self.inner.broker_heartbeat(request).await
    }

    async fn controlled_shutdown(
        &self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> Result<ControlledShutdownReply, ControllerError> {
        self.inner.controlled_shutdown(broker, broker_epoch).await
    }

    async fn create_topic(
        &self,
        request: CreateTopic,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        self.check(&request.name).await?;
        self.inner.create_topic(request, validate_only).await
    }

    async fn delete_topic(
        &self,
        topic: TopicRef,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        let name = match &topic {
            TopicRef::Name(name) => Some(name.clone()),
            TopicRef::Id(id) => self
                .metadata()
                .await?
                .topics
                .values()
                .find(|t| t.id == *id)
                .map(|t| t.name.to_string()),
        };
        if let Some(name) = name {
            self.check(&name).await?;
        }
        self.inner.delete_topic(topic).await
    }

    async fn create_partitions(
        &self,
        topic: &str,
        total_count: i32,
        assignments: Option<Vec<Vec<BrokerId>>>,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        self.check(topic).await?;
        self.inner
            .create_partitions(topic, total_count, assignments, validate_only)
            .await
    }

    async fn alter_topic_configs(
        &self,
        topic: &str,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        self.check(topic).await?;
        self.inner
            .alter_topic_configs(topic, change, validate_only)
            .await
    }

    async fn allocate_producer_ids(
        &self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
        count: u32,
    ) -> Result<Range<i64>, ControllerError> {
        self.inner
            .allocate_producer_ids(broker, broker_epoch, count)
            .await
    }

    async fn alter_partition(
        &self,
        request: AlterPartition,
    ) -> Result<Committed<PartitionState>, ControllerError> {
        self.inner.alter_partition(request).await
    }

    async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<PartitionRef>>,
    ) -> Result<Vec<ElectionResult>, ControllerError> {
        self.inner.elect_leaders(election, partitions).await
    }

    async fn alter_reassignments(
        &self,
        changes: Vec<ReassignmentChange>,
    ) -> Result<Vec<(PartitionRef, Result<(), ControllerError>)>, ControllerError> {
        // A reassignment that changes a partition's replica count changes the resource's
        // replicationFactor; refuse those partitions and pass the rest on.
        let metadata = self.metadata().await?;
        let mut refused = Vec::new();
        let mut allowed = Vec::new();
        for change in changes {
            let current = metadata
                .topics
                .get(change.partition.topic.as_str())
                .and_then(|t| {
                    t.partitions
                        .get(usize::try_from(change.partition.partition).ok()?)
                })
                .map(|p| p.replicas.len());
            let resizes = match (&change.target, current) {
                (Some(target), Some(current)) => target.len() != current,
                _ => false,
            };
            if resizes && let Err(e) = self.check(&change.partition.topic).await {
                refused.push((change.partition.clone(), Err(e)));
            } else {
                allowed.push(change);
            }
        }
        let mut results = if allowed.is_empty() {
            Vec::new()
        } else {
            self.inner.alter_reassignments(allowed).await?
        };
        results.extend(refused);
        Ok(results)
    }

    async fn list_reassignments(
        &self,
        partitions: Option<Vec<PartitionRef>>,
    ) -> Result<Vec<OngoingReassignment>, ControllerError> {
        self.inner.list_reassignments(partitions).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn topic(name: &str, spec: serde_json::Value, labels: serde_json::Value) -> Topic {
        serde_json::from_value(json!({
            "apiVersion": "weir.dev/v1alpha1", "kind": "Topic",
            "metadata": {"name": name, "namespace": "kafka", "labels": labels},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn only_user_written_resources_of_the_cluster_own_topics() {
        let resources = [
            topic(
                "orders",
                json!({"cluster": "demo", "partitions": 3, "replicationFactor": 3}),
                json!({}),
            ),
            topic(
                "profiles",
                json!({"cluster": "demo", "topicName": "customer_profiles", "partitions": 3, "replicationFactor": 3}),
                json!({}),
            ),
            topic(
                "payments",
                json!({"cluster": "demo", "partitions": 3, "replicationFactor": 3}),
                json!({ORIGIN_LABEL: "kafka-api"}),
            ),
            topic(
                "audit",
                json!({"cluster": "other", "partitions": 3, "replicationFactor": 3}),
                json!({}),
            ),
        ];
        assert_eq!(
            owner(&resources, "demo", "orders").as_deref(),
            Some("kafka/orders")
        );
        assert_eq!(
            owner(&resources, "demo", "customer_profiles").as_deref(),
            Some("kafka/profiles")
        );
        assert_eq!(owner(&resources, "demo", "profiles"), None, "by Kafka name");
        assert_eq!(
            owner(&resources, "demo", "payments"),
            None,
            "made through Kafka"
        );
        assert_eq!(
            owner(&resources, "demo", "audit"),
            None,
            "another cluster's"
        );
        assert_eq!(owner(&resources, "demo", "unknown"), None);
        let refused = refusal("orders", "kafka/orders");
        assert_eq!(refused.kafka_error_code(), 44);
        assert!(
            refused.to_string().contains("Topic kafka/orders"),
            "{refused}"
        );
    }
}
