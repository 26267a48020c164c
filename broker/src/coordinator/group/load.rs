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
//! and counted.
//!
//! Transactions: the caller replays the records of a transactional batch with
//! [`Loader::replay_transactional`] and a transaction marker with
//! [`Loader::end_transaction`]. A transactional offset commit is held for its producer until
//! the producer's marker: COMMIT applies it unless the partition's committed offset is later
//! in the log, ABORT drops it (Kafka's loader). A transaction still open at the end of the log
//! stays pending in the loaded coordinator; its marker arrives later through
//! [`GroupCoordinator::complete_transaction`]. An offset tombstone deletes the partition's
//! pending transactional commits too, as deleting it live does.

use std::collections::{BTreeMap, HashMap};

use super::GroupCoordinator;
use super::api::Protocol;
use super::config::GroupConfig;
use super::ids::{GenerationId, GroupId, InstanceId, MemberId};
use super::member::Member;
use super::offsets::{Committed, LogPosition, OffsetAndMetadata, TxnOffset};
use super::records::{
    GroupMetadataValue, RecordError, RecordKey, decode_group_metadata_value, decode_key,
    decode_offset_commit_value,
};
use super::state::{Group, GroupState};
use crate::types::TopicPartition;

#[derive(Debug, Default)]
struct LoadedGroup {
    metadata: Option<GroupMetadataValue>,
    offsets: BTreeMap<TopicPartition, Committed>,
    /// Open transactions' commits, per producer id.
    transactions: BTreeMap<i64, BTreeMap<TopicPartition, TxnOffset>>,
}

/// Accumulates replayed records; [`Loader::finish`] builds the coordinator.
#[derive(Debug, Default)]
pub struct Loader {
    groups: BTreeMap<GroupId, LoadedGroup>,
    skipped: u64,
    /// Records replayed so far: the log order of what they wrote.
    position: u64,
}

impl Loader {
    pub fn new() -> Self {
        Loader::default()
    }

    /// Applies one record of a non-transactional batch; `value: None` is a tombstone. A
    /// record that cannot be decoded fails the load, as it does in Kafka: skipping it could
    /// resurrect deleted state.
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), RecordError> {
        self.position += 1;
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
                        let offset = decode_offset(value)?;
                        let at = LogPosition::Loaded(self.position);
                        self.entry(group)
                            .offsets
                            .insert(tp, Committed { offset, at });
                    }
                    None => {
                        if let Some(loaded) = self.groups.get_mut(group.as_str()) {
                            loaded.offsets.remove(&tp);
                            loaded.transactions.retain(|_, offsets| {
                                offsets.remove(&tp);
                                !offsets.is_empty()
                            });
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

    /// Applies one record of `producer_id`'s transactional batch: an offset commit is held
    /// until the producer's marker. Group metadata is never written transactionally; if
    /// present it applies at once, as Kafka's loader does.
    pub fn replay_transactional(
        &mut self,
        producer_id: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), RecordError> {
        let Some(RecordKey::OffsetCommit {
            group,
            topic,
            partition,
        }) = decode_key(key)?
        else {
            return self.replay(key, value);
        };
        self.position += 1;
        let tp = TopicPartition::new(topic, partition);
        match value {
            Some(value) => {
                let pending = TxnOffset {
                    offset: decode_offset(value)?,
                    at: LogPosition::Loaded(self.position),
                    stored: true,
                };
                let loaded = self.entry(group);
                loaded
                    .transactions
                    .entry(producer_id)
                    .or_default()
                    .insert(tp, pending);
            }
            None => {
                if let Some(loaded) = self.groups.get_mut(group.as_str())
                    && let Some(offsets) = loaded.transactions.get_mut(&producer_id)
                {
                    offsets.remove(&tp);
                    if offsets.is_empty() {
                        loaded.transactions.remove(&producer_id);
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies a transaction marker (a control record) of `producer_id`: COMMIT (`commit`)
    /// makes its held commits the committed offsets, each unless the partition's committed
    /// offset is later in the log; ABORT drops them.
    pub fn end_transaction(&mut self, producer_id: i64, commit: bool) {
        self.position += 1;
        for loaded in self.groups.values_mut() {
            let Some(offsets) = loaded.transactions.remove(&producer_id) else {
                continue;
            };
            if !commit {
                continue;
            }
            for (tp, pending) in offsets {
                if loaded.offsets.get(&tp).is_none_or(|c| c.at < pending.at) {
                    let committed = Committed {
                        offset: pending.offset,
                        at: pending.at,
                    };
                    loaded.offsets.insert(tp, committed);
                }
            }
        }
    }

    /// Replays one record as decoded from the partition's log: a transaction marker ends its
    /// producer's transactional commits, a transactional batch's record is held for its
    /// producer, any other record applies at once. Records without a key are skipped.
    pub fn replay_record(
        &mut self,
        record: &kafka_protocol::records::Record,
    ) -> Result<(), RecordError> {
        if record.control {
            if let Some(commit) = super::batch::marker_type(record.key.as_deref()) {
                self.end_transaction(record.producer_id, commit);
            }
            return Ok(());
        }
        let Some(key) = record.key.as_deref() else {
            return Ok(());
        };
        let value = record.value.as_deref();
        if record.transactional {
            self.replay_transactional(record.producer_id, key, value)
        } else {
            self.replay(key, value)
        }
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
            if loaded.metadata.is_none()
                && loaded.offsets.is_empty()
                && loaded.transactions.is_empty()
            {
                continue;
            }
            let mut group = match &loaded.metadata {
                Some(metadata) => restore_group(id.clone(), metadata, now),
                None => Group::new(id.clone(), now),
            };
            group.offsets.committed = loaded.offsets;
            group.offsets.transactions = loaded.transactions;
            coordinator.insert_loaded(group, now);
        }
        coordinator
    }
}

fn decode_offset(value: &[u8]) -> Result<OffsetAndMetadata, RecordError> {
    let value = decode_offset_commit_value(value)?;
    Ok(OffsetAndMetadata {
        offset: value.offset,
        leader_epoch: (value.leader_epoch >= 0).then_some(value.leader_epoch),
        metadata: value.metadata,
        commit_timestamp: value.commit_timestamp,
        expire_timestamp: (value.expire_timestamp >= 0).then_some(value.expire_timestamp),
    })
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
