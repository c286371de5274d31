"""The local runtime's intake (the notification queue it reads as Lambda's async queue) survives any message:
one it cannot read is set aside in the DLQ, and every later upload still reaches its outcome."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from facepipe.common import photos
from tests.helpers import Local

pytestmark = pytest.mark.e2e

NOT_JSON = "hello from someone's script, not an S3 event {"
NOT_S3 = {"hello": "world"}


def test_a_bad_message_on_the_notification_queue_does_not_stop_later_uploads(
    local: Local, caplog: pytest.LogCaptureFixture
) -> None:
    assert local.p.runtime is not None
    queue = local.p.notifications_url
    # Given a message that is not JSON, and a JSON one that is not an S3 event, on the notification queue
    with caplog.at_level(logging.WARNING, logger="facepipe.runtime"):
        unreadable = local.sqs.send_message(QueueUrl=queue, MessageBody=NOT_JSON)["MessageId"]
        local.sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(NOT_S3))
        local.events += 1  # an invocation, as Lambda would make it: the function decides

        # When an image is uploaded after them
        local.upload("after/astronaut.jpg", photos.photo("astronaut.jpg"))
        local.settle(timeout=60)

    # Then the image reaches its outcome
    assert local.result("after/astronaut.jpg").status == "DETECTED"
    assert local.result("after/astronaut.jpg").face_count == 1
    # and neither bad message is lost: the unreadable one is set aside in the DLQ as a failure record, with a
    # warning naming it; the other ran through the function, Lambda's retries and the on-failure destination
    (aside,) = [r for r in local.dlq() if isinstance(r["requestPayload"], str)]
    assert aside["requestPayload"] == NOT_JSON
    assert aside["responsePayload"]["errorType"] == "InvalidEventError"
    assert unreadable in aside["responsePayload"]["errorMessage"]
    (failed,) = [r for r in local.dlq() if r["requestPayload"] == NOT_S3]
    assert (failed["responsePayload"]["errorType"], failed["requestContext"]["condition"]) == (
        "InvalidEventError", "RetriesExhausted")  # fmt: skip
    (warning,) = [r for r in caplog.records if r.name == "facepipe.runtime" and r.levelno == logging.WARNING]
    assert unreadable in warning.getMessage() and NOT_JSON[:20] in warning.getMessage()
    assert (warning.__dict__["message_id"], warning.__dict__["excerpt"]) == (unreadable, NOT_JSON)
    assert local.p.runtime.stats.set_aside == 1
    # and the notification queue holds nothing more: both were taken off it
    attributes = local.sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert sum(int(v) for v in attributes.values()) == 0


def test_the_intake_keeps_a_message_it_cannot_set_aside_and_goes_on(
    local: Local, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the DLQ refuses what the intake would set aside there (its queue gone, a network error)
    runtime = local.p.runtime
    assert runtime is not None
    sent = runtime.sqs.send_message

    def refuse_dead_letters(**kwargs: Any) -> Any:  # SendMessage's parameters and answer, passed on
        if kwargs.get("QueueUrl") == local.p.dlq_url:
            raise ConnectionError("injected: DLQ unreachable")
        return sent(**kwargs)

    monkeypatch.setattr(runtime.sqs, "send_message", refuse_dead_letters)
    with caplog.at_level(logging.WARNING, logger="facepipe.runtime"):
        local.sqs.send_message(QueueUrl=local.p.notifications_url, MessageBody=NOT_JSON)
        # When an image is uploaded after it
        local.upload("kept/astronaut.jpg", photos.photo("astronaut.jpg"))
        local.settle(timeout=60)

    # Then the image reaches its outcome, and the unreadable message stays on the queue (not lost) for a later try
    assert local.result("kept/astronaut.jpg").status == "DETECTED"
    assert runtime.stats.set_aside == 0
    assert any("could not be set aside" in r.getMessage() for r in caplog.records)
    attributes = local.sqs.get_queue_attributes(
        QueueUrl=local.p.notifications_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert sum(int(v) for v in attributes.values()) == 1
