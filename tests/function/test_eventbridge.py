"""S3 events delivered by EventBridge reach the same core with the same guarantees: one event is one object,
keys are not URL-encoded, fields are `etag` / `version-id` / `sequencer`, deletions say their kind."""

from __future__ import annotations

import json

import pytest

from detect_faces.results import ImageResult, ResultsStore
from tests.helpers import BUCKET, JPEG_BYTES, TABLE, Pipeline, detect_faces_response, eventbridge, s3_event, s3_record

pytestmark = pytest.mark.integration


def store(p: Pipeline) -> ResultsStore:
    return ResultsStore(p.aws.dynamodb, TABLE)


def image_of(p: Pipeline, key: str) -> ImageResult:
    """The result stored for `key`, which the test expects to be there."""
    found = store(p).get(BUCKET, key)
    assert found is not None, f"no result stored for {key}"
    return found


def test_an_object_created_event_is_analysed_under_its_literal_key(pipeline: Pipeline) -> None:
    key = "holiday pics/a b+c%20.jpg"  # EventBridge sends keys as they are
    version = pipeline.aws.put(key, JPEG_BYTES)
    pipeline.rekognition.respond(detect_faces_response(2))

    result = pipeline.invoke(eventbridge("Object Created", key, sequencer="0055AED6DCD90281", version_id=version))

    assert result == {"records": [{"key": key, "outcome": "detected", "faces": 2}]}
    assert pipeline.rekognition.calls[0]["Image"]["S3Object"] == {"Bucket": BUCKET, "Name": key, "Version": version}
    image = image_of(pipeline, key)
    assert (image.status, image.version_id, image.face_count) == ("DETECTED", version, 2)


@pytest.mark.parametrize(
    ("reason", "deletion_type"),
    [("DeleteObject", "Delete Marker Created"), ("DeleteObject", "Permanently Deleted"),
     ("Lifecycle Expiration", "Delete Marker Created"), ("Lifecycle Expiration", "Permanently Deleted")],
)  # fmt: skip
def test_object_deleted_events_delete_the_results(pipeline: Pipeline, reason: str, deletion_type: str) -> None:
    version = pipeline.aws.put("gone.jpg", JPEG_BYTES)
    pipeline.rekognition.respond(detect_faces_response(1))
    pipeline.invoke(eventbridge("Object Created", "gone.jpg", sequencer="0055AED6DCD90281", version_id=version))

    removed = eventbridge("Object Deleted", "gone.jpg", sequencer="0055AED6DCD90290", reason=reason,
                          deletion_type=deletion_type,
                          version_id=version if deletion_type == "Permanently Deleted" else "marker")  # fmt: skip
    result = pipeline.invoke(removed)

    assert result["records"][0]["outcome"] == "deleted"
    assert image_of(pipeline, "gone.jpg").status == "DELETED"


def test_other_object_events_are_skipped_with_their_kind(pipeline: Pipeline) -> None:
    result = pipeline.invoke(eventbridge("Object Restore Completed", "cold.jpg", sequencer="0055AED6DCD90281"))
    assert result["records"][0] == {"key": "cold.jpg", "outcome": "skipped",
                                    "reason": "event ObjectRestoreCompleted not handled"}  # fmt: skip


def test_eventbridge_and_notification_sequencers_of_one_moment_are_one_event(pipeline: Pipeline) -> None:
    # The same upload through both: EventBridge's value without its leading zeros, the notification's 18 digits
    # (tests/function/test_versions.py has the published pair and the events that follow)
    version = pipeline.aws.put("both.jpg", JPEG_BYTES)
    pipeline.rekognition.respond(detect_faces_response(1))
    pipeline.invoke(eventbridge("Object Created", "both.jpg", sequencer="55aed6dcd90281e5", version_id=version))
    notification = s3_record(BUCKET, "both.jpg", version_id=version, sequencer="0055AED6DCD90281E5")

    result = pipeline.invoke(s3_event(notification))

    assert result["records"][0]["reason"] == "duplicate: already DETECTED"
    assert len(pipeline.rekognition.calls) == 1


def test_a_failure_record_replays_the_eventbridge_event_itself(pipeline: Pipeline) -> None:
    event = eventbridge("Object Created", "missing.jpg", sequencer="0055AED6DCD90281", version_id="v-gone")

    result = pipeline.invoke(event)

    assert result["records"][0]["outcome"] == "dead_lettered"
    (message,) = pipeline.aws.dlq_messages()
    body = json.loads(message["Body"])
    assert body["requestPayload"] == event and body["responsePayload"]["errorType"] == "InvalidS3ObjectException"


def test_a_malformed_eventbridge_event_is_dead_lettered_as_it_came(pipeline: Pipeline) -> None:
    event = eventbridge("Object Created", "x.jpg", sequencer="0055AED6DCD90281")
    del event["detail"]["object"]

    result = pipeline.invoke(event)

    assert result["records"][0]["outcome"] == "dead_lettered"
    (message,) = pipeline.aws.dlq_messages()
    body = json.loads(message["Body"])
    assert body["requestPayload"] == event and body["responsePayload"]["errorType"] == "InvalidEventError"
