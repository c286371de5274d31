"""`failures` and `redrive` against whatever a DLQ can hold: anything a person or another system sent, and a run
that outlasts the visibility timeout it sets."""

from __future__ import annotations

import json
import time
from typing import Any

import moto.sqs.models
import pytest
from botocore.exceptions import ClientError

from facepipe import ops
from facepipe.cli import main
from facepipe.ops.failures import RAW_EXCERPT
from tests.helpers import BUCKET, TABLE, Aws, FakeClock, eventbridge, limiter, s3_record

pytestmark = pytest.mark.integration

FUNCTION = "detect-faces-fn"


class FakeLambda:
    """Lambda's Invoke for the replays: accepts each one (202) and records its payload, or refuses the n-th call
    (1-based) with an error code."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.refuse: dict[int, str] = {}
        self.calls = 0

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        assert (FunctionName, InvocationType) == (FUNCTION, "Event")
        self.calls += 1
        if self.calls in self.refuse:
            code = self.refuse[self.calls]
            raise ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, "Invoke")
        self.payloads.append(json.loads(Payload))
        return {"StatusCode": 202}

    def replayed_keys(self) -> list[str]:
        return [p["Records"][0]["s3"]["object"]["key"] for p in self.payloads]


class Dlq:
    """The DLQ of the tests (moto), the ops Target around it and a fake Lambda that takes the replays."""

    def __init__(self, aws: Aws) -> None:
        self.sqs, self.url = aws.sqs, aws.queue_url
        self.lambda_ = FakeLambda()
        clients = {"s3": aws.s3, "dynamodb": aws.dynamodb, "sqs": aws.sqs, "lambda": self.lambda_}
        self.target = ops.Target(BUCKET, TABLE, self.url, FUNCTION, client_for=clients.__getitem__)

    def send(self, body: str, attributes: dict[str, str] | None = None) -> str:
        return str(
            self.sqs.send_message(
                QueueUrl=self.url,
                MessageBody=body,
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()},
            )["MessageId"]
        )

    def record(self, key: str, **fields: Any) -> dict[str, Any]:
        """A failure record as Lambda's on-failure destination writes it; `fields` replace its top-level fields."""
        body = {
            "version": "1.0",
            "timestamp": "2026-11-28T12:00:00.000Z",
            "requestContext": {"requestId": "r", "functionArn": "arn", "condition": "RetriesExhausted",
                               "approximateInvokeCount": 3},
            "requestPayload": {"Records": [s3_record(BUCKET, key)]},
            "responseContext": {"statusCode": 200},
            "responsePayload": {"errorType": "ThrottlingException", "errorMessage": "Rate exceeded"},
            **fields,
        }  # fmt: skip
        return body

    def count(self, *names: str) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=list(names))["Attributes"]
        return sum(int(attributes[n]) for n in names)

    def visible(self) -> int:
        return self.count("ApproximateNumberOfMessages")

    def hidden(self) -> int:
        return self.count("ApproximateNumberOfMessagesNotVisible")


@pytest.fixture
def dlq(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Dlq:
    d = Dlq(aws)
    monkeypatch.setattr(ops, "stack_target", lambda name: d.target)
    return d


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def odd_messages(dlq: Dlq) -> dict[str, str]:
    """Every kind of message a DLQ can hold that is not a readable failure record: body -> why it is unreadable
    (a fragment of the reason `failures` and `redrive` give)."""
    good = dlq.record("x.jpg")
    record = s3_record(BUCKET, "x.jpg")
    huge_size = {**record, "s3": {**record["s3"], "object": {**record["s3"]["object"], "size": "1" * 5000}}}
    numeric_key = {**record, "s3": {**record["s3"], "object": {**record["s3"]["object"], "key": 5}}}
    return {
        nested(60_000): "nested",  # 120 KB of nested arrays: RecursionError in json.loads
        nested(1200): "nested",
        json.dumps({**good, "requestPayload": {"Records": [record], "deep": json.loads(nested(600))}}): "nested",
        "hello, DLQ": "not JSON",
        "1" * 5000: "not JSON",  # a number past Python's int-from-text limit: ValueError, not JSONDecodeError
        "": "not JSON",
        "42": "not a JSON object",
        '"text"': "not a JSON object",
        "null": "not a JSON object",
        "true": "not a JSON object",
        json.dumps([good]): "not a JSON object",
        json.dumps({"hello": "world"}): "requestPayload is missing",
        json.dumps({**good, "requestPayload": "Records"}): "requestPayload is missing",
        json.dumps({**good, "requestPayload": [record]}): "requestPayload is missing",
        json.dumps({**good, "requestPayload": {"Records": "x"}}): "no S3 records",
        json.dumps({**good, "requestPayload": {"Records": []}}): "no S3 records",
        json.dumps({**good, "requestPayload": {"Records": [1, None]}}): "cannot be parsed",
        json.dumps({**good, "requestPayload": {"Records": [huge_size]}}): "cannot be parsed",
        json.dumps({**good, "requestPayload": {"Records": [numeric_key]}}): "cannot be parsed",
    }


def wrong_types(dlq: Dlq, key: str) -> str:
    """A failure record whose record is fine but whose other fields have the wrong types."""
    return json.dumps(
        dlq.record(
            key,
            timestamp=1764331200,
            requestContext={"approximateInvokeCount": "three", "condition": ["RetriesExhausted"]},
            responsePayload={"errorType": {"code": 7}, "errorMessage": ["a", "b"]},
        )
    )


# ---- failures -------------------------------------------------------------------------------------------------


def test_failures_lists_every_message_whatever_it_holds(dlq: Dlq, capsys: pytest.CaptureFixture[str]) -> None:
    odd = odd_messages(dlq)
    ids = {dlq.send(body): body for body in odd}
    ids[dlq.send(wrong_types(dlq, "typed.jpg"))] = "typed"
    event = eventbridge("Object Created", "photos/lost.jpg", sequencer="0A1B2C3D4E5F6071")
    ids[dlq.send(json.dumps(event), {"ERROR_CODE": "ResourceNotFoundException", "ERROR_MESSAGE": "gone"})] = "eb"
    ids[dlq.send(json.dumps(dlq.record("good.jpg")))] = "good"

    failures = ops.list_failures(dlq.target)

    assert {f.message_id for f in failures} == set(ids)
    by_id = {f.message_id: f.summary() for f in failures}
    for message_id, body in ids.items():
        summary = by_id[message_id]
        # every field the table prints is text (or None), whatever type the message gave it
        for name in ("key", "error_type", "error_message", "time"):
            assert isinstance(summary[name], str), (name, summary)
        for name in ("version_id", "condition", "problem"):
            assert summary[name] is None or isinstance(summary[name], str), (name, summary)
        assert summary["attempts"] is None or type(summary["attempts"]) in (int, str)
        if body in odd:
            assert odd[body] in summary["problem"], summary
            assert summary["key"] == ops.UNKNOWN_KEY or summary["key"] == "x.jpg"
            assert len(summary["error_message"]) <= RAW_EXCERPT + 100
    typed = next(s for i, s in by_id.items() if ids[i] == "typed")
    assert typed["problem"] is None and typed["key"] == "typed.jpg"
    assert (typed["time"], typed["attempts"], typed["condition"]) == ("1764331200", "three", '["RetriesExhausted"]')
    assert (typed["error_type"], typed["error_message"]) == ('{"code": 7}', '["a", "b"]')
    unreadable = next(s for i, s in by_id.items() if ids[i] == "hello, DLQ")
    assert unreadable["error_type"] == "not a failure record" and "hello, DLQ" in unreadable["error_message"]
    deep = next(s for i, s in by_id.items() if ids[i] == nested(60_000))
    assert deep["error_message"].startswith("[[[[") and "120000 characters" in deep["error_message"]
    undelivered = next(s for i, s in by_id.items() if ids[i] == "eb")
    assert (undelivered["key"], undelivered["error_type"], undelivered["problem"]) == (
        "photos/lost.jpg", "ResourceNotFoundException", None)  # fmt: skip
    assert dlq.visible() == len(ids)  # nothing consumed, everything visible again

    # the filter reads each summary: no message stops it
    assert {f.summary()["key"] for f in ops.list_failures(dlq.target, where="s3://uploads/good")} == {"good.jpg"}

    # the commands print a row (or a JSON line) per message, whatever it holds
    assert main(["failures"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["key", "version", "errorType"] and len(lines) == 2 + len(ids)
    assert max(len(line) for line in lines) < 400
    assert main(["failures", "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {p["message_id"] for p in printed} == set(ids)
    for p in printed:
        if p["record"] is None:  # unreadable: the raw body, truncated
            assert p["raw"] == ids[p["message_id"]][:RAW_EXCERPT]
        else:
            assert "raw" not in p


# ---- redrive --------------------------------------------------------------------------------------------------


def test_redrive_leaves_unreadable_messages_in_place_with_their_reasons(
    dlq: Dlq, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = odd_messages(dlq)
    for body in odd:
        dlq.send(body)
    dlq.send(wrong_types(dlq, "typed.jpg"))
    dlq.send(json.dumps(dlq.record("good.jpg")))

    report = ops.redrive(dlq.target, limiter=limiter(100, FakeClock()), run_id="run-1")

    assert sorted(dlq.lambda_.replayed_keys()) == ["good.jpg", "typed.jpg"]
    assert report.replayed == 2 and report.skipped == len(odd)
    assert sum(report.cannot_replay.values()) == len(odd)
    assert set(report.cannot_replay) >= {"body is not JSON", "body is not a JSON object"}
    assert (dlq.visible(), dlq.hidden(), report.left) == (len(odd), 0, len(odd))  # left, and visible at once

    # the dry run and the command say the same, and end normally
    report = ops.redrive(dlq.target, dry_run=True, limiter=limiter(100, FakeClock()))
    assert report.planned == [] and report.skipped == len(odd)
    assert main(["redrive"]) == 0
    out = capsys.readouterr().out
    assert f"{len(odd)} message(s) cannot be replayed and were left in the DLQ:" in out
    assert "body is not JSON" in out and "body is not a JSON object" in out
    assert f"left in the DLQ: {len(odd)}" in out
    assert dlq.visible() == len(odd)


def test_a_replay_lambda_refuses_for_its_content_is_left_and_the_run_goes_on(
    dlq: Dlq, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("a.jpg", "b.jpg", "c.jpg"):
        dlq.send(json.dumps(dlq.record(key)))
    dlq.lambda_.refuse = {2: "RequestTooLargeException"}

    report = ops.redrive(dlq.target, limiter=limiter(100, FakeClock()))

    assert report.replayed == 2 and len(dlq.lambda_.payloads) == 2
    assert report.cannot_replay == {"Lambda refused the replay: RequestTooLargeException": 1}
    assert (dlq.visible(), dlq.hidden(), report.left) == (1, 0, 1)

    # a refusal that is not about the message itself still stops the run, leaving the rest
    dlq.send(json.dumps(dlq.record("d.jpg")))
    dlq.lambda_.calls, dlq.lambda_.refuse = 0, {1: "TooManyRequestsException", 2: "TooManyRequestsException"}
    assert main(["redrive"]) == 1
    assert "TooManyRequestsException" in capsys.readouterr().err
    assert (dlq.visible(), dlq.hidden()) == (2, 0)


# ---- a run longer than the visibility timeout ----------------------------------------------------------------


class SqsClock(FakeClock):
    """The redrive's pacing clock, and moto's SQS clock with it: each pacing sleep moves moto's time on too, so a
    run of many simulated minutes takes a second. moto's SQS reads time through `unix_time`/`unix_time_millis`
    (visibility timeouts, long polling); they are shifted by the simulated time slept, so real time still passes
    for moto's long polls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        self.offset = 0.0
        monkeypatch.setattr(moto.sqs.models, "unix_time", lambda dt=None: time.time() + self.offset)
        monkeypatch.setattr(moto.sqs.models, "unix_time_millis", lambda dt=None: (time.time() + self.offset) * 1000)

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.offset += seconds


def latest_receipt_handles_only(sqs: Any) -> list[str]:
    """SQS gives a message a new receipt handle each time it is received, and acts only on the latest one (the
    SQS API reference, DeleteMessage: "you must provide the most recently received ReceiptHandle for the message
    (otherwise, the request succeeds, but the message will not be deleted)"; a stale handle does not change the
    visibility of a message received again). moto accepts any handle the message ever had. Returns the list of
    stale handles used, to assert empty."""
    latest: dict[str, str] = {}  # message id -> its latest receipt handle
    owner: dict[str, str] = {}  # receipt handle -> message id
    stale: list[str] = []

    def received(parsed: dict[str, Any], **_: Any) -> None:
        for m in parsed.get("Messages", []):
            latest[m["MessageId"]] = m["ReceiptHandle"]
            owner[m["ReceiptHandle"]] = m["MessageId"]

    def check(handle: str) -> None:  # a handler that returns a value would replace the call's parameters
        if latest.get(owner.get(handle, ""), handle) != handle:
            stale.append(handle)

    def deleting(params: dict[str, Any], **_: Any) -> None:
        check(params["ReceiptHandle"])

    def releasing(params: dict[str, Any], **_: Any) -> None:
        for entry in params["Entries"]:
            check(entry["ReceiptHandle"])

    sqs.meta.events.register("after-call.sqs.ReceiveMessage", received)
    sqs.meta.events.register("provide-client-params.sqs.DeleteMessage", deleting)
    sqs.meta.events.register("provide-client-params.sqs.ChangeMessageVisibilityBatch", releasing)
    return stale


def test_a_redrive_longer_than_its_visibility_timeout_reaches_every_message_once(
    dlq: Dlq, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a queue with more messages that stay (not failure records) than one receive returns, then records
    for i in range(25):
        dlq.send(f"not a record {i}")
    keys = [f"r{i:02d}.jpg" for i in range(25)]
    for key in keys:
        dlq.send(json.dumps(dlq.record(key)))
    stale = latest_receipt_handles_only(dlq.sqs)
    clock = SqsClock(monkeypatch)

    # When the run replays at 1 per 100 s: 2,500 s, far past the 300 s for which each receive hides a message
    report = ops.redrive(dlq.target, limiter=limiter(0.01, clock))

    # Then every record was replayed exactly once: meeting the kept messages again ended nothing early
    assert sorted(dlq.lambda_.replayed_keys()) == keys
    assert clock.offset > 300 * 5
    assert (report.replayed, report.skipped) == (25, 25)
    # and the kept messages are visible at once, released by their latest receipt handles
    assert stale == [] and report.hidden == 0
    assert (dlq.visible(), dlq.hidden(), report.left) == (25, 0, 25)


def test_messages_sqs_does_not_make_visible_again_are_reported(
    dlq: Dlq, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(3):
        dlq.send(f"not a record {i}")

    def refuse(**params: Any) -> dict[str, Any]:
        entries = params["Entries"]
        return {"Successful": [], "Failed": [{"Id": e["Id"], "SenderFault": True, "Code": "ReceiptHandleIsInvalid",
                                              "Message": "injected"} for e in entries]}  # fmt: skip

    monkeypatch.setattr(dlq.sqs, "change_message_visibility_batch", refuse)

    assert main(["redrive"]) == 0

    out = capsys.readouterr().out
    assert "3 message(s) cannot be replayed and were left in the DLQ:" in out
    assert "3 message(s) could not be made visible again; they reappear within 5 minutes" in out
    assert ops.redrive(dlq.target, limiter=limiter(100, FakeClock())).skipped == 0  # hidden, as reported
