//! The record level of a v2 batch, as far as the cleaner needs it: walking the records of a
//! (decompressed) records section, and building the batch that keeps some of them.
//!
//! ```text
//! record (all varints zig-zag encoded, as Kafka's ByteUtils)
//!   length          varint   bytes after this field
//!   attributes      int8     unused
//!   timestampDelta  varlong  from the batch's baseTimestamp
//!   offsetDelta     varint   from the batch's baseOffset
//!   keyLength       varint   -1 for a null key
//!   key             bytes
//!   valueLength     varint   -1 for a null value (a tombstone)
//!   value           bytes
//!   headers         varint count, then (varint len, key, varint len, value) each
//! ```
//!
//! A kept record is copied byte for byte. That is sound because a rebuilt batch keeps the
//! original `baseOffset` and `baseTimestamp` (Kafka keeps the base offset and the last offset
//! delta too), so every delta inside a record still means what it meant. Nothing is decoded
//! into structs: header keys need not be UTF-8 and may repeat, and copying keeps them exactly.

use bytes::{Buf, Bytes};
use kafka_protocol::compression::{self as codec, Compressor, Decompressor};

use super::CleanerError;
use crate::log::batch::{BatchHeader, Compression, HEADER_LEN, LOG_OVERHEAD, TimestampType};

// Header field positions; the layout is documented in `batch`.
const BATCH_LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const RECORDS_COUNT_AT: usize = 57;
const COMPRESSION_MASK: i16 = 0x07;

/// One record of a records section, borrowed.
#[derive(Clone, Copy, Debug)]
pub(super) struct RecordView<'a> {
    /// The whole record, length prefix included.
    pub(super) bytes: &'a [u8],
    pub(super) timestamp_delta: i64,
    pub(super) offset_delta: i32,
    pub(super) key: Option<&'a [u8]>,
    pub(super) has_value: bool,
}

/// Why a records section could not be walked.
pub(super) type FramingError = &'static str;

/// Kafka's zig-zag varint of at most `max_bytes` bytes.
fn read_varint(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..max_bytes {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

fn read_i32(buf: &[u8], pos: &mut usize) -> Option<i32> {
    read_varint(buf, pos, 5).and_then(|v| i32::try_from(v).ok())
}

/// A length-prefixed byte field; `None` inside the `Some` for length -1.
fn read_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = read_i32(buf, pos)?;
    if len < 0 {
        return (len == -1).then_some(None);
    }
    let end = pos.checked_add(len as usize).filter(|&e| e <= buf.len())?;
    let bytes = &buf[*pos..end];
    *pos = end;
    Some(Some(bytes))
}

/// Walks the `count` records of an uncompressed records section, which they must fill exactly.
pub(super) fn parse_records(
    section: &[u8],
    count: i32,
) -> Result<Vec<RecordView<'_>>, FramingError> {
    let mut records = Vec::with_capacity(count.max(0) as usize);
    let mut pos = 0usize;
    for _ in 0..count {
        let start = pos;
        let len = read_i32(section, &mut pos).ok_or("bad record length")?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| pos.checked_add(len))
            .filter(|&end| end <= section.len())
            .ok_or("record runs past the batch")?;
        let body = &section[..end];
        pos += 1; // attributes
        let timestamp_delta = read_varint(body, &mut pos, 10).ok_or("bad timestamp delta")?;
        let offset_delta = read_i32(body, &mut pos).ok_or("bad offset delta")?;
        let key = read_bytes(body, &mut pos).ok_or("bad key")?;
        let value = read_bytes(body, &mut pos).ok_or("bad value")?;
        records.push(RecordView {
            bytes: &section[start..end],
            timestamp_delta,
            offset_delta,
            key,
            has_value: value.is_some(),
        });
        pos = end;
    }
    if pos != section.len() {
        return Err("bytes left after the last record");
    }
    Ok(records)
}

/// The records section of `batch` (a whole stored batch), decompressed.
pub(super) fn records_section(batch: &[u8], codec: Compression) -> anyhow::Result<Bytes> {
    let mut compressed = &batch[HEADER_LEN..];
    let all = |buf: &mut Bytes| Ok(buf.copy_to_bytes(buf.remaining()));
    match codec {
        Compression::None => Ok(Bytes::copy_from_slice(compressed)),
        Compression::Gzip => codec::Gzip::decompress(&mut compressed, all),
        Compression::Snappy => codec::Snappy::decompress(&mut compressed, all),
        Compression::Lz4 => codec::Lz4::decompress(&mut compressed, all),
        Compression::Zstd => codec::Zstd::decompress(&mut compressed, all),
    }
}

/// `raw` (concatenated records) compressed with `codec`, framed as the codec's Kafka
/// implementation frames it (xerial framing for snappy, the LZ4 frame format).
fn compress(raw: &[u8], codec: Compression) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len() / 2 + 64);
    let fill = |buf: &mut bytes::BytesMut| {
        buf.extend_from_slice(raw);
        Ok(())
    };
    match codec {
        Compression::None => out.extend_from_slice(raw),
        Compression::Gzip => codec::Gzip::compress(&mut out, fill)?,
        Compression::Snappy => codec::Snappy::compress(&mut out, fill)?,
        Compression::Lz4 => codec::Lz4::compress(&mut out, fill)?,
        Compression::Zstd => codec::Zstd::compress(&mut out, fill)?,
    }
    Ok(out)
}

/// The batch that replaces `original` keeping only `kept` (some, not all, of its records):
/// the same header but for the batch length, CRC, record count and max timestamp, the records
/// section re-compressed with the batch's own codec.
pub(super) fn rebuild_batch(
    original: &[u8],
    header: &BatchHeader,
    kept: &[RecordView<'_>],
) -> anyhow::Result<Vec<u8>> {
    let raw: Vec<u8> = kept.iter().flat_map(|r| r.bytes.iter().copied()).collect();
    let records = compress(&raw, header.compression()?)?;
    let max_timestamp = match header.timestamp_type() {
        // Every record of a LogAppendTime batch carries the append time, the batch's max.
        TimestampType::LogAppendTime => header.max_timestamp,
        TimestampType::CreateTime => kept
            .iter()
            .map(|r| header.base_timestamp.saturating_add(r.timestamp_delta))
            .max()
            .unwrap_or(header.max_timestamp),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&original[..HEADER_LEN]);
    out.extend_from_slice(&records);
    out[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    out[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    seal(&mut out);
    Ok(out)
}

/// The header-only batch that stands for `original` once all its records are gone (Kafka's
/// `writeEmptyHeader`): same offsets, producer fields and sequence range, so producer state
/// rebuilt from the log still sees the producer's last sequence; no records, no compression,
/// both timestamps the original's max.
pub(super) fn empty_batch(original: &[u8], header: &BatchHeader) -> Vec<u8> {
    let mut out = original[..HEADER_LEN].to_vec();
    let attributes = header.attributes & !COMPRESSION_MASK;
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let max = header.max_timestamp.to_be_bytes();
    out[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&max);
    out[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max);
    out[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&0i32.to_be_bytes());
    seal(&mut out);
    out
}

/// Sets the batch length for the bytes `batch` holds and re-stamps the CRC.
fn seal(batch: &mut [u8]) {
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Maps a codec failure to the cleaner's error for the batch at `position` of `path`.
pub(super) fn codec_error(
    path: &std::path::Path,
    position: u64,
) -> impl FnOnce(anyhow::Error) -> CleanerError + '_ {
    move |source| CleanerError::Codec {
        path: path.to_path_buf(),
        position,
        source: source.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::check_batch;
    use kafka_protocol::records::{
        Compression as Codec, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType as Ts,
    };

    fn encoded(codec: Codec, keys: &[Option<&str>]) -> Vec<u8> {
        let records: Vec<Record> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 1,
                timestamp_type: Ts::Creation,
                offset: 100 + i as i64,
                sequence: 40 + i as i32,
                timestamp: 1_000 + 10 * i as i64,
                key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
                value: (i % 2 == 0).then(|| Bytes::from(vec![b'v'; 30])),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    #[test]
    fn rebuilt_batches_keep_offsets_sequences_and_codec() {
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            let original = encoded(codec, &[Some("a"), None, Some("c"), Some("d")]);
            let header = check_batch(&original).unwrap().header;
            let section = records_section(&original, header.compression().unwrap()).unwrap();
            let records = parse_records(&section, header.records_count).unwrap();
            assert_eq!(records.len(), 4);
            assert_eq!(records[1].key, None);
            assert!(!records[1].has_value && records[2].has_value);
            let kept = [records[0], records[3]];
            let rebuilt = rebuild_batch(&original, &header, &kept).unwrap();
            let new = check_batch(&rebuilt).expect("valid CRC").header;
            assert_eq!(new.total_size(), rebuilt.len());
            assert_eq!(new.base_offset, 100);
            assert_eq!(new.last_offset(), 103, "{codec:?}: offset range kept");
            assert_eq!(new.base_sequence, 40);
            assert_eq!(new.records_count, 2);
            assert_eq!(new.max_timestamp, 1_030);
            assert_eq!(new.compression().unwrap(), header.compression().unwrap());
            let decoded = RecordBatchDecoder::decode(&mut Bytes::from(rebuilt)).unwrap();
            let got: Vec<(i64, i64, Option<Bytes>)> = decoded
                .records
                .into_iter()
                .map(|r| (r.offset, r.timestamp, r.key))
                .collect();
            assert_eq!(
                got,
                vec![
                    (100, 1_000, Some(Bytes::from_static(b"a"))),
                    (103, 1_030, Some(Bytes::from_static(b"d")))
                ],
                "{codec:?}"
            );
        }
    }

    #[test]
    fn an_empty_batch_keeps_the_producer_fields_and_offset_range() {
        let original = encoded(Codec::Zstd, &[Some("a"), Some("b")]);
        let header = check_batch(&original).unwrap().header;
        let empty = empty_batch(&original, &header);
        let new = check_batch(&empty).unwrap().header;
        assert_eq!(empty.len(), HEADER_LEN);
        assert_eq!(
            (new.base_offset, new.last_offset(), new.records_count),
            (100, 101, 0)
        );
        assert_eq!(
            (new.producer_id, new.producer_epoch, new.base_sequence),
            (7, 1, 40)
        );
        assert_eq!(new.compression().unwrap(), Compression::None);
        assert_eq!(new.base_timestamp, header.max_timestamp);
        let decoded = RecordBatchDecoder::decode(&mut Bytes::from(empty)).unwrap();
        assert!(decoded.records.is_empty());
    }

    #[test]
    fn malformed_sections_are_refused() {
        let original = encoded(Codec::None, &[Some("a"), Some("b")]);
        let header = check_batch(&original).unwrap().header;
        let section = &original[HEADER_LEN..];
        assert!(
            parse_records(section, 3).is_err(),
            "fewer records than counted"
        );
        assert!(parse_records(section, 1).is_err(), "bytes left over");
        assert!(parse_records(&section[..section.len() - 1], 2).is_err());
        assert_eq!(
            parse_records(section, header.records_count).unwrap().len(),
            2
        );
    }
}
