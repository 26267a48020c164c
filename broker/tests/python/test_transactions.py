#!/usr/bin/env python3
"""Transactions with the Python clients against a running Weir broker (issue 6).

Usage:
  test_transactions.py BOOTSTRAP TEST_NAME    run one test_* function below

Run by broker/tests/python_clients.rs against a standalone broker whose
`__transaction_state` has one replica. Tests are plain functions; each raises
td.Mismatch on a wrong answer, which exits 1 with a FAIL: line, and prints
`PASS: NAME` at the end.

confluent-kafka's AdminClient (2.x) has no transaction APIs, so the admin test uses
kafka-python's KafkaAdminClient (list_transactions, describe_transactions,
describe_producers).
"""

import sys
import time

sys.dont_write_bytecode = True

import weir_testdata as td  # noqa: E402

try:
    import kafka
    import kafka.errors as kerrors
    from kafka import TopicPartition as KTopicPartition
    from kafka.admin import KafkaAdminClient, TransactionState

    import confluent_kafka
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:
    td.fail(
        f"a Python client package is missing ({e}); install them with "
        "`python3 -m pip install -r broker/tests/python/requirements.txt`"
    )

DEADLINE_S = 30
# A window in which records that must not be read would be read.
QUIET_S = 2.0


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)], operation_timeout=30, request_timeout=30
    )
    futures[topic].result(timeout=30)


def producer(bootstrap, txn_id):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5})
    try:
        p.init_transactions(30)
    except KafkaException as e:
        raise td.Mismatch(
            f"init_transactions for {txn_id} failed: {e!r} (the broker's transaction coordinator "
            "did not answer FindCoordinator / InitProducerId)"
        ) from e
    return p


def produce_acked(p, topic, values_by_partition):
    failures = []

    def delivered(err, msg):
        if err is not None:
            failures.append((msg.value(), err))

    for partition, values in values_by_partition.items():
        for v in values:
            p.produce(topic, key=v, value=v, partition=partition, on_delivery=delivered)
    if p.flush(30) != 0 or failures:
        raise td.Mismatch(f"records not acknowledged: {failures[:3]}")


def read(bootstrap, topic, partitions, isolation, want_count):
    """Reads `topic` from the beginning until `want_count` records, then QUIET_S more:
    {partition: [(offset, value)]}."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"reader-{isolation}",
        "enable.auto.commit": False,
        "isolation.level": isolation,
        "fetch.wait.max.ms": 100,
    })
    c.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in range(partitions)])
    got = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + DEADLINE_S
    quiet_until = None
    try:
        while quiet_until is None or time.monotonic() < quiet_until:
            for m in c.consume(num_messages=500, timeout=0.1):
                if m.error() is not None:
                    raise td.Mismatch(f"consumer error: {m.error()}")
                got[m.partition()].append((m.offset(), m.value().decode()))
            if quiet_until is None and sum(map(len, got.values())) >= want_count:
                quiet_until = time.monotonic() + QUIET_S
            if time.monotonic() > deadline:
                raise td.Mismatch(f"{isolation}: read {sum(map(len, got.values()))} of {want_count}: {got}")
    finally:
        c.close()
    return got


def test_confluent_commit_and_abort_round_trip(bootstrap):
    """A committed transaction is read by read_committed and read_uncommitted consumers; an
    aborted one only by read_uncommitted; the markers take an offset each and are never
    delivered."""
    topic = td.topic_name("txn-roundtrip")
    create_topic(bootstrap, topic, 2)
    p = producer(bootstrap, f"{topic}-txn")
    committed = {q: [f"c-{q}-{i}" for i in range(10)] for q in range(2)}
    aborted = {q: [f"a-{q}-{i}" for i in range(10)] for q in range(2)}
    p.begin_transaction()
    produce_acked(p, topic, committed)
    p.commit_transaction(30)
    p.begin_transaction()
    produce_acked(p, topic, aborted)
    p.abort_transaction(30)

    got = read(bootstrap, topic, 2, "read_committed", 20)
    want = {q: [(i, v) for i, v in enumerate(committed[q])] for q in range(2)}
    if got != want:
        raise td.Mismatch(f"read_committed read {got}, expected {want}")
    got = read(bootstrap, topic, 2, "read_uncommitted", 40)
    # COMMIT marker at 10, the aborted records at 11..20, the ABORT marker at 21.
    want = {q: want[q] + [(11 + i, v) for i, v in enumerate(aborted[q])] for q in range(2)}
    if got != want:
        raise td.Mismatch(f"read_uncommitted read {got}, expected {want}")
    td.log("read_committed read the committed transaction only; read_uncommitted both, markers skipped")


def test_confluent_offsets_in_a_transaction_are_committed_with_it(bootstrap):
    """send_offsets_to_transaction: OffsetFetch shows nothing while the transaction is open,
    the offsets once it commits, and an aborted transaction's offsets never. A read_committed
    consumer asks with require_stable (librdkafka's default isolation), which Kafka answers
    UNSTABLE_OFFSET_COMMIT while the offsets are pending, so its committed() keeps retrying
    until the transaction ends; a read_uncommitted one gets the last committed offset."""
    topic = td.topic_name("txn-offsets")
    create_topic(bootstrap, topic, 1)
    group = f"{topic}-group"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "isolation.level": "read_uncommitted"})
    stable = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                       "isolation.level": "read_committed"})
    p = producer(bootstrap, f"{topic}-txn")
    tps = [TopicPartition(topic, 0)]
    try:
        def committed():
            return consumer.committed(tps, timeout=15)[0].offset

        p.begin_transaction()
        produce_acked(p, topic, {0: ["x"]})
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 5)], consumer.consumer_group_metadata(), 30)
        before = committed()
        try:
            unstable = stable.committed(tps, timeout=3)[0].offset
        except confluent_kafka.KafkaException as e:
            unstable = e.args[0].code()
        if unstable != confluent_kafka.KafkaError._TIMED_OUT:
            raise td.Mismatch(f"a require_stable OffsetFetch during the transaction gave {unstable}, expected to wait")
        p.commit_transaction(30)
        after = committed()
        stable_after = stable.committed(tps, timeout=15)[0].offset
        if stable_after != 5:
            raise td.Mismatch(f"a require_stable OffsetFetch after the commit gave {stable_after}, expected 5")
        if (before, after) != (confluent_kafka.OFFSET_INVALID, 5):
            raise td.Mismatch(f"committed offset before the commit {before}, after {after}; expected none, then 5")

        p.begin_transaction()
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 7)], consumer.consumer_group_metadata(), 30)
        p.abort_transaction(30)
        aborted = committed()
        if aborted != 5:
            raise td.Mismatch(f"after an aborted transaction with offset 7 the group reads {aborted}, expected 5")
    finally:
        consumer.close()
        stable.close()
    td.log("offsets became visible with the commit and not with the abort")


def test_kafka_python_admin_lists_and_describes_transactions(bootstrap):
    """kafka-python's admin client lists and describes an open transaction (Ongoing, its
    partition, its producer) and DescribeProducers shows the open transaction's first offset;
    after the commit the transaction is CompleteCommit and the partition has none open."""
    topic = td.topic_name("txn-admin")
    create_topic(bootstrap, topic, 1)
    txn_id = f"{topic}-txn"
    p = producer(bootstrap, txn_id)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="weir-py-txn-admin")
    tp = KTopicPartition(topic, 0)
    try:
        p.begin_transaction()
        produce_acked(p, topic, {0: ["one", "two"]})

        listed = [t for ts in admin.list_transactions().values() for t in ts if t.transactional_id == txn_id]
        if [t.state for t in listed] != [TransactionState.ONGOING]:
            raise td.Mismatch(f"list_transactions shows {listed} for {txn_id}, expected one Ongoing")
        d = admin.describe_transactions([txn_id])[txn_id]
        if d.state != TransactionState.ONGOING or d.topic_partitions != {tp} or d.producer_id != listed[0].producer_id:
            raise td.Mismatch(f"describe_transactions: {d}")
        producers = admin.describe_producers([tp])[tp].active_producers
        ours = [s for s in producers if s.producer_id == d.producer_id]
        if len(ours) != 1 or ours[0].current_transaction_start_offset != 0 or ours[0].producer_epoch != d.producer_epoch:
            raise td.Mismatch(f"describe_producers: {producers}, expected producer {d.producer_id} with a transaction at 0")
        td.log(f"open: {d.state.value}, producer {d.producer_id} epoch {d.producer_epoch}, {sorted(d.topic_partitions)}")

        p.commit_transaction(30)
        deadline = time.monotonic() + DEADLINE_S
        while True:
            d = admin.describe_transactions([txn_id])[txn_id]
            producers = admin.describe_producers([tp])[tp].active_producers
            ours = [s for s in producers if s.producer_id == d.producer_id]
            if d.state == TransactionState.COMPLETE_COMMIT and ours and ours[0].current_transaction_start_offset == -1:
                break
            if time.monotonic() > deadline:
                raise td.Mismatch(f"after the commit: {d}, producers {producers}")
            time.sleep(0.1)
        td.log(f"committed: {d.state.value}, no open transaction on {topic}-0")
    finally:
        admin.close()


def main():
    if len(sys.argv) != 3:
        td.fail("usage: test_transactions.py BOOTSTRAP TEST_NAME")
    bootstrap, name = sys.argv[1], sys.argv[2]
    td.log(f"kafka-python {kafka.__version__}, confluent-kafka {confluent_kafka.version()[0]}, "
           f"librdkafka {confluent_kafka.libversion()[0]}")
    test = globals().get(f"test_{name}")
    if test is None:
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
