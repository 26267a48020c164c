//! Kafka's named listeners against real processes: a controller and brokers on 127.0.0.1,
//! each broker with an INTERNAL listener (brokers reach each other there:
//! `inter.broker.listener.name=INTERNAL`) and an EXTERNAL one on another port, as the
//! operator gives a pod its pod-DNS listener and a NodePort or load-balancer one.
//!
//! A client sees the endpoints of the listener it bootstrapped through, and only those;
//! replication runs on INTERNAL whatever listener the clients use.

mod cluster;
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{Cluster, eventually};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    DescribeClusterRequest, FindCoordinatorRequest, MetadataRequest, TopicName,
    metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::StrBytes;
use process::{BrokerProcess, free_port};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(60);

/// A broker's bound (and advertised) ports.
#[derive(Clone, Copy, Debug)]
struct Ports {
    internal: u16,
    /// `None` for a broker without an EXTERNAL listener.
    external: Option<u16>,
}

/// A controller and `brokers` brokers with INTERNAL and EXTERNAL listeners, except those
/// in `internal_only`, which have INTERNAL only.
fn start(brokers: usize, internal_only: &[i32]) -> (Cluster, BTreeMap<i32, Ports>) {
    let ports = Arc::new(Mutex::new(BTreeMap::new()));
    let recorded = ports.clone();
    let cluster = Cluster::start_each(brokers, &[], &[], move |id, internal| {
        let external = (!internal_only.contains(&id)).then(free_port);
        recorded
            .lock()
            .unwrap()
            .insert(id, Ports { internal, external });
        let listeners = match external {
            Some(external) => {
                format!("INTERNAL://127.0.0.1:{internal},EXTERNAL://127.0.0.1:{external}")
            }
            None => format!("INTERNAL://127.0.0.1:{internal}"),
        };
        vec![
            format!("listeners={listeners}"),
            format!("advertised.listeners={listeners}"),
            "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT".to_owned(),
            "inter.broker.listener.name=INTERNAL".to_owned(),
        ]
    });
    let ports = ports.lock().unwrap().clone();
    (cluster, ports)
}

fn bootstrap(ports: impl IntoIterator<Item = u16>) -> String {
    ports
        .into_iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `(node id, host, port)` of every broker in the Metadata rdkafka fetches through
/// `bootstrap`.
fn metadata_brokers(bootstrap: &str) -> BTreeSet<(i32, String, u16)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    metadata
        .brokers()
        .iter()
        .map(|b| {
            let port = u16::try_from(b.port()).unwrap();
            (b.id(), b.host().to_owned(), port)
        })
        .collect()
}

async fn create_topic(bootstrap: &str, topic: NewTopic<'_>) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    for result in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("CreateTopics answered")
    {
        result.expect("topic created");
    }
}

/// Waits until every partition of `topic`, as seen through `bootstrap`, has a leader and
/// `isr` in-sync replicas; returns the leaders.
fn wait_isr(bootstrap: &str, topic: &str, isr: usize) -> BTreeMap<i32, i32> {
    eventually(WAIT, || {
        cluster::partition_states(bootstrap, topic)
            .filter(|s| s.values().all(|(l, i)| *l >= 0 && i.len() == isr))
            .map(|s| s.into_iter().map(|(p, (l, _))| (p, l)).collect())
    })
    .unwrap_or_else(|| panic!("{topic}: no full ISR of {isr} through {bootstrap}"))
}

/// `weir_active_connections{listener=…}` from a broker's `/metrics`.
fn open_connections(broker: &BrokerProcess, listener: &str) -> i64 {
    let (_, metrics) = broker.http_get("/metrics").expect("metrics");
    let prefix = format!("weir_active_connections{{listener=\"{listener}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
}

/// Every record of `topic`'s partitions from the beginning, read through `bootstrap` until
/// `expected` have arrived.
fn consume(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "listeners-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap()),
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_on_the_external_listener_see_external_ports_while_replication_runs_over_internal()
{
    let (cluster, ports) = start(3, &[]);
    let external_ports: Vec<u16> = ports.values().map(|p| p.external.unwrap()).collect();
    let external = bootstrap(external_ports.iter().copied());

    // The Metadata a client on EXTERNAL gets lists every broker at its EXTERNAL port only.
    let expected: BTreeSet<(i32, String, u16)> = ports
        .iter()
        .map(|(&id, p)| (id, "127.0.0.1".to_owned(), p.external.unwrap()))
        .collect();
    assert_eq!(metadata_brokers(&external), expected, "{}", cluster.logs());

    let topic = "through-external";
    create_topic(
        &external,
        NewTopic::new(topic, 3, TopicReplication::Fixed(3)).set("min.insync.replicas", "2"),
    )
    .await;
    let leaders = wait_isr(&external, topic, 3);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &external)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    let mut sent = Vec::new();
    for i in 0..300 {
        let value = format!("record-{i}");
        let partition = i % 3;
        let delivery = producer
            .send_result(
                FutureRecord::<(), String>::to(topic)
                    .partition(partition)
                    .payload(&value),
            )
            .map_err(|(e, _)| e)
            .expect("queued");
        sent.push((delivery, value));
    }
    let mut acknowledged = Vec::new();
    for (delivery, value) in sent {
        delivery
            .await
            .expect("delivery reported")
            .unwrap_or_else(|(e, _)| panic!("{value} not acknowledged: {e}\n{}", cluster.logs()));
        acknowledged.push(value);
    }
    drop(producer);

    let mut read = consume(&external, topic, 3, acknowledged.len());
    read.sort();
    acknowledged.sort();
    assert_eq!(read, acknowledged);
    // acks=all with min.insync.replicas=2 and an ISR of 3 still whole: every follower has
    // fetched every record.
    assert_eq!(wait_isr(&external, topic, 3), leaders);

    // With the clients gone, no connection is left on EXTERNAL, while every leader keeps its
    // followers' fetch sessions open on INTERNAL: replication never used EXTERNAL.
    let leading: BTreeSet<i32> = leaders.values().copied().collect();
    let settled = eventually(Duration::from_secs(20), || {
        let brokers = &cluster.brokers;
        let external_open: i64 = brokers
            .iter()
            .map(|b| open_connections(b, "EXTERNAL"))
            .sum();
        let followed = leading
            .iter()
            .all(|&id| open_connections(&brokers[id as usize - 1], "INTERNAL") >= 2);
        (external_open == 0 && followed).then_some(())
    });
    assert!(
        settled.is_some(),
        "EXTERNAL: {:?}, INTERNAL: {:?}\n{}",
        cluster
            .brokers
            .iter()
            .map(|b| open_connections(b, "EXTERNAL"))
            .collect::<Vec<_>>(),
        cluster
            .brokers
            .iter()
            .map(|b| open_connections(b, "INTERNAL"))
            .collect::<Vec<_>>(),
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_listener_answers_with_its_own_endpoints_and_leaves_out_brokers_without_it() {
    // Broker 3 has no EXTERNAL listener.
    let (cluster, ports) = start(3, &[3]);
    let internal = bootstrap(ports.values().map(|p| p.internal));

    // A client on INTERNAL sees every broker at its INTERNAL port.
    let expected: BTreeSet<(i32, String, u16)> = ports
        .iter()
        .map(|(&id, p)| (id, "127.0.0.1".to_owned(), p.internal))
        .collect();
    assert_eq!(metadata_brokers(&internal), expected, "{}", cluster.logs());

    // Partition 0 led by broker 3, partition 1 by broker 1.
    let topic = "led-without-external";
    create_topic(
        &internal,
        NewTopic::new(topic, 2, TopicReplication::Variable(&[&[3, 1], &[1, 2]])),
    )
    .await;
    let leaders = wait_isr(&internal, topic, 2);
    assert_eq!(leaders, BTreeMap::from([(0, 3), (1, 1)]));

    let broker1 = &cluster.brokers[0];
    let (p1, p2) = (ports[&1], ports[&2]);
    let ext1 = p1.external.unwrap();
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(topic)))),
    ]));
    let brokers_of = |response: &kafka_protocol::messages::MetadataResponse| {
        response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, b.port))
            .collect::<Vec<_>>()
    };
    for (version, missing_listener) in [
        (12, ResponseError::ListenerNotFound),
        (5, ResponseError::LeaderNotAvailable),
    ] {
        let on_external = broker1.call_on(ext1, version, &request);
        assert_eq!(
            brokers_of(&on_external),
            [(1, i32::from(ext1)), (2, i32::from(p2.external.unwrap()))],
            "v{version}"
        );
        let partitions = &on_external.topics[0].partitions;
        assert_eq!(
            (partitions[0].error_code, partitions[0].leader_id.0),
            (missing_listener.code(), -1),
            "v{version}"
        );
        assert_eq!(partitions[0].offline_replicas.len(), 1, "v{version}");
        assert_eq!(
            (partitions[1].error_code, partitions[1].leader_id.0),
            (0, 1),
            "v{version}"
        );
    }
    let on_internal = broker1.call_on(p1.internal, 12, &request);
    assert_eq!(brokers_of(&on_internal).len(), 3);
    assert!(
        on_internal.topics[0]
            .partitions
            .iter()
            .all(|p| p.error_code == 0)
    );

    // DescribeCluster lists the brokers with an endpoint on the request's listener.
    let describe = DescribeClusterRequest::default();
    let described = |port: u16| {
        broker1
            .call_on(port, 0, &describe)
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.port))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        described(ext1),
        [(1, i32::from(ext1)), (2, i32::from(p2.external.unwrap()))]
    );
    assert_eq!(described(p1.internal).len(), 3);

    // FindCoordinator answers with the coordinator's endpoint on the request's listener.
    let find = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
    let coordinator = eventually(WAIT, || {
        let answer = broker1.call_on(p1.internal, 2, &find);
        (answer.error_code == 0).then_some((answer.node_id.0, answer.port))
    })
    .expect("a group coordinator");
    let coordinator_ports = ports[&coordinator.0];
    assert_eq!(coordinator.1, i32::from(coordinator_ports.internal));
    let answer = broker1.call_on(ext1, 2, &find);
    match coordinator_ports.external {
        Some(external) => assert_eq!(
            (answer.error_code, answer.node_id.0, answer.port),
            (0, coordinator.0, i32::from(external))
        ),
        None => assert_eq!(
            answer.error_code,
            ResponseError::CoordinatorNotAvailable.code()
        ),
    }
}
