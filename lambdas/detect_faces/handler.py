"""Lambda entry point: Powertools' Logger and Metrics around the plain core.

No tracing SDK: the function runs with Lambda's active tracing (the service records the invocation), and each
record's AWS calls are timed into its log lines (calls.py) and the DetectFacesLatency metric. Clients are built
on first use, once per container, from one botocore session. See docs/DESIGN.md, "Cold start, tracing and
what a record's calls cost".
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

# boto3 (botocore) before Powertools: Powertools then finds botocore loaded instead of loading it half-way
# through its own import, which measures ~15 ms cheaper at cold start (bench/cold_start.py).
import boto3
from botocore.config import Config

# isort: split
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from .contract import DETECT_FACES_LATENCY
from .processor import Processor

logger = Logger()
metrics = Metrics()


class ProcessorSlot:
    """An entry point's processor: built on first use from the environment (the cold start: settings are
    validated there, with the bad variable named), or injected (tests, the local runtime); None rebuilds."""

    def __init__(self, build: Callable[[], Processor]) -> None:
        self._build = build
        self._processor: Processor | None = None

    def get(self) -> Processor:
        if self._processor is None:
            self._processor = self._build()
        return self._processor

    def set(self, processor: Processor | None) -> None:
        self._processor = processor


class LazyClient:
    """A boto3 client built on first use (thread-safe: a boto3 Session is not)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
        return getattr(self._client, name)


def build_processor(
    *,
    s3: Any = None,
    rekognition: Any = None,
    dynamodb: Any = None,
    sqs: Any = None,
    settings: Any = None,
    **overrides: Any,
) -> Processor:
    """Wire the core to AWS. Any client may be injected (tests, local mode); the rest come from boto3,
    which honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>."""
    from . import calls
    from .claims import ImageClaims
    from .dead_letters import DeadLetterWriter
    from .objects import ObjectInspector
    from .rekognition import RekognitionFaces
    from .retry import Backoff, retry_hook
    from .settings import Settings

    settings = settings or Settings.from_env()
    session = functools.cache(boto3.session.Session)  # one session for every client, made with the first

    standard = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20)
    # DetectFaces: one attempt per call; our Backoff owns the retries (jitter, budget, remaining time, metrics).
    single = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
    backoff = overrides.pop("backoff", None) or Backoff(
        max_attempts=settings.detect_max_attempts,
        base_seconds=settings.backoff_base_seconds,
        max_seconds=settings.backoff_max_seconds,
    )
    sink = overrides.pop("metrics", metrics)

    def on_call(operation: str, ms: float, failed: bool) -> None:
        if operation == "DetectFaces":
            sink.add_metric(name=DETECT_FACES_LATENCY, unit=MetricUnit.Milliseconds, value=round(ms, 1))

    def client(injected: Any, service: str, config: Config) -> Any:
        if injected is not None:
            return calls.instrument(injected, on_call)
        return LazyClient(lambda: calls.instrument(session().client(service, config=config), on_call))

    return Processor(
        settings=settings,
        rekognition=RekognitionFaces(client(rekognition, "rekognition", single), backoff, on_retry=retry_hook(sink)),
        inspector=ObjectInspector(client(s3, "s3", standard)),
        claims=ImageClaims(client(dynamodb, "dynamodb", standard), settings.results_table),
        dead_letters=DeadLetterWriter(client(sqs, "sqs", standard), settings.failure_queue_url),
        metrics=sink,
        **overrides,
    )


_slot = ProcessorSlot(lambda: build_processor())
get_processor = _slot.get
set_processor = _slot.set  # inject a wired processor (tests, local runtime), or None to rebuild from the environment


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return get_processor().handle_event(event, context)
