//! [`LocalControlPlane`]: the [`ControlPlane`] of a controller in this process (roles
//! `broker,controller`, and the process that serves the gRPC control plane).
//!
//! It shares one [`Controller`] behind a `tokio::sync::Mutex`; every request holds
//! the lock for one controller call, so requests are applied one at a time, in the
//! order they take the lock. This is the edge where time is read
//! (`tokio::time::Instant::now()`, so paused test clocks apply); the controller itself
//! is only handed `Instant`s. The hosting process calls [`LocalControlPlane::tick`]
//! every 100–500 ms, well within `broker.session.timeout.ms`.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, watch};

use crate::controller::{Controller, ControllerError, CreateTopic, TickReport};
use crate::ids::BrokerId;
use crate::metadata::{ClusterMetadata, PartitionState, TopicMetadata};
use crate::plane::{
    AlterPartition, Committed, ConfigChange, ControlPlane, ControlledShutdownReply, ElectionResult,
    ElectionType, Heartbeat, HeartbeatReply, OngoingReassignment, PartitionRef, ReassignmentChange,
    Registered, TopicRef,
};
use crate::registry::{BrokerEpoch, RegisterBroker};
use crate::store::MetadataStore;

/// The controller in this process, as a [`ControlPlane`]. Clones share the controller.
#[derive(Debug)]
pub struct LocalControlPlane<S: MetadataStore> {
    controller: Arc<Mutex<Controller<S>>>,
}

impl<S: MetadataStore> Clone for LocalControlPlane<S> {
    fn clone(&self) -> Self {
        LocalControlPlane {
            controller: Arc::clone(&self.controller),
        }
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl<S: MetadataStore> LocalControlPlane<S> {
    pub fn new(controller: Controller<S>) -> LocalControlPlane<S> {
        LocalControlPlane::from_shared(Arc::new(Mutex::new(controller)))
    }

    pub fn from_shared(controller: Arc<Mutex<Controller<S>>>) -> LocalControlPlane<S> {
        LocalControlPlane { controller }
    }

    /// The controller, for the hosting process (metadata, subscriptions, config).
    pub fn controller(&self) -> &Arc<Mutex<Controller<S>>> {
        &self.controller
    }

    /// The controller's periodic work now (see [`Controller::tick`]).
    pub async fn tick(&self) -> Result<TickReport, ControllerError> {
        self.controller.lock().await.tick(now()).await
    }

    /// Runs `operation` on the controller and pairs its value with the metadata
    /// version after it (the committing one, or the current one if nothing committed).
    async fn committed<T>(
        &self,
        operation: impl AsyncFnOnce(&mut Controller<S>) -> Result<T, ControllerError>,
    ) -> Result<Committed<T>, ControllerError> {
        let mut controller = self.controller.lock().await;
        let value = operation(&mut controller).await?;
        Ok(Committed {
            value,
            version: controller.metadata().version,
        })
    }
}

#[async_trait::async_trait]
impl<S: MetadataStore> ControlPlane for LocalControlPlane<S> {
    async fn watch_metadata(
        &self,
    ) -> Result<watch::Receiver<Arc<ClusterMetadata>>, ControllerError> {
        Ok(self.controller.lock().await.subscribe())
    }

    async fn register_broker(
        &self,
        request: RegisterBroker,
    ) -> Result<Registered, ControllerError> {
        let mut controller = self.controller.lock().await;
        let broker_epoch = controller.register_broker(request).await?;
        Ok(Registered {
            broker_epoch,
            session_timeout_ms: controller.config().broker_session_timeout_ms,
        })
    }

    async fn broker_heartbeat(
        &self,
        request: Heartbeat,
    ) -> Result<HeartbeatReply, ControllerError> {
        let mut controller = self.controller.lock().await;
        controller.broker_heartbeat(request, now()).await
    }

    async fn controlled_shutdown(
        &self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> Result<ControlledShutdownReply, ControllerError> {
        let mut controller = self.controller.lock().await;
        controller.controlled_shutdown(broker, broker_epoch).await
    }

    async fn create_topic(
        &self,
        request: CreateTopic,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        self.committed(async |c: &mut Controller<S>| c.create_topic(request, validate_only).await)
            .await
    }

    async fn delete_topic(
        &self,
        topic: TopicRef,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        self.committed(async |c: &mut Controller<S>| match topic {
            TopicRef::Name(name) => c.delete_topic(&name).await,
            TopicRef::Id(id) => c.delete_topic_by_id(id).await,
        })
        .await
    }

    async fn create_partitions(
        &self,
        topic: &str,
        total_count: i32,
        assignments: Option<Vec<Vec<BrokerId>>>,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        self.committed(async |c: &mut Controller<S>| {
            c.create_partitions(topic, total_count, assignments, validate_only)
                .await
        })
        .await
    }

    async fn alter_topic_configs(
        &self,
        topic: &str,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        self.committed(async |c: &mut Controller<S>| match change {
            ConfigChange::Incremental(ops) => {
                c.alter_topic_configs(topic, ops, validate_only).await
            }
            ConfigChange::Replace(configs) => {
                c.replace_topic_configs(topic, configs, validate_only).await
            }
        })
        .await
    }

    async fn allocate_producer_ids(
        &self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
        count: u32,
    ) -> Result<Range<i64>, ControllerError> {
        let mut controller = self.controller.lock().await;
        controller
            .allocate_producer_ids(broker, broker_epoch, count)
            .await
    }

    async fn alter_partition(
        &self,
        request: AlterPartition,
    ) -> Result<Committed<PartitionState>, ControllerError> {
        self.committed(async |c: &mut Controller<S>| c.alter_partition(request).await)
            .await
    }

    async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<PartitionRef>>,
    ) -> Result<Vec<ElectionResult>, ControllerError> {
        let mut controller = self.controller.lock().await;
        controller.elect_leaders(election, partitions).await
    }

    async fn alter_reassignments(
        &self,
        changes: Vec<ReassignmentChange>,
    ) -> Result<Vec<(PartitionRef, Result<(), ControllerError>)>, ControllerError> {
        let mut controller = self.controller.lock().await;
        controller.alter_reassignments(changes).await
    }

    async fn list_reassignments(
        &self,
        partitions: Option<Vec<PartitionRef>>,
    ) -> Result<Vec<OngoingReassignment>, ControllerError> {
        Ok(self.controller.lock().await.list_reassignments(partitions))
    }
}
