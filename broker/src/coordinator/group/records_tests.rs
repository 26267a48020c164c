//! Golden bytes derived by hand from Kafka's JSON schemas, and encode → decode round trips.

use proptest::prelude::*;

use super::*;

#[test]
fn offset_commit_key_golden_bytes() {
    let key = RecordKey::OffsetCommit {
        group: "g1".to_owned(),
        topic: "t".to_owned(),
        partition: 7,
    };
    // version 1 | group: len 2 "g1" | topic: len 1 "t" | partition 7
    let expected = [0, 1, 0, 2, b'g', b'1', 0, 1, b't', 0, 0, 0, 7];
    assert_eq!(encode_key(&key).as_ref(), expected);
    assert_eq!(decode_key(&expected), Ok(Some(key.clone())));
    // Version 0 has the same layout.
    let mut v0 = expected;
    v0[1] = 0;
    assert_eq!(decode_key(&v0), Ok(Some(key)));
}

#[test]
fn group_metadata_key_golden_bytes() {
    let key = RecordKey::GroupMetadata {
        group: "grp".to_owned(),
    };
    let expected = [0, 2, 0, 3, b'g', b'r', b'p'];
    assert_eq!(encode_key(&key).as_ref(), expected);
    assert_eq!(decode_key(&expected), Ok(Some(key)));
}

#[test]
fn offset_commit_value_v3_golden_bytes() {
    let value = OffsetCommitValue {
        offset: 0x0102,
        leader_epoch: 5,
        metadata: "m".to_owned(),
        commit_timestamp: 0x0a0b,
        expire_timestamp: -1,
    };
    #[rustfmt::skip]
    let expected = [
        0, 3,                           // version
        0, 0, 0, 0, 0, 0, 0x01, 0x02,   // offset
        0, 0, 0, 5,                     // leaderEpoch
        0, 1, b'm',                     // metadata
        0, 0, 0, 0, 0, 0, 0x0a, 0x0b,   // commitTimestamp
    ];
    assert_eq!(encode_offset_commit_value(&value, 3).as_ref(), expected);
    assert_eq!(decode_offset_commit_value(&expected), Ok(value));
}

#[test]
fn offset_commit_value_v4_is_flexible() {
    let value = OffsetCommitValue {
        offset: 1,
        leader_epoch: -1,
        metadata: "ab".to_owned(),
        commit_timestamp: 2,
        expire_timestamp: -1,
    };
    #[rustfmt::skip]
    let mut expected = vec![
        0, 4,
        0, 0, 0, 0, 0, 0, 0, 1,
        0xff, 0xff, 0xff, 0xff,
        3, b'a', b'b',                  // compact string: length + 1
        0, 0, 0, 0, 0, 0, 0, 2,
        0,                              // no tagged fields
    ];
    assert_eq!(
        encode_offset_commit_value(&value, 4).as_ref(),
        expected.as_slice()
    );
    // A reader skips tagged fields it does not know (tag 0, 2 bytes).
    let last = expected.len() - 1;
    expected[last] = 1;
    expected.extend_from_slice(&[0, 2, 0xaa, 0xbb]);
    assert_eq!(decode_offset_commit_value(&expected), Ok(value));
}

#[test]
fn group_metadata_value_v3_golden_bytes() {
    let value = GroupMetadataValue {
        protocol_type: "consumer".to_owned(),
        generation: 2,
        protocol: Some("range".to_owned()),
        leader: None,
        current_state_timestamp: 9,
        members: vec![MemberMetadataValue {
            member_id: "m".to_owned(),
            group_instance_id: None,
            client_id: "c".to_owned(),
            client_host: "h".to_owned(),
            rebalance_timeout: 300,
            session_timeout: 45,
            subscription: Bytes::from_static(&[0xee]),
            assignment: Bytes::new(),
        }],
    };
    #[rustfmt::skip]
    let expected = [
        0, 3,
        0, 8, b'c', b'o', b'n', b's', b'u', b'm', b'e', b'r',
        0, 0, 0, 2,
        0, 5, b'r', b'a', b'n', b'g', b'e',
        0xff, 0xff,                     // leader: null
        0, 0, 0, 0, 0, 0, 0, 9,         // currentStateTimestamp
        0, 0, 0, 1,                     // one member
        0, 1, b'm',
        0xff, 0xff,                     // groupInstanceId: null
        0, 1, b'c',
        0, 1, b'h',
        0, 0, 0x01, 0x2c,               // rebalanceTimeout 300
        0, 0, 0, 45,
        0, 0, 0, 1, 0xee,               // subscription
        0, 0, 0, 0,                     // assignment: empty
    ];
    assert_eq!(encode_group_metadata_value(&value, 3).as_ref(), expected);
    assert_eq!(decode_group_metadata_value(&expected), Ok(value));
}

#[test]
fn unsupported_versions_and_nulls_are_refused() {
    let err = decode_offset_commit_value(&[0, 5, 0, 0]).unwrap_err();
    assert_eq!(
        err,
        RecordError::UnsupportedVersion {
            what: "OffsetCommitValue",
            version: 5
        }
    );
    // A null where the schema requires a string (protocolType).
    let err = decode_group_metadata_value(&[0, 3, 0xff, 0xff]).unwrap_err();
    assert!(
        matches!(err, RecordError::UnexpectedNull { at: 2, .. }),
        "{err}"
    );
    // A length past the end is refused as such, before anything is read or allocated for it.
    let err = decode_key(&[0, 2, 0, 5, b'a']).unwrap_err();
    assert!(
        matches!(
            err,
            RecordError::InvalidLength {
                length: 5,
                at: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = decode_key(&[0, 2, 0]).unwrap_err();
    assert!(matches!(err, RecordError::Truncated { .. }), "{err}");
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._é😀-]{0,12}"
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn blob() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

fn member() -> impl Strategy<Value = MemberMetadataValue> {
    (
        text(),
        opt_text(),
        text(),
        text(),
        any::<i32>(),
        any::<i32>(),
        blob(),
        blob(),
    )
        .prop_map(
            |(
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                subscription,
                assignment,
            )| {
                MemberMetadataValue {
                    member_id,
                    group_instance_id,
                    client_id,
                    client_host,
                    rebalance_timeout,
                    session_timeout,
                    subscription,
                    assignment,
                }
            },
        )
}

fn group_value() -> impl Strategy<Value = GroupMetadataValue> {
    (
        text(),
        any::<i32>(),
        opt_text(),
        opt_text(),
        any::<i64>(),
        proptest::collection::vec(member(), 0..4),
    )
        .prop_map(
            |(protocol_type, generation, protocol, leader, current_state_timestamp, members)| {
                GroupMetadataValue {
                    protocol_type,
                    generation,
                    protocol,
                    leader,
                    current_state_timestamp,
                    members,
                }
            },
        )
}

/// `value` as a reader of `version` sees it: fields the version lacks take their defaults.
fn as_of_group_version(mut value: GroupMetadataValue, version: i16) -> GroupMetadataValue {
    if version < 2 {
        value.current_state_timestamp = -1;
    }
    for member in &mut value.members {
        if version < 3 {
            member.group_instance_id = None;
        }
        if version < 1 {
            member.rebalance_timeout = -1;
        }
    }
    value
}

proptest! {
    #[test]
    fn keys_round_trip(group in text(), topic in text(), partition in any::<i32>(), offset_key in any::<bool>()) {
        let key = if offset_key {
            RecordKey::OffsetCommit { group, topic, partition }
        } else {
            RecordKey::GroupMetadata { group }
        };
        prop_assert_eq!(decode_key(&encode_key(&key)), Ok(Some(key)));
    }

    #[test]
    fn offset_commit_values_round_trip_in_every_version(
        offset in any::<i64>(),
        leader_epoch in any::<i32>(),
        metadata in text(),
        commit_timestamp in any::<i64>(),
        expire_timestamp in any::<i64>(),
        version in 0i16..=4,
    ) {
        let value = OffsetCommitValue { offset, leader_epoch, metadata, commit_timestamp, expire_timestamp };
        let mut expected = value.clone();
        if version < 3 {
            expected.leader_epoch = -1;
        }
        if version != 1 {
            expected.expire_timestamp = -1;
        }
        let encoded = encode_offset_commit_value(&value, version);
        prop_assert_eq!(decode_offset_commit_value(&encoded), Ok(expected));
    }

    #[test]
    fn group_metadata_values_round_trip_in_every_version(value in group_value(), version in 0i16..=4) {
        let encoded = encode_group_metadata_value(&value, version);
        prop_assert_eq!(decode_group_metadata_value(&encoded), Ok(as_of_group_version(value, version)));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_key(&bytes);
        let _ = decode_offset_commit_value(&bytes);
        let _ = decode_group_metadata_value(&bytes);
    }
}

#[test]
fn records_written_by_the_coordinator_decode() {
    let group = GroupId::from("g");
    let tp = TopicPartition::new("t", 3);
    let offset = OffsetAndMetadata {
        offset: 10,
        leader_epoch: Some(2),
        metadata: "x".to_owned(),
        commit_timestamp: 100,
        expire_timestamp: None,
    };
    let record = offset_commit_record(&group, &tp, &offset);
    assert_eq!(record.key[..2], [0, 1], "key version 1");
    let value = record.value.expect("value");
    assert_eq!(value[..2], [0, 3], "value version 3");
    assert_eq!(
        decode_offset_commit_value(&value).map(|v| v.leader_epoch),
        Ok(2)
    );
    let tombstone = offset_tombstone(&group, &tp);
    assert_eq!(tombstone.key, record.key);
    assert_eq!(tombstone.value, None);
    let group_record = group_tombstone(&group);
    assert_eq!(
        decode_key(&group_record.key),
        Ok(Some(RecordKey::GroupMetadata {
            group: "g".to_owned()
        }))
    );
}

#[test]
fn subscription_topics_reads_the_version_0_prefix_of_any_version() {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(vec![
            StrBytes::from_static_str("a"),
            StrBytes::from_static_str("b"),
        ])
        .with_generation_id(7)
        .with_rack_id(Some(StrBytes::from_static_str("rack-1")));
    let mut bytes = vec![0, 3];
    subscription.encode(&mut bytes, 3).unwrap();
    assert_eq!(
        subscription_topics(&bytes),
        Some(vec!["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(
        subscription_topics(&crate::coordinator::group::wire::consumer_subscription(&[
            "t"
        ])),
        Some(vec!["t".to_owned()])
    );
}

#[test]
fn subscription_topics_refuses_garbage_without_trusting_its_lengths() {
    // Claims 2^31-1 topics in a handful of bytes.
    assert_eq!(
        subscription_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1]),
        None
    );
    assert_eq!(subscription_topics(b"owned: none"), None);
    assert_eq!(subscription_topics(&[]), None);
    // Missing user data is malformed too.
    assert_eq!(subscription_topics(&[0, 0, 0, 0, 0, 0]), None);
}
