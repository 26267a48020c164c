//! The real `weir-broker` binary driven by librdkafka (the `rdkafka` crate).

mod process;

use std::collections::HashMap;
use std::time::Duration;

use process::BrokerProcess;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// What a test produced to one partition, in order.
#[derive(Clone, Debug, PartialEq)]
struct Sent {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    offset: i64,
}

fn producer(bootstrap: &str, compression: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", compression)
        .set("linger.ms", "5")
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer")
}

async fn produce_all(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    compression: &str,
    count: usize,
) -> Vec<Sent> {
    let producer = producer(bootstrap, compression);
    let mut futures = Vec::new();
    let mut sent = Vec::new();
    for i in 0..count {
        let key = (i % 3 != 0).then(|| format!("key-{i}").into_bytes());
        let value = (i % 7 != 3).then(|| {
            format!("{compression} value {i} ")
                .repeat(1 + i % 5)
                .into_bytes()
        });
        let headers = if i % 2 == 0 {
            vec![
                ("h1".to_owned(), Some(vec![i as u8])),
                ("h2".to_owned(), None),
            ]
        } else {
            vec![]
        };
        let mut owned = OwnedHeaders::new();
        for (k, v) in &headers {
            owned = owned.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(topic)
            .partition(partition)
            .headers(owned);
        if let Some(k) = &key {
            record = record.key(k);
        }
        if let Some(v) = &value {
            record = record.payload(v);
        }
        futures.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("queued"),
        );
        sent.push(Sent {
            key,
            value,
            headers,
            offset: -1,
        });
    }
    for (future, s) in futures.into_iter().zip(sent.iter_mut()) {
        let delivery = future
            .await
            .expect("not cancelled")
            .map_err(|(e, _)| e)
            .expect("delivered");
        assert_eq!(delivery.partition, partition);
        s.offset = delivery.offset;
    }
    sent
}

/// A consumer assigned `topic`/`partition` from its first offset (no group).
fn consumer_from_beginning(bootstrap: &str, topic: &str, partition: i32) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "unused-assign-only")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    consumer
}

fn consume_all(bootstrap: &str, topic: &str, partition: i32, expected: usize) -> Vec<Sent> {
    let consumer = consumer_from_beginning(bootstrap, topic, partition);
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < expected && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = message.expect("consume");
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(|v| v.to_vec())))
                    .collect()
            })
            .unwrap_or_default();
        got.push(Sent {
            key: m.key().map(|k| k.to_vec()),
            value: m.payload().map(|v| v.to_vec()),
            headers,
            offset: m.offset(),
        });
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_produces_and_consumes_every_codec_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(
        &dir.path().join("data"),
        &["auto.create.topics.enable=false"],
    );
    let bootstrap = broker.bootstrap();

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let topics =
        [NewTopic::new("codecs", 5, TopicReplication::Fixed(1)).set("segment.bytes", "1048576")];
    let created = admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");

    let mut expected: HashMap<i32, Vec<Sent>> = HashMap::new();
    for (partition, codec) in ["none", "gzip", "snappy", "lz4", "zstd"]
        .into_iter()
        .enumerate()
    {
        let sent = produce_all(&bootstrap, "codecs", partition as i32, codec, 300).await;
        let offsets: Vec<i64> = sent.iter().map(|s| s.offset).collect();
        assert_eq!(offsets, (0..300).collect::<Vec<i64>>(), "{codec}");
        expected.insert(partition as i32, sent);
    }
    let check = |bootstrap: &str, when: &str| {
        for (partition, sent) in &expected {
            let got = consume_all(bootstrap, "codecs", *partition, sent.len());
            assert_eq!(&got, sent, "partition {partition} {when}");
        }
    };
    check(&bootstrap, "after producing");
    let (_, metrics) = broker.http_get("/metrics").unwrap();
    let value = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{prefix} missing from /metrics:\n{metrics}"))
    };
    assert_eq!(value("weir_messages_in_total{topic=\"codecs\"}"), 1500.0);
    assert!(value("weir_messages_out_total{topic=\"codecs\"}") >= 1500.0);
    assert!(value("weir_bytes_out_total{topic=\"codecs\"}") > 0.0);
    assert!(value("weir_request_latency_seconds_count{api=\"Produce\"}") > 0.0);
    // Every stored batch was one append: at least one per partition and codec.
    assert!(value("weir_produce_append_seconds_count") >= 5.0);
    assert!(value("weir_log_size_bytes{partition=\"0\",topic=\"codecs\"}") > 0.0);
    // Each partition's batches are stored compressed as the producer sent them. (librdkafka
    // sends a batch uncompressed when compressing would not shrink it, e.g. a lone small
    // record, so the codec is looked for among all the batches.)
    for (partition, codec) in ["None", "Gzip", "Snappy", "Lz4", "Zstd"]
        .into_iter()
        .enumerate()
    {
        let segment = dir
            .path()
            .join(format!("data/codecs-{partition}/00000000000000000000.log"));
        let bytes = std::fs::read(&segment).unwrap();
        let mut codecs = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let header = weir_broker::log::batch::BatchHeader::parse(&bytes[at..]).unwrap();
            codecs.push(format!("{:?}", header.compression().unwrap()));
            at += 12 + usize::try_from(header.batch_length).unwrap();
        }
        assert!(
            codecs.iter().any(|c| c == codec),
            "partition {partition}: {codecs:?}"
        );
        assert!(
            codecs.iter().all(|c| c == codec || c == "None"),
            "partition {partition}: {codecs:?}"
        );
    }

    assert!(
        broker.stop(),
        "clean shutdown exits 0; log:\n{}",
        broker.log()
    );
    assert!(broker.log().contains("clean shutdown complete"));
    broker.restart();
    check(&bootstrap, "after a clean restart");

    broker.kill9();
    broker.restart();
    check(&bootstrap, "after kill -9");

    // More data after the crash lands after what was there.
    let more = produce_all(&bootstrap, "codecs", 0, "none", 10).await;
    assert_eq!(more[0].offset, 300);

    let deleted = admin
        .delete_topics(&["codecs"], &AdminOptions::new())
        .await
        .unwrap();
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    let metadata = admin
        .inner()
        .fetch_metadata(Some("codecs"), Duration::from_secs(5));
    let missing = metadata
        .map(|m| {
            m.topics()
                .first()
                .map(|t| t.error().is_some())
                .unwrap_or(true)
        })
        .unwrap_or(true);
    assert!(missing, "deleted topic still listed");
}

/// Bytes of `path` in the page cache, from util-linux's `fincore`.
fn resident_bytes(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("run fincore (util-linux)");
    assert!(out.status.success(), "fincore: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The broker's write-behind (`log.writeback.interval.bytes`, `log.cache.retain.bytes`):
/// 48 MiB appended to one partition leave only the last few MiB in the page cache, and
/// everything dropped from it reads back byte-exact from disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_behind_keeps_only_the_tail_of_a_log_in_the_page_cache() {
    const MIB: u64 = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &[
            "log.writeback.interval.bytes=1048576",
            "log.cache.retain.bytes=4194304",
        ],
    );
    let bootstrap = broker.bootstrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    // 12,288 values of 4 KiB that no two records share (xorshift), 48 MiB in all.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let values: Vec<Vec<u8>> = (0..12_288)
        .map(|_| {
            (0..512)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()
                })
                .collect()
        })
        .collect();
    let futures: Vec<_> = values
        .iter()
        .map(|v| {
            producer
                .send_result(
                    FutureRecord::<(), _>::to("write-behind")
                        .partition(0)
                        .payload(v),
                )
                .map_err(|(e, _)| e)
                .expect("queued")
        })
        .collect();
    for future in futures {
        future
            .await
            .unwrap()
            .map_err(|(e, _)| e)
            .expect("delivered");
    }

    let segment = dir
        .path()
        .join("data/write-behind-0/00000000000000000000.log");
    let size = std::fs::metadata(&segment).unwrap().len();
    assert!(size > 48 * MIB, "{size}");
    // Left to the kernel, all 48 MiB would stay cached on a machine with memory to spare.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut resident = resident_bytes(&segment);
    while resident > 6 * MIB && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        resident = resident_bytes(&segment);
    }
    assert!(
        resident <= 6 * MIB,
        "{resident} of {size} bytes still cached; broker log:\n{}",
        broker.log()
    );

    let consumer = consumer_from_beginning(&bootstrap, "write-behind", 0);
    let mut read = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while read < values.len() && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = message.expect("consume");
        assert_eq!(m.offset(), read as i64);
        assert!(
            m.payload() == Some(&values[read][..]),
            "offset {read} differs"
        );
        read += 1;
    }
    assert_eq!(read, values.len(), "records read back");
}
