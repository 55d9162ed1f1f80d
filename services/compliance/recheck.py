"""The independent re-check: a contact judged again by the shared rule packs, from what
compliance learned from the events alone (never from contact's own decision). Pure: no I/O.

A contact that happened (a dialer's outcome) is checked against everything: hours in every
candidate zone, holds, opt-outs, consent for agencies and third parties, caps counted over
the contacts compliance itself saw, and the minimum gap. A contact that was only planned is
checked for what must already hold when it is scheduled: the holds, opt-outs and consents
known when contact scheduled it, and the hours at the moment it is planned for. (A plan
withdrawn because of an opt-out or hold that came after it was lawful; if the dialer makes the
call anyway, that outcome is the violation.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.contracts import OutcomeResult, Severity
from shared.rulepacks import (
    Attempt,
    Channel,
    DebtorState,
    DecisionRequest,
    Hold,
    Objection,
    Policy,
    attempt_from_outcome,
    decide,
)

_CRITICAL_PREFIXES = ("HOLD-", "US-CEASE", "US-ATTORNEY", "US-DISPUTE", "UK-DISPUTE")
_CRITICAL = frozenset({"OPT-OUT", "US-CHANNEL-OPTOUT", "US-WORKPLACE"})
_MINOR_PREFIXES = ("POLICY-", "US-BUNCHING")


def severity_of(rule_id: str) -> Severity:
    """Critical: contact that must not happen at all (a hold, an opt-out). Minor: a stricter
    local policy. Major: everything else the law sets (hours, caps, consent)."""
    if rule_id in _CRITICAL or rule_id.startswith(_CRITICAL_PREFIXES):
        return Severity.CRITICAL
    if rule_id.startswith(_MINOR_PREFIXES):
        return Severity.MINOR
    return Severity.MAJOR


@dataclass(frozen=True)
class Contact:
    """One contact as compliance saw it."""

    subject: str  # outcome:<id> or planned:<attempt id>
    planned: bool
    case_id: str
    debtor_id: str
    channel: Channel
    at: datetime
    result: OutcomeResult | None = None
    agency: str | None = None
    scheduled_at: datetime | None = None  # planned: when it was scheduled (None: at `at`)

    @property
    def judged_at(self) -> datetime:
        """The moment whose holds, opt-outs, consents and policy the contact is judged by."""
        if self.planned and self.scheduled_at is not None:
            return min(self.scheduled_at, self.at)
        return self.at

    def as_attempt(self) -> Attempt:
        """This contact as part of a later contact's history."""
        return attempt_from_outcome(
            at=self.at,
            channel=self.channel,
            debt_id=self.case_id,
            result=self.result,
            agency=self.agency,
        )


@dataclass(frozen=True)
class HoldSpan:
    kind: str
    in_force_from: datetime
    ends_at: datetime | None
    released_at: datetime | None

    def in_force_at(self, at: datetime) -> bool:
        if at < self.in_force_from:
            return False
        if self.ends_at is not None and at >= self.ends_at:
            return False
        return self.released_at is None or at < self.released_at


@dataclass(frozen=True)
class Situation:
    """What was known at the contact's moment."""

    zones: tuple[str, ...]
    packs: tuple[str, ...]
    policy: Policy
    holds: Sequence[HoldSpan] = ()
    opted_out: frozenset[str] = frozenset()
    consents: frozenset[str] = frozenset()
    earlier_contacts: Sequence[Contact] = ()  # the debtor's contacts before this one


@dataclass(frozen=True)
class Finding:
    rule_id: str
    citation: str
    reason: str
    severity: Severity


def _known_holds(holds: Iterable[HoldSpan], at: datetime) -> frozenset[Hold]:
    found = set()
    for hold in holds:
        if hold.in_force_at(at):
            try:
                found.add(Hold(hold.kind))
            except ValueError:
                found.add(
                    Hold.DO_NOT_CONTACT
                )  # a kind this build does not know still stops contact
    return frozenset(found)


def recheck(contact: Contact, situation: Situation) -> list[Finding]:
    """Every rule the contact broke (empty when it was lawful)."""
    channels = {c.value for c in Channel}
    opted_out = frozenset(Channel(c) for c in situation.opted_out if c in channels)
    history: tuple[Attempt, ...] = ()
    if not contact.planned:
        history = tuple(
            c.as_attempt()
            for c in situation.earlier_contacts
            if not c.planned and c.at < contact.at and c.subject != contact.subject
        )
    state = DebtorState(
        holds=_known_holds(situation.holds, contact.judged_at),
        opted_out=opted_out,
        no_workplace="workplace" in situation.opted_out,
        consents=situation.consents,
        history=history,
    )
    request = DecisionRequest(
        debtor_id=contact.debtor_id,
        debt_id=contact.case_id,
        channel=contact.channel,
        at=contact.at,
        zones=situation.zones,
        agency=contact.agency,
        third_party=contact.result is OutcomeResult.THIRD_PARTY,
    )
    decision = decide(request, state, packs=situation.packs, policy=situation.policy)
    return [_finding(o) for o in decision.objections]


def _finding(objection: Objection) -> Finding:
    return Finding(
        rule_id=objection.rule_id,
        citation=objection.citation,
        reason=objection.reason,
        severity=severity_of(objection.rule_id),
    )
