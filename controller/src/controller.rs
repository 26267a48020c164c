//! The controller: owns the committed [`ClusterMetadata`] and every change to it:
//! topic operations (create, delete, create partitions, alter configs), producer-id
//! blocks, the broker lifecycle (registration, heartbeats, session expiry, controlled
//! shutdown and [`Controller::tick`]; in `controller/brokers.rs`), and partition
//! leadership, ISR and reassignment (`controller/replication.rs`).
//!
//! Each operation first plans the change with pure functions over a copy of the
//! current image ([`crate::registry`], [`crate::partitions`],
//! [`crate::reassignment`], [`crate::placement`]; every Kafka check happens there),
//! then commits it: partition epochs are stamped against the committed image
//! ([`partitions::stamp_all_epochs`]), the new image, with `version + 1`, is saved
//! through the [`MetadataStore`] (expecting the version it was planned from), and
//! only after the save succeeded does it replace the in-memory image and get
//! published to subscribers. So:
//! - a failed save changes nothing, in memory or for subscribers;
//! - `validate_only` runs the plan and stops before the commit;
//! - an operation that changes nothing durable (a heartbeat that only extends a
//!   session, a retried registration) writes nothing;
//! - subscribers see every committed image, in version order, and nothing else.
//!
//! Broker sessions are the only state outside the image: they live in memory, and a
//! controller that opens a store gives every unfenced broker a fresh session. Time is
//! passed in (`now`), never read here.

mod brokers;
mod replication;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use self::brokers::TickReport;
pub use crate::config::{ControllerConfig, ControllerDefaults};
pub use crate::error::ControllerError;
use crate::ids::{self, BrokerId, TopicId, TopicName};
use crate::metadata::{BrokerInfo, ClusterMetadata, PartitionState, TopicMetadata};
use crate::partitions;
use crate::placement::{self, PlacementError};
use crate::registry::{self, BrokerEpoch, Sessions};
use crate::store::MetadataStore;
use crate::topic_config;
pub use crate::topic_config::ConfigOp;

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

/// The cluster's controller, in this process.
pub struct Controller<S: MetadataStore> {
    store: S,
    config: ControllerConfig,
    metadata: Arc<ClusterMetadata>,
    publisher: watch::Sender<Arc<ClusterMetadata>>,
    sessions: Sessions,
    /// When `tick` next checks the leader balance.
    next_rebalance_check: Instant,
}

impl<S: MetadataStore> fmt::Debug for Controller<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("cluster_id", &self.metadata.cluster_id)
            .field("version", &self.metadata.version)
            .field("brokers", &self.metadata.brokers.len())
            .field("topics", &self.metadata.topics.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: MetadataStore> Controller<S> {
    /// [`Controller::open_with_config`] with Kafka's defaults.
    pub async fn open(store: S, now: Instant) -> Result<Controller<S>, ControllerError> {
        Controller::open_with_config(store, ControllerConfig::default(), now).await
    }

    /// Loads the metadata, or creates a new cluster (with a cluster id that is, like
    /// Kafka's, the 22-character URL-safe base64 of a random UUID) and saves it at
    /// version 1 if the store is empty. Every unfenced broker gets a fresh session from
    /// `now`. Brokers appear only by registering.
    pub async fn open_with_config(
        store: S,
        config: ControllerConfig,
        now: Instant,
    ) -> Result<Controller<S>, ControllerError> {
        config.validate()?;
        let metadata = match store.load().await? {
            Some(metadata) => metadata,
            None => {
                let metadata = ClusterMetadata::empty(ids::new_cluster_id(), 1);
                store.save(&metadata, None).await?;
                metadata
            }
        };
        let sessions = Sessions::restore(config.session_timeout(), &metadata.brokers, now);
        let metadata = Arc::new(metadata);
        let (publisher, _) = watch::channel(Arc::clone(&metadata));
        Ok(Controller {
            store,
            next_rebalance_check: now + config.leader_imbalance_check_interval(),
            config,
            metadata,
            publisher,
            sessions,
        })
    }

    pub fn metadata(&self) -> &ClusterMetadata {
        &self.metadata
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    pub fn defaults(&self) -> ControllerDefaults {
        self.config.defaults
    }

    /// `broker.session.timeout.ms`.
    pub fn session_timeout(&self) -> Duration {
        self.sessions.timeout()
    }

    /// When broker `id`'s session runs out; `None` when it has none (fenced or unknown).
    pub fn session_deadline(&self, id: BrokerId) -> Option<Instant> {
        self.sessions.deadline(id)
    }

    /// Every committed change is published here; the receiver starts at the current image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.publisher.subscribe()
    }

    /// Creates a topic. Replicas are placed over live brokers only; a manual
    /// assignment may name any registered broker, and its live replicas form the ISR.
    pub async fn create_topic(
        &mut self,
        req: CreateTopic,
        validate_only: bool,
    ) -> Result<TopicMetadata, ControllerError> {
        let topic = plan_create_topic(&self.metadata, self.config.defaults, req)?;
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

    /// Grows `name` to `total_count` partitions, placing the new ones over live brokers
    /// with [`placement::assign_replicas`] unless `assignments` gives one replica list
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

    /// Allocates the next `count` producer ids to broker `broker` (whose current epoch
    /// must be `broker_epoch`), which hands them out to producers (InitProducerId). The
    /// block is committed before it is returned, so no id is ever allocated twice,
    /// across restarts included; ids of a block a broker did not use up before it
    /// stopped are skipped, never reused. `count == 0` commits nothing.
    pub async fn allocate_producer_ids(
        &mut self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
        count: u32,
    ) -> Result<Range<i64>, ControllerError> {
        registry::check_epoch(&self.metadata.brokers, broker, broker_epoch)?;
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

    /// Commits `next` unless it equals the current image; returns whether it committed.
    async fn commit_if_changed(&mut self, next: ClusterMetadata) -> Result<bool, ControllerError> {
        if next == *self.metadata {
            return Ok(false);
        }
        self.commit(next).await?;
        Ok(true)
    }

    /// Stamps partition epochs, saves `next` as the successor of the current image,
    /// then adopts and publishes it.
    async fn commit(&mut self, mut next: ClusterMetadata) -> Result<(), ControllerError> {
        let expected = self.metadata.version;
        partitions::stamp_all_epochs(&self.metadata, &mut next);
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
            let registered: Vec<BrokerInfo> = metadata.brokers.values().cloned().collect();
            placement::validate_assignment(&registered, 0, &assignments, None)
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
            let live = partitions::live_brokers(&metadata.brokers);
            // Kafka starts new topics at a random broker; the id is random already.
            // Truncation on 32-bit targets is harmless: placement takes it modulo the broker count.
            let start = id.0.as_u64_pair().0 as usize;
            placement::assign_replicas(&live, 0, partitions, replication_factor, start)
                .map_err(|e| ControllerError::from_placement(&req.name, e))?
        }
    };
    Ok(TopicMetadata {
        partitions: build_partitions(metadata, name.as_str(), 0, replicas)?,
        name,
        id,
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
    let new_replicas = match assignments {
        Some(assignments) => {
            if usize::try_from(additional).ok() != Some(assignments.len()) {
                return Err(ControllerError::AssignmentCountMismatch {
                    name: name.to_owned(),
                    additional,
                    given: assignments.len(),
                });
            }
            let registered: Vec<BrokerInfo> = metadata.brokers.values().cloned().collect();
            placement::validate_assignment(
                &registered,
                current,
                &assignments,
                Some(replication_factor),
            )
            .map_err(|e| ControllerError::from_placement(name, e))?;
            assignments
        }
        None => {
            let live = partitions::live_brokers(&metadata.brokers);
            // As Kafka: continue from the broker that leads partition 0.
            let first_leader = topic.partitions.first().and_then(|p| p.replicas.first());
            let start = first_leader
                .and_then(|leader| live.iter().position(|b| b.id >= *leader))
                .unwrap_or(0);
            let rf = i16::try_from(replication_factor).unwrap_or(i16::MAX);
            placement::assign_replicas(&live, current, additional, rf, start)
                .map_err(|e| ControllerError::from_placement(name, e))?
        }
    };
    let mut grown = topic.clone();
    grown
        .partitions
        .extend(build_partitions(metadata, name, current, new_replicas)?);
    Ok(grown)
}

/// New partitions `first..` over the given replica lists; see
/// [`partitions::new_partition`].
fn build_partitions(
    metadata: &ClusterMetadata,
    name: &str,
    first: i32,
    replicas: Vec<Vec<BrokerId>>,
) -> Result<Vec<PartitionState>, ControllerError> {
    (first..)
        .zip(replicas)
        .map(|(partition, replicas)| {
            partitions::new_partition(partition, replicas, &metadata.brokers).ok_or_else(|| {
                ControllerError::AssignmentToUnavailableBrokers {
                    name: name.to_owned(),
                    partition,
                }
            })
        })
        .collect()
}
