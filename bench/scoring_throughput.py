"""Scoring speed: 1,000,000 rows vectorised (ours vs optbinning's Scorecard.score, same run),
p99 latency of one case with its reason codes, fit time, and runtime install size."""

from __future__ import annotations

import statistics
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from _gmsc import load
from sklearn.linear_model import LogisticRegression

from services.scoring.datasets import GMSC_ID, GMSC_TARGET
from services.scoring.training import train_scorecard

ROWS = 1_000_000


def dist_size(name: str) -> int:
    """Bytes installed by one distribution."""
    dist = metadata.distribution(name)
    total = 0
    for file in dist.files or []:
        path = Path(str(dist.locate_file(file)))
        if path.is_file():
            total += path.stat().st_size
    return total


def closure_size(name: str, seen: set[str] | None = None) -> int:
    """Bytes installed by a distribution and everything it requires (installed ones)."""
    seen = set() if seen is None else seen
    key = name.lower().replace("_", "-")
    if key in seen:
        return 0
    seen.add(key)
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return 0
    total = dist_size(name)
    for requirement in dist.requires or []:
        if "extra ==" in requirement:
            continue
        dep = requirement.split(";")[0].split("[")[0]
        for sep in "<>=!~ (":
            dep = dep.split(sep)[0]
        total += closure_size(dep.strip(), seen)
    return total


def median_time(fn: object, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    data, x_train, _x_test, y_train, _y_test = load()
    fits = []
    for _ in range(3):
        started = time.perf_counter()
        ours = train_scorecard(
            data, target=GMSC_TARGET, id_column=GMSC_ID, model_id="gmsc", version="b"
        )
        fits.append(time.perf_counter() - started)
    card = ours.scorecard
    rng = np.random.default_rng(0)
    big = x_train.iloc[rng.integers(0, len(x_train), ROWS)].reset_index(drop=True)
    columns = {f.name: big[f.name].to_numpy() for f in card.features}
    ours_s = median_time(lambda: card.score_columns(columns))

    from optbinning import BinningProcess, Scorecard

    reference = Scorecard(
        binning_process=BinningProcess(variable_names=list(x_train.columns)),
        estimator=LogisticRegression(),
    ).fit(x_train, y_train)
    ref_s = median_time(lambda: reference.score(big), repeat=1)

    rows = [
        dict(zip(big.columns, r, strict=True)) for r in big.head(20_000).itertuples(index=False)
    ]
    latencies = []
    for row in rows:
        started = time.perf_counter_ns()
        card.score(row)
        latencies.append((time.perf_counter_ns() - started) / 1e6)
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]

    runtime = sum(
        dist_size(n)
        for n in (
            "numpy",
            "pydantic",
            "pydantic_core",
            "annotated-types",
            "typing-extensions",
            "typing-inspection",
        )
    )
    reference_size = closure_size("optbinning")

    print(f"\nbench/scoring_throughput.py  {ROWS:,} rows sampled from the GMSC training split")
    print(f"{'measure':<46}{'ours':>14}{'optbinning':>14}{'ratio':>9}")
    print(
        f"{'vectorised scoring (rows/s)':<46}{ROWS / ours_s:>14,.0f}{ROWS / ref_s:>14,.0f}"
        f"{ref_s / ours_s:>8.1f}x  (target >= 3x)"
    )
    print(f"{'one case with reason codes, p50 (ms)':<46}{p50:>14.4f}")
    print(f"{'one case with reason codes, p99 (ms)':<46}{p99:>14.4f}{'':>14}  (target <= 1 ms)")
    print(
        f"{'fit on GMSC, median of 3 (s)':<46}{statistics.median(fits):>14.2f}{'':>14}"
        "  (target <= 2 s)"
    )
    print(
        f"{'install size of the runtime deps (MB)':<46}{runtime / 1e6:>14.1f}"
        f"{reference_size / 1e6:>14.1f}{reference_size / runtime:>8.1f}x"
    )


if __name__ == "__main__":
    main()
