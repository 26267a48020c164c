//! The transaction coordinator, as a pure state machine, and the `__transaction_state`
//! record formats.
//!
//! One [`TxnCoordinator`] owns the transactional ids of one `__transaction_state` partition
//! that this broker leads, at one coordinator epoch (the partition's leader epoch). It behaves
//! like Kafka's `TransactionCoordinator` / `TransactionMetadata` / `TransactionStateManager`
//! (Kafka 4.0, KIP-890 included): InitProducerId with fencing and KIP-360 recovery,
//! AddPartitionsToTxn (and its KIP-890 verification), AddOffsetsToTxn, EndTxn with the
//! two-phase commit (Prepare* written → markers → Complete* written), transaction timeouts,
//! transactional-id expiry, DescribeTransactions and ListTransactions. It does no I/O and reads
//! no clock: every call takes `now` in milliseconds since the Unix epoch (the records store
//! wall-clock timestamps).
//!
//! # Driving it
//!
//! 1. **Loading.** On becoming the partition's leader, create the coordinator with the new
//!    leader epoch, [`replay`](TxnCoordinator::replay) every record of the partition in
//!    order, then [`finish_loading`](TxnCoordinator::finish_loading) and execute its effects
//!    (markers of transactions left prepared). Until then requests are answered
//!    COORDINATOR_LOAD_IN_PROGRESS.
//! 2. **Requests.** Pick a [`RequestToken`] unique among outstanding requests and call the
//!    handler; each token is answered by exactly one [`Effect::Respond`], in the effects of
//!    that call or of a later `persisted` / `markers_written` / `unload`. InitProducerId and
//!    EndTxn take a *fresh producer id* the caller can spare, and report whether it was taken.
//!    The handlers answer PRODUCER_FENCED; [`error_for_version`] gives the code for older
//!    request versions.
//! 3. **Effects**, in order:
//!    - [`Effect::Respond`]: complete the request.
//!    - [`Effect::Persist`]: append the record to the partition (acks=all), strictly in emission
//!      order, and report the outcome with [`persisted`](TxnCoordinator::persisted).
//!    - [`Effect::WriteMarkers`]: send WriteTxnMarkers to the partitions' leaders, retrying until
//!      each lands or its partition is gone, then call
//!      [`markers_written`](TxnCoordinator::markers_written).
//! 4. **Time.** After each call, arm a timer for [`next_deadline`](TxnCoordinator::next_deadline)
//!    and call [`tick`](TxnCoordinator::tick) when it fires: transaction timeouts, retried
//!    completions, id expiry.
//! 5. **Unloading.** On losing leadership, [`unload`](TxnCoordinator::unload) answers every
//!    waiting request NOT_COORDINATOR; drop pending markers (the next coordinator resends them).
//!
//! # Where it differs from Kafka, and why
//!
//! - Transaction timeouts fire at their exact deadline rather than on Kafka's 10 s scan
//!   (`transaction.abort.timed.out.transaction.cleanup.interval.ms`): same outcome, sooner.
//! - A TV2 EndTxn that overflows the epoch is answered with the new producer id and epoch 0
//!   (what the completion stores); the Kafka 4.0 snapshot this follows answers the old id with
//!   epoch 32767, which the producer cannot use.
//! - A retried KIP-360 InitProducerId whose previous bump reached an exhausted epoch gets the
//!   same answer again, where Kafka throws (UNKNOWN_SERVER_ERROR).
//! - Kafka's internal `IllegalStateException`s (transitions its checks make unreachable)
//!   answer UNKNOWN_SERVER_ERROR and leave the state unchanged instead of a stuck pending state.
//! - Expired ids are tombstoned one record per id instead of in batches.

mod api;
mod config;
mod coordinator;
mod metadata;
pub mod records;

pub use api::{
    AddOffsetsParams, AddPartitionsParams, Effect, EndTxnParams, InitProducerIdParams, ListedTxn,
    ListedTxns, PersistId, RequestToken, Response, TxnApi, TxnDescription, TxnOutcome,
    coordinator_error_for_append, error_for_version,
};
pub use config::{ConfigError, TxnConfig};
pub use coordinator::{CONSUMER_OFFSETS_TOPIC, TxnCoordinator};
pub use metadata::{
    IllegalTransition, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TransactionVersion, Transit, TxnMetadata,
    TxnState, is_epoch_exhausted,
};
pub use records::{RecordError, TxnLogValue};

#[cfg(test)]
mod tests;
