//! [`KubeStore`]: the controller's [`MetadataStore`] with Kubernetes as its database —
//! Kubernetes (etcd) plays the part ZooKeeper plays for classic Kafka.
//!
//! Where each part of a [`ClusterMetadata`] image lives:
//! - `Cluster.status.metadata`: the image version, the producer-id and broker-epoch
//!   counters, and every registered broker (each as the controller's own JSON of it);
//!   `Cluster.status.clusterId`: the Kafka cluster id;
//! - `Topic.status` of the topic's `Topic` resource: topic id, committed configs and, per
//!   partition, replicas, leader, epochs and ISR. A topic created through the Kafka API (or
//!   an internal one such as `__consumer_offsets`) gets a `Topic` resource of its own,
//!   labelled [`ORIGIN_LABEL`]`=kafka-api` and owned by the Cluster. Such a topic is
//!   managed through the Kafka API: the store keeps its resource's spec equal to what was
//!   committed, and the Topic reconciler leaves it alone (remove the label to adopt it).
//!
//! Concurrency: `Cluster.status.metadata.version` is the fence. A save first swaps it
//! from the version the caller read to the new one — a JSON patch whose `test` operation
//! the API server applies atomically, or, for the very first save, a replace guarded by
//! `resourceVersion` — and only then writes the topics that changed. A second writer (an
//! operator that lost its Lease) fails the swap with [`StoreError::Conflict`] and writes
//! nothing. Status conditions written by the reconcilers never conflict with it.
//!
//! A crash between the swap and the topic writes leaves topics one image behind; the
//! brokers' own state and the next commit of those topics repair it, as a ZooKeeper-era
//! Kafka controller's per-znode writes did.

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource as _, ResourceExt as _};
use serde_json::{Value, json};
use weir_controller::metadata::{BrokerInfo, ClusterMetadata, PartitionState, TopicMetadata};
use weir_controller::registry::BrokerEpoch;
use weir_controller::{BrokerId, MetadataStore, StoreError, TopicId, TopicName};

use crate::crd::{
    Cluster, ControllerState, DeletionPolicy, PartitionStatus, Topic, TopicSpec, TopicStatus,
};

/// Marks `Topic` resources the store created for topics made through the Kafka API.
pub const ORIGIN_LABEL: &str = "weir.dev/origin";
/// Every `Topic` resource the store creates carries the cluster's name here.
pub const CLUSTER_LABEL: &str = "weir.dev/cluster";

#[derive(Debug, thiserror::Error)]
pub enum KubeStoreError {
    #[error("Kubernetes API error on {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("Cluster {namespace}/{name} does not exist")]
    NoCluster { namespace: String, name: String },
    #[error("the stored metadata of {what} cannot be read: {reason}")]
    Corrupt { what: String, reason: String },
}

impl From<KubeStoreError> for StoreError {
    fn from(e: KubeStoreError) -> StoreError {
        StoreError::Backend {
            source: Box::new(e),
        }
    }
}

/// The metadata store of one `Cluster`.
#[derive(Debug)]
pub struct KubeStore {
    clusters: Api<Cluster>,
    topics: Api<Topic>,
    namespace: String,
    cluster: String,
    /// Serializes saves through this store, and remembers the last image it read or wrote
    /// so a save writes only the topics that changed.
    last: tokio::sync::Mutex<Option<ClusterMetadata>>,
    /// Kafka topic name → `Topic` resource name, as last listed.
    resources: Mutex<BTreeMap<String, String>>,
}

impl KubeStore {
    pub fn new(client: Client, namespace: &str, cluster: &str) -> KubeStore {
        KubeStore {
            clusters: Api::namespaced(client.clone(), namespace),
            topics: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            cluster: cluster.to_owned(),
            last: tokio::sync::Mutex::new(None),
            resources: Mutex::new(BTreeMap::new()),
        }
    }

    fn api_error(&self, what: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeStoreError {
        let what = what.into();
        move |source| KubeStoreError::Api { what, source }
    }

    async fn get_cluster(&self) -> Result<Cluster, KubeStoreError> {
        self.clusters
            .get_opt(&self.cluster)
            .await
            .map_err(self.api_error(format!("Cluster {}", self.cluster)))?
            .ok_or_else(|| KubeStoreError::NoCluster {
                namespace: self.namespace.clone(),
                name: self.cluster.clone(),
            })
    }

    /// The cluster's `Topic` resources.
    async fn list_topics(&self) -> Result<Vec<Topic>, KubeStoreError> {
        let list = self
            .topics
            .list(&ListParams::default())
            .await
            .map_err(self.api_error("listing Topics"))?;
        let topics: Vec<Topic> = list
            .items
            .into_iter()
            .filter(|t| t.spec.cluster == self.cluster)
            .collect();
        let mut resources = self.resources.lock().unwrap_or_else(|p| p.into_inner());
        resources.clear();
        for topic in &topics {
            resources.insert(topic.topic_name().to_owned(), topic.name_any());
        }
        Ok(topics)
    }

    async fn load_image(&self) -> Result<Option<ClusterMetadata>, KubeStoreError> {
        let cluster = self.get_cluster().await?;
        let Some(status) = cluster.status else {
            return Ok(None);
        };
        let Some(state) = status.metadata else {
            return Ok(None);
        };
        let mut metadata = ClusterMetadata::empty(status.cluster_id.unwrap_or_default(), 0);
        metadata.version = u64::try_from(state.version).unwrap_or(0);
        metadata.next_producer_id = state.next_producer_id;
        metadata.last_broker_epoch = BrokerEpoch(state.last_broker_epoch);
        for broker in state.brokers {
            let info: BrokerInfo =
                serde_json::from_value(broker).map_err(|e| KubeStoreError::Corrupt {
                    what: format!("Cluster {} status.metadata.brokers", self.cluster),
                    reason: e.to_string(),
                })?;
            metadata.brokers.insert(info.id, info);
        }
        for topic in self.list_topics().await? {
            if let Some(committed) = topic_metadata(&topic)? {
                metadata
                    .topics
                    .insert(committed.name.as_str().to_owned(), committed);
            }
        }
        Ok(Some(metadata))
    }

    /// Swaps the Cluster's part of the image from `expected` to `metadata`.
    async fn swap_cluster_state(
        &self,
        metadata: &ClusterMetadata,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        let state = serde_json::to_value(controller_state(metadata)).unwrap_or_default();
        let cluster = self.get_cluster().await?;
        let stored = cluster
            .status
            .as_ref()
            .and_then(|s| s.metadata.as_ref())
            .map(|m| u64::try_from(m.version).unwrap_or(0));
        if stored != expected {
            return Err(StoreError::Conflict {
                expected,
                found: stored,
            });
        }
        let result = match (expected, &cluster.status) {
            (Some(version), Some(_)) => {
                let patch: json_patch::Patch = serde_json::from_value(json!([
                    {"op": "test", "path": "/status/metadata/version", "value": version},
                    {"op": "add", "path": "/status/metadata", "value": state},
                    {"op": "add", "path": "/status/clusterId", "value": metadata.cluster_id},
                ]))
                .unwrap_or_else(|_| json_patch::Patch(Vec::new()));
                self.clusters
                    .patch_status(
                        &self.cluster,
                        &PatchParams::default(),
                        &Patch::Json::<()>(patch),
                    )
                    .await
                    .map(drop)
            }
            _ => {
                // The first save: guarded by resourceVersion (nothing else writes a
                // Cluster's status before its controller exists).
                let mut next = cluster.clone();
                let status = next.status.get_or_insert_with(Default::default);
                status.metadata = serde_json::from_value(state).ok();
                status.cluster_id = Some(metadata.cluster_id.clone());
                self.clusters
                    .replace_status(&self.cluster, &PostParams::default(), &next)
                    .await
                    .map(drop)
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 422 => {
                // A failed `test` (422) or resourceVersion (409): someone else saved.
                let found = self
                    .get_cluster()
                    .await?
                    .status
                    .and_then(|s| s.metadata)
                    .map(|m| u64::try_from(m.version).unwrap_or(0));
                Err(StoreError::Conflict { expected, found })
            }
            Err(source) => Err(KubeStoreError::Api {
                what: format!("Cluster {} status", self.cluster),
                source,
            }
            .into()),
        }
    }

    async fn write_topic(
        &self,
        topic: &TopicMetadata,
        version: u64,
        owner: &OwnerReference,
    ) -> Result<(), KubeStoreError> {
        let name = topic.name.as_str();
        let mut resource = self.resource_name(name);
        if resource.is_none() {
            self.list_topics().await?;
            resource = self.resource_name(name);
        }
        let resource = match resource {
            Some(resource) => resource,
            None => self.create_topic_resource(topic, owner).await?,
        };
        let current = self
            .topics
            .get_status(&resource)
            .await
            .map_err(self.api_error(format!("Topic {resource}")))?;
        let status = topic_status(topic, version);
        // A merge patch: `partitions` is replaced whole; config keys no longer set are
        // removed with explicit nulls. Conditions, which the reconciler owns, are untouched.
        let mut config: serde_json::Map<String, Value> = status
            .config
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        for key in current.status.iter().flat_map(|s| s.config.keys()) {
            config.entry(key.clone()).or_insert(Value::Null);
        }
        let patch = json!({"status": {
            "topicName": status.topic_name,
            "topicId": status.topic_id,
            "config": config,
            "partitions": status.partitions,
            "metadataVersion": status.metadata_version,
        }});
        self.topics
            .patch_status(&resource, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(self.api_error(format!("Topic {resource} status")))?;
        if is_kafka_api(&current) {
            self.mirror_spec(&current, topic).await?;
        }
        Ok(())
    }

    /// A topic made through the Kafka API is managed through the Kafka API: its resource's
    /// spec follows what was committed (partitions added, configs altered, replicas
    /// reassigned by Kafka clients), so it never shows a stale spec.
    async fn mirror_spec(
        &self,
        resource: &Topic,
        topic: &TopicMetadata,
    ) -> Result<(), KubeStoreError> {
        let partitions = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let replication_factor = i32::try_from(topic.replication_factor()).unwrap_or(1);
        let spec = &resource.spec;
        if spec.partitions == partitions
            && spec.replication_factor == replication_factor
            && spec.config == topic.configs
        {
            return Ok(());
        }
        let mut config: serde_json::Map<String, Value> = topic
            .configs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        for key in spec.config.keys() {
            config.entry(key.clone()).or_insert(Value::Null);
        }
        let patch = json!({"spec": {
            "partitions": partitions,
            "replicationFactor": replication_factor,
            "config": config,
        }});
        let name = resource.name_any();
        self.topics
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(self.api_error(format!("Topic {name} spec")))?;
        Ok(())
    }

    fn resource_name(&self, topic: &str) -> Option<String> {
        self.resources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .cloned()
    }

    /// A `Topic` resource for a topic made through the Kafka API.
    async fn create_topic_resource(
        &self,
        topic: &TopicMetadata,
        owner: &OwnerReference,
    ) -> Result<String, KubeStoreError> {
        let name = resource_name_for(topic.name.as_str());
        let mut resource = Topic::new(
            &name,
            TopicSpec {
                cluster: self.cluster.clone(),
                topic_name: (name != topic.name.as_str()).then(|| topic.name.as_str().to_owned()),
                partitions: i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX),
                replication_factor: i32::try_from(topic.replication_factor()).unwrap_or(1),
                config: topic.configs.clone(),
                deletion_policy: DeletionPolicy::Delete,
            },
        );
        resource.metadata.namespace = Some(self.namespace.clone());
        resource.metadata.labels = Some(BTreeMap::from([
            (ORIGIN_LABEL.to_owned(), "kafka-api".to_owned()),
            (CLUSTER_LABEL.to_owned(), self.cluster.clone()),
        ]));
        resource.metadata.owner_references = Some(vec![owner.clone()]);
        match self.topics.create(&PostParams::default(), &resource).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(source) => {
                return Err(KubeStoreError::Api {
                    what: format!("creating Topic {name}"),
                    source,
                });
            }
        }
        self.resources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.name.as_str().to_owned(), name.clone());
        Ok(name)
    }

    /// A topic left the image: the resource the store made for it goes; a user's resource
    /// loses its committed state (its reconciler recreates the topic, or its finalizer,
    /// if it is being deleted, completes).
    async fn remove_topic(&self, topic: &str) -> Result<(), KubeStoreError> {
        let Some(resource) = self.resource_name(topic) else {
            return Ok(());
        };
        let current = match self
            .topics
            .get_opt(&resource)
            .await
            .map_err(self.api_error(format!("Topic {resource}")))?
        {
            Some(current) => current,
            None => return Ok(()),
        };
        if is_kafka_api(&current) {
            match self.topics.delete(&resource, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(KubeStoreError::Api {
                        what: format!("deleting Topic {resource}"),
                        source,
                    });
                }
            }
        } else if current.status.is_some() {
            let clear = json!({"status": {"topicId": null, "partitions": null, "config": null, "metadataVersion": null}});
            self.topics
                .patch_status(&resource, &PatchParams::default(), &Patch::Merge(&clear))
                .await
                .map_err(self.api_error(format!("Topic {resource} status")))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl MetadataStore for KubeStore {
    async fn load(&self) -> Result<Option<ClusterMetadata>, StoreError> {
        let mut last = self.last.lock().await;
        let image = self.load_image().await?;
        *last = image.clone();
        Ok(image)
    }

    async fn save(
        &self,
        metadata: &ClusterMetadata,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut last = self.last.lock().await;
        self.swap_cluster_state(metadata, expected_version).await?;
        let cluster = self.get_cluster().await?;
        let owner = cluster
            .controller_owner_ref(&())
            .ok_or_else(|| KubeStoreError::Corrupt {
                what: format!("Cluster {}", self.cluster),
                reason: "it has no uid".to_owned(),
            })?;
        let previous = last.take().filter(|l| Some(l.version) == expected_version);
        for (name, topic) in &metadata.topics {
            let unchanged = previous
                .as_ref()
                .and_then(|p| p.topics.get(name))
                .is_some_and(|p| p == topic);
            if !unchanged {
                self.write_topic(topic, metadata.version, &owner).await?;
            }
        }
        if let Some(previous) = &previous {
            for name in previous.topics.keys() {
                if !metadata.topics.contains_key(name) {
                    self.remove_topic(name).await?;
                }
            }
        }
        *last = Some(metadata.clone());
        Ok(())
    }
}

/// Whether the store made this resource for a topic created through the Kafka API.
pub fn is_kafka_api(topic: &Topic) -> bool {
    topic.labels().get(ORIGIN_LABEL).map(String::as_str) == Some("kafka-api")
}

fn controller_state(metadata: &ClusterMetadata) -> ControllerState {
    ControllerState {
        version: i64::try_from(metadata.version).unwrap_or(i64::MAX),
        next_producer_id: metadata.next_producer_id,
        last_broker_epoch: metadata.last_broker_epoch.0,
        brokers: metadata
            .brokers
            .values()
            .map(|b| serde_json::to_value(b).unwrap_or_default())
            .collect(),
    }
}

/// The committed topic a `Topic` resource's status holds, if any.
fn topic_metadata(topic: &Topic) -> Result<Option<TopicMetadata>, KubeStoreError> {
    let Some(status) = &topic.status else {
        return Ok(None);
    };
    let Some(id) = &status.topic_id else {
        return Ok(None);
    };
    let corrupt = |reason: String| KubeStoreError::Corrupt {
        what: format!("Topic {} status", topic.name_any()),
        reason,
    };
    let id: uuid::Uuid = id
        .parse()
        .map_err(|e: uuid::Error| corrupt(e.to_string()))?;
    let name = status.topic_name.as_deref().unwrap_or(topic.topic_name());
    let name = TopicName::new(name).map_err(|e| corrupt(e.to_string()))?;
    let partitions = status
        .partitions
        .iter()
        .map(|p| PartitionState {
            partition: p.partition,
            replicas: p.replicas.iter().copied().map(BrokerId).collect(),
            isr: p.isr.iter().copied().map(BrokerId).collect(),
            leader: p.leader.map(BrokerId),
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            adding_replicas: p.adding_replicas.iter().copied().map(BrokerId).collect(),
            removing_replicas: p.removing_replicas.iter().copied().map(BrokerId).collect(),
        })
        .collect();
    Ok(Some(TopicMetadata {
        name,
        id: TopicId(id),
        partitions,
        configs: status.config.clone(),
    }))
}

fn topic_status(topic: &TopicMetadata, version: u64) -> TopicStatus {
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    TopicStatus {
        topic_name: Some(topic.name.as_str().to_owned()),
        topic_id: Some(topic.id.0.to_string()),
        config: topic.configs.clone(),
        partitions: topic
            .partitions
            .iter()
            .map(|p| PartitionStatus {
                partition: p.partition,
                leader: p.leader.map(|b| b.0),
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                replicas: ids(&p.replicas),
                isr: ids(&p.isr),
                adding_replicas: ids(&p.adding_replicas),
                removing_replicas: ids(&p.removing_replicas),
            })
            .collect(),
        metadata_version: i64::try_from(version).ok(),
        ..TopicStatus::default()
    }
}

/// A Kubernetes name for Kafka topic `topic`: itself when it is one; otherwise lowercased,
/// with other characters as `-`, trimmed, and a checksum of the real name appended so
/// that `My_Topic` and `my-topic` do not collide (as Strimzi names them).
pub fn resource_name_for(topic: &str) -> String {
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if valid(topic) {
        return topic.to_owned();
    }
    let mapped: String = topic
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let base: String = trimmed.chars().take(200).collect();
    let sum = crc32c::crc32c(topic.as_bytes());
    if base.is_empty() {
        format!("topic-{sum:08x}")
    } else {
        format!("{base}-{sum:08x}")
    }
}
