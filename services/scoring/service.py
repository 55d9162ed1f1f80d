"""Scoring use cases. The caller owns the transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import domain
from services.scoring.models import Score
from services.scoring.schemas import CaseScores, ScoreOut
from shared.contracts import CaseOpened, CaseScored, Envelope, RiskTier, build_envelope
from shared.contracts.topics import SCORING_EVENTS
from shared.http import NotFound
from shared.outbox import enqueue_event

PRODUCER = "scoring"


async def score_opened_case(
    session: AsyncSession, *, event: CaseOpened, envelope: Envelope, now: datetime
) -> Score:
    """Score a newly opened case with the rule model and stage `case.scored`."""
    result = domain.score_by_rule(
        domain.RuleInputs(
            days_past_due=event.days_past_due,
            amount_outstanding=event.amount_outstanding,
            industry_risk=event.industry_risk,
        )
    )
    score = Score(
        id=uuid.uuid4(),
        case_id=event.case_id,
        model_id=domain.RULE_MODEL_ID,
        model_version=domain.RULE_MODEL_VERSION,
        priority=result.priority,
        risk_tier=result.risk_tier.value,
        days_past_due=event.days_past_due,
        amount_outstanding=event.amount_outstanding,
        currency=event.currency,
        industry_risk=event.industry_risk,
        reason_codes=list(result.reason_codes),
        source_event_id=str(envelope.event_id),
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
                risk_tier=RiskTier(score.risk_tier),
                days_past_due=score.days_past_due,
                amount_outstanding=score.amount_outstanding,
                currency=score.currency,
                reason_codes=score.reason_codes,
                scored_at=now,
            ),
            key=str(score.case_id),
            producer=PRODUCER,
            correlation_id=envelope.correlation_id,
            causation_id=str(envelope.event_id),
        ),
    )
    return score


async def case_scores(session: AsyncSession, *, case_id: uuid.UUID) -> CaseScores:
    """Every score of a case, newest first; NotFound if it was never scored."""
    rows = (
        await session.scalars(
            sa.select(Score).where(Score.case_id == case_id).order_by(Score.scored_at.desc())
        )
    ).all()
    if not rows:
        raise NotFound(f"case {case_id} has no score yet")
    history = [ScoreOut.model_validate(r) for r in rows]
    return CaseScores(case_id=case_id, latest=history[0], history=history)
