"""The bad day, rehearsed: hundreds of uploads through the local pipeline with faults injected at random.

Throttling bursts and a TPS quota, InternalServerError and ProvisionedThroughputExceeded, objects deleted
before they are processed, non-images, duplicate notifications and out-of-order versions. The invariant:
every object ends in exactly one outcome, nothing is analysed twice, and the DLQ holds nothing else.
"""

from __future__ import annotations

import json
import random
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from facepipe.common import photos
from facepipe.local import LocalPipeline, LocalSettings
from facepipe.local.centerface import FixedDetector
from facepipe.local.emulator import RekognitionError
from tests.helpers import Local

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import DeleteObjectRequestTypeDef

pytestmark = pytest.mark.rehearsal

SEED = 20261128


class Faults:
    """Every other second a half-second throttling burst (80% of calls); otherwise 3% InternalServerError
    and 2% ProvisionedThroughputExceeded. Counts what it injected."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.injected: dict[str, int] = {}

    def __call__(self, request: dict[str, Any]) -> RekognitionError | None:
        with self.lock:
            in_burst = (time.monotonic() - self.start) % 2.0 < 0.5
            roll = self.rng.random()
            if in_burst and roll < 0.8:
                error = RekognitionError("ThrottlingException", "Rate exceeded")
            elif roll < 0.03:
                error = RekognitionError("InternalServerError", "Internal server error", status=500)
            elif roll < 0.05:
                error = RekognitionError("ProvisionedThroughputExceededException", "Provisioned rate exceeded")
            else:
                return None
            self.injected[error.code] = self.injected.get(error.code, 0) + 1
            return error


def test_every_object_ends_in_exactly_one_outcome_under_faults() -> None:
    rng = random.Random(SEED)
    faults = Faults(SEED)
    seen_events: list[dict[str, Any]] = []
    settings = LocalSettings(
        concurrency=8, tps=40.0, retry_attempts=2, delay_scale=0.005, detect_max_attempts=8,
        backoff_base_seconds=0.05, backoff_max_seconds=1.0, log_level="ERROR",
    )  # fmt: skip
    pipeline = LocalPipeline(
        settings,
        detector=FixedDetector(),
        fault=faults,
        on_result=lambda event, result, error: seen_events.append(event),
    ).start()
    try:
        local = Local(pipeline)
        assert pipeline.runtime is not None and pipeline.emulator is not None
        local.settle()  # the s3:TestEvent
        photo = photos.photo("astronaut.jpg")
        pipeline.runtime.pause()  # stage everything first: a burst, and deletions that beat their processing

        images = {f"img/{i:03d}.jpg": local.upload(f"img/{i:03d}.jpg", photo) for i in range(240)}
        junk = [f"junk/{i:02d}.jpg" for i in range(30)]
        for key in junk:
            local.upload(key, b"definitely not an image " * rng.randint(1, 20))
        versions = {}
        for i in range(20):
            key = f"ver/{i:02d}.jpg"
            local.upload(key, photo)
            versions[key] = local.upload(key, photo + b"\0")  # v2: the one that must win
        gone = [f"gone/{i:02d}.jpg" for i in range(20)]
        for key in gone:
            version = local.upload(key, photo)
            local.s3.delete_object(Bucket=pipeline.bucket, Key=key, VersionId=version)
            local.events += 1
        pipeline.runtime.resume()
        local.settle(timeout=240)

        # S3 delivers at least once and out of order: replay 60 notifications we already processed,
        # among them every first version's event, after its second version won.
        creations = [
            e for e in seen_events if e.get("Records") and e["Records"][0]["eventName"].startswith("ObjectCreated")
        ]
        replays = rng.sample(creations, 40) + [
            e for e in creations if e["Records"][0]["s3"]["object"]["key"].startswith("ver/")
        ]
        analysed_before = sum(pipeline.emulator.stats.analysed.values())
        for event in replays:
            pipeline.runtime.invoke_async(json.loads(json.dumps(event)))
            local.events += 1
        local.settle(timeout=120)

        # ---- the invariant ----
        for key, version in images.items():
            result = local.result(key)
            assert (result.status, result.face_count, result.version_id) == ("DETECTED", 1, version), key
        for key in junk:
            result = local.result(key)
            assert result.status == "REJECTED" and (result.reason or "").startswith("InvalidImageFormatException"), key
        for key, version in versions.items():
            result = local.result(key)
            assert (result.status, result.version_id) == ("DETECTED", version), key
        for key in gone:
            assert local.result(key).status == "DELETED", key

        dead = local.dlq()
        dead_keys = [r["s3"]["object"]["key"] for d in dead for r in d["requestPayload"]["Records"]]
        assert all(key.startswith("gone") for key in dead_keys), f"unexpected DLQ records: {dead_keys}"
        assert len(dead_keys) == len(set(dead_keys)), "an object was dead-lettered twice"
        assert {d["responsePayload"]["errorType"] for d in dead} <= {"InvalidS3ObjectException"}

        analysed = pipeline.emulator.stats.analysed
        assert max(analysed.values()) == 1, [k for k, n in analysed.items() if n > 1]  # nothing analysed twice
        assert sum(analysed.values()) == analysed_before  # the replays cost no DetectFaces call
        # every image and every second version analysed once; a first version only if it ran before its successor
        assert len(images) + len(versions) <= len(analysed) <= len(images) + 2 * len(versions)

        # and the faults really happened
        assert faults.injected.get("ThrottlingException", 0) > 20
        assert faults.injected.get("InternalServerError", 0) > 0
        assert faults.injected.get("ProvisionedThroughputExceededException", 0) > 0
    finally:
        pipeline.stop()


def test_dead_attempts_reordered_deletions_and_undeletes_end_in_the_right_outcome() -> None:
    """The sequences of the correctness issue, on the local pipeline: an attempt that dies holding its claim
    (DetectFaces failing past its budget, then the release throttled), a version deleted for good whose
    event beats the live version's, and objects whose current version comes back (a version deleted, a
    delete marker removed): the removal itself gives the version that is current again its result, so the
    backfill that follows finds nothing to do."""
    from botocore.exceptions import ClientError

    from detect_faces import handler
    from facepipe import ops
    from facepipe.local import LOCAL_FUNCTION

    attempts = 4
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def fault(request: dict[str, Any]) -> RekognitionError | None:
        key = request["Image"]["S3Object"]["Name"]
        with lock:
            calls[key] = calls.get(key, 0) + 1
            if key.startswith("died/") and calls[key] <= attempts:  # the first attempt's whole budget
                return RekognitionError("InternalServerError", "Internal server error", status=500)
        return None

    settings = LocalSettings(
        concurrency=4, retry_attempts=2, delay_scale=0.005, detect_max_attempts=attempts,
        backoff_base_seconds=0.01, backoff_max_seconds=0.05, log_level="CRITICAL",
    )  # fmt: skip
    pipeline = LocalPipeline(settings, detector=FixedDetector(), fault=fault).start()
    try:
        local = Local(pipeline)
        assert pipeline.runtime is not None
        local.settle()

        # The first attempt's release is throttled too: its claim stays PROCESSING, inside its lease.
        results = handler.get_processor().claims
        release = results.mark_retrying
        released: set[str] = set()

        def throttled_release(event: Any, claim: Any, reason: str) -> bool:
            if event.ref.key.startswith("died/") and event.ref.key not in released:
                released.add(event.ref.key)
                raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")
            return release(event, claim, reason)

        results.mark_retrying = throttled_release  # type: ignore[method-assign]
        photo = photos.photo("astronaut.jpg")
        died = {f"died/{i:02d}.jpg": local.upload(f"died/{i:02d}.jpg", photo) for i in range(8)}

        # v1, v2, then v1 deleted for good; the deletion is delivered before v2's create
        pipeline.runtime.pause()
        live = {}
        for i in range(8):
            key = f"reorder/{i:02d}.jpg"
            v1 = local.upload(key, photo)
            live[key] = local.upload(key, photo + b"\0")
            local.s3.delete_object(Bucket=pipeline.bucket, Key=key, VersionId=v1)
            local.events += 1
        staged = []
        while True:
            got = local.sqs.receive_message(QueueUrl=pipeline.notifications_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not got:
                break
            for message in got:
                staged.append(json.loads(message["Body"]))
                local.sqs.delete_message(QueueUrl=pipeline.notifications_url, ReceiptHandle=message["ReceiptHandle"])
        staged.sort(key=lambda e: not e["Records"][0]["eventName"].startswith("ObjectRemoved"))
        for event in staged:
            pipeline.runtime.invoke_async(event)
        pipeline.runtime.resume()
        local.settle(timeout=120)

        # current again: v2 deleted for good (v1 current), and a delete marker removed (undelete)
        restored = {}
        for i in range(4):
            key = f"restored/{i:02d}.jpg"
            restored[key] = local.upload(key, photo)
            local.settle()
            v2 = local.upload(key, photo + b"\0")
            local.settle()
            local.s3.delete_object(Bucket=pipeline.bucket, Key=key, VersionId=v2)
            local.events += 1
            key = f"undeleted/{i:02d}.jpg"
            restored[key] = local.upload(key, photo)
            local.settle()
            marker = local.s3.delete_object(Bucket=pipeline.bucket, Key=key)["VersionId"]
            local.events += 1
            local.settle()
            local.s3.delete_object(Bucket=pipeline.bucket, Key=key, VersionId=marker)
            local.events += 1
        local.settle()
        target = ops.Target(
            pipeline.bucket, pipeline.table, pipeline.dlq_url, LOCAL_FUNCTION, client_for=pipeline.client
        )
        invoked = 0
        for prefix in ("restored/", "undeleted/", "reorder/", "died/"):
            report = ops.backfill(target, f"s3://{pipeline.bucket}/{prefix}", limiter=ops.RateLimiter(100))
            invoked += report.invoked
        local.events += invoked
        local.settle()

        # ---- every image ends in its outcome ----
        assert released == set(died)  # every first attempt died holding its claim
        for key, version in {**died, **live, **restored}.items():
            result = local.result(key)
            assert (result.status, result.version_id, result.face_count) == ("DETECTED", version, 1), key
        assert invoked == 0  # the removals already gave every version that is current again its result
        assert local.dlq() == []
    finally:
        pipeline.stop()


def test_late_duplicated_and_twice_delivered_events_end_with_the_current_version() -> None:
    """The sequences of the issue on the new paths, each step's event taken off the notification queue and
    delivered when the sequence says: one upload delivered both ways (notification and EventBridge forms of
    one sequencer); a late delete-marker event after an undelete and a backfill; older creates arriving after a
    rollback, after the key was deleted again, and after an undelete."""
    from facepipe import ops
    from facepipe.local import LOCAL_FUNCTION

    settings = LocalSettings(concurrency=2, delay_scale=0.005, log_level="CRITICAL")
    pipeline = LocalPipeline(settings, detector=FixedDetector()).start()
    try:
        local = Local(pipeline)
        assert pipeline.runtime is not None
        runtime = pipeline.runtime
        local.settle()
        runtime.pause()
        photo = photos.photo("astronaut.jpg")
        bodies = iter(range(1, 1000))

        def taken() -> dict[str, Any]:
            """The one notification the last S3 action sent, taken off the queue (the runtime is paused)."""
            for _ in range(20):
                got = local.sqs.receive_message(QueueUrl=pipeline.notifications_url, MaxNumberOfMessages=1)
                for message in got.get("Messages", []):
                    local.sqs.delete_message(QueueUrl=pipeline.notifications_url,
                                             ReceiptHandle=message["ReceiptHandle"])  # fmt: skip
                    event: dict[str, Any] = json.loads(message["Body"])
                    return event
            raise AssertionError("S3 sent no notification")

        def put(key: str) -> tuple[str, dict[str, Any]]:
            version = local.s3.put_object(Bucket=pipeline.bucket, Key=key, Body=photo + bytes([next(bodies)]))
            return version["VersionId"], taken()

        def delete(key: str, version_id: str | None = None) -> tuple[str, dict[str, Any]]:
            request: DeleteObjectRequestTypeDef = {"Bucket": pipeline.bucket, "Key": key}
            if version_id:
                request["VersionId"] = version_id
            gone = local.s3.delete_object(**request)
            return gone["VersionId"], taken()

        def deliver(*events: dict[str, Any]) -> None:
            for event in events:
                runtime.invoke_async(event)
                local.events += 1
                local.settle()

        # 1. One upload delivered both ways, then a newer upload and its deletion by notification
        _, both = put("both/a.jpg")
        record = both["Records"][0]
        notification_form = record["s3"]["object"]["sequencer"]
        as_eventbridge = {
            "version": "0", "id": "e-both", "detail-type": "Object Created", "source": "aws.s3",
            "account": "123456789012", "time": record["eventTime"], "region": record["awsRegion"],
            "resources": [f"arn:aws:s3:::{pipeline.bucket}"],
            "detail": {"version": "0", "bucket": {"name": pipeline.bucket}, "reason": "PutObject",
                       "object": {"key": "both/a.jpg", "size": record["s3"]["object"]["size"],
                                  "etag": record["s3"]["object"]["eTag"],
                                  "version-id": record["s3"]["object"]["versionId"],
                                  # EventBridge's form: the same value without its leading zeros
                                  "sequencer": notification_form.lstrip("0").lower()}},
        }  # fmt: skip
        calls = local.detect_calls
        deliver(both, as_eventbridge)
        assert local.detect_calls == calls + 1  # one moment, one DetectFaces call
        newer, newer_event = put("both/a.jpg")
        deliver(newer_event)
        assert local.result("both/a.jpg").version_id == newer
        _, marker_event = delete("both/a.jpg")
        deliver(marker_event)
        assert local.result("both/a.jpg").status == "DELETED"

        # 2. v1, a delete marker M, M deleted (undelete), a backfill; then M's creation event again
        v1, v1_event = put("undelete/a.jpg")
        marker, created_m = delete("undelete/a.jpg")
        _, deleted_m = delete("undelete/a.jpg", marker)
        deliver(v1_event, created_m, deleted_m)
        target = ops.Target(pipeline.bucket, pipeline.table, pipeline.dlq_url, LOCAL_FUNCTION,
                            client_for=pipeline.client)  # fmt: skip
        report = ops.backfill(target, f"s3://{pipeline.bucket}/undelete/", limiter=ops.RateLimiter(100))
        local.events += report.invoked
        local.settle()
        deliver(created_m)
        assert (local.result("undelete/a.jpg").status, local.result("undelete/a.jpg").version_id) == ("DETECTED", v1)

        # 3. PUT v1, v2, v3; deliver v3, v2; DELETE v3 (v2 current); v3's removal; v1's late create
        (_, e1), (r2, e2), (r3, e3) = put("rollback/a.jpg"), put("rollback/a.jpg"), put("rollback/a.jpg")
        deliver(e3, e2)
        _, removal = delete("rollback/a.jpg", r3)
        deliver(removal, e1)
        assert (local.result("rollback/a.jpg").status, local.result("rollback/a.jpg").version_id) == ("DETECTED", r2)

        # 4. PUT v1, marker m1, PUT v2; deliver v2, m1; DELETE v2 (m1 current); v2's removal; v1's late create
        (_, e1), (_, m1), (w2, e2) = put("deleted/a.jpg"), delete("deleted/a.jpg"), put("deleted/a.jpg")
        deliver(e2, m1)
        _, removal = delete("deleted/a.jpg", w2)
        deliver(removal, e1)
        assert local.result("deleted/a.jpg").status == "DELETED"

        # 5. PUT v2, v3; deliver v3; marker m1, delivered; DELETE m1 (v3 current); m1's removal; v2's late create
        (_, e2), (u3, e3) = put("undone/a.jpg"), put("undone/a.jpg")
        deliver(e3)
        m1_id, m1 = delete("undone/a.jpg")
        deliver(m1)
        _, removal = delete("undone/a.jpg", m1_id)
        deliver(removal, e2)
        assert (local.result("undone/a.jpg").status, local.result("undone/a.jpg").version_id) == ("DETECTED", u3)
        assert local.dlq() == []
    finally:
        pipeline.stop()
