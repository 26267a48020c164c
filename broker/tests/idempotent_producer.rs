//! The real `weir-broker` binary and idempotent producers: librdkafka with
//! `enable.idempotence=true` stores every message exactly once and in order across a clean
//! restart and a kill -9 while batches are in flight; and at the wire, InitProducerId answers
//! as documented and a retried Produce gets the original offsets, before and after restarts.

mod process;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use process::BrokerProcess;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "exactly-once";

/// Message `i`, padded so the 1 MiB segments roll (each roll writes a producer snapshot).
fn value_of(i: usize) -> String {
    format!("message {i:06} {}", "x".repeat(300))
}

fn send(producer: &FutureProducer, from: usize, to: usize) -> Vec<DeliveryFuture> {
    (from..to)
        .map(|i| {
            let value = value_of(i);
            producer
                .send_result(
                    FutureRecord::<(), String>::to(TOPIC)
                        .partition(0)
                        .payload(&value),
                )
                .map_err(|(e, _)| e)
                .expect("queued")
        })
        .collect()
}

/// Awaits the deliveries; returns their offsets.
async fn delivered(futures: Vec<DeliveryFuture>) -> Vec<i64> {
    let mut offsets = Vec::with_capacity(futures.len());
    for future in futures {
        let delivery = future
            .await
            .expect("not cancelled")
            .map_err(|(e, _)| e)
            .expect("delivered");
        offsets.push(delivery.offset);
    }
    offsets
}

fn consume_values(bootstrap: &str, expected: usize) -> Vec<(i64, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "unused-assign-only")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Read a little past `expected` so a duplicate would show.
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(message) => {
                let m = message.expect("consume");
                let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                got.push((m.offset(), value));
                quiet_since = Instant::now();
            }
            None if got.len() >= expected && quiet_since.elapsed() > Duration::from_secs(1) => {
                break;
            }
            None => {}
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_idempotent_producer_stores_each_message_once_in_order_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = BrokerProcess::start(&data, &["auto.create.topics.enable=false"]);
    let bootstrap = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1)).set("segment.bytes", "1048576")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("batch.num.messages", "40")
        .set("message.timeout.ms", "120000")
        .set("retry.backoff.ms", "50")
        .create()
        .expect("producer");

    // 1. Produce, then a clean restart with the same producer still running.
    let offsets = delivered(send(&producer, 0, 1000)).await;
    assert_eq!(offsets, (0..1000).collect::<Vec<i64>>());
    assert!(broker.stop(), "clean shutdown; log:\n{}", broker.log());
    broker.restart();
    let offsets = delivered(send(&producer, 1000, 2000)).await;
    assert_eq!(
        offsets,
        (1000..2000).collect::<Vec<i64>>(),
        "sequences continue"
    );

    // 2. A crash with batches in flight: librdkafka retries whatever was not acknowledged,
    // and what the broker had already written must be recognised, not written twice.
    let pending = send(&producer, 2000, 8000);
    let mut pending = pending.into_iter();
    let first = pending
        .next()
        .unwrap()
        .await
        .unwrap()
        .map_err(|(e, _)| e)
        .unwrap();
    assert_eq!(first.offset, 2000);
    broker.kill9();
    broker.restart();
    let offsets = delivered(pending.collect()).await;
    assert_eq!(
        offsets,
        (2001..8000).collect::<Vec<i64>>(),
        "no gaps, no duplicates"
    );
    producer.flush(Duration::from_secs(30)).unwrap();

    let got = consume_values(&bootstrap, 8000);
    assert_eq!(got.len(), 8000, "each message exactly once");
    for (i, (offset, value)) in got.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert!(*value == value_of(i), "offset {offset} holds message {i}");
    }
    // The producer id came from a controller block persisted with the cluster metadata.
    let metadata = std::fs::read_to_string(data.join("__cluster_metadata.json")).unwrap();
    let metadata: String = metadata.split_whitespace().collect();
    assert!(
        metadata.contains("\"next_producer_id\":1000"),
        "one block of 1000 ids allocated: {metadata}"
    );
    assert!(broker.log().contains("allocated a block of producer ids"));
}

/// Sends one request encoded by `kafka-protocol` on a new connection and decodes the answer.
fn init_producer_id(
    broker: &BrokerProcess,
    version: i16,
    transactional_id: Option<&'static str>,
    current: (i64, i16),
) -> InitProducerIdResponse {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(|t| StrBytes::from_static_str(t).into()))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(current.0.into())
        .with_producer_epoch(current.1);
    broker.call(version, &request)
}

/// One batch of `count` records from a producer; `transactional` sets the batch attribute.
fn producer_batch(pid: i64, epoch: i16, first_seq: i32, count: i32, transactional: bool) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: first_seq + i,
            // Now: producer state expires by batch timestamps, as in Kafka.
            timestamp: weir_broker::log::now_ms(),
            key: None,
            value: Some(Bytes::from(format!("{pid}/{epoch}/{}", first_seq + i))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).unwrap();
    buf.freeze()
}

/// Produces `records` to partition 0 of `TOPIC` (v9, acks=all): `(error code, base offset)`.
fn produce(broker: &BrokerProcess, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_transactional_id(None)
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let response = broker.call(9, &request);
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_produce_requests_get_the_original_offsets_before_and_after_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(&dir.path().join("data"), &["num.partitions=1"]);

    let versions = &broker.call(3, &ApiVersionsRequest::default());
    let advertised = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::InitProducerId as i16)
        .map(|k| (k.min_version, k.max_version));
    assert_eq!(advertised, Some((0, 5)));

    // New producers: ids from the block, epoch 0.
    let first = init_producer_id(&broker, 4, None, (-1, -1));
    assert_eq!(
        (first.error_code, first.producer_id.0, first.producer_epoch),
        (0, 0, 0)
    );
    let second = init_producer_id(&broker, 0, None, (-1, -1));
    assert_eq!(
        (
            second.error_code,
            second.producer_id.0,
            second.producer_epoch
        ),
        (0, 1, 0)
    );
    // KIP-360: a known producer gets its epoch bumped.
    let bumped = init_producer_id(&broker, 3, None, (0, 0));
    assert_eq!(
        (
            bumped.error_code,
            bumped.producer_id.0,
            bumped.producer_epoch
        ),
        (0, 0, 1)
    );
    for (transactional_id, current, code) in [
        (Some("payments"), (-1, -1), 16), // NOT_COORDINATOR: no FindCoordinator first
        (Some(""), (-1, -1), 42),         // INVALID_REQUEST, as Kafka
        (None, (0, -1), 42),              // half a producer id and epoch
        (None, (5000, 0), 42),            // an id never handed out
    ] {
        let r = init_producer_id(&broker, 4, transactional_id, current);
        assert_eq!(
            (r.error_code, r.producer_id.0, r.producer_epoch),
            (code, -1, -1),
            "{transactional_id:?} {current:?}"
        );
    }

    // Producer 0, epoch 1: a batch, its retry, the next batch.
    let batch_a = producer_batch(0, 1, 0, 3, false);
    let batch_b = producer_batch(0, 1, 3, 2, false);
    assert_eq!(produce(&broker, batch_a.clone()), (0, 0));
    assert_eq!(
        produce(&broker, batch_a.clone()),
        (0, 0),
        "a retry is answered, not stored"
    );
    assert_eq!(produce(&broker, batch_b.clone()), (0, 3));
    assert_eq!(produce(&broker, producer_batch(0, 1, 9, 1, false)).0, 45); // OUT_OF_ORDER_SEQUENCE_NUMBER
    assert_eq!(produce(&broker, producer_batch(0, 0, 5, 1, false)).0, 47); // INVALID_PRODUCER_EPOCH
    // TRANSACTIONAL_ID_AUTHORIZATION_FAILED: transactional records need the request's
    // transactional id, as in Kafka.
    assert_eq!(produce(&broker, producer_batch(0, 1, 5, 1, true)).0, 53);

    // The state survives a clean restart (snapshot) and a crash (snapshot + replay).
    assert!(broker.stop(), "clean shutdown; log:\n{}", broker.log());
    broker.restart();
    assert_eq!(produce(&broker, batch_b.clone()), (0, 3));
    let batch_c = producer_batch(0, 1, 5, 1, false);
    assert_eq!(produce(&broker, batch_c.clone()), (0, 5));
    broker.kill9();
    broker.restart();
    assert_eq!(
        produce(&broker, batch_c.clone()),
        (0, 5),
        "recognised after a crash"
    );
    assert_eq!(produce(&broker, batch_b), (0, 3));
    assert_eq!(produce(&broker, producer_batch(0, 1, 6, 1, false)), (0, 6));

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let watermarks = consumer
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(watermarks, (0, 7), "each batch stored once");
    // Ids survive restarts: the next new producer gets an id no producer had.
    let later = init_producer_id(&broker, 4, None, (-1, -1));
    assert_eq!((later.error_code, later.producer_id.0), (0, 1000));
}
