"""Contact HTTP routes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from services.contact import service
from services.contact.schemas import AttemptOut, CaseAttempts
from shared.http import problem_responses
from shared.runtime import unit_of_work

router = APIRouter(prefix="/v1", tags=["contact"])


@router.get(
    "/cases/{case_id}/attempts",
    response_model=CaseAttempts,
    summary="Contact attempts planned for a case",
    responses=problem_responses(404),
)
async def get_case_attempts(case_id: uuid.UUID, request: Request) -> CaseAttempts:
    async with unit_of_work(request) as session:
        return await service.case_attempts(session, case_id=case_id)


@router.get(
    "/attempts/{attempt_id}",
    response_model=AttemptOut,
    summary="One contact attempt",
    responses=problem_responses(404),
)
async def get_attempt(attempt_id: uuid.UUID, request: Request) -> AttemptOut:
    async with unit_of_work(request) as session:
        return await service.get_attempt(session, attempt_id=attempt_id)
