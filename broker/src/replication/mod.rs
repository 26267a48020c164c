//! Replication: followers copy each partition's log from its leader with the Kafka Fetch API,
//! and the leader keeps the ISR and the high watermark, as Kafka's `ReplicaManager`,
//! `Partition` and `ReplicaFetcherThread` do.
//!
//! - [`state`]: one partition's replication state and rules (roles, epochs, high watermark,
//!   ISR shrink and expand, pending ISR changes, min.insync.replicas) — pure, no I/O;
//! - [`truncation`]: how a follower truncates by leader epoch (KIP-101/279) — pure;
//! - [`PartitionReplica`]: that state shared by handlers and tasks, with the log operations
//!   that depend on it (leader appends, acks=all waits, follower appends and truncation);
//! - [`ReplicaManager`]: applies metadata to the served partitions, runs one fetcher per leader
//!   (`fetcher`, over `client`'s Kafka connection), the periodic ISR check, and sends ISR
//!   changes to the controller through an [`IsrCommitter`];
//! - [`ReplicationConfig`]: the `replica.*` settings.
//!
//! Invariants kept here: a partition's log is written as leader only while this broker leads
//! it in the epoch it appends with, and as follower only in the epoch it follows; the high
//! watermark of a leader never decreases and never passes the smallest log end offset of its
//! (maximal) ISR; a single-replica partition's high watermark is its log end offset.

mod client;
mod config;
mod fetcher;
mod isr;
mod manager;
mod partition;
pub mod state;
pub mod truncation;

pub use client::{ClientError, LeaderConnection};
pub use config::ReplicationConfig;
pub use isr::{IsrCommitError, IsrCommitFuture, IsrCommitter};
pub use manager::ReplicaManager;
pub(crate) use manager::monotonic_ms;
pub use partition::{
    AckOutcome, FollowerAppend, FollowerLogError, LeaderAppend, LeaderAppendError, PartitionReplica,
};
