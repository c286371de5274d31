"""failures: the DLQ's messages, read without consuming them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from detect_faces.contract import REDRIVE_FLAG
from detect_faces.model import ImageEvent, InvalidEventError, is_eventbridge_s3

from .targets import Target


@dataclass
class Failure:
    message_id: str
    receipt_handle: str
    body: dict[str, Any] | None
    raw: str
    sent_at: str
    sent_ms: int = 0  # SQS's SentTimestamp (epoch milliseconds)
    attributes: dict[str, str] | None = None  # the message's SQS message attributes, as strings

    @property
    def undelivered(self) -> bool:
        """EventBridge's own DLQ message: an S3 event the rule could not hand to Lambda at all (the function
        deleted, its permission removed). The body is the event itself; ERROR_CODE/ERROR_MESSAGE say why."""
        return is_eventbridge_s3(self.body)

    @property
    def payload(self) -> dict[str, Any]:
        """What the function was (or would have been) invoked with: what a replay sends."""
        if self.undelivered:
            return dict(self.body or {})
        payload = (self.body or {}).get("requestPayload")
        return payload if isinstance(payload, dict) else {}

    @property
    def records(self) -> list[dict[str, Any]]:
        """The S3 records the failed event held; an EventBridge event (one object) counts as one."""
        payload = self.payload
        if is_eventbridge_s3(payload):
            return [payload]
        records = payload.get("Records") if isinstance(payload, dict) else None
        return records if isinstance(records, list) else []

    @property
    def redrive_run(self) -> Any:
        """The redrive run whose replay produced this record, if any."""
        return self.payload.get(REDRIVE_FLAG)

    @property
    def replayable(self) -> bool:
        """Every record is an S3 record the function can parse: a replay can reach an outcome other than
        being dead-lettered again as malformed."""
        if not self.records:
            return False
        try:
            for record in self.records:
                _parse(record)
        except (InvalidEventError, TypeError, AttributeError, KeyError):
            return False
        return True

    def summary(self) -> dict[str, Any]:
        body = self.body or {}
        response = _mapping(body.get("responsePayload"))
        if self.undelivered:
            attributes = self.attributes or {}
            response = {
                "errorType": attributes.get("ERROR_CODE", "EventBridgeDeliveryFailed"),
                "errorMessage": attributes.get("ERROR_MESSAGE", "EventBridge could not invoke the function"),
            }
        context = _mapping(body.get("requestContext"))
        first = _mapping(self.records[0]) if self.records else {}
        if is_eventbridge_s3(first):  # keys are not URL-encoded in EventBridge events
            detail = _mapping(first.get("detail"))
            obj, bucket = _mapping(detail.get("object")), _mapping(detail.get("bucket")).get("name")
            key, version = obj.get("key"), obj.get("version-id")
        else:
            obj = _mapping(_mapping(first.get("s3")).get("object"))
            bucket = _mapping(_mapping(first.get("s3")).get("bucket")).get("name")
            raw_key, version = obj.get("key"), obj.get("versionId")
            key = unquote_plus(raw_key) if isinstance(raw_key, str) else raw_key
        return {
            "message_id": self.message_id,
            "bucket": bucket if isinstance(bucket, str) else None,
            "key": key if isinstance(key, str) and key else UNKNOWN_KEY,
            "version_id": version if isinstance(version, str) else None,
            "records": len(self.records),
            "error_type": str(response.get("errorType", "?" if body else "not a failure record")),
            "error_message": str(response.get("errorMessage", "" if body else self.raw[:200])),
            "attempts": context.get("approximateInvokeCount"),
            "condition": context.get("condition"),
            "time": (None if self.undelivered else body.get("timestamp")) or self.sent_at,
        }


UNKNOWN_KEY = "<unknown>"


def _parse(record: dict[str, Any]) -> ImageEvent:
    return ImageEvent.from_eventbridge(record) if is_eventbridge_s3(record) else ImageEvent.from_record(record)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def receive(sqs: Any, url: str, visibility: int, limit: int) -> Iterator[list[Failure]]:
    """Batches of distinct messages, each hidden for `visibility` seconds, until `limit` or the queue is dry."""
    seen: set[str] = set()
    empty = 0
    while len(seen) < limit and empty < 2:
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, limit - len(seen)),
            VisibilityTimeout=visibility,
            WaitTimeSeconds=1,
            AttributeNames=["SentTimestamp"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        new = [m for m in messages if m["MessageId"] not in seen]
        empty = 0 if new else empty + 1
        batch = []
        for m in new:
            seen.add(m["MessageId"])
            try:
                body = json.loads(m["Body"])
            except json.JSONDecodeError:
                body = None
            sent = m.get("Attributes", {}).get("SentTimestamp")
            batch.append(
                Failure(
                    message_id=m["MessageId"],
                    receipt_handle=m["ReceiptHandle"],
                    body=body if isinstance(body, dict) else None,
                    raw=m["Body"],
                    sent_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(sent) / 1000)) if sent else "",
                    sent_ms=int(sent) if sent else 0,
                    attributes={
                        name: str(value.get("StringValue", ""))
                        for name, value in (m.get("MessageAttributes") or {}).items()
                    },
                )
            )
        if batch:
            yield batch


def list_failures(target: Target, limit: int = 1000, where: str = "") -> list[Failure]:
    """The DLQ's messages, left in the queue: received with a visibility timeout, then made visible again.
    `where` (s3://bucket/prefix, or a key prefix) keeps the records of those objects only."""
    sqs = target.client_for("sqs")
    failures = [f for batch in receive(sqs, target.dlq_url, visibility=60, limit=limit) for f in batch]
    release(sqs, target.dlq_url, failures)
    if not where:
        return failures
    places = target.where(where)
    summaries = [(f, f.summary()) for f in failures]  # one summary per failure, not one per place compared
    return [f for f, x in summaries if any(x["bucket"] == b and str(x["key"]).startswith(p) for b, p in places)]


def release(sqs: Any, url: str, failures: list[Failure]) -> None:
    for i in range(0, len(failures), 10):
        batch = failures[i : i + 10]
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": f.receipt_handle, "VisibilityTimeout": 0} for n, f in enumerate(batch)
            ],
        )
