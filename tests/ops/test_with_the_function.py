"""Operator commands against the real function: backfill and redrive invoke the handler in-process (Lambda's
Invoke API answered by the very same lambda_handler), on moto S3/DynamoDB/SQS, Rekognition stubbed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from detect_faces.results import ResultsStore
from facepipe import ops
from facepipe.cli import main
from tests.helpers import BUCKET, JPEG_BYTES, TABLE, Pipeline, detect_faces_response, eventbridge, s3_event, s3_record

pytestmark = pytest.mark.integration


class InProcessLambda:
    """Lambda's Invoke (InvocationType=Event) running the handler at once; errors are the function's own."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.payloads: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        event = json.loads(Payload)
        self.payloads.append(event)
        try:
            self.pipeline.invoke(event)
        except Exception as exc:
            self.errors.append(exc)
        return {"StatusCode": 202}


@pytest.fixture
def function(pipeline: Pipeline) -> InProcessLambda:
    return InProcessLambda(pipeline)


@pytest.fixture
def target(pipeline: Pipeline, function: InProcessLambda, monkeypatch: pytest.MonkeyPatch) -> ops.Target:
    clients = {"s3": pipeline.aws.s3, "dynamodb": pipeline.aws.dynamodb, "sqs": pipeline.aws.sqs, "lambda": function}
    target = ops.Target(BUCKET, TABLE, pipeline.aws.queue_url, "detect-faces", client_for=clients.__getitem__)
    monkeypatch.setattr(ops, "stack_target", lambda name: target)
    return target


def store(p: Pipeline) -> ResultsStore:
    return ResultsStore(p.aws.dynamodb, TABLE)


def put_and_process(p: Pipeline, key: str, faces: int, sequencer: str) -> str:
    version = p.aws.put(key, JPEG_BYTES + key.encode() + sequencer.encode())
    p.rekognition.respond(detect_faces_response(faces))
    p.invoke(s3_event(s3_record(BUCKET, key, size=len(JPEG_BYTES), version_id=version, sequencer=sequencer)))
    return version


def rate() -> ops.RateLimiter:
    return ops.RateLimiter(1000.0, sleep=lambda s: None)


# ---- 3. backfill: only the current version's result counts as done ---------------------------------------


def test_a_rollback_needs_no_backfill(pipeline: Pipeline, target: ops.Target) -> None:
    # Given v1 and v2 DETECTED, then v2 deleted for good, so v1 is current again
    v1 = put_and_process(pipeline, "again.jpg", faces=1, sequencer="10")
    v2 = put_and_process(pipeline, "again.jpg", faces=2, sequencer="20")
    pipeline.aws.s3.delete_object(Bucket=BUCKET, Key="again.jpg", VersionId=v2)
    pipeline.rekognition.respond(detect_faces_response(1))
    pipeline.invoke(s3_event(s3_record(BUCKET, "again.jpg", event_name="ObjectRemoved:Delete", version_id=v2,
                                       sequencer="30")))  # fmt: skip

    # Then the removal itself gave v1 its result, and a backfill finds nothing to do
    image = store(pipeline).get(BUCKET, "again.jpg")
    assert image is not None and (image.status, image.version_id, image.face_count) == ("DETECTED", v1, 1)
    report = ops.backfill(target, f"s3://{BUCKET}/", limiter=rate())
    assert (report.listed, report.skipped_done, report.invoked) == (1, 1, 0)


def test_backfill_analyses_an_undeleted_object_whose_undelete_event_was_lost(
    pipeline: Pipeline, target: ops.Target
) -> None:
    # Given a DETECTED image, then a delete marker, then the marker removed (undelete), its event never delivered
    v1 = put_and_process(pipeline, "undeleted.jpg", faces=2, sequencer="10")
    marker = pipeline.aws.s3.delete_object(Bucket=BUCKET, Key="undeleted.jpg")["VersionId"]
    pipeline.invoke(s3_event(s3_record(BUCKET, "undeleted.jpg", event_name="ObjectRemoved:DeleteMarkerCreated",
                                       version_id=marker, sequencer="20")))  # fmt: skip
    pipeline.aws.s3.delete_object(Bucket=BUCKET, Key="undeleted.jpg", VersionId=marker)
    assert [r.key for r in ops.list_results(target)] == []  # nothing live is listed

    pipeline.rekognition.respond(detect_faces_response(2))
    report = ops.backfill(target, f"s3://{BUCKET}/", limiter=rate())

    assert (report.skipped_done, report.invoked) == (0, 1)
    image = store(pipeline).get(BUCKET, "undeleted.jpg")
    assert image is not None and (image.status, image.version_id, image.face_count) == ("DETECTED", v1, 2)


def test_backfill_skips_only_a_result_for_the_current_version(pipeline: Pipeline, target: ops.Target) -> None:
    # Given one image whose current version has a result, and one whose result is an older version's
    put_and_process(pipeline, "done.jpg", faces=1, sequencer="10")
    put_and_process(pipeline, "behind.jpg", faces=1, sequencer="10")
    v2 = pipeline.aws.put("behind.jpg", JPEG_BYTES + b"v2")  # its event never arrived

    pipeline.rekognition.respond(detect_faces_response(3))
    report = ops.backfill(target, f"s3://{BUCKET}/", limiter=rate())

    assert (report.listed, report.skipped_done, report.invoked) == (2, 1, 1)
    image = store(pipeline).get(BUCKET, "behind.jpg")
    assert image is not None and (image.status, image.version_id, image.face_count) == ("DETECTED", v2, 3)


def test_a_backfill_record_for_a_version_no_longer_current_changes_nothing(pipeline: Pipeline) -> None:
    # Given a backfill listing that saw v1, and v2 uploaded and analysed before the record ran
    v1 = pipeline.aws.put("moved.jpg", JPEG_BYTES)
    listed = pipeline.aws.s3.list_object_versions(Bucket=BUCKET)["Versions"][0]
    v2 = put_and_process(pipeline, "moved.jpg", faces=4, sequencer="20")
    calls = len(pipeline.rekognition.calls)

    result = pipeline.invoke(ops.backfill_event(BUCKET, listed, "us-east-1"))

    assert listed["VersionId"] == v1
    assert result["records"][0] == {
        "key": "moved.jpg", "outcome": "skipped", "reason": f"backfill: the current version is now {v2}"
    }  # fmt: skip
    assert len(pipeline.rekognition.calls) == calls
    moved = store(pipeline).get(BUCKET, "moved.jpg")
    assert moved is not None and moved.face_count == 4


# ---- 4. redrive replays what was in the queue when it began ------------------------------------------------


def test_redrive_does_not_replay_the_failures_its_own_replays_create(
    pipeline: Pipeline, target: ops.Target, function: InProcessLambda
) -> None:
    # Given one DLQ message: the function's own record for an object deleted before it was read
    version = pipeline.aws.put("deleted.jpg", JPEG_BYTES)
    pipeline.aws.s3.delete_object(Bucket=BUCKET, Key="deleted.jpg", VersionId=version)
    pipeline.invoke(s3_event(s3_record(BUCKET, "deleted.jpg", size=len(JPEG_BYTES), version_id=version)))
    assert len(pipeline.aws.dlq_messages()) == 1

    # When the operator redrives with room for 25
    report = ops.redrive(target, max_messages=25, limiter=rate())

    # Then the one record was replayed once; its new failure record is left for another run
    assert (report.replayed, report.new, report.left) == (1, 1, 1)
    assert len(function.payloads) == 1
    (message,) = pipeline.aws.dlq_messages()
    assert json.loads(message["Body"])["requestPayload"]["facepipeRedrive"] == report.run_id


def test_redrive_leaves_messages_sent_after_the_run_began(pipeline: Pipeline, target: ops.Target) -> None:
    record = s3_record(BUCKET, "later.jpg")
    body = {"requestPayload": {"Records": [record]}, "responsePayload": {"errorType": "ThrottlingException"}}
    pipeline.aws.sqs.send_message(QueueUrl=pipeline.aws.queue_url, MessageBody=json.dumps(body))

    report = ops.redrive(target, limiter=rate(), clock_ms=lambda: 0)  # the run "began" long before it was sent

    assert (report.replayed, report.new, report.left) == (0, 1, 1)


# ---- 5. failures and redrive on whatever the function dead-lettered ----------------------------------------

MALFORMED: list[dict[str, Any]] = [{"s3": "x"}, {"s3": {"object": "k.jpg"}}, {"s3": {"object": {"key": 5}}}]


def test_failures_and_redrive_handle_records_the_function_dead_lettered_as_malformed(
    pipeline: Pipeline, target: ops.Target, function: InProcessLambda, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the function dead-lettered malformed records as they came
    for record in MALFORMED:
        assert pipeline.invoke(s3_event(record))["records"][0]["outcome"] == "dead_lettered"
    capsys.readouterr()

    # When the operator lists them, as a table and as JSON, and plans a redrive
    assert main(["failures"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert main(["failures", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["redrive", "--dry-run"]) == 0
    dry_run = capsys.readouterr().out

    # Then each is listed with its key unknown, and none would be replayed
    assert len(table) == 2 + len(MALFORMED) and all(line.startswith(ops.UNKNOWN_KEY) for line in table[2:])
    assert sorted(json.dumps(r["record"]["requestPayload"]["Records"][0]) for r in rows) == sorted(
        json.dumps(r) for r in MALFORMED
    )
    assert {r["key"] for r in rows} == {ops.UNKNOWN_KEY} and {r["error_type"] for r in rows} == {"InvalidEventError"}
    assert "0 record(s) would be replayed" in dry_run and "3 message(s) cannot be replayed" in dry_run

    # And a real redrive leaves them where they are
    report = ops.redrive(target, limiter=rate())
    assert (report.replayed, report.skipped, report.left) == (0, 3, 3)
    assert function.payloads == []


def test_failures_and_redrive_handle_eventbridge_failure_records(pipeline: Pipeline, target: ops.Target) -> None:
    # Given an EventBridge event for an object that was not there yet: dead-lettered as it came
    event = eventbridge("Object Created", "late arrival.jpg", sequencer="0055AED6DCD90281")
    pipeline.invoke(event)
    (failure,) = ops.list_failures(target)
    assert failure.summary()["key"] == "late arrival.jpg" and failure.replayable

    # When the object is there and the operator redrives
    pipeline.aws.s3.put_object(Bucket=BUCKET, Key="late arrival.jpg", Body=JPEG_BYTES)
    pipeline.rekognition.respond(detect_faces_response(1))
    report = ops.redrive(target, limiter=rate())

    # Then the EventBridge event itself was replayed, and the image is analysed
    assert (report.replayed, report.left) == (1, 0)
    late = store(pipeline).get(BUCKET, "late arrival.jpg")
    assert late is not None and late.status == "DETECTED"
