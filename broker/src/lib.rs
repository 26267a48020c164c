//! Weir's broker: a Kafka-compatible streaming broker.
//!
//! This crate holds the storage engine ([`log`]) — the per-partition segment log in Kafka's
//! on-disk format that produce, fetch, replication, retention, compaction and transactions
//! stand on.

pub mod dump;
pub mod log;
pub mod types;
