"""Ordering and ownership of an image: claims and their leases, versions and their removal, sequencers.

Each test is a sequence S3 and Lambda can produce (docs/DESIGN.md, "Ordering"), run through the real handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from detect_faces.results import ImageResult, ResultsStore
from tests.helpers import (
    BUCKET,
    JPEG_BYTES,
    TABLE,
    Pipeline,
    SandboxKilled,
    detect_faces_response,
    fail_calls,
    s3_event,
    s3_record,
)

pytestmark = pytest.mark.integration


def store(p: Pipeline) -> ResultsStore:
    return ResultsStore(p.aws.dynamodb, TABLE)


def image_of(p: Pipeline, key: str) -> ImageResult:
    """The result stored for `key`, which the test expects to be there."""
    found = store(p).get(BUCKET, key)
    assert found is not None, f"no result stored for {key}"
    return found


def upload(p: Pipeline, key: str, body: bytes = JPEG_BYTES, sequencer: str | None = None) -> dict[str, Any]:
    version = p.aws.put(key, body)
    return s3_record(BUCKET, key, size=len(body), version_id=version, sequencer=sequencer)


def removal(key: str, version_id: str, sequencer: str, name: str = "ObjectRemoved:Delete") -> dict[str, Any]:
    return s3_record(BUCKET, key, event_name=name, version_id=version_id, sequencer=sequencer)


def version_of(record: dict[str, Any]) -> str:
    return str(record["s3"]["object"]["versionId"])


# ---- 1. a claim whose attempt died -----------------------------------------------------------------------


def kill_during_detect_faces(p: Pipeline) -> None:
    fail_calls(p.rekognition.client, "DetectFaces", SandboxKilled(), {1})


def throttle_chunk_write_and_release(p: Pipeline) -> None:
    p.rekognition.respond(detect_faces_response(2))
    fail_calls(p.aws.dynamodb, "PutItem", "ProvisionedThroughputExceededException", {1})
    # UpdateItem calls of the attempt: 1 = the claim, 2 = the release after the failed chunk write
    fail_calls(p.aws.dynamodb, "UpdateItem", "ProvisionedThroughputExceededException", {2})


@pytest.mark.parametrize("die", [kill_during_detect_faces, throttle_chunk_write_and_release])
def test_lambdas_retry_of_an_attempt_that_died_inside_the_lease_reaches_an_outcome(
    pipeline: Pipeline, die: Callable[[Pipeline], None]
) -> None:
    # Given an attempt that claimed the image and died before it could finish or release the claim
    record = upload(pipeline, "died.jpg")
    die(pipeline)
    with pytest.raises((SandboxKilled, Exception)):
        pipeline.invoke(s3_event(record))
    assert image_of(pipeline, "died.jpg").status == "PROCESSING"

    # When Lambda retries the event 62 s later, inside the 90 s lease, with the same request id
    pipeline.clock.advance(62)
    pipeline.rekognition.respond(detect_faces_response(3))
    result = pipeline.invoke(s3_event(record))

    # Then the retry takes the claim over and the image has its result
    assert result["records"][0]["outcome"] == "detected"
    image = image_of(pipeline, "died.jpg")
    assert (image.status, image.face_count, len(image.faces)) == ("DETECTED", 3, 3)


def test_a_duplicate_delivery_meeting_a_live_claim_fails_so_that_lambda_retries_it(pipeline: Pipeline) -> None:
    # Given an attempt (request A) that claimed the image and died
    record = upload(pipeline, "dup-live.jpg")
    kill_during_detect_faces(pipeline)
    with pytest.raises(SandboxKilled):
        pipeline.invoke(s3_event(record))

    # When S3's duplicate of the event arrives as another request inside the lease
    pipeline.context.aws_request_id = "another-request"
    pipeline.clock.advance(30)
    with pytest.raises(Exception, match="being processed by another invocation") as busy:
        pipeline.invoke(s3_event(record))

    # Then it failed (Lambda retries it) instead of counting as done; its retry after the lease takes over
    assert type(busy.value).__name__ == "ImageBusyError"
    assert len(pipeline.aws.dlq_messages()) == 0
    pipeline.clock.advance(61)
    pipeline.rekognition.respond(detect_faces_response(1))
    assert pipeline.invoke(s3_event(record))["records"][0]["outcome"] == "detected"


def test_a_duplicate_of_a_finished_event_is_still_skipped_without_an_error(pipeline: Pipeline) -> None:
    record = upload(pipeline, "done.jpg")
    pipeline.rekognition.respond(detect_faces_response(1))
    pipeline.invoke(s3_event(record))
    pipeline.context.aws_request_id = "another-request"
    result = pipeline.invoke(s3_event(record))
    assert result["records"][0] == {"key": "done.jpg", "outcome": "skipped", "reason": "duplicate: already DETECTED"}
    assert len(pipeline.rekognition.calls) == 1


# ---- 2. removing one version outranks only that version ---------------------------------------------------


@pytest.mark.parametrize("v1_analysed_first", [False, True])
def test_deleting_an_old_version_never_blocks_the_live_one(pipeline: Pipeline, v1_analysed_first: bool) -> None:
    # Given PUT v1 (seq 10), PUT v2 (seq 20), then DeleteObject VersionId=v1 (seq 30)
    put_v1 = upload(pipeline, "photo.jpg", sequencer="10")
    put_v2 = upload(pipeline, "photo.jpg", JPEG_BYTES + b"v2", sequencer="20")
    if v1_analysed_first:
        pipeline.rekognition.respond(detect_faces_response(4))
        pipeline.invoke(s3_event(put_v1))
    pipeline.aws.s3.delete_object(Bucket=BUCKET, Key="photo.jpg", VersionId=version_of(put_v1))
    delete_v1 = removal("photo.jpg", version_of(put_v1), "30")

    # When the delete arrives before v2's create (S3 delivers in no order)
    pipeline.rekognition.respond(detect_faces_response(2))
    removed = pipeline.invoke(s3_event(delete_v1))["records"][0]
    result = pipeline.invoke(s3_event(put_v2))

    # Then the live object, v2, is analysed and stored: by the removal, which looks at what is current now
    # (docs/DESIGN.md, "Versions current again"), so v2's own create is no second call
    assert removed["then"]["outcome"] == "detected"
    assert result["records"][0]["outcome"] == "skipped"
    image = image_of(pipeline, "photo.jpg")
    assert (image.status, image.version_id, image.face_count) == ("DETECTED", version_of(put_v2), 2)

    # And v1's late create can neither cost a call nor take the image back
    calls = len(pipeline.rekognition.calls)
    late = pipeline.invoke(s3_event(put_v1))
    assert late["records"][0] == {"key": "photo.jpg", "outcome": "skipped", "reason": "stale: this version was deleted"}
    assert len(pipeline.rekognition.calls) == calls
    assert image_of(pipeline, "photo.jpg").version_id == version_of(put_v2)


def test_deleting_the_analysed_version_for_good_deletes_its_result(pipeline: Pipeline) -> None:
    put_v1 = upload(pipeline, "only.jpg", sequencer="10")
    pipeline.rekognition.respond(detect_faces_response(2))
    pipeline.invoke(s3_event(put_v1))

    result = pipeline.invoke(s3_event(removal("only.jpg", version_of(put_v1), "20")))

    assert result["records"][0]["outcome"] == "deleted"
    image = image_of(pipeline, "only.jpg")
    assert (image.status, image.faces) == ("DELETED", [])
    assert [i["sk"]["S"] for i in pipeline.aws.items("only.jpg")] == ["META"]


def test_a_delete_marker_outranks_every_older_event_of_the_key(pipeline: Pipeline) -> None:
    # Given v1 (10), v2 (20), a delete marker (30), then v2 deleted for good (40); events arrive in reverse
    put_v1 = upload(pipeline, "gone.jpg", sequencer="10")
    put_v2 = upload(pipeline, "gone.jpg", sequencer="20")
    marker = s3_record(BUCKET, "gone.jpg", event_name="ObjectRemoved:DeleteMarkerCreated", version_id="m1",
                       sequencer="30")  # fmt: skip
    for record in (removal("gone.jpg", version_of(put_v2), "40"), marker, put_v2, put_v1):
        pipeline.invoke(s3_event(record))

    # Then no create was analysed: the object as a whole is deleted
    assert pipeline.rekognition.calls == []
    assert image_of(pipeline, "gone.jpg").status == "DELETED"


# ---- 6. sequencers: right-padded, strictly hexadecimal ----------------------------------------------------

# (older, newer): of different lengths, so left-padding would order them the other way round.
PAIRS = [("0055A1F0", "0055B2"), ("0055AED6DCD90281E5", "0055AED6DCD9029"), ("1", "10000000000000001")]
of_different_lengths = pytest.mark.parametrize(("older", "newer"), PAIRS)


@of_different_lengths
@pytest.mark.parametrize("newer_first", [False, True])
def test_two_creates_keep_the_newer_whatever_the_lengths_and_order(
    pipeline: Pipeline, older: str, newer: str, newer_first: bool
) -> None:
    first = upload(pipeline, "pair.jpg", sequencer=older)
    second = upload(pipeline, "pair.jpg", JPEG_BYTES + b"2", sequencer=newer)
    for _ in range(1 if newer_first else 2):  # the older one, delivered last, never asks
        pipeline.rekognition.respond(detect_faces_response(1))
    for record in [second, first] if newer_first else [first, second]:
        pipeline.invoke(s3_event(record))

    assert image_of(pipeline, "pair.jpg").version_id == version_of(second)
    assert len(pipeline.rekognition.calls) == (1 if newer_first else 2)


@of_different_lengths
@pytest.mark.parametrize("delete_first", [False, True])
def test_a_create_and_a_later_delete_end_deleted_whatever_the_lengths_and_order(
    pipeline: Pipeline, older: str, newer: str, delete_first: bool
) -> None:
    create = upload(pipeline, "cd.jpg", sequencer=older)
    delete = s3_record(BUCKET, "cd.jpg", event_name="ObjectRemoved:DeleteMarkerCreated", version_id="m",
                       sequencer=newer)  # fmt: skip
    if not delete_first:
        pipeline.rekognition.respond(detect_faces_response(1))
    for record in [delete, create] if delete_first else [create, delete]:
        pipeline.invoke(s3_event(record))
    assert image_of(pipeline, "cd.jpg").status == "DELETED"


@pytest.mark.parametrize("same", ["0055B200", "0055b2", "0055B20000000000000000"])
def test_sequencers_equal_up_to_trailing_zeros_or_case_are_one_event(pipeline: Pipeline, same: str) -> None:
    record = upload(pipeline, "once.jpg", sequencer="0055B2")
    pipeline.rekognition.respond(detect_faces_response(1))
    pipeline.invoke(s3_event(record))
    duplicate = {**record, "s3": {**record["s3"], "object": {**record["s3"]["object"], "sequencer": same}}}

    result = pipeline.invoke(s3_event(duplicate))

    assert result["records"][0]["reason"] == "duplicate: already DETECTED"
    assert len(pipeline.rekognition.calls) == 1


@pytest.mark.parametrize("bad", ["0x1", "-1", "1_0", "+F", "\u0661\u0662", " 1", "", "12 ", 16])
def test_a_sequencer_that_is_not_plain_hex_is_dead_lettered_as_malformed(pipeline: Pipeline, bad: object) -> None:
    record = upload(pipeline, "odd.jpg")
    record["s3"]["object"]["sequencer"] = bad
    result = pipeline.invoke(s3_event(record))
    assert result["records"][0]["outcome"] == "dead_lettered"
    assert pipeline.rekognition.calls == []


# ---- 7. a claim carries nothing of another version's result ----------------------------------------------


def test_a_new_claim_shows_none_of_the_previous_versions_result(pipeline: Pipeline) -> None:
    # Given v1 DETECTED with 3 faces
    pipeline.rekognition.respond(detect_faces_response(3, attributes="DEFAULT"))
    pipeline.invoke(s3_event(upload(pipeline, "v.jpg")))
    # When v2's attempt ends RETRYING (throttled past the in-invocation budget)
    put_v2 = upload(pipeline, "v.jpg")
    for _ in range(10):
        pipeline.rekognition.fail("ThrottlingException")
    with pytest.raises(Exception, match="Throttling"):
        pipeline.invoke(s3_event(put_v2))

    # Then the summary names v2 and shows no face count, time or attributes of v1
    image = image_of(pipeline, "v.jpg")
    assert (image.status, image.version_id) == ("RETRYING", version_of(put_v2))
    assert (image.face_count, image.finished_at, image.attributes, image.faces) == (None, None, None, [])
