//! 6. Who owns a topic. A topic a Kafka client creates appears as a Topic resource
//!    labelled as made through the Kafka API, and Kafka clients keep managing it. A topic
//!    a user-written Topic resource declares is managed there only: Kafka admin changes
//!    to it are refused with POLICY_VIOLATION naming the resource, so GitOps and clients
//!    never fight over a field.

use std::process::Command;
use std::time::Duration;

use kube::ResourceExt as _;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use weir_operator::kube_store::ORIGIN_LABEL;

use crate::env::{Env, NS, report, wait_for};
use crate::traffic::{Traffic, check_no_loss, read_all};

/// The error a Python confluent-kafka admin client gets altering `topic`'s config.
fn python_alter_config_error(bootstrap: &str, topic: &str) -> String {
    let script = r#"
import sys
from confluent_kafka.admin import AdminClient, ConfigResource
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
resource = ConfigResource("topic", sys.argv[2], set_config={"retention.ms": "1000"})
try:
    admin.alter_configs([resource])[resource].result(timeout=20)
    print("accepted")
except Exception as e:
    print(e.args[0].name(), e.args[0].str())
"#;
    let out = Command::new("python3")
        .args(["-c", script, bootstrap, topic])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_clients_manage_their_topics_and_cannot_change_the_crs() {
    let (env, bootstrap) = Env::serving().await;
    let before = env.topics().get("orders").await.unwrap();
    let traffic = Traffic::start(&bootstrap, "orders", 200);
    traffic.wait_flowing(200, Duration::from_secs(30)).await;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));

    // A Kafka client's topic gets a Topic resource labelled as such.
    let created = admin
        .create_topics(
            &[NewTopic::new("payments", 3, TopicReplication::Fixed(3))],
            &options,
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let payments = env
        .wait_topic_in_sync("payments", 3, 3, Duration::from_secs(30))
        .await;
    assert_eq!(
        payments.labels().get(ORIGIN_LABEL).map(String::as_str),
        Some("kafka-api")
    );
    // ... and Kafka clients keep managing it; the resource follows.
    let altered = admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("payments"))
                .set("retention.ms", "3600000")],
            &options,
        )
        .await
        .unwrap();
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
    let topics = env.topics();
    wait_for(
        "the payments resource follows the Kafka change",
        Duration::from_secs(30),
        || async {
            let topic = topics.get("payments").await.ok()?;
            (topic.spec.config.get("retention.ms").map(String::as_str) == Some("3600000"))
                .then_some(())
        },
    )
    .await;

    // The user's `orders`: every Kafka admin change is refused, naming the resource.
    // (rust-rdkafka's `alter_configs` reports per-resource errors as success, so the
    // config change goes through confluent-kafka, which shows the code and message.)
    let message = tokio::task::block_in_place(|| python_alter_config_error(&bootstrap, "orders"));
    report(format!("Kafka admin config change to orders: {message}"));
    assert!(
        message.starts_with("POLICY_VIOLATION") && message.contains(&format!("Topic {NS}/orders")),
        "{message}"
    );
    let grown = admin
        .create_partitions(&[NewPartitions::new("orders", 24)], &options)
        .await
        .unwrap();
    assert!(
        matches!(
            grown.as_slice(),
            [Err((_, RDKafkaErrorCode::PolicyViolation))]
        ),
        "{grown:?}"
    );
    let deleted = admin.delete_topics(&["orders"], &options).await.unwrap();
    assert!(
        matches!(
            deleted.as_slice(),
            [Err((_, RDKafkaErrorCode::PolicyViolation))]
        ),
        "{deleted:?}"
    );
    let after = topics.get("orders").await.unwrap();
    assert_eq!(after.spec, before.spec, "the resource is unchanged");
    assert_eq!(
        after
            .status
            .as_ref()
            .map(|s| (s.partitions.len(), s.config.clone())),
        before
            .status
            .as_ref()
            .map(|s| (s.partitions.len(), s.config.clone())),
        "the Kafka topic is unchanged"
    );

    traffic.wait_flowing(200, Duration::from_secs(30)).await;
    let produced = traffic.stop().await;
    let read = tokio::task::block_in_place(|| read_all(&bootstrap, "orders", 12));
    check_no_loss("topic ownership", &produced, &read);
    env.stop().await;
}
