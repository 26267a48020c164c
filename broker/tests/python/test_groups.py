#!/usr/bin/env python3
"""Consumer groups with the Python clients against a running Weir broker.

Usage:
  test_groups.py BOOTSTRAP TEST_NAME          run one test_* function below
  test_groups.py BOOTSTRAP member TOPIC GROUP a confluent-kafka group member that
                                              prints `assigned: P,…` on every change
                                              until it is killed (consumer_groups.rs
                                              kills it with SIGKILL)
  test_groups.py BOOTSTRAP committer TOPIC GROUP EVERY PAUSE_MS
                                              a confluent-kafka group member that reads
                                              slowly (PAUSE_MS a record, the partitions in
                                              turn), prints `read: P OFFSET VALUE` for each
                                              record and commits synchronously after every
                                              EVERY records (`committing: P=O,…` before,
                                              `committed: P=O,…` after), until it is killed
  test_groups.py BOOTSTRAP admin GROUP…       prints what confluent-kafka's AdminClient
                                              lists, describes and reads for GROUPs

Tests are plain functions (pytest-style, but run by broker/tests/python_clients.rs
without pytest); each raises td.Mismatch on a wrong answer, which exits 1 with a
FAIL: line, and prints `PASS: NAME` at the end.

The mixed group uses the "range" assignor, which both clients implement under that
protocol name: the JoinGroup leader (either client) computes the assignment for a
member of the other implementation, so the subscription metadata and assignment
bytes must pass through the broker unchanged.
"""

import sys
import time

# Keep __pycache__ out of the source tree when importing the helper.
sys.dont_write_bytecode = True

import weir_testdata as td  # noqa: E402

try:
    import kafka
    import kafka.errors as kerrors
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTopicPartition
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.structs import OffsetAndMetadata

    import confluent_kafka
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer
    from confluent_kafka import TopicPartition as CTopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:
    td.fail(
        f"a Python client package is missing ({e}); install them with "
        "`python3 -m pip install -r broker/tests/python/requirements.txt`"
    )

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 500
DEADLINE_S = 30
# Assignments must hold this long before they count as settled: a broker that kept
# rebalancing the group would show up as a change inside the window.
SETTLE_S = 1.0


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "weir-py-groups-admin"})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)], operation_timeout=30, request_timeout=30
    )
    futures[topic].result(timeout=30)
    td.log(f"created topic {topic} with {partitions} partitions")


def kafka_python_consumer(bootstrap, topic, group, client_id):
    """A kafka-python group member subscribed to `topic`, with the topic's metadata
    already known, so that its first JoinGroup, when it leads, assigns every partition.

    Without the metadata, kafka-python 3.0.12 as leader assigns nothing, rejoins at once,
    and if a short `poll(timeout_ms=…)` runs out while that JoinGroup is in flight it
    never applies the assignment the SyncGroup returns: `join_group_async` loops on
    `need_rejoin()`, which the leader's own assignment snapshot has already made false.
    The member then neither fetches nor heartbeats until its session expires (seen as
    a one-in-a-dozen failure of the commit-and-resume test)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        client_id=client_id,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        max_poll_interval_ms=15000,
        partition_assignment_strategy=[RangePartitionAssignor],
        fetch_max_wait_ms=100,
        api_version=None,
    )
    deadline = time.monotonic() + DEADLINE_S
    while not consumer.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            raise td.Mismatch(f"kafka-python never saw metadata for {topic}")
        time.sleep(0.1)
    return consumer


def confluent_config(bootstrap, group, client_id):
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": HEARTBEAT_MS,
        "max.poll.interval.ms": 15000,
        "partition.assignment.strategy": "range",
        "fetch.wait.max.ms": 100,
    }


def partitions_of(assignment, topic):
    return frozenset(tp.partition for tp in assignment if tp.topic == topic)


def show(partitions):
    return ",".join(str(p) for p in sorted(partitions)) or "-"


def test_kafka_python_and_librdkafka_consumers_share_one_group(bootstrap):
    """A kafka-python and a confluent-kafka consumer in one group split a 6-partition topic
    disjointly, read every record exactly once between them, and commit what they read."""
    partitions = 6
    per_partition = 100
    topic = td.topic_name("groups-mixed")
    group = f"{topic}-group"
    create_topic(bootstrap, topic, partitions)

    kp = kafka_python_consumer(bootstrap, topic, group, "kafka-python-member")
    cc = Consumer(confluent_config(bootstrap, group, "confluent-member"))
    cc.subscribe([topic])
    try:
        # Settle the group before producing, so no record is read under an assignment that
        # a later rebalance moves (at-least-once would then rightly allow duplicates).
        deadline = time.monotonic() + DEADLINE_S
        settled_since, last = None, None
        while True:
            kp.poll(timeout_ms=100)
            cc.poll(0.1)
            now = (partitions_of(kp.assignment(), topic), partitions_of(cc.assignment(), topic))
            split = all(now) and not (now[0] & now[1]) and (now[0] | now[1]) == frozenset(range(partitions))
            if not split or now != last:
                settled_since = time.monotonic() if split else None
                last = now
            if settled_since is not None and time.monotonic() - settled_since >= SETTLE_S:
                break
            if time.monotonic() > deadline:
                raise td.Mismatch(
                    f"the group did not settle in {DEADLINE_S} s: kafka-python has [{show(now[0])}], "
                    f"confluent-kafka has [{show(now[1])}] of {partitions} partitions"
                )
        kp_owned, cc_owned = last
        td.log(f"settled: kafka-python [{show(kp_owned)}], confluent-kafka [{show(cc_owned)}]")

        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
        failures = []

        def delivered(err, _msg):
            if err is not None:
                failures.append(err)

        for i in range(partitions * per_partition):
            producer.produce(topic, key=f"k{i}", value=f"v{i}", partition=i % partitions, on_delivery=delivered)
            producer.poll(0)
        if producer.flush(30) != 0 or failures:
            raise td.Mismatch(f"producing failed: {len(failures)} errors, first {failures[:1]}")

        seen = {}  # value -> (client, partition, offset)
        duplicates = []
        strays = []

        def take(client, owned, partition, offset, value):
            if partition not in owned:
                strays.append(f"{client} read {value} from partition {partition}, which it does not own")
            if value in seen:
                duplicates.append(f"{value} read by {seen[value]} and again by {(client, partition, offset)}")
            seen[value] = (client, partition, offset)

        total = partitions * per_partition
        deadline = time.monotonic() + DEADLINE_S
        quiet_until = None
        while quiet_until is None or time.monotonic() < quiet_until:
            for tp, records in kp.poll(timeout_ms=100, max_records=200).items():
                for r in records:
                    take("kafka-python", kp_owned, tp.partition, r.offset, r.value.decode())
                kp.commit()
            messages = cc.consume(num_messages=200, timeout=0.1)
            for m in messages:
                if m.error() is not None:
                    raise td.Mismatch(f"confluent-kafka consumer error: {m.error()}")
                take("confluent-kafka", cc_owned, m.partition(), m.offset(), m.value().decode())
            if messages:
                cc.commit(asynchronous=False)
            if quiet_until is None and len(seen) >= total:
                # Keep polling a little: a duplicate would arrive now.
                quiet_until = time.monotonic() + SETTLE_S
            if time.monotonic() > deadline:
                raise td.Mismatch(f"read {len(seen)} of {total} records in {DEADLINE_S} s")
        if duplicates or strays:
            raise td.Mismatch("\n  ".join(["records read twice or by a non-owner:"] + duplicates[:10] + strays[:10]))
        missing = {f"v{i}" for i in range(total)} - set(seen)
        if missing:
            raise td.Mismatch(f"{len(missing)} records never read, e.g. {sorted(missing)[:5]}")
        by_client = {}
        for client, _, _ in seen.values():
            by_client[client] = by_client.get(client, 0) + 1
        td.log(f"read {total} records exactly once: {by_client}")
        if by_client != {"kafka-python": len(kp_owned) * per_partition, "confluent-kafka": len(cc_owned) * per_partition}:
            raise td.Mismatch(f"records per client {by_client} do not match the assignment")
        if (partitions_of(kp.assignment(), topic), partitions_of(cc.assignment(), topic)) != (kp_owned, cc_owned):
            raise td.Mismatch("the assignment changed while the group was consuming")

        # Each client reads back what both committed (OffsetFetch for the whole group).
        tps = [CTopicPartition(topic, p) for p in range(partitions)]
        from_confluent = {tp.partition: tp.offset for tp in cc.committed(tps, timeout=15)}
        from_kafka_python = {p: kp.committed(KTopicPartition(topic, p)) for p in range(partitions)}
        want = {p: per_partition for p in range(partitions)}
        if from_confluent != want or from_kafka_python != want:
            raise td.Mismatch(
                f"committed offsets: confluent-kafka reads {from_confluent}, kafka-python reads "
                f"{from_kafka_python}, expected {want}"
            )
        td.log(f"committed offsets read by both clients: {want}")
    finally:
        kp.close()
        cc.close()


def test_kafka_python_consumer_group_commit_resume_round_trip(bootstrap):
    """kafka-python commits offsets (with metadata) for part of what it read, leaves, and a
    new kafka-python member of the group resumes exactly at the commits; confluent-kafka
    reads the same commits, metadata included."""
    topic = td.topic_name("groups-kp")
    group = f"{topic}-group"
    partitions = 2
    per_partition = 20
    commit_at = {0: 8, 1: 13}
    create_topic(bootstrap, topic, partitions)

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False)
    try:
        futures = [
            (p, i, producer.send(topic, key=f"k{p}-{i}".encode(), value=f"p{p}-{i}".encode(), partition=p))
            for i in range(per_partition)
            for p in range(partitions)
        ]
        producer.flush(timeout=30)
        for p, i, f in futures:
            md = f.get(timeout=30)
            if (md.partition, md.offset) != (p, i):
                raise td.Mismatch(f"record p{p}-{i} acknowledged at {md.partition}/{md.offset}")
    finally:
        producer.close(timeout=10)

    def read(consumer, until):
        """Polls until every partition's last read offset reaches `until[p]`, then a quiet
        second; the (offset, value) pairs read per partition."""
        got = {p: [] for p in range(partitions)}
        deadline = time.monotonic() + DEADLINE_S
        quiet_until = None
        while quiet_until is None or time.monotonic() < quiet_until:
            for tp, records in consumer.poll(timeout_ms=100).items():
                got[tp.partition].extend((r.offset, r.value.decode()) for r in records)
            done = all(got[p] and got[p][-1][0] >= until[p] for p in range(partitions))
            if quiet_until is None and done:
                quiet_until = time.monotonic() + SETTLE_S
            if time.monotonic() > deadline:
                raise td.Mismatch(f"reading up to {until}: got {[(p, len(v)) for p, v in got.items()]}")
        return got

    first = kafka_python_consumer(bootstrap, topic, group, "kafka-python-first")
    try:
        read(first, {p: commit_at[p] - 1 for p in range(partitions)})
        first.commit(
            {
                KTopicPartition(topic, 0): OffsetAndMetadata(commit_at[0], "resume-here", -1),
                KTopicPartition(topic, 1): OffsetAndMetadata(commit_at[1], "", -1),
            }
        )
    finally:
        first.close()  # LeaveGroup
    td.log(f"first member committed {commit_at} and left")

    cc = Consumer(confluent_config(bootstrap, group, "confluent-reader"))
    try:
        committed = cc.committed([CTopicPartition(topic, p) for p in range(partitions)], timeout=15)
        seen = {tp.partition: (tp.offset, tp.metadata) for tp in committed}
        want = {0: (commit_at[0], "resume-here"), 1: (commit_at[1], "")}
        # librdkafka reports an empty metadata string as None.
        if {p: (o, m or "") for p, (o, m) in seen.items()} != want:
            raise td.Mismatch(f"confluent-kafka reads commits {seen}, expected {want}")
    finally:
        cc.close()

    second = kafka_python_consumer(bootstrap, topic, group, "kafka-python-second")
    try:
        before = {p: second.committed(KTopicPartition(topic, p)) for p in range(partitions)}
        if before != commit_at:
            raise td.Mismatch(f"a new member reads commits {before}, expected {commit_at}")
        got = read(second, {p: per_partition - 1 for p in range(partitions)})
        for p in range(partitions):
            want = [(i, f"p{p}-{i}") for i in range(commit_at[p], per_partition)]
            if got[p] != want:
                raise td.Mismatch(f"partition {p}: resumed with {got[p][:5]}…, expected {want[:5]}… ({len(want)})")
        second.commit()
        after = {p: second.committed(KTopicPartition(topic, p)) for p in range(partitions)}
        if after != {p: per_partition for p in range(partitions)}:
            raise td.Mismatch(f"after committing everything the group reads {after}")
    finally:
        second.close()
    td.log(f"second member resumed at {commit_at} and read to the end without gaps or repeats")


def member(bootstrap, topic, group):
    """A group member for consumer_groups.rs to SIGKILL: no LeaveGroup is ever sent."""
    consumer = Consumer(confluent_config(bootstrap, group, "python-member"))
    consumer.subscribe([topic])
    last = None
    stop_at = time.monotonic() + 120  # an orphan (its test died) still goes away
    while time.monotonic() < stop_at:
        consumer.poll(0.1)
        now = partitions_of(consumer.assignment(), topic)
        if now != last:
            td.log(f"assigned: {show(now)}")
            last = now
    td.log("member: ran 120 s without being killed; exiting")


def committer(bootstrap, topic, group, every, pause_ms):
    """A slow group member for consumer_groups.rs to SIGKILL between two of its commits.

    It takes one record of each partition in turn from what it has fetched, so its commits
    cover every partition, and commits what it has read (the next offset of each partition)
    with commit(asynchronous=False) after every `every` records. Offsets are committed
    explicitly: what librdkafka fetched ahead is never committed."""
    config = confluent_config(bootstrap, group, "python-committer")
    config["enable.auto.offset.store"] = False
    consumer = Consumer(config)
    fetched = {}  # partition -> records fetched and not yet read, in offset order
    position = {}  # partition -> the offset after the last record read

    def revoked(_consumer, partitions):
        for tp in partitions:
            fetched.pop(tp.partition, None)
            position.pop(tp.partition, None)

    consumer.subscribe([topic], on_revoke=revoked, on_lost=revoked)
    last = None
    since_commit = 0
    stop_at = time.monotonic() + 120  # an orphan (its test died) still goes away
    while time.monotonic() < stop_at:
        for m in consumer.consume(num_messages=500, timeout=0.05):
            if m.error() is not None:
                td.log(f"consumer error: {m.error()}")
                continue
            fetched.setdefault(m.partition(), []).append(m)
        now = partitions_of(consumer.assignment(), topic)
        if now != last:
            td.log(f"assigned: {show(now)}")
            last = now
        for p in sorted(fetched):
            if not fetched[p]:
                continue
            m = fetched[p].pop(0)
            time.sleep(pause_ms / 1000)  # processing the record
            td.log(f"read: {p} {m.offset()} {m.value().decode()}")
            position[p] = m.offset() + 1
            since_commit += 1
            if since_commit < every:
                continue
            offsets = [CTopicPartition(topic, q, o) for q, o in sorted(position.items())]
            td.log("committing: " + ",".join(f"{tp.partition}={tp.offset}" for tp in offsets))
            result = consumer.commit(offsets=offsets, asynchronous=False)
            failed = [tp for tp in result if tp.error is not None]
            if failed:
                raise td.Mismatch(f"commit of {offsets} failed: {failed}")
            td.log("committed: " + ",".join(f"{tp.partition}={tp.offset}" for tp in result))
            since_commit = 0
    td.log("committer: ran 120 s without being killed; exiting")


def admin(bootstrap, groups):
    """Prints, one fact per line, what confluent-kafka's AdminClient says about `groups`:
    `list G STATE`, `describe G state=S assignor=A simple=B members=N`,
    `member G CLIENT_ID TOPIC:P,…`, `offset G TOPIC P OFFSET`."""
    client = AdminClient({"bootstrap.servers": bootstrap, "client.id": "weir-py-groups-admin"})
    listed = client.list_consumer_groups(request_timeout=15).result(timeout=20)
    if listed.errors:
        raise td.Mismatch(f"list_consumer_groups errors: {listed.errors}")
    for g in listed.valid:
        td.log(f"list {g.group_id} {g.state.name}")
    for group, future in client.describe_consumer_groups(groups, request_timeout=15).items():
        d = future.result(timeout=20)
        td.log(
            f"describe {group} state={d.state.name} assignor={d.partition_assignor or '-'} "
            f"simple={d.is_simple_consumer_group} members={len(d.members)}"
        )
        for m in d.members:
            tps = ",".join(f"{tp.topic}:{tp.partition}" for tp in m.assignment.topic_partitions)
            td.log(f"member {group} {m.client_id} {tps or '-'}")
    for group in groups:
        futures = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=15)
        for result in futures.values():
            for tp in result.result(timeout=20).topic_partitions:
                td.log(f"offset {group} {tp.topic} {tp.partition} {tp.offset}")


def main():
    if len(sys.argv) < 3:
        td.fail(
            "usage: test_groups.py BOOTSTRAP (TEST_NAME | member TOPIC GROUP | "
            "committer TOPIC GROUP EVERY PAUSE_MS | admin GROUP…)"
        )
    bootstrap, name = sys.argv[1], sys.argv[2]
    td.log(f"kafka-python {kafka.__version__}, confluent-kafka {confluent_kafka.version()[0]}, "
           f"librdkafka {confluent_kafka.libversion()[0]}")
    if name == "member" and len(sys.argv) == 5:
        member(bootstrap, sys.argv[3], sys.argv[4])
        return
    if name == "committer" and len(sys.argv) == 7:
        committer(bootstrap, sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
        return
    if name == "admin":
        admin(bootstrap, sys.argv[3:])
        return
    test = globals().get(f"test_{name}")
    if test is None or len(sys.argv) != 3:
        td.fail(f"no test named test_{name}")
    test(bootstrap)
    td.log(f"PASS: {name}")


if __name__ == "__main__":
    try:
        main()
    except td.Mismatch as e:
        td.fail(str(e))
    except (kerrors.KafkaError, KafkaException) as e:
        td.fail(f"client error: {e!r}")
