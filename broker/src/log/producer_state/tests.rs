//! The producer state machine without I/O: duplicates, gaps, fencing, epochs, wraparound,
//! expiry, and the snapshot bytes.

use super::*;

const PID: i64 = 7000;
const T0: i64 = 1_700_000_000_000;

/// A non-transactional batch of `count` records from `PID`, written at `first_offset`.
fn batch(epoch: i16, first_seq: i32, count: i32, first_offset: u64, ts: i64) -> ProducerBatch {
    ProducerBatch {
        producer_id: PID,
        epoch,
        first_seq,
        last_seq: increment_sequence(first_seq, count - 1),
        first_offset: Offset(first_offset),
        last_offset: Offset(first_offset + count as u64 - 1),
        max_timestamp: ts,
        transactional: false,
        control: false,
    }
}

/// Checks `b` as the leader would and applies it when it may be appended.
fn append(
    state: &mut ProducerState,
    b: ProducerBatch,
) -> Result<Option<BatchMetadata>, ProducerError> {
    let outcome = state.check_leader_append(&b, AppendOrigin::Client)?;
    if outcome.is_none() {
        state.apply(&b);
    }
    Ok(outcome)
}

/// Seven 3-record batches (sequences 0..21) spread over offsets 100, 110, 120, ...
fn seven_batches() -> (ProducerState, Vec<ProducerBatch>) {
    let mut state = ProducerState::new(Offset(100));
    let batches: Vec<ProducerBatch> = (0..7)
        .map(|i| batch(0, i * 3, 3, 100 + 10 * i as u64, T0 + i as i64))
        .collect();
    for b in &batches {
        assert_eq!(append(&mut state, *b), Ok(None));
    }
    (state, batches)
}

#[test]
fn a_retry_of_each_of_the_last_five_batches_is_a_duplicate_with_its_original_offsets() {
    let (state, batches) = seven_batches();
    assert_eq!(
        state.get(PID).unwrap().batches().len(),
        NUM_BATCHES_TO_RETAIN
    );
    for original in &batches[2..] {
        // The retry arrives with the same sequences; the leader has not assigned offsets.
        let retry = ProducerBatch {
            first_offset: Offset(0),
            last_offset: Offset(2),
            ..*original
        };
        let found = state
            .check_leader_append(&retry, AppendOrigin::Client)
            .unwrap()
            .expect("duplicate");
        assert_eq!(found.first_offset(), original.first_offset);
        assert_eq!(found.last_offset, original.last_offset);
        assert_eq!(
            (found.first_seq(), found.last_seq),
            (original.first_seq, original.last_seq)
        );
        assert_eq!(found.timestamp, original.max_timestamp);
    }
    // Older retries are no longer recognised: they are out of order, as in Kafka.
    for forgotten in &batches[..2] {
        assert!(matches!(
            state.check_leader_append(forgotten, AppendOrigin::Client),
            Err(ProducerError::OutOfOrderSequence { last_seq: 20, .. })
        ));
    }
}

#[test]
fn a_retry_that_only_overlaps_a_written_batch_is_out_of_order() {
    let (state, _) = seven_batches();
    // 18..=20 was written; 18..=19 and 19..=21 are not the same batch.
    for (first, count) in [(18, 2), (19, 3), (15, 6)] {
        let err = state
            .check_leader_append(&batch(0, first, count, 0, T0), AppendOrigin::Client)
            .unwrap_err();
        assert_eq!(
            err,
            ProducerError::OutOfOrderSequence {
                producer_id: PID,
                epoch: 0,
                first_seq: first,
                last_seq: 20
            }
        );
    }
}

#[test]
fn a_gap_in_the_sequence_is_out_of_order_and_the_next_sequence_is_accepted() {
    let (mut state, _) = seven_batches();
    let err = append(&mut state, batch(0, 22, 1, 200, T0)).unwrap_err();
    assert!(matches!(
        err,
        ProducerError::OutOfOrderSequence {
            first_seq: 22,
            last_seq: 20,
            ..
        }
    ));
    assert_eq!(
        state.get(PID).unwrap().last_seq(),
        20,
        "refused batch changed nothing"
    );
    assert_eq!(append(&mut state, batch(0, 21, 1, 200, T0)), Ok(None));
    assert_eq!(state.get(PID).unwrap().last_seq(), 21);
    assert_eq!(state.end_offset(), Offset(201));
}

#[test]
fn an_older_epoch_is_fenced_even_when_its_sequences_match() {
    let mut state = ProducerState::new(Offset::ZERO);
    append(&mut state, batch(3, 0, 2, 0, T0)).unwrap();
    for b in [
        batch(2, 0, 2, 0, T0),
        batch(2, 2, 1, 0, T0),
        batch(0, 0, 1, 0, T0),
    ] {
        assert_eq!(
            state.check_leader_append(&b, AppendOrigin::Client),
            Err(ProducerError::InvalidProducerEpoch {
                producer_id: PID,
                epoch: b.epoch,
                current_epoch: 3
            })
        );
    }
}

#[test]
fn a_new_epoch_starts_at_sequence_zero_and_forgets_the_old_epochs_batches() {
    let mut state = ProducerState::new(Offset::ZERO);
    append(&mut state, batch(0, 0, 5, 0, T0)).unwrap();
    assert_eq!(
        append(&mut state, batch(1, 5, 1, 5, T0)),
        Err(ProducerError::NewEpochNotAtZero {
            producer_id: PID,
            epoch: 1,
            current_epoch: 0,
            first_seq: 5
        })
    );
    assert_eq!(append(&mut state, batch(1, 0, 2, 5, T0)), Ok(None));
    let entry = state.get(PID).unwrap();
    assert_eq!(entry.epoch, 1);
    assert_eq!(entry.batches().len(), 1, "epoch 0's batches are gone");
    // The old epoch's batch is now fenced, not a duplicate.
    assert!(matches!(
        state.check_leader_append(&batch(0, 0, 5, 0, T0), AppendOrigin::Client),
        Err(ProducerError::InvalidProducerEpoch { .. })
    ));
    // Within the new epoch sequences continue from the new batch.
    assert_eq!(append(&mut state, batch(1, 2, 1, 7, T0)), Ok(None));
}

#[test]
fn sequences_wrap_from_i32_max_to_zero() {
    let mut state = ProducerState::new(Offset::ZERO);
    let wrapping = batch(0, i32::MAX - 1, 3, 0, T0);
    assert_eq!(wrapping.last_seq, 0, "MAX-1, MAX, 0");
    append(&mut state, wrapping).unwrap();
    assert_eq!(
        state
            .check_leader_append(&wrapping, AppendOrigin::Client)
            .unwrap()
            .map(|b| b.first_offset()),
        Some(Offset(0)),
        "a wrapped batch is recognised as a duplicate"
    );
    assert_eq!(append(&mut state, batch(0, 1, 1, 3, T0)), Ok(None));

    let mut state = ProducerState::new(Offset::ZERO);
    append(&mut state, batch(0, i32::MAX - 2, 3, 0, T0)).unwrap();
    assert_eq!(state.get(PID).unwrap().last_seq(), i32::MAX);
    assert!(matches!(
        state.check_leader_append(&batch(0, 1, 1, 3, T0), AppendOrigin::Client),
        Err(ProducerError::OutOfOrderSequence { .. })
    ));
    assert_eq!(
        append(&mut state, batch(0, 0, 1, 3, T0)),
        Ok(None),
        "MAX is followed by 0"
    );
}

#[test]
fn sequence_arithmetic_matches_kafkas() {
    assert_eq!(increment_sequence(5, 3), 8);
    assert_eq!(increment_sequence(i32::MAX, 1), 0);
    assert_eq!(increment_sequence(i32::MAX - 1, 4), 2);
    assert_eq!(decrement_sequence(2, 4), i32::MAX - 1);
    assert_eq!(decrement_sequence(8, 3), 5);
    assert_eq!(decrement_sequence(0, 1), i32::MAX);
}

#[test]
fn an_unknown_producer_may_start_at_any_sequence() {
    let mut state = ProducerState::new(Offset::ZERO);
    assert_eq!(append(&mut state, batch(4, 4242, 2, 0, T0)), Ok(None));
    assert_eq!(append(&mut state, batch(4, 4244, 1, 2, T0)), Ok(None));
    assert!(append(&mut state, batch(4, 4246, 1, 3, T0)).is_err());
}

#[test]
fn producers_idle_for_the_expiration_are_forgotten_unless_a_transaction_is_open() {
    let mut state = ProducerState::new(Offset::ZERO);
    let expiration = DEFAULT_PRODUCER_ID_EXPIRATION_MS;
    state.apply(&batch(0, 0, 1, 0, T0));
    state.apply(&ProducerBatch {
        producer_id: PID + 1,
        ..batch(0, 0, 1, 1, T0 + 1000)
    });
    state.apply(&ProducerBatch {
        producer_id: PID + 2,
        transactional: true,
        ..batch(0, 0, 1, 2, T0)
    });
    assert_eq!(state.remove_expired(T0 + expiration - 1, expiration), 0);
    assert_eq!(state.remove_expired(T0 + expiration, expiration), 1);
    assert_eq!(
        state.producer_ids().collect::<Vec<_>>(),
        vec![PID + 1, PID + 2]
    );
    // The forgotten producer is unknown again: it may continue at any sequence.
    assert_eq!(
        state.check_leader_append(&batch(0, 77, 1, 3, T0), AppendOrigin::Client),
        Ok(None)
    );
    // A transaction marker closes the transaction; then that producer can expire too.
    state.apply_marker(PID + 2, 0, 0, ControlType::Commit, Offset(3), T0);
    assert_eq!(state.get(PID + 2).unwrap().current_txn_first_offset, None);
    assert_eq!(state.remove_expired(T0 + 2 * expiration, expiration), 2);
    assert!(state.is_empty());
}

#[test]
fn replicated_batches_update_the_state_without_checks() {
    let mut state = ProducerState::new(Offset::ZERO);
    state.apply(&batch(5, 10, 1, 0, T0));
    state.apply(&batch(5, 40, 1, 1, T0)); // a gap the leader accepted for its own reasons
    state.apply(&batch(2, 0, 1, 2, T0)); // an older epoch: replicas follow the leader
    let entry = state.get(PID).unwrap();
    assert_eq!((entry.epoch, entry.last_seq()), (2, 0));
    assert_eq!(state.end_offset(), Offset(3));
}

#[test]
fn batch_headers_give_the_producer_fields_with_wrapped_last_sequence() {
    let header = crate::log::batch::BatchHeader {
        base_offset: 40,
        batch_length: 100,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: 1 << 4,
        last_offset_delta: 2,
        base_timestamp: T0,
        max_timestamp: T0 + 5,
        producer_id: PID,
        producer_epoch: 3,
        base_sequence: i32::MAX,
        records_count: 3,
    };
    let b = ProducerBatch::from_header(&header).unwrap();
    assert_eq!((b.first_seq, b.last_seq), (i32::MAX, 1));
    assert_eq!((b.first_offset, b.last_offset), (Offset(40), Offset(42)));
    assert!(b.transactional && !b.control);
    assert_eq!(b.max_timestamp, T0 + 5);
    let plain = crate::log::batch::BatchHeader {
        producer_id: -1,
        ..header
    };
    assert_eq!(ProducerBatch::from_header(&plain), None);
}

#[test]
fn a_snapshot_keeps_each_producers_epoch_last_batch_and_transaction() {
    let (mut state, _) = seven_batches();
    state.apply(&ProducerBatch {
        producer_id: 3,
        transactional: true,
        ..batch(9, 0, 4, 170, T0 + 50)
    });
    state.set_end_offset(Offset(400));
    let bytes = state.encode_snapshot();
    assert_eq!(bytes.len(), 10 + 2 * 46);
    let back = ProducerState::decode_snapshot(&bytes, Offset(400)).unwrap();
    assert_eq!(back.end_offset(), Offset(400));
    assert_eq!(back.producer_ids().collect::<Vec<_>>(), vec![3, PID]);
    let entry = back.get(PID).unwrap();
    assert_eq!(entry.epoch, 0);
    let last: Vec<BatchMetadata> = entry.batches().copied().collect();
    assert_eq!(
        last,
        vec![*state.get(PID).unwrap().batches().last().unwrap()]
    );
    assert_eq!(entry.last_timestamp, T0 + 6);
    let txn = back.get(3).unwrap();
    assert_eq!(txn.current_txn_first_offset, Some(Offset(170)));
    assert_eq!((txn.epoch, txn.last_seq()), (9, 3));
    // The retained batch still catches a retry of the last batch after a reload.
    assert!(
        back.check_leader_append(&batch(0, 18, 3, 0, T0), AppendOrigin::Client)
            .unwrap()
            .is_some()
    );
}

#[test]
fn snapshot_bytes_follow_kafkas_producer_snapshot_schema() {
    let mut state = ProducerState::new(Offset::ZERO);
    state.apply(&ProducerBatch {
        producer_id: 0x0102_0304_0506_0708,
        ..batch(0x0a0b, 0x10, 3, 0x20, 0x30)
    });
    let mut body = vec![0, 0, 0, 1]; // one entry
    body.extend_from_slice(&0x0102_0304_0506_0708i64.to_be_bytes()); // producer id
    body.extend_from_slice(&[0x0a, 0x0b]); // epoch
    body.extend_from_slice(&[0, 0, 0, 0x12]); // last sequence 0x10 + 2
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x22]); // last offset 0x20 + 2
    body.extend_from_slice(&[0, 0, 0, 2]); // offset delta
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x30]); // timestamp
    body.extend_from_slice(&[0xff; 4]); // coordinator epoch -1
    body.extend_from_slice(&[0xff; 8]); // no open transaction
    let mut want = vec![0, 1]; // version 1
    want.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    want.extend_from_slice(&body);
    assert_eq!(state.encode_snapshot(), want);

    let empty = ProducerState::new(Offset(5)).encode_snapshot();
    assert_eq!(empty[..2], [0, 1]);
    assert_eq!(empty[6..], [0, 0, 0, 0]);
    assert_eq!(empty[2..6], crc32c::crc32c(&[0, 0, 0, 0]).to_be_bytes());
}

#[test]
fn damaged_snapshots_are_refused() {
    let (state, _) = seven_batches();
    let good = state.encode_snapshot();
    assert!(ProducerState::decode_snapshot(&good, Offset(200)).is_ok());
    let mut flipped = good.clone();
    flipped[20] ^= 1;
    let mut wrong_version = good.clone();
    wrong_version[1] = 2;
    let mut extra = good.clone();
    extra.push(0);
    for (bytes, reason) in [
        (&flipped[..], "CRC-32C mismatch"),
        (&good[..good.len() - 1], "CRC-32C mismatch"),
        (&good[..4], "shorter than its header"),
        (&wrong_version[..], "unknown version"),
        (&extra[..], "CRC-32C mismatch"),
    ] {
        assert_eq!(
            ProducerState::decode_snapshot(bytes, Offset(200)),
            Err(ProducerError::CorruptSnapshot { reason })
        );
    }
}

// Transactions.

/// A transactional batch of `count` records from `pid` at `first_offset`.
fn txn_batch(pid: i64, epoch: i16, first_seq: i32, count: i32, first_offset: u64) -> ProducerBatch {
    ProducerBatch {
        producer_id: pid,
        transactional: true,
        ..batch(epoch, first_seq, count, first_offset, T0)
    }
}

#[test]
fn a_transactional_batch_opens_a_transaction_at_its_first_offset_and_later_ones_do_not_move_it() {
    let mut state = ProducerState::new(Offset::ZERO);
    assert_eq!(append(&mut state, txn_batch(PID, 0, 0, 2, 0)), Ok(None));
    assert_eq!(append(&mut state, txn_batch(PID, 0, 2, 2, 2)), Ok(None));
    assert_eq!(
        state.get(PID).unwrap().current_txn_first_offset,
        Some(Offset(0))
    );
    assert_eq!(
        state.ongoing_transactions().collect::<Vec<_>>(),
        vec![(PID, Offset(0))]
    );
    assert_eq!(state.first_unstable_offset(), Some(Offset(0)));
}

#[test]
fn a_non_transactional_batch_while_a_transaction_is_open_is_invalid_txn_state() {
    let mut state = ProducerState::new(Offset::ZERO);
    append(&mut state, txn_batch(PID, 0, 0, 1, 0)).unwrap();
    assert_eq!(
        state.check_leader_append(&batch(0, 1, 1, 1, T0), AppendOrigin::Client),
        Err(ProducerError::InvalidTxnState {
            producer_id: PID,
            txn_first_offset: Offset(0),
        })
    );
    // After the marker the same batch is fine.
    state.apply_marker(PID, 0, 0, ControlType::Commit, Offset(1), T0);
    assert_eq!(
        state.check_leader_append(&batch(0, 1, 1, 2, T0), AppendOrigin::Client),
        Ok(None)
    );
}

#[test]
fn markers_complete_transactions_and_report_the_lso_after_them() {
    let mut state = ProducerState::new(Offset::ZERO);
    append(&mut state, txn_batch(PID, 0, 0, 2, 0)).unwrap(); // 0..=1
    append(&mut state, txn_batch(PID + 1, 0, 0, 2, 2)).unwrap(); // 2..=3
    let done = state
        .apply_marker(PID, 0, 5, ControlType::Abort, Offset(4), T0)
        .unwrap();
    assert_eq!(
        done,
        CompletedTxn {
            producer_id: PID,
            first_offset: Offset(0),
            last_offset: Offset(4),
            aborted: true,
            last_stable_offset: Offset(2),
        }
    );
    assert_eq!(state.get(PID).unwrap().coordinator_epoch, 5);
    assert_eq!(state.get(PID).unwrap().current_txn_first_offset, None);
    // The completed transaction holds the first unstable offset until the HW passes its marker.
    assert_eq!(state.first_unstable_offset(), Some(Offset(0)));
    state.on_high_watermark(Offset(4));
    assert_eq!(state.first_unstable_offset(), Some(Offset(0)));
    state.on_high_watermark(Offset(5));
    assert_eq!(state.first_unstable_offset(), Some(Offset(2)));
    let done = state
        .apply_marker(PID + 1, 0, 5, ControlType::Commit, Offset(5), T0)
        .unwrap();
    assert!(!done.aborted);
    assert_eq!(done.last_stable_offset, Offset(6));
    state.on_high_watermark(Offset(6));
    assert_eq!(state.first_unstable_offset(), None);
    // A marker for a producer with no transaction open completes nothing.
    assert_eq!(
        state.apply_marker(PID, 0, 5, ControlType::Commit, Offset(6), T0),
        None
    );
    assert_eq!(state.end_offset(), Offset(7));
}

#[test]
fn a_marker_with_a_stale_producer_epoch_is_fenced() {
    let mut state = ProducerState::new(Offset::ZERO);
    append(&mut state, txn_batch(PID, 3, 0, 1, 0)).unwrap();
    assert_eq!(
        state.check_marker(PID, 2, 0),
        Err(ProducerError::InvalidProducerEpoch {
            producer_id: PID,
            epoch: 2,
            current_epoch: 3,
        })
    );
    assert_eq!(state.check_marker(PID, 3, 0), Ok(()));
    // KIP-890: the marker may carry the bumped epoch; the entry moves up and forgets batches.
    assert_eq!(state.check_marker(PID, 4, 0), Ok(()));
    state.apply_marker(PID, 4, 0, ControlType::Abort, Offset(1), T0);
    let entry = state.get(PID).unwrap();
    assert_eq!(entry.epoch, 4);
    assert_eq!(entry.batches().len(), 0);
    assert_eq!(
        state.check_marker(PID, 3, 0).unwrap_err(),
        ProducerError::InvalidProducerEpoch {
            producer_id: PID,
            epoch: 3,
            current_epoch: 4,
        }
    );
}

#[test]
fn a_marker_from_an_older_coordinator_epoch_is_coordinator_fenced() {
    let mut state = ProducerState::new(Offset::ZERO);
    append(&mut state, txn_batch(PID, 0, 0, 1, 0)).unwrap();
    state.apply_marker(PID, 0, 7, ControlType::Commit, Offset(1), T0);
    assert_eq!(
        state.check_marker(PID, 0, 6),
        Err(ProducerError::CoordinatorFenced {
            producer_id: PID,
            coordinator_epoch: 6,
            current_coordinator_epoch: 7,
        })
    );
    assert_eq!(state.check_marker(PID, 0, 7), Ok(()));
    assert_eq!(
        state.check_marker(PID + 1, 0, 0),
        Ok(()),
        "unknown producers pass"
    );
}

#[test]
fn coordinator_appends_skip_sequence_checks_but_not_epoch_checks() {
    let mut state = ProducerState::new(Offset::ZERO);
    let no_seq = |epoch, offset| ProducerBatch {
        first_seq: NO_SEQUENCE,
        last_seq: NO_SEQUENCE,
        ..txn_batch(PID, epoch, 0, 1, offset)
    };
    state.apply(&no_seq(2, 0));
    assert_eq!(
        state.check_leader_append(&no_seq(2, 1), AppendOrigin::Coordinator),
        Ok(None)
    );
    assert!(matches!(
        state.check_leader_append(&no_seq(2, 1), AppendOrigin::Client),
        Err(ProducerError::OutOfOrderSequence { .. })
    ));
    assert!(matches!(
        state.check_leader_append(&no_seq(1, 1), AppendOrigin::Coordinator),
        Err(ProducerError::InvalidProducerEpoch { .. })
    ));
}

#[test]
fn open_transactions_round_trip_through_a_snapshot() {
    let mut state = ProducerState::new(Offset::ZERO);
    append(&mut state, txn_batch(PID, 0, 0, 2, 0)).unwrap();
    append(&mut state, txn_batch(PID + 1, 1, 0, 1, 2)).unwrap();
    state.apply_marker(PID + 1, 1, 9, ControlType::Commit, Offset(3), T0);
    append(&mut state, txn_batch(PID + 1, 1, 1, 1, 4)).unwrap();
    let back =
        ProducerState::decode_snapshot(&state.encode_snapshot(), state.end_offset()).unwrap();
    assert_eq!(
        back.ongoing_transactions().collect::<Vec<_>>(),
        vec![(PID, Offset(0)), (PID + 1, Offset(4))]
    );
    assert_eq!(back.get(PID + 1).unwrap().coordinator_epoch, 9);
    assert_eq!(back.first_unstable_offset(), Some(Offset(0)));
}

#[test]
fn a_verified_first_transactional_batch_opens_the_transaction_and_uses_up_the_guard() {
    let mut state = ProducerState::new(Offset(0));
    let first = txn_batch(PID, 0, 0, 2, 0);
    let guard = state.start_verification(PID, T0).expect("nothing open yet");
    assert_eq!(
        state.start_verification(PID, T0 + 1),
        Some(guard),
        "a second request joins the verification in progress"
    );
    assert_eq!(
        state.check_verification(&first, TxnVerification::Required(Some(guard))),
        Ok(())
    );
    state.apply(&first);
    assert!(state.has_ongoing_transaction(PID));
    assert_eq!(state.verification_guard(PID), None);
    // Later writes to the open transaction need no verification.
    assert_eq!(state.start_verification(PID, T0 + 2), None);
    assert_eq!(
        state.check_verification(&txn_batch(PID, 0, 2, 1, 2), TxnVerification::Required(None)),
        Ok(())
    );
}

#[test]
fn an_unverified_transactional_batch_that_would_open_a_transaction_is_refused() {
    let mut state = ProducerState::new(Offset(0));
    let first = txn_batch(PID, 0, 0, 1, 0);
    assert!(matches!(
        state.check_verification(&first, TxnVerification::Required(None)),
        Err(ProducerError::NotVerified { producer_id: PID })
    ));
    let other = ProducerState::new(Offset(0)).start_verification(PID, T0);
    state.start_verification(PID, T0);
    assert!(
        matches!(
            state.check_verification(&first, TxnVerification::Required(other)),
            Err(ProducerError::NotVerified { .. })
        ),
        "another state's guard is never this one's"
    );
    assert_eq!(
        state.check_verification(&first, TxnVerification::Off),
        Ok(()),
        "verification disabled: the old behaviour"
    );
    let plain = batch(0, 0, 1, 0, T0);
    assert_eq!(
        state.check_verification(&plain, TxnVerification::Required(None)),
        Ok(()),
        "non-transactional batches are not verified"
    );
}

#[test]
fn a_marker_landing_between_verification_and_append_voids_the_guard() {
    let mut state = ProducerState::new(Offset(0));
    let guard = state.start_verification(PID, T0).expect("nothing open");
    // The coordinator aborted meanwhile: its marker reaches the partition first.
    state.apply_marker(PID, 0, 0, ControlType::Abort, Offset(0), T0);
    let late = txn_batch(PID, 0, 0, 1, 1);
    assert!(matches!(
        state.check_verification(&late, TxnVerification::Required(Some(guard))),
        Err(ProducerError::NotVerified { .. })
    ));
    // A new verification (the ABA case) gets a different guard; the stale one stays refused.
    let fresh = state.start_verification(PID, T0 + 1).expect("nothing open");
    assert_ne!(fresh, guard);
    assert!(matches!(
        state.check_verification(&late, TxnVerification::Required(Some(guard))),
        Err(ProducerError::NotVerified { .. })
    ));
    assert_eq!(
        state.check_verification(&late, TxnVerification::Required(Some(fresh))),
        Ok(())
    );
}

#[test]
fn a_marker_closing_the_transaction_makes_the_next_write_need_verification_again() {
    let mut state = ProducerState::new(Offset(0));
    let guard = state.start_verification(PID, T0);
    state.apply(&txn_batch(PID, 0, 0, 1, 0));
    state.apply_marker(PID, 0, 0, ControlType::Commit, Offset(1), T0);
    // A request that found the transaction open (no guard) but was appended after the marker.
    let late = txn_batch(PID, 0, 1, 1, 2);
    assert!(matches!(
        state.check_verification(&late, TxnVerification::Required(None)),
        Err(ProducerError::NotVerified { .. })
    ));
    assert!(matches!(
        state.check_verification(&late, TxnVerification::Required(guard)),
        Err(ProducerError::NotVerified { .. })
    ));
}

#[test]
fn verifications_expire_with_the_producer_id_expiration_and_are_not_in_snapshots() {
    let mut state = ProducerState::new(Offset(0));
    let guard = state.start_verification(PID, T0);
    assert!(guard.is_some());
    let decoded = ProducerState::decode_snapshot(&state.encode_snapshot(), Offset(0)).unwrap();
    assert_eq!(decoded.verification_guard(PID), None);
    state.remove_expired(T0 + 999, 1000);
    assert_eq!(state.verification_guard(PID), guard);
    state.remove_expired(T0 + 1000, 1000);
    assert_eq!(state.verification_guard(PID), None);
}
