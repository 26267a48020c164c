//! OffsetCommit, OffsetFetch, OffsetDelete, DeleteGroups and offset retention.

use super::*;

const DAY: i64 = 24 * 60 * 60 * 1000;

fn standalone_commit(
    h: &mut Harness,
    group: &str,
    offsets: &[(&str, i32, i64)],
) -> OffsetCommitResult {
    let token = h.commit(group, &MemberId::default(), GenerationId::NONE, offsets);
    h.commit_result(token)
}

#[test]
fn a_member_commits_and_the_offset_is_visible_once_stored() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    h.auto_persist = false;
    let token = h.commit("g", &ids[1], generation, &[("t", 0, 42), ("t", 1, 7)]);
    assert!(!h.is_answered(token), "acknowledged only once stored");
    assert_eq!(
        h.fetch("g", "t", 0),
        -1,
        "not visible before the write completes"
    );
    h.complete_write(Ok(()));
    assert_eq!(all_errors(&h.commit_result(token)), [None, None]);
    assert_eq!(h.fetch("g", "t", 0), 42);
    let all = h.c.fetch_offsets(&gid("g"), None, false);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].partitions.len(), 2);
    assert_eq!(all[0].partitions[0].leader_epoch, 3);
    assert_eq!(all[0].partitions[0].metadata, "meta");
    let metrics: Vec<(String, i32, i64)> =
        h.c.committed_offsets()
            .map(|(g, tp, o)| (format!("{g}/{}", tp.topic), tp.partition, o.offset))
            .collect();
    assert_eq!(
        metrics,
        [("g/t".to_owned(), 0, 42), ("g/t".to_owned(), 1, 7)]
    );
}

#[test]
fn a_failed_commit_write_answers_kafkas_mapped_error_and_changes_nothing() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 1, &["t"]);
    h.auto_persist = false;
    let token = h.commit("g", &ids[0], generation, &[("t", 0, 42)]);
    h.complete_write(Err(ResponseError::NotLeaderOrFollower));
    assert_eq!(
        all_errors(&h.commit_result(token)),
        [Some(ResponseError::NotCoordinator)]
    );
    assert_eq!(h.fetch("g", "t", 0), -1);
}

#[test]
fn commits_from_a_stale_generation_or_a_stranger_are_refused() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    let stale = h.commit("g", &ids[0], GenerationId(generation.0 - 1), &[("t", 0, 1)]);
    assert_eq!(
        all_errors(&h.commit_result(stale)),
        [Some(ResponseError::IllegalGeneration)]
    );
    let stranger = h.commit("g", &mid("nobody"), generation, &[("t", 0, 1)]);
    assert_eq!(
        all_errors(&h.commit_result(stranger)),
        [Some(ResponseError::UnknownMemberId)]
    );
    // A generation for a group that does not exist: ILLEGAL_GENERATION before v9.
    let missing = h.commit("missing", &ids[0], generation, &[("t", 0, 1)]);
    assert_eq!(
        all_errors(&h.commit_result(missing)),
        [Some(ResponseError::IllegalGeneration)]
    );
    assert_eq!(h.c.group_state(&gid("missing")), None);
    assert_eq!(h.fetch("g", "t", 0), -1);
}

#[test]
fn commits_are_refused_while_completing_a_rebalance_but_allowed_while_preparing_one() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    let t = h.join(join_params("g", &ids[0], vec![consumer("range", &["t"])]));
    // PreparingRebalance: members of the old generation may still commit.
    let ok = h.commit("g", &ids[1], generation, &[("t", 0, 5)]);
    assert_eq!(all_errors(&h.commit_result(ok)), [None]);
    let t2 = h.join(join_params("g", &ids[1], vec![consumer("range", &["t"])]));
    h.join_result(t);
    h.join_result(t2);
    let next = GenerationId(generation.0 + 1);
    let refused = h.commit("g", &ids[1], next, &[("t", 0, 6)]);
    assert_eq!(
        all_errors(&h.commit_result(refused)),
        [Some(ResponseError::RebalanceInProgress)]
    );
    assert_eq!(h.fetch("g", "t", 0), 5);
}

#[test]
fn standalone_commits_go_to_empty_groups_only() {
    let mut h = Harness::new();
    // A group that does not exist is created for standalone commits.
    let result = standalone_commit(&mut h, "simple", &[("t", 0, 10)]);
    assert_eq!(all_errors(&result), [None]);
    assert_eq!(h.c.group_state(&gid("simple")), Some(GroupState::Empty));
    assert_eq!(h.fetch("simple", "t", 0), 10);
    // A group with members refuses commits without member id and generation.
    let (_, _) = h.stable_group("g", 1, &["t"]);
    let result = standalone_commit(&mut h, "g", &[("t", 0, 10)]);
    assert_eq!(all_errors(&result), [Some(ResponseError::UnknownMemberId)]);
}

#[test]
fn oversized_metadata_is_refused_per_partition() {
    let mut h = Harness::new();
    let token = h.token();
    let long = "é".repeat(4097);
    let p = OffsetCommitParams {
        group_id: gid("simple"),
        generation_id: GenerationId::NONE,
        member_id: MemberId::default(),
        group_instance_id: None,
        retention_time_ms: -1,
        topics: vec![CommitTopic {
            name: "t".to_owned(),
            partitions: vec![
                CommitPartition {
                    partition: 0,
                    offset: 1,
                    leader_epoch: -1,
                    metadata: Some(long),
                },
                // 4096 UTF-16 units is the limit, though it is 8192 UTF-8 bytes.
                CommitPartition {
                    partition: 1,
                    offset: 2,
                    leader_epoch: -1,
                    metadata: Some("é".repeat(4096)),
                },
                CommitPartition {
                    partition: 2,
                    offset: 3,
                    leader_epoch: -1,
                    metadata: None,
                },
            ],
        }],
        api_version: 8,
    };
    let effects = h.c.commit_offsets(token, p, h.now);
    h.apply(effects);
    let errors = all_errors(&h.commit_result(token));
    assert_eq!(
        errors,
        [Some(ResponseError::OffsetMetadataTooLarge), None, None]
    );
    assert_eq!(h.fetch("simple", "t", 0), -1);
    assert_eq!(h.fetch("simple", "t", 1), 2);
    let fetched = h.c.fetch_offsets(&gid("simple"), None, false);
    assert_eq!(
        fetched[0].partitions[1].metadata, "",
        "null metadata is stored as empty"
    );
    assert_eq!(fetched[0].partitions[1].leader_epoch, -1);
}

#[test]
fn fetching_unknown_groups_and_partitions_answers_minus_one() {
    let h = Harness::new();
    let topics = [TopicPartitions {
        name: "t".to_owned(),
        partitions: vec![0, 1],
    }];
    let fetched = h.c.fetch_offsets(&gid("nope"), Some(&topics), false);
    assert_eq!(
        fetched[0]
            .partitions
            .iter()
            .map(|p| p.offset)
            .collect::<Vec<_>>(),
        [-1, -1]
    );
    assert!(h.c.fetch_offsets(&gid("nope"), None, false).is_empty());
}

#[test]
fn offset_delete_follows_kafkas_rules() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 1, &["subscribed"]);
    let t = h.commit(
        "g",
        &ids[0],
        generation,
        &[("subscribed", 0, 1), ("old", 0, 2)],
    );
    h.commit_result(t);
    let delete = |h: &mut Harness, group: &str, topic: &str| {
        let topics = [TopicPartitions {
            name: topic.to_owned(),
            partitions: vec![0],
        }];
        let outcome = h.c.delete_offsets(&gid(group), &topics, h.now);
        let tombstones = outcome.effects.len();
        h.apply(outcome.effects);
        (outcome.response, tombstones)
    };
    // A consumer group may drop offsets of topics nobody subscribes to.
    let (result, writes) = delete(&mut h, "g", "subscribed");
    assert_eq!(result.error, None);
    assert_eq!(
        result.topics[0].partitions[0].error,
        Some(ResponseError::GroupSubscribedToTopic)
    );
    assert_eq!(writes, 0);
    let (result, writes) = delete(&mut h, "g", "old");
    assert_eq!(result.topics[0].partitions[0].error, None);
    assert_eq!(writes, 1);
    assert_eq!(h.fetch("g", "old", 0), -1);
    assert_eq!(h.fetch("g", "subscribed", 0), 1);
    let last = h.log.last().expect("tombstone");
    assert_eq!(last.value, None);
    // Unknown group.
    let (result, _) = delete(&mut h, "nope", "old");
    assert_eq!(result.error, Some(ResponseError::GroupIdNotFound));

    // A non-consumer group with members refuses; once Empty it deletes anything.
    let mut p = join_params(
        "connect",
        &MemberId::default(),
        vec![Protocol {
            name: "v1".to_owned(),
            metadata: Bytes::new(),
        }],
    );
    p.protocol_type = "connect".to_owned();
    let first = h.join(p.clone());
    p.member_id = h.join_result(first).member_id;
    let t = h.join(p.clone());
    h.advance(0);
    let generation = h.join_result(t).generation_id;
    let s = h.sync("connect", &p.member_id, generation, vec![]);
    h.sync_result(s);
    let t = h.commit("connect", &p.member_id, generation, &[("x", 0, 1)]);
    h.commit_result(t);
    let (result, _) = delete(&mut h, "connect", "x");
    assert_eq!(result.error, Some(ResponseError::NonEmptyGroup));
    h.leave(
        "connect",
        vec![LeavingMember {
            member_id: p.member_id.clone(),
            group_instance_id: None,
            reason: None,
        }],
    );
    let (result, _) = delete(&mut h, "connect", "x");
    assert_eq!(result.error, None);
    assert_eq!(h.fetch("connect", "x", 0), -1);
}

#[test]
fn delete_groups_refuses_non_empty_groups() {
    let mut h = Harness::new();
    let (ids, _) = h.stable_group("busy", 1, &["t"]);
    standalone_commit(&mut h, "idle", &[("t", 0, 1), ("t", 1, 2)]);
    let outcome =
        h.c.delete_groups(&[gid("busy"), gid("idle"), gid("nope")], h.now);
    assert_eq!(
        outcome.response,
        [
            (gid("busy"), Some(ResponseError::NonEmptyGroup)),
            (gid("idle"), None),
            (gid("nope"), Some(ResponseError::GroupIdNotFound)),
        ]
    );
    let before = h.log.len();
    h.apply(outcome.effects);
    let tombstones = &h.log[before..];
    assert_eq!(tombstones.len(), 3, "two offsets and the group");
    assert!(tombstones.iter().all(|r| r.value.is_none()));
    assert_eq!(h.c.group_state(&gid("idle")), None);
    assert_eq!(h.fetch("idle", "t", 0), -1);
    assert_eq!(h.c.group_state(&gid("busy")), Some(GroupState::Stable));
    assert!(ids.len() == 1);
}

#[test]
fn standalone_offsets_expire_retention_after_their_commit() {
    let mut h = Harness::new();
    standalone_commit(&mut h, "simple", &[("t", 0, 1)]);
    h.advance(3 * DAY);
    standalone_commit(&mut h, "simple", &[("t", 1, 2)]);
    h.advance(4 * DAY);
    // Partition 0 is 7 days old (expired at the next check), partition 1 only 4.
    assert_eq!(h.fetch("simple", "t", 0), -1);
    assert_eq!(h.fetch("simple", "t", 1), 2);
    h.advance(3 * DAY);
    assert_eq!(h.fetch("simple", "t", 1), -1);
    // With no offsets left the Empty group itself is deleted.
    assert_eq!(h.c.group_state(&gid("simple")), None);
    let last = h.log.last().expect("group tombstone");
    assert_eq!(
        records::decode_key(&last.key).unwrap(),
        Some(records::RecordKey::GroupMetadata {
            group: "simple".to_owned()
        })
    );
    assert_eq!(last.value, None);
}

/// A one-member Stable consumer group whose member may stay silent for 30 minutes (the
/// longest session allowed), so days can pass with few heartbeats.
fn long_lived_member(h: &mut Harness, topics: &[&str]) -> (MemberId, GenerationId) {
    let mut p = join_params("g", &MemberId::default(), vec![consumer("range", topics)]);
    p.session_timeout_ms = 1_800_000;
    let first = h.join(p.clone());
    p.member_id = h.join_result(first).member_id;
    let t = h.join(p.clone());
    h.advance(0);
    let generation = h.join_result(t).generation_id;
    let s = h.sync("g", &p.member_id, generation, vec![]);
    assert_eq!(h.sync_result(s).error, None);
    (p.member_id, generation)
}

/// Advances `ms`, heartbeating every 20 minutes.
fn stay_alive(h: &mut Harness, member: &MemberId, generation: GenerationId, ms: i64) {
    let step = 1_200_000;
    for _ in 0..ms / step {
        h.advance(step);
        assert_eq!(h.heartbeat("g", member, generation), None);
    }
    h.advance(ms % step);
}

#[test]
fn an_empty_consumer_groups_offsets_expire_retention_after_it_became_empty() {
    let mut h = Harness::new();
    let (member, generation) = long_lived_member(&mut h, &["t"]);
    let t = h.commit("g", &member, generation, &[("t", 0, 1)]);
    h.commit_result(t);
    // The member stays for 10 days; its subscribed offsets do not expire.
    stay_alive(&mut h, &member, generation, 10 * DAY);
    assert_eq!(h.fetch("g", "t", 0), 1);
    h.leave(
        "g",
        vec![LeavingMember {
            member_id: member,
            group_instance_id: None,
            reason: None,
        }],
    );
    assert_eq!(h.c.group_state(&gid("g")), Some(GroupState::Empty));
    // Retention counts from the moment the group became Empty, not from the commit; the
    // periodic check removes them within one check interval after that.
    h.advance(7 * DAY - 1);
    assert_eq!(h.fetch("g", "t", 0), 1);
    h.advance(600_001);
    assert_eq!(h.fetch("g", "t", 0), -1);
    assert_eq!(h.c.group_state(&gid("g")), None);
}

#[test]
fn a_stable_consumer_group_expires_only_offsets_of_topics_it_does_not_subscribe_to() {
    let mut h = Harness::new();
    let (member, generation) = long_lived_member(&mut h, &["t"]);
    let t = h.commit("g", &member, generation, &[("t", 0, 1), ("gone", 0, 2)]);
    h.commit_result(t);
    stay_alive(&mut h, &member, generation, 8 * DAY);
    assert_eq!(h.fetch("g", "t", 0), 1);
    assert_eq!(h.fetch("g", "gone", 0), -1);
    assert_eq!(h.c.group_state(&gid("g")), Some(GroupState::Stable));
}

#[test]
fn commits_with_an_explicit_retention_expire_at_their_expire_timestamp() {
    let mut h = Harness::new();
    let token = h.token();
    let p = OffsetCommitParams {
        group_id: gid("simple"),
        generation_id: GenerationId::NONE,
        member_id: MemberId::default(),
        group_instance_id: None,
        retention_time_ms: DAY,
        topics: vec![CommitTopic {
            name: "t".to_owned(),
            partitions: vec![CommitPartition {
                partition: 0,
                offset: 1,
                leader_epoch: -1,
                metadata: None,
            }],
        }],
        api_version: 2,
    };
    let effects = h.c.commit_offsets(token, p, h.now);
    h.apply(effects);
    h.commit_result(token);
    let value =
        records::decode_offset_commit_value(h.log[0].value.as_ref().expect("value")).unwrap();
    assert_eq!(
        value.expire_timestamp,
        T0 + DAY,
        "stored as OffsetCommitValue v1"
    );
    assert_eq!(h.log[0].value.as_ref().unwrap()[..2], [0, 1]);
    h.advance(DAY + 600_000);
    assert_eq!(h.fetch("simple", "t", 0), -1);
}

#[test]
fn a_commit_in_flight_when_its_group_is_deleted_is_acknowledged_but_not_applied() {
    let mut h = Harness::new();
    standalone_commit(&mut h, "simple", &[("t", 0, 1)]);
    h.auto_persist = false;
    let in_flight = h.commit(
        "simple",
        &MemberId::default(),
        GenerationId::NONE,
        &[("t", 0, 2)],
    );
    let outcome = h.c.delete_groups(&[gid("simple")], h.now);
    assert_eq!(outcome.response, [(gid("simple"), None)]);
    h.apply(outcome.effects);
    // The group comes back with a newer commit before the old write completes.
    let newer = h.commit(
        "simple",
        &MemberId::default(),
        GenerationId::NONE,
        &[("t", 0, 3)],
    );
    h.complete_write(Ok(()));
    assert_eq!(all_errors(&h.commit_result(in_flight)), [None]);
    assert_eq!(
        h.fetch("simple", "t", 0),
        -1,
        "the deleted group's commit is not applied"
    );
    h.complete_write(Ok(())); // the tombstones
    h.complete_write(Ok(()));
    assert_eq!(all_errors(&h.commit_result(newer)), [None]);
    assert_eq!(h.fetch("simple", "t", 0), 3);
    // The log agrees: replayed, the newest record wins.
    let reloaded = GroupCoordinator::load(
        config(),
        h.log.iter().map(|r| (r.key.clone(), r.value.clone())),
        h.now,
    )
    .expect("loads");
    let topics = [TopicPartitions {
        name: "t".to_owned(),
        partitions: vec![0],
    }];
    assert_eq!(
        reloaded.fetch_offsets(&gid("simple"), Some(&topics), false)[0].partitions[0].offset,
        3
    );
}

#[test]
fn deleting_a_topic_tombstones_its_offsets_in_every_group_and_keeps_the_others() {
    let mut h = Harness::new();
    standalone_commit(
        &mut h,
        "a",
        &[("gone", 0, 5), ("gone", 1, 6), ("kept", 0, 7)],
    );
    standalone_commit(&mut h, "b", &[("gone", 0, 9)]);
    let before = h.log.len();
    let effects = h.c.delete_topic_offsets("gone", h.now);
    h.apply(effects);
    assert_eq!(h.fetch("a", "gone", 0), -1);
    assert_eq!(h.fetch("a", "gone", 1), -1);
    assert_eq!(h.fetch("b", "gone", 0), -1);
    assert_eq!(h.fetch("a", "kept", 0), 7);
    let tombstones = &h.log[before..];
    assert_eq!(tombstones.len(), 3);
    assert!(tombstones.iter().all(|r| r.value.is_none()));
    // Replaying the log gives the same view.
    let records = h.log.iter().map(|r| (r.key.clone(), r.value.clone()));
    let loaded = GroupCoordinator::load(config(), records, h.now).unwrap();
    let fetch = |group: &str, topic: &str| {
        let topics = [TopicPartitions {
            name: topic.to_owned(),
            partitions: vec![0],
        }];
        loaded.fetch_offsets(&gid(group), Some(&topics), false)[0].partitions[0].offset
    };
    assert_eq!(
        (fetch("a", "gone"), fetch("a", "kept"), fetch("b", "gone")),
        (-1, 7, -1)
    );
}
