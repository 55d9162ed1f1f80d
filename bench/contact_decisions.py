"""Contact decisions: in-process decisions/s on one core with realistic histories (target
>= 100,000/s, p99 < 1 ms), and over HTTP next to the same app's no-DB endpoint (/healthz) in the
same run, load from a separate process."""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _http_load import measure  # noqa: E402

from services.contact.domain import Channel  # noqa: E402
from shared.rulepacks.engine import Attempt, DebtorState, DecisionRequest, decide  # noqa: E402

ZONES = ["Asia/Shanghai", "America/New_York", "Europe/London", "Asia/Kolkata", "America/Chicago"]
PACKS: dict[str, tuple[str, ...]] = {
    "Asia/Shanghai": ("cn",),
    "Asia/Kolkata": ("cn",),
    "Europe/London": ("uk",),
}


def workload(n: int, seed: int = 1) -> list[tuple[DecisionRequest, DebtorState, tuple[str, ...]]]:
    """Debtors with 0-30 attempts over the last 10 days, two debts, calls and SMS, some talks."""
    rng = random.Random(seed)
    base = datetime(2026, 5, 4, tzinfo=UTC)
    items: list[tuple[DecisionRequest, DebtorState, tuple[str, ...]]] = []
    for i in range(n):
        zone = ZONES[i % len(ZONES)]
        history = tuple(
            Attempt(
                at=base - timedelta(minutes=rng.randint(0, 10 * 24 * 60)),
                channel=Channel.CALL if rng.random() < 0.7 else Channel.SMS,
                debt_id=f"d{rng.randint(1, 2)}",
                connected=rng.random() < 0.4,
                conversation=rng.random() < 0.05,
            )
            for _ in range(rng.randint(0, 30))
        )
        request = DecisionRequest(
            debtor_id=f"p{i}",
            debt_id="d1",
            channel=Channel.CALL if i % 3 else Channel.SMS,
            at=base + timedelta(minutes=rng.randint(0, 24 * 60)),
            zones=(zone,),
        )
        items.append((request, DebtorState(history=history), PACKS.get(zone, ("us-federal",))))
    return items


def in_process(
    items: list[tuple[DecisionRequest, DebtorState, tuple[str, ...]]],
) -> dict[str, float]:
    for request, state, packs in items[:200]:
        decide(request, state, packs=packs)
    latencies = []
    started = time.perf_counter()
    for request, state, packs in items:
        t = time.perf_counter_ns()
        decide(request, state, packs=packs)
        latencies.append(time.perf_counter_ns() - t)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rate": len(items) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] / 1e6,
        "p99_ms": latencies[int(len(latencies) * 0.99)] / 1e6,
    }


def over_http(seconds: float = 8.0, concurrency: int = 16) -> dict[str, tuple[float, float]]:
    from shared.stack import LocalStack, sqlite_urls

    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(
            workdir=Path(tmp),
            database_urls=sqlite_urls(Path(tmp) / "db"),
            extra_env={"{P}LOG_LEVEL": "WARNING"},
        )
        stack.start_broker()
        stack.migrate("contact")
        stack.start_service("contact")
        try:
            stack.wait_ready(names=("contact",))
            base = stack.url("contact")
            body = json.dumps(
                {
                    "debtor_id": "6f1c2e4a-1d3b-4c55-9a7e-2b8f0c1d2e3f",
                    "case_id": "0b7d7f2e-9c1a-4e0b-8d55-3f6a7c2b1e90",
                    "channel": "call",
                    "at": "2026-05-04T03:00:00Z",
                    "zones": ["Asia/Shanghai"],
                }
            ).encode()
            for label, url, payload in (
                ("no-op /healthz", f"{base}/healthz", None),
                ("POST /v1/contact/decisions", f"{base}/v1/contact/decisions", body),
            ):
                result = measure(url, body=payload, seconds=seconds, concurrency=concurrency)
                if result.errors:
                    raise RuntimeError(
                        f"{label}: {result.errors} errors, first {result.first_error}"
                    )
                results[label] = (result.req_per_s, result.p99_ms)
        finally:
            stack.stop()
    return results


def main() -> None:
    items = workload(50_000)
    rounds = [in_process(items) for _ in range(3)]
    median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    mean_history = statistics.mean(len(s.history) for _, s, _ in items)
    http = over_http()
    print(
        f"\nbench/contact_decisions.py  {len(items):,} decisions, mean history {mean_history:.1f} "
        "attempts, packs cn/us-federal/uk, median of 3 rounds, one core"
    )
    print(
        f"{'in-process decisions/s':<40}{median['rate']:>12,.0f}   target >= 100,000 "
        f"(ratio {median['rate'] / 100_000:.2f})"
    )
    print(
        f"{'in-process p50 / p99 (ms)':<40}{median['p50_ms']:>12.4f} / {median['p99_ms']:.4f}"
        "   target p99 < 1 ms"
    )
    noop, real = http["no-op /healthz"], http["POST /v1/contact/decisions"]
    print(f"{'HTTP no-op /healthz (req/s, p99 ms)':<40}{noop[0]:>12,.0f}   {noop[1]:.1f}")
    print(
        f"{'HTTP decisions (req/s, p99 ms)':<40}{real[0]:>12,.0f}   {real[1]:.1f}"
        f"   ratio to no-op {real[0] / noop[0]:.2f}"
    )


if __name__ == "__main__":
    main()
