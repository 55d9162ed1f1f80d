"""Scorecard quality on GMSC (70/30 stratified, seed 42): ours vs optbinning vs LightGBM.

Prints test AUC, Gini and KS of our scorecard next to optbinning's `Scorecard`
(BinningProcess + LogisticRegression, default settings) trained on the same split in the same
run, and LightGBM (no reason codes) as the ceiling. Needs the bench extra (`make bench`).
"""

from __future__ import annotations

import time

import numpy as np
from _gmsc import load
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from services.scoring.datasets import GMSC_ID, GMSC_TARGET
from services.scoring.training import ks_statistic, train_scorecard


def metrics(y: np.ndarray, p_bad: np.ndarray) -> tuple[float, float, float]:
    auc = float(roc_auc_score(y, p_bad))
    return auc, 2 * auc - 1, ks_statistic(y, -p_bad)


def main() -> None:
    data, x_train, x_test, y_train, y_test = load()
    started = time.perf_counter()
    ours = train_scorecard(
        data, target=GMSC_TARGET, id_column=GMSC_ID, model_id="gmsc", version="b"
    )
    ours_fit = time.perf_counter() - started
    card = ours.scorecard
    scores = card.score_columns({f.name: x_test[f.name].to_numpy() for f in card.features})
    p_ours = np.array([card.scaling.probability_of_default(float(s)) for s in scores])
    rows = {"qingshou scorecard": (*metrics(y_test, p_ours), ours_fit)}

    from optbinning import BinningProcess, Scorecard

    started = time.perf_counter()
    reference = Scorecard(
        binning_process=BinningProcess(variable_names=list(x_train.columns)),
        estimator=LogisticRegression(),
    )
    reference.fit(x_train, y_train)
    reference_fit = time.perf_counter() - started
    rows["optbinning Scorecard"] = (
        *metrics(y_test, reference.predict_proba(x_test)[:, 1]),
        reference_fit,
    )

    from lightgbm import LGBMClassifier

    started = time.perf_counter()
    booster = LGBMClassifier(random_state=42, verbose=-1).fit(x_train, y_train)
    rows["LightGBM (no reason codes)"] = (
        *metrics(y_test, np.asarray(booster.predict_proba(x_test))[:, 1]),
        time.perf_counter() - started,
    )

    print("\nbench/scorecard_quality.py  GMSC 150,000 rows, 70/30 stratified split, seed 42")
    print(f"{'model':<30}{'AUC':>8}{'Gini':>8}{'KS':>8}{'fit s':>8}")
    for name, (auc, gini, ks, fit) in rows.items():
        print(f"{name:<30}{auc:>8.4f}{gini:>8.4f}{ks:>8.4f}{fit:>8.2f}")
    ref_auc = rows["optbinning Scorecard"][0]
    print(
        f"ours / optbinning AUC = {rows['qingshou scorecard'][0] / ref_auc:.4f} "
        f"(target >= 1.0); AUC gap to LightGBM = "
        f"{rows['LightGBM (no reason codes)'][0] - rows['qingshou scorecard'][0]:+.4f}"
    )


if __name__ == "__main__":
    main()
