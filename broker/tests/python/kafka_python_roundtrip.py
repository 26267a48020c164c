#!/usr/bin/env python3
"""kafka-python (a pure-Python protocol implementation) against a running Weir broker.

Usage: kafka_python_roundtrip.py BOOTSTRAP [roundtrip | produce MANIFEST | verify MANIFEST]

Same checks as confluent_roundtrip.py with an independent implementation of
the wire protocol: api_version=None, so every request version is negotiated
from Weir's ApiVersions answer, and the script prints what was negotiated.
Codecs need python-snappy, lz4 and zstandard; one whose library is missing is
skipped with a SKIP: line.
"""

import sys
import time

# Keep __pycache__ out of the source tree when importing the helper.
sys.dont_write_bytecode = True

import weir_testdata as td  # noqa: E402

try:
    import kafka
    import kafka.errors as kerrors
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.protocol.admin import CreateTopicsRequest, DeleteTopicsRequest
    from kafka.protocol.consumer import FetchRequest, ListOffsetsRequest
    from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest
    from kafka.protocol.producer import ProduceRequest
except ImportError as e:
    td.fail(
        f"the kafka-python package is missing ({e}); install it with "
        "`python3 -m pip install -r broker/tests/python/requirements.txt`"
    )

CLIENT = "kafka-python"
COMMON = {"api_version": None, "request_timeout_ms": 30000}
# Requests this script sends; the negotiated version of each is printed.
USED_APIS = [
    ApiVersionsRequest,
    MetadataRequest,
    ProduceRequest,
    FetchRequest,
    ListOffsetsRequest,
    CreateTopicsRequest,
    DeleteTopicsRequest,
]


def admin_client(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="weir-py-kafka-python-admin", **COMMON)


def report_versions(admin):
    """Prints the broker version kafka-python inferred and each API version it will use."""
    data = admin._manager.broker_version_data
    used = []
    for request in USED_APIS:
        name = request.__name__.removesuffix("Request")
        try:
            used.append(f"{name} v{data.api_version(request)}")
        except kerrors.IncompatibleBrokerVersion as e:
            raise td.Mismatch(f"kafka-python cannot use {name} with this broker: {e}")
    td.log(f"kafka-python inferred broker version {data.broker_version_str}; negotiated {', '.join(used)}")


def create_topic(admin, topic):
    spec = {topic: {"num_partitions": td.PARTITIONS, "replication_factor": 1, "configs": td.TOPIC_CONFIGS}}
    result = admin.create_topics(spec, timeout_ms=30000)
    errors = [(t["name"], t["error_code"]) for t in result["topics"] if t["error_code"] != 0]
    if errors:
        raise td.Mismatch(f"create_topics answered errors {errors}")
    td.log(f"created topic {topic} with {td.PARTITIONS} partitions, configs {td.TOPIC_CONFIGS}")

    # A second create of the same name must fail with TOPIC_ALREADY_EXISTS.
    try:
        admin.create_topics(spec, timeout_ms=30000)
    except kerrors.TopicAlreadyExistsError:
        pass
    else:
        raise td.Mismatch(f"creating {topic} twice succeeded")


def check_metadata(admin, topic, partitions):
    names = admin.list_topics()
    if topic not in names:
        raise td.Mismatch(f"topic {topic} missing from list_topics(): {sorted(names)}")
    described = admin.describe_topics([topic])
    if len(described) != 1 or described[0]["name"] != topic:
        raise td.Mismatch(f"describe_topics([{topic}]) answered {described}")
    t = described[0]
    if t["error_code"] != 0:
        raise td.Mismatch(f"topic {topic} has metadata error code {t['error_code']}")
    parts = sorted(t["partitions"], key=lambda p: p["partition_index"])
    if [p["partition_index"] for p in parts] != list(range(partitions)):
        raise td.Mismatch(f"topic {topic} partitions {parts}, expected 0..{partitions - 1}")
    # DescribeCluster, or Metadata on a broker that lacks it.
    cluster = admin.describe_cluster()
    brokers = {b["broker_id"] for b in cluster["brokers"]}
    for p in parts:
        if p["error_code"] != 0 or p["leader_id"] not in brokers:
            raise td.Mismatch(f"{topic}-{p['partition_index']}: {p}, brokers {sorted(brokers)}")
        if p["leader_id"] not in p["replica_nodes"] or p["leader_id"] not in p["isr_nodes"]:
            raise td.Mismatch(f"{topic}-{p['partition_index']}: leader not in replicas / isr: {p}")
    td.log(
        f"metadata: cluster {cluster.get('cluster_id')} controller {cluster.get('controller_id')} "
        f"brokers {sorted(brokers)} topics {len(names)}; {topic} has {partitions} partitions with leaders"
    )


def delete_topic(admin, topic):
    result = admin.delete_topics([topic], timeout_ms=30000)
    errors = [r for r in result.get("responses", []) if r.get("error_code", 0) != 0]
    if errors:
        raise td.Mismatch(f"delete_topics answered errors {errors}")
    deadline = time.monotonic() + 15
    while topic in admin.list_topics():
        if time.monotonic() > deadline:
            raise td.Mismatch(f"deleted topic {topic} is still listed after 15 s")
        time.sleep(0.2)
    td.log(f"deleted topic {topic}; list_topics() no longer lists it")


def produce(bootstrap, topic):
    """Sends every codec's records; returns (acked records in send order, skipped codecs)."""
    td.skip(
        "null header values",
        f"kafka-python {kafka.__version__}'s KafkaProducer.send accepts only (str, bytes) headers",
    )
    td.skip(
        "records with neither key nor value",
        f"kafka-python {kafka.__version__}'s KafkaProducer.send needs a key or a value; tombstones get a key",
    )
    acked = []
    skipped = []
    for codec_index, codec in enumerate(td.CODECS):
        try:
            producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                client_id=f"weir-py-kafka-python-{codec}",
                compression_type=None if codec == "none" else codec,
                linger_ms=20,
                acks="all",
                # InitProducerId is not something this test exercises (and
                # kafka-python turns idempotence on by default).
                enable_idempotence=False,
                max_request_size=4 * 1024 * 1024,
                **COMMON,
            )
        except (RuntimeError, ValueError, kerrors.UnsupportedCodecError) as e:
            td.skip(f"codec {codec}", f"kafka-python {kafka.__version__} cannot use it here: {e}")
            skipped.append(codec)
            continue
        try:
            records = td.records_for(
                CLIENT, codec_index, codec, null_header_values=False, null_key_and_value=False
            )
            futures = [
                producer.send(
                    topic,
                    value=r["value"],
                    key=r["key"],
                    headers=r["headers"],
                    partition=r["partition"],
                    timestamp_ms=r["timestamp"],
                )
                for r in records
            ]
            producer.flush(timeout=60)
            for r, f in zip(records, futures):
                try:
                    md = f.get(timeout=30)
                except kerrors.KafkaError as e:
                    raise td.Mismatch(f"{codec} record to partition {r['partition']} failed: {e!r}")
                if md.partition != r["partition"]:
                    raise td.Mismatch(f"{codec}: acked on partition {md.partition}, sent to {r['partition']}")
                r["offset"] = md.offset
        finally:
            producer.close(timeout=10)
        acked.extend(records)
        td.log(f"produced {len(records)} records with compression_type={codec}")
    td.check_offsets(acked)
    return acked, skipped


def consumer_for(bootstrap):
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="weir-py-kafka-python-consumer",
        # No group: assign() only, no coordinator, no commits.
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        fetch_max_wait_ms=100,
        **COMMON,
    )


def consume(consumer, topic, partitions, expected_counts):
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)

    # ListOffsets: earliest and latest.
    low = consumer.beginning_offsets(tps, timeout_ms=10000)
    high = consumer.end_offsets(tps, timeout_ms=10000)
    for tp in tps:
        if (low[tp], high[tp]) != (0, expected_counts[tp.partition]):
            raise td.Mismatch(
                f"partition {tp.partition}: offsets ({low[tp]}, {high[tp]}), expected (0, {expected_counts[tp.partition]})"
            )

    got = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + td.DEADLINE_S
    while any(consumer.position(tp) < high[tp] for tp in tps):
        if time.monotonic() > deadline:
            counts = {p: len(v) for p, v in got.items()}
            raise td.Mismatch(f"timed out reading: got {counts}, expected {expected_counts}")
        for tp, records in consumer.poll(timeout_ms=500).items():
            for m in records:
                if m.timestamp_type != 0:
                    raise td.Mismatch(f"partition {tp.partition} offset {m.offset}: timestamp type {m.timestamp_type}")
                got[tp.partition].append(
                    {
                        "offset": m.offset,
                        "key": m.key,
                        "value": m.value,
                        "headers": list(m.headers or []),
                        "timestamp": m.timestamp,
                    }
                )
    return got


def check_timestamp_lookups(consumer, topic, expected):
    """offsets_for_times must find, per partition, the first record at or after a timestamp."""
    middles = {p: records[len(records) // 2] for p, records in expected.items() if records}
    answers = consumer.offsets_for_times(
        {TopicPartition(topic, p): r["timestamp"] for p, r in middles.items()}, timeout_ms=10000
    )
    for tp, a in answers.items():
        want = middles[tp.partition]
        if a is None or (a.offset, a.timestamp) != (want["offset"], want["timestamp"]):
            raise td.Mismatch(
                f"offsets_for_times partition {tp.partition}: {a}, expected offset {want['offset']} "
                f"timestamp {want['timestamp']}"
            )
    past = consumer.offsets_for_times(
        {TopicPartition(topic, p): expected[p][-1]["timestamp"] + 1 for p in middles}, timeout_ms=10000
    )
    for tp, a in past.items():
        if a is not None:
            raise td.Mismatch(f"offsets_for_times partition {tp.partition} past the last record: {a}, expected None")
    td.log(f"offsets_for_times answered {len(answers) + len(past)} timestamp lookups correctly")


def verify(bootstrap, admin, topic, partitions, acked):
    check_metadata(admin, topic, partitions)
    expected = td.expected_by_partition(acked, partitions)
    counts = {p: len(v) for p, v in expected.items()}
    consumer = consumer_for(bootstrap)
    try:
        got = consume(consumer, topic, partitions, counts)
        td.compare(expected, got)
        td.log(f"read back {sum(counts.values())} records byte-exact, offsets in order, per partition {counts}")
        check_timestamp_lookups(consumer, topic, expected)
    finally:
        consumer.close()


def main():
    bootstrap, mode, manifest = td.parse_args(sys.argv, "kafka_python_roundtrip.py")
    td.log(f"kafka-python {kafka.__version__}, mode {mode}")
    admin = admin_client(bootstrap)
    try:
        report_versions(admin)
        if mode == "verify":
            topic, partitions, acked = td.read_manifest(manifest)
            verify(bootstrap, admin, topic, partitions, acked)
            return
        topic = td.topic_name(CLIENT)
        create_topic(admin, topic)
        check_metadata(admin, topic, td.PARTITIONS)
        acked, skipped = produce(bootstrap, topic)
        if mode == "produce":
            td.write_manifest(manifest, CLIENT, topic, acked, skipped)
            return
        verify(bootstrap, admin, topic, td.PARTITIONS, acked)
        delete_topic(admin, topic)
    finally:
        admin.close()


if __name__ == "__main__":
    try:
        main()
    except td.Mismatch as e:
        td.fail(str(e))
    except kerrors.KafkaError as e:
        td.fail(f"client error: {e!r}")
    td.log("OK")
