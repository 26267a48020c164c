//! Tests of [`ReplicaState`]: the high watermark, ISR shrink and expand, pending changes,
//! min.insync.replicas and epochs, each as Kafka's `Partition` behaves.

use super::*;
use weir_controller::Listener;

const ME: i32 = 1;
/// The epoch every test broker registered with.
const REGISTERED: i64 = 7;
const LAG_MS: i64 = 30_000;
/// A time well past zero, so "never caught up" (0) is older than the lag limit.
const T0: i64 = 1_000_000;

fn ids(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|&i| BrokerId(i)).collect()
}

fn partition(
    replicas: &[i32],
    isr: &[i32],
    leader: i32,
    leader_epoch: i32,
    pe: i32,
) -> PartitionState {
    PartitionState {
        partition: 0,
        replicas: ids(replicas),
        isr: ids(isr),
        leader: (leader >= 0).then_some(BrokerId(leader)),
        leader_epoch,
        partition_epoch: pe,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

fn eligible(brokers: &[i32]) -> EligibleBrokers {
    brokers.iter().map(|&b| (BrokerId(b), REGISTERED)).collect()
}

/// Broker 1 leading `replicas` with `isr` in leader epoch 1, its log ending at `leo`.
fn leader(replicas: &[i32], isr: &[i32], leo: u64) -> ReplicaState {
    let mut state = ReplicaState::new(BrokerId(ME), LAG_MS);
    state.set_eligible_brokers(eligible(replicas));
    let t = state.apply(&partition(replicas, isr, ME, 1, 1), Offset(leo), T0);
    assert_eq!(
        t,
        Transition::NewLeaderEpoch {
            epoch: 1,
            start_offset: Offset(leo)
        }
    );
    state
}

fn fetch(replica: i32, offset: u64, leader_leo: u64, now_ms: i64) -> FollowerFetch {
    FollowerFetch {
        replica: BrokerId(replica),
        broker_epoch: -1,
        fetch_offset: Offset(offset),
        leader_log_end: Offset(leader_leo),
        now_ms,
    }
}

fn fetched(state: &mut ReplicaState, f: FollowerFetch, hw: u64) -> FollowerFetchOutcome {
    state
        .follower_fetched(f, Offset(hw))
        .expect("fetch recorded")
}

#[test]
fn single_replica_leader_high_watermark_follows_its_log_end() {
    let state = leader(&[1], &[1], 5);
    assert_eq!(
        state.advance_high_watermark(Offset(9), Offset(5), T0),
        Some(Offset(9))
    );
    assert_eq!(state.advance_high_watermark(Offset(9), Offset(9), T0), None);
    assert!(!state.is_under_replicated());
}

#[test]
fn high_watermark_is_the_smallest_log_end_in_the_isr_and_never_decreases() {
    let mut state = leader(&[1, 2, 3], &[1, 2, 3], 100);
    // Replica 3 has not fetched from this leader yet: nothing is known to be replicated.
    let out = fetched(&mut state, fetch(2, 50, 100, T0), 0);
    assert_eq!(out.high_watermark, None);
    let out = fetched(&mut state, fetch(3, 80, 100, T0), 0);
    assert_eq!(out.high_watermark, Some(Offset(50)));
    let out = fetched(&mut state, fetch(2, 90, 100, T0), 50);
    assert_eq!(out.high_watermark, Some(Offset(80)));
    // The leader's own log end bounds it too.
    let out = fetched(&mut state, fetch(3, 100, 100, T0), 80);
    assert_eq!(out.high_watermark, Some(Offset(90)));
    // A follower going back (after truncating) never moves the high watermark down.
    let out = fetched(&mut state, fetch(2, 70, 100, T0), 90);
    assert_eq!(out.high_watermark, None);
    assert_eq!(
        state.advance_high_watermark(Offset(100), Offset(90), T0),
        None
    );
}

#[test]
fn followers_outside_the_isr_that_are_not_caught_up_do_not_hold_the_high_watermark() {
    let mut state = leader(&[1, 2, 3], &[1, 2], 100);
    let out = fetched(&mut state, fetch(2, 100, 100, T0), 0);
    assert_eq!(out.high_watermark, Some(Offset(100)));
    // Replica 3 is far behind and was never caught up.
    let out = fetched(&mut state, fetch(3, 10, 100, T0 + 1), 100);
    assert_eq!(out.high_watermark, None);
    assert_eq!(out.proposal, None);
    assert_eq!(
        state.advance_high_watermark(Offset(120), Offset(100), T0 + 2),
        None,
        "replica 2 holds it"
    );
    let out = fetched(&mut state, fetch(2, 120, 120, T0 + 2), 100);
    assert_eq!(out.high_watermark, Some(Offset(120)));
}

#[test]
fn a_caught_up_follower_outside_the_isr_holds_the_high_watermark_and_joins_it() {
    // Replica 2 is out of the ISR and the leader keeps appending (acks=1): the high
    // watermark waits for it once it is caught up, so it can reach it and rejoin.
    let mut state = leader(&[1, 2], &[1], 100);
    let out = fetched(&mut state, fetch(2, 60, 100, T0), 100);
    assert_eq!(out, FollowerFetchOutcome::default());
    // It reached the leader's log end of its previous fetch: caught up as of then.
    let out = fetched(&mut state, fetch(2, 100, 110, T0 + 10), 100);
    assert_eq!(out.high_watermark, None, "held at 100 by replica 2");
    let proposal = out.proposal.expect("replica 2 reached the high watermark");
    assert_eq!(proposal.change, IsrChange::Expand(BrokerId(2)));
    assert_eq!(proposal.new_isr, ids(&[1, 2]));
    assert_eq!((proposal.leader_epoch, proposal.partition_epoch), (1, 1));
    assert_eq!(
        state.advance_high_watermark(Offset(110), Offset(100), T0 + 10),
        None
    );
}

#[test]
fn expansion_waits_for_the_start_of_the_leaders_epoch() {
    // The leader began epoch 1 at offset 100 with HW 40 (its followers were behind).
    let mut state = leader(&[1, 2], &[1], 100);
    let out = fetched(&mut state, fetch(2, 60, 100, T0), 40);
    assert_eq!(
        out.proposal, None,
        "at the high watermark but short of the epoch start"
    );
    let out = fetched(&mut state, fetch(2, 100, 100, T0 + 1), 40);
    assert_eq!(
        out.proposal.map(|p| p.change),
        Some(IsrChange::Expand(BrokerId(2)))
    );
}

#[test]
fn expansion_needs_an_eligible_broker_with_the_registered_epoch() {
    let mut state = leader(&[1, 2], &[1], 100);
    state.set_eligible_brokers(eligible(&[1]));
    let out = fetched(&mut state, fetch(2, 100, 100, T0), 100);
    assert_eq!(out.proposal, None, "fenced or shutting down");

    let mut state = leader(&[1, 2], &[1], 100);
    let stale = FollowerFetch {
        broker_epoch: REGISTERED - 1,
        ..fetch(2, 100, 100, T0)
    };
    assert_eq!(
        fetched(&mut state, stale, 100).proposal,
        None,
        "an old incarnation"
    );
    let current = FollowerFetch {
        broker_epoch: REGISTERED,
        ..fetch(2, 100, 100, T0 + 1)
    };
    assert!(fetched(&mut state, current, 100).proposal.is_some());
}

#[test]
fn fetches_the_leader_cannot_record_are_refused() {
    let mut state = leader(&[1, 2], &[1, 2], 100);
    assert_eq!(
        state.follower_fetched(fetch(5, 0, 100, T0), Offset(0)),
        Err(FollowerFetchError::UnknownReplica(BrokerId(5)))
    );
    let newer = FollowerFetch {
        broker_epoch: 9,
        ..fetch(2, 10, 100, T0)
    };
    fetched(&mut state, newer, 0);
    let older = FollowerFetch {
        broker_epoch: 8,
        ..fetch(2, 10, 100, T0)
    };
    assert!(matches!(
        state.follower_fetched(older, Offset(0)),
        Err(FollowerFetchError::StaleBrokerEpoch {
            sent: 8,
            seen: 9,
            ..
        })
    ));
    let mut follower = ReplicaState::new(BrokerId(ME), LAG_MS);
    follower.apply(&partition(&[1, 2], &[1, 2], 2, 1, 1), Offset(0), T0);
    assert_eq!(
        follower.follower_fetched(fetch(2, 0, 0, T0), Offset(0)),
        Err(FollowerFetchError::NotLeader)
    );
}

#[test]
fn a_pending_expansion_counts_the_new_member_for_high_watermark_and_acks() {
    let mut state = leader(&[1, 2, 3], &[1, 2], 100);
    state.set_min_insync_replicas(3);
    fetched(&mut state, fetch(2, 100, 100, T0), 100);
    let out = fetched(&mut state, fetch(3, 100, 100, T0), 100);
    let proposal = out.proposal.expect("expansion");
    assert_eq!(state.pending_proposal(), Some(&proposal));
    // acks=all is checked against the committed ISR before appending, as Kafka does ...
    assert_eq!(
        state.check_append(true),
        Err(AppendRefusal::NotEnoughReplicas {
            isr: 2,
            required: 3
        })
    );
    // ... and against the maximal ISR once the high watermark passes the write.
    assert_eq!(
        state.ack_progress(Offset(100), Offset(100)),
        AckProgress::Done
    );
    // Replica 3 is in the maximal ISR: its log end bounds the high watermark.
    fetched(&mut state, fetch(2, 130, 130, T0 + 1), 100);
    assert_eq!(
        state.advance_high_watermark(Offset(130), Offset(100), T0 + 1),
        None
    );
}

#[test]
fn shrink_drops_followers_not_caught_up_within_the_lag_time() {
    let mut state = leader(&[1, 2, 3], &[1, 2, 3], 100);
    fetched(&mut state, fetch(2, 100, 100, T0), 0);
    fetched(&mut state, fetch(3, 100, 100, T0), 0);
    assert_eq!(
        state.maybe_shrink_isr(Offset(100), T0 + LAG_MS + 1),
        None,
        "both at the log end"
    );
    // The leader appends; replica 2 keeps up, replica 3 stops fetching.
    fetched(&mut state, fetch(2, 150, 150, T0 + LAG_MS), 100);
    assert_eq!(state.maybe_shrink_isr(Offset(150), T0 + LAG_MS), None);
    let proposal = state
        .maybe_shrink_isr(Offset(150), T0 + LAG_MS + 1)
        .expect("replica 3 lags");
    assert_eq!(proposal.change, IsrChange::Shrink(ids(&[3])));
    assert_eq!(proposal.new_isr, ids(&[1, 2]));
    // A pending shrink keeps the committed ISR: replica 3 still holds the high watermark.
    assert_eq!(
        state.advance_high_watermark(Offset(150), Offset(100), T0 + LAG_MS + 1),
        None
    );
    assert_eq!(state.isr(), ids(&[1, 2, 3]).as_slice());
}

#[test]
fn a_follower_that_stops_fetching_while_caught_up_to_a_stale_log_end_is_dropped() {
    // Kafka's "stuck follower": it reached the log end once, then never fetched again.
    let mut state = leader(&[1, 2], &[1, 2], 100);
    fetched(&mut state, fetch(2, 100, 100, T0), 0);
    assert_eq!(state.maybe_shrink_isr(Offset(101), T0 + LAG_MS), None);
    let proposal = state.maybe_shrink_isr(Offset(101), T0 + LAG_MS + 1);
    assert_eq!(
        proposal.map(|p| p.change),
        Some(IsrChange::Shrink(ids(&[2])))
    );
}

#[test]
fn one_isr_change_at_a_time() {
    let mut state = leader(&[1, 2, 3], &[1, 2], 100);
    let shrink = state
        .maybe_shrink_isr(Offset(100), T0 + LAG_MS + 1)
        .expect("replica 2 never fetched");
    let out = fetched(&mut state, fetch(3, 100, 100, T0 + LAG_MS + 2), 100);
    assert_eq!(
        out.proposal, None,
        "an expansion waits for the pending shrink"
    );
    assert_eq!(state.maybe_shrink_isr(Offset(100), T0 + 2 * LAG_MS), None);
    assert_eq!(state.pending_proposal(), Some(&shrink));
}

#[test]
fn a_committed_shrink_lets_the_high_watermark_advance() {
    let mut state = leader(&[1, 2, 3], &[1, 2, 3], 100);
    fetched(&mut state, fetch(2, 100, 100, T0), 0);
    fetched(&mut state, fetch(3, 60, 100, T0), 0);
    let proposal = state
        .maybe_shrink_isr(Offset(100), T0 + LAG_MS + 1)
        .expect("replica 3 lags");
    let mut committed = partition(&[1, 2, 3], &[1, 2], ME, 1, 2);
    committed.isr = proposal.new_isr.clone();
    assert_eq!(
        state.isr_committed(proposal.id, &committed),
        Some(IsrChange::Shrink(ids(&[3])))
    );
    assert_eq!(state.partition_epoch(), 2);
    assert_eq!(state.isr(), ids(&[1, 2]).as_slice());
    assert!(state.is_under_replicated());
    assert_eq!(
        state.advance_high_watermark(Offset(100), Offset(60), T0 + LAG_MS + 1),
        Some(Offset(100))
    );
    // The same answer again is not applied twice.
    assert_eq!(state.isr_committed(proposal.id, &committed), None);
}

#[test]
fn answers_for_another_proposal_or_leader_epoch_are_ignored() {
    let mut state = leader(&[1, 2], &[1], 100);
    let proposal = fetched(&mut state, fetch(2, 100, 100, T0), 100)
        .proposal
        .expect("expansion");
    let committed = partition(&[1, 2], &[1, 2], ME, 1, 2);
    assert_eq!(state.isr_committed(proposal.id + 1, &committed), None);
    let other_epoch = partition(&[1, 2], &[1, 2], ME, 2, 2);
    assert_eq!(state.isr_committed(proposal.id, &other_epoch), None);
    assert!(state.pending_proposal().is_some(), "still waiting");
    assert_eq!(
        state.isr_committed(proposal.id, &committed),
        Some(IsrChange::Expand(BrokerId(2)))
    );
}

#[test]
fn refused_changes_reset_wait_for_metadata_or_retry_by_error_code() {
    let propose = |state: &mut ReplicaState| {
        state
            .maybe_shrink_isr(Offset(100), T0 + LAG_MS + 1)
            .expect("replica 2 never fetched")
    };
    let mut state = leader(&[1, 2], &[1, 2], 100);
    let p = propose(&mut state);
    assert_eq!(state.isr_failed(p.id + 1, 55), IsrFailure::Ignored);
    assert_eq!(state.isr_failed(p.id, 55), IsrFailure::Reset); // OPERATION_NOT_ATTEMPTED
    assert_eq!(state.pending_proposal(), None);
    let p = propose(&mut state);
    assert_eq!(state.isr_failed(p.id, 107), IsrFailure::Reset); // INELIGIBLE_REPLICA

    for code in [3, 100, 74, 95, 42, 108] {
        let mut state = leader(&[1, 2], &[1, 2], 100);
        let p = propose(&mut state);
        assert_eq!(
            state.isr_failed(p.id, code),
            IsrFailure::AwaitMetadata,
            "{code}"
        );
        assert_eq!(state.pending_proposal(), Some(&p), "{code}");
        assert_eq!(state.maybe_shrink_isr(Offset(100), T0 + 2 * LAG_MS), None);
    }
    let mut state = leader(&[1, 2], &[1, 2], 100);
    let p = propose(&mut state);
    assert_eq!(state.isr_failed(p.id, 15), IsrFailure::Retry); // COORDINATOR_NOT_AVAILABLE
    assert_eq!(state.pending_proposal(), Some(&p));
}

#[test]
fn newer_metadata_replaces_a_pending_change_and_reports_it_committed() {
    let mut state = leader(&[1, 2, 3], &[1, 2, 3], 100);
    let p = state
        .maybe_shrink_isr(Offset(100), T0 + LAG_MS + 1)
        .expect("nobody fetched");
    assert_eq!(p.new_isr, ids(&[1]));
    let t = state.apply(&partition(&[1, 2, 3], &[1], ME, 1, 2), Offset(100), T0);
    assert_eq!(
        t,
        Transition::LeaderUpdated {
            committed: Some(IsrChange::Shrink(ids(&[2, 3])))
        }
    );
    assert_eq!(state.pending_proposal(), None);
    assert_eq!(
        state.isr_committed(p.id, &partition(&[1, 2, 3], &[1], ME, 1, 2)),
        None
    );
    // Metadata with another ISR (another change came first) reports nothing committed.
    let t = state.apply(&partition(&[1, 2, 3], &[1, 3], ME, 1, 3), Offset(100), T0);
    assert_eq!(t, Transition::LeaderUpdated { committed: None });
    assert_eq!(state.isr(), ids(&[1, 3]).as_slice());
}

#[test]
fn epochs_never_go_back_and_the_same_epochs_change_nothing() {
    let mut state = leader(&[1, 2], &[1, 2], 100);
    let same = partition(&[1, 2], &[1, 2], ME, 1, 1);
    assert_eq!(state.apply(&same, Offset(120), T0), Transition::Unchanged);
    let older = partition(&[1, 2], &[1, 2], 2, 0, 0);
    assert_eq!(state.apply(&older, Offset(120), T0), Transition::Stale);
    let older_partition_epoch = partition(&[1, 2], &[1], ME, 1, 0);
    assert_eq!(
        state.apply(&older_partition_epoch, Offset(120), T0),
        Transition::Stale
    );
    assert_eq!(state.role(), Role::Leader);
    assert_eq!(state.isr(), ids(&[1, 2]).as_slice());
}

#[test]
fn a_new_leader_forgets_follower_progress_but_a_re_elected_one_keeps_it() {
    let mut state = leader(&[1, 2], &[1, 2], 100);
    fetched(&mut state, fetch(2, 90, 100, T0), 0);
    // Re-elected in epoch 2 (say after a preferred election): replica 2's log end is kept.
    let t = state.apply(&partition(&[1, 2], &[1, 2], ME, 2, 2), Offset(100), T0 + 5);
    assert_eq!(
        t,
        Transition::NewLeaderEpoch {
            epoch: 2,
            start_offset: Offset(100)
        }
    );
    assert_eq!(state.epoch_start_offset(), Some(Offset(100)));
    assert_eq!(
        state.advance_high_watermark(Offset(100), Offset(0), T0 + 5),
        Some(Offset(90))
    );
    // Leadership moves away and comes back: nothing is known of replica 2 any more.
    state.apply(&partition(&[1, 2], &[1, 2], 2, 3, 3), Offset(100), T0 + 6);
    state.apply(&partition(&[1, 2], &[1, 2], ME, 4, 4), Offset(100), T0 + 7);
    assert_eq!(
        state.advance_high_watermark(Offset(100), Offset(0), T0 + 7),
        None
    );
}

#[test]
fn a_follower_restarts_on_a_new_leader_epoch_only() {
    let mut state = ReplicaState::new(BrokerId(ME), LAG_MS);
    let t = state.apply(&partition(&[2, 1], &[2, 1], 2, 3, 5), Offset(0), T0);
    assert_eq!(
        t,
        Transition::NewFollowerEpoch {
            leader: Some(BrokerId(2)),
            epoch: 3
        }
    );
    assert_eq!(state.role(), Role::Follower(Some(BrokerId(2))));
    assert!(state.isr().is_empty());
    let t = state.apply(&partition(&[2, 1, 3], &[2, 1], 2, 3, 6), Offset(0), T0);
    assert_eq!(t, Transition::FollowerUpdated);
    let t = state.apply(&partition(&[2, 1, 3], &[1, 3], -1, 4, 7), Offset(0), T0);
    assert_eq!(
        t,
        Transition::NewFollowerEpoch {
            leader: None,
            epoch: 4
        }
    );
    // Leading, then following in the next epoch.
    let t = state.apply(&partition(&[2, 1, 3], &[1, 3], ME, 5, 8), Offset(40), T0);
    assert!(matches!(t, Transition::NewLeaderEpoch { epoch: 5, .. }));
    assert!(state.check_append(false).is_ok());
    state.apply(&partition(&[2, 1, 3], &[1, 3], 3, 6, 9), Offset(40), T0);
    assert_eq!(state.check_append(false), Err(AppendRefusal::NotLeader));
    assert_eq!(
        state.ack_progress(Offset(1), Offset(40)),
        AckProgress::NotLeader
    );
}

#[test]
fn acks_all_needs_min_insync_replicas_in_the_committed_isr_capped_at_the_replica_count() {
    let mut state = leader(&[1, 2], &[1], 100);
    assert_eq!(
        state.check_append(true),
        Ok(()),
        "default min.insync.replicas=1"
    );
    state.set_min_insync_replicas(2);
    assert_eq!(
        state.check_append(true),
        Err(AppendRefusal::NotEnoughReplicas {
            isr: 1,
            required: 2
        })
    );
    assert_eq!(state.check_append(false), Ok(()), "acks=1 is not checked");
    let mut state = leader(&[1, 2], &[1, 2], 100);
    state.set_min_insync_replicas(3);
    assert_eq!(state.check_append(true), Ok(()), "capped at 2 replicas");
    let mut single = leader(&[1], &[1], 0);
    single.set_min_insync_replicas(2);
    assert_eq!(single.check_append(true), Ok(()));
}

#[test]
fn an_acks_all_write_fails_after_append_when_the_isr_shrank_below_min_insync() {
    let mut state = leader(&[1, 2], &[1, 2], 100);
    state.set_min_insync_replicas(2);
    fetched(&mut state, fetch(2, 100, 100, T0), 0);
    assert_eq!(state.check_append(true), Ok(()));
    // Appended 100..=109; replica 2 stops fetching.
    assert_eq!(
        state.ack_progress(Offset(110), Offset(100)),
        AckProgress::Waiting
    );
    let p = state
        .maybe_shrink_isr(Offset(110), T0 + LAG_MS + 1)
        .expect("replica 2 lags");
    assert_eq!(
        state.ack_progress(Offset(110), Offset(100)),
        AckProgress::Waiting
    );
    state.isr_committed(p.id, &partition(&[1, 2], &[1], ME, 1, 2));
    let hw = state
        .advance_high_watermark(Offset(110), Offset(100), T0 + LAG_MS + 1)
        .expect("the leader alone is the ISR");
    assert_eq!(
        state.ack_progress(Offset(110), hw),
        AckProgress::NotEnoughReplicasAfterAppend
    );
    assert!(matches!(
        state.check_append(true),
        Err(AppendRefusal::NotEnoughReplicas { .. })
    ));
}

#[test]
fn under_replicated_counts_the_replicas_a_reassignment_keeps() {
    let mut state = leader(&[1, 2, 3], &[1, 2], 0);
    assert!(state.is_under_replicated());
    let mut reassigning = partition(&[1, 2, 3], &[1, 2], ME, 1, 2);
    reassigning.removing_replicas = ids(&[3]);
    state.apply(&reassigning, Offset(0), T0);
    assert!(!state.is_under_replicated());
    assert!(
        state.is_follower(BrokerId(3)),
        "still fetching until it is removed"
    );
}

#[test]
fn eligible_brokers_exclude_fenced_and_shutting_down_ones() {
    let mut brokers = BTreeMap::new();
    for id in 1..=3 {
        let mut info = BrokerInfo::new(
            BrokerId(id),
            None,
            vec![Listener::new("PLAINTEXT", "h", 9092)],
        );
        info.epoch = weir_controller::BrokerEpoch(10 + i64::from(id));
        brokers.insert(BrokerId(id), info);
    }
    brokers.get_mut(&BrokerId(2)).unwrap().fenced = true;
    brokers
        .get_mut(&BrokerId(3))
        .unwrap()
        .in_controlled_shutdown = true;
    let eligible = EligibleBrokers::from_metadata(&brokers);
    assert_eq!(eligible.epoch(BrokerId(1)), Some(11));
    assert_eq!(eligible.epoch(BrokerId(2)), None);
    assert_eq!(eligible.epoch(BrokerId(3)), None);
}

#[test]
fn a_commit_that_completes_a_reassignment_still_lets_the_image_drop_the_removed_replica() {
    // Reassigning from [1, 2, 3] to [1, 2, 4]: replicas [1, 2, 4, 3], 4 adding, 3 removing.
    let mut reassigning = partition(&[1, 2, 4, 3], &[1, 2, 3], ME, 1, 1);
    reassigning.adding_replicas = ids(&[4]);
    reassigning.removing_replicas = ids(&[3]);
    let mut state = ReplicaState::new(BrokerId(ME), LAG_MS);
    state.set_eligible_brokers(eligible(&[1, 2, 3, 4]));
    state.apply(&reassigning, Offset(100), T0);
    fetched(&mut state, fetch(2, 100, 100, T0), 0);
    fetched(&mut state, fetch(3, 100, 100, T0), 0);
    let proposal = fetched(&mut state, fetch(4, 100, 100, T0), 100)
        .proposal
        .expect("4 caught up: expansion");
    // The controller commits the expansion and completes the reassignment in one commit.
    let completed = partition(&[1, 2, 4], &[1, 2, 4], ME, 1, 2);
    assert_eq!(
        state.isr_committed(proposal.id, &completed),
        Some(IsrChange::Expand(BrokerId(4)))
    );
    // Replica 3 stops fetching (its log is deleted). The image with the same epochs must
    // still be applied, so 3 no longer holds the high watermark back.
    assert_ne!(
        state.apply(&completed, Offset(150), T0 + 1),
        Transition::Unchanged
    );
    fetched(&mut state, fetch(2, 150, 150, T0 + 2), 100);
    fetched(&mut state, fetch(4, 150, 150, T0 + 2), 100);
    assert_eq!(
        state.advance_high_watermark(Offset(150), Offset(100), T0 + 3),
        Some(Offset(150)),
        "the removed replica's stale log end does not bound the high watermark"
    );
}
