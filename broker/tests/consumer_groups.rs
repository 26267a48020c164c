//! Kafka's classic consumer-group protocol on the real `weir-broker` binary.
//!
//! librdkafka (the `rdkafka` crate) members join, rebalance, commit and leave; a
//! confluent-kafka member in a child process (`tests/python/test_groups.py member`) dies by
//! SIGKILL where a member must vanish without LeaveGroup, and confluent-kafka's AdminClient
//! lists and describes groups where `rdkafka` has no call. Requests encoded by
//! `kafka-protocol` check the exact error codes Kafka answers to bad input. Members poll in
//! turn on one thread until their assignments settle, with deadlines and no fixed sleeps.

mod groups;
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use groups::*;
use process::BrokerProcess;
use rdkafka::consumer::{Consumer, RebalanceProtocol};
use rdkafka::error::RDKafkaErrorCode;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const DEADLINE: Duration = Duration::from_secs(30);

fn start(dir: &tempfile::TempDir) -> BrokerProcess {
    BrokerProcess::start(&dir.path().join("data"), BROKER_SETTINGS)
}

fn all(partitions: i32) -> BTreeSet<i32> {
    (0..partitions).collect()
}

/// Each partition's (offset, value) pairs that `member` read, in order.
fn reads_by_partition(member: &Member) -> BTreeMap<i32, Vec<(i64, String)>> {
    let mut out: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for r in &member.read {
        out.entry(r.partition)
            .or_default()
            .push((r.offset, r.value.clone()));
    }
    out
}

#[test]
fn three_consumers_split_twelve_partitions_disjointly() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(&dir);
    create_topic(&broker, "split", 12);
    let mut members: Vec<Member> = ["split-a", "split-b", "split-c"]
        .iter()
        .map(|name| Member::join(&broker, "splitters", name, "split", &[]))
        .collect();

    let (shares, _) = settle(&broker, &mut members, 12, DEADLINE, owned_by);
    // The range assignor gives each of three members four consecutive partitions.
    for (member, share) in members.iter().zip(&shares) {
        assert_eq!(share.len(), 4, "{}", member.describe());
        let (first, last) = (share.first().unwrap(), share.last().unwrap());
        assert_eq!(last - first, 3, "not a range: {}", member.describe());
        assert_eq!(
            member.changes().last(),
            Some(&Change::Assigned(share.clone())),
            "the last callback is the assignment it holds: {}",
            member.describe()
        );
    }

    // The broker describes the same group (ListGroups + DescribeGroups).
    let listed = members[0]
        .consumer
        .fetch_group_list(Some("splitters"), Duration::from_secs(10))
        .unwrap();
    let group = &listed.groups()[0];
    assert_eq!(
        (
            group.name(),
            group.state(),
            group.protocol_type(),
            group.protocol()
        ),
        ("splitters", "Stable", "consumer", "range")
    );
    let clients: BTreeSet<&str> = group.members().iter().map(|m| m.client_id()).collect();
    assert_eq!(clients, BTreeSet::from(["split-a", "split-b", "split-c"]));

    // `__consumer_offsets` was created on first use, with Kafka's 50 partitions.
    let metadata = members[0]
        .consumer
        .fetch_metadata(Some("__consumer_offsets"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.topics()[0].name(), "__consumer_offsets");
    assert_eq!(metadata.topics()[0].partitions().len(), 50);

    assert_eq!(
        metric(&broker, "weir_consumer_groups", &[("state", "Stable")]),
        Some(1.0)
    );
    assert!(metric_sum(&broker, "weir_group_rebalances_total") >= 1.0);
}

#[test]
fn when_a_consumer_leaves_the_others_take_its_partitions() {
    // A session timeout long enough to tell a LeaveGroup-driven handover (a heartbeat
    // interval and a rebalance: about a second) from an expiry of the leaver's session.
    const SESSION_MS: u64 = 20_000;
    let session = SESSION_MS.to_string();
    let extra = [("session.timeout.ms", session.as_str())];
    let dir = tempfile::tempdir().unwrap();
    let broker = start(&dir);
    create_topic(&broker, "leave", 12);
    let mut members: Vec<Member> = ["leave-a", "leave-b", "leave-c"]
        .iter()
        .map(|name| Member::join(&broker, "leavers", name, "leave", &extra))
        .collect();
    let (shares, _) = settle(&broker, &mut members, 12, DEADLINE, owned_by);

    let left = members.remove(1);
    let gone = shares[1].clone();
    let start = Instant::now();
    drop(left); // close(): revoke, then LeaveGroup
    let closed = start.elapsed();
    let (after, split) = settle(&broker, &mut members, 12, DEADLINE, owned_by);
    let took = closed + split;
    eprintln!("the others took over {took:?} after the close began");
    assert!(
        took < Duration::from_millis(SESSION_MS / 2),
        "the others took over {took:?} after the close began, not well within the \
         {SESSION_MS} ms session timeout: the LeaveGroup did not start a rebalance"
    );
    let taken: BTreeSet<i32> = after.iter().flatten().copied().collect();
    assert!(gone.is_subset(&taken), "{gone:?} not taken over: {after:?}");
}

#[test]
fn when_a_consumer_dies_the_others_take_its_partitions_after_the_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(&dir);
    create_topic(&broker, "die", 12);
    let mut python = PythonMember::start(&broker, "die", "diers");
    let mut members: Vec<Member> = ["die-a", "die-b"]
        .iter()
        .map(|name| Member::join(&broker, "diers", name, "die", &[]))
        .collect();
    let (shares, _) = settle(&broker, &mut members, 12, DEADLINE, |members| {
        let mut shares = owned_by(members);
        shares.push(python.owned());
        shares
    });
    assert!(
        !python.exited(),
        "the Python member exited:\n{}",
        python.output()
    );
    assert_eq!(shares[2].len(), 4, "python member: {}", python.output());

    let killed = Instant::now();
    python.kill9();
    let settling = killed.elapsed();
    let (after, split) = settle(&broker, &mut members, 12, DEADLINE, owned_by);
    let took = settling + split;
    eprintln!("the others took over {took:?} after the kill");
    // Kafka notices a member that vanished only when its session expires: its last
    // heartbeat was at most one heartbeat interval (500 ms) before the kill.
    assert!(
        took >= SESSION_TIMEOUT - Duration::from_millis(1000),
        "the others took over {took:?} after the kill, before the session could expire"
    );
    assert!(
        took < SESSION_TIMEOUT + Duration::from_secs(15),
        "the others took over only {took:?} after the kill"
    );
    assert_eq!(after.iter().map(BTreeSet::len).sum::<usize>(), 12);
}

/// Joins `group` and reads `topic`'s partitions to the end (`end` records each); asserts
/// that partition `p` was read from exactly `start[p]` on, every record once and in order.
fn resume_and_check(
    broker: &BrokerProcess,
    group: &str,
    name: &str,
    topic: &str,
    start: &[i64],
    end: i64,
) -> Member {
    let member = Member::join(broker, group, name, topic, &[]);
    read_to_end_and_check(broker, member, topic, start, end)
}

/// Polls `member` until it has read `topic`'s partitions to the end (`end` records each);
/// asserts that partition `p` was read from exactly `start[p]` on, every record once and in
/// order.
fn read_to_end_and_check(
    broker: &BrokerProcess,
    member: Member,
    topic: &str,
    start: &[i64],
    end: i64,
) -> Member {
    let name = member.name.clone();
    let mut members = vec![member];
    let partitions = start.len() as i32;
    poll_until(
        broker,
        &mut members,
        DEADLINE,
        "reading every partition to its end",
        |m| {
            let reads = reads_by_partition(&m[0]);
            (0..partitions).all(|p| {
                start[p as usize] == end
                    || reads
                        .get(&p)
                        .is_some_and(|r| r.last().is_some_and(|(o, _)| *o == end - 1))
            })
        },
    );
    // Anything read twice would arrive now.
    poll_for(&mut members, SETTLE);
    let member = members.pop().unwrap();
    let reads = reads_by_partition(&member);
    for p in 0..partitions {
        let want: Vec<(i64, String)> = (start[p as usize]..end)
            .map(|o| (o, value_of(topic, p, o)))
            .collect();
        let got = reads.get(&p).cloned().unwrap_or_default();
        assert_eq!(
            got.first().map(|r| r.0),
            want.first().map(|r| r.0),
            "{name}: partition {p} did not resume at the commit {}",
            start[p as usize]
        );
        assert_eq!(got, want, "{name}: partition {p}");
    }
    member
}

#[test]
fn consume_commit_restart_resumes_after_the_last_commit() {
    const GROUP: &str = "ledger-readers";
    const END: i64 = 30;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start(&dir);
    create_topic(&broker, "ledger", 3);
    produce(&broker, "ledger", &[END; 3]);

    // The first member reads past the points it commits: an application commits what it
    // has processed, not what it has fetched.
    let first_commit = [10, 17, 23];
    let mut members = vec![Member::join(&broker, GROUP, "ledger-1", "ledger", &[])];
    poll_until(
        &broker,
        &mut members,
        DEADLINE,
        "reading up to the commit points",
        |m| {
            let reads = reads_by_partition(&m[0]);
            (0..3).all(|p| {
                reads
                    .get(&p)
                    .is_some_and(|r| r.iter().any(|(o, _)| *o == first_commit[p as usize] - 1))
            })
        },
    );
    let first = members.pop().unwrap();
    commit(
        &first.consumer,
        "ledger",
        &[
            (0, first_commit[0]),
            (1, first_commit[1]),
            (2, first_commit[2]),
        ],
    );
    let want: BTreeMap<i32, Option<i64>> = (0..3)
        .map(|p| (p, Some(first_commit[p as usize])))
        .collect();
    assert_eq!(committed(&first.consumer, "ledger", 3), want);
    drop(first);

    let second = resume_and_check(&broker, GROUP, "ledger-2", "ledger", &first_commit, END);
    drop(second);

    // A clean shutdown, then a new member: the commits were stored and are loaded again.
    assert!(broker.stop(), "clean shutdown; log:\n{}", log_tail(&broker));
    broker.restart();
    let third = resume_and_check(&broker, GROUP, "ledger-3", "ledger", &first_commit, END);
    assert_eq!(committed(&third.consumer, "ledger", 3), want);
    let second_commit = [12, END, 25];
    commit(
        &third.consumer,
        "ledger",
        &[
            (0, second_commit[0]),
            (1, second_commit[1]),
            (2, second_commit[2]),
        ],
    );
    drop(third);

    // A crash right after the commit was acknowledged: it must survive too.
    broker.kill9();
    broker.restart();
    let fourth = resume_and_check(&broker, GROUP, "ledger-4", "ledger", &second_commit, END);
    let want: BTreeMap<i32, Option<i64>> = (0..3)
        .map(|p| (p, Some(second_commit[p as usize])))
        .collect();
    assert_eq!(committed(&fourth.consumer, "ledger", 3), want);
    drop(fourth);
    assert!(broker.stop());
}

/// The committing member commits after every `COMMIT_EVERY` records it reads, one every
/// `COMMIT_PAUSE`.
const COMMIT_EVERY: usize = 25;
const COMMIT_PAUSE: Duration = Duration::from_millis(25);

/// What a committing member reported before it was killed.
struct Killed {
    /// Its last acknowledged commit: partition → next offset to read.
    last_commit: BTreeMap<i32, i64>,
    commits: usize,
    /// Each partition's (offset, value) pairs it read, in order.
    reads: BTreeMap<i32, Vec<(i64, String)>>,
    at: Instant,
}

/// Starts a slow confluent-kafka member of `group` that commits synchronously after every
/// `COMMIT_EVERY` records, and SIGKILLs it once it has reported at least three commits and
/// read a few records past the last one, well before its next commit (so no commit is in
/// flight). Checks what it reported: it read every record below its last commit once, in
/// order, and read past that commit on some partition.
fn kill_between_commits(broker: &BrokerProcess, topic: &str, group: &str, end: i64) -> Killed {
    let mut python =
        PythonMember::start_committer(broker, topic, group, COMMIT_EVERY, COMMIT_PAUSE);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let reports = python.reports();
        let commits = reports
            .iter()
            .filter(|r| matches!(r, Report::Committed(_)))
            .count();
        // The last commit covers every partition, and the member has read past it and not
        // begun another.
        let reads_since = reports
            .iter()
            .rposition(|r| matches!(r, Report::Committed(_)))
            .filter(|&i| matches!(&reports[i], Report::Committed(o) if o.len() == 3))
            .map(|i| &reports[i + 1..])
            .filter(|after| after.iter().all(|r| matches!(r, Report::Read(_))))
            .map(<[Report]>::len);
        // Reads since the last commit: at least 2, and at least 13 reads (over 300 ms) before
        // the next commit begins.
        if commits >= 3 && reads_since.is_some_and(|n| (2..=12).contains(&n)) {
            break;
        }
        assert!(
            !python.exited(),
            "the committing member exited:\n{}",
            python.output()
        );
        assert!(
            Instant::now() < deadline,
            "the committing member did not report three commits covering every partition and \
             reads past the last within {DEADLINE:?}:\n{}\n--- broker log (tail):\n{}",
            python.output(),
            log_tail(broker)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    python.kill9();
    let at = Instant::now();
    python.drain();
    let output = python.output();
    let reports = python.reports();

    let commits: Vec<&BTreeMap<i32, i64>> = reports
        .iter()
        .filter_map(|r| match r {
            Report::Committed(o) => Some(o),
            _ => None,
        })
        .collect();
    let last_commit = (*commits.last().unwrap()).clone();
    let last_index = reports
        .iter()
        .rposition(|r| matches!(r, Report::Committed(_)))
        .unwrap();
    assert!(
        !reports[last_index..]
            .iter()
            .any(|r| matches!(r, Report::Committing(_))),
        "the kill raced a commit (its outcome is unknown):\n{output}"
    );
    assert_eq!(
        last_commit.keys().copied().collect::<BTreeSet<i32>>(),
        all(3),
        "{output}"
    );
    assert!(
        last_commit.values().all(|&o| 0 < o && o < end),
        "killed after the end of a partition, not mid-stream: {last_commit:?}"
    );
    let mut reads: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for r in &reports {
        if let Report::Read(r) = r {
            reads
                .entry(r.partition)
                .or_default()
                .push((r.offset, r.value.clone()));
        }
    }
    for p in 0..3 {
        let committed: Vec<(i64, String)> = reads[&p]
            .iter()
            .filter(|(o, _)| *o < last_commit[&p])
            .cloned()
            .collect();
        let want: Vec<(i64, String)> = (0..last_commit[&p])
            .map(|o| (o, value_of(topic, p, o)))
            .collect();
        assert_eq!(
            committed, want,
            "partition {p}: the killed member's reads below its commit"
        );
    }
    let uncommitted: usize = (0..3)
        .map(|p| {
            reads[&p]
                .iter()
                .filter(|(o, _)| *o >= last_commit[&p])
                .count()
        })
        .sum();
    assert!(
        uncommitted >= 2,
        "killed with {uncommitted} records read past the last commit {last_commit:?}:\n{output}"
    );
    eprintln!(
        "killed {group}'s member after {} commits; last {last_commit:?}, {uncommitted} records \
         read since",
        commits.len()
    );
    Killed {
        last_commit,
        commits: commits.len(),
        reads,
        at,
    }
}

/// The group's commits read by a consumer that does not join it (OffsetFetch).
fn group_commits(broker: &BrokerProcess, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    committed(&offsets_reader(broker, group), topic, 3)
}

/// A new member of `group` resumes after `killed`: the group's commits are the killed
/// member's last reported ones, the member reads each partition from exactly there to `end`
/// once, and with what the killed member committed every record was read. Returns how long
/// after the kill the new member got all partitions.
fn resume_after_kill(
    broker: &BrokerProcess,
    group: &str,
    topic: &str,
    killed: &Killed,
    end: i64,
) -> Duration {
    let want: BTreeMap<i32, Option<i64>> = killed
        .last_commit
        .iter()
        .map(|(&p, &o)| (p, Some(o)))
        .collect();
    assert_eq!(
        group_commits(broker, group, topic),
        want,
        "the group's commits before a new member joined"
    );
    let mut members = vec![Member::join(
        broker,
        group,
        &format!("{group}-resumer"),
        topic,
        &[],
    )];
    poll_until(
        broker,
        &mut members,
        DEADLINE,
        "the new member getting every partition",
        |m| m[0].owned() == all(3),
    );
    let took_over = killed.at.elapsed();
    let start: Vec<i64> = (0..3).map(|p| killed.last_commit[&p]).collect();
    let member = read_to_end_and_check(broker, members.pop().unwrap(), topic, &start, end);
    // Together: the killed member read everything below its commits (checked when it was
    // killed), the new member everything from them on.
    let reads = reads_by_partition(&member);
    for p in 0..3 {
        let mut offsets: Vec<i64> = killed.reads[&p]
            .iter()
            .map(|(o, _)| *o)
            .filter(|&o| o < killed.last_commit[&p])
            .chain(reads[&p].iter().map(|(o, _)| *o))
            .collect();
        offsets.sort_unstable();
        assert_eq!(offsets, (0..end).collect::<Vec<i64>>(), "partition {p}");
    }
    // The new member committed nothing (no auto-commit): the group's commits are unchanged.
    assert_eq!(committed(&member.consumer, topic, 3), want);
    took_over
}

#[test]
fn a_consumer_killed_mid_stream_resumes_after_its_last_commit() {
    const END: i64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start(&dir);
    create_topic(&broker, "midstream", 3);
    produce(&broker, "midstream", &[END; 3]);

    // A new member joins right after the kill: it gets the partitions only when the dead
    // member's session expires (its last heartbeat was at most 500 ms before the kill).
    let killed = kill_between_commits(&broker, "midstream", "midstream-a", END);
    let took_over = resume_after_kill(&broker, "midstream-a", "midstream", &killed, END);
    eprintln!("the new member got every partition {took_over:?} after the kill");
    assert!(
        took_over >= SESSION_TIMEOUT - Duration::from_millis(1000),
        "the new member got the partitions {took_over:?} after the kill, before the dead \
         member's session could expire"
    );
    assert!(
        took_over < SESSION_TIMEOUT + Duration::from_secs(10),
        "the new member got the partitions only {took_over:?} after the kill"
    );

    // The same with the broker killed -9 and restarted between the member's death and the
    // new member's start: the acknowledged commits survive the crash.
    let killed = kill_between_commits(&broker, "midstream", "midstream-b", END);
    broker.kill9();
    broker.restart();
    let restarted = killed.at.elapsed();
    let took_over = resume_after_kill(&broker, "midstream-b", "midstream", &killed, END);
    eprintln!(
        "the broker was up again {restarted:?} after the member's kill; the new member got \
         every partition {took_over:?} after it ({} commits before it)",
        killed.commits
    );
    assert!(broker.stop(), "clean shutdown; log:\n{}", log_tail(&broker));
}

#[test]
fn cooperative_sticky_rebalance_keeps_unaffected_assignments() {
    let cooperative = [("partition.assignment.strategy", "cooperative-sticky")];
    let dir = tempfile::tempdir().unwrap();
    let broker = start(&dir);
    create_topic(&broker, "sticky", 12);
    let mut members: Vec<Member> = ["sticky-a", "sticky-b"]
        .iter()
        .map(|name| Member::join(&broker, "stickies", name, "sticky", &cooperative))
        .collect();
    let (before, _) = settle(&broker, &mut members, 12, DEADLINE, owned_by);
    for m in &members {
        assert!(
            matches!(
                m.consumer.rebalance_protocol(),
                RebalanceProtocol::Cooperative
            ),
            "{} does not use the cooperative protocol",
            m.name
        );
        m.forget_changes();
    }

    members.push(Member::join(
        &broker,
        "stickies",
        "sticky-c",
        "sticky",
        &cooperative,
    ));
    let (after, _) = settle(&broker, &mut members, 12, DEADLINE, owned_by);
    assert_eq!(
        after.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        [4, 4, 4],
        "{after:?}"
    );

    let mut moved_all = BTreeSet::new();
    for (i, m) in members[..2].iter().enumerate() {
        assert!(
            after[i].is_subset(&before[i]),
            "{} gained partitions when a member joined: before {:?}, after {:?}",
            m.name,
            before[i],
            after[i]
        );
        let moved: BTreeSet<i32> = before[i].difference(&after[i]).copied().collect();
        let mut revoked = BTreeSet::new();
        for change in m.changes() {
            match change {
                Change::Revoked(p) => {
                    assert!(
                        p.is_disjoint(&after[i]),
                        "{} had partitions it keeps revoked: {p:?} ({})",
                        m.name,
                        m.describe()
                    );
                    revoked.extend(p);
                }
                other => panic!(
                    "{} saw {other:?}; only the moved partitions {moved:?} may be revoked",
                    m.name
                ),
            }
        }
        assert_eq!(revoked, moved, "{}", m.describe());
        moved_all.extend(moved);
    }
    assert_eq!(moved_all, after[2]);
    let newcomer = &members[2];
    assert_eq!(
        newcomer.changes(),
        [Change::Assigned(after[2].clone())],
        "{}",
        newcomer.describe()
    );
}

#[test]
fn static_member_restart_does_not_rebalance() {
    const SESSION_MS: u64 = 10_000;
    let session = SESSION_MS.to_string();
    let static_member = |instance: &'static str| {
        [
            ("group.instance.id", instance),
            ("session.timeout.ms", session.as_str()),
        ]
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = start(&dir);
    create_topic(&broker, "statics", 6);
    let mut members = vec![
        Member::join(
            &broker,
            "static-group",
            "static-a",
            "statics",
            &static_member("a"),
        ),
        Member::join(
            &broker,
            "static-group",
            "static-b",
            "statics",
            &static_member("b"),
        ),
    ];
    let (shares, _) = settle(&broker, &mut members, 6, DEADLINE, owned_by);
    members[1].forget_changes();
    let rebalances = metric_sum(&broker, "weir_group_rebalances_total");

    // librdkafka's static members do not send LeaveGroup on close (KIP-345); the restarted
    // member has the same configuration, as after a process restart.
    let restarted_at = Instant::now();
    drop(members.remove(0));
    members.insert(
        0,
        Member::join(
            &broker,
            "static-group",
            "static-a",
            "statics",
            &static_member("a"),
        ),
    );
    let took = poll_until(
        &broker,
        &mut members,
        DEADLINE,
        "the restarted static member getting its partitions back",
        |m| !m[0].owned().is_empty(),
    );
    assert!(
        restarted_at.elapsed() < Duration::from_millis(SESSION_MS),
        "the restart took {took:?}, longer than the session timeout"
    );
    // A rebalance would reach the other member within a heartbeat or two.
    poll_for(&mut members, SETTLE * 2);
    assert_eq!(members[0].owned(), shares[0], "{}", members[0].describe());
    assert_eq!(members[1].owned(), shares[1], "{}", members[1].describe());
    assert_eq!(
        members[1].changes(),
        [],
        "the other member was rebalanced: {}",
        members[1].describe()
    );
    assert_eq!(
        metric_sum(&broker, "weir_group_rebalances_total"),
        rebalances,
        "a static member's restart counted as a rebalance"
    );
    let listed = members[1]
        .consumer
        .fetch_group_list(Some("static-group"), Duration::from_secs(10))
        .unwrap();
    let group = &listed.groups()[0];
    assert_eq!(group.state(), "Stable");
    // Two members: the restarted one took over its old member's place (Kafka's
    // `ClassicGroup.replaceStaticMember`) instead of being added beside it.
    let mut clients: Vec<&str> = group.members().iter().map(|m| m.client_id()).collect();
    clients.sort();
    assert_eq!(clients, ["static-a", "static-b"]);
}

#[test]
fn admin_lists_describes_and_deletes_groups_and_reads_lag() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(&dir);
    create_topic(&broker, "lagged", 4);
    let high = [10, 20, 30, 40];
    produce(&broker, "lagged", &high);

    // "busy": one live member with commits; "idle": commits, then its member left.
    let busy_commit = [3, 20, 5, 25];
    let idle_commit = [10, 10, 10, 10];
    let mut idle = vec![Member::join(&broker, "idle", "idle-1", "lagged", &[])];
    settle(&broker, &mut idle, 4, DEADLINE, owned_by);
    commit(
        &idle[0].consumer,
        "lagged",
        &[(0, 10), (1, 10), (2, 10), (3, 10)],
    );
    drop(idle);
    let mut busy = vec![Member::join(&broker, "busy", "busy-1", "lagged", &[])];
    settle(&broker, &mut busy, 4, DEADLINE, owned_by);
    commit(
        &busy[0].consumer,
        "lagged",
        &[(0, 3), (1, 20), (2, 5), (3, 25)],
    );

    // Lag = high watermark - committed offset, as an operator computes it, with a consumer
    // of the group that only reads offsets (it never subscribes, so it never joins).
    let lag_of = |group: &str, commits: &[i64; 4]| -> Vec<i64> {
        let reader = offsets_reader(&broker, group);
        let committed = committed(&reader, "lagged", 4);
        let lags: Vec<i64> = (0..4)
            .map(|p| {
                let (_, hw) = reader
                    .fetch_watermarks("lagged", p, Duration::from_secs(10))
                    .unwrap();
                hw - committed[&p].expect("committed")
            })
            .collect();
        let want: Vec<i64> = (0..4).map(|p| high[p] - commits[p]).collect();
        assert_eq!(lags, want, "lag of {group}");
        lags
    };
    let busy_lag = lag_of("busy", &busy_commit);
    let idle_lag = lag_of("idle", &idle_commit);

    // ListGroups + DescribeGroups through librdkafka.
    let listed = busy[0]
        .consumer
        .fetch_group_list(None, Duration::from_secs(10))
        .unwrap();
    let seen: BTreeMap<&str, (&str, &str, usize)> = listed
        .groups()
        .iter()
        .map(|g| (g.name(), (g.state(), g.protocol_type(), g.members().len())))
        .collect();
    assert_eq!(
        seen.get("busy"),
        Some(&("Stable", "consumer", 1)),
        "{seen:?}"
    );
    assert_eq!(
        seen.get("idle"),
        Some(&("Empty", "consumer", 0)),
        "{seen:?}"
    );

    // The same through confluent-kafka's AdminClient (ListGroups with states,
    // DescribeGroups, OffsetFetch), which `rdkafka` does not wrap.
    let (ok, output) = python_groups_script(&broker, &["admin", "busy", "idle"]);
    assert!(ok, "test_groups.py admin failed:\n{output}");
    let mut expected = vec![
        "list busy STABLE".to_owned(),
        "list idle EMPTY".to_owned(),
        "describe busy state=STABLE assignor=range simple=False members=1".to_owned(),
        "member busy busy-1 lagged:0,lagged:1,lagged:2,lagged:3".to_owned(),
        "describe idle state=EMPTY assignor=- simple=False members=0".to_owned(),
    ];
    for p in 0..4 {
        expected.push(format!("offset busy lagged {p} {}", busy_commit[p]));
        expected.push(format!("offset idle lagged {p} {}", idle_commit[p]));
    }
    let lines: BTreeSet<&str> = output.lines().collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|l| !lines.contains(l.as_str()))
        .collect();
    assert!(missing.is_empty(), "missing {missing:?} in:\n{output}");

    // `/metrics` reports the same lag (it may be computed periodically).
    let lag_series = |group: &str| -> Vec<(i32, Option<f64>)> {
        (0..4)
            .map(|p| {
                let partition = p.to_string();
                let labels = [
                    ("group", group),
                    ("topic", "lagged"),
                    ("partition", partition.as_str()),
                ];
                (p, metric(&broker, "weir_consumer_group_lag", &labels))
            })
            .collect()
    };
    let want = |lags: &[i64]| -> Vec<(i32, Option<f64>)> {
        (0..4).map(|p| (p, Some(lags[p as usize] as f64))).collect()
    };
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (busy_now, idle_now) = (lag_series("busy"), lag_series("idle"));
        if busy_now == want(&busy_lag) && idle_now == want(&idle_lag) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "weir_consumer_group_lag (partition, value) after {DEADLINE:?}: busy {busy_now:?}, \
             idle {idle_now:?}; computed lag: busy {busy_lag:?}, idle {idle_lag:?}"
        );
        poll_for(&mut busy, Duration::from_millis(200));
    }
    assert_eq!(
        metric(&broker, "weir_consumer_groups", &[("state", "Stable")]),
        Some(1.0)
    );
    assert_eq!(
        metric(&broker, "weir_consumer_groups", &[("state", "Empty")]),
        Some(1.0)
    );

    // DeleteGroups: a group with members is refused, an empty one goes, an unknown one is
    // not found.
    let results = block_on(
        admin(&broker).delete_groups(&["busy", "idle", "never-existed"], &admin_options()),
    )
    .unwrap();
    let results: BTreeMap<String, Option<RDKafkaErrorCode>> = results
        .into_iter()
        .map(|r| match r {
            Ok(name) => (name, None),
            Err((name, code)) => (name, Some(code)),
        })
        .collect();
    assert_eq!(
        results,
        BTreeMap::from([
            ("busy".to_owned(), Some(RDKafkaErrorCode::NonEmptyGroup)),
            ("idle".to_owned(), None),
            (
                "never-existed".to_owned(),
                Some(RDKafkaErrorCode::GroupIdNotFound)
            ),
        ])
    );
    let listed = busy[0]
        .consumer
        .fetch_group_list(None, Duration::from_secs(10))
        .unwrap();
    let names: BTreeSet<&str> = listed.groups().iter().map(|g| g.name()).collect();
    assert!(
        names.contains("busy") && !names.contains("idle"),
        "{names:?}"
    );
    let idle_offsets = raw_fetch(&broker, "idle", "lagged", &[0, 1, 2, 3]);
    assert!(
        idle_offsets.values().all(|(o, _, e)| (*o, *e) == (-1, 0)),
        "a deleted group's offsets are gone: {idle_offsets:?}"
    );
    let busy_offsets = raw_fetch(&broker, "busy", "lagged", &[0, 1, 2, 3]);
    let got: Vec<i64> = busy_offsets.values().map(|(o, _, _)| *o).collect();
    assert_eq!(got, busy_commit, "the refused delete kept busy's offsets");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let idle_now = lag_series("idle");
        let empty = metric(&broker, "weir_consumer_groups", &[("state", "Empty")]);
        if idle_now.iter().all(|(_, v)| v.is_none()) && empty.is_none_or(|v| v == 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after deleting idle: its lag series {idle_now:?}, Empty groups {empty:?}"
        );
        poll_for(&mut busy, Duration::from_millis(200));
    }
}

/// A member joins `group`, reads from where the group's commits say, commits, and reads its
/// commits back: the group still works after the bad input.
fn group_still_works(broker: &BrokerProcess, group: &str, topic: &str, starts: &[i64], end: i64) {
    let member = resume_and_check(broker, group, &format!("{group}-after"), topic, starts, end);
    let offsets: Vec<(i32, i64)> = (0..starts.len() as i32).map(|p| (p, end)).collect();
    commit(&member.consumer, topic, &offsets);
    let want: BTreeMap<i32, Option<i64>> = offsets.iter().map(|&(p, o)| (p, Some(o))).collect();
    assert_eq!(
        committed(&member.consumer, topic, starts.len() as i32),
        want
    );
}

#[test]
fn offset_commit_for_unknown_topic_or_partition_is_refused() {
    // Kafka's KafkaApis.handleOffsetCommitRequest answers UNKNOWN_TOPIC_OR_PARTITION for
    // every partition of a topic it does not know and for each partition a known topic does
    // not have, before the group coordinator sees the request; the remaining partitions are
    // committed. A request left with nothing to commit never reaches the coordinator, so it
    // creates no group.
    let dir = tempfile::tempdir().unwrap();
    let broker = start(&dir);
    create_topic(&broker, "known", 3);
    produce(&broker, "known", &[5, 5, 5]);

    let codes = raw_commit(
        &broker,
        "stray-commits",
        &[
            ("known", vec![(1, 4, None), (7, 2, None)]),
            ("no-such-topic", vec![(0, 1, None)]),
        ],
    );
    let want = BTreeMap::from([
        (("known".to_owned(), 1), 0),
        (("known".to_owned(), 7), UNKNOWN_TOPIC_OR_PARTITION),
        (("no-such-topic".to_owned(), 0), UNKNOWN_TOPIC_OR_PARTITION),
    ]);
    assert_eq!(codes, want);
    let fetched = raw_fetch(&broker, "stray-commits", "known", &[1, 7]);
    assert_eq!(fetched[&1].0, 4, "{fetched:?}");
    assert_eq!(fetched[&7].0, -1, "{fetched:?}");

    let codes = raw_commit(
        &broker,
        "only-unknown",
        &[("no-such-topic", vec![(0, 1, None)])],
    );
    assert_eq!(
        codes,
        BTreeMap::from([(("no-such-topic".to_owned(), 0), UNKNOWN_TOPIC_OR_PARTITION)])
    );
    let lister = Member::join(&broker, "lister", "lister", "known", &[]);
    let listed = lister
        .consumer
        .fetch_group_list(None, Duration::from_secs(10))
        .unwrap();
    let names: BTreeSet<&str> = listed.groups().iter().map(|g| g.name()).collect();
    assert!(names.contains("stray-commits"), "{names:?}");
    assert!(!names.contains("only-unknown"), "{names:?}");
    drop(lister);

    group_still_works(&broker, "stray-commits", "known", &[0, 4, 0], 5);
}

#[test]
fn oversized_commit_metadata_is_refused_with_offset_metadata_too_large() {
    // `offset.metadata.max.bytes` (4096) is compared with Java's String.length(): UTF-16
    // units, so 4096 two-byte characters are accepted and 4097 ASCII ones are not.
    let dir = tempfile::tempdir().unwrap();
    let broker = start(&dir);
    create_topic(&broker, "meta", 2);
    produce(&broker, "meta", &[3, 3]);
    let too_long = "x".repeat(4097);
    let longest = "é".repeat(4096);

    let codes = raw_commit(
        &broker,
        "meta-commits",
        &[(
            "meta",
            vec![(0, 1, Some(too_long)), (1, 2, Some(longest.clone()))],
        )],
    );
    assert_eq!(
        codes,
        BTreeMap::from([
            (("meta".to_owned(), 0), OFFSET_METADATA_TOO_LARGE),
            (("meta".to_owned(), 1), 0),
        ])
    );
    let fetched = raw_fetch(&broker, "meta-commits", "meta", &[0, 1]);
    assert_eq!(fetched[&0].0, -1, "the refused commit was stored");
    assert_eq!(fetched[&1], (2, Some(longest), 0));

    group_still_works(&broker, "meta-commits", "meta", &[0, 2], 3);
}

#[test]
fn join_with_no_common_protocol_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(&dir);
    create_topic(&broker, "proto", 4);
    let mut members = vec![Member::join(
        &broker,
        "protocols",
        "proto-range",
        "proto",
        &[],
    )];
    settle(&broker, &mut members, 4, DEADLINE, owned_by);
    members[0].forget_changes();

    // A member whose only assignor the group does not use.
    members.push(Member::join(
        &broker,
        "protocols",
        "proto-roundrobin",
        "proto",
        &[("partition.assignment.strategy", "roundrobin")],
    ));
    poll_until(
        &broker,
        &mut members,
        DEADLINE,
        "the roundrobin member's JoinGroup failing with INCONSISTENT_GROUP_PROTOCOL",
        |m| {
            m[1].errors.iter().any(|e| {
                e.rdkafka_error_code() == Some(RDKafkaErrorCode::InconsistentGroupProtocol)
            })
        },
    );
    assert!(members[1].owned().is_empty(), "{}", members[1].describe());
    assert_eq!(members[0].owned(), all(4), "{}", members[0].describe());
    assert_eq!(members[0].changes(), [], "{}", members[0].describe());

    // The exact error code, for an unknown assignor and for another protocol type.
    assert_eq!(
        raw_join(&broker, "protocols", "consumer", &["no-such-assignor"]),
        INCONSISTENT_GROUP_PROTOCOL
    );
    assert_eq!(
        raw_join(&broker, "protocols", "connect", &["range"]),
        INCONSISTENT_GROUP_PROTOCOL
    );
    drop(members.pop());

    // The group still works: a member with a common assignor joins and commits.
    members.push(Member::join(
        &broker,
        "protocols",
        "proto-range-2",
        "proto",
        &[],
    ));
    let (shares, _) = settle(&broker, &mut members, 4, DEADLINE, owned_by);
    let offsets: Vec<(i32, i64)> = shares[1].iter().map(|&p| (p, 0)).collect();
    commit(&members[1].consumer, "proto", &offsets);
    let fetched = committed(&members[1].consumer, "proto", 4);
    for (p, o) in offsets {
        assert_eq!(fetched[&p], Some(o));
    }
}
