//! Fetch (v4-16): whole batches from the segment files, long-polling on `max_wait_ms` /
//! `min_bytes`. From v13 topics are named by topic id (an unknown id is UNKNOWN_TOPIC_ID).
//!
//! Who fetches decides what is read (Kafka's `FetchParams`). The replica id is `replica_id`
//! before v15 and `replica_state.replica_id` from v15:
//! - consumers (-1) read from the leader only: read_uncommitted below the high watermark,
//!   read_committed (`isolation_level` 1) below the last stable offset, with the aborted
//!   transactions overlapping the returned range listed (Kafka: from the fetch offset to the
//!   end of the data returned) so the client can skip their records;
//! - followers (a broker id) read from the leader only, up to the log end. The fetch offset is
//!   the follower's log end: the leader records it, which may move the high watermark (waking
//!   acks=all writes and consumers) and add the follower to the ISR. A follower that is not a
//!   replica gets UNKNOWN_LEADER_EPOCH when it sent its leader epoch (it may know a newer
//!   assignment), else NOT_LEADER_OR_FOLLOWER;
//! - the debugging id (-2) reads any replica below the high watermark.
//!
//! Anywhere else a partition that exists is NOT_LEADER_OR_FOLLOWER. A `current_leader_epoch`
//! below the partition's is FENCED_LEADER_EPOCH, above it UNKNOWN_LEADER_EPOCH. From v12 a
//! `last_fetched_epoch` the leader's log diverges from is answered with the diverging epoch
//! and its end offset instead of records (KIP-595's truncation detection, as Kafka's
//! `readRecords` does).
//!
//! Limits follow KIP-74: `partition_max_bytes` per partition and `max_bytes` for the whole
//! response, except that the first batch of the first non-empty partition is returned even
//! when larger, so a consumer can always make progress. Record bytes are not read here: each
//! partition's records field carries a marker and the file range is sent with sendfile by the
//! connection (`server::zero_copy`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId as WireBrokerId, FetchRequest, FetchResponse, ProducerId};
use tracing::debug;

use super::ZeroCopy;
use crate::broker::{Broker, Partition};
use crate::kafka_error::log_error_code;
use crate::log::Log;
use crate::replication::state::FollowerFetch;
use crate::server::zero_copy::{FileRegion, Markers};
use crate::types::{LeaderEpoch, Offset};
use weir_controller::{BrokerId, TopicId};

/// The longest a fetch may wait, whatever the client asks (Kafka has no cap; a cap keeps a
/// shutdown prompt and an absurd value harmless).
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);
/// Kafka's `DEBUGGING_REPLICA_ID`: may read from a follower.
const DEBUGGING_REPLICA_ID: i32 = -2;

/// Who sent the fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fetcher {
    Consumer,
    Debugging,
    Follower {
        replica: BrokerId,
        broker_epoch: i64,
    },
}

impl Fetcher {
    fn of(request: &FetchRequest, version: i16) -> Fetcher {
        let (replica_id, broker_epoch) = if version >= 15 {
            (
                request.replica_state.replica_id.0,
                request.replica_state.replica_epoch,
            )
        } else {
            (request.replica_id.0, -1)
        };
        match replica_id {
            id if id >= 0 => Fetcher::Follower {
                replica: BrokerId(id),
                broker_epoch,
            },
            DEBUGGING_REPLICA_ID => Fetcher::Debugging,
            _ => Fetcher::Consumer,
        }
    }
}

pub(super) async fn handle(
    broker: &Broker,
    request: FetchRequest,
    version: i16,
    zero_copy: &mut ZeroCopy,
) -> FetchResponse {
    let started = Instant::now();
    let fetcher = Fetcher::of(&request, version);
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
    // Consumers also wake when a high watermark moves without an append (a follower caught
    // up); followers wait for appends only.
    let mut high_watermarks =
        (fetcher == Fetcher::Consumer).then(|| broker.replication.subscribe_high_watermarks());
    let read = || {
        read_once(
            broker,
            &request,
            &names,
            fetcher,
            max_bytes,
            read_committed,
            &markers,
        )
    };
    let mut first = true;
    let pass = loop {
        appends.borrow_and_update();
        if let Some(h) = high_watermarks.as_mut() {
            h.borrow_and_update();
        }
        let mut pass = read();
        if std::mem::take(&mut first) {
            record_follower_fetches(broker, fetcher, &mut pass);
        }
        let waited = started.elapsed();
        if pass.bytes >= min_bytes || pass.failed || waited >= max_wait {
            break pass;
        }
        // Sleep until something is appended or the wait runs out.
        let woken = async {
            match high_watermarks.as_mut() {
                Some(h) => tokio::select! {
                    _ = appends.changed() => {},
                    _ = h.changed() => {},
                },
                None => {
                    let _ = appends.changed().await;
                }
            }
        };
        if tokio::time::timeout(max_wait - waited, woken)
            .await
            .is_err()
        {
            break read();
        }
    };
    if fetcher == Fetcher::Consumer {
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
    }
    if !pass.regions.is_empty() {
        zero_copy.parts = Some((markers, pass.regions));
    }
    pass.response
}

/// A follower's fetch of one partition, recorded on the leader after the first read.
struct FollowerRead {
    topic: usize,
    partition: usize,
    served: Arc<Partition>,
    fetch_offset: Offset,
    leader_log_end: Offset,
}

/// The result of one pass over the requested partitions.
struct Pass {
    response: FetchResponse,
    /// File ranges in the order of the markers in `response`.
    regions: Vec<FileRegion>,
    bytes: usize,
    /// `(topic, record bytes, records)` sent per topic.
    bytes_per_topic: Vec<(String, u64, u64)>,
    /// A partition failed or diverged; the response goes out at once.
    failed: bool,
    follower_reads: Vec<FollowerRead>,
}

/// Records a follower's fetch offsets on the leader (once per request, as Kafka does). A
/// fetch the leader cannot record (a stale broker epoch) fails that partition with
/// NOT_LEADER_OR_FOLLOWER.
fn record_follower_fetches(broker: &Broker, fetcher: Fetcher, pass: &mut Pass) {
    let Fetcher::Follower {
        replica,
        broker_epoch,
    } = fetcher
    else {
        return;
    };
    let now_ms = crate::replication::monotonic_ms();
    for read in std::mem::take(&mut pass.follower_reads) {
        let fetch = FollowerFetch {
            replica,
            broker_epoch,
            fetch_offset: read.fetch_offset,
            leader_log_end: read.leader_log_end,
            now_ms,
        };
        if let Err(e) = broker
            .replication
            .record_follower_fetch(&read.served, fetch)
        {
            debug!(partition = %read.served.tp, %replica, error = %e, "follower fetch not recorded");
            let out = &mut pass.response.responses[read.topic].partitions[read.partition];
            out.error_code = ResponseError::NotLeaderOrFollower.code();
            out.records = Some(Bytes::new());
            pass.failed = true;
        }
    }
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

/// Running totals of one pass.
struct Totals<'a> {
    markers: &'a Markers,
    max_bytes: usize,
    bytes: usize,
    records: u64,
    regions: Vec<FileRegion>,
    failed: bool,
}

fn read_once(
    broker: &Broker,
    request: &FetchRequest,
    names: &[Option<String>],
    fetcher: Fetcher,
    max_bytes: usize,
    read_committed: bool,
    markers: &Markers,
) -> Pass {
    let mut totals = Totals {
        markers,
        max_bytes,
        bytes: 0,
        records: 0,
        regions: Vec::new(),
        failed: false,
    };
    let mut bytes_per_topic = Vec::new();
    let mut follower_reads = Vec::new();
    let responses = request
        .topics
        .iter()
        .zip(names)
        .enumerate()
        .map(|(topic_index, (topic, name))| {
            let before = totals.bytes;
            let records_before = totals.records;
            let partitions = topic
                .partitions
                .iter()
                .enumerate()
                .map(|(partition_index, p)| {
                    let out = PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_preferred_read_replica(WireBrokerId(-1))
                        .with_aborted_transactions(read_committed.then(Vec::new));
                    let Some(name) = name else {
                        totals.failed = true;
                        return out.with_error_code(ResponseError::UnknownTopicId.code());
                    };
                    let Some(partition) = broker.partition(name, p.partition) else {
                        totals.failed = true;
                        return out.with_error_code(super::not_served_error(
                            broker,
                            name,
                            p.partition,
                        ));
                    };
                    if let Some(code) = serve_error(&partition, p, fetcher) {
                        totals.failed = true;
                        return out.with_error_code(code);
                    }
                    let log = partition.log.read().unwrap_or_else(|e| e.into_inner());
                    let (out, read) =
                        read_partition(&log, p, fetcher, read_committed, out, &mut totals);
                    drop(log);
                    if let Some(leader_log_end) = read {
                        follower_reads.push(FollowerRead {
                            topic: topic_index,
                            partition: partition_index,
                            served: partition,
                            fetch_offset: Offset::from_i64(p.fetch_offset).unwrap_or(Offset::ZERO),
                            leader_log_end,
                        });
                    }
                    out
                })
                .collect();
            if totals.bytes > before
                && let Some(name) = name
            {
                bytes_per_topic.push((
                    name.clone(),
                    (totals.bytes - before) as u64,
                    totals.records - records_before,
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
        regions: totals.regions,
        bytes: totals.bytes,
        bytes_per_topic,
        failed: totals.failed,
        follower_reads,
    }
}

/// Why this broker does not serve the fetch of a partition it holds, as Kafka checks it: the
/// leader epoch first, then leadership (all but the debugging id), then, for a follower,
/// whether it is a replica.
fn serve_error(partition: &Partition, p: &FetchPartition, fetcher: Fetcher) -> Option<i16> {
    let replica = &partition.replica;
    if let Some(code) = super::leader_epoch_error(p.current_leader_epoch, replica.leader_epoch()) {
        return Some(code);
    }
    if fetcher != Fetcher::Debugging && !replica.is_leader() {
        return Some(ResponseError::NotLeaderOrFollower.code());
    }
    if let Fetcher::Follower { replica: id, .. } = fetcher
        && !replica.has_follower(id)
    {
        return Some(if p.current_leader_epoch >= 0 {
            ResponseError::UnknownLeaderEpoch.code()
        } else {
            ResponseError::NotLeaderOrFollower.code()
        });
    }
    None
}

/// Reads one partition. Returns the partition's response and, for a follower's read that
/// did not diverge, the leader's log end offset at the time of the read.
fn read_partition(
    log: &Log,
    p: &FetchPartition,
    fetcher: Fetcher,
    read_committed: bool,
    out: PartitionData,
    totals: &mut Totals<'_>,
) -> (PartitionData, Option<Offset>) {
    let hw = log.high_watermark();
    let lso = log.last_stable_offset();
    let log_end = log.log_end_offset();
    let out = out
        .with_high_watermark(hw.as_i64())
        .with_last_stable_offset(lso.as_i64())
        .with_log_start_offset(log.log_start_offset().as_i64());
    let Some(offset) = Offset::from_i64(p.fetch_offset) else {
        totals.failed = true;
        return (
            out.with_error_code(ResponseError::OffsetOutOfRange.code()),
            None,
        );
    };
    if p.last_fetched_epoch >= 0 {
        match diverging_epoch(log, offset, p.last_fetched_epoch) {
            Ok(None) => {}
            Ok(Some(diverging)) => {
                totals.failed = true;
                return (
                    out.with_diverging_epoch(diverging)
                        .with_records(Some(Bytes::new())),
                    None,
                );
            }
            Err(code) => {
                totals.failed = true;
                return (out.with_error_code(code), None);
            }
        }
    }
    let follower = matches!(fetcher, Fetcher::Follower { .. });
    // Followers replicate everything, markers and open transactions included.
    let read_committed = read_committed && !follower;
    let upper = (!follower).then_some(if read_committed { lso } else { hw });
    let budget =
        (p.partition_max_bytes.max(0) as usize).min(totals.max_bytes.saturating_sub(totals.bytes));
    let read = follower.then_some(log_end);
    if budget == 0 && totals.bytes > 0 {
        return (out.with_records(Some(Bytes::new())), read);
    }
    let out = match log.read(offset, budget.max(1), upper) {
        Ok(None) => out.with_records(Some(Bytes::new())),
        Ok(Some(slice)) if totals.bytes > 0 && slice.len as usize > budget => {
            out.with_records(Some(Bytes::new()))
        }
        Ok(Some(slice)) => {
            let out = if read_committed {
                let start = offset.max(log.log_start_offset());
                match log.aborted_transactions(start, slice.next_offset) {
                    Ok(aborted) => out.with_aborted_transactions(Some(
                        aborted
                            .into_iter()
                            .map(|a| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(a.producer_id))
                                    .with_first_offset(a.first_offset.as_i64())
                            })
                            .collect(),
                    )),
                    Err(e) => {
                        totals.failed = true;
                        return (out.with_error_code(log_error_code(&e)), None);
                    }
                }
            } else {
                out
            };
            totals.bytes += slice.len as usize;
            totals.records += slice.next_offset - slice.first_offset;
            let marker = totals.markers.marker(totals.regions.len());
            totals.regions.push(FileRegion {
                file: slice.file,
                position: slice.position,
                len: slice.len,
            });
            out.with_records(Some(marker))
        }
        Err(e) => {
            totals.failed = true;
            return (out.with_error_code(log_error_code(&e)), None);
        }
    };
    (out, read)
}

/// Kafka's divergence check for a fetch carrying the epoch of the last batch the fetcher has:
/// where that epoch ends in this log. `Some` when the fetcher's log diverges (this log has an
/// older epoch there, or the epoch ends before the fetch offset); OFFSET_OUT_OF_RANGE when the
/// epoch is unknown or the offset is below the log start.
fn diverging_epoch(
    log: &Log,
    fetch_offset: Offset,
    last_fetched_epoch: i32,
) -> Result<Option<EpochEndOffset>, i16> {
    let out_of_range = ResponseError::OffsetOutOfRange.code();
    let (epoch, end) = log
        .end_offset_for_epoch(LeaderEpoch(last_fetched_epoch))
        .ok_or(out_of_range)?;
    if fetch_offset < log.log_start_offset() {
        return Err(out_of_range);
    }
    if epoch.0 < last_fetched_epoch || end < fetch_offset {
        return Ok(Some(
            EpochEndOffset::default()
                .with_epoch(epoch.0)
                .with_end_offset(end.as_i64()),
        ));
    }
    Ok(None)
}
