//! Transaction markers: the coordinator's side (sending a transaction's COMMIT or ABORT
//! marker to every partition in it, through each partition's leader, until all have landed)
//! and the leader's side ([`write_markers`], which the WriteTxnMarkers handler and the
//! coordinator's local writes share).
//!
//! Sending follows Kafka's `TransactionMarkerChannelManager`: partitions are grouped by their
//! current leader, one WriteTxnMarkers request per leader (a local write when this broker
//! leads). Retriable answers (no leader, NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS…,
//! timeouts, a leader that cannot be reached) are retried with backoff against fresh
//! metadata; a partition whose topic was deleted counts as done. INVALID_PRODUCER_EPOCH or
//! TRANSACTION_COORDINATOR_FENCED mean this coordinator is stale — a newer one owns the
//! transaction — so sending stops, as does unloading the shard.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, warn};

use super::group_service::OFFSETS_TOPIC;
use super::txn_service::Shard;
use crate::broker::{Broker, Partition};
use crate::kafka_error::log_error_code;
use crate::log::{ControlType, TxnMarker};
use crate::replication::LeaderConnection;
use crate::replication::{AckOutcome, LeaderAppendError};
use crate::types::Offset;

/// How long a marker write waits for the ISR (Kafka's marker requests use
/// `request.timeout.ms`, 30 s by default).
const MARKER_REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request to another leader may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(35);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The markers one transaction needs.
#[derive(Clone, Debug)]
pub(crate) struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

impl MarkerJob {
    fn marker(&self) -> TxnMarker {
        TxnMarker {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            coordinator_epoch: self.coordinator_epoch,
            control: if self.commit {
                ControlType::Commit
            } else {
                ControlType::Abort
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MarkerOutcome {
    /// Every partition has its marker (or is gone).
    Written,
    /// This coordinator is stale; another one completes the transaction.
    Abandoned,
}

/// What to do about one partition after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Done,
    Retry,
    Fenced,
}

fn verdict(code: i16) -> Verdict {
    match ResponseError::try_from_code(code) {
        None => Verdict::Done,
        Some(ResponseError::InvalidProducerEpoch | ResponseError::TransactionCoordinatorFenced) => {
            Verdict::Fenced
        }
        // UNKNOWN_TOPIC_OR_PARTITION is retried too: the leader may not have applied the
        // metadata that created the partition yet. A deleted topic is noticed in the metadata.
        Some(_) => Verdict::Retry,
    }
}

/// Connections to other brokers for marker and verification requests, one idle connection
/// kept per broker.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    idle: tokio::sync::Mutex<HashMap<i32, LeaderConnection>>,
}

impl Channels {
    /// A connection to broker `id`: the idle one, or a new one to its endpoint on the
    /// inter-broker listener (`inter.broker.listener.name`) from the metadata. `None` when
    /// the broker is unknown, lacks that listener, or cannot be reached (logged at debug).
    /// The caller owns it until [`Self::put`].
    pub(crate) async fn take(
        &self,
        broker: &Broker,
        id: i32,
        purpose: &str,
    ) -> Option<LeaderConnection> {
        if let Some(idle) = self.idle.lock().await.remove(&id) {
            return Some(idle);
        }
        let listener = broker.config.inter_broker_listener();
        let Some((host, port)) = broker
            .metadata()
            .brokers
            .get(&weir_controller::BrokerId(id))?
            .listener(&listener)
            .map(|l| (l.host.clone(), l.port))
        else {
            debug!(broker = id, purpose, %listener, "the broker has no endpoint on the inter-broker listener");
            return None;
        };
        let client_id = format!("weir-{purpose}-{}", broker.config.node_id);
        match LeaderConnection::connect(&host, port, client_id, REQUEST_TIMEOUT).await {
            Ok(connection) => Some(connection),
            Err(e) => {
                debug!(broker = id, purpose, error = %e, "cannot reach a broker");
                None
            }
        }
    }

    /// Keeps a connection that answered for the next request to broker `id`.
    pub(crate) async fn put(&self, id: i32, connection: LeaderConnection) {
        self.idle.lock().await.entry(id).or_insert(connection);
    }
}

/// Sends `job`'s markers until every partition has one, or the coordinator turns out stale.
pub(crate) async fn send(broker: &Broker, shard: &Shard, job: &MarkerJob) -> MarkerOutcome {
    let mut remaining = job.partitions.clone();
    let mut backoff = BACKOFF_MIN;
    loop {
        if !shard.is_current() {
            return MarkerOutcome::Abandoned;
        }
        let metadata = broker.metadata();
        // Group by leader; drop partitions that no longer exist.
        let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        let mut leaderless = Vec::new();
        for (topic, partition) in remaining.drain(..) {
            let Some(t) = metadata.topic(&topic) else {
                debug!(topic, "transaction marker skipped: the topic was deleted");
                continue;
            };
            match t.partitions.get(partition as usize).map(|p| p.leader) {
                None => continue,
                Some(Some(leader)) => by_leader
                    .entry(leader.0)
                    .or_default()
                    .push((topic, partition)),
                Some(None) => leaderless.push((topic, partition)),
            }
        }
        remaining = leaderless;
        let me = broker.config.node_id;
        for (leader, partitions) in by_leader {
            let results = if leader == me {
                let codes = write_markers(broker, &partitions, &job.marker()).await;
                partitions.into_iter().zip(codes).collect()
            } else {
                send_remote(broker, leader, job, partitions).await
            };
            for (tp, code) in results {
                match verdict(code) {
                    Verdict::Done => {}
                    Verdict::Retry => remaining.push(tp),
                    Verdict::Fenced => {
                        warn!(
                            transactional_id = job.transactional_id,
                            topic = tp.0,
                            partition = tp.1,
                            code,
                            "transaction marker refused as stale"
                        );
                        return MarkerOutcome::Abandoned;
                    }
                }
            }
        }
        if remaining.is_empty() {
            return MarkerOutcome::Written;
        }
        debug!(
            transactional_id = job.transactional_id,
            remaining = remaining.len(),
            "retrying transaction markers"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One WriteTxnMarkers request to broker `leader`; every partition gets a code (a failed
/// exchange gives them all a retriable one).
async fn send_remote(
    broker: &Broker,
    leader: i32,
    job: &MarkerJob,
    partitions: Vec<(String, i32)>,
) -> Vec<((String, i32), i16)> {
    let retry_all = |partitions: Vec<(String, i32)>| {
        partitions
            .into_iter()
            .map(|tp| (tp, ResponseError::NotLeaderOrFollower.code()))
            .collect()
    };
    let channels = &broker.transactions.channels;
    let Some(mut connection) = channels.take(broker, leader, "txn-markers").await else {
        return retry_all(partitions);
    };
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &partitions {
        topics.entry(topic).or_default().push(*partition);
    }
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(job.producer_id))
        .with_producer_epoch(job.producer_epoch)
        .with_transaction_result(job.commit)
        .with_coordinator_epoch(job.coordinator_epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, indexes)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                        .with_partition_indexes(indexes)
                })
                .collect(),
        );
    let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
    let sent = match connection.version(ApiKey::WriteTxnMarkers, 1, 1) {
        Ok(version) => connection.send(version, &request).await,
        Err(e) => Err(e),
    };
    let response: WriteTxnMarkersResponse = match sent {
        Ok(r) => r,
        Err(e) => {
            debug!(leader, error = %e, "WriteTxnMarkers failed");
            return retry_all(partitions);
        }
    };
    channels
        .idle
        .lock()
        .await
        .entry(leader)
        .or_insert(connection);
    let mut codes: HashMap<(String, i32), i16> = HashMap::new();
    for result in response.markers {
        for topic in result.topics {
            for p in topic.partitions {
                codes.insert((topic.name.0.to_string(), p.partition_index), p.error_code);
            }
        }
    }
    partitions
        .into_iter()
        .map(|tp| {
            let code = codes
                .get(&tp)
                .copied()
                .unwrap_or(ResponseError::UnknownServerError.code());
            (tp, code)
        })
        .collect()
}

/// Writes `marker` to each of `partitions` this broker leads, then waits until the ISR has
/// each (Kafka appends markers with acks=all): all are appended before any wait, so the
/// partitions replicate them together. For a `__consumer_offsets` partition the group
/// coordinator then applies or drops the transaction's offsets. Returns an error code per
/// partition (0 for success), in order.
pub(crate) async fn write_markers(
    broker: &Broker,
    partitions: &[(String, i32)],
    marker: &TxnMarker,
) -> Vec<i16> {
    let now = crate::log::now_ms();
    let appended: Vec<Result<(Arc<Partition>, Offset), i16>> = partitions
        .iter()
        .map(|(topic, partition)| {
            let Some(served) = broker.partition(topic, *partition) else {
                return Err(crate::handler::not_served_error(broker, topic, *partition));
            };
            match served
                .replica
                .append_marker_as_leader(&served.log, marker, now)
            {
                Ok(appended) => Ok((served, appended.outcome.info().last_offset + 1)),
                Err(LeaderAppendError::Refused(_)) => {
                    Err(ResponseError::NotLeaderOrFollower.code())
                }
                Err(LeaderAppendError::Log(e)) => Err(log_error_code(&e)),
            }
        })
        .collect();
    if appended.iter().any(Result::is_ok) {
        // Long-polling read_committed fetches wake: the last stable offset may have moved.
        broker.notify_appended();
    }
    let deadline = tokio::time::Instant::now() + MARKER_REPLICATION_TIMEOUT;
    let mut codes = Vec::with_capacity(appended.len());
    for result in appended {
        let code = match result {
            Err(code) => code,
            Ok((served, end)) => {
                let code = match served.replica.await_acks(&served.log, end, deadline).await {
                    AckOutcome::Replicated => 0,
                    AckOutcome::NotEnoughReplicasAfterAppend => {
                        ResponseError::NotEnoughReplicasAfterAppend.code()
                    }
                    AckOutcome::NotLeader => ResponseError::NotLeaderOrFollower.code(),
                    AckOutcome::TimedOut => ResponseError::RequestTimedOut.code(),
                };
                if code == 0 && served.tp.topic == OFFSETS_TOPIC && served.tp.partition >= 0 {
                    broker.groups.complete_transaction(
                        served.tp.partition as u32,
                        marker.producer_id,
                        marker.control == ControlType::Commit,
                    );
                }
                code
            }
        };
        codes.push(code);
    }
    codes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_coordinator_answers_stop_sending_and_others_retry() {
        assert_eq!(verdict(0), Verdict::Done);
        assert_eq!(
            verdict(ResponseError::InvalidProducerEpoch.code()),
            Verdict::Fenced
        );
        assert_eq!(
            verdict(ResponseError::TransactionCoordinatorFenced.code()),
            Verdict::Fenced
        );
        for retriable in [
            ResponseError::NotLeaderOrFollower,
            ResponseError::UnknownTopicOrPartition,
            ResponseError::NotEnoughReplicas,
            ResponseError::NotEnoughReplicasAfterAppend,
            ResponseError::RequestTimedOut,
        ] {
            assert_eq!(verdict(retriable.code()), Verdict::Retry, "{retriable:?}");
        }
    }
}
