"""`backfill --engine batch-operations --local`: an S3 Batch Operations job emulated on this machine against the
local stack. The tasks a CSV manifest would hold (facepipe/ops/batch_operations/manifest.py) are fed to the
backlog function (the deployed code, with clients for the local stack) with a LambdaInvoke operation, as Batch
Operations does it:

- each task is one synchronous invocation with a schema 2.0 event (one task per event: the bucket's name in
  `s3Bucket`, the key URL-encoded in `s3Key`, the version or null in `s3VersionId`);
- at most `concurrency` invocations run at once;
- the function answers each task with `results[].resultCode`: Succeeded, TemporaryFailure (redriven before
  the job completes) or PermanentFailure. A task missing from the results gets `treatMissingKeysAs`
  (PermanentFailure by default). A function error (the handler raised) is retried like a TemporaryFailure;
- a task still failing temporarily after `max_attempts` invocations fails with its last message;
- the completion report is written as Batch Operations writes it (Report_CSV_20180820, all tasks):
  `<prefix>/job-<id>/manifest.json` naming one CSV per task status under `<prefix>/job-<id>/results/`.
  Its rows are as the S3 User Guide's examples show them: Bucket, Key (URL-encoded), VersionId, TaskStatus,
  HTTP status code, error code, result message. (The manifest's ReportSchema names the fifth and sixth
  columns the other way round, "ErrorCode, HTTPStatusCode"; the examples' rows, `failed,200,PermanentFailure,`,
  show the status code first. Both are reproduced as S3 writes them.)
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from detect_faces.contract import REPORTS_PREFIX
from facepipe.ops.backfill import has_result_for
from facepipe.ops.batch_operations.manifest import SummarySource, manifest_key_for, pending_objects
from facepipe.ops.batch_operations.plan import INVOCATION_SCHEMA_VERSION, REPORT_FORMAT
from facepipe.ops.errors import OpsError
from facepipe.ops.targets import Target

from .aws import local_clients
from .runtime import Handler, LocalContext

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RESULT_CODES = ("Succeeded", "TemporaryFailure", "PermanentFailure")
REPORT_SCHEMA = "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
LAMBDA_HTTP_STATUS = "200"  # the invocation itself answered (even a function error is a 200 from Lambda)


@dataclass(frozen=True)
class LocalTask:
    """One manifest row."""

    bucket: str
    key: str  # as stored (not encoded)
    version_id: str | None = None


@dataclass
class TaskOutcome:
    task: LocalTask
    task_id: str
    status: str = "failed"  # succeeded | failed
    error_code: str = ""  # "" | TemporaryFailure | PermanentFailure
    result: str = ""
    attempts: int = 0


@dataclass
class LocalJobReport:
    job_id: str
    status: str = "Complete"
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    temporary_failures: int = 0  # TemporaryFailure answers and function errors, redriven or final
    retries: int = 0  # invocations that redrove a task
    invocations: int = 0
    peak_concurrency: int = 0
    report_bucket: str = ""
    manifest_key: str = ""
    report_keys: list[str] = field(default_factory=list)  # the results CSVs
    outcomes: list[TaskOutcome] = field(default_factory=list)

    @property
    def report_uri(self) -> str:
        return f"s3://{self.report_bucket}/{self.manifest_key.rsplit('/', 1)[0]}/"


def _opaque_id() -> str:
    """Batch Operations' invocation and task ids are opaque base64 strings."""
    return base64.b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def invocation_event(
    job_id: str, task_id: str, task: LocalTask, user_arguments: dict[str, str] | None = None
) -> dict[str, Any]:
    """The event Batch Operations sends for one task with InvocationSchemaVersion 2.0 (S3 User Guide, "Invoke
    AWS Lambda function"; Powertools' S3BatchOperationEvent reads the same fields). `job.userArguments` is
    there only when the job has UserArguments (the API takes 1 to 10 of them, or none)."""
    job: dict[str, Any] = {"id": job_id}
    if user_arguments:
        job["userArguments"] = dict(user_arguments)
    return {
        "invocationSchemaVersion": INVOCATION_SCHEMA_VERSION,
        "invocationId": _opaque_id(),
        "job": job,
        "tasks": [
            {
                "taskId": task_id,
                "s3Key": manifest_key_for(task.key),
                "s3VersionId": task.version_id,
                "s3Bucket": task.bucket,
            }
        ],
    }


def tasks_to_run(s3: S3Client, results: SummarySource, bucket: str, prefix: str) -> list[LocalTask]:
    """The manifest a CSV-manifest job would get: current versions under the prefix without a result."""
    return [
        LocalTask(bucket, obj["Key"], obj.get("VersionId") if obj.get("VersionId") not in (None, "null") else None)
        for summary, obj in pending_objects(s3, results, bucket, prefix)
        if not has_result_for(summary, obj)
    ]


def _answer(response: Any, task_id: str) -> tuple[str, str]:
    """(resultCode, resultString) for the task from the function's response."""
    if not isinstance(response, dict) or not isinstance(response.get("results"), list):
        return "PermanentFailure", f"Lambda returned an invalid response: {str(response)[:200]}"
    missing = str(response.get("treatMissingKeysAs") or "PermanentFailure")
    for result in response["results"]:
        if isinstance(result, dict) and result.get("taskId") == task_id:
            code = str(result.get("resultCode", missing))
            text = "" if result.get("resultString") is None else str(result.get("resultString"))
            if code not in RESULT_CODES:
                return "PermanentFailure", f"unknown resultCode {code!r}: {text}"
            return code, text
    return (missing if missing in RESULT_CODES else "PermanentFailure"), f"task {task_id} missing from the results"


@dataclass(frozen=True)
class JobSettings:
    """How an emulated job runs: Batch Operations' behaviour, with its clock and waits replaceable for tests."""

    job_id: str | None = None  # None: a new one
    concurrency: int = 4  # invocations at once
    max_attempts: int = 3  # invocations of a task that keeps failing temporarily
    retry_delay: float = 1.0  # seconds between rounds of redriven tasks
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:facepipe-backlog"
    timeout: float = 900.0  # each invocation's deadline, as the function's context tells it
    user_arguments: dict[str, str] | None = None  # the job's UserArguments
    report_prefix: str = REPORTS_PREFIX


def run_local_job(
    handler: Handler,
    tasks: Iterable[LocalTask],
    *,
    s3: S3Client,
    reports_bucket: str,
    settings: JobSettings | None = None,
) -> LocalJobReport:
    """Run the job to completion and write its completion report; the counts and the report's keys.

    Tasks are invoked in rounds: every pending task once (at most `concurrency` at a time), then, after
    `retry_delay` seconds, the tasks that failed temporarily, up to `max_attempts` invocations per task."""
    settings = settings or JobSettings()
    if settings.concurrency < 1 or settings.max_attempts < 1:
        raise ValueError("concurrency and max_attempts must be at least 1")
    job_id = settings.job_id or str(uuid.uuid4())
    outcomes = [TaskOutcome(task=task, task_id=_opaque_id()) for task in tasks]
    report = LocalJobReport(job_id=job_id, total=len(outcomes), report_bucket=reports_bucket)
    invoke = _Invoker(handler, job_id, settings, report)
    pending = list(outcomes)
    with ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="batch-task") as pool:
        while pending:
            answers = list(pool.map(invoke, pending))
            pending = [
                outcome
                for outcome, (code, text) in zip(pending, answers, strict=True)
                if _settle(outcome, code, text, settings.max_attempts, report)
            ]
            report.retries += len(pending)
            if pending:
                settings.sleep(settings.retry_delay)

    report.outcomes = outcomes
    report.succeeded = sum(1 for o in outcomes if o.status == "succeeded")
    report.failed = report.total - report.succeeded
    _write_report(s3, report, settings.report_prefix, settings.now())
    return report


class _Invoker:
    """One task's invocation, as Batch Operations makes it: its answer (resultCode, resultString), a function error
    as "FunctionError"; counts the invocations and how many ran at once."""

    def __init__(self, handler: Handler, job_id: str, settings: JobSettings, report: LocalJobReport) -> None:
        self._handler, self._job_id, self._settings, self._report = handler, job_id, settings, report
        self._lock = threading.Lock()
        self._running = 0

    def __call__(self, outcome: TaskOutcome) -> tuple[str, str]:
        settings = self._settings
        event = invocation_event(self._job_id, outcome.task_id, outcome.task, settings.user_arguments)
        context = LocalContext(
            aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=settings.function_arn,
            deadline=time.monotonic() + settings.timeout,
            function_name=settings.function_arn.rsplit(":", 1)[-1],
        )
        with self._lock:
            self._running += 1
            self._report.invocations += 1
            self._report.peak_concurrency = max(self._report.peak_concurrency, self._running)
        try:
            return _answer(self._handler(event, context), outcome.task_id)
        except Exception as exc:  # noqa: BLE001 - a function error: Batch Operations retries the task
            body = json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__})
            return "FunctionError", f"Lambda returned function error: {body}"
        finally:
            with self._lock:
                self._running -= 1


def _settle(outcome: TaskOutcome, code: str, text: str, max_attempts: int, report: LocalJobReport) -> bool:
    """Record one invocation's answer on the task; True when the task is to be redriven in the next round."""
    outcome.attempts += 1
    outcome.result = text
    if code == "Succeeded":
        outcome.status, outcome.error_code = "succeeded", ""
        return False
    outcome.status = "failed"
    if code == "PermanentFailure":
        outcome.error_code = "PermanentFailure"
        return False
    report.temporary_failures += 1
    # A function error that outlives its retries ends as the guide's example shows it: PermanentFailure
    outcome.error_code = "TemporaryFailure" if code == "TemporaryFailure" else "PermanentFailure"
    return outcome.attempts < max_attempts


def _csv_bytes(outcomes: list[TaskOutcome]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    for o in outcomes:
        writer.writerow(
            [
                o.task.bucket,
                manifest_key_for(o.task.key),
                o.task.version_id or "",
                o.status,
                LAMBDA_HTTP_STATUS,
                o.error_code,
                o.result,
            ]
        )
    return text.getvalue().encode()


def _write_report(s3: S3Client, report: LocalJobReport, prefix: str, created: datetime) -> None:
    base = f"{prefix.rstrip('/')}/job-{report.job_id}" if prefix.strip("/") else f"job-{report.job_id}"
    results = []
    for status in ("succeeded", "failed"):
        rows = [o for o in report.outcomes if o.status == status]
        if not rows:
            continue
        body = _csv_bytes(rows)
        name = hashlib.sha1(f"{report.job_id}/{status}".encode(), usedforsecurity=False).hexdigest()
        key = f"{base}/results/{name}.csv"
        s3.put_object(Bucket=report.report_bucket, Key=key, Body=body, ContentType="text/csv")
        report.report_keys.append(key)
        results.append(
            {
                "TaskExecutionStatus": status,
                "Bucket": report.report_bucket,
                "MD5Checksum": hashlib.md5(body, usedforsecurity=False).hexdigest(),
                "Key": key,
            }
        )
    manifest = {
        "Format": REPORT_FORMAT,
        "ReportCreationDate": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{created.microsecond // 1000:03d}Z",
        "Results": results,
        "ReportSchema": REPORT_SCHEMA,
    }
    report.manifest_key = f"{base}/manifest.json"
    s3.put_object(
        Bucket=report.report_bucket,
        Key=report.manifest_key,
        Body=json.dumps(manifest, indent=4).encode(),
        ContentType="application/json",
    )


# ---- the job on the local stack's Target -------------------------------------------------------------------------


def _location(target: Target, uri: str) -> tuple[str, str]:
    located = target.backfill_location(uri)
    if not target.reports_bucket:
        raise OpsError("this local stack has no reports bucket: restart it with `python -m facepipe local up`")
    return located


def planned_tasks(target: Target, uri: str) -> list[LocalTask]:
    """The job's tasks (those a CSV manifest would hold), without running it: `--dry-run`."""
    bucket, prefix = _location(target, uri)
    return tasks_to_run(target.client_for("s3"), target.results(), bucket, prefix)


def run_job(
    target: Target,
    uri: str,
    *,
    concurrency: int = 4,
    max_attempts: int = 10,  # Batch Operations redrives a TemporaryFailure "before the job completes"
    retry_delay: float = 2.0,
    sleep: Callable[[float], None] | None = None,
) -> LocalJobReport:
    """The job on this machine: the tasks a CSV manifest would hold, fed to the backlog function (the deployed
    code, with clients for the local stack) at `concurrency`, TemporaryFailure retried later, and the
    completion report written to the local reports bucket in Batch Operations' format."""
    from aws_lambda_powertools.utilities.data_classes import S3BatchOperationEvent
    from botocore.config import Config

    from detect_faces import backlog, handler
    from detect_faces.settings import Settings

    bucket, prefix = _location(target, uri)
    s3 = target.client_for("s3")
    tasks = tasks_to_run(s3, target.results(), bucket, prefix)
    # DetectFaces gets one attempt per call, as the deployed function's client: the function's own backoff is
    # the only retry (a client retrying throttling by itself would hide the TemporaryFailure path)
    endpoint = target.client_for("rekognition").meta
    one_attempt = Config(retries={"mode": "standard", "total_max_attempts": 1})
    rekognition = local_clients(endpoint.region_name, {}, endpoint.endpoint_url, one_attempt)("rekognition")
    processor = backlog.build_processor(
        settings=Settings(results_table=target.table, failure_queue_url=target.dlq_url),
        s3=s3,
        rekognition=rekognition,
        dynamodb=target.client_for("dynamodb"),
        sqs=target.client_for("sqs"),
    )

    def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            return backlog.handle(S3BatchOperationEvent(event), processor, context)
        finally:
            handler.metrics.clear_metrics()  # no flush here: metrics are CloudWatch's, and this is not Lambda

    settings = JobSettings(concurrency=concurrency, max_attempts=max_attempts, retry_delay=retry_delay)
    if sleep is not None:
        settings = dataclasses.replace(settings, sleep=sleep)
    return run_local_job(invoke, tasks, s3=s3, reports_bucket=target.reports_bucket, settings=settings)
