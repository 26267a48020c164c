//! The coordinator's timers: transaction timeouts, retried completions, id expiry.

use super::{EndOrigin, Phase, TxnCoordinator, Waiter, Write};
use crate::coordinator::txn::api::Effect;
use crate::coordinator::txn::metadata::TxnState;

impl TxnCoordinator {
    /// Timers: aborts transactions open longer than their timeout (fencing the producer, as
    /// Kafka does), retries completions that could not be written, and every
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` expires ids idle for
    /// `transactional.id.expiration.ms`. Call it at [`next_deadline`](Self::next_deadline)
    /// (late is fine, early does nothing harmful).
    pub fn tick(&mut self, now: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.loading {
            return effects;
        }
        let timed_out: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, e)| {
                !e.meta.pending_transition_in_progress()
                    && e.meta.state == TxnState::Ongoing
                    && e.meta
                        .txn_start_timestamp
                        .saturating_add(i64::from(e.meta.txn_timeout_ms))
                        < now
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in timed_out {
            let m = &mut self.txns.get_mut(&id).expect("listed above").meta;
            let Ok(fence) = m.prepare_fence_producer_epoch() else {
                continue;
            };
            let tv = self.config.transaction_version;
            let (aborted, _) = self.end_transaction(
                &id,
                EndOrigin::Timeout,
                fence.producer_id,
                fence.producer_epoch,
                false,
                tv,
                false,
                None,
                now,
            );
            effects.extend(aborted);
        }

        let retries: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, e)| matches!(&e.write, Some(Write { phase: Phase::RetryAt(at), .. }) if *at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in retries {
            let write = self
                .txns
                .get_mut(&id)
                .and_then(|e| e.write.take())
                .expect("listed above");
            self.persist(&id, write.transit, Waiter::Complete, &mut effects);
        }

        if now >= self.next_expiry_check {
            self.next_expiry_check = now.saturating_add(
                self.config
                    .remove_expired_transactional_id_cleanup_interval_ms,
            );
            let horizon = now.saturating_sub(self.config.transactional_id_expiration_ms);
            let expired: Vec<String> = self
                .txns
                .iter()
                .filter(|(_, e)| {
                    !e.meta.pending_transition_in_progress()
                        && e.meta.state.is_expiration_allowed()
                        && e.meta.txn_last_update_timestamp <= horizon
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                let m = &mut self.txns.get_mut(&id).expect("listed above").meta;
                if let Ok(dead) = m.prepare_dead() {
                    self.persist(&id, dead, Waiter::Expire, &mut effects);
                }
            }
        }
        effects
    }

    /// When [`tick`](Self::tick) has something to do next; `None` while loading.
    pub fn next_deadline(&self) -> Option<i64> {
        if self.loading {
            return None;
        }
        let timeouts = self
            .txns
            .values()
            .filter(|e| {
                e.meta.state == TxnState::Ongoing && !e.meta.pending_transition_in_progress()
            })
            .map(|e| {
                e.meta
                    .txn_start_timestamp
                    .saturating_add(i64::from(e.meta.txn_timeout_ms))
                    .saturating_add(1)
            });
        let retries = self.txns.values().filter_map(|e| match &e.write {
            Some(Write {
                phase: Phase::RetryAt(at),
                ..
            }) => Some(*at),
            _ => None,
        });
        timeouts
            .chain(retries)
            .chain(std::iter::once(self.next_expiry_check))
            .min()
    }
}
