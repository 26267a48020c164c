//! What triggers a rebalance, and how the join and sync phases end.

use super::*;

/// Rejoins `members` with `topics` and returns their tokens.
fn rejoin(h: &mut Harness, members: &[MemberId], topics: &[&str]) -> Vec<RequestToken> {
    members
        .iter()
        .map(|m| h.join(join_params("g", m, vec![consumer("range", topics)])))
        .collect()
}

#[test]
fn a_leaving_member_triggers_a_rebalance_and_the_rest_get_the_next_generation() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 3, &["t"]);
    let left = h.leave(
        "g",
        vec![LeavingMember {
            member_id: ids[2].clone(),
            group_instance_id: None,
            reason: Some("closing".to_owned()),
        }],
    );
    assert_eq!(left.error, None);
    assert_eq!(left.members[0].error, None);
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(
        h.heartbeat("g", &ids[0], generation),
        Some(ResponseError::RebalanceInProgress)
    );
    let tokens = rejoin(&mut h, &ids[..2], &["t"]);
    for token in tokens {
        let result = h.join_result(token);
        assert_eq!(result.generation_id, GenerationId(generation.0 + 1));
        if result.member_id == result.leader {
            assert_eq!(result.members.len(), 2);
        }
    }
    // Leaving twice, or as a stranger, is an error per member.
    let left = h.leave(
        "g",
        vec![LeavingMember {
            member_id: ids[2].clone(),
            group_instance_id: None,
            reason: None,
        }],
    );
    assert_eq!(left.members[0].error, Some(ResponseError::UnknownMemberId));
    let left = h.leave(
        "unknown",
        vec![LeavingMember {
            member_id: ids[0].clone(),
            group_instance_id: None,
            reason: None,
        }],
    );
    assert_eq!(left.error, None);
    assert_eq!(left.members[0].error, Some(ResponseError::UnknownMemberId));
}

#[test]
fn session_timeout_removes_a_silent_member_and_triggers_a_rebalance() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    h.advance(i64::from(SESSION) - 1);
    assert_eq!(h.heartbeat("g", &ids[0], generation), None);
    assert_eq!(h.c.group_state(&gid("g")), Some(GroupState::Stable));
    // ids[1] has now been silent for its whole session timeout.
    h.advance(1);
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(
        h.heartbeat("g", &ids[1], generation),
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        h.heartbeat("g", &ids[0], generation),
        Some(ResponseError::RebalanceInProgress)
    );
    let token = rejoin(&mut h, &ids[..1], &["t"])[0];
    let result = h.join_result(token);
    assert_eq!(result.generation_id, GenerationId(generation.0 + 1));
    assert_eq!(result.members.len(), 1);
}

#[test]
fn rebalance_timeout_removes_members_that_did_not_rejoin() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 3, &["t"]);
    // The leader rejoins; the followers keep heartbeating but only one rejoins.
    let tokens = rejoin(&mut h, &ids[..2], &["t"]);
    for _ in 0..5 {
        h.advance(i64::from(REBALANCE) / 6);
        assert!(!h.is_answered(tokens[0]));
        assert_eq!(
            h.heartbeat("g", &ids[2], generation),
            Some(ResponseError::RebalanceInProgress)
        );
    }
    h.advance(i64::from(REBALANCE) / 6);
    let results: Vec<JoinGroupResult> = tokens.iter().map(|t| h.join_result(*t)).collect();
    assert!(
        results
            .iter()
            .all(|r| r.generation_id == GenerationId(generation.0 + 1))
    );
    let leader = results
        .iter()
        .find(|r| r.member_id == r.leader)
        .expect("a leader");
    let members: Vec<&MemberId> = leader.members.iter().map(|m| &m.member_id).collect();
    assert_eq!(members.len(), 2);
    assert!(!members.contains(&&ids[2]));
    let late = h.join(join_params("g", &ids[2], vec![consumer("range", &["t"])]));
    assert_eq!(
        h.join_result(late).error,
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn the_leader_not_rejoining_hands_leadership_to_a_member_that_did() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    let token = rejoin(&mut h, &ids[1..], &["t"]); // the follower changes nothing but rejoins…
    // …which in Stable just returns the current generation; a subscription change does not.
    assert_eq!(h.join_result(token[0]).generation_id, generation);
    let token = rejoin(&mut h, &ids[1..], &["t", "u"])[0];
    // The leader stays alive but does not rejoin within the rebalance timeout.
    for _ in 0..5 {
        h.advance(i64::from(REBALANCE) / 6);
        assert_eq!(
            h.heartbeat("g", &ids[0], generation),
            Some(ResponseError::RebalanceInProgress)
        );
    }
    assert!(!h.is_answered(token));
    h.advance(i64::from(REBALANCE) / 6);
    let result = h.join_result(token);
    assert_eq!(result.leader, ids[1]);
    assert_eq!(result.members.len(), 1);
}

#[test]
fn initial_rebalance_delay_waits_for_members_and_extends_while_they_arrive() {
    let mut h = Harness::with_config(GroupConfig {
        initial_rebalance_delay_ms: 3000,
        ..config()
    });
    let (_, first) = h.join_new("g", vec![consumer("range", &["t"])]);
    h.advance(2000);
    assert!(!h.is_answered(first), "the first join waits out the delay");
    let (_, second) = h.join_new("g", vec![consumer("range", &["t"])]);
    h.advance(1000);
    // The delay expired with a new member added: another delay starts.
    assert!(!h.is_answered(first));
    h.advance(2999);
    assert!(!h.is_answered(second));
    h.advance(1);
    let a = h.join_result(first);
    let b = h.join_result(second);
    assert_eq!(
        (a.generation_id, b.generation_id),
        (GenerationId(1), GenerationId(1))
    );
    assert_eq!(a.members.len().max(b.members.len()), 2);
}

#[test]
fn initial_rebalance_delay_is_bounded_by_the_rebalance_timeout() {
    let mut h = Harness::with_config(GroupConfig {
        initial_rebalance_delay_ms: 3000,
        ..config()
    });
    let mut p = join_params("g", &MemberId::default(), vec![consumer("range", &["t"])]);
    p.rebalance_timeout_ms = 5000;
    let first = h.join(p.clone());
    let id = h.join_result(first).member_id;
    p.member_id = id;
    let first = h.join(p);
    // Members keep arriving every second; the join still completes by the rebalance timeout.
    for _ in 0..7 {
        h.advance(1000);
        if !h.is_answered(first) {
            h.join_new("g", vec![consumer("range", &["t"])]);
        }
    }
    assert!(h.is_answered(first), "joined within {} ms", h.now - T0);
    assert_eq!(h.join_result(first).generation_id, GenerationId(1));
}

#[test]
fn a_subscription_change_triggers_a_rebalance() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    let changed = rejoin(&mut h, &ids[1..], &["t", "u"])[0];
    assert!(!h.is_answered(changed));
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    let leader = rejoin(&mut h, &ids[..1], &["t"])[0];
    let result = h.join_result(leader);
    assert_eq!(result.generation_id, GenerationId(generation.0 + 1));
    let follower = result
        .members
        .iter()
        .find(|m| m.member_id == ids[1])
        .expect("member");
    assert_eq!(follower.metadata, consumer_subscription(&["t", "u"]));
    assert_eq!(
        h.join_result(changed).generation_id,
        GenerationId(generation.0 + 1)
    );
}

/// Runs one rebalance in which every member of `members` rejoins with `metadata`, and
/// completes it; returns the new generation.
fn full_round(h: &mut Harness, members: &[MemberId], metadata: &str) -> GenerationId {
    let protocols = vec![Protocol {
        name: "cooperative-sticky".to_owned(),
        metadata: Bytes::from(metadata.to_owned()),
    }];
    let tokens: Vec<RequestToken> = members
        .iter()
        .map(|m| h.join(join_params("g", m, protocols.clone())))
        .collect();
    let results: Vec<JoinGroupResult> = tokens.iter().map(|t| h.join_result(*t)).collect();
    let generation = results[0].generation_id;
    assert!(
        results
            .iter()
            .all(|r| r.error.is_none() && r.generation_id == generation)
    );
    let leader = results[0].leader.clone();
    let syncs: Vec<RequestToken> = members
        .iter()
        .map(|m| {
            let assignment = if *m == leader {
                members
                    .iter()
                    .map(|m| (m.clone(), Bytes::from(metadata.to_owned())))
                    .collect()
            } else {
                Vec::new()
            };
            h.sync("g", m, generation, assignment)
        })
        .collect();
    for token in syncs {
        assert_eq!(
            h.sync_result(token).assignment,
            Bytes::from(metadata.to_owned())
        );
    }
    assert_eq!(h.c.group_state(&gid("g")), Some(GroupState::Stable));
    generation
}

#[test]
fn consecutive_rebalances_work_as_cooperative_clients_run_them() {
    let mut h = Harness::new();
    let first = Protocol {
        name: "cooperative-sticky".to_owned(),
        metadata: Bytes::from_static(b"owned: none"),
    };
    let joins: Vec<(MemberId, RequestToken)> = (0..2)
        .map(|_| h.join_new("g", vec![first.clone()]))
        .collect();
    h.advance(0);
    let ids: Vec<MemberId> = joins.iter().map(|(m, _)| m.clone()).collect();
    for (_, t) in &joins {
        h.join_result(*t);
    }
    let leader =
        h.c.group_generation(&gid("g"))
            .and_then(|(_, l)| l)
            .expect("leader");
    let syncs: Vec<RequestToken> = ids
        .iter()
        .map(|m| {
            let a = if *m == leader {
                vec![(m.clone(), Bytes::new())]
            } else {
                Vec::new()
            };
            h.sync("g", m, GenerationId(1), a)
        })
        .collect();
    for t in syncs {
        h.sync_result(t);
    }
    // Cooperative clients revoke after the first round and immediately rejoin with their
    // (changed) owned partitions; the coordinator just runs two rebalances back to back.
    let g2 = full_round(&mut h, &ids, "owned: revoked some");
    let g3 = full_round(&mut h, &ids, "owned: final");
    assert_eq!((g2, g3), (GenerationId(2), GenerationId(3)));
    assert_eq!(h.c.completed_rebalances(), 3);
}

#[test]
fn members_that_never_send_sync_group_are_removed_after_the_rebalance_timeout() {
    let mut h = Harness::new();
    let joins: Vec<(MemberId, RequestToken)> = (0..2)
        .map(|_| h.join_new("g", vec![consumer("range", &["t"])]))
        .collect();
    h.advance(0);
    let results: Vec<JoinGroupResult> = joins.iter().map(|(_, t)| h.join_result(*t)).collect();
    let leader = results[0].leader.clone();
    let sync = h.sync("g", &leader, GenerationId(1), vec![]);
    assert_eq!(h.sync_result(sync).error, None);
    // The follower got its JoinGroup response but never syncs (it keeps heartbeating).
    let follower = joins
        .iter()
        .map(|(m, _)| m)
        .find(|m| **m != leader)
        .expect("follower")
        .clone();
    for _ in 0..5 {
        h.advance(i64::from(REBALANCE) / 5 - 1);
        assert_eq!(h.heartbeat("g", &follower, GenerationId(1)), None);
        assert_eq!(h.heartbeat("g", &leader, GenerationId(1)), None);
    }
    h.advance(5);
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(
        h.heartbeat("g", &follower, GenerationId(1)),
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn a_failed_assignment_write_fails_the_parked_syncs_and_rebalances() {
    let mut h = Harness::new();
    let joins: Vec<(MemberId, RequestToken)> = (0..2)
        .map(|_| h.join_new("g", vec![consumer("range", &["t"])]))
        .collect();
    h.advance(0);
    let results: Vec<JoinGroupResult> = joins.iter().map(|(_, t)| h.join_result(*t)).collect();
    let leader = results[0].leader.clone();
    let follower = joins
        .iter()
        .map(|(m, _)| m)
        .find(|m| **m != leader)
        .expect("follower")
        .clone();
    h.auto_persist = false;
    let f = h.sync("g", &follower, GenerationId(1), vec![]);
    let l = h.sync(
        "g",
        &leader,
        GenerationId(1),
        vec![(leader.clone(), Bytes::from_static(b"x"))],
    );
    h.complete_write(Err(ResponseError::NotLeaderOrFollower));
    for token in [f, l] {
        let result = h.sync_result(token);
        assert_eq!(result.error, Some(ResponseError::NotCoordinator));
        assert!(result.assignment.is_empty());
    }
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(h.c.completed_rebalances(), 0);
}

#[test]
fn a_join_during_completing_rebalance_restarts_the_rebalance() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    let tokens = rejoin(&mut h, &ids, &["t"]);
    for t in tokens {
        h.join_result(t);
    }
    let next = GenerationId(generation.0 + 1);
    let follower_sync = h.sync("g", &ids[1], next, vec![]);
    // A new member arrives before the leader's assignment: parked syncs must rejoin.
    let (_, new) = h.join_new("g", vec![consumer("range", &["t"])]);
    assert_eq!(
        h.sync_result(follower_sync).error,
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    let tokens = rejoin(&mut h, &ids, &["t"]);
    assert_eq!(h.join_result(new).generation_id, GenerationId(next.0 + 1));
    for t in tokens {
        assert_eq!(h.join_result(t).generation_id, GenerationId(next.0 + 1));
    }
}

#[test]
fn the_last_member_leaving_empties_the_group_and_persists_it() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 1, &["t"]);
    let writes_before = h.log.len();
    h.leave(
        "g",
        vec![LeavingMember {
            member_id: ids[0].clone(),
            group_instance_id: None,
            reason: None,
        }],
    );
    assert_eq!(h.c.group_state(&gid("g")), Some(GroupState::Empty));
    assert_eq!(
        h.c.group_generation(&gid("g")).map(|(g, _)| g),
        Some(GenerationId(generation.0 + 1))
    );
    let written = &h.log[writes_before..];
    assert_eq!(written.len(), 1, "the Empty group's metadata is stored");
    let value =
        records::decode_group_metadata_value(written[0].value.as_ref().expect("value")).unwrap();
    assert!(value.members.is_empty());
    assert_eq!(value.protocol_type, "consumer");
    assert_eq!(value.protocol, None);
}
