"""Contact rule packs and the decision engine. Pure: no I/O, no clock (the caller passes `at`).

Each pack is versioned data plus code: rules with the stable ids and citations of
REGULATIONS.md. A tenant picks packs and may add local policy, which can only make rules
stricter (windows are intersected, caps take the minimum). A decision names every rule that
objects and, where time alone will lift it, the next moment the contact becomes allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from services.contact.domain import Channel, ContactWindow, is_allowed_at, next_allowed_slot
from shared.contracts import HoldKind

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


@dataclass(frozen=True)
class Objection:
    rule_id: str
    citation: str
    reason: str
    until: datetime | None  # None: time alone does not lift it


@dataclass(frozen=True)
class Decision:
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


@dataclass
class Context:
    request: DecisionRequest
    state: DebtorState
    policy: Policy
    zones: tuple[ZoneInfo, ...]

    @cached_property
    def history_days(self) -> tuple[date, ...]:
        """Local day (first zone) of each past attempt: computed once per decision."""
        zone = self.zones[0]
        return tuple(a.at.astimezone(zone).date() for a in self.state.history)


class Rule:
    """A rule of a pack; subclasses are dataclasses carrying `rule_id` and `citation`."""

    rule_id: str
    citation: str

    def check(self, ctx: Context, at: datetime) -> Objection | None:  # pragma: no cover
        raise NotImplementedError

    def objection(self, reason: str, until: datetime | None) -> Objection:
        return Objection(self.rule_id, self.citation, reason, until)


def _local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def _start_of_local_day(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


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
        start = max(self.window.start, policy.window.start)
        end = min(self.window.end, policy.window.end)
        return ContactWindow(start=start, end=end, rule_id=self.rule_id)

    def check(self, ctx: Context, at: datetime) -> Objection | None:
        if ctx.request.channel not in self.channels:
            return None
        window = self.effective(ctx.policy)
        if all(is_allowed_at(instant=at, zone=z, window=window) for z in ctx.zones):
            return None
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
        zones = ", ".join(str(z) for z in ctx.zones)
        return self.objection(
            f"outside {window.start:%H:%M}-{window.end:%H:%M} local time ({zones})", candidate
        )


@dataclass
class QuietRule(Rule):
    """Local quiet windows (meal times) and public holidays."""

    rule_id: str = "POLICY-QUIET"
    citation: str = "local policy"

    def check(self, ctx: Context, at: datetime) -> Objection | None:
        for zone in ctx.zones:
            local = at.astimezone(zone)
            if local.date() in ctx.policy.holidays:
                next_day = _start_of_local_day(local.date() + timedelta(days=1), zone)
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
        zone = ctx.zones[0]
        day = _local_day(at, zone)
        used = sum(
            1
            for a, d in zip(ctx.state.history, ctx.history_days, strict=True)
            if d == day and a.channel is self.channel and (a.connected or not self.connected_only)
        )
        if used < cap:
            return None
        kind = f"connected {self.channel}" if self.connected_only else str(self.channel)
        return self.objection(
            f"{used} {kind}(s) today; cap {cap}",
            _start_of_local_day(day + timedelta(days=1), zone),
        )


@dataclass
class RollingCapRule(Rule):
    """At most `cap` attempts about one debt in 7 consecutive days (the day itself included)."""

    rule_id: str
    citation: str
    channels: frozenset[Channel]
    cap: int
    days: int = 7
    exclude_consented: bool = True

    def _counts(self, ctx: Context) -> list[date]:
        return sorted(
            d
            for a, d in zip(ctx.state.history, ctx.history_days, strict=True)
            if a.debt_id == ctx.request.debt_id
            and a.channel in self.channels
            and not (self.exclude_consented and a.consented)
        )

    def check(self, ctx: Context, at: datetime) -> Objection | None:
        if ctx.request.channel not in self.channels or ctx.request.consented:
            return None
        cap = min(self.cap, ctx.policy.caps.get(self.rule_id, self.cap))
        zone = ctx.zones[0]
        days = self._counts(ctx)
        today = _local_day(at, zone)
        for offset in range(self.days + 1):
            day = today + timedelta(days=offset)
            used = sum(1 for d in days if day - timedelta(days=self.days - 1) <= d <= day)
            if used < cap:
                if offset == 0:
                    return None
                return self.objection(
                    f"{cap} attempts about this debt within {self.days} days",
                    _start_of_local_day(day, zone),
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
        talks = [
            d
            for a, d in zip(ctx.state.history, ctx.history_days, strict=True)
            if a.conversation and a.debt_id == ctx.request.debt_id
        ]
        if not talks:
            return None
        last = max(talks)
        free_from = last + timedelta(days=self.days)
        if _local_day(at, zone) >= free_from:
            return None
        return self.objection(
            f"telephone conversation on {last}", _start_of_local_day(free_from, zone)
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


def _objections(ctx: Context, packs: Sequence[Pack], at: datetime) -> list[Objection]:
    found: list[Objection] = []
    seen_holds: set[str] = set()
    for pack in packs:
        for objection in pack.holds.all_objections(ctx):
            if objection.reason not in seen_holds:
                seen_holds.add(objection.reason)
                found.append(objection)
        for rule in pack.rules:
            hit = rule.check(ctx, at)
            if hit is not None:
                found.append(hit)
    for rule in ALWAYS:
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
    chosen = [PACKS[name] for name in packs]
    ctx = Context(request, state, policy or Policy(), tuple(ZoneInfo(z) for z in request.zones))
    objections = _objections(ctx, chosen, request.at)
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
        pending = _objections(ctx, chosen, candidate)
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
