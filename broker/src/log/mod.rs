//! The partition log: Kafka's segment-log storage, byte for byte.
//!
//! ```text
//! <data-dir>/
//!   .lock                               held while a broker uses the directory
//!   .kafka_cleanshutdown                written on clean shutdown, removed on start
//!   recovery-point-offset-checkpoint    per partition: offset below which data was fsynced
//!   log-start-offset-checkpoint         per partition: log start offset
//!   cleaner-offset-checkpoint           per compacted partition: first dirty offset
//!   <topic>-<partition>/
//!     00000000000000000000.log          record batches (magic v2) exactly as on the wire
//!     00000000000000000000.index        sparse offset index
//!     00000000000000000000.timeindex    time index
//!     00000000000000000000.txnindex     aborted transactions whose marker is in the segment (`txn_index`)
//!     00000000000000000000.snapshot     producer state below that offset (`producer_state`)
//!     leader-epoch-checkpoint           epoch -> first offset
//!     partition.metadata                the topic id the directory belongs to
//! ```
//!
//! - [`batch`]: the v2 batch format, validation, and the header rewrite that assigns offsets.
//! - [`Log`]: one partition — append, read, lookups, roll, truncate, flush, retention.
//! - [`producer_state`]: idempotent producers' epochs and sequences, checked on leader
//!   appends, their open transactions, and the snapshot format; `producer_snapshots` keeps the
//!   snapshot files.
//! - `txn`: transaction markers, coordinator appends, the last stable offset and the aborted
//!   transactions of a read_committed fetch; `txn_index` is the `.txnindex` file format.
//! - [`cleaner`](CleanTask): compaction of `cleanup.policy=compact` logs, crash-safe segment
//!   swaps, and the cleaner's checkpoint.
//! - [`LogManager`]: one data directory — lock, checkpoints, clean-shutdown marker, and the
//!   broker-wide [`SegmentCache`] bounding open sealed segments.

pub mod batch;
mod cache;
mod checkpoint;
mod cleaner;
pub mod config;
mod epoch;
mod error;
mod index;
mod manager;
mod mmap;
mod partition;
mod partition_metadata;
mod producer_snapshots;
pub mod producer_state;
mod recovery;
mod retention;
mod scan;
mod segment;
mod txn;
mod txn_index;
mod view;
mod writeback;

pub use cache::SegmentCache;
pub use cleaner::{
    CleanOutcome, CleanTask, Cleanable, CleanedGroup, CleanerError, CleanerOptions, CleanerStats,
};
pub use config::{CleanupPolicy, ConfigError, LogConfig, Ratio};
pub use epoch::{EpochEntry, LeaderEpochCache};
pub use error::{LogError, Result};
pub use manager::{LogManager, SharedLog, TopicIdCheck};
pub use partition::{AppendInfo, AppendOutcome, Log, LogSlice};
pub use producer_state::{ProducerError, ProducerState, TxnVerification, VerificationGuard};
pub use recovery::OpenOptions;
pub use retention::RetentionOutcome;
pub use txn::{ControlType, TxnMarker};
pub use txn_index::AbortedTxn;
pub use view::TimestampOffset;
pub use writeback::PageCachePolicy;

/// Wall-clock milliseconds since the Unix epoch, Kafka's timestamp unit.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
