"""Re-drive dead letters after a fix: `python -m shared.dlq redrive <topic>.dlq`.

Each message in a DLQ holds the original key and value, and headers naming the consumer that
gave up on it and where it came from. Re-driving publishes it again to its original topic
with a `dlq_redrive_for: <consumer>` header: that consumer (and only that one) forgets it
gave up and processes it; every other consumer of the topic already has it in its inbox and
skips it as a duplicate. Progress is kept in a consumer group of its own, so a second run
sends only what arrived since; a message sent twice is still processed once.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.bus import REDRIVE_HEADER

log = logging.getLogger(__name__)
GROUP = "qingshou-dlq-redrive"


@dataclass
class Redriven:
    sent: int = 0
    skipped: int = 0
    by_consumer: dict[str, int] = field(default_factory=dict)


def _headers(record_headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    return {str(key): bytes(value).decode(errors="replace") for key, value in record_headers or ()}


async def redrive(
    *,
    bootstrap_servers: str,
    dlq_topic: str,
    consumer: str | None = None,
    idle_s: float = 2.0,
    limit: int | None = None,
) -> Redriven:
    """Publish the dead letters of `dlq_topic` (only `consumer`'s, if given) back to their
    original topics, until no new one arrives for `idle_s` or `limit` were sent. Only what
    the DLQ held when the run started is sent: a message that fails again comes back to the
    DLQ, and re-sending that in the same run would loop (the next run picks it up)."""
    if not dlq_topic.endswith(".dlq"):
        raise ValueError(f"{dlq_topic!r} is not a dead-letter topic (<topic>.dlq)")
    reader = AIOKafkaConsumer(
        dlq_topic,
        bootstrap_servers=bootstrap_servers,
        group_id=GROUP,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # As the services' consumers (shared.settings): the broker holds a join for about half
        # the session timeout, and a member that vanished without leaving blocks the group as
        # long; 6 s here cost an operator 3 s a run and up to 6 s more after an aborted one.
        session_timeout_ms=2000,
        heartbeat_interval_ms=600,
    )
    # No idempotent producer: the embedded broker does not support it, and a message sent twice
    # is harmless (the consumer's inbox dedupes by event id).
    writer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    done = Redriven()
    await writer.start()
    await reader.start()
    try:
        await reader.topics()
        partitions = [
            TopicPartition(dlq_topic, p) for p in reader.partitions_for_topic(dlq_topic) or ()
        ]
        # What "held when the run started" means: below the end offsets read now, or written
        # before now (the embedded broker's end offset can trail the records it already has).
        ends = await reader.end_offsets(partitions) if partitions else {}
        started_ms = int(time.time() * 1000)
        while limit is None or done.sent < limit:
            batches = await reader.getmany(timeout_ms=int(idle_s * 1000))
            if not batches:
                break
            for tp, records in batches.items():
                end = ends.get(TopicPartition(tp.topic, tp.partition), 0)
                held = list(
                    itertools.takewhile(
                        lambda r: r.offset < end or r.timestamp <= started_ms,  # noqa: B023
                        records,
                    )
                )
                if len(held) < len(records):  # the rest arrived since the run started
                    reader.pause(tp)
                records = held
                if not records:
                    continue
                for record in records:
                    headers = _headers(record.headers)
                    owner = headers.get("dlq_consumer", "")
                    target = headers.get("dlq_original_topic") or dlq_topic.removesuffix(".dlq")
                    if consumer is not None and owner != consumer:
                        done.skipped += 1
                        continue
                    await writer.send_and_wait(
                        target,
                        value=record.value,
                        key=record.key,
                        headers=[
                            (REDRIVE_HEADER, owner.encode()),
                            ("dlq_redriven_from", f"{dlq_topic}@{record.offset}".encode()),
                        ],
                    )
                    done.sent += 1
                    done.by_consumer[owner] = done.by_consumer.get(owner, 0) + 1
                # Committed after the sends: a crash re-sends, never loses (the inbox dedupes).
                await reader.commit(
                    {TopicPartition(tp.topic, tp.partition): records[-1].offset + 1}
                )
    finally:
        await reader.stop()
        await writer.stop()
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.dlq")
    commands = parser.add_subparsers(dest="command", required=True)
    again = commands.add_parser("redrive", help="publish dead letters back to their topic")
    again.add_argument("dlq_topic", help="e.g. cases.events.dlq")
    again.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    again.add_argument("--consumer", help="only the dead letters of this consumer group")
    again.add_argument("--limit", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    done = asyncio.run(
        redrive(
            bootstrap_servers=args.bootstrap_servers,
            dlq_topic=args.dlq_topic,
            consumer=args.consumer,
            limit=args.limit,
        )
    )
    print(f"re-driven {done.sent} (skipped {done.skipped}): {done.by_consumer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
