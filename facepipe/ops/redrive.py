"""redrive: replay the DLQ's failure records through the function, once each."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from detect_faces.contract import REDRIVE_FLAG

from .backfill import ACCEPTED
from .errors import OpsError
from .failures import Failure, receive, release
from .pacing import RateLimiter
from .targets import Target

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient


@dataclass
class RedriveReport:
    replayed: int = 0
    skipped: int = 0  # cannot be replayed (not failure records, or malformed records): left in the queue
    new: int = 0  # sent after the run began (among them, failures of this run's own replays): left for later
    left: int = 0  # messages in the queue when the run ended, by SQS's approximate count
    planned: list[dict[str, Any]] = field(default_factory=list)  # --dry-run
    run_id: str = ""
    cannot_replay: dict[str, int] = field(default_factory=dict)  # why the skipped ones cannot be replayed -> how many
    hidden: int = 0  # left in the queue but not made visible again: they reappear within VISIBILITY_SECONDS
    replayed_to: dict[str, int] = field(default_factory=dict)  # function name -> records replayed to it


# SentTimestamp is SQS's clock, the run's start is the operator's: allow this much skew between them.
CLOCK_SKEW_MS = 5_000
# How long each received message stays hidden from other readers while the run holds it. A run may last longer:
# held messages that reappear are received again and hidden again, never replayed twice (failures.receive).
VISIBILITY_SECONDS = 300
# Lambda's answers to an Invoke that are about this payload, not about the function or the account: the message
# is left in the queue as one that cannot be replayed, and the run goes on.
PAYLOAD_REFUSALS = frozenset({"RequestTooLargeException", "InvalidRequestContentException"})


def redrive(
    target: Target,
    *,
    max_messages: int | None = None,
    dry_run: bool = False,
    limiter: RateLimiter | None = None,
    progress: Callable[[int], object] = lambda n: None,
    clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    run_id: str | None = None,
) -> RedriveReport:
    """Replay each failure record's requestPayload through the function (async invoke), then delete the
    message — only once Lambda accepted the replay (202). Anything else stays in the queue. An outcome event's
    record (the redaction function's) is replayed to the redaction function, and left when the target names none.

    A run replays only what was in the queue when it began: a replay that fails again is dead-lettered
    as a new message, marked with this run's id (the function and Lambda's on-failure record keep the
    event's redrive flag); such messages, and any sent after the run began, are left for the next run.
    A message that cannot be replayed (`Failure.problem`: not JSON, not a failure record, a record the
    function cannot parse; or a payload Lambda refuses, PAYLOAD_REFUSALS) is left too, counted by reason.
    """
    sqs, lambda_ = target.client_for("sqs"), target.client_for("lambda")
    limiter = limiter or RateLimiter(5.0)
    report = RedriveReport(run_id=run_id or f"redrive-{uuid.uuid4().hex[:12]}")
    started_ms = clock_ms()
    limit = max_messages if max_messages is not None else 1_000_000
    held: list[Failure] = []  # left in the queue: hidden until the run ends (hidden again if met again), seen once
    pending: list[Failure] = []
    try:
        for batch in receive(sqs, target.dlq_url, visibility=VISIBILITY_SECONDS, limit=limit):
            pending = list(batch)
            while pending:
                failure = pending[0]
                if failure.redrive_run == report.run_id or failure.sent_ms > started_ms + CLOCK_SKEW_MS:
                    report.new += 1
                else:
                    problem = failure.problem or _no_function(target, failure)
                    if problem is None and dry_run:
                        report.planned.append(failure.summary())
                    elif problem is None:
                        problem = _replay(target, lambda_, failure, limiter, report.run_id)
                        if problem is None:
                            sqs.delete_message(QueueUrl=target.dlq_url, ReceiptHandle=failure.receipt_handle)
                            report.replayed += 1
                            name = function_for(target, failure)
                            report.replayed_to[name] = report.replayed_to.get(name, 0) + 1
                            progress(1)
                            pending.pop(0)
                            continue
                    if problem is not None:  # left in the queue, counted by reason
                        report.skipped += 1
                        report.cannot_replay[problem] = report.cannot_replay.get(problem, 0) + 1
                held.append(pending.pop(0))
    finally:
        # Whatever was not replayed (skipped, new, planned, refused, or not reached) is visible again at once.
        report.hidden = release(sqs, target.dlq_url, held + pending)
    report.left = _approximate_count(sqs, target.dlq_url)
    return report


def _approximate_count(sqs: SQSClient, url: str) -> int:
    names: list[Literal["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]] = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names).get("Attributes", {})
    return sum(int(attributes.get(name, "0")) for name in names)


NO_REDACTION_FUNCTION = (
    "a failure of the redaction function (an outcome event), and the stack names no redaction function to replay it to"
)


def function_for(target: Target, failure: Failure) -> str:
    """The function a replay of `failure` goes to: the redaction function for an outcome event (its failure
    records hold one), else the detect function; "" when the target names no such function."""
    return target.redaction_function_name if failure.outcome_event else target.function_name


def _no_function(target: Target, failure: Failure) -> str | None:
    return NO_REDACTION_FUNCTION if not function_for(target, failure) else None


def _replay(target: Target, lambda_: LambdaClient, failure: Failure, limiter: RateLimiter, run_id: str) -> str | None:
    """Invoke the function with the record's payload; None once Lambda accepted it, or why Lambda refused this
    payload (PAYLOAD_REFUSALS). Any other refusal stops the run (OpsError)."""
    payload = {**failure.payload, REDRIVE_FLAG: run_id}
    limiter.wait()
    try:
        response = lambda_.invoke(
            FunctionName=function_for(target, failure), InvocationType="Event", Payload=json.dumps(payload).encode()
        )
    except ClientError as exc:
        error = exc.response["Error"]
        if error.get("Code") in PAYLOAD_REFUSALS:
            return f"Lambda refused the replay: {error.get('Code')}"
        raise OpsError(
            f"replay of {failure.message_id} refused: {error.get('Code')}: {error.get('Message', '')};"
            " it and the rest stay in the DLQ"
        ) from None
    if response.get("StatusCode") != ACCEPTED:
        raise OpsError(f"replay of {failure.message_id} not accepted (status {response.get('StatusCode')})")
    return None
