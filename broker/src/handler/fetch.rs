//! Fetch (v4-16): whole batches from the segment files, long-polling on `max_wait_ms` /
//! `min_bytes`. From v13 topics are named by topic id (an unknown id is UNKNOWN_TOPIC_ID);
//! v15's replica state and v16's leader endpoints matter to followers and leader changes,
//! which one broker has none of.
//!
//! Limits follow KIP-74: `partition_max_bytes` per partition and `max_bytes` for the whole
//! response, except that the first batch of the first non-empty partition is returned even
//! when larger, so a consumer can always make progress. Consumers read below the high
//! watermark (= the last stable offset until transactions exist). Record bytes are not read
//! here: each partition's records field carries a marker and the file range is sent with
//! sendfile by the connection (`server::zero_copy`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId as WireBrokerId, FetchRequest, FetchResponse};

use super::ZeroCopy;
use crate::broker::Broker;
use crate::kafka_error::log_error_code;
use crate::server::zero_copy::{FileRegion, Markers};
use crate::types::Offset;
use weir_controller::TopicId;

/// The longest a fetch may wait, whatever the client asks (Kafka has no cap; a cap keeps a
/// shutdown prompt and an absurd value harmless).
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

pub(super) async fn handle(
    broker: &Broker,
    request: FetchRequest,
    version: i16,
    zero_copy: &mut ZeroCopy,
) -> FetchResponse {
    let started = Instant::now();
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if version >= 3 {
        request.max_bytes.max(0) as usize
    } else {
        usize::MAX
    };
    let read_committed = request.isolation_level == 1;
    // From v13 topics are named by id (KIP-516): resolve them once for every pass.
    let names = topic_names(broker, &request, version);
    let markers = Markers::new();
    let mut appends = broker.subscribe_appends();
    let read = || {
        read_once(
            broker,
            &request,
            &names,
            max_bytes,
            read_committed,
            &markers,
        )
    };
    let pass = loop {
        appends.borrow_and_update();
        let pass = read();
        let waited = started.elapsed();
        if pass.bytes >= min_bytes || pass.failed || waited >= max_wait {
            break pass;
        }
        // Sleep until something is appended or the wait runs out.
        if tokio::time::timeout(max_wait - waited, appends.changed())
            .await
            .is_err()
        {
            break read();
        }
    };
    for (topic, bytes, records) in &pass.bytes_per_topic {
        broker
            .metrics
            .messages_out
            .with_label_values(&[topic])
            .inc_by(*records);
        broker
            .metrics
            .bytes_out
            .with_label_values(&[topic])
            .inc_by(*bytes);
    }
    if !pass.regions.is_empty() {
        zero_copy.parts = Some((markers, pass.regions));
    }
    pass.response
}

/// The result of one pass over the requested partitions.
struct Pass {
    response: FetchResponse,
    /// File ranges in the order of the markers in `response`.
    regions: Vec<FileRegion>,
    bytes: usize,
    /// `(topic, record bytes, records)` sent per topic.
    bytes_per_topic: Vec<(String, u64, u64)>,
    /// A partition failed; the response goes out at once.
    failed: bool,
}

/// Each requested topic's name: as sent before v13, looked up by topic id from v13 (`None`
/// for an id no topic has).
fn topic_names(broker: &Broker, request: &FetchRequest, version: i16) -> Vec<Option<String>> {
    if version < 13 {
        return request
            .topics
            .iter()
            .map(|t| Some(t.topic.0.to_string()))
            .collect();
    }
    let metadata = broker.metadata();
    request
        .topics
        .iter()
        .map(|t| {
            metadata
                .topic_by_id(TopicId(t.topic_id))
                .map(|topic| topic.name.as_str().to_owned())
        })
        .collect()
}

fn read_once(
    broker: &Broker,
    request: &FetchRequest,
    names: &[Option<String>],
    max_bytes: usize,
    read_committed: bool,
    markers: &Markers,
) -> Pass {
    let mut total = 0usize;
    let mut failed = false;
    let mut regions: Vec<FileRegion> = Vec::new();
    let mut bytes_per_topic = Vec::new();
    let mut records = 0u64;
    let responses = request
        .topics
        .iter()
        .zip(names)
        .map(|(topic, name)| {
            let before = total;
            let records_before = records;
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let out = PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_preferred_read_replica(WireBrokerId(-1))
                        .with_aborted_transactions(read_committed.then(Vec::new));
                    let Some(name) = name else {
                        failed = true;
                        return out.with_error_code(ResponseError::UnknownTopicId.code());
                    };
                    let Some(partition) = broker.partition(name, p.partition) else {
                        failed = true;
                        return out.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Some(code) =
                        super::leader_epoch_error(p.current_leader_epoch, partition.leader_epoch)
                    {
                        failed = true;
                        return out.with_error_code(code);
                    }
                    let log = partition.log.read().unwrap_or_else(|e| e.into_inner());
                    let hw = log.high_watermark();
                    let out = out
                        .with_high_watermark(hw.as_i64())
                        .with_last_stable_offset(hw.as_i64())
                        .with_log_start_offset(log.log_start_offset().as_i64());
                    let Some(offset) = Offset::from_i64(p.fetch_offset) else {
                        failed = true;
                        return out.with_error_code(ResponseError::OffsetOutOfRange.code());
                    };
                    let budget = (p.partition_max_bytes.max(0) as usize)
                        .min(max_bytes.saturating_sub(total));
                    if budget == 0 && total > 0 {
                        return out.with_records(Some(Bytes::new()));
                    }
                    match log.read(offset, budget.max(1), Some(hw)) {
                        Ok(None) => out.with_records(Some(Bytes::new())),
                        Ok(Some(slice)) if total > 0 && slice.len as usize > budget => {
                            out.with_records(Some(Bytes::new()))
                        }
                        Ok(Some(slice)) => {
                            total += slice.len as usize;
                            records += slice.next_offset - slice.first_offset;
                            let marker = markers.marker(regions.len());
                            regions.push(FileRegion {
                                file: slice.file,
                                position: slice.position,
                                len: slice.len,
                            });
                            out.with_records(Some(marker))
                        }
                        Err(e) => {
                            failed = true;
                            out.with_error_code(log_error_code(&e))
                        }
                    }
                })
                .collect();
            if total > before
                && let Some(name) = name
            {
                bytes_per_topic.push((
                    name.clone(),
                    (total - before) as u64,
                    records - records_before,
                ));
            }
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    Pass {
        response: FetchResponse::default().with_responses(responses),
        regions,
        bytes: total,
        bytes_per_topic,
        failed,
    }
}
