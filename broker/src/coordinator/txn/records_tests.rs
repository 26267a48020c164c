//! Golden bytes derived by hand from Kafka's `TransactionLog{Key,Value}.json`, round trips,
//! and garbage that must decode to an error rather than a panic.

use proptest::prelude::*;

use super::*;

fn ongoing() -> TxnLogValue {
    TxnLogValue {
        producer_id: 0x0102,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: 3,
        transaction_timeout_ms: 60_000,
        state: TxnState::Ongoing,
        partitions: [("t".to_owned(), 0), ("t".to_owned(), 2)].into(),
        last_update_timestamp_ms: 0x10,
        start_timestamp_ms: 0x20,
        client_transaction_version: TransactionVersion::TV_0,
    }
}

#[test]
fn key_golden_bytes() {
    // version 0 | transactionalId: int16 length 2, "tx"
    let expected = [0, 0, 0, 2, b't', b'x'];
    assert_eq!(encode_key("tx").as_ref(), expected);
    assert_eq!(decode_key(&expected), Ok(Some("tx".to_owned())));
}

#[test]
fn keys_of_unknown_versions_are_skipped_not_errors() {
    assert_eq!(decode_key(&[0, 1, 0, 2, b't', b'x']), Ok(None));
    assert!(matches!(
        decode_key(&[0, 0, 0, 9, b't']),
        Err(RecordError::Codec(CodecError::InvalidLength {
            length: 9,
            ..
        }))
    ));
}

#[test]
fn value_v0_golden_bytes() {
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        0, 0,                               // version 0
        0, 0, 0, 0, 0, 0, 1, 2,             // producerId
        0, 3,                               // producerEpoch
        0, 0, 0xea, 0x60,                   // transactionTimeoutMs 60000
        1,                                  // transactionStatus Ongoing
        0, 0, 0, 1,                         // transactionPartitions: 1 topic
        0, 1, b't',                         //   topic "t"
        0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, //   partitionIds [0, 2]
        0, 0, 0, 0, 0, 0, 0, 0x10,          // transactionLastUpdateTimestampMs
        0, 0, 0, 0, 0, 0, 0, 0x20,          // transactionStartTimestampMs
    ];
    assert_eq!(encode_value(&ongoing(), 0).as_ref(), expected.as_slice());
    assert_eq!(decode_value(&expected), Ok(ongoing()));
}

#[test]
fn value_v1_golden_bytes_with_tagged_fields() {
    let value = TxnLogValue {
        previous_producer_id: 5,
        client_transaction_version: TransactionVersion::TV_2,
        ..ongoing()
    };
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        0, 1,                               // version 1 (flexible)
        0, 0, 0, 0, 0, 0, 1, 2,             // producerId
        0, 3,                               // producerEpoch
        0, 0, 0xea, 0x60,                   // transactionTimeoutMs
        1,                                  // transactionStatus Ongoing
        2,                                  // compact array: 1 topic
        2, b't',                            //   compact string "t"
        3, 0, 0, 0, 0, 0, 0, 0, 2,          //   compact array [0, 2]
        0,                                  //   no tagged fields
        0, 0, 0, 0, 0, 0, 0, 0x10,          // transactionLastUpdateTimestampMs
        0, 0, 0, 0, 0, 0, 0, 0x20,          // transactionStartTimestampMs
        2,                                  // 2 tagged fields (NextProducerId is default)
        0, 8, 0, 0, 0, 0, 0, 0, 0, 5,       //   tag 0 PreviousProducerId = 5
        2, 2, 0, 2,                         //   tag 2 ClientTransactionVersion = 2
    ];
    assert_eq!(encode_value(&value, 1).as_ref(), expected.as_slice());
    assert_eq!(decode_value(&expected), Ok(value));
}

#[test]
fn empty_state_is_written_with_null_partitions() {
    let value = TxnLogValue {
        state: TxnState::Empty,
        partitions: Default::default(),
        start_timestamp_ms: -1,
        ..ongoing()
    };
    let v0 = encode_value(&value, 0);
    assert_eq!(
        &v0[17..21],
        &[0xff, 0xff, 0xff, 0xff],
        "int32 -1 = null array"
    );
    assert_eq!(decode_value(&v0), Ok(value.clone()));
    let v1 = encode_value(&value, 1);
    assert_eq!(v1[17], 0, "compact null array");
    assert_eq!(decode_value(&v1), Ok(value));
}

#[test]
fn unknown_tagged_fields_are_skipped() {
    let mut bytes = encode_value(&ongoing(), 1).to_vec();
    let last = bytes.len() - 1;
    assert_eq!(bytes[last], 0, "no tagged fields yet");
    bytes.truncate(last);
    bytes.extend_from_slice(&[1, 9, 3, 0xaa, 0xbb, 0xcc]);
    assert_eq!(decode_value(&bytes), Ok(ongoing()));
}

#[test]
fn bad_values_are_typed_errors() {
    let mut bytes = encode_value(&ongoing(), 0).to_vec();
    bytes[1] = 2;
    assert_eq!(
        decode_value(&bytes),
        Err(RecordError::Codec(CodecError::UnsupportedVersion {
            what: "transaction log value",
            version: 2
        }))
    );
    let mut bytes = encode_value(&ongoing(), 0).to_vec();
    bytes[16] = 8;
    assert_eq!(
        decode_value(&bytes),
        Err(RecordError::UnknownStatus { status: 8 })
    );
    let bytes = encode_value(&ongoing(), 0);
    for len in 0..bytes.len() {
        assert!(
            decode_value(&bytes[..len]).is_err(),
            "a value cut at byte {len} must not decode"
        );
    }
    // An array count far beyond the record is refused without allocating for it.
    let mut bytes = encode_value(&ongoing(), 0).to_vec();
    bytes[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(matches!(
        decode_value(&bytes),
        Err(RecordError::Codec(CodecError::InvalidLength { .. }))
    ));
}

fn state() -> impl Strategy<Value = TxnState> {
    prop::sample::select(TxnState::ALL.to_vec())
}

prop_compose! {
    fn value()(
        producer_id in any::<i64>(),
        previous_producer_id in any::<i64>(),
        next_producer_id in any::<i64>(),
        producer_epoch in any::<i16>(),
        transaction_timeout_ms in any::<i32>(),
        state in state(),
        partitions in prop::collection::btree_set(("[a-z._-]{1,12}", 0..1000i32), 0..8),
        last_update_timestamp_ms in any::<i64>(),
        start_timestamp_ms in any::<i64>(),
        tv in 0..3i16,
    ) -> TxnLogValue {
        TxnLogValue {
            producer_id,
            previous_producer_id,
            next_producer_id,
            producer_epoch,
            transaction_timeout_ms,
            state,
            partitions: if state == TxnState::Empty { Default::default() } else { partitions },
            last_update_timestamp_ms,
            start_timestamp_ms,
            client_transaction_version: TransactionVersion(tv),
        }
    }
}

proptest! {
    #[test]
    fn v1_values_round_trip(value in value()) {
        prop_assert_eq!(decode_value(&encode_value(&value, 1)), Ok(value));
    }

    #[test]
    fn v0_values_round_trip_without_the_tagged_fields(value in value()) {
        let expected = TxnLogValue {
            previous_producer_id: -1,
            next_producer_id: -1,
            client_transaction_version: TransactionVersion::TV_0,
            ..value.clone()
        };
        prop_assert_eq!(decode_value(&encode_value(&value, 0)), Ok(expected));
    }

    #[test]
    fn keys_round_trip(id in "\\PC{0,40}") {
        prop_assert_eq!(decode_key(&encode_key(&id)), Ok(Some(id)));
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_value(&bytes);
        let _ = decode_key(&bytes);
    }

    #[test]
    fn corrupted_values_never_panic(value in value(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = encode_value(&value, 1).to_vec();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = decode_value(&bytes);
    }
}
