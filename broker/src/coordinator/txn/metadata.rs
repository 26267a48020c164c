//! One transactional id's state and its transitions, as Kafka's `TransactionMetadata`.
//!
//! A transition is two-phase: `prepare_*` validates it and returns the target [`Transit`]
//! while recording its state as the *pending state* (which blocks any other transition), and
//! [`TxnMetadata::complete_transition`] applies the transit once its record is durable. A
//! failed write clears the pending state ([`TxnMetadata::abort_transition`]) and leaves the
//! metadata as it was.
//!
//! Invariants (Kafka's `validPreviousStates` and `completeTransitionTo` checks):
//! - at most one pending transition;
//! - Empty holds no partitions and no start timestamp;
//! - the epoch only grows for a producer id, except that a new producer id restarts at 0;
//! - Ongoing only ever adds partitions; Prepare* keeps them; Complete* clears them.

use std::collections::BTreeSet;
use std::fmt;

use thiserror::Error;

/// Kafka's `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Kafka's `TransactionState`, with its `int8` ids in the log and its names in
/// DescribeTransactions / ListTransactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    /// Being expired: never written, only pending while its tombstone is written.
    Dead,
    /// Fencing the producer: never written, only pending on the way to PrepareAbort.
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The name Kafka shows in DescribeTransactions and ListTransactions.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    fn valid_previous(self, from: TxnState) -> bool {
        use TxnState::*;
        match self {
            Empty => matches!(from, Empty | CompleteCommit | CompleteAbort),
            Ongoing => matches!(from, Ongoing | Empty | CompleteCommit | CompleteAbort),
            PrepareCommit => from == Ongoing,
            PrepareAbort => matches!(from, Ongoing | PrepareEpochFence),
            CompleteCommit => from == PrepareCommit,
            CompleteAbort => from == PrepareAbort,
            Dead => matches!(from, Empty | CompleteAbort | CompleteCommit),
            PrepareEpochFence => from == Ongoing,
        }
    }

    /// Whether an idle id in this state may be expired (`transactional.id.expiration.ms`).
    pub fn is_expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

impl fmt::Display for TxnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Kafka's `transaction.version` feature level, also recorded per transactional id as the
/// version its client used (`ClientTransactionVersion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransactionVersion(pub i16);

impl TransactionVersion {
    pub const TV_0: TransactionVersion = TransactionVersion(0);
    pub const TV_1: TransactionVersion = TransactionVersion(1);
    /// KIP-890 part 2: the epoch is bumped at every EndTxn (EndTxn v5+).
    pub const TV_2: TransactionVersion = TransactionVersion(2);

    pub fn supports_epoch_bump(self) -> bool {
        self.0 >= 2
    }

    /// The `TransactionLogValue` version Kafka writes at this feature level.
    pub fn log_value_version(self) -> i16 {
        if self.0 >= 1 { 1 } else { 0 }
    }
}

/// Kafka's `TransactionMetadata.isEpochExhausted`: clients never get `i16::MAX`, so the
/// coordinator can always fence them once more.
pub fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// A transition a record is being written for (Kafka's `TxnTransitMetadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transit {
    pub producer_id: i64,
    /// The producer id before the transition (what the record stores as PreviousProducerId).
    pub prev_producer_id: i64,
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub state: TxnState,
    pub topic_partitions: BTreeSet<(String, i32)>,
    pub txn_start_timestamp: i64,
    pub txn_last_update_timestamp: i64,
    pub client_transaction_version: TransactionVersion,
}

/// A transition the metadata's current state does not allow. Kafka throws an
/// `IllegalStateException` (answered UNKNOWN_SERVER_ERROR); the coordinator's checks make
/// these unreachable.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error(
    "transactional id {transactional_id}: illegal transition from {from} (pending {pending:?}) to {to}"
)]
pub struct IllegalTransition {
    pub transactional_id: String,
    pub from: TxnState,
    pub pending: Option<TxnState>,
    pub to: TxnState,
}

/// The coordinator's view of one transactional id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last Empty or (TV2) Complete transition; KIP-360 accepts a
    /// retry from it after an epoch overflow.
    pub previous_producer_id: i64,
    /// TV2: the producer id the next Complete* moves to when the epoch overflowed.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, so a retried InitProducerId (KIP-360) gets the same
    /// answer. Not stored in the log: -1 after loading.
    pub last_producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub state: TxnState,
    pub topic_partitions: BTreeSet<(String, i32)>,
    /// When the first partition was added; -1 when no transaction has started.
    pub txn_start_timestamp: i64,
    pub txn_last_update_timestamp: i64,
    pub client_transaction_version: TransactionVersion,
    pub pending_state: Option<TxnState>,
    /// A previous fence's PrepareAbort write failed after the epoch was bumped in memory: the
    /// next fence reuses that epoch instead of bumping again.
    pub has_failed_epoch_fence: bool,
}

impl TxnMetadata {
    /// A transactional id seen for the first time: Empty, no epoch yet.
    pub fn new(transactional_id: String, producer_id: i64, txn_timeout_ms: i32, now: i64) -> Self {
        TxnMetadata {
            transactional_id,
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms,
            state: TxnState::Empty,
            topic_partitions: BTreeSet::new(),
            txn_start_timestamp: -1,
            txn_last_update_timestamp: now,
            client_transaction_version: TransactionVersion::TV_0,
            pending_state: None,
            has_failed_epoch_fence: false,
        }
    }

    /// The metadata a loaded record describes (Kafka's `readTxnRecordValue`).
    pub fn from_log(transactional_id: String, value: super::records::TxnLogValue) -> Self {
        TxnMetadata {
            transactional_id,
            producer_id: value.producer_id,
            previous_producer_id: value.previous_producer_id,
            next_producer_id: value.next_producer_id,
            producer_epoch: value.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms: value.transaction_timeout_ms,
            state: value.state,
            topic_partitions: value.partitions,
            txn_start_timestamp: value.start_timestamp_ms,
            txn_last_update_timestamp: value.last_update_timestamp_ms,
            client_transaction_version: value.client_transaction_version,
            pending_state: None,
            has_failed_epoch_fence: false,
        }
    }

    pub fn pending_transition_in_progress(&self) -> bool {
        self.pending_state.is_some()
    }

    pub fn is_producer_epoch_exhausted(&self) -> bool {
        is_epoch_exhausted(self.producer_epoch)
    }

    /// Fence the producer: the epoch goes up by one (unless a previous fence already bumped it
    /// without being written) on the way to aborting the open transaction.
    pub fn prepare_fence_producer_epoch(&mut self) -> Result<Transit, IllegalTransition> {
        if self.producer_epoch == i16::MAX {
            return Err(self.illegal(TxnState::PrepareEpochFence));
        }
        let bumped = if self.has_failed_epoch_fence {
            self.producer_epoch
        } else {
            self.producer_epoch + 1
        };
        self.prepare(TxnState::PrepareEpochFence, |m| Transit {
            producer_epoch: bumped,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            ..m.transit_base()
        })
    }

    /// InitProducerId on an idle id: bump the epoch. `Ok(None)` is Kafka's PRODUCER_FENCED
    /// (the expected epoch is neither the current nor the last one).
    pub fn prepare_increment_producer_epoch(
        &mut self,
        new_txn_timeout_ms: i32,
        expected_epoch: Option<i16>,
        now: i64,
    ) -> Result<Option<Transit>, IllegalTransition> {
        let (epoch, last_epoch) = match expected_epoch {
            None => (self.producer_epoch.checked_add(1), NO_PRODUCER_EPOCH),
            Some(expected)
                if self.producer_epoch == NO_PRODUCER_EPOCH || expected == self.producer_epoch =>
            {
                (self.producer_epoch.checked_add(1), self.producer_epoch)
            }
            // A retry of a bump whose answer the producer never got: the same answer again.
            Some(expected) if expected == self.last_producer_epoch => {
                (Some(self.producer_epoch), self.last_producer_epoch)
            }
            Some(_) => return Ok(None),
        };
        let epoch = match epoch {
            Some(epoch)
                if !is_epoch_exhausted(self.producer_epoch) || epoch == self.producer_epoch =>
            {
                epoch
            }
            _ => return Err(self.illegal(TxnState::Empty)),
        };
        self.prepare(TxnState::Empty, |m| Transit {
            producer_epoch: epoch,
            last_producer_epoch: last_epoch,
            txn_timeout_ms: new_txn_timeout_ms,
            topic_partitions: BTreeSet::new(),
            txn_start_timestamp: -1,
            txn_last_update_timestamp: now,
            ..m.transit_base()
        })
        .map(Some)
    }

    /// InitProducerId when the epoch is exhausted: a new producer id at epoch 0.
    pub fn prepare_producer_id_rotation(
        &mut self,
        new_producer_id: i64,
        new_txn_timeout_ms: i32,
        now: i64,
        record_last_epoch: bool,
    ) -> Result<Transit, IllegalTransition> {
        if matches!(
            self.state,
            TxnState::Ongoing | TxnState::PrepareAbort | TxnState::PrepareCommit
        ) {
            return Err(self.illegal(TxnState::Empty));
        }
        let last_epoch = if record_last_epoch {
            self.producer_epoch
        } else {
            NO_PRODUCER_EPOCH
        };
        self.prepare(TxnState::Empty, |m| Transit {
            producer_id: new_producer_id,
            producer_epoch: 0,
            last_producer_epoch: last_epoch,
            txn_timeout_ms: new_txn_timeout_ms,
            topic_partitions: BTreeSet::new(),
            txn_start_timestamp: -1,
            txn_last_update_timestamp: now,
            ..m.transit_base()
        })
    }

    pub fn prepare_add_partitions(
        &mut self,
        added: &[(String, i32)],
        now: i64,
    ) -> Result<Transit, IllegalTransition> {
        let start = match self.state {
            TxnState::Empty | TxnState::CompleteAbort | TxnState::CompleteCommit => now,
            _ => self.txn_start_timestamp,
        };
        let mut partitions = self.topic_partitions.clone();
        partitions.extend(added.iter().cloned());
        self.prepare(TxnState::Ongoing, |m| Transit {
            topic_partitions: partitions,
            txn_start_timestamp: start,
            txn_last_update_timestamp: now,
            ..m.transit_base()
        })
    }

    /// EndTxn on an Ongoing transaction. With TV2 the epoch is bumped here, and
    /// `next_producer_id` (a new id, when that bump exhausts the epochs) takes over at Complete.
    pub fn prepare_abort_or_commit(
        &mut self,
        state: TxnState,
        client_version: TransactionVersion,
        next_producer_id: i64,
        now: i64,
    ) -> Result<Transit, IllegalTransition> {
        let (epoch, last_epoch) = if client_version.supports_epoch_bump() {
            match self.producer_epoch.checked_add(1) {
                Some(epoch) => (epoch, self.producer_epoch),
                None => return Err(self.illegal(state)),
            }
        } else {
            (self.producer_epoch, self.last_producer_epoch)
        };
        self.prepare(state, |m| Transit {
            next_producer_id,
            producer_epoch: epoch,
            last_producer_epoch: last_epoch,
            txn_last_update_timestamp: now,
            client_transaction_version: client_version,
            ..m.transit_base()
        })
    }

    /// After the markers: CompleteCommit / CompleteAbort, partitions cleared.
    pub fn prepare_complete(&mut self, now: i64) -> Result<Transit, IllegalTransition> {
        let state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        self.has_failed_epoch_fence = false;
        let tv = self.client_transaction_version;
        let (producer_id, epoch) =
            if tv.supports_epoch_bump() && self.next_producer_id != NO_PRODUCER_ID {
                (self.next_producer_id, 0)
            } else {
                (self.producer_id, self.producer_epoch)
            };
        self.prepare(state, |m| Transit {
            producer_id,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: epoch,
            last_producer_epoch: m.producer_epoch,
            topic_partitions: BTreeSet::new(),
            txn_last_update_timestamp: now,
            client_transaction_version: tv,
            ..m.transit_base()
        })
    }

    /// Expiry: the id's tombstone is about to be written.
    pub fn prepare_dead(&mut self) -> Result<Transit, IllegalTransition> {
        self.prepare(TxnState::Dead, |m| Transit {
            topic_partitions: BTreeSet::new(),
            ..m.transit_base()
        })
    }

    /// The fields a transition keeps unless it changes them. Like Kafka, the record's
    /// PreviousProducerId is the producer id before the transition, and transitions other than
    /// EndTxn's and the completion record the client transaction version as TV0.
    fn transit_base(&self) -> Transit {
        Transit {
            producer_id: self.producer_id,
            prev_producer_id: self.producer_id,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: self.producer_epoch,
            last_producer_epoch: self.last_producer_epoch,
            txn_timeout_ms: self.txn_timeout_ms,
            state: self.state,
            topic_partitions: self.topic_partitions.clone(),
            txn_start_timestamp: self.txn_start_timestamp,
            txn_last_update_timestamp: self.txn_last_update_timestamp,
            client_transaction_version: TransactionVersion::TV_0,
        }
    }

    fn prepare(
        &mut self,
        to: TxnState,
        build: impl FnOnce(&Self) -> Transit,
    ) -> Result<Transit, IllegalTransition> {
        if self.pending_state.is_some() || !to.valid_previous(self.state) {
            return Err(self.illegal(to));
        }
        let transit = Transit {
            state: to,
            ..build(self)
        };
        if transit.producer_id < 0 || (to != TxnState::Dead && transit.producer_epoch < 0) {
            return Err(self.illegal(to));
        }
        self.pending_state = Some(to);
        Ok(transit)
    }

    fn illegal(&self, to: TxnState) -> IllegalTransition {
        IllegalTransition {
            transactional_id: self.transactional_id.clone(),
            from: self.state,
            pending: self.pending_state,
            to,
        }
    }

    /// The write of a prepared transition failed: forget it.
    pub fn abort_transition(&mut self) {
        self.pending_state = None;
    }

    /// The record of `transit` is durable: apply it (Kafka's `completeTransitionTo`, with its
    /// consistency checks).
    pub fn complete_transition(&mut self, transit: &Transit) -> Result<(), IllegalTransition> {
        let to = transit.state;
        if self.pending_state != Some(to) {
            return Err(self.illegal(to));
        }
        let ok = match to {
            TxnState::Empty => {
                let valid = (self.producer_epoch == transit.producer_epoch
                    || self.valid_producer_epoch_bump(transit))
                    && transit.topic_partitions.is_empty()
                    && transit.txn_start_timestamp == -1;
                if valid {
                    self.txn_timeout_ms = transit.txn_timeout_ms;
                    self.producer_epoch = transit.producer_epoch;
                    self.last_producer_epoch = transit.last_producer_epoch;
                    self.producer_id = transit.producer_id;
                    self.previous_producer_id = transit.prev_producer_id;
                }
                valid
            }
            TxnState::Ongoing => {
                let valid = self.valid_producer_epoch(transit)
                    && self.topic_partitions.is_subset(&transit.topic_partitions)
                    && self.txn_timeout_ms == transit.txn_timeout_ms;
                if valid {
                    self.txn_start_timestamp = transit.txn_start_timestamp;
                    self.topic_partitions
                        .extend(transit.topic_partitions.iter().cloned());
                }
                valid
            }
            TxnState::PrepareAbort | TxnState::PrepareCommit => {
                let valid = self.valid_producer_epoch(transit)
                    && self.topic_partitions == transit.topic_partitions
                    && self.txn_timeout_ms == transit.txn_timeout_ms
                    && self.txn_start_timestamp == transit.txn_start_timestamp;
                if valid && transit.client_transaction_version.supports_epoch_bump() {
                    self.producer_epoch = transit.producer_epoch;
                    self.last_producer_epoch = transit.last_producer_epoch;
                    self.next_producer_id = transit.next_producer_id;
                }
                valid
            }
            TxnState::CompleteAbort | TxnState::CompleteCommit => {
                let valid = self.valid_producer_epoch(transit)
                    && self.txn_timeout_ms == transit.txn_timeout_ms
                    && transit.txn_start_timestamp != -1;
                if valid {
                    self.txn_start_timestamp = transit.txn_start_timestamp;
                    self.topic_partitions.clear();
                    if transit.client_transaction_version.supports_epoch_bump() {
                        self.producer_epoch = transit.producer_epoch;
                        self.last_producer_epoch = transit.last_producer_epoch;
                        self.previous_producer_id = transit.prev_producer_id;
                        self.producer_id = transit.producer_id;
                        self.next_producer_id = transit.next_producer_id;
                    }
                }
                valid
            }
            // Never completed: a fence goes on to PrepareAbort, and Dead removes the id.
            TxnState::PrepareEpochFence | TxnState::Dead => false,
        };
        if !ok {
            return Err(self.illegal(to));
        }
        self.client_transaction_version = transit.client_transaction_version;
        self.txn_last_update_timestamp = transit.txn_last_update_timestamp;
        self.pending_state = None;
        self.state = to;
        Ok(())
    }

    fn valid_producer_epoch(&self, transit: &Transit) -> bool {
        let tv2 = transit.client_transaction_version.supports_epoch_bump();
        let complete = matches!(
            transit.state,
            TxnState::CompleteCommit | TxnState::CompleteAbort
        );
        let prepare = matches!(
            transit.state,
            TxnState::PrepareCommit | TxnState::PrepareAbort
        );
        let overflow_complete = tv2 && complete && transit.producer_epoch == 0;
        let epoch = if overflow_complete || (tv2 && prepare) {
            transit.last_producer_epoch
        } else {
            transit.producer_epoch
        };
        let producer_id = if overflow_complete {
            transit.prev_producer_id
        } else {
            transit.producer_id
        };
        epoch == self.producer_epoch && producer_id == self.producer_id
    }

    fn valid_producer_epoch_bump(&self, transit: &Transit) -> bool {
        i32::from(transit.producer_epoch) == i32::from(self.producer_epoch) + 1
            || (transit.producer_epoch == 0 && transit.producer_id != self.producer_id)
    }

    /// The record that stores `transit` for this id.
    pub fn log_value(transit: &Transit) -> super::records::TxnLogValue {
        super::records::TxnLogValue {
            producer_id: transit.producer_id,
            previous_producer_id: transit.prev_producer_id,
            next_producer_id: transit.next_producer_id,
            producer_epoch: transit.producer_epoch,
            transaction_timeout_ms: transit.txn_timeout_ms,
            state: transit.state,
            partitions: transit.topic_partitions.clone(),
            last_update_timestamp_ms: transit.txn_last_update_timestamp,
            start_timestamp_ms: transit.txn_start_timestamp,
            client_transaction_version: transit.client_transaction_version,
        }
    }
}
