"""What a data-subject erasure (`debtor.erased`, from cases) means for the evidence log.

The log already holds personal fields only as keyed hashes (domain.PERSONAL_FIELDS), so what
identifies the debtor there is the content of their entries taken together: contact times,
channels, holds, outcomes. Erasure removes that content the way retention does — each entry
keeps its hashes and its Merkle leaf, so `/v1/audit/verify`, every checkpoint and every
inclusion proof issued before still verify, and the removal is itself logged as a
`compliance.purged` (its causation id is the `debtor.erased` event) — except where a legal
claim needs it (GDPR art. 17(3)(e), PIPL art. 47):

- the entries of a case with an open complaint or with a violation found by the re-check are
  kept whole (the debtor's claim against the creditor, or the creditor's defence); entries
  keyed by the debtor (preferences) are kept when any of their cases is;
- the `debtor.erased` entry itself and earlier purge records are never purged (they are the
  proof the request was honoured and the purge accounted for);
- complaint records stay (category, dates, status: the complaint statistics regulators ask
  for) but closed complaints lose their text, its similarity signature and the status notes;
  an open complaint keeps its text until it is resolved (then retention purges it).

The re-check's own tables (known cases, holds, preferences, observed contacts, violations)
hold ids, channels, times and rule ids only, and stay: violations are legal-claim evidence.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.compliance import complaints
from services.compliance.models import (
    AuditEntry,
    Complaint,
    ComplaintChange,
    KnownCase,
    Violation,
)
from services.compliance.service import purge_entries
from shared.contracts import CompliancePurged, DebtorErased, Envelope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErasureApplied:
    """What the erasure did to compliance's records."""

    purge_id: uuid.UUID | None
    purged_entries: int
    held_case_ids: list[uuid.UUID]
    complaints_erased: int
    complaints_kept_open: int


async def _foreign(session: AsyncSession, *, tenant: str, event: DebtorErased) -> str | None:
    """Another tenant under which compliance knows the debtor or one of the named cases."""
    owner: str | None = await session.scalar(
        sa.select(KnownCase.tenant)
        .where(
            sa.or_(KnownCase.debtor_id == event.debtor_id, KnownCase.case_id.in_(event.case_ids)),
            KnownCase.tenant != tenant,
        )
        .limit(1)
    )
    return owner


async def apply_erasure(
    session: AsyncSession,
    *,
    event: DebtorErased,
    envelope: Envelope,
    seq: int,
    now: datetime,
    pii_key: bytes = b"",
) -> ErasureApplied | None:
    """Carry out `debtor.erased` (appended at `seq`) in the consumer's transaction; see the
    module docstring. None if it names another tenant's debtor or case: like every event, it
    stays in the log, but it changes nothing of another tenant's."""
    tenant = envelope.tenant
    owner = await _foreign(session, tenant=tenant, event=event)
    if owner is not None:
        log.warning(
            "debtor.erased %s of tenant %s names a debtor or case of tenant %s: logged, not "
            "applied",
            envelope.event_id,
            tenant,
            owner,
        )
        return None
    known = (
        await session.scalars(
            sa.select(KnownCase.case_id).where(
                KnownCase.tenant == tenant, KnownCase.debtor_id == event.debtor_id
            )
        )
    ).all()
    case_ids = {*event.case_ids, *known}
    about_debtor = sa.or_(Complaint.debtor_id == event.debtor_id, Complaint.case_id.in_(case_ids))
    open_statuses = [s.value for s in complaints.OPEN_STATUSES]
    open_complaints = (
        await session.execute(
            sa.select(Complaint.complaint_id, Complaint.case_id).where(
                Complaint.tenant == tenant, about_debtor, Complaint.status.in_(open_statuses)
            )
        )
    ).all()
    violated = (
        await session.scalars(
            sa.select(Violation.case_id).where(
                Violation.tenant == tenant,
                sa.or_(Violation.case_id.in_(case_ids), Violation.debtor_id == event.debtor_id),
            )
        )
    ).all()
    held = {case_id for _id, case_id in open_complaints if case_id is not None} | set(violated)
    # A complaint about the person (no case) holds everything of theirs.
    whole = any(case_id is None for _id, case_id in open_complaints)
    purgeable = {str(case_id) for case_id in case_ids - held} if not whole else set()
    if not held and not whole:
        purgeable.add(str(event.debtor_id))  # preferences, keyed by the debtor
    seqs = (
        (
            await session.scalars(
                sa.select(AuditEntry.seq)
                .where(
                    AuditEntry.tenant == tenant,
                    AuditEntry.case_key.in_(purgeable),
                    AuditEntry.purged_at.is_(None),
                    AuditEntry.seq < seq,
                    AuditEntry.event_type.not_in(
                        [CompliancePurged.event_type, DebtorErased.event_type]
                    ),
                )
                .order_by(AuditEntry.seq)
            )
        ).all()
        if purgeable
        else []
    )
    purge_id = uuid.uuid4() if seqs else None
    if purge_id is not None:
        await purge_entries(
            session,
            purge_id=purge_id,
            tenant=tenant,
            seqs=seqs,
            now=now,
            # Not an age: the data subject's request (the record's causation names it).
            retention_days=0,
            retention_days_by_kind={},
            correlation_id=envelope.correlation_id,
            causation_id=str(envelope.event_id),
            pii_key=pii_key,
            reason="erasure",
        )
    closed = sa.and_(
        Complaint.tenant == tenant, about_debtor, Complaint.status.not_in(open_statuses)
    )
    erased_ids = (await session.scalars(sa.select(Complaint.complaint_id).where(closed))).all()
    if erased_ids:
        await session.execute(
            sa.update(Complaint)
            .where(Complaint.tenant == tenant, Complaint.complaint_id.in_(erased_ids))
            .values(text="", signature=[])
        )
        await session.execute(
            sa.update(ComplaintChange)
            .where(ComplaintChange.tenant == tenant, ComplaintChange.complaint_id.in_(erased_ids))
            .values(note="")
        )
    return ErasureApplied(
        purge_id=purge_id,
        purged_entries=len(seqs),
        held_case_ids=sorted(held, key=str),
        complaints_erased=len(erased_ids),
        complaints_kept_open=len(open_complaints),
    )
