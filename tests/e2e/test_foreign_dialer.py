"""A dialer built on a client no one here wrote: confluent-kafka (librdkafka).

It consumes `contact.planned` in its own consumer group as plain JSON, then reports outcomes
back both over HTTP and as envelopes on `contact.outcomes`; contact records each once and the
compliance chain holds them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from shared.stack import LocalStack
from tests.auth_support import headers as auth_headers

pytestmark = pytest.mark.e2e
confluent_kafka = pytest.importorskip(
    "confluent_kafka", reason="the foreign-client dialer needs confluent-kafka"
)


def dialer_consume(
    bootstrap: str, case_ids: set[str], timeout_s: float
) -> dict[str, dict[str, Any]]:
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"foreign-dialer-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe(["contact.events"])
    planned: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not case_ids <= set(planned):
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            event = json.loads(message.value())
            headers = dict(message.headers() or [])
            if event["type"] == "contact.planned" and event["payload"]["case_id"] in case_ids:
                assert headers["event_type"] == b"contact.planned"
                assert headers["tenant"] == b"default"
                planned[event["payload"]["case_id"]] = event["payload"]
    finally:
        consumer.close()
    return planned


def dialer_produce(bootstrap: str, outcomes: list[dict[str, Any]]) -> None:
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"}
    )
    for payload in outcomes:
        envelope = {
            "event_id": str(uuid.uuid4()),
            "type": "contact.outcome",
            "version": 1,
            "occurred_at": payload["occurred_at"],
            "producer": "foreign-dialer",
            "key": payload["case_id"],
            "correlation_id": f"dialer-{payload['outcome_id']}",
            "causation_id": None,
            "payload": payload,
        }
        producer.produce(
            "contact.outcomes", key=payload["case_id"].encode(), value=json.dumps(envelope).encode()
        )
    assert producer.flush(15) == 0


async def test_a_librdkafka_dialer_reads_plans_and_reports_outcomes(stack: LocalStack) -> None:
    async with httpx.AsyncClient(headers=auth_headers(), timeout=15) as client:
        case_ids = []
        for i in range(6):
            response = await client.post(
                f"{stack.url('cases')}/v1/cases",
                json={
                    "account_id": f"FD-{uuid.uuid4().hex[:10]}",
                    "debtor": {
                        "name": f"D{i}",
                        "time_zone": "Asia/Shanghai",
                        "phone": f"+86139{i:08d}",
                    },
                    "product": "card",
                    "currency": "CNY",
                    "principal": "900",
                    "due_date": (date.today() - timedelta(days=10)).isoformat(),
                },
            )
            assert response.status_code == 201, response.text
            case_ids.append(response.json()["id"])
        planned = await asyncio.to_thread(
            dialer_consume, stack.broker.bootstrap_servers, set(case_ids), 60.0
        )
        assert set(planned) == set(case_ids)
        # The plan names no number; the dialer asks cases for it, with its own kind of key.
        assert "+86139" not in json.dumps(planned)
        dialer = auth_headers(kind="dialer")
        for i, cid in enumerate(case_ids):
            reach = await client.get(
                f"{stack.url('cases')}/v1/cases/{cid}/reach",
                params={"channel": "call"},
                headers=dialer,
            )
            assert reach.status_code == 200, reach.text
            assert [p["value"] for p in reach.json()["contact_points"]] == [f"+86139{i:08d}"]

        def outcome(payload: dict[str, Any]) -> dict[str, Any]:
            return {
                "outcome_id": str(uuid.uuid4()),
                "attempt_id": payload["attempt_id"],
                "case_id": payload["case_id"],
                "channel": payload["channel"],
                "result": "right_party_contact",
                "occurred_at": payload["planned_at"],
                "dialer": "foreign-dialer",
            }

        over_http = [outcome(planned[c]) for c in case_ids[:3]]
        over_kafka = [outcome(planned[c]) for c in case_ids[3:]]
        for body in over_http:
            response = await client.post(f"{stack.url('contact')}/v1/contact/outcomes", json=body)
            assert response.status_code == 201, response.text
            assert response.json()["flags"] == []
        await asyncio.to_thread(dialer_produce, stack.broker.bootstrap_servers, over_kafka)
        await asyncio.to_thread(
            dialer_produce, stack.broker.bootstrap_servers, over_kafka
        )  # resent

        deadline = time.monotonic() + 60
        while True:
            done = []
            for cid in case_ids:
                body = (await client.get(f"{stack.url('contact')}/v1/cases/{cid}/attempts")).json()
                done.append(body["attempts"][0]["status"] == "completed")
            if all(done) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert all(done), done
        for cid in case_ids:  # each outcome is in the evidence log exactly once
            while True:
                audit = (
                    await client.get(f"{stack.url('compliance')}/v1/audit/entries?case_id={cid}")
                ).json()
                types = [e["event_type"] for e in audit["entries"]]
                if types.count("contact.outcome_recorded") >= 1 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.3)
            assert types.count("contact.outcome_recorded") == 1, types
            assert types.count("contact.outcome") <= 2  # the dialer's own (sent twice) messages
        verify = (await client.get(f"{stack.url('compliance')}/v1/audit/verify")).json()
        assert verify["ok"] is True
