"""Cold start: importing the handler and building its clients, against `import boto3` alone.

Each figure is the median of fresh interpreter runs (time measured inside the process, so interpreter
start-up is excluded from both); peak memory is the process's max RSS.

    .venv/bin/python bench/cold_start.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from common import ROOT, median

from detect_faces.contract import METRICS_NAMESPACE, SERVICE_NAME, EnvVar
from detect_faces.settings import Settings

PROBE = """
import json, resource, sys, time
sys.path[:0] = [{root!r}, {lambdas!r}]
t = time.perf_counter()
{body}
elapsed = time.perf_counter() - t
print(json.dumps({{"seconds": elapsed, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

CASES = {
    "import boto3": "import boto3",
    "import boto3 + 4 clients": (
        "import boto3\ns = boto3.session.Session()\n[s.client(n) for n in ('s3', 'rekognition', 'dynamodb', 'sqs')]"
    ),
    "handler import + build (tracing off)": ("from detect_faces import handler\nhandler.get_processor()"),
    "handler import + build (tracing on, as deployed)": ("from detect_faces import handler\nhandler.get_processor()"),
}


def measure(body: str, tracing: bool, runs: int, python: str) -> tuple[float, float]:
    env = {
        **os.environ,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        **Settings(results_table="results", failure_queue_url="https://sqs.us-east-1.amazonaws.com/1/dlq").to_env(),
        EnvVar.SERVICE_NAME: SERVICE_NAME,
        EnvVar.METRICS_NAMESPACE: METRICS_NAMESPACE,
        "POWERTOOLS_TRACE_DISABLED": "false" if tracing else "true",
    }
    if tracing:
        env["AWS_LAMBDA_FUNCTION_NAME"] = "bench"  # Powertools' Tracer is active only inside Lambda
        env["AWS_XRAY_CONTEXT_MISSING"] = "IGNORE_ERROR"
    code = PROBE.format(root=str(ROOT), lambdas=str(ROOT / "lambdas"), body=body)
    seconds, memory = [], []
    for _ in range(runs):
        out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, check=True)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        seconds.append(figures["seconds"])
        memory.append(figures["maxrss_mb"])
    return median(seconds), median(memory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter to measure; `make bench-venv` builds build/lambda-venv with only what Lambda has "
        "(boto3) plus the function's layer requirements, closer to the real cold start than the dev venv",
    )
    args = parser.parse_args()
    print(f"interpreter: {args.python}")
    results = {name: measure(body, "tracing on" in name, args.runs, args.python) for name, body in CASES.items()}
    base_s, base_mb = results["import boto3"]
    print(f"{'case':<50} {'median ms':>10} {'÷ boto3':>8} {'peak MB':>8}")
    for name, (seconds, mb) in results.items():
        print(f"{name:<50} {seconds * 1000:>10.1f} {seconds / base_s:>8.2f} {mb:>8.1f}")
    print(f"(target: handler import + build <= 1.5x import boto3; baseline peak {base_mb:.1f} MB)")


if __name__ == "__main__":
    main()
