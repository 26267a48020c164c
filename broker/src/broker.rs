//! [`Broker`]: the state one broker process serves requests from.
//!
//! It owns the data directory's [`LogManager`], its link to the controller (a
//! [`ControlPlane`], in this process or across gRPC), the controller's metadata image as it
//! arrives, and a map of the partitions this broker serves. Metadata changes are committed by
//! the controller first; the broker follows the image and opens, deletes and reconfigures its
//! logs to match ([`Broker::apply_metadata`]). Requests that change metadata (CreateTopics,
//! DeleteTopics, …) go to the controller and are answered once this broker has applied the
//! version that committed them ([`Broker::wait_applied`]), so a client that creates a topic
//! and then produces to it finds it here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;
use tracing::{info, warn};

use weir_controller::{
    BrokerId, ClusterMetadata, Committed, ControlPlane, ControllerError, TopicId, TopicMetadata,
};

use crate::config::BrokerConfig;
use crate::controller_link::{ControllerLink, JoinError};
use crate::coordinator::group_service::GroupService;
use crate::coordinator::txn::TxnConfig;
use crate::coordinator::txn_service::TxnService;
use crate::log::{LogConfig, LogError, LogManager, SharedLog, TopicIdCheck};
use crate::metrics::Metrics;
use crate::replication::{PartitionReplica, ReplicaManager};
use crate::types::TopicPartition;

/// A partition this broker serves: it leads it or follows its leader
/// (`replica.is_leader()`). The same `Partition` lives as long as the broker serves the same
/// log of the same topic; leadership changes happen inside `replica`.
#[derive(Debug)]
pub struct Partition {
    pub tp: TopicPartition,
    pub log: SharedLog,
    /// Role, leader epoch, ISR and high watermark rules (see [`crate::replication`]).
    pub replica: PartitionReplica,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error("invalid topic config for {topic}: {source}")]
    TopicConfig {
        topic: String,
        #[source]
        source: crate::log::ConfigError,
    },
}

pub struct Broker {
    pub config: BrokerConfig,
    logs: Mutex<LogManager>,
    /// The controller, in this process or across gRPC.
    pub control: Arc<dyn ControlPlane>,
    /// This broker's registration: its epoch and whether it is fenced.
    pub link: Arc<ControllerLink>,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    /// The image the logs were last made to match, and its version for waiters.
    applied: Mutex<Arc<ClusterMetadata>>,
    applied_version: watch::Sender<u64>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// Bumped after every append, so long-polling fetches wake up.
    appended: watch::Sender<u64>,
    /// Producer ids the controller allocated to this broker for InitProducerId.
    pub(crate) producer_ids: tokio::sync::Mutex<crate::handler::ProducerIdBlock>,
    pub metrics: Metrics,
    /// The group coordinators of the `__consumer_offsets` partitions led here.
    pub groups: Arc<GroupService>,
    /// Leadership, ISR and follower fetching of the served partitions.
    pub replication: ReplicaManager,
    /// The transaction coordinators of the `__transaction_state` partitions led here.
    pub transactions: Arc<TxnService>,
}

/// How long a request that changed metadata waits for this broker to apply the change.
pub const METADATA_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

/// The effective log config of a topic: broker defaults, then the topic's overrides.
pub fn topic_log_config(
    defaults: &LogConfig,
    topic: &TopicMetadata,
) -> Result<LogConfig, crate::log::ConfigError> {
    let mut config = defaults.clone();
    for (key, value) in &topic.configs {
        match config.set(key, value) {
            Ok(()) | Err(crate::log::ConfigError::UnknownKey { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(config)
}

impl Broker {
    /// Opens the data directory, joins the cluster through `control` (metadata, then
    /// registration), opens the logs to match the metadata, and unfences itself with a first
    /// heartbeat.
    /// Call [`Broker::follow_metadata`] on a task afterwards.
    pub async fn open(
        config: BrokerConfig,
        control: Arc<dyn ControlPlane>,
    ) -> Result<Arc<Broker>, BrokerError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| LogError::Io {
            path: config.data_dir.clone(),
            source,
        })?;
        let (link, metadata) = ControllerLink::join(Arc::clone(&control), &config).await?;
        let snapshot = metadata.borrow().clone();
        let log_defaults = config.log_defaults.clone();
        let logs = LogManager::open(
            &config.data_dir,
            crate::log::SegmentCache::DEFAULT_CAPACITY,
            |tp| {
                snapshot
                    .topics
                    .get(&tp.topic)
                    .and_then(|t| topic_log_config(&log_defaults, t).ok())
                    .unwrap_or_else(|| log_defaults.clone())
            },
        )?;
        let groups = Arc::new(GroupService::new(config.group.clone()));
        let transactions = Arc::new(TxnService::new(
            TxnConfig {
                transaction_max_timeout_ms: config.transactions.max_timeout_ms,
                transactional_id_expiration_ms: config.transactions.id_expiration_ms,
                remove_expired_transactional_id_cleanup_interval_ms: config
                    .transactions
                    .remove_expired_interval_ms,
                ..TxnConfig::default()
            },
            config.transactions.abort_timed_out_interval_ms,
        ));
        let broker = Arc::new(Broker {
            config,
            logs: Mutex::new(logs),
            control,
            link,
            metadata,
            applied: Mutex::new(Arc::clone(&snapshot)),
            applied_version: watch::channel(snapshot.version).0,
            partitions: RwLock::new(HashMap::new()),
            appended: watch::channel(0).0,
            producer_ids: tokio::sync::Mutex::default(),
            metrics: Metrics::new(),
            groups,
            replication: ReplicaManager::default(),
            transactions,
        });
        broker.transactions.set_broker(Arc::downgrade(&broker));
        broker
            .replication
            .set_control_plane(Arc::clone(&broker.control));
        broker.replication.set_broker_epoch(broker.link.epoch());
        broker.sync_partitions()?;
        // Fenced until now: the logs are recovered and open before this broker can be made
        // a leader (Kafka keeps a broker fenced until its logs are loaded).
        if let Err(e) = broker.link.heartbeat().await {
            warn!(error = %e, "first heartbeat failed; the broker stays fenced until one succeeds");
        }
        broker.catch_up_unfenced().await?;
        Ok(broker)
    }

    /// Waits (up to [`METADATA_WAIT`]) for the image in which this incarnation is unfenced —
    /// the one whose elections made it leader again — and applies it, so the broker serves
    /// its partitions as soon as it reports ready.
    async fn catch_up_unfenced(&self) -> Result<(), BrokerError> {
        let me = BrokerId(self.config.node_id);
        let epoch = self.link.epoch();
        let mut images = self.metadata.clone();
        let unfenced = images.wait_for(|m| {
            m.brokers
                .get(&me)
                .is_some_and(|b| b.epoch == epoch && !b.fenced)
        });
        match tokio::time::timeout(METADATA_WAIT, unfenced).await {
            Ok(Ok(_)) => {}
            _ => warn!("not unfenced by the controller yet; serving with the metadata at hand"),
        }
        self.apply_metadata()
    }

    /// Applies every metadata image the controller publishes, until the task is aborted.
    pub async fn follow_metadata(self: Arc<Self>) {
        let mut images = self.metadata.clone();
        loop {
            if images.changed().await.is_err() {
                warn!("the controller's metadata stream ended; no further changes are applied");
                return;
            }
            let broker = Arc::clone(&self);
            match tokio::task::spawn_blocking(move || broker.apply_metadata()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "applying a metadata change failed"),
                Err(e) => warn!(error = %e, "applying a metadata change panicked"),
            }
        }
    }

    /// Makes the logs match the current image: deletes the logs of topics the controller
    /// deleted (by topic id), then opens, reconfigures and re-roles the rest.
    pub fn apply_metadata(&self) -> Result<(), BrokerError> {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.metadata();
        if current.version <= applied.version && current.cluster_id == applied.cluster_id {
            return Ok(());
        }
        let live: std::collections::HashSet<TopicId> =
            current.topics.values().map(|t| t.id).collect();
        for gone in applied.topics.values().filter(|t| !live.contains(&t.id)) {
            let name = gone.name.as_str();
            info!(
                topic = name,
                "topic deleted by the controller; deleting its logs"
            );
            self.groups.topic_deleted(name);
            if let Err(e) = self.delete_topic_logs(name) {
                warn!(topic = name, error = %e, "deleting the topic's logs failed");
            }
        }
        self.delete_moved_replicas(&applied, &current);
        // A re-registration (the controller lost this broker) brings a new epoch.
        self.replication.set_broker_epoch(self.link.epoch());
        let synced = self.sync_partitions();
        *applied = Arc::clone(&current);
        self.applied_version.send_replace(current.version);
        synced
    }

    /// Deletes the logs of partitions whose replicas no longer include this broker (a
    /// reassignment moved them away), as Kafka's StopReplica with deletion does.
    fn delete_moved_replicas(&self, before: &ClusterMetadata, after: &ClusterMetadata) {
        let me = BrokerId(self.config.node_id);
        for topic in after.topics.values() {
            let Some(old) = before
                .topic(topic.name.as_str())
                .filter(|t| t.id == topic.id)
            else {
                continue;
            };
            for (was, now) in old.partitions.iter().zip(&topic.partitions) {
                if !was.replicas.contains(&me) || now.replicas.contains(&me) {
                    continue;
                }
                let tp = TopicPartition::new(topic.name.as_str(), now.partition);
                info!(partition = %tp, "replica moved off this broker; deleting its log");
                let removed = self
                    .partitions
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&tp);
                // Step down first: acks=all produce requests parked on this replica are
                // answered NOT_LEADER_OR_FOLLOWER now rather than at their timeout.
                if let Some(removed) = removed
                    && let Err(e) = removed
                        .replica
                        .apply(&removed.log, now, crate::log::now_ms())
                {
                    warn!(partition = %tp, error = %e, "stepping down from a moved replica failed");
                }
                let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = logs.delete(&tp) {
                    warn!(partition = %tp, error = %e, "deleting the moved replica's log failed");
                }
            }
        }
    }

    /// Waits (up to [`METADATA_WAIT`]) until this broker has applied metadata `version`,
    /// e.g. the version a forwarded CreateTopics committed. Returns whether it has.
    pub async fn wait_applied(&self, version: u64) -> bool {
        let mut applied = self.applied_version.subscribe();
        let reached = tokio::time::timeout(METADATA_WAIT, applied.wait_for(|v| *v >= version));
        match reached.await {
            Ok(Ok(_)) => true,
            _ => {
                warn!(version, "metadata version not applied in time");
                false
            }
        }
    }

    /// Waits until `committed`'s version is applied, then returns its value.
    pub async fn applied<T>(&self, committed: Committed<T>) -> T {
        self.wait_applied(committed.version).await;
        committed.value
    }

    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.metadata.borrow().clone()
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let tp = TopicPartition::new(topic, partition);
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tp)
            .cloned()
    }

    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Opens logs for the partitions whose replicas include this broker, then has
    /// [`ReplicaManager::apply`] make each the leader or a follower as the metadata says.
    pub fn sync_partitions(&self) -> Result<(), BrokerError> {
        let me = BrokerId(self.config.node_id);
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        // Read under the lock, so concurrent syncs see the metadata in version order.
        let metadata = self.metadata();
        let mut partitions = self.partitions.write().unwrap_or_else(|p| p.into_inner());
        let mut wanted = HashMap::new();
        for topic in metadata.topics.values() {
            let config = topic_log_config(&self.config.log_defaults, topic).map_err(|source| {
                BrokerError::TopicConfig {
                    topic: topic.name.as_str().to_owned(),
                    source,
                }
            })?;
            for p in &topic.partitions {
                if !p.replicas.contains(&me) {
                    continue;
                }
                let tp = TopicPartition::new(topic.name.as_str(), p.partition);
                let mut log = logs.get_or_create(&tp, config.clone())?;
                if !topic.id.0.is_nil()
                    && let TopicIdCheck::Stray { found } = logs.check_topic_id(&tp, topic.id.0)?
                {
                    // A leftover of an earlier topic of this name (say, a crash between the
                    // controller's delete and the log deletion): never serve it as this one.
                    let moved = logs.set_aside_stray(&tp)?;
                    warn!(partition = %tp, %found, expected = %topic.id.0, moved_to = ?moved, "log belongs to an earlier topic of the same name; set aside as a stray");
                    log = logs.get_or_create(&tp, config.clone())?;
                    logs.check_topic_id(&tp, topic.id.0)?;
                }
                {
                    let mut l = log.write().unwrap_or_else(|p| p.into_inner());
                    if l.config() != &config {
                        l.set_config(config.clone());
                    }
                    l.set_producer_id_expiration_ms(self.config.producer_id_expiration_ms);
                }
                // The same log of the same topic keeps its partition and replication state.
                let partition = match partitions.get(&tp) {
                    Some(served)
                        if Arc::ptr_eq(&served.log, &log)
                            && served.replica.topic_id() == topic.id =>
                    {
                        served.clone()
                    }
                    _ => Arc::new(Partition {
                        tp: tp.clone(),
                        log,
                        replica: PartitionReplica::new(
                            me,
                            topic.id,
                            self.config.replication.lag_time_max_ms,
                        ),
                    }),
                };
                wanted.insert(tp, partition);
            }
        }
        // Logs with no partition in the metadata are kept: deleting them here would wipe a
        // broker whose metadata file was lost. DeleteTopics deletes logs explicitly.
        for tp in logs.partitions().filter(|tp| !wanted.contains_key(*tp)) {
            warn!(partition = %tp, "log has no partition in the cluster metadata; not served, left in place");
        }
        let served: Vec<Arc<Partition>> = wanted.values().cloned().collect();
        *partitions = wanted;
        drop(partitions);
        drop(logs);
        self.replication
            .apply(&self.config, &self.metrics, &metadata, &served);
        let led: Vec<Arc<Partition>> = served
            .into_iter()
            .filter(|p| p.replica.is_leader())
            .collect();
        self.transactions.sync(led.clone());
        self.groups.sync(led);
        Ok(())
    }

    /// Creates a topic through the controller unless it exists, and waits until its logs
    /// are open here. Returns the new topic, or `None` when it already existed (another
    /// request may have created it meanwhile).
    pub async fn create_topic_if_absent(
        &self,
        request: weir_controller::CreateTopic,
    ) -> Result<Option<TopicMetadata>, ControllerError> {
        match self.control.create_topic(request, false).await {
            Ok(created) => Ok(Some(self.applied(created).await)),
            Err(e)
                if e.kafka_error_code()
                    == kafka_protocol::ResponseError::TopicAlreadyExists.code() =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes the logs of a topic the controller deleted.
    fn delete_topic_logs(&self, topic: &str) -> Result<(), BrokerError> {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let mut partitions = self.partitions.write().unwrap_or_else(|p| p.into_inner());
        partitions.retain(|tp, _| tp.topic != topic);
        let doomed: Vec<TopicPartition> = logs
            .partitions()
            .filter(|tp| tp.topic == topic)
            .cloned()
            .collect();
        for tp in doomed {
            logs.delete(&tp)?;
        }
        Ok(())
    }

    /// Records that data was appended (wakes long-polling fetches).
    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n += 1);
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Flush, retention and checkpoints, run periodically.
    pub fn housekeeping(&self) -> Result<(), LogError> {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = logs.tick(crate::log::now_ms())?;
        if outcome.segments_deleted > 0 {
            info!(
                segments = outcome.segments_deleted,
                bytes = outcome.bytes_deleted,
                "retention deleted segments"
            );
        }
        // The cleaner holds a log's lock only to plan and to swap finished segments in; the
        // manager's lock is held throughout, which delays topic creation, not produce or fetch.
        match logs.clean(crate::log::now_ms()) {
            Ok(stats) => {
                if stats.segments_cleaned > 0 {
                    info!(
                        segments = stats.segments_cleaned,
                        bytes_read = stats.bytes_read,
                        bytes_written = stats.bytes_written,
                        records_removed = stats.records_removed,
                        tombstones_removed = stats.tombstones_removed,
                        "log cleaner compacted segments"
                    );
                }
                self.metrics.record_cleaning(&stats);
            }
            Err(error) => warn!(%error, "log cleaner failed"),
        }
        Ok(())
    }

    /// Clean shutdown of the storage: flush, close, checkpoints, clean-shutdown marker.
    pub fn shutdown_storage(self: Arc<Self>) -> Result<(), LogError> {
        let broker = match Arc::try_unwrap(self) {
            Ok(broker) => broker,
            Err(shared) => {
                warn!("broker state still shared at shutdown; flushing without the clean marker");
                let logs = shared.logs.lock().unwrap_or_else(|p| p.into_inner());
                for tp in logs.partitions() {
                    if let Some(log) = logs.get(tp) {
                        log.write().unwrap_or_else(|p| p.into_inner()).flush()?;
                    }
                }
                return logs.checkpoint();
            }
        };
        let Broker {
            logs,
            partitions,
            groups,
            transactions,
            ..
        } = broker;
        // The coordinators hold their partitions' logs; parked requests get NOT_COORDINATOR.
        groups.sync(Vec::new());
        transactions.sync(Vec::new());
        drop(groups);
        drop(transactions);
        drop(partitions);
        logs.into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .shutdown()
    }
}
