//! Replication between in-process brokers over real TCP: `Broker`s with
//! `weir_broker::server::run` on 127.0.0.1 port 0, all joined to ONE controller in the test
//! process (a `weir_controller::Controller` over a memory store, behind a
//! `LocalControlPlane`) the way `broker/src/main.rs` joins them: each registers a new
//! incarnation, heartbeats and follows the controller's metadata. Driven at the wire with
//! `kafka-protocol` messages.
//!
//! Every partition state is the controller's doing: the test topic is created with a manual
//! assignment once its brokers have registered; ISR changes are the leaders' own
//! AlterPartition requests; leadership moves by controlled shutdown and by session expiry
//! (with unclean election); a new replica arrives by reassignment; a restart is a new `Broker`
//! on the same data directory (a new incarnation, which fences the previous one). A broker a
//! test plays at the wire is registered with the controller directly. Nothing ticks the
//! controller unless a test wants a session to run out, so no broker is fenced and no
//! leadership moves behind a test's back.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, DeleteRecordsRequest, FetchRequest, ListOffsetsRequest,
    OffsetForLeaderEpochRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use common::{Rec, batch};
use weir_broker::broker::{Broker, Partition};
use weir_broker::config::{BrokerConfig, Listener};
use weir_broker::replication::LeaderConnection;
use weir_broker::server::NamedListener;
use weir_broker::types::Offset;
use weir_controller::{
    BrokerId, ClusterMetadata, ControlPlane, Controller, ControllerConfig, CreateTopic, Heartbeat,
    LocalControlPlane, MemoryMetadataStore, PartitionRef, PartitionState, ReassignmentChange,
    RegisterBroker,
};

const TOPIC: &str = "replicated";
const NONE: i16 = 0;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const REQUEST_TIMED_OUT: i16 = 7;
const NOT_ENOUGH_REPLICAS: i16 = 19;
const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// How long a test waits for replication or the controller to get somewhere.
const WAIT: Duration = Duration::from_secs(10);
/// `broker.session.timeout.ms` of the tests' controller: it matters only to a test that ticks
/// the controller. The brokers heartbeat every `HEARTBEAT_MS`, far within it.
const SESSION_TIMEOUT_MS: u64 = 2000;
const HEARTBEAT_MS: u64 = 100;

fn broker(id: i32) -> BrokerId {
    BrokerId(id)
}

fn brokers(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|&id| BrokerId(id)).collect()
}

/// The controller every broker of a test joins, and the brokers' data directories.
struct Cluster {
    dir: tempfile::TempDir,
    plane: Arc<LocalControlPlane<MemoryMetadataStore>>,
}

impl Cluster {
    async fn new() -> Cluster {
        let config = ControllerConfig {
            broker_session_timeout_ms: SESSION_TIMEOUT_MS,
            // Only a test's own operations move leadership.
            auto_leader_rebalance_enable: false,
            ..ControllerConfig::default()
        };
        let now = tokio::time::Instant::now().into_std();
        let controller = Controller::open_with_config(MemoryMetadataStore::new(), config, now)
            .await
            .expect("controller opens");
        Cluster {
            dir: tempfile::tempdir().unwrap(),
            plane: Arc::new(LocalControlPlane::new(controller)),
        }
    }

    fn data(&self, node: i32) -> PathBuf {
        self.dir.path().join(format!("b{node}"))
    }

    /// Starts broker `node` on its data directory (a restart when it ran before) and a new
    /// port, with its metadata follower and heartbeats running as in `main.rs`.
    async fn start(&self, node: i32, tune: impl FnOnce(&mut BrokerConfig)) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut config = config(node, &self.data(node), port);
        tune(&mut config);
        let control: Arc<dyn ControlPlane> = self.plane.clone();
        let broker = Broker::open(config, control).await.expect("broker opens");
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = vec![NamedListener::new("PLAINTEXT", listener)];
        let server = tokio::spawn(weir_broker::server::run(listeners, broker.clone(), async {
            let _ = stopped.await;
        }));
        let tasks = [
            tokio::spawn(broker.clone().follow_metadata()),
            tokio::spawn(broker.link.clone().heartbeat_loop()),
        ];
        Running {
            broker,
            stop,
            server,
            tasks,
            port,
        }
    }

    /// Registers broker `node`, which the test plays at the wire (nothing serves its endpoint),
    /// and makes it live with a heartbeat when `live`; otherwise it stays fenced.
    async fn register_played(&self, node: i32, live: bool) {
        let request = RegisterBroker {
            id: broker(node),
            incarnation: uuid::Uuid::new_v4(),
            cluster_id: self.metadata().await.cluster_id,
            listeners: vec![weir_controller::Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 1,
            }],
            rack: None,
        };
        let registered = self
            .plane
            .register_broker(request)
            .await
            .expect("registered");
        if live {
            let heartbeat = Heartbeat {
                broker: broker(node),
                broker_epoch: registered.broker_epoch,
            };
            let reply = self
                .plane
                .broker_heartbeat(heartbeat)
                .await
                .expect("heartbeat");
            assert!(!reply.fenced, "broker {node} is live");
        }
    }

    /// The controller's committed metadata.
    async fn metadata(&self) -> ClusterMetadata {
        self.plane.controller().lock().await.metadata().clone()
    }

    /// Partition 0 of `TOPIC` as the controller committed it.
    async fn partition(&self) -> PartitionState {
        self.metadata().await.topics[TOPIC].partitions[0].clone()
    }

    /// Polls the committed partition until `check` holds, and returns it.
    async fn partition_when(
        &self,
        what: &str,
        check: impl Fn(&PartitionState) -> bool,
    ) -> PartitionState {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let partition = self.partition().await;
            if check(&partition) {
                return partition;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; the partition is {partition:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates `TOPIC` with one partition on `replicas` (the first live one leads) and waits
    /// until each of `running` has applied it. Returns the partition as created.
    async fn create_topic(
        &self,
        replicas: &[i32],
        configs: &[(&str, &str)],
        running: &[&Running],
    ) -> PartitionState {
        let request = CreateTopic {
            name: TOPIC.into(),
            assignments: Some(vec![brokers(replicas)]),
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..CreateTopic::default()
        };
        let created = self
            .plane
            .create_topic(request, false)
            .await
            .expect("topic created");
        for r in running {
            r.applied(created.version).await;
        }
        created.value.partitions[0].clone()
    }

    /// Waits until each of `running` has applied the controller's current metadata.
    async fn applied(&self, running: &[&Running]) {
        let version = self.metadata().await.version;
        for r in running {
            r.applied(version).await;
        }
    }

    /// Ticks the controller until broker `node`'s session runs out and it is fenced; no other
    /// broker may be fenced meanwhile.
    async fn fence_on_session_expiry(&self, node: i32) {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(SESSION_TIMEOUT_MS) + WAIT;
        loop {
            let report = self.plane.tick().await.expect("controller tick");
            assert!(
                report.fenced.iter().all(|&b| b == broker(node)),
                "only broker {node} was to be fenced: {report:?}"
            );
            if !report.fenced.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "broker {node}'s session did not run out"
            );
            tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS)).await;
        }
    }
}

/// A broker serving on a real socket.
struct Running {
    broker: Arc<Broker>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
    /// `follow_metadata` and `heartbeat_loop`.
    tasks: [JoinHandle<()>; 2],
    port: u16,
}

impl Running {
    async fn connect(&self) -> LeaderConnection {
        LeaderConnection::connect(
            "127.0.0.1",
            self.port,
            "test".into(),
            Duration::from_secs(10),
        )
        .await
        .expect("connect")
    }

    /// Waits until this broker has applied metadata `version`.
    async fn applied(&self, version: u64) {
        assert!(
            self.broker.wait_applied(version).await,
            "broker {} did not apply metadata version {version}",
            self.broker.config.node_id
        );
    }

    /// Partition 0 of `TOPIC`, which this broker must serve.
    fn partition(&self) -> Arc<Partition> {
        self.broker.partition(TOPIC, 0).expect("served")
    }

    /// Stops as a crashed broker would, as far as the controller knows (no controlled
    /// shutdown; heartbeats stop): stops serving, following the metadata and replicating, then
    /// closes the logs (the data directory is free again).
    async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        let _ = self.stop.send(());
        self.server.await.expect("server task");
        self.broker.replication.shutdown().await;
        let broker = self.broker;
        // A metadata change still being applied on a blocking thread holds the broker.
        eventually(WAIT, "the broker to be released", || {
            Arc::strong_count(&broker) == 1
        })
        .await;
        tokio::task::spawn_blocking(move || broker.shutdown_storage())
            .await
            .unwrap()
            .expect("clean shutdown");
    }
}

fn config(node: i32, data: &Path, port: u16) -> BrokerConfig {
    let listener = Listener {
        name: "PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port,
    };
    let mut config = BrokerConfig {
        node_id: node,
        listeners: vec![listener.clone()],
        advertised_listeners: vec![listener],
        data_dir: data.to_path_buf(),
        broker_heartbeat_interval_ms: HEARTBEAT_MS,
        ..BrokerConfig::default()
    };
    config.replication.fetch_wait_max_ms = 50;
    config.replication.fetch_backoff_ms = 50;
    config.replication.lag_time_max_ms = 1000;
    config
}

fn records(n: usize, tag: &str) -> Bytes {
    let recs: Vec<Rec> = (0..n)
        .map(|i| Rec::new(format!("{tag}-{i}"), 1_700_000_000_000 + i as i64))
        .collect();
    Bytes::from(batch(&recs))
}

/// Produce v9 to partition 0: `(error code, base offset)`.
async fn produce(
    conn: &mut LeaderConnection,
    acks: i16,
    timeout_ms: i32,
    records: Bytes,
) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let response = conn.send(9, &request).await.expect("produce");
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Fetch v12 of partition 0 from `offset`, as `replica_id` (-1: a consumer), not waiting.
async fn fetch(
    conn: &mut LeaderConnection,
    replica_id: i32,
    current_leader_epoch: i32,
    offset: i64,
) -> PartitionData {
    let request = FetchRequest::default()
        .with_replica_id(WireBrokerId(replica_id))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(current_leader_epoch)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let mut response = conn.send(12, &request).await.expect("fetch");
    response.responses.remove(0).partitions.remove(0)
}

/// Records in a fetch response's record bytes (whole batches).
fn record_count(data: &PartitionData) -> usize {
    let mut bytes = data.records.clone().unwrap_or_default();
    let mut n = 0;
    while !bytes.is_empty() {
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).expect("batch");
        n += set.records.len();
    }
    n
}

/// ListOffsets v4 "latest" (-1) or "earliest" (-2) of partition 0, as `replica_id`:
/// `(error code, offset)`.
async fn list_offset(conn: &mut LeaderConnection, replica_id: i32, timestamp: i64) -> (i16, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(WireBrokerId(replica_id))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let mut response = conn.send(4, &request).await.expect("ListOffsets");
    let p = response.topics.remove(0).partitions.remove(0);
    (p.error_code, p.offset)
}

/// DeleteRecords v2 of partition 0 below `offset`: `(error code, low watermark)`.
async fn delete_records(conn: &mut LeaderConnection, offset: i64) -> (i16, i64) {
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(offset),
                ]),
        ]);
    let mut response = conn.send(2, &request).await.expect("DeleteRecords");
    let p = response.topics.remove(0).partitions.remove(0);
    (p.error_code, p.low_watermark)
}

async fn offset_for_epoch(
    conn: &mut LeaderConnection,
    topic: &str,
    current_leader_epoch: i32,
    epoch: i32,
) -> EpochEndOffset {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(WireBrokerId(-1))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(current_leader_epoch)
                        .with_leader_epoch(epoch),
                ]),
        ]);
    let mut response = conn.send(4, &request).await.expect("OffsetForLeaderEpoch");
    response.topics.remove(0).partitions.remove(0)
}

fn log_of(broker: &Broker) -> weir_broker::log::SharedLog {
    broker.partition(TOPIC, 0).expect("served").log.clone()
}

fn offsets(broker: &Broker) -> (Offset, Offset) {
    let log = log_of(broker);
    let log = log.read().unwrap();
    (log.log_end_offset(), log.high_watermark())
}

/// The whole log's bytes.
fn log_bytes(broker: &Broker) -> Vec<u8> {
    let log = log_of(broker);
    let log = log.read().unwrap();
    log.read(log.log_start_offset(), usize::MAX >> 1, None)
        .unwrap()
        .map(|slice| slice.read_to_vec().unwrap())
        .unwrap_or_default()
}

fn epochs(broker: &Broker) -> Vec<(i32, u64)> {
    let log = log_of(broker);
    let log = log.read().unwrap();
    log.leader_epochs()
        .entries()
        .iter()
        .map(|e| (e.epoch.0, e.start_offset.0))
        .collect()
}

/// Polls `check` until it holds or `timeout` passes.
async fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_replicates_over_tcp_and_acks_all_waits_for_it() {
    let cluster = Cluster::new().await;
    let leader = cluster.start(1, |_| {}).await;
    let follower = cluster.start(2, |_| {}).await;
    let created = cluster
        .create_topic(
            &[1, 2],
            &[("min.insync.replicas", "2")],
            &[&leader, &follower],
        )
        .await;
    assert_eq!(
        (created.leader, created.isr.clone()),
        (Some(broker(1)), brokers(&[1, 2]))
    );
    let epoch = created.leader_epoch;
    assert!(leader.partition().replica.is_leader());
    assert_eq!(
        follower.partition().replica.follows(),
        Some((broker(1), epoch))
    );

    let mut conn = leader.connect().await;
    // acks=all is answered only once the follower has the batch: the high watermark passed it.
    assert_eq!(
        produce(&mut conn, -1, 10_000, records(5, "a")).await,
        (NONE, 0)
    );
    assert!(
        offsets(&follower.broker).0 >= Offset(5),
        "the follower has the batch"
    );
    assert_eq!(offsets(&leader.broker), (Offset(5), Offset(5)));
    assert_eq!(
        produce(&mut conn, 1, 10_000, records(3, "b")).await,
        (NONE, 5)
    );
    assert_eq!(
        produce(&mut conn, -1, 10_000, records(2, "c")).await,
        (NONE, 8)
    );
    eventually(WAIT, "the follower's high watermark", || {
        offsets(&follower.broker) == (Offset(10), Offset(10))
    })
    .await;
    assert_eq!(log_bytes(&follower.broker), log_bytes(&leader.broker));
    assert_eq!(epochs(&leader.broker), vec![(epoch, 0)]);
    assert_eq!(epochs(&follower.broker), vec![(epoch, 0)]);

    // Consumers read the committed records from the leader only.
    let data = fetch(&mut conn, -1, epoch, 0).await;
    assert_eq!((data.error_code, data.high_watermark), (NONE, 10));
    assert_eq!(record_count(&data), 10);
    let mut to_follower = follower.connect().await;
    let data = fetch(&mut to_follower, -1, epoch, 0).await;
    assert_eq!(data.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(
        produce(&mut to_follower, 1, 1000, records(1, "x")).await.0,
        NOT_LEADER_OR_FOLLOWER
    );
    assert_eq!(
        offset_for_epoch(&mut to_follower, TOPIC, epoch, epoch)
            .await
            .error_code,
        NOT_LEADER_OR_FOLLOWER
    );

    let metrics = &leader.broker.metrics;
    assert_eq!(metrics.leader_count.get(), 1);
    assert_eq!(metrics.under_replicated_partitions.get(), 0);
    assert_eq!(follower.broker.metrics.leader_count.get(), 0);
    let text = follower.broker.metrics.render();
    let lag = text
        .lines()
        .find(|l| {
            l.starts_with("weir_replication_lag_messages{") && l.contains(r#"topic="replicated""#)
        })
        .unwrap_or_else(|| panic!("no lag metric for the followed partition:\n{text}"));
    assert!(lag.ends_with(" 0"), "{lag}");
    // Nothing asked the controller to change the partition.
    assert_eq!(cluster.partition().await, created);
    follower.stop().await;
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_serves_followers_up_to_its_log_end_and_their_fetches_move_the_high_watermark() {
    let cluster = Cluster::new().await;
    // The ISR check must not drop replica 2 while the test plays it.
    let leader = cluster
        .start(1, |c| c.replication.lag_time_max_ms = 60_000)
        .await;
    // Broker 2 never runs: this test plays it at the wire. It is live, so it is in the ISR.
    cluster.register_played(2, true).await;
    let created = cluster.create_topic(&[1, 2], &[], &[&leader]).await;
    assert_eq!(created.isr, brokers(&[1, 2]));
    let epoch = created.leader_epoch;
    let mut conn = leader.connect().await;

    // acks=1 is answered at once; acks=all waits for replica 2 until the request times out.
    assert_eq!(
        produce(&mut conn, 1, 1000, records(4, "a")).await,
        (NONE, 0)
    );
    let (code, base) = produce(&mut conn, -1, 200, records(2, "b")).await;
    assert_eq!(
        (code, base),
        (REQUEST_TIMED_OUT, 4),
        "written, not replicated"
    );
    assert_eq!(offsets(&leader.broker), (Offset(6), Offset(0)));

    // "Latest" is the high watermark for consumers and the log end for replicas.
    assert_eq!(list_offset(&mut conn, -1, -1).await, (NONE, 0));
    assert_eq!(list_offset(&mut conn, 2, -1).await, (NONE, 6));
    // A consumer sees nothing below the high watermark; replica 2 reads up to the log end.
    let data = fetch(&mut conn, -1, epoch, 0).await;
    assert_eq!((data.error_code, record_count(&data)), (NONE, 0));
    let data = fetch(&mut conn, 2, epoch, 0).await;
    assert_eq!((data.error_code, data.high_watermark), (NONE, 0));
    assert_eq!(record_count(&data), 6);
    // Its next fetch offset says it has everything: the high watermark moves.
    let data = fetch(&mut conn, 2, epoch, 6).await;
    assert_eq!((data.error_code, record_count(&data)), (NONE, 0));
    assert_eq!(offsets(&leader.broker), (Offset(6), Offset(6)));
    let data = fetch(&mut conn, -1, epoch, 0).await;
    assert_eq!((data.high_watermark, record_count(&data)), (6, 6));

    // Fetches the leader refuses.
    assert_eq!(
        fetch(&mut conn, 2, epoch + 1, 6).await.error_code,
        UNKNOWN_LEADER_EPOCH
    );
    assert_eq!(
        fetch(&mut conn, 9, epoch, 0).await.error_code,
        UNKNOWN_LEADER_EPOCH
    );
    assert_eq!(
        fetch(&mut conn, 9, -1, 0).await.error_code,
        NOT_LEADER_OR_FOLLOWER
    );
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_is_refused_below_min_insync_replicas_and_answered_alone_when_allowed() {
    let cluster = Cluster::new().await;
    let leader = cluster.start(1, |_| {}).await;
    // Broker 2 registered but never heartbeat: it is fenced, so the new partition's ISR is the
    // leader alone.
    cluster.register_played(2, false).await;
    let created = cluster
        .create_topic(&[1, 2], &[("min.insync.replicas", "2")], &[&leader])
        .await;
    assert_eq!(
        (created.leader, created.isr),
        (Some(broker(1)), brokers(&[1]))
    );
    let mut conn = leader.connect().await;
    assert_eq!(
        produce(&mut conn, -1, 1000, records(1, "a")).await.0,
        NOT_ENOUGH_REPLICAS
    );
    assert_eq!(offsets(&leader.broker).0, Offset(0), "nothing written");
    // acks=1 is not held to min.insync.replicas; with the leader alone in the ISR the high
    // watermark follows its log end.
    assert_eq!(
        produce(&mut conn, 1, 1000, records(2, "b")).await,
        (NONE, 0)
    );
    assert_eq!(offsets(&leader.broker), (Offset(2), Offset(2)));
    assert_eq!(leader.broker.metrics.under_replicated_partitions.get(), 1);
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_isr_shrinks_when_a_follower_stops_and_expands_when_it_catches_up_again() {
    let cluster = Cluster::new().await;
    let leader = cluster.start(1, |_| {}).await;
    let follower = cluster.start(2, |_| {}).await;
    let created = cluster
        .create_topic(&[1, 2], &[], &[&leader, &follower])
        .await;
    let mut conn = leader.connect().await;
    assert_eq!(
        produce(&mut conn, -1, 10_000, records(3, "a")).await,
        (NONE, 0)
    );

    // The follower dies; as far as the controller knows it is still live, so only the
    // leader's ISR check can take it out.
    follower.stop().await;
    // A follower at the leader's log end stays in sync however long it is silent (Kafka's
    // rule); once the leader appends, it lags.
    assert_eq!(
        produce(&mut conn, 1, 10_000, records(2, "b")).await,
        (NONE, 3)
    );
    let shrunk = cluster
        .partition_when("the controller to commit the ISR shrink", |p| {
            p.isr == brokers(&[1])
        })
        .await;
    eventually(Duration::from_secs(5), "the shrink to be applied", || {
        leader.broker.metrics.isr_shrinks.get() == 1
    })
    .await;
    assert_eq!(leader.broker.metrics.under_replicated_partitions.get(), 1);
    // The leader alone is the ISR now: acks=all is answered right away.
    assert_eq!(
        produce(&mut conn, -1, 10_000, records(1, "c")).await,
        (NONE, 5)
    );

    // The follower comes back (a new incarnation on the same data directory), catches up and
    // rejoins.
    let follower = cluster.start(2, |_| {}).await;
    let expanded = cluster
        .partition_when("the controller to commit the ISR expansion", |p| {
            p.isr == brokers(&[1, 2])
        })
        .await;
    eventually(
        Duration::from_secs(5),
        "the expansion to be applied",
        || leader.broker.metrics.isr_expands.get() == 1,
    )
    .await;
    assert_eq!(leader.broker.metrics.under_replicated_partitions.get(), 0);
    assert_eq!(
        produce(&mut conn, -1, 10_000, records(1, "d")).await,
        (NONE, 6)
    );
    eventually(WAIT, "the follower to catch up", || {
        offsets(&follower.broker).0 == Offset(7)
    })
    .await;
    assert_eq!(log_bytes(&follower.broker), log_bytes(&leader.broker));
    // Both changes were the leader's, in the epoch it was elected in: one partition epoch each,
    // and the same leader and leader epoch throughout.
    let state = |p: &PartitionState| (p.leader, p.leader_epoch, p.partition_epoch);
    let (leader_id, epoch, partition_epoch) = state(&created);
    assert_eq!(leader_id, Some(broker(1)));
    assert_eq!(state(&shrunk), (leader_id, epoch, partition_epoch + 1));
    assert_eq!(state(&expanded), (leader_id, epoch, partition_epoch + 2));
    assert_eq!(cluster.partition().await, expanded);
    follower.stop().await;
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_truncates_a_divergent_tail_from_an_old_epoch_by_leader_epoch() {
    // KIP-101: both write 0..5 in epoch 0. Broker 1 shuts down; broker 2 leads epoch 1 and
    // writes 5..8, which nobody replicates, then crashes. Broker 1 comes back, and once broker
    // 2's session runs out the controller elects broker 1, the only live replica, for epoch 2
    // (unclean election), and it writes its own 5..10. When broker 2 returns it must cut
    // exactly its epoch-1 tail, keep 0..5, and copy the leader's 5..10.
    let cluster = Cluster::new().await;
    let b1 = cluster.start(1, |_| {}).await;
    let b2 = cluster.start(2, |_| {}).await;
    let unclean = [("unclean.leader.election.enable", "true")];
    let created = cluster.create_topic(&[1, 2], &unclean, &[&b1, &b2]).await;
    assert_eq!((created.leader, created.leader_epoch), (Some(broker(1)), 0));
    let mut conn = b1.connect().await;
    assert_eq!(
        produce(&mut conn, -1, 10_000, records(5, "shared")).await,
        (NONE, 0)
    );

    // Broker 1's controlled shutdown moves leadership to broker 2 (epoch 1); broker 1 stops
    // before broker 2 takes any write.
    assert!(
        b1.broker
            .link
            .controlled_shutdown(0, Duration::ZERO, || true)
            .await,
        "leadership moved off broker 1"
    );
    cluster.applied(&[&b1, &b2]).await;
    let moved = cluster.partition().await;
    assert_eq!(
        (moved.leader, moved.leader_epoch, moved.isr),
        (Some(broker(2)), 1, brokers(&[2]))
    );
    assert!(b2.partition().replica.is_leader());
    b1.stop().await;
    let mut conn = b2.connect().await;
    assert_eq!(
        produce(&mut conn, 1, 10_000, records(3, "divergent")).await,
        (NONE, 5)
    );
    assert_eq!(offsets(&b2.broker).0, Offset(8));
    assert_eq!(epochs(&b2.broker), vec![(0, 0), (1, 5)]);
    b2.stop().await;

    // Broker 1 comes back while broker 2 is down, and follows it, fetching nothing; broker 2's
    // session runs out, which elects broker 1.
    let b1 = cluster.start(1, |_| {}).await;
    assert_eq!(b1.partition().replica.follows(), Some((broker(2), 1)));
    cluster.fence_on_session_expiry(2).await;
    cluster.applied(&[&b1]).await;
    let elected = cluster.partition().await;
    assert_eq!(
        (elected.leader, elected.leader_epoch, elected.isr),
        (Some(broker(1)), 2, brokers(&[1]))
    );
    assert!(b1.partition().replica.is_leader());
    let mut conn = b1.connect().await;
    assert_eq!(
        produce(&mut conn, 1, 10_000, records(5, "leader")).await,
        (NONE, 5)
    );
    assert_eq!(epochs(&b1.broker), vec![(0, 0), (2, 5)]);

    // The leader's answers to OffsetsForLeaderEpoch.
    let answer = |e: &EpochEndOffset| (e.error_code, e.leader_epoch, e.end_offset);
    assert_eq!(
        answer(&offset_for_epoch(&mut conn, TOPIC, 2, 2).await),
        (NONE, 2, 10)
    );
    assert_eq!(
        answer(&offset_for_epoch(&mut conn, TOPIC, 2, 1).await),
        (NONE, 0, 5)
    );
    assert_eq!(
        answer(&offset_for_epoch(&mut conn, TOPIC, -1, 0).await),
        (NONE, 0, 5)
    );
    assert_eq!(
        answer(&offset_for_epoch(&mut conn, TOPIC, 2, 7).await),
        (NONE, -1, -1)
    );
    assert_eq!(
        offset_for_epoch(&mut conn, TOPIC, 1, 1).await.error_code,
        FENCED_LEADER_EPOCH
    );
    assert_eq!(
        offset_for_epoch(&mut conn, TOPIC, 3, 1).await.error_code,
        UNKNOWN_LEADER_EPOCH
    );
    assert_eq!(
        offset_for_epoch(&mut conn, "no-such-topic", -1, 0)
            .await
            .error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    // Broker 2 comes back as a follower of epoch 2 and converges on the leader's log.
    let b2 = cluster.start(2, |_| {}).await;
    eventually(WAIT, "the follower to converge", || {
        offsets(&b2.broker).0 == Offset(10)
    })
    .await;
    assert_eq!(log_bytes(&b2.broker), log_bytes(&b1.broker));
    assert_eq!(epochs(&b2.broker), vec![(0, 0), (2, 5)]);
    assert_eq!(epochs(&b1.broker), vec![(0, 0), (2, 5)]);
    let rejoined = cluster
        .partition_when("broker 2 to rejoin the ISR", |p| p.isr == brokers(&[1, 2]))
        .await;
    assert_eq!(
        (rejoined.leader, rejoined.leader_epoch),
        (Some(broker(1)), 2)
    );
    b2.stop().await;
    b1.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_leaders_log_start_restarts_its_log_there() {
    // The leader's log starts at 100 (DeleteRecords deleted the older records); a
    // reassignment adds broker 2, which has nothing. Its fetch from 0 is out of range: it asks
    // the leader for its log start and end and starts over at 100.
    let cluster = Cluster::new().await;
    let leader = cluster.start(1, |_| {}).await;
    let follower = cluster.start(2, |_| {}).await;
    cluster.create_topic(&[1], &[], &[&leader, &follower]).await;
    assert!(
        follower.broker.partition(TOPIC, 0).is_none(),
        "not a replica"
    );
    let mut conn = leader.connect().await;
    assert_eq!(
        produce(&mut conn, 1, 10_000, records(100, "deleted")).await,
        (NONE, 0)
    );
    assert_eq!(delete_records(&mut conn, 100).await, (NONE, 100));
    assert_eq!(
        produce(&mut conn, 1, 10_000, records(4, "kept")).await,
        (NONE, 100)
    );
    assert_eq!(list_offset(&mut conn, 2, -2).await, (NONE, 100));
    assert_eq!(list_offset(&mut conn, 2, -1).await, (NONE, 104));

    let target = ReassignmentChange {
        partition: PartitionRef {
            topic: TOPIC.into(),
            partition: 0,
        },
        target: Some(brokers(&[1, 2])),
    };
    let results = cluster
        .plane
        .alter_reassignments(vec![target])
        .await
        .expect("AlterPartitionReassignments");
    assert!(matches!(results.as_slice(), [(_, Ok(()))]), "{results:?}");
    cluster.applied(&[&leader, &follower]).await;
    eventually(WAIT, "the follower to restart and catch up", || {
        offsets(&follower.broker) == (Offset(104), Offset(104))
    })
    .await;
    let log = log_of(&follower.broker);
    assert_eq!(log.read().unwrap().log_start_offset(), Offset(100));
    drop(log);
    assert_eq!(log_bytes(&follower.broker), log_bytes(&leader.broker));

    // Caught up, it joins the ISR, which completes the reassignment; acks=all waits for it.
    let done = cluster
        .partition_when("the reassignment to complete", |p| {
            p.isr == brokers(&[1, 2]) && !p.is_reassigning()
        })
        .await;
    assert_eq!(
        (done.leader, done.replicas),
        (Some(broker(1)), brokers(&[1, 2]))
    );
    cluster.applied(&[&leader, &follower]).await;
    assert_eq!(
        produce(&mut conn, -1, 10_000, records(1, "new")).await,
        (NONE, 104)
    );
    assert!(
        offsets(&follower.broker).0 >= Offset(105),
        "the follower has the batch"
    );
    follower.stop().await;
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks_all_write_fails_after_append_when_the_isr_shrinks_below_min_insync_replicas() {
    let cluster = Cluster::new().await;
    let leader = cluster.start(1, |_| {}).await;
    let follower = cluster.start(2, |_| {}).await;
    cluster
        .create_topic(
            &[1, 2],
            &[("min.insync.replicas", "2")],
            &[&leader, &follower],
        )
        .await;
    let mut conn = leader.connect().await;
    assert_eq!(
        produce(&mut conn, -1, 10_000, records(2, "a")).await,
        (NONE, 0)
    );

    follower.stop().await;
    // Written, then waiting for replica 2 until the ISR drops it (after
    // replica.lag.time.max.ms): the high watermark passes the write with one in-sync replica.
    let (code, base) = produce(&mut conn, -1, 20_000, records(2, "b")).await;
    assert_eq!((code, base), (NOT_ENOUGH_REPLICAS_AFTER_APPEND, 2));
    assert_eq!(cluster.partition().await.isr, brokers(&[1]));
    assert_eq!(offsets(&leader.broker), (Offset(4), Offset(4)));
    // Now refused before anything is written.
    assert_eq!(
        produce(&mut conn, -1, 20_000, records(1, "c")).await.0,
        NOT_ENOUGH_REPLICAS
    );
    assert_eq!(offsets(&leader.broker).0, Offset(4));
    leader.stop().await;
}
