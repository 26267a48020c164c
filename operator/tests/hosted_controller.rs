//! End to end: the whole operator (`run`) in-process against the API server double hosts
//! the controller of a `Cluster` whose brokers are real `weir-broker` processes, and a
//! real Kafka client (librdkafka) works against them.
//!
//! The test plays the kubelet by hand, and only as far as a pod's network and volume go:
//! each broker runs the config file the operator rendered into the Cluster's ConfigMap,
//! with the listeners, HTTP listener and data directory rewritten to 127.0.0.1 ports and a
//! temporary directory. Everything else — `node.id`, `process.roles`, the controller
//! address and `controller.cluster.name` — is as rendered, so the brokers find the
//! operator's controller endpoint and their Cluster's controller exactly as pods would.
//! There are no pods in the double, so the Cluster never reports ready brokers and its
//! `Ready` condition is not asserted here.
//!
//! Finding the broker binary (as `perf/tests/smoke.rs` does): `CARGO_BIN_EXE_*` exists
//! only for this package's binaries, so the test runs `cargo build -p weir-broker` with
//! the profile it was built with (a no-op when the workspace is built) and takes the
//! binary from that profile's directory. `OPERATOR_E2E_BROKER_BIN` overrides it (not a
//! `WEIR_*` name: brokers inherit this environment and read `WEIR_*` as config keys).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, PostParams};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use weir_operator::crd::{Cluster, Topic};
use weir_operator::kube_store::ORIGIN_LABEL;
use weir_operator::run::{RunConfig, run};

use common::brokers::{broker_binary, kafka_topics};
use common::{NAMESPACE, OPERATOR_NAMESPACE, api_server, wait_for};

const BROKERS: i32 = 3;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A broker "pod": its process, its Kafka port and its log.
struct Broker {
    id: i32,
    child: Child,
    kafka_port: u16,
    log: PathBuf,
}

/// The broker processes; killed when dropped, with their logs shown if the test failed.
struct Brokers {
    brokers: Vec<Broker>,
    /// Config files, data directories and logs.
    dir: tempfile::TempDir,
}

impl Brokers {
    fn bootstrap(&self) -> String {
        let addresses: Vec<String> = self
            .brokers
            .iter()
            .map(|b| format!("127.0.0.1:{}", b.kafka_port))
            .collect();
        addresses.join(",")
    }

    /// Fails at once, with its log, if a broker process has exited.
    fn assert_running(&mut self) {
        for broker in &mut self.brokers {
            if let Some(status) = broker.child.try_wait().unwrap() {
                panic!(
                    "broker {} exited with {status}; log:\n{}",
                    broker.id,
                    std::fs::read_to_string(&broker.log).unwrap_or_default()
                );
            }
        }
    }
}

impl Drop for Brokers {
    fn drop(&mut self) {
        for broker in &mut self.brokers {
            let _ = broker.child.kill();
            let _ = broker.child.wait();
        }
        if std::thread::panicking() {
            for broker in &self.brokers {
                let log = std::fs::read_to_string(&broker.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                let mut out = format!("--- broker {} log (last 60 lines) ---\n", broker.id);
                for line in tail.into_iter().rev() {
                    writeln!(out, "{line}").ok();
                }
                eprint!("{out}");
            }
        }
    }
}

/// `key=value` lines of a properties file (comments skipped).
fn properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with(['#', '!']))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The rendered config with what a pod's network and volume provide replaced by local
/// ports and a directory; every other line as rendered.
fn as_local_pod(rendered: &str, kafka_port: u16, http_port: u16, data_dir: &Path) -> String {
    let listener = format!("PLAINTEXT://127.0.0.1:{kafka_port}");
    let local = [
        ("listeners", listener.clone()),
        ("advertised.listeners", listener),
        ("log.dirs", data_dir.display().to_string()),
        ("http.listener", format!("127.0.0.1:{http_port}")),
    ];
    let mut replaced = BTreeSet::new();
    let mut out = String::new();
    for line in rendered.lines() {
        let key = line.split_once('=').map(|(k, _)| k.trim());
        match local.iter().find(|(k, _)| Some(*k) == key) {
            Some((key, value)) if !line.starts_with('#') => {
                replaced.insert(*key);
                writeln!(out, "{key}={value}").ok();
            }
            _ => {
                writeln!(out, "{line}").ok();
            }
        }
    }
    assert_eq!(
        replaced.len(),
        local.len(),
        "the rendered config lacks one of {:?}:\n{rendered}",
        local.map(|(k, _)| k)
    );
    out
}

/// Starts one broker per rendered config file, as the StatefulSet's pods would.
fn start_brokers(config_map: &ConfigMap) -> Brokers {
    let data = config_map.data.clone().unwrap_or_default();
    // Pushed as each starts, so a failure half-way still kills those started.
    let mut brokers = Brokers {
        brokers: Vec::new(),
        dir: tempfile::tempdir().unwrap(),
    };
    let dir = brokers.dir.path().to_owned();
    for id in 0..BROKERS {
        let file = format!("demo-broker-{id}.properties");
        let rendered = data
            .get(&file)
            .unwrap_or_else(|| panic!("{file} missing from the ConfigMap: {data:?}"));
        let (kafka_port, http_port) = (free_port(), free_port());
        let config = dir.join(&file);
        let data_dir = dir.join(format!("demo-broker-{id}-data"));
        std::fs::write(
            &config,
            as_local_pod(rendered, kafka_port, http_port, &data_dir),
        )
        .unwrap();
        let log = dir.join(format!("demo-broker-{id}.log"));
        let child = Command::new(broker_binary())
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start weir-broker");
        brokers.brokers.push(Broker {
            id,
            child,
            kafka_port,
            log,
        });
    }
    brokers
}

fn operator_config(controller: SocketAddr) -> RunConfig {
    RunConfig {
        watch_namespace: None,
        http_listener: "127.0.0.1:0".parse().unwrap(),
        controller_listener: controller,
        controller_address: controller.to_string(),
        broker_image: "weir-broker:test".to_owned(),
        namespace: OPERATOR_NAMESPACE.to_owned(),
        identity: "operator-0".to_owned(),
        lease_name: "weir-operator".to_owned(),
    }
}

fn demo_cluster() -> Cluster {
    serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "demo", "namespace": NAMESPACE},
        "spec": {
            "brokers": BROKERS,
            "storage": {"size": "1Gi"},
            "config": {
                "min.insync.replicas": "2",
                "default.replication.factor": "3",
                "offsets.topic.replication.factor": "3",
                // A deleted topic must stay deleted, whatever a client asks for.
                "auto.create.topics.enable": "false",
            },
        },
    }))
    .unwrap()
}

fn topic_ready(topic: &Topic) -> bool {
    topic.status.as_ref().is_some_and(|s| {
        s.observed_generation == topic.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Every partition `0..partitions` has a leader among `replicas` replicas, all in the ISR.
fn fully_replicated(topic: &Topic, partitions: usize, replicas: usize) -> bool {
    topic.status.as_ref().is_some_and(|s| {
        s.partitions.len() == partitions
            && s.partitions.iter().enumerate().all(|(i, p)| {
                usize::try_from(p.partition) == Ok(i)
                    && p.replicas.len() == replicas
                    && p.leader.is_some_and(|l| p.replicas.contains(&l))
                    && BTreeSet::from_iter(&p.isr) == BTreeSet::from_iter(&p.replicas)
            })
    })
}

fn lap(started: &mut Instant, step: &str) {
    eprintln!("[hosted_controller] {step}: {:.1?}", started.elapsed());
    *started = Instant::now();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_hosts_the_controller_real_brokers_and_clients_use() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,weir_operator=info,weir_controller=info".into()),
        )
        .with_test_writer()
        .try_init();
    // Built before the clock starts: the first run of the test may compile the broker.
    broker_binary();
    let whole = Instant::now();
    let mut step = Instant::now();

    let server = api_server().await;
    let client = server.client();
    let controller: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (stop_operator, operator_stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(run(client.clone(), operator_config(controller), async {
        let _ = operator_stopped.await;
    }));
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    wait_for(
        "the operator holds the Lease",
        Duration::from_secs(10),
        || async {
            let lease = leases.get_opt("weir-operator").await.unwrap()?;
            (lease.spec?.holder_identity? == "operator-0").then_some(())
        },
    )
    .await;
    lap(&mut step, "operator leading");

    // kubectl apply: the Cluster. Its reconciler renders the brokers' config files.
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NAMESPACE);
    clusters
        .create(&PostParams::default(), &demo_cluster())
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let config_map = wait_for(
        "the Cluster reconciler renders demo-broker-config",
        Duration::from_secs(10),
        || async { config_maps.get_opt("demo-broker-config").await.unwrap() },
    )
    .await;
    for id in 0..BROKERS {
        let file = format!("demo-broker-{id}.properties");
        let rendered = properties(&config_map.data.as_ref().unwrap()[&file]);
        let expected = [
            ("node.id", id.to_string()),
            ("process.roles", "broker".to_owned()),
            (
                "controller.quorum.bootstrap.servers",
                controller.to_string(),
            ),
            ("controller.cluster.name", format!("{NAMESPACE}/demo")),
            ("min.insync.replicas", "2".to_owned()),
        ];
        for (key, value) in expected {
            assert_eq!(
                rendered.get(key),
                Some(&value),
                "{key} in {file}: {rendered:?}"
            );
        }
    }
    lap(&mut step, "Cluster rendered");

    // The kubelet's part: run the rendered configs.
    let mut brokers = start_brokers(&config_map);
    let bootstrap = brokers.bootstrap();

    // 1. Every broker registers with the controller the operator hosts, which keeps them
    //    in the Cluster's status (the metadata store) and reports them per broker.
    let cluster = wait_for(
        "every broker registered in Cluster.status",
        Duration::from_secs(30),
        || {
            brokers.assert_running();
            let clusters = clusters.clone();
            async move {
                let cluster = clusters.get("demo").await.unwrap();
                let status = cluster.status.as_ref()?;
                let all = status.brokers.len() == BROKERS as usize
                    && status.brokers.iter().all(|b| b.registered);
                all.then_some(cluster)
            }
        },
    )
    .await;
    let status = cluster.status.unwrap();
    let stored: BTreeSet<i64> = status
        .metadata
        .as_ref()
        .expect("status.metadata")
        .brokers
        .iter()
        .map(|b| b["id"].as_i64().expect("a stored broker has an id"))
        .collect();
    assert_eq!(stored, BTreeSet::from([0, 1, 2]));
    assert_eq!(
        status.controller_endpoint.as_deref(),
        Some(controller.to_string().as_str())
    );
    assert!(
        status
            .cluster_id
            .as_deref()
            .is_some_and(|id| !id.is_empty())
    );
    lap(&mut step, "1. brokers registered");

    // 2. A Topic resource becomes a Kafka topic with every partition fully replicated.
    let topics: Api<Topic> = Api::namespaced(client.clone(), NAMESPACE);
    let orders: Topic = serde_json::from_value(json!({
        "apiVersion": "weir.dev/v1alpha1", "kind": "Topic",
        "metadata": {"name": "orders", "namespace": NAMESPACE},
        "spec": {"cluster": "demo", "partitions": 6, "replicationFactor": 3},
    }))
    .unwrap();
    topics
        .create(&PostParams::default(), &orders)
        .await
        .unwrap();
    wait_for(
        "Topic orders Ready with 6 fully replicated partitions",
        Duration::from_secs(15),
        || async {
            let topic = topics.get("orders").await.unwrap();
            (topic_ready(&topic) && fully_replicated(&topic, 6, 3)).then_some(())
        },
    )
    .await;
    lap(&mut step, "2. Topic orders ready");

    // 3. A real client produces with acks=all and idempotence, and reads everything back.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..1000 {
        let key = format!("key-{i}");
        let value = format!("order {i}");
        let record = FutureRecord::to("orders").key(&key).payload(&value);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    let mut partitions_written = BTreeSet::new();
    for delivery in deliveries {
        let delivered = delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
        partitions_written.insert(delivered.partition);
    }
    assert_eq!(partitions_written, (0..6).collect::<BTreeSet<i32>>());
    drop(producer);
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "e2e-orders")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..6 {
        assignment
            .add_partition_offset("orders", partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut read = BTreeSet::new();
    let mut records = 0;
    tokio::time::timeout(Duration::from_secs(20), async {
        while records < 1000 {
            let message = consumer.recv().await.unwrap();
            let value = std::str::from_utf8(message.payload().unwrap()).unwrap();
            read.insert(value.to_owned());
            records += 1;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("read {records} of 1000 records within 20 s"));
    let sent: BTreeSet<String> = (0..1000).map(|i| format!("order {i}")).collect();
    assert_eq!(read, sent, "every record read back, once");
    // The group's first commit creates __consumer_offsets.
    tokio::task::block_in_place(|| consumer.commit_consumer_state(CommitMode::Sync)).unwrap();
    drop(consumer);
    lap(&mut step, "3. 1000 records produced and consumed");

    // 4. A topic created through the Kafka API gets a Topic resource of its own.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new("payments", 3, TopicReplication::Fixed(2))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    drop(admin);
    let payments = wait_for(
        "a Ready Topic resource for payments, with its status",
        Duration::from_secs(15),
        || async {
            let topic = topics.get_opt("payments").await.unwrap()?;
            (topic_ready(&topic) && fully_replicated(&topic, 3, 2)).then_some(topic)
        },
    )
    .await;
    assert_eq!(
        payments.labels().get(ORIGIN_LABEL).map(String::as_str),
        Some("kafka-api")
    );
    assert_eq!(
        (payments.spec.cluster.as_str(), payments.spec.partitions),
        ("demo", 3)
    );
    assert_eq!(payments.spec.replication_factor, 2);
    let offsets = wait_for(
        "a Topic resource for __consumer_offsets, with its status",
        Duration::from_secs(15),
        || async {
            let list = topics.list(&Default::default()).await.unwrap();
            list.items.into_iter().find(|t| {
                t.topic_name() == "__consumer_offsets"
                    && t.status.as_ref().is_some_and(|s| !s.partitions.is_empty())
            })
        },
    )
    .await;
    assert_eq!(
        offsets.labels().get(ORIGIN_LABEL).map(String::as_str),
        Some("kafka-api")
    );
    let offsets_status = offsets.status.unwrap();
    assert!(
        offsets_status
            .partitions
            .iter()
            .all(|p| p.replicas.len() == 3 && p.leader.is_some()),
        "offsets.topic.replication.factor=3: {:?}",
        offsets_status.partitions
    );
    lap(&mut step, "4. Kafka API topics have Topic resources");

    // 5. Deleting the Topic resource deletes the Kafka topic, then releases the resource.
    let listed = kafka_topics(&bootstrap).expect("Metadata");
    assert!(listed.contains("orders"), "{listed:?}");
    topics
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        "orders gone from Metadata and its Topic resource gone",
        Duration::from_secs(15),
        || async {
            let listed = kafka_topics(&bootstrap)?;
            let resource = topics.get_opt("orders").await.unwrap();
            (!listed.contains("orders") && listed.contains("payments") && resource.is_none())
                .then_some(())
        },
    )
    .await;
    lap(&mut step, "5. Topic orders deleted");

    drop(brokers);
    stop_operator.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), operator)
        .await
        .expect("the operator stops within 10 s")
        .unwrap()
        .unwrap();
    server.stop().await;
    eprintln!("[hosted_controller] total: {:.1?}", whole.elapsed());
}
