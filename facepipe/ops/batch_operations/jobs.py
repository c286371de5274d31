"""A job in S3 Control: create it, confirm it, describe it, and follow its progress until it ends or waits for
someone. What the operator sees of a job's progress is drawn by the CLI (facepipe/cli/backfill.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from ..errors import OpsError
from .errors import job_error

if TYPE_CHECKING:
    from mypy_boto3_s3control import S3ControlClient

TERMINAL_STATUSES = frozenset({"Complete", "Failed", "Cancelled"})
# Nothing happens to a Suspended job until someone acts (confirms it, or fixes what suspended it).
WAITING_STATUSES = frozenset({"Suspended"})
ARN_FIELDS = 6  # arn:partition:service:region:account:resource


def create_job(s3control: S3ControlClient, request: Mapping[str, Any]) -> str:
    """Create the job; its id. Errors become one line naming what is missing."""
    try:
        return str(s3control.create_job(**request)["JobId"])
    except ClientError as exc:
        raise job_error(exc, "creating the Batch Operations job", role_arn=request.get("RoleArn")) from None
    except (NoCredentialsError, NoRegionError) as exc:
        raise OpsError(f"{exc} (set AWS_PROFILE / AWS_REGION)") from None


def confirm_job(
    s3control: S3ControlClient, account_id: str, job_id: str, reason: str = "confirmed with facepipe"
) -> str:
    """Let a job that waits for confirmation (Suspended) run: its new status."""
    try:
        response = s3control.update_job_status(
            AccountId=account_id, JobId=job_id, RequestedJobStatus="Ready", StatusUpdateReason=reason
        )
    except ClientError as exc:
        raise job_error(exc, f"confirming job {job_id}", job_id=job_id, account_id=account_id) from None
    return str(response.get("Status", "Ready"))


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    status: str
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    report: str | None = None  # s3://<bucket>/<prefix>/job-<id>/ where S3 writes the completion report
    failure_reasons: tuple[str, ...] = ()
    status_update_reason: str | None = None
    suspended_cause: str | None = None
    confirmation_required: bool = False
    elapsed_seconds: int | None = None  # time spent Active
    description: str = ""
    priority: int | None = None
    account_id: str = ""  # from the job's ARN (arn:aws:s3:<region>:<account>:job/<id>)

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def percent(self) -> float:
        if self.total <= 0:
            return 100.0 if self.status == "Complete" else 0.0
        return min(100.0, 100.0 * self.done / self.total)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def waiting(self) -> bool:
        return self.status in WAITING_STATUSES


def report_location(job_id: str, report: Mapping[str, Any] | None) -> str | None:
    """Where S3 writes a job's completion report: `<Prefix>/job-<id>/` in the report bucket."""
    if not report or not report.get("Enabled") or not report.get("Bucket"):
        return None
    bucket = str(report["Bucket"]).rsplit(":", 1)[-1]  # arn:aws:s3:::name
    prefix = str(report.get("Prefix") or "").strip("/")
    return f"s3://{bucket}/{prefix + '/' if prefix else ''}job-{job_id}/"


def progress_from_job(job: Mapping[str, Any]) -> JobProgress:
    summary = job.get("ProgressSummary") or {}
    reasons = tuple(
        f"{f.get('FailureCode', 'Failure')}: {f.get('FailureReason', '')}".rstrip(": ")
        for f in job.get("FailureReasons") or []
    )
    job_id = str(job.get("JobId", ""))
    return JobProgress(
        job_id=job_id,
        status=str(job.get("Status", "Unknown")),
        total=int(summary.get("TotalNumberOfTasks") or 0),
        succeeded=int(summary.get("NumberOfTasksSucceeded") or 0),
        failed=int(summary.get("NumberOfTasksFailed") or 0),
        report=report_location(job_id, job.get("Report")),
        failure_reasons=reasons,
        status_update_reason=job.get("StatusUpdateReason"),
        suspended_cause=job.get("SuspendedCause"),
        confirmation_required=bool(job.get("ConfirmationRequired")),
        elapsed_seconds=(summary.get("Timers") or {}).get("ElapsedTimeInActiveSeconds"),
        description=str(job.get("Description", "")),
        priority=job.get("Priority"),
        account_id=_account_of_job_arn(str(job.get("JobArn", ""))),
    )


def _account_of_job_arn(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) >= ARN_FIELDS and parts[4].isdigit() else ""


def describe(s3control: S3ControlClient, account_id: str, job_id: str) -> JobProgress:
    try:
        job = s3control.describe_job(AccountId=account_id, JobId=job_id)["Job"]
    except ClientError as exc:
        raise job_error(exc, f"describing job {job_id}", job_id=job_id, account_id=account_id) from None
    except (NoCredentialsError, NoRegionError) as exc:
        raise OpsError(f"{exc} (set AWS_PROFILE / AWS_REGION)") from None
    return progress_from_job(job)


def follow_job(
    s3control: S3ControlClient,
    account_id: str,
    job_id: str,
    *,
    on_progress: Callable[[JobProgress], None] = lambda progress: None,
    until_done: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 5.0,
    max_polls: int | None = None,
) -> JobProgress:
    """Describe the job every `interval` seconds, handing each progress to `on_progress`, until it reaches a
    terminal status (Complete, Failed, Cancelled) or waits for someone (Suspended); once when not until_done.
    Returns the last progress."""
    polls = 0
    while True:
        progress = describe(s3control, account_id, job_id)
        polls += 1
        on_progress(progress)
        finished = progress.terminal or progress.waiting or not until_done
        if finished or (max_polls is not None and polls >= max_polls):
            return progress
        sleep(interval)
