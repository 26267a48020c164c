//! Replication between in-process brokers over real TCP: two `Broker`s with
//! `weir_broker::server::run` on 127.0.0.1 port 0, their metadata written to each data
//! directory beforehand (each broker's in-process controller loads it; the brokers register
//! with it, nothing else changes it), driven at the wire with `kafka-protocol` messages.
//!
//! ISR changes go to a fake `IsrCommitter` standing in for the controller: it commits what
//! the leader proposes (checking the partition epoch, as the controller does).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, FetchRequest, ListOffsetsRequest, OffsetForLeaderEpochRequest,
    ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use common::{Rec, batch};
use weir_broker::broker::Broker;
use weir_broker::config::{BrokerConfig, Listener};
use weir_broker::log::{Log, LogConfig, OpenOptions, SegmentCache};
use weir_broker::replication::{IsrCommitError, IsrCommitFuture, IsrCommitter, LeaderConnection};
use weir_broker::types::{LeaderEpoch, Offset};
use weir_controller::{
    AlterPartition, BrokerId, BrokerInfo, ClusterMetadata, FileMetadataStore, MetadataStore,
    PartitionState, TopicId, TopicMetadata, TopicName as ControllerTopicName,
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

/// A broker serving on a real socket.
struct Running {
    broker: Arc<Broker>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
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

    /// Stops serving, stops replication and closes the logs (the data directory is free
    /// again).
    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.expect("server task");
        self.broker.replication.shutdown().await;
        let broker = self.broker;
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
        ..BrokerConfig::default()
    };
    config.replication.fetch_wait_max_ms = 50;
    config.replication.fetch_backoff_ms = 50;
    config.replication.lag_time_max_ms = 1000;
    config
}

/// Two brokers' metadata: `TOPIC` with one partition on `replicas`.
fn metadata(
    ports: &[(i32, u16)],
    replicas: &[i32],
    isr: &[i32],
    leader: i32,
    leader_epoch: i32,
    configs: &[(&str, &str)],
) -> ClusterMetadata {
    let brokers = ports
        .iter()
        .map(|&(id, port)| {
            (
                BrokerId(id),
                BrokerInfo::new(BrokerId(id), None, "127.0.0.1", port),
            )
        })
        .collect();
    let partition = PartitionState {
        partition: 0,
        replicas: replicas.iter().map(|&b| BrokerId(b)).collect(),
        isr: isr.iter().map(|&b| BrokerId(b)).collect(),
        leader: Some(BrokerId(leader)),
        leader_epoch,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    };
    let topic = TopicMetadata {
        name: ControllerTopicName::new(TOPIC).unwrap(),
        id: TopicId(uuid::Uuid::from_u128(0x5eed)),
        partitions: vec![partition],
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    ClusterMetadata {
        cluster_id: "replication-test".into(),
        version: 1,
        brokers,
        topics: BTreeMap::from([(TOPIC.to_string(), topic)]),
        next_producer_id: 0,
        last_broker_epoch: Default::default(),
    }
}

async fn start(
    node: i32,
    data: &Path,
    listener: TcpListener,
    metadata: &ClusterMetadata,
    tune: impl FnOnce(&mut BrokerConfig),
) -> Running {
    std::fs::create_dir_all(data).unwrap();
    // A restarted broker keeps the metadata it had.
    let store = FileMetadataStore::new(data.join("__cluster_metadata.json"));
    if store.load().await.expect("metadata readable").is_none() {
        store.save(metadata, None).await.expect("metadata written");
    }
    let port = listener.local_addr().unwrap().port();
    let mut config = config(node, data, port);
    tune(&mut config);
    // Each broker hosts a controller over its own copy of the metadata; nothing ticks it, so
    // the partition states stay as written (ISR changes go to the test's fake committer).
    let controller = weir_controller::Controller::open(store, std::time::Instant::now())
        .await
        .expect("controller opens");
    let plane = Arc::new(weir_controller::LocalControlPlane::new(controller));
    let broker = Broker::open(config, plane).await.expect("broker opens");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(weir_broker::server::run(listener, broker.clone(), async {
        let _ = stopped.await;
    }));
    Running {
        broker,
        stop,
        server,
        port,
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
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

/// A stand-in for the controller's AlterPartition: commits what is proposed when it is based
/// on the current partition epoch, bumping it.
struct FakeController {
    partition: Mutex<PartitionState>,
    requests: Mutex<Vec<AlterPartition>>,
}

impl FakeController {
    fn new(partition: PartitionState) -> Arc<FakeController> {
        Arc::new(FakeController {
            partition: Mutex::new(partition),
            requests: Mutex::new(Vec::new()),
        })
    }

    fn isr(&self) -> Vec<i32> {
        self.partition
            .lock()
            .unwrap()
            .isr
            .iter()
            .map(|b| b.0)
            .collect()
    }
}

impl IsrCommitter for FakeController {
    fn alter_partition(&self, request: AlterPartition) -> IsrCommitFuture<'_> {
        Box::pin(async move {
            self.requests.lock().unwrap().push(request.clone());
            let mut partition = self.partition.lock().unwrap();
            if request.partition_epoch != partition.partition_epoch
                || request.leader_epoch != partition.leader_epoch
            {
                return Err(IsrCommitError {
                    code: 95, // INVALID_UPDATE_VERSION
                    message: "stale".into(),
                });
            }
            partition.isr = request.new_isr;
            partition.partition_epoch += 1;
            Ok(partition.clone())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_replicates_over_tcp_and_acks_all_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let (l1, l2) = (bind().await, bind().await);
    let ports = [
        (1, l1.local_addr().unwrap().port()),
        (2, l2.local_addr().unwrap().port()),
    ];
    let md = metadata(
        &ports,
        &[1, 2],
        &[1, 2],
        1,
        3,
        &[("min.insync.replicas", "2")],
    );
    let leader = start(1, &dir.path().join("b1"), l1, &md, |_| {}).await;
    let follower = start(2, &dir.path().join("b2"), l2, &md, |_| {}).await;
    assert!(
        leader
            .broker
            .partition(TOPIC, 0)
            .unwrap()
            .replica
            .is_leader()
    );
    assert!(
        !follower
            .broker
            .partition(TOPIC, 0)
            .unwrap()
            .replica
            .is_leader()
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
    eventually(
        Duration::from_secs(10),
        "the follower's high watermark",
        || offsets(&follower.broker) == (Offset(10), Offset(10)),
    )
    .await;
    assert_eq!(log_bytes(&follower.broker), log_bytes(&leader.broker));
    assert_eq!(epochs(&follower.broker), vec![(3, 0)]);

    // Consumers read the committed records from the leader only.
    let data = fetch(&mut conn, -1, 3, 0).await;
    assert_eq!((data.error_code, data.high_watermark), (NONE, 10));
    assert_eq!(record_count(&data), 10);
    let mut to_follower = follower.connect().await;
    let data = fetch(&mut to_follower, -1, 3, 0).await;
    assert_eq!(data.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(
        produce(&mut to_follower, 1, 1000, records(1, "x")).await.0,
        NOT_LEADER_OR_FOLLOWER
    );
    assert_eq!(
        offset_for_epoch(&mut to_follower, TOPIC, 3, 3)
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
    follower.stop().await;
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_serves_followers_up_to_its_log_end_and_their_fetches_move_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let l1 = bind().await;
    let ports = [(1, l1.local_addr().unwrap().port()), (2, 1)];
    // Broker 2 never runs: this test plays it at the wire.
    let md = metadata(&ports, &[1, 2], &[1, 2], 1, 0, &[]);
    let leader = start(1, &dir.path().join("b1"), l1, &md, |_| {}).await;
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
    let data = fetch(&mut conn, -1, 0, 0).await;
    assert_eq!((data.error_code, record_count(&data)), (NONE, 0));
    let data = fetch(&mut conn, 2, 0, 0).await;
    assert_eq!((data.error_code, data.high_watermark), (NONE, 0));
    assert_eq!(record_count(&data), 6);
    // Its next fetch offset says it has everything: the high watermark moves.
    let data = fetch(&mut conn, 2, 0, 6).await;
    assert_eq!((data.error_code, record_count(&data)), (NONE, 0));
    assert_eq!(offsets(&leader.broker), (Offset(6), Offset(6)));
    let data = fetch(&mut conn, -1, 0, 0).await;
    assert_eq!((data.high_watermark, record_count(&data)), (6, 6));

    // Fetches the leader refuses.
    assert_eq!(
        fetch(&mut conn, 2, 1, 6).await.error_code,
        UNKNOWN_LEADER_EPOCH
    );
    assert_eq!(
        fetch(&mut conn, 9, 0, 0).await.error_code,
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
    let dir = tempfile::tempdir().unwrap();
    let l1 = bind().await;
    let ports = [(1, l1.local_addr().unwrap().port()), (2, 1)];
    let md = metadata(&ports, &[1, 2], &[1], 1, 0, &[("min.insync.replicas", "2")]);
    let leader = start(1, &dir.path().join("b1"), l1, &md, |_| {}).await;
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
    let dir = tempfile::tempdir().unwrap();
    let (l1, l2) = (bind().await, bind().await);
    let ports = [
        (1, l1.local_addr().unwrap().port()),
        (2, l2.local_addr().unwrap().port()),
    ];
    let md = metadata(&ports, &[1, 2], &[1, 2], 1, 1, &[]);
    let leader = start(1, &dir.path().join("b1"), l1, &md, |_| {}).await;
    let controller = FakeController::new(md.topics[TOPIC].partitions[0].clone());
    leader
        .broker
        .replication
        .set_isr_committer(controller.clone());
    let follower = start(2, &dir.path().join("b2"), l2, &md, |_| {}).await;
    let mut conn = leader.connect().await;
    assert_eq!(
        produce(&mut conn, -1, 10_000, records(3, "a")).await,
        (NONE, 0)
    );

    follower.stop().await;
    // A follower at the leader's log end stays in sync however long it is silent (Kafka's
    // rule); once the leader appends, it lags.
    assert_eq!(
        produce(&mut conn, 1, 10_000, records(2, "b")).await,
        (NONE, 3)
    );
    eventually(Duration::from_secs(10), "the ISR to shrink", || {
        controller.isr() == [1]
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

    // The follower comes back, catches up and rejoins.
    let l2 = TcpListener::bind(("127.0.0.1", ports[1].1)).await.unwrap();
    let follower = start(2, &dir.path().join("b2"), l2, &md, |_| {}).await;
    eventually(Duration::from_secs(10), "the ISR to expand", || {
        controller.isr() == [1, 2]
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
    eventually(Duration::from_secs(10), "the follower to catch up", || {
        offsets(&follower.broker).0 == Offset(7)
    })
    .await;
    assert_eq!(log_bytes(&follower.broker), log_bytes(&leader.broker));
    let requests = controller.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .all(|r| r.broker == BrokerId(1) && r.leader_epoch == 1 && r.partition == 0),
        "{requests:?}"
    );
    follower.stop().await;
    leader.stop().await;
}

/// Writes `batches` (leader epoch, records) into `<data>/replicated-0` as a leader would have,
/// the log starting at `start`.
fn prepare_log_at(data: &Path, start: u64, batches: &[(i32, usize, &str)]) -> PathBuf {
    let dir = data.join(format!("{TOPIC}-0"));
    let mut log = Log::open(
        &dir,
        LogConfig::default(),
        OpenOptions::default(),
        Arc::new(SegmentCache::new(16)),
    )
    .unwrap();
    if start > 0 {
        log.truncate_fully_and_start_at(Offset(start), 1_700_000_000_000)
            .unwrap();
    }
    for &(epoch, n, tag) in batches {
        log.append_as_leader(&records(n, tag), LeaderEpoch(epoch), 1_700_000_000_000)
            .unwrap();
    }
    log.close().unwrap();
    dir
}

fn prepare_log(data: &Path, batches: &[(i32, usize, &str)]) -> PathBuf {
    prepare_log_at(data, 0, batches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_truncates_a_divergent_tail_from_an_old_epoch_by_leader_epoch() {
    // KIP-101: both wrote 0..5 in epoch 0. Broker 2 then led epoch 1 and wrote 5..8, which
    // nobody replicated; broker 1 was elected for epoch 2 and wrote its own 5..10. Broker 2
    // must cut exactly its epoch-1 tail, keep 0..5, and copy the leader's 5..10.
    let dir = tempfile::tempdir().unwrap();
    let (b1, b2) = (dir.path().join("b1"), dir.path().join("b2"));
    prepare_log(&b1, &[(0, 5, "shared"), (2, 5, "leader")]);
    prepare_log(&b2, &[(0, 5, "shared"), (1, 3, "divergent")]);
    let (l1, l2) = (bind().await, bind().await);
    let ports = [
        (1, l1.local_addr().unwrap().port()),
        (2, l2.local_addr().unwrap().port()),
    ];
    let md = metadata(&ports, &[1, 2], &[1, 2], 1, 2, &[]);
    let leader = start(1, &b1, l1, &md, |_| {}).await;

    // The leader's answers to OffsetsForLeaderEpoch.
    let mut conn = leader.connect().await;
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

    let follower = start(2, &b2, l2, &md, |_| {}).await;
    eventually(Duration::from_secs(10), "the follower to converge", || {
        offsets(&follower.broker).0 == Offset(10)
    })
    .await;
    assert_eq!(log_bytes(&follower.broker), log_bytes(&leader.broker));
    assert_eq!(epochs(&follower.broker), vec![(0, 0), (2, 5)]);
    assert_eq!(epochs(&leader.broker), vec![(0, 0), (2, 5)]);
    follower.stop().await;
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_leaders_log_start_restarts_its_log_there() {
    // The leader's log starts at 100 (older records were deleted); the new follower has
    // nothing. Its fetch from 0 is out of range: it asks the leader for its log start and end
    // and starts over at 100.
    let dir = tempfile::tempdir().unwrap();
    let (b1, b2) = (dir.path().join("b1"), dir.path().join("b2"));
    prepare_log_at(&b1, 100, &[(0, 4, "kept")]);
    let (l1, l2) = (bind().await, bind().await);
    let ports = [
        (1, l1.local_addr().unwrap().port()),
        (2, l2.local_addr().unwrap().port()),
    ];
    let md = metadata(&ports, &[1, 2], &[1, 2], 1, 0, &[]);
    let leader = start(1, &b1, l1, &md, |_| {}).await;
    let mut conn = leader.connect().await;
    assert_eq!(list_offset(&mut conn, 2, -2).await, (NONE, 100));
    let follower = start(2, &b2, l2, &md, |_| {}).await;
    eventually(
        Duration::from_secs(10),
        "the follower to restart and catch up",
        || offsets(&follower.broker) == (Offset(104), Offset(104)),
    )
    .await;
    let log = log_of(&follower.broker);
    assert_eq!(log.read().unwrap().log_start_offset(), Offset(100));
    drop(log);
    assert_eq!(log_bytes(&follower.broker), log_bytes(&leader.broker));
    assert_eq!(
        produce(&mut conn, -1, 10_000, records(1, "new")).await,
        (NONE, 104)
    );
    follower.stop().await;
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks_all_write_fails_after_append_when_the_isr_shrinks_below_min_insync_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let (l1, l2) = (bind().await, bind().await);
    let ports = [
        (1, l1.local_addr().unwrap().port()),
        (2, l2.local_addr().unwrap().port()),
    ];
    let md = metadata(
        &ports,
        &[1, 2],
        &[1, 2],
        1,
        0,
        &[("min.insync.replicas", "2")],
    );
    let leader = start(1, &dir.path().join("b1"), l1, &md, |_| {}).await;
    let controller = FakeController::new(md.topics[TOPIC].partitions[0].clone());
    leader
        .broker
        .replication
        .set_isr_committer(controller.clone());
    let follower = start(2, &dir.path().join("b2"), l2, &md, |_| {}).await;
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
    assert_eq!(controller.isr(), [1]);
    assert_eq!(offsets(&leader.broker), (Offset(4), Offset(4)));
    // Now refused before anything is written.
    assert_eq!(
        produce(&mut conn, -1, 20_000, records(1, "c")).await.0,
        NOT_ENOUGH_REPLICAS
    );
    assert_eq!(offsets(&leader.broker).0, Offset(4));
    leader.stop().await;
}
