//! Static membership (`group.instance.id`).

use super::*;

fn static_params(instance: &str, member: &MemberId, skip: bool) -> JoinGroupParams {
    JoinGroupParams {
        group_instance_id: Some(InstanceId::from(instance)),
        supports_skip_assignment: skip,
        ..join_params("g", member, vec![consumer("range", &["t"])])
    }
}

/// A Stable group of static members "a" (the leader) and "b", assigned "A" and "B".
fn static_group(h: &mut Harness) -> (MemberId, MemberId, GenerationId) {
    // Static members join without the MEMBER_ID_REQUIRED round trip.
    let ta = h.join(static_params("a", &MemberId::default(), false));
    let tb = h.join(static_params("b", &MemberId::default(), false));
    h.advance(0);
    let ra = h.join_result(ta);
    let rb = h.join_result(tb);
    assert_eq!(ra.leader, ra.member_id, "the first member leads");
    assert!(ra.member_id.as_str().starts_with("a-"), "{}", ra.member_id);
    let (a, b, generation) = (ra.member_id, rb.member_id, ra.generation_id);
    let sb = h.sync("g", &b, generation, vec![]);
    let assignment = vec![
        (a.clone(), Bytes::from_static(b"A")),
        (b.clone(), Bytes::from_static(b"B")),
    ];
    let sa = h.sync("g", &a, generation, assignment);
    assert_eq!(h.sync_result(sa).assignment, Bytes::from_static(b"A"));
    assert_eq!(h.sync_result(sb).assignment, Bytes::from_static(b"B"));
    (a, b, generation)
}

fn heartbeat_as(
    h: &mut Harness,
    instance: &str,
    member: &MemberId,
    generation: GenerationId,
) -> Option<ResponseError> {
    let p = HeartbeatParams {
        group_id: gid("g"),
        generation_id: generation,
        member_id: member.clone(),
        group_instance_id: Some(InstanceId::from(instance)),
    };
    h.c.heartbeat(&p, h.now)
}

#[test]
fn a_restarted_static_member_replaces_its_old_id_without_a_rebalance() {
    let mut h = Harness::new();
    let (a, b, generation) = static_group(&mut h);
    let rebalances = h.c.started_rebalances();
    let t = h.join(static_params("b", &MemberId::default(), false));
    let result = h.join_result(t);
    assert_eq!(result.error, None);
    assert_ne!(result.member_id, b);
    assert_eq!(result.generation_id, generation);
    assert_eq!(result.leader, a);
    assert!(result.members.is_empty());
    assert_eq!(h.c.group_state(&gid("g")), Some(GroupState::Stable));
    assert_eq!(h.c.started_rebalances(), rebalances, "no rebalance");

    let new_b = result.member_id;
    // The old id is fenced.
    assert_eq!(
        heartbeat_as(&mut h, "b", &b, generation),
        Some(ResponseError::FencedInstanceId)
    );
    let mut p = SyncGroupParams {
        group_id: gid("g"),
        generation_id: generation,
        member_id: b.clone(),
        group_instance_id: Some(InstanceId::from("b")),
        protocol_type: None,
        protocol_name: None,
        assignments: Vec::new(),
    };
    let token = h.token();
    let effects = h.c.sync_group(token, p.clone(), h.now);
    h.apply(effects);
    assert_eq!(
        h.sync_result(token).error,
        Some(ResponseError::FencedInstanceId)
    );
    // The new id gets the old one's assignment.
    p.member_id = new_b.clone();
    let token = h.token();
    let effects = h.c.sync_group(token, p, h.now);
    h.apply(effects);
    assert_eq!(h.sync_result(token).assignment, Bytes::from_static(b"B"));
    assert_eq!(heartbeat_as(&mut h, "b", &new_b, generation), None);
}

#[test]
fn a_restarted_static_leader_is_told_the_old_leader_id_before_v9_and_to_skip_assignment_from_v9() {
    let mut h = Harness::new();
    let (a, _, generation) = static_group(&mut h);
    let t = h.join(static_params("a", &MemberId::default(), false));
    let old_client = h.join_result(t);
    assert_eq!(
        old_client.leader, a,
        "the old id, so the client does not think it leads"
    );
    assert_ne!(old_client.member_id, a);
    assert!(!old_client.skip_assignment);

    let t = h.join(static_params("a", &MemberId::default(), true));
    let new_client = h.join_result(t);
    assert_eq!(new_client.generation_id, generation);
    assert_eq!(
        new_client.leader, new_client.member_id,
        "it leads under its new id"
    );
    assert!(new_client.skip_assignment);
    assert_eq!(new_client.members.len(), 2);
    assert_eq!(h.c.group_state(&gid("g")), Some(GroupState::Stable));
}

#[test]
fn a_failed_write_reverts_the_static_replacement() {
    let mut h = Harness::new();
    let (_, b, generation) = static_group(&mut h);
    h.auto_persist = false;
    let t = h.join(static_params("b", &MemberId::default(), false));
    assert!(!h.is_answered(t), "answered once the new id is stored");
    h.complete_write(Err(ResponseError::NotEnoughReplicas));
    let result = h.join_result(t);
    assert_eq!(result.error, Some(ResponseError::CoordinatorNotAvailable));
    assert!(result.member_id.is_empty());
    // The old id is the member again.
    assert_eq!(heartbeat_as(&mut h, "b", &b, generation), None);
}

#[test]
fn a_static_member_changing_the_selected_protocol_triggers_a_rebalance() {
    let mut h = Harness::new();
    let (a, _, _) = static_group(&mut h);
    // "b" restarts preferring roundrobin, which "a" does not support: range stays selected…
    let mut p = static_params("b", &MemberId::default(), false);
    p.protocols = vec![consumer("roundrobin", &["t"]), consumer("range", &["t"])];
    let t = h.join(p);
    assert_eq!(h.join_result(t).error, None);
    assert_eq!(h.c.group_state(&gid("g")), Some(GroupState::Stable));
    // …while "a" restarting with roundrobin first makes it win: the group must rebalance.
    let mut p = static_params("a", &MemberId::default(), false);
    p.protocols = vec![consumer("roundrobin", &["t"]), consumer("range", &["t"])];
    let t = h.join(p);
    assert!(!h.is_answered(t));
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    assert_ne!(
        h.c.group_generation(&gid("g")).and_then(|(_, l)| l),
        Some(a)
    );
}

#[test]
fn a_static_member_leaving_by_instance_id_triggers_a_rebalance() {
    let mut h = Harness::new();
    let (_, _, _) = static_group(&mut h);
    let left = h.leave(
        "g",
        vec![LeavingMember {
            member_id: MemberId::default(),
            group_instance_id: Some(InstanceId::from("b")),
            reason: Some("admin removal".to_owned()),
        }],
    );
    assert_eq!(left.members[0].error, None);
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    let left = h.leave(
        "g",
        vec![LeavingMember {
            member_id: MemberId::default(),
            group_instance_id: Some(InstanceId::from("b")),
            reason: None,
        }],
    );
    assert_eq!(left.members[0].error, Some(ResponseError::UnknownMemberId));
}

#[test]
fn leave_with_a_stale_member_id_for_an_instance_is_fenced() {
    let mut h = Harness::new();
    let (_, b, _) = static_group(&mut h);
    let t = h.join(static_params("b", &MemberId::default(), false));
    h.join_result(t);
    let left = h.leave(
        "g",
        vec![LeavingMember {
            member_id: b,
            group_instance_id: Some(InstanceId::from("b")),
            reason: None,
        }],
    );
    assert_eq!(left.members[0].error, Some(ResponseError::FencedInstanceId));
    assert_eq!(h.c.group_state(&gid("g")), Some(GroupState::Stable));
}

#[test]
fn static_members_that_do_not_rejoin_stay_in_the_next_generation() {
    let mut h = Harness::new();
    let (a, b, generation) = static_group(&mut h);
    // The leader rejoins; "b" keeps heartbeating but does not rejoin in time.
    let t = h.join(static_params("a", &a, false));
    for _ in 0..3 {
        h.advance(i64::from(REBALANCE) / 3 - 1);
        assert_eq!(
            heartbeat_as(&mut h, "b", &b, generation),
            Some(ResponseError::RebalanceInProgress)
        );
    }
    assert!(!h.is_answered(t));
    h.advance(3);
    // A dynamic member would have been dropped; a static one keeps its place.
    let result = h.join_result(t);
    let next = GenerationId(generation.0 + 1);
    assert_eq!(result.generation_id, next);
    assert_eq!(result.members.len(), 2);
    assert_eq!(
        heartbeat_as(&mut h, "b", &b, generation),
        Some(ResponseError::IllegalGeneration)
    );
    let late = h.join(static_params("b", &b, false));
    assert_eq!(h.join_result(late).generation_id, next);
}

#[test]
fn a_static_members_session_expiry_removes_it() {
    let mut h = Harness::new();
    let (a, b, generation) = static_group(&mut h);
    h.advance(i64::from(SESSION) - 1);
    assert_eq!(heartbeat_as(&mut h, "a", &a, generation), None);
    h.advance(1);
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(
        heartbeat_as(&mut h, "b", &b, generation),
        Some(ResponseError::UnknownMemberId)
    );
    let t = h.join(static_params("a", &a, false));
    assert_eq!(h.join_result(t).members.len(), 1);
}

#[test]
fn a_static_member_rejoining_during_completing_rebalance_restarts_it() {
    let mut h = Harness::new();
    let (a, b, generation) = static_group(&mut h);
    let ta = h.join(static_params("a", &a, false));
    let tb = h.join(static_params("b", &b, false));
    h.join_result(ta);
    h.join_result(tb);
    let next = GenerationId(generation.0 + 1);
    let parked = h.sync("g", &b, next, vec![]);
    assert!(!h.is_answered(parked));
    // "b" restarts before the leader's assignment arrived: its parked SyncGroup is fenced.
    let t = h.join(static_params("b", &MemberId::default(), false));
    let fenced = h.sync_result(parked);
    assert_eq!(fenced.error, Some(ResponseError::FencedInstanceId));
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    let ta = h.join(static_params("a", &a, false));
    let result = h.join_result(t);
    assert_eq!(result.generation_id, GenerationId(next.0 + 1));
    assert_eq!(h.join_result(ta).generation_id, GenerationId(next.0 + 1));
}
