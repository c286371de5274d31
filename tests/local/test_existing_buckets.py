"""Local mode attached to a bucket someone else already uses, and EventBridge delivery: the same outcomes as the
uploads bucket the stack creates, and the other consumer keeps its events through attach and detach."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

import pytest

from facepipe.local import photos
from facepipe.local.attach import AttachError
from facepipe.local.aws import FOREIGN_PREFIX
from facepipe.local.centerface import CenterFaceDetector
from facepipe.ops.notifications import OVERLAP_MESSAGE
from tests.helpers import Local, start_local

pytestmark = pytest.mark.e2e

FACE = (photos.SAMPLES / "astronaut.jpg").read_bytes()


def received(local: Local, queue_url: str) -> list[dict[str, Any]]:
    """Every message on a queue now (consumed)."""
    bodies = []
    for _ in range(3):
        messages = local.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for m in messages.get("Messages", []):
            bodies.append(json.loads(m["Body"]))
            local.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return bodies


def keys_of(bodies: list[dict[str, Any]]) -> list[str]:
    return [unquote_plus(r["s3"]["object"]["key"]) for b in bodies for r in b.get("Records", [])]


@pytest.fixture
def invocations() -> list[dict[str, Any]]:
    return []


def start(detector: CenterFaceDetector, invocations: list[dict[str, Any]], **settings: Any) -> Local:
    def seen(event: dict[str, Any], result: Any, error: BaseException | None) -> None:
        invocations.append(event)

    return Local(start_local(detector, settings=settings, on_result=seen))


def test_eventbridge_delivery_reaches_every_outcome_as_notifications_do(
    detector: CenterFaceDetector, invocations: list[dict[str, Any]]
) -> None:
    local = start(detector, invocations, notifications="eventbridge")
    try:
        local.upload("team/astronaut.jpg", FACE)
        local.upload("notes.txt", b"not an image")
        local.settle()
        assert local.result("team/astronaut.jpg").status == "DETECTED"
        assert local.result("team/astronaut.jpg").face_count >= 1
        assert local.result("notes.txt").status == "REJECTED"
        local.delete("team/astronaut.jpg")  # versioned bucket: a delete marker
        local.settle()
        assert local.result("team/astronaut.jpg").status == "DELETED"
        # every invocation was an EventBridge event, with S3's increasing sequencer and deletion type
        assert {e["detail-type"] for e in invocations} == {"Object Created", "Object Deleted"}
        sequencers = [e["detail"]["object"]["sequencer"] for e in invocations]
        assert len(set(sequencers)) == len(sequencers) == 3
        (deleted,) = [e for e in invocations if e["detail-type"] == "Object Deleted"]
        assert deleted["detail"]["deletion-type"] == "Delete Marker Created"
        assert local.dlq() == []
    finally:
        local.p.stop()


def test_an_existing_bucket_keeps_its_other_consumer_through_attach_and_detach(
    detector: CenterFaceDetector, invocations: list[dict[str, Any]]
) -> None:
    local = start(detector, invocations, existing_bucket="their-photos", key_prefix="uploads/")
    try:
        s3 = local.s3
        # attached: the other consumer's entry is still there, next to facepipe's two
        config = s3.get_bucket_notification_configuration(Bucket="their-photos")
        ids = [c["Id"] for c in config["QueueConfigurations"]]
        assert "other-consumer" in ids and len(ids) == 3

        local.upload("uploads/astronaut.jpg", FACE)  # unversioned: no version id anywhere
        s3.put_object(Bucket="their-photos", Key=f"{FOREIGN_PREFIX}report.csv", Body=b"a,b\n")
        s3.put_object(Bucket="their-photos", Key="elsewhere/astronaut.jpg", Body=FACE)  # outside the prefix
        local.settle()
        result = local.result("uploads/astronaut.jpg")
        assert result.status == "DETECTED" and result.version_id is None
        assert local.store.get("their-photos", "elsewhere/astronaut.jpg") is None
        assert local.store.get("their-photos", f"{FOREIGN_PREFIX}report.csv") is None
        assert keys_of(received(local, local.p.foreign_queue_url)) == [f"{FOREIGN_PREFIX}report.csv"]

        local.delete("uploads/astronaut.jpg")  # unversioned: the object is gone for good
        local.settle()
        assert local.result("uploads/astronaut.jpg").status == "DELETED"

        # detached (`cdk destroy`): only facepipe's entries go; the other consumer still gets its events
        local.p.detach()
        config = s3.get_bucket_notification_configuration(Bucket="their-photos")
        assert [c["Id"] for c in config["QueueConfigurations"]] == ["other-consumer"]
        accepted = local.p.runtime.stats.accepted if local.p.runtime else 0
        s3.put_object(Bucket="their-photos", Key=f"{FOREIGN_PREFIX}later.csv", Body=b"c,d\n")
        s3.put_object(Bucket="their-photos", Key="uploads/after.jpg", Body=FACE)
        assert keys_of(received(local, local.p.foreign_queue_url)) == [f"{FOREIGN_PREFIX}later.csv"]
        assert received(local, local.p.notifications_url) == []
        assert local.p.runtime is not None and local.p.runtime.stats.accepted == accepted
    finally:
        local.p.stop()


def test_an_existing_bucket_on_eventbridge_keeps_its_consumer_and_orders_an_unversioned_key(
    detector: CenterFaceDetector, invocations: list[dict[str, Any]]
) -> None:
    local = start(detector, invocations, existing_bucket="their-photos", notifications="eventbridge")
    try:
        config = local.s3.get_bucket_notification_configuration(Bucket="their-photos")
        assert [c["Id"] for c in config["QueueConfigurations"]] == ["other-consumer"]
        assert "EventBridgeConfiguration" in config
        local.upload("a.jpg", b"not an image at all")
        local.settle()
        assert local.result("a.jpg").status == "REJECTED"
        local.upload("a.jpg", FACE)  # the same key again: the later event wins without a version id
        local.s3.put_object(Bucket="their-photos", Key=f"{FOREIGN_PREFIX}x.csv", Body=b"x")
        local.events += 1  # EventBridge watches every key here, the other consumer's included
        local.settle()
        assert local.result("a.jpg").status == "DETECTED"
        assert keys_of(received(local, local.p.foreign_queue_url)) == [f"{FOREIGN_PREFIX}x.csv"]

        local.p.detach()  # CDK leaves EventBridge on (it cannot know who else relies on it); the entry stays
        config = local.s3.get_bucket_notification_configuration(Bucket="their-photos")
        assert [c["Id"] for c in config["QueueConfigurations"]] == ["other-consumer"]
    finally:
        local.p.stop()


def test_attaching_next_to_an_overlapping_entry_is_refused_as_s3_refuses_it(detector: CenterFaceDetector) -> None:
    from facepipe.local import LocalPipeline, LocalSettings

    # every key, while the other consumer already has ObjectCreated events under exports/
    pipeline = LocalPipeline(LocalSettings(existing_bucket="their-photos"), detector=detector)
    try:
        with pytest.raises(AttachError, match="ambiguously defined"):
            pipeline.start()
        config = pipeline.client("s3").get_bucket_notification_configuration(Bucket="their-photos")
        assert [c["Id"] for c in config["QueueConfigurations"]] == ["other-consumer"]  # left as it was
    finally:
        pipeline.stop()
    assert OVERLAP_MESSAGE.startswith("Configuration is ambiguously defined")
