"""API keys: `python -m shared.keys create|rotate|revoke|list`.

Keys live in the file named by QS_AUTH_KEYS_FILE (default var/api-keys.json), which the four
services read on change. Each change is published to `admin.events` before the file is
replaced, so the compliance log holds every key ever issued, rotated or revoked, and who did
it; if the broker does not take the event, the file is left as it was and the command fails.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from aiokafka import AIOKafkaProducer

from shared.auth import AuthSettings, ClientKind, KeyRecord, KeyStore, check_scopes
from shared.contracts.envelope import TENANT_PATTERN, utc_now
from shared.contracts.events import ApiKeyCreated, ApiKeyRevoked, EventPayload, build_envelope
from shared.contracts.topics import ADMIN_EVENTS

_DURATION = re.compile(r"^(\d+)([dhm])$")


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h` or `30m`."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90d, 12h or 30m")
    amount, unit = int(match[1]), match[2]
    return {
        "d": timedelta(days=amount),
        "h": timedelta(hours=amount),
        "m": timedelta(minutes=amount),
    }[unit]


def _tenant(text: str) -> str:
    if re.fullmatch(TENANT_PATTERN, text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a tenant (lower-case slug)")
    return text


async def publish(
    *, bootstrap_servers: str, tenant: str, payload: EventPayload, key: str, operator: str
) -> None:
    """Send one admin event and wait for the broker's acknowledgement."""
    envelope = build_envelope(
        payload,
        key=key,
        producer="keys",
        correlation_id=f"keys-{uuid.uuid4()}",
        tenant=tenant,
        actor=f"operator:{operator}",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", request_timeout_ms=10_000
    )
    try:
        await producer.start()
        await producer.send_and_wait(ADMIN_EVENTS, value=envelope.to_bytes(), key=key.encode())
    finally:
        await producer.stop()


def create_key(
    *,
    store: KeyStore,
    client: str,
    kind: ClientKind,
    tenant: str,
    expires_in: timedelta | None,
    scopes: Sequence[str] | None,
    subject: str | None,
    operator: str,
    bootstrap_servers: str | None,
    replaces: str | None = None,
    grace: timedelta = timedelta(hours=24),
    now: datetime | None = None,
) -> tuple[str, KeyRecord]:
    """Issue a key (optionally rotating `replaces`, which stays valid for `grace`); publish
    `admin.key_created` unless `bootstrap_servers` is None (bootstrap before any broker)."""
    now = now or utc_now()
    parsed = check_scopes(scopes) if scopes is not None else None
    old: KeyRecord | None = None
    if replaces is not None:
        old = store.get(replaces)
        client, kind, tenant, subject = old.client, old.kind, old.tenant, old.subject
        if parsed is None and old.scopes is not None:
            parsed = list(old.scopes)
    token, record = store.create(
        client=client,
        kind=kind,
        tenant=tenant,
        now=now,
        expires_in=expires_in,
        scopes=parsed,
        subject=subject,
        commit=False,
    )
    changed = [record]
    if old is not None:
        old_expiry = now + grace
        if old.expires_at is not None:
            old_expiry = min(old_expiry, old.expires_at)
        changed.append(
            old.model_copy(update={"expires_at": old_expiry, "rotated_to": record.key_id})
        )
    if bootstrap_servers is not None:
        event = ApiKeyCreated(
            key_id=record.key_id,
            client=record.client,
            kind=record.kind.value,
            scopes=sorted(record.granted()),
            subject=record.subject,
            expires_at=record.expires_at,
            replaces=replaces,
            replaced_key_expires_at=changed[1].expires_at if old is not None else None,
            created_by=operator,
            created_at=now,
        )
        asyncio.run(
            publish(
                bootstrap_servers=bootstrap_servers,
                tenant=record.tenant,
                payload=event,
                key=record.key_id,
                operator=operator,
            )
        )
    store.save(*changed)
    return token, record


def revoke_key(
    *,
    store: KeyStore,
    key_id: str,
    reason: str,
    operator: str,
    bootstrap_servers: str | None,
    now: datetime | None = None,
) -> KeyRecord:
    """Revoke a key from now on; publish `admin.key_revoked`."""
    now = now or utc_now()
    record = store.get(key_id)
    revoked = record.model_copy(update={"revoked_at": now})
    if bootstrap_servers is not None:
        event = ApiKeyRevoked(
            key_id=key_id, client=record.client, revoked_by=operator, reason=reason, revoked_at=now
        )
        asyncio.run(
            publish(
                bootstrap_servers=bootstrap_servers,
                tenant=record.tenant,
                payload=event,
                key=key_id,
                operator=operator,
            )
        )
    store.save(revoked)
    return revoked


def demo_keys(
    *, store: KeyStore, tenant: str, bootstrap_servers: str | None, operator: str
) -> dict[str, str]:
    """One key per client kind for a local demo (`make run`), each published as an admin event.
    Returns kind -> token; the tokens exist nowhere else, so the caller must show them."""
    tokens: dict[str, str] = {}
    for kind in ClientKind:
        token, _ = create_key(
            store=store,
            client=f"demo-{kind.value}",
            kind=kind,
            tenant=tenant,
            expires_in=timedelta(days=30),
            scopes=None,
            subject=None,
            operator=operator,
            bootstrap_servers=bootstrap_servers,
        )
        tokens[kind.value] = token
    return tokens


def main(argv: list[str] | None = None) -> int:
    settings = AuthSettings()
    parser = argparse.ArgumentParser(prog="python -m shared.keys", description=__doc__)
    parser.add_argument("--keys-file", default=settings.keys_file)
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument(
        "--no-publish",
        action="store_true",
        help="do not publish the admin event (only to bootstrap the first keys without a broker)",
    )
    parser.add_argument("--operator", default=getpass.getuser())
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="issue a key; prints the token once")
    create.add_argument("--client", required=True, help="e.g. crm-main, dialer-genesys")
    create.add_argument("--kind", required=True, choices=[k.value for k in ClientKind])
    create.add_argument("--tenant", required=True, type=_tenant)
    create.add_argument("--expires-in", type=parse_duration, default=parse_duration("90d"))
    create.add_argument("--scope", action="append", help="instead of the kind's default scopes")
    create.add_argument("--subject", help="the collector id a collector key stands for")
    rotate = commands.add_parser(
        "rotate", help="issue a successor; the old key lapses after --grace"
    )
    rotate.add_argument("key_id")
    rotate.add_argument("--grace", type=parse_duration, default=parse_duration("24h"))
    rotate.add_argument("--expires-in", type=parse_duration, default=parse_duration("90d"))
    revoke = commands.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("key_id")
    revoke.add_argument("--reason", required=True)
    commands.add_parser("list", help="keys with their state (never secrets)")
    args = parser.parse_args(argv)
    store = KeyStore(args.keys_file)
    servers = None if args.no_publish else args.bootstrap_servers
    try:
        if args.command == "create":
            token, record = create_key(
                store=store,
                client=args.client,
                kind=ClientKind(args.kind),
                tenant=args.tenant,
                expires_in=args.expires_in,
                scopes=args.scope,
                subject=args.subject,
                operator=args.operator,
                bootstrap_servers=servers,
            )
            print(f"key {record.key_id} for {record.client} ({record.kind.value}, {record.tenant})")
            print(token)
        elif args.command == "rotate":
            token, record = create_key(
                store=store,
                client="",
                kind=ClientKind.CRM,
                tenant="",
                expires_in=args.expires_in,
                scopes=None,
                subject=None,
                operator=args.operator,
                bootstrap_servers=servers,
                replaces=args.key_id,
                grace=args.grace,
            )
            print(f"key {record.key_id} replaces {args.key_id} (which lapses in {args.grace})")
            print(token)
        elif args.command == "revoke":
            revoke_key(
                store=store,
                key_id=args.key_id,
                reason=args.reason,
                operator=args.operator,
                bootstrap_servers=servers,
            )
            print(f"key {args.key_id} revoked")
        else:
            now = utc_now()
            for record in store.records().values():
                state = "active"
                if record.revoked_at is not None and record.revoked_at <= now:
                    state = "revoked"
                elif record.expires_at is not None and record.expires_at <= now:
                    state = "expired"
                expiry = record.expires_at.isoformat() if record.expires_at else "never"
                print(
                    f"{record.key_id}  {state:<8} {record.kind.value:<9} {record.tenant:<12} "
                    f"{record.client}  expires {expiry}"
                )
    except KeyError as exc:
        print(f"no key {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
