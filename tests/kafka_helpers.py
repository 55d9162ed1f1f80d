"""Reading topics the way an outside client (a dialer) would: a plain aiokafka consumer."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer


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
