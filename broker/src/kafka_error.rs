//! The one place Rust errors become Kafka error codes.

use kafka_protocol::ResponseError;
use weir_controller::ControllerError;

use crate::log::LogError;
use crate::log::batch::BatchError;

/// The Kafka error code for a log error.
pub fn log_error_code(err: &LogError) -> i16 {
    match err {
        LogError::InvalidBatch(BatchError::CorruptCrc { .. }) => {
            ResponseError::CorruptMessage.code()
        }
        LogError::InvalidBatch(_) => ResponseError::InvalidRecord.code(),
        LogError::MessageTooLarge { .. } => ResponseError::MessageTooLarge.code(),
        LogError::RecordListTooLarge { .. } => ResponseError::RecordListTooLarge.code(),
        LogError::OffsetOutOfRange { .. } | LogError::OffsetBeyondHighWatermark { .. } => {
            ResponseError::OffsetOutOfRange.code()
        }
        LogError::Io { .. }
        | LogError::CorruptIndex { .. }
        | LogError::CorruptSegment { .. }
        | LogError::CorruptCheckpoint { .. } => ResponseError::KafkaStorageError.code(),
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
