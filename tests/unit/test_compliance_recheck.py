"""The independent re-check as pure logic: the shared rule packs applied to what compliance
saw, severities, holds in force, and history built from contacts (not from contact's view)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.compliance.recheck import (
    Contact,
    HoldSpan,
    Situation,
    recheck,
    severity_of,
)
from shared.contracts import OutcomeResult, Severity
from shared.rulepacks import Channel, Policy

NEW_YORK = ZoneInfo("America/New_York")


def at_ny(day: int, hour: int) -> datetime:
    return datetime(2026, 5, day, hour, tzinfo=NEW_YORK).astimezone(UTC)


def call(
    n: int, when: datetime, result: OutcomeResult = OutcomeResult.NO_ANSWER, case: str = "c1"
) -> Contact:
    return Contact(
        subject=f"outcome:{n}",
        planned=False,
        case_id=case,
        debtor_id="p1",
        channel=Channel.CALL,
        at=when,
        result=result,
    )


def us(earlier: list[Contact], **extra: object) -> Situation:
    return Situation(
        zones=("America/New_York",),
        packs=("us-federal",),
        policy=Policy(),
        earlier_contacts=earlier,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("rule_id", "severity"),
    [
        ("HOLD-BANKRUPTCY", Severity.CRITICAL),
        ("US-CEASE", Severity.CRITICAL),
        ("OPT-OUT", Severity.CRITICAL),
        ("US-WORKPLACE", Severity.CRITICAL),
        ("CN-HOURS", Severity.MAJOR),
        ("US-7IN7", Severity.MAJOR),
        ("CN-CONSENT-23", Severity.MAJOR),
        ("POLICY-QUIET", Severity.MINOR),
        ("POLICY-HOLIDAY", Severity.MINOR),
        ("US-BUNCHING", Severity.MINOR),
    ],
)
def test_severity(rule_id: str, severity: Severity) -> None:
    assert severity_of(rule_id) is severity


def test_eighth_call_in_seven_days_is_found_from_compliances_own_history() -> None:
    earlier = [call(i, at_ny(1 + i % 7, 10 + i // 7)) for i in range(7)]
    eighth = call(99, at_ny(7, 15))
    assert [f.rule_id for f in recheck(eighth, us(earlier))] == ["US-7IN7"]
    assert recheck(eighth, us(earlier[1:])) == []  # seven is lawful
    # The same seven counted against another debt of the person do not count (per debt).
    other_debt = [call(i, c.at, case="c2") for i, c in enumerate(earlier)]
    assert recheck(eighth, us(other_debt)) == []


def test_a_conversation_silences_the_next_seven_days() -> None:
    talk = call(1, at_ny(4, 10), OutcomeResult.RIGHT_PARTY_CONTACT)
    assert [f.rule_id for f in recheck(call(2, at_ny(10, 10)), us([talk]))] == ["US-7IN7"]
    assert recheck(call(3, at_ny(11, 10)), us([talk])) == []
    # A third party answering is not a conversation with the debtor.
    other = call(4, at_ny(4, 10), OutcomeResult.THIRD_PARTY)
    assert recheck(call(5, at_ny(6, 10)), us([other])) == []


def test_hours_holds_and_the_contact_itself_is_not_its_own_history() -> None:
    late = call(1, at_ny(4, 21))
    findings = recheck(late, us([late]))
    assert [(f.rule_id, f.severity) for f in findings] == [("US-HOURS", Severity.MAJOR)]
    cease = HoldSpan("cease", at_ny(4, 9), None, None)
    assert [f.rule_id for f in recheck(call(2, at_ny(4, 10)), us([], holds=[cease]))] == [
        "US-CEASE"
    ]
    released = HoldSpan("cease", at_ny(4, 9), None, at_ny(4, 9) + timedelta(minutes=30))
    assert recheck(call(3, at_ny(4, 10)), us([], holds=[released])) == []
    ended = HoldSpan("dispute", at_ny(1, 9), at_ny(3, 9), None)
    assert ended.in_force_at(at_ny(2, 9))
    assert not ended.in_force_at(at_ny(3, 9))
    unknown_kind = HoldSpan("a-kind-from-a-newer-build", at_ny(4, 9), None, None)
    assert recheck(call(4, at_ny(4, 10)), us([], holds=[unknown_kind])) != []


def test_planned_contacts_are_not_judged_on_caps() -> None:
    earlier = [call(i, at_ny(1 + i % 7, 10 + i // 7)) for i in range(7)]
    planned = Contact(
        subject="planned:a",
        planned=True,
        case_id="c1",
        debtor_id="p1",
        channel=Channel.CALL,
        at=at_ny(7, 15),
    )
    assert recheck(planned, us(earlier)) == []
    assert [f.rule_id for f in recheck(planned, us(earlier, opted_out=frozenset({"call"})))] == [
        "US-CHANNEL-OPTOUT"
    ]
