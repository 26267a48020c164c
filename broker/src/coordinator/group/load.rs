//! Rebuilding a coordinator from its `__consumer_offsets` partition.
//!
//! The caller replays the partition's records in offset order; later records win and
//! tombstones delete. Like Kafka's loader, a group tombstone removes the group's membership
//! but not offsets written after it, and offsets without group metadata make an Empty group
//! (standalone committers never write any). Groups with members come back Stable with their
//! last stored assignment, and every member gets a fresh session from the load time: members
//! that are gone expire and trigger a rebalance.
//!
//! Records of other group types (key version 3+, written by KIP-848 coordinators) are skipped
//! and counted. Transactional offset commits are not handled: the caller replays only
//! non-transactional batches.

use std::collections::{BTreeMap, HashMap};

use super::GroupCoordinator;
use super::api::Protocol;
use super::config::GroupConfig;
use super::ids::{GenerationId, GroupId, InstanceId, MemberId};
use super::member::Member;
use super::offsets::OffsetAndMetadata;
use super::records::{
    GroupMetadataValue, RecordError, RecordKey, decode_group_metadata_value, decode_key,
    decode_offset_commit_value,
};
use super::state::{Group, GroupState};
use crate::types::TopicPartition;

#[derive(Debug, Default)]
struct LoadedGroup {
    metadata: Option<GroupMetadataValue>,
    offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
}

/// Accumulates replayed records; [`Loader::finish`] builds the coordinator.
#[derive(Debug, Default)]
pub struct Loader {
    groups: BTreeMap<GroupId, LoadedGroup>,
    skipped: u64,
}

impl Loader {
    pub fn new() -> Self {
        Loader::default()
    }

    /// Applies one record; `value: None` is a tombstone. A record that cannot be decoded fails
    /// the load, as it does in Kafka: skipping it could resurrect deleted state.
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), RecordError> {
        let Some(key) = decode_key(key)? else {
            self.skipped += 1;
            return Ok(());
        };
        match key {
            RecordKey::OffsetCommit {
                group,
                topic,
                partition,
            } => {
                let tp = TopicPartition::new(topic, partition);
                match value {
                    Some(value) => {
                        let value = decode_offset_commit_value(value)?;
                        let offset = OffsetAndMetadata {
                            offset: value.offset,
                            leader_epoch: (value.leader_epoch >= 0).then_some(value.leader_epoch),
                            metadata: value.metadata,
                            commit_timestamp: value.commit_timestamp,
                            expire_timestamp: (value.expire_timestamp >= 0)
                                .then_some(value.expire_timestamp),
                        };
                        self.entry(group).offsets.insert(tp, offset);
                    }
                    None => {
                        if let Some(loaded) = self.groups.get_mut(group.as_str()) {
                            loaded.offsets.remove(&tp);
                        }
                    }
                }
            }
            RecordKey::GroupMetadata { group } => match value {
                Some(value) => {
                    self.entry(group).metadata = Some(decode_group_metadata_value(value)?)
                }
                None => {
                    if let Some(loaded) = self.groups.get_mut(group.as_str()) {
                        loaded.metadata = None;
                    }
                }
            },
        }
        Ok(())
    }

    fn entry(&mut self, group: String) -> &mut LoadedGroup {
        self.groups.entry(GroupId(group)).or_default()
    }

    /// Records skipped because they belong to other group types.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The coordinator the replayed records describe, as of `now`.
    pub fn finish(self, config: GroupConfig, now: i64) -> GroupCoordinator {
        let mut coordinator = GroupCoordinator::new(config, now);
        for (id, loaded) in self.groups {
            if loaded.metadata.is_none() && loaded.offsets.is_empty() {
                continue;
            }
            let mut group = match &loaded.metadata {
                Some(metadata) => restore_group(id.clone(), metadata, now),
                None => Group::new(id.clone(), now),
            };
            group.offsets.committed = loaded.offsets;
            coordinator.insert_loaded(group, now);
        }
        coordinator
    }
}

fn restore_group(id: GroupId, value: &GroupMetadataValue, now: i64) -> Group {
    let mut group = Group::new(id, now);
    group.generation = GenerationId(value.generation);
    group.protocol_type = Some(value.protocol_type.clone()).filter(|t| !t.is_empty());
    group.protocol_name = value.protocol.clone();
    group.state_timestamp =
        (value.current_state_timestamp >= 0).then_some(value.current_state_timestamp);
    let protocol = value.protocol.clone().unwrap_or_default();
    let mut static_members = HashMap::new();
    for m in &value.members {
        let member_id = MemberId(m.member_id.clone());
        let instance_id = m.group_instance_id.clone().map(InstanceId);
        if let Some(instance_id) = &instance_id {
            static_members.insert(instance_id.clone(), member_id.clone());
        }
        let member = Member {
            id: member_id.clone(),
            instance_id,
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            // Version 0 stored no rebalance timeout; Kafka uses the session timeout.
            rebalance_timeout_ms: if m.rebalance_timeout == -1 {
                m.session_timeout
            } else {
                m.rebalance_timeout
            },
            session_timeout_ms: m.session_timeout,
            protocol_type: value.protocol_type.clone(),
            protocols: vec![Protocol {
                name: protocol.clone(),
                metadata: m.subscription.clone(),
            }],
            assignment: m.assignment.clone(),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
            session_deadline: Some(now + i64::from(m.session_timeout)),
        };
        group.members.insert(member_id, member);
    }
    group.static_members = static_members;
    group.leader = value
        .leader
        .clone()
        .map(MemberId)
        .filter(|leader| group.members.contains_key(leader))
        .or_else(|| group.members.keys().next().cloned());
    if !group.members.is_empty() {
        group.state = GroupState::Stable;
        group.previous_state = GroupState::Stable;
    }
    group.subscribed_topics = group.compute_subscribed_topics();
    group
}

impl GroupCoordinator {
    /// Replays `records` (key, value-or-tombstone, in log order) into a coordinator.
    pub fn load<K, V>(
        config: GroupConfig,
        records: impl IntoIterator<Item = (K, Option<V>)>,
        now: i64,
    ) -> Result<GroupCoordinator, RecordError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut loader = Loader::new();
        for (key, value) in records {
            loader.replay(key.as_ref(), value.as_ref().map(AsRef::as_ref))?;
        }
        Ok(loader.finish(config, now))
    }
}
