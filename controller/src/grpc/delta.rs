//! Versioned metadata deltas: what the metadata watch sends after its first snapshot.
//!
//! Two pure functions: [`diff`] computes the change from one image to another and
//! [`apply`] replays it. For any images `prev` and `next`,
//! `apply(&prev, diff(&prev, &next)) == Ok(next)`. A delta spans whatever versions lie
//! between its two images (a watch skips intermediate versions when the watcher is
//! slower than the controller), so it carries whole topics and brokers, never edits
//! within them.
//!
//! [`apply`] refuses a delta that does not fit the image: one built from another
//! version, or one that deletes a topic or removes a broker the image does not have.
//! A watcher that gets such a refusal has lost track and starts again from a snapshot.

use crate::ids::{BrokerId, TopicId};
use crate::metadata::{BrokerInfo, ClusterMetadata, TopicMetadata};
use crate::registry::BrokerEpoch;

/// The change from the image at `from_version` to the image at `to_version`. Applied
/// in field order: topic deletions, topic upserts, broker removals, broker upserts,
/// then the scalars that are `Some`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataDelta {
    pub from_version: u64,
    pub to_version: u64,
    /// Topics deleted, each with the id it had. A topic deleted and re-created under
    /// the same name is here (old id) and in `upserted_topics` (new id).
    pub deleted_topics: Vec<DeletedTopic>,
    /// Topics added or changed, whole.
    pub upserted_topics: Vec<TopicMetadata>,
    pub removed_brokers: Vec<BrokerId>,
    /// Brokers added or changed, whole.
    pub upserted_brokers: Vec<BrokerInfo>,
    pub cluster_id: Option<String>,
    pub next_producer_id: Option<i64>,
    pub last_broker_epoch: Option<BrokerEpoch>,
}

/// A topic a delta deletes: the name the image keys it by and the id it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedTopic {
    pub name: String,
    pub id: TopicId,
}

/// Why a delta does not fit an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    #[error(
        "delta from version {from_version} does not apply to the image at version {image_version}"
    )]
    VersionMismatch {
        image_version: u64,
        from_version: u64,
    },
    #[error("delta deletes topic '{name}' (id {id}), which the image does not have")]
    UnknownDeletedTopic { name: String, id: TopicId },
    #[error("delta deletes topic '{name}' with id {deleted}, but the image's has id {present}")]
    DeletedTopicIdMismatch {
        name: String,
        deleted: TopicId,
        present: TopicId,
    },
    #[error(
        "delta replaces topic '{name}' (id {present}) by one with id {upserted} without deleting it"
    )]
    TopicReplacedWithoutDeletion {
        name: String,
        present: TopicId,
        upserted: TopicId,
    },
    #[error("delta removes broker {broker}, which the image does not have")]
    UnknownRemovedBroker { broker: BrokerId },
}

impl MetadataDelta {
    /// Whether applying it changes nothing, the version included.
    pub fn is_empty(&self) -> bool {
        self.from_version == self.to_version
            && self.deleted_topics.is_empty()
            && self.upserted_topics.is_empty()
            && self.removed_brokers.is_empty()
            && self.upserted_brokers.is_empty()
            && self.cluster_id.is_none()
            && self.next_producer_id.is_none()
            && self.last_broker_epoch.is_none()
    }
}

/// The delta that turns `prev` into `next`.
pub fn diff(prev: &ClusterMetadata, next: &ClusterMetadata) -> MetadataDelta {
    let deleted_topics = prev
        .topics
        .iter()
        .filter(|(name, topic)| next.topics.get(*name).is_none_or(|now| now.id != topic.id))
        .map(|(name, topic)| DeletedTopic {
            name: name.clone(),
            id: topic.id,
        })
        .collect();
    let upserted_topics = next
        .topics
        .iter()
        .filter(|(name, topic)| prev.topics.get(*name) != Some(topic))
        .map(|(_, topic)| topic.clone())
        .collect();
    let removed_brokers = prev
        .brokers
        .keys()
        .filter(|id| !next.brokers.contains_key(id))
        .copied()
        .collect();
    let upserted_brokers = next
        .brokers
        .iter()
        .filter(|(id, broker)| prev.brokers.get(id) != Some(broker))
        .map(|(_, broker)| broker.clone())
        .collect();
    MetadataDelta {
        from_version: prev.version,
        to_version: next.version,
        deleted_topics,
        upserted_topics,
        removed_brokers,
        upserted_brokers,
        cluster_id: changed(&prev.cluster_id, &next.cluster_id).cloned(),
        next_producer_id: changed(&prev.next_producer_id, &next.next_producer_id).copied(),
        last_broker_epoch: changed(&prev.last_broker_epoch, &next.last_broker_epoch).copied(),
    }
}

fn changed<'a, T: PartialEq>(prev: &T, next: &'a T) -> Option<&'a T> {
    (prev != next).then_some(next)
}

/// `image` changed by `delta`, or why the delta does not fit it.
pub fn apply(image: &ClusterMetadata, delta: MetadataDelta) -> Result<ClusterMetadata, DeltaError> {
    if delta.from_version != image.version {
        return Err(DeltaError::VersionMismatch {
            image_version: image.version,
            from_version: delta.from_version,
        });
    }
    let mut next = image.clone();
    for deleted in delta.deleted_topics {
        delete_topic(&mut next, deleted)?;
    }
    for topic in delta.upserted_topics {
        upsert_topic(&mut next, topic)?;
    }
    for broker in delta.removed_brokers {
        if next.brokers.remove(&broker).is_none() {
            return Err(DeltaError::UnknownRemovedBroker { broker });
        }
    }
    for broker in delta.upserted_brokers {
        next.brokers.insert(broker.id, broker);
    }
    if let Some(cluster_id) = delta.cluster_id {
        next.cluster_id = cluster_id;
    }
    if let Some(next_producer_id) = delta.next_producer_id {
        next.next_producer_id = next_producer_id;
    }
    if let Some(last_broker_epoch) = delta.last_broker_epoch {
        next.last_broker_epoch = last_broker_epoch;
    }
    next.version = delta.to_version;
    Ok(next)
}

fn delete_topic(image: &mut ClusterMetadata, deleted: DeletedTopic) -> Result<(), DeltaError> {
    match image.topics.get(&deleted.name) {
        None => Err(DeltaError::UnknownDeletedTopic {
            name: deleted.name,
            id: deleted.id,
        }),
        Some(present) if present.id != deleted.id => Err(DeltaError::DeletedTopicIdMismatch {
            present: present.id,
            name: deleted.name,
            deleted: deleted.id,
        }),
        Some(_) => {
            image.topics.remove(&deleted.name);
            Ok(())
        }
    }
}

fn upsert_topic(image: &mut ClusterMetadata, topic: TopicMetadata) -> Result<(), DeltaError> {
    let name = topic.name.as_str().to_owned();
    if let Some(present) = image.topics.get(&name)
        && present.id != topic.id
    {
        return Err(DeltaError::TopicReplacedWithoutDeletion {
            name,
            present: present.id,
            upserted: topic.id,
        });
    }
    image.topics.insert(name, topic);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ids::TopicName;
    use crate::metadata::PartitionState;

    fn image(version: u64) -> ClusterMetadata {
        ClusterMetadata::empty("c", version)
    }

    fn topic(name: &str, id: u128) -> TopicMetadata {
        TopicMetadata {
            name: TopicName::new(name).unwrap(),
            id: TopicId(uuid::Uuid::from_u128(id)),
            partitions: vec![PartitionState::new(0, vec![BrokerId(1)])],
            configs: BTreeMap::new(),
        }
    }

    fn with_topic(mut image: ClusterMetadata, topic: TopicMetadata) -> ClusterMetadata {
        image.topics.insert(topic.name.to_string(), topic);
        image
    }

    #[test]
    fn identical_images_differ_by_an_empty_delta() {
        let a = with_topic(image(3), topic("a", 1));
        let delta = diff(&a, &a);
        assert!(delta.is_empty(), "{delta:?}");
        assert_eq!(apply(&a, delta), Ok(a));
    }

    #[test]
    fn a_recreated_topic_is_deleted_with_its_old_id_and_upserted_with_its_new_one() {
        let prev = with_topic(image(1), topic("a", 1));
        let next = with_topic(image(4), topic("a", 2));
        let delta = diff(&prev, &next);
        assert_eq!(
            delta.deleted_topics,
            vec![DeletedTopic {
                name: "a".into(),
                id: TopicId(uuid::Uuid::from_u128(1)),
            }]
        );
        assert_eq!(delta.upserted_topics, vec![topic("a", 2)]);
        assert_eq!((delta.from_version, delta.to_version), (1, 4));
        assert_eq!(apply(&prev, delta), Ok(next));
    }

    #[test]
    fn a_delta_from_another_version_is_refused() {
        let prev = image(1);
        let next = with_topic(image(2), topic("a", 1));
        let delta = diff(&prev, &next);
        assert_eq!(
            apply(&image(5), delta),
            Err(DeltaError::VersionMismatch {
                image_version: 5,
                from_version: 1,
            })
        );
    }

    #[test]
    fn deltas_that_do_not_fit_the_image_are_refused() {
        let base = with_topic(image(1), topic("a", 1));
        let delete = |name: &str, id: u128| MetadataDelta {
            from_version: 1,
            to_version: 2,
            deleted_topics: vec![DeletedTopic {
                name: name.into(),
                id: TopicId(uuid::Uuid::from_u128(id)),
            }],
            ..MetadataDelta::default()
        };
        assert!(matches!(
            apply(&base, delete("b", 1)),
            Err(DeltaError::UnknownDeletedTopic { name, .. }) if name == "b"
        ));
        assert!(matches!(
            apply(&base, delete("a", 9)),
            Err(DeltaError::DeletedTopicIdMismatch { name, .. }) if name == "a"
        ));
        let replace = MetadataDelta {
            from_version: 1,
            to_version: 2,
            upserted_topics: vec![topic("a", 2)],
            ..MetadataDelta::default()
        };
        assert!(matches!(
            apply(&base, replace),
            Err(DeltaError::TopicReplacedWithoutDeletion { name, .. }) if name == "a"
        ));
        let remove = MetadataDelta {
            from_version: 1,
            to_version: 2,
            removed_brokers: vec![BrokerId(7)],
            ..MetadataDelta::default()
        };
        assert_eq!(
            apply(&base, remove),
            Err(DeltaError::UnknownRemovedBroker {
                broker: BrokerId(7)
            })
        );
    }

    #[test]
    fn unchanged_scalars_stay_out_of_the_delta() {
        let prev = image(1);
        let mut next = image(2);
        next.next_producer_id = 1000;
        let delta = diff(&prev, &next);
        assert_eq!(delta.next_producer_id, Some(1000));
        assert_eq!(delta.cluster_id, None);
        assert_eq!(delta.last_broker_epoch, None);
        assert_eq!(apply(&prev, delta), Ok(next));
    }
}
