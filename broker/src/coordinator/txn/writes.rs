//! What follows a `__transaction_state` write or a round of markers: completing the
//! transition, answering its request, sending markers, writing the completion.

use kafka_protocol::ResponseError;

use super::{Phase, TxnCoordinator, Waiter, Write, all_partitions, end_txn_epoch_bumped, respond};
use crate::coordinator::txn::api::{Effect, PersistId, Response, coordinator_error_for_append};
use crate::coordinator::txn::metadata::{NO_PRODUCER_ID, Transit, TxnState};

/// How long a CompleteCommit/CompleteAbort write that failed with COORDINATOR_NOT_AVAILABLE
/// waits before it is retried (Kafka retries it from its marker sender's next poll).
const COMPLETE_RETRY_BACKOFF_MS: i64 = 100;

impl TxnCoordinator {
    /// The outcome of the [`Effect::Persist`] named `id`.
    pub fn persisted(
        &mut self,
        id: PersistId,
        result: Result<(), ResponseError>,
        now: i64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(txn_id) = self.persists.remove(&id) else {
            return effects;
        };
        let Some(entry) = self.txns.get_mut(&txn_id) else {
            return effects;
        };
        let is_this_write = matches!(
            &entry.write,
            Some(Write { phase: Phase::Persisting { id: current, .. }, .. }) if *current == id
        );
        if !is_this_write {
            return effects;
        }
        let Some(Write {
            transit,
            phase: Phase::Persisting { waiter, .. },
        }) = entry.write.take()
        else {
            return effects;
        };
        match result {
            Ok(()) => self.write_succeeded(&txn_id, transit, waiter, now, &mut effects),
            Err(error) => {
                let error = coordinator_error_for_append(error);
                let m = &mut entry.meta;
                match waiter {
                    // Kafka's marker sender retries a completion that could not be written for
                    // now, keeping the transition pending.
                    Waiter::Complete if error == ResponseError::CoordinatorNotAvailable => {
                        entry.write = Some(Write {
                            transit,
                            phase: Phase::RetryAt(now.saturating_add(COMPLETE_RETRY_BACKOFF_MS)),
                        });
                    }
                    Waiter::Complete | Waiter::Expire => m.abort_transition(),
                    Waiter::InitProducerId(token) => {
                        m.abort_transition();
                        respond(&mut effects, token, Response::InitProducerId(Err(error)));
                    }
                    Waiter::AddPartitions { token, partitions } => {
                        m.abort_transition();
                        respond(
                            &mut effects,
                            token,
                            all_partitions(&partitions, Some(error)),
                        );
                    }
                    Waiter::AddOffsets(token) => {
                        m.abort_transition();
                        respond(&mut effects, token, Response::AddOffsets(Some(error)));
                    }
                    Waiter::EndTxn {
                        origin,
                        epoch_fence,
                        ..
                    } => {
                        m.abort_transition();
                        if epoch_fence {
                            // The bumped epoch stays in memory, unwritten and never returned:
                            // the next fence reuses it.
                            m.has_failed_epoch_fence = true;
                        }
                        origin.respond(Err(error), &mut effects);
                    }
                }
            }
        }
        effects
    }

    fn write_succeeded(
        &mut self,
        txn_id: &str,
        transit: Transit,
        waiter: Waiter,
        now: i64,
        effects: &mut Vec<Effect>,
    ) {
        let entry = self.txns.get_mut(txn_id).expect("caller looked it up");
        let m = &mut entry.meta;
        if let Waiter::Expire = waiter {
            if m.pending_state == Some(TxnState::Dead) && m.producer_epoch == transit.producer_epoch
            {
                self.txns.remove(txn_id);
            } else {
                m.abort_transition();
            }
            return;
        }
        let completed = m.complete_transition(&transit);
        if completed.is_err() {
            m.abort_transition();
        }
        let ok = |r: Result<(i64, i16), ResponseError>| {
            completed
                .clone()
                .map_err(|_| ResponseError::UnknownServerError)
                .and(r)
        };
        match waiter {
            Waiter::InitProducerId(token) => respond(
                effects,
                token,
                Response::InitProducerId(ok(Ok((transit.producer_id, transit.producer_epoch)))),
            ),
            Waiter::AddPartitions { token, partitions } => {
                let error = ok(Ok((0, 0))).err();
                respond(effects, token, all_partitions(&partitions, error));
            }
            Waiter::AddOffsets(token) => {
                respond(effects, token, Response::AddOffsets(ok(Ok((0, 0))).err()));
            }
            Waiter::Complete => {
                if completed.is_ok() {
                    match transit.state {
                        TxnState::CompleteCommit => self.commits += 1,
                        _ => self.aborts += 1,
                    }
                }
            }
            Waiter::EndTxn {
                origin,
                producer_id,
                producer_epoch,
                commit,
                ..
            } => {
                if completed.is_err() {
                    origin.respond(Err(ResponseError::UnknownServerError), effects);
                    return;
                }
                // Kafka's checks between the Prepare* write and the markers.
                let result = if m.producer_id != producer_id {
                    Err(ResponseError::InvalidProducerIdMapping)
                } else if m.producer_epoch != producer_epoch
                    && !end_txn_epoch_bumped(m, producer_epoch)
                {
                    Err(ResponseError::ProducerFenced)
                } else if m.pending_transition_in_progress() {
                    Err(ResponseError::ConcurrentTransactions)
                } else if (m.state == TxnState::PrepareCommit && commit)
                    || (m.state == TxnState::PrepareAbort && !commit)
                {
                    m.prepare_complete(now)
                        .map_err(|_| ResponseError::UnknownServerError)
                } else {
                    Err(ResponseError::InvalidTxnState)
                };
                match result {
                    Ok(complete) => {
                        // When a TV2 bump overflowed, the producer continues with the new id
                        // at epoch 0 (what the Complete* record stores).
                        let answer = if m.next_producer_id != NO_PRODUCER_ID {
                            (complete.producer_id, complete.producer_epoch)
                        } else {
                            (m.producer_id, m.producer_epoch)
                        };
                        origin.respond(Ok(answer), effects);
                        self.send_markers(txn_id, complete, effects);
                    }
                    Err(error) => origin.respond(Err(error), effects),
                }
            }
            Waiter::Expire => {}
        }
    }

    /// Markers for the prepared transaction of `txn_id`, whose Complete* transition is
    /// `complete` (already pending); without partitions, the completion is written at once.
    pub(super) fn send_markers(
        &mut self,
        txn_id: &str,
        complete: Transit,
        effects: &mut Vec<Effect>,
    ) {
        let entry = self.txns.get_mut(txn_id).expect("caller looked it up");
        let m = &entry.meta;
        if m.topic_partitions.is_empty() {
            self.persist(txn_id, complete, Waiter::Complete, effects);
            return;
        }
        effects.push(Effect::WriteMarkers {
            transactional_id: txn_id.to_owned(),
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: self.coordinator_epoch,
            commit: m.state == TxnState::PrepareCommit,
            partitions: m.topic_partitions.iter().cloned().collect(),
        });
        entry.write = Some(Write {
            transit: complete,
            phase: Phase::AwaitingMarkers,
        });
    }

    /// Every marker of the [`Effect::WriteMarkers`] for this id, producer id and epoch has
    /// landed (or its partition is gone): write CompleteCommit/CompleteAbort. Stale reports
    /// are ignored.
    pub fn markers_written(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        _now: i64,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(entry) = self.txns.get_mut(transactional_id) else {
            return effects;
        };
        let awaiting = matches!(
            entry.write,
            Some(Write {
                phase: Phase::AwaitingMarkers,
                ..
            })
        );
        if !awaiting
            || entry.meta.producer_id != producer_id
            || entry.meta.producer_epoch != producer_epoch
        {
            return effects;
        }
        let write = entry.write.take().expect("checked above");
        // Kafka stamps the completion when the markers are queued, not when they land.
        self.persist(
            transactional_id,
            write.transit,
            Waiter::Complete,
            &mut effects,
        );
        effects
    }
}
