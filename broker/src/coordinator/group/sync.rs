//! The rest of the classic rebalance protocol: SyncGroup, Heartbeat, LeaveGroup, the timers
//! (sessions, pending members, the sync deadline) and the outcomes of parked writes.
//!
//! SyncGroup from followers is parked in CompletingRebalance until the leader's assignment
//! is stored; the leader's SyncGroup emits that write, and its success makes the group
//! Stable and answers every parked SyncGroup with the member's own assignment.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::api::{
    HeartbeatParams, JoinGroupResult, LeaveGroupParams, LeaveGroupResult, LeftMember,
    SyncGroupParams, SyncGroupResult, coordinator_error_for_append,
};
use super::ctx::{Ctx, PendingWrite, StaticReplace};
use super::ids::{GenerationId, MemberId, RequestToken};
use super::records;
use super::state::{Group, GroupState, Timer};

impl Group {
    pub(super) fn sync(&mut self, token: RequestToken, p: &SyncGroupParams, ctx: &mut Ctx<'_>) {
        if self.state == GroupState::Empty {
            ctx.respond_sync(
                token,
                SyncGroupResult::error(ResponseError::UnknownMemberId),
            );
            return;
        }
        if let Err(error) = self.validate_sync(p) {
            ctx.respond_sync(token, SyncGroupResult::error(error));
            return;
        }
        match self.state {
            GroupState::PreparingRebalance => {
                ctx.respond_sync(
                    token,
                    SyncGroupResult::error(ResponseError::RebalanceInProgress),
                );
            }
            GroupState::CompletingRebalance => {
                let member = self.members.get_mut(&p.member_id).expect("validated");
                if let Some(old) = member.awaiting_sync.replace(token)
                    && old != token
                {
                    ctx.supersede_sync(old);
                }
                self.remove_pending_sync_member(&p.member_id);
                if self.is_leader(&p.member_id) {
                    self.store_assignment(p, ctx);
                }
            }
            GroupState::Stable => {
                self.remove_pending_sync_member(&p.member_id);
                let member = self.members.get_mut(&p.member_id).expect("validated");
                member.reschedule_session(ctx.now);
                let result = SyncGroupResult {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                ctx.respond_sync(token, result);
            }
            GroupState::Empty | GroupState::Dead => {
                ctx.respond_sync(
                    token,
                    SyncGroupResult::error(ResponseError::UnknownMemberId),
                );
            }
        }
    }

    fn validate_sync(&self, p: &SyncGroupParams) -> Result<(), ResponseError> {
        self.validate_member(&p.member_id, p.group_instance_id.as_ref())?;
        if p.generation_id != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        // Only checked when both sides have one (SyncGroup v5+ sends them).
        let inconsistent = |given: &Option<String>, ours: &Option<String>| matches!((given, ours), (Some(given), Some(ours)) if given != ours);
        if inconsistent(&p.protocol_type, &self.protocol_type)
            || inconsistent(&p.protocol_name, &self.protocol_name)
        {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        Ok(())
    }

    /// The leader's assignment: members it left out get an empty one. The group turns Stable
    /// only once the assignment is stored.
    fn store_assignment(&mut self, p: &SyncGroupParams, ctx: &mut Ctx<'_>) {
        let mut assignment: BTreeMap<MemberId, Bytes> = p.assignments.iter().cloned().collect();
        for member_id in self.members.keys() {
            assignment.entry(member_id.clone()).or_default();
        }
        let record = records::group_metadata_record(&self.id, &self.metadata_value(&assignment));
        let waiter = PendingWrite::SyncAssignment {
            group: self.id.clone(),
            generation: self.generation,
            assignment,
        };
        ctx.persist(&self.id, vec![record], Some(waiter));
    }

    fn remove_pending_sync_member(&mut self, member_id: &MemberId) {
        self.pending_sync.remove(member_id);
        let done = match self.state {
            GroupState::CompletingRebalance | GroupState::Stable => self.pending_sync.is_empty(),
            _ => true,
        };
        if done {
            self.sync_timer = None;
        }
    }

    pub(super) fn reset_and_propagate_assignment_error(
        &mut self,
        error: ResponseError,
        ctx: &mut Ctx<'_>,
    ) {
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
        }
        self.propagate_assignment(Some(error), ctx);
    }

    fn set_and_propagate_assignment(
        &mut self,
        assignment: &BTreeMap<MemberId, Bytes>,
        ctx: &mut Ctx<'_>,
    ) {
        for member in self.members.values_mut() {
            member.assignment = assignment.get(&member.id).cloned().unwrap_or_default();
        }
        self.propagate_assignment(None, ctx);
    }

    /// Answers every parked SyncGroup. Sessions restart for those members: a deadline that
    /// passed while they waited was ignored and never re-armed.
    fn propagate_assignment(&mut self, error: Option<ResponseError>, ctx: &mut Ctx<'_>) {
        let (protocol_type, protocol_name) = match error {
            None => (self.protocol_type.clone(), self.protocol_name.clone()),
            Some(_) => (None, None),
        };
        for member in self.members.values_mut() {
            if let Some(token) = member.awaiting_sync.take() {
                let result = SyncGroupResult {
                    error,
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                ctx.respond_sync(token, result);
                member.reschedule_session(ctx.now);
            }
        }
    }

    /// The leader's assignment write completed.
    pub(super) fn on_assignment_persisted(
        &mut self,
        generation: GenerationId,
        assignment: &BTreeMap<MemberId, Bytes>,
        result: Result<(), ResponseError>,
        ctx: &mut Ctx<'_>,
    ) {
        // A member may have joined or left while the write was in flight; then this
        // generation is over and its outcome irrelevant.
        if self.state != GroupState::CompletingRebalance || self.generation != generation {
            return;
        }
        match result {
            Ok(()) => {
                self.set_and_propagate_assignment(assignment, ctx);
                self.transition(GroupState::Stable, ctx.now);
                ctx.stats.completed_rebalances += 1;
            }
            Err(error) => {
                let error = coordinator_error_for_append(error);
                self.reset_and_propagate_assignment_error(error, ctx);
                self.maybe_prepare_rebalance_or_complete_join(ctx, "storing the assignment failed");
            }
        }
    }

    /// The write of a replaced static member's new id completed.
    pub(super) fn on_static_replace_persisted(
        &mut self,
        write: StaticReplace,
        result: Result<(), ResponseError>,
        ctx: &mut Ctx<'_>,
    ) {
        let new_id = &write.new_member_id;
        // Answered already if a rebalance started meanwhile (the member counted as rejoined).
        let Some(member) = self.members.get_mut(new_id) else {
            return;
        };
        if member.awaiting_join != Some(write.token) {
            return;
        }
        member.awaiting_join = None;
        match result {
            Ok(()) if write.supports_skip_assignment => {
                // JoinGroup v9+: a restarted static leader learns it leads but must not run
                // the assignor — a Stable group would ignore the new assignment.
                let is_leader = self.is_leader(new_id);
                let mut response = self.join_result(new_id, is_leader);
                response.skip_assignment = is_leader;
                ctx.respond_join(write.token, response);
            }
            Ok(()) => {
                // Before v9 the old leader id is returned, so a restarted leader does not
                // recognise itself and run an assignment the Stable group would ignore.
                let mut response = self.join_result(new_id, false);
                response.leader = write.leader_before;
                ctx.respond_join(write.token, response);
            }
            Err(error) => {
                member.protocols = write.old_protocols;
                member.rebalance_timeout_ms = write.old_rebalance_timeout_ms;
                member.session_timeout_ms = write.old_session_timeout_ms;
                self.replace_static_member(&write.instance_id, new_id, &write.old_member_id, ctx);
                if let Some(old) = self.members.get_mut(&write.old_member_id) {
                    old.reschedule_session(ctx.now);
                }
                let mut response = self.join_result(&MemberId::default(), false);
                response.error = Some(coordinator_error_for_append(error));
                response.leader = write.leader_before;
                ctx.respond_join(write.token, response);
            }
        }
    }

    pub(super) fn heartbeat(
        &mut self,
        p: &HeartbeatParams,
        ctx: &mut Ctx<'_>,
    ) -> Option<ResponseError> {
        if let Err(error) = self.validate_member(&p.member_id, p.group_instance_id.as_ref()) {
            return Some(error);
        }
        if p.generation_id != self.generation {
            return Some(ResponseError::IllegalGeneration);
        }
        let error = match self.state {
            GroupState::Empty | GroupState::Dead => return Some(ResponseError::UnknownMemberId),
            // Tells the member to rejoin; its session still counts.
            GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            // Members may heartbeat between their JoinGroup and SyncGroup responses.
            GroupState::CompletingRebalance | GroupState::Stable => None,
        };
        if let Some(member) = self.members.get_mut(&p.member_id) {
            member.reschedule_session(ctx.now);
        }
        error
    }

    pub(super) fn leave(&mut self, p: &LeaveGroupParams, ctx: &mut Ctx<'_>) -> LeaveGroupResult {
        let mut members = Vec::with_capacity(p.members.len());
        let mut anyone_left = false;
        for leaving in &p.members {
            let error = if leaving.member_id.is_empty() {
                // An admin removing a static member by its instance id.
                let current = leaving
                    .group_instance_id
                    .as_ref()
                    .and_then(|instance_id| self.static_members.get(instance_id))
                    .cloned();
                match current {
                    Some(member_id) => {
                        self.remove_member(&member_id, ctx);
                        None
                    }
                    None => Some(ResponseError::UnknownMemberId),
                }
            } else if self.pending_members.contains_key(&leaving.member_id) {
                self.remove_member(&leaving.member_id, ctx);
                None
            } else {
                match self.validate_member(&leaving.member_id, leaving.group_instance_id.as_ref()) {
                    Ok(()) => {
                        self.remove_member(&leaving.member_id, ctx);
                        None
                    }
                    Err(error) => Some(error),
                }
            };
            if error.is_none() {
                tracing::info!(
                    group = %self.id,
                    member = %leaving.member_id,
                    reason = leaving.reason.as_deref().unwrap_or("not provided"),
                    "member left the group"
                );
            }
            anyone_left |= error.is_none();
            members.push(LeftMember {
                member_id: leaving.member_id.clone(),
                group_instance_id: leaving.group_instance_id.clone(),
                error,
            });
        }
        if anyone_left {
            match self.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(ctx, "members left the group");
                }
                GroupState::PreparingRebalance => self.maybe_complete_join_phase(ctx),
                GroupState::Empty | GroupState::Dead => {}
            }
        }
        LeaveGroupResult {
            error: None,
            members,
        }
    }

    /// Fires every timer due at `now`, earliest first. Timers armed while firing wait for the
    /// next tick even if already due, so one tick always terminates.
    pub(super) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        for (deadline, timer) in self.due_timers(ctx.now) {
            if self.timer_deadline(&timer) == Some(deadline) {
                self.fire(timer, ctx);
            }
        }
    }

    fn fire(&mut self, timer: Timer, ctx: &mut Ctx<'_>) {
        match timer {
            Timer::PendingMember(member_id) => {
                tracing::info!(group = %self.id, member = %member_id, "pending member never joined; removing it");
                self.remove_member(&member_id, ctx);
                if self.state == GroupState::PreparingRebalance && self.has_all_members_joined() {
                    self.complete_join(ctx);
                }
            }
            Timer::Session(member_id) => self.expire_session(&member_id, ctx),
            Timer::Join => self.on_join_timer(ctx),
            Timer::Sync => self.expire_pending_sync(ctx),
        }
    }

    fn expire_session(&mut self, member_id: &MemberId, ctx: &mut Ctx<'_>) {
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        member.session_deadline = None;
        if member.heartbeat_satisfied_by_parked_request() {
            return;
        }
        tracing::info!(group = %self.id, member = %member_id, "session expired; removing the member");
        self.remove_member(member_id, ctx);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(ctx, "member session expired");
            }
            // Unlike a LeaveGroup, this completes even an initial rebalance early (Kafka's
            // `removeMemberAndUpdateClassicGroup`).
            GroupState::PreparingRebalance if self.has_all_members_joined() => {
                self.complete_join(ctx);
            }
            _ => {}
        }
    }

    /// Members that got their JoinGroup response but sent no SyncGroup within the rebalance
    /// timeout are removed, and the group rebalances without them.
    fn expire_pending_sync(&mut self, ctx: &mut Ctx<'_>) {
        let Some(timer) = self.sync_timer.take() else {
            return;
        };
        let live = matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        );
        if timer.generation != self.generation || !live || self.pending_sync.is_empty() {
            return;
        }
        let late: Vec<MemberId> = self.pending_sync.iter().cloned().collect();
        tracing::info!(group = %self.id, members = ?late, "members sent no SyncGroup in time; removing them");
        for member_id in &late {
            self.remove_member(member_id, ctx);
        }
        self.prepare_rebalance(ctx, "members sent no SyncGroup in time");
    }

    /// This coordinator lost the group's partition: parked requests are answered
    /// NOT_COORDINATOR so clients look the new coordinator up.
    pub(super) fn unload(&mut self, ctx: &mut Ctx<'_>) {
        for member in self.members.values_mut() {
            if let Some(token) = member.awaiting_join.take() {
                let result =
                    JoinGroupResult::error(member.id.clone(), ResponseError::NotCoordinator);
                ctx.respond_join(token, result);
            }
            if let Some(token) = member.awaiting_sync.take() {
                ctx.respond_sync(token, SyncGroupResult::error(ResponseError::NotCoordinator));
            }
        }
        self.transition(GroupState::Dead, ctx.now);
    }
}
