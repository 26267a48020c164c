//! The control plane with real processes: a controller-only process and broker-only
//! processes joining it over gRPC. Registration and fencing as clients see them through
//! Metadata, placement over the brokers, controlled shutdown on SIGTERM, and a data
//! directory of another cluster refused.

mod cluster;
mod process;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::{Cluster, eventually};
use kafka_protocol::messages::{DescribeClusterRequest, MetadataRequest};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

const WAIT: Duration = Duration::from_secs(30);

async fn create_topic(bootstrap: &str, name: &str, partitions: i32, replication: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
    for result in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("CreateTopics answered")
    {
        result.expect("topic created");
    }
}

/// Live broker ids and, per partition of `topic`, `(leader, replicas, isr)`, as one broker
/// answers Metadata.
struct View {
    brokers: Vec<i32>,
    partitions: BTreeMap<i32, (i32, Vec<i32>, Vec<i32>)>,
}

fn view(cluster: &Cluster, via: usize, topic: &str) -> View {
    let request = MetadataRequest::default().with_topics(None);
    let response = cluster.brokers[via].call(12, &request);
    let partitions = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        (
                            p.leader_id.0,
                            p.replica_nodes.iter().map(|b| b.0).collect(),
                            p.isr_nodes.iter().map(|b| b.0).collect(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    View {
        brokers: response.brokers.iter().map(|b| b.node_id.0).collect(),
        partitions,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_register_and_topics_are_spread_over_them() {
    let cluster = Cluster::start(3, &[]);
    let all = eventually(WAIT, || {
        let v = view(&cluster, 0, "spread");
        (v.brokers.len() == 3).then_some(v.brokers)
    })
    .unwrap_or_else(|| panic!("three live brokers\n{}", cluster.logs()));
    assert_eq!(all, vec![1, 2, 3]);
    let described = cluster.brokers[2].call(0, &DescribeClusterRequest::default());
    assert_eq!(described.brokers.len(), 3);

    create_topic(&cluster.bootstrap(), "spread", 6, 3).await;
    // Every broker answers with the same placement once it has applied the change.
    let v = eventually(WAIT, || {
        let views: Vec<View> = (0..3).map(|i| view(&cluster, i, "spread")).collect();
        let first = &views[0].partitions;
        (first.len() == 6 && views.iter().all(|v| &v.partitions == first))
            .then(|| views.into_iter().next().unwrap())
    })
    .unwrap_or_else(|| panic!("every broker sees the topic\n{}", cluster.logs()));
    let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
    for (leader, replicas, isr) in v.partitions.values() {
        assert_eq!(replicas.len(), 3, "three replicas, no broker twice");
        let mut sorted = replicas.clone();
        sorted.sort();
        assert_eq!(sorted, vec![1, 2, 3]);
        assert_eq!(isr, replicas, "a new partition is fully in sync");
        assert_eq!(*leader, replicas[0], "the preferred replica leads");
        *leaders.entry(*leader).or_default() += 1;
    }
    assert_eq!(
        leaders,
        BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "leaders are balanced"
    );
    // Each replica has its log.
    for b in &cluster.brokers {
        for p in 0..6 {
            assert!(b.data_dir.join(format!("spread-{p}")).is_dir());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_is_fenced_out_of_every_isr_and_rejoins_with_a_new_epoch() {
    let mut cluster = Cluster::start(3, &[]);
    create_topic(&cluster.bootstrap(), "fenced", 3, 3).await;
    eventually(WAIT, || {
        (view(&cluster, 1, "fenced").partitions.len() == 3).then_some(())
    })
    .expect("topic visible");
    cluster.broker(1).kill9();
    let killed_at = Instant::now();
    let after = eventually(WAIT, || {
        let v = view(&cluster, 1, "fenced");
        let gone = !v.brokers.contains(&1)
            && v.partitions
                .values()
                .all(|(leader, _, isr)| *leader != 1 && !isr.contains(&1) && *leader >= 0);
        gone.then_some(v)
    })
    .unwrap_or_else(|| panic!("broker 1 fenced\n{}", cluster.logs()));
    let fenced_after = killed_at.elapsed();
    // broker.session.timeout.ms is 3 s in the test cluster.
    assert!(
        fenced_after >= Duration::from_secs(2),
        "not fenced before its session ran out: {fenced_after:?}"
    );
    for (leader, replicas, isr) in after.partitions.values() {
        assert_eq!(replicas.len(), 3, "fencing keeps the assignment");
        assert_eq!(isr.len(), 2);
        assert!(isr.contains(leader));
    }
    assert!(
        cluster
            .controller
            .log()
            .contains("fenced brokers whose sessions expired"),
        "{}",
        cluster.controller.log()
    );

    cluster.broker(1).restart();
    eventually(WAIT, || {
        view(&cluster, 1, "fenced")
            .brokers
            .contains(&1)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("broker 1 back\n{}", cluster.logs()));
    let log = cluster.brokers[0].log();
    let epochs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("registered with the controller"))
        .collect();
    assert_eq!(epochs.len(), 2, "{log}");
    assert_ne!(epochs[0], epochs[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_moves_leadership_away_before_the_broker_exits() {
    let mut cluster = Cluster::start(3, &[]);
    create_topic(&cluster.bootstrap(), "drained", 6, 3).await;
    eventually(WAIT, || {
        let v = view(&cluster, 1, "drained");
        (v.partitions.values().filter(|(l, _, _)| *l == 1).count() == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("broker 1 leads two partitions\n{}", cluster.logs()));
    assert!(cluster.broker(1).stop(), "clean exit");
    // The very first look after the exit: nothing was led by the stopped broker.
    let v = view(&cluster, 1, "drained");
    for (p, (leader, _, isr)) in &v.partitions {
        assert_ne!(*leader, 1, "partition {p} still led by the stopped broker");
        assert!(*leader >= 0, "partition {p} has a leader");
        assert!(
            !isr.contains(&1),
            "partition {p}: the stopped broker left the ISR"
        );
    }
    let log = cluster.brokers[0].log();
    assert!(
        log.contains("controlled shutdown: leadership moved off this broker"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_another_cluster_is_refused() {
    let mut first = Cluster::start(1, &[]);
    assert!(first.broker(1).stop());
    let data_dir = first.brokers[0].data_dir.clone();
    // Another cluster: a new controller with its own cluster id.
    let second = Cluster::start(1, &[]);
    let output = Command::new(env!("CARGO_BIN_EXE_weir-broker"))
        .arg("--data-dir")
        .arg(&data_dir)
        .args([
            "--override",
            "process.roles=broker",
            "--override",
            "node.id=1",
        ])
        .arg("--override")
        .arg(format!(
            "controller.quorum.bootstrap.servers=127.0.0.1:{}",
            second.controller.controller_port
        ))
        .args(["--override", "listeners=PLAINTEXT://127.0.0.1:0"])
        .args(["--override", "http.listener=127.0.0.1:0"])
        .stdout(Stdio::null())
        .output()
        .expect("ran weir-broker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("refusing to join another cluster's data"),
        "{stderr}"
    );
    // Nothing was written into the refused directory's logs: meta.properties is unchanged.
    let props = std::fs::read_to_string(data_dir.join("meta.properties")).unwrap();
    let second_id = {
        let v = second.brokers[0].call(0, &DescribeClusterRequest::default());
        v.cluster_id.to_string()
    };
    assert!(!props.contains(&second_id), "{props}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_elections_and_reassignments_are_forwarded_to_the_controller() {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::{
        AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest,
        ListPartitionReassignmentsRequest, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    let cluster = Cluster::start(3, &[]);
    create_topic(&cluster.bootstrap(), "admin", 2, 3).await;
    let topic = || TopicName(StrBytes::from_static_str("admin"));

    // Preferred replicas already lead: ELECTION_NOT_NEEDED; an unknown partition: 3.
    let elected = cluster.brokers[1].call(
        2,
        &ElectLeadersRequest::default()
            .with_election_type(0)
            .with_topic_partitions(Some(vec![
                TopicPartitions::default()
                    .with_topic(topic())
                    .with_partitions(vec![0, 7]),
            ]))
            .with_timeout_ms(10_000),
    );
    assert_eq!(elected.error_code, 0);
    let codes: BTreeMap<i32, i16> = elected.replica_election_results[0]
        .partition_result
        .iter()
        .map(|p| (p.partition_id, p.error_code))
        .collect();
    assert_eq!(codes, BTreeMap::from([(0, 84), (7, 3)]));
    let bad_type = cluster.brokers[1].call(
        2,
        &ElectLeadersRequest::default()
            .with_election_type(5)
            .with_timeout_ms(10_000),
    );
    assert_eq!(bad_type.error_code, 42, "INVALID_REQUEST");

    // Changing the replication factor is refused when the request forbids it (KIP-860).
    let replicas = |ids: &[i32]| Some(ids.iter().map(|&b| BrokerId(b)).collect());
    let refused = cluster.brokers[0].call(
        1,
        &AlterPartitionReassignmentsRequest::default()
            .with_allow_replication_factor_change(false)
            .with_timeout_ms(10_000)
            .with_topics(vec![
                ReassignableTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![
                        ReassignablePartition::default()
                            .with_partition_index(0)
                            .with_replicas(replicas(&[1, 2])),
                    ]),
            ]),
    );
    assert_eq!(refused.responses[0].partitions[0].error_code, 38);
    // An unknown broker in the target: INVALID_REPLICA_ASSIGNMENT.
    let unknown = cluster.brokers[0].call(
        0,
        &AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                ReassignableTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![
                        ReassignablePartition::default()
                            .with_partition_index(1)
                            .with_replicas(replicas(&[1, 2, 9])),
                    ]),
            ]),
    );
    assert_eq!(unknown.responses[0].partitions[0].error_code, 39);
    // Reordering within the ISR completes at once: the new first replica is preferred.
    let current = view(&cluster, 0, "admin").partitions[&0].1.clone();
    let mut reordered = current.clone();
    reordered.rotate_left(1);
    let reordered_response = cluster.brokers[0].call(
        0,
        &AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                ReassignableTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![
                        ReassignablePartition::default()
                            .with_partition_index(0)
                            .with_replicas(replicas(&reordered)),
                    ]),
            ]),
    );
    assert_eq!(reordered_response.responses[0].partitions[0].error_code, 0);
    eventually(WAIT, || {
        (view(&cluster, 0, "admin").partitions[&0].1 == reordered).then_some(())
    })
    .expect("the reordered replicas are committed");
    let listed = cluster.brokers[2].call(0, &ListPartitionReassignmentsRequest::default());
    assert_eq!(listed.error_code, 0);
    assert!(listed.topics.is_empty(), "nothing is in flight: {listed:?}");
    // The preferred leader is now the first replica; a preferred election moves it there.
    let elected = cluster.brokers[1].call(
        2,
        &ElectLeadersRequest::default()
            .with_election_type(0)
            .with_topic_partitions(Some(vec![
                TopicPartitions::default()
                    .with_topic(topic())
                    .with_partitions(vec![0]),
            ]))
            .with_timeout_ms(10_000),
    );
    assert_eq!(
        elected.replica_election_results[0].partition_result[0].error_code,
        0
    );
    eventually(WAIT, || {
        (view(&cluster, 0, "admin").partitions[&0].0 == reordered[0]).then_some(())
    })
    .unwrap_or_else(|| panic!("the preferred replica leads\n{}", cluster.logs()));
}
