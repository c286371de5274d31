"""Versions coming and going: undeletes, rollbacks, late events of deleted versions, the `null` version, and one
moment's two sequencer forms (docs/DESIGN.md, "Ordering and ownership of an image").

Every S3 action runs against moto's versioned bucket, so a HEAD sees what S3 would show; each action returns the
record S3 would send for it, with a sequencer that grows as S3's do. The records are then delivered in the orders
S3 and Lambda can produce, through the real handler.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from detect_faces.model import normalize_sequencer
from detect_faces.results import ImageResult, ResultsStore
from facepipe.ops.backfill import backfill_event, existing_objects, has_result_for
from tests.helpers import (
    BUCKET,
    JPEG_BYTES,
    TABLE,
    Pipeline,
    detect_faces_response,
    eventbridge,
    s3_event,
    s3_record,
)

pytestmark = pytest.mark.integration


@dataclass
class Bucket:
    """S3 actions on one key of the versioned test bucket, each returning the notification record S3 sends."""

    p: Pipeline
    key: str = "photo.jpg"
    bucket: str = BUCKET
    _seq: Any = field(default_factory=lambda: itertools.count(0x0062A0000000000000))
    _bodies: Any = field(default_factory=lambda: itertools.count(1))

    def _sequencer(self) -> str:
        return format(next(self._seq) * 0x100, "018X")

    def put(self) -> dict[str, Any]:
        body = JPEG_BYTES + b"#" + str(next(self._bodies)).encode()
        response = self.p.aws.s3.put_object(Bucket=self.bucket, Key=self.key, Body=body)
        return s3_record(self.bucket, self.key, size=len(body), version_id=response.get("VersionId"),
                         sequencer=self._sequencer(), etag=response["ETag"].strip('"'))  # fmt: skip

    def delete(self) -> dict[str, Any]:
        """DeleteObject without a version: a delete marker."""
        marker = self.p.aws.s3.delete_object(Bucket=self.bucket, Key=self.key)["VersionId"]
        return s3_record(self.bucket, self.key, event_name="ObjectRemoved:DeleteMarkerCreated", version_id=marker,
                         sequencer=self._sequencer())  # fmt: skip

    def delete_version(self, version_id: str) -> dict[str, Any]:
        """DeleteObject with a VersionId: that version (or delete marker) is gone for good."""
        self.p.aws.s3.delete_object(Bucket=self.bucket, Key=self.key, VersionId=version_id)
        return s3_record(self.bucket, self.key, event_name="ObjectRemoved:Delete", version_id=version_id,
                         sequencer=self._sequencer())  # fmt: skip

    def current(self) -> str | None:
        versions = self.p.aws.s3.list_object_versions(Bucket=self.bucket, Prefix=self.key)
        latest = [v["VersionId"] for v in versions.get("Versions", []) if v["IsLatest"] and v["Key"] == self.key]
        return latest[0] if latest else None

    def stored(self) -> ImageResult | None:
        return ResultsStore(self.p.aws.dynamodb, TABLE).get(self.bucket, self.key)

    def backfill(self) -> dict[str, Any]:
        """What `facepipe backfill` sends for the key's current version."""
        (obj,) = [o for o in existing_objects(self.p.aws.s3, self.bucket, self.key) if o["Key"] == self.key]
        return self.p.invoke(backfill_event(self.bucket, obj, "us-east-1"))


def vid(record: dict[str, Any]) -> str:
    return str(record["s3"]["object"]["versionId"])


def deliver(p: Pipeline, *records: dict[str, Any], faces: int = 0) -> list[dict[str, Any]]:
    """Each record in its own invocation; `faces` DetectFaces answers are queued first (the Stubber checks that
    exactly these many calls are made)."""
    for _ in range(faces):
        p.rekognition.respond(detect_faces_response(2))
    return [p.invoke(s3_event(record))["records"][0] for record in records]


def assert_current(b: Bucket, status: str = "DETECTED") -> None:
    image = b.stored()
    assert image is not None
    if status == "DELETED":
        assert image.status == "DELETED" and image.faces == []
        return
    assert (image.status, image.version_id) == (status, b.current())
    assert len(image.faces) == image.face_count == 2


@pytest.fixture
def b(pipeline: Pipeline) -> Bucket:
    return Bucket(pipeline)


# ---- one moment, two sequencer forms (issue: EventBridge and S3 notifications) -----------------------------
# The S3 user guide's EventBridge example ("Amazon S3 event notifications with EventBridge", Object Created) has
# "sequencer": "617f08299329d189" for the request whose S3-notification record reads "00617F08299329D189" (same
# key, ETag, version id and request id; aws-lambda-dotnet publishes both captures). EventBridge's form is the
# notification's hexadecimal value without its leading zeros. Powertools' captures of EventBridge events carry the
# full 18 digits ("006408CAD69598B05E"), so both forms reach the function.
EVENTBRIDGE_FORM, NOTIFICATION_FORM = "617f08299329d189", "00617F08299329D189"


def test_the_two_forms_of_one_sequencer_are_one_moment() -> None:
    assert normalize_sequencer(EVENTBRIDGE_FORM, eventbridge=True) == normalize_sequencer(NOTIFICATION_FORM)
    assert normalize_sequencer("006408CAD69598B05E", eventbridge=True) == normalize_sequencer("006408CAD69598B05E")
    # the next notification event of the key outranks both forms
    later = normalize_sequencer("00617F0829A0000000")
    assert later > normalize_sequencer(EVENTBRIDGE_FORM, eventbridge=True)
    # notification sequencers of different lengths still compare right-padded, as the user guide says
    assert normalize_sequencer("0055A1F0") < normalize_sequencer("0055B2")


@pytest.mark.parametrize("eventbridge_first", [True, False])
def test_one_upload_delivered_both_ways_is_analysed_once_and_newer_events_still_win(
    pipeline: Pipeline, eventbridge_first: bool
) -> None:
    # Given one upload, delivered by S3 notification and by EventBridge (a switch of facepipe:notifications,
    # both live during a deploy)
    body = JPEG_BYTES + b"once"
    v1 = pipeline.aws.s3.put_object(Bucket=BUCKET, Key="both.jpg", Body=body)["VersionId"]
    by_notification = s3_record(BUCKET, "both.jpg", size=len(body), version_id=v1, sequencer=NOTIFICATION_FORM)
    by_eventbridge = eventbridge("Object Created", "both.jpg", sequencer=EVENTBRIDGE_FORM, version_id=v1,
                                 size=len(body))  # fmt: skip
    first, second = (by_eventbridge, by_notification) if eventbridge_first else (by_notification, by_eventbridge)
    pipeline.rekognition.respond(detect_faces_response(1))
    pipeline.invoke(first if "detail" in first else s3_event(first))
    twin = pipeline.invoke(second if "detail" in second else s3_event(second))["records"][0]

    # Then the second delivery is a duplicate: one DetectFaces call
    assert twin["reason"] == "duplicate: already DETECTED"
    assert len(pipeline.rekognition.calls) == 1

    # And a newer upload delivered by notification takes the image; then its deletion deletes it
    v2 = pipeline.aws.s3.put_object(Bucket=BUCKET, Key="both.jpg", Body=body + b"2")["VersionId"]
    newer = s3_record(BUCKET, "both.jpg", size=len(body) + 1, version_id=v2, sequencer="00617F0829A0000000")
    assert deliver(pipeline, newer, faces=1)[0]["outcome"] == "detected"
    marker = pipeline.aws.s3.delete_object(Bucket=BUCKET, Key="both.jpg")["VersionId"]
    gone = s3_record(BUCKET, "both.jpg", event_name="ObjectRemoved:DeleteMarkerCreated", version_id=marker,
                     sequencer="00617F0829B0000000")  # fmt: skip
    assert deliver(pipeline, gone)[0]["outcome"] == "deleted"
    both = ResultsStore(pipeline.aws.dynamodb, TABLE).get(BUCKET, "both.jpg")
    assert both is not None and both.status == "DELETED"


# ---- a late delete-marker event must not wipe a restored object ----------------------------------------------


def test_a_late_delete_marker_event_does_not_wipe_an_undeleted_object(b: Bucket) -> None:
    # Given v1, a delete marker M, M deleted (an undelete: v1 is current again), and a backfill of v1
    put_v1 = b.put()
    create_m = b.delete()
    delete_m = b.delete_version(vid(create_m))
    deliver(b.p, put_v1, faces=1)
    deliver(b.p, create_m)
    deliver(b.p, delete_m, faces=1)  # the undelete gives v1 its result back
    assert b.backfill()["records"][0]["reason"] == "backfill: already DETECTED for this version"
    stored = b.stored()
    assert stored is not None and (stored.status, stored.version_id) == ("DETECTED", vid(put_v1))

    # When M's creation event arrives again (S3's duplicate, or Lambda's retry)
    late = deliver(b.p, create_m)[0]

    # Then v1 keeps its result
    assert late["outcome"] == "skipped"
    after = b.stored()
    assert after is not None and (after.status, after.version_id) == ("DETECTED", vid(put_v1)) and after.faces


def test_a_backfill_never_lowers_the_stored_sequencer(b: Bucket) -> None:
    # Given v1's create and a delete marker, both delivered, then the marker deleted for good: v1 current again
    put_v1 = b.put()
    create_m = b.delete()
    deliver(b.p, put_v1, faces=1)
    deliver(b.p, create_m)
    b.delete_version(vid(create_m))  # its event is late
    # When a backfill analyses v1
    b.p.rekognition.respond(detect_faces_response(2))
    b.backfill()
    # Then the stored sequencer is still the marker's, so M's late duplicate is older than what is stored
    stored = b.stored()
    assert stored is not None and stored.sequencer == normalize_sequencer(create_m["s3"]["object"]["sequencer"])
    assert deliver(b.p, create_m)[0]["outcome"] == "skipped"
    assert_current(b)


# ---- an older event never takes over from a newer one through a one-version tombstone -----------------------


def test_a_late_create_of_an_old_version_does_not_replace_the_current_one(b: Bucket) -> None:
    # PUT v1, PUT v2, PUT v3; deliver v3, v2; DELETE v3 (v2 current again); deliver v3's removal; v1's late create
    v1, v2, v3 = b.put(), b.put(), b.put()
    deliver(b.p, v3, faces=1)
    deliver(b.p, v2)  # stale
    removal = b.delete_version(vid(v3))
    b.p.rekognition.respond(detect_faces_response(2))
    deliver(b.p, removal)  # v2 is current again: the removal gives it its result
    late = deliver(b.p, v1)[0]
    assert late["outcome"] == "skipped"
    assert b.current() == vid(v2)
    assert_current(b)


def test_a_late_create_does_not_resurrect_a_key_whose_delete_marker_is_current_again(b: Bucket) -> None:
    # PUT v1, marker m1, PUT v2; deliver v2, m1; DELETE v2 (m1 current: the key is deleted); v2's removal; v1 late
    v1, m1, v2 = b.put(), b.delete(), b.put()
    deliver(b.p, v2, faces=1)
    deliver(b.p, m1)
    removal = b.delete_version(vid(v2))
    deliver(b.p, removal)
    late = deliver(b.p, v1)[0]
    assert late["outcome"] == "skipped"
    assert b.current() is None
    assert_current(b, "DELETED")


def test_a_late_create_after_an_undelete_does_not_replace_the_current_version(b: Bucket) -> None:
    # PUT v2, PUT v3; deliver v3; marker m1; deliver m1; DELETE m1 (undelete, v3 current); m1's removal; v2 late
    v2, v3 = b.put(), b.put()
    deliver(b.p, v3, faces=1)
    m1 = b.delete()
    deliver(b.p, m1)
    removal = b.delete_version(vid(m1))
    b.p.rekognition.respond(detect_faces_response(2))
    deliver(b.p, removal)  # v3 is current again: the undelete gives it its result back
    late = deliver(b.p, v2)[0]
    assert late["outcome"] == "skipped"
    assert b.current() == vid(v3)
    assert_current(b)


def test_after_a_rollback_neither_a_backfill_nor_older_events_move_the_result(b: Bucket) -> None:
    # PUT v1, PUT v2, PUT v3; deliver v3; DELETE v3 (v2 current), its removal delivered; then a backfill
    v1, v2, v3 = b.put(), b.put(), b.put()
    deliver(b.p, v3, faces=1)
    b.p.rekognition.respond(detect_faces_response(2))
    deliver(b.p, b.delete_version(vid(v3)))
    assert b.backfill()["records"][0]["reason"] == "backfill: already DETECTED for this version"
    # v1's and v2's late creates never take the image from v2's result
    deliver(b.p, v1, v2)
    assert b.current() == vid(v2)
    assert_current(b)


@pytest.mark.parametrize("what", ["rollback", "undelete"])
def test_a_removal_that_leaves_an_older_version_current_gives_it_its_result(b: Bucket, what: str) -> None:
    # Given v1, then v2 (rollback: v2 deleted for good) or a delete marker (undelete: the marker deleted for good)
    v1 = b.put()
    newer = b.put() if what == "rollback" else b.delete()
    deliver(b.p, v1, faces=1)
    deliver(b.p, newer, faces=1 if what == "rollback" else 0)
    # When the newer version or marker is deleted for good: S3 sends no event for v1, which is current again
    b.p.rekognition.respond(detect_faces_response(2))
    result = deliver(b.p, b.delete_version(vid(newer)))[0]
    # Then v1 has its result without any backfill
    assert result["then"]["outcome"] == "detected"
    assert b.current() == vid(v1)
    assert_current(b)
    assert b.p.rekognition.calls[-1]["Image"]["S3Object"]["Version"] == vid(v1)


def test_deleting_a_noncurrent_version_costs_no_detect_faces_call(b: Bucket) -> None:
    v1, v2 = b.put(), b.put()
    deliver(b.p, v1, v2, faces=2)
    result = deliver(b.p, b.delete_version(vid(v1)))[0]
    assert result["outcome"] == "skipped" and "then" not in result
    assert len(b.p.rekognition.calls) == 2
    assert_current(b)


# ---- the null version -------------------------------------------------------------------------------------------


@pytest.fixture
def legacy(pipeline: Pipeline) -> Bucket:
    """A bucket whose object was written before versioning was enabled: its version id is "null"."""
    pipeline.aws.s3.create_bucket(Bucket="legacy-photos")
    return Bucket(pipeline, key="old.jpg", bucket="legacy-photos")


def test_the_null_version_deleted_for_good_deletes_its_backfilled_result(legacy: Bucket) -> None:
    s3 = legacy.p.aws.s3
    s3.put_object(Bucket=legacy.bucket, Key=legacy.key, Body=JPEG_BYTES)
    s3.put_bucket_versioning(Bucket=legacy.bucket, VersioningConfiguration={"Status": "Enabled"})
    legacy.p.rekognition.respond(detect_faces_response(2))
    legacy.backfill()
    stored = legacy.stored()
    assert stored is not None and stored.status == "DETECTED"
    # has_result_for agrees with the stored result, whichever way the listing names the null version
    summary = ResultsStore(legacy.p.aws.dynamodb, TABLE).summary(legacy.bucket, legacy.key)
    (obj,) = list(existing_objects(s3, legacy.bucket, legacy.key))
    assert obj["VersionId"] == "null" and has_result_for(summary, obj)

    # When the null version is deleted for good (S3's event carries versionId "null")
    result = deliver(legacy.p, legacy.delete_version("null"))[0]

    # Then its result is deleted
    assert result["outcome"] == "deleted"
    assert_current(legacy, "DELETED")


def test_a_null_version_removal_matches_a_live_result_stored_with_the_null_version(legacy: Bucket) -> None:
    # A versioning-suspended bucket: S3's event names the written version "null"
    s3 = legacy.p.aws.s3
    s3.put_bucket_versioning(Bucket=legacy.bucket, VersioningConfiguration={"Status": "Suspended"})
    put = legacy.put()
    put["s3"]["object"]["versionId"] = "null"
    deliver(legacy.p, put, faces=1)
    result = deliver(legacy.p, legacy.delete_version("null"))[0]
    assert result["outcome"] == "deleted"
    # and a new null version written after it is analysed: "null" never joins the deleted versions
    again = legacy.put()
    again["s3"]["object"]["versionId"] = "null"
    assert deliver(legacy.p, again, faces=1)[0]["outcome"] == "detected"
