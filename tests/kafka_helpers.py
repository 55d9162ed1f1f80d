"""Reading topics the way an outside client (a dialer) would: a plain aiokafka consumer."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


async def read_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    until: int,
    timeout_s: float = 30.0,
    group_id: str | None = None,
    skip_undecodable: bool = False,
) -> list[dict[str, Any]]:
    """Read decoded JSON messages from the start of `topic` until `until` arrived or time is up
    (`skip_undecodable`: pass over the garbage a poison test left on the topic).

    Each item has the envelope plus `_partition`, `_offset` and `_headers`.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=group_id is not None,
        fetch_max_wait_ms=20,
        session_timeout_ms=2000,
        heartbeat_interval_ms=600,
    )
    await consumer.start()
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < until and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for r in records:
                    try:
                        item = json.loads(r.value)
                    except ValueError:
                        if skip_undecodable:
                            continue
                        raise
                    item["_partition"] = r.partition
                    item["_offset"] = r.offset
                    item["_headers"] = {k: v.decode() for k, v in r.headers}
                    seen.append(item)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return seen


async def drain_topic(
    bootstrap_servers: str, topic: str, *, idle_s: float = 2.0, timeout_s: float = 300.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on `topic` from the start (raw, undecodable ones included): read until the
    end offsets seen at the start are reached and nothing more arrives for `idle_s`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            if batches:
                quiet_since = time.monotonic()
                for batch in batches.values():
                    records.extend(batch)
                continue
            positions = {tp: await consumer.position(tp) for tp in partitions}
            at_end = all(positions[tp] >= ends[tp] for tp in partitions)
            if at_end and time.monotonic() - quiet_since >= idle_s:
                break
    finally:
        await consumer.stop()
    return records
