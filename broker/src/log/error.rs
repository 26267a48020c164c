//! Errors of the partition log. Kafka error codes are mapped from these at the protocol edge.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::batch::BatchError;
use super::config::ConfigError;
use super::producer_state::ProducerError;
use crate::types::Offset;

#[derive(Debug, Error)]
pub enum LogError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// The leader's idempotent-producer checks refused the batch (fenced epoch, sequence).
    #[error(transparent)]
    Producer(#[from] ProducerError),
    #[error("record batch of {size} bytes exceeds max.message.bytes={max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("records of {size} bytes exceed segment.bytes={max}")]
    RecordListTooLarge { size: usize, max: u64 },
    #[error("offset {offset} is out of range: the log holds [{log_start}, {log_end})")]
    OffsetOutOfRange {
        offset: Offset,
        log_start: Offset,
        log_end: Offset,
    },
    #[error("replicated batch at offset {base_offset} does not follow log end offset {log_end}")]
    UnexpectedAppendOffset { base_offset: i64, log_end: Offset },
    #[error("index of segment {path} disagrees with its log at position {position}")]
    CorruptIndex { path: PathBuf, position: u64 },
    #[error("segment {path} holds an unreadable batch at position {position}")]
    CorruptSegment { path: PathBuf, position: u64 },
    #[error("checkpoint file {path} is malformed at line {line}")]
    CorruptCheckpoint { path: PathBuf, line: usize },
    #[error("data directory {path} is locked by another process")]
    DirectoryLocked { path: PathBuf },
    #[error("cannot delete records up to {offset}: beyond the high watermark {high_watermark}")]
    OffsetBeyondHighWatermark {
        offset: Offset,
        high_watermark: Offset,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// Attaches the path an I/O error happened on.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| LogError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
