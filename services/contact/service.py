"""Contact use cases: learn about cases, plan lawful attempts. The caller owns the transaction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.contact import domain
from services.contact.models import (
    ContactAttempt,
    ContactCase,
    ContactHold,
    ContactOutcomeRecord,
    ContactPolicy,
    ContactPreferences,
)
from services.contact.schemas import (
    AttemptOut,
    CaseAttempts,
    ContactDebtorExport,
    DecisionIn,
    DecisionOut,
    HoldKnownOut,
    KnownCaseOut,
    ObjectionOut,
    OutcomeOut,
    PolicyIn,
    PolicyOut,
    PreferencesKnownOut,
    SimulatedAttempt,
    SimulationOut,
)
from shared.contracts import (
    CaseClosed,
    CaseOpened,
    CaseScored,
    ContactBlocked,
    ContactCancelled,
    ContactEscalated,
    ContactOutcome,
    ContactOutcomeRecorded,
    ContactPlanned,
    ContactPolicyChanged,
    DebtorErased,
    DebtorPreferencesChanged,
    Envelope,
    EventPayload,
    HoldPlaced,
    HoldReleased,
    OutcomeResult,
    build_envelope,
)
from shared.contracts.topics import CONTACT_EVENTS
from shared.http import DomainError, NotFound
from shared.metrics import record_contact_decision
from shared.outbox import enqueue_event
from shared.rulepacks import engine as rules

PRODUCER = "contact"
log = logging.getLogger(__name__)


class ForeignRecord(NotFound):
    """A record of another tenant, named by id. To an API caller it does not exist (the same
    404 as a missing one); an event naming it is never applied (the handlers dead-letter it,
    saying `why`)."""

    def __init__(self, detail: str, *, why: str) -> None:
        super().__init__(detail)
        self.why = why


Owned = TypeVar("Owned", ContactCase, ContactAttempt, ContactHold, ContactPreferences)


def _own(record: Owned | None, *, tenant: str, missing: str) -> Owned | None:
    """`record` if it is the tenant's, None if there is none; ForeignRecord (detail `missing`)
    if it is another tenant's. Records are fetched by their globally unique ids, so this is
    the tenant filter of every lookup by id."""
    if record is not None and record.tenant != tenant:
        raise ForeignRecord(
            missing, why=f"{missing}: the {record.__tablename__} row is of another tenant"
        )
    return record


async def _own_debtor(session: AsyncSession, *, debtor_id: uuid.UUID, tenant: str) -> None:
    """ForeignRecord if contact knows this debtor from another tenant's cases."""
    elsewhere = await session.scalar(
        sa.select(ContactCase.case_id)
        .where(ContactCase.debtor_id == debtor_id, ContactCase.tenant != tenant)
        .limit(1)
    )
    if elsewhere is not None:
        raise ForeignRecord(
            f"contact has no debtor {debtor_id}",
            why=f"debtor {debtor_id} is a debtor of another tenant",
        )


async def _publish(
    session: AsyncSession,
    payload: EventPayload,
    *,
    tenant: str,
    key: str,
    correlation_id: str,
    causation_id: str | None = None,
) -> None:
    """Stage one of contact's events on `contact.events` (published by the outbox relay);
    dialers filter them by the envelope's tenant."""
    await enqueue_event(
        session,
        topic=CONTACT_EVENTS,
        envelope=build_envelope(
            payload,
            key=key,
            producer=PRODUCER,
            correlation_id=correlation_id,
            tenant=tenant,
            causation_id=causation_id,
        ),
    )


async def _known_case(
    session: AsyncSession, *, case_id: uuid.UUID, tenant: str, lock: bool = False
) -> ContactCase | None:
    """The tenant's case, None if contact has not heard of it; ForeignRecord if it is
    another tenant's."""
    return _own(
        await session.get(ContactCase, case_id, with_for_update=lock),
        tenant=tenant,
        missing=f"contact has no case {case_id}",
    )


async def _contact_case(
    session: AsyncSession, *, case_id: uuid.UUID, tenant: str, now: datetime
) -> ContactCase:
    found = await _known_case(session, case_id=case_id, tenant=tenant, lock=True)
    if found is None:
        found = ContactCase(case_id=case_id, tenant=tenant, updated_at=now)
        session.add(found)
    return found


async def record_case_opened(
    session: AsyncSession,
    *,
    event: CaseOpened,
    envelope: Envelope,
    now: datetime,
    packs: tuple[str, ...] = ("cn",),
) -> ContactAttempt | None:
    """Remember the debtor's zone and DPD; plan the first attempt if the score is already in.
    Everything is recorded under the envelope's tenant."""
    tenant = envelope.tenant
    await _own_debtor(session, debtor_id=event.debtor_id, tenant=tenant)
    if event.opted_out_channels or event.consents:
        await _store_preferences(
            session,
            tenant=tenant,
            debtor_id=event.debtor_id,
            opted_out=event.opted_out_channels,
            consents=event.consents,
            changed_at=event.opened_at,
        )
    case = await _contact_case(session, case_id=event.case_id, tenant=tenant, now=now)
    case.debtor_id = event.debtor_id
    case.time_zone = event.debtor_time_zone
    if case.days_past_due is None:
        case.days_past_due = event.days_past_due
    case.updated_at = now
    return await _plan_first_attempt(
        session,
        case=case,
        correlation_id=envelope.correlation_id,
        causation_id=str(envelope.event_id),
        now=now,
        packs=packs,
    )


async def record_case_scored(
    session: AsyncSession,
    *,
    event: CaseScored,
    envelope: Envelope,
    now: datetime,
    packs: tuple[str, ...] = ("cn",),
) -> ContactAttempt | None:
    """Keep the latest score; plan the first attempt if the case itself is already known (the
    envelope's tenant)."""
    case = await _contact_case(session, case_id=event.case_id, tenant=envelope.tenant, now=now)
    case.priority = event.priority
    case.risk_tier = event.risk_tier.value
    case.days_past_due = event.days_past_due
    case.scored_event_id = str(envelope.event_id)
    case.treatment = event.treatment
    case.updated_at = now
    return await _plan_first_attempt(
        session,
        case=case,
        correlation_id=envelope.correlation_id,
        causation_id=str(envelope.event_id),
        now=now,
        packs=packs,
    )


AGITATED_IN_A_ROW = 3
#: Outcomes after which the planner tries again by itself; the others wait for a person, a
#: promise date, or the cases service (a dispute becomes a hold there).
RETRY_LATER = frozenset({OutcomeResult.NO_ANSWER, OutcomeResult.BUSY})


async def active_holds(
    session: AsyncSession,
    *,
    tenant: str,
    debtor_id: uuid.UUID,
    case_id: uuid.UUID | None,
    at: datetime,
) -> frozenset[rules.Hold]:
    """Holds in force at `at`: the debtor's person-level ones and the case's own."""
    rows = (
        await session.scalars(
            sa.select(ContactHold).where(
                ContactHold.tenant == tenant,
                ContactHold.debtor_id == debtor_id,
                ContactHold.released_at.is_(None),
                ContactHold.starts_at <= at,
                sa.or_(ContactHold.ends_at.is_(None), ContactHold.ends_at > at),
            )
        )
    ).all()
    return frozenset(
        rules.Hold(h.kind) for h in rows if h.kind in rules.PERSON_HOLDS or h.case_id == case_id
    )


WORKPLACE = "workplace"  # an opt-out of a place, not a channel (US-WORKPLACE)


async def debtor_state(
    session: AsyncSession,
    *,
    tenant: str,
    debtor_id: uuid.UUID,
    case_id: uuid.UUID | None = None,
    at: datetime | None = None,
) -> rules.DebtorState:
    """What the rules need to know of a debtor, from contact's own records: every reported
    outcome, whichever agency or dialer carried it out (the one count). Holds, opt-outs and
    consents arrive with the case events of the next steps."""
    outcomes = (
        await session.scalars(
            sa.select(ContactOutcomeRecord)
            .where(
                ContactOutcomeRecord.tenant == tenant, ContactOutcomeRecord.debtor_id == debtor_id
            )
            .order_by(ContactOutcomeRecord.occurred_at)
        )
    ).all()
    history = tuple(
        rules.attempt_from_outcome(
            at=o.occurred_at,
            channel=o.channel,
            debt_id=str(o.case_id),
            result=o.result,
            agency=o.agency,
        )
        for o in outcomes
    )
    holds = (
        await active_holds(session, tenant=tenant, debtor_id=debtor_id, case_id=case_id, at=at)
        if at is not None
        else frozenset()
    )
    preferences = await session.get(ContactPreferences, debtor_id)
    if preferences is None or preferences.tenant != tenant:
        return rules.DebtorState(history=history, holds=holds)
    return rules.DebtorState(
        history=history,
        holds=holds,
        opted_out=frozenset(
            domain.Channel(c) for c in preferences.opted_out_channels if c != WORKPLACE
        ),
        no_workplace=WORKPLACE in preferences.opted_out_channels,
        consents=frozenset(preferences.consents),
    )


async def record_outcome(
    session: AsyncSession,
    *,
    outcome: ContactOutcome,
    tenant: str,
    correlation_id: str,
    now: datetime,
    packs: tuple[str, ...],
) -> tuple[list[str], bool]:
    """Store an outcome once (by the dialer's id, within the tenant) and flag what compliance
    must look at; never drop one. Returns (flags, duplicate). ForeignRecord if the attempt or
    the case is another tenant's: nothing is stored."""
    existing = await session.get(
        ContactOutcomeRecord, {"tenant": tenant, "outcome_id": outcome.outcome_id}
    )
    if existing is not None:
        return list(existing.flags), True
    attempt = (
        _own(
            await session.get(ContactAttempt, outcome.attempt_id),
            tenant=tenant,
            missing=f"no contact attempt {outcome.attempt_id}",
        )
        if outcome.attempt_id
        else None
    )
    case = await _known_case(session, case_id=outcome.case_id, tenant=tenant)
    flags: list[str] = []
    if attempt is None:
        flags.append("never_planned")
    elif attempt.case_id != outcome.case_id:
        flags.append("attempt_of_another_case")
    elif outcome.occurred_at < attempt.planned_at - timedelta(minutes=1):
        flags.append("before_planned_slot")
    zone = (case.time_zone if case else None) or (attempt.time_zone if attempt else None)
    if zone is None:
        flags.append("unknown_case")
    else:
        active_packs, active_policy = await policy_in_force(
            session, tenant=tenant, default_packs=packs
        )
        hours = {r for r in rules.hours_rule_ids(active_packs).split(",") if r} | {"POLICY-HOURS"}
        verdict = rules.decide(
            rules.DecisionRequest(
                debtor_id=str(case.debtor_id if case else attempt.debtor_id if attempt else ""),
                debt_id=str(outcome.case_id),
                channel=domain.Channel(outcome.channel),
                at=outcome.occurred_at,
                zones=(zone,),
            ),
            rules.DebtorState(),
            packs=active_packs,
            policy=active_policy,
        )
        flags.extend(
            f"forbidden_time:{o.rule_id}" for o in verdict.objections if o.rule_id in hours
        )
    debtor_id = case.debtor_id if case else attempt.debtor_id if attempt else None
    session.add(
        ContactOutcomeRecord(
            tenant=tenant,
            outcome_id=outcome.outcome_id,
            attempt_id=outcome.attempt_id,
            case_id=outcome.case_id,
            debtor_id=debtor_id,
            channel=outcome.channel,
            result=outcome.result.value,
            occurred_at=outcome.occurred_at,
            automated=outcome.automated,
            agency=outcome.agency,
            dialer=outcome.dialer,
            flags=flags,
            details=outcome.model_dump(
                mode="json", include={"promised_amount", "promised_date", "duration_seconds"}
            ),
            received_at=now,
        )
    )
    if attempt is not None and attempt.case_id == outcome.case_id:
        attempt.status = "completed"
        attempt.result = outcome.result.value
    await session.flush()
    await _publish(
        session,
        ContactOutcomeRecorded(
            outcome_id=outcome.outcome_id,
            attempt_id=outcome.attempt_id,
            case_id=outcome.case_id,
            debtor_id=debtor_id,
            channel=outcome.channel,
            result=outcome.result,
            occurred_at=outcome.occurred_at,
            flags=flags,
            promised_amount=outcome.promised_amount,
            promised_date=outcome.promised_date,
            agency=outcome.agency,
        ),
        tenant=tenant,
        key=str(outcome.case_id),
        correlation_id=correlation_id,
    )
    if case is not None and not case.human_only and await _agitated_in_a_row(session, case=case):
        case.human_only = True
        await _publish(
            session,
            ContactEscalated(
                case_id=case.case_id,
                reason=f"{AGITATED_IN_A_ROW} agitated outcomes in a row on automated channels",
                escalated_at=now,
            ),
            tenant=tenant,
            key=str(case.case_id),
            correlation_id=correlation_id,
        )
    if (
        case is not None
        and outcome.result in RETRY_LATER
        and attempt is not None
        and attempt.case_id == case.case_id
    ):
        channel = domain.Channel(outcome.channel)
        await _plan_first_attempt(
            session,
            case=case,
            correlation_id=correlation_id,
            causation_id=str(outcome.outcome_id),
            now=now,
            packs=packs,
            not_before=outcome.occurred_at + domain.RETRY_AFTER[channel],
        )
    return flags, False


async def _agitated_in_a_row(session: AsyncSession, *, case: ContactCase) -> bool:
    last = (
        await session.scalars(
            sa.select(ContactOutcomeRecord.result)
            .where(
                ContactOutcomeRecord.tenant == case.tenant,
                ContactOutcomeRecord.case_id == case.case_id,
                ContactOutcomeRecord.automated.is_(True),
            )
            .order_by(ContactOutcomeRecord.occurred_at.desc())
            .limit(AGITATED_IN_A_ROW)
        )
    ).all()
    return len(last) == AGITATED_IN_A_ROW and all(r == OutcomeResult.AGITATED for r in last)


SEGMENT_WINDOW = timedelta(days=90)
SEGMENT_SAMPLE = 5000


def _count_by_hour(
    stats: domain.HourStats, occurred_at: datetime, result: str, zone: ZoneInfo
) -> None:
    hour = occurred_at.astimezone(zone).hour
    attempts, connected = stats.get(hour, (0, 0))
    stats[hour] = (attempts + 1, connected + (OutcomeResult(result) in rules.CONNECTED_RESULTS))


async def segment_answer_stats(
    session: AsyncSession,
    *,
    case: ContactCase,
    channel: domain.Channel,
    now: datetime,
) -> list[domain.HourStats]:
    """(attempts, connected) by local hour at three nested levels, broadest first: debtors in
    the same zone, those of them in the same risk tier and DPD bucket, and this debtor's own
    outcomes. The planner pools them (`domain.layered_answer_rate`). Only the case's tenant's
    outcomes count: one creditor's answer rates never shape another's plans."""
    assert case.time_zone is not None
    zone = ZoneInfo(case.time_zone)
    rows = (
        await session.execute(
            sa.select(
                ContactOutcomeRecord.occurred_at,
                ContactOutcomeRecord.result,
                ContactCase.risk_tier,
                ContactCase.days_past_due,
            )
            .join(ContactCase, ContactCase.case_id == ContactOutcomeRecord.case_id)
            .where(
                ContactOutcomeRecord.tenant == case.tenant,
                ContactCase.tenant == case.tenant,
                ContactCase.time_zone == case.time_zone,
                ContactOutcomeRecord.channel == channel.value,
                ContactOutcomeRecord.occurred_at >= now - SEGMENT_WINDOW,
            )
            .order_by(ContactOutcomeRecord.occurred_at.desc())
            .limit(SEGMENT_SAMPLE)
        )
    ).all()
    in_zone: domain.HourStats = {}
    in_segment: domain.HourStats = {}
    bucket = domain.dpd_bucket(case.days_past_due)
    for occurred_at, result, tier, days_past_due in rows:
        _count_by_hour(in_zone, occurred_at, result, zone)
        if tier == case.risk_tier and domain.dpd_bucket(days_past_due) == bucket:
            _count_by_hour(in_segment, occurred_at, result, zone)
    own: domain.HourStats = {}
    if case.debtor_id is not None:
        for occurred_at, result in (
            await session.execute(
                sa.select(ContactOutcomeRecord.occurred_at, ContactOutcomeRecord.result)
                .where(
                    ContactOutcomeRecord.tenant == case.tenant,
                    ContactOutcomeRecord.debtor_id == case.debtor_id,
                    ContactOutcomeRecord.channel == channel.value,
                    ContactOutcomeRecord.occurred_at >= now - SEGMENT_WINDOW,
                )
                .order_by(ContactOutcomeRecord.occurred_at.desc())
                .limit(SEGMENT_SAMPLE)
            )
        ).all():
            _count_by_hour(own, occurred_at, result, zone)
    return [in_zone, in_segment, own]


async def _best_lawful_slot(
    session: AsyncSession,
    *,
    earliest: datetime,
    case: ContactCase,
    channel: domain.Channel,
    state: rules.DebtorState,
    packs: tuple[str, ...],
    policy: rules.Policy,
) -> datetime:
    """The earliest lawful slot, or a lawful whole hour of the next day when this segment
    answers clearly more then (every candidate is re-checked by the engine)."""
    assert case.time_zone is not None
    assert case.debtor_id is not None
    candidates = [earliest]
    start = earliest.replace(minute=0, second=0, microsecond=0)
    for hours in range(1, 25):
        slot = start + timedelta(hours=hours)
        verdict = rules.decide(
            rules.DecisionRequest(
                debtor_id=str(case.debtor_id),
                debt_id=str(case.case_id),
                channel=channel,
                at=slot,
                zones=(case.time_zone,),
            ),
            state,
            packs=packs,
            policy=policy,
        )
        if verdict.allowed:
            candidates.append(slot)
    levels = await segment_answer_stats(session, case=case, channel=channel, now=earliest)
    return domain.best_slot(
        candidates=candidates, zone=ZoneInfo(case.time_zone), channel=channel, levels=levels
    )


async def _plan_first_attempt(
    session: AsyncSession,
    *,
    case: ContactCase,
    correlation_id: str,
    causation_id: str | None,
    now: datetime,
    packs: tuple[str, ...],
    not_before: datetime | None = None,
) -> ContactAttempt | None:
    if (
        case.time_zone is None
        or case.debtor_id is None
        or case.priority is None
        or case.days_past_due is None
    ):
        return None  # the other half (case or score) has not arrived yet
    if case.closed_at is not None:
        return None  # nothing is collected on a closed case
    active = await session.scalar(
        sa.select(ContactAttempt.id)
        .where(
            ContactAttempt.tenant == case.tenant,
            ContactAttempt.case_id == case.case_id,
            ContactAttempt.status.in_(("planned", "leased")),
        )
        .limit(1)
    )
    if active is not None:
        return None  # one live attempt per case at a time
    previous = await session.scalar(
        sa.select(sa.func.max(ContactAttempt.attempt_no)).where(
            ContactAttempt.tenant == case.tenant, ContactAttempt.case_id == case.case_id
        )
    )
    zone = ZoneInfo(case.time_zone)
    first = domain.contact_for(
        treatment=case.treatment, days_past_due=case.days_past_due, human_only=case.human_only
    )
    in_force = await current_policy(session, tenant=case.tenant, default_packs=packs)
    active_packs, active_policy = engine_policy(in_force)
    state = await debtor_state(
        session, tenant=case.tenant, debtor_id=case.debtor_id, case_id=case.case_id, at=now
    )
    treatment_channel = first.channel
    # An opted-out channel is never lifted by time: carry the same message on the next
    # channel the debtor still accepts (a letter remains) instead of dropping the case.
    options = [first]
    if first.channel in state.opted_out:
        options += domain.fallback_contacts(
            first, opted_out=state.opted_out, human_only=case.human_only
        )
    decision: rules.Decision | None = None
    for option in options:
        decision = rules.decide(
            rules.DecisionRequest(
                debtor_id=str(case.debtor_id),
                debt_id=str(case.case_id),
                channel=option.channel,
                at=max(now, not_before or now),
                zones=(case.time_zone,),
            ),
            state,
            packs=active_packs,
            policy=active_policy,
        )
        record_contact_decision(
            session, allowed=decision.allowed, rule_ids=[o.rule_id for o in decision.objections]
        )
        first = option
        if decision.next_allowed_at is not None:
            break
    assert decision is not None
    if decision.next_allowed_at is None:
        log.warning(
            "case %s: no lawful slot (%s)",
            case.case_id,
            ", ".join(o.rule_id for o in decision.objections),
        )
        return None
    slot = decision.next_allowed_at.astimezone(UTC)
    if in_force.prefer_answer_hours:
        slot = await _best_lawful_slot(
            session,
            earliest=slot,
            case=case,
            channel=first.channel,
            state=state,
            packs=active_packs,
            policy=active_policy,
        )
    attempt = ContactAttempt(
        id=uuid.uuid4(),
        tenant=case.tenant,
        case_id=case.case_id,
        debtor_id=case.debtor_id,
        attempt_no=(previous or 0) + 1,
        channel=first.channel.value,
        template=first.template,
        stage=first.stage,
        status="planned",
        planned_at=slot,
        local_planned_at=slot.astimezone(zone).isoformat(),
        time_zone=case.time_zone,
        window_rule_id=rules.hours_rule_ids(active_packs),
        priority=case.priority,
        created_at=now,
    )
    session.add(attempt)
    await _publish(
        session,
        ContactPlanned(
            attempt_id=attempt.id,
            case_id=attempt.case_id,
            debtor_id=attempt.debtor_id,
            channel=attempt.channel,
            template=attempt.template,
            stage=attempt.stage,
            planned_at=slot,
            local_planned_at=attempt.local_planned_at,
            time_zone=attempt.time_zone,
            window_rule_id=attempt.window_rule_id,
            priority=attempt.priority,
            fallback_from=(
                treatment_channel.value if first.channel is not treatment_channel else None
            ),
        ),
        tenant=case.tenant,
        key=str(attempt.case_id),
        correlation_id=correlation_id,
        causation_id=causation_id,
    )
    return attempt


async def case_attempts(session: AsyncSession, *, tenant: str, case_id: uuid.UUID) -> CaseAttempts:
    """Every attempt planned for a case; NotFound if the tenant has no such case in contact."""
    if await _known_case(session, case_id=case_id, tenant=tenant) is None:
        raise NotFound(f"contact has no case {case_id}")
    rows = (
        await session.scalars(
            sa.select(ContactAttempt)
            .where(ContactAttempt.tenant == tenant, ContactAttempt.case_id == case_id)
            .order_by(ContactAttempt.attempt_no)
        )
    ).all()
    return CaseAttempts(case_id=case_id, attempts=[AttemptOut.model_validate(r) for r in rows])


async def get_attempt(session: AsyncSession, *, tenant: str, attempt_id: uuid.UUID) -> AttemptOut:
    """One of the tenant's attempts; NotFound if there is none."""
    missing = f"no contact attempt {attempt_id}"
    found = _own(await session.get(ContactAttempt, attempt_id), tenant=tenant, missing=missing)
    if found is None:
        raise NotFound(missing)
    return AttemptOut.model_validate(found)


class UnknownPack(DomainError):
    status = 422
    problem_type = "https://qingshou.dev/problems/unknown-rule-pack"


async def decide_contact(
    session: AsyncSession,
    *,
    tenant: str,
    body: DecisionIn,
    default_packs: tuple[str, ...],
    now: datetime,
) -> DecisionOut:
    """Run the decision engine for one proposed contact against the tenant's own records and
    policy (another tenant's case or debtor is as unknown as a missing one)."""
    active_packs, active_policy = await policy_in_force(
        session, tenant=tenant, default_packs=default_packs
    )
    packs = tuple(body.packs or active_packs)
    unknown = [p for p in packs if p not in rules.PACKS]
    if unknown:
        raise UnknownPack(f"unknown rule packs {unknown}; choose from {sorted(rules.PACKS)}")
    zones = body.zones
    if zones is None:
        missing = f"contact does not know case {body.case_id}; pass its zones"
        case = _own(await session.get(ContactCase, body.case_id), tenant=tenant, missing=missing)
        if case is None or case.time_zone is None:
            raise NotFound(missing)
        zones = [case.time_zone]
    decision = rules.decide(
        rules.DecisionRequest(
            debtor_id=str(body.debtor_id),
            debt_id=str(body.case_id),
            channel=body.channel,
            at=body.at or now,
            zones=tuple(zones),
            agency=body.agency,
            third_party=body.third_party,
            consented=body.consented,
            workplace=body.workplace,
        ),
        await debtor_state(
            session,
            tenant=tenant,
            debtor_id=body.debtor_id,
            case_id=body.case_id,
            at=body.at or now,
        ),
        packs=packs,
        policy=active_policy,
    )
    record_contact_decision(
        session, allowed=decision.allowed, rule_ids=[o.rule_id for o in decision.objections]
    )
    return DecisionOut(
        allowed=decision.allowed,
        next_allowed_at=decision.next_allowed_at,
        objections=[
            ObjectionOut(rule_id=o.rule_id, citation=o.citation, reason=o.reason, until=o.until)
            for o in decision.objections
        ],
        packs=[f"{p}@{rules.PACKS[p].version}" for p in packs],
        evaluated_at=now,
    )


async def lease_worklist(
    session: AsyncSession,
    *,
    tenant: str,
    channel: domain.Channel,
    dialer: str,
    automated: bool,
    limit: int,
    lease: timedelta,
    now: datetime,
    packs: tuple[str, ...],
    correlation_id: str,
) -> list[AttemptOut]:
    """Lease the tenant's due attempts to a dialer, each re-checked against the rules at this
    moment: an attempt the rules now refuse is moved to its next allowed moment (or blocked),
    and a `contact.blocked` event names the rules."""
    due = (
        await session.scalars(
            sa.select(ContactAttempt)
            .where(
                ContactAttempt.tenant == tenant,
                ContactAttempt.channel == channel.value,
                ContactAttempt.planned_at <= now,
                sa.or_(
                    ContactAttempt.status == "planned",
                    sa.and_(
                        ContactAttempt.status == "leased", ContactAttempt.lease_expires_at < now
                    ),
                ),
            )
            .order_by(ContactAttempt.priority.desc(), ContactAttempt.planned_at)
            .limit(limit * 3)
            .with_for_update(skip_locked=True)
        )
    ).all()
    leased: list[AttemptOut] = []
    active_packs, active_policy = await policy_in_force(session, tenant=tenant, default_packs=packs)
    for attempt in due:
        if len(leased) >= limit:
            break
        case = await _known_case(session, case_id=attempt.case_id, tenant=tenant)
        decision = rules.decide(
            rules.DecisionRequest(
                debtor_id=str(attempt.debtor_id),
                debt_id=str(attempt.case_id),
                channel=domain.Channel(attempt.channel),
                at=now,
                zones=(attempt.time_zone,),
            ),
            await debtor_state(
                session,
                tenant=tenant,
                debtor_id=attempt.debtor_id,
                case_id=attempt.case_id,
                at=now,
            ),
            packs=active_packs,
            policy=active_policy,
        )
        human_only = automated and case is not None and case.human_only
        if decision.allowed and not human_only:
            record_contact_decision(session, allowed=True, rule_ids=())
            attempt.status = "leased"
            attempt.leased_by = dialer
            attempt.lease_expires_at = now + lease
            leased.append(AttemptOut.model_validate(attempt))
            continue
        objections = list(decision.objections)
        rule_ids = [o.rule_id for o in objections] or ["HUMAN-ONLY"]
        record_contact_decision(session, allowed=False, rule_ids=rule_ids)
        reasons = [o.reason for o in objections] or ["escalated to a human collector"]
        if decision.next_allowed_at is not None and not human_only:
            attempt.planned_at = decision.next_allowed_at.astimezone(UTC)
            attempt.local_planned_at = attempt.planned_at.astimezone(
                ZoneInfo(attempt.time_zone)
            ).isoformat()
            attempt.status = "planned"
        elif not human_only:
            attempt.status = "blocked"
        await _publish(
            session,
            ContactBlocked(
                attempt_id=attempt.id,
                case_id=attempt.case_id,
                rule_ids=rule_ids,
                reasons=reasons,
                next_allowed_at=None if human_only else decision.next_allowed_at,
                checked_at=now,
            ),
            tenant=tenant,
            key=str(attempt.case_id),
            correlation_id=correlation_id,
        )
    await session.flush()
    return leased


async def record_hold_placed(
    session: AsyncSession,
    *,
    event: HoldPlaced,
    tenant: str,
    correlation_id: str,
    now: datetime,
    packs: tuple[str, ...],
) -> int:
    """Keep the hold and withdraw every live attempt of the tenant it stops; returns how many.
    ForeignRecord if the hold, its case or its debtor is another tenant's."""
    await _own_debtor(session, debtor_id=event.debtor_id, tenant=tenant)
    await _known_case(session, case_id=event.case_id, tenant=tenant)
    known = _own(
        await session.get(ContactHold, event.hold_id),
        tenant=tenant,
        missing=f"contact has no hold {event.hold_id}",
    )
    if known is None:
        session.add(
            ContactHold(
                hold_id=event.hold_id,
                tenant=tenant,
                case_id=event.case_id,
                debtor_id=event.debtor_id,
                kind=event.kind.value,
                reason=event.reason,
                starts_at=event.starts_at,
                ends_at=event.ends_at,
            )
        )
    scope = (
        ContactAttempt.debtor_id == event.debtor_id
        if event.kind.value in rules.PERSON_HOLDS
        else ContactAttempt.case_id == event.case_id
    )
    withdrawn = await _withdraw(
        session,
        scope,
        tenant=tenant,
        rule_ids=rules.hold_rule_ids(rules.Hold(event.kind.value), packs),
        reason=lambda _attempt: f"{event.kind.value.replace('_', ' ')} hold: {event.reason}",
        now=now,
        correlation_id=correlation_id,
    )
    return len(withdrawn)


async def _withdraw(
    session: AsyncSession,
    *where: sa.ColumnElement[bool],
    tenant: str,
    rule_ids: list[str],
    reason: Callable[[ContactAttempt], str],
    now: datetime,
    correlation_id: str,
) -> list[ContactAttempt]:
    """Cancel the tenant's live (planned or leased) attempts matching `where`, each with its
    `contact.cancelled`; returns them."""
    live = (
        await session.scalars(
            sa.select(ContactAttempt).where(
                ContactAttempt.tenant == tenant,
                *where,
                ContactAttempt.status.in_(("planned", "leased")),
            )
        )
    ).all()
    for attempt in live:
        attempt.status = "cancelled"
        await _publish(
            session,
            ContactCancelled(
                attempt_id=attempt.id,
                case_id=attempt.case_id,
                rule_ids=rule_ids,
                reason=reason(attempt),
                cancelled_at=now,
            ),
            tenant=tenant,
            key=str(attempt.case_id),
            correlation_id=correlation_id,
        )
    await session.flush()
    return list(live)


async def _store_preferences(
    session: AsyncSession,
    *,
    tenant: str,
    debtor_id: uuid.UUID,
    opted_out: list[str],
    consents: list[str],
    changed_at: datetime,
) -> bool:
    """Keep the newest preferences (events keyed by case and by debtor may arrive in either
    order); False if what is stored is newer."""
    stored = _own(
        await session.get(ContactPreferences, debtor_id, with_for_update=True),
        tenant=tenant,
        missing=f"contact has no debtor {debtor_id}",
    )
    if stored is None:
        session.add(
            ContactPreferences(
                debtor_id=debtor_id,
                tenant=tenant,
                opted_out_channels=sorted(opted_out),
                consents=sorted(consents),
                changed_at=changed_at,
            )
        )
        await session.flush()
        return True
    if stored.changed_at > changed_at:
        return False
    stored.opted_out_channels = sorted(opted_out)
    stored.consents = sorted(consents)
    stored.changed_at = changed_at
    return True


async def record_preferences(
    session: AsyncSession,
    *,
    event: DebtorPreferencesChanged,
    tenant: str,
    correlation_id: str,
    now: datetime,
    packs: tuple[str, ...] = ("cn",),
) -> int:
    """Apply a debtor's new opt-outs and consents; withdraw live attempts on a channel now opted
    out of (every debt of this person). Returns how many were withdrawn."""
    await _own_debtor(session, debtor_id=event.debtor_id, tenant=tenant)
    applied = await _store_preferences(
        session,
        tenant=tenant,
        debtor_id=event.debtor_id,
        opted_out=event.opted_out_channels,
        consents=event.consents,
        changed_at=event.changed_at,
    )
    if not applied or not event.opted_out_channels:
        return 0
    withdrawn = await _withdraw(
        session,
        ContactAttempt.debtor_id == event.debtor_id,
        ContactAttempt.channel.in_(event.opted_out_channels),
        tenant=tenant,
        rule_ids=rules.opt_out_rule_ids(packs),
        reason=lambda attempt: f"the debtor opted out of {attempt.channel}: {event.reason}",
        now=now,
        correlation_id=correlation_id,
    )
    # The debt is still owed: plan each case again, on a channel the debtor still accepts.
    for case_id in sorted({attempt.case_id for attempt in withdrawn}):
        case = await _contact_case(session, case_id=case_id, tenant=tenant, now=now)
        await _plan_first_attempt(
            session,
            case=case,
            correlation_id=correlation_id,
            causation_id=None,
            now=now,
            packs=packs,
        )
    return len(withdrawn)


async def record_case_closed(
    session: AsyncSession, *, event: CaseClosed, tenant: str, correlation_id: str, now: datetime
) -> int:
    """The case ended: withdraw its live attempts and never plan it again; returns how many."""
    case = await _contact_case(session, case_id=event.case_id, tenant=tenant, now=now)
    case.closed_at = event.closed_at
    case.updated_at = now
    withdrawn = await _withdraw(
        session,
        ContactAttempt.case_id == event.case_id,
        tenant=tenant,
        rule_ids=["CASE-CLOSED"],
        reason=lambda _attempt: f"case closed ({event.closure})",
        now=now,
        correlation_id=correlation_id,
    )
    return len(withdrawn)


async def record_hold_released(
    session: AsyncSession,
    *,
    event: HoldReleased,
    envelope: Envelope,
    now: datetime,
    packs: tuple[str, ...],
) -> ContactAttempt | None:
    """End the hold (of the envelope's tenant); plan again for the case if nothing else stops
    it."""
    tenant = envelope.tenant
    hold = _own(
        await session.get(ContactHold, event.hold_id),
        tenant=tenant,
        missing=f"contact has no hold {event.hold_id}",
    )
    case = await _known_case(session, case_id=event.case_id, tenant=tenant)
    if hold is None:
        return None
    hold.released_at = event.released_at
    if case is None:
        return None
    await session.flush()
    return await _plan_first_attempt(
        session,
        case=case,
        correlation_id=envelope.correlation_id,
        causation_id=str(envelope.event_id),
        now=now,
        packs=packs,
    )


class LooserPolicy(DomainError):
    status = 422
    problem_type = "https://qingshou.dev/problems/policy-looser-than-law"


def validate_policy(body: PolicyIn) -> None:
    """Refuse a policy that would loosen any rule of its packs (422 naming what)."""
    unknown = [p for p in body.packs if p not in rules.PACKS]
    if unknown:
        raise UnknownPack(f"unknown rule packs {unknown}; choose from {sorted(rules.PACKS)}")
    if "us-ma" in body.packs and "us-federal" not in body.packs:
        raise LooserPolicy("us-ma adds to us-federal: select both")
    start, end, caps = rules.pack_limits(body.packs)
    problems = []
    if body.window_start is not None and body.window_start < start:
        problems.append(f"window_start {body.window_start} is before the packs' {start}")
    if body.window_end is not None and body.window_end > end:
        problems.append(f"window_end {body.window_end} is after the packs' {end}")
    for rule_id, cap in body.caps.items():
        if rule_id not in caps:
            problems.append(f"{rule_id} is not a cap of these packs ({sorted(caps)})")
        elif cap > caps[rule_id]:
            problems.append(f"{rule_id} cap {cap} is above the law's {caps[rule_id]}")
    if problems:
        raise LooserPolicy("; ".join(problems))


def engine_policy(body: PolicyIn) -> tuple[tuple[str, ...], rules.Policy]:
    """The packs and the engine's Policy for a stored or proposed policy document."""
    return rules.policy_from_document(body.model_dump(mode="json"))


async def policy_in_force(
    session: AsyncSession, *, tenant: str, default_packs: tuple[str, ...]
) -> tuple[tuple[str, ...], rules.Policy]:
    """Packs and local policy the engine applies now for the tenant (its latest stored
    version, or settings)."""
    return engine_policy(await current_policy(session, tenant=tenant, default_packs=default_packs))


async def current_policy(
    session: AsyncSession, *, tenant: str, default_packs: tuple[str, ...]
) -> PolicyOut:
    """The tenant's policy in force: its latest stored version, else the settings' packs
    (version 0)."""
    row = await session.scalar(
        sa.select(ContactPolicy)
        .where(ContactPolicy.tenant == tenant)
        .order_by(ContactPolicy.version.desc())
        .limit(1)
    )
    if row is None:
        return PolicyOut(
            packs=list(default_packs),
            changed_by="settings",
            reason="default from settings",
            version=0,
            changed_at=None,
        )
    return PolicyOut.model_validate(
        {**row.document, "version": row.version, "changed_at": row.changed_at}
    )


async def set_policy(
    session: AsyncSession, *, tenant: str, body: PolicyIn, correlation_id: str, now: datetime
) -> PolicyOut:
    """Store a new version of the tenant's policy (never looser than the law) and publish it."""
    validate_policy(body)
    latest = await session.scalar(
        sa.select(sa.func.max(ContactPolicy.version)).where(ContactPolicy.tenant == tenant)
    )
    version = (latest or 0) + 1
    document = body.model_dump(mode="json")
    session.add(
        ContactPolicy(
            tenant=tenant,
            version=version,
            document=document,
            changed_by=body.changed_by,
            reason=body.reason,
            changed_at=now,
        )
    )
    await _publish(
        session,
        ContactPolicyChanged(
            version=version,
            packs=body.packs,
            policy=document,
            changed_by=body.changed_by,
            reason=body.reason,
            changed_at=now,
        ),
        tenant=tenant,
        key="contact-policy",
        correlation_id=correlation_id,
    )
    await session.flush()
    return PolicyOut.model_validate({**document, "version": version, "changed_at": now})


async def simulate_policy(
    session: AsyncSession, *, tenant: str, body: PolicyIn, limit: int = 200_000
) -> SimulationOut:
    """Replay the tenant's stored attempt history under a proposed policy (stores nothing)."""
    validate_policy(body)
    packs, policy = engine_policy(body)
    rows = (
        await session.execute(
            sa.select(ContactOutcomeRecord, ContactCase.time_zone)
            .join(ContactCase, ContactCase.case_id == ContactOutcomeRecord.case_id)
            .where(ContactOutcomeRecord.tenant == tenant, ContactCase.tenant == tenant)
            .order_by(ContactOutcomeRecord.debtor_id, ContactOutcomeRecord.occurred_at)
            .limit(limit)
        )
    ).all()
    history: dict[uuid.UUID | None, list[rules.Attempt]] = {}
    by_rule: dict[str, int] = {}
    examples: list[SimulatedAttempt] = []
    counts = {"allowed": 0, "moved": 0, "blocked": 0}
    for outcome, zone in rows:
        past = history.setdefault(outcome.debtor_id, [])
        decision = rules.decide(
            rules.DecisionRequest(
                debtor_id=str(outcome.debtor_id),
                debt_id=str(outcome.case_id),
                channel=domain.Channel(outcome.channel),
                at=outcome.occurred_at,
                zones=(zone or "UTC",),
                agency=None,
            ),
            rules.DebtorState(history=tuple(past)),
            packs=packs,
            policy=policy,
        )
        verdict = (
            "allowed"
            if decision.allowed
            else ("moved" if decision.next_allowed_at is not None else "blocked")
        )
        counts[verdict] += 1
        if verdict != "allowed":
            for o in decision.objections:
                by_rule[o.rule_id] = by_rule.get(o.rule_id, 0) + 1
            if len(examples) < 100:
                examples.append(
                    SimulatedAttempt(
                        outcome_id=outcome.outcome_id,
                        case_id=outcome.case_id,
                        channel=outcome.channel,
                        occurred_at=outcome.occurred_at,
                        verdict=verdict,
                        rule_ids=[o.rule_id for o in decision.objections],
                        next_allowed_at=decision.next_allowed_at,
                    )
                )
        past.append(
            rules.attempt_from_outcome(
                at=outcome.occurred_at,
                channel=outcome.channel,
                debt_id=str(outcome.case_id),
                result=outcome.result,
            )
        )
    return SimulationOut(attempts_replayed=len(rows), by_rule=by_rule, examples=examples, **counts)


# --- data-subject requests ----------------------------------------------------------------------

#: The rule id of attempts withdrawn because the debtor's personal data was erased.
ERASED_RULE_ID = "DSR-ERASED"


async def record_debtor_erased(
    session: AsyncSession,
    *,
    event: DebtorErased,
    tenant: str,
    correlation_id: str,
    now: datetime,
) -> int:
    """Cases erased the debtor: withdraw every live attempt of theirs (`contact.cancelled`,
    DSR-ERASED), never plan their cases again, and drop the free text contact keeps (hold
    reasons). Returns how many attempts were withdrawn. ForeignRecord if the debtor or a
    named case is another tenant's.

    Contact holds no name, phone, e-mail or address. What stays is keyed by the (random)
    debtor id only: attempts and outcomes (the contact history compliance and a court may
    ask about, and the pooled answer-rate statistics), hold kinds and dates, and the
    opt-outs and consents while cases retains records (`event.retained`): they show on what
    basis past contacts were made. Without retained records the preferences go too."""
    await _own_debtor(session, debtor_id=event.debtor_id, tenant=tenant)
    # Every case of the debtor counts as closed from now on, including one whose
    # `case.opened` has not arrived yet (keyed by case, it may come after this event, keyed by
    # debtor): `_plan_first_attempt` never plans a closed case.
    known = (
        await session.scalars(
            sa.select(ContactCase.case_id).where(
                ContactCase.tenant == tenant, ContactCase.debtor_id == event.debtor_id
            )
        )
    ).all()
    for case_id in sorted({*event.case_ids, *known}):
        case = await _contact_case(session, case_id=case_id, tenant=tenant, now=now)
        case.debtor_id = case.debtor_id or event.debtor_id
        case.closed_at = case.closed_at or event.erased_at
        case.updated_at = now
    withdrawn = await _withdraw(
        session,
        ContactAttempt.debtor_id == event.debtor_id,
        tenant=tenant,
        rule_ids=[ERASED_RULE_ID],
        reason=lambda _attempt: (
            f"the debtor's personal data was erased (request {event.request_ref}): "
            "never contacted again"
        ),
        now=now,
        correlation_id=correlation_id,
    )
    await session.execute(
        sa.update(ContactHold)
        .where(ContactHold.tenant == tenant, ContactHold.debtor_id == event.debtor_id)
        .values(reason="")
    )
    if not event.retained:
        await session.execute(
            sa.delete(ContactPreferences).where(
                ContactPreferences.tenant == tenant,
                ContactPreferences.debtor_id == event.debtor_id,
            )
        )
    return len(withdrawn)


async def export_debtor(
    session: AsyncSession, *, tenant: str, debtor_id: uuid.UUID, now: datetime
) -> ContactDebtorExport:
    """Everything contact holds about one of the tenant's debtors; NotFound if it knows
    nothing of them (or only as another tenant's)."""
    await _own_debtor(session, debtor_id=debtor_id, tenant=tenant)
    cases = (
        await session.scalars(
            sa.select(ContactCase)
            .where(ContactCase.tenant == tenant, ContactCase.debtor_id == debtor_id)
            .order_by(ContactCase.case_id)
        )
    ).all()
    preferences = _own(
        await session.get(ContactPreferences, debtor_id),
        tenant=tenant,
        missing=f"contact has no debtor {debtor_id}",
    )
    if not cases and preferences is None:
        raise NotFound(f"contact has no debtor {debtor_id}")
    attempts = (
        await session.scalars(
            sa.select(ContactAttempt)
            .where(ContactAttempt.tenant == tenant, ContactAttempt.debtor_id == debtor_id)
            .order_by(ContactAttempt.created_at, ContactAttempt.attempt_no)
        )
    ).all()
    outcomes = (
        await session.scalars(
            sa.select(ContactOutcomeRecord)
            .where(
                ContactOutcomeRecord.tenant == tenant, ContactOutcomeRecord.debtor_id == debtor_id
            )
            .order_by(ContactOutcomeRecord.occurred_at)
        )
    ).all()
    holds = (
        await session.scalars(
            sa.select(ContactHold)
            .where(ContactHold.tenant == tenant, ContactHold.debtor_id == debtor_id)
            .order_by(ContactHold.starts_at)
        )
    ).all()
    return ContactDebtorExport(
        debtor_id=debtor_id,
        cases=[KnownCaseOut.model_validate(c) for c in cases],
        attempts=[AttemptOut.model_validate(a) for a in attempts],
        outcomes=[OutcomeOut.model_validate(o) for o in outcomes],
        holds=[HoldKnownOut.model_validate(h) for h in holds],
        preferences=(
            PreferencesKnownOut.model_validate(preferences) if preferences is not None else None
        ),
        exported_at=now,
    )
