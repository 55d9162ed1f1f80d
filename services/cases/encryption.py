"""(Re-)encryption of the personal fields already stored: used by migration 0005 (rows written in
clear before field encryption) and by `python -m services.cases rotate-keys` (rows written under
an older key id). Both rewrite, batch by batch, every value that is clear text or under a key id
other than the active one, and fill in missing blind indexes.

Works on plain Core tables (no column types that encrypt by themselves) and a sync connection,
so Alembic can call it directly and the async command through `run_sync`. The contexts (AAD)
are the ones the model's column types use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shared.crypto import FieldCipher, is_token, map_paths, open_json, seal_json, token_key_id

SNAPSHOT_PATHS = ("debtor.contact_points", "debtor.addresses")

_DEBTORS = sa.table(
    "debtors",
    sa.column("id", sa.Uuid()),
    sa.column("national_id", sa.String()),
    sa.column("national_id_index", sa.String()),
    sa.column("phone", sa.String()),
    sa.column("phone_index", sa.String()),
    sa.column("contact_points", sa.JSON()),
    sa.column("addresses", sa.JSON()),
)
_TIMELINE = sa.table(
    "timeline", sa.column("seq", sa.BigInteger()), sa.column("snapshot", sa.JSON())
)
_IDEMPOTENCY = sa.table(
    "idempotency_keys",
    sa.column("tenant", sa.String()),
    sa.column("key", sa.String()),
    sa.column("response", sa.JSON()),
)


@dataclass
class Progress:
    scanned: dict[str, int] = field(default_factory=dict)
    rewritten: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, scanned: int, rewritten: int) -> None:
        self.scanned[table] = self.scanned.get(table, 0) + scanned
        self.rewritten[table] = self.rewritten.get(table, 0) + rewritten


def _stale(value: Any, cipher: FieldCipher) -> bool:
    """A stored value that must be (re-)encrypted: clear text, or a token of another key."""
    if value is None or value == "" or value == [] or value == {}:
        return False
    return not is_token(value) or token_key_id(value) != cipher.active_key_id


def _debtor_changes(row: Any, cipher: FieldCipher) -> dict[str, Any] | None:
    changes: dict[str, Any] = {}
    for name, kind in (("national_id", "national_id"), ("phone", "phone")):
        stored = getattr(row, name)
        context = f"debtors.{name}"
        clear = cipher.decrypt(stored, context=context) if stored else None
        if _stale(stored, cipher):
            changes[name] = cipher.encrypt(clear or "", context=context)
        index = cipher.blind_index(clear, kind=kind) if clear else None
        if getattr(row, f"{name}_index") != index:
            changes[f"{name}_index"] = index
    for name in ("contact_points", "addresses"):
        stored = getattr(row, name)
        if _stale(stored, cipher):
            context = f"debtors.{name}"
            clear = open_json(stored, context=context, cipher=cipher)
            changes[name] = seal_json(clear, context=context, cipher=cipher)
    return changes or None


def _document_changes(stored: Any, cipher: FieldCipher, *, context: str) -> tuple[bool, Any]:
    stale = False

    def check(value: Any, path: str) -> Any:
        nonlocal stale
        if not _stale(value, cipher):
            return value
        stale = True
        where = f"{context}.{path}"
        return seal_json(
            open_json(value, context=where, cipher=cipher), context=where, cipher=cipher
        )

    updated = map_paths(stored, SNAPSHOT_PATHS, check)
    return stale, updated


Step = Callable[[Connection, FieldCipher, Any, int], tuple[Any, int, int]]


def _debtors_step(
    conn: Connection, cipher: FieldCipher, after: Any, batch: int
) -> tuple[Any, int, int]:
    query = sa.select(_DEBTORS).order_by(_DEBTORS.c.id).limit(batch).with_for_update()
    if after is not None:
        query = query.where(_DEBTORS.c.id > after)
    rows = conn.execute(query).all()
    rewritten = 0
    for row in rows:
        changes = _debtor_changes(row, cipher)
        if changes:
            conn.execute(sa.update(_DEBTORS).where(_DEBTORS.c.id == row.id).values(**changes))
            rewritten += 1
    return (rows[-1].id if rows else None), len(rows), rewritten


def _documents_step(table: sa.TableClause, pks: tuple[str, ...], column: str) -> Step:
    """Re-encrypts one JSON column, paging by the table's whole primary key: two tenants may
    use the same idempotency key, and paging or updating by the key alone would skip one row
    at a page boundary or write one tenant's reply over the other's."""
    keys = [table.c[pk] for pk in pks]

    def step(conn: Connection, cipher: FieldCipher, after: Any, batch: int) -> tuple[Any, int, int]:
        query = sa.select(*keys, table.c[column]).order_by(*keys).limit(batch).with_for_update()
        if after is not None:
            query = query.where(sa.tuple_(*keys) > sa.tuple_(*after))
        rows = conn.execute(query).all()
        rewritten = 0
        for row in rows:
            *key_values, stored = row
            stale, updated = _document_changes(stored, cipher, context=f"{table.name}.{column}")
            if stale:
                match = sa.and_(*(k == v for k, v in zip(keys, key_values, strict=True)))
                conn.execute(sa.update(table).where(match).values({column: updated}))
                rewritten += 1
        return (tuple(rows[-1][: len(keys)]) if rows else None), len(rows), rewritten

    return step


STEPS: dict[str, Step] = {
    "debtors": _debtors_step,
    "timeline": _documents_step(_TIMELINE, ("seq",), "snapshot"),
    "idempotency_keys": _documents_step(_IDEMPOTENCY, ("tenant", "key"), "response"),
}
#: The same before migration 0006 gave idempotency keys a tenant (what migration 0005 runs).
STEPS_BEFORE_TENANTS: dict[str, Step] = {
    **STEPS,
    "idempotency_keys": _documents_step(_IDEMPOTENCY, ("key",), "response"),
}


def reencrypt_all(
    conn: Connection,
    cipher: FieldCipher,
    *,
    batch: int = 500,
    steps: dict[str, Step] = STEPS,
) -> Progress:
    """Every table on one connection (in the caller's transaction): the migration's way."""
    progress = Progress()
    for table, step in steps.items():
        after: Any = None
        while True:
            after, scanned, rewritten = step(conn, cipher, after, batch)
            progress.add(table, scanned, rewritten)
            if scanned < batch:
                break
    return progress


def decrypt_all(conn: Connection, cipher: FieldCipher, *, batch: int = 500) -> None:
    """Back to clear text (the downgrade of migration 0005)."""
    after: Any = None
    while True:
        query = sa.select(_DEBTORS).order_by(_DEBTORS.c.id).limit(batch)
        rows = conn.execute(query if after is None else query.where(_DEBTORS.c.id > after)).all()
        for row in rows:
            clear: dict[str, Any] = {}
            for name in ("national_id", "phone"):
                stored = getattr(row, name)
                clear[name] = (
                    cipher.decrypt(stored, context=f"debtors.{name}") if stored else stored
                )
            for name in ("contact_points", "addresses"):
                clear[name] = open_json(
                    getattr(row, name), context=f"debtors.{name}", cipher=cipher
                )
            conn.execute(sa.update(_DEBTORS).where(_DEBTORS.c.id == row.id).values(**clear))
        if len(rows) < batch:
            break
        after = rows[-1].id
    for table, pk, column in ((_TIMELINE, "seq", "snapshot"), (_IDEMPOTENCY, "key", "response")):
        after = None
        key = table.c[pk]
        while True:
            query = sa.select(key, table.c[column]).order_by(key).limit(batch)
            rows = conn.execute(query if after is None else query.where(key > after)).all()
            context = f"{table.name}.{column}"

            def opener(value: Any, path: str, context: str = context) -> Any:
                return open_json(value, context=f"{context}.{path}", cipher=cipher)

            for row in rows:
                opened = map_paths(row[1], SNAPSHOT_PATHS, opener)
                if opened != row[1]:
                    conn.execute(sa.update(table).where(key == row[0]).values({column: opened}))
            if len(rows) < batch:
                break
            after = rows[-1][0]
