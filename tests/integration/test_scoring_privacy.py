"""A debtor's erasure reaches scoring: the model inputs it holds for their cases go, the case
is never rescored, the decision record stays; another tenant's erasure changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI

from services.scoring.handlers import make_handlers
from services.scoring.models import Score, ScoredCase
from shared.bus import MessageProcessor
from shared.contracts import CaseUpdated, DebtorErased, build_envelope, utc_now
from tests.integration import test_scoring_service as scoring_tests
from tests.integration.test_scoring_service import RISKY, SAFE, as_record, opened, score

models = scoring_tests.models
url = scoring_tests.url
app = scoring_tests.app


async def test_erasure_removes_model_inputs_and_stops_rescoring(app: FastAPI) -> None:
    erased, kept = opened(RISKY), opened(SAFE)
    await score(app, erased, tenant="acme")
    await score(app, kept, tenant="acme")
    proc = MessageProcessor(
        consumer_name="scoring",
        handlers=make_handlers(app.state.scoring),
        max_retries=0,
        retry_backoff_ms=0,
    )

    def env(payload: Any, tenant: str) -> bytes:
        return build_envelope(
            payload, key=str(erased.debtor_id), producer="cases", correlation_id="c", tenant=tenant
        ).to_bytes()

    erasure = DebtorErased(
        debtor_id=erased.debtor_id,
        case_ids=[erased.case_id],
        request_ref="DSR-1",
        erased_fields=["name"],
        erased_at=utc_now(),
    )
    later = CaseUpdated(
        case_id=erased.case_id,
        days_past_due=120,
        dpd_bucket="91-180",
        stage="late",
        amount_outstanding="5000",
        currency="CNY",
        updated_at=utc_now(),
    )
    stream = [env(erasure, "globex"), env(erasure, "acme"), env(later, "acme")]
    async with app.state.runtime.sessions() as session, session.begin():
        outcomes = [
            (await proc.process(session, as_record(value, i))).outcome
            for i, value in enumerate(stream)
        ]
    # globex's erasure names acme's case: dead-lettered, nothing applied.
    assert outcomes == ["dead_lettered", "processed", "processed"]
    async with app.state.runtime.sessions() as session:
        snapshots = {s.case_id: s for s in (await session.scalars(sa.select(ScoredCase))).all()}
        scores = (await session.execute(sa.select(Score.case_id, Score.bins))).all()
    assert snapshots[erased.case_id].risk_features == {}
    assert snapshots[erased.case_id].status == "closed"
    assert snapshots[kept.case_id].risk_features != {}
    by_case: dict[uuid.UUID, list[Any]] = {}
    for case_id, bins in scores:
        by_case.setdefault(case_id, []).append(bins)
    # One score each: the update after the erasure did not rescore the erased case.
    assert [len(b) for b in by_case.values()] == [1, 1]
    assert by_case[erased.case_id] == [{}]
    assert by_case[kept.case_id][0] != {}
