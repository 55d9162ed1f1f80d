"""Scoring's own commands: `train` a scorecard from any CSV, `setup` the default model."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def train_command(argv: list[str]) -> int:
    """python -m services.scoring train --csv FILE --target COLUMN [--id COLUMN] ..."""
    import pandas as pd

    from services.scoring.training import TrainingConfig, train_scorecard

    parser = argparse.ArgumentParser(prog="python -m services.scoring train")
    parser.add_argument("--csv", required=True, type=Path, help="training data (may be .gz)")
    parser.add_argument("--target", required=True, help="0/1 column, 1 = bad outcome")
    parser.add_argument("--id", dest="id_column", help="row id column to leave out")
    parser.add_argument("--model-id", default="scorecard")
    parser.add_argument("--version", default="1")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, help="model file (default: var/models/ID-VERSION.json)")
    parser.add_argument("--labels", type=Path, help="JSON {column: readable label} for reasons")
    args = parser.parse_args(argv)
    labels = json.loads(args.labels.read_text()) if args.labels else {}
    started = time.perf_counter()
    result = train_scorecard(
        pd.read_csv(args.csv),
        target=args.target,
        id_column=args.id_column,
        model_id=args.model_id,
        version=args.version,
        config=TrainingConfig(seed=args.seed, labels=labels),
    )
    out = args.out or Path("var/models") / f"{args.model_id}-{args.version}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(result.scorecard.model_dump_json(indent=1))
    print(
        f"trained {result.scorecard.key} in {time.perf_counter() - started:.2f}s: "
        f"test AUC {result.test_auc:.4f}, Gini {result.test_gini:.4f}, KS {result.test_ks:.4f}; "
        f"{len(result.scorecard.features)} features -> {out}"
    )
    return 0


def setup_command(argv: list[str]) -> int:
    """Train the default GMSC model if its file is not there yet (used by `make run`)."""
    from services.scoring.datasets import GMSC_ID, GMSC_LABELS, GMSC_TARGET, gmsc_csv
    from services.scoring.settings import ScoringSettings

    parser = argparse.ArgumentParser(prog="python -m services.scoring setup")
    parser.add_argument("--data-dir", type=Path, default=Path("var/data"))
    args = parser.parse_args(argv)
    settings = ScoringSettings()
    model_file = Path(settings.default_model_path)
    if model_file.exists():
        print(f"default model present: {model_file}")
        return 0
    labels_file = args.data_dir / "gmsc-labels.json"
    args.data_dir.mkdir(parents=True, exist_ok=True)
    labels_file.write_text(json.dumps(GMSC_LABELS, ensure_ascii=False))
    return train_command(
        [
            "--csv",
            str(gmsc_csv(args.data_dir)),
            "--target",
            GMSC_TARGET,
            "--id",
            GMSC_ID,
            "--model-id",
            "gmsc-scorecard",
            "--version",
            "1",
            "--seed",
            "42",
            "--out",
            str(model_file),
            "--labels",
            str(labels_file),
        ]
    )


COMMANDS = {"train": train_command, "setup": setup_command}
