"""What is retried inside an invocation, and how: exponential backoff with full jitter, bounded by attempts
and by the invocation's remaining time. Past this budget the invocation fails and Lambda's own async retries
follow (docs/DESIGN.md, routing table)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from .contract import Metric

T = TypeVar("T")
logger = Logger(child=True)

# Rekognition errors retried with backoff inside the invocation (by error code).
RETRY_CODES = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException", "InternalServerError"})
THROTTLE_CODES = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException"})
# A retry never sleeps into the invocation's last seconds: they are for recording what happened.
DEADLINE_MARGIN_SECONDS = 5.0


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: MetricUnit, value: float) -> None: ...


def retry_hook(metrics: MetricsSink) -> Callable[[str, int, float], None]:
    """RekognitionFaces' retry hook: a log line for each retried call, a metric for each throttled one."""

    def on_retry(code: str, attempt: int, pause: float) -> None:
        if code in THROTTLE_CODES:
            metrics.add_metric(name=Metric.THROTTLED_RETRIES, unit=MetricUnit.Count, value=1)
        logger.warning("DetectFaces retried", error_code=code, attempt=attempt, pause_seconds=round(pause, 3))

    return on_retry


@dataclass
class Backoff:
    max_attempts: int
    base_seconds: float
    max_seconds: float
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Full jitter (AWS Architecture Blog, 'Exponential Backoff And Jitter'): U(0, min(cap, base * 2^n))."""
        return self.rng.uniform(0, min(self.max_seconds, self.base_seconds * (2**attempt)))

    def call(
        self,
        fn: Callable[[], T],
        *,
        retryable: Callable[[Exception], bool],
        remaining_seconds: Callable[[], float] | None = None,
        on_retry: Callable[[Exception, int, float], None] | None = None,
    ) -> T:
        """Call fn; on a retryable error sleep and try again. The last error is raised unchanged."""
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:
                attempt += 1
                if not retryable(exc) or attempt >= self.max_attempts:
                    raise
                pause = self.delay(attempt - 1)
                # Never sleep past the invocation's deadline: fail while there is time to record it.
                if remaining_seconds is not None and remaining_seconds() - pause < DEADLINE_MARGIN_SECONDS:
                    raise
                if on_retry is not None:
                    on_retry(exc, attempt, pause)
                self.sleep(pause)
