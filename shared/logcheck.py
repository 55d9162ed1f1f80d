"""Is the record we saw at an offset still there? Detects a log that was replaced under us.

A broker that loses acknowledged data (the embedded broker keeps it all in memory, so a restart
starts empty) rebuilds partitions from offset 0 with other records. Committed offsets can then
point into the middle of the new log and skip records. Kafka's own defence (leader epochs,
KIP-320) is not available in aiokafka, so producers and consumers remember one
(offset, fingerprint) per partition and look at that offset again now and then. The record
remembered moves only when a check finds it intact (to the newest record from before that
check): a log replaced after it was written then always differs there, even once the new log
has grown past it; remembering the newest record instead let such a log pass. On real Kafka
the answer is always "same record" (or "gone" after retention, which counts as unknown).

`ListOffsets` is not used: the embedded broker answers it wrongly after batched produce
(measured: end offset 1 after 100 records); the high watermark of a fetch is right.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.aio import bounded


def fingerprint(key: bytes | None, value: bytes | None) -> str:
    """Short digest of a record's key and value."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(key or b"")
    digest.update(b"\x00")
    digest.update(value or b"")
    return digest.hexdigest()


@dataclass(frozen=True)
class SeenRecord:
    offset: int
    fingerprint: str


async def judge_partitions(
    bootstrap_servers: str,
    seen: Mapping[TopicPartition, SeenRecord],
    *,
    timeout_s: float = 2.0,
    request_timeout_ms: int = 5000,
) -> tuple[set[TopicPartition], set[TopicPartition]]:
    """(replaced, intact): the partitions found replaced, and those found still holding the
    remembered record; a partition not judged in time is in neither."""
    intact: set[TopicPartition] = set()
    if not seen:
        return set(), intact
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="none",
        fetch_max_wait_ms=50,
        request_timeout_ms=request_timeout_ms,
    )
    # A client start or stop can hang right after a broker restart: bounded, never silent.
    limit_s = 2 * request_timeout_ms / 1000
    replaced: set[TopicPartition] = set()
    try:
        await bounded(probe.start(), seconds=limit_s, what="starting the log probe")
        probe.assign(list(seen))
        for tp, record in seen.items():
            probe.seek(tp, record.offset)
        pending = dict(seen)
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            batches = await probe.getmany(*pending, timeout_ms=200)
            for tp, records in batches.items():
                if tp not in pending or not records:
                    continue
                first = records[0]
                expected = pending.pop(tp)
                same_offset = first.offset == expected.offset
                if same_offset and fingerprint(first.key, first.value) != expected.fingerprint:
                    replaced.add(tp)
                else:
                    # first.offset > expected: the record aged out (retention). Nothing to
                    # compare; counted intact so that the remembered record moves on instead
                    # of staying unjudged for ever (real Kafka never replaces a log).
                    intact.add(tp)
            for tp in list(pending):
                highwater = probe.highwater(tp)
                if highwater is not None and highwater <= pending[tp].offset:
                    replaced.add(tp)  # the log is now shorter than what we saw
                    pending.pop(tp)
            await asyncio.sleep(0)
    finally:
        with contextlib.suppress(Exception):
            await bounded(probe.stop(), seconds=limit_s, what="closing the log probe")
    return replaced, intact
