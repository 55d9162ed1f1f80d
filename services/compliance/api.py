"""Compliance HTTP routes: read and verify the evidence chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from services.compliance import service
from services.compliance.schemas import (
    AuditEntries,
    ChainVerification,
    CheckpointOut,
    ConsistencyProof,
    InclusionProof,
    TreeHead,
)
from services.compliance.settings import ComplianceSettings
from shared.http import problem_responses
from shared.runtime import runtime_of, unit_of_work

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get(
    "/entries",
    response_model=AuditEntries,
    summary="Evidence entries, oldest first",
    responses=problem_responses(),
)
async def list_entries(
    request: Request,
    case_id: Annotated[
        str | None, Query(min_length=1, max_length=200, description="The case (partition key).")
    ] = None,
    after_seq: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Return entries after this seq.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditEntries:
    async with unit_of_work(request) as session:
        return await service.list_entries(
            session, case_key=case_id, after_seq=after_seq, limit=limit
        )


@router.get(
    "/verify",
    response_model=ChainVerification,
    summary="Recompute the hash chain and report the first broken link",
    responses=problem_responses(),
)
async def verify(request: Request) -> ChainVerification:
    settings = runtime_of(request).settings
    chunk = settings.verify_chunk_size if isinstance(settings, ComplianceSettings) else 5000
    async with unit_of_work(request) as session:
        return await service.verify_chain(session, chunk_size=chunk)


@router.get("/tree-head", response_model=TreeHead, summary="Merkle tree head of the log")
async def get_tree_head(request: Request) -> TreeHead:
    async with unit_of_work(request) as session:
        return await service.tree_head(session)


@router.get(
    "/proof/{seq}",
    response_model=InclusionProof,
    summary="Inclusion proof of an entry (RFC 6962 audit path)",
    responses=problem_responses(404),
)
async def get_inclusion(
    seq: Annotated[int, Path(ge=1, le=2**63 - 1)],
    request: Request,
    tree_size: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> InclusionProof:
    async with unit_of_work(request) as session:
        return await service.inclusion(session, seq=seq, tree_size=tree_size)


@router.get(
    "/consistency",
    response_model=ConsistencyProof,
    summary="Consistency proof between two tree sizes (the log only grew)",
    responses=problem_responses(),
)
async def get_consistency(
    request: Request,
    first: Annotated[int, Query(ge=1, le=2**63 - 1)],
    second: Annotated[int, Query(ge=1, le=2**63 - 1)],
) -> ConsistencyProof:
    async with unit_of_work(request) as session:
        return await service.consistency(session, first=first, second=second)


@router.get(
    "/checkpoints",
    response_model=list[CheckpointOut],
    summary="Signed tree heads, newest first (Ed25519; anchor them outside the system)",
    responses=problem_responses(),
)
async def get_checkpoints(
    request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> list[CheckpointOut]:
    async with unit_of_work(request) as session:
        return await service.list_checkpoints(session, limit=limit)
