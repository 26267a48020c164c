//! Identifier newtypes: broker ids, validated topic names, topic ids and listener names.
//!
//! Owns Kafka's topic-name rules (`Topic.validate` in Kafka): a [`TopicName`]
//! can only be built through [`TopicName::new`] (or deserialized through it),
//! so every `TopicName` in the process is valid. A [`TopicId`] made by
//! [`TopicId::random`] is never the nil UUID, never Kafka's reserved metadata
//! topic id, and never renders with a leading `-`, as Kafka's `Uuid.randomUuid`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Topics the brokers' coordinators own.
const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// Why a string is not a valid topic name. Each variant names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTopicName {
    #[error("Topic name is invalid: the empty string is not allowed")]
    Empty,
    #[error("Topic name is invalid: '{name}' is not allowed")]
    Reserved { name: String },
    #[error(
        "Topic name is invalid: the length of '{name}' is longer than the max allowed length {MAX_TOPIC_NAME_LEN}"
    )]
    TooLong { name: String },
    #[error(
        "Topic name is invalid: '{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"
    )]
    IllegalCharacter { name: String },
}

/// A broker's id (`node.id` / `broker.id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BrokerId(pub i32);

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The name of a broker's Kafka listener (`INTERNAL` in `INTERNAL://host:9092`). A broker
/// advertises one endpoint per listener name; a request is answered with every broker's
/// endpoint for the listener it arrived on, as Kafka's `ListenerName`. Names compare exactly;
/// the broker's config upper-cases them ([`ListenerName::normalised`]), as Kafka's does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ListenerName(String);

impl ListenerName {
    /// The name as given.
    pub fn new(name: impl Into<String>) -> ListenerName {
        ListenerName(name.into())
    }

    /// The name upper-cased, as Kafka reads listener names from its config.
    pub fn normalised(name: &str) -> ListenerName {
        ListenerName(name.to_ascii_uppercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ListenerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ListenerName {
    fn from(name: &str) -> ListenerName {
        ListenerName::new(name)
    }
}

impl From<String> for ListenerName {
    fn from(name: String) -> ListenerName {
        ListenerName::new(name)
    }
}

impl From<ListenerName> for String {
    fn from(name: ListenerName) -> String {
        name.0
    }
}

impl PartialEq<str> for ListenerName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ListenerName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A topic name that passed Kafka's validation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicName(String);

impl TopicName {
    /// Validates `name` with Kafka's rules: 1..=249 characters of `[a-zA-Z0-9._-]`,
    /// and neither `.` nor `..` (they would name the data directory or its parent).
    pub fn new(name: &str) -> Result<TopicName, InvalidTopicName> {
        if name.is_empty() {
            return Err(InvalidTopicName::Empty);
        }
        if name == "." || name == ".." {
            return Err(InvalidTopicName::Reserved {
                name: name.to_owned(),
            });
        }
        // Kafka counts UTF-16 units; the two counts agree on every name that can
        // pass the character rule below.
        if name.chars().count() > MAX_TOPIC_NAME_LEN {
            return Err(InvalidTopicName::TooLong {
                name: name.to_owned(),
            });
        }
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if !name.chars().all(legal) {
            return Err(InvalidTopicName::IllegalCharacter {
                name: name.to_owned(),
            });
        }
        Ok(TopicName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name is one of the coordinators' internal topics.
    pub fn is_internal(&self) -> bool {
        INTERNAL_TOPICS.contains(&self.0.as_str())
    }

    /// The key under which two names collide: metric names do not tell `.` from
    /// `_`, so Kafka refuses a topic whose key equals an existing topic's.
    pub fn collision_key(&self) -> String {
        self.0.replace('.', "_")
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TopicName {
    type Error = InvalidTopicName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        TopicName::new(&name)
    }
}

impl From<TopicName> for String {
    fn from(name: TopicName) -> String {
        name.0
    }
}

/// A topic's id. Stored as a standard UUID; displayed as Kafka displays topic
/// ids (22 characters of URL-safe base64 without padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TopicId(pub uuid::Uuid);

impl TopicId {
    /// A fresh random id that Kafka would also hand out.
    pub fn random() -> TopicId {
        TopicId(random_kafka_uuid())
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&kafka_base64(self.0))
    }
}

/// A new cluster id in Kafka's form: the base64 of a random UUID, 22 characters.
pub(crate) fn new_cluster_id() -> String {
    kafka_base64(random_kafka_uuid())
}

fn kafka_base64(id: uuid::Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// A random v4 UUID, redrawn while it is nil, Kafka's metadata topic id
/// (`0…01`), or renders with a leading `-`, which command-line tools would
/// take for an option.
fn random_kafka_uuid() -> uuid::Uuid {
    const METADATA_TOPIC_ID: uuid::Uuid = uuid::Uuid::from_u128(1);
    loop {
        let id = uuid::Uuid::new_v4();
        if !id.is_nil() && id != METADATA_TOPIC_ID && !kafka_base64(id).starts_with('-') {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_name_rules_match_kafka() {
        let long_ok = "a".repeat(249);
        let too_long = "a".repeat(250);
        let cases: &[(&str, Result<(), InvalidTopicName>)] = &[
            ("orders", Ok(())),
            ("Orders-2024_v1.final", Ok(())),
            ("__consumer_offsets", Ok(())),
            ("...", Ok(())),
            ("-", Ok(())),
            (&long_ok, Ok(())),
            ("", Err(InvalidTopicName::Empty)),
            (".", Err(InvalidTopicName::Reserved { name: ".".into() })),
            ("..", Err(InvalidTopicName::Reserved { name: "..".into() })),
            (
                &too_long,
                Err(InvalidTopicName::TooLong {
                    name: too_long.clone(),
                }),
            ),
            (
                "a b",
                Err(InvalidTopicName::IllegalCharacter { name: "a b".into() }),
            ),
            (
                "a/b",
                Err(InvalidTopicName::IllegalCharacter { name: "a/b".into() }),
            ),
            (
                "ümlaut",
                Err(InvalidTopicName::IllegalCharacter {
                    name: "ümlaut".into(),
                }),
            ),
            (
                "a\n",
                Err(InvalidTopicName::IllegalCharacter { name: "a\n".into() }),
            ),
        ];
        for (input, expected) in cases {
            let got = TopicName::new(input).map(|name| assert_eq!(name.as_str(), *input));
            assert_eq!(&got, expected, "input {input:?}");
        }
    }

    #[test]
    fn topic_name_error_names_the_input_and_the_rule() {
        let err = TopicName::new("bad name").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Topic name is invalid: 'bad name' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"
        );
        let err = TopicName::new(&"x".repeat(300)).unwrap_err();
        assert!(
            err.to_string()
                .contains("longer than the max allowed length 249")
        );
        assert!(err.to_string().contains(&"x".repeat(300)));
    }

    #[test]
    fn collision_key_unifies_dot_and_underscore() {
        let dotted = TopicName::new("a.b_c").unwrap();
        let underscored = TopicName::new("a_b.c").unwrap();
        let dashed = TopicName::new("a-b_c").unwrap();
        assert_eq!(dotted.collision_key(), "a_b_c");
        assert_eq!(dotted.collision_key(), underscored.collision_key());
        assert_ne!(dotted.collision_key(), dashed.collision_key());
    }

    #[test]
    fn only_coordinator_topics_are_internal() {
        assert!(TopicName::new("__consumer_offsets").unwrap().is_internal());
        assert!(TopicName::new("__transaction_state").unwrap().is_internal());
        assert!(!TopicName::new("__consumer_offsets2").unwrap().is_internal());
        assert!(!TopicName::new("orders").unwrap().is_internal());
    }

    #[test]
    fn deserializing_a_topic_name_validates_it() {
        let ok: TopicName = serde_json::from_str("\"orders\"").unwrap();
        assert_eq!(ok.as_str(), "orders");
        assert!(serde_json::from_str::<TopicName>("\"..\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"orders\"");
    }

    #[test]
    fn random_ids_are_kafka_shaped() {
        for _ in 0..200 {
            let id = TopicId::random();
            assert!(!id.0.is_nil());
            assert_eq!(id.0.get_version_num(), 4);
            let shown = id.to_string();
            assert_eq!(shown.len(), 22);
            assert!(!shown.starts_with('-'));
        }
        let cluster = new_cluster_id();
        assert_eq!(cluster.len(), 22);
        assert!(
            cluster
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn broker_id_displays_as_its_number() {
        assert_eq!(BrokerId(7).to_string(), "7");
        assert_eq!(serde_json::to_string(&BrokerId(7)).unwrap(), "7");
    }
}
