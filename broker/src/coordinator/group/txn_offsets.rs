//! Transactional offset commits (TxnOffsetCommit) of one group, as Kafka's classic group
//! coordinator keeps them (`GroupMetadata.prepareTxnOffsetCommit` /
//! `completePendingTxnOffsetCommit`).
//!
//! A transactional producer's commit is written to `__consumer_offsets` as the producer's
//! transactional batch, and then waits in [`OffsetStore::transactions`] under its producer id:
//! invisible to OffsetFetch (which answers UNSTABLE_OFFSET_COMMIT for it when asked for stable
//! offsets), never expiring, and keeping its group alive. The transaction coordinator ends
//! the transaction by writing a COMMIT or ABORT marker to the partition; then the commits
//! become visible (unless a regular commit of the same partition is later in the log) or are
//! dropped. No record is written for that: the marker is the record, and loading replays it
//! the same way.
//!
//! Invariants: a producer's entry in `transactions` is never empty; an entry whose write is in
//! flight (`stored == false`) is the one the in-flight write carries (a later commit of the
//! same partition in the same transaction replaces it, and the earlier write's outcome is
//! then ignored).
//!
//! [`OffsetStore::transactions`]: super::offsets::OffsetStore

use kafka_protocol::ResponseError;

use super::api::{OffsetCommitResult, Response, TxnOffsetCommitParams};
use super::ctx::{Ctx, PendingWrite};
use super::ids::{PersistId, RequestToken};
use super::offsets::{LogPosition, TxnOffset, offsets_to_commit};
use super::records::{self, OffsetsRecord};
use super::state::{Group, GroupState};
use crate::types::TopicPartition;

impl Group {
    /// Kafka's `validateOffsetCommit` for a transactional commit: v3+ requests that name a
    /// member or generation are checked against the group; older ones (no member id, no
    /// generation) are accepted in any state, since those versions cannot name one. Unlike a
    /// regular commit, a rebalance in progress does not refuse it.
    fn validate_txn_offset_commit(&self, p: &TxnOffsetCommitParams) -> Result<(), ResponseError> {
        if p.generation_id.0 < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if p.generation_id.0 >= 0 || !p.member_id.is_empty() || p.group_instance_id.is_some() {
            self.validate_member_generation(
                &p.member_id,
                p.group_instance_id.as_ref(),
                p.generation_id,
            )?;
        }
        Ok(())
    }

    /// TxnOffsetCommit: validates, writes the producer's transactional batch, and stages the
    /// offsets as pending for its transaction. Answered once the write is reported.
    pub(super) fn commit_txn_offsets(
        &mut self,
        token: RequestToken,
        p: &TxnOffsetCommitParams,
        ctx: &mut Ctx<'_>,
    ) {
        if let Err(error) = self.validate_txn_offset_commit(p) {
            ctx.respond(
                token,
                Response::TxnOffsetCommit(OffsetCommitResult::all(&p.topics, Some(error))),
            );
            return;
        }
        // Transactional commits carry no per-commit retention.
        let (response, offsets) = offsets_to_commit(&p.topics, ctx, None);
        if offsets.is_empty() {
            ctx.respond(token, Response::TxnOffsetCommit(response));
            return;
        }
        if !self.offsets.committed.is_empty() && self.offsets.transactions.is_empty() {
            // Kafka warns the same way (`hasReceivedConsistentOffsetCommits`), if less often.
            tracing::debug!(
                group = %self.id,
                "group gets offset commits from consumers as well as transactional producers"
            );
        }
        let records: Vec<OffsetsRecord> = offsets
            .iter()
            .map(|(tp, offset)| records::offset_commit_record(&self.id, tp, offset))
            .collect();
        let producer_id = p.producer.producer_id;
        let waiter = PendingWrite::TxnOffsetCommit {
            group: self.id.clone(),
            token,
            producer_id,
            partitions: offsets.iter().map(|(tp, _)| tp.clone()).collect(),
            response,
        };
        let id = ctx.persist_as(&self.id, records, Some(p.producer), Some(waiter));
        let staged = self.offsets.transactions.entry(producer_id).or_default();
        for (tp, offset) in offsets {
            let pending = TxnOffset {
                offset,
                at: LogPosition::Written(id),
                stored: false,
            };
            staged.insert(tp, pending);
        }
    }

    /// A TxnOffsetCommit write completed: its offsets are now pending for the transaction
    /// (stored), or forgotten if the write failed (Kafka's `failPendingTxnOffsetCommit`; the
    /// client retries, perhaps at another coordinator). Returns the response.
    pub(super) fn on_txn_commit_persisted(
        &mut self,
        id: PersistId,
        producer_id: i64,
        partitions: &[TopicPartition],
        response: OffsetCommitResult,
        result: Result<(), ResponseError>,
    ) -> OffsetCommitResult {
        if let Some(staged) = self.offsets.transactions.get_mut(&producer_id) {
            for tp in partitions {
                let Some(pending) = staged.get_mut(tp) else {
                    continue; // deleted while in flight, or the transaction already ended
                };
                if pending.at != LogPosition::Written(id) {
                    continue; // replaced by a later commit of the same transaction
                }
                if result.is_ok() {
                    pending.stored = true;
                } else {
                    staged.remove(tp);
                }
            }
            if staged.is_empty() {
                self.offsets.transactions.remove(&producer_id);
            }
        }
        match result {
            Ok(()) => response,
            Err(error) => response.with_error(super::api::coordinator_error_for_append(error)),
        }
    }

    /// A COMMIT (`commit`) or ABORT marker of `producer_id` is in the log: its pending
    /// commits become visible — each unless the partition's committed offset is later in the
    /// log — or are dropped. Returns whether the group had any.
    pub(super) fn complete_transaction(&mut self, producer_id: i64, commit: bool) -> bool {
        let Some(staged) = self.offsets.transactions.remove(&producer_id) else {
            return false;
        };
        if commit {
            for (tp, pending) in staged {
                if !pending.stored {
                    // Kafka treats this as a bug (IllegalStateException): the marker cannot
                    // precede the commit's record. Its record, if it lands, is not part of
                    // this transaction.
                    tracing::warn!(
                        group = %self.id,
                        producer_id,
                        topic = %tp.topic,
                        partition = tp.partition,
                        "transaction committed before its offset commit was stored; dropped"
                    );
                    continue;
                }
                self.offsets.commit(tp, pending.offset, pending.at);
            }
        }
        true
    }

    /// The producers with an open transaction in this group.
    pub(super) fn open_transactions(&self) -> impl Iterator<Item = i64> + '_ {
        self.offsets.transactions.keys().copied()
    }
}
