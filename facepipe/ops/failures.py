"""failures: the DLQ's messages, read without consuming them.

A DLQ can hold anything a person or another system sent, so nothing here trusts a message: a body that is not a
JSON object (or is nested past `MAX_NESTING`) is kept as text, every field is shown as text whatever its type, and
`Failure.problem` says why a message cannot be replayed."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from detect_faces.contract import OUTCOME_EVENT_SOURCE, REDRIVE_FLAG, OutcomeEvent
from detect_faces.model import ImageEvent, is_eventbridge_s3

from .targets import Target

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger("facepipe.ops")

# A failure record nests about eight levels deep. A body nested deeper is not read: nothing after the parse (the
# summary, --json, a replay's payload) then risks Python's recursion limit, which json.loads itself meets near 1000.
MAX_NESTING = 100
# How much of a body that cannot be read is shown: in the summary's message, and as `raw` in `failures --json`.
SHORT_EXCERPT = 200
RAW_EXCERPT = 1000
# The queue is dry after this many receives in a row return nothing (a receive may miss messages SQS holds).
EMPTY_RECEIVES = 2

NOT_JSON = "body is not JSON"
TOO_DEEP = f"body is JSON nested deeper than {MAX_NESTING} levels"
NOT_AN_OBJECT = "body is not a JSON object"
NO_PAYLOAD = "no event to replay: requestPayload is missing or not a JSON object"
NO_RECORDS = "requestPayload holds no S3 records"
OUTCOME_DETAIL_TYPES = frozenset(kind.value for kind in OutcomeEvent)


def is_outcome_event(value: Any) -> bool:
    """A facepipe outcome event (source `facepipe`, one of the four detail-types): what the redaction function is
    invoked with, so a failure record of that function holds one as its requestPayload (docs/REDACTION.md)."""
    return (
        isinstance(value, dict)
        and value.get("source") == OUTCOME_EVENT_SOURCE
        and value.get("detail-type") in OUTCOME_DETAIL_TYPES
    )


@dataclass
class Failure:
    """One DLQ message. `receipt_handle` is the latest SQS gave for it (a message received again gets a new one)."""

    message_id: str
    receipt_handle: str
    body: dict[str, Any] | None
    raw: str
    sent_at: str
    sent_ms: int = 0  # SQS's SentTimestamp (epoch milliseconds)
    attributes: dict[str, str] | None = None  # the message's SQS message attributes, as strings
    unreadable: str | None = None  # why `body` is None: the body is not a JSON object facepipe reads

    @property
    def undelivered(self) -> bool:
        """EventBridge's own DLQ message: an S3 event (or, for the redaction function, an outcome event) the rule
        could not hand to Lambda at all (the function deleted, its permission removed). The body is the event
        itself; ERROR_CODE/ERROR_MESSAGE say why."""
        return is_eventbridge_s3(self.body) or is_outcome_event(self.body)

    @property
    def outcome_event(self) -> bool:
        """The failed event is a facepipe outcome event: a failure of the redaction function, which a replay goes
        to (not the detect function)."""
        return is_outcome_event(self.payload)

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
        if is_eventbridge_s3(payload) or is_outcome_event(payload):
            return [payload]
        records = payload.get("Records") if isinstance(payload, dict) else None
        return records if isinstance(records, list) else []

    @property
    def redrive_run(self) -> Any:
        """The redrive run whose replay produced this record, if any."""
        return self.payload.get(REDRIVE_FLAG)

    @property
    def problem(self) -> str | None:
        """Why a replay cannot help, or None: every record is an S3 record the function can parse, so a replay
        can reach an outcome other than being dead-lettered again as malformed."""
        if self.body is None:
            return self.unreadable or NOT_AN_OBJECT
        if not self.undelivered and not isinstance(self.body.get("requestPayload"), dict):
            return NO_PAYLOAD
        if not self.records:
            return NO_RECORDS
        if self.outcome_event:
            return _outcome_problem(self.payload)
        for n, record in enumerate(self.records, 1):
            try:
                _parse(record)
            except Exception as exc:  # noqa: BLE001 - whatever the function's parser meets here, a replay meets too
                return f"record {n} cannot be parsed: {_clip(str(exc) or type(exc).__name__, 120)}"
        return None

    @property
    def replayable(self) -> bool:
        return self.problem is None

    def excerpt(self, limit: int = SHORT_EXCERPT) -> str:
        """The start of the raw body, with its length when it is longer."""
        return _clip(self.raw, limit)

    def summary(self) -> dict[str, Any]:
        """What `failures` prints of the message. Every field is text (or None; `attempts` an int when the record
        gives one), whatever type the message gave it; `problem` is why a replay cannot help."""
        body = self.body or {}
        problem = self.problem
        response = _mapping(body.get("responsePayload"))
        if self.undelivered:
            attributes = self.attributes or {}
            response = {
                "errorType": attributes.get("ERROR_CODE", "EventBridgeDeliveryFailed"),
                "errorMessage": attributes.get("ERROR_MESSAGE", "EventBridge could not invoke the function"),
            }
        if "errorType" in response or "errorMessage" in response:
            error_type, error_message = _text(response.get("errorType"), "?"), _text(response.get("errorMessage"))
        elif problem is not None:
            error_type, error_message = "not a failure record", self.excerpt()
        else:
            error_type, error_message = "?", ""
        context = _mapping(body.get("requestContext"))
        attempts = context.get("approximateInvokeCount")
        condition = context.get("condition")
        timestamp = None if self.undelivered else body.get("timestamp")
        first = _mapping(self.records[0]) if self.records else {}
        if is_outcome_event(first):  # the image the outcome is about (its detail: schemas/outcome-event-detail)
            detail = _mapping(first.get("detail"))
            bucket, key, version = detail.get("bucket"), detail.get("key"), detail.get("version_id")
        elif is_eventbridge_s3(first):  # keys are not URL-encoded in EventBridge events
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
            "error_type": error_type,
            "error_message": error_message,
            "attempts": attempts if type(attempts) is int or attempts is None else _text(attempts),
            "condition": None if condition is None else _text(condition),
            "time": _text(timestamp) or self.sent_at,
            "problem": problem,
        }


UNKNOWN_KEY = "<unknown>"


def read_body(raw: str) -> tuple[dict[str, Any] | None, str | None]:
    """The body as a JSON object, or None and why it cannot be read as one."""
    try:
        body = json.loads(raw)
    except RecursionError:  # nested past the interpreter's recursion limit
        return None, TOO_DEEP
    except ValueError:  # JSONDecodeError, or a number longer than Python converts from text
        return None, NOT_JSON
    if _deeper_than(body, MAX_NESTING):
        return None, TOO_DEEP
    if not isinstance(body, dict):
        return None, NOT_AN_OBJECT
    return body, None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests objects and arrays more than `limit` levels deep; without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _text(value: Any, default: str = "") -> str:
    """A field as text: a string as it is, anything else as its JSON."""
    if value is None:
        return default
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _outcome_problem(event: dict[str, Any]) -> str | None:
    """Why the redaction function would refuse this outcome event (its own parser), or None."""
    from redaction.outcomes import InvalidOutcomeEvent, parse

    try:
        parse(event)
    except InvalidOutcomeEvent as exc:
        return f"outcome event cannot be parsed: {_clip(str(exc), 120)}"
    return None


def _parse(record: dict[str, Any]) -> ImageEvent:
    return ImageEvent.from_eventbridge(record) if is_eventbridge_s3(record) else ImageEvent.from_record(record)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def receive(sqs: SQSClient, url: str, visibility: int, limit: int) -> Iterator[list[Failure]]:
    """Batches of distinct messages, each hidden for `visibility` seconds, until `limit` or the queue is dry.

    A message the caller still holds when its `visibility` runs out (a slow run) is visible again and may be
    received again. That is neither a new message nor the end of the queue: it is not yielded again, its Failure
    takes the new receipt handle (SQS acts only on a message's latest one, so releasing it later still works),
    and this receive has hidden it again. The queue is dry after two receives in a row return nothing, or after
    more receives in a row without a new message than it takes to meet every held message again (so messages
    that keep reappearing cannot keep a run going)."""
    seen: dict[str, Failure] = {}
    empty = stale = 0
    while len(seen) < limit and empty < EMPTY_RECEIVES and stale <= 2 + len(seen) // 10:
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, limit - len(seen)),
            VisibilityTimeout=visibility,
            WaitTimeSeconds=1,
            AttributeNames=["SentTimestamp"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        batch = []
        for m in messages:
            held = seen.get(m["MessageId"])
            if held is not None:
                held.receipt_handle = m["ReceiptHandle"]
                continue
            seen[m["MessageId"]] = failure = _failure(m)
            batch.append(failure)
        empty = 0 if messages else empty + 1
        stale = 0 if batch else stale + 1
        if batch:
            yield batch


def _failure(message: MessageTypeDef) -> Failure:
    body, unreadable = read_body(message["Body"])
    sent = message.get("Attributes", {}).get("SentTimestamp")
    return Failure(
        message_id=message["MessageId"],
        receipt_handle=message["ReceiptHandle"],
        body=body,
        raw=message["Body"],
        sent_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(sent) / 1000)) if sent else "",
        sent_ms=int(sent) if sent else 0,
        attributes={
            name: str(value.get("StringValue", "")) for name, value in (message.get("MessageAttributes") or {}).items()
        },
        unreadable=unreadable,
    )


def list_failures(target: Target, limit: int = 1000, where: str = "") -> list[Failure]:
    """The DLQ's messages, left in the queue: received with a visibility timeout, then made visible again.
    `where` (s3://bucket/prefix, or a key prefix) keeps the records of those objects only."""
    sqs = target.client_for("sqs")
    failures = [f for batch in receive(sqs, target.dlq_url, visibility=60, limit=limit) for f in batch]
    hidden = release(sqs, target.dlq_url, failures)
    if hidden:
        log.warning("%d message(s) could not be made visible again; they reappear within 60 s", hidden)
    if not where:
        return failures
    places = target.where(where)
    summaries = [(f, f.summary()) for f in failures]  # one summary per failure, not one per place compared
    return [f for f, x in summaries if any(x["bucket"] == b and str(x["key"]).startswith(p) for b, p in places)]


def release(sqs: SQSClient, url: str, failures: list[Failure]) -> int:
    """Make the messages visible again at once; returns how many SQS did not (they reappear when their
    visibility timeout ends)."""
    refused = 0
    for i in range(0, len(failures), 10):
        batch = failures[i : i + 10]
        response = sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": f.receipt_handle, "VisibilityTimeout": 0} for n, f in enumerate(batch)
            ],
        )
        refused += len(response.get("Failed", []))
    return refused
