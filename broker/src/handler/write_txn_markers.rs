//! WriteTxnMarkers (v1): a transaction coordinator asks this broker, as the leader of the
//! partitions named, to write COMMIT or ABORT markers for a producer. Each marker is appended
//! as a control batch and answered once the ISR has it; for `__consumer_offsets` partitions
//! the group coordinator then applies or discards the transaction's offsets. A partition led
//! elsewhere is NOT_LEADER_OR_FOLLOWER, a marker older than the producer's epoch
//! INVALID_PRODUCER_EPOCH, one from a stale coordinator TRANSACTION_COORDINATOR_FENCED.

use std::collections::BTreeMap;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::coordinator::txn_markers::write_markers;
use crate::log::{ControlType, TxnMarker};

pub(super) async fn handle(
    broker: &Broker,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut results = Vec::with_capacity(request.markers.len());
    for m in request.markers {
        let marker = TxnMarker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: m.coordinator_epoch,
            control: if m.transaction_result {
                ControlType::Commit
            } else {
                ControlType::Abort
            },
        };
        let partitions: Vec<(String, i32)> = m
            .topics
            .iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partition_indexes.iter().map(move |&p| (name.clone(), p))
            })
            .collect();
        let codes = write_markers(broker, &partitions, &marker).await;
        let mut topics: BTreeMap<String, Vec<WritableTxnMarkerPartitionResult>> = BTreeMap::new();
        for ((topic, partition), code) in partitions.into_iter().zip(codes) {
            topics.entry(topic).or_default().push(
                WritableTxnMarkerPartitionResult::default()
                    .with_partition_index(partition)
                    .with_error_code(code),
            );
        }
        results.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            WritableTxnMarkerTopicResult::default()
                                .with_name(TopicName(StrBytes::from_string(name)))
                                .with_partitions(partitions)
                        })
                        .collect(),
                ),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(results)
}
