"""The backlog entry point: S3 Batch Operations' LambdaInvoke (invocation schema 2.0, or 1.0) through the live core.

A second function of the stack, from the same asset (contract.BACKLOG_HANDLER). Each task names an object (bucket,
key, maybe a version); it runs as a backfill record through Processor.process_task: the same pre-checks,
DetectFaces on that object and version, the same result items, the same idempotency, and every live event of the
key outranks it. Each task gets its result code (docs/DESIGN.md, "Backlog (S3 Batch Operations)"):

- `Succeeded`: faces stored (DETECTED), or nothing left to do (a result for that version is stored, a newer
  version or a live event has the image, the object was deleted);
- `TemporaryFailure`: throttling, a 5xx, a connection that failed, or another invocation's live claim of the same
  record. DetectFaces gets a short retry at most (Settings.backlog_detect_max_attempts): Batch Operations retries
  the task later, and the backlog leaves the DetectFaces quota to live uploads instead of competing for it;
- `PermanentFailure`, with the reason: a rejected image (REJECTED), an unreadable object (FAILED, and no
  dead-letter message: the job's completion report is the failure record), a malformed task, any other error.

This module alone imports Powertools' data classes (the live handler reads plain dicts, for its cold start).
"""

from __future__ import annotations

from typing import Any, Unpack

# botocore before Powertools, as in handler.py (bench/cold_start.py).
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as AwsConnectionError

# isort: split
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.s3_batch_operation_event import (
    RESULT_CODE_TYPE,
    S3BatchOperationEvent,
    S3BatchOperationResponse,
    S3BatchOperationResponseRecord,
    S3BatchOperationTask,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from . import handler
from .contract import InvocationContext, Metric
from .errors import error_code, error_message
from .model import ImageEvent, InvalidEventError, Outcome, RecordResult
from .processor import ImageBusyError, Processor
from .retry import RETRY_CODES
from .settings import Settings

# One service: the live function's Logger and Metrics (handler.py), so the core's metrics flush with ours.
logger = handler.logger
metrics = handler.metrics

SCHEMA_VERSIONS = ("1.0", "2.0")
SUCCEEDED: RESULT_CODE_TYPE = "Succeeded"
TEMPORARY_FAILURE: RESULT_CODE_TYPE = "TemporaryFailure"
PERMANENT_FAILURE: RESULT_CODE_TYPE = "PermanentFailure"
# Every task of an event is answered; a task missing from the response anyway is a failure, never a success
# (Powertools' default is Succeeded).
TREAT_MISSING_KEYS_AS: RESULT_CODE_TYPE = PERMANENT_FAILURE

FIRST_SERVER_ERROR = 500  # HTTP 5xx: the service failed, whatever the code

# Worth another try later (TemporaryFailure), by AWS error code: what the live function retries (retry.RETRY_CODES)
# and the other throttling and transient codes of the calls a task makes (botocore's standard retry mode treats
# the same ones so): Rekognition's LimitExceededException, DynamoDB's RequestLimitExceeded, S3's SlowDown, ... Any
# HTTP 5xx is temporary too, whatever its code. Everything else (AccessDenied, a validation error, a bug) is
# permanent: the same task would fail the same way.
TEMPORARY_CODES = RETRY_CODES | frozenset(
    {
        "LimitExceededException",
        "RequestLimitExceeded",
        "Throttling",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)


def is_temporary(exc: BaseException) -> bool:
    """Whether a task that failed with `exc` may succeed when Batch Operations retries it later."""
    if isinstance(exc, ImageBusyError):
        return True  # another invocation holds this very record: its claim ends (or its lease runs out)
    if isinstance(exc, AwsConnectionError | HTTPClientError):
        return True  # no answer from the service: endpoint unreachable, connect or read timeout
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error_code(exc) in TEMPORARY_CODES or int(status) >= FIRST_SERVER_ERROR
    return False


def task_event(task: S3BatchOperationTask) -> ImageEvent:
    """The backfill record of a task: the bucket (schema 2.0's `s3Bucket`, or 1.0's `s3BucketArn`), the key
    (URL-encoded in the event; Powertools' `s3_key` decodes it, `unquote_plus`) and the version, if any."""
    try:
        return ImageEvent.backfill(task.s3_bucket, task.s3_key, task.s3_version_id)
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidEventError(f"the task has no valid {exc}") from None


def result_of(outcome: RecordResult) -> tuple[RESULT_CODE_TYPE, str]:
    """A task's result code and result string (the completion report shows both) for the core's outcome."""
    if outcome.outcome is Outcome.DETECTED:
        faces = outcome.faces or 0
        return SUCCEEDED, f"DETECTED {faces} face{'' if faces == 1 else 's'}"
    if outcome.outcome is Outcome.SKIPPED:
        return SUCCEEDED, f"SKIPPED {outcome.reason}"
    if outcome.outcome is Outcome.REJECTED:
        return PERMANENT_FAILURE, f"REJECTED {outcome.detail or outcome.reason}"
    if outcome.outcome is Outcome.FAILED:
        return PERMANENT_FAILURE, f"FAILED {outcome.detail or outcome.reason}"
    return PERMANENT_FAILURE, f"unexpected outcome {outcome.outcome.value}: {outcome.reason}"


def answer(
    task: S3BatchOperationTask, processor: Processor, context: InvocationContext
) -> S3BatchOperationResponseRecord:
    """One task, always answered: its result code and a result string that says why."""
    raw = task.raw_event
    task_id = str(raw.get("taskId") or "") if isinstance(raw, dict) else ""
    try:
        event = task_event(task)
    except InvalidEventError as exc:
        logger.warning("malformed task", task_id=task_id, reason=str(exc))
        return _record(task_id, PERMANENT_FAILURE, f"malformed task: {exc}")
    try:
        outcome = processor.process_task(event, context)
    except Exception as exc:  # every error becomes the task's result code; none fails the other tasks
        text = f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"
        if is_temporary(exc):
            logger.warning("task to be retried by Batch Operations", task_id=task_id, error=text)
            return _record(task_id, TEMPORARY_FAILURE, text)
        logger.exception("task failed", task_id=task_id, error=text)
        return _record(task_id, PERMANENT_FAILURE, text)
    code, text = result_of(outcome)
    logger.info("task answered", task_id=task_id, result_code=code, result=text)
    return _record(task_id, code, text)


def handle(event: S3BatchOperationEvent, processor: Processor, context: InvocationContext) -> dict[str, Any]:
    """Every task of the event, each with its own result, in one response. An event that is not a Batch
    Operations invocation of schema 1.0 or 2.0 cannot be answered: InvalidEventError fails the invocation."""
    try:
        schema, invocation_id = event.invocation_schema_version, event.invocation_id
        tasks = list(event.tasks)
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidEventError(f"not an S3 Batch Operations invocation: no valid {exc}") from None
    if schema not in SCHEMA_VERSIONS:
        raise InvalidEventError(f"invocation schema {schema!r} is not one of {', '.join(SCHEMA_VERSIONS)}")
    job = event.get("job")
    logger.info(
        "Batch Operations invocation",
        invocation_id=invocation_id,
        invocation_schema=schema,
        job_id=job.get("id") if isinstance(job, dict) else None,
        user_arguments=job.get("userArguments") if isinstance(job, dict) else None,
        tasks=len(tasks),
    )
    response = S3BatchOperationResponse(schema, invocation_id, treat_missing_keys_as=TREAT_MISSING_KEYS_AS)
    try:
        for task in tasks:
            response.add_result(answer(task, processor, context))
    finally:
        logger.thread_safe_clear_keys()
    return _as_dict(response)


def _record(task_id: str, code: RESULT_CODE_TYPE, text: str) -> S3BatchOperationResponseRecord:
    metric = {
        SUCCEEDED: Metric.BACKLOG_SUCCEEDED,
        TEMPORARY_FAILURE: Metric.BACKLOG_TEMPORARY_FAILURE,
        PERMANENT_FAILURE: Metric.BACKLOG_PERMANENT_FAILURE,
    }[code]
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    return S3BatchOperationResponseRecord(task_id=task_id, result_code=code, result_string=text)


def _as_dict(response: S3BatchOperationResponse) -> dict[str, Any]:
    """The response as Batch Operations reads it. Powertools' asdict() insists on exactly one result (Batch
    Operations sends one task per invocation today); an event with several tasks (the schema's `tasks` is a list)
    gets one result per task, in the same shape."""
    if len(response.results) == 1:
        return response.asdict()
    return {
        "invocationSchemaVersion": response.invocation_schema_version,
        "treatMissingKeysAs": response.treat_missing_keys_as,
        "invocationId": response.invocation_id,
        "results": [result.asdict() for result in response.results],
    }


def build_processor(*, settings: Settings | None = None, **wiring: Unpack[handler.Wiring]) -> Processor:
    """handler.build_processor with the backlog's settings: DetectFaces attempts cut to
    BACKLOG_DETECT_MAX_ATTEMPTS (Settings.for_backlog). Clients are injected or built on first use, as there."""
    return handler.build_processor(settings=(settings or Settings.from_env()).for_backlog(), **wiring)


_slot = handler.ProcessorSlot(lambda: build_processor())
get_processor = _slot.get
set_processor = _slot.set


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(S3BatchOperationEvent(event), get_processor(), context)
