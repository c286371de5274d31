"""Outcome events: one EventBridge event for every outcome the results table stores, read from the table's own
change stream (an outbox: a function that dies after its write still gets its outcome announced), never sent by the
function that wrote it (docs/DESIGN.md, "Outcome events").

The stack subscribes this module's `lambda_handler` (the events function) to the table's stream through a Lambda
event source mapping whose filter (`STREAM_FILTER`) keeps the META writes with an outcome status; each record
becomes at most one PutEvents entry (`outcome_detail`: source OUTCOME_EVENT_SOURCE, one of four detail-types). A
record whose entry the bus refuses fails alone (Powertools' batch processor reports it), so the stream is retried
from it; what still fails goes to the events DLQ. Local mode runs the same `publish` on the embedded table's stream.
The detail's JSON Schema is schemas/outcome-event-detail.schema.json.
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from typing import Any, Protocol

from .contract import (
    INDEX_PARTITION_KEY,
    INDEX_SORT_KEY,
    META_SK,
    OUTCOME_EVENT_BUS_VARIABLE,
    OUTCOME_EVENT_SOURCE,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    OutcomeEvent,
    Status,
)
from .updates import decode_item

# The detail-type of each stored outcome; PROCESSING and RETRYING are no outcome and have none.
DETAIL_TYPES: dict[Status, OutcomeEvent] = {
    Status.DETECTED: OutcomeEvent.FACES_DETECTED,
    Status.REJECTED: OutcomeEvent.IMAGE_REJECTED,
    Status.DEAD_LETTERED: OutcomeEvent.IMAGE_FAILED,
    Status.TASK_FAILED: OutcomeEvent.IMAGE_FAILED,
    Status.FAILED: OutcomeEvent.IMAGE_FAILED,
    Status.DELETED: OutcomeEvent.IMAGE_DELETED,
}
# A stored reason that starts with an AWS error code: "InvalidImageFormatException: Request has invalid ..."
_CODED = re.compile(r"^([A-Za-z][A-Za-z0-9]*): ")
_TABLE_ARN = re.compile(r":table/([^/]+)/stream/")


# The stream records worth a look: inserts and updates of an image's summary item with an outcome status (never a
# face chunk; never the TTL's removal of a tombstone; never PROCESSING or RETRYING).
STREAM_FILTER: dict[str, Any] = {
    "eventName": ["INSERT", "MODIFY"],
    "dynamodb": {
        "Keys": {TABLE_SORT_KEY: {"S": [META_SK]}},
        "NewImage": {"status": {"S": sorted(status.value for status in DETAIL_TYPES)}},
    },
}


def outcome_detail(record: dict[str, Any]) -> tuple[OutcomeEvent, dict[str, Any]] | None:
    """The detail-type and detail of the event a stream record announces, or None when the record is no new outcome:
    not a META write, a status that is no outcome (PROCESSING, RETRYING, a malformed-record marker), or a write that
    left the outcome as it was (a version noted in `removed_versions` beside a stored result)."""
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return None
    stream = record.get("dynamodb") or {}
    keys = decode_item(stream.get("Keys") or {})
    if keys.get(TABLE_SORT_KEY) != META_SK:
        return None
    new = decode_item(stream.get("NewImage") or {})
    old = decode_item(stream.get("OldImage") or {})
    try:
        status = Status(str(new.get("status")))
    except ValueError:
        return None
    detail_type = DETAIL_TYPES.get(status)
    if detail_type is None or (old and _outcome_of(old) == _outcome_of(new)):
        return None
    reason = new.get("reason")
    coded = _CODED.match(reason) if isinstance(reason, str) and status is not Status.DELETED else None
    table = _TABLE_ARN.search(str(record.get("eventSourceARN", "")))
    detail = {
        "bucket": new.get(INDEX_PARTITION_KEY),
        "key": new.get(INDEX_SORT_KEY),
        "version_id": new.get("version_id"),
        "etag": new.get("etag"),
        "size": _number(new.get("size_bytes")),
        "sequencer": new.get("sequencer"),
        "status": status.value,
        "face_count": _number(new.get("face_count")) or 0,
        "attributes": new.get("attributes"),
        "reason": reason,
        "error_code": coded.group(1) if coded else None,
        "finished_at": new.get("finished_at") or new.get("detected_at"),
        "event_time": new.get("event_time") or None,
        "table": table.group(1) if table else None,
        "pk": keys.get(TABLE_PARTITION_KEY),
    }
    return detail_type, detail


def _outcome_of(image: dict[str, Any]) -> tuple[Any, ...]:
    """What makes an outcome: its status, sequencer, version and time."""
    return (
        image.get("status"),
        image.get("sequencer"),
        image.get("version_id"),
        image.get("finished_at") or image.get("detected_at"),
    )


def _number(value: Any) -> int | None:
    return int(value) if isinstance(value, int | Decimal) else None


class Publisher(Protocol):
    """An EventBridge client (boto3's, or a test's)."""

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]: ...


def entry(record: dict[str, Any], bus: str) -> dict[str, Any] | None:
    """The PutEvents entry of a stream record's new outcome, or None."""
    outcome = outcome_detail(record)
    if outcome is None:
        return None
    detail_type, detail = outcome
    return {
        "Source": OUTCOME_EVENT_SOURCE,
        "DetailType": detail_type.value,
        "Detail": json.dumps(detail, separators=(",", ":")),
        "EventBusName": bus,
        "Resources": [],
    }


class EventsRefusedError(Exception):
    """The bus did not take an outcome's event; the stream is retried from its record."""


def publish(record: dict[str, Any], events: Publisher, bus: str) -> str | None:
    """Send one stream record's outcome event: its detail-type, or None when the record is no new outcome."""
    found = entry(record, bus)
    if found is None:
        return None
    answer = events.put_events(Entries=[found])
    if answer.get("FailedEntryCount"):
        failed = answer.get("Entries", [{}])[0]
        raise EventsRefusedError(f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}")
    return str(found["DetailType"])


_events_client: Any = None


def _events() -> Any:
    global _events_client
    if _events_client is None:
        import boto3

        _events_client = boto3.client("events")
    return _events_client


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The events function: a batch of stream records from the event source mapping; each new outcome is one event
    on OUTCOME_EVENT_BUS (the default bus unless set). Records whose event was refused are reported as failures
    (ReportBatchItemFailures), so the mapping retries the stream from the first of them."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    bus = os.environ.get(OUTCOME_EVENT_BUS_VARIABLE) or "default"

    def handle(record: Any) -> str | None:
        return publish(record.raw_event, _events(), bus)

    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    return dict(process_partial_response(event, handle, processor, context))
