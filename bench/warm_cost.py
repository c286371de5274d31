"""Warm cost per image: handler CPU time with in-memory fakes, DynamoDB write units, log bytes, and
Lambda GB-seconds; then what 1,000 and 1,000,000 images cost at list prices (docs/COSTS.md).

    .venv/bin/python bench/warm_cost.py [--records 300] [--memory-mb 256] [--detect-latency 0.25]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from common import ROOT, median, percentile

sys.path[:0] = [str(ROOT)]  # the tests' builders (tests/ is not installed)
os.environ.update(
    {
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "facepipe",
        "POWERTOOLS_METRICS_NAMESPACE": "Facepipe",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "LOG_LEVEL": "INFO",
    }
)

from detect_faces import handler  # noqa: E402
from detect_faces.settings import Settings  # noqa: E402
from tests.helpers import FakeContext, detect_faces_response, s3_record  # noqa: E402

# List prices, us-east-1, as published by AWS on 2026-11-28 (check the pricing pages before relying on them).
PRICES = {
    "rekognition_per_image": 0.001,  # DetectFaces, first 1M images a month
    "lambda_arm_gb_s": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "dynamodb_wru": 0.625 / 1e6,  # on-demand write request unit
    "dynamodb_rru": 0.125 / 1e6,
    "s3_get": 0.0004 / 1000,
    "sqs_request": 0.40 / 1e6,
    "logs_ingest_gb": 0.50,
    "xray_trace": 5.00 / 1e6,
    "eventbridge_event": 1.00 / 1e6,  # PutEvents, custom events, per 64 KB chunk
}


def item_size(value: Any) -> int:
    """DynamoDB's item-size rules, closely enough: names + values (numbers ~ digits/2 + 1)."""
    if not isinstance(value, dict):
        return 0
    if len(value) == 1:
        ((kind, inner),) = value.items()
        size = VALUE_SIZES.get(kind)  # an attribute value ({"S": "text"}), else a map of names to values
        if size is not None:
            return size(inner)
    return sum(len(k.encode()) + item_size(v) for k, v in value.items())


# The size of an attribute value by its type (DynamoDB's "Item sizes and formats"), from what the type holds.
VALUE_SIZES: dict[str, Callable[[Any], int]] = {
    "S": lambda text: len(text.encode()),
    "B": len,
    "SS": lambda texts: sum(len(v.encode()) for v in texts),
    "N": lambda number: math.ceil(len(number.replace(".", "").replace("-", "")) / 2) + 1,
    "BOOL": lambda _: 1,
    "NULL": lambda _: 1,
    "M": lambda names: 3 + sum(len(k.encode()) + item_size(v) for k, v in names.items()),
    "L": lambda values: 3 + sum(1 + item_size(v) for v in values),
}


class Fakes:
    """In-memory S3, Rekognition, DynamoDB and SQS answering what the handler asks; they count the calls."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.calls: dict[str, int] = {}
        self.write_units = 0
        self.read_units = 0.0
        self.meta = type("Meta", (), {"region_name": "us-east-1"})()

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def get_object(self, **_: Any) -> dict[str, Any]:
        self._count("s3:GetObject")
        return {"Body": io.BytesIO(b"\xff\xd8\xff\xe0" + b"\0" * 28), "ContentRange": "bytes 0-31/204800"}

    def detect_faces(self, **_: Any) -> dict[str, Any]:
        self._count("rekognition:DetectFaces")
        return self.response

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        self._count("dynamodb:UpdateItem")
        size = item_size(kwargs["Key"]) + item_size(kwargs.get("ExpressionAttributeValues", {}))
        units = max(1, math.ceil(size / 1024))
        # META items carry the by-key index's attributes: each write is written to the index too
        self.write_units += units * (2 if kwargs["Key"]["sk"]["S"] == "META" else 1)
        return {"Attributes": {}}

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self._count("dynamodb:PutItem")
        self.write_units += max(1, math.ceil(item_size(kwargs["Item"]) / 1024))
        return {}

    def query(self, **_: Any) -> dict[str, Any]:
        self._count("dynamodb:Query")
        self.read_units += 0.5
        return {"Items": []}

    def delete_item(self, **_: Any) -> dict[str, Any]:
        self._count("dynamodb:DeleteItem")
        self.write_units += 1
        return {}

    def send_message(self, **_: Any) -> dict[str, Any]:
        self._count("sqs:SendMessage")
        return {"MessageId": "m"}


WARM_UP = 20  # invocations not timed: the first ones warm caches


def measure(faces: int, attributes: str, records: int) -> dict[str, Any]:
    fakes = Fakes(json.loads(json.dumps(detect_faces_response(faces, attributes=attributes)), parse_float=float))
    settings = Settings(results_table="results", failure_queue_url="https://sqs/q", face_attributes=attributes)
    clients: Any = fakes  # one stand-in for the four clients: it answers the calls the handler makes
    handler.set_processor(
        handler.build_processor(s3=clients, rekognition=clients, dynamodb=clients, sqs=clients, settings=settings)
    )
    context = FakeContext()
    cpu: list[float] = []
    out = io.StringIO()
    log_handler = handler.logger.registered_handler
    previous_stream = log_handler.setStream(out)  # type: ignore[attr-defined]
    with contextlib.redirect_stdout(out):
        for i in range(records + WARM_UP):
            event = {"Records": [s3_record("bucket", f"img/{i}.jpg", version_id=f"v{i}")]}
            start = time.process_time()
            handler.lambda_handler(event, context)
            if i >= WARM_UP:
                cpu.append(time.process_time() - start)
    log_handler.setStream(previous_stream)  # type: ignore[attr-defined]
    handler.set_processor(None)
    n = records + WARM_UP
    return {
        "cpu_median_ms": median(cpu) * 1000,
        "cpu_p95_ms": percentile(cpu, 95) * 1000,
        "write_units": fakes.write_units / n,
        "read_units": fakes.read_units / n,
        "calls": {k: v / n for k, v in sorted(fakes.calls.items())},
        "log_bytes": len(out.getvalue().encode()) / n,
    }


def costs(per_image: dict[str, float], images: int) -> dict[str, float]:
    return {name: value * images for name, value in per_image.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--memory-mb", type=int, default=256)
    parser.add_argument("--detect-latency", type=float, default=0.25, help="DetectFaces latency, s (assumed)")
    parser.add_argument("--aws-call-latency", type=float, default=0.010, help="S3/DynamoDB call latency, s (assumed)")
    parser.add_argument("--xray-sampled", type=float, default=0.05, help="share of invocations traced (X-Ray default)")
    # Lambda bills the INIT phase of ZIP functions on managed runtimes since 2025-08-01, like the INVOKE phase.
    parser.add_argument(
        "--init-ms",
        type=float,
        default=400.0,
        help="INIT phase per cold start, ms (bench/cold_start.py's cold path, 371 ms, + bootstrap)",
    )
    parser.add_argument(
        "--cold-share",
        type=float,
        default=0.01,
        help="share of invocations that start cold (AWS: under 1%% in production workloads)",
    )
    # Outcome events: the stream's reads by Lambda and the records the mapping's filter drops are not billed; each
    # outcome is one PutEvents entry, and the events function runs once per batch of outcomes.
    parser.add_argument(
        "--events-batch", type=float, default=1.0, help="outcomes per events-function invocation (1: the dearest)"
    )
    parser.add_argument("--events-ms", type=float, default=30.0, help="events function duration per batch, ms")
    args = parser.parse_args()

    print(f"{'case':<24} {'CPU ms p50':>10} {'p95':>7} {'WRU':>6} {'RRU':>5} {'log B':>7} {'GB-s':>9}  calls/image")
    figures = {}
    for label, faces, attributes in [("1 face, DEFAULT", 1, "DEFAULT"), ("100 faces, ALL", 100, "ALL")]:
        f = measure(faces, attributes, args.records)
        other_calls = sum(v for k, v in f["calls"].items() if k != "rekognition:DetectFaces")
        seconds = f["cpu_median_ms"] / 1000 + args.detect_latency + other_calls * args.aws_call_latency
        f["gb_s"] = args.memory_mb / 1024 * math.ceil(seconds * 1000) / 1000
        figures[label] = f
        calls = ", ".join(f"{k.split(':')[1]} {v:g}" for k, v in f["calls"].items())
        print(f"{label:<24} {f['cpu_median_ms']:>10.2f} {f['cpu_p95_ms']:>7.2f} {f['write_units']:>6.1f} "
              f"{f['read_units']:>5.1f} {f['log_bytes']:>7.0f} {f['gb_s']:>9.5f}  {calls}")  # fmt: skip
    print(f"(GB-s assume {args.memory_mb} MB, DetectFaces {args.detect_latency * 1000:.0f} ms and "
          f"{args.aws_call_latency * 1000:.0f} ms per other AWS call; INIT {args.init_ms:.0f} ms on "
          f"{args.cold_share:.1%} of invocations)")  # fmt: skip

    base = figures["1 face, DEFAULT"]
    per_image = {
        "Rekognition DetectFaces": PRICES["rekognition_per_image"],
        "Lambda duration (arm64)": base["gb_s"] * PRICES["lambda_arm_gb_s"],
        "Lambda INIT phase (cold starts)": args.cold_share
        * args.memory_mb
        / 1024
        * args.init_ms
        / 1000
        * PRICES["lambda_arm_gb_s"],
        "Lambda requests": PRICES["lambda_request"],
        "DynamoDB writes (+ index) + reads": base["write_units"] * PRICES["dynamodb_wru"]
        + base["read_units"] * PRICES["dynamodb_rru"],
        "S3 GETs (ours + Rekognition's)": 2 * PRICES["s3_get"],
        "CloudWatch Logs (+EMF)": base["log_bytes"] / 1e9 * PRICES["logs_ingest_gb"],
        "X-Ray traces": args.xray_sampled * PRICES["xray_trace"],
        "SQS (failures only)": 0.0,
        "Outcome events (PutEvents + events function)": PRICES["eventbridge_event"]
        + (PRICES["lambda_request"] + args.memory_mb / 1024 * args.events_ms / 1000 * PRICES["lambda_arm_gb_s"])
        / args.events_batch,
    }
    print()
    print("| item | per image | 1,000 images | 1,000,000 images |")
    print("|---|---:|---:|---:|")
    for name, value in per_image.items():
        print(f"| {name} | ${Decimal(value):.7f} | ${value * 1e3:.4f} | ${value * 1e6:,.2f} |")
    total = sum(per_image.values())
    overhead = total - per_image["Rekognition DetectFaces"]
    print(f"| **total** | ${Decimal(total):.7f} | ${total * 1e3:.4f} | ${total * 1e6:,.2f} |")
    print(f"\npipeline overhead (everything but Rekognition) = {overhead / per_image['Rekognition DetectFaces']:.1%}"
          " of the Rekognition price")  # fmt: skip


if __name__ == "__main__":
    main()
