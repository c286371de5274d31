"""`backfill --engine batch-operations` on a deployed stack: the backlog as an S3 Batch Operations job running the
stack's backlog function, created, confirmed and followed from here. docs/OPERATIONS.md, "backfill".

plan.py decides the job (the stack's resources for it, the create_job request), manifest.py writes a CSV manifest,
jobs.py speaks to S3 Control, errors.py turns its errors into one line. On the local stack the same job is
emulated on this machine by local mode; the CLI picks which.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from detect_faces.contract import OUTPUT_BACKLOG_FUNCTION, OUTPUT_BATCH_JOB_ROLE, OUTPUT_REPORTS_BUCKET

from ..errors import OpsError
from ..targets import Target, TargetKind
from . import jobs, plan
from .jobs import JobProgress
from .manifest import ManifestLocation, write_csv_manifest
from .plan import DEFAULT_PRIORITY, JobResources, ManifestKind

__all__ = ["JobProgress", "ManifestLocation", "Submitted", "confirm", "follow", "resources_of", "submit"]


def resources_of(target: Target) -> JobResources:
    """The stack's resources for jobs; the local stack has none (its job is emulated by the command itself)."""
    if target.kind is TargetKind.LOCAL and not target.backlog_function_arn:
        raise OpsError(
            "the local stack runs a job in this command (--engine batch-operations --local): no job to follow"
        )
    outputs = {
        OUTPUT_BACKLOG_FUNCTION: target.backlog_function_arn,
        OUTPUT_BATCH_JOB_ROLE: target.batch_job_role_arn,
        OUTPUT_REPORTS_BUCKET: target.reports_bucket,
    }
    return plan.resources_from_outputs(outputs, target.description or "the stack")


@dataclass
class Submitted:
    request: dict[str, Any]
    job_id: str | None  # None: --dry-run, or nothing to do
    manifest: ManifestLocation | None = None
    nothing_to_do: bool = False


def submit(
    target: Target,
    uri: str,
    *,
    priority: int = DEFAULT_PRIORITY,
    confirm: bool = False,
    manifest: ManifestKind = "generated",
    dry_run: bool = False,
) -> Submitted:
    """Create the job (or, with dry_run, only say which): the backlog function over every current object under
    the prefix (a manifest S3 generates), or over those without a result (a CSV manifest written first)."""
    bucket, prefix = target.backfill_location(uri)
    resources = resources_of(target)
    job_plan = plan.plan_job(resources, f"s3://{bucket}/{prefix}", priority=priority, confirm=confirm,
                             manifest=manifest)  # fmt: skip
    location = None
    if manifest == "csv":
        location = write_csv_manifest(
            target.client_for("s3"), target.results(), bucket, prefix, resources.reports_bucket,
            partition=job_plan.partition, dry_run=dry_run,
        )  # fmt: skip
        if location is None:
            return Submitted(request={}, job_id=None, nothing_to_do=True)
        # the same command again within the minute writes another manifest: it is another job, not a retry
        token = plan.request_token(job_plan.client_request_token, location.etag, now=datetime.now(UTC))
        job_plan = dataclasses.replace(job_plan, client_request_token=token)
    request = plan.create_job_request(job_plan, location)
    if dry_run:
        return Submitted(request=request, job_id=None, manifest=location)
    job_id = jobs.create_job(target.client_for("s3control"), request)
    return Submitted(request=request, job_id=job_id, manifest=location)


def follow(
    target: Target,
    job_id: str,
    *,
    until_done: bool = True,
    on_progress: Callable[[JobProgress], None] = lambda progress: None,
    sleep: Callable[[float], None] | None = None,
) -> JobProgress:
    """The job's progress, handed to `on_progress` at each look, until it ends or waits (once: not until_done)."""
    resources = resources_of(target)
    kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    return jobs.follow_job(target.client_for("s3control"), resources.account_id, job_id, on_progress=on_progress,
                           until_done=until_done, **kwargs)  # fmt: skip


def confirm(
    target: Target,
    job_id: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 5.0,
    timeout: float = 3600.0,
    announce: Callable[[str], None] = lambda line: None,
) -> str:
    """Set a job Ready once it waits for confirmation. A job that was just created is New, then Preparing (S3
    lists or reads the manifest first: minutes for millions of objects); it accepts Ready only once Suspended.
    `announce` hears once that it waits. Returns what was done, in words."""
    resources = resources_of(target)
    s3control = target.client_for("s3control")
    waited = 0.0
    while True:
        progress = jobs.describe(s3control, resources.account_id, job_id)
        if progress.status == "Suspended" and progress.confirmation_required:
            jobs.confirm_job(s3control, resources.account_id, job_id)
            return f"job {job_id} confirmed: it runs when S3 Batch Operations schedules it"
        if progress.status not in ("New", "Preparing"):
            return f"job {job_id} is {progress.status}: nothing to confirm"
        if waited >= timeout:
            raise OpsError(f"job {job_id} is still {progress.status} after {timeout:.0f} s; confirm it later")
        if waited == 0:
            announce(f"job {job_id} is {progress.status} (S3 prepares the manifest); waiting to confirm it")
        sleep(interval)
        waited += interval
