"""The envelope and the payload contracts: round trips, strictness, versions, schemas."""

from __future__ import annotations

import json
import uuid
from datetime import date

import pytest
from pydantic import ValidationError

from shared.contracts import (
    CaseOpened,
    Envelope,
    UnknownEventError,
    build_envelope,
    canonical_json,
    parse_payload,
    utc_now,
)
from shared.contracts.schemas import render, stale_files


def opened(**overrides: object) -> CaseOpened:
    fields: dict[str, object] = {
        "case_id": uuid.uuid4(),
        "account_id": "A-1",
        "debtor_id": uuid.uuid4(),
        "debtor_time_zone": "Asia/Shanghai",
        "product": "card",
        "currency": "CNY",
        "principal": "100.5",
        "interest": "0",
        "fees": "0",
        "amount_outstanding": "100.5",
        "due_date": date(2026, 10, 1),
        "days_past_due": 3,
        "industry_risk": 10,
        "opened_at": utc_now(),
    }
    fields.update(overrides)
    return CaseOpened.model_validate(fields)


def test_round_trip_keeps_every_field() -> None:
    payload = opened()
    envelope = build_envelope(
        payload,
        key=str(payload.case_id),
        producer="cases",
        correlation_id="c-1",
        tenant="acme",
        causation_id="x",
        actor="crm:front-desk",
    )
    decoded = Envelope.from_bytes(envelope.to_bytes())
    assert decoded == envelope
    assert parse_payload(decoded) == payload
    assert decoded.type == "case.opened"
    assert decoded.version == 1
    assert (decoded.tenant, decoded.actor) == ("acme", "crm:front-desk")
    assert decoded.occurred_at.tzinfo is not None


def test_money_travels_as_exact_decimal_strings() -> None:
    body = json.loads(
        build_envelope(
            opened(), key="k", producer="p", correlation_id="c", tenant="default"
        ).to_bytes()
    )
    assert body["payload"]["principal"] == "100.50"
    assert body["payload"]["interest"] == "0.00"


def test_canonical_json_is_stable_and_sorted() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("debtor_time_zone", "Mars/Olympus"),
        ("debtor_time_zone", "../etc/passwd"),
        ("currency", "cny"),
        ("principal", "-1"),
        ("principal", "1.001"),
        ("days_past_due", -1),
    ],
)
def test_payload_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        opened(**{field: value})
    assert field in str(info.value)


def test_envelope_rejects_unknown_fields_and_bad_type_names() -> None:
    good = json.loads(
        build_envelope(
            opened(), key="k", producer="p", correlation_id="c", tenant="default"
        ).to_bytes()
    )
    with pytest.raises(ValidationError):
        Envelope.model_validate({**good, "extra": 1})
    with pytest.raises(ValidationError):
        Envelope.model_validate({**good, "type": "CaseOpened"})
    with pytest.raises(ValidationError):
        Envelope.model_validate({**good, "occurred_at": "2026-01-01T00:00:00"})  # naive


def test_unknown_version_is_refused_by_name() -> None:
    envelope = build_envelope(opened(), key="k", producer="p", correlation_id="c", tenant="default")
    with pytest.raises(UnknownEventError, match=r"case\.opened.*version 7"):
        parse_payload(envelope.model_copy(update={"version": 7}))


def test_published_schemas_are_up_to_date() -> None:
    assert stale_files() == [], "run `make schemas` and commit the result"
    index = json.loads(render()["index.json"])
    assert {e["type"] for e in index["events"]} == {
        "case.opened",
        "case.updated",
        "case.assigned",
        "case.closed",
        "debtor.preferences_changed",
        "debtor.erased",
        "ptp.created",
        "ptp.kept",
        "plan.created",
        "payment.received",
        "ptp.broken",
        "case.scored",
        "score.overridden",
        "contact.planned",
        "contact.outcome",
        "contact.outcome_recorded",
        "contact.escalated",
        "contact.blocked",
        "contact.cancelled",
        "contact.policy_changed",
        "admin.key_created",
        "admin.key_revoked",
        "model.activated",
        "compliance.checkpoint",
        "case.hold_placed",
        "case.hold_released",
        "violation.detected",
        "complaint.opened",
        "complaint.status_changed",
        "transcript.reviewed",
        "qa.reviewed",
        "compliance.purged",
    }
    planned = json.loads(render()["contact.planned.v1.json"])
    assert "planned_at" in planned["required"]
    assert planned["x-topic"] == "contact.events"
