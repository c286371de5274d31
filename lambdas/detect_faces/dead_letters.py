"""Failure records to the dead-letter queue, in the shape of Lambda's on-failure destination record."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .model import ObjectRef, utc_iso

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class DeadLetterWriter:
    """Writes failure records in the shape of Lambda's on-failure destination record."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, record: Mapping[str, Any], *, ref: ObjectRef | None = None) -> str:
        """One failure record (failure_record's) to the queue. Its error type, and the object when known, are also
        in the message attributes."""
        attributes = {"errorType": str(record["responsePayload"]["errorType"])}
        if ref is not None:
            attributes.update(bucket=ref.bucket, key=ref.key)
        response = self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=json.dumps(record),  # ASCII JSON: any key survives here exactly
            MessageAttributes={
                name: {"DataType": "String", "StringValue": sqs_attribute_value(value)}
                for name, value in attributes.items()
            },
        )
        return str(response["MessageId"])


# Characters SQS accepts in message bodies and attribute values (SendMessage: "#x9 | #xA | #xD | #x20 to
# #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"). S3 keys may hold others.
_SQS_ACCEPTED = "\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff"
MAX_ATTRIBUTE_CHARS = 1024


@functools.cache
def _sqs_rejected() -> re.Pattern[str]:
    return re.compile(f"[^{_SQS_ACCEPTED}]")  # compiled on the DLQ path only: ~5 ms at cold start otherwise


def sqs_attribute_value(value: str) -> str:
    """A message attribute value SQS accepts: characters it rejects become U+FFFD, long values are cut.
    Attributes are for filtering and a glance; the body keeps the exact key."""
    cleaned = _sqs_rejected().sub("\ufffd", value)
    if len(cleaned) > MAX_ATTRIBUTE_CHARS:
        cleaned = cleaned[: MAX_ATTRIBUTE_CHARS - 1] + "\u2026"
    return cleaned or "-"


def failure_record(
    payload: Mapping[str, object],
    *,
    error_type: str,
    error_message: str,
    request_id: str,
    function_arn: str,
    function_version: str = "$LATEST",
    now: datetime | None = None,
    condition: str = "NonRetryableError",
    invoke_count: int = 1,
    stack_trace: list[str] | None = None,
) -> dict[str, Any]:
    """The record Lambda's on-failure destination writes; requestPayload (`payload`) is what a redrive replays:
    the one record the function dead-lettered, as an event, or the whole event Lambda gave up on."""
    response: dict[str, Any] = {"errorType": error_type, "errorMessage": error_message}
    context: dict[str, Any] = {"statusCode": 200, "executedVersion": function_version}
    if stack_trace is not None:
        response["stackTrace"] = stack_trace
        context["functionError"] = "Unhandled"
    return {
        "version": "1.0",
        "timestamp": utc_iso(now),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": payload,
        "responseContext": context,
        "responsePayload": response,
    }
