//! The controller as a state machine under random operation sequences: brokers
//! register (new incarnations and retries), heartbeat, go silent and are fenced, shut
//! down; leaders propose ISRs; administrators reassign, cancel, elect and create
//! topics; the controller restarts. After every step the committed image must keep
//! the invariants of `metadata`, `registry` and `partitions`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use uuid::Uuid;
use weir_controller::{
    AlterPartition, BrokerEpoch, BrokerId, ClusterMetadata, Controller, ControllerConfig,
    CreateTopic, ElectionType, Heartbeat, Listener, MemoryMetadataStore, MetadataStore,
    PartitionRef, PartitionState, ReassignmentChange, RegisterBroker, TopicId,
};

const BROKERS: i32 = 4;

#[derive(Debug, Clone)]
enum Op {
    Register {
        broker: i32,
        retry: bool,
    },
    Heartbeat {
        broker: i32,
    },
    HeartbeatAll,
    /// Moves the clock (sessions expire, rebalancing comes due) and ticks.
    Advance {
        ms: u64,
    },
    Tick,
    Shutdown {
        broker: i32,
    },
    Alter {
        topic: usize,
        partition: usize,
        mask: u8,
        only_live: bool,
        stale: bool,
    },
    Reassign {
        topic: usize,
        partition: usize,
        target: Vec<i32>,
    },
    Cancel {
        topic: usize,
        partition: usize,
    },
    Elect {
        preferred: bool,
        all: bool,
        topic: usize,
        partition: usize,
    },
    CreateTopic {
        partitions: i32,
        replication_factor: i16,
        unclean: bool,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let broker = 0..BROKERS;
    let index = 0..8usize;
    prop_oneof![
        1 => (broker.clone(), any::<bool>()).prop_map(|(broker, retry)| Op::Register { broker, retry }),
        3 => broker.clone().prop_map(|broker| Op::Heartbeat { broker }),
        6 => Just(Op::HeartbeatAll),
        // Mostly within a session, sometimes past it.
        4 => (0..3_000u64).prop_map(|ms| Op::Advance { ms }),
        1 => (0..12_000u64).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Tick),
        1 => broker.clone().prop_map(|broker| Op::Shutdown { broker }),
        // Half the proposals take every replica the leader may add.
        6 => (index.clone(), index.clone(), prop_oneof![Just(u8::MAX), any::<u8>()], prop::bool::weighted(0.8), prop::bool::weighted(0.1))
            .prop_map(|(topic, partition, mask, only_live, stale)| Op::Alter { topic, partition, mask, only_live, stale }),
        2 => (index.clone(), index.clone(), prop::collection::vec(0..BROKERS + 1, 0..4))
            .prop_map(|(topic, partition, target)| Op::Reassign { topic, partition, target }),
        1 => (index.clone(), index.clone()).prop_map(|(topic, partition)| Op::Cancel { topic, partition }),
        2 => (any::<bool>(), any::<bool>(), index.clone(), index)
            .prop_map(|(preferred, all, topic, partition)| Op::Elect { preferred, all, topic, partition }),
        2 => (1..4i32, 1..4i16, prop::bool::weighted(0.3))
            .prop_map(|(partitions, replication_factor, unclean)| Op::CreateTopic { partitions, replication_factor, unclean }),
        1 => Just(Op::Reopen),
    ]
}

impl Op {
    /// Operations that may take replicas out of ISRs on purpose (fencing, draining, a
    /// leader's shrink, a cancelled reassignment); the others must not shrink an ISR
    /// below what the live replicas allow.
    fn may_shrink_isrs(&self) -> bool {
        matches!(
            self,
            Op::Register { .. }
                | Op::Advance { .. }
                | Op::Shutdown { .. }
                | Op::Alter { .. }
                | Op::Cancel { .. }
        )
    }

    /// Operations that may fence or drain brokers, so a reassignment that completes
    /// can lose a target replica from the ISR within the same step.
    fn changes_liveness(&self) -> bool {
        matches!(
            self,
            Op::Register { .. } | Op::Advance { .. } | Op::Shutdown { .. }
        )
    }
}

struct Harness {
    store: MemoryMetadataStore,
    controller: Controller<MemoryMetadataStore>,
    config: ControllerConfig,
    now: Instant,
    incarnations: BTreeMap<i32, Uuid>,
    /// The highest epoch the controller has handed out, as seen by the brokers.
    max_issued: BrokerEpoch,
}

impl Harness {
    async fn new() -> Harness {
        let config = ControllerConfig {
            leader_imbalance_check_interval_seconds: 5,
            ..ControllerConfig::default()
        };
        let store = MemoryMetadataStore::new();
        let now = Instant::now();
        let controller = Controller::open_with_config(store.clone(), config, now)
            .await
            .unwrap();
        Harness {
            store,
            controller,
            config,
            now,
            incarnations: BTreeMap::new(),
            max_issued: BrokerEpoch(0),
        }
    }

    fn metadata(&self) -> &ClusterMetadata {
        self.controller.metadata()
    }

    fn epoch(&self, broker: i32) -> BrokerEpoch {
        self.metadata()
            .brokers
            .get(&BrokerId(broker))
            .map_or(BrokerEpoch(0), |b| b.epoch)
    }

    fn pick(&self, topic: usize, partition: usize) -> Option<(String, PartitionState)> {
        let topics = &self.metadata().topics;
        if topics.is_empty() {
            return None;
        }
        let (name, t) = topics.iter().nth(topic % topics.len())?;
        let p = t.partitions.get(partition % t.partitions.len())?;
        Some((name.clone(), p.clone()))
    }

    fn topic_id(&self, name: &str) -> TopicId {
        self.metadata().topics[name].id
    }

    async fn register(&mut self, broker: i32, retry: bool) {
        let incarnation = match self.incarnations.get(&broker) {
            Some(&known) if retry => known,
            _ => Uuid::new_v4(),
        };
        let request = RegisterBroker {
            id: BrokerId(broker),
            incarnation,
            cluster_id: self.metadata().cluster_id.clone(),
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: format!("b{broker}"),
                port: 9092,
            }],
            rack: None,
        };
        let known = self.incarnations.get(&broker) == Some(&incarnation);
        let before = self.epoch(broker);
        let epoch = self.controller.register_broker(request).await.unwrap();
        if known {
            assert_eq!(epoch, before, "a retry gets its epoch back");
        } else {
            assert!(epoch > self.max_issued, "{epoch} after {}", self.max_issued);
            self.max_issued = epoch;
            self.incarnations.insert(broker, incarnation);
        }
    }

    async fn heartbeat(&mut self, broker: i32) {
        let request = Heartbeat {
            broker: BrokerId(broker),
            broker_epoch: self.epoch(broker),
        };
        let result = self.controller.broker_heartbeat(request, self.now).await;
        if self.incarnations.contains_key(&broker) {
            let reply = result.unwrap();
            let info = &self.metadata().brokers[&BrokerId(broker)];
            assert_eq!(reply.fenced, !info.is_live());
        } else {
            assert_eq!(result.unwrap_err().kafka_error_code(), 102);
        }
    }

    async fn alter(&mut self, op: &Op) {
        let Op::Alter {
            topic,
            partition,
            mask,
            only_live,
            stale,
        } = *op
        else {
            return;
        };
        let Some((name, p)) = self.pick(topic, partition) else {
            return;
        };
        let Some(leader) = p.leader else { return };
        let brokers = &self.metadata().brokers;
        let live = |b: &BrokerId| brokers.get(b).is_some_and(|i| i.is_live());
        let mut isr = vec![leader];
        for (bit, &replica) in p.replicas.iter().enumerate() {
            let chosen = mask & (1 << bit) != 0 && replica != leader;
            if chosen && (!only_live || live(&replica)) {
                isr.push(replica);
            }
        }
        let request = AlterPartition {
            broker: leader,
            broker_epoch: self.epoch(leader.0),
            topic_id: self.topic_id(&name),
            partition: p.partition,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch - i32::from(stale),
            new_isr: isr,
        };
        let result = self.controller.alter_partition(request).await;
        if stale {
            assert_eq!(result.unwrap_err().kafka_error_code(), 95);
        } else if let Ok(committed) = result {
            assert_eq!(
                self.metadata().topics[&name].partitions[p.partition as usize],
                committed
            );
        }
    }

    async fn apply(&mut self, op: &Op) {
        match op {
            Op::Register { broker, retry } => self.register(*broker, *retry).await,
            Op::Heartbeat { broker } => self.heartbeat(*broker).await,
            // Split into single heartbeats by `run`.
            Op::HeartbeatAll => {}
            Op::Advance { ms } => {
                self.now += Duration::from_millis(*ms);
                self.controller.tick(self.now).await.unwrap();
            }
            Op::Tick => {
                self.controller.tick(self.now).await.unwrap();
            }
            Op::Shutdown { broker } => {
                let result = self
                    .controller
                    .controlled_shutdown(BrokerId(*broker), self.epoch(*broker))
                    .await;
                if let Ok(reply) = result {
                    let led = self
                        .metadata()
                        .topics
                        .values()
                        .flat_map(|t| &t.partitions)
                        .filter(|p| p.leader == Some(BrokerId(*broker)))
                        .count();
                    assert_eq!(reply.remaining_leaders as usize, led);
                }
            }
            Op::Alter { .. } => self.alter(op).await,
            Op::Reassign {
                topic,
                partition,
                target,
            } => {
                let Some((name, p)) = self.pick(*topic, *partition) else {
                    return;
                };
                let change = ReassignmentChange {
                    partition: PartitionRef {
                        topic: name,
                        partition: p.partition,
                    },
                    target: Some(target.iter().copied().map(BrokerId).collect()),
                };
                self.controller
                    .alter_reassignments(vec![change])
                    .await
                    .unwrap();
            }
            Op::Cancel { topic, partition } => {
                let Some((name, p)) = self.pick(*topic, *partition) else {
                    return;
                };
                let change = ReassignmentChange {
                    partition: PartitionRef {
                        topic: name,
                        partition: p.partition,
                    },
                    target: None,
                };
                self.controller
                    .alter_reassignments(vec![change])
                    .await
                    .unwrap();
            }
            Op::Elect {
                preferred,
                all,
                topic,
                partition,
            } => {
                let election = if *preferred {
                    ElectionType::Preferred
                } else {
                    ElectionType::Unclean
                };
                let partitions = if *all {
                    None
                } else {
                    self.pick(*topic, *partition).map(|(name, p)| {
                        vec![PartitionRef {
                            topic: name,
                            partition: p.partition,
                        }]
                    })
                };
                self.controller
                    .elect_leaders(election, partitions)
                    .await
                    .unwrap();
            }
            Op::CreateTopic {
                partitions,
                replication_factor,
                unclean,
            } => {
                let mut configs = BTreeMap::new();
                if *unclean {
                    configs.insert("unclean.leader.election.enable".into(), "true".into());
                }
                let request = CreateTopic {
                    name: format!("t{}", self.metadata().topics.len()),
                    num_partitions: Some(*partitions),
                    replication_factor: Some(*replication_factor),
                    configs,
                    ..CreateTopic::default()
                };
                let live = self
                    .metadata()
                    .brokers
                    .values()
                    .filter(|b| b.is_live())
                    .count();
                let result = self.controller.create_topic(request, false).await;
                if usize::try_from(*replication_factor).unwrap() > live {
                    assert_eq!(result.unwrap_err().kafka_error_code(), 38);
                } else {
                    result.unwrap();
                }
            }
            Op::Reopen => {
                self.controller =
                    Controller::open_with_config(self.store.clone(), self.config, self.now)
                        .await
                        .unwrap();
            }
        }
    }

    /// Every unfenced broker has a session, and no fenced one.
    fn check_sessions(&self) {
        for (id, broker) in &self.metadata().brokers {
            let has_session = self.controller.session_deadline(*id).is_some();
            assert_eq!(has_session, !broker.fenced, "broker {id}: {broker:?}");
        }
    }
}

fn unique(ids: &[BrokerId]) -> bool {
    ids.iter().collect::<BTreeSet<_>>().len() == ids.len()
}

fn check_structure(metadata: &ClusterMetadata) {
    for topic in metadata.topics.values() {
        for p in &topic.partitions {
            let shown = format!("{}-{}: {p:?}", topic.name.as_str(), p.partition);
            assert!(!p.isr.is_empty(), "empty ISR {shown}");
            assert!(unique(&p.isr) && unique(&p.replicas), "{shown}");
            assert!(
                p.isr.iter().all(|b| p.replicas.contains(b)),
                "ISR ⊆ replicas {shown}"
            );
            if let Some(leader) = p.leader {
                assert!(p.isr.contains(&leader), "leader ∈ ISR {shown}");
            }
            assert!(
                p.adding_replicas.iter().all(|b| p.replicas.contains(b))
                    && p.removing_replicas.iter().all(|b| p.replicas.contains(b))
                    && p.adding_replicas
                        .iter()
                        .all(|b| !p.removing_replicas.contains(b)),
                "{shown}"
            );
        }
    }
}

/// Fenced brokers lead nothing; brokers in controlled shutdown lead only where they
/// are the last ISR member; neither is in an ISR except as its last member.
fn check_liveness(metadata: &ClusterMetadata) {
    for (id, broker) in &metadata.brokers {
        if broker.is_live() {
            continue;
        }
        for topic in metadata.topics.values() {
            for p in &topic.partitions {
                let shown = format!("broker {id} {broker:?} in {p:?}");
                if p.isr.contains(id) {
                    assert_eq!(p.isr, vec![*id], "only as the last ISR member: {shown}");
                }
                if p.leader == Some(*id) {
                    assert!(!broker.fenced, "a fenced broker leads: {shown}");
                    assert_eq!(p.isr, vec![*id], "{shown}");
                }
            }
        }
    }
}

fn check_brokers(before: &ClusterMetadata, after: &ClusterMetadata) {
    assert!(after.last_broker_epoch >= before.last_broker_epoch);
    let mut seen = BTreeSet::new();
    for (id, broker) in &after.brokers {
        assert!(broker.epoch <= after.last_broker_epoch, "broker {id}");
        assert!(seen.insert(broker.epoch), "epoch {} twice", broker.epoch);
        if let Some(old) = before.brokers.get(id) {
            assert!(broker.epoch >= old.epoch, "broker {id}'s epoch went back");
        }
    }
}

fn partitions_by_id(metadata: &ClusterMetadata) -> BTreeMap<(TopicId, i32), &PartitionState> {
    metadata
        .topics
        .values()
        .flat_map(|t| t.partitions.iter().map(move |p| ((t.id, p.partition), p)))
        .collect()
}

fn check_partition_changes(op: &Op, before: &ClusterMetadata, after: &ClusterMetadata) {
    let old = partitions_by_id(before);
    let unclean_topics: BTreeSet<TopicId> = after
        .topics
        .values()
        .filter(|t| t.configs.contains_key("unclean.leader.election.enable"))
        .map(|t| t.id)
        .collect();
    for (key, p) in partitions_by_id(after) {
        let Some(was) = old.get(&key) else { continue };
        let shown = format!("{op:?}: {was:?} -> {p:?}");
        let leader_changed = p.leader != was.leader;
        let changed = leader_changed
            || p.isr != was.isr
            || p.replicas != was.replicas
            || p.adding_replicas != was.adding_replicas
            || p.removing_replicas != was.removing_replicas;
        // One commit per step at most: epochs move by one, exactly with their cause.
        assert_eq!(
            p.leader_epoch - was.leader_epoch,
            i32::from(leader_changed),
            "{shown}"
        );
        assert_eq!(
            p.partition_epoch - was.partition_epoch,
            i32::from(changed),
            "{shown}"
        );

        if leader_changed && let Some(leader) = p.leader {
            let info = &after.brokers[&leader];
            assert!(info.is_live(), "elected a broker that is not live: {shown}");
            let clean = was.isr.contains(&leader);
            let allowed = unclean_topics.contains(&key.0)
                || matches!(
                    op,
                    Op::Elect {
                        preferred: false,
                        ..
                    } | Op::Alter { .. }
                );
            assert!(clean || allowed, "unclean election: {shown}");
        }

        let live_replicas = p
            .replicas
            .iter()
            .filter(|b| after.brokers.get(b).is_some_and(|i| i.is_live()))
            .count();
        let involved = was.is_reassigning() || p.is_reassigning();
        if involved && !op.may_shrink_isrs() {
            assert!(
                p.isr.len() >= was.isr.len().min(live_replicas),
                "ISR shrank during a reassignment: {shown}"
            );
        }
        let completed = was.is_reassigning() && !p.is_reassigning();
        if completed && !matches!(op, Op::Cancel { .. }) && !op.changes_liveness() {
            // KIP-455: a reassignment completes once every replica it adds (one outside the
            // replicas it started from) is in sync; a target within those completes at once.
            let original: Vec<BrokerId> = was
                .replicas
                .iter()
                .filter(|b| !was.adding_replicas.contains(b))
                .copied()
                .collect();
            assert!(
                p.replicas
                    .iter()
                    .filter(|b| !original.contains(b))
                    .all(|b| p.isr.contains(b)),
                "completed before the added replicas were in sync: {shown}"
            );
        }
    }
}

/// A running cluster (every broker registered and unfenced, a topic with three
/// replicas) followed by `ops`, with every `HeartbeatAll` split into one heartbeat per
/// broker, so that every step is one request.
fn steps(ops: Vec<Op>) -> Vec<Op> {
    let bootstrap = (0..BROKERS)
        .map(|broker| Op::Register {
            broker,
            retry: false,
        })
        .chain([
            Op::HeartbeatAll,
            Op::CreateTopic {
                partitions: 3,
                replication_factor: 3,
                unclean: false,
            },
        ]);
    bootstrap
        .chain(ops)
        .flat_map(|op| match op {
            Op::HeartbeatAll => (0..BROKERS)
                .map(|broker| Op::Heartbeat { broker })
                .collect(),
            other => vec![other],
        })
        .collect()
}

async fn run(ops: Vec<Op>) {
    let mut h = Harness::new().await;
    for op in &steps(ops) {
        let before: Arc<ClusterMetadata> = Arc::new(h.metadata().clone());
        h.apply(op).await;
        let after = h.metadata();
        assert!(
            after.version == before.version || after.version == before.version + 1,
            "{op:?}: one commit at most"
        );
        assert_eq!(
            h.store.load().await.unwrap().as_ref(),
            Some(after),
            "{op:?}"
        );
        assert_eq!(**h.controller.subscribe().borrow(), *after);
        check_structure(after);
        check_liveness(after);
        check_brokers(&before, after);
        check_partition_changes(op, &before, after);
        h.check_sessions();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn controller_invariants_hold_after_every_step(ops in prop::collection::vec(op(), 1..80)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(run(ops));
    }
}
