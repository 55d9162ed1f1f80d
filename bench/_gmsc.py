"""Shared by the scorecard benchmarks: the GMSC data and the split the default model uses."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.scoring.datasets import GMSC_ID, GMSC_TARGET, gmsc_csv  # noqa: E402


def load() -> tuple[Any, Any, Any, Any, Any]:
    """(data, x_train, x_test, y_train, y_test) with the 70/30 stratified split, seed 42."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    data = pd.read_csv(gmsc_csv(ROOT / "var" / "data"))
    features = [c for c in data.columns if c not in {GMSC_TARGET, GMSC_ID}]
    y = data[GMSC_TARGET].to_numpy(dtype=int)
    x_train, x_test, y_train, y_test = train_test_split(
        data[features], y, test_size=0.3, random_state=42, stratify=y
    )
    return data, x_train, x_test, y_train, y_test
