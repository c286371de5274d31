"""Shared pieces of the benchmarks: import paths, the fast-mode detector, small statistics."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT), str(ROOT / "lambdas")):
    if path not in sys.path:
        sys.path.insert(0, path)

from facepipe.detector import FixedDetector  # noqa: E402,F401 - re-exported for the benchmarks


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
