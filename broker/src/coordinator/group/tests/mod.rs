//! State-machine tests of the group coordinator, driven through its public API with an
//! explicit clock. The harness plays the glue: it hands out tokens, records responses
//! (failing if a token is answered twice), queues writes and fires timers in deadline order.

mod load;
mod membership;
mod offsets;
mod rebalance;
mod static_members;
mod txn_offsets;

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::wire::consumer_subscription;
use super::*;

pub(super) const T0: i64 = 1_700_000_000_000;
pub(super) const SESSION: i32 = 10_000;
pub(super) const REBALANCE: i32 = 30_000;

pub(super) fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

pub(super) fn gid(s: &str) -> GroupId {
    GroupId::from(s)
}

pub(super) fn mid(s: &str) -> MemberId {
    MemberId::from(s)
}

/// A consumer protocol `name` subscribing to `topics`.
pub(super) fn consumer(name: &str, topics: &[&str]) -> Protocol {
    Protocol {
        name: name.to_owned(),
        metadata: consumer_subscription(topics),
    }
}

pub(super) fn join_params(
    group: &str,
    member: &MemberId,
    protocols: Vec<Protocol>,
) -> JoinGroupParams {
    JoinGroupParams {
        group_id: gid(group),
        member_id: member.clone(),
        group_instance_id: None,
        client_id: "client".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".to_owned(),
        protocols,
        reason: None,
        require_known_member_id: true,
        supports_skip_assignment: true,
    }
}

pub(super) struct Harness {
    pub(super) c: GroupCoordinator,
    pub(super) now: i64,
    next_token: u64,
    answered: HashMap<RequestToken, Response>,
    taken: std::collections::HashSet<RequestToken>,
    pub(super) writes: VecDeque<(PersistId, GroupId, Vec<OffsetsRecord>)>,
    /// Every record written so far, in order, as the log would hold them.
    pub(super) log: Vec<OffsetsRecord>,
    /// The same records as the batches they were written in, with the producer of
    /// transactional ones.
    pub(super) batches: Vec<(Option<TxnProducer>, Vec<OffsetsRecord>)>,
    /// Report writes as successful as soon as they are emitted.
    pub(super) auto_persist: bool,
}

impl Harness {
    pub(super) fn new() -> Self {
        Harness::with_config(config())
    }

    pub(super) fn with_config(config: GroupConfig) -> Self {
        Harness {
            c: GroupCoordinator::new(config, T0),
            now: T0,
            next_token: 0,
            answered: HashMap::new(),
            taken: Default::default(),
            writes: VecDeque::new(),
            log: Vec::new(),
            batches: Vec::new(),
            auto_persist: true,
        }
    }

    pub(super) fn token(&mut self) -> RequestToken {
        self.next_token += 1;
        RequestToken(self.next_token)
    }

    pub(super) fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Respond { token, response } => {
                    assert!(
                        !self.taken.contains(&token) && !self.answered.contains_key(&token),
                        "token {token:?} answered twice"
                    );
                    self.answered.insert(token, response);
                }
                Effect::Persist {
                    id,
                    group,
                    records,
                    transaction,
                } => {
                    self.log.extend(records.iter().cloned());
                    self.batches.push((transaction, records.clone()));
                    self.writes.push_back((id, group, records));
                }
            }
        }
        while self.auto_persist && !self.writes.is_empty() {
            self.complete_write(Ok(()));
        }
    }

    /// Reports the oldest queued write.
    pub(super) fn complete_write(&mut self, result: Result<(), ResponseError>) {
        let (id, _, _) = self.writes.pop_front().expect("a write is queued");
        let effects = self.c.persisted(id, result, self.now);
        self.apply(effects);
    }

    fn take(&mut self, token: RequestToken) -> Option<Response> {
        let response = self.answered.remove(&token)?;
        self.taken.insert(token);
        Some(response)
    }

    pub(super) fn is_answered(&self, token: RequestToken) -> bool {
        self.answered.contains_key(&token) || self.taken.contains(&token)
    }

    pub(super) fn join_result(&mut self, token: RequestToken) -> JoinGroupResult {
        match self.take(token) {
            Some(Response::JoinGroup(result)) => result,
            other => panic!("expected a JoinGroup response for {token:?}, got {other:?}"),
        }
    }

    pub(super) fn sync_result(&mut self, token: RequestToken) -> SyncGroupResult {
        match self.take(token) {
            Some(Response::SyncGroup(result)) => result,
            other => panic!("expected a SyncGroup response for {token:?}, got {other:?}"),
        }
    }

    pub(super) fn commit_result(&mut self, token: RequestToken) -> OffsetCommitResult {
        match self.take(token) {
            Some(Response::OffsetCommit(result)) => result,
            other => panic!("expected an OffsetCommit response for {token:?}, got {other:?}"),
        }
    }

    pub(super) fn txn_commit_result(&mut self, token: RequestToken) -> OffsetCommitResult {
        match self.take(token) {
            Some(Response::TxnOffsetCommit(result)) => result,
            other => panic!("expected a TxnOffsetCommit response for {token:?}, got {other:?}"),
        }
    }

    pub(super) fn join(&mut self, p: JoinGroupParams) -> RequestToken {
        let token = self.token();
        let effects = self.c.join_group(token, p, self.now);
        self.apply(effects);
        token
    }

    pub(super) fn sync(
        &mut self,
        group: &str,
        member: &MemberId,
        generation: GenerationId,
        assignments: Vec<(MemberId, Bytes)>,
    ) -> RequestToken {
        let token = self.token();
        let p = SyncGroupParams {
            group_id: gid(group),
            generation_id: generation,
            member_id: member.clone(),
            group_instance_id: None,
            protocol_type: Some("consumer".to_owned()),
            protocol_name: None,
            assignments,
        };
        let effects = self.c.sync_group(token, p, self.now);
        self.apply(effects);
        token
    }

    pub(super) fn heartbeat(
        &mut self,
        group: &str,
        member: &MemberId,
        generation: GenerationId,
    ) -> Option<ResponseError> {
        let p = HeartbeatParams {
            group_id: gid(group),
            generation_id: generation,
            member_id: member.clone(),
            group_instance_id: None,
        };
        self.c.heartbeat(&p, self.now)
    }

    pub(super) fn leave(&mut self, group: &str, members: Vec<LeavingMember>) -> LeaveGroupResult {
        let p = LeaveGroupParams {
            group_id: gid(group),
            members,
        };
        let outcome = self.c.leave_group(&p, self.now);
        self.apply(outcome.effects);
        outcome.response
    }

    /// Moves the clock to `now + ms`, firing every timer on the way at its deadline.
    pub(super) fn advance(&mut self, ms: i64) {
        let target = self.now + ms;
        for _ in 0..10_000 {
            let deadline = self.c.next_deadline();
            if deadline > target {
                self.now = target;
                return;
            }
            self.now = self.now.max(deadline);
            let effects = self.c.tick(self.now);
            self.apply(effects);
        }
        panic!("timers keep firing at {}", self.now);
    }

    /// Joins a dynamic member through the MEMBER_ID_REQUIRED round trip and returns its id
    /// and the token of its parked second JoinGroup.
    pub(super) fn join_new(
        &mut self,
        group: &str,
        protocols: Vec<Protocol>,
    ) -> (MemberId, RequestToken) {
        let first = self.join(join_params(group, &MemberId::default(), protocols.clone()));
        let result = self.join_result(first);
        assert_eq!(result.error, Some(ResponseError::MemberIdRequired));
        let member_id = result.member_id;
        let token = self.join(join_params(group, &member_id, protocols));
        (member_id, token)
    }

    /// A Stable group of `n` members subscribed to `topics`, each assigned its own index as
    /// assignment bytes. Returns the member ids (leader first) and the generation.
    pub(super) fn stable_group(
        &mut self,
        group: &str,
        n: usize,
        topics: &[&str],
    ) -> (Vec<MemberId>, GenerationId) {
        let joins: Vec<(MemberId, RequestToken)> = (0..n)
            .map(|_| self.join_new(group, vec![consumer("range", topics)]))
            .collect();
        self.advance(0);
        let results: Vec<JoinGroupResult> =
            joins.iter().map(|(_, t)| self.join_result(*t)).collect();
        let leader = results[0].leader.clone();
        let generation = results[0].generation_id;
        let mut ids: Vec<MemberId> = joins.into_iter().map(|(m, _)| m).collect();
        ids.sort_by_key(|m| m != &leader);
        let assignments: Vec<(MemberId, Bytes)> = ids
            .iter()
            .enumerate()
            .map(|(i, m)| (m.clone(), Bytes::from(vec![i as u8])))
            .collect();
        let tokens: Vec<RequestToken> = ids
            .iter()
            .map(|m| {
                let a = if *m == leader {
                    assignments.clone()
                } else {
                    Vec::new()
                };
                self.sync(group, m, generation, a)
            })
            .collect();
        for token in tokens {
            assert_eq!(self.sync_result(token).error, None);
        }
        assert_eq!(self.c.group_state(&gid(group)), Some(GroupState::Stable));
        (ids, generation)
    }

    pub(super) fn commit(
        &mut self,
        group: &str,
        member: &MemberId,
        generation: GenerationId,
        offsets: &[(&str, i32, i64)],
    ) -> RequestToken {
        let token = self.token();
        let mut topics: Vec<CommitTopic> = Vec::new();
        for &(topic, partition, offset) in offsets {
            let partition = CommitPartition {
                partition,
                offset,
                leader_epoch: 3,
                metadata: Some("meta".to_owned()),
            };
            match topics.iter_mut().find(|t| t.name == topic) {
                Some(t) => t.partitions.push(partition),
                None => topics.push(CommitTopic {
                    name: topic.to_owned(),
                    partitions: vec![partition],
                }),
            }
        }
        let p = OffsetCommitParams {
            group_id: gid(group),
            generation_id: generation,
            member_id: member.clone(),
            group_instance_id: None,
            retention_time_ms: -1,
            topics,
            api_version: 8,
        };
        let effects = self.c.commit_offsets(token, p, self.now);
        self.apply(effects);
        token
    }

    /// The committed offset of one partition, as OffsetFetch answers it.
    pub(super) fn fetch(&self, group: &str, topic: &str, partition: i32) -> i64 {
        let topics = [TopicPartitions {
            name: topic.to_owned(),
            partitions: vec![partition],
        }];
        self.c.fetch_offsets(&gid(group), Some(&topics), false)[0].partitions[0].offset
    }
}

/// Every partition of an OffsetCommit result has `error`.
pub(super) fn all_errors(result: &OffsetCommitResult) -> Vec<Option<ResponseError>> {
    result
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error))
        .collect()
}
