"""Contact rule packs and the decision engine. Pure: no I/O, no clock (the caller passes `at`).

Each pack is versioned data plus code: rules with the stable ids and citations of
REGULATIONS.md. A tenant picks packs and may add local policy, which can only make rules
stricter (windows are intersected, caps take the minimum). A decision names every rule that
objects and, where time alone will lift it, the next moment the contact becomes allowed.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from shared.contracts import HoldKind, OutcomeResult
from shared.rulepacks.windows import (
    Channel,
    ContactWindow,
    LocalClock,
    clock_for,
    next_allowed_slot,
    next_window_start,
    start_of_local_day,
)

__all__ = [
    "PACKS",
    "Attempt",
    "Channel",
    "DebtorState",
    "Decision",
    "DecisionRequest",
    "Hold",
    "Objection",
    "Policy",
    "decide",
    "hours_rule_ids",
]


# Holds are the cases service's vocabulary (its published contract), not a copy of it.
Hold = HoldKind
#: Holds that stop contact with the person on every debt; the others hold one case.
PERSON_HOLDS = frozenset(
    {"bankruptcy", "deceased", "attorney", "cease", "identity_theft", "do_not_contact"}
)
#: Outcomes in which someone answered: what caps on connected calls count.
CONNECTED_RESULTS = frozenset(
    {
        OutcomeResult.RIGHT_PARTY_CONTACT,
        OutcomeResult.THIRD_PARTY,
        OutcomeResult.PROMISE_TO_PAY,
        OutcomeResult.REFUSED,
        OutcomeResult.DISPUTE_RAISED,
        OutcomeResult.CALLBACK_REQUESTED,
        OutcomeResult.AGITATED,
    }
)
#: A conversation with the debtor about the debt (Reg F's quiet week); a third party is not.
CONVERSATION_RESULTS = CONNECTED_RESULTS - {OutcomeResult.THIRD_PARTY}


@dataclass(frozen=True)
class Attempt:
    """A past contact attempt as the contact service recorded it (any agency, any dialer)."""

    at: datetime
    channel: Channel
    debt_id: str
    connected: bool = False
    conversation: bool = False  # a telephone conversation about the debt took place
    consented: bool = False  # the consumer asked for or agreed to this call (Reg F)
    agency: str | None = None


def attempt_from_outcome(
    *,
    at: datetime,
    channel: str,
    debt_id: str,
    result: str | None,
    agency: str | None = None,
) -> Attempt:
    """A reported outcome as a past attempt: connected and conversation read from its result
    the same way by the service that decides and the one that re-checks."""
    outcome = OutcomeResult(result) if result is not None else None
    return Attempt(
        at=at,
        channel=Channel(channel),
        debt_id=debt_id,
        connected=outcome in CONNECTED_RESULTS,
        conversation=channel == Channel.CALL and outcome in CONVERSATION_RESULTS,
        agency=agency,
    )


@dataclass(frozen=True)
class DecisionRequest:
    debtor_id: str
    debt_id: str
    channel: Channel
    at: datetime  # the send time for SMS and e-mail
    zones: tuple[str, ...]  # every zone the debtor may be in (address, area code, ...)
    agency: str | None = None
    third_party: bool = False
    consented: bool = False
    workplace: bool = False  # reaching the debtor at work (a work number, e-mail or address)


@dataclass(frozen=True)
class DebtorState:
    holds: frozenset[Hold] = frozenset()
    opted_out: frozenset[Channel] = frozenset()
    no_workplace: bool = False  # the debtor (or employer) said: not at work
    consents: frozenset[str] = frozenset()  # "agency:<name>", "third_party:<id>"
    history: Sequence[Attempt] = ()


# Objections and decisions are named tuples, not dataclasses: a frozen dataclass costs about
# a microsecond to build and a decision budget is ten.
class Objection(NamedTuple):
    rule_id: str
    citation: str
    reason: str
    until: datetime | None  # None: time alone does not lift it


class Decision(NamedTuple):
    allowed: bool
    objections: tuple[Objection, ...]
    next_allowed_at: datetime | None


@dataclass(frozen=True)
class Policy:
    """Local policy on top of the packs: only ever stricter."""

    window: ContactWindow | None = None
    quiet: tuple[tuple[time, time], ...] = ()  # e.g. meal times ((12:00, 13:30),)
    holidays: frozenset[date] = frozenset()
    caps: dict[str, int] = field(default_factory=dict)  # rule id -> lower cap
    min_gap: timedelta | None = None


_CLOCKS_FOR: dict[tuple[ZoneInfo, ...], tuple[LocalClock, ...]] = {}
_ZONES_FOR: dict[tuple[str, ...], tuple[ZoneInfo, ...]] = {}


def _clocks_for(zones: tuple[ZoneInfo, ...]) -> tuple[LocalClock, ...]:
    clocks = _CLOCKS_FOR.get(zones)
    if clocks is None:
        clocks = _CLOCKS_FOR[zones] = tuple(clock_for(zone) for zone in zones)
    return clocks


def _zones_for(names: tuple[str, ...]) -> tuple[ZoneInfo, ...]:
    """ZoneInfo objects for zone names (an unknown name raises, and is not remembered)."""
    zones = _ZONES_FOR.get(names)
    if zones is None:
        zones = tuple(ZoneInfo(name) for name in names)
        if len(_ZONES_FOR) < 10_000:  # zone combinations are few; never grow without bound
            _ZONES_FOR[names] = zones
    return zones


class Context:
    """One decision's inputs and what rules derive from them while `decide` re-checks later
    moments (a plain class with slots: it is built once per decision)."""

    __slots__ = (
        "_day_of",
        "clocks",
        "memo",
        "policy",
        "request",
        "state",
        "zones",
    )

    def __init__(
        self,
        request: DecisionRequest,
        state: DebtorState,
        policy: Policy,
        zones: tuple[ZoneInfo, ...],
    ) -> None:
        self.request = request
        self.state = state
        self.policy = policy
        self.zones = zones
        self.clocks = _clocks_for(zones)
        self.memo: dict[str, Any] = {}
        self._day_of: tuple[datetime, int] | None = None  # rules ask for the same moment

    def day(self, at: datetime) -> int:
        """The local day ordinal of `at` in the first candidate zone (where days are counted)."""
        known = self._day_of
        if known is not None and known[0] is at:
            return known[1]
        day = self.clocks[0].day(at.timestamp())
        self._day_of = (at, day)
        return day

    def day_start(self, day: int) -> datetime:
        """The first instant of a local day in the first candidate zone, in UTC."""
        return self.clocks[0].day_start(day)


class Rule:
    """A rule of a pack; subclasses are dataclasses carrying `rule_id` and `citation`."""

    rule_id: str
    citation: str

    def check(self, ctx: Context, at: datetime) -> Objection | None:  # pragma: no cover
        raise NotImplementedError

    def objection(self, reason: str, until: datetime | None) -> Objection:
        return Objection(self.rule_id, self.citation, reason, until)


_EFFECTIVE_WINDOWS: dict[tuple[ContactWindow, ContactWindow], ContactWindow] = {}


@dataclass
class HoursRule(Rule):
    """Contact only inside the window in every zone the debtor may be in (US-HOURS-AMBIG)."""

    rule_id: str
    citation: str
    window: ContactWindow
    # Every channel, letters included: nothing is released to a gateway, printer or field
    # agent outside the window (a tenant may not loosen this, only add channels' own rules).
    channels: frozenset[Channel] = frozenset(Channel)

    def effective(self, policy: Policy) -> ContactWindow:
        if policy.window is None:
            return self.window
        key = (self.window, policy.window)
        window = _EFFECTIVE_WINDOWS.get(key)
        if window is None:
            start = max(self.window.start, policy.window.start)
            end = min(self.window.end, policy.window.end)
            window = ContactWindow(start=start, end=end, rule_id=self.rule_id)
            if len(_EFFECTIVE_WINDOWS) > 10_000:  # tenants' windows are few; stay bounded
                _EFFECTIVE_WINDOWS.clear()
            _EFFECTIVE_WINDOWS[key] = window
        return window

    def check(self, ctx: Context, at: datetime) -> Objection | None:
        if ctx.request.channel not in self.channels:
            return None
        window = self.effective(ctx.policy)  # cached across decisions
        timestamp = at.timestamp()
        start, end = window.start_second, window.end_second
        if len(ctx.clocks) == 1:
            if start <= ctx.clocks[0].second_of_day(timestamp) < end:
                return None
        elif all(start <= clock.second_of_day(timestamp) < end for clock in ctx.clocks):
            return None
        if len(ctx.zones) == 1:
            zone = ctx.zones[0]
            candidate = next_window_start(at, zone, window) or next_allowed_slot(
                earliest=at, zone=zone, window=window
            )
            return self.objection(
                f"outside {window.label} local time ({ctx.zones[0].key})", candidate
            )
        candidate = at
        for _ in range(20):  # alternate between zones until one instant suits them all
            later = max(
                next_allowed_slot(earliest=candidate, zone=z, window=window) for z in ctx.zones
            )
            if later == candidate:
                break
            candidate = later
        else:
            return self.objection("no common lawful hours in the candidate zones", None)
        zones = ", ".join(z.key for z in ctx.zones)
        return self.objection(f"outside {window.label} local time ({zones})", candidate)


@dataclass
class QuietRule(Rule):
    """Local quiet windows (meal times) and public holidays."""

    rule_id: str = "POLICY-QUIET"
    citation: str = "local policy"

    def check(self, ctx: Context, at: datetime) -> Objection | None:
        if not ctx.policy.holidays and not ctx.policy.quiet:
            return None
        for zone in ctx.zones:
            local = at.astimezone(zone)
            if local.date() in ctx.policy.holidays:
                next_day = start_of_local_day(local.date().toordinal() + 1, zone)
                return Objection(
                    "POLICY-HOLIDAY", "local policy", f"{local.date()} is a holiday", next_day
                )
            for start, end in ctx.policy.quiet:
                if start <= local.time() < end:
                    resume = datetime.combine(local.date(), end, tzinfo=zone).astimezone(UTC)
                    return self.objection(f"quiet time {start:%H:%M}-{end:%H:%M} local", resume)
        return None


@dataclass
class HoldRule(Rule):
    """Holds block all contact until they are released (never lifted by time)."""

    ids: dict[Hold, tuple[str, str]]
    rule_id: str = "HOLD"
    citation: str = "REGULATIONS.md: holds that block all contact"

    def check(self, ctx: Context, at: datetime) -> Objection | None:
        return None  # one objection per hold: see `all_objections`

    def all_objections(self, ctx: Context) -> list[Objection]:
        if not ctx.state.holds:
            return []
        found = []
        for hold in sorted(ctx.state.holds):
            rule_id, citation = self.ids.get(hold, (f"HOLD-{hold.upper()}", self.citation))
            found.append(Objection(rule_id, citation, f"{hold.replace('_', ' ')} hold", None))
        return found


@dataclass
class OptOutRule(Rule):
    rule_id: str
    citation: str

    def check(self, ctx: Context, at: datetime) -> Objection | None:
        if ctx.request.channel in ctx.state.opted_out:
            return self.objection(f"the debtor opted out of {ctx.request.channel}", None)
        return None


@dataclass
class WorkplaceRule(Rule):
    """No contact at the workplace once the debtor says the employer forbids it or they do."""

    rule_id: str
    citation: str

    def check(self, ctx: Context, at: datetime) -> Objection | None:
        if ctx.request.workplace and ctx.state.no_workplace:
            return self.objection("the debtor may not be contacted at work", None)
        return None


@dataclass
class ConsentRule(Rule):
    """Third parties and outside agencies need the debtor's separate consent."""

    rule_id: str
    citation: str
    third_party_rule: str
    third_party_citation: str

    def check(self, ctx: Context, at: datetime) -> Objection | None:
        request = ctx.request
        if request.third_party and f"third_party:{request.debtor_id}" not in ctx.state.consents:
            return Objection(
                self.third_party_rule,
                self.third_party_citation,
                "no contact with third parties unconnected to the debt",
                None,
            )
        if request.agency and f"agency:{request.agency}" not in ctx.state.consents:
            return self.objection(f"no separate consent to share data with {request.agency}", None)
        return None


@dataclass
class DailyCapRule(Rule):
    """At most `cap` attempts a local day per debtor, across debts and agencies."""

    rule_id: str
    citation: str
    channel: Channel
    cap: int
    connected_only: bool = False

    def check(self, ctx: Context, at: datetime) -> Objection | None:
        if ctx.request.channel is not self.channel:
            return None
        cap = min(self.cap, ctx.policy.caps.get(self.rule_id, self.cap))
        day = ctx.day(at)
        key = f"{self.rule_id}:{day}"
        used = ctx.memo.get(key)
        if used is None:
            # Compare instants with the day's bounds: no per-attempt time-zone arithmetic.
            start, end = ctx.day_start(day), ctx.day_start(day + 1)
            channel, connected_only = self.channel, self.connected_only
            used = 0
            for a in ctx.state.history:
                if (
                    a.channel is channel
                    and start <= a.at < end
                    and (a.connected or not connected_only)
                ):
                    used += 1
            ctx.memo[key] = used
        if used < cap:
            return None
        kind = f"connected {self.channel}" if self.connected_only else str(self.channel)
        return self.objection(f"{used} {kind}(s) today; cap {cap}", ctx.day_start(day + 1))


@dataclass
class RollingCapRule(Rule):
    """At most `cap` attempts about one debt in 7 consecutive days (the day itself included)."""

    rule_id: str
    citation: str
    channels: frozenset[Channel]
    cap: int
    days: int = 7
    exclude_consented: bool = True

    def _counts(self, ctx: Context) -> list[int]:
        key = f"{self.rule_id}:days"
        days: list[int] | None = ctx.memo.get(key)
        if days is None:
            debt_id, channels, skip_consented = (
                ctx.request.debt_id,
                self.channels,
                self.exclude_consented,
            )
            days = ctx.memo[key] = sorted(
                ctx.clocks[0].days(
                    a.at.timestamp()
                    for a in ctx.state.history
                    if a.debt_id == debt_id
                    and a.channel in channels
                    and not (skip_consented and a.consented)
                )
            )
        return days

    def _used(self, ctx: Context, today: int) -> int:
        """Attempts about the debt in the days ending today (bounds compared as instants)."""
        start, end = ctx.day_start(today - (self.days - 1)), ctx.day_start(today + 1)
        debt_id, channels = ctx.request.debt_id, self.channels
        skip_consented = self.exclude_consented
        used = 0
        for a in ctx.state.history:
            if (
                start <= a.at < end
                and a.debt_id == debt_id
                and a.channel in channels
                and not (skip_consented and a.consented)
            ):
                used += 1
        return used

    def check(self, ctx: Context, at: datetime) -> Objection | None:
        if ctx.request.channel not in self.channels or ctx.request.consented:
            return None
        cap = min(self.cap, ctx.policy.caps.get(self.rule_id, self.cap))
        zone = ctx.zones[0]
        today = ctx.day(at)
        key = f"{self.rule_id}:{today}"
        used = ctx.memo.get(key)
        if used is None:
            used = ctx.memo[key] = self._used(ctx, today)
        if used < cap:
            return None
        days = self._counts(ctx)
        for offset in range(self.days + 1):
            day = today + offset
            used = bisect_right(days, day) - bisect_left(days, day - (self.days - 1))
            if used < cap:
                if offset == 0:
                    return None
                ctx.memo[f"{self.rule_id}:{day}"] = used  # `decide` asks about that day next
                return self.objection(
                    f"{cap} attempts about this debt within {self.days} days",
                    start_of_local_day(day, zone),
                )
        return self.objection(f"cap of {cap} in {self.days} days", None)  # pragma: no cover


@dataclass
class ConversationQuietRule(Rule):
    """No call within 7 days after a telephone conversation about the debt (its day is day 1)."""

    rule_id: str
    citation: str
    days: int = 7

    def check(self, ctx: Context, at: datetime) -> Objection | None:
        if ctx.request.channel is not Channel.CALL or ctx.request.consented:
            return None
        zone = ctx.zones[0]
        key = f"{self.rule_id}:last-talk"
        if key not in ctx.memo:
            debt_id = ctx.request.debt_id
            talks = [a.at for a in ctx.state.history if a.conversation and a.debt_id == debt_id]
            ctx.memo[key] = ctx.day(max(talks)) if talks else None
        last: int | None = ctx.memo[key]
        if last is None:
            return None
        free_from = last + self.days
        if ctx.day(at) >= free_from:
            return None
        return self.objection(
            f"telephone conversation on {date.fromordinal(last)}",
            start_of_local_day(free_from, zone),
        )


@dataclass
class MinGapRule(Rule):
    """Policy minimum gap between attempts to one debtor (against bunching: US-BUNCHING)."""

    rule_id: str = "US-BUNCHING"
    citation: str = "Reg F 1006.14(b) commentary; local policy gap"

    def check(self, ctx: Context, at: datetime) -> Objection | None:
        gap = ctx.policy.min_gap
        if gap is None:
            return None
        recent = [a.at for a in ctx.state.history if a.at <= at]
        if not recent or at - max(recent) >= gap:
            return None
        return self.objection(f"less than {gap} since the last attempt", max(recent) + gap)


@dataclass(frozen=True)
class Pack:
    name: str
    version: str
    rules: tuple[Rule, ...]
    holds: HoldRule


_GENERIC = "REGULATIONS.md: holds that block all contact, in every pack"
CN = Pack(
    name="cn",
    version="2026.11",
    rules=(
        HoursRule(
            "CN-HOURS",
            "Beijing/Shanghai collection rules; industry guideline",
            ContactWindow(start=time(8), end=time(22), rule_id="CN-HOURS"),
        ),
        OptOutRule("OPT-OUT", "PIPL art. 44-47 (consent withdrawal)"),
        ConsentRule(
            "CN-CONSENT-23",
            "PIPL art. 23",
            "CN-THIRD-PARTY",
            "industry guideline: no collection from unconnected third parties",
        ),
        DailyCapRule(
            "CN-CALLS-DAY",
            "industry guideline (3 connected calls/day)",
            Channel.CALL,
            3,
            connected_only=True,
        ),
        DailyCapRule("CN-SMS-DAY", "operating plans after PIPL (1 SMS/day)", Channel.SMS, 1),
    ),
    holds=HoldRule(ids={}),
)
US_FEDERAL = Pack(
    name="us-federal",
    version="2026.11",
    rules=(
        HoursRule(
            "US-HOURS",
            "FDCPA 805(a)(1); Reg F 1006.6(b)(1)(i); send time for SMS/e-mail",
            ContactWindow(start=time(8), end=time(21), rule_id="US-HOURS"),
        ),
        OptOutRule("US-CHANNEL-OPTOUT", "Reg F 1006.14(h), 1006.6(e)"),
        WorkplaceRule("US-WORKPLACE", "FDCPA 805(a)(3); Reg F 1006.6(b)(3)"),
        RollingCapRule("US-7IN7", "Reg F 1006.14(b)(2)(i)(A)", frozenset({Channel.CALL}), 7),
        ConversationQuietRule("US-7IN7", "Reg F 1006.14(b)(2)(i)(B)"),
    ),
    holds=HoldRule(
        ids={
            Hold.CEASE: ("US-CEASE", "Reg F 1006.6(c)"),
            Hold.ATTORNEY: ("US-ATTORNEY", "Reg F 1006.6(b)(2)"),
            Hold.DISPUTE: ("US-DISPUTE", "Reg F 1006.34"),
        }
    ),
)
US_MA = Pack(
    name="us-ma",
    version="2026.11",
    rules=(RollingCapRule("MA-2IN7", "209 CMR 18.16", frozenset({Channel.CALL, Channel.SMS}), 2),),
    holds=HoldRule(ids={}),
)
UK = Pack(
    name="uk",
    version="2026.11",
    rules=(
        HoursRule(
            "UK-HOURS",
            "FCA CONC 7.9; MCOB 13.5 (8am-9pm)",
            ContactWindow(start=time(8), end=time(21), rule_id="UK-HOURS"),
        ),
        OptOutRule("OPT-OUT", "CONC 7.9 (unreasonable contact)"),
    ),
    holds=HoldRule(ids={Hold.DISPUTE: ("UK-DISPUTE", "CONC 7.14/7.15")}),
)
PACKS: dict[str, Pack] = {p.name: p for p in (CN, US_FEDERAL, US_MA, UK)}
ALWAYS: tuple[Rule, ...] = (QuietRule(), MinGapRule())
_NO_POLICY = Policy()


def _applies(rule: Rule, channel: Channel) -> bool:
    """False when the rule can never object to this channel (it is then not run at all)."""
    if isinstance(rule, HoursRule):
        return channel in rule.channels
    if isinstance(rule, DailyCapRule):
        return channel is rule.channel
    if isinstance(rule, RollingCapRule):
        return channel in rule.channels
    if isinstance(rule, ConversationQuietRule):
        return channel is Channel.CALL
    return True


_RULES_FOR: dict[tuple[tuple[str, ...], Channel], tuple[Rule, ...]] = {}


def _rules_for(packs: tuple[str, ...], channel: Channel) -> tuple[Rule, ...]:
    """The packs' rules that can object to a channel, in pack order (compiled once)."""
    key = (packs, channel)
    rules = _RULES_FOR.get(key)
    if rules is None:
        rules = _RULES_FOR[key] = tuple(
            rule for name in packs for rule in PACKS[name].rules if _applies(rule, channel)
        )
    return rules


def _hold_objections(ctx: Context, packs: tuple[str, ...]) -> list[Objection]:
    found: list[Objection] = []
    if not ctx.state.holds:
        return found
    seen: set[str] = set()
    for name in packs:
        for objection in PACKS[name].holds.all_objections(ctx):
            if objection.reason not in seen:
                seen.add(objection.reason)
                found.append(objection)
    return found


def _objections(ctx: Context, rules: Sequence[Rule], at: datetime) -> list[Objection]:
    found: list[Objection] = []
    for rule in rules:
        hit = rule.check(ctx, at)
        if hit is not None:
            found.append(hit)
    return found


def decide(
    request: DecisionRequest,
    state: DebtorState,
    *,
    packs: Iterable[str] = ("cn",),
    policy: Policy | None = None,
    horizon: timedelta = timedelta(days=30),
) -> Decision:
    """Allowed, or every objection and the next moment all of them are lifted (if time can)."""
    if request.at.tzinfo is None:
        raise ValueError("the moment of contact must be timezone-aware")
    if not request.zones:
        raise ValueError("at least one candidate time zone is needed")
    names = packs if isinstance(packs, tuple) else tuple(packs)
    rules = _rules_for(names, request.channel)
    if policy is not None and (policy.quiet or policy.holidays or policy.min_gap is not None):
        rules = (*rules, *ALWAYS)
    ctx = Context(request, state, policy or _NO_POLICY, _zones_for(request.zones))
    # Holds do not depend on the moment: they are listed once, first, and time never lifts them.
    objections = _objections(ctx, rules, request.at)
    if state.holds:
        objections = _hold_objections(ctx, names) + objections
    if not objections:
        return Decision(True, (), request.at)
    candidate = request.at
    pending = objections
    while pending:
        if any(o.until is None for o in pending):
            return Decision(False, tuple(objections), None)
        candidate = max(o.until for o in pending if o.until is not None)
        if candidate - request.at > horizon:
            return Decision(False, tuple(objections), None)
        pending = _objections(ctx, rules, candidate)
    return Decision(False, tuple(objections), candidate)


def hours_rule_ids(packs: Iterable[str]) -> str:
    """The local-time rules the packs apply (recorded on each planned attempt)."""
    return ",".join(
        rule.rule_id for name in packs for rule in PACKS[name].rules if isinstance(rule, HoursRule)
    )


def hold_rule_ids(hold: Hold, packs: Iterable[str]) -> list[str]:
    """The rule ids under which the packs stop contact for a hold."""
    found: list[str] = []
    for name in packs:
        rule_id, _citation = PACKS[name].holds.ids.get(hold, (f"HOLD-{hold.upper()}", ""))
        if rule_id not in found:
            found.append(rule_id)
    return found


def opt_out_rule_ids(packs: Iterable[str]) -> list[str]:
    """The rule ids under which the packs honour a channel opt-out."""
    found: list[str] = []
    for name in packs:
        for rule in PACKS[name].rules:
            if isinstance(rule, OptOutRule) and rule.rule_id not in found:
                found.append(rule.rule_id)
    return found


def pack_limits(packs: Iterable[str]) -> tuple[time, time, dict[str, int]]:
    """The strictest window the packs allow and their caps by rule id: what a local policy
    may narrow but never widen."""
    start, end = time(0), time(23, 59, 59)
    caps: dict[str, int] = {}
    for name in packs:
        for rule in PACKS[name].rules:
            if isinstance(rule, HoursRule):
                start, end = max(start, rule.window.start), min(end, rule.window.end)
            elif isinstance(rule, DailyCapRule | RollingCapRule):
                caps[rule.rule_id] = min(caps.get(rule.rule_id, rule.cap), rule.cap)
    return start, end, caps


def pack_versions(packs: Iterable[str]) -> dict[str, str]:
    """Pack name -> version, as recorded with a decision."""
    return {name: PACKS[name].version for name in packs}


def policy_from_document(document: Mapping[str, Any]) -> tuple[tuple[str, ...], Policy]:
    """The packs and engine Policy of a stored policy document (contact's `PUT
    /v1/contact/policy` body as published in `contact.policy_changed`): one reading for the
    service that decides and the one that re-checks."""
    packs = tuple(document.get("packs") or ("cn",))
    unknown = [name for name in packs if name not in PACKS]
    if unknown:
        raise ValueError(f"unknown rule packs: {', '.join(unknown)}")
    window = None
    start_text, end_text = document.get("window_start"), document.get("window_end")
    if start_text is not None or end_text is not None:
        start, end, _caps = pack_limits(packs)
        window = ContactWindow(
            start=time.fromisoformat(start_text) if start_text else start,
            end=time.fromisoformat(end_text) if end_text else end,
            rule_id="POLICY-HOURS",
        )
    minutes = document.get("min_gap_minutes")
    return packs, Policy(
        window=window,
        quiet=tuple(
            (time.fromisoformat(q["start"]), time.fromisoformat(q["end"]))
            for q in document.get("quiet") or ()
        ),
        holidays=frozenset(date.fromisoformat(d) for d in document.get("holidays") or ()),
        caps={str(k): int(v) for k, v in (document.get("caps") or {}).items()},
        min_gap=timedelta(minutes=int(minutes)) if minutes else None,
    )
