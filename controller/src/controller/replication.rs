//! Partition leadership, ISR and replica changes in the controller: AlterPartition,
//! ElectLeaders and partition reassignments. The rules are in [`crate::partitions`]
//! and [`crate::reassignment`]; here they are applied to a copy of the image and
//! committed.

use super::{Controller, ControllerError};
use crate::metadata::{ClusterMetadata, PartitionState, TopicMetadata};
use crate::partitions::{self, PartitionError};
use crate::plane::{
    AlterPartition, ElectionResult, ElectionType, OngoingReassignment, PartitionRef,
    ReassignmentChange,
};
use crate::reassignment;
use crate::registry;
use crate::store::MetadataStore;

impl<S: MetadataStore> Controller<S> {
    /// Commits an ISR change proposed by a partition's leader (AlterPartition, with
    /// Kafka's checks in Kafka's order: broker epoch, topic id, partition, then
    /// [`partitions::propose_isr`]) and returns the partition as committed. The change
    /// is settled like any other, so it can complete a reassignment or, from a leader
    /// in controlled shutdown, hand leadership to a follower that just joined: the
    /// committed leader is then another broker (Kafka answers NEW_LEADER_ELECTED).
    pub async fn alter_partition(
        &mut self,
        request: AlterPartition,
    ) -> Result<PartitionState, ControllerError> {
        registry::check_epoch(&self.metadata.brokers, request.broker, request.broker_epoch)?;
        let topic =
            self.metadata
                .topic_by_id(request.topic_id)
                .ok_or(ControllerError::UnknownTopicId {
                    id: request.topic_id,
                })?;
        let name = topic.name.as_str().to_owned();
        let current = partition_of(topic, request.partition)?;
        let proposed = partitions::propose_isr(current, &self.metadata.brokers, &request).map_err(
            |source| ControllerError::Partition {
                topic: name.clone(),
                partition: request.partition,
                source,
            },
        )?;
        let unclean = partitions::unclean_election_enabled(topic);
        let settled = partitions::settle(&proposed, &self.metadata.brokers, unclean);
        let target = PartitionRef {
            topic: name.clone(),
            partition: request.partition,
        };
        let mut next = ClusterMetadata::clone(&self.metadata);
        *partition_and_brokers(&mut next, &target)?.0 = settled;
        self.commit_if_changed(next).await?;
        let committed = self
            .metadata
            .topic(&name)
            .ok_or(ControllerError::UnknownTopicId {
                id: request.topic_id,
            })?;
        partition_of(committed, request.partition).cloned()
    }

    /// ElectLeaders: one result per partition asked for; `None` asks for every
    /// partition and, as Kafka, leaves out those that need no election. Every
    /// successful election is committed together.
    pub async fn elect_leaders(
        &mut self,
        election: ElectionType,
        partitions: Option<Vec<PartitionRef>>,
    ) -> Result<Vec<ElectionResult>, ControllerError> {
        let every = partitions.is_none();
        let refs = partitions.unwrap_or_else(|| all_partitions(&self.metadata));
        let mut next = ClusterMetadata::clone(&self.metadata);
        let mut results = Vec::with_capacity(refs.len());
        for partition in refs {
            let result = elect_one(&mut next, &partition, election);
            let not_needed = matches!(
                result,
                Err(ControllerError::Partition {
                    source: PartitionError::ElectionNotNeeded,
                    ..
                })
            );
            if !(every && not_needed) {
                results.push(ElectionResult { partition, result });
            }
        }
        self.commit_if_changed(next).await?;
        Ok(results)
    }

    /// AlterPartitionReassignments: starts, replaces (`Some(target)`) or cancels
    /// (`None`) reassignments; one result per change. Every accepted change is
    /// committed together; a target whose replicas are all in sync completes at once.
    pub async fn alter_reassignments(
        &mut self,
        changes: Vec<ReassignmentChange>,
    ) -> Result<Vec<(PartitionRef, Result<(), ControllerError>)>, ControllerError> {
        let mut next = ClusterMetadata::clone(&self.metadata);
        let results: Vec<_> = changes
            .into_iter()
            .map(|change| {
                let result = reassign_one(&mut next, &change);
                (change.partition, result)
            })
            .collect();
        self.commit_if_changed(next).await?;
        Ok(results)
    }

    /// ListPartitionReassignments: the ongoing reassignments among `partitions`
    /// (unknown or idle ones are left out, as Kafka), or all of them for `None`.
    pub fn list_reassignments(
        &self,
        partitions: Option<Vec<PartitionRef>>,
    ) -> Vec<OngoingReassignment> {
        let refs = partitions.unwrap_or_else(|| all_partitions(&self.metadata));
        refs.iter()
            .filter_map(|r| {
                let topic = self.metadata.topic(&r.topic)?;
                let partition = partition_of(topic, r.partition).ok()?;
                reassignment::ongoing(&r.topic, partition)
            })
            .collect()
    }
}

fn all_partitions(metadata: &ClusterMetadata) -> Vec<PartitionRef> {
    metadata
        .topics
        .values()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| PartitionRef {
                topic: topic.name.as_str().to_owned(),
                partition: p.partition,
            })
        })
        .collect()
}

fn unknown_partition(topic: &str, partition: i32) -> ControllerError {
    ControllerError::UnknownPartition {
        topic: topic.to_owned(),
        partition,
    }
}

fn partition_of(topic: &TopicMetadata, partition: i32) -> Result<&PartitionState, ControllerError> {
    usize::try_from(partition)
        .ok()
        .and_then(|i| topic.partitions.get(i))
        .ok_or_else(|| unknown_partition(topic.name.as_str(), partition))
}

fn elect_one(
    next: &mut ClusterMetadata,
    target: &PartitionRef,
    election: ElectionType,
) -> Result<(), ControllerError> {
    let (partition, brokers) = partition_and_brokers(next, target)?;
    let elected = match election {
        ElectionType::Preferred => partitions::elect_preferred(partition, brokers),
        ElectionType::Unclean => partitions::elect_unclean(partition, brokers),
    }
    .map_err(|source| ControllerError::Partition {
        topic: target.topic.clone(),
        partition: target.partition,
        source,
    })?;
    *partition = elected;
    Ok(())
}

fn reassign_one(
    next: &mut ClusterMetadata,
    change: &ReassignmentChange,
) -> Result<(), ControllerError> {
    let target = &change.partition;
    let unclean = next
        .topics
        .get(&target.topic)
        .is_some_and(partitions::unclean_election_enabled);
    let (partition, brokers) = partition_and_brokers(next, target)?;
    let error = |source| ControllerError::Reassignment {
        topic: target.topic.clone(),
        partition: target.partition,
        source,
    };
    let candidate = match &change.target {
        Some(replicas) => {
            reassignment::validate_target(brokers, target.partition, replicas).map_err(error)?;
            reassignment::start(partition, replicas)
        }
        None => reassignment::cancel(partition, unclean).map_err(error)?,
    };
    *partition = partitions::settle(&candidate, brokers, unclean);
    Ok(())
}

/// The partition, mutable, beside the broker map it is judged against.
fn partition_and_brokers<'a>(
    metadata: &'a mut ClusterMetadata,
    target: &PartitionRef,
) -> Result<(&'a mut PartitionState, &'a partitions::Brokers), ControllerError> {
    let ClusterMetadata {
        topics, brokers, ..
    } = metadata;
    let topic = topics
        .get_mut(&target.topic)
        .ok_or_else(|| ControllerError::UnknownTopic {
            name: target.topic.clone(),
        })?;
    let partition = usize::try_from(target.partition)
        .ok()
        .and_then(|i| topic.partitions.get_mut(i))
        .ok_or_else(|| unknown_partition(&target.topic, target.partition))?;
    Ok((partition, brokers))
}
