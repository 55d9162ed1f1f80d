"""Issuing, rotating and revoking API keys are audited: each change reaches `admin.events` on a
real broker before the key file changes, and no event carries a secret."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from shared.auth import ClientKind, KeyStore
from shared.broker import EmbeddedBroker, free_port
from shared.contracts.topics import ADMIN_EVENTS
from shared.keys import create_key, revoke_key
from tests.kafka_helpers import read_topic


def test_key_changes_are_published_with_operator_and_without_secrets(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    store = KeyStore(tmp_path / "keys.json")
    servers = broker.bootstrap_servers
    token, first = create_key(
        store=store,
        client="crm-main",
        kind=ClientKind.CRM,
        tenant="acme",
        expires_in=timedelta(days=90),
        scopes=None,
        subject=None,
        operator="li.na",
        bootstrap_servers=servers,
    )
    rotated_token, second = create_key(
        store=store,
        client="",
        kind=ClientKind.CRM,
        tenant="",
        expires_in=timedelta(days=90),
        scopes=None,
        subject=None,
        operator="li.na",
        bootstrap_servers=servers,
        replaces=first.key_id,
    )
    revoke_key(
        store=store,
        key_id=first.key_id,
        reason="rotated",
        operator="wang.fang",
        bootstrap_servers=servers,
    )
    # Partitioned by key id, so only each key's own events are ordered.
    events = sorted(
        asyncio.run(read_topic(servers, ADMIN_EVENTS, until=3)), key=lambda e: e["occurred_at"]
    )
    assert [e["type"] for e in events] == [
        "admin.key_created",
        "admin.key_created",
        "admin.key_revoked",
    ]
    assert {e["tenant"] for e in events} == {"acme"}
    assert [e["actor"] for e in events] == ["operator:li.na"] * 2 + ["operator:wang.fang"]
    assert events[0]["payload"]["key_id"] == first.key_id
    assert events[1]["payload"]["replaces"] == first.key_id
    assert events[1]["payload"]["key_id"] == second.key_id
    assert "cases:write" in events[0]["payload"]["scopes"]
    published = repr(events)
    for secret in (token, rotated_token, first.secret_sha256, second.secret_sha256):
        assert secret.rsplit("_", 1)[-1] not in published


def test_no_key_is_issued_when_the_event_cannot_be_published(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    with pytest.raises(Exception):  # noqa: B017  (aiokafka's connection error)
        create_key(
            store=store,
            client="crm-main",
            kind=ClientKind.CRM,
            tenant="acme",
            expires_in=None,
            scopes=None,
            subject=None,
            operator="li.na",
            bootstrap_servers=f"127.0.0.1:{free_port()}",
        )
    assert store.records() == {}
