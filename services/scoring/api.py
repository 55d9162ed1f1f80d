"""Scoring HTTP routes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from services.scoring import service
from services.scoring.schemas import CaseScores
from shared.http import problem_responses
from shared.runtime import unit_of_work

router = APIRouter(prefix="/v1", tags=["scores"])


@router.get(
    "/scores/{case_id}",
    response_model=CaseScores,
    summary="Latest score of a case and its history",
    responses=problem_responses(404),
)
async def get_scores(case_id: uuid.UUID, request: Request) -> CaseScores:
    async with unit_of_work(request) as session:
        return await service.case_scores(session, case_id=case_id)
