"""Lambda entry point of the redaction function: Powertools' Logger and Metrics around the core (processor.py).

The function is the target of an EventBridge rule on facepipe's outcome events (source `facepipe`), invoked
asynchronously with one event at a time; Lambda's async retries and its on-failure destination (the DLQ) cover
what the core raises. Settings and clients are built on the first invocation, once per container, and Pillow's own
decompression-bomb limit is set there from the function's memory size (settings.py, the memory rule).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

# boto3 (botocore) before Powertools, as detect_faces.handler does: cheaper at cold start.
import boto3
from botocore.config import Config

# isort: split
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from PIL import Image

from detect_faces.dead_letters import DeadLetterWriter
from detect_faces.results import ResultsStore

from .copies import RedactedCopies
from .processor import MetricsSink, Redactor
from .settings import RedactionSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

logger = Logger()
metrics = Metrics()


class Wiring(TypedDict, total=False):
    """What build_redactor takes injected instead of building it (tests, local mode)."""

    s3: S3Client
    dynamodb: DynamoDBClient
    sqs: SQSClient
    metrics: MetricsSink
    sleep: Callable[[float], None]


def build_redactor(*, settings: RedactionSettings | None = None, **wiring: Unpack[Wiring]) -> Redactor:
    """Wire the core to AWS. Any client may be injected; the rest come from one boto3 session (which honours
    AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>), in botocore's standard retry mode: throttling (S3's SlowDown,
    503) and 5xx are retried three times with backoff inside the invocation, then raised for Lambda's retries."""
    settings = settings or RedactionSettings.from_env()
    # Pillow's own check (a warning past the limit, an error past twice it) agrees with ours (redact.decode).
    Image.MAX_IMAGE_PIXELS = settings.max_pixels
    session = functools.cache(boto3.session.Session)
    standard = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)
    s3 = wiring.get("s3") or session().client("s3", config=standard)
    dynamodb = wiring.get("dynamodb") or session().client("dynamodb", config=standard)
    sqs = wiring.get("sqs") or session().client("sqs", config=standard)
    extra: dict[str, Any] = {"sleep": wiring["sleep"]} if "sleep" in wiring else {}
    return Redactor(
        settings=settings,
        s3=s3,
        results=ResultsStore(dynamodb, settings.results_table),
        copies=RedactedCopies(s3, settings.bucket),
        dead_letters=DeadLetterWriter(sqs, settings.failure_queue_url),
        metrics=wiring.get("metrics", metrics),
        **extra,
    )


class RedactorSlot:
    """The function's Redactor: built on first use from the environment (the cold start: settings are validated
    there, with the bad variable named), or injected (tests, the local runtime); None rebuilds."""

    def __init__(self, build: Callable[[], Redactor]) -> None:
        self._build = build
        self._redactor: Redactor | None = None

    def get(self) -> Redactor:
        if self._redactor is None:
            self._redactor = self._build()
        return self._redactor

    def set(self, redactor: Redactor | None) -> None:
        self._redactor = redactor


_slot = RedactorSlot(lambda: build_redactor())
get_redactor = _slot.get
set_redactor = _slot.set


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return get_redactor().handle_event(event, context)
