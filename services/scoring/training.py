"""Scorecard training: binning, weight of evidence, logistic regression, points, model card.

Works on any tabular data a lender brings (a pandas DataFrame or a CSV). Binning is ours (the
reference libraries pull hundreds of MB): quantile pre-bins, merged until each bin holds enough
rows and the bad rate moves in one direction, with missing values in a band of their own.
Deterministic for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from services.scoring.scorecard import Bin, Feature, Scaling, ScoreBand, Scorecard

SMOOTHING = 0.5  # Laplace counts, so an all-good or all-bad bin has a finite WoE


@dataclass(frozen=True)
class TrainingConfig:
    """Knobs of a training run; defaults follow common scorecard practice."""

    seed: int = 42
    test_size: float = 0.3
    prebins: int = 50
    max_bins: int = 10
    min_bin_share: float = 0.02
    min_missing_rows: int = 50
    min_iv: float = 0.02
    # A peak or valley (e.g. debt ratio, whose highest values mostly mean "no income reported")
    # is kept only when it holds this much more information than the best monotonic binning.
    allow_turning_point: bool = True
    turning_point_gain: float = 0.05
    max_categories: int = 50
    scaling: Scaling = field(default_factory=Scaling)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class BinStats:
    """Good and bad counts of one band while bins are being merged."""

    good: float
    bad: float
    lower: float | None = None
    upper: float | None = None
    categories: list[str] | None = None

    @property
    def count(self) -> float:
        return self.good + self.bad

    @property
    def bad_rate(self) -> float:
        return self.bad / self.count if self.count else 0.0

    def merged(self, other: BinStats) -> BinStats:
        lowers = [x for x in (self.lower, other.lower) if x is not None]
        uppers = [x for x in (self.upper, other.upper) if x is not None]
        cats = (self.categories or []) + (other.categories or [])
        return BinStats(
            good=self.good + other.good,
            bad=self.bad + other.bad,
            lower=min(lowers) if len(lowers) == 2 else None,
            upper=max(uppers) if len(uppers) == 2 else None,
            categories=cats or None,
        )


def woe(good: float, bad: float, total_good: float, total_bad: float, n_bins: int) -> float:
    """ln(share of goods / share of bads) with Laplace smoothing; higher is safer."""
    g = (good + SMOOTHING) / (total_good + SMOOTHING * n_bins)
    b = (bad + SMOOTHING) / (total_bad + SMOOTHING * n_bins)
    return math.log(g / b)


def information_value(bins: list[BinStats], total_good: float, total_bad: float) -> float:
    """Σ (good share - bad share) · WoE over the bins."""
    n = len(bins)
    total = 0.0
    for b in bins:
        g = (b.good + SMOOTHING) / (total_good + SMOOTHING * n)
        bd = (b.bad + SMOOTHING) / (total_bad + SMOOTHING * n)
        total += (g - bd) * math.log(g / bd)
    return total


def _merge_at(bins: list[BinStats], i: int) -> list[BinStats]:
    """Merge bins i and i+1."""
    return [*bins[:i], bins[i].merged(bins[i + 1]), *bins[i + 2 :]]


def _numeric_prebins(x: np.ndarray, y: np.ndarray, config: TrainingConfig) -> list[BinStats]:
    quantiles = np.quantile(x, np.linspace(0, 1, config.prebins + 1)[1:-1])
    cuts = np.unique(quantiles)
    index = np.searchsorted(cuts, x, side="right")
    bins = []
    edges = [-math.inf, *cuts.tolist(), math.inf]
    for i in range(len(cuts) + 1):
        mask = index == i
        bad = float(y[mask].sum())
        bins.append(
            BinStats(good=float(mask.sum()) - bad, bad=bad, lower=edges[i], upper=edges[i + 1])
        )
    return [b for b in bins if b.count > 0] or bins[:1]


def _merge_small(bins: list[BinStats], min_rows: float) -> list[BinStats]:
    while len(bins) > 1:
        small = [i for i, b in enumerate(bins) if b.count < min_rows]
        if not small:
            break
        i = small[0]
        if i == 0:
            bins = _merge_at(bins, 0)
        elif i == len(bins) - 1:
            bins = _merge_at(bins, i - 1)
        else:  # join the neighbour whose bad rate is closer
            left = abs(bins[i - 1].bad_rate - bins[i].bad_rate)
            right = abs(bins[i + 1].bad_rate - bins[i].bad_rate)
            bins = _merge_at(bins, i - 1 if left <= right else i)
    return bins


def _make_monotonic(bins: list[BinStats], increasing: bool) -> list[BinStats]:
    changed = True
    while changed and len(bins) > 1:
        changed = False
        for i in range(len(bins) - 1):
            a, b = bins[i].bad_rate, bins[i + 1].bad_rate
            if (increasing and b < a) or (not increasing and b > a):
                bins = _merge_at(bins, i)
                changed = True
                break
    return bins


def _cap_bins(bins: list[BinStats], max_bins: int) -> list[BinStats]:
    while len(bins) > max_bins:
        gaps = [abs(bins[i].bad_rate - bins[i + 1].bad_rate) for i in range(len(bins) - 1)]
        bins = _merge_at(bins, int(np.argmin(gaps)))
    return bins


def bin_numeric(x: np.ndarray, y: np.ndarray, config: TrainingConfig) -> list[BinStats]:
    """Bins for the non-missing values of a numeric feature: monotonic in bad rate, or with
    one turning point (a peak or a valley) when that keeps clearly more information."""
    if len(x) == 0:
        return [BinStats(good=0, bad=0, lower=-math.inf, upper=math.inf)]
    pre = _merge_small(_numeric_prebins(x, y, config), config.min_bin_share * len(x))
    total_good = float(len(y) - y.sum())
    total_bad = float(y.sum())

    def iv(bins: list[BinStats]) -> float:
        return information_value(bins, total_good, total_bad)

    monotonic = [
        _cap_bins(_make_monotonic(list(pre), increasing=direction), config.max_bins)
        for direction in (True, False)
    ]
    best = max(monotonic, key=iv)  # the direction the data supports keeps more information
    if config.allow_turning_point and len(pre) > 2:
        shaped = [
            _cap_bins(
                _make_monotonic(list(pre[:k]), increasing=peak)
                + _make_monotonic(list(pre[k:]), increasing=not peak),
                config.max_bins,
            )
            for peak in (True, False)
            for k in range(1, len(pre))
        ]
        turning = max(shaped, key=iv)
        # Information a pure-noise feature would show with as many bins (chi-square / N):
        # a turn must beat it clearly, or small samples would bend noise into peaks.
        rate = total_bad / len(y)
        noise = (len(turning) - 1) / (len(y) * rate * (1 - rate)) if 0 < rate < 1 else math.inf
        gain = iv(turning) - iv(best)
        if gain > config.turning_point_gain * iv(best) and gain > 2 * noise:
            best = turning
    best[0].lower, best[-1].upper = -math.inf, math.inf  # the ends are open
    return best


def bin_categorical(x: pd.Series, y: np.ndarray, config: TrainingConfig) -> list[BinStats]:
    """One band per frequent category (ordered by bad rate); rare ones pooled as 'other'."""
    frame = pd.DataFrame({"x": x.astype(str).to_numpy(), "y": y})
    grouped = frame.groupby("x")["y"].agg(["sum", "count"])
    min_rows = config.min_bin_share * len(frame)
    bins: list[BinStats] = []
    other = BinStats(good=0, bad=0, categories=[])
    for category, row in grouped.sort_values("count", ascending=False).iterrows():
        stats = BinStats(
            good=float(row["count"] - row["sum"]), bad=float(row["sum"]), categories=[str(category)]
        )
        if row["count"] >= min_rows and len(bins) < config.max_categories:
            bins.append(stats)
        else:
            other = other.merged(stats)
    if other.count:
        bins.append(other)
    bins.sort(key=lambda b: b.bad_rate)
    while len(bins) > config.max_bins:
        gaps = [abs(bins[i].bad_rate - bins[i + 1].bad_rate) for i in range(len(bins) - 1)]
        bins = _merge_at(bins, int(np.argmin(gaps)))
    return bins


@dataclass
class FeatureBinning:
    name: str
    kind: str
    bins: list[BinStats]
    missing: BinStats
    woes: list[float]
    missing_woe: float
    iv: float

    def transform(self, column: pd.Series) -> np.ndarray:
        """WoE of each value (the regression's input)."""
        out = np.full(len(column), self.missing_woe, dtype=float)
        if self.kind == "numeric":
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
            present = ~np.isnan(values)
            cuts = np.asarray([b.upper for b in self.bins[:-1]], dtype=float)
            index = np.searchsorted(cuts, values[present], side="right")
            out[present] = np.asarray(self.woes)[index]
            return out
        lookup = {
            c: w for b, w in zip(self.bins, self.woes, strict=True) for c in (b.categories or [])
        }
        text = column.astype(str).to_numpy()
        present = column.notna().to_numpy()
        for i in np.flatnonzero(present):
            out[i] = lookup.get(text[i], 0.0)
        return out


def fit_binning(column: pd.Series, y: np.ndarray, config: TrainingConfig) -> FeatureBinning:
    """Bin one feature and compute WoE/IV; missing values get their own band when frequent."""
    numeric = pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)
    present = column.notna().to_numpy()
    y_present, y_missing = y[present], y[~present]
    if numeric:
        bins = bin_numeric(column[present].to_numpy(dtype=float), y_present, config)
    else:
        bins = bin_categorical(column[present], y_present, config)
    missing = BinStats(good=float(len(y_missing) - y_missing.sum()), bad=float(y_missing.sum()))
    total_good, total_bad = float(len(y) - y.sum()), float(y.sum())
    present_bins = [b for b in bins if b.count > 0]
    scored = [*present_bins, missing] if missing.count >= config.min_missing_rows else present_bins
    n = len(scored)
    woes = [woe(b.good, b.bad, total_good, total_bad, n) for b in bins]
    # A rare or absent missing band is neutral (WoE 0): no evidence either way.
    missing_woe = (
        woe(missing.good, missing.bad, total_good, total_bad, n)
        if missing.count >= config.min_missing_rows
        else 0.0
    )
    return FeatureBinning(
        name=str(column.name),
        kind="numeric" if numeric else "categorical",
        bins=bins,
        missing=missing,
        woes=woes,
        missing_woe=missing_woe,
        iv=information_value(scored, total_good, total_bad),
    )


def ks_statistic(y: np.ndarray, scores: np.ndarray) -> float:
    """Largest gap between the cumulative score distributions of bads and goods."""
    order = np.argsort(scores, kind="mergesort")
    ys = y[order]
    cum_bad = np.cumsum(ys) / max(ys.sum(), 1)
    cum_good = np.cumsum(1 - ys) / max((1 - ys).sum(), 1)
    return float(np.max(np.abs(cum_bad - cum_good)))


@dataclass
class TrainingResult:
    scorecard: Scorecard
    test_auc: float
    test_gini: float
    test_ks: float


def _band_label(b: BinStats) -> str:
    if b.categories is not None:
        shown = ", ".join(b.categories[:5]) + (", …" if len(b.categories) > 5 else "")
        return f"{{{shown}}}"
    lower = "-inf" if b.lower is None or math.isinf(b.lower) else f"{b.lower:g}"
    upper = "+inf" if b.upper is None or math.isinf(b.upper) else f"{b.upper:g}"
    return f"[{lower}, {upper})"


def train_scorecard(
    data: pd.DataFrame,
    *,
    target: str,
    model_id: str,
    version: str,
    id_column: str | None = None,
    config: TrainingConfig | None = None,
) -> TrainingResult:
    """Train a scorecard on `data` (target: 1 = bad) with a stratified train/test split."""
    config = config or TrainingConfig()
    if target not in data.columns:
        raise ValueError(f"target column {target!r} is not in the data")
    y_all = pd.to_numeric(data[target], errors="coerce")
    if y_all.isna().any() or not set(np.unique(y_all)) <= {0, 1}:
        raise ValueError(f"target {target!r} must be 0/1 with no missing values")
    features = [c for c in data.columns if c not in {target, id_column}]
    x_train, x_test, y_train, y_test = train_test_split(
        data[features],
        y_all.to_numpy(dtype=int),
        test_size=config.test_size,
        random_state=config.seed,
        stratify=y_all.to_numpy(dtype=int),
    )
    binnings = {name: fit_binning(x_train[name], y_train, config) for name in features}
    selected = [n for n in features if binnings[n].iv >= config.min_iv]
    if not selected:
        raise ValueError("no feature reaches the minimum information value")
    while True:  # a positive coefficient on WoE means collinearity: drop it and refit
        matrix = np.column_stack([binnings[n].transform(x_train[n]) for n in selected])
        model = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
        model.fit(matrix, y_train)
        wrong = [n for n, c in zip(selected, model.coef_[0], strict=True) if c > 0]
        if not wrong or len(selected) == 1:
            break
        selected = [n for n in selected if n not in wrong[:1]]
    scaling = config.scaling
    coefficients = dict(zip(selected, model.coef_[0].tolist(), strict=True))
    intercept = float(model.intercept_[0])
    share = (scaling.offset - scaling.factor * intercept) / len(selected)

    def points(name: str, w: float) -> int:
        return round(-scaling.factor * float(coefficients[name]) * w + share)

    feature_models = []
    for name in selected:
        fb = binnings[name]
        total = float(sum(b.count for b in fb.bins) + fb.missing.count)
        bins = [
            Bin(
                label=_band_label(b),
                points=points(name, w),
                woe=round(w, 6),
                count=int(b.count),
                bad_rate=round(b.bad_rate, 6),
                lower=None if b.lower is None or math.isinf(b.lower) else b.lower,
                upper=None if b.upper is None or math.isinf(b.upper) else b.upper,
                categories=b.categories,
            )
            for b, w in zip(fb.bins, fb.woes, strict=True)
        ]
        missing = Bin(
            label="missing",
            points=points(name, fb.missing_woe),
            woe=round(fb.missing_woe, 6),
            count=int(fb.missing.count),
            bad_rate=round(fb.missing.bad_rate, 6) if fb.missing.count else None,
        )
        unseen = (
            Bin(label="unseen category", points=points(name, 0.0), woe=0.0)
            if fb.kind == "categorical"
            else None
        )
        feature_models.append(
            Feature(
                name=name,
                kind="numeric" if fb.kind == "numeric" else "categorical",
                label=config.labels.get(name, name.replace("_", " ")),
                information_value=round(fb.iv, 6),
                bins=bins,
                missing=missing,
                unseen=unseen,
                cut_points=[b.upper for b in fb.bins[:-1] if b.upper is not None]
                if fb.kind == "numeric"
                else [],
                train_shares=[round(b.count / total, 6) for b in [*fb.bins, fb.missing]],
            )
        )
    draft = Scorecard(
        model_id=model_id,
        version=version,
        target=target,
        scaling=scaling,
        features=feature_models,
        score_bands=ScoreBand(cut_points=[], train_shares=[]),
    )
    train_scores = draft.score_columns({n: x_train[n].to_numpy() for n in selected})
    test_scores = draft.score_columns({n: x_test[n].to_numpy() for n in selected})
    deciles = np.unique(np.quantile(train_scores, np.linspace(0, 1, 11)[1:-1]))
    band_index = np.searchsorted(deciles, train_scores, side="right")
    band_shares = np.bincount(band_index, minlength=len(deciles) + 1) / len(train_scores)
    test_pd = np.array([scaling.probability_of_default(float(s)) for s in test_scores])
    auc = float(roc_auc_score(y_test, test_pd))
    ks = ks_statistic(y_test, -test_scores.astype(float))
    card = {
        "rows": {"train": len(y_train), "test": len(y_test)},
        "bad_rate": {"train": float(y_train.mean()), "test": float(y_test.mean())},
        "seed": config.seed,
        "test": {"auc": round(auc, 6), "gini": round(2 * auc - 1, 6), "ks": round(ks, 6)},
        "features": [
            {
                "name": n,
                "iv": round(binnings[n].iv, 6),
                "selected": n in selected,
                "coefficient": round(coefficients[n], 6) if n in coefficients else None,
            }
            for n in sorted(features, key=lambda n: -binnings[n].iv)
        ],
        "intercept": round(intercept, 6),
        "calibration": _calibration(test_scores, test_pd, y_test),
    }
    final = draft.model_copy(
        update={
            "score_bands": ScoreBand(
                cut_points=[float(c) for c in deciles],
                train_shares=[round(float(s), 6) for s in band_shares],
            ),
            "card": card,
        }
    )
    return TrainingResult(final, test_auc=auc, test_gini=2 * auc - 1, test_ks=ks)


def _calibration(scores: np.ndarray, pd_hat: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    """Ten score bands (deciles of the test scores): predicted vs observed bad rate."""
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, 11)))
    index = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, max(len(edges) - 2, 0))
    rows = []
    for band in range(max(len(edges) - 1, 1)):
        mask = index == band
        if not mask.any():
            continue
        rows.append(
            {
                "score_from": float(scores[mask].min()),
                "score_to": float(scores[mask].max()),
                "count": int(mask.sum()),
                "predicted_bad_rate": round(float(pd_hat[mask].mean()), 6),
                "observed_bad_rate": round(float(y[mask].mean()), 6),
            }
        )
    return rows
