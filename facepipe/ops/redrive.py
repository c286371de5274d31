"""redrive: replay the DLQ's failure records through the function, once each."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from detect_faces.contract import REDRIVE_FLAG

from .errors import OpsError
from .failures import Failure, receive, release
from .pacing import RateLimiter
from .targets import Target


@dataclass
class RedriveReport:
    replayed: int = 0
    skipped: int = 0  # cannot be replayed (not failure records, or malformed records): left in the queue
    new: int = 0  # sent after the run began (among them, failures of this run's own replays): left for later
    left: int = 0  # messages in the queue when the run ended, by SQS's approximate count
    planned: list[dict[str, Any]] = field(default_factory=list)  # --dry-run
    run_id: str = ""


# SentTimestamp is SQS's clock, the run's start is the operator's: allow this much skew between them.
CLOCK_SKEW_MS = 5_000


def redrive(
    target: Target,
    *,
    max_messages: int | None = None,
    dry_run: bool = False,
    limiter: RateLimiter | None = None,
    progress: Callable[[int], None] = lambda n: None,
    clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    run_id: str | None = None,
) -> RedriveReport:
    """Replay each failure record's requestPayload through the function (async invoke), then delete the
    message — only once Lambda accepted the replay (202). Anything else stays in the queue.

    A run replays only what was in the queue when it began: a replay that fails again is dead-lettered
    as a new message, marked with this run's id (the function and Lambda's on-failure record keep the
    event's redrive flag); such messages, and any sent after the run began, are left for the next run.
    """
    sqs, lambda_ = target.client_for("sqs"), target.client_for("lambda")
    limiter = limiter or RateLimiter(5.0)
    report = RedriveReport(run_id=run_id or f"redrive-{uuid.uuid4().hex[:12]}")
    started_ms = clock_ms()
    limit = max_messages if max_messages is not None else 1_000_000
    held: list[Failure] = []  # left in the queue: hidden until the run ends, so each is seen once
    pending: list[Failure] = []
    try:
        for batch in receive(sqs, target.dlq_url, visibility=300, limit=limit):
            pending = list(batch)
            while pending:
                failure = pending[0]
                if failure.redrive_run == report.run_id or failure.sent_ms > started_ms + CLOCK_SKEW_MS:
                    report.new += 1
                elif not failure.replayable:
                    report.skipped += 1
                elif dry_run:
                    report.planned.append(failure.summary())
                else:
                    _replay(target, lambda_, failure, limiter, report.run_id)
                    sqs.delete_message(QueueUrl=target.dlq_url, ReceiptHandle=failure.receipt_handle)
                    report.replayed += 1
                    progress(1)
                    pending.pop(0)
                    continue
                held.append(pending.pop(0))
    finally:
        # Whatever was not replayed (skipped, new, planned, refused, or not reached) is visible again at once.
        release(sqs, target.dlq_url, held + pending)
    report.left = _approximate_count(sqs, target.dlq_url)
    return report


def _approximate_count(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names).get("Attributes", {})
    return sum(int(attributes.get(name, 0)) for name in names)


def _replay(target: Target, lambda_: Any, failure: Failure, limiter: RateLimiter, run_id: str) -> None:
    payload = {**failure.payload, REDRIVE_FLAG: run_id}
    limiter.wait()
    try:
        response = lambda_.invoke(
            FunctionName=target.function_name, InvocationType="Event", Payload=json.dumps(payload).encode()
        )
    except ClientError as exc:
        error = exc.response["Error"]
        raise OpsError(
            f"replay of {failure.message_id} refused: {error.get('Code')}: {error.get('Message', '')};"
            " it and the rest stay in the DLQ"
        ) from None
    if response.get("StatusCode") != 202:
        raise OpsError(f"replay of {failure.message_id} not accepted (status {response.get('StatusCode')})")
