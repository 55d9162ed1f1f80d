"""Data-subject requests on the cases database: the export of everything held about a debtor
(PIPL art. 45, GDPR art. 15) and erasure (PIPL art. 47, GDPR art. 17) of what no law obliges
the creditor to keep. The caller (the API route) owns the one transaction.

Erasure, in short:

- refused (409) while any case of the debtor is open: the debt is still being collected, a
  legal claim the law exempts from erasure (GDPR art. 17(3)(e));
- closed cases past the statutory retention of financial records (`Policy.
  financial_retention_days` after closure) are deleted with everything attached to them;
- closed cases inside it keep their financial records (balances, payments, promises, plans),
  the kind and dates of their holds and their structured timeline, keyed by the debtor id
  only (GDPR art. 17(3)(b), PIPL art. 47 para. 2: storage only until the period ends);
- everything personal goes, by overwriting the columns (not a flag): name, external ref,
  national id, phone, contact points, addresses, language, region, both blind indexes, the
  cases' model inputs, note texts, hold reasons, the free text of timeline entries, and the
  debtor inside every timeline snapshot and stored idempotent reply;
- one `debtor.erased` (outbox, the debtor's tenant) tells contact and compliance.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases.models import (
    Case,
    Debtor,
    Erasure,
    Hold,
    IdempotencyRecord,
    Note,
    Payment,
    Plan,
    Promise,
    TimelineEntry,
)
from services.cases.schemas import (
    CaseExport,
    DebtorExport,
    DebtorRecordOut,
    ErasureIn,
    ErasureOut,
    NoteOut,
    TimelineEntryExport,
)
from services.cases.service import (
    PRODUCER,
    Context,
    _debtor_out,
    _entry_out,
    _hold_out,
    _load_debtor,
    _payment_out,
    _promise_out,
    _record,
    case_out,
    plan_out,
)
from shared.contracts import DebtorErased, build_envelope
from shared.contracts.topics import CASES_EVENTS
from shared.http import Conflict
from shared.outbox import enqueue_event

#: Where the rest of a debtor's data is exported (no service calls another).
ELSEWHERE = [
    "contact: GET /v1/debtors/{debtor_id}/export (attempts, outcomes, holds, preferences)",
    "compliance: GET /v1/reports/export?case_id=… per case (evidence log, violations) and "
    "GET /v1/complaints?debtor_id=… (complaints)",
]

#: What an erasure overwrites, as named in the result and in `debtor.erased`.
ERASED_FIELDS = [
    "debtor.name",
    "debtor.external_ref",
    "debtor.national_id",
    "debtor.national_id_index",
    "debtor.phone",
    "debtor.phone_index",
    "debtor.contact_points",
    "debtor.addresses",
    "debtor.language",
    "debtor.region",
    "cases.risk_features",
    "holds.reason",
    "notes.text",
    "timeline.free_text",
    "timeline.snapshot.debtor",
    "idempotency_keys.response.debtor",
]

#: Timeline data members that hold free text typed by people (who may write anything).
FREE_TEXT_DATA = ("text", "reason")


class DebtStillCollected(Conflict):
    problem_type = "https://qingshou.dev/problems/erasure-open-case"


class AlreadyErased(Conflict):
    problem_type = "https://qingshou.dev/problems/already-erased"


class RequestRefReused(Conflict):
    problem_type = "https://qingshou.dev/problems/erasure-ref-reused"


# --- export -------------------------------------------------------------------------------------


async def _erasure_out(session: AsyncSession, *, debtor: Debtor) -> ErasureOut | None:
    stored = await session.scalar(
        sa.select(Erasure.result).where(
            Erasure.tenant == debtor.tenant, Erasure.debtor_id == debtor.id
        )
    )
    return None if stored is None else ErasureOut.model_validate(stored)


async def export_debtor(
    session: AsyncSession, *, debtor_id: uuid.UUID, ctx: Context
) -> DebtorExport:
    """Everything the cases service holds about the debtor, decrypted: the debtor record and
    every case with its holds, promises, plans, payments, notes and timeline (snapshots
    included). After an erasure: only what was retained. NotFound for another tenant's."""
    debtor = await _load_debtor(session, debtor_id, ctx=ctx)
    tenant = debtor.tenant
    cases = (
        await session.scalars(
            sa.select(Case)
            .where(Case.tenant == tenant, Case.debtor_id == debtor.id)
            .order_by(Case.opened_at, Case.id)
        )
    ).all()
    ids = [c.id for c in cases]

    async def rows(model: Any, *order: Any) -> dict[uuid.UUID, list[Any]]:
        found = (
            await session.scalars(
                sa.select(model)
                .where(model.tenant == tenant, model.case_id.in_(ids))
                .order_by(*order)
            )
        ).all()
        grouped: dict[uuid.UUID, list[Any]] = {case_id: [] for case_id in ids}
        for row in found:
            grouped[row.case_id].append(row)
        return grouped

    holds = await rows(Hold, Hold.created_at)
    promises = await rows(Promise, Promise.promised_date, Promise.installment_number)
    plans = await rows(Plan, Plan.created_at)
    payments = await rows(Payment, Payment.received_at)
    notes = await rows(Note, Note.created_at)
    timeline = await rows(TimelineEntry, TimelineEntry.seq)
    exported = []
    for case in cases:
        exported.append(
            CaseExport(
                case=case_out(case, debtor, today=ctx.today, policy=ctx.policy),
                holds=[_hold_out(h, ctx.now) for h in holds[case.id]],
                promises=[_promise_out(p) for p in promises[case.id] if p.plan_id is None],
                plans=[
                    plan_out(plan, [p for p in promises[case.id] if p.plan_id == plan.id])
                    for plan in plans[case.id]
                ],
                payments=[_payment_out(p, case, ctx) for p in payments[case.id]],
                notes=[
                    NoteOut(id=n.id, author=n.author, text=n.text, created_at=n.created_at)
                    for n in notes[case.id]
                ],
                timeline=[
                    TimelineEntryExport(
                        **_entry_out(e).model_dump(), snapshot=dict(e.snapshot or {})
                    )
                    for e in timeline[case.id]
                ],
            )
        )
    return DebtorExport(
        debtor=DebtorRecordOut(
            **_debtor_out(debtor).model_dump(),
            national_id=debtor.national_id,
            phone=debtor.phone,
            preferences_changed_at=debtor.preferences_changed_at,
            created_at=debtor.created_at,
        ),
        cases=exported,
        erasure=await _erasure_out(session, debtor=debtor),
        exported_at=ctx.now,
        elsewhere=ELSEWHERE,
    )


# --- erasure ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureResult:
    erasure: ErasureOut
    replayed: bool


def _legal_reasons(until: date) -> dict[str, str]:
    """What a retained closed case keeps, and why (GDPR art. 17(3)(b) and (e); PIPL art. 47
    para. 2: only storage and security until the statutory period ends)."""
    period = f"until {until.isoformat()}"
    return {
        "cases.balances": "statutory retention of financial records (accounting and anti-money-"
        f"laundering record keeping; GDPR art. 17(3)(b), PIPL art. 47) {period}",
        "payments": f"statutory retention of financial records (GDPR art. 17(3)(b)) {period}",
        "promises": "part of the financial record of the debt's repayment (GDPR art. "
        f"17(3)(b)) {period}",
        "plans": "settlements and waivers change what was owed: financial records (GDPR art. "
        f"17(3)(b)) {period}",
        "holds": "kind and dates only: proof that contact stopped when the law required "
        f"(defence of legal claims, GDPR art. 17(3)(e)) {period}",
        "timeline": "structured history of the retained records, free text removed (GDPR "
        f"art. 17(3)(b)/(e)) {period}",
        "debtor.preferences": "opt-outs and consents the past contacts relied on (defence of "
        f"legal claims, GDPR art. 17(3)(e)) {period}",
    }


def _without_person(document: dict[str, Any], *, erased_at: datetime) -> dict[str, Any]:
    """A case snapshot or stored reply (a CaseOut) without the debtor's personal data and the
    model inputs; balances, dates and preferences stay as they were then."""
    out = dict(document)
    if isinstance(out.get("debtor"), dict):
        out["debtor"] = {
            **out["debtor"],
            "name": "",
            "external_ref": None,
            "language": None,
            "region": None,
            "contact_points": [],
            "addresses": [],
            "erased_at": erased_at.isoformat(),
        }
    if "risk_features" in out:
        out["risk_features"] = {}
    return out


#: The summary of a timeline entry rebuilt from its structured data, for the kinds whose
#: summary carries text a person typed (a reason, a note).
_SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "note": lambda _d: "note (text erased)",
    "hold_placed": lambda d: f"{d.get('kind', '')} hold placed",
    "hold_released": lambda d: f"{d.get('kind', '')} hold released",
    "preferences": lambda d: (
        f"opted out of {', '.join(d.get('opted_out_channels') or []) or 'nothing'}; "
        f"consents {', '.join(d.get('consents') or []) or 'none'}"
    ),
    "stage_changed": lambda d: f"stage {d.get('from')} → {d.get('to')}",
    "closed": lambda d: f"closed as {d.get('closure')}",
    "score_overridden": lambda _d: "score overridden",
}


def _scrubbed_entry(kind: str, summary: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(summary, data) of a timeline entry without free text."""
    typed = [str(data[k]) for k in FREE_TEXT_DATA if data.get(k)]
    kept = {k: v for k, v in data.items() if k not in FREE_TEXT_DATA}
    if kind in _SUMMARIES:
        return _SUMMARIES[kind](data), kept
    for text in typed:
        if text in summary:
            # e.g. "assigned to <who> (<reason>)": the structured part stays.
            summary = summary.replace(f" ({text})", "").replace(f": {text}", "")
            summary = summary.replace(text, "…")
    return summary, kept


async def erasure_of(session: AsyncSession, *, request_ref: str, ctx: Context) -> Erasure | None:
    """The tenant's erasure with this request reference, if one was carried out."""
    found: Erasure | None = await session.scalar(
        sa.select(Erasure).where(Erasure.tenant == ctx.tenant, Erasure.request_ref == request_ref)
    )
    return found


def replay(erasure: Erasure, *, debtor_id: uuid.UUID) -> ErasureResult:
    """The stored result of an erasure asked for again under the same request reference."""
    if erasure.debtor_id != debtor_id:
        raise RequestRefReused(
            f"request_ref {erasure.request_ref!r} already erased debtor {erasure.debtor_id}; "
            "a DSR ticket names one debtor"
        )
    return ErasureResult(ErasureOut.model_validate(erasure.result), replayed=True)


async def erase_debtor(
    session: AsyncSession,
    *,
    debtor_id: uuid.UUID,
    command: ErasureIn,
    requested_by: str,
    ctx: Context,
) -> ErasureResult:
    """Carry out an erasure request in the caller's transaction (see the module docstring);
    idempotent by `request_ref`. 404 for another tenant's debtor; 409 for an open case, an
    erased debtor, or a request_ref already used for another debtor."""
    previous = await erasure_of(session, request_ref=command.request_ref, ctx=ctx)
    if previous is not None:
        return replay(previous, debtor_id=debtor_id)
    debtor = await _load_debtor(session, debtor_id, ctx=ctx, for_update=True)
    if debtor.erased_at is not None:
        raise AlreadyErased(
            f"debtor {debtor_id} was already erased at {debtor.erased_at.isoformat()}"
        )
    tenant, now = debtor.tenant, ctx.now
    cases = (
        await session.scalars(
            sa.select(Case)
            .where(Case.tenant == tenant, Case.debtor_id == debtor.id)
            .order_by(Case.opened_at, Case.id)
            .with_for_update()
        )
    ).all()
    still_open = [c for c in cases if c.status != "closed"]
    if still_open:
        raise DebtStillCollected(
            f"debtor {debtor_id} has {len(still_open)} open case(s) "
            f"({', '.join(str(c.id) for c in still_open)}): the debt is still being collected, "
            "and erasure does not apply to data needed for a legal claim (GDPR art. 17(3)(e), "
            "PIPL art. 47); close, settle or sell the case(s) first"
        )
    period = timedelta(days=ctx.policy.financial_retention_days)
    expired = [c for c in cases if (c.closed_at or c.updated_at or c.opened_at) + period <= now]
    kept = [c for c in cases if c not in expired]
    kept_ids = [c.id for c in kept]
    until = max(((c.closed_at or now) + period).date() for c in kept) if kept else None

    await _delete_cases(session, tenant=tenant, case_ids=[c.id for c in expired])
    await _deidentify_cases(session, tenant=tenant, cases=kept, erased_at=now)
    await _deidentify_replies(
        session, tenant=tenant, debtor_id=debtor.id, deleted={c.id for c in expired}, erased_at=now
    )
    debtor.name = ""
    debtor.external_ref = None  # the core system's id: a later intake makes a new debtor
    debtor.national_id = None
    debtor.national_id_index = None
    debtor.phone = None
    debtor.phone_index = None
    debtor.contact_points = []
    debtor.addresses = []
    debtor.language = None
    debtor.region = None
    debtor.erased_at = now
    retained = _legal_reasons(until) if until is not None else {}
    if not kept:
        # Nothing retained: nothing past is left to defend with them either.
        debtor.opted_out_channels = []
        debtor.consents = []
    result = ErasureOut(
        debtor_id=debtor.id,
        request_ref=command.request_ref,
        reason=command.reason,
        requested_by=requested_by,
        erased_at=now,
        erased_fields=list(ERASED_FIELDS)
        + (["debtor.preferences"] if not kept else [])
        + (["cases past retention (deleted whole)"] if expired else []),
        retained=retained,
        retained_until=until,
        retained_case_ids=kept_ids,
        deleted_case_ids=[c.id for c in expired],
    )
    session.add(
        Erasure(
            tenant=tenant,
            debtor_id=debtor.id,
            request_ref=command.request_ref,
            reason=command.reason,
            requested_by=requested_by,
            erased_at=now,
            result=result.model_dump(mode="json"),
        )
    )
    for case in kept:
        # The retained case's own history says what happened to it (no event per case: the
        # one `debtor.erased` below names them all).
        await _record(
            session,
            case=case,
            debtor=debtor,
            ctx=ctx,
            kind="erased",
            actor=requested_by,
            summary=f"debtor's personal data erased (request {command.request_ref})",
            data={"request_ref": command.request_ref, "retained_until": str(until)},
        )
    await enqueue_event(
        session,
        topic=CASES_EVENTS,
        envelope=build_envelope(
            DebtorErased(
                debtor_id=debtor.id,
                case_ids=[c.id for c in cases],
                request_ref=command.request_ref,
                erased_fields=result.erased_fields,
                retained=retained,
                erased_at=now,
            ),
            # Keyed like debtor.preferences_changed: per-debtor order for the consumers.
            key=str(debtor.id),
            producer=PRODUCER,
            correlation_id=ctx.correlation_id,
            causation_id=ctx.causation_id,
            tenant=tenant,
        ),
    )
    await session.flush()
    return ErasureResult(result, replayed=False)


async def _delete_cases(session: AsyncSession, *, tenant: str, case_ids: list[uuid.UUID]) -> None:
    """Closed cases past the retention of financial records: nothing obliges keeping them."""
    if not case_ids:
        return
    # Children first (no ON DELETE CASCADE in the schema); instalments before their plans.
    for model in (Promise, Plan, Payment, Hold, Note, TimelineEntry):
        await session.execute(
            sa.delete(model).where(model.tenant == tenant, model.case_id.in_(case_ids))
        )
    await session.execute(sa.delete(Case).where(Case.tenant == tenant, Case.id.in_(case_ids)))


async def _deidentify_cases(
    session: AsyncSession, *, tenant: str, cases: Sequence[Case], erased_at: datetime
) -> None:
    """Retained cases: the financial records stay; every personal or free-text field goes."""
    if not cases:
        return
    ids = [c.id for c in cases]
    for case in cases:
        case.risk_features = {}  # model inputs (income, age…): not a financial record
    await session.execute(
        sa.update(Hold).where(Hold.tenant == tenant, Hold.case_id.in_(ids)).values(reason="")
    )
    await session.execute(
        sa.update(Note).where(Note.tenant == tenant, Note.case_id.in_(ids)).values(text="")
    )
    entries = (
        await session.scalars(
            sa.select(TimelineEntry).where(
                TimelineEntry.tenant == tenant, TimelineEntry.case_id.in_(ids)
            )
        )
    ).all()
    for entry in entries:
        entry.summary, entry.data = _scrubbed_entry(entry.kind, entry.summary, dict(entry.data))
        # A new document (not an in-place change) so the column is written again, re-sealed:
        # the emptied contact points and addresses leave no token behind.
        entry.snapshot = _without_person(dict(entry.snapshot), erased_at=erased_at)


async def _deidentify_replies(
    session: AsyncSession,
    *,
    tenant: str,
    debtor_id: uuid.UUID,
    deleted: set[uuid.UUID],
    erased_at: datetime,
) -> None:
    """Stored Idempotency-Key replies (case intake) hold a copy of the debtor: those of
    deleted cases go, the others lose the personal part. Found by the debtor's id in the
    document's text (UUIDs do not occur by chance; the id itself is never encrypted)."""
    replies = (
        await session.scalars(
            sa.select(IdempotencyRecord).where(
                IdempotencyRecord.tenant == tenant,
                sa.cast(IdempotencyRecord.response, sa.Text).like(f"%{debtor_id}%"),
            )
        )
    ).all()
    for reply in replies:
        document = dict(reply.response)
        if str((document.get("debtor") or {}).get("id")) != str(debtor_id):
            continue
        if str(document.get("id")) in {str(i) for i in deleted}:
            await session.delete(reply)
        else:
            reply.response = _without_person(document, erased_at=erased_at)
