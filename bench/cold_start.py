"""Cold start: importing the handler and building it, then the first record, against the floor any Python
function calling S3, Rekognition and DynamoDB pays (`import boto3` and those three clients).

Each figure is the median of fresh interpreter runs (time measured inside the process, so interpreter
start-up is excluded from all of them); peak memory is the process's max RSS. The first record's AWS calls
are answered in memory (a before-call handler, as botocore's Stubber does) on the very clients the function
builds, so only our cost and botocore's client creation count.

    .venv/bin/python bench/cold_start.py [--runs 15] [--python build/lambda-venv/bin/python]
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
from facepipe.local.aws import FAKE_CREDENTIALS

PROBE = """
import json, resource, sys, time
sys.path[:0] = [{lambdas!r}]  # as Lambda puts the function's folder on the path
t = time.perf_counter()
{body}
elapsed = time.perf_counter() - t
print(json.dumps({{"seconds": elapsed, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

# The first record, with every AWS call of its path answered in memory (created as the function creates them).
FIRST_RECORD = """
import io
import boto3.session
from botocore.response import StreamingBody
jpeg = b"\\xff\\xd8\\xff\\xe0" + b"\\0" * 28
canned = {
    "UpdateItem": [{"Attributes": {}}, {"Attributes": {"status": {"S": "PROCESSING"}}}],
    "PutItem": [{}],
    "GetObject": [{"Body": StreamingBody(io.BytesIO(jpeg), len(jpeg)), "ContentRange": "bytes 0-31/5000"}],
    "DetectFaces": [{"FaceDetails": [{"BoundingBox": {"Width": 0.2, "Height": 0.3, "Left": 0.1, "Top": 0.1},
                                       "Confidence": 99.9}]}],
}
class Answered:  # what botocore reads of an HTTP response that a before-call handler supplies
    status_code = 200
    headers = {}
def answer(model, **_):  # like botocore's Stubber, without its imports and validation
    return Answered(), canned[model.name].pop(0)
original = boto3.session.Session.client
def answered(self, name, *args, **kwargs):
    client = original(self, name, *args, **kwargs)
    client.meta.events.register("before-call", answer)
    return client
boto3.session.Session.client = answered
class Context:
    function_name = "detect_faces"; memory_limit_in_mb = 512; function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:detect_faces"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    def get_remaining_time_in_millis(self): return 60000
event = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
    "eventTime": "2026-11-28T12:00:00.000Z", "eventName": "ObjectCreated:Put",
    "s3": {"bucket": {"name": "uploads"}, "object": {"key": "a.jpg", "size": 5000, "eTag": "e",
           "versionId": "v1", "sequencer": "0055AED6DCD90281E5"}}}]}
result = handler.lambda_handler(event, Context())
assert result["records"][0]["outcome"] == "detected", result
"""

CASES = {
    "import boto3": "import boto3",
    "floor: import boto3 + s3, rekognition, dynamodb clients": (
        "import boto3\ns = boto3.session.Session()\n[s.client(n) for n in ('s3', 'rekognition', 'dynamodb')]"
    ),
    "handler import + build": "from detect_faces import handler\nhandler.get_processor()",
    "cold path: import + build + first record": "from detect_faces import handler\n" + FIRST_RECORD,
}


def measure(cases: dict[str, str], runs: int, python: str, code_dir: str) -> dict[str, tuple[float, float]]:
    """Median seconds and peak MB per case. The cases take turns, run after run, so that the machine's
    drift over the minutes this takes falls on all of them alike (the ratios are what the targets are)."""
    env = {
        **os.environ,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        **FAKE_CREDENTIALS,  # the calls are answered in memory; nothing is signed for real
        **Settings(results_table="results", failure_queue_url="https://sqs.us-east-1.amazonaws.com/1/dlq").to_env(),
        EnvVar.SERVICE_NAME: SERVICE_NAME,
        EnvVar.METRICS_NAMESPACE: METRICS_NAMESPACE,
        EnvVar.LOG_LEVEL: "INFO",  # as deployed
    }
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    memory: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, body in cases.items():
            code = PROBE.format(lambdas=code_dir, body=body)
            out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, check=True)
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            seconds[name].append(figures["seconds"])
            memory[name].append(figures["maxrss_mb"])
    return {name: (median(seconds[name]), median(memory[name])) for name in cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter to measure; `make bench-venv` builds build/lambda-venv with only what Lambda has "
        "(boto3) plus the function's layer requirements, closer to the real cold start than the dev venv",
    )
    parser.add_argument(
        "--code",
        default=str(ROOT / "lambdas"),
        help="the folder holding detect_faces (default lambdas/); e.g. an older checkout's, for before/after",
    )
    args = parser.parse_args()
    print(f"interpreter: {args.python}; code: {args.code}; median of {args.runs} fresh interpreters per case")
    results = measure(CASES, args.runs, args.python, args.code)
    boto3_s, base_mb = results["import boto3"]
    floor_s, _ = results["floor: import boto3 + s3, rekognition, dynamodb clients"]
    print(f"{'case':<58} {'median ms':>10} {'÷ boto3':>8} {'÷ floor':>8} {'peak MB':>8}")
    for name, (seconds, mb) in results.items():
        print(f"{name:<58} {seconds * 1000:>10.1f} {seconds / boto3_s:>8.2f} {seconds / floor_s:>8.2f} {mb:>8.1f}")
    build = results["handler import + build"][0] / boto3_s
    cold = results["cold path: import + build + first record"][0] / floor_s
    print(f"targets: handler import + build <= 1.5x import boto3 (stretch 1.3x): {build:.2f}x")
    print(f"         cold path <= 1.15x the floor: {cold:.2f}x  (baseline peak {base_mb:.1f} MB)")


if __name__ == "__main__":
    main()
