//! Rebuilding coordinators from `__consumer_offsets` records.

use super::*;
use crate::coordinator::group::records::{
    GroupMetadataValue, MemberMetadataValue, OffsetCommitValue, RecordKey,
    encode_group_metadata_value, encode_key, encode_offset_commit_value,
};

fn reload(h: &Harness, config: GroupConfig) -> GroupCoordinator {
    let records = h.log.iter().map(|r| (r.key.clone(), r.value.clone()));
    GroupCoordinator::load(config, records, h.now).expect("the log loads")
}

fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    encode_key(&RecordKey::OffsetCommit {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
    })
}

fn offset_value(offset: i64) -> Bytes {
    let value = OffsetCommitValue {
        offset,
        leader_epoch: 1,
        metadata: String::new(),
        commit_timestamp: T0,
        expire_timestamp: -1,
    };
    encode_offset_commit_value(&value, 3)
}

#[test]
fn a_reloaded_coordinator_has_the_groups_and_offsets_the_log_describes() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    let t = h.commit("g", &ids[0], generation, &[("t", 0, 10), ("t", 1, 11)]);
    h.commit_result(t);
    let t = h.commit("g", &ids[1], generation, &[("t", 0, 20)]);
    h.commit_result(t);
    let t = h.commit(
        "simple",
        &MemberId::default(),
        GenerationId::NONE,
        &[("u", 0, 5), ("u", 1, 6)],
    );
    h.commit_result(t);
    let topics = [TopicPartitions {
        name: "u".to_owned(),
        partitions: vec![1],
    }];
    let outcome = h.c.delete_offsets(&gid("simple"), &topics, h.now);
    h.apply(outcome.effects);
    let t = h.commit(
        "doomed",
        &MemberId::default(),
        GenerationId::NONE,
        &[("v", 0, 1)],
    );
    h.commit_result(t);
    let outcome = h.c.delete_groups(&[gid("doomed")], h.now);
    h.apply(outcome.effects);

    let loaded = reload(&h, config());
    assert_eq!(loaded.group_state(&gid("g")), Some(GroupState::Stable));
    assert_eq!(
        loaded.group_generation(&gid("g")),
        Some((generation, Some(ids[0].clone())))
    );
    let described = loaded.describe_group(&gid("g")).expect("g");
    assert_eq!(described.protocol_data, "range");
    let assignments: Vec<(MemberId, Bytes)> = described
        .members
        .iter()
        .map(|m| (m.member_id.clone(), m.assignment.clone()))
        .collect();
    let mut expected = vec![
        (ids[0].clone(), Bytes::from_static(&[0])),
        (ids[1].clone(), Bytes::from_static(&[1])),
    ];
    expected.sort();
    assert_eq!(assignments, expected);
    assert_eq!(
        loaded.fetch_offsets(&gid("g"), None, false),
        h.c.fetch_offsets(&gid("g"), None, false)
    );
    assert_eq!(loaded.group_state(&gid("simple")), Some(GroupState::Empty));
    assert_eq!(
        loaded.fetch_offsets(&gid("simple"), None, false),
        h.c.fetch_offsets(&gid("simple"), None, false)
    );
    assert_eq!(
        loaded.fetch_offsets(&gid("simple"), None, false)[0]
            .partitions
            .len(),
        1
    );
    assert_eq!(loaded.group_state(&gid("doomed")), None);
    assert!(loaded.fetch_offsets(&gid("doomed"), None, false).is_empty());
}

#[test]
fn reloaded_members_keep_their_generation_and_expire_if_they_are_gone() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    h.advance(1000);
    let mut reloaded = Harness::new();
    reloaded.now = h.now;
    reloaded.c = reload(&h, config());
    // A member that is still alive carries on with its generation and assignment…
    assert_eq!(reloaded.heartbeat("g", &ids[0], generation), None);
    let s = reloaded.sync("g", &ids[0], generation, vec![]);
    assert_eq!(reloaded.sync_result(s).assignment, Bytes::from_static(&[0]));
    // …and one that is gone expires a session timeout after the load.
    reloaded.advance(i64::from(SESSION) - 1);
    assert_eq!(reloaded.heartbeat("g", &ids[0], generation), None);
    assert_eq!(reloaded.c.group_state(&gid("g")), Some(GroupState::Stable));
    reloaded.advance(1);
    assert_eq!(
        reloaded.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(
        reloaded.heartbeat("g", &ids[1], generation),
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn later_records_win_and_tombstones_delete() {
    let group_key = encode_key(&RecordKey::GroupMetadata {
        group: "g".to_owned(),
    });
    let member = MemberMetadataValue {
        member_id: "m-1".to_owned(),
        group_instance_id: Some("i-1".to_owned()),
        client_id: "c".to_owned(),
        client_host: "/h".to_owned(),
        rebalance_timeout: -1,
        session_timeout: SESSION,
        subscription: consumer_subscription(&["t"]),
        assignment: Bytes::from_static(b"a"),
    };
    let stable = GroupMetadataValue {
        protocol_type: "consumer".to_owned(),
        generation: 4,
        protocol: Some("range".to_owned()),
        leader: Some("m-1".to_owned()),
        current_state_timestamp: T0,
        members: vec![member],
    };
    let records: Vec<(Bytes, Option<Bytes>)> = vec![
        (offset_key("g", "t", 0), Some(offset_value(1))),
        (offset_key("g", "t", 0), Some(offset_value(2))),
        (offset_key("g", "t", 1), Some(offset_value(3))),
        (offset_key("g", "t", 1), None),
        (
            group_key.clone(),
            Some(encode_group_metadata_value(&stable, 0)),
        ),
        (
            group_key.clone(),
            Some(encode_group_metadata_value(&stable, 4)),
        ),
        (offset_key("h", "t", 0), Some(offset_value(9))),
        (
            encode_key(&RecordKey::GroupMetadata {
                group: "h".to_owned(),
            }),
            Some(encode_group_metadata_value(&stable, 3)),
        ),
        (
            encode_key(&RecordKey::GroupMetadata {
                group: "h".to_owned(),
            }),
            None,
        ),
        (offset_key("gone", "t", 0), Some(offset_value(7))),
        (offset_key("gone", "t", 0), None),
    ];
    let c = GroupCoordinator::load(config(), records, T0).expect("loads");
    let topics = [TopicPartitions {
        name: "t".to_owned(),
        partitions: vec![0, 1],
    }];
    let g: Vec<i64> = c.fetch_offsets(&gid("g"), Some(&topics), false)[0]
        .partitions
        .iter()
        .map(|p| p.offset)
        .collect();
    assert_eq!(g, [2, -1]);
    assert_eq!(c.group_state(&gid("g")), Some(GroupState::Stable));
    assert_eq!(
        c.group_generation(&gid("g")),
        Some((GenerationId(4), Some(mid("m-1"))))
    );
    // The group tombstone removed h's membership but not the offset committed before it.
    assert_eq!(c.group_state(&gid("h")), Some(GroupState::Empty));
    assert_eq!(
        c.fetch_offsets(&gid("h"), None, false)[0].partitions[0].offset,
        9
    );
    assert_eq!(c.group_state(&gid("gone")), None);
}

#[test]
fn a_reloaded_static_member_can_be_replaced_without_a_rebalance() {
    let mut h = Harness::new();
    let mut p = join_params("g", &MemberId::default(), vec![consumer("range", &["t"])]);
    p.group_instance_id = Some(InstanceId::from("i"));
    p.supports_skip_assignment = false;
    let t = h.join(p.clone());
    h.advance(0);
    let joined = h.join_result(t);
    let s = h.sync(
        "g",
        &joined.member_id,
        joined.generation_id,
        vec![(joined.member_id.clone(), Bytes::from_static(b"x"))],
    );
    h.sync_result(s);
    let mut reloaded = Harness::new();
    reloaded.c = reload(&h, config());
    let t = reloaded.join(p);
    let result = reloaded.join_result(t);
    assert_eq!(result.error, None);
    assert_eq!(result.generation_id, joined.generation_id);
    assert_ne!(result.member_id, joined.member_id);
    assert_eq!(reloaded.c.group_state(&gid("g")), Some(GroupState::Stable));
    assert_eq!(reloaded.c.started_rebalances(), 0);
}

#[test]
fn a_reloaded_group_over_the_max_size_rebalances() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 3, &["t"]);
    let mut reloaded = Harness::with_config(GroupConfig {
        max_size: 2,
        ..config()
    });
    reloaded.c = reload(
        &h,
        GroupConfig {
            max_size: 2,
            ..config()
        },
    );
    assert_eq!(
        reloaded.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(
        reloaded.heartbeat("g", &ids[0], generation),
        Some(ResponseError::RebalanceInProgress)
    );
    // Only two members fit when they rejoin.
    let tokens: Vec<RequestToken> = ids
        .iter()
        .map(|m| reloaded.join(join_params("g", m, vec![consumer("range", &["t"])])))
        .collect();
    // The refused member is dropped; the others complete at the rebalance timeout.
    reloaded.advance(i64::from(REBALANCE));
    let errors: Vec<Option<ResponseError>> = tokens
        .iter()
        .map(|t| reloaded.join_result(*t).error)
        .collect();
    assert_eq!(
        errors,
        [None, None, Some(ResponseError::GroupMaxSizeReached)]
    );
}

#[test]
fn records_of_other_group_types_are_skipped_and_corrupt_ones_fail_the_load() {
    let mut loader = Loader::new();
    // A KIP-848 ConsumerGroupMetadataKey (version 3).
    loader
        .replay(&[0, 3, 0, 1, b'g'], Some(&[0, 0]))
        .expect("skipped");
    assert_eq!(loader.skipped(), 1);
    let truncated = &offset_value(1)[..9];
    let err = loader
        .replay(&offset_key("g", "t", 0), Some(truncated))
        .unwrap_err();
    assert!(matches!(err, RecordError::Truncated { .. }), "{err}");
    let err = loader.replay(&[0xff, 0xff], None).unwrap_err();
    assert!(
        matches!(err, RecordError::UnsupportedVersion { version: -1, .. }),
        "{err}"
    );
}
