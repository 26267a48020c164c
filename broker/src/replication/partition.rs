//! [`PartitionReplica`]: a served partition's replication state ([`ReplicaState`]) shared by
//! the request handlers, the follower fetcher and the ISR tasks, and the log operations whose
//! outcome depends on it: leader appends, acks=all waits, follower fetches recorded on the
//! leader, and the follower's appends and truncations.
//!
//! Locking: the log lock is taken before the state lock, never the other way round. Role
//! changes hold both, and every append checks the role under the log lock, so an append never
//! lands in a log whose role changed under it. The role and leader epoch are mirrored in
//! atomics so a leader append takes no lock besides the log's; a leader that is the only
//! replica sets its high watermark to its log end right there, as before replication existed.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;
use tracing::info;
use weir_controller::{BrokerId, PartitionState, TopicId};

use super::state::{
    AckProgress, AppendRefusal, EligibleBrokers, FollowerFetch, FollowerFetchError,
    FollowerFetchOutcome, IsrChange, IsrFailure, IsrProposal, ReplicaState, Role, Transition,
};
use crate::log::batch::BatchHeader;
use crate::log::{AppendOutcome, Log, LogError, SharedLog, TxnMarker, TxnVerification};
use crate::types::{LeaderEpoch, Offset};

/// Why a leader append was refused.
#[derive(Debug, thiserror::Error)]
pub enum LeaderAppendError {
    #[error(transparent)]
    Refused(#[from] AppendRefusal),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// What a leader append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderAppend {
    pub outcome: AppendOutcome,
    /// acks=all and the high watermark has not passed the batch yet.
    pub acks_pending: bool,
}

/// How an acks=all write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    Replicated,
    NotEnoughReplicasAfterAppend,
    NotLeader,
    TimedOut,
}

/// Why a follower operation did nothing or failed.
#[derive(Debug, thiserror::Error)]
pub enum FollowerLogError {
    /// The partition is no longer followed in that leader epoch (it leads now, or a newer
    /// epoch began); the fetched data is dropped.
    #[error("not a follower in leader epoch {epoch} any more")]
    NotFollower { epoch: i32 },
    #[error(transparent)]
    Log(#[from] LogError),
}

/// The follower's log after applying a fetched partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerAppend {
    pub log_end: Offset,
    pub high_watermark: Offset,
}

/// One partition's replication state on this broker. See the module docs.
#[derive(Debug)]
pub struct PartitionReplica {
    me: BrokerId,
    topic_id: TopicId,
    state: Mutex<ReplicaState>,
    leading: AtomicBool,
    leader_epoch: AtomicI32,
    /// Leading with no other replica: the high watermark is the log end offset.
    sole_replica: AtomicBool,
    /// Bumped when the high watermark, the ISR or the role changes (acks=all waiters).
    changes: watch::Sender<u64>,
}

fn write(log: &SharedLog) -> RwLockWriteGuard<'_, Log> {
    log.write().unwrap_or_else(|p| p.into_inner())
}

fn read(log: &SharedLog) -> RwLockReadGuard<'_, Log> {
    log.read().unwrap_or_else(|p| p.into_inner())
}

impl PartitionReplica {
    pub fn new(me: BrokerId, topic_id: TopicId, lag_time_max_ms: i64) -> PartitionReplica {
        PartitionReplica {
            me,
            topic_id,
            state: Mutex::new(ReplicaState::new(me, lag_time_max_ms)),
            leading: AtomicBool::new(false),
            leader_epoch: AtomicI32::new(-1),
            sole_replica: AtomicBool::new(false),
            changes: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ReplicaState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn topic_id(&self) -> TopicId {
        self.topic_id
    }

    /// The leader epoch of the metadata applied last (-1 before any).
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    pub fn role(&self) -> Role {
        self.lock().role()
    }

    /// The leader this replica fetches from and the leader epoch, when it follows one.
    pub fn follows(&self) -> Option<(BrokerId, i32)> {
        let state = self.lock();
        match state.role() {
            Role::Follower(Some(leader)) => Some((leader, state.leader_epoch())),
            _ => None,
        }
    }

    /// A copy of the state, for inspection (tests, metrics, logs).
    pub fn state(&self) -> ReplicaState {
        self.lock().clone()
    }

    pub fn is_under_replicated(&self) -> bool {
        self.lock().is_under_replicated()
    }

    /// Whether `broker` is one of the other replicas this leader tracks.
    pub fn has_follower(&self, broker: BrokerId) -> bool {
        self.lock().is_follower(broker)
    }

    /// Where the current leader epoch began, on a leader.
    pub fn epoch_start_offset(&self) -> Option<Offset> {
        self.lock().epoch_start_offset()
    }

    /// Updates the settings the state works with: `replica.lag.time.max.ms`, the topic's
    /// `min.insync.replicas`, and which brokers may join the ISR.
    pub fn configure(
        &self,
        lag_time_max_ms: i64,
        min_insync_replicas: usize,
        eligible: EligibleBrokers,
    ) {
        let mut state = self.lock();
        state.set_lag_time_max_ms(lag_time_max_ms);
        state.set_min_insync_replicas(min_insync_replicas);
        state.set_eligible_brokers(eligible);
        drop(state);
        // A waiting acks=all write re-checks min.insync.replicas.
        self.changed();
    }

    /// Applies the partition's state from the metadata: becomes leader or follower, or updates
    /// the replicas and ISR (see [`ReplicaState::apply`]). A new leader records its epoch's
    /// start in the log's epoch cache and moves its high watermark as far as its ISR allows
    /// (a single replica: to its log end).
    pub fn apply(
        &self,
        log: &SharedLog,
        partition: &PartitionState,
        now_ms: i64,
    ) -> Result<Transition, LogError> {
        {
            // Most images change nothing for most partitions: no log lock for those.
            let state = self.lock();
            if (state.leader_epoch(), state.partition_epoch())
                == (partition.leader_epoch, partition.partition_epoch)
            {
                return Ok(Transition::Unchanged);
            }
        }
        let mut log = write(log);
        let mut state = self.lock();
        let log_end = log.log_end_offset();
        let transition = state.apply(partition, log_end, now_ms);
        if matches!(transition, Transition::Unchanged | Transition::Stale) {
            return Ok(transition);
        }
        let leading = state.role() == Role::Leader;
        self.leader_epoch
            .store(state.leader_epoch(), Ordering::Release);
        self.leading.store(leading, Ordering::Release);
        self.sole_replica
            .store(leading && state.replicas() == [self.me], Ordering::Release);
        let assigned = match transition {
            Transition::NewLeaderEpoch {
                epoch,
                start_offset,
            } => log.assign_epoch_start_offset(LeaderEpoch(epoch), start_offset),
            _ => Ok(()),
        };
        if leading
            && let Some(hw) = state.advance_high_watermark(log_end, log.high_watermark(), now_ms)
        {
            log.set_high_watermark(hw);
        }
        drop(state);
        drop(log);
        self.changed();
        assigned.map(|()| transition)
    }

    /// Appends a producer's batch as the leader (`acks` -1, 0 or 1). acks=all needs
    /// min.insync.replicas in the ISR first. The high watermark moves as far as the ISR
    /// allows.
    pub fn append_as_leader(
        &self,
        log: &SharedLog,
        records: &[u8],
        acks: i16,
        now_ms: i64,
    ) -> Result<LeaderAppend, LeaderAppendError> {
        self.append_verified(log, records, acks, now_ms, TxnVerification::Off)
    }

    /// [`Self::append_as_leader`] with transaction verification ([`Log::append_verified`]).
    pub fn append_verified(
        &self,
        log: &SharedLog,
        records: &[u8],
        acks: i16,
        now_ms: i64,
        verification: TxnVerification,
    ) -> Result<LeaderAppend, LeaderAppendError> {
        self.append_with(log, acks, now_ms, |log, epoch| {
            log.append_verified(records, epoch, now_ms, verification)
        })
    }

    /// Writes a transaction marker as the leader, as an acks=1 append: the caller waits for
    /// replication with [`Self::await_acks`] on the returned offset, as Kafka's marker writes
    /// wait for the ISR. Like a produce, the caller then wakes long-polling fetches
    /// (`Broker::notify_appended`): a marker can move the last stable offset.
    pub fn append_marker_as_leader(
        &self,
        log: &SharedLog,
        marker: &TxnMarker,
        now_ms: i64,
    ) -> Result<LeaderAppend, LeaderAppendError> {
        self.append_with(log, 1, now_ms, |log, epoch| {
            log.append_marker(marker, epoch, now_ms)
                .map(AppendOutcome::Appended)
        })
    }

    /// Appends a group or transaction coordinator's own batch as the leader
    /// ([`Log::append_as_coordinator`]), acks=1; the caller waits with [`Self::await_acks`].
    pub fn append_as_coordinator(
        &self,
        log: &SharedLog,
        records: &[u8],
        now_ms: i64,
    ) -> Result<LeaderAppend, LeaderAppendError> {
        self.append_with(log, 1, now_ms, |log, epoch| {
            log.append_as_coordinator(records, epoch, now_ms)
        })
    }

    /// A leader append done by `append` under the log lock, once the role is checked.
    fn append_with(
        &self,
        log: &SharedLog,
        acks: i16,
        now_ms: i64,
        append: impl FnOnce(&mut Log, LeaderEpoch) -> Result<AppendOutcome, LogError>,
    ) -> Result<LeaderAppend, LeaderAppendError> {
        let acks_all = acks == -1;
        let mut log = write(log);
        if !self.leading.load(Ordering::Acquire) {
            return Err(AppendRefusal::NotLeader.into());
        }
        let sole = self.sole_replica.load(Ordering::Acquire);
        if acks_all && !sole {
            self.lock().check_append(true)?;
        }
        let epoch = LeaderEpoch(self.leader_epoch.load(Ordering::Acquire));
        let outcome = append(&mut log, epoch)?;
        let mut moved = false;
        if let AppendOutcome::Appended(_) = outcome {
            let log_end = log.log_end_offset();
            if sole {
                log.set_high_watermark(log_end);
            } else if let Some(hw) =
                self.lock()
                    .advance_high_watermark(log_end, log.high_watermark(), now_ms)
            {
                log.set_high_watermark(hw);
                moved = true;
            }
        }
        let acks_pending = acks_all && log.high_watermark() <= outcome.info().last_offset;
        drop(log);
        if moved {
            self.changed();
        }
        Ok(LeaderAppend {
            outcome,
            acks_pending,
        })
    }

    /// Waits until an acks=all write ending before `required_offset` is replicated to the ISR
    /// (Kafka's delayed produce), or `deadline` passes.
    pub async fn await_acks(
        &self,
        log: &SharedLog,
        required_offset: Offset,
        deadline: tokio::time::Instant,
    ) -> AckOutcome {
        let mut changes = self.changes.subscribe();
        loop {
            changes.borrow_and_update();
            let hw = read(log).high_watermark();
            match self.lock().ack_progress(required_offset, hw) {
                AckProgress::Waiting => {}
                AckProgress::Done => return AckOutcome::Replicated,
                AckProgress::NotEnoughReplicasAfterAppend => {
                    return AckOutcome::NotEnoughReplicasAfterAppend;
                }
                AckProgress::NotLeader => return AckOutcome::NotLeader,
            }
            // The sender lives in `self`, so the channel cannot close while this waits.
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return AckOutcome::TimedOut;
            }
        }
    }

    /// Records a follower's fetch on the leader (Kafka's `updateFollowerFetchState`): its
    /// progress, a high watermark move (applied to the log here) and an ISR expansion to send.
    pub fn record_follower_fetch(
        &self,
        log: &SharedLog,
        fetch: FollowerFetch,
    ) -> Result<FollowerFetchOutcome, FollowerFetchError> {
        let hw = read(log).high_watermark();
        let outcome = self.lock().follower_fetched(fetch, hw)?;
        if let Some(new_hw) = outcome.high_watermark {
            let mut log = write(log);
            if self.is_leader() && new_hw > log.high_watermark() {
                log.set_high_watermark(new_hw);
            }
            drop(log);
            self.changed();
        }
        Ok(outcome)
    }

    /// The periodic ISR check on a leader: an ISR shrink to send, if a follower lags.
    pub fn maybe_shrink_isr(&self, log: &SharedLog, now_ms: i64) -> Option<IsrProposal> {
        let log_end = read(log).log_end_offset();
        self.lock().maybe_shrink_isr(log_end, now_ms)
    }

    /// The controller committed proposal `id`; `committed` is the partition as it stands.
    /// Returns the change that took effect (the high watermark has moved with it).
    pub fn isr_committed(
        &self,
        log: &SharedLog,
        id: u64,
        committed: &PartitionState,
        now_ms: i64,
    ) -> Option<IsrChange> {
        let mut log = write(log);
        let mut state = self.lock();
        let change = state.isr_committed(id, committed)?;
        let log_end = log.log_end_offset();
        if let Some(hw) = state.advance_high_watermark(log_end, log.high_watermark(), now_ms) {
            log.set_high_watermark(hw);
        }
        drop(state);
        drop(log);
        self.changed();
        Some(change)
    }

    /// The controller refused proposal `id` with error `code`.
    pub fn isr_failed(&self, id: u64, code: i16) -> IsrFailure {
        let failure = self.lock().isr_failed(id, code);
        if failure == IsrFailure::Reset {
            self.changed();
        }
        failure
    }

    /// Under the log lock: still a follower in `epoch`?
    fn check_follower(&self, epoch: i32) -> Result<(), FollowerLogError> {
        if self.is_leader() || self.leader_epoch() != epoch {
            return Err(FollowerLogError::NotFollower { epoch });
        }
        Ok(())
    }

    /// Applies a fetched partition on a follower in `epoch`: appends the leader's batches as
    /// they are, then takes the leader's high watermark (up to its own log end) and log start
    /// offset (up to its own high watermark).
    pub fn append_as_follower(
        &self,
        log: &SharedLog,
        epoch: i32,
        records: &[u8],
        leader_high_watermark: i64,
        leader_log_start: i64,
        now_ms: i64,
    ) -> Result<FollowerAppend, FollowerLogError> {
        let mut log = write(log);
        self.check_follower(epoch)?;
        if !records.is_empty() {
            append_follower_records(&mut log, records, now_ms)?;
        }
        if let Some(hw) = Offset::from_i64(leader_high_watermark) {
            log.set_high_watermark(hw);
        }
        if let Some(start) = Offset::from_i64(leader_log_start) {
            let to = start.min(log.high_watermark());
            if to > log.log_start_offset() {
                log.delete_records(to)?;
            }
        }
        Ok(FollowerAppend {
            log_end: log.log_end_offset(),
            high_watermark: log.high_watermark(),
        })
    }

    /// Truncates a follower's log to `offset` (nothing when at or past its end). Returns the
    /// new log end offset.
    pub fn truncate_as_follower(
        &self,
        log: &SharedLog,
        epoch: i32,
        offset: Offset,
        now_ms: i64,
    ) -> Result<Offset, FollowerLogError> {
        let mut log = write(log);
        self.check_follower(epoch)?;
        if offset < log.log_end_offset() {
            info!(log_end = %log.log_end_offset(), %offset, epoch, dir = %log.dir().display(), "follower truncating its log by leader epoch");
            log.truncate_to(offset, now_ms)?;
        }
        Ok(log.log_end_offset())
    }

    /// Empties a follower's log and restarts it at `offset` (the leader's log start).
    pub fn restart_as_follower_at(
        &self,
        log: &SharedLog,
        epoch: i32,
        offset: Offset,
        now_ms: i64,
    ) -> Result<(), FollowerLogError> {
        let mut log = write(log);
        self.check_follower(epoch)?;
        info!(log_end = %log.log_end_offset(), %offset, dir = %log.dir().display(), "follower restarting its log at the leader's log start");
        log.truncate_fully_and_start_at(offset, now_ms)?;
        Ok(())
    }
}

/// Appends fetched batches. A first batch that starts before an empty log's start (the
/// leader's log start fell inside it, after DeleteRecords) restarts the log at the batch's base
/// offset, as Kafka's `appendRecordsToFollowerOrFutureReplica` does.
fn append_follower_records(log: &mut Log, records: &[u8], now_ms: i64) -> Result<(), LogError> {
    match log.append_as_follower(records, now_ms) {
        Err(LogError::UnexpectedAppendOffset { base_offset, .. })
            if starts_inside_first_batch(log, records) =>
        {
            let base = Offset::from_i64(base_offset).unwrap_or(Offset::ZERO);
            info!(%base, log_start = %log.log_start_offset(), dir = %log.dir().display(), "first fetched batch starts before the empty log's start; restarting the log at its base offset");
            log.truncate_fully_and_start_at(base, now_ms)?;
            log.append_as_follower(records, now_ms).map(|_| ())
        }
        other => other.map(|_| ()),
    }
}

fn starts_inside_first_batch(log: &Log, records: &[u8]) -> bool {
    let log_end = log.log_end_offset().as_i64();
    log.log_end_offset() == log.log_start_offset()
        && BatchHeader::parse(records)
            .is_ok_and(|h| h.base_offset < log_end && h.last_offset() >= log_end)
}
