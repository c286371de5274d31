"""`failures` and `redrive` on the redaction function's failure records, whose requestPayload is a facepipe
outcome event (docs/REDACTION.md, "Failure outcomes"): listed by the image the outcome is about, replayed to the
redaction function, and left (with the reason) when the target names none."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from detect_faces.dead_letters import failure_record
from facepipe import ops
from facepipe.common.clients import ClientFor
from facepipe.ops.failures import Failure, is_outcome_event
from facepipe.ops.redrive import NO_REDACTION_FUNCTION, _no_function, function_for

pytestmark = pytest.mark.unit

SEQUENCER = "0" * 24 + "0123456789ABCDEF"


def outcome_event(**detail: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "e-1",
        "source": "facepipe",
        "detail-type": "Faces Detected",
        "detail": {
            "bucket": "photos",
            "key": "team/day 1.jpg",
            "version_id": "v1",
            "etag": '"abc"',
            "size": 10,
            "sequencer": SEQUENCER,
            "status": "DETECTED",
            "face_count": 2,
            "finished_at": "2026-11-30T08:00:00.000Z",
            "table": "results",
            "pk": "photos/team/day 1.jpg",
            **detail,
        },
    }


def failure(body: dict[str, Any], attributes: dict[str, str] | None = None) -> Failure:
    raw = json.dumps(body)
    return Failure(message_id="m-1", receipt_handle="h", body=body, raw=raw, sent_at="", attributes=attributes)


def record(payload: dict[str, Any]) -> dict[str, Any]:
    return failure_record(payload, error_type="NoSuchVersion", error_message="gone", request_id="r",
                          function_arn="arn:aws:lambda:us-east-1:123456789012:function:redaction")  # fmt: skip


def target(redaction_function: str) -> ops.Target:
    return ops.Target(bucket="photos", table="results", dlq_url="https://q", function_name="detect",
                      client_for=cast("ClientFor", None), redaction_function_name=redaction_function)  # fmt: skip


def test_a_redaction_failure_lists_with_the_image_of_its_outcome() -> None:
    f = failure(record(outcome_event()))
    assert f.outcome_event and not f.undelivered
    assert f.problem is None and f.records == [f.payload]
    summary = f.summary()
    assert (summary["bucket"], summary["key"], summary["version_id"]) == ("photos", "team/day 1.jpg", "v1")
    assert (summary["error_type"], summary["error_message"], summary["records"]) == ("NoSuchVersion", "gone", 1)


def test_an_outcome_event_eventbridge_could_not_deliver_is_listed_and_replayable() -> None:
    f = failure(outcome_event(key="a.png", pk="photos/a.png"), {"ERROR_CODE": "ResourceNotFoundException"})
    assert f.undelivered and f.outcome_event and f.problem is None
    assert f.summary()["key"] == "a.png"
    assert f.summary()["error_type"] == "ResourceNotFoundException"


def test_an_outcome_event_the_function_cannot_parse_is_not_replayed() -> None:
    f = failure(record(outcome_event(sequencer="late")))
    assert f.outcome_event
    assert f.problem is not None and f.problem.startswith("outcome event cannot be parsed: detail.sequencer")


def test_replays_go_to_the_function_that_failed_and_none_without_a_redaction_function() -> None:
    redaction = failure(record(outcome_event()))
    detect = failure(record({"Records": [{"eventSource": "aws:s3"}]}))
    assert not detect.outcome_event and not is_outcome_event(detect.payload)
    assert function_for(target("redact"), redaction) == "redact"
    assert function_for(target("redact"), detect) == "detect"
    assert _no_function(target("redact"), redaction) is None
    assert _no_function(target(""), redaction) == NO_REDACTION_FUNCTION
    assert _no_function(target(""), detect) is None
