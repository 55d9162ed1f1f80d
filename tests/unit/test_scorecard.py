"""Scorecard training and runtime: binning edge cases, WoE/IV, scaling, reasons, exact sums."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from services.scoring.scorecard import Scaling, load_scorecard
from services.scoring.training import (
    BinStats,
    TrainingConfig,
    bin_numeric,
    fit_binning,
    information_value,
    train_scorecard,
    woe,
)


def synthetic(rows: int = 4000, seed: int = 7) -> pd.DataFrame:
    """Risk rises with utilisation, falls with age; 'region' matters; income has gaps."""
    rng = np.random.default_rng(seed)
    utilisation = rng.uniform(0, 1.2, rows)
    age = rng.integers(18, 80, rows)
    region = rng.choice(["north", "south", "east", "west"], rows, p=[0.4, 0.3, 0.2, 0.1])
    income = rng.lognormal(8.5, 0.5, rows)
    income[rng.random(rows) < 0.15] = np.nan
    logit = -3 + 3 * utilisation - 0.03 * (age - 40) + (region == "west") * 1.0
    bad = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "id": range(rows),
            "util": utilisation,
            "age": age,
            "region": region,
            "income": income,
            "noise": rng.normal(size=rows),
            "bad": bad,
        }
    )


def test_woe_and_iv_match_a_hand_computed_example() -> None:
    # Two bins: (good 80, bad 20) and (good 20, bad 80); totals 100/100; smoothing 0.5, 2 bins.
    g1, b1 = (80 + 0.5) / 101, (20 + 0.5) / 101
    g2, b2 = (20 + 0.5) / 101, (80 + 0.5) / 101
    assert woe(80, 20, 100, 100, 2) == pytest.approx(math.log(g1 / b1))
    assert woe(80, 20, 100, 100, 2) == pytest.approx(1.36778, abs=1e-4)
    bins = [BinStats(good=80, bad=20), BinStats(good=20, bad=80)]
    expected = (g1 - b1) * math.log(g1 / b1) + (g2 - b2) * math.log(g2 / b2)
    assert information_value(bins, 100, 100) == pytest.approx(expected)
    assert information_value(bins, 100, 100) == pytest.approx(1.62511, abs=1e-4)


def test_scaling_puts_600_at_50_to_1_and_20_points_per_doubling() -> None:
    scaling = Scaling()
    assert scaling.score_for_odds(50) == pytest.approx(600.0)
    assert scaling.score_for_odds(100) == pytest.approx(620.0)
    assert scaling.score_for_odds(25) == pytest.approx(580.0)
    assert scaling.probability_of_default(600) == pytest.approx(1 / 51)


def test_constant_feature_gets_one_bin_and_no_information() -> None:
    y = np.array([0, 1] * 50)
    binning = fit_binning(pd.Series([3.0] * 100, name="flat"), y, TrainingConfig())
    assert len(binning.bins) == 1
    assert binning.iv == pytest.approx(0.0, abs=1e-9)


def test_all_missing_feature_is_one_missing_band() -> None:
    y = np.array([0] * 90 + [1] * 10)
    binning = fit_binning(pd.Series([np.nan] * 100, name="gone"), y, TrainingConfig())
    assert binning.missing.count == 100
    assert binning.missing_woe == pytest.approx(0.0, abs=1e-9)  # the only band: no evidence


def test_a_single_bad_does_not_give_infinite_woe() -> None:
    x = np.arange(1000, dtype=float)
    y = np.zeros(1000, dtype=int)
    y[500] = 1
    bins = bin_numeric(x, y, TrainingConfig())
    woes = [woe(b.good, b.bad, 999, 1, len(bins)) for b in bins]
    assert all(math.isfinite(w) for w in woes)


def test_numeric_bins_are_monotonic_in_bad_rate() -> None:
    data = synthetic()
    binning = fit_binning(data["util"], data["bad"].to_numpy(), TrainingConfig())
    rates = [b.bad_rate for b in binning.bins]
    assert rates == sorted(rates), rates
    assert len(binning.bins) >= 3


@pytest.fixture(scope="module")
def trained() -> tuple[pd.DataFrame, object]:
    data = synthetic()
    result = train_scorecard(data, target="bad", id_column="id", model_id="synthetic", version="1")
    return data, result


def test_training_finds_the_signal_and_drops_the_noise(
    trained: tuple[pd.DataFrame, object],
) -> None:
    _data, result = trained
    card = result.scorecard  # type: ignore[attr-defined]
    names = {f.name for f in card.features}
    assert {"util", "age", "region"} <= names
    assert "noise" not in names
    assert "id" not in names
    assert result.test_auc > 0.7  # type: ignore[attr-defined]
    assert card.card["test"]["gini"] == pytest.approx(2 * card.card["test"]["auc"] - 1, abs=1e-6)
    assert len(card.card["calibration"]) >= 5


def test_points_add_up_exactly_and_reasons_rank_by_points_lost(
    trained: tuple[pd.DataFrame, object],
) -> None:
    card = trained[1].scorecard  # type: ignore[attr-defined]
    case = {"util": 1.1, "age": 22, "region": "west", "income": None}
    scored = card.score(case)
    assert scored.points == sum(p.points for p in scored.parts)
    assert isinstance(scored.points, int)
    lost = [r.shortfall for r in scored.reasons]
    assert lost == sorted(lost, reverse=True)
    assert scored.reasons[0].feature == "util"
    assert scored.probability_of_default == pytest.approx(
        card.scaling.probability_of_default(scored.points)
    )
    best = card.score({"util": 0.0, "age": 79, "region": "north", "income": 20000})
    assert best.points > scored.points


def test_unseen_category_and_missing_values_are_explicit(
    trained: tuple[pd.DataFrame, object],
) -> None:
    card = trained[1].scorecard  # type: ignore[attr-defined]
    region = next(f for f in card.features if f.name == "region")
    _i, band = region.bin_for("atlantis")
    assert band.label == "unseen category"
    assert band.woe == 0.0
    income = next((f for f in card.features if f.name == "income"), None)
    if income is not None:
        _i, missing = income.bin_for(None)
        assert missing.label == "missing"
        assert missing.count > 0  # trained: 15% of rows had no income


def test_vectorised_and_single_scores_agree(trained: tuple[pd.DataFrame, object]) -> None:
    data, result = trained
    card = result.scorecard  # type: ignore[attr-defined]
    sample = data.head(300)
    vector = card.score_columns({f.name: sample[f.name].to_numpy() for f in card.features})
    singles = [
        card.score({f.name: row[f.name] for f in card.features}).points
        for _, row in sample.iterrows()
    ]
    assert vector.tolist() == singles


def test_same_seed_same_model_file() -> None:
    data = synthetic(seed=11)
    first = train_scorecard(data, target="bad", id_column="id", model_id="m", version="1")
    second = train_scorecard(data, target="bad", id_column="id", model_id="m", version="1")
    assert first.scorecard.model_dump_json() == second.scorecard.model_dump_json()
    assert load_scorecard(first.scorecard.model_dump_json()) == first.scorecard


def test_bad_targets_are_refused() -> None:
    data = synthetic(rows=200)
    with pytest.raises(ValueError, match="not in the data"):
        train_scorecard(data, target="nope", model_id="m", version="1")
    data["bad"] = 2
    with pytest.raises(ValueError, match="0/1"):
        train_scorecard(data, target="bad", model_id="m", version="1")


def test_a_clear_peak_is_kept_and_a_weak_one_is_not() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 10, 20_000)
    peaked = (rng.random(20_000) < np.where(np.abs(x - 5) < 1.5, 0.30, 0.05)).astype(int)
    bins = bin_numeric(x, peaked, TrainingConfig())
    rates = [b.bad_rate for b in bins]
    top = int(np.argmax(rates))
    assert 0 < top < len(rates) - 1, rates  # risk rises, then falls
    assert rates[: top + 1] == sorted(rates[: top + 1])
    assert rates[top:] == sorted(rates[top:], reverse=True)
    rising = (rng.random(20_000) < 0.02 + 0.02 * x).astype(int)
    steady = [b.bad_rate for b in bin_numeric(x, rising, TrainingConfig())]
    assert steady == sorted(steady)
    no_turns = bin_numeric(x, peaked, TrainingConfig(allow_turning_point=False))
    flat = [b.bad_rate for b in no_turns]
    assert flat in (sorted(flat), sorted(flat, reverse=True))
