//! Shared by the gRPC tests: [`FakePlane`], a small in-memory [`ControlPlane`] that
//! records every call and keeps a metadata image it publishes on each commit, and
//! helpers to serve it on 127.0.0.1 and to reach it with a `RemoteControlPlane`.
//!
//! The fake follows Kafka's rules only as far as the tests need answers and errors
//! with their codes; the real rules belong to the controller and its own tests.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use weir_controller::grpc::{ClientOptions, ControlPlaneService, RemoteControlPlane, serve};
use weir_controller::registry::RegisterBroker;
use weir_controller::{
    AlterPartition, BrokerEpoch, BrokerId, BrokerInfo, ClusterMetadata, Committed, ConfigChange,
    ConfigOp, ControlPlane, ControlledShutdownReply, ControllerError, CreateTopic, ElectionResult,
    ElectionType, Heartbeat, HeartbeatReply, OngoingReassignment, PartitionRef, PartitionState,
    ReassignmentChange, Registered, TopicId, TopicMetadata, TopicName, TopicRef,
};

pub(crate) const CLUSTER: &str = "Lq6c0FmwTfiBPD2sxFvTAQ";
pub(crate) const SESSION_TIMEOUT_MS: u64 = 9000;

// Kafka error codes the fake answers with.
pub(crate) const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub(crate) const FENCED_LEADER_EPOCH: i16 = 74;
pub(crate) const STALE_BROKER_EPOCH: i16 = 77;
pub(crate) const ELECTION_NOT_NEEDED: i16 = 84;
pub(crate) const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
pub(crate) const BROKER_ID_NOT_REGISTERED: i16 = 102;
pub(crate) const INCONSISTENT_CLUSTER_ID: i16 = 104;
pub(crate) const INVALID_UPDATE_VERSION: i16 = 108;
pub(crate) const INVALID_REPLICATION_FACTOR: i16 = 38;

/// One call the fake received, with its arguments as the trait passed them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Call {
    RegisterBroker(RegisterBroker),
    BrokerHeartbeat(Heartbeat),
    ControlledShutdown(BrokerId, BrokerEpoch),
    CreateTopic(CreateTopic, bool),
    DeleteTopic(TopicRef),
    CreatePartitions(String, i32, Option<Vec<Vec<BrokerId>>>, bool),
    AlterTopicConfigs(String, ConfigChange, bool),
    AllocateProducerIds(BrokerId, BrokerEpoch, u32),
    AlterPartition(AlterPartition),
    ElectLeaders(ElectionType, Option<Vec<PartitionRef>>),
    AlterReassignments(Vec<ReassignmentChange>),
    ListReassignments(Option<Vec<PartitionRef>>),
}

#[derive(Debug)]
pub(crate) struct FakePlane {
    image: Mutex<ClusterMetadata>,
    published: watch::Sender<Arc<ClusterMetadata>>,
    calls: Mutex<Vec<Call>>,
    watchers: AtomicUsize,
}

pub(crate) fn empty_image(cluster_id: &str, version: u64) -> ClusterMetadata {
    ClusterMetadata {
        cluster_id: cluster_id.into(),
        version,
        brokers: BTreeMap::new(),
        topics: BTreeMap::new(),
        next_producer_id: 0,
        last_broker_epoch: BrokerEpoch(0),
    }
}

fn remote(code: i16, message: impl Into<String>) -> ControllerError {
    ControllerError::Remote {
        code,
        message: message.into(),
    }
}

impl FakePlane {
    pub(crate) fn new() -> Arc<FakePlane> {
        FakePlane::with_image(empty_image(CLUSTER, 1))
    }

    pub(crate) fn with_image(image: ClusterMetadata) -> Arc<FakePlane> {
        let (published, _) = watch::channel(Arc::new(image.clone()));
        Arc::new(FakePlane {
            image: Mutex::new(image),
            published,
            calls: Mutex::new(Vec::new()),
            watchers: AtomicUsize::new(0),
        })
    }

    pub(crate) fn image(&self) -> ClusterMetadata {
        self.image.lock().unwrap().clone()
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// How many times `watch_metadata` was called.
    pub(crate) fn watchers(&self) -> usize {
        self.watchers.load(Ordering::SeqCst)
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    /// Changes the image with `change`; on success bumps the version and publishes it.
    pub(crate) fn commit<T>(
        &self,
        change: impl FnOnce(&mut ClusterMetadata) -> Result<T, ControllerError>,
    ) -> Result<Committed<T>, ControllerError> {
        let mut image = self.image.lock().unwrap();
        let mut next = image.clone();
        let value = change(&mut next)?;
        next.version += 1;
        *image = next;
        self.published.send_replace(Arc::new(image.clone()));
        Ok(Committed {
            value,
            version: image.version,
        })
    }

    fn read<T>(&self, read: impl FnOnce(&ClusterMetadata) -> T) -> T {
        read(&self.image.lock().unwrap())
    }
}

fn current_broker(
    image: &ClusterMetadata,
    broker: BrokerId,
    epoch: BrokerEpoch,
) -> Result<(), ControllerError> {
    let info = image.brokers.get(&broker).ok_or_else(|| {
        remote(
            BROKER_ID_NOT_REGISTERED,
            format!("broker {broker} is not registered"),
        )
    })?;
    if info.epoch != epoch {
        return Err(remote(
            STALE_BROKER_EPOCH,
            format!(
                "broker {broker} sent epoch {epoch}, current is {}",
                info.epoch
            ),
        ));
    }
    Ok(())
}

fn place(
    image: &ClusterMetadata,
    first: i32,
    count: i32,
    rf: usize,
) -> Result<Vec<PartitionState>, ControllerError> {
    let brokers: Vec<BrokerId> = image.brokers.keys().copied().collect();
    if rf == 0 || rf > brokers.len() {
        return Err(remote(
            INVALID_REPLICATION_FACTOR,
            format!("replication factor {rf} with {} brokers", brokers.len()),
        ));
    }
    Ok((first..first + count)
        .map(|p| {
            let replicas = (0..rf)
                .map(|j| brokers[(p as usize + j) % brokers.len()])
                .collect();
            PartitionState::new(p, replicas)
        })
        .collect())
}

fn topic_mut<'a>(
    image: &'a mut ClusterMetadata,
    name: &str,
) -> Result<&'a mut TopicMetadata, ControllerError> {
    image
        .topics
        .get_mut(name)
        .ok_or_else(|| ControllerError::UnknownTopic { name: name.into() })
}

fn partition_mut<'a>(
    image: &'a mut ClusterMetadata,
    at: &PartitionRef,
) -> Result<&'a mut PartitionState, ControllerError> {
    topic_mut(image, &at.topic)?
        .partitions
        .get_mut(usize::try_from(at.partition).unwrap_or(usize::MAX))
        .ok_or_else(|| remote(UNKNOWN_TOPIC_OR_PARTITION, format!("no partition {at:?}")))
}

fn elect(state: &mut PartitionState, election: ElectionType) -> Result<(), ControllerError> {
    let wanted = match election {
        ElectionType::Preferred => state.replicas.first().copied(),
        ElectionType::Unclean => state.isr.first().or(state.replicas.first()).copied(),
    };
    if state.leader == wanted || wanted.is_none() {
        return Err(remote(
            ELECTION_NOT_NEEDED,
            "Leader election not needed for topic partition.",
        ));
    }
    state.leader = wanted;
    state.leader_epoch += 1;
    state.partition_epoch += 1;
    Ok(())
}

fn reassign(
    state: &mut PartitionState,
    target: Option<&Vec<BrokerId>>,
) -> Result<(), ControllerError> {
    match target {
        Some(target) => {
            let old: Vec<BrokerId> = state
                .replicas
                .iter()
                .filter(|r| !state.adding_replicas.contains(r))
                .copied()
                .collect();
            state.adding_replicas = target
                .iter()
                .filter(|r| !old.contains(r))
                .copied()
                .collect();
            state.removing_replicas = old
                .iter()
                .filter(|r| !target.contains(r))
                .copied()
                .collect();
            state.replicas = target.clone();
            state
                .replicas
                .extend(state.removing_replicas.iter().copied());
        }
        None if state.adding_replicas.is_empty() && state.removing_replicas.is_empty() => {
            return Err(remote(
                NO_REASSIGNMENT_IN_PROGRESS,
                "No reassignment in progress for this partition.",
            ));
        }
        None => {
            let adding = std::mem::take(&mut state.adding_replicas);
            state.replicas.retain(|r| !adding.contains(r));
            state.removing_replicas.clear();
        }
    }
    state.partition_epoch += 1;
    Ok(())
}

#[async_trait::async_trait]
impl ControlPlane for FakePlane {
    async fn watch_metadata(
        &self,
    ) -> Result<watch::Receiver<Arc<ClusterMetadata>>, ControllerError> {
        self.watchers.fetch_add(1, Ordering::SeqCst);
        Ok(self.published.subscribe())
    }

    async fn register_broker(
        &self,
        request: RegisterBroker,
    ) -> Result<Registered, ControllerError> {
        self.record(Call::RegisterBroker(request.clone()));
        if request.cluster_id != self.read(|image| image.cluster_id.clone()) {
            return Err(remote(
                INCONSISTENT_CLUSTER_ID,
                format!("cluster id '{}' is not this cluster's", request.cluster_id),
            ));
        }
        let committed = self.commit(|image| {
            if let Some(known) = image.brokers.get(&request.id)
                && known.incarnation == Some(request.incarnation)
            {
                return Ok(known.epoch);
            }
            let epoch = BrokerEpoch(image.last_broker_epoch.0 + 1);
            image.last_broker_epoch = epoch;
            let mut info =
                BrokerInfo::new(request.id, request.rack.clone(), request.listeners.clone());
            info.epoch = epoch;
            info.incarnation = Some(request.incarnation);
            info.fenced = true;
            image.brokers.insert(request.id, info);
            Ok(epoch)
        })?;
        Ok(Registered {
            broker_epoch: committed.value,
            session_timeout_ms: SESSION_TIMEOUT_MS,
        })
    }

    async fn broker_heartbeat(
        &self,
        request: Heartbeat,
    ) -> Result<HeartbeatReply, ControllerError> {
        self.record(Call::BrokerHeartbeat(request));
        let committed = self.commit(|image| {
            current_broker(image, request.broker, request.broker_epoch)?;
            let info = image.brokers.get_mut(&request.broker).unwrap();
            info.fenced = info.in_controlled_shutdown;
            Ok(info.fenced)
        })?;
        Ok(HeartbeatReply {
            fenced: committed.value,
        })
    }

    async fn controlled_shutdown(
        &self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> Result<ControlledShutdownReply, ControllerError> {
        self.record(Call::ControlledShutdown(broker, broker_epoch));
        let committed = self.commit(|image| {
            current_broker(image, broker, broker_epoch)?;
            image
                .brokers
                .get_mut(&broker)
                .unwrap()
                .in_controlled_shutdown = true;
            let mut remaining = 0;
            for state in image
                .topics
                .values_mut()
                .flat_map(|t| t.partitions.iter_mut())
            {
                if state.leader != Some(broker) {
                    continue;
                }
                match state.isr.iter().find(|r| **r != broker) {
                    Some(&other) => {
                        state.leader = Some(other);
                        state.isr.retain(|r| *r != broker);
                        state.leader_epoch += 1;
                        state.partition_epoch += 1;
                    }
                    None => remaining += 1,
                }
            }
            Ok(remaining)
        })?;
        Ok(ControlledShutdownReply {
            remaining_leaders: committed.value,
        })
    }

    async fn create_topic(
        &self,
        request: CreateTopic,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        self.record(Call::CreateTopic(request.clone(), validate_only));
        let plan = |image: &ClusterMetadata| {
            let name = TopicName::new(&request.name)?;
            if image.topics.contains_key(&request.name) {
                return Err(ControllerError::TopicAlreadyExists {
                    name: request.name.clone(),
                });
            }
            let partitions = match request.assignments.as_ref().filter(|a| !a.is_empty()) {
                Some(assignments) => (0..)
                    .zip(assignments)
                    .map(|(p, replicas)| PartitionState::new(p, replicas.clone()))
                    .collect(),
                None => {
                    let rf = usize::try_from(request.replication_factor.unwrap_or(1)).unwrap_or(0);
                    place(image, 0, request.num_partitions.unwrap_or(1), rf)?
                }
            };
            Ok(TopicMetadata {
                name,
                id: TopicId::random(),
                partitions,
                configs: request.configs.clone(),
            })
        };
        if validate_only {
            let (topic, version) = self.read(|image| (plan(image), image.version));
            return Ok(Committed {
                value: topic?,
                version,
            });
        }
        self.commit(|image| {
            let topic = plan(image)?;
            image.topics.insert(request.name.clone(), topic.clone());
            Ok(topic)
        })
    }

    async fn delete_topic(
        &self,
        topic: TopicRef,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        self.record(Call::DeleteTopic(topic.clone()));
        self.commit(|image| {
            let name = match &topic {
                TopicRef::Name(name) => image
                    .topic(name)
                    .map(|t| t.name.to_string())
                    .ok_or_else(|| ControllerError::UnknownTopic { name: name.clone() })?,
                TopicRef::Id(id) => image
                    .topic_by_id(*id)
                    .map(|t| t.name.to_string())
                    .ok_or(ControllerError::UnknownTopicId { id: *id })?,
            };
            Ok(image.topics.remove(&name).unwrap())
        })
    }

    async fn create_partitions(
        &self,
        topic: &str,
        total_count: i32,
        assignments: Option<Vec<Vec<BrokerId>>>,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        self.record(Call::CreatePartitions(
            topic.into(),
            total_count,
            assignments.clone(),
            validate_only,
        ));
        self.commit(|image| {
            let snapshot = image.clone();
            let existing = topic_mut(image, topic)?;
            let current = existing.partitions.len() as i32;
            if total_count <= current {
                return Err(ControllerError::PartitionsNotIncreased {
                    name: topic.into(),
                    current,
                    requested: total_count,
                });
            }
            let added = match &assignments {
                Some(lists) => (current..)
                    .zip(lists)
                    .map(|(p, replicas)| PartitionState::new(p, replicas.clone()))
                    .collect(),
                None => place(
                    &snapshot,
                    current,
                    total_count - current,
                    existing.replication_factor(),
                )?,
            };
            existing.partitions.extend(added);
            Ok(existing.clone())
        })
    }

    async fn alter_topic_configs(
        &self,
        topic: &str,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<Committed<TopicMetadata>, ControllerError> {
        self.record(Call::AlterTopicConfigs(
            topic.into(),
            change.clone(),
            validate_only,
        ));
        self.commit(|image| {
            let existing = topic_mut(image, topic)?;
            match &change {
                ConfigChange::Replace(configs) => existing.configs = configs.clone(),
                ConfigChange::Incremental(ops) => {
                    for op in ops {
                        match op {
                            ConfigOp::Set(key, value) | ConfigOp::Append(key, value) => {
                                existing.configs.insert(key.clone(), value.clone());
                            }
                            ConfigOp::Delete(key) | ConfigOp::Subtract(key, _) => {
                                existing.configs.remove(key);
                            }
                        }
                    }
                }
            }
            Ok(existing.clone())
        })
    }

    async fn allocate_producer_ids(
        &self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
        count: u32,
    ) -> Result<Range<i64>, ControllerError> {
        self.record(Call::AllocateProducerIds(broker, broker_epoch, count));
        let committed = self.commit(|image| {
            current_broker(image, broker, broker_epoch)?;
            let first = image.next_producer_id;
            image.next_producer_id += i64::from(count);
            Ok(first..image.next_producer_id)
        })?;
        Ok(committed.value)
    }

    async fn alter_partition(
        &self,
        request: AlterPartition,
    ) -> Result<Committed<PartitionState>, ControllerError> {
        self.record(Call::AlterPartition(request.clone()));
        self.commit(|image| {
            current_broker(image, request.broker, request.broker_epoch)?;
            let name = image
                .topic_by_id(request.topic_id)
                .map(|t| t.name.to_string())
                .ok_or(ControllerError::UnknownTopicId {
                    id: request.topic_id,
                })?;
            let at = PartitionRef {
                topic: name,
                partition: request.partition,
            };
            let state = partition_mut(image, &at)?;
            if state.leader_epoch != request.leader_epoch {
                return Err(remote(FENCED_LEADER_EPOCH, "The leader epoch is fenced."));
            }
            if state.partition_epoch != request.partition_epoch {
                return Err(remote(
                    INVALID_UPDATE_VERSION,
                    "The partition epoch is stale.",
                ));
            }
            state.isr = request.new_isr.clone();
            state.partition_epoch += 1;
            Ok(state.clone())
        })
    }

    async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<PartitionRef>>,
    ) -> Result<Vec<ElectionResult>, ControllerError> {
        self.record(Call::ElectLeaders(election, partitions.clone()));
        let committed = self.commit(|image| {
            let wanted = partitions.clone().unwrap_or_else(|| all_partitions(image));
            Ok(wanted
                .into_iter()
                .map(|partition| {
                    let result = partition_mut(image, &partition).and_then(|s| elect(s, election));
                    ElectionResult { partition, result }
                })
                .collect())
        })?;
        Ok(committed.value)
    }

    async fn alter_reassignments(
        &self,
        changes: Vec<ReassignmentChange>,
    ) -> Result<Vec<(PartitionRef, Result<(), ControllerError>)>, ControllerError> {
        self.record(Call::AlterReassignments(changes.clone()));
        let committed = self.commit(|image| {
            Ok(changes
                .iter()
                .map(|change| {
                    let result = partition_mut(image, &change.partition)
                        .and_then(|state| reassign(state, change.target.as_ref()));
                    (change.partition.clone(), result)
                })
                .collect())
        })?;
        Ok(committed.value)
    }

    async fn list_reassignments(
        &self,
        partitions: Option<Vec<PartitionRef>>,
    ) -> Result<Vec<OngoingReassignment>, ControllerError> {
        self.record(Call::ListReassignments(partitions.clone()));
        Ok(self.read(|image| {
            let wanted: Option<BTreeSet<PartitionRef>> =
                partitions.map(|p| p.into_iter().collect());
            all_partitions(image)
                .into_iter()
                .filter(|p| wanted.as_ref().is_none_or(|w| w.contains(p)))
                .filter_map(|p| {
                    let state = &image.topics[&p.topic].partitions[p.partition as usize];
                    let ongoing =
                        !state.adding_replicas.is_empty() || !state.removing_replicas.is_empty();
                    ongoing.then(|| OngoingReassignment {
                        partition: p.clone(),
                        replicas: state.replicas.clone(),
                        adding: state.adding_replicas.clone(),
                        removing: state.removing_replicas.clone(),
                    })
                })
                .collect()
        }))
    }
}

fn all_partitions(image: &ClusterMetadata) -> Vec<PartitionRef> {
    image
        .topics
        .values()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| PartitionRef {
                topic: topic.name.to_string(),
                partition: p.partition,
            })
        })
        .collect()
}

/// A control-plane server on 127.0.0.1, stopped by [`Server::stop`].
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Server {
    /// Serves `plane` on a free port.
    pub(crate) async fn start(plane: Arc<FakePlane>) -> Server {
        Server::start_on("127.0.0.1:0".parse().unwrap(), plane).await
    }

    /// Serves `plane` on `addr` (a restart on the port an earlier server used).
    pub(crate) async fn start_on(addr: SocketAddr, plane: Arc<FakePlane>) -> Server {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let service = ControlPlaneService::new(plane);
        let task = tokio::spawn(serve(listener, service, async {
            let _ = stopped.await;
        }));
        Server { addr, stop, task }
    }

    /// Shuts the server down and waits until it has stopped.
    pub(crate) async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops within 10 s")
            .unwrap()
            .unwrap();
    }

    pub(crate) fn endpoint(&self) -> String {
        self.addr.to_string()
    }
}

/// Short timeouts and backoffs, so failure tests finish quickly.
pub(crate) fn fast_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        first_image_timeout: Duration::from_secs(5),
        reconnect_backoff: Duration::from_millis(20),
        reconnect_backoff_max: Duration::from_millis(200),
        ..ClientOptions::default()
    }
}

pub(crate) async fn client(endpoints: &[String]) -> RemoteControlPlane {
    RemoteControlPlane::connect(endpoints.to_vec(), fast_options())
        .await
        .unwrap()
}

/// A port nothing listens on (bound, then released).
pub(crate) async fn dead_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Waits until `images` holds an image `ready` accepts, or fails after 10 s.
pub(crate) async fn wait_for_image(
    images: &mut watch::Receiver<Arc<ClusterMetadata>>,
    ready: impl FnMut(&Arc<ClusterMetadata>) -> bool,
) -> Arc<ClusterMetadata> {
    tokio::time::timeout(Duration::from_secs(10), images.wait_for(ready))
        .await
        .expect("the image arrives within 10 s")
        .expect("the watch is still open")
        .clone()
}
