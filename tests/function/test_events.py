"""Event handling: every record, decoded keys, any extension, duplicates, order, partial failures, redrive."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from detect_faces.claims import ImageClaims
from detect_faces.model import ImageEvent, ObjectRef
from detect_faces.objects import ObjectInspector
from detect_faces.rekognition import RekognitionFaces
from detect_faces.results import ImageResult, ResultsStore
from detect_faces.settings import Settings
from tests.helpers import BUCKET, JPEG_BYTES, TABLE, Aws, Pipeline, detect_faces_response, s3_event, s3_record

if TYPE_CHECKING:
    from mypy_boto3_rekognition.type_defs import FaceDetailTypeDef

pytestmark = pytest.mark.integration
ATTEMPTS = Settings.detect_max_attempts  # the in-invocation DetectFaces budget


def store(p: Pipeline) -> ResultsStore:
    return ResultsStore(p.aws.dynamodb, TABLE)


def image_of(p: Pipeline, key: str) -> ImageResult:
    """The result stored for `key`, which the test expects to be there."""
    found = store(p).get(BUCKET, key)
    assert found is not None, f"no result stored for {key}"
    return found


@pytest.mark.parametrize(
    "key",
    [
        "holiday photo.jpg",
        "a b+c.jpg",
        "100% real.jpeg",
        "años/café ☕/grüße.png",
        "deep/nested/prefix/2026/11/28/img.jpg",
        "already%20encoded.jpg",
    ],
)
def test_keys_are_decoded_exactly_once(pipeline: Pipeline, key: str) -> None:
    # Given S3's URL-encoded key in the event (spaces as '+', '+' as %2B, '%' as %25)
    version = pipeline.aws.put(key, JPEG_BYTES)
    record = s3_record(BUCKET, key, size=len(JPEG_BYTES), version_id=version)
    assert record["s3"]["object"]["key"] != key or key.startswith("deep/")
    pipeline.rekognition.respond(detect_faces_response(1))

    pipeline.invoke(s3_event(record))

    # Then Rekognition was asked for the real key, and the result is stored under it
    assert pipeline.rekognition.calls[0]["Image"]["S3Object"]["Name"] == key
    assert image_of(pipeline, key).status == "DETECTED"


@pytest.mark.parametrize("key", ["IMG_0001.JPG", "scan.Jpeg", "shot.PNG", "mixed.pNg", "no-extension"])
def test_any_extension_in_any_case_is_processed_by_content(pipeline: Pipeline, key: str) -> None:
    version = pipeline.aws.put(key, JPEG_BYTES)
    pipeline.rekognition.respond(detect_faces_response(1))
    pipeline.invoke(s3_event(s3_record(BUCKET, key, size=len(JPEG_BYTES), version_id=version)))
    assert image_of(pipeline, key).status == "DETECTED"


def test_every_record_of_an_event_is_processed(pipeline: Pipeline) -> None:
    records = []
    for i in range(4):
        version = pipeline.aws.put(f"batch/{i}.jpg", JPEG_BYTES)
        records.append(s3_record(BUCKET, f"batch/{i}.jpg", size=len(JPEG_BYTES), version_id=version))
        pipeline.rekognition.respond(detect_faces_response(i))

    result = pipeline.invoke(s3_event(*records))

    assert [r["faces"] for r in result["records"]] == [0, 1, 2, 3]
    assert [image_of(pipeline, f"batch/{i}.jpg").face_count for i in range(4)] == [0, 1, 2, 3]


def test_a_duplicate_event_costs_no_second_detect_faces_call(pipeline: Pipeline) -> None:
    version = pipeline.aws.put("dup.jpg", JPEG_BYTES)
    record = s3_record(BUCKET, "dup.jpg", size=len(JPEG_BYTES), version_id=version)
    pipeline.rekognition.respond(detect_faces_response(2))

    first = pipeline.invoke(s3_event(record))
    second = pipeline.invoke(s3_event(record))

    assert first["records"][0]["outcome"] == "detected"
    assert second["records"][0] == {"key": "dup.jpg", "outcome": "skipped", "reason": "duplicate: already DETECTED"}
    assert len(pipeline.rekognition.calls) == 1
    assert pipeline.metrics()["DuplicateOrStaleEvents"] == 1


def test_a_duplicate_of_a_dead_lettered_event_sends_no_second_dlq_message(pipeline: Pipeline) -> None:
    version = pipeline.aws.put("gone.jpg", JPEG_BYTES)
    record = s3_record(BUCKET, "gone.jpg", size=len(JPEG_BYTES), version_id=version)
    pipeline.rekognition.fail("InvalidS3ObjectException")
    pipeline.invoke(s3_event(record))
    pipeline.invoke(s3_event(record))
    assert len(pipeline.aws.dlq_messages()) == 1
    assert len(pipeline.rekognition.calls) == 1


def test_a_late_event_for_an_older_version_never_overwrites_the_newer_result(pipeline: Pipeline) -> None:
    # Given two uploads of one key; S3 delivers the newer event first
    v1 = pipeline.aws.put("same.jpg", JPEG_BYTES)
    older = s3_record(BUCKET, "same.jpg", size=len(JPEG_BYTES), version_id=v1, sequencer="0055A1F0")
    v2 = pipeline.aws.put("same.jpg", JPEG_BYTES + b"v2")
    newer = s3_record(BUCKET, "same.jpg", size=len(JPEG_BYTES) + 2, version_id=v2, sequencer="0055B2")
    pipeline.rekognition.respond(detect_faces_response(5))

    pipeline.invoke(s3_event(newer))
    late = pipeline.invoke(s3_event(older))

    # Then the older one is skipped without a DetectFaces call (sequencers compare right-padded with zeros)
    assert late["records"][0]["outcome"] == "skipped"
    assert late["records"][0]["reason"].startswith("stale")
    image = image_of(pipeline, "same.jpg")
    assert (image.version_id, image.face_count) == (v2, 5)
    assert len(pipeline.rekognition.calls) == 1


def test_a_newer_version_replaces_the_older_result_and_its_faces(pipeline: Pipeline) -> None:
    v1 = pipeline.aws.put("re.jpg", JPEG_BYTES)
    pipeline.rekognition.respond(detect_faces_response(100, attributes="ALL"))
    pipeline.invoke(s3_event(s3_record(BUCKET, "re.jpg", size=len(JPEG_BYTES), version_id=v1)))
    v2 = pipeline.aws.put("re.jpg", JPEG_BYTES)
    pipeline.rekognition.respond(detect_faces_response(1))
    pipeline.invoke(s3_event(s3_record(BUCKET, "re.jpg", size=len(JPEG_BYTES), version_id=v2)))

    image = image_of(pipeline, "re.jpg")
    assert (image.version_id, image.face_count, len(image.faces)) == (v2, 1, 1)
    assert len(pipeline.aws.items("re.jpg")) == 2  # META + one chunk: the old chunks are gone


def test_an_older_event_finishing_after_a_newer_one_is_discarded(pipeline: Pipeline) -> None:
    # Given an older event that claimed the image, and a newer one that claims and finishes meanwhile
    results = ImageClaims(pipeline.aws.dynamodb, TABLE)
    now = datetime.now(UTC)
    older = ImageEvent.from_record(s3_record(BUCKET, "race.jpg", version_id="v1", sequencer="10"))
    newer = ImageEvent.from_record(s3_record(BUCKET, "race.jpg", version_id="v2", sequencer="20"))
    old_claim = results.claim(older, "token-old", now, lease_seconds=60, redrive=False)
    new_claim = results.claim(newer, "token-new", now, lease_seconds=60, redrive=False)
    assert old_claim.acquired and new_claim.acquired
    assert results.store_detected(newer, new_claim, detect_faces_response(2)["FaceDetails"], "DEFAULT", now)

    # When the older one stores its answer late
    committed = results.store_detected(older, old_claim, detect_faces_response(7)["FaceDetails"], "DEFAULT", now)

    # Then it is discarded, with none of its face chunks left behind
    assert committed is False
    image = image_of(pipeline, "race.jpg")
    assert (image.version_id, image.face_count) == ("v2", 2)
    assert len(pipeline.aws.items("race.jpg")) == 2


def test_a_claim_whose_invocation_died_can_be_taken_after_its_lease(pipeline: Pipeline) -> None:
    results = ImageClaims(pipeline.aws.dynamodb, TABLE)
    event = ImageEvent.from_record(s3_record(BUCKET, "crash.jpg", sequencer="30"))
    now = datetime.now(UTC)
    assert results.claim(event, "first", now, lease_seconds=60, redrive=False).acquired
    assert not results.claim(event, "dup", now + timedelta(seconds=30), lease_seconds=60, redrive=False).acquired
    assert results.claim(event, "retry", now + timedelta(seconds=61), lease_seconds=60, redrive=False).acquired


def test_one_bad_record_does_not_lose_or_double_process_the_others(pipeline: Pipeline) -> None:
    # Given a three-record event whose middle record stays throttled past the in-invocation budget
    records = []
    for name in ("one", "two", "three"):
        version = pipeline.aws.put(f"{name}.jpg", JPEG_BYTES)
        records.append(s3_record(BUCKET, f"{name}.jpg", size=len(JPEG_BYTES), version_id=version))
    pipeline.rekognition.respond(detect_faces_response(1))
    for _ in range(ATTEMPTS):
        pipeline.rekognition.fail("ThrottlingException")
    pipeline.rekognition.respond(detect_faces_response(3))

    # When it is invoked, the invocation fails (so Lambda retries), but the other records are stored
    with pytest.raises(ClientError):
        pipeline.invoke(s3_event(*records))
    assert image_of(pipeline, "one.jpg").status == "DETECTED"
    assert image_of(pipeline, "two.jpg").status == "RETRYING"
    assert image_of(pipeline, "three.jpg").face_count == 3
    calls_before_retry = len(pipeline.rekognition.calls)

    # And Lambda's retry of the whole event processes only the failed record
    pipeline.rekognition.respond(detect_faces_response(2))
    result = pipeline.invoke(s3_event(*records))
    assert [r["outcome"] for r in result["records"]] == ["skipped", "detected", "skipped"]
    assert len(pipeline.rekognition.calls) == calls_before_retry + 1
    assert image_of(pipeline, "two.jpg").face_count == 2


def test_several_failed_records_fail_the_invocation_naming_each(pipeline: Pipeline) -> None:
    records = []
    for name in ("x", "y"):
        version = pipeline.aws.put(f"{name}.jpg", JPEG_BYTES)
        records.append(s3_record(BUCKET, f"{name}.jpg", size=len(JPEG_BYTES), version_id=version))
        pipeline.rekognition.fail("AccessDeniedException")
    with pytest.raises(Exception, match=r"2 of 2 records failed: x.jpg: AccessDeniedException.*y.jpg") as raised:
        pipeline.invoke(s3_event(*records))
    assert type(raised.value).__name__ == "RecordsFailedError"


def test_a_redrive_of_a_dead_lettered_record_is_processed_again(pipeline: Pipeline) -> None:
    # Given an object that was unreadable when its event arrived
    version = pipeline.aws.put("later.jpg", JPEG_BYTES)
    record = s3_record(BUCKET, "later.jpg", size=len(JPEG_BYTES), version_id=version)
    pipeline.rekognition.fail("InvalidS3ObjectException")
    pipeline.invoke(s3_event(record))
    (message,) = pipeline.aws.dlq_messages()

    # When an operator replays the DLQ record's requestPayload, marked as a redrive
    payload = json.loads(message["Body"])["requestPayload"]
    pipeline.rekognition.respond(detect_faces_response(1))
    pipeline.invoke({**payload, "facepipeRedrive": True})

    # Then it is analysed this time
    assert image_of(pipeline, "later.jpg").status == "DETECTED"


def test_an_event_that_is_not_an_s3_notification_fails_clearly(pipeline: Pipeline) -> None:
    with pytest.raises(ValueError, match="no Records"):
        pipeline.invoke({"hello": "world"})


def test_chunks_left_by_an_interrupted_writer_are_cleaned_by_the_next_result(pipeline: Pipeline) -> None:
    # Given an older event's writer that stored face chunks and died before committing
    results = ImageClaims(pipeline.aws.dynamodb, TABLE)
    now = datetime.now(UTC)
    older = ImageEvent.from_record(s3_record(BUCKET, "crashed.jpg", version_id="v1", sequencer="10"))
    assert results.claim(older, "dead-writer", now, lease_seconds=60, redrive=False).acquired
    orphan = {"pk": {"S": f"{BUCKET}/crashed.jpg"}, "sk": {"S": f"FACES#{older.sequencer}#0000"},
              "sequencer": {"S": older.sequencer}, "faces": {"L": []}}  # fmt: skip
    pipeline.aws.dynamodb.put_item(TableName=TABLE, Item=orphan)

    # When a newer event claims the image and stores its result
    newer = ImageEvent.from_record(s3_record(BUCKET, "crashed.jpg", version_id="v2", sequencer="20"))
    claim = results.claim(newer, "new-writer", now, lease_seconds=60, redrive=False)
    assert claim.acquired
    assert results.store_detected(newer, claim, detect_faces_response(1)["FaceDetails"], "DEFAULT", now)

    # Then only its own chunk is left beside META
    sks = sorted(i["sk"]["S"] for i in pipeline.aws.items("crashed.jpg"))
    assert sks == [f"FACES#{newer.sequencer}#0000", "META"]
    assert image_of(pipeline, "crashed.jpg").face_count == 1


def test_a_malformed_record_is_dead_lettered_at_once_and_the_others_processed(pipeline: Pipeline) -> None:
    version = pipeline.aws.put("fine.jpg", JPEG_BYTES)
    good = s3_record(BUCKET, "fine.jpg", size=len(JPEG_BYTES), version_id=version)
    broken = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": BUCKET}}}  # no object
    pipeline.rekognition.respond(detect_faces_response(1))

    result = pipeline.invoke(s3_event(broken, good))

    assert [r["outcome"] for r in result["records"]] == ["dead_lettered", "detected"]
    (message,) = pipeline.aws.dlq_messages()
    body = json.loads(message["Body"])
    assert body["requestPayload"] == {"Records": [broken]}
    assert body["responsePayload"]["errorType"] == "InvalidEventError"
    assert "object" in body["responsePayload"]["errorMessage"]


def test_a_malformed_record_is_dead_lettered_once_across_lambdas_retries(pipeline: Pipeline) -> None:
    # Given an event whose malformed record sits beside a record that fails (throttled past the budget)
    version = pipeline.aws.put("slow.jpg", JPEG_BYTES)
    slow = s3_record(BUCKET, "slow.jpg", size=len(JPEG_BYTES), version_id=version)
    broken = {"eventName": "ObjectCreated:Put", "s3": "x"}
    for _ in range(2 * ATTEMPTS):
        pipeline.rekognition.fail("ThrottlingException")
    pipeline.rekognition.respond(detect_faces_response(1))

    # When Lambda runs it three times (two failures, then success)
    for _ in range(2):
        with pytest.raises(ClientError):
            pipeline.invoke(s3_event(broken, slow))
    final = pipeline.invoke(s3_event(broken, slow))

    # Then the malformed record has one DLQ message, and the other record its result
    assert [r["outcome"] for r in final["records"]] == ["skipped", "detected"]
    (message,) = pipeline.aws.dlq_messages()
    assert json.loads(message["Body"])["requestPayload"] == {"Records": [broken]}


def test_a_redrive_of_a_malformed_record_dead_letters_it_again_rather_than_losing_it(pipeline: Pipeline) -> None:
    broken = {"eventName": "ObjectCreated:Put", "s3": {"object": "k.jpg"}}
    pipeline.invoke(s3_event(broken))
    (first,) = pipeline.aws.dlq_messages()
    pipeline.aws.sqs.delete_message(QueueUrl=pipeline.aws.queue_url, ReceiptHandle=first["ReceiptHandle"])
    pipeline.invoke({**s3_event(broken), "facepipeRedrive": "run-1"})
    (again,) = pipeline.aws.dlq_messages()
    assert json.loads(again["Body"])["requestPayload"]["facepipeRedrive"] == "run-1"


@pytest.mark.parametrize("size", ["abc", -1, 1.5, True, {"n": 1}, "9" * 5000])
def test_a_record_with_an_impossible_size_is_dead_lettered_at_once(pipeline: Pipeline, size: object) -> None:
    version = pipeline.aws.put("sized.jpg", JPEG_BYTES)
    record = s3_record(BUCKET, "sized.jpg", version_id=version)
    record["s3"]["object"]["size"] = size

    result = pipeline.invoke(s3_event(record))

    assert result["records"][0]["outcome"] == "dead_lettered"
    (message,) = pipeline.aws.dlq_messages()
    assert json.loads(message["Body"])["responsePayload"]["errorType"] == "InvalidEventError"
    assert pipeline.rekognition.calls == []


@pytest.mark.parametrize("key", ["bell\x07.jpg", "nul\x00byte.jpg", "esc\x1b[0m.jpg", "\x0bvt.jpg"])
def test_the_dlq_record_of_a_key_with_control_characters_is_sent_with_the_exact_key(
    pipeline: Pipeline, key: str
) -> None:
    # Given a key SQS would refuse as a message attribute value, whose object is gone
    record = s3_record(BUCKET, key, size=len(JPEG_BYTES), version_id="gone-version")

    result = pipeline.invoke(s3_event(record))

    # Then the record is dead-lettered; the body keeps the real key, the attribute a printable stand-in
    assert result["records"][0]["outcome"] == "dead_lettered"
    (message,) = pipeline.aws.dlq_messages()
    body_key = json.loads(message["Body"])["requestPayload"]["Records"][0]["s3"]["object"]["key"]
    assert ImageEvent.from_record(json.loads(message["Body"])["requestPayload"]["Records"][0]).ref.key == key
    assert body_key == record["s3"]["object"]["key"]
    assert message["MessageAttributes"]["key"]["StringValue"].replace("\ufffd", "") == "".join(
        c for c in key if c >= " "
    )


def test_concurrent_invocations_log_each_record_under_its_own_key(aws: Aws) -> None:
    # Given the real handler and Logger, run on threads as local mode runs them, all inside one record at once
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from detect_faces import handler
    from tests.helpers import FakeContext, captured_logs

    n = 6
    barrier = threading.Barrier(n, timeout=10)

    class Rekognition(RekognitionFaces):
        def __init__(self) -> None:  # no client: it answers itself
            pass

        @property
        def region(self) -> str:
            return "us-east-1"

        def detect(
            self, ref: ObjectRef, attributes: str, remaining_seconds: Callable[[], float] | None = None
        ) -> list[FaceDetailTypeDef]:
            barrier.wait()  # every invocation has set its keys before any logs its result
            faces: list[FaceDetailTypeDef] = detect_faces_response(1)["FaceDetails"]
            return faces

    class Inspector(ObjectInspector):
        def __init__(self) -> None:  # no client: every object passes
            pass

        def inspect(self, ref: ObjectRef, size_hint: int | None) -> None:
            return None

    settings = Settings(results_table=TABLE, failure_queue_url=aws.queue_url)
    processor = handler.build_processor(s3=aws.s3, dynamodb=aws.dynamodb, sqs=aws.sqs, settings=settings)
    processor.rekognition = Rekognition()
    processor.inspector = Inspector()
    handler.set_processor(processor)
    try:
        events = [s3_event(s3_record(BUCKET, f"burst/{i:05d}.jpg", size=len(JPEG_BYTES))) for i in range(n)]
        with captured_logs() as lines, ThreadPoolExecutor(n) as pool:
            results = list(
                pool.map(lambda i: handler.lambda_handler(events[i], FakeContext(aws_request_id=f"req-{i}")), range(n))
            )
    finally:
        handler.set_processor(None)

    # Then every line names the record and the request it belongs to
    assert all(r["records"][0]["outcome"] == "detected" for r in results)
    stored = [line for line in lines if line["message"] == "faces stored"]
    assert len(stored) == n
    assert sorted(line["object_key"] for line in stored) == [f"burst/{i:05d}.jpg" for i in range(n)]
    for line in stored:
        index = int(line["object_key"][6:11])
        assert line["correlation_id"] == f"s3://{BUCKET}/{line['object_key']}"
        assert line["function_request_id"] == f"req-{index}"
