//! Transactional offset commits: TxnOffsetCommit, completion by transaction markers,
//! OffsetFetch with `require_stable`, deletion, expiry and loading.

use super::*;

const DAY: i64 = 24 * 60 * 60 * 1000;
const PID: i64 = 4000;
const PRODUCER: TxnProducer = TxnProducer {
    producer_id: PID,
    producer_epoch: 7,
};

fn producer(producer_id: i64) -> TxnProducer {
    TxnProducer {
        producer_id,
        producer_epoch: 7,
    }
}

fn commit_topics(offsets: &[(&str, i32, i64)]) -> Vec<CommitTopic> {
    let mut topics: Vec<CommitTopic> = Vec::new();
    for &(topic, partition, offset) in offsets {
        let partition = CommitPartition {
            partition,
            offset,
            leader_epoch: 2,
            metadata: Some("txn".to_owned()),
        };
        match topics.iter_mut().find(|t| t.name == topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(CommitTopic {
                name: topic.to_owned(),
                partitions: vec![partition],
            }),
        }
    }
    topics
}

/// TxnOffsetCommit params as a pre-v3 producer sends them: no member, no generation.
fn txn_params(
    group: &str,
    producer: TxnProducer,
    offsets: &[(&str, i32, i64)],
) -> TxnOffsetCommitParams {
    TxnOffsetCommitParams {
        transactional_id: "tx".to_owned(),
        group_id: gid(group),
        producer,
        generation_id: GenerationId::NONE,
        member_id: MemberId::default(),
        group_instance_id: None,
        topics: commit_topics(offsets),
    }
}

impl Harness {
    fn txn_commit_with(&mut self, p: TxnOffsetCommitParams) -> RequestToken {
        let token = self.token();
        let effects = self.c.commit_transactional_offsets(token, p, self.now);
        self.apply(effects);
        token
    }

    /// A pre-v3 TxnOffsetCommit; returns its per-partition errors.
    fn txn_commit(
        &mut self,
        group: &str,
        producer: TxnProducer,
        offsets: &[(&str, i32, i64)],
    ) -> Vec<Option<ResponseError>> {
        let token = self.txn_commit_with(txn_params(group, producer, offsets));
        all_errors(&self.txn_commit_result(token))
    }

    fn end_txn(&mut self, producer_id: i64, commit: bool) {
        let effects = self.c.complete_transaction(producer_id, commit, self.now);
        self.apply(effects);
    }

    fn standalone(&mut self, group: &str, offsets: &[(&str, i32, i64)]) {
        let token = self.commit(group, &MemberId::default(), GenerationId::NONE, offsets);
        assert_eq!(
            all_errors(&self.commit_result(token)),
            vec![None; offsets.len()]
        );
    }

    /// OffsetFetch with `require_stable` of one partition: (offset, error).
    fn fetch_stable(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> (i64, Option<ResponseError>) {
        let topics = [TopicPartitions {
            name: topic.to_owned(),
            partitions: vec![partition],
        }];
        let fetched = &self.c.fetch_offsets(&gid(group), Some(&topics), true)[0].partitions[0];
        (fetched.offset, fetched.error)
    }
}

#[test]
fn transactional_offsets_are_invisible_until_the_transaction_commits() {
    let mut h = Harness::new();
    h.standalone("g", &[("t", 0, 5)]);
    assert_eq!(
        h.txn_commit("g", PRODUCER, &[("t", 0, 10), ("t", 1, 11)]),
        [None, None]
    );
    assert_eq!(
        h.fetch("g", "t", 0),
        5,
        "the last committed offset, not the pending one"
    );
    assert_eq!(h.fetch("g", "t", 1), -1);
    assert!(
        h.c.fetch_offsets(&gid("g"), None, false)[0]
            .partitions
            .iter()
            .all(|p| p.partition == 0),
        "a partition only a transaction commits is not listed"
    );
    h.end_txn(PID, true);
    assert_eq!(h.fetch("g", "t", 0), 10);
    assert_eq!(h.fetch("g", "t", 1), 11);
    assert_eq!(h.fetch_stable("g", "t", 0), (10, None));
}

#[test]
fn an_aborted_transaction_discards_its_offsets() {
    let mut h = Harness::new();
    h.standalone("g", &[("t", 0, 5)]);
    h.txn_commit("g", PRODUCER, &[("t", 0, 10), ("t", 1, 11)]);
    h.end_txn(PID, false);
    assert_eq!(
        h.fetch_stable("g", "t", 0),
        (5, None),
        "settled at the old offset"
    );
    assert_eq!(h.fetch_stable("g", "t", 1), (-1, None));
    // A late COMMIT marker of the same producer finds nothing left to commit.
    h.end_txn(PID, true);
    assert_eq!(h.fetch("g", "t", 0), 5);
}

#[test]
fn require_stable_answers_unstable_offset_commit_for_pending_partitions_only() {
    let mut h = Harness::new();
    h.standalone("g", &[("t", 0, 5), ("t", 1, 6)]);
    h.txn_commit("g", PRODUCER, &[("t", 0, 10)]);
    assert_eq!(
        h.fetch_stable("g", "t", 0),
        (-1, Some(ResponseError::UnstableOffsetCommit))
    );
    assert_eq!(h.fetch_stable("g", "t", 1), (6, None));
    let all = h.c.fetch_offsets(&gid("g"), None, true);
    let errors: Vec<(i32, Option<ResponseError>)> = all[0]
        .partitions
        .iter()
        .map(|p| (p.partition, p.error))
        .collect();
    assert_eq!(
        errors,
        [(0, Some(ResponseError::UnstableOffsetCommit)), (1, None)]
    );
}

#[test]
fn a_regular_commit_in_flight_is_unstable_too() {
    let mut h = Harness::new();
    h.standalone("g", &[("t", 0, 5)]);
    h.auto_persist = false;
    let token = h.commit(
        "g",
        &MemberId::default(),
        GenerationId::NONE,
        &[("t", 0, 6)],
    );
    assert_eq!(
        h.fetch_stable("g", "t", 0).1,
        Some(ResponseError::UnstableOffsetCommit)
    );
    h.complete_write(Ok(()));
    h.commit_result(token);
    assert_eq!(h.fetch_stable("g", "t", 0), (6, None));
}

#[test]
fn a_marker_completes_only_its_own_producers_commits_in_every_group() {
    let mut h = Harness::new();
    h.txn_commit("a", producer(1), &[("t", 0, 10)]);
    h.txn_commit("b", producer(1), &[("t", 0, 20)]);
    h.txn_commit("a", producer(2), &[("t", 1, 30)]);
    h.end_txn(1, true);
    assert_eq!(h.fetch("a", "t", 0), 10);
    assert_eq!(h.fetch("b", "t", 0), 20);
    assert_eq!(
        h.fetch("a", "t", 1),
        -1,
        "producer 2's transaction is still open"
    );
    assert_eq!(
        h.fetch_stable("a", "t", 1).1,
        Some(ResponseError::UnstableOffsetCommit)
    );
    h.end_txn(2, true);
    assert_eq!(h.fetch("a", "t", 1), 30);
}

#[test]
fn of_mixed_regular_and_transactional_commits_the_later_one_in_the_log_wins() {
    let mut h = Harness::new();
    // Transactional first, regular after: the regular one is later in the log and stays.
    h.txn_commit("g", PRODUCER, &[("t", 0, 10)]);
    h.standalone("g", &[("t", 0, 7)]);
    assert_eq!(h.fetch("g", "t", 0), 7);
    h.end_txn(PID, true);
    assert_eq!(
        h.fetch("g", "t", 0),
        7,
        "the older transactional commit does not replace it"
    );
    // Regular first, transactional after: the transaction's commit replaces it.
    h.standalone("g", &[("t", 1, 7)]);
    h.txn_commit("g", PRODUCER, &[("t", 1, 10)]);
    h.end_txn(PID, true);
    assert_eq!(h.fetch("g", "t", 1), 10);
}

#[test]
fn a_partition_committed_twice_in_one_transaction_keeps_the_last_commit() {
    let mut h = Harness::new();
    h.txn_commit("g", PRODUCER, &[("t", 0, 10)]);
    h.txn_commit("g", PRODUCER, &[("t", 0, 12)]);
    h.end_txn(PID, true);
    assert_eq!(h.fetch("g", "t", 0), 12);
}

#[test]
fn a_txn_commit_to_an_unknown_group_creates_it_empty() {
    let mut h = Harness::new();
    assert_eq!(h.c.group_state(&gid("new")), None);
    assert_eq!(h.txn_commit("new", PRODUCER, &[("t", 0, 1)]), [None]);
    assert_eq!(h.c.group_state(&gid("new")), Some(GroupState::Empty));
}

#[test]
fn the_write_is_the_producers_transactional_batch_and_answers_once_stored() {
    let mut h = Harness::new();
    h.auto_persist = false;
    let token = h.txn_commit_with(txn_params("g", PRODUCER, &[("t", 0, 10), ("t", 1, 11)]));
    assert!(!h.is_answered(token), "answered only once stored");
    let (transaction, records) = h.batches.last().expect("a write");
    assert_eq!(*transaction, Some(PRODUCER));
    assert_eq!(records.len(), 2, "one batch for the request's partitions");
    h.complete_write(Ok(()));
    assert_eq!(all_errors(&h.txn_commit_result(token)), [None, None]);
    // Regular commits stay plain batches.
    h.auto_persist = true;
    h.standalone("g", &[("t", 2, 1)]);
    assert_eq!(h.batches.last().expect("a write").0, None);
}

#[test]
fn a_failed_txn_write_answers_the_mapped_error_and_leaves_nothing_pending() {
    let mut h = Harness::new();
    h.standalone("g", &[("t", 0, 5)]);
    h.auto_persist = false;
    let token = h.txn_commit_with(txn_params("g", PRODUCER, &[("t", 0, 10)]));
    assert_eq!(
        h.fetch_stable("g", "t", 0).1,
        Some(ResponseError::UnstableOffsetCommit),
        "pending from the moment it is staged, as in Kafka"
    );
    h.complete_write(Err(ResponseError::NotLeaderOrFollower));
    assert_eq!(
        all_errors(&h.txn_commit_result(token)),
        [Some(ResponseError::NotCoordinator)]
    );
    assert_eq!(h.fetch_stable("g", "t", 0), (5, None));
    h.end_txn(PID, true);
    assert_eq!(
        h.fetch("g", "t", 0),
        5,
        "nothing of the failed write is committed"
    );
}

#[test]
fn a_fenced_producer_epoch_from_the_log_is_answered_as_is() {
    let mut h = Harness::new();
    h.auto_persist = false;
    let token = h.txn_commit_with(txn_params("g", PRODUCER, &[("t", 0, 10)]));
    h.complete_write(Err(ResponseError::InvalidProducerEpoch));
    assert_eq!(
        all_errors(&h.txn_commit_result(token)),
        [Some(ResponseError::InvalidProducerEpoch)]
    );
}

#[test]
fn oversized_metadata_is_refused_per_partition() {
    let mut h = Harness::new();
    let max = h.c.config().offset_metadata_max_bytes;
    let mut p = txn_params("g", PRODUCER, &[("t", 0, 10), ("t", 1, 11)]);
    p.topics[0].partitions[1].metadata = Some("x".repeat(max + 1));
    let token = h.txn_commit_with(p);
    assert_eq!(
        all_errors(&h.txn_commit_result(token)),
        [None, Some(ResponseError::OffsetMetadataTooLarge)]
    );
    h.end_txn(PID, true);
    assert_eq!(h.fetch("g", "t", 0), 10);
    assert_eq!(h.fetch("g", "t", 1), -1);
}

#[test]
fn v3_txn_commits_are_checked_against_the_groups_members_and_generation() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 2, &["t"]);
    let v3 = |member: &MemberId, generation: GenerationId, instance: Option<&str>| {
        TxnOffsetCommitParams {
            generation_id: generation,
            member_id: member.clone(),
            group_instance_id: instance.map(InstanceId::from),
            ..txn_params("g", PRODUCER, &[("t", 0, 10)])
        }
    };
    let mut errors = |p| {
        let token = h.txn_commit_with(p);
        all_errors(&h.txn_commit_result(token))[0]
    };
    assert_eq!(
        errors(v3(&ids[0], GenerationId(generation.0 - 1), None)),
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        errors(v3(&mid("stranger"), generation, None)),
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        errors(v3(&ids[0], generation, Some("unknown-instance"))),
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(errors(v3(&ids[1], generation, None)), None);
    // Before v3 the producer names no member: accepted even though the group has members.
    assert_eq!(errors(txn_params("g", PRODUCER, &[("t", 1, 3)])), None);
}

#[test]
fn a_static_members_txn_commit_from_a_replaced_instance_is_fenced() {
    let mut h = Harness::new();
    let mut p = join_params("g", &MemberId::default(), vec![consumer("range", &["t"])]);
    p.group_instance_id = Some(InstanceId::from("i"));
    let t = h.join(p);
    h.advance(0);
    let joined = h.join_result(t);
    assert_eq!(joined.error, None);
    let s = h.sync("g", &joined.member_id, joined.generation_id, vec![]);
    assert_eq!(h.sync_result(s).error, None);
    let token = h.txn_commit_with(TxnOffsetCommitParams {
        generation_id: joined.generation_id,
        member_id: mid("i-old"),
        group_instance_id: Some(InstanceId::from("i")),
        ..txn_params("g", PRODUCER, &[("t", 0, 10)])
    });
    assert_eq!(
        all_errors(&h.txn_commit_result(token)),
        [Some(ResponseError::FencedInstanceId)]
    );
}

#[test]
fn a_txn_commit_is_accepted_while_its_group_rebalances() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group("g", 1, &["t"]);
    // A second member joins: the group waits in PreparingRebalance for the first to rejoin.
    let _ = h.join_new("g", vec![consumer("range", &["t"])]);
    assert_eq!(
        h.c.group_state(&gid("g")),
        Some(GroupState::PreparingRebalance)
    );
    let token = h.txn_commit_with(TxnOffsetCommitParams {
        generation_id: generation,
        member_id: ids[0].clone(),
        ..txn_params("g", PRODUCER, &[("t", 0, 10)])
    });
    assert_eq!(all_errors(&h.txn_commit_result(token)), [None]);
}

#[test]
fn unloading_answers_a_txn_commit_in_flight_not_coordinator() {
    let mut h = Harness::new();
    h.auto_persist = false;
    let token = h.txn_commit_with(txn_params("g", PRODUCER, &[("t", 0, 10)]));
    let c = std::mem::replace(&mut h.c, GroupCoordinator::new(config(), T0));
    let effects = c.unload(h.now);
    h.apply(effects);
    assert_eq!(
        all_errors(&h.txn_commit_result(token)),
        [Some(ResponseError::NotCoordinator)]
    );
}

#[test]
fn delete_groups_removes_an_empty_groups_open_transaction_for_good() {
    let mut h = Harness::new();
    h.standalone("g", &[("t", 0, 5)]);
    h.txn_commit("g", PRODUCER, &[("t", 0, 10), ("t", 1, 11)]);
    let outcome = h.c.delete_groups(&[gid("g")], h.now);
    assert_eq!(
        outcome.response,
        [(gid("g"), None)],
        "an Empty group is deleted"
    );
    h.apply(outcome.effects);
    let tombstoned: Vec<Option<records::RecordKey>> = h
        .log
        .iter()
        .filter(|r| r.value.is_none())
        .map(|r| records::decode_key(&r.key).unwrap())
        .collect();
    for partition in [0, 1] {
        let key = records::RecordKey::OffsetCommit {
            group: "g".to_owned(),
            topic: "t".to_owned(),
            partition,
        };
        assert!(tombstoned.contains(&Some(key)), "t-{partition} tombstoned");
    }
    h.end_txn(PID, true);
    assert_eq!(
        h.c.group_state(&gid("g")),
        None,
        "the marker does not revive it"
    );
    assert_eq!(h.fetch("g", "t", 1), -1);
}

#[test]
fn offset_delete_drops_pending_transactional_offsets_of_the_partition() {
    let mut h = Harness::new();
    h.txn_commit("g", PRODUCER, &[("t", 0, 10), ("u", 0, 20)]);
    let topics = [TopicPartitions {
        name: "t".to_owned(),
        partitions: vec![0],
    }];
    let outcome = h.c.delete_offsets(&gid("g"), &topics, h.now);
    assert_eq!(outcome.response.error, None);
    h.apply(outcome.effects);
    let last = h.log.last().expect("a tombstone");
    assert_eq!(last.value, None, "the pending-only partition is tombstoned");
    h.end_txn(PID, true);
    assert_eq!(h.fetch("g", "t", 0), -1);
    assert_eq!(
        h.fetch("g", "u", 0),
        20,
        "the other partition's commit survives"
    );
}

#[test]
fn an_open_transaction_keeps_its_offsets_and_group_from_expiring() {
    let mut h = Harness::new();
    h.standalone("g", &[("t", 0, 5), ("t", 1, 6)]);
    h.txn_commit("g", PRODUCER, &[("t", 0, 10)]);
    h.txn_commit("only-txn", PRODUCER, &[("t", 0, 1)]);
    h.advance(8 * DAY);
    assert_eq!(h.fetch("g", "t", 1), -1, "t-1 expired");
    assert_eq!(
        h.fetch("g", "t", 0),
        5,
        "t-0 has a pending transactional commit"
    );
    assert_eq!(
        h.c.group_state(&gid("only-txn")),
        Some(GroupState::Empty),
        "a group whose only offsets are pending is kept"
    );
    h.end_txn(PID, true);
    assert_eq!(h.fetch("g", "t", 0), 10);
    assert_eq!(h.fetch("only-txn", "t", 0), 1);
}

/// Replays the harness's batches the way the service loads a partition, with a marker of
/// each `(after_batch, producer, commit)` after that many batches.
fn load_with_markers(h: &Harness, markers: &[(usize, i64, bool)]) -> GroupCoordinator {
    let mut loader = Loader::new();
    let mark = |loader: &mut Loader, n: usize| {
        for &(_, pid, commit) in markers.iter().filter(|(at, _, _)| *at == n) {
            loader.end_transaction(pid, commit);
        }
    };
    for (n, (transaction, records)) in h.batches.iter().enumerate() {
        mark(&mut loader, n);
        for r in records {
            match transaction {
                Some(p) => loader.replay_transactional(p.producer_id, &r.key, r.value.as_deref()),
                None => loader.replay(&r.key, r.value.as_deref()),
            }
            .expect("the record loads");
        }
    }
    mark(&mut loader, h.batches.len());
    loader.finish(config(), h.now)
}

fn offset_of(
    c: &GroupCoordinator,
    group: &str,
    topic: &str,
    partition: i32,
    stable: bool,
) -> (i64, Option<ResponseError>) {
    let topics = [TopicPartitions {
        name: topic.to_owned(),
        partitions: vec![partition],
    }];
    let p = &c.fetch_offsets(&gid(group), Some(&topics), stable)[0].partitions[0];
    (p.offset, p.error)
}

#[test]
fn loading_applies_a_committed_transaction_and_drops_an_aborted_one() {
    let mut h = Harness::new();
    h.standalone("g", &[("t", 0, 5), ("t", 1, 6)]);
    h.txn_commit("g", producer(1), &[("t", 0, 10)]);
    h.txn_commit("g", producer(2), &[("t", 1, 20)]);
    h.txn_commit("txn-only", producer(2), &[("t", 0, 1)]);
    // After the 4 batches: producer 1 commits, producer 2 aborts.
    let c = load_with_markers(&h, &[(4, 1, true), (4, 2, false)]);
    assert_eq!(offset_of(&c, "g", "t", 0, true), (10, None));
    assert_eq!(offset_of(&c, "g", "t", 1, true), (6, None));
    assert_eq!(
        c.group_state(&gid("txn-only")),
        None,
        "a group with nothing but an aborted transaction is not created"
    );
}

#[test]
fn a_transaction_open_at_the_end_of_the_log_stays_pending_after_loading() {
    let mut h = Harness::new();
    h.standalone("g", &[("t", 0, 5)]);
    h.txn_commit("g", PRODUCER, &[("t", 0, 10)]);
    h.txn_commit("txn-only", PRODUCER, &[("t", 0, 1)]);
    let mut c = load_with_markers(&h, &[]);
    assert_eq!(offset_of(&c, "g", "t", 0, false), (5, None));
    assert_eq!(
        offset_of(&c, "g", "t", 0, true),
        (-1, Some(ResponseError::UnstableOffsetCommit))
    );
    assert_eq!(c.group_state(&gid("txn-only")), Some(GroupState::Empty));
    // The marker arrives after loading.
    assert!(
        c.complete_transaction(PID, true, h.now).is_empty(),
        "writes nothing"
    );
    assert_eq!(offset_of(&c, "g", "t", 0, true), (10, None));
    assert_eq!(offset_of(&c, "txn-only", "t", 0, true), (1, None));
}

#[test]
fn loading_keeps_a_regular_commit_later_in_the_log_than_a_committed_transaction() {
    let mut h = Harness::new();
    h.txn_commit("g", PRODUCER, &[("t", 0, 10), ("t", 1, 11)]);
    h.standalone("g", &[("t", 0, 7)]);
    let mut c = load_with_markers(&h, &[(2, PID, true)]);
    assert_eq!(offset_of(&c, "g", "t", 0, false).0, 7);
    assert_eq!(offset_of(&c, "g", "t", 1, false).0, 11);
    // The same when the marker comes after loading.
    let mut open = load_with_markers(&h, &[]);
    open.complete_transaction(PID, true, h.now);
    assert_eq!(offset_of(&open, "g", "t", 0, false).0, 7);
    assert_eq!(offset_of(&open, "g", "t", 1, false).0, 11);
    c.complete_transaction(PID, true, h.now);
    assert_eq!(
        offset_of(&c, "g", "t", 0, false).0,
        7,
        "a repeated marker changes nothing"
    );
}

#[test]
fn loading_drops_pending_offsets_an_offset_tombstone_deleted() {
    let mut h = Harness::new();
    h.txn_commit("g", PRODUCER, &[("t", 0, 10)]);
    let topics = [TopicPartitions {
        name: "t".to_owned(),
        partitions: vec![0],
    }];
    let outcome = h.c.delete_offsets(&gid("g"), &topics, h.now);
    h.apply(outcome.effects);
    let c = load_with_markers(&h, &[(h.batches.len(), PID, true)]);
    assert_eq!(offset_of(&c, "g", "t", 0, true), (-1, None));
}
