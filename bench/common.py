"""Shared pieces of the benchmarks: the project root, the fast-mode detector, small statistics.

The project is installed (editable) in the venv: facepipe and detect_faces import as packages.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from facepipe.local.centerface import FixedDetector

__all__ = ["ROOT", "FixedDetector", "median", "percentile"]  # FixedDetector: re-exported for the benchmarks

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
