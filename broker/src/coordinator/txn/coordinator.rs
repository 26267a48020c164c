//! [`TxnCoordinator`]: the transactional ids of one `__transaction_state` partition and the
//! request handlers of Kafka's `TransactionCoordinator`.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::ResponseError;

use super::api::{
    AddOffsetsParams, AddPartitionsParams, Effect, EndTxnParams, InitProducerIdParams, PersistId,
    RequestToken, Response, TxnOutcome,
};
use super::config::TxnConfig;
use super::metadata::{
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TransactionVersion, Transit, TxnMetadata, TxnState,
    is_epoch_exhausted,
};
use super::records::{self, RecordError};

#[path = "queries.rs"]
mod queries;
#[path = "timers.rs"]
mod timers;
#[path = "writes.rs"]
mod writes;

/// The topic AddOffsetsToTxn adds a partition of.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The coordinator of the transactional ids of one `__transaction_state` partition, at one
/// coordinator (leader) epoch. See the module docs of [`super`] for how to drive it.
#[derive(Debug)]
pub struct TxnCoordinator {
    partition: u32,
    coordinator_epoch: i32,
    config: TxnConfig,
    loading: bool,
    txns: BTreeMap<String, Entry>,
    /// Which id each outstanding `Persist` belongs to.
    persists: HashMap<PersistId, String>,
    next_persist: u64,
    next_expiry_check: i64,
    commits: u64,
    aborts: u64,
}

#[derive(Debug)]
struct Entry {
    meta: TxnMetadata,
    /// The transition in flight; set exactly when `meta.pending_state` is.
    write: Option<Write>,
}

#[derive(Debug)]
struct Write {
    transit: Transit,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    Persisting {
        id: PersistId,
        waiter: Waiter,
    },
    /// Prepare* is durable; the Complete* transition waits for the markers.
    AwaitingMarkers,
    /// The Complete* write failed with COORDINATOR_NOT_AVAILABLE; retried from `tick`.
    RetryAt(i64),
}

/// Who waits for a write, and what happens after it.
#[derive(Debug)]
enum Waiter {
    InitProducerId(RequestToken),
    AddPartitions {
        token: RequestToken,
        partitions: Vec<(String, i32)>,
    },
    AddOffsets(RequestToken),
    EndTxn {
        origin: EndOrigin,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        epoch_fence: bool,
    },
    Complete,
    Expire,
}

/// Who asked for a commit or abort.
#[derive(Clone, Copy, Debug)]
enum EndOrigin {
    Client(RequestToken),
    /// InitProducerId fencing an open transaction: answered CONCURRENT_TRANSACTIONS once the
    /// abort is prepared, so the producer retries.
    Fence(RequestToken),
    Timeout,
}

impl EndOrigin {
    fn respond(self, result: Result<(i64, i16), ResponseError>, effects: &mut Vec<Effect>) {
        match self {
            EndOrigin::Client(token) => effects.push(Effect::Respond {
                token,
                response: Response::EndTxn(result),
            }),
            EndOrigin::Fence(token) => {
                let error = result
                    .err()
                    .unwrap_or(ResponseError::ConcurrentTransactions);
                effects.push(Effect::Respond {
                    token,
                    response: Response::InitProducerId(Err(error)),
                });
            }
            EndOrigin::Timeout => {}
        }
    }
}

fn respond(effects: &mut Vec<Effect>, token: RequestToken, response: Response) {
    effects.push(Effect::Respond { token, response });
}

fn all_partitions(partitions: &[(String, i32)], error: Option<ResponseError>) -> Response {
    Response::AddPartitions(partitions.iter().map(|tp| (tp.clone(), error)).collect())
}

impl TxnCoordinator {
    /// A coordinator for `partition` at `coordinator_epoch` (the partition's leader epoch),
    /// loading: replay the partition with [`replay`](Self::replay), then call
    /// [`finish_loading`](Self::finish_loading). Until then requests are answered
    /// COORDINATOR_LOAD_IN_PROGRESS.
    pub fn new(partition: u32, coordinator_epoch: i32, config: TxnConfig) -> Self {
        TxnCoordinator {
            partition,
            coordinator_epoch,
            config,
            loading: true,
            txns: BTreeMap::new(),
            persists: HashMap::new(),
            next_persist: 0,
            next_expiry_check: i64::MAX,
            commits: 0,
            aborts: 0,
        }
    }

    pub fn partition(&self) -> u32 {
        self.partition
    }

    pub fn coordinator_epoch(&self) -> i32 {
        self.coordinator_epoch
    }

    pub fn is_loading(&self) -> bool {
        self.loading
    }

    /// Applies one record of the partition, in log order, while loading. Records with a key
    /// version Kafka does not define are skipped, as Kafka skips them; a value that does not
    /// decode is an error (Kafka stops loading the partition).
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), RecordError> {
        let Some(id) = records::decode_key(key)? else {
            return Ok(());
        };
        match value {
            None => {
                self.txns.remove(&id);
            }
            Some(value) => {
                let value = records::decode_value(value)?;
                let meta = TxnMetadata::from_log(id.clone(), value);
                self.txns.insert(id, Entry { meta, write: None });
            }
        }
        Ok(())
    }

    /// Loading is done: resume the transactions the previous coordinator left in
    /// PrepareCommit/PrepareAbort (their markers are sent again, with this coordinator's epoch).
    /// Ids loaded in any other state, PrepareEpochFence included (never written by Kafka), need
    /// nothing.
    pub fn finish_loading(&mut self, now: i64) -> Vec<Effect> {
        self.loading = false;
        self.next_expiry_check = now.saturating_add(
            self.config
                .remove_expired_transactional_id_cleanup_interval_ms,
        );
        let mut effects = Vec::new();
        let resumable: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e.meta.state,
                    TxnState::PrepareCommit | TxnState::PrepareAbort
                )
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in resumable {
            let entry = self.txns.get_mut(&id).expect("listed above");
            let Ok(transit) = entry.meta.prepare_complete(now) else {
                continue;
            };
            self.send_markers(&id, transit, &mut effects);
        }
        effects
    }

    /// InitProducerId with a transactional id. `fresh_producer_id` is an unused id from the
    /// caller's block, taken only where Kafka allocates one (a new transactional id, or an
    /// exhausted epoch); [`TxnOutcome::used_fresh_producer_id`] says whether it was. A negative
    /// value means the caller has none at hand: where one is needed the request is answered
    /// COORDINATOR_LOAD_IN_PROGRESS (what Kafka answers while its id block is not ready), and
    /// the client retries.
    pub fn init_producer_id(
        &mut self,
        token: RequestToken,
        p: InitProducerIdParams,
        fresh_producer_id: i64,
        now: i64,
    ) -> TxnOutcome {
        let mut out = TxnOutcome::default();
        let fail = |out: &mut TxnOutcome, error| {
            respond(
                &mut out.effects,
                token,
                Response::InitProducerId(Err(error)),
            );
        };
        if self.loading {
            fail(&mut out, ResponseError::CoordinatorLoadInProgress);
            return out;
        }
        if p.transactional_id.is_empty() {
            fail(&mut out, ResponseError::InvalidRequest);
            return out;
        }
        if p.transaction_timeout_ms <= 0
            || p.transaction_timeout_ms > self.config.transaction_max_timeout_ms
        {
            fail(&mut out, ResponseError::InvalidTransactionTimeout);
            return out;
        }
        // KafkaApis: both or neither of the KIP-360 fields.
        let expected = match (p.producer_id, p.producer_epoch) {
            (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => None,
            (NO_PRODUCER_ID, _) | (_, NO_PRODUCER_EPOCH) => {
                fail(&mut out, ResponseError::InvalidRequest);
                return out;
            }
            (pid, epoch) => Some((pid, epoch)),
        };
        let id = p.transactional_id;
        if !self.txns.contains_key(&id) {
            if fresh_producer_id < 0 {
                fail(&mut out, ResponseError::CoordinatorLoadInProgress);
                return out;
            }
            // Like Kafka, the new id is cached before its first record is written.
            let meta =
                TxnMetadata::new(id.clone(), fresh_producer_id, p.transaction_timeout_ms, now);
            self.txns.insert(id.clone(), Entry { meta, write: None });
            out.used_fresh_producer_id = true;
        }
        let m = &mut self.txns.get_mut(&id).expect("present").meta;
        let valid_producer_id = |(pid, epoch): (i64, i16)| {
            m.producer_epoch == NO_PRODUCER_EPOCH
                || pid == m.producer_id
                || (pid == m.previous_producer_id && is_epoch_exhausted(epoch))
        };
        if m.pending_transition_in_progress() {
            fail(&mut out, ResponseError::ConcurrentTransactions);
            return out;
        }
        if !expected.is_none_or(valid_producer_id) {
            fail(&mut out, ResponseError::ProducerFenced);
            return out;
        }
        let transit = match m.state {
            TxnState::PrepareAbort | TxnState::PrepareCommit => {
                fail(&mut out, ResponseError::ConcurrentTransactions);
                return out;
            }
            TxnState::Empty | TxnState::CompleteAbort | TxnState::CompleteCommit => {
                let rotate = m.is_producer_epoch_exhausted()
                    && expected.is_none_or(|(_, epoch)| epoch == m.producer_epoch);
                if rotate && fresh_producer_id < 0 {
                    fail(&mut out, ResponseError::CoordinatorLoadInProgress);
                    return out;
                }
                if rotate {
                    out.used_fresh_producer_id = true;
                    m.prepare_producer_id_rotation(
                        fresh_producer_id,
                        p.transaction_timeout_ms,
                        now,
                        expected.is_some(),
                    )
                    .map(Some)
                } else {
                    m.prepare_increment_producer_epoch(
                        p.transaction_timeout_ms,
                        expected.map(|(_, epoch)| epoch),
                        now,
                    )
                }
            }
            TxnState::Ongoing => {
                // Fence the current producer and abort its transaction; this bumped epoch is
                // never returned: the client retries after CONCURRENT_TRANSACTIONS and gets
                // another bump (or a new producer id if this one exhausted the epochs).
                match m.prepare_fence_producer_epoch() {
                    Ok(fence) => {
                        let tv = self.config.transaction_version;
                        (out.effects, _) = self.end_transaction(
                            &id,
                            EndOrigin::Fence(token),
                            fence.producer_id,
                            fence.producer_epoch,
                            false,
                            tv,
                            false,
                            None,
                            now,
                        );
                        return out;
                    }
                    Err(_) => {
                        fail(&mut out, ResponseError::UnknownServerError);
                        return out;
                    }
                }
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {
                fail(&mut out, ResponseError::UnknownServerError);
                return out;
            }
        };
        match transit {
            Ok(Some(transit)) => self.persist(
                &id,
                transit,
                Waiter::InitProducerId(token),
                &mut out.effects,
            ),
            Ok(None) => fail(&mut out, ResponseError::ProducerFenced),
            Err(_) => fail(&mut out, ResponseError::UnknownServerError),
        }
        out
    }

    /// AddPartitionsToTxn for one transaction, or its verification (`verify_only`).
    pub fn add_partitions(
        &mut self,
        token: RequestToken,
        p: AddPartitionsParams,
        now: i64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        if p.verify_only {
            let response = self.verify_partitions(&p);
            respond(&mut effects, token, response);
            return effects;
        }
        let waiter = Waiter::AddPartitions {
            token,
            partitions: p.partitions.clone(),
        };
        match self.add(
            &p.transactional_id,
            p.producer_id,
            p.producer_epoch,
            &p.partitions,
            now,
        ) {
            Ok(Some(transit)) => self.persist(&p.transactional_id, transit, waiter, &mut effects),
            Ok(None) => respond(&mut effects, token, all_partitions(&p.partitions, None)),
            Err(error) => respond(
                &mut effects,
                token,
                all_partitions(&p.partitions, Some(error)),
            ),
        }
        effects
    }

    /// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition.
    pub fn add_offsets(
        &mut self,
        token: RequestToken,
        p: AddOffsetsParams,
        now: i64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let partitions = [(CONSUMER_OFFSETS_TOPIC.to_owned(), p.offsets_partition)];
        match self.add(
            &p.transactional_id,
            p.producer_id,
            p.producer_epoch,
            &partitions,
            now,
        ) {
            Ok(Some(transit)) => self.persist(
                &p.transactional_id,
                transit,
                Waiter::AddOffsets(token),
                &mut effects,
            ),
            Ok(None) => respond(&mut effects, token, Response::AddOffsets(None)),
            Err(error) => respond(&mut effects, token, Response::AddOffsets(Some(error))),
        }
        effects
    }

    /// Kafka's `handleAddPartitionsToTransaction` up to the write: `Ok(None)` when every
    /// partition is already in the ongoing transaction.
    fn add(
        &mut self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        now: i64,
    ) -> Result<Option<Transit>, ResponseError> {
        if self.loading {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        if id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let m = &mut self
            .txns
            .get_mut(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?
            .meta;
        if m.producer_id != producer_id {
            Err(ResponseError::InvalidProducerIdMapping)
        } else if m.producer_epoch != producer_epoch {
            Err(ResponseError::ProducerFenced)
        } else if m.pending_transition_in_progress()
            || matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
        {
            Err(ResponseError::ConcurrentTransactions)
        } else if m.state == TxnState::Ongoing
            && partitions.iter().all(|tp| m.topic_partitions.contains(tp))
        {
            Ok(None)
        } else {
            m.prepare_add_partitions(partitions, now)
                .map(Some)
                .map_err(|_| ResponseError::UnknownServerError)
        }
    }

    /// Kafka's `handleVerifyPartitionsInTransaction`: whether each partition is in the
    /// transaction, TRANSACTION_ABORTABLE when not (the partition leader maps that to
    /// INVALID_TXN_STATE for producers that do not know the code). Pending transitions are not
    /// checked: the partition's own append validates again.
    fn verify_partitions(&self, p: &AddPartitionsParams) -> Response {
        let result = if self.loading {
            Err(ResponseError::CoordinatorLoadInProgress)
        } else if p.transactional_id.is_empty() {
            Err(ResponseError::InvalidRequest)
        } else {
            match self.txns.get(&p.transactional_id) {
                None => Err(ResponseError::InvalidProducerIdMapping),
                Some(entry) if entry.meta.producer_id != p.producer_id => {
                    Err(ResponseError::InvalidProducerIdMapping)
                }
                Some(entry) if entry.meta.producer_epoch != p.producer_epoch => {
                    Err(ResponseError::ProducerFenced)
                }
                Some(entry)
                    if matches!(
                        entry.meta.state,
                        TxnState::PrepareCommit | TxnState::PrepareAbort
                    ) =>
                {
                    Err(ResponseError::ConcurrentTransactions)
                }
                Some(entry) => Ok(&entry.meta),
            }
        };
        match result {
            Err(error) => all_partitions(&p.partitions, Some(error)),
            Ok(m) => Response::AddPartitions(
                p.partitions
                    .iter()
                    .map(|tp| {
                        let error = (!m.topic_partitions.contains(tp))
                            .then_some(ResponseError::TransactionAbortable);
                        (tp.clone(), error)
                    })
                    .collect(),
            ),
        }
    }

    /// EndTxn. `fresh_producer_id` is taken only when a TV2 EndTxn bumps an exhausted epoch
    /// (the transaction completes onto a new producer id); `None` answers
    /// COORDINATOR_LOAD_IN_PROGRESS in that case, as Kafka does while it has no id block.
    pub fn end_txn(
        &mut self,
        token: RequestToken,
        p: EndTxnParams,
        fresh_producer_id: Option<i64>,
        now: i64,
    ) -> TxnOutcome {
        if self.loading || p.transactional_id.is_empty() {
            let error = if self.loading {
                ResponseError::CoordinatorLoadInProgress
            } else {
                ResponseError::InvalidRequest
            };
            let mut out = TxnOutcome::default();
            respond(&mut out.effects, token, Response::EndTxn(Err(error)));
            return out;
        }
        let tv = if p.epoch_bump {
            TransactionVersion::TV_2
        } else {
            TransactionVersion::TV_0
        };
        let (effects, used_fresh_producer_id) = self.end_transaction(
            &p.transactional_id,
            EndOrigin::Client(token),
            p.producer_id,
            p.producer_epoch,
            p.commit,
            tv,
            true,
            fresh_producer_id,
            now,
        );
        TxnOutcome {
            effects,
            used_fresh_producer_id,
        }
    }

    /// Kafka's `endTransaction`, for clients, fencing and timeouts; also says whether
    /// `fresh_producer_id` was taken.
    #[allow(clippy::too_many_arguments)]
    fn end_transaction(
        &mut self,
        id: &str,
        origin: EndOrigin,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        client_version: TransactionVersion,
        from_client: bool,
        fresh_producer_id: Option<i64>,
        now: i64,
    ) -> (Vec<Effect>, bool) {
        let mut effects = Vec::new();
        let Some(entry) = self.txns.get_mut(id) else {
            origin.respond(Err(ResponseError::InvalidProducerIdMapping), &mut effects);
            return (effects, false);
        };
        let m = &mut entry.meta;
        let fencing = m.pending_state == Some(TxnState::PrepareEpochFence);
        let result = Self::prepare_end(
            m,
            producer_id,
            producer_epoch,
            commit,
            client_version,
            from_client,
            fresh_producer_id,
            now,
        );
        if fencing && m.pending_state == Some(TxnState::PrepareEpochFence) {
            // The fence did not go ahead (unreachable: a fenced txn is Ongoing); Kafka would
            // leave the pending state set forever.
            m.abort_transition();
        }
        let mut used_fresh = false;
        match result {
            Ok(Prepared::Transit {
                transit,
                epoch_fence,
            }) => {
                used_fresh = transit.next_producer_id != NO_PRODUCER_ID;
                let waiter = Waiter::EndTxn {
                    origin,
                    producer_id,
                    producer_epoch,
                    commit,
                    epoch_fence,
                };
                self.persist(id, transit, waiter, &mut effects);
            }
            Ok(Prepared::AlreadyDone) => {
                origin.respond(Ok((m.producer_id, m.producer_epoch)), &mut effects);
            }
            Err(error) => origin.respond(Err(error), &mut effects),
        }
        (effects, used_fresh)
    }

    #[allow(clippy::too_many_arguments)]
    fn prepare_end(
        m: &mut TxnMetadata,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        client_version: TransactionVersion,
        from_client: bool,
        fresh_producer_id: Option<i64>,
        now: i64,
    ) -> Result<Prepared, ResponseError> {
        use TxnState::*;
        let fencing = m.pending_state == Some(PrepareEpochFence);
        let current_tv2 = !fencing && m.client_transaction_version.supports_epoch_bump();
        // A TV2 client retrying an EndTxn whose bump overflowed onto a new producer id.
        let retry_on_overflow = current_tv2
            && m.previous_producer_id == producer_id
            && producer_epoch == i16::MAX - 1
            && m.producer_epoch == 0;
        let retry_on_epoch_bump = end_txn_epoch_bumped(m, producer_epoch);
        let valid_epoch = if current_tv2 {
            // With TV2 the same epoch means the *next* EndTxn; a retry carries the epoch before
            // the bump.
            match m.state {
                Ongoing | Empty | Dead | PrepareEpochFence => producer_epoch == m.producer_epoch,
                PrepareCommit | PrepareAbort => retry_on_epoch_bump,
                CompleteCommit | CompleteAbort => retry_on_epoch_bump || retry_on_overflow,
            }
        } else {
            (!from_client || producer_epoch == m.producer_epoch)
                && producer_epoch >= m.producer_epoch
        };
        if m.producer_id != producer_id && !retry_on_overflow {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if !valid_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        if m.pending_transition_in_progress() && !fencing {
            return Err(ResponseError::ConcurrentTransactions);
        }
        let matching = |done: Result<Prepared, ResponseError>, same: bool| {
            if same {
                done
            } else {
                Err(ResponseError::InvalidTxnState)
            }
        };
        match m.state {
            Ongoing => {
                let state = if commit { PrepareCommit } else { PrepareAbort };
                let next_producer_id = if client_version.supports_epoch_bump()
                    && !fencing
                    && m.is_producer_epoch_exhausted()
                {
                    fresh_producer_id.ok_or(ResponseError::CoordinatorLoadInProgress)?
                } else {
                    NO_PRODUCER_ID
                };
                let mut epoch_fence = false;
                if state == PrepareAbort && fencing {
                    // The fence becomes the abort: its bumped epoch is now the current one.
                    epoch_fence = true;
                    m.pending_state = None;
                    m.producer_epoch = producer_epoch;
                    m.last_producer_epoch = NO_PRODUCER_EPOCH;
                }
                m.prepare_abort_or_commit(state, client_version, next_producer_id, now)
                    .map(|transit| Prepared::Transit {
                        transit,
                        epoch_fence,
                    })
                    .map_err(|_| ResponseError::UnknownServerError)
            }
            CompleteCommit => matching(Ok(Prepared::AlreadyDone), commit),
            CompleteAbort => matching(Ok(Prepared::AlreadyDone), !commit),
            PrepareCommit => matching(Err(ResponseError::ConcurrentTransactions), commit),
            PrepareAbort => matching(Err(ResponseError::ConcurrentTransactions), !commit),
            Empty => Err(ResponseError::InvalidTxnState),
            Dead | PrepareEpochFence => Err(ResponseError::UnknownServerError),
        }
    }

    /// Writes `transit` for `txn_id` (whose pending state it already is).
    fn persist(
        &mut self,
        txn_id: &str,
        transit: Transit,
        waiter: Waiter,
        effects: &mut Vec<Effect>,
    ) {
        let id = PersistId(self.next_persist);
        self.next_persist += 1;
        let value = (transit.state != TxnState::Dead).then(|| {
            records::encode_value(
                &TxnMetadata::log_value(&transit),
                self.config.transaction_version.log_value_version(),
            )
        });
        effects.push(Effect::Persist {
            id,
            transactional_id: txn_id.to_owned(),
            key: records::encode_key(txn_id),
            value,
        });
        self.persists.insert(id, txn_id.to_owned());
        if let Some(entry) = self.txns.get_mut(txn_id) {
            entry.write = Some(Write {
                transit,
                phase: Phase::Persisting { id, waiter },
            });
        }
    }
}

enum Prepared {
    Transit {
        transit: Transit,
        epoch_fence: bool,
    },
    /// A retry of an EndTxn that already completed: answered OK with the current id and epoch.
    AlreadyDone,
}

/// TV2: the metadata's epoch is the request's plus one, i.e. the request is a retry of the
/// EndTxn that bumped it (fences bump differently and are excluded).
fn end_txn_epoch_bumped(m: &TxnMetadata, producer_epoch: i16) -> bool {
    m.pending_state != Some(TxnState::PrepareEpochFence)
        && m.client_transaction_version.supports_epoch_bump()
        && i32::from(m.producer_epoch) == i32::from(producer_epoch) + 1
}
