#!/usr/bin/env python3
"""A consume-transform-produce copier with confluent-kafka transactions, for
broker/tests/transactions.rs to SIGKILL and restart.

Usage:
  txn_copier.py BOOTSTRAP SOURCE DEST GROUP TRANSACTIONAL_ID BATCH PAUSE_MS

It reads SOURCE in GROUP (isolation.level=read_committed, no auto commit, static
membership so a restarted copier takes its place at once) and, for every batch of
up to BATCH records, in one transaction: writes each record to the same partition
of DEST with the value prefixed `copied:` and the key kept, commits the consumer's
positions with send_offsets_to_transaction, and commits. It sleeps PAUSE_MS
between transactions so the test's kills land in the middle of the run.

Any error ends it (after an abort, when one is possible) with exit code 1: the test
starts a new copier, whose init_transactions fences this one's transactional id and
whose consumer resumes from the offsets committed in the last committed transaction.
Prints `ready` once initialized and `committed: N` after each committed transaction.
"""

import sys
import time

try:
    from confluent_kafka import Consumer, KafkaException, Producer
except ImportError as e:
    print(f"FAIL: confluent-kafka is missing ({e}); python3 -m pip install -r "
          "broker/tests/python/requirements.txt", file=sys.stderr, flush=True)
    sys.exit(1)

# An orphan (its test died) still goes away.
LIFETIME_S = 300


def log(message):
    print(message, flush=True)


def main():
    bootstrap, source, dest, group, txn_id, batch, pause_ms = sys.argv[1:8]
    batch, pause = int(batch), int(pause_ms) / 1000
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "linger.ms": 5,
        "retry.backoff.ms": 100,
        "topic.metadata.refresh.interval.ms": 1000,
    })
    producer.init_transactions(30)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.instance.id": f"{txn_id}-member",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
        "fetch.wait.max.ms": 100,
        "topic.metadata.refresh.interval.ms": 1000,
    })
    consumer.subscribe([source])
    log("ready")
    stop_at = time.monotonic() + LIFETIME_S
    in_transaction = False
    try:
        while time.monotonic() < stop_at:
            messages = consumer.consume(num_messages=batch, timeout=0.2)
            records = []
            for m in messages:
                if m.error() is not None:
                    log(f"consumer error: {m.error()}")
                    continue
                records.append(m)
            if not records:
                continue
            producer.begin_transaction()
            in_transaction = True
            for m in records:
                producer.produce(dest, key=m.key(), value=b"copied:" + m.value(), partition=m.partition())
            positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
            in_transaction = False
            log(f"committed: {len(records)}")
            time.sleep(pause)
    except KafkaException as e:
        log(f"copier error: {e!r}")
        if in_transaction and not e.args[0].fatal():
            try:
                producer.abort_transaction(10)
                log("aborted")
            except KafkaException as abort_error:
                log(f"abort failed: {abort_error!r}")
        sys.exit(1)
    log("copier: ran its lifetime without being killed; exiting")


if __name__ == "__main__":
    main()
