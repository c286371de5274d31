"""Every emulator error path, through the real handler and local runtime, lands in its routing-table outcome."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from facepipe.common import photos
from facepipe.local.centerface import CenterFaceDetector
from facepipe.local.emulator import RekognitionError
from tests.helpers import Local, start_local

pytestmark = pytest.mark.e2e


def jpeg(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.open(photos.SAMPLES / "astronaut.jpg").convert("RGB").resize(size).save(out, format="JPEG")
    return out.getvalue()


def test_images_the_service_cannot_read_are_rejected_with_its_reason(local: Local) -> None:
    # JPEG magic bytes, so the function's pre-check lets them through to the (emulated) service
    local.upload("corrupt.jpg", b"\xff\xd8\xff\xe0" + b"\x13\x37" * 500)
    local.upload("small.jpg", jpeg((60, 60)))
    local.upload("text.png", b"hello, not a PNG")
    local.settle()
    calls = local.detect_calls
    reasons = {k: local.result(k).reason or "" for k in ("corrupt.jpg", "small.jpg", "text.png")}
    assert reasons["corrupt.jpg"].startswith("InvalidImageFormatException: Request has invalid image")
    assert reasons["small.jpg"].startswith("InvalidParameterException: Request has invalid parameters")
    assert reasons["text.png"].startswith("InvalidImageFormatException: not a JPEG or PNG")
    assert {local.result(k).status for k in ("corrupt.jpg", "small.jpg", "text.png")} == {"REJECTED"}
    assert calls == 2  # the text file never cost a DetectFaces call
    assert local.dlq() == []


def test_an_unreadable_object_goes_to_the_dlq_with_a_replayable_record(local: Local) -> None:
    # Given an event for an object that is not in the bucket (never stored, or removed unseen)
    assert local.p.runtime is not None
    record = {
        "eventName": "ObjectCreated:Put",
        "awsRegion": local.p.settings.region,
        "eventTime": "2026-11-28T12:00:00.000Z",
        "s3": {"bucket": {"name": local.p.bucket}, "object": {"key": "vanished.jpg",
                                                                "sequencer": "FFFFFFFFFFFFFFFFFF"}},
    }  # fmt: skip
    local.p.runtime.invoke_async({"Records": [record]})
    local.events += 1
    local.settle()

    (failure,) = local.dlq()
    assert failure["responsePayload"]["errorType"] == "InvalidS3ObjectException"
    assert failure["requestPayload"] == {"Records": [record]}
    assert local.result("vanished.jpg").status == "DEAD_LETTERED"


def test_a_late_create_of_a_version_deleted_for_good_ends_deleted_not_dead_lettered(local: Local) -> None:
    # Given a version analysed, then deleted for good (its removal event seen)
    version = local.upload("deleted.jpg", photos.photo("camera.jpg"))
    local.settle()
    local.s3.delete_object(Bucket=local.p.bucket, Key="deleted.jpg", VersionId=version)
    local.events += 1
    local.settle()
    calls = local.detect_calls
    assert local.p.runtime is not None
    record = {
        "eventName": "ObjectCreated:Put",
        "awsRegion": local.p.settings.region,
        "eventTime": "2026-11-28T12:00:00.000Z",
        "s3": {"bucket": {"name": local.p.bucket}, "object": {"key": "deleted.jpg", "versionId": version,
                                                                "sequencer": "FFFFFFFFFFFFFFFFFF"}},
    }  # fmt: skip

    # When a create event of that version arrives late (S3 delivers in no order)
    local.p.runtime.invoke_async({"Records": [record]})
    local.events += 1
    local.settle()

    # Then the version stays deleted: no DetectFaces call, nothing in the DLQ
    assert local.result("deleted.jpg").status == "DELETED"
    assert local.detect_calls == calls
    assert local.dlq() == []


def test_throttling_at_the_quota_is_absorbed_without_losing_an_image(detector: CenterFaceDetector) -> None:
    # Given a DetectFaces quota of 2 TPS and a burst of 10 uploads at concurrency 4
    pipeline = start_local(detector, settings={"tps": 2.0, "backoff_base_seconds": 0.2, "detect_max_attempts": 10})
    try:
        local = Local(pipeline)
        for i in range(10):
            local.upload(f"burst/{i}.jpg", photos.photo("grace_hopper.jpg"))
        local.settle(timeout=120)
        # Then the service throttled, the function backed off, and every image was stored once
        assert pipeline.emulator is not None and pipeline.emulator.stats.throttled > 0
        assert [local.result(f"burst/{i}.jpg").face_count for i in range(10)] == [1] * 10
        assert local.dlq() == []
    finally:
        pipeline.stop()


def test_internal_errors_are_retried_and_config_faults_end_in_the_dlq_after_lambda_retries(
    detector: CenterFaceDetector,
) -> None:
    state = {"ise": 2}

    def fault(request: dict[str, Any]) -> RekognitionError | None:
        name = request["Image"]["S3Object"]["Name"]
        if name == "flaky.jpg" and state["ise"] > 0:
            state["ise"] -= 1
            return RekognitionError("InternalServerError", "Internal server error", status=500)
        if name == "forbidden.jpg":
            return RekognitionError("AccessDeniedException", "User is not authorized to perform DetectFaces")
        return None

    pipeline = start_local(detector, fault=fault, settings={"retry_attempts": 2, "backoff_base_seconds": 0.05})
    try:
        local = Local(pipeline)
        local.upload("flaky.jpg", photos.photo("astronaut.jpg"))
        local.upload("forbidden.jpg", photos.photo("astronaut.jpg"))
        local.settle(timeout=60)

        assert local.result("flaky.jpg").face_count == 1  # two 500s, then success inside one invocation
        (failure,) = local.dlq()
        assert failure["requestContext"]["condition"] == "RetriesExhausted"
        assert failure["requestContext"]["approximateInvokeCount"] == 3  # first try + Lambda's 2 retries
        assert failure["responsePayload"]["errorType"] == "AccessDeniedException"
        (record,) = failure["requestPayload"]["Records"]
        assert record["s3"]["object"]["key"] == "forbidden.jpg"
        assert local.result("forbidden.jpg").status == "RETRYING"
        assert pipeline.runtime is not None and pipeline.runtime.stats.retries == 2
    finally:
        pipeline.stop()
