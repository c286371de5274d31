"""A backlog drained while live uploads keep arriving: does the backlog take the quota live uploads leave, and
only that? Local, against the DetectFaces emulator's quota Q (fast detector, modelled service latency).

Three runs on fresh local stacks:
  live only       live uploads at `--live-share` x Q for `--baseline-seconds`: the live latency without a backlog
  batch-operations  the backlog (N objects S3 sent no event for) as a Batch Operations job run locally (the
                  operator's command, `backfill --engine batch-operations --local`, in its own process): the
                  backlog function at its own concurrency (`--backlog-concurrency`, default the sizing rule
                  ceil((Q - live) x D)), TemporaryFailure retried later; live uploads arrive meanwhile
  invoke          `facepipe backfill --engine invoke --local` at --rate Q - live, in its own process (the live
                  function serves it, in the live function's concurrency); live uploads arrive meanwhile
                  (`--engines local`, the engine's former name, runs it too)

    .venv/bin/python bench/backlog.py --n 10000 --tps 8
    .venv/bin/python bench/backlog.py --n 1000 --tps 8 --engines batch-operations

Printed per run: backlog throughput / (Q - live rate), live upload latency p50/p95 (upload to result stored)
and its ratio to the live-only run, images lost (no result when the run ends), images analysed twice,
the share of DetectFaces calls throttled, the job's TemporaryFailure answers, and throttled calls per live
upload ("live thr."): the part of the live latency the backlog causes through the quota. On a small machine the
rest is the harness: the backlog's S3 and DynamoDB calls run in the same moto process as the live pipeline's.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from common import FixedDetector, percentile

from facepipe import ops
from facepipe.common import photos
from facepipe.local import LOCAL_FUNCTION, LocalPipeline, LocalSettings
from facepipe.local import aws as local_aws
from facepipe.local import state as local_state

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import NotificationConfigurationTypeDef

BACKLOG, LIVE = "backlog/", "live/"


@dataclass
class Run:
    name: str
    drain_seconds: float = 0.0
    backlog_n: int = 0
    backlog_stored: int = 0
    live_latencies: list[float] = field(default_factory=list)
    live_sent: int = 0
    lost: int = 0
    twice: int = 0
    calls: int = 0
    throttled: int = 0
    live_throttled: int = 0  # of those, live uploads' calls: the delay the backlog causes them through the quota
    temporary_failures: int = 0

    def row(self, q: float, live_rate: float, baseline_p95: float | None) -> str:
        spare = q - live_rate
        throughput = self.backlog_stored / self.drain_seconds if self.drain_seconds else 0.0
        p50, p95 = percentile(self.live_latencies, 50), percentile(self.live_latencies, 95)
        ratio = f"{p95 / baseline_p95:>6.2f}" if baseline_p95 and self.live_latencies else f"{'-':>6}"
        thru = f"{throughput / spare:>8.2f}" if self.backlog_n else f"{'-':>8}"
        drain = f"{self.drain_seconds:>8.1f}" if self.backlog_n else f"{'-':>8}"
        return (
            f"{self.name:<17} {thru} {drain} {p50:>7.2f} {p95:>7.2f} {ratio} {self.live_sent:>5} "
            f"{self.lost:>5} {self.twice:>6} {self.throttled / max(1, self.calls):>9.1%} {self.temporary_failures:>6}"
            f" {self.live_throttled / max(1, self.live_sent):>9.2f}"
        )


HEADER = (
    f"{'run':<17} {'thru÷spare':>8} {'drain s':>8} {'live p50':>7} {'live p95':>7} {'p95÷':>6} {'live':>5} "
    f"{'lost':>5} {'twice':>6} {'throttled':>9} {'temp':>6} {'live thr.':>9}"
)


class LiveTraffic:
    """Uploads under live/ at a steady rate; each one's latency from upload to its result stored."""

    def __init__(self, pipeline: LocalPipeline, rate: float) -> None:
        self.pipeline, self.rate = pipeline, rate
        self.sent: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._body = photos.photo("astronaut.jpg")

    def on_result(self, event: dict[str, Any], result: Any, error: BaseException | None) -> None:
        now = time.monotonic()
        for record in (result or {}).get("records", []) if error is None else []:
            if record.get("key", "").startswith(LIVE) and record.get("outcome") == "detected":
                self.done.setdefault(record["key"], now)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        s3 = self.pipeline.client("s3")
        i, start = 0, time.monotonic()
        while not self._stop.is_set():
            due = start + i / self.rate
            if (wait := due - time.monotonic()) > 0 and self._stop.wait(wait):
                return
            key = f"{LIVE}{i:06d}.jpg"
            self.sent[key] = time.monotonic()
            s3.put_object(Bucket=self.pipeline.bucket, Key=key, Body=self._body)
            i += 1

    def latencies(self) -> list[float]:
        return [self.done[k] - t for k, t in self.sent.items() if k in self.done]


def stack(q: float, latency: float, live_concurrency: int, traffic_box: dict[str, LiveTraffic]) -> LocalPipeline:
    settings = LocalSettings(concurrency=live_concurrency, tps=q, latency=latency, delay_scale=0.01, log_level="ERROR")

    def on_result(event: dict[str, Any], result: Any, error: BaseException | None) -> None:
        if "t" in traffic_box:
            traffic_box["t"].on_result(event, result, error)

    return LocalPipeline(settings, detector=FixedDetector(), on_result=on_result).start()


def seed_backlog(pipeline: LocalPipeline, n: int) -> None:
    """N objects S3 sent no event for: uploaded while the bucket has no notification configuration (as before
    the stack existed), which is then put back. (Uploading with the runtime paused and purging the queue
    instead makes moto's SQS slow down with every waiting message: 10,000 took over 20 minutes.)"""
    assert pipeline.runtime is not None
    pipeline.wait_for_events(1, timeout=30)  # the s3:TestEvent
    s3, body = pipeline.client("s3"), photos.photo("astronaut.jpg")
    answered = s3.get_bucket_notification_configuration(Bucket=pipeline.bucket)
    # the configuration as read, less the answer's metadata, is the one to put back
    config = cast("NotificationConfigurationTypeDef", {k: v for k, v in answered.items() if k != "ResponseMetadata"})
    s3.put_bucket_notification_configuration(Bucket=pipeline.bucket, NotificationConfiguration={})
    for i in range(n):
        s3.put_object(Bucket=pipeline.bucket, Key=f"{BACKLOG}{i:06d}.jpg", Body=body)
    s3.put_bucket_notification_configuration(Bucket=pipeline.bucket, NotificationConfiguration=config)
    pipeline.wait_for_events(2, timeout=30)  # the s3:TestEvent of the configuration put back


def target_of(pipeline: LocalPipeline) -> ops.Target:
    return ops.Target(
        pipeline.bucket, pipeline.table, pipeline.dlq_url, LOCAL_FUNCTION, client_for=pipeline.client,
        description="local stack", kind=ops.TargetKind.LOCAL, reports_bucket=local_aws.LOCAL_REPORTS,
    )  # fmt: skip


def settle(pipeline: LocalPipeline, traffic: LiveTraffic, timeout: float = 120.0) -> None:
    """Live uploads stopped: wait for the ones sent to finish (or give up after timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and len(traffic.done) < len(traffic.sent):
        time.sleep(0.2)
    assert pipeline.runtime is not None
    pipeline.runtime.wait_idle(max(1.0, end - time.monotonic()))


def finish(run: Run, pipeline: LocalPipeline, traffic: LiveTraffic) -> Run:
    assert pipeline.emulator is not None
    stats = pipeline.emulator.stats
    per_key: Counter[str] = Counter()
    for (_, key, _), count in stats.analysed.items():
        per_key[key] += count
    store = target_of(pipeline).results()
    statuses = {r.key: r.status for r in store.list_summaries(pipeline.bucket)}
    expected = [f"{BACKLOG}{i:06d}.jpg" for i in range(run.backlog_n)] + list(traffic.sent)
    run.lost = sum(1 for k in expected if statuses.get(k) != "DETECTED")
    run.backlog_stored = sum(1 for k in expected[: run.backlog_n] if statuses.get(k) == "DETECTED")
    run.twice = sum(1 for c in per_key.values() if c > 1)
    run.calls, run.throttled = stats.requests, stats.throttled
    run.live_throttled = sum(n for key, n in stats.throttled_keys.items() if key.startswith(LIVE))
    run.live_latencies, run.live_sent = traffic.latencies(), len(traffic.sent)
    return run


def live_only(args: argparse.Namespace, live_concurrency: int) -> Run:
    box: dict[str, LiveTraffic] = {}
    pipeline = stack(args.tps, args.latency, live_concurrency, box)
    try:
        pipeline.wait_for_events(1, timeout=30)
        traffic = box["t"] = LiveTraffic(pipeline, args.live_share * args.tps)
        traffic.start()
        time.sleep(args.baseline_seconds)
        traffic.stop()
        settle(pipeline, traffic)
        return finish(Run("live only"), pipeline, traffic)
    finally:
        pipeline.stop()


def with_backlog(args: argparse.Namespace, engine: str, live_concurrency: int, backlog_concurrency: int) -> Run:
    box: dict[str, LiveTraffic] = {}
    pipeline = stack(args.tps, args.latency, live_concurrency, box)
    run = Run(engine, backlog_n=args.n)
    try:
        seed_backlog(pipeline, args.n)
        state_dir = tempfile.mkdtemp(prefix="facepipe-bench-")
        env = {**os.environ, "FACEPIPE_STATE_DIR": state_dir}
        os.environ["FACEPIPE_STATE_DIR"] = state_dir
        local_state.write(pipeline.state())
        traffic = box["t"] = LiveTraffic(pipeline, args.live_share * args.tps)
        target = target_of(pipeline)
        traffic.start()
        start = time.monotonic()
        # The operator's command, in its own process as an operator runs it (`--local`: the stack's state file)
        command = [sys.executable, "-m", "facepipe", "backfill", f"s3://{pipeline.bucket}/{BACKLOG}", "--local"]
        if engine == "batch-operations":
            command += ["--engine", "batch-operations", "--concurrency", str(backlog_concurrency)]
        else:
            command += ["--engine", "invoke", "--rate", f"{args.tps * (1 - args.live_share):g}"]
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout, check=False)
        if out.returncode not in (0, 1):
            raise RuntimeError(out.stderr[-2000:])
        if found := re.search(r"\((\d+) TemporaryFailure retried\)", out.stdout):
            run.temporary_failures = int(found.group(1))
        if engine != "batch-operations":
            end = time.monotonic() + args.timeout
            store = target.results()
            while time.monotonic() < end:  # invoked: now wait for the function to finish them
                done = sum(1 for r in store.list_summaries(pipeline.bucket, BACKLOG) if r.status == "DETECTED")
                if done >= args.n:
                    break
                time.sleep(0.5)
        run.drain_seconds = time.monotonic() - start
        traffic.stop()
        settle(pipeline, traffic)
        return finish(run, pipeline, traffic)
    finally:
        pipeline.stop()


def main() -> None:
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="backlog objects (default 10000)")
    parser.add_argument("--tps", type=float, default=8.0, help="the emulator's DetectFaces quota Q (default 8)")
    parser.add_argument("--live-share", type=float, default=0.3, help="live uploads per second, x Q (default 0.3)")
    parser.add_argument("--latency", type=float, default=0.25, help="modelled DetectFaces latency, s (default 0.25)")
    parser.add_argument("--duration", type=float, default=0.35, help="D, the function's median duration, s")
    parser.add_argument(
        "--backlog-concurrency",
        type=int,
        nargs="*",
        default=None,
        help="default: ceil((Q - live) x D); several: a sweep",
    )
    parser.add_argument("--baseline-seconds", type=float, default=60.0, help="length of the live-only run, s")
    parser.add_argument(
        "--engines",
        nargs="*",
        default=["batch-operations", "invoke"],
        choices=["batch-operations", "invoke", "local"],
        help="which backlog runs (local: invoke, by its former name)",
    )
    parser.add_argument("--timeout", type=float, default=7200.0)
    args = parser.parse_args()

    live_rate = args.live_share * args.tps
    spare = args.tps - live_rate
    live_concurrency = max(1, math.ceil(args.tps * args.duration))
    sweep = args.backlog_concurrency or [max(1, math.ceil(spare * args.duration))]
    backlog_concurrency = sweep[0]
    print(f"backlog of {args.n} objects; DetectFaces quota Q={args.tps:g} TPS, latency {args.latency:g}s; live uploads"
          f" {live_rate:g}/s ({args.live_share:.0%} of Q): spare {spare:g}/s; live concurrency ceil(Q x D)="
          f"{live_concurrency}, backlog concurrency {backlog_concurrency} (D={args.duration:g}s)")  # fmt: skip
    print(HEADER, flush=True)
    baseline = live_only(args, live_concurrency)
    base_p95 = percentile(baseline.live_latencies, 95)
    print(baseline.row(args.tps, live_rate, base_p95), flush=True)
    for engine in args.engines:
        for concurrency in sweep if engine == "batch-operations" else [backlog_concurrency]:
            outcome = with_backlog(args, engine, live_concurrency, concurrency)
            if engine == "batch-operations" and len(sweep) > 1:
                outcome.name = f"{engine} c={concurrency}"
            print(outcome.row(args.tps, live_rate, base_p95), flush=True)


if __name__ == "__main__":
    main()
