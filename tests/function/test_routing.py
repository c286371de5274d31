"""Each row of the routing table (docs/DESIGN.md, "What happens to each upload"), through the real handler, against moto
and a stubbed Rekognition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from detect_faces.results import ImageResult, ResultsStore
from detect_faces.settings import Settings
from tests.helpers import (
    BUCKET,
    JPEG_BYTES,
    PNG_80,
    PNG_TINY,
    TABLE,
    Aws,
    FakeContext,
    Pipeline,
    Rekognition,
    captured_logs,
    detect_faces_response,
    s3_event,
    s3_record,
    s3_test_event,
)

pytestmark = pytest.mark.integration
ATTEMPTS = Settings.detect_max_attempts  # the in-invocation DetectFaces budget


def stored(p: Pipeline, key: str) -> ImageResult:
    found = ResultsStore(p.aws.dynamodb, TABLE).get(BUCKET, key)
    assert found is not None, f"no result stored for {key}"
    return found


def upload_event(p: Pipeline, key: str, body: bytes = JPEG_BYTES, **kw: Any) -> tuple[dict[str, Any], str]:
    version = p.aws.put(key, body)
    return s3_record(BUCKET, key, size=len(body), version_id=version, **kw), version


# ---- faces found, or none: DETECTED -------------------------------------------------------------


def test_faces_found_are_stored_with_everything_known_about_the_image(pipeline: Pipeline) -> None:
    # Given an uploaded JPEG and Rekognition finding two faces
    record, version = upload_event(pipeline, "photos/team.jpg")
    response = detect_faces_response(2)
    pipeline.rekognition.respond(response)

    # When the upload event arrives
    result = pipeline.invoke(s3_event(record))

    # Then DetectFaces read the S3 object (that version) directly, and the result holds every face exactly
    assert pipeline.rekognition.calls == [
        {
            "Image": {"S3Object": {"Bucket": BUCKET, "Name": "photos/team.jpg", "Version": version}},
            "Attributes": ["DEFAULT"],
        }
    ]
    assert result == {"records": [{"key": "photos/team.jpg", "outcome": "detected", "faces": 2}]}
    image = stored(pipeline, "photos/team.jpg")
    assert image.status == "DETECTED"
    assert (image.bucket, image.key, image.version_id) == (BUCKET, "photos/team.jpg", version)
    assert image.size == len(JPEG_BYTES)
    assert image.etag and image.sequencer and image.finished_at and image.event_time
    assert image.attributes == "DEFAULT"
    assert image.face_count == 2
    assert image.faces == response["FaceDetails"]
    assert pipeline.metrics()["ImagesDetected"] == 1
    assert pipeline.aws.dlq_messages() == []


def test_no_faces_is_a_result_too(pipeline: Pipeline) -> None:
    record, _ = upload_event(pipeline, "coffee.png", PNG_80)
    pipeline.rekognition.respond({"FaceDetails": []})

    pipeline.invoke(s3_event(record))

    image = stored(pipeline, "coffee.png")
    assert (image.status, image.face_count, image.faces) == ("DETECTED", 0, [])
    metrics = pipeline.metrics()
    assert metrics["ImagesDetected"] == 1
    assert metrics["FacesFound"] == 0


def test_attributes_all_is_requested_when_configured(
    aws: Aws, rekognition: Rekognition, capsys: pytest.CaptureFixture[str]
) -> None:
    from detect_faces import handler
    from tests.helpers import make_pipeline

    p = make_pipeline(aws, rekognition, capsys, attributes="ALL")
    try:
        record, _ = upload_event(p, "a.jpg")
        response = detect_faces_response(1, attributes="ALL")
        rekognition.respond(response)
        p.invoke(s3_event(record))
        assert rekognition.calls[0]["Attributes"] == ["ALL"]
        image = stored(p, "a.jpg")
        assert image.attributes == "ALL"
        assert image.faces == response["FaceDetails"]
    finally:
        handler.set_processor(None)


def test_a_hundred_faces_with_all_attributes_store_completely(pipeline: Pipeline) -> None:
    # Given the largest answer DetectFaces gives: 100 faces, every attribute (well over 400 KB as one item)
    record, _ = upload_event(pipeline, "crowd.jpg")
    response = detect_faces_response(100, attributes="ALL")
    assert len(json.dumps(response)) > 300_000
    pipeline.rekognition.respond(response)

    pipeline.invoke(s3_event(record))

    # Then one query gives back every face, every number exactly as Rekognition returned it
    image = stored(pipeline, "crowd.jpg")
    assert image.face_count == 100
    assert image.faces == response["FaceDetails"]
    assert json.dumps(image.faces) == json.dumps(response["FaceDetails"])
    items = pipeline.aws.items("crowd.jpg")
    chunk_bytes = [len(i["faces_json_gzip"]["B"]) for i in items if "faces_json_gzip" in i]
    assert len(items) == 2 and chunk_bytes[0] < 110_000  # META and one gzip-JSON chunk, far below 400 KB


# ---- images Rekognition cannot analyse: REJECTED, no retry, no DLQ ------------------------------


@pytest.mark.parametrize("code", ["InvalidImageFormatException", "ImageTooLargeException", "InvalidParameterException"])
def test_rekognition_rejections_are_recorded_not_retried(pipeline: Pipeline, code: str) -> None:
    record, _ = upload_event(pipeline, "bad.jpg")
    pipeline.rekognition.fail(code, "Request has invalid image format")

    result = pipeline.invoke(s3_event(record))

    assert result["records"][0] == {"key": "bad.jpg", "outcome": "rejected", "reason": code}
    image = stored(pipeline, "bad.jpg")
    assert image.status == "REJECTED"
    assert image.reason == f"{code}: Request has invalid image format"
    assert len(pipeline.rekognition.calls) == 1
    assert pipeline.sleeps == []
    assert pipeline.aws.dlq_messages() == []
    assert pipeline.metrics()["ImagesRejected"] == 1


@pytest.mark.parametrize(
    ("key", "body", "size", "reason"),
    [
        ("empty.jpg", b"", 0, "EmptyObject"),
        ("notes.JPG", b"these are not the pixels you are looking for", None, "InvalidImageFormatException"),
        ("page.png", b"<html><body>hello</body></html>", None, "InvalidImageFormatException"),
        ("icon.png", PNG_TINY, None, "InvalidParameterException"),
        ("huge.jpg", JPEG_BYTES, 15 * 1024 * 1024 + 1, "ImageTooLargeException"),
    ],
)
def test_prechecks_reject_without_spending_a_rekognition_call(
    pipeline: Pipeline, key: str, body: bytes, size: int | None, reason: str
) -> None:
    version = pipeline.aws.put(key, body)
    record = s3_record(BUCKET, key, size=len(body) if size is None else size, version_id=version)

    result = pipeline.invoke(s3_event(record))

    assert result["records"][0]["outcome"] == "rejected"
    assert result["records"][0]["reason"] == reason
    assert stored(pipeline, key).status == "REJECTED"
    assert str(stored(pipeline, key).reason).startswith(reason)
    assert pipeline.rekognition.calls == []
    assert pipeline.aws.dlq_messages() == []


def test_object_larger_than_15mb_is_rejected_even_when_the_event_has_no_size(pipeline: Pipeline) -> None:
    body = JPEG_BYTES + b"\x00" * (15 * 1024 * 1024)
    version = pipeline.aws.put("big.jpg", body)
    pipeline.invoke(s3_event(s3_record(BUCKET, "big.jpg", size=None, version_id=version)))
    assert str(stored(pipeline, "big.jpg").reason).startswith("ImageTooLargeException")
    assert pipeline.rekognition.calls == []


# ---- object unreadable: straight to the DLQ --------------------------------------------------------


def assert_failure_record(
    message: dict[str, Any], record: dict[str, Any], error_type: str, context: FakeContext
) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(message["Body"])
    assert set(body) == {"version", "timestamp", "requestContext", "requestPayload", "responseContext",
                         "responsePayload"}  # fmt: skip
    assert body["requestContext"]["requestId"] == context.aws_request_id
    assert body["requestContext"]["functionArn"] == context.invoked_function_arn
    assert body["requestPayload"] == {"Records": [record]}  # what a redrive replays: this record only
    assert body["responsePayload"]["errorType"] == error_type
    assert message["MessageAttributes"]["errorType"]["StringValue"] == error_type
    return body


def test_invalid_s3_object_goes_straight_to_the_dlq(pipeline: Pipeline) -> None:
    record, _ = upload_event(pipeline, "gone.jpg")
    other, _ = upload_event(pipeline, "fine.jpg")
    pipeline.rekognition.fail("InvalidS3ObjectException", "Unable to get object metadata from S3")
    pipeline.rekognition.respond(detect_faces_response(1))

    result = pipeline.invoke(s3_event(record, other))

    assert [r["outcome"] for r in result["records"]] == ["dead_lettered", "detected"]
    (message,) = pipeline.aws.dlq_messages()
    body = assert_failure_record(message, record, "InvalidS3ObjectException", pipeline.context)
    assert body["responsePayload"]["errorMessage"] == "Unable to get object metadata from S3"
    assert len(pipeline.rekognition.calls) == 2  # no retry of the unreadable one
    assert pipeline.sleeps == []
    assert stored(pipeline, "gone.jpg").status == "DEAD_LETTERED"
    assert pipeline.metrics()["ImagesSentToDLQ"] == 1


def test_object_deleted_before_processing_goes_to_the_dlq_without_a_rekognition_call(pipeline: Pipeline) -> None:
    record, version = upload_event(pipeline, "ephemeral.jpg")
    pipeline.aws.s3.delete_object(Bucket=BUCKET, Key="ephemeral.jpg", VersionId=version)

    pipeline.invoke(s3_event(record))

    (message,) = pipeline.aws.dlq_messages()
    body = assert_failure_record(message, record, "InvalidS3ObjectException", pipeline.context)
    assert "NoSuch" in body["responsePayload"]["errorMessage"]
    assert pipeline.rekognition.calls == []


def test_a_403_on_the_precheck_is_a_missing_or_unreadable_object_not_a_retry(pipeline: Pipeline) -> None:
    # In AWS the role has no s3:ListBucket: a GET of a key deleted before processing answers 403 AccessDenied
    from tests.helpers import fail_calls

    record, _ = upload_event(pipeline, "gone-in-aws.jpg")
    fail_calls(pipeline.aws.s3, "GetObject", "AccessDenied", {1})

    pipeline.invoke(s3_event(record))  # no exception: Lambda does not retry what retrying cannot fix

    (message,) = pipeline.aws.dlq_messages()
    body = assert_failure_record(message, record, "InvalidS3ObjectException", pipeline.context)
    assert "S3 AccessDenied: the object is missing" in body["responsePayload"]["errorMessage"]
    assert stored(pipeline, "gone-in-aws.jpg").status == "DEAD_LETTERED" and pipeline.rekognition.calls == []


def test_bucket_in_another_region_goes_to_the_dlq_with_a_clear_reason(pipeline: Pipeline) -> None:
    record, _ = upload_event(pipeline, "far.jpg", region="eu-west-1")
    pipeline.invoke(s3_event(record))
    (message,) = pipeline.aws.dlq_messages()
    body = assert_failure_record(message, record, "InvalidS3ObjectException", pipeline.context)
    assert "eu-west-1" in body["responsePayload"]["errorMessage"]
    assert pipeline.rekognition.calls == []


# ---- throttling and InternalServerError: backoff inside, then fail the invocation ------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("ProvisionedThroughputExceededException", 400), ("InternalServerError", 500)],
)
def test_transient_errors_are_retried_with_backoff_and_then_succeed(pipeline: Pipeline, code: str, status: int) -> None:
    record, _ = upload_event(pipeline, "busy.jpg")
    pipeline.rekognition.fail(code, status=status)
    pipeline.rekognition.fail(code, status=status)
    pipeline.rekognition.respond(detect_faces_response(1))

    pipeline.invoke(s3_event(record))

    assert len(pipeline.rekognition.calls) == 3
    assert len(pipeline.sleeps) == 2
    assert 0 <= pipeline.sleeps[0] <= 0.25 and 0 <= pipeline.sleeps[1] <= 0.5  # full jitter, doubling cap
    assert stored(pipeline, "busy.jpg").status == "DETECTED"
    expected_throttles = 0 if code == "InternalServerError" else 2
    assert pipeline.metrics().get("ThrottledRetries", 0) == expected_throttles


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("ProvisionedThroughputExceededException", 400), ("InternalServerError", 500)],
)
def test_transient_errors_past_the_budget_fail_the_invocation_for_lambda_to_retry(
    pipeline: Pipeline, code: str, status: int
) -> None:
    record, _ = upload_event(pipeline, "busy.jpg")
    for _ in range(ATTEMPTS):
        pipeline.rekognition.fail(code, status=status)

    with pytest.raises(ClientError) as raised:
        pipeline.invoke(s3_event(record))

    # Lambda records the exception's class name as errorType in its on-failure destination record
    assert type(raised.value).__name__ == code
    assert len(pipeline.rekognition.calls) == ATTEMPTS
    assert len(pipeline.sleeps) == ATTEMPTS - 1
    image = stored(pipeline, "busy.jpg")
    assert image.status == "RETRYING" and str(image.reason).startswith(code)
    assert pipeline.aws.dlq_messages() == []  # Lambda's on-failure destination writes it after its own retries

    # When Lambda retries the same event later and Rekognition has capacity again, it goes through
    pipeline.rekognition.respond(detect_faces_response(1))
    pipeline.invoke(s3_event(record))
    assert stored(pipeline, "busy.jpg").status == "DETECTED"


def test_throttling_stops_retrying_before_the_invocation_times_out(pipeline: Pipeline) -> None:
    record, _ = upload_event(pipeline, "late.jpg")
    pipeline.context.remaining_ms = 4_000  # less than the 5 s safety margin
    pipeline.rekognition.fail("ThrottlingException")

    with pytest.raises(ClientError):
        pipeline.invoke(s3_event(record))
    assert pipeline.sleeps == []
    assert stored(pipeline, "late.jpg").status == "RETRYING"


# ---- configuration faults: fail the invocation (alarm), DLQ after Lambda's retries -----------------


def test_access_denied_fails_the_invocation_at_once(pipeline: Pipeline) -> None:
    record, _ = upload_event(pipeline, "secret.jpg")
    pipeline.rekognition.fail("AccessDeniedException", "not authorized to perform rekognition:DetectFaces")

    with pytest.raises(ClientError) as raised:
        pipeline.invoke(s3_event(record))

    assert type(raised.value).__name__ == "AccessDeniedException"
    assert len(pipeline.rekognition.calls) == 1
    assert pipeline.sleeps == []
    assert stored(pipeline, "secret.jpg").status == "RETRYING"
    assert pipeline.aws.dlq_messages() == []
    assert pipeline.metrics()["RecordErrors"] == 1


# ---- ObjectRemoved: face data follows the bucket ------------------------------------------------


def test_object_removed_deletes_the_results(pipeline: Pipeline) -> None:
    record, _version = upload_event(pipeline, "bye.jpg")
    pipeline.rekognition.respond(detect_faces_response(3))
    pipeline.invoke(s3_event(record))
    assert stored(pipeline, "bye.jpg").face_count == 3

    pipeline.aws.s3.delete_object(Bucket=BUCKET, Key="bye.jpg")
    result = pipeline.invoke(s3_event(s3_record(BUCKET, "bye.jpg", event_name="ObjectRemoved:DeleteMarkerCreated")))

    assert result["records"][0]["outcome"] == "deleted"
    image = stored(pipeline, "bye.jpg")
    assert image.status == "DELETED" and image.faces == [] and image.version_id is None
    assert [i["sk"]["S"] for i in pipeline.aws.items("bye.jpg")] == ["META"]  # no face data left

    # A late duplicate of the creation event cannot bring the results back
    pipeline.invoke(s3_event(record))
    assert stored(pipeline, "bye.jpg").status == "DELETED"
    assert len(pipeline.rekognition.calls) == 1


def test_deleting_an_older_version_keeps_the_current_result(pipeline: Pipeline) -> None:
    _old_record, old_version = upload_event(pipeline, "v.jpg")
    new_record, new_version = upload_event(pipeline, "v.jpg")
    pipeline.rekognition.respond(detect_faces_response(1))
    pipeline.invoke(s3_event(new_record))

    removal = s3_record(BUCKET, "v.jpg", event_name="ObjectRemoved:Delete", version_id=old_version)
    result = pipeline.invoke(s3_event(removal))

    assert result["records"][0]["outcome"] == "skipped"
    image = stored(pipeline, "v.jpg")
    assert (image.status, image.version_id) == ("DETECTED", new_version)


def test_s3_test_event_is_skipped(pipeline: Pipeline) -> None:
    assert pipeline.invoke(s3_test_event(BUCKET)) == {"records": [], "skipped": "s3:TestEvent"}
    assert pipeline.rekognition.calls == []


def test_each_record_logs_its_aws_calls_latency_and_attempts(pipeline: Pipeline) -> None:
    # Given a DetectFaces that is throttled twice before it answers
    record, _ = upload_event(pipeline, "timed.jpg")
    pipeline.rekognition.fail("ThrottlingException")
    pipeline.rekognition.fail("ThrottlingException")
    pipeline.rekognition.respond(detect_faces_response(2))

    with captured_logs() as lines:
        pipeline.invoke(s3_event(record))

    # Then the record's outcome line says what each AWS call cost
    (line,) = [entry for entry in lines if entry["message"] == "faces stored"]
    calls = line["aws_calls"]
    assert calls["DetectFaces"]["calls"] == 3 and calls["DetectFaces"]["attempts"] == 3
    assert calls["DetectFaces"]["errors"] == 2
    assert calls["GetObject"]["calls"] == 1  # the 32-byte pre-check
    assert calls["UpdateItem"]["calls"] == 2  # the claim and the result
    assert all(entry["ms"] >= 0 for entry in calls.values())
    # and every DetectFaces call is a DetectFacesLatency value (milliseconds)
    assert pipeline.metrics_values()["DetectFacesLatency"] == pytest.approx([0.0] * 3, abs=1000)


def test_the_calls_of_one_record_are_not_counted_in_the_next(pipeline: Pipeline) -> None:
    first, _ = upload_event(pipeline, "one.jpg")
    second, _ = upload_event(pipeline, "two.jpg")
    pipeline.rekognition.respond(detect_faces_response(1))
    pipeline.rekognition.respond(detect_faces_response(1))

    with captured_logs() as lines:
        pipeline.invoke(s3_event(first, second))

    stored_lines = [entry for entry in lines if entry["message"] == "faces stored"]
    assert [entry["aws_calls"]["DetectFaces"]["calls"] for entry in stored_lines] == [1, 1]


def test_the_documented_snippet_reads_a_result_without_our_code(pipeline: Pipeline) -> None:
    # Given a stored 100-face result with every attribute
    record, _ = upload_event(pipeline, "crowd.jpg")
    response = detect_faces_response(100, attributes="ALL")
    pipeline.rekognition.respond(response)
    pipeline.invoke(s3_event(record))

    # When the snippet of docs/DESIGN.md (boto3 and the standard library only) reads it
    design = (Path(__file__).resolve().parents[2] / "docs" / "DESIGN.md").read_text()
    snippet = design.split("<!-- read-result-snippet -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "docs/DESIGN.md", "exec"), namespace)
    meta, faces = namespace["read_result"](TABLE, BUCKET, "crowd.jpg")

    # Then it gets every face exactly as Rekognition returned it
    assert meta["status"]["S"] == "DETECTED" and meta["face_count"]["N"] == "100"
    assert faces == response["FaceDetails"]
    assert json.dumps(faces) == json.dumps(response["FaceDetails"])
