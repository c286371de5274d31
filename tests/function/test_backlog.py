"""The backlog entry point (lambdas/detect_faces/backlog.py): S3 Batch Operations' LambdaInvoke events, schema 2.0
and 1.0, through the real handler against moto and a stubbed Rekognition, beside the live function
(docs/DESIGN.md, "Backlog (S3 Batch Operations)")."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from detect_faces import backlog
from detect_faces.contract import BACKFILL_SEQUENCER, EnvVar
from detect_faces.model import InvalidEventError, normalize_sequencer
from detect_faces.processor import ImageBusyError
from detect_faces.results import ImageResult, ResultsStore
from detect_faces.settings import ConfigurationError, Settings
from facepipe.local.aws import FAKE_CREDENTIALS
from tests.helpers import (
    BUCKET,
    JPEG_BYTES,
    PNG_80,
    TABLE,
    FakeContext,
    Pipeline,
    SandboxKilled,
    batch_operations_event,
    batch_task,
    detect_faces_response,
    fail_calls,
    s3_event,
    s3_record,
)

pytestmark = pytest.mark.integration

BACKFILL = normalize_sequencer(BACKFILL_SEQUENCER)


@dataclass
class Backlog:
    """The backlog function beside the live one (`p`): same moto AWS, same stubbed Rekognition, same clock."""

    p: Pipeline

    def run(self, event: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
        context = FakeContext(
            function_name="facepipe-backlog",
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:facepipe-backlog",
            aws_request_id=request_id or str(uuid.uuid4()),  # every Batch Operations invocation is a new request
        )
        response: dict[str, Any] = backlog.lambda_handler(event, context)
        return response

    def task(self, key: str, version_id: str | None = None, **kw: Any) -> dict[str, Any]:
        """One task in one schema 2.0 event: its result."""
        task = batch_task(key, version_id, **kw)
        response = self.run(batch_operations_event([task]))
        (result,) = response["results"]
        assert result["taskId"] == task["taskId"]
        return dict(result)

    def stored(self, key: str, bucket: str = BUCKET) -> ImageResult | None:
        return ResultsStore(self.p.aws.dynamodb, TABLE).get(bucket, key)

    @property
    def detect_calls(self) -> list[dict[str, Any]]:
        return self.p.rekognition.calls


@pytest.fixture
def bo(pipeline: Pipeline) -> Iterator[Backlog]:
    # The live function's budget is 10 DetectFaces attempts; the backlog's own setting (default 2) replaces it.
    settings = Settings(
        results_table=TABLE,
        failure_queue_url=pipeline.aws.queue_url,
        claim_lease_seconds=90,
        detect_max_attempts=10,
        backoff_base_seconds=0.001,
        backoff_max_seconds=0.001,
    )
    aws = pipeline.aws
    backlog.set_processor(
        backlog.build_processor(
            s3=aws.s3,
            rekognition=pipeline.rekognition.client,
            dynamodb=aws.dynamodb,
            sqs=aws.sqs,
            settings=settings,
            clock=pipeline.clock,
        )
    )
    yield Backlog(pipeline)
    backlog.set_processor(None)


def succeeded(text: str) -> dict[str, str]:
    return {"resultCode": "Succeeded", "resultString": text}


def code_and_text(result: dict[str, Any]) -> dict[str, str]:
    return {"resultCode": result["resultCode"], "resultString": result["resultString"]}


def live_upload(p: Pipeline, key: str, body: bytes = JPEG_BYTES, faces: int = 2) -> str:
    """Upload, and let the live function analyse it: the version."""
    version = p.aws.put(key, body)
    p.rekognition.respond(detect_faces_response(faces))
    result = p.invoke(s3_event(s3_record(BUCKET, key, size=len(body), version_id=version)))
    assert result["records"][0]["outcome"] == "detected"
    return version


def status_of(b: Backlog, key: str, bucket: str = BUCKET) -> str | None:
    image = b.stored(key, bucket)
    return image.status if image else None


# ---- the events: schema 2.0 and 1.0, keys, versions ------------------------------------------------------


@pytest.mark.parametrize("schema", ["2.0", "1.0"])
def test_a_task_is_analysed_through_the_live_core_and_answered_in_its_schema(bo: Backlog, schema: str) -> None:
    # Given an object that was in the bucket before the stack, and a job naming it with its version
    version = bo.p.aws.put("old/team.jpg", JPEG_BYTES)
    task = batch_task("old/team.jpg", version)
    event = batch_operations_event([task], schema, user_arguments={"run": "1"} if schema == "2.0" else None)
    assert ("s3Bucket" in event["tasks"][0]) == (schema == "2.0")  # 1.0 names the bucket by its ARN
    response_faces = detect_faces_response(2)
    bo.p.rekognition.respond(response_faces)

    response = bo.run(event)

    # Then the answer is the Batch Operations response of that schema and invocation, one result for the task
    assert response == {
        "invocationSchemaVersion": schema,
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": event["invocationId"],
        "results": [{"taskId": task["taskId"], "resultCode": "Succeeded", "resultString": "DETECTED 2 faces"}],
    }
    # DetectFaces read that version of the S3 object, and the result is the same item a live upload makes
    assert bo.detect_calls == [
        {
            "Image": {"S3Object": {"Bucket": BUCKET, "Name": "old/team.jpg", "Version": version}},
            "Attributes": ["DEFAULT"],
        }
    ]
    image = bo.stored("old/team.jpg")
    assert image is not None
    assert (image.status, image.version_id, image.face_count) == ("DETECTED", version, 2)
    assert image.faces == response_faces["FaceDetails"]
    head = bo.p.aws.s3.head_object(Bucket=BUCKET, Key="old/team.jpg")
    assert (image.etag, image.size) == (head["ETag"].strip('"'), len(JPEG_BYTES))  # learnt from the object
    assert image.sequencer == BACKFILL and image.event_time  # a backfill record: every real event outranks it
    metrics = bo.p.metrics()
    assert (metrics["BacklogTasksSucceeded"], metrics["ImagesDetected"]) == (1, 1)
    assert bo.p.aws.dlq_messages() == []


@pytest.mark.parametrize("schema", ["2.0", "1.0"])
@pytest.mark.parametrize(
    ("encode", "encoded"),
    [(quote_plus, "photos/a+b%2Bc.jpg"), (quote, "photos/a%20b%2Bc.jpg")],
    ids=["as-s3-encodes-event-keys", "as-facepipe-csv-manifests"],
)
def test_a_url_encoded_key_is_decoded_once(bo: Backlog, schema: str, encode: Any, encoded: str) -> None:
    key = "photos/a b+c.jpg"
    version = bo.p.aws.put(key, JPEG_BYTES)
    task = batch_task(key, version, encode=encode)
    assert task["s3Key"] == encoded
    bo.p.rekognition.respond(detect_faces_response(1))

    (result,) = bo.run(batch_operations_event([task], schema))["results"]

    assert code_and_text(result) == succeeded("DETECTED 1 face")
    assert bo.detect_calls[0]["Image"]["S3Object"]["Name"] == key
    assert status_of(bo, key) == "DETECTED"


@pytest.mark.parametrize("no_version", [None, "null"])
def test_a_task_without_a_version_in_a_versioned_bucket_analyses_the_current_one(
    bo: Backlog, no_version: str | None
) -> None:
    bo.p.aws.put("v.jpg", PNG_80)
    current = bo.p.aws.put("v.jpg", JPEG_BYTES)
    bo.p.rekognition.respond(detect_faces_response(1))

    result = bo.task("v.jpg", no_version)

    # Then the version checked current is the one analysed and recorded (DetectFaces names it)
    assert code_and_text(result) == succeeded("DETECTED 1 face")
    assert bo.detect_calls[0]["Image"]["S3Object"]["Version"] == current
    image = bo.stored("v.jpg")
    assert image is not None and (image.version_id, image.size) == (current, len(JPEG_BYTES))


def test_an_unversioned_bucket_is_analysed_once_by_etag(bo: Backlog) -> None:
    # Given a bucket without versioning (tasks carry no version id)
    s3 = bo.p.aws.s3
    s3.create_bucket(Bucket="plain")
    s3.put_object(Bucket="plain", Key="a.jpg", Body=JPEG_BYTES)
    bo.p.rekognition.respond(detect_faces_response(2))

    first = bo.task("a.jpg", None, bucket="plain")
    again = bo.task("a.jpg", None, bucket="plain")  # a second job over the same bucket

    assert code_and_text(first) == succeeded("DETECTED 2 faces")
    assert bo.detect_calls == [{"Image": {"S3Object": {"Bucket": "plain", "Name": "a.jpg"}}, "Attributes": ["DEFAULT"]}]
    image = bo.stored("a.jpg", "plain")
    assert image is not None and image.version_id is None
    assert image.etag == s3.head_object(Bucket="plain", Key="a.jpg")["ETag"].strip('"')
    # The result for this very object (by ETag) is not made again: no second DetectFaces call
    assert code_and_text(again) == succeeded("SKIPPED backfill: already DETECTED for this version")
    assert len(bo.detect_calls) == 1


# ---- idempotency and order against the live function ---------------------------------------------------


@pytest.mark.parametrize("with_version", [True, False])
def test_an_object_with_a_result_for_that_version_succeeds_without_a_detect_faces_call(
    bo: Backlog, with_version: bool
) -> None:
    version = live_upload(bo.p, "done.jpg", faces=3)
    before = bo.stored("done.jpg")

    result = bo.task("done.jpg", version if with_version else None)

    assert code_and_text(result) == succeeded("SKIPPED backfill: already DETECTED for this version")
    assert len(bo.detect_calls) == 1  # the live upload's only
    assert bo.stored("done.jpg") == before  # the live result untouched


def test_a_task_for_a_version_that_is_no_longer_current_leaves_the_live_result(bo: Backlog) -> None:
    older = bo.p.aws.put("two.jpg", JPEG_BYTES)
    newer = live_upload(bo.p, "two.jpg", JPEG_BYTES + b"\x00", faces=3)
    before = bo.stored("two.jpg")

    result = bo.task("two.jpg", older)

    assert code_and_text(result) == succeeded(f"SKIPPED backfill: the current version is now {newer}")
    assert len(bo.detect_calls) == 1
    assert bo.stored("two.jpg") == before


def test_a_live_event_for_a_newer_version_that_arrives_while_a_task_runs_wins(bo: Backlog) -> None:
    # Given a task whose DetectFaces call is slow: meanwhile a new version is uploaded and its live event runs
    p = bo.p
    older = p.aws.put("race.jpg", JPEG_BYTES)
    newer: list[str] = []

    def upload_meanwhile(params: dict[str, Any], **_: Any) -> None:
        if not newer:
            newer.append(p.aws.put("race.jpg", JPEG_BYTES + b"\x01"))
            p.invoke(s3_event(s3_record(BUCKET, "race.jpg", size=len(JPEG_BYTES) + 1, version_id=newer[0])))

    p.rekognition.client.meta.events.register("provide-client-params.rekognition.DetectFaces", upload_meanwhile)
    p.rekognition.respond(detect_faces_response(3))  # the live event's call (made inside the task's)
    p.rekognition.respond(detect_faces_response(1))  # the task's

    result = bo.task("race.jpg", older)

    # Then the task ends with nothing to do, and the live result stands, with its faces alone
    assert code_and_text(result) == succeeded("SKIPPED superseded by a newer event")
    assert [c["Image"]["S3Object"]["Version"] for c in bo.detect_calls] == [older, newer[0]]
    image = bo.stored("race.jpg")
    assert image is not None and (image.status, image.version_id, image.face_count) == ("DETECTED", newer[0], 3)
    assert len(p.aws.items("race.jpg")) == 2  # META and the live result's chunk: the task's chunk is gone


def test_a_live_event_after_a_task_result_still_wins(bo: Backlog) -> None:
    older = bo.p.aws.put("later.jpg", JPEG_BYTES)
    bo.p.rekognition.respond(detect_faces_response(1))
    assert code_and_text(bo.task("later.jpg", older)) == succeeded("DETECTED 1 face")

    newer = live_upload(bo.p, "later.jpg", JPEG_BYTES + b"\x02", faces=2)

    image = bo.stored("later.jpg")
    assert image is not None and (image.version_id, image.face_count) == (newer, 2)


@pytest.mark.parametrize("removal", ["ObjectRemoved:DeleteMarkerCreated", "ObjectRemoved:Delete"])
def test_a_task_for_a_deleted_object_succeeds_with_nothing_to_do(bo: Backlog, removal: str) -> None:
    # Given an analysed object, then deleted (a delete marker, or its only version for good), the removal recorded
    version = live_upload(bo.p, "gone.jpg")
    if removal.endswith("DeleteMarkerCreated"):
        removed = bo.p.aws.s3.delete_object(Bucket=BUCKET, Key="gone.jpg")["VersionId"]
    else:
        removed = bo.p.aws.s3.delete_object(Bucket=BUCKET, Key="gone.jpg", VersionId=version)["VersionId"]
    assert bo.p.invoke(s3_event(s3_record(BUCKET, "gone.jpg", event_name=removal, version_id=removed)))

    result = bo.task("gone.jpg", version)

    assert code_and_text(result) == succeeded("SKIPPED backfill: the object was deleted")
    assert status_of(bo, "gone.jpg") == "DELETED"  # the tombstone stays
    assert len(bo.detect_calls) == 1


# ---- rejects and unreadable objects: PermanentFailure, recorded, no DLQ ------------------------------------


def test_a_rejected_image_is_a_permanent_failure_recorded_rejected(bo: Backlog) -> None:
    version = bo.p.aws.put("notes.jpg", b"just some text, not an image")

    result = bo.task("notes.jpg", version)

    assert result["resultCode"] == "PermanentFailure"
    assert result["resultString"].startswith("REJECTED InvalidImageFormatException: not a JPEG or PNG")
    image = bo.stored("notes.jpg")
    assert image is not None and image.status == "REJECTED"
    assert image.reason == result["resultString"].removeprefix("REJECTED ")
    assert bo.detect_calls == []  # the pre-check, before any Rekognition call
    assert bo.p.aws.dlq_messages() == []
    assert bo.p.metrics()["BacklogTasksPermanentFailure"] == 1


def test_rekognitions_reject_is_a_permanent_failure_too(bo: Backlog) -> None:
    version = bo.p.aws.put("odd.jpg", JPEG_BYTES)
    bo.p.rekognition.fail("InvalidImageFormatException", "Request has invalid image format")

    result = bo.task("odd.jpg", version)

    assert code_and_text(result) == {
        "resultCode": "PermanentFailure",
        "resultString": "REJECTED InvalidImageFormatException: Request has invalid image format",
    }
    assert status_of(bo, "odd.jpg") == "REJECTED"


@pytest.mark.parametrize("version", [None, "3HL4kqtJvjVBH40Nrjfkd"])
def test_a_missing_object_is_a_permanent_failure_recorded_failed_and_not_dead_lettered(
    bo: Backlog, version: str | None
) -> None:
    # Given a task naming an object the bucket never had (a wrong manifest), no removal of it recorded
    result = bo.task("nowhere.jpg", version)

    expected = "FAILED InvalidS3ObjectException: S3 has no such object (404, or 403 to a role without s3:ListBucket)"
    assert code_and_text(result) == {"resultCode": "PermanentFailure", "resultString": expected}
    image = bo.stored("nowhere.jpg")
    assert image is not None and (image.status, image.reason) == ("TASK_FAILED", expected.removeprefix("FAILED "))
    assert bo.detect_calls == []
    assert bo.p.aws.dlq_messages() == []  # the job's completion report is the failure record


def test_a_403_for_a_missing_key_is_what_aws_answers_the_role_and_ends_failed_too(bo: Backlog) -> None:
    # In AWS the role has no s3:ListBucket, so a HEAD of a key that is not there answers 403, not 404 (moto 404s)
    from tests.helpers import fail_calls

    fail_calls(bo.p.aws.s3, "HeadObject", "403", {1})
    result = bo.task("nowhere.jpg")

    assert result["resultCode"] == "PermanentFailure" and "S3 has no such object" in result["resultString"]
    assert status_of(bo, "nowhere.jpg") == "TASK_FAILED" and bo.detect_calls == []


def test_an_object_rekognition_cannot_read_is_a_permanent_failure_recorded_failed(bo: Backlog) -> None:
    version = bo.p.aws.put("sealed.jpg", JPEG_BYTES)
    bo.p.rekognition.fail("InvalidS3ObjectException", "Unable to get object metadata from S3")

    result = bo.task("sealed.jpg", version)

    assert code_and_text(result) == {
        "resultCode": "PermanentFailure",
        "resultString": "FAILED InvalidS3ObjectException: Unable to get object metadata from S3",
    }
    assert status_of(bo, "sealed.jpg") == "TASK_FAILED"
    assert bo.p.aws.dlq_messages() == []


def test_a_failed_object_is_taken_again_by_a_new_job(bo: Backlog) -> None:
    version = bo.p.aws.put("flaky.jpg", JPEG_BYTES)
    bo.p.rekognition.fail("InvalidS3ObjectException", "Unable to get object metadata from S3")
    assert bo.task("flaky.jpg", version)["resultCode"] == "PermanentFailure"
    bo.p.rekognition.respond(detect_faces_response(1))

    assert code_and_text(bo.task("flaky.jpg", version)) == succeeded("DETECTED 1 face")
    assert status_of(bo, "flaky.jpg") == "DETECTED"


# ---- throttling and 5xx: TemporaryFailure, fast, the claim released ----------------------------------------


def test_throttling_is_a_fast_temporary_failure_and_the_retry_succeeds(bo: Backlog) -> None:
    # Given DetectFaces throttled on every attempt the backlog makes (its budget: 2, not the live 10)
    assert backlog.get_processor().settings.detect_max_attempts == Settings.backlog_detect_max_attempts == 2
    version = bo.p.aws.put("busy.jpg", JPEG_BYTES)
    for _ in range(2):
        bo.p.rekognition.fail("ThrottlingException", "Rate exceeded")

    result = bo.task("busy.jpg", version)

    # Then the task is handed back to Batch Operations after two calls, the claim released for its retry
    assert code_and_text(result) == {
        "resultCode": "TemporaryFailure",
        "resultString": "ThrottlingException: Rate exceeded",
    }
    assert len(bo.detect_calls) == 2  # more calls would find no stubbed answer and fail the test
    assert status_of(bo, "busy.jpg") == "RETRYING"
    metrics = bo.p.metrics()
    assert (metrics["ThrottledRetries"], metrics["BacklogTasksTemporaryFailure"]) == (1, 1)
    assert bo.p.aws.dlq_messages() == []

    # When Batch Operations retries the task (a new invocation, a new request)
    bo.p.rekognition.respond(detect_faces_response(1))
    assert code_and_text(bo.task("busy.jpg", version)) == succeeded("DETECTED 1 face")
    assert status_of(bo, "busy.jpg") == "DETECTED"


@pytest.mark.parametrize(
    ("code", "status", "calls"),
    [("InternalServerError", 500, 2), ("ServiceUnavailableException", 503, 1)],
)
def test_a_5xx_is_a_temporary_failure(bo: Backlog, code: str, status: int, calls: int) -> None:
    version = bo.p.aws.put("5xx.jpg", JPEG_BYTES)
    for _ in range(calls):  # InternalServerError gets the short retry; other 5xx none
        bo.p.rekognition.fail(code, "try again", status=status)

    result = bo.task("5xx.jpg", version)

    assert code_and_text(result) == {"resultCode": "TemporaryFailure", "resultString": f"{code}: try again"}
    assert len(bo.detect_calls) == calls
    assert status_of(bo, "5xx.jpg") == "RETRYING"


def test_a_throttled_claim_is_a_temporary_failure_with_nothing_written(bo: Backlog) -> None:
    version = bo.p.aws.put("claim.jpg", JPEG_BYTES)
    fail_calls(bo.p.aws.dynamodb, "UpdateItem", "ProvisionedThroughputExceededException", {1})

    result = bo.task("claim.jpg", version)

    assert result["resultCode"] == "TemporaryFailure"
    assert result["resultString"].startswith("ProvisionedThroughputExceededException:")
    assert bo.stored("claim.jpg") is None and bo.detect_calls == []


def test_another_invocations_live_claim_is_a_temporary_failure_until_its_lease_ends(bo: Backlog) -> None:
    # Given a task whose invocation died inside DetectFaces, its claim still live
    version = bo.p.aws.put("held.jpg", JPEG_BYTES)
    fail_calls(bo.p.rekognition.client, "DetectFaces", SandboxKilled(), {1})
    with pytest.raises(SandboxKilled):
        bo.task("held.jpg", version)

    # When Batch Operations runs it again within the lease: it is not counted done
    busy = bo.task("held.jpg", version)
    assert busy["resultCode"] == "TemporaryFailure" and busy["resultString"].startswith("ImageBusyError:")
    assert status_of(bo, "held.jpg") == "PROCESSING"

    # Once the lease has run out, the next retry takes the image
    bo.p.clock.advance(91)
    bo.p.rekognition.respond(detect_faces_response(1))
    assert code_and_text(bo.task("held.jpg", version)) == succeeded("DETECTED 1 face")


@pytest.mark.parametrize("left", ["RETRYING", "PROCESSING"])
def test_a_task_is_succeeded_only_when_the_current_version_has_an_outcome(bo: Backlog, left: str) -> None:
    # Given a live event that gave up on the object: its attempt failed (RETRYING, the failure record in the DLQ
    # after Lambda's retries) or died inside DetectFaces (PROCESSING)
    version = bo.p.aws.put("gave-up.jpg", JPEG_BYTES)
    record = s3_record(BUCKET, "gave-up.jpg", size=len(JPEG_BYTES), version_id=version)
    if left == "RETRYING":
        for _ in range(10):
            bo.p.rekognition.fail("ThrottlingException")
        with pytest.raises(Exception, match="Throttling"):
            bo.p.invoke(s3_event(record))
    else:
        fail_calls(bo.p.rekognition.client, "DetectFaces", SandboxKilled(), {1})
        with pytest.raises(SandboxKilled):
            bo.p.invoke(s3_event(record))
    assert status_of(bo, "gave-up.jpg") == left

    # When a backlog task names the object: a live claim is a TemporaryFailure, never "Succeeded"
    if left == "PROCESSING":
        busy = bo.task("gave-up.jpg", version)
        assert busy["resultCode"] == "TemporaryFailure" and busy["resultString"].startswith("ImageBusyError:")
        bo.p.clock.advance(91)  # the dead attempt's lease runs out

    # Then a released (or expired) claim is taken: Succeeded means the current version has its result
    bo.p.rekognition.respond(detect_faces_response(2))
    assert code_and_text(bo.task("gave-up.jpg", version)) == succeeded("DETECTED 2 faces")
    image = bo.stored("gave-up.jpg")
    assert image is not None and (image.status, image.version_id, image.face_count) == ("DETECTED", version, 2)


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        ("AccessDeniedException", "PermanentFailure", "AccessDeniedException: injected AccessDeniedException"),
        (RuntimeError("DetectFaces exploded"), "PermanentFailure", "RuntimeError: DetectFaces exploded"),
        (
            EndpointConnectionError(endpoint_url="https://rekognition.us-east-1.amazonaws.com/"),
            "TemporaryFailure",
            'EndpointConnectionError: Could not connect to the endpoint URL: "https://rekognition.us-east-1.amazonaws.com/"',
        ),
    ],
    ids=["aws-configuration-fault", "a-bug", "no-connection"],
)
def test_other_errors_are_permanent_unless_they_are_worth_a_retry(
    bo: Backlog, error: Any, code: str, text: str
) -> None:
    version = bo.p.aws.put("odd-error.jpg", JPEG_BYTES)
    fail_calls(bo.p.rekognition.client, "DetectFaces", error, {1})

    result = bo.task("odd-error.jpg", version)

    assert code_and_text(result) == {"resultCode": code, "resultString": text}
    assert status_of(bo, "odd-error.jpg") == "RETRYING"  # released: a retry, or a later job, takes it again


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "HostId": "",
                "RequestId": "",
                "RetryAttempts": 0,
            },
        },
        "Op",
    )


@pytest.mark.parametrize(
    ("exc", "temporary"),
    [
        (_client_error("ThrottlingException", 400), True),
        (_client_error("ProvisionedThroughputExceededException", 400), True),
        (_client_error("LimitExceededException", 400), True),
        (_client_error("RequestLimitExceeded", 400), True),
        (_client_error("SlowDown", 503), True),
        (_client_error("InternalServerError", 500), True),
        (_client_error("SomethingNew", 502), True),  # any 5xx
        (ImageBusyError("held"), True),
        (ReadTimeoutError(endpoint_url="https://x"), True),
        (_client_error("AccessDeniedException", 400), False),
        (_client_error("ValidationException", 400), False),
        (_client_error("InvalidS3ObjectException", 400), False),
        (ValueError("bug"), False),
    ],
)
def test_what_is_temporary_is_explicit(exc: BaseException, temporary: bool) -> None:
    assert backlog.is_temporary(exc) is temporary


# ---- several tasks, malformed tasks and events -------------------------------------------------------------


def test_every_task_of_an_event_gets_its_own_result(bo: Backlog) -> None:
    ok = bo.p.aws.put("many/ok.jpg", JPEG_BYTES)
    text = bo.p.aws.put("many/text.jpg", b"not an image at all")
    tasks = [
        batch_task("many/ok.jpg", ok),
        batch_task("many/text.jpg", text),
        {"taskId": "no-key", "s3Bucket": BUCKET, "s3VersionId": None},
        batch_task("many/nowhere.jpg"),
    ]
    bo.p.rekognition.respond(detect_faces_response(2))

    response = bo.run(batch_operations_event(tasks))

    assert [r["taskId"] for r in response["results"]] == [t["taskId"] for t in tasks]
    assert [r["resultCode"] for r in response["results"]] == [
        "Succeeded",
        "PermanentFailure",
        "PermanentFailure",
        "PermanentFailure",
    ]
    assert response["results"][1]["resultString"].startswith("REJECTED ")
    assert response["results"][2]["resultString"] == "malformed task: the task has no valid 's3Key'"
    assert response["results"][3]["resultString"].startswith("FAILED ")
    assert (status_of(bo, "many/ok.jpg"), status_of(bo, "many/text.jpg")) == ("DETECTED", "REJECTED")


@pytest.mark.parametrize(
    ("task", "reason"),
    [
        ({"taskId": "t", "s3Bucket": BUCKET}, "the task has no valid 's3Key'"),
        ({"taskId": "t", "s3Key": "a.jpg"}, "the task has no valid 's3Bucket'"),
        ({"taskId": "t", "s3Key": "", "s3Bucket": BUCKET}, "object key '' is not a non-empty string"),
        ({"taskId": "t", "s3Key": 7, "s3Bucket": BUCKET}, "the task has no valid"),
        ({"taskId": "t", "s3Key": "a.jpg", "s3BucketArn": "arn:aws:s3:::"}, "bucket name '' is not a non-empty"),
        ({"taskId": "t", "s3Key": "a.jpg", "s3Bucket": BUCKET, "s3VersionId": 5}, "version id 5 is not a string"),
        ("not a task", "the task has no valid"),
    ],
)
def test_a_malformed_task_is_a_permanent_failure_not_a_crash(bo: Backlog, task: Any, reason: str) -> None:
    event = batch_operations_event([task])

    (result,) = bo.run(event)["results"]

    assert result["resultCode"] == "PermanentFailure"
    assert result["resultString"].startswith(f"malformed task: {reason}")
    assert result["taskId"] == (task["taskId"] if isinstance(task, dict) else "")
    assert bo.detect_calls == [] and bo.p.aws.items("a.jpg") == []


@pytest.mark.parametrize(
    "event",
    [
        {"invocationSchemaVersion": "2.0", "invocationId": "i", "job": {"id": "j"}},
        {"invocationSchemaVersion": "3.0", "invocationId": "i", "job": {"id": "j"}, "tasks": []},
        {"Records": []},
    ],
    ids=["no-tasks", "unknown-schema", "an-s3-notification"],
)
def test_an_event_that_is_not_a_batch_operations_invocation_fails_the_invocation(
    bo: Backlog, event: dict[str, Any]
) -> None:
    with pytest.raises(InvalidEventError):
        bo.run(event)


# ---- settings and cold start -------------------------------------------------------------------------------


def test_the_backlog_detect_faces_budget_is_its_own_setting() -> None:
    env: dict[str, str] = {
        EnvVar.RESULTS_TABLE: "t",
        EnvVar.FAILURE_QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/1/q",
    }
    live = Settings.from_env({**env, EnvVar.DETECT_MAX_ATTEMPTS: "10", EnvVar.BACKLOG_DETECT_MAX_ATTEMPTS: "3"})
    assert (live.detect_max_attempts, live.for_backlog().detect_max_attempts) == (10, 3)
    assert Settings.from_env(live.to_env()) == live
    assert Settings.from_env(env).for_backlog().detect_max_attempts == 2
    with pytest.raises(ConfigurationError, match="BACKLOG_DETECT_MAX_ATTEMPTS"):
        Settings.from_env({**env, EnvVar.BACKLOG_DETECT_MAX_ATTEMPTS: "0"})
    assert backlog.build_processor(settings=live).settings.detect_max_attempts == 3
    # and its backoff window: wider than the live function's, so a throttled backlog thins out its calls
    assert (live.backoff_base_seconds, live.for_backlog().backoff_base_seconds) == (0.25, 1.0)
    wider = Settings.from_env({**env, EnvVar.BACKLOG_BACKOFF_BASE_SECONDS: "2.5"})
    assert wider.for_backlog().backoff_base_seconds == 2.5 and wider.backoff_base_seconds == 0.25
    with pytest.raises(ConfigurationError, match="BACKLOG_BACKOFF_BASE_SECONDS"):
        Settings.from_env({**env, EnvVar.BACKLOG_BACKOFF_BASE_SECONDS: "-1"})


IMPORTS = """
import json, sys
from detect_faces import handler
handler.build_processor()
live = sorted(m for m in sys.modules if m.startswith("aws_lambda_powertools.utilities.data_classes"))
from detect_faces import backlog
backlog.build_processor()
print(json.dumps({"live": live, "backlog": "aws_lambda_powertools.utilities.data_classes.s3_batch_operation_event"
                  in sys.modules}))
"""


def test_only_the_backlog_imports_powertools_data_classes() -> None:
    env = {"RESULTS_TABLE": "t", "FAILURE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q",
           "AWS_DEFAULT_REGION": "us-east-1", **FAKE_CREDENTIALS}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", IMPORTS], env=env, capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"live": [], "backlog": True}
