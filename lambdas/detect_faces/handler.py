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
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, Unpack, cast

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

if TYPE_CHECKING:  # the stubs are a development tool: the function never imports them
    from datetime import datetime

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_rekognition import RekognitionClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

    from .retry import Backoff, MetricsSink
    from .settings import Settings

logger = Logger()
metrics = Metrics()
ClientT = TypeVar("ClientT")


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


class LazyClient(Generic[ClientT]):
    """A boto3 client built on first use (thread-safe: a boto3 Session is not)."""

    def __init__(self, factory: Callable[[], ClientT]) -> None:
        self._factory = factory
        self._client: ClientT | None = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # Any: whichever attribute of the client
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
        return getattr(self._client, name)


def lazy(factory: Callable[[], ClientT]) -> ClientT:
    """A client built on first use, typed as the client it stands for: LazyClient forwards every attribute."""
    return cast("ClientT", LazyClient(factory))


class Wiring(TypedDict, total=False):
    """What build_processor takes injected instead of building it (tests, local mode, the backlog's own)."""

    s3: S3Client
    rekognition: RekognitionClient
    dynamodb: DynamoDBClient
    sqs: SQSClient
    backoff: Backoff
    metrics: MetricsSink
    clock: Callable[[], datetime]
    new_token: Callable[[], str]


def build_processor(*, settings: Settings | None = None, **wiring: Unpack[Wiring]) -> Processor:
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
    backoff = wiring.get("backoff") or Backoff(
        max_attempts=settings.detect_max_attempts,
        base_seconds=settings.backoff_base_seconds,
        max_seconds=settings.backoff_max_seconds,
    )
    sink = wiring.get("metrics", metrics)

    def on_call(operation: str, ms: float, failed: bool) -> None:
        if operation == "DetectFaces":
            sink.add_metric(name=DETECT_FACES_LATENCY, unit=MetricUnit.Milliseconds, value=round(ms, 1))

    def client(injected: ClientT | None, build: Callable[[], ClientT]) -> ClientT:
        if injected is not None:
            return calls.instrument(injected, on_call)
        return lazy(lambda: calls.instrument(build(), on_call))

    rekognition = client(wiring.get("rekognition"), lambda: session().client("rekognition", config=single))
    s3 = client(wiring.get("s3"), lambda: session().client("s3", config=standard))
    dynamodb = client(wiring.get("dynamodb"), lambda: session().client("dynamodb", config=standard))
    sqs = client(wiring.get("sqs"), lambda: session().client("sqs", config=standard))
    return Processor(
        settings=settings,
        rekognition=RekognitionFaces(rekognition, backoff, on_retry=retry_hook(sink)),
        inspector=ObjectInspector(s3),
        claims=ImageClaims(dynamodb, settings.results_table),
        dead_letters=DeadLetterWriter(sqs, settings.failure_queue_url),
        metrics=sink,
        clock=wiring.get("clock"),
        new_token=wiring.get("new_token"),
    )


_slot = ProcessorSlot(lambda: build_processor())
get_processor = _slot.get
set_processor = _slot.set  # inject a wired processor (tests, local runtime), or None to rebuild from the environment


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return get_processor().handle_event(event, context)
