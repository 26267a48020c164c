//! `weir-broker dump-log`: prints segment, index and time index files the way Kafka's
//! `kafka-dump-log.sh` does, for looking at what the log wrote.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::log::batch::{self, BatchHeader};

/// Renders the file at `path`, chosen by its extension (`.log`, `.index`, `.timeindex`).
pub fn dump_file(path: &Path, print_records: bool) -> anyhow::Result<String> {
    let bytes = fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let base: u64 = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            anyhow::anyhow!("{} is not named by a 20-digit base offset", path.display())
        })?;
    let mut out = format!("Dumping {}\n", path.display());
    match path.extension().and_then(|e| e.to_str()) {
        Some("log") => dump_log(&bytes, print_records, &mut out),
        Some("index") => {
            for entry in bytes.chunks_exact(8) {
                let rel = u32::from_be_bytes(entry[..4].try_into()?);
                let pos = u32::from_be_bytes(entry[4..].try_into()?);
                writeln!(out, "offset: {} position: {pos}", base + u64::from(rel))?;
            }
        }
        Some("timeindex") => {
            for entry in bytes.chunks_exact(12) {
                let ts = i64::from_be_bytes(entry[..8].try_into()?);
                let rel = u32::from_be_bytes(entry[8..].try_into()?);
                writeln!(out, "timestamp: {ts} offset: {}", base + u64::from(rel))?;
            }
        }
        _ => anyhow::bail!(
            "{}: expected a .log, .index or .timeindex file",
            path.display()
        ),
    }
    Ok(out)
}

fn dump_log(bytes: &[u8], print_records: bool, out: &mut String) {
    let mut position = 0usize;
    while position < bytes.len() {
        let rest = &bytes[position..];
        let checked = match batch::check_batch(rest) {
            Ok(checked) => checked,
            Err(e) => {
                let _ = writeln!(out, "Invalid batch at position {position}: {e}");
                return;
            }
        };
        let h: BatchHeader = checked.header;
        let codec = h
            .compression()
            .map_or("unknown".to_owned(), |c| format!("{c:?}").to_uppercase());
        let _ = writeln!(
            out,
            "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} producerId: {} \
             producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} \
             position: {position} {:?}: {} size: {} magic: {} compresscodec: {codec} crc: {} isvalid: true",
            h.base_offset,
            h.last_offset(),
            h.records_count,
            h.base_sequence,
            if h.base_sequence < 0 {
                -1
            } else {
                h.base_sequence + h.last_offset_delta
            },
            h.producer_id,
            h.producer_epoch,
            h.partition_leader_epoch,
            h.is_transactional(),
            h.is_control(),
            h.timestamp_type(),
            h.max_timestamp,
            h.total_size(),
            h.magic,
            h.crc,
        );
        if print_records {
            let mut buf = Bytes::copy_from_slice(&rest[..h.total_size()]);
            match RecordBatchDecoder::decode(&mut buf) {
                Ok(set) => {
                    for r in set.records {
                        let show = |b: &Option<Bytes>| {
                            b.as_ref()
                                .map_or("null".into(), |b| String::from_utf8_lossy(b).into_owned())
                        };
                        let _ = writeln!(
                            out,
                            "| offset: {} timestamp: {} keySize: {} valueSize: {} key: {} payload: {}",
                            r.offset,
                            r.timestamp,
                            r.key.as_ref().map_or(-1, |k| k.len() as i64),
                            r.value.as_ref().map_or(-1, |v| v.len() as i64),
                            show(&r.key),
                            show(&r.value),
                        );
                    }
                }
                Err(e) => {
                    let _ = writeln!(out, "| records could not be decoded: {e}");
                }
            }
        }
        position += h.total_size();
    }
}
