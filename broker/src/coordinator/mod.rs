//! Coordinators: the state machines behind Kafka's coordinator APIs.
//!
//! - [`group`]: the classic consumer-group coordinator (JoinGroup, SyncGroup, Heartbeat,
//!   LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups,
//!   OffsetDelete) and the `__consumer_offsets` record formats it persists.
//!
//! - [`txn`]: the transaction coordinator (InitProducerId with a transactional id,
//!   AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, DescribeTransactions, ListTransactions) and
//!   the `__transaction_state` record formats it persists.
//!
//! - [`group_service`]: the group coordinator's I/O — a coordinator per led
//!   `__consumer_offsets` partition, loading, persisting, timers and parked requests.
//!
//! - [`txn_service`]: the transaction coordinator's I/O — a coordinator per led
//!   `__transaction_state` partition, loading, persisting (acks=all), timers — and
//!   [`txn_markers`]: sending COMMIT/ABORT markers to partition leaders, and writing them as one.
//!
//! - [`txn_verify`]: a partition leader asking a transaction coordinator whether partitions
//!   are in a producer's ongoing transaction (KIP-890 part 1, before a transactional produce).
//!
//! Everything else here is pure: no sockets, no tasks, no files and no clock reads. Callers pass the
//! current time in, hand each parked request a token, and execute the effects the state
//! machines return (send a response, append records to `__consumer_offsets`).

pub(crate) mod codec;
pub mod group;
pub mod group_service;
pub mod txn;
pub mod txn_markers;
pub mod txn_service;
pub mod txn_verify;
