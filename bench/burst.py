"""Burst drain: N uploads at once against a DetectFaces quota of Q TPS, facepipe vs a naive pipeline.

Both run through the local pipeline (moto, the emulator throttling at Q TPS with a modelled service
latency, the local Lambda runtime) with the detector in fast mode, so the quota is the bottleneck.

    .venv/bin/python bench/burst.py --n 600 --tps 20
    .venv/bin/python bench/burst.py --n 600 --tps 20 --sweep      # facepipe at several concurrencies
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common import FixedDetector

from facepipe.common import photos
from facepipe.local import LocalPipeline, LocalSettings
from facepipe.local.runtime import Handler


@dataclass
class Outcome:
    name: str
    concurrency: int
    drain_seconds: float
    stored: int
    dlq_images: int
    calls: int
    throttled: int
    twice: int
    lambda_errors: int
    mean_duration: float

    def row(self, n: int, tps: float) -> str:
        ideal = n / tps
        throughput = self.stored / self.drain_seconds if self.drain_seconds else 0.0
        return (
            f"{self.name:<22} {self.concurrency:>5} {self.stored:>6}/{n:<6} {throughput / tps:>9.2f} "
            f"{self.drain_seconds / ideal:>9.2f} {self.throttled / max(1, self.calls):>9.1%} "
            f"{self.dlq_images:>7} {self.twice:>7} {self.lambda_errors:>7} {self.mean_duration * 1000:>7.0f}"
        )


HEADER = (
    f"{'pipeline':<22} {'conc':>5} {'stored':>13} {'thru÷Q':>9} {'drain÷N/Q':>9} {'throttled':>9} "
    f"{'in DLQ':>7} {'twice':>7} {'λ errs':>7} {'D ms':>7}"
)


@dataclass(frozen=True)
class Burst:
    """What every pipeline compared meets: N uploads at once, the quota Q, DetectFaces' latency."""

    n: int
    tps: float
    latency: float
    timeout: float  # seconds to wait for the drain
    attempts: int  # facepipe's DETECT_MAX_ATTEMPTS


def run(burst: Burst, name: str, concurrency: int, naive: bool) -> Outcome:
    settings = LocalSettings(
        concurrency=concurrency,
        tps=burst.tps,
        latency=burst.latency,
        delay_scale=0.01,
        log_level="ERROR",
        detect_max_attempts=burst.attempts,
    )
    handler = naive_handler(lambda: pipeline.table) if naive else None
    pipeline = LocalPipeline(settings, detector=FixedDetector(), handler=handler)
    pipeline.start()
    try:
        drain = drain_seconds(pipeline, burst, name)
        return outcome(pipeline, name, concurrency, drain)
    finally:
        pipeline.stop()


def naive_handler(table: Callable[[], str]) -> Handler:
    """The naive pipeline's handler, built on the first event: its clients must see the local stack's endpoints."""
    built: list[Handler] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        if not built:
            from naive import make_handler

            built.append(make_handler(table()))
        return built[0](event, context)

    return handler


def drain_seconds(pipeline: LocalPipeline, burst: Burst, name: str) -> float:
    """N uploads held back, then let go at once: seconds until every one reached its end."""
    assert pipeline.runtime is not None
    s3 = pipeline.client("s3")
    body = photos.photo("astronaut.jpg")
    pipeline.wait_for_events(1, timeout=30)  # the s3:TestEvent
    pipeline.runtime.pause()
    for i in range(burst.n):
        s3.put_object(Bucket=pipeline.bucket, Key=f"burst/{i:05d}.jpg", Body=body)
    start = time.monotonic()
    pipeline.runtime.resume()  # all N notifications are waiting: a burst
    if not pipeline.wait_for_events(burst.n + 1, timeout=burst.timeout):
        print(f"  ({name}: not drained within {burst.timeout:.0f}s)")
    return time.monotonic() - start


def outcome(pipeline: LocalPipeline, name: str, concurrency: int, drain: float) -> Outcome:
    assert pipeline.runtime is not None and pipeline.emulator is not None
    stats, runtime = pipeline.emulator.stats, pipeline.runtime.stats
    per_key: Counter[str] = Counter()
    for (_, key, _), count in stats.analysed.items():
        per_key[key] += count
    return Outcome(
        name=name,
        concurrency=concurrency,
        drain_seconds=drain,
        stored=stored_results(pipeline),
        dlq_images=len(dead_lettered_keys(pipeline)),
        calls=stats.requests,
        throttled=stats.throttled,
        twice=sum(1 for c in per_key.values() if c > 1),
        lambda_errors=runtime.errors,
        mean_duration=runtime.busy_seconds / max(1, runtime.invocations),
    )


def stored_results(pipeline: LocalPipeline) -> int:
    """Images with faces stored: the results table's DETECTED summaries."""
    scan = (
        pipeline.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=pipeline.table,
            Select="COUNT",
            FilterExpression="sk = :m AND #s = :d",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":m": {"S": "META"}, ":d": {"S": "DETECTED"}},
        )
    )
    return sum(page["Count"] for page in scan)


def dead_lettered_keys(pipeline: LocalPipeline) -> set[str]:
    """The keys of the DLQ's failure records (the queue is emptied)."""
    keys: set[str] = set()
    sqs = pipeline.client("sqs")
    while messages := sqs.receive_message(QueueUrl=pipeline.dlq_url, MaxNumberOfMessages=10).get("Messages", []):
        for m in messages:
            for record in json.loads(m["Body"]).get("requestPayload", {}).get("Records", []):
                keys.add(record["s3"]["object"]["key"])
            sqs.delete_message(QueueUrl=pipeline.dlq_url, ReceiptHandle=m["ReceiptHandle"])
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600, help="uploads in the burst (default 600)")
    parser.add_argument(
        "--tps",
        type=float,
        default=8.0,
        help="DetectFaces quota Q (default 8: below the local pipeline's own ~13 images/s)",
    )
    parser.add_argument("--latency", type=float, default=0.25, help="modelled DetectFaces latency, s (default 0.25)")
    parser.add_argument("--naive-concurrency", type=int, default=100, help="'unlimited' concurrency (default 100)")
    parser.add_argument("--sweep", action="store_true", help="also run facepipe at 0.5x, 2x and 4x the rule")
    parser.add_argument(
        "--duration",
        type=float,
        default=0.35,
        help="the function's unthrottled median duration D in s, for the rule ceil(headroom*Q*D) (default 0.35)",
    )
    parser.add_argument("--headroom", type=float, default=1.0, help="the rule's headroom (default 1.0)")
    parser.add_argument("--attempts", type=int, default=10, help="DETECT_MAX_ATTEMPTS for facepipe (default 10)")
    parser.add_argument("--concurrency", type=int, nargs="*", help="run facepipe at these concurrencies instead")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive pipeline")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    rule = max(1, math.ceil(args.tps * args.duration * args.headroom))  # see --rule
    print(f"burst of {args.n} uploads, DetectFaces quota Q={args.tps:g} TPS, service latency L={args.latency:g}s;"
          f" ideal drain N/Q = {args.n / args.tps:.1f}s; concurrency rule ceil({args.headroom:g}*Q*D) with"
          f" D={args.duration:g}s = {rule}")  # fmt: skip
    print(HEADER)
    runs = [("facepipe", c, False) for c in (args.concurrency or [rule])]
    if args.sweep:
        runs += [("facepipe", max(1, rule // 2), False), ("facepipe", rule * 2, False), ("facepipe", rule * 4, False)]
    if not args.no_naive:
        runs.append(("naive", args.naive_concurrency, True))
    burst = Burst(n=args.n, tps=args.tps, latency=args.latency, timeout=args.timeout, attempts=args.attempts)
    for name, concurrency, naive in runs:
        print(run(burst, name, concurrency, naive).row(args.n, args.tps), flush=True)


if __name__ == "__main__":
    main()
