//! Validation of producer batches and the header rewrite that assigns offsets.

mod common;

use common::{Rec, batch, batch_with, decode};
use kafka_protocol::records::Compression;
use proptest::prelude::*;
use weir_broker::log::batch::{BatchError, BatchHeader, check_batch, validate_client_batch};

/// Re-stamps the CRC after a test edits CRC-covered bytes, so the edit itself is what fails.
fn fix_crc(buf: &mut [u8]) {
    let crc = crc32c::crc32c(&buf[21..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn three() -> Vec<u8> {
    batch(&[Rec::new("a", 10), Rec::new("bb", 11), Rec::new("ccc", 12)])
}

#[test]
fn batches_from_an_independent_encoder_validate_with_every_codec() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let b = batch_with(&[Rec::new("x", 1), Rec::new("y", 2)], codec);
        let checked = validate_client_batch(&b).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
        assert_eq!(checked.header.records_count, 2);
        assert_eq!(checked.header.last_offset_delta, 1);
        assert_eq!(checked.header.max_timestamp, 2);
    }
}

#[test]
fn a_flipped_bit_anywhere_under_the_crc_is_refused() {
    let good = three();
    for at in 21..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        assert!(
            matches!(
                validate_client_batch(&bad),
                Err(BatchError::CorruptCrc { .. })
            ),
            "flip at byte {at} accepted"
        );
    }
}

#[test]
fn lying_lengths_are_refused() {
    let good = three();
    let short = &good[..good.len() - 1];
    assert!(matches!(
        validate_client_batch(short),
        Err(BatchError::Truncated { .. })
    ));
    assert!(matches!(
        validate_client_batch(&good[..40]),
        Err(BatchError::Truncated { .. })
    ));
    let mut long = good.clone();
    long.extend_from_slice(&[0; 7]);
    assert_eq!(
        validate_client_batch(&long).unwrap_err(),
        BatchError::LengthMismatch {
            declared: good.len(),
            actual: good.len() + 7
        }
    );
    let mut tiny = good.clone();
    tiny[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert!(matches!(
        validate_client_batch(&tiny),
        Err(BatchError::LengthTooSmall { .. })
    ));
    let mut negative = good.clone();
    negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(matches!(
        validate_client_batch(&negative),
        Err(BatchError::LengthTooSmall { .. })
    ));
}

#[test]
fn record_lengths_that_do_not_add_up_are_refused() {
    let good = three();
    // The first record's length varint is the first byte after the 61-byte header.
    let mut bad = good.clone();
    bad[61] += 2; // zig-zag: +1 in value
    fix_crc(&mut bad);
    assert!(matches!(
        validate_client_batch(&bad),
        Err(BatchError::RecordFraming { .. })
    ));
    let mut count = good.clone();
    count[57..61].copy_from_slice(&4i32.to_be_bytes());
    count[23..27].copy_from_slice(&3i32.to_be_bytes());
    fix_crc(&mut count);
    assert!(matches!(
        validate_client_batch(&count),
        Err(BatchError::RecordFraming { .. })
    ));
}

#[test]
fn header_rules_match_kafkas_validator() {
    let good = three();
    let mut magic = good.clone();
    magic[16] = 1;
    assert_eq!(
        validate_client_batch(&magic).unwrap_err(),
        BatchError::UnsupportedMagic { magic: 1 }
    );

    let mut count = good.clone();
    count[57..61].copy_from_slice(&2i32.to_be_bytes());
    fix_crc(&mut count);
    assert!(matches!(
        validate_client_batch(&count),
        Err(BatchError::InvalidRecordCount { count: 2, .. })
    ));

    let mut base = good.clone();
    base[0..8].copy_from_slice(&5i64.to_be_bytes());
    assert_eq!(
        validate_client_batch(&base).unwrap_err(),
        BatchError::NonZeroBaseOffset { base_offset: 5 }
    );

    let mut control = good.clone();
    control[22] |= 1 << 5;
    fix_crc(&mut control);
    assert_eq!(
        validate_client_batch(&control).unwrap_err(),
        BatchError::ControlBatchFromClient
    );

    let mut append_time = good.clone();
    append_time[22] |= 1 << 3;
    fix_crc(&mut append_time);
    assert_eq!(
        validate_client_batch(&append_time).unwrap_err(),
        BatchError::LogAppendTimeFromClient
    );

    let mut codec = good.clone();
    codec[22] |= 7;
    fix_crc(&mut codec);
    assert_eq!(
        validate_client_batch(&codec).unwrap_err(),
        BatchError::UnknownCompression { codec: 7 }
    );

    let mut sequence = good.clone();
    sequence[43..51].copy_from_slice(&9i64.to_be_bytes());
    sequence[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    fix_crc(&mut sequence);
    assert!(matches!(
        validate_client_batch(&sequence),
        Err(BatchError::InvalidSequence { .. })
    ));
}

#[test]
fn restamping_assigns_offsets_without_touching_the_body() {
    for codec in [Compression::None, Compression::Zstd] {
        let b = batch_with(
            &[Rec::new("a", 10), Rec::new("b", 30), Rec::new("c", 20)],
            codec,
        );
        let checked = validate_client_batch(&b).unwrap();
        let head = checked.restamped_header(&b, 1000, 7, None);
        let mut stored = head.to_vec();
        stored.extend_from_slice(&b[61..]);
        assert_eq!(&stored[16..], &b[16..], "only base offset and epoch change");
        let h = check_batch(&stored).unwrap().header;
        assert_eq!(
            (h.base_offset, h.partition_leader_epoch, h.max_timestamp),
            (1000, 7, 30)
        );
        let records = decode(&stored);
        assert_eq!(
            records.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1000, 1001, 1002]
        );

        let head = checked.restamped_header(&b, 5, 0, Some(99_999));
        let mut stamped = head.to_vec();
        stamped.extend_from_slice(&b[61..]);
        assert_eq!(&stamped[61..], &b[61..]);
        let h = check_batch(&stamped).expect("CRC re-stamped").header;
        assert_eq!(h.max_timestamp, 99_999);
        assert_eq!(
            h.timestamp_type(),
            weir_broker::log::batch::TimestampType::LogAppendTime
        );
        decode(&stamped);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_are_never_accepted_if_mangled(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        flips in proptest::collection::vec((0usize..400, 1u8..=255), 1..4),
    ) {
        let _ = validate_client_batch(&bytes);
        let _ = BatchHeader::parse(&bytes);
        let mut b = three();
        for (at, x) in flips {
            let at = 17 + at % (b.len() - 17);
            b[at] ^= x;
        }
        // Whatever survived must still be a consistent batch.
        if let Ok(c) = validate_client_batch(&b) {
            prop_assert_eq!(c.header.total_size(), b.len());
        }
    }
}
