//! The classic consumer-group coordinator, as a pure state machine.
//!
//! One [`GroupCoordinator`] owns the groups of one `__consumer_offsets` partition (the
//! partition is [`partition_for`] the group id). It behaves like Kafka's classic group
//! coordinator (`GroupMetadataManager` / `ClassicGroup` in Kafka 3.x–4.x): the states Empty →
//! PreparingRebalance → CompletingRebalance → Stable, join and sync "purgatories", static
//! membership, the initial rebalance delay, and committed offsets with Kafka's retention
//! rules. It does no I/O and reads no clock: every call takes `now` in milliseconds since the
//! Unix epoch (commit timestamps and offset expiry are wall-clock in Kafka's records).
//!
//! # Driving it
//!
//! The caller (the async glue) holds each coordinator behind a lock and:
//!
//! 1. **Requests.** Decodes a request into its params (see [`wire`] for the conversions,
//!    which apply the version-dependent defaults) and calls the method for it:
//!    - JoinGroup, SyncGroup, OffsetCommit and TxnOffsetCommit may be *parked*: the caller picks a
//!      [`RequestToken`] unique among its outstanding requests, calls
//!      [`GroupCoordinator::join_group`] / [`sync_group`](GroupCoordinator::sync_group) /
//!      [`commit_offsets`](GroupCoordinator::commit_offsets), executes the returned effects,
//!      and waits for an [`Effect::Respond`] naming the token — in these effects or those of
//!      any later call. Every token is answered exactly once.
//!    - Heartbeat, LeaveGroup, OffsetDelete and DeleteGroups answer at once (LeaveGroup and
//!      the deletes return an [`Outcome`] whose effects complete *other* requests or write
//!      tombstones); OffsetFetch, DescribeGroups and ListGroups are read-only queries.
//! 2. **Effects**, in order:
//!    - [`Effect::Respond`]: complete the parked request with that token.
//!    - [`Effect::Persist`]: append the records to the partition as one batch, strictly in
//!      emission order per coordinator (later records must win on replay), and report the
//!      outcome with [`GroupCoordinator::persisted`] — `Err` with the Kafka error of the
//!      append. Only some writes have waiters, but every outcome may be reported.
//! 3. **Time.** After each call, re-arm a timer for [`GroupCoordinator::next_deadline`] and
//!    call [`GroupCoordinator::tick`] when it fires (late is fine; early does nothing).
//!    Ticks fire session timeouts, the join-phase deadlines (rebalance timeout, initial
//!    rebalance delay), the sync deadline, expired MEMBER_ID_REQUIRED ids, and the periodic
//!    offset expiry (`offsets.retention.check.interval.ms`).
//! 4. **Ownership.** On becoming the partition's leader, replay the partition's records
//!    (key, value-or-tombstone) with [`GroupCoordinator::load`] or a [`Loader`]; on losing
//!    it, [`GroupCoordinator::unload`] answers every parked request NOT_COORDINATOR. Requests
//!    for groups of partitions this broker does not coordinate are answered NOT_COORDINATOR
//!    (or COORDINATOR_LOAD_IN_PROGRESS while loading) by the caller, without a coordinator.
//!
//! # Where it differs from Kafka, and why
//!
//! - Dead is never a stored state: Kafka marks groups Dead while other threads may still hold
//!   them; here the single owner removes the group (or drops the whole coordinator).
//! - A parked request that its member replaces with a new one (a client retry on a new
//!   connection) is answered REBALANCE_IN_PROGRESS instead of being dropped, so no token
//!   leaks.
//! - OffsetDelete and DeleteGroups answer before their tombstones are stored (as Kafka's
//!   original coordinator did; the newer one waits).
//!
//! # Transactional offset commits
//!
//! TxnOffsetCommit is parked like OffsetCommit; its records go out as an [`Effect::Persist`]
//! with `transaction: Some(producer)`, which the caller appends as that producer's
//! transactional batch. The offsets stay pending until the caller reports the transaction's
//! marker with [`GroupCoordinator::complete_transaction`] (see [`txn_offsets`]).

mod api;
pub(crate) mod batch;
mod config;
mod coordinator;
mod ctx;
mod ids;
mod load;
mod member;
mod membership;
mod offsets;
pub mod records;
mod state;
mod sync;
mod txn_offsets;
pub mod wire;

pub use api::{
    CommitPartition, CommitTopic, DescribedMember, Effect, FetchedPartition, FetchedTopic,
    GroupDescription, HeartbeatParams, JoinGroupParams, JoinGroupResult, JoinedMember,
    LeaveGroupParams, LeaveGroupResult, LeavingMember, LeftMember, ListedGroup, OffsetCommitParams,
    OffsetCommitResult, OffsetDeleteResult, Outcome, PartitionResult, Protocol, Response,
    SyncGroupParams, SyncGroupResult, TopicPartitions, TopicResult, TxnOffsetCommitParams,
    TxnProducer, coordinator_error_for_append,
};
pub use config::{ConfigError, GroupConfig};
pub use coordinator::GroupCoordinator;
pub use ids::{
    GenerationId, GroupId, InstanceId, MemberId, PersistId, RequestToken, partition_for,
};
pub use load::Loader;
pub use offsets::OffsetAndMetadata;
pub use records::{OffsetsRecord, RecordError};
pub use state::GroupState;

#[cfg(test)]
mod tests;
