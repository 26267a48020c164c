//! Makes sure the topic exists (creating it with the admin API) and every partition has a
//! leader, and returns its partition count.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a created topic may take to show a leader for every partition.
const LEADERS_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub(crate) enum TopicError {
    #[error("admin client for {bootstrap}")]
    Client {
        bootstrap: String,
        #[source]
        source: KafkaError,
    },
    #[error("metadata from {bootstrap}")]
    Metadata {
        bootstrap: String,
        #[source]
        source: KafkaError,
    },
    #[error("creating topic {topic} ({partitions} partitions, replication factor {replication})")]
    Create {
        topic: String,
        partitions: i32,
        replication: i32,
        #[source]
        source: KafkaError,
    },
    #[error("topic {topic} still has partitions without a leader after {LEADERS_TIMEOUT:?}")]
    NoLeaders { topic: String },
}

/// What the run found or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopicInfo {
    pub(crate) partitions: i32,
    pub(crate) created: bool,
}

pub(crate) fn ensure(
    config: &ClientConfig,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<TopicInfo, TopicError> {
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(|source| TopicError::Client {
            bootstrap: bootstrap.to_owned(),
            source,
        })?;
    let mut created = false;
    if led_partitions(&admin, bootstrap, topic)?.is_none() {
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
        let opts = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let create_error = |source| TopicError::Create {
            topic: topic.to_owned(),
            partitions,
            replication,
            source,
        };
        let results =
            futures_executor::block_on(admin.create_topics([&new], &opts)).map_err(create_error)?;
        for result in results {
            match result {
                Ok(_) => created = true,
                // Someone else made it meanwhile: use theirs.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(create_error(KafkaError::AdminOp(code))),
            }
        }
    }
    let deadline = Instant::now() + LEADERS_TIMEOUT;
    loop {
        if let Some(partitions) = led_partitions(&admin, bootstrap, topic)? {
            return Ok(TopicInfo {
                partitions,
                created,
            });
        }
        if Instant::now() > deadline {
            return Err(TopicError::NoLeaders {
                topic: topic.to_owned(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The topic's partition count once it exists and every partition has a leader.
///
/// Asks for the metadata of all topics: a request naming the topic could auto-create it
/// with the broker's default partition count.
fn led_partitions(
    admin: &AdminClient<DefaultClientContext>,
    bootstrap: &str,
    topic: &str,
) -> Result<Option<i32>, TopicError> {
    let metadata = admin
        .inner()
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|source| TopicError::Metadata {
            bootstrap: bootstrap.to_owned(),
            source,
        })?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    let ready = t.error().is_none()
        && !t.partitions().is_empty()
        && t.partitions().iter().all(|p| p.leader() >= 0);
    Ok(ready.then_some(t.partitions().len() as i32))
}
