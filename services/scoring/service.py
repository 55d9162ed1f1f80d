"""Scoring use cases. The caller (route, handler or job) owns the transaction.

Every function that touches case data takes the tenant and filters by it: a case of another
tenant is indistinguishable from one scoring never saw. Model documents are shared; each
tenant has its own roles (champion, challengers), inherited from the default tenant until
the tenant's first activation.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import domain
from services.scoring.models import (
    ModelActivation,
    ModelRole,
    RegisteredModel,
    Score,
    ScoredCase,
    ScoreOverride,
)
from services.scoring.schemas import (
    ActivateIn,
    BatchOut,
    CaseScores,
    ModelDetail,
    ModelSummary,
    Monitoring,
    OverrideIn,
    OverrideOut,
    ScoreOut,
    StabilityRow,
)
from services.scoring.scorecard import Scorecard, load_scorecard
from shared.bus import PermanentMessageError
from shared.contracts import (
    CaseOpened,
    CaseScored,
    Reason,
    RiskTier,
    ScoreOverridden,
    build_envelope,
)
from shared.contracts.envelope import DEFAULT_TENANT
from shared.contracts.events import DebtorErased, ModelActivated
from shared.contracts.topics import SCORING_EVENTS
from shared.http import Conflict, DomainError, NotFound
from shared.outbox import enqueue_event

PRODUCER = "scoring"
ACTIVE_ROLES = ("champion", "challenger")
PSI_WARNING, PSI_ALERT = 0.10, 0.25


class InvalidActivation(DomainError):
    status = 422
    problem_type = "https://qingshou.dev/problems/invalid-activation"


class ForeignCase(PermanentMessageError):
    """An event about a case that scoring holds for another tenant: applying it would mix
    tenants, and no retry can fix the producer's mistake."""


@dataclass
class ScoringContext:
    """Per-process configuration and a cache of parsed models (documents never change)."""

    cutoffs: domain.TierCutoffs = field(default_factory=domain.TierCutoffs)
    strategy: tuple[domain.StrategyRule, ...] = domain.DEFAULT_STRATEGY
    refresh_seconds: float = 2.0
    _parsed: dict[str, Scorecard] = field(default_factory=dict)
    #: tenant -> (when loaded, [(key, role, share)] of its champion and challengers)
    _active: dict[str, tuple[float, list[tuple[str, str, float]]]] = field(default_factory=dict)

    async def active_models(
        self, session: AsyncSession, *, tenant: str
    ) -> list[tuple[Scorecard, str, float]]:
        """(model, role, share) of the tenant's champion and challengers, refreshed every few
        seconds."""
        loaded_at, active = self._active.get(tenant, (-math.inf, []))
        if time.monotonic() - loaded_at > self.refresh_seconds:
            roles = await effective_roles(session, tenant=tenant)
            active = [
                (r.key, r.role, r.traffic_share)
                for r in sorted(roles.values(), key=lambda r: r.key)
                if r.role in ACTIVE_ROLES
            ]
            for key, _role, _share in active:
                if key not in self._parsed:
                    document = await session.scalar(
                        sa.select(RegisteredModel.document).where(RegisteredModel.key == key)
                    )
                    assert document is not None
                    self._parsed[key] = load_scorecard(document)
            self._active[tenant] = (time.monotonic(), active)
        return [(self._parsed[key], role, share) for key, role, share in active]

    def forget(self) -> None:
        """Re-read the roles on next use (after an activation in this process). Every tenant:
        a change of the default tenant's roles also changes those of the tenants inheriting
        them."""
        self._active.clear()


def traffic_bucket(case_id: uuid.UUID) -> float:
    """A stable number in [0, 1) per case: the same case always meets the same model."""
    return int(hashlib.sha256(case_id.bytes).hexdigest()[:8], 16) / 2**32


def choose_model(
    case_id: uuid.UUID, active: list[tuple[Scorecard, str, float]]
) -> tuple[Scorecard | None, bool]:
    """The challenger whose traffic slice holds the case, else the champion (or none)."""
    bucket = traffic_bucket(case_id)
    cumulative = 0.0
    for model, role, share in active:
        if role == "challenger":
            cumulative += share
            if bucket < cumulative:
                return model, True
    champion = next((m for m, role, _ in active if role == "champion"), None)
    return champion, False


async def _snapshot_for_event(
    session: AsyncSession, *, case_id: uuid.UUID, tenant: str
) -> ScoredCase | None:
    """The case's snapshot, None if scoring never saw it; ForeignCase if another tenant's."""
    snapshot = await session.get(ScoredCase, case_id)
    if snapshot is not None and snapshot.tenant != tenant:
        raise ForeignCase(
            f"an event of tenant {tenant!r} names case {case_id}, which belongs to another "
            "tenant; not applied"
        )
    return snapshot


async def record_case_opened(
    session: AsyncSession,
    *,
    tenant: str,
    event: CaseOpened,
    correlation_id: str,
    causation_id: str,
    now: datetime,
    ctx: ScoringContext,
) -> Score:
    """Keep the case's inputs and score it."""
    snapshot = await _snapshot_for_event(session, case_id=event.case_id, tenant=tenant)
    if snapshot is None:
        snapshot = ScoredCase(
            case_id=event.case_id, tenant=tenant, broken_promises=0, status="open"
        )
        session.add(snapshot)
    snapshot.days_past_due = event.days_past_due
    snapshot.amount_outstanding = event.amount_outstanding
    snapshot.currency = event.currency
    snapshot.industry_risk = event.industry_risk
    snapshot.collateral_type = event.collateral_type.value
    snapshot.small_business = event.small_business
    snapshot.risk_features = dict(event.risk_features)
    snapshot.updated_at = now
    return await score_snapshot(
        session,
        snapshot=snapshot,
        correlation_id=correlation_id,
        causation_id=causation_id,
        source_event_id=causation_id,
        now=now,
        ctx=ctx,
    )


class UnknownCase(Exception):
    """An event for a case scoring never saw opened (cases.events keeps per-case order, so
    this is a producer bug): it must surface in the DLQ, not vanish."""


async def record_case_change(
    session: AsyncSession,
    *,
    tenant: str,
    case_id: uuid.UUID,
    days_past_due: int | None,
    amount_outstanding: Decimal | None,
    broken_promises: int | None,
    correlation_id: str,
    causation_id: str,
    now: datetime,
    ctx: ScoringContext,
) -> Score | None:
    """A material change (balance, DPD, payment, broken promise; None keeps a value): update
    and rescore. A case paid in full is closed and not scored again."""
    snapshot = await _snapshot_for_event(session, case_id=case_id, tenant=tenant)
    if snapshot is None:
        raise UnknownCase(f"case {case_id} was never opened for scoring")
    if snapshot.status != "open":
        # Paid in full or its debtor erased: a late event must not bring a score back.
        return None
    if days_past_due is not None:
        snapshot.days_past_due = days_past_due
    if amount_outstanding is not None:
        snapshot.amount_outstanding = amount_outstanding
    if broken_promises is not None:
        snapshot.broken_promises = max(snapshot.broken_promises, broken_promises)
    snapshot.updated_at = now
    if snapshot.amount_outstanding <= 0:
        snapshot.status = "closed"
        return None
    return await score_snapshot(
        session,
        snapshot=snapshot,
        correlation_id=correlation_id,
        causation_id=causation_id,
        source_event_id=causation_id,
        now=now,
        ctx=ctx,
    )


async def record_debtor_erased(
    session: AsyncSession, *, tenant: str, event: DebtorErased, now: datetime
) -> int:
    """A data-subject erasure in cases: remove the model inputs scoring holds for the debtor's
    cases (risk features, and the bins derived from them on every score) and never rescore
    them. The scores' outcome and reason codes stay: they are the record of a decision made
    and its explanation (PIPL art. 24), kept for the reasons cases keeps its financial
    records. Returns how many cases scoring knew."""
    known = 0
    for case_id in event.case_ids:
        snapshot = await _snapshot_for_event(session, case_id=case_id, tenant=tenant)
        if snapshot is None:
            continue
        snapshot.risk_features = {}
        snapshot.status = "closed"
        snapshot.updated_at = now
        known += 1
    if event.case_ids:
        await session.execute(
            sa.update(Score)
            .where(Score.tenant == tenant, Score.case_id.in_(event.case_ids))
            .values(bins={})
        )
    return known


async def score_snapshot(
    session: AsyncSession,
    *,
    snapshot: ScoredCase,
    correlation_id: str,
    causation_id: str | None,
    source_event_id: str,
    now: datetime,
    ctx: ScoringContext,
) -> Score:
    """Score one case with its model (challenger slice or champion; the rule as fallback),
    store it and stage `case.scored`."""
    model, challenger = choose_model(
        snapshot.case_id, await ctx.active_models(session, tenant=snapshot.tenant)
    )
    reasons: list[Reason] = []
    bins: dict[str, Any] = {}
    if model is not None:
        result = model.score(snapshot.risk_features)
        pd_value = result.probability_of_default
        tier = domain.tier_for(probability_of_default=pd_value, cutoffs=ctx.cutoffs)
        priority = domain.scorecard_priority(
            probability_of_default=pd_value,
            amount_outstanding=snapshot.amount_outstanding,
            days_past_due=snapshot.days_past_due,
        )
        reasons = [
            Reason(
                code=r.feature,
                text=f"{r.label}: {r.band} (-{r.shortfall} points against the best band)",
                points_lost=r.shortfall,
            )
            for r in result.reasons
        ]
        for feature in model.features:
            index, _band = feature.bin_for(snapshot.risk_features.get(feature.name))
            bins[feature.name] = len(feature.bins) if index < 0 else index
        bins["__score_band__"] = bisect.bisect_right(model.score_bands.cut_points, result.points)
        model_id, model_version, points = model.model_id, model.version, result.points
        warning = domain.early_warning_for(
            probability_of_default=pd_value, days_past_due=snapshot.days_past_due
        )
    else:
        rule = domain.score_by_rule(
            domain.RuleInputs(
                days_past_due=snapshot.days_past_due,
                amount_outstanding=snapshot.amount_outstanding,
                industry_risk=snapshot.industry_risk,
            )
        )
        pd_value, points, tier, priority = None, None, rule.risk_tier, rule.priority
        reasons = [
            Reason(code=c, text=c.replace("_", " ").lower(), points_lost=0)
            for c in rule.reason_codes
        ]
        model_id, model_version = domain.RULE_MODEL_ID, domain.RULE_MODEL_VERSION
        warning = domain.early_warning_for(
            probability_of_default=0.0, days_past_due=snapshot.days_past_due
        )
    strategy = domain.recommend(
        domain.StrategyInputs(
            days_past_due=snapshot.days_past_due,
            amount_outstanding=snapshot.amount_outstanding,
            risk_tier=tier,
            collateral_type=snapshot.collateral_type,
            small_business=snapshot.small_business,
            broken_promises=snapshot.broken_promises,
        ),
        ctx.strategy,
    )
    score = Score(
        id=uuid.uuid4(),
        case_id=snapshot.case_id,
        tenant=snapshot.tenant,
        model_id=model_id,
        model_version=model_version,
        model_key=f"{model_id}@{model_version}",
        priority=priority,
        risk_tier=tier.value,
        days_past_due=snapshot.days_past_due,
        amount_outstanding=snapshot.amount_outstanding,
        currency=snapshot.currency,
        industry_risk=snapshot.industry_risk,
        reason_codes=[r.code for r in reasons],
        reasons=[r.model_dump() for r in reasons],
        bins=bins,
        score_points=points,
        probability_of_default=pd_value,
        early_warning=warning.value,
        treatment=strategy.treatment.value,
        strategy_rule=strategy.name,
        challenger=challenger,
        source_event_id=source_event_id,
        scored_at=now,
    )
    session.add(score)
    await enqueue_event(
        session,
        topic=SCORING_EVENTS,
        envelope=build_envelope(
            CaseScored(
                case_id=score.case_id,
                score_id=score.id,
                model_id=score.model_id,
                model_version=score.model_version,
                priority=score.priority,
                risk_tier=tier,
                days_past_due=score.days_past_due,
                amount_outstanding=score.amount_outstanding,
                currency=score.currency,
                reason_codes=score.reason_codes,
                scored_at=now,
                probability_of_default=pd_value,
                score_points=points,
                early_warning=warning.value,
                treatment=strategy.treatment.value,
                strategy_rule=strategy.name,
                reasons=reasons,
                challenger=challenger,
            ),
            key=str(score.case_id),
            producer=PRODUCER,
            correlation_id=correlation_id,
            causation_id=causation_id,
            tenant=score.tenant,
        ),
    )
    return score


async def rescore(
    session: AsyncSession,
    *,
    tenant: str,
    case_ids: list[uuid.UUID] | None,
    correlation_id: str,
    now: datetime,
    ctx: ScoringContext,
    limit: int = 10_000,
) -> BatchOut:
    """Score the given (or all open) cases of the tenant again with its current models."""
    query = (
        sa.select(ScoredCase)
        .where(ScoredCase.tenant == tenant)
        .order_by(ScoredCase.case_id)
        .limit(limit)
    )
    if case_ids is None:
        query = query.where(ScoredCase.status == "open")
    else:
        query = query.where(ScoredCase.case_id.in_(case_ids))
    snapshots = (await session.scalars(query)).all()
    for snapshot in snapshots:
        await score_snapshot(
            session,
            snapshot=snapshot,
            correlation_id=correlation_id,
            causation_id=None,
            source_event_id=f"batch:{correlation_id}",
            now=now,
            ctx=ctx,
        )
    found = {s.case_id for s in snapshots}
    unknown = [c for c in case_ids or [] if c not in found]
    return BatchOut(scored=len(snapshots), unknown_case_ids=unknown)


async def tenants_with_open_cases(session: AsyncSession) -> list[str]:
    """The tenants the weekly rescoring job has work for."""
    query = sa.select(ScoredCase.tenant).where(ScoredCase.status == "open").distinct()
    return sorted((await session.scalars(query)).all())


async def open_case_ids(
    session: AsyncSession, *, tenant: str, after: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    """Keyset page of the tenant's open case ids (for the weekly rescoring job)."""
    query = sa.select(ScoredCase.case_id).where(
        ScoredCase.tenant == tenant, ScoredCase.status == "open"
    )
    if after is not None:
        query = query.where(ScoredCase.case_id > after)
    return list((await session.scalars(query.order_by(ScoredCase.case_id).limit(limit))).all())


async def case_scores(session: AsyncSession, *, tenant: str, case_id: uuid.UUID) -> CaseScores:
    """Every score of a case, newest first, with overrides; NotFound if never scored."""
    rows = (
        await session.scalars(
            sa.select(Score)
            .where(Score.tenant == tenant, Score.case_id == case_id)
            .order_by(Score.scored_at.desc(), Score.id)
        )
    ).all()
    if not rows:
        raise NotFound(f"case {case_id} has no score yet")
    overrides = (
        await session.scalars(
            sa.select(ScoreOverride)
            .where(ScoreOverride.tenant == tenant, ScoreOverride.case_id == case_id)
            .order_by(ScoreOverride.created_at.desc())
        )
    ).all()
    history = [ScoreOut.model_validate(r) for r in rows]
    latest = history[0]
    current = [o for o in overrides if o.score_id == latest.id]
    tier = next((RiskTier(o.risk_tier) for o in current if o.risk_tier), latest.risk_tier)
    priority = next((o.priority for o in current if o.priority is not None), latest.priority)
    return CaseScores(
        case_id=case_id,
        latest=latest,
        history=history,
        overrides=[OverrideOut.model_validate(o) for o in overrides],
        effective_tier=tier,
        effective_priority=priority,
    )


async def override_score(
    session: AsyncSession,
    *,
    tenant: str,
    case_id: uuid.UUID,
    body: OverrideIn,
    correlation_id: str,
    now: datetime,
) -> OverrideOut:
    """Record a person's override of the latest score and stage `score.overridden`."""
    if body.risk_tier is None and body.priority is None:
        raise InvalidActivation("an override changes the risk tier, the priority or both")
    latest = await session.scalar(
        sa.select(Score)
        .where(Score.tenant == tenant, Score.case_id == case_id)
        .order_by(Score.scored_at.desc())
        .limit(1)
    )
    if latest is None:
        raise NotFound(f"case {case_id} has no score to override")
    override = ScoreOverride(
        id=uuid.uuid4(),
        case_id=case_id,
        tenant=tenant,
        score_id=latest.id,
        risk_tier=body.risk_tier.value if body.risk_tier else None,
        priority=body.priority,
        reason=body.reason,
        overridden_by=body.overridden_by,
        created_at=now,
    )
    session.add(override)
    await enqueue_event(
        session,
        topic=SCORING_EVENTS,
        envelope=build_envelope(
            ScoreOverridden(
                case_id=case_id,
                score_id=latest.id,
                override_id=override.id,
                risk_tier=body.risk_tier,
                priority=body.priority,
                reason=body.reason,
                overridden_by=body.overridden_by,
                overridden_at=now,
            ),
            key=str(case_id),
            producer=PRODUCER,
            correlation_id=correlation_id,
            tenant=tenant,
        ),
    )
    await session.flush()
    return OverrideOut.model_validate(override)


# ----------------------------------------------------------------------------- model registry


async def effective_roles(session: AsyncSession, *, tenant: str) -> dict[str, ModelRole]:
    """The roles the tenant scores with, by model key: its own, or the default tenant's while
    it has none."""
    rows = (
        await session.scalars(
            sa.select(ModelRole).where(ModelRole.tenant.in_({tenant, DEFAULT_TENANT}))
        )
    ).all()
    own = {r.key: r for r in rows if r.tenant == tenant}
    return own or {r.key: r for r in rows if r.tenant == DEFAULT_TENANT}


async def _own_roles(
    session: AsyncSession, *, tenant: str, actor: str, now: datetime
) -> dict[str, ModelRole]:
    """The tenant's roles, locked for a change. At its first activation a tenant takes a copy
    of the default tenant's champion and challengers, so changing one role keeps the others
    and a later rollback has the inherited champion to return to."""
    own = {
        r.key: r
        for r in (
            await session.scalars(
                sa.select(ModelRole).where(ModelRole.tenant == tenant).with_for_update()
            )
        ).all()
    }
    if own or tenant == DEFAULT_TENANT:
        return own
    inherited = (
        await session.scalars(
            sa.select(ModelRole)
            .where(ModelRole.tenant == DEFAULT_TENANT, ModelRole.role.in_(ACTIVE_ROLES))
            .order_by(ModelRole.key)
        )
    ).all()
    for role in inherited:
        own[role.key] = ModelRole(
            tenant=tenant,
            key=role.key,
            role=role.role,
            traffic_share=role.traffic_share,
            updated_at=now,
        )
        session.add(own[role.key])
        _log(
            session,
            tenant=tenant,
            key=role.key,
            role=role.role,
            share=role.traffic_share,
            actor=actor,
            reason=f"inherited from tenant {DEFAULT_TENANT}",
            now=now,
        )
    return own


def _summary(row: RegisteredModel, model: Scorecard, role: ModelRole | None) -> dict[str, Any]:
    auc = model.card.get("test", {}).get("auc")
    return {
        "key": row.key,
        "model_id": row.model_id,
        "version": row.version,
        "role": role.role if role else "candidate",
        "traffic_share": role.traffic_share if role else 0.0,
        "created_at": row.created_at,
        "updated_at": role.updated_at if role else row.updated_at,
        "test_auc": auc,
    }


async def register_model(
    session: AsyncSession, *, tenant: str, model: Scorecard, now: datetime
) -> ModelSummary:
    """Add a scorecard version to the shared registry (a candidate for every tenant);
    Conflict if that version exists."""
    if await session.get(RegisteredModel, model.key) is not None:
        raise Conflict(f"model {model.key} is already registered; bump the version")
    row = RegisteredModel(
        key=model.key,
        tenant=tenant,
        model_id=model.model_id,
        version=model.version,
        document=model.model_dump_json(),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return ModelSummary.model_validate(_summary(row, model, None))


async def ensure_default_model(
    session: AsyncSession, *, document: bytes | None, now: datetime
) -> str | None:
    """Register the default model file and make it the default tenant's champion when the
    registry is empty (first start): the platform model every new tenant inherits."""
    if document is None:
        return None
    if await session.scalar(sa.select(sa.func.count()).select_from(RegisteredModel)):
        return None
    model = load_scorecard(document)
    await register_model(session, tenant=DEFAULT_TENANT, model=model, now=now)
    await activate_model(
        session,
        tenant=DEFAULT_TENANT,
        key=model.key,
        body=ActivateIn(role="champion", actor="system", reason="default model at first start"),
        correlation_id=str(uuid.uuid4()),
        now=now,
    )
    return model.key


async def activate_model(
    session: AsyncSession,
    *,
    tenant: str,
    key: str,
    body: ActivateIn,
    correlation_id: str,
    now: datetime,
) -> ModelSummary:
    """Make a model the tenant's champion (the previous one retires), a challenger, or retire
    it; stage `model.activated`."""
    return await _activate(
        session,
        tenant=tenant,
        key=key,
        body=body,
        correlation_id=correlation_id,
        now=now,
        rollback=False,
    )


async def _activate(
    session: AsyncSession,
    *,
    tenant: str,
    key: str,
    body: ActivateIn,
    correlation_id: str,
    now: datetime,
    rollback: bool,
) -> ModelSummary:
    row = await session.get(RegisteredModel, key)
    if row is None:
        raise NotFound(f"no model {key}")
    roles = await _own_roles(session, tenant=tenant, actor=body.actor, now=now)
    current = roles.get(key)
    current_role = current.role if current else "candidate"
    active = [r for r in roles.values() if r.role in ACTIVE_ROLES]
    champion = next((r.key for r in active if r.role == "champion"), None)
    share = 1.0
    if body.role == "champion":
        for other in active:
            if other.role == "champion" and other.key != key:
                other.role, other.traffic_share, other.updated_at = "retired", 0.0, now
                _log(
                    session,
                    tenant=tenant,
                    key=other.key,
                    role="retired",
                    share=0.0,
                    actor=body.actor,
                    reason=f"replaced by {key}",
                    now=now,
                )
    elif body.role == "challenger":
        if current_role == "champion":
            raise InvalidActivation("the champion cannot become a challenger; promote another")
        taken = sum(o.traffic_share for o in active if o.role == "challenger" and o.key != key)
        if taken + body.traffic_share > 0.5 + 1e-9:
            raise InvalidActivation(
                f"challengers would take {taken + body.traffic_share:.0%} of traffic; at most 50%"
            )
        share = body.traffic_share
    else:
        if current_role == "champion":
            raise InvalidActivation("retiring the champion would leave no model; promote another")
        share = 0.0
    if current is None:
        current = ModelRole(tenant=tenant, key=key)
        session.add(current)
    current.role, current.traffic_share, current.updated_at = body.role, share, now
    _log(
        session,
        tenant=tenant,
        key=key,
        role=body.role,
        share=share,
        actor=body.actor,
        reason=body.reason,
        now=now,
    )
    await enqueue_event(
        session,
        topic=SCORING_EVENTS,
        envelope=build_envelope(
            ModelActivated(
                model_key=key,
                role=body.role,
                traffic_share=share,
                previous_model_key=champion if body.role == "champion" else None,
                rollback=rollback,
                activated_at=now,
            ),
            # One partition per tenant keeps its administrative changes in order.
            key=tenant,
            producer=PRODUCER,
            correlation_id=correlation_id,
            tenant=tenant,
        ),
    )
    await session.flush()
    return ModelSummary.model_validate(_summary(row, load_scorecard(row.document), current))


def _log(
    session: AsyncSession,
    *,
    tenant: str,
    key: str,
    role: str,
    share: float,
    actor: str,
    reason: str,
    now: datetime,
) -> None:
    session.add(
        ModelActivation(
            tenant=tenant,
            key=key,
            role=role,
            traffic_share=share,
            actor=actor,
            reason=reason,
            at=now,
        )
    )


async def rollback_champion(
    session: AsyncSession,
    *,
    tenant: str,
    actor: str,
    reason: str,
    correlation_id: str,
    now: datetime,
) -> ModelSummary:
    """Reinstate the champion that preceded the tenant's current one."""
    promotions = (
        await session.scalars(
            sa.select(ModelActivation.key)
            .where(ModelActivation.tenant == tenant, ModelActivation.role == "champion")
            .order_by(ModelActivation.id.desc())
        )
    ).all()
    if not promotions:
        raise Conflict(f"tenant {tenant} has never activated a champion of its own")
    current = promotions[0]
    previous = next((k for k in promotions[1:] if k != current), None)
    if previous is None:
        raise Conflict(f"{current} is the first champion; there is nothing to roll back to")
    return await _activate(
        session,
        tenant=tenant,
        key=previous,
        body=ActivateIn(role="champion", actor=actor, reason=f"rollback: {reason}"),
        correlation_id=correlation_id,
        now=now,
        rollback=True,
    )


async def list_models(session: AsyncSession, *, tenant: str) -> list[ModelSummary]:
    """Every registered model with the role it plays for the tenant."""
    rows = (
        await session.scalars(sa.select(RegisteredModel).order_by(RegisteredModel.created_at))
    ).all()
    roles = await effective_roles(session, tenant=tenant)
    return [
        ModelSummary.model_validate(_summary(r, load_scorecard(r.document), roles.get(r.key)))
        for r in rows
    ]


async def get_model(session: AsyncSession, *, tenant: str, key: str) -> ModelDetail:
    row = await session.get(RegisteredModel, key)
    if row is None:
        raise NotFound(f"no model {key}")
    model = load_scorecard(row.document)
    role = (await effective_roles(session, tenant=tenant)).get(key)
    features = [f.model_dump(exclude={"train_shares"}) for f in model.features]
    return ModelDetail.model_validate(
        {**_summary(row, model, role), "card": model.card, "features": features}
    )


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index Σ (a - e)·ln(a/e), empty shares floored at 1e-4."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, 1e-4), max(a, 1e-4)
        total += (a - e) * math.log(a / e)
    return total


def _row(name: str, value: float) -> StabilityRow:
    status = "alert" if value > PSI_ALERT else "warning" if value > PSI_WARNING else "ok"
    return StabilityRow(name=name, psi=round(value, 6), status=status)


async def monitoring(session: AsyncSession, *, tenant: str, key: str, last: int) -> Monitoring:
    """PSI of the score and of each feature: the tenant's last `last` scores vs the frozen
    training bins."""
    row = await session.get(RegisteredModel, key)
    if row is None:
        raise NotFound(f"no model {key}")
    model = load_scorecard(row.document)
    recent = (
        await session.scalars(
            sa.select(Score.bins)
            .where(Score.tenant == tenant, Score.model_key == key)
            .order_by(Score.scored_at.desc())
            .limit(last)
        )
    ).all()
    if not recent:
        return Monitoring(model_key=key, scores_compared=0, score_psi=None, features=[])
    n = len(recent)
    bands = Counter(int(b.get("__score_band__", 0)) for b in recent)
    score_actual = [bands.get(i, 0) / n for i in range(len(model.score_bands.train_shares))]
    features = []
    for feature in model.features:
        counts = Counter(int(b.get(feature.name, len(feature.bins))) for b in recent)
        actual = [counts.get(i, 0) / n for i in range(len(feature.bins) + 1)]
        features.append(_row(feature.name, psi(feature.train_shares, actual)))
    return Monitoring(
        model_key=key,
        scores_compared=n,
        score_psi=_row("score", psi(model.score_bands.train_shares, score_actual)),
        features=sorted(features, key=lambda r: -r.psi),
    )
