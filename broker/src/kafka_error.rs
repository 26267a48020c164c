//! The one place Rust errors become Kafka error codes.

use kafka_protocol::ResponseError;
use weir_controller::ControllerError;

use crate::log::batch::BatchError;
use crate::log::{LogError, ProducerError};

/// The Kafka error code for a log error.
pub fn log_error_code(err: &LogError) -> i16 {
    match err {
        LogError::InvalidBatch(BatchError::CorruptCrc { .. }) => {
            ResponseError::CorruptMessage.code()
        }
        LogError::InvalidBatch(_) => ResponseError::InvalidRecord.code(),
        LogError::Producer(ProducerError::InvalidProducerEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch.code()
        }
        LogError::Producer(
            ProducerError::OutOfOrderSequence { .. } | ProducerError::NewEpochNotAtZero { .. },
        ) => ResponseError::OutOfOrderSequenceNumber.code(),
        LogError::Producer(
            ProducerError::InvalidTxnState { .. } | ProducerError::NotVerified { .. },
        ) => ResponseError::InvalidTxnState.code(),
        LogError::Producer(ProducerError::CoordinatorFenced { .. }) => {
            ResponseError::TransactionCoordinatorFenced.code()
        }
        LogError::MessageTooLarge { .. } => ResponseError::MessageTooLarge.code(),
        LogError::RecordListTooLarge { .. } => ResponseError::RecordListTooLarge.code(),
        LogError::OffsetOutOfRange { .. } | LogError::OffsetBeyondHighWatermark { .. } => {
            ResponseError::OffsetOutOfRange.code()
        }
        LogError::Io { .. }
        | LogError::CorruptIndex { .. }
        | LogError::CorruptSegment { .. }
        | LogError::CorruptCheckpoint { .. }
        | LogError::Producer(ProducerError::CorruptSnapshot { .. }) => {
            ResponseError::KafkaStorageError.code()
        }
        LogError::UnexpectedAppendOffset { .. }
        | LogError::DirectoryLocked { .. }
        | LogError::Config(_) => ResponseError::UnknownServerError.code(),
    }
}

/// The Kafka error code for a controller error.
pub fn controller_error_code(err: &ControllerError) -> i16 {
    err.kafka_error_code()
}

pub const NONE: i16 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_errors_get_kafkas_idempotence_codes() {
        let code = |e: ProducerError| log_error_code(&LogError::Producer(e));
        let out_of_order = ProducerError::OutOfOrderSequence {
            producer_id: 1,
            epoch: 0,
            first_seq: 5,
            last_seq: 2,
        };
        assert_eq!(code(out_of_order), 45); // OUT_OF_ORDER_SEQUENCE_NUMBER
        let new_epoch = ProducerError::NewEpochNotAtZero {
            producer_id: 1,
            epoch: 1,
            current_epoch: 0,
            first_seq: 5,
        };
        assert_eq!(code(new_epoch), 45);
        let fenced = ProducerError::InvalidProducerEpoch {
            producer_id: 1,
            epoch: 0,
            current_epoch: 1,
        };
        assert_eq!(code(fenced), 47); // INVALID_PRODUCER_EPOCH
        let txn_open = ProducerError::InvalidTxnState {
            producer_id: 1,
            txn_first_offset: crate::types::Offset(3),
        };
        assert_eq!(code(txn_open), 48); // INVALID_TXN_STATE
        let zombie = ProducerError::CoordinatorFenced {
            producer_id: 1,
            coordinator_epoch: 2,
            current_coordinator_epoch: 3,
        };
        assert_eq!(code(zombie), 52); // TRANSACTION_COORDINATOR_FENCED
        let corrupt = ProducerError::CorruptSnapshot { reason: "test" };
        assert_eq!(code(corrupt), 56); // KAFKA_STORAGE_ERROR
    }
}
