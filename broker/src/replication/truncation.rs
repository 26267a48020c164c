//! How a follower cuts its log before fetching from a new leader (KIP-101, KIP-279): by
//! leader epoch, never blindly to the high watermark, and what to do when a fetch offset is out
//! of the leader's range. Pure decisions; the fetcher asks the leader and applies them.
//!
//! The follower sends OffsetsForLeaderEpoch for the latest epoch in its own epoch cache. The
//! leader answers with the largest epoch it has at or below that one and where that epoch ends
//! in its log. When the follower has that epoch too, both logs agree up to the smaller of the
//! two end offsets, and the follower cuts there. When it does not (its own floor epoch is
//! older), it cuts to the end of its floor epoch and asks again with the epoch it now ends in,
//! until both name the same epoch (KIP-279).

use crate::types::{LeaderEpoch, Offset};

/// The leader's answer for one partition (`UNDEFINED_EPOCH` -1 / `UNDEFINED_EPOCH_OFFSET` -1
/// when it knows nothing of the epoch asked for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub leader_epoch: i32,
    pub end_offset: i64,
}

/// Where to cut the follower's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// Records at and after this offset go (nothing goes when it is at or past the log end).
    pub offset: Offset,
    /// False when another OffsetsForLeaderEpoch round must follow (the follower did not know
    /// the leader's epoch).
    pub completed: bool,
}

/// Kafka's `getOffsetTruncationState`. `follower_end_for(epoch)` is the follower's own
/// OffsetsForLeaderEpoch answer from its epoch cache (the largest epoch at or below `epoch` and
/// where it ends); `high_watermark` is the follower's, used only when the leader knows no end
/// offset (Kafka falls back to the initial fetch offset then).
pub fn truncation_for(
    leader: EpochEndOffset,
    follower_end_for: impl Fn(LeaderEpoch) -> Option<(LeaderEpoch, Offset)>,
    log_end: Offset,
    high_watermark: Offset,
) -> Truncation {
    let Some(leader_end) = Offset::from_i64(leader.end_offset) else {
        return Truncation {
            offset: high_watermark.min(log_end),
            completed: true,
        };
    };
    if leader.leader_epoch < 0 {
        // An answer without an epoch (OffsetsForLeaderEpoch v0): all there is is the offset.
        return Truncation {
            offset: leader_end.min(log_end),
            completed: true,
        };
    }
    match follower_end_for(LeaderEpoch(leader.leader_epoch)) {
        Some((follower_epoch, follower_end)) if follower_epoch.0 != leader.leader_epoch => {
            Truncation {
                offset: follower_end.min(log_end),
                completed: false,
            }
        }
        Some((_, follower_end)) => Truncation {
            offset: follower_end.min(leader_end).min(log_end),
            completed: true,
        },
        // The leader's epoch is older than anything the follower tracks: the leader's offset
        // is all there is to go by (KIP-101's rule).
        None => Truncation {
            offset: leader_end.min(log_end),
            completed: true,
        },
    }
}

/// What a follower does when the leader answered its fetch with OFFSET_OUT_OF_RANGE, given
/// the leader's log end and log start (ListOffsets latest and earliest, as a replica).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutOfRange {
    /// The follower has more than the leader (only after an unclean election): cut back to the
    /// leader's log end.
    TruncateTo(Offset),
    /// The leader no longer has the follower's next offset: start over, empty, at the
    /// leader's log start.
    StartAt(Offset),
    /// The follower's log end is in the leader's range now: fetch again.
    Resume,
}

/// Kafka's `fetchOffsetAndTruncate`.
pub fn out_of_range(
    leader_log_end: Offset,
    leader_log_start: Offset,
    log_end: Offset,
) -> OutOfRange {
    if leader_log_end < log_end {
        OutOfRange::TruncateTo(leader_log_end)
    } else if leader_log_start > log_end {
        OutOfRange::StartAt(leader_log_start)
    } else {
        OutOfRange::Resume
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A follower epoch cache as `(epoch, start offset)` entries, answering as
    /// `LeaderEpochCache::end_offset_for` does.
    fn cache(
        entries: &'static [(i32, u64)],
        log_end: u64,
    ) -> impl Fn(LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        move |requested: LeaderEpoch| {
            let latest = entries.last()?;
            if requested.0 == latest.0 {
                return Some((requested, Offset(log_end)));
            }
            let higher = entries.iter().find(|e| e.0 > requested.0)?;
            let floor = entries.iter().rev().find(|e| e.0 <= requested.0);
            Some(match floor {
                Some(f) => (LeaderEpoch(f.0), Offset(higher.1)),
                None => (requested, Offset(higher.1)),
            })
        }
    }

    fn answer(leader_epoch: i32, end_offset: i64) -> EpochEndOffset {
        EpochEndOffset {
            leader_epoch,
            end_offset,
        }
    }

    #[test]
    fn a_follower_with_a_divergent_tail_from_an_old_epoch_cuts_it_off() {
        // KIP-101's scenario: the follower wrote 10..15 in epoch 1 as leader, the new leader
        // (epoch 2) only had up to 10 of epoch 1, then wrote its own 10..20 in epoch 2.
        let follower = cache(&[(0, 0), (1, 5)], 15);
        let t = truncation_for(answer(1, 10), follower, Offset(15), Offset(8));
        assert_eq!(
            t,
            Truncation {
                offset: Offset(10),
                completed: true
            }
        );
    }

    #[test]
    fn a_follower_never_cuts_committed_records_to_its_high_watermark() {
        // The follower's high watermark (3) lags its log (12), and the leader holds all of it:
        // truncating to the high watermark would lose records the leader already counts.
        let follower = cache(&[(0, 0)], 12);
        let t = truncation_for(answer(0, 20), follower, Offset(12), Offset(3));
        assert_eq!(
            t,
            Truncation {
                offset: Offset(12),
                completed: true
            }
        );
    }

    #[test]
    fn a_follower_that_does_not_know_the_leaders_epoch_cuts_to_its_floor_and_asks_again() {
        // KIP-279: the follower asked about epoch 3 (its latest, from 20); the leader's largest
        // epoch at or below 3 is 2, ending at 25, but the follower never saw epoch 2.
        let follower = cache(&[(0, 0), (1, 10), (3, 20)], 30);
        let t = truncation_for(answer(2, 25), follower, Offset(30), Offset(5));
        assert_eq!(
            t,
            Truncation {
                offset: Offset(20),
                completed: false
            }
        );
        // After cutting to 20 it ends in epoch 1 and asks about it; the leader's epoch 1 ended
        // at 15.
        let follower = cache(&[(0, 0), (1, 10)], 20);
        let t = truncation_for(answer(1, 15), follower, Offset(20), Offset(5));
        assert_eq!(
            t,
            Truncation {
                offset: Offset(15),
                completed: true
            }
        );
    }

    #[test]
    fn a_follower_behind_the_leaders_epoch_end_keeps_its_log() {
        let follower = cache(&[(0, 0), (4, 40)], 45);
        let t = truncation_for(answer(4, 60), follower, Offset(45), Offset(45));
        assert_eq!(t.offset, Offset(45));
        assert!(t.completed);
    }

    #[test]
    fn a_leader_epoch_older_than_the_followers_history_uses_the_leaders_offset() {
        // The follower's cache starts at epoch 5 (older entries went with old segments); the
        // leader answered epoch 3 ending at 50.
        let follower = |_: LeaderEpoch| None;
        let t = truncation_for(answer(3, 50), follower, Offset(70), Offset(10));
        assert_eq!(t.offset, Offset(50));
        assert!(t.completed);
    }

    #[test]
    fn an_undefined_answer_falls_back_to_the_high_watermark_as_kafka_does() {
        let follower = cache(&[(0, 0)], 12);
        let t = truncation_for(answer(-1, -1), follower, Offset(12), Offset(7));
        assert_eq!(
            t,
            Truncation {
                offset: Offset(7),
                completed: true
            }
        );
        let t = truncation_for(answer(-1, 9), cache(&[(0, 0)], 12), Offset(12), Offset(7));
        assert_eq!(t.offset, Offset(9));
    }

    #[test]
    fn out_of_range_truncates_restarts_or_resumes() {
        assert_eq!(
            out_of_range(Offset(50), Offset(0), Offset(60)),
            OutOfRange::TruncateTo(Offset(50))
        );
        assert_eq!(
            out_of_range(Offset(500), Offset(100), Offset(60)),
            OutOfRange::StartAt(Offset(100))
        );
        assert_eq!(
            out_of_range(Offset(500), Offset(100), Offset(200)),
            OutOfRange::Resume
        );
    }
}
