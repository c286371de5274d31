"""Local mode attached to a bucket someone else already uses, and EventBridge delivery: the same outcomes as the
uploads bucket the stack creates, and the other consumer keeps its events through attach and detach."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

import pytest

from detect_faces.subscriptions import NOTIFICATION_EVENTS
from facepipe.common import photos
from facepipe.common.notifications import OVERLAP_MESSAGE
from facepipe.local.attach import AttachError
from facepipe.local.aws import FOREIGN_PREFIX
from facepipe.local.centerface import CenterFaceDetector
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
        assert (local.result("team/astronaut.jpg").face_count or 0) >= 1
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
        assert "other-consumer" in ids and len(ids) == 1 + len(NOTIFICATION_EVENTS)

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


def ours(local: Local) -> dict[str, set[str]]:
    """facepipe's notification entries on the bucket: their filter value, and the event types under it."""
    config = local.s3.get_bucket_notification_configuration(Bucket=local.p.bucket)
    found: dict[str, set[str]] = {}
    for entry in config.get("QueueConfigurations", []):
        if entry["Id"] == "other-consumer":
            continue
        rules = entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        found.setdefault(rules[0]["Value"] if rules else "", set()).update(entry["Events"])
    return found


def test_a_prefix_with_special_characters_is_attached_encoded_and_its_uploads_reach_an_outcome(
    detector: CenterFaceDetector, invocations: list[dict[str, Any]]
) -> None:
    """The S3 user guide ("Configuring event notifications using object key name filtering"): "If you use any other
    special characters in the value of the prefix or suffix, you must enter them in URL-encoded (percent-encoded)
    format." S3 matches that against the URL-encoded key; local mode's moto does too (moto_patches.py), so a raw
    filter here would deliver nothing, as on AWS."""
    local = start(detector, invocations, existing_bucket="their-photos", key_prefix="fotos/größe/")
    try:
        assert ours(local) == {"fotos/gr%C3%B6%C3%9Fe/": set(NOTIFICATION_EVENTS)}
        local.upload("fotos/größe/astronaut.jpg", FACE)
        local.s3.put_object(Bucket="their-photos", Key="fotos/grosse/astronaut.jpg", Body=FACE)  # another prefix
        local.settle()
        result = local.result("fotos/größe/astronaut.jpg")
        assert result.status == "DETECTED" and (result.face_count or 0) >= 1
        assert local.store.get("their-photos", "fotos/grosse/astronaut.jpg") is None
        keys = [r["s3"]["object"]["key"] for e in invocations for r in e.get("Records", [])]
        assert keys == ["fotos/gr%C3%B6%C3%9Fe/astronaut.jpg"]  # as S3 writes it: "/" as it is, the rest encoded
        assert local.dlq() == []
    finally:
        local.p.stop()


@pytest.mark.parametrize(
    ("delivery", "existing", "expiry"),
    [("s3", False, "LifecycleExpiration:DeleteMarkerCreated"),  # versioned: the rule makes a delete marker
     ("s3", True, "LifecycleExpiration:Delete"),  # unversioned: the rule deletes the object for good
     ("eventbridge", False, "Delete Marker Created"),
     ("eventbridge", True, "Permanently Deleted")],
)  # fmt: skip
def test_a_lifecycle_expiration_reaches_the_function_by_either_delivery_and_deletes_the_result(
    detector: CenterFaceDetector, invocations: list[dict[str, Any]], delivery: str, existing: bool, expiry: str
) -> None:
    """s3:ObjectRemoved:* does not carry lifecycle deletions ("You will not receive event notifications from
    automatic deletes from lifecycle policies or from failed operations", S3 user guide, "Supported event types for
    SQS, SNS, and Lambda"); s3:LifecycleExpiration:* does. EventBridge's Object Deleted carries them with reason
    "Lifecycle Expiration". Both deliveries see the expiry (moto_patches.expire sends what S3 sends for it)."""
    from facepipe.local.aws import ACCOUNT
    from facepipe.local.moto_patches import expire

    settings: dict[str, Any] = {"notifications": delivery}
    if existing:
        settings.update(existing_bucket="their-photos", key_prefix="old/")
    local = start(detector, invocations, **settings)
    try:
        if delivery == "s3":
            every_change = {"s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"}
            assert ours(local) == {"old/" if existing else "": every_change}
        local.upload("old/astronaut.jpg", FACE)
        local.settle()
        assert local.result("old/astronaut.jpg").status == "DETECTED"
        expire(ACCOUNT, local.p.bucket, "old/astronaut.jpg")
        local.events += 1
        local.settle(timeout=30)
        assert local.result("old/astronaut.jpg").status == "DELETED"
        last = invocations[-1]
        if delivery == "s3":
            assert last["Records"][0]["eventName"] == expiry
        else:
            assert (last["detail"]["reason"], last["detail"]["deletion-type"]) == ("Lifecycle Expiration", expiry)
        assert local.dlq() == []
    finally:
        local.p.stop()
