"""Pure contact planning: the first contact by DPD stage or treatment, and when people answer.

The lawful windows and rule packs are shared (`shared.rulepacks`) so compliance can re-check
every contact independently with the same versioned rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shared.rulepacks.windows import Channel, ContactWindow, is_allowed_at, next_allowed_slot

__all__ = [
    "AUTOMATED",
    "RETRY_AFTER",
    "TREATMENTS",
    "Channel",
    "ContactWindow",
    "FirstContact",
    "answer_rate",
    "best_slot",
    "contact_for",
    "dpd_bucket",
    "fallback_contacts",
    "first_contact_for",
    "is_allowed_at",
    "layered_answer_rate",
    "next_allowed_slot",
]


@dataclass(frozen=True)
class FirstContact:
    channel: Channel
    template: str
    stage: str


def first_contact_for(*, days_past_due: int) -> FirstContact:
    """The DPD stage table: <=7 SMS reminder, <=15 friendly call, <=30 call, <=60 specialist
    call, beyond that a pre-legal letter."""
    if days_past_due < 0:
        raise ValueError("days past due cannot be negative")
    if days_past_due <= 7:
        return FirstContact(Channel.SMS, "reminder_sms", "reminder")
    if days_past_due <= 15:
        return FirstContact(Channel.CALL, "first_call_friendly", "early")
    if days_past_due <= 30:
        return FirstContact(Channel.CALL, "early_call", "early")
    if days_past_due <= 60:
        return FirstContact(Channel.CALL, "specialist_call", "late")
    return FirstContact(Channel.LETTER, "pre_legal_notice", "legal_review")


#: Scoring's recommended treatment -> the first contact that carries it out.
TREATMENTS: dict[str, FirstContact] = {
    "sms_reminder": FirstContact(Channel.SMS, "reminder_sms", "reminder"),
    "call": FirstContact(Channel.CALL, "collection_call", "early"),
    "field_visit": FirstContact(Channel.VISIT, "field_visit", "late"),
    "lawyers_letter": FirstContact(Channel.LETTER, "lawyers_letter", "legal_review"),
    "litigation": FirstContact(Channel.LETTER, "pre_litigation_notice", "legal"),
    "asset_disposal": FirstContact(Channel.LETTER, "asset_disposal_notice", "legal"),
    "restructuring_offer": FirstContact(Channel.CALL, "restructuring_offer", "restructuring"),
    "settlement_offer": FirstContact(Channel.CALL, "settlement_offer", "negotiation"),
}
AUTOMATED = frozenset({Channel.SMS, Channel.EMAIL})


def contact_for(
    *, treatment: str | None, days_past_due: int, human_only: bool = False
) -> FirstContact:
    """The contact for scoring's treatment (the DPD stage table when there is none); a case
    escalated to a human gets a human call instead of an automated channel."""
    chosen = TREATMENTS.get(treatment or "") or first_contact_for(days_past_due=days_past_due)
    if human_only and chosen.channel in AUTOMATED:
        return FirstContact(Channel.CALL, "human_follow_up", chosen.stage)
    return chosen


# When people answer, by local hour, before any outcome is known: mornings and early evenings,
# not meal times (the plans: "avoid meal and sleep times, prefer when people actually answer").
_CALL_PRIOR = {
    8: 0.15,
    9: 0.25,
    10: 0.35,
    11: 0.33,
    12: 0.12,
    13: 0.18,
    14: 0.28,
    15: 0.3,
    16: 0.3,
    17: 0.24,
    18: 0.14,
    19: 0.34,
    20: 0.36,
    21: 0.2,
}
_MESSAGE_PRIOR = {h: (0.5 if h in (10, 11, 15, 16, 19, 20) else 0.3) for h in range(24)}
PRIOR_STRENGTH = 20.0  # the prior counts as this many attempts
HALF_LIFE_HOURS = 12.0  # waiting 12 h for a better hour halves its appeal


def prior_answer_rate(channel: Channel, hour: int) -> float:
    if channel in (Channel.CALL, Channel.VISIT):
        return _CALL_PRIOR.get(hour, 0.05)
    return _MESSAGE_PRIOR.get(hour, 0.3)


def answer_rate(*, channel: Channel, hour: int, attempts: int, connected: int) -> float:
    """Beta-binomial posterior mean: the prior, moved by this segment's outcomes."""
    prior = prior_answer_rate(channel, hour)
    return (prior * PRIOR_STRENGTH + connected) / (PRIOR_STRENGTH + attempts)


#: (attempts, connected) by local hour, for one level of the segment hierarchy.
HourStats = dict[int, tuple[int, int]]


def layered_answer_rate(*, channel: Channel, hour: int, levels: Sequence[HourStats]) -> float:
    """The answer rate at a local hour learned through nested segments, broadest first (e.g.
    the zone, then risk tier and DPD bucket within it, then the debtor's own outcomes).

    Each level's posterior becomes the next level's prior with the same strength, so a debtor
    with three answered evening calls moves their own rate but not the segment's, and a segment
    with no data falls back to the level above it (partial pooling)."""
    rate = prior_answer_rate(channel, hour)
    for stats in levels:
        attempts, connected = stats.get(hour, (0, 0))
        rate = (rate * PRIOR_STRENGTH + connected) / (PRIOR_STRENGTH + attempts)
    return rate


def dpd_bucket(days_past_due: int | None) -> str:
    """The delinquency bucket used to group debtors who answer alike (M1 = 1-30 DPD ...)."""
    if days_past_due is None or days_past_due <= 0:
        return "M0"
    return f"M{min((days_past_due - 1) // 30 + 1, 4)}"


def best_slot(
    *,
    candidates: list[datetime],
    zone: ZoneInfo,
    channel: Channel,
    stats: HourStats | None = None,
    levels: Sequence[HourStats] = (),
) -> datetime:
    """Among lawful candidate slots (earliest first), the one with the best expected answer
    rate, discounted for waiting. `levels` are nested segments' (attempts, connected) by local
    hour, broadest first; `stats` alone is one level."""
    if not candidates:
        raise ValueError("no candidate slots")
    first = candidates[0]
    layers = [*levels, stats] if stats is not None else list(levels)

    def value(slot: datetime) -> float:
        hour = slot.astimezone(zone).hour
        rate = layered_answer_rate(channel=channel, hour=hour, levels=layers)
        waited = (slot - first).total_seconds() / 3600
        return float(rate * 0.5 ** (waited / HALF_LIFE_HOURS))

    return max(candidates, key=lambda slot: (value(slot), -slot.timestamp()))


#: Where to turn when the debtor opted out of the treatment's channel: the next channels that
#: carry the same message, most similar first. A visit is never a fallback (it is the most
#: intrusive contact there is) and a letter always remains.
FALLBACKS: dict[Channel, tuple[Channel, ...]] = {
    Channel.CALL: (Channel.SMS, Channel.EMAIL, Channel.LETTER),
    Channel.SMS: (Channel.EMAIL, Channel.CALL, Channel.LETTER),
    Channel.EMAIL: (Channel.SMS, Channel.LETTER, Channel.CALL),
    Channel.VISIT: (Channel.CALL, Channel.LETTER),
    Channel.LETTER: (Channel.EMAIL,),
}
FALLBACK_TEMPLATES: dict[Channel, str] = {
    Channel.CALL: "collection_call",
    Channel.SMS: "payment_reminder_sms",
    Channel.EMAIL: "payment_reminder_email",
    Channel.LETTER: "payment_reminder_letter",
}


def fallback_contacts(
    chosen: FirstContact, *, opted_out: frozenset[Channel], human_only: bool = False
) -> list[FirstContact]:
    """The contacts to try, in order, when `chosen`'s channel cannot be used: never an
    opted-out channel, never an automated one for a case escalated to a human."""
    found = []
    for channel in FALLBACKS[chosen.channel]:
        if channel in opted_out or (human_only and channel in AUTOMATED):
            continue
        found.append(FirstContact(channel, FALLBACK_TEMPLATES[channel], chosen.stage))
    return found


#: How long to wait before trying a channel again after no answer (the rules may add more).
RETRY_AFTER: dict[Channel, timedelta] = {
    Channel.CALL: timedelta(hours=2),
    Channel.SMS: timedelta(days=1),
    Channel.EMAIL: timedelta(days=1),
    Channel.VISIT: timedelta(days=3),
    Channel.LETTER: timedelta(days=7),
}
