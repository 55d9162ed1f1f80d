"""The scorecard runtime: a versioned JSON model, scored without pickles or scikit-learn.

A model is data: per feature, its bins (numeric cut points or category groups), the points of
each bin, what missing values and unseen categories get, reason-code texts, and the training
distributions frozen for stability monitoring. A case's score is the sum of its per-feature
points (integers), so the explanation adds up exactly to the score. Numpy is only needed for
the vectorised batch path.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FORMAT: Literal["qingshou.scorecard/1"] = "qingshou.scorecard/1"
FeatureValue = float | int | str | None


class Scaling(BaseModel):
    """score = offset + factor·ln(odds of good); factor = pdo / ln 2."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_score: float = 600.0
    base_odds: float = Field(default=50.0, gt=0, description="Good:bad odds at base_score.")
    pdo: float = Field(default=20.0, gt=0, description="Points to double the odds.")

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        return self.base_score - self.factor * math.log(self.base_odds)

    def score_for_odds(self, odds_good: float) -> float:
        return self.offset + self.factor * math.log(odds_good)

    def probability_of_default(self, score: float) -> float:
        """Probability of the bad outcome implied by a score."""
        log_odds_good = (score - self.offset) / self.factor
        return 1.0 / (1.0 + math.exp(min(700.0, log_odds_good)))


class Bin(BaseModel):
    """One band of a feature. Numeric bins are [lower, upper); categorical bins list values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    points: int
    woe: float
    count: int = 0
    bad_rate: float | None = None
    lower: float | None = None
    upper: float | None = None
    categories: list[str] | None = None


class Feature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["numeric", "categorical"]
    label: str = Field(description="Words a collector and a debtor can read.")
    information_value: float
    bins: list[Bin] = Field(min_length=1)
    missing: Bin = Field(
        description="What a missing value gets (its own trained band, or neutral)."
    )
    unseen: Bin | None = Field(default=None, description="Categories not seen in training.")
    cut_points: list[float] = Field(
        default_factory=list, description="Numeric: bin i is x < cut[i]."
    )
    train_shares: list[float] = Field(
        default_factory=list, description="Share of training rows per bin then missing (PSI)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Feature:
        if self.kind == "numeric" and len(self.cut_points) != len(self.bins) - 1:
            raise ValueError(f"{self.name}: {len(self.bins)} bins need {len(self.bins) - 1} cuts")
        if self.cut_points != sorted(self.cut_points):
            raise ValueError(f"{self.name}: cut points must increase")
        return self

    @property
    def best_points(self) -> int:
        return max(b.points for b in [*self.bins, self.missing])

    def bin_for(self, value: FeatureValue) -> tuple[int, Bin]:
        """Index (len(bins) for missing, -1 for unseen) and bin of a value."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return len(self.bins), self.missing
        if self.kind == "numeric":
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    return len(self.bins), self.missing
            index = bisect.bisect_right(self.cut_points, float(value))
            return index, self.bins[index]
        text = str(value)
        for index, band in enumerate(self.bins):
            if band.categories and text in band.categories:
                return index, band
        return -1, self.unseen or self.missing


class ScoreBand(BaseModel):
    """Frozen training score distribution, for the score's stability index."""

    cut_points: list[float]
    train_shares: list[float]


class Scorecard(BaseModel):
    """A complete, self-describing scorecard model."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    format: Literal["qingshou.scorecard/1"] = FORMAT
    model_id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    version: str = Field(pattern=r"^[0-9A-Za-z._-]{1,32}$")
    target: str
    scaling: Scaling
    features: list[Feature] = Field(min_length=1)
    score_bands: ScoreBand
    card: dict[str, Any] = Field(default_factory=dict, description="Training report.")

    @property
    def key(self) -> str:
        return f"{self.model_id}@{self.version}"

    def score(self, values: Mapping[str, FeatureValue], *, reasons: int = 4) -> CaseScore:
        """Score one case; unknown keys are ignored, absent features count as missing."""
        parts = []
        for feature in self.features:
            _index, band = feature.bin_for(values.get(feature.name))
            parts.append(
                FeaturePoints(
                    feature=feature.name,
                    label=feature.label,
                    band=band.label,
                    points=band.points,
                    shortfall=feature.best_points - band.points,
                )
            )
        total = sum(p.points for p in parts)
        ranked = sorted(
            (p for p in parts if p.shortfall > 0), key=lambda p: (-p.shortfall, p.feature)
        )
        return CaseScore(
            points=total,
            probability_of_default=self.scaling.probability_of_default(total),
            parts=tuple(parts),
            reasons=tuple(ranked[:reasons]),
        )

    def score_columns(self, columns: Mapping[str, Sequence[FeatureValue] | Any]) -> Any:
        """Vectorised scores (numpy int array) for columns of equal length."""
        import numpy as np

        total: Any = None
        for feature in self.features:
            points = _feature_points_vector(feature, columns.get(feature.name), np)
            total = points if total is None else total + points
        return total


def _feature_points_vector(feature: Feature, column: Any, np: Any) -> Any:
    if column is None:
        raise KeyError(f"column {feature.name!r} is missing")
    if feature.kind == "numeric":
        values = np.asarray(column, dtype=float)
        table = np.array([b.points for b in feature.bins] + [feature.missing.points])
        index = np.searchsorted(np.asarray(feature.cut_points, dtype=float), values, side="right")
        index = np.where(np.isnan(values), len(feature.bins), index)
        return table[index]
    lookup = {c: b.points for b in feature.bins for c in (b.categories or [])}
    fallback = (feature.unseen or feature.missing).points
    return np.array(
        [feature.missing.points if v is None else lookup.get(str(v), fallback) for v in column]
    )


@dataclass(frozen=True)
class FeaturePoints:
    feature: str
    label: str
    band: str
    points: int
    shortfall: int  # points lost against the feature's best band


@dataclass(frozen=True)
class CaseScore:
    points: int
    probability_of_default: float
    parts: tuple[FeaturePoints, ...]
    reasons: tuple[FeaturePoints, ...]


def load_scorecard(text: str | bytes) -> Scorecard:
    """Parse and validate a scorecard JSON document."""
    return Scorecard.model_validate_json(text)
