//! Joining, syncing, heartbeating and the errors Kafka answers along the way.

use super::*;

#[test]
fn single_member_joins_syncs_and_heartbeats() {
    let mut h = Harness::new();
    let (member, token) = h.join_new("g", vec![consumer("range", &["t"])]);
    assert!(
        !h.is_answered(token),
        "the join waits for the initial rebalance delay"
    );
    h.advance(0);
    let join = h.join_result(token);
    assert_eq!(join.error, None);
    assert_eq!(join.generation_id, GenerationId(1));
    assert_eq!(join.leader, member);
    assert_eq!(join.protocol_name.as_deref(), Some("range"));
    assert_eq!(join.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(join.members.len(), 1, "the leader sees every member");
    assert_eq!(join.members[0].metadata, consumer_subscription(&["t"]));
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::CompletingRebalance)
    );

    let sync = h.sync(
        "g",
        &member,
        GenerationId(1),
        vec![(member.clone(), Bytes::from_static(b"p0"))],
    );
    let sync = h.sync_result(sync);
    assert_eq!(sync.error, None);
    assert_eq!(sync.assignment, Bytes::from_static(b"p0"));
    assert_eq!(sync.protocol_name.as_deref(), Some("range"));
    assert_eq!(h.c.group_state(&gid("g")), Some(GroupState::Stable));
    assert_eq!(h.c.completed_rebalances(), 1);

    assert_eq!(h.heartbeat("g", &member, GenerationId(1)), None);
    // Heartbeats keep the member alive well past its session timeout.
    for _ in 0..5 {
        h.advance(i64::from(SESSION) - 1);
        assert_eq!(h.heartbeat("g", &member, GenerationId(1)), None);
    }
    assert_eq!(h.c.group_state(&gid("g")), Some(GroupState::Stable));
}

#[test]
fn member_id_required_issues_an_id_the_member_must_join_with() {
    let mut h = Harness::new();
    let first = h.join(join_params(
        "g",
        &MemberId::default(),
        vec![consumer("range", &["t"])],
    ));
    let result = h.join_result(first);
    assert_eq!(result.error, Some(ResponseError::MemberIdRequired));
    assert!(
        result.member_id.as_str().starts_with("client-"),
        "{}",
        result.member_id
    );
    assert_eq!(result.generation_id, GenerationId::NONE);

    // Joining with an id the coordinator did not issue is refused.
    let bogus = h.join(join_params(
        "g",
        &mid("client-bogus"),
        vec![consumer("range", &["t"])],
    ));
    assert_eq!(
        h.join_result(bogus).error,
        Some(ResponseError::UnknownMemberId)
    );

    let second = h.join(join_params(
        "g",
        &result.member_id,
        vec![consumer("range", &["t"])],
    ));
    h.advance(0);
    let joined = h.join_result(second);
    assert_eq!(joined.error, None);
    assert_eq!(joined.member_id, result.member_id);
}

#[test]
fn pending_member_that_never_rejoins_expires_after_its_session_timeout() {
    let mut h = Harness::new();
    let (_, token) = h.join_new("g", vec![consumer("range", &["t"])]);
    h.advance(0);
    let leader = h.join_result(token);
    let sync = h.sync("g", &leader.member_id, leader.generation_id, vec![]);
    h.sync_result(sync);
    // A second client gets an id but never comes back.
    let first = h.join(join_params(
        "g",
        &MemberId::default(),
        vec![consumer("range", &["t"])],
    ));
    let pending = h.join_result(first).member_id;
    // The leader rejoins; the join phase waits for the pending member...
    let rejoin = h.join(join_params(
        "g",
        &leader.member_id,
        vec![consumer("range", &["t"])],
    ));
    h.advance(i64::from(SESSION) - 1);
    assert!(
        !h.is_answered(rejoin),
        "a pending member holds up the join phase"
    );
    // ...until its session timeout drops it.
    h.advance(1);
    let result = h.join_result(rejoin);
    assert_eq!(result.generation_id, GenerationId(2));
    assert_eq!(result.members.len(), 1);
    // Its id is no longer accepted.
    let late = h.join(join_params("g", &pending, vec![consumer("range", &["t"])]));
    assert_eq!(
        h.join_result(late).error,
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn three_members_share_one_generation_and_followers_wait_for_the_leader() {
    let mut h = Harness::new();
    let joins: Vec<(MemberId, RequestToken)> = (0..3)
        .map(|_| h.join_new("g", vec![consumer("range", &["t"])]))
        .collect();
    h.advance(0);
    let results: Vec<JoinGroupResult> = joins.iter().map(|(_, t)| h.join_result(*t)).collect();
    let leader = results[0].leader.clone();
    for result in &results {
        assert_eq!(result.error, None);
        assert_eq!(result.generation_id, GenerationId(1));
        assert_eq!(result.leader, leader, "everyone agrees on the leader");
        if result.member_id == leader {
            assert_eq!(result.members.len(), 3);
        } else {
            assert!(result.members.is_empty(), "followers get no member list");
        }
    }
    let followers: Vec<&MemberId> = joins
        .iter()
        .map(|(m, _)| m)
        .filter(|m| **m != leader)
        .collect();
    let follower_syncs: Vec<RequestToken> = followers
        .iter()
        .map(|m| h.sync("g", m, GenerationId(1), vec![]))
        .collect();
    for token in &follower_syncs {
        assert!(
            !h.is_answered(*token),
            "followers wait for the leader's assignment"
        );
    }
    let assignment: Vec<(MemberId, Bytes)> = joins
        .iter()
        .map(|(m, _)| (m.clone(), Bytes::from(m.as_str().to_owned())))
        .collect();
    h.auto_persist = false;
    let leader_sync = h.sync("g", &leader, GenerationId(1), assignment);
    assert!(
        !h.is_answered(leader_sync),
        "the leader waits for its assignment to be stored"
    );
    assert_eq!(h.writes.len(), 1);
    h.complete_write(Ok(()));
    for (token, member) in follower_syncs.iter().zip(&followers) {
        let result = h.sync_result(*token);
        assert_eq!(result.error, None);
        assert_eq!(result.assignment, Bytes::from(member.as_str().to_owned()));
    }
    assert_eq!(
        h.sync_result(leader_sync).assignment,
        Bytes::from(leader.as_str().to_owned())
    );
    assert_eq!(h.c.group_state(&gid("g")), Some(GroupState::Stable));
}

#[test]
fn members_left_out_of_the_assignment_get_an_empty_one() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    let leader = &ids[0];
    let rejoin: Vec<RequestToken> = ids
        .iter()
        .map(|m| h.join(join_params("g", m, vec![consumer("range", &["t"])])))
        .collect();
    for t in rejoin {
        h.join_result(t);
    }
    let next = GenerationId(generation.0 + 1);
    let follower = h.sync("g", &ids[1], next, vec![]);
    let lead = h.sync(
        "g",
        leader,
        next,
        vec![(leader.clone(), Bytes::from_static(b"all"))],
    );
    assert_eq!(h.sync_result(follower).assignment, Bytes::new());
    assert_eq!(h.sync_result(lead).assignment, Bytes::from_static(b"all"));
}

#[test]
fn wrong_generation_unknown_member_and_rebalance_in_progress() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    let stale = GenerationId(generation.0 - 1);
    assert_eq!(
        h.heartbeat("g", &ids[1], stale),
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        h.heartbeat("g", &mid("nobody"), generation),
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        h.heartbeat("other", &ids[1], generation),
        Some(ResponseError::UnknownMemberId)
    );
    let sync = h.sync("g", &ids[1], stale, vec![]);
    assert_eq!(
        h.sync_result(sync).error,
        Some(ResponseError::IllegalGeneration)
    );
    let sync = h.sync("g", &mid("nobody"), generation, vec![]);
    assert_eq!(
        h.sync_result(sync).error,
        Some(ResponseError::UnknownMemberId)
    );

    // The leader rejoins: the group prepares a rebalance and waits for the follower.
    let rejoin = h.join(join_params("g", &ids[0], vec![consumer("range", &["t"])]));
    assert!(!h.is_answered(rejoin));
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(
        h.heartbeat("g", &ids[1], generation),
        Some(ResponseError::RebalanceInProgress)
    );
    let sync = h.sync("g", &ids[1], generation, vec![]);
    assert_eq!(
        h.sync_result(sync).error,
        Some(ResponseError::RebalanceInProgress)
    );
    // A protocol type the group does not use is inconsistent.
    let mut other = join_params("g", &MemberId::default(), vec![consumer("range", &["t"])]);
    other.protocol_type = "connect".to_owned();
    let t = h.join(other);
    assert_eq!(
        h.join_result(t).error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
}

#[test]
fn follower_rejoining_a_stable_group_with_same_metadata_gets_the_current_generation() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    let rejoin = h.join(join_params("g", &ids[1], vec![consumer("range", &["t"])]));
    let result = h.join_result(rejoin);
    assert_eq!(result.error, None);
    assert_eq!(result.generation_id, generation);
    assert_eq!(result.leader, ids[0]);
    assert!(result.members.is_empty());
    assert_eq!(h.c.group_state(&gid("g")), Some(GroupState::Stable));
    // Its SyncGroup gets its current assignment straight away.
    let sync = h.sync("g", &ids[1], generation, vec![]);
    assert_eq!(h.sync_result(sync).assignment, Bytes::from_static(&[1]));
}

#[test]
fn leader_rejoining_with_same_metadata_triggers_a_rebalance() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 1, &["t"]);
    let rejoin = h.join(join_params("g", &ids[0], vec![consumer("range", &["t"])]));
    // The only member rejoined, so the join phase completes at once.
    let result = h.join_result(rejoin);
    assert_eq!(result.generation_id, GenerationId(generation.0 + 1));
    assert_eq!(h.c.started_rebalances(), 2);
}

#[test]
fn invalid_session_timeout_and_group_id_are_refused() {
    let mut h = Harness::new();
    let mut p = join_params("g", &MemberId::default(), vec![consumer("range", &["t"])]);
    p.session_timeout_ms = 1000;
    let t = h.join(p.clone());
    assert_eq!(
        h.join_result(t).error,
        Some(ResponseError::InvalidSessionTimeout)
    );
    p.session_timeout_ms = SESSION;
    p.group_id = gid("");
    let t = h.join(p);
    assert_eq!(h.join_result(t).error, Some(ResponseError::InvalidGroupId));
    assert_eq!(
        h.c.group_state(&gid("g")),
        None,
        "refused joins create no group"
    );
}

#[test]
fn joiner_without_a_common_protocol_is_inconsistent() {
    let mut h = Harness::new();
    let (_, _) = h.stable_group("g", 1, &["t"]);
    let t = h.join(join_params(
        "g",
        &MemberId::default(),
        vec![consumer("roundrobin", &["t"])],
    ));
    let result = h.join_result(t);
    assert_eq!(result.error, Some(ResponseError::InconsistentGroupProtocol));
    assert!(result.member_id.is_empty());
}

#[test]
fn protocol_is_chosen_by_votes_among_protocols_all_members_support() {
    let mut h = Harness::new();
    // Two members prefer roundrobin, one prefers range; all support both; sticky is not
    // supported by everyone and cannot win even as a first choice.
    let prefs = [
        vec![consumer("roundrobin", &["t"]), consumer("range", &["t"])],
        vec![
            consumer("sticky", &["t"]),
            consumer("roundrobin", &["t"]),
            consumer("range", &["t"]),
        ],
        vec![consumer("range", &["t"]), consumer("roundrobin", &["t"])],
    ];
    let tokens: Vec<RequestToken> = prefs.into_iter().map(|p| h.join_new("g", p).1).collect();
    h.advance(0);
    for t in tokens {
        assert_eq!(
            h.join_result(t).protocol_name.as_deref(),
            Some("roundrobin")
        );
    }
}

#[test]
fn group_max_size_refuses_members_beyond_it() {
    let mut h = Harness::with_config(GroupConfig {
        max_size: 2,
        ..config()
    });
    let (_, _) = h.stable_group("g", 2, &["t"]);
    let t = h.join(join_params(
        "g",
        &MemberId::default(),
        vec![consumer("range", &["t"])],
    ));
    let result = h.join_result(t);
    assert_eq!(result.error, Some(ResponseError::GroupMaxSizeReached));
    assert!(result.member_id.is_empty());
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::Stable),
        "no rebalance"
    );
}

#[test]
fn describe_and_list_groups_report_kafkas_state_names() {
    let mut h = Harness::new();
    let (ids, _) = h.stable_group("g", 2, &["t"]);
    let d = h.c.describe_group(&gid("g")).expect("known group");
    assert_eq!(d.state.name(), "Stable");
    assert_eq!(d.protocol_type, "consumer");
    assert_eq!(d.protocol_data, "range");
    assert_eq!(d.members.len(), 2);
    let leader = d
        .members
        .iter()
        .find(|m| m.member_id == ids[0])
        .expect("leader");
    assert_eq!(leader.assignment, Bytes::from_static(&[0]));
    assert_eq!(leader.metadata, consumer_subscription(&["t"]));
    assert!(h.c.describe_group(&gid("unknown")).is_none());

    // While rebalancing, metadata and assignments are not described.
    let t = h.join(join_params("g", &ids[0], vec![consumer("range", &["t"])]));
    let d = h.c.describe_group(&gid("g")).expect("known group");
    assert_eq!(d.state, GroupState::PreparingRebalance);
    assert!(d.protocol_data.is_empty());
    assert!(
        d.members
            .iter()
            .all(|m| m.assignment.is_empty() && m.metadata.is_empty())
    );
    assert!(!h.is_answered(t));

    let listed = h.c.list_groups(&["preparingrebalance".to_owned()], &[]);
    assert_eq!(listed.len(), 1);
    assert!(h.c.list_groups(&["Stable".to_owned()], &[]).is_empty());
    assert!(
        h.c.list_groups(&[], &["consumer".to_owned()]).is_empty(),
        "all groups are classic"
    );
    assert_eq!(h.c.list_groups(&[], &["Classic".to_owned()]).len(), 1);
    assert_eq!(
        h.c.group_counts().get(&GroupState::PreparingRebalance),
        Some(&1)
    );
}

#[test]
fn unload_answers_parked_requests_not_coordinator() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    let rejoin = h.join(join_params("g", &ids[0], vec![consumer("range", &["t"])]));
    // A commit whose write is still in flight.
    h.auto_persist = false;
    let commit = h.commit("g", &ids[1], generation, &[("t", 0, 5)]);
    let c = std::mem::replace(&mut h.c, GroupCoordinator::new(config(), T0));
    let effects = c.unload(h.now);
    h.apply(effects);
    assert_eq!(
        h.join_result(rejoin).error,
        Some(ResponseError::NotCoordinator)
    );
    assert_eq!(
        all_errors(&h.commit_result(commit)),
        [Some(ResponseError::NotCoordinator)]
    );
}
