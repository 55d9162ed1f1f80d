"""Plan 1,000,000 contact attempts for 100,000 debtors across zones and packs with the decision
engine, then check every planned slot against every active rule. Prints attempts/s and the
number of violations (must be 0), with the engine's raw decision rate as the ceiling."""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.contact.domain import Channel  # noqa: E402
from shared.rulepacks.engine import Attempt, DebtorState, DecisionRequest, Policy, decide  # noqa: E402

ZONES = [
    ("Asia/Shanghai", ("cn",)),
    ("Asia/Urumqi", ("cn",)),
    ("Asia/Kolkata", ("cn",)),
    ("America/New_York", ("us-federal",)),
    ("America/Chicago", ("us-federal", "us-ma")),
    ("America/Los_Angeles", ("us-federal",)),
    ("Europe/London", ("uk",)),
    ("Australia/Lord_Howe", ("cn",)),
    ("Pacific/Chatham", ("uk",)),
]
POLICY = Policy(min_gap=timedelta(minutes=30))


def main(debtors: int = 100_000, per_debtor: int = 10) -> None:
    rng = random.Random(7)
    start = datetime(2026, 3, 1, tzinfo=UTC)  # spans the US DST change on 8 March
    planned = 0
    violations = 0
    blocked = 0
    decisions = 0
    t0 = time.perf_counter()
    for d in range(debtors):
        zone, packs = ZONES[d % len(ZONES)]
        history: list[Attempt] = []
        at = start + timedelta(minutes=rng.randint(0, 24 * 60))
        for _ in range(per_debtor):
            channel = Channel.CALL if rng.random() < 0.7 else Channel.SMS
            request = DecisionRequest(
                debtor_id=f"p{d}", debt_id="d1", channel=channel, at=at, zones=(zone,)
            )
            state = DebtorState(history=tuple(history))
            decision = decide(request, state, packs=packs, policy=POLICY)
            decisions += 1
            if decision.next_allowed_at is None:
                blocked += 1
                break
            slot = decision.next_allowed_at
            check = decide(
                DecisionRequest(
                    debtor_id=f"p{d}", debt_id="d1", channel=channel, at=slot, zones=(zone,)
                ),
                state,
                packs=packs,
                policy=POLICY,
            )
            decisions += 1
            if not check.allowed:
                violations += 1
            connected = rng.random() < 0.4
            history.append(
                Attempt(
                    at=slot,
                    channel=channel,
                    debt_id="d1",
                    connected=connected,
                    conversation=connected and rng.random() < 0.3,
                )
            )
            planned += 1
            at = slot + timedelta(minutes=rng.randint(1, 36 * 60))
    elapsed = time.perf_counter() - t0
    print(
        f"\nbench/contact_simulation.py  {debtors:,} debtors x {per_debtor} attempts, "
        f"{len(ZONES)} zones, packs cn/us-federal/us-ma/uk, 30-minute minimum gap"
    )
    print(
        f"planned attempts: {planned:,} in {elapsed:.1f}s = {planned / elapsed:,.0f} attempts/s "
        f"(each planned and then re-checked: {decisions / elapsed:,.0f} decisions/s)"
    )
    print(f"planned attempts that violate a rule: {violations}  (must be 0)")
    print(f"debtors left without a lawful slot in 30 days: {blocked}")
    assert violations == 0


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
