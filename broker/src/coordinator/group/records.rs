//! The `__consumer_offsets` record formats of classic groups, byte-compatible with Kafka's
//! (`group-coordinator/src/main/resources/common/message/*.json`).
//!
//! Every key and value starts with its schema version as a big-endian `int16`, followed by
//! the fields of that version. Strings are `int16` length + UTF-8 (length -1 is null), byte
//! arrays `int32` length + bytes, arrays `int32` count. Flexible versions (values v4+) use
//! "compact" lengths instead — an unsigned varint of length + 1, 0 for null — and end every
//! struct with tagged fields (a varint count, then tag, size and bytes for each), which this
//! reader skips.
//!
//! ```text
//! key v0/v1  OffsetCommitKey      group: string, topic: string, partition: int32
//! key v2     GroupMetadataKey     group: string
//! key v3+    consumer/share-group records (KIP-848), which Weir never writes: skipped
//!
//! OffsetCommitValue   v0: offset int64, metadata string, commitTimestamp int64
//!                     v1: v0 + expireTimestamp int64 (written for commits with a retention)
//!                     v2: as v0
//!                     v3: offset, leaderEpoch int32, metadata, commitTimestamp (written)
//!                     v4: v3, flexible
//! GroupMetadataValue  protocolType string, generation int32, protocol string?, leader string?,
//!                     currentStateTimestamp int64 (v2+), members [MemberMetadata]
//!   MemberMetadata    memberId string, groupInstanceId string? (v3+), clientId string,
//!                     clientHost string, rebalanceTimeout int32 (v1+), sessionTimeout int32,
//!                     subscription bytes, assignment bytes
//!                     v3 is written; v4 is v3, flexible
//! ```
//!
//! A record with a null value is a tombstone: the offset (or the group) is deleted.

use bytes::Bytes;

use crate::coordinator::codec::{Reader, Writer};

use super::ids::GroupId;
use super::offsets::OffsetAndMetadata;
use crate::types::TopicPartition;

/// One record for `__consumer_offsets`; `value: None` is a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetsRecord {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKey {
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
    },
    GroupMetadata {
        group: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1 when unknown (and in versions before 3).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only in version 1; -1 otherwise.
    pub expire_timestamp: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown (versions before 2).
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadataValue>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberMetadataValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// -1 when unknown (version 0); Kafka then uses the session timeout.
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// Why a record could not be decoded.
pub use crate::coordinator::codec::CodecError as RecordError;

/// The key version Kafka writes for offset commits.
const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Written for commits without an expire timestamp; commits with one use version 1.
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
const GROUP_METADATA_VALUE_VERSION: i16 = 3;
const MAX_OFFSET_COMMIT_VALUE_VERSION: i16 = 4;
const MAX_GROUP_METADATA_VALUE_VERSION: i16 = 4;
/// Values from this version on are flexible.
const FIRST_FLEXIBLE_VERSION: i16 = 4;

pub fn offset_commit_record(
    group: &GroupId,
    tp: &TopicPartition,
    offset: &OffsetAndMetadata,
) -> OffsetsRecord {
    let value = OffsetCommitValue {
        offset: offset.offset,
        leader_epoch: offset.leader_epoch.unwrap_or(-1),
        metadata: offset.metadata.clone(),
        commit_timestamp: offset.commit_timestamp,
        expire_timestamp: offset.expire_timestamp.unwrap_or(-1),
    };
    let version = if offset.expire_timestamp.is_some() {
        1
    } else {
        OFFSET_COMMIT_VALUE_VERSION
    };
    OffsetsRecord {
        key: encode_key(&offset_key(group, tp)),
        value: Some(encode_offset_commit_value(&value, version)),
    }
}

pub fn offset_tombstone(group: &GroupId, tp: &TopicPartition) -> OffsetsRecord {
    OffsetsRecord {
        key: encode_key(&offset_key(group, tp)),
        value: None,
    }
}

pub fn group_metadata_record(group: &GroupId, value: &GroupMetadataValue) -> OffsetsRecord {
    OffsetsRecord {
        key: encode_key(&RecordKey::GroupMetadata {
            group: group.0.clone(),
        }),
        value: Some(encode_group_metadata_value(
            value,
            GROUP_METADATA_VALUE_VERSION,
        )),
    }
}

pub fn group_tombstone(group: &GroupId) -> OffsetsRecord {
    OffsetsRecord {
        key: encode_key(&RecordKey::GroupMetadata {
            group: group.0.clone(),
        }),
        value: None,
    }
}

fn offset_key(group: &GroupId, tp: &TopicPartition) -> RecordKey {
    RecordKey::OffsetCommit {
        group: group.0.clone(),
        topic: tp.topic.clone(),
        partition: tp.partition,
    }
}

/// Encodes a key in the version Kafka writes for it.
pub fn encode_key(key: &RecordKey) -> Bytes {
    let mut w = Writer::new(false);
    match key {
        RecordKey::OffsetCommit {
            group,
            topic,
            partition,
        } => {
            w.i16(OFFSET_COMMIT_KEY_VERSION);
            w.string(group);
            w.string(topic);
            w.i32(*partition);
        }
        RecordKey::GroupMetadata { group } => {
            w.i16(GROUP_METADATA_KEY_VERSION);
            w.string(group);
        }
    }
    w.finish()
}

/// Decodes a key; `Ok(None)` for record types other than classic groups' (key version 3+).
pub fn decode_key(bytes: &[u8]) -> Result<Option<RecordKey>, RecordError> {
    let mut r = Reader::new(bytes, "record key", false);
    let key = match r.i16()? {
        0 | 1 => RecordKey::OffsetCommit {
            group: r.string()?,
            topic: r.string()?,
            partition: r.i32()?,
        },
        2 => RecordKey::GroupMetadata { group: r.string()? },
        version if version > 2 => return Ok(None),
        version => {
            return Err(RecordError::UnsupportedVersion {
                what: "record key",
                version,
            });
        }
    };
    Ok(Some(key))
}

/// Encodes an OffsetCommitValue in `version` (0-4).
pub fn encode_offset_commit_value(value: &OffsetCommitValue, version: i16) -> Bytes {
    assert!(
        (0..=MAX_OFFSET_COMMIT_VALUE_VERSION).contains(&version),
        "OffsetCommitValue version {version}"
    );
    let mut w = Writer::new(version >= FIRST_FLEXIBLE_VERSION);
    w.i16(version);
    w.i64(value.offset);
    if version >= 3 {
        w.i32(value.leader_epoch);
    }
    w.string(&value.metadata);
    w.i64(value.commit_timestamp);
    if version == 1 {
        w.i64(value.expire_timestamp);
    }
    w.tagged_fields();
    w.finish()
}

pub fn decode_offset_commit_value(bytes: &[u8]) -> Result<OffsetCommitValue, RecordError> {
    const WHAT: &str = "OffsetCommitValue";
    let version = Reader::new(bytes, WHAT, false).i16()?;
    if !(0..=MAX_OFFSET_COMMIT_VALUE_VERSION).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            what: WHAT,
            version,
        });
    }
    let mut r = Reader::new(bytes, WHAT, version >= FIRST_FLEXIBLE_VERSION);
    r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    let expire_timestamp = if version == 1 { r.i64()? } else { -1 };
    r.skip_tagged_fields()?;
    Ok(OffsetCommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

/// Encodes a GroupMetadataValue in `version` (0-4).
pub fn encode_group_metadata_value(value: &GroupMetadataValue, version: i16) -> Bytes {
    assert!(
        (0..=MAX_GROUP_METADATA_VALUE_VERSION).contains(&version),
        "GroupMetadataValue version {version}"
    );
    let mut w = Writer::new(version >= FIRST_FLEXIBLE_VERSION);
    w.i16(version);
    w.string(&value.protocol_type);
    w.i32(value.generation);
    w.nullable_string(value.protocol.as_deref());
    w.nullable_string(value.leader.as_deref());
    if version >= 2 {
        w.i64(value.current_state_timestamp);
    }
    w.array_len(value.members.len());
    for member in &value.members {
        w.string(&member.member_id);
        if version >= 3 {
            w.nullable_string(member.group_instance_id.as_deref());
        }
        w.string(&member.client_id);
        w.string(&member.client_host);
        if version >= 1 {
            w.i32(member.rebalance_timeout);
        }
        w.i32(member.session_timeout);
        w.bytes(&member.subscription);
        w.bytes(&member.assignment);
        w.tagged_fields();
    }
    w.tagged_fields();
    w.finish()
}

pub fn decode_group_metadata_value(bytes: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    const WHAT: &str = "GroupMetadataValue";
    let version = Reader::new(bytes, WHAT, false).i16()?;
    if !(0..=MAX_GROUP_METADATA_VALUE_VERSION).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            what: WHAT,
            version,
        });
    }
    let mut r = Reader::new(bytes, WHAT, version >= FIRST_FLEXIBLE_VERSION);
    r.i16()?;
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.array_len()?;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        r.skip_tagged_fields()?;
        members.push(MemberMetadataValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout,
            session_timeout,
            subscription,
            assignment,
        });
    }
    r.skip_tagged_fields()?;
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

/// The topics of a consumer's subscription (member metadata of protocol type "consumer").
/// Read as `ConsumerProtocolSubscription` version 0 — topics, then nullable user data — the
/// prefix of every later version, as Kafka reads it; `None` if that prefix is malformed.
///
/// Hand-written rather than `kafka-protocol`'s decoder because the bytes come straight from
/// clients: that decoder sizes its buffers from the length prefixes it reads, so four bytes of
/// garbage could make it allocate gigabytes.
pub(super) fn subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader::new(metadata, "ConsumerProtocolSubscription", false);
    r.i16().ok()?; // the version; every version starts with version 0's fields
    let count = r.array_len().ok()?;
    let mut topics = Vec::new();
    for _ in 0..count {
        topics.push(r.string().ok()?);
    }
    r.length(true)
        .ok()?
        .map(|len| r.take(len))
        .transpose()
        .ok()?;
    Some(topics)
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
