//! Malformed, truncated, oversized and unknown requests against the real binary: each gets a
//! Kafka error or a closed connection, the broker keeps serving, and stored data is unchanged.

mod process;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use process::BrokerProcess;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

fn connect(broker: &BrokerProcess) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", broker.kafka_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Whether the broker closed the connection (read returns EOF or reset) after `bytes`.
fn closed_after(broker: &BrokerProcess, bytes: &[u8]) -> bool {
    let mut s = connect(broker);
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
}

fn frame(api_key: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&api_key.to_be_bytes());
    payload.extend_from_slice(&version.to_be_bytes());
    payload.extend_from_slice(&correlation.to_be_bytes());
    payload.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    payload.extend_from_slice(body);
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

fn produce(bootstrap: &str, topic: &str, n: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .create()
        .unwrap();
    for i in 0..n {
        producer
            .send(
                BaseRecord::<(), str>::to(topic)
                    .partition(0)
                    .payload(&format!("value-{i}")),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(20)).unwrap();
}

fn consume(bootstrap: &str, topic: &str, n: usize) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "g")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while out.len() < n && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            out.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
        }
    }
    out
}

#[test]
fn bad_frames_close_the_connection_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &["socket.request.max.bytes=100000"],
    );
    let bootstrap = broker.bootstrap();
    produce(&bootstrap, "keep", 50);
    let before = consume(&bootstrap, "keep", 50);
    assert_eq!(before.len(), 50);

    // Oversized, negative and tiny frame sizes.
    assert!(closed_after(&broker, &200_000i32.to_be_bytes()));
    assert!(closed_after(&broker, &(-1i32).to_be_bytes()));
    assert!(closed_after(&broker, &[0, 0, 0, 3, 1, 2, 3]));
    // Unknown API key; a known API at a version outside the advertised range.
    assert!(closed_after(&broker, &frame(9999, 0, 1, &[])));
    assert!(closed_after(&broker, &frame(0, 99, 1, &[0; 16])));
    // A produce request whose body is garbage.
    assert!(closed_after(&broker, &frame(0, 9, 1, &[0xff; 40])));
    // A truncated frame: the size promises more than arrives before EOF.
    let mut truncated = frame(18, 3, 1, &[0; 8]);
    truncated.truncate(truncated.len() - 4);
    assert!(closed_after(&broker, &truncated));
    // Random bytes.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200 {
        let len = (seed % 300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let mut s = connect(&broker);
        let _ = s.write_all(&bytes);
        drop(s);
    }

    // ApiVersions at a version the broker does not know: answered in v0 with the error and
    // the supported ranges (KIP-511), not closed.
    let mut s = connect(&broker);
    s.write_all(&frame(18, 99, 7, &[])).unwrap();
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).unwrap();
    assert_eq!(
        i32::from_be_bytes(body[0..4].try_into().unwrap()),
        7,
        "correlation id"
    );
    assert_eq!(
        i16::from_be_bytes(body[4..6].try_into().unwrap()),
        35,
        "UNSUPPORTED_VERSION"
    );

    // The broker still serves, and nothing stored changed.
    assert_eq!(consume(&bootstrap, "keep", 50), before);
    produce(&bootstrap, "keep", 5);
    assert_eq!(consume(&bootstrap, "keep", 55).len(), 55);
    let (code, metrics) = broker.http_get("/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("weir_active_connections"), "{metrics}");
}

#[test]
fn thousands_of_connections_do_not_leak() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]);
    let fds = |pid_hint: &BrokerProcess| {
        let (_, metrics) = pid_hint.http_get("/metrics").unwrap();
        metrics
            .lines()
            .find(|l| l.starts_with(r#"weir_active_connections{listener="PLAINTEXT"} "#))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap()
    };
    let fds_before = broker.open_fds();
    for i in 0..3000 {
        let mut s = connect(&broker);
        if i % 2 == 0 {
            let _ = s.write_all(&frame(18, 3, i, &[0, 0, 0]));
        }
    }
    // The accept queue may still hold connections when the gauge first reads 0: the gauge and
    // the descriptor count must both be back, and stay back, for half a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut calm = 0;
    while calm < 5 {
        let (gauge, open) = (fds(&broker), broker.open_fds());
        if gauge == 0 && open <= fds_before + 2 {
            calm += 1;
        } else {
            calm = 0;
            assert!(
                std::time::Instant::now() < deadline,
                "connections not released: gauge {gauge}, descriptors {fds_before} -> {open}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
