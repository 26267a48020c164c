//! The controller: owns the committed [`ClusterMetadata`] and changes it through
//! topic operations (create, delete, create partitions, alter configs) and by
//! allocating blocks of producer ids.
//!
//! Each operation first plans the change with pure functions over the current
//! image (every Kafka check happens there), then commits it: the new image,
//! with `version + 1`, is saved through the [`MetadataStore`] (expecting the
//! version it was planned from), and only after the save succeeded does it
//! replace the in-memory image and get published to subscribers. So:
//! - a failed save changes nothing, in memory or for subscribers;
//! - `validate_only` runs the plan and stops before the commit;
//! - subscribers see every committed image, in version order, and nothing else.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use tokio::sync::watch;

use crate::ids::{self, BrokerId, InvalidTopicName, TopicId, TopicName};
use crate::metadata::{BrokerInfo, ClusterMetadata, PartitionState, TopicMetadata};
use crate::placement::{self, PlacementError};
use crate::store::{MetadataStore, StoreError};
pub use crate::topic_config::ConfigOp;
use crate::topic_config::{self, ConfigError};

/// A CreateTopics request for one topic. The broker turns Kafka's `-1`
/// ("use the broker default") into `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateTopic {
    pub name: String,
    pub num_partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    /// Replicas of partition `i` at index `i`. `None` or an empty list (the
    /// protocol cannot send null here) lets the controller place replicas;
    /// otherwise `num_partitions` and `replication_factor` must be `None`.
    pub assignments: Option<Vec<Vec<BrokerId>>>,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// Used where a request leaves the count or the replication factor to the cluster
/// (Kafka's `num.partitions` and `default.replication.factor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerDefaults {
    pub num_partitions: i32,
    pub replication_factor: i16,
}

impl Default for ControllerDefaults {
    fn default() -> Self {
        ControllerDefaults {
            num_partitions: 1,
            replication_factor: 1,
        }
    }
}

/// Why an operation was refused. Each variant maps to one Kafka error code
/// through [`ControllerError::kafka_error_code`]; the messages are Kafka's where
/// Kafka has one, so the broker can send them as `error_message`.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Topic '{name}' already exists.")]
    TopicAlreadyExists { name: String },
    #[error(transparent)]
    InvalidTopic {
        #[from]
        source: InvalidTopicName,
    },
    #[error("Topic '{name}' collides with existing topic: {existing}")]
    TopicCollision { name: String, existing: String },
    #[error("Topic '{name}' does not exist.")]
    UnknownTopic { name: String },
    #[error("Topic id {id} does not exist.")]
    UnknownTopicId { id: TopicId },
    #[error("{source}")]
    InvalidPartitions {
        name: String,
        #[source]
        source: PlacementError,
    },
    #[error("{}", not_increased_message(name, *current, *requested))]
    PartitionsNotIncreased {
        name: String,
        current: i32,
        requested: i32,
    },
    #[error("{}", replication_factor_message(source))]
    InvalidReplicationFactor {
        name: String,
        #[source]
        source: PlacementError,
    },
    #[error("{source}")]
    InvalidReplicaAssignment {
        name: String,
        #[source]
        source: PlacementError,
    },
    #[error(
        "Attempted to add {additional} additional partition(s), but only {given} assignment(s) were specified."
    )]
    AssignmentCountMismatch {
        name: String,
        additional: i32,
        given: usize,
    },
    #[error("A manual partition assignment was specified, but {field} was not set to -1.")]
    ManualAssignmentWithCount { name: String, field: &'static str },
    #[error("{source}")]
    InvalidConfig {
        name: String,
        #[source]
        source: ConfigError,
    },
    #[error("producer ids are exhausted: {count} more after {next} would pass i64::MAX")]
    ProducerIdsExhausted { next: i64, count: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An error a remote controller returned: its Kafka error code and message.
    #[error("{message}")]
    Remote { code: i16, message: String },
}

impl ControllerError {
    /// The Kafka protocol error code for this error. The only place the mapping lives.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            ControllerError::UnknownTopic { .. } => 3, // UNKNOWN_TOPIC_OR_PARTITION
            ControllerError::InvalidTopic { .. } | ControllerError::TopicCollision { .. } => 17, // INVALID_TOPIC_EXCEPTION
            ControllerError::TopicAlreadyExists { .. } => 36, // TOPIC_ALREADY_EXISTS
            ControllerError::InvalidPartitions { .. }
            | ControllerError::PartitionsNotIncreased { .. } => 37, // INVALID_PARTITIONS
            ControllerError::InvalidReplicationFactor { .. } => 38, // INVALID_REPLICATION_FACTOR
            ControllerError::InvalidReplicaAssignment { .. }
            | ControllerError::AssignmentCountMismatch { .. } => 39, // INVALID_REPLICA_ASSIGNMENT
            ControllerError::InvalidConfig {
                source: ConfigError::DuplicateKey { .. },
                ..
            }
            | ControllerError::ManualAssignmentWithCount { .. } => 42, // INVALID_REQUEST
            ControllerError::InvalidConfig { .. } => 40,      // INVALID_CONFIG
            ControllerError::UnknownTopicId { .. } => 100,    // UNKNOWN_TOPIC_ID
            // Kafka answers an exhausted id space with UNKNOWN_SERVER_ERROR too.
            ControllerError::ProducerIdsExhausted { .. } | ControllerError::Store(_) => -1, // UNKNOWN_SERVER_ERROR
            ControllerError::Remote { code, .. } => *code,
        }
    }

    fn from_placement(name: &str, source: PlacementError) -> ControllerError {
        let name = name.to_owned();
        match source {
            PlacementError::InvalidPartitions { .. }
            | PlacementError::PartitionIndexOutOfRange { .. } => {
                ControllerError::InvalidPartitions { name, source }
            }
            PlacementError::NotEnoughBrokers { .. }
            | PlacementError::InvalidReplicationFactor { .. } => {
                ControllerError::InvalidReplicationFactor { name, source }
            }
            PlacementError::EmptyReplicaList { .. }
            | PlacementError::DuplicateReplica { .. }
            | PlacementError::UnknownBroker { .. }
            | PlacementError::InconsistentReplicationFactor { .. } => {
                ControllerError::InvalidReplicaAssignment { name, source }
            }
        }
    }

    fn invalid_config(name: &str, source: ConfigError) -> ControllerError {
        ControllerError::InvalidConfig {
            name: name.to_owned(),
            source,
        }
    }
}

fn not_increased_message(name: &str, current: i32, requested: i32) -> String {
    if current == requested {
        format!("Topic already has {current} partition(s).")
    } else {
        format!(
            "The topic {name} currently has {current} partition(s); {requested} would not be an increase."
        )
    }
}

fn replication_factor_message(source: &PlacementError) -> String {
    match source {
        PlacementError::NotEnoughBrokers {
            replication_factor, ..
        } => {
            format!("Unable to replicate the partition {replication_factor} time(s): {source}")
        }
        other => other.to_string(),
    }
}

/// The single-node, in-process controller.
pub struct Controller<S: MetadataStore> {
    store: S,
    defaults: ControllerDefaults,
    metadata: Arc<ClusterMetadata>,
    publisher: watch::Sender<Arc<ClusterMetadata>>,
}

impl<S: MetadataStore> fmt::Debug for Controller<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("cluster_id", &self.metadata.cluster_id)
            .field("version", &self.metadata.version)
            .field("brokers", &self.metadata.brokers.len())
            .field("topics", &self.metadata.topics.len())
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

impl<S: MetadataStore> Controller<S> {
    /// Loads metadata (creating a new cluster id — 22-char URL-safe base64 of a
    /// random UUID like Kafka's — if the store is empty) and registers `local` as a broker.
    pub async fn open(store: S, local: BrokerInfo) -> Result<Controller<S>, ControllerError> {
        Controller::open_with_defaults(store, local, ControllerDefaults::default()).await
    }

    pub async fn open_with_defaults(
        store: S,
        local: BrokerInfo,
        defaults: ControllerDefaults,
    ) -> Result<Controller<S>, ControllerError> {
        let (mut metadata, stored_version) = match store.load().await? {
            Some(metadata) => {
                let version = metadata.version;
                (metadata, Some(version))
            }
            None => (
                ClusterMetadata {
                    cluster_id: ids::new_cluster_id(),
                    version: 0,
                    brokers: BTreeMap::new(),
                    topics: BTreeMap::new(),
                    next_producer_id: 0,
                    last_broker_epoch: crate::registry::BrokerEpoch::default(),
                },
                None,
            ),
        };
        if stored_version.is_none() || metadata.brokers.get(&local.id) != Some(&local) {
            metadata.brokers.insert(local.id, local);
            metadata.version += 1;
            store.save(&metadata, stored_version).await?;
        }
        let metadata = Arc::new(metadata);
        let (publisher, _) = watch::channel(Arc::clone(&metadata));
        Ok(Controller {
            store,
            defaults,
            metadata,
            publisher,
        })
    }

    pub fn metadata(&self) -> &ClusterMetadata {
        &self.metadata
    }

    pub fn defaults(&self) -> ControllerDefaults {
        self.defaults
    }

    /// Every committed change is published here; the receiver starts at the current image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.publisher.subscribe()
    }

    pub async fn create_topic(
        &mut self,
        req: CreateTopic,
        validate_only: bool,
    ) -> Result<TopicMetadata, ControllerError> {
        let topic = plan_create_topic(&self.metadata, self.defaults, req)?;
        if !validate_only {
            self.commit_topic(topic.clone()).await?;
        }
        Ok(topic)
    }

    pub async fn delete_topic(&mut self, name: &str) -> Result<TopicMetadata, ControllerError> {
        let topic = self.topic(name)?.clone();
        self.commit_deletion(topic).await
    }

    pub async fn delete_topic_by_id(
        &mut self,
        id: TopicId,
    ) -> Result<TopicMetadata, ControllerError> {
        let topic = self
            .metadata
            .topic_by_id(id)
            .ok_or(ControllerError::UnknownTopicId { id })?
            .clone();
        self.commit_deletion(topic).await
    }

    /// Grows `name` to `total_count` partitions, placing the new ones with
    /// [`placement::assign_replicas`] unless `assignments` gives one replica list
    /// per new partition.
    pub async fn create_partitions(
        &mut self,
        name: &str,
        total_count: i32,
        assignments: Option<Vec<Vec<BrokerId>>>,
        validate_only: bool,
    ) -> Result<TopicMetadata, ControllerError> {
        let topic = self.topic(name)?;
        let topic = plan_create_partitions(&self.metadata, topic, total_count, assignments)?;
        if !validate_only {
            self.commit_topic(topic.clone()).await?;
        }
        Ok(topic)
    }

    /// Applies IncrementalAlterConfigs operations (Set, Delete, Append, Subtract)
    /// to the topic's overrides. Nothing is committed when the overrides end up
    /// unchanged.
    pub async fn alter_topic_configs(
        &mut self,
        name: &str,
        ops: Vec<ConfigOp>,
        validate_only: bool,
    ) -> Result<TopicMetadata, ControllerError> {
        let topic = self.topic(name)?;
        let configs = topic_config::apply_config_ops(&topic.configs, &ops)
            .map_err(|e| ControllerError::invalid_config(name, e))?;
        self.set_topic_configs(name, configs, validate_only).await
    }

    /// Replaces all of the topic's overrides (legacy AlterConfigs).
    pub async fn replace_topic_configs(
        &mut self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicMetadata, ControllerError> {
        self.topic(name)?;
        topic_config::validate_topic_configs(&configs)
            .map_err(|e| ControllerError::invalid_config(name, e))?;
        self.set_topic_configs(name, configs, validate_only).await
    }

    async fn set_topic_configs(
        &mut self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicMetadata, ControllerError> {
        let current = self.topic(name)?;
        if current.configs == configs {
            return Ok(current.clone());
        }
        let topic = TopicMetadata {
            configs,
            ..current.clone()
        };
        if !validate_only {
            self.commit_topic(topic.clone()).await?;
        }
        Ok(topic)
    }

    /// Allocates the next `count` producer ids to a broker, which hands them out to
    /// producers (InitProducerId). The block is committed before it is returned, so no id
    /// is ever allocated twice, across restarts included; ids of a block a broker did not
    /// use up before it stopped are skipped, never reused. `count == 0` commits nothing.
    pub async fn allocate_producer_ids(
        &mut self,
        count: u32,
    ) -> Result<Range<i64>, ControllerError> {
        let start = self.metadata.next_producer_id;
        if count == 0 {
            return Ok(start..start);
        }
        let end = start
            .checked_add(i64::from(count))
            .ok_or(ControllerError::ProducerIdsExhausted { next: start, count })?;
        let mut next = ClusterMetadata::clone(&self.metadata);
        next.next_producer_id = end;
        self.commit(next).await?;
        Ok(start..end)
    }

    fn topic(&self, name: &str) -> Result<&TopicMetadata, ControllerError> {
        self.metadata
            .topic(name)
            .ok_or_else(|| ControllerError::UnknownTopic {
                name: name.to_owned(),
            })
    }

    async fn commit_topic(&mut self, topic: TopicMetadata) -> Result<(), ControllerError> {
        let mut next = ClusterMetadata::clone(&self.metadata);
        next.topics.insert(topic.name.as_str().to_owned(), topic);
        self.commit(next).await
    }

    async fn commit_deletion(
        &mut self,
        topic: TopicMetadata,
    ) -> Result<TopicMetadata, ControllerError> {
        let mut next = ClusterMetadata::clone(&self.metadata);
        next.topics.remove(topic.name.as_str());
        self.commit(next).await?;
        Ok(topic)
    }

    /// Saves `next` as the successor of the current image, then adopts and publishes it.
    async fn commit(&mut self, mut next: ClusterMetadata) -> Result<(), ControllerError> {
        let expected = self.metadata.version;
        next.version = expected + 1;
        self.store.save(&next, Some(expected)).await?;
        self.metadata = Arc::new(next);
        self.publisher.send_replace(Arc::clone(&self.metadata));
        Ok(())
    }
}

/// Plans a new topic with Kafka's checks, in Kafka's order: name, existence,
/// collision, configs, then assignment or counts and placement.
fn plan_create_topic(
    metadata: &ClusterMetadata,
    defaults: ControllerDefaults,
    req: CreateTopic,
) -> Result<TopicMetadata, ControllerError> {
    let name = TopicName::new(&req.name)?;
    if metadata.topics.contains_key(name.as_str()) {
        return Err(ControllerError::TopicAlreadyExists { name: req.name });
    }
    let key = name.collision_key();
    if let Some(existing) = metadata
        .topics
        .values()
        .find(|t| t.name.collision_key() == key)
    {
        return Err(ControllerError::TopicCollision {
            name: req.name,
            existing: existing.name.as_str().to_owned(),
        });
    }
    topic_config::validate_topic_configs(&req.configs)
        .map_err(|e| ControllerError::invalid_config(&req.name, e))?;

    let brokers: Vec<BrokerInfo> = metadata.brokers.values().cloned().collect();
    let id = TopicId::random();
    let replicas = match req.assignments {
        Some(assignments) if !assignments.is_empty() => {
            let field = if req.replication_factor.is_some() {
                Some("replication factor")
            } else if req.num_partitions.is_some() {
                Some("numPartitions")
            } else {
                None
            };
            if let Some(field) = field {
                return Err(ControllerError::ManualAssignmentWithCount {
                    name: req.name,
                    field,
                });
            }
            placement::validate_assignment(&brokers, 0, &assignments, None)
                .map_err(|e| ControllerError::from_placement(&req.name, e))?;
            assignments
        }
        _ => {
            let partitions = req.num_partitions.unwrap_or(defaults.num_partitions);
            let replication_factor = req
                .replication_factor
                .unwrap_or(defaults.replication_factor);
            // Kafka checks the replication factor before the partition count.
            if replication_factor <= 0 {
                return Err(ControllerError::from_placement(
                    &req.name,
                    PlacementError::InvalidReplicationFactor { replication_factor },
                ));
            }
            // Kafka starts new topics at a random broker; the id is random already.
            // Truncation on 32-bit targets is harmless: placement takes it modulo the broker count.
            let start = id.0.as_u64_pair().0 as usize;
            placement::assign_replicas(&brokers, 0, partitions, replication_factor, start)
                .map_err(|e| ControllerError::from_placement(&req.name, e))?
        }
    };
    Ok(TopicMetadata {
        name,
        id,
        partitions: (0..)
            .zip(replicas)
            .map(|(i, r)| PartitionState::new(i, r))
            .collect(),
        configs: req.configs,
    })
}

/// Plans growing `topic` to `total_count` partitions.
fn plan_create_partitions(
    metadata: &ClusterMetadata,
    topic: &TopicMetadata,
    total_count: i32,
    assignments: Option<Vec<Vec<BrokerId>>>,
) -> Result<TopicMetadata, ControllerError> {
    let name = topic.name.as_str();
    let current = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    if total_count <= current {
        return Err(ControllerError::PartitionsNotIncreased {
            name: name.to_owned(),
            current,
            requested: total_count,
        });
    }
    let additional = total_count - current;
    let replication_factor = topic.replication_factor();
    let brokers: Vec<BrokerInfo> = metadata.brokers.values().cloned().collect();
    let new_replicas = match assignments {
        Some(assignments) => {
            if usize::try_from(additional).ok() != Some(assignments.len()) {
                return Err(ControllerError::AssignmentCountMismatch {
                    name: name.to_owned(),
                    additional,
                    given: assignments.len(),
                });
            }
            placement::validate_assignment(
                &brokers,
                current,
                &assignments,
                Some(replication_factor),
            )
            .map_err(|e| ControllerError::from_placement(name, e))?;
            assignments
        }
        None => {
            // As Kafka: continue from the broker that leads partition 0.
            let first_leader = topic.partitions.first().and_then(|p| p.replicas.first());
            let start = first_leader
                .and_then(|leader| brokers.iter().position(|b| b.id >= *leader))
                .unwrap_or(0);
            let rf = i16::try_from(replication_factor).unwrap_or(i16::MAX);
            placement::assign_replicas(&brokers, current, additional, rf, start)
                .map_err(|e| ControllerError::from_placement(name, e))?
        }
    };
    let mut grown = topic.clone();
    grown.partitions.extend(
        (current..)
            .zip(new_replicas)
            .map(|(i, r)| PartitionState::new(i, r)),
    );
    Ok(grown)
}
