//! The admin APIs of the real `weir-broker` binary: CreatePartitions, DescribeConfigs,
//! AlterConfigs, IncrementalAlterConfigs, DescribeCluster and DeleteRecords.
//!
//! librdkafka's admin client (the `rdkafka` crate) drives what it can. Where it has no call
//! (IncrementalAlterConfigs, DescribeCluster) or drops what the broker said (`rdkafka` ignores
//! per-resource errors of DescribeConfigs and AlterConfigs), requests encoded by
//! `kafka-protocol` go over a plain TCP connection.

mod process;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, DeleteRecordsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, TopicName as WireTopicName,
    alter_configs_request, delete_records_request, describe_configs_request,
    incremental_alter_configs_request,
};
use kafka_protocol::protocol::StrBytes;
use process::BrokerProcess;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, Timestamp, TopicPartitionList};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const NODE_ID: i32 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn admin(broker: &BrokerProcess) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("admin client")
}

fn options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(Duration::from_secs(15)))
}

async fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let created = admin.create_topics(&[topic], &options()).await.unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
}

/// Produces `count` records to one partition, one at a time, the first with CreateTime
/// `timestamp` and each next one a second later; their offsets.
async fn produce(
    broker: &BrokerProcess,
    topic: &str,
    partition: i32,
    count: usize,
    timestamp: i64,
) -> Vec<i64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    let mut offsets = Vec::new();
    for i in 0..count {
        let value = format!("{topic}-{partition}-{i}");
        // Keyed: compacted topics refuse records without a key.
        let record = FutureRecord::<str, str>::to(topic)
            .partition(partition)
            .key(&value)
            .payload(&value)
            .timestamp(timestamp + 1000 * i as i64);
        let delivery = producer
            .send(record, Duration::from_secs(20))
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
        assert_eq!(delivery.partition, partition);
        offsets.push(delivery.offset);
    }
    offsets
}

/// Consumes one partition from the beginning: `(offset, value, timestamp)` of `expected`
/// records (fewer if they do not arrive in time).
fn consume(
    broker: &BrokerProcess,
    topic: &str,
    partition: i32,
    expected: usize,
) -> Vec<(i64, String, Timestamp)> {
    let consumer = consumer(broker);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < expected && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            let value = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
            got.push((m.offset(), value, m.timestamp()));
        }
    }
    got
}

fn consumer(broker: &BrokerProcess) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "admin-apis-assign-only")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

fn partition_count(broker: &BrokerProcess, topic: &str) -> usize {
    let metadata = consumer(broker)
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata.topics()[0].partitions().len()
}

/// Sends one request encoded by `kafka-protocol` and decodes the answer.
fn describe_raw(
    broker: &BrokerProcess,
    version: i16,
    resources: &[(i8, &str, Option<&[&str]>)],
) -> Vec<DescribeConfigsResult> {
    let resources = resources
        .iter()
        .map(|(resource_type, name, keys)| {
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(*resource_type)
                .with_resource_name(s(name))
                .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect()))
        })
        .collect();
    let request = DescribeConfigsRequest::default()
        .with_resources(resources)
        .with_include_synonyms(true)
        .with_include_documentation(version >= 3);
    broker.call(version, &request).results
}

/// `(error code, error message)` of one IncrementalAlterConfigs resource.
fn incremental_raw(
    broker: &BrokerProcess,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let configs = ops
        .iter()
        .map(|(key, op, value)| {
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(*op)
                .with_value(value.map(s))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configs(configs),
        ])
        .with_validate_only(validate_only);
    let response = broker.call(1, &request);
    let r = &response.responses[0];
    assert_eq!(r.resource_name.as_str(), name);
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// A legacy AlterConfigs resource: type, name and `(key, value)` configs.
type LegacyResource<'a> = (i8, &'a str, &'a [(&'a str, Option<&'a str>)]);

/// `(error code, error message)` of each resource of one legacy AlterConfigs request.
fn legacy_raw(
    broker: &BrokerProcess,
    resources: &[LegacyResource<'_>],
) -> Vec<(i16, Option<String>)> {
    let resources = resources
        .iter()
        .map(|(resource_type, name, configs)| {
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(*resource_type)
                .with_resource_name(s(name))
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            alter_configs_request::AlterableConfig::default()
                                .with_name(s(k))
                                .with_value(v.map(s))
                        })
                        .collect(),
                )
        })
        .collect();
    let request = AlterConfigsRequest::default().with_resources(resources);
    broker
        .call(2, &request)
        .responses
        .iter()
        .map(|r| {
            (
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

/// `name -> (value, source)` of a topic's configs, as librdkafka reports them.
async fn topic_configs(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> HashMap<String, (Option<String>, ConfigSource)> {
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &options())
        .await
        .unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    resource
        .entries
        .into_iter()
        .map(|e| (e.name, (e.value, e.source)))
        .collect()
}

fn value_source(value: &str, source: ConfigSource) -> (Option<String>, ConfigSource) {
    (Some(value.to_owned()), source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_advertises_the_admin_apis_exact_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]);
    let response = &broker.call(3, &ApiVersionsRequest::default());
    assert_eq!(response.error_code, 0);
    let ranges: HashMap<i16, (i16, i16)> = response
        .api_keys
        .iter()
        .map(|k| (k.api_key, (k.min_version, k.max_version)))
        .collect();
    for (api, range) in [
        (ApiKey::DeleteRecords, (0, 2)),
        (ApiKey::DescribeConfigs, (1, 4)),
        (ApiKey::AlterConfigs, (0, 2)),
        (ApiKey::CreatePartitions, (0, 3)),
        (ApiKey::IncrementalAlterConfigs, (0, 1)),
        (ApiKey::DescribeCluster, (0, 2)),
    ] {
        assert_eq!(ranges.get(&(api as i16)), Some(&range), "{api:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_grows_a_topic_and_the_new_partitions_serve_clients() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(
        &dir.path().join("data"),
        &["auto.create.topics.enable=false"],
    );
    let admin = admin(&broker);
    create_topic(&admin, "grow", 1, &[]).await;

    let dry_run = admin
        .create_partitions(
            &[NewPartitions::new("grow", 5)],
            &options().validate_only(true),
        )
        .await
        .unwrap();
    assert_eq!(dry_run, [Ok("grow".to_owned())]);
    assert_eq!(partition_count(&broker, "grow"), 1, "validate_only grew it");

    let grown = admin
        .create_partitions(&[NewPartitions::new("grow", 3)], &options())
        .await
        .unwrap();
    assert_eq!(grown, [Ok("grow".to_owned())]);
    assert_eq!(partition_count(&broker, "grow"), 3);

    for partition in [1, 2] {
        let offsets = produce(&broker, "grow", partition, 5, 1_700_000_000_000).await;
        assert_eq!(offsets, [0, 1, 2, 3, 4], "partition {partition}");
    }
    let got = consume(&broker, "grow", 2, 5);
    let values: Vec<&str> = got.iter().map(|(_, v, _)| v.as_str()).collect();
    assert_eq!(
        values,
        ["grow-2-0", "grow-2-1", "grow-2-2", "grow-2-3", "grow-2-4"]
    );

    let refused = admin
        .create_partitions(
            &[
                NewPartitions::new("grow", 2),
                NewPartitions::new("no-such-topic", 4),
            ],
            &options(),
        )
        .await
        .unwrap();
    assert_eq!(
        refused,
        [
            Err(("grow".to_owned(), RDKafkaErrorCode::InvalidPartitions)),
            Err((
                "no-such-topic".to_owned(),
                RDKafkaErrorCode::UnknownTopicOrPartition
            )),
        ]
    );

    // The new partitions and their data survive a restart.
    assert!(broker.stop(), "clean shutdown; log:\n{}", broker.log());
    broker.restart();
    assert_eq!(partition_count(&broker, "grow"), 3);
    assert_eq!(consume(&broker, "grow", 1, 5).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_configs_reports_defaults_overrides_and_broker_settings() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &["log.retention.hours=2", "num.partitions=1"],
    );
    let admin = admin(&broker);
    create_topic(&admin, "described", 1, &[("segment.ms", "3600000")]).await;

    let configs = topic_configs(&admin, "described").await;
    assert_eq!(configs.len(), weir_controller::TOPIC_CONFIGS.len());
    assert_eq!(
        configs["segment.ms"],
        value_source("3600000", ConfigSource::DynamicTopic)
    );
    assert_eq!(
        configs["retention.ms"],
        value_source("7200000", ConfigSource::StaticBroker)
    );
    assert_eq!(
        configs["max.message.bytes"],
        value_source("1048588", ConfigSource::Default)
    );
    assert_eq!(
        configs["cleanup.policy"],
        value_source("delete", ConfigSource::Default)
    );

    let described = admin
        .describe_configs(&[ResourceSpecifier::Broker(NODE_ID)], &options())
        .await
        .unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    let entries = resource.entry_map();
    let hours = entries["log.retention.hours"];
    assert_eq!(
        (hours.value.as_deref(), &hours.source, hours.is_read_only),
        (Some("2"), &ConfigSource::StaticBroker, true)
    );
    let auto_create = entries["auto.create.topics.enable"];
    assert_eq!(
        (auto_create.value.as_deref(), &auto_create.source),
        (Some("true"), &ConfigSource::Default)
    );
    assert_eq!(entries["node.id"].value.as_deref(), Some("1"));

    // Documentation, types and synonyms (v4), and a key filter.
    let results = describe_raw(&broker, 4, &[(TOPIC, "described", Some(&["retention.ms"]))]);
    assert_eq!(results[0].error_code, 0);
    let configs = &results[0].configs;
    assert_eq!(configs.len(), 1);
    let retention = &configs[0];
    assert_eq!(retention.name.as_str(), "retention.ms");
    assert_eq!(retention.config_type, 5, "LONG");
    assert!(
        retention
            .documentation
            .as_ref()
            .is_some_and(|d| !d.is_empty())
    );
    let synonyms: Vec<(&str, Option<&str>, i8)> = retention
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
        .collect();
    assert_eq!(
        synonyms,
        [
            ("log.retention.hours", Some("2"), 4),
            ("log.retention.ms", Some("604800000"), 5),
        ]
    );
    // v1 has no documentation or types on the wire, but sources and synonyms.
    let results = describe_raw(&broker, 1, &[(TOPIC, "described", Some(&["segment.ms"]))]);
    let segment = &results[0].configs[0];
    assert_eq!(segment.config_source, 1);
    assert_eq!(segment.synonyms[0].name.as_str(), "segment.ms");

    // Refusals, each for its own resource only.
    let results = describe_raw(
        &broker,
        4,
        &[
            (TOPIC, "no-such-topic", None),
            (TOPIC, "bad/name", None),
            (BROKER, "one", None),
            (BROKER, "99", None),
            (8, "1", None),
            (BROKER, "", None),
            (TOPIC, "described", Some(&["no.such.config"])),
        ],
    );
    let codes: Vec<i16> = results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        [
            ResponseError::UnknownTopicOrPartition.code(),
            ResponseError::InvalidTopicException.code(),
            ResponseError::InvalidRequest.code(),
            ResponseError::InvalidRequest.code(),
            ResponseError::InvalidRequest.code(),
            0,
            0,
        ]
    );
    assert!(
        results[3]
            .error_message
            .as_ref()
            .is_some_and(|m| m.contains("99")),
        "{:?}",
        results[3].error_message
    );
    // No dynamic broker configs: the cluster-wide default resource is empty.
    assert!(results[5].configs.is_empty());
    assert!(results[6].configs.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_configs_change_what_is_described_and_what_the_log_does() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &["log.retention.check.interval.ms=100"],
    );
    let admin = admin(&broker);
    create_topic(&admin, "altered", 1, &[]).await;
    let old = 1_600_000_000_000;

    // Legacy AlterConfigs through librdkafka: LogAppendTime is stamped on new records.
    let altered = admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("altered"))
                .set("message.timestamp.type", "LogAppendTime")],
            &options(),
        )
        .await
        .unwrap();
    assert_eq!(altered.len(), 1);
    let configs = topic_configs(&admin, "altered").await;
    assert_eq!(
        configs["message.timestamp.type"],
        value_source("LogAppendTime", ConfigSource::DynamicTopic)
    );
    let before = rdkafka::util::millis_to_epoch(std::time::SystemTime::now());
    produce(&broker, "altered", 0, 1, old).await;
    let got = consume(&broker, "altered", 0, 1);
    let Timestamp::LogAppendTime(stamped) = got[0].2 else {
        panic!("expected a LogAppendTime timestamp, got {:?}", got[0].2);
    };
    assert!(stamped >= before - 1000, "{stamped} < {before}");

    // Legacy AlterConfigs replaces every override: the timestamp type is back to CreateTime.
    admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("altered"))
                .set("retention.ms", "86400000")],
            &options(),
        )
        .await
        .unwrap();
    let configs = topic_configs(&admin, "altered").await;
    assert_eq!(
        configs["message.timestamp.type"],
        value_source("CreateTime", ConfigSource::Default)
    );
    assert_eq!(
        configs["retention.ms"],
        value_source("86400000", ConfigSource::DynamicTopic)
    );
    produce(&broker, "altered", 0, 1, old).await;
    let got = consume(&broker, "altered", 0, 2);
    assert_eq!(got[1].2, Timestamp::CreateTime(old));

    // IncrementalAlterConfigs: SET, APPEND, DELETE in one request; validate_only changes nothing.
    let (code, message) = incremental_raw(
        &broker,
        TOPIC,
        "altered",
        &[("retention.ms", 0, Some("1"))],
        true,
    );
    // Kafka's schema defaults the message to "" (kafka-protocol follows), as on success.
    assert_eq!((code, message.as_deref()), (0, Some("")));
    assert_eq!(
        topic_configs(&admin, "altered").await["retention.ms"],
        value_source("86400000", ConfigSource::DynamicTopic)
    );
    let (code, _) = incremental_raw(
        &broker,
        TOPIC,
        "altered",
        &[
            ("segment.ms", 0, Some("1")),
            ("cleanup.policy", 2, Some("compact")),
            ("retention.ms", 1, None),
        ],
        false,
    );
    assert_eq!(code, 0);
    let configs = topic_configs(&admin, "altered").await;
    assert_eq!(
        configs["cleanup.policy"],
        value_source("delete,compact", ConfigSource::DynamicTopic)
    );
    assert_eq!(
        configs["retention.ms"],
        value_source("604800000", ConfigSource::Default)
    );
    assert_eq!(
        configs["segment.ms"],
        value_source("1", ConfigSource::DynamicTopic)
    );

    // SUBTRACT undoes the APPEND (Kafka refuses keyless records on compacted topics).
    let (code, _) = incremental_raw(
        &broker,
        TOPIC,
        "altered",
        &[
            ("cleanup.policy", 3, Some("compact")),
            ("retention.ms", 0, Some("1")),
        ],
        false,
    );
    assert_eq!(code, 0);
    let configs = topic_configs(&admin, "altered").await;
    assert_eq!(
        configs["cleanup.policy"],
        value_source("delete", ConfigSource::DynamicTopic)
    );

    // The log follows: with segment.ms=1 every append a second after the segment's first
    // rolls a new segment, and with retention.ms=1 every sealed one expires; the active
    // segment stays.
    let now = rdkafka::util::millis_to_epoch(std::time::SystemTime::now());
    produce(&broker, "altered", 0, 3, now).await;
    let consumer = consumer(&broker);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut watermarks = (0, 0);
    while Instant::now() < deadline {
        watermarks = consumer
            .fetch_watermarks("altered", 0, Duration::from_secs(5))
            .unwrap();
        if watermarks.0 >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(watermarks, (4, 5), "only the active segment is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_configs_refusals_name_the_key_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]);
    let admin = admin(&broker);
    create_topic(&admin, "kept", 1, &[("retention.ms", "1000")]).await;

    let (code, message) = incremental_raw(
        &broker,
        TOPIC,
        "kept",
        &[("retention.ms", 0, Some("-7"))],
        false,
    );
    assert_eq!(code, ResponseError::InvalidConfig.code());
    let message = message.unwrap();
    assert!(
        message.contains("retention.ms") && message.contains("-7"),
        "{message}"
    );
    let (code, message) = incremental_raw(
        &broker,
        TOPIC,
        "kept",
        &[("no.such.config", 0, Some("1"))],
        false,
    );
    assert_eq!(code, ResponseError::InvalidConfig.code());
    assert!(message.unwrap().contains("no.such.config"));
    let (code, _) = incremental_raw(
        &broker,
        TOPIC,
        "kept",
        &[("retention.ms", 2, Some("5"))],
        false,
    );
    assert_eq!(
        code,
        ResponseError::InvalidConfig.code(),
        "APPEND to a LONG"
    );
    let (code, message) = incremental_raw(
        &broker,
        BROKER,
        "1",
        &[("log.retention.ms", 0, Some("5"))],
        false,
    );
    assert_eq!(code, ResponseError::InvalidRequest.code());
    assert!(message.unwrap().contains("log.retention.ms"));
    let (code, _) = incremental_raw(
        &broker,
        TOPIC,
        "nope",
        &[("retention.ms", 0, Some("5"))],
        false,
    );
    assert_eq!(code, ResponseError::UnknownTopicOrPartition.code());

    let outcomes = legacy_raw(
        &broker,
        &[
            (TOPIC, "kept", &[("segment.bytes", Some("10"))]),
            (BROKER, "1", &[("num.partitions", Some("3"))]),
            (TOPIC, "", &[("retention.ms", Some("5"))]),
            (TOPIC, "twice", &[]),
            (TOPIC, "twice", &[]),
            (TOPIC, "kept-too", &[("retention.ms", None)]),
        ],
    );
    let codes: Vec<i16> = outcomes.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        codes,
        [
            ResponseError::InvalidConfig.code(),
            ResponseError::InvalidRequest.code(),
            ResponseError::InvalidRequest.code(),
            ResponseError::InvalidRequest.code(),
            ResponseError::InvalidRequest.code(),
            ResponseError::InvalidRequest.code(),
        ]
    );
    assert!(
        outcomes[0]
            .1
            .as_ref()
            .is_some_and(|m| m.contains("segment.bytes")),
        "{outcomes:?}"
    );
    assert!(
        outcomes[1]
            .1
            .as_ref()
            .is_some_and(|m| m.contains("num.partitions")),
        "{outcomes:?}"
    );

    let configs = topic_configs(&admin, "kept").await;
    assert_eq!(
        configs["retention.ms"],
        value_source("1000", ConfigSource::DynamicTopic)
    );
    assert_eq!(
        configs["segment.bytes"],
        value_source("1073741824", ConfigSource::Default)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_lists_this_broker_as_the_controller() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]);
    let mut cluster_ids = Vec::new();
    for version in 0..=2 {
        let response = &broker.call(version, &DescribeClusterRequest::default());
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(response.controller_id.0, NODE_ID);
        let brokers: Vec<(i32, &str, i32)> = response
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.host.as_str(), b.port))
            .collect();
        assert_eq!(
            brokers,
            [(NODE_ID, "127.0.0.1", i32::from(broker.kafka_port))]
        );
        assert_eq!(response.cluster_authorized_operations, i32::MIN);
        cluster_ids.push(response.cluster_id.to_string());
    }
    assert_eq!(cluster_ids[0].len(), 22, "{cluster_ids:?}");
    assert!(cluster_ids.iter().all(|id| *id == cluster_ids[0]));

    let response = &broker.call(
        2,
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
    );
    assert_ne!(response.cluster_authorized_operations, i32::MIN);
    assert_ne!(
        response.cluster_authorized_operations & (1 << 11),
        0,
        "ALTER_CONFIGS"
    );

    let response = &broker.call(1, &DescribeClusterRequest::default().with_endpoint_type(2));
    assert_eq!(
        response.error_code,
        ResponseError::MismatchedEndpointType.code()
    );
    let response = &broker.call(1, &DescribeClusterRequest::default().with_endpoint_type(7));
    assert_eq!(
        response.error_code,
        ResponseError::UnsupportedEndpointType.code()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_low_watermark_and_consumers_start_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(&dir.path().join("data"), &[]);
    let admin = admin(&broker);
    create_topic(&admin, "trimmed", 2, &[]).await;
    create_topic(&admin, "compacted", 1, &[("cleanup.policy", "compact")]).await;
    produce(&broker, "trimmed", 0, 10, 1_700_000_000_000).await;
    produce(&broker, "trimmed", 1, 3, 1_700_000_000_000).await;
    produce(&broker, "compacted", 0, 3, 1_700_000_000_000).await;

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trimmed", 0, Offset::Offset(4))
        .unwrap();
    tpl.add_partition_offset("trimmed", 1, Offset::Offset(100))
        .unwrap();
    tpl.add_partition_offset("compacted", 0, Offset::End)
        .unwrap();
    let result = admin.delete_records(&tpl, &options()).await.unwrap();
    let outcome = |topic: &str, partition: i32| {
        let elem = result.find_partition(topic, partition).unwrap();
        (
            elem.offset(),
            elem.error().err().map(|e| e.rdkafka_error_code()),
        )
    };
    assert_eq!(outcome("trimmed", 0), (Offset::Offset(4), None));
    assert_eq!(
        outcome("trimmed", 1).1,
        Some(Some(RDKafkaErrorCode::OffsetOutOfRange))
    );
    assert_eq!(
        outcome("compacted", 0).1,
        Some(Some(RDKafkaErrorCode::PolicyViolation))
    );

    let consumer = consumer(&broker);
    let watermarks = |c: &BaseConsumer, p| {
        c.fetch_watermarks("trimmed", p, Duration::from_secs(10))
            .unwrap()
    };
    assert_eq!(watermarks(&consumer, 0), (4, 10));
    assert_eq!(
        watermarks(&consumer, 1),
        (0, 3),
        "a refused deletion changed it"
    );
    let got = consume(&broker, "trimmed", 0, 6);
    let offsets: Vec<i64> = got.iter().map(|(o, _, _)| *o).collect();
    assert_eq!(offsets, [4, 5, 6, 7, 8, 9]);
    assert_eq!(got[0].1, "trimmed-0-4");

    // Offset -1 is the high watermark; an offset below the low watermark changes nothing.
    let response = &broker.call(
        2,
        &DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default()
                    .with_name(WireTopicName(s("trimmed")))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(1)
                            .with_offset(-1),
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(2),
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(7)
                            .with_offset(0),
                    ]),
            ]),
    );
    let partitions: Vec<(i32, i64, i16)> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.low_watermark, p.error_code))
        .collect();
    assert_eq!(
        partitions,
        [
            (1, 3, 0),
            (0, 4, 0),
            (7, -1, ResponseError::UnknownTopicOrPartition.code()),
        ]
    );

    // The low watermarks survive a restart.
    assert!(broker.stop(), "clean shutdown; log:\n{}", broker.log());
    broker.restart();
    let consumer = self::consumer(&broker);
    assert_eq!(watermarks(&consumer, 0), (4, 10));
    assert_eq!(watermarks(&consumer, 1), (3, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_never_serves_the_old_topics_leftover_log() {
    // Broker A writes topic "again"; broker B creates its own "again" (another topic id).
    let old_dir = tempfile::tempdir().unwrap();
    let mut old = BrokerProcess::start(old_dir.path(), &[]);
    create_topic(&admin(&old), "again", 1, &[]).await;
    produce(&old, "again", 0, 3, 1_700_000_000_000).await;
    assert!(old.stop(), "clean shutdown; log:\n{}", old.log());
    let new_dir = tempfile::tempdir().unwrap();
    let mut new = BrokerProcess::start(new_dir.path(), &[]);
    create_topic(&admin(&new), "again", 1, &[]).await;
    assert!(new.stop(), "clean shutdown; log:\n{}", new.log());
    // A's data directory now meets metadata in which "again" is the new topic: as after a
    // crash between the controller's delete commit and the deletion of the log.
    // (meta.properties goes along: a data directory of another cluster is refused outright.)
    for file in ["__cluster_metadata.json", "meta.properties"] {
        std::fs::copy(new_dir.path().join(file), old_dir.path().join(file)).unwrap();
    }
    old.restart();
    let watermarks = consumer(&old)
        .fetch_watermarks("again", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        watermarks,
        (0, 0),
        "the old topic's records are not served as the new topic's"
    );
    let strays: Vec<String> = std::fs::read_dir(old_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("again-0.") && n.ends_with("-stray"))
        .collect();
    assert_eq!(strays.len(), 1, "the old log is set aside, not deleted");
    assert!(
        old_dir
            .path()
            .join(&strays[0])
            .join("00000000000000000000.log")
            .metadata()
            .unwrap()
            .len()
            > 0
    );
    assert!(old.log().contains("set aside as a stray"), "{}", old.log());
    // The new topic works.
    produce(&old, "again", 0, 2, 1_700_000_000_000).await;
    assert_eq!(consume(&old, "again", 0, 2).len(), 2);
}

/// The topic id Metadata v12 gives for `topic`.
fn topic_id(broker: &BrokerProcess, topic: &str) -> uuid::Uuid {
    let metadata = broker.call(
        12,
        &kafka_protocol::messages::MetadataRequest::default().with_topics(None),
    );
    metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .expect("topic listed")
        .topic_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_v13_and_later_name_topics_by_id() {
    use kafka_protocol::messages::FetchRequest;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::records::RecordBatchDecoder;

    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    create_topic(&admin(&broker), "by-id", 1, &[]).await;
    produce(&broker, "by-id", 0, 3, 1_700_000_000_000).await;
    let id = topic_id(&broker, "by-id");
    assert!(!id.is_nil(), "Metadata v12 carries topic ids");
    let fetch = |topic_id: uuid::Uuid| {
        FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(-1)
                            .with_last_fetched_epoch(-1)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ])
    };
    for version in [13, 16] {
        let response = broker.call(version, &fetch(id));
        let topic = &response.responses[0];
        assert_eq!(topic.topic_id, id, "v{version}");
        let partition = &topic.partitions[0];
        assert_eq!(
            (partition.error_code, partition.high_watermark),
            (0, 3),
            "v{version}"
        );
        let mut records = partition.records.clone().expect("records");
        let batches = RecordBatchDecoder::decode_all(&mut records).unwrap();
        let values: Vec<String> = batches
            .iter()
            .flat_map(|b| &b.records)
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(
            values,
            ["by-id-0-0", "by-id-0-1", "by-id-0-2"],
            "v{version}"
        );
        let unknown = broker.call(version, &fetch(uuid::Uuid::from_bytes([7; 16])));
        assert_eq!(
            unknown.responses[0].partitions[0].error_code,
            ResponseError::UnknownTopicId.code(),
            "v{version}"
        );
    }
    assert!(broker.stop(), "clean shutdown; log:\n{}", broker.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_v13_names_topics_by_id_and_never_auto_creates_an_unknown_one() {
    use bytes::BytesMut;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{MetadataRequest, ProduceRequest};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    create_topic(&admin(&broker), "by-id", 1, &[]).await;
    produce(&broker, "by-id", 0, 2, 1_700_000_000_000).await;
    let partitions_before = partition_count(&broker, "by-id");
    let id = topic_id(&broker, "by-id");
    let batch = |value: &str| {
        let record = Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(bytes::Bytes::copy_from_slice(value.as_bytes())),
            headers: Default::default(),
            delete_horizon: false,
        };
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &[record],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.freeze()
    };
    let request = |topic_id: uuid::Uuid, value: &str| {
        ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_topic_id(topic_id)
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch(value))),
                    ]),
            ])
    };

    let response = broker.call(13, &request(id, "by-id-0-2"));
    let topic = &response.responses[0];
    assert_eq!(topic.topic_id, id, "the response names the topic by id");
    assert_eq!(
        (
            topic.partition_responses[0].error_code,
            topic.partition_responses[0].base_offset
        ),
        (0, 2),
        "appended after the two records already there"
    );
    let unknown_id = uuid::Uuid::from_bytes([9; 16]);
    let response = broker.call(13, &request(unknown_id, "lost"));
    assert_eq!(response.responses[0].topic_id, unknown_id);
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ResponseError::UnknownTopicId.code()
    );
    // Nothing was created for the unknown id, and the known topic holds exactly its records.
    let metadata = broker.call(12, &MetadataRequest::default().with_topics(None));
    let names: Vec<&str> = metadata
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.as_str()))
        .filter(|n| !n.starts_with("__"))
        .collect();
    assert_eq!(
        names,
        ["by-id"],
        "auto-creation is on by default, yet nothing was created"
    );
    assert_eq!(partition_count(&broker, "by-id"), partitions_before);
    let values: Vec<String> = consume(&broker, "by-id", 0, 3)
        .into_iter()
        .map(|(_, value, _)| value)
        .collect();
    assert_eq!(values, ["by-id-0-0", "by-id-0-1", "by-id-0-2"]);
    assert!(broker.stop(), "clean shutdown; log:\n{}", broker.log());
}
