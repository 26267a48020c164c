#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against a running Weir broker.

Usage: confluent_roundtrip.py BOOTSTRAP [roundtrip | produce MANIFEST | verify MANIFEST]

Creates a topic with the admin API, produces with every codec librdkafka was
built with (keys, headers, tombstones, explicit timestamps), reads every
partition back with assign() from the beginning and compares byte for byte,
checks metadata, watermarks and timestamp lookups (ListOffsets), and deletes
the topic. Exits 1 with a FAIL: line on any mismatch, and in roundtrip mode
also when librdkafka quietly sent a requested codec's batches uncompressed
(NOT COMPRESSED: lines); prints SKIP: lines for anything the client cannot do.
"""

import logging
import sys
import time

# Keep __pycache__ out of the source tree when importing the helper.
sys.dont_write_bytecode = True

import weir_testdata as td  # noqa: E402

try:
    import confluent_kafka
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:
    td.fail(
        f"the confluent-kafka package is missing ({e}); install it with "
        "`python3 -m pip install -r broker/tests/python/requirements.txt`"
    )

CLIENT = "confluent"


def admin_client(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "client.id": "weir-py-confluent-admin"})


def create_topic(admin, topic):
    new = NewTopic(topic, num_partitions=td.PARTITIONS, replication_factor=1, config=td.TOPIC_CONFIGS)
    futures = admin.create_topics([new], operation_timeout=30, request_timeout=30)
    futures[topic].result(timeout=30)
    td.log(f"created topic {topic} with {td.PARTITIONS} partitions, configs {td.TOPIC_CONFIGS}")

    # A second create of the same name must fail with TOPIC_ALREADY_EXISTS.
    futures = admin.create_topics([new], operation_timeout=30, request_timeout=30)
    try:
        futures[topic].result(timeout=30)
    except KafkaException as e:
        code = e.args[0].code()
        if code != KafkaError.TOPIC_ALREADY_EXISTS:
            raise td.Mismatch(f"creating {topic} twice: expected TOPIC_ALREADY_EXISTS, got {e}")
    else:
        raise td.Mismatch(f"creating {topic} twice succeeded")


def check_metadata(admin, topic, partitions):
    md = admin.list_topics(timeout=15)
    if not md.brokers:
        raise td.Mismatch("metadata lists no brokers")
    td.log(
        f"metadata: cluster {md.cluster_id} controller {md.controller_id} brokers "
        f"{sorted((b.id, b.host, b.port) for b in md.brokers.values())} topics {len(md.topics)}"
    )
    t = md.topics.get(topic)
    if t is None:
        raise td.Mismatch(f"topic {topic} missing from metadata; listed: {sorted(md.topics)}")
    if t.error is not None:
        raise td.Mismatch(f"topic {topic} has metadata error {t.error}")
    if sorted(t.partitions) != list(range(partitions)):
        raise td.Mismatch(f"topic {topic} partitions {sorted(t.partitions)}, expected 0..{partitions - 1}")
    for p in t.partitions.values():
        if p.error is not None or p.leader not in md.brokers:
            raise td.Mismatch(f"{topic}-{p.id}: error {p.error}, leader {p.leader} not in {sorted(md.brokers)}")
        if p.leader not in p.replicas or p.leader not in p.isrs:
            raise td.Mismatch(f"{topic}-{p.id}: leader {p.leader} not in replicas {p.replicas} / isr {p.isrs}")


def delete_topic(admin, topic):
    futures = admin.delete_topics([topic], operation_timeout=30, request_timeout=30)
    futures[topic].result(timeout=30)
    deadline = time.monotonic() + 15
    while topic in admin.list_topics(timeout=15).topics:
        if time.monotonic() > deadline:
            raise td.Mismatch(f"deleted topic {topic} is still listed in metadata after 15 s")
        time.sleep(0.2)
    td.log(f"deleted topic {topic}; metadata no longer lists it")


class LibrdkafkaLog(logging.Handler):
    """Keeps librdkafka's log lines that say a batch went out uncompressed."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.uncompressed = []

    def emit(self, record):
        line = record.getMessage()
        if "not compressing batch" in line:
            self.uncompressed.append(line)


def produce(bootstrap, topic):
    """Sends every codec's records; returns (acked records in send order,
    skipped codecs, notes on codecs librdkafka chose not to apply)."""
    acked = []
    skipped = []
    not_applied = []
    for codec_index, codec in enumerate(td.CODECS):
        # librdkafka silently sends a batch uncompressed when it decides the
        # broker cannot take the codec; its `msg` debug log is the only trace.
        rdlog = LibrdkafkaLog()
        logger = logging.getLogger(f"librdkafka.{codec}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(rdlog)
        try:
            producer = Producer(
                {
                    "bootstrap.servers": bootstrap,
                    "client.id": f"weir-py-confluent-{codec}",
                    "compression.type": codec,
                    "linger.ms": 20,
                    "acks": "all",
                    # InitProducerId is not something this test exercises.
                    "enable.idempotence": False,
                    "message.timeout.ms": 30000,
                    "debug": "msg",
                },
                logger=logger,
            )
        except KafkaException as e:
            td.skip(f"codec {codec}", f"librdkafka {confluent_kafka.libversion()[0]} rejects it: {e}")
            skipped.append(codec)
            continue
        records = td.records_for(CLIENT, codec_index, codec)
        errors = []

        def on_delivery(err, msg, r):
            if err is not None:
                errors.append(f"{codec} record to partition {r['partition']}: {err}")
            else:
                r["offset"] = msg.offset()
                if msg.partition() != r["partition"]:
                    errors.append(f"{codec}: acked on partition {msg.partition()}, sent to {r['partition']}")

        for r in records:
            producer.produce(
                topic,
                value=r["value"],
                key=r["key"],
                partition=r["partition"],
                headers=r["headers"],
                timestamp=r["timestamp"],
                on_delivery=lambda err, msg, r=r: on_delivery(err, msg, r),
            )
            producer.poll(0)
        left = producer.flush(60)
        if left:
            raise td.Mismatch(f"{codec}: {left} records not delivered after 60 s")
        if errors:
            raise td.Mismatch(f"{codec}: delivery failed: {errors[:5]}")
        acked.extend(records)
        td.log(f"produced {len(records)} records with compression.type={codec}")
        if rdlog.uncompressed:
            note = (
                f"compression.type={codec}: librdkafka sent {len(rdlog.uncompressed)} batches uncompressed; "
                f"it logged: {rdlog.uncompressed[0]!r}"
            )
            if codec == "lz4":
                note += (
                    " (librdkafka enables LZ4 only when the broker's ApiVersions lists FindCoordinator "
                    "with version 0 in range: src/rdkafka_feature.c, RD_KAFKA_FEATURE_LZ4)"
                )
            td.log(f"NOT COMPRESSED: {note}")
            not_applied.append(note)
    td.check_offsets(acked)
    return acked, skipped, not_applied


def consume(bootstrap, topic, partitions, expected_counts):
    """Reads every partition from the beginning to its end (partition EOF)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # Required by the client; assign() never joins the group.
            "group.id": "weir-py-confluent-assign-only",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
            "client.id": "weir-py-confluent-consumer",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in range(partitions)])
        got = {p: [] for p in range(partitions)}
        at_eof = set()
        deadline = time.monotonic() + td.DEADLINE_S
        while len(at_eof) < partitions or any(len(got[p]) < n for p, n in expected_counts.items()):
            if time.monotonic() > deadline:
                counts = {p: len(v) for p, v in got.items()}
                raise td.Mismatch(
                    f"timed out reading: got {counts}, expected {expected_counts}, at end: {sorted(at_eof)}"
                )
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_eof.add(msg.partition())
                    continue
                raise td.Mismatch(f"consume error on partition {msg.partition()}: {msg.error()}")
            at_eof.discard(msg.partition())
            ts_type, ts = msg.timestamp()
            if ts_type != confluent_kafka.TIMESTAMP_CREATE_TIME:
                raise td.Mismatch(f"partition {msg.partition()} offset {msg.offset()}: timestamp type {ts_type}")
            got[msg.partition()].append(
                {
                    "offset": msg.offset(),
                    "key": msg.key(),
                    "value": msg.value(),
                    "headers": list(msg.headers() or []),
                    "timestamp": ts,
                }
            )

        # ListOffsets: earliest/latest and by timestamp.
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            if (low, high) != (0, expected_counts[p]):
                raise td.Mismatch(f"partition {p}: watermarks ({low}, {high}), expected (0, {expected_counts[p]})")
        return got, consumer
    except BaseException:
        consumer.close()
        raise


def check_timestamp_lookups(consumer, topic, expected):
    """offsets_for_times must find, per partition, the first record at or after a timestamp."""
    # One call per query set: the client keys answers by partition, so a
    # partition may appear only once per call.
    middles = {p: records[len(records) // 2] for p, records in expected.items() if records}
    queries = [TopicPartition(topic, p, r["timestamp"]) for p, r in middles.items()]
    for a in consumer.offsets_for_times(queries, timeout=10):
        want = middles[a.partition]["offset"]
        if a.error is not None or a.offset != want:
            raise td.Mismatch(f"offsets_for_times partition {a.partition}: offset {a.offset} ({a.error}), expected {want}")
    past = [TopicPartition(topic, p, expected[p][-1]["timestamp"] + 1) for p in middles]
    for a in consumer.offsets_for_times(past, timeout=10):
        # Nothing at or after the timestamp: Kafka answers offset -1 (end).
        if a.error is not None or a.offset not in (-1, confluent_kafka.OFFSET_END):
            raise td.Mismatch(f"offsets_for_times partition {a.partition} past the last record: {a.offset} ({a.error}), expected -1")
    td.log(f"offsets_for_times answered {len(queries) + len(past)} timestamp lookups correctly")


def verify(bootstrap, admin, topic, partitions, acked):
    check_metadata(admin, topic, partitions)
    expected = td.expected_by_partition(acked, partitions)
    counts = {p: len(v) for p, v in expected.items()}
    got, consumer = consume(bootstrap, topic, partitions, counts)
    try:
        td.compare(expected, got)
        td.log(f"read back {sum(counts.values())} records byte-exact, offsets in order, per partition {counts}")
        check_timestamp_lookups(consumer, topic, expected)
    finally:
        consumer.close()


def main():
    bootstrap, mode, manifest = td.parse_args(sys.argv, "confluent_roundtrip.py")
    td.log(f"confluent-kafka {confluent_kafka.__version__}, librdkafka {confluent_kafka.libversion()[0]}, mode {mode}")
    admin = admin_client(bootstrap)
    if mode == "verify":
        topic, partitions, acked = td.read_manifest(manifest)
        verify(bootstrap, admin, topic, partitions, acked)
        return
    topic = td.topic_name(CLIENT)
    create_topic(admin, topic)
    check_metadata(admin, topic, td.PARTITIONS)
    acked, skipped, not_applied = produce(bootstrap, topic)
    if mode == "produce":
        # The restart tests check the codecs of the stored batches themselves
        # (dump-log), after the verify phase.
        td.write_manifest(manifest, CLIENT, topic, acked, skipped)
        return
    verify(bootstrap, admin, topic, td.PARTITIONS, acked)
    delete_topic(admin, topic)
    if not_applied:
        # Everything read back, but a requested codec was never on the wire.
        raise td.Mismatch("a requested codec was not used:\n  " + "\n  ".join(not_applied))


if __name__ == "__main__":
    try:
        main()
    except td.Mismatch as e:
        td.fail(str(e))
    except KafkaException as e:
        td.fail(f"client error: {e}")
    td.log("OK")
