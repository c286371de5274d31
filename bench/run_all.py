"""Run every benchmark with the settings docs/BENCHMARKS.md quotes (`make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    ["detector.py"],
    ["cold_start.py", "--runs", "21", "--python", str(HERE.parent / "build" / "lambda-venv" / "bin" / "python")],
    ["warm_cost.py", "--records", "300"],
    ["pipeline.py", "--n", "200"],
    ["burst.py", "--n", "600", "--tps", "8", "--duration", "0.35", "--sweep"],
    ["backlog.py", "--n", "10000", "--tps", "8", "--engines", "batch-operations"],  # ~40 min
    ["backlog.py", "--n", "2000", "--tps", "8", "--engines", "local"],
    ["backlog.py", "--n", "600", "--tps", "8", "--backlog-concurrency", "2", "3", "4", "--engines", "batch-operations"],
]

if __name__ == "__main__":
    for args in RUNS:
        print(f"\n$ python bench/{' '.join(args)}", flush=True)
        subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]], cwd=HERE, check=True)
