//! Read-only views (DescribeTransactions, ListTransactions, metrics) and unloading.

use kafka_protocol::ResponseError;

use super::{Phase, TxnCoordinator, Waiter, Write, all_partitions, respond};
use crate::coordinator::txn::api::{Effect, ListedTxn, ListedTxns, Response, TxnDescription};
use crate::coordinator::txn::metadata::{TxnMetadata, TxnState};

impl TxnCoordinator {
    /// DescribeTransactions for one id. `now` is unused: Kafka's answer does not depend on it.
    pub fn describe(
        &self,
        transactional_id: &str,
        _now: i64,
    ) -> Result<TxnDescription, ResponseError> {
        if self.loading {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let m = match self.txns.get(transactional_id) {
            Some(entry) if entry.meta.state != TxnState::Dead => &entry.meta,
            _ => return Err(ResponseError::TransactionalIdNotFound),
        };
        let mut topics: Vec<(String, Vec<i32>)> = Vec::new();
        for (topic, partition) in &m.topic_partitions {
            match topics.last_mut() {
                Some((last, ps)) if last == topic => ps.push(*partition),
                _ => topics.push((topic.clone(), vec![*partition])),
            }
        }
        Ok(TxnDescription {
            transactional_id: transactional_id.to_owned(),
            state: m.state.name(),
            transaction_timeout_ms: m.txn_timeout_ms,
            transaction_start_time_ms: m.txn_start_timestamp,
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            topics,
        })
    }

    /// ListTransactions over this partition's ids. Empty filters match everything; a
    /// negative `duration_filter_ms` is no filter, otherwise only transactions started more
    /// than that long ago are listed (Kafka's test, which lists ids with no transaction too).
    pub fn list(
        &self,
        state_filters: &[String],
        producer_id_filters: &[i64],
        duration_filter_ms: i64,
        now: i64,
    ) -> Result<ListedTxns, ResponseError> {
        if self.loading {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let mut states = Vec::new();
        let mut unknown_state_filters = Vec::new();
        for name in state_filters {
            match TxnState::from_name(name) {
                Some(state) => states.push(state),
                None => unknown_state_filters.push(name.clone()),
            }
        }
        let transactions = self
            .txns
            .values()
            .map(|e| &e.meta)
            .filter(|m| {
                m.state != TxnState::Dead
                    && (producer_id_filters.is_empty()
                        || producer_id_filters.contains(&m.producer_id))
                    && (state_filters.is_empty() || states.contains(&m.state))
                    && !(duration_filter_ms >= 0
                        && now.saturating_sub(m.txn_start_timestamp) <= duration_filter_ms)
            })
            .map(|m| ListedTxn {
                transactional_id: m.transactional_id.clone(),
                producer_id: m.producer_id,
                state: m.state.name(),
            })
            .collect();
        Ok(ListedTxns {
            transactions,
            unknown_state_filters,
        })
    }

    /// Transactions between their first partition and their completion (Ongoing, Prepare*).
    pub fn open_transactions(&self) -> usize {
        self.txns
            .values()
            .filter(|e| {
                matches!(
                    e.meta.state,
                    TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
                )
            })
            .count()
    }

    /// Transactions completed by this coordinator: (commits, aborts).
    pub fn counters(&self) -> (u64, u64) {
        (self.commits, self.aborts)
    }

    /// The state of one id, for tests and debugging.
    pub fn metadata(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id).map(|e| &e.meta)
    }

    /// Leadership lost: every waiting request is answered NOT_COORDINATOR. Markers in flight
    /// should be dropped by the caller; the next coordinator resends them.
    pub fn unload(self) -> Vec<Effect> {
        let mut effects = Vec::new();
        for entry in self.txns.into_values() {
            let Some(Write {
                phase: Phase::Persisting { waiter, .. },
                ..
            }) = entry.write
            else {
                continue;
            };
            let error = ResponseError::NotCoordinator;
            match waiter {
                Waiter::InitProducerId(token) => {
                    respond(&mut effects, token, Response::InitProducerId(Err(error)))
                }
                Waiter::AddPartitions { token, partitions } => respond(
                    &mut effects,
                    token,
                    all_partitions(&partitions, Some(error)),
                ),
                Waiter::AddOffsets(token) => {
                    respond(&mut effects, token, Response::AddOffsets(Some(error)))
                }
                Waiter::EndTxn { origin, .. } => origin.respond(Err(error), &mut effects),
                Waiter::Complete | Waiter::Expire => {}
            }
        }
        effects
    }
}
