"""Operator commands against the local stack, through Lambda's Invoke API as served by the local runtime."""

from __future__ import annotations

from typing import Any

import pytest

from facepipe import ops
from facepipe.common import photos
from facepipe.local import LOCAL_FUNCTION
from facepipe.local.centerface import CenterFaceDetector
from facepipe.local.emulator import RekognitionError
from tests.helpers import Local, start_local

pytestmark = pytest.mark.e2e


def target_of(local: Local) -> ops.Target:
    p = local.p
    return ops.Target(p.bucket, p.table, p.dlq_url, LOCAL_FUNCTION, client_for=p.client)


def test_redrive_replays_a_dead_letter_once_the_fault_is_fixed(detector: CenterFaceDetector) -> None:
    broken = {"on": True}

    def fault(request: dict[str, Any]) -> RekognitionError | None:
        if broken["on"]:
            return RekognitionError("AccessDeniedException", "not authorized")
        return None

    pipeline = start_local(detector, fault=fault, settings={"retry_attempts": 1})
    try:
        local = Local(pipeline)
        local.upload("later.jpg", photos.photo("grace_hopper.jpg"))
        local.settle()
        assert len(local.dlq()) == 1 and local.result("later.jpg").status == "RETRYING"

        broken["on"] = False  # the operator fixed the role
        report = ops.redrive(target_of(local), limiter=ops.RateLimiter(50))
        local.events += report.replayed
        local.settle()

        assert report.replayed == 1
        assert local.result("later.jpg").face_count == 1
        assert local.dlq() == []
    finally:
        pipeline.stop()


def test_backfill_processes_what_was_there_before_and_resumes(local: Local) -> None:
    # Given objects that are in the bucket but have no results (as if uploaded before the stack existed)
    for name in ("astronaut.jpg", "coffee.jpg", "camera.jpg"):
        local.upload(f"archive/{name}", photos.photo(name))
    local.settle()
    dynamodb = local.p.client("dynamodb")
    for name in ("astronaut.jpg", "coffee.jpg"):
        dynamodb.delete_item(
            TableName=local.p.table, Key={"pk": {"S": f"{local.p.bucket}/archive/{name}"}, "sk": {"S": "META"}}
        )
    calls = local.detect_calls

    report = ops.backfill(target_of(local), f"s3://{local.p.bucket}/archive/", limiter=ops.RateLimiter(20))
    local.events += report.invoked
    local.settle()

    assert (report.listed, report.skipped_done, report.invoked) == (3, 1, 2)
    assert local.result("archive/astronaut.jpg").face_count == 1
    assert local.result("archive/coffee.jpg").face_count == 0
    assert local.detect_calls == calls + 2
    again = ops.backfill(target_of(local), f"s3://{local.p.bucket}/archive/", limiter=ops.RateLimiter(20))
    assert (again.skipped_done, again.invoked) == (3, 0)
