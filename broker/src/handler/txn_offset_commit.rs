//! TxnOffsetCommit (v0-4): a transactional producer's offset commit for a consumer group,
//! answered once written to `__consumer_offsets` as the producer's transactional batch; the
//! offsets become visible to OffsetFetch when the transaction commits. v4 only allows the
//! coordinator to answer TRANSACTION_ABORTABLE (KIP-890), which this one never needs to;
//! v5 (KIP-890 part 2: the partition is added to the transaction implicitly) is not
//! advertised.

use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::broker::Broker;
use crate::coordinator::group::wire;

pub(super) async fn handle(
    broker: &Broker,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let params = wire::txn_offset_commit_params(&request, version);
    let result = broker
        .groups
        .commit_transactional_offsets(broker, params)
        .await;
    wire::txn_offset_commit_response(result, version)
}
