//! Shared helpers for the log tests: record batches built by `kafka-protocol`'s encoder (an
//! implementation independent of ours), and a fixed clock.
#![allow(dead_code, unreachable_pub)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use weir_broker::log::{Log, LogConfig, OpenOptions, SegmentCache};
use weir_broker::types::{LeaderEpoch, Offset};

/// A record as a producer describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
}

impl Rec {
    pub fn new(value: impl Into<Vec<u8>>, timestamp: i64) -> Rec {
        Rec {
            key: None,
            value: Some(value.into()),
            timestamp,
        }
    }
}

/// Encodes `recs` as one producer batch (base offset 0) with `compression`.
pub fn batch_with(recs: &[Rec], compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // offset - sequence must be constant for the encoder to keep one batch; with no
            // producer id the base sequence stays -1 as a plain producer sends it.
            sequence: i as i32 - 1,
            timestamp: r.timestamp,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode");
    buf.to_vec()
}

pub fn batch(recs: &[Rec]) -> Vec<u8> {
    batch_with(recs, Compression::None)
}

/// A batch of `count` records of `size` bytes each, timestamps from `ts`.
pub fn sized_batch(count: usize, size: usize, ts: i64, seed: u8) -> Vec<u8> {
    let recs: Vec<Rec> = (0..count)
        .map(|i| Rec::new(vec![seed.wrapping_add(i as u8); size], ts + i as i64))
        .collect();
    batch(&recs)
}

/// Decodes stored bytes with kafka-protocol: `(offset, timestamp, value)` of every record.
pub fn decode(bytes: &[u8]) -> Vec<(i64, i64, Option<Vec<u8>>)> {
    let mut buf = Bytes::copy_from_slice(bytes);
    RecordBatchDecoder::decode_all(&mut buf)
        .expect("kafka-protocol decodes what we stored")
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| (r.offset, r.timestamp, r.value.map(|v| v.to_vec())))
        .collect()
}

/// Small segments and indexes so tests exercise rolls and index entries.
pub fn small_config() -> LogConfig {
    LogConfig::from_overrides([
        ("segment.bytes", "4096"),
        ("index.interval.bytes", "256"),
        ("segment.index.bytes", "4096"),
        ("retention.ms", "-1"),
    ])
    .unwrap()
}

pub const NOW: i64 = 1_700_000_000_000;

pub fn open(dir: &std::path::Path, config: LogConfig, clean: bool) -> Log {
    Log::open(
        dir,
        config,
        OpenOptions {
            recovery_point: Offset::ZERO,
            log_start_offset: Offset::ZERO,
            clean_shutdown: clean,
            now_ms: NOW,
        },
        std::sync::Arc::new(SegmentCache::new(16)),
    )
    .expect("open log")
}

pub fn append(log: &mut Log, batch: &[u8]) -> weir_broker::log::AppendInfo {
    match log
        .append_as_leader(batch, LeaderEpoch(0), NOW)
        .expect("append")
    {
        weir_broker::log::AppendOutcome::Appended(info) => info,
        duplicate => panic!("expected an append, got {duplicate:?}"),
    }
}

/// Everything readable from `from`, read in `max_bytes` steps.
pub fn read_all(log: &Log, from: Offset, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = from;
    while let Some(slice) = log.read(next, max_bytes, None).expect("read") {
        let bytes = slice.read_to_vec().unwrap();
        let mut pos = 0;
        while pos < bytes.len() {
            let h = weir_broker::log::batch::BatchHeader::parse(&bytes[pos..]).unwrap();
            next = Offset(h.last_offset() as u64 + 1);
            pos += h.total_size();
        }
        out.extend_from_slice(&bytes);
    }
    out
}

pub fn open_with(
    dir: &std::path::Path,
    config: LogConfig,
    clean: bool,
    recovery_point: Offset,
    log_start: Offset,
) -> Log {
    Log::open(
        dir,
        config,
        OpenOptions {
            recovery_point,
            log_start_offset: log_start,
            clean_shutdown: clean,
            now_ms: NOW,
        },
        std::sync::Arc::new(SegmentCache::new(16)),
    )
    .expect("open log")
}

/// `(position, header)` of every batch in a `.log` file, by walking it.
pub fn batches_in(path: &std::path::Path) -> Vec<(usize, weir_broker::log::batch::BatchHeader)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = weir_broker::log::batch::BatchHeader::parse(&bytes[pos..]).unwrap();
        out.push((pos, h));
        pos += h.total_size();
    }
    out
}
