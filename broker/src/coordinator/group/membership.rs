//! The join phase of the classic rebalance protocol: JoinGroup, static-member replacement,
//! entering PreparingRebalance, and completing the join phase into a new generation.
//!
//! Follows Kafka's `GroupMetadataManager` (classic-group parts): a JoinGroup is parked until
//! every known member has rejoined or the rebalance timeout expires; an Empty group's first
//! rebalance additionally waits `group.initial.rebalance.delay.ms`, extended while members
//! keep arriving. Completing the join phase drops dynamic members that did not rejoin, bumps
//! the generation, selects the protocol and answers every parked JoinGroup (the leader gets
//! all members' metadata).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;

use super::api::{JoinGroupParams, JoinGroupResult, Protocol};
use super::ctx::{Ctx, PendingWrite, StaticReplace};
use super::ids::{GenerationId, InstanceId, MemberId, RequestToken};
use super::member::Member;
use super::records;
use super::state::{Group, GroupState, JoinTimer, SyncTimer};

impl Group {
    pub(super) fn join(&mut self, token: RequestToken, p: &JoinGroupParams, ctx: &mut Ctx<'_>) {
        if !self.accept_joining_member(&p.member_id, ctx.config.max_size) {
            // Kafka drops the refused member too: in PreparingRebalance that is how the last
            // members to rejoin a group that shrank its max size are pushed out.
            self.remove_member(&p.member_id, ctx);
            let result =
                JoinGroupResult::error(MemberId::default(), ResponseError::GroupMaxSizeReached);
            ctx.respond_join(token, result);
        } else if p.member_id.is_empty() {
            self.join_new_member(token, p, ctx);
        } else {
            self.join_existing_member(token, p, ctx);
        }
    }

    /// Kafka's `acceptJoiningMember`. While rebalancing, the members that already rejoined
    /// are counted rather than all members, since the group may be over a reduced max size.
    fn accept_joining_member(&self, member_id: &MemberId, max_size: usize) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || self.num_awaiting_join() < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max_size
            }
        }
    }

    fn join_new_member(&mut self, token: RequestToken, p: &JoinGroupParams, ctx: &mut Ctx<'_>) {
        let names = p.protocols.iter().map(|p| p.name.as_str());
        if !self.supports_protocols(&p.protocol_type, names) {
            let result = JoinGroupResult::error(
                MemberId::default(),
                ResponseError::InconsistentGroupProtocol,
            );
            ctx.respond_join(token, result);
            return;
        }
        let prefix = match &p.group_instance_id {
            Some(instance_id) => instance_id.as_str(),
            None => p.client_id.as_str(),
        };
        let new_id = ctx.new_member_id(prefix);
        match &p.group_instance_id {
            Some(instance_id) => match self.static_members.get(instance_id).cloned() {
                Some(old_id) => {
                    self.update_static_member(token, p, instance_id, &old_id, &new_id, ctx);
                }
                None => self.add_member_then_rebalance(token, p, new_id, ctx),
            },
            None if p.require_known_member_id => {
                // The member only enters the group when it joins again with this id; until
                // then it holds up the join phase, for at most its session timeout.
                let deadline = ctx.now + i64::from(p.session_timeout_ms);
                self.pending_members.insert(new_id.clone(), deadline);
                ctx.respond_join(
                    token,
                    JoinGroupResult::error(new_id, ResponseError::MemberIdRequired),
                );
            }
            None => self.add_member_then_rebalance(token, p, new_id, ctx),
        }
    }

    fn join_existing_member(
        &mut self,
        token: RequestToken,
        p: &JoinGroupParams,
        ctx: &mut Ctx<'_>,
    ) {
        let error = |error| JoinGroupResult::error(p.member_id.clone(), error);
        let names = p.protocols.iter().map(|p| p.name.as_str());
        if !self.supports_protocols(&p.protocol_type, names) {
            ctx.respond_join(token, error(ResponseError::InconsistentGroupProtocol));
            return;
        }
        if self.pending_members.contains_key(&p.member_id) {
            if p.group_instance_id.is_some() {
                // Pending ids are only handed to dynamic members; Kafka fails the request
                // with an internal error.
                ctx.respond_join(token, error(ResponseError::UnknownServerError));
            } else {
                self.add_member_then_rebalance(token, p, p.member_id.clone(), ctx);
            }
            return;
        }
        if let Err(e) = self.validate_member(&p.member_id, p.group_instance_id.as_ref()) {
            ctx.respond_join(token, error(e));
            return;
        }
        let matches = self.members[&p.member_id].matches(&p.protocols);
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member_then_rebalance(token, p, ctx, "member rejoined");
            }
            GroupState::CompletingRebalance if matches => {
                // Most likely the member lost the JoinGroup response: answer it again.
                let with_members = self.is_leader(&p.member_id);
                ctx.respond_join(token, self.join_result(&p.member_id, with_members));
            }
            GroupState::CompletingRebalance => {
                self.update_member_then_rebalance(token, p, ctx, "member metadata changed");
            }
            GroupState::Stable if self.is_leader(&p.member_id) => {
                // The leader rejoins to trigger a rebalance for changes its members' metadata
                // does not show (for consumers: new partitions of subscribed topics).
                self.update_member_then_rebalance(token, p, ctx, "leader rejoined");
            }
            GroupState::Stable if !matches => {
                self.update_member_then_rebalance(token, p, ctx, "member metadata changed");
            }
            GroupState::Stable => {
                ctx.respond_join(token, self.join_result(&p.member_id, false));
            }
            GroupState::Empty | GroupState::Dead => {
                ctx.respond_join(token, error(ResponseError::UnknownMemberId));
            }
        }
    }

    fn add_member_then_rebalance(
        &mut self,
        token: RequestToken,
        p: &JoinGroupParams,
        member_id: MemberId,
        ctx: &mut Ctx<'_>,
    ) {
        let member = Member {
            id: member_id,
            instance_id: p.group_instance_id.clone(),
            client_id: p.client_id.clone(),
            client_host: p.client_host.clone(),
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            session_timeout_ms: p.session_timeout_ms,
            protocol_type: p.protocol_type.clone(),
            protocols: p.protocols.clone(),
            assignment: Default::default(),
            awaiting_join: Some(token),
            awaiting_sync: None,
            is_new: true,
            session_deadline: Some(ctx.now + ctx.config.new_member_join_timeout_ms),
        };
        if self.state == GroupState::PreparingRebalance && self.previous_state == GroupState::Empty
        {
            self.new_member_added = true;
        }
        self.add_member(member);
        self.maybe_prepare_rebalance_or_complete_join(ctx, "new member joined");
    }

    fn update_member_then_rebalance(
        &mut self,
        token: RequestToken,
        p: &JoinGroupParams,
        ctx: &mut Ctx<'_>,
        reason: &str,
    ) {
        self.update_member(
            &p.member_id,
            p.protocols.clone(),
            p.rebalance_timeout_ms,
            p.session_timeout_ms,
            token,
            ctx,
        );
        self.maybe_prepare_rebalance_or_complete_join(ctx, reason);
    }

    /// Records a member's new protocols and timeouts and parks its JoinGroup.
    fn update_member(
        &mut self,
        member_id: &MemberId,
        protocols: Vec<Protocol>,
        rebalance_timeout_ms: i32,
        session_timeout_ms: i32,
        token: RequestToken,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        member.protocols = protocols;
        member.rebalance_timeout_ms = rebalance_timeout_ms;
        member.session_timeout_ms = session_timeout_ms;
        if let Some(old) = member.awaiting_join.replace(token)
            && old != token
        {
            ctx.supersede_join(old, member_id);
        }
    }

    /// A static member rejoined without its member id (typically a restarted process): it
    /// takes over the old member's place under a new id, fencing the old id. In a Stable
    /// group whose selected protocol does not change, that happens without a rebalance: the
    /// new id is persisted and the member answered with the current generation.
    fn update_static_member(
        &mut self,
        token: RequestToken,
        p: &JoinGroupParams,
        instance_id: &InstanceId,
        old_id: &MemberId,
        new_id: &MemberId,
        ctx: &mut Ctx<'_>,
    ) {
        let leader_before = self.leader.clone().unwrap_or_default();
        self.replace_static_member(instance_id, old_id, new_id, ctx);
        let Some(member) = self.members.get_mut(new_id) else {
            return;
        };
        // The old id's session no longer counts; the new one starts now, under the old
        // session timeout (Kafka reschedules before applying the request's timeouts).
        member.reschedule_session(ctx.now);
        let old_protocols = member.protocols.clone();
        let old_rebalance_timeout_ms = member.rebalance_timeout_ms;
        let old_session_timeout_ms = member.session_timeout_ms;
        self.update_member(
            new_id,
            p.protocols.clone(),
            p.rebalance_timeout_ms,
            p.session_timeout_ms,
            token,
            ctx,
        );
        match self.state {
            GroupState::Stable => {
                if self.select_protocol() == self.protocol_name {
                    let value = self.metadata_value(&self.current_assignment());
                    let record = records::group_metadata_record(&self.id, &value);
                    let waiter = PendingWrite::StaticReplace(StaticReplace {
                        group: self.id.clone(),
                        token,
                        instance_id: instance_id.clone(),
                        old_member_id: old_id.clone(),
                        new_member_id: new_id.clone(),
                        old_protocols,
                        old_rebalance_timeout_ms,
                        old_session_timeout_ms,
                        leader_before,
                        supports_skip_assignment: p.supports_skip_assignment,
                    });
                    ctx.persist(&self.id, vec![record], Some(waiter));
                } else {
                    self.maybe_prepare_rebalance_or_complete_join(
                        ctx,
                        "static member rejoined and the selected protocol changes",
                    );
                }
            }
            // The leader may already have assigned partitions to the old id: only a new
            // generation gives the new id an assignment.
            GroupState::CompletingRebalance => {
                self.prepare_rebalance(ctx, "static member rejoined during CompletingRebalance");
            }
            _ => self.maybe_complete_join_phase(ctx),
        }
    }

    pub(super) fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        ctx: &mut Ctx<'_>,
        reason: &str,
    ) {
        if self.state.can_rebalance() {
            self.prepare_rebalance(ctx, reason);
        } else {
            self.maybe_complete_join_phase(ctx);
        }
    }

    /// Completes the join phase once every member rejoined — except in an initial rebalance,
    /// which always waits for its delay to give other members time to arrive.
    pub(super) fn maybe_complete_join_phase(&mut self, ctx: &mut Ctx<'_>) {
        if self.state == GroupState::PreparingRebalance
            && self.previous_state != GroupState::Empty
            && self.has_all_members_joined()
        {
            self.complete_join(ctx);
        }
    }

    pub(super) fn prepare_rebalance(&mut self, ctx: &mut Ctx<'_>, reason: &str) {
        if self.state == GroupState::CompletingRebalance {
            // Members waiting for the old generation's assignment must rejoin instead.
            self.reset_and_propagate_assignment_error(ResponseError::RebalanceInProgress, ctx);
        }
        self.pending_sync.clear();
        self.sync_timer = None;
        let initial = self.state == GroupState::Empty;
        if initial {
            let delay_ms = ctx.config.initial_rebalance_delay_ms;
            self.join_timer = Some(JoinTimer::Initial {
                deadline: ctx.now + delay_ms,
                delay_ms,
                remaining_ms: (self.rebalance_timeout_ms() - delay_ms).max(0),
            });
            // Kafka leaves a stale flag from an earlier initial rebalance that ran out of
            // time; clearing it keeps a later one from being extended by a member that joined
            // long ago.
            self.new_member_added = false;
        }
        tracing::info!(
            group = %self.id,
            generation = %self.generation,
            from = self.state.name(),
            reason,
            "preparing to rebalance"
        );
        self.transition(GroupState::PreparingRebalance, ctx.now);
        ctx.stats.started_rebalances += 1;
        if !initial {
            if self.has_all_members_joined() {
                self.complete_join(ctx);
            } else {
                self.join_timer = Some(JoinTimer::Rebalance {
                    deadline: ctx.now + self.rebalance_timeout_ms(),
                });
            }
        }
    }

    /// The join timer fired.
    pub(super) fn on_join_timer(&mut self, ctx: &mut Ctx<'_>) {
        match self.join_timer.take() {
            Some(JoinTimer::Initial {
                delay_ms,
                remaining_ms,
                ..
            }) if self.new_member_added && remaining_ms != 0 => {
                // Members are still arriving: wait another delay, within the rebalance timeout.
                self.new_member_added = false;
                let next_delay = ctx.config.initial_rebalance_delay_ms.min(remaining_ms);
                self.join_timer = Some(JoinTimer::Initial {
                    deadline: ctx.now + next_delay,
                    delay_ms: next_delay,
                    remaining_ms: (remaining_ms - delay_ms).max(0),
                });
            }
            Some(_) => self.complete_join(ctx),
            None => {}
        }
    }

    pub(super) fn complete_join(&mut self, ctx: &mut Ctx<'_>) {
        self.join_timer = None;
        // Static members keep their place while they restart; dynamic ones that did not
        // rejoin in time are dropped.
        let not_rejoined: Vec<MemberId> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for member_id in &not_rejoined {
            self.remove_member(member_id, ctx);
        }
        if !not_rejoined.is_empty() {
            tracing::info!(group = %self.id, members = ?not_rejoined, "removed members that did not rejoin");
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that did not rejoin are left: wait for them (or for their
            // sessions to expire) for another rebalance timeout.
            self.join_timer = Some(JoinTimer::Rebalance {
                deadline: ctx.now + self.rebalance_timeout_ms(),
            });
            return;
        }
        self.init_next_generation(ctx.now);
        if self.state == GroupState::Empty {
            // Nobody waits for this write: if it is lost, the previous generation is loaded
            // after a failover and its members time out.
            let value = self.metadata_value(&BTreeMap::new());
            let record = records::group_metadata_record(&self.id, &value);
            ctx.persist(&self.id, vec![record], None);
            return;
        }
        tracing::info!(
            group = %self.id,
            generation = %self.generation,
            members = self.members.len(),
            "join phase complete"
        );
        let leader_view = self.joined_members();
        let ids: Vec<MemberId> = self.members.keys().cloned().collect();
        for member_id in ids {
            let mut result = self.join_result(&member_id, false);
            if self.is_leader(&member_id) {
                result.members = leader_view.clone();
            }
            let member = self.members.get_mut(&member_id).expect("listed above");
            if let Some(token) = member.awaiting_join.take() {
                ctx.respond_join(token, result);
            }
            member.reschedule_session(ctx.now);
            member.is_new = false;
            self.pending_sync.insert(member_id);
        }
        self.sync_timer = Some(SyncTimer {
            deadline: ctx.now + self.rebalance_timeout_ms(),
            generation: self.generation,
        });
    }

    /// Keeps the leader if it rejoined, else promotes any member that did. `false` when no
    /// member rejoined (or the group has none).
    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = &self.leader else {
            return false;
        };
        if self
            .members
            .get(leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join.is_some()) {
            Some(member) => {
                self.leader = Some(member.id.clone());
                true
            }
            None => false,
        }
    }

    fn init_next_generation(&mut self, now: i64) {
        self.generation = GenerationId(self.generation.0 + 1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition(GroupState::Empty, now);
        } else {
            self.protocol_name = self.select_protocol();
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition(GroupState::CompletingRebalance, now);
        }
        self.pending_sync.clear();
    }
}
