//! Idempotent-producer state of one partition, as Kafka's `ProducerStateManager` keeps it.
//!
//! For every producer id that wrote to the partition the state holds its epoch and the
//! metadata of its last [`NUM_BATCHES_TO_RETAIN`] batches (first and last sequence, first and
//! last offset, max timestamp). The leader checks each producer batch against it before the
//! batch is written ([`ProducerState::check_leader_append`], Kafka's `ProducerAppendInfo`):
//!
//! 1. a batch with the current epoch and exactly the sequence range of one of the retained
//!    batches is a retry of something already written: it is a duplicate, answered with the
//!    original offsets and not written again;
//! 2. an epoch below the current one is fenced: INVALID_PRODUCER_EPOCH;
//! 3. a newer epoch must start at sequence 0 (any other start: OUT_OF_ORDER_SEQUENCE_NUMBER);
//! 4. within the current epoch the first sequence must follow the last one, wrapping from
//!    `i32::MAX` to 0 (anything else: OUT_OF_ORDER_SEQUENCE_NUMBER);
//! 5. a producer the partition knows nothing of (never seen, expired, or rebuilt away because
//!    its records were deleted) may start at any sequence. Kafka answered this case with
//!    UNKNOWN_PRODUCER_ID before KIP-360; since 2.5 it accepts the batch, and so does Weir:
//!    there is nothing left in the partition for the batch to be out of order with.
//!
//! Replicated batches and batches replayed from the log update the state without checks
//! ([`ProducerState::apply`]). Producers idle for `producer.id.expiration.ms` (measured from
//! their last batch's max timestamp, as Kafka does) are forgotten, unless they have a
//! transaction open.
//!
//! # Transactions
//!
//! A transactional batch from a producer with no transaction open opens one at the batch's
//! first offset (`current_txn_first_offset`); a control batch (COMMIT or ABORT marker) closes
//! it ([`ProducerState::apply_marker`]). On leader appends, a non-transactional batch from a
//! producer with a transaction open is refused (INVALID_TXN_STATE); a marker whose producer
//! epoch is below the producer's is fenced (INVALID_PRODUCER_EPOCH) and one whose coordinator
//! epoch is below the one the producer last saw is from a zombie coordinator
//! (TRANSACTION_COORDINATOR_FENCED) — [`ProducerState::check_marker`]. A marker may carry a
//! higher producer epoch (KIP-890 bumps it at the end of each transaction): the entry moves to
//! it and forgets its batches.
//!
//! # Verification (KIP-890 part 1)
//!
//! With `transaction.partition.verification.enable` the leader writes a transactional batch
//! that would open its producer's transaction only once the transaction coordinator has
//! confirmed that the partition is in the producer's ongoing transaction. Between that answer
//! and the append a marker may close the transaction (the coordinator aborted it), and a
//! later verification may be for a different transaction; so, as Kafka's `VerificationGuard`,
//! starting a verification records a guard for the producer
//! ([`ProducerState::start_verification`]), any transactional batch or marker of the
//! producer clears it, and the append must present the guard it started with
//! ([`ProducerState::check_verification`]): a missing or different guard is
//! [`ProducerError::NotVerified`] (INVALID_TXN_STATE). Guards are unique in the process
//! (no ABA after the state is rebuilt), live only in memory (never in snapshots) and expire
//! with `producer.id.expiration.ms`, as unanswered verifications do in Kafka.
//!
//! Undecided transactions are kept ordered by first offset (Kafka's `ongoingTxns`), and so are
//! completed ones whose marker the high watermark has not passed yet (`unreplicatedTxns`), so
//! the first unstable offset — and with it the last stable offset — never passes a marker the
//! ISR has not got. The latter are not in snapshots (Kafka's are not either): a reopened log
//! only knows the undecided transactions, which is what the LSO needs once the high watermark
//! is past the markers.
//!
//! Invariant: the state describes exactly the batches below [`ProducerState::end_offset`];
//! a snapshot file named for offset `S` describes the log's prefix `[0, S)`.
//!
//! # Snapshot format
//!
//! `<20-digit offset>.snapshot` in the partition directory, Kafka's `ProducerSnapshot`
//! message (version 1, not flexible), all integers big-endian:
//!
//! ```text
//! offset  size  field
//!      0     2  version                  1
//!      2     4  crc                      CRC-32C (Castagnoli) of bytes 6..end, unsigned
//!      6     4  entry count              n >= 0
//!     10  46*n  entries, ascending by producer id, each:
//!                 +0   8  producerId
//!                 +8   2  epoch
//!                +10   4  lastSequence           -1 when no batch is retained
//!                +14   8  lastOffset             -1 when no batch is retained
//!                +22   4  offsetDelta            lastOffset - firstOffset of that batch (0 if none)
//!                +26   8  timestamp              max timestamp of the producer's last batch
//!                +34   4  coordinatorEpoch       -1 when no transaction marker was seen
//!                +38   8  currentTxnFirstOffset  -1 when no transaction is open
//! ```
//! This is the byte layout Kafka's `ProducerSnapshot.json` schema produces. Only each
//! producer's last batch is stored, as in Kafka; batches appended after the snapshot offset
//! are replayed from the log when it is loaded, restoring up to five of them again.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

use super::batch::BatchHeader;
use super::txn::ControlType;
use crate::types::Offset;

/// Batches remembered per producer for duplicate detection (Kafka's `NUM_BATCHES_TO_RETAIN`,
/// matching the producer's `max.in.flight.requests.per.connection` limit for idempotence).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;
/// `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `RecordBatch.NO_SEQUENCE`.
pub const NO_SEQUENCE: i32 = -1;
/// Kafka's default `producer.id.expiration.ms`: one day.
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;

const SNAPSHOT_VERSION: i16 = 1;
const SNAPSHOT_CRC_AT: usize = 2;
const SNAPSHOT_ENTRIES_AT: usize = 6;
const SNAPSHOT_HEADER_LEN: usize = 10;
const SNAPSHOT_ENTRY_LEN: usize = 46;

/// Why a producer batch was refused, or a snapshot could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProducerError {
    #[error(
        "producer {producer_id} sent epoch {epoch}, older than its current epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    #[error(
        "out of order sequence from producer {producer_id} (epoch {epoch}): {first_seq} does not follow {last_seq}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    },
    #[error(
        "producer {producer_id} started epoch {epoch} (after {current_epoch}) at sequence {first_seq}; a new epoch starts at 0"
    )]
    NewEpochNotAtZero {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
        first_seq: i32,
    },
    #[error(
        "producer {producer_id} sent a non-transactional batch while its transaction from offset {txn_first_offset} is open"
    )]
    InvalidTxnState {
        producer_id: i64,
        txn_first_offset: Offset,
    },
    #[error(
        "transaction marker for producer {producer_id} carries coordinator epoch {coordinator_epoch}, older than {current_coordinator_epoch}"
    )]
    CoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current_coordinator_epoch: i32,
    },
    #[error(
        "transactional batch from producer {producer_id} would open a transaction the coordinator has not verified (or a marker closed it meanwhile)"
    )]
    NotVerified { producer_id: i64 },
    #[error("producer state snapshot is corrupt: {reason}")]
    CorruptSnapshot { reason: &'static str },
}

/// What the state remembers of one appended batch (Kafka's `BatchMetadata`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub last_seq: i32,
    pub last_offset: Offset,
    /// `last_offset - first_offset`, which is also `last_seq - first_seq` (mod the wrap).
    pub offset_delta: i32,
    /// The batch's max timestamp (the append time for LogAppendTime topics).
    pub timestamp: i64,
}

impl BatchMetadata {
    pub fn first_seq(&self) -> i32 {
        decrement_sequence(self.last_seq, self.offset_delta)
    }

    pub fn first_offset(&self) -> Offset {
        Offset(self.last_offset.0 - self.offset_delta as u64)
    }
}

/// `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// `DefaultRecordBatch.decrementSequence`.
pub fn decrement_sequence(sequence: i32, decrement: i32) -> i32 {
    if sequence < decrement {
        i32::MAX - (decrement - sequence) + 1
    } else {
        sequence - decrement
    }
}

/// Whether `next` is the sequence right after `last`.
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// The proof that a verification with the transaction coordinator was started for a
/// producer's first transactional write to a partition (Kafka's `VerificationGuard`). Unique
/// in the process: a guard from an earlier verification never matches a later one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VerificationGuard(u64);

impl VerificationGuard {
    fn next() -> VerificationGuard {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        VerificationGuard(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What a leader append knows of transaction verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnVerification {
    /// `transaction.partition.verification.enable=false`, or not a producer's write.
    Off,
    /// Verification is on; the guard the request's verification started with, `None` when
    /// the producer's transaction was already open in the partition (nothing was verified).
    Required(Option<VerificationGuard>),
}

/// A verification in progress (Kafka's `VerificationStateEntry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Verification {
    guard: VerificationGuard,
    started_ms: i64,
}

/// Who asks for a leader append (Kafka's `AppendOrigin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer: epochs and sequences are checked.
    Client,
    /// The broker's own group or transaction coordinator: epochs are checked, sequences not
    /// (its transactional writes carry no sequence).
    Coordinator,
}

/// A transaction a marker completed (Kafka's `CompletedTxn`), with the last stable offset
/// right after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: Offset,
    /// The marker's offset.
    pub last_offset: Offset,
    pub aborted: bool,
    /// The first offset of the next undecided transaction, else `last_offset + 1` (Kafka's
    /// `lastStableOffset(completedTxn)`), as the transaction index records it.
    pub last_stable_offset: Offset,
}

/// The producer fields of a batch with a producer id, offsets as stored (or, before the
/// leader assigns them, as they will be).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: Offset,
    pub last_offset: Offset,
    pub max_timestamp: i64,
    pub transactional: bool,
    pub control: bool,
}

impl ProducerBatch {
    /// The producer fields of `header`; `None` for a batch without a producer id.
    pub fn from_header(header: &BatchHeader) -> Option<ProducerBatch> {
        if !header.has_producer_id() {
            return None;
        }
        let first_offset = Offset::from_i64(header.base_offset)?;
        let delta = header.last_offset_delta.max(0);
        Some(ProducerBatch {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            first_seq: header.base_sequence,
            last_seq: if header.base_sequence == NO_SEQUENCE {
                NO_SEQUENCE
            } else {
                increment_sequence(header.base_sequence, delta)
            },
            first_offset,
            last_offset: first_offset + delta as u64,
            max_timestamp: header.max_timestamp,
            transactional: header.is_transactional(),
            control: header.is_control(),
        })
    }
}

/// One producer's state (Kafka's `ProducerStateEntry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; at most [`NUM_BATCHES_TO_RETAIN`], all of the current epoch.
    batches: VecDeque<BatchMetadata>,
    pub coordinator_epoch: i32,
    pub last_timestamp: i64,
    pub current_txn_first_offset: Option<Offset>,
}

impl ProducerEntry {
    fn empty() -> ProducerEntry {
        ProducerEntry {
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            coordinator_epoch: -1,
            last_timestamp: -1,
            current_txn_first_offset: None,
        }
    }

    /// The retained batches, oldest first.
    pub fn batches(&self) -> impl ExactSizeIterator<Item = &BatchMetadata> {
        self.batches.iter()
    }

    /// The last sequence written in the current epoch ([`NO_SEQUENCE`] if none is retained).
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    /// A new epoch forgets the batches of the old one.
    fn set_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
    }

    fn push(&mut self, batch: BatchMetadata) {
        if self.batches.len() == NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
    }

    fn is_expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        self.current_txn_first_offset.is_none()
            && now_ms.saturating_sub(self.last_timestamp) >= expiration_ms
    }
}

/// The producer state of one partition: plain data, no I/O. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerState {
    producers: BTreeMap<i64, ProducerEntry>,
    end_offset: Offset,
    /// Undecided transactions: first offset -> producer id (Kafka's `ongoingTxns`).
    ongoing: BTreeMap<Offset, i64>,
    /// Completed transactions whose marker is not below the high watermark yet:
    /// first offset -> (producer id, marker offset) (Kafka's `unreplicatedTxns`).
    unreplicated: BTreeMap<Offset, (i64, Offset)>,
    /// Verifications started and not yet consumed by a transactional batch or a marker:
    /// producer id -> guard (Kafka's `verificationStates`). In memory only.
    verifications: BTreeMap<i64, Verification>,
}

impl ProducerState {
    /// No producers, describing the log below `end_offset` (which holds no producer batch).
    pub fn new(end_offset: Offset) -> ProducerState {
        ProducerState {
            producers: BTreeMap::new(),
            end_offset,
            ongoing: BTreeMap::new(),
            unreplicated: BTreeMap::new(),
            verifications: BTreeMap::new(),
        }
    }

    /// Whether `producer_id` has a transaction open in the partition.
    pub fn has_ongoing_transaction(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.current_txn_first_offset.is_some())
    }

    /// Starts (or joins) the verification of `producer_id`'s first transactional write here
    /// (Kafka's `maybeStartTransactionVerification`): `None` when its transaction is already
    /// open (nothing to verify), else the guard its append must present.
    pub fn start_verification(
        &mut self,
        producer_id: i64,
        now_ms: i64,
    ) -> Option<VerificationGuard> {
        if self.has_ongoing_transaction(producer_id) {
            return None;
        }
        let entry = self
            .verifications
            .entry(producer_id)
            .or_insert_with(|| Verification {
                guard: VerificationGuard::next(),
                started_ms: now_ms,
            });
        Some(entry.guard)
    }

    /// The guard of `producer_id`'s verification in progress, if any.
    pub fn verification_guard(&self, producer_id: i64) -> Option<VerificationGuard> {
        self.verifications.get(&producer_id).map(|v| v.guard)
    }

    /// The leader's verification check on a data batch (see the module docs): a
    /// transactional batch that would open its producer's transaction needs the guard of the
    /// verification in progress.
    pub fn check_verification(
        &self,
        batch: &ProducerBatch,
        verification: TxnVerification,
    ) -> Result<(), ProducerError> {
        let TxnVerification::Required(guard) = verification else {
            return Ok(());
        };
        if !batch.transactional || batch.control || self.has_ongoing_transaction(batch.producer_id)
        {
            return Ok(());
        }
        match (guard, self.verification_guard(batch.producer_id)) {
            (Some(presented), Some(current)) if presented == current => Ok(()),
            _ => Err(ProducerError::NotVerified {
                producer_id: batch.producer_id,
            }),
        }
    }

    /// The undecided transactions, oldest first: (producer id, first offset).
    pub fn ongoing_transactions(&self) -> impl Iterator<Item = (i64, Offset)> + '_ {
        self.ongoing.iter().map(|(&first, &pid)| (pid, first))
    }

    /// The first offset of the earliest transaction not yet decided or whose marker is not yet
    /// below the high watermark (Kafka's `firstUnstableOffset`).
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        let ongoing = self.ongoing.keys().next().copied();
        let unreplicated = self.unreplicated.keys().next().copied();
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The high watermark moved to `hw`: completed transactions whose marker is below it are
    /// replicated and no longer hold the LSO back (Kafka's `onHighWatermarkUpdated`).
    pub fn on_high_watermark(&mut self, hw: Offset) {
        self.unreplicated.retain(|_, &mut (_, marker)| marker >= hw);
    }

    /// The state covers exactly the batches below this offset.
    pub fn end_offset(&self) -> Offset {
        self.end_offset
    }

    /// Records that the log continues to `offset` with no further producer batch (appends of
    /// batches without a producer id, a roll to a later base offset).
    pub fn set_end_offset(&mut self, offset: Offset) {
        self.end_offset = offset;
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn producer_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.producers.keys().copied()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The leader's checks on a producer batch before it is written (see the module docs).
    /// `Ok(Some(original))` for a duplicate, `Ok(None)` when the batch may be appended.
    pub fn check_leader_append(
        &self,
        batch: &ProducerBatch,
        origin: AppendOrigin,
    ) -> Result<Option<BatchMetadata>, ProducerError> {
        let producer_id = batch.producer_id;
        let Some(current) = self.producers.get(&producer_id) else {
            return Ok(None);
        };
        if !batch.transactional
            && let Some(txn_first_offset) = current.current_txn_first_offset
            && batch.epoch >= current.epoch
        {
            return Err(ProducerError::InvalidTxnState {
                producer_id,
                txn_first_offset,
            });
        }
        if origin == AppendOrigin::Coordinator {
            if batch.epoch < current.epoch {
                return Err(ProducerError::InvalidProducerEpoch {
                    producer_id,
                    epoch: batch.epoch,
                    current_epoch: current.epoch,
                });
            }
            return Ok(None);
        }
        if batch.epoch == current.epoch
            && let Some(original) = current
                .batches
                .iter()
                .find(|b| b.first_seq() == batch.first_seq && b.last_seq == batch.last_seq)
        {
            return Ok(Some(*original));
        }
        if batch.epoch < current.epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id,
                epoch: batch.epoch,
                current_epoch: current.epoch,
            });
        }
        if current.epoch == NO_PRODUCER_EPOCH {
            return Ok(None);
        }
        if batch.epoch != current.epoch {
            if batch.first_seq != 0 {
                return Err(ProducerError::NewEpochNotAtZero {
                    producer_id,
                    epoch: batch.epoch,
                    current_epoch: current.epoch,
                    first_seq: batch.first_seq,
                });
            }
            return Ok(None);
        }
        let last_seq = current.last_seq();
        if !in_sequence(last_seq, batch.first_seq) {
            return Err(ProducerError::OutOfOrderSequence {
                producer_id,
                epoch: batch.epoch,
                first_seq: batch.first_seq,
                last_seq,
            });
        }
        Ok(None)
    }

    /// The leader's checks on a transaction marker for `producer_id` (see the module docs).
    pub fn check_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), ProducerError> {
        let Some(current) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        if producer_epoch < current.epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id,
                epoch: producer_epoch,
                current_epoch: current.epoch,
            });
        }
        if coordinator_epoch < current.coordinator_epoch {
            return Err(ProducerError::CoordinatorFenced {
                producer_id,
                coordinator_epoch,
                current_coordinator_epoch: current.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Adds a written data batch to the state, without checks (leader appends after
    /// [`Self::check_leader_append`], replication, replay); a transactional one opens its
    /// producer's transaction if none is open. Moves the end offset past it. A control batch
    /// given here (one whose marker record is gone: the cleaner emptied it) changes nothing
    /// but the end offset, as in Kafka.
    pub fn apply(&mut self, batch: &ProducerBatch) {
        if !batch.control {
            let entry = self
                .producers
                .entry(batch.producer_id)
                .or_insert_with(ProducerEntry::empty);
            entry.set_epoch(batch.epoch);
            entry.last_timestamp = batch.max_timestamp;
            entry.push(BatchMetadata {
                last_seq: batch.last_seq,
                last_offset: batch.last_offset,
                offset_delta: (batch.last_offset.0 - batch.first_offset.0) as i32,
                timestamp: batch.max_timestamp,
            });
            if batch.transactional {
                // The transaction is open now (or was): the verification is used up.
                self.verifications.remove(&batch.producer_id);
            }
            if batch.transactional && entry.current_txn_first_offset.is_none() {
                entry.current_txn_first_offset = Some(batch.first_offset);
                self.ongoing.insert(batch.first_offset, batch.producer_id);
            }
        }
        self.end_offset = self.end_offset.max(batch.last_offset + 1);
    }

    /// Adds a written transaction marker (the control batch at `offset`) to the state, without
    /// checks (leader appends after [`Self::check_marker`], replication, replay): its producer's
    /// open transaction, if any, is completed and returned. The entry takes the marker's
    /// producer and coordinator epochs. Moves the end offset past the marker.
    pub fn apply_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        control: ControlType,
        offset: Offset,
        timestamp: i64,
    ) -> Option<CompletedTxn> {
        // A verification started before this marker is for the transaction it closes (or an
        // earlier one): an append presenting its guard must not open a new transaction.
        self.verifications.remove(&producer_id);
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(ProducerEntry::empty);
        entry.set_epoch(producer_epoch);
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_timestamp = timestamp;
        let first_offset = entry.current_txn_first_offset.take();
        self.end_offset = self.end_offset.max(offset + 1);
        let first_offset = first_offset?;
        self.ongoing.remove(&first_offset);
        self.unreplicated
            .insert(first_offset, (producer_id, offset));
        let last_stable_offset = self.ongoing.keys().next().copied().unwrap_or(offset + 1);
        Some(CompletedTxn {
            producer_id,
            first_offset,
            last_offset: offset,
            aborted: control == ControlType::Abort,
            last_stable_offset,
        })
    }

    /// Forgets producers idle for `expiration_ms` with no open transaction, and
    /// verifications started that long ago. Returns how many producers.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.verifications
            .retain(|_, v| now_ms.saturating_sub(v.started_ms) < expiration_ms);
        // Producers with a transaction open never expire, so `ongoing` is unaffected.
        let before = self.producers.len();
        self.producers
            .retain(|_, entry| !entry.is_expired(now_ms, expiration_ms));
        before - self.producers.len()
    }

    /// The snapshot file contents for this state (see the module docs).
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(SNAPSHOT_HEADER_LEN + SNAPSHOT_ENTRY_LEN * self.producers.len());
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(self.producers.len() as i32).to_be_bytes());
        for (&producer_id, entry) in &self.producers {
            let last = entry.batches.back();
            out.extend_from_slice(&producer_id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.extend_from_slice(&entry.last_seq().to_be_bytes());
            out.extend_from_slice(&last.map_or(-1, |b| b.last_offset.as_i64()).to_be_bytes());
            out.extend_from_slice(&last.map_or(0, |b| b.offset_delta).to_be_bytes());
            out.extend_from_slice(&entry.last_timestamp.to_be_bytes());
            out.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
            let txn = entry.current_txn_first_offset.map_or(-1, Offset::as_i64);
            out.extend_from_slice(&txn.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out[SNAPSHOT_ENTRIES_AT..]);
        out[SNAPSHOT_CRC_AT..SNAPSHOT_ENTRIES_AT].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a snapshot file's contents as the state at `end_offset`, the offset in its name.
    pub fn decode_snapshot(
        bytes: &[u8],
        end_offset: Offset,
    ) -> Result<ProducerState, ProducerError> {
        let corrupt = |reason| ProducerError::CorruptSnapshot { reason };
        if bytes.len() < SNAPSHOT_HEADER_LEN {
            return Err(corrupt("shorter than its header"));
        }
        if i16::from_be_bytes([bytes[0], bytes[1]]) != SNAPSHOT_VERSION {
            return Err(corrupt("unknown version"));
        }
        let stored = u32::from_be_bytes(take(bytes, SNAPSHOT_CRC_AT));
        if crc32c::crc32c(&bytes[SNAPSHOT_ENTRIES_AT..]) != stored {
            return Err(corrupt("CRC-32C mismatch"));
        }
        let count = i32::from_be_bytes(take(bytes, SNAPSHOT_ENTRIES_AT));
        let count = usize::try_from(count).map_err(|_| corrupt("negative entry count"))?;
        if bytes.len() != SNAPSHOT_HEADER_LEN + count.saturating_mul(SNAPSHOT_ENTRY_LEN) {
            return Err(corrupt("length disagrees with the entry count"));
        }
        let mut state = ProducerState::new(end_offset);
        for raw in bytes[SNAPSHOT_HEADER_LEN..].chunks_exact(SNAPSHOT_ENTRY_LEN) {
            let producer_id = i64::from_be_bytes(take(raw, 0));
            let epoch = i16::from_be_bytes(take(raw, 8));
            let last_seq = i32::from_be_bytes(take(raw, 10));
            let last_offset = i64::from_be_bytes(take(raw, 14));
            let offset_delta = i32::from_be_bytes(take(raw, 22));
            let timestamp = i64::from_be_bytes(take(raw, 26));
            let coordinator_epoch = i32::from_be_bytes(take(raw, 34));
            let txn_first = i64::from_be_bytes(take(raw, 38));
            let mut entry = ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                coordinator_epoch,
                last_timestamp: timestamp,
                current_txn_first_offset: Offset::from_i64(txn_first),
            };
            if let Some(last_offset) = Offset::from_i64(last_offset) {
                if offset_delta < 0 || offset_delta as u64 > last_offset.0 {
                    return Err(corrupt("offset delta outside the log"));
                }
                entry.push(BatchMetadata {
                    last_seq,
                    last_offset,
                    offset_delta,
                    timestamp,
                });
            }
            if let Some(first) = entry.current_txn_first_offset
                && state.ongoing.insert(first, producer_id).is_some()
            {
                return Err(corrupt("two open transactions start at the same offset"));
            }
            if state.producers.insert(producer_id, entry).is_some() {
                return Err(corrupt("a producer id appears twice"));
            }
        }
        Ok(state)
    }
}

fn take<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N].try_into().expect("length checked")
}

#[cfg(test)]
mod tests;
