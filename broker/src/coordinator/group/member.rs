//! One member of a classic group: its identity, its protocols, its assignment, the requests it
//! has parked and its session deadline.
//!
//! Invariants: `awaiting_join` is set only while the member's JoinGroup is parked (during
//! PreparingRebalance, or while a replaced static member's JoinGroup waits for its write);
//! `awaiting_sync` only while its SyncGroup is parked in CompletingRebalance.
//! `session_deadline` is `None` exactly when the deadline passed while a request was parked:
//! Kafka does not expire such members, and re-arms the deadline when the request completes.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::api::Protocol;
use super::ids::{InstanceId, MemberId, RequestToken};

#[derive(Clone, Debug)]
pub(super) struct Member {
    pub(super) id: MemberId,
    pub(super) instance_id: Option<InstanceId>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) rebalance_timeout_ms: i32,
    pub(super) session_timeout_ms: i32,
    pub(super) protocol_type: String,
    pub(super) protocols: Vec<Protocol>,
    pub(super) assignment: Bytes,
    pub(super) awaiting_join: Option<RequestToken>,
    pub(super) awaiting_sync: Option<RequestToken>,
    /// Joined but never received a JoinGroup response: it cannot heartbeat yet, so it lives on
    /// the new-member join timeout instead of its session timeout.
    pub(super) is_new: bool,
    pub(super) session_deadline: Option<i64>,
}

impl Member {
    pub(super) fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// The member's metadata for `protocol`; empty if it does not support it (the group only
    /// selects protocols every member supports, so that happens only for corrupt records).
    pub(super) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// Same protocols, in the same order, with the same metadata.
    pub(super) fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// The member's most preferred protocol among `candidates`.
    pub(super) fn vote<'a>(&'a self, candidates: &BTreeSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Kafka's "complete and schedule the next heartbeat expiration".
    pub(super) fn reschedule_session(&mut self, now: i64) {
        self.session_deadline = Some(now + i64::from(self.session_timeout_ms));
    }

    /// A parked request counts as a heartbeat, except for a new member's JoinGroup (which is
    /// what the new-member timeout is for).
    pub(super) fn heartbeat_satisfied_by_parked_request(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }
}
