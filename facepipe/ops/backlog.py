"""`facepipe backfill --engine batch-operations`: a backlog as an S3 Batch Operations job running the backlog
function (facepipe/ops/batch_jobs.py builds and follows the job), or, with `--local`, the same job emulated on
this machine against the local stack (facepipe/local/batch_jobs.py). docs/OPERATIONS.md, "backfill"."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from detect_faces.contract import OUTPUT_BACKLOG_FUNCTION, OUTPUT_BATCH_JOB_ROLE, OUTPUT_REPORTS_BUCKET

from . import batch_jobs
from .errors import OpsError
from .targets import Target


def backlog_of(target: Target) -> batch_jobs.BacklogStack:
    if target.description.startswith("local stack") and not target.backlog_function_arn:
        raise OpsError(
            "the local stack runs a job in this command (--engine batch-operations --local): no job to follow"
        )
    outputs = {
        OUTPUT_BACKLOG_FUNCTION: target.backlog_function_arn,
        OUTPUT_BATCH_JOB_ROLE: target.batch_job_role_arn,
        OUTPUT_REPORTS_BUCKET: target.reports_bucket,
    }
    return batch_jobs.backlog_from_outputs(outputs, target.description or "the stack")


@dataclass
class Submitted:
    request: dict[str, Any]
    job_id: str | None  # None: --dry-run, or nothing to do
    manifest: batch_jobs.ManifestLocation | None = None
    nothing_to_do: bool = False


def submit(
    target: Target,
    uri: str,
    *,
    priority: int = batch_jobs.DEFAULT_PRIORITY,
    confirm: bool = False,
    manifest: batch_jobs.ManifestKind = "generated",
    dry_run: bool = False,
) -> Submitted:
    """Create the job (or, with dry_run, only say which): the backlog function over every current object under
    the prefix (a manifest S3 generates), or over those without a result (a CSV manifest written first)."""
    bucket, prefix = target.backfill_location(uri)
    backlog = backlog_of(target)
    plan = batch_jobs.plan_job(
        backlog, f"s3://{bucket}/{prefix}", priority=priority, confirm=confirm, manifest=manifest
    )
    location = None
    if manifest == "csv":
        location = batch_jobs.write_csv_manifest(
            target.client_for("s3"), target.results(), bucket, prefix, backlog.reports_bucket,
            partition=plan.partition, dry_run=dry_run,
        )  # fmt: skip
        if location is None:
            return Submitted(request={}, job_id=None, nothing_to_do=True)
        # the same command again within the minute writes another manifest: it is another job, not a retry
        token = batch_jobs.request_token(plan.client_request_token, location.etag, now=datetime.now(UTC))
        plan = dataclasses.replace(plan, client_request_token=token)
    request = batch_jobs.create_job_request(plan, location)
    if dry_run:
        return Submitted(request=request, job_id=None, manifest=location)
    job_id = batch_jobs.create_job(target.client_for("s3control"), request)
    return Submitted(request=request, job_id=job_id, manifest=location)


def status(
    target: Target,
    job_id: str,
    *,
    watch: bool,
    out: IO[str] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> batch_jobs.JobProgress:
    backlog = backlog_of(target)
    kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    return batch_jobs.watch(
        target.client_for("s3control"), backlog.account_id, job_id, out=out or sys.stdout, until_done=watch, **kwargs
    )


def confirm(
    target: Target,
    job_id: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 5.0,
    timeout: float = 3600.0,
    out: IO[str] | None = None,
) -> str:
    """Set a job Ready once it waits for confirmation. A job that was just created is New, then Preparing (S3
    lists or reads the manifest first: minutes for millions of objects); it accepts Ready only once Suspended.
    Returns what was done, in words."""
    backlog = backlog_of(target)
    s3control = target.client_for("s3control")
    waited = 0.0
    while True:
        progress = batch_jobs.describe(s3control, backlog.account_id, job_id)
        if progress.status == "Suspended" and progress.confirmation_required:
            batch_jobs.confirm_job(s3control, backlog.account_id, job_id)
            return f"job {job_id} confirmed: it runs when S3 Batch Operations schedules it"
        if progress.status not in ("New", "Preparing"):
            return f"job {job_id} is {progress.status}: nothing to confirm"
        if waited >= timeout:
            raise OpsError(f"job {job_id} is still {progress.status} after {timeout:.0f} s; confirm it later")
        if waited == 0:
            print(f"job {job_id} is {progress.status} (S3 prepares the manifest); waiting to confirm it", file=out)
        sleep(interval)
        waited += interval


def run_locally(
    target: Target,
    uri: str,
    *,
    concurrency: int = 4,
    max_attempts: int = 10,  # Batch Operations redrives a TemporaryFailure "before the job completes"
    retry_delay: float = 2.0,
    dry_run: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> Any:
    """The job on this machine: the tasks a CSV manifest would hold, fed to the backlog function (the deployed
    code, with clients for the local stack) at `concurrency`, TemporaryFailure retried later, and the
    completion report written to the local reports bucket in Batch Operations' format."""
    from aws_lambda_powertools.utilities.data_classes import S3BatchOperationEvent

    from detect_faces import backlog, handler
    from detect_faces.settings import Settings
    from facepipe.local import batch_jobs as local_jobs

    bucket, prefix = target.backfill_location(uri)
    if not target.reports_bucket:
        raise OpsError("this local stack has no reports bucket: restart it with `python -m facepipe local up`")
    s3 = target.client_for("s3")
    tasks = local_jobs.tasks_to_run(s3, target.results(), bucket, prefix)
    if dry_run:
        return tasks
    from botocore.config import Config

    from facepipe.local.aws import local_client

    # DetectFaces gets one attempt per call, as the deployed function's client: the function's own backoff is
    # the only retry (a client retrying throttling by itself would hide the TemporaryFailure path)
    endpoint = target.client_for("rekognition").meta
    rekognition = local_client(
        "rekognition", endpoint.region_name, {}, endpoint.endpoint_url,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )  # fmt: skip
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

    kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    return local_jobs.run_local_job(
        invoke,
        tasks,
        s3=s3,
        reports_bucket=target.reports_bucket,
        concurrency=concurrency,
        max_attempts=max_attempts,
        retry_delay=retry_delay,
        **kwargs,
    )


def request_json(request: dict[str, Any]) -> str:
    return json.dumps(request, indent=2, sort_keys=True)
