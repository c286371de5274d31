"""backfill --engine batch-operations: the create_job request (checked by botocore's Stubber against the S3
Control API model: moto has no create_job), job progress and how the CLI draws it, the CSV manifest on moto S3,
and the job local mode emulates."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_plus

import boto3
import pytest
from botocore.stub import ANY, Stubber

from detect_faces import contract
from detect_faces.claims import ImageClaims
from detect_faces.model import ImageEvent
from detect_faces.results import ResultsStore
from facepipe.cli.backfill import ProgressDrawing, render_details, render_progress
from facepipe.local import aws as local_aws
from facepipe.local.batch_operations import JobSettings, LocalTask, invocation_event, run_local_job, tasks_to_run
from facepipe.ops import OpsError
from facepipe.ops.batch_operations.jobs import JobProgress, confirm_job, create_job, describe, follow_job
from facepipe.ops.batch_operations.manifest import ManifestLocation, write_csv_manifest
from facepipe.ops.batch_operations.plan import (
    MAX_PRIORITY,
    JobPlan,
    JobResources,
    account_from_role_arn,
    create_job_request,
    partition_from_role_arn,
    plan_job,
    resources_from_outputs,
)
from tests.helpers import BUCKET, REGION, TABLE, Aws, detect_faces_response, fail_calls, s3_record

if TYPE_CHECKING:
    from mypy_boto3_s3control import S3ControlClient

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/facepipe-BatchJobRole-1ABC"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:facepipe-backlog"
REPORTS = "facepipe-reports-bucket"
JOB_ID = "00e123a4-c0d8-41f4-a0eb-b46f9ba5b07c"
NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)
ANY_TOKEN = ANY
# The completion report every job asks for, as create_job takes it and describe_job gives it back
REPORT = {
    "Bucket": f"arn:aws:s3:::{REPORTS}",
    "Prefix": "facepipe-reports",
    "Format": "Report_CSV_20180820",
    "Enabled": True,
    "ReportScope": "AllTasks",
}
OUTPUTS = {
    contract.OUTPUT_BACKLOG_FUNCTION: FUNCTION_ARN,
    contract.OUTPUT_BATCH_JOB_ROLE: ROLE,
    contract.OUTPUT_REPORTS_BUCKET: REPORTS,
}


S3Control = tuple["S3ControlClient", Stubber]  # the client, and the Stubber that answers it


@pytest.fixture
def s3control() -> Iterator[S3Control]:
    client = boto3.client("s3control", region_name=REGION)  # conftest's fake credentials
    stub = Stubber(client)
    stub.activate()
    yield client, stub
    stub.assert_no_pending_responses()


def resources() -> JobResources:
    return resources_from_outputs(OUTPUTS, "facepipe")


def plan(uri: str = f"s3://{BUCKET}/photos/", **kwargs: Any) -> JobPlan:
    return plan_job(resources(), uri, now=NOW, **kwargs)


def expected_common(plan_: JobPlan, confirmation_required: bool = True, priority: int = 10) -> dict[str, Any]:
    return {
        "AccountId": ACCOUNT,
        "ConfirmationRequired": confirmation_required,
        "Operation": {"LambdaInvoke": {"FunctionArn": FUNCTION_ARN, "InvocationSchemaVersion": "2.0"}},
        "Report": REPORT,
        "ClientRequestToken": plan_.client_request_token,
        "Priority": priority,
        "RoleArn": ROLE,
        "Description": plan_.description,
    }


def job(status: str, *, total: int | None = None, succeeded: int = 0, failed: int = 0, **extra: Any) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "JobId": JOB_ID,
        "JobArn": f"arn:aws:s3:{REGION}:{ACCOUNT}:job/{JOB_ID}",
        "Status": status,
        "Priority": 10,
        "Description": f"facepipe backfill s3://{BUCKET}/photos/",
        "ConfirmationRequired": extra.pop("confirmation_required", False),
        "Report": REPORT,
        **extra,
    }
    if total is not None:
        descriptor["ProgressSummary"] = {
            "TotalNumberOfTasks": total,
            "NumberOfTasksSucceeded": succeeded,
            "NumberOfTasksFailed": failed,
            "Timers": {"ElapsedTimeInActiveSeconds": 42},
        }
    return {"Job": descriptor}


# ---- the stack's outputs and the plan ----------------------------------------------------------------------


def test_a_stack_without_the_job_outputs_is_told_to_redeploy() -> None:
    with pytest.raises(OpsError) as raised:
        resources_from_outputs({contract.OUTPUT_BACKLOG_FUNCTION: FUNCTION_ARN}, "facepipe")
    message = str(raised.value)
    assert "\n" not in message
    assert contract.OUTPUT_BATCH_JOB_ROLE in message and contract.OUTPUT_REPORTS_BUCKET in message
    assert contract.OUTPUT_BACKLOG_FUNCTION not in message
    assert "redeploy" in message


def test_the_account_comes_from_the_job_role_arn() -> None:
    assert account_from_role_arn(ROLE) == ACCOUNT
    assert account_from_role_arn("arn:aws-cn:iam::210987654321:role/x") == "210987654321"
    assert partition_from_role_arn("arn:aws-cn:iam::210987654321:role/x") == "aws-cn"
    with pytest.raises(OpsError, match="not an IAM role ARN"):
        account_from_role_arn("arn:aws:iam::12345:user/someone")
    with pytest.raises(OpsError, match="not an IAM role ARN"):
        resources_from_outputs({**OUTPUTS, contract.OUTPUT_BATCH_JOB_ROLE: "not-an-arn"}, "facepipe")


def test_confirm_and_priority_map_to_batch_operations() -> None:
    waiting = plan()
    assert waiting.confirmation_required is True  # without --confirm the job waits in Suspended
    assert plan(confirm=True).confirmation_required is False
    assert plan(priority=0).priority == 0
    assert plan(priority=MAX_PRIORITY).priority == MAX_PRIORITY
    for wrong in (-1, MAX_PRIORITY + 1):
        with pytest.raises(OpsError, match="--priority"):
            plan(priority=wrong)
    assert (waiting.bucket, waiting.prefix, waiting.account_id) == (BUCKET, "photos/", ACCOUNT)
    assert plan(f"s3://{BUCKET}").prefix == ""  # no trailing slash: the whole bucket


def test_the_request_token_is_idempotent_within_a_minute_and_follows_the_parameters() -> None:
    token = plan().client_request_token
    assert token.startswith("facepipe-") and len(token) <= 64
    assert plan_job(resources(), f"s3://{BUCKET}/photos/", now=NOW.replace(second=59)).client_request_token == token
    assert plan_job(resources(), f"s3://{BUCKET}/photos/", now=NOW.replace(minute=1)).client_request_token != token
    assert plan(priority=11).client_request_token != token
    assert plan(f"s3://{BUCKET}/other/").client_request_token != token
    assert plan(confirm=True).client_request_token != token
    assert plan(token="mine").client_request_token == "mine"


# ---- create_job ------------------------------------------------------------------------------------------------


def test_generated_manifest_job_for_a_prefix(s3control: S3Control) -> None:
    client, stub = s3control
    p = plan(priority=25)
    request = create_job_request(p)
    assert request == {
        **expected_common(p, priority=25),
        "ManifestGenerator": {
            "S3JobManifestGenerator": {
                "SourceBucket": f"arn:aws:s3:::{BUCKET}",
                "EnableManifestOutput": False,
                "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": ["photos/"]}},
            }
        },
    }
    assert "Manifest" not in request
    stub.add_response("create_job", {"JobId": JOB_ID}, request)  # validated against the API model
    assert create_job(client, request) == JOB_ID


def test_generated_manifest_job_for_the_whole_bucket_has_no_key_filter(s3control: S3Control) -> None:
    client, stub = s3control
    p = plan(f"s3://{BUCKET}/", confirm=True)
    request = create_job_request(p)
    assert request["ManifestGenerator"] == {
        "S3JobManifestGenerator": {"SourceBucket": f"arn:aws:s3:::{BUCKET}", "EnableManifestOutput": False}
    }
    assert request["ConfirmationRequired"] is False
    assert request["Description"] == f"facepipe backfill s3://{BUCKET}/"
    stub.add_response("create_job", {"JobId": JOB_ID}, request)
    assert create_job(client, request) == JOB_ID


def test_a_generated_job_takes_no_manifest_and_a_csv_job_needs_one() -> None:
    location = ManifestLocation(REPORTS, "k", f"arn:aws:s3:::{REPORTS}/k", "e", ("Bucket", "Key"), 1, 1, 0)
    with pytest.raises(ValueError, match="generated"):
        create_job_request(plan(), location)
    with pytest.raises(ValueError, match="CSV"):
        create_job_request(plan(manifest="csv"))


def test_create_job_access_denied_is_one_line_naming_the_permissions(s3control: S3Control) -> None:
    client, stub = s3control
    request = create_job_request(plan())
    stub.add_client_error(
        "create_job", service_error_code="AccessDenied", service_message="Access Denied", http_status_code=403
    )
    with pytest.raises(OpsError) as raised:
        create_job(client, request)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("AccessDenied creating the Batch Operations job")
    assert "s3:CreateJob" in message and f"iam:PassRole on {ROLE}" in message


def test_create_job_other_errors_keep_the_service_message(s3control: S3Control) -> None:
    client, stub = s3control
    stub.add_client_error(
        "create_job",
        service_error_code="BadRequestException",
        service_message="Unable to assume the job role",
        http_status_code=400,
    )
    with pytest.raises(OpsError, match=r"^BadRequestException creating .*: Unable to assume the job role$"):
        create_job(client, create_job_request(plan()))


def test_confirm_job_makes_a_suspended_job_ready(s3control: S3Control) -> None:
    client, stub = s3control
    stub.add_response(
        "update_job_status",
        {"JobId": JOB_ID, "Status": "Ready"},
        {"AccountId": ACCOUNT, "JobId": JOB_ID, "RequestedJobStatus": "Ready", "StatusUpdateReason": "go"},
    )
    assert confirm_job(client, ACCOUNT, JOB_ID, reason="go") == "Ready"


# ---- the CSV manifest (moto S3) ------------------------------------------------------------------------------------


def store_analysed(aws: Aws, key: str) -> str:
    """Upload the object and store a DETECTED result for that very version, as the function would."""
    version = aws.put(key, b"jpeg")
    event = ImageEvent.from_record(s3_record(BUCKET, key, version_id=version))
    store = ImageClaims(aws.dynamodb, TABLE)
    now = datetime.now(UTC)
    claim = store.claim(event, "t", now, lease_seconds=60, redrive=False)
    store.store_detected(event, claim, detect_faces_response(1)["FaceDetails"], "DEFAULT", now)
    return version


@pytest.fixture
def reports(aws: Aws) -> Aws:
    local_aws.create_bucket(aws.s3, REPORTS, REGION)
    return aws


def manifest_rows(aws: Aws, location: ManifestLocation) -> list[list[str]]:
    body = aws.s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read().decode()
    return list(csv.reader(io.StringIO(body)))


def test_csv_manifest_lists_current_versions_url_encoded_and_skips_analysed_objects(reports: Aws) -> None:
    aws = reports
    aws.put("photos/a b.jpg", b"old")  # overwritten: only the current version is a task
    spaced = aws.put("photos/a b.jpg", b"new")
    odd = aws.put('photos/c,d+e"f.jpg', b"x")
    accented = aws.put("photos/ünï/çø.jpg", b"x")
    store_analysed(aws, "photos/done.jpg")
    aws.put("other/outside.jpg", b"x")
    store = ResultsStore(aws.dynamodb, TABLE)

    location = write_csv_manifest(aws.s3, store, BUCKET, "photos/", REPORTS, name="uploads/test.csv")

    assert location is not None
    assert (location.listed, location.skipped, location.tasks) == (4, 1, 3)
    assert location.key == "facepipe-manifests/uploads/test.csv"
    assert location.object_arn == f"arn:aws:s3:::{REPORTS}/facepipe-manifests/uploads/test.csv"
    assert location.fields == ("Bucket", "Key", "VersionId")
    head = aws.s3.head_object(Bucket=REPORTS, Key=location.key)
    assert location.etag == head["ETag"].strip('"')
    assert location.version_id == head["VersionId"]  # the reports bucket is versioned: pin the manifest
    rows = manifest_rows(aws, location)
    assert rows == [
        [BUCKET, "photos/a%20b.jpg", spaced],
        [BUCKET, "photos/c%2Cd%2Be%22f.jpg", odd],
        [BUCKET, "photos/%C3%BCn%C3%AF/%C3%A7%C3%B8.jpg", accented],
    ]
    # one row per line even with a comma and a quote in a key; either decoding gives the key back
    raw = aws.s3.get_object(Bucket=REPORTS, Key=location.key)["Body"].read().decode()
    assert raw.count("\n") == 3 and '"' not in raw
    assert (
        [unquote(r[1]) for r in rows]
        == [unquote_plus(r[1]) for r in rows]
        == [
            "photos/a b.jpg",
            'photos/c,d+e"f.jpg',
            "photos/ünï/çø.jpg",
        ]
    )

    # ... and the job that uses it passes the API model's validation
    p = plan(manifest="csv")
    request = create_job_request(p, location)
    assert request["Manifest"] == {
        "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key", "VersionId"]},
        "Location": {"ObjectArn": location.object_arn, "ETag": location.etag, "ObjectVersionId": location.version_id},
    }
    assert "ManifestGenerator" not in request
    client = boto3.client("s3control", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_response("create_job", {"JobId": JOB_ID}, {**expected_common(p), "Manifest": request["Manifest"]})
        assert create_job(client, request) == JOB_ID
        stub.assert_no_pending_responses()


def test_csv_manifest_of_an_unversioned_bucket_has_no_version_ids(reports: Aws) -> None:
    aws = reports
    aws.s3.create_bucket(Bucket="plain")  # never versioned: every VersionId is "null"
    aws.s3.put_object(Bucket="plain", Key="x y.jpg", Body=b"x")
    location = write_csv_manifest(aws.s3, ResultsStore(aws.dynamodb, TABLE), "plain", "", REPORTS)
    assert location is not None and location.fields == ("Bucket", "Key")
    assert location.key.startswith("facepipe-manifests/plain/") and location.key.endswith(".csv")
    assert manifest_rows(aws, location) == [["plain", "x%20y.jpg"]]


def test_csv_manifest_is_none_when_everything_has_a_result(reports: Aws) -> None:
    aws = reports
    store_analysed(aws, "photos/a.jpg")
    store_analysed(aws, "photos/b.jpg")
    assert write_csv_manifest(aws.s3, ResultsStore(aws.dynamodb, TABLE), BUCKET, "photos/", REPORTS) is None
    assert aws.s3.list_objects_v2(Bucket=REPORTS).get("KeyCount") == 0


def test_csv_manifest_dry_run_writes_nothing(reports: Aws) -> None:
    aws = reports
    aws.put("photos/a.jpg", b"x")
    location = write_csv_manifest(aws.s3, ResultsStore(aws.dynamodb, TABLE), BUCKET, "photos/", REPORTS, dry_run=True)
    assert location is not None and location.written is False and location.tasks == 1
    assert aws.s3.list_objects_v2(Bucket=REPORTS).get("KeyCount") == 0


def test_csv_manifest_access_denied_names_the_permission(reports: Aws) -> None:
    aws = reports
    aws.put("photos/a.jpg", b"x")
    fail_calls(aws.s3, "PutObject", "AccessDenied", {1})
    with pytest.raises(OpsError) as raised:
        write_csv_manifest(aws.s3, ResultsStore(aws.dynamodb, TABLE), BUCKET, "photos/", REPORTS)
    assert "s3:PutObject on the reports bucket" in str(raised.value)
    assert "\n" not in str(raised.value)


# ---- progress, followed by ops and drawn by the CLI -------------------------------------------------------


def watch(client: Any, *, out: io.StringIO, width: int = 30, **kwargs: Any) -> JobProgress:
    """What `backfill --status` does: the job followed (facepipe.ops), its progress drawn (facepipe.cli)."""
    drawing = ProgressDrawing(out, width)
    progress = follow_job(client, ACCOUNT, JOB_ID, on_progress=drawing.draw, **kwargs)
    drawing.close(progress)
    return progress


def test_an_active_job_shows_its_bar_counts_and_report(s3control: S3Control) -> None:
    client, stub = s3control
    stub.add_response(
        "describe_job",
        job("Active", total=200, succeeded=90, failed=10),
        {"AccountId": ACCOUNT, "JobId": JOB_ID},
    )
    progress = describe(client, ACCOUNT, JOB_ID)
    assert (progress.status, progress.total, progress.succeeded, progress.failed) == ("Active", 200, 90, 10)
    assert progress.percent == 50.0 and not progress.terminal
    assert progress.report == f"s3://{REPORTS}/facepipe-reports/job-{JOB_ID}/"
    assert progress.elapsed_seconds == 42 and progress.account_id == ACCOUNT
    line = render_progress(progress, width=20)
    assert line == "Active     [##########----------]  50.0%  100/200 tasks: 90 succeeded, 10 failed"
    assert f"completion report: s3://{REPORTS}/facepipe-reports/job-{JOB_ID}/" in render_details(progress)


def test_a_complete_job_is_full_and_a_failed_job_says_why(s3control: S3Control) -> None:
    client, stub = s3control
    stub.add_response("describe_job", job("Complete", total=3, succeeded=2, failed=1))
    stub.add_response(
        "describe_job",
        job(
            "Failed",
            total=2000,
            succeeded=400,
            failed=600,
            FailureReasons=[{"FailureCode": "JobFailureThresholdExceeded", "FailureReason": "too many task failures"}],
            StatusUpdateReason="Job failure rate exceeded threshold",
        ),
    )
    complete = describe(client, ACCOUNT, JOB_ID)
    assert complete.terminal and complete.percent == 100.0
    assert render_progress(complete, width=10).startswith("Complete   [##########] 100.0%  3/3 tasks")
    failed = describe(client, ACCOUNT, JOB_ID)
    assert failed.terminal and failed.percent == 50.0
    details = render_details(failed)
    assert "failure: JobFailureThresholdExceeded: too many task failures" in details
    assert "reason: Job failure rate exceeded threshold" in details


def test_a_preparing_job_without_counts_yet(s3control: S3Control) -> None:
    client, stub = s3control
    stub.add_response("describe_job", job("Preparing"))
    progress = describe(client, ACCOUNT, JOB_ID)
    assert progress.percent == 0.0
    assert (
        render_progress(progress, width=4) == "Preparing  [----]   0.0%  tasks not counted yet: 0 succeeded, 0 failed"
    )


def test_describe_an_unknown_job(s3control: S3Control) -> None:
    client, stub = s3control
    stub.add_client_error("describe_job", service_error_code="NotFoundException", service_message="no such job")
    with pytest.raises(OpsError, match=f"no Batch Operations job {JOB_ID} in account {ACCOUNT}"):
        describe(client, ACCOUNT, JOB_ID)


def test_watch_redescribes_until_complete_with_an_injected_sleep(s3control: S3Control) -> None:
    client, stub = s3control
    for response in (
        job("Preparing"),
        job("Active", total=4, succeeded=1),
        job("Active", total=4, succeeded=1),  # unchanged: no new line
        job("Complete", total=4, succeeded=3, failed=1),
    ):
        stub.add_response("describe_job", response, {"AccountId": ACCOUNT, "JobId": JOB_ID})
    slept: list[float] = []
    out = io.StringIO()
    final = watch(client, sleep=slept.append, out=out, interval=7.5, width=4)
    assert final.status == "Complete" and (final.succeeded, final.failed) == (3, 1)
    assert slept == [7.5, 7.5, 7.5]
    assert out.getvalue().splitlines() == [
        "Preparing  [----]   0.0%  tasks not counted yet: 0 succeeded, 0 failed",
        "Active     [#---]  25.0%  1/4 tasks: 1 succeeded, 0 failed",
        "Complete   [####] 100.0%  4/4 tasks: 3 succeeded, 1 failed",
        f"job {JOB_ID} (facepipe backfill s3://{BUCKET}/photos/)",
        f"completion report: s3://{REPORTS}/facepipe-reports/job-{JOB_ID}/",
    ]


def test_watch_redraws_in_place_on_a_terminal(s3control: S3Control) -> None:
    client, stub = s3control
    stub.add_response("describe_job", job("Active", total=2, succeeded=1))
    stub.add_response("describe_job", job("Complete", total=2, succeeded=2))

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    watch(client, sleep=lambda s: None, out=out, width=2)
    first, *rest = out.getvalue().split("\n")
    assert first.count("\r") == 2 and first.endswith("Complete   [##] 100.0%  2/2 tasks: 2 succeeded, 0 failed")
    assert rest[0] == f"job {JOB_ID} (facepipe backfill s3://{BUCKET}/photos/)"


def test_watch_stops_at_a_job_waiting_for_confirmation(s3control: S3Control) -> None:
    client, stub = s3control
    stub.add_response("describe_job", job("Suspended", total=10, confirmation_required=True))
    slept: list[float] = []
    out = io.StringIO()
    progress = watch(client, sleep=slept.append, out=out)
    assert progress.waiting and not progress.terminal and slept == []
    assert f"python -m facepipe backfill --status {JOB_ID} --confirm" in out.getvalue()


def test_watch_once_when_not_until_done(s3control: S3Control) -> None:
    client, stub = s3control
    stub.add_response("describe_job", job("Active", total=10, succeeded=5))
    slept: list[float] = []
    progress = watch(client, sleep=slept.append, out=io.StringIO(), until_done=False)
    assert progress.status == "Active" and slept == []


# ---- the local job -------------------------------------------------------------------------------------------


class FakeBacklog:
    """A backlog function by key: ok, flaky (TemporaryFailure once), bad (PermanentFailure), boom (raises),
    busy (TemporaryFailure every time)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        task = event["tasks"][0]
        key = unquote_plus(task["s3Key"])
        with self.lock:
            self.events.append(event)
            self.calls[key] = self.calls.get(key, 0) + 1
            n = self.calls[key]
        assert context.get_remaining_time_in_millis() > 0 and context.invoked_function_arn.endswith("backlog")
        name = key.rsplit("/", 1)[-1].split(".")[0].split(" ")[0]
        if name == "boom":
            raise RuntimeError("DetectFaces exploded")
        code, text = {
            "ok": ("Succeeded", "DETECTED 2 faces"),
            "flaky": ("TemporaryFailure", "throttled") if n == 1 else ("Succeeded", "DETECTED 0 faces"),
            "bad": ("PermanentFailure", "InvalidImageFormatException"),
            "busy": ("TemporaryFailure", f"throttled {n}"),
        }[name]
        return {
            "invocationSchemaVersion": "2.0",
            "treatMissingKeysAs": "PermanentFailure",
            "invocationId": event["invocationId"],
            "results": [{"taskId": task["taskId"], "resultCode": code, "resultString": text}],
        }


def report_rows(aws: Aws, key: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(aws.s3.get_object(Bucket=REPORTS, Key=key)["Body"].read().decode())))


def test_the_local_job_retries_temporary_failures_and_writes_the_completion_report(reports: Aws) -> None:
    aws = reports
    keys = ["in/ok.jpg", "in/flaky.jpg", "in/bad.jpg", "in/boom.jpg", "in/busy.jpg", "in/a b/ok.jpg"]
    tasks = [LocalTask(BUCKET, key, "v1" if key == "in/ok.jpg" else None) for key in keys]
    handler = FakeBacklog()
    slept: list[float] = []

    settings = JobSettings(
        job_id="job-local-1", concurrency=3, max_attempts=3, retry_delay=30.0, sleep=slept.append, now=lambda: NOW,
        function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:facepipe-backlog",
    )  # fmt: skip
    report = run_local_job(handler, tasks, s3=aws.s3, reports_bucket=REPORTS, settings=settings)

    assert (report.total, report.succeeded, report.failed) == (6, 3, 3)
    # flaky: failed once then succeeded; boom and busy: every attempt up to the cap; the others once
    assert handler.calls == {"in/ok.jpg": 1, "in/flaky.jpg": 2, "in/bad.jpg": 1, "in/boom.jpg": 3,
                             "in/busy.jpg": 3, "in/a b/ok.jpg": 1}  # fmt: skip
    assert report.invocations == 11 and report.retries == 5 and report.temporary_failures == 7
    assert slept == [30.0, 30.0]  # the redrives come later, after the delay
    assert report.peak_concurrency <= 3

    base = "facepipe-reports/job-job-local-1"
    assert report.manifest_key == f"{base}/manifest.json"
    assert report.report_uri == f"s3://{REPORTS}/{base}/"
    manifest = json.loads(aws.s3.get_object(Bucket=REPORTS, Key=report.manifest_key)["Body"].read())
    assert manifest["Format"] == "Report_CSV_20180820"
    assert manifest["ReportCreationDate"] == "2026-11-28T12:00:30.000Z"
    assert manifest["ReportSchema"] == "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
    assert [r["TaskExecutionStatus"] for r in manifest["Results"]] == ["succeeded", "failed"]
    assert [r["Key"] for r in manifest["Results"]] == report.report_keys
    for entry in manifest["Results"]:
        assert entry["Bucket"] == REPORTS
        assert entry["Key"].startswith(f"{base}/results/") and entry["Key"].endswith(".csv")
        body = aws.s3.get_object(Bucket=REPORTS, Key=entry["Key"])["Body"].read()
        assert entry["MD5Checksum"] == hashlib.md5(body).hexdigest()

    succeeded, failed = (report_rows(aws, k) for k in report.report_keys)
    assert succeeded == [
        [BUCKET, "in/ok.jpg", "v1", "succeeded", "200", "", "DETECTED 2 faces"],
        [BUCKET, "in/flaky.jpg", "", "succeeded", "200", "", "DETECTED 0 faces"],
        [BUCKET, "in/a%20b/ok.jpg", "", "succeeded", "200", "", "DETECTED 2 faces"],
    ]
    assert failed == [
        [BUCKET, "in/bad.jpg", "", "failed", "200", "PermanentFailure", "InvalidImageFormatException"],
        [BUCKET, "in/boom.jpg", "", "failed", "200", "PermanentFailure",
         'Lambda returned function error: {"errorMessage": "DetectFaces exploded", "errorType": "RuntimeError"}'],
        [BUCKET, "in/busy.jpg", "", "failed", "200", "TemporaryFailure", "throttled 3"],
    ]  # fmt: skip


def test_the_local_job_sends_schema_2_events_one_task_each(reports: Aws) -> None:
    aws = reports
    handler = FakeBacklog()
    tasks = [LocalTask(BUCKET, "in/ok 1+2.jpg", "3HL4kqtJvjVBH40Nrjfkd"), LocalTask(BUCKET, "in/ok.jpg")]
    settings = JobSettings(job_id="job-2", sleep=lambda s: None)
    run_local_job(handler, tasks, s3=aws.s3, reports_bucket=REPORTS, settings=settings)
    by_key = {e["tasks"][0]["s3Key"]: e for e in handler.events}
    assert handler.calls == {"in/ok 1+2.jpg": 1, "in/ok.jpg": 1}  # the handler's unquote_plus gets the key back
    event = by_key["in/ok%201%2B2.jpg"]
    assert set(event) == {"invocationSchemaVersion", "invocationId", "job", "tasks"}
    assert event["invocationSchemaVersion"] == "2.0" and event["job"] == {"id": "job-2"}
    (task,) = event["tasks"]
    assert set(task) == {"taskId", "s3Key", "s3VersionId", "s3Bucket"}
    assert (task["s3Bucket"], task["s3VersionId"]) == (BUCKET, "3HL4kqtJvjVBH40Nrjfkd")
    assert by_key["in/ok.jpg"]["tasks"][0]["s3VersionId"] is None
    assert len({e["invocationId"] for e in handler.events}) == 2
    assert len({e["tasks"][0]["taskId"] for e in handler.events}) == 2
    with_arguments = invocation_event("j", "t", tasks[1], {"mode": "backfill"})
    assert with_arguments["job"] == {"id": "j", "userArguments": {"mode": "backfill"}}


def test_the_local_job_runs_tasks_at_its_concurrency(reports: Aws) -> None:
    aws = reports
    barrier = threading.Barrier(2, timeout=10)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        barrier.wait()  # both tasks must be in the function at once, or this breaks
        task = event["tasks"][0]
        return {"invocationId": event["invocationId"], "treatMissingKeysAs": "PermanentFailure",
                "invocationSchemaVersion": "2.0",
                "results": [{"taskId": task["taskId"], "resultCode": "Succeeded", "resultString": "ok"}]}  # fmt: skip

    tasks = [LocalTask(BUCKET, "a.jpg"), LocalTask(BUCKET, "b.jpg")]
    settings = JobSettings(job_id="job-3", concurrency=2)
    report = run_local_job(handler, tasks, s3=aws.s3, reports_bucket=REPORTS, settings=settings)
    assert report.succeeded == 2 and report.peak_concurrency == 2
    assert len(report.report_keys) == 1  # no failed tasks: no failed report


def test_a_task_missing_from_the_response_takes_treat_missing_keys_as(reports: Aws) -> None:
    aws = reports
    calls: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        calls.append(event["tasks"][0]["s3Key"])
        if event["tasks"][0]["s3Key"] == "junk.jpg":
            return "not a response"
        return {"invocationId": event["invocationId"], "treatMissingKeysAs": "TemporaryFailure", "results": []}

    tasks = [LocalTask(BUCKET, "missing.jpg"), LocalTask(BUCKET, "junk.jpg")]
    settings = JobSettings(job_id="job-4", max_attempts=2, sleep=lambda s: None)
    report = run_local_job(handler, tasks, s3=aws.s3, reports_bucket=REPORTS, settings=settings)
    assert report.failed == 2 and calls.count("missing.jpg") == 2 and calls.count("junk.jpg") == 1
    rows = {r[1]: r for r in report_rows(aws, report.report_keys[0])}
    assert rows["missing.jpg"][5] == "TemporaryFailure" and "missing from the results" in rows["missing.jpg"][6]
    assert rows["junk.jpg"][5] == "PermanentFailure" and "invalid response" in rows["junk.jpg"][6]


def test_local_tasks_are_the_current_versions_without_a_result(aws: Aws) -> None:
    aws.put("photos/new.jpg", b"old")
    version = aws.put("photos/new.jpg", b"new")
    store_analysed(aws, "photos/done.jpg")
    tasks = tasks_to_run(aws.s3, ResultsStore(aws.dynamodb, TABLE), BUCKET, "photos/")
    assert tasks == [LocalTask(BUCKET, "photos/new.jpg", version)]


# ---- the command: backfill --engine batch-operations / --status, through a stack's Target ---------------------
from facepipe import ops  # noqa: E402
from facepipe.cli import main  # noqa: E402
from facepipe.ops import batch_operations  # noqa: E402


def stack_target(aws: Aws, client: Any, **kwargs: Any) -> ops.Target:
    clients = {"s3": aws.s3, "dynamodb": aws.dynamodb, "sqs": aws.sqs, "s3control": client}
    return ops.Target(BUCKET, TABLE, aws.queue_url, "detect-faces-fn", client_for=clients.__getitem__,
                      description="stack facepipe", backlog_function_arn=FUNCTION_ARN, batch_job_role_arn=ROLE,
                      reports_bucket=REPORTS, **kwargs)  # fmt: skip


def test_the_command_creates_a_generated_manifest_job_for_a_watched_prefix(
    reports: Aws, s3control: S3Control, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stub = s3control
    target = stack_target(reports, client, locations=(f"s3://{BUCKET}/photos/",))
    stub.add_response("create_job", {"JobId": JOB_ID}, {
        **{k: v for k, v in expected_common(plan("s3://uploads/photos/2020/")).items() if k != "ClientRequestToken"},
        "ClientRequestToken": ANY_TOKEN,
        "ManifestGenerator": {"S3JobManifestGenerator": {
            "SourceBucket": f"arn:aws:s3:::{BUCKET}", "EnableManifestOutput": False,
            "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": ["photos/2020/"]}}}},
    })  # fmt: skip
    submitted = batch_operations.submit(target, f"s3://{BUCKET}/photos/2020/")
    assert submitted.job_id == JOB_ID
    # a prefix the function's role cannot read is refused before anything is created
    with pytest.raises(OpsError, match=r"reads only under s3://uploads/photos/ .* not all of s3://uploads/"):
        batch_operations.submit(target, f"s3://{BUCKET}/")


def test_the_command_writes_a_csv_manifest_and_creates_the_job_with_it(reports: Aws, s3control: S3Control) -> None:
    client, stub = s3control
    reports.put("photos/new.jpg", b"jpeg")
    store_analysed(reports, "photos/done.jpg")
    target = stack_target(reports, client)
    stub.add_response("create_job", {"JobId": JOB_ID})
    submitted = batch_operations.submit(target, f"s3://{BUCKET}/photos/", manifest="csv", confirm=True, priority=50)
    assert submitted.manifest is not None and submitted.manifest.tasks == 1 and submitted.manifest.skipped == 1
    request = submitted.request
    assert request["Manifest"]["Location"]["ObjectArn"] == f"arn:aws:s3:::{REPORTS}/{submitted.manifest.key}"
    assert (request["ConfirmationRequired"], request["Priority"]) == (False, 50)
    assert manifest_rows(reports, submitted.manifest)[0][:2] == [BUCKET, "photos/new.jpg"]


def test_the_commands_dry_run_prints_the_request_and_creates_nothing(
    reports: Aws, s3control: S3Control, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = s3control  # no response queued: any call would fail the test
    monkeypatch.setattr(ops, "stack_target", lambda name: stack_target(reports, client))
    assert main(["backfill", f"s3://{BUCKET}/photos/", "--engine", "batch-operations", "--dry-run"]) == 0
    out = capsys.readouterr().out
    request = json.loads(out.split("(s3control create_job):\n", 1)[1])
    assert request["Operation"] == {"LambdaInvoke": {"FunctionArn": FUNCTION_ARN, "InvocationSchemaVersion": "2.0"}}
    assert request["RoleArn"] == ROLE and request["ConfirmationRequired"] is True


def test_status_confirms_a_waiting_job_and_follows_it(
    reports: Aws, s3control: S3Control, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stub = s3control
    monkeypatch.setattr(ops, "stack_target", lambda name: stack_target(reports, client))
    params = {"AccountId": ACCOUNT, "JobId": JOB_ID}
    stub.add_response("describe_job", job("Suspended", confirmation_required=True), params)
    stub.add_response("update_job_status", {"JobId": JOB_ID, "Status": "Ready"},
                      {**params, "RequestedJobStatus": "Ready", "StatusUpdateReason": ANY_TOKEN})  # fmt: skip
    stub.add_response("describe_job", job("Complete", total=3, succeeded=3), params)
    assert main(["backfill", "--status", JOB_ID, "--confirm"]) == 0
    out = capsys.readouterr().out
    assert f"job {JOB_ID} confirmed" in out
    assert "100.0%  3/3 tasks: 3 succeeded, 0 failed" in out
    assert f"completion report: s3://{REPORTS}/facepipe-reports/job-{JOB_ID}/" in out
    # a script can tell a job that completed with failed tasks, or failed, from a success
    stub.add_response("describe_job", job("Complete", total=3, succeeded=2, failed=1), params)
    assert main(["backfill", "--status", JOB_ID, "--once"]) == 1
    stub.add_response("describe_job", job("Failed", total=3, succeeded=0, failed=3), params)
    assert main(["backfill", "--status", JOB_ID, "--once"]) == 1
    stub.add_response("describe_job", job("Active", total=3, succeeded=1), params)
    assert main(["backfill", "--status", JOB_ID, "--once"]) == 0  # still running: nothing wrong yet


def test_confirm_waits_while_s3_prepares_the_manifest(reports: Aws, s3control: S3Control) -> None:
    client, stub = s3control
    target = stack_target(reports, client)
    for status in ("New", "Preparing"):  # update_job_status(Ready) is refused until the job is Suspended
        stub.add_response("describe_job", job(status, confirmation_required=True))
    stub.add_response("describe_job", job("Suspended", confirmation_required=True))
    stub.add_response("update_job_status", {"JobId": JOB_ID, "Status": "Ready"})
    slept: list[float] = []
    announced: list[str] = []
    said = batch_operations.confirm(target, JOB_ID, sleep=slept.append, announce=announced.append)
    assert said.startswith(f"job {JOB_ID} confirmed") and slept == [5.0, 5.0]
    assert announced == [f"job {JOB_ID} is New (S3 prepares the manifest); waiting to confirm it"]
    stub.add_response("describe_job", job("Active", total=3))
    assert batch_operations.confirm(target, JOB_ID, sleep=slept.append) == f"job {JOB_ID} is Active: nothing to confirm"
    for _ in range(3):
        stub.add_response("describe_job", job("Preparing", confirmation_required=True))
    with pytest.raises(OpsError, match="still Preparing after 10 s"):
        batch_operations.confirm(target, JOB_ID, sleep=lambda s: None, timeout=10.0)


def test_a_stack_without_the_backlog_function_is_told_to_redeploy(aws: Aws, s3control: S3Control) -> None:
    old = ops.Target(BUCKET, TABLE, aws.queue_url, "fn", client_for={"s3": aws.s3}.__getitem__, description="stack x")
    with pytest.raises(OpsError, match="redeploy"):
        batch_operations.submit(old, f"s3://{BUCKET}/photos/")


def test_the_local_stack_has_no_job_to_follow_whatever_it_is_called(aws: Aws) -> None:
    # what the Target is decides, not its description
    local = ops.Target(BUCKET, TABLE, aws.queue_url, "fn", client_for={"s3": aws.s3}.__getitem__,
                       description="my laptop", kind=ops.TargetKind.LOCAL, reports_bucket=REPORTS)  # fmt: skip
    with pytest.raises(OpsError, match="no job to follow"):
        batch_operations.follow(local, JOB_ID)
    named_local = ops.Target(BUCKET, TABLE, aws.queue_url, "fn", client_for={"s3": aws.s3}.__getitem__,
                             description="local stack at http://x")  # fmt: skip
    with pytest.raises(OpsError, match="redeploy"):  # a deployed stack, whatever its description says
        batch_operations.follow(named_local, JOB_ID)
