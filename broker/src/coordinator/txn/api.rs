//! What goes into the transaction coordinator and what comes out: request parameters,
//! results, and the effects the caller executes.
//!
//! Kafka error codes are `kafka_protocol::ResponseError`s. The coordinator answers with the
//! codes of current Kafka (PRODUCER_FENCED); [`error_for_version`] maps them for older
//! request versions in the one place Kafka does it (its request handlers).

use std::fmt;

use bytes::Bytes;
use kafka_protocol::ResponseError;

/// The token the caller attaches to a request it hands to the coordinator. The coordinator
/// answers it in exactly one [`Effect::Respond`] naming the token, in the effects of that call
/// or of a later one (requests wait for their `__transaction_state` write). The caller picks
/// the values; they must be unique among its outstanding requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestToken(pub u64);

/// Names one [`Effect::Persist`]; the caller reports its outcome with
/// [`TxnCoordinator::persisted`](super::TxnCoordinator::persisted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistId(pub(super) u64);

impl fmt::Display for PersistId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// InitProducerId with a transactional id (the caller answers the idempotent-only form,
/// without one, itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitProducerIdParams {
    pub transactional_id: String,
    pub transaction_timeout_ms: i32,
    /// v3+ (KIP-360): the producer's current id and epoch, -1/-1 when it has none.
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// AddPartitionsToTxn for one transaction (v4+ batches several; the caller splits them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddPartitionsParams {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Partitions that exist: the caller answers the request itself (UNKNOWN_TOPIC_OR_PARTITION
    /// for missing ones, OPERATION_NOT_ATTEMPTED for the rest) when any does not.
    pub partitions: Vec<(String, i32)>,
    /// v4+ broker-to-broker verification (KIP-890 part 1): only say whether each partition is
    /// in the ongoing transaction.
    pub verify_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddOffsetsParams {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The `__consumer_offsets` partition of the group (the caller computes it).
    pub offsets_partition: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndTxnParams {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    /// The client sent EndTxn v5+ (transaction version 2, KIP-890 part 2): every EndTxn bumps
    /// the epoch, and the response carries the new one.
    pub epoch_bump: bool,
}

/// DescribeTransactions for one id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    /// Kafka's state name ("Empty", "Ongoing", …).
    pub state: &'static str,
    pub transaction_timeout_ms: i32,
    /// -1 when no transaction has started.
    pub transaction_start_time_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Topics in order, each with its partitions in order.
    pub topics: Vec<(String, Vec<i32>)>,
}

/// One row of ListTransactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedTxn {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: &'static str,
}

/// ListTransactions for this coordinator's partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListedTxns {
    pub transactions: Vec<ListedTxn>,
    /// State filters that name no state (Kafka reports them in `UnknownStateFilters`).
    pub unknown_state_filters: Vec<String>,
}

/// A response to a request that came with a [`RequestToken`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The producer id and epoch, or the error (the caller answers -1/-1 with it).
    InitProducerId(Result<(i64, i16), ResponseError>),
    /// One error (or none) per partition of the request, in its order.
    AddPartitions(Vec<((String, i32), Option<ResponseError>)>),
    AddOffsets(Option<ResponseError>),
    /// The producer id and epoch the client continues with (TV2: the bumped epoch), or the
    /// error (answered with -1/-1).
    EndTxn(Result<(i64, i16), ResponseError>),
}

/// What the caller must do after handing the coordinator an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Complete the request that came with `token`.
    Respond {
        token: RequestToken,
        response: Response,
    },
    /// Append one record (`value: None` is a tombstone) to this coordinator's
    /// `__transaction_state` partition, with acks=all, after every earlier `Persist` of this
    /// coordinator, then report the outcome with
    /// [`TxnCoordinator::persisted`](super::TxnCoordinator::persisted) (`Err` with the append's
    /// Kafka error). Every `Persist` must be reported once.
    Persist {
        id: PersistId,
        transactional_id: String,
        key: Bytes,
        value: Option<Bytes>,
    },
    /// Send WriteTxnMarkers for these partitions to their leaders, retrying each until it lands
    /// or its partition is gone, then call
    /// [`TxnCoordinator::markers_written`](super::TxnCoordinator::markers_written) once for
    /// the whole set.
    WriteMarkers {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        partitions: Vec<(String, i32)>,
    },
}

/// What InitProducerId and EndTxn return: their effects, and whether the fresh producer id
/// the caller offered was taken (then the caller must never hand it out again).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnOutcome {
    pub effects: Vec<Effect>,
    pub used_fresh_producer_id: bool,
}

/// How Kafka answers a request whose `__transaction_state` append failed with `error`
/// (`TransactionStateManager.appendTransactionToLog`): clients retry COORDINATOR_NOT_AVAILABLE
/// in place and look the coordinator up again after NOT_COORDINATOR.
pub fn coordinator_error_for_append(error: ResponseError) -> ResponseError {
    match error {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend
        | ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => {
            ResponseError::NotCoordinator
        }
        ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge => {
            ResponseError::UnknownServerError
        }
        other => other,
    }
}

/// The transaction APIs whose old versions predate PRODUCER_FENCED.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnApi {
    InitProducerId,
    AddPartitionsToTxn,
    AddOffsetsToTxn,
    EndTxn,
}

/// The error a client of `api` at `version` is sent for `error`: Kafka answers
/// INVALID_PRODUCER_EPOCH instead of PRODUCER_FENCED to InitProducerId before v4 and to
/// AddPartitionsToTxn, AddOffsetsToTxn and EndTxn before v2, which do not know the newer code.
pub fn error_for_version(api: TxnApi, version: i16, error: ResponseError) -> ResponseError {
    let fenced_since = match api {
        TxnApi::InitProducerId => 4,
        TxnApi::AddPartitionsToTxn | TxnApi::AddOffsetsToTxn | TxnApi::EndTxn => 2,
    };
    if error == ResponseError::ProducerFenced && version < fenced_since {
        ResponseError::InvalidProducerEpoch
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_request_versions_get_invalid_producer_epoch_instead_of_producer_fenced() {
        let fenced = ResponseError::ProducerFenced;
        let old = ResponseError::InvalidProducerEpoch;
        assert_eq!(error_for_version(TxnApi::InitProducerId, 3, fenced), old);
        assert_eq!(error_for_version(TxnApi::InitProducerId, 4, fenced), fenced);
        assert_eq!(error_for_version(TxnApi::EndTxn, 1, fenced), old);
        assert_eq!(error_for_version(TxnApi::EndTxn, 2, fenced), fenced);
        assert_eq!(
            error_for_version(TxnApi::AddPartitionsToTxn, 1, fenced),
            old
        );
        assert_eq!(
            error_for_version(TxnApi::AddOffsetsToTxn, 3, fenced),
            fenced
        );
        let other = ResponseError::ConcurrentTransactions;
        assert_eq!(error_for_version(TxnApi::EndTxn, 0, other), other);
    }

    #[test]
    fn append_errors_map_as_kafkas_transaction_state_manager() {
        use ResponseError::*;
        assert_eq!(
            coordinator_error_for_append(NotEnoughReplicas),
            CoordinatorNotAvailable
        );
        assert_eq!(
            coordinator_error_for_append(NotEnoughReplicasAfterAppend),
            CoordinatorNotAvailable
        );
        assert_eq!(
            coordinator_error_for_append(RequestTimedOut),
            CoordinatorNotAvailable
        );
        assert_eq!(
            coordinator_error_for_append(NotLeaderOrFollower),
            NotCoordinator
        );
        assert_eq!(
            coordinator_error_for_append(KafkaStorageError),
            NotCoordinator
        );
        assert_eq!(
            coordinator_error_for_append(MessageTooLarge),
            UnknownServerError
        );
        assert_eq!(coordinator_error_for_append(InvalidRecord), InvalidRecord);
    }
}
