"""Cases HTTP routes: parse, call the service in one transaction, map errors."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from sqlalchemy import exc as sa_exc

from services.cases import service
from services.cases.schemas import CaseCreate, CaseOut
from shared.contracts import utc_now
from shared.http import Conflict, problem_responses
from shared.logging import correlation_id
from shared.runtime import unit_of_work

router = APIRouter(prefix="/v1", tags=["cases"])


@router.post(
    "/cases",
    status_code=201,
    response_model=CaseOut,
    summary="Open a case for a delinquent account",
    responses=problem_responses(409, 413),
)
async def open_case(
    body: CaseCreate,
    request: Request,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            description="Retries with the same key and body return the first response.",
        ),
    ] = None,
) -> CaseOut:
    """Validates, writes the case and its `case.opened` event in one transaction."""
    try:
        async with unit_of_work(request) as session:
            result = await service.open_case(
                session,
                command=body,
                idempotency_key=idempotency_key,
                correlation_id=correlation_id.get() or str(uuid.uuid4()),
                now=utc_now(),
            )
    except sa_exc.IntegrityError:
        # A concurrent request won the race for the same account or idempotency key.
        raise Conflict(
            f"account {body.account_id} or this Idempotency-Key was used by a concurrent request"
        ) from None
    response.headers["Location"] = f"/v1/cases/{result.case.id}"
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return result.case


@router.get(
    "/cases/{case_id}",
    response_model=CaseOut,
    summary="Read a case",
    responses=problem_responses(404),
)
async def get_case(case_id: uuid.UUID, request: Request) -> CaseOut:
    async with unit_of_work(request) as session:
        return await service.get_case(session, case_id=case_id, today=utc_now().date())
