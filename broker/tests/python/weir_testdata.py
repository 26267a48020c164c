"""What the Python client scripts send to Weir and how they check it came back.

Shared by confluent_roundtrip.py and kafka_python_roundtrip.py so both clients
produce the same awkward records: binary keys and values with every byte value,
null keys, null values (tombstones), empty values, values larger than a
segment's index interval, duplicate header keys, null and empty header values,
non-ASCII header keys, and explicit CreateTime timestamps.

A manifest is the JSON record of what was acknowledged, partition and offset
included; `verify` mode compares a fresh read against it byte for byte.
"""

import base64
import json
import random
import sys
import time

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 4
RECORDS_PER_CODEC = 120
# Kafka's smallest segment.bytes: the partition that gets a codec's large
# records rolls to a new segment, so reads cross segment files.
TOPIC_CONFIGS = {"segment.bytes": "1048576"}
# Timestamps are explicit so they can be compared exactly, and recent: with a
# fixed date, time retention (7 days by default, measured from a segment's
# largest timestamp) would rightly delete sealed segments under the test.
BASE_TIMESTAMP_MS = int(time.time() * 1000) - 3_600_000
DEADLINE_S = 60


class Mismatch(Exception):
    """What a client read back differs from what it sent."""


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def skip(what, reason):
    """Skips are printed, never silent, so the Rust test output shows them."""
    print(f"SKIP: {what}: {reason}", flush=True)


def log(message):
    print(message, flush=True)


def topic_name(client):
    return f"py-{client}-{int(time.time() * 1000)}-{random.randrange(1 << 30)}"


def records_for(client, codec_index, codec, null_header_values=True, null_key_and_value=True):
    """The records one producer with `codec` sends: dicts with partition, key,
    value, headers [(str, bytes|None)], timestamp (ms).

    For clients that refuse them: without `null_header_values` the header
    with a null value is left out; without `null_key_and_value` a record with
    neither key nor value gets a key."""
    rng = random.Random(f"{client}/{codec}")
    out = []
    for i in range(RECORDS_PER_CODEC):
        key = None if i % 5 == 0 else f"{client}-{codec}-key-{i}".encode() + bytes([i % 256, 0, 255])
        if i % 7 == 3:
            value = None  # tombstone
            if key is None and not null_key_and_value:
                key = f"{client}-{codec}-tombstone-{i}".encode()
        elif i % 11 == 0:
            value = b""  # empty, which is not null
        elif i % 20 == 17:
            # Large: compressible text then incompressible noise, bigger than
            # index.interval.bytes so the offset index gets entries.
            value = (f"{codec} large {i} " * 4000).encode() + rng.randbytes(100000)
        else:
            value = f"{codec} value {i} ".encode() * (1 + i % 9) + bytes(range(256))[: (i * 37) % 257]
        if i % 3 == 0:
            headers = []
        elif i % 3 == 1:
            headers = [("h1", bytes([i % 256])), ("h-null", None), ("h1", b"duplicate key, kept in order")]
            if not null_header_values:
                headers = [h for h in headers if h[1] is not None]
        else:
            headers = [("ключ-ü", "värde".encode()), ("empty", b""), ("bin", rng.randbytes(16))]
        out.append(
            {
                "partition": (i + codec_index) % PARTITIONS,
                "key": key,
                "value": value,
                "headers": headers,
                "timestamp": BASE_TIMESTAMP_MS + codec_index * 100000 + i,
                "codec": codec,
            }
        )
    return out


def check_offsets(acked):
    """Acknowledged offsets per partition must be 0, 1, 2, … in send order.

    The topic is new and each partition has one producer at a time, so any gap,
    duplicate or reordering is a broker (or client) bug."""
    by_partition = {}
    for r in acked:
        by_partition.setdefault(r["partition"], []).append(r["offset"])
    for partition, offsets in sorted(by_partition.items()):
        if offsets != list(range(len(offsets))):
            raise Mismatch(
                f"partition {partition}: acknowledged offsets in send order are not 0..{len(offsets) - 1}: "
                f"{offsets[:20]}{'…' if len(offsets) > 20 else ''}"
            )


def _b64(b):
    return None if b is None else base64.b64encode(b).decode("ascii")


def _unb64(s):
    return None if s is None else base64.b64decode(s)


def write_manifest(path, client, topic, acked, skipped_codecs):
    doc = {
        "client": client,
        "topic": topic,
        "partitions": PARTITIONS,
        "skipped_codecs": skipped_codecs,
        "records": [
            {
                "partition": r["partition"],
                "offset": r["offset"],
                "key": _b64(r["key"]),
                "value": _b64(r["value"]),
                "headers": [[k, _b64(v)] for k, v in r["headers"]],
                "timestamp": r["timestamp"],
                "codec": r["codec"],
            }
            for r in acked
        ],
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    log(f"manifest: {len(acked)} records of topic {topic} written to {path}")


def read_manifest(path):
    """Any client may verify any client's manifest: reading what another
    implementation wrote checks both decoders against the broker."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    log(f"manifest {path}: {len(doc['records'])} records of topic {doc['topic']} sent by {doc['client']}")
    records = [
        {
            "partition": r["partition"],
            "offset": r["offset"],
            "key": _unb64(r["key"]),
            "value": _unb64(r["value"]),
            "headers": [(k, _unb64(v)) for k, v in r["headers"]],
            "timestamp": r["timestamp"],
            "codec": r["codec"],
        }
        for r in doc["records"]
    ]
    return doc["topic"], doc["partitions"], records


def expected_by_partition(acked, partitions):
    out = {p: [] for p in range(partitions)}
    for r in sorted(acked, key=lambda r: (r["partition"], r["offset"])):
        out[r["partition"]].append(r)
    return out


def _show(b):
    if b is None:
        return "null"
    if len(b) > 60:
        return f"{len(b)} bytes {b[:40]!r}…"
    return repr(b)


def _describe(r):
    headers = ", ".join(f"{k}={_show(v)}" for k, v in r["headers"])
    return (
        f"offset {r['offset']} key {_show(r['key'])} value {_show(r['value'])} "
        f"headers [{headers}] timestamp {r['timestamp']}"
    )


def compare(expected, got):
    """Compares per-partition lists of records (dicts) byte for byte."""
    for partition in sorted(expected):
        want = expected[partition]
        have = got.get(partition, [])
        for i, (w, h) in enumerate(zip(want, have)):
            for field in ("offset", "key", "value", "headers", "timestamp"):
                if w[field] != h[field]:
                    raise Mismatch(
                        f"partition {partition} record #{i} ({w['codec']}): {field} differs\n"
                        f"  sent: {_describe(w)}\n  read: {_describe(h)}"
                    )
        if len(want) != len(have):
            raise Mismatch(
                f"partition {partition}: sent {len(want)} records, read {len(have)}"
                + (f"; first extra: {_describe(have[len(want)])}" if len(have) > len(want) else "")
            )
    extra = set(got) - set(expected)
    if extra:
        raise Mismatch(f"records read from partitions that were not written: {sorted(extra)}")


def parse_args(argv, script):
    usage = (
        f"usage: {script} BOOTSTRAP [roundtrip | produce MANIFEST | verify MANIFEST]\n"
        "  roundtrip (default): create a topic, produce, read back, delete it\n"
        "  produce: create a topic, produce, write what was acknowledged to MANIFEST\n"
        "  verify: read the MANIFEST's topic back and compare"
    )
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        fail(usage)
    bootstrap = argv[1]
    mode = argv[2] if len(argv) > 2 else "roundtrip"
    if mode == "roundtrip" and len(argv) <= 3:
        return bootstrap, mode, None
    if mode in ("produce", "verify") and len(argv) == 4:
        return bootstrap, mode, argv[3]
    fail(usage)
