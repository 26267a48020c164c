//! `examples/local-cluster.sh`, the README's one command for a local cluster: it starts a
//! controller and three brokers, a real client produces with acks=all to a replicated topic
//! and reads it back, and SIGTERM to the script stops every process cleanly.
//!
//! The script uses fixed ports (9093, 9094, 19092/19094, 29092/29094, 39092/39094), as
//! documented; the test skips when one of them is taken rather than fight over it.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const PORTS: [u16; 8] = [9093, 9094, 19092, 19094, 29092, 29094, 39092, 39094];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_cluster_script_starts_a_replicated_cluster_and_stops_it() {
    if PORTS
        .iter()
        .any(|p| TcpListener::bind(("127.0.0.1", *p)).is_err())
    {
        eprintln!("skipped: a port the script uses is taken");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/local-cluster.sh");
    let mut child = Command::new("bash")
        .arg(script)
        .env("LOCAL_CLUSTER_DIR", dir.path())
        .env("LOCAL_CLUSTER_BIN", env!("CARGO_BIN_EXE_weir-broker"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script started");
    // Read the script's output on a thread to the end: closing the pipe early would kill the
    // script (and with it the cluster) with SIGPIPE at its next line of output.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(list) = line.strip_prefix("bootstrap.servers=") {
                let _ = tx.send(list.to_owned());
            }
        }
    });
    let bootstrap = rx.recv_timeout(Duration::from_secs(60)).ok();
    let bootstrap = bootstrap.expect("bootstrap list printed");
    assert_eq!(bootstrap, "127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let topic = NewTopic::new("script", 1, TopicReplication::Fixed(3));
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.expect("created");
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .create()
        .unwrap();
    for i in 0..10 {
        producer
            .send(
                FutureRecord::<(), String>::to("script").payload(&format!("m{i}")),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("acked by all in-sync replicas");
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "script-reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("script", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 10 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(got, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
    drop(consumer);
    drop(producer);
    drop(admin);

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success() || status.code().is_some(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "the script did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    for name in ["broker-1", "broker-2", "broker-3", "controller"] {
        let log = std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap();
        assert!(
            log.contains("clean shutdown complete") || log.contains("controller stopped"),
            "{name} stopped cleanly:\n{log}"
        );
    }
    for p in PORTS {
        assert!(
            TcpListener::bind(("127.0.0.1", p)).is_ok(),
            "port {p} released"
        );
    }
}
