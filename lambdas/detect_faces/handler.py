"""Lambda entry point: Powertools around the plain core. Clients are built lazily, once per container."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from .processor import Processor

logger = Logger()
tracer = Tracer()
metrics = Metrics()

_processor: Processor | None = None


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
    import boto3
    from botocore.config import Config

    from .dead_letters import DeadLetterWriter
    from .objects import ObjectInspector
    from .rekognition import RekognitionFaces
    from .results import ResultsStore
    from .retry import Backoff, retry_hook
    from .settings import Settings

    settings = settings or Settings.from_env()
    session = boto3.session.Session()
    standard = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20)
    # DetectFaces: one attempt per call; our Backoff owns the retries (jitter, budget, remaining time, metrics).
    single = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
    backoff = overrides.pop("backoff", None) or Backoff(
        max_attempts=settings.detect_max_attempts,
        base_seconds=settings.backoff_base_seconds,
        max_seconds=settings.backoff_max_seconds,
    )
    sink = overrides.pop("metrics", metrics)
    return Processor(
        settings=settings,
        rekognition=RekognitionFaces(
            rekognition or session.client("rekognition", config=single), backoff, on_retry=retry_hook(sink)
        ),
        inspector=ObjectInspector(s3 or session.client("s3", config=standard)),
        results=ResultsStore(dynamodb or session.client("dynamodb", config=standard), settings.results_table),
        # The DLQ path is rare: its client need not cost cold start.
        dead_letters=DeadLetterWriter(
            sqs or LazyClient(lambda: session.client("sqs", config=standard)), settings.failure_queue_url
        ),
        metrics=sink,
        **overrides,
    )


def get_processor() -> Processor:
    global _processor
    if _processor is None:
        _processor = build_processor()  # cold start: settings validated here, with the bad variable named
    return _processor


def set_processor(processor: Processor | None) -> None:
    """Inject a wired processor (tests, local runtime), or None to rebuild from the environment."""
    global _processor
    _processor = processor


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return get_processor().handle_event(event, context)
