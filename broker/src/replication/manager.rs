//! [`ReplicaManager`]: the broker-wide side of replication (Kafka's `ReplicaManager`). It
//! applies each metadata image to the served partitions' [`super::PartitionReplica`]s, keeps one
//! fetcher task per leader this broker follows, runs the periodic ISR shrink check, sends ISR
//! changes to the controller through an [`IsrCommitter`], and keeps the replication metrics.
//!
//! It holds no strong reference to a partition outside a running operation (fetchers, the ISR
//! check and AlterPartition tasks hold `Weak`s), so dropping the broker's partition map
//! releases the logs; [`ReplicaManager::shutdown`] stops every task.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};
use weir_controller::{
    AlterPartition, BrokerEpoch, BrokerId, ClusterMetadata, ControlPlane, PartitionState,
    TopicMetadata,
};

use super::ReplicationConfig;
use super::fetcher::{self, Assignment, FetchTarget, FetcherContext};
use super::isr::IsrCommitter;
use super::state::{
    EligibleBrokers, FollowerFetch, FollowerFetchError, IsrChange, IsrFailure, IsrProposal,
    Transition,
};
use crate::broker::Partition;
use crate::config::BrokerConfig;
use crate::metrics::Metrics;

/// Pause before an AlterPartition the controller failed for another reason than the
/// partition's state is sent again (Kafka's `AlterPartitionManager` retries too).
const ALTER_PARTITION_RETRY: Duration = Duration::from_millis(500);

/// Milliseconds on a monotonic clock, for follower lag (a wall clock step must not drop or
/// keep followers in the ISR).
pub(crate) fn monotonic_ms() -> i64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as i64
}

/// The broker's replication: see the module docs. One per broker, a field of `Broker`.
#[derive(Debug, Default)]
pub struct ReplicaManager {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    committer: RwLock<Option<Arc<dyn IsrCommitter>>>,
    /// This broker's epoch from its registration; -1 until set.
    broker_epoch: Arc<AtomicI64>,
    /// Bumped when a high watermark moves other than by an append (a follower fetch, an ISR
    /// change), so consumers long-polling for data wake up.
    high_watermarks: watch::Sender<u64>,
    tasks: Mutex<Tasks>,
    metrics: OnceLock<Metrics>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager")
            .field("broker_epoch", &self.broker_epoch.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Tasks {
    me: Option<BrokerId>,
    config: ReplicationConfig,
    /// The metadata version applied last; older images are skipped.
    version: Option<u64>,
    /// Partitions served here, for the ISR check and the metrics.
    served: Vec<Weak<Partition>>,
    fetchers: BTreeMap<BrokerId, FetcherHandle>,
    isr_check: Option<JoinHandle<()>>,
    shut_down: bool,
}

struct FetcherHandle {
    assignment: watch::Sender<Assignment>,
    task: JoinHandle<()>,
}

/// Spawns on the current runtime; `None` (and a log line) outside one.
fn spawn<F>(what: &'static str, future: F) -> Option<JoinHandle<()>>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => Some(runtime.spawn(future)),
        Err(_) => {
            error!(what, "no async runtime to run replication on");
            None
        }
    }
}

/// The topic's `min.insync.replicas` (its override, else Kafka's default 1).
/// The topic's `min.insync.replicas`, or else the broker's default for it.
fn min_insync_replicas(topic: &TopicMetadata, broker_default: usize) -> usize {
    topic
        .configs
        .get("min.insync.replicas")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(broker_default)
}

impl ReplicaManager {
    /// Where ISR changes go. Until one is set, a proposed change stays pending (the leader
    /// keeps using the maximal ISR) until new metadata replaces it.
    pub fn set_isr_committer(&self, committer: Arc<dyn IsrCommitter>) {
        *self
            .inner
            .committer
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(committer);
    }

    /// Sends ISR changes to the controller through its control plane.
    pub fn set_control_plane(&self, plane: Arc<dyn ControlPlane>) {
        self.set_isr_committer(Arc::new(plane));
    }

    /// This broker's epoch from its registration: sent with follower fetches (Fetch v15+)
    /// and with AlterPartition.
    pub fn set_broker_epoch(&self, epoch: BrokerEpoch) {
        self.inner.broker_epoch.store(epoch.0, Ordering::Relaxed);
    }

    pub fn broker_epoch(&self) -> BrokerEpoch {
        BrokerEpoch(self.inner.broker_epoch.load(Ordering::Relaxed))
    }

    /// Changes whenever a high watermark moves without an append.
    pub fn subscribe_high_watermarks(&self) -> watch::Receiver<u64> {
        self.inner.high_watermarks.subscribe()
    }

    /// Applies `metadata` to the partitions served here (`served`: every partition whose
    /// replicas include this broker): each becomes leader or follower as the metadata says,
    /// fetchers start, change or stop to match, and the ISR check runs while this broker leads
    /// a partition with other replicas. An image older than one applied already is skipped.
    pub fn apply(
        &self,
        config: &BrokerConfig,
        metrics: &Metrics,
        metadata: &ClusterMetadata,
        served: &[Arc<Partition>],
    ) {
        let inner = &self.inner;
        let _ = inner.metrics.set(metrics.clone());
        let me = BrokerId(config.node_id);
        let mut tasks = inner.lock_tasks();
        if tasks.shut_down || tasks.version.is_some_and(|v| v > metadata.version) {
            return;
        }
        tasks.version = Some(metadata.version);
        tasks.me = Some(me);
        tasks.config = config.replication.clone();
        let eligible = EligibleBrokers::from_metadata(&metadata.brokers);
        // Followers fetch from their leader's endpoint on this listener.
        let inter_broker = config.inter_broker_listener();
        let now = monotonic_ms();
        let mut follows: BTreeMap<BrokerId, Assignment> = BTreeMap::new();
        let mut replicated_leader = false;
        for partition in served {
            let Some((topic, state)) = partition_state(metadata, partition) else {
                continue;
            };
            inner.apply_partition(config, partition, topic, state, &eligible, now);
            let replica = &partition.replica;
            replicated_leader |= replica.is_leader() && state.replicas.len() > 1;
            if let Some((leader, epoch)) = replica.follows() {
                let Some(info) = metadata.brokers.get(&leader) else {
                    warn!(partition = %partition.tp, %leader, "the leader is not in the metadata; cannot fetch from it");
                    continue;
                };
                let Some(endpoint) = info.listener(&inter_broker) else {
                    warn!(partition = %partition.tp, %leader, listener = %inter_broker, "the leader has no endpoint on the inter-broker listener; cannot fetch from it");
                    continue;
                };
                let assignment = follows.entry(leader).or_insert_with(|| Assignment {
                    host: endpoint.host.clone(),
                    port: endpoint.port,
                    partitions: BTreeMap::new(),
                });
                assignment.partitions.insert(
                    partition.tp.clone(),
                    FetchTarget {
                        partition: Arc::downgrade(partition),
                        leader_epoch: epoch,
                    },
                );
            }
        }
        tasks.served = served.iter().map(Arc::downgrade).collect();
        inner.reconcile_fetchers(&mut tasks, me, follows);
        if replicated_leader && tasks.isr_check.as_ref().is_none_or(JoinHandle::is_finished) {
            let interval = Duration::from_millis((tasks.config.lag_time_max_ms / 2).max(1) as u64);
            tasks.isr_check = spawn("ISR check", isr_check(Arc::downgrade(inner), interval));
        }
        drop(tasks);
        inner.refresh_gauges();
        inner.high_watermark_moved();
    }

    /// Records a follower's fetch on the leader (see
    /// [`super::PartitionReplica::record_follower_fetch`]); an ISR expansion it causes goes to the
    /// controller, a moved high watermark wakes consumers.
    pub fn record_follower_fetch(
        &self,
        partition: &Arc<Partition>,
        fetch: FollowerFetch,
    ) -> Result<(), FollowerFetchError> {
        let outcome = partition
            .replica
            .record_follower_fetch(&partition.log, fetch)?;
        if outcome.high_watermark.is_some() {
            self.inner.high_watermark_moved();
        }
        if let Some(proposal) = outcome.proposal {
            info!(partition = %partition.tp, replica = %fetch.replica, isr = ?proposal.new_isr, "follower caught up; expanding the ISR");
            submit(&self.inner, partition, proposal);
        }
        Ok(())
    }

    /// The leaders this broker runs a fetcher for.
    pub fn fetching_from(&self) -> Vec<BrokerId> {
        self.inner.lock_tasks().fetchers.keys().copied().collect()
    }

    /// Stops every fetcher and the ISR check, and waits for them. Later metadata is ignored.
    pub async fn shutdown(&self) {
        let (fetchers, isr_check) = {
            let mut tasks = self.inner.lock_tasks();
            tasks.shut_down = true;
            tasks.served.clear();
            (std::mem::take(&mut tasks.fetchers), tasks.isr_check.take())
        };
        for (_, handle) in fetchers {
            drop(handle.assignment);
            handle.task.abort();
            let _ = handle.task.await;
        }
        if let Some(task) = isr_check {
            task.abort();
            let _ = task.await;
        }
    }
}

/// The topic and partition state of a served partition in `metadata`.
fn partition_state<'a>(
    metadata: &'a ClusterMetadata,
    partition: &Partition,
) -> Option<(&'a TopicMetadata, &'a PartitionState)> {
    let topic = metadata.topics.get(&partition.tp.topic)?;
    let index = usize::try_from(partition.tp.partition).ok()?;
    Some((topic, topic.partitions.get(index)?))
}

impl Inner {
    fn lock_tasks(&self) -> MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn high_watermark_moved(&self) {
        self.high_watermarks.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn apply_partition(
        &self,
        config: &BrokerConfig,
        partition: &Partition,
        topic: &TopicMetadata,
        state: &PartitionState,
        eligible: &EligibleBrokers,
        now: i64,
    ) {
        let replica = &partition.replica;
        replica.configure(
            config.replication.lag_time_max_ms,
            min_insync_replicas(topic, config.min_insync_replicas),
            eligible.clone(),
        );
        let tp = &partition.tp;
        match replica.apply(&partition.log, state, now) {
            Ok(Transition::NewLeaderEpoch {
                epoch,
                start_offset,
            }) => {
                info!(partition = %tp, epoch, %start_offset, isr = ?state.isr, "leading partition");
            }
            Ok(Transition::NewFollowerEpoch { leader, epoch }) => {
                info!(partition = %tp, epoch, ?leader, "following partition");
            }
            Ok(Transition::LeaderUpdated { committed }) => {
                debug!(partition = %tp, isr = ?state.isr, replicas = ?state.replicas, "partition updated");
                if let Some(change) = committed {
                    self.count(&change);
                }
            }
            Ok(Transition::Stale) => {
                debug!(partition = %tp, leader_epoch = state.leader_epoch, partition_epoch = state.partition_epoch, "ignoring partition state older than the one applied");
            }
            Ok(Transition::Unchanged | Transition::FollowerUpdated) => {}
            Err(e) => {
                error!(partition = %tp, error = %e, "recording the new leader epoch in the log failed");
            }
        }
    }

    fn count(&self, change: &IsrChange) {
        let Some(metrics) = self.metrics.get() else {
            return;
        };
        match change {
            IsrChange::Expand(_) => metrics.isr_expands.inc(),
            IsrChange::Shrink(_) => metrics.isr_shrinks.inc(),
        }
    }

    fn refresh_gauges(&self) {
        let Some(metrics) = self.metrics.get() else {
            return;
        };
        let served = self.lock_tasks().served.clone();
        let (mut leaders, mut under) = (0, 0);
        for partition in served.iter().filter_map(Weak::upgrade) {
            if partition.replica.is_leader() {
                leaders += 1;
                under += i64::from(partition.replica.is_under_replicated());
            }
        }
        metrics.leader_count.set(leaders);
        metrics.under_replicated_partitions.set(under);
    }

    fn reconcile_fetchers(
        &self,
        tasks: &mut Tasks,
        me: BrokerId,
        mut follows: BTreeMap<BrokerId, Assignment>,
    ) {
        let config = tasks.config.clone();
        tasks.fetchers.retain(|leader, handle| {
            match follows.remove(leader) {
                Some(assignment) if !handle.task.is_finished() => {
                    handle.assignment.send_replace(assignment);
                    true
                }
                Some(assignment) => {
                    // The task ended (it cannot on its own; a panic, say): start it again.
                    follows.insert(*leader, assignment);
                    false
                }
                None => {
                    debug!(%leader, "no partition left to fetch from this leader");
                    false
                }
            }
        });
        let Some(metrics) = self.metrics.get() else {
            return;
        };
        for (leader, assignment) in follows {
            let (sender, receiver) = watch::channel(assignment);
            let ctx = FetcherContext {
                me,
                leader,
                config: config.clone(),
                broker_epoch: self.broker_epoch.clone(),
                metrics: metrics.clone(),
            };
            if let Some(task) = spawn("replica fetcher", fetcher::run(ctx, receiver)) {
                tasks.fetchers.insert(
                    leader,
                    FetcherHandle {
                        assignment: sender,
                        task,
                    },
                );
            }
        }
    }
}

/// The periodic ISR check (Kafka's `isr-expiration` task, every half
/// `replica.lag.time.max.ms`). Ends when the manager is gone.
async fn isr_check(inner: Weak<Inner>, interval: Duration) {
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let served = inner.lock_tasks().served.clone();
        for partition in served.iter().filter_map(Weak::upgrade) {
            if !partition.replica.is_leader() {
                continue;
            }
            let now = monotonic_ms();
            if let Some(proposal) = partition.replica.maybe_shrink_isr(&partition.log, now) {
                info!(partition = %partition.tp, isr = ?proposal.new_isr, change = ?proposal.change, "followers lag more than replica.lag.time.max.ms; shrinking the ISR");
                submit(&inner, &partition, proposal);
            }
        }
        inner.refresh_gauges();
    }
}

/// Sends an ISR change to the controller and applies the answer (Kafka's
/// `submitAlterPartition`).
fn submit(inner: &Arc<Inner>, partition: &Arc<Partition>, proposal: IsrProposal) {
    let committer = inner
        .committer
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let Some(committer) = committer else {
        warn!(partition = %partition.tp, isr = ?proposal.new_isr, "no controller to send the ISR change to; it stays pending until new metadata");
        return;
    };
    let Some(me) = inner.lock_tasks().me else {
        return;
    };
    let request = AlterPartition {
        broker: me,
        broker_epoch: BrokerEpoch(inner.broker_epoch.load(Ordering::Relaxed)),
        topic_id: partition.replica.topic_id(),
        partition: partition.tp.partition,
        leader_epoch: proposal.leader_epoch,
        partition_epoch: proposal.partition_epoch,
        new_isr: proposal.new_isr.clone(),
    };
    let weak = Arc::downgrade(partition);
    let inner = inner.clone();
    spawn("AlterPartition", async move {
        loop {
            let result = committer.alter_partition(request.clone()).await;
            let Some(partition) = weak.upgrade() else {
                return;
            };
            let tp = &partition.tp;
            match result {
                Ok(committed) => {
                    let now = monotonic_ms();
                    match partition.replica.isr_committed(
                        &partition.log,
                        proposal.id,
                        &committed,
                        now,
                    ) {
                        Some(change) => {
                            info!(partition = %tp, isr = ?committed.isr, partition_epoch = committed.partition_epoch, "ISR change committed");
                            inner.count(&change);
                            inner.high_watermark_moved();
                        }
                        None => {
                            debug!(partition = %tp, "ISR change committed, but the partition moved on meanwhile");
                        }
                    }
                    inner.refresh_gauges();
                    return;
                }
                Err(e) => match partition.replica.isr_failed(proposal.id, e.code) {
                    IsrFailure::Retry => {
                        warn!(partition = %tp, error = %e, "ISR change failed; sending it again");
                        tokio::time::sleep(ALTER_PARTITION_RETRY).await;
                    }
                    IsrFailure::Reset => {
                        info!(partition = %tp, error = %e, "controller did not apply the ISR change; back to the committed ISR");
                        return;
                    }
                    IsrFailure::AwaitMetadata => {
                        info!(partition = %tp, error = %e, "ISR change refused; waiting for newer metadata");
                        return;
                    }
                    IsrFailure::Ignored => return,
                },
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::RwLock;

    use weir_controller::{BrokerInfo, Listener, TopicId, TopicName};

    use super::*;
    use crate::log::{Log, LogConfig, OpenOptions, SegmentCache};
    use crate::replication::PartitionReplica;
    use crate::types::TopicPartition;

    const ME: i32 = 1;

    fn partition(dir: &std::path::Path, id: TopicId) -> Arc<Partition> {
        let log = Log::open(
            dir,
            LogConfig::default(),
            OpenOptions::default(),
            Arc::new(SegmentCache::new(4)),
        )
        .unwrap();
        Arc::new(Partition {
            tp: TopicPartition::new("t", 0),
            log: Arc::new(RwLock::new(log)),
            replica: PartitionReplica::new(BrokerId(ME), id, 30_000),
        })
    }

    fn metadata(version: u64, id: TopicId, leader: i32, leader_epoch: i32) -> ClusterMetadata {
        let mut state = PartitionState::new(0, vec![BrokerId(ME), BrokerId(2)]);
        state.leader = Some(BrokerId(leader));
        state.leader_epoch = leader_epoch;
        state.partition_epoch = leader_epoch;
        let topic = TopicMetadata {
            name: TopicName::new("t").unwrap(),
            id,
            partitions: vec![state],
            configs: BTreeMap::new(),
        };
        ClusterMetadata {
            cluster_id: "c".into(),
            version,
            brokers: [ME, 2]
                .into_iter()
                .map(|b| {
                    (
                        BrokerId(b),
                        BrokerInfo::new(
                            BrokerId(b),
                            None,
                            vec![Listener::new("PLAINTEXT", "127.0.0.1", 1)],
                        ),
                    )
                })
                .collect(),
            topics: BTreeMap::from([("t".to_string(), topic)]),
            next_producer_id: 0,
            last_broker_epoch: BrokerEpoch::default(),
        }
    }

    #[tokio::test]
    async fn fetchers_follow_the_metadata_and_stop_when_the_partition_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let id = TopicId::random();
        let served = vec![partition(dir.path(), id)];
        let (config, metrics) = (BrokerConfig::default(), Metrics::new());
        let manager = ReplicaManager::default();

        manager.apply(&config, &metrics, &metadata(1, id, 2, 1), &served);
        assert_eq!(manager.fetching_from(), vec![BrokerId(2)]);
        assert_eq!(served[0].replica.follows(), Some((BrokerId(2), 1)));
        assert_eq!(metrics.leader_count.get(), 0);

        // Leadership moves here: no more fetching; the partition counts as led, and as
        // under-replicated once its ISR shrinks (not yet).
        manager.apply(&config, &metrics, &metadata(2, id, ME, 2), &served);
        assert!(manager.fetching_from().is_empty());
        assert!(served[0].replica.is_leader());
        assert_eq!(metrics.leader_count.get(), 1);
        assert_eq!(metrics.under_replicated_partitions.get(), 0);

        // An older image arriving late changes nothing.
        manager.apply(&config, &metrics, &metadata(1, id, 2, 1), &served);
        assert!(served[0].replica.is_leader());
        assert!(manager.fetching_from().is_empty());

        // Following again, then the partition is no longer served here.
        manager.apply(&config, &metrics, &metadata(3, id, 2, 3), &served);
        assert_eq!(manager.fetching_from(), vec![BrokerId(2)]);
        manager.apply(&config, &metrics, &metadata(4, id, 2, 3), &[]);
        assert!(manager.fetching_from().is_empty());
        assert_eq!(metrics.leader_count.get(), 0);
        manager.shutdown().await;
        manager.apply(&config, &metrics, &metadata(5, id, 2, 4), &served);
        assert!(
            manager.fetching_from().is_empty(),
            "nothing starts after shutdown"
        );
    }
}
