"""Operator commands against moto (and a stubbed Lambda Invoke): what each prints and what each changes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from PIL import Image

from detect_faces import contract
from detect_faces.claims import ImageClaims
from detect_faces.model import ImageEvent
from detect_faces.results import ResultsStore
from facepipe import ops
from facepipe.cli import main
from facepipe.common import photos
from tests.helpers import BUCKET, REGION, TABLE, Aws, FakeClock, detect_faces_response, limiter, s3_record

pytestmark = pytest.mark.integration

FUNCTION = "detect-faces-fn"


class Env:
    """The moto AWS of the tests (tests.helpers.moto_aws), with Lambda's Invoke stubbed and an ops Target."""

    def __init__(self, aws: Aws) -> None:
        self.s3, self.dynamodb, self.sqs, self.dlq_url = aws.s3, aws.dynamodb, aws.sqs, aws.queue_url
        self.lambda_ = boto3.client("lambda", region_name=REGION)
        self.stub = Stubber(self.lambda_)
        self.store = ResultsStore(self.dynamodb, TABLE)
        self.claims = ImageClaims(self.dynamodb, TABLE)
        clients = {"s3": self.s3, "dynamodb": self.dynamodb, "sqs": self.sqs, "lambda": self.lambda_}
        self.target = ops.Target(BUCKET, TABLE, self.dlq_url, FUNCTION, client_for=clients.__getitem__)

    def store_result(self, key: str, faces: int | None = 1, reject: str | None = None, body: bytes = b"x") -> None:
        version = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"]
        event = ImageEvent.from_record(s3_record(BUCKET, key, version_id=version))
        now = datetime.now(UTC)
        claim = self.claims.claim(event, "t", now, lease_seconds=60, redrive=False)
        if reject:
            self.claims.store_rejected(event, claim, reject, now)
        else:
            self.claims.store_detected(event, claim, detect_faces_response(faces or 0)["FaceDetails"], "DEFAULT", now)

    def failure(self, key: str, error: str = "ThrottlingException") -> dict[str, Any]:
        record = s3_record(BUCKET, key)
        body = {
            "version": "1.0",
            "timestamp": "2026-11-28T12:00:00.000Z",
            "requestContext": {"requestId": "r", "functionArn": "arn", "condition": "RetriesExhausted",
                               "approximateInvokeCount": 3},
            "requestPayload": {"Records": [record]},
            "responseContext": {"statusCode": 200},
            "responsePayload": {"errorType": error, "errorMessage": "Rate exceeded"},
        }  # fmt: skip
        self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=json.dumps(body))
        return body

    def dlq_depth(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.dlq_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def visible(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@pytest.fixture
def env(aws: Aws) -> Iterator[Env]:
    e = Env(aws)
    e.stub.activate()
    yield e
    e.stub.assert_no_pending_responses()


# ---- results ---------------------------------------------------------------------------------------------


def test_results_one_row_per_image_with_prefix_and_tombstones(env: Env) -> None:
    env.store_result("photos/a.jpg", faces=2)
    env.store_result("photos/b.jpg", reject="InvalidImageFormatException: not a JPEG")
    env.store_result("other/c.jpg", faces=0)
    gone = ImageEvent.from_record(s3_record(BUCKET, "photos/gone.jpg", event_name="ObjectRemoved:Delete"))
    env.claims.remove(gone, datetime.now(UTC), 60)

    rows = list(ops.list_results(env.target, "photos/"))
    assert [(r.key, r.status, r.face_count) for r in rows] == [
        ("photos/a.jpg", "DETECTED", 2),
        ("photos/b.jpg", "REJECTED", 0),
    ]
    assert rows[0].faces == []  # the summary scan does not fetch faces...
    with_faces = list(ops.list_results(env.target, "photos/a", with_faces=True))
    assert with_faces[0].faces == detect_faces_response(2)["FaceDetails"]  # ...--json does
    assert "photos/gone.jpg" in [r.key for r in ops.list_results(env.target, include_deleted=True)]


def test_results_json_lines_hold_every_face(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.store_result("a.jpg", faces=3)
    monkeypatch.setattr(ops, "stack_target", lambda name: env.target)
    assert main(["results", "--json"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    row = json.loads(line)
    assert {"bucket", "key", "version_id", "status", "reason", "face_count", "faces"} <= set(row)
    assert row["faces"] == detect_faces_response(3)["FaceDetails"]


def test_targets_resolve_from_the_stack_outputs(env: Env) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    outputs = {contract.OUTPUT_BUCKET: BUCKET, contract.OUTPUT_TABLE: TABLE, contract.OUTPUT_DLQ_URL: env.dlq_url,
               contract.OUTPUT_FUNCTION: FUNCTION,
               contract.OUTPUT_WATCHED: f"s3://{BUCKET}/Camera Uploads/ s3://archive/fotos/größe/"}  # fmt: skip
    template = {
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    cfn.create_stack(StackName="Facepipe", TemplateBody=json.dumps(template))
    target = ops.stack_target("Facepipe", boto3.session.Session(region_name=REGION))
    assert (target.bucket, target.table, target.dlq_url, target.function_name) == (BUCKET, TABLE, env.dlq_url, FUNCTION)
    # a watched prefix may hold a space: each location ends where the next s3:// begins
    assert target.locations == (f"s3://{BUCKET}/Camera Uploads/", "s3://archive/fotos/größe/")
    with pytest.raises(ops.OpsError, match="Nope"):
        ops.stack_target("Nope", boto3.session.Session(region_name=REGION))


def test_errors_are_one_line_and_exit_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEPIPE_STATE_DIR", str(tmp_path))
    assert main(["results", "--local"]) == 1
    err = capsys.readouterr().err
    assert err == "error: no local stack is running: start one with `python -m facepipe local up`\n"


# ---- show ------------------------------------------------------------------------------------------------


def test_show_draws_the_stored_boxes_on_the_analysed_version(env: Env, tmp_path: Path) -> None:
    photo = photos.photo("astronaut.jpg")
    env.store_result("team.jpg", faces=1, body=photo)
    env.s3.put_object(Bucket=BUCKET, Key="team.jpg", Body=photos.photo("coffee.jpg"))  # a newer, unanalysed version
    out = tmp_path / "team.png"

    _path, result = ops.show(env.target, "s3://uploads/team.jpg", str(out))

    drawn = Image.open(out)
    original = Image.open(io.BytesIO(photo)).convert("RGB")
    assert drawn.format == "PNG" and drawn.size == original.size  # the analysed version, not the newer one
    box = result.faces[0]["BoundingBox"]
    x, y = int(box["Left"] * original.width), int((box["Top"] + box["Height"] / 2) * original.height)
    assert drawn.convert("RGB").getpixel((x, y)) != original.getpixel((x, y))  # the box's left edge is drawn


def test_show_explains_what_it_cannot_draw(env: Env) -> None:
    env.store_result("bad.jpg", reject="InvalidImageFormatException: not a JPEG")
    with pytest.raises(ops.OpsError, match="REJECTED: InvalidImageFormatException"):
        ops.show(env.target, "s3://uploads/bad.jpg", None)
    with pytest.raises(ops.OpsError, match="no result"):
        ops.show(env.target, "s3://uploads/none.jpg", None)
    with pytest.raises(ops.OpsError, match="expected s3://"):
        ops.show(env.target, "uploads/none.jpg", None)


# ---- failures --------------------------------------------------------------------------------------------


def test_failures_are_listed_without_being_consumed(env: Env) -> None:
    for i in range(12):
        env.failure(f"f{i}.jpg")
    env.sqs.send_message(QueueUrl=env.dlq_url, MessageBody="not json")

    failures = ops.list_failures(env.target)

    assert len(failures) == 13
    summaries = sorted((f.summary() for f in failures), key=lambda s: s["key"])
    assert summaries[0]["error_type"] == "not a failure record"
    assert {s["key"] for s in summaries[1:]} == {f"f{i}.jpg" for i in range(12)}
    assert all(s["error_type"] == "ThrottlingException" and s["attempts"] == 3 for s in summaries[1:])
    assert env.visible() == 13  # still there, visible again


# ---- redrive ---------------------------------------------------------------------------------------------


def test_redrive_deletes_only_what_the_function_accepted(env: Env) -> None:
    bodies = {
        env.failure(k)["requestPayload"]["Records"][0]["s3"]["object"]["key"]: k for k in ("a.jpg", "b.jpg", "c.jpg")
    }
    env.sqs.send_message(QueueUrl=env.dlq_url, MessageBody="not a record")
    env.stub.add_response(
        "invoke", {"StatusCode": 202}, {"FunctionName": FUNCTION, "InvocationType": "Event", "Payload": ANY}
    )
    env.stub.add_response(
        "invoke", {"StatusCode": 202}, {"FunctionName": FUNCTION, "InvocationType": "Event", "Payload": ANY}
    )
    env.stub.add_client_error("invoke", service_error_code="TooManyRequestsException", http_status_code=429)
    clock = FakeClock()

    with pytest.raises(ops.OpsError, match="TooManyRequestsException"):
        ops.redrive(env.target, limiter=limiter(10, clock))

    # two replays accepted and deleted; the refused one and the non-record stay, visible again
    assert env.dlq_depth() == 2 and env.visible() == 2
    left = {f.summary()["key"] for f in ops.list_failures(env.target)}
    assert len(left & set(bodies)) == 1 and ops.UNKNOWN_KEY in left


def test_redrive_replays_the_request_payload_marked_as_a_redrive(env: Env) -> None:
    body = env.failure("a.jpg")
    expected = json.dumps({**body["requestPayload"], "facepipeRedrive": "run-1"}).encode()
    env.stub.add_response("invoke", {"StatusCode": 202},
                          {"FunctionName": FUNCTION, "InvocationType": "Event", "Payload": expected})  # fmt: skip
    report = ops.redrive(env.target, limiter=limiter(10, FakeClock()), run_id="run-1")
    assert (report.replayed, env.dlq_depth()) == (1, 0)


def test_redrive_dry_run_and_max(env: Env) -> None:
    for k in ("a.jpg", "b.jpg", "c.jpg"):
        env.failure(k)
    report = ops.redrive(env.target, dry_run=True, limiter=limiter(10, FakeClock()))
    assert len(report.planned) == 3 and env.visible() == 3  # nothing invoked (the Stubber would fail), nothing deleted

    env.stub.add_response("invoke", {"StatusCode": 202})
    env.stub.add_response("invoke", {"StatusCode": 202})
    clock = FakeClock()
    report = ops.redrive(env.target, max_messages=2, limiter=limiter(4, clock))
    assert report.replayed == 2 and env.visible() == 1
    assert clock.slept == [0.25]  # 4 per second: the second replay waited a quarter second


# ---- backfill --------------------------------------------------------------------------------------------


def test_backfill_skips_done_objects_and_honours_the_rate(env: Env) -> None:
    env.store_result("old/done1.jpg")
    env.store_result("old/done2.jpg", reject="InvalidImageFormatException: x")
    versions = {k: env.s3.put_object(Bucket=BUCKET, Key=k, Body=b"img")["VersionId"]
                for k in ("old/a b.jpg", "old/c+d.JPG", "old/e.png")}  # fmt: skip
    env.s3.put_object(Bucket=BUCKET, Key="new/x.jpg", Body=b"img")  # outside the prefix
    payloads: list[dict[str, Any]] = []
    for _ in versions:
        env.stub.add_response("invoke", {"StatusCode": 202})
    env.lambda_.meta.events.register(
        "provide-client-params.lambda.Invoke", lambda params, **_: payloads.append(json.loads(params["Payload"]))
    )
    clock = FakeClock()

    report = ops.backfill(env.target, "s3://uploads/old/", limiter=limiter(2, clock))

    assert (report.listed, report.skipped_done, report.invoked) == (5, 2, 3)
    assert clock.slept == [0.5, 0.5]  # 3 invokes at 2/s: spaced half a second apart
    records = [p["Records"][0] for p in payloads]
    decoded = {ImageEvent.from_record(r).ref.key: ImageEvent.from_record(r) for r in records}
    assert set(decoded) == set(versions)  # keys survive the URL encoding S3 events use
    assert all(decoded[k].ref.version_id == v for k, v in versions.items())
    assert all(int(r["s3"]["object"]["sequencer"], 16) == 0 for r in records)  # never beats a real event


def test_backfill_dry_run_and_resume(env: Env) -> None:
    for k in ("a.jpg", "b.jpg"):
        env.s3.put_object(Bucket=BUCKET, Key=k, Body=b"img")
    report = ops.backfill(env.target, "s3://uploads", limiter=limiter(5, FakeClock()), dry_run=True)
    assert report.planned == ["a.jpg", "b.jpg"] and report.invoked == 0
    env.store_result("a.jpg")
    env.stub.add_response("invoke", {"StatusCode": 202})
    report = ops.backfill(env.target, "s3://uploads", limiter=limiter(5, FakeClock()), start_after="")
    assert (report.skipped_done, report.invoked) == (1, 1)
    with pytest.raises(ops.OpsError, match="s3://elsewhere/ is not watched by this stack; it watches s3://uploads/"):
        ops.backfill(env.target, "s3://elsewhere/", limiter=limiter(5, FakeClock()))


def test_cli_tables_for_results_failures_and_a_dry_run(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "stack_target", lambda name: env.target)
    env.store_result("photos/a.jpg", faces=2)
    env.store_result("photos/b.jpg", reject="InvalidImageFormatException: not a JPEG or PNG")
    env.failure("photos/c.jpg", error="AccessDeniedException")

    assert main(["results", "photos/"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["key", "status", "faces", "reason", "time"]
    assert lines[2].split()[:3] == ["photos/a.jpg", "DETECTED", "2"]
    assert lines[3].split()[:4] == ["photos/b.jpg", "REJECTED", "-", "InvalidImageFormatException:"]

    assert main(["failures"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["key", "version", "errorType", "message", "attempts", "time"]
    assert lines[2].split()[:3] == ["photos/c.jpg", "-", "AccessDeniedException"]

    assert main(["redrive", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would replay photos/c.jpg (AccessDeniedException: Rate exceeded)" in out
    assert "1 record(s) would be replayed; nothing was changed" in out
    assert env.visible() == 1


def test_backfill_engine_invoke_is_the_default_and_local_its_deprecated_name(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "stack_target", lambda name: env.target)
    env.s3.put_object(Bucket=BUCKET, Key="old/a.jpg", Body=b"img")
    assert main(["backfill", "s3://uploads/old/", "--engine", "invoke", "--dry-run"]) == 0
    invoke = capsys.readouterr()
    assert "1 of 1 object(s) have no result and would be processed" in invoke.out and invoke.err == ""
    assert main(["backfill", "s3://uploads/old/", "--engine", "local", "--dry-run"]) == 0
    local = capsys.readouterr()
    assert local.out == invoke.out  # the same engine, and one line saying so
    assert local.err == "facepipe: --engine local is deprecated; use --engine invoke (the same engine)\n"
    env.stub.add_response("invoke", {"StatusCode": 202})
    assert main(["backfill", "s3://uploads/old/", "--rate", "1000"]) == 0
    assert capsys.readouterr().out == f"1 object(s) sent to {FUNCTION}; 0 already had a result\n"


# ---- several buckets and prefixes (facepipe:existingBuckets / keyPrefixes) ----------------------------------------
def two_bucket_target(env: Env) -> ops.Target:
    env.s3.create_bucket(Bucket="archive")
    env.s3.put_bucket_versioning(Bucket="archive", VersioningConfiguration={"Status": "Enabled"})
    return ops.Target(BUCKET, TABLE, env.dlq_url, FUNCTION, client_for=env.target.client_for,
                      locations=(f"s3://{BUCKET}/photos/", "s3://archive/photos/"))  # fmt: skip


def store_in(env: Env, bucket: str, key: str) -> None:
    version = env.s3.put_object(Bucket=bucket, Key=key, Body=b"x")["VersionId"]
    event = ImageEvent.from_record(s3_record(bucket, key, version_id=version))
    now = datetime.now(UTC)
    claim = env.claims.claim(event, "t", now, lease_seconds=60, redrive=False)
    env.claims.store_detected(event, claim, detect_faces_response(1)["FaceDetails"], "DEFAULT", now)


def test_results_and_failures_take_s3_uris_for_any_watched_bucket(env: Env) -> None:
    target = two_bucket_target(env)
    store_in(env, BUCKET, "photos/a.jpg")
    store_in(env, "archive", "photos/b.jpg")
    store_in(env, "archive", "photos/2020/c.jpg")
    everything = [(r.bucket, r.key) for r in ops.list_results(target)]
    assert everything == [(BUCKET, "photos/a.jpg"), ("archive", "photos/2020/c.jpg"), ("archive", "photos/b.jpg")]
    assert [r.key for r in ops.list_results(target, "s3://archive/photos/2020/")] == ["photos/2020/c.jpg"]
    assert [(r.bucket, r.key) for r in ops.list_results(target, "photos/a")] == [(BUCKET, "photos/a.jpg")]
    with pytest.raises(ops.OpsError, match=r"s3://nobody/ is not watched .* it watches s3://uploads/photos/ "
                                           r"s3://archive/photos/"):  # fmt: skip
        list(ops.list_results(target, "s3://nobody/photos/"))

    env.failure("photos/x.jpg")  # in the uploads bucket
    record = s3_record("archive", "photos/y.jpg")
    body = {"requestPayload": {"Records": [record]}, "responsePayload": {"errorType": "ThrottlingException"}}
    env.sqs.send_message(QueueUrl=env.dlq_url, MessageBody=json.dumps(body))
    assert {f.summary()["bucket"] for f in ops.list_failures(target)} == {BUCKET, "archive"}
    (archived,) = ops.list_failures(target, where="s3://archive/")
    assert archived.summary()["key"] == "photos/y.jpg"
    assert ops.list_failures(target, where="s3://archive/other/") == []


def test_backfill_is_held_to_the_watched_prefixes_of_any_watched_bucket(env: Env) -> None:
    target = two_bucket_target(env)
    env.s3.put_object(Bucket="archive", Key="photos/old.jpg", Body=b"img")
    env.s3.put_object(Bucket="archive", Key="elsewhere/old.jpg", Body=b"img")
    env.stub.add_response("invoke", {"StatusCode": 202})
    report = ops.backfill(target, "s3://archive/photos/", limiter=limiter(5, FakeClock()))
    assert (report.listed, report.invoked) == (1, 1)
    with pytest.raises(ops.OpsError, match="reads only under s3://uploads/photos/ s3://archive/photos/"):
        ops.backfill(target, "s3://archive/", limiter=limiter(5, FakeClock()))  # the role cannot read elsewhere/


def test_an_eventbridge_delivery_failure_is_listed_and_replayed_as_the_event_itself(env: Env) -> None:
    from tests.helpers import eventbridge

    event = eventbridge("Object Created", "photos/lost.jpg", sequencer="0A1B2C3D4E5F6071")
    env.sqs.send_message(
        QueueUrl=env.dlq_url,
        MessageBody=json.dumps(event),
        MessageAttributes={
            "ERROR_CODE": {"DataType": "String", "StringValue": "ResourceNotFoundException"},
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": "Function not found"},
            "RULE_ARN": {"DataType": "String", "StringValue": "arn:aws:events:us-east-1:123456789012:rule/r"},
        },
    )
    (failure,) = ops.list_failures(env.target)
    summary = failure.summary()
    assert (summary["key"], summary["error_type"], summary["error_message"]) == (
        "photos/lost.jpg", "ResourceNotFoundException", "Function not found")  # fmt: skip
    assert failure.replayable
    env.stub.add_response("invoke", {"StatusCode": 202}, {"FunctionName": FUNCTION, "InvocationType": "Event",
                                                          "Payload": ANY})  # fmt: skip
    report = ops.redrive(env.target, limiter=limiter(5, FakeClock()), run_id="run-1")
    assert report.replayed == 1 and env.dlq_depth() == 0
